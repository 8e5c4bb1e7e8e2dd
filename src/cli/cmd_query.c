/*
 * cmd_query.c - `meshctl query SQL`: POST /v1/query and print the result.
 *
 * csv, ndjson and json results are copied to stdout as they arrive, so a large result never
 * sits in memory; the last bytes are kept to find a failure the server reports after rows
 * were sent (a trailing "error" member in JSON, a last {"error": ...} line in NDJSON, a cut
 * transfer in CSV). A table needs every row to size its columns: the JSON result is read
 * whole (at most TABLE_MAX bytes) and rendered.
 */
#include <string.h>

#include "cli/cli.h"
#include "core/util.h"

#define SQL_MAX   ((size_t)1 << 20)   /* bytes of SQL read from a file or stdin */
#define TABLE_MAX ((size_t)256 << 20) /* bytes of a JSON result rendered as a table */
#define TAIL      ((size_t)16 << 10)  /* bytes kept from the end of a streamed result */

typedef struct stream {
    mesh_buf_t tail; /* the last TAIL..2*TAIL bytes written */
} stream_t;

static bool to_stdout(void *arg, const char *p, size_t n)
{
    stream_t *s = arg;
    if (!mesh_cli_write_out(p, n))
        return false;
    if (n >= TAIL) {
        mesh_buf_reset(&s->tail);
        return mesh_buf_add(&s->tail, p + n - TAIL, TAIL) == MESH_OK;
    }
    if (mesh_buf_add(&s->tail, p, n) != MESH_OK)
        return false;
    if (s->tail.len > 2 * TAIL) {
        memmove(s->tail.data, s->tail.data + s->tail.len - TAIL, TAIL);
        s->tail.len = TAIL;
        s->tail.data[TAIL] = '\0';
    }
    return true;
}

/* Prints the error object {"code","message"} of a failure after rows; returns its exit code
 * or 0 when e is not one. */
static int trailing_error(mesh_cli_t *cli, const json_t *e)
{
    const char *code = mesh_cli_jstr(e, "code"), *msg = mesh_cli_jstr(e, "message");
    if (code == NULL)
        return 0;
    char m[1024];
    snprintf(m, sizeof m, "%s", msg ? msg : "");
    mesh_cli_clean(m);
    fprintf(stderr, "meshctl: [%s] the query failed after rows were sent: %s\n", code, m);
    return mesh_status_exit(mesh_client_status_of(code, 200));
}

/* Finds the failure a streamed JSON or NDJSON result may end with. */
static int stream_error(mesh_cli_t *cli, const char *fmt, const mesh_buf_t *tail)
{
    if (tail->len == 0)
        return 0;
    json_t *j = NULL;
    int rc = 0;
    if (strcmp(fmt, "json") == 0) {
        /* the members after "rows" are the server's own: an unescaped "row_count" is one */
        const char *last = NULL;
        for (const char *p = tail->data; (p = strstr(p, "\"row_count\":")) != NULL; p++)
            last = p;
        if (last) {
            mesh_buf_t b;
            mesh_buf_init(&b, 4 * TAIL);
            mesh_buf_addc(&b, '{');
            mesh_buf_adds(&b, last);
            j = json_loadb(b.data, b.len, 0, NULL);
            mesh_buf_free(&b);
            rc = trailing_error(cli, json_object_get(j, "error"));
        }
    } else {
        /* NDJSON: a last line {"error": {...}} (a row's values are never objects) */
        size_t end = tail->len;
        while (end && (tail->data[end - 1] == '\n' || tail->data[end - 1] == '\r'))
            end--;
        size_t start = end;
        while (start && tail->data[start - 1] != '\n')
            start--;
        j = json_loadb(tail->data + start, end - start, 0, NULL);
        json_t *e = json_object_get(j, "error");
        if (json_object_size(j) == 1 && json_is_object(e))
            rc = trailing_error(cli, e);
    }
    json_decref(j);
    return rc;
}

