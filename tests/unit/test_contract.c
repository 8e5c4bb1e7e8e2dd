/*
 * test_contract.c - ODCS v3 contracts: parsing into the model, every refusal (message and
 * line), export round trips, product diffs and version order.
 *
 * Contracts are written inline, one source line per YAML line, so the line numbers the
 * refusal tests expect can be counted in this file.
 */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "catalog/contract.h"
#include "core/util.h"

/* The required header: lines 1..6. */
#define HEAD                                                                                       \
    "apiVersion: v3.1.0\n"                                                                         \
    "kind: DataContract\n"                                                                         \
    "id: c1\n"                                                                                     \
    "version: 1.0.0\n"                                                                             \
    "status: active\n"                                                                             \
    "domain: plant-a\n"

/* One schema object p: lines 7..9, its properties from line 10. */
#define OBJ                                                                                        \
    "schema:\n"                                                                                    \
    "  - name: p\n"                                                                                \
    "    properties:\n"

/* A property: two lines (name, logicalType). */
#define PROP(name, type) "      - name: " name "\n        logicalType: " type "\n"

static const char full_yaml[] =
    "apiVersion: v3.1.0\n"
    "kind: DataContract\n"
    "id: urn:meshd:plant-a:telemetry\n"
    "name: telemetry\n"
    "version: 1.2.3-rc.1\n"
    "status: active\n"
    "domain: plant-a\n"
    "tenant: acme\n"
    "tags: [iot, telemetry]\n"
    "description:\n"
    "  purpose: Line sensor readings.\n"
    "  limitations: Aggregates only leave the site.\n"
    "  usage: |\n"
    "    Monitoring and\n"
    "    maintenance.\n"
    "schema:\n"
    "  - name: readings\n"
    "    physicalName: readings\n"
    "    physicalType: table\n"
    "    logicalType: object\n"
    "    description: One row per sensor per minute.\n"
    "    tags: [hot]\n"
    "    quality:\n"
    "      - metric: rowCount\n"
    "        mustBeGreaterThan: 0\n"
    "    customProperties:\n"
    "      - property: onInvalid\n"
    "        value: quarantine\n"
    "      - property: owner.note\n"
    "        value: {kept: [1, 2]}\n"
    "    properties:\n"
    "      - name: sensor_id\n"
    "        logicalType: string\n"
    "        physicalType: TEXT\n"
    "        required: false\n"
    "        primaryKey: true\n"
    "        primaryKeyPosition: 2\n"
    "        classification: internal\n"
    "        description: Sensor id.\n"
    "        tags: [id, 'pii:none']\n"
    "        logicalTypeOptions:\n"
    "          minLength: 7\n"
    "          maxLength: 7\n"
    "          pattern: '^[A-Z]{2}-\\d{4}$'\n"
    "      - name: ts\n"
    "        logicalType: timestamp\n"
    "        primaryKey: true\n"
    "        primaryKeyPosition: 1\n"
    "        logicalTypeOptions:\n"
    "          timezone: true\n"
    "          defaultTimezone: UTC\n"
    "      - name: celsius\n"
    "        logicalType: number\n"
    "        required: true\n"
    "        logicalTypeOptions:\n"
    "          minimum: -60\n"
    "          exclusiveMaximum: 400.5\n"
    "          multipleOf: 0.1\n"
    "        customProperties:\n"
    "          - property: unit\n"
    "            value: degC\n"
    "            description: Celsius\n"
    "      - name: count\n"
    "        logicalType: integer\n"
    "        unique: true\n"
    "        logicalTypeOptions: {minimum: 0, maximum: 100, exclusiveMinimum: true, format: i64}\n"
    "      - name: state\n"
    "        logicalType: string\n"
    "        customProperties:\n"
    "          - property: enum\n"
    "            value: [idle, running, \"1\", 2]\n"
    "      - name: email\n"
    "        logicalType: string\n"
    "        logicalTypeOptions: {format: email}\n"
    "      - name: secret\n"
    "        logicalType: string\n"
    "        encryptedName: secret_enc\n"
    "        logicalTypeOptions: {format: password}\n"
    "      - name: ok\n"
    "        logicalType: boolean\n"
    "        criticalDataElement: true\n"
    "      - name: day\n"
    "        logicalType: date\n"
    "        logicalTypeOptions: {format: yyyy-MM-dd, minimum: '2020-01-01'}\n"
    "      - name: at\n"
    "        logicalType: time\n"
    "      - name: meta\n"
    "        logicalType: object\n"
    "        logicalTypeOptions: {minProperties: 1, required: [a]}\n"
    "      - name: list\n"
    "        logicalType: array\n"
    "        items: {logicalType: string}\n"
    "        logicalTypeOptions: {minItems: 0, maxItems: 5, uniqueItems: true}\n"
    "  - name: devices\n"
    "    description: Device registry.\n"
    "    properties:\n"
    "      - name: device_id\n"
    "        logicalType: string\n"
    "        primaryKey: true\n"
    "      - name: installed\n"
    "        logicalType: timestamp\n"
    "      - name: serviced\n"
    "        logicalType: timestamp\n"
    "    customProperties:\n"
    "      - property: timeColumn\n"
    "        value: serviced\n"
    "slaProperties:\n"
    "  - property: retention\n"
    "    value: 90\n"
    "    unit: d\n"
    "    element: readings.ts\n"
    "servers:\n"
    "  - server: node-1\n"
    "    type: custom\n"
    "team:\n"
    "  name: plant-a-data\n"
    "  members:\n"
    "    - username: owner@plant-a.example\n"
    "      role: owner\n"
    "price: {priceAmount: 0, priceCurrency: EUR}\n"
    "contractCreatedTs: '2026-01-01T00:00:00Z'\n"
    "customProperties:\n"
    "  - property: owner\n"
    "    value: team-a\n";

static const char min_yaml[] = "apiVersion: v3.0.0\n"
                               "kind: DataContract\n"
                               "id: c1\n"
                               "version: 0.1.0\n"
                               "status: draft\n"
                               "domain: home-42\n"
                               "schema:\n"
                               "  - name: temps\n"
                               "    properties:\n"
                               "      - name: v\n"
                               "        logicalType: number\n";

/* ---- helpers ----------------------------------------------------------------------------- */

static mesh_contract_t *parse_ok(const char *yaml)
{
    mesh_contract_t *c = NULL;
    mesh_err_t err = {0};
    mesh_status_t st = mesh_contract_parse(yaml, strlen(yaml), &c, &err);
    if (st != MESH_OK)
        print_message("unexpected failure: %s: %s\n", mesh_status_name(st), err.msg);
    assert_int_equal(st, MESH_OK);
    assert_non_null(c);
    return c;
}

static void expect_fail_n(const char *yaml, size_t n, mesh_status_t code, const char *msg)
{
    mesh_contract_t *c = (mesh_contract_t *)&c;
    mesh_err_t err = {0};
    mesh_status_t st = mesh_contract_parse(yaml, n, &c, &err);
    if (st != code || strstr(err.msg, msg) == NULL)
        print_message("got %s: %s\nwant %s: ...%s...\n", mesh_status_name(st), err.msg,
                      mesh_status_name(code), msg);
    assert_int_equal(st, code);
    assert_non_null(strstr(err.msg, msg));
    assert_null(c);
}

static void expect_fail(const char *yaml, mesh_status_t code, const char *msg)
{
    expect_fail_n(yaml, strlen(yaml), code, msg);
}

static const mesh_column_t *col(const mesh_product_t *p, const char *name)
{
    int i = mesh_product_col(p, name, strlen(name));
    assert_true(i >= 0);
    return &p->cols[i];
}

static bool re_match(const mesh_column_t *c, const char *s)
{
    return regexec((const regex_t *)c->pattern_re, s, 0, NULL, 0) == 0;
}

static void assert_str_eq_null(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void assert_strs_eq(char **a, size_t an, char **b, size_t bn)
{
    assert_int_equal(an, bn);
    for (size_t i = 0; i < an; i++)
        assert_string_equal(a[i], b[i]);
}

static void assert_cols_equal(const mesh_column_t *a, const mesh_column_t *b)
{
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->type, b->type);
    assert_str_eq_null(a->description, b->description);
    assert_str_eq_null(a->classification, b->classification);
    assert_int_equal(a->required, b->required);
    assert_int_equal(a->primary_key, b->primary_key);
    assert_int_equal(a->pk_position, b->pk_position);
    assert_int_equal(a->unique, b->unique);
    assert_int_equal(a->has_min, b->has_min);
    assert_int_equal(a->has_max, b->has_max);
    assert_int_equal(a->min_exclusive, b->min_exclusive);
    assert_int_equal(a->max_exclusive, b->max_exclusive);
    assert_true(a->min == b->min && a->max == b->max);
    assert_int_equal(a->min_len, b->min_len);
    assert_int_equal(a->max_len, b->max_len);
    assert_str_eq_null(a->pattern, b->pattern);
    assert_int_equal(a->pattern_re != NULL, b->pattern_re != NULL);
    assert_str_eq_null(a->format, b->format);
    assert_int_equal(a->fmt, b->fmt);
    assert_str_eq_null(a->unit, b->unit);
    assert_strs_eq(a->enum_values, a->n_enum, b->enum_values, b->n_enum);
    assert_strs_eq(a->tags, a->n_tags, b->tags, b->n_tags);
}

