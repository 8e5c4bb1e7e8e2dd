/*
 * cmd_quality.c - `meshctl quality DOMAIN.PRODUCT`: a product's quality report
 * (GET /v1/products/D/P/quality, or POST .../quality/run with --run).
 */
#include <math.h>
#include <string.h>

#include "cli/cli.h"
#include "core/util.h"

static const char *pct(const json_t *v, char *buf, size_t cap)
{
    if (!json_is_number(v))
        return "-";
    snprintf(buf, cap, "%.1f%%", 100.0 * json_number_value(v));
    return buf;
}

static const char *num(const json_t *v, char *buf, size_t cap)
{
    if (!json_is_number(v))
        return "-";
    double d = json_number_value(v);
    if (d == floor(d) && fabs(d) < 1e15)
        snprintf(buf, cap, "%.0f", d);
    else
        snprintf(buf, cap, "%.4g", d);
    return buf;
}

static void threshold(const json_t *r, char *out, size_t cap)
{
    static const struct {
        const char *op, *sym;
    } ops[] = {{"mustBe", "="},
               {"mustNotBe", "!="},
               {"mustBeGreaterThan", ">"},
               {"mustBeGreaterOrEqualTo", ">="},
               {"mustBeLessThan", "<"},
               {"mustBeLessOrEqualTo", "<="},
               {"mustBeBetween", "in"},
               {"mustNotBeBetween", "not in"}};
    const char *op = mesh_cli_jstr(r, "operator");
    const char *sym = op ? op : "?";
    for (size_t i = 0; op && i < MESH_ARRAY_LEN(ops); i++)
        if (strcmp(op, ops[i].op) == 0)
            sym = ops[i].sym;
    const json_t *t = json_object_get(r, "threshold");
    const char *unit = mesh_cli_jstr(r, "unit");
    bool percent = unit && strcmp(unit, "percent") == 0;
    char a[32], b[32];
    if (json_is_array(t))
        snprintf(out, cap, "%s [%s, %s]%s", sym, num(json_array_get(t, 0), a, sizeof a),
                 num(json_array_get(t, 1), b, sizeof b), percent ? " %" : "");
    else
        snprintf(out, cap, "%s %s%s", sym, num(t, a, sizeof a), percent ? " %" : "");
}

