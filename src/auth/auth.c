/*
 * auth.c - token hashing, verification with a small cache, and role checks.
 */
#include "auth/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define CACHE_SLOTS  64
#define CACHE_TTL_NS (30 * MESH_NS_PER_SEC)

typedef struct cache_entry {
    char id[33];
    uint8_t salt[16];
    uint8_t hash[32];
    int64_t expires_ns;
    int64_t loaded_ns; /* monotonic */
    mesh_identity_t ident;
} cache_entry_t;

struct mesh_auth {
    mesh_catalog_t *cat;
    pthread_mutex_t lock;
    cache_entry_t cache[CACHE_SLOTS];
};

static void sha256(const void *a, size_t an, const void *b, size_t bn, uint8_t out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int len = 32;
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    if (an)
        EVP_DigestUpdate(ctx, a, an);
    if (bn)
        EVP_DigestUpdate(ctx, b, bn);
    EVP_DigestFinal_ex(ctx, out, &len);
    EVP_MD_CTX_free(ctx);
}

static void token_id(const char *token, size_t n, char out[33])
{
    uint8_t h[32];
    sha256(token, n, NULL, 0, h);
    mesh_hex(h, 16, out);
}

mesh_status_t mesh_auth_open(mesh_catalog_t *cat, mesh_auth_t **out, mesh_err_t *err)
{
    mesh_auth_t *a = calloc(1, sizeof *a);
    if (a == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    a->cat = cat;
    pthread_mutex_init(&a->lock, NULL);
    *out = a;
    return MESH_OK;
}

void mesh_auth_close(mesh_auth_t *a)
{
    if (a == NULL)
        return;
    OPENSSL_cleanse(a->cache, sizeof a->cache);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

mesh_status_t mesh_token_check_shape(const char *token, size_t n, mesh_err_t *err)
{
    if (n < MESH_TOKEN_MIN || n > MESH_TOKEN_MAX)
        return mesh_err_set(err, MESH_INVALID, "a token has %d to %d characters", MESH_TOKEN_MIN,
                            MESH_TOKEN_MAX);
    for (size_t i = 0; i < n; i++)
        if (token[i] <= ' ' || token[i] > '~')
            return mesh_err_set(err, MESH_INVALID,
                                "a token holds only printable ASCII without spaces");
    return MESH_OK;
}

mesh_status_t mesh_token_generate(char *out, size_t cap)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t raw[32];
    if (cap < 64 || mesh_random(raw, sizeof raw) != MESH_OK)
        return MESH_IO;
    size_t o = (size_t)snprintf(out, cap, "mesh_");
    /* 32 bytes -> 43 base64url characters (256 bits) */
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < sizeof raw; i++) {
        acc = (acc << 8) | raw[i];
        bits += 8;
        while (bits >= 6) {
            out[o++] = b64[(acc >> (bits - 6)) & 63];
            bits -= 6;
        }
    }
    if (bits > 0)
        out[o++] = b64[(acc << (6 - bits)) & 63];
    out[o] = '\0';
    OPENSSL_cleanse(raw, sizeof raw);
    return MESH_OK;
}

mesh_status_t mesh_auth_add_token(mesh_auth_t *a, int64_t principal_id, const char *token,
                                  int64_t expires_ns, const char *note, mesh_err_t *err)
{
    size_t n = strlen(token);
    mesh_status_t st = mesh_token_check_shape(token, n, err);
    if (st != MESH_OK)
        return st;
    mesh_token_rec_t rec;
    memset(&rec, 0, sizeof rec);
    token_id(token, n, rec.id);
    mesh_token_rec_t existing;
    bool known = mesh_catalog_token_get(a->cat, rec.id, &existing) == MESH_OK;
    if (known && existing.revoked_ns != 0)
        return mesh_err_set(err, MESH_CONFLICT,
                            "this token was revoked; it is not installed again");
    if (known && existing.principal_id != principal_id)
        return mesh_err_set(err, MESH_CONFLICT, "this token belongs to another principal");
    if (known) {
        uint8_t h[32];
        sha256(existing.salt, sizeof existing.salt, token, n, h);
        if (CRYPTO_memcmp(h, existing.hash, 32) == 0)
            return MESH_OK;
    }
    rec.principal_id = principal_id;
    if (mesh_random(rec.salt, sizeof rec.salt) != MESH_OK)
        return mesh_err_set(err, MESH_IO, "no randomness");
    sha256(rec.salt, sizeof rec.salt, token, n, rec.hash);
    rec.created_ns = mesh_now_ns();
    rec.expires_ns = expires_ns;
    snprintf(rec.note, sizeof rec.note, "%s", note ? note : "");
    st = mesh_catalog_token_put(a->cat, &rec, err);
    OPENSSL_cleanse(&rec, sizeof rec);
    return st;
}

