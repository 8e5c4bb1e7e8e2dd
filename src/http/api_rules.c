/*
 * api_rules.c - rules and alerts over HTTP.
 *
 *   POST   /v1/rules                   create or replace a rule (YAML or JSON body)   admin
 *   GET    /v1/rules[?domain=]         the rules of the domains the caller may read    read
 *   GET    /v1/rules/{domain}/{name}   one rule, with its series and firing counts     read
 *   DELETE /v1/rules/{domain}/{name}                                                   admin
 *   POST   /v1/rules/test              a dry run over given rows or stored rows        read
 *   GET    /v1/alerts[?domain=&state=&rule=&limit=]                                    read
 *   GET    /v1/alerts/{id}             one alert with its history                      read
 *   POST   /v1/alerts/{id}/ack|resolve {"note": "..."} (optional)                      write
 *
 * Alerts are read with SQL from the domain's alerts products, as the caller: the caller's
 * grants, masks and row filters apply as for any query. Reading rules needs read on the
 * domain; acknowledging or resolving needs write on the domain's alerts product.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "http/internal.h"
#include "ingest/jsonrows.h"
#include "query/query.h"
#include "http/metrics.h"
#include "rules/actions.h"
#include "rules/engine.h"

#define ALERTS_LIMIT_MAX 10000
#define TEST_ROWS_MAX    100000

static void audit_rule(mesh_req_t *r, mesh_audit_action_t act, const char *domain,
                       const char *product, const char *name, mesh_status_t st, const char *why)
{
    json_t *d = json_object();
    json_object_set_new(d, "rule", json_string(name ? name : ""));
    if (st != MESH_OK && why)
        json_object_set_new(d, "error", json_string(why));
    char *s = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    mesh_audit_rec_t rec = {.action = act,
                            .domain = domain,
                            .product = product,
                            .status = mesh_status_http(st),
                            .details = s};
    mesh_req_audit(r, &rec);
    free(s);
}

static json_t *rule_json(const mesh_rule_t *rule)
{
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 20);
    json_t *j = NULL;
    if (mesh_rule_json(rule, &b) == MESH_OK)
        j = json_loadb(b.data, b.len, 0, NULL);
    mesh_buf_free(&b);
    return j ? j : json_object();
}

/* ---- rules ---- */

static void rules_create(mesh_req_t *r)
{
    const char *p;
    size_t n;
    if (mesh_req_body(r, &p, &n) != MESH_OK)
        return;
    mesh_rule_t *rule;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_rule_parse(p, n, &rule, &err);
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, rule->domain, NULL)) {
        mesh_rule_put(rule);
        return;
    }
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(mesh_req_snapshot(r), rule->domain);
    if (sd == NULL) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "no domain '%s'", rule->domain);
        mesh_rule_put(rule);
        return;
    }
    bool existed = false;
    mesh_rule_info_t *list = NULL;
    size_t nl = 0;
    if (mesh_domain_rules(sd->dom, &list, &nl) == MESH_OK) {
        for (size_t i = 0; i < nl; i++) {
            existed |= strcmp(list[i].rule->name, rule->name) == 0;
            mesh_rule_put(list[i].rule);
        }
        free(list);
    }
    st = mesh_domain_put_rule(sd->dom, p, n, &err);
    audit_rule(r, MESH_AUDIT_ADMIN_RULE_PUT, rule->domain, rule->product, rule->name, st, err.msg);
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        mesh_rule_put(rule);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "outcome", json_string(existed ? "updated" : "created"));
    json_object_set_new(o, "rule", rule_json(rule));
    mesh_rule_put(rule);
    mesh_api_reply_json(r, existed ? 200 : 201, o);
}

static void rules_list(mesh_req_t *r)
{
    const char *only = mesh_req_arg(r, "domain");
    mesh_snapshot_t *s = mesh_req_snapshot(r);
    json_t *arr = json_array();
    for (size_t i = 0; i < s->ndoms; i++) {
        const mesh_snap_domain_t *sd = &s->doms[i];
        if (only && strcmp(only, sd->meta.name) != 0)
            continue;
        mesh_decision_t dec;
        if (!mesh_req_decide(r, MESH_ACT_READ, sd->meta.name, NULL, &dec))
            continue;
        mesh_rule_info_t *list = NULL;
        size_t nl = 0;
        if (mesh_domain_rules(sd->dom, &list, &nl) != MESH_OK)
            continue;
        for (size_t k = 0; k < nl; k++) {
            json_t *j = rule_json(list[k].rule);
            json_object_set_new(j, "series", json_integer((json_int_t)list[k].series));
            json_object_set_new(j, "firing", json_integer((json_int_t)list[k].firing));
            json_array_append_new(arr, j);
            mesh_rule_put(list[k].rule);
        }
        free(list);
    }
    if (only && mesh_snapshot_domain(s, only) == NULL) {
        json_decref(arr);
        mesh_req_errorf(r, MESH_NOT_FOUND, "no domain '%s'", only);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "rules", arr);
    mesh_api_reply_json(r, 200, o);
}