static void assert_products_equal(const mesh_product_t *a, const mesh_product_t *b)
{
    assert_string_equal(a->domain, b->domain);
    assert_string_equal(a->name, b->name);
    assert_str_eq_null(a->description, b->description);
    assert_int_equal(a->ncols, b->ncols);
    for (size_t i = 0; i < a->ncols; i++)
        assert_cols_equal(&a->cols[i], &b->cols[i]);
    assert_int_equal(a->time_col, b->time_col);
    assert_int_equal(a->nkey, b->nkey);
    for (size_t i = 0; i < a->nkey; i++)
        assert_int_equal(a->key_cols[i], b->key_cols[i]);
    assert_int_equal(a->on_invalid, b->on_invalid);
    assert_strs_eq(a->tags, a->n_tags, b->tags, b->n_tags);
    assert_false(mesh_product_diff(a, b, NULL));
}

static void assert_contracts_equal(const mesh_contract_t *a, const mesh_contract_t *b)
{
    assert_string_equal(a->api_version, b->api_version);
    assert_string_equal(a->id, b->id);
    assert_str_eq_null(a->name, b->name);
    assert_string_equal(a->version, b->version);
    assert_int_equal(a->ver_major, b->ver_major);
    assert_int_equal(a->ver_minor, b->ver_minor);
    assert_int_equal(a->ver_patch, b->ver_patch);
    assert_string_equal(a->status, b->status);
    assert_string_equal(a->domain, b->domain);
    assert_str_eq_null(a->purpose, b->purpose);
    assert_strs_eq(a->tags, a->n_tags, b->tags, b->n_tags);
    assert_int_equal(a->nproducts, b->nproducts);
    for (size_t i = 0; i < a->nproducts; i++)
        assert_products_equal(&a->products[i], &b->products[i]);
}

/* parse -> export -> parse; returns the second contract, the export text in *text. */
static mesh_contract_t *round_trip(const mesh_contract_t *c, const char *product, char **text)
{
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_CONTRACT_MAX_BYTES);
    assert_int_equal(mesh_contract_export(c, product, &b), MESH_OK);
    mesh_contract_t *c2 = parse_ok(b.data);
    *text = mesh_buf_steal(&b, NULL);
    return c2;
}

/* ---- valid contracts ----------------------------------------------------------------------- */

static void test_full_contract(void **state)
{
    (void)state;
    mesh_contract_t *c = parse_ok(full_yaml);
    assert_string_equal(c->api_version, "v3.1.0");
    assert_string_equal(c->id, "urn:meshd:plant-a:telemetry");
    assert_string_equal(c->name, "telemetry");
    assert_string_equal(c->version, "1.2.3-rc.1");
    assert_int_equal(c->ver_major, 1);
    assert_int_equal(c->ver_minor, 2);
    assert_int_equal(c->ver_patch, 3);
    assert_string_equal(c->status, "active");
    assert_string_equal(c->domain, "plant-a");
    assert_string_equal(c->purpose, "Line sensor readings.");
    assert_int_equal(c->n_tags, 2);
    assert_string_equal(c->tags[0], "iot");
    assert_string_equal(c->tags[1], "telemetry");
    assert_string_equal(c->yaml, full_yaml);
    assert_non_null(c->doc);
    assert_int_equal(c->nproducts, 2);

    const mesh_product_t *p = mesh_contract_product(c, "readings");
    assert_ptr_equal(p, &c->products[0]);
    assert_string_equal(p->domain, "plant-a");
    assert_string_equal(p->description, "One row per sensor per minute.");
    assert_int_equal(p->ncols, 12);
    assert_ptr_equal(p->contract, c);
    assert_int_equal(p->object_index, 0);
    assert_int_equal(p->on_invalid, MESH_ON_INVALID_QUARANTINE);
    assert_int_equal(p->n_tags, 1);
    assert_string_equal(p->tags[0], "hot");
    assert_int_equal(p->time_col, 1); /* implicit: the first timestamp */
    assert_int_equal(p->nkey, 2);     /* ordered by primaryKeyPosition */
    assert_int_equal(p->key_cols[0], 1);
    assert_int_equal(p->key_cols[1], 0);

    const mesh_column_t *s = col(p, "sensor_id");
    assert_int_equal(s->type, MESH_LT_STRING);
    assert_string_equal(s->description, "Sensor id.");
    assert_string_equal(s->classification, "internal");
    assert_true(s->required); /* required: false, but a key column */
    assert_true(s->primary_key);
    assert_int_equal(s->pk_position, 2);
    assert_false(s->unique);
    assert_int_equal(s->min_len, 7);
    assert_int_equal(s->max_len, 7);
    assert_string_equal(s->pattern, "^[A-Z]{2}-\\d{4}$");
    assert_non_null(s->pattern_re);
    assert_true(re_match(s, "AB-1234"));
    assert_false(re_match(s, "ab-1234"));
    assert_false(re_match(s, "AB-12x4"));
    assert_null(s->format);
    assert_int_equal(s->fmt, MESH_FMT_NONE);
    assert_null(s->unit);
    assert_null(s->enum_values);
    assert_int_equal(s->n_tags, 2);
    assert_string_equal(s->tags[1], "pii:none");
    assert_false(s->has_min || s->has_max);

    const mesh_column_t *ts = col(p, "ts");
    assert_int_equal(ts->type, MESH_LT_TIMESTAMP);
    assert_true(ts->required && ts->primary_key);
    assert_int_equal(ts->pk_position, 1);
    assert_int_equal(ts->min_len, -1);
    assert_int_equal(ts->max_len, -1);

    const mesh_column_t *ce = col(p, "celsius");
    assert_int_equal(ce->type, MESH_LT_NUMBER);
    assert_true(ce->required);
    assert_false(ce->primary_key);
    assert_int_equal(ce->pk_position, 0);
    assert_true(ce->has_min && ce->has_max);
    assert_false(ce->min_exclusive);
    assert_true(ce->max_exclusive);
    assert_true(ce->min == -60.0 && ce->max == 400.5);
    assert_string_equal(ce->unit, "degC");

    const mesh_column_t *cn = col(p, "count");
    assert_int_equal(cn->type, MESH_LT_INTEGER);
    assert_true(cn->unique);
    assert_false(cn->required);
    assert_true(cn->has_min && cn->min_exclusive && cn->min == 0.0);
    assert_true(cn->has_max && !cn->max_exclusive && cn->max == 100.0);
    assert_string_equal(cn->format, "i64");
    assert_int_equal(cn->fmt, MESH_FMT_OTHER);

    const mesh_column_t *st = col(p, "state");
    assert_int_equal(st->n_enum, 4);
    assert_string_equal(st->enum_values[0], "idle");
    assert_string_equal(st->enum_values[1], "running");
    assert_string_equal(st->enum_values[2], "1");
    assert_string_equal(st->enum_values[3], "2");

    assert_int_equal(col(p, "email")->fmt, MESH_FMT_EMAIL);
    assert_string_equal(col(p, "email")->format, "email");
    assert_int_equal(col(p, "secret")->fmt, MESH_FMT_OTHER);
    assert_int_equal(col(p, "ok")->type, MESH_LT_BOOLEAN);
    assert_int_equal(col(p, "day")->type, MESH_LT_DATE);
    assert_string_equal(col(p, "day")->format, "yyyy-MM-dd");
    assert_int_equal(col(p, "at")->type, MESH_LT_TIME);
    assert_int_equal(col(p, "meta")->type, MESH_LT_OBJECT);
    assert_int_equal(col(p, "list")->type, MESH_LT_ARRAY);

    const mesh_product_t *d = mesh_contract_product(c, "devices");
    assert_ptr_equal(d, &c->products[1]);
    assert_int_equal(d->object_index, 1);
    assert_string_equal(d->description, "Device registry.");
    assert_int_equal(d->on_invalid, MESH_ON_INVALID_REJECT);
    assert_int_equal(d->time_col, 2); /* explicit timeColumn over the first timestamp */
    assert_int_equal(d->nkey, 1);
    assert_int_equal(d->key_cols[0], 0);
    assert_int_equal(d->cols[0].pk_position, 1);
    assert_null(d->tags);

    assert_null(mesh_contract_product(c, "nothing"));
    mesh_contract_free(c);
}

