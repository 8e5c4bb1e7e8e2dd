/*
 * test_buf.c - the capped buffer (cap, growth, NUL termination, printf, steal), JSON string
 * and CSV field encoding, fixed-width and varint encoders and the bounded cursor.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"

int main(void);

/* The invariant every operation keeps: data NUL-terminated at len, len <= max, len < cap. */
static void check_inv(const mesh_buf_t *b)
{
    assert_true(b->len <= b->max);
    if (b->data == NULL) {
        assert_int_equal(b->len, 0);
        return;
    }
    assert_true(b->len < b->cap);
    assert_int_equal(b->data[b->len], '\0');
}

static void test_init_add_free(void **state)
{
    (void)state;
    mesh_buf_t b;
    mesh_buf_init(&b, 100);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    check_inv(&b);
    assert_int_equal(mesh_buf_add(&b, "abc", 3), MESH_OK);
    check_inv(&b);
    assert_string_equal(b.data, "abc");
    assert_int_equal(mesh_buf_adds(&b, "def"), MESH_OK);
    assert_int_equal(mesh_buf_addc(&b, 'g'), MESH_OK);
    assert_string_equal(b.data, "abcdefg");
    assert_int_equal(b.len, 7);
    /* an empty add allocates and terminates */
    mesh_buf_t e;
    mesh_buf_init(&e, 10);
    assert_int_equal(mesh_buf_add(&e, NULL, 0), MESH_OK);
    assert_non_null(e.data);
    assert_string_equal(e.data, "");
    check_inv(&e);
    mesh_buf_free(&e);
    /* reset keeps the allocation */
    char *before = b.data;
    mesh_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, before);
    assert_string_equal(b.data, "");
    check_inv(&b);
    mesh_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    mesh_buf_free(&b); /* twice is fine */
    mesh_buf_free(NULL);
    /* reset of a never-used buffer */
    mesh_buf_init(&b, 10);
    mesh_buf_reset(&b);
    check_inv(&b);
}

static void test_binary_content(void **state)
{
    (void)state;
    mesh_buf_t b;
    mesh_buf_init(&b, 64);
    const char bin[] = {'a', '\0', 'b', '\0'};
    assert_int_equal(mesh_buf_add(&b, bin, sizeof bin), MESH_OK);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, bin, 4);
    check_inv(&b);
    mesh_buf_free(&b);
}

static void test_cap_enforced(void **state)
{
    (void)state;
    mesh_buf_t b;
    mesh_buf_init(&b, 5);
    assert_int_equal(mesh_buf_add(&b, "12345", 5), MESH_OK);
    check_inv(&b);
    assert_int_equal(mesh_buf_addc(&b, 'x'), MESH_TOO_LARGE);
    assert_int_equal(mesh_buf_adds(&b, "y"), MESH_TOO_LARGE);
    assert_int_equal(mesh_buf_printf(&b, "%d", 7), MESH_TOO_LARGE);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "12345");
    check_inv(&b);
    /* a failed add leaves the content as it was */
    mesh_buf_reset(&b);
    assert_int_equal(mesh_buf_add(&b, "abc", 3), MESH_OK);
    assert_int_equal(mesh_buf_add(&b, "def", 3), MESH_TOO_LARGE);
    assert_string_equal(b.data, "abc");
    check_inv(&b);
    mesh_buf_free(&b);

    /* a zero cap takes nothing but an empty add */
    mesh_buf_init(&b, 0);
    assert_int_equal(mesh_buf_addc(&b, 'a'), MESH_TOO_LARGE);
    assert_int_equal(mesh_buf_add(&b, "", 0), MESH_OK);
    check_inv(&b);
    mesh_buf_free(&b);

    /* huge requests fail cleanly instead of overflowing the size arithmetic */
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    assert_int_equal(mesh_buf_addc(&b, 'a'), MESH_OK);
    assert_int_equal(mesh_buf_reserve(&b, (size_t)-1), MESH_TOO_LARGE);
    assert_int_equal(mesh_buf_reserve(&b, MESH_BUF_UNLIMITED), MESH_TOO_LARGE);
    assert_int_equal(b.len, 1);
    check_inv(&b);
    mesh_buf_free(&b);
}