/* Renders a JSON result as a table, then "(N rows, T ms)". */
static int print_table(mesh_cli_t *cli, const char *body, size_t len)
{
    json_error_t je;
    json_t *j = json_loadb(body, len, 0, &je);
    if (j == NULL)
        return mesh_cli_fail(cli, MESH_INTERNAL, "the result is not JSON: %s", je.text);
    const json_t *cols = json_object_get(j, "columns");
    size_t ncols = json_array_size(cols);
    mesh_table_t *t = mesh_table_create(ncols);
    if (t == NULL) {
        json_decref(j);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    size_t i;
    json_t *c;
    json_array_foreach(cols, i, c)
    {
        const char *type = mesh_cli_jstr(c, "type");
        mesh_align_t al = MESH_ALIGN_AUTO;
        if (type && (strcmp(type, "INTEGER") == 0 || strcmp(type, "REAL") == 0))
            al = MESH_ALIGN_RIGHT;
        else if (type)
            al = MESH_ALIGN_LEFT;
        mesh_table_column(t, i, mesh_cli_jstr(c, "name"), al, 0);
    }
    json_t *row;
    int rc = 0;
    json_array_foreach(json_object_get(j, "rows"), i, row)
    {
        for (size_t k = 0; k < ncols && rc == 0; k++) {
            char tmp[64];
            if (mesh_table_add(t, mesh_cli_json_text(json_array_get(row, k), tmp, sizeof tmp)) !=
                MESH_OK)
                rc = mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
        }
    }
    if (rc == 0) {
        if (ncols)
            mesh_table_print(t, stdout, cli->color);
        if (!cli->quiet) {
            int64_t n = mesh_cli_jint(j, "row_count");
            printf("(%lld row%s, %.1f ms)\n", (long long)n, n == 1 ? "" : "s",
                   json_number_value(json_object_get(j, "elapsed_ms")));
        }
        fflush(stdout);
        rc = trailing_error(cli, json_object_get(j, "error"));
    }
    mesh_table_destroy(t);
    json_decref(j);
    return rc;
}

static int read_sql(mesh_cli_t *cli, const mesh_cli_args_t *a, char **sql, size_t *len)
{
    const char *file = mesh_cli_arg(a, "file");
    const char *arg = mesh_cli_pos(a, 0);
    *sql = NULL;
    if ((file != NULL) == (arg != NULL))
        return mesh_cli_usage(cli, "give the SQL as an argument ('-' for stdin) or with --file");
    if (file || strcmp(arg, "-") == 0)
        return mesh_cli_read_input(cli, file ? file : "-", SQL_MAX, sql, len);
    *len = strlen(arg);
    if ((*sql = mesh_strdup(arg)) == NULL)
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    return 0;
}

static int run_query(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *fmt = mesh_cli_format(cli, true);
    const char *tf = mesh_cli_arg(a, "time-format");
    if (tf && strcmp(tf, "iso") != 0 && strcmp(tf, "ns") != 0)
        return mesh_cli_usage(cli, "--time-format %s: expected iso or ns", tf);
    int64_t timeout_ms, max_rows;
    int rc = mesh_cli_arg_int(cli, a, "timeout-ms", 0, 1, 86400000, &timeout_ms);
    if (rc == 0)
        rc = mesh_cli_arg_int(cli, a, "max-rows", 0, 1, INT64_MAX / 2, &max_rows);
    if (rc != 0)
        return rc;
    char *sql;
    size_t sql_len;
    if ((rc = read_sql(cli, a, &sql, &sql_len)) != 0)
        return rc;
    bool table = strcmp(fmt, "table") == 0;
    json_t *body = json_object();
    json_t *s = json_stringn(sql, sql_len);
    free(sql);
    if (s == NULL) {
        json_decref(body);
        return mesh_cli_usage(cli, "the SQL is not UTF-8 text");
    }
    json_object_set_new(body, "sql", s);
    json_object_set_new(body, "format", json_string(table ? "json" : fmt));
    if (tf)
        json_object_set_new(body, "time_format", json_string(tf));
    if (timeout_ms)
        json_object_set_new(body, "timeout_ms", json_integer(timeout_ms));
    if (max_rows)
        json_object_set_new(body, "max_rows", json_integer(max_rows));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL)
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");

    stream_t st;
    mesh_buf_init(&st.tail, 4 * TAIL);
    mesh_client_req_t req = {.method = "POST",
                             .path = "/v1/query",
                             .content_type = "application/json",
                             .body = text,
                             .body_len = strlen(text),
                             .sink = table ? NULL : to_stdout,
                             .sink_arg = &st,
                             .max_body = TABLE_MAX};
    mesh_client_result_t res;
    mesh_client_do(cli->client, &req, &res);
    fflush(stdout);
    if (res.status == MESH_OK) {
        rc = table ? print_table(cli, res.body.data ? res.body.data : "", res.body.len)
                   : stream_error(cli, fmt, &st.tail);
    } else if (res.too_large) {
        rc = mesh_cli_fail(cli, MESH_LIMIT,
                           "the result is larger than %zu MiB, too much for a table: use "
                           "--format csv or ndjson (streamed), or narrow the query",
                           TABLE_MAX >> 20);
    } else if (res.sink_stopped) {
        rc = MESH_CLI_EXIT_LOCAL; /* stdout failed, already said */
    } else if (res.cut || (res.reached && res.http == 0 && strcmp(fmt, "csv") == 0)) {
        /* a CSV result has no room for an error: the server cuts the transfer instead */
        rc = mesh_cli_fail(cli, MESH_INTERNAL,
                           "%s; the query failed on the server after it started (CSV cannot "
                           "carry the reason: run it with --format json to see it)",
                           res.msg);
    } else {
        rc = mesh_cli_report(cli, &res, NULL);
    }
    mesh_client_result_free(&res);
    mesh_buf_free(&st.tail);
    free(text);
    return rc;
}