static void test_minimal_contract(void **state)
{
    (void)state;
    mesh_contract_t *c = parse_ok(min_yaml);
    assert_string_equal(c->api_version, "v3.0.0");
    assert_null(c->name);
    assert_null(c->purpose);
    assert_null(c->tags);
    assert_int_equal(c->n_tags, 0);
    assert_int_equal(c->ver_minor, 1);
    assert_int_equal(c->nproducts, 1);
    const mesh_product_t *p = &c->products[0];
    assert_string_equal(p->name, "temps");
    assert_string_equal(p->domain, "home-42");
    assert_null(p->description);
    assert_int_equal(p->time_col, -1);
    assert_int_equal(p->nkey, 0);
    assert_null(p->key_cols);
    assert_int_equal(p->on_invalid, MESH_ON_INVALID_REJECT);
    const mesh_column_t *v = &p->cols[0];
    assert_string_equal(v->name, "v");
    assert_false(v->required || v->primary_key || v->unique || v->has_min || v->has_max);
    assert_int_equal(v->min_len, -1);
    assert_int_equal(v->max_len, -1);
    assert_null(v->pattern);
    assert_null(v->pattern_re);
    assert_int_equal(v->fmt, MESH_FMT_NONE);
    mesh_contract_free(c);
}

static void test_description_string_and_time_column(void **state)
{
    (void)state;
    mesh_contract_t *c = parse_ok(HEAD "description: Just a purpose.\n" OBJ PROP("a", "string")
                                      PROP("t1", "timestamp") PROP("t2", "timestamp"));
    assert_string_equal(c->purpose, "Just a purpose.");
    assert_int_equal(c->products[0].time_col, 1);
    mesh_contract_free(c);

    c = parse_ok(HEAD OBJ PROP("a", "string") PROP("t1", "timestamp")
                     PROP("t2", "timestamp") "    customProperties:\n"
                                             "      - property: timeColumn\n"
                                             "        value: t2\n");
    assert_int_equal(c->products[0].time_col, 2);
    mesh_contract_free(c);
}

static void test_composite_key_order(void **state)
{
    (void)state;
    /* c (position 1), a (position 2), then b and d without a position in declaration order */
    mesh_contract_t *c = parse_ok(HEAD OBJ PROP(
        "a",
        "string") "        primaryKey: true\n"
                  "        primaryKeyPosition: 2\n" PROP(
                      "b",
                      "integer") "        primaryKey: true\n" PROP("c",
                                                                   "string") "        primaryKey: "
                                                                             "true\n"
                                                                             "        "
                                                                             "primaryKeyPosition: "
                                                                             "1\n" PROP(
                                                                                 "d",
                                                                                 "date") "        "
                                                                                         "primaryKe"
                                                                                         "y: true\n"
                                                                                         "        "
                                                                                         "primaryKe"
                                                                                         "yPosition"
                                                                                         ": "
                                                                                         "-1"
                                                                                         "\n" PROP(
                                                                                             "e",
                                                                                             "strin"
                                                                                             "g"));
    const mesh_product_t *p = &c->products[0];
    assert_int_equal(p->nkey, 4);
    assert_int_equal(p->key_cols[0], 2);
    assert_int_equal(p->key_cols[1], 0);
    assert_int_equal(p->key_cols[2], 1);
    assert_int_equal(p->key_cols[3], 3);
    assert_int_equal(p->cols[2].pk_position, 1);
    assert_int_equal(p->cols[0].pk_position, 2);
    assert_int_equal(p->cols[1].pk_position, 3);
    assert_int_equal(p->cols[3].pk_position, 4);
    assert_int_equal(p->cols[4].pk_position, 0);
    for (int i = 0; i < 4; i++)
        assert_true(p->cols[i].required);
    assert_false(p->cols[4].required);
    mesh_contract_free(c);
}

static void test_settings_and_options(void **state)
{
    (void)state;
    mesh_contract_t *c = parse_ok(HEAD OBJ PROP(
        "v", "number") "        logicalTypeOptions:\n"
                       "          minimum: 1\n"
                       "          exclusiveMinimum: 5\n"
                       "          maximum: 10\n"
                       "          exclusiveMaximum: 20\n"
                       "        customProperties:\n"
                       "          - property: enum\n"
                       "            value: [1.5, 2.5]\n"
                       "          - property: unit\n"
                       "            value: m/s\n"
                       "          - property: other\n"
                       "            value: [kept]\n" PROP(
                           "s", "string") "        logicalTypeOptions:\n"
                                          "          pattern: '[\\w.-]+@\\S+\\s?(?:x|y)*'\n"
                                          "    customProperties:\n"
                                          "      - property: onInvalid\n"
                                          "        value: quarantine\n");
    const mesh_product_t *p = &c->products[0];
    assert_int_equal(p->on_invalid, MESH_ON_INVALID_QUARANTINE);
    const mesh_column_t *v = &p->cols[0];
    /* the tighter bound wins: exclusiveMinimum 5 over minimum 1, maximum 10 over 20 */
    assert_true(v->has_min && v->min == 5.0 && v->min_exclusive);
    assert_true(v->has_max && v->max == 10.0 && !v->max_exclusive);
    assert_string_equal(v->unit, "m/s");
    assert_int_equal(v->n_enum, 2);
    assert_string_equal(v->enum_values[1], "2.5");
    const mesh_column_t *s = &p->cols[1];
    assert_true(re_match(s, "a.b-c@host.example"));
    assert_true(re_match(s, "x@y xyx"));
    assert_false(re_match(s, "@host"));
    mesh_contract_free(c);
}

/* ECMA-262 patterns translated to POSIX ERE: what each matches and what it refuses. */
static void test_pattern_translation(void **state)
{
    (void)state;
    static const struct {
        const char *yaml, *yes, *no;
    } cases[] = {
        {"'^\\d{3}$'", "123", "12a"},
        {"'^\\D+$'", "abc", "a1"},
        {"'^\\w+$'", "a_Z9", "a-1"},
        {"'^\\W$'", "-", "a"},
        {"'^\\s\\S$'", " x", "  "},
        {"'^[\\d\\s]+$'", "1 2", "1a"},
        {"'^[^\\d]$'", "a", "1"},
        {"'^a\\.b\\/c$'", "a.b/c", "axb/c"},
        {"'^[\\]\\-\\^]+$'", "]-^", "a"},
        {"'^[a\\\\]+$'", "a\\a", "b"},
        {"'^\\x41\\t$'", "A\t", "A "},
        {"'^(?:ab)+$'", "abab", "aba"},
        {"'^a{2,3}$'", "aaa", "aaaa"},
        {"'^a{b}$'", "a{b}", "ab"},
        {"'^[[:alpha:]]+$'", "abc", "ab1"},
        {"'\\bword\\b'", "a word here", "swordfish"},
        {"'colou?r|gr[ae]y'", "grey", "gry"},
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(cases); i++) {
        char yaml[1024];
        snprintf(yaml, sizeof yaml,
                 HEAD OBJ PROP("v", "string") "        logicalTypeOptions:\n"
                                              "          pattern: %s\n",
                 cases[i].yaml);
        mesh_contract_t *c = parse_ok(yaml);
        const mesh_column_t *v = &c->products[0].cols[0];
        if (!re_match(v, cases[i].yes) || re_match(v, cases[i].no))
            print_message("pattern %s: '%s' should match, '%s' not\n", v->pattern, cases[i].yes,
                          cases[i].no);
        assert_true(re_match(v, cases[i].yes));
        assert_false(re_match(v, cases[i].no));
        mesh_contract_free(c);
    }
}

static void test_find_column(void **state)
{
    (void)state;
    mesh_contract_t *c = parse_ok(HEAD OBJ PROP("Speed", "number") PROP("speed_max", "number"));
    const mesh_product_t *p = &c->products[0];
    assert_int_equal(mesh_product_col(p, "Speed", 5), 0);
    assert_int_equal(mesh_product_col(p, "Speedometer", 5), 0); /* counted: first 5 bytes */
    assert_int_equal(mesh_product_col(p, "speed", 5), -1);      /* case-sensitive */
    assert_int_equal(mesh_product_col(p, "speed_max", 9), 1);
    assert_int_equal(mesh_product_col(p, "speed_ma", 8), -1);
    assert_int_equal(mesh_product_col(NULL, "x", 1), -1);
    mesh_contract_free(c);
}

static void test_ltype_names(void **state)
{
    (void)state;
    static const char *const names[] = {"string", "integer", "number", "boolean", "timestamp",
                                        "date",   "time",    "object", "array"};
    static const char *const sql[] = {"TEXT", "INTEGER", "REAL", "BOOLEAN", "TIMESTAMP",
                                      "DATE", "TIME",    "JSON", "JSON"};
    for (int t = MESH_LT_STRING; t <= MESH_LT_ARRAY; t++) {
        assert_string_equal(mesh_ltype_name((mesh_ltype_t)t), names[t]);
        assert_string_equal(mesh_ltype_sql((mesh_ltype_t)t), sql[t]);
    }
}

/* ---- refusals ------------------------------------------------------------------------------ */

