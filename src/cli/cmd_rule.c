/*
 * cmd_rule.c - `meshctl rule create|list|show|delete|test` (/v1/rules) and
 * `meshctl alert list|show|ack|resolve` (/v1/alerts). See docs/rules.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/util.h"
#include "rules/rule.h"

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MESH_NAME_MAX || s[0] < 'a' || s[0] > 'z')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '-'))
            return false;
    return true;
}

/* /v1/rules/DOMAIN/NAME into b; 0 or a usage exit code. */
static int rule_path(mesh_cli_t *cli, const mesh_cli_args_t *a, mesh_buf_t *b)
{
    const char *domain = mesh_cli_pos(a, 0), *name = mesh_cli_pos(a, 1);
    int rc = mesh_cli_domain_name(cli, domain);
    if (rc != 0)
        return rc;
    if (!name_ok(name))
        return mesh_cli_usage(cli, "'%.60s' is not a rule name ([a-z][a-z0-9_-]{0,62})", name);
    mesh_buf_init(b, 4096);
    mesh_buf_printf(b, "/v1/rules/%s/%s", domain, name);
    return 0;
}

static int run_create(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    char *text;
    size_t len;
    int rc = mesh_cli_read_input(cli, mesh_cli_pos(a, 0), MESH_RULE_MAX_BYTES, &text, &len);
    if (rc != 0)
        return rc;
    mesh_client_req_t req = {.method = "POST",
                             .path = "/v1/rules",
                             .content_type = "application/yaml",
                             .body = text,
                             .body_len = len};
    if (strcmp(mesh_cli_format(cli, false), "json") == 0) {
        rc = mesh_cli_raw(cli, &req);
        free(text);
        return rc;
    }
    json_t *j = NULL;
    rc = mesh_cli_call(cli, &req, &j);
    free(text);
    if (rc != 0)
        return rc;
    const json_t *r = json_object_get(j, "rule");
    if (!cli->quiet)
        printf("%s rule %s of %s.%s (%s)\n", mesh_cli_jstr(j, "outcome"), mesh_cli_jstr(r, "name"),
               mesh_cli_jstr(r, "domain"), mesh_cli_jstr(r, "product"), mesh_cli_jstr(r, "kind"));
    json_decref(j);
    return 0;
}

/* "temp > 80 (clear < 75) for 30s" */
static void condition(const json_t *r, char *out, size_t cap)
{
    const char *kind = mesh_cli_jstr(r, "kind");
    char num[64], clr[64], extra[96] = "";
    const char *col = mesh_cli_jstr(r, "column") ? mesh_cli_jstr(r, "column") : "rows";
    const char *f = mesh_cli_jstr(r, "for");
    if (f)
        snprintf(extra, sizeof extra, " for %s", f);
    if (kind && strcmp(kind, "absence") == 0) {
        snprintf(out, cap, "no row for %s", mesh_cli_jstr(r, "after"));
        return;
    }
    if (kind && strcmp(kind, "anomaly") == 0) {
        mesh_cli_json_text(json_object_get(r, "sensitivity"), num, sizeof num);
        snprintf(out, cap, "|%s(%s)| >= %s", mesh_cli_jstr(r, "method"), col, num);
        return;
    }
    bool above = json_object_get(r, "above") != NULL;
    mesh_cli_json_text(json_object_get(r, above ? "above" : "below"), num, sizeof num);
    char lhs[128];
    if (kind && strcmp(kind, "window") == 0)
        snprintf(lhs, sizeof lhs, "%s(%s, %s)", mesh_cli_jstr(r, "function"), col,
                 mesh_cli_jstr(r, "period"));
    else
        snprintf(lhs, sizeof lhs, "%s", col);
    const char *c = mesh_cli_json_text(json_object_get(r, "clear"), clr, sizeof clr);
    char hyst[96] = "";
    if (c && strcmp(c, num) != 0)
        snprintf(hyst, sizeof hyst, " (clear %s %s)", above ? "<" : ">", c);
    snprintf(out, cap, "%s %s %s%s%s", lhs, above ? ">" : "<", num, hyst, extra);
}

