/*
 * test_health.c - the tallies of the built-in health alerts (node/health.h): authentication
 * failures per address over a window of ticks, the bound on addresses, the resolving zero,
 * the replication lag table, the alert lists of the options, and the health contract.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "catalog/contract.h"
#include "node/health.h"

int main(void);

typedef struct seen {
    char src[8][64];
    int64_t count[8];
    int n;
} seen_t;

static void collect(void *arg, const char *source, int64_t count)
{
    seen_t *s = arg;
    if (s->n < 8) {
        snprintf(s->src[s->n], sizeof s->src[s->n], "%s", source);
        s->count[s->n++] = count;
    }
}

static int64_t count_of(const seen_t *s, const char *src)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->src[i], src) == 0)
            return s->count[i];
    return -1;
}

static void test_auth_window(void **state)
{
    (void)state;
    mesh_health_t *h = mesh_health_new();
    assert_non_null(h);
    for (int i = 0; i < 3; i++)
        mesh_health_auth_failure(h, "10.0.0.1");
    mesh_health_auth_failure(h, "10.0.0.2");
    seen_t s = {0};
    mesh_health_auth_tick(h, 2, collect, &s);
    assert_int_equal(s.n, 2);
    assert_int_equal(count_of(&s, "10.0.0.1"), 3);
    assert_int_equal(count_of(&s, "10.0.0.2"), 1);
    /* the next tick still sees them (a window of 2 ticks), plus a new one */
    mesh_health_auth_failure(h, "10.0.0.1");
    memset(&s, 0, sizeof s);
    mesh_health_auth_tick(h, 2, collect, &s);
    assert_int_equal(count_of(&s, "10.0.0.1"), 4);
    assert_int_equal(count_of(&s, "10.0.0.2"), 1);
    /* the first tick leaves the window: 10.0.0.2 reports 0 once (its alert resolves) */
    memset(&s, 0, sizeof s);
    mesh_health_auth_tick(h, 2, collect, &s);
    assert_int_equal(count_of(&s, "10.0.0.1"), 1);
    assert_int_equal(count_of(&s, "10.0.0.2"), 0);
    memset(&s, 0, sizeof s);
    mesh_health_auth_tick(h, 2, collect, &s);
    assert_int_equal(count_of(&s, "10.0.0.1"), 0);
    assert_int_equal(count_of(&s, "10.0.0.2"), -1);
    memset(&s, 0, sizeof s);
    mesh_health_auth_tick(h, 2, collect, &s);
    assert_int_equal(s.n, 0);
    assert_int_equal(mesh_health_auth_failures_total(h), 5);
    mesh_health_free(h);
}

typedef struct tally {
    int n;
    int64_t other, sum;
} tally_t;

static void add_up(void *arg, const char *source, int64_t count)
{
    tally_t *t = arg;
    t->n++;
    t->sum += count;
    if (strcmp(source, "other") == 0)
        t->other = count;
}

static void test_auth_bounded(void **state)
{
    (void)state;
    mesh_health_t *h = mesh_health_new();
    assert_non_null(h);
    char a[32];
    for (int i = 0; i < MESH_HEALTH_MAX_SOURCES + 50; i++) {
        snprintf(a, sizeof a, "192.0.2.%d", i);
        mesh_health_auth_failure(h, a);
    }
    mesh_health_auth_failure(h, NULL); /* an unknown address counts as "?" */
    tally_t t = {0};
    mesh_health_auth_tick(h, 1000, add_up, &t); /* clamped to the ring */
    assert_int_equal(t.n, MESH_HEALTH_MAX_SOURCES);
    assert_int_equal(t.sum, MESH_HEALTH_MAX_SOURCES + 51);
    assert_int_equal(t.other, 52);
    mesh_health_free(h);
    /* NULL is fine everywhere */
    mesh_health_auth_failure(NULL, "x");
    mesh_health_set_lag(NULL, "d", "r", 1);
    assert_int_equal(mesh_health_auth_failures_total(NULL), 0);
}

typedef struct lags {
    int n;
    double last;
} lags_t;

static void lag_seen(void *arg, const char *domain, const char *replica, double seconds)
{
    lags_t *l = arg;
    (void)domain;
    (void)replica;
    l->n++;
    l->last = seconds;
}

static void test_lags(void **state)
{
    (void)state;
    mesh_health_t *h = mesh_health_new();
    mesh_health_set_lag(h, "factory", "n2", 3.5);
    mesh_health_set_lag(h, "factory", "n2", 120); /* replaces */
    lags_t l = {0};
    mesh_health_lags(h, lag_seen, &l);
    assert_int_equal(l.n, 1);
    assert_true(l.last == 120);
    mesh_health_set_lag(h, "factory", "n3", -4); /* clock skew reads as caught up */
    char d[32];
    for (int i = 0; i < MESH_HEALTH_MAX_LAGS + 10; i++) {
        snprintf(d, sizeof d, "d%d", i);
        mesh_health_set_lag(h, d, "r", 1);
    }
    memset(&l, 0, sizeof l);
    mesh_health_lags(h, lag_seen, &l);
    assert_int_equal(l.n, MESH_HEALTH_MAX_LAGS);
    mesh_health_free(h);
}

static void test_lists(void **state)
{
    (void)state;
    char bad[80];
    assert_true(mesh_health_list_ok("all", bad, sizeof bad));
    assert_true(mesh_health_list_ok(" node-down , disk-space-low ", bad, sizeof bad));
    assert_true(mesh_health_list_ok("", bad, sizeof bad));
    assert_true(mesh_health_list_ok(NULL, bad, sizeof bad));
    assert_false(mesh_health_list_ok("node-down,nodes-down", bad, sizeof bad));
    assert_string_equal(bad, "nodes-down");
    assert_true(mesh_health_list_has("all", "quality-low"));
    assert_true(mesh_health_list_has("node-down, quality-low", "quality-low"));
    assert_false(mesh_health_list_has("node-down", "quality-low"));
    assert_false(mesh_health_list_has("none", "quality-low"));
    assert_false(mesh_health_list_has(NULL, "quality-low"));
    assert_false(mesh_health_list_has("quality-lo", "quality-low"));
}

static void test_contract(void **state)
{
    (void)state;
    char *yaml = mesh_health_contract("health");
    assert_non_null(yaml);
    mesh_contract_t *c = NULL;
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(mesh_contract_parse(yaml, strlen(yaml), &c, &err), MESH_OK);
    static const char *const products[] = {"disk", "nodes", "replication", "products", "auth"};
    for (size_t i = 0; i < 5; i++) {
        const mesh_product_t *p = mesh_contract_product(c, products[i]);
        assert_non_null(p);
        assert_true(p->time_col >= 0); /* a time series: the series key leaves time out */
    }
    mesh_contract_free(c);
    free(yaml);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_window), cmocka_unit_test(test_auth_bounded),
        cmocka_unit_test(test_lags),        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_contract),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
