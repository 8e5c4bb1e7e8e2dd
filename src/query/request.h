/*
 * request.h - the body of a query request, parsed as untrusted input.
 *
 *   {"sql": "SELECT ...", "format": "json|ndjson|csv", "time_format": "iso|ns",
 *    "timeout_ms": N, "max_rows": N}
 *
 * or, with Content-Type application/sql or text/plain, the SQL text itself. Unknown fields,
 * wrong types and out-of-range numbers are refused with a message naming the field.
 */
#ifndef MESH_QUERY_REQUEST_H
#define MESH_QUERY_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct mesh_query_request {
    char *sql; /* malloc'd, NUL-terminated */
    size_t sql_len;
    char format[16];      /* "" when not given */
    char time_format[16]; /* "" when not given */
    int64_t timeout_ms;   /* 0 when not given */
    int64_t max_rows;     /* 0 when not given */
    char min_domain[64];  /* min_position: the domain of its stream ("" when not given) */
    int64_t min_seq;      /* ... and the stream sequence the node must have applied */
} mesh_query_request_t;

#define MESH_QUERY_REQUEST_MAX (1024 * 1024)

/* Parses a request body. raw_sql: the body is the SQL itself. The result is owned by the
 * caller (mesh_query_request_free). */
mesh_status_t mesh_query_request_parse(const char *body, size_t n, bool raw_sql,
                                       mesh_query_request_t *out, mesh_err_t *err);
void mesh_query_request_free(mesh_query_request_t *r);

/* Calls fn for every identifier a SQL text uses as a schema qualifier (`x.` outside string
 * literals and comments), e.g. the domains of `SELECT * FROM factory.readings`. */
typedef void (*mesh_sql_ref_fn)(void *arg, const char *name, size_t n);
void mesh_sql_schema_refs(const char *sql, size_t n, mesh_sql_ref_fn fn, void *arg);

#endif
