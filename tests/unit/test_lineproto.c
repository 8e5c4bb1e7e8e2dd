/*
 * test_lineproto.c - InfluxDB line protocol parsing into batches (ingest/lineproto.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/util.h"
#include "ingest/batch.h"
#include "ingest/lineproto.h"
#include "test_products.h"

int main(void);

static tp_catalog_t cat;

static int setup(void **state)
{
    cat.v[0] = tp_readings(false);
    cat.v[1] = tp_readings(true);
    cat.v[2] = tp_registry();
    cat.v[3] = tp_kinds();
    cat.n = 4;
    return 0;
}

static int teardown(void **state)
{
    for (size_t i = 0; i < cat.n; i++)
        tp_free(cat.v[i]);
    return 0;
}

static mesh_status_t parse_prec(mesh_batch_t *b, const char *body, mesh_precision_t prec)
{
    mesh_batch_init(b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    b->received_ns = 99;
    b->precision = prec;
    return mesh_lp_parse(body, strlen(body), "factory-a", tp_lookup, &cat, b);
}

static mesh_status_t parse(mesh_batch_t *b, const char *body)
{
    return parse_prec(b, body, MESH_PREC_AUTO);
}

static const mesh_part_t *part_of(const mesh_batch_t *b, const char *product)
{
    for (size_t i = 0; i < b->nparts; i++)
        if (strcmp(b->parts[i].product->name, product) == 0)
            return &b->parts[i];
    fail_msg("no part for %s", product);
    return NULL;
}

static const mesh_value_t *cell(const mesh_batch_t *b, const char *product, size_t row,
                                const char *col)
{
    const mesh_part_t *p = part_of(b, product);
    assert_true(row < p->nrows);
    for (size_t i = 0; i < p->ncols; i++)
        if (strcmp(p->product->cols[i].name, col) == 0)
            return &p->vals[row * p->ncols + i];
    fail_msg("no column %s", col);
    return NULL;
}

static const char *text_of(const mesh_batch_t *b, const char *product, size_t row, const char *col)
{
    const mesh_value_t *v = cell(b, product, row, col);
    assert_int_equal(v->type, MESH_V_TEXT);
    return mesh_batch_text(b, v);
}

static int64_t int_of(const mesh_batch_t *b, const char *product, size_t row, const char *col)
{
    const mesh_value_t *v = cell(b, product, row, col);
    assert_int_equal(v->type, MESH_V_INT);
    return v->u.i;
}

static double real_of(const mesh_batch_t *b, const char *product, size_t row, const char *col)
{
    const mesh_value_t *v = cell(b, product, row, col);
    assert_int_equal(v->type, MESH_V_REAL);
    return v->u.d;
}

static void test_basic_line(void **state)
{
    mesh_batch_t b;
    assert_int_equal(parse(&b, "readings,device=d17 temp=21.5,count=3i,on=t,status=\"ok\" "
                               "1700000000000000000\n"),
                     MESH_OK);
    assert_int_equal(mesh_batch_good_rows(&b), 1);
    assert_int_equal(b.nerrors, 0);
    assert_string_equal(text_of(&b, "readings", 0, "device"), "d17");
    assert_true(int_of(&b, "readings", 0, "ts") == 1700000000000000000);
    assert_true(real_of(&b, "readings", 0, "temp") == 21.5);
    assert_true(int_of(&b, "readings", 0, "count") == 3);
    assert_true(int_of(&b, "readings", 0, "on") == 1);
    assert_string_equal(text_of(&b, "readings", 0, "status"), "ok");
    mesh_batch_free(&b);
}

static void test_lines_blank_comments_crlf(void **state)
{
    mesh_batch_t b;
    const char *body = "# a comment\n"
                       "\n"
                       "readings,device=d1 temp=1 1700000000000000000\r\n"
                       "   \t \n"
                       "  # indented comment\n"
                       "readings_q,device=d2 temp=2\r\n"
                       "  readings,device=d3 temp=3,on=false"; /* no final newline */
    assert_int_equal(parse(&b, body), MESH_OK);
    assert_int_equal(b.total_rows, 3);
    assert_int_equal(part_of(&b, "readings")->nrows, 2);
    assert_int_equal(part_of(&b, "readings_q")->nrows, 1);
    assert_string_equal(text_of(&b, "readings", 1, "device"), "d3");
    assert_true(int_of(&b, "readings", 1, "on") == 0);
    assert_true(int_of(&b, "readings", 1, "ts") == 99); /* no timestamp: receive time */
    assert_true(int_of(&b, "readings_q", 0, "ts") == 99);
    mesh_batch_free(&b);

    /* an empty body and a body of comments are empty batches */
    assert_int_equal(parse(&b, ""), MESH_OK);
    assert_int_equal(b.total_rows, 0);
    mesh_batch_free(&b);
    assert_int_equal(parse(&b, "#x\n\r\n#y"), MESH_OK);
    assert_int_equal(b.total_rows, 0);
    mesh_batch_free(&b);
}

