/*
 * test_tls.c - the TLS module: the pin list parser (every accepted form and the refusals,
 * bounded), fingerprint text, the generated self-signed certificate (made once, reused with
 * the same fingerprint, replaced when about to expire, key file 0600, names), and the
 * start-up errors for bad certificate, key and CA files, which must name the option and file.
 * Uses a temporary directory.
 */
#define _GNU_SOURCE
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

#include "core/log.h"
#include "core/util.h"
#include "tls/tls.h"

int main(void);

static const char fp_hex[] = "3c3a60cb6788bda4da36f5782e421427ee8164cf8e5928486169c2f96a9c32d1";
static const char fp_colons[] = "3C:3A:60:CB:67:88:BD:A4:DA:36:F5:78:2E:42:14:27:EE:81:64:CF:8E:59:"
                                "28:48:61:69:C2:F9:6A:9C:32:D1";

/* ---- pins ---- */

static mesh_tls_info_t info_of(mesh_tls_t *t)
{
    mesh_tls_info_t i;
    mesh_tls_info_get(t, &i);
    return i;
}

static void test_pins_accepted(void **state)
{
    (void)state;
    uint8_t pins[MESH_TLS_MAX_PINS][MESH_TLS_FP_LEN], want[MESH_TLS_FP_LEN];
    assert_true(mesh_unhex(fp_hex, want, sizeof want));
    size_t n;
    mesh_err_t err;
    char text[MESH_TLS_PINS_MAX_TEXT + 64];

    snprintf(text, sizeof text, "sha256:%s", fp_hex);
    assert_int_equal(mesh_tls_pins_parse(text, pins, MESH_TLS_MAX_PINS, &n, &err), MESH_OK);
    assert_int_equal(n, 1);
    assert_memory_equal(pins[0], want, MESH_TLS_FP_LEN);

    /* openssl's spelling, any case of the prefix, spaces around items, two pins */
    snprintf(text, sizeof text, " SHA256:%s , sha256:%s ", fp_colons, fp_hex);
    assert_int_equal(mesh_tls_pins_parse(text, pins, MESH_TLS_MAX_PINS, &n, &err), MESH_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(pins[0], want, MESH_TLS_FP_LEN);
    assert_memory_equal(pins[1], want, MESH_TLS_FP_LEN);

    /* exactly the most pins */
    size_t len = 0;
    for (int i = 0; i < MESH_TLS_MAX_PINS; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "%ssha256:%s", i ? "," : "", fp_hex);
    assert_int_equal(mesh_tls_pins_parse(text, pins, MESH_TLS_MAX_PINS, &n, &err), MESH_OK);
    assert_int_equal(n, MESH_TLS_MAX_PINS);
}

static void expect_bad(const char *text, const char *why)
{
    uint8_t pins[MESH_TLS_MAX_PINS][MESH_TLS_FP_LEN];
    size_t n = 99;
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(mesh_tls_pins_parse(text, pins, MESH_TLS_MAX_PINS, &n, &err), MESH_INVALID);
    if (strstr(err.msg, why) == NULL)
        fail_msg("pin '%.80s': message '%s' lacks '%s'", text, err.msg, why);
}

static void test_pins_refused(void **state)
{
    (void)state;
    char text[4096];
    expect_bad("", "pin 1 is empty");
    expect_bad("   ", "pin 1 is empty");
    expect_bad(",", "pin 1 is empty");
    snprintf(text, sizeof text, "sha256:%s,", fp_hex);
    expect_bad(text, "pin 2 is empty");
    snprintf(text, sizeof text, "sha256:%s,,sha256:%s", fp_hex, fp_hex);
    expect_bad(text, "pin 2 is empty");
    expect_bad("sha256:", "64 hex digits");
    expect_bad(fp_hex, "expected sha256:HEX"); /* no prefix */
    snprintf(text, sizeof text, "sha1:%s", fp_hex);
    expect_bad(text, "expected sha256:HEX");
    snprintf(text, sizeof text, "sha256 %s", fp_hex);
    expect_bad(text, "expected sha256:HEX");
    snprintf(text, sizeof text, "sha256:%.63s", fp_hex); /* one digit short */
    expect_bad(text, "64 hex digits");
    snprintf(text, sizeof text, "sha256:%s0", fp_hex); /* one too many */
    expect_bad(text, "64 hex digits");
    snprintf(text, sizeof text, "sha256:%s", fp_hex);
    text[20] = 'g'; /* not hex */
    expect_bad(text, "64 hex digits");
    snprintf(text, sizeof text, "sha256:%s", fp_colons);
    text[7 + 2] = '-'; /* a wrong separator */
    expect_bad(text, "64 hex digits");
    snprintf(text, sizeof text, "sha256:%s", fp_colons);
    text[7 + 5] = 'A'; /* 95 characters, but not pairs and colons */
    expect_bad(text, "64 hex digits");
    snprintf(text, sizeof text, "sha256:%s:", fp_colons); /* a trailing colon */
    expect_bad(text, "64 hex digits");
    snprintf(text, sizeof text, "sha256:%s junk", fp_hex);
    expect_bad(text, "64 hex digits");
    snprintf(text, sizeof text, "sha256:%.32s %.32s", fp_hex, fp_hex + 32); /* a space inside */
    expect_bad(text, "64 hex digits");
    /* one pin too many */
    size_t len = 0;
    for (int i = 0; i <= MESH_TLS_MAX_PINS; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "%ssha256:%s", i ? "," : "", fp_hex);
    expect_bad(text, "more than 16 pins");
    /* longer than the limit, whatever it holds */
    memset(text, 'a', MESH_TLS_PINS_MAX_TEXT + 1);
    text[MESH_TLS_PINS_MAX_TEXT + 1] = '\0';
    expect_bad(text, "longer than 2048");
    /* control characters and bytes above ASCII are just not hex */
    snprintf(text, sizeof text, "sha256:\x01\xff%.62s", fp_hex);
    expect_bad(text, "64 hex digits");
}

static void test_fp_format_and_auth_parse(void **state)
{
    (void)state;
    uint8_t fp[MESH_TLS_FP_LEN];
    assert_true(mesh_unhex(fp_hex, fp, sizeof fp));
    char text[MESH_TLS_FP_TEXT];
    mesh_tls_fp_format(fp, text);
    assert_string_equal(text + 7, fp_hex);
    assert_memory_equal(text, "sha256:", 7);
    assert_int_equal(strlen(text), MESH_TLS_FP_TEXT - 1);
    mesh_tls_client_auth_t a;
    assert_true(mesh_tls_client_auth_parse("require", &a) && a == MESH_TLS_CLIENT_REQUIRE);
    assert_true(mesh_tls_client_auth_parse("optional", &a) && a == MESH_TLS_CLIENT_OPTIONAL);
    assert_true(mesh_tls_client_auth_parse("off", &a) && a == MESH_TLS_CLIENT_OFF);
    assert_false(mesh_tls_client_auth_parse("yes", &a));
}

/* ---- server contexts ---- */

typedef struct fixture {
    char dir[64];
} fixture_t;

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
    snprintf(f->dir, sizeof f->dir, "/tmp/meshd-test-tls-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    mesh_log_min_level = MESH_LOG_ERROR; /* the expected warnings */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static const char *const names[] = {"node-7", "localhost", "127.0.0.1", "::1",
                                    "NODE-7", "bad name!", "",          "10.1.2.3"};

static mesh_tls_server_opts_t gen_opts(const char *dir)
{
    return (mesh_tls_server_opts_t){.gen_dir = dir,
                                    .common_name = "node-7",
                                    .names = names,
                                    .nnames = MESH_ARRAY_LEN(names),
                                    .validity_days = 365,
                                    .renew_days = 30};
}

static void test_generated_and_reused(void **state)
{
    fixture_t *f = *state;
    char gen[128], path[160];
    snprintf(gen, sizeof gen, "%s/tls", f->dir);
    mesh_tls_server_opts_t o = gen_opts(gen);
    mesh_tls_t *t;
    mesh_err_t err;
    assert_int_equal(mesh_tls_server_create(&o, &t, &err), MESH_OK);
    mesh_tls_info_t first = info_of(t);
    mesh_tls_destroy(t);
    assert_true(first.generated);
    assert_true(first.renewed);
    assert_string_equal(first.sans, "DNS:node-7, DNS:localhost, IP:127.0.0.1, IP:::1, IP:10.1.2.3");
    assert_non_null(strstr(first.subject, "CN = node-7"));
    int64_t year = 365 * 86400 * MESH_NS_PER_SEC;
    assert_true(first.not_after_ns > mesh_now_ns() + year - 86400 * MESH_NS_PER_SEC);
    assert_true(first.not_after_ns < mesh_now_ns() + year + 86400 * MESH_NS_PER_SEC);

    /* the fingerprint is the certificate file's, the key is the owner's only */
    snprintf(path, sizeof path, "%s/cert.pem", gen);
    uint8_t fp[MESH_TLS_FP_LEN];
    char text[MESH_TLS_FP_TEXT];
    assert_int_equal(mesh_tls_file_fingerprint(path, fp, &err), MESH_OK);
    mesh_tls_fp_format(fp, text);
    assert_string_equal(text, first.fingerprint);
    snprintf(path, sizeof path, "%s/key.pem", gen);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(stat(gen, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);

    /* the next start reuses it */
    assert_int_equal(mesh_tls_server_create(&o, &t, &err), MESH_OK);
    assert_false(info_of(t).renewed);
    assert_string_equal(info_of(t).fingerprint, first.fingerprint);
    mesh_tls_destroy(t);

    /* one that expires within renew_days is replaced */
    o.renew_days = 400;
    assert_int_equal(mesh_tls_server_create(&o, &t, &err), MESH_OK);
    assert_true(info_of(t).renewed);
    assert_string_not_equal(info_of(t).fingerprint, first.fingerprint);
    mesh_tls_destroy(t);

    /* a generated certificate whose key went missing is an error, not a silent new one */
    o.renew_days = 30;
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mesh_tls_server_create(&o, &t, &err), MESH_INVALID);
    assert_non_null(strstr(err.msg, "key.pem is missing"));
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void expect_error(const mesh_tls_server_opts_t *o, const char *want1, const char *want2)
{
    mesh_tls_t *t = NULL;
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(mesh_tls_server_create(o, &t, &err), MESH_INVALID);
    assert_null(t);
    if (strstr(err.msg, want1) == NULL || (want2 && strstr(err.msg, want2) == NULL))
        fail_msg("message '%s' lacks '%s' / '%s'", err.msg, want1, want2 ? want2 : "");
}

static void test_bad_files(void **state)
{
    fixture_t *f = *state;
    char a[128], b[128], cert_a[160], key_a[160], key_b[160], junk[160], missing[160];
    snprintf(a, sizeof a, "%s/a", f->dir);
    snprintf(b, sizeof b, "%s/b", f->dir);
    mesh_tls_server_opts_t ga = gen_opts(a), gb = gen_opts(b);
    mesh_tls_t *t;
    mesh_err_t err;
    assert_int_equal(mesh_tls_server_create(&ga, &t, &err), MESH_OK);
    mesh_tls_destroy(t);
    assert_int_equal(mesh_tls_server_create(&gb, &t, &err), MESH_OK);
    mesh_tls_destroy(t);
    snprintf(cert_a, sizeof cert_a, "%s/cert.pem", a);
    snprintf(key_a, sizeof key_a, "%s/key.pem", a);
    snprintf(key_b, sizeof key_b, "%s/key.pem", b);
    snprintf(junk, sizeof junk, "%s/junk.pem", f->dir);
    snprintf(missing, sizeof missing, "%s/missing.pem", f->dir);
    write_text(junk, "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n");

    /* configured pair: works */
    mesh_tls_server_opts_t o = {.cert_file = cert_a, .key_file = key_a};
    assert_int_equal(mesh_tls_server_create(&o, &t, &err), MESH_OK);
    assert_false(info_of(t).generated);
    assert_string_equal(info_of(t).cert_file, cert_a);
    /* a reload puts another certificate in place; a bad one leaves the one in use */
    char fp_a[MESH_TLS_FP_TEXT], cert_b[4200];
    snprintf(fp_a, sizeof fp_a, "%s", info_of(t).fingerprint);
    snprintf(cert_b, sizeof cert_b, "%s/cert.pem", b);
    mesh_tls_server_opts_t ob = {.cert_file = cert_b, .key_file = key_b};
    assert_int_equal(mesh_tls_server_reload(t, &ob, &err), MESH_OK);
    assert_string_equal(info_of(t).cert_file, cert_b);
    assert_string_not_equal(info_of(t).fingerprint, fp_a);
    struct ssl_st *ssl = mesh_tls_new_ssl(t);
    assert_non_null(ssl);
    mesh_tls_free_ssl(ssl);
    mesh_tls_server_opts_t bad = {.cert_file = cert_a, .key_file = key_b};
    assert_int_not_equal(mesh_tls_server_reload(t, &bad, &err), MESH_OK);
    assert_string_equal(info_of(t).cert_file, cert_b);
    mesh_tls_destroy(t);

    o = (mesh_tls_server_opts_t){.cert_file = missing, .key_file = key_a};
    expect_error(&o, "tls_cert ", "missing.pem: No such file");
    o = (mesh_tls_server_opts_t){.cert_file = junk, .key_file = key_a};
    expect_error(&o, "tls_cert ", "junk.pem: no usable PEM certificate");
    o = (mesh_tls_server_opts_t){.cert_file = cert_a, .key_file = missing};
    expect_error(&o, "tls_key ", "missing.pem: No such file");
    o = (mesh_tls_server_opts_t){.cert_file = cert_a, .key_file = junk};
    expect_error(&o, "tls_key ", "junk.pem: not a usable PEM private key");
    o = (mesh_tls_server_opts_t){.cert_file = cert_a, .key_file = key_b};
    expect_error(&o, "b/key.pem does not match the certificate in tls_cert", "a/cert.pem");
    o = (mesh_tls_server_opts_t){.cert_file = cert_a};
    expect_error(&o, "a/cert.pem holds no usable private key", "set tls_key");
    o = (mesh_tls_server_opts_t){.key_file = key_a, .gen_dir = a};
    expect_error(&o, "tls_key is set but tls_cert is not", NULL);

    /* client certificates */
    o = (mesh_tls_server_opts_t){
        .cert_file = cert_a, .key_file = key_a, .client_auth = MESH_TLS_CLIENT_REQUIRE};
    expect_error(&o, "tls_client_auth = require needs tls_client_ca", NULL);
    o.client_ca_file = missing;
    expect_error(&o, "tls_client_ca ", "missing.pem: No such file");
    o.client_ca_file = junk;
    expect_error(&o, "tls_client_ca ", "junk.pem: no usable PEM CA certificate");
    o.client_ca_file = cert_a;
    o.client_auth = MESH_TLS_CLIENT_OPTIONAL;
    assert_int_equal(mesh_tls_server_create(&o, &t, &err), MESH_OK);
    assert_int_equal(info_of(t).client_auth, MESH_TLS_CLIENT_OPTIONAL);
    mesh_tls_destroy(t);
    mesh_tls_destroy(NULL);

    /* a file that is not a certificate has no fingerprint */
    uint8_t fp[MESH_TLS_FP_LEN];
    assert_int_equal(mesh_tls_file_fingerprint(junk, fp, &err), MESH_INVALID);
    assert_int_equal(mesh_tls_file_fingerprint(missing, fp, &err), MESH_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pins_accepted),
        cmocka_unit_test(test_pins_refused),
        cmocka_unit_test(test_fp_format_and_auth_parse),
        cmocka_unit_test_setup_teardown(test_generated_and_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
