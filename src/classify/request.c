/*
 * request.c - parsing the classification API's bodies. See request.h.
 */
#include "classify/request.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "classify/detect.h"
#include "classify/discover.h"
#include "core/util.h"

bool mesh_tag_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > MESH_TAG_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

/* A list of strings into out[max][cap] (or one string); check validates each. 1 given, 0
 * absent, -1 error. */
static int names(json_t *j, const char *key, char *out, size_t cap, size_t max, size_t *count,
                 bool (*check)(const char *), const char *what, mesh_err_t *err)
{
    json_t *v = json_object_get(j, key);
    *count = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_array(v)) {
        mesh_err_set(err, MESH_INVALID, "'%s' must be a list of %ss", key, what);
        return -1;
    }
    size_t k = json_array_size(v);
    if (k == 0) {
        mesh_err_set(err, MESH_INVALID, "'%s' is empty", key);
        return -1;
    }
    if (k > max) {
        mesh_err_set(err, MESH_INVALID, "'%s' lists more than %zu names", key, max);
        return -1;
    }
    for (size_t i = 0; i < k; i++) {
        json_t *e = json_array_get(v, i);
        const char *s = json_is_string(e) ? json_string_value(e) : NULL;
        if (s == NULL || strlen(s) != json_string_length(e) || strlen(s) >= cap || !check(s)) {
            mesh_err_set(err, MESH_INVALID, "'%s'[%zu] is not a %s", key, i, what);
            return -1;
        }
        memcpy(out + i * cap, s, strlen(s) + 1);
    }
    *count = k;
    return 1;
}

static bool info_type_ok(const char *s)
{
    return mesh_info_parse(s) != MESH_INFO__COUNT;
}

mesh_status_t mesh_classify_req_parse(mesh_classify_kind_t kind, const char *body, size_t n,
                                      mesh_classify_req_t *out, mesh_err_t *err)
{
    memset(out, 0, sizeof *out);
    out->min_confidence = -1;
    if (n > MESH_CLASSIFY_BODY_MAX)
        return mesh_err_set(err, MESH_TOO_LARGE, "body larger than %d bytes",
                            MESH_CLASSIFY_BODY_MAX);
    /* an empty body (blanks only) is a discovery with the defaults */
    size_t blank = 0;
    while (blank < n && (body[blank] == ' ' || body[blank] == '\t' || body[blank] == '\r' ||
                         body[blank] == '\n'))
        blank++;
    if (blank == n) {
        if (kind == MESH_CLASSIFY_DISCOVER)
            return MESH_OK;
        return mesh_err_set(err, MESH_INVALID, "the body must name 'columns' or say \"all\": true");
    }
    json_error_t je;
    json_t *j = json_loadb(body, n, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL)
        return mesh_err_set(err, MESH_PARSE, "malformed JSON at line %d, column %d: %s", je.line,
                            je.column, je.text);
    mesh_status_t st = MESH_OK;
    if (!json_is_object(j)) {
        st = mesh_err_set(err, MESH_INVALID, "the body must be a JSON object");
        goto out;
    }
    static const char *const discover_keys[] = {"sample", "min_confidence", NULL};
    static const char *const select_keys[] = {"columns", "info_types", "all", "min_confidence",
                                              NULL};
    static const char *const remove_keys[] = {"columns", "tags", "all", NULL};
    const char *const *keys = kind == MESH_CLASSIFY_DISCOVER ? discover_keys
                              : kind == MESH_CLASSIFY_REMOVE ? remove_keys
                                                             : select_keys;
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        bool known = false;
        for (size_t i = 0; keys[i] && !known; i++)
            known = strcmp(k, keys[i]) == 0;
        if (!known) {
            st = mesh_err_set(err, MESH_INVALID, "unknown field '%.60s'", k);
            goto out;
        }
    }
    if ((v = json_object_get(j, "sample")) != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > MESH_DISCOVER_MAX_ROWS) {
            st = mesh_err_set(err, MESH_INVALID, "'sample' is a number of rows, 1 to %d",
                              MESH_DISCOVER_MAX_ROWS);
            goto out;
        }
        out->sample = (int64_t)json_integer_value(v);
    }
    if ((v = json_object_get(j, "min_confidence")) != NULL) {
        double d = json_is_number(v) ? json_number_value(v) : -1;
        if (!json_is_number(v) || !isfinite(d) || d < 0 || d > 1) {
            st = mesh_err_set(err, MESH_INVALID, "'min_confidence' is a number from 0 to 1");
            goto out;
        }
        out->min_confidence = d;
    }
    if (kind == MESH_CLASSIFY_DISCOVER)
        goto out;
    if ((v = json_object_get(j, "all")) != NULL) {
        if (!json_is_boolean(v)) {
            st = mesh_err_set(err, MESH_INVALID, "'all' must be true or false");
            goto out;
        }
        out->all = json_is_true(v);
    }
    if (names(j, "columns", &out->columns[0][0], sizeof out->columns[0], MESH_CLASSIFY_MAX_NAMES,
              &out->ncolumns, mesh_name_column_ok, "column name", err) < 0) {
        st = err ? err->code : MESH_INVALID;
        goto out;
    }
    const char *tkey = kind == MESH_CLASSIFY_REMOVE ? "tags" : "info_types";
    if (names(j, tkey, &out->types[0][0], sizeof out->types[0], MESH_CLASSIFY_MAX_TAGS,
              &out->ntypes, kind == MESH_CLASSIFY_REMOVE ? mesh_tag_name_ok : info_type_ok,
              kind == MESH_CLASSIFY_REMOVE ? "tag" : "known info type", err) < 0) {
        st = err ? err->code : MESH_INVALID;
        goto out;
    }
    if (out->all == (out->ncolumns > 0)) {
        st = mesh_err_set(err, MESH_INVALID,
                          out->all ? "give either 'columns' or \"all\": true, not both"
                                   : "name 'columns', or say \"all\": true");
        goto out;
    }
out:
    json_decref(j);
    if (st == MESH_OK) {
        for (size_t i = 0; i < out->ncolumns; i++)
            out->column_ptrs[i] = out->columns[i];
        for (size_t i = 0; i < out->ntypes; i++)
            out->type_ptrs[i] = out->types[i];
    }
    return st;
}

void mesh_classify_req_select(const mesh_classify_req_t *req, mesh_tag_select_t *sel)
{
    memset(sel, 0, sizeof *sel);
    sel->columns = req->ncolumns ? req->column_ptrs : NULL;
    sel->ncolumns = req->ncolumns;
    sel->types = req->ntypes ? req->type_ptrs : NULL;
    sel->ntypes = req->ntypes;
    sel->min_confidence = req->min_confidence < 0 ? 0 : req->min_confidence;
}
