/*
 * test_query.c - the query module without a server: request bodies parsed as untrusted input
 * (every field, every refusal and its message), the schema references a SQL text names, and
 * results written as JSON, NDJSON and CSV by real queries over a real domain (quoting and
 * escaping of commas, quotes, line breaks, control characters and invalid UTF-8; NULL, blob,
 * number and time values; an error after rows), and the sandbox's decisions on what a
 * statement may touch.
 */
#define _GNU_SOURCE
#include <ftw.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/policy.h"
#include "catalog/catalog.h"
#include "catalog/registry.h"
#include "core/buf.h"
#include "core/util.h"
#include "derive/derive.h"
#include "ingest/batch.h"
#include "ingest/csv.h"
#include "query/query.h"
#include "query/request.h"
#include "store/domain.h"

int main(void);

/* ---- request bodies ---- */

static void test_request_ok(void **state)
{
    (void)state;
    const char *body = "{\"sql\": \"SELECT 1\", \"format\": \"csv\", \"time_format\": \"ns\", "
                       "\"timeout_ms\": 2500, \"max_rows\": 10, "
                       "\"min_position\": {\"stream\": \"MESHD_DOM_factory\", \"seq\": 42}}";
    mesh_query_request_t r;
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(mesh_query_request_parse(body, strlen(body), false, &r, &err), MESH_OK);
    assert_string_equal(r.sql, "SELECT 1");
    assert_int_equal(r.sql_len, 8);
    assert_string_equal(r.format, "csv");
    assert_string_equal(r.time_format, "ns");
    assert_int_equal(r.timeout_ms, 2500);
    assert_int_equal(r.max_rows, 10);
    assert_string_equal(r.min_domain, "factory");
    assert_int_equal(r.min_seq, 42);
    mesh_query_request_free(&r);
    assert_null(r.sql);

    /* what is not given stays empty */
    const char *small = "{\"sql\": \"SELECT 'é'\"}";
    assert_int_equal(mesh_query_request_parse(small, strlen(small), false, &r, &err), MESH_OK);
    assert_string_equal(r.sql, "SELECT 'é'");
    assert_string_equal(r.format, "");
    assert_int_equal(r.timeout_ms, 0);
    assert_int_equal(r.max_rows, 0);
    assert_string_equal(r.min_domain, "");
    mesh_query_request_free(&r);
    mesh_query_request_free(NULL);
}

static void test_request_raw_sql(void **state)
{
    (void)state;
    mesh_query_request_t r;
    mesh_err_t err;
    mesh_err_clear(&err);
    /* raw: the body is the SQL, even when it looks like JSON */
    const char *sql = "{\"sql\": 1}";
    assert_int_equal(mesh_query_request_parse(sql, strlen(sql), true, &r, &err), MESH_OK);
    assert_string_equal(r.sql, sql);
    mesh_query_request_free(&r);

    assert_int_equal(mesh_query_request_parse("SELECT\0 1", 9, true, &r, &err), MESH_INVALID);
    assert_string_equal(err.msg, "the query text holds a NUL byte");
    assert_null(r.sql);

    size_t n = MESH_QUERY_MAX_SQL + 1;
    char *big = malloc(MESH_QUERY_REQUEST_MAX + 2);
    assert_non_null(big);
    memset(big, ' ', MESH_QUERY_REQUEST_MAX + 2);
    assert_int_equal(mesh_query_request_parse(big, n, true, &r, &err), MESH_TOO_LARGE);
    assert_non_null(strstr(err.msg, "query text longer than 102400 bytes"));
    assert_int_equal(mesh_query_request_parse(big, MESH_QUERY_REQUEST_MAX + 1, false, &r, &err),
                     MESH_TOO_LARGE);
    assert_non_null(strstr(err.msg, "query request larger than 1048576 bytes"));
    /* a JSON string as long is refused too, after decoding */
    memcpy(big, "{\"sql\": \"", 9);
    big[9 + n] = '"';
    big[10 + n] = '}';
    assert_int_equal(mesh_query_request_parse(big, n + 11, false, &r, &err), MESH_TOO_LARGE);
    free(big);
}

