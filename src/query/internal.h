/*
 * internal.h - what the query module's files share: the session behind a query.
 */
#ifndef MESH_QUERY_INTERNAL_H
#define MESH_QUERY_INTERNAL_H

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "auth/policy.h"
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
    /* whose the session is: its schemas hold what this principal may read under this policy
     * (another principal, or a new policy version, rebuilds them) */
    int64_t bound_principal;
    int64_t bound_version;
    char bound_roles[256];
    mesh_policy_t *policy;
    sqlite3 *pdb; /* policy expressions (row filters, CUSTOM masks), opened on first use */
    /* the running query */
    const mesh_identity_t *who;
    int64_t deadline_mono;
    atomic_bool cancel;
    mesh_buf_t products;       /* "d.p,d.p" read by the query */
    mesh_buf_t policies;       /* masks and row filters its product tables applied (lines) */
    mesh_audit_t *audit;       /* system.audit's source (NULL: none) */
    bool audit_ok;             /* the running query's caller may read system.audit */
    bool local_only;           /* the running query may not read other nodes' domains */
    mesh_status_t remote_code; /* how a remote table's scan failed (MESH_OK: it did not) */
    int64_t rows_scanned;      /* rows the store handed to the query's virtual tables */
    /* aggregates-only products (aggquery.c): the one the query read as an outsider, the
     * strict authorizer for the rewritten query, and scans allowed once it is prepared */
    const mesh_product_t *agg_hit;
    bool agg_strict;
    bool agg_ok;
    int agg_selects;
    /* federated queries: a remote domain stays attached after a query while the owner's
     * describe answer it was made from is the one reused (remote_id: that answer's id,
     * mesh_fed_describe_current) and the session serves the same principal (bind_principal
     * detaches everything otherwise); the owner checks its policy on every scan anyway */
    struct mesh_fed *fed;
    bool (*fed_hosted)(void *arg, const char *domain);
    void *fed_arg;
    bool remote[MESH_QUERY_MAX_DOMAINS];        /* attached[i] is a remote domain */
    uint64_t remote_id[MESH_QUERY_MAX_DOMAINS]; /* its describe answer */
    uint64_t query_gen; /* counts queries: a remote table's replay cache is the query's */
    bool remote_kept;   /* this query kept rows of a remote table for a replay */
    const struct mesh_fed_schema *remote_schema; /* while attaching one (vtab_remote.c) */
    /* lineage (lineage.c): while set, the authorizer reports every action to it first */
    void (*trace)(void *arg, int action, const char *a1, const char *a2, const char *db);
    void *trace_arg;
    struct qsession *next_free;
} qsession_t;

struct mesh_query {
    mesh_qpool_t *pool;
    qsession_t *s;
    sqlite3_stmt *stmt;
    mesh_query_limits_t lim;
    int64_t rows;
    bool agg;           /* an aggregates-only query: the last column is the unit count */
    int64_t agg_k;      /* groups of fewer units are suppressed */
    int64_t suppressed; /* groups suppressed so far */
    /* a statement run whole by the node of the one remote domain it reads (decision 0039):
     * stmt is NULL, rows come from fs */
    struct mesh_fed_scan *fs;
    const mesh_datum_t *row; /* the current one (borrowed from fs) */
    mesh_buf_t *text;        /* per column: the current row's text, NUL-terminated */
    size_t ntext;
};

/* The product virtual table module (vtab.c). */
int mesh__vtab_register(sqlite3 *db, qsession_t *s);
/* The remote product module (vtab_remote.c): tables of a domain on another node. */
int mesh__vtab_remote_register(sqlite3 *db, qsession_t *s);
/* The system.audit module (vtab_audit.c). */
int mesh__vtab_audit_register(sqlite3 *db, qsession_t *s);
/* The rollup view of time series, domain.product__agg (vtab_agg.c). */
int mesh__vtab_agg_register(sqlite3 *db, qsession_t *s);
/* A value as a virtual table column's result (vtab.c). stable: text that outlives the
 * statement, which SQLite may point at instead of copying. */
void mesh__result_datum(sqlite3_context *ctx, const mesh_datum_t *d, bool stable);
/* Sets a virtual table's error message; returns SQLITE_ERROR. */
int mesh__vtab_error(sqlite3_vtab *vt, const char *msg);
/* A bucket width as text: the largest unit that divides it ("1h", "90s", "250ms"). */
void mesh__width_text(int64_t ns, char *out, size_t cap);
/* The reader of a domain for the running query, with its read transaction open. */
mesh_status_t mesh__session_reader(qsession_t *s, const mesh_snap_domain_t *sd,
                                   mesh_store_reader_t **out, mesh_err_t *err);
/* Notes that the query read a product. */
void mesh__session_note_product(qsession_t *s, const char *domain, const char *product);
/* Notes the masks and row filters a product table applied: lines "m<text>\n" (a mask) and
 * "f<text>\n" (a row filter); lines already noted are skipped. NULL is fine. */
void mesh__session_note_policies(qsession_t *s, const char *lines);
/* SQL functions (sqlfuncs.c). */
int mesh__sqlfuncs_register(sqlite3 *db);
/* mask(x), mask_hash(x) (under the session's policy's mask key) and the lineage mark. */
#define MESH_LINEAGE_MARK "mesh_lineage_mark"
int mesh__sqlfuncs_register_session(sqlite3 *db, qsession_t *s);
/* Policy expressions (policyexpr.c): a hardened connection without tables, and statements
 * "SELECT <select_expr> FROM (<one row of p's columns as ?1..?n>) [WHERE (w1) OR (w2) ...]"
 * ({col} in select_expr stands for column col). */
mesh_status_t mesh__pexpr_open(sqlite3 **out, mesh_err_t *err);
mesh_status_t mesh__pexpr_prepare(sqlite3 *db, const mesh_product_t *p, const char *select_expr,
                                  const char *const *where, size_t nwhere, const char *col,
                                  sqlite3_stmt **out, mesh_err_t *err);
/* Resets q and binds a row of the product's n columns. */
void mesh__pexpr_bind(sqlite3_stmt *q, const mesh_datum_t *row, size_t n);
/* The progress handler of a session's connections: interrupts at the deadline or a cancel. */
int mesh__session_progress(void *arg);
/* Whether the caller of the running query owns a domain. */
bool mesh__session_owner(const qsession_t *s, const char *domain);

/* Aggregates-only products (aggquery.c): checks that sql has the allowed shape and writes
 * into out the query to run, with count(DISTINCT "unit") as the last result column.
 * MESH_FORBIDDEN with the reason when it does not. */
#define MESH_AGGQ_MAX_TOKENS 4096
#define MESH_AGGQ_MAX_ITEMS  64
mesh_status_t mesh__aggq_rewrite(const char *sql, size_t n, const char *unit, mesh_buf_t *out,
                                 mesh_err_t *err);
/* Whether the running query's caller is outside p's domain (not an owner, no write or admin
 * on it): an aggregates-only product is then read through aggregates only. */
bool mesh__session_outsider(const qsession_t *s, const mesh_product_t *p);

#endif
