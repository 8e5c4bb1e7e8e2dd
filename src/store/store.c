/*
 * store.c - a domain's SQLite database (row layout).
 *
 * Tables (all STRICT):
 *   _meta(key, value)                        applied_seq, layout version
 *   _contracts(id, version, seq, yaml, at)   every contract version applied (history)
 *   _products(name, rows, quarantined, last_write_ns)
 *   _idem(key, seq, rows, quarantined, at_ns) idempotency keys of applied batches
 *   _quarantine(id, product, seq, source_row, reason, raw, received_ns)
 *   p_<product>                              the product's rows, one per reading
 *   _cagg_stale(product, gkey, bucket)       buckets of continuous aggregates to recompute
 *
 * A product with a primary key is a WITHOUT ROWID table clustered on that key; a write of
 * an existing key merges into the row (columns given replace, columns absent keep their
 * value), as InfluxDB does for a point written twice. The time column, when it does not
 * lead the key, has its own index so time-range scans do not read the whole table.
 */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/log.h"
#include "core/util.h"
#include "crypt/vfs.h"
#include "store/internal.h"
#include "store/ts.h"

#define STMT_CACHE      32
#define LAYOUT_VERSION  "1"
#define BUSY_TIMEOUT_MS 10000

typedef struct insert_stmt {
    char name[64];
    const mesh_product_t *product; /* the definition it was prepared for */
    sqlite3_stmt *ins;             /* INSERT [OR IGNORE] */
    sqlite3_stmt *upd;             /* UPDATE ... WHERE key (products with a key), else NULL */
} insert_stmt_t;

typedef struct stats_entry {
    char name[64];
    mesh_product_stats_t st;
    int64_t bytes_at_ns; /* when bytes was computed */
} stats_entry_t;

struct mesh_store {
    char *path; /* the database file; changes when re-encrypted (under path_lock) */
    pthread_mutex_t path_lock;
    _Atomic uint64_t file_gen; /* bumped when path changes: readers reopen */
    mesh_store_opts_t opts;
    sqlite3 *db;
    uint64_t applied_seq;
    bool in_txn;
    insert_stmt_t *ins;
    size_t nins, capins;
    sqlite3_stmt *q_idem_get, *q_idem_put, *q_quar_put, *q_stats_put;
    sqlite3_stmt *q_rstate_put; /* rules: a series' state */
    pthread_mutex_t stats_lock; /* guards stats (read by planners on other threads) */
    stats_entry_t *stats;
    size_t nstats, capstats;
    /* time-series products (see ts.h) */
    pthread_mutex_t ts_lock; /* guards ts[] (readers look products up) and reader_gens */
    mesh_ts_t **ts;
    size_t nts, capts;
    uint64_t ts_gen;         /* committed generation of flushed chunks */
    uint64_t ts_gen_pending; /* the open transaction flushed: the generation it commits */
    struct ts_swap {
        char name[MESH_NAME_MAX + 1];
        mesh_ts_t *old, *next; /* replaced in the open transaction (either may be NULL) */
        uint64_t sp;           /* the record that did it */
    } * swaps;
    size_t nswaps, capswaps;
    uint64_t sp_id; /* the record being applied */
    uint64_t gen_pending_at_sp;
    uint64_t *reader_gens; /* generations pinned by open read transactions */
    size_t nreader_gens, capreader_gens;
    /* The last commit whose effects on the ts buffers are published (the buffers follow the
     * SQLite commit, so a reader can take a snapshot in between: see reader_pin_gen). */
    pthread_mutex_t pub_lock;
    pthread_cond_t pub_cond;
    uint64_t pub_seq, pub_gen;
};

/* Test seam: called on the writer thread between a SQLite commit and the publication of its
 * ts buffers (NULL in the product). */
void (*mesh__store_commit_hook)(void *arg);
void *mesh__store_commit_hook_arg;

const char *const mesh_quarantine_cols[MESH_QUARANTINE_NCOLS] = {"id", "received_at", "source_row",
                                                                 "reason", "raw"};

/* ---- helpers ---- */

static mesh_status_t sql_err(sqlite3 *db, mesh_err_t *err, const char *what)
{
    int rc = sqlite3_extended_errcode(db);
    mesh_status_t code = MESH_IO;
    if (rc == SQLITE_FULL)
        code = MESH_NOSPACE;
    else if ((rc & 0xff) == SQLITE_CORRUPT || rc == SQLITE_NOTADB || rc == SQLITE_IOERR_DATA)
        code = MESH_CORRUPT; /* IOERR_DATA: a page failed authentication (crypt/vfs.c) */
    else if ((rc & 0xff) == SQLITE_CONSTRAINT)
        code = MESH_CONFLICT;
    else if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        code = MESH_BUSY;
    else if (rc == SQLITE_NOMEM)
        code = MESH_NOMEM;
    return mesh_err_set(err, code, "%s: %s", what, mesh_crypt_errmsg(db));
}

static mesh_status_t exec(sqlite3 *db, const char *sql, mesh_err_t *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        mesh_status_t st = sql_err(db, err, "sql");
        sqlite3_free(msg);
        return st;
    }
    return MESH_OK;
}

static mesh_status_t prep(sqlite3 *db, const char *sql, sqlite3_stmt **out, mesh_err_t *err)
{
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL) != SQLITE_OK)
        return sql_err(db, err, "prepare");
    return MESH_OK;
}

/* Appends "name" quoted as an SQL identifier. Names are validated upstream; quotes are
 * doubled anyway. */
static mesh_status_t add_ident(mesh_buf_t *b, const char *name)
{
    mesh_status_t st = mesh_buf_addc(b, '"');
    for (const char *c = name; *c && st == MESH_OK; c++) {
        if (*c == '"')
            st = mesh_buf_addc(b, '"');
        if (st == MESH_OK)
            st = mesh_buf_addc(b, *c);
    }
    return st == MESH_OK ? mesh_buf_addc(b, '"') : st;
}

static mesh_status_t add_table(mesh_buf_t *b, const char *product, const char *suffix)
{
    char t[160];
    snprintf(t, sizeof t, "p_%s%s", product, suffix ? suffix : "");
    return add_ident(b, t);
}

static const char *storage_type(mesh_ltype_t t)
{
    switch (t) {
    case MESH_LT_INTEGER:
    case MESH_LT_BOOLEAN:
    case MESH_LT_TIMESTAMP:
        return "INTEGER";
    case MESH_LT_NUMBER:
        return "REAL";
    default:
        return "TEXT";
    }
}

/* A value of _meta, or an error (a page that cannot be read is not "0"). */
static mesh_status_t meta_int_checked(sqlite3 *db, const char *key, int64_t *out, mesh_err_t *err)
{
    sqlite3_stmt *q;
    *out = 0;
    if (sqlite3_prepare_v2(db, "SELECT value FROM _meta WHERE key = ?", -1, &q, NULL) != SQLITE_OK)
        return sql_err(db, err, "read _meta");
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sql_err(db, err, "read _meta");
    return MESH_OK;
}

static int64_t meta_int(sqlite3 *db, const char *key)
{
    sqlite3_stmt *q;
    int64_t v = 0;
    if (sqlite3_prepare_v2(db, "SELECT value FROM _meta WHERE key = ?", -1, &q, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW)
        v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

/* ---- time-series products ---- */

/* The ts object of a product, with a reference (readers), or NULL. */
static mesh_ts_t *ts_get(mesh_store_t *s, const char *name)
{
    mesh_ts_t *r = NULL;
    pthread_mutex_lock(&s->ts_lock);
    for (size_t i = 0; i < s->nts && !r; i++)
        if (strcmp(mesh__ts_product(s->ts[i])->name, name) == 0)
            r = mesh__ts_ref(s->ts[i]);
    pthread_mutex_unlock(&s->ts_lock);
    return r;
}

/* The writer's view (no reference: only the writer changes ts[]). */
static mesh_ts_t *ts_find(mesh_store_t *s, const char *name)
{
    for (size_t i = 0; i < s->nts; i++)
        if (strcmp(mesh__ts_product(s->ts[i])->name, name) == 0)
            return s->ts[i];
    return NULL;
}

/* Makes next (may be NULL) the ts object of product name; the change is undone if the record
 * or the transaction rolls back, and the old object released at commit. */
static mesh_status_t ts_set(mesh_store_t *s, const char *name, mesh_ts_t *next)
{
    if (s->nswaps == s->capswaps) {
        size_t ncap = s->capswaps ? s->capswaps * 2 : 4;
        struct ts_swap *n = realloc(s->swaps, ncap * sizeof *n);
        if (n == NULL)
            return MESH_NOMEM;
        s->swaps = n;
        s->capswaps = ncap;
    }
    if (next && s->nts == s->capts) {
        size_t ncap = s->capts ? s->capts * 2 : 4;
        mesh_ts_t **n = realloc(s->ts, ncap * sizeof *n);
        if (n == NULL)
            return MESH_NOMEM;
        pthread_mutex_lock(&s->ts_lock);
        s->ts = n;
        s->capts = ncap;
        pthread_mutex_unlock(&s->ts_lock);
    }
    mesh_ts_t *old = NULL;
    pthread_mutex_lock(&s->ts_lock);
    size_t i = 0;
    while (i < s->nts && strcmp(mesh__ts_product(s->ts[i])->name, name) != 0)
        i++;
    if (i < s->nts) {
        old = s->ts[i];
        if (next)
            s->ts[i] = next;
        else
            s->ts[i] = s->ts[--s->nts];
    } else if (next) {
        s->ts[s->nts++] = next;
    }
    pthread_mutex_unlock(&s->ts_lock);
    struct ts_swap *w = &s->swaps[s->nswaps++];
    snprintf(w->name, sizeof w->name, "%s", name);
    w->old = old;
    w->next = next;
    w->sp = s->sp_id;
    return MESH_OK;
}

/* Undoes swaps (all, or those of the current record), newest first. */
static void ts_swaps_undo(mesh_store_t *s, bool record_only)
{
    while (s->nswaps > 0) {
        struct ts_swap *w = &s->swaps[s->nswaps - 1];
        if (record_only && w->sp != s->sp_id)
            break;
        pthread_mutex_lock(&s->ts_lock);
        size_t i = 0;
        while (i < s->nts && s->ts[i] != w->next)
            i++;
        if (w->next && i < s->nts) {
            if (w->old)
                s->ts[i] = w->old;
            else
                s->ts[i] = s->ts[--s->nts];
        } else if (!w->next && w->old) {
            s->ts[s->nts++] = w->old; /* capacity was there: it held it before */
        }
        pthread_mutex_unlock(&s->ts_lock);
        if (w->old)
            mesh__ts_rollback(w->old);
        mesh__ts_unref(w->next);
        s->nswaps--;
    }
}

static void ts_swaps_commit(mesh_store_t *s)
{
    for (size_t i = 0; i < s->nswaps; i++)
        mesh__ts_unref(s->swaps[i].old);
    s->nswaps = 0;
}

/* The oldest generation an open read transaction still needs. */
static uint64_t ts_min_gen(mesh_store_t *s)
{
    pthread_mutex_lock(&s->ts_lock);
    uint64_t m = s->ts_gen;
    for (size_t i = 0; i < s->nreader_gens; i++)
        if (s->reader_gens[i] < m)
            m = s->reader_gens[i];
    pthread_mutex_unlock(&s->ts_lock);
    return m;
}

static void ts_after_commit(mesh_store_t *s)
{
    if (s->ts_gen_pending) {
        pthread_mutex_lock(&s->ts_lock);
        s->ts_gen = s->ts_gen_pending;
        pthread_mutex_unlock(&s->ts_lock);
        s->ts_gen_pending = 0;
    }
    for (size_t i = 0; i < s->nts; i++)
        mesh__ts_commit(s->ts[i], s->ts_gen);
    for (size_t i = 0; i < s->nswaps; i++)
        if (s->swaps[i].old)
            mesh__ts_commit(s->swaps[i].old, s->ts_gen);
    ts_swaps_commit(s);
    pthread_mutex_lock(&s->pub_lock);
    s->pub_seq = s->applied_seq;
    s->pub_gen = s->ts_gen;
    pthread_cond_broadcast(&s->pub_cond);
    pthread_mutex_unlock(&s->pub_lock);
    uint64_t min = ts_min_gen(s);
    for (size_t i = 0; i < s->nts; i++)
        mesh__ts_gc(s->ts[i], min);
}

static void ts_after_rollback(mesh_store_t *s)
{
    ts_swaps_undo(s, false);
    for (size_t i = 0; i < s->nts; i++)
        mesh__ts_rollback(s->ts[i]);
    s->ts_gen_pending = 0;
}

mesh_status_t mesh_store_attach(mesh_store_t *s, const mesh_product_t *p, mesh_err_t *err)
{
    if (!mesh__ts_eligible(p))
        return ts_find(s, p->name) ? ts_set(s, p->name, NULL) : MESH_OK;
    mesh_ts_t *t;
    mesh_status_t st = mesh__ts_open(s->db, p, &t, err);
    if (st != MESH_OK)
        return st;
    if ((st = ts_set(s, p->name, t)) != MESH_OK) {
        mesh__ts_unref(t);
        return mesh_err_set(err, st, "out of memory");
    }
    if (!s->in_txn)
        ts_swaps_commit(s); /* at open: nothing to undo */
    return MESH_OK;
}

bool mesh_store_is_timeseries(mesh_store_t *s, const char *product)
{
    mesh_ts_t *t = ts_get(s, product); /* readers ask too: under the lock */
    mesh__ts_unref(t);
    return t != NULL;
}

mesh_status_t mesh_store_flush(mesh_store_t *s, int mode, int64_t max_age_ns, mesh_err_t *err)
{
    uint64_t gen = (s->ts_gen_pending ? s->ts_gen_pending : s->ts_gen) + 1;
    bool did = false;
    mesh_status_t st = MESH_OK;
    for (size_t i = 0; i < s->nts && st == MESH_OK; i++)
        st = mesh__ts_flush(s->ts[i], s->db, (mesh_ts_flush_t)mode, max_age_ns, gen, s->applied_seq,
                            &did, err);
    if (st == MESH_OK && did) {
        char sql[128];
        snprintf(sql, sizeof sql,
                 "INSERT OR REPLACE INTO _meta(key, value) VALUES ('ts_gen', %" PRIu64 ")", gen);
        if ((st = exec(s->db, sql, err)) == MESH_OK)
            s->ts_gen_pending = gen;
    }
    return st;
}

bool mesh_store_rules_clean_recorded(mesh_store_t *s)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM _meta WHERE key = 'rules_clean'", -1, &q, NULL) !=
        SQLITE_OK)
        return false;
    bool found = sqlite3_step(q) == SQLITE_ROW;
    sqlite3_finalize(q);
    return found;
}

uint64_t mesh_store_rules_clean(mesh_store_t *s)
{
    /* no record: the states were written with every record (before decision 0028), or there
     * were never rules */
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM _meta WHERE key = 'rules_clean'", -1, &q,
                           NULL) != SQLITE_OK)
        return 0;
    uint64_t v =
        sqlite3_step(q) == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(q, 0) : s->applied_seq;
    sqlite3_finalize(q);
    return v;
}

uint64_t mesh_store_replay_from(mesh_store_t *s)
{
    /* every time series records its clean position at creation and at checkpoints; one
     * without a record (never checkpointed) replays from the start of the log */
    uint64_t from = s->applied_seq;
    /* rule states are written at checkpoints too: the log is kept back to their position */
    uint64_t rules = mesh_store_rules_clean(s);
    if (rules < from)
        from = rules;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM _meta WHERE key = ?", -1, &q, NULL) !=
        SQLITE_OK)
        return 0;
    for (size_t i = 0; i < s->nts; i++) {
        char key[MESH_NAME_MAX + 16];
        snprintf(key, sizeof key, "ts_clean:%s", mesh__ts_product(s->ts[i])->name);
        sqlite3_bind_text(q, 1, key, -1, SQLITE_TRANSIENT);
        uint64_t v = sqlite3_step(q) == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(q, 0) : 0;
        sqlite3_reset(q);
        if (v < from)
            from = v;
    }
    sqlite3_finalize(q);
    return from;
}

static mesh_status_t ts_write_clean(mesh_store_t *s, mesh_err_t *err);