static void test_request_refused(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        mesh_status_t code;
        const char *msg; /* the whole message */
    } bad[] = {
        {"{not json", MESH_PARSE,
         "malformed JSON at line 1, column 4: string or '}' expected near 'not'"},
        {"{\"sql\": \"SELECT 1\",\n \"format\": csv}", MESH_PARSE,
         "malformed JSON at line 2, column 14: invalid token near 'csv'"},
        {"", MESH_PARSE,
         "malformed JSON at line 1, column 0: '[' or '{' expected near end of file"},
        {"{\"sql\": \"a\", \"sql\": \"b\"}", MESH_PARSE,
         "malformed JSON at line 1, column 18: duplicate object key near '\"sql\"'"},
        {"[\"SELECT 1\"]", MESH_INVALID, "the body must be {\"sql\": \"...\"}"},
        {"{\"sql\": 1}", MESH_INVALID, "'sql' must be a string"},
        {"{\"sql\": \"x\\u0000y\"}", MESH_PARSE,
         "malformed JSON at line 1, column 18: a string holds \\u0000 (a NUL character)"},
        {"{\"format\": 3}", MESH_INVALID, "'format' must be a short string"},
        {"{\"format\": \"a-format-name-of-16\"}", MESH_INVALID, "'format' must be a short string"},
        {"{\"time_format\": null}", MESH_INVALID, "'time_format' must be a short string"},
        {"{\"timeout_ms\": 0}", MESH_INVALID, "'timeout_ms' must be a positive integer"},
        {"{\"timeout_ms\": 1.5}", MESH_INVALID, "'timeout_ms' must be a positive integer"},
        {"{\"max_rows\": -1}", MESH_INVALID, "'max_rows' must be a positive integer"},
        {"{\"max_rows\": \"10\"}", MESH_INVALID, "'max_rows' must be a positive integer"},
        {"{\"colour\": 1}", MESH_INVALID,
         "unknown field 'colour' (expected sql, format, time_format, timeout_ms, max_rows, "
         "min_position)"},
        {"{\"min_position\": {\"stream\": \"factory\", \"seq\": 1}}", MESH_INVALID,
         "'min_position' must be {\"stream\": \"MESHD_DOM_<domain>\", \"seq\": N}, as a write's "
         "answer gives it"},
        {"{\"min_position\": {\"stream\": \"MESHD_DOM_Bad Name\", \"seq\": 1}}", MESH_INVALID,
         "'min_position' must be"},
        {"{\"min_position\": {\"stream\": \"MESHD_DOM_f\", \"seq\": -1}}", MESH_INVALID,
         "'min_position' must be"},
        {"{\"min_position\": {\"stream\": \"MESHD_DOM_f\", \"seq\": 1, \"x\": 2}}", MESH_INVALID,
         "'min_position' must be"},
        {"{\"min_position\": [1]}", MESH_INVALID, "'min_position' must be"},
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(bad); i++) {
        mesh_query_request_t r;
        mesh_err_t err;
        mesh_err_clear(&err);
        mesh_status_t st =
            mesh_query_request_parse(bad[i].body, strlen(bad[i].body), false, &r, &err);
        if (st != bad[i].code || strncmp(err.msg, bad[i].msg, strlen(bad[i].msg)) != 0)
            fail_msg("%s: %s '%s', expected %s '%s'", bad[i].body, mesh_status_name(st), err.msg,
                     mesh_status_name(bad[i].code), bad[i].msg);
        /* nothing is left to free, and nothing half-set */
        assert_null(r.sql);
        assert_string_equal(r.format, "");
    }
}

typedef struct refs {
    char names[8][64];
    int n;
} refs_t;

static void add_ref(void *arg, const char *name, size_t n)
{
    refs_t *r = arg;
    if (r->n < 8)
        snprintf(r->names[r->n++], 64, "%.*s", (int)n, name);
}

static void test_schema_refs(void **state)
{
    (void)state;
    refs_t r = {0};
    const char *sql = "SELECT a.x, 'no.pe', \"home-42\".climate.t -- c.d\n"
                      "FROM factory.readings AS a /* e.f */ JOIN \"home-42\".climate "
                      "JOIN [w x].y JOIN `q`.z";
    mesh_sql_schema_refs(sql, strlen(sql), add_ref, &r);
    /* a.x names a table alias and climate.t a table: the caller checks the names against
     * the domains it has */
    const char *want[] = {"a", "home-42", "climate", "factory", "home-42", "w x", "q"};
    assert_int_equal(r.n, MESH_ARRAY_LEN(want));
    for (int i = 0; i < r.n; i++)
        assert_string_equal(r.names[i], want[i]);
    /* cut short: an open literal, comment or quoted name ends the text without a read past it */
    const char *cut[] = {"SELECT 'a.b", "SELECT /* a.b", "SELECT \"a", "SELECT [a", "x."};
    for (size_t i = 0; i < MESH_ARRAY_LEN(cut); i++) {
        refs_t c = {0};
        mesh_sql_schema_refs(cut[i], strlen(cut[i]), add_ref, &c);
        assert_true(c.n <= 1);
    }
}

