/*
 * api_governance.c - retention, legal holds, residency and erasure (docs/governance.md).
 *
 *   GET|PUT /v1/governance/{domain}[/{product}]  the policy (PUT: admin of it)
 *   POST    /v1/retention/run                    one retention pass now (node admin)
 *   POST    /v1/products/{d}/{p}/erase           {"where": "..."}: right to erasure
 *
 * Erasure: the WHERE is untrusted SQL. It is checked to be one expression over the product
 * (mesh_policy_expr_check) and evaluated by the sandboxed query engine as the caller, in
 * `SELECT <key columns> FROM d.p WHERE (<where>)`, never pasted into a DELETE; the keys it
 * returns go into disposal records of the domain's log (at most ERASE_KEYS_PER_RECORD keys
 * each), applied like writes. A legal hold refuses it (409).
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/governance.h"
#include "core/util.h"
#include "http/internal.h"
#include "node/governance.h"
#include "store/domain.h"

#define ERASE_MAX_WHERE       4096
#define ERASE_MAX_KEYS        1000000
#define ERASE_KEYS_PER_RECORD 10000

static void gov_json(const mesh_gov_rec_t *g, const mesh_gov_effective_t *e, mesh_buf_t *o)
{
    mesh_buf_adds(o, "{\"domain\":");
    mesh_buf_add_json_str(o, g->domain, strlen(g->domain));
    if (g->product[0]) {
        mesh_buf_adds(o, ",\"product\":");
        mesh_buf_add_json_str(o, g->product, strlen(g->product));
    }
    if (g->retention_ns >= 0)
        mesh_buf_printf(o, ",\"retention_s\":%" PRId64,
                        (int64_t)(g->retention_ns / MESH_NS_PER_SEC));
    else
        mesh_buf_adds(o, ",\"retention_s\":null");
    mesh_buf_printf(o, ",\"legal_hold\":%s", g->hold ? "true" : "false");
    if (g->hold) {
        mesh_buf_adds(o, ",\"hold_reason\":");
        mesh_buf_add_json_str(o, g->hold_reason, strlen(g->hold_reason));
    }
    mesh_buf_printf(o, ",\"residency\":\"%s\"", g->residency_local ? "local" : "any");
    if (e) {
        mesh_buf_printf(
            o, ",\"effective\":{\"retention_s\":%" PRId64 ",\"legal_hold\":%s,\"residency\":\"%s\"",
            (int64_t)(e->retention_ns / MESH_NS_PER_SEC), e->held ? "true" : "false",
            e->residency_local ? "local" : "any");
        if (e->held) {
            mesh_buf_adds(o, ",\"held_on\":");
            mesh_buf_add_json_str(o, e->held_on, strlen(e->held_on));
        }
        mesh_buf_addc(o, '}');
    }
    mesh_buf_adds(o, "}\n");
}

static void governance(mesh_req_t *r, const char *domain, const char *product)
{
    mesh_snapshot_t *snap = mesh_req_snapshot(r);
    const mesh_product_t *p = NULL;
    if (mesh_snapshot_domain(snap, domain) == NULL) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "no domain %s", domain);
        return;
    }
    if (*product && (p = mesh_snapshot_product(snap, domain, product)) == NULL) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "no product %s.%s", domain, product);
        return;
    }
    bool put = evhttp_request_get_command(r->ev) == EVHTTP_REQ_PUT;
    if (!mesh_req_allow(r, put ? MESH_ACT_ADMIN : MESH_ACT_READ, domain, *product ? product : NULL))
        return;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_gov_rec_t g;
    mesh_status_t st = mesh_catalog_gov_get(r->node->cat, domain, product, &g, &err);
    if (st == MESH_OK && put) {
        const char *body;
        size_t n;
        if (mesh_req_body(r, &body, &n) != MESH_OK)
            return;
        json_error_t je;
        json_t *j = json_loadb(body, n, JSON_REJECT_DUPLICATES, &je);
        const char *key;
        json_t *v;
        if (!json_is_object(j))
            st = mesh_err_set(&err, MESH_INVALID, "the body is a JSON object");
        json_object_foreach(st == MESH_OK ? j : NULL, key, v)
        {
            if (st != MESH_OK)
                break;
            if (strcmp(key, "retention") == 0) {
                int64_t ns = 0;
                if (json_is_null(v) ||
                    (json_is_string(v) && strcmp(json_string_value(v), "contract") == 0))
                    g.retention_ns = -1;
                else if (json_is_string(v) && strcmp(json_string_value(v), "forever") == 0)
                    g.retention_ns = 0;
                else if (json_is_string(v) &&
                         mesh_duration_parse(json_string_value(v), &ns) == MESH_OK && ns > 0)
                    g.retention_ns = ns;
                else
                    st = mesh_err_set(&err, MESH_INVALID,
                                      "retention is a duration (30d), \"forever\" or "
                                      "\"contract\" (null: the contract's)");
            } else if (strcmp(key, "legal_hold") == 0 && json_is_boolean(v)) {
                g.hold = json_is_true(v);
            } else if (strcmp(key, "reason") == 0 && json_is_string(v) &&
                       strlen(json_string_value(v)) <= MESH_HOLD_REASON_MAX) {
                snprintf(g.hold_reason, sizeof g.hold_reason, "%s", json_string_value(v));
            } else if (strcmp(key, "residency") == 0 && json_is_string(v) &&
                       (strcmp(json_string_value(v), "local") == 0 ||
                        strcmp(json_string_value(v), "any") == 0)) {
                g.residency_local = strcmp(json_string_value(v), "local") == 0;
            } else {
                st = mesh_err_set(&err, MESH_INVALID,
                                  "unknown or bad field '%.40s' (retention, legal_hold, reason "
                                  "(at most %d bytes), residency: local|any)",
                                  key, MESH_HOLD_REASON_MAX);
            }
        }
        json_decref(j);
        if (st == MESH_OK && g.hold && g.hold_reason[0] == '\0')
            st = mesh_err_set(&err, MESH_INVALID, "a legal hold needs a reason");
        if (st == MESH_OK && !g.hold)
            g.hold_reason[0] = '\0';
        if (st == MESH_OK && g.retention_ns > 0 && p && p->time_col < 0)
            st = mesh_err_set(&err, MESH_INVALID, "%s.%s has no time column: no retention", domain,
                              product);
        if (st == MESH_OK) {
            g.updated_ns = mesh_now_ns();
            snprintf(g.updated_by, sizeof g.updated_by, "%s", r->who.name);
            st = mesh_catalog_gov_put(r->node->cat, &g, &err);
        }
        mesh_buf_t d;
        mesh_buf_init(&d, 4096);
        gov_json(&g, NULL, &d);
        if (d.len && d.data[d.len - 1] == '\n')
            d.data[--d.len] = '\0';
        mesh_audit_rec_t rec = {.action = MESH_AUDIT_ADMIN_GOVERNANCE,
                                .domain = domain,
                                .product = *product ? product : NULL,
                                .status = mesh_status_http(st),
                                .details = st == MESH_OK ? d.data : NULL};
        mesh_req_audit(r, &rec);
        mesh_buf_free(&d);
    }
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    mesh_gov_effective_t e;
    bool have_e = p && mesh_catalog_gov_effective(r->node->cat, p, &e, &err) == MESH_OK;
    mesh_buf_t o;
    mesh_buf_init(&o, 1 << 16);
    gov_json(&g, have_e ? &e : NULL, &o);
    mesh_req_json(r, 200, &o);
    mesh_buf_free(&o);
}

/* GET|PUT /v1/governance/{domain} */
void mesh_api_governance_domain(mesh_req_t *r)
{
    governance(r, r->params[0], "");
}

