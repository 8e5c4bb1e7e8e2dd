/*
 * test_batch.c - conversions, contract checks, rows, quarantine, limits and the log record
 * encoding of ingest/batch.c.
 */
#include <math.h>
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
#include "test_products.h"

int main(void);

static test_product_t *kinds, *readings, *readings_q, *registry;

static int setup(void **state)
{
    kinds = tp_kinds();
    readings = tp_readings(false);
    readings_q = tp_readings(true);
    registry = tp_registry();
    return 0;
}

static int teardown(void **state)
{
    tp_free(kinds);
    tp_free(readings);
    tp_free(readings_q);
    tp_free(registry);
    return 0;
}

/* ---- one value through a fresh batch -------------------------------------------------------- */

typedef enum { S_TEXT, S_INT, S_REAL, S_BOOL, S_NULL, S_JSON } setter_t;

static char g_reason[256];
static mesh_value_t g_val;
static char g_text[512];

/* Sets one column of kinds in a one-row batch; returns the first error ("" when none) and
 * leaves the stored value in g_val / g_text. */
static const char *run1(const char *col, setter_t how, const char *s, int64_t i, double d,
                        mesh_precision_t prec)
{
    mesh_batch_t b;
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    b.precision = prec;
    assert_int_equal(mesh_batch_row_begin(&b, &kinds->p, 1), MESH_OK);
    int c = tp_colidx(kinds, col);
    switch (how) {
    case S_TEXT:
        mesh_batch_set_text(&b, c, s, strlen(s));
        break;
    case S_INT:
        mesh_batch_set_int(&b, c, i);
        break;
    case S_REAL:
        mesh_batch_set_real(&b, c, d);
        break;
    case S_BOOL:
        mesh_batch_set_bool(&b, c, i != 0);
        break;
    case S_NULL:
        mesh_batch_set_null(&b, c);
        break;
    case S_JSON:
        mesh_batch_set_json(&b, c, s, strlen(s));
        break;
    }
    mesh_batch_row_end(&b, "raw", 3);
    g_reason[0] = '\0';
    g_text[0] = '\0';
    memset(&g_val, 0, sizeof g_val);
    if (b.nerrors) {
        snprintf(g_reason, sizeof g_reason, "%s", b.errors[0].reason);
        assert_true(mesh_batch_failed(&b));
        assert_int_equal(b.fail_code, MESH_VALIDATION);
        assert_int_equal(mesh_batch_good_rows(&b), 0);
        assert_int_equal(b.errors[0].row, 1);
        assert_string_equal(b.errors[0].product, "kinds");
        assert_string_equal(b.errors[0].column, col);
    } else {
        assert_false(mesh_batch_failed(&b));
        assert_int_equal(b.parts[0].nrows, 1);
        g_val = b.parts[0].vals[c];
        if (g_val.type == MESH_V_TEXT)
            snprintf(g_text, sizeof g_text, "%s", mesh_batch_text(&b, &g_val));
    }
    mesh_batch_free(&b);
    return g_reason;
}

static const char *text1(const char *col, const char *s)
{
    return run1(col, S_TEXT, s, 0, 0, MESH_PREC_AUTO);
}

#define TEXT_OK(col, s)          assert_string_equal(text1(col, s), "")
#define TEXT_BAD(col, s, reason) assert_string_equal(text1(col, s), reason)

static void expect_int(int64_t v)
{
    assert_int_equal(g_val.type, MESH_V_INT);
    assert_true(g_val.u.i == v);
}

static void expect_real(double v)
{
    assert_int_equal(g_val.type, MESH_V_REAL);
    assert_true(g_val.u.d == v);
}

static void expect_text(const char *s)
{
    assert_int_equal(g_val.type, MESH_V_TEXT);
    assert_string_equal(g_text, s);
}

/* ---- text conversions ----------------------------------------------------------------------- */

static void test_string(void **state)
{
    TEXT_OK("s", "hello");
    expect_text("hello");
    TEXT_OK("s", "");
    expect_text("");
    TEXT_BAD("s", "ab\xff", "'ab\xff' is not valid UTF-8");
    TEXT_BAD("s", "\xc0\xaf", "'\xc0\xaf' is not valid UTF-8");         /* overlong */
    TEXT_BAD("s", "\xed\xa0\x80", "'\xed\xa0\x80' is not valid UTF-8"); /* surrogate */
    assert_string_equal(run1("s", S_TEXT, "a", 0, 0, MESH_PREC_AUTO), "");
    /* a NUL inside the value */
    mesh_batch_t b;
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    mesh_batch_row_begin(&b, &kinds->p, 1);
    mesh_batch_set_text(&b, 0, "a\0b", 3);
    mesh_batch_row_end(&b, NULL, 0);
    assert_non_null(tp_find_error(&b, 1, "s", "'a?b' contains a NUL byte"));
    mesh_batch_free(&b);
}

static void test_string_length(void **state)
{
    TEXT_OK("s_len", "ab");
    TEXT_OK("s_len", "héllo"); /* 5 characters, 6 bytes */
    TEXT_OK("s_len", "日本語");
    TEXT_BAD("s_len", "a", "'a' is 1 character, shorter than the minimum length 2");
    TEXT_BAD("s_len", "abcdef", "'abcdef' is 6 characters, longer than the maximum length 5");
}

static void test_string_pattern(void **state)
{
    TEXT_OK("s_pat", "AB-1234");
    expect_text("AB-1234");
    TEXT_BAD("s_pat", "AB-12", "'AB-12' does not match the pattern '^[A-Z]{2}-[0-9]{4}$'");
    TEXT_BAD("s_pat", "ab-1234", "'ab-1234' does not match the pattern '^[A-Z]{2}-[0-9]{4}$'");
}

static void test_string_formats(void **state)
{
    TEXT_OK("s_email", "ops@factory-a.example.com");
    TEXT_OK("s_email", "first.last+tag@example.org");
    TEXT_BAD("s_email", "ops@", "'ops@' is not a valid email address");
    TEXT_BAD("s_email", "no-at-sign", "'no-at-sign' is not a valid email address");
    TEXT_BAD("s_email", ".a@example.org", "'.a@example.org' is not a valid email address");
    TEXT_BAD("s_email", "a..b@example.org", "'a..b@example.org' is not a valid email address");
    TEXT_OK("s_uuid", "123e4567-e89b-12d3-a456-426614174000");
    TEXT_BAD("s_uuid", "123e4567e89b12d3a456426614174000",
             "'123e4567e89b12d3a456426614174000' is not a valid UUID");
    TEXT_BAD("s_uuid", "123e4567-e89b-12d3-a456-42661417400g",
             "'123e4567-e89b-12d3-a456-42661417400g' is not a valid UUID");
    TEXT_OK("s_uri", "https://example.com/a?b=c#d");
    TEXT_OK("s_uri", "urn:isbn:0451450523");
    TEXT_OK("s_uri", "mqtt://hub:1883/site%20a");
    TEXT_BAD("s_uri", "example.com/path", "'example.com/path' is not a valid URI");
    TEXT_BAD("s_uri", "http://a b", "'http://a b' is not a valid URI");
    TEXT_BAD("s_uri", "http://a%zz", "'http://a%zz' is not a valid URI");
    TEXT_OK("s_host", "gw-01.factory-a.example");
    TEXT_OK("s_host", "localhost");
    TEXT_BAD("s_host", "-gw.example", "'-gw.example' is not a valid hostname");
    TEXT_BAD("s_host", "gw..example", "'gw..example' is not a valid hostname");
    TEXT_BAD("s_host", "gw_01", "'gw_01' is not a valid hostname");
    TEXT_OK("s_ip4", "192.168.1.20");
    TEXT_BAD("s_ip4", "192.168.1.256", "'192.168.1.256' is not a valid IPv4 address");
    TEXT_BAD("s_ip4", "::1", "'::1' is not a valid IPv4 address");
    TEXT_OK("s_ip6", "fe80::1");
    TEXT_OK("s_ip6", "2001:db8::8a2e:370:7334");
    TEXT_BAD("s_ip6", "fe80:::1", "'fe80:::1' is not a valid IPv6 address");
    TEXT_BAD("s_ip6", "10.0.0.1", "'10.0.0.1' is not a valid IPv6 address");
}