/* Forgets the unapplied marks that no replay reaches any more (at and below its start). */
static mesh_status_t unapplied_prune(mesh_store_t *s, mesh_err_t *err)
{
    uint64_t from = s->applied_seq;
    uint64_t rules = mesh_store_rules_clean(s);
    if (rules < from)
        from = rules;
    for (size_t i = 0; i < s->nts; i++) {
        uint64_t clean = mesh__ts_clean_seq(s->ts[i], s->applied_seq);
        if (clean < from)
            from = clean;
    }
    /* an async domain's outbox reads the log after its position too, and skips the marked */
    char sql[256];
    snprintf(sql, sizeof sql,
             "DELETE FROM _unapplied WHERE seq <= min(%" PRIu64 ", coalesce((SELECT value FROM"
             " _meta WHERE key = 'repl_outbox'), %" PRIu64 "))",
             from, from);
    return exec(s->db, sql, err);
}

/* Records, per time-series product, the log position below which nothing is only in memory. */
static mesh_status_t ts_write_clean(mesh_store_t *s, mesh_err_t *err)
{
    mesh_status_t st = MESH_OK;
    for (size_t i = 0; i < s->nts && st == MESH_OK; i++) {
        uint64_t clean = mesh__ts_clean_seq(s->ts[i], s->applied_seq);
        char sql[256];
        snprintf(sql, sizeof sql,
                 "INSERT OR REPLACE INTO _meta(key, value) VALUES ('ts_clean:%s', %" PRIu64 ")",
                 mesh__ts_product(s->ts[i])->name, clean);
        st = exec(s->db, sql, err);
    }
    return st;
}

mesh_status_t mesh_store_replay_batch(mesh_store_t *s, uint64_t seq, const mesh_batch_t *b,
                                      mesh_err_t *err)
{
    mesh_status_t st = MESH_OK;
    for (size_t i = 0; i < b->nparts && st == MESH_OK; i++) {
        const mesh_part_t *part = &b->parts[i];
        mesh_ts_t *t = ts_find(s, part->product->name);
        if (t == NULL || part->nrows == 0)
            continue;
        int64_t added;
        st = mesh__ts_apply(t, s->db, seq, b, part, true, s->applied_seq, &added, err);
    }
    return st;
}

/* ---- open / close ---- */

static const char *schema_sql =
    "CREATE TABLE IF NOT EXISTS _meta(key TEXT PRIMARY KEY, value ANY) STRICT, WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS _contracts(id TEXT NOT NULL, version TEXT NOT NULL,"
    "  seq INTEGER NOT NULL, yaml TEXT NOT NULL, applied_ns INTEGER NOT NULL,"
    "  PRIMARY KEY(id, version)) STRICT;"
    "CREATE TABLE IF NOT EXISTS _products(name TEXT PRIMARY KEY, rows INTEGER NOT NULL DEFAULT 0,"
    "  quarantined INTEGER NOT NULL DEFAULT 0, last_write_ns INTEGER NOT NULL DEFAULT 0)"
    "  STRICT, WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS _idem(key TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
    "  rows INTEGER NOT NULL, quarantined INTEGER NOT NULL, at_ns INTEGER NOT NULL)"
    "  STRICT, WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS _idem_at ON _idem(at_ns);"
    "CREATE TABLE IF NOT EXISTS _quarantine(id INTEGER PRIMARY KEY, product TEXT NOT NULL,"
    "  seq INTEGER NOT NULL, source_row INTEGER NOT NULL, reason TEXT NOT NULL, raw TEXT,"
    "  received_ns INTEGER NOT NULL) STRICT;"
    "CREATE INDEX IF NOT EXISTS _quarantine_product ON _quarantine(product, id);"
    "CREATE TABLE IF NOT EXISTS _rules(name TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
    "  text TEXT NOT NULL) STRICT, WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS _rule_state(rule TEXT NOT NULL, series TEXT NOT NULL,"
    "  state BLOB NOT NULL, PRIMARY KEY(rule, series)) STRICT, WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS _outbox(id INTEGER PRIMARY KEY, rule TEXT NOT NULL,"
    "  event TEXT NOT NULL) STRICT;"
    "CREATE TABLE IF NOT EXISTS _unapplied(seq INTEGER PRIMARY KEY) STRICT;"
    "CREATE TABLE IF NOT EXISTS _repl_seen(sseq INTEGER PRIMARY KEY, id TEXT,"
    "  fp INTEGER NOT NULL) STRICT;"
    "CREATE INDEX IF NOT EXISTS _repl_seen_id ON _repl_seen(id) WHERE id IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS _cagg_stale(product TEXT NOT NULL, gkey BLOB NOT NULL,"
    "  bucket INTEGER NOT NULL, PRIMARY KEY(product, gkey, bucket)) STRICT, WITHOUT ROWID;"
    "INSERT OR IGNORE INTO _meta(key, value) VALUES ('layout', " LAYOUT_VERSION "),"
    "  ('applied_seq', 0);";

static mesh_status_t stats_load(mesh_store_t *s, mesh_err_t *err);

/* Opens the writer connection on path with the store's pragmas. */
static mesh_status_t conn_open(mesh_store_t *s, const char *path, mesh_err_t *err)
{
    /* through the encrypting VFS when the domain attached a key for path */
    mesh_status_t st = mesh_crypt_sqlite_open(path,
                                              SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                                  SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
                                              &s->db, err);
    if (st != MESH_OK)
        return st;
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    /* a new database gives deleted rows' pages back (retention, erasure: mesh_store_vacuum);
     * set only while it is empty: on an existing one the pragma writes its header, which a
     * full disk refuses */
    sqlite3_stmt *pc;
    if (sqlite3_prepare_v2(s->db, "PRAGMA page_count", -1, &pc, NULL) == SQLITE_OK) {
        bool empty = sqlite3_step(pc) == SQLITE_ROW && sqlite3_column_int64(pc, 0) == 0;
        sqlite3_finalize(pc);
        if (empty && (st = exec(s->db, "PRAGMA auto_vacuum=INCREMENTAL", err)) != MESH_OK)
            return st;
    }
    char pragmas[256];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA temp_store=MEMORY;"
             "PRAGMA cache_size=-%lld; PRAGMA foreign_keys=OFF;",
             s->opts.sync_full ? "FULL" : "NORMAL",
             (long long)(s->opts.cache_kib ? s->opts.cache_kib : 16384));
    return exec(s->db, pragmas, err);
}

/* Prepares the statements the writer keeps. */
static mesh_status_t prepare_all(mesh_store_t *s, mesh_err_t *err)
{
    mesh_status_t st;
    if ((st = prep(s->db, "SELECT seq, rows, quarantined FROM _idem WHERE key = ?", &s->q_idem_get,
                   err)) != MESH_OK ||
        (st =
             prep(s->db, "INSERT INTO _idem(key, seq, rows, quarantined, at_ns) VALUES (?,?,?,?,?)",
                  &s->q_idem_put, err)) != MESH_OK ||
        (st = prep(s->db,
                   "INSERT INTO _quarantine(product, seq, source_row, reason, raw, received_ns)"
                   " VALUES (?,?,?,?,?,?)",
                   &s->q_quar_put, err)) != MESH_OK ||
        (st = prep(s->db,
                   "INSERT INTO _products(name, rows, quarantined, last_write_ns)"
                   " VALUES (?1, ?2, ?3, ?4) ON CONFLICT(name) DO UPDATE SET"
                   " rows = rows + ?2, quarantined = quarantined + ?3,"
                   " last_write_ns = max(last_write_ns, ?4)",
                   &s->q_stats_put, err)) != MESH_OK ||
        (st = prep(s->db, "INSERT OR REPLACE INTO _rule_state(rule, series, state) VALUES (?,?,?)",
                   &s->q_rstate_put, err)) != MESH_OK)
        return st;
    return MESH_OK;
}

static void finalize_all(mesh_store_t *s);

mesh_status_t mesh_store_open(const char *path, const mesh_store_opts_t *opts, mesh_store_t **out,
                              mesh_err_t *err)
{
    mesh_store_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    pthread_mutex_init(&s->stats_lock, NULL);
    pthread_mutex_init(&s->ts_lock, NULL);
    pthread_mutex_init(&s->pub_lock, NULL);
    mesh_cond_init_mono(&s->pub_cond);
    pthread_mutex_init(&s->path_lock, NULL);
    if (opts)
        s->opts = *opts;
    mesh_status_t st;
    if ((s->path = strdup(path)) == NULL) {
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
        goto err;
    }
    if ((st = conn_open(s, path, err)) != MESH_OK)
        goto err;
    if ((st = exec(s->db, schema_sql, err)) != MESH_OK)
        goto err;
    int64_t layout, applied, ts_gen;
    if ((st = meta_int_checked(s->db, "layout", &layout, err)) != MESH_OK ||
        (st = meta_int_checked(s->db, "applied_seq", &applied, err)) != MESH_OK ||
        (st = meta_int_checked(s->db, "ts_gen", &ts_gen, err)) != MESH_OK)
        goto err;
    if (layout != 1) {
        st = mesh_err_set(err, MESH_CORRUPT, "%s: unknown store layout", path);
        goto err;
    }
    s->applied_seq = (uint64_t)applied;
    s->ts_gen = (uint64_t)ts_gen;
    s->pub_seq = s->applied_seq;
    s->pub_gen = s->ts_gen;
    if ((st = prepare_all(s, err)) != MESH_OK)
        goto err;
    if ((st = stats_load(s, err)) != MESH_OK)
        goto err;
    *out = s;
    return MESH_OK;
err:
    mesh_store_close(s);
    return st;
}

static void drop_insert_cache(mesh_store_t *s)
{
    for (size_t i = 0; i < s->nins; i++) {
        sqlite3_finalize(s->ins[i].ins);
        sqlite3_finalize(s->ins[i].upd);
    }
    s->nins = 0;
}

static void finalize_all(mesh_store_t *s)
{
    drop_insert_cache(s);
    sqlite3_finalize(s->q_idem_get);
    sqlite3_finalize(s->q_idem_put);
    sqlite3_finalize(s->q_quar_put);
    sqlite3_finalize(s->q_stats_put);
    sqlite3_finalize(s->q_rstate_put);
    s->q_idem_get = s->q_idem_put = s->q_quar_put = s->q_stats_put = s->q_rstate_put = NULL;
}

void mesh_store_close(mesh_store_t *s)
{
    if (s == NULL)
        return;
    finalize_all(s);
    free(s->ins);
    if (s->db) {
        if (s->in_txn)
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(s->db);
    }
    for (size_t i = 0; i < s->nts; i++)
        mesh__ts_unref(s->ts[i]);
    for (size_t i = 0; i < s->nswaps; i++)
        mesh__ts_unref(s->swaps[i].old);
    free(s->ts);
    free(s->swaps);
    free(s->reader_gens);
    pthread_mutex_destroy(&s->ts_lock);
    pthread_mutex_destroy(&s->pub_lock);
    pthread_cond_destroy(&s->pub_cond);
    pthread_mutex_destroy(&s->stats_lock);
    pthread_mutex_destroy(&s->path_lock);
    free(s->stats);
    free(s->path);
    free(s);
}

const char *mesh_store_path(const mesh_store_t *s)
{
    return s->path;
}

uint64_t mesh_store_applied_seq(const mesh_store_t *s)
{
    return s->applied_seq;
}

/* ---- stats ---- */

static stats_entry_t *stats_find(mesh_store_t *s, const char *name, bool create)
{
    for (size_t i = 0; i < s->nstats; i++)
        if (strcmp(s->stats[i].name, name) == 0)
            return &s->stats[i];
    if (!create)
        return NULL;
    if (s->nstats == s->capstats) {
        size_t ncap = s->capstats ? s->capstats * 2 : 16;
        stats_entry_t *n = realloc(s->stats, ncap * sizeof *n);
        if (n == NULL)
            return NULL;
        s->stats = n;
        s->capstats = ncap;
    }
    stats_entry_t *e = &s->stats[s->nstats++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    return e;
}

static mesh_status_t stats_load(mesh_store_t *s, mesh_err_t *err)
{
    sqlite3_stmt *q;
    mesh_status_t st =
        prep(s->db, "SELECT name, rows, quarantined, last_write_ns FROM _products", &q, err);
    if (st != MESH_OK)
        return st;
    pthread_mutex_lock(&s->stats_lock);
    s->nstats = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        stats_entry_t *e = stats_find(s, (const char *)sqlite3_column_text(q, 0), true);
        if (e == NULL)
            break;
        e->st.rows = sqlite3_column_int64(q, 1);
        e->st.quarantined = sqlite3_column_int64(q, 2);
        e->st.last_write_ns = sqlite3_column_int64(q, 3);
    }
    pthread_mutex_unlock(&s->stats_lock);
    st = rc == SQLITE_ROW || rc == SQLITE_DONE ? MESH_OK : sql_err(s->db, err, "product stats");
    sqlite3_finalize(q);
    return st;
}

static int64_t product_bytes(mesh_store_t *s, const char *product)
{
    /* dbstat reads every page of the product's b-trees: cached by the caller for a while */
    sqlite3_stmt *q;
    int64_t bytes = 0;
    char pat[160], sp[160], kp[160];
    snprintf(pat, sizeof pat, "p_%s", product);
    snprintf(sp, sizeof sp, "s_%s", product);
    snprintf(kp, sizeof kp, "k_%s", product);
    if (sqlite3_prepare_v2(s->db,
                           "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN (?1, ?2, ?3)"
                           " OR name IN (SELECT name FROM sqlite_schema WHERE type = 'index' AND"
                           " tbl_name IN (?1, ?2, ?3))",
                           -1, &q, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(q, 1, pat, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, sp, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, kp, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(q) == SQLITE_ROW)
        bytes = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return bytes;
}

mesh_status_t mesh_store_product_stats(mesh_store_t *s, const char *product,
                                       mesh_product_stats_t *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->stats_lock);
    stats_entry_t *e = stats_find(s, product, false);
    if (e)
        *out = e->st;
    pthread_mutex_unlock(&s->stats_lock);
    return e ? MESH_OK : MESH_NOT_FOUND;
}

/* Computes product sizes; only the writer's connection runs this (under the domain lock). */
static void stats_refresh_bytes(mesh_store_t *s, const char *product)
{
    int64_t now = mesh_mono_ns();
    pthread_mutex_lock(&s->stats_lock);
    stats_entry_t *e = stats_find(s, product, true);
    /* dbstat walks every page of the product: at most every 5 minutes */
    bool stale = e && (e->bytes_at_ns == 0 || now - e->bytes_at_ns > 300 * MESH_NS_PER_SEC);
    pthread_mutex_unlock(&s->stats_lock);
    if (!stale)
        return;
    int64_t bytes = product_bytes(s, product);
    pthread_mutex_lock(&s->stats_lock);
    if ((e = stats_find(s, product, true)) != NULL) {
        e->st.bytes = bytes;
        e->bytes_at_ns = now;
    }
    pthread_mutex_unlock(&s->stats_lock);
}

/* A copy of the current path (other threads read it while a re-encryption may change it). */
static void path_copy(const mesh_store_t *s, char *out, size_t cap)
{
    pthread_mutex_t *lock = (pthread_mutex_t *)&s->path_lock; /* the lock is not the state */
    pthread_mutex_lock(lock);
    snprintf(out, cap, "%s", s->path);
    pthread_mutex_unlock(lock);
}

void mesh_store_file_sizes(const mesh_store_t *s, int64_t *db, int64_t *wal)
{
    struct stat st;
    char path[4096], p[4200];
    path_copy(s, path, sizeof path);
    *db = stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
    snprintf(p, sizeof p, "%s-wal", path);
    *wal = stat(p, &st) == 0 ? (int64_t)st.st_size : 0;
}

/* ---- transactions ---- */

mesh_status_t mesh_store_begin(mesh_store_t *s, mesh_err_t *err)
{
    mesh_status_t st = exec(s->db, "BEGIN IMMEDIATE", err);
    if (st == MESH_OK)
        s->in_txn = true;
    return st;
}

mesh_status_t mesh_store_commit(mesh_store_t *s, uint64_t seq, mesh_err_t *err)
{
    char sql[96];
    snprintf(sql, sizeof sql, "UPDATE _meta SET value = %" PRIu64 " WHERE key = 'applied_seq'",
             seq);
    mesh_status_t st = exec(s->db, sql, err);
    if (st == MESH_OK)
        st = exec(s->db, "COMMIT", err);
    if (st != MESH_OK) {
        mesh_store_rollback(s);
        return st;
    }
    s->in_txn = false;
    s->applied_seq = seq;
    if (mesh__store_commit_hook)
        mesh__store_commit_hook(mesh__store_commit_hook_arg);
    ts_after_commit(s);
    return MESH_OK;
}

void mesh_store_rollback(mesh_store_t *s)
{
    if (s->in_txn)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    s->in_txn = false;
    ts_after_rollback(s);
    stats_load(s, NULL); /* forget counters of what was rolled back */
}

mesh_status_t mesh_store_apply_savepoint_begin(mesh_store_t *s, mesh_err_t *err)
{
    s->sp_id++;
    s->gen_pending_at_sp = s->ts_gen_pending;
    for (size_t i = 0; i < s->nts; i++)
        mesh__ts_record_begin(s->ts[i]);
    return exec(s->db, "SAVEPOINT rec", err);
}

mesh_status_t mesh_store_apply_savepoint_end(mesh_store_t *s, bool keep, mesh_err_t *err)
{
    if (keep)
        return exec(s->db, "RELEASE rec", err);
    mesh_status_t st = exec(s->db, "ROLLBACK TO rec; RELEASE rec", err);
    /* take back what the record did in memory too */
    ts_swaps_undo(s, true);
    for (size_t i = 0; i < s->nts; i++)
        mesh__ts_record_undo(s->ts[i]);
    s->ts_gen_pending = s->gen_pending_at_sp;
    stats_load(s, NULL);
    return st;
}

/* ---- applying batches ---- */

static mesh_status_t build_insert(mesh_store_t *s, const mesh_product_t *p, insert_stmt_t *e,
                                  mesh_err_t *err)
{
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 20);
    mesh_status_t st;
    mesh_buf_adds(&b, p->nkey ? "INSERT OR IGNORE INTO " : "INSERT INTO ");
    add_table(&b, p->name, NULL);
    mesh_buf_addc(&b, '(');
    for (size_t i = 0; i < p->ncols; i++) {
        if (i)
            mesh_buf_addc(&b, ',');
        add_ident(&b, p->cols[i].name);
    }
    mesh_buf_adds(&b, ") VALUES (");
    for (size_t i = 0; i < p->ncols; i++)
        mesh_buf_printf(&b, "%s?%zu", i ? "," : "", i + 1);
    st = mesh_buf_addc(&b, ')');
    if (st == MESH_OK)
        st = prep(s->db, b.data, &e->ins, err);
    if (st == MESH_OK && p->nkey && p->nkey < p->ncols) {
        /* the merge of a row written again: given columns replace, absent ones are kept */
        mesh_buf_reset(&b);
        mesh_buf_adds(&b, "UPDATE ");
        add_table(&b, p->name, NULL);
        mesh_buf_adds(&b, " SET ");
        bool first = true;
        for (size_t i = 0; i < p->ncols; i++) {
            if (p->cols[i].primary_key)
                continue;
            if (!first)
                mesh_buf_addc(&b, ',');
            first = false;
            add_ident(&b, p->cols[i].name);
            mesh_buf_printf(&b, " = coalesce(?%zu, ", i + 1);
            add_ident(&b, p->cols[i].name);
            mesh_buf_addc(&b, ')');
        }
        mesh_buf_adds(&b, " WHERE ");
        for (size_t k = 0; k < p->nkey; k++) {
            if (k)
                mesh_buf_adds(&b, " AND ");
            add_ident(&b, p->cols[p->key_cols[k]].name);
            mesh_buf_printf(&b, " = ?%d", p->key_cols[k] + 1);
        }
        st = b.data ? prep(s->db, b.data, &e->upd, err) : MESH_NOMEM;
    }
    mesh_buf_free(&b);
    return st;
}

