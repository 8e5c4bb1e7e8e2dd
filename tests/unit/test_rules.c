/*
 * test_rules.c - the rule parser (refusals with path and reason) and the per-series math:
 * threshold with hysteresis and `for`, sliding windows (avg, min, max, count, rate),
 * z-score (Welford over a ring) and EWMA against direct computations, warm-up, absence,
 * late rows, and the state's encoding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "core/util.h"
#include "rules/rule.h"

int main(void);

#define SEC MESH_NS_PER_SEC

static mesh_rule_t *parse(const char *text)
{
    mesh_rule_t *r = NULL;
    mesh_err_t err;
    mesh_status_t st = mesh_rule_parse(text, strlen(text), &r, &err);
    if (st != MESH_OK)
        fail_msg("rule refused: %s", err.msg);
    return r;
}

static void refused(const char *text, const char *want)
{
    mesh_rule_t *r = NULL;
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_not_equal(mesh_rule_parse(text, strlen(text), &r, &err), MESH_OK);
    assert_null(r);
    if (strstr(err.msg, want) == NULL)
        fail_msg("'%s' not in '%s'", want, err.msg);
}

#define HEAD "name: r\ndomain: d\nproduct: p\n"

static mesh_rstep_t step(const mesh_rule_t *r, mesh_rstate_t *s, int64_t t, double v)
{
    mesh_reval_t out;
    assert_int_equal(mesh_rule_step(r, s, t, true, v, &out), MESH_OK);
    return out.step;
}

static void test_parse_defaults(void **state)
{
    (void)state;
    mesh_rule_t *r = parse(HEAD "kind: threshold\ncolumn: c\nabove: 80\n");
    assert_int_equal(r->kind, MESH_RULE_THRESHOLD);
    assert_true(r->above);
    assert_true(r->limit == 80 && r->clear == 80);
    assert_string_equal(r->severity, "warning");
    assert_int_equal(r->for_ns, 0);
    mesh_rule_put(r);
    r = parse("{\"name\": \"j\", \"domain\": \"d\", \"product\": \"p\", \"kind\": \"anomaly\", "
              "\"column\": \"c\", \"method\": \"ewma\", \"alpha\": 0.5}");
    assert_int_equal(r->method, MESH_ANOM_EWMA);
    assert_true(r->limit == 3 && r->clear == 3 && r->alpha == 0.5);
    mesh_rule_put(r);
    r = parse(HEAD "kind: window\nfunction: count\nperiod: 1m\nabove: 5\n");
    assert_null(r->column);
    assert_int_equal(r->period_ns, 60 * SEC);
    mesh_rule_put(r);
}

static void test_parse_refusals(void **state)
{
    (void)state;
    refused(HEAD "kind: threshold\ncolumn: c\n", "above or below");
    refused(HEAD "kind: threshold\ncolumn: c\nabove: 1\nbelow: 2\n", "above or below");
    refused(HEAD "kind: threshold\ncolumn: c\nabove: 10\nclear: 11\n", "clear");
    refused(HEAD "kind: threshold\ncolumn: c\nbelow: 10\nclear: 9\n", "clear");
    refused(HEAD "kind: thresh\n", "kind");
    refused(HEAD "kind: threshold\ncolumn: c\nabove: x\n", "above (line 6)");
    refused(HEAD "kind: threshold\ncolumn: c\nabove: .inf\n", "finite");
    refused(HEAD "kind: threshold\ncolumn: c\nabove: 1\nfor: forever\n", "for (line 7)");
    refused(HEAD "kind: threshold\ncolumn: c\nabove: 1\nextra: 1\n", "unknown key");
    refused(HEAD "kind: window\ncolumn: c\nabove: 1\n", "function and period");
    refused(HEAD "kind: window\nfunction: median\nperiod: 1s\ncolumn: c\nabove: 1\n",
            "avg, min, max, count or rate");
    refused(HEAD "kind: window\nfunction: avg\nperiod: 1s\ncolumn: c\nabove: 1\n"
                 "max_samples: 100000\n",
            "max_samples");
    refused(HEAD "kind: anomaly\ncolumn: c\nabove: 1\n", "sensitivity");
    refused(HEAD "kind: anomaly\ncolumn: c\nalpha: 2\n", "alpha");
    refused(HEAD "kind: absence\n", "after");
    refused(HEAD "kind: absence\nafter: 1m\nabove: 2\n", "only after");
    refused(HEAD "kind: threshold\ncolumn: c\nabove: 1\nactions: {a: 1}\n", "list");
    refused(HEAD "kind: threshold\ncolumn: c\nabove: 1\nactions:\n  - type: webhook\n",
            "needs url");
    refused(HEAD "kind: threshold\ncolumn: c\nabove: 1\nactions:\n  - type: webhook\n"
                 "    url: file:///etc/passwd\n",
            "actions[0].url (line 9)");
    refused(HEAD "kind: threshold\ncolumn: c\nabove: 1\nactions:\n  - type: mqtt\n"
                 "    payload: x\n",
            "needs topic");
    refused(HEAD "kind: threshold\ncolumn: c\nabove: 1\nactions:\n  - type: mqtt\n"
                 "    topic: a/+/b\n",
            "wildcards");
    refused(HEAD "kind: threshold\ncolumn: c\nabove: 1\nactions:\n  - type: mqtt\n"
                 "    topic: a/b\n    qos: 2\n",
            "qos");
    refused(HEAD "kind: threshold\ncolumn: c\nabove: 1\nactions:\n  - type: mqtt\n"
                 "    topic: a/b\n    url: http://x\n",
            "webhooks");
    refused(HEAD "kind: threshold\ncolumn: c\nabove: 1\nactions:\n  - type: webhook\n"
                 "    url: http://x\n    topic: a\n",
            "mqtt actions");
    refused(HEAD "kind: threshold\ncolumn: c\nabove: 1\nactions:\n  - type: webhook\n"
                 "    url: http://x\n    retries: 99\n",
            "retries");
    refused("name: Bad\ndomain: d\nproduct: p\nkind: absence\nafter: 1s\n", "name");
    refused("domain: d\nproduct: p\nkind: absence\nafter: 1s\n", "required");
    refused("[1, 2", "not YAML");
    refused("", "empty");
    refused("- a\n- b\n", "mapping");
    char *big = malloc(MESH_RULE_MAX_BYTES + 2);
    memset(big, ' ', MESH_RULE_MAX_BYTES + 1);
    big[MESH_RULE_MAX_BYTES + 1] = '\0';
    refused(big, "at most");
    free(big);
}

static const char *lookup(void *arg, const char *name)
{
    (void)arg;
    if (strcmp(name, "home") == 0)
        return "h42/x+#";
    if (strcmp(name, "value") == 0)
        return "15.5";
    return NULL;
}

static void test_templates(void **state)
{
    (void)state;
    mesh_buf_t b;
    mesh_buf_init(&b, 4096);
    assert_int_equal(mesh_rule_expand("home/{home}/thermostat/set", true, lookup, NULL, &b),
                     MESH_OK);
    assert_string_equal(b.data, "home/h42_x__/thermostat/set"); /* no extra levels, wildcards */
    mesh_buf_reset(&b);
    assert_int_equal(
        mesh_rule_expand("{\"target\": 19.5, \"was\": {value}, \"h\": \"{home}\"}{nope}{", false,
                         lookup, NULL, &b),
        MESH_OK);
    assert_string_equal(b.data, "{\"target\": 19.5, \"was\": 15.5, \"h\": \"h42/x+#\"}{");
    mesh_buf_free(&b);
    mesh_rule_t *r = parse(HEAD "kind: threshold\ncolumn: c\nbelow: 16\nactions:\n"
                                "  - type: mqtt\n    topic: home/{home}/thermostat/set\n"
                                "    payload: '{\"target\": 19.5}'\n    qos: 0\n"
                                "    retain: true\n");
    assert_int_equal(r->actions[0].type, MESH_ACTION_MQTT);
    assert_int_equal(r->actions[0].qos, 0);
    assert_true(r->actions[0].retain);
    assert_string_equal(r->actions[0].payload, "{\"target\": 19.5}");
    mesh_rule_put(r);
}

