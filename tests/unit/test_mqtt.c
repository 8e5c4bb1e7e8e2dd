/*
 * test_mqtt.c - MQTT ingest without a broker: topic templates (parse, filter, match, overlap,
 * every error), mappings from JSON and config lines (every refusal), fixed column values in a
 * batch, and one message through mesh_mqtt_ingest into a real domain (stored, quarantined for
 * each reason, dropped).
 */
#define _GNU_SOURCE
#include <ftw.h>
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
#include "core/log.h"
#include "core/util.h"
#include "ingest/jsonrows.h"
#include "mqtt/ingest.h"
#include "mqtt/mapping.h"
#include "mqtt/topic.h"
#include "store/domain.h"

int main(void);

/* ---- topic templates ---- */

static void parse_ok(const char *s, const char *filter, size_t nnamed)
{
    mesh_topic_tmpl_t t;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_topic_tmpl_parse(s, strlen(s), &t, &err);
    if (st != MESH_OK)
        fail_msg("'%s': %s", s, err.msg);
    assert_string_equal(t.filter, filter);
    assert_int_equal(t.nnamed, nnamed);
    mesh_topic_tmpl_free(&t);
}

static void parse_bad(const char *s, size_t n, const char *why)
{
    mesh_topic_tmpl_t t;
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(mesh_topic_tmpl_parse(s, n, &t, &err), MESH_INVALID);
    if (strstr(err.msg, why) == NULL)
        fail_msg("'%.40s': '%s' does not say '%s'", s, err.msg, why);
}

static void test_topic_parse(void **state)
{
    (void)state;
    parse_ok("factory/{site}/{device}/telemetry", "factory/+/+/telemetry", 2);
    parse_ok("a", "a", 0);
    parse_ok("#", "#", 0);
    parse_ok("+/x/#", "+/x/#", 0);
    parse_ok("a//b", "a//b", 0);
    parse_ok("/{_x9}", "/+", 1);
    parse_ok("with space/é", "with space/é", 0);
    parse_bad("", 0, "empty");
    parse_bad("a/#/b", 5, "last level");
    parse_bad("a/b#", 4, "'#' may not appear");
    parse_bad("a/x+/b", 6, "'+' may not appear");
    parse_bad("a/{x", 4, "'{' may not appear");
    parse_bad("a/{}", 4, "not a column name");
    parse_bad("a/{9x}", 6, "not a column name");
    parse_bad("a/{x-y}", 7, "not a column name");
    parse_bad("{a}/{a}", 7, "named twice");
    parse_bad("a\0b", 3, "'0' may not appear");
    char big[MESH_TOPIC_MAX_LEN + 2];
    memset(big, 'a', sizeof big);
    parse_bad(big, sizeof big, "longer than");
    char deep[200] = "";
    for (int i = 0; i < MESH_TOPIC_MAX_LEVELS + 1; i++)
        strcat(deep, i ? "/x" : "x");
    parse_bad(deep, strlen(deep), "more than 32 levels");
    char named[400] = "";
    for (int i = 0; i < MESH_TOPIC_MAX_NAMED + 1; i++) {
        char lv[16];
        snprintf(lv, sizeof lv, "%s{c%d}", i ? "/" : "", i);
        strcat(named, lv);
    }
    parse_bad(named, strlen(named), "more than 16 named");
}

static bool matches(const char *tmpl, const char *topic, mesh_topic_value_t *vals)
{
    mesh_topic_tmpl_t t;
    mesh_err_t err;
    assert_int_equal(mesh_topic_tmpl_parse(tmpl, strlen(tmpl), &t, &err), MESH_OK);
    bool m = mesh_topic_tmpl_match(&t, topic, strlen(topic), vals);
    /* names point into the template: copy what the caller checks before freeing it */
    mesh_topic_tmpl_free(&t);
    return m;
}

