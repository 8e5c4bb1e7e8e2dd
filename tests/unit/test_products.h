/*
 * test_products.h - hand-built products for the ingest tests and fuzz targets.
 *
 * Built in code (not parsed from ODCS YAML) so the ingest tests depend on nothing but the
 * model in catalog/contract.h. Each tp_*() returns a calloc'd test_product_t that
 * tp_free() releases (with its compiled patterns).
 *
 *   readings  factory sensor readings (time series): device (string, pk, pattern),
 *             ts (timestamp, pk, time column), temp (number -50..200, unit C), status
 *             (string, enum ok/warn/fail), count (integer >= 0), on (boolean);
 *             on_invalid reject, or quarantine with tp_readings(true) ("readings_q")
 *   registry  device registry, not a time series: id (uuid, pk), email, host (hostname),
 *             ip4, ip6, url (uri), name (string 2..8 characters), born (date), opens (time),
 *             meta (object), tags (array), level (integer, exclusive 0..10), code (string,
 *             pattern ^[A-Z]{2}-[0-9]{4}$)
 *   kinds     one column per type and check, nothing required, for conversion tests
 */
#ifndef MESH_TEST_PRODUCTS_H
#define MESH_TEST_PRODUCTS_H

#include <regex.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/contract.h"
#include "ingest/batch.h"

#define TP_MAX_COLS 32

typedef struct test_product {
    mesh_product_t p;
    mesh_column_t cols[TP_MAX_COLS];
    int key[4];
    regex_t re[4];
    int nre;
} test_product_t;

static char *tp_status_enum[] = {"ok", "warn", "fail"};
static char *tp_int_enum[] = {"1", "2", "3"};
static char *tp_num_enum[] = {"0.5", "1.5"};

static inline mesh_column_t *tp_col(test_product_t *tp, const char *name, mesh_ltype_t type)
{
    mesh_column_t *c = &tp->cols[tp->p.ncols++];
    memset(c, 0, sizeof *c);
    c->name = (char *)name;
    c->type = type;
    c->min_len = -1;
    c->max_len = -1;
    return c;
}

static inline void tp_pattern(test_product_t *tp, mesh_column_t *c, const char *ere)
{
    regex_t *re = &tp->re[tp->nre++];
    if (regcomp(re, ere, REG_EXTENDED | REG_NOSUB) != 0)
        abort();
    c->pattern = (char *)ere;
    c->pattern_re = re;
}

static inline void tp_range(mesh_column_t *c, double min, double max, bool exclusive)
{
    c->has_min = c->has_max = true;
    c->min = min;
    c->max = max;
    c->min_exclusive = c->max_exclusive = exclusive;
}

static inline void tp_key(test_product_t *tp, mesh_column_t *c)
{
    c->primary_key = true;
    c->required = true;
    c->pk_position = (int)tp->p.nkey + 1;
    tp->key[tp->p.nkey++] = (int)(c - tp->cols);
}

static inline test_product_t *tp_new(const char *name, mesh_on_invalid_t on_invalid)
{
    test_product_t *tp = calloc(1, sizeof *tp);
    if (tp == NULL)
        abort();
    tp->p.domain = (char *)"factory-a";
    tp->p.name = (char *)name;
    tp->p.cols = tp->cols;
    tp->p.key_cols = tp->key;
    tp->p.time_col = -1;
    tp->p.on_invalid = on_invalid;
    return tp;
}

static inline test_product_t *tp_readings(bool quarantine)
{
    test_product_t *tp = tp_new(quarantine ? "readings_q" : "readings",
                                quarantine ? MESH_ON_INVALID_QUARANTINE : MESH_ON_INVALID_REJECT);
    mesh_column_t *c = tp_col(tp, "device", MESH_LT_STRING);
    tp_key(tp, c);
    tp_pattern(tp, c, "^[a-z][a-z0-9-]*$");
    c = tp_col(tp, "ts", MESH_LT_TIMESTAMP);
    tp_key(tp, c);
    tp->p.time_col = 1;
    c = tp_col(tp, "temp", MESH_LT_NUMBER);
    tp_range(c, -50, 200, false);
    c->unit = (char *)"C";
    c = tp_col(tp, "status", MESH_LT_STRING);
    c->enum_values = tp_status_enum;
    c->n_enum = 3;
    c = tp_col(tp, "count", MESH_LT_INTEGER);
    c->has_min = true;
    c->min = 0;
    tp_col(tp, "on", MESH_LT_BOOLEAN);
    return tp;
}

