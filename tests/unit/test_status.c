/*
 * test_status.c - the status table (name, HTTP status, SQLSTATE, exit code, text of every
 * code), the reverse map from HTTP, and the error-detail helpers (set, prefix, clear,
 * truncation).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/status.h"

int main(void);

/* The expected table, written out by hand (not generated from MESH_STATUS_MAP) so a change
 * to the map shows up here. */
static const struct {
    mesh_status_t st;
    const char *name;
    int http;
    const char *sqlstate;
    int exit;
} want[] = {
    {MESH_OK, "OK", 200, "00000", 0},
    {MESH_INVALID, "INVALID", 400, "22023", 2},
    {MESH_PARSE, "PARSE", 400, "42601", 2},
    {MESH_VALIDATION, "VALIDATION", 400, "23514", 2},
    {MESH_UNAUTHENTICATED, "UNAUTHENTICATED", 401, "28000", 4},
    {MESH_FORBIDDEN, "FORBIDDEN", 403, "42501", 4},
    {MESH_NOT_FOUND, "NOT_FOUND", 404, "42P01", 3},
    {MESH_METHOD, "METHOD", 405, "0A000", 2},
    {MESH_CONFLICT, "CONFLICT", 409, "23505", 5},
    {MESH_BREAKING, "BREAKING", 409, "0A000", 5},
    {MESH_TOO_LARGE, "TOO_LARGE", 413, "54000", 2},
    {MESH_UNSUPPORTED, "UNSUPPORTED", 415, "0A000", 2},
    {MESH_LIMIT, "LIMIT", 422, "54000", 6},
    {MESH_TIMEOUT, "TIMEOUT", 408, "57014", 6},
    {MESH_BUSY, "BUSY", 503, "57P03", 7},
    {MESH_UNAVAILABLE, "UNAVAILABLE", 503, "08006", 7},
    {MESH_NOSPACE, "NOSPACE", 507, "53100", 7},
    {MESH_IO, "IO", 500, "58030", 8},
    {MESH_CORRUPT, "CORRUPT", 500, "XX001", 8},
    {MESH_NOMEM, "NOMEM", 500, "53200", 8},
    {MESH_INTERNAL, "INTERNAL", 500, "XX000", 8},
    {MESH_RATE_LIMITED, "RATE_LIMITED", 429, "53400", 7},
};

static void test_every_code_is_mapped(void **state)
{
    (void)state;
    assert_int_equal(sizeof want / sizeof want[0], MESH_STATUS__COUNT);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        mesh_status_t st = want[i].st;
        assert_int_equal((int)st, (int)i); /* the enum follows the table order */
        assert_string_equal(mesh_status_name(st), want[i].name);
        assert_int_equal(mesh_status_http(st), want[i].http);
        assert_string_equal(mesh_status_sqlstate(st), want[i].sqlstate);
        assert_int_equal(mesh_status_exit(st), want[i].exit);
        const char *text = mesh_status_text(st);
        assert_non_null(text);
        assert_true(strlen(text) > 0);
        /* a SQLSTATE is five characters of [0-9A-Z] */
        const char *ss = mesh_status_sqlstate(st);
        assert_int_equal(strlen(ss), 5);
        for (int k = 0; k < 5; k++)
            assert_true((ss[k] >= '0' && ss[k] <= '9') || (ss[k] >= 'A' && ss[k] <= 'Z'));
    }
}

static void test_only_ok_is_success(void **state)
{
    (void)state;
    for (int i = 0; i < MESH_STATUS__COUNT; i++) {
        if (i == MESH_OK) {
            assert_int_equal(mesh_status_exit((mesh_status_t)i), 0);
            continue;
        }
        assert_true(mesh_status_exit((mesh_status_t)i) > 0);
        assert_true(mesh_status_http((mesh_status_t)i) >= 400);
        assert_string_not_equal(mesh_status_sqlstate((mesh_status_t)i), "00000");
    }
}

static void test_texts_are_distinct(void **state)
{
    (void)state;
    for (int i = 0; i < MESH_STATUS__COUNT; i++)
        for (int j = i + 1; j < MESH_STATUS__COUNT; j++) {
            assert_string_not_equal(mesh_status_name((mesh_status_t)i),
                                    mesh_status_name((mesh_status_t)j));
            assert_string_not_equal(mesh_status_text((mesh_status_t)i),
                                    mesh_status_text((mesh_status_t)j));
        }
}

static void test_unknown_code_is_internal(void **state)
{
    (void)state;
    mesh_status_t bad[] = {MESH_STATUS__COUNT, (mesh_status_t)1000, (mesh_status_t)-1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_string_equal(mesh_status_name(bad[i]), "INTERNAL");
        assert_int_equal(mesh_status_http(bad[i]), 500);
        assert_string_equal(mesh_status_sqlstate(bad[i]), "XX000");
        assert_int_equal(mesh_status_exit(bad[i]), 8);
        assert_string_equal(mesh_status_text(bad[i]), mesh_status_text(MESH_INTERNAL));
    }
}

