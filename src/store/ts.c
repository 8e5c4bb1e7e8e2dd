/*
 * ts.c - the time-series layout: series, in-memory buffers, chunks, flush and scans.
 * See ts.h for the design and its invariants.
 */
#define _GNU_SOURCE /* qsort_r */
#include "store/ts.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "crypt/vfs.h"
#include "store/codec.h"

#define MAX_SEGS 8

/* ---- rowsets: column-major rows of one series ---- */

/* A value column: a product column that is neither a series key nor the time. */
typedef struct vcol {
    int col; /* index in the product */
    mesh_colkind_t kind;
} vcol_t;

typedef struct rowset {
    size_t n, cap;
    int64_t *t;
    uint64_t *seq; /* log position of each row (buffers only; NULL in scratch sets) */
    bool with_seq;
    void **v;        /* per value column: int64_t[], double[] or uint64_t[] (text off<<32|len) */
    uint8_t **nulls; /* per value column: NULL until a NULL is stored */
    mesh_buf_t text; /* text arena */
} rowset_t;

typedef struct seg {
    size_t end;   /* rows [previous end, end) */
    uint64_t gen; /* flushed in this generation */
} seg_t;

typedef struct series {
    int64_t id;
    bool persisted; /* has its row in s_<p> */
    uint8_t *key;   /* encoded key */
    uint32_t key_len;
    mesh_datum_t *keyvals; /* decoded key column values (text points into key) */
    int64_t t_max;         /* newest time in chunks (INT64_MIN: none) */
    uint64_t flushed_seq;  /* chunks hold every row of this series up to this log position */
    int64_t rows_persisted;
    rowset_t buf;
    size_t n_visible;     /* committed rows */
    seg_t segs[MAX_SEGS]; /* flushed rows kept for older readers */
    int nsegs;
    size_t open_from; /* first row not flushed */
    int64_t open_since_mono;
    bool dirty; /* rows [open_from, n) may be unsorted or hold equal times */
    /* writer's transaction */
    bool touched;
    size_t n_at_begin;
    uint64_t sp_id; /* the record (savepoint) that last touched it */
    size_t n_at_sp;
    int64_t flush_rows_at_sp;
    bool flushing_at_sp;
    bool flushing; /* flushed in the open transaction */
    size_t flush_end;
    int64_t flush_tmax;
    uint64_t flush_seq;
    int64_t flush_rows;
    struct series *next_touched;
} series_t;

struct mesh_ts {
    _Atomic int refs;
    const mesh_product_t *p;
    char name[MESH_NAME_MAX + 1];
    int *key_cols; /* series columns (the key without the time column) */
    size_t nkey;
    int time_col;
    vcol_t *vc;
    size_t nv;
    int *vc_of;  /* product column -> value column index, -1 */
    int *key_of; /* product column -> series key index, -1 */
    pthread_rwlock_t lock;
    series_t **series;
    size_t nseries, capseries;
    uint32_t *table; /* hash of keys: series index + 1, 0 empty */
    size_t tcap;
    int64_t next_id;
    int64_t buffered;
    series_t *touched; /* list of series changed in the writer's open transaction */
    uint64_t sp_id;    /* the record being applied (see mesh__ts_record_begin) */
};

static const mesh_datum_t null_datum = {.type = MESH_V_NULL};

static mesh_colkind_t kind_of(mesh_ltype_t t)
{
    switch (t) {
    case MESH_LT_INTEGER:
    case MESH_LT_BOOLEAN:
    case MESH_LT_TIMESTAMP:
        return MESH_COL_INT;
    case MESH_LT_NUMBER:
        return MESH_COL_REAL;
    default:
        return MESH_COL_TEXT;
    }
}

static void rs_free(rowset_t *r, size_t nv)
{
    free(r->t);
    free(r->seq);
    for (size_t k = 0; r->v && k < nv; k++) {
        free(r->v[k]);
        free(r->nulls[k]);
    }
    free(r->v);
    free(r->nulls);
    mesh_buf_free(&r->text);
    memset(r, 0, sizeof *r);
}

static mesh_status_t rs_init(rowset_t *r, size_t nv, bool with_seq)
{
    memset(r, 0, sizeof *r);
    mesh_buf_init(&r->text, (size_t)UINT32_MAX);
    r->v = calloc(nv ? nv : 1, sizeof *r->v);
    r->nulls = calloc(nv ? nv : 1, sizeof *r->nulls);
    if (!r->v || !r->nulls)
        return MESH_NOMEM;
    r->with_seq = with_seq;
    return MESH_OK;
}

static mesh_status_t rs_reserve(rowset_t *r, size_t nv, size_t need)
{
    if (need <= r->cap)
        return MESH_OK;
    size_t ncap = r->cap ? r->cap : 16;
    while (ncap < need)
        ncap *= 2;
    int64_t *t = realloc(r->t, ncap * sizeof *t);
    if (t == NULL)
        return MESH_NOMEM;
    r->t = t;
    if (r->with_seq) {
        uint64_t *s = realloc(r->seq, ncap * sizeof *s);
        if (s == NULL)
            return MESH_NOMEM;
        r->seq = s;
    }
    for (size_t k = 0; k < nv; k++) {
        void *v = realloc(r->v[k], ncap * 8);
        if (v == NULL)
            return MESH_NOMEM;
        r->v[k] = v;
        if (r->nulls[k]) {
            uint8_t *nu = realloc(r->nulls[k], ncap);
            if (nu == NULL)
                return MESH_NOMEM;
            memset(nu + r->cap, 0, ncap - r->cap);
            r->nulls[k] = nu;
        }
    }
    r->cap = ncap;
    return MESH_OK;
}

static mesh_status_t rs_set_null(rowset_t *r, size_t k, size_t row)
{
    if (r->nulls[k] == NULL) {
        r->nulls[k] = calloc(r->cap ? r->cap : 1, 1);
        if (r->nulls[k] == NULL)
            return MESH_NOMEM;
    }
    r->nulls[k][row] = 1;
    return MESH_OK;
}

static bool rs_is_null(const rowset_t *r, size_t k, size_t row)
{
    return r->nulls[k] && r->nulls[k][row];
}

/* Stores text for value column k of row; reuses the previous row's copy when equal (a tag
 * that repeats costs nothing). */
static mesh_status_t rs_set_text(rowset_t *r, size_t k, size_t row, const char *s, uint32_t n)
{
    uint64_t *v = r->v[k];
    if (row > 0 && !rs_is_null(r, k, row - 1)) {
        uint64_t pv = v[row - 1];
        uint32_t po = (uint32_t)(pv >> 32), pl = (uint32_t)pv;
        if (pl == n && (n == 0 || memcmp(r->text.data + po, s, n) == 0)) {
            v[row] = pv;
            return MESH_OK;
        }
    }
    uint64_t off = r->text.len;
    if (off > UINT32_MAX - n)
        return MESH_TOO_LARGE;
    mesh_status_t st = mesh_buf_add(&r->text, s, n);
    if (st != MESH_OK)
        return st;
    v[row] = off << 32 | n;
    return MESH_OK;
}

static void rs_text(const rowset_t *r, size_t k, size_t row, const char **s, size_t *n)
{
    uint64_t v = ((const uint64_t *)r->v[k])[row];
    *s = r->text.data ? r->text.data + (v >> 32) : "";
    *n = (uint32_t)v;
}

/* Copies row i of src to the end of dst (same columns). */
static mesh_status_t rs_copy_row(rowset_t *dst, const rowset_t *src, size_t i, const vcol_t *vc,
                                 size_t nv)
{
    mesh_status_t st = rs_reserve(dst, nv, dst->n + 1);
    if (st != MESH_OK)
        return st;
    size_t row = dst->n;
    dst->t[row] = src->t[i];
    if (dst->seq && src->seq)
        dst->seq[row] = src->seq[i];
    for (size_t k = 0; k < nv && st == MESH_OK; k++) {
        if (dst->nulls[k])
            dst->nulls[k][row] = 0;
        if (rs_is_null(src, k, i)) {
            st = rs_set_null(dst, k, row);
        } else if (vc[k].kind == MESH_COL_TEXT) {
            const char *s;
            size_t n;
            rs_text(src, k, i, &s, &n);
            st = rs_set_text(dst, k, row, s, (uint32_t)n);
        } else {
            ((int64_t *)dst->v[k])[row] = ((const int64_t *)src->v[k])[i];
        }
    }
    if (st == MESH_OK)
        dst->n++;
    return st;
}

/* Sorts rows [from, n) by time (stable) and merges rows of equal time: a later row's values
 * replace an earlier row's, its NULLs do not (the merge rule of a primary key). */
static mesh_status_t rs_sort_merge(rowset_t *r, size_t from, const vcol_t *vc, size_t nv)
{
    size_t m = r->n - from;
    if (m < 2)
        return MESH_OK;
    bool sorted = true, dup = false;
    for (size_t i = from + 1; i < r->n; i++) {
        if (r->t[i] < r->t[i - 1])
            sorted = false;
        else if (r->t[i] == r->t[i - 1])
            dup = true;
    }
    if (sorted && !dup)
        return MESH_OK;
    /* order = a stable permutation of rows by time (merge sort on indexes) */
    size_t *ord = malloc(m * sizeof *ord), *tmp = malloc(m * sizeof *tmp);
    if (!ord || !tmp) {
        free(ord);
        free(tmp);
        return MESH_NOMEM;
    }
    for (size_t i = 0; i < m; i++)
        ord[i] = from + i;
    for (size_t w = 1; w < m; w *= 2) {
        for (size_t lo = 0; lo < m; lo += 2 * w) {
            size_t mid = lo + w < m ? lo + w : m, hi = lo + 2 * w < m ? lo + 2 * w : m;
            size_t a = lo, b = mid, o = lo;
            while (a < mid && b < hi)
                tmp[o++] = r->t[ord[b]] < r->t[ord[a]] ? ord[b++] : ord[a++];
            while (a < mid)
                tmp[o++] = ord[a++];
            while (b < hi)
                tmp[o++] = ord[b++];
        }
        size_t *sw = ord;
        ord = tmp;
        tmp = sw;
    }
    /* rebuild the range in that order into a scratch set, merging equal times */
    rowset_t out;
    mesh_status_t st = rs_init(&out, nv, r->with_seq);
    if (st == MESH_OK)
        st = rs_reserve(&out, nv, m);
    for (size_t i = 0; i < m && st == MESH_OK; i++) {
        size_t src = ord[i];
        if (out.n > 0 && out.t[out.n - 1] == r->t[src]) {
            /* the merged row keeps the earliest position: a reader whose snapshot saw the
             * first write still sees the row (with the newer values) */
            size_t row = out.n - 1;
            for (size_t k = 0; k < nv && st == MESH_OK; k++) {
                if (rs_is_null(r, k, src))
                    continue;
                if (out.nulls[k])
                    out.nulls[k][row] = 0;
                if (vc[k].kind == MESH_COL_TEXT) {
                    const char *s;
                    size_t n;
                    rs_text(r, k, src, &s, &n);
                    st = rs_set_text(&out, k, row, s, (uint32_t)n);
                } else {
                    ((int64_t *)out.v[k])[row] = ((const int64_t *)r->v[k])[src];
                }
            }
            continue;
        }
        st = rs_copy_row(&out, r, src, vc, nv);
    }
    free(ord);
    free(tmp);
    if (st != MESH_OK) {
        rs_free(&out, nv);
        return st;
    }
    /* copy back into [from, ...) */
    r->n = from;
    for (size_t i = 0; i < out.n && st == MESH_OK; i++)
        st = rs_copy_row(r, &out, i, vc, nv);
    rs_free(&out, nv);
    return st;
}

/* Appends rows of a decoded chunk (only those in [lo, hi]) to dst. */
static mesh_status_t rs_add_chunk(rowset_t *dst, const mesh_chunk_t *c, const mesh_ts_t *ts,
                                  int64_t lo, int64_t hi)
{
    const mesh_product_t *p = ts->p;
    int tcol = mesh_chunk_col(c, p->cols[ts->time_col].name);
    if (tcol < 0 || c->cols[tcol].kind != MESH_COL_TIME)
        return MESH_CORRUPT;
    int map[MESH_CONTRACT_MAX_COLUMNS];
    for (size_t k = 0; k < ts->nv; k++) {
        map[k] = mesh_chunk_col(c, p->cols[ts->vc[k].col].name);
        if (map[k] >= 0 &&
            (c->cols[map[k]].kind == MESH_COL_TEXT) != (ts->vc[k].kind == MESH_COL_TEXT))
            map[k] = -1; /* the column changed kind: its old values are not shown */
    }
    /* room for every row at once: growing row by row reallocates each column ~10 times */
    mesh_status_t st = rs_reserve(dst, ts->nv, dst->n + c->nrows);
    for (size_t i = 0; i < c->nrows && st == MESH_OK; i++) {
        int64_t t = c->cols[tcol].i[i];
        if (t < lo || t > hi)
            continue;
        if ((st = rs_reserve(dst, ts->nv, dst->n + 1)) != MESH_OK)
            break;
        size_t row = dst->n;
        dst->t[row] = t;
        if (dst->seq)
            dst->seq[row] = 0;
        for (size_t k = 0; k < ts->nv && st == MESH_OK; k++) {
            if (dst->nulls[k])
                dst->nulls[k][row] = 0;
            const mesh_chunk_col_t *cc = map[k] >= 0 ? &c->cols[map[k]] : NULL;
            if (cc == NULL || (cc->nulls && cc->nulls[i])) {
                st = rs_set_null(dst, k, row);
            } else if (ts->vc[k].kind == MESH_COL_TEXT) {
                uint32_t d = cc->sidx[i];
                st = rs_set_text(dst, k, row, cc->dict[d], cc->dlen[d]);
            } else if (ts->vc[k].kind == MESH_COL_REAL) {
                ((double *)dst->v[k])[row] =
                    cc->kind == MESH_COL_REAL ? cc->d[i] : (double)cc->i[i];
            } else {
                ((int64_t *)dst->v[k])[row] =
                    cc->kind == MESH_COL_REAL ? (int64_t)cc->d[i] : cc->i[i];
            }
        }
        if (st == MESH_OK)
            dst->n++;
    }
    return st;
}

/* Encodes rows [from, to) (sorted, distinct times) as one chunk into out. */
static mesh_status_t rs_encode(const rowset_t *r, size_t from, size_t to, const mesh_ts_t *ts,
                               mesh_buf_t *out)
{
    size_t n = to - from, nv = ts->nv;
    mesh_colvec_t *cols = calloc(nv + 1, sizeof *cols);
    const char **sp = NULL;
    uint32_t *sl = NULL;
    bool any_text = false;
    for (size_t k = 0; k < nv; k++)
        any_text |= ts->vc[k].kind == MESH_COL_TEXT;
    if (any_text) {
        sp = malloc(nv * n * sizeof *sp);
        sl = malloc(nv * n * sizeof *sl);
    }
    if (cols == NULL || (any_text && (!sp || !sl))) {
        free(cols);
        free(sp);
        free(sl);
        return MESH_NOMEM;
    }
    cols[0].name = ts->p->cols[ts->time_col].name;
    cols[0].kind = MESH_COL_TIME;
    cols[0].i = r->t + from;
    for (size_t k = 0; k < nv; k++) {
        mesh_colvec_t *cv = &cols[k + 1];
        cv->name = ts->p->cols[ts->vc[k].col].name;
        cv->kind = ts->vc[k].kind;
        cv->nulls = r->nulls[k] ? r->nulls[k] + from : NULL;
        if (cv->kind == MESH_COL_REAL) {
            cv->d = (const double *)r->v[k] + from;
        } else if (cv->kind == MESH_COL_INT) {
            cv->i = (const int64_t *)r->v[k] + from;
        } else {
            for (size_t i = 0; i < n; i++) {
                size_t len;
                if (rs_is_null(r, k, from + i)) {
                    sp[k * n + i] = "";
                    sl[k * n + i] = 0;
                    continue;
                }
                rs_text(r, k, from + i, &sp[k * n + i], &len);
                sl[k * n + i] = (uint32_t)len;
            }
            cv->s = sp + k * n;
            cv->slen = sl + k * n;
        }
    }
    mesh_status_t st = mesh_chunk_encode(cols, nv + 1, n, out);
    free(cols);
    free(sp);
    free(sl);
    return st;
}

