/*
 * test_policy.c - access decisions: built-in roles, grants by scope and action, denies that
 * win, owners, write without read, columns, row filters (OR over roles, none = all rows),
 * mask precedence; mask functions; the access API's request parsers (negative cases).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/access_req.h"
#include "auth/policy.h"
#include "catalog/contract.h"

static mesh_identity_t who(const char *roles)
{
    mesh_identity_t id;
    memset(&id, 0, sizeof id);
    id.principal_id = 7;
    snprintf(id.name, sizeof id.name, "p");
    snprintf(id.roles, sizeof id.roles, "%s", roles);
    return id;
}

static mesh_grant_rec_t G(int64_t id, const char *role, bool deny, const char *act, const char *d,
                          const char *p, const char *cols)
{
    mesh_grant_rec_t g;
    memset(&g, 0, sizeof g);
    g.id = id;
    snprintf(g.role, sizeof g.role, "%s", role);
    g.deny = deny;
    snprintf(g.action, sizeof g.action, "%s", act);
    snprintf(g.domain, sizeof g.domain, "%s", d);
    snprintf(g.product, sizeof g.product, "%s", p);
    snprintf(g.columns, sizeof g.columns, "%s", cols);
    return g;
}

static mesh_policy_t *build(const mesh_grant_rec_t *g, size_t ng, const mesh_mask_rec_t *m,
                            size_t nm, const mesh_filter_rec_t *f, size_t nf)
{
    mesh_policy_src_t src;
    memset(&src, 0, sizeof src);
    src.version = 42;
    src.grants = calloc(ng + 1, sizeof *g);
    memcpy(src.grants, g, ng * sizeof *g);
    src.ngrants = ng;
    src.masks = calloc(nm + 1, sizeof *m);
    if (nm)
        memcpy(src.masks, m, nm * sizeof *m);
    src.nmasks = nm;
    src.filters = calloc(nf + 1, sizeof *f);
    if (nf)
        memcpy(src.filters, f, nf * sizeof *f);
    src.nfilters = nf;
    mesh_policy_t *p;
    assert_int_equal(mesh_policy_build(&src, &p, NULL), MESH_OK);
    return p;
}

static void test_decisions(void **state)
{
    (void)state;
    mesh_grant_rec_t g[] = {
        G(1, "analyst", false, "read", "icu", "vitals", ""),
        G(2, "device", false, "write", "factory", "", ""),
        G(3, "analyst", true, "read", "icu", "notes", ""),
        G(4, "icu-admin", false, "admin", "icu", "", ""),
        G(5, "blocked", true, "read", "icu", "", ""),
        G(6, "analyst", false, "read", "lab", "results", "a,b"),
        G(7, "weird", false, "fly", "", "", ""),
    };
    mesh_policy_t *p = build(g, 7, NULL, 0, NULL, 0);
    assert_int_equal(mesh_policy_version(p), 42);
    mesh_identity_t an = who("analyst"), dev = who("device"), ia = who("icu-admin"),
                    bl = who("reader,blocked"), none = who(""), wr = who("weird"),
                    au = who("auditor");
    mesh_decision_t d;
    assert_true(mesh_policy_decide(p, &an, MESH_ACT_READ, "icu", "vitals", false, &d));
    assert_non_null(strstr(d.why, "grant 1"));
    assert_int_equal(d.version, 42);
    assert_false(mesh_policy_decide(p, &an, MESH_ACT_WRITE, "icu", "vitals", false, &d));
    assert_false(mesh_policy_decide(p, &an, MESH_ACT_READ, "icu", "other", false, NULL));
    assert_false(mesh_policy_decide(p, &an, MESH_ACT_READ, "icu", NULL, false, NULL));
    assert_false(mesh_policy_decide(p, &an, MESH_ACT_READ, NULL, NULL, false, NULL));
    assert_true(mesh_policy_decide(p, &an, MESH_ACT_READ, "lab", "results", false, NULL));
    /* write without read */
    assert_true(mesh_policy_decide(p, &dev, MESH_ACT_WRITE, "factory", "telemetry", false, NULL));
    assert_false(mesh_policy_decide(p, &dev, MESH_ACT_READ, "factory", "telemetry", false, NULL));
    /* admin implies read and write on its scope only */
    assert_true(mesh_policy_decide(p, &ia, MESH_ACT_READ, "icu", "notes", false, NULL));
    assert_true(mesh_policy_decide(p, &ia, MESH_ACT_WRITE, "icu", NULL, false, NULL));
    assert_false(mesh_policy_decide(p, &ia, MESH_ACT_READ, "lab", "results", false, NULL));
    assert_false(mesh_policy_decide(p, &ia, MESH_ACT_AUDIT, NULL, NULL, false, NULL));
    /* a deny at the domain beats the built-in reader, but not elsewhere */
    assert_false(mesh_policy_decide(p, &bl, MESH_ACT_READ, "icu", "vitals", false, &d));
    assert_non_null(strstr(d.why, "denied by grant 5"));
    assert_true(mesh_policy_decide(p, &bl, MESH_ACT_READ, "lab", "results", false, NULL));
    /* owners administer their domain; a deny still wins */
    assert_true(mesh_policy_decide(p, &none, MESH_ACT_ADMIN, "lab", NULL, true, NULL));
    assert_false(mesh_policy_decide(p, &none, MESH_ACT_ADMIN, NULL, NULL, true, NULL));
    assert_false(mesh_policy_decide(p, &bl, MESH_ACT_READ, "icu", "x", true, NULL));
    /* nothing without grants; unknown actions grant nothing */
    assert_false(mesh_policy_decide(p, &none, MESH_ACT_READ, "icu", "vitals", false, NULL));
    assert_false(mesh_policy_decide(p, &wr, MESH_ACT_READ, "icu", "vitals", false, NULL));
    assert_true(mesh_policy_decide(p, &au, MESH_ACT_AUDIT, NULL, NULL, false, NULL));
    assert_false(mesh_policy_decide(p, &au, MESH_ACT_READ, "icu", "vitals", false, NULL));
    assert_false(mesh_policy_decide(p, NULL, MESH_ACT_READ, "icu", "vitals", false, NULL));
    /* listings */
    assert_true(mesh_policy_sees_domain(p, &an, "lab", false));
    assert_false(mesh_policy_sees_domain(p, &an, "factory", false));
    assert_true(mesh_policy_sees_domain(p, &dev, "factory", false));
    mesh_policy_put(p);
}