static void test_growth(void **state)
{
    (void)state;
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(mesh_buf_addc(&b, (char)('a' + i % 26)), MESH_OK);
        check_inv(&b);
    }
    assert_int_equal(b.len, 10000);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(b.data[i], 'a' + i % 26);
    /* reserve then add does not reallocate */
    assert_int_equal(mesh_buf_reserve(&b, 100000), MESH_OK);
    char *p = b.data;
    char chunk[1000];
    memset(chunk, 'z', sizeof chunk);
    for (int i = 0; i < 100; i++)
        assert_int_equal(mesh_buf_add(&b, chunk, sizeof chunk), MESH_OK);
    assert_ptr_equal(b.data, p);
    assert_int_equal(b.len, 110000);
    check_inv(&b);
    mesh_buf_free(&b);
}

static void test_printf(void **state)
{
    (void)state;
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 20);
    assert_int_equal(mesh_buf_printf(&b, "%s=%d", "x", 5), MESH_OK);
    assert_string_equal(b.data, "x=5");
    /* output larger than the internal small buffer */
    char big[3000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(mesh_buf_printf(&b, "[%s]", big), MESH_OK);
    assert_int_equal(b.len, 3 + 2 + 2999);
    assert_int_equal(b.data[3], '[');
    assert_int_equal(b.data[b.len - 1], ']');
    assert_int_equal(b.data[4 + 2998], 'q');
    check_inv(&b);
    /* exactly 255 and 256 characters (the edge of the small buffer) */
    mesh_buf_reset(&b);
    assert_int_equal(mesh_buf_printf(&b, "%.*s", 255, big), MESH_OK);
    assert_int_equal(b.len, 255);
    check_inv(&b);
    mesh_buf_reset(&b);
    assert_int_equal(mesh_buf_printf(&b, "%.*s", 256, big), MESH_OK);
    assert_int_equal(b.len, 256);
    check_inv(&b);
    assert_int_equal(mesh_buf_printf(&b, "%s", ""), MESH_OK);
    assert_int_equal(b.len, 256);
    mesh_buf_free(&b);

    /* a large printf past the cap fails and leaves the buffer as it was */
    mesh_buf_init(&b, 1000);
    mesh_buf_adds(&b, "keep");
    assert_int_equal(mesh_buf_printf(&b, "%s", big), MESH_TOO_LARGE);
    assert_string_equal(b.data, "keep");
    check_inv(&b);
    mesh_buf_free(&b);
}

static void test_steal(void **state)
{
    (void)state;
    mesh_buf_t b;
    mesh_buf_init(&b, 100);
    mesh_buf_adds(&b, "hello");
    size_t n = 0;
    char *s = mesh_buf_steal(&b, &n);
    assert_string_equal(s, "hello");
    assert_int_equal(n, 5);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    free(s);
    /* the buffer is usable after a steal */
    mesh_buf_adds(&b, "again");
    assert_string_equal(b.data, "again");
    mesh_buf_free(&b);
    /* stealing an empty buffer gives an empty string */
    mesh_buf_init(&b, 100);
    s = mesh_buf_steal(&b, NULL);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static void json_is(const char *in, size_t n, const char *want)
{
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 16);
    assert_int_equal(mesh_buf_add_json_str(&b, in, n), MESH_OK);
    check_inv(&b);
    if (strcmp(b.data, want) != 0)
        print_message("json of %zu bytes: got %s want %s\n", n, b.data, want);
    assert_string_equal(b.data, want);
    mesh_buf_free(&b);
}

#define JSON_IS(lit, want) json_is(lit, sizeof(lit) - 1, want)