/* ---- series keys ---- */

static mesh_status_t encode_key(const mesh_ts_t *ts, const mesh_batch_t *b, const mesh_value_t *row,
                                mesh_buf_t *out)
{
    mesh_buf_reset(out);
    mesh_status_t st = MESH_OK;
    for (size_t k = 0; k < ts->nkey && st == MESH_OK; k++) {
        const mesh_value_t *v = &row[ts->key_cols[k]];
        mesh_buf_addc(out, (char)v->type);
        if (v->type == MESH_V_INT || v->type == MESH_V_REAL) {
            uint64_t u;
            memcpy(&u, &v->u, 8);
            st = mesh_buf_add_u64(out, u);
        } else if (v->type == MESH_V_TEXT) {
            mesh_buf_add_uvarint(out, v->u.s.len);
            st = mesh_buf_add(out, mesh_batch_text(b, v), v->u.s.len);
        }
    }
    return st;
}

/* Decodes a key into datums (text pointing into the key). */
static mesh_status_t decode_key(const mesh_ts_t *ts, series_t *s)
{
    s->keyvals = calloc(ts->nkey ? ts->nkey : 1, sizeof *s->keyvals);
    if (s->keyvals == NULL)
        return MESH_NOMEM;
    mesh_cursor_t c;
    mesh_cursor_init(&c, s->key, s->key_len);
    for (size_t k = 0; k < ts->nkey; k++) {
        mesh_datum_t *d = &s->keyvals[k];
        d->type = mesh_cursor_u8(&c);
        if (d->type == MESH_V_INT) {
            d->i = (int64_t)mesh_cursor_u64(&c);
        } else if (d->type == MESH_V_REAL) {
            uint64_t u = mesh_cursor_u64(&c);
            memcpy(&d->d, &u, 8);
        } else if (d->type == MESH_V_TEXT) {
            d->n = (size_t)mesh_cursor_uvarint(&c);
            d->s = (const char *)mesh_cursor_bytes(&c, d->n);
        }
        if (c.bad)
            return MESH_CORRUPT;
    }
    return MESH_OK;
}

static uint64_t key_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static series_t *find_series(const mesh_ts_t *ts, const uint8_t *key, size_t n)
{
    if (ts->tcap == 0)
        return NULL;
    size_t slot = (size_t)key_hash(key, n) & (ts->tcap - 1);
    while (ts->table[slot]) {
        series_t *s = ts->series[ts->table[slot] - 1];
        if (s->key_len == n && memcmp(s->key, key, n) == 0)
            return s;
        slot = (slot + 1) & (ts->tcap - 1);
    }
    return NULL;
}

static mesh_status_t table_insert(mesh_ts_t *ts, size_t idx)
{
    if (2 * (ts->nseries + 1) > ts->tcap) {
        size_t ncap = ts->tcap ? ts->tcap * 2 : 64;
        uint32_t *nt = calloc(ncap, sizeof *nt);
        if (nt == NULL)
            return MESH_NOMEM;
        for (size_t i = 0; i < ts->nseries; i++) {
            if (i == idx)
                continue;
            series_t *s = ts->series[i];
            size_t slot = (size_t)key_hash(s->key, s->key_len) & (ncap - 1);
            while (nt[slot])
                slot = (slot + 1) & (ncap - 1);
            nt[slot] = (uint32_t)i + 1;
        }
        free(ts->table);
        ts->table = nt;
        ts->tcap = ncap;
    }
    series_t *s = ts->series[idx];
    size_t slot = (size_t)key_hash(s->key, s->key_len) & (ts->tcap - 1);
    while (ts->table[slot])
        slot = (slot + 1) & (ts->tcap - 1);
    ts->table[slot] = (uint32_t)idx + 1;
    return MESH_OK;
}

static void series_free(series_t *s, size_t nv)
{
    if (s == NULL)
        return;
    free(s->key);
    free(s->keyvals);
    rs_free(&s->buf, nv);
    free(s);
}

/* Adds a series (key copied). */
static mesh_status_t add_series(mesh_ts_t *ts, const uint8_t *key, size_t n, int64_t id,
                                series_t **out)
{
    series_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return MESH_NOMEM;
    s->id = id;
    s->t_max = INT64_MIN;
    s->key = malloc(n ? n : 1);
    mesh_status_t st = s->key ? rs_init(&s->buf, ts->nv, true) : MESH_NOMEM;
    if (st == MESH_OK) {
        memcpy(s->key, key, n);
        s->key_len = (uint32_t)n;
        st = decode_key(ts, s);
    }
    if (st == MESH_OK && ts->nseries == ts->capseries) {
        size_t ncap = ts->capseries ? ts->capseries * 2 : 64;
        series_t **ns = realloc(ts->series, ncap * sizeof *ns);
        if (ns == NULL)
            st = MESH_NOMEM;
        else {
            ts->series = ns;
            ts->capseries = ncap;
        }
    }
    if (st != MESH_OK) {
        series_free(s, ts->nv);
        return st;
    }
    ts->series[ts->nseries] = s;
    if ((st = table_insert(ts, ts->nseries)) != MESH_OK) {
        series_free(s, ts->nv);
        return st;
    }
    ts->nseries++;
    if (id >= ts->next_id)
        ts->next_id = id + 1;
    *out = s;
    return MESH_OK;
}

/* ---- tables ---- */

static void ident(mesh_buf_t *b, const char *prefix, const char *name, const char *suffix)
{
    mesh_buf_printf(b, "\"%s%s%s\"", prefix, name, suffix ? suffix : "");
}

static const char *sql_type(mesh_ltype_t t)
{
    switch (kind_of(t)) {
    case MESH_COL_INT:
        return "INTEGER";
    case MESH_COL_REAL:
        return "REAL";
    default:
        return "TEXT";
    }
}

static mesh_status_t exec(sqlite3 *db, const char *sql, mesh_err_t *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = sqlite3_errcode(db);
        mesh_status_t st = rc == SQLITE_FULL ? MESH_NOSPACE : MESH_IO;
        mesh_err_set(err, st, "ts: %s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return st;
    }
    return MESH_OK;
}

bool mesh__ts_eligible(const mesh_product_t *p)
{
    if (p->time_col < 0 || p->nkey == 0 || p->key_cols[p->nkey - 1] != p->time_col)
        return false;
    if (p->derive != NULL)
        return false; /* meshd rewrites its rows in place (store/cagg.c): one row each */
    for (size_t i = 0; i < p->ncols; i++)
        if (p->cols[i].unique && !(p->nkey == 1 && p->key_cols[0] == (int)i))
            return false; /* a unique constraint needs an index over rows */
    return true;
}

mesh_status_t mesh__ts_create(sqlite3 *db, const mesh_product_t *p, mesh_err_t *err)
{
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 20);
    mesh_buf_adds(&b, "CREATE TABLE IF NOT EXISTS ");
    ident(&b, "s_", p->name, NULL);
    mesh_buf_adds(&b, "(id INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE, t_max INTEGER NOT NULL,"
                      " flushed_seq INTEGER NOT NULL, rows INTEGER NOT NULL");
    for (size_t k = 0; k + 1 < p->nkey; k++) {
        const mesh_column_t *c = &p->cols[p->key_cols[k]];
        mesh_buf_printf(&b, ", \"%s\" %s", c->name, sql_type(c->type));
    }
    mesh_buf_adds(&b, ") STRICT; CREATE TABLE IF NOT EXISTS ");
    ident(&b, "k_", p->name, NULL);
    /* a rowid table: in an index b-tree (WITHOUT ROWID) every key comparison with a cell
     * that overflows copies the whole chunk, so a seek would read dozens of chunks */
    mesh_buf_adds(&b, "(id INTEGER PRIMARY KEY, series INTEGER NOT NULL, t_min INTEGER NOT NULL,"
                      " t_max INTEGER NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL) STRICT;"
                      " CREATE UNIQUE INDEX IF NOT EXISTS ");
    ident(&b, "k_", p->name, "__st");
    mesh_buf_adds(&b, " ON ");
    ident(&b, "k_", p->name, NULL);
    mesh_buf_adds(&b, "(series, t_min); CREATE INDEX IF NOT EXISTS ");
    ident(&b, "k_", p->name, "__tmax");
    mesh_buf_adds(&b, " ON ");
    ident(&b, "k_", p->name, NULL);
    mesh_buf_adds(&b, "(t_max);");
    mesh_status_t st = b.data ? exec(db, b.data, err) : MESH_NOMEM;
    mesh_buf_free(&b);
    return st;
}

mesh_status_t mesh__ts_drop(sqlite3 *db, const char *product, mesh_err_t *err)
{
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 16);
    mesh_buf_adds(&b, "DROP TABLE IF EXISTS ");
    ident(&b, "s_", product, NULL);
    mesh_buf_adds(&b, "; DROP TABLE IF EXISTS ");
    ident(&b, "k_", product, NULL);
    mesh_buf_printf(&b, "; DELETE FROM _meta WHERE key = 'ts_clean:%s';", product);
    mesh_status_t st = b.data ? exec(db, b.data, err) : MESH_NOMEM;
    mesh_buf_free(&b);
    return st;
}

/* ---- open / close ---- */

mesh_ts_t *mesh__ts_ref(mesh_ts_t *t)
{
    atomic_fetch_add(&t->refs, 1);
    return t;
}

void mesh__ts_unref(mesh_ts_t *t)
{
    if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    for (size_t i = 0; i < t->nseries; i++)
        series_free(t->series[i], t->nv);
    free(t->series);
    free(t->table);
    free(t->key_cols);
    free(t->vc);
    free(t->vc_of);
    free(t->key_of);
    pthread_rwlock_destroy(&t->lock);
    free(t);
}

const mesh_product_t *mesh__ts_product(const mesh_ts_t *t)
{
    return t->p;
}

/* A ts object for p with its columns laid out and no series. */
static mesh_ts_t *ts_new(const mesh_product_t *p)
{
    mesh_ts_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->refs = 1;
    t->p = p;
    snprintf(t->name, sizeof t->name, "%s", p->name);
    pthread_rwlock_init(&t->lock, NULL);
    t->time_col = p->time_col;
    t->nkey = p->nkey - 1;
    t->key_cols = calloc(p->nkey, sizeof *t->key_cols);
    t->vc = calloc(p->ncols, sizeof *t->vc);
    t->vc_of = calloc(p->ncols, sizeof *t->vc_of);
    t->key_of = calloc(p->ncols, sizeof *t->key_of);
    if (!t->key_cols || !t->vc || !t->vc_of || !t->key_of) {
        mesh__ts_unref(t);
        return NULL;
    }
    for (size_t i = 0; i < p->ncols; i++)
        t->key_of[i] = -1;
    for (size_t k = 0; k < t->nkey; k++) {
        t->key_cols[k] = p->key_cols[k];
        t->key_of[p->key_cols[k]] = (int)k;
    }
    for (size_t i = 0; i < p->ncols; i++) {
        t->vc_of[i] = -1;
        if ((int)i == p->time_col || p->cols[i].primary_key)
            continue;
        t->vc_of[i] = (int)t->nv;
        t->vc[t->nv].col = (int)i;
        t->vc[t->nv].kind = kind_of(p->cols[i].type);
        t->nv++;
    }
    return t;
}

mesh_status_t mesh__ts_open(sqlite3 *db, const mesh_product_t *p, mesh_ts_t **out, mesh_err_t *err)
{
    mesh_ts_t *t = ts_new(p);
    if (t == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    mesh_status_t st = MESH_OK;
    /* the series known on disk */
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT id, key, t_max, flushed_seq, rows FROM \"s_%s\" ORDER BY id",
             p->name);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) {
        mesh_err_set(err, MESH_IO, "ts %s: %s", p->name, mesh_crypt_errmsg(db));
        mesh__ts_unref(t);
        return MESH_IO;
    }
    int rc = SQLITE_ROW;
    while (st == MESH_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        series_t *s;
        st = add_series(t, sqlite3_column_blob(q, 1), (size_t)sqlite3_column_bytes(q, 1),
                        sqlite3_column_int64(q, 0), &s);
        if (st == MESH_OK) {
            s->persisted = true;
            s->t_max = sqlite3_column_int64(q, 2);
            s->flushed_seq = (uint64_t)sqlite3_column_int64(q, 3);
            s->rows_persisted = sqlite3_column_int64(q, 4);
        }
    }
    if (st == MESH_OK && rc != SQLITE_DONE) {
        /* a read error is not the end of the list: series would silently go missing */
        int xrc = sqlite3_extended_errcode(db);
        st = mesh_err_set(err,
                          (xrc & 0xff) == SQLITE_CORRUPT || xrc == SQLITE_IOERR_DATA ? MESH_CORRUPT
                                                                                     : MESH_IO,
                          "ts %s: cannot load its series: %s", p->name, mesh_crypt_errmsg(db));
    } else if (st != MESH_OK) {
        mesh_err_set(err, st, "ts %s: cannot load its series", p->name);
    }
    sqlite3_finalize(q);
    if (st != MESH_OK) {
        mesh__ts_unref(t);
        return st;
    }
    *out = t;
    return MESH_OK;
}

void mesh__ts_counts(mesh_ts_t *t, int64_t *buffered, int64_t *series)
{
    pthread_rwlock_rdlock(&t->lock);
    *buffered = t->buffered;
    *series = (int64_t)t->nseries;
    pthread_rwlock_unlock(&t->lock);
}

/* ---- writing ---- */

static void touch(mesh_ts_t *t, series_t *s)
{
    if (!s->touched) {
        s->touched = true;
        s->n_at_begin = s->buf.n;
        s->next_touched = t->touched;
        t->touched = s;
    }
    if (s->sp_id != t->sp_id) {
        s->sp_id = t->sp_id;
        s->n_at_sp = s->buf.n;
        s->flush_rows_at_sp = s->flush_rows;
        s->flushing_at_sp = s->flushing;
    }
}

void mesh__ts_record_begin(mesh_ts_t *t)
{
    t->sp_id++;
}

void mesh__ts_record_undo(mesh_ts_t *t)
{
    pthread_rwlock_wrlock(&t->lock);
    for (series_t *s = t->touched; s; s = s->next_touched) {
        if (s->sp_id != t->sp_id)
            continue;
        if (s->buf.n > s->n_at_sp) {
            t->buffered -= (int64_t)(s->buf.n - s->n_at_sp);
            s->buf.n = s->n_at_sp;
        }
        s->flush_rows = s->flush_rows_at_sp;
        s->flushing = s->flushing_at_sp;
    }
    pthread_rwlock_unlock(&t->lock);
}

/* Puts value v of batch b into value column k of row `row` of a rowset. */
static mesh_status_t put_value(rowset_t *r, const vcol_t *vc, size_t k, size_t row,
                               const mesh_batch_t *b, const mesh_value_t *v)
{
    if (r->nulls[k])
        r->nulls[k][row] = 0;
    switch (v->type) {
    case MESH_V_NULL:
        return rs_set_null(r, k, row);
    case MESH_V_TEXT:
        if (vc->kind != MESH_COL_TEXT)
            return rs_set_null(r, k, row);
        return rs_set_text(r, k, row, mesh_batch_text(b, v), v->u.s.len);
    case MESH_V_REAL:
        if (vc->kind == MESH_COL_REAL)
            ((double *)r->v[k])[row] = v->u.d;
        else if (vc->kind == MESH_COL_INT)
            ((int64_t *)r->v[k])[row] = (int64_t)v->u.d;
        else
            return rs_set_null(r, k, row);
        return MESH_OK;
    default:
        if (vc->kind == MESH_COL_INT)
            ((int64_t *)r->v[k])[row] = v->u.i;
        else if (vc->kind == MESH_COL_REAL)
            ((double *)r->v[k])[row] = (double)v->u.i;
        else
            return rs_set_null(r, k, row);
        return MESH_OK;
    }
}

