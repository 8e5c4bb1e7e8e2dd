/*
 * test_csv.c - RFC 4180 CSV parsing into batches (ingest/csv.c).
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
#include "ingest/csv.h"
#include "test_products.h"

int main(void);

static test_product_t *kinds, *readings, *readings_q;

static int setup(void **state)
{
    kinds = tp_kinds();
    readings = tp_readings(false);
    readings_q = tp_readings(true);
    return 0;
}

static int teardown(void **state)
{
    tp_free(kinds);
    tp_free(readings);
    tp_free(readings_q);
    return 0;
}

static mesh_status_t parse(mesh_batch_t *b, test_product_t *tp, const char *body)
{
    mesh_batch_init(b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    b->received_ns = 99;
    return mesh_csv_parse(body, strlen(body), &tp->p, b);
}

static const mesh_value_t *cell(const mesh_batch_t *b, const test_product_t *tp, size_t row,
                                const char *col)
{
    assert_int_equal(b->nparts, 1);
    assert_true(row < b->parts[0].nrows);
    return &b->parts[0].vals[row * b->parts[0].ncols + (size_t)tp_colidx(tp, col)];
}

static const char *text_of(const mesh_batch_t *b, const test_product_t *tp, size_t row,
                           const char *col)
{
    const mesh_value_t *v = cell(b, tp, row, col);
    assert_int_equal(v->type, MESH_V_TEXT);
    return mesh_batch_text(b, v);
}

static void test_basic(void **state)
{
    mesh_batch_t b;
    assert_int_equal(parse(&b, readings,
                           "device,ts,temp,status,count,on\n"
                           "d1,2023-11-14T22:13:20Z,21.5,ok,3,true\n"
                           "d2,1700000000000,-4,warn,0,0\n"),
                     MESH_OK);
    assert_int_equal(mesh_batch_good_rows(&b), 2);
    assert_string_equal(text_of(&b, readings, 0, "device"), "d1");
    assert_true(cell(&b, readings, 0, "ts")->u.i == 1700000000000000000);
    assert_true(cell(&b, readings, 1, "ts")->u.i == 1700000000000000000);
    assert_true(cell(&b, readings, 0, "temp")->u.d == 21.5);
    assert_string_equal(text_of(&b, readings, 1, "status"), "warn");
    assert_true(cell(&b, readings, 0, "count")->u.i == 3);
    assert_true(cell(&b, readings, 0, "on")->u.i == 1);
    assert_true(cell(&b, readings, 1, "on")->u.i == 0);
    mesh_batch_free(&b);
}

static void test_absent_columns_and_nulls(void **state)
{
    mesh_batch_t b;
    /* columns in any order; absent ones unset: ts is the receive time, others NULL */
    assert_int_equal(parse(&b, readings, "temp,device\n21,d1\n,d2\n"), MESH_OK);
    assert_true(cell(&b, readings, 0, "ts")->u.i == 99);
    assert_int_equal(cell(&b, readings, 0, "status")->type, MESH_V_NULL);
    assert_int_equal(cell(&b, readings, 1, "temp")->type, MESH_V_NULL); /* unquoted empty */
    mesh_batch_free(&b);

    /* an empty required column is missing */
    assert_int_equal(parse(&b, readings, "device,temp\n,21\n"), MESH_VALIDATION);
    assert_non_null(tp_find_error(&b, 2, "device", "required value is missing"));
    mesh_batch_free(&b);
}