static void test_outfmt(void **state)
{
    (void)state;
    mesh_outfmt_t f;
    assert_int_equal(mesh_outfmt_parse(NULL, &f), MESH_OK);
    assert_int_equal(f, MESH_OUT_JSON);
    assert_int_equal(mesh_outfmt_parse("", &f), MESH_OK);
    assert_int_equal(f, MESH_OUT_JSON);
    assert_int_equal(mesh_outfmt_parse("jsonl", &f), MESH_OK);
    assert_int_equal(f, MESH_OUT_NDJSON);
    assert_int_equal(mesh_outfmt_parse("csv", &f), MESH_OK);
    assert_int_equal(f, MESH_OUT_CSV);
    assert_int_equal(mesh_outfmt_parse("CSV", &f), MESH_INVALID);
    assert_int_equal(mesh_outfmt_parse("xml", &f), MESH_INVALID);
    assert_string_equal(mesh_outfmt_mime(MESH_OUT_JSON), "application/json");
    assert_string_equal(mesh_outfmt_mime(MESH_OUT_NDJSON), "application/x-ndjson");
    assert_string_equal(mesh_outfmt_mime(MESH_OUT_CSV), "text/csv; charset=utf-8");
}

static void test_double(void **state)
{
    (void)state;
    static const struct {
        double d;
        const char *text;
    } cases[] = {
        {0.0, "0.0"},
        {-0.0, "-0.0"},
        {21.5, "21.5"},
        {-0.1, "-0.1"},
        {1.0 / 3, "0.3333333333333333"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1e21, "1e+21"},
        {2e-7, "2e-07"},
        {123456789012.0, "123456789012.0"},
        {(double)INFINITY, "null"},
        {(double)NAN, "null"},
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(cases); i++) {
        mesh_buf_t b;
        mesh_buf_init(&b, 64);
        assert_int_equal(mesh_buf_add_double(&b, cases[i].d), MESH_OK);
        if (strcmp(b.data, cases[i].text) != 0)
            fail_msg("%.17g: '%s', expected '%s'", cases[i].d, b.data, cases[i].text);
        mesh_buf_free(&b);
    }
}

/* ---- results of real queries over a real domain ---- */

#define CONTRACT                                                                                   \
    "apiVersion: v3.1.0\nkind: DataContract\nid: urn:t:readings\nversion: 1.0.0\n"                 \
    "status: active\ndomain: factory\nschema:\n  - name: readings\n    properties:\n"              \
    "      - name: device\n        logicalType: string\n        primaryKey: true\n"                \
    "        primaryKeyPosition: 1\n"                                                              \
    "      - name: ts\n        logicalType: timestamp\n        primaryKey: true\n"                 \
    "        primaryKeyPosition: 2\n"                                                              \
    "      - name: temp\n        logicalType: number\n"                                            \
    "      - name: note\n        logicalType: string\n"

typedef struct fixture {
    char dir[64];
    mesh_catalog_t *cat;
    mesh_registry_t *reg;
    mesh_qpool_t *pool;
    mesh_policy_t *policy;
    mesh_identity_t who;
} fixture_t;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/mesh-query-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    char path[128];
    snprintf(path, sizeof path, "%s/catalog.db", f->dir);
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_domain_opts_t o = {.idem_ttl_ns = 3600LL * MESH_NS_PER_SEC};
    mesh_domain_meta_t m = {.name = "factory"};
    if (mesh_catalog_open(path, &f->cat, &err) != MESH_OK ||
        mesh_registry_open(f->dir, f->cat, &o, &f->reg, &err) != MESH_OK ||
        mesh_registry_create_domain(f->reg, &m, &err) != MESH_OK)
        goto err;
    mesh_snapshot_t *s = mesh_registry_snapshot(f->reg);
    mesh_contract_result_t res;
    mesh_status_t st =
        mesh_domain_put_contract(s->doms[0].dom, CONTRACT, strlen(CONTRACT), &res, &err);
    mesh_buf_free(&res.changes);
    mesh_snapshot_put(s);
    if (st != MESH_OK)
        goto err;
    /* rows through the CSV parser, as a client would send them */
    static const char rows[] = "device,ts,temp,note\n"
                               "d1,2026-01-01T00:00:00Z,21.5,\"a,b\"\n"
                               "d2,2026-01-01T00:00:01.5Z,,\"say \"\"hi\"\"\"\n"
                               "d3,2026-01-01T00:00:02Z,-3,\"two\r\nlines\"\n";
    s = mesh_registry_snapshot(f->reg);
    const mesh_product_t *p = mesh_snapshot_product(s, "factory", "readings");
    mesh_batch_t b;
    mesh_batch_init(&b, "factory", MESH_BATCH_DEFAULT_LIMITS);
    mesh_apply_result_t ar;
    st = p ? mesh_csv_parse(rows, strlen(rows), p, &b) : MESH_NOT_FOUND;
    if (st == MESH_OK)
        st = mesh_domain_write(s->doms[0].dom, &b, NULL, &ar, &err);
    mesh_batch_free(&b);
    mesh_snapshot_put(s);
    if (st != MESH_OK)
        goto err;
    mesh_policy_src_t src;
    memset(&src, 0, sizeof src);
    if (mesh_qpool_create(2, &f->pool, &err) != MESH_OK ||
        mesh_policy_build(&src, &f->policy, &err) != MESH_OK)
        goto err;
    snprintf(f->who.name, sizeof f->who.name, "test");
    snprintf(f->who.roles, sizeof f->who.roles, "admin");
    *state = f;
    return 0;