static void test_field_types(void **state)
{
    mesh_batch_t b;
    const char *body = "kinds i=12i,n=1.5,b=T,s=\"x\"\n"
                       "kinds i=12u,n=-2e3,b=False\n"
                       "kinds i=-3i,n=1,b=FALSE\n"
                       "kinds i=1,n=5i,b=true\n" /* a float for an integer, an int for a number */
                       "kinds,i=5,n=2.5,b=yes,s=abc s_enum=\"ok\"\n"; /* tags are text */
    assert_int_equal(parse(&b, body), MESH_OK);
    assert_int_equal(b.nerrors, 0);
    assert_true(int_of(&b, "kinds", 0, "i") == 12);
    assert_true(real_of(&b, "kinds", 0, "n") == 1.5);
    assert_true(int_of(&b, "kinds", 0, "b") == 1);
    assert_string_equal(text_of(&b, "kinds", 0, "s"), "x");
    assert_true(int_of(&b, "kinds", 1, "i") == 12);
    assert_true(real_of(&b, "kinds", 1, "n") == -2000);
    assert_true(int_of(&b, "kinds", 1, "b") == 0);
    assert_true(int_of(&b, "kinds", 2, "i") == -3);
    assert_true(int_of(&b, "kinds", 2, "b") == 0);
    assert_true(int_of(&b, "kinds", 3, "i") == 1);
    assert_true(real_of(&b, "kinds", 3, "n") == 5);
    assert_true(int_of(&b, "kinds", 4, "i") == 5);
    assert_true(real_of(&b, "kinds", 4, "n") == 2.5);
    assert_true(int_of(&b, "kinds", 4, "b") == 1);
    assert_string_equal(text_of(&b, "kinds", 4, "s"), "abc");
    mesh_batch_free(&b);

    /* unsigned above int64, typed values that do not fit their column */
    assert_int_equal(parse(&b, "kinds i=18446744073709551615u\n"
                               "kinds s=1i\n"
                               "kinds b=1.5\n"
                               "kinds i=1.5\n"
                               "kinds s_enum=t\n"),
                     MESH_VALIDATION);
    assert_non_null(tp_find_error(
        &b, 1, "i",
        "value 18446744073709551615u is above the largest integer 9223372036854775807"));
    assert_non_null(tp_find_error(&b, 2, "s", "expected a string, got an integer"));
    assert_non_null(tp_find_error(&b, 3, "b", "expected a boolean, got a number"));
    assert_non_null(tp_find_error(&b, 4, "i", "value 1.5 is not an integer"));
    assert_non_null(tp_find_error(&b, 5, "s_enum", "expected a string, got a boolean"));
    assert_int_equal(b.error_rows, 5);
    mesh_batch_free(&b);
}