static void test_json_plain_and_escapes(void **state)
{
    (void)state;
    JSON_IS("", "\"\"");
    JSON_IS("abc", "\"abc\"");
    JSON_IS("a\"b", "\"a\\\"b\"");
    JSON_IS("a\\b", "\"a\\\\b\"");
    JSON_IS("/", "\"/\"");
    JSON_IS("\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\"");
    JSON_IS("\x01\x1f", "\"\\u0001\\u001f\"");
    JSON_IS("a\0b", "\"a\\u0000b\"");
    JSON_IS("\x7f", "\"\x7f\""); /* DEL needs no escape in JSON */
    /* every control character is escaped and nothing else below 0x80 is */
    for (int c = 0; c < 0x80; c++) {
        char in[1] = {(char)c};
        mesh_buf_t b;
        mesh_buf_init(&b, 64);
        assert_int_equal(mesh_buf_add_json_str(&b, in, 1), MESH_OK);
        if (c < 0x20 || c == '"' || c == '\\')
            assert_int_equal(b.data[1], '\\');
        else
            assert_int_equal(b.len, 3);
        mesh_buf_free(&b);
    }
}

static void test_json_utf8(void **state)
{
    (void)state;
    /* valid multi-byte sequences are kept as they are */
    JSON_IS("caf\xC3\xA9", "\"caf\xC3\xA9\"");           /* 2 bytes: e acute */
    JSON_IS("\xE2\x82\xAC", "\"\xE2\x82\xAC\"");         /* 3 bytes: euro */
    JSON_IS("\xF0\x9F\x98\x80", "\"\xF0\x9F\x98\x80\""); /* 4 bytes: emoji */
    JSON_IS("\xEF\xBF\xBF", "\"\xEF\xBF\xBF\"");         /* U+FFFF */
    JSON_IS("\xF4\x8F\xBF\xBF", "\"\xF4\x8F\xBF\xBF\""); /* U+10FFFF, the last */
    JSON_IS("\xED\x9F\xBF", "\"\xED\x9F\xBF\"");         /* U+D7FF, before surrogates */
    JSON_IS("a\xC3\xA9\"\xE2\x82\xAC", "\"a\xC3\xA9\\\"\xE2\x82\xAC\"");

#define FFFD "\xEF\xBF\xBD"
    /* invalid bytes are each replaced by U+FFFD */
    JSON_IS("\xFF", "\"" FFFD "\"");
    JSON_IS("a\x80z", "\"a" FFFD "z\"");                        /* lone continuation */
    JSON_IS("\xC0\xAF", "\"" FFFD FFFD "\"");                   /* overlong '/' */
    JSON_IS("\xC1\xBF", "\"" FFFD FFFD "\"");                   /* overlong */
    JSON_IS("\xE0\x80\xAF", "\"" FFFD FFFD FFFD "\"");          /* overlong 3 bytes */
    JSON_IS("\xF0\x80\x80\xAF", "\"" FFFD FFFD FFFD FFFD "\""); /* overlong 4 bytes */
    JSON_IS("\xED\xA0\x80", "\"" FFFD FFFD FFFD "\"");          /* surrogate U+D800 */
    JSON_IS("\xF4\x90\x80\x80", "\"" FFFD FFFD FFFD FFFD "\""); /* above U+10FFFF */
    JSON_IS("\xF5\x80\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"");
    JSON_IS("\xC3", "\"" FFFD "\""); /* truncated at the end */
    JSON_IS("\xE2\x82", "\"" FFFD FFFD "\"");
    JSON_IS("\xC3x", "\"" FFFD "x\""); /* bad continuation */
    JSON_IS("\xE2\x82\n", "\"" FFFD FFFD "\\n\"");
#undef FFFD
}

static void test_json_counted_not_terminated(void **state)
{
    (void)state;
    /* n bounds the input: bytes after it are not read */
    json_is("abcdef", 3, "\"abc\"");
    /* a multi-byte character cut by n is invalid */
    json_is("\xE2\x82\xAC", 2, "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");
}

static void test_json_cap(void **state)
{
    (void)state;
    /* the cap is enforced even when escapes grow the text */
    mesh_buf_t b;
    mesh_buf_init(&b, 10);
    mesh_status_t st = mesh_buf_add_json_str(&b, "\x01\x01\x01", 3);
    assert_int_equal(st, MESH_TOO_LARGE);
    assert_true(b.len <= 10);
    check_inv(&b);
    mesh_buf_free(&b);

    /* a cap that holds the quotes but not the first escape: still NUL-terminated (old
     * content after the reset must not show through) */
    mesh_buf_init(&b, 5);
    mesh_buf_adds(&b, "XXXX");
    mesh_buf_reset(&b);
    st = mesh_buf_add_json_str(&b, "\x01", 1);
    assert_int_equal(st, MESH_TOO_LARGE);
    check_inv(&b);
    assert_int_equal(strlen(b.data), b.len);
    mesh_buf_free(&b);

    /* the raw input alone over the cap */
    mesh_buf_init(&b, 4);
    assert_int_equal(mesh_buf_add_json_str(&b, "abcd", 4), MESH_TOO_LARGE);
    check_inv(&b);
    mesh_buf_free(&b);

    /* exactly at the cap */
    mesh_buf_init(&b, 6);
    assert_int_equal(mesh_buf_add_json_str(&b, "abcd", 4), MESH_OK);
    assert_string_equal(b.data, "\"abcd\"");
    check_inv(&b);
    mesh_buf_free(&b);
}

/* ---- CSV ----------------------------------------------------------------------------------- */

static void csv_is(const char *in, size_t n, const char *want)
{
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 16);
    assert_int_equal(mesh_buf_add_csv_field(&b, in, n), MESH_OK);
    check_inv(&b);
    assert_int_equal(b.len, strlen(want));
    assert_string_equal(b.data, want);
    mesh_buf_free(&b);
}