void mesh_api_rules(mesh_req_t *r)
{
    if (evhttp_request_get_command(r->ev) == EVHTTP_REQ_POST)
        rules_create(r);
    else
        rules_list(r);
}

void mesh_api_rule(mesh_req_t *r)
{
    const char *domain = r->params[0], *name = r->params[1];
    bool del = evhttp_request_get_command(r->ev) == EVHTTP_REQ_DELETE;
    if (!mesh_req_allow(r, del ? MESH_ACT_ADMIN : MESH_ACT_READ, domain, NULL))
        return;
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(mesh_req_snapshot(r), domain);
    if (sd == NULL) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "no domain '%s'", domain);
        return;
    }
    mesh_err_t err;
    mesh_err_clear(&err);
    if (del) {
        mesh_status_t st = mesh_domain_delete_rule(sd->dom, name, &err);
        audit_rule(r, MESH_AUDIT_ADMIN_RULE_DELETE, domain, NULL, name, st, err.msg);
        if (st != MESH_OK) {
            mesh_req_error(r, st, err.msg, NULL);
            return;
        }
        json_t *o = json_object();
        json_object_set_new(o, "deleted", json_string(name));
        mesh_api_reply_json(r, 200, o);
        return;
    }
    mesh_rule_info_t *list = NULL;
    size_t nl = 0;
    json_t *found = NULL;
    if (mesh_domain_rules(sd->dom, &list, &nl) == MESH_OK) {
        for (size_t k = 0; k < nl; k++) {
            if (found == NULL && strcmp(list[k].rule->name, name) == 0) {
                found = rule_json(list[k].rule);
                json_object_set_new(found, "series", json_integer((json_int_t)list[k].series));
                json_object_set_new(found, "firing", json_integer((json_int_t)list[k].firing));
                json_object_set_new(found, "text", json_string(list[k].rule->text));
            }
            mesh_rule_put(list[k].rule);
        }
        free(list);
    }
    if (found == NULL) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "no rule %s in domain %s", name, domain);
        return;
    }
    /* the text may hold a webhook secret: only administrators of the domain see it */
    mesh_decision_t dec;
    if (!mesh_req_decide(r, MESH_ACT_ADMIN, domain, NULL, &dec))
        json_object_del(found, "text");
    mesh_api_reply_json(r, 200, found);
}

/* ---- SQL as the caller ---- */

/* Runs sql as the caller; appends one object per row to rows (timestamps as ISO text unless
 * raw_time). MESH_NOT_FOUND when a product does not exist for the caller. */
static mesh_status_t run_sql(mesh_req_t *r, const char *sql, bool raw_time, json_t *rows,
                             mesh_err_t *err)
{
    mesh_query_limits_t lim = {.timeout_ns = r->node->opts.query_timeout,
                               .max_rows = TEST_ROWS_MAX};
    mesh_query_t *q;
    mesh_status_t st = mesh_query_start(r->node->qpool, mesh_req_snapshot(r), mesh_req_policy(r),
                                        &r->who, sql, strlen(sql), &lim, &q, err);
    if (st != MESH_OK)
        return st == MESH_PARSE ? MESH_NOT_FOUND : st;
    int nc = mesh_query_ncols(q);
    int rc;
    while ((rc = mesh_query_step(q, err)) == 1) {
        json_t *o = json_object();
        for (int i = 0; i < nc; i++) {
            mesh_datum_t v;
            mesh_query_value(q, i, &v);
            const char *ct = mesh_query_coltype(q, i);
            json_t *jv;
            switch (v.type) {
            case MESH_V_INT:
                if (!raw_time && ct && strcmp(ct, "TIMESTAMP") == 0) {
                    char t[MESH_TIME_MAX];
                    mesh_time_format(v.i, t);
                    jv = json_string(t);
                } else {
                    jv = json_integer((json_int_t)v.i);
                }
                break;
            case MESH_V_REAL:
                jv = json_real(v.d);
                break;
            case MESH_V_TEXT:
                jv = json_stringn(v.s, v.n);
                break;
            default:
                jv = json_null();
            }
            json_object_set_new(o, mesh_query_colname(q, i), jv ? jv : json_null());
        }
        json_array_append_new(rows, o);
    }
    mesh_query_finish(q);
    return rc < 0 ? err->code : MESH_OK;
}

