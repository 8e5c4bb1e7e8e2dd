/*
 * test_scram.c - SCRAM-SHA-256 verifiers: the RFC 7677 example exchange, make/parse/check,
 * and malformed verifiers refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "auth/scram.h"

/* RFC 7677 section 3: user "user", password "pencil". */
static void test_rfc7677_proof(void **state)
{
    (void)state;
    const char *client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
    const char *server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                               "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const char *client_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    char auth[512];
    snprintf(auth, sizeof auth, "%s,%s,%s", client_first_bare, server_first, client_final);
    uint8_t salt[16];
    assert_int_equal(EVP_DecodeBlock(salt, (const unsigned char *)"W22ZaJ0SNY7soEsUEjb6gQ==", 24),
                     18); /* 16 bytes + 2 of padding */
    uint8_t proof[32];
    mesh_scram_client_proof("pencil", 6, salt, 16, 4096, auth, proof);
    char b64[64];
    EVP_EncodeBlock((unsigned char *)b64, proof, 32);
    assert_string_equal(b64, "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
}

static void test_make_parse_check(void **state)
{
    (void)state;
    char v[MESH_SCRAM_VERIFIER_MAX];
    mesh_err_t err;
    assert_int_equal(mesh_scram_make("correct horse", 13, 4096, v, sizeof v, &err), MESH_OK);
    assert_int_equal(strncmp(v, "SCRAM-SHA-256$4096:", 19), 0);
    mesh_scram_t s;
    assert_int_equal(mesh_scram_parse(v, strlen(v), &s, &err), MESH_OK);
    assert_int_equal(s.iterations, 4096);
    assert_int_equal(s.salt_len, 16);
    assert_true(mesh_scram_check(&s, "correct horse", 13));
    assert_false(mesh_scram_check(&s, "correct horsf", 13));
    assert_false(mesh_scram_check(&s, "correct hors", 12));
    assert_false(mesh_scram_check(&s, "", 0));
    /* two verifiers of the same password differ (random salts) */
    char v2[MESH_SCRAM_VERIFIER_MAX];
    assert_int_equal(mesh_scram_make("correct horse", 13, 4096, v2, sizeof v2, &err), MESH_OK);
    assert_string_not_equal(v, v2);
    /* a password too short or too long */
    assert_int_equal(mesh_scram_make("short", 5, 4096, v, sizeof v, &err), MESH_INVALID);
    static char big[MESH_PASSWORD_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    assert_int_equal(mesh_scram_make(big, sizeof big - 1, 4096, v, sizeof v, &err), MESH_INVALID);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1$4096:W22ZaJ0SNY7soEsUEjb6gQ==$a:b",
        "SCRAM-SHA-256$:W22ZaJ0SNY7soEsUEjb6gQ==$AAAA:AAAA",
        "SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$AAAA:AAAA",
        "SCRAM-SHA-256$4096W22ZaJ0SNY7soEsUEjb6gQ==",
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==",
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$AAAA",
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7so!sUEjb6gQ==$AAAA:AAAA",
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$AAAA:AAAA", /* keys are not 32 bytes */
        "SCRAM-SHA-256$4096:=22ZaJ0SNY7soEsUEjb6gQ==$AAAA:AAAA",
        "SCRAM-SHA-256$99999999999:W22ZaJ0SNY7soEsUEjb6gQ==$AAAA:AAAA",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mesh_scram_t s;
        mesh_err_t err;
        if (mesh_scram_parse(bad[i], strlen(bad[i]), &s, &err) != MESH_PARSE)
            fail_msg("accepted: %s", bad[i]);
    }
    /* longer than the bound */
    static char big[MESH_SCRAM_VERIFIER_MAX + 10];
    memset(big, 'A', sizeof big - 1);
    memcpy(big, "SCRAM-SHA-256$4096:", 19);
    mesh_scram_t s;
    mesh_err_t err;
    assert_int_equal(mesh_scram_parse(big, strlen(big), &s, &err), MESH_PARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7677_proof),
        cmocka_unit_test(test_make_parse_check),
        cmocka_unit_test(test_parse_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