static void test_threshold_hysteresis_for(void **state)
{
    (void)state;
    mesh_rule_t *r = parse(HEAD "kind: threshold\ncolumn: c\nabove: 80\nclear: 75\nfor: 3s\n");
    mesh_rstate_t s;
    memset(&s, 0, sizeof s);
    /* above for less than 3 s, twice: nothing */
    assert_int_equal(step(r, &s, 1 * SEC, 85), MESH_RSTEP_NONE);
    assert_int_equal(s.phase, MESH_RPHASE_PENDING);
    assert_int_equal(step(r, &s, 3 * SEC, 86), MESH_RSTEP_NONE);
    assert_int_equal(step(r, &s, 4 * SEC, 70), MESH_RSTEP_NONE);
    assert_int_equal(s.phase, MESH_RPHASE_OK);
    assert_int_equal(step(r, &s, 5 * SEC, 81), MESH_RSTEP_NONE);
    /* 3 s later, still above: fires once */
    assert_int_equal(step(r, &s, 8 * SEC, 82), MESH_RSTEP_FIRE);
    assert_true(s.first_value == 81);
    /* between clear and limit: still firing (no flapping) */
    assert_int_equal(step(r, &s, 9 * SEC, 78), MESH_RSTEP_UPDATE);
    assert_int_equal(step(r, &s, 10 * SEC, 81), MESH_RSTEP_UPDATE);
    assert_int_equal(step(r, &s, 11 * SEC, 75), MESH_RSTEP_UPDATE); /* clear is strict */
    assert_int_equal(step(r, &s, 12 * SEC, 74.9), MESH_RSTEP_RESOLVE);
    assert_int_equal(step(r, &s, 13 * SEC, 79), MESH_RSTEP_NONE);
    /* a late row (older than the newest) changes nothing */
    assert_int_equal(step(r, &s, 2 * SEC, 1000), MESH_RSTEP_NONE);
    assert_int_equal(s.phase, MESH_RPHASE_OK);
    /* NULL values are skipped */
    mesh_reval_t out;
    assert_int_equal(mesh_rule_step(r, &s, 14 * SEC, false, 0, &out), MESH_OK);
    assert_int_equal(out.step, MESH_RSTEP_NONE);
    mesh_rstate_free(&s);
    mesh_rule_put(r);

    /* below, without for: fires on the first row */
    r = parse(HEAD "kind: threshold\ncolumn: c\nbelow: 90\n");
    memset(&s, 0, sizeof s);
    assert_int_equal(step(r, &s, SEC, 89), MESH_RSTEP_FIRE);
    assert_int_equal(step(r, &s, 2 * SEC, 90), MESH_RSTEP_RESOLVE); /* no clear: not below */
    mesh_rstate_free(&s);
    mesh_rule_put(r);
}