/* GET|PUT /v1/governance/{domain}/{product} */
void mesh_api_governance_product(mesh_req_t *r)
{
    governance(r, r->params[0], r->params[1]);
}

/* POST /v1/retention/run */
void mesh_api_retention_run(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, NULL, NULL))
        return;
    mesh_buf_t rep;
    mesh_buf_init(&rep, MESH_BUF_UNLIMITED);
    mesh__node_retention_run(r->node, &rep);
    mesh_buf_t o;
    mesh_buf_init(&o, MESH_BUF_UNLIMITED);
    mesh_buf_adds(&o, "{\"products\":");
    mesh_buf_add(&o, rep.data ? rep.data : "[]", rep.data ? rep.len : 2);
    mesh_buf_adds(&o, "}\n");
    mesh_req_json(r, 200, &o);
    mesh_buf_free(&o);
    mesh_buf_free(&rep);
}

/* POST /v1/products/{d}/{p}/erase {"where": "..."} */
void mesh_api_erase(mesh_req_t *r)
{
    const char *domain = r->params[0], *product = r->params[1];
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, domain, product))
        return;
    mesh_snapshot_t *snap = mesh_req_snapshot(r);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(snap, domain);
    const mesh_product_t *p = sd ? mesh_snapshot_product(snap, domain, product) : NULL;
    if (p == NULL) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "no product %s.%s", domain, product);
        return;
    }
    const char *body;
    size_t n;
    if (mesh_req_body(r, &body, &n) != MESH_OK)
        return;
    json_error_t je;
    json_t *j = json_loadb(body, n, JSON_REJECT_DUPLICATES, &je);
    json_t *w = json_is_object(j) ? json_object_get(j, "where") : NULL;
    if (!json_is_string(w) || json_object_size(j) != 1 || json_string_length(w) == 0 ||
        json_string_length(w) > ERASE_MAX_WHERE) {
        json_decref(j);
        mesh_req_errorf(r, MESH_INVALID,
                        "the body is {\"where\": \"<a SQL condition over the product's "
                        "columns>\"} (at most %d bytes)",
                        ERASE_MAX_WHERE);
        return;
    }
    char *where = mesh_strndup(json_string_value(w), json_string_length(w));
    json_decref(j);
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_erase_report_t rep;
    mesh_status_t st =
        where ? mesh_node_erase(r->node, snap, mesh_req_policy(r), &r->who, p, where, &rep, &err)
              : mesh_err_set(&err, MESH_NOMEM, "out of memory");
    mesh_buf_t d;
    mesh_buf_init(&d, 16384);
    mesh_buf_adds(&d, "{\"why\":\"erasure\",\"where\":");
    mesh_buf_add_json_str(&d, where ? where : "", where ? strlen(where) : 0);
    mesh_buf_printf(&d, ",\"matched\":%" PRId64 ",\"rows\":%" PRId64 ",\"records\":%" PRId64,
                    rep.matched, rep.deleted, rep.records);
    if (rep.derived.len) {
        mesh_buf_adds(&d, ",\"derived\":");
        mesh_buf_add(&d, rep.derived.data, rep.derived.len);
    }
    if (st != MESH_OK) {
        mesh_buf_adds(&d, ",\"error\":");
        mesh_buf_add_json_str(&d, err.msg, strlen(err.msg));
    }
    mesh_buf_addc(&d, '}');
    mesh_audit_rec_t rec = {.action = MESH_AUDIT_DISPOSE_ERASURE,
                            .domain = domain,
                            .product = product,
                            .status = mesh_status_http(st),
                            .details = d.data};
    mesh_req_audit(r, &rec);
    free(where);
    if (st != MESH_OK) {
        mesh_buf_free(&d);
        mesh_erase_report_free(&rep);
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    mesh_buf_t o;
    mesh_buf_init(&o, MESH_BUF_UNLIMITED);
    mesh_buf_adds(&o, "{\"domain\":");
    mesh_buf_add_json_str(&o, domain, strlen(domain));
    mesh_buf_adds(&o, ",\"product\":");
    mesh_buf_add_json_str(&o, product, strlen(product));
    mesh_buf_printf(&o, ",\"matched\":%" PRId64 ",\"deleted\":%" PRId64 ",\"records\":%" PRId64,
                    rep.matched, rep.deleted, rep.records);
    mesh_buf_adds(&o, ",\"derived\":");
    if (rep.derived.len)
        mesh_buf_add(&o, rep.derived.data, rep.derived.len);
    else
        mesh_buf_adds(&o, "[]");
    mesh_buf_adds(&o, "}\n");
    mesh_req_json(r, 200, &o);
    mesh_buf_free(&o);
    mesh_buf_free(&d);
    mesh_erase_report_free(&rep);
}
