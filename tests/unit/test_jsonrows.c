/*
 * test_jsonrows.c - JSON array and NDJSON rows into batches (ingest/jsonrows.c).
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
#include "ingest/jsonrows.h"
#include "test_products.h"

int main(void);

static test_product_t *readings, *readings_q, *registry;

static int setup(void **state)
{
    readings = tp_readings(false);
    readings_q = tp_readings(true);
    registry = tp_registry();
    return 0;
}

static int teardown(void **state)
{
    tp_free(readings);
    tp_free(readings_q);
    tp_free(registry);
    return 0;
}

static mesh_status_t parse(mesh_batch_t *b, test_product_t *tp, bool ndjson, const char *body)
{
    mesh_batch_init(b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    b->received_ns = 99;
    return mesh_json_rows_parse(body, strlen(body), &tp->p, ndjson, b);
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

#define ID "\"id\":\"123e4567-e89b-12d3-a456-426614174000\""

static void test_array_of_objects(void **state)
{
    mesh_batch_t b;
    assert_int_equal(parse(&b, readings, false,
                           "[{\"device\":\"d1\",\"ts\":\"2023-11-14T22:13:20Z\",\"temp\":21.5,"
                           "\"status\":\"ok\",\"count\":3,\"on\":true},\n"
                           " {\"on\":false,\"count\":0,\"temp\":-4,\"device\":\"d2\",\"ts\":"
                           "1700000000,\"status\":null},\n"
                           " {\"device\":\"d3\",\"ts\":1700000000.5,\"temp\":7}]"),
                     MESH_OK);
    assert_int_equal(mesh_batch_good_rows(&b), 3);
    assert_string_equal(text_of(&b, readings, 0, "device"), "d1");
    assert_true(cell(&b, readings, 0, "ts")->u.i == 1700000000000000000);
    assert_true(cell(&b, readings, 0, "temp")->u.d == 21.5);
    assert_true(cell(&b, readings, 0, "count")->u.i == 3);
    assert_true(cell(&b, readings, 0, "on")->u.i == 1);
    assert_true(cell(&b, readings, 1, "ts")->u.i == 1700000000000000000);
    assert_int_equal(cell(&b, readings, 1, "temp")->type, MESH_V_REAL);
    assert_true(cell(&b, readings, 1, "temp")->u.d == -4);
    assert_int_equal(cell(&b, readings, 1, "status")->type, MESH_V_NULL);
    assert_true(cell(&b, readings, 1, "on")->u.i == 0);
    assert_true(cell(&b, readings, 2, "ts")->u.i == 1700000000500000000);
    mesh_batch_free(&b);

    /* one object, an empty array */
    assert_int_equal(parse(&b, readings, false, "  {\"device\":\"d1\",\"temp\":1}\n"), MESH_OK);
    assert_int_equal(mesh_batch_good_rows(&b), 1);
    assert_true(cell(&b, readings, 0, "ts")->u.i == 99);
    mesh_batch_free(&b);
    assert_int_equal(parse(&b, readings, false, "[]"), MESH_OK);
    assert_int_equal(b.total_rows, 0);
    mesh_batch_free(&b);
}

static void test_nested_columns(void **state)
{
    mesh_batch_t b;
    assert_int_equal(parse(&b, registry, false,
                           "[{" ID ",\"meta\": {\"a\": {\"b\": [1, 2]}, \"c\": \"é\"},"
                           "\"tags\": [\"x\", \"y\"], \"born\": \"2001-02-03\", \"opens\": "
                           "\"08:30:00\", \"level\": 5, \"name\": \"gw\"}]"),
                     MESH_OK);
    assert_string_equal(text_of(&b, registry, 0, "meta"), "{\"a\":{\"b\":[1,2]},\"c\":\"é\"}");
    assert_string_equal(text_of(&b, registry, 0, "tags"), "[\"x\",\"y\"]");
    assert_string_equal(text_of(&b, registry, 0, "born"), "2001-02-03");
    assert_string_equal(text_of(&b, registry, 0, "opens"), "08:30:00");
    assert_true(cell(&b, registry, 0, "level")->u.i == 5);
    mesh_batch_free(&b);
}

