/*
 * keys.c - data keys, their nonce counters, and key files (layout in keys.h).
 */
#include "crypt/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"

/* ---- data keys ---- */

struct mesh_key {
    _Atomic int refs;
    uint32_t gen;
    uint8_t file_id[MESH_FILE_ID_BYTES];
    uint8_t secret[MESH_KEY_BYTES];
    uint8_t nonce_base[MESH_AEAD_NONCE_BYTES]; /* random at load */
    _Atomic uint64_t nonce_ctr;                /* seals so far in this process */
};

mesh_status_t mesh_key_from(uint32_t gen, const uint8_t file_id[MESH_FILE_ID_BYTES],
                            const uint8_t secret[MESH_KEY_BYTES], mesh_key_t **out)
{
    mesh_key_t *k = calloc(1, sizeof *k);
    if (k == NULL)
        return MESH_NOMEM;
    atomic_init(&k->refs, 1);
    atomic_init(&k->nonce_ctr, 0);
    k->gen = gen;
    memcpy(k->file_id, file_id, MESH_FILE_ID_BYTES);
    memcpy(k->secret, secret, MESH_KEY_BYTES);
    if (mesh_random(k->nonce_base, sizeof k->nonce_base) != MESH_OK) {
        mesh_key_unref(k);
        return MESH_IO;
    }
    *out = k;
    return MESH_OK;
}

mesh_status_t mesh_key_new(uint32_t gen, mesh_key_t **out)
{
    uint8_t id[MESH_FILE_ID_BYTES], secret[MESH_KEY_BYTES];
    if (mesh_random(id, sizeof id) != MESH_OK || mesh_random(secret, sizeof secret) != MESH_OK)
        return MESH_IO;
    mesh_status_t st = mesh_key_from(gen, id, secret, out);
    mesh_cleanse(secret, sizeof secret);
    return st;
}

mesh_key_t *mesh_key_ref(mesh_key_t *k)
{
    if (k)
        atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed);
    return k;
}

void mesh_key_unref(mesh_key_t *k)
{
    if (k == NULL || atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) != 1)
        return;
    mesh_cleanse(k, sizeof *k);
    free(k);
}

uint32_t mesh_key_gen(const mesh_key_t *k)
{
    return k->gen;
}

const uint8_t *mesh_key_file_id(const mesh_key_t *k)
{
    return k->file_id;
}

const uint8_t *mesh_key_secret(const mesh_key_t *k)
{
    return k->secret;
}

void mesh_key_nonce(mesh_key_t *k, uint8_t out[MESH_AEAD_NONCE_BYTES])
{
    uint64_t c = atomic_fetch_add_explicit(&k->nonce_ctr, 1, memory_order_relaxed);
    /* out = base + c as 96-bit big-endian integers */
    unsigned carry = 0;
    for (int i = MESH_AEAD_NONCE_BYTES - 1; i >= 0; i--) {
        unsigned add = i >= MESH_AEAD_NONCE_BYTES - 8 ? (unsigned)(c & 0xff) : 0;
        if (i >= MESH_AEAD_NONCE_BYTES - 8)
            c >>= 8;
        unsigned v = k->nonce_base[i] + add + carry;
        out[i] = (uint8_t)v;
        carry = v >> 8;
    }
}

mesh_key_t *mesh_keyring_get(const mesh_keyring_t *r, uint32_t gen)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->keys[i] && mesh_key_gen(r->keys[i]) == gen)
            return r->keys[i];
    return NULL;
}

/* ---- files ---- */