static void test_reject_header(void **state)
{
    (void)state;
    expect_fail(HEAD "owner: me\n" OBJ PROP("v", "string"), MESH_INVALID,
                "owner (line 7): unknown key 'owner'; expected one of version, kind, apiVersion");
    expect_fail("apiVersion: v2.2.0\nkind: DataContract\nid: c1\nversion: 1.0.0\nstatus: active\n"
                "domain: plant-a\n" OBJ PROP("v", "string"),
                MESH_INVALID,
                "apiVersion (line 1): unsupported apiVersion 'v2.2.0'; expected one of v3.0.0, "
                "v3.0.1, v3.0.2, v3.1.0");
    expect_fail("apiVersion: v3.1.0\nkind: DataContract\nversion: 1.0.0\nstatus: active\n"
                "domain: plant-a\n" OBJ PROP("v", "string"),
                MESH_INVALID, "id (line 1): required key is missing");
    expect_fail("apiVersion: v3.1.0\nkind: DataContract\nid: c1\nversion: 1.0.0\nstatus: active\n"
                "schema: []\n",
                MESH_INVALID, "domain (line 1): required key is missing");
    expect_fail("apiVersion: v3.1.0\nkind: Contract\nid: c1\nversion: 1.0.0\nstatus: active\n"
                "domain: plant-a\n" OBJ PROP("v", "string"),
                MESH_INVALID, "kind (line 2): kind must be DataContract, not 'Contract'");
    expect_fail("apiVersion: v3.1.0\nkind: DataContract\nid: ''\nversion: 1.0.0\nstatus: active\n"
                "domain: plant-a\n" OBJ PROP("v", "string"),
                MESH_INVALID, "id (line 3): must not be empty");
    expect_fail("apiVersion: v3.1.0\nkind: DataContract\nid: c1\nversion: 1.0.0\nstatus: active\n"
                "domain: Plant A\n" OBJ PROP("v", "string"),
                MESH_INVALID, "domain (line 6): 'Plant A' is not a valid domain name");
    expect_fail(HEAD "schema: []\n", MESH_INVALID,
                "schema (line 7): a contract needs at least one schema object");
    expect_fail(HEAD "tags: [a, 3]\n" OBJ PROP("v", "string"), MESH_INVALID,
                "tags[1] (line 7): expected a string, got an integer");
    expect_fail(HEAD "servers: {a: 1}\n" OBJ PROP("v", "string"), MESH_INVALID,
                "servers (line 7): expected a sequence, got a mapping");
    expect_fail(HEAD "price: [1]\n" OBJ PROP("v", "string"), MESH_INVALID,
                "price (line 7): expected a mapping, got a sequence");
    expect_fail(HEAD "description: [a]\n" OBJ PROP("v", "string"), MESH_INVALID,
                "description (line 7): expected a mapping or a string, got a sequence");
    expect_fail(HEAD "description:\n  purpose: x\n  audience: y\n" OBJ PROP("v", "string"),
                MESH_INVALID, "description.audience (line 9): unknown key 'audience'");
    expect_fail(HEAD "customProperties:\n  - property: x\n" OBJ PROP("v", "string"), MESH_INVALID,
                "customProperties[0].value (line 8): required key is missing");
    expect_fail(HEAD "customProperties:\n  - value: 1\n" OBJ PROP("v", "string"), MESH_INVALID,
                "customProperties[0].property (line 8): required key is missing");
    expect_fail("- a\n- b\n", MESH_INVALID,
                "contract (line 1): a contract is a YAML mapping of ODCS keys, not a sequence");
    expect_fail("", MESH_INVALID, "contract (line 1): the document is empty");
}

static void test_reject_version(void **state)
{
    (void)state;
    static const char *const bad[] = {"1.0",      "v1.0.0", "1.02.0",  "1.0.0-",
                                      "1.0.0-01", "1.0.0+", "1.0.0.0", "99999999999.0.0"};
    for (size_t i = 0; i < MESH_ARRAY_LEN(bad); i++) {
        char yaml[512], want[128];
        snprintf(yaml, sizeof yaml,
                 "apiVersion: v3.1.0\nkind: DataContract\nid: c1\nversion: %s\nstatus: active\n"
                 "domain: plant-a\n" OBJ PROP("v", "string"),
                 bad[i]);
        snprintf(want, sizeof want, "version (line 4): '%s' is not a semantic version", bad[i]);
        expect_fail(yaml, MESH_INVALID, want);
    }
}

static void test_reject_schema_object(void **state)
{
    (void)state;
    expect_fail(HEAD
                "schema:\n  - name: Bad-Name\n    properties: [{name: v, logicalType: string}]\n",
                MESH_INVALID, "schema[0].name (line 8): 'Bad-Name' is not a valid product name");
    expect_fail(HEAD OBJ PROP("v", "string") "  - name: p\n    properties: [{name: v, "
                                             "logicalType: string}]\n",
                MESH_INVALID, "schema[1].name (line 12): duplicate schema object 'p'");
    expect_fail(HEAD "schema:\n  - name: p\n    logicalType: table\n    properties: []\n",
                MESH_INVALID,
                "schema[0].logicalType (line 9): the logicalType of a schema object is object");
    expect_fail(HEAD "schema:\n  - name: p\n", MESH_INVALID,
                "schema[0].properties (line 8): required key is missing");
    expect_fail(HEAD "schema:\n  - name: p\n    properties: []\n", MESH_INVALID,
                "schema[0].properties (line 9): a schema object needs at least one property");
    expect_fail(HEAD OBJ PROP("v", "string") "    retention: 7d\n", MESH_INVALID,
                "schema[0].retention (line 12): unknown key 'retention'");
    expect_fail(HEAD OBJ PROP("v", "string") "    customProperties:\n"
                                             "      - property: onInvalid\n"
                                             "        value: drop\n",
                MESH_INVALID,
                "schema[0].customProperties[0].value (line 14): onInvalid must be reject or "
                "quarantine");
    expect_fail(HEAD OBJ PROP("v", "string") "    customProperties:\n"
                                             "      - property: timeColumn\n"
                                             "        value: v\n",
                MESH_INVALID,
                "schema[0].customProperties[0].value (line 14): timeColumn 'v' has logicalType "
                "string; it must be timestamp");
    expect_fail(HEAD OBJ PROP("v", "string") "    customProperties:\n"
                                             "      - property: timeColumn\n"
                                             "        value: ts\n",
                MESH_INVALID,
                "schema[0].customProperties[0].value (line 14): timeColumn 'ts' is not a "
                "property of p");
    expect_fail(HEAD OBJ PROP("v", "timestamp") "    customProperties:\n"
                                                "      - property: timeColumn\n"
                                                "        value: v\n"
                                                "      - property: timeColumn\n"
                                                "        value: v\n",
                MESH_INVALID,
                "schema[0].customProperties[1].property (line 15): 'timeColumn' is given twice");
}

static void test_reject_property(void **state)
{
    (void)state;
    expect_fail(HEAD OBJ PROP("v", "float"), MESH_INVALID,
                "schema[0].properties[0].logicalType (line 11): unknown logical type 'float'; "
                "expected one of string, integer, number, boolean, timestamp, date, time, object, "
                "array");
    expect_fail(HEAD OBJ "      - name: v\n", MESH_INVALID,
                "schema[0].properties[0].logicalType (line 10): required key is missing");
    expect_fail(HEAD OBJ PROP("v", "string") PROP("v", "integer"), MESH_INVALID,
                "schema[0].properties[1].name (line 12): duplicate column 'v'");
    expect_fail(HEAD OBJ PROP("Temp", "string") PROP("temp", "integer"), MESH_INVALID,
                "schema[0].properties[1].name (line 12): duplicate column 'temp'");
    expect_fail(HEAD OBJ PROP("2x", "string"), MESH_INVALID,
                "schema[0].properties[0].name (line 10): '2x' is not a valid column name");
    expect_fail(HEAD OBJ PROP("v", "string") "        unit: degC\n", MESH_INVALID,
                "schema[0].properties[0].unit (line 12): unknown key 'unit'; units and enums go "
                "under customProperties");
    expect_fail(HEAD OBJ PROP("v", "string") "        required: yes\n", MESH_INVALID,
                "schema[0].properties[0].required (line 12): expected true or false (a YAML "
                "boolean), got a string");
    expect_fail(HEAD OBJ PROP("v", "string") "        primaryKey: 'true'\n", MESH_INVALID,
                "schema[0].properties[0].primaryKey (line 12): expected true or false");
    expect_fail(HEAD OBJ PROP("v", "string") "        primaryKeyPosition: 0\n", MESH_INVALID,
                "schema[0].properties[0].primaryKeyPosition (line 12): must be -1 (none) or a "
                "position from 1");
    expect_fail(HEAD OBJ PROP("v", "string") "        description: [a]\n", MESH_INVALID,
                "schema[0].properties[0].description (line 12): expected a string, got a "
                "sequence");
    expect_fail(HEAD OBJ PROP("v", "string") "        customProperties:\n"
                                             "          - property: unit\n"
                                             "            value: 3\n",
                MESH_INVALID,
                "schema[0].properties[0].customProperties[0].value (line 14): unit must be a "
                "string, got an integer");
    expect_fail(HEAD OBJ PROP("v", "string") "        customProperties:\n"
                                             "          - property: enum\n"
                                             "            value: a\n",
                MESH_INVALID,
                "schema[0].properties[0].customProperties[0].value (line 14): enum must be a "
                "non-empty sequence of values, got a string");
    expect_fail(HEAD OBJ PROP("v", "string") "        customProperties:\n"
                                             "          - property: enum\n"
                                             "            value: [a, null]\n",
                MESH_INVALID, "enum values must be scalars (not null), got null");
    expect_fail(HEAD OBJ PROP("v", "string") "        customProperties:\n"
                                             "          - property: enum\n"
                                             "            value: [a]\n"
                                             "            note: x\n",
                MESH_INVALID,
                "schema[0].properties[0].customProperties[0].note (line 15): unknown key 'note'");
}

