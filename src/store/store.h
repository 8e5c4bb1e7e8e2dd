/*
 * store.h - one domain's SQLite database: its contracts, its products' rows, its quarantine
 * and idempotency records, and the position of the domain log it has applied.
 *
 * The layout of a product's rows is private to this module (today: one STRICT table per
 * product, upsert on the primary key); everything above reads products through the scan
 * interface below, which the product virtual table (query/vtab.c) drives. Changing the
 * layout (a time-series engine) touches this module only.
 *
 * Writes: the domain writer (store/domain.c) calls mesh_store_begin, then applies log
 * records in order (each inside its own savepoint so one refused record does not undo the
 * others), then mesh_store_commit, which also records the last applied sequence.
 * Reads: each query session opens its own mesh_store_reader_t (a separate connection) and
 * runs scans inside one read transaction, so a query sees one snapshot.
 */
#ifndef MESH_STORE_STORE_H
#define MESH_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/contract.h"
#include "core/buf.h"
#include "core/status.h"
#include "ingest/batch.h"

typedef struct mesh_store mesh_store_t;
typedef struct mesh_store_reader mesh_store_reader_t;
typedef struct mesh_scan mesh_scan_t;

typedef struct mesh_store_opts {
    bool sync_full; /* synchronous=FULL (else NORMAL; the domain log carries durability) */
    int64_t cache_kib;
} mesh_store_opts_t;

mesh_status_t mesh_store_open(const char *path, const mesh_store_opts_t *opts, mesh_store_t **out,
                              mesh_err_t *err);
void mesh_store_close(mesh_store_t *s);
/* The database file (the writer thread only: a re-encryption changes it). */
const char *mesh_store_path(const mesh_store_t *s);

/* Last applied log sequence (0 for a new store). */
uint64_t mesh_store_applied_seq(const mesh_store_t *s);

/* Contracts kept in the store, newest version of each contract id: calls fn with the YAML. */
typedef mesh_status_t (*mesh_store_contract_fn)(void *arg, const char *yaml, size_t n);
mesh_status_t mesh_store_load_contracts(mesh_store_t *s, mesh_store_contract_fn fn, void *arg,
                                        mesh_err_t *err);

/* Every version of a contract applied to this store, oldest first (through a reader's
 * connection: call it outside a read transaction or inside one). */
typedef mesh_status_t (*mesh_store_history_fn)(void *arg, const char *version, uint64_t seq,
                                               int64_t applied_ns, const char *yaml, size_t n);
typedef struct mesh_store_reader mesh_store_reader_t;
mesh_status_t mesh_store_contract_history(mesh_store_reader_t *r, const char *id,
                                          mesh_store_history_fn fn, void *arg, mesh_err_t *err);

/* ---- writing (the domain writer only) ---- */
mesh_status_t mesh_store_begin(mesh_store_t *s, mesh_err_t *err);
/* Commits and records seq as applied. */
mesh_status_t mesh_store_commit(mesh_store_t *s, uint64_t seq, mesh_err_t *err);
void mesh_store_rollback(mesh_store_t *s);

/* A savepoint around one record's effects: end(commit=true) keeps them, false undoes them. */
mesh_status_t mesh_store_apply_savepoint_begin(mesh_store_t *s, mesh_err_t *err);
mesh_status_t mesh_store_apply_savepoint_end(mesh_store_t *s, bool keep, mesh_err_t *err);

/* Outcome of applying one batch. */
typedef struct mesh_apply_result {
    uint64_t seq;        /* the log position of the batch (the original one for a duplicate) */
    size_t rows;         /* rows written */
    size_t quarantined;  /* rows kept in quarantine */
    bool duplicate;      /* the idempotency key was already applied: nothing written */
    uint64_t stream_seq; /* replicated domains: the batch's sequence in the domain's stream */
} mesh_apply_result_t;

/* Applies a batch recorded at seq. A refused batch (a unique conflict) leaves nothing. */
mesh_status_t mesh_store_apply_batch(mesh_store_t *s, uint64_t seq, const mesh_batch_t *b,
                                     const char *idem_key, mesh_apply_result_t *res,
                                     mesh_err_t *err);
/* Looks up an idempotency key: MESH_OK with res filled, MESH_NOT_FOUND when unknown. */
mesh_status_t mesh_store_idem_lookup(mesh_store_t *s, const char *key, mesh_apply_result_t *res);
/* Deletes idempotency records older than before_ns. */
mesh_status_t mesh_store_idem_expire(mesh_store_t *s, int64_t before_ns, mesh_err_t *err);