mesh_status_t mesh_write_file_atomic(const char *path, const void *p, size_t n, unsigned mode,
                                     mesh_err_t *err)
{
    char tmp[4096], dir[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return mesh_err_set(err, errno == ENOSPC ? MESH_NOSPACE : MESH_IO, "create %s: %s", tmp,
                            strerror(errno));
    if (fchmod(fd, mode) != 0 || mesh_write_all(fd, p, n) != MESH_OK || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return mesh_err_set(err, e == ENOSPC ? MESH_NOSPACE : MESH_IO, "write %s: %s", tmp,
                            strerror(e));
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return mesh_err_set(err, MESH_IO, "rename %s: %s", tmp, strerror(e));
    }
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    if (mesh_fsync_dir(dir) != MESH_OK)
        return mesh_err_set(err, MESH_IO, "fsync %s: %s", dir, strerror(errno));
    return MESH_OK;
}

/* ---- key files ---- */

#define KF_MAGIC      "MESHKEY1"
#define KF_HEADER     16
#define KF_KEY_ENTRY  24
#define KF_WRAP_FIXED (MESH_KEK_ID_BYTES + 4 + MESH_KDF_SALT_BYTES + MESH_AEAD_NONCE_BYTES)

static size_t wrap_size(size_t nkeys)
{
    return KF_WRAP_FIXED + nkeys * MESH_KEY_BYTES + MESH_AEAD_TAG_BYTES;
}

static size_t file_size(size_t nkeys, size_t nwraps)
{
    return KF_HEADER + nkeys * KF_KEY_ENTRY + nwraps * wrap_size(nkeys) + 4;
}

_Static_assert(KF_HEADER + MESH_KEYFILE_MAX_KEYS * KF_KEY_ENTRY +
                       MESH_KEYFILE_MAX_WRAPS *
                           (KF_WRAP_FIXED + MESH_KEYFILE_MAX_KEYS * MESH_KEY_BYTES +
                            MESH_AEAD_TAG_BYTES) +
                       4 ==
                   MESH_KEYFILE_MAX_BYTES,
               "MESH_KEYFILE_MAX_BYTES is the largest key file");

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool kdf_ok(const mesh_kdf_t *k)
{
    if (k->kind == 0)
        return k->log2_n == 0 && k->r == 0 && k->p == 0;
    if (k->kind != 1)
        return false;
    /* scrypt: at most 256 MiB (128 * r * N) and sane parallelism */
    if (k->log2_n < 10 || k->log2_n > 24 || k->r < 1 || k->r > 32 || k->p < 1 || k->p > 16)
        return false;
    return (128ull * k->r) << k->log2_n <= (256ull << 20);
}

mesh_status_t mesh_keyfile_parse(const uint8_t *p, size_t n, mesh_keyfile_t *kf, mesh_err_t *err)
{
    memset(kf, 0, sizeof *kf);
    if (n < KF_HEADER || memcmp(p, KF_MAGIC, 8) != 0)
        return mesh_err_set(err, MESH_CORRUPT, "not a meshd key file (bad magic)");
    char kind = (char)p[8];
    size_t nkeys = p[9], nwraps = p[10];
    if ((kind != 'N' && kind != 'D') || nkeys < 1 || nkeys > MESH_KEYFILE_MAX_KEYS || nwraps < 1 ||
        nwraps > MESH_KEYFILE_MAX_WRAPS || p[11] || p[12] || p[13] || p[14] || p[15])
        return mesh_err_set(err, MESH_CORRUPT, "key file header out of range");
    if (n != file_size(nkeys, nwraps))
        return mesh_err_set(err, MESH_CORRUPT, "key file of %zu bytes, expected %zu", n,
                            file_size(nkeys, nwraps));
    if (get32(p + n - 4) != mesh_crc32c(0, p, n - 4))
        return mesh_err_set(err, MESH_CORRUPT, "key file checksum mismatch (damaged)");
    kf->kind = kind;
    kf->nkeys = nkeys;
    kf->nwraps = nwraps;
    const uint8_t *q = p + KF_HEADER;
    for (size_t i = 0; i < nkeys; i++, q += KF_KEY_ENTRY) {
        kf->keys[i].gen = get32(q);
        kf->keys[i].state = q[4];
        if (kf->keys[i].state < MESH_KEY_CURRENT || kf->keys[i].state > MESH_KEY_RETIRED || q[5] ||
            q[6] || q[7])
            return mesh_err_set(err, MESH_CORRUPT, "key file entry %zu out of range", i);
        memcpy(kf->keys[i].file_id, q + 8, MESH_FILE_ID_BYTES);
        for (size_t j = 0; j < i; j++)
            if (kf->keys[j].gen == kf->keys[i].gen)
                return mesh_err_set(err, MESH_CORRUPT, "key file lists generation %u twice",
                                    (unsigned)kf->keys[i].gen);
    }
    size_t ncur = 0;
    for (size_t i = 0; i < nkeys; i++)
        ncur += kf->keys[i].state == MESH_KEY_CURRENT;
    if (ncur != 1)
        return mesh_err_set(err, MESH_CORRUPT, "key file has %zu current keys", ncur);
    for (size_t w = 0; w < nwraps; w++) {
        memcpy(kf->wraps[w].kek_id, q, MESH_KEK_ID_BYTES);
        q += MESH_KEK_ID_BYTES;
        kf->wraps[w].kdf.kind = q[0];
        kf->wraps[w].kdf.log2_n = q[1];
        kf->wraps[w].kdf.r = q[2];
        kf->wraps[w].kdf.p = q[3];
        q += 4;
        memcpy(kf->wraps[w].kdf.salt, q, MESH_KDF_SALT_BYTES);
        q += MESH_KDF_SALT_BYTES;
        if (!kdf_ok(&kf->wraps[w].kdf))
            return mesh_err_set(err, MESH_CORRUPT, "key file KDF parameters out of range");
        memcpy(kf->wraps[w].nonce, q, MESH_AEAD_NONCE_BYTES);
        q += MESH_AEAD_NONCE_BYTES;
        memcpy(kf->wraps[w].sealed, q, nkeys * MESH_KEY_BYTES);
        q += nkeys * MESH_KEY_BYTES;
        memcpy(kf->wraps[w].tag, q, MESH_AEAD_TAG_BYTES);
        q += MESH_AEAD_TAG_BYTES;
    }
    return MESH_OK;
}

/* Additional data of a wrap: what it must not be separated from. */
static mesh_status_t wrap_aad(const mesh_keyfile_t *kf, size_t w, const char *label, mesh_buf_t *b)
{
    mesh_buf_reset(b);
    mesh_status_t st = mesh_buf_adds(b, "meshd keyfile v1");
    st = st ? st : mesh_buf_addc(b, 0);
    st = st ? st : mesh_buf_adds(b, label);
    st = st ? st : mesh_buf_addc(b, 0);
    st = st ? st : mesh_buf_addc(b, kf->kind);
    st = st ? st : mesh_buf_addc(b, (char)kf->nkeys);
    for (size_t i = 0; i < kf->nkeys && st == MESH_OK; i++) {
        st = mesh_buf_add_u32(b, kf->keys[i].gen);
        st = st ? st : mesh_buf_addc(b, (char)kf->keys[i].state);
        st = st ? st : mesh_buf_add(b, kf->keys[i].file_id, MESH_FILE_ID_BYTES);
    }
    const mesh_kdf_t *k = &kf->wraps[w].kdf;
    uint8_t kdf[4] = {k->kind, k->log2_n, k->r, k->p};
    st = st ? st : mesh_buf_add(b, kf->wraps[w].kek_id, MESH_KEK_ID_BYTES);
    st = st ? st : mesh_buf_add(b, kdf, 4);
    st = st ? st : mesh_buf_add(b, k->salt, MESH_KDF_SALT_BYTES);
    return st;
}

static mesh_status_t unwrap_locked(mesh_keyfile_t *kf, const mesh_kek_t *kek, const char *label,
                                   mesh_err_t *err);

mesh_status_t mesh_keyfile_unwrap(mesh_keyfile_t *kf, const mesh_kek_t *kek, const char *label,
                                  mesh_err_t *err)
{
    mesh__kek_rdlock(kek);
    mesh_status_t st = unwrap_locked(kf, kek, label, err);
    mesh__kek_unlock(kek);
    return st;
}

static mesh_status_t unwrap_locked(mesh_keyfile_t *kf, const mesh_kek_t *kek, const char *label,
                                   mesh_err_t *err)
{
    size_t w = 0;
    while (w < kf->nwraps && memcmp(kf->wraps[w].kek_id, mesh_kek_id(kek), MESH_KEK_ID_BYTES))
        w++;
    if (w == kf->nwraps) {
        char want[2 * MESH_KEK_ID_BYTES + 1], have[2 * MESH_KEK_ID_BYTES + 1];
        mesh_hex(kf->wraps[0].kek_id, MESH_KEK_ID_BYTES, want);
        mesh_hex(mesh_kek_id(kek), MESH_KEK_ID_BYTES, have);
        /* "domain:x" -> "domain x", "catalog" -> "the catalog" */
        char subject[96];
        if (strncmp(label, "domain:", 7) == 0)
            snprintf(subject, sizeof subject, "domain %s", label + 7);
        else
            snprintf(subject, sizeof subject, "the %s", label);
        return mesh_err_set(err, MESH_FORBIDDEN,
                            "the key-encryption key does not open %s's data key: wrong key? "
                            "(the key file was wrapped with KEK id %.12s..., the KEK from %s "
                            "has id %.12s...)",
                            subject, want, mesh_kek_label(kek), have);
    }
    mesh_buf_t aad;
    mesh_buf_init(&aad, 4096);
    uint8_t plain[MESH_KEYFILE_MAX_KEYS * MESH_KEY_BYTES];
    mesh_status_t st = wrap_aad(kf, w, label, &aad);
    if (st != MESH_OK) {
        mesh_buf_free(&aad);
        return mesh_err_set(err, st, "out of memory");
    }
    size_t n = kf->nkeys * MESH_KEY_BYTES;
    bool ok =
        mesh_aead_open_once(mesh__kek_secret(kek), kf->wraps[w].nonce, (const uint8_t *)aad.data,
                            aad.len, kf->wraps[w].sealed, n, plain, kf->wraps[w].tag);
    mesh_buf_free(&aad);
    if (!ok) {
        mesh_cleanse(plain, sizeof plain);
        return mesh_err_set(err, MESH_CORRUPT,
                            "the data key fails authentication under its KEK (the key file was "
                            "altered, or belongs to another domain)");
    }
    for (size_t i = 0; i < kf->nkeys && st == MESH_OK; i++) {
        mesh_key_unref(kf->keys[i].key);
        kf->keys[i].key = NULL;
        st = mesh_key_from(kf->keys[i].gen, kf->keys[i].file_id, plain + i * MESH_KEY_BYTES,
                           &kf->keys[i].key);
    }
    mesh_cleanse(plain, sizeof plain);
    if (st != MESH_OK) {
        mesh_keyfile_clear(kf);
        return mesh_err_set(err, st, "out of memory");
    }
    return MESH_OK;
}

mesh_status_t mesh_keyfile_encode(const mesh_keyfile_t *kf, const mesh_kek_t *const *keks,
                                  size_t nkeks, const char *label, mesh_buf_t *out, mesh_err_t *err)
{
    if (kf->nkeys < 1 || kf->nkeys > MESH_KEYFILE_MAX_KEYS || nkeks < 1 ||
        nkeks > MESH_KEYFILE_MAX_WRAPS)
        return mesh_err_set(err, MESH_INTERNAL, "key file with %zu keys, %zu KEKs", kf->nkeys,
                            nkeks);
    mesh_keyfile_t w;
    memcpy(&w, kf, sizeof w);
    w.nwraps = nkeks;
    uint8_t plain[MESH_KEYFILE_MAX_KEYS * MESH_KEY_BYTES];
    for (size_t i = 0; i < kf->nkeys; i++) {
        if (kf->keys[i].key == NULL) {
            mesh_cleanse(plain, sizeof plain);
            return mesh_err_set(err, MESH_INTERNAL, "key file entry %zu has no key", i);
        }
        memcpy(plain + i * MESH_KEY_BYTES, mesh_key_secret(kf->keys[i].key), MESH_KEY_BYTES);
    }
    size_t n = kf->nkeys * MESH_KEY_BYTES;
    mesh_buf_t aad;
    mesh_buf_init(&aad, 4096);
    mesh_status_t st = MESH_OK;
    for (size_t k = 0; k < nkeks && st == MESH_OK; k++) {
        mesh__kek_rdlock(keks[k]);
        memcpy(w.wraps[k].kek_id, mesh_kek_id(keks[k]), MESH_KEK_ID_BYTES);
        w.wraps[k].kdf = *mesh_kek_kdf(keks[k]);
        if ((st = mesh_random(w.wraps[k].nonce, MESH_AEAD_NONCE_BYTES)) == MESH_OK &&
            (st = wrap_aad(&w, k, label, &aad)) == MESH_OK &&
            !mesh_aead_seal_once(mesh__kek_secret(keks[k]), w.wraps[k].nonce,
                                 (const uint8_t *)aad.data, aad.len, plain, n, w.wraps[k].sealed,
                                 w.wraps[k].tag))
            st = MESH_INTERNAL;
        mesh__kek_unlock(keks[k]);
    }
    mesh_cleanse(plain, sizeof plain);
    mesh_buf_free(&aad);
    if (st != MESH_OK)
        return mesh_err_set(err, st, "cannot seal the key file");
    uint8_t file[MESH_KEYFILE_MAX_BYTES];
    size_t len = file_size(w.nkeys, w.nwraps);
    memset(file, 0, sizeof file);
    memcpy(file, KF_MAGIC, 8);
    file[8] = (uint8_t)w.kind;
    file[9] = (uint8_t)w.nkeys;
    file[10] = (uint8_t)w.nwraps;
    uint8_t *q = file + KF_HEADER;
    for (size_t i = 0; i < w.nkeys; i++, q += KF_KEY_ENTRY) {
        put32(q, w.keys[i].gen);
        q[4] = w.keys[i].state;
        memcpy(q + 8, w.keys[i].file_id, MESH_FILE_ID_BYTES);
    }
    for (size_t k = 0; k < w.nwraps; k++) {
        memcpy(q, w.wraps[k].kek_id, MESH_KEK_ID_BYTES);
        q += MESH_KEK_ID_BYTES;
        q[0] = w.wraps[k].kdf.kind;
        q[1] = w.wraps[k].kdf.log2_n;
        q[2] = w.wraps[k].kdf.r;
        q[3] = w.wraps[k].kdf.p;
        q += 4;
        memcpy(q, w.wraps[k].kdf.salt, MESH_KDF_SALT_BYTES);
        q += MESH_KDF_SALT_BYTES;
        memcpy(q, w.wraps[k].nonce, MESH_AEAD_NONCE_BYTES);
        q += MESH_AEAD_NONCE_BYTES;
        memcpy(q, w.wraps[k].sealed, n);
        q += n;
        memcpy(q, w.wraps[k].tag, MESH_AEAD_TAG_BYTES);
        q += MESH_AEAD_TAG_BYTES;
    }
    put32(q, mesh_crc32c(0, file, len - 4));
    mesh_buf_reset(out);
    return mesh_buf_add(out, file, len) == MESH_OK ? MESH_OK
                                                   : mesh_err_set(err, MESH_NOMEM, "out of memory");
}

void mesh_keyfile_clear(mesh_keyfile_t *kf)
{
    for (size_t i = 0; i < MESH_KEYFILE_MAX_KEYS; i++) {
        mesh_key_unref(kf->keys[i].key);
        kf->keys[i].key = NULL;
    }
}

static mesh_status_t read_small(const char *path, uint8_t *buf, size_t cap, size_t *n,
                                mesh_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mesh_err_set(err, errno == ENOENT ? MESH_NOT_FOUND : MESH_IO, "%s: %s", path,
                            strerror(errno));
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return mesh_err_set(err, MESH_IO, "%s: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len == cap) {
            uint8_t extra;
            ssize_t more = read(fd, &extra, 1);
            close(fd);
            if (more != 0)
                return mesh_err_set(err, MESH_CORRUPT, "%s: larger than %zu bytes", path, cap);
            *n = len;
            return MESH_OK;
        }
    }
    close(fd);
    *n = len;
    return MESH_OK;
}