static void test_from_http(void **state)
{
    (void)state;
    /* every 2xx is success */
    assert_int_equal(mesh_status_from_http(200), MESH_OK);
    assert_int_equal(mesh_status_from_http(201), MESH_OK);
    assert_int_equal(mesh_status_from_http(204), MESH_OK);
    assert_int_equal(mesh_status_from_http(299), MESH_OK);
    /* statuses that belong to one code */
    assert_int_equal(mesh_status_from_http(401), MESH_UNAUTHENTICATED);
    assert_int_equal(mesh_status_from_http(403), MESH_FORBIDDEN);
    assert_int_equal(mesh_status_from_http(404), MESH_NOT_FOUND);
    assert_int_equal(mesh_status_from_http(405), MESH_METHOD);
    assert_int_equal(mesh_status_from_http(408), MESH_TIMEOUT);
    assert_int_equal(mesh_status_from_http(413), MESH_TOO_LARGE);
    assert_int_equal(mesh_status_from_http(415), MESH_UNSUPPORTED);
    assert_int_equal(mesh_status_from_http(422), MESH_LIMIT);
    assert_int_equal(mesh_status_from_http(507), MESH_NOSPACE);
    /* shared statuses map to a code with that status (and so to the right exit code) */
    int shared[] = {400, 409, 500, 503};
    for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++) {
        mesh_status_t st = mesh_status_from_http(shared[i]);
        assert_int_equal(mesh_status_http(st), shared[i]);
    }
    assert_int_equal(mesh_status_exit(mesh_status_from_http(400)), 2);
    assert_int_equal(mesh_status_exit(mesh_status_from_http(409)), 5);
    assert_int_equal(mesh_status_exit(mesh_status_from_http(500)), 8);
    assert_int_equal(mesh_status_exit(mesh_status_from_http(503)), 7);
    /* unknown statuses: client errors are INVALID, server errors INTERNAL */
    assert_int_equal(mesh_status_from_http(418), MESH_INVALID);
    assert_int_equal(mesh_status_from_http(429), MESH_RATE_LIMITED);
    assert_int_equal(mesh_status_from_http(418), MESH_INVALID);
    assert_int_equal(mesh_status_from_http(502), MESH_INTERNAL);
    assert_int_equal(mesh_status_from_http(599), MESH_INTERNAL);
    assert_int_equal(mesh_status_from_http(0), MESH_INVALID);
    assert_int_equal(mesh_status_from_http(302), MESH_INVALID);
    /* the round trip holds for every code whose HTTP status it owns alone */
    for (int i = 0; i < MESH_STATUS__COUNT; i++) {
        int http = mesh_status_http((mesh_status_t)i);
        int owners = 0;
        for (int j = 0; j < MESH_STATUS__COUNT; j++)
            owners += mesh_status_http((mesh_status_t)j) == http;
        if (owners == 1)
            assert_int_equal(mesh_status_from_http(http), i);
    }
}

static void test_err_set(void **state)
{
    (void)state;
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(err.code, MESH_OK);
    assert_string_equal(err.msg, "");
    assert_int_equal(mesh_err_set(&err, MESH_INVALID, "column %s: %d", "temp", 42), MESH_INVALID);
    assert_int_equal(err.code, MESH_INVALID);
    assert_string_equal(err.msg, "column temp: 42");
    /* NULL err: the code is still returned */
    assert_int_equal(mesh_err_set(NULL, MESH_CONFLICT, "x %d", 1), MESH_CONFLICT);
    mesh_err_prefix(NULL, "ctx: ");
    mesh_err_clear(NULL);
    /* a later set replaces the earlier one */
    mesh_err_set(&err, MESH_IO, "disk");
    assert_int_equal(err.code, MESH_IO);
    assert_string_equal(err.msg, "disk");
    mesh_err_clear(&err);
    assert_int_equal(err.code, MESH_OK);
    assert_string_equal(err.msg, "");
}

static void test_err_prefix(void **state)
{
    (void)state;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_err_set(&err, MESH_PARSE, "line %d: bad", 3);
    mesh_err_prefix(&err, "%s: ", "contract.yaml");
    assert_string_equal(err.msg, "contract.yaml: line 3: bad");
    assert_int_equal(err.code, MESH_PARSE); /* the code is kept */
    mesh_err_prefix(&err, "domain %s: ", "d1");
    assert_string_equal(err.msg, "domain d1: contract.yaml: line 3: bad");
    /* a prefix on an empty detail */
    mesh_err_clear(&err);
    mesh_err_prefix(&err, "only");
    assert_string_equal(err.msg, "only");
}

static void test_err_truncation(void **state)
{
    (void)state;
    mesh_err_t err;
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    mesh_err_set(&err, MESH_INVALID, "%s", big);
    assert_int_equal(strlen(err.msg), sizeof err.msg - 1);
    assert_int_equal(err.msg[0], 'x');

    /* a prefix onto a full message keeps the prefix and cuts the tail */
    mesh_err_prefix(&err, "PREFIX: ");
    assert_int_equal(strlen(err.msg), sizeof err.msg - 1);
    assert_memory_equal(err.msg, "PREFIX: xxx", 11);

    /* a prefix longer than the message buffer is cut, still NUL-terminated */
    mesh_err_set(&err, MESH_INVALID, "tail");
    mesh_err_prefix(&err, "%s", big);
    assert_true(strlen(err.msg) < sizeof err.msg);
    assert_int_equal(err.msg[0], 'x');
    assert_int_equal(err.code, MESH_INVALID);

    /* exactly filling the buffer */
    char fit[sizeof err.msg];
    memset(fit, 'y', sizeof fit - 1);
    fit[sizeof fit - 1] = '\0';
    mesh_err_set(&err, MESH_IO, "%s", fit);
    assert_string_equal(err.msg, fit);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_is_mapped),
        cmocka_unit_test(test_only_ok_is_success),
        cmocka_unit_test(test_texts_are_distinct),
        cmocka_unit_test(test_unknown_code_is_internal),
        cmocka_unit_test(test_from_http),
        cmocka_unit_test(test_err_set),
        cmocka_unit_test(test_err_prefix),
        cmocka_unit_test(test_err_truncation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