static void test_string_enum(void **state)
{
    TEXT_OK("s_enum", "warn");
    TEXT_BAD("s_enum", "x", "'x' is not one of [ok, warn, fail]");
    TEXT_BAD("s_enum", "OK", "'OK' is not one of [ok, warn, fail]");
    TEXT_BAD("s_enum", "", "'' is not one of [ok, warn, fail]");
}

static void test_integer_text(void **state)
{
    TEXT_OK("i", "42");
    expect_int(42);
    TEXT_OK("i", "-9223372036854775808");
    expect_int(INT64_MIN);
    TEXT_OK("i", "3.0");
    expect_int(3);
    TEXT_OK("i", "1e3");
    expect_int(1000);
    TEXT_BAD("i", "3.5", "'3.5' is not an integer");
    TEXT_BAD("i", "abc", "'abc' is not an integer");
    TEXT_BAD("i", "", "'' is not an integer");
    TEXT_BAD("i", "9223372036854775808", "'9223372036854775808' is not an integer");
    TEXT_BAD("i", " 1", "' 1' is not an integer");
    TEXT_OK("i_rng", "100");
    TEXT_BAD("i_rng", "101", "value 101 is above the maximum 100");
    TEXT_BAD("i_rng", "-1", "value -1 is below the minimum 0");
    TEXT_OK("i_ex", "9");
    TEXT_BAD("i_ex", "0", "value 0 is not above the exclusive minimum 0");
    TEXT_BAD("i_ex", "10", "value 10 is not below the exclusive maximum 10");
    TEXT_OK("i_enum", "2");
    TEXT_OK("i_enum", "2.0");
    expect_int(2);
    TEXT_BAD("i_enum", "4", "value 4 is not one of [1, 2, 3]");
}

static void test_number_text(void **state)
{
    TEXT_OK("n", "21.5");
    expect_real(21.5);
    TEXT_OK("n", "-2e3");
    expect_real(-2000);
    TEXT_OK("n", "7");
    expect_real(7);
    TEXT_BAD("n", "abc", "'abc' is not a number");
    TEXT_BAD("n", "nan", "'nan' is not a number");
    TEXT_BAD("n", "inf", "'inf' is not a number");
    TEXT_BAD("n", "1e999", "'1e999' is not a number");
    TEXT_BAD("n", "0x10", "'0x10' is not a number");
    TEXT_OK("n_rng", "200");
    TEXT_OK("n_rng", "-50");
    TEXT_BAD("n_rng", "250.5", "value 250.5 is above the maximum 200");
    TEXT_BAD("n_rng", "-50.01", "value -50.01 is below the minimum -50");
    TEXT_OK("n_ex", "0.5");
    TEXT_BAD("n_ex", "1", "value 1 is not below the exclusive maximum 1");
    TEXT_BAD("n_ex", "0", "value 0 is not above the exclusive minimum 0");
    TEXT_OK("n_enum", "1.50"); /* compared as numbers */
    expect_real(1.5);
    TEXT_BAD("n_enum", "2", "value 2 is not one of [0.5, 1.5]");
}

static void test_boolean_text(void **state)
{
    static const char *yes[] = {"true", "TRUE", "True", "t", "T", "yes", "1", "on"};
    static const char *no[] = {"false", "FALSE", "f", "F", "no", "0", "off"};
    for (size_t i = 0; i < MESH_ARRAY_LEN(yes); i++) {
        TEXT_OK("b", yes[i]);
        expect_int(1);
    }
    for (size_t i = 0; i < MESH_ARRAY_LEN(no); i++) {
        TEXT_OK("b", no[i]);
        expect_int(0);
    }
    TEXT_BAD("b", "maybe", "'maybe' is not a boolean");
    TEXT_BAD("b", "2", "'2' is not a boolean");
}

static void test_timestamp_text(void **state)
{
    const int64_t want = 1700000000LL * MESH_NS_PER_SEC;
    TEXT_OK("ts", "2023-11-14T22:13:20Z");
    expect_int(want);
    TEXT_OK("ts", "2023-11-14T23:13:20.5+01:00");
    expect_int(want + 500000000);
    /* numbers: AUTO picks the unit by magnitude */
    TEXT_OK("ts", "1700000000");
    expect_int(want);
    TEXT_OK("ts", "1700000000000");
    expect_int(want);
    TEXT_OK("ts", "1700000000000000");
    expect_int(want);
    TEXT_OK("ts", "1700000000000000000");
    expect_int(want);
    TEXT_OK("ts", "1700000000.25");
    expect_int(want + 250000000);
    TEXT_OK("ts", "-1");
    expect_int(-MESH_NS_PER_SEC);
    TEXT_OK("ts", "1700000000.123456789"); /* exact, not through a double */
    expect_int(want + 123456789);
    TEXT_OK("ts", "1700000000.1234567899");
    expect_int(want + 123456789);
    TEXT_OK("ts", "-1.5");
    expect_int(-1500000000);
    TEXT_OK("ts", "1700000000000.5"); /* ms */
    expect_int(want + 500000);
    TEXT_OK("ts", "1.7e9");
    expect_int(want);
    /* an explicit precision */
    assert_string_equal(run1("ts", S_TEXT, "1700000000000", 0, 0, MESH_PREC_MS), "");
    expect_int(want);
    assert_string_equal(run1("ts", S_TEXT, "1700000000000000000", 0, 0, MESH_PREC_NS), "");
    expect_int(want);
    assert_string_equal(run1("ts", S_TEXT, "1700000000", 0, 0, MESH_PREC_NS), "");
    expect_int(1700000000);
    assert_string_equal(run1("ts", S_TEXT, "1700000000000000", 0, 0, MESH_PREC_US), "");
    expect_int(want);
    assert_string_equal(run1("ts", S_TEXT, "9223372036854775807", 0, 0, MESH_PREC_S),
                        "value 9223372036854775807 is out of range for a timestamp");
    assert_string_equal(run1("ts", S_TEXT, "1e300", 0, 0, MESH_PREC_AUTO),
                        "value 1e300 is out of range for a timestamp");
    TEXT_BAD("ts", "yesterday", "'yesterday' is not a timestamp (RFC 3339 text or a number)");
    TEXT_BAD("ts", "2023-13-01T00:00:00Z",
             "'2023-13-01T00:00:00Z' is not a timestamp (RFC 3339 text or a number)");
}

