/*
 * query.h - SQL over data products, in a sandbox.
 *
 * A query runs on a session: a private in-memory SQLite connection in which each domain the
 * query names is attached as an empty schema holding one virtual table per product
 * (`domain.product`) and per product's quarantine (`domain.product__quarantine`), all served
 * by the product module (vtab.c), which reads through the store's scan interface. Nothing
 * else is readable: an authorizer allows only SELECT over those tables (and the json_each /
 * json_tree functions), the connection is read-only in effect, DEFENSIVE, without
 * extensions, triggers, views or the FTS3 tokenizer, with tight SQLite limits, and a
 * progress handler stops a query at its deadline or when cancelled.
 *
 * Sessions are pooled and keep their attached schemas while the catalog snapshot does not
 * change, so a repeated query does not rebuild them.
 *
 * Time columns are int64 nanoseconds since the epoch, declared TIMESTAMP. Functions:
 *   now()                    current time (ns)
 *   ts(text|int)             ISO 8601 text (or ns) -> ns
 *   iso(ns)                  ns -> "2026-11-23T18:45:08.123Z"
 *   ago(duration)            now() - duration ('15m', '1h', '7d')
 *   duration(text)           '90s' -> ns
 *   time_bucket(dur, ns)     ns floored to a multiple of dur
 */
#ifndef MESH_QUERY_QUERY_H
#define MESH_QUERY_QUERY_H

#include <stdbool.h>
#include <stdint.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "auth/policy.h"
#include "catalog/registry.h"
#include "core/buf.h"
#include "core/status.h"
#include "store/store.h"

#define MESH_QUERY_MAX_SQL     (100 * 1024)
#define MESH_QUERY_MAX_DOMAINS 10 /* SQLite's attach limit in Debian's build */

typedef struct mesh_query_limits {
    int64_t timeout_ns; /* wall time from start to the last row */
    int64_t max_rows;   /* 0: unlimited */
    int64_t max_value_bytes;
    bool local_only;   /* this node's domains only: nothing is asked of other nodes (a query
                          another node sent here) */
    bool prepare_only; /* for its columns only, never stepped (a step fails): an aggregates-only
                          product's shape rule is not applied (the product table still refuses
                          any scan) */
    bool push_ok;      /* a query of one remote domain may run whole on its node (decision
                          0039): only for callers that use the mesh_query_* calls alone (the
                          query API), never for those that read the statement (lineage) */
} mesh_query_limits_t;

typedef struct mesh_qpool mesh_qpool_t;
typedef struct mesh_query mesh_query_t;

mesh_status_t mesh_qpool_create(size_t max_sessions, mesh_qpool_t **out, mesh_err_t *err);
void mesh_qpool_destroy(mesh_qpool_t *pool);
/* Federated queries (docs/mesh.md): a query may name a domain hosted on another node of the
 * mesh; its products are then read through fed, as the caller, under the owner's policy.
 * hosted(arg, domain) says whether a live node of the mesh hosts domain (not this one).
 * Set before the first query; fed NULL (the default): only local domains exist. */
struct mesh_fed;
void mesh_qpool_set_federation(mesh_qpool_t *pool, struct mesh_fed *fed,
                               bool (*hosted)(void *arg, const char *domain), void *arg);
/* Offers the audit log as the table system.audit to callers who may read it (the admin and
 * auditor roles); NULL (the default) offers nothing. Set before the first query. */
void mesh_qpool_set_audit(mesh_qpool_t *pool, mesh_audit_t *audit);

/*
 * Prepares sql for the caller `who` over the snapshot, under the access policy (the query
 * holds its own references). The caller sees only the products it may read (others do not
 * exist for it), only their columns it may read, masked as the policy says, and only the
 * rows its row filters pass: applied inside the product virtual table, before SQLite
 * evaluates anything of the query.
 * Errors: MESH_PARSE (SQL syntax, unknown table or column), MESH_FORBIDDEN (not allowed by
 * the sandbox), MESH_LIMIT, MESH_BUSY (no free session).
 */
mesh_status_t mesh_query_start(mesh_qpool_t *pool, mesh_snapshot_t *snap, mesh_policy_t *policy,
                               const mesh_identity_t *who, const char *sql, size_t sql_len,
                               const mesh_query_limits_t *lim, mesh_query_t **out, mesh_err_t *err);
/* Checks a row-filter predicate (col NULL) or a CUSTOM mask expression of column col against
 * a product: MESH_INVALID with the reason when it does not compile as one expression. */
mesh_status_t mesh_policy_expr_check(const mesh_product_t *p, const char *expr, const char *col,
                                     mesh_err_t *err);
/* Whether an SQL condition's parentheses balance outside strings, quoted names and block
 * comments, never closing more than it opened, without ';' or a line comment: so that put
 * inside "( ... )" it stays one expression (erasure's WHERE). */
