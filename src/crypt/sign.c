/*
 * sign.c - Ed25519 signing keys through OpenSSL 3's EVP interface (see sign.h).
 */
#include "crypt/sign.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/util.h"

#define SEED_BYTES 32

struct mesh_signkey {
    EVP_PKEY *pkey;
    uint8_t pub[MESH_SIGN_PUB_BYTES];
};

static mesh_status_t from_seed(const uint8_t seed[SEED_BYTES], mesh_signkey_t **out,
                               mesh_err_t *err)
{
    mesh_signkey_t *k = calloc(1, sizeof *k);
    if (k == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    size_t pl = sizeof k->pub;
    k->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, SEED_BYTES);
    if (k->pkey == NULL || EVP_PKEY_get_raw_public_key(k->pkey, k->pub, &pl) != 1 ||
        pl != sizeof k->pub) {
        mesh_signkey_free(k);
        return mesh_err_set(err, MESH_INTERNAL, "Ed25519 key: OpenSSL refused it");
    }
    *out = k;
    return MESH_OK;
}

mesh_status_t mesh_signkey_open(const char *path, mesh_signkey_t **out, mesh_err_t *err)
{
    uint8_t seed[SEED_BYTES];
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        /* exactly SEED_BYTES: one more byte means this is not our file */
        uint8_t extra[SEED_BYTES + 1];
        ssize_t r = read(fd, extra, sizeof extra);
        close(fd);
        if (r != SEED_BYTES) {
            OPENSSL_cleanse(extra, sizeof extra);
            return mesh_err_set(err, MESH_CORRUPT, "%s: not a node signing key (%zd bytes)", path,
                                r);
        }
        memcpy(seed, extra, SEED_BYTES);
        OPENSSL_cleanse(extra, sizeof extra);
    } else if (errno == ENOENT) {
        if (mesh_random(seed, sizeof seed) != MESH_OK)
            return mesh_err_set(err, MESH_INTERNAL, "no randomness for the node signing key");
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            OPENSSL_cleanse(seed, sizeof seed);
            return mesh_err_set(err, MESH_IO, "%s: %s", path, strerror(errno));
        }
        mesh_status_t st = mesh_write_all(fd, seed, sizeof seed);
        if (st == MESH_OK && fsync(fd) != 0)
            st = MESH_IO;
        close(fd);
        if (st != MESH_OK) {
            unlink(path);
            OPENSSL_cleanse(seed, sizeof seed);
            return mesh_err_set(err, MESH_IO, "%s: cannot write the node signing key", path);
        }
    } else {
        return mesh_err_set(err, MESH_IO, "%s: %s", path, strerror(errno));
    }
    mesh_status_t st = from_seed(seed, out, err);
    OPENSSL_cleanse(seed, sizeof seed);
    return st;
}

void mesh_signkey_free(mesh_signkey_t *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

void mesh_signkey_public(const mesh_signkey_t *k, uint8_t out[MESH_SIGN_PUB_BYTES])
{
    memcpy(out, k->pub, MESH_SIGN_PUB_BYTES);
}

mesh_status_t mesh_sign(const mesh_signkey_t *k, const void *msg, size_t n,
                        uint8_t sig[MESH_SIGN_SIG_BYTES])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t sl = MESH_SIGN_SIG_BYTES;
    int ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
             EVP_DigestSign(ctx, sig, &sl, msg, n) == 1 && sl == MESH_SIGN_SIG_BYTES;
    EVP_MD_CTX_free(ctx);
    return ok ? MESH_OK : MESH_INTERNAL;
}

bool mesh_sign_verify(const uint8_t pub[MESH_SIGN_PUB_BYTES], const void *msg, size_t n,
                      const uint8_t sig[MESH_SIGN_SIG_BYTES])
{
    EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, MESH_SIGN_PUB_BYTES);
    EVP_MD_CTX *ctx = pk ? EVP_MD_CTX_new() : NULL;
    bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
              EVP_DigestVerify(ctx, sig, MESH_SIGN_SIG_BYTES, msg, n) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    return ok;
}

/* What an envelope's signature covers: context | subject | '\n' | body. */
static mesh_status_t envelope_signed(const char *context, const char *subject, const void *body,
                                     size_t n, mesh_buf_t *b)
{
    mesh_status_t st = mesh_buf_adds(b, context);
    if (st == MESH_OK)
        st = mesh_buf_adds(b, subject);
    if (st == MESH_OK)
        st = mesh_buf_addc(b, '\n');
    if (st == MESH_OK)
        st = mesh_buf_add(b, body, n);
    return st;
}

mesh_status_t mesh_sign_envelope(const mesh_signkey_t *k, const char *context, const char *subject,
                                 const char magic[4], const void *body, size_t n, size_t max,
                                 mesh_buf_t *out)
{
    if (n > max || 4 + MESH_SIGN_SIG_BYTES > max - n)
        return MESH_TOO_LARGE;
    mesh_buf_t sb;
    mesh_buf_init(&sb, max + 1024);
    uint8_t sig[MESH_SIGN_SIG_BYTES];
    mesh_status_t st = envelope_signed(context, subject, body, n, &sb);
    if (st == MESH_OK)
        st = mesh_sign(k, sb.data, sb.len, sig);
    if (st == MESH_OK)
        st = mesh_buf_add(out, magic, 4);
    if (st == MESH_OK)
        st = mesh_buf_add(out, sig, sizeof sig);
    if (st == MESH_OK)
        st = mesh_buf_add(out, body, n);
    mesh_buf_free(&sb);
    return st;
}

bool mesh_sign_envelope_verify(const uint8_t pub[MESH_SIGN_PUB_BYTES], const char *context,
                               const char *subject, const char magic[4], const void *p, size_t n,
                               size_t max)
{
    if (n < 4 + MESH_SIGN_SIG_BYTES || n > max || memcmp(p, magic, 4) != 0)
        return false;
    const uint8_t *b = p;
    mesh_buf_t sb;
    mesh_buf_init(&sb, max + 1024);
    bool ok = envelope_signed(context, subject, b + 4 + MESH_SIGN_SIG_BYTES,
                              n - 4 - MESH_SIGN_SIG_BYTES, &sb) == MESH_OK &&
              mesh_sign_verify(pub, sb.data, sb.len, b + 4);
    mesh_buf_free(&sb);
    return ok;
}