static void add_quoted(mesh_buf_t *b, const char *s)
{
    mesh_buf_addc(b, '\'');
    for (; *s; s++) {
        if (*s == '\'')
            mesh_buf_addc(b, '\'');
        mesh_buf_addc(b, *s);
    }
    mesh_buf_addc(b, '\'');
}

static void add_ident(mesh_buf_t *b, const char *s)
{
    mesh_buf_addc(b, '"');
    for (; *s; s++) {
        if (*s == '"')
            mesh_buf_addc(b, '"');
        mesh_buf_addc(b, *s);
    }
    mesh_buf_addc(b, '"');
}

/* ---- the dry run ---- */

typedef struct dry_ctx {
    json_t *events;
} dry_ctx_t;

static void on_dry(void *arg, const mesh_rule_event_t *ev)
{
    dry_ctx_t *c = arg;
    json_t *o = json_object();
    char t[MESH_TIME_MAX];
    mesh_time_format(ev->time_ns, t);
    json_object_set_new(o, "event", json_string(mesh_alert_ev_name(ev->ev)));
    json_object_set_new(o, "time", json_string(t));
    json_t *series = json_loads(ev->series, 0, NULL);
    json_object_set_new(o, "series", series ? series : json_null());
    if (ev->has_value)
        json_object_set_new(o, "value", json_real(ev->value));
    if (ev->row)
        json_object_set_new(o, "sample", json_real(ev->sample));
    json_object_set_new(o, "alert", json_string(ev->alert_id));
    json_array_append_new(c->events, o);
}