#define CSV_IS(lit, want) csv_is(lit, sizeof(lit) - 1, want)

static void test_csv_field(void **state)
{
    (void)state;
    CSV_IS("", "");
    CSV_IS("plain", "plain");
    CSV_IS("with space", "with space");
    CSV_IS(" lead", " lead");
    CSV_IS("a,b", "\"a,b\"");
    CSV_IS("say \"hi\"", "\"say \"\"hi\"\"\"");
    CSV_IS("\"", "\"\"\"\"");
    CSV_IS("line\nbreak", "\"line\nbreak\"");
    CSV_IS("cr\rhere", "\"cr\rhere\"");
    CSV_IS("crlf\r\n", "\"crlf\r\n\"");
    CSV_IS("caf\xC3\xA9", "caf\xC3\xA9");
    /* counted: the comma after n is not part of the field */
    csv_is("ab,c", 2, "ab");

    /* the cap holds for quoted fields */
    mesh_buf_t b;
    mesh_buf_init(&b, 4);
    assert_int_equal(mesh_buf_add_csv_field(&b, "a,b", 3), MESH_TOO_LARGE);
    check_inv(&b);
    mesh_buf_free(&b);
}

/* ---- binary encoders and the cursor --------------------------------------------------------- */

static void test_fixed_width_round_trip(void **state)
{
    (void)state;
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 16);
    uint32_t u32s[] = {0, 1, 0x7f, 0x80, 0xff, 0x100, 0x12345678u, 0xffffffffu};
    uint64_t u64s[] = {0, 1, 0xff, 0x1234567890abcdefULL, UINT64_MAX, (uint64_t)INT64_MAX + 1};
    for (size_t i = 0; i < sizeof u32s / sizeof u32s[0]; i++)
        assert_int_equal(mesh_buf_add_u32(&b, u32s[i]), MESH_OK);
    for (size_t i = 0; i < sizeof u64s / sizeof u64s[0]; i++)
        assert_int_equal(mesh_buf_add_u64(&b, u64s[i]), MESH_OK);
    assert_int_equal(b.len, 4 * 8 + 8 * 6);
    /* little-endian on the wire */
    assert_memory_equal(b.data + 6 * 4, "\x78\x56\x34\x12", 4);
    mesh_cursor_t c;
    mesh_cursor_init(&c, b.data, b.len);
    for (size_t i = 0; i < sizeof u32s / sizeof u32s[0]; i++)
        assert_int_equal(mesh_cursor_u32(&c), u32s[i]);
    for (size_t i = 0; i < sizeof u64s / sizeof u64s[0]; i++)
        assert_true(mesh_cursor_u64(&c) == u64s[i]);
    assert_int_equal(c.n, 0);
    assert_false(c.bad);
    mesh_buf_free(&b);
}