static void test_reject_options(void **state)
{
    (void)state;
    expect_fail(HEAD OBJ PROP("v", "integer") "        logicalTypeOptions:\n"
                                              "          maxLength: 3\n",
                MESH_INVALID,
                "schema[0].properties[0].logicalTypeOptions.maxLength (line 13): option "
                "'maxLength' is not valid for logicalType integer (valid: minimum, maximum, "
                "exclusiveMinimum, exclusiveMaximum, multipleOf, format)");
    expect_fail(HEAD OBJ PROP("v", "boolean") "        logicalTypeOptions: {format: x}\n",
                MESH_INVALID,
                "logicalTypeOptions.format (line 12): option 'format' is not valid for "
                "logicalType boolean (valid: none)");
    expect_fail(HEAD OBJ PROP("v", "string") "        logicalTypeOptions:\n"
                                             "          minLength: 5\n"
                                             "          maxLength: 3\n",
                MESH_INVALID,
                "logicalTypeOptions.maxLength (line 14): maxLength 3 is less than minLength 5");
    expect_fail(HEAD OBJ PROP("v", "string") "        logicalTypeOptions:\n"
                                             "          minLength: -1\n",
                MESH_INVALID, "logicalTypeOptions.minLength (line 13): must not be negative");
    expect_fail(HEAD OBJ PROP("v", "string") "        logicalTypeOptions:\n"
                                             "          minLength: 1.5\n",
                MESH_INVALID,
                "logicalTypeOptions.minLength (line 13): expected an integer, got a number");
    expect_fail(HEAD OBJ PROP("v", "array") "        logicalTypeOptions: {minItems: 3, maxItems: "
                                            "2}\n",
                MESH_INVALID, "maxItems 2 is less than minItems 3");
    expect_fail(HEAD OBJ PROP("v", "number") "        logicalTypeOptions:\n"
                                             "          minimum: 10\n"
                                             "          maximum: 1\n",
                MESH_INVALID,
                "logicalTypeOptions.maximum (line 14): the range is empty (minimum 10, maximum 1)");
    expect_fail(HEAD OBJ PROP("v", "number") "        logicalTypeOptions:\n"
                                             "          minimum: abc\n",
                MESH_INVALID,
                "logicalTypeOptions.minimum (line 13): expected a number, got a string");
    expect_fail(HEAD OBJ PROP("v", "number") "        logicalTypeOptions:\n"
                                             "          exclusiveMinimum: true\n",
                MESH_INVALID,
                "logicalTypeOptions.exclusiveMinimum (line 13): the boolean form needs minimum");
    expect_fail(HEAD OBJ PROP("v", "number") "        logicalTypeOptions:\n"
                                             "          multipleOf: 0\n",
                MESH_INVALID, "logicalTypeOptions.multipleOf (line 13): must be greater than 0");
    expect_fail(HEAD OBJ PROP("v", "string") "        logicalTypeOptions:\n"
                                             "          format: phone\n",
                MESH_INVALID,
                "logicalTypeOptions.format (line 13): unknown string format 'phone'; expected "
                "one of email, uuid");
}

static void test_reject_pattern(void **state)
{
    (void)state;
    /* the pattern as written in YAML, as the message shows it, and the reason */
    static const struct {
        const char *yaml, *shown, *why;
    } cases[] = {
        {"'a{2,1}'", "a{2,1}", "does not compile: "},
        {"'[a-'", "[a-", "is not supported: a [ is not closed"},
        {"'(?=x)y'", "(?=x)y", "is not supported: lookaround and named groups are not supported"},
        {"'(a)\\1'", "(a)\\1", "is not supported: backreferences are not supported"},
        {"'\\p{L}'", "\\p{L}",
         "is not supported: it uses an escape POSIX regular expressions lack"},
        {"'(a'", "(a", "is not supported: a ( is not closed"},
        {"'a)'", "a)", "is not supported: a ) has no ("},
        {"'((a{1000}){1000}){1000}'", "((a{1000}){1000}){1000}",
         "is not supported: it is too complex (nested repetitions)"},
        {"'a{5000}'", "a{5000}", "is not supported: a repetition count is above 1000"},
        {"'[]a]'", "[]a]", "is not supported: it has an empty character class []"},
        {"'[\\D]'", "[\\D]", "is not supported: it uses an escape inside [...]"},
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(cases); i++) {
        char yaml[1024], want[256];
        snprintf(yaml, sizeof yaml,
                 HEAD OBJ PROP("v", "string") "        logicalTypeOptions:\n"
                                              "          pattern: %s\n",
                 cases[i].yaml);
        snprintf(want, sizeof want, "logicalTypeOptions.pattern (line 13): pattern '%s' %s",
                 cases[i].shown, cases[i].why);
        expect_fail(yaml, MESH_INVALID, want);
    }
}

/* ---- quality rules and SLA --------------------------------------------------------------- */

#define QOBJ(rules)                                                                                \
    "schema:\n"                                                                                    \
    "  - name: p\n"                                                                                \
    "    quality:\n" rules "    properties:\n"

#define QPROP(rules)                                                                               \
    "      - name: v\n"                                                                            \
    "        logicalType: string\n"                                                                \
    "        quality:\n" rules

static void test_quality_rules(void **state)
{
    (void)state;
    mesh_contract_t *c =
        parse_ok(HEAD "slaProperties:\n"
                      "  - property: latency\n"
                      "    value: 2\n"
                      "    unit: h\n"
                      "  - property: frequency\n"
                      "    value: 15\n"
                      "    unit: min\n"
                      "  - property: retention\n"
                      "    value: 1\n"
                      "    unit: y\n" QOBJ("      - metric: rowCount\n"
                                           "        mustBeBetween: [1, 100]\n"
                                           "      - type: sql\n"
                                           "        id: q1\n"
                                           "        query: SELECT count(*) FROM {object}\n"
                                           "        mustNotBe: 3\n"
                                           "      - type: text\n"
                                           "        description: prose only\n"
                                           "      - metric: duplicateValues\n"
                                           "        arguments:\n"
                                           "          properties: [v, n]\n"
                                           "        mustBe: 0\n"
                                           "        unit: percent\n")
                          QPROP("          - metric: missingValues\n"
                                "            arguments:\n"
                                "              missingValues: [null, 'n/a']\n"
                                "            mustBeLessThan: 5\n"
                                "            unit: percent\n"
                                "          - rule: invalidValues\n"
                                "            validValues: [a, b]\n"
                                "            mustBeLessOrEqualTo: 2\n"
                                "          - metric: invalidValues\n"
                                "            name: shaped\n"
                                "            arguments:\n"
                                "              pattern: '^[a-z]+$'\n"
                                "            mustBeGreaterOrEqualTo: 0\n"
                                "          - metric: nullValues\n"
                                "            mustNotBeBetween: [10, 20]\n"
                                "            severity: high\n"
                                "            dimension: completeness\n") PROP("n", "integer"));
    const mesh_product_t *p = &c->products[0];
    assert_int_equal(p->sla_latency_ns, 2 * 3600 * MESH_NS_PER_SEC);
    assert_int_equal(p->sla_frequency_ns, 15 * 60 * MESH_NS_PER_SEC);
    assert_int_equal(p->nquality, 7); /* the text rule is not executable */
    const mesh_quality_rule_t *r = p->quality;
    assert_string_equal(r[0].name, "rowCount");
    assert_int_equal(r[0].metric, MESH_QM_ROW_COUNT);
    assert_int_equal(r[0].op, MESH_QOP_IN);
    assert_true(mesh_quality_pass(&r[0], 1) && mesh_quality_pass(&r[0], 100));
    assert_false(mesh_quality_pass(&r[0], 0.5) || mesh_quality_pass(&r[0], 101));
    assert_string_equal(r[1].name, "q1");
    assert_int_equal(r[1].metric, MESH_QM_SQL);
    assert_string_equal(r[1].query, "SELECT count(*) FROM {object}");
    assert_true(mesh_quality_pass(&r[1], 2) && !mesh_quality_pass(&r[1], 3));
    assert_int_equal(r[2].metric, MESH_QM_DUPLICATE_VALUES);
    assert_int_equal(r[2].col, -1);
    assert_int_equal(r[2].ncols, 2);
    assert_int_equal(r[2].cols[0], 0);
    assert_int_equal(r[2].cols[1], 1);
    assert_true(r[2].percent);
    assert_string_equal(r[3].name, "v.missingValues");
    assert_int_equal(r[3].col, 0);
    assert_true(r[3].null_missing);
    assert_int_equal(r[3].nvalues, 1);
    assert_string_equal(r[3].values[0], "n/a");
    assert_string_equal(r[4].name, "v.invalidValues");
    assert_int_equal(r[4].nvalues, 2); /* the 3.0 spelling: rule, validValues beside */
    assert_string_equal(r[5].name, "shaped");
    assert_string_equal(r[5].pattern, "^[a-z]+$");
    assert_int_equal(r[6].op, MESH_QOP_OUT);
    assert_true(mesh_quality_pass(&r[6], 9) && !mesh_quality_pass(&r[6], 15));
    assert_string_equal(r[6].severity, "high");
    assert_string_equal(mesh_qop_name(r[6].op), "mustNotBeBetween");
    assert_string_equal(mesh_qmetric_name(r[6].metric), "nullValues");
    mesh_contract_free(c);
    /* missingValues without arguments: null and the empty string */
    c = parse_ok(HEAD OBJ QPROP("          - metric: missingValues\n"
                                "            mustBe: 0\n"));
    r = c->products[0].quality;
    assert_true(r[0].null_missing);
    assert_int_equal(r[0].nvalues, 1);
    assert_string_equal(r[0].values[0], "");
    mesh_contract_free(c);
}