static void test_date_time_text(void **state)
{
    TEXT_OK("d", "2024-02-29");
    expect_text("2024-02-29");
    TEXT_OK("d", "2000-02-29");
    TEXT_BAD("d", "2023-02-29", "'2023-02-29' is not a date (YYYY-MM-DD)");
    TEXT_BAD("d", "1900-02-29", "'1900-02-29' is not a date (YYYY-MM-DD)");
    TEXT_BAD("d", "2024-1-1", "'2024-1-1' is not a date (YYYY-MM-DD)");
    TEXT_BAD("d", "2024-04-31", "'2024-04-31' is not a date (YYYY-MM-DD)");
    TEXT_BAD("d", "2024-00-10", "'2024-00-10' is not a date (YYYY-MM-DD)");
    TEXT_OK("t", "12:34:56");
    expect_text("12:34:56");
    TEXT_OK("t", "23:59:60.123456789");
    TEXT_OK("t", "00:00:00.5");
    TEXT_BAD("t", "24:00:00", "'24:00:00' is not a time (HH:MM:SS[.fraction])");
    TEXT_BAD("t", "12:60:00", "'12:60:00' is not a time (HH:MM:SS[.fraction])");
    TEXT_BAD("t", "12:34", "'12:34' is not a time (HH:MM:SS[.fraction])");
    TEXT_BAD("t", "12:34:56.", "'12:34:56.' is not a time (HH:MM:SS[.fraction])");
    TEXT_BAD("t", "12:34:56.1234567890",
             "'12:34:56.1234567890' is not a time (HH:MM:SS[.fraction])");
}

static void test_json_text(void **state)
{
    TEXT_OK("o", "{\"a\": [1, 2]}");
    expect_text("{\"a\": [1, 2]}"); /* stored as given */
    TEXT_BAD("o", "[1,2]", "'[1,2]' is not an object");
    TEXT_OK("a", "[1,{\"b\":null}]");
    TEXT_BAD("a", "{}", "'{}' is not an array");
    assert_non_null(strstr(text1("o", "{\"a\":"), "'{\"a\":' is not valid JSON: "));
    assert_non_null(strstr(text1("o", "{\"a\":1,\"a\":2}"), "is not valid JSON: "));
    assert_non_null(strstr(text1("a", "nope"), "'nope' is not valid JSON: "));
}

/* ---- typed setters -------------------------------------------------------------------------- */

static void test_set_int(void **state)
{
    assert_string_equal(run1("i", S_INT, NULL, -5, 0, MESH_PREC_AUTO), "");
    expect_int(-5);
    assert_string_equal(run1("n", S_INT, NULL, 5, 0, MESH_PREC_AUTO), "");
    expect_real(5);
    assert_string_equal(run1("b", S_INT, NULL, 1, 0, MESH_PREC_AUTO), "");
    expect_int(1);
    assert_string_equal(run1("b", S_INT, NULL, 2, 0, MESH_PREC_AUTO),
                        "value 2 is not a boolean (0 or 1)");
    assert_string_equal(run1("ts", S_INT, NULL, 1700000000123, 0, MESH_PREC_MS), "");
    expect_int(1700000000123000000);
    assert_string_equal(run1("ts", S_INT, NULL, 1700000000, 0, MESH_PREC_AUTO), "");
    expect_int(1700000000000000000);
    assert_string_equal(run1("ts", S_INT, NULL, INT64_MAX, 0, MESH_PREC_S),
                        "value 9223372036854775807 is out of range for a timestamp");
    assert_string_equal(run1("s", S_INT, NULL, 1, 0, MESH_PREC_AUTO),
                        "expected a string, got an integer");
    assert_string_equal(run1("d", S_INT, NULL, 1, 0, MESH_PREC_AUTO),
                        "expected a date, got an integer");
    assert_string_equal(run1("o", S_INT, NULL, 1, 0, MESH_PREC_AUTO),
                        "expected an object, got an integer");
    assert_string_equal(run1("i_rng", S_INT, NULL, 101, 0, MESH_PREC_AUTO),
                        "value 101 is above the maximum 100");
    assert_string_equal(run1("n_rng", S_INT, NULL, 201, 0, MESH_PREC_AUTO),
                        "value 201 is above the maximum 200");
    assert_string_equal(run1("i_enum", S_INT, NULL, 7, 0, MESH_PREC_AUTO),
                        "value 7 is not one of [1, 2, 3]");
}

static void test_set_real(void **state)
{
    assert_string_equal(run1("n", S_REAL, NULL, 0, 21.25, MESH_PREC_AUTO), "");
    expect_real(21.25);
    assert_string_equal(run1("i", S_REAL, NULL, 0, 3.0, MESH_PREC_AUTO), "");
    expect_int(3);
    assert_string_equal(run1("i", S_REAL, NULL, 0, 3.5, MESH_PREC_AUTO),
                        "value 3.5 is not an integer");
    assert_string_equal(run1("i", S_REAL, NULL, 0, 1e19, MESH_PREC_AUTO),
                        "value 1e+19 is not an integer");
    assert_string_equal(run1("n", S_REAL, NULL, 0, NAN, MESH_PREC_AUTO),
                        "value nan is not a finite number");
    assert_string_equal(run1("n", S_REAL, NULL, 0, INFINITY, MESH_PREC_AUTO),
                        "value inf is not a finite number");
    assert_string_equal(run1("n_rng", S_REAL, NULL, 0, 250.5, MESH_PREC_AUTO),
                        "value 250.5 is above the maximum 200");
    assert_string_equal(run1("n_rng", S_REAL, NULL, 0, 21.1, MESH_PREC_AUTO), "");
    assert_string_equal(run1("n_enum", S_REAL, NULL, 0, 0.5, MESH_PREC_AUTO), "");
    assert_string_equal(run1("ts", S_REAL, NULL, 0, 1700000000.5, MESH_PREC_AUTO), "");
    expect_int(1700000000500000000);
    assert_string_equal(run1("ts", S_REAL, NULL, 0, 1e300, MESH_PREC_AUTO),
                        "value 1e+300 is out of range for a timestamp");
    assert_string_equal(run1("s", S_REAL, NULL, 0, 1.5, MESH_PREC_AUTO),
                        "expected a string, got a number");
    assert_string_equal(run1("b", S_REAL, NULL, 0, 1.0, MESH_PREC_AUTO),
                        "expected a boolean, got a number");
}