static mesh_product_t *product(void)
{
    static const char yaml[] = "apiVersion: v3.1.0\nkind: DataContract\nid: urn:t\nversion: 1.0.0\n"
                               "status: active\ndomain: icu\nschema:\n  - name: vitals\n"
                               "    properties:\n      - name: id\n        logicalType: string\n"
                               "        primaryKey: true\n        classification: restricted\n"
                               "      - name: ward\n        logicalType: string\n"
                               "      - name: name\n        logicalType: string\n"
                               "        tags: [PII]\n      - name: hr\n"
                               "        logicalType: integer\n";
    static mesh_contract_t *c;
    if (c == NULL) {
        mesh_err_t err;
        if (mesh_contract_parse(yaml, sizeof yaml - 1, &c, &err) != MESH_OK)
            fail_msg("%s", err.msg);
    }
    return &c->products[0];
}

static mesh_mask_rec_t M(int64_t id, const char *d, const char *p, const char *col, const char *tag,
                         const char *type, const char *roles, const char *except)
{
    mesh_mask_rec_t m;
    memset(&m, 0, sizeof m);
    m.id = id;
    snprintf(m.domain, sizeof m.domain, "%s", d);
    snprintf(m.product, sizeof m.product, "%s", p);
    snprintf(m.column, sizeof m.column, "%s", col);
    snprintf(m.tag, sizeof m.tag, "%s", tag);
    snprintf(m.type, sizeof m.type, "%s", type);
    snprintf(m.roles, sizeof m.roles, "%s", roles);
    snprintf(m.except, sizeof m.except, "%s", except);
    return m;
}

static mesh_filter_rec_t F(int64_t id, const char *role, const char *pred)
{
    mesh_filter_rec_t f;
    memset(&f, 0, sizeof f);
    f.id = id;
    snprintf(f.role, sizeof f.role, "%s", role);
    snprintf(f.domain, sizeof f.domain, "icu");
    snprintf(f.product, sizeof f.product, "vitals");
    snprintf(f.predicate, sizeof f.predicate, "%s", pred);
    return f;
}