/*
 * Creates or changes the tables of products. `old` is the previous definition (NULL for a
 * new product). A breaking change rebuilds the product's rows under the new definition and
 * fails (leaving everything as it was) when existing rows do not fit it.
 */
mesh_status_t mesh_store_put_product(mesh_store_t *s, const mesh_product_t *old,
                                     const mesh_product_t *next, mesh_err_t *err);
/* Records a contract's YAML (its history is kept). */
mesh_status_t mesh_store_put_contract(mesh_store_t *s, const mesh_contract_t *c, uint64_t seq,
                                      mesh_err_t *err);
/* Drops a product, its rows and its quarantine. */
mesh_status_t mesh_store_drop_product(mesh_store_t *s, const char *name, mesh_err_t *err);
/* Forgets a contract (every version of it), so mesh_store_load_contracts no longer returns
 * it: used when the product it defined is dropped. */
mesh_status_t mesh_store_drop_contract(mesh_store_t *s, const char *id, mesh_err_t *err);

/*
 * Time-series products (see ts.h). attach loads the in-memory state of a product whose key
 * is (series columns, time column); the domain calls it for every product at open, before
 * replaying the log. flush writes buffered rows out inside the writer's open transaction
 * (mode: 0 full buffers, 1 also buffers older than max_age_ns, 2 everything).
 * replay_from is the log position replay must start after: the applied position, or lower
 * while rows of time series were only in memory. replay_batch applies the time-series parts
 * of a record at or below the applied position (replay after a crash).
 */
mesh_status_t mesh_store_attach(mesh_store_t *s, const mesh_product_t *p, mesh_err_t *err);
bool mesh_store_is_timeseries(mesh_store_t *s, const char *product);
mesh_status_t mesh_store_flush(mesh_store_t *s, int mode, int64_t max_age_ns, mesh_err_t *err);
uint64_t mesh_store_replay_from(mesh_store_t *s);
/* The log position whose rule states _rule_state holds (meta 'rules_clean', written by the
 * domain at its checkpoints and in the transaction of records that persist them, decision
 * 0028); the applied position when none was recorded (states written with every record, by
 * an older meshd). replay_from is never above it. */
uint64_t mesh_store_rules_clean(mesh_store_t *s);
bool mesh_store_rules_clean_recorded(mesh_store_t *s);
mesh_status_t mesh_store_replay_batch(mesh_store_t *s, uint64_t seq, const mesh_batch_t *b,
                                      mesh_err_t *err);

/* Deletes quarantined rows of product: the ids given, or all of them; *dropped is how many
 * there were (ids not there are skipped). Inside the open transaction (the domain's writer). */
mesh_status_t mesh_store_quarantine_drop(mesh_store_t *s, const char *product, const int64_t *ids,
                                         size_t n, bool all, int64_t *dropped, mesh_err_t *err);

/* Per-product counters kept by the store. */
typedef struct mesh_product_stats {
    int64_t rows;
    int64_t quarantined;
    int64_t last_write_ns; /* 0 when never written */
    int64_t bytes;         /* pages used by the product's rows and indexes */
} mesh_product_stats_t;
mesh_status_t mesh_store_product_stats(mesh_store_t *s, const char *product,
                                       mesh_product_stats_t *out);
/* Size of the database, its WAL. */
void mesh_store_file_sizes(const mesh_store_t *s, int64_t *db, int64_t *wal);
/* Writes out aged (mode 1) or all (mode 2) buffered time-series rows in a transaction of
 * its own, records the clean positions, then checkpoints the WAL (and truncates it). Never waits
 * for readers: MESH_BUSY when readers on older snapshots keep committed frames out of the database
 * file, which may then not be synced yet (synchronous=NORMAL), so the caller must not trim the
 * domain log. */
mesh_status_t mesh_store_checkpoint(mesh_store_t *s, int flush_mode, int64_t max_age_ns,
                                    mesh_err_t *err);
/*
 * Re-encryption (store/domain.c drives it, on the writer thread, between write groups): a
 * copy of the database into dest, a new file (sealed with the key attached for dest), taken
 * with SQLite's backup API through the writer's own connection, so writes made between steps
 * are carried into the copy. step copies up to npages (done when complete); finish checks,
 * checkpoints and closes the copy; abort drops it (the caller deletes its files).
 * switch then moves the store to that file: the writer connection is reopened on it and
 * readers follow at their next read transaction (open ones finish on the old file).
 */