static void test_topic_match(void **state)
{
    (void)state;
    mesh_topic_value_t v[4];
    const char *topic = "factory/lyon/press-7/telemetry";
    assert_true(matches("factory/{site}/{device}/telemetry", topic, v));
    assert_int_equal(v[0].off, 8);
    assert_int_equal(v[0].len, 4);
    assert_int_equal(v[1].off, 13);
    assert_int_equal(v[1].len, 7);
    assert_false(matches("factory/{site}/{device}/telemetry", "factory/lyon/telemetry", v));
    assert_false(matches("factory/{site}/{device}/telemetry", "factory/lyon/p/telemetry/x", v));
    assert_false(matches("factory/{site}", "Factory/lyon", v));
    assert_true(matches("factory/{site}", "factory/", v)); /* an empty level is a level */
    assert_int_equal(v[0].len, 0);
    assert_true(matches("a/#", "a", NULL)); /* '#' matches its parent */
    assert_true(matches("a/#", "a/b/c", NULL));
    assert_false(matches("a/+", "a", NULL));
    assert_true(matches("#", "x/y", NULL));
    assert_false(matches("#", "$SYS/broker/uptime", NULL)); /* $ topics: no first wildcard */
    assert_false(matches("+/broker/uptime", "$SYS/broker/uptime", NULL));
    assert_true(matches("$SYS/{what}/uptime", "$SYS/broker/uptime", v));
}

static bool overlap(const char *a, const char *b)
{
    mesh_topic_tmpl_t x, y;
    mesh_err_t err;
    assert_int_equal(mesh_topic_tmpl_parse(a, strlen(a), &x, &err), MESH_OK);
    assert_int_equal(mesh_topic_tmpl_parse(b, strlen(b), &y, &err), MESH_OK);
    bool r = mesh_topic_tmpl_overlap(&x, &y);
    assert_true(r == mesh_topic_tmpl_overlap(&y, &x)); /* symmetric */
    mesh_topic_tmpl_free(&x);
    mesh_topic_tmpl_free(&y);
    return r;
}

static void test_topic_overlap(void **state)
{
    (void)state;
    assert_true(overlap("factory/{site}/{device}/telemetry", "factory/+/press-1/#"));
    assert_true(overlap("a/b", "a/b"));
    assert_true(overlap("a/#", "a"));
    assert_true(overlap("#", "x/y/z"));
    assert_true(overlap("+/b", "a/+"));
    assert_false(overlap("a/b", "a/c"));
    assert_false(overlap("a/+", "a"));
    assert_false(overlap("a/+/c", "a/b/d"));
    assert_false(overlap("home/{room}/env", "factory/{site}/{device}/telemetry"));
}

/* ---- mappings ---- */

static void json_bad(const char *json, const char *why)
{
    mesh_mqtt_mapping_t m;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_mqtt_mapping_from_json(json, strlen(json), &m, &err);
    if (st == MESH_OK) {
        mesh_mqtt_mapping_free(&m);
        fail_msg("accepted: %s", json);
    }
    if (strstr(err.msg, why) == NULL)
        fail_msg("%s: '%s' does not say '%s'", json, err.msg, why);
}