static mesh_status_t get_insert(mesh_store_t *s, const mesh_product_t *p, insert_stmt_t **out,
                                mesh_err_t *err)
{
    for (size_t i = 0; i < s->nins; i++) {
        if (s->ins[i].product == p) {
            *out = &s->ins[i];
            return MESH_OK;
        }
    }
    /* a new definition of a product replaces the statements of its old one */
    for (size_t i = 0; i < s->nins; i++) {
        if (strcmp(s->ins[i].name, p->name) == 0) {
            sqlite3_finalize(s->ins[i].ins);
            sqlite3_finalize(s->ins[i].upd);
            s->ins[i] = s->ins[--s->nins];
            break;
        }
    }
    if (s->nins == s->capins) {
        size_t ncap = s->capins ? s->capins * 2 : 8;
        insert_stmt_t *n = realloc(s->ins, ncap * sizeof *n);
        if (n == NULL)
            return mesh_err_set(err, MESH_NOMEM, "out of memory");
        s->ins = n;
        s->capins = ncap;
    }
    insert_stmt_t *e = &s->ins[s->nins];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", p->name);
    e->product = p;
    mesh_status_t st = build_insert(s, p, e, err);
    if (st != MESH_OK) {
        sqlite3_finalize(e->ins);
        sqlite3_finalize(e->upd);
        return st;
    }
    s->nins++;
    *out = e;
    return MESH_OK;
}

static void bind_value(sqlite3_stmt *q, int idx, const mesh_batch_t *b, const mesh_value_t *v)
{
    switch (v->type) {
    case MESH_V_INT:
        sqlite3_bind_int64(q, idx, v->u.i);
        break;
    case MESH_V_REAL:
        sqlite3_bind_double(q, idx, v->u.d);
        break;
    case MESH_V_TEXT:
        sqlite3_bind_text(q, idx, mesh_batch_text(b, v), (int)v->u.s.len, SQLITE_STATIC);
        break;
    default:
        sqlite3_bind_null(q, idx);
    }
}

static mesh_status_t step_done(sqlite3 *db, sqlite3_stmt *q, mesh_err_t *err, const char *what)
{
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return sql_err(db, err, what);
    return MESH_OK;
}

/* Writes the rows of one part; *inserted counts new rows (merges of a key are not new). */
static mesh_status_t apply_part(mesh_store_t *s, const mesh_batch_t *b, const mesh_part_t *part,
                                int64_t *inserted, mesh_err_t *err)
{
    insert_stmt_t *e = NULL;
    mesh_status_t st = get_insert(s, part->product, &e, err);
    if (st != MESH_OK)
        return st;
    const mesh_product_t *p = part->product;
    int64_t added = 0;
    for (size_t r = 0; r < part->nrows; r++) {
        const mesh_value_t *row = part->vals + r * part->ncols;
        for (size_t c = 0; c < part->ncols; c++)
            bind_value(e->ins, (int)c + 1, b, &row[c]);
        if ((st = step_done(s->db, e->ins, err, "insert")) != MESH_OK)
            return st;
        if (sqlite3_changes(s->db) > 0) {
            added++;
            continue;
        }
        if (e->upd == NULL)
            continue; /* every column is in the key: the row is already there */
        for (size_t c = 0; c < part->ncols; c++)
            bind_value(e->upd, (int)c + 1, b, &row[c]);
        if ((st = step_done(s->db, e->upd, err, "update")) != MESH_OK)
            return st;
        if (sqlite3_changes(s->db) == 0)
            return mesh_err_set(err, MESH_CONFLICT,
                                "row %zu of %s conflicts with an existing row on a unique column",
                                r + 1, p->name);
    }
    *inserted = added;
    return MESH_OK;
}

static mesh_status_t apply_quarantine(mesh_store_t *s, uint64_t seq, const mesh_batch_t *b,
                                      const mesh_part_t *part, mesh_err_t *err)
{
    sqlite3_stmt *q = s->q_quar_put;
    for (size_t i = 0; i < part->nquar; i++) {
        const mesh_quarantined_t *qr = &part->quar[i];
        sqlite3_bind_text(q, 1, part->product->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)seq);
        sqlite3_bind_int64(q, 3, qr->row);
        sqlite3_bind_text(q, 4, b->arena.data + qr->reason_off, (int)qr->reason_len, SQLITE_STATIC);
        sqlite3_bind_text(q, 5, b->arena.data + qr->raw_off, (int)qr->raw_len, SQLITE_STATIC);
        sqlite3_bind_int64(q, 6, b->received_ns);
        mesh_status_t st = step_done(s->db, q, err, "quarantine");
        if (st != MESH_OK)
            return st;
    }
    return MESH_OK;
}

static int64_t part_last_time(const mesh_part_t *part, int64_t fallback)
{
    int tc = part->product->time_col;
    if (tc < 0)
        return fallback;
    int64_t mx = 0;
    for (size_t r = 0; r < part->nrows; r++) {
        const mesh_value_t *v = &part->vals[r * part->ncols + (size_t)tc];
        if (v->type == MESH_V_INT && v->u.i > mx)
            mx = v->u.i;
    }
    return mx ? mx : fallback;
}

/* Notes a part's counts in the in-memory stats that planners and the catalog read. */
static void stats_note(mesh_store_t *s, const mesh_part_t *part, int64_t added, int64_t recv_ns)
{
    pthread_mutex_lock(&s->stats_lock);
    stats_entry_t *e = stats_find(s, part->product->name, true);
    if (e) {
        e->st.rows += added;
        e->st.quarantined += (int64_t)part->nquar;
        int64_t lt = part->nrows ? part_last_time(part, recv_ns) : 0;
        if (lt > e->st.last_write_ns)
            e->st.last_write_ns = lt;
    }
    pthread_mutex_unlock(&s->stats_lock);
}

mesh_status_t mesh_store_quarantine_drop(mesh_store_t *s, const char *product, const int64_t *ids,
                                         size_t n, bool all, int64_t *dropped, mesh_err_t *err)
{
    *dropped = 0;
    sqlite3_stmt *q;
    mesh_status_t st = prep(s->db,
                            all ? "DELETE FROM _quarantine WHERE product = ?1"
                                : "DELETE FROM _quarantine WHERE product = ?1 AND id = ?2",
                            &q, err);
    if (st != MESH_OK)
        return st;
    for (size_t i = 0; st == MESH_OK && i < (all ? 1 : n); i++) {
        sqlite3_bind_text(q, 1, product, -1, SQLITE_STATIC);
        if (!all)
            sqlite3_bind_int64(q, 2, ids[i]);
        st = step_done(s->db, q, err, "quarantine drop");
        if (st == MESH_OK)
            *dropped += sqlite3_changes(s->db);
    }
    sqlite3_finalize(q);
    if (st != MESH_OK || *dropped == 0)
        return st;
    q = s->q_stats_put;
    sqlite3_bind_text(q, 1, product, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, 0);
    sqlite3_bind_int64(q, 3, -*dropped);
    sqlite3_bind_int64(q, 4, 0);
    if ((st = step_done(s->db, q, err, "stats")) != MESH_OK)
        return st;
    pthread_mutex_lock(&s->stats_lock);
    stats_entry_t *e = stats_find(s, product, false);
    if (e)
        e->st.quarantined -= *dropped;
    pthread_mutex_unlock(&s->stats_lock);
    return MESH_OK;
}

mesh_status_t mesh_store_idem_lookup(mesh_store_t *s, const char *key, mesh_apply_result_t *res)
{
    sqlite3_stmt *q = s->q_idem_get;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    mesh_status_t st = MESH_NOT_FOUND;
    if (sqlite3_step(q) == SQLITE_ROW) {
        res->seq = (uint64_t)sqlite3_column_int64(q, 0);
        res->rows = (size_t)sqlite3_column_int64(q, 1);
        res->quarantined = (size_t)sqlite3_column_int64(q, 2);
        res->duplicate = true;
        st = MESH_OK;
    }
    sqlite3_reset(q);
    return st;
}

mesh_status_t mesh_store_apply_batch(mesh_store_t *s, uint64_t seq, const mesh_batch_t *b,
                                     const char *idem_key, mesh_apply_result_t *res,
                                     mesh_err_t *err)
{
    memset(res, 0, sizeof *res);
    res->seq = seq;
    if (idem_key && *idem_key && mesh_store_idem_lookup(s, idem_key, res) == MESH_OK)
        return MESH_OK;
    mesh_status_t st = exec(s->db, "SAVEPOINT batch", err);
    if (st != MESH_OK)
        return st;
    int64_t total_rows = 0, total_quar = 0;
    for (size_t i = 0; i < b->nparts && st == MESH_OK; i++) {
        const mesh_part_t *part = &b->parts[i];
        int64_t added = 0;
        mesh_ts_t *t = part->nrows ? ts_find(s, part->product->name) : NULL;
        if (t)
            st = mesh__ts_apply(t, s->db, seq, b, part, false, s->applied_seq, &added, err);
        else if (part->nrows)
            st = apply_part(s, b, part, &added, err);
        if (st == MESH_OK && part->nquar)
            st = apply_quarantine(s, seq, b, part, err);
        if (st == MESH_OK && (part->nrows || part->nquar)) {
            stats_note(s, part, added, b->received_ns);
            sqlite3_stmt *q = s->q_stats_put;
            sqlite3_bind_text(q, 1, part->product->name, -1, SQLITE_STATIC);
            sqlite3_bind_int64(q, 2, added);
            sqlite3_bind_int64(q, 3, (sqlite3_int64)part->nquar);
            sqlite3_bind_int64(q, 4, part->nrows ? part_last_time(part, b->received_ns) : 0);
            st = step_done(s->db, q, err, "stats");
        }
        total_rows += (int64_t)part->nrows;
        total_quar += (int64_t)part->nquar;
    }
    if (st == MESH_OK && idem_key && *idem_key) {
        sqlite3_stmt *q = s->q_idem_put;
        sqlite3_bind_text(q, 1, idem_key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)seq);
        sqlite3_bind_int64(q, 3, total_rows);
        sqlite3_bind_int64(q, 4, total_quar);
        sqlite3_bind_int64(q, 5, mesh_now_ns());
        st = step_done(s->db, q, err, "idempotency");
    }
    if (st != MESH_OK) {
        sqlite3_exec(s->db, "ROLLBACK TO batch; RELEASE batch", NULL, NULL, NULL);
        stats_load(s, NULL); /* undo the counters noted for this batch */
        return st;
    }
    if ((st = exec(s->db, "RELEASE batch", err)) != MESH_OK)
        return st;
    res->rows = (size_t)total_rows;
    res->quarantined = (size_t)total_quar;
    return MESH_OK;
}

mesh_status_t mesh_store_idem_expire(mesh_store_t *s, int64_t before_ns, mesh_err_t *err)
{
    char sql[96];
    snprintf(sql, sizeof sql, "DELETE FROM _idem WHERE at_ns < %lld", (long long)before_ns);
    return exec(s->db, sql, err);
}

/* ---- contracts and product tables ---- */

mesh_status_t mesh_store_load_contracts(mesh_store_t *s, mesh_store_contract_fn fn, void *arg,
                                        mesh_err_t *err)
{
    sqlite3_stmt *q;
    mesh_status_t st = prep(s->db,
                            "SELECT yaml FROM _contracts c WHERE seq = (SELECT max(seq) FROM"
                            " _contracts d WHERE d.id = c.id) ORDER BY seq",
                            &q, err);
    if (st != MESH_OK)
        return st;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW && st == MESH_OK)
        st = fn(arg, (const char *)sqlite3_column_text(q, 0), (size_t)sqlite3_column_bytes(q, 0));
    if (st == MESH_OK && rc != SQLITE_DONE)
        st = sql_err(s->db, err, "load contracts");
    sqlite3_finalize(q);
    return st;
}

mesh_status_t mesh_store_put_contract(mesh_store_t *s, const mesh_contract_t *c, uint64_t seq,
                                      mesh_err_t *err)
{
    sqlite3_stmt *q;
    mesh_status_t st = prep(s->db,
                            "INSERT OR REPLACE INTO _contracts(id, version, seq, yaml, applied_ns)"
                            " VALUES (?,?,?,?,?)",
                            &q, err);
    if (st != MESH_OK)
        return st;
    sqlite3_bind_text(q, 1, c->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, c->version, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, (sqlite3_int64)seq);
    sqlite3_bind_text(q, 4, c->yaml, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 5, mesh_now_ns());
    st = step_done(s->db, q, err, "store contract");
    sqlite3_finalize(q);
    return st;
}

static mesh_status_t create_table_sql(const mesh_product_t *p, const char *suffix, mesh_buf_t *b)
{
    mesh_buf_adds(b, "CREATE TABLE ");
    add_table(b, p->name, suffix);
    mesh_buf_addc(b, '(');
    for (size_t i = 0; i < p->ncols; i++) {
        const mesh_column_t *c = &p->cols[i];
        if (i)
            mesh_buf_addc(b, ',');
        add_ident(b, c->name);
        mesh_buf_printf(b, " %s%s", storage_type(c->type),
                        (c->required || c->primary_key) ? " NOT NULL" : "");
    }
    if (p->nkey) {
        mesh_buf_adds(b, ", PRIMARY KEY(");
        for (size_t k = 0; k < p->nkey; k++) {
            if (k)
                mesh_buf_addc(b, ',');
            add_ident(b, p->cols[p->key_cols[k]].name);
        }
        mesh_buf_addc(b, ')');
    }
    return mesh_buf_adds(b, p->nkey ? ") STRICT, WITHOUT ROWID;" : ") STRICT;");
}