static void test_type_mismatch(void **state)
{
    static const struct {
        const char *member, *column, *reason;
    } cases[] = {
        {"\"temp\":\"21.5\"", "temp", "expected a number, got a string"},
        {"\"count\":\"3\"", "count", "expected an integer, got a string"},
        {"\"on\":\"true\"", "on", "expected a boolean, got a string"},
        {"\"temp\":{}", "temp", "expected a number, got an object"},
        {"\"temp\":[1]", "temp", "expected a number, got an array"},
        {"\"status\":5", "status", "expected a string, got an integer"},
        {"\"status\":true", "status", "expected a string, got a boolean"},
        {"\"status\":1.5", "status", "expected a string, got a number"},
        {"\"count\":1.5", "count", "value 1.5 is not an integer"},
        {"\"temp\":250.5", "temp", "value 250.5 is above the maximum 200"},
        {"\"ts\":true", "ts", "expected a timestamp, got a boolean"},
        {"\"colour\":\"red\"", "", "unknown column 'colour'"},
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(cases); i++) {
        char body[256];
        snprintf(body, sizeof body, "[{\"device\":\"d1\",%s}]", cases[i].member);
        mesh_batch_t b;
        assert_int_equal(parse(&b, readings, false, body), MESH_VALIDATION);
        if (tp_find_error(&b, 1, cases[i].column, cases[i].reason) == NULL)
            fail_msg("%s: want '%s', got '%s'", body, cases[i].reason,
                     b.nerrors ? b.errors[0].reason : "(none)");
        assert_int_equal(b.nerrors, 1); /* a mistyped value is not "missing" as well */
        mesh_batch_free(&b);
    }
    /* object and array columns */
    static const struct {
        const char *member, *column, *reason;
    } nested[] = {
        {"\"meta\":\"x\"", "meta", "expected an object, got a string"},
        {"\"meta\":[1]", "meta", "expected an object, got an array"},
        {"\"tags\":{}", "tags", "expected an array, got an object"},
        {"\"tags\":3", "tags", "expected an array, got an integer"},
        {"\"born\":20010203", "born", "expected a date, got an integer"},
        {"\"born\":\"2001-02-30\"", "born", "'2001-02-30' is not a date (YYYY-MM-DD)"},
        {"\"id\":null", "id", "required value is missing"},
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(nested); i++) {
        char body[256];
        snprintf(body, sizeof body, "{" ID ",%s}", nested[i].member);
        if (strncmp(nested[i].member, "\"id\"", 4) == 0)
            snprintf(body, sizeof body, "{%s}", nested[i].member);
        mesh_batch_t b;
        assert_int_equal(parse(&b, registry, false, body), MESH_VALIDATION);
        if (tp_find_error(&b, 1, nested[i].column, nested[i].reason) == NULL)
            fail_msg("%s: want '%s', got '%s'", body, nested[i].reason,
                     b.nerrors ? b.errors[0].reason : "(none)");
        mesh_batch_free(&b);
    }
}

static void test_rows_that_are_not_objects(void **state)
{
    mesh_batch_t b;
    assert_int_equal(parse(&b, readings_q, false,
                           "[{\"device\":\"d1\"}, 5, \"x\", [1, {\"a\":2}], null, true, "
                           "{\"device\":\"D7\", \"temp\": 1} ]"),
                     MESH_OK);
    assert_non_null(tp_find_error(&b, 2, "", "row 2 is a number, not an object"));
    assert_non_null(tp_find_error(&b, 3, "", "row 3 is a string, not an object"));
    assert_non_null(tp_find_error(&b, 4, "", "row 4 is an array, not an object"));
    assert_non_null(tp_find_error(&b, 5, "", "row 5 is null, not an object"));
    assert_non_null(tp_find_error(&b, 6, "", "row 6 is a boolean, not an object"));
    const mesh_part_t *part = &b.parts[0];
    assert_int_equal(part->nrows, 1);
    assert_int_equal(part->nquar, 6);
    /* the raw text is the element exactly as received */
    static const char *raw[] = {"5",    "\"x\"", "[1, {\"a\":2}]",
                                "null", "true",  "{\"device\":\"D7\", \"temp\": 1}"};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(part->quar[i].row, i + 2);
        assert_int_equal(part->quar[i].raw_len, strlen(raw[i]));
        assert_string_equal(b.arena.data + part->quar[i].raw_off, raw[i]);
    }
    mesh_batch_free(&b);
}

