/*
 * cmd_classify.c - `meshctl discover` (POST .../discover, then .../classifications/reject
 * and .../approve when asked) and `meshctl classify` (GET .../classifications, and
 * .../classifications/remove when asked).
 *
 * Discovery runs on the node that holds the product: the answers carry column names, info
 * types, confidences and counts, never a value, so nothing sampled reaches this program.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/util.h"

/* "/v1/products/D/P" + suffix into b. */
static int product_path(mesh_cli_t *cli, const char *arg, const char *suffix, mesh_buf_t *b)
{
    char d[MESH_NAME_MAX + 1], p[MESH_NAME_MAX + 1];
    int rc = mesh_cli_product_name(cli, arg, d, p);
    if (rc != 0)
        return rc;
    mesh_buf_init(b, 4096);
    if (mesh_buf_printf(b, "/v1/products/%s/%s%s", d, p, suffix) != MESH_OK) {
        mesh_buf_free(b);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    return 0;
}

/* POSTs body (taken) to the product's suffix; *out gets the answer. */
static int post(mesh_cli_t *cli, const char *product, const char *suffix, json_t *body,
                json_t **out)
{
    mesh_buf_t path;
    int rc = product_path(cli, product, suffix, &path);
    if (rc != 0) {
        json_decref(body);
        return rc;
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL) {
        mesh_buf_free(&path);
        return mesh_cli_usage(cli, "column names must be UTF-8 text");
    }
    mesh_client_req_t req = {.method = "POST",
                             .path = path.data,
                             .content_type = "application/json",
                             .body = text,
                             .body_len = strlen(text)};
    rc = mesh_cli_call(cli, &req, out);
    free(text);
    mesh_buf_free(&path);
    return rc;
}

/* --min-confidence into *out (def when absent); 0 or a usage exit code. */
static int min_confidence(mesh_cli_t *cli, const mesh_cli_args_t *a, double def, double *out)
{
    const char *v = mesh_cli_arg(a, "min-confidence");
    *out = def;
    if (v == NULL)
        return 0;
    double d;
    if (mesh_parse_f64(v, strlen(v), &d) != MESH_OK || !(d >= 0 && d <= 1))
        return mesh_cli_usage(cli, "--min-confidence %s: expected a number from 0 to 1", v);
    *out = d;
    return 0;
}

/* A JSON list of the values of a repeatable option. */
static json_t *list_arg(const mesh_cli_args_t *a, const char *name)
{
    json_t *l = json_array();
    const char *v;
    for (size_t i = 0; (v = mesh_cli_arg_at(a, name, i)) != NULL; i++)
        json_array_append_new(l, json_string(v));
    return l;
}

static void join(const json_t *arr, mesh_buf_t *out)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (i)
            mesh_buf_adds(out, ",");
        mesh_buf_adds(out, json_string_value(v) ? json_string_value(v) : "");
    }
}

/* ---- discover ---- */

static void print_suggestions(mesh_cli_t *cli, const json_t *doc, const char *fmt)
{
    bool csv = strcmp(fmt, "csv") == 0;
    mesh_table_t *t = mesh_table_create(8);
    if (t == NULL)
        return;
    mesh_table_column(t, 0, csv ? "column" : "COLUMN", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 1, csv ? "info_type" : "INFO TYPE", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 2, csv ? "confidence" : "CONFIDENCE", MESH_ALIGN_RIGHT, 0);
    mesh_table_column(t, 3, csv ? "matched" : "MATCHED", MESH_ALIGN_RIGHT, 0);
    mesh_table_column(t, 4, csv ? "non_null" : "OF", MESH_ALIGN_RIGHT, 0);
    mesh_table_column(t, 5, csv ? "classification" : "CLASSIFICATION", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 6, csv ? "tags" : "TAGS", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 7, csv ? "status" : "STATUS", MESH_ALIGN_LEFT, 0);
    size_t i, k;
    json_t *c, *s;
    json_array_foreach(json_object_get(doc, "columns"), i, c)
    {
        json_array_foreach(json_object_get(c, "suggestions"), k, s)
        {
            mesh_buf_t tags;
            mesh_buf_init(&tags, 4096);
            join(json_object_get(s, "tags"), &tags);
            mesh_table_add(t, mesh_cli_jstr(c, "name"));
            mesh_table_add(t, mesh_cli_jstr(s, "info_type"));
            mesh_table_addf(t, "%.2f", json_number_value(json_object_get(s, "confidence")));
            mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(s, "matched"));
            mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(c, "non_null"));
            mesh_table_add(t, mesh_cli_jstr(s, "classification"));
            mesh_table_add(t, tags.data ? tags.data : "");
            mesh_table_add(t, mesh_cli_jstr(s, "status"));
            mesh_buf_free(&tags);
        }
    }
    if (!csv && !cli->quiet)
        printf("%lld rows sampled from %s.%s\n", (long long)mesh_cli_jint(doc, "sampled"),
               mesh_cli_jstr(doc, "domain"), mesh_cli_jstr(doc, "product"));
    if (mesh_table_rows(t) == 0 && !csv) {
        if (!cli->quiet)
            printf("nothing sensitive found\n");
    } else {
        mesh_cli_emit_table(cli, t, fmt);
    }
    mesh_table_destroy(t);
}

