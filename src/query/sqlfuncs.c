/*
 * sqlfuncs.c - time functions for queries over nanosecond time columns.
 */
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "catalog/contract.h"
#include "core/util.h"
#include "query/internal.h"

static void fn_now(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    (void)argv;
    sqlite3_result_int64(ctx, mesh_now_ns());
}

static int to_ns(sqlite3_context *ctx, sqlite3_value *v, int64_t *out)
{
    switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER:
        *out = sqlite3_value_int64(v);
        return 1;
    case SQLITE_FLOAT:
        *out = (int64_t)sqlite3_value_double(v);
        return 1;
    case SQLITE_TEXT: {
        const char *s = (const char *)sqlite3_value_text(v);
        if (mesh_time_parse(s, (size_t)sqlite3_value_bytes(v), out) == MESH_OK)
            return 1;
        char *msg =
            sqlite3_mprintf("'%.40s' is not an ISO 8601 time (e.g. 2026-11-23T18:45:00Z)", s);
        sqlite3_result_error(ctx, msg, -1);
        sqlite3_free(msg);
        return 0;
    }
    default:
        sqlite3_result_null(ctx);
        return 0;
    }
}

static void fn_ts(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    int64_t ns;
    if (to_ns(ctx, argv[0], &ns))
        sqlite3_result_int64(ctx, ns);
}

static void fn_iso(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    int64_t ns;
    if (!to_ns(ctx, argv[0], &ns))
        return;
    char buf[MESH_TIME_MAX];
    size_t n = mesh_time_format(ns, buf);
    sqlite3_result_text(ctx, buf, (int)n, SQLITE_TRANSIENT);
}

/* Parses a duration argument; for a constant argument the parse is kept with the statement
 * (SQLite's auxdata), since time_bucket('1h', ts) runs once per row. */
static int duration_arg_at(sqlite3_context *ctx, sqlite3_value *v, int arg, int64_t *out)
{
    if (sqlite3_value_type(v) == SQLITE_INTEGER) {
        *out = sqlite3_value_int64(v);
        return 1;
    }
    const int64_t *cached = sqlite3_get_auxdata(ctx, arg);
    if (cached) {
        *out = *cached;
        return 1;
    }
    const char *s = (const char *)sqlite3_value_text(v);
    if (s && mesh_duration_parse(s, out) == MESH_OK) {
        int64_t *keep = sqlite3_malloc(sizeof *keep);
        if (keep) {
            *keep = *out;
            sqlite3_set_auxdata(ctx, arg, keep, sqlite3_free);
        }
        return 1;
    }
    char *msg =
        sqlite3_mprintf("'%.40s' is not a duration (e.g. 500ms, 30s, 15m, 1h, 7d)", s ? s : "NULL");
    sqlite3_result_error(ctx, msg, -1);
    sqlite3_free(msg);
    return 0;
}

static int duration_arg(sqlite3_context *ctx, sqlite3_value *v, int64_t *out)
{
    return duration_arg_at(ctx, v, 0, out);
}

static void fn_duration(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    int64_t d;
    if (duration_arg(ctx, argv[0], &d))
        sqlite3_result_int64(ctx, d);
}

static void fn_ago(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    int64_t d;
    if (duration_arg(ctx, argv[0], &d))
        sqlite3_result_int64(ctx, mesh_now_ns() - d);
}