static void test_malformed(void **state)
{
    mesh_batch_t b;
    assert_int_equal(parse(&b, readings_q, false, "[{\"device\":\"d1\"},\n {\"device\": }]"),
                     MESH_PARSE);
    assert_int_equal(b.nerrors, 1);
    assert_int_equal(b.errors[0].row, 2);
    assert_non_null(strstr(b.errors[0].reason, "malformed JSON at line 2, column 13: "));
    assert_int_equal(mesh_batch_good_rows(&b), 0);
    mesh_batch_free(&b);

    assert_int_equal(parse(&b, readings, false, "[{\"device\":\"d1\",\"device\":\"d2\"}]"),
                     MESH_PARSE);
    assert_non_null(strstr(b.errors[0].reason, "duplicate object key"));
    mesh_batch_free(&b);

    assert_int_equal(parse(&b, readings, false, "5"), MESH_PARSE);
    assert_non_null(strstr(b.errors[0].reason, "malformed JSON at line 1, column 1: "));
    mesh_batch_free(&b);

    assert_int_equal(parse(&b, readings, false, ""), MESH_PARSE);
    mesh_batch_free(&b);

    assert_int_equal(parse(&b, readings, false, "[{\"count\":99999999999999999999}]"), MESH_PARSE);
    mesh_batch_free(&b);

    assert_int_equal(parse(&b, readings, false, "[{\"device\":\"d1\"}] trailing"), MESH_PARSE);
    mesh_batch_free(&b);
}

/* [{"id":...,"meta": + levels x {"a": + 1 + levels x } + }] */
static char *nested_body(int levels, bool ndjson)
{
    mesh_buf_t s;
    mesh_buf_init(&s, MESH_BUF_UNLIMITED);
    mesh_buf_adds(&s, ndjson ? "{" ID ",\"meta\":" : "[{" ID ",\"meta\":");
    for (int i = 0; i < levels; i++)
        mesh_buf_adds(&s, "{\"a\":");
    mesh_buf_adds(&s, "1");
    for (int i = 0; i < levels; i++)
        mesh_buf_adds(&s, "}");
    mesh_buf_adds(&s, ndjson ? "}" : "}]");
    return mesh_buf_steal(&s, NULL);
}

static void test_depth_limit(void **state)
{
    mesh_batch_t b;
    /* array form: the outer array and the row count, so meta may nest 62 deep */
    char *body = nested_body(62, false);
    assert_int_equal(parse(&b, registry, false, body), MESH_OK);
    mesh_batch_free(&b);
    free(body);
    body = nested_body(63, false);
    assert_int_equal(parse(&b, registry, false, body), MESH_PARSE);
    char want[128];
    snprintf(want, sizeof want,
             "malformed JSON at line 1, column %zu: nested deeper than 64 levels",
             strlen("[{" ID ",\"meta\":") + 62 * 5 + 1);
    assert_non_null(tp_find_error(&b, 1, NULL, want));
    mesh_batch_free(&b);
    free(body);

    /* NDJSON: the row object is the first level */
    body = nested_body(63, true);
    assert_int_equal(parse(&b, registry, true, body), MESH_OK);
    mesh_batch_free(&b);
    free(body);
    body = nested_body(64, true);
    assert_int_equal(parse(&b, registry, true, body), MESH_VALIDATION);
    snprintf(want, sizeof want, "line 1, col %zu: malformed JSON: nested deeper than 64 levels",
             strlen("{" ID ",\"meta\":") + 63 * 5 + 1);
    assert_non_null(tp_find_error(&b, 1, NULL, want));
    mesh_batch_free(&b);
    free(body);

    /* brackets inside strings do not count */
    mesh_buf_t s;
    mesh_buf_init(&s, MESH_BUF_UNLIMITED);
    mesh_buf_adds(&s, "[{" ID ",\"meta\":{\"a\":\"");
    for (int i = 0; i < 200; i++)
        mesh_buf_adds(&s, "[{\\\"");
    mesh_buf_adds(&s, "\"}}]");
    assert_int_equal(parse(&b, registry, false, s.data), MESH_OK);
    mesh_batch_free(&b);
    mesh_buf_free(&s);
}