err:
    fprintf(stderr, "setup: %s\n", err.msg);
    return -1;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    mesh_policy_put(f->policy);
    mesh_qpool_destroy(f->pool);
    mesh_registry_close(f->reg);
    mesh_catalog_close(f->cat);
    nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Runs sql and writes its result in fmt into out (a malloc'd string); returns the status of
 * the start (MESH_OK when it ran, whatever happened after the first row). */
static mesh_status_t run(fixture_t *f, const char *sql, mesh_outfmt_t fmt, bool time_ns, char **out,
                         mesh_err_t *err)
{
    mesh_snapshot_t *s = mesh_registry_snapshot(f->reg);
    mesh_query_limits_t lim = {.timeout_ns = 10 * MESH_NS_PER_SEC, .max_value_bytes = 1 << 20};
    mesh_query_t *q = NULL;
    mesh_err_clear(err);
    *out = NULL;
    mesh_status_t st =
        mesh_query_start(f->pool, s, f->policy, &f->who, sql, strlen(sql), &lim, &q, err);
    mesh_snapshot_put(s);
    if (st != MESH_OK)
        return st;
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 20);
    mesh_writer_t w;
    mesh_writer_init(&w, fmt, time_ns);
    assert_int_equal(mesh_writer_begin(&w, q, &b), MESH_OK);
    int rc;
    while ((rc = mesh_query_step(q, err)) == 1)
        assert_int_equal(mesh_writer_row(&w, q, &b), MESH_OK);
    assert_int_equal(mesh_writer_end(&w, q, rc < 0 ? err : NULL, 1.0, &b), MESH_OK);
    mesh_query_finish(q);
    *out = b.data ? strdup(b.data) : strdup("");
    mesh_buf_free(&b);
    return MESH_OK;
}

/* The text of a JSON result from its first row on (columns and timing cut away). */
static const char *rows_of(const char *json)
{
    const char *r = strstr(json, "\"rows\":");
    assert_non_null(r);
    return r;
}

static void test_csv(void **state)
{
    fixture_t *f = *state;
    char *out;
    mesh_err_t err;
    assert_int_equal(run(f,
                         "SELECT device, ts, temp, note AS \"the, note\" FROM factory.readings "
                         "ORDER BY device",
                         MESH_OUT_CSV, false, &out, &err),
                     MESH_OK);
    /* RFC 4180: CRLF line ends; a field with a comma, quote or line break is quoted, quotes
     * doubled; NULL is an empty field; TIMESTAMP columns are ISO 8601 */
    assert_string_equal(out, "device,ts,temp,\"the, note\"\r\n"
                             "d1,2026-01-01T00:00:00Z,21.5,\"a,b\"\r\n"
                             "d2,2026-01-01T00:00:01.500Z,,\"say \"\"hi\"\"\"\r\n"
                             "d3,2026-01-01T00:00:02Z,-3.0,\"two\r\nlines\"\r\n");
    free(out);
    /* time_ns: the time as an integer */
    assert_int_equal(run(f, "SELECT ts FROM factory.readings WHERE device = 'd2'", MESH_OUT_CSV,
                         true, &out, &err),
                     MESH_OK);
    assert_string_equal(out, "ts\r\n1767225601500000000\r\n");
    free(out);
    /* infinities have no CSV form: empty, like NULL */
    assert_int_equal(run(f, "SELECT 1e999, -1e999, 'x\"', x'41'", MESH_OUT_CSV, false, &out, &err),
                     MESH_OK);
    assert_string_equal(out, "1e999,-1e999,\"'x\"\"'\",x'41'\r\n,,\"x\"\"\",A\r\n");
    free(out);
}