static void fn_time_bucket(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    int64_t d, ns;
    if (!duration_arg(ctx, argv[0], &d))
        return;
    if (d <= 0) {
        sqlite3_result_error(ctx, "time_bucket: the width must be positive", -1);
        return;
    }
    if (sqlite3_value_type(argv[1]) == SQLITE_NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    if (!to_ns(ctx, argv[1], &ns))
        return;
    int64_t b = ns / d * d;
    if (ns < 0 && b != ns)
        b -= d;
    sqlite3_result_int64(ctx, b);
}

static void regex_free(void *re)
{
    mesh_pattern_free(re);
}

/* regexp(pattern, value), also `value REGEXP pattern`: 1 when value matches the ECMA-262
 * pattern (the dialect of contracts' patterns, compiled once per statement), 0 when not,
 * NULL for a NULL value. */
static void fn_regexp(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    if (sqlite3_value_type(argv[1]) == SQLITE_NULL || sqlite3_value_type(argv[0]) == SQLITE_NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    void *re = sqlite3_get_auxdata(ctx, 0);
    if (re == NULL) {
        const char *pat = (const char *)sqlite3_value_text(argv[0]);
        char why[256], msg[320];
        if (pat == NULL) {
            sqlite3_result_error_nomem(ctx);
            return;
        }
        if (mesh_pattern_compile(pat, &re, why, sizeof why) != MESH_OK) {
            snprintf(msg, sizeof msg, "regexp: the pattern %s", why);
            sqlite3_result_error(ctx, msg, -1);
            return;
        }
        sqlite3_set_auxdata(ctx, 0, re, regex_free);
        if ((re = sqlite3_get_auxdata(ctx, 0)) == NULL) { /* SQLite freed it at once */
            if (mesh_pattern_compile(pat, &re, why, sizeof why) != MESH_OK) {
                sqlite3_result_error_nomem(ctx);
                return;
            }
            const char *v = (const char *)sqlite3_value_text(argv[1]);
            sqlite3_result_int(ctx, v && regexec(re, v, 0, NULL, 0) == 0);
            mesh_pattern_free(re);
            return;
        }
    }
    const char *v = (const char *)sqlite3_value_text(argv[1]);
    if (v == NULL) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    sqlite3_result_int(ctx, regexec(re, v, 0, NULL, 0) == 0);
}

/* mask(x): '****' for a value, NULL for NULL: a derived column made by it shows no input
 * value (docs/derived.md). */
static void fn_mask(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL)
        sqlite3_result_null(ctx);
    else
        sqlite3_result_text(ctx, "****", 4, SQLITE_STATIC);
}

/* mask_hash(x): the hex HMAC-SHA256 of x's text under the node's mask key, as MASK_HASH
 * masks give it (equal values, equal hashes); NULL for NULL. */
static void fn_mask_hash(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    qsession_t *s = sqlite3_user_data(ctx);
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    const char *v = (const char *)sqlite3_value_text(argv[0]);
    int n = sqlite3_value_bytes(argv[0]);
    if (v == NULL || s->policy == NULL) {
        sqlite3_result_error(ctx, "mask_hash: no mask key", -1);
        return;
    }
    char out[80];
    size_t l = mesh_mask_text(MESH_MASK_HASH, mesh_policy_mask_key(s->policy), v, (size_t)n, out,
                              sizeof out);
    sqlite3_result_text(ctx, out, (int)l, SQLITE_TRANSIENT);
}

/* mesh_lineage_mark(n): n. query/lineage.c puts calls of it between the result expressions
 * of a query it prepares (never runs) to tell which columns each expression reads. */
static void fn_lineage_mark(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    sqlite3_result_value(ctx, argv[0]);
}

int mesh__sqlfuncs_register_session(sqlite3 *db, qsession_t *s)
{
    const int det = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
    int rc = sqlite3_create_function(db, "mask", 1, det, NULL, fn_mask, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "mask_hash", 1, det, s, fn_mask_hash, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, MESH_LINEAGE_MARK, 1, det, NULL, fn_lineage_mark, NULL,
                                     NULL);
    return rc;
}

int mesh__sqlfuncs_register(sqlite3 *db)
{
    const int det = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
    const int nondet = SQLITE_UTF8 | SQLITE_INNOCUOUS;
    int rc = sqlite3_create_function(db, "now", 0, nondet, NULL, fn_now, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "ts", 1, det, NULL, fn_ts, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "iso", 1, det, NULL, fn_iso, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "duration", 1, det, NULL, fn_duration, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "ago", 1, nondet, NULL, fn_ago, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "time_bucket", 2, det, NULL, fn_time_bucket, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "regexp", 2, det, NULL, fn_regexp, NULL, NULL);
    return rc;
}
