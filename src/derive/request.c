/*
 * request.c - the body of POST /v1/derive/{domain}/{product}: outside input, bounded, fuzzed
 * (fuzz/fuzz_derive_request.c).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "derive/derive.h"

void mesh_derivation_free(mesh_derivation_t *d)
{
    if (d == NULL)
        return;
    free(d->source);
    for (size_t i = 0; i < d->ngroup; i++)
        free(d->group[i]);
    free(d->group);
    for (size_t i = 0; i < d->ncolumns; i++)
        free(d->columns[i]);
    free(d->columns);
    free(d->sql);
    free(d->definer);
    free(d);
}

static mesh_status_t names(const json_t *a, const char *what, char ***out, size_t *n,
                           mesh_err_t *err)
{
    if (!json_is_array(a) || json_array_size(a) > MESH_DERIVE_MAX_COLS)
        return mesh_err_set(err, MESH_INVALID, "%s must be a list of at most %d column names", what,
                            MESH_DERIVE_MAX_COLS);
    size_t k = json_array_size(a);
    if (k == 0)
        return MESH_OK;
    if ((*out = calloc(k, sizeof **out)) == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    for (size_t i = 0; i < k; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (s == NULL || !mesh_name_column_ok(s))
            return mesh_err_set(err, MESH_INVALID, "%s[%zu] is not a column name", what, i);
        for (size_t j = 0; j < i; j++) /* twice would name two output columns alike */
            if (strcmp((*out)[j], s) == 0)
                return mesh_err_set(err, MESH_INVALID, "%s names %s twice", what, s);
        if (((*out)[i] = mesh_strdup(s)) == NULL)
            return mesh_err_set(err, MESH_NOMEM, "out of memory");
        (*n)++;
    }
    return MESH_OK;
}

/* The first byte (1-based; 0: none) of s that a YAML document cannot carry: DEL, C1, the
 * byte order mark and the noncharacters U+FFFE/U+FFFF anywhere, and C0 controls unless c0
 * (the contract writer escapes those in a query). */
static size_t yaml_unfit(const char *s, bool c0)
{
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        bool bad = (*c < 0x20 && !c0) || *c == 0x7f ||
                   (*c == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f) ||
                   (*c == 0xef && c[1] == 0xbb && c[2] == 0xbf) ||
                   (*c == 0xef && c[1] == 0xbf && (c[2] == 0xbe || c[2] == 0xbf));
        if (bad)
            return (size_t)(c - (const unsigned char *)s) + 1;
    }
    return 0;
}