static void test_json(void **state)
{
    fixture_t *f = *state;
    char *out;
    mesh_err_t err;
    assert_int_equal(run(f, "SELECT device, ts, temp, note FROM factory.readings ORDER BY device",
                         MESH_OUT_JSON, false, &out, &err),
                     MESH_OK);
    assert_non_null(strstr(out, "{\"columns\":[{\"name\":\"device\",\"type\":\"TEXT\"},"
                                "{\"name\":\"ts\",\"type\":\"TIMESTAMP\"},"
                                "{\"name\":\"temp\",\"type\":\"REAL\"},"
                                "{\"name\":\"note\",\"type\":\"TEXT\"}],"));
    assert_non_null(strstr(out, "\"rows\":[[\"d1\",\"2026-01-01T00:00:00Z\",21.5,\"a,b\"],"
                                "[\"d2\",\"2026-01-01T00:00:01.500Z\",null,\"say \\\"hi\\\"\"],"
                                "[\"d3\",\"2026-01-01T00:00:02Z\",-3.0,\"two\\r\\nlines\"]],"
                                "\"row_count\":3,"));
    assert_null(strstr(out, "\"error\""));
    free(out);

    /* control characters escaped; invalid UTF-8 (a text cast from bytes) cannot reach the
     * client as such: every byte of it is replaced; a blob is its bytes as text; an
     * expression has no declared type */
    assert_int_equal(run(f,
                         "SELECT char(1) || char(9) || char(31) || '\\' || char(127) AS c, "
                         "CAST(x'ff61c3' AS TEXT) AS bad, x'00414243' AS blob, NULL AS n, "
                         "'é€😀' AS u, 1e999 AS inf",
                         MESH_OUT_JSON, false, &out, &err),
                     MESH_OK);
    assert_non_null(strstr(out, "{\"name\":\"c\",\"type\":null}"));
    const char *rows = rows_of(out);
    if (strncmp(rows,
                "\"rows\":[[\"\\u0001\\t\\u001f\\\\\x7f\",\"\xef\xbf\xbd"
                "a\xef\xbf\xbd\",\"\\u0000ABC\",null,\"é€😀\",null]]",
                strlen("\"rows\":[[\"\\u0001\\t\\u001f\\\\\x7f\",\"\xef\xbf\xbd"
                       "a\xef\xbf\xbd\",\"\\u0000ABC\",null,\"é€😀\",null]]")) != 0)
        fail_msg("got %s", rows);
    free(out);
}

static void test_ndjson(void **state)
{
    fixture_t *f = *state;
    char *out;
    mesh_err_t err;
    assert_int_equal(run(f,
                         "SELECT device AS \"de\"\"v\", temp, note FROM factory.readings "
                         "WHERE device <> 'd3' ORDER BY device",
                         MESH_OUT_NDJSON, false, &out, &err),
                     MESH_OK);
    assert_string_equal(out, "{\"de\\\"v\":\"d1\",\"temp\":21.5,\"note\":\"a,b\"}\n"
                             "{\"de\\\"v\":\"d2\",\"temp\":null,\"note\":\"say \\\"hi\\\"\"}\n");
    free(out);
    /* an empty result is empty */
    assert_int_equal(
        run(f, "SELECT * FROM factory.readings WHERE 0", MESH_OUT_NDJSON, false, &out, &err),
        MESH_OK);
    assert_string_equal(out, "");
    free(out);
}

static void test_error_after_rows(void **state)
{
    fixture_t *f = *state;
    char *out;
    mesh_err_t err;
    const char *sql = "SELECT 1 AS x UNION ALL SELECT abs(-9223372036854775807 - 1)";
    assert_int_equal(run(f, sql, MESH_OUT_NDJSON, false, &out, &err), MESH_OK);
    assert_string_equal(out, "{\"x\":1}\n{\"error\":{\"code\":\"INVALID\",\"message\":\"integer "
                             "overflow\"}}\n");
    free(out);
    assert_int_equal(run(f, sql, MESH_OUT_JSON, false, &out, &err), MESH_OK);
    assert_non_null(strstr(out, "\"rows\":[[1]],\"row_count\":1,"));
    assert_non_null(
        strstr(out, ",\"error\":{\"code\":\"INVALID\",\"message\":\"integer overflow\"}}"));
    free(out);
    /* CSV has no place for it: the rows written are all there is (the server cuts the
     * response short) */
    assert_int_equal(run(f, sql, MESH_OUT_CSV, false, &out, &err), MESH_OK);
    assert_string_equal(out, "x\r\n1\r\n");
    free(out);
}