static void test_ndjson(void **state)
{
    mesh_batch_t b;
    const char *body = "{\"device\":\"d1\",\"temp\":1}\n"
                       "\n"
                       "{\"device\":\"d2\",\"temp\":}\r\n"
                       "   \n"
                       "{\"device\":\"d3\",\"temp\":2}\r\n"
                       "[1,2]\n"
                       "{\"device\":\"d4\",\"temp\":999}\n"
                       "{\"device\":\"d5\",\"device\":\"d6\"}\n"
                       "  {\"device\":\"d7\"}  "; /* no final newline */
    assert_int_equal(parse(&b, readings_q, true, body), MESH_OK);
    const mesh_part_t *part = &b.parts[0];
    assert_int_equal(part->nrows, 3);
    assert_int_equal(part->nquar, 4);
    assert_int_equal(part->quar[0].row, 3);
    assert_non_null(strstr(b.errors[0].reason, "line 3, col 23: malformed JSON: "));
    assert_string_equal(b.arena.data + part->quar[0].raw_off, "{\"device\":\"d2\",\"temp\":}");
    assert_non_null(tp_find_error(&b, 6, "", "row 6 is an array, not an object"));
    assert_non_null(tp_find_error(&b, 7, "temp", "value 999 is above the maximum 200"));
    assert_int_equal(part->quar[3].row, 8);
    assert_non_null(strstr(b.errors[3].reason, "duplicate object key"));
    assert_string_equal(text_of(&b, readings_q, 2, "device"), "d7");
    mesh_batch_free(&b);

    /* the same body on a rejecting product refuses the batch */
    assert_int_equal(parse(&b, readings, true, body), MESH_VALIDATION);
    assert_int_equal(b.error_rows, 4);
    mesh_batch_free(&b);

    /* a line longer than the limit */
    size_t n = MESH_JSON_MAX_LINE + 32;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    memcpy(big, "{\"device\":\"d1\"}", 15);
    memcpy(big + n - 16, "\n{\"device\":\"d2\"}", 16);
    big[n] = '\0';
    assert_int_equal(parse(&b, readings_q, true, big), MESH_OK);
    char want[128];
    snprintf(want, sizeof want, "line 1 is %zu bytes, longer than the limit of %u", n - 16,
             MESH_JSON_MAX_LINE);
    assert_non_null(tp_find_error(&b, 1, "", want));
    assert_int_equal(b.parts[0].nrows, 1);
    mesh_batch_free(&b);
    free(big);
}

static void test_limits(void **state)
{
    /* the array form is parsed whole: its size is bounded */
    size_t n = (size_t)MESH_JSON_MAX_BODY + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    big[0] = '[';
    big[n - 1] = ']';
    mesh_batch_t b;
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    assert_int_equal(mesh_json_rows_parse(big, n, &readings->p, false, &b), MESH_TOO_LARGE);
    assert_non_null(strstr(b.errors[0].reason, "more than the limit of 67108864"));
    mesh_batch_free(&b);
    free(big);

    /* the batch's row limit stops both forms */
    mesh_batch_limits_t lim = MESH_BATCH_DEFAULT_LIMITS;
    lim.max_rows = 2;
    const char *arr = "[{\"device\":\"d1\"},{\"device\":\"d2\"},{\"device\":\"d3\"}]";
    mesh_batch_init(&b, "factory-a", lim);
    assert_int_equal(mesh_json_rows_parse(arr, strlen(arr), &readings->p, false, &b),
                     MESH_TOO_LARGE);
    assert_int_equal(b.total_rows, 2);
    mesh_batch_free(&b);
    const char *nd = "{\"device\":\"d1\"}\n{\"device\":\"d2\"}\n{\"device\":\"d3\"}\n";
    mesh_batch_init(&b, "factory-a", lim);
    assert_int_equal(mesh_json_rows_parse(nd, strlen(nd), &readings->p, true, &b), MESH_TOO_LARGE);
    mesh_batch_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_array_of_objects), cmocka_unit_test(test_nested_columns),
        cmocka_unit_test(test_type_mismatch),    cmocka_unit_test(test_rows_that_are_not_objects),
        cmocka_unit_test(test_malformed),        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_ndjson),           cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