typedef struct chunkrow {
    int64_t t_min, t_max, n;
    void *data;
    int len;
} chunkrow_t;

/* Writes rows [from, to) of r as chunks of series s (sorted, distinct, no overlap with other
 * chunks), splitting at MESH_TS_CHUNK_MAX. */
static mesh_status_t write_chunks(mesh_ts_t *t, sqlite3 *db, series_t *s, const rowset_t *r,
                                  size_t from, size_t to, mesh_err_t *err)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO \"k_%s\"(series, t_min, t_max, n, data) VALUES (?,?,?,?,?)", t->name);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &q, NULL) != SQLITE_OK)
        return mesh_err_set(err, MESH_IO, "ts %s: %s", t->name, mesh_crypt_errmsg(db));
    mesh_buf_t enc;
    mesh_buf_init(&enc, MESH_BUF_UNLIMITED);
    mesh_status_t st = MESH_OK;
    size_t total = to - from;
    size_t parts = (total + MESH_TS_CHUNK_MAX - 1) / MESH_TS_CHUNK_MAX;
    for (size_t k = 0; k < parts && st == MESH_OK; k++) {
        size_t a = from + total * k / parts, z = from + total * (k + 1) / parts;
        mesh_buf_reset(&enc);
        if ((st = rs_encode(r, a, z, t, &enc)) != MESH_OK) {
            mesh_err_set(err, st, "ts %s: cannot encode a chunk", t->name);
            break;
        }
        sqlite3_bind_int64(q, 1, s->id);
        sqlite3_bind_int64(q, 2, r->t[a]);
        sqlite3_bind_int64(q, 3, r->t[z - 1]);
        sqlite3_bind_int64(q, 4, (sqlite3_int64)(z - a));
        sqlite3_bind_blob(q, 5, enc.data, (int)enc.len, SQLITE_STATIC);
        int rc = sqlite3_step(q);
        sqlite3_reset(q);
        if (rc != SQLITE_DONE)
            st = mesh_err_set(err, rc == SQLITE_FULL ? MESH_NOSPACE : MESH_IO, "ts %s: %s", t->name,
                              mesh_crypt_errmsg(db));
    }
    mesh_buf_free(&enc);
    sqlite3_finalize(q);
    return st;
}

/* Upserts the series row. */
static mesh_status_t put_series_row(mesh_ts_t *t, sqlite3 *db, series_t *s, int64_t t_max,
                                    uint64_t flushed_seq, int64_t rows, mesh_err_t *err)
{
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 16);
    mesh_buf_printf(&b, "INSERT INTO \"s_%s\"(id, key, t_max, flushed_seq, rows", t->name);
    for (size_t k = 0; k < t->nkey; k++)
        mesh_buf_printf(&b, ", \"%s\"", t->p->cols[t->key_cols[k]].name);
    mesh_buf_adds(&b, ") VALUES (?,?,?,?,?");
    for (size_t k = 0; k < t->nkey; k++)
        mesh_buf_adds(&b, ",?");
    mesh_buf_adds(&b, ") ON CONFLICT(id) DO UPDATE SET t_max = excluded.t_max,"
                      " flushed_seq = excluded.flushed_seq, rows = excluded.rows");
    sqlite3_stmt *q = NULL;
    mesh_status_t st = MESH_OK;
    if (b.data == NULL ||
        sqlite3_prepare_v3(db, b.data, -1, SQLITE_PREPARE_PERSISTENT, &q, NULL) != SQLITE_OK) {
        st = mesh_err_set(err, MESH_IO, "ts %s: %s", t->name, mesh_crypt_errmsg(db));
    } else {
        sqlite3_bind_int64(q, 1, s->id);
        sqlite3_bind_blob(q, 2, s->key, (int)s->key_len, SQLITE_STATIC);
        sqlite3_bind_int64(q, 3, t_max);
        sqlite3_bind_int64(q, 4, (sqlite3_int64)flushed_seq);
        sqlite3_bind_int64(q, 5, rows);
        for (size_t k = 0; k < t->nkey; k++) {
            const mesh_datum_t *d = &s->keyvals[k];
            if (d->type == MESH_V_INT)
                sqlite3_bind_int64(q, 6 + (int)k, d->i);
            else if (d->type == MESH_V_REAL)
                sqlite3_bind_double(q, 6 + (int)k, d->d);
            else if (d->type == MESH_V_TEXT)
                sqlite3_bind_text(q, 6 + (int)k, d->s, (int)d->n, SQLITE_STATIC);
        }
        int rc = sqlite3_step(q);
        if (rc != SQLITE_DONE)
            st = mesh_err_set(err, rc == SQLITE_FULL ? MESH_NOSPACE : MESH_IO, "ts %s: %s", t->name,
                              mesh_crypt_errmsg(db));
    }
    sqlite3_finalize(q);
    mesh_buf_free(&b);
    return st;
}

/*
 * Merges late rows (older than what series s has in chunks) into its chunks: the chunk that
 * covers each row's time (or the nearest) is decoded, merged and written again. Runs inside
 * the writer's transaction; chunks stay sorted and never overlap.
 */
static mesh_status_t merge_late(mesh_ts_t *t, sqlite3 *db, series_t *s, rowset_t *late,
                                int64_t *added, mesh_err_t *err)
{
    mesh_status_t st = rs_sort_merge(late, 0, t->vc, t->nv);
    if (st != MESH_OK)
        return mesh_err_set(err, st, "out of memory");
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT t_min, t_max, n, data FROM \"k_%s\" WHERE series = ?1 AND t_min <= ?2"
             " ORDER BY t_min DESC LIMIT 1",
             t->name);
    sqlite3_stmt *q_at = NULL, *q_first = NULL, *q_del = NULL;
    char sql2[256], sql3[256];
    snprintf(sql2, sizeof sql2,
             "SELECT t_min, t_max, n, data FROM \"k_%s\" WHERE series = ?1 ORDER BY t_min LIMIT 1",
             t->name);
    snprintf(sql3, sizeof sql3, "DELETE FROM \"k_%s\" WHERE series = ?1 AND t_min = ?2", t->name);
    if (sqlite3_prepare_v2(db, sql, -1, &q_at, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql2, -1, &q_first, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql3, -1, &q_del, NULL) != SQLITE_OK) {
        st = mesh_err_set(err, MESH_IO, "ts %s: %s", t->name, mesh_crypt_errmsg(db));
        goto done;
    }
    size_t i = 0;
    while (i < late->n && st == MESH_OK) {
        /* the chunk to merge into: the last one starting at or before the row, else the first */
        sqlite3_stmt *q = q_at;
        sqlite3_bind_int64(q_at, 1, s->id);
        sqlite3_bind_int64(q_at, 2, late->t[i]);
        int rc = sqlite3_step(q_at);
        if (rc != SQLITE_ROW) {
            sqlite3_reset(q_at);
            q = q_first;
            sqlite3_bind_int64(q_first, 1, s->id);
            rc = sqlite3_step(q_first);
        }
        if (rc != SQLITE_ROW) {
            /* retention or erasure emptied the series' chunks (its t_max stays as it was, an
             * upper bound): the late rows become its only chunk */
            sqlite3_reset(q);
            st = write_chunks(t, db, s, late, i, late->n, err);
            if (st == MESH_OK) {
                *added += (int64_t)(late->n - i);
                s->flush_rows += (int64_t)(late->n - i);
            }
            break;
        }
        int64_t c_min = sqlite3_column_int64(q, 0);
        int64_t old_n = sqlite3_column_int64(q, 2);
        /* rows of `late` that belong to this chunk: up to the next chunk's start */
        mesh_chunk_t ch;
        st = mesh_chunk_decode(sqlite3_column_blob(q, 3), (size_t)sqlite3_column_bytes(q, 3), &ch,
                               err);
        sqlite3_reset(q);
        if (st != MESH_OK)
            break;
        rowset_t m;
        if ((st = rs_init(&m, t->nv, false)) == MESH_OK)
            st = rs_add_chunk(&m, &ch, t, INT64_MIN, INT64_MAX);
        mesh_chunk_free(&ch);
        /* the next chunk after this one bounds which late rows go here */
        int64_t next_min = INT64_MAX;
        {
            char sqln[256];
            snprintf(sqln, sizeof sqln,
                     "SELECT min(t_min) FROM \"k_%s\" WHERE series = ?1 AND t_min > ?2", t->name);
            sqlite3_stmt *qn;
            if (sqlite3_prepare_v2(db, sqln, -1, &qn, NULL) == SQLITE_OK) {
                sqlite3_bind_int64(qn, 1, s->id);
                sqlite3_bind_int64(qn, 2, c_min);
                if (sqlite3_step(qn) == SQLITE_ROW && sqlite3_column_type(qn, 0) != SQLITE_NULL)
                    next_min = sqlite3_column_int64(qn, 0);
                sqlite3_finalize(qn);
            }
        }
        size_t nl = 0;
        while (i + nl < late->n && late->t[i + nl] < next_min)
            nl++;
        if (st == MESH_OK)
            st = rs_reserve(&m, t->nv, m.n + nl);
        while (st == MESH_OK && i < late->n && late->t[i] < next_min)
            st = rs_copy_row(&m, late, i++, t->vc, t->nv);
        if (st == MESH_OK)
            st = rs_sort_merge(&m, 0, t->vc, t->nv);
        if (st == MESH_OK) {
            sqlite3_bind_int64(q_del, 1, s->id);
            sqlite3_bind_int64(q_del, 2, c_min);
            rc = sqlite3_step(q_del);
            sqlite3_reset(q_del);
            if (rc != SQLITE_DONE)
                st = mesh_err_set(err, MESH_IO, "ts %s: %s", t->name, mesh_crypt_errmsg(db));
        }
        if (st == MESH_OK)
            st = write_chunks(t, db, s, &m, 0, m.n, err);
        if (st == MESH_OK) {
            *added += (int64_t)m.n - old_n;
            s->flush_rows += (int64_t)m.n - old_n;
        }
        rs_free(&m, t->nv);
    }
done:
    sqlite3_finalize(q_at);
    sqlite3_finalize(q_first);
    sqlite3_finalize(q_del);
    return st;
}

mesh_status_t mesh__ts_apply(mesh_ts_t *t, sqlite3 *db, uint64_t seq, const mesh_batch_t *b,
                             const mesh_part_t *part, bool replay, uint64_t applied_seq,
                             int64_t *added, mesh_err_t *err)
{
    const mesh_product_t *bp = part->product;
    /* the batch's columns map to this product's by name (a replayed record may predate the
     * current definition) */
    int map[MESH_CONTRACT_MAX_COLUMNS];
    int bkey[MESH_CONTRACT_MAX_COLUMNS];
    int btime = -1;
    const mesh_product_t *p = t->p;
    for (size_t i = 0; i < p->ncols; i++)
        map[i] = bp == p ? (int)i : mesh_product_col(bp, p->cols[i].name, strlen(p->cols[i].name));
    for (size_t k = 0; k < t->nkey; k++) {
        bkey[k] = map[t->key_cols[k]];
        if (bkey[k] < 0)
            return mesh_err_set(err, MESH_CONFLICT, "ts %s: a batch without series column %s",
                                p->name, p->cols[t->key_cols[k]].name);
    }
    btime = map[t->time_col];
    if (btime < 0)
        return mesh_err_set(err, MESH_CONFLICT, "ts %s: a batch without its time column", p->name);
    mesh_buf_t key;
    mesh_buf_init(&key, 1 << 20);
    mesh_status_t st = MESH_OK;
    *added = 0;
    /* late rows per series, merged into chunks after the buffer appends */
    series_t **late_series = NULL;
    rowset_t *late_rows = NULL;
    size_t nlate = 0, caplate = 0;
    mesh_value_t rowbuf[MESH_CONTRACT_MAX_COLUMNS];
    pthread_rwlock_wrlock(&t->lock);
    for (size_t r = 0; r < part->nrows && st == MESH_OK; r++) {
        const mesh_value_t *src = part->vals + r * part->ncols;
        const mesh_value_t *row = src;
        if (bp != p) {
            for (size_t i = 0; i < p->ncols; i++) {
                if (map[i] >= 0)
                    rowbuf[i] = src[map[i]];
                else
                    rowbuf[i].type = MESH_V_NULL;
            }
            row = rowbuf;
        }
        if ((st = encode_key(t, b, row, &key)) != MESH_OK)
            break;
        /* a product keyed by time alone has one series, with an empty key */
        const uint8_t *kp = key.data ? (const uint8_t *)key.data : (const uint8_t *)"";
        series_t *s = find_series(t, kp, key.len);
        if (s == NULL && (st = add_series(t, kp, key.len, t->next_id, &s)) != MESH_OK)
            break;
        if (replay && seq <= s->flushed_seq)
            continue; /* already in its chunks */
        int64_t time = row[t->time_col].u.i;
        /* late means at or before what the chunks will hold when this transaction commits:
         * a flush at the start of the group already wrote the buffer out, so its newest time
         * counts. (Replay takes a row at or before the committed t_max of an applied record
         * as merged; a row kept in the buffer here instead was lost at a crash.) */
        int64_t chunks_tmax = s->flushing ? s->flush_tmax : s->t_max;
        if (time <= chunks_tmax) {
            if (replay && seq <= applied_seq)
                continue; /* a late row merged into its chunk before the crash */
            /* late: collect for a chunk merge */
            size_t li = 0;
            while (li < nlate && late_series[li] != s)
                li++;
            if (li == nlate) {
                if (nlate == caplate) {
                    size_t ncap = caplate ? caplate * 2 : 8;
                    series_t **ns = realloc(late_series, ncap * sizeof *ns);
                    rowset_t *nr = ns ? realloc(late_rows, ncap * sizeof *nr) : NULL;
                    if (ns)
                        late_series = ns;
                    if (nr == NULL) {
                        st = MESH_NOMEM;
                        break;
                    }
                    late_rows = nr;
                    caplate = ncap;
                }
                late_series[nlate] = s;
                if ((st = rs_init(&late_rows[nlate], t->nv, false)) != MESH_OK)
                    break;
                nlate++;
            }
            rowset_t *lr = &late_rows[li];
            if ((st = rs_reserve(lr, t->nv, lr->n + 1)) != MESH_OK)
                break;
            lr->t[lr->n] = time;
            for (size_t k = 0; k < t->nv && st == MESH_OK; k++)
                st = put_value(lr, &t->vc[k], k, lr->n, b, &row[t->vc[k].col]);
            lr->n++;
            continue;
        }
        touch(t, s);
        rowset_t *buf = &s->buf;
        if ((st = rs_reserve(buf, t->nv, buf->n + 1)) != MESH_OK)
            break;
        size_t at = buf->n;
        buf->t[at] = time;
        buf->seq[at] = seq;
        for (size_t k = 0; k < t->nv && st == MESH_OK; k++)
            st = put_value(buf, &t->vc[k], k, at, b, &row[t->vc[k].col]);
        if (st != MESH_OK)
            break;
        if (at > s->open_from && time <= buf->t[at - 1])
            s->dirty = true;
        if (at == s->open_from)
            s->open_since_mono = mesh_mono_ns();
        buf->n++;
        t->buffered++;
        (*added)++;
    }
    pthread_rwlock_unlock(&t->lock);
    mesh_buf_free(&key);
    if (st != MESH_OK && err && err->msg[0] == '\0')
        mesh_err_set(err, st, "ts %s: out of memory", p->name);
    for (size_t li = 0; li < nlate; li++) {
        if (st == MESH_OK) {
            touch(t, late_series[li]);
            st = merge_late(t, db, late_series[li], &late_rows[li], added, err);
        }
        rs_free(&late_rows[li], t->nv);
    }
    free(late_series);
    free(late_rows);
    return st;
}

