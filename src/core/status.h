/*
 * status.h - the one status type of meshd.
 *
 * Every fallible function returns a mesh_status_t. MESH_STATUS_MAP is the single table of
 * codes: name, HTTP status, PostgreSQL SQLSTATE, meshctl exit code and a short text. The
 * detail of one failure (which column, which line) travels beside the code in a mesh_err_t
 * that the failing function fills through mesh_err_set(); callers pass NULL when they do
 * not want detail.
 */
#ifndef MESH_CORE_STATUS_H
#define MESH_CORE_STATUS_H

#include <stddef.h>

/* X(name, http, sqlstate, exit, text) */
#define MESH_STATUS_MAP(X)                                                                         \
    X(OK, 200, "00000", 0, "ok")                                                                   \
    X(INVALID, 400, "22023", 2, "invalid input")                                                   \
    X(PARSE, 400, "42601", 2, "malformed input")                                                   \
    X(VALIDATION, 400, "23514", 2, "rows violate the contract")                                    \
    X(UNAUTHENTICATED, 401, "28000", 4, "authentication required")                                 \
    X(FORBIDDEN, 403, "42501", 4, "permission denied")                                             \
    X(NOT_FOUND, 404, "42P01", 3, "not found")                                                     \
    X(METHOD, 405, "0A000", 2, "method not allowed")                                               \
    X(CONFLICT, 409, "23505", 5, "conflict")                                                       \
    X(BREAKING, 409, "0A000", 5, "breaking contract change")                                       \
    X(TOO_LARGE, 413, "54000", 2, "input too large")                                               \
    X(UNSUPPORTED, 415, "0A000", 2, "unsupported media type")                                      \
    X(LIMIT, 422, "54000", 6, "limit exceeded")                                                    \
    X(TIMEOUT, 408, "57014", 6, "time limit exceeded")                                             \
    X(BUSY, 503, "57P03", 7, "busy, try again")                                                    \
    X(UNAVAILABLE, 503, "08006", 7, "unavailable")                                                 \
    X(NOSPACE, 507, "53100", 7, "insufficient storage")                                            \
    X(IO, 500, "58030", 8, "i/o error")                                                            \
    X(CORRUPT, 500, "XX001", 8, "data corrupted")                                                  \
    X(NOMEM, 500, "53200", 8, "out of memory")                                                     \
    X(INTERNAL, 500, "XX000", 8, "internal error")                                                 \
    X(RATE_LIMITED, 429, "53400", 7, "too many attempts, try again later")

typedef enum {
#define MESH_X_ENUM(name, http, sqlstate, exit, text) MESH_##name,
    MESH_STATUS_MAP(MESH_X_ENUM)
#undef MESH_X_ENUM
        MESH_STATUS__COUNT
} mesh_status_t;

/* Detail of one failure. msg is always NUL-terminated; empty when no detail was set. */
typedef struct mesh_err {
    mesh_status_t code;
    char msg[512];
} mesh_err_t;

/* The constant name ("VALIDATION"), the HTTP status, the SQLSTATE, the CLI exit code and the
 * short text of a status. Unknown codes map to INTERNAL. */
const char *mesh_status_name(mesh_status_t st);
int mesh_status_http(mesh_status_t st);
const char *mesh_status_sqlstate(mesh_status_t st);
int mesh_status_exit(mesh_status_t st);
const char *mesh_status_text(mesh_status_t st);
/* Maps an HTTP status back to the closest code (used by meshctl for exit codes). */
mesh_status_t mesh_status_from_http(int http);

/* Records code and a printf-formatted detail into err (when err is not NULL) and returns code,
 * so a failing function can `return mesh_err_set(err, MESH_INVALID, "...", ...);`. */
mesh_status_t mesh_err_set(mesh_err_t *err, mesh_status_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefixes the existing detail with a context ("contract.yaml: " + msg). */
void mesh_err_prefix(mesh_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Resets err to OK with no detail. */
void mesh_err_clear(mesh_err_t *err);

#endif
