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

#include "auth/policy.h"
#include "auth/scram.h"
#include "catalog/security.h"
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

/* Failed logins per principal name and per address: after LIMIT_FREE failures within
 * LIMIT_WINDOW (LIMIT_FREE_ADDR per address), each further attempt waits
 * 2^(failures - LIMIT_FREE) seconds (at most
 * LIMIT_MAX_WAIT) before it is even checked. */
#define LIMIT_SLOTS     1024
#define LIMIT_FREE      5  /* per user name */
#define LIMIT_FREE_ADDR 20 /* per address: many users may share one (a NAT, a proxy) */
#define LIMIT_WINDOW    (15 * 60 * MESH_NS_PER_SEC)
#define LIMIT_MAX_WAIT  (15 * 60 * MESH_NS_PER_SEC)

typedef struct limit_entry {
    char key[72]; /* "u:" name or "a:" address */
    int failures;
    int64_t first_mono, until_mono;
} limit_entry_t;

struct mesh_auth {
    mesh_catalog_t *cat;
    pthread_mutex_t lock;
    cache_entry_t cache[CACHE_SLOTS];
    mesh_policy_t *policy; /* under lock */
    limit_entry_t limits[LIMIT_SLOTS];
    char dummy_verifier[MESH_SCRAM_VERIFIER_MAX]; /* checked for unknown users: same cost */
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

void mesh_token_id(const char *token, size_t n, char out[33])
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
    mesh_status_t st = mesh_auth_reload(a, err);
    if (st == MESH_OK)
        st = mesh_scram_make("no such user, no such password", 30, MESH_SCRAM_ITERATIONS,
                             a->dummy_verifier, sizeof a->dummy_verifier, err);
    if (st != MESH_OK) {
        mesh_auth_close(a);
        return st;
    }
    *out = a;
    return MESH_OK;
}

mesh_status_t mesh_auth_reload(mesh_auth_t *a, mesh_err_t *err)
{
    mesh_policy_src_t src;
    mesh_status_t st = mesh_catalog_policy_load(a->cat, &src, err);
    if (st != MESH_OK)
        return st;
    mesh_policy_t *p;
    if ((st = mesh_policy_build(&src, &p, err)) != MESH_OK) {
        mesh_policy_src_free(&src);
        return st;
    }
    pthread_mutex_lock(&a->lock);
    mesh_policy_t *old = a->policy;
    a->policy = p;
    /* identities (roles, disabled principals) are read again */
    memset(a->cache, 0, sizeof a->cache);
    pthread_mutex_unlock(&a->lock);
    mesh_policy_put(old);
    return MESH_OK;
}

mesh_policy_t *mesh_auth_policy(mesh_auth_t *a)
{
    pthread_mutex_lock(&a->lock);
    mesh_policy_t *p = mesh_policy_ref(a->policy);
    pthread_mutex_unlock(&a->lock);
    return p;
}

void mesh_auth_forget(mesh_auth_t *a)
{
    pthread_mutex_lock(&a->lock);
    OPENSSL_cleanse(a->cache, sizeof a->cache);
    pthread_mutex_unlock(&a->lock);
}

/* ---- failed-login limits ---- */

static limit_entry_t *limit_slot(mesh_auth_t *a, const char *key, bool create)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = key; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    for (size_t probe = 0; probe < 8; probe++) {
        limit_entry_t *e = &a->limits[(h + probe) % LIMIT_SLOTS];
        if (strcmp(e->key, key) == 0)
            return e;
        if (create && (e->key[0] == '\0' || mesh_mono_ns() - e->first_mono > LIMIT_WINDOW)) {
            memset(e, 0, sizeof *e);
            snprintf(e->key, sizeof e->key, "%s", key);
            return e;
        }
    }
    if (!create)
        return NULL;
    /* a full neighbourhood: the oldest entry goes */
    limit_entry_t *old = &a->limits[h % LIMIT_SLOTS];
    memset(old, 0, sizeof *old);
    snprintf(old->key, sizeof old->key, "%s", key);
    return old;
}

/* 0 when an attempt may be checked now, else the nanoseconds to wait. */
static int64_t limit_wait(mesh_auth_t *a, const char *key)
{
    limit_entry_t *e = limit_slot(a, key, false);
    int64_t now = mesh_mono_ns();
    if (e == NULL || now - e->first_mono > LIMIT_WINDOW)
        return 0;
    return e->until_mono > now ? e->until_mono - now : 0;
}