static int run_quality(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    char d[MESH_NAME_MAX + 1], p[MESH_NAME_MAX + 1];
    int rc = mesh_cli_product_name(cli, mesh_cli_pos(a, 0), d, p);
    if (rc != 0)
        return rc;
    bool run = mesh_cli_flag(a, "run");
    mesh_buf_t path;
    mesh_buf_init(&path, 1024);
    mesh_buf_printf(&path, "/v1/products/%s/%s/quality%s", d, p, run ? "/run" : "");
    const char *fmt = mesh_cli_format(cli, false);
    mesh_client_req_t req = {.method = run ? "POST" : "GET", .path = path.data};
    json_t *j = NULL;
    rc = mesh_cli_get(cli, &req, &j);
    mesh_buf_free(&path);
    if (rc != 0 || j == NULL)
        return rc;
    char b1[64], b2[64], when[MESH_CLI_TIME_MAX];
    mesh_table_t *kv = mesh_table_create(2);
    mesh_table_t *t = mesh_table_create(5);
    if (kv == NULL || t == NULL) {
        mesh_table_destroy(kv);
        mesh_table_destroy(t);
        json_decref(j);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    mesh_table_add(kv, "product");
    mesh_table_addf(kv, "%s.%s", d, p);
    mesh_table_add(kv, "score");
    const json_t *score = json_object_get(j, "score");
    if (json_is_number(score))
        mesh_table_addf(kv, "%.1f / 100", json_number_value(score));
    else
        mesh_table_add(kv, "- (nothing measured yet)");
    mesh_table_add(kv, "evaluated");
    const char *at = mesh_cli_jstr(j, "evaluated_at");
    mesh_table_add(kv, at ? mesh_cli_short_time(at, when) : "never (meshctl quality --run)");
    mesh_table_add(kv, "rules");
    const json_t *rules = json_object_get(j, "rules");
    mesh_table_addf(kv, "%lld passed, %lld failed", (long long)mesh_cli_jint(j, "rules_passed"),
                    (long long)mesh_cli_jint(j, "rules_failed"));
    mesh_table_add(kv, "completeness");
    mesh_table_add(kv, pct(json_object_get(j, "completeness"), b1, sizeof b1));
    mesh_table_add(kv, "validity");
    const json_t *validity = json_object_get(j, "validity");
    if (json_is_number(validity))
        mesh_table_addf(kv, "%s (%lld rows accepted, %lld quarantined)",
                        pct(validity, b1, sizeof b1), (long long)mesh_cli_jint(j, "rows"),
                        (long long)mesh_cli_jint(j, "quarantined"));
    else
        mesh_table_add(kv, "-");
    const json_t *f = json_object_get(j, "freshness");
    mesh_table_add(kv, "newest row");
    const char *lw = mesh_cli_jstr(f, "last_write");
    mesh_table_add(kv, lw ? mesh_cli_short_time(lw, when) : "-");
    if (json_object_get(f, "latency_ok")) {
        mesh_table_add(kv, "latency");
        mesh_table_addf(kv, "%s (within %s s)",
                        json_is_true(json_object_get(f, "latency_ok")) ? "ok" : "BREACHED",
                        num(json_object_get(f, "latency_s"), b2, sizeof b2));
    }
    if (json_object_get(f, "frequency_ok")) {
        mesh_table_add(kv, "frequency");
        mesh_table_addf(kv, "%s (every %s s)",
                        json_is_true(json_object_get(f, "frequency_ok")) ? "ok" : "BREACHED",
                        num(json_object_get(f, "frequency_s"), b2, sizeof b2));
    }
    bool csv = strcmp(fmt, "csv") == 0;
    if (!csv)
        mesh_table_print_kv(kv, stdout);
    mesh_table_column(t, 0, "RULE", MESH_ALIGN_LEFT, 40);
    mesh_table_column(t, 1, "COLUMN", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 2, "VALUE", MESH_ALIGN_RIGHT, 0);
    mesh_table_column(t, 3, "EXPECTED", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 4, "RESULT", MESH_ALIGN_LEFT, 60);
    size_t i;
    json_t *r;
    json_array_foreach(rules, i, r)
    {
        char th[96], val[48];
        threshold(r, th, sizeof th);
        const char *unit = mesh_cli_jstr(r, "unit");
        num(json_object_get(r, "value"), val, sizeof val);
        if (unit && strcmp(unit, "percent") == 0 && json_object_get(r, "value"))
            strncat(val, " %", sizeof val - strlen(val) - 1);
        mesh_table_add(t, mesh_cli_jstr(r, "name"));
        mesh_table_add(t, mesh_cli_jstr(r, "column") ? mesh_cli_jstr(r, "column") : "");
        mesh_table_add(t, val);
        mesh_table_add(t, th);
        const char *error = mesh_cli_jstr(r, "error");
        if (error)
            mesh_table_addf(t, "ERROR: %s", error);
        else
            mesh_table_add(t, json_is_true(json_object_get(r, "passed")) ? "pass" : "FAIL");
    }
    if (csv) {
        mesh_cli_emit_table(cli, t, "csv");
    } else if (mesh_table_rows(t) > 0) {
        putchar('\n');
        mesh_cli_emit_table(cli, t, "table");
    }
    mesh_table_destroy(kv);
    mesh_table_destroy(t);
    json_decref(j);
    return 0;
}

static const mesh_cli_opt_t quality_opts[] = {
    {"run", 0, NULL, 0,
     "Evaluate the product's rules and completeness now (admin on the product) rather than "
     "show the last scheduled evaluation."},
    {NULL, 0, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_quality_cmds[] = {
    {
        .name = "quality",
        .usage = "DOMAIN.PRODUCT [--run] [OPTIONS]",
        .summary = "Show a product's quality report.",
        .text = "Shows how good a product's data is: a score from 0 to 100 (the mean of the\n"
                "parts that apply: share of its contract's quality rules passed, completeness,\n"
                "validity, freshness), each dataset rule of its contract (nullValues,\n"
                "missingValues, invalidValues, duplicateValues, rowCount, sql) with its measured\n"
                "value and expected range, the share of non-null cells, the rows accepted and\n"
                "quarantined, and the newest row against the contract's latency and frequency.\n"
                "Rules are evaluated every quality_interval (meshd option) and with --run.",
        .formats = "table|json|csv",
        .format_help = "table (default): a summary then the rules; csv: the rules; json: the "
                       "report as the node gives it.",
        .opts = quality_opts,
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl quality factory-a.readings\n"
                    "meshctl quality factory-a.readings --run --format json",
        .exits = "0  shown (failed rules do not change it)\n"
                 "3  no such domain or product\n"
                 "4  the token may not read (or, with --run, administer) the product",
        .run = run_quality,
    },
    {.name = NULL},
};
