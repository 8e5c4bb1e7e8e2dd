/*
 * cmd_lineage.c - meshctl lineage DOMAIN.PRODUCT and meshctl product derive (docs/derived.md).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "core/util.h"

#define TREE_MAX_DEPTH 16

/* Prints the products linked to id through edges (up: the products it is made from; else
 * those made from it) as a tree. */
static void tree(const json_t *edges, const char *id, bool up, const char *prefix, int depth)
{
    size_t i, n = 0, k = 0;
    json_t *e;
    const char *near = up ? "to" : "from", *far = up ? "from" : "to";
    json_array_foreach(edges, i, e) n += strcmp(mesh_cli_jstr(e, near), id) == 0;
    json_array_foreach(edges, i, e)
    {
        if (strcmp(mesh_cli_jstr(e, near), id) != 0)
            continue;
        bool last = ++k == n;
        char name[200];
        snprintf(name, sizeof name, "%s", mesh_cli_jstr(e, far));
        mesh_cli_clean(name);
        printf("%s%s %s\n", prefix, last ? "`--" : "|--", name);
        if (depth < TREE_MAX_DEPTH) {
            char next[256];
            snprintf(next, sizeof next, "%s%s", prefix, last ? "    " : "|   ");
            tree(edges, mesh_cli_jstr(e, far), up, next, depth + 1);
        }
    }
    if (n == 0 && depth == 0)
        printf("%s(none)\n", prefix);
}

static void print_text(const json_t *j)
{
    const json_t *edges = json_object_get(j, "edges");
    const char *id = mesh_cli_jstr(j, "product");
    printf("%s%s\n", id, json_is_true(json_object_get(j, "derived")) ? " (derived)" : "");
    printf("upstream:\n");
    tree(edges, id, true, "  ", 0);
    printf("downstream:\n");
    tree(edges, id, false, "  ", 0);
    const json_t *cols = json_object_get(j, "columns");
    if (json_array_size(cols)) {
        printf("columns:\n");
        size_t i;
        json_t *c;
        json_array_foreach(cols, i, c)
        {
            mesh_buf_t in, tags;
            mesh_buf_init(&in, 1 << 16);
            mesh_buf_init(&tags, 1 << 16);
            mesh_cli_join(&in, json_object_get(c, "inputs"), ", ");
            mesh_cli_join(&tags, json_object_get(c, "inherited_tags"), ", ");
            char line[1024];
            const char *cls = json_string_value(json_object_get(c, "inherited_classification"));
            if (cls == NULL)
                cls = "";
            snprintf(line, sizeof line, "  %-20s %-15s <- %s%s%s%s%s%s", mesh_cli_jstr(c, "name"),
                     mesh_cli_jstr(c, "transformation"), in.data ? in.data : "",
                     cls[0] || tags.len ? "  [inherits " : "", cls, cls[0] && tags.len ? ", " : "",
                     tags.data ? tags.data : "", cls[0] || tags.len ? "]" : "");
            mesh_cli_clean(line);
            printf("%s\n", line);
            mesh_buf_free(&in);
            mesh_buf_free(&tags);
        }
    }
    const json_t *def = json_object_get(j, "definition");
    if (def) {
        char line[1024];
        snprintf(line, sizeof line, "%s", mesh_cli_jstr(def, "sql"));
        mesh_cli_clean(line);
        printf("definition (SQL, definer %s):\n  %s\n", mesh_cli_jstr(def, "definer"), line);
        const json_t *rs = json_object_get(def, "refresh");
        const char *e = rs ? json_string_value(json_object_get(rs, "error")) : NULL;
        if (e) {
            snprintf(line, sizeof line, "%s", e);
            mesh_cli_clean(line);
            printf("last refresh FAILED: %s\n", line);
        } else if (rs) {
            printf("last refresh: %lld rows\n", (long long)mesh_cli_jint(rs, "rows"));
        }
    }
    if (json_is_false(json_object_get(j, "column_level")))
        printf("(column inputs are approximate: every column the query reads)\n");
    if (mesh_cli_jint(j, "hidden"))
        printf("(%lld linked products you may not read are not shown)\n",
               (long long)mesh_cli_jint(j, "hidden"));
}

/* A DOT identifier: a double-quoted string (product names hold no quotes; escaped anyway). */
static void dot_id(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            putchar('\\');
        if ((unsigned char)*s >= 0x20)
            putchar(*s);
    }
    putchar('"');
}

