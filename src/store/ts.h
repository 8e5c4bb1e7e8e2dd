/*
 * ts.h - the time-series layout of a product (internal to store/).
 *
 * A product whose primary key is (series columns..., time column) is stored as series and
 * compressed chunks instead of a row per reading:
 *
 *   s_<product>(id, key BLOB UNIQUE, t_max, flushed_seq, rows, <series columns>)
 *   k_<product>(series, t_min, t_max, n, data BLOB)  PRIMARY KEY (series, t_min)
 *
 * New rows of a series are appended to an in-memory buffer; the domain log makes them
 * durable. A buffer is written out as chunks (store/codec.c) when it holds a chunk's worth of
 * rows, when it gets old, or when the domain closes. A row older than what a series already
 * has on disk (late data) is merged into its chunk at once, so a series' chunks never
 * overlap each other and every buffered row is newer than its chunks.
 *
 * Visibility. Rows appended by the writer become visible at its commit. A flush writes chunks
 * and increments the domain's ts generation in the same transaction; the flushed rows stay in
 * memory, marked with that generation, until no reader whose snapshot predates it remains.
 * A reader records the generation of its snapshot and sees chunks of its snapshot plus the
 * buffered rows of later generations (and unflushed ones): every row exactly once. The
 * buffers are updated just after the SQLite commit; a reader whose snapshot falls in between
 * waits for that update (store.c, reader_pin_gen), and a read transaction on a store with
 * time series pins its generation when it begins.
 *
 * Replay. Each series records the log position its chunks cover (flushed_seq); the product
 * records the position below which nothing is buffered (clean seq, in _meta). After a crash
 * the domain replays the log from the lowest clean seq, and rows already in chunks are
 * skipped per series.
 *
 * Locking: the writer thread alone calls apply/flush/commit/rollback; scans on other threads
 * take the product's read lock while they copy a series' buffered rows.
 */
#ifndef MESH_STORE_TS_H
#define MESH_STORE_TS_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "catalog/contract.h"
#include "ingest/batch.h"
#include "store/store.h"

#define MESH_TS_CHUNK_ROWS   1024    /* a full buffer is flushed as one chunk */
#define MESH_TS_CHUNK_MAX    4096    /* a merged chunk is split beyond this */
#define MESH_TS_MAX_BUFFERED 2000000 /* rows buffered per product before everything is flushed */

typedef struct mesh_ts mesh_ts_t;
typedef struct mesh_ts_cursor mesh_ts_cursor_t;

/* True when the product's key is (series columns..., time column) and it is not a derived
 * product: it gets this layout. */
bool mesh__ts_eligible(const mesh_product_t *p);

/* Creates the product's tables if they do not exist. */
mesh_status_t mesh__ts_create(sqlite3 *db, const mesh_product_t *p, mesh_err_t *err);
/* Drops the product's tables. */
mesh_status_t mesh__ts_drop(sqlite3 *db, const char *product, mesh_err_t *err);

/* Loads the product's series into memory. The result is reference-counted (1 here). */
mesh_status_t mesh__ts_open(sqlite3 *db, const mesh_product_t *p, mesh_ts_t **out, mesh_err_t *err);
mesh_ts_t *mesh__ts_ref(mesh_ts_t *t);
void mesh__ts_unref(mesh_ts_t *t);
const mesh_product_t *mesh__ts_product(const mesh_ts_t *t);

/*
 * Applies the rows of one part recorded at seq. replay: the record is being replayed after a
 * crash and applied_seq is the store's position: rows already in chunks are skipped, and rows
 * of records <= applied_seq touch memory only. *added counts rows new to the product.
 */
mesh_status_t mesh__ts_apply(mesh_ts_t *t, sqlite3 *db, uint64_t seq, const mesh_batch_t *b,
                             const mesh_part_t *part, bool replay, uint64_t applied_seq,
                             int64_t *added, mesh_err_t *err);

/* A record's effects are applied inside a savepoint: begin marks its start, undo takes back
 * what it appended when the savepoint is rolled back. */
void mesh__ts_record_begin(mesh_ts_t *t);
void mesh__ts_record_undo(mesh_ts_t *t);

typedef enum {
    MESH_TS_FLUSH_FULL = 0, /* series whose buffer holds a chunk's worth */
    MESH_TS_FLUSH_AGED,     /* and series whose oldest buffered row arrived > max_age ago */
    MESH_TS_FLUSH_ALL,      /* everything (close, contract change) */
} mesh_ts_flush_t;

/* Writes buffered rows out as chunks inside the writer's open transaction. gen is the ts
 * generation this transaction commits; seq the log position it covers. *did tells whether
 * anything was written (the caller then stores gen). */