static void test_mapping_json(void **state)
{
    (void)state;
    const char *ok = "{\"name\":\"press\",\"topic\":\"factory/{site}/{device}/telemetry\","
                     "\"domain\":\"factory-a\",\"product\":\"telemetry\"}";
    mesh_mqtt_mapping_t m;
    mesh_err_t err;
    assert_int_equal(mesh_mqtt_mapping_from_json(ok, strlen(ok), &m, &err), MESH_OK);
    assert_int_equal(m.qos, 1);
    assert_int_equal(m.format, MESH_MQTT_FORMAT_JSON);
    assert_string_equal(m.principal, "mqtt");
    assert_string_equal(m.tmpl.filter, "factory/+/+/telemetry");
    /* it round-trips through its JSON */
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    assert_int_equal(mesh_mqtt_mapping_to_json(&m, true, &b), MESH_OK);
    mesh_mqtt_mapping_t m2;
    assert_int_equal(mesh_mqtt_mapping_from_json(b.data, b.len, &m2, &err), MESH_OK);
    assert_string_equal(m2.topic, m.topic);
    mesh_mqtt_mapping_free(&m2);
    mesh_buf_free(&b);
    mesh_mqtt_mapping_free(&m);

    json_bad("", "malformed JSON");
    json_bad("[]", "expected a JSON object");
    json_bad("{\"name\":\"a\",\"name\":\"b\"}", "malformed JSON"); /* duplicate key */
    json_bad("{\"topic\":\"a\",\"domain\":\"d\",\"product\":\"p\"}", "name is required");
    json_bad("{\"name\":\"a\",\"domain\":\"d\",\"product\":\"p\"}", "topic is required");
    json_bad("{\"name\":\"a\",\"topic\":\"t\",\"product\":\"p\"}", "domain is required");
    json_bad("{\"name\":\"a\",\"topic\":\"t\",\"domain\":\"d\"}", "product is required");
    json_bad("{\"name\":\"A b\",\"topic\":\"t\",\"domain\":\"d\",\"product\":\"p\"}",
             "not a mapping name");
    json_bad("{\"name\":\"a\",\"topic\":\"t\",\"domain\":\"D!\",\"product\":\"p\"}",
             "not a domain name");
    json_bad("{\"name\":\"a\",\"topic\":\"t\",\"domain\":\"d\",\"product\":\"p-x\"}",
             "not a product name");
    json_bad("{\"name\":\"a\",\"topic\":\"t\",\"domain\":\"d\",\"product\":\"p\",\"qos\":2}",
             "qos");
    json_bad("{\"name\":\"a\",\"topic\":\"t\",\"domain\":\"d\",\"product\":\"p\",\"qos\":\"1\"}",
             "qos");
    json_bad("{\"name\":\"a\",\"topic\":\"t\",\"domain\":\"d\",\"product\":\"p\","
             "\"format\":\"csv\"}",
             "not json or lineprotocol");
    json_bad("{\"name\":\"a\",\"topic\":\"t\",\"domain\":\"d\",\"product\":\"p\","
             "\"principal\":\" x\"}",
             "not a principal name");
    json_bad("{\"name\":\"a\",\"topic\":\"a/#/b\",\"domain\":\"d\",\"product\":\"p\"}",
             "topic: topic level 2");
    json_bad("{\"name\":\"a\",\"topic\":\"t\",\"domain\":\"d\",\"product\":\"p\",\"x\":1}",
             "unknown field 'x'");
    json_bad("{\"name\":7,\"topic\":\"t\",\"domain\":\"d\",\"product\":\"p\"}",
             "name: expected a string");
    json_bad("{\"name\":\"\",\"topic\":\"t\",\"domain\":\"d\",\"product\":\"p\"}", "name:");
    char *big = malloc(MESH_MQTT_MAPPING_MAX_JSON + 10);
    memset(big, ' ', MESH_MQTT_MAPPING_MAX_JSON + 9);
    big[MESH_MQTT_MAPPING_MAX_JSON + 9] = '\0';
    json_bad(big, "at most");
    free(big);
}

static void test_mapping_line(void **state)
{
    (void)state;
    mesh_mqtt_mapping_t m;
    mesh_err_t err;
    assert_int_equal(
        mesh_mqtt_mapping_from_line(
            "  env home/{room}/env home-42.climate lineprotocol qos=0 principal=hub", &m, &err),
        MESH_OK);
    assert_string_equal(m.domain, "home-42");
    assert_string_equal(m.product, "climate");
    assert_int_equal(m.format, MESH_MQTT_FORMAT_LP);
    assert_int_equal(m.qos, 0);
    assert_string_equal(m.principal, "hub");
    assert_true(m.from_config);
    mesh_mqtt_mapping_free(&m);
    const char *bad[][2] = {
        {"", "expected NAME TOPIC"},
        {"a b", "expected NAME TOPIC"},
        {"a b nodot", "is not DOMAIN.PRODUCT"},
        {"a b d.p qos=2", "qos is 0 or 1"},
        {"a b d.p xml", "expected json, lineprotocol"},
        {"a b/{x d.p", "topic"},
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(bad); i++) {
        mesh_err_clear(&err);
        if (mesh_mqtt_mapping_from_line(bad[i][0], &m, &err) == MESH_OK) {
            mesh_mqtt_mapping_free(&m);
            fail_msg("accepted: %s", bad[i][0]);
        }
        if (strstr(err.msg, bad[i][1]) == NULL)
            fail_msg("'%s': '%s' does not say '%s'", bad[i][0], err.msg, bad[i][1]);
    }
}

