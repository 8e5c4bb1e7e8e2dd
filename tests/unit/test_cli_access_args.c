/*
 * test_cli_access_args.c - the command-line syntax of meshctl's access-control commands
 * (src/cli/access_args.c): grant scopes, a grant's words, role lists, column paths and ids;
 * what is accepted, what is refused and what the messages name.
 *
 * access_args.c lives in src/cli, which is not part of libmeshcore, so this test compiles it
 * in directly (like test_generate.c); it needs nothing from meshctl beyond that file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/cli/access_args.c"

int main(void);

/* ---- helpers ---- */

static mesh_cli_scope_t scope_ok(const char *s)
{
    mesh_cli_scope_t sc;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_cli_scope_parse(s, &sc, &err);
    if (st != MESH_OK)
        fail_msg("scope '%s' refused: %s", s, err.msg);
    return sc;
}

/* The scope is refused with a message holding want. */
static void scope_bad(const char *s, const char *want)
{
    mesh_cli_scope_t sc;
    mesh_err_t err;
    mesh_err_clear(&err);
    if (mesh_cli_scope_parse(s, &sc, &err) == MESH_OK)
        fail_msg("scope '%s' accepted", s);
    assert_int_equal(err.code, MESH_INVALID);
    if (strstr(err.msg, want) == NULL)
        fail_msg("scope '%s': '%s' does not say '%s'", s, err.msg, want);
}

static const char *fmt_scope(const char *s, char *out, size_t cap)
{
    mesh_cli_scope_t sc = scope_ok(s);
    return mesh_cli_scope_format(&sc, out, cap);
}

/* Parses the words of a grant split at spaces. */
static mesh_status_t grant(const char *words, mesh_cli_grant_t *g, mesh_err_t *err)
{
    static char buf[1024];
    const char *argv[16];
    int argc = 0;
    snprintf(buf, sizeof buf, "%s", words);
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t && argc < 16;
         t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    mesh_err_clear(err);
    return mesh_cli_grant_parse(argc, argv, g, err);
}

static void grant_bad(const char *words, const char *want)
{
    mesh_cli_grant_t g;
    mesh_err_t err;
    if (grant(words, &g, &err) == MESH_OK)
        fail_msg("grant '%s' accepted", words);
    if (strstr(err.msg, want) == NULL)
        fail_msg("grant '%s': '%s' does not say '%s'", words, err.msg, want);
}

static void roles_bad(const char *s, bool star, bool empty, const char *want)
{
    mesh_cli_names_t n;
    mesh_err_t err;
    mesh_err_clear(&err);
    if (mesh_cli_roles_parse(s, "--roles", star, empty, &n, &err) == MESH_OK)
        fail_msg("roles '%s' accepted", s);
    if (strstr(err.msg, want) == NULL)
        fail_msg("roles '%s': '%s' does not say '%s'", s, err.msg, want);
    assert_non_null(strstr(err.msg, "--roles"));
}

/* ---- scopes ---- */

static void test_scope_forms(void **state)
{
    (void)state;
    mesh_cli_scope_t s = scope_ok("*");
    assert_string_equal(s.domain, "");
    assert_string_equal(s.product, "");
    assert_int_equal(s.ncolumns, 0);
    s = scope_ok("icu");
    assert_string_equal(s.domain, "icu");
    assert_string_equal(s.product, "");
    s = scope_ok("icu-3.*");
    assert_string_equal(s.domain, "icu-3");
    assert_string_equal(s.product, "");
    s = scope_ok("icu.vitals");
    assert_string_equal(s.domain, "icu");
    assert_string_equal(s.product, "vitals");
    assert_int_equal(s.ncolumns, 0);
    s = scope_ok("icu.vitals:hr,spo2");
    assert_int_equal(s.ncolumns, 2);
    assert_string_equal(s.columns[0], "hr");
    assert_string_equal(s.columns[1], "spo2");
    s = scope_ok("icu.vitals(hr,spo2)");
    assert_int_equal(s.ncolumns, 2);
    assert_string_equal(s.columns[1], "spo2");
    s = scope_ok("icu.vitals( hr , Spo2 )"); /* blanks around names, a capital */
    assert_int_equal(s.ncolumns, 2);
    assert_string_equal(s.columns[0], "hr");
    assert_string_equal(s.columns[1], "Spo2");
    s = scope_ok("icu.vitals:_x");
    assert_string_equal(s.columns[0], "_x");
}

