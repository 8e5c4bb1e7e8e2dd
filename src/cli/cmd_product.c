/*
 * cmd_product.c - `meshctl product apply|list|show|export|history|diff|delete|quarantine`:
 * contracts (POST /v1/contracts), the products they define (/v1/products) and the history of
 * their contracts.
 */
#include <string.h>

#include "cli/cli.h"
#include "core/util.h"

#define CONTRACT_MAX ((size_t)16 << 20) /* bytes of one contract file */

/* "/v1/products/D/P" + suffix from a DOMAIN.PRODUCT argument. */
static int product_path(mesh_cli_t *cli, const char *arg, const char *suffix, mesh_buf_t *b)
{
    char d[MESH_NAME_MAX + 1], p[MESH_NAME_MAX + 1];
    int rc = mesh_cli_product_name(cli, arg, d, p);
    if (rc != 0)
        return rc;
    mesh_buf_init(b, 4096);
    if (mesh_buf_printf(b, "/v1/products/%s/%s%s", d, p, suffix ? suffix : "") != MESH_OK) {
        mesh_buf_free(b);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    return 0;
}

static void join_strings(const json_t *a, const char *sep, mesh_buf_t *out)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (i)
            mesh_buf_adds(out, sep);
        mesh_buf_adds(out, json_string_value(v) ? json_string_value(v) : "");
    }
}

/* ---- apply ---- */

static int apply_one(mesh_cli_t *cli, const char *file, bool dry_run)
{
    char *text;
    size_t len;
    int rc = mesh_cli_read_input(cli, file, CONTRACT_MAX, &text, &len);
    if (rc != 0)
        return rc;
    const char *shown = strcmp(file, "-") == 0 ? "(stdin)" : file;
    mesh_client_req_t req = {.method = "POST",
                             .path = dry_run ? "/v1/contracts?dry_run=true" : "/v1/contracts",
                             .content_type = "application/yaml",
                             .body = text,
                             .body_len = len};
    mesh_client_result_t res;
    if (mesh_client_do(cli->client, &req, &res) != MESH_OK) {
        rc = mesh_cli_report(cli, &res, shown);
        mesh_client_result_free(&res);
        free(text);
        return rc;
    }
    json_t *j = json_loadb(res.body.data ? res.body.data : "", res.body.len, 0, NULL);
    if (j == NULL) {
        rc =
            mesh_cli_fail(cli, MESH_INTERNAL, "%s: the answer from %s is not JSON", shown, res.url);
    } else if (!cli->quiet) {
        mesh_buf_t prods;
        mesh_buf_init(&prods, 1 << 20);
        join_strings(json_object_get(j, "products"), ", ", &prods);
        printf("%s: %s%s %s %s (%s)\n", shown, dry_run ? "would be " : "",
               mesh_cli_jstr(j, "outcome"), mesh_cli_jstr(j, "contract"),
               mesh_cli_jstr(j, "version"), prods.data ? prods.data : "");
        mesh_cli_print_details(stdout, json_object_get(j, "changes"), (size_t)-1);
        mesh_buf_free(&prods);
    }
    json_decref(j);
    mesh_client_result_free(&res);
    free(text);
    return rc;
}

static int run_apply(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    int first_rc = 0;
    for (int i = 0; i < mesh_cli_npos(a); i++) {
        int rc = apply_one(cli, mesh_cli_pos(a, i), mesh_cli_flag(a, "dry-run"));
        if (rc != 0 && first_rc == 0)
            first_rc = rc;
    }
    return first_rc;
}

/* ---- list ---- */

static int run_list(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *fmt = mesh_cli_format(cli, false);
    const char *dom = mesh_cli_arg(a, "domain");
    int rc;
    if (dom && (rc = mesh_cli_domain_name(cli, dom)) != 0)
        return rc;
    mesh_buf_t path;
    mesh_buf_init(&path, 4096);
    mesh_buf_adds(&path, "/v1/products");
    if (dom) {
        mesh_buf_adds(&path, "?domain=");
        mesh_client_escape(&path, dom);
    }
    mesh_client_req_t req = {.method = "GET", .path = path.data};
    json_t *j = NULL;
    rc = mesh_cli_get(cli, &req, &j);
    mesh_buf_free(&path);
    if (rc != 0 || j == NULL)
        return rc;
    bool csv = strcmp(fmt, "csv") == 0;
    mesh_table_t *t = mesh_table_create(6);
    if (t == NULL) {
        json_decref(j);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    mesh_table_column(t, 0, csv ? "product" : "PRODUCT", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 1, csv ? "version" : "VERSION", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 2, csv ? "rows" : "ROWS", MESH_ALIGN_RIGHT, 0);
    mesh_table_column(t, 3, csv ? "last_write" : "LAST WRITE", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 4, csv ? "columns" : "COLUMNS", MESH_ALIGN_RIGHT, 0);
    mesh_table_column(t, 5, csv ? "description" : "DESCRIPTION", MESH_ALIGN_LEFT, 50);
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(j, "products"), i, p)
    {
        char when[MESH_CLI_TIME_MAX];
        const char *lw = mesh_cli_jstr(p, "last_write");
        mesh_table_add(t, mesh_cli_jstr(p, "sql_name"));
        mesh_table_add(t, mesh_cli_jstr(json_object_get(p, "contract"), "version"));
        mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(p, "rows"));
        mesh_table_add(t, csv ? lw : lw ? mesh_cli_short_time(lw, when) : "-");
        mesh_table_addf(t, "%zu", json_array_size(json_object_get(p, "columns")));
        mesh_table_add(t, mesh_cli_jstr(p, "description") ? mesh_cli_jstr(p, "description") : "");
    }
    mesh_cli_emit_table(cli, t, fmt);
    mesh_table_destroy(t);
    json_decref(j);
    return 0;
}