mesh_status_t mesh__ts_flush(mesh_ts_t *t, sqlite3 *db, mesh_ts_flush_t mode, int64_t max_age_ns,
                             uint64_t gen, uint64_t seq, bool *did, mesh_err_t *err)
{
    mesh_status_t st = MESH_OK;
    int64_t now = mesh_mono_ns();
    bool all = mode == MESH_TS_FLUSH_ALL || t->buffered > MESH_TS_MAX_BUFFERED;
    for (size_t i = 0; i < t->nseries && st == MESH_OK; i++) {
        series_t *s = t->series[i];
        size_t open = s->buf.n - s->open_from;
        if (open == 0 || s->flushing)
            continue;
        bool go = all || open >= MESH_TS_CHUNK_ROWS ||
                  (mode == MESH_TS_FLUSH_AGED && now - s->open_since_mono > max_age_ns);
        if (!go)
            continue;
        /* sort and merge the open rows in place (readers copy them under the read lock) */
        if (s->dirty) {
            pthread_rwlock_wrlock(&t->lock);
            size_t before = s->buf.n;
            st = rs_sort_merge(&s->buf, s->open_from, t->vc, t->nv);
            t->buffered -= (int64_t)(before - s->buf.n);
            /* rows merged on their time are gone from the buffer: readers must not read past
             * its new end (the flush runs before the group appends, so every row was visible) */
            if (s->n_visible > s->buf.n)
                s->n_visible = s->buf.n;
            s->dirty = false;
            pthread_rwlock_unlock(&t->lock);
            if (st != MESH_OK) {
                mesh_err_set(err, st, "out of memory");
                break;
            }
        }
        touch(t, s);
        size_t end = s->buf.n;
        if ((st = write_chunks(t, db, s, &s->buf, s->open_from, end, err)) != MESH_OK)
            break;
        int64_t tmax = s->buf.t[end - 1];
        s->flushing = true;
        s->flush_end = end;
        s->flush_tmax = tmax > s->t_max ? tmax : s->t_max;
        s->flush_seq = seq;
        s->flush_rows += (int64_t)(end - s->open_from);
        st = put_series_row(t, db, s, s->flush_tmax, seq, s->rows_persisted + s->flush_rows, err);
        *did = true;
    }
    (void)gen;
    return st;
}

void mesh__ts_commit(mesh_ts_t *t, uint64_t gen)
{
    pthread_rwlock_wrlock(&t->lock);
    for (series_t *s = t->touched; s; s = s->next_touched) {
        if (s->flushing) {
            if (s->nsegs == MAX_SEGS) {
                /* too many generations kept: merge the two oldest (readers that old see the
                 * newer generation's rows; they are gone from its chunks anyway) */
                s->segs[1].gen = s->segs[0].gen;
                memmove(s->segs, s->segs + 1, (size_t)(--s->nsegs) * sizeof *s->segs);
            }
            s->segs[s->nsegs].end = s->flush_end;
            s->segs[s->nsegs].gen = gen;
            s->nsegs++;
            t->buffered -= (int64_t)(s->flush_end - s->open_from);
            s->open_from = s->flush_end;
            s->t_max = s->flush_tmax;
            s->flushed_seq = s->flush_seq;
            s->persisted = true;
            if (s->open_from < s->buf.n)
                s->open_since_mono = mesh_mono_ns();
        }
        s->rows_persisted += s->flush_rows;
        s->n_visible = s->buf.n;
        s->touched = false;
        s->flushing = false;
        s->flush_rows = 0;
    }
    t->touched = NULL;
    pthread_rwlock_unlock(&t->lock);
}

void mesh__ts_rollback(mesh_ts_t *t)
{
    pthread_rwlock_wrlock(&t->lock);
    for (series_t *s = t->touched; s; s = s->next_touched) {
        if (s->buf.n > s->n_at_begin) {
            t->buffered -= (int64_t)(s->buf.n - s->n_at_begin);
            s->buf.n = s->n_at_begin;
        }
        s->touched = false;
        s->flushing = false;
        s->flush_rows = 0;
    }
    t->touched = NULL;
    pthread_rwlock_unlock(&t->lock);
}

void mesh__ts_gc(mesh_ts_t *t, uint64_t min_gen)
{
    pthread_rwlock_wrlock(&t->lock);
    for (size_t i = 0; i < t->nseries; i++) {
        series_t *s = t->series[i];
        int drop = 0;
        while (drop < s->nsegs && s->segs[drop].gen <= min_gen)
            drop++;
        if (drop == 0)
            continue;
        size_t cut = s->segs[drop - 1].end;
        rowset_t *r = &s->buf;
        size_t keep = r->n - cut;
        memmove(r->t, r->t + cut, keep * sizeof *r->t);
        memmove(r->seq, r->seq + cut, keep * sizeof *r->seq);
        for (size_t k = 0; k < t->nv; k++) {
            memmove(r->v[k], (char *)r->v[k] + cut * 8, keep * 8);
            if (r->nulls[k])
                memmove(r->nulls[k], r->nulls[k] + cut, keep);
        }
        r->n = keep;
        s->n_visible -= cut;
        s->open_from -= cut;
        s->n_at_begin = s->n_at_begin > cut ? s->n_at_begin - cut : 0;
        for (int k = drop; k < s->nsegs; k++) {
            s->segs[k - drop] = s->segs[k];
            s->segs[k - drop].end -= cut;
        }
        s->nsegs -= drop;
        if (keep == 0) {
            mesh_buf_reset(&r->text);
            if (r->cap > 4 * MESH_TS_CHUNK_ROWS) {
                /* a burst grew this buffer: give the memory back */
                rs_free(r, t->nv);
                rs_init(r, t->nv, true);
            }
        }
    }
    pthread_rwlock_unlock(&t->lock);
}

uint64_t mesh__ts_clean_seq(mesh_ts_t *t, uint64_t applied_seq)
{
    uint64_t clean = applied_seq;
    pthread_rwlock_rdlock(&t->lock);
    for (size_t i = 0; i < t->nseries; i++) {
        const series_t *s = t->series[i];
        /* open rows are in log order until a flush sorts them (and writes them out); rows
         * being flushed in the open transaction count as written */
        size_t first = s->flushing ? s->flush_end : s->open_from;
        if (first < s->n_visible && s->buf.seq[first] - 1 < clean)
            clean = s->buf.seq[first] - 1;
    }
    pthread_rwlock_unlock(&t->lock);
    return clean;
}

/* ---- planning ---- */

static bool is_key_col(const mesh_ts_t *t, int col, size_t *k)
{
    if (col < 0 || (size_t)col >= t->p->ncols || t->key_of[col] < 0)
        return false;
    if (k)
        *k = (size_t)t->key_of[col];
    return true;
}

/* Whether a scan can give rows in the plan's order. Rows come series by series, each in time
 * order (either way), and the series can be visited in the order of their key columns: so an
 * order of key columns, then possibly time once those name one series, is ours. one: a single
 * series is scanned. */
static bool ts_order(const mesh_ts_t *t, const mesh_scan_plan_t *plan, bool one, bool *time_desc)
{
    if (plan->norder <= 0 || plan->norder > MESH_SCAN_MAX_ORDER)
        return false;
    bool covered[MESH_CONTRACT_MAX_COLUMNS] = {false};
    size_t ncovered = 0;
    int i = 0;
    for (; i < plan->norder; i++) {
        size_t k;
        if (!is_key_col(t, plan->order[i].col, &k))
            break;
        if (!covered[k]) {
            covered[k] = true;
            ncovered++;
        }
    }
    if (i == plan->norder)
        return true;
    if (i == plan->norder - 1 && plan->order[i].col == t->time_col &&
        (one || ncovered == t->nkey)) {
        *time_desc = plan->order[i].desc;
        return true;
    }
    return false;
}

/*
 * The column of an ORDER BY (or GROUP BY) the scan gives by visiting rows value by value
 * (group_prepare), or -1: one term, a text column outside the key with an enum in its
 * contract. The enum says the column holds few values (old definitions may have allowed
 * others; the scan finds the values in the data, so they are never missed), and a tag of a
 * series (a truck's fleet) usually has one value per series: the passes then visit each
 * series once. One constraint slot must be free for the pass's value.
 */
static int group_col(const mesh_ts_t *t, const mesh_scan_plan_t *plan)
{
    if (plan->norder != 1 || plan->ncons >= MESH_SCAN_MAX_CONS)
        return -1;
    int col = plan->order[0].col;
    if (col < 0 || (size_t)col >= t->p->ncols || col == t->time_col || is_key_col(t, col, NULL))
        return -1;
    const mesh_column_t *c = &t->p->cols[col];
    return kind_of(c->type) == MESH_COL_TEXT && c->n_enum > 0 ? col : -1;
}

void mesh__ts_plan(mesh_ts_t *t, int64_t rows, bool last, mesh_scan_plan_t *plan)
{
    int64_t buffered, nseries;
    mesh__ts_counts(t, &buffered, &nseries);
    double total = (double)(rows > 0 ? rows : 1);
    double series = (double)(nseries > 0 ? nseries : 1);
    double est = total;
    bool key_eq[MESH_CONTRACT_MAX_COLUMNS] = {false};
    bool lo = false, hi = false;
    for (int i = 0; i < plan->ncons; i++) {
        int c = plan->cons[i].col;
        mesh_op_t op = plan->cons[i].op;
        plan->cons[i].used = c >= 0 && (size_t)c < t->p->ncols && op < MESH_OP__COUNT;
        if (!plan->cons[i].used)
            continue;
        size_t k;
        if (is_key_col(t, c, &k)) {
            if (op == MESH_OP_EQ || op == MESH_OP_IS)
                key_eq[k] = true;
            else
                est /= 2;
        } else if (c == t->time_col) {
            /* every row the scan returns is in range, as SQLite would compare (a chunk's
             * rows are cut to [lo, hi] by bounds(), the others checked by row_matches with
             * compare()); the time column is never NULL */
            plan->cons[i].exact = op == MESH_OP_EQ || op == MESH_OP_GT || op == MESH_OP_GE ||
                                  op == MESH_OP_LT || op == MESH_OP_LE;
            if (op == MESH_OP_EQ || op == MESH_OP_IS)
                lo = hi = true;
            if (op == MESH_OP_GT || op == MESH_OP_GE)
                lo = true;
            if (op == MESH_OP_LT || op == MESH_OP_LE)
                hi = true;
        } else {
            est /= 2;
        }
    }
    bool single = t->nkey > 0;
    for (size_t k = 0; k < t->nkey; k++)
        single &= key_eq[k];
    if (single)
        est /= series;
    if (lo && hi)
        est /= 20;
    else if (lo || hi)
        est /= 4;
    /* one series for sure: the whole key given, or no key at all */
    bool time_desc = false;
    bool ordered = ts_order(t, plan, single || t->nkey == 0, &time_desc);
    plan->time_desc = ordered && time_desc;
    if (last) {
        /* one row per series chosen; every constraint is checked on that row */
        est = single ? 1 : series;
        plan->order_used = ordered;
        plan->limit_used = false;
        plan->est_rows = (int64_t)est;
        plan->cost = est * 10 + (single ? 5 : series);
        return;
    }
    if (est < 1)
        est = 1;
    /* an order of one enumerated text column: one pass per value (group_prepare) */
    if (!ordered && group_col(t, plan) >= 0)
        ordered = true;
    plan->order_used = ordered;
    plan->limit_used = plan->want_limit && (plan->norder == 0 || plan->order_used);
    for (int i = 0; i < plan->ncons && plan->limit_used; i++)
        plan->limit_used = plan->cons[i].used;
    plan->est_rows = (int64_t)est;
    /* decoding chunks costs more per row than a b-tree row; finding the series is cheap */
    plan->cost = est * 3 + (single ? 5 : series);
}

/* ---- scanning ---- */

typedef struct ccons {
    int col; /* product column */
    mesh_op_t op;
    mesh_datum_t v; /* coerced to the column's class; text copied into the cursor */
    bool never;     /* can never be true (e.g. = NULL) */
    bool key;       /* on a series key column: checked once per series, not per row */
    bool ranged;    /* a time bound the cursor's [lo, hi] holds exactly: a chunk's rows are
                     * cut to that range (bounds()), so they need no check of it */
    bool grouped;   /* the value of a grouped scan's pass (group_next_pass) */
} ccons_t;

/* A value of the group column and the series holding it, in scan order. */
typedef struct gval {
    char *s; /* owned, NUL-terminated; NULL for a NULL value */
    size_t n;
    series_t **ser;
    size_t nser, cap;
} gval_t;

struct mesh_ts_cursor {
    mesh_ts_t *t;
    sqlite3 *db;
    uint64_t gen;
    uint64_t seq; /* the log position of the reader's snapshot */
    mesh_scan_plan_t plan;
    ccons_t cons[MESH_SCAN_MAX_CONS];
    int ncons;
    int check_chunk, check_buf; /* constraints a row of a chunk, of a buffer, is checked on */
    int64_t lo, hi;             /* time range */
    bool empty;
    bool desc;
    int64_t limit, produced;
    bool last;                /* the newest row of each series only */
    int64_t last_lo, last_hi; /* in last mode, the time range the newest row must be in */
    /* series to visit */
    series_t **sidx; /* taken under the lock: the series array may move, a series does not */
    size_t nsidx, pos;
    series_t *cur;
    /* the current series' rows: its chunks from SQLite, then its buffered rows */
    sqlite3_stmt *q;
    int phase;       /* 0 chunks, 1 buffer, 2 next series */
    rowset_t *rows;  /* &buf_rows when the rows come from the buffer */
    size_t ri, rend; /* current row and the end of the range (exclusive) */
    size_t rstart;
    bool rows_ready;
    /* the last decoded chunk (only the columns the scan reads), kept across rewinds: a join
     * looking up one row after another in the same chunk decodes it once */
    mesh_chunk_t chunk;
    int cmap[MESH_CONTRACT_MAX_COLUMNS]; /* product column -> chunk column, -1 */
    int ctime;                           /* the chunk's time column */
    int64_t chunk_series, chunk_tmin;
    bool chunk_valid;
    bool from_chunk;                      /* rows come from chunk, else from buf_rows */
    const int64_t *rt;                    /* the current rows' times */
    bool need[MESH_CONTRACT_MAX_COLUMNS]; /* product columns the scan reads */
    rowset_t buf_rows;
    char *texts[MESH_SCAN_MAX_CONS]; /* copies of text constraint values */
    int ntexts;
    /* ordered by one column outside the key (group_col): one pass per value, in order */
    bool group;
    int gcol, gcons; /* the column; the constraint slot of the pass's value */
    bool gall;       /* every row of the current chunk holds the pass's value */
    bool gdict;      /* ... the rows of it with dictionary index gidx, not NULL */
    uint32_t gidx;
    bool gnull;               /* the NULL pass: the rows of the current chunk that are NULL */
    bool gbuf_valid, gbuf_ok; /* the pass's check of the buffered text at gbuf_src */
    uint64_t gbuf_src;
    gval_t *gv; /* the values the rows in range hold, sorted */
    size_t ngv, gcap, gpass;
    char error[256];
};