static void test_set_bool_null_json(void **state)
{
    assert_string_equal(run1("b", S_BOOL, NULL, 1, 0, MESH_PREC_AUTO), "");
    expect_int(1);
    assert_string_equal(run1("b", S_BOOL, NULL, 0, 0, MESH_PREC_AUTO), "");
    expect_int(0);
    assert_string_equal(run1("i", S_BOOL, NULL, 1, 0, MESH_PREC_AUTO),
                        "expected an integer, got a boolean");
    assert_string_equal(run1("s", S_NULL, NULL, 0, 0, MESH_PREC_AUTO), "");
    assert_int_equal(g_val.type, MESH_V_NULL);
    assert_string_equal(run1("o", S_JSON, "{\"k\":[1,2]}", 0, 0, MESH_PREC_AUTO), "");
    expect_text("{\"k\":[1,2]}");
    assert_string_equal(run1("a", S_JSON, " [1]", 0, 0, MESH_PREC_AUTO), "");
    assert_string_equal(run1("o", S_JSON, "[1]", 0, 0, MESH_PREC_AUTO),
                        "expected an object, got an array");
    assert_string_equal(run1("n", S_JSON, "{}", 0, 0, MESH_PREC_AUTO),
                        "expected a number, got an object");
    assert_string_equal(run1("o", S_JSON, "12", 0, 0, MESH_PREC_AUTO),
                        "expected an object, got JSON that is neither an object nor an array");
}

/* ---- rows ----------------------------------------------------------------------------------- */

/* A readings row: device, temp as text; NULL leaves a column out. */
static void reading(mesh_batch_t *b, test_product_t *tp, uint32_t row, const char *device,
                    const char *temp)
{
    assert_int_equal(mesh_batch_row_begin(b, &tp->p, row), MESH_OK);
    if (device)
        mesh_batch_set_text(b, 0, device, strlen(device));
    if (temp)
        mesh_batch_set_text(b, 2, temp, strlen(temp));
    char raw[128];
    snprintf(raw, sizeof raw, "%s,%s", device ? device : "", temp ? temp : "");
    mesh_batch_row_end(b, raw, strlen(raw));
}

static void test_row_required_and_time(void **state)
{
    mesh_batch_t b;
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    b.received_ns = 42;
    reading(&b, readings, 1, "d1", "21.5");
    assert_false(mesh_batch_failed(&b));
    mesh_value_t *row = b.parts[0].vals;
    assert_int_equal(row[1].type, MESH_V_INT);
    assert_true(row[1].u.i == 42); /* absent time column: receive time */
    assert_int_equal(row[3].type, MESH_V_NULL);
    assert_int_equal(row[4].type, MESH_V_NULL);
    /* an explicit null time column is the receive time as well */
    mesh_batch_row_begin(&b, &readings->p, 2);
    mesh_batch_set_text(&b, 0, "d2", 2);
    mesh_batch_set_null(&b, 1);
    mesh_batch_row_end(&b, NULL, 0);
    assert_int_equal(mesh_batch_good_rows(&b), 2);
    assert_true(b.parts[0].vals[b.parts[0].ncols + 1].u.i == 42);
    /* the primary key column is missing, then null */
    reading(&b, readings, 3, NULL, "20");
    assert_non_null(tp_find_error(&b, 3, "device", "required value is missing"));
    mesh_batch_row_begin(&b, &readings->p, 4);
    mesh_batch_set_null(&b, 0);
    mesh_batch_row_end(&b, NULL, 0);
    assert_non_null(tp_find_error(&b, 4, "device", "required value is missing"));
    /* every missing required column is reported */
    mesh_batch_row_begin(&b, &registry->p, 6);
    mesh_batch_row_end(&b, NULL, 5); /* no raw text: the length is ignored */
    assert_non_null(tp_find_error(&b, 6, "id", "required value is missing"));
    test_product_t *two = tp_readings(false);
    two->cols[3].required = true;
    mesh_batch_row_begin(&b, &two->p, 7);
    mesh_batch_row_end(&b, NULL, 0);
    assert_non_null(tp_find_error(&b, 7, "device", "required value is missing"));
    assert_non_null(tp_find_error(&b, 7, "status", "required value is missing"));
    assert_int_equal(b.nerrors, 5);
    mesh_batch_free(&b);
    tp_free(two);
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    b.received_ns = 42;
    reading(&b, readings, 1, "d1", "21.5");
    reading(&b, readings, 2, "d2", "21.5");
    reading(&b, readings, 3, NULL, "20");
    reading(&b, readings, 4, NULL, NULL);
    /* a bad value in a required column is one error, not also "missing" */
    reading(&b, readings, 5, "BAD", NULL);
    assert_int_equal(b.nerrors, 3);
    assert_non_null(
        tp_find_error(&b, 5, "device", "'BAD' does not match the pattern '^[a-z][a-z0-9-]*$'"));
    assert_true(mesh_batch_failed(&b));
    assert_int_equal(b.fail_code, MESH_VALIDATION);
    assert_int_equal(b.error_rows, 3);
    assert_int_equal(b.total_rows, 5);
    assert_int_equal(mesh_batch_good_rows(&b), 2);
    mesh_batch_free(&b);
}

static void test_column_given_twice(void **state)
{
    mesh_batch_t b;
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    mesh_batch_row_begin(&b, &readings->p, 7);
    mesh_batch_set_text(&b, 0, "d1", 2);
    mesh_batch_set_real(&b, 2, 20);
    mesh_batch_set_real(&b, 2, 21);
    mesh_batch_row_end(&b, NULL, 0);
    const mesh_row_error_t *e = tp_find_error(&b, 7, "temp", "column given twice");
    assert_non_null(e);
    assert_int_equal(e->col, 2);
    assert_string_equal(e->product, "readings");
    /* an out-of-range column index is an error of the row, not a crash */
    mesh_batch_row_begin(&b, &readings->p, 8);
    mesh_batch_set_int(&b, 99, 1);
    mesh_batch_set_text(&b, -1, "x", 1);
    mesh_batch_row_end(&b, NULL, 0);
    assert_non_null(tp_find_error(&b, 8, "", "column index 99 is out of range"));
    mesh_batch_free(&b);
}

static void test_quarantine_vs_reject(void **state)
{
    /* reject: one bad row refuses the batch */
    mesh_batch_t b;
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    reading(&b, readings, 1, "d1", "21.5");
    size_t arena_before = b.arena.len;
    reading(&b, readings, 2, "d2", "250.5");
    assert_int_equal(b.arena.len, arena_before); /* the dropped row's text is cut off again */
    reading(&b, readings, 3, "d3", "22");
    assert_true(mesh_batch_failed(&b));
    assert_int_equal(b.fail_code, MESH_VALIDATION);
    assert_int_equal(mesh_batch_quarantined_rows(&b), 0);
    assert_non_null(tp_find_error(&b, 2, "temp", "value 250.5 is above the maximum 200"));
    mesh_buf_t out;
    mesh_buf_init(&out, MESH_BUF_UNLIMITED);
    assert_int_equal(mesh_batch_encode(&b, NULL, &out), MESH_INVALID);
    mesh_buf_free(&out);
    mesh_batch_free(&b);

    /* quarantine: the bad row is kept aside with its reasons, the rest applies */
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    reading(&b, readings_q, 1, "d1", "21.5");
    assert_int_equal(mesh_batch_row_begin(&b, &readings_q->p, 2), MESH_OK);
    mesh_batch_set_text(&b, 0, "d2", 2);
    mesh_batch_set_text(&b, 2, "250.5", 5);
    mesh_batch_set_text(&b, 3, "x", 1);
    mesh_batch_row_end(&b, "d2,250.5,x", 10);
    reading(&b, readings_q, 3, "d3", "22");
    assert_false(mesh_batch_failed(&b));
    assert_int_equal(mesh_batch_good_rows(&b), 2);
    assert_int_equal(mesh_batch_quarantined_rows(&b), 1);
    assert_int_equal(b.error_rows, 1);
    assert_int_equal(b.nerrors, 2); /* both reasons are reported */
    const mesh_quarantined_t *q = &b.parts[0].quar[0];
    assert_int_equal(q->row, 2);
    assert_string_equal(b.arena.data + q->reason_off, "temp: value 250.5 is above the maximum 200");
    assert_int_equal(q->reason_len, strlen("temp: value 250.5 is above the maximum 200"));
    assert_memory_equal(b.arena.data + q->raw_off, "d2,250.5,x", 10);
    assert_int_equal(q->raw_len, 10);
    /* the good rows after the quarantined one are intact */
    mesh_value_t *r3 = &b.parts[0].vals[b.parts[0].ncols];
    assert_string_equal(mesh_batch_text(&b, &r3[0]), "d3");
    mesh_batch_free(&b);
}