/* ---- show ---- */

static void constraint(mesh_buf_t *b, const char *what, const char *v)
{
    if (b->len)
        mesh_buf_adds(b, ", ");
    mesh_buf_adds(b, what);
    mesh_buf_adds(b, v);
}

/* The checks of a column in a few words: ">= -50, <= 200, pattern ^[a-z]+$". */
static void constraints(const json_t *c, mesh_buf_t *b)
{
    static const char *const bounds[][2] = {
        {"minimum", ">= "},         {"exclusiveMinimum", "> "},  {"maximum", "<= "},
        {"exclusiveMaximum", "< "}, {"minLength", "length >= "}, {"maxLength", "length <= "},
        {"pattern", "pattern "},    {"format", "format "}};
    char tmp[64];
    for (size_t i = 0; i < MESH_ARRAY_LEN(bounds); i++) {
        json_t *v = json_object_get(c, bounds[i][0]);
        const char *s = v ? mesh_cli_json_text(v, tmp, sizeof tmp) : NULL;
        size_t n = s ? strlen(s) : 0;
        if (json_is_real(v) && n > 2 && strcmp(s + n - 2, ".0") == 0)
            tmp[n - 2] = '\0'; /* bounds read better as written: 200, not 200.0 */
        if (s)
            constraint(b, bounds[i][1], s);
    }
    json_t *e = json_object_get(c, "enum");
    if (json_array_size(e)) {
        mesh_buf_t list;
        mesh_buf_init(&list, 64 * 1024);
        join_strings(e, "|", &list);
        constraint(b, "one of ", list.data ? list.data : "");
        mesh_buf_free(&list);
    }
    if (json_is_true(json_object_get(c, "unique")))
        constraint(b, "unique", "");
    if (json_is_true(json_object_get(c, "time_column")))
        constraint(b, "time column", "");
}

