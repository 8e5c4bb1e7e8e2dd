/*
 * test_crypt.c - the crypt module without SQLite: AES-256-GCM helpers, nonces, key material
 * parsing, command splitting and running, key files (round trip, wrong KEK, damage,
 * tampering, another domain's file, two wraps), KEK sources, and the sealed domain log
 * (nothing in clear, replay, wrong key, a tampered record, a torn tail, clear and sealed logs
 * not mixed, a damaged record the store had applied, records of two key generations).
 */
#define _GNU_SOURCE
#include <dirent.h>
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

#include "core/util.h"
#include "crypt/aead.h"
#include "crypt/keys.h"
#include "store/dlog.h"

int main(void);

static char dir[64];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/meshd-test-crypt-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void test_aead(void **state)
{
    (void)state;
    uint8_t key[32], nonce[12], tag[16], buf[100], out[100];
    memset(key, 7, sizeof key);
    memset(nonce, 1, sizeof nonce);
    for (int i = 0; i < 100; i++)
        buf[i] = (uint8_t)i;
    mesh_aead_t *a;
    assert_int_equal(mesh_aead_new(key, &a), MESH_OK);
    const uint8_t aad[] = "where";
    assert_true(mesh_aead_seal(a, nonce, aad, 5, buf, sizeof buf, out, tag));
    assert_memory_not_equal(buf, out, sizeof buf);
    uint8_t back[100];
    assert_true(mesh_aead_open(a, nonce, aad, 5, out, sizeof out, back, tag));
    assert_memory_equal(back, buf, sizeof buf);
    /* in place */
    memcpy(back, out, sizeof back);
    assert_true(mesh_aead_open(a, nonce, aad, 5, back, sizeof back, back, tag));
    assert_memory_equal(back, buf, sizeof buf);
    /* any change fails */
    out[50] ^= 1;
    assert_false(mesh_aead_open(a, nonce, aad, 5, out, sizeof out, back, tag));
    out[50] ^= 1;
    assert_false(mesh_aead_open(a, nonce, (const uint8_t *)"wherf", 5, out, sizeof out, back, tag));
    tag[0] ^= 1;
    assert_false(mesh_aead_open(a, nonce, aad, 5, out, sizeof out, back, tag));
    tag[0] ^= 1;
    nonce[11] ^= 1;
    assert_false(mesh_aead_open(a, nonce, aad, 5, out, sizeof out, back, tag));
    mesh_aead_free(a);
    /* known answer: NIST GCM test case 14 (256-bit zero key, zero IV, one zero block) */
    uint8_t zk[32] = {0}, ziv[12] = {0}, zp[16] = {0}, ct[16], t[16];
    assert_true(mesh_aead_seal_once(zk, ziv, NULL, 0, zp, 16, ct, t));
    static const uint8_t want_ct[16] = {0xce, 0xa7, 0x40, 0x3d, 0x4d, 0x60, 0x6b, 0x6e,
                                        0x07, 0x4e, 0xc5, 0xd3, 0xba, 0xf3, 0x9d, 0x18};
    static const uint8_t want_tag[16] = {0xd0, 0xd1, 0xc8, 0xa7, 0x99, 0x99, 0x6b, 0xf0,
                                         0x26, 0x5b, 0x98, 0xb5, 0xd4, 0x8a, 0xb9, 0x19};
    assert_memory_equal(ct, want_ct, 16);
    assert_memory_equal(t, want_tag, 16);
}

