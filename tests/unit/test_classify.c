/*
 * test_classify.c - discovery over sampled values (counts into suggestions, look-alikes
 * not flagged), the catalog's suggestions and approved tags (pending, approve, reject that
 * sticks, remove, drop, the policy version), a mask that targets a tag applying once the
 * tag is approved, and the classification API's request parser (negative cases).
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

#include <cmocka.h>

#include "auth/policy.h"
#include "catalog/classification.h"
#include "catalog/contract.h"
#include "catalog/security.h"
#include "classify/discover.h"
#include "classify/request.h"

static const char contract_yaml[] = "apiVersion: v3.1.0\n"
                                    "kind: DataContract\n"
                                    "id: urn:test:c\n"
                                    "version: 1.0.0\n"
                                    "status: active\n"
                                    "domain: clinic\n"
                                    "schema:\n"
                                    "  - name: people\n"
                                    "    properties:\n"
                                    "      - name: id\n"
                                    "        logicalType: integer\n"
                                    "        primaryKey: true\n"
                                    "      - name: contact\n"
                                    "        logicalType: string\n"
                                    "      - name: card\n"
                                    "        logicalType: string\n"
                                    "      - name: order_ref\n"
                                    "        logicalType: string\n"
                                    "      - name: born\n"
                                    "        logicalType: timestamp\n"
                                    "      - name: lat\n"
                                    "        logicalType: number\n"
                                    "      - name: flag\n"
                                    "        logicalType: boolean\n"
                                    "      - name: note\n"
                                    "        logicalType: string\n"
                                    "        classification: internal\n"
                                    "        tags: [free_text]\n";

static mesh_contract_t *contract(void)
{
    mesh_contract_t *c = NULL;
    mesh_err_t err;
    assert_int_equal(mesh_contract_parse(contract_yaml, strlen(contract_yaml), &c, &err), MESH_OK);
    return c;
}

static mesh_datum_t text(const char *s)
{
    mesh_datum_t d = {.type = MESH_V_TEXT, .s = s, .n = strlen(s)};
    return d;
}

static void test_discovery(void **state)
{
    (void)state;
    mesh_contract_t *c = contract();
    const mesh_product_t *p = &c->products[0];
    mesh_discovery_t d;
    assert_int_equal(mesh_discovery_init(&d, p, NULL), MESH_OK);
    static const char *const emails[] = {"ann@example.com", "bob@example.org",
                                         "cy@mail.example.net", "not an email"};
    static const char *const cards[] = {"4111111111111111", "5555 5555 5555 4444",
                                        "378282246310005", "6011111111111117"};
    static const char *const bad_cards[] = {"4111111111111112", "5555555555554445",
                                            "378282246310006", "6011111111111118"};
    for (int i = 0; i < 4; i++) {
        d.sampled++;
        mesh_datum_t id = {.type = MESH_V_INT, .i = i + 1};
        mesh_discovery_add(&d, 0, &id);
        mesh_datum_t v = text(emails[i]);
        mesh_discovery_add(&d, 1, &v);
        v = text(cards[i]);
        mesh_discovery_add(&d, 2, &v);
        v = text(bad_cards[i]);
        mesh_discovery_add(&d, 3, &v);
        /* a time column: its values are dates (1950-1980), and its name says birth */
        mesh_datum_t t = {.type = MESH_V_INT,
                          .i = (int64_t)(i * 300000000LL - 600000000LL) * 1000000000LL};
        mesh_discovery_add(&d, 4, &t);
        mesh_datum_t r = {.type = MESH_V_REAL, .d = 48.1 + i};
        mesh_discovery_add(&d, 5, &r);
        mesh_datum_t b = {.type = MESH_V_INT, .i = 1};
        mesh_discovery_add(&d, 6, &b);
        mesh_datum_t null = {.type = MESH_V_NULL};
        mesh_discovery_add(&d, 7, &null);
    }
    /* a value longer than any instance of a type is counted, never matched */
    char longv[MESH_DISCOVER_VALUE_MAX + 20];
    memset(longv, 'a', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    mesh_datum_t lv = text(longv);
    mesh_discovery_add(&d, 7, &lv);
    mesh_discovery_add(&d, 99, &lv); /* no such column: ignored */
    mesh_discovery_finish(&d, MESH_DISCOVER_MIN_CONF);
    /* id: nothing */
    assert_int_equal(d.cols[0].nmatches, 0);
    /* contact: 3 of 4 are emails, no name hint: 0.95 * 0.75 */
    assert_int_equal(d.cols[1].non_null, 4);
    assert_int_equal(d.cols[1].nmatches, 1);
    assert_int_equal(d.cols[1].matches[0].type, MESH_INFO_EMAIL);
    assert_int_equal(d.cols[1].matches[0].matched, 3);
    assert_true(d.cols[1].matches[0].confidence > 0.7 && d.cols[1].matches[0].confidence < 0.72);
    assert_int_equal(d.cols[1].level, MESH_LEVEL_CONFIDENTIAL);
    assert_true(d.cols[1].categories & MESH_CAT_PII);
    /* card: every value, and the name */
    assert_int_equal(d.cols[2].matches[0].type, MESH_INFO_CARD_NUMBER);
    assert_true(d.cols[2].matches[0].confidence == 1.0);
    assert_int_equal(d.cols[2].level, MESH_LEVEL_RESTRICTED);
    /* Luhn-invalid look-alikes: nothing */
    assert_int_equal(d.cols[3].nmatches, 0);
    assert_int_equal(d.cols[3].level, MESH_LEVEL_NONE);
    /* born (a timestamp): a date of birth */
    assert_int_equal(d.cols[4].nmatches, 1);
    assert_int_equal(d.cols[4].matches[0].type, MESH_INFO_DATE_OF_BIRTH);
    /* lat: a location by its name and range */
    assert_int_equal(d.cols[5].matches[0].type, MESH_INFO_LOCATION);
    /* flag (boolean), note (NULLs and a long value): nothing */
    assert_int_equal(d.cols[6].nmatches, 0);
    assert_int_equal(d.cols[7].non_null, 1);
    assert_int_equal(d.cols[7].nmatches, 0);
    /* a higher bar leaves out the weaker email guess */
    mesh_discovery_finish(&d, 0.8);
    assert_int_equal(d.cols[1].nmatches, 0);
    mesh_discovery_free(&d);
    mesh_discovery_free(NULL);
    mesh_contract_free(c);
}