/* The sandbox: what a statement may touch, decided when it is prepared. */
static void test_sandbox(void **state)
{
    fixture_t *f = *state;
    static const struct {
        const char *sql;
        mesh_status_t code;
        const char *msg;
    } refused[] = {
        {"ATTACH DATABASE '/tmp/x.db' AS x", MESH_FORBIDDEN, NULL},
        {"PRAGMA table_info(readings)", MESH_FORBIDDEN, NULL},
        {"SELECT * FROM pragma_table_info('readings')", MESH_FORBIDDEN, "not allowed in a query"},
        {"SELECT * FROM sqlite_master", MESH_FORBIDDEN, NULL},
        {"SELECT * FROM factory.sqlite_master", MESH_FORBIDDEN, NULL},
        {"SELECT load_extension('/tmp/x.so')", MESH_FORBIDDEN,
         "not allowed in a query: not authorized to use function: load_extension"},
        {"SELECT fts3_tokenizer('simple')", MESH_FORBIDDEN, "fts3_tokenizer"},
        {"DELETE FROM factory.readings", MESH_FORBIDDEN, NULL},
        {"INSERT INTO factory.readings(device) VALUES ('x')", MESH_FORBIDDEN, NULL},
        {"UPDATE factory.readings SET temp = 0", MESH_FORBIDDEN, NULL},
        {"CREATE TABLE t(x)", MESH_FORBIDDEN, NULL},
        {"CREATE TEMP VIEW v AS SELECT 1", MESH_FORBIDDEN, NULL},
        {"DROP TABLE factory.readings", MESH_FORBIDDEN, NULL},
        {"SELECT 1; SELECT 2", MESH_INVALID, "one statement"},
        {"SELECT * FROM factory.nope", MESH_PARSE, "no such table"},
        {"SELECT * FROM elsewhere.readings", MESH_PARSE, "no such table"},
        {"SELEC 1", MESH_PARSE, "syntax error"},
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(refused); i++) {
        char *out = NULL;
        mesh_err_t err;
        mesh_status_t st = run(f, refused[i].sql, MESH_OUT_JSON, false, &out, &err);
        bool msg_ok = refused[i].msg == NULL || strstr(err.msg, refused[i].msg) != NULL;
        if (st != refused[i].code || !msg_ok)
            fail_msg("%s: %s '%s', expected %s%s%s", refused[i].sql, mesh_status_name(st), err.msg,
                     mesh_status_name(refused[i].code), refused[i].msg ? " " : "",
                     refused[i].msg ? refused[i].msg : "");
        free(out);
    }
    /* what it allows: products, their quarantine, json_each, CTEs, the time functions */
    static const char *const allowed[] = {
        "SELECT count(*) FROM factory.readings",
        "SELECT count(*) FROM factory.readings__quarantine",
        "SELECT value FROM json_each('[1,2]')",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) "
        "SELECT sum(i) FROM n",
        "SELECT iso(time_bucket('1h', ts)) FROM factory.readings",
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(allowed); i++) {
        char *out = NULL;
        mesh_err_t err;
        if (run(f, allowed[i], MESH_OUT_JSON, false, &out, &err) != MESH_OK)
            fail_msg("%s: refused: %s", allowed[i], err.msg);
        if (strstr(out, "\"error\""))
            fail_msg("%s: %s", allowed[i], out);
        free(out);
    }
}

/* ---- lineage of a derived product's SQL (query/lineage.c, derive/sqlshape.c) ---- */

static void test_sql_shape(void **state)
{
    (void)state;
    mesh_sql_shape_t *sh = calloc(1, sizeof *sh);
    assert_non_null(sh);
    const char *q = "SELECT DISTINCT a, round(avg(b), 2) AS m, count(*) n, mask(c), f(x, y) z, "
                    "t.* FROM t WHERE (SELECT 1) GROUP BY 1";
    assert_int_equal(mesh_sql_select_shape(q, strlen(q), sh), MESH_OK);
    assert_int_equal(sh->nitems, 6);
    assert_true(sh->distinct);
    assert_false(sh->items[0].hides);
    assert_true(sh->items[1].hides);
    assert_true(sh->items[2].hides);
    assert_true(sh->items[3].masks);
    assert_false(sh->items[4].hides);
    assert_string_equal(sh->items[4].head, "f");
    assert_true(sh->items[5].star);
    assert_true(sh->subquery_from);
    assert_int_equal(strncmp(q + sh->list_end, "FROM", 4), 0);
    assert_int_equal(strncmp(q + sh->items[1].off, "round(avg(b), 2) AS m", sh->items[1].len), 0);
    /* shapes it leaves to the fallback */
    static const char *const other[] = {"WITH x AS (SELECT 1) SELECT * FROM x",
                                        "SELECT a FROM t UNION SELECT b FROM u",
                                        "VALUES (1)",
                                        "SELECT 'unterminated",
                                        "SELECT (a FROM t",
                                        "SELECT , FROM t",
                                        "SELECT a /* open comment"};
    for (size_t i = 0; i < MESH_ARRAY_LEN(other); i++)
        if (mesh_sql_select_shape(other[i], strlen(other[i]), sh) == MESH_OK)
            fail_msg("%s: split", other[i]);
    /* the shapes refreshed incrementally: one table, each row on its own */
    static const struct {
        const char *sql;
        bool rows;
    } rm[] = {
        {"SELECT device, ts, temp * 2 AS t FROM f.r WHERE load > 0 ORDER BY ts", true},
        {"SELECT device, ts FROM f.r WHERE device IN ('a', 'b')", true},
        {"SELECT device, max(ts) FROM f.r GROUP BY device", false},
        {"SELECT DISTINCT device, ts FROM f.r", false},
        {"SELECT a.device, a.ts FROM f.r a JOIN f.d b ON a.device = b.device", false},
        {"SELECT a.device, a.ts FROM f.r a, f.d b", false},
        {"SELECT device, ts FROM f.r WHERE ts > now() - 10", false},
        {"SELECT device, ts FROM f.r WHERE temp > (SELECT avg(temp) FROM f.r)", false},
        {"SELECT device, ts FROM f.r LIMIT 10", false},
        {"SELECT device, ts, sum(temp) OVER (PARTITION BY device) FROM f.r", false},
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(rm); i++) {
        assert_int_equal(mesh_sql_select_shape(rm[i].sql, strlen(rm[i].sql), sh), MESH_OK);
        if (sh->row_mapping != rm[i].rows)
            fail_msg("%s: row_mapping %d", rm[i].sql, sh->row_mapping);
    }
    /* the time-bucket shape: grouped by time_bucket of a column (alias, position or text) */
    static const struct {
        const char *sql;
        int item;
    } bk[] = {
        {"SELECT device, time_bucket('1m', ts) AS m, avg(temp) FROM f.r GROUP BY device, m", 1},
        {"SELECT time_bucket('5m', ts) b, count(*) FROM f.r WHERE load > 0 GROUP BY 1", 0},
        {"SELECT time_bucket('1h',ts), max(temp) FROM f.r GROUP BY time_bucket( '1h', ts )", 0},
        {"SELECT time_bucket('1m', ts) AS m, avg(temp) FROM f.r GROUP BY device", -1},
        {"SELECT time_bucket('1m', ts) AS m, avg(temp) FROM f.r a JOIN f.d b ON 1 GROUP BY m", -1},
        {"SELECT DISTINCT time_bucket('1m', ts) AS m FROM f.r GROUP BY m", -1},
        {"SELECT time_bucket('1m', ts) AS m, count(*) FROM f.r WHERE ts > now() GROUP BY m", -1},
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(bk); i++) {
        assert_int_equal(mesh_sql_select_shape(bk[i].sql, strlen(bk[i].sql), sh), MESH_OK);
        if (sh->bucket_item != bk[i].item)
            fail_msg("%s: bucket item %d", bk[i].sql, sh->bucket_item);
    }
    q = bk[1].sql;
    assert_int_equal(mesh_sql_select_shape(q, strlen(q), sh), MESH_OK);
    assert_string_equal(sh->bucket_width, "5m");
    assert_int_equal(strncmp(q + sh->where_kw, "WHERE load", 10), 0);
    assert_int_equal(strncmp(q + sh->group_kw, "GROUP BY 1", 10), 0);
    /* a count mixed with a value does not hide it */
    q = "SELECT count(a) + b AS x, sum(a) FROM t";
    assert_int_equal(mesh_sql_select_shape(q, strlen(q), sh), MESH_OK);
    assert_false(sh->items[0].hides);
    assert_true(sh->items[1].hides);
    free(sh);
}