void mesh_api_rules_test(mesh_req_t *r)
{
    const char *p;
    size_t n;
    if (mesh_req_body(r, &p, &n) != MESH_OK)
        return;
    json_error_t je;
    json_t *body = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(body)) {
        json_decref(body);
        mesh_req_errorf(r, MESH_PARSE,
                        "the body must be a JSON object {\"rule\": ..., \"rows\": [...]} or "
                        "{\"rule\": ..., \"from\": ..., \"to\": ...}");
        return;
    }
    json_t *jr = json_object_get(body, "rule");
    char *text = json_is_string(jr)   ? strdup(json_string_value(jr))
                 : json_is_object(jr) ? json_dumps(jr, JSON_COMPACT)
                                      : NULL;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_rule_t *rule = NULL;
    mesh_status_t st = text ? mesh_rule_parse(text, strlen(text), &rule, &err)
                            : mesh_err_set(&err, MESH_INVALID, "rule: required (text or object)");
    free(text);
    if (st != MESH_OK) {
        json_decref(body);
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    if (!mesh_req_allow(r, MESH_ACT_READ, rule->domain, rule->product))
        goto out;
    const mesh_product_t *prod =
        mesh_snapshot_product(mesh_req_snapshot(r), rule->domain, rule->product);
    if (prod == NULL) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "no product %s.%s", rule->domain, rule->product);
        goto out;
    }
    json_t *rows = json_object_get(body, "rows");
    json_t *fetched = NULL;
    int64_t until = 0;
    if (!json_is_array(rows)) {
        int64_t from = 0, to = mesh_now_ns();
        const char *fs = json_string_value(json_object_get(body, "from"));
        const char *ts = json_string_value(json_object_get(body, "to"));
        if (fs == NULL || mesh_time_parse(fs, strlen(fs), &from) != MESH_OK ||
            (ts && mesh_time_parse(ts, strlen(ts), &to) != MESH_OK)) {
            mesh_req_errorf(r, MESH_INVALID,
                            "give rows (a JSON array of rows) or from (and to): ISO 8601 times");
            goto out;
        }
        if (prod->time_col < 0) {
            mesh_req_errorf(r, MESH_INVALID, "%s.%s has no time column: give rows", rule->domain,
                            rule->product);
            goto out;
        }
        mesh_buf_t sql;
        mesh_buf_init(&sql, 1 << 16);
        const char *tc = prod->cols[prod->time_col].name;
        mesh_buf_adds(&sql, "SELECT * FROM ");
        add_ident(&sql, rule->domain);
        mesh_buf_addc(&sql, '.');
        add_ident(&sql, rule->product);
        mesh_buf_adds(&sql, " WHERE ");
        add_ident(&sql, tc);
        mesh_buf_printf(&sql, " >= %lld AND ", (long long)from);
        add_ident(&sql, tc);
        mesh_buf_printf(&sql, " < %lld ORDER BY ", (long long)to);
        add_ident(&sql, tc);
        mesh_buf_printf(&sql, " LIMIT %d", TEST_ROWS_MAX);
        fetched = json_array();
        st = run_sql(r, sql.data, true, fetched, &err);
        mesh_buf_free(&sql);
        if (st != MESH_OK) {
            json_decref(fetched);
            mesh_req_error(r, st, err.msg, NULL);
            goto out;
        }
        rows = fetched;
        until = to;
    }
    if (json_array_size(rows) > TEST_ROWS_MAX) {
        json_decref(fetched);
        mesh_req_errorf(r, MESH_TOO_LARGE, "at most %d rows", TEST_ROWS_MAX);
        goto out;
    }
    char *rows_text = json_dumps(rows, JSON_COMPACT);
    json_decref(fetched);
    mesh_batch_t b;
    mesh_batch_init(&b, rule->domain, MESH_BATCH_DEFAULT_LIMITS);
    b.received_ns = mesh_now_ns();
    b.precision = MESH_PREC_AUTO;
    st = rows_text ? mesh_json_rows_parse(rows_text, strlen(rows_text), prod, false, &b)
                   : MESH_NOMEM;
    free(rows_text);
    if (st == MESH_OK && mesh_batch_failed(&b)) {
        mesh_buf_t det;
        mesh_buf_init(&det, 1 << 20);
        mesh_batch_errors_json(&b, &det);
        mesh_req_error(r, MESH_VALIDATION, "rows do not fit the product's contract", det.data);
        mesh_buf_free(&det);
        mesh_batch_free(&b);
        goto out;
    }
    dry_ctx_t c = {.events = json_array()};
    if (st == MESH_OK)
        st = mesh_rules_dry_run(rule, &b, until, on_dry, &c, &err);
    size_t nrows = mesh_batch_good_rows(&b);
    mesh_batch_free(&b);
    if (st != MESH_OK) {
        json_decref(c.events);
        mesh_req_error(r, st, err.msg[0] ? err.msg : "rows could not be read", NULL);
        goto out;
    }
    json_t *o = json_object();
    json_object_set_new(o, "rule", json_string(rule->name));
    json_object_set_new(o, "rows", json_integer((json_int_t)nrows));
    json_object_set_new(o, "events", c.events);
    mesh_api_reply_json(r, 200, o);
out:
    mesh_rule_put(rule);
    json_decref(body);
}

/* ---- alerts ---- */

static const char *alert_cols =
    "alert_id, rule, product, series, state, severity, value, first_value, fired_at, "
    "updated_at, acked_at, acked_by, resolved_at, resolved_by, note";