/* ---- one message into a real domain ---- */

#define CONTRACT(id, product, on_invalid)                                                          \
    "apiVersion: v3.1.0\nkind: DataContract\nid: " id "\nversion: 1.0.0\nstatus: active\n"         \
    "domain: factory\nschema:\n  - name: " product "\n"                                            \
    "    customProperties:\n      - property: onInvalid\n        value: " on_invalid "\n"          \
    "    properties:\n"                                                                            \
    "      - name: site\n        logicalType: string\n        required: true\n"                    \
    "        logicalTypeOptions:\n          maxLength: 8\n"                                        \
    "      - name: device\n        logicalType: string\n        primaryKey: true\n"                \
    "        primaryKeyPosition: 1\n"                                                              \
    "      - name: seq\n        logicalType: integer\n        primaryKey: true\n"                  \
    "        primaryKeyPosition: 2\n"                                                              \
    "      - name: temp\n        logicalType: number\n"                                            \
    "        logicalTypeOptions:\n          maximum: 200\n"

typedef struct fixture {
    char dir[64];
    mesh_catalog_t *cat;
    mesh_registry_t *reg;
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
    snprintf(f->dir, sizeof f->dir, "/tmp/mesh-mqtt-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    char path[128];
    snprintf(path, sizeof path, "%s/catalog.db", f->dir);
    mesh_err_t err;
    mesh_domain_opts_t o = {.idem_ttl_ns = 3600LL * MESH_NS_PER_SEC};
    if (mesh_catalog_open(path, &f->cat, &err) != MESH_OK ||
        mesh_registry_open(f->dir, f->cat, &o, &f->reg, &err) != MESH_OK)
        return -1;
    mesh_domain_meta_t m = {.name = "factory"};
    if (mesh_registry_create_domain(f->reg, &m, &err) != MESH_OK)
        return -1;
    mesh_snapshot_t *s = mesh_registry_snapshot(f->reg);
    const char *contracts[] = {CONTRACT("urn:t:rej", "rej", "reject"),
                               CONTRACT("urn:t:quar", "quar", "quarantine")};
    for (size_t i = 0; i < 2; i++) {
        mesh_contract_result_t res;
        mesh_status_t st = mesh_domain_put_contract(s->doms[0].dom, contracts[i],
                                                    strlen(contracts[i]), &res, &err);
        mesh_buf_free(&res.changes);
        if (st != MESH_OK) {
            fprintf(stderr, "contract: %s\n", err.msg);
            return -1;
        }
    }
    mesh_snapshot_put(s);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    mesh_registry_close(f->reg);
    mesh_catalog_close(f->cat);
    nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static mesh_mqtt_result_t ingest(fixture_t *f, const char *product, mesh_mqtt_format_t fmt,
                                 const char *topic, const void *payload, size_t n,
                                 mesh_mqtt_outcome_t *out)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"name\":\"m\",\"topic\":\"f/{site}/{device}\",\"domain\":\"factory\","
             "\"product\":\"%s\",\"format\":\"%s\"}",
             product, mesh_mqtt_format_name(fmt));
    mesh_mqtt_mapping_t m;
    mesh_err_t err;
    assert_int_equal(mesh_mqtt_mapping_from_json(json, strlen(json), &m, &err), MESH_OK);
    mesh_mqtt_ingest_opts_t o = {.max_payload = 256, .limits = MESH_BATCH_DEFAULT_LIMITS};
    mesh_snapshot_t *s = mesh_registry_snapshot(f->reg);
    mesh_mqtt_ingest(&o, &m, s, topic, strlen(topic), payload, n, out);
    mesh_snapshot_put(s);
    mesh_mqtt_mapping_free(&m);
    return out->result;
}

static mesh_product_stats_t stats(fixture_t *f, const char *product)
{
    mesh_snapshot_t *s = mesh_registry_snapshot(f->reg);
    mesh_product_stats_t st;
    mesh_store_product_stats(mesh_domain_store(s->doms[0].dom), product, &st);
    mesh_snapshot_put(s);
    return st;
}

#define S(x) x, strlen(x)

