/*
 * cmd_catalog.c - `meshctl catalog [TERM]`: search the products the token may read
 * (GET /v1/catalog) by a term and filters.
 */
#include <string.h>

#include "cli/cli.h"

static int run_catalog(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    static const char *const filters[][2] = {{"domain", "domain"},
                                             {"owner", "owner"},
                                             {"tag", "tag"},
                                             {"classification", "classification"},
                                             {"min-quality", "min_quality"}};
    const char *fmt = mesh_cli_format(cli, false);
    mesh_buf_t path;
    mesh_buf_init(&path, 64 * 1024);
    mesh_status_t st = mesh_buf_adds(&path, "/v1/catalog");
    char sep = '?';
    const char *term = mesh_cli_pos(a, 0);
    if (term && *term) {
        st = mesh_buf_adds(&path, "?q=");
        if (st == MESH_OK)
            st = mesh_client_escape(&path, term);
        sep = '&';
    }
    for (size_t i = 0; i < sizeof filters / sizeof filters[0] && st == MESH_OK; i++) {
        const char *v = mesh_cli_arg(a, filters[i][0]);
        if (v == NULL)
            continue;
        st = mesh_buf_printf(&path, "%c%s=", sep, filters[i][1]);
        if (st == MESH_OK)
            st = mesh_client_escape(&path, v);
        sep = '&';
    }
    if (st != MESH_OK) {
        mesh_buf_free(&path);
        return mesh_cli_usage(cli, "the search terms are too long");
    }
    mesh_client_req_t req = {.method = "GET", .path = path.data};
    json_t *j = NULL;
    int rc = mesh_cli_get(cli, &req, &j);
    mesh_buf_free(&path);
    if (rc != 0 || j == NULL)
        return rc;
    bool csv = strcmp(fmt, "csv") == 0;
    mesh_table_t *t = mesh_table_create(7);
    if (t == NULL) {
        json_decref(j);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    mesh_table_column(t, 0, csv ? "product" : "PRODUCT", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 1, csv ? "rows" : "ROWS", MESH_ALIGN_RIGHT, 0);
    mesh_table_column(t, 2, csv ? "last_write" : "LAST WRITE", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 3, csv ? "columns" : "COLUMNS", MESH_ALIGN_RIGHT, 0);
    mesh_table_column(t, 4, csv ? "quality" : "QUALITY", MESH_ALIGN_RIGHT, 0);
    mesh_table_column(t, 5, csv ? "classification" : "CLASS", MESH_ALIGN_LEFT, 0);
    mesh_table_column(t, 6, csv ? "description" : "DESCRIPTION", MESH_ALIGN_LEFT, 60);
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(j, "products"), i, p)
    {
        char when[MESH_CLI_TIME_MAX];
        const char *lw = mesh_cli_jstr(p, "last_write");
        mesh_table_add(t, mesh_cli_jstr(p, "sql_name"));
        mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(p, "rows"));
        mesh_table_add(t, csv ? lw : mesh_cli_short_time(lw, when));
        mesh_table_addf(t, "%zu", json_array_size(json_object_get(p, "columns")));
        const json_t *q = json_object_get(p, "quality_score");
        if (json_is_number(q))
            mesh_table_addf(t, "%.1f", json_number_value(q));
        else
            mesh_table_add(t, csv ? "" : "-");
        const char *cl = mesh_cli_jstr(json_object_get(p, "classifications"), "classification");
        mesh_table_add(t, cl ? cl : "");
        mesh_table_add(t, mesh_cli_jstr(p, "description") ? mesh_cli_jstr(p, "description") : "");
    }
    if (mesh_table_rows(t) == 0 && !csv) {
        if (!cli->quiet)
            printf("no products match\n");
    } else {
        mesh_cli_emit_table(cli, t, fmt);
    }
    mesh_table_destroy(t);
    json_decref(j);
    return 0;
}

static const mesh_cli_opt_t catalog_opts[] = {
    {"domain", 0, "DOMAIN", 0, "Only products of this domain."},
    {"owner", 0, "EMAIL", 0, "Only products whose domain has this owner."},
    {"tag", 0, "TAG", 0, "Only products with this tag (on the contract, product or a column)."},
    {"classification", 0, "CLASS", 0,
     "Only products with a column of this classification (e.g. restricted)."},
    {"min-quality", 0, "SCORE", 0,
     "Only products whose quality score (0-100) is at least SCORE (never-measured ones go)."},
    {NULL, 0, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_catalog_cmds[] = {
    {
        .name = "catalog",
        .usage = "[TERM] [OPTIONS]",
        .summary = "Search the products you may read.",
        .text = "Searches the catalog: the products the token may read whose name, domain,\n"
                "description, purpose, column names or descriptions, or tags contain TERM\n"
                "(case-insensitive), narrowed by the filters; without TERM or filters it lists\n"
                "every product (browse). Prints each product's rows, newest row, column count,\n"
                "quality score, highest classification and description; --format json prints\n"
                "the server's answer with the full products. 'meshctl product show' is a\n"
                "product's whole page.",
        .formats = "table|json|csv",
        .opts = catalog_opts,
        .min_args = 0,
        .max_args = 1,
        .examples = "meshctl catalog temperature\n"
                    "meshctl catalog --tag pii --classification restricted\n"
                    "meshctl catalog --owner ops@example.com --min-quality 90\n"
                    "meshctl catalog --domain factory-a --format json",
        .exits = "0  searched (maybe nothing matched)",
        .run = run_catalog,
    },
    {.name = NULL},
};