static int run_discover(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *product = mesh_cli_pos(a, 0);
    char d[MESH_NAME_MAX + 1], p[MESH_NAME_MAX + 1];
    int rc = mesh_cli_product_name(cli, product, d, p);
    if (rc != 0)
        return rc;
    int64_t sample;
    if ((rc = mesh_cli_arg_int(cli, a, "sample", 1000, 1, 100000, &sample)) != 0)
        return rc;
    bool all = mesh_cli_flag(a, "approve-all");
    bool some = mesh_cli_arg(a, "approve") != NULL;
    if (all && some)
        return mesh_cli_usage(cli, "--approve COLUMN and --approve-all do not go together");
    double minc;
    if ((rc = min_confidence(cli, a, all ? 0.8 : 0, &minc)) != 0)
        return rc;
    if (mesh_cli_arg(a, "min-confidence") && !all && !some)
        return mesh_cli_usage(cli, "--min-confidence goes with --approve or --approve-all");
    const char *fmt = mesh_cli_format(cli, false);
    json_t *doc = NULL;
    rc = post(cli, product, "/discover", json_pack("{s:I}", "sample", (json_int_t)sample), &doc);
    if (rc != 0)
        return rc;
    json_t *rejected = NULL, *approved = NULL;
    if (mesh_cli_arg(a, "reject"))
        rc = post(cli, product, "/classifications/reject",
                  json_pack("{s:o}", "columns", list_arg(a, "reject")), &rejected);
    if (rc == 0 && (all || some)) {
        json_t *body =
            all ? json_pack("{s:b,s:f}", "all", 1, "min_confidence", minc)
                : json_pack("{s:o,s:f}", "columns", list_arg(a, "approve"), "min_confidence", minc);
        rc = post(cli, product, "/classifications/approve", body, &approved);
    }
    if (strcmp(fmt, "json") == 0) {
        json_t *out = doc;
        if (rejected || approved) {
            out = json_pack("{s:O}", "discovery", doc);
            if (rejected)
                json_object_set(out, "rejected", rejected);
            if (approved)
                json_object_set(out, "approved", approved);
        } else {
            json_incref(out);
        }
        char *text = json_dumps(out, JSON_COMPACT);
        json_decref(out);
        if (text) {
            printf("%s\n", text);
            free(text);
        }
    } else {
        print_suggestions(cli, doc, fmt);
        if (rejected && !cli->quiet && strcmp(fmt, "csv") != 0)
            printf("rejected %lld suggestions\n", (long long)mesh_cli_jint(rejected, "rejected"));
        if (approved && !cli->quiet && strcmp(fmt, "csv") != 0) {
            size_t i;
            json_t *t;
            json_t *list = json_object_get(approved, "approved");
            printf("approved %zu tags (policy version %lld)%s\n", json_array_size(list),
                   (long long)mesh_cli_jint(approved, "policy_version"),
                   json_array_size(list) ? ":" : "");
            json_array_foreach(list, i, t)
            {
                printf("  %s: %s\n", mesh_cli_jstr(t, "column"), mesh_cli_jstr(t, "tag"));
            }
        }
    }
    json_decref(doc);
    json_decref(rejected);
    json_decref(approved);
    return rc;
}

