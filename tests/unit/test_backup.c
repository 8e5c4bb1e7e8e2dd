/*
 * test_backup.c - the backup archive format (backup/archive.c): round trips encrypted and in
 * clear across many chunks, the manifest read alone, and refusals: every truncation, bit
 * flips anywhere, swapped and repeated chunks, a wrong KEK, an edited id, an entry that does
 * not match the manifest.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backup/archive.h"
#include "core/util.h"
#include "crypt/keys.h"

int main(void);

#define SIZE_A 200000
#define SIZE_B 70000

static char path[64];
static uint8_t *data_a, *data_b;

static int setup(void **state)
{
    (void)state;
    snprintf(path, sizeof path, "/tmp/meshd-test-backup-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    close(fd);
    unlink(path);
    data_a = malloc(SIZE_A);
    data_b = malloc(SIZE_B);
    if (data_a == NULL || data_b == NULL)
        return -1;
    /* compressible text, then random bytes (incompressible) */
    for (size_t i = 0; i < SIZE_A; i++)
        data_a[i] = (uint8_t)("meshd backup page "[i % 18] + (i / 4096) % 3);
    mesh_random(data_b, SIZE_B);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    free(data_a);
    free(data_b);
    return 0;
}

static mesh_kek_t *kek_of(uint8_t b)
{
    uint8_t k[MESH_KEY_BYTES];
    memset(k, b, sizeof k);
    mesh_kek_t *kek = NULL;
    mesh_err_t err;
    assert_int_equal(mesh_kek_from_bytes(k, "test", &kek, &err), MESH_OK);
    return kek;
}

static void write_archive(const mesh_kek_t *kek, const char *id)
{
    unlink(path);
    mesh_archive_writer_t *w;
    mesh_err_t err;
    assert_int_equal(mesh_archive_create(path, id, 1234, kek, 4096, &w, &err), MESH_OK);
    assert_int_equal(mesh_archive_entry_begin(w, MESH_ARCHIVE_CATALOG, "catalog.db", SIZE_A, &err),
                     MESH_OK);
    for (size_t off = 0; off < SIZE_A; off += 7000) {
        size_t n = SIZE_A - off < 7000 ? SIZE_A - off : 7000;
        assert_int_equal(mesh_archive_entry_write(w, data_a + off, n, &err), MESH_OK);
    }
    char sha[65];
    assert_int_equal(mesh_archive_entry_end(w, sha, &err), MESH_OK);
    assert_int_equal(strlen(sha), 64);
    assert_int_equal(
        mesh_archive_entry_begin(w, MESH_ARCHIVE_DOMAIN, "domains/d/data.db", SIZE_B, &err),
        MESH_OK);
    assert_int_equal(mesh_archive_entry_write(w, data_b, SIZE_B, &err), MESH_OK);
    assert_int_equal(mesh_archive_entry_end(w, sha, &err), MESH_OK);
    const char *m = "{\"note\":\"hello\"}";
    assert_int_equal(mesh_archive_finish(w, m, strlen(m), &err), MESH_OK);
}

typedef struct got {
    size_t n[2];
    bool ended[2];
    bool same;
} got_t;

static mesh_status_t collect(void *arg, char kind, const char *name, uint64_t size,
                             const uint8_t *p, size_t n)
{
    got_t *g = arg;
    int i = kind == MESH_ARCHIVE_CATALOG ? 0 : 1;
    const uint8_t *want = i == 0 ? data_a : data_b;
    assert_int_equal(size, i == 0 ? SIZE_A : SIZE_B);
    assert_string_equal(name, i == 0 ? "catalog.db" : "domains/d/data.db");
    if (p == NULL) {
        g->ended[i] = true;
        return MESH_OK;
    }
    if (memcmp(want + g->n[i], p, n) != 0)
        g->same = false;
    g->n[i] += n;
    return MESH_OK;
}

/* Reads path fully with kek: the status, the error text in err. */
static mesh_status_t read_all(const mesh_kek_t *kek, got_t *g, mesh_err_t *err)
{
    mesh_archive_t *a;
    mesh_status_t st = mesh_archive_open(path, &a, err);
    if (st != MESH_OK)
        return st;
    memset(g, 0, sizeof *g);
    g->same = true;
    char *m = NULL;
    st = mesh_archive_unlock(a, kek, err);
    if (st == MESH_OK)
        st = mesh_archive_read(a, collect, g, NULL, NULL, &m, err);
    free(m);
    mesh_archive_close(a);
    return st;
}

static uint8_t *load(size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(*n);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, *n, f), *n);
    fclose(f);
    return p;
}

