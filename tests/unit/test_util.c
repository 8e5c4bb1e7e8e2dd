/*
 * test_util.c - time text (every accepted form, offsets, leap years, invalid dates, range,
 * fractions), time formatting, durations, strict number and bool parsing, names, hex,
 * CRC-32C, randomness, string helpers and the file helpers (read limits, mkdirs).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/util.h"
#include "query/query.h"

/* The fast decimal path must give exactly what strtod gives. */
static void test_parse_f64_matches_strtod(void **state)
{
    (void)state;
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    char buf[64];
    for (int round = 0; round < 200000; round++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int intd = (int)(x % 9), fracd = (int)((x >> 8) % 12);
        size_t n = 0;
        if (x & (1ULL << 40))
            buf[n++] = '-';
        uint64_t y = x >> 20;
        for (int i = 0; i <= intd; i++, y /= 10)
            buf[n++] = (char)('0' + y % 10);
        if (fracd) {
            buf[n++] = '.';
            uint64_t z = x * 2654435761u;
            for (int i = 0; i < fracd; i++, z /= 10)
                buf[n++] = (char)('0' + z % 10);
        }
        buf[n] = '\0';
        double got;
        assert_int_equal(mesh_parse_f64(buf, n, &got), MESH_OK);
        double want = strtod(buf, NULL);
        assert_memory_equal(&got, &want, sizeof got);
    }
}

/* Doubles are printed as printf's shortest round-trip %.15g..%.17g would print them (the fast
 * path for short decimals must not change a byte), and always read back exactly. */
static void ref_double(double d, char *out, size_t cap)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            break;
    }
    if (!strpbrk(out, ".eEn"))
        snprintf(out + strlen(out), cap - strlen(out), ".0");
}

static void check_double(double d)
{
    char want[64];
    ref_double(d, want, sizeof want);
    mesh_buf_t b;
    mesh_buf_init(&b, 1024);
    assert_int_equal(mesh_buf_add_double(&b, d), MESH_OK);
    assert_int_equal(mesh_buf_addc(&b, '\0'), MESH_OK);
    if (strcmp(b.data, want) != 0)
        fail_msg("%.17g: got %s, want %s", d, b.data, want);
    assert_true(strtod(b.data, NULL) == d);
    mesh_buf_free(&b);
}

static void test_format_double(void **state)
{
    (void)state;
    const double fixed[] = {0.0,
                            -0.0,
                            1.0,
                            -1.0,
                            0.1,
                            0.3,
                            1e-4,
                            9.9e-5,
                            1.5e-4,
                            123.456,
                            1e14,
                            1e15,
                            1e16,
                            999999999999999.0,
                            0.1 + 0.2,
                            1.0 / 3,
                            2.5e-3,
                            47.123456,
                            -122.4194,
                            1e300,
                            5e-324,
                            9007199254740993.0,
                            4503599627370497.5,
                            100.0,
                            12345678901234.5};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        check_double(fixed[i]);
    uint64_t x = 0x2545F4914F6CDD1DULL;
    for (int round = 0; round < 200000; round++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        if (round % 3 == 0) { /* any bits */
            memcpy(&d, &x, sizeof d);
            if (d != d)
                continue;
        } else { /* a short decimal, as sensors send */
            int k = (int)(x % 12);
            double m = (double)((x >> 8) % 10000000);
            d = m;
            for (int i = 0; i < k; i++)
                d /= 10;
            if (x & (1ULL << 60))
                d = -d;
        }
        check_double(d);
    }
}

int main(void);

/* ---- temp directories -------------------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char tmpdir[256];

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/meshd-test-util-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmp(void **state)
{
    (void)state;
    rm_rf(tmpdir);
    return 0;
}

static void write_file(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(mesh_write_all(fd, p, n), MESH_OK);
    close(fd);
}

/* ---- time parsing -------------------------------------------------------------------------- */

static int64_t tp(const char *s)
{
    int64_t ns = 0x5555;
    mesh_status_t st = mesh_time_parse(s, strlen(s), &ns);
    if (st != MESH_OK)
        print_message("mesh_time_parse(%s) failed\n", s);
    assert_int_equal(st, MESH_OK);
    return ns;
}

static void tp_bad(const char *s)
{
    int64_t ns = 12345;
    mesh_status_t st = mesh_time_parse(s, strlen(s), &ns);
    if (st != MESH_PARSE)
        print_message("mesh_time_parse(%s) accepted: %lld\n", s, (long long)ns);
    assert_int_equal(st, MESH_PARSE);
    assert_int_equal(ns, 12345); /* untouched on failure */
}

#define S 1000000000LL