static int run_list(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *domain = mesh_cli_arg(a, "domain");
    mesh_buf_t path;
    int rc = domain ? mesh_cli_path(cli, &path, "/v1/rules?domain=", domain)
                    : mesh_cli_path(cli, &path, "/v1/rules", "");
    if (rc != 0)
        return rc;
    static const mesh_cli_col_t cols[] = {
        {"domain", "DOMAIN", MESH_ALIGN_LEFT, 0},        {"name", "NAME", MESH_ALIGN_LEFT, 0},
        {"product", "PRODUCT", MESH_ALIGN_LEFT, 0},      {"kind", "KIND", MESH_ALIGN_LEFT, 0},
        {"condition", "CONDITION", MESH_ALIGN_LEFT, 50}, {"series", "SERIES", MESH_ALIGN_RIGHT, 0},
        {"firing", "FIRING", MESH_ALIGN_RIGHT, 0},       {"actions", "ACTIONS", MESH_ALIGN_LEFT, 0},
    };
    const char *fmt = mesh_cli_format(cli, false);
    mesh_client_req_t req = {.method = "GET", .path = path.data};
    json_t *j = NULL;
    mesh_table_t *t = NULL;
    bool csv = false;
    rc = mesh_cli_list(cli, &req, cols, MESH_ARRAY_LEN(cols), &j, &t, &csv);
    mesh_buf_free(&path);
    if (rc != 0 || j == NULL)
        return rc;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(j, "rules"), i, r)
    {
        char cond[256];
        condition(r, cond, sizeof cond);
        mesh_table_add(t, mesh_cli_jstr(r, "domain"));
        mesh_table_add(t, mesh_cli_jstr(r, "name"));
        mesh_table_add(t, mesh_cli_jstr(r, "product"));
        mesh_table_add(t, mesh_cli_jstr(r, "kind"));
        mesh_table_add(t, cond);
        mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(r, "series"));
        mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(r, "firing"));
        mesh_buf_t acts;
        mesh_buf_init(&acts, 4096);
        size_t k;
        json_t *ac;
        json_array_foreach(json_object_get(r, "actions"), k, ac)
        {
            if (k)
                mesh_buf_adds(&acts, ", ");
            mesh_buf_adds(&acts, mesh_cli_jstr(ac, "type") ? mesh_cli_jstr(ac, "type") : "?");
        }
        mesh_table_add(t, acts.len ? acts.data : "alert row");
        mesh_buf_free(&acts);
    }
    if (mesh_table_rows(t) == 0 && !csv && !cli->quiet)
        printf("no rules\n");
    else
        mesh_cli_emit_table(cli, t, fmt);
    mesh_table_destroy(t);
    json_decref(j);
    return 0;
}