typedef struct mesh_store_copy mesh_store_copy_t;
mesh_status_t mesh_store_copy_begin(mesh_store_t *s, const char *dest, mesh_store_copy_t **out,
                                    mesh_err_t *err);
mesh_status_t mesh_store_copy_step(mesh_store_copy_t *c, int npages, bool *done, int64_t *remaining,
                                   int64_t *total, mesh_err_t *err);
mesh_status_t mesh_store_copy_finish(mesh_store_copy_t *c, mesh_err_t *err);
void mesh_store_copy_abort(mesh_store_copy_t *c);
mesh_status_t mesh_store_switch(mesh_store_t *s, const char *path, mesh_err_t *err);

/*
 * Snapshot copies (backups): a consistent copy of the database file src into dest, a new
 * file (sealed with the key attached for dest, if any), taken with SQLite's backup API from a
 * connection of its own that holds one read transaction from open to close. Writers go on
 * meanwhile (WAL mode): the copy is the database as of open, whatever commits later. open
 * starts the read transaction (callers that need a given position open it at that position,
 * e.g. in the domain's writer between groups); step copies up to npages (-1: all); close ends
 * the transaction and closes both files (the caller deletes dest's files when it wants).
 */
typedef struct mesh_dbcopy mesh_dbcopy_t;
mesh_status_t mesh_dbcopy_open(const char *src, const char *dest, mesh_dbcopy_t **out,
                               mesh_err_t *err);
mesh_status_t mesh_dbcopy_step(mesh_dbcopy_t *c, int npages, bool *done, int64_t *remaining,
                               int64_t *total, mesh_err_t *err);
void mesh_dbcopy_close(mesh_dbcopy_t *c);
/* In a copy of a domain's database (not open elsewhere) taken with every time-series row
 * written out: records that nothing above seq is only in memory, so opening it replays no log
 * record at or below seq. The copy also forgets its async origin id and outbox position: a
 * restored copy publishes as a new origin (docs/mesh.md). */
mesh_status_t mesh_store_mark_clean(const char *path, uint64_t seq, mesh_err_t *err);

/* PRAGMA integrity_check: MESH_OK or MESH_CORRUPT with the first problem. */
mesh_status_t mesh_store_integrity(mesh_store_t *s, mesh_err_t *err);

/* ---- reading ---- */

typedef enum {
    MESH_OP_EQ = 0,
    MESH_OP_GT,
    MESH_OP_GE,
    MESH_OP_LT,
    MESH_OP_LE,
    MESH_OP_NE,
    MESH_OP_ISNULL,
    MESH_OP_ISNOTNULL,
    MESH_OP_IS,
    MESH_OP_ISNOT,
    MESH_OP__COUNT
} mesh_op_t;

/* A borrowed value handed to or from a scan. */
typedef struct mesh_datum {
    int type; /* mesh_vtype_t */
    int64_t i;
    double d;
    const char *s;
    size_t n;
} mesh_datum_t;

#define MESH_SCAN_MAX_CONS  32
#define MESH_SCAN_MAX_ORDER 8

/* What the virtual table asks for and what the store will do. */
typedef struct mesh_scan_plan {
    int ncons;
    struct {
        int col; /* column index, or a pseudo column (see below) */
        mesh_op_t op;
        bool used;  /* out: the store applies this constraint */
        bool exact; /* out: ... to every row it returns, with SQLite's comparison: SQLite
                     * need not check it again (the virtual table sets omit) */
    } cons[MESH_SCAN_MAX_CONS];
    int norder; /* ORDER BY (or GROUP BY) terms asked, each a column */
    struct {
        int col;
        bool desc;
    } order[MESH_SCAN_MAX_ORDER];
    bool order_used; /* out: rows come in that order */
    bool time_desc;  /* out (time series): each series' rows newest first */
    bool want_limit; /* in: a LIMIT (and maybe OFFSET) may be pushed */
    bool want_offset;
    bool limit_used;    /* out: the store applies LIMIT/OFFSET */
    uint64_t cols_used; /* bit i: column i is read (bit 63: any column >= 63) */
    double cost;        /* out */
    int64_t est_rows;   /* out */
} mesh_scan_plan_t;

/* What a scan reads of a product: its rows, its quarantine, or (time series) the newest row
 * of each series. */