/* ---- the catalog ---- */

typedef struct fixture {
    char dir[64];
    mesh_catalog_t *cat;
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
    snprintf(f->dir, sizeof f->dir, "/tmp/meshd-test-classify-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    char path[128];
    snprintf(path, sizeof path, "%s/catalog.db", f->dir);
    mesh_err_t err;
    if (mesh_catalog_open(path, &f->cat, &err) != MESH_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    mesh_catalog_close(f->cat);
    nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static mesh_suggestion_rec_t S(const char *col, const char *type, double conf)
{
    mesh_suggestion_rec_t s;
    memset(&s, 0, sizeof s);
    snprintf(s.column, sizeof s.column, "%s", col);
    snprintf(s.info_type, sizeof s.info_type, "%s", type);
    s.confidence = conf;
    s.matched = 9;
    s.non_null = 10;
    s.sampled = 10;
    snprintf(s.suggested_by, sizeof s.suggested_by, "olivia");
    return s;
}

static mesh_policy_t *load_policy(mesh_catalog_t *cat)
{
    mesh_policy_src_t src;
    mesh_err_t err;
    assert_int_equal(mesh_catalog_policy_load(cat, &src, &err), MESH_OK);
    mesh_policy_t *p;
    assert_int_equal(mesh_policy_build(&src, &p, &err), MESH_OK);
    return p;
}

/* The mask the view gives column col to an analyst. */
static mesh_mask_type_t mask_of(mesh_catalog_t *cat, const mesh_product_t *prod, size_t col)
{
    mesh_policy_t *p = load_policy(cat);
    mesh_identity_t id;
    memset(&id, 0, sizeof id);
    snprintf(id.name, sizeof id.name, "ana");
    snprintf(id.roles, sizeof id.roles, "reader,analyst");
    mesh_view_policy_t v;
    assert_int_equal(mesh_policy_view(p, &id, prod, false, &v, NULL), MESH_OK);
    assert_true(v.readable);
    mesh_mask_type_t m = v.mask[col];
    mesh_view_policy_free(&v);
    mesh_policy_put(p);
    return m;
}

static void test_catalog(void **state)
{
    fixture_t *f = *state;
    mesh_catalog_t *cat = f->cat;
    mesh_err_t err;
    mesh_contract_t *c = contract();
    const mesh_product_t *prod = &c->products[0];
    /* a mask for analysts on every PII column, and one on the contract's classification */
    mesh_mask_rec_t m;
    memset(&m, 0, sizeof m);
    snprintf(m.tag, sizeof m.tag, "pii"); /* tags compare without case */
    snprintf(m.type, sizeof m.type, "MASK");
    snprintf(m.roles, sizeof m.roles, "analyst");
    assert_int_equal(mesh_catalog_mask_add(cat, &m, &err), MESH_OK);
    snprintf(m.tag, sizeof m.tag, "internal");
    snprintf(m.type, sizeof m.type, "MASK_NULL");
    assert_int_equal(mesh_catalog_mask_add(cat, &m, &err), MESH_OK);
    assert_int_equal(mask_of(cat, prod, 1), MESH_MASK_NONE);
    assert_int_equal(mask_of(cat, prod, 7), MESH_MASK_NULL); /* the contract's classification */

    mesh_suggestion_rec_t s[] = {S("contact", "email", 0.95), S("card", "card_number", 1.0),
                                 S("born", "date_of_birth", 0.5), S("id", "phone", 0.4)};
    assert_int_equal(mesh_catalog_suggestions_put(cat, "clinic", "people", s, 4, &err), MESH_OK);
    mesh_suggestion_rec_t *l;
    size_t n;
    assert_int_equal(mesh_catalog_suggestions_list(cat, "clinic", "people", &l, &n, &err), MESH_OK);
    assert_int_equal(n, 4);
    assert_string_equal(l[0].status, "pending");
    free(l);
    int64_t v0 = mesh_catalog_policy_version(cat);

    /* reject id's; approve contact's only */
    const char *cols[] = {"id"};
    mesh_tag_select_t sel = {.columns = cols, .ncolumns = 1};
    size_t nrej;
    assert_int_equal(
        mesh_catalog_suggestions_reject(cat, "clinic", "people", &sel, "olivia", &nrej, &err),
        MESH_OK);
    assert_int_equal(nrej, 1);
    assert_int_equal(mesh_catalog_policy_version(cat), v0); /* nothing applied */
    const char *contact[] = {"CONTACT"};                    /* columns compare without case */
    sel = (mesh_tag_select_t){.columns = contact, .ncolumns = 1};
    mesh_coltag_rec_t *added;
    size_t nadded;
    assert_int_equal(mesh_catalog_suggestions_approve(cat, "clinic", "people", &sel, "olivia",
                                                      &added, &nadded, &err),
                     MESH_OK);
    assert_int_equal(nadded, 3); /* email, PII, confidential */
    bool cls = false;
    for (size_t i = 0; i < nadded; i++)
        cls |= added[i].classification && strcmp(added[i].tag, "confidential") == 0;
    assert_true(cls);
    free(added);
    assert_true(mesh_catalog_policy_version(cat) > v0);
    /* the mask targeting PII applies now */
    assert_int_equal(mask_of(cat, prod, 1), MESH_MASK_REDACT);
    assert_int_equal(mask_of(cat, prod, 2), MESH_MASK_NONE);

    /* approve the rest above 0.9: card only (born is 0.5) */
    sel = (mesh_tag_select_t){.min_confidence = 0.9};
    assert_int_equal(mesh_catalog_suggestions_approve(cat, "clinic", "people", &sel, "olivia",
                                                      &added, &nadded, &err),
                     MESH_OK);
    assert_int_equal(nadded, 3);
    free(added);
    assert_int_equal(mask_of(cat, prod, 2), MESH_MASK_REDACT);
    assert_int_equal(mask_of(cat, prod, 4), MESH_MASK_NONE);
    /* approving again adds nothing and does not bump */
    int64_t v1 = mesh_catalog_policy_version(cat);
    assert_int_equal(mesh_catalog_suggestions_approve(cat, "clinic", "people", &sel, "olivia",
                                                      &added, &nadded, &err),
                     MESH_OK);
    assert_int_equal(nadded, 0);
    free(added);
    assert_int_equal(mesh_catalog_policy_version(cat), v1);

    /* a new discovery: the rejected suggestion stays rejected, approved ones come back as
     * pending only when discovered again */
    assert_int_equal(mesh_catalog_suggestions_put(cat, "clinic", "people", s, 4, &err), MESH_OK);
    assert_int_equal(mesh_catalog_suggestions_list(cat, "clinic", "people", &l, &n, &err), MESH_OK);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i].column, "id") == 0) {
            assert_string_equal(l[i].status, "rejected");
            assert_string_equal(l[i].decided_by, "olivia");
        }
    free(l);

    /* the approved tags, in the policy and listed */
    mesh_coltag_rec_t *t;
    assert_int_equal(mesh_catalog_coltags_list(cat, "clinic", "people", &t, &n, &err), MESH_OK);
    assert_int_equal(n, 6);
    free(t);
    mesh_policy_t *p = load_policy(cat);
    assert_true(mesh_policy_column_has_tag(p, prod, &prod->cols[2], "CARD_NUMBER"));
    assert_true(mesh_policy_column_has_tag(p, prod, &prod->cols[7], "free_text"));
    assert_false(mesh_policy_column_has_tag(p, prod, &prod->cols[3], "PII"));
    mesh_policy_put(p);

    /* remove one tag: the mask no longer applies */
    const char *tags[] = {"PII"};
    sel = (mesh_tag_select_t){.columns = contact, .ncolumns = 1, .types = tags, .ntypes = 1};
    size_t nrem;
    assert_int_equal(mesh_catalog_coltags_remove(cat, "clinic", "people", &sel, &nrem, &err),
                     MESH_OK);
    assert_int_equal(nrem, 1);
    assert_int_equal(mask_of(cat, prod, 1), MESH_MASK_NONE);
    /* dropping the product forgets the rest */
    int64_t v2 = mesh_catalog_policy_version(cat);
    assert_int_equal(mesh_catalog_classification_drop(cat, "clinic", "people", &err), MESH_OK);
    assert_true(mesh_catalog_policy_version(cat) > v2);
    assert_int_equal(mesh_catalog_coltags_list(cat, NULL, NULL, &t, &n, &err), MESH_OK);
    assert_int_equal(n, 0);
    free(t);
    assert_int_equal(mesh_catalog_suggestions_list(cat, "clinic", NULL, &l, &n, &err), MESH_OK);
    assert_int_equal(n, 0);
    free(l);
    assert_int_equal(mask_of(cat, prod, 2), MESH_MASK_NONE);
    mesh_contract_free(c);
}