/* Indexes: the time column (unless it leads the key) and each unique column. */
static mesh_status_t create_indexes_sql(const mesh_product_t *p, mesh_buf_t *b)
{
    mesh_status_t st = MESH_OK;
    if (p->time_col >= 0 && !(p->nkey && p->key_cols[0] == p->time_col)) {
        char idx[160];
        snprintf(idx, sizeof idx, "p_%s__time", p->name);
        mesh_buf_adds(b, "CREATE INDEX IF NOT EXISTS ");
        add_ident(b, idx);
        mesh_buf_adds(b, " ON ");
        add_table(b, p->name, NULL);
        mesh_buf_addc(b, '(');
        add_ident(b, p->cols[p->time_col].name);
        st = mesh_buf_adds(b, ");");
    }
    for (size_t i = 0; i < p->ncols && st == MESH_OK; i++) {
        if (!p->cols[i].unique || (p->nkey == 1 && p->key_cols[0] == (int)i))
            continue;
        char idx[200];
        snprintf(idx, sizeof idx, "p_%s__u_%s", p->name, p->cols[i].name);
        mesh_buf_adds(b, "CREATE UNIQUE INDEX IF NOT EXISTS ");
        add_ident(b, idx);
        mesh_buf_adds(b, " ON ");
        add_table(b, p->name, NULL);
        mesh_buf_addc(b, '(');
        add_ident(b, p->cols[i].name);
        st = mesh_buf_adds(b, ");");
    }
    return st;
}

static bool table_exists(mesh_store_t *s, const char *product)
{
    sqlite3_stmt *q;
    char name[160];
    snprintf(name, sizeof name, "p_%s", product);
    if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM sqlite_schema WHERE type='table' AND name=?", -1,
                           &q, NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_TRANSIENT);
    bool found = sqlite3_step(q) == SQLITE_ROW;
    sqlite3_finalize(q);
    return found;
}

/* True when the change from old to next cannot be done by adding columns in place. */
static bool needs_rebuild(const mesh_product_t *old, const mesh_product_t *next)
{
    if (old->nkey != next->nkey)
        return true;
    for (size_t k = 0; k < old->nkey; k++)
        if (strcmp(old->cols[old->key_cols[k]].name, next->cols[next->key_cols[k]].name) != 0)
            return true;
    for (size_t i = 0; i < old->ncols; i++) {
        const mesh_column_t *oc = &old->cols[i];
        int j = mesh_product_col(next, oc->name, strlen(oc->name));
        if (j < 0)
            return true; /* dropped */
        const mesh_column_t *nc = &next->cols[j];
        if (strcmp(storage_type(oc->type), storage_type(nc->type)) != 0 || oc->type != nc->type)
            return true;
        /* NOT NULL is part of the table: made required, rows are checked; made optional,
         * the constraint must go */
        if ((nc->required || nc->primary_key) != (oc->required || oc->primary_key))
            return true;
        if (nc->unique && !oc->unique)
            return true;
    }
    for (size_t j = 0; j < next->ncols; j++) {
        const mesh_column_t *nc = &next->cols[j];
        if (mesh_product_col(old, nc->name, strlen(nc->name)) < 0 &&
            (nc->required || nc->primary_key))
            return true; /* a new required column must be checked against existing rows */
    }
    return false;
}

/* ---- rebuilding a product under a new definition ---- */

typedef struct rebuild_ctx {
    mesh_store_t *s;
    const mesh_product_t *old, *next;
    int map[MESH_CONTRACT_MAX_COLUMNS]; /* next column -> old column, -1 */
    mesh_ts_t *ts;                      /* the new layout when it is a time series */
    sqlite3_stmt *ins;                  /* the new row table otherwise */
    mesh_batch_t batch;
    bool have_batch;
    uint32_t rowno;
    int64_t written;
    mesh_err_t *err;
} rebuild_ctx_t;

static mesh_status_t rebuild_write(rebuild_ctx_t *c)
{
    mesh_batch_t *b = &c->batch;
    mesh_status_t st = MESH_OK;
    if (b->error_rows > 0) {
        const mesh_row_error_t *e = &b->errors[0];
        st = mesh_err_set(c->err, MESH_BREAKING,
                          "%zu existing row(s) of %s do not fit the new contract; first: row %u, "
                          "column %s: %s",
                          b->error_rows, c->next->name, e->row, e->column, e->reason);
    }
    for (size_t pi = 0; st == MESH_OK && pi < b->nparts; pi++) {
        const mesh_part_t *part = &b->parts[pi];
        if (c->ts) {
            int64_t added;
            st = mesh__ts_apply(c->ts, c->s->db, c->s->applied_seq, b, part, false,
                                c->s->applied_seq, &added, c->err);
        } else {
            for (size_t r = 0; r < part->nrows && st == MESH_OK; r++) {
                for (size_t k = 0; k < part->ncols; k++)
                    bind_value(c->ins, (int)k + 1, b, &part->vals[r * part->ncols + k]);
                st = step_done(c->s->db, c->ins, c->err, "copy row");
            }
        }
        c->written += (int64_t)part->nrows;
    }
    mesh_batch_free(b);
    c->have_batch = false;
    return st;
}

/* One old row: validated against the new definition into the current batch. */
static mesh_status_t rebuild_row(void *arg, const mesh_datum_t *vals)
{
    rebuild_ctx_t *c = arg;
    if (!c->have_batch) {
        mesh_batch_limits_t lim = MESH_BATCH_DEFAULT_LIMITS;
        lim.max_errors = 5;
        mesh_batch_init(&c->batch, c->next->domain, lim);
        c->batch.precision = MESH_PREC_NS;
        c->have_batch = true;
    }
    mesh_batch_t *b = &c->batch;
    mesh_batch_row_begin(b, c->next, ++c->rowno);
    for (size_t i = 0; i < c->next->ncols; i++) {
        if (c->map[i] < 0)
            continue;
        const mesh_datum_t *d = &vals[c->map[i]];
        /* a number going into a text column (integer -> string) goes as its text */
        bool as_text = strcmp(storage_type(c->next->cols[i].type), "TEXT") == 0;
        char tmp[64];
        if (d->type == MESH_V_NULL)
            continue;
        if (d->type == MESH_V_INT && !as_text) {
            mesh_batch_set_int(b, (int)i, d->i);
        } else if (d->type == MESH_V_REAL && !as_text) {
            mesh_batch_set_real(b, (int)i, d->d);
        } else if (d->type == MESH_V_TEXT) {
            mesh_batch_set_text(b, (int)i, d->s, d->n);
        } else {
            if (d->type == MESH_V_INT)
                snprintf(tmp, sizeof tmp, "%lld", (long long)d->i);
            else
                snprintf(tmp, sizeof tmp, "%.17g", d->d);
            mesh_batch_set_text(b, (int)i, tmp, strlen(tmp));
        }
    }
    mesh_batch_row_end(b, "", 0);
    if (b->total_rows >= 10000)
        return rebuild_write(c);
    return MESH_OK;
}

/* Drops the indexes a row table has (their names would clash with the new table's). */
static mesh_status_t drop_indexes(mesh_store_t *s, const char *table, mesh_err_t *err)
{
    sqlite3_stmt *q;
    mesh_status_t st = prep(s->db,
                            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = ?"
                            " AND sql IS NOT NULL",
                            &q, err);
    if (st != MESH_OK)
        return st;
    sqlite3_bind_text(q, 1, table, -1, SQLITE_STATIC);
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 16);
    while (sqlite3_step(q) == SQLITE_ROW) {
        mesh_buf_adds(&b, "DROP INDEX ");
        add_ident(&b, (const char *)sqlite3_column_text(q, 0));
        mesh_buf_addc(&b, ';');
    }
    sqlite3_finalize(q);
    st = b.len ? exec(s->db, b.data, err) : MESH_OK;
    mesh_buf_free(&b);
    return st;
}

/*
 * Moves a product's rows under a new definition, whatever the layouts (row table or time
 * series, before and after): the old storage is renamed aside, the new one created, every old
 * row goes through the new contract's validator, and the old storage is dropped. A row that
 * does not fit fails the whole change (the caller's savepoint undoes it). A time series must
 * have been flushed first.
 */
static mesh_status_t rebuild_any(mesh_store_t *s, const mesh_product_t *old,
                                 const mesh_product_t *next, mesh_err_t *err)
{
    bool old_ts = ts_find(s, old->name) != NULL;
    bool new_ts = mesh__ts_eligible(next);
    char name[MESH_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", old->name);
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 20);
    mesh_status_t st = MESH_OK;
    /* 1. the old storage aside */
    if (old_ts) {
        mesh_buf_printf(&b,
                        "DROP INDEX IF EXISTS \"k_%s__tmax\"; DROP INDEX IF EXISTS \"k_%s__st\";"
                        " ALTER TABLE \"s_%s\" RENAME TO \"s_%s__old\"; ALTER TABLE \"k_%s\""
                        " RENAME TO \"k_%s__old\";",
                        name, name, name, name, name, name);
    } else {
        char table[MESH_NAME_MAX + 3];
        snprintf(table, sizeof table, "p_%s", name);
        st = drop_indexes(s, table, err);
        mesh_buf_printf(&b, "ALTER TABLE \"p_%s\" RENAME TO \"p_%s__old\";", name, name);
    }
    if (st == MESH_OK)
        st = exec(s->db, b.data, err);
    mesh_buf_reset(&b);
    /* 2. the new storage */
    rebuild_ctx_t c;
    memset(&c, 0, sizeof c);
    c.s = s;
    c.old = old;
    c.next = next;
    c.err = err;
    for (size_t i = 0; i < next->ncols; i++)
        c.map[i] = mesh_product_col(old, next->cols[i].name, strlen(next->cols[i].name));
    if (st == MESH_OK && new_ts) {
        st = mesh__ts_create(s->db, next, err);
        if (st == MESH_OK)
            st = mesh__ts_open(s->db, next, &c.ts, err);
    } else if (st == MESH_OK) {
        create_table_sql(next, NULL, &b);
        create_indexes_sql(next, &b);
        st = exec(s->db, b.data, err);
        mesh_buf_reset(&b);
        if (st == MESH_OK) {
            mesh_buf_adds(&b, "INSERT INTO ");
            add_table(&b, next->name, NULL);
            mesh_buf_adds(&b, " VALUES (");
            for (size_t i = 0; i < next->ncols; i++)
                mesh_buf_printf(&b, "%s?", i ? "," : "");
            mesh_buf_addc(&b, ')');
            st = prep(s->db, b.data, &c.ins, err);
            mesh_buf_reset(&b);
        }
    }
    /* 3. every old row through the new contract */
    if (st == MESH_OK && old_ts) {
        st = mesh__ts_dump(s->db, old, "__old", rebuild_row, &c, err);
    } else if (st == MESH_OK) {
        mesh_buf_adds(&b, "SELECT ");
        for (size_t i = 0; i < old->ncols; i++) {
            if (i)
                mesh_buf_addc(&b, ',');
            add_ident(&b, old->cols[i].name);
        }
        mesh_buf_printf(&b, " FROM \"p_%s__old\"", name);
        sqlite3_stmt *q = NULL;
        st = prep(s->db, b.data, &q, err);
        mesh_buf_reset(&b);
        mesh_datum_t vals[MESH_CONTRACT_MAX_COLUMNS];
        int rc = SQLITE_DONE;
        while (st == MESH_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
            for (size_t i = 0; i < old->ncols; i++) {
                memset(&vals[i], 0, sizeof vals[i]);
                switch (sqlite3_column_type(q, (int)i)) {
                case SQLITE_INTEGER:
                    vals[i].type = MESH_V_INT;
                    vals[i].i = sqlite3_column_int64(q, (int)i);
                    break;
                case SQLITE_FLOAT:
                    vals[i].type = MESH_V_REAL;
                    vals[i].d = sqlite3_column_double(q, (int)i);
                    break;
                case SQLITE_NULL:
                    vals[i].type = MESH_V_NULL;
                    break;
                default:
                    vals[i].type = MESH_V_TEXT;
                    vals[i].s = (const char *)sqlite3_column_text(q, (int)i);
                    vals[i].n = (size_t)sqlite3_column_bytes(q, (int)i);
                }
            }
            st = rebuild_row(&c, vals);
        }
        if (st == MESH_OK && rc != SQLITE_DONE)
            st = sql_err(s->db, err, "read rows");
        sqlite3_finalize(q);
    }
    if (st == MESH_OK && c.have_batch)
        st = rebuild_write(&c);
    else if (c.have_batch)
        mesh_batch_free(&c.batch);
    if (st == MESH_OK && c.ts) {
        bool did = false;
        uint64_t gen = (s->ts_gen_pending ? s->ts_gen_pending : s->ts_gen) + 1;
        st = mesh__ts_flush(c.ts, s->db, MESH_TS_FLUSH_ALL, 0, gen, s->applied_seq, &did, err);
        if (st == MESH_OK && did) {
            char sql[128];
            snprintf(sql, sizeof sql,
                     "INSERT OR REPLACE INTO _meta(key, value) VALUES ('ts_gen', %" PRIu64 ")",
                     gen);
            if ((st = exec(s->db, sql, err)) == MESH_OK)
                s->ts_gen_pending = gen;
        }
    }
    if (c.ts)
        mesh__ts_unref(c.ts); /* the caller attaches a fresh state read from the tables */
    sqlite3_finalize(c.ins);
    /* 4. the old storage goes; the row count is what was written */
    if (st == MESH_OK) {
        if (old_ts)
            mesh_buf_printf(&b, "DROP TABLE \"s_%s__old\"; DROP TABLE \"k_%s__old\";", name, name);
        else
            mesh_buf_printf(&b, "DROP TABLE \"p_%s__old\";", name);
        if (old_ts && !new_ts)
            mesh_buf_printf(&b, "DELETE FROM _meta WHERE key = 'ts_clean:%s';", name);
        mesh_buf_printf(&b, "UPDATE _products SET rows = %lld WHERE name = '%s';",
                        (long long)c.written, name);
        st = exec(s->db, b.data, err);
    }
    mesh_buf_free(&b);
    if (st == MESH_CONFLICT) /* a unique index the existing rows break */
        st = mesh_err_set(err, MESH_BREAKING, "existing rows of %s do not fit the new contract: %s",
                          next->name, mesh_crypt_errmsg(s->db));
    return st;
}

/* The stats row of a new product. */
static mesh_status_t stats_row(mesh_store_t *s, const char *name, mesh_err_t *err)
{
    sqlite3_stmt *q = s->q_stats_put;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, 0);
    sqlite3_bind_int64(q, 3, 0);
    sqlite3_bind_int64(q, 4, 0);
    return step_done(s->db, q, err, "stats");
}

/*
 * Creates or changes a time-series product. Buffered rows are written out first (their
 * layout follows the old definition); then the product gets a fresh in-memory state under
 * the new one. A change of layout (the key or the time column, or between the row and the
 * time-series layouts) rebuilds the rows through the new contract's validator.
 */
static mesh_status_t put_ts_product(mesh_store_t *s, const mesh_product_t *old,
                                    const mesh_product_t *next, mesh_err_t *err)
{
    mesh_status_t st = MESH_OK;
    mesh_ts_t *cur = old ? ts_find(s, old->name) : NULL;
    bool next_ts = mesh__ts_eligible(next);
    if (cur) {
        bool did = false;
        uint64_t gen = (s->ts_gen_pending ? s->ts_gen_pending : s->ts_gen) + 1;
        st = mesh__ts_flush(cur, s->db, MESH_TS_FLUSH_ALL, 0, gen, s->applied_seq, &did, err);
        if (st == MESH_OK && did) {
            char sql[128];
            snprintf(sql, sizeof sql,
                     "INSERT OR REPLACE INTO _meta(key, value) VALUES ('ts_gen', %" PRIu64 ")",
                     gen);
            if ((st = exec(s->db, sql, err)) == MESH_OK)
                s->ts_gen_pending = gen;
        }
        if (st != MESH_OK)
            return st;
    }
    if (old == NULL || (!cur && !table_exists(s, old->name))) {
        if ((st = mesh__ts_create(s->db, next, err)) == MESH_OK)
            st = stats_row(s, next->name, err);
        if (st == MESH_OK) {
            /* nothing of it is in memory yet: replay never needs to go further back */
            char sql[256];
            snprintf(sql, sizeof sql,
                     "INSERT OR REPLACE INTO _meta(key, value) VALUES ('ts_clean:%s', %" PRIu64 ")",
                     next->name, s->applied_seq);
            st = exec(s->db, sql, err);
        }
    } else if (!cur || !next_ts || needs_rebuild(old, next)) {
        st = rebuild_any(s, old, next, err);
    }
    /* otherwise additive: chunks describe their own columns; new ones read as NULL */
    if (st == MESH_OK)
        st = mesh_store_attach(s, next, err);
    return st;
}

