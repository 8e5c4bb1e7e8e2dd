/*
 * test_codec.c - column chunks: exact round trips for every kind, with NULLs, compression of
 * regular series, summaries, and refusal of damaged input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "store/codec.h"

static uint64_t rng = 88172645463325252ULL;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Rewrites a chunk in version 1 of the format: headers without the last row's values. */
static void to_v1(const uint8_t *p, size_t n, mesh_buf_t *out)
{
    mesh_buf_init(out, MESH_BUF_UNLIMITED);
    mesh_cursor_t c;
    mesh_cursor_init(&c, p, n);
    assert_int_equal(mesh_cursor_u8(&c), 2);
    mesh_buf_addc(out, 1);
    uint64_t nrows = mesh_cursor_uvarint(&c), ncols = mesh_cursor_uvarint(&c);
    mesh_buf_add_uvarint(out, nrows);
    mesh_buf_add_uvarint(out, ncols);
    for (uint64_t k = 0; k < ncols; k++) {
        uint64_t nl = mesh_cursor_uvarint(&c);
        mesh_buf_add_uvarint(out, nl);
        mesh_buf_add(out, mesh_cursor_bytes(&c, nl), nl);
        uint8_t kind = mesh_cursor_u8(&c), flags = mesh_cursor_u8(&c);
        mesh_buf_addc(out, (char)kind);
        mesh_buf_addc(out, (char)(flags & 0x3));
        if (flags & 0x2) /* summary: count, min, max, sum */
            mesh_buf_add_uvarint(out, mesh_cursor_uvarint(&c));
        if (flags & 0x2)
            mesh_buf_add(out, mesh_cursor_bytes(&c, 24), 24);
        if ((flags & 0x4) && !(flags & 0x8)) { /* the last value: dropped */
            if (kind == MESH_COL_REAL)
                mesh_cursor_bytes(&c, 8);
            else if (kind == MESH_COL_TEXT)
                mesh_cursor_bytes(&c, mesh_cursor_uvarint(&c));
            else
                mesh_cursor_uvarint(&c);
        }
        uint64_t dl = mesh_cursor_uvarint(&c);
        mesh_buf_add_uvarint(out, dl);
        mesh_buf_add(out, mesh_cursor_bytes(&c, dl), dl);
    }
    assert_false(c.bad);
    assert_int_equal(c.n, 0);
}

static void roundtrip(size_t n, int with_nulls, int random_values)
{
    int64_t *t = malloc(n * sizeof *t), *iv = malloc(n * sizeof *iv);
    double *dv = malloc(n * sizeof *dv);
    const char **sv = malloc(n * sizeof *sv);
    uint32_t *sl = malloc(n * sizeof *sl);
    uint8_t *nulls = calloc(n, 1);
    static const char *words[] = {"ok", "warn", "fail", "", "a longer value with spaces"};
    for (size_t i = 0; i < n; i++) {
        t[i] = 1700000000000000000LL + (int64_t)i * 10000000000LL +
               (random_values ? (int64_t)(next() % 1000) : 0);
        iv[i] = random_values ? (int64_t)next() : (int64_t)(i / 7);
        dv[i] = random_values ? (double)(int64_t)next() / 7.0 : 20.0 + (double)(i % 10) / 10.0;
        sv[i] = words[random_values ? next() % 5 : i % 2];
        sl[i] = (uint32_t)strlen(sv[i]);
        nulls[i] = with_nulls && (i % 3 == 1);
    }
    dv[0] = -0.0;
    if (n > 2) {
        dv[1] = HUGE_VAL;
        dv[2] = 1e-310; /* subnormal */
    }
    mesh_colvec_t cols[] = {
        {.name = "ts", .kind = MESH_COL_TIME, .i = t},
        {.name = "count", .kind = MESH_COL_INT, .i = iv, .nulls = with_nulls ? nulls : NULL},
        {.name = "temp", .kind = MESH_COL_REAL, .d = dv, .nulls = with_nulls ? nulls : NULL},
        {.name = "status",
         .kind = MESH_COL_TEXT,
         .s = sv,
         .slen = sl,
         .nulls = with_nulls ? nulls : NULL},
    };
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    assert_int_equal(mesh_chunk_encode(cols, 4, n, &b), MESH_OK);
    mesh_chunk_t c;
    mesh_err_t err;
    assert_int_equal(mesh_chunk_decode((const uint8_t *)b.data, b.len, &c, &err), MESH_OK);
    assert_int_equal(c.nrows, n);
    assert_int_equal(c.ncols, 4);
    int cts = mesh_chunk_col(&c, "ts"), ci = mesh_chunk_col(&c, "count"),
        cd = mesh_chunk_col(&c, "temp"), cs = mesh_chunk_col(&c, "status");
    for (size_t i = 0; i < n; i++) {
        assert_true(c.cols[cts].i[i] == t[i]);
        int isnull = with_nulls && nulls[i];
        assert_int_equal(c.cols[ci].nulls ? c.cols[ci].nulls[i] : 0, isnull);
        if (isnull)
            continue;
        assert_true(c.cols[ci].i[i] == iv[i]);
        assert_memory_equal(&c.cols[cd].d[i], &dv[i], sizeof(double));
        uint32_t k = c.cols[cs].sidx[i];
        assert_int_equal(c.cols[cs].dlen[k], sl[i]);
        assert_memory_equal(c.cols[cs].dict[k], sv[i], sl[i]);
    }
    /* the last row, read from the headers alone, is the decoded last row */
    mesh_chunk_t l;
    assert_int_equal(mesh_chunk_decode_last((const uint8_t *)b.data, b.len, NULL, NULL, &l, &err),
                     MESH_OK);
    assert_int_equal(l.nrows, 1);
    assert_int_equal(l.ncols, 4);
    size_t z = n - 1;
    assert_true(l.cols[cts].i[0] == t[z]);
    int lastnull = with_nulls && nulls[z];
    assert_int_equal(l.cols[ci].nulls ? l.cols[ci].nulls[0] : 0, lastnull);
    assert_int_equal(l.cols[cd].nulls ? l.cols[cd].nulls[0] : 0, lastnull);
    assert_int_equal(l.cols[cs].nulls ? l.cols[cs].nulls[0] : 0, lastnull);
    if (!lastnull) {
        assert_true(l.cols[ci].i[0] == iv[z]);
        assert_memory_equal(&l.cols[cd].d[0], &dv[z], sizeof(double));
        assert_int_equal(l.cols[cs].dlen[l.cols[cs].sidx[0]], sl[z]);
        assert_memory_equal(l.cols[cs].dict[l.cols[cs].sidx[0]], sv[z], sl[z]);
    }
    mesh_chunk_free(&l);
    /* a version 1 chunk (no last row in its headers) still decodes; its last row needs that */
    mesh_buf_t v1;
    to_v1((const uint8_t *)b.data, b.len, &v1);
    assert_true(v1.len < b.len);
    mesh_chunk_t c1;
    assert_int_equal(mesh_chunk_decode((const uint8_t *)v1.data, v1.len, &c1, &err), MESH_OK);
    assert_int_equal(c1.nrows, n);
    assert_true(c1.cols[cts].i[z] == t[z]);
    if (!lastnull)
        assert_memory_equal(&c1.cols[cd].d[z], &dv[z], sizeof(double));
    mesh_chunk_free(&c1);
    assert_int_equal(mesh_chunk_decode_last((const uint8_t *)v1.data, v1.len, NULL, NULL, &l, &err),
                     MESH_NOT_FOUND);
    mesh_buf_free(&v1);
    /* every truncation is refused, never read past the end */
    for (size_t cut = 0; cut < b.len; cut += (b.len / 50) + 1) {
        mesh_chunk_t bad;
        assert_int_not_equal(mesh_chunk_decode((const uint8_t *)b.data, cut, &bad, &err), MESH_OK);
    }
    mesh_chunk_free(&c);
    mesh_buf_free(&b);
    free(t);
    free(iv);
    free(dv);
    free(sv);
    free(sl);
    free(nulls);
}