static int run_show(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    mesh_buf_t path;
    int rc = product_path(cli, mesh_cli_pos(a, 0), NULL, &path);
    if (rc != 0)
        return rc;
    mesh_client_req_t req = {.method = "GET", .path = path.data};
    json_t *j = NULL;
    rc = strcmp(mesh_cli_format(cli, false), "json") == 0 ? mesh_cli_raw(cli, &req)
                                                          : mesh_cli_call(cli, &req, &j);
    mesh_buf_free(&path);
    if (rc != 0 || j == NULL)
        return rc;
    const json_t *cols = json_object_get(j, "columns"), *pk = json_object_get(j, "primary_key");
    const json_t *cls = json_object_get(j, "classifications");
    size_t i, ncols = 7;
    json_t *c;
    json_array_foreach(cols, i, c)
    {
        if (mesh_cli_jstr(c, "classification"))
            ncols = 8;
    }
    if (json_array_size(json_object_get(cls, "columns")))
        ncols = 8;
    mesh_table_t *kv = mesh_table_create(2), *t = mesh_table_create(ncols),
                 *st = mesh_table_create(2);
    if (kv == NULL || t == NULL || st == NULL) {
        mesh_table_destroy(kv);
        mesh_table_destroy(t);
        mesh_table_destroy(st);
        json_decref(j);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    const json_t *con = json_object_get(j, "contract");
    mesh_buf_t owners, tags, key;
    mesh_buf_init(&owners, 1 << 20);
    mesh_buf_init(&tags, 1 << 20);
    mesh_buf_init(&key, 1 << 20);
    join_strings(json_object_get(j, "owners"), ", ", &owners);
    join_strings(json_object_get(j, "tags"), ", ", &tags);
    join_strings(json_object_get(j, "primary_key"), ", ", &key);
    mesh_table_add(kv, "product");
    mesh_table_add(kv, mesh_cli_jstr(j, "sql_name"));
    mesh_table_add(kv, "description");
    mesh_table_add(kv, mesh_cli_jstr(j, "description"));
    mesh_table_add(kv, "contract");
    mesh_table_addf(kv, "%s %s (%s, ODCS %s)", mesh_cli_jstr(con, "id"),
                    mesh_cli_jstr(con, "version"), mesh_cli_jstr(con, "status"),
                    mesh_cli_jstr(con, "api_version"));
    mesh_table_add(kv, "owners");
    mesh_table_add(kv, owners.len ? owners.data : NULL);
    mesh_table_add(kv, "tags");
    mesh_table_add(kv, tags.len ? tags.data : NULL);
    mesh_table_add(kv, "time column");
    mesh_table_add(kv, mesh_cli_jstr(j, "time_column"));
    mesh_table_add(kv, "primary key");
    mesh_table_add(kv, key.len ? key.data : NULL);
    mesh_table_add(kv, "bad rows");
    mesh_table_add(kv, mesh_cli_jstr(j, "on_invalid"));
    mesh_table_print_kv(kv, stdout);

    static const char *const heads[] = {"NAME", "TYPE",        "REQUIRED",    "KEY",
                                        "UNIT", "CONSTRAINTS", "DESCRIPTION", "CLASS"};
    for (size_t h = 0; h < ncols; h++)
        mesh_table_column(t, h, heads[h], MESH_ALIGN_LEFT, h == 6 ? 50 : h == 5 ? 60 : 0);
    json_array_foreach(cols, i, c)
    {
        const char *name = mesh_cli_jstr(c, "name");
        size_t k, pos = 0;
        json_t *kn;
        json_array_foreach(pk, k, kn)
        {
            if (name && json_string_value(kn) && strcmp(json_string_value(kn), name) == 0)
                pos = k + 1;
        }
        mesh_buf_t cons;
        mesh_buf_init(&cons, 1 << 20);
        constraints(c, &cons);
        mesh_table_add(t, name);
        mesh_table_add(t, mesh_cli_jstr(c, "type"));
        mesh_table_add(t, json_is_true(json_object_get(c, "required")) ? "yes" : "no");
        if (pos)
            mesh_table_addf(t, "%zu", pos);
        else
            mesh_table_add(t, "");
        mesh_table_add(t, mesh_cli_jstr(c, "unit") ? mesh_cli_jstr(c, "unit") : "");
        mesh_table_add(t, cons.data ? cons.data : "");
        mesh_table_add(t, mesh_cli_jstr(c, "description") ? mesh_cli_jstr(c, "description") : "");
        if (ncols == 8) {
            /* the effective classification and tags (approved ones too), else the contract's */
            const json_t *ec = NULL;
            size_t x;
            json_t *e;
            json_array_foreach(json_object_get(cls, "columns"), x, e)
            {
                if (name && mesh_cli_jstr(e, "name") && strcmp(mesh_cli_jstr(e, "name"), name) == 0)
                    ec = e;
            }
            mesh_buf_t cl;
            mesh_buf_init(&cl, 1 << 16);
            const char *level =
                ec ? mesh_cli_jstr(ec, "classification") : mesh_cli_jstr(c, "classification");
            if (level)
                mesh_buf_adds(&cl, level);
            if (ec && json_array_size(json_object_get(ec, "tags"))) {
                mesh_buf_adds(&cl, level ? " [" : "[");
                join_strings(json_object_get(ec, "tags"), ", ", &cl);
                mesh_buf_addc(&cl, ']');
            }
            mesh_table_add(t, cl.len ? cl.data : "");
            mesh_buf_free(&cl);
        }
        mesh_buf_free(&cons);
    }
    putchar('\n');
    mesh_table_print(t, stdout, false);

    char tmp[32], when[MESH_CLI_TIME_MAX];
    mesh_table_add(st, "rows");
    mesh_table_addf(st, "%lld", (long long)mesh_cli_jint(j, "rows"));
    mesh_table_add(st, "quarantined");
    mesh_table_addf(st, "%lld", (long long)mesh_cli_jint(j, "quarantined"));
    mesh_table_add(st, "size");
    mesh_table_add(st, mesh_cli_bytes(mesh_cli_jint(j, "bytes"), tmp, sizeof tmp));
    mesh_table_add(st, "last write");
    mesh_table_add(st, mesh_cli_short_time(mesh_cli_jstr(j, "last_write"), when));
    const json_t *qj = json_object_get(j, "quality");
    const json_t *score = json_object_get(qj, "score");
    mesh_table_add(st, "quality");
    if (json_is_number(score))
        mesh_table_addf(st, "%.1f / 100 (%lld rules passed, %lld failed; meshctl quality %s)",
                        json_number_value(score), (long long)mesh_cli_jint(qj, "rules_passed"),
                        (long long)mesh_cli_jint(qj, "rules_failed"), mesh_cli_pos(a, 0));
    else
        mesh_table_add(st, "- (not measured yet)");
    const json_t *fr = json_object_get(qj, "freshness");
    if (json_object_get(fr, "latency_ok") || json_object_get(fr, "frequency_ok")) {
        bool ok = !json_is_false(json_object_get(fr, "latency_ok")) &&
                  !json_is_false(json_object_get(fr, "frequency_ok"));
        mesh_table_add(st, "freshness");
        mesh_table_add(st, ok ? "within the contract's SLA" : "SLA BREACHED (latency/frequency)");
    }
    putchar('\n');
    mesh_table_print_kv(st, stdout);

    /* lineage, classification and the policies that govern the product */
    mesh_table_t *gv = mesh_table_create(2);
    if (gv) {
        const json_t *lin = json_object_get(j, "lineage"), *pol = json_object_get(j, "policies");
        mesh_buf_t b;
        mesh_buf_init(&b, 1 << 20);
        mesh_table_add(gv, "derived");
        mesh_table_add(gv, json_is_true(json_object_get(lin, "derived"))
                               ? (mesh_cli_jstr(lin, "kind") ? mesh_cli_jstr(lin, "kind") : "yes")
                               : "no (a source product)");
        static const char *const dirs[] = {"upstream", "downstream"};
        for (size_t d = 0; d < 2; d++) {
            mesh_buf_reset(&b);
            join_strings(json_object_get(lin, dirs[d]), ", ", &b);
            mesh_table_add(gv, dirs[d]);
            mesh_table_add(gv, b.len ? b.data : "(none)");
        }
        if (mesh_cli_jint(lin, "hidden") > 0) {
            mesh_table_add(gv, "hidden");
            mesh_table_addf(gv, "%lld products you may not read",
                            (long long)mesh_cli_jint(lin, "hidden"));
        }
        mesh_buf_reset(&b);
        join_strings(json_object_get(cls, "tags"), ", ", &b);
        mesh_table_add(gv, "classification");
        mesh_table_addf(gv, "%s%s%s%s",
                        mesh_cli_jstr(cls, "classification") ? mesh_cli_jstr(cls, "classification")
                                                             : "none",
                        b.len ? " (tags: " : "", b.len ? b.data : "", b.len ? ")" : "");
        mesh_table_add(gv, "retention");
        if (json_is_integer(json_object_get(pol, "retention_s"))) {
            long long sec = (long long)mesh_cli_jint(pol, "retention_s");
            static const struct {
                long long n;
                char u;
            } units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
            size_t u = 0;
            while (u < 3 && sec % units[u].n != 0)
                u++;
            mesh_table_addf(gv, "%lld%c (rows older than this are deleted)", sec / units[u].n,
                            units[u].u);
        } else {
            mesh_table_add(gv, "forever");
        }
        mesh_table_add(gv, "legal hold");
        if (json_is_true(json_object_get(pol, "legal_hold")))
            mesh_table_addf(gv, "HELD on %s: %s", mesh_cli_jstr(pol, "held_on"),
                            mesh_cli_jstr(pol, "hold_reason"));
        else
            mesh_table_add(gv, "none");
        mesh_table_add(gv, "residency");
        mesh_table_add(gv, mesh_cli_jstr(pol, "residency") &&
                                   strcmp(mesh_cli_jstr(pol, "residency"), "local") == 0
                               ? "local (rows never leave this node)"
                               : "any");
        mesh_table_add(gv, "egress");
        if (mesh_cli_jstr(pol, "egress") &&
            strcmp(mesh_cli_jstr(pol, "egress"), "aggregates-only") == 0)
            mesh_table_addf(gv, "aggregates-only (groups of at least %lld%s%s)",
                            (long long)mesh_cli_jint(pol, "min_group_size"),
                            mesh_cli_jstr(pol, "privacy_unit") ? " distinct " : "",
                            mesh_cli_jstr(pol, "privacy_unit") ? mesh_cli_jstr(pol, "privacy_unit")
                                                               : "");
        else
            mesh_table_add(gv, "any");
        putchar('\n');
        mesh_table_print_kv(gv, stdout);
        mesh_buf_free(&b);
        mesh_table_destroy(gv);
    }

    mesh_buf_free(&owners);
    mesh_buf_free(&tags);
    mesh_buf_free(&key);
    mesh_table_destroy(kv);
    mesh_table_destroy(t);
    mesh_table_destroy(st);
    json_decref(j);
    return 0;
}

/* ---- export, delete, quarantine ---- */

static int run_export(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    mesh_buf_t q;
    mesh_buf_init(&q, 256);
    mesh_buf_adds(&q, "/contract");
    const char *version = mesh_cli_arg(a, "version");
    if (mesh_cli_flag(a, "whole"))
        mesh_buf_adds(&q, "?whole=true");
    if (version) {
        mesh_buf_adds(&q, mesh_cli_flag(a, "whole") ? "&version=" : "?version=");
        mesh_client_escape(&q, version);
    }
    mesh_buf_t path;
    int rc = product_path(cli, mesh_cli_pos(a, 0), q.data, &path);
    mesh_buf_free(&q);
    if (rc != 0)
        return rc;
    mesh_client_req_t req = {.method = "GET", .path = path.data, .accept = "application/yaml"};
    rc = mesh_cli_raw(cli, &req);
    mesh_buf_free(&path);
    return rc;
}

/* ---- history, diff ---- */

static int run_history(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    mesh_buf_t path;
    int rc = product_path(cli, mesh_cli_pos(a, 0), "/history", &path);
    if (rc != 0)
        return rc;
    const char *fmt = mesh_cli_format(cli, false);
    mesh_client_req_t req = {.method = "GET", .path = path.data};
    json_t *j = NULL;
    rc = mesh_cli_get(cli, &req, &j);
    mesh_buf_free(&path);
    if (rc != 0 || j == NULL)
        return rc;
    bool csv = strcmp(fmt, "csv") == 0;
    const char *current = mesh_cli_jstr(j, "current");
    mesh_table_t *t = mesh_table_create(4);
    if (t == NULL) {
        json_decref(j);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    mesh_table_column(t, 0, csv ? "version" : "VERSION", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 1, csv ? "applied" : "APPLIED", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 2, csv ? "log_seq" : "LOG SEQ", MESH_ALIGN_RIGHT, 0);
    mesh_table_column(t, 3, csv ? "current" : "", MESH_ALIGN_LEFT, 0);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "versions"), i, v)
    {
        char when[MESH_CLI_TIME_MAX];
        const char *ver = mesh_cli_jstr(v, "version");
        const char *at = mesh_cli_jstr(v, "applied");
        bool cur = ver && current && strcmp(ver, current) == 0;
        mesh_table_add(t, ver);
        mesh_table_add(t, csv ? at : mesh_cli_short_time(at, when));
        mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(v, "seq"));
        mesh_table_add(t, csv ? (cur ? "true" : "false") : (cur ? "(current)" : ""));
    }
    if (!csv)
        printf("contract %s\n", mesh_cli_jstr(j, "contract") ? mesh_cli_jstr(j, "contract") : "-");
    mesh_cli_emit_table(cli, t, fmt);
    mesh_table_destroy(t);
    json_decref(j);
    return 0;
}