static void test_scope_format_round_trip(void **state)
{
    (void)state;
    char out[256];
    assert_string_equal(fmt_scope("*", out, sizeof out), "*");
    assert_string_equal(fmt_scope("icu", out, sizeof out), "icu");
    assert_string_equal(fmt_scope("icu.*", out, sizeof out), "icu");
    assert_string_equal(fmt_scope("icu.vitals", out, sizeof out), "icu.vitals");
    assert_string_equal(fmt_scope("icu.vitals( hr ,spo2)", out, sizeof out), "icu.vitals:hr,spo2");
    /* what is formatted parses back to the same scope */
    const char *all[] = {"*", "a", "a-b_c.*", "a.b", "a.b:c", "a.b(c,d,e)", "z9.y_8:X,_w"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        mesh_cli_scope_t a = scope_ok(all[i]);
        mesh_cli_scope_format(&a, out, sizeof out);
        mesh_cli_scope_t b = scope_ok(out);
        assert_memory_equal(&a, &b, sizeof a);
    }
    /* a small buffer: cut, ending in "..." */
    char small[8];
    assert_string_equal(fmt_scope("icu.vitals:hr", small, sizeof small), "icu....");
}

static void test_scope_refused(void **state)
{
    (void)state;
    scope_bad("", "empty scope");
    scope_bad(NULL, "empty scope");
    scope_bad(".", "'' is not a domain name");
    scope_bad(".vitals", "is not a domain name");
    scope_bad("ICU", "'ICU' is not a domain name");
    scope_bad("1cu", "not a domain name");
    scope_bad("**", "'**' is not a domain name");
    scope_bad("*.vitals", "'*' is not a domain name");
    scope_bad("icu.", "names no product");
    scope_bad("icu.Vitals", "'Vitals' is not a product name");
    scope_bad("icu.vi__tals", "is not a product name");
    scope_bad("icu-3.vi-tals", "is not a product name");
    scope_bad("icu.vitals.hr", "columns follow a ':'");
    scope_bad("icu:hr", "needs a product");
    scope_bad("icu(hr)", "needs a product");
    scope_bad("icu.vitals:", "empty column name");
    scope_bad("icu.vitals:hr,", "empty column name");
    scope_bad("icu.vitals:,hr", "empty column name");
    scope_bad("icu.vitals:hr,,spo2", "empty column name");
    scope_bad("icu.vitals: ", "empty column name");
    scope_bad("icu.vitals()", "empty column name");
    scope_bad("icu.vitals(hr", "ends with ')'");
    scope_bad("icu.vitals(hr))", "ends with ')'");
    scope_bad("icu.vitals((hr)", "ends with ')'");
    scope_bad("icu.vitals(hr)x", "ends with ')'");
    scope_bad("icu.vitals:hr,HR", "listed twice");
    scope_bad("icu.vitals:1hr", "'1hr' is not a column name");
    scope_bad("icu.vitals:hr:spo2", "'hr:spo2' is not a column name");
    scope_bad("icu.vitals:h r", "'h r' is not a column name");
    scope_bad("icu.vitals:hr;DROP", "is not a column name");
    scope_bad("icu.vitals\n", "is not a product name");
    /* lengths: 63 is a name, 64 is not */
    char d[128];
    memset(d, 'a', 63);
    d[63] = '\0';
    scope_ok(d);
    memset(d, 'a', 64);
    d[64] = '\0';
    scope_bad(d, "is not a domain name");
    memcpy(d, "icu.", 4);
    memset(d + 4, 'p', 63);
    d[67] = '\0';
    assert_string_equal(scope_ok(d).product + 62, "p");
    d[67] = 'p';
    d[68] = '\0';
    scope_bad(d, "is not a product name");
    /* at most 64 columns */
    char many[2048];
    size_t o = (size_t)snprintf(many, sizeof many, "icu.vitals:");
    for (int i = 0; i < 64; i++)
        o += (size_t)snprintf(many + o, sizeof many - o, "%sc%d", i ? "," : "", i);
    assert_int_equal(scope_ok(many).ncolumns, 64);
    snprintf(many + o, sizeof many - o, ",c64");
    scope_bad(many, "at most 64 columns");
    /* a long bad argument is quoted back shortened */
    char longbad[600];
    memset(longbad, 'Z', sizeof longbad - 1);
    longbad[sizeof longbad - 1] = '\0';
    mesh_cli_scope_t sc;
    mesh_err_t err;
    assert_int_equal(mesh_cli_scope_parse(longbad, &sc, &err), MESH_INVALID);
    assert_true(strlen(err.msg) < 200);
}