static const mesh_lineage_col_t *lcol(const mesh_lineage_t *l, const char *name)
{
    for (size_t i = 0; i < l->ncols; i++)
        if (strcmp(l->cols[i].name, name) == 0)
            return &l->cols[i];
    fail_msg("no column %s", name);
    return NULL;
}

/* The inputs of c as "col,col" (product columns of factory.readings only). */
static void expect_inputs(const mesh_lineage_col_t *c, mesh_xform_t xf, const char *want)
{
    char got[256] = "";
    for (size_t i = 0; i < c->nin; i++) {
        assert_string_equal(c->in[i].domain, "factory");
        assert_string_equal(c->in[i].product, "readings");
        strcat(got, i ? "," : "");
        strcat(got, c->in[i].column);
    }
    if (strcmp(got, want) != 0 || c->xf != xf)
        fail_msg("%s: %s %s, expected %s %s", c->name, mesh_xform_name(c->xf), got,
                 mesh_xform_name(xf), want);
}

static mesh_status_t lineage(fixture_t *f, const char *sql, mesh_lineage_t *l, mesh_err_t *err)
{
    mesh_snapshot_t *s = mesh_registry_snapshot(f->reg);
    mesh_err_clear(err);
    mesh_status_t st = mesh_query_lineage(f->pool, s, f->policy, &f->who, sql, strlen(sql),
                                          10 * MESH_NS_PER_SEC, 1000, l, err);
    mesh_snapshot_put(s);
    return st;
}