mesh_status_t mesh_store_put_product(mesh_store_t *s, const mesh_product_t *old,
                                     const mesh_product_t *next, mesh_err_t *err)
{
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 20);
    /* all or nothing, in the writer's transaction or not: a refused change (rows that do not
     * fit) leaves no half-built table behind */
    mesh_status_t st = exec(s->db, "SAVEPOINT put_product", err);
    if (st != MESH_OK)
        return st;
    if (mesh__ts_eligible(next) || (old && ts_find(s, old->name))) {
        st = put_ts_product(s, old, next, err);
    } else if (old == NULL || !table_exists(s, next->name)) {
        create_table_sql(next, NULL, &b);
        create_indexes_sql(next, &b);
        st = b.data ? exec(s->db, b.data, err) : MESH_NOMEM;
        if (st == MESH_OK) {
            sqlite3_stmt *q = s->q_stats_put;
            sqlite3_bind_text(q, 1, next->name, -1, SQLITE_STATIC);
            sqlite3_bind_int64(q, 2, 0);
            sqlite3_bind_int64(q, 3, 0);
            sqlite3_bind_int64(q, 4, 0);
            st = step_done(s->db, q, err, "stats");
        }
    } else if (needs_rebuild(old, next)) {
        st = rebuild_any(s, old, next, err);
    } else {
        for (size_t j = 0; j < next->ncols; j++) {
            const mesh_column_t *nc = &next->cols[j];
            if (mesh_product_col(old, nc->name, strlen(nc->name)) >= 0)
                continue;
            mesh_buf_adds(&b, "ALTER TABLE ");
            add_table(&b, next->name, NULL);
            mesh_buf_adds(&b, " ADD COLUMN ");
            add_ident(&b, nc->name);
            mesh_buf_printf(&b, " %s;", storage_type(nc->type));
        }
        /* unique flags dropped: drop their indexes; the time index may be new */
        for (size_t i = 0; i < old->ncols; i++) {
            const mesh_column_t *oc = &old->cols[i];
            int j = mesh_product_col(next, oc->name, strlen(oc->name));
            if (oc->unique && j >= 0 && !next->cols[j].unique) {
                char idx[200];
                snprintf(idx, sizeof idx, "p_%s__u_%s", old->name, oc->name);
                mesh_buf_adds(&b, "DROP INDEX IF EXISTS ");
                add_ident(&b, idx);
                mesh_buf_addc(&b, ';');
            }
        }
        create_indexes_sql(next, &b);
        if (b.len)
            st = exec(s->db, b.data, err);
    }
    mesh_buf_free(&b);
    if (st == MESH_OK)
        st = exec(s->db, "RELEASE put_product", err);
    else
        sqlite3_exec(s->db, "ROLLBACK TO put_product; RELEASE put_product", NULL, NULL, NULL);
    /* statements prepared for the old definition are rebuilt on next use */
    drop_insert_cache(s);
    return st;
}

mesh_status_t mesh_store_drop_product(mesh_store_t *s, const char *name, mesh_err_t *err)
{
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 16);
    mesh_buf_adds(&b, "DROP TABLE IF EXISTS ");
    add_table(&b, name, NULL);
    mesh_buf_addc(&b, ';');
    mesh_status_t st = b.data ? exec(s->db, b.data, err) : MESH_NOMEM;
    mesh_buf_free(&b);
    if (st == MESH_OK)
        st = mesh__ts_drop(s->db, name, err);
    if (st == MESH_OK && ts_find(s, name))
        st = ts_set(s, name, NULL);
    if (st != MESH_OK)
        return st;
    sqlite3_stmt *q;
    const char *sqls[] = {"DELETE FROM _quarantine WHERE product = ?",
                          "DELETE FROM _products WHERE name = ?"};
    for (size_t i = 0; i < 2 && st == MESH_OK; i++) {
        if ((st = prep(s->db, sqls[i], &q, err)) != MESH_OK)
            break;
        sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
        st = step_done(s->db, q, err, "drop product");
        sqlite3_finalize(q);
    }
    drop_insert_cache(s);
    pthread_mutex_lock(&s->stats_lock);
    stats_entry_t *e = stats_find(s, name, false);
    if (e)
        *e = s->stats[--s->nstats];
    pthread_mutex_unlock(&s->stats_lock);
    return st;
}

mesh_status_t mesh_store_drop_contract(mesh_store_t *s, const char *id, mesh_err_t *err)
{
    sqlite3_stmt *q;
    mesh_status_t st = prep(s->db, "DELETE FROM _contracts WHERE id = ?", &q, err);
    if (st != MESH_OK)
        return st;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    st = step_done(s->db, q, err, "drop contract");
    sqlite3_finalize(q);
    return st;
}

mesh_status_t mesh_store_checkpoint(mesh_store_t *s, int flush_mode, int64_t max_age_ns,
                                    mesh_err_t *err)
{
    /* buffered time series out (aged or all), and the clean positions, in one transaction */
    if (s->nts > 0) {
        mesh_status_t st = mesh_store_begin(s, err);
        if (st == MESH_OK)
            st = mesh_store_flush(s, flush_mode, max_age_ns, err);
        if (st == MESH_OK)
            st = ts_write_clean(s, err);
        if (st == MESH_OK)
            st = unapplied_prune(s, err);
        if (st == MESH_OK)
            st = mesh_store_commit(s, s->applied_seq, err);
        else
            mesh_store_rollback(s);
        if (st != MESH_OK)
            return st;
    }
    /* product sizes are refreshed here, off the write path */
    pthread_mutex_lock(&s->stats_lock);
    size_t n = s->nstats;
    char(*names)[64] = malloc(n ? n * 64 : 1);
    for (size_t i = 0; names && i < n; i++)
        memcpy(names[i], s->stats[i].name, 64);
    pthread_mutex_unlock(&s->stats_lock);
    for (size_t i = 0; names && i < n; i++)
        stats_refresh_bytes(s, names[i]);
    free(names);
    /* Readers on older snapshots make a TRUNCATE checkpoint wait in the busy handler; this
     * runs on the domain writer, so it must not wait: without a busy handler it copies what
     * it can and says BUSY. */
    int nlog = -1, nckpt = -1;
    sqlite3_busy_timeout(s->db, 0);
    int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &nlog, &nckpt);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        return sql_err(s->db, err, "checkpoint");
    /* Frames left in the WAL may not be synced (synchronous=NORMAL): the caller must not
     * trim the domain log as if they were durable. */
    if (rc == SQLITE_BUSY && nckpt < nlog)
        return mesh_err_set(err, MESH_BUSY,
                            "checkpoint: %d of %d WAL frames wait for readers to finish",
                            nlog - nckpt, nlog);
    return MESH_OK;
}

mesh_status_t mesh_store_integrity(mesh_store_t *s, mesh_err_t *err)
{
    sqlite3_stmt *q;
    mesh_status_t st = prep(s->db, "PRAGMA integrity_check", &q, err);
    if (st != MESH_OK)
        return st;
    if (sqlite3_step(q) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(q, 0);
        if (r == NULL || strcmp(r, "ok") != 0)
            st = mesh_err_set(err, MESH_CORRUPT, "integrity check: %s", r ? r : "?");
    } else {
        st = sql_err(s->db, err, "integrity check");
    }
    sqlite3_finalize(q);
    return st;
}

/* ---- re-encryption: copying into a new file, then moving to it ---- */

struct mesh_store_copy {
    mesh_store_t *s;
    sqlite3 *dest;
    sqlite3_backup *bk;
    bool done;
};

mesh_status_t mesh_store_copy_begin(mesh_store_t *s, const char *dest, mesh_store_copy_t **out,
                                    mesh_err_t *err)
{
    mesh_store_copy_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    c->s = s;
    mesh_status_t st = mesh_crypt_sqlite_open(
        dest, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, &c->dest, err);
    if (st != MESH_OK) {
        free(c);
        return st;
    }
    /* the same page size (a WAL destination requires it), synced commits */
    char sql[160];
    int64_t psz = 4096;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "PRAGMA page_size", -1, &q, NULL) == SQLITE_OK) {
        if (sqlite3_step(q) == SQLITE_ROW)
            psz = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    snprintf(sql, sizeof sql,
             "PRAGMA page_size=%lld; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
             (long long)psz);
    if ((st = exec(c->dest, sql, err)) != MESH_OK) {
        mesh_store_copy_abort(c);
        return st;
    }
    c->bk = sqlite3_backup_init(c->dest, "main", s->db, "main");
    if (c->bk == NULL) {
        st = mesh_err_set(err, MESH_IO, "backup: %s", mesh_crypt_errmsg(c->dest));
        mesh_store_copy_abort(c);
        return st;
    }
    *out = c;
    return MESH_OK;
}