static void test_reject_quality(void **state)
{
    (void)state;
    expect_fail(HEAD QOBJ("      - metric: nullValues\n"
                          "        mustBe: 0\n") PROP("v", "string"),
                MESH_INVALID,
                "schema[0].quality[0].metric (line 10): nullValues is a metric of a property");
    expect_fail(HEAD OBJ QPROP("          - metric: rowCount\n"
                               "            mustBe: 1\n"),
                MESH_INVALID, "rowCount is a metric of the schema object");
    expect_fail(HEAD OBJ QPROP("          - metric: nulls\n"
                               "            mustBe: 1\n"),
                MESH_INVALID,
                "schema[0].properties[0].quality[0].metric (line 13): unknown metric 'nulls'");
    expect_fail(HEAD OBJ QPROP("          - metric: nullValues\n"), MESH_INVALID,
                "the rule needs an operator");
    expect_fail(HEAD OBJ QPROP("          - metric: nullValues\n"
                               "            mustBe: 0\n"
                               "            mustBeLessThan: 3\n"),
                MESH_INVALID, "a rule has one operator");
    expect_fail(HEAD OBJ QPROP("          - metric: nullValues\n"
                               "            mustBe: zero\n"),
                MESH_INVALID, "expected a number");
    expect_fail(HEAD OBJ QPROP("          - metric: nullValues\n"
                               "            mustBeBetween: [5, 1]\n"),
                MESH_INVALID, "the low bound 5 is above the high bound 1");
    expect_fail(HEAD OBJ QPROP("          - metric: nullValues\n"
                               "            mustBeBetween: [5]\n"),
                MESH_INVALID, "expected two numbers [low, high]");
    expect_fail(HEAD OBJ QPROP("          - metric: nullValues\n"
                               "            mustBe: 0\n"
                               "            unit: rowz\n"),
                MESH_INVALID, "unit must be rows or percent");
    expect_fail(HEAD OBJ QPROP("          - metric: invalidValues\n"
                               "            mustBe: 0\n"),
                MESH_INVALID, "invalidValues needs arguments: validValues or pattern");
    expect_fail(HEAD OBJ QPROP("          - metric: invalidValues\n"
                               "            arguments:\n"
                               "              pattern: '(a'\n"
                               "            mustBe: 0\n"),
                MESH_INVALID, "pattern '(a'");
    expect_fail(HEAD OBJ QPROP("          - metric: nullValues\n"
                               "            arguments:\n"
                               "              missingValues: [x]\n"
                               "            mustBe: 0\n"),
                MESH_INVALID, "missingValues is an argument of missingValues only");
    expect_fail(HEAD OBJ QPROP("          - metric: nullValues\n"
                               "            arguments:\n"
                               "              frob: 1\n"
                               "            mustBe: 0\n"),
                MESH_INVALID, "unknown key 'frob'");
    expect_fail(HEAD QOBJ("      - metric: duplicateValues\n"
                          "        arguments:\n"
                          "          properties: [nope]\n"
                          "        mustBe: 0\n") PROP("v", "string"),
                MESH_INVALID, "'nope' is not a property of p");
    expect_fail(HEAD QOBJ("      - type: sql\n"
                          "        mustBe: 0\n") PROP("v", "string"),
                MESH_INVALID, "schema[0].quality[0].query (line 10): required key is missing");
    expect_fail(HEAD QOBJ("      - type: magic\n"
                          "        mustBe: 0\n") PROP("v", "string"),
                MESH_INVALID, "unknown rule type 'magic'");
    expect_fail(HEAD QOBJ("      - description: what?\n") PROP("v", "string"), MESH_INVALID,
                "a rule needs a type");
    expect_fail(HEAD QOBJ("      - metric: rowCount\n"
                          "        name: r\n"
                          "        mustBe: 1\n"
                          "      - metric: rowCount\n"
                          "        name: r\n"
                          "        mustBe: 2\n") PROP("v", "string"),
                MESH_INVALID, "duplicate quality rule name 'r'");
    expect_fail(HEAD QOBJ("      - metric: rowCount\n"
                          "        mustBe: 1\n"
                          "        unit: percent\n") PROP("v", "string"),
                MESH_INVALID, "percent is not a unit of rowCount");
    expect_fail(HEAD "slaProperties:\n"
                     "  - property: latency\n"
                     "    value: 2\n"
                     "    unit: fortnights\n" OBJ PROP("v", "string"),
                MESH_INVALID,
                "slaProperties[0].unit (line 10): 'fortnights' is not a duration unit");
    expect_fail(HEAD "slaProperties:\n"
                     "  - property: latency\n"
                     "    value: soon\n"
                     "    unit: h\n" OBJ PROP("v", "string"),
                MESH_INVALID, "latency needs a number");
    expect_fail(HEAD "slaProperties:\n"
                     "  - property: latency\n"
                     "    value: 1\n"
                     "    unit: h\n"
                     "    element: other\n" OBJ PROP("v", "string"),
                MESH_INVALID, "element 'other' names no schema object");
}

static void test_reject_yaml(void **state)
{
    (void)state;
    expect_fail("apiVersion: v3.1.0\nkind: DataContract\nid: c1\nid: c2\n", MESH_PARSE,
                "id (line 4): duplicate key 'id'");
    expect_fail(HEAD OBJ PROP("v", "string") "        customProperties:\n"
                                             "          - {property: a, value: {x: 1, x: 2}}\n",
                MESH_PARSE,
                "schema[0].properties[0].customProperties[0].value.x (line 13): duplicate key 'x'");
    expect_fail(HEAD "tags: &t [a]\n" OBJ PROP("v", "string"), MESH_INVALID,
                "tags (line 7): anchors and aliases are not supported");
    expect_fail(HEAD "name: &n x\ntenant: *n\n" OBJ PROP("v", "string"), MESH_INVALID,
                "name (line 7): anchors and aliases are not supported");
    expect_fail(HEAD "price:\n  <<: {a: 1}\n" OBJ PROP("v", "string"), MESH_INVALID,
                "price (line 8): anchors and aliases are not supported (merge key <<)");
    expect_fail(HEAD "name: !!int 3\n" OBJ PROP("v", "string"), MESH_INVALID,
                "name (line 7): YAML tags are not supported (tag:yaml.org,2002:int)");
    expect_fail(HEAD "name: \"a\\0b\"\n" OBJ PROP("v", "string"), MESH_INVALID,
                "name (line 7): NUL characters are not allowed in text");
    expect_fail(HEAD OBJ PROP("v", "string") "---\n" HEAD, MESH_INVALID,
                "contract (line 12): only one YAML document is allowed");
    expect_fail("apiVersion: v3.1.0\nkind: [DataContract\n", MESH_PARSE, "line 3, column 1: ");
    expect_fail("a: b\n  c: d\n", MESH_PARSE,
                "line 2, column 4: mapping values are not allowed in this context");
    expect_fail("a: \"\xff\"\n", MESH_PARSE, "line 1, column 5: invalid leading UTF-8 octet");
    expect_fail("a:\tb: c\n", MESH_PARSE,
                "line 1, column 5: mapping values are not allowed in this context");

    char longkey[400];
    memset(longkey, 'k', 300);
    memcpy(longkey + 300, ": 1\n", 5);
    expect_fail(longkey, MESH_INVALID,
                "contract (line 1): mapping keys longer than 200 bytes are not supported");
}