static int run_diff(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *from = mesh_cli_pos(a, 1), *to = mesh_cli_pos(a, 2);
    mesh_buf_t q;
    mesh_buf_init(&q, 256);
    mesh_buf_adds(&q, "/diff?from=");
    mesh_client_escape(&q, from);
    if (to) {
        mesh_buf_adds(&q, "&to=");
        mesh_client_escape(&q, to);
    }
    mesh_buf_t path;
    int rc = product_path(cli, mesh_cli_pos(a, 0), q.data, &path);
    mesh_buf_free(&q);
    if (rc != 0)
        return rc;
    const char *fmt = mesh_cli_format(cli, false);
    mesh_client_req_t req = {.method = "GET", .path = path.data};
    json_t *j = NULL;
    rc = mesh_cli_call(cli, &req, &j);
    mesh_buf_free(&path);
    if (rc != 0 || j == NULL)
        return rc;
    bool breaking = json_is_true(json_object_get(j, "breaking"));
    const json_t *changes = json_object_get(j, "changes");
    if (strcmp(fmt, "json") == 0) {
        char *out = json_dumps(j, JSON_COMPACT);
        if (out) {
            puts(out);
            free(out);
        }
    } else if (strcmp(fmt, "csv") == 0) {
        mesh_table_t *t = mesh_table_create(2);
        if (t == NULL) {
            json_decref(j);
            return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
        }
        mesh_table_column(t, 0, "change", MESH_ALIGN_LEFT, 0);
        mesh_table_column(t, 1, "breaking", MESH_ALIGN_LEFT, 0);
        size_t i;
        json_t *c;
        json_array_foreach(changes, i, c)
        {
            mesh_table_add(t, mesh_cli_jstr(c, "change"));
            mesh_table_add(t, json_is_true(json_object_get(c, "breaking")) ? "true" : "false");
        }
        mesh_cli_emit_table(cli, t, fmt);
        mesh_table_destroy(t);
    } else {
        printf("%s: %s -> %s: ", mesh_cli_pos(a, 0), mesh_cli_jstr(j, "from"),
               mesh_cli_jstr(j, "to"));
        size_t n = json_array_size(changes);
        if (n == 0)
            printf("no change to this product\n");
        else
            printf("%zu change%s, %s\n", n, n == 1 ? "" : "s",
                   breaking ? "BREAKING for consumers" : "compatible with consumers");
        size_t i;
        json_t *c;
        json_array_foreach(changes, i, c)
        {
            bool b = json_is_true(json_object_get(c, "breaking"));
            char text[600];
            snprintf(text, sizeof text, "%s",
                     mesh_cli_jstr(c, "change") ? mesh_cli_jstr(c, "change") : "");
            mesh_cli_clean(text);
            printf("  %s %s\n", b ? "!" : "+", text);
        }
    }
    json_decref(j);
    if (breaking && mesh_cli_flag(a, "fail-on-breaking"))
        return mesh_status_exit(MESH_BREAKING);
    return 0;
}