static void test_escapes(void **state)
{
    mesh_batch_t b;
    const char *body = "kinds,s=a\\ b\\,c\\=d s_len=\"x\\\"y\",s_pat=\"AB-1234\"\n"
                       "kinds s=\"back\\\\slash \\n kept\"\n"
                       "kinds s=\"comma, space = fine\"\n"
                       "kinds,s=tag\\xvalue i=1i\n";
    assert_int_equal(parse(&b, body), MESH_OK);
    assert_string_equal(text_of(&b, "kinds", 0, "s"), "a b,c=d");
    assert_string_equal(text_of(&b, "kinds", 0, "s_len"), "x\"y");
    assert_string_equal(text_of(&b, "kinds", 1, "s"), "back\\slash \\n kept");
    assert_string_equal(text_of(&b, "kinds", 2, "s"), "comma, space = fine");
    assert_string_equal(text_of(&b, "kinds", 3, "s"), "tag\\xvalue");
    mesh_batch_free(&b);

    /* escaped names */
    assert_int_equal(parse(&b, "my\\ meas,x=1 f=1\n"
                               "kin\\,ds s=\"x\"\n"
                               "kinds,a\\ b=1 s=\"x\"\n"
                               "kinds a\\=b=1,s=\"x\"\n"
                               "kinds a\\,b=1\n"),
                     MESH_VALIDATION);
    assert_non_null(tp_find_error(&b, 1, NULL, "unknown product 'my meas' in domain 'factory-a'"));
    assert_non_null(tp_find_error(&b, 2, NULL, "unknown product 'kin,ds' in domain 'factory-a'"));
    assert_non_null(tp_find_error(&b, 3, NULL, "unknown column 'a b'"));
    assert_non_null(tp_find_error(&b, 4, NULL, "unknown column 'a=b'"));
    assert_non_null(tp_find_error(&b, 5, NULL, "unknown column 'a,b'"));
    const mesh_row_error_t *e =
        tp_find_error(&b, 1, NULL, "unknown product 'my meas' in domain 'factory-a'");
    assert_string_equal(e->product, "my meas");
    mesh_batch_free(&b);
}

static void test_timestamp_precision(void **state)
{
    mesh_batch_t b;
    assert_int_equal(parse_prec(&b, "readings,device=d1 temp=1 1700000000\n", MESH_PREC_S),
                     MESH_OK);
    assert_true(int_of(&b, "readings", 0, "ts") == 1700000000000000000);
    mesh_batch_free(&b);
    assert_int_equal(parse_prec(&b, "readings,device=d1 temp=1 1700000000\n", MESH_PREC_NS),
                     MESH_OK);
    assert_true(int_of(&b, "readings", 0, "ts") == 1700000000);
    mesh_batch_free(&b);
    assert_int_equal(parse_prec(&b, "readings,device=d1 temp=1 1700000000123\n", MESH_PREC_AUTO),
                     MESH_OK);
    assert_true(int_of(&b, "readings", 0, "ts") == 1700000000123000000);
    mesh_batch_free(&b);
    assert_int_equal(parse_prec(&b, "readings,device=d1 temp=1 -5\n", MESH_PREC_MS), MESH_OK);
    assert_true(int_of(&b, "readings", 0, "ts") == -5000000);
    mesh_batch_free(&b);
    assert_int_equal(parse_prec(&b, "readings,device=d1 temp=1 9223372036854775807\n", MESH_PREC_S),
                     MESH_VALIDATION);
    assert_non_null(
        tp_find_error(&b, 1, "ts", "value 9223372036854775807 is out of range for a timestamp"));
    mesh_batch_free(&b);
}