static void test_lineage(void **state)
{
    fixture_t *f = *state;
    mesh_lineage_t l;
    mesh_err_t err;
    const char *q = "SELECT device, temp * 2 AS t2, avg(temp) AS a, mask(note) AS m, "
                    "upper(device) || note AS mix, max(ts) AS last, count(*) AS n "
                    "FROM factory.readings WHERE note IS NOT NULL GROUP BY device";
    if (lineage(f, q, &l, &err) != MESH_OK)
        fail_msg("%s", err.msg);
    assert_true(l.column_level);
    assert_int_equal(l.ntables, 1);
    assert_int_equal(l.ncols, 7);
    expect_inputs(lcol(&l, "device"), MESH_XF_IDENTITY, "device");
    expect_inputs(lcol(&l, "t2"), MESH_XF_TRANSFORM, "temp");
    expect_inputs(lcol(&l, "a"), MESH_XF_AGGREGATE, "temp");
    expect_inputs(lcol(&l, "m"), MESH_XF_MASK, "note");
    expect_inputs(lcol(&l, "mix"), MESH_XF_TRANSFORM, "device,note");
    expect_inputs(lcol(&l, "last"), MESH_XF_TRANSFORM, "ts");
    expect_inputs(lcol(&l, "n"), MESH_XF_AGGREGATE, "");
    assert_int_equal(lcol(&l, "device")->type, MESH_LT_STRING);
    assert_int_equal(lcol(&l, "t2")->type, MESH_LT_NUMBER);
    assert_int_equal(lcol(&l, "a")->type, MESH_LT_NUMBER);
    assert_int_equal(lcol(&l, "n")->type, MESH_LT_INTEGER);
    mesh_lineage_free(&l);
    /* a star: every column an identity */
    q = "SELECT * FROM factory.readings";
    if (lineage(f, q, &l, &err) != MESH_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(l.ncols, 4);
    expect_inputs(lcol(&l, "ts"), MESH_XF_IDENTITY, "ts");
    assert_int_equal(lcol(&l, "ts")->type, MESH_LT_TIMESTAMP);
    mesh_lineage_free(&l);
    /* a subquery in FROM: no split; the expression gets every column read */
    q = "SELECT x + 1 AS y, device FROM (SELECT temp AS x, device FROM factory.readings)";
    if (lineage(f, q, &l, &err) != MESH_OK)
        fail_msg("%s", err.msg);
    assert_false(l.column_level);
    expect_inputs(lcol(&l, "device"), MESH_XF_IDENTITY, "device");
    assert_true(lcol(&l, "y")->nin >= 1);
    mesh_lineage_free(&l);
    /* a join of the product with itself: both sides' columns */
    q = "SELECT a.device, a.temp - b.temp AS diff FROM factory.readings a JOIN factory.readings "
        "b ON a.device = b.device AND b.ts < a.ts";
    if (lineage(f, q, &l, &err) != MESH_OK)
        fail_msg("%s", err.msg);
    expect_inputs(lcol(&l, "diff"), MESH_XF_TRANSFORM, "temp");
    expect_inputs(lcol(&l, "device"), MESH_XF_IDENTITY, "device");
    mesh_lineage_free(&l);
    /* CASE and a scalar subquery read what they name */
    q = "SELECT CASE WHEN temp > 0 THEN note ELSE 'cold' END AS c, (SELECT max(temp) FROM "
        "factory.readings) AS top FROM factory.readings";
    if (lineage(f, q, &l, &err) != MESH_OK)
        fail_msg("%s", err.msg);
    expect_inputs(lcol(&l, "c"), MESH_XF_TRANSFORM, "temp,note");
    expect_inputs(lcol(&l, "top"), MESH_XF_TRANSFORM, "temp");
    mesh_lineage_free(&l);
    /* refusals */
    static const struct {
        const char *sql;
        mesh_status_t st;
    } bad[] = {
        {"DELETE FROM factory.readings", MESH_FORBIDDEN},
        {"ATTACH 'x.db' AS x", MESH_FORBIDDEN},
        {"SELECT * FROM factory.readings__quarantine", MESH_FORBIDDEN},
        {"SELEC device FROM factory.readings", MESH_PARSE},
        {"SELECT nope FROM factory.readings", MESH_PARSE},
        {"SELECT device, device FROM factory.readings", MESH_INVALID},
        {"SELECT temp + 1 FROM factory.readings", MESH_INVALID},
        {"SELECT device FROM factory.readings WHERE temp > ?", MESH_INVALID},
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(bad); i++) {
        mesh_status_t st = lineage(f, bad[i].sql, &l, &err);
        if (st != bad[i].st)
            fail_msg("%s: %s (%s)", bad[i].sql, mesh_status_name(st), err.msg);
    }
    char *big = malloc(MESH_DERIVE_MAX_SQL + 100);
    memset(big, ' ', MESH_DERIVE_MAX_SQL + 99);
    memcpy(big, "SELECT 1 AS x", 13);
    big[MESH_DERIVE_MAX_SQL + 99] = '\0';
    assert_int_equal(lineage(f, big, &l, &err), MESH_TOO_LARGE);
    free(big);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_request_ok),      cmocka_unit_test(test_request_raw_sql),
        cmocka_unit_test(test_request_refused), cmocka_unit_test(test_schema_refs),
        cmocka_unit_test(test_outfmt),          cmocka_unit_test(test_double),
        cmocka_unit_test(test_sql_shape),
    };
    const struct CMUnitTest results[] = {
        cmocka_unit_test(test_csv),     cmocka_unit_test(test_json),
        cmocka_unit_test(test_ndjson),  cmocka_unit_test(test_error_after_rows),
        cmocka_unit_test(test_sandbox), cmocka_unit_test(test_lineage),
    };
    int failed = cmocka_run_group_tests_name("query request", pure, NULL, NULL);
    failed += cmocka_run_group_tests_name("query results", results, setup, teardown);
    return failed;
}
