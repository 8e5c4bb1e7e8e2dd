/*
 * internal.h - what the query module's files share: the session behind a query.
 */
#ifndef MESH_QUERY_INTERNAL_H
#define MESH_QUERY_INTERNAL_H

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "query/query.h"

typedef struct qreader {
    char domain[64];
    mesh_dhandle_t *handle; /* identity of the domain the reader was opened on */
    mesh_store_reader_t *r;
    bool begun; /* a read transaction is open for the current query */
} qreader_t;

typedef struct qsession {
    sqlite3 *db;
    mesh_snapshot_t *snap; /* the snapshot the attached schemas were built from */
    char attached[MESH_QUERY_MAX_DOMAINS][64];
    uint64_t attached_used[MESH_QUERY_MAX_DOMAINS];
    int nattached;
    uint64_t tick;
    qreader_t readers[MESH_QUERY_MAX_DOMAINS * 2];
    int nreaders;
    bool internal; /* our own statements: the authorizer lets them pass */
    /* the running query */
    const mesh_identity_t *who;
    int64_t deadline_mono;
    atomic_bool cancel;
    mesh_buf_t products;  /* "d.p,d.p" read by the query */
    mesh_audit_t *audit;  /* system.audit's source (NULL: none) */
    bool audit_ok;        /* the running query's caller may read system.audit */
    bool data_ok;         /* ... and data products (an auditor alone may not) */
    int64_t rows_scanned; /* rows the store handed to the query's virtual tables */
    struct qsession *next_free;
} qsession_t;

struct mesh_query {
    mesh_qpool_t *pool;
    qsession_t *s;
    sqlite3_stmt *stmt;
    mesh_query_limits_t lim;
    int64_t rows;
};

/* The product virtual table module (vtab.c). */
int mesh__vtab_register(sqlite3 *db, qsession_t *s);
/* The system.audit module (vtab_audit.c). */
int mesh__vtab_audit_register(sqlite3 *db, qsession_t *s);
/* The reader of a domain for the running query, with its read transaction open. */
mesh_status_t mesh__session_reader(qsession_t *s, const mesh_snap_domain_t *sd,
                                   mesh_store_reader_t **out, mesh_err_t *err);
/* Notes that the query read a product. */
void mesh__session_note_product(qsession_t *s, const char *domain, const char *product);
/* SQL functions (sqlfuncs.c). */
int mesh__sqlfuncs_register(sqlite3 *db);

#endif
