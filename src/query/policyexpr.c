/*
 * policyexpr.c - the SQL expressions of access policies: row-filter predicates and CUSTOM
 * masks, evaluated over one row of a product at a time.
 *
 * An expression runs on a private, hardened connection that holds no tables, over a
 * one-row subquery whose columns are the product's, bound as parameters:
 *
 *   SELECT <expr> FROM (SELECT ?1 AS "col1", ?2 AS "col2", ...) [WHERE <predicate>]
 *
 * so it can read the row (every column, also those the reader does not see), call meshd's
 * SQL functions (ts, ago, ...) and nothing else: no table, no other row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "query/internal.h"

static const char *const denied[] = {"load_extension", "fts3_tokenizer", "readfile",
                                     "writefile",      "edit",           "zipfile",
                                     "sqlite_offset"};

static int pexpr_authorizer(void *arg, int action, const char *a1, const char *a2, const char *db,
                            const char *trigger)
{
    (void)arg;
    (void)a1;
    (void)trigger;
    switch (action) {
    case SQLITE_SELECT:
        return SQLITE_OK;
    case SQLITE_READ:
        return db == NULL ? SQLITE_OK : SQLITE_DENY; /* the subquery's columns only */
    case SQLITE_FUNCTION:
        for (size_t i = 0; i < MESH_ARRAY_LEN(denied); i++)
            if (a2 && sqlite3_stricmp(a2, denied[i]) == 0)
                return SQLITE_DENY;
        return SQLITE_OK;
    default:
        return SQLITE_DENY;
    }
}

mesh_status_t mesh__pexpr_open(sqlite3 **out, mesh_err_t *err)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        sqlite3_close(db);
        return mesh_err_set(err, MESH_NOMEM, "cannot open a policy connection");
    }
    int dummy;
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, &dummy);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, 0, &dummy);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, &dummy);
    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, &dummy);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, &dummy);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_VIEW, 0, &dummy);
    sqlite3_limit(db, SQLITE_LIMIT_LENGTH, 1024 * 1024);
    sqlite3_limit(db, SQLITE_LIMIT_SQL_LENGTH, 64 * 1024);
    sqlite3_limit(db, SQLITE_LIMIT_EXPR_DEPTH, 100);
    sqlite3_limit(db, SQLITE_LIMIT_VDBE_OP, 100000);
    if (mesh__sqlfuncs_register(db) != SQLITE_OK) {
        sqlite3_close(db);
        return mesh_err_set(err, MESH_INTERNAL, "cannot register functions");
    }
    sqlite3_set_authorizer(db, pexpr_authorizer, NULL);
    *out = db;
    return MESH_OK;
}

/* Appends s with every {col} replaced by the quoted column name. */
static void subst(sqlite3_str *q, const char *s, const char *col)
{
    for (const char *p = s; *p;) {
        if (col && strncmp(p, "{col}", 5) == 0) {
            sqlite3_str_appendf(q, "\"%w\"", col);
            p += 5;
        } else {
            sqlite3_str_appendchar(q, 1, *p++);
        }
    }
}

mesh_status_t mesh__pexpr_prepare(sqlite3 *db, const mesh_product_t *p, const char *select_expr,
                                  const char *const *where, size_t nwhere, const char *col,
                                  sqlite3_stmt **out, mesh_err_t *err)
{
    *out = NULL;
    sqlite3_str *q = sqlite3_str_new(db);
    sqlite3_str_appendall(q, "SELECT ");
    subst(q, select_expr, col);
    sqlite3_str_appendall(q, " FROM (SELECT ");
    for (size_t i = 0; i < p->ncols; i++)
        sqlite3_str_appendf(q, "%s?%d AS \"%w\"", i ? ", " : "", (int)i + 1, p->cols[i].name);
    sqlite3_str_appendall(q, ")");
    for (size_t i = 0; i < nwhere; i++) {
        sqlite3_str_appendall(q, i ? " OR (" : " WHERE (");
        subst(q, where[i], NULL);
        sqlite3_str_appendall(q, "\n)");
    }
    char *sql = sqlite3_str_finish(q);
    if (sql == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    const char *tail = NULL;
    int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, &tail);
    mesh_status_t st = MESH_OK;
    if (rc != SQLITE_OK) {
        st = mesh_err_set(err, MESH_INVALID, "%s", sqlite3_errmsg(db));
    } else if (*out == NULL || (tail && *tail) || !sqlite3_stmt_readonly(*out) ||
               sqlite3_column_count(*out) != 1) {
        st = mesh_err_set(err, MESH_INVALID, "not a single expression");
    }
    if (st != MESH_OK) {
        sqlite3_finalize(*out);
        *out = NULL;
    }
    sqlite3_free(sql);
    return st;
}

void mesh__pexpr_bind(sqlite3_stmt *q, const mesh_datum_t *row, size_t n)
{
    sqlite3_reset(q);
    for (size_t i = 0; i < n; i++) {
        const mesh_datum_t *d = &row[i];
        switch (d->type) {
        case MESH_V_INT:
            sqlite3_bind_int64(q, (int)i + 1, d->i);
            break;
        case MESH_V_REAL:
            sqlite3_bind_double(q, (int)i + 1, d->d);
            break;
        case MESH_V_TEXT:
            sqlite3_bind_text(q, (int)i + 1, d->s, (int)d->n, SQLITE_STATIC);
            break;
        default:
            sqlite3_bind_null(q, (int)i + 1);
        }
    }
}

mesh_status_t mesh_policy_expr_check(const mesh_product_t *p, const char *expr, const char *col,
                                     mesh_err_t *err)
{
    if (expr == NULL || *expr == '\0')
        return mesh_err_set(err, MESH_INVALID, "an empty expression");
    if (strlen(expr) > 4096)
        return mesh_err_set(err, MESH_INVALID, "an expression of at most 4096 bytes");
    sqlite3 *db;
    mesh_status_t st = mesh__pexpr_open(&db, err);
    if (st != MESH_OK)
        return st;
    sqlite3_stmt *q = NULL;
    if (col) /* a CUSTOM mask: the expression is the value */
        st = mesh__pexpr_prepare(db, p, expr, NULL, 0, col, &q, err);
    else /* a row filter: the expression is a condition */
        st = mesh__pexpr_prepare(db, p, "1", &expr, 1, NULL, &q, err);
    sqlite3_finalize(q);
    sqlite3_close(db);
    if (st != MESH_OK)
        mesh_err_prefix(err, "%s: ", col ? "mask expression" : "row filter");
    return st;
}