static inline test_product_t *tp_registry(void)
{
    test_product_t *tp = tp_new("registry", MESH_ON_INVALID_REJECT);
    mesh_column_t *c = tp_col(tp, "id", MESH_LT_STRING);
    c->fmt = MESH_FMT_UUID;
    c->format = (char *)"uuid";
    tp_key(tp, c);
    tp_col(tp, "email", MESH_LT_STRING)->fmt = MESH_FMT_EMAIL;
    tp_col(tp, "host", MESH_LT_STRING)->fmt = MESH_FMT_HOSTNAME;
    tp_col(tp, "ip4", MESH_LT_STRING)->fmt = MESH_FMT_IPV4;
    tp_col(tp, "ip6", MESH_LT_STRING)->fmt = MESH_FMT_IPV6;
    tp_col(tp, "url", MESH_LT_STRING)->fmt = MESH_FMT_URI;
    c = tp_col(tp, "name", MESH_LT_STRING);
    c->min_len = 2;
    c->max_len = 8;
    tp_col(tp, "born", MESH_LT_DATE);
    tp_col(tp, "opens", MESH_LT_TIME);
    tp_col(tp, "meta", MESH_LT_OBJECT);
    tp_col(tp, "tags", MESH_LT_ARRAY);
    tp_range(tp_col(tp, "level", MESH_LT_INTEGER), 0, 10, true);
    tp_pattern(tp, tp_col(tp, "code", MESH_LT_STRING), "^[A-Z]{2}-[0-9]{4}$");
    return tp;
}

static inline test_product_t *tp_kinds(void)
{
    test_product_t *tp = tp_new("kinds", MESH_ON_INVALID_REJECT);
    tp_col(tp, "s", MESH_LT_STRING);
    mesh_column_t *c = tp_col(tp, "s_len", MESH_LT_STRING);
    c->min_len = 2;
    c->max_len = 5;
    tp_pattern(tp, tp_col(tp, "s_pat", MESH_LT_STRING), "^[A-Z]{2}-[0-9]{4}$");
    tp_col(tp, "s_email", MESH_LT_STRING)->fmt = MESH_FMT_EMAIL;
    tp_col(tp, "s_uuid", MESH_LT_STRING)->fmt = MESH_FMT_UUID;
    tp_col(tp, "s_uri", MESH_LT_STRING)->fmt = MESH_FMT_URI;
    tp_col(tp, "s_host", MESH_LT_STRING)->fmt = MESH_FMT_HOSTNAME;
    tp_col(tp, "s_ip4", MESH_LT_STRING)->fmt = MESH_FMT_IPV4;
    tp_col(tp, "s_ip6", MESH_LT_STRING)->fmt = MESH_FMT_IPV6;
    c = tp_col(tp, "s_enum", MESH_LT_STRING);
    c->enum_values = tp_status_enum;
    c->n_enum = 3;
    tp_col(tp, "i", MESH_LT_INTEGER);
    tp_range(tp_col(tp, "i_rng", MESH_LT_INTEGER), 0, 100, false);
    tp_range(tp_col(tp, "i_ex", MESH_LT_INTEGER), 0, 10, true);
    c = tp_col(tp, "i_enum", MESH_LT_INTEGER);
    c->enum_values = tp_int_enum;
    c->n_enum = 3;
    tp_col(tp, "n", MESH_LT_NUMBER);
    tp_range(tp_col(tp, "n_rng", MESH_LT_NUMBER), -50, 200, false);
    tp_range(tp_col(tp, "n_ex", MESH_LT_NUMBER), 0, 1, true);
    c = tp_col(tp, "n_enum", MESH_LT_NUMBER);
    c->enum_values = tp_num_enum;
    c->n_enum = 2;
    tp_col(tp, "b", MESH_LT_BOOLEAN);
    tp_col(tp, "ts", MESH_LT_TIMESTAMP);
    tp_col(tp, "d", MESH_LT_DATE);
    tp_col(tp, "t", MESH_LT_TIME);
    tp_col(tp, "o", MESH_LT_OBJECT);
    tp_col(tp, "a", MESH_LT_ARRAY);
    return tp;
}