static int run_show(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    mesh_buf_t path;
    int rc = rule_path(cli, a, &path);
    if (rc != 0)
        return rc;
    mesh_client_req_t req = {.method = "GET", .path = path.data};
    const char *fmt = mesh_cli_format(cli, false);
    json_t *j = NULL;
    rc = mesh_cli_get(cli, &req, &j);
    mesh_buf_free(&path);
    if (rc != 0 || j == NULL)
        return rc;
    const char *text = mesh_cli_jstr(j, "text");
    if (strcmp(fmt, "yaml") == 0 && text) {
        fputs(text, stdout);
        if (*text && text[strlen(text) - 1] != '\n')
            putchar('\n');
        json_decref(j);
        return 0;
    }
    mesh_table_t *kv = mesh_table_create(2);
    if (kv == NULL) {
        json_decref(j);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    char cond[256];
    condition(j, cond, sizeof cond);
    static const char *const keys[] = {"name", "domain",   "product",
                                       "kind", "severity", "description"};
    for (size_t i = 0; i < MESH_ARRAY_LEN(keys); i++) {
        if (mesh_cli_jstr(j, keys[i]) == NULL)
            continue;
        mesh_table_add(kv, keys[i]);
        mesh_table_add(kv, mesh_cli_jstr(j, keys[i]));
    }
    mesh_table_add(kv, "condition");
    mesh_table_add(kv, cond);
    mesh_table_add(kv, "series");
    mesh_table_addf(kv, "%lld", (long long)mesh_cli_jint(j, "series"));
    mesh_table_add(kv, "firing");
    mesh_table_addf(kv, "%lld", (long long)mesh_cli_jint(j, "firing"));
    size_t k;
    json_t *ac;
    json_array_foreach(json_object_get(j, "actions"), k, ac)
    {
        mesh_table_addf(kv, "action %zu", k + 1);
        const char *where = mesh_cli_jstr(ac, "url")     ? mesh_cli_jstr(ac, "url")
                            : mesh_cli_jstr(ac, "topic") ? mesh_cli_jstr(ac, "topic")
                                                         : "";
        mesh_table_addf(kv, "%s %s%s", mesh_cli_jstr(ac, "type"), where,
                        mesh_cli_jstr(ac, "secret") ? " (signed)" : "");
    }
    mesh_table_print_kv(kv, stdout);
    mesh_table_destroy(kv);
    json_decref(j);
    return 0;
}

static int run_delete(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    mesh_buf_t path;
    int rc = rule_path(cli, a, &path);
    if (rc != 0)
        return rc;
    mesh_client_req_t req = {.method = "DELETE", .path = path.data};
    rc = mesh_cli_call(cli, &req, NULL);
    mesh_buf_free(&path);
    if (rc == 0 && !cli->quiet)
        printf("deleted rule %s of domain %s (its alerts stay in %s.alerts)\n", mesh_cli_pos(a, 1),
               mesh_cli_pos(a, 0), mesh_cli_pos(a, 0));
    return rc;
}

static int run_test(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    char *text, *rows = NULL;
    size_t len, rlen = 0;
    const char *rows_file = mesh_cli_arg(a, "rows");
    const char *from = mesh_cli_arg(a, "from"), *to = mesh_cli_arg(a, "to");
    const char *last = mesh_cli_arg(a, "last");
    if (!rows_file && !from && !last)
        return mesh_cli_usage(cli, "give --rows FILE, or --from TIME [--to TIME], or --last "
                                   "DURATION");
    if ((rows_file != NULL) + (from != NULL) + (last != NULL) > 1)
        return mesh_cli_usage(cli, "--rows, --from and --last exclude each other");
    if (to && !from)
        return mesh_cli_usage(cli, "--to goes with --from");
    int64_t lastns = 0;
    if (last && mesh_duration_parse(last, &lastns) != MESH_OK)
        return mesh_cli_usage(cli, "--last '%.60s' is not a duration (10m, 1h)", last);
    int rc = mesh_cli_read_input(cli, mesh_cli_pos(a, 0), MESH_RULE_MAX_BYTES, &text, &len);
    if (rc != 0)
        return rc;
    json_t *body = json_object();
    json_object_set_new(body, "rule", json_stringn(text, len));
    free(text);
    if (rows_file) {
        if ((rc = mesh_cli_read_input(cli, rows_file, 64u << 20, &rows, &rlen)) != 0) {
            json_decref(body);
            return rc;
        }
        json_t *rj = json_loadb(rows, rlen, 0, NULL);
        free(rows);
        if (!json_is_array(rj)) {
            json_decref(rj);
            json_decref(body);
            return mesh_cli_usage(cli, "--rows: a JSON array of row objects");
        }
        json_object_set_new(body, "rows", rj);
    } else if (last) {
        char t[MESH_TIME_MAX];
        mesh_time_format(mesh_now_ns() - lastns, t);
        json_object_set_new(body, "from", json_string(t));
    } else {
        json_object_set_new(body, "from", json_string(from));
        if (to)
            json_object_set_new(body, "to", json_string(to));
    }
    const char *fmt = mesh_cli_format(cli, false);
    json_t *j = NULL;
    rc = mesh_cli_send_json(cli, "POST", "/v1/rules/test", body, &j);
    json_decref(body);
    if (rc != 0)
        return rc;
    if (strcmp(fmt, "json") == 0) {
        char *s = json_dumps(j, JSON_INDENT(2));
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(j);
        return 0;
    }
    mesh_table_t *t = mesh_table_create(5);
    if (t == NULL) {
        json_decref(j);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    mesh_table_column(t, 0, "TIME", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 1, "WOULD", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 2, "SERIES", MESH_ALIGN_LEFT, 50);
    mesh_table_column(t, 3, "VALUE", MESH_ALIGN_RIGHT, 0);
    mesh_table_column(t, 4, "ROW VALUE", MESH_ALIGN_RIGHT, 0);
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(j, "events"), i, e)
    {
        char tm[MESH_CLI_TIME_MAX], v[64], s[64];
        mesh_table_add(t, mesh_cli_short_time(mesh_cli_jstr(e, "time"), tm));
        mesh_table_add(t, mesh_cli_jstr(e, "event"));
        char *series = json_dumps(json_object_get(e, "series"), JSON_COMPACT | JSON_ENCODE_ANY);
        if (series)
            mesh_cli_clean(series);
        mesh_table_add(t, series ? series : "");
        free(series);
        const char *vt = mesh_cli_json_text(json_object_get(e, "value"), v, sizeof v);
        mesh_table_add(t, vt ? vt : "");
        const char *st = mesh_cli_json_text(json_object_get(e, "sample"), s, sizeof s);
        mesh_table_add(t, st ? st : "");
    }
    if (!cli->quiet)
        printf("%lld rows evaluated (dry run: nothing stored, no action run)\n",
               (long long)mesh_cli_jint(j, "rows"));
    if (mesh_table_rows(t) == 0) {
        if (!cli->quiet)
            printf("nothing would fire\n");
    } else {
        mesh_cli_emit_table(cli, t, "table");
    }
    mesh_table_destroy(t);
    json_decref(j);
    return 0;
}

/* ---- alerts ---- */

static int alert_id_check(mesh_cli_t *cli, const char *id)
{
    const char *colon = strrchr(id, ':');
    if (colon == NULL || colon == id || colon[1] == '\0' || strlen(id) > 95)
        return mesh_cli_usage(cli, "'%.60s' is not an alert id (DOMAIN:NUMBER)", id);
    for (const char *c = colon + 1; *c; c++)
        if (*c < '0' || *c > '9')
            return mesh_cli_usage(cli, "'%.60s' is not an alert id (DOMAIN:NUMBER)", id);
    return 0;
}

static int run_alert_list(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    mesh_buf_t path;
    mesh_buf_init(&path, 4096);
    mesh_buf_adds(&path, "/v1/alerts?state=");
    const char *state = mesh_cli_arg(a, "state");
    mesh_client_escape(&path, state ? state : "open");
    const char *domain = mesh_cli_arg(a, "domain"), *rule = mesh_cli_arg(a, "rule");
    if (domain) {
        int rc = mesh_cli_domain_name(cli, domain);
        if (rc != 0) {
            mesh_buf_free(&path);
            return rc;
        }
        mesh_buf_adds(&path, "&domain=");
        mesh_client_escape(&path, domain);
    }
    if (rule) {
        mesh_buf_adds(&path, "&rule=");
        mesh_client_escape(&path, rule);
    }
    int64_t limit;
    int rc = mesh_cli_arg_int(cli, a, "limit", 100, 1, 10000, &limit);
    if (rc != 0) {
        mesh_buf_free(&path);
        return rc;
    }
    mesh_buf_printf(&path, "&limit=%lld", (long long)limit);
    static const mesh_cli_col_t cols[] = {
        {"alert_id", "ID", MESH_ALIGN_LEFT, 0},       {"rule", "RULE", MESH_ALIGN_LEFT, 0},
        {"series", "SERIES", MESH_ALIGN_LEFT, 40},    {"state", "STATE", MESH_ALIGN_LEFT, 0},
        {"severity", "SEVERITY", MESH_ALIGN_LEFT, 0}, {"value", "VALUE", MESH_ALIGN_RIGHT, 0},
        {"fired_at", "FIRED", MESH_ALIGN_LEFT, 0},    {"updated_at", "UPDATED", MESH_ALIGN_LEFT, 0},
    };
    const char *fmt = mesh_cli_format(cli, false);
    mesh_client_req_t req = {.method = "GET", .path = path.data};
    json_t *j = NULL;
    mesh_table_t *t = NULL;
    bool csv = false;
    rc = mesh_cli_list(cli, &req, cols, MESH_ARRAY_LEN(cols), &j, &t, &csv);
    mesh_buf_free(&path);
    if (rc != 0 || j == NULL)
        return rc;
    size_t i;
    json_t *al;
    json_array_foreach(json_object_get(j, "alerts"), i, al)
    {
        char v[64], f[MESH_CLI_TIME_MAX], u[MESH_CLI_TIME_MAX];
        mesh_table_add(t, mesh_cli_jstr(al, "alert_id"));
        mesh_table_add(t, mesh_cli_jstr(al, "rule"));
        char *series = mesh_cli_jstr(al, "series") ? strdup(mesh_cli_jstr(al, "series")) : NULL;
        if (series)
            mesh_cli_clean(series);
        mesh_table_add(t, series ? series : "");
        free(series);
        mesh_table_add(t, mesh_cli_jstr(al, "state"));
        mesh_table_add(t, mesh_cli_jstr(al, "severity"));
        const char *vt = mesh_cli_json_text(json_object_get(al, "value"), v, sizeof v);
        mesh_table_add(t, vt ? vt : "");
        mesh_table_add(t, csv ? mesh_cli_jstr(al, "fired_at")
                              : mesh_cli_short_time(mesh_cli_jstr(al, "fired_at"), f));
        mesh_table_add(t, csv ? mesh_cli_jstr(al, "updated_at")
                              : mesh_cli_short_time(mesh_cli_jstr(al, "updated_at"), u));
    }
    if (mesh_table_rows(t) == 0 && !csv && !cli->quiet)
        printf("no alerts\n");
    else
        mesh_cli_emit_table(cli, t, fmt);
    mesh_table_destroy(t);
    json_decref(j);
    return 0;
}

static int run_alert_show(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *id = mesh_cli_pos(a, 0);
    int rc = alert_id_check(cli, id);
    if (rc != 0)
        return rc;
    mesh_buf_t path;
    if ((rc = mesh_cli_path(cli, &path, "/v1/alerts/", id)) != 0)
        return rc;
    mesh_client_req_t req = {.method = "GET", .path = path.data};
    json_t *j = NULL;
    rc = mesh_cli_get(cli, &req, &j);
    mesh_buf_free(&path);
    if (rc != 0 || j == NULL)
        return rc;
    mesh_table_t *kv = mesh_table_create(2);
    static const char *const keys[] = {"alert_id",    "rule",        "product",  "series",
                                       "state",       "severity",    "value",    "first_value",
                                       "fired_at",    "updated_at",  "acked_at", "acked_by",
                                       "resolved_at", "resolved_by", "note"};
    for (size_t i = 0; kv && i < MESH_ARRAY_LEN(keys); i++) {
        char v[96];
        const char *s = mesh_cli_json_text(json_object_get(j, keys[i]), v, sizeof v);
        if (s == NULL || *s == '\0')
            continue;
        char *c = strdup(s);
        if (c)
            mesh_cli_clean(c);
        mesh_table_add(kv, keys[i]);
        mesh_table_add(kv, c ? c : "");
        free(c);
    }
    if (kv)
        mesh_table_print_kv(kv, stdout);
    mesh_table_destroy(kv);
    mesh_table_t *t = mesh_table_create(5);
    if (t) {
        mesh_table_column(t, 0, "TIME", MESH_ALIGN_LEFT, 0);
        mesh_table_column(t, 1, "EVENT", MESH_ALIGN_LEFT, 0);
        mesh_table_column(t, 2, "VALUE", MESH_ALIGN_RIGHT, 0);
        mesh_table_column(t, 3, "BY", MESH_ALIGN_LEFT, 0);
        mesh_table_column(t, 4, "NOTE", MESH_ALIGN_LEFT, 40);
        size_t i;
        json_t *h;
        json_array_foreach(json_object_get(j, "history"), i, h)
        {
            char tm[MESH_CLI_TIME_MAX], v[64];
            mesh_table_add(t, mesh_cli_short_time(mesh_cli_jstr(h, "time"), tm));
            mesh_table_add(t, mesh_cli_jstr(h, "event"));
            const char *vt = mesh_cli_json_text(json_object_get(h, "value"), v, sizeof v);
            mesh_table_add(t, vt ? vt : "");
            mesh_table_add(t, mesh_cli_jstr(h, "by") ? mesh_cli_jstr(h, "by") : "");
            mesh_table_add(t, mesh_cli_jstr(h, "note") ? mesh_cli_jstr(h, "note") : "");
        }
        printf("\nhistory:\n");
        mesh_cli_emit_table(cli, t, "table");
        mesh_table_destroy(t);
    }
    json_decref(j);
    return 0;
}

static int alert_op(mesh_cli_t *cli, const mesh_cli_args_t *a, const char *verb)
{
    const char *id = mesh_cli_pos(a, 0);
    int rc = alert_id_check(cli, id);
    if (rc != 0)
        return rc;
    const char *note = mesh_cli_arg(a, "note");
    if (note && strlen(note) > 255)
        return mesh_cli_usage(cli, "--note: at most 255 bytes");
    mesh_buf_t path;
    if ((rc = mesh_cli_path(cli, &path, "/v1/alerts/", id)) != 0)
        return rc;
    mesh_buf_printf(&path, "/%s", verb);
    json_t *body = json_object();
    if (note)
        json_object_set_new(body, "note", json_string(note));
    json_t *j = NULL;
    rc = mesh_cli_send_json(cli, "POST", path.data, body, &j);
    json_decref(body);
    mesh_buf_free(&path);
    if (rc == 0 && !cli->quiet)
        printf("alert %s %s by %s\n", id, mesh_cli_jstr(j, "state"), mesh_cli_jstr(j, "by"));
    json_decref(j);
    return rc;
}

static int run_alert_ack(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    return alert_op(cli, a, "ack");
}

static int run_alert_resolve(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    return alert_op(cli, a, "resolve");
}

static const mesh_cli_opt_t list_opts[] = {
    {"domain", 0, "DOMAIN", 0, "Only this domain's rules."},
    {NULL, 0, NULL, 0, NULL},
};

static const mesh_cli_opt_t test_opts[] = {
    {"rows", 0, "FILE", 0, "Rows to evaluate: a JSON array of row objects ('-': stdin)."},
    {"from", 0, "TIME", 0, "Evaluate the product's stored rows from this time (ISO 8601)."},
    {"to", 0, "TIME", 0, "... up to this time (default: now)."},
    {"last", 0, "DURATION", 0, "Evaluate the stored rows of the last DURATION (10m, 1h)."},
    {NULL, 0, NULL, 0, NULL},
};

static const mesh_cli_opt_t alert_list_opts[] = {
    {"domain", 0, "DOMAIN", 0, "Only this domain's alerts."},
    {"state", 0, "STATE", 0,
     "open (default: firing or acknowledged), firing, acknowledged, resolved or all."},
    {"rule", 0, "NAME", 0, "Only this rule's alerts."},
    {"limit", 0, "N", 0, "At most N alerts per domain, newest first (default 100)."},
    {NULL, 0, NULL, 0, NULL},
};

static const mesh_cli_opt_t note_opts[] = {
    {"note", 0, "TEXT", 0, "Why (at most 255 bytes), kept in the alert's history."},
    {NULL, 0, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_rule_cmds[] = {
    {
        .name = "rule create",
        .usage = "FILE",
        .summary = "Create or replace a rule (YAML or JSON).",
        .text = "Sends a rule definition (docs/rules.md) to the node. The rule's domain and\n"
                "product are in the file; a rule of the same name in that domain is\n"
                "replaced (its series keep their state unless the kind, product or column\n"
                "changed). The first rule of a domain creates its alerts and alert_events\n"
                "products. Needs administration of the domain.",
        .formats = "table|json",
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl rule create examples/healthcare/rules/spo2-low.yaml\n"
                    "meshctl rule create - < rule.json",
        .exits = "0  created or updated\n"
                 "2  not a valid rule (the message names the key and the line)\n"
                 "3  no such domain, product or column\n"
                 "4  not an administrator of the domain\n"
                 "5  a product named alerts exists that is not meshd's",
        .run = run_create,
    },
    {
        .name = "rule list",
        .usage = "[--domain DOMAIN] [OPTIONS]",
        .summary = "List rules with their series and firing counts.",
        .text = "Lists the rules of the domains you may read: the condition, how many series\n"
                "each watches and how many of them fire now, and the actions.",
        .formats = "table|json|csv",
        .opts = list_opts,
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl rule list\nmeshctl rule list --domain icu-3 --format json",
        .exits = "0  listed\n"
                 "3  no such domain",
        .run = run_list,
    },
    {
        .name = "rule show",
        .usage = "DOMAIN NAME",
        .summary = "Show one rule.",
        .text = "Shows a rule: its condition, actions, series and firing counts. --format yaml\n"
                "prints the definition as it was sent (administrators of the domain only: it\n"
                "may hold a webhook secret).",
        .formats = "table|json|yaml",
        .min_args = 2,
        .max_args = 2,
        .examples = "meshctl rule show icu-3 spo2-low\nmeshctl rule show icu-3 spo2-low "
                    "--format yaml > spo2-low.yaml",
        .exits = "0  shown\n"
                 "3  no such domain or rule",
        .run = run_show,
    },
    {
        .name = "rule delete",
        .usage = "DOMAIN NAME",
        .summary = "Delete a rule and its series state.",
        .text = "Deletes a rule with the state of its series. Its alerts stay in the domain's\n"
                "alerts product (history). Needs administration of the domain.",
        .min_args = 2,
        .max_args = 2,
        .examples = "meshctl rule delete factory-a vibration-high",
        .exits = "0  deleted\n"
                 "3  no such domain or rule\n"
                 "4  not an administrator of the domain",
        .run = run_delete,
    },
    {
        .name = "rule test",
        .usage = "FILE (--rows FILE | --from TIME [--to TIME] | --last DURATION)",
        .summary = "Dry run: what a rule would fire on given or stored rows.",
        .text = "Evaluates a rule (not stored) from a fresh state over rows given in a file,\n"
                "or over the product's stored rows of a time range (read as you: your masks\n"
                "and row filters apply), and prints each alert it would fire or resolve.\n"
                "Nothing is stored and no action runs. Absence rules are checked before each\n"
                "row and at the end of the range.",
        .formats = "table|json",
        .opts = test_opts,
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl rule test spo2-low.yaml --last 6h\n"
                    "meshctl rule test hot.yaml --rows readings.json",
        .exits = "0  evaluated (whether or not anything would fire)\n"
                 "2  not a valid rule, or rows that do not fit the product\n"
                 "3  no such domain or product\n"
                 "4  you may not read the product",
        .run = run_test,
    },
    {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_alert_cmds[] = {
    {
        .name = "alert list",
        .usage = "[--domain DOMAIN] [--state STATE] [--rule NAME] [--limit N] [OPTIONS]",
        .summary = "List alerts (open ones by default).",
        .text = "Lists alerts of the domains you may read, newest first: read from each\n"
                "domain's alerts product as you (your masks and row filters apply).",
        .formats = "table|json|csv",
        .opts = alert_list_opts,
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl alert list\nmeshctl alert list --domain icu-3 --state all",
        .exits = "0  listed\n"
                 "2  a bad state or limit\n"
                 "3  no such domain",
        .run = run_alert_list,
    },
    {
        .name = "alert show",
        .usage = "ID",
        .summary = "Show an alert and its history.",
        .text = "Shows an alert (ids look like DOMAIN:NUMBER) and every transition it went\n"
                "through: fired, acknowledged, resolved, with who and when.",
        .formats = "table|json",
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl alert show icu-3:17",
        .exits = "0  shown\n"
                 "3  no such alert",
        .run = run_alert_show,
    },
    {
        .name = "alert ack",
        .usage = "ID [--note TEXT]",
        .summary = "Acknowledge a firing alert.",
        .text = "Marks a firing alert acknowledged: someone is on it. It still resolves when\n"
                "its condition clears. Needs write on the domain's alerts product.",
        .opts = note_opts,
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl alert ack icu-3:17 --note 'nurse on the way'",
        .exits = "0  acknowledged\n"
                 "3  no such alert\n"
                 "4  not allowed\n"
                 "5  acknowledged or resolved already",
        .run = run_alert_ack,
    },
    {
        .name = "alert resolve",
        .usage = "ID [--note TEXT]",
        .summary = "Resolve an alert by hand.",
        .text = "Resolves a firing or acknowledged alert. While its condition still holds the\n"
                "rule raises no new alert for that series; once the condition clears it is\n"
                "armed again. Needs write on the domain's alerts product.",
        .opts = note_opts,
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl alert resolve factory-a:5 --note 'sensor replaced'",
        .exits = "0  resolved\n"
                 "3  no such alert\n"
                 "4  not allowed\n"
                 "5  resolved already",
        .run = run_alert_resolve,
    },
    {NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, NULL, 0, NULL},
};