static void test_parts_per_product(void **state)
{
    mesh_batch_t b;
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    reading(&b, readings, 1, "d1", "1");
    reading(&b, readings_q, 2, "d2", "2");
    reading(&b, readings, 3, "d3", "3");
    assert_int_equal(b.nparts, 2);
    assert_int_equal(b.parts[0].nrows, 2);
    assert_int_equal(b.parts[1].nrows, 1);
    assert_ptr_equal(b.parts[1].product, &readings_q->p);
    /* many rows: the slab grows without losing values */
    for (uint32_t i = 0; i < 1000; i++) {
        char dev[16];
        snprintf(dev, sizeof dev, "d%u", i);
        reading(&b, readings, 10 + i, dev, "5");
    }
    assert_int_equal(b.parts[0].nrows, 1002);
    mesh_value_t *last = &b.parts[0].vals[1001 * b.parts[0].ncols];
    assert_string_equal(mesh_batch_text(&b, &last[0]), "d999");
    mesh_batch_free(&b);
}

/* A row hint (the body's line count) sizes new parts at once, within twice the hint in all;
 * rows past it still fit (the parts grow as before). */
static void test_rows_hint(void **state)
{
    (void)state;
    mesh_batch_t b;
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    mesh_batch_expect_rows(&b, 300);
    reading(&b, readings, 1, "d1", "1");
    assert_int_equal(b.parts[0].cap_rows, 300);
    reading(&b, readings_q, 2, "d2", "2");
    assert_int_equal(b.parts[1].cap_rows, 299); /* the rows still to come */
    for (uint32_t i = 0; i < 400; i++) {
        char dev[16];
        snprintf(dev, sizeof dev, "d%u", i);
        reading(&b, i % 2 ? readings : readings_q, 10 + i, dev, "5");
    }
    assert_int_equal(b.parts[0].nrows + b.parts[1].nrows, 402);
    assert_true(b.rows_prealloc <= 600);
    mesh_value_t *last = &b.parts[0].vals[(b.parts[0].nrows - 1) * b.parts[0].ncols];
    assert_string_equal(mesh_batch_text(&b, &last[0]), "d399");
    mesh_batch_free(&b);
    /* a huge hint (a body of empty lines) gives a part a few MiB at most */
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    mesh_batch_expect_rows(&b, 1000000);
    reading(&b, readings, 1, "d1", "1");
    assert_true(b.parts[0].cap_rows * b.parts[0].ncols * sizeof(mesh_value_t) <= (4u << 20));
    mesh_batch_free(&b);
}

static void test_errors_kept_and_counted(void **state)
{
    mesh_batch_limits_t lim = MESH_BATCH_DEFAULT_LIMITS;
    lim.max_errors = 3;
    mesh_batch_t b;
    mesh_batch_init(&b, "factory-a", lim);
    for (uint32_t i = 1; i <= 10; i++)
        reading(&b, readings_q, i, "d1", "999");
    assert_int_equal(b.nerrors, 3);
    assert_int_equal(b.error_rows, 10);
    assert_int_equal(mesh_batch_quarantined_rows(&b), 10);
    assert_int_equal(b.errors[2].row, 3);
    /* a batch failure is kept even when the list is full */
    mesh_batch_fail(&b, MESH_PARSE, 11, "body is broken");
    assert_int_equal(b.nerrors, 3);
    assert_string_equal(b.errors[2].reason, "body is broken");
    assert_int_equal(b.fail_code, MESH_PARSE);
    /* and the first hard failure wins */
    mesh_batch_fail(&b, MESH_TOO_LARGE, 12, "later");
    assert_int_equal(b.fail_code, MESH_PARSE);
    mesh_batch_free(&b);

    /* no detail kept at all */
    lim.max_errors = 0;
    mesh_batch_init(&b, "factory-a", lim);
    reading(&b, readings, 1, "d1", "999");
    assert_int_equal(b.nerrors, 0);
    assert_int_equal(b.error_rows, 1);
    assert_true(mesh_batch_failed(&b));
    mesh_batch_free(&b);
}

static void test_source_error(void **state)
{
    mesh_batch_t b;
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    mesh_batch_source_error(&b, 4, "nosuch", "unknown product '%s' in domain '%s'", "nosuch",
                            "factory-a");
    assert_true(mesh_batch_failed(&b));
    assert_int_equal(b.fail_code, MESH_VALIDATION);
    assert_int_equal(b.error_rows, 1);
    assert_int_equal(b.total_rows, 1);
    const mesh_row_error_t *e =
        tp_find_error(&b, 4, "", "unknown product 'nosuch' in domain 'factory-a'");
    assert_non_null(e);
    assert_string_equal(e->product, "nosuch");
    assert_int_equal(e->col, -1);
    mesh_batch_free(&b);
}

static void test_value_shown_truncated(void **state)
{
    char v[101];
    memset(v, 'x', 100);
    v[100] = '\0';
    char want[128];
    snprintf(want, sizeof want, "'%.40s...' is not an integer", v);
    TEXT_BAD("i", v, want);
    /* the cut does not split a UTF-8 character: 39 x then a 2-byte character */
    char u[64];
    memset(u, 'x', 39);
    memcpy(u + 39, "\xc3\xa9yyyy", 7);
    snprintf(want, sizeof want, "'%.39s...' is not an integer", u);
    TEXT_BAD("i", u, want);
    /* short values are shown whole, control bytes as '?' */
    TEXT_BAD("i", "a\tb", "'a?b' is not an integer");
}

/* ---- limits --------------------------------------------------------------------------------- */

static void test_limit_rows(void **state)
{
    mesh_batch_limits_t lim = MESH_BATCH_DEFAULT_LIMITS;
    lim.max_rows = 2;
    mesh_batch_t b;
    mesh_batch_init(&b, "factory-a", lim);
    reading(&b, readings, 1, "d1", "1");
    reading(&b, readings, 2, "d2", "2");
    assert_int_equal(mesh_batch_row_begin(&b, &readings->p, 3), MESH_TOO_LARGE);
    assert_true(mesh_batch_failed(&b));
    assert_int_equal(b.fail_code, MESH_TOO_LARGE);
    assert_non_null(tp_find_error(&b, 3, NULL, "the batch has more than 2 rows"));
    /* further rows are refused at once */
    assert_int_equal(mesh_batch_row_begin(&b, &readings->p, 4), MESH_TOO_LARGE);
    mesh_batch_free(&b);
}