mesh_status_t mesh_store_copy_step(mesh_store_copy_t *c, int npages, bool *done, int64_t *remaining,
                                   int64_t *total, mesh_err_t *err)
{
    *done = c->done;
    if (c->done)
        return MESH_OK;
    if (c->s->in_txn)
        return mesh_err_set(err, MESH_INTERNAL, "copy step inside a write transaction");
    mesh_crypt_failure_clear();
    int rc = sqlite3_backup_step(c->bk, npages);
    *remaining = sqlite3_backup_remaining(c->bk);
    *total = sqlite3_backup_pagecount(c->bk);
    if (rc == SQLITE_DONE) {
        c->done = *done = true;
        return MESH_OK;
    }
    if (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        return MESH_OK;
    return mesh_err_set(err, mesh_crypt_failure() ? MESH_CORRUPT : MESH_IO, "backup: %s",
                        mesh_crypt_failure() ? mesh_crypt_failure() : sqlite3_errstr(rc));
}

mesh_status_t mesh_store_copy_finish(mesh_store_copy_t *c, mesh_err_t *err)
{
    mesh_status_t st = MESH_OK;
    if (!c->done)
        st = mesh_err_set(err, MESH_INTERNAL, "copy finished before it was complete");
    int rc = sqlite3_backup_finish(c->bk);
    c->bk = NULL;
    if (st == MESH_OK && rc != SQLITE_OK)
        st = mesh_err_set(err, MESH_IO, "backup: %s", mesh_crypt_errmsg(c->dest));
    if (st == MESH_OK)
        st = exec(c->dest, "PRAGMA wal_checkpoint(TRUNCATE)", err);
    if (sqlite3_close(c->dest) != SQLITE_OK && st == MESH_OK)
        st = mesh_err_set(err, MESH_IO, "close of the copy failed");
    free(c);
    return st;
}

void mesh_store_copy_abort(mesh_store_copy_t *c)
{
    if (c == NULL)
        return;
    if (c->bk)
        sqlite3_backup_finish(c->bk);
    sqlite3_close(c->dest);
    free(c);
}

/* ---- snapshot copies (backups) ---- */

struct mesh_dbcopy {
    sqlite3 *src, *dest;
    sqlite3_backup *bk;
    bool done;
};

mesh_status_t mesh_dbcopy_open(const char *src, const char *dest, mesh_dbcopy_t **out,
                               mesh_err_t *err)
{
    *out = NULL;
    mesh_dbcopy_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    mesh_status_t st =
        mesh_crypt_sqlite_open(src, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, &c->src, err);
    if (st != MESH_OK)
        goto fail;
    sqlite3_busy_timeout(c->src, BUSY_TIMEOUT_MS);
    /* the read transaction starts with the first read: from here on the copy sees this
     * snapshot, and the backup API uses this transaction instead of one per step */
    if ((st = exec(c->src, "BEGIN; SELECT count(*) FROM sqlite_schema;", err)) != MESH_OK)
        goto fail;
    if ((st = mesh_crypt_sqlite_open(
             dest, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, &c->dest,
             err)) != MESH_OK)
        goto fail;
    /* a staging file: the source's page size, no syncs (a crash leaves garbage that is
     * deleted), and WAL: the encrypting VFS learns the page size from page 1, which a rollback
     * journal's cache spill may write after others, while a WAL checkpoint writes in order */
    int64_t psz = 4096;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(c->src, "PRAGMA page_size", -1, &q, NULL) == SQLITE_OK) {
        if (sqlite3_step(q) == SQLITE_ROW)
            psz = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    char sql[160];
    snprintf(sql, sizeof sql,
             "PRAGMA page_size=%lld; PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;",
             (long long)psz);
    if ((st = exec(c->dest, sql, err)) != MESH_OK)
        goto fail;
    c->bk = sqlite3_backup_init(c->dest, "main", c->src, "main");
    if (c->bk == NULL) {
        st = mesh_err_set(err, MESH_IO, "backup of %s: %s", src, mesh_crypt_errmsg(c->dest));
        goto fail;
    }
    *out = c;
    return MESH_OK;
fail:
    mesh_dbcopy_close(c);
    return st;
}

mesh_status_t mesh_dbcopy_step(mesh_dbcopy_t *c, int npages, bool *done, int64_t *remaining,
                               int64_t *total, mesh_err_t *err)
{
    *done = c->done;
    if (c->done)
        return MESH_OK;
    mesh_crypt_failure_clear();
    int rc = sqlite3_backup_step(c->bk, npages);
    *remaining = sqlite3_backup_remaining(c->bk);
    *total = sqlite3_backup_pagecount(c->bk);
    if (rc == SQLITE_DONE) {
        c->done = *done = true;
        rc = sqlite3_backup_finish(c->bk);
        c->bk = NULL;
        if (rc != SQLITE_OK)
            return mesh_err_set(err, MESH_IO, "backup: %s", mesh_crypt_errmsg(c->dest));
        /* everything into the database file (which is what gets read back) */
        int nlog = -1, nckpt = -1;
        rc = sqlite3_wal_checkpoint_v2(c->dest, NULL, SQLITE_CHECKPOINT_TRUNCATE, &nlog, &nckpt);
        if (rc != SQLITE_OK || nckpt < nlog)
            return mesh_err_set(err, MESH_IO, "backup: checkpoint of the copy: %s",
                                mesh_crypt_errmsg(c->dest));
        return MESH_OK;
    }
    if (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        return MESH_OK;
    if (rc == SQLITE_FULL)
        return mesh_err_set(err, MESH_NOSPACE, "backup: the disk is full");
    return mesh_err_set(err, mesh_crypt_failure() ? MESH_CORRUPT : MESH_IO, "backup: %s",
                        mesh_crypt_failure() ? mesh_crypt_failure() : sqlite3_errstr(rc));
}

mesh_status_t mesh_store_mark_clean(const char *path, uint64_t seq, mesh_err_t *err)
{
    sqlite3 *db = NULL;
    mesh_status_t st =
        mesh_crypt_sqlite_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, &db, err);
    if (st != MESH_OK)
        return st;
    char sql[200];
    snprintf(sql, sizeof sql,
             "UPDATE _meta SET value = %" PRIu64 " WHERE key LIKE 'ts\\_clean:%%' ESCAPE '\\'",
             seq);
    st = exec(db, sql, err);
    /* replication (async, docs/mesh.md): a copy restored elsewhere or later is a new origin
     * whose chain starts again at 0; keeping the old id would make the replicas take its new
     * batches for ones they applied long ago */
    if (st == MESH_OK)
        st = exec(db, "DELETE FROM _meta WHERE key IN ('repl_origin', 'repl_outbox')", err);
    if (st == MESH_OK)
        st = exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", err);
    sqlite3_close(db);
    return st;
}

void mesh_dbcopy_close(mesh_dbcopy_t *c)
{
    if (c == NULL)
        return;
    if (c->bk)
        sqlite3_backup_finish(c->bk);
    if (c->src)
        sqlite3_exec(c->src, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(c->src);
    sqlite3_close(c->dest);
    free(c);
}

mesh_status_t mesh_store_switch(mesh_store_t *s, const char *path, mesh_err_t *err)
{
    if (s->in_txn)
        return mesh_err_set(err, MESH_INTERNAL, "switch inside a write transaction");
    char *np = strdup(path);
    if (np == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    sqlite3 *old = s->db;
    finalize_all(s);
    s->db = NULL;
    mesh_status_t st = conn_open(s, path, err);
    if (st == MESH_OK && (uint64_t)meta_int(s->db, "applied_seq") != s->applied_seq)
        st = mesh_err_set(err, MESH_INTERNAL, "%s does not hold what the store applied", path);
    if (st == MESH_OK)
        st = prepare_all(s, err);
    if (st != MESH_OK) {
        /* stay on the old file */
        finalize_all(s);
        sqlite3_close(s->db);
        s->db = old;
        free(np);
        mesh_err_t e2;
        prepare_all(s, &e2);
        return st;
    }
    sqlite3_close(old);
    pthread_mutex_lock(&s->path_lock);
    char *prev = s->path;
    s->path = np;
    pthread_mutex_unlock(&s->path_lock);
    free(prev);
    atomic_fetch_add(&s->file_gen, 1);
    return MESH_OK;
}

/* ---- planning and scanning ---- */

static bool op_takes_arg(mesh_op_t op)
{
    return op != MESH_OP_ISNULL && op != MESH_OP_ISNOTNULL;
}

void mesh_store_plan(mesh_store_t *s, const mesh_product_t *p, mesh_view_t view,
                     mesh_scan_plan_t *plan)
{
    bool quarantine = view == MESH_VIEW_QUARANTINE;
    mesh_product_stats_t st;
    mesh_store_product_stats(s, p->name, &st);
    mesh_ts_t *ts = quarantine ? NULL : ts_get(s, p->name);
    if (ts) {
        mesh__ts_plan(ts, st.rows, view == MESH_VIEW_LAST, plan);
        mesh__ts_unref(ts);
        return;
    }
    double rows = quarantine ? (double)st.quarantined : (double)st.rows;
    if (rows < 1)
        rows = 1;
    double est = rows;
    bool key_eq[64] = {false};
    size_t ncols = quarantine ? MESH_QUARANTINE_NCOLS : p->ncols;
    bool all_used = true;
    for (int i = 0; i < plan->ncons; i++) {
        int c = plan->cons[i].col;
        mesh_op_t op = plan->cons[i].op;
        plan->cons[i].used = c >= 0 && (size_t)c < ncols && op < MESH_OP__COUNT;
        if (!plan->cons[i].used) {
            all_used = false;
            continue;
        }
        if (quarantine) {
            if (c == 0 && op == MESH_OP_EQ)
                est = 1;
            continue;
        }
        bool is_key = p->cols[c].primary_key;
        if (op == MESH_OP_EQ || op == MESH_OP_IS) {
            if (is_key && p->cols[c].pk_position > 0 && p->cols[c].pk_position <= 64)
                key_eq[p->cols[c].pk_position - 1] = true;
            else
                est /= (c == p->time_col || p->cols[c].unique) ? rows : 10;
        } else if (op == MESH_OP_GT || op == MESH_OP_GE || op == MESH_OP_LT || op == MESH_OP_LE) {
            est /= (c == p->time_col || is_key) ? 4 : 2;
        } else {
            est /= 2;
        }
    }
    if (!quarantine) {
        size_t prefix = 0;
        while (prefix < p->nkey && prefix < 64 && key_eq[prefix])
            prefix++;
        if (prefix == p->nkey && p->nkey > 0)
            est = 1;
        else
            for (size_t k = 0; k < prefix; k++)
                est /= 100;
    }
    if (est < 1)
        est = 1;
    /* the store's own SQL sorts: any order of its columns is ours */
    plan->order_used = plan->norder > 0 && plan->norder <= MESH_SCAN_MAX_ORDER;
    for (int i = 0; i < plan->norder && plan->order_used; i++)
        plan->order_used = plan->order[i].col >= 0 && (size_t)plan->order[i].col < ncols;
    plan->limit_used = plan->want_limit && all_used && (plan->norder == 0 || plan->order_used);
    plan->est_rows = (int64_t)est;
    plan->cost = est * 2 + 10;
}

struct mesh_store_reader {
    mesh_store_t *store;
    sqlite3 *db;
    uint64_t file_gen; /* the store's file when db was opened */
    bool in_txn;
    struct {
        char *sql;
        sqlite3_stmt *q;
        bool busy;
        uint64_t used;
    } cache[STMT_CACHE];
    uint64_t tick;
    bool gen_pinned;     /* the ts generation of this read transaction is registered */
    sqlite3_stmt *q_pin; /* reads the snapshot's ts generation and position */
    uint64_t gen;
    uint64_t seq; /* the log position of this read transaction's snapshot */
    /* the time series scanned since the last mesh_store_reader_end, each referenced once:
     * their series keys stay valid until then (mesh_scan_text_stable) */
    mesh_ts_t **held;
    size_t nheld, capheld;
};

mesh_status_t mesh_store_contract_history(mesh_store_reader_t *r, const char *id,
                                          mesh_store_history_fn fn, void *arg, mesh_err_t *err)
{
    sqlite3_stmt *q;
    mesh_status_t st = prep(r->db,
                            "SELECT version, seq, applied_ns, yaml FROM _contracts WHERE id = ?1"
                            " ORDER BY seq",
                            &q, err);
    if (st != MESH_OK)
        return st;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    int rc;
    while (st == MESH_OK && (rc = sqlite3_step(q)) == SQLITE_ROW)
        st = fn(arg, (const char *)sqlite3_column_text(q, 0), (uint64_t)sqlite3_column_int64(q, 1),
                sqlite3_column_int64(q, 2), (const char *)sqlite3_column_text(q, 3),
                (size_t)sqlite3_column_bytes(q, 3));
    if (st == MESH_OK && rc != SQLITE_DONE)
        st = sql_err(r->db, err, "contract history");
    sqlite3_finalize(q);
    return st;
}

struct mesh_scan {
    mesh_store_reader_t *r;
    mesh_ts_cursor_t *ts; /* a time-series scan, or NULL */
    mesh_ts_t *ts_held;   /* its series, referenced by the reader (NULL: not held) */
    bool quarantine;
    char product[MESH_NAME_MAX + 1];
    sqlite3_stmt *q;
    int slot; /* cache slot, or -1 when q is owned */
    int ncols;
    int map[MESH_CONTRACT_MAX_COLUMNS]; /* product column -> result column, -1 when unread */
    char error[256];
};

/* Opens the reader's connection on the store's current file. */
static mesh_status_t reader_connect(mesh_store_reader_t *r, mesh_err_t *err)
{
    mesh_store_t *s = r->store;
    char path[4096];
    r->file_gen = atomic_load(&s->file_gen);
    path_copy(s, path, sizeof path);
    mesh_status_t st =
        mesh_crypt_sqlite_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, &r->db, err);
    if (st != MESH_OK)
        return st;
    sqlite3_busy_timeout(r->db, BUSY_TIMEOUT_MS);
    return exec(r->db, "PRAGMA query_only=1; PRAGMA temp_store=MEMORY; PRAGMA cache_size=-8192;",
                err);
}

static void reader_disconnect(mesh_store_reader_t *r)
{
    sqlite3_finalize(r->q_pin);
    r->q_pin = NULL;
    for (int i = 0; i < STMT_CACHE; i++) {
        sqlite3_finalize(r->cache[i].q);
        free(r->cache[i].sql);
        r->cache[i].q = NULL;
        r->cache[i].sql = NULL;
        r->cache[i].busy = false;
    }
    if (r->db) {
        if (r->in_txn)
            sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(r->db);
    }
    r->db = NULL;
    r->in_txn = false;
}

mesh_status_t mesh_store_reader_open(mesh_store_t *s, mesh_store_reader_t **out, mesh_err_t *err)
{
    mesh_store_reader_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    r->store = s;
    mesh_status_t st = reader_connect(r, err);
    if (st != MESH_OK) {
        mesh_store_reader_close(r);
        return st;
    }
    *out = r;
    return MESH_OK;
}

static void reader_release(mesh_store_reader_t *r)
{
    for (size_t i = 0; i < r->nheld; i++)
        mesh__ts_unref(r->held[i]);
    r->nheld = 0;
}

/* Keeps the reader's reference of ts (one per time series) until reader_release; true when
 * it is kept, false (and unreferenced) when memory ran out. */
static bool reader_hold(mesh_store_reader_t *r, mesh_ts_t *ts)
{
    for (size_t i = 0; i < r->nheld; i++)
        if (r->held[i] == ts) {
            mesh__ts_unref(ts);
            return true;
        }
    if (r->nheld == r->capheld) {
        size_t cap = r->capheld ? 2 * r->capheld : 8;
        mesh_ts_t **n = realloc(r->held, cap * sizeof *n);
        if (n == NULL) {
            mesh__ts_unref(ts);
            return false;
        }
        r->held = n;
        r->capheld = cap;
    }
    r->held[r->nheld++] = ts;
    return true;
}

void mesh_store_reader_close(mesh_store_reader_t *r)
{
    if (r == NULL)
        return;
    reader_disconnect(r);
    reader_release(r);
    free(r->held);
    free(r);
}

static mesh_status_t reader_pin_gen(mesh_store_reader_t *r, mesh_err_t *err);

mesh_status_t mesh_store_reader_begin(mesh_store_reader_t *r, mesh_err_t *err)
{
    if (r->in_txn)
        return MESH_OK;
    mesh_status_t st;
    if (r->file_gen != atomic_load(&r->store->file_gen)) {
        /* the domain was re-encrypted into another file: follow it */
        reader_disconnect(r);
        if ((st = reader_connect(r, err)) != MESH_OK)
            return st;
    }
    st = exec(r->db, "BEGIN", err);
    if (st != MESH_OK)
        return st;
    r->in_txn = true;
    /* With time series, the snapshot is taken now with its generation pinned: one taken
     * later by another read would leave the writer free to drop buffered rows it needs. */
    pthread_mutex_lock(&r->store->ts_lock);
    bool ts = r->store->nts > 0;
    pthread_mutex_unlock(&r->store->ts_lock);
    if (ts && (st = reader_pin_gen(r, err)) != MESH_OK)
        mesh_store_reader_end(r);
    return st;
}

/* Registers gen (or replaces old) as a generation an open read transaction needs. */
static void gens_put(mesh_store_t *s, uint64_t gen, bool replace, uint64_t old)
{
    pthread_mutex_lock(&s->ts_lock);
    size_t i = s->nreader_gens;
    if (replace)
        for (i = 0; i < s->nreader_gens && s->reader_gens[i] != old; i++)
            ;
    if (i == s->nreader_gens) {
        if (s->nreader_gens == s->capreader_gens) {
            size_t ncap = s->capreader_gens ? s->capreader_gens * 2 : 16;
            uint64_t *n = realloc(s->reader_gens, ncap * sizeof *n);
            if (n != NULL) {
                s->reader_gens = n;
                s->capreader_gens = ncap;
            }
        }
        if (s->nreader_gens < s->capreader_gens)
            s->reader_gens[s->nreader_gens++] = gen;
    } else {
        s->reader_gens[i] = gen;
    }
    pthread_mutex_unlock(&s->ts_lock);
}

static void gens_drop(mesh_store_t *s, uint64_t gen)
{
    pthread_mutex_lock(&s->ts_lock);
    for (size_t i = 0; i < s->nreader_gens; i++) {
        if (s->reader_gens[i] == gen) {
            s->reader_gens[i] = s->reader_gens[--s->nreader_gens];
            break;
        }
    }
    pthread_mutex_unlock(&s->ts_lock);
}

/*
 * Pins the ts generation of the reader's snapshot. A provisional generation (the writer's
 * last committed one) is registered before the snapshot is taken, so the writer cannot free
 * rows the snapshot will need in between; the snapshot's own generation is at least that.
 */
static mesh_status_t reader_pin_gen(mesh_store_reader_t *r, mesh_err_t *err)
{
    if (r->gen_pinned)
        return MESH_OK;
    mesh_store_t *s = r->store;
    pthread_mutex_lock(&s->ts_lock);
    uint64_t provisional = s->ts_gen;
    pthread_mutex_unlock(&s->ts_lock);
    gens_put(s, provisional, false, 0);
    uint64_t gen = 0, seq = 0;
    if (r->q_pin == NULL &&
        sqlite3_prepare_v3(r->db,
                           "SELECT (SELECT value FROM _meta WHERE key = 'ts_gen'),"
                           " (SELECT value FROM _meta WHERE key = 'applied_seq')",
                           -1, SQLITE_PREPARE_PERSISTENT, &r->q_pin, NULL) != SQLITE_OK) {
        gens_drop(s, provisional);
        return mesh_err_set(err, MESH_IO, "scan: %s", mesh_crypt_errmsg(r->db));
    }
    if (sqlite3_step(r->q_pin) == SQLITE_ROW) {
        gen = (uint64_t)sqlite3_column_int64(r->q_pin, 0);
        seq = (uint64_t)sqlite3_column_int64(r->q_pin, 1);
    }
    sqlite3_reset(r->q_pin);
    r->seq = seq;
    if (gen < provisional)
        gen = provisional; /* cannot happen; keep the register conservative if it does */
    gens_put(s, gen, true, provisional);
    r->gen = gen;
    r->gen_pinned = true;
    /* The writer publishes a commit's rows in the ts buffers just after the SQLite commit:
     * a snapshot taken in between holds rows (and chunks) the buffers do not show yet, so
     * wait for them. Buffers newer than the snapshot are fine (rows are filtered by seq,
     * flushed ones by generation). */
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += 30;
    pthread_mutex_lock(&s->pub_lock);
    int rc = 0;
    while ((s->pub_seq < seq || s->pub_gen < gen) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&s->pub_cond, &s->pub_lock, &until);
    bool late = s->pub_seq < seq || s->pub_gen < gen;
    pthread_mutex_unlock(&s->pub_lock);
    if (late)
        return mesh_err_set(err, MESH_BUSY,
                            "scan: the writer has not published its last commit after 30 s");
    return MESH_OK;
}

void mesh_store_reader_end(mesh_store_reader_t *r)
{
    for (int i = 0; i < STMT_CACHE; i++)
        if (r->cache[i].q)
            sqlite3_reset(r->cache[i].q);
    if (r->in_txn)
        sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
    r->in_txn = false;
    if (r->gen_pinned) {
        gens_drop(r->store, r->gen);
        r->gen_pinned = false;
    }
    reader_release(r);
}

static const char *op_sql(mesh_op_t op)
{
    static const char *ops[] = {" = ",  " > ",      " >= ",         " < ",  " <= ",
                                " != ", " IS NULL", " IS NOT NULL", " IS ", " IS NOT "};
    return ops[op];
}

static mesh_status_t scan_sql(const mesh_product_t *p, bool quarantine,
                              const mesh_scan_plan_t *plan, mesh_scan_t *sc, mesh_buf_t *b)
{
    static const char *qcols[] = {"id", "received_ns", "source_row", "reason", "raw"};
    size_t ncols = quarantine ? MESH_QUARANTINE_NCOLS : p->ncols;
    mesh_buf_adds(b, "SELECT ");
    int nsel = 0;
    for (size_t i = 0; i < ncols; i++) {
        bool used = (i >= 63) ? (plan->cols_used >> 63) & 1 : (plan->cols_used >> i) & 1;
        sc->map[i] = -1;
        if (!used)
            continue;
        if (nsel)
            mesh_buf_addc(b, ',');
        add_ident(b, quarantine ? qcols[i] : p->cols[i].name);
        sc->map[i] = nsel++;
    }
    if (nsel == 0)
        mesh_buf_adds(b, "1");
    mesh_buf_adds(b, " FROM ");
    if (quarantine)
        mesh_buf_adds(b, "_quarantine WHERE product = ?");
    else
        add_table(b, p->name, NULL);
    int arg = 1 + (quarantine ? 1 : 0);
    bool where = quarantine;
    for (int i = 0; i < plan->ncons; i++) {
        if (!plan->cons[i].used)
            continue;
        mesh_buf_adds(b, where ? " AND " : " WHERE ");
        where = true;
        int c = plan->cons[i].col;
        add_ident(b, quarantine ? qcols[c] : p->cols[c].name);
        mesh_buf_adds(b, op_sql(plan->cons[i].op));
        if (op_takes_arg(plan->cons[i].op))
            mesh_buf_printf(b, "?%d", arg++);
    }
    for (int i = 0; plan->order_used && i < plan->norder; i++) {
        int c = plan->order[i].col;
        mesh_buf_adds(b, i ? ", " : " ORDER BY ");
        add_ident(b, quarantine ? qcols[c] : p->cols[c].name);
        mesh_buf_adds(b, plan->order[i].desc ? " DESC" : " ASC");
    }
    if (plan->limit_used) {
        mesh_buf_printf(b, " LIMIT ?%d", arg++);
        if (plan->want_offset)
            mesh_buf_printf(b, " OFFSET ?%d", arg++);
    }
    sc->ncols = (int)ncols;
    return b->data ? MESH_OK : MESH_NOMEM;
}

static int cache_get(mesh_store_reader_t *r, const char *sql, mesh_err_t *err)
{
    int free_slot = -1, lru = -1;
    for (int i = 0; i < STMT_CACHE; i++) {
        if (r->cache[i].sql && !r->cache[i].busy && strcmp(r->cache[i].sql, sql) == 0) {
            r->cache[i].busy = true;
            r->cache[i].used = ++r->tick;
            return i;
        }
        if (r->cache[i].sql == NULL && free_slot < 0)
            free_slot = i;
        if (r->cache[i].sql && !r->cache[i].busy &&
            (lru < 0 || r->cache[i].used < r->cache[lru].used))
            lru = i;
    }
    int slot = free_slot >= 0 ? free_slot : lru;
    if (slot < 0) {
        mesh_err_set(err, MESH_LIMIT, "too many scans open in one query (%d)", STMT_CACHE);
        return -1;
    }
    sqlite3_finalize(r->cache[slot].q);
    free(r->cache[slot].sql);
    r->cache[slot].q = NULL;
    r->cache[slot].sql = strdup(sql);
    if (r->cache[slot].sql == NULL || sqlite3_prepare_v3(r->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                                         &r->cache[slot].q, NULL) != SQLITE_OK) {
        sql_err(r->db, err, "prepare scan");
        free(r->cache[slot].sql);
        r->cache[slot].sql = NULL;
        return -1;
    }
    r->cache[slot].busy = true;
    r->cache[slot].used = ++r->tick;
    return slot;
}

/* Binds a row-store scan's arguments (after the product name for a quarantine scan). */
static void bind_args(mesh_scan_t *sc, const mesh_datum_t *args, int nargs)
{
    int idx = 1;
    if (sc->quarantine)
        sqlite3_bind_text(sc->q, idx++, sc->product, -1, SQLITE_TRANSIENT);
    for (int i = 0; i < nargs; i++, idx++) {
        const mesh_datum_t *a = &args[i];
        switch (a->type) {
        case MESH_V_INT:
            sqlite3_bind_int64(sc->q, idx, a->i);
            break;
        case MESH_V_REAL:
            sqlite3_bind_double(sc->q, idx, a->d);
            break;
        case MESH_V_TEXT:
            sqlite3_bind_text(sc->q, idx, a->s, (int)a->n, SQLITE_TRANSIENT);
            break;
        default:
            sqlite3_bind_null(sc->q, idx);
        }
    }
}

mesh_status_t mesh_scan_open(mesh_store_reader_t *r, const mesh_product_t *p, mesh_view_t view,
                             const mesh_scan_plan_t *plan, const mesh_datum_t *args, int nargs,
                             mesh_scan_t **out, mesh_err_t *err)
{
    bool quarantine = view == MESH_VIEW_QUARANTINE;
    mesh_scan_t *sc = calloc(1, sizeof *sc);
    if (sc == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    sc->r = r;
    mesh_ts_t *ts = quarantine ? NULL : ts_get(r->store, p->name);
    if (ts == NULL && view == MESH_VIEW_LAST) {
        free(sc);
        return mesh_err_set(err, MESH_INVALID, "%s is not a time series: it has no __last view",
                            p->name);
    }
    if (ts) {
        mesh_status_t st = reader_pin_gen(r, err);
        if (st == MESH_OK)
            st = mesh__ts_scan_open(ts, r->db, r->gen, r->seq, view == MESH_VIEW_LAST, plan, args,
                                    nargs, &sc->ts, err);
        if (st != MESH_OK) {
            mesh__ts_unref(ts);
            free(sc);
            return st;
        }
        if (reader_hold(r, ts))
            sc->ts_held = ts;
        *out = sc;
        return MESH_OK;
    }
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 20);
    mesh_status_t st = scan_sql(p, quarantine, plan, sc, &b);
    if (st != MESH_OK) {
        mesh_buf_free(&b);
        free(sc);
        return mesh_err_set(err, st, "out of memory");
    }
    sc->slot = cache_get(r, b.data, err);
    mesh_buf_free(&b);
    if (sc->slot < 0) {
        free(sc);
        return err ? err->code : MESH_INTERNAL;
    }
    sc->q = r->cache[sc->slot].q;
    sc->quarantine = quarantine;
    snprintf(sc->product, sizeof sc->product, "%s", p->name);
    bind_args(sc, args, nargs);
    *out = sc;
    return MESH_OK;
}

mesh_status_t mesh_scan_rewind(mesh_scan_t *sc, const mesh_scan_plan_t *plan,
                               const mesh_datum_t *args, int nargs, mesh_err_t *err)
{
    if (sc->ts)
        return mesh__ts_scan_rewind(sc->ts, plan, args, nargs, err);
    sqlite3_reset(sc->q);
    bind_args(sc, args, nargs);
    return MESH_OK;
}

int mesh_scan_next(mesh_scan_t *sc)
{
    if (sc->ts)
        return mesh__ts_scan_next(sc->ts);
    int rc = sqlite3_step(sc->q);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    snprintf(sc->error, sizeof sc->error, "scan: %s", mesh_crypt_errmsg(sc->r->db));
    return -1;
}

bool mesh_scan_text_stable(const mesh_scan_t *sc, int col)
{
    return sc->ts_held != NULL && mesh__ts_key_col(sc->ts_held, col);
}

void mesh_scan_value(mesh_scan_t *sc, int col, mesh_datum_t *out)
{
    if (sc->ts) {
        mesh__ts_scan_value(sc->ts, col, out);
        return;
    }
    memset(out, 0, sizeof *out);
    if (col < 0 || col >= sc->ncols || sc->map[col] < 0)
        return;
    int rc = sc->map[col];
    switch (sqlite3_column_type(sc->q, rc)) {
    case SQLITE_INTEGER:
        out->type = MESH_V_INT;
        out->i = sqlite3_column_int64(sc->q, rc);
        break;
    case SQLITE_FLOAT:
        out->type = MESH_V_REAL;
        out->d = sqlite3_column_double(sc->q, rc);
        break;
    case SQLITE_TEXT:
        out->type = MESH_V_TEXT;
        out->s = (const char *)sqlite3_column_text(sc->q, rc);
        out->n = (size_t)sqlite3_column_bytes(sc->q, rc);
        break;
    default:
        out->type = MESH_V_NULL;
    }
}

const char *mesh_scan_error(mesh_scan_t *sc)
{
    return sc->ts ? mesh__ts_scan_error(sc->ts) : sc->error;
}

void mesh_scan_close(mesh_scan_t *sc)
{
    if (sc == NULL)
        return;
    if (sc->ts) {
        mesh__ts_scan_close(sc->ts);
        free(sc);
        return;
    }
    sqlite3_reset(sc->q);
    sqlite3_clear_bindings(sc->q);
    sc->r->cache[sc->slot].busy = false;
    free(sc);
}

/* ---- rollups ---- */

struct mesh_rollup {
    mesh_scan_t *sc;
    mesh_ts_rollup_t *R;
};

mesh_status_t mesh_rollup_open(mesh_store_reader_t *r, const mesh_product_t *p, int64_t width,
                               int64_t lo, int64_t hi, const mesh_rollup_key_t *keys, int nkeys,
                               const int *cols, int ncols, mesh_rollup_t **out, mesh_err_t *err)
{
    if (nkeys < 0 || nkeys > MESH_SCAN_MAX_CONS - 2 || p->time_col < 0)
        return mesh_err_set(err, MESH_INVALID, "rollup: too many conditions");
    mesh_scan_plan_t plan;
    memset(&plan, 0, sizeof plan);
    mesh_datum_t args[MESH_SCAN_MAX_CONS];
    for (int i = 0; i < nkeys; i++) {
        if (keys[i].op == MESH_OP_ISNULL || keys[i].op == MESH_OP_ISNOTNULL)
            return mesh_err_set(err, MESH_INVALID, "rollup: a condition without a value");
        plan.cons[i].col = keys[i].col;
        plan.cons[i].op = keys[i].op;
        plan.cons[i].used = true;
        args[i] = keys[i].v;
    }
    plan.cons[nkeys].col = plan.cons[nkeys + 1].col = p->time_col;
    plan.cons[nkeys].op = MESH_OP_GE;
    plan.cons[nkeys + 1].op = MESH_OP_LE;
    plan.cons[nkeys].used = plan.cons[nkeys + 1].used = true;
    args[nkeys] = (mesh_datum_t){.type = MESH_V_INT, .i = lo};
    args[nkeys + 1] = (mesh_datum_t){.type = MESH_V_INT, .i = hi};
    plan.ncons = nkeys + 2;
    /* series in the order of their columns (as the product declares them) */
    for (size_t i = 0; i < p->ncols && plan.norder < MESH_SCAN_MAX_ORDER; i++)
        for (size_t k = 0; k < p->nkey; k++)
            if (p->key_cols[k] == (int)i && (int)i != p->time_col)
                plan.order[plan.norder++].col = (int)i;
    plan.order_used = plan.norder > 0;
    plan.cols_used = 1ULL << (p->time_col < 63 ? p->time_col : 63);
    for (int k = 0; k < ncols; k++)
        plan.cols_used |= 1ULL << (cols[k] < 63 ? cols[k] : 63);
    mesh_rollup_t *ru = calloc(1, sizeof *ru);
    if (ru == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    mesh_status_t st = mesh_scan_open(r, p, MESH_VIEW_ROWS, &plan, args, plan.ncons, &ru->sc, err);
    if (st == MESH_OK && ru->sc->ts == NULL)
        st = mesh_err_set(err, MESH_INVALID, "%s is not a time series: it has no rollups", p->name);
    if (st == MESH_OK)
        st = mesh__ts_rollup_open(ru->sc->ts, width, cols, ncols, &ru->R, err);
    if (st != MESH_OK) {
        mesh_rollup_close(ru);
        return st;
    }
    *out = ru;
    return MESH_OK;
}

int mesh_rollup_next(mesh_rollup_t *ru)
{
    return mesh__ts_rollup_next(ru->R);
}

void mesh_rollup_key_value(mesh_rollup_t *ru, int col, mesh_datum_t *out)
{
    mesh__ts_rollup_value(ru->R, col, out);
}

int64_t mesh_rollup_bucket(mesh_rollup_t *ru, int64_t *rows)
{
    return mesh__ts_rollup_bucket(ru->R, rows);
}

const mesh_rollup_acc_t *mesh_rollup_acc(mesh_rollup_t *ru, int k)
{
    return mesh__ts_rollup_acc(ru->R, k);
}

const char *mesh_rollup_error(mesh_rollup_t *ru)
{
    return mesh__ts_rollup_error(ru->R);
}

void mesh_rollup_close(mesh_rollup_t *ru)
{
    if (ru == NULL)
        return;
    mesh__ts_rollup_close(ru->R);
    mesh_scan_close(ru->sc);
    free(ru);
}

/* ---- rules: definitions and per-series state (rules/engine.c) ---- */

mesh_status_t mesh_store_rule_put(mesh_store_t *s, const char *name, uint64_t seq, const char *text,
                                  mesh_err_t *err)
{
    sqlite3_stmt *q;
    mesh_status_t st =
        prep(s->db, "INSERT OR REPLACE INTO _rules(name, seq, text) VALUES (?,?,?)", &q, err);
    if (st != MESH_OK)
        return st;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)seq);
    sqlite3_bind_text(q, 3, text, -1, SQLITE_STATIC);
    st = step_done(s->db, q, err, "store rule");
    sqlite3_finalize(q);
    return st;
}

mesh_status_t mesh_store_rule_delete(mesh_store_t *s, const char *name, bool state_only,
                                     mesh_err_t *err)
{
    static const char *const sql[] = {"DELETE FROM _rule_state WHERE rule = ?",
                                      "DELETE FROM _rules WHERE name = ?"};
    mesh_status_t st = MESH_OK;
    for (size_t i = 0; i < (state_only ? 1u : 2u) && st == MESH_OK; i++) {
        sqlite3_stmt *q;
        if ((st = prep(s->db, sql[i], &q, err)) != MESH_OK)
            return st;
        sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
        st = step_done(s->db, q, err, "delete rule");
        sqlite3_finalize(q);
    }
    return st;
}

mesh_status_t mesh_store_rules_load(mesh_store_t *s, mesh_store_rule_fn fn, void *arg,
                                    mesh_err_t *err)
{
    sqlite3_stmt *q;
    mesh_status_t st = prep(s->db, "SELECT name, text FROM _rules ORDER BY name", &q, err);
    if (st != MESH_OK)
        return st;
    int rc;
    while (st == MESH_OK && (rc = sqlite3_step(q)) == SQLITE_ROW)
        st = fn(arg, (const char *)sqlite3_column_text(q, 0),
                (const uint8_t *)sqlite3_column_text(q, 1), (size_t)sqlite3_column_bytes(q, 1));
    if (st == MESH_OK && rc != SQLITE_DONE)
        st = sql_err(s->db, err, "load rules");
    sqlite3_finalize(q);
    return st;
}

mesh_status_t mesh_store_rstates_load(mesh_store_t *s, const char *rule, mesh_store_rule_fn fn,
                                      void *arg, mesh_err_t *err)
{
    sqlite3_stmt *q;
    mesh_status_t st = prep(s->db, "SELECT series, state FROM _rule_state WHERE rule = ?", &q, err);
    if (st != MESH_OK)
        return st;
    sqlite3_bind_text(q, 1, rule, -1, SQLITE_STATIC);
    int rc;
    while (st == MESH_OK && (rc = sqlite3_step(q)) == SQLITE_ROW)
        st = fn(arg, (const char *)sqlite3_column_text(q, 0),
                (const uint8_t *)sqlite3_column_blob(q, 1), (size_t)sqlite3_column_bytes(q, 1));
    if (st == MESH_OK && rc != SQLITE_DONE)
        st = sql_err(s->db, err, "load rule state");
    sqlite3_finalize(q);
    return st;
}

mesh_status_t mesh_store_rstate_put(mesh_store_t *s, const char *rule, const char *series,
                                    const uint8_t *p, size_t n, mesh_err_t *err)
{
    sqlite3_stmt *q = s->q_rstate_put;
    sqlite3_bind_text(q, 1, rule, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, series, -1, SQLITE_STATIC);
    sqlite3_bind_blob(q, 3, n ? (const void *)p : "", (int)n, SQLITE_STATIC);
    mesh_status_t st = step_done(s->db, q, err, "store rule state");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return st;
}

mesh_status_t mesh_store_meta_get(mesh_store_t *s, const char *key, int64_t *out, mesh_err_t *err)
{
    return meta_int_checked(s->db, key, out, err);
}

mesh_status_t mesh_store_meta_put(mesh_store_t *s, const char *key, int64_t v, mesh_err_t *err)
{
    sqlite3_stmt *q;
    mesh_status_t st =
        prep(s->db, "INSERT OR REPLACE INTO _meta(key, value) VALUES (?, ?)", &q, err);
    if (st != MESH_OK)
        return st;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, v);
    st = step_done(s->db, q, err, "store meta");
    sqlite3_finalize(q);
    return st;
}