static void test_syntax_errors(void **state)
{
    static const struct {
        const char *line, *reason;
    } cases[] = {
        {"readings_q,device=d1 temp", "line 1, col 26: expected '=' after field key 'temp'"},
        {"readings_q,device=d1",
         "line 1, col 21: expected a space and fields after the measurement and tags"},
        {"readings_q,device=d1 ", "line 1, col 22: expected fields after the measurement and tags"},
        {"readings_q,device temp=1", "line 1, col 18: expected '=' after tag key 'device'"},
        {"readings_q,=x temp=1", "line 1, col 12: empty tag key"},
        {"readings_q,device= temp=1", "line 1, col 19: empty value for tag 'device'"},
        {"readings_q temp=", "line 1, col 17: missing value for field 'temp'"},
        {"readings_q temp=1,", "line 1, col 19: empty field key"},
        {"readings_q =1", "line 1, col 12: empty field key"},
        {"readings_q temp=1x", "line 1, col 17: invalid value '1x' for field 'temp'"},
        {"readings_q temp=1.5i", "line 1, col 17: invalid value '1.5i' for field 'temp'"},
        {"readings_q count=-1u", "line 1, col 18: invalid value '-1u' for field 'count'"},
        {"readings_q temp=tru", "line 1, col 17: invalid value 'tru' for field 'temp'"},
        {"readings_q status=\"ok", "line 1, col 19: unterminated string value for field 'status'"},
        {"readings_q status=\"ok\\\"",
         "line 1, col 19: unterminated string value for field 'status'"},
        {"readings_q status=\"ok\"x",
         "line 1, col 23: expected ',' or ' ' after the value of field 'status'"},
        {"readings_q temp=1 abc", "line 1, col 19: invalid timestamp 'abc'"},
        {"readings_q temp=1 1.5", "line 1, col 19: invalid timestamp '1.5'"},
        {"readings_q temp=1 1 x", "line 1, col 21: unexpected text after the timestamp"},
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(cases); i++) {
        mesh_batch_t b;
        /* quarantined: the batch applies, the line is kept with its reason */
        assert_int_equal(parse(&b, cases[i].line), MESH_OK);
        if (tp_find_error(&b, 1, "", cases[i].reason) == NULL)
            fail_msg("'%s': want '%s', got '%s'", cases[i].line, cases[i].reason,
                     b.nerrors ? b.errors[0].reason : "(none)");
        const mesh_part_t *q = part_of(&b, "readings_q");
        assert_int_equal(q->nrows, 0);
        assert_int_equal(q->nquar, 1);
        assert_int_equal(q->quar[0].raw_len, strlen(cases[i].line));
        assert_memory_equal(b.arena.data + q->quar[0].raw_off, cases[i].line,
                            strlen(cases[i].line));
        mesh_batch_free(&b);
    }
    /* a line without a measurement has no product to quarantine into */
    mesh_batch_t b;
    assert_int_equal(parse(&b, ",device=d1 temp=1"), MESH_VALIDATION);
    assert_non_null(tp_find_error(&b, 1, NULL, "line 1, col 1: empty measurement"));
    mesh_batch_free(&b);
    assert_int_equal(parse(&b, "  ,a=b c=1"), MESH_VALIDATION);
    assert_non_null(tp_find_error(&b, 1, NULL, "line 1, col 3: empty measurement"));
    mesh_batch_free(&b);
}

static void test_line_numbers(void **state)
{
    mesh_batch_t b;
    const char *body = "readings_q,device=d1 temp=1\n"
                       "\n"
                       "readings_q,device=d3 temp=1,count=2i,temp\n"
                       "readings_q,device=d4 temp=1\r\n"
                       "readings_q,device=D5 temp=1\r\n";
    assert_int_equal(parse(&b, body), MESH_OK);
    assert_non_null(
        tp_find_error(&b, 3, "", "line 3, col 42: expected '=' after field key 'temp'"));
    assert_non_null(
        tp_find_error(&b, 5, "device", "'D5' does not match the pattern '^[a-z][a-z0-9-]*$'"));
    const mesh_part_t *q = part_of(&b, "readings_q");
    assert_int_equal(q->nrows, 2);
    assert_int_equal(q->nquar, 2);
    assert_int_equal(q->quar[0].row, 3);
    assert_int_equal(q->quar[1].row, 5);
    /* the raw line comes without its CRLF */
    assert_int_equal(q->quar[1].raw_len, strlen("readings_q,device=D5 temp=1"));
    assert_string_equal(b.arena.data + q->quar[1].reason_off,
                        "device: 'D5' does not match the pattern '^[a-z][a-z0-9-]*$'");
    mesh_batch_free(&b);
}

