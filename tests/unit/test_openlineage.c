/*
 * test_openlineage.c - OpenLineage RunEvents (the members spec 2-0-2 requires, facets, FAIL's
 * error facet, refusals), run ids (UUID v7) and the emitter: the file sink (JSON Lines,
 * rotation at its bound), a bounded queue that drops and counts, and no sinks at all.
 */
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
#include <jansson.h>

#include "core/util.h"
#include "derive/openlineage.h"

int main(void);

static const mesh_ol_field_t src_fields[] = {
    {"device", "string"}, {"ts", "timestamp"}, {"temp", "number"}};
static const mesh_ol_field_t agg_fields[] = {{"device", "string"}, {"temp_avg", "number"}};
static const mesh_ol_input_field_t in_device[] = {
    {"ns1", "factory.readings", "device", MESH_OL_IDENTITY}};
static const mesh_ol_input_field_t in_temp[] = {
    {"ns1", "factory.readings", "temp", MESH_OL_AGGREGATION}};
static const mesh_ol_column_t agg_lineage[] = {{"device", in_device, 1}, {"temp_avg", in_temp, 1}};

static void sample(mesh_ol_event_t *ev, mesh_ol_dataset_t *in, mesh_ol_dataset_t *out)
{
    memset(ev, 0, sizeof *ev);
    *in = (mesh_ol_dataset_t){
        .ns = "ns1", .name = "factory.readings", .fields = src_fields, .nfields = 3};
    *out = (mesh_ol_dataset_t){.ns = "ns1",
                               .name = "factory.readings_1m",
                               .fields = agg_fields,
                               .nfields = 2,
                               .lineage = agg_lineage,
                               .nlineage = 2};
    ev->type = MESH_OL_COMPLETE;
    ev->time_ns = 1700000000123000000LL;
    assert_int_equal(mesh_ol_run_id(ev->run_id), MESH_OK);
    ev->job_ns = "ns1";
    ev->job_name = "factory.readings_1m";
    ev->inputs = in;
    ev->ninputs = 1;
    ev->outputs = out;
    ev->noutputs = 1;
}

static json_t *build(const mesh_ol_event_t *ev)
{
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 20);
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(mesh_ol_event_json(ev, "https://example.test/meshd", &b, &err), MESH_OK);
    json_error_t je;
    json_t *j = json_loadb(b.data, b.len, 0, &je);
    assert_non_null(j);
    mesh_buf_free(&b);
    return j;
}

static void check_facet(const json_t *f)
{
    assert_string_equal(json_string_value(json_object_get(f, "_producer")),
                        "https://example.test/meshd");
    assert_non_null(strstr(json_string_value(json_object_get(f, "_schemaURL")),
                           "https://openlineage.io/spec/facets/"));
}

static void test_run_event(void **state)
{
    (void)state;
    mesh_ol_event_t ev;
    mesh_ol_dataset_t in, out;
    sample(&ev, &in, &out);
    json_t *j = build(&ev);
    assert_string_equal(json_string_value(json_object_get(j, "eventType")), "COMPLETE");
    assert_string_equal(json_string_value(json_object_get(j, "eventTime")),
                        "2023-11-14T22:13:20.123Z");
    assert_string_equal(json_string_value(json_object_get(j, "producer")),
                        "https://example.test/meshd");
    assert_string_equal(json_string_value(json_object_get(j, "schemaURL")), MESH_OL_SCHEMA_URL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "run"), "runId")),
                        ev.run_id);
    const json_t *job = json_object_get(j, "job");
    assert_string_equal(json_string_value(json_object_get(job, "namespace")), "ns1");
    assert_string_equal(json_string_value(json_object_get(job, "name")), "factory.readings_1m");
    check_facet(json_object_get(json_object_get(job, "facets"), "jobType"));
    const json_t *i0 = json_array_get(json_object_get(j, "inputs"), 0);
    assert_string_equal(json_string_value(json_object_get(i0, "name")), "factory.readings");
    const json_t *schema = json_object_get(json_object_get(i0, "facets"), "schema");
    check_facet(schema);
    assert_int_equal(json_array_size(json_object_get(schema, "fields")), 3);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(schema, "fields"), 1), "type")),
                        "timestamp");
    /* no columnLineage on inputs */
    assert_null(json_object_get(json_object_get(i0, "facets"), "columnLineage"));
    const json_t *o0 = json_array_get(json_object_get(j, "outputs"), 0);
    const json_t *cl = json_object_get(json_object_get(o0, "facets"), "columnLineage");
    check_facet(cl);
    const json_t *f = json_array_get(
        json_object_get(json_object_get(json_object_get(cl, "fields"), "temp_avg"), "inputFields"),
        0);
    assert_string_equal(json_string_value(json_object_get(f, "namespace")), "ns1");
    assert_string_equal(json_string_value(json_object_get(f, "name")), "factory.readings");
    assert_string_equal(json_string_value(json_object_get(f, "field")), "temp");
    const json_t *x = json_array_get(json_object_get(f, "transformations"), 0);
    assert_string_equal(json_string_value(json_object_get(x, "type")), "DIRECT");
    assert_string_equal(json_string_value(json_object_get(x, "subtype")), "AGGREGATION");
    /* a COMPLETE carries no error facet */
    assert_null(
        json_object_get(json_object_get(json_object_get(j, "run"), "facets"), "errorMessage"));
    json_decref(j);
}