/* ---- logged batches that changed nothing (duplicates, refusals) ---- */

mesh_status_t mesh_store_mark_unapplied(mesh_store_t *s, uint64_t seq, mesh_err_t *err)
{
    sqlite3_stmt *q;
    mesh_status_t st = prep(s->db, "INSERT OR IGNORE INTO _unapplied(seq) VALUES (?)", &q, err);
    if (st != MESH_OK)
        return st;
    sqlite3_bind_int64(q, 1, (sqlite3_int64)seq);
    st = step_done(s->db, q, err, "store unapplied");
    sqlite3_finalize(q);
    return st;
}

bool mesh_store_unapplied(mesh_store_t *s, uint64_t seq)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM _unapplied WHERE seq = ?", -1, &q, NULL) !=
        SQLITE_OK)
        return false;
    sqlite3_bind_int64(q, 1, (sqlite3_int64)seq);
    bool found = sqlite3_step(q) == SQLITE_ROW;
    sqlite3_finalize(q);
    return found;
}

/* ---- stream records applied (replication: divergence checks, exactly once by id) ---- */

mesh_status_t mesh_store_repl_note(mesh_store_t *s, uint64_t sseq, const char *id, uint64_t fp,
                                   mesh_err_t *err)
{
    sqlite3_stmt *q;
    mesh_status_t st =
        prep(s->db, "INSERT OR REPLACE INTO _repl_seen(sseq, id, fp) VALUES (?, ?, ?)", &q, err);
    if (st != MESH_OK)
        return st;
    sqlite3_bind_int64(q, 1, (sqlite3_int64)sseq);
    if (id && *id)
        sqlite3_bind_text(q, 2, id, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, 2);
    sqlite3_bind_int64(q, 3, (sqlite3_int64)fp);
    st = step_done(s->db, q, err, "store a stream record's id");
    sqlite3_finalize(q);
    if (st != MESH_OK || sseq % 1024 != 0 || sseq <= MESH_STORE_REPL_KEEP)
        return st;
    /* now and then, the oldest go (a rewind never reaches that far back) */
    if ((st = prep(s->db, "DELETE FROM _repl_seen WHERE sseq <= ?", &q, err)) != MESH_OK)
        return st;
    sqlite3_bind_int64(q, 1, (sqlite3_int64)(sseq - MESH_STORE_REPL_KEEP));
    st = step_done(s->db, q, err, "prune stream record ids");
    sqlite3_finalize(q);
    return st;
}