static void test_window_functions(void **state)
{
    (void)state;
    static const char *const fns[] = {"avg", "min", "max", "count", "rate"};
    /* values 1..10 at t = 1..10 s; a 5 s window at t = 10 holds t in (5, 10]: 6..10 */
    double want[] = {8, 6, 10, 5, 1};
    for (size_t k = 0; k < 5; k++) {
        char text[256];
        snprintf(text, sizeof text,
                 HEAD "kind: window\nfunction: %s\nperiod: 5s\ncolumn: c\nabove: 1000\n", fns[k]);
        mesh_rule_t *r = parse(text);
        mesh_rstate_t s;
        memset(&s, 0, sizeof s);
        mesh_reval_t out;
        for (int i = 1; i <= 10; i++)
            assert_int_equal(mesh_rule_step(r, &s, i * SEC, true, i, &out), MESH_OK);
        assert_true(out.has_value);
        if (fabs(out.value - want[k]) > 1e-9)
            fail_msg("%s: %g, want %g", fns[k], out.value, want[k]);
        mesh_rstate_free(&s);
        mesh_rule_put(r);
    }
    /* the ring is bounded: max_samples keeps the newest */
    mesh_rule_t *r =
        parse(HEAD "kind: window\nfunction: avg\nperiod: 1h\nmax_samples: 4\ncolumn: c\n"
                   "above: 1000\n");
    mesh_rstate_t s;
    memset(&s, 0, sizeof s);
    mesh_reval_t out;
    for (int i = 1; i <= 100; i++)
        mesh_rule_step(r, &s, i * SEC, true, i, &out);
    assert_int_equal(s.ring_n, 4);
    assert_true(out.value == (97 + 98 + 99 + 100) / 4.0);
    mesh_rstate_free(&s);
    mesh_rule_put(r);
}