static void test_nonces(void **state)
{
    (void)state;
    mesh_key_t *k;
    assert_int_equal(mesh_key_new(3, &k), MESH_OK);
    assert_int_equal(mesh_key_gen(k), 3);
    uint8_t prev[12], cur[12];
    mesh_key_nonce(k, prev);
    for (int i = 0; i < 1000; i++) {
        mesh_key_nonce(k, cur);
        /* cur = prev + 1 as a 96-bit big-endian number */
        uint8_t want[12];
        memcpy(want, prev, 12);
        for (int j = 11; j >= 0 && ++want[j] == 0; j--)
            ;
        assert_memory_equal(cur, want, 12);
        memcpy(prev, cur, 12);
    }
    mesh_key_t *k2;
    assert_int_equal(mesh_key_new(3, &k2), MESH_OK);
    mesh_key_nonce(k2, cur);
    assert_memory_not_equal(cur, prev, 12); /* another load starts elsewhere */
    assert_memory_not_equal(mesh_key_secret(k), mesh_key_secret(k2), 32);
    assert_memory_not_equal(mesh_key_file_id(k), mesh_key_file_id(k2), 16);
    mesh_keyring_t ring = {.keys = {k, k2}, .n = 2, .current = 3};
    assert_ptr_equal(mesh_keyring_get(&ring, 3), k);
    assert_null(mesh_keyring_get(&ring, 4));
    mesh_key_unref(k);
    mesh_key_unref(k2);
}

static void test_parse_text(void **state)
{
    (void)state;
    uint8_t out[32];
    mesh_err_t err;
    const char *hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    assert_int_equal(mesh_kek_parse_text((const uint8_t *)hex, strlen(hex), out, &err), MESH_OK);
    for (int i = 0; i < 32; i++)
        assert_int_equal(out[i], i);
    char padded[80];
    snprintf(padded, sizeof padded, "  %s\n", hex);
    assert_int_equal(mesh_kek_parse_text((const uint8_t *)padded, strlen(padded), out, &err),
                     MESH_OK);
    const char *b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    memset(out, 0, sizeof out);
    assert_int_equal(mesh_kek_parse_text((const uint8_t *)b64, strlen(b64), out, &err), MESH_OK);
    for (int i = 0; i < 32; i++)
        assert_int_equal(out[i], i);
    assert_int_equal(mesh_kek_parse_text((const uint8_t *)b64, 43, out, &err), MESH_OK);
    /* non-canonical trailing bits, wrong lengths, junk */
    const char *bad[] = {"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=",
                         "abcd",
                         "",
                         "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g",
                         "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8==",
                         "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nx"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mesh_kek_parse_text((const uint8_t *)bad[i], strlen(bad[i]), out, &err),
                         MESH_INVALID);
    assert_null(strstr(err.msg, "AAEC")); /* never quotes the input */
    uint8_t raw[32];
    memset(raw, '\n', sizeof raw); /* 32 raw bytes are a key, even when they look like text */
    assert_int_equal(mesh_kek_parse_text(raw, 32, out, &err), MESH_OK);
    assert_memory_equal(out, raw, 32);
}

static void test_split_command(void **state)
{
    (void)state;
    char buf[256], *argv[MESH_KEK_CMD_MAX_ARGS + 1];
    int argc;
    mesh_err_t err;
    const char *line = "vault  kv get -field='the key' \"a \\\"b\\\"\" c\\ d 'x\\y'";
    assert_int_equal(mesh_kek_split_command(line, strlen(line), buf, sizeof buf, argv, &argc, &err),
                     MESH_OK);
    assert_int_equal(argc, 7);
    assert_string_equal(argv[0], "vault");
    assert_string_equal(argv[3], "-field=the key");
    assert_string_equal(argv[4], "a \"b\"");
    assert_string_equal(argv[5], "c d");
    assert_string_equal(argv[6], "x\\y");
    assert_null(argv[7]);
    const char *bad[] = {"", "   ", "a 'b", "a \"b", "a\\", "a\nb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(
            mesh_kek_split_command(bad[i], strlen(bad[i]), buf, sizeof buf, argv, &argc, &err),
            MESH_INVALID);
}