static void test_varint_round_trip(void **state)
{
    (void)state;
    uint64_t vals[] = {0,
                       1,
                       127,
                       128,
                       255,
                       300,
                       16383,
                       16384,
                       (1ULL << 21) - 1,
                       1ULL << 21,
                       (1ULL << 35) + 5,
                       (1ULL << 56) - 1,
                       1ULL << 56,
                       (1ULL << 63) - 1,
                       1ULL << 63,
                       UINT64_MAX};
    size_t want_len[] = {1, 1, 1, 2, 2, 2, 2, 3, 3, 4, 6, 8, 9, 9, 10, 10};
    mesh_buf_t all;
    mesh_buf_init(&all, 1 << 16);
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        mesh_buf_t b;
        mesh_buf_init(&b, 64);
        assert_int_equal(mesh_buf_add_uvarint(&b, vals[i]), MESH_OK);
        assert_int_equal(b.len, want_len[i]);
        mesh_cursor_t c;
        mesh_cursor_init(&c, b.data, b.len);
        assert_true(mesh_cursor_uvarint(&c) == vals[i]);
        assert_false(c.bad);
        assert_int_equal(c.n, 0);
        mesh_buf_free(&b);
        mesh_buf_add_uvarint(&all, vals[i]);
    }
    /* known encodings */
    mesh_buf_t b;
    mesh_buf_init(&b, 64);
    mesh_buf_add_uvarint(&b, 300);
    assert_memory_equal(b.data, "\xac\x02", 2);
    mesh_buf_free(&b);
    /* a sequence reads back in order */
    mesh_cursor_t c;
    mesh_cursor_init(&c, all.data, all.len);
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        assert_true(mesh_cursor_uvarint(&c) == vals[i]);
    assert_false(c.bad);
    assert_int_equal(c.n, 0);
    mesh_buf_free(&all);
}