typedef enum {
    MESH_VIEW_ROWS = 0,
    MESH_VIEW_QUARANTINE = 1,
    MESH_VIEW_LAST = 2,
} mesh_view_t;

/* Fills the out fields of plan for product p. Never fails: unsupported asks are unused. */
void mesh_store_plan(mesh_store_t *s, const mesh_product_t *p, mesh_view_t view,
                     mesh_scan_plan_t *plan);

/* Columns of the quarantine view of a product. */
#define MESH_QUARANTINE_NCOLS 5 /* id, received_at, source_row, reason, raw */
extern const char *const mesh_quarantine_cols[MESH_QUARANTINE_NCOLS];

mesh_status_t mesh_store_reader_open(mesh_store_t *s, mesh_store_reader_t **out, mesh_err_t *err);
void mesh_store_reader_close(mesh_store_reader_t *r);
/* Starts / ends the read transaction all scans of one query share. */
mesh_status_t mesh_store_reader_begin(mesh_store_reader_t *r, mesh_err_t *err);
void mesh_store_reader_end(mesh_store_reader_t *r);

/*
 * Opens a scan following a plan (as filled by mesh_store_plan). args holds one value per used
 * constraint in plan order (ISNULL/ISNOTNULL take none), then the limit and offset when
 * limit_used. view selects the rows, the quarantine or the newest row of each series.
 */
mesh_status_t mesh_scan_open(mesh_store_reader_t *r, const mesh_product_t *p, mesh_view_t view,
                             const mesh_scan_plan_t *plan, const mesh_datum_t *args, int nargs,
                             mesh_scan_t **out, mesh_err_t *err);
/* Starts an open scan again with new arguments for the same plan (the next lookup of a join):
 * cheaper than closing and opening, and caches survive. */
mesh_status_t mesh_scan_rewind(mesh_scan_t *sc, const mesh_scan_plan_t *plan,
                               const mesh_datum_t *args, int nargs, mesh_err_t *err);
/* 1: a row is ready, 0: end, <0: error (detail via mesh_scan_error). */
int mesh_scan_next(mesh_scan_t *sc);
/* Value of column col of the current row (borrowed until the next call to next). */
void mesh_scan_value(mesh_scan_t *sc, int col, mesh_datum_t *out);
/* Whether a text value of column col lives longer: until mesh_store_reader_end or _close of
 * the scan's reader, even after the scan is closed (a time series' key columns). */
bool mesh_scan_text_stable(const mesh_scan_t *sc, int col);
const char *mesh_scan_error(mesh_scan_t *sc);
void mesh_scan_close(mesh_scan_t *sc);

/* ---- rollups of a time series (the p__agg view): per series and time bucket ---- */

#define MESH_ROLLUP_MAX_COLS 256

/* count, sum, min and max of one column's non-NULL values in a bucket (min and max: .i for an
 * INTEGER/BOOLEAN/TIMESTAMP column, .d for a NUMBER column). */
typedef struct mesh_rollup_acc {
    int64_t count;
    double sum;
    union {
        int64_t i;
        double d;
    } min, max;
} mesh_rollup_acc_t;

/* A condition on a series column (an operator with a value: not ISNULL/ISNOTNULL). */
typedef struct mesh_rollup_key {
    int col;
    mesh_op_t op;
    mesh_datum_t v;
} mesh_rollup_key_t;

typedef struct mesh_rollup mesh_rollup_t;

/* Opens a rollup of time series p over the rows with lo <= time <= hi of the series that meet
 * every key condition: one row per series and bucket of width ns holding rows (series ordered
 * by their columns in the product's column order, the first MESH_SCAN_MAX_ORDER of them;
 * buckets ascending), with the accumulators of numeric value columns cols. Rows are
 * read as a scan reads them (the reader's snapshot), counted in C instead of SQL. */
mesh_status_t mesh_rollup_open(mesh_store_reader_t *r, const mesh_product_t *p, int64_t width,
                               int64_t lo, int64_t hi, const mesh_rollup_key_t *keys, int nkeys,
                               const int *cols, int ncols, mesh_rollup_t **out, mesh_err_t *err);
/* 1: a row is ready, 0: end, <0: error (mesh_rollup_error). */
int mesh_rollup_next(mesh_rollup_t *ru);
/* The current row's value of series column col (NULL for others): its text lives until
 * mesh_store_reader_end of the reader. */