mesh_status_t mesh_auth_verify(mesh_auth_t *a, const char *token, size_t n, mesh_identity_t *out)
{
    if (mesh_token_check_shape(token, n, NULL) != MESH_OK)
        return MESH_UNAUTHENTICATED;
    char id[33];
    token_id(token, n, id);
    size_t slot = 0;
    for (int i = 0; i < 8; i++)
        slot = slot * 16 + (size_t)(id[i] <= '9' ? id[i] - '0' : id[i] - 'a' + 10);
    slot %= CACHE_SLOTS;
    int64_t now_mono = mesh_mono_ns();
    cache_entry_t e;
    bool hit = false;
    pthread_mutex_lock(&a->lock);
    if (strcmp(a->cache[slot].id, id) == 0 && now_mono - a->cache[slot].loaded_ns < CACHE_TTL_NS) {
        e = a->cache[slot];
        hit = true;
    }
    pthread_mutex_unlock(&a->lock);
    if (!hit) {
        mesh_token_rec_t rec;
        if (mesh_catalog_token_get(a->cat, id, &rec) != MESH_OK || rec.revoked_ns != 0)
            return MESH_UNAUTHENTICATED;
        memset(&e, 0, sizeof e);
        memcpy(e.id, id, sizeof e.id);
        memcpy(e.salt, rec.salt, sizeof e.salt);
        memcpy(e.hash, rec.hash, sizeof e.hash);
        e.expires_ns = rec.expires_ns;
        e.loaded_ns = now_mono;
        mesh_principal_t p;
        if (mesh_catalog_principal_get(a->cat, rec.principal_id, &p) != MESH_OK)
            return MESH_UNAUTHENTICATED;
        e.ident.principal_id = p.id;
        snprintf(e.ident.name, sizeof e.ident.name, "%s", p.name);
        snprintf(e.ident.roles, sizeof e.ident.roles, "%s", p.roles);
        memcpy(e.ident.token_id, id, sizeof e.ident.token_id);
        pthread_mutex_lock(&a->lock);
        a->cache[slot] = e;
        pthread_mutex_unlock(&a->lock);
    }
    uint8_t h[32];
    sha256(e.salt, sizeof e.salt, token, n, h);
    bool ok =
        CRYPTO_memcmp(h, e.hash, 32) == 0 && (e.expires_ns == 0 || e.expires_ns > mesh_now_ns());
    OPENSSL_cleanse(h, sizeof h);
    if (!ok)
        return MESH_UNAUTHENTICATED;
    *out = e.ident;
    return MESH_OK;
}

/* True when the comma-separated list names role (blanks around names are ignored). */
static bool has_role(const char *roles, const char *role)
{
    size_t rl = strlen(role);
    const char *p = roles;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *comma = strchr(p, ',');
        size_t l = comma ? (size_t)(comma - p) : strlen(p);
        while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\t'))
            l--;
        if (l == rl && strncmp(p, role, rl) == 0)
            return true;
        if (!comma)
            break;
        p = comma + 1;
    }
    return false;
}

bool mesh_authz_check(const mesh_identity_t *id, mesh_action_t act, const char *domain,
                      const char *product)
{
    (void)domain;
    (void)product;
    if (id == NULL)
        return false;
    if (has_role(id->roles, "admin"))
        return true;
    switch (act) {
    case MESH_ACT_READ:
        return has_role(id->roles, "reader") || has_role(id->roles, "writer");
    case MESH_ACT_WRITE:
        return has_role(id->roles, "writer");
    case MESH_ACT_AUDIT:
        return has_role(id->roles, "auditor");
    default:
        return false;
    }
}