static void test_run_command(void **state)
{
    (void)state;
    uint8_t out[32];
    mesh_err_t err;
    assert_int_equal(mesh_kek_run_command("printf %s "
                                          "000102030405060708090a0b0c0d0e0f101112131415161718191a"
                                          "1b1c1d1e1f",
                                          5 * MESH_NS_PER_SEC, out, &err),
                     MESH_OK);
    assert_int_equal(out[31], 31);
    /* no shell: the semicolon is an argument of printf, so the output is not a key */
    assert_int_equal(
        mesh_kek_run_command("printf x;touch /tmp/meshd-never", MESH_NS_PER_SEC, out, &err),
        MESH_INVALID);
    assert_int_not_equal(access("/tmp/meshd-never", F_OK), 0);
    assert_int_equal(mesh_kek_run_command("false", MESH_NS_PER_SEC, out, &err), MESH_INVALID);
    assert_int_equal(mesh_kek_run_command("/nonexistent/kms", MESH_NS_PER_SEC, out, &err),
                     MESH_INVALID);
    int64_t t0 = mesh_mono_ns();
    assert_int_equal(mesh_kek_run_command("sleep 10", 300 * 1000000LL, out, &err), MESH_TIMEOUT);
    /* the command sleeps 10 s: far less means it was stopped at its time limit */
    assert_true(mesh_mono_ns() - t0 < 9 * MESH_NS_PER_SEC);
    assert_int_equal(mesh_kek_run_command("yes", 5 * MESH_NS_PER_SEC, out, &err), MESH_INVALID);
    assert_non_null(strstr(err.msg, "4 KiB"));
}

static mesh_kek_t *kek_of(uint8_t fill)
{
    uint8_t b[32];
    memset(b, fill, sizeof b);
    mesh_kek_t *k;
    assert_int_equal(mesh_kek_from_bytes(b, "test", &k, NULL), MESH_OK);
    return k;
}