static void test_reject_bombs(void **state)
{
    (void)state;
    /* depth: a customProperties value nested 40 levels deep */
    char deep[512] = HEAD "customProperties:\n  - property: x\n    value: ";
    for (int i = 0; i < 40; i++)
        strcat(deep, "[");
    for (int i = 0; i < 40; i++)
        strcat(deep, "]");
    strcat(deep, "\n");
    /* root, customProperties, its item: 3 collections; 29 more fit under the limit of 32 */
    char want[256] = "customProperties[0].value";
    for (int i = 0; i < 29; i++)
        strcat(want, "[0]");
    strcat(want, " (line 9): nesting deeper than 32 levels");
    expect_fail(deep, MESH_TOO_LARGE, want);

    /* nodes: a flow sequence of 100001 items in 200 KB */
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    mesh_buf_adds(&b, HEAD "customProperties:\n  - property: x\n    value: [");
    for (int i = 0; i < MESH_CONTRACT_MAX_NODES; i++)
        mesh_buf_adds(&b, "1,");
    mesh_buf_adds(&b, "1]\n");
    assert_true(b.len < MESH_CONTRACT_MAX_BYTES);
    expect_fail_n(b.data, b.len, MESH_TOO_LARGE, "more than 100000 YAML nodes");
    mesh_buf_free(&b);

    /* size: one byte over the limit, refused before anything is read */
    size_t n = MESH_CONTRACT_MAX_BYTES + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, '#', n);
    expect_fail_n(big, n, MESH_TOO_LARGE, "1048577 bytes is more than the limit of 1048576");
    free(big);

    /* columns: 1001 properties in flow style */
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    mesh_buf_adds(&b, HEAD "schema:\n  - name: p\n    properties: [\n");
    for (int i = 0; i <= MESH_CONTRACT_MAX_COLUMNS; i++)
        mesh_buf_printf(&b, "      {name: c%d, logicalType: string},\n", i);
    mesh_buf_adds(&b, "    ]\n");
    expect_fail_n(b.data, b.len, MESH_INVALID,
                  "schema[0].properties (line 9): 1001 properties is more than the limit of 1000");
    mesh_buf_free(&b);
}

/* ---- export ---------------------------------------------------------------------------------- */

static void test_export_round_trip(void **state)
{
    (void)state;
    const char *sources[] = {full_yaml, min_yaml};
    for (size_t i = 0; i < MESH_ARRAY_LEN(sources); i++) {
        mesh_contract_t *c = parse_ok(sources[i]), *c2, *c3;
        char *text, *text2;
        c2 = round_trip(c, NULL, &text);
        assert_contracts_equal(c, c2);
        c3 = round_trip(c2, NULL, &text2); /* export is a fixed point after one pass */
        assert_string_equal(text, text2);
        free(text);
        free(text2);
        mesh_contract_free(c3);
        mesh_contract_free(c2);
        mesh_contract_free(c);
    }
}

static void test_export_layout(void **state)
{
    (void)state;
    mesh_contract_t *c = parse_ok(full_yaml);
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_CONTRACT_MAX_BYTES);
    assert_int_equal(mesh_contract_export(c, NULL, &b), MESH_OK);
    /* block style, 2-space indent, document order, quotes only where needed */
    assert_non_null(strstr(b.data, "apiVersion: v3.1.0\nkind: DataContract\n"));
    assert_non_null(strstr(b.data, "version: \"1.2.3-rc.1\"\n"));
    assert_non_null(strstr(b.data, "tags:\n  - iot\n  - telemetry\n"));
    assert_non_null(strstr(b.data, "  usage: |\n    Monitoring and\n    maintenance.\n"));
    assert_non_null(strstr(b.data, "schema:\n  - name: readings\n    physicalName: readings\n"));
    assert_non_null(strstr(b.data, "          pattern: ^[A-Z]{2}-\\d{4}$\n"));
    assert_non_null(strstr(b.data, "            value:\n              - idle\n"
                                   "              - running\n              - \"1\"\n"
                                   "              - 2\n"));
    assert_non_null(strstr(b.data, "        value:\n          kept:\n            - 1\n"));
    assert_non_null(strstr(b.data, "contractCreatedTs: \"2026-01-01T00:00:00Z\"\n"));
    assert_int_equal(strncmp(b.data, "apiVersion:", 11), 0);
    mesh_buf_free(&b);
    mesh_contract_free(c);
}

static void test_export_one_product(void **state)
{
    (void)state;
    mesh_contract_t *c = parse_ok(full_yaml);
    char *text;
    mesh_contract_t *c2 = round_trip(c, "devices", &text);
    assert_int_equal(c2->nproducts, 1);
    assert_products_equal(&c->products[1], &c2->products[0]);
    assert_int_equal(c2->products[0].object_index, 0);
    assert_null(strstr(text, "readings\n"));
    assert_non_null(strstr(text, "slaProperties:")); /* the rest of the document stays */
    free(text);
    mesh_contract_free(c2);

    mesh_buf_t b;
    mesh_buf_init(&b, MESH_CONTRACT_MAX_BYTES);
    assert_int_equal(mesh_contract_export(c, "nothing", &b), MESH_NOT_FOUND);
    assert_int_equal(b.len, 0);
    mesh_buf_free(&b);
    mesh_contract_free(c);
}

static void test_export_quoting(void **state)
{
    (void)state;
    /* each purpose as written in YAML, and the string it must come back as */
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"plain words", "plain words"},
        {"'yes'", "yes"},
        {"'No'", "No"},
        {"'true'", "true"},
        {"'null'", "null"},
        {"'~'", "~"},
        {"''", ""},
        {"'123'", "123"},
        {"'-1.5e3'", "-1.5e3"},
        {"'.inf'", ".inf"},
        {"'0x1F'", "0x1F"},
        {"'1.0.0'", "1.0.0"},
        {"'a: b'", "a: b"},
        {"'a #b'", "a #b"},
        {"'ends:'", "ends:"},
        {"' lead'", " lead"},
        {"'trail '", "trail "},
        {"'- dash'", "- dash"},
        {"'#hash'", "#hash"},
        {"'&anchor'", "&anchor"},
        {"'*alias'", "*alias"},
        {"'!tag'", "!tag"},
        {"'{flow}'", "{flow}"},
        {"'[flow]'", "[flow]"},
        {"'%pct'", "%pct"},
        {"'@at'", "@at"},
        {"'`tick'", "`tick"},
        {"'\"dq'", "\"dq"},
        {"\"'sq\"", "'sq"},
        {"'---'", "---"},
        {"'<<'", "<<"},
        {"\"tab\\there\"", "tab\there"},
        {"\"cr\\rhere\"", "cr\rhere"},
        {"\"bell\\a\"", "bell\a"},
        {"\"del\\x7f\"", "del\x7f"},
        {"\"nel\\N ls\\L ps\\P\"", "nel\xc2\x85 ls\xe2\x80\xa8 ps\xe2\x80\xa9"},
        {"\"c1\\x80 bom\\uFEFF\"", "c1\xc2\x80 bom\xef\xbb\xbf"},
        {"Température ☃ 𝄞", "Température ☃ 𝄞"},
        {"\"back\\\\slash\"", "back\\slash"},
        {"\"one\\ntwo\"", "one\ntwo"},
        {"\"one\\ntwo\\n\"", "one\ntwo\n"},
        {"\"one\\n\\ntwo\\n\\n\\n\"", "one\n\ntwo\n\n\n"},
        {"\"one\\n  two\\n \\n\"", "one\n  two\n \n"},
        {"\" lead\\nline\"", " lead\nline"},
        {"\"\\nfirst empty\"", "\nfirst empty"},
        {"\"#x\\n- y\\n---\\n...\"", "#x\n- y\n---\n..."},
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(cases); i++) {
        char yaml[1024];
        snprintf(yaml, sizeof yaml, HEAD "description:\n  purpose: %s\n" OBJ PROP("v", "string"),
                 cases[i].yaml);
        mesh_contract_t *c = parse_ok(yaml);
        assert_string_equal(c->purpose, cases[i].want);
        char *text;
        mesh_contract_t *c2 = round_trip(c, NULL, &text);
        if (strcmp(c2->purpose, cases[i].want) != 0)
            print_message("case %zu exported as:\n%s\n", i, text);
        assert_string_equal(c2->purpose, cases[i].want);
        free(text);
        mesh_contract_free(c2);
        mesh_contract_free(c);
    }
}

static void test_export_kept_content(void **state)
{
    (void)state;
    /* keys needing quotes, nested sequences, empty collections, scalars of every kind */
    const char *yaml = HEAD "customProperties:\n"
                            "  - property: x\n"
                            "    value:\n"
                            "      \"a: b\": 1\n"
                            "      \"1\": one\n"
                            "      2: two\n"
                            "      ~: null-key\n"
                            "      empty: {}\n"
                            "      none: []\n"
                            "      nested: [[1, [2]], [], {}]\n"
                            "      nul:\n"
                            "      t: True\n"
                            "      f: 1.5e3\n"
                            "      s: !!str 12\n"
                            "      lit: \"x\\ny\"\n" OBJ PROP("v", "string");
    mesh_contract_t *c = parse_ok(yaml), *c2, *c3;
    char *text, *text2;
    c2 = round_trip(c, NULL, &text);
    c3 = round_trip(c2, NULL, &text2);
    assert_string_equal(text, text2);
    assert_non_null(strstr(text, "      \"a: b\": 1\n      \"1\": one\n      2: two\n"
                                 "      ~: null-key\n      empty: {}\n      none: []\n"));
    assert_non_null(strstr(text, "      nested:\n        -\n          - 1\n          -\n"
                                 "            - 2\n        - []\n        - {}\n"));
    assert_non_null(strstr(text, "      nul: null\n      t: True\n      f: 1.5e3\n"
                                 "      s: \"12\"\n      lit: |-\n        x\n        y\n"));
    free(text);
    free(text2);
    mesh_contract_free(c3);
    mesh_contract_free(c2);
    mesh_contract_free(c);
}

