/*
 * test_quality.c - the quality module over a real domain, without a server: the SQL each kind
 * of rule measures with, an evaluation of every kind of rule against rows whose outcome is
 * worked out by hand here, and the report, score and metrics built from it.
 */
#define _GNU_SOURCE
#include <ftw.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "catalog/catalog.h"
#include "catalog/registry.h"
#include "core/buf.h"
#include "core/util.h"
#include "ingest/batch.h"
#include "ingest/csv.h"
#include "quality/quality.h"
#include "query/query.h"
#include "store/domain.h"

int main(void);

#define CONTRACT                                                                                   \
    "apiVersion: v3.1.0\nkind: DataContract\nid: urn:t:readings\nversion: 1.2.0\n"                 \
    "status: active\ndomain: factory\nschema:\n  - name: readings\n"                               \
    "    quality:\n"                                                                               \
    "      - metric: rowCount\n        mustBeGreaterThan: 3\n"                                     \
    "      - id: unique_readings\n        metric: duplicateValues\n"                               \
    "        arguments:\n          properties: [device, ts]\n        mustBe: 0\n"                  \
    "      - type: sql\n        name: hot\n"                                                       \
    "        query: \"SELECT count(*) FROM {object} WHERE temp > 90\"\n"                           \
    "        mustBeLessOrEqualTo: 1\n"                                                             \
    "    properties:\n"                                                                            \
    "      - name: device\n        logicalType: string\n        primaryKey: true\n"                \
    "        primaryKeyPosition: 1\n"                                                              \
    "      - name: ts\n        logicalType: timestamp\n        primaryKey: true\n"                 \
    "        primaryKeyPosition: 2\n"                                                              \
    "      - name: temp\n        logicalType: number\n        quality:\n"                          \
    "          - metric: nullValues\n            mustBeLessThan: 20\n            unit: percent\n"  \
    "      - name: status\n        logicalType: string\n        quality:\n"                        \
    "          - metric: missingValues\n            arguments:\n"                                  \
    "              missingValues: [null, '', 'n/a']\n            mustBeLessOrEqualTo: 1\n"         \
    "          - metric: invalidValues\n            arguments:\n"                                  \
    "              validValues: [ok, warn, fail]\n            mustBe: 0\n"

/* Five rows: one temp NULL (20 %), two over 90, status 'n/a' once (missing) and 'bogus'
 * once (with 'n/a': two not among the valid values), no duplicate key. */
static const char rows[] = "device,ts,temp,status\n"
                           "d1,1,20,ok\n"
                           "d2,2,95,warn\n"
                           "d3,3,,n/a\n"
                           "d4,4,99,bogus\n"
                           "d5,5,30,ok\n";

typedef struct fixture {
    char dir[64];
    mesh_catalog_t *cat;
    mesh_registry_t *reg;
    mesh_qpool_t *pool;
    mesh_quality_t *q;
} fixture_t;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/mesh-quality-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    char path[128];
    snprintf(path, sizeof path, "%s/catalog.db", f->dir);
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_domain_opts_t o = {.idem_ttl_ns = 3600LL * MESH_NS_PER_SEC};
    mesh_domain_meta_t m = {.name = "factory"};
    if (mesh_catalog_open(path, &f->cat, &err) != MESH_OK ||
        mesh_registry_open(f->dir, f->cat, &o, &f->reg, &err) != MESH_OK ||
        mesh_registry_create_domain(f->reg, &m, &err) != MESH_OK)
        goto err;
    mesh_snapshot_t *s = mesh_registry_snapshot(f->reg);
    mesh_contract_result_t res;
    mesh_status_t st =
        mesh_domain_put_contract(s->doms[0].dom, CONTRACT, strlen(CONTRACT), &res, &err);
    mesh_buf_free(&res.changes);
    mesh_snapshot_put(s);
    if (st != MESH_OK)
        goto err;
    if (mesh_qpool_create(2, &f->pool, &err) != MESH_OK ||
        mesh_quality_open(f->reg, f->pool, 0, &f->q, &err) != MESH_OK)
        goto err;
    *state = f;
    return 0;
err:
    fprintf(stderr, "setup: %s\n", err.msg);
    return -1;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    mesh_quality_close(f->q);
    mesh_qpool_destroy(f->pool);
    mesh_registry_close(f->reg);
    mesh_catalog_close(f->cat);
    nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void write_rows(fixture_t *f)
{
    mesh_snapshot_t *s = mesh_registry_snapshot(f->reg);
    const mesh_product_t *p = mesh_snapshot_product(s, "factory", "readings");
    assert_non_null(p);
    mesh_batch_t b;
    mesh_batch_init(&b, "factory", MESH_BATCH_DEFAULT_LIMITS);
    mesh_apply_result_t ar;
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(mesh_csv_parse(rows, strlen(rows), p, &b), MESH_OK);
    mesh_status_t st = mesh_domain_write(s->doms[0].dom, &b, NULL, &ar, &err);
    if (st != MESH_OK)
        fail_msg("write: %s", err.msg);
    mesh_batch_free(&b);
    mesh_snapshot_put(s);
}