static void test_fail_and_refusals(void **state)
{
    (void)state;
    mesh_ol_event_t ev;
    mesh_ol_dataset_t in, out;
    sample(&ev, &in, &out);
    ev.type = MESH_OL_FAIL;
    ev.error = "disk \"full\"";
    json_t *j = build(&ev);
    assert_string_equal(json_string_value(json_object_get(j, "eventType")), "FAIL");
    const json_t *e =
        json_object_get(json_object_get(json_object_get(j, "run"), "facets"), "errorMessage");
    check_facet(e);
    assert_string_equal(json_string_value(json_object_get(e, "message")), "disk \"full\"");
    assert_string_equal(json_string_value(json_object_get(e, "programmingLanguage")), "C");
    json_decref(j);
    /* required members missing: refused, nothing written */
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 20);
    mesh_err_t err;
    mesh_err_clear(&err);
    ev.job_name = "";
    assert_int_equal(mesh_ol_event_json(&ev, NULL, &b, &err), MESH_INVALID);
    ev.job_name = "x";
    in.name = NULL;
    assert_int_equal(mesh_ol_event_json(&ev, NULL, &b, &err), MESH_INVALID);
    in.name = "factory.readings";
    ev.run_id[0] = '\0';
    assert_int_equal(mesh_ol_event_json(&ev, NULL, &b, &err), MESH_INVALID);
    assert_int_equal(b.len, 0);
    mesh_buf_free(&b);
}

static void test_run_id(void **state)
{
    (void)state;
    char a[MESH_OL_RUN_ID_LEN + 1], b[MESH_OL_RUN_ID_LEN + 1];
    assert_int_equal(mesh_ol_run_id(a), MESH_OK);
    assert_int_equal(mesh_ol_run_id(b), MESH_OK);
    assert_int_equal(strlen(a), 36);
    assert_string_not_equal(a, b);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(a[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", a[i]));
    }
    assert_int_equal(a[14], '7');           /* version 7 */
    assert_non_null(strchr("89ab", a[19])); /* variant 10 */
    assert_true(strncmp(a, b, 8) <= 0);     /* time-ordered (same or later ms) */
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static void test_file_sink_rotates(void **state)
{
    (void)state;
    char dir[] = "/tmp/mesh-ol-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], old[140];
    snprintf(path, sizeof path, "%s/lineage.jsonl", dir);
    snprintf(old, sizeof old, "%s.1", path);
    mesh_ol_opts_t o = {.file = path, .file_max_bytes = 4096, .queue_max = 1000};
    mesh_ol_emitter_t *em = NULL;
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(mesh_ol_emitter_create(&o, &em, &err), MESH_OK);
    assert_non_null(em);
    mesh_ol_event_t ev;
    mesh_ol_dataset_t in, out;
    sample(&ev, &in, &out);
    for (int i = 0; i < 20; i++)
        mesh_ol_emit(em, &ev);
    mesh_ol_emitter_destroy(em); /* the file sink writes what is queued */
    struct stat a, b;
    assert_int_equal(stat(path, &a), 0);
    assert_int_equal(stat(old, &b), 0);
    assert_true(a.st_size <= 4096 && b.st_size <= 4096);
    int n = count_lines(path) + count_lines(old);
    assert_true(n > 0 && n <= 20);
    /* every line is one whole event */
    FILE *f = fopen(path, "r");
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        assert_non_null(j);
        json_decref(j);
    }
    fclose(f);
    unlink(path);
    unlink(old);
    rmdir(dir);
}

static void test_queue_bound_and_no_sinks(void **state)
{
    (void)state;
    mesh_ol_emitter_t *em = NULL;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_ol_opts_t none = {0};
    assert_int_equal(mesh_ol_emitter_create(&none, &em, &err), MESH_OK);
    assert_null(em);
    mesh_ol_event_t ev;
    mesh_ol_dataset_t in, out;
    sample(&ev, &in, &out);
    mesh_ol_emit(NULL, &ev); /* a no-op */
    mesh_ol_opts_t bad = {.url = "ftp://example.test/"};
    assert_int_equal(mesh_ol_emitter_create(&bad, &em, &err), MESH_INVALID);
    /* an endpoint that fails (unroutable, or no answer in time) with retries and their backoff
     * (100, 200, 400 ms) holding the worker on the first events it took: queue of 2, twenty
     * events; the rest drop */
    mesh_ol_opts_t o = {.url = "http://192.0.2.1:9/lineage", /* TEST-NET-1: unroutable */
                        .timeout_ns = 300000000LL,
                        .retries = 3,
                        .queue_max = 2};
    assert_int_equal(mesh_ol_emitter_create(&o, &em, &err), MESH_OK);
    int64_t t0 = mesh_mono_ns();
    for (int i = 0; i < 20; i++)
        mesh_ol_emit(em, &ev);
    /* never waits for the sink (twenty POSTs would take seconds) */
    assert_true(mesh_mono_ns() - t0 < 2000000000LL);
    mesh_ol_stats_t st;
    mesh_ol_emitter_stats(em, &st);
    assert_true(st.http.on);
    assert_false(st.file.on);
    /* the worker holds at most what it took (up to the bound) and the queue the rest */
    assert_true(st.http.dropped >= 20 - 1 - 2 * 2);
    assert_true(st.http.queued <= 2);
    mesh_ol_emitter_destroy(em);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_event),
        cmocka_unit_test(test_fail_and_refusals),
        cmocka_unit_test(test_run_id),
        cmocka_unit_test(test_file_sink_rotates),
        cmocka_unit_test(test_queue_bound_and_no_sinks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