bool mesh_sql_parens_balanced(const char *s, size_t n);
/* Binds ?idx (from 1) of a started query before its first step: values never go into SQL
 * text. MESH_INVALID when idx is out of range. */
mesh_status_t mesh_query_bind(mesh_query_t *q, int idx, const mesh_datum_t *v);
int mesh_query_ncols(const mesh_query_t *q);
const char *mesh_query_colname(const mesh_query_t *q, int i);
/* Declared type of a result column that reads a product column directly (TEXT, INTEGER,
 * REAL, BOOLEAN, TIMESTAMP, DATE, TIME, JSON), or NULL for an expression. */
const char *mesh_query_coltype(const mesh_query_t *q, int i);
/* 1: a row is ready; 0: done; -1: error (err filled: MESH_TIMEOUT, MESH_LIMIT, ...). */
int mesh_query_step(mesh_query_t *q, mesh_err_t *err);
/* Value of column i of the current row, borrowed until the next step. Text is
 * NUL-terminated. */
void mesh_query_value(mesh_query_t *q, int i, mesh_datum_t *out);
/* The same, for readers that take text as (s, n) only: text is not NUL-terminated, which
 * spares SQLite a copy of every text value a product table handed it (a query's answer, a
 * federated scan's frames). */
void mesh_query_value_bytes(mesh_query_t *q, int i, mesh_datum_t *out);
int64_t mesh_query_rows(const mesh_query_t *q);
/* Groups an aggregates-only query suppressed (fewer than k privacy units), or -1 for a
 * query over no such product (docs/governance.md). */
int64_t mesh_query_suppressed(const mesh_query_t *q);
/* Rows the products' scans produced (what the storage read for the query). */
int64_t mesh_query_scanned(const mesh_query_t *q);
/* Products the query read ("domain.product", comma-separated), for audit and metrics. */
const char *mesh_query_products(const mesh_query_t *q);
/* The masks and row filters the query ran under, for the audit: one line each, "m" + text for
 * a mask ("icu.vitals.patient: MASK_HASH (mask 12)"), "f" + text for a row filter
 * ("icu.vitals (row filter 7)"); "" when none. */
const char *mesh_query_policies(const mesh_query_t *q);
/* Thread-safe: makes the next step fail with MESH_TIMEOUT ("cancelled"). */
void mesh_query_cancel(mesh_query_t *q);
/* Ends the query and returns its session to the pool. */
void mesh_query_finish(mesh_query_t *q);

/*
 * The output columns and lineage of a derived product's SQL, as caller `who` (its definer)
 * may run it: the query is validated like mesh_query_start (read-only, one statement, only
 * products who may read) and must read products of this node's domains only, never a
 * quarantine. out (free with mesh_lineage_free): per output column its name, type, inputs
 * and transformation (identity, transformation, aggregation, masking), and the products
 * read. The types of expressions come from the values of the first sample_rows rows (at most
 * 1000; 0: none are read, for lineage only). See query/lineage.c for how, and its limits
 * (column_level).
 */
struct mesh_lineage;
mesh_status_t mesh_query_lineage(mesh_qpool_t *pool, mesh_snapshot_t *snap, mesh_policy_t *policy,
                                 const mesh_identity_t *who, const char *sql, size_t n,
                                 int64_t timeout_ns, int64_t sample_rows, struct mesh_lineage *out,
                                 mesh_err_t *err);

/* Result formats. */
typedef enum { MESH_OUT_JSON = 0, MESH_OUT_NDJSON, MESH_OUT_CSV } mesh_outfmt_t;

typedef struct mesh_writer {
    mesh_outfmt_t fmt;
    bool time_ns; /* TIMESTAMP columns as integers instead of ISO text */
    int64_t rows;
    bool started_rows;
    /* the TIMESTAMP columns among the first 64, read once (the first row); the others are
     * asked at every value */
    bool timecols_known;
    uint64_t timecols;
} mesh_writer_t;

mesh_status_t mesh_outfmt_parse(const char *s, mesh_outfmt_t *out);
const char *mesh_outfmt_mime(mesh_outfmt_t f);
void mesh_writer_init(mesh_writer_t *w, mesh_outfmt_t fmt, bool time_ns);
mesh_status_t mesh_writer_begin(mesh_writer_t *w, mesh_query_t *q, mesh_buf_t *out);
mesh_status_t mesh_writer_row(mesh_writer_t *w, mesh_query_t *q, mesh_buf_t *out);
/* Closes the result; err (may be NULL) is a failure after rows were sent. */
mesh_status_t mesh_writer_end(mesh_writer_t *w, mesh_query_t *q, const mesh_err_t *err,
                              double elapsed_ms, mesh_buf_t *out);

/* Appends a double as the shortest text that reads back the same (JSON-safe). */
mesh_status_t mesh_buf_add_double(mesh_buf_t *b, double d);

#endif