static int run_delete(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    mesh_buf_t path;
    int rc = product_path(cli, mesh_cli_pos(a, 0), NULL, &path);
    if (rc != 0)
        return rc;
    mesh_client_req_t req = {.method = "DELETE", .path = path.data};
    rc = mesh_cli_call(cli, &req, NULL);
    mesh_buf_free(&path);
    if (rc == 0 && !cli->quiet)
        printf("deleted product %s\n", mesh_cli_pos(a, 0));
    return rc;
}

/* --drop ID[,ID...] or --drop-all: POST .../quarantine/drop */
static int quarantine_drop(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *list = mesh_cli_arg(a, "drop");
    bool all = mesh_cli_flag(a, "drop-all");
    json_t *body = json_object();
    if (all) {
        json_object_set_new(body, "all", json_true());
    } else {
        json_t *ids = json_array();
        for (const char *p = list; *p;) {
            size_t n = strcspn(p, ",");
            int64_t id;
            if (n == 0 || mesh_parse_i64(p, n, &id) != MESH_OK || id < 1) {
                json_decref(ids);
                json_decref(body);
                return mesh_cli_usage(cli, "--drop takes row ids (as listed), e.g. 12,13");
            }
            json_array_append_new(ids, json_integer((json_int_t)id));
            p += n;
            if (*p == ',')
                p++;
        }
        json_object_set_new(body, "ids", ids);
    }
    mesh_buf_t path;
    int rc = product_path(cli, mesh_cli_pos(a, 0), "/quarantine/drop", &path);
    json_t *j = NULL;
    if (rc == 0) {
        rc = mesh_cli_send_json(cli, "POST", path.data, body, &j);
        mesh_buf_free(&path);
    }
    json_decref(body);
    if (rc == 0 && !cli->quiet)
        printf("dropped %lld quarantined row%s of %s\n", (long long)mesh_cli_jint(j, "dropped"),
               mesh_cli_jint(j, "dropped") == 1 ? "" : "s", mesh_cli_pos(a, 0));
    json_decref(j);
    return rc;
}