static void test_quoting(void **state)
{
    mesh_batch_t b;
    const char *body = "s,s_len,i\r\n"
                       "\"a,b\",ab,1\r\n"
                       "\"He said \"\"hi\"\"\",ab,2\r\n"
                       "\"multi\nline\r\nvalue\",ab,3\r\n"
                       "\"\",ab,4\r\n"
                       ",ab,5\r\n"
                       "\"\"\"\",\"\",6\r\n"
                       "plain text,\"ab\",\"7\"";              /* no final line break */
    assert_int_equal(parse(&b, kinds, body), MESH_VALIDATION); /* row 7: '' is too short */
    assert_non_null(
        tp_find_error(&b, 9, "s_len", "'' is 0 characters, shorter than the minimum length 2"));
    assert_int_equal(b.nerrors, 1);
    assert_int_equal(mesh_batch_good_rows(&b), 6);
    assert_string_equal(text_of(&b, kinds, 0, "s"), "a,b");
    assert_string_equal(text_of(&b, kinds, 1, "s"), "He said \"hi\"");
    assert_string_equal(text_of(&b, kinds, 2, "s"), "multi\nline\r\nvalue");
    assert_string_equal(text_of(&b, kinds, 3, "s"), ""); /* quoted empty: the empty string */
    assert_int_equal(cell(&b, kinds, 4, "s")->type, MESH_V_NULL); /* unquoted empty: NULL */
    assert_string_equal(text_of(&b, kinds, 5, "s"), "plain text");
    assert_true(cell(&b, kinds, 5, "i")->u.i == 7);
    mesh_batch_free(&b);

    /* a lone quote as the value, a trailing empty field */
    assert_int_equal(parse(&b, kinds, "s,i\n\"\"\"\",\n"), MESH_OK);
    assert_string_equal(text_of(&b, kinds, 0, "s"), "\"");
    assert_int_equal(cell(&b, kinds, 0, "i")->type, MESH_V_NULL);
    mesh_batch_free(&b);
}

static void test_header_forms(void **state)
{
    mesh_batch_t b;
    /* BOM, quoted names, blank lines before the header and between records */
    assert_int_equal(parse(&b, kinds, "\xEF\xBB\xBF\n\"s\",\"i\"\n\nx,1\n\r\n\ny,2\n\n"), MESH_OK);
    assert_int_equal(mesh_batch_good_rows(&b), 2);
    assert_string_equal(text_of(&b, kinds, 1, "s"), "y");
    mesh_batch_free(&b);
    /* a header alone is an empty batch */
    assert_int_equal(parse(&b, kinds, "s,i\n"), MESH_OK);
    assert_int_equal(b.total_rows, 0);
    mesh_batch_free(&b);
}

static void test_header_errors(void **state)
{
    static const struct {
        const char *body;
        mesh_status_t code;
        const char *reason;
    } cases[] = {
        {"device,colour\nd1,red\n", MESH_INVALID,
         "unknown column 'colour' in the CSV header: product 'readings' has no such column"},
        {"device,temp,temp\n", MESH_INVALID, "column 'temp' appears twice in the CSV header"},
        {"", MESH_INVALID, "the CSV body is empty: the first line must be the header"},
        {"\n\r\n", MESH_INVALID, "the CSV body is empty: the first line must be the header"},
        {"device,,temp\n", MESH_INVALID, "empty column name in the CSV header (field 2)"},
        {"device,temp,\n", MESH_INVALID, "empty column name in the CSV header (field 3)"},
        {"dev\"ice,temp\n", MESH_PARSE,
         "line 1, col 4: quote inside an unquoted field in the CSV header"},
        {"\"device\"x\n", MESH_PARSE,
         "line 1, col 9: unexpected character after a closing quote in the CSV header"},
        {"\"device,temp\n", MESH_PARSE, "line 1, col 1: quoted field is never closed"},
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(cases); i++) {
        mesh_batch_t b;
        assert_int_equal(parse(&b, readings, cases[i].body), cases[i].code);
        assert_true(mesh_batch_failed(&b));
        if (tp_find_error(&b, 0, NULL, cases[i].reason) == NULL)
            fail_msg("'%s': want '%s', got '%s'", cases[i].body, cases[i].reason,
                     b.nerrors ? b.errors[0].reason : "(none)");
        mesh_batch_free(&b);
    }

    /* more header fields than the limit, on a (hypothetical) product that wide */
    enum { WIDE = MESH_CSV_MAX_FIELDS + 10 };
    mesh_column_t *cols = calloc(WIDE, sizeof *cols);
    char(*names)[8] = calloc(WIDE, 8);
    mesh_product_t wide = {.name = (char *)"wide", .cols = cols, .ncols = WIDE, .time_col = -1};
    mesh_buf_t body;
    mesh_buf_init(&body, MESH_BUF_UNLIMITED);
    for (int i = 0; i < WIDE; i++) {
        snprintf(names[i], 8, "c%d", i);
        cols[i].name = names[i];
        cols[i].min_len = cols[i].max_len = -1;
        mesh_buf_printf(&body, "%sc%d", i ? "," : "", i);
    }
    mesh_batch_t b;
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    assert_int_equal(mesh_csv_parse(body.data, body.len, &wide, &b), MESH_TOO_LARGE);
    assert_non_null(tp_find_error(&b, 1, NULL, "the CSV header has more than 1024 fields"));
    mesh_batch_free(&b);
    mesh_buf_free(&body);
    free(names);
    free(cols);
}