static void test_keyfile(void **state)
{
    (void)state;
    mesh_kek_t *kek = kek_of(1), *other = kek_of(2);
    mesh_keyfile_t kf;
    memset(&kf, 0, sizeof kf);
    kf.kind = 'D';
    kf.nkeys = 2;
    assert_int_equal(mesh_key_new(0, &kf.keys[0].key), MESH_OK);
    assert_int_equal(mesh_key_new(1, &kf.keys[1].key), MESH_OK);
    for (int i = 0; i < 2; i++) {
        kf.keys[i].gen = (uint32_t)i;
        kf.keys[i].state = i == 0 ? MESH_KEY_RETIRED : MESH_KEY_CURRENT;
        memcpy(kf.keys[i].file_id, mesh_key_file_id(kf.keys[i].key), 16);
    }
    char path[128];
    snprintf(path, sizeof path, "%s/key", dir);
    const mesh_kek_t *keks[] = {kek};
    mesh_err_t err;
    assert_int_equal(mesh_keyfile_save(path, &kf, keks, 1, "domain:a", &err), MESH_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    mesh_keyfile_t back;
    bool other_kek = true;
    assert_int_equal(mesh_keyfile_load(path, kek, "domain:a", &back, &other_kek, &err), MESH_OK);
    assert_false(other_kek);
    assert_int_equal(back.nkeys, 2);
    assert_int_equal(back.keys[1].state, MESH_KEY_CURRENT);
    assert_memory_equal(mesh_key_secret(back.keys[1].key), mesh_key_secret(kf.keys[1].key), 32);
    assert_memory_equal(mesh_key_file_id(back.keys[0].key), mesh_key_file_id(kf.keys[0].key), 16);
    mesh_keyfile_clear(&back);
    /* no data key bytes in the file */
    char *text;
    size_t n;
    assert_int_equal(mesh_read_file(path, 4096, &text, &n, NULL), MESH_OK);
    assert_null(memmem(text, n, mesh_key_secret(kf.keys[1].key), 32));
    /* wrong KEK: said plainly */
    assert_int_equal(mesh_keyfile_load(path, other, "domain:a", &back, NULL, &err), MESH_FORBIDDEN);
    assert_non_null(strstr(err.msg, "wrong key?"));
    /* another domain's key file */
    assert_int_equal(mesh_keyfile_load(path, kek, "domain:b", &back, NULL, &err), MESH_CORRUPT);
    /* every single-byte change is caught (checksum, or authentication when it is fixed) */
    mesh_keyfile_t tmp;
    for (size_t i = 0; i < n; i++) {
        text[i] ^= 0x20;
        mesh_status_t s1 = mesh_keyfile_parse((const uint8_t *)text, n, &tmp, &err);
        assert_int_not_equal(s1, MESH_OK);
        text[i] ^= 0x20;
    }
    /* a change with the checksum fixed up: authentication catches it */
    text[16 + 8] ^= 1; /* a file id byte */
    uint32_t crc = mesh_crc32c(0, text, n - 4);
    for (int i = 0; i < 4; i++)
        text[n - 4 + (size_t)i] = (char)(crc >> (8 * i));
    assert_int_equal(mesh_keyfile_parse((const uint8_t *)text, n, &tmp, &err), MESH_OK);
    assert_int_equal(mesh_keyfile_unwrap(&tmp, kek, "domain:a", &err), MESH_CORRUPT);
    free(text);
    /* two wraps: either KEK opens it, and the caller learns of the other */
    const mesh_kek_t *both[] = {kek, other};
    assert_int_equal(mesh_keyfile_save(path, &kf, both, 2, "domain:a", &err), MESH_OK);
    assert_int_equal(mesh_keyfile_load(path, other, "domain:a", &back, &other_kek, &err), MESH_OK);
    assert_true(other_kek);
    mesh_keyfile_clear(&back);
    assert_int_equal(mesh_keyfile_load(path, kek, "domain:a", &back, &other_kek, &err), MESH_OK);
    mesh_keyfile_clear(&back);
    /* the largest file: three keys under two KEKs */
    kf.nkeys = 3;
    assert_int_equal(mesh_key_new(2, &kf.keys[2].key), MESH_OK);
    kf.keys[2].gen = 2;
    kf.keys[2].state = MESH_KEY_NEXT;
    memcpy(kf.keys[2].file_id, mesh_key_file_id(kf.keys[2].key), 16);
    mesh_buf_t big;
    mesh_buf_init(&big, MESH_KEYFILE_MAX_BYTES);
    assert_int_equal(mesh_keyfile_encode(&kf, both, 2, "domain:a", &big, &err), MESH_OK);
    assert_int_equal(big.len, MESH_KEYFILE_MAX_BYTES);
    assert_int_equal(mesh_keyfile_parse((const uint8_t *)big.data, big.len, &back, &err), MESH_OK);
    assert_int_equal(mesh_keyfile_unwrap(&back, other, "domain:a", &err), MESH_OK);
    assert_memory_equal(mesh_key_secret(back.keys[2].key), mesh_key_secret(kf.keys[2].key), 32);
    mesh_keyfile_clear(&back);
    mesh_buf_free(&big);
    /* missing */
    snprintf(path, sizeof path, "%s/none", dir);
    assert_int_equal(mesh_keyfile_load(path, kek, "domain:a", &back, NULL, &err), MESH_NOT_FOUND);
    mesh_keyfile_clear(&kf);
    mesh_kek_free(kek);
    mesh_kek_free(other);
}

static void write_text(const char *path, const char *text, unsigned mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(mesh_write_all(fd, text, strlen(text)), MESH_OK);
    close(fd);
}

static void test_kek_sources(void **state)
{
    (void)state;
    mesh_kek_source_t src;
    memset(&src, 0, sizeof src);
    bool gen, in_dir;
    mesh_kek_t *k1, *k2;
    mesh_err_t err;
    /* nothing configured, new directory: generated beside the data */
    assert_int_equal(mesh_kek_load(&src, dir, &gen, &in_dir, &k1, &err), MESH_OK);
    assert_true(gen);
    assert_true(in_dir);
    char path[128];
    snprintf(path, sizeof path, "%s/kek.key", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* next start: the same key */
    assert_int_equal(mesh_kek_load(&src, dir, &gen, &in_dir, &k2, &err), MESH_OK);
    assert_false(gen);
    assert_memory_equal(mesh_kek_id(k1), mesh_kek_id(k2), 16);
    mesh_kek_free(k2);
    /* the same key given as a file and as a value */
    src.file = path;
    assert_int_equal(mesh_kek_load(&src, dir, &gen, &in_dir, &k2, &err), MESH_OK);
    assert_false(in_dir);
    assert_memory_equal(mesh_kek_id(k1), mesh_kek_id(k2), 16);
    mesh_kek_free(k2);
    src.value = "x";
    assert_int_equal(mesh_kek_load(&src, dir, &gen, &in_dir, &k2, &err), MESH_INVALID);
    assert_non_null(strstr(err.msg, "not both"));
    memset(&src, 0, sizeof src);
    src.value = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    assert_int_equal(mesh_kek_load(&src, dir, &gen, &in_dir, &k2, &err), MESH_OK);
    mesh_kek_free(k2);
    /* a passphrase: derived with the parameters in catalog.key (made here with small ones so
     * the test is quick) */
    mesh_kdf_t kdf;
    mesh_kdf_default(&kdf);
    kdf.log2_n = 10;
    mesh_kek_t *pk;
    assert_int_equal(mesh_kek_from_passphrase("correct horse battery", 21, &kdf, "p", &pk, &err),
                     MESH_OK);
    mesh_keyfile_t kf;
    memset(&kf, 0, sizeof kf);
    kf.kind = 'N';
    kf.nkeys = 1;
    kf.keys[0].state = MESH_KEY_CURRENT;
    assert_int_equal(mesh_key_new(0, &kf.keys[0].key), MESH_OK);
    memcpy(kf.keys[0].file_id, mesh_key_file_id(kf.keys[0].key), 16);
    snprintf(path, sizeof path, "%s/catalog.key", dir);
    const mesh_kek_t *keks[] = {pk};
    assert_int_equal(mesh_keyfile_save(path, &kf, keks, 1, "catalog", &err), MESH_OK);
    memset(&src, 0, sizeof src);
    src.passphrase = "correct horse battery";
    assert_int_equal(mesh_kek_load(&src, dir, &gen, &in_dir, &k2, &err), MESH_OK);
    assert_memory_equal(mesh_kek_id(k2), mesh_kek_id(pk), 16);
    mesh_kek_free(k2);
    char pf[128];
    snprintf(pf, sizeof pf, "%s/pass", dir);
    write_text(pf, "correct horse battery\nignored\n", 0600);
    memset(&src, 0, sizeof src);
    src.passphrase_file = pf;
    assert_int_equal(mesh_kek_load(&src, dir, &gen, &in_dir, &k2, &err), MESH_OK);
    assert_memory_equal(mesh_kek_id(k2), mesh_kek_id(pk), 16);
    mesh_kek_free(k2);
    memset(&src, 0, sizeof src);
    src.passphrase = "short";
    assert_int_equal(mesh_kek_load(&src, dir, &gen, &in_dir, &k2, &err), MESH_INVALID);
    /* an encrypted directory without its generated key and nothing configured */
    snprintf(path, sizeof path, "%s/kek.key", dir);
    unlink(path);
    memset(&src, 0, sizeof src);
    assert_int_equal(mesh_kek_load(&src, dir, &gen, &in_dir, &k2, &err), MESH_NOT_FOUND);
    assert_non_null(strstr(err.msg, "no key-encryption key is configured"));
    assert_int_not_equal(access(path, F_OK), 0); /* and none was generated */
    mesh_keyfile_clear(&kf);
    mesh_kek_free(pk);
    mesh_kek_free(k1);
}

/* ---- the sealed log ---- */

typedef struct collected {
    size_t n;
    uint64_t seqs[64];
    char payloads[64][64];
} collected_t;

static mesh_status_t collect(void *arg, uint64_t seq, const uint8_t *p, size_t n)
{
    collected_t *c = arg;
    c->seqs[c->n] = seq;
    snprintf(c->payloads[c->n], sizeof c->payloads[0], "%.*s", (int)n, (const char *)p);
    c->n++;
    return MESH_OK;
}

static bool dir_has(const char *d, const char *needle)
{
    DIR *dd = opendir(d);
    struct dirent *e;
    bool found = false;
    while (dd && (e = readdir(dd)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[512], *text;
        size_t n;
        snprintf(p, sizeof p, "%s/%s", d, e->d_name);
        if (mesh_read_file(p, 1 << 28, &text, &n, NULL) == MESH_OK) {
            found |= memmem(text, n, needle, strlen(needle)) != NULL;
            free(text);
        }
    }
    if (dd)
        closedir(dd);
    return found;
}

static char seg0[256];

static void first_segment(const char *logdir)
{
    DIR *dd = opendir(logdir);
    struct dirent *e;
    seg0[0] = '\0';
    while ((e = readdir(dd)) != NULL)
        if (strstr(e->d_name, ".seg") && (seg0[0] == '\0' || strcmp(e->d_name, seg0) < 0))
            snprintf(seg0, sizeof seg0, "%s", e->d_name);
    closedir(dd);
}

static void test_dlog_sealed(void **state)
{
    (void)state;
    char logdir[128];
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    mesh_key_t *k0;
    assert_int_equal(mesh_key_new(0, &k0), MESH_OK);
    mesh_keyring_t ring = {.keys = {k0}, .n = 1, .current = 0};
    mesh_dlog_t *log;
    mesh_err_t err;
    assert_int_equal(mesh_dlog_open_sealed(logdir, 1, &ring, &log, &err), MESH_OK);
    uint64_t seq;
    char rec[64];
    for (int i = 0; i < 10; i++) {
        snprintf(rec, sizeof rec, "secret-row-%d", i);
        assert_int_equal(mesh_dlog_append(log, rec, strlen(rec), &seq, &err), MESH_OK);
    }
    assert_int_equal(mesh_dlog_sync(log, &err), MESH_OK);
    /* rewind and append again: the same seqs, new nonces */
    mesh_dlog_mark_t m;
    mesh_dlog_mark(log, &m);
    assert_int_equal(mesh_dlog_append(log, "undone", 6, &seq, &err), MESH_OK);
    assert_int_equal(mesh_dlog_rewind(log, &m, &err), MESH_OK);
    assert_int_equal(mesh_dlog_append(log, "secret-row-10", 13, &seq, &err), MESH_OK);
    assert_int_equal(seq, 11);
    mesh_dlog_close(log);
    assert_false(dir_has(logdir, "secret-row"));
    assert_true(mesh_dlog_open_sealed(logdir, 1, &ring, &log, &err) == MESH_OK);
    assert_true(mesh_dlog_only_gen(log, 0));
    collected_t c = {0};
    assert_int_equal(mesh_dlog_replay(log, 0, collect, &c, &err), MESH_OK);
    assert_int_equal(c.n, 11);
    assert_string_equal(c.payloads[10], "secret-row-10");
    assert_string_equal(c.payloads[3], "secret-row-3");
    mesh_dlog_close(log);
    /* a clear-text open of a sealed log is an error, not a torn tail to cut */
    assert_int_equal(mesh_dlog_open(logdir, 1, &log, &err), MESH_CORRUPT);
    assert_non_null(strstr(err.msg, "encrypted"));
    /* another key: replay fails authentication */
    mesh_key_t *wrong;
    assert_int_equal(mesh_key_new(0, &wrong), MESH_OK);
    mesh_keyring_t wring = {.keys = {wrong}, .n = 1, .current = 0};
    assert_int_equal(mesh_dlog_open_sealed(logdir, 1, &wring, &log, &err), MESH_OK);
    c.n = 0;
    assert_int_equal(mesh_dlog_replay(log, 0, collect, &c, &err), MESH_CORRUPT);
    assert_non_null(strstr(err.msg, "fails authentication"));
    assert_int_equal(c.n, 0);
    mesh_dlog_close(log);
    /* a record tampered with (its checksum fixed up): replay stops with an error before it,
     * never hands out changed bytes */
    first_segment(logdir);
    char segp[512];
    snprintf(segp, sizeof segp, "%s/%s", logdir, seg0);
    int fd = open(segp, O_RDWR);
    uint8_t h[20];
    off_t off = 0;
    for (int i = 0; i < 4; i++) { /* to the 5th record */
        assert_int_equal(pread(fd, h, 20, off), 20);
        off += 20 + (off_t)(h[4] | h[5] << 8 | h[6] << 16 | (uint32_t)h[7] << 24);
    }
    assert_int_equal(pread(fd, h, 20, off), 20);
    uint32_t len = h[4] | h[5] << 8 | h[6] << 16 | (uint32_t)h[7] << 24;
    uint8_t body[256];
    assert_int_equal(pread(fd, body, len, off + 20), (ssize_t)len);
    body[20] ^= 4;
    assert_int_equal(pwrite(fd, body, len, off + 20), (ssize_t)len);
    uint8_t lenseq[12];
    memcpy(lenseq, h + 4, 12);
    uint32_t crc = mesh_crc32c(mesh_crc32c(0, lenseq, 12), body, len);
    uint8_t cb[4] = {(uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16), (uint8_t)(crc >> 24)};
    assert_int_equal(pwrite(fd, cb, 4, off + 16), 4);
    close(fd);
    assert_int_equal(mesh_dlog_open_sealed(logdir, 1, &ring, &log, &err), MESH_OK);
    c.n = 0;
    assert_int_equal(mesh_dlog_replay(log, 0, collect, &c, &err), MESH_CORRUPT);
    assert_int_equal(c.n, 4);
    assert_non_null(strstr(err.msg, "record 5 fails authentication"));
    mesh_dlog_close(log);
    /* without the checksum fixed: the same damage at the tail is a torn write when the store
     * has not applied the record (cut off), corruption when it has */
    body[20] ^= 4;
    fd = open(segp, O_RDWR);
    assert_int_equal(pwrite(fd, body, len, off + 20), (ssize_t)len); /* undo */
    body[21] ^= 8;
    assert_int_equal(pwrite(fd, body, len, off + 20), (ssize_t)len); /* checksum now fails */
    close(fd);
    assert_int_equal(mesh_dlog_open_sealed(logdir, 8, &ring, &log, &err), MESH_CORRUPT);
    assert_non_null(strstr(err.msg, "which the store has applied"));
    assert_int_equal(mesh_dlog_open_sealed(logdir, 1, &ring, &log, &err), MESH_OK);
    assert_int_equal(mesh_dlog_last_seq(log), 4);
    /* a second generation: old records still replay, new ones use the new key */
    mesh_key_t *k1;
    assert_int_equal(mesh_key_new(1, &k1), MESH_OK);
    ring.keys[1] = k1;
    ring.n = 2;
    ring.current = 1;
    assert_int_equal(mesh_dlog_append(log, "gen-one", 7, &seq, &err), MESH_OK);
    assert_false(mesh_dlog_only_gen(log, 1));
    assert_int_equal(mesh_dlog_sync(log, &err), MESH_OK);
    c.n = 0;
    assert_int_equal(mesh_dlog_replay(log, 0, collect, &c, &err), MESH_OK);
    assert_int_equal(c.n, 5);
    assert_string_equal(c.payloads[4], "gen-one");
    assert_int_equal(mesh_dlog_trim(log, 5, &err), MESH_OK);
    assert_true(mesh_dlog_only_gen(log, 1));
    mesh_dlog_close(log);
    mesh_key_unref(k0);
    mesh_key_unref(k1);
    mesh_key_unref(wrong);
}

/* A log in clear stays readable in clear, and a sealed open of it is an error. */
static void test_dlog_clear_not_mixed(void **state)
{
    (void)state;
    char logdir[128];
    snprintf(logdir, sizeof logdir, "%s/plainlog", dir);
    mesh_dlog_t *log;
    mesh_err_t err;
    uint64_t seq;
    assert_int_equal(mesh_dlog_open(logdir, 1, &log, &err), MESH_OK);
    assert_int_equal(mesh_dlog_append(log, "visible", 7, &seq, &err), MESH_OK);
    mesh_dlog_close(log);
    assert_true(dir_has(logdir, "visible"));
    mesh_key_t *k;
    assert_int_equal(mesh_key_new(0, &k), MESH_OK);
    mesh_keyring_t ring = {.keys = {k}, .n = 1, .current = 0};
    assert_int_equal(mesh_dlog_open_sealed(logdir, 1, &ring, &log, &err), MESH_CORRUPT);
    assert_non_null(strstr(err.msg, "clear-text"));
    assert_true(dir_has(logdir, "visible")); /* nothing was cut */
    mesh_key_unref(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aead),
        cmocka_unit_test(test_nonces),
        cmocka_unit_test(test_parse_text),
        cmocka_unit_test(test_split_command),
        cmocka_unit_test(test_run_command),
        cmocka_unit_test_setup_teardown(test_keyfile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kek_sources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dlog_sealed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dlog_clear_not_mixed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