mesh_status_t mesh_keyfile_peek(const char *path, mesh_keyfile_t *kf, mesh_err_t *err)
{
    uint8_t buf[MESH_KEYFILE_MAX_BYTES];
    size_t n = 0;
    mesh_status_t st = read_small(path, buf, sizeof buf, &n, err);
    if (st != MESH_OK)
        return st;
    if ((st = mesh_keyfile_parse(buf, n, kf, err)) != MESH_OK)
        mesh_err_prefix(err, "%s: ", path);
    return st;
}

mesh_status_t mesh_keyfile_load(const char *path, const mesh_kek_t *kek, const char *label,
                                mesh_keyfile_t *kf, bool *other_kek, mesh_err_t *err)
{
    mesh_status_t st = mesh_keyfile_peek(path, kf, err);
    if (st != MESH_OK)
        return st;
    if ((st = mesh_keyfile_unwrap(kf, kek, label, err)) != MESH_OK) {
        mesh_err_prefix(err, "%s: ", path);
        return st;
    }
    if (other_kek)
        *other_kek = kf->nwraps > 1;
    return MESH_OK;
}

mesh_status_t mesh_keyfile_save(const char *path, const mesh_keyfile_t *kf,
                                const mesh_kek_t *const *keks, size_t nkeks, const char *label,
                                mesh_err_t *err)
{
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_KEYFILE_MAX_BYTES);
    mesh_status_t st = mesh_keyfile_encode(kf, keks, nkeks, label, &b, err);
    if (st == MESH_OK)
        st = mesh_write_file_atomic(path, b.data, b.len, 0600, err);
    mesh_buf_free(&b);
    return st;
}