void mesh_api_alerts(mesh_req_t *r)
{
    const char *only = mesh_req_arg(r, "domain");
    const char *state = mesh_req_arg(r, "state");
    const char *rule = mesh_req_arg(r, "rule");
    const char *lim_s = mesh_req_arg(r, "limit");
    int64_t limit = 100;
    if (lim_s && (mesh_parse_i64(lim_s, strlen(lim_s), &limit) != MESH_OK || limit < 1 ||
                  limit > ALERTS_LIMIT_MAX)) {
        mesh_req_errorf(r, MESH_INVALID, "limit: 1 to %d", ALERTS_LIMIT_MAX);
        return;
    }
    if (state && strcmp(state, "open") && strcmp(state, "firing") &&
        strcmp(state, "acknowledged") && strcmp(state, "resolved") && strcmp(state, "all")) {
        mesh_req_errorf(r, MESH_INVALID,
                        "state: open (the default), firing, acknowledged, resolved or all");
        return;
    }
    if (rule && (strlen(rule) > MESH_NAME_MAX || strpbrk(rule, "'\"\\"))) {
        mesh_req_errorf(r, MESH_INVALID, "rule: not a rule name");
        return;
    }
    mesh_snapshot_t *s = mesh_req_snapshot(r);
    if (only && mesh_snapshot_domain(s, only) == NULL) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "no domain '%s'", only);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < s->ndoms; i++) {
        const mesh_snap_domain_t *sd = &s->doms[i];
        if (only && strcmp(only, sd->meta.name) != 0)
            continue;
        if (mesh_snapshot_product(s, sd->meta.name, MESH_ALERTS_PRODUCT) == NULL)
            continue;
        mesh_decision_t dec;
        if (!mesh_req_decide(r, MESH_ACT_READ, sd->meta.name, MESH_ALERTS_PRODUCT, &dec))
            continue;
        mesh_buf_t sql;
        mesh_buf_init(&sql, 1 << 16);
        mesh_buf_printf(&sql, "SELECT %s FROM ", alert_cols);
        add_ident(&sql, sd->meta.name);
        mesh_buf_adds(&sql, ".alerts WHERE 1");
        if (state == NULL || strcmp(state, "open") == 0)
            mesh_buf_adds(&sql, " AND state <> 'resolved'");
        else if (strcmp(state, "all") != 0) {
            mesh_buf_adds(&sql, " AND state = ");
            add_quoted(&sql, state);
        }
        if (rule) {
            mesh_buf_adds(&sql, " AND rule = ");
            add_quoted(&sql, rule);
        }
        mesh_buf_printf(&sql, " ORDER BY fired_at DESC LIMIT %lld", (long long)limit);
        mesh_err_t err;
        mesh_err_clear(&err);
        mesh_status_t st = run_sql(r, sql.data, false, arr, &err);
        mesh_buf_free(&sql);
        if (st != MESH_OK && st != MESH_NOT_FOUND) {
            json_decref(arr);
            mesh_req_error(r, st, err.msg, NULL);
            return;
        }
    }
    json_t *o = json_object();
    json_object_set_new(o, "alerts", arr);
    mesh_api_reply_json(r, 200, o);
}

/* The domain of an alert id ("domain:number"), or false. */
static bool alert_domain(const char *id, char *domain, size_t cap)
{
    const char *colon = strrchr(id, ':');
    if (colon == NULL || colon == id || (size_t)(colon - id) >= cap || colon[1] == '\0')
        return false;
    for (const char *c = colon + 1; *c; c++)
        if (*c < '0' || *c > '9')
            return false;
    memcpy(domain, id, (size_t)(colon - id));
    domain[colon - id] = '\0';
    return mesh_name_domain_ok(domain);
}

static void alert_show(mesh_req_t *r, const char *id, const char *domain)
{
    if (!mesh_req_allow(r, MESH_ACT_READ, domain, MESH_ALERTS_PRODUCT))
        return;
    json_t *rows = json_array(), *hist = json_array();
    mesh_buf_t sql;
    mesh_buf_init(&sql, 1 << 16);
    mesh_buf_printf(&sql, "SELECT %s FROM ", alert_cols);
    add_ident(&sql, domain);
    mesh_buf_adds(&sql, ".alerts WHERE alert_id = ");
    add_quoted(&sql, id);
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = run_sql(r, sql.data, false, rows, &err);
    if (st == MESH_OK) {
        mesh_buf_reset(&sql);
        mesh_buf_adds(&sql, "SELECT time, event, value, by, note FROM ");
        add_ident(&sql, domain);
        mesh_buf_adds(&sql, ".alert_events WHERE alert_id = ");
        add_quoted(&sql, id);
        mesh_buf_adds(&sql, " ORDER BY time");
        st = run_sql(r, sql.data, false, hist, &err);
    }
    mesh_buf_free(&sql);
    if (st == MESH_OK && json_array_size(rows) == 0)
        st = mesh_err_set(&err, MESH_NOT_FOUND, "no alert %s", id);
    if (st != MESH_OK) {
        json_decref(rows);
        json_decref(hist);
        mesh_req_error(r, st, st == MESH_NOT_FOUND ? "no such alert" : err.msg, NULL);
        return;
    }
    json_t *o = json_deep_copy(json_array_get(rows, 0));
    json_decref(rows);
    json_object_set_new(o, "history", hist);
    mesh_api_reply_json(r, 200, o);
}

