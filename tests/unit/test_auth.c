/*
 * test_auth.c - API tokens (shape, generation, storage as salted hashes, verification with
 * and without the cache, expiry, revocation) and the role matrix of mesh_authz_check.
 * Uses a temporary catalog.db.
 */
#define _GNU_SOURCE
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "auth/policy.h"
#include "catalog/catalog.h"
#include "core/util.h"

int main(void);

typedef struct fixture {
    char dir[64];
    mesh_catalog_t *cat;
    mesh_auth_t *auth;
    int64_t admin, writer, reader, nobody;
} fixture_t;

/* Decisions of the built-in roles (an empty policy: no roles or grants of its own). */
static bool authz(const mesh_identity_t *id, mesh_action_t act, const char *domain,
                  const char *product)
{
    static mesh_policy_t *empty;
    if (empty == NULL) {
        mesh_policy_src_t src;
        memset(&src, 0, sizeof src);
        assert_int_equal(mesh_policy_build(&src, &empty, NULL), MESH_OK);
    }
    return mesh_policy_decide(empty, id, act, domain, product, false, NULL);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/meshd-test-auth-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    char path[128];
    snprintf(path, sizeof path, "%s/catalog.db", f->dir);
    mesh_err_t err;
    if (mesh_catalog_open(path, &f->cat, &err) != MESH_OK)
        return -1;
    if (mesh_auth_open(f->cat, &f->auth, &err) != MESH_OK)
        return -1;
    if (mesh_catalog_principal_put(f->cat, "root", "user", "admin", &f->admin, &err) != MESH_OK ||
        mesh_catalog_principal_put(f->cat, "ingest-svc", "service", "writer", &f->writer, &err) !=
            MESH_OK ||
        mesh_catalog_principal_put(f->cat, "analyst", "user", "reader", &f->reader, &err) !=
            MESH_OK ||
        mesh_catalog_principal_put(f->cat, "guest", "user", "", &f->nobody, &err) != MESH_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    mesh_auth_close(f->auth);
    mesh_catalog_close(f->cat);
    nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static mesh_status_t verify(mesh_auth_t *a, const char *token, mesh_identity_t *id)
{
    mesh_identity_t tmp;
    return mesh_auth_verify(a, token, strlen(token), id ? id : &tmp);
}

/* ---- shape and generation ------------------------------------------------------------------ */

static void test_shape(void **state)
{
    (void)state;
    char t[300];
    mesh_err_t err;
    memset(t, 'a', sizeof t);
    assert_int_equal(mesh_token_check_shape(t, 15, &err), MESH_INVALID);
    assert_non_null(strstr(err.msg, "16"));
    assert_int_equal(mesh_token_check_shape(t, 16, &err), MESH_OK);
    assert_int_equal(mesh_token_check_shape(t, 256, &err), MESH_OK);
    assert_int_equal(mesh_token_check_shape(t, 257, &err), MESH_INVALID);
    assert_int_equal(mesh_token_check_shape(t, 0, NULL), MESH_INVALID);
    const char bad_chars[] = {' ', '\t', '\n', '\0', 0x7f, (char)0x80, (char)0xC3, (char)0xFF};
    for (size_t i = 0; i < sizeof bad_chars; i++) {
        memset(t, 'a', 20);
        t[7] = bad_chars[i];
        mesh_err_clear(&err);
        assert_int_equal(mesh_token_check_shape(t, 20, &err), MESH_INVALID);
        assert_non_null(strstr(err.msg, "printable"));
    }
    /* every printable character except space is fine */
    for (int c = '!'; c <= '~'; c++) {
        memset(t, 'a', 20);
        t[3] = (char)c;
        assert_int_equal(mesh_token_check_shape(t, 20, NULL), MESH_OK);
    }
}

static void test_generate(void **state)
{
    (void)state;
    char seen[50][64];
    for (int i = 0; i < 50; i++) {
        char *t = seen[i];
        memset(t, 'Z', 64);
        assert_int_equal(mesh_token_generate(t, 64), MESH_OK);
        assert_int_equal(strlen(t), 48);
        assert_memory_equal(t, "mesh_", 5);
        for (size_t k = 5; k < 48; k++) {
            char c = t[k];
            assert_true((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || c == '-' || c == '_');
        }
        assert_int_equal(mesh_token_check_shape(t, strlen(t), NULL), MESH_OK);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(seen[j], t);
    }
    char small[63];
    assert_int_not_equal(mesh_token_generate(small, sizeof small), MESH_OK);
}

/* ---- storing and verifying ----------------------------------------------------------------- */

static void test_add_and_verify(void **state)
{
    fixture_t *f = *state;
    char tok[64];
    assert_int_equal(mesh_token_generate(tok, sizeof tok), MESH_OK);
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(mesh_auth_add_token(f->auth, f->writer, tok, 0, "ci", &err), MESH_OK);

    mesh_identity_t id;
    memset(&id, 0, sizeof id);
    assert_int_equal(verify(f->auth, tok, &id), MESH_OK);
    assert_int_equal(id.principal_id, f->writer);
    assert_string_equal(id.name, "ingest-svc");
    assert_string_equal(id.roles, "writer");
    assert_int_equal(strlen(id.token_id), 32);
    /* verified again (now from the cache): the same identity */
    mesh_identity_t id2;
    assert_int_equal(verify(f->auth, tok, &id2), MESH_OK);
    assert_memory_equal(&id, &id2, sizeof id);
    /* a fresh mesh_auth_t (no cache) agrees */
    mesh_auth_t *fresh;
    assert_int_equal(mesh_auth_open(f->cat, &fresh, &err), MESH_OK);
    assert_int_equal(verify(fresh, tok, &id2), MESH_OK);
    assert_int_equal(id2.principal_id, f->writer);
    mesh_auth_close(fresh);

    /* the catalog holds a salted hash, never the token */
    mesh_token_rec_t rec;
    assert_int_equal(mesh_catalog_token_get(f->cat, id.token_id, &rec), MESH_OK);
    assert_int_equal(rec.principal_id, f->writer);
    assert_string_equal(rec.note, "ci");
    assert_null(memmem(&rec, sizeof rec, tok, strlen(tok)));
    assert_null(memmem(&rec, sizeof rec, tok + 5, 16));
    uint8_t zero[16] = {0};
    assert_memory_not_equal(rec.salt, zero, sizeof zero);

    /* the token with a length one shorter (a prefix) is another token */
    assert_int_equal(mesh_auth_verify(f->auth, tok, strlen(tok) - 1, &id2), MESH_UNAUTHENTICATED);
}

static void test_wrong_tokens(void **state)
{
    fixture_t *f = *state;
    char tok[64];
    assert_int_equal(mesh_token_generate(tok, sizeof tok), MESH_OK);
    mesh_err_t err;
    assert_int_equal(mesh_auth_add_token(f->auth, f->reader, tok, 0, NULL, &err), MESH_OK);
    assert_int_equal(verify(f->auth, tok, NULL), MESH_OK); /* cached now */

    /* the same length, one character different, at every position */
    for (size_t i = 0; i < strlen(tok); i++) {
        char bad[64];
        memcpy(bad, tok, sizeof bad);
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        assert_int_equal(verify(f->auth, bad, NULL), MESH_UNAUTHENTICATED);
    }
    /* another well-formed token never stored */
    char other[64];
    assert_int_equal(mesh_token_generate(other, sizeof other), MESH_OK);
    assert_int_equal(verify(f->auth, other, NULL), MESH_UNAUTHENTICATED);
    /* shapes refused before any lookup */
    assert_int_equal(verify(f->auth, "", NULL), MESH_UNAUTHENTICATED);
    assert_int_equal(verify(f->auth, "short", NULL), MESH_UNAUTHENTICATED);
    assert_int_equal(verify(f->auth, "has a space in it ok", NULL), MESH_UNAUTHENTICATED);
    char huge[400];
    memset(huge, 'x', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    assert_int_equal(verify(f->auth, huge, NULL), MESH_UNAUTHENTICATED);
    /* the right token is still fine after all that */
    assert_int_equal(verify(f->auth, tok, NULL), MESH_OK);
}

static void test_add_refusals_and_repeats(void **state)
{
    fixture_t *f = *state;
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(mesh_auth_add_token(f->auth, f->admin, "too-short", 0, NULL, &err),
                     MESH_INVALID);
    assert_int_equal(
        mesh_auth_add_token(f->auth, f->admin, "has spaces in the token", 0, NULL, &err),
        MESH_INVALID);
    /* a caller-chosen token (e.g. --admin-token) */
    const char *mine = "my-own-admin-token-0123456789";
    assert_int_equal(mesh_auth_add_token(f->auth, f->admin, mine, 0, "configured", &err), MESH_OK);
    mesh_identity_t id;
    assert_int_equal(verify(f->auth, mine, &id), MESH_OK);
    mesh_token_rec_t before, after;
    assert_int_equal(mesh_catalog_token_get(f->cat, id.token_id, &before), MESH_OK);
    int64_t count = mesh_catalog_token_count(f->cat);
    /* adding it again leaves the stored record as it is */
    assert_int_equal(mesh_auth_add_token(f->auth, f->admin, mine, 0, "again", &err), MESH_OK);
    assert_int_equal(mesh_catalog_token_get(f->cat, id.token_id, &after), MESH_OK);
    assert_memory_equal(&before, &after, sizeof before);
    assert_int_equal(mesh_catalog_token_count(f->cat), count);
    assert_int_equal(verify(f->auth, mine, NULL), MESH_OK);
}

static void test_expiry(void **state)
{
    fixture_t *f = *state;
    mesh_err_t err;
    char past[64], future[64], soon[64];
    assert_int_equal(mesh_token_generate(past, sizeof past), MESH_OK);
    assert_int_equal(mesh_token_generate(future, sizeof future), MESH_OK);
    assert_int_equal(mesh_token_generate(soon, sizeof soon), MESH_OK);
    int64_t now = mesh_now_ns();
    assert_int_equal(mesh_auth_add_token(f->auth, f->reader, past, now - 1, NULL, &err), MESH_OK);
    assert_int_equal(
        mesh_auth_add_token(f->auth, f->reader, future, now + 3600 * MESH_NS_PER_SEC, NULL, &err),
        MESH_OK);
    assert_int_equal(
        mesh_auth_add_token(f->auth, f->reader, soon, now + 300 * 1000000LL, NULL, &err), MESH_OK);
    assert_int_equal(verify(f->auth, past, NULL), MESH_UNAUTHENTICATED);
    assert_int_equal(verify(f->auth, future, NULL), MESH_OK);
    assert_int_equal(verify(f->auth, soon, NULL), MESH_OK); /* now cached */
    sleep_ms(400);
    /* expiry is checked on every verification, cache hit or not */
    assert_int_equal(verify(f->auth, soon, NULL), MESH_UNAUTHENTICATED);
    assert_int_equal(verify(f->auth, future, NULL), MESH_OK);
}

static void test_revoked_uncached(void **state)
{
    fixture_t *f = *state;
    mesh_err_t err;
    char tok[64];
    assert_int_equal(mesh_token_generate(tok, sizeof tok), MESH_OK);
    assert_int_equal(mesh_auth_add_token(f->auth, f->writer, tok, 0, NULL, &err), MESH_OK);
    mesh_identity_t id;
    assert_int_equal(verify(f->auth, tok, &id), MESH_OK);
    /* revoke in the catalog */
    mesh_token_rec_t rec;
    assert_int_equal(mesh_catalog_token_get(f->cat, id.token_id, &rec), MESH_OK);
    rec.revoked_ns = mesh_now_ns();
    assert_int_equal(mesh_catalog_token_put(f->cat, &rec, &err), MESH_OK);
    /* a fresh mesh_auth_t reads the catalog: refused (the cached path catches up within the
     * cache TTL, too slow for a unit test) */
    mesh_auth_t *fresh;
    assert_int_equal(mesh_auth_open(f->cat, &fresh, &err), MESH_OK);
    assert_int_equal(verify(fresh, tok, NULL), MESH_UNAUTHENTICATED);
    mesh_auth_close(fresh);
}

static void test_principal_gone(void **state)
{
    fixture_t *f = *state;
    mesh_err_t err;
    char tok[64];
    assert_int_equal(mesh_token_generate(tok, sizeof tok), MESH_OK);
    /* a token whose principal does not exist authenticates nobody */
    assert_int_equal(mesh_auth_add_token(f->auth, 987654, tok, 0, NULL, &err), MESH_OK);
    assert_int_equal(verify(f->auth, tok, NULL), MESH_UNAUTHENTICATED);
}

/* ---- the cache under load ------------------------------------------------------------------ */

typedef struct vjob {
    fixture_t *f;
    char tokens[8][64];
    int64_t principal[8];
    int failures;
} vjob_t;

static void *verify_loop(void *arg)
{
    vjob_t *j = arg;
    for (int i = 0; i < 400; i++) {
        int k = i % 8;
        mesh_identity_t id;
        if (verify(j->f->auth, j->tokens[k], &id) != MESH_OK || id.principal_id != j->principal[k])
            j->failures++;
        char bad[64];
        memcpy(bad, j->tokens[k], sizeof bad);
        bad[10] ^= 1;
        if (verify(j->f->auth, bad, &id) != MESH_UNAUTHENTICATED)
            j->failures++;
    }
    return NULL;
}

static void test_threads(void **state)
{
    fixture_t *f = *state;
    mesh_err_t err;
    vjob_t jobs[4];
    int64_t who[4] = {f->admin, f->writer, f->reader, f->nobody};
    for (int t = 0; t < 4; t++) {
        jobs[t].f = f;
        jobs[t].failures = 0;
    }
    /* 8 tokens shared by all threads (several land in the same cache slot over many runs) */
    for (int k = 0; k < 8; k++) {
        char tok[64];
        assert_int_equal(mesh_token_generate(tok, sizeof tok), MESH_OK);
        assert_int_equal(mesh_auth_add_token(f->auth, who[k % 4], tok, 0, NULL, &err), MESH_OK);
        for (int t = 0; t < 4; t++) {
            memcpy(jobs[t].tokens[k], tok, sizeof tok);
            jobs[t].principal[k] = who[k % 4];
        }
    }
    pthread_t th[4];
    for (int t = 0; t < 4; t++)
        assert_int_equal(pthread_create(&th[t], NULL, verify_loop, &jobs[t]), 0);
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(jobs[t].failures, 0);
    }
}

/* ---- authorisation ------------------------------------------------------------------------- */

static mesh_identity_t ident(const char *roles)
{
    mesh_identity_t id;
    memset(&id, 0, sizeof id);
    id.principal_id = 1;
    snprintf(id.name, sizeof id.name, "x");
    snprintf(id.roles, sizeof id.roles, "%s", roles);
    return id;
}

static void test_authz_matrix(void **state)
{
    (void)state;
    struct {
        const char *roles;
        bool read, write, admin;
    } m[] = {
        {"admin", true, true, true},
        {"writer", true, true, false},
        {"reader", true, false, false},
        {"", false, false, false},
        {"reader,writer", true, true, false},
        {"writer,admin", true, true, true},
        {"auditor", false, false, false},
        {"readers", false, false, false}, /* whole names only */
        {"admins", false, false, false},
        {"Admin", false, false, false},
        {"read", false, false, false},
        {"xreader", false, false, false},
        {",reader", true, false, false},
        {"auditor,reader,", true, false, false},
    };
    const char *domains[] = {NULL, "factory-a"};
    const char *products[] = {NULL, "telemetry"};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        mesh_identity_t id = ident(m[i].roles);
        for (int d = 0; d < 2; d++)
            for (int p = 0; p < 2; p++) {
                if (!domains[d] && products[p])
                    continue;
                if (authz(&id, MESH_ACT_READ, domains[d], products[p]) != m[i].read ||
                    authz(&id, MESH_ACT_WRITE, domains[d], products[p]) != m[i].write ||
                    authz(&id, MESH_ACT_ADMIN, domains[d], products[p]) != m[i].admin)
                    print_message("roles '%s' wrong\n", m[i].roles);
                assert_true(authz(&id, MESH_ACT_READ, domains[d], products[p]) == m[i].read);
                assert_true(authz(&id, MESH_ACT_WRITE, domains[d], products[p]) == m[i].write);
                assert_true(authz(&id, MESH_ACT_ADMIN, domains[d], products[p]) == m[i].admin);
            }
    }
    /* no identity: nothing; an unknown action: nothing (deny by default) */
    assert_false(authz(NULL, MESH_ACT_READ, NULL, NULL));
    mesh_identity_t w = ident("writer");
    assert_false(authz(&w, (mesh_action_t)42, "d", NULL));
}

static void test_authz_through_verify(void **state)
{
    fixture_t *f = *state;
    mesh_err_t err;
    int64_t who[4] = {f->admin, f->writer, f->reader, f->nobody};
    bool can_write[4] = {true, true, false, false};
    bool can_read[4] = {true, true, true, false};
    for (int i = 0; i < 4; i++) {
        char tok[64];
        assert_int_equal(mesh_token_generate(tok, sizeof tok), MESH_OK);
        assert_int_equal(mesh_auth_add_token(f->auth, who[i], tok, 0, NULL, &err), MESH_OK);
        mesh_identity_t id;
        assert_int_equal(verify(f->auth, tok, &id), MESH_OK);
        assert_true(authz(&id, MESH_ACT_WRITE, "factory-a", "telemetry") == can_write[i]);
        assert_true(authz(&id, MESH_ACT_READ, "factory-a", NULL) == can_read[i]);
        assert_true(authz(&id, MESH_ACT_ADMIN, NULL, NULL) == (i == 0));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_generate),
        cmocka_unit_test_setup_teardown(test_add_and_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_refusals_and_repeats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoked_uncached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_principal_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
        cmocka_unit_test(test_authz_matrix),
        cmocka_unit_test_setup_teardown(test_authz_through_verify, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