static const json_t *rule(const json_t *report, const char *name)
{
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(report, "rules"), i, r)
    {
        if (strcmp(json_string_value(json_object_get(r, "name")), name) == 0)
            return r;
    }
    fail_msg("no rule %s in the report", name);
    return NULL;
}

static void test_rule_sql(void **state)
{
    fixture_t *f = *state;
    mesh_snapshot_t *s = mesh_registry_snapshot(f->reg);
    const mesh_product_t *p = mesh_snapshot_product(s, "factory", "readings");
    assert_non_null(p);
    assert_int_equal(p->nquality, 6);
    /* every rule measures with one query of two numbers over the product */
    for (size_t i = 0; i < p->nquality; i++) {
        mesh_buf_t b;
        mesh_buf_init(&b, 4096);
        assert_int_equal(mesh_quality_rule_sql(p, &p->quality[i], &b), MESH_OK);
        if (strstr(b.data, "\"factory\".\"readings\"") == NULL)
            fail_msg("rule %s: %s", p->quality[i].name, b.data);
        if (strcmp(p->quality[i].name, "temp.nullValues") == 0)
            assert_string_equal(b.data, "SELECT count(*) - count(\"temp\"), count(*) FROM "
                                        "\"factory\".\"readings\"");
        mesh_buf_free(&b);
    }
    mesh_snapshot_put(s);
}

static void test_evaluation(void **state)
{
    fixture_t *f = *state;
    mesh_snapshot_t *s = mesh_registry_snapshot(f->reg);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, "factory");
    const mesh_product_t *p = mesh_snapshot_product(s, "factory", "readings");
    /* never evaluated: no rules yet, no score from them */
    json_t *r0 = mesh_quality_report(f->q, sd, p);
    assert_true(json_is_null(json_object_get(r0, "evaluated_at")));
    assert_int_equal(json_array_size(json_object_get(r0, "rules")), 0);
    json_decref(r0);
    mesh_snapshot_put(s);

    write_rows(f);
    s = mesh_registry_snapshot(f->reg);
    sd = mesh_snapshot_domain(s, "factory");
    p = mesh_snapshot_product(s, "factory", "readings");
    mesh_err_t err;
    mesh_err_clear(&err);
    if (mesh_quality_run(f->q, s, "factory", "readings", &err) != MESH_OK)
        fail_msg("run: %s", err.msg);
    assert_int_equal(mesh_quality_run(f->q, s, "factory", "nope", &err), MESH_NOT_FOUND);

    json_t *r = mesh_quality_report(f->q, sd, p);
    assert_string_equal(json_string_value(json_object_get(r, "contract_version")), "1.2.0");
    assert_int_equal(json_integer_value(json_object_get(r, "rows")), 5);
    static const struct {
        const char *name;
        double value;
        bool passed;
    } want[] = {
        {"rowCount", 5, true},              /* 5 > 3 */
        {"unique_readings", 0, true},       /* (device, ts) is the key */
        {"hot", 2, false},                  /* 95 and 99: 2 > 1 */
        {"temp.nullValues", 20, false},     /* 1 of 5 = 20 %, not < 20 */
        {"status.missingValues", 1, true},  /* 'n/a' */
        {"status.invalidValues", 2, false}, /* 'n/a' and 'bogus' */
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(want); i++) {
        const json_t *x = rule(r, want[i].name);
        double v = json_number_value(json_object_get(x, "value"));
        bool ok = json_is_true(json_object_get(x, "passed"));
        if (fabs(v - want[i].value) > 1e-9 || ok != want[i].passed)
            fail_msg("%s: value %g passed %d, expected %g %d", want[i].name, v, ok, want[i].value,
                     want[i].passed);
    }
    assert_int_equal(json_integer_value(json_object_get(r, "rules_passed")), 3);
    assert_int_equal(json_integer_value(json_object_get(r, "rules_failed")), 3);
    assert_string_equal(json_string_value(json_object_get(rule(r, "temp.nullValues"), "unit")),
                        "percent");
    assert_string_equal(json_string_value(json_object_get(rule(r, "hot"), "operator")),
                        "mustBeLessOrEqualTo");
    /* the score is in 0..100, the same as the report's, and lowered by the failed rules */
    double score = mesh_quality_score(f->q, sd, p);
    assert_true(score >= 0 && score < 100);
    assert_true(fabs(json_number_value(json_object_get(r, "score")) - round(score * 10) / 10) <
                1e-9);
    json_decref(r);

    mesh_buf_t m;
    mesh_buf_init(&m, 1 << 20);
    mesh_quality_metrics(f->q, s, &m);
    assert_non_null(m.data);
    assert_non_null(strstr(m.data, "domain=\"factory\",product=\"readings\""));
    mesh_buf_free(&m);
    mesh_snapshot_put(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_sql),
        cmocka_unit_test(test_evaluation),
    };
    return cmocka_run_group_tests_name("quality", tests, setup, teardown);
}