static void test_views(void **state)
{
    (void)state;
    const mesh_product_t *prod = product();
    mesh_grant_rec_t g[] = {
        G(1, "ward-a", false, "read", "icu", "vitals", ""),
        G(2, "ward-b", false, "read", "icu", "", ""),
        G(3, "clerk", false, "read", "icu", "vitals", "id,hr"),
        G(4, "clerk", false, "read", "icu", "vitals", "ward"),
        G(5, "clerk", true, "read", "icu", "vitals", "hr"),
        G(6, "free", false, "read", "icu", "vitals", ""),
    };
    mesh_mask_rec_t m[] = {
        M(1, "", "", "", "PII", "MASK", "*", "doctor"),
        M(2, "icu", "vitals", "name", "", "MASK_NULL", "ward-b", ""),
        M(3, "icu", "", "", "restricted", "MASK_HASH", "ward-a,ward-b", ""),
        M(4, "icu", "", "", "restricted", "MASK_SHOW_LAST_4", "ward-a", ""),
    };
    mesh_filter_rec_t f[] = {F(1, "ward-a", "ward = 'A'"), F(2, "ward-b", "ward = 'B'"),
                             F(3, "ward-a", "hr > 0")};
    mesh_policy_t *p = build(g, 6, m, 4, f, 3);
    mesh_view_policy_t v;
    mesh_identity_t a = who("ward-a"), ab = who("ward-a,ward-b"), af = who("ward-a,free"),
                    cl = who("clerk"), doc = who("doctor,free"), none = who("");
    /* filters: both of ward-a's, OR-ed */
    assert_int_equal(mesh_policy_view(p, &a, prod, false, &v, NULL), MESH_OK);
    assert_true(v.readable);
    assert_int_equal(v.nfilters, 2);
    /* masks: the column policy beats the tag policies; the older tag policy wins */
    assert_int_equal(v.mask[0], MESH_MASK_HASH);
    assert_int_equal(v.mask[2], MESH_MASK_REDACT);
    assert_int_equal(v.mask[3], MESH_MASK_NONE);
    mesh_view_policy_free(&v);
    assert_int_equal(mesh_policy_view(p, &ab, prod, false, &v, NULL), MESH_OK);
    assert_int_equal(v.nfilters, 3);
    assert_int_equal(v.mask[2], MESH_MASK_NULL);
    mesh_view_policy_free(&v);
    /* a role that reads without a filter: every row */
    assert_int_equal(mesh_policy_view(p, &af, prod, false, &v, NULL), MESH_OK);
    assert_int_equal(v.nfilters, 0);
    mesh_view_policy_free(&v);
    /* an owner: every row and column; masks still apply */
    assert_int_equal(mesh_policy_view(p, &none, prod, true, &v, NULL), MESH_OK);
    assert_true(v.readable && v.nfilters == 0 && v.visible[0] && v.visible[3]);
    assert_int_equal(v.mask[2], MESH_MASK_REDACT);
    mesh_view_policy_free(&v);
    /* columns: the union of the grants, minus the denied */
    assert_int_equal(mesh_policy_view(p, &cl, prod, false, &v, NULL), MESH_OK);
    assert_true(v.readable);
    assert_true(v.visible[0] && v.visible[1] && !v.visible[2] && !v.visible[3]);
    mesh_view_policy_free(&v);
    /* excepted roles see clear values */
    assert_int_equal(mesh_policy_view(p, &doc, prod, false, &v, NULL), MESH_OK);
    assert_int_equal(v.mask[2], MESH_MASK_NONE);
    mesh_view_policy_free(&v);
    /* nothing granted: not readable */
    assert_int_equal(mesh_policy_view(p, &none, prod, false, &v, NULL), MESH_OK);
    assert_false(v.readable);
    mesh_view_policy_free(&v);
    mesh_policy_put(p);
}

static void test_mask_functions(void **state)
{
    (void)state;
    uint8_t key[32] = {1, 2, 3};
    char out[256];
    mesh_mask_text(MESH_MASK_REDACT, key, "Ab-12 é", 8, out, sizeof out);
    assert_string_equal(out, "Xx-nn x");
    mesh_mask_text(MESH_MASK_SHOW_LAST_4, key, "4111111111111111", 16, out, sizeof out);
    assert_string_equal(out, "xxxxxxxxxxxx1111");
    mesh_mask_text(MESH_MASK_SHOW_FIRST_4, key, "abc", 3, out, sizeof out);
    assert_string_equal(out, "abc");
    mesh_mask_text(MESH_MASK_SHOW_FIRST_4, key, "abcdef", 6, out, sizeof out);
    assert_string_equal(out, "abcdxx");
    char h1[80], h2[80];
    mesh_mask_text(MESH_MASK_HASH, key, "P001", 4, h1, sizeof h1);
    mesh_mask_text(MESH_MASK_HASH, key, "P001", 4, h2, sizeof h2);
    assert_string_equal(h1, h2);
    assert_int_equal(strlen(h1), 64);
    key[0] = 9;
    mesh_mask_text(MESH_MASK_HASH, key, "P001", 4, h2, sizeof h2);
    assert_string_not_equal(h1, h2);
    /* 2026-07-15T12:00:00Z -> 2026-01-01T00:00:00Z */
    assert_true(mesh_mask_year_ns(1784116800LL * 1000000000LL) == 1767225600LL * 1000000000LL);
    assert_int_equal(mesh_mask_type_parse("MASK_HASH"), MESH_MASK_HASH);
    assert_int_equal(mesh_mask_type_parse("mask_hash"), MESH_MASK_NONE);
    assert_true(mesh_roles_has(" a , b ", "b"));
    assert_false(mesh_roles_has("ab", "a"));
    assert_true(mesh_role_name_ok("ward-a_2"));
    assert_false(mesh_role_name_ok("Ward"));
    assert_false(mesh_role_name_ok("2x"));
}