void mesh_rollup_key_value(mesh_rollup_t *ru, int col, mesh_datum_t *out);
/* The current row's bucket (its start) and its row count. */
int64_t mesh_rollup_bucket(mesh_rollup_t *ru, int64_t *rows);
/* The accumulators of cols[k] in the current row. */
const mesh_rollup_acc_t *mesh_rollup_acc(mesh_rollup_t *ru, int k);
const char *mesh_rollup_error(mesh_rollup_t *ru);
void mesh_rollup_close(mesh_rollup_t *ru);

/* ---- rules (rules/engine.c; on the writer's connection, inside its transaction) ---- */

/* Called per stored rule (name, text) or per series state of a rule (series, state bytes). */
typedef mesh_status_t (*mesh_store_rule_fn)(void *arg, const char *name, const uint8_t *p,
                                            size_t n);
mesh_status_t mesh_store_rule_put(mesh_store_t *s, const char *name, uint64_t seq, const char *text,
                                  mesh_err_t *err);
/* Deletes a rule with its series states (state_only: only the states). */
mesh_status_t mesh_store_rule_delete(mesh_store_t *s, const char *name, bool state_only,
                                     mesh_err_t *err);
mesh_status_t mesh_store_rules_load(mesh_store_t *s, mesh_store_rule_fn fn, void *arg,
                                    mesh_err_t *err);
mesh_status_t mesh_store_rstates_load(mesh_store_t *s, const char *rule, mesh_store_rule_fn fn,
                                      void *arg, mesh_err_t *err);
mesh_status_t mesh_store_rstate_put(mesh_store_t *s, const char *rule, const char *series,
                                    const uint8_t *p, size_t n, mesh_err_t *err);
/* The outbox: alert transitions whose actions are not done (rules/engine.c). put runs inside
 * the writer's transaction; delete in its own (a writer job, after the actions ended). */
typedef mesh_status_t (*mesh_store_outbox_fn)(void *arg, int64_t id, const char *rule, size_t rn,
                                              const char *event, size_t en);
mesh_status_t mesh_store_outbox_put(mesh_store_t *s, const char *rule_text, const char *event,
                                    int64_t *id, mesh_err_t *err);
mesh_status_t mesh_store_outbox_delete(mesh_store_t *s, int64_t id, mesh_err_t *err);
mesh_status_t mesh_store_outbox_load(mesh_store_t *s, mesh_store_outbox_fn fn, void *arg,
                                     mesh_err_t *err);
/* ---- continuous aggregates (store/cagg.c; docs/derived.md) ---- */

/* The start of t's bucket of width ns (floor, also for times before 1970). */
int64_t mesh_store_cagg_bucket(int64_t t, int64_t width);
/* Merges the rows of a batch part of src into the aggregate agg (agg->derive is an
 * aggregate of src), inside the writer's transaction; buckets the merge cannot keep exact are
 * marked stale. */
mesh_status_t mesh_store_cagg_batch(mesh_store_t *s, const mesh_product_t *agg,
                                    const mesh_product_t *src, const mesh_batch_t *b,
                                    const mesh_part_t *part, mesh_err_t *err);
/* Marks the whole aggregate for a rebuild from its source (inside the writer's transaction). */
mesh_status_t mesh_store_cagg_invalidate(mesh_store_t *s, const char *agg, mesh_err_t *err);
/* Forgets the stale marks of agg (a dropped product). */
mesh_status_t mesh_store_cagg_forget(mesh_store_t *s, const char *agg, mesh_err_t *err);
/* Whether agg has stale buckets. */
mesh_status_t mesh_store_cagg_pending(mesh_store_t *s, const char *agg, bool *out);
/* Recomputes the stale buckets of agg (or all of it, after mesh_store_cagg_invalidate) from
 * the committed rows of src, in a transaction of its own (the writer thread, outside a
 * transaction). *buckets: bucket rows written or deleted. */
mesh_status_t mesh_store_cagg_recompute(mesh_store_t *s, const mesh_product_t *agg,
                                        const mesh_product_t *src, int64_t *buckets,
                                        mesh_err_t *err);

/* Logged batches that changed nothing when applied (an idempotent duplicate, a refused batch,
 * a stream record applied before): replay of a record the store already holds skips them
 * instead of buffering their time-series rows again. Marks below the replay start are
 * pruned at checkpoints. */
mesh_status_t mesh_store_mark_unapplied(mesh_store_t *s, uint64_t seq, mesh_err_t *err);
bool mesh_store_unapplied(mesh_store_t *s, uint64_t seq);