static void test_limit_arena_and_value(void **state)
{
    mesh_batch_limits_t lim = MESH_BATCH_DEFAULT_LIMITS;
    lim.max_value_len = 10;
    mesh_batch_t b;
    mesh_batch_init(&b, "factory-a", lim);
    mesh_batch_row_begin(&b, &kinds->p, 1);
    mesh_batch_set_text(&b, 0, "0123456789A", 11);
    mesh_batch_row_end(&b, NULL, 0);
    assert_int_equal(b.fail_code, MESH_TOO_LARGE);
    assert_non_null(tp_find_error(
        &b, 1, NULL, "value of column 's' is 11 bytes, more than the limit of 10 bytes"));
    assert_int_equal(mesh_batch_row_begin(&b, &kinds->p, 2), MESH_TOO_LARGE);
    mesh_batch_free(&b);

    lim = MESH_BATCH_DEFAULT_LIMITS;
    lim.max_arena = 100;
    mesh_batch_init(&b, "factory-a", lim);
    uint32_t row = 0;
    while (!mesh_batch_failed(&b) && row < 100) {
        if (mesh_batch_row_begin(&b, &kinds->p, ++row) != MESH_OK)
            break;
        mesh_batch_set_text(&b, 0, "0123456789", 10);
        mesh_batch_row_end(&b, NULL, 0);
    }
    assert_int_equal(b.fail_code, MESH_TOO_LARGE);
    assert_true(row < 12);
    assert_non_null(tp_find_error(&b, row, NULL, "the batch holds more than 100 bytes of text"));
    mesh_batch_free(&b);

    /* the quarantine's raw rows count against the arena as well */
    mesh_batch_init(&b, "factory-a", lim);
    char raw[200];
    memset(raw, 'r', sizeof raw);
    mesh_batch_row_begin(&b, &readings_q->p, 1);
    mesh_batch_row_end(&b, raw, sizeof raw);
    assert_int_equal(b.fail_code, MESH_TOO_LARGE);
    mesh_batch_free(&b);
}

static void test_precision_parse(void **state)
{
    mesh_precision_t p;
    assert_int_equal(mesh_precision_parse("ns", &p), MESH_OK);
    assert_int_equal(p, MESH_PREC_NS);
    assert_int_equal(mesh_precision_parse("n", &p), MESH_OK);
    assert_int_equal(p, MESH_PREC_NS);
    assert_int_equal(mesh_precision_parse("us", &p), MESH_OK);
    assert_int_equal(p, MESH_PREC_US);
    assert_int_equal(mesh_precision_parse("u", &p), MESH_OK);
    assert_int_equal(p, MESH_PREC_US);
    assert_int_equal(mesh_precision_parse("ms", &p), MESH_OK);
    assert_int_equal(p, MESH_PREC_MS);
    assert_int_equal(mesh_precision_parse("s", &p), MESH_OK);
    assert_int_equal(p, MESH_PREC_S);
    assert_int_equal(mesh_precision_parse("auto", &p), MESH_OK);
    assert_int_equal(p, MESH_PREC_AUTO);
    assert_int_equal(mesh_precision_parse("h", &p), MESH_INVALID);
    assert_int_equal(mesh_precision_parse("", &p), MESH_INVALID);
    assert_int_equal(mesh_precision_parse(NULL, &p), MESH_INVALID);
}

static void test_errors_json(void **state)
{
    mesh_batch_t b;
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    mesh_buf_t out;
    mesh_buf_init(&out, MESH_BUF_UNLIMITED);
    assert_int_equal(mesh_batch_errors_json(&b, &out), MESH_OK);
    assert_string_equal(out.data, "[]");
    mesh_buf_reset(&out);
    reading(&b, readings_q, 3, "d1", "250.5");
    reading(&b, readings_q, 4, "d\"q", "1");
    mesh_batch_source_error(&b, 5, NULL, "line 5: no product");
    assert_int_equal(mesh_batch_errors_json(&b, &out), MESH_OK);
    assert_string_equal(
        out.data,
        "[{\"row\":3,\"product\":\"readings_q\",\"column\":\"temp\",\"reason\":\"value 250.5 is "
        "above the maximum 200\"},"
        "{\"row\":4,\"product\":\"readings_q\",\"column\":\"device\",\"reason\":\"'d\\\"q' does "
        "not match the pattern '^[a-z][a-z0-9-]*$'\"},"
        "{\"row\":5,\"product\":null,\"column\":null,\"reason\":\"line 5: no product\"}]");
    mesh_buf_free(&out);
    mesh_batch_free(&b);
}

/* ---- encode / decode ------------------------------------------------------------------------ */

static tp_catalog_t catalog(void)
{
    tp_catalog_t cat = {.v = {readings, readings_q, registry, kinds}, .n = 4};
    return cat;
}