static const mesh_cli_opt_t query_opts[] = {
    {"file", 'f', "FILE", 0, "Read the SQL from FILE ('-': standard input)."},
    {"time-format", 0, "iso|ns", 0,
     "Time columns as ISO 8601 text (iso, the default) or nanoseconds since 1970 (ns)."},
    {"timeout-ms", 0, "N", 0,
     "Stop the query after N milliseconds (TIMEOUT); it can only shorten the node's limit."},
    {"max-rows", 0, "N", 0, "Fail with LIMIT when the result has more than N rows."},
    {NULL, 0, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_query_cmds[] = {
    {
        .name = "query",
        .usage = "SQL | - | --file FILE [OPTIONS]",
        .summary = "Run a SQL query over the products.",
        .text = "Runs a read-only SQL query (SQLite's dialect) over the products the token may\n"
                "read. Products are tables named domain.product (quote a name with a hyphen:\n"
                "\"factory-a\".readings); functions include now(), ts('2026-11-23T10:00:00Z'),\n"
                "ago('15m'), time_bucket('1h', ts) and iso(ns).\n"
                "\n"
                "A table is printed when stdout is a terminal, JSON otherwise. csv, ndjson and\n"
                "json results stream to stdout as they arrive. A failure after rows were sent\n"
                "(a time or row limit) is reported on stderr with a non-zero exit code, after\n"
                "the rows already printed.",
        .formats = "table|json|csv|ndjson",
        .format_help = "Output format: table, json, csv or ndjson (default: table when stdout "
                       "is a terminal, else json).",
        .opts = query_opts,
        .min_args = 0,
        .max_args = 1,
        .examples = "meshctl query 'SELECT device, max(temp) FROM factory.readings GROUP BY 1'\n"
                    "meshctl query --format csv 'SELECT * FROM factory.readings' > readings.csv\n"
                    "meshctl query -f report.sql --format ndjson --time-format ns\n"
                    "echo 'SELECT count(*) FROM factory.readings' | meshctl query -",
        .exits = "0  the whole result was printed\n"
                 "2  the SQL is malformed (PARSE) or names no such table\n"
                 "4  the SQL reaches outside the sandbox (FORBIDDEN)\n"
                 "6  a time or row limit (TIMEOUT, LIMIT), or a result too large for a table\n"
                 "8  the server failed (also: a CSV result cut short)",
        .run = run_query,
    },
    {.name = NULL},
};
