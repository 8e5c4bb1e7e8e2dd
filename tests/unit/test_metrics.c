/*
 * test_metrics.c - the Prometheus text exposition of meshd's counters: HELP/TYPE lines,
 * request counters per endpoint and code, cumulative histogram buckets with +Inf, _sum and
 * _count, per-product ingest counters, label escaping, and updates from several threads.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/metrics.h"

int main(void);

static const char *const endpoints[] = {"query", "ingest", "health"};

static char *expose(mesh_metrics_t *m)
{
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 22);
    mesh_metrics_write(m, &b);
    assert_non_null(b.data);
    return mesh_buf_steal(&b, NULL);
}

/* The value of the sample line that starts with `prefix ` (name and labels), or -1. */
static double sample(const char *text, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        if (strncmp(p, prefix, pl) == 0 && p[pl] == ' ')
            return strtod(p + pl + 1, NULL);
        p = nl ? nl + 1 : NULL;
    }
    return -1;
}

static int count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* Every line is a comment (# HELP / # TYPE) or `name[{labels}] value`; every metric name
 * seen in a sample has exactly one HELP and one TYPE line before its first sample. */
static void check_format(const char *text)
{
    assert_true(strlen(text) > 0);
    assert_int_equal(text[strlen(text) - 1], '\n');
    char *copy = strdup(text);
    char seen_type[64][96];
    int nseen = 0;
    for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') {
            char kw[8], name[96];
            assert_int_equal(sscanf(line, "# %7s %95s", kw, name), 2);
            assert_true(strcmp(kw, "HELP") == 0 || strcmp(kw, "TYPE") == 0);
            if (strcmp(kw, "TYPE") == 0) {
                const char *type = line + strlen("# TYPE ") + strlen(name) + 1;
                assert_true(strcmp(type, "counter") == 0 || strcmp(type, "histogram") == 0 ||
                            strcmp(type, "gauge") == 0);
                for (int i = 0; i < nseen; i++)
                    assert_string_not_equal(seen_type[i], name); /* one TYPE per family */
                snprintf(seen_type[nseen++], sizeof seen_type[0], "%s", name);
            }
            continue;
        }
        /* sample: the family is declared before */
        char name[96];
        size_t l = strcspn(line, "{ ");
        assert_true(l > 0 && l < sizeof name);
        memcpy(name, line, l);
        name[l] = '\0';
        char *suffixes[] = {"_bucket", "_sum", "_count"};
        bool found = false;
        for (int i = 0; i < nseen && !found; i++) {
            if (strcmp(seen_type[i], name) == 0)
                found = true;
            for (int k = 0; k < 3 && !found; k++) {
                size_t fl = strlen(seen_type[i]);
                if (strncmp(name, seen_type[i], fl) == 0 && strcmp(name + fl, suffixes[k]) == 0)
                    found = true;
            }
        }
        if (!found)
            print_message("sample of undeclared family: %s\n", line);
        assert_true(found);
        /* the value after the last space parses */
        char *sp = strrchr(line, ' ');
        assert_non_null(sp);
        char *end;
        strtod(sp + 1, &end);
        assert_int_equal(*end, '\0');
    }
    free(copy);
}

static void test_empty(void **state)
{
    (void)state;
    mesh_metrics_t *m = mesh_metrics_new(endpoints, 3);
    assert_non_null(m);
    char *t = expose(m);
    check_format(t);
    assert_non_null(strstr(t, "# HELP meshd_http_requests_total "));
    assert_non_null(strstr(t, "# TYPE meshd_http_requests_total counter\n"));
    assert_non_null(strstr(t, "# TYPE meshd_http_request_duration_seconds histogram\n"));
    assert_non_null(strstr(t, "# TYPE meshd_queries_total counter\n"));
    assert_non_null(strstr(t, "# TYPE meshd_query_duration_seconds histogram\n"));
    assert_non_null(strstr(t, "# TYPE meshd_ingest_rows_total counter\n"));
    assert_true(sample(t, "meshd_queries_total") == 0);
    assert_true(sample(t, "meshd_query_duration_seconds_count") == 0);
    assert_true(sample(t, "meshd_query_duration_seconds_bucket{le=\"+Inf\"}") == 0);
    /* no per-endpoint sample before any request */
    assert_null(strstr(t, "endpoint=\""));
    free(t);
    mesh_metrics_free(m);
    mesh_metrics_free(NULL);
    /* NULL metrics are ignored by the updaters */
    mesh_metrics_request(NULL, 0, 200, 0.1);
    mesh_metrics_ingest(NULL, "d", "p", 1, 0, 0, 1);
    mesh_metrics_query(NULL, 1, 0.1, 0, 0);
}