static void test_time_forms(void **state)
{
    (void)state;
    const int64_t t = 1795459508LL * S; /* 2026-11-23T18:45:08Z */
    assert_int_equal(tp("1970-01-01"), 0);
    assert_int_equal(tp("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(tp("2026-11-23"), 1795392000LL * S);
    assert_int_equal(tp("2026-11-23T18:45"), 1795459500LL * S);
    assert_int_equal(tp("2026-11-23T18:45Z"), 1795459500LL * S);
    assert_int_equal(tp("2026-11-23T18:45:08"), t);
    assert_int_equal(tp("2026-11-23T18:45:08Z"), t);
    assert_int_equal(tp("2026-11-23t18:45:08z"), t);
    assert_int_equal(tp("2026-11-23 18:45:08"), t);
    assert_int_equal(tp("2026-11-23 18:45:08Z"), t);
    assert_int_equal(tp("1969-12-31T23:59:59Z"), -1 * S);
    assert_int_equal(tp("1900-01-01T00:00:00Z"), -2208988800LL * S);
}

static void test_time_offsets(void **state)
{
    (void)state;
    const int64_t t = 1795459508LL * S;
    assert_int_equal(tp("2026-11-23T18:45:08+00:00"), t);
    assert_int_equal(tp("2026-11-23T18:45:08-00:00"), t);
    assert_int_equal(tp("2026-11-23T19:45:08+01:00"), t);
    assert_int_equal(tp("2026-11-23T13:15:08-05:30"), t);
    assert_int_equal(tp("2026-11-24T08:30:08+13:45"), t);
    assert_int_equal(tp("2026-11-23T19:45:08+0100"), t); /* basic format offset */
    assert_int_equal(tp("2026-11-23T18:45+00:00"), 1795459500LL * S);
    assert_int_equal(tp("2026-11-23T19:45:08.5+01:00"), t + 500000000);
    /* an offset that crosses midnight and the year */
    assert_int_equal(tp("2026-01-01T00:30:00+01:00"), tp("2025-12-31T23:30:00Z"));
    assert_int_equal(tp("2025-12-31T23:30:00-01:00"), tp("2026-01-01T00:30:00Z"));
    assert_int_equal(tp("2026-11-23T18:45:08+23:59"), t - (23 * 3600 + 59 * 60) * S);
    tp_bad("2026-11-23T18:45:08+24:00");
    tp_bad("2026-11-23T18:45:08+01:60");
    tp_bad("2026-11-23T18:45:08+01");
    tp_bad("2026-11-23T18:45:08+1:00");
    tp_bad("2026-11-23T18:45:08+01:0");
    tp_bad("2026-11-23T18:45:08+01:00Z");
    tp_bad("2026-11-23T18:45:08+01:00 ");
    tp_bad("2026-11-23T18:45:08ZZ");
    tp_bad("2026-11-23T18:45:08 Z");
    tp_bad("2026-11-23T18:45:08UTC");
    tp_bad("2026-11-23Z");
    tp_bad("2026-11-23+01:00");
}

static void test_time_fractions(void **state)
{
    (void)state;
    const int64_t t = 1795459508LL * S;
    assert_int_equal(tp("2026-11-23T18:45:08.1Z"), t + 100000000);
    assert_int_equal(tp("2026-11-23T18:45:08.12Z"), t + 120000000);
    assert_int_equal(tp("2026-11-23T18:45:08.123Z"), t + 123000000);
    assert_int_equal(tp("2026-11-23T18:45:08.123456Z"), t + 123456000);
    assert_int_equal(tp("2026-11-23T18:45:08.123456789Z"), t + 123456789);
    assert_int_equal(tp("2026-11-23T18:45:08.000000001Z"), t + 1);
    assert_int_equal(tp("2026-11-23T18:45:08.999999999"), t + 999999999);
    assert_int_equal(tp("2026-11-23T18:45:08,5Z"), t + 500000000); /* ISO 8601 comma */
    assert_int_equal(tp("2026-11-23T18:45:08.000Z"), t);
    /* before the epoch the fraction still counts forward */
    assert_int_equal(tp("1969-12-31T23:59:59.5Z"), -500000000);
    tp_bad("2026-11-23T18:45:08.1234567891Z"); /* 10 digits */
    tp_bad("2026-11-23T18:45:08.0000000000");
    tp_bad("2026-11-23T18:45:08.Z");
    tp_bad("2026-11-23T18:45:08.");
    tp_bad("2026-11-23T18:45.5"); /* a fraction needs seconds */
    tp_bad("2026-11-23T18:45:08.1a");
}

static void test_time_calendar(void **state)
{
    (void)state;
    /* leap years: divisible by 4, except centuries, except every 400 years */
    assert_int_equal(tp("2000-02-29"), 951782400LL * S);
    assert_int_equal(tp("2024-02-29T12:00:00Z"), 1709208000LL * S);
    assert_int_equal(tp("2024-03-01") - tp("2024-02-28"), 2 * 86400 * S);
    assert_int_equal(tp("2023-03-01") - tp("2023-02-28"), 86400 * S);
    assert_int_equal(tp("2000-03-01") - tp("2000-02-28"), 2 * 86400 * S);
    assert_int_equal(tp("2100-03-01") - tp("2100-02-28"), 86400 * S);
    tp_bad("2023-02-29");
    tp_bad("1900-02-29");
    tp_bad("2100-02-29");
    tp_bad("2026-02-30");
    tp_bad("2026-04-31");
    tp_bad("2026-06-31");
    tp_bad("2026-09-31");
    tp_bad("2026-11-31");
    tp_bad("2026-01-32");
    tp_bad("2026-00-10");
    tp_bad("2026-13-01");
    tp_bad("2026-01-00");
    /* the last day of every month is fine */
    const char *last[] = {"2026-01-31", "2026-03-31", "2026-04-30", "2026-05-31",
                          "2026-06-30", "2026-07-31", "2026-08-31", "2026-09-30",
                          "2026-10-31", "2026-11-30", "2026-12-31", "2026-02-28"};
    for (size_t i = 0; i < MESH_ARRAY_LEN(last); i++)
        tp(last[i]);
    /* time of day */
    tp("2026-11-23T23:59:59Z");
    tp("2026-11-23T00:00:00Z");
    tp_bad("2026-11-23T24:00:00Z");
    tp_bad("2026-11-23T23:60:00Z");
    tp_bad("2026-11-23T23:59:61Z");
    /* a leap second is clamped to :59 */
    assert_int_equal(tp("2016-12-31T23:59:60Z"), tp("2016-12-31T23:59:59Z"));
}

static void test_time_range(void **state)
{
    (void)state;
    tp("1678-01-01");
    tp("2261-12-31T23:59:59.999999999Z");
    /* the edges of int64 nanoseconds */
    assert_int_equal(tp("1677-09-21T00:12:44Z"), -9223372036LL * S);
    assert_int_equal(tp("2262-04-11T23:47:15Z"), 9223372035LL * S);
    tp_bad("1677-09-21T00:12:43Z");
    tp_bad("1677-01-01");
    tp_bad("1600-01-01");
    tp_bad("0000-01-01");
    tp_bad("2263-01-01");
    tp_bad("2300-01-01");
    tp_bad("9999-12-31T23:59:59Z");
    /* an offset can bring an edge time back into range or push it out */
    tp_bad("2262-04-11T23:47:15-01:00");
    tp("1677-09-21T01:12:44+01:00");
}

static void test_time_malformed(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "2026",
                         "2026-11",
                         "2026-11-2",
                         "26-11-23",
                         "+2026-11-23",
                         "-2026-11-23",
                         "20261123",
                         "2026/11/23",
                         "2026-11-23T",
                         "2026-11-23T18",
                         "2026-11-23T18:4",
                         "2026-11-23T1845",
                         "2026-11-23T18:45:8",
                         "2026-11-23T18:45:08:00",
                         "2026-11-23X18:45:08",
                         "2026-11-23  18:45:08",
                         " 2026-11-23",
                         "2026-11-23 ",
                         "2026-1a-23",
                         "２026-11-23",
                         "now",
                         "1700000000"};
    for (size_t i = 0; i < MESH_ARRAY_LEN(bad); i++)
        tp_bad(bad[i]);
    /* the length bounds the input: nothing past n is read */
    int64_t ns;
    assert_int_equal(mesh_time_parse("2026-11-23T18:45:08Zjunk", 20, &ns), MESH_OK);
    assert_int_equal(ns, 1795459508LL * S);
    assert_int_equal(mesh_time_parse("2026-11-23T18:45:08Z", 9, &ns), MESH_PARSE);
    assert_int_equal(mesh_time_parse("2026-11-23", 10, &ns), MESH_OK);
    assert_int_equal(mesh_time_parse("2026-11-23", 0, &ns), MESH_PARSE);
}

/* ---- time formatting ----------------------------------------------------------------------- */

static void fmt_is(int64_t ns, const char *want)
{
    char out[MESH_TIME_MAX];
    memset(out, 'X', sizeof out);
    size_t n = mesh_time_format(ns, out);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
}

static void test_time_format(void **state)
{
    (void)state;
    const int64_t t = 1795459508LL * S;
    fmt_is(0, "1970-01-01T00:00:00Z");
    fmt_is(t, "2026-11-23T18:45:08Z");
    /* trimming to ms, us, ns */
    fmt_is(t + 100000000, "2026-11-23T18:45:08.100Z");
    fmt_is(t + 123000000, "2026-11-23T18:45:08.123Z");
    fmt_is(t + 123400000, "2026-11-23T18:45:08.123400Z");
    fmt_is(t + 123456000, "2026-11-23T18:45:08.123456Z");
    fmt_is(t + 123456700, "2026-11-23T18:45:08.123456700Z");
    fmt_is(t + 123456789, "2026-11-23T18:45:08.123456789Z");
    fmt_is(t + 1, "2026-11-23T18:45:08.000000001Z");
    fmt_is(t + 1000, "2026-11-23T18:45:08.000001Z");
    fmt_is(t + 1000000, "2026-11-23T18:45:08.001Z");
    /* before the epoch */
    fmt_is(-1, "1969-12-31T23:59:59.999999999Z");
    fmt_is(-500000000, "1969-12-31T23:59:59.500Z");
    fmt_is(-S, "1969-12-31T23:59:59Z");
    fmt_is(-86400 * S, "1969-12-31T00:00:00Z");
    fmt_is(951782400LL * S, "2000-02-29T00:00:00Z");
    /* the extremes of int64 */
    fmt_is(INT64_MAX, "2262-04-11T23:47:16.854775807Z");
    fmt_is(INT64_MIN, "1677-09-21T00:12:43.145224192Z");
}

static void test_time_round_trip(void **state)
{
    (void)state;
    int64_t samples[] = {0,
                         1,
                         -1,
                         999,
                         1000,
                         1000000,
                         123456789,
                         1795459508LL * S + 123456789,
                         -2208988800LL * S + 5,
                         951782400LL * S,
                         9223372035LL * S + 999999999,
                         -9223372036LL * S};
    for (size_t i = 0; i < MESH_ARRAY_LEN(samples); i++) {
        char out[MESH_TIME_MAX];
        size_t n = mesh_time_format(samples[i], out);
        int64_t back = 0;
        assert_int_equal(mesh_time_parse(out, n, &back), MESH_OK);
        assert_int_equal(back, samples[i]);
    }
    /* every day across a leap year and a century boundary formats and parses back */
    for (int64_t day = -366 * 3; day < 366 * 3; day++) {
        int64_t ns = (951782400LL + day * 86400 + 3723) * S + 7000;
        char out[MESH_TIME_MAX];
        size_t n = mesh_time_format(ns, out);
        int64_t back;
        assert_int_equal(mesh_time_parse(out, n, &back), MESH_OK);
        assert_int_equal(back, ns);
    }
}

/* ---- durations ----------------------------------------------------------------------------- */

static int64_t dp(const char *s)
{
    int64_t ns = -7;
    mesh_status_t st = mesh_duration_parse(s, &ns);
    if (st != MESH_OK)
        print_message("mesh_duration_parse(%s) failed\n", s);
    assert_int_equal(st, MESH_OK);
    return ns;
}

static void dp_bad(const char *s)
{
    int64_t ns = -7;
    mesh_status_t st = mesh_duration_parse(s, &ns);
    if (st != MESH_PARSE)
        print_message("mesh_duration_parse(%s) accepted: %lld\n", s, (long long)ns);
    assert_int_equal(st, MESH_PARSE);
    assert_int_equal(ns, -7);
}

static void test_durations(void **state)
{
    (void)state;
    assert_int_equal(dp("100ns"), 100);
    assert_int_equal(dp("250us"), 250000);
    assert_int_equal(dp("500ms"), 500000000);
    assert_int_equal(dp("10s"), 10 * S);
    assert_int_equal(dp("5m"), 300 * S);
    assert_int_equal(dp("2h"), 7200 * S);
    assert_int_equal(dp("7d"), 7 * 86400 * S);
    assert_int_equal(dp("1h30m"), 5400 * S);
    assert_int_equal(dp("1h30m15s"), 5415 * S);
    assert_int_equal(dp("1m500ms"), 60 * S + 500000000);
    assert_int_equal(dp("30"), 30 * S); /* bare seconds */
    assert_int_equal(dp("0"), 0);
    assert_int_equal(dp("0s"), 0);
    assert_int_equal(dp("1.5s"), 1500000000);
    assert_int_equal(dp("0.5ms"), 500000);
    assert_int_equal(dp("100000d"), 100000LL * 86400 * S); /* 274 years */
    dp_bad("");
    dp_bad("s");
    dp_bad("ms");
    dp_bad("5x");
    dp_bad("5 s");
    dp_bad("5s ");
    dp_bad("5sec");
    dp_bad("5mo");
    dp_bad("-5s");
    dp_bad("1h-30m");
    dp_bad("inf");
    dp_bad("nans");
    dp_bad("infs");
    dp_bad("1e300s");
    dp_bad("300000d"); /* past int64 nanoseconds */
    dp_bad("9223372037s");
    dp_bad("60000d60000d"); /* each part fits, the sum does not */
    assert_int_equal(mesh_duration_parse(NULL, &(int64_t){0}), MESH_PARSE);
}

/* ---- numbers and booleans ------------------------------------------------------------------ */

#define I64_OK(text, want)                                                                         \
    do {                                                                                           \
        int64_t v_ = 0;                                                                            \
        assert_int_equal(mesh_parse_i64(text, strlen(text), &v_), MESH_OK);                        \
        assert_true(v_ == (want));                                                                 \
    } while (0)
#define I64_BAD(text)                                                                              \
    do {                                                                                           \
        int64_t v_ = 77;                                                                           \
        assert_int_equal(mesh_parse_i64(text, strlen(text), &v_), MESH_PARSE);                     \
        assert_int_equal(v_, 77);                                                                  \
    } while (0)
#define U64_OK(text, want)                                                                         \
    do {                                                                                           \
        uint64_t v_ = 0;                                                                           \
        assert_int_equal(mesh_parse_u64(text, strlen(text), &v_), MESH_OK);                        \
        assert_true(v_ == (want));                                                                 \
    } while (0)
#define U64_BAD(text)                                                                              \
    do {                                                                                           \
        uint64_t v_ = 77;                                                                          \
        assert_int_equal(mesh_parse_u64(text, strlen(text), &v_), MESH_PARSE);                     \
        assert_int_equal(v_, 77);                                                                  \
    } while (0)
#define F64_OK(text, want)                                                                         \
    do {                                                                                           \
        double v_ = 0;                                                                             \
        assert_int_equal(mesh_parse_f64(text, strlen(text), &v_), MESH_OK);                        \
        assert_true(v_ == (want));                                                                 \
    } while (0)
#define F64_BAD(text)                                                                              \
    do {                                                                                           \
        double v_ = 77;                                                                            \
        assert_int_equal(mesh_parse_f64(text, strlen(text), &v_), MESH_PARSE);                     \
        assert_true(v_ == 77);                                                                     \
    } while (0)

static void test_parse_ints(void **state)
{
    (void)state;
    I64_OK("0", 0);
    I64_OK("-0", 0);
    I64_OK("+7", 7);
    I64_OK("42", 42);
    I64_OK("-42", -42);
    I64_OK("007", 7);
    I64_OK("9223372036854775807", INT64_MAX);
    I64_OK("-9223372036854775808", INT64_MIN);
    I64_BAD("9223372036854775808");
    I64_BAD("-9223372036854775809");
    I64_BAD("99999999999999999999");
    I64_BAD("184467440737095516160");
    I64_BAD("");
    I64_BAD("-");
    I64_BAD("+");
    I64_BAD("+-1");
    I64_BAD("--1");
    I64_BAD(" 1");
    I64_BAD("1 ");
    I64_BAD("1e5");
    I64_BAD("1.0");
    I64_BAD("0x10");
    I64_BAD("1_000");
    I64_BAD("nan");

    U64_OK("0", 0);
    U64_OK("18446744073709551615", UINT64_MAX);
    U64_OK("00000000000000000001", 1); /* 20 digits with leading zeros */
    U64_BAD("18446744073709551616");
    U64_BAD("18446744073709551620");
    U64_BAD("99999999999999999999");
    U64_BAD("000000000000000000001"); /* 21 characters */
    U64_BAD("-1");
    U64_BAD("+1");
    U64_BAD("");
    U64_BAD(" 1");
    U64_BAD("1e5");

    /* counted input: the digits after n are not read */
    int64_t v;
    assert_int_equal(mesh_parse_i64("12345", 2, &v), MESH_OK);
    assert_int_equal(v, 12);
    assert_int_equal(mesh_parse_i64("12a", 2, &v), MESH_OK);
    assert_int_equal(v, 12);
}

static void test_parse_floats(void **state)
{
    (void)state;
    F64_OK("0", 0.0);
    F64_OK("1", 1.0);
    F64_OK("-1.5", -1.5);
    F64_OK("+2.25", 2.25);
    F64_OK("1e5", 100000.0);
    F64_OK("1E-3", 0.001);
    F64_OK("2.5e+2", 250.0);
    F64_OK(".5", 0.5);
    F64_OK("5.", 5.0);
    F64_OK("1.7976931348623157e308", 1.7976931348623157e308);
    F64_OK("1e-400", 0.0); /* underflow to zero is a value */
    F64_BAD("1e400");      /* overflow is not */
    F64_BAD("-1e400");
    F64_BAD("nan");
    F64_BAD("NaN");
    F64_BAD("inf");
    F64_BAD("-inf");
    F64_BAD("Infinity");
    F64_BAD("0x1p3");
    F64_BAD(" 1");
    F64_BAD("1 ");
    F64_BAD("");
    F64_BAD(".");
    F64_BAD("-");
    F64_BAD("e5");
    F64_BAD("1e");
    F64_BAD("1.2.3");
    F64_BAD("1,5");
    F64_BAD("--1");
    F64_BAD("1e5e5");
    /* counted */
    double d;
    assert_int_equal(mesh_parse_f64("2.5xyz", 3, &d), MESH_OK);
    assert_true(d == 2.5);
}

static void test_parse_bool(void **state)
{
    (void)state;
    const char *yes[] = {"true", "TRUE", "True", "yes", "YES", "on", "On", "1"};
    const char *no[] = {"false", "FALSE", "no", "No", "off", "OFF", "0"};
    const char *bad[] = {"", "2", "tru", "truee", "y", "n", " true", "true ", "-1", "01"};
    for (size_t i = 0; i < MESH_ARRAY_LEN(yes); i++) {
        bool b = false;
        assert_int_equal(mesh_parse_bool(yes[i], strlen(yes[i]), &b), MESH_OK);
        assert_true(b);
    }
    for (size_t i = 0; i < MESH_ARRAY_LEN(no); i++) {
        bool b = true;
        assert_int_equal(mesh_parse_bool(no[i], strlen(no[i]), &b), MESH_OK);
        assert_false(b);
    }
    for (size_t i = 0; i < MESH_ARRAY_LEN(bad); i++) {
        bool b = true;
        assert_int_equal(mesh_parse_bool(bad[i], strlen(bad[i]), &b), MESH_PARSE);
        assert_true(b);
    }
    bool b;
    assert_int_equal(mesh_parse_bool("offset", 3, &b), MESH_OK);
    assert_false(b);
}

/* ---- names, hex, strings ------------------------------------------------------------------- */

static void test_names(void **state)
{
    (void)state;
    char n63[64], n64[65];
    memset(n63, 'a', 63);
    n63[63] = '\0';
    memset(n64, 'a', 64);
    n64[64] = '\0';

    assert_true(mesh_name_domain_ok("factory-a"));
    assert_true(mesh_name_domain_ok("a"));
    assert_true(mesh_name_domain_ok("home_42"));
    assert_true(mesh_name_domain_ok("icu-3"));
    assert_true(mesh_name_domain_ok(n63));
    assert_false(mesh_name_domain_ok(n64));
    assert_false(mesh_name_domain_ok(""));
    assert_false(mesh_name_domain_ok(NULL));
    assert_false(mesh_name_domain_ok("Factory"));
    assert_false(mesh_name_domain_ok("1abc"));
    assert_false(mesh_name_domain_ok("-abc"));
    assert_false(mesh_name_domain_ok("_abc"));
    assert_false(mesh_name_domain_ok("a.b"));
    assert_false(mesh_name_domain_ok("a b"));
    assert_false(mesh_name_domain_ok("a/b"));
    assert_false(mesh_name_domain_ok("caf\xC3\xA9"));

    assert_true(mesh_name_product_ok("readings"));
    assert_true(mesh_name_product_ok("a_b_c"));
    assert_true(mesh_name_product_ok("v2"));
    assert_true(mesh_name_product_ok(n63));
    assert_false(mesh_name_product_ok(n64));
    assert_false(mesh_name_product_ok("a__b"));
    assert_false(mesh_name_product_ok("ab__"));
    assert_false(mesh_name_product_ok("a-b"));
    assert_false(mesh_name_product_ok("A"));
    assert_false(mesh_name_product_ok("_a"));
    assert_false(mesh_name_product_ok("9a"));
    assert_false(mesh_name_product_ok(""));
    assert_false(mesh_name_product_ok(NULL));
    assert_false(mesh_name_product_ok("a\"b"));

    assert_true(mesh_name_column_ok("temp"));
    assert_true(mesh_name_column_ok("Temp_C"));
    assert_true(mesh_name_column_ok("_hidden"));
    assert_true(mesh_name_column_ok("a__b"));
    assert_true(mesh_name_column_ok("X9"));
    assert_true(mesh_name_column_ok(n63));
    assert_false(mesh_name_column_ok(n64));
    assert_false(mesh_name_column_ok("9x"));
    assert_false(mesh_name_column_ok("a-b"));
    assert_false(mesh_name_column_ok("a b"));
    assert_false(mesh_name_column_ok("a\"b"));
    assert_false(mesh_name_column_ok(""));
    assert_false(mesh_name_column_ok(NULL));
}

static void test_hex(void **state)
{
    (void)state;
    const uint8_t bytes[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char out[2 * sizeof bytes + 1];
    mesh_hex(bytes, sizeof bytes, out);
    assert_string_equal(out, "00017f80abff");
    uint8_t back[sizeof bytes];
    assert_true(mesh_unhex(out, back, sizeof back));
    assert_memory_equal(back, bytes, sizeof bytes);
    assert_true(mesh_unhex("00017F80ABFF", back, sizeof back)); /* upper case */
    assert_memory_equal(back, bytes, sizeof bytes);
    assert_false(mesh_unhex("00017f80abf", back, sizeof back));    /* odd */
    assert_false(mesh_unhex("00017f80abff00", back, sizeof back)); /* too long */
    assert_false(mesh_unhex("00017f80abfg", back, sizeof back));
    assert_false(mesh_unhex("00017f80ab f", back, sizeof back));
    char empty[1];
    mesh_hex(bytes, 0, empty);
    assert_string_equal(empty, "");
    assert_true(mesh_unhex("", back, 0));
}

static void test_strings(void **state)
{
    (void)state;
    assert_null(mesh_strdup(NULL));
    char *s = mesh_strdup("abc");
    assert_string_equal(s, "abc");
    free(s);
    s = mesh_strndup("abcdef", 3);
    assert_string_equal(s, "abc");
    free(s);
    s = mesh_strndup("a\0b", 3);
    assert_int_equal(s[3], '\0');
    assert_memory_equal(s, "a\0b", 3);
    free(s);
    assert_true(mesh_streqi("HeLLo", 5, "hello"));
    assert_true(mesh_streqi("hello world", 5, "HELLO"));
    assert_false(mesh_streqi("hell", 4, "hello"));
    assert_false(mesh_streqi("hello", 5, "hell"));
    assert_true(mesh_streqi("", 0, ""));
    assert_false(mesh_streqi("[", 1, "{")); /* not a blind |0x20 */
    assert_false(mesh_streqi("@", 1, "`"));
}

/* ---- CRC-32C and randomness ---------------------------------------------------------------- */

static void test_crc32c(void **state)
{
    (void)state;
    /* the check value of CRC-32C (RFC 3720 / iSCSI) */
    assert_int_equal(mesh_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(mesh_crc32c(0, "", 0), 0);
    /* RFC 3720 B.4 test vectors */
    uint8_t zeros[32], ones[32], inc[32], dec[32];
    memset(zeros, 0, sizeof zeros);
    memset(ones, 0xff, sizeof ones);
    for (int i = 0; i < 32; i++) {
        inc[i] = (uint8_t)i;
        dec[i] = (uint8_t)(31 - i);
    }
    assert_int_equal(mesh_crc32c(0, zeros, 32), 0x8A9136AAu);
    assert_int_equal(mesh_crc32c(0, ones, 32), 0x62A8AB43u);
    assert_int_equal(mesh_crc32c(0, inc, 32), 0x46DD794Eu);
    assert_int_equal(mesh_crc32c(0, dec, 32), 0x113FDB5Cu);
    /* continuing a CRC over pieces equals the CRC of the whole, at every split and at every
     * alignment of the 8-byte fast path */
    uint8_t data[100];
    for (int i = 0; i < 100; i++)
        data[i] = (uint8_t)(i * 37 + 11);
    uint32_t whole = mesh_crc32c(0, data, sizeof data);
    for (size_t cut = 0; cut <= sizeof data; cut++) {
        uint32_t c = mesh_crc32c(0, data, cut);
        c = mesh_crc32c(c, data + cut, sizeof data - cut);
        assert_int_equal(c, whole);
    }
    for (size_t off = 0; off < 8; off++) {
        uint8_t copy[120];
        memcpy(copy + off, data, sizeof data);
        assert_int_equal(mesh_crc32c(0, copy + off, sizeof data), whole);
    }
    /* one flipped bit changes it */
    data[50] ^= 1;
    assert_int_not_equal(mesh_crc32c(0, data, sizeof data), whole);
    /* the CPU's instruction (where used) and the table version agree with a bit-at-a-time
     * reference, at every length up to 300 and every alignment */
    uint8_t big[320];
    uint32_t seed = 12345;
    for (size_t i = 0; i < sizeof big; i++) {
        seed = seed * 1103515245u + 12345u;
        big[i] = (uint8_t)(seed >> 16);
    }
    for (size_t off = 0; off < 8; off++) {
        for (size_t len = 0; len + off <= 300; len++) {
            uint32_t ref = ~0x5A5A5A5Au;
            for (size_t i = 0; i < len; i++) {
                ref ^= big[off + i];
                for (int k = 0; k < 8; k++)
                    ref = (ref & 1) ? (ref >> 1) ^ 0x82F63B78u : ref >> 1;
            }
            ref = ~ref;
            assert_int_equal(mesh_crc32c(0x5A5A5A5Au, big + off, len), ref);
            assert_int_equal(mesh_crc32c_portable(0x5A5A5A5Au, big + off, len), ref);
        }
    }
}

static void test_random(void **state)
{
    (void)state;
    uint8_t a[64], b[64];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    assert_int_equal(mesh_random(a, sizeof a), MESH_OK);
    assert_int_equal(mesh_random(b, sizeof b), MESH_OK);
    assert_memory_not_equal(a, b, sizeof a);
    assert_int_equal(mesh_random(a, 0), MESH_OK);
    /* a large request is filled completely */
    size_t n = 1 << 20;
    uint8_t *big = calloc(1, n);
    assert_non_null(big);
    assert_int_equal(mesh_random(big, n), MESH_OK);
    size_t zeros = 0;
    for (size_t i = n - 4096; i < n; i++)
        zeros += big[i] == 0;
    assert_true(zeros < 100); /* about 16 expected */
    free(big);
}

static void test_clocks(void **state)
{
    (void)state;
    int64_t a = mesh_mono_ns(), b = mesh_mono_ns();
    assert_true(b >= a);
    int64_t now = mesh_now_ns();
    assert_true(now > tp("2024-01-01"));
    assert_true(now < tp("2200-01-01"));
}

/* ---- files --------------------------------------------------------------------------------- */

static void test_read_file(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/f.txt", tmpdir);
    write_file(path, "hello\nworld", 11);
    char *text = NULL;
    size_t n = 0;
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(mesh_read_file(path, 1 << 20, &text, &n, &err), MESH_OK);
    assert_int_equal(n, 11);
    assert_string_equal(text, "hello\nworld");
    free(text);
    /* out_len may be NULL */
    assert_int_equal(mesh_read_file(path, 100, &text, NULL, &err), MESH_OK);
    assert_string_equal(text, "hello\nworld");
    free(text);

    /* limits: at most max bytes; exactly max is fine */
    assert_int_equal(mesh_read_file(path, 11, &text, &n, &err), MESH_OK);
    assert_int_equal(n, 11);
    free(text);
    text = NULL;
    assert_int_equal(mesh_read_file(path, 10, &text, &n, &err), MESH_TOO_LARGE);
    assert_null(text);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(mesh_read_file(path, 0, &text, &n, &err), MESH_TOO_LARGE);

    /* an empty file */
    snprintf(path, sizeof path, "%s/empty", tmpdir);
    write_file(path, "", 0);
    assert_int_equal(mesh_read_file(path, 10, &text, &n, &err), MESH_OK);
    assert_int_equal(n, 0);
    assert_string_equal(text, "");
    free(text);
    assert_int_equal(mesh_read_file(path, 0, &text, &n, &err), MESH_OK);
    assert_int_equal(n, 0);
    free(text);

    /* binary content is kept, NUL bytes included */
    snprintf(path, sizeof path, "%s/bin", tmpdir);
    write_file(path, "a\0b", 3);
    assert_int_equal(mesh_read_file(path, 3, &text, &n, &err), MESH_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(text, "a\0b", 4);
    free(text);

    /* a larger file, exactly at the limit and one byte past it */
    size_t big = 300000;
    char *data = malloc(big);
    assert_non_null(data);
    for (size_t i = 0; i < big; i++)
        data[i] = (char)('a' + i % 26);
    snprintf(path, sizeof path, "%s/big", tmpdir);
    write_file(path, data, big);
    assert_int_equal(mesh_read_file(path, big, &text, &n, &err), MESH_OK);
    assert_int_equal(n, big);
    assert_memory_equal(text, data, big);
    assert_int_equal(text[big], '\0');
    free(text);
    assert_int_equal(mesh_read_file(path, big - 1, &text, &n, &err), MESH_TOO_LARGE);
    free(data);

    /* a file whose size stat does not tell (procfs): read to the end, still limited */
    assert_int_equal(mesh_read_file("/proc/self/status", 1 << 20, &text, &n, &err), MESH_OK);
    assert_true(n > 0);
    assert_int_equal(strlen(text), n);
    free(text);
    assert_int_equal(mesh_read_file("/proc/self/status", 8, &text, &n, &err), MESH_TOO_LARGE);

    /* missing file and a directory */
    snprintf(path, sizeof path, "%s/nope", tmpdir);
    mesh_err_clear(&err);
    assert_int_equal(mesh_read_file(path, 10, &text, &n, &err), MESH_NOT_FOUND);
    assert_int_equal(err.code, MESH_NOT_FOUND);
    assert_non_null(strstr(err.msg, "nope"));
    assert_int_equal(mesh_read_file(path, 10, &text, &n, NULL), MESH_NOT_FOUND);
    assert_int_not_equal(mesh_read_file(tmpdir, 1 << 20, &text, &n, &err), MESH_OK);
}

static void test_mkdirs(void **state)
{
    (void)state;
    char path[512];
    struct stat st;
    mesh_err_t err;
    snprintf(path, sizeof path, "%s/a/b/c", tmpdir);
    assert_int_equal(mesh_mkdirs(path, 0700, &err), MESH_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    /* existing directories are fine */
    assert_int_equal(mesh_mkdirs(path, 0700, &err), MESH_OK);
    snprintf(path, sizeof path, "%s/a", tmpdir);
    assert_int_equal(mesh_mkdirs(path, 0700, &err), MESH_OK);
    /* a trailing slash and a doubled slash */
    snprintf(path, sizeof path, "%s/x//y/", tmpdir);
    assert_int_equal(mesh_mkdirs(path, 0755, &err), MESH_OK);
    snprintf(path, sizeof path, "%s/x/y", tmpdir);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    /* a relative path */
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(tmpdir), 0);
    assert_int_equal(mesh_mkdirs("rel/one", 0700, &err), MESH_OK);
    assert_int_equal(stat("rel/one", &st), 0);
    assert_int_equal(chdir(cwd), 0);
    /* a file in the way: an error, naming the path */
    snprintf(path, sizeof path, "%s/file", tmpdir);
    write_file(path, "x", 1);
    snprintf(path, sizeof path, "%s/file/sub", tmpdir);
    mesh_err_clear(&err);
    assert_int_equal(mesh_mkdirs(path, 0700, &err), MESH_IO);
    assert_non_null(strstr(err.msg, "file"));
    /* the path itself is a file: not a directory, so not fine */
    snprintf(path, sizeof path, "%s/file", tmpdir);
    assert_int_not_equal(mesh_mkdirs(path, 0700, &err), MESH_OK);
    /* empty and over-long paths */
    assert_int_equal(mesh_mkdirs("", 0700, &err), MESH_INVALID);
    char *long_path = malloc(5000);
    assert_non_null(long_path);
    memset(long_path, 'a', 4999);
    long_path[4999] = '\0';
    assert_int_equal(mesh_mkdirs(long_path, 0700, &err), MESH_INVALID);
    free(long_path);
    /* fsync of a directory */
    assert_int_equal(mesh_fsync_dir(tmpdir), MESH_OK);
    snprintf(path, sizeof path, "%s/none", tmpdir);
    assert_int_equal(mesh_fsync_dir(path), MESH_IO);
}

static void test_write_all(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(mesh_write_all(fds[1], "abc", 3), MESH_OK);
    assert_int_equal(mesh_write_all(fds[1], "", 0), MESH_OK);
    char buf[8] = {0};
    assert_int_equal(read(fds[0], buf, sizeof buf), 3);
    assert_string_equal(buf, "abc");
    close(fds[0]);
    close(fds[1]);
    assert_int_equal(mesh_write_all(-1, "x", 1), MESH_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_f64_matches_strtod),
        cmocka_unit_test(test_format_double),
        cmocka_unit_test(test_time_forms),
        cmocka_unit_test(test_time_offsets),
        cmocka_unit_test(test_time_fractions),
        cmocka_unit_test(test_time_calendar),
        cmocka_unit_test(test_time_range),
        cmocka_unit_test(test_time_malformed),
        cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_time_round_trip),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_parse_ints),
        cmocka_unit_test(test_parse_floats),
        cmocka_unit_test(test_parse_bool),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_read_file),
        cmocka_unit_test(test_mkdirs),
        cmocka_unit_test(test_write_all),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