static void test_zscore_matches_direct(void **state)
{
    (void)state;
    mesh_rule_t *r =
        parse(HEAD "kind: anomaly\nmethod: zscore\nsamples: 20\nwarmup: 5\nsensitivity: 3\n"
                   "column: c\n");
    mesh_rstate_t s;
    memset(&s, 0, sizeof s);
    double xs[200];
    uint32_t seed = 7;
    for (int i = 0; i < 200; i++) {
        seed = seed * 1103515245u + 12345u;
        xs[i] = 50 + (double)((seed >> 16) % 1000) / 100.0;
    }
    for (int i = 0; i < 200; i++) {
        mesh_reval_t out;
        assert_int_equal(mesh_rule_step(r, &s, (i + 1) * SEC, true, xs[i], &out), MESH_OK);
        int n = i < 20 ? i : 20;
        if (n < 5) {
            assert_false(out.has_value); /* warming up */
            continue;
        }
        /* the direct z of xs[i] against the previous n values */
        double mean = 0, var = 0;
        for (int k = i - n; k < i; k++)
            mean += xs[k];
        mean /= n;
        for (int k = i - n; k < i; k++)
            var += (xs[k] - mean) * (xs[k] - mean);
        var /= n - 1;
        double z = fabs(xs[i] - mean) / sqrt(var);
        if (fabs(out.value - z) > 1e-6)
            fail_msg("row %d: z %g, want %g", i, out.value, z);
    }
    /* a spike fires, the next normal value resolves */
    mesh_reval_t out;
    mesh_rule_step(r, &s, 300 * SEC, true, 500, &out);
    assert_int_equal(out.step, MESH_RSTEP_FIRE);
    mesh_rule_step(r, &s, 301 * SEC, true, 55, &out);
    assert_int_equal(out.step, MESH_RSTEP_RESOLVE);
    mesh_rstate_free(&s);
    mesh_rule_put(r);
}

static void test_ewma(void **state)
{
    (void)state;
    mesh_rule_t *r =
        parse(HEAD "kind: anomaly\nmethod: ewma\nalpha: 0.25\nwarmup: 3\nsensitivity: 4\n"
                   "column: c\n");
    mesh_rstate_t s;
    memset(&s, 0, sizeof s);
    double xs[] = {10, 12, 11, 13, 12, 11, 12};
    double mean = 0, var = 0;
    for (size_t i = 0; i < MESH_ARRAY_LEN(xs); i++) {
        mesh_reval_t out;
        mesh_rule_step(r, &s, (int64_t)(i + 1) * SEC, true, xs[i], &out);
        if (i >= 3) {
            assert_true(out.has_value);
            double z = fabs(xs[i] - mean) / sqrt(var);
            assert_true(fabs(out.value - z) < 1e-9);
        } else {
            assert_false(out.has_value);
        }
        if (i == 0) {
            mean = xs[0];
        } else {
            double d = xs[i] - mean, inc = 0.25 * d;
            mean += inc;
            var = 0.75 * (var + d * inc);
        }
    }
    assert_true(fabs(s.mean - mean) < 1e-12 && fabs(s.m2 - var) < 1e-12);
    mesh_rstate_free(&s);
    mesh_rule_put(r);
    /* a constant series: any change is an anomaly */
    r = parse(HEAD "kind: anomaly\nmethod: ewma\nwarmup: 2\ncolumn: c\n");
    memset(&s, 0, sizeof s);
    for (int i = 1; i <= 5; i++)
        assert_int_equal(step(r, &s, i * SEC, 7), MESH_RSTEP_NONE);
    assert_int_equal(step(r, &s, 6 * SEC, 8), MESH_RSTEP_FIRE);
    mesh_rstate_free(&s);
    mesh_rule_put(r);
}