static void test_requests_and_buckets(void **state)
{
    (void)state;
    mesh_metrics_t *m = mesh_metrics_new(endpoints, 3);
    mesh_metrics_request(m, 0, 200, 0.0004); /* bucket 0.0005 */
    mesh_metrics_request(m, 0, 200, 0.001);  /* on the 0.001 bound: le is inclusive */
    mesh_metrics_request(m, 0, 400, 0.2);    /* bucket 0.25 */
    mesh_metrics_request(m, 0, 200, 3.0);    /* bucket 5 */
    mesh_metrics_request(m, 0, 500, 100.0);  /* +Inf only */
    mesh_metrics_request(m, 1, 201, 0.01);
    mesh_metrics_request(m, -1, 200, 0.01); /* out of range: ignored */
    mesh_metrics_request(m, 3, 200, 0.01);
    char *t = expose(m);
    check_format(t);
    assert_true(sample(t, "meshd_http_requests_total{endpoint=\"query\",code=\"200\"}") == 3);
    assert_true(sample(t, "meshd_http_requests_total{endpoint=\"query\",code=\"400\"}") == 1);
    assert_true(sample(t, "meshd_http_requests_total{endpoint=\"query\",code=\"500\"}") == 1);
    assert_true(sample(t, "meshd_http_requests_total{endpoint=\"ingest\",code=\"201\"}") == 1);
    assert_int_equal(count_lines_with(t, "endpoint=\"health\""), 0);

    const char *h = "meshd_http_request_duration_seconds_bucket{endpoint=\"query\",le=";
    char key[200];
    struct {
        const char *le;
        double cum;
    } want[] = {{"0.0005", 1}, {"0.001", 2}, {"0.0025", 2}, {"0.005", 2}, {"0.01", 2},
                {"0.025", 2},  {"0.05", 2},  {"0.1", 2},    {"0.25", 3},  {"0.5", 3},
                {"1", 3},      {"2.5", 3},   {"5", 4},      {"10", 4},    {"+Inf", 5}};
    double prev = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        snprintf(key, sizeof key, "%s\"%s\"}", h, want[i].le);
        double v = sample(t, key);
        if (v != want[i].cum)
            print_message("%s: %g want %g\n", key, v, want[i].cum);
        assert_true(v == want[i].cum);
        assert_true(v >= prev); /* cumulative */
        prev = v;
    }
    assert_true(sample(t, "meshd_http_request_duration_seconds_count{endpoint=\"query\"}") == 5);
    double sum = sample(t, "meshd_http_request_duration_seconds_sum{endpoint=\"query\"}");
    assert_true(sum > 103.2013 && sum < 103.2015);
    assert_true(sample(t, "meshd_http_request_duration_seconds_count{endpoint=\"ingest\"}") == 1);
    /* bucket lines come in increasing le order, +Inf last */
    const char *a = strstr(t, "endpoint=\"query\",le=\"0.0005\"");
    const char *b = strstr(t, "endpoint=\"query\",le=\"10\"");
    const char *c = strstr(t, "endpoint=\"query\",le=\"+Inf\"");
    assert_true(a && b && c && a < b && b < c);
    free(t);
    mesh_metrics_free(m);
}

static void test_many_codes(void **state)
{
    (void)state;
    /* more distinct codes than the table holds: the extra ones are dropped, nothing breaks */
    mesh_metrics_t *m = mesh_metrics_new(endpoints, 1);
    for (int code = 200; code < 230; code++)
        mesh_metrics_request(m, 0, code, 0.001);
    char *t = expose(m);
    check_format(t);
    assert_true(count_lines_with(t, "meshd_http_requests_total{") <= 12);
    assert_true(sample(t, "meshd_http_request_duration_seconds_count{endpoint=\"query\"}") == 30);
    free(t);
    mesh_metrics_free(m);
}

static void test_queries(void **state)
{
    (void)state;
    mesh_metrics_t *m = mesh_metrics_new(endpoints, 3);
    mesh_metrics_query(m, 10, 0.002, 0, 0);
    mesh_metrics_query(m, 5, 0.5, 1, 0);
    mesh_metrics_query(m, 0, 30.0, 1, 1);
    char *t = expose(m);
    check_format(t);
    assert_true(sample(t, "meshd_queries_total") == 3);
    assert_true(sample(t, "meshd_query_failures_total") == 2);
    assert_true(sample(t, "meshd_query_timeouts_total") == 1);
    assert_true(sample(t, "meshd_query_rows_total") == 15);
    assert_true(sample(t, "meshd_query_duration_seconds_bucket{le=\"0.0025\"}") == 1);
    assert_true(sample(t, "meshd_query_duration_seconds_bucket{le=\"0.5\"}") == 2);
    assert_true(sample(t, "meshd_query_duration_seconds_bucket{le=\"10\"}") == 2);
    assert_true(sample(t, "meshd_query_duration_seconds_bucket{le=\"+Inf\"}") == 3);
    assert_true(sample(t, "meshd_query_duration_seconds_count") == 3);
    double sum = sample(t, "meshd_query_duration_seconds_sum");
    assert_true(sum > 30.501 && sum < 30.503);
    free(t);
    mesh_metrics_free(m);
}