/* A batch over three products with every value type and a quarantined row. */
static void build_mixed(mesh_batch_t *b)
{
    mesh_batch_init(b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    b->received_ns = 1700000000123456789;
    reading(b, readings, 1, "d1", "21.5");
    assert_int_equal(mesh_batch_row_begin(b, &readings->p, 2), MESH_OK);
    mesh_batch_set_text(b, 0, "d2", 2);
    mesh_batch_set_int(b, 1, -1234567890123);
    mesh_batch_set_real(b, 2, -49.75);
    mesh_batch_set_text(b, 3, "warn", 4);
    mesh_batch_set_int(b, 4, 7);
    mesh_batch_set_bool(b, 5, true);
    mesh_batch_row_end(b, NULL, 0);
    assert_int_equal(mesh_batch_row_begin(b, &kinds->p, 3), MESH_OK);
    static const struct {
        const char *col, *val;
    } kv[] = {{"s", "héllo, \"world\""},
              {"s_email", "a@b.example"},
              {"i", "-9223372036854775808"},
              {"n", "1e-300"},
              {"b", "no"},
              {"ts", "2023-11-14T22:13:20.000000001Z"},
              {"d", "2024-02-29"},
              {"t", "12:00:00.25"},
              {"o", "{\"x\":{\"y\":[1,2,3]}}"},
              {"a", "[]"}};
    for (size_t i = 0; i < MESH_ARRAY_LEN(kv); i++)
        mesh_batch_set_text(b, tp_colidx(kinds, kv[i].col), kv[i].val, strlen(kv[i].val));
    mesh_batch_row_end(b, NULL, 0);
    reading(b, readings_q, 4, "d4", "4");
    reading(b, readings_q, 5, "d5", "500");
    assert_false(mesh_batch_failed(b));
}

static void assert_batches_equal(const mesh_batch_t *a, const mesh_batch_t *b)
{
    assert_string_equal(a->domain, b->domain);
    assert_true(a->received_ns == b->received_ns);
    assert_int_equal(a->nparts, b->nparts);
    for (size_t i = 0; i < a->nparts; i++) {
        const mesh_part_t *pa = &a->parts[i], *pb = &b->parts[i];
        assert_ptr_equal(pa->product, pb->product);
        assert_int_equal(pa->nrows, pb->nrows);
        assert_int_equal(pa->nquar, pb->nquar);
        for (size_t k = 0; k < pa->nrows * pa->ncols; k++) {
            const mesh_value_t *va = &pa->vals[k], *vb = &pb->vals[k];
            assert_int_equal(va->type, vb->type);
            if (va->type == MESH_V_INT)
                assert_true(va->u.i == vb->u.i);
            else if (va->type == MESH_V_REAL)
                assert_true(va->u.d == vb->u.d);
            else if (va->type == MESH_V_TEXT) {
                assert_int_equal(va->u.s.len, vb->u.s.len);
                assert_memory_equal(mesh_batch_text(a, va), mesh_batch_text(b, vb), va->u.s.len);
            }
        }
        for (size_t k = 0; k < pa->nquar; k++) {
            const mesh_quarantined_t *qa = &pa->quar[k], *qb = &pb->quar[k];
            assert_int_equal(qa->row, qb->row);
            assert_int_equal(qa->reason_len, qb->reason_len);
            assert_int_equal(qa->raw_len, qb->raw_len);
            assert_memory_equal(a->arena.data + qa->reason_off, b->arena.data + qb->reason_off,
                                qa->reason_len);
            assert_memory_equal(a->arena.data + qa->raw_off, b->arena.data + qb->raw_off,
                                qa->raw_len);
        }
    }
}

static void test_encode_decode_round_trip(void **state)
{
    mesh_batch_t b, d;
    build_mixed(&b);
    mesh_buf_t out;
    mesh_buf_init(&out, MESH_BUF_UNLIMITED);
    assert_int_equal(mesh_batch_encode(&b, "idem-123", &out), MESH_OK);
    assert_int_equal((uint8_t)out.data[0], 1); /* version */

    tp_catalog_t cat = catalog();
    char idem[256];
    mesh_err_t err;
    mesh_batch_init(&d, "", MESH_BATCH_DEFAULT_LIMITS);
    assert_int_equal(mesh_batch_decode((const uint8_t *)out.data, out.len, tp_lookup, &cat, &d,
                                       idem, sizeof idem, &err),
                     MESH_OK);
    assert_string_equal(idem, "idem-123");
    assert_batches_equal(&b, &d);
    assert_int_equal(mesh_batch_good_rows(&d), 4);
    assert_int_equal(mesh_batch_quarantined_rows(&d), 1);
    /* decoded text is NUL-terminated like filled text */
    const mesh_value_t *s = &d.parts[1].vals[0];
    assert_string_equal(mesh_batch_text(&d, s), "héllo, \"world\"");

    /* encoding the decoded batch gives the same bytes */
    mesh_buf_t again;
    mesh_buf_init(&again, MESH_BUF_UNLIMITED);
    assert_int_equal(mesh_batch_encode(&d, "idem-123", &again), MESH_OK);
    assert_int_equal(again.len, out.len);
    assert_memory_equal(again.data, out.data, out.len);
    mesh_buf_free(&again);
    mesh_batch_free(&d);

    /* no idempotency key, and a caller that does not want it */
    mesh_buf_reset(&out);
    assert_int_equal(mesh_batch_encode(&b, NULL, &out), MESH_OK);
    mesh_batch_init(&d, "", MESH_BATCH_DEFAULT_LIMITS);
    assert_int_equal(
        mesh_batch_decode((const uint8_t *)out.data, out.len, tp_lookup, &cat, &d, NULL, 0, NULL),
        MESH_OK);
    assert_batches_equal(&b, &d);
    mesh_batch_free(&d);

    /* an idempotency key that does not fit the caller's buffer */
    mesh_buf_reset(&out);
    assert_int_equal(mesh_batch_encode(&b, "0123456789", &out), MESH_OK);
    mesh_batch_init(&d, "", MESH_BATCH_DEFAULT_LIMITS);
    assert_int_equal(
        mesh_batch_decode((const uint8_t *)out.data, out.len, tp_lookup, &cat, &d, idem, 5, &err),
        MESH_INVALID);
    mesh_batch_free(&d);
    /* a key longer than a record may hold */
    char long_key[300];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    assert_int_equal(mesh_batch_encode(&b, long_key, &out), MESH_INVALID);
    /* an output buffer at its cap */
    mesh_buf_t small;
    mesh_buf_init(&small, 16);
    mesh_buf_adds(&small, "head");
    assert_int_equal(mesh_batch_encode(&b, NULL, &small), MESH_TOO_LARGE);
    assert_int_equal(small.len, 4); /* left as it was */
    assert_string_equal(small.data, "head");
    mesh_buf_free(&small);

    mesh_buf_free(&out);
    mesh_batch_free(&b);
}

/* The catalog changed since the record was written. */
static void test_decode_schema_changes(void **state)
{
    mesh_batch_t b, d;
    build_mixed(&b);
    mesh_buf_t out;
    mesh_buf_init(&out, MESH_BUF_UNLIMITED);
    assert_int_equal(mesh_batch_encode(&b, NULL, &out), MESH_OK);

    /* readings now: no "status", a new column "site", "count" became a number, "temp" an
     * integer; kinds and readings_q are gone */
    test_product_t *r2 = tp_readings(false);
    r2->cols[3].name = (char *)"site";
    r2->cols[4].type = MESH_LT_NUMBER;
    r2->cols[2].type = MESH_LT_INTEGER;
    tp_catalog_t cat = {.v = {r2}, .n = 1};
    mesh_batch_init(&d, "", MESH_BATCH_DEFAULT_LIMITS);
    mesh_err_t err;
    assert_int_equal(
        mesh_batch_decode((const uint8_t *)out.data, out.len, tp_lookup, &cat, &d, NULL, 0, &err),
        MESH_OK);
    assert_int_equal(d.nparts, 1);
    assert_ptr_equal(d.parts[0].product, &r2->p);
    assert_int_equal(d.parts[0].nrows, 2);
    const mesh_value_t *row1 = d.parts[0].vals, *row2 = row1 + d.parts[0].ncols;
    assert_string_equal(mesh_batch_text(&d, &row1[0]), "d1");
    assert_int_equal(row1[2].type, MESH_V_NULL); /* 21.5 is not an integer */
    assert_int_equal(row2[3].type, MESH_V_NULL); /* new column */
    assert_int_equal(row2[4].type, MESH_V_REAL); /* 7 became 7.0 */
    assert_true(row2[4].u.d == 7.0);
    assert_int_equal(row2[5].type, MESH_V_INT);
    mesh_batch_free(&d);
    tp_free(r2);

    /* the product is gone altogether */
    tp_catalog_t none = {.n = 0};
    mesh_batch_init(&d, "", MESH_BATCH_DEFAULT_LIMITS);
    assert_int_equal(
        mesh_batch_decode((const uint8_t *)out.data, out.len, tp_lookup, &none, &d, NULL, 0, &err),
        MESH_OK);
    assert_int_equal(d.nparts, 0);
    mesh_batch_free(&d);

    /* a decode respects the caller's limits */
    tp_catalog_t cat2 = catalog();
    mesh_batch_limits_t lim = MESH_BATCH_DEFAULT_LIMITS;
    lim.max_rows = 1;
    mesh_batch_init(&d, "", lim);
    assert_int_equal(
        mesh_batch_decode((const uint8_t *)out.data, out.len, tp_lookup, &cat2, &d, NULL, 0, &err),
        MESH_TOO_LARGE);
    mesh_batch_free(&d);

    mesh_buf_free(&out);
    mesh_batch_free(&b);
}

static void test_decode_bad_input(void **state)
{
    mesh_batch_t b, d;
    build_mixed(&b);
    mesh_buf_t out;
    mesh_buf_init(&out, MESH_BUF_UNLIMITED);
    assert_int_equal(mesh_batch_encode(&b, "k", &out), MESH_OK);
    tp_catalog_t cat = catalog();
    mesh_err_t err;
    char idem[256];

    /* every truncation is an error */
    for (size_t n = 0; n < out.len; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact size, so ASan sees any over-read */
        memcpy(copy, out.data, n);
        mesh_batch_init(&d, "", MESH_BATCH_DEFAULT_LIMITS);
        mesh_err_clear(&err);
        mesh_status_t st = mesh_batch_decode(copy, n, tp_lookup, &cat, &d, idem, sizeof idem, &err);
        assert_int_equal(st, MESH_CORRUPT);
        assert_true(err.msg[0] != '\0');
        assert_true(mesh_batch_failed(&d));
        mesh_batch_free(&d);
        free(copy);
    }
    /* every single-byte change decodes or fails, never crashes */
    uint8_t *copy = malloc(out.len);
    for (size_t i = 0; i < out.len; i++) {
        static const uint8_t flips[] = {0x01, 0x80, 0xff};
        for (size_t f = 0; f < sizeof flips; f++) {
            memcpy(copy, out.data, out.len);
            copy[i] ^= flips[f];
            mesh_batch_init(&d, "", MESH_BATCH_DEFAULT_LIMITS);
            mesh_batch_decode(copy, out.len, tp_lookup, &cat, &d, idem, sizeof idem, &err);
            mesh_batch_free(&d);
        }
    }
    free(copy);

    /* trailing bytes, a wrong version */
    mesh_buf_addc(&out, 0);
    mesh_batch_init(&d, "", MESH_BATCH_DEFAULT_LIMITS);
    assert_int_equal(
        mesh_batch_decode((const uint8_t *)out.data, out.len, tp_lookup, &cat, &d, NULL, 0, &err),
        MESH_CORRUPT);
    assert_non_null(strstr(err.msg, "1 bytes after the end"));
    mesh_batch_free(&d);
    out.data[0] = 2;
    mesh_batch_init(&d, "", MESH_BATCH_DEFAULT_LIMITS);
    assert_int_equal(
        mesh_batch_decode((const uint8_t *)out.data, out.len, tp_lookup, &cat, &d, NULL, 0, &err),
        MESH_CORRUPT);
    assert_non_null(strstr(err.msg, "unsupported version 2"));
    mesh_batch_free(&d);

    /* huge counts with no bytes behind them allocate nothing */
    static const uint8_t huge[] = {1, 0,    0,    0,    0,    0,    0,    0,    0,   0,
                                   0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    mesh_batch_init(&d, "", MESH_BATCH_DEFAULT_LIMITS);
    assert_int_equal(mesh_batch_decode(huge, sizeof huge, tp_lookup, &cat, &d, NULL, 0, &err),
                     MESH_CORRUPT);
    mesh_batch_free(&d);
    /* a value tag that does not fit the column's type: readings.device (string) as INT */
    mesh_buf_t rec;
    mesh_buf_init(&rec, MESH_BUF_UNLIMITED);
    mesh_buf_addc(&rec, 1);
    mesh_buf_add_uvarint(&rec, 0);
    mesh_buf_add_u64(&rec, 0);
    mesh_buf_add_uvarint(&rec, 9);
    mesh_buf_add(&rec, "factory-a", 9);
    mesh_buf_add_uvarint(&rec, 1);
    mesh_buf_add_uvarint(&rec, 8);
    mesh_buf_add(&rec, "readings", 8);
    mesh_buf_add_uvarint(&rec, 1);
    mesh_buf_add_uvarint(&rec, 6);
    mesh_buf_add(&rec, "device", 6);
    mesh_buf_addc(&rec, MESH_LT_STRING);
    mesh_buf_add_uvarint(&rec, 1);
    mesh_buf_addc(&rec, MESH_V_INT);
    mesh_buf_add_uvarint(&rec, 2);
    mesh_buf_add_uvarint(&rec, 0);
    mesh_batch_init(&d, "", MESH_BATCH_DEFAULT_LIMITS);
    assert_int_equal(
        mesh_batch_decode((const uint8_t *)rec.data, rec.len, tp_lookup, &cat, &d, NULL, 0, &err),
        MESH_CORRUPT);
    assert_non_null(strstr(err.msg, "does not fit its column's type"));
    mesh_batch_free(&d);
    /* the same record with a TEXT value decodes; the missing columns are NULL */
    rec.data[rec.len - 3] = MESH_V_TEXT;
    rec.data[rec.len - 2] = 1;
    rec.data[rec.len - 1] = 'x';
    mesh_buf_add_uvarint(&rec, 0);
    mesh_batch_init(&d, "", MESH_BATCH_DEFAULT_LIMITS);
    assert_int_equal(
        mesh_batch_decode((const uint8_t *)rec.data, rec.len, tp_lookup, &cat, &d, NULL, 0, &err),
        MESH_OK);
    assert_int_equal(d.parts[0].nrows, 1);
    assert_string_equal(mesh_batch_text(&d, &d.parts[0].vals[0]), "x");
    assert_int_equal(d.parts[0].vals[2].type, MESH_V_NULL);
    mesh_batch_free(&d);
    mesh_buf_free(&rec);

    mesh_buf_free(&out);
    mesh_batch_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string),
        cmocka_unit_test(test_string_length),
        cmocka_unit_test(test_string_pattern),
        cmocka_unit_test(test_string_formats),
        cmocka_unit_test(test_string_enum),
        cmocka_unit_test(test_integer_text),
        cmocka_unit_test(test_number_text),
        cmocka_unit_test(test_boolean_text),
        cmocka_unit_test(test_timestamp_text),
        cmocka_unit_test(test_date_time_text),
        cmocka_unit_test(test_json_text),
        cmocka_unit_test(test_set_int),
        cmocka_unit_test(test_set_real),
        cmocka_unit_test(test_set_bool_null_json),
        cmocka_unit_test(test_row_required_and_time),
        cmocka_unit_test(test_column_given_twice),
        cmocka_unit_test(test_quarantine_vs_reject),
        cmocka_unit_test(test_parts_per_product),
        cmocka_unit_test(test_rows_hint),
        cmocka_unit_test(test_errors_kept_and_counted),
        cmocka_unit_test(test_source_error),
        cmocka_unit_test(test_value_shown_truncated),
        cmocka_unit_test(test_limit_rows),
        cmocka_unit_test(test_limit_arena_and_value),
        cmocka_unit_test(test_precision_parse),
        cmocka_unit_test(test_errors_json),
        cmocka_unit_test(test_encode_decode_round_trip),
        cmocka_unit_test(test_decode_schema_changes),
        cmocka_unit_test(test_decode_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