static void test_ingest(void **state)
{
    fixture_t *f = *state;
    mesh_mqtt_outcome_t o;
    const mesh_mqtt_format_t J = MESH_MQTT_FORMAT_JSON, L = MESH_MQTT_FORMAT_LP;
    /* topic levels become columns */
    assert_int_equal(ingest(f, "rej", J, "f/lyon/p1", S("{\"seq\":1,\"temp\":20}"), &o),
                     MESH_MQTT_STORED);
    assert_int_equal(o.rows, 1);
    assert_int_equal(ingest(f, "rej", J, "f/lyon/p1", S("[{\"seq\":2},{\"seq\":3}]"), &o),
                     MESH_MQTT_STORED);
    assert_int_equal(o.rows, 2);
    assert_int_equal(ingest(f, "rej", L, "f/lyon/p2", S("rej seq=1i,temp=1"), &o),
                     MESH_MQTT_STORED);
    /* the same message again merges on the primary key: no new row */
    assert_int_equal(ingest(f, "rej", J, "f/lyon/p1", S("{\"seq\":1,\"temp\":20}"), &o),
                     MESH_MQTT_STORED);
    assert_int_equal(stats(f, "rej").rows, 4);
    /* every kind of bad message goes to the quarantine, whatever onInvalid says */
    struct {
        mesh_mqtt_format_t fmt;
        const char *topic, *payload, *why;
    } bad[] = {
        {J, "f/lyon/p1", "not json", "malformed"},
        {J, "f/lyon/p1", "{\"seq\":9,\"temp\":500}", "temp"},
        {J, "f/lyon/p1", "{\"seq\":9,\"site\":\"x\"}", "given twice"},
        {J, "f/lyon/p1", "[]", "no rows"},
        {J, "f/a-very-long-site/p1", "{\"seq\":9}", "site"},
        {L, "f/lyon/p1", "other seq=1i", "row 1"},
        {L, "f/lyon/p1", "rej seq=", "row 1"},
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(bad); i++) {
        mesh_mqtt_result_t r = ingest(f, "rej", bad[i].fmt, bad[i].topic, S(bad[i].payload), &o);
        if (r != MESH_MQTT_QUARANTINED || strstr(o.reason, bad[i].why) == NULL)
            fail_msg("%s: %s (%s)", bad[i].payload, mesh_mqtt_result_name(r), o.reason);
    }
    assert_int_equal(stats(f, "rej").quarantined, (int64_t)MESH_ARRAY_LEN(bad));
    /* too large: the first KiB is kept; binary payloads are kept as hex */
    char big[300];
    memset(big, 'x', sizeof big);
    assert_int_equal(ingest(f, "rej", J, "f/lyon/p1", big, sizeof big, &o), MESH_MQTT_QUARANTINED);
    assert_non_null(strstr(o.reason, "mqtt_max_payload"));
    const char bin[] = {'{', 0, (char)0xff, '}'};
    assert_int_equal(ingest(f, "rej", J, "f/lyon/p1", bin, sizeof bin, &o), MESH_MQTT_QUARANTINED);
    /* a product that quarantines bad rows keeps the good ones of the same message */
    assert_int_equal(
        ingest(f, "quar", J, "f/lyon/p1", S("[{\"seq\":1},{\"seq\":2,\"temp\":900}]"), &o),
        MESH_MQTT_STORED);
    assert_int_equal(o.rows, 1);
    assert_int_equal(o.quarantined, 1);
    /* no such product: dropped, nothing written */
    assert_int_equal(ingest(f, "nope", J, "f/lyon/p1", S("{\"seq\":1}"), &o), MESH_MQTT_DROPPED);
    /* a topic that does not match the mapping (cannot come from the broker): dropped */
    assert_int_equal(ingest(f, "rej", J, "g/lyon/p1", S("{\"seq\":1}"), &o), MESH_MQTT_DROPPED);
}

int main(void)
{
    mesh_log_min_level = MESH_LOG_ERROR;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic_parse),
        cmocka_unit_test(test_topic_match),
        cmocka_unit_test(test_topic_overlap),
        cmocka_unit_test(test_mapping_json),
        cmocka_unit_test(test_mapping_line),
        cmocka_unit_test_setup_teardown(test_ingest, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