static void test_ingest(void **state)
{
    (void)state;
    mesh_metrics_t *m = mesh_metrics_new(endpoints, 3);
    mesh_metrics_ingest(m, "factory-a", "telemetry", 100, 2, 0, 5000);
    mesh_metrics_ingest(m, "factory-a", "telemetry", 50, 0, 0, 2500);
    mesh_metrics_ingest(m, "factory-a", "machines", 0, 0, 7, 300);
    mesh_metrics_ingest(m, "home-42", "telemetry", 1, 0, 0, 10);
    char *t = expose(m);
    check_format(t);
    const char *tl = "{domain=\"factory-a\",product=\"telemetry\"}";
    char key[200];
    snprintf(key, sizeof key, "meshd_ingest_rows_total%s", tl);
    assert_true(sample(t, key) == 150);
    snprintf(key, sizeof key, "meshd_ingest_rows_quarantined_total%s", tl);
    assert_true(sample(t, key) == 2);
    snprintf(key, sizeof key, "meshd_ingest_batches_total%s", tl);
    assert_true(sample(t, key) == 2);
    assert_true(sample(t, "meshd_ingest_rows_refused_total{domain=\"factory-a\","
                          "product=\"machines\"}") == 7);
    assert_true(sample(t, "meshd_ingest_rows_total{domain=\"home-42\",product=\"telemetry\"}") ==
                1);
    free(t);
    mesh_metrics_free(m);
}

static void test_label_escaping(void **state)
{
    (void)state;
    mesh_buf_t b;
    mesh_buf_init(&b, 1024);
    mesh_metrics_label(&b, "plain");
    assert_string_equal(b.data, "plain");
    mesh_buf_reset(&b);
    mesh_metrics_label(&b, "a\"b\\c\nd");
    assert_string_equal(b.data, "a\\\"b\\\\c\\nd");
    mesh_buf_reset(&b);
    mesh_metrics_label(&b, "\\\\");
    assert_string_equal(b.data, "\\\\\\\\");
    mesh_buf_reset(&b);
    mesh_metrics_label(&b, "caf\xC3\xA9 {x}");
    assert_string_equal(b.data, "caf\xC3\xA9 {x}");
    mesh_buf_reset(&b);
    mesh_metrics_label(&b, "");
    assert_int_equal(b.len, 0);
    mesh_buf_free(&b);

    /* through the exposition: one line per sample even with a newline in a label */
    mesh_metrics_t *m = mesh_metrics_new(endpoints, 3);
    mesh_metrics_ingest(m, "d\"1", "p\\2\nx", 3, 0, 0, 0);
    char *t = expose(m);
    check_format(t);
    assert_true(sample(t, "meshd_ingest_rows_total{domain=\"d\\\"1\",product=\"p\\\\2\\nx\"}") ==
                3);
    free(t);
    mesh_metrics_free(m);

    mesh_buf_init(&b, 1024);
    mesh_metrics_help(&b, "x_total", "counter", "Things.");
    assert_string_equal(b.data, "# HELP x_total Things.\n# TYPE x_total counter\n");
    mesh_buf_free(&b);
}

typedef struct worker {
    mesh_metrics_t *m;
    int id;
} worker_t;

static void *work(void *arg)
{
    worker_t *w = arg;
    char product[16];
    snprintf(product, sizeof product, "p%d", w->id % 3);
    for (int i = 0; i < 2000; i++) {
        mesh_metrics_request(w->m, i % 3, 200 + i % 2, 0.001 * (i % 50));
        mesh_metrics_ingest(w->m, "d", product, 1, 0, 0, 10);
        mesh_metrics_query(w->m, 1, 0.01, 0, 0);
        if (i % 500 == 0) {
            mesh_buf_t b;
            mesh_buf_init(&b, 1 << 22);
            mesh_metrics_write(w->m, &b);
            mesh_buf_free(&b);
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    mesh_metrics_t *m = mesh_metrics_new(endpoints, 3);
    pthread_t th[4];
    worker_t w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){m, i};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    char *t = expose(m);
    check_format(t);
    assert_true(sample(t, "meshd_queries_total") == 8000);
    double total = sample(t, "meshd_ingest_rows_total{domain=\"d\",product=\"p0\"}") +
                   sample(t, "meshd_ingest_rows_total{domain=\"d\",product=\"p1\"}") +
                   sample(t, "meshd_ingest_rows_total{domain=\"d\",product=\"p2\"}");
    assert_true(total == 8000);
    double reqs = 0;
    for (int e = 0; e < 3; e++) {
        char key[200];
        snprintf(key, sizeof key, "meshd_http_request_duration_seconds_count{endpoint=\"%s\"}",
                 endpoints[e]);
        reqs += sample(t, key);
    }
    assert_true(reqs == 8000);
    free(t);
    mesh_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),      cmocka_unit_test(test_requests_and_buckets),
        cmocka_unit_test(test_many_codes), cmocka_unit_test(test_queries),
        cmocka_unit_test(test_ingest),     cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
