/*
 * request.c - parsing a query request body (JSON or raw SQL).
 */
#include "query/request.h"

#include "core/util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "query/query.h"

void mesh_query_request_free(mesh_query_request_t *r)
{
    if (r == NULL)
        return;
    free(r->sql);
    memset(r, 0, sizeof *r);
}

static mesh_status_t set_sql(mesh_query_request_t *out, const char *s, size_t n, mesh_err_t *err)
{
    if (n > MESH_QUERY_MAX_SQL)
        return mesh_err_set(err, MESH_TOO_LARGE, "query text longer than %d bytes",
                            MESH_QUERY_MAX_SQL);
    if (memchr(s, '\0', n))
        return mesh_err_set(err, MESH_INVALID, "the query text holds a NUL byte");
    out->sql = malloc(n + 1);
    if (out->sql == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    memcpy(out->sql, s, n);
    out->sql[n] = '\0';
    out->sql_len = n;
    return MESH_OK;
}

static mesh_status_t set_word(char *dst, size_t cap, json_t *v, const char *key, mesh_err_t *err)
{
    const char *s = json_string_value(v);
    if (s == NULL || json_string_length(v) >= cap)
        return mesh_err_set(err, MESH_INVALID, "'%s' must be a short string", key);
    memcpy(dst, s, json_string_length(v) + 1);
    return MESH_OK;
}

static mesh_status_t set_count(int64_t *dst, json_t *v, const char *key, mesh_err_t *err)
{
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return mesh_err_set(err, MESH_INVALID, "'%s' must be a positive integer", key);
    *dst = json_integer_value(v);
    return MESH_OK;
}

mesh_status_t mesh_query_request_parse(const char *body, size_t n, bool raw_sql,
                                       mesh_query_request_t *out, mesh_err_t *err)
{
    memset(out, 0, sizeof *out);
    if (n > MESH_QUERY_REQUEST_MAX)
        return mesh_err_set(err, MESH_TOO_LARGE, "query request larger than %d bytes",
                            MESH_QUERY_REQUEST_MAX);
    if (raw_sql)
        return set_sql(out, body, n, err);
    json_error_t je;
    json_t *j = json_loadb(body, n, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        /* jansson names its own flag there: say what it means to the client */
        if (strstr(je.text, "JSON_ALLOW_NUL"))
            return mesh_err_set(err, MESH_PARSE,
                                "malformed JSON at line %d, column %d: a string holds \\u0000 "
                                "(a NUL character)",
                                je.line, je.column);
        return mesh_err_set(err, MESH_PARSE, "malformed JSON at line %d, column %d: %s", je.line,
                            je.column, je.text);
    }
    mesh_status_t st = MESH_OK;
    if (!json_is_object(j)) {
        st = mesh_err_set(err, MESH_INVALID, "the body must be {\"sql\": \"...\"}");
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        if (strcmp(key, "sql") == 0) {
            if (!json_is_string(v))
                st = mesh_err_set(err, MESH_INVALID, "'sql' must be a string");
            else
                st = set_sql(out, json_string_value(v), json_string_length(v), err);
        } else if (strcmp(key, "format") == 0) {
            st = set_word(out->format, sizeof out->format, v, key, err);
        } else if (strcmp(key, "time_format") == 0) {
            st = set_word(out->time_format, sizeof out->time_format, v, key, err);
        } else if (strcmp(key, "timeout_ms") == 0) {
            st = set_count(&out->timeout_ms, v, key, err);
        } else if (strcmp(key, "max_rows") == 0) {
            st = set_count(&out->max_rows, v, key, err);
        } else if (strcmp(key, "min_position") == 0) {
            /* {"stream": "MESHD_DOM_<domain>", "seq": N}: read-your-writes (docs/mesh.md) */
            json_t *sv = json_object_get(v, "stream"), *qv = json_object_get(v, "seq");
            const char *sname = json_string_value(sv);
            if (!json_is_object(v) || json_object_size(v) != 2 || sname == NULL ||
                strncmp(sname, "MESHD_DOM_", 10) != 0 || !mesh_name_domain_ok(sname + 10) ||
                !json_is_integer(qv) || json_integer_value(qv) < 0)
                st = mesh_err_set(err, MESH_INVALID,
                                  "'min_position' must be {\"stream\": \"MESHD_DOM_<domain>\", "
                                  "\"seq\": N}, as a write's answer gives it");
            else {
                snprintf(out->min_domain, sizeof out->min_domain, "%s", sname + 10);
                out->min_seq = (int64_t)json_integer_value(qv);
            }
        } else {
            st = mesh_err_set(err, MESH_INVALID,
                              "unknown field '%.60s' (expected sql, format, time_format, "
                              "timeout_ms, max_rows, min_position)",
                              key);
        }
        if (st != MESH_OK)
            break;
    }
done:
    json_decref(j);
    if (st != MESH_OK)
        mesh_query_request_free(out);
    return st;
}