void mesh_api_alert(mesh_req_t *r)
{
    const char *id = r->params[0];
    char domain[64];
    if (!alert_domain(id, domain, sizeof domain)) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "no alert '%s' (ids look like domain:number)", id);
        return;
    }
    const char *verb = r->params[1];
    if (evhttp_request_get_command(r->ev) == EVHTTP_REQ_GET) {
        if (verb[0]) {
            mesh_req_errorf(r, MESH_METHOD, "GET /v1/alerts/{id} or POST .../ack|resolve");
            return;
        }
        alert_show(r, id, domain);
        return;
    }
    char op;
    if (strcmp(verb, "ack") == 0)
        op = 'a';
    else if (strcmp(verb, "resolve") == 0)
        op = 'r';
    else {
        mesh_req_errorf(r, MESH_NOT_FOUND, "POST /v1/alerts/{id}/ack or /resolve");
        return;
    }
    if (!mesh_req_allow(r, MESH_ACT_WRITE, domain, MESH_ALERTS_PRODUCT))
        return;
    const char *note = NULL;
    json_t *body = NULL;
    const char *p;
    size_t n;
    if (mesh_req_body(r, &p, &n) != MESH_OK)
        return;
    if (n) {
        body = json_loadb(p, n, 0, NULL);
        const json_t *jn = json_object_get(body, "note");
        if (!json_is_object(body) || (jn && !json_is_string(jn)) ||
            (jn && strlen(json_string_value(jn)) > 255)) {
            json_decref(body);
            mesh_req_errorf(r, MESH_INVALID, "the body is {\"note\": \"at most 255 characters\"}");
            return;
        }
        note = json_string_value(jn);
    }
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(mesh_req_snapshot(r), domain);
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = sd ? mesh_domain_alert_op(sd->dom, op, id, r->who.name, note, &err)
                          : mesh_err_set(&err, MESH_NOT_FOUND, "no domain '%s'", domain);
    json_decref(body);
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "alert", json_string(id));
    json_object_set_new(o, "state", json_string(op == 'a' ? "acknowledged" : "resolved"));
    json_object_set_new(o, "by", json_string(r->who.name));
    mesh_api_reply_json(r, 200, o);
}

/* ---- metrics ---- */

void mesh_api_rules_metrics(mesh_req_t *r, mesh_buf_t *b)
{
    mesh_snapshot_t *s = mesh_req_snapshot(r);
    bool first = true;
    for (size_t i = 0; i < s->ndoms; i++) {
        mesh_rule_info_t *list = NULL;
        size_t nl = 0;
        if (mesh_domain_rules(s->doms[i].dom, &list, &nl) != MESH_OK)
            continue;
        for (size_t k = 0; k < nl; k++) {
            if (first) {
                mesh_metrics_help(b, "meshd_rule_series", "gauge", "Series a rule watches.");
                mesh_metrics_help(b, "meshd_rule_firing", "gauge",
                                  "Series of a rule whose alert fires now.");
                first = false;
            }
            mesh_buf_printf(b, "meshd_rule_series{domain=\"%s\",rule=\"%s\"} %zu\n",
                            s->doms[i].meta.name, list[k].rule->name, list[k].series);
            mesh_buf_printf(b, "meshd_rule_firing{domain=\"%s\",rule=\"%s\"} %zu\n",
                            s->doms[i].meta.name, list[k].rule->name, list[k].firing);
            mesh_rule_put(list[k].rule);
        }
        free(list);
    }
    if (r->node->actions == NULL)
        return;
    mesh_actions_stats_t as;
    mesh_actions_stats(r->node->actions, &as);
    mesh_metrics_help(b, "meshd_actions_delivered_total", "counter",
                      "Rule actions (webhooks) delivered.");
    mesh_buf_printf(b, "meshd_actions_delivered_total %llu\n", (unsigned long long)as.delivered);
    mesh_metrics_help(b, "meshd_actions_failed_total", "counter",
                      "Rule actions given up after their retries.");
    mesh_buf_printf(b, "meshd_actions_failed_total %llu\n", (unsigned long long)as.failed);
    mesh_metrics_help(b, "meshd_actions_dropped_total", "counter",
                      "Rule actions dropped because the action queue was full.");
    mesh_buf_printf(b, "meshd_actions_dropped_total %llu\n", (unsigned long long)as.dropped);
    mesh_metrics_help(b, "meshd_actions_attempts_total", "counter",
                      "Delivery attempts of rule actions (retries included).");
    mesh_buf_printf(b, "meshd_actions_attempts_total %llu\n", (unsigned long long)as.attempts);
    mesh_metrics_help(b, "meshd_actions_queued", "gauge",
                      "Rule actions waiting for delivery or a retry.");
    mesh_buf_printf(b, "meshd_actions_queued %zu\n", as.queued);
}
