/*
 * scram.c - SCRAM-SHA-256 verifiers. See scram.h.
 */
#include "auth/scram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"

static void salted(const char *password, size_t n, const uint8_t *salt, size_t salt_len, int iter,
                   uint8_t out[32])
{
    PKCS5_PBKDF2_HMAC(password, (int)n, salt, (int)salt_len, iter, EVP_sha256(), 32, out);
}

static void hmac(const uint8_t key[32], const char *msg, size_t n, uint8_t out[32])
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), key, 32, (const unsigned char *)msg, n, out, &len);
}

static void sha256(const uint8_t *in, size_t n, uint8_t out[32])
{
    unsigned int len = 32;
    EVP_Digest(in, n, out, &len, EVP_sha256(), NULL);
}

/* Standard base64 with padding; returns the length written (cap must hold 4/3 n + 1). */
static size_t b64(const uint8_t *in, size_t n, char *out)
{
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* Decodes exactly the base64 text s[0..n) (with padding) into out (at most cap bytes).
 * Returns the decoded length or -1. */
static long unb64(const char *s, size_t n, uint8_t *out, size_t cap)
{
    if (n == 0 || n % 4 != 0 || n / 4 * 3 > cap + 2 || n > 128)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/' || (c == '=' && i >= n - 2);
        if (!ok || (c != '=' && i > 0 && s[i - 1] == '='))
            return -1;
    }
    uint8_t tmp[100];
    int len = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
    if (len < 0)
        return -1;
    size_t pad = (s[n - 1] == '=') + (s[n - 2] == '=');
    size_t real = (size_t)len - pad;
    if (real > cap)
        return -1;
    memcpy(out, tmp, real);
    OPENSSL_cleanse(tmp, sizeof tmp);
    return (long)real;
}

mesh_status_t mesh_scram_make(const char *password, size_t n, int iterations, char *out, size_t cap,
                              mesh_err_t *err)
{
    if (n < MESH_PASSWORD_MIN)
        return mesh_err_set(err, MESH_INVALID, "a password needs at least %d characters",
                            MESH_PASSWORD_MIN);
    if (n > MESH_PASSWORD_MAX)
        return mesh_err_set(err, MESH_INVALID, "a password is at most %d bytes", MESH_PASSWORD_MAX);
    if (iterations < 1 || iterations > MESH_SCRAM_ITERATIONS_MAX)
        return mesh_err_set(err, MESH_INVALID, "iterations out of range");
    uint8_t salt[16], sp[32], ck[32], sk[32], server[32];
    mesh_random(salt, sizeof salt);
    salted(password, n, salt, sizeof salt, iterations, sp);
    hmac(sp, "Client Key", 10, ck);
    sha256(ck, sizeof ck, sk);
    hmac(sp, "Server Key", 10, server);
    char bs[32], bk[48], bv[48];
    b64(salt, sizeof salt, bs);
    b64(sk, sizeof sk, bk);
    b64(server, sizeof server, bv);
    int w = snprintf(out, cap, "SCRAM-SHA-256$%d:%s$%s:%s", iterations, bs, bk, bv);
    OPENSSL_cleanse(sp, sizeof sp);
    OPENSSL_cleanse(ck, sizeof ck);
    if (w < 0 || (size_t)w >= cap)
        return mesh_err_set(err, MESH_INTERNAL, "verifier does not fit");
    return MESH_OK;
}

mesh_status_t mesh_scram_parse(const char *text, size_t n, mesh_scram_t *out, mesh_err_t *err)
{
    static const char prefix[] = "SCRAM-SHA-256$";
    memset(out, 0, sizeof *out);
    if (n > MESH_SCRAM_VERIFIER_MAX)
        return mesh_err_set(err, MESH_PARSE, "verifier too long");
    if (n < sizeof prefix - 1 || memcmp(text, prefix, sizeof prefix - 1) != 0)
        return mesh_err_set(err, MESH_PARSE, "not a SCRAM-SHA-256 verifier");
    const char *p = text + sizeof prefix - 1, *end = text + n;
    /* iterations */
    long iter = 0;
    const char *q = p;
    while (q < end && *q >= '0' && *q <= '9' && q - p < 9)
        iter = iter * 10 + (*q++ - '0');
    if (q == p || q >= end || *q != ':' || iter < 1 || iter > MESH_SCRAM_ITERATIONS_MAX)
        return mesh_err_set(err, MESH_PARSE, "bad iteration count");
    out->iterations = (int)iter;
    /* salt */
    p = q + 1;
    q = memchr(p, '$', (size_t)(end - p));
    if (q == NULL)
        return mesh_err_set(err, MESH_PARSE, "no '$' after the salt");
    long l = unb64(p, (size_t)(q - p), out->salt, sizeof out->salt);
    if (l <= 0)
        return mesh_err_set(err, MESH_PARSE, "bad salt");
    out->salt_len = (size_t)l;
    /* StoredKey:ServerKey */
    p = q + 1;
    q = memchr(p, ':', (size_t)(end - p));
    if (q == NULL)
        return mesh_err_set(err, MESH_PARSE, "no ':' between the keys");
    if (unb64(p, (size_t)(q - p), out->stored_key, 32) != 32 ||
        unb64(q + 1, (size_t)(end - q - 1), out->server_key, 32) != 32)
        return mesh_err_set(err, MESH_PARSE, "bad key");
    return MESH_OK;
}

int mesh_scram_check(const mesh_scram_t *v, const char *password, size_t n)
{
    if (n > MESH_PASSWORD_MAX || v->iterations < 1)
        return 0;
    uint8_t sp[32], ck[32], sk[32];
    salted(password, n, v->salt, v->salt_len, v->iterations, sp);
    hmac(sp, "Client Key", 10, ck);
    sha256(ck, sizeof ck, sk);
    int ok = CRYPTO_memcmp(sk, v->stored_key, 32) == 0;
    OPENSSL_cleanse(sp, sizeof sp);
    OPENSSL_cleanse(ck, sizeof ck);
    OPENSSL_cleanse(sk, sizeof sk);
    return ok;
}

void mesh_scram_client_proof(const char *password, size_t n, const uint8_t *salt, size_t salt_len,
                             int iterations, const char *auth_message, uint8_t out[32])
{
    uint8_t sp[32], ck[32], sk[32], sig[32];
    salted(password, n, salt, salt_len, iterations, sp);
    hmac(sp, "Client Key", 10, ck);
    sha256(ck, sizeof ck, sk);
    hmac(sk, auth_message, strlen(auth_message), sig);
    for (int i = 0; i < 32; i++)
        out[i] = ck[i] ^ sig[i];
    OPENSSL_cleanse(sp, sizeof sp);
    OPENSSL_cleanse(ck, sizeof ck);
}