/* --resubmit ID [--row JSON | --row-file FILE]: POST .../quarantine/ID/resubmit */
static int quarantine_resubmit(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    int64_t id;
    const char *ids = mesh_cli_arg(a, "resubmit");
    if (mesh_parse_i64(ids, strlen(ids), &id) != MESH_OK || id < 1)
        return mesh_cli_usage(cli, "--resubmit takes one row id (as listed)");
    const char *row = mesh_cli_arg(a, "row"), *file = mesh_cli_arg(a, "row-file");
    if (row && file)
        return mesh_cli_usage(cli, "give --row or --row-file, not both");
    char *text = NULL;
    size_t len = 0;
    int rc = 0;
    if (file && (rc = mesh_cli_read_input(cli, file, 1 << 20, &text, &len)) != 0)
        return rc;
    char suffix[64];
    snprintf(suffix, sizeof suffix, "/quarantine/%lld/resubmit", (long long)id);
    mesh_buf_t path;
    if ((rc = product_path(cli, mesh_cli_pos(a, 0), suffix, &path)) != 0) {
        free(text);
        return rc;
    }
    mesh_client_req_t req = {.method = "POST",
                             .path = path.data,
                             .content_type = "application/json",
                             .body = text  ? text
                                     : row ? row
                                           : "",
                             .body_len = text  ? len
                                         : row ? strlen(row)
                                               : 0};
    json_t *j = NULL;
    rc = mesh_cli_call(cli, &req, &j);
    mesh_buf_free(&path);
    free(text);
    if (rc == 0 && !cli->quiet)
        printf("row %lld of %s written (seq %lld) and dropped from the quarantine\n", (long long)id,
               mesh_cli_pos(a, 0), (long long)mesh_cli_jint(j, "seq"));
    json_decref(j);
    return rc;
}

static int run_quarantine(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    int acts = (mesh_cli_arg(a, "drop") != NULL) + mesh_cli_flag(a, "drop-all") +
               (mesh_cli_arg(a, "resubmit") != NULL);
    if (acts > 1)
        return mesh_cli_usage(cli, "give one of --drop, --drop-all and --resubmit");
    if ((mesh_cli_arg(a, "row") || mesh_cli_arg(a, "row-file")) && !mesh_cli_arg(a, "resubmit"))
        return mesh_cli_usage(cli, "--row and --row-file go with --resubmit");
    if (mesh_cli_arg(a, "drop") || mesh_cli_flag(a, "drop-all"))
        return quarantine_drop(cli, a);
    if (mesh_cli_arg(a, "resubmit"))
        return quarantine_resubmit(cli, a);
    int64_t limit;
    int rc = mesh_cli_arg_int(cli, a, "limit", 100, 1, 10000, &limit);
    if (rc != 0)
        return rc;
    char suffix[64];
    snprintf(suffix, sizeof suffix, "/quarantine?limit=%lld", (long long)limit);
    mesh_buf_t path;
    if ((rc = product_path(cli, mesh_cli_pos(a, 0), suffix, &path)) != 0)
        return rc;
    const char *fmt = mesh_cli_format(cli, false);
    mesh_client_req_t req = {.method = "GET", .path = path.data};
    json_t *j = NULL;
    rc = mesh_cli_get(cli, &req, &j);
    mesh_buf_free(&path);
    if (rc != 0 || j == NULL)
        return rc;
    bool csv = strcmp(fmt, "csv") == 0;
    mesh_table_t *t = mesh_table_create(5);
    if (t == NULL) {
        json_decref(j);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    mesh_table_column(t, 0, csv ? "id" : "ID", MESH_ALIGN_RIGHT, 0);
    mesh_table_column(t, 1, csv ? "received_at" : "RECEIVED", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 2, csv ? "source_row" : "ROW", MESH_ALIGN_RIGHT, 0);
    mesh_table_column(t, 3, csv ? "reason" : "REASON", MESH_ALIGN_LEFT, 60);
    mesh_table_column(t, 4, csv ? "raw" : "RAW", MESH_ALIGN_LEFT, 60);
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(j, "rows"), i, r)
    {
        char when[MESH_CLI_TIME_MAX];
        const char *at = mesh_cli_jstr(r, "received_at");
        mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(r, "id"));
        mesh_table_add(t, csv ? at : mesh_cli_short_time(at, when));
        mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(r, "source_row"));
        mesh_table_add(t, mesh_cli_jstr(r, "reason"));
        mesh_table_add(t, mesh_cli_jstr(r, "raw"));
    }
    if (mesh_table_rows(t) == 0 && !csv)
        printf("no quarantined rows in %s\n", mesh_cli_pos(a, 0));
    else
        mesh_cli_emit_table(cli, t, fmt);
    mesh_table_destroy(t);
    json_decref(j);
    return 0;
}