mesh_status_t mesh__ts_flush(mesh_ts_t *t, sqlite3 *db, mesh_ts_flush_t mode, int64_t max_age_ns,
                             uint64_t gen, uint64_t seq, bool *did, mesh_err_t *err);
/* The writer's transaction committed (gen: the generation it committed) or rolled back. */
void mesh__ts_commit(mesh_ts_t *t, uint64_t gen);
void mesh__ts_rollback(mesh_ts_t *t);
/* Frees flushed rows no reader can need (readers' generations are all >= min_gen). */
void mesh__ts_gc(mesh_ts_t *t, uint64_t min_gen);
/* The log position below which no row of this product is only in memory. */
uint64_t mesh__ts_clean_seq(mesh_ts_t *t, uint64_t applied_seq);
/* Rows held in memory, and series known. */
void mesh__ts_counts(mesh_ts_t *t, int64_t *buffered, int64_t *series);

/*
 * Disposal of rows (retention and erasure, store.h mesh_store_dispose), inside the writer's
 * open transaction. Rows go when their time is before cutoff (INT64_MIN: none; at most about
 * limit rows, whole chunks oldest first, limit 0: no bound) or when their key is one of the
 * nkeys keys (each the product's key columns encoded with mesh_store_key_add: the series
 * columns, then the time). Chunks are rewritten; of the buffers, only rows no reader sees yet
 * are filtered (the caller has flushed the product first, so the others are in chunks).
 * replay: the record is at or below the store's position (after a crash): its chunk work is
 * in the database already and only the rows replayed into memory are filtered.
 * *deleted counts rows removed.
 */
mesh_status_t mesh__ts_dispose(mesh_ts_t *t, sqlite3 *db, int64_t cutoff, int64_t limit,
                               const uint8_t *keys, size_t keys_len, size_t nkeys, bool replay,
                               int64_t *deleted, mesh_err_t *err);

/* Calls fn with every row (values of the product's columns, borrowed) of the product's
 * chunk tables named with suffix (a rebuild reads the old tables under "__old"). Buffers are
 * not read: flush everything first. */
typedef mesh_status_t (*mesh_ts_row_fn)(void *arg, const mesh_datum_t *vals);
mesh_status_t mesh__ts_dump(sqlite3 *db, const mesh_product_t *p, const char *suffix,
                            mesh_ts_row_fn fn, void *arg, mesh_err_t *err);

/* Planning and scanning (same contract as mesh_store_plan / mesh_scan_*). */
/* last: the newest row of each series (after key constraints; other constraints filter
 * those rows). */
void mesh__ts_plan(mesh_ts_t *t, int64_t rows, bool last, mesh_scan_plan_t *plan);
mesh_status_t mesh__ts_scan_open(mesh_ts_t *t, sqlite3 *rdb, uint64_t reader_gen,
                                 uint64_t reader_seq, bool last, const mesh_scan_plan_t *plan,
                                 const mesh_datum_t *args, int nargs, mesh_ts_cursor_t **out,
                                 mesh_err_t *err);
/* Starts the scan again with new arguments (a join's next lookup), keeping caches. */
mesh_status_t mesh__ts_scan_rewind(mesh_ts_cursor_t *c, const mesh_scan_plan_t *plan,
                                   const mesh_datum_t *args, int nargs, mesh_err_t *err);
int mesh__ts_scan_next(mesh_ts_cursor_t *c);
void mesh__ts_scan_value(mesh_ts_cursor_t *c, int col, mesh_datum_t *out);
/* Whether product column col is a series key column (its values live as long as t). */
bool mesh__ts_key_col(const mesh_ts_t *t, int col);
const char *mesh__ts_scan_error(mesh_ts_cursor_t *c);
void mesh__ts_scan_close(mesh_ts_cursor_t *c);

/* Rollups (mesh_rollup_*): an open plain scan's rows counted per series and bucket. The
 * rollup uses the cursor, which stays the caller's to close (after the rollup). */
typedef struct mesh_ts_rollup mesh_ts_rollup_t;
mesh_status_t mesh__ts_rollup_open(mesh_ts_cursor_t *c, int64_t width, const int *cols, int ncols,
                                   mesh_ts_rollup_t **out, mesh_err_t *err);
int mesh__ts_rollup_next(mesh_ts_rollup_t *R);
void mesh__ts_rollup_value(const mesh_ts_rollup_t *R, int col, mesh_datum_t *out);
int64_t mesh__ts_rollup_bucket(const mesh_ts_rollup_t *R, int64_t *rows);
const mesh_rollup_acc_t *mesh__ts_rollup_acc(const mesh_ts_rollup_t *R, int k);
const char *mesh__ts_rollup_error(const mesh_ts_rollup_t *R);
void mesh__ts_rollup_close(mesh_ts_rollup_t *R);

#endif