/* ---- classify ---- */

static int run_classify(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *product = mesh_cli_pos(a, 0);
    int rc;
    if (mesh_cli_arg(a, "tag") && !mesh_cli_arg(a, "remove"))
        return mesh_cli_usage(cli, "--tag goes with --remove");
    if (mesh_cli_arg(a, "remove")) {
        json_t *body = json_pack("{s:o}", "columns", list_arg(a, "remove"));
        if (mesh_cli_arg(a, "tag"))
            json_object_set_new(body, "tags", list_arg(a, "tag"));
        json_t *res = NULL;
        if ((rc = post(cli, product, "/classifications/remove", body, &res)) != 0)
            return rc;
        if (!cli->quiet)
            fprintf(stderr, "removed %lld tags\n", (long long)mesh_cli_jint(res, "removed"));
        json_decref(res);
    }
    mesh_buf_t path;
    if ((rc = product_path(cli, product, "/classifications", &path)) != 0)
        return rc;
    const char *fmt = mesh_cli_format(cli, false);
    mesh_client_req_t req = {.method = "GET", .path = path.data};
    json_t *j = NULL;
    rc = mesh_cli_get(cli, &req, &j);
    mesh_buf_free(&path);
    if (rc != 0 || j == NULL)
        return rc;
    bool csv = strcmp(fmt, "csv") == 0;
    mesh_table_t *t = mesh_table_create(7);
    if (t == NULL) {
        json_decref(j);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    mesh_table_column(t, 0, csv ? "column" : "COLUMN", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 1, csv ? "classification" : "CLASSIFICATION", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 2, csv ? "tag" : "TAG", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 3, csv ? "source" : "SOURCE", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 4, csv ? "confidence" : "CONFIDENCE", MESH_ALIGN_RIGHT, 0);
    mesh_table_column(t, 5, csv ? "by" : "BY", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 6, csv ? "when" : "WHEN", MESH_ALIGN_LEFT, 0);
    size_t i, k;
    json_t *c, *x;
    json_array_foreach(json_object_get(j, "columns"), i, c)
    {
        const char *name = mesh_cli_jstr(c, "name");
        const char *cls = mesh_cli_jstr(c, "classification");
        size_t rows = 0;
        json_array_foreach(json_object_get(c, "tags"), k, x)
        {
            char when[MESH_CLI_TIME_MAX];
            const char *at = mesh_cli_jstr(x, "approved");
            json_t *conf = json_object_get(x, "confidence");
            mesh_table_add(t, name);
            mesh_table_add(t, cls ? cls : "");
            mesh_table_add(t, mesh_cli_jstr(x, "tag"));
            mesh_table_add(t, mesh_cli_jstr(x, "source"));
            if (conf)
                mesh_table_addf(t, "%.2f", json_number_value(conf));
            else
                mesh_table_add(t, "");
            mesh_table_add(t,
                           mesh_cli_jstr(x, "approved_by") ? mesh_cli_jstr(x, "approved_by") : "");
            mesh_table_add(t, at ? (csv ? at : mesh_cli_short_time(at, when)) : "");
            rows++;
        }
        static const char *const lists[] = {"pending", "rejected"};
        for (size_t l = 0; l < 2; l++)
            json_array_foreach(json_object_get(c, lists[l]), k, x)
            {
                char when[MESH_CLI_TIME_MAX];
                const char *at = mesh_cli_jstr(x, l ? "rejected" : "suggested");
                mesh_table_add(t, name);
                mesh_table_add(t, cls ? cls : "");
                mesh_table_add(t, mesh_cli_jstr(x, "info_type"));
                mesh_table_add(t, lists[l]);
                mesh_table_addf(t, "%.2f", json_number_value(json_object_get(x, "confidence")));
                mesh_table_add(t, mesh_cli_jstr(x, l ? "rejected_by" : "suggested_by"));
                mesh_table_add(t, at ? (csv ? at : mesh_cli_short_time(at, when)) : "");
                rows++;
            }
        if (rows == 0) {
            mesh_table_add(t, name);
            mesh_table_add(t, cls ? cls : "");
            for (int e = 0; e < 5; e++)
                mesh_table_add(t, "");
        }
    }
    mesh_cli_emit_table(cli, t, fmt);
    mesh_table_destroy(t);
    json_decref(j);
    return 0;
}

static const mesh_cli_opt_t discover_opts[] = {
    {"sample", 0, "N", 0,
     "Sample at most N rows (1-100000, default 1000): the first rows the product's scan returns."},
    {"approve", 0, "COLUMN", MESH_CLI_MULTI,
     "After discovering, approve the pending suggestions for COLUMN."},
    {"approve-all", 0, NULL, 0,
     "After discovering, approve every pending suggestion at least --min-confidence confident."},
    {"min-confidence", 0, "X", 0,
     "With --approve or --approve-all: apply only suggestions at least this confident (0-1; "
     "default 0.8 with --approve-all, 0 with --approve)."},
    {"reject", 0, "COLUMN", MESH_CLI_MULTI,
     "After discovering, reject the pending suggestions for COLUMN: a rejected "
     "suggestion is not proposed again."},
    {NULL, 0, NULL, 0, NULL},
};

static const mesh_cli_opt_t classify_opts[] = {
    {"remove", 0, "COLUMN", MESH_CLI_MULTI,
     "First remove the approved tags of COLUMN; the contract's stay."},
    {"tag", 0, "TAG", MESH_CLI_MULTI, "With --remove: only this tag."},
    {NULL, 0, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_classify_cmds[] = {
    {
        .name = "discover",
        .usage = "DOMAIN.PRODUCT [--sample N] [--approve COLUMN...|--approve-all "
                 "[--min-confidence X]] [--reject COLUMN...] [OPTIONS]",
        .summary = "Find sensitive columns and suggest classifications.",
        .text = "Asks the node that holds the product to sample its values and suggest, per\n"
                "column, the sensitive information it holds (email, phone, person_name,\n"
                "date_of_birth, national_id, iban, card_number, ip_address, mac_address,\n"
                "medical_record_number, location), with a confidence from 0 to 1 that combines\n"
                "the column's name and the share of sampled values that match (checksums\n"
                "included: Luhn for cards, mod 97 for IBANs), the tags approval would add (the\n"
                "info type, PII, PHI) and the classification level. The values never leave the\n"
                "node: only counts and confidences come back. Suggestions are kept as pending\n"
                "and change nothing until approved (--approve, --approve-all); masks that target\n"
                "an approved tag apply from the next query on. Needs admin on the product (its\n"
                "domain's owners have it).",
        .formats = "table|json|csv",
        .opts = discover_opts,
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl discover icu-3.patients\n"
                    "meshctl discover icu-3.patients --sample 5000 --format json\n"
                    "meshctl discover icu-3.patients --approve email --approve phone\n"
                    "meshctl discover icu-3.patients --approve-all --min-confidence 0.9\n"
                    "meshctl discover icu-3.patients --reject patient_name",
        .exits = "0  discovered (and approved or rejected as asked)\n"
                 "2  a bad option, or a column the product does not have\n"
                 "3  no such domain or product\n"
                 "4  not an administrator of the product",
        .run = run_discover,
    },
    {
        .name = "classify",
        .usage = "DOMAIN.PRODUCT [--remove COLUMN... [--tag TAG...]] [OPTIONS]",
        .summary = "Show a product's column classifications and tags.",
        .text = "Shows each column's effective classification (the highest level among the\n"
                "contract's and the approved ones) and its tags with their source: contract,\n"
                "approved (who approved it, when, from which suggestion), and for\n"
                "administrators the pending and rejected suggestions of discovery. A column\n"
                "without any is listed once, empty. --remove takes approved tags off columns\n"
                "first (masks targeting them stop applying from the next query on).",
        .formats = "table|json|csv",
        .opts = classify_opts,
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl classify icu-3.patients\n"
                    "meshctl classify icu-3.patients --format csv\n"
                    "meshctl classify icu-3.patients --remove email --tag PII",
        .exits = "0  shown\n"
                 "3  no such domain or product\n"
                 "4  the product may not be read (or, with --remove, administered)",
        .run = run_classify,
    },
    {.name = NULL},
};