/* ---- requests ---- */

static void test_requests(void **state)
{
    (void)state;
    mesh_classify_req_t *r = malloc(sizeof *r);
    assert_non_null(r);
    mesh_err_t err;
#define OK(kind, body)                                                                             \
    assert_int_equal(mesh_classify_req_parse(kind, body, strlen(body), r, &err), MESH_OK)
#define BAD(kind, body, code)                                                                      \
    do {                                                                                           \
        if (mesh_classify_req_parse(kind, body, strlen(body), r, &err) != (code))                  \
            fail_msg("expected %s for %s", mesh_status_name(code), body);                          \
    } while (0)
    OK(MESH_CLASSIFY_DISCOVER, "");
    assert_int_equal(r->sample, 0);
    OK(MESH_CLASSIFY_DISCOVER, " \n");
    OK(MESH_CLASSIFY_DISCOVER, "{\"sample\": 500, \"min_confidence\": 0.5}");
    assert_int_equal(r->sample, 500);
    assert_true(r->min_confidence == 0.5);
    OK(MESH_CLASSIFY_APPROVE, "{\"columns\": [\"email\", \"phone\"], \"info_types\": [\"EMAIL\"]}");
    assert_int_equal(r->ncolumns, 2);
    assert_int_equal(r->ntypes, 1);
    mesh_tag_select_t sel;
    mesh_classify_req_select(r, &sel);
    assert_int_equal(sel.ncolumns, 2);
    assert_string_equal(sel.columns[1], "phone");
    assert_true(sel.min_confidence == 0);
    OK(MESH_CLASSIFY_REJECT, "{\"all\": true, \"min_confidence\": 1}");
    assert_true(r->all);
    OK(MESH_CLASSIFY_REMOVE, "{\"columns\": [\"email\"], \"tags\": [\"PII\", \"x:y-z.1\"]}");
    BAD(MESH_CLASSIFY_APPROVE, "", MESH_INVALID);
    BAD(MESH_CLASSIFY_APPROVE, "{}", MESH_INVALID);
    BAD(MESH_CLASSIFY_APPROVE, "{\"all\": false}", MESH_INVALID);
    BAD(MESH_CLASSIFY_APPROVE, "{\"all\": true, \"columns\": [\"a\"]}", MESH_INVALID);
    BAD(MESH_CLASSIFY_APPROVE, "{\"columns\": []}", MESH_INVALID);
    BAD(MESH_CLASSIFY_APPROVE, "{\"columns\": \"email\"}", MESH_INVALID);
    BAD(MESH_CLASSIFY_APPROVE, "{\"columns\": [\"Bad Name\"]}", MESH_INVALID);
    BAD(MESH_CLASSIFY_APPROVE, "{\"columns\": [1]}", MESH_INVALID);
    BAD(MESH_CLASSIFY_APPROVE, "{\"columns\": [\"a\\u0000b\"]}", MESH_PARSE); /* NUL: jansson */
    BAD(MESH_CLASSIFY_APPROVE, "{\"columns\": [\"a\"], \"info_types\": [\"shoe\"]}", MESH_INVALID);
    BAD(MESH_CLASSIFY_APPROVE, "{\"columns\": [\"a\"], \"tags\": [\"PII\"]}", MESH_INVALID);
    BAD(MESH_CLASSIFY_APPROVE, "{\"all\": 1}", MESH_INVALID);
    BAD(MESH_CLASSIFY_APPROVE, "{\"all\": true, \"min_confidence\": 1.5}", MESH_INVALID);
    BAD(MESH_CLASSIFY_APPROVE, "{\"all\": true, \"min_confidence\": \"0.5\"}", MESH_INVALID);
    BAD(MESH_CLASSIFY_APPROVE, "{\"all\": true, \"all\": true}", MESH_PARSE); /* duplicates */
    BAD(MESH_CLASSIFY_APPROVE, "[\"email\"]", MESH_INVALID);
    BAD(MESH_CLASSIFY_APPROVE, "{\"columns\": [\"a\"]", MESH_PARSE);
    BAD(MESH_CLASSIFY_REMOVE, "{\"columns\": [\"a\"], \"tags\": [\"bad tag\"]}", MESH_INVALID);
    BAD(MESH_CLASSIFY_REMOVE, "{\"columns\": [\"a\"], \"info_types\": [\"email\"]}", MESH_INVALID);
    BAD(MESH_CLASSIFY_DISCOVER, "{\"sample\": 0}", MESH_INVALID);
    BAD(MESH_CLASSIFY_DISCOVER, "{\"sample\": 100001}", MESH_INVALID);
    BAD(MESH_CLASSIFY_DISCOVER, "{\"sample\": 1.5}", MESH_INVALID);
    BAD(MESH_CLASSIFY_DISCOVER, "{\"columns\": [\"a\"]}", MESH_INVALID);
    BAD(MESH_CLASSIFY_DISCOVER, "null", MESH_PARSE);
    /* too many names, too large */
    mesh_buf_t b;
    mesh_buf_init(&b, 1024 * 1024);
    mesh_buf_adds(&b, "{\"columns\": [");
    for (int i = 0; i <= MESH_CLASSIFY_MAX_NAMES; i++)
        mesh_buf_printf(&b, "%s\"c%d\"", i ? "," : "", i);
    mesh_buf_adds(&b, "]}");
    BAD(MESH_CLASSIFY_APPROVE, b.data, MESH_INVALID);
    mesh_buf_reset(&b);
    mesh_buf_adds(&b, "{\"columns\": [\"");
    for (int i = 0; i < MESH_CLASSIFY_BODY_MAX; i++)
        mesh_buf_addc(&b, 'a');
    mesh_buf_adds(&b, "\"]}");
    BAD(MESH_CLASSIFY_APPROVE, b.data, MESH_TOO_LARGE);
    mesh_buf_free(&b);
    assert_false(mesh_tag_name_ok(""));
    assert_false(mesh_tag_name_ok("a b"));
    assert_true(mesh_tag_name_ok("PII"));
    free(r);
#undef OK
#undef BAD
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_discovery),
        cmocka_unit_test_setup_teardown(test_catalog, setup, teardown),
        cmocka_unit_test(test_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