static void print_dot(const json_t *j)
{
    printf("digraph lineage {\n  rankdir=LR;\n  node [shape=box];\n");
    size_t i;
    json_t *n;
    const char *id = mesh_cli_jstr(j, "product");
    json_array_foreach(json_object_get(j, "nodes"), i, n)
    {
        printf("  ");
        dot_id(mesh_cli_jstr(n, "id"));
        bool derived = json_is_true(json_object_get(n, "derived"));
        bool self = strcmp(mesh_cli_jstr(n, "id"), id) == 0;
        printf(" [style=\"%s%s\"];\n", derived ? "rounded" : "solid", self ? ",bold" : "");
    }
    json_array_foreach(json_object_get(j, "edges"), i, n)
    {
        printf("  ");
        dot_id(mesh_cli_jstr(n, "from"));
        printf(" -> ");
        dot_id(mesh_cli_jstr(n, "to"));
        printf(";\n");
    }
    printf("}\n");
}

static int run_lineage(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    char d[MESH_NAME_MAX + 1], p[MESH_NAME_MAX + 1];
    int rc = mesh_cli_product_name(cli, mesh_cli_pos(a, 0), d, p);
    if (rc != 0)
        return rc;
    const char *fmt = mesh_cli_flag(a, "dot") ? "dot" : mesh_cli_format(cli, false);
    char path[300];
    snprintf(path, sizeof path, "/v1/lineage/%s/%s", d, p);
    mesh_client_req_t req = {.method = "GET", .path = path};
    json_t *j = NULL;
    if (strcmp(fmt, "json") == 0)
        return mesh_cli_get(cli, &req, NULL);
    if ((rc = mesh_cli_call(cli, &req, &j)) != 0 || j == NULL)
        return rc;
    if (strcmp(fmt, "dot") == 0)
        print_dot(j);
    else
        print_text(j);
    json_decref(j);
    return 0;
}

/* ---- product derive ---- */

static json_t *derive_aggregate_body(const mesh_cli_args_t *a, const char *src, const char *bucket);
static int derive_send(mesh_cli_t *cli, const mesh_cli_args_t *a, const char *d, const char *p,
                       json_t *body, const char *src, const char *bucket);

int mesh__cli_run_derive(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    char d[MESH_NAME_MAX + 1], p[MESH_NAME_MAX + 1];
    int rc = mesh_cli_product_name(cli, mesh_cli_pos(a, 0), d, p);
    if (rc != 0)
        return rc;
    const char *src = mesh_cli_arg(a, "source"), *bucket = mesh_cli_arg(a, "bucket");
    const char *sql = mesh_cli_arg(a, "sql"), *refresh = mesh_cli_arg(a, "refresh");
    if (sql && (src || bucket || mesh_cli_arg_at(a, "column", 0)))
        return mesh_cli_usage(cli, "--sql or --source/--bucket/--column, not both");
    if (refresh && !sql)
        return mesh_cli_usage(cli, "--refresh is for --sql");
    if (!sql && (src == NULL || bucket == NULL || mesh_cli_arg_at(a, "column", 0) == NULL))
        return mesh_cli_usage(cli, "--sql, or --source, --bucket and --column, are needed");
    json_t *body;
    if (sql) {
        body = json_pack("{s:s}", "sql", sql);
        if (refresh)
            json_object_set_new(body, "refresh", json_string(refresh));
    } else {
        body = derive_aggregate_body(a, src, bucket);
    }
    if (mesh_cli_arg(a, "description"))
        json_object_set_new(body, "description", json_string(mesh_cli_arg(a, "description")));
    return derive_send(cli, a, d, p, body, src, bucket);
}

/* The body of an aggregate derivation. */
static json_t *derive_aggregate_body(const mesh_cli_args_t *a, const char *src, const char *bucket)
{
    json_t *agg = json_pack("{s:s,s:s}", "source", src, "bucket", bucket);
    json_t *cols = json_array();
    for (size_t i = 0; mesh_cli_arg_at(a, "column", i); i++)
        json_array_append_new(cols, json_string(mesh_cli_arg_at(a, "column", i)));
    json_object_set_new(agg, "columns", cols);
    if (mesh_cli_arg_at(a, "group-by", 0)) {
        json_t *g = json_array();
        for (size_t i = 0; mesh_cli_arg_at(a, "group-by", i); i++)
            json_array_append_new(g, json_string(mesh_cli_arg_at(a, "group-by", i)));
        json_object_set_new(agg, "groupBy", g);
    }
    return json_pack("{s:o}", "aggregate", agg);
}

/* Asks the node for the contract (body: the derive request, taken), then applies it or
 * prints it (--dry-run). */