static void store(const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void test_round_trip(void **state)
{
    (void)state;
    mesh_kek_t *kek = kek_of(0x42);
    write_archive(kek, "20260101T000000Z-abcdef");
    mesh_archive_t *a;
    mesh_err_t err;
    assert_int_equal(mesh_archive_open(path, &a, &err), MESH_OK);
    const mesh_archive_info_t *in = mesh_archive_info(a);
    assert_true(in->encrypted);
    assert_string_equal(in->id, "20260101T000000Z-abcdef");
    assert_int_equal(in->created_ns, 1234);
    assert_true(in->chunks > 10); /* the random entry alone takes 18 chunks */
    char *m = NULL;
    size_t n = 0;
    assert_int_equal(mesh_archive_manifest(a, &m, &n, &err), MESH_FORBIDDEN); /* locked */
    assert_int_equal(mesh_archive_unlock(a, kek, &err), MESH_OK);
    assert_int_equal(mesh_archive_manifest(a, &m, &n, &err), MESH_OK);
    assert_non_null(strstr(m, "\"note\":\"hello\""));
    assert_non_null(strstr(m, "\"name\":\"domains/d/data.db\""));
    free(m);
    mesh_archive_close(a);
    got_t g;
    assert_int_equal(read_all(kek, &g, &err), MESH_OK);
    assert_int_equal(g.n[0], SIZE_A);
    assert_int_equal(g.n[1], SIZE_B);
    assert_true(g.ended[0] && g.ended[1] && g.same);
    /* nothing of the compressible entry in clear */
    size_t len;
    uint8_t *p = load(&len);
    assert_null(memmem(p, len, "meshd backup page", 17));
    free(p);
    /* in clear: readable without a key */
    write_archive(NULL, "clear-1");
    assert_int_equal(read_all(NULL, &g, &err), MESH_OK);
    assert_true(g.same && g.ended[1]);
    mesh_kek_free(kek);
}

static void test_refusals(void **state)
{
    (void)state;
    mesh_kek_t *kek = kek_of(0x42), *other = kek_of(0x43);
    mesh_err_t err;
    got_t g;
    for (int enc = 0; enc < 2; enc++) {
        const mesh_kek_t *k = enc ? kek : NULL;
        write_archive(k, "20260101T000000Z-abcdef");
        size_t n;
        uint8_t *orig = load(&n);
        /* every truncation (in steps), and one byte short */
        for (size_t cut = 0; cut < n; cut += cut < 200 ? 1 : 997) {
            store(orig, cut);
            assert_int_not_equal(read_all(k, &g, &err), MESH_OK);
        }
        store(orig, n - 1);
        assert_int_equal(read_all(k, &g, &err), MESH_CORRUPT);
        /* a flipped bit anywhere */
        for (size_t off = 0; off < n; off += 331) {
            orig[off] ^= 0x04;
            store(orig, n);
            assert_int_not_equal(read_all(k, &g, &err), MESH_OK);
            orig[off] ^= 0x04;
        }
        /* bytes appended */
        uint8_t *more = malloc(n + 10);
        memcpy(more, orig, n);
        memset(more + n, 0, 10);
        store(more, n + 10);
        assert_int_equal(read_all(k, &g, &err), MESH_CORRUPT);
        free(more);
        /* two chunks of the same size swapped: the first two (full) data chunks */
        uint32_t kflen;
        memcpy(&kflen, orig + 64, 4);
        size_t c0 = 72 + kflen + 4, l0 = 20 + (orig[c0] | orig[c0 + 1] << 8) + 16;
        size_t c1 = c0 + l0, l1 = 20 + (orig[c1] | orig[c1 + 1] << 8) + 16;
        assert_int_equal(l0, l1);
        uint8_t *sw = malloc(n);
        memcpy(sw, orig, n);
        memcpy(sw + c0, orig + c1, l1);
        memcpy(sw + c1, orig + c0, l0);
        store(sw, n);
        assert_int_equal(read_all(k, &g, &err), MESH_CORRUPT);
        assert_non_null(strstr(err.msg, "fails authentication"));
        /* a chunk repeated over the next */
        memcpy(sw, orig, n);
        memcpy(sw + c1, orig + c0, l0);
        store(sw, n);
        assert_int_equal(read_all(k, &g, &err), MESH_CORRUPT);
        free(sw);
        store(orig, n);
        assert_int_equal(read_all(k, &g, &err), MESH_OK);
        free(orig);
    }
    /* the wrong KEK, and none */
    write_archive(kek, "20260101T000000Z-abcdef");
    assert_int_equal(read_all(other, &g, &err), MESH_FORBIDDEN);
    assert_non_null(strstr(err.msg, "wrong key-encryption key"));
    assert_int_equal(read_all(NULL, &g, &err), MESH_FORBIDDEN);
    /* another backup's chunks under this header: an id edited (with its checksum) */
    size_t n;
    uint8_t *p = load(&n);
    uint32_t kflen;
    memcpy(&kflen, p + 64, 4);
    p[16] = '1';
    uint32_t crc = mesh_crc32c(0, p, 72 + kflen);
    memcpy(p + 72 + kflen, &crc, 4);
    store(p, n);
    assert_int_equal(read_all(kek, &g, &err), MESH_CORRUPT);
    assert_non_null(strstr(err.msg, "header was altered"));
    free(p);
    mesh_kek_free(kek);
    mesh_kek_free(other);
}

static void test_writer_bounds(void **state)
{
    (void)state;
    mesh_archive_writer_t *w;
    mesh_err_t err;
    unlink(path);
    assert_int_equal(mesh_archive_create(path, "../x", 1, NULL, 0, &w, &err), MESH_INVALID);
    assert_int_equal(mesh_archive_create(path, "ok", 1, NULL, 100, &w, &err), MESH_INVALID);
    assert_int_equal(mesh_archive_create(path, "ok", 1, NULL, 0, &w, &err), MESH_OK);
    /* more bytes than announced, an entry ended short */
    assert_int_equal(mesh_archive_entry_begin(w, 'C', "a", 3, &err), MESH_OK);
    assert_int_not_equal(mesh_archive_entry_write(w, "abcd", 4, &err), MESH_OK);
    assert_int_equal(mesh_archive_entry_write(w, "ab", 2, &err), MESH_OK);
    assert_int_not_equal(mesh_archive_entry_end(w, NULL, &err), MESH_OK);
    mesh_archive_writer_free(w);
    /* the file exists: refused */
    assert_int_equal(mesh_archive_create(path, "ok", 1, NULL, 0, &w, &err), MESH_CONFLICT);
    assert_true(mesh_archive_id_ok("20261123T230646Z-5d3c89"));
    assert_false(mesh_archive_id_ok(".hidden"));
    assert_false(mesh_archive_id_ok("a/b"));
    assert_false(mesh_archive_id_ok(""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_bounds, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