/* Keeps a private copy of text for a constraint value. */
static bool own_text(mesh_ts_cursor_t *c, mesh_datum_t *v, const char *p, size_t n)
{
    if (c->ntexts == MESH_SCAN_MAX_CONS)
        return false;
    char *copy = malloc(n + 1);
    if (copy == NULL)
        return false;
    memcpy(copy, p, n);
    copy[n] = '\0';
    c->texts[c->ntexts++] = copy;
    v->s = copy;
    v->n = n;
    return true;
}

/* Coerces a constraint value to the class of column col, as SQLite's affinity rules do when
 * a column is compared with a value: a TEXT column sees numbers as text, a numeric column
 * sees text that reads as a number as that number. */
static bool coerce(mesh_ts_cursor_t *c, const mesh_column_t *col, mesh_datum_t *v)
{
    mesh_colkind_t k = kind_of(col->type);
    if (v->type == MESH_V_NULL)
        return true;
    if (k == MESH_COL_TEXT && v->type != MESH_V_TEXT) {
        char tmp[64];
        if (v->type == MESH_V_INT)
            sqlite3_snprintf(sizeof tmp, tmp, "%lld", (long long)v->i);
        else
            sqlite3_snprintf(sizeof tmp, tmp, "%!.15g", v->d);
        v->type = MESH_V_TEXT;
        return own_text(c, v, tmp, strlen(tmp));
    }
    if (v->type == MESH_V_TEXT) {
        if (!own_text(c, v, v->s, v->n))
            return false;
        int64_t iv;
        double dv;
        if (k != MESH_COL_TEXT && mesh_parse_i64(v->s, v->n, &iv) == MESH_OK) {
            v->type = MESH_V_INT;
            v->i = iv;
        } else if (k != MESH_COL_TEXT && mesh_parse_f64(v->s, v->n, &dv) == MESH_OK) {
            v->type = MESH_V_REAL;
            v->d = dv;
        }
        /* text that is no number stays text: a numeric column is always below it */
    }
    return true;
}

/* An integer against a real as SQLite compares them (exactly, also beyond 2^53, where
 * converting the integer to a double would round: time in nanoseconds is that large). */
static int int_real_cmp(int64_t i, double r)
{
    if (r != r) /* NaN: SQLite stores it as NULL, so it never gets here; order it first */
        return 1;
    if (r < -9223372036854775808.0)
        return 1;
    if (r >= 9223372036854775808.0)
        return -1;
    int64_t y = (int64_t)r; /* truncated toward zero */
    if (i < y)
        return -1;
    if (i > y)
        return 1;
    double f = r - (double)y; /* the fraction cut off, exact */
    return f > 0 ? -1 : f < 0 ? 1 : 0;
}

/* SQLite's ordering of two values: NULL < numbers < text. */
static int compare(const mesh_datum_t *a, const mesh_datum_t *b)
{
    int ca = a->type == MESH_V_NULL ? 0 : a->type == MESH_V_TEXT ? 2 : 1;
    int cb = b->type == MESH_V_NULL ? 0 : b->type == MESH_V_TEXT ? 2 : 1;
    if (ca != cb)
        return ca < cb ? -1 : 1;
    if (ca == 1) {
        if (a->type == MESH_V_INT && b->type == MESH_V_INT)
            return a->i < b->i ? -1 : a->i > b->i;
        if (a->type == MESH_V_INT)
            return int_real_cmp(a->i, b->d);
        if (b->type == MESH_V_INT)
            return -int_real_cmp(b->i, a->d);
        double x = a->type == MESH_V_INT ? (double)a->i : a->d;
        double y = b->type == MESH_V_INT ? (double)b->i : b->d;
        return x < y ? -1 : x > y;
    }
    if (ca == 2) {
        size_t n = a->n < b->n ? a->n : b->n;
        int r = n ? memcmp(a->s, b->s, n) : 0;
        if (r)
            return r < 0 ? -1 : 1;
        return a->n < b->n ? -1 : a->n > b->n;
    }
    return 0;
}

static bool holds(const mesh_datum_t *v, const ccons_t *k)
{
    switch (k->op) {
    case MESH_OP_ISNULL:
        return v->type == MESH_V_NULL;
    case MESH_OP_ISNOTNULL:
        return v->type != MESH_V_NULL;
    case MESH_OP_IS:
        return compare(v, &k->v) == 0;
    case MESH_OP_ISNOT:
        return compare(v, &k->v) != 0;
    default:
        break;
    }
    if (v->type == MESH_V_NULL || k->v.type == MESH_V_NULL)
        return false;
    int r = compare(v, &k->v);
    switch (k->op) {
    case MESH_OP_EQ:
        return r == 0;
    case MESH_OP_NE:
        return r != 0;
    case MESH_OP_GT:
        return r > 0;
    case MESH_OP_GE:
        return r >= 0;
    case MESH_OP_LT:
        return r < 0;
    case MESH_OP_LE:
        return r <= 0;
    default:
        return true;
    }
}

/* Could any row of a chunk with this summary satisfy constraint k? */
static bool chunk_may_hold(const mesh_colsum_t *s, const ccons_t *k)
{
    if (k->v.type != MESH_V_INT && k->v.type != MESH_V_REAL)
        return true;
    double v = k->v.type == MESH_V_INT ? (double)k->v.i : k->v.d;
    if (s->count == 0)
        return k->op == MESH_OP_ISNULL || k->op == MESH_OP_NE || k->op == MESH_OP_ISNOT;
    switch (k->op) {
    case MESH_OP_EQ:
        return v >= s->min && v <= s->max;
    case MESH_OP_GT:
        return s->max > v;
    case MESH_OP_GE:
        return s->max >= v;
    case MESH_OP_LT:
        return s->min < v;
    case MESH_OP_LE:
        return s->min <= v;
    default:
        return true;
    }
}

/* The current row's value of product column col (in range). Every scanned row asks for
 * several, so this is the scan's innermost step: one table lookup picks the key, the time
 * or a value column. */
static inline void row_value(const mesh_ts_cursor_t *c, int col, mesh_datum_t *out)
{
    const mesh_ts_t *t = c->t;
    int k = t->key_of[col];
    if (k >= 0) {
        *out = c->cur->keyvals[k];
        return;
    }
    if (col == t->time_col) {
        *out = (mesh_datum_t){.type = MESH_V_INT, .i = c->rt[c->ri]};
        return;
    }
    int v = t->vc_of[col];
    if (v < 0) {
        *out = null_datum;
        return;
    }
    mesh_colkind_t kind = t->vc[v].kind;
    if (c->from_chunk) {
        int cc = c->cmap[col];
        const mesh_chunk_col_t *ch = cc >= 0 ? &c->chunk.cols[cc] : NULL;
        if (ch == NULL || (ch->nulls && ch->nulls[c->ri]) ||
            (ch->i == NULL && ch->d == NULL && ch->sidx == NULL)) {
            *out = null_datum;
            return;
        }
        if (kind == MESH_COL_TEXT) {
            uint32_t d = ch->sidx[c->ri];
            *out = (mesh_datum_t){.type = MESH_V_TEXT, .s = ch->dict[d], .n = ch->dlen[d]};
        } else if (kind == MESH_COL_REAL) {
            *out = (mesh_datum_t){.type = MESH_V_REAL,
                                  .d = ch->kind == MESH_COL_REAL ? ch->d[c->ri]
                                                                 : (double)ch->i[c->ri]};
        } else {
            *out = (mesh_datum_t){.type = MESH_V_INT,
                                  .i = ch->kind == MESH_COL_REAL ? (int64_t)ch->d[c->ri]
                                                                 : ch->i[c->ri]};
        }
        return;
    }
    const rowset_t *r = c->rows;
    if (rs_is_null(r, (size_t)v, c->ri)) {
        *out = null_datum;
        return;
    }
    switch (kind) {
    case MESH_COL_REAL:
        *out = (mesh_datum_t){.type = MESH_V_REAL, .d = ((const double *)r->v[v])[c->ri]};
        break;
    case MESH_COL_TEXT:
        *out = (mesh_datum_t){.type = MESH_V_TEXT};
        rs_text(r, (size_t)v, c->ri, &out->s, &out->n);
        break;
    default:
        *out = (mesh_datum_t){.type = MESH_V_INT, .i = ((const int64_t *)r->v[v])[c->ri]};
    }
}

static bool series_matches(const mesh_ts_cursor_t *c, const series_t *s)
{
    for (int i = 0; i < c->ncons; i++) {
        size_t k;
        if (is_key_col(c->t, c->cons[i].col, &k) && !holds(&s->keyvals[k], &c->cons[i]))
            return false;
    }
    return true;
}

static bool row_matches(mesh_ts_cursor_t *c)
{
    if ((c->from_chunk ? c->check_chunk : c->check_buf) == 0)
        return true;
    for (int i = 0; i < c->ncons; i++) {
        const ccons_t *k = &c->cons[i];
        if (k->key || (k->ranged && c->from_chunk) || (k->grouped && c->gall))
            continue;
        if (k->grouped && c->gnull) {
            if (!c->chunk.cols[c->cmap[c->gcol]].nulls[c->ri])
                return false;
            continue;
        }
        if (k->grouped && c->gdict) {
            const mesh_chunk_col_t *ch = &c->chunk.cols[c->cmap[c->gcol]];
            if ((ch->nulls && ch->nulls[c->ri]) || ch->sidx[c->ri] != c->gidx)
                return false;
            continue;
        }
        mesh_datum_t v;
        int vc = k->grouped && !c->from_chunk ? c->t->vc_of[k->col] : -1;
        if (vc >= 0 && c->t->vc[vc].kind == MESH_COL_TEXT &&
            !rs_is_null(c->rows, (size_t)vc, c->ri)) {
            /* buffered rows share the text of the row before when it repeats: one comparison
             * per text, not per row */
            uint64_t src = ((const uint64_t *)c->rows->v[vc])[c->ri];
            if (!c->gbuf_valid || src != c->gbuf_src) {
                row_value(c, k->col, &v);
                c->gbuf_ok = holds(&v, k);
                c->gbuf_src = src;
                c->gbuf_valid = true;
            }
            if (!c->gbuf_ok)
                return false;
            continue;
        }
        row_value(c, k->col, &v);
        if (!holds(&v, k))
            return false;
    }
    return true;
}

/* Counts the constraints rows are checked on (row_matches), so that a scan with none (the
 * time range of a chunk is applied by bounds) skips the check. */
static void count_checks(mesh_ts_cursor_t *c)
{
    c->check_chunk = c->check_buf = 0;
    for (int i = 0; i < c->ncons; i++) {
        c->check_buf += !c->cons[i].key;
        c->check_chunk += !c->cons[i].key && !c->cons[i].ranged;
    }
}

typedef struct series_order {
    const mesh_ts_t *t;
    const mesh_scan_plan_t *plan;
} series_order_t;

/* Orders series by the plan's key columns, as SQLite would order their values (BINARY
 * collation, NULL first). */
static int cmp_series(const void *a, const void *b, void *arg)
{
    const series_order_t *so = arg;
    const series_t *x = *(series_t *const *)a;
    const series_t *y = *(series_t *const *)b;
    for (int i = 0; i < so->plan->norder; i++) {
        size_t k;
        if (!is_key_col(so->t, so->plan->order[i].col, &k))
            break;
        int r = compare(&x->keyvals[k], &y->keyvals[k]);
        if (r)
            return so->plan->order[i].desc ? -r : r;
    }
    return 0;
}

/* Sets the cursor up for a plan and its arguments (at open, and again at each rewind). */
static void gv_free(mesh_ts_cursor_t *c);
static mesh_status_t group_prepare(mesh_ts_cursor_t *c, int col, mesh_err_t *err);

static mesh_status_t setup(mesh_ts_cursor_t *c, const mesh_scan_plan_t *plan,
                           const mesh_datum_t *args, int nargs, mesh_err_t *err)
{
    mesh_ts_t *t = c->t;
    for (int i = 0; i < c->ntexts; i++)
        free(c->texts[i]);
    c->ntexts = 0;
    c->plan = *plan;
    c->ncons = 0;
    c->lo = INT64_MIN;
    c->hi = INT64_MAX;
    c->empty = false;
    c->limit = -1;
    c->produced = 0;
    c->nsidx = c->pos = 0;
    c->cur = NULL;
    c->rows_ready = false;
    c->phase = 2;
    c->error[0] = '\0';
    c->desc = plan->order_used && plan->time_desc;
    gv_free(c);
    int gcol = !c->last && plan->order_used ? group_col(t, plan) : -1;
    for (size_t i = 0; i < t->p->ncols; i++)
        c->need[i] = i >= 63 ? (plan->cols_used >> 63) & 1 : (plan->cols_used >> i) & 1;
    if (gcol >= 0)
        c->need[gcol] = true;
    for (int i = 0; i < plan->ncons; i++)
        if (plan->cons[i].used && plan->cons[i].col >= 0)
            c->need[plan->cons[i].col] = true;
    int ai = 0;
    for (int i = 0; i < plan->ncons; i++) {
        if (!plan->cons[i].used)
            continue;
        ccons_t *k = &c->cons[c->ncons++];
        k->col = plan->cons[i].col;
        k->op = plan->cons[i].op;
        if (k->op == MESH_OP_ISNULL || k->op == MESH_OP_ISNOTNULL)
            continue;
        k->v = ai < nargs ? args[ai++] : null_datum;
        if (!coerce(c, &t->p->cols[k->col], &k->v))
            return mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    if (plan->limit_used && ai < nargs && args[ai].type == MESH_V_INT)
        c->limit = args[ai].i;
    /* the time range */
    for (int i = 0; i < c->ncons; i++) {
        ccons_t *k = &c->cons[i];
        if (k->col != t->time_col)
            continue;
        if (k->v.type == MESH_V_NULL && k->op != MESH_OP_ISNOT && k->op != MESH_OP_ISNOTNULL) {
            c->empty = true;
            continue;
        }
        if (k->v.type != MESH_V_INT && k->v.type != MESH_V_REAL)
            continue;
        double dv = k->v.type == MESH_V_REAL ? k->v.d : (double)k->v.i;
        int64_t v = k->v.type == MESH_V_INT ? k->v.i : (int64_t)dv;
        bool exact = k->v.type == MESH_V_INT || (double)v == dv;
        switch (k->op) {
        case MESH_OP_EQ:
        case MESH_OP_IS:
            if (!exact)
                c->empty = true;
            if (v > c->lo)
                c->lo = v;
            if (v < c->hi)
                c->hi = v;
            break;
        case MESH_OP_GT:
        case MESH_OP_GE: {
            int64_t b = (k->op == MESH_OP_GT && exact) ? (v == INT64_MAX ? v : v + 1)
                                                       : (exact ? v : (int64_t)ceil(dv));
            if (b > c->lo)
                c->lo = b;
            break;
        }
        case MESH_OP_LT:
        case MESH_OP_LE: {
            int64_t b = (k->op == MESH_OP_LT && exact) ? (v == INT64_MIN ? v : v - 1)
                                                       : (exact ? v : (int64_t)floor(dv));
            if (b < c->hi)
                c->hi = b;
            break;
        }
        default:
            break;
        }
    }
    if (c->lo > c->hi)
        c->empty = true;
    /* which constraints a row must still be checked against */
    for (int i = 0; i < c->ncons; i++) {
        ccons_t *k = &c->cons[i];
        k->key = is_key_col(t, k->col, NULL);
        k->ranged = false;
        if (k->col == t->time_col && !c->last &&
            (k->v.type == MESH_V_INT || k->v.type == MESH_V_REAL))
            k->ranged = k->op == MESH_OP_EQ || k->op == MESH_OP_IS || k->op == MESH_OP_GT ||
                        k->op == MESH_OP_GE || k->op == MESH_OP_LT || k->op == MESH_OP_LE;
    }
    count_checks(c);
    if (c->last) {
        /* the newest row of a series is found over all its rows; the time range is then a
         * condition on that row */
        c->last_lo = c->lo;
        c->last_hi = c->hi;
        c->lo = INT64_MIN;
        c->hi = INT64_MAX;
        c->desc = true;
    }
    /* the series to visit, in series order: with the whole key given, one lookup */
    pthread_rwlock_rdlock(&t->lock);
    size_t need = t->nseries ? t->nseries : 1;
    series_t **nidx = realloc(c->sidx, need * sizeof *c->sidx);
    if (nidx)
        c->sidx = nidx;
    for (size_t i = 0; nidx && i < t->nseries && !c->empty; i++)
        if (series_matches(c, t->series[i]))
            c->sidx[c->nsidx++] = t->series[i];
    /* an order of key columns: the series in that order */
    bool by_key = plan->order_used && plan->norder > 0 && is_key_col(t, plan->order[0].col, NULL);
    if (by_key && nidx && c->nsidx > 1) {
        series_order_t so = {.t = t, .plan = plan};
        qsort_r(c->sidx, c->nsidx, sizeof *c->sidx, cmp_series, &so);
    }
    pthread_rwlock_unlock(&t->lock);
    if (nidx == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    if (c->desc && !by_key) {
        for (size_t i = 0; i < c->nsidx / 2; i++) {
            series_t *x = c->sidx[i];
            c->sidx[i] = c->sidx[c->nsidx - 1 - i];
            c->sidx[c->nsidx - 1 - i] = x;
        }
    }
    /* the chunk statement's order follows the scan's */
    if (c->q && (c->desc != (strstr(sqlite3_sql(c->q), "DESC") != NULL))) {
        sqlite3_finalize(c->q);
        c->q = NULL;
    }
    if (c->q == NULL) {
        char sql[320];
        snprintf(sql, sizeof sql,
                 "SELECT t_min, data FROM \"k_%s\" WHERE series = ?1 AND t_max >= ?2 AND"
                 " t_min <= ?3 ORDER BY t_min %s",
                 t->name, c->desc ? "DESC" : "ASC");
        if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->q, NULL) != SQLITE_OK)
            return mesh_err_set(err, MESH_IO, "ts scan: %s", mesh_crypt_errmsg(c->db));
    } else {
        sqlite3_reset(c->q);
    }
    if (gcol >= 0 && !c->empty)
        return group_prepare(c, gcol, err);
    return MESH_OK;
}