static void limit_fail(mesh_auth_t *a, const char *key)
{
    int free_tries = key[0] == 'a' ? LIMIT_FREE_ADDR : LIMIT_FREE;
    limit_entry_t *e = limit_slot(a, key, true);
    int64_t now = mesh_mono_ns();
    if (e->failures == 0 || now - e->first_mono > LIMIT_WINDOW) {
        e->failures = 0;
        e->first_mono = now;
    }
    e->failures++;
    if (e->failures >= free_tries) {
        int shift = e->failures - free_tries;
        int64_t wait = shift >= 10 ? LIMIT_MAX_WAIT : (MESH_NS_PER_SEC << shift);
        e->until_mono = now + (wait > LIMIT_MAX_WAIT ? LIMIT_MAX_WAIT : wait);
    }
}

static void limit_clear(mesh_auth_t *a, const char *key)
{
    limit_entry_t *e = limit_slot(a, key, false);
    if (e)
        memset(e, 0, sizeof *e);
}

mesh_status_t mesh_auth_login(mesh_auth_t *a, const char *name, const char *password, size_t n,
                              const char *addr, int64_t ttl_ns, char *token, size_t cap,
                              mesh_identity_t *who, int64_t *retry_ns, mesh_err_t *err)
{
    char ukey[72], akey[72];
    snprintf(ukey, sizeof ukey, "u:%s", name);
    snprintf(akey, sizeof akey, "a:%s", addr ? addr : "");
    *retry_ns = 0;
    pthread_mutex_lock(&a->lock);
    int64_t wu = limit_wait(a, ukey), wa = limit_wait(a, akey);
    pthread_mutex_unlock(&a->lock);
    if (wu > 0 || wa > 0) {
        *retry_ns = wu > wa ? wu : wa;
        return mesh_err_set(err, MESH_RATE_LIMITED,
                            "too many failed logins for this user or from this address; retry "
                            "in %lld s",
                            (long long)((*retry_ns + MESH_NS_PER_SEC - 1) / MESH_NS_PER_SEC));
    }
    mesh_principal_info_t p;
    char stored[MESH_SCRAM_VERIFIER_MAX] = "";
    bool known = mesh_catalog_principal_find(a->cat, name, &p) == MESH_OK;
    if (known)
        mesh_catalog_password_get(a->cat, p.id, stored, sizeof stored);
    /* an unknown user, or one without a password, costs the same as a wrong password */
    mesh_scram_t v;
    bool usable = known && stored[0] && !p.disabled &&
                  mesh_scram_parse(stored, strlen(stored), &v, NULL) == MESH_OK;
    if (!usable)
        mesh_scram_parse(a->dummy_verifier, strlen(a->dummy_verifier), &v, NULL);
    bool ok = mesh_scram_check(&v, password, n) && usable;
    OPENSSL_cleanse(&v, sizeof v);
    if (!ok) {
        pthread_mutex_lock(&a->lock);
        limit_fail(a, ukey);
        limit_fail(a, akey);
        pthread_mutex_unlock(&a->lock);
        return mesh_err_set(err, MESH_UNAUTHENTICATED, "wrong user name or password");
    }
    /* the user's count only: the address's decays with its window, or one valid account
     * would reset it between guesses at others */
    pthread_mutex_lock(&a->lock);
    limit_clear(a, ukey);
    pthread_mutex_unlock(&a->lock);
    mesh_status_t st = mesh_token_generate(token, cap);
    if (st != MESH_OK)
        return mesh_err_set(err, st, "no randomness");
    if ((st = mesh_auth_add_token(a, p.id, token, mesh_now_ns() + ttl_ns, "login", err)) !=
        MESH_OK) {
        OPENSSL_cleanse(token, cap);
        return st;
    }
    memset(who, 0, sizeof *who);
    who->principal_id = p.id;
    snprintf(who->name, sizeof who->name, "%s", p.name);
    snprintf(who->roles, sizeof who->roles, "%s", p.roles);
    return MESH_OK;
}

void mesh_auth_close(mesh_auth_t *a)
{
    if (a == NULL)
        return;
    mesh_policy_put(a->policy);
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
    mesh_token_id(token, n, rec.id);
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
    mesh_token_id(token, n, id);
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
        mesh_principal_info_t p;
        if (mesh_catalog_principal_info(a->cat, rec.principal_id, &p) != MESH_OK || p.disabled)
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