static const mesh_cli_opt_t apply_opts[] = {
    {"dry-run", 0, NULL, 0,
     "Check each contract against the node and print what applying it would do (created, "
     "updated, unchanged, or refused with every change), without applying anything. Existing "
     "rows are checked against a new major version only when it is applied."},
    {NULL, 0, NULL, 0, NULL},
};

static const mesh_cli_opt_t export_opts[] = {
    {"whole", 0, NULL, 0,
     "Export the whole contract (every product it defines), not only this product's schema."},
    {"version", 0, "VERSION", 0,
     "Export an earlier version of the contract, as it was applied (see product history)."},
    {NULL, 0, NULL, 0, NULL},
};

static const mesh_cli_opt_t diff_opts[] = {
    {"fail-on-breaking", 0, NULL, 0,
     "Exit 5 when a change breaks consumers (for a CI check before applying a contract)."},
    {NULL, 0, NULL, 0, NULL},
};

static const mesh_cli_opt_t list_opts[] = {
    {"domain", 0, "DOMAIN", 0, "Only the products of this domain."},
    {NULL, 0, NULL, 0, NULL},
};

static const mesh_cli_opt_t quarantine_opts[] = {
    {"limit", 0, "N", 0, "Show at most N rows, newest first (1-10000, default 100)."},
    {"drop", 0, "ID[,ID...]", 0, "Drop these quarantined rows (ids as listed)."},
    {"drop-all", 0, NULL, 0, "Drop every quarantined row of the product."},
    {"resubmit", 0, "ID", 0,
     "Write quarantined row ID to the product after all, then drop it from the quarantine: "
     "validated again (a bad row is refused, not quarantined again), written once even if "
     "retried. As it was kept (a JSON row, e.g. after the contract changed), or fixed with "
     "--row or --row-file."},
    {"row", 0, "JSON", 0, "With --resubmit: the fixed row, one JSON object."},
    {"row-file", 0, "FILE", 0, "With --resubmit: a file holding the fixed row ('-': stdin)."},
    {NULL, 0, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_product_cmds[] = {
    {
        .name = "product apply",
        .usage = "FILE... [--dry-run]",
        .summary = "Create or change products from ODCS contracts.",
        .text = "Sends each ODCS v3 contract file (YAML; '-' reads standard input) to the node,\n"
                "which creates the products it defines or applies the changes. A changed contract\n"
                "needs a higher version, and a breaking change (a dropped column, a new type,\n"
                "rows that no longer fit) a higher major version. Prints the outcome (created,\n"
                "updated or unchanged) and each change; a refused contract prints the server's\n"
                "message and the list of changes. Every file is tried; the exit code is the first\n"
                "failure's. --dry-run shows the outcome without applying (a CI check).",
        .opts = apply_opts,
        .min_args = 1,
        .max_args = -1,
        .examples = "meshctl product apply contracts/*.odcs.yaml\n"
                    "meshctl product apply --dry-run contracts/readings.odcs.yaml\n"
                    "generate-contract | meshctl product apply -",
        .exits = "0  every contract was applied (or unchanged)\n"
                 "1  a file could not be read\n"
                 "2  a contract is not valid ODCS (PARSE, INVALID)\n"
                 "3  its domain does not exist (create it first)\n"
                 "5  CONFLICT (version not above the applied one) or BREAKING",
        .run = run_apply,
    },
    {
        .name = "product list",
        .usage = "[--domain DOMAIN] [OPTIONS]",
        .summary = "List the products.",
        .text = "Lists the products the token may read: name, contract version, rows, time of\n"
                "the newest row, number of columns and description.",
        .formats = "table|json|csv",
        .opts = list_opts,
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl product list\nmeshctl product list --domain factory-a --format json",
        .exits = "0  listed (maybe none)",
        .run = run_list,
    },
    {
        .name = "product show",
        .usage = "DOMAIN.PRODUCT [OPTIONS]",
        .summary = "Show a product: contract, schema and statistics.",
        .text = "Shows a product: its contract, owners, tags, time column and key, then its\n"
                "schema (name, type, required, key position, unit, constraints, description and\n"
                "classification when any column has one), then its rows, quarantined rows, size\n"
                "and the time of its newest row.",
        .formats = "table|json",
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl product show factory-a.readings",
        .exits = "0  shown\n"
                 "3  no such domain or product",
        .run = run_show,
    },
    {
        .name = "product export",
        .usage = "DOMAIN.PRODUCT [--whole] [--version VERSION]",
        .summary = "Print a product's contract as ODCS YAML.",
        .text = "Prints the product's contract, as applied, in ODCS YAML on standard output:\n"
                "only this product's schema object unless --whole is given; an earlier applied\n"
                "version with --version (every version applied on the node is kept).",
        .opts = export_opts,
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl product export factory-a.readings > readings.odcs.yaml\n"
                    "meshctl product export factory-a.readings --version 1.2.0",
        .exits = "0  exported\n"
                 "3  no such domain or product, or no such version",
        .run = run_export,
    },
    {
        .name = "product history",
        .usage = "DOMAIN.PRODUCT [OPTIONS]",
        .summary = "List every version of a product's contract applied on the node.",
        .text = "Lists the versions of the product's contract applied on this node, oldest\n"
                "first: the version, when it was applied, its position in the domain's log, and\n"
                "which one is current. Each can be exported (product export --version) and\n"
                "compared (product diff).",
        .formats = "table|json|csv",
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl product history factory-a.readings",
        .exits = "0  listed\n"
                 "3  no such domain or product",
        .run = run_history,
    },
    {
        .name = "product diff",
        .usage = "DOMAIN.PRODUCT FROM [TO] [--fail-on-breaking]",
        .summary = "Show what changed in a product's contract between two versions.",
        .text = "Names every change to the product between two applied versions of its contract\n"
                "(TO: the current one when left out): columns added, dropped, retyped, made\n"
                "required or optional, constraints, key, time column, and whether each breaks\n"
                "consumers ('!') or not ('+'). A breaking change needs a new major version.",
        .formats = "table|json|csv",
        .opts = diff_opts,
        .min_args = 2,
        .max_args = 3,
        .examples = "meshctl product diff factory-a.readings 1.0.0\n"
                    "meshctl product diff factory-a.readings 1.0.0 2.0.0 --format json",
        .exits = "0  compared\n"
                 "3  no such domain, product or version\n"
                 "5  breaking changes, with --fail-on-breaking",
        .run = run_diff,
    },
    {
        .name = "product delete",
        .usage = "DOMAIN.PRODUCT",
        .summary = "Delete a product and its data.",
        .text = "Deletes a product with its rows. A product whose contract defines other\n"
                "products too cannot be deleted alone (CONFLICT): apply the contract without\n"
                "it instead.",
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl product delete factory-a.scratch",
        .exits = "0  deleted\n"
                 "3  no such domain or product\n"
                 "5  its contract defines other products too",
        .run = run_delete,
    },
    {
        .name = "product quarantine",
        .usage = "DOMAIN.PRODUCT [--limit N | --drop ID[,ID...] | --drop-all |\n"
                 "    --resubmit ID [--row JSON | --row-file FILE]] [OPTIONS]",
        .summary = "List, drop or resubmit a product's quarantined rows.",
        .text = "Lists the rows a product kept aside because they violated its contract (for\n"
                "products whose contract says onInvalid: quarantine), newest first: their id,\n"
                "when they arrived, their row number in their batch, the reason and the raw\n"
                "row. --drop and --drop-all delete quarantined rows; --resubmit writes one to\n"
                "the product after all (fixed with --row, or as kept), then drops it. Changing\n"
                "the quarantine needs admin on the product (and write, to resubmit).",
        .formats = "table|json|csv",
        .opts = quarantine_opts,
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl product quarantine factory-a.readings --limit 20\n"
                    "meshctl product quarantine factory-a.readings --resubmit 12 \\\n"
                    "    --row '{\"device\":\"m-4\",\"ts\":\"2026-11-23T10:00:00Z\",\"temp\":30}'\n"
                    "meshctl product quarantine factory-a.readings --drop 13,14",
        .exits = "0  listed, dropped or resubmitted\n"
                 "2  bad arguments, or the resubmitted row still violates the contract\n"
                 "3  no such domain, product or quarantined row\n"
                 "4  the token may not do this",
        .run = run_quarantine,
    },
    {
        .name = "product derive",
        .usage = "DOMAIN.PRODUCT (--sql QUERY [--refresh DURATION] | --source PRODUCT "
                 "--bucket DURATION --column COLUMN...) [OPTIONS]",
        .summary = "Create a derived product: a SQL query or a continuous aggregate.",
        .text = "Creates the derived product DOMAIN.PRODUCT.\n"
                "With --sql: a SELECT over products you may read (this node's domains). meshd\n"
                "prepares it as you in the query sandbox (read-only, one statement), makes its\n"
                "result columns and types the contract's schema, extracts which input columns\n"
                "feed each output column (lineage) and gives each column the classification\n"
                "and tags of its inputs unless it aggregates (count, sum, total, avg) or masks\n"
                "(mask, mask_hash) them. The node materialises it at once and recomputes it\n"
                "every --refresh, with your grants of that moment (you are its definer).\n"
                "With --source: per bucket of the source's time and per series (or --group-by\n"
                "columns), rows, last_time and, per --column C, C_count, C_min, C_max, C_sum,\n"
                "C_avg and C_last, kept up to date in the transaction of every write.\n"
                "Query it like any product; its lineage: meshctl lineage DOMAIN.PRODUCT.",
        .opts = mesh__cli_derive_opts,
        .min_args = 1,
        .max_args = 1,
        .examples =
            "meshctl product derive factory-a.readings_1m --source readings \\\n"
            "    --bucket 1m --column temp --column vibration\n"
            "meshctl product derive factory-a.readings_1h --source readings --bucket 1h \\\n"
            "    --column temp --dry-run > readings_1h.odcs.yaml\n"
            "meshctl product derive factory-a.hot_machines --refresh 5m --sql \\\n"
            "    \"SELECT machine, avg(temp) AS temp_avg FROM \\\"factory-a\\\".readings GROUP BY "
            "machine\"",
        .exits = "0  created (or printed)\n"
                 "2  bad arguments, a query that is not one SELECT or does not prepare, or the\n"
                 "   source does not fit (not a time series, a column not a number)\n"
                 "3  no such domain or source\n"
                 "4  the token may not administer the domain or read the source\n"
                 "5  the product exists with another definition",
        .run = mesh__cli_run_derive,
    },
    {.name = NULL},
};