mesh_status_t mesh__ts_scan_open(mesh_ts_t *t, sqlite3 *rdb, uint64_t reader_gen,
                                 uint64_t reader_seq, bool last, const mesh_scan_plan_t *plan,
                                 const mesh_datum_t *args, int nargs, mesh_ts_cursor_t **out,
                                 mesh_err_t *err)
{
    mesh_ts_cursor_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    c->t = mesh__ts_ref(t);
    c->db = rdb;
    c->gen = reader_gen;
    c->seq = reader_seq;
    c->last = last;
    if (rs_init(&c->buf_rows, t->nv, false) != MESH_OK) {
        mesh__ts_scan_close(c);
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    mesh_status_t st = setup(c, plan, args, nargs, err);
    if (st != MESH_OK) {
        mesh__ts_scan_close(c);
        return st;
    }
    *out = c;
    return MESH_OK;
}

mesh_status_t mesh__ts_scan_rewind(mesh_ts_cursor_t *c, const mesh_scan_plan_t *plan,
                                   const mesh_datum_t *args, int nargs, mesh_err_t *err)
{
    return setup(c, plan, args, nargs, err);
}

/* The rows within [lo, hi] of n sorted times. */
static void bounds(const int64_t *t, size_t n, int64_t lo, int64_t hi, size_t *start, size_t *end)
{
    size_t a = 0, b = n;
    while (a < b) {
        size_t m = (a + b) / 2;
        if (t[m] < lo)
            a = m + 1;
        else
            b = m;
    }
    *start = a;
    b = n;
    while (a < b) {
        size_t m = (a + b) / 2;
        if (t[m] <= hi)
            a = m + 1;
        else
            b = m;
    }
    *end = a;
}

/* Decodes the chunk columns a scan reads: the time column, and needed value columns. */
static bool want_col(void *arg, const char *name)
{
    const mesh_ts_cursor_t *c = arg;
    const mesh_product_t *p = c->t->p;
    if (strcmp(name, p->cols[p->time_col].name) == 0)
        return true;
    int col = mesh_product_col(p, name, strlen(name));
    return col >= 0 && c->need[col];
}

/* Finds the decoded chunk's time column and maps product columns to its columns. */
static int map_chunk(mesh_ts_cursor_t *c)
{
    mesh_ts_t *t = c->t;
    c->ctime = mesh_chunk_col(&c->chunk, t->p->cols[t->time_col].name);
    if (c->ctime < 0 || c->chunk.cols[c->ctime].kind != MESH_COL_TIME ||
        c->chunk.cols[c->ctime].i == NULL) {
        snprintf(c->error, sizeof c->error, "ts scan: a chunk of %s has no time", t->name);
        return -1;
    }
    for (size_t i = 0; i < t->p->ncols; i++) {
        int cc =
            t->vc_of[i] >= 0 && c->need[i] ? mesh_chunk_col(&c->chunk, t->p->cols[i].name) : -1;
        /* a column that changed between text and numbers: its old values read NULL */
        if (cc >= 0 &&
            (c->chunk.cols[cc].kind == MESH_COL_TEXT) != (t->vc[t->vc_of[i]].kind == MESH_COL_TEXT))
            cc = -1;
        c->cmap[i] = cc;
    }
    return 0;
}

/* Makes the next chunk of the current series with rows in range current; 0 at the end. */
static int next_chunk(mesh_ts_cursor_t *c)
{
    mesh_ts_t *t = c->t;
    for (;;) {
        int rc = sqlite3_step(c->q);
        if (rc == SQLITE_DONE) {
            sqlite3_reset(c->q);
            return 0;
        }
        if (rc != SQLITE_ROW) {
            snprintf(c->error, sizeof c->error, "ts scan: %s", mesh_crypt_errmsg(c->db));
            return -1;
        }
        int64_t tmin = sqlite3_column_int64(c->q, 0);
        if (!(c->chunk_valid && c->chunk_series == c->cur->id && c->chunk_tmin == tmin)) {
            const uint8_t *p = sqlite3_column_blob(c->q, 1);
            size_t n = (size_t)sqlite3_column_bytes(c->q, 1);
            /* skip a chunk whose summaries rule out a value constraint (not when looking
             * for a series' newest row: that row decides, whatever its value) */
            bool skip = false;
            for (int i = 0; i < c->ncons && !skip && !c->last; i++) {
                const ccons_t *k = &c->cons[i];
                if (k->col == t->time_col || is_key_col(t, k->col, NULL) ||
                    kind_of(t->p->cols[k->col].type) == MESH_COL_TEXT)
                    continue;
                size_t nr;
                mesh_colsum_t sum;
                if (mesh_chunk_summary(p, n, t->p->cols[k->col].name, &nr, &sum) &&
                    !chunk_may_hold(&sum, k))
                    skip = true;
            }
            if (skip)
                continue;
            mesh_err_t err;
            c->chunk_valid = false;
            mesh_chunk_free(&c->chunk);
            if (mesh_chunk_decode_some(p, n, want_col, c, &c->chunk, &err) != MESH_OK) {
                snprintf(c->error, sizeof c->error, "%s", err.msg);
                return -1;
            }
            if (map_chunk(c) != 0)
                return -1;
            c->chunk_valid = true;
            c->chunk_series = c->cur->id;
            c->chunk_tmin = tmin;
        }
        c->from_chunk = true;
        c->rt = c->chunk.cols[c->ctime].i;
        bounds(c->rt, c->chunk.nrows, c->lo, c->hi, &c->rstart, &c->rend);
        if (c->rstart < c->rend)
            return 1;
    }
}

/* Copies the buffered rows of the current series that this reader sees and makes them
 * current; 0 when there are none. */
static int load_buffer(mesh_ts_cursor_t *c)
{
    mesh_ts_t *t = c->t;
    series_t *s = c->cur;
    rowset_t *r = &c->buf_rows;
    r->n = 0;
    mesh_buf_reset(&r->text);
    c->gbuf_valid = false;
    mesh_status_t st = MESH_OK;
    pthread_rwlock_rdlock(&t->lock);
    size_t start = 0;
    /* segments flushed at or before the reader's generation are in its chunks */
    for (int k = 0; k < s->nsegs; k++)
        if (s->segs[k].gen <= c->gen)
            start = s->segs[k].end;
    bool dirty = s->dirty && s->open_from < s->n_visible;
    /* rows committed after the reader's snapshot are not its to see; only the columns the scan
     * reads are copied (text that repeats the previous row's is shared, not compared) */
    uint64_t last_src[MESH_CONTRACT_MAX_COLUMNS];
    for (size_t k = 0; k < t->nv; k++)
        last_src[k] = UINT64_MAX;
    for (size_t i = start; i < s->n_visible && st == MESH_OK; i++) {
        if (s->buf.t[i] < c->lo || s->buf.t[i] > c->hi || s->buf.seq[i] > c->seq)
            continue;
        if ((st = rs_reserve(r, t->nv, r->n + 1)) != MESH_OK)
            break;
        size_t row = r->n;
        r->t[row] = s->buf.t[i];
        for (size_t k = 0; k < t->nv && st == MESH_OK; k++) {
            if (r->nulls[k])
                r->nulls[k][row] = 0;
            if (!c->need[t->vc[k].col] || rs_is_null(&s->buf, k, i)) {
                st = rs_set_null(r, k, row);
                continue;
            }
            if (t->vc[k].kind != MESH_COL_TEXT) {
                ((int64_t *)r->v[k])[row] = ((const int64_t *)s->buf.v[k])[i];
                continue;
            }
            uint64_t src = ((const uint64_t *)s->buf.v[k])[i];
            if (src == last_src[k] && row > 0 && !rs_is_null(r, k, row - 1)) {
                ((uint64_t *)r->v[k])[row] = ((const uint64_t *)r->v[k])[row - 1];
                continue;
            }
            const char *tx;
            size_t tn;
            rs_text(&s->buf, k, i, &tx, &tn);
            st = rs_set_text(r, k, row, tx, (uint32_t)tn);
            last_src[k] = src;
        }
        if (st == MESH_OK)
            r->n++;
    }
    pthread_rwlock_unlock(&t->lock);
    if (st == MESH_OK && dirty)
        st = rs_sort_merge(r, 0, t->vc, t->nv);
    if (st != MESH_OK) {
        snprintf(c->error, sizeof c->error, "ts scan: out of memory");
        return -1;
    }
    c->rows = r;
    c->from_chunk = false;
    c->rt = r->t;
    c->rstart = 0;
    c->rend = r->n;
    return r->n > 0;
}

/* Last mode: the newest chunk's last row, from its column headers (no decoding). 1: it is the
 * current row set; 0: the series has no chunk; 2: the chunk predates such headers (the
 * statement is reset, to be stepped again); -1: an error. */
static int last_of_chunk(mesh_ts_cursor_t *c)
{
    int rc = sqlite3_step(c->q);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW) {
        snprintf(c->error, sizeof c->error, "ts scan: %s", mesh_crypt_errmsg(c->db));
        return -1;
    }
    const uint8_t *p = sqlite3_column_blob(c->q, 1);
    size_t n = (size_t)sqlite3_column_bytes(c->q, 1);
    mesh_err_t err;
    c->chunk_valid = false; /* one row of it: not the chunk a later scan may reuse */
    mesh_chunk_free(&c->chunk);
    mesh_status_t st = mesh_chunk_decode_last(p, n, want_col, c, &c->chunk, &err);
    if (st == MESH_NOT_FOUND) {
        sqlite3_reset(c->q);
        return 2;
    }
    if (st != MESH_OK) {
        snprintf(c->error, sizeof c->error, "%s", err.msg);
        return -1;
    }
    if (map_chunk(c) != 0)
        return -1;
    c->from_chunk = true;
    c->rt = c->chunk.cols[c->ctime].i;
    c->rstart = 0;
    c->rend = 1;
    return 1;
}

/* Last mode: the newest row of each series, if it passes the constraints. */
static int next_last(mesh_ts_cursor_t *c)
{
    for (;;) {
        if (c->pos >= c->nsidx || c->empty)
            return 0;
        c->cur = c->sidx[c->pos++];
        int r = load_buffer(c);
        if (r < 0)
            return -1;
        if (r == 0) {
            /* nothing buffered for this reader: the newest chunk has it */
            sqlite3_reset(c->q);
            sqlite3_bind_int64(c->q, 1, c->cur->id);
            sqlite3_bind_int64(c->q, 2, INT64_MIN);
            sqlite3_bind_int64(c->q, 3, INT64_MAX);
            r = last_of_chunk(c);
            if (r == 2) /* a chunk without its last row in the header: decode it */
                r = next_chunk(c);
            sqlite3_reset(c->q);
            if (r < 0)
                return -1;
            if (r == 0)
                continue; /* a series with no rows (a write rolled back) */
        }
        c->rows_ready = true;
        c->ri = c->rend - 1;
        int64_t t = c->rt[c->ri];
        if (t >= c->last_lo && t <= c->last_hi && row_matches(c))
            return 1;
    }
}

/* In a pass of a grouped scan, a chunk whose group column holds one value and no NULL:
 * false when that is not the pass's value (the chunk is skipped), else every row holds it
 * (gall: row_matches need not check). Other chunks are checked row by row. */
static bool group_chunk(mesh_ts_cursor_t *c)
{
    int cc = c->cmap[c->gcol];
    const mesh_chunk_col_t *ch = cc >= 0 ? &c->chunk.cols[cc] : NULL;
    if (ch == NULL || ch->sidx == NULL)
        return true; /* checked row by row */
    const ccons_t *k = &c->cons[c->gcons];
    if (k->op != MESH_OP_EQ) { /* the NULL pass: only a chunk with a NULL has rows for it */
        c->gnull = ch->nulls != NULL;
        return c->gnull;
    }
    /* the dictionary holds the values of the chunk's rows */
    size_t i = 0;
    while (i < ch->ndict &&
           !(ch->dlen[i] == k->v.n && (k->v.n == 0 || memcmp(ch->dict[i], k->v.s, k->v.n) == 0)))
        i++;
    if (i == ch->ndict)
        return false;                              /* no row of this chunk holds the pass's value */
    c->gall = ch->ndict == 1 && ch->nulls == NULL; /* every row holds it */
    c->gdict = !c->gall;                           /* the rows with its index hold it */
    c->gidx = (uint32_t)i;
    return true;
}