static void test_roundtrip_regular(void **state)
{
    (void)state;
    roundtrip(1, 0, 0);
    roundtrip(2, 0, 0);
    roundtrip(1000, 0, 0);
    roundtrip(MESH_CHUNK_MAX_ROWS, 0, 0);
}

static void test_roundtrip_random_and_nulls(void **state)
{
    (void)state;
    roundtrip(3, 1, 1);
    roundtrip(999, 1, 1);
    roundtrip(4096, 0, 1);
    roundtrip(4097, 1, 0);
}

static void test_regular_series_compress(void **state)
{
    (void)state;
    enum { N = 1000 };
    int64_t t[N];
    double d[N];
    const char *s[N];
    uint32_t sl[N];
    for (int i = 0; i < N; i++) {
        t[i] = 1700000000000000000LL + (int64_t)i * 10000000000LL;
        d[i] = 21.5;
        s[i] = "truck_17";
        sl[i] = 8;
    }
    mesh_colvec_t cols[] = {{.name = "time", .kind = MESH_COL_TIME, .i = t},
                            {.name = "v", .kind = MESH_COL_REAL, .d = d},
                            {.name = "name", .kind = MESH_COL_TEXT, .s = s, .slen = sl}};
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    assert_int_equal(mesh_chunk_encode(cols, 3, N, &b), MESH_OK);
    /* 1000 rows of three columns: a regular clock, a constant and one tag value */
    assert_true(b.len < 250);
    size_t nrows;
    mesh_colsum_t sum;
    assert_true(mesh_chunk_summary((const uint8_t *)b.data, b.len, "v", &nrows, &sum));
    assert_int_equal(nrows, N);
    assert_int_equal(sum.count, N);
    assert_true(sum.min == 21.5 && sum.max == 21.5 && sum.sum == 21500.0);
    assert_false(mesh_chunk_summary((const uint8_t *)b.data, b.len, "name", &nrows, &sum));
    assert_false(mesh_chunk_summary((const uint8_t *)b.data, b.len, "none", &nrows, &sum));
    mesh_buf_free(&b);
}

static void test_rejects_garbage(void **state)
{
    (void)state;
    mesh_chunk_t c;
    mesh_err_t err;
    uint8_t junk[256];
    for (int round = 0; round < 2000; round++) {
        size_t n = next() % sizeof junk;
        for (size_t i = 0; i < n; i++)
            junk[i] = (uint8_t)next();
        if (n)
            junk[0] = 1; /* the right version, to get past the first check */
        if (mesh_chunk_decode(junk, n, &c, &err) == MESH_OK)
            mesh_chunk_free(&c);
    }
    assert_int_equal(mesh_chunk_decode((const uint8_t *)"", 0, &c, &err), MESH_CORRUPT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_regular),
        cmocka_unit_test(test_roundtrip_random_and_nulls),
        cmocka_unit_test(test_regular_series_compress),
        cmocka_unit_test(test_rejects_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