/* ---- diff ------------------------------------------------------------------------------------ */

#define DIFF_BASE                                                                                  \
    PROP("id", "string")                                                                           \
    "        primaryKey: true\n" PROP("ts", "timestamp")                                           \
        PROP("v", "number") "        description: value\n"                                         \
                            "        classification: internal\n"                                   \
                            "        customProperties: [{property: unit, value: C}, {property: "   \
                            "enum, value: [1, 2]}]\n"

static void expect_diff(const char *next_props, bool breaking, const char *want)
{
    mesh_contract_t *a = parse_ok(HEAD OBJ DIFF_BASE);
    char yaml[2048];
    snprintf(yaml, sizeof yaml, HEAD OBJ "%s", next_props);
    mesh_contract_t *b = parse_ok(yaml);
    mesh_buf_t out;
    mesh_buf_init(&out, 4096);
    bool got = mesh_product_diff(&a->products[0], &b->products[0], &out);
    const char *text = out.data ? out.data : "";
    if (got != breaking || strcmp(text, want) != 0)
        print_message("diff gave %d:\n%s---\nwant %d:\n%s---\n", got, text, breaking, want);
    assert_int_equal(got, breaking);
    assert_string_equal(text, want);
    assert_int_equal(mesh_product_diff(&a->products[0], &b->products[0], NULL), breaking);
    mesh_buf_free(&out);
    mesh_contract_free(b);
    mesh_contract_free(a);
}

static void test_diff(void **state)
{
    (void)state;
    expect_diff(DIFF_BASE, false, "");
    expect_diff(DIFF_BASE PROP("w", "string"), false, "column w: added (optional)\n");
    expect_diff(DIFF_BASE PROP("w", "string") "        required: true\n", true,
                "column w: added (required) (breaking)\n");
    expect_diff(PROP("id", "string") "        primaryKey: true\n" PROP("ts", "timestamp"), true,
                "column v: dropped (breaking)\n");
    expect_diff(PROP("id", "string") "        primaryKey: true\n" PROP("ts", "timestamp")
                    PROP("v", "integer") "        description: value\n"
                                         "        classification: internal\n"
                                         "        customProperties: [{property: unit, value: C}, "
                                         "{property: enum, value: [1, 2]}]\n",
                true, "column v: type number -> integer (breaking)\n");
    expect_diff(DIFF_BASE "        required: true\n", true,
                "column v: required false -> true (breaking)\n");
    expect_diff(DIFF_BASE "        unique: true\n", true, "column v: unique added (breaking)\n");
    expect_diff(
        PROP("id", "string") "        primaryKey: true\n" PROP(
            "ts",
            "timestamp") "        primaryKey: true\n" PROP("v",
                                                           "number") "        description: value\n"
                                                                     "        classification: "
                                                                     "internal\n"
                                                                     "        customProperties: "
                                                                     "[{property: unit, value: C}, "
                                                                     "{property: enum, "
                                                                     "value: [1, 2]}]\n",
        true,
        "column ts: required false -> true (breaking)\n"
        "primary key: (id) -> (id, ts) (breaking)\n");
    expect_diff(PROP("id", "string") "        primaryKey: true\n" PROP("ts", "timestamp")
                    PROP("v", "number") "        description: changed\n"
                                        "        classification: restricted\n"
                                        "        customProperties: [{property: unit, value: K}, "
                                        "{property: enum, value: [1, 2, 3]}]\n"
                                        "        logicalTypeOptions: {maximum: 5}\n",
                false,
                "column v: description changed\n"
                "column v: classification internal -> restricted\n"
                "column v: unit C -> K\n"
                "column v: enum changed\n"
                "column v: constraints changed\n");
    expect_diff(DIFF_BASE PROP("ts2", "timestamp") "    customProperties:\n"
                                                   "      - property: timeColumn\n"
                                                   "        value: ts2\n"
                                                   "      - property: onInvalid\n"
                                                   "        value: quarantine\n",
                true,
                "column ts2: added (optional)\n"
                "time column: ts -> ts2 (breaking)\n"
                "onInvalid: reject -> quarantine\n");
    expect_diff(PROP("id", "string") "        primaryKey: true\n" PROP("ts", "string")
                    PROP("v", "number") "        description: value\n"
                                        "        classification: internal\n"
                                        "        customProperties: [{property: unit, value: C}, "
                                        "{property: enum, value: [1, 2]}]\n",
                true,
                "column ts: type timestamp -> string (breaking)\n"
                "time column: ts -> (none) (breaking)\n");
}

static void test_diff_relaxing(void **state)
{
    (void)state;
    /* the reverse direction of breaking changes is not breaking */
    mesh_contract_t *a = parse_ok(HEAD OBJ PROP("v", "number") "        required: true\n"
                                                               "        unique: true\n");
    mesh_contract_t *b = parse_ok(HEAD OBJ PROP("v", "number"));
    mesh_buf_t out;
    mesh_buf_init(&out, 4096);
    assert_false(mesh_product_diff(&a->products[0], &b->products[0], &out));
    assert_string_equal(out.data, "column v: required true -> false\ncolumn v: unique removed\n");
    mesh_buf_free(&out);
    mesh_contract_free(b);
    mesh_contract_free(a);
}

/* ---- versions ------------------------------------------------------------------------------ */

static mesh_contract_t *with_version(const char *v)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "apiVersion: v3.1.0\nkind: DataContract\nid: c1\nversion: '%s'\nstatus: active\n"
             "domain: plant-a\n" OBJ PROP("v", "string"),
             v);
    return parse_ok(yaml);
}

static void test_version_cmp(void **state)
{
    (void)state;
    /* ascending, as in semver.org rule 11 */
    static const char *const order[] = {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
                                        "1.0.0-beta",  "1.0.0-beta.2",  "1.0.0-beta.11",
                                        "1.0.0-rc.1",  "1.0.0",         "1.0.1",
                                        "1.1.0",       "1.10.0",        "2.0.0",
                                        "10.0.0"};
    mesh_contract_t *c[MESH_ARRAY_LEN(order)];
    for (size_t i = 0; i < MESH_ARRAY_LEN(order); i++)
        c[i] = with_version(order[i]);
    for (size_t i = 0; i < MESH_ARRAY_LEN(order); i++)
        for (size_t j = 0; j < MESH_ARRAY_LEN(order); j++) {
            int r = mesh_contract_version_cmp(c[i], c[j]);
            assert_true(i < j ? r < 0 : i > j ? r > 0 : r == 0);
        }
    mesh_contract_t *b1 = with_version("1.0.0+build.1"), *b2 = with_version("1.0.0+build-2");
    assert_int_equal(mesh_contract_version_cmp(b1, b2), 0); /* build metadata is ignored */
    assert_int_equal(mesh_contract_version_cmp(b1, c[7]), 0);
    mesh_contract_t *rb = with_version("1.0.0-rc.1+b7");
    assert_int_equal(mesh_contract_version_cmp(rb, c[6]), 0);
    mesh_contract_free(rb);
    mesh_contract_free(b1);
    mesh_contract_free(b2);
    for (size_t i = 0; i < MESH_ARRAY_LEN(order); i++)
        mesh_contract_free(c[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_contract),
        cmocka_unit_test(test_minimal_contract),
        cmocka_unit_test(test_description_string_and_time_column),
        cmocka_unit_test(test_composite_key_order),
        cmocka_unit_test(test_settings_and_options),
        cmocka_unit_test(test_pattern_translation),
        cmocka_unit_test(test_find_column),
        cmocka_unit_test(test_ltype_names),
        cmocka_unit_test(test_reject_header),
        cmocka_unit_test(test_reject_version),
        cmocka_unit_test(test_reject_schema_object),
        cmocka_unit_test(test_reject_property),
        cmocka_unit_test(test_reject_options),
        cmocka_unit_test(test_reject_pattern),
        cmocka_unit_test(test_reject_yaml),
        cmocka_unit_test(test_reject_bombs),
        cmocka_unit_test(test_export_round_trip),
        cmocka_unit_test(test_export_layout),
        cmocka_unit_test(test_export_one_product),
        cmocka_unit_test(test_export_quoting),
        cmocka_unit_test(test_export_kept_content),
        cmocka_unit_test(test_diff),
        cmocka_unit_test(test_diff_relaxing),
        cmocka_unit_test(test_version_cmp),
        cmocka_unit_test(test_quality_rules),
        cmocka_unit_test(test_reject_quality),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