static int scan_rows(mesh_ts_cursor_t *c)
{
    if (c->limit >= 0 && c->produced >= c->limit)
        return 0;
    if (c->last)
        return next_last(c);
    for (;;) {
        if (c->rows_ready) {
            /* advance within the current rows' range */
            bool have;
            if (c->desc) {
                have = c->ri > c->rstart;
                if (have)
                    c->ri--;
            } else {
                have = c->ri + 1 < c->rend;
                if (have)
                    c->ri++;
            }
            if (have && c->gnull && !c->desc) {
                /* the NULL pass over a chunk: straight to its next NULL */
                const uint8_t *nl = c->chunk.cols[c->cmap[c->gcol]].nulls;
                const uint8_t *at = memchr(nl + c->ri, 1, c->rend - c->ri);
                if (at == NULL) {
                    c->rows_ready = false;
                    continue;
                }
                c->ri = (size_t)(at - nl);
            }
            if (have && c->gdict && c->check_chunk == 1) {
                /* the pass's value is the only check: the row's dictionary index */
                const mesh_chunk_col_t *ch = &c->chunk.cols[c->cmap[c->gcol]];
                if ((ch->nulls && ch->nulls[c->ri]) || ch->sidx[c->ri] != c->gidx)
                    continue;
                c->produced++;
                return 1;
            }
            if (have) {
                if (row_matches(c)) {
                    c->produced++;
                    return 1;
                }
                continue;
            }
            c->rows_ready = false;
        }
        int r;
        if (c->phase == 2) {
            if (c->pos >= c->nsidx || c->empty)
                return 0;
            c->cur = c->sidx[c->pos++];
            sqlite3_reset(c->q);
            sqlite3_bind_int64(c->q, 1, c->cur->id);
            sqlite3_bind_int64(c->q, 2, c->lo);
            sqlite3_bind_int64(c->q, 3, c->hi);
            /* descending: the buffered rows (newest) come first */
            c->phase = c->desc ? 1 : 0;
            continue;
        }
        c->gall = c->gdict = c->gnull = false;
        if (c->phase == 0) {
            r = next_chunk(c);
            if (r < 0)
                return -1;
            if (r == 0) {
                c->phase = c->desc ? 2 : 1;
                continue;
            }
            if (c->group && c->ncons > c->gcons && !group_chunk(c))
                continue; /* no row of this chunk holds the pass's value */
        } else {
            r = load_buffer(c);
            c->phase = c->desc ? 0 : 2;
            if (r < 0)
                return -1;
            if (r == 0)
                continue;
        }
        c->rows_ready = true;
        /* the loop moves to the first row before reading it */
        c->ri = c->desc ? c->rend : c->rstart - 1;
    }
}

static void gv_free(mesh_ts_cursor_t *c)
{
    for (size_t i = 0; i < c->ngv; i++) {
        free(c->gv[i].s);
        free(c->gv[i].ser);
    }
    free(c->gv);
    c->gv = NULL;
    c->ngv = c->gcap = c->gpass = 0;
    c->group = false;
}

static int cmp_gval(const void *a, const void *b)
{
    const gval_t *x = a, *y = b;
    if (x->s == NULL || y->s == NULL)
        return (y->s == NULL) - (x->s == NULL); /* NULL first, as SQLite orders */
    mesh_datum_t dx = {.type = MESH_V_TEXT, .s = x->s, .n = x->n};
    mesh_datum_t dy = {.type = MESH_V_TEXT, .s = y->s, .n = y->n};
    return compare(&dx, &dy);
}

static bool gv_same(const gval_t *g, const mesh_datum_t *d)
{
    if (d->type != MESH_V_TEXT)
        return g->s == NULL;
    return g->s && g->n == d->n && (d->n == 0 || memcmp(g->s, d->s, d->n) == 0);
}

/* Notes that series s holds value d of the group column. */
static bool gv_note(mesh_ts_cursor_t *c, series_t *s, const mesh_datum_t *d, size_t *hint)
{
    size_t k = *hint;
    if (k >= c->ngv || !gv_same(&c->gv[k], d)) {
        for (k = 0; k < c->ngv && !gv_same(&c->gv[k], d); k++)
            ;
        if (k == c->ngv) {
            if (c->ngv == c->gcap) {
                size_t ncap = c->gcap ? c->gcap * 2 : 8;
                gval_t *ng = realloc(c->gv, ncap * sizeof *ng);
                if (ng == NULL)
                    return false;
                c->gv = ng;
                c->gcap = ncap;
            }
            gval_t *g = &c->gv[c->ngv];
            memset(g, 0, sizeof *g);
            if (d->type == MESH_V_TEXT) {
                if ((g->s = malloc(d->n + 1)) == NULL)
                    return false;
                if (d->n)
                    memcpy(g->s, d->s, d->n);
                g->s[d->n] = '\0';
                g->n = d->n;
            }
            c->ngv++;
        }
        *hint = k;
    }
    gval_t *g = &c->gv[k];
    if (g->nser && g->ser[g->nser - 1] == s)
        return true; /* a series' rows come together */
    if (g->nser == g->cap) {
        size_t ncap = g->cap ? g->cap * 2 : 16;
        series_t **ns = realloc(g->ser, ncap * sizeof *ns);
        if (ns == NULL)
            return false;
        g->ser = ns;
        g->cap = ncap;
    }
    g->ser[g->nser++] = s;
    return true;
}

/*
 * Ordered by a column outside the key (group_col): a first pass over the rows in range
 * collects the values the column holds and the series holding each; the scan then makes
 * one pass per value, in order, over the series holding it, with `column = value` (or IS
 * NULL) as one more constraint. A column with one value per series visits each series
 * once more than a plain scan; every row is returned exactly once whatever the data.
 */
static mesh_status_t group_prepare(mesh_ts_cursor_t *c, int col, mesh_err_t *err)
{
    int64_t limit = c->limit;
    c->limit = -1;
    size_t hint = 0;
    int r;
    while ((r = scan_rows(c)) == 1) {
        mesh_datum_t d;
        row_value(c, col, &d);
        if (!gv_note(c, c->cur, &d, &hint)) {
            gv_free(c);
            return mesh_err_set(err, MESH_NOMEM, "out of memory");
        }
        /* a whole chunk whose rows need no other check holds its dictionary's values (and
         * NULL when it has one): noted at once, the rest of its rows add nothing */
        int cc = c->from_chunk ? c->cmap[col] : -1;
        const mesh_chunk_col_t *ch = cc >= 0 ? &c->chunk.cols[cc] : NULL;
        if (ch && ch->sidx && !c->desc && c->check_chunk == 0 && c->ri == c->rstart &&
            c->rstart == 0 && c->rend == c->chunk.nrows) {
            bool ok = true;
            for (size_t i = 0; i < ch->ndict && ok; i++) {
                mesh_datum_t v = {.type = MESH_V_TEXT, .s = ch->dict[i], .n = ch->dlen[i]};
                ok = gv_note(c, c->cur, &v, &hint);
            }
            if (ok && ch->nulls && memchr(ch->nulls, 1, c->chunk.nrows))
                ok = gv_note(c, c->cur, &null_datum, &hint);
            if (!ok) {
                gv_free(c);
                return mesh_err_set(err, MESH_NOMEM, "out of memory");
            }
            c->ri = c->rend - 1;
        }
    }
    if (r < 0) {
        gv_free(c);
        return mesh_err_set(err, MESH_IO, "ts scan: %s", c->error);
    }
    c->limit = limit;
    c->produced = 0;
    qsort(c->gv, c->ngv, sizeof *c->gv, cmp_gval);
    if (c->plan.order[0].desc) {
        for (size_t i = 0; i < c->ngv / 2; i++) {
            gval_t x = c->gv[i];
            c->gv[i] = c->gv[c->ngv - 1 - i];
            c->gv[c->ngv - 1 - i] = x;
        }
    }
    c->group = true;
    c->gcol = col;
    c->gcons = c->ncons;
    c->gpass = 0;
    c->nsidx = c->pos = 0; /* the first call starts the first pass */
    c->rows_ready = false;
    c->phase = 2;
    c->cur = NULL;
    return MESH_OK;
}

/* Starts the next value's pass; false when every value is done. */
static bool group_next_pass(mesh_ts_cursor_t *c)
{
    if (c->gpass >= c->ngv)
        return false;
    const gval_t *g = &c->gv[c->gpass++];
    memcpy(c->sidx, g->ser, g->nser * sizeof *c->sidx); /* a subset of the scan's series */
    c->nsidx = g->nser;
    c->pos = 0;
    c->phase = 2;
    c->rows_ready = false;
    ccons_t *k = &c->cons[c->gcons];
    memset(k, 0, sizeof *k);
    k->col = c->gcol;
    k->grouped = true;
    c->gbuf_valid = false;
    if (g->s == NULL) {
        k->op = MESH_OP_ISNULL;
    } else {
        k->op = MESH_OP_EQ;
        k->v.type = MESH_V_TEXT;
        k->v.s = g->s;
        k->v.n = g->n;
    }
    c->ncons = c->gcons + 1;
    count_checks(c);
    return true;
}

int mesh__ts_scan_next(mesh_ts_cursor_t *c)
{
    for (;;) {
        int r = scan_rows(c);
        if (r != 0 || !c->group || !group_next_pass(c))
            return r;
    }
}

bool mesh__ts_key_col(const mesh_ts_t *t, int col)
{
    return is_key_col(t, col, NULL);
}

void mesh__ts_scan_value(mesh_ts_cursor_t *c, int col, mesh_datum_t *out)
{
    if (col < 0 || (size_t)col >= c->t->p->ncols || !c->rows_ready) {
        *out = null_datum;
        return;
    }
    row_value(c, col, out);
}

const char *mesh__ts_scan_error(mesh_ts_cursor_t *c)
{
    return c->error;
}

void mesh__ts_scan_close(mesh_ts_cursor_t *c)
{
    if (c == NULL)
        return;
    if (c->q)
        sqlite3_finalize(c->q);
    mesh_chunk_free(&c->chunk);
    rs_free(&c->buf_rows, c->t->nv);
    free(c->sidx);
    gv_free(c);
    for (int i = 0; i < c->ntexts; i++)
        free(c->texts[i]);
    mesh__ts_unref(c->t);
    free(c);
}

mesh_status_t mesh__ts_dump(sqlite3 *db, const mesh_product_t *p, const char *suffix,
                            mesh_ts_row_fn fn, void *arg, mesh_err_t *err)
{
    mesh_ts_t *t = ts_new(p);
    if (t == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT s.key, k.data FROM \"k_%s%s\" k JOIN \"s_%s%s\" s ON s.id = k.series"
             " ORDER BY k.series, k.t_min",
             p->name, suffix, p->name, suffix);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) {
        mesh__ts_unref(t);
        return mesh_err_set(err, MESH_IO, "ts %s: %s", p->name, mesh_crypt_errmsg(db));
    }
    mesh_datum_t *vals = calloc(p->ncols, sizeof *vals);
    rowset_t rows;
    mesh_status_t st = vals ? rs_init(&rows, t->nv, false) : MESH_NOMEM;
    series_t ser;
    memset(&ser, 0, sizeof ser);
    int rc;
    while (st == MESH_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        free(ser.keyvals);
        ser.keyvals = NULL;
        ser.key = (uint8_t *)sqlite3_column_blob(q, 0);
        ser.key_len = (uint32_t)sqlite3_column_bytes(q, 0);
        if ((st = decode_key(t, &ser)) != MESH_OK) {
            mesh_err_set(err, st, "ts %s: a damaged series key", p->name);
            break;
        }
        mesh_chunk_t ch;
        if ((st = mesh_chunk_decode(sqlite3_column_blob(q, 1), (size_t)sqlite3_column_bytes(q, 1),
                                    &ch, err)) != MESH_OK)
            break;
        rows.n = 0;
        mesh_buf_reset(&rows.text);
        st = rs_add_chunk(&rows, &ch, t, INT64_MIN, INT64_MAX);
        mesh_chunk_free(&ch);
        for (size_t r = 0; st == MESH_OK && r < rows.n; r++) {
            for (size_t c = 0; c < p->ncols; c++) {
                size_t k;
                mesh_datum_t *d = &vals[c];
                memset(d, 0, sizeof *d);
                if (is_key_col(t, (int)c, &k)) {
                    *d = ser.keyvals[k];
                } else if ((int)c == t->time_col) {
                    d->type = MESH_V_INT;
                    d->i = rows.t[r];
                } else {
                    int v = t->vc_of[c];
                    if (v < 0 || rs_is_null(&rows, (size_t)v, r)) {
                        d->type = MESH_V_NULL;
                    } else if (t->vc[v].kind == MESH_COL_TEXT) {
                        d->type = MESH_V_TEXT;
                        rs_text(&rows, (size_t)v, r, &d->s, &d->n);
                    } else if (t->vc[v].kind == MESH_COL_REAL) {
                        d->type = MESH_V_REAL;
                        d->d = ((const double *)rows.v[v])[r];
                    } else {
                        d->type = MESH_V_INT;
                        d->i = ((const int64_t *)rows.v[v])[r];
                    }
                }
            }
            st = fn(arg, vals);
        }
    }
    free(ser.keyvals);
    sqlite3_finalize(q);
    if (vals)
        rs_free(&rows, t->nv);
    free(vals);
    mesh__ts_unref(t);
    return st;
}

/* ---- disposal (retention and erasure) ---- */

/* An erased key of a time series: its series and time. */
typedef struct delkey {
    series_t *s;
    int64_t t;
} delkey_t;

static int cmp_delkey(const void *a, const void *b)
{
    const delkey_t *x = a, *y = b;
    if (x->s != y->s)
        return x->s->id < y->s->id ? -1 : 1;
    return x->t < y->t ? -1 : x->t > y->t;
}