static void test_unknown_product_and_column(void **state)
{
    mesh_batch_t b;
    assert_int_equal(parse(&b, "nosuch,device=d1 temp=1\n"
                               "readings_q,device=d2,colour=red temp=1,weight=2i\n"
                               "readings_q,device=d3 temp=1\n"),
                     MESH_VALIDATION);
    const mesh_row_error_t *e =
        tp_find_error(&b, 1, NULL, "unknown product 'nosuch' in domain 'factory-a'");
    assert_non_null(e);
    assert_string_equal(e->product, "nosuch");
    assert_non_null(tp_find_error(&b, 2, NULL, "unknown column 'colour'"));
    assert_non_null(tp_find_error(&b, 2, NULL, "unknown column 'weight'"));
    assert_int_equal(b.error_rows, 2);
    assert_int_equal(part_of(&b, "readings_q")->nrows, 1);
    assert_int_equal(part_of(&b, "readings_q")->nquar, 1);
    /* the unknown product refuses the batch */
    assert_true(mesh_batch_failed(&b));
    mesh_batch_free(&b);

    /* another domain has none of these products */
    mesh_batch_init(&b, "home-42", MESH_BATCH_DEFAULT_LIMITS);
    const char *line = "readings,device=d1 temp=1";
    assert_int_equal(mesh_lp_parse(line, strlen(line), "home-42", tp_lookup, &cat, &b),
                     MESH_VALIDATION);
    assert_non_null(tp_find_error(&b, 1, NULL, "unknown product 'readings' in domain 'home-42'"));
    mesh_batch_free(&b);
}

static void test_timestamps_and_time_column(void **state)
{
    mesh_batch_t b;
    assert_int_equal(parse(&b, "registry id=\"123e4567-e89b-12d3-a456-426614174000\"\n"
                               "registry id=\"123e4567-e89b-12d3-a456-426614174001\" "
                               "1700000000\n"),
                     MESH_VALIDATION);
    assert_int_equal(part_of(&b, "registry")->nrows, 1);
    assert_non_null(tp_find_error(
        &b, 2, NULL, "a timestamp was given but product 'registry' has no time column"));
    mesh_batch_free(&b);

    /* the time column given as a field and as the timestamp */
    assert_int_equal(parse(&b, "readings,device=d1 ts=5i,temp=1 1700000000000000000\n"),
                     MESH_VALIDATION);
    assert_non_null(tp_find_error(&b, 1, "ts", "column given twice"));
    mesh_batch_free(&b);

    /* the time column as a field alone is fine */
    assert_int_equal(parse(&b, "readings,device=d1 ts=\"2023-11-14T22:13:20Z\",temp=1\n"), MESH_OK);
    assert_true(int_of(&b, "readings", 0, "ts") == 1700000000000000000);
    mesh_batch_free(&b);
}

static void test_long_line(void **state)
{
    /* a line of exactly the limit parses */
    size_t n = MESH_LP_MAX_LINE;
    char *body = malloc(n + 64);
    memcpy(body, "kinds s=\"", 9);
    memset(body + 9, 'x', n - 10);
    body[n - 1] = '"';
    mesh_batch_t b;
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    assert_int_equal(mesh_lp_parse(body, n, "factory-a", tp_lookup, &cat, &b), MESH_OK);
    assert_int_equal(mesh_batch_good_rows(&b), 1);
    assert_int_equal(cell(&b, "kinds", 0, "s")->u.s.len, n - 10);
    mesh_batch_free(&b);

    /* one byte more fails that line only; the next line still parses */
    memcpy(body, "readings_q,device=d1 s=\"", 24);
    memset(body + 24, 'x', n + 1 - 25);
    body[n] = '"';
    memcpy(body + n + 1, "\nreadings_q,device=d2 temp=1\n", 29);
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    assert_int_equal(mesh_lp_parse(body, n + 30, "factory-a", tp_lookup, &cat, &b), MESH_OK);
    char want[128];
    snprintf(want, sizeof want, "line 1 is %d bytes, longer than the limit of %d",
             MESH_LP_MAX_LINE + 1, MESH_LP_MAX_LINE);
    assert_non_null(tp_find_error(&b, 1, "", want));
    assert_int_equal(part_of(&b, "readings_q")->nrows, 1);
    assert_int_equal(part_of(&b, "readings_q")->nquar, 1);
    mesh_batch_free(&b);

    /* an over-long measurement is not unescaped past the scratch buffer */
    memset(body, 'a', n + 10);
    for (size_t i = 0; i < n + 10; i += 2)
        body[i] = '\\', body[i + 1] = ',';
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    assert_int_equal(mesh_lp_parse(body, n + 10, "factory-a", tp_lookup, &cat, &b),
                     MESH_VALIDATION);
    mesh_batch_free(&b);
    free(body);
}