mesh_status_t mesh_derive_request_parse(const char *p, size_t n, mesh_derivation_t **out,
                                        char *desc, size_t cap, mesh_err_t *err)
{
    *out = NULL;
    if (cap)
        desc[0] = '\0';
    if (n > MESH_DERIVE_REQUEST_MAX)
        return mesh_err_set(err, MESH_TOO_LARGE, "the request is larger than %d bytes",
                            MESH_DERIVE_REQUEST_MAX);
    json_error_t je;
    json_t *root = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return mesh_err_set(err, MESH_PARSE, "not JSON: %s (line %d)", je.text, je.line);
    mesh_status_t st = MESH_OK;
    mesh_derivation_t *d = calloc(1, sizeof *d);
    const char *key;
    json_t *v;
    if (d == NULL) {
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
        goto out;
    }
    if (!json_is_object(root)) {
        st = mesh_err_set(err, MESH_INVALID, "the request must be a JSON object");
        goto out;
    }
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "aggregate") != 0 && strcmp(key, "description") != 0 &&
            strcmp(key, "sql") != 0 && strcmp(key, "refresh") != 0) {
            st = mesh_err_set(err, MESH_INVALID,
                              "unknown key (aggregate, sql, refresh, description)");
            goto out;
        }
    }
    v = json_object_get(root, "description");
    if (v) {
        const char *s = json_string_value(v);
        if (s == NULL || strlen(s) >= cap || strlen(s) > 1000) {
            st = mesh_err_set(err, MESH_INVALID,
                              "description must be a text of at most 1000 "
                              "bytes");
            goto out;
        }
        /* the description goes into the product's contract (YAML): no control characters
         * (C0, DEL, C1), which YAML does not allow in a document */
        size_t at = yaml_unfit(s, false);
        if (at) {
            st = mesh_err_set(err, MESH_INVALID,
                              "description: control characters are not allowed (byte %zu)", at);
            goto out;
        }
        snprintf(desc, cap, "%s", s);
    }
    json_t *sql = json_object_get(root, "sql");
    if (sql != NULL) {
        if (json_object_get(root, "aggregate") != NULL) {
            st = mesh_err_set(err, MESH_INVALID, "give sql or aggregate, not both");
            goto out;
        }
        d->kind = MESH_DERIVE_SQL;
        const char *q = json_string_value(sql);
        size_t ql = q ? json_string_length(sql) : 0;
        if (q == NULL || ql == 0 || ql > MESH_DERIVE_MAX_SQL || strlen(q) != ql) {
            st = mesh_err_set(err, MESH_INVALID, "sql must be a query of 1 to %d bytes",
                              MESH_DERIVE_MAX_SQL);
            goto out;
        }
        /* the query goes into the product's contract (YAML) */
        size_t at = yaml_unfit(q, true);
        if (at) {
            st = mesh_err_set(err, MESH_INVALID,
                              "sql: control characters are not allowed (byte %zu)", at);
            goto out;
        }
        if ((d->sql = mesh_strdup(q)) == NULL) {
            st = mesh_err_set(err, MESH_NOMEM, "out of memory");
            goto out;
        }
        if ((v = json_object_get(root, "refresh")) != NULL) {
            const char *r = json_string_value(v);
            if (r == NULL || mesh_duration_parse(r, &d->refresh_ns) != MESH_OK ||
                d->refresh_ns < 1000000000LL || d->refresh_ns > 366LL * 86400 * 1000000000LL) {
                st = mesh_err_set(err, MESH_INVALID,
                                  "refresh must be a duration from 1s to 366d, e.g. \"5m\"");
                goto out;
            }
        }
        goto out;
    }
    if (json_object_get(root, "refresh") != NULL) {
        st = mesh_err_set(err, MESH_INVALID, "refresh is for a derivation by sql");
        goto out;
    }
    json_t *agg = json_object_get(root, "aggregate");
    if (!json_is_object(agg)) {
        st = mesh_err_set(err, MESH_INVALID,
                          "aggregate must be an object (source, bucket, "
                          "groupBy, columns)");
        goto out;
    }
    json_object_foreach(agg, key, v)
    {
        if (strcmp(key, "source") != 0 && strcmp(key, "bucket") != 0 &&
            strcmp(key, "groupBy") != 0 && strcmp(key, "columns") != 0) {
            st = mesh_err_set(err, MESH_INVALID,
                              "aggregate: unknown key (source, bucket, groupBy, columns)");
            goto out;
        }
    }
    d->kind = MESH_DERIVE_AGGREGATE;
    const char *src = json_string_value(json_object_get(agg, "source"));
    const char *bucket = json_string_value(json_object_get(agg, "bucket"));
    if (src == NULL || !mesh_name_product_ok(src)) {
        st = mesh_err_set(err, MESH_INVALID, "aggregate.source must name a product");
        goto out;
    }
    if ((d->source = mesh_strdup(src)) == NULL) {
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
        goto out;
    }
    if (bucket == NULL || mesh_duration_parse(bucket, &d->bucket_ns) != MESH_OK ||
        d->bucket_ns < 1000000LL || d->bucket_ns > 366LL * 86400 * 1000000000LL) {
        st = mesh_err_set(err, MESH_INVALID,
                          "aggregate.bucket must be a duration from 1ms to 366d, e.g. \"1m\"");
        goto out;
    }
    if ((v = json_object_get(agg, "groupBy")) != NULL) {
        d->group_given = true;
        if ((st = names(v, "groupBy", &d->group, &d->ngroup, err)) != MESH_OK)
            goto out;
    }
    if ((v = json_object_get(agg, "columns")) == NULL) {
        st = mesh_err_set(err, MESH_INVALID, "aggregate.columns is missing");
        goto out;
    }
    if ((st = names(v, "columns", &d->columns, &d->ncolumns, err)) != MESH_OK)
        goto out;
    if (d->ncolumns == 0)
        st = mesh_err_set(err, MESH_INVALID, "aggregate.columns needs a column");
out:
    json_decref(root);
    if (st != MESH_OK) {
        mesh_derivation_free(d);
        return st;
    }
    *out = d;
    return MESH_OK;
}