static void test_field_count(void **state)
{
    mesh_batch_t b;
    const char *body = "device,temp,status,count,on\n"
                       "d1,1,ok,1,t\n"
                       "d2,1,ok,1\n"
                       "d3,1,ok,1,t,extra\n"
                       "d4,1,ok,1,t\n";
    assert_int_equal(parse(&b, readings_q, body), MESH_OK);
    assert_non_null(tp_find_error(&b, 3, "", "row has 4 fields, the header has 5"));
    assert_non_null(tp_find_error(&b, 4, "", "row has 6 fields, the header has 5"));
    assert_int_equal(mesh_batch_good_rows(&b), 2);
    const mesh_part_t *part = &b.parts[0];
    assert_int_equal(part->nquar, 2);
    assert_int_equal(part->quar[0].row, 3);
    assert_string_equal(b.arena.data + part->quar[0].raw_off, "d2,1,ok,1");
    assert_int_equal(part->quar[0].raw_len, strlen("d2,1,ok,1"));
    assert_string_equal(b.arena.data + part->quar[0].reason_off,
                        "row has 4 fields, the header has 5");
    assert_int_equal(part->quar[1].raw_len, strlen("d3,1,ok,1,t,extra"));
    mesh_batch_free(&b);

    /* rejecting product */
    assert_int_equal(parse(&b, readings, body), MESH_VALIDATION);
    assert_int_equal(b.error_rows, 2);
    mesh_batch_free(&b);
}

static void test_syntax_errors_and_lines(void **state)
{
    mesh_batch_t b;
    const char *body = "device,temp\r\n" /* line 1 */
                       "d1,1\r\n"        /* 2 */
                       "\"d2\n\",1\r\n"  /* 3-4: quoted line break */
                       "d\"3,1\r\n"      /* 5 */
                       "\"d4\"x,1\r\n"   /* 6 */
                       "\"d\n5\"\r\n"    /* 7-8: one field only */
                       "d6,999\r\n"      /* 9 */
                       "d7,1";           /* 10 */
    assert_int_equal(parse(&b, readings_q, body), MESH_OK);
    assert_non_null(
        tp_find_error(&b, 3, "device", "'d2?' does not match the pattern '^[a-z][a-z0-9-]*$'"));
    assert_non_null(tp_find_error(&b, 5, "", "line 5, col 2: quote inside an unquoted field"));
    assert_non_null(
        tp_find_error(&b, 6, "", "line 6, col 5: unexpected character after a closing quote"));
    assert_non_null(tp_find_error(&b, 7, "", "row has 1 field, the header has 2"));
    assert_non_null(tp_find_error(&b, 9, "temp", "value 999 is above the maximum 200"));
    const mesh_part_t *part = &b.parts[0];
    assert_int_equal(part->nrows, 2);
    assert_int_equal(part->nquar, 5);
    assert_string_equal(b.arena.data + part->quar[0].raw_off, "\"d2\n\",1");
    assert_string_equal(b.arena.data + part->quar[3].raw_off, "\"d\n5\"");
    assert_string_equal(text_of(&b, readings_q, 1, "device"), "d7");
    mesh_batch_free(&b);
}