static void test_request_parsers(void **state)
{
    (void)state;
    mesh_err_t err;
    mesh_grant_rec_t g;
    const char *bad_grants[] = {
        "",
        "[]",
        "{",
        "{\"role\":\"a\"}",
        "{\"role\":\"a\",\"action\":\"fly\"}",
        "{\"role\":\"A\",\"action\":\"read\"}",
        "{\"role\":\"a\",\"action\":\"read\",\"x\":1}",
        "{\"role\":\"a\",\"action\":\"read\",\"product\":\"p\"}",
        "{\"role\":\"a\",\"action\":\"write\",\"domain\":\"d\",\"product\":\"p\",\"columns\":["
        "\"c\"]}",
        "{\"role\":\"a\",\"action\":\"audit\",\"domain\":\"d\"}",
        "{\"role\":\"a\",\"action\":\"read\",\"domain\":\"d\",\"product\":\"p\",\"columns\":[1]}",
        "{\"role\":\"a\",\"action\":\"read\",\"deny\":\"yes\"}",
        "{\"role\":\"a\",\"role\":\"b\",\"action\":\"read\"}",
        "{\"role\":\"a\\u0000b\",\"action\":\"read\"}",
    };
    for (size_t i = 0; i < sizeof bad_grants / sizeof bad_grants[0]; i++)
        if (mesh_grant_req_parse(bad_grants[i], strlen(bad_grants[i]), &g, &err) == MESH_OK)
            fail_msg("accepted: %s", bad_grants[i]);
    const char *ok = "{\"role\":\"a\",\"action\":\"read\",\"domain\":\"icu\",\"product\":\"v\","
                     "\"columns\":[\"x\",\"y\"],\"deny\":true}";
    assert_int_equal(mesh_grant_req_parse(ok, strlen(ok), &g, &err), MESH_OK);
    assert_string_equal(g.columns, "x,y");
    assert_true(g.deny);
    mesh_mask_rec_t m;
    const char *bad_masks[] = {
        "{\"type\":\"MASK\",\"roles\":[\"*\"]}",
        "{\"column\":\"c\",\"tag\":\"t\",\"type\":\"MASK\",\"roles\":[\"*\"]}",
        "{\"column\":\"c\",\"type\":\"MASK\"}",
        "{\"column\":\"c\",\"type\":\"CUSTOM\",\"roles\":[\"*\"]}",
        "{\"column\":\"c\",\"type\":\"MASK\",\"expr\":\"1\",\"roles\":[\"*\"]}",
        "{\"column\":\"c\",\"type\":\"CUSTOM\",\"expr\":\"1\",\"roles\":[\"*\"]}",
        "{\"column\":\"c\",\"type\":\"MASK\",\"roles\":[\"a,b\"]}",
    };
    for (size_t i = 0; i < sizeof bad_masks / sizeof bad_masks[0]; i++)
        if (mesh_mask_req_parse(bad_masks[i], strlen(bad_masks[i]), &m, &err) == MESH_OK)
            fail_msg("accepted: %s", bad_masks[i]);
    mesh_principal_req_t pr;
    const char *bad_principals[] = {"{}",
                                    "{\"name\":\".x\"}",
                                    "{\"name\":\"x\",\"kind\":\"bot\"}",
                                    "{\"name\":\"x\",\"password\":\"short\"}",
                                    "{\"name\":\"x\",\"roles\":\"Admin\"}",
                                    "{\"name\":\"x\",\"disabled\":1}"};
    for (size_t i = 0; i < sizeof bad_principals / sizeof bad_principals[0]; i++)
        if (mesh_principal_req_parse(bad_principals[i], strlen(bad_principals[i]), true, &pr,
                                     &err) == MESH_OK)
            fail_msg("accepted: %s", bad_principals[i]);
    mesh_login_req_t l;
    const char *bad_logins[] = {"{\"user\":\"x\"}",
                                "{\"user\":\"x\",\"password\":\"y\",\"ttl\":\"x\"}",
                                "{\"user\":\"x\",\"password\":\"y\",\"ttl\":\"0s\"}"};
    for (size_t i = 0; i < sizeof bad_logins / sizeof bad_logins[0]; i++)
        if (mesh_login_req_parse(bad_logins[i], strlen(bad_logins[i]), &l, &err) == MESH_OK)
            fail_msg("accepted: %s", bad_logins[i]);
    /* too big */
    size_t big = 70 * 1024;
    char *b = malloc(big);
    memset(b, ' ', big);
    assert_int_equal(mesh_login_req_parse(b, big, &l, &err), MESH_TOO_LARGE);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decisions),
        cmocka_unit_test(test_views),
        cmocka_unit_test(test_mask_functions),
        cmocka_unit_test(test_request_parsers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