static inline void tp_free(test_product_t *tp)
{
    if (tp == NULL)
        return;
    for (int i = 0; i < tp->nre; i++)
        regfree(&tp->re[i]);
    free(tp);
}

static inline int tp_colidx(const test_product_t *tp, const char *name)
{
    for (size_t i = 0; i < tp->p.ncols; i++)
        if (strcmp(tp->cols[i].name, name) == 0)
            return (int)i;
    abort();
}

/* A catalog of test products for mesh_product_lookup_fn: domain "factory-a". */
typedef struct tp_catalog {
    test_product_t *v[8];
    size_t n;
} tp_catalog_t;

static inline const mesh_product_t *tp_lookup(void *arg, const char *domain, const char *name)
{
    tp_catalog_t *cat = arg;
    if (strcmp(domain, "factory-a") != 0)
        return NULL;
    for (size_t i = 0; i < cat->n; i++)
        if (strcmp(cat->v[i]->p.name, name) == 0)
            return &cat->v[i]->p;
    return NULL;
}

/* The catalog the fuzz targets parse against, built once (never freed: it lives as long as
 * the process, which LeakSanitizer accepts for globals). */
static inline tp_catalog_t *tp_fuzz_catalog(void)
{
    static tp_catalog_t cat;
    if (cat.n == 0) {
        cat.v[0] = tp_readings(false);
        cat.v[1] = tp_readings(true);
        cat.v[2] = tp_registry();
        cat.v[3] = tp_kinds();
        cat.n = 4;
    }
    return &cat;
}

/* Checks the log record of a usable batch: encode, decode through cat, encode again; both
 * encodings must be the same bytes. Aborts (for the fuzzer to report) when they are not. */
static inline void tp_check_round_trip(const mesh_batch_t *b, tp_catalog_t *cat)
{
    if (mesh_batch_failed(b))
        return;
    mesh_buf_t one, two;
    mesh_buf_init(&one, MESH_BUF_UNLIMITED);
    mesh_buf_init(&two, MESH_BUF_UNLIMITED);
    if (mesh_batch_encode(b, "fuzz-key", &one) != MESH_OK)
        abort();
    mesh_batch_t d;
    mesh_batch_init(&d, "", MESH_BATCH_DEFAULT_LIMITS);
    char idem[256];
    mesh_err_t err;
    if (mesh_batch_decode((const uint8_t *)one.data, one.len, tp_lookup, cat, &d, idem, sizeof idem,
                          &err) != MESH_OK)
        abort();
    if (strcmp(idem, "fuzz-key") != 0 || mesh_batch_good_rows(&d) != mesh_batch_good_rows(b) ||
        mesh_batch_quarantined_rows(&d) != mesh_batch_quarantined_rows(b))
        abort();
    if (mesh_batch_encode(&d, "fuzz-key", &two) != MESH_OK || two.len != one.len ||
        memcmp(one.data, two.data, one.len) != 0)
        abort();
    mesh_batch_free(&d);
    mesh_buf_free(&one);
    mesh_buf_free(&two);
}

/* The first kept error whose reason equals reason (and whose row and column match when row is
 * not 0 and column is not NULL), or NULL. */
static inline const mesh_row_error_t *tp_find_error(const mesh_batch_t *b, uint32_t row,
                                                    const char *column, const char *reason)
{
    for (size_t i = 0; i < b->nerrors; i++) {
        const mesh_row_error_t *e = &b->errors[i];
        if (strcmp(e->reason, reason) != 0)
            continue;
        if (row != 0 && e->row != row)
            continue;
        if (column != NULL && strcmp(e->column, column) != 0)
            continue;
        return e;
    }
    return NULL;
}

#endif