static void test_unterminated_and_too_long(void **state)
{
    mesh_batch_t b;
    assert_int_equal(parse(&b, readings_q, "device,temp\nd1,1\n\"d2,1\nd3,1\n"), MESH_PARSE);
    assert_non_null(tp_find_error(&b, 3, NULL, "line 3, col 1: quoted field is never closed"));
    mesh_batch_free(&b);

    /* a record longer than the limit, quoted or not */
    size_t n = MESH_CSV_MAX_LINE + 64;
    char *body = malloc(n + 1);
    for (int quoted = 0; quoted < 2; quoted++) {
        memcpy(body, "s,i\n", 4);
        memset(body + 4, 'x', n - 4);
        if (quoted)
            body[4] = '"', body[n - 3] = '"';
        memcpy(body + n - 2, ",1", 2);
        body[n] = '\0';
        assert_int_equal(parse(&b, kinds, body), MESH_TOO_LARGE);
        assert_non_null(
            tp_find_error(&b, 2, NULL, "the record at line 2 is longer than 1048576 bytes"));
        mesh_batch_free(&b);
    }
    /* exactly at the limit is fine */
    memcpy(body, "s,i\n", 4);
    memset(body + 4, 'x', MESH_CSV_MAX_LINE - 2);
    memcpy(body + 4 + MESH_CSV_MAX_LINE - 2, ",1", 3);
    assert_int_equal(parse(&b, kinds, body), MESH_OK);
    assert_int_equal(cell(&b, kinds, 0, "s")->u.s.len, MESH_CSV_MAX_LINE - 2);
    mesh_batch_free(&b);
    free(body);
}

static void test_conversions_from_text(void **state)
{
    mesh_batch_t b;
    assert_int_equal(parse(&b, kinds,
                           "i,n,b,ts,d,t,o,a,s_enum\n"
                           "3.0,1e3,yes,1700000000,2024-02-29,08:00:00,\"{\"\"k\"\":1}\",[],ok\n"
                           "x,y,z,w,2023-02-29,25:00:00,[],{},no\n"),
                     MESH_VALIDATION);
    assert_true(cell(&b, kinds, 0, "i")->u.i == 3);
    assert_true(cell(&b, kinds, 0, "n")->u.d == 1000);
    assert_true(cell(&b, kinds, 0, "ts")->u.i == 1700000000000000000);
    assert_string_equal(text_of(&b, kinds, 0, "o"), "{\"k\":1}");
    assert_non_null(tp_find_error(&b, 3, "i", "'x' is not an integer"));
    assert_non_null(tp_find_error(&b, 3, "n", "'y' is not a number"));
    assert_non_null(tp_find_error(&b, 3, "b", "'z' is not a boolean"));
    assert_non_null(
        tp_find_error(&b, 3, "ts", "'w' is not a timestamp (RFC 3339 text or a number)"));
    assert_non_null(tp_find_error(&b, 3, "d", "'2023-02-29' is not a date (YYYY-MM-DD)"));
    assert_non_null(tp_find_error(&b, 3, "t", "'25:00:00' is not a time (HH:MM:SS[.fraction])"));
    assert_non_null(tp_find_error(&b, 3, "o", "'[]' is not an object"));
    assert_non_null(tp_find_error(&b, 3, "a", "'{}' is not an array"));
    assert_non_null(tp_find_error(&b, 3, "s_enum", "'no' is not one of [ok, warn, fail]"));
    assert_int_equal(b.nerrors, 9);
    assert_int_equal(b.error_rows, 1);
    mesh_batch_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_absent_columns_and_nulls),
        cmocka_unit_test(test_quoting),
        cmocka_unit_test(test_header_forms),
        cmocka_unit_test(test_header_errors),
        cmocka_unit_test(test_field_count),
        cmocka_unit_test(test_syntax_errors_and_lines),
        cmocka_unit_test(test_unterminated_and_too_long),
        cmocka_unit_test(test_conversions_from_text),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