static int derive_send(mesh_cli_t *cli, const mesh_cli_args_t *a, const char *d, const char *p,
                       json_t *body, const char *src, const char *bucket)
{
    int rc;
    char path[300];
    snprintf(path, sizeof path, "/v1/derive/%s/%s", d, p);
    json_t *j = NULL;
    rc = mesh_cli_send_json(cli, "POST", path, body, &j);
    json_decref(body);
    if (rc != 0)
        return rc;
    const char *yaml = mesh_cli_jstr(j, "contract");
    if (yaml == NULL) {
        json_decref(j);
        return mesh_cli_fail(cli, MESH_INTERNAL, "the node's answer holds no contract");
    }
    if (mesh_cli_flag(a, "dry-run")) {
        fputs(yaml, stdout);
        json_decref(j);
        return 0;
    }
    mesh_client_req_t req = {.method = "POST",
                             .path = "/v1/contracts",
                             .content_type = "application/yaml",
                             .body = yaml,
                             .body_len = strlen(yaml)};
    json_t *res = NULL;
    rc = mesh_cli_call(cli, &req, &res);
    if (rc == 0 && !cli->quiet && src)
        printf("%s.%s: %s (derived from %s.%s, %s buckets)\n", d, p, mesh_cli_jstr(res, "outcome"),
               d, src, bucket);
    if (rc == 0 && !src) {
        size_t i;
        json_t *x;
        if (!cli->quiet)
            printf("%s.%s: %s (derived by SQL)\n", d, p, mesh_cli_jstr(res, "outcome"));
        json_array_foreach(json_object_get(res, "refreshed"), i, x)
        {
            const char *e = json_string_value(json_object_get(x, "error"));
            if (e) {
                char line[600];
                snprintf(line, sizeof line, "%s", e);
                mesh_cli_clean(line);
                fprintf(stderr, "meshctl: the first refresh failed: %s\n", line);
            } else if (!cli->quiet) {
                printf("%s.%s: %lld rows materialised\n", d, p,
                       (long long)mesh_cli_jint(x, "rows"));
            }
        }
    }
    json_decref(res);
    json_decref(j);
    return rc;
}

const mesh_cli_opt_t mesh__cli_derive_opts[] = {
    {"source", 0, "PRODUCT", 0, "The time-series product of the same domain to aggregate."},
    {"bucket", 0, "DURATION", 0, "The width of a bucket, e.g. 1m, 15m, 1h (1ms to 366d)."},
    {"column", 0, "COLUMN", MESH_CLI_MULTI,
     "A number or integer column of the source to aggregate (count, min, max, sum, avg, "
     "last); repeat for more."},
    {"group-by", 0, "COLUMN", MESH_CLI_MULTI,
     "A series column (a key column other than the time) to group by; repeat for more. "
     "Default: every series column of the source."},
    {"sql", 0, "QUERY", 0,
     "Define the product by a SELECT over products you may read (this node's domains); "
     "meshd materialises it and refreshes it as you (docs/derived.md)."},
    {"refresh", 0, "DURATION", 0,
     "With --sql: how often it is recomputed, e.g. 30s, 5m, 1h (1s to 366d; default 1m)."},
    {"description", 0, "TEXT", 0, "The purpose written into the contract."},
    {"dry-run", 0, NULL, 0, "Print the contract (ODCS YAML) instead of applying it."},
    {NULL, 0, NULL, 0, NULL},
};

static const mesh_cli_opt_t lineage_opts[] = {
    {"dot", 0, NULL, 0, "Write Graphviz DOT (the same as --format dot)."},
    {NULL, 0, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_lineage_cmds[] = {
    {
        .name = "lineage",
        .usage = "DOMAIN.PRODUCT [--dot | --format text|dot|json]",
        .summary = "Show where a product comes from and what is made from it.",
        .text = "Shows the lineage of a product as meshd extracts it from the definitions of\n"
                "derived products: upstream (the products it is made from) and downstream (the\n"
                "products made from it) as trees, and for a derived product each column's\n"
                "inputs, how it is made (identity, transformation, aggregation, masking) and\n"
                "the classification and tags it inherits; for one defined by SQL also its\n"
                "query, definer and last refresh. --dot (or --format dot) writes Graphviz\n"
                "DOT (meshctl lineage f.p --dot | dot -Tsvg > lineage.svg). Products the\n"
                "token may not read are left out and counted.",
        .opts = lineage_opts,
        .formats = "text|dot|json",
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl lineage factory-a.readings\n"
                    "meshctl lineage factory-a.readings_1m --dot | dot -Tpng > l.png",
        .exits = "0  shown\n"
                 "3  no such domain or product\n"
                 "4  the token may not read the product",
        .run = run_lineage,
    },
    {.name = NULL},
};