/* ---- grants ---- */

static void test_grant_forms(void **state)
{
    (void)state;
    mesh_cli_grant_t g;
    mesh_err_t err;
    assert_int_equal(grant("analyst read on icu.vitals", &g, &err), MESH_OK);
    assert_string_equal(g.role, "analyst");
    assert_string_equal(g.action, "read");
    assert_string_equal(g.scope.domain, "icu");
    assert_string_equal(g.scope.product, "vitals");
    assert_int_equal(grant("ward-a READ icu.vitals:hr,spo2", &g, &err), MESH_OK);
    assert_string_equal(g.action, "read");
    assert_int_equal(g.scope.ncolumns, 2);
    assert_int_equal(grant("ops Admin ON *", &g, &err), MESH_OK);
    assert_string_equal(g.action, "admin");
    assert_string_equal(g.scope.domain, "");
    assert_int_equal(grant("ingest write factory", &g, &err), MESH_OK);
    assert_string_equal(g.scope.domain, "factory");
    /* audit takes no scope, or the mesh */
    assert_int_equal(grant("compliance audit", &g, &err), MESH_OK);
    assert_string_equal(g.action, "audit");
    assert_string_equal(g.scope.domain, "");
    assert_int_equal(grant("compliance audit on *", &g, &err), MESH_OK);
    /* "on" alone is the scope: a domain called on */
    assert_int_equal(grant("r read on", &g, &err), MESH_OK);
    assert_string_equal(g.scope.domain, "on");
    assert_int_equal(grant("r read on on", &g, &err), MESH_OK);
    assert_string_equal(g.scope.domain, "on");
    /* roles called like subcommands or actions are roles */
    assert_int_equal(grant("list read icu", &g, &err), MESH_OK);
    assert_string_equal(g.role, "list");
}

static void test_grant_refused(void **state)
{
    (void)state;
    grant_bad("", "expected ROLE ACTION");
    grant_bad("analyst", "expected ROLE ACTION");
    grant_bad("Analyst read icu", "'Analyst' is not a role name");
    grant_bad("9lives read icu", "is not a role name");
    grant_bad("analyst fly icu", "'fly' is not an action: read, write, admin or audit");
    grant_bad("read analyst icu", "the role comes first");
    grant_bad("analyst read", "say where");
    grant_bad("analyst write", "'*' (the whole mesh)");
}

static void test_grant_refused_more(void **state)
{
    (void)state;
    grant_bad("analyst read icu vitals", "unexpected 'vitals' after the scope 'icu'");
    grant_bad("analyst read on icu.vitals hr", "unexpected 'hr'");
    grant_bad("analyst read a.txt b.txt c.txt", "quote '*'");
    grant_bad("analyst write icu.vitals:hr", "a column list goes with read only");
    grant_bad("analyst admin on icu.vitals(hr)", "a column list goes with read only");
    grant_bad("auditors audit icu", "audit is granted on the whole mesh only");
    grant_bad("analyst read icu.vitals.hr", "columns follow a ':'");
    grant_bad("analyst read on ICU", "'ICU' is not a domain name");
    grant_bad("analyst read on on on", "unexpected 'on'");
}

/* ---- role lists, column paths, ids ---- */