int mesh_store_repl_fp(mesh_store_t *s, uint64_t sseq, uint64_t *fp)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT fp FROM _repl_seen WHERE sseq = ?", -1, &q, NULL) !=
        SQLITE_OK)
        return -1;
    sqlite3_bind_int64(q, 1, (sqlite3_int64)sseq);
    int rc = sqlite3_step(q);
    int found = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    if (found == 1)
        *fp = (uint64_t)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return found;
}

int mesh_store_repl_id(mesh_store_t *s, uint64_t sseq, char *out, size_t cap)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT id FROM _repl_seen WHERE sseq = ? AND id IS NOT NULL", -1,
                           &q, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(q, 1, (sqlite3_int64)sseq);
    int rc = sqlite3_step(q);
    int found = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    if (found == 1)
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    return found;
}

bool mesh_store_repl_has_id(mesh_store_t *s, const char *id)
{
    sqlite3_stmt *q;
    if (id == NULL || *id == '\0' ||
        sqlite3_prepare_v2(s->db, "SELECT 1 FROM _repl_seen WHERE id = ?", -1, &q, NULL) !=
            SQLITE_OK)
        return false;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    bool found = sqlite3_step(q) == SQLITE_ROW;
    sqlite3_finalize(q);
    return found;
}

/* ---- the outbox: alert transitions whose actions are not done yet ---- */

mesh_status_t mesh_store_outbox_put(mesh_store_t *s, const char *rule_text, const char *event,
                                    int64_t *id, mesh_err_t *err)
{
    sqlite3_stmt *q;
    mesh_status_t st = prep(s->db, "INSERT INTO _outbox(rule, event) VALUES (?,?)", &q, err);
    if (st != MESH_OK)
        return st;
    sqlite3_bind_text(q, 1, rule_text, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, event, -1, SQLITE_STATIC);
    st = step_done(s->db, q, err, "store outbox");
    sqlite3_finalize(q);
    if (st == MESH_OK)
        *id = sqlite3_last_insert_rowid(s->db);
    return st;
}

mesh_status_t mesh_store_outbox_delete(mesh_store_t *s, int64_t id, mesh_err_t *err)
{
    sqlite3_stmt *q;
    mesh_status_t st = prep(s->db, "DELETE FROM _outbox WHERE id = ?", &q, err);
    if (st != MESH_OK)
        return st;
    sqlite3_bind_int64(q, 1, id);
    st = step_done(s->db, q, err, "delete outbox");
    sqlite3_finalize(q);
    return st;
}

mesh_status_t mesh_store_outbox_load(mesh_store_t *s, mesh_store_outbox_fn fn, void *arg,
                                     mesh_err_t *err)
{
    sqlite3_stmt *q;
    mesh_status_t st = prep(s->db, "SELECT id, rule, event FROM _outbox ORDER BY id", &q, err);
    if (st != MESH_OK)
        return st;
    int rc;
    while (st == MESH_OK && (rc = sqlite3_step(q)) == SQLITE_ROW)
        st = fn(arg, sqlite3_column_int64(q, 0), (const char *)sqlite3_column_text(q, 1),
                (size_t)sqlite3_column_bytes(q, 1), (const char *)sqlite3_column_text(q, 2),
                (size_t)sqlite3_column_bytes(q, 2));
    if (st == MESH_OK && rc != SQLITE_DONE)
        st = sql_err(s->db, err, "load outbox");
    sqlite3_finalize(q);
    return st;
}

/* ---- disposal (retention and erasure) ---- */

/* An integer PRAGMA's value (-1 on error). */
static int64_t meta_pragma(sqlite3 *db, const char *name)
{
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA %s", name);
    sqlite3_stmt *q;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(q) == SQLITE_ROW)
        v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

mesh_status_t mesh_store_key_add(mesh_buf_t *b, const mesh_datum_t *v)
{
    mesh_status_t st = mesh_buf_addc(b, (char)v->type);
    if (st != MESH_OK)
        return st;
    if (v->type == MESH_V_INT)
        return mesh_buf_add_u64(b, (uint64_t)v->i);
    if (v->type == MESH_V_REAL) {
        uint64_t u;
        memcpy(&u, &v->d, 8);
        return mesh_buf_add_u64(b, u);
    }
    if (v->type == MESH_V_TEXT) {
        if ((st = mesh_buf_add_uvarint(b, v->n)) != MESH_OK)
            return st;
        return mesh_buf_add(b, v->s, v->n);
    }
    return MESH_OK;
}

/* Binds the next encoded key datum to parameter idx. */
static bool bind_key(sqlite3_stmt *q, int idx, mesh_cursor_t *c)
{
    uint8_t type = mesh_cursor_u8(c);
    if (type == MESH_V_INT) {
        sqlite3_bind_int64(q, idx, (sqlite3_int64)mesh_cursor_u64(c));
    } else if (type == MESH_V_REAL) {
        uint64_t u = mesh_cursor_u64(c);
        double d;
        memcpy(&d, &u, 8);
        sqlite3_bind_double(q, idx, d);
    } else if (type == MESH_V_TEXT) {
        size_t n = (size_t)mesh_cursor_uvarint(c);
        const uint8_t *p = mesh_cursor_bytes(c, n);
        if (c->bad || n > INT32_MAX)
            return false;
        sqlite3_bind_text(q, idx, (const char *)p, (int)n, SQLITE_TRANSIENT);
    } else if (type == MESH_V_NULL) {
        sqlite3_bind_null(q, idx);
    } else {
        return false;
    }
    return !c->bad;
}

/* Retention or erasure of a product in the row layout. */
static mesh_status_t dispose_rows(mesh_store_t *s, const mesh_product_t *p, const mesh_dispose_t *d,
                                  int64_t *deleted, mesh_err_t *err)
{
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 20);
    size_t nmatch = p->nkey ? p->nkey : p->ncols;
    if (d->cutoff != INT64_MIN) {
        if (p->time_col < 0) {
            mesh_buf_free(&b);
            return mesh_err_set(err, MESH_INVALID, "%s has no time column: no retention", p->name);
        }
        mesh_buf_adds(&b, "DELETE FROM ");
        add_table(&b, p->name, NULL);
        mesh_buf_adds(&b, p->nkey ? " WHERE (" : " WHERE rowid IN (SELECT rowid");
        for (size_t k = 0; k < p->nkey; k++) {
            if (k)
                mesh_buf_addc(&b, ',');
            add_ident(&b, p->cols[p->key_cols[k]].name);
        }
        if (p->nkey) {
            mesh_buf_adds(&b, ") IN (SELECT ");
            for (size_t k = 0; k < p->nkey; k++) {
                if (k)
                    mesh_buf_addc(&b, ',');
                add_ident(&b, p->cols[p->key_cols[k]].name);
            }
        }
        mesh_buf_adds(&b, " FROM ");
        add_table(&b, p->name, NULL);
        mesh_buf_adds(&b, " WHERE ");
        add_ident(&b, p->cols[p->time_col].name);
        mesh_buf_adds(&b, " < ?1 ORDER BY ");
        add_ident(&b, p->cols[p->time_col].name);
        for (size_t k = 0; k < p->nkey; k++) {
            mesh_buf_addc(&b, ',');
            add_ident(&b, p->cols[p->key_cols[k]].name);
        }
        mesh_buf_adds(&b, p->nkey ? " LIMIT ?2)" : ", rowid LIMIT ?2)");
    } else {
        mesh_buf_adds(&b, "DELETE FROM ");
        add_table(&b, p->name, NULL);
        mesh_buf_adds(&b, " WHERE ");
        for (size_t k = 0; k < nmatch; k++) {
            if (k)
                mesh_buf_adds(&b, " AND ");
            add_ident(&b, p->cols[p->nkey ? p->key_cols[k] : (int)k].name);
            mesh_buf_printf(&b, " IS ?%zu", k + 1);
        }
    }
    if (b.data == NULL) {
        mesh_buf_free(&b);
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    sqlite3_stmt *q;
    mesh_status_t st = MESH_OK;
    if (sqlite3_prepare_v2(s->db, b.data, -1, &q, NULL) != SQLITE_OK) {
        st = sql_err(s->db, err, "dispose");
        mesh_buf_free(&b);
        return st;
    }
    mesh_buf_free(&b);
    if (d->cutoff != INT64_MIN) {
        sqlite3_bind_int64(q, 1, d->cutoff);
        sqlite3_bind_int64(q, 2, d->limit > 0 ? d->limit : -1);
        if ((st = step_done(s->db, q, err, "retention")) == MESH_OK)
            *deleted += sqlite3_changes(s->db);
    } else {
        mesh_cursor_t c;
        mesh_cursor_init(&c, d->keys, d->keys_len);
        for (size_t i = 0; i < d->nkeys && st == MESH_OK; i++) {
            sqlite3_reset(q);
            for (size_t k = 0; k < nmatch && st == MESH_OK; k++)
                if (!bind_key(q, (int)k + 1, &c))
                    st = mesh_err_set(err, MESH_CORRUPT, "%s: a bad key in an erasure record",
                                      p->name);
            if (st == MESH_OK && (st = step_done(s->db, q, err, "erasure")) == MESH_OK)
                *deleted += sqlite3_changes(s->db);
        }
        if (st == MESH_OK && c.n != 0)
            st = mesh_err_set(err, MESH_CORRUPT, "%s: an erasure record with trailing bytes",
                              p->name);
    }
    sqlite3_finalize(q);
    return st;
}

/* Takes n rows deleted in the writer's transaction off a product's count (its last write
 * time stays). */
static mesh_status_t rows_removed(mesh_store_t *s, const char *product, int64_t n, mesh_err_t *err)
{
    sqlite3_stmt *q = s->q_stats_put;
    sqlite3_bind_text(q, 1, product, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, -n);
    sqlite3_bind_int64(q, 3, 0);
    sqlite3_bind_int64(q, 4, 0);
    mesh_status_t st = step_done(s->db, q, err, "stats");
    if (st != MESH_OK)
        return st;
    pthread_mutex_lock(&s->stats_lock);
    stats_entry_t *e = stats_find(s, product, false);
    if (e)
        e->st.rows -= n;
    pthread_mutex_unlock(&s->stats_lock);
    return MESH_OK;
}

mesh_status_t mesh_store_dispose(mesh_store_t *s, const mesh_product_t *p, const mesh_dispose_t *d,
                                 bool replay, int64_t *deleted, mesh_err_t *err)
{
    *deleted = 0;
    mesh_ts_t *t = ts_find(s, p->name);
    mesh_status_t st = MESH_OK;
    if (t == NULL) {
        if (replay)
            return MESH_OK; /* the rows are gone from the database already */
        st = dispose_rows(s, p, d, deleted, err);
    } else {
        if (!replay) {
            /* every buffered row of the product into chunks first (readers that predate
             * this transaction keep seeing them from memory, later ones see the chunks) */
            bool did = false;
            uint64_t gen = (s->ts_gen_pending ? s->ts_gen_pending : s->ts_gen) + 1;
            st = mesh__ts_flush(t, s->db, MESH_TS_FLUSH_ALL, 0, gen, s->applied_seq, &did, err);
            if (st == MESH_OK && did) {
                char sql[128];
                snprintf(sql, sizeof sql,
                         "INSERT OR REPLACE INTO _meta(key, value) VALUES ('ts_gen', %" PRIu64 ")",
                         gen);
                if ((st = exec(s->db, sql, err)) == MESH_OK)
                    s->ts_gen_pending = gen;
            }
        }
        if (st == MESH_OK)
            st = mesh__ts_dispose(t, s->db, d->cutoff, d->limit, d->keys, d->keys_len, d->nkeys,
                                  replay, deleted, err);
    }
    if (st != MESH_OK || *deleted == 0 || replay)
        return st;
    return rows_removed(s, p->name, *deleted, err);
}

mesh_status_t mesh_store_delete_since(mesh_store_t *s, const mesh_product_t *p, const char *col,
                                      int64_t since, int64_t *deleted, mesh_err_t *err)
{
    *deleted = 0;
    if (ts_find(s, p->name) || mesh_product_col(p, col, strlen(col)) < 0)
        return mesh_err_set(err, MESH_INVALID, "%s: no row-layout product with column %s", p->name,
                            col);
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 16);
    mesh_buf_adds(&b, "DELETE FROM ");
    add_table(&b, p->name, NULL);
    mesh_buf_printf(&b, " WHERE \"%s\" >= ?", col);
    sqlite3_stmt *q = NULL;
    mesh_status_t st = b.data ? prep(s->db, b.data, &q, err) : MESH_NOMEM;
    mesh_buf_free(&b);
    if (st != MESH_OK)
        return st;
    sqlite3_bind_int64(q, 1, since);
    st = step_done(s->db, q, err, "delete since");
    sqlite3_finalize(q);
    if (st != MESH_OK)
        return st;
    *deleted = sqlite3_changes64(s->db);
    if (*deleted == 0)
        return MESH_OK;
    q = s->q_stats_put;
    sqlite3_bind_text(q, 1, p->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, -*deleted);
    sqlite3_bind_int64(q, 3, 0);
    sqlite3_bind_int64(q, 4, 0);
    if ((st = step_done(s->db, q, err, "stats")) != MESH_OK)
        return st;
    pthread_mutex_lock(&s->stats_lock);
    stats_entry_t *e = stats_find(s, p->name, false);
    if (e)
        e->st.rows -= *deleted;
    pthread_mutex_unlock(&s->stats_lock);
    return MESH_OK;
}

mesh_status_t mesh_store_truncate(mesh_store_t *s, const mesh_product_t *p, int64_t *deleted,
                                  mesh_err_t *err)
{
    *deleted = 0;
    if (ts_find(s, p->name))
        return mesh_err_set(err, MESH_INVALID, "%s: a time series is not truncated", p->name);
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 16);
    mesh_buf_adds(&b, "DELETE FROM ");
    add_table(&b, p->name, NULL);
    mesh_status_t st = b.data ? exec(s->db, b.data, err) : MESH_NOMEM;
    mesh_buf_free(&b);
    if (st != MESH_OK)
        return st;
    *deleted = sqlite3_changes64(s->db);
    if (*deleted == 0)
        return MESH_OK;
    return rows_removed(s, p->name, *deleted, err);
}

mesh_status_t mesh_store_vacuum(mesh_store_t *s, int64_t max_pages, int64_t *freed, mesh_err_t *err)
{
    *freed = 0;
    if (meta_pragma(s->db, "auto_vacuum") != 2)
        return MESH_OK;
    int64_t before = meta_pragma(s->db, "freelist_count");
    if (before <= 0)
        return MESH_OK;
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA incremental_vacuum(%lld)",
             (long long)(max_pages > 0 ? max_pages : before));
    mesh_status_t st = exec(s->db, sql, err);
    if (st == MESH_OK)
        *freed = before - meta_pragma(s->db, "freelist_count");
    return st;
}

/* ---- for other files of store/ (internal.h) ---- */

sqlite3 *mesh__store_db(mesh_store_t *s)
{
    return s->db;
}

mesh_status_t mesh__store_rows_add(mesh_store_t *s, const char *product, int64_t delta,
                                   mesh_err_t *err)
{
    sqlite3_stmt *q = s->q_stats_put;
    sqlite3_bind_text(q, 1, product, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, delta);
    sqlite3_bind_int64(q, 3, 0);
    sqlite3_bind_int64(q, 4, mesh_now_ns());
    mesh_status_t st = step_done(s->db, q, err, "stats");
    if (st != MESH_OK)
        return st;
    pthread_mutex_lock(&s->stats_lock);
    stats_entry_t *e = stats_find(s, product, true);
    if (e) {
        e->st.rows += delta;
        e->st.last_write_ns = mesh_now_ns();
    }
    pthread_mutex_unlock(&s->stats_lock);
    return MESH_OK;
}