static void test_absence(void **state)
{
    (void)state;
    mesh_rule_t *r = parse(HEAD "kind: absence\nafter: 10s\n");
    mesh_rstate_t s;
    memset(&s, 0, sizeof s);
    mesh_reval_t out;
    mesh_rule_tick(r, &s, 100 * SEC, &out); /* a series never seen: nothing */
    assert_int_equal(out.step, MESH_RSTEP_NONE);
    mesh_rule_step(r, &s, 100 * SEC, false, 0, &out);
    mesh_rule_tick(r, &s, 109 * SEC, &out);
    assert_int_equal(out.step, MESH_RSTEP_NONE);
    mesh_rule_tick(r, &s, 110 * SEC, &out);
    assert_int_equal(out.step, MESH_RSTEP_FIRE);
    assert_true(out.value == 10);
    mesh_rule_tick(r, &s, 200 * SEC, &out); /* fires once */
    assert_int_equal(out.step, MESH_RSTEP_NONE);
    mesh_rule_step(r, &s, 201 * SEC, true, 1, &out);
    assert_int_equal(out.step, MESH_RSTEP_RESOLVE);
    mesh_rstate_free(&s);
    mesh_rule_put(r);
}

static void test_state_encoding(void **state)
{
    (void)state;
    mesh_rule_t *r = parse(HEAD "kind: window\nfunction: avg\nperiod: 1h\nmax_samples: 8\n"
                                "column: c\nabove: 5\n");
    mesh_rstate_t s;
    memset(&s, 0, sizeof s);
    mesh_reval_t out;
    for (int i = 1; i <= 11; i++) /* wraps the ring */
        mesh_rule_step(r, &s, i * SEC, true, i, &out);
    assert_int_equal(s.phase, MESH_RPHASE_FIRING);
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 20);
    assert_int_equal(mesh_rstate_encode(&s, &b), MESH_OK);
    mesh_rstate_t d;
    assert_int_equal(mesh_rstate_decode((const uint8_t *)b.data, b.len, &d), MESH_OK);
    assert_int_equal(d.phase, s.phase);
    assert_int_equal(d.ring_n, 8);
    double a, c;
    assert_true(mesh_rule_window_value(r, &s, &a) && mesh_rule_window_value(r, &d, &c));
    assert_true(a == c);
    /* the decoded state goes on the same way */
    mesh_rule_step(r, &s, 12 * SEC, true, 0, &out);
    mesh_reval_t out2;
    mesh_rule_step(r, &d, 12 * SEC, true, 0, &out2);
    assert_true(out.value == out2.value && out.step == out2.step);
    /* every truncation and a wrong version are refused */
    for (size_t n = 0; n < b.len; n++) {
        mesh_rstate_t x;
        assert_int_not_equal(mesh_rstate_decode((const uint8_t *)b.data, n, &x), MESH_OK);
        mesh_rstate_free(&x);
    }
    b.data[0] = 9;
    mesh_rstate_t x;
    assert_int_equal(mesh_rstate_decode((const uint8_t *)b.data, b.len, &x), MESH_CORRUPT);
    mesh_rstate_free(&x);
    mesh_buf_free(&b);
    mesh_rstate_free(&d);
    mesh_rstate_free(&s);
    mesh_rule_put(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_defaults),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_templates),
        cmocka_unit_test(test_threshold_hysteresis_for),
        cmocka_unit_test(test_window_functions),
        cmocka_unit_test(test_zscore_matches_direct),
        cmocka_unit_test(test_ewma),
        cmocka_unit_test(test_absence),
        cmocka_unit_test(test_state_encoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