/* Whether time tm of series s is erased (keys sorted) or expired. */
static bool disposed(const delkey_t *keys, size_t n, int64_t cutoff, const series_t *s, int64_t tm)
{
    if (tm < cutoff)
        return true;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const delkey_t *k = &keys[mid];
        int c = k->s != s ? (k->s->id < s->id ? -1 : 1) : (k->t < tm ? -1 : k->t > tm);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* Removes the disposed rows of s from row `from` on (rows no reader sees: the caller's
 * promise). Returns how many went. Under the write lock. */
static int64_t filter_rows(mesh_ts_t *t, series_t *s, size_t from, const delkey_t *keys, size_t n,
                           int64_t cutoff)
{
    rowset_t *r = &s->buf;
    size_t w = from;
    for (size_t i = from; i < r->n; i++) {
        if (disposed(keys, n, cutoff, s, r->t[i]))
            continue;
        if (w != i) {
            r->t[w] = r->t[i];
            r->seq[w] = r->seq[i];
            for (size_t k = 0; k < t->nv; k++) {
                memcpy((char *)r->v[k] + w * 8, (char *)r->v[k] + i * 8, 8);
                if (r->nulls[k])
                    r->nulls[k][w] = r->nulls[k][i];
            }
        }
        w++;
    }
    int64_t gone = (int64_t)(r->n - w);
    r->n = w;
    t->buffered -= gone;
    return gone;
}

/* Decodes the erased keys into (series, time), sorted; keys of unknown series are skipped. */
static mesh_status_t parse_keys(mesh_ts_t *t, const uint8_t *keys, size_t len, size_t nkeys,
                                delkey_t **out, size_t *nout, mesh_err_t *err)
{
    *out = NULL;
    *nout = 0;
    if (nkeys == 0)
        return MESH_OK;
    if (nkeys > len)
        return mesh_err_set(err, MESH_CORRUPT, "ts %s: a bad erasure record", t->name);
    delkey_t *v = malloc(nkeys * sizeof *v);
    if (v == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    mesh_cursor_t c;
    mesh_cursor_init(&c, keys, len);
    size_t n = 0;
    for (size_t i = 0; i < nkeys; i++) {
        const uint8_t *start = c.p;
        for (size_t k = 0; k < t->nkey && !c.bad; k++) {
            uint8_t type = mesh_cursor_u8(&c);
            if (type == MESH_V_INT || type == MESH_V_REAL)
                (void)mesh_cursor_u64(&c);
            else if (type == MESH_V_TEXT)
                (void)mesh_cursor_bytes(&c, (size_t)mesh_cursor_uvarint(&c));
            else if (type != MESH_V_NULL)
                c.bad = 1;
        }
        size_t klen = (size_t)(c.p - start);
        uint8_t tt = mesh_cursor_u8(&c);
        int64_t tm = (int64_t)mesh_cursor_u64(&c);
        if (c.bad || tt != MESH_V_INT) {
            free(v);
            return mesh_err_set(err, MESH_CORRUPT, "ts %s: a bad key in an erasure record",
                                t->name);
        }
        const uint8_t *kp = klen ? start : (const uint8_t *)"";
        series_t *s = find_series(t, kp, klen);
        if (s == NULL)
            continue;
        v[n].s = s;
        v[n].t = tm;
        n++;
    }
    qsort(v, n, sizeof *v, cmp_delkey);
    *out = v;
    *nout = n;
    return MESH_OK;
}

/* Rewrites one chunk without its disposed rows (or deletes it). *gone: rows removed. */
static mesh_status_t dispose_chunk(mesh_ts_t *t, sqlite3 *db, series_t *s, int64_t id, int64_t n,
                                   bool whole, const void *data, int len, const delkey_t *keys,
                                   size_t nkeys, int64_t cutoff, int64_t *gone, mesh_err_t *err)
{
    *gone = 0;
    rowset_t m;
    mesh_status_t st = MESH_OK;
    bool have = false;
    if (!whole) {
        mesh_chunk_t ch;
        if ((st = mesh_chunk_decode(data, (size_t)len, &ch, err)) != MESH_OK)
            return st;
        if ((st = rs_init(&m, t->nv, false)) == MESH_OK) {
            have = true;
            st = rs_add_chunk(&m, &ch, t, INT64_MIN, INT64_MAX);
        }
        mesh_chunk_free(&ch);
        /* keep the rows that stay: compact in place */
        size_t w = 0;
        for (size_t i = 0; st == MESH_OK && i < m.n; i++) {
            if (disposed(keys, nkeys, cutoff, s, m.t[i]))
                continue;
            if (w != i) {
                m.t[w] = m.t[i];
                for (size_t k = 0; k < t->nv; k++) {
                    memcpy((char *)m.v[k] + w * 8, (char *)m.v[k] + i * 8, 8);
                    if (m.nulls[k])
                        m.nulls[k][w] = m.nulls[k][i];
                }
            }
            w++;
        }
        if (st == MESH_OK && w == m.n) {
            rs_free(&m, t->nv);
            return MESH_OK; /* nothing of it goes */
        }
        m.n = w;
    }
    if (st == MESH_OK) {
        char sql[128];
        snprintf(sql, sizeof sql, "DELETE FROM \"k_%s\" WHERE id = ?1", t->name);
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) {
            st = mesh_err_set(err, MESH_IO, "ts %s: %s", t->name, mesh_crypt_errmsg(db));
        } else {
            sqlite3_bind_int64(q, 1, id);
            if (sqlite3_step(q) != SQLITE_DONE)
                st = mesh_err_set(err, MESH_IO, "ts %s: %s", t->name, mesh_crypt_errmsg(db));
            sqlite3_finalize(q);
        }
    }
    if (st == MESH_OK && have && m.n > 0)
        st = write_chunks(t, db, s, &m, 0, m.n, err);
    if (st == MESH_OK)
        *gone = n - (have ? (int64_t)m.n : 0);
    if (have)
        rs_free(&m, t->nv);
    return st;
}

static series_t *series_by_id(mesh_ts_t *t, int64_t id)
{
    for (size_t i = 0; i < t->nseries; i++)
        if (t->series[i]->id == id)
            return t->series[i];
    return NULL;
}

mesh_status_t mesh__ts_dispose(mesh_ts_t *t, sqlite3 *db, int64_t cutoff, int64_t limit,
                               const uint8_t *keys, size_t keys_len, size_t nkeys, bool replay,
                               int64_t *deleted, mesh_err_t *err)
{
    *deleted = 0;
    delkey_t *dk = NULL;
    size_t ndk = 0;
    mesh_status_t st = parse_keys(t, keys, keys_len, nkeys, &dk, &ndk, err);
    if (st != MESH_OK)
        return st;
    if (!replay) {
        /* chunks: the expired ones oldest first (up to the limit), or those holding a key */
        char sql[512];
        if (cutoff != INT64_MIN)
            snprintf(sql, sizeof sql,
                     "SELECT id, series, n, t_max < ?1, data FROM \"k_%s\" WHERE t_min < ?1"
                     " ORDER BY t_min, series",
                     t->name);
        else
            snprintf(sql, sizeof sql,
                     "SELECT id, series, n, 0, data FROM \"k_%s\" WHERE series = ?2 AND"
                     " t_min <= ?4 AND t_max >= ?3 ORDER BY t_min",
                     t->name);
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) {
            free(dk);
            return mesh_err_set(err, MESH_IO, "ts %s: %s", t->name, mesh_crypt_errmsg(db));
        }
        /* chunk ids first, then the rewrites (a rewrite inserts into the table scanned) */
        typedef struct {
            int64_t id, series, n;
            bool whole;
        } cref_t;
        cref_t *refs = NULL;
        size_t nrefs = 0, cap = 0;
        int64_t planned = 0;
        size_t ki = 0;
        do {
            if (cutoff == INT64_MIN) {
                if (ki >= ndk)
                    break;
                /* one series' keys: the chunks between its first and last erased time */
                size_t kj = ki;
                while (kj + 1 < ndk && dk[kj + 1].s == dk[ki].s)
                    kj++;
                sqlite3_reset(q);
                sqlite3_bind_int64(q, 2, dk[ki].s->id);
                sqlite3_bind_int64(q, 3, dk[ki].t);
                sqlite3_bind_int64(q, 4, dk[kj].t);
                ki = kj + 1;
            } else {
                sqlite3_bind_int64(q, 1, cutoff);
            }
            int rc;
            while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
                if (limit > 0 && planned >= limit)
                    break;
                if (nrefs == cap) {
                    size_t ncap = cap ? cap * 2 : 64;
                    cref_t *nr = realloc(refs, ncap * sizeof *nr);
                    if (nr == NULL) {
                        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
                        break;
                    }
                    refs = nr;
                    cap = ncap;
                }
                refs[nrefs].id = sqlite3_column_int64(q, 0);
                refs[nrefs].series = sqlite3_column_int64(q, 1);
                refs[nrefs].n = sqlite3_column_int64(q, 2);
                refs[nrefs].whole = sqlite3_column_int(q, 3) != 0;
                planned += refs[nrefs].n;
                nrefs++;
            }
            if (st == MESH_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
                st = mesh_err_set(err, MESH_IO, "ts %s: %s", t->name, mesh_crypt_errmsg(db));
        } while (st == MESH_OK && cutoff == INT64_MIN);
        sqlite3_finalize(q);
        char sql2[128];
        snprintf(sql2, sizeof sql2, "SELECT data FROM \"k_%s\" WHERE id = ?1", t->name);
        sqlite3_stmt *qd = NULL;
        if (st == MESH_OK && nrefs && sqlite3_prepare_v2(db, sql2, -1, &qd, NULL) != SQLITE_OK)
            st = mesh_err_set(err, MESH_IO, "ts %s: %s", t->name, mesh_crypt_errmsg(db));
        for (size_t i = 0; st == MESH_OK && i < nrefs; i++) {
            series_t *s = series_by_id(t, refs[i].series);
            if (s == NULL) {
                st = mesh_err_set(err, MESH_CORRUPT, "ts %s: a chunk of unknown series %lld",
                                  t->name, (long long)refs[i].series);
                break;
            }
            int64_t gone = 0;
            if (refs[i].whole) {
                st = dispose_chunk(t, db, s, refs[i].id, refs[i].n, true, NULL, 0, dk, ndk, cutoff,
                                   &gone, err);
            } else {
                sqlite3_reset(qd);
                sqlite3_bind_int64(qd, 1, refs[i].id);
                if (sqlite3_step(qd) != SQLITE_ROW) {
                    st = mesh_err_set(err, MESH_IO, "ts %s: %s", t->name, mesh_crypt_errmsg(db));
                    break;
                }
                st = dispose_chunk(t, db, s, refs[i].id, refs[i].n, false,
                                   sqlite3_column_blob(qd, 0), sqlite3_column_bytes(qd, 0), dk, ndk,
                                   cutoff, &gone, err);
            }
            if (st == MESH_OK && gone > 0) {
                touch(t, s);
                s->flush_rows -= gone;
                *deleted += gone;
                st = put_series_row(t, db, s, s->flushing ? s->flush_tmax : s->t_max,
                                    s->flushing ? s->flush_seq : s->flushed_seq,
                                    s->rows_persisted + s->flush_rows, err);
            }
        }
        sqlite3_finalize(qd);
        free(refs);
    }
    /* rows in memory that no reader sees: appended after this transaction flushed their
     * series (live), or replayed into the buffers (after a crash) */
    if (st == MESH_OK) {
        pthread_rwlock_wrlock(&t->lock);
        for (size_t i = 0; i < t->nseries; i++) {
            series_t *s = t->series[i];
            size_t from = replay ? s->open_from : s->flushing ? s->flush_end : s->buf.n;
            if (from < s->buf.n)
                *deleted += filter_rows(t, s, from, dk, ndk, cutoff);
        }
        pthread_rwlock_unlock(&t->lock);
    }
    free(dk);
    return st;
}

/* ---- rollups: per series and time bucket, count/sum/min/max of value columns ---- */

typedef struct rbucket {
    int64_t b, rows;
} rbucket_t;

struct mesh_ts_rollup {
    mesh_ts_cursor_t *c;
    int64_t width;
    int ncols;
    int cols[MESH_ROLLUP_MAX_COLS]; /* product columns */
    series_t *ser;                  /* the series of the buckets below */
    rbucket_t *bk;                  /* its buckets, sorted */
    mesh_rollup_acc_t *acc;         /* nbk * ncols */
    size_t nbk, capbk, pos, hint;
    bool pending; /* the cursor holds a row of the next series, not yet counted */
    bool started;
};

/* The accumulators of bucket b of the current series (inserted in order when new). */
static mesh_rollup_acc_t *rollup_bucket(mesh_ts_rollup_t *R, int64_t b, rbucket_t **bk)
{
    size_t i = R->hint;
    if (!(i < R->nbk && R->bk[i].b == b)) {
        if (R->nbk > 0 && R->bk[R->nbk - 1].b < b) {
            i = R->nbk; /* in time order: a new last bucket */
        } else {
            size_t lo = 0, hi = R->nbk;
            while (lo < hi) {
                size_t m = (lo + hi) / 2;
                if (R->bk[m].b < b)
                    lo = m + 1;
                else
                    hi = m;
            }
            i = lo;
        }
        if (i == R->nbk || R->bk[i].b != b) {
            if (R->nbk == R->capbk) {
                size_t cap = R->capbk ? 2 * R->capbk : 64;
                rbucket_t *nb = realloc(R->bk, cap * sizeof *nb);
                if (nb)
                    R->bk = nb;
                mesh_rollup_acc_t *na =
                    nb ? realloc(R->acc, cap * (size_t)(R->ncols ? R->ncols : 1) * sizeof *na)
                       : NULL;
                if (na)
                    R->acc = na;
                if (na == NULL)
                    return NULL;
                R->capbk = cap;
            }
            size_t nc = (size_t)R->ncols;
            memmove(&R->bk[i + 1], &R->bk[i], (R->nbk - i) * sizeof *R->bk);
            memmove(&R->acc[(i + 1) * nc], &R->acc[i * nc], (R->nbk - i) * nc * sizeof *R->acc);
            R->bk[i] = (rbucket_t){.b = b};
            memset(&R->acc[i * nc], 0, nc * sizeof *R->acc);
            R->nbk++;
        }
        R->hint = i;
    }
    *bk = &R->bk[i];
    return &R->acc[i * (size_t)R->ncols];
}

/* Counts the rows of the cursor's current row set into the series' buckets. */
static bool rollup_rows(mesh_ts_rollup_t *R)
{
    mesh_ts_cursor_t *c = R->c;
    bool check = (c->from_chunk ? c->check_chunk : c->check_buf) > 0;
    for (size_t i = c->ri; i < c->rend; i++) {
        c->ri = i;
        if (check && !row_matches(c))
            continue;
        rbucket_t *bk;
        mesh_rollup_acc_t *a = rollup_bucket(R, mesh_store_cagg_bucket(c->rt[i], R->width), &bk);
        if (a == NULL)
            return false;
        bk->rows++;
        for (int k = 0; k < R->ncols; k++) {
            mesh_datum_t d;
            row_value(c, R->cols[k], &d);
            mesh_rollup_acc_t *x = &a[k];
            if (d.type == MESH_V_REAL) {
                if (x->count == 0 || d.d < x->min.d)
                    x->min.d = d.d;
                if (x->count == 0 || d.d > x->max.d)
                    x->max.d = d.d;
                x->sum += d.d;
            } else if (d.type == MESH_V_INT) {
                if (x->count == 0 || d.i < x->min.i)
                    x->min.i = d.i;
                if (x->count == 0 || d.i > x->max.i)
                    x->max.i = d.i;
                x->sum += (double)d.i;
            } else {
                continue;
            }
            x->count++;
        }
    }
    c->ri = c->rend - 1; /* the set is counted: the cursor moves on to the next one */
    return true;
}

mesh_status_t mesh__ts_rollup_open(mesh_ts_cursor_t *c, int64_t width, const int *cols, int ncols,
                                   mesh_ts_rollup_t **out, mesh_err_t *err)
{
    if (width <= 0 || ncols < 0 || ncols > MESH_ROLLUP_MAX_COLS)
        return mesh_err_set(err, MESH_INVALID, "rollup: bad width or columns");
    for (int k = 0; k < ncols; k++) {
        int col = cols[k];
        if (col < 0 || (size_t)col >= c->t->p->ncols || c->t->vc_of[col] < 0 ||
            c->t->vc[c->t->vc_of[col]].kind == MESH_COL_TEXT)
            return mesh_err_set(err, MESH_INVALID, "rollup: column %d is not a number", col);
    }
    if (c->last || c->desc || c->group)
        return mesh_err_set(err, MESH_INVALID, "rollup: a plain scan is needed");
    mesh_ts_rollup_t *R = calloc(1, sizeof *R);
    if (R == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    R->c = c;
    R->width = width;
    R->ncols = ncols;
    memcpy(R->cols, cols, (size_t)ncols * sizeof *cols);
    *out = R;
    return MESH_OK;
}

int mesh__ts_rollup_next(mesh_ts_rollup_t *R)
{
    if (R->started && R->pos + 1 < R->nbk) {
        R->pos++;
        return 1;
    }
    R->started = true;
    R->nbk = R->pos = R->hint = 0;
    mesh_ts_cursor_t *c = R->c;
    for (;;) {
        if (!R->pending) {
            int r = scan_rows(c);
            if (r < 0)
                return -1;
            if (r == 0)
                break;
        }
        R->pending = false;
        if (R->nbk > 0 && c->cur != R->ser) {
            R->pending = true; /* the next series' first set: counted on the next call */
            break;
        }
        R->ser = c->cur;
        if (!rollup_rows(R)) {
            snprintf(c->error, sizeof c->error, "rollup: out of memory");
            return -1;
        }
    }
    return R->nbk > 0;
}

void mesh__ts_rollup_value(const mesh_ts_rollup_t *R, int col, mesh_datum_t *out)
{
    const mesh_ts_t *t = R->c->t;
    if (R->nbk == 0 || col < 0 || (size_t)col >= t->p->ncols || t->key_of[col] < 0) {
        *out = null_datum;
        return;
    }
    *out = R->ser->keyvals[t->key_of[col]];
}

int64_t mesh__ts_rollup_bucket(const mesh_ts_rollup_t *R, int64_t *rows)
{
    *rows = R->nbk ? R->bk[R->pos].rows : 0;
    return R->nbk ? R->bk[R->pos].b : 0;
}

const mesh_rollup_acc_t *mesh__ts_rollup_acc(const mesh_ts_rollup_t *R, int k)
{
    static const mesh_rollup_acc_t none;
    if (R->nbk == 0 || k < 0 || k >= R->ncols)
        return &none;
    return &R->acc[R->pos * (size_t)R->ncols + (size_t)k];
}

const char *mesh__ts_rollup_error(const mesh_ts_rollup_t *R)
{
    return R->c->error;
}

void mesh__ts_rollup_close(mesh_ts_rollup_t *R)
{
    if (R == NULL)
        return;
    free(R->bk);
    free(R->acc);
    free(R);
}