static void test_cursor_short_reads(void **state)
{
    (void)state;
    const uint8_t three[] = {1, 2, 3};
    mesh_cursor_t c;

    mesh_cursor_init(&c, three, 3);
    assert_int_equal(mesh_cursor_u32(&c), 0);
    assert_true(c.bad);
    /* sticky: later reads fail even if they would fit */
    assert_int_equal(mesh_cursor_u8(&c), 0);
    assert_null(mesh_cursor_bytes(&c, 1));
    assert_int_equal(mesh_cursor_uvarint(&c), 0);
    assert_true(c.bad);

    mesh_cursor_init(&c, three, 3);
    assert_int_equal(mesh_cursor_u64(&c), 0);
    assert_true(c.bad);

    mesh_cursor_init(&c, three, 3);
    assert_int_equal(mesh_cursor_u8(&c), 1);
    const uint8_t *p = mesh_cursor_bytes(&c, 2);
    assert_non_null(p);
    assert_int_equal(p[0], 2);
    assert_int_equal(c.n, 0);
    assert_false(c.bad);
    assert_int_equal(mesh_cursor_u8(&c), 0);
    assert_true(c.bad);

    /* zero-length reads succeed at the end */
    mesh_cursor_init(&c, three, 3);
    assert_non_null(mesh_cursor_bytes(&c, 3));
    assert_non_null(mesh_cursor_bytes(&c, 0));
    assert_false(c.bad);
    assert_null(mesh_cursor_bytes(&c, (size_t)-1));
    assert_true(c.bad);

    /* an empty cursor */
    mesh_cursor_init(&c, NULL, 0);
    assert_int_equal(mesh_cursor_uvarint(&c), 0);
    assert_true(c.bad);

    /* a varint whose continuation bit runs off the end */
    const uint8_t cont[] = {0x80, 0x80};
    mesh_cursor_init(&c, cont, 2);
    assert_int_equal(mesh_cursor_uvarint(&c), 0);
    assert_true(c.bad);

    /* a varint longer than ten bytes */
    const uint8_t eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    mesh_cursor_init(&c, eleven, sizeof eleven);
    mesh_cursor_uvarint(&c);
    assert_true(c.bad);

    /* ten bytes, but more than 64 bits: refused instead of silently wrapped */
    const uint8_t max64[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    mesh_cursor_init(&c, max64, sizeof max64);
    assert_true(mesh_cursor_uvarint(&c) == UINT64_MAX);
    assert_false(c.bad);
    const uint8_t over[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    mesh_cursor_init(&c, over, sizeof over);
    assert_int_equal(mesh_cursor_uvarint(&c), 0);
    assert_true(c.bad);
    const uint8_t over2[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f};
    mesh_cursor_init(&c, over2, sizeof over2);
    assert_int_equal(mesh_cursor_uvarint(&c), 0);
    assert_true(c.bad);

    /* the cursor never reads past n: the byte after it would end the varint */
    const uint8_t cut[] = {0x81, 0x01};
    mesh_cursor_init(&c, cut, 1);
    assert_int_equal(mesh_cursor_uvarint(&c), 0);
    assert_true(c.bad);
}

/* mesh_buf_add_decimal writes what printf's %lld does: the ends, powers of ten and 100,000
 * pseudo-random values of every magnitude. */
static void test_decimal_as_printf(void **state)
{
    (void)state;
    int64_t fixed[] = {0,
                       1,
                       -1,
                       9,
                       10,
                       -10,
                       99,
                       100,
                       1767225600000000000LL,
                       INT64_MAX,
                       INT64_MIN,
                       INT64_MIN + 1,
                       1000000000000000000LL,
                       -999999999999999999LL};
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 100000 + (int)(sizeof fixed / sizeof fixed[0]); i++) {
        int64_t v;
        if (i < (int)(sizeof fixed / sizeof fixed[0])) {
            v = fixed[i];
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v = (int64_t)(x >> (x % 64)); /* every magnitude, both signs */
        }
        char want[32];
        snprintf(want, sizeof want, "%lld", (long long)v);
        mesh_buf_t b;
        mesh_buf_init(&b, 64);
        assert_int_equal(mesh_buf_adds(&b, "x"), MESH_OK);
        assert_int_equal(mesh_buf_add_decimal(&b, v), MESH_OK);
        assert_int_equal(b.len, 1 + strlen(want));
        assert_memory_equal(b.data + 1, want, strlen(want));
        mesh_buf_free(&b);
    }
    /* and the cap holds */
    mesh_buf_t b;
    mesh_buf_init(&b, 4);
    assert_int_equal(mesh_buf_add_decimal(&b, 12345), MESH_TOO_LARGE);
    mesh_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decimal_as_printf),
        cmocka_unit_test(test_init_add_free),
        cmocka_unit_test(test_binary_content),
        cmocka_unit_test(test_cap_enforced),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_steal),
        cmocka_unit_test(test_json_plain_and_escapes),
        cmocka_unit_test(test_json_utf8),
        cmocka_unit_test(test_json_counted_not_terminated),
        cmocka_unit_test(test_json_cap),
        cmocka_unit_test(test_csv_field),
        cmocka_unit_test(test_fixed_width_round_trip),
        cmocka_unit_test(test_varint_round_trip),
        cmocka_unit_test(test_cursor_short_reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