static void test_too_many_fields(void **state)
{
    mesh_buf_t body;
    mesh_buf_init(&body, MESH_BUF_UNLIMITED);
    mesh_buf_adds(&body, "readings_q,device=d1 ");
    for (int i = 0; i < MESH_LP_MAX_FIELDS; i++)
        mesh_buf_printf(&body, "%stemp=1", i ? "," : "");
    mesh_batch_t b;
    mesh_batch_limits_t lim = MESH_BATCH_DEFAULT_LIMITS;
    lim.max_errors = 2000; /* every repeated temp is "column given twice" as well */
    mesh_batch_init(&b, "factory-a", lim);
    assert_int_equal(mesh_lp_parse(body.data, body.len, "factory-a", tp_lookup, &cat, &b), MESH_OK);
    assert_non_null(tp_find_error(&b, 1, "", "line 1 has more than 1024 tags and fields"));
    assert_int_equal(b.error_rows, 1);
    mesh_batch_free(&b);
    mesh_buf_free(&body);
}

static void test_reject_and_limits(void **state)
{
    mesh_batch_t b;
    assert_int_equal(parse(&b, "readings,device=d1 temp=1\n"
                               "readings,device=d2 temp=999\n"
                               "readings,device=d3 temp=1\n"),
                     MESH_VALIDATION);
    assert_true(mesh_batch_failed(&b));
    assert_non_null(tp_find_error(&b, 2, "temp", "value 999 is above the maximum 200"));
    assert_int_equal(b.total_rows, 3); /* parsing went on to report every bad row */
    mesh_batch_free(&b);

    mesh_batch_limits_t lim = MESH_BATCH_DEFAULT_LIMITS;
    lim.max_rows = 2;
    mesh_batch_init(&b, "factory-a", lim);
    const char *body = "readings,device=d1 temp=1\n"
                       "readings,device=d2 temp=1\n"
                       "readings,device=d3 temp=1\n"
                       "readings,device=d4 temp=1\n";
    assert_int_equal(mesh_lp_parse(body, strlen(body), "factory-a", tp_lookup, &cat, &b),
                     MESH_TOO_LARGE);
    assert_non_null(tp_find_error(&b, 3, NULL, "the batch has more than 2 rows"));
    assert_int_equal(b.total_rows, 2);
    mesh_batch_free(&b);
}

static void test_product_cache_and_key_order(void **state)
{
    /* products and key orders change between lines: the caches must not mix them up */
    mesh_batch_t b;
    const char *body = "readings,device=d1 temp=1,count=1i\n"
                       "readings,device=d2 count=2i,temp=2\n"
                       "kinds s=\"a\",i=1i\n"
                       "readings,device=d3 temp=3,count=3i\n"
                       "readings_q,device=d4 on=t,temp=4\n"
                       "readings,device=d5 temp=5,count=5i\n";
    assert_int_equal(parse(&b, body), MESH_OK);
    assert_true(real_of(&b, "readings", 1, "temp") == 2);
    assert_true(int_of(&b, "readings", 1, "count") == 2);
    assert_true(real_of(&b, "readings", 3, "temp") == 5);
    assert_true(int_of(&b, "readings", 3, "count") == 5);
    assert_true(int_of(&b, "kinds", 0, "i") == 1);
    assert_true(int_of(&b, "readings_q", 0, "on") == 1);
    mesh_batch_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_line),
        cmocka_unit_test(test_lines_blank_comments_crlf),
        cmocka_unit_test(test_field_types),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_timestamp_precision),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_line_numbers),
        cmocka_unit_test(test_unknown_product_and_column),
        cmocka_unit_test(test_timestamps_and_time_column),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_too_many_fields),
        cmocka_unit_test(test_reject_and_limits),
        cmocka_unit_test(test_product_cache_and_key_order),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