static void test_roles(void **state)
{
    (void)state;
    mesh_cli_names_t n;
    mesh_err_t err;
    assert_int_equal(mesh_cli_roles_parse("analyst", "--roles", false, false, &n, &err), MESH_OK);
    assert_int_equal(n.n, 1);
    assert_int_equal(mesh_cli_roles_parse(" a , b-c,d_e ", "--roles", false, false, &n, &err),
                     MESH_OK);
    assert_int_equal(n.n, 3);
    assert_string_equal(n.name[1], "b-c");
    assert_int_equal(mesh_cli_roles_parse(" * ", "--roles", true, false, &n, &err), MESH_OK);
    assert_int_equal(n.n, 1);
    assert_string_equal(n.name[0], "*");
    assert_int_equal(mesh_cli_roles_parse("", "--roles", false, true, &n, &err), MESH_OK);
    assert_int_equal(n.n, 0);
    roles_bad("", false, false, "no role given");
    roles_bad("  ", true, false, "no role given");
    roles_bad("*", false, true, "'*' (everyone) is not allowed");
    roles_bad("a,*", true, false, "stands alone");
    roles_bad("a,,b", false, false, "empty role name");
    roles_bad("a,", false, false, "empty role name");
    roles_bad("a,a", false, false, "listed twice");
    roles_bad("Admin", false, false, "'Admin' is not a role name");
    roles_bad("a b", false, false, "'a b' is not a role name");
    char many[1024];
    size_t o = 0;
    for (int i = 0; i < 65; i++)
        o += (size_t)snprintf(many + o, sizeof many - o, "%sr%d", i ? "," : "", i);
    roles_bad(many, false, false, "at most 64 roles");
    char big[128];
    memset(big, 'a', 64);
    big[64] = '\0';
    roles_bad(big, false, false, "is not a role name");
}

static void test_column_path(void **state)
{
    (void)state;
    char d[64], p[64], c[64];
    mesh_err_t err;
    assert_int_equal(mesh_cli_column_path_parse("icu.vitals.patient_id", d, p, c, &err), MESH_OK);
    assert_string_equal(d, "icu");
    assert_string_equal(p, "vitals");
    assert_string_equal(c, "patient_id");
    const char *bad[] = {"icu.vitals", "icu",         "",          "icu.vitals.a.b",
                         "icu..x",     "icu.vitals.", ".vitals.x", "ICU.v.c",
                         "icu.v__x.c", "icu.v.9c",    "*.*.c"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (mesh_cli_column_path_parse(bad[i], d, p, c, &err) == MESH_OK)
            fail_msg("column path '%s' accepted", bad[i]);
}

static void test_ids(void **state)
{
    (void)state;
    long long id;
    mesh_err_t err;
    assert_int_equal(mesh_cli_policy_id_parse("12", &id, &err), MESH_OK);
    assert_int_equal(id, 12);
    const char *bad[] = {"0", "-1", "x", "1.5", "", " 1", "1 ", "99999999999999999999", "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (mesh_cli_policy_id_parse(bad[i], &id, &err) == MESH_OK)
            fail_msg("policy id '%s' accepted", bad[i]);
        assert_non_null(strstr(err.msg, "not an id"));
    }
    assert_int_equal(mesh_cli_token_id_check("0123456789abcdef0123456789abcdef", &err), MESH_OK);
    assert_int_equal(mesh_cli_token_id_check("0123456789ABCDEF0123456789abcdef", &err),
                     MESH_INVALID);
    assert_int_equal(mesh_cli_token_id_check("0123456789abcdef0123456789abcde", &err),
                     MESH_INVALID);
    assert_non_null(strstr(err.msg, "is not a token id"));
    /* a token pasted by mistake is refused without being quoted back */
    const char *tok = "mesh_uu7ZRp08a9TlUDxxXcS8DzfN0Wf1PCjheIBECDVlyyI";
    assert_int_equal(mesh_cli_token_id_check(tok, &err), MESH_INVALID);
    assert_non_null(strstr(err.msg, "looks like a token"));
    assert_null(strstr(err.msg, "uu7Z"));
    const char *custom = "my-own-admin-token-from-the-vault-0123456789";
    assert_int_equal(mesh_cli_token_id_check(custom, &err), MESH_INVALID);
    assert_null(strstr(err.msg, "vault"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scope_forms),   cmocka_unit_test(test_scope_format_round_trip),
        cmocka_unit_test(test_scope_refused), cmocka_unit_test(test_grant_forms),
        cmocka_unit_test(test_grant_refused), cmocka_unit_test(test_grant_refused_more),
        cmocka_unit_test(test_roles),         cmocka_unit_test(test_column_path),
        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