/*
 * Stream records applied (replication, store/domain.c): per stream sequence, the record's
 * message id (NULL when unknown: an async origin record, a record replayed from the log) and
 * a fingerprint of its bytes (mesh_fp64). The id makes a stream record apply once even when
 * it comes again at another sequence (a replica that rewinds after a divergence); the
 * fingerprint lets the replicator compare what this node applied at a sequence with what the
 * stream holds there. Written in the open transaction; the last MESH_STORE_REPL_KEEP kept.
 */
#define MESH_STORE_REPL_KEEP 100000
mesh_status_t mesh_store_repl_note(mesh_store_t *s, uint64_t sseq, const char *id, uint64_t fp,
                                   mesh_err_t *err);
/* 1 (and *fp) when sseq is known, 0 when not, -1 on an error. */
int mesh_store_repl_fp(mesh_store_t *s, uint64_t sseq, uint64_t *fp);
/* The message id of the record applied at sseq: 1 (out set), 0 when not known (or none), -1 on
 * an error. */
int mesh_store_repl_id(mesh_store_t *s, uint64_t sseq, char *out, size_t cap);
/* Whether a stream record with message id id was applied (within the kept ones). */
bool mesh_store_repl_has_id(mesh_store_t *s, const char *id);

/* An integer of the store's _meta table (0 when absent). */
mesh_status_t mesh_store_meta_get(mesh_store_t *s, const char *key, int64_t *out, mesh_err_t *err);
mesh_status_t mesh_store_meta_put(mesh_store_t *s, const char *key, int64_t v, mesh_err_t *err);

/*
 * Disposal of a product's rows (retention and erasure; store/domain.c's 'E' records), inside
 * the writer's open transaction. Retention: rows whose time column is before cutoff, at most
 * about limit of them (0: all), oldest first. Erasure: the rows whose key is one of nkeys
 * keys, each the values of the product's key columns in key order (of every column for a
 * product without a key), encoded one after the other with mesh_store_key_add. A time series
 * is flushed first and its chunks rewritten (ts.h). replay: the record is at or below the
 * applied position (after a crash): only rows replayed into memory are filtered.
 * *deleted: rows removed.
 */
typedef struct mesh_dispose {
    int64_t cutoff; /* retention: INT64_MIN for an erasure */
    int64_t limit;
    const uint8_t *keys; /* erasure (borrowed) */
    size_t keys_len, nkeys;
} mesh_dispose_t;
mesh_status_t mesh_store_key_add(mesh_buf_t *b, const mesh_datum_t *v);
mesh_status_t mesh_store_dispose(mesh_store_t *s, const mesh_product_t *p, const mesh_dispose_t *d,
                                 bool replay, int64_t *deleted, mesh_err_t *err);
/* An erasure d of rows of src reaches the aggregate agg over it (store/cagg.c, inside the
 * writer's transaction): the buckets that held the erased rows (their group and the bucket of
 * their time, read from each erased key) are marked stale, so mesh_store_cagg_recompute
 * rebuilds only them from what remains of src. When the keys do not carry the group and
 * time columns, the whole aggregate is marked for a rebuild instead. *marks: buckets marked
 * (-1: a whole rebuild). */
mesh_status_t mesh_store_cagg_erased(mesh_store_t *s, const mesh_product_t *agg,
                                     const mesh_product_t *src, const mesh_dispose_t *d,
                                     int64_t *marks, mesh_err_t *err);
/* Deletes every row of the row-layout product p inside the writer's open transaction (the
 * full refresh of a derived product, store/domain.c 'F' records). *deleted: rows removed. */
mesh_status_t mesh_store_truncate(mesh_store_t *s, const mesh_product_t *p, int64_t *deleted,
                                  mesh_err_t *err);
/* Deletes the rows of the row-layout product p whose column col is at or after since (an
 * incremental refresh of a derived product), inside the writer's open transaction. */
mesh_status_t mesh_store_delete_since(mesh_store_t *s, const mesh_product_t *p, const char *col,
                                      int64_t since, int64_t *deleted, mesh_err_t *err);
/* Gives free pages back to the file system (incremental vacuum, at most max_pages; outside a
 * transaction). *freed: pages released (0 when the database is not in incremental
 * auto-vacuum mode: created before meshd set it; VACUUM converts it). */
mesh_status_t mesh_store_vacuum(mesh_store_t *s, int64_t max_pages, int64_t *freed,
                                mesh_err_t *err);

#endif
