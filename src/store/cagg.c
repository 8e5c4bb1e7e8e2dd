/*
 * cagg.c - continuous aggregates: a derived product that buckets a time series (docs/derived.md,
 * decision 0023).
 *
 * The aggregate is an ordinary row-layout product p_<agg> with the key (group columns...,
 * bucket). Its columns are found by name: `bucket`, `rows` (rows in the bucket), `last_time`
 * (time of its newest row) and, per aggregated source column c, c_count, c_min, c_max, c_sum,
 * c_avg and c_last (c of the newest row).
 *
 * Maintenance, inside the writer's transaction (the savepoint of the batch record, so the
 * aggregate commits with the rows and log replay rebuilds it): the batch's rows are grouped per
 * (group, bucket) in memory, then each group is merged into its bucket row (one lookup, one
 * write). A row newer than everything its bucket holds cannot be a rewrite of a row already
 * counted, so such deltas are exact. A row at or before the bucket's last_time (late or
 * out of order, or a key written again, which merges in the source: decision 6) may replace a
 * counted row: the delta is merged anyway and the bucket is marked stale in _cagg_stale, in
 * the same transaction. mesh_store_cagg_recompute, run by the domain writer right after the
 * commit (and at open, after replay), recomputes stale buckets from the source's committed
 * rows through a scan: the source is the truth, the aggregate never drifts from it.
 *
 * An erasure in the source marks the buckets that held the erased rows (each erased key
 * carries the group columns and the time: mesh_store_cagg_erased), so only they are
 * recomputed. A marker row (an empty group, bucket INT64_MIN) asks for a full rebuild: a new
 * aggregate over existing rows, a changed definition or source contract.
 */
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "store/internal.h"
#include "store/store.h"

#define REBUILD_BUCKET INT64_MIN

/* ---- aggregate state ---- */

typedef struct cstate {
    int64_t cnt;
    double min, max, sum, last;
    bool last_null; /* the newest row's value was NULL */
} cstate_t;

typedef struct group {
    uint8_t *key; /* encoded group values (see key_add) */
    size_t key_len;
    int64_t bucket;
    int64_t rows;
    int64_t last_time, min_time;
    bool maybe_dup; /* two rows at one time in this batch */
    cstate_t *c;
} group_t;

typedef struct gtable {
    group_t *v;
    size_t n, cap; /* open addressing, cap a power of two */
    size_t ncols;
} gtable_t;

/* The aggregate's shape: indexes of its columns and of the source's. */
typedef struct shape {
    const mesh_product_t *agg, *src;
    size_t ngroup;
    int sgroup[MESH_DERIVE_MAX_COLS], agroup[MESH_DERIVE_MAX_COLS];
    int stime;
    int a_bucket, a_rows, a_last_time;
    size_t ncols;
    int scol[MESH_DERIVE_MAX_COLS];
    int a_cnt[MESH_DERIVE_MAX_COLS], a_min[MESH_DERIVE_MAX_COLS], a_max[MESH_DERIVE_MAX_COLS],
        a_sum[MESH_DERIVE_MAX_COLS], a_avg[MESH_DERIVE_MAX_COLS], a_last[MESH_DERIVE_MAX_COLS];
    int64_t width;
} shape_t;

static int col_named(const mesh_product_t *p, const char *a, const char *b)
{
    char n[160];
    snprintf(n, sizeof n, "%s%s%s", a, b ? "_" : "", b ? b : "");
    return mesh_product_col(p, n, strlen(n));
}

static mesh_status_t shape_of(const mesh_product_t *agg, const mesh_product_t *src, shape_t *sh,
                              mesh_err_t *err)
{
    const mesh_derivation_t *d = agg->derive;
    memset(sh, 0, sizeof *sh);
    sh->agg = agg;
    sh->src = src;
    sh->width = d->bucket_ns;
    sh->stime = src->time_col;
    if (sh->stime < 0)
        return mesh_err_set(err, MESH_INVALID, "%s is not a time series", src->name);
    if (d->group_given) {
        sh->ngroup = d->ngroup;
        for (size_t i = 0; i < d->ngroup; i++)
            sh->sgroup[i] = mesh_product_col(src, d->group[i], strlen(d->group[i]));
    } else {
        for (size_t i = 0; i < src->nkey && sh->ngroup < MESH_DERIVE_MAX_COLS; i++)
            if (src->key_cols[i] != src->time_col)
                sh->sgroup[sh->ngroup++] = src->key_cols[i];
    }
    for (size_t i = 0; i < sh->ngroup; i++) {
        if (sh->sgroup[i] < 0)
            return mesh_err_set(err, MESH_INVALID, "%s: a groupBy column is not in %s", agg->name,
                                src->name);
        sh->agroup[i] = col_named(agg, src->cols[sh->sgroup[i]].name, NULL);
    }
    sh->a_bucket = col_named(agg, "bucket", NULL);
    sh->a_rows = col_named(agg, "rows", NULL);
    sh->a_last_time = col_named(agg, "last_time", NULL);
    sh->ncols = d->ncolumns;
    for (size_t i = 0; i < d->ncolumns; i++) {
        const char *c = d->columns[i];
        sh->scol[i] = mesh_product_col(src, c, strlen(c));
        sh->a_cnt[i] = col_named(agg, c, "count");
        sh->a_min[i] = col_named(agg, c, "min");
        sh->a_max[i] = col_named(agg, c, "max");
        sh->a_sum[i] = col_named(agg, c, "sum");
        sh->a_avg[i] = col_named(agg, c, "avg");
        sh->a_last[i] = col_named(agg, c, "last");
        if (sh->scol[i] < 0 || sh->a_cnt[i] < 0 || sh->a_min[i] < 0 || sh->a_max[i] < 0 ||
            sh->a_sum[i] < 0 || sh->a_avg[i] < 0 || sh->a_last[i] < 0)
            return mesh_err_set(err, MESH_INVALID, "%s: the columns of %s do not match", agg->name,
                                c);
    }
    for (size_t i = 0; i < sh->ngroup; i++)
        if (sh->agroup[i] < 0)
            return mesh_err_set(err, MESH_INVALID, "%s: a group column is missing", agg->name);
    if (sh->a_bucket < 0 || sh->a_rows < 0 || sh->a_last_time < 0)
        return mesh_err_set(err, MESH_INVALID, "%s: bucket, rows or last_time is missing",
                            agg->name);
    return MESH_OK;
}

int64_t mesh_store_cagg_bucket(int64_t t, int64_t width)
{
    int64_t r = t % width;
    if (r < 0)
        r += width;
    return t - r;
}

/* ---- group keys: per value a type byte, then 8 bytes (integer, LE) or 4 + n (text) ---- */

static mesh_status_t key_add_datum(mesh_buf_t *k, const mesh_datum_t *v)
{
    uint8_t hdr = (uint8_t)v->type;
    mesh_status_t st = mesh_buf_add(k, &hdr, 1);
    if (st != MESH_OK)
        return st;
    if (v->type == MESH_V_INT) {
        uint8_t b[8];
        for (int i = 0; i < 8; i++)
            b[i] = (uint8_t)((uint64_t)v->i >> (8 * i));
        return mesh_buf_add(k, b, 8);
    }
    if (v->type == MESH_V_REAL)
        return mesh_buf_add(k, &v->d, sizeof v->d);
    if (v->type == MESH_V_TEXT) {
        uint32_t n = (uint32_t)v->n;
        uint8_t b[4] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24)};
        if ((st = mesh_buf_add(k, b, 4)) != MESH_OK)
            return st;
        return mesh_buf_add(k, v->s, v->n);
    }
    return MESH_OK;
}

/* Decodes the i-th value of a key (bounded: a damaged key gives MESH_CORRUPT). */
static mesh_status_t key_values(const uint8_t *p, size_t n, mesh_datum_t *out, size_t nvals)
{
    size_t off = 0;
    for (size_t i = 0; i < nvals; i++) {
        memset(&out[i], 0, sizeof out[i]);
        if (off >= n)
            return MESH_CORRUPT;
        out[i].type = p[off++];
        if (out[i].type == MESH_V_INT) {
            if (n - off < 8)
                return MESH_CORRUPT;
            uint64_t u = 0;
            for (int b = 7; b >= 0; b--)
                u = u << 8 | p[off + (size_t)b];
            out[i].i = (int64_t)u;
            off += 8;
        } else if (out[i].type == MESH_V_REAL) {
            if (n - off < sizeof(double))
                return MESH_CORRUPT;
            memcpy(&out[i].d, p + off, sizeof(double));
            off += sizeof(double);
        } else if (out[i].type == MESH_V_TEXT) {
            if (n - off < 4)
                return MESH_CORRUPT;
            uint32_t l = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16 |
                         (uint32_t)p[off + 3] << 24;
            off += 4;
            if (n - off < l)
                return MESH_CORRUPT;
            out[i].s = (const char *)p + off;
            out[i].n = l;
            off += l;
        } else if (out[i].type != MESH_V_NULL) {
            return MESH_CORRUPT;
        }
    }
    return off == n ? MESH_OK : MESH_CORRUPT;
}

static uint64_t hash_of(const uint8_t *k, size_t n, int64_t bucket)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ k[i]) * 1099511628211ULL;
    return (h ^ (uint64_t)bucket) * 1099511628211ULL;
}

static void gt_free(gtable_t *g)
{
    for (size_t i = 0; i < g->cap; i++) {
        free(g->v[i].key);
        free(g->v[i].c);
    }
    free(g->v);
    memset(g, 0, sizeof *g);
}

static mesh_status_t gt_grow(gtable_t *g)
{
    size_t ncap = g->cap ? g->cap * 2 : 64;
    group_t *nv = calloc(ncap, sizeof *nv);
    if (nv == NULL)
        return MESH_NOMEM;
    for (size_t i = 0; i < g->cap; i++) {
        if (g->v[i].key == NULL)
            continue;
        size_t j = hash_of(g->v[i].key, g->v[i].key_len, g->v[i].bucket) & (ncap - 1);
        while (nv[j].key)
            j = (j + 1) & (ncap - 1);
        nv[j] = g->v[i];
    }
    free(g->v);
    g->v = nv;
    g->cap = ncap;
    return MESH_OK;
}

/* The group of (key, bucket), created when absent. NULL when out of memory. */
static group_t *gt_get(gtable_t *g, const uint8_t *key, size_t n, int64_t bucket)
{
    if ((g->n + 1) * 2 > g->cap && gt_grow(g) != MESH_OK)
        return NULL;
    size_t j = hash_of(key, n, bucket) & (g->cap - 1);
    for (; g->v[j].key; j = (j + 1) & (g->cap - 1))
        if (g->v[j].bucket == bucket && g->v[j].key_len == n && memcmp(g->v[j].key, key, n) == 0)
            return &g->v[j];
    group_t *e = &g->v[j];
    e->key = malloc(n ? n : 1);
    e->c = calloc(g->ncols ? g->ncols : 1, sizeof *e->c);
    if (e->key == NULL || e->c == NULL) {
        free(e->key);
        free(e->c);
        e->key = NULL;
        e->c = NULL;
        return NULL;
    }
    memcpy(e->key, key, n);
    e->key_len = n;
    e->bucket = bucket;
    e->last_time = INT64_MIN;
    e->min_time = INT64_MAX;
    g->n++;
    return e;
}

/* Adds one row (its time and the aggregated columns' values) to a group. */
static void group_add(group_t *e, size_t ncols, int64_t t, const mesh_datum_t *vals)
{
    if (t == e->last_time || (t < e->last_time && t >= e->min_time))
        e->maybe_dup = true; /* only a recompute knows which of equal times wins */
    bool newest = t >= e->last_time;
    e->rows++;
    if (t < e->min_time)
        e->min_time = t;
    if (newest)
        e->last_time = t;
    for (size_t i = 0; i < ncols; i++) {
        cstate_t *c = &e->c[i];
        const mesh_datum_t *v = &vals[i];
        bool null = v->type != MESH_V_INT && v->type != MESH_V_REAL;
        double x = v->type == MESH_V_INT ? (double)v->i : v->d;
        if (newest) {
            c->last_null = null;
            c->last = null ? 0 : x;
        }
        if (null)
            continue;
        if (c->cnt == 0 || x < c->min)
            c->min = x;
        if (c->cnt == 0 || x > c->max)
            c->max = x;
        c->sum += x;
        c->cnt++;
    }
}

/* ---- SQL on the aggregate's table ---- */

typedef struct stmts {
    sqlite3_stmt *get, *put, *del, *stale;
} stmts_t;

static void stmts_free(stmts_t *q)
{
    sqlite3_finalize(q->get);
    sqlite3_finalize(q->put);
    sqlite3_finalize(q->del);
    sqlite3_finalize(q->stale);
    memset(q, 0, sizeof *q);
}

static void add_ident(mesh_buf_t *b, const char *a, const char *suffix)
{
    mesh_buf_addc(b, '"');
    for (const char *c = a; *c; c++) {
        if (*c == '"')
            mesh_buf_addc(b, '"');
        mesh_buf_addc(b, *c);
    }
    if (suffix)
        mesh_buf_adds(b, suffix);
    mesh_buf_addc(b, '"');
}

static void add_where_key(mesh_buf_t *b, const shape_t *sh)
{
    mesh_buf_adds(b, " WHERE ");
    for (size_t i = 0; i < sh->ngroup; i++) {
        add_ident(b, sh->agg->cols[sh->agroup[i]].name, NULL);
        mesh_buf_printf(b, " = ?%zu AND ", i + 1);
    }
    mesh_buf_adds(b, "\"bucket\" = ?");
    mesh_buf_printf(b, "%zu", sh->ngroup + 1);
}

static mesh_status_t prep(sqlite3 *db, mesh_buf_t *b, sqlite3_stmt **out, mesh_err_t *err)
{
    if (b->data == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    if (sqlite3_prepare_v2(db, b->data, -1, out, NULL) != SQLITE_OK)
        return mesh_err_set(err, MESH_IO, "continuous aggregate: %s", sqlite3_errmsg(db));
    return MESH_OK;
}

static mesh_status_t stmts_prepare(sqlite3 *db, const shape_t *sh, stmts_t *q, mesh_err_t *err)
{
    const mesh_product_t *a = sh->agg;
    char table[160];
    snprintf(table, sizeof table, "p_%s", a->name);
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 20);
    /* get: rows, last_time, then per column count, min, max, sum, last */
    mesh_buf_adds(&b, "SELECT \"rows\", \"last_time\"");
    for (size_t i = 0; i < sh->ncols; i++) {
        static const char *const sfx[] = {"_count", "_min", "_max", "_sum", "_last"};
        for (size_t k = 0; k < 5; k++) {
            mesh_buf_addc(&b, ',');
            add_ident(&b, a->derive->columns[i], sfx[k]);
        }
    }
    mesh_buf_adds(&b, " FROM ");
    add_ident(&b, table, NULL);
    add_where_key(&b, sh);
    mesh_status_t st = prep(db, &b, &q->get, err);
    /* put: every column, by position */
    mesh_buf_reset(&b);
    mesh_buf_adds(&b, "INSERT OR REPLACE INTO ");
    add_ident(&b, table, NULL);
    mesh_buf_adds(&b, "(");
    for (size_t i = 0; i < a->ncols; i++) {
        if (i)
            mesh_buf_addc(&b, ',');
        add_ident(&b, a->cols[i].name, NULL);
    }
    mesh_buf_adds(&b, ") VALUES (");
    for (size_t i = 0; i < a->ncols; i++)
        mesh_buf_printf(&b, "%s?%zu", i ? "," : "", i + 1);
    mesh_buf_addc(&b, ')');
    if (st == MESH_OK)
        st = prep(db, &b, &q->put, err);
    mesh_buf_reset(&b);
    mesh_buf_adds(&b, "DELETE FROM ");
    add_ident(&b, table, NULL);
    add_where_key(&b, sh);
    if (st == MESH_OK)
        st = prep(db, &b, &q->del, err);
    mesh_buf_reset(&b);
    mesh_buf_adds(&b,
                  "INSERT OR IGNORE INTO _cagg_stale(product, gkey, bucket) VALUES (?1, ?2, ?3)");
    if (st == MESH_OK)
        st = prep(db, &b, &q->stale, err);
    mesh_buf_free(&b);
    if (st != MESH_OK)
        stmts_free(q);
    return st;
}

static void bind_datum(sqlite3_stmt *q, int i, const mesh_datum_t *v)
{
    switch (v->type) {
    case MESH_V_INT:
        sqlite3_bind_int64(q, i, v->i);
        break;
    case MESH_V_REAL:
        sqlite3_bind_double(q, i, v->d);
        break;
    case MESH_V_TEXT:
        sqlite3_bind_text(q, i, v->s, (int)v->n, SQLITE_TRANSIENT);
        break;
    default:
        sqlite3_bind_null(q, i);
    }
}

static mesh_status_t bind_key(sqlite3_stmt *q, const shape_t *sh, const group_t *e)
{
    mesh_datum_t kv[MESH_DERIVE_MAX_COLS];
    if (key_values(e->key, e->key_len, kv, sh->ngroup) != MESH_OK)
        return MESH_CORRUPT;
    for (size_t i = 0; i < sh->ngroup; i++)
        bind_datum(q, (int)i + 1, &kv[i]);
    sqlite3_bind_int64(q, (int)sh->ngroup + 1, e->bucket);
    return MESH_OK;
}

/* Writes a group's state as its bucket row (rows == 0: deletes the row). *delta: rows of the
 * aggregate added (+1) or removed (-1) when existed says whether it had a row. */
static mesh_status_t write_group(sqlite3 *db, const shape_t *sh, const stmts_t *q, const group_t *e,
                                 bool existed, int64_t *delta, mesh_err_t *err)
{
    sqlite3_stmt *s = e->rows ? q->put : q->del;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    mesh_datum_t kv[MESH_DERIVE_MAX_COLS];
    if (key_values(e->key, e->key_len, kv, sh->ngroup) != MESH_OK)
        return mesh_err_set(err, MESH_CORRUPT, "%s: a damaged group key", sh->agg->name);
    if (e->rows == 0) {
        for (size_t i = 0; i < sh->ngroup; i++)
            bind_datum(s, (int)i + 1, &kv[i]);
        sqlite3_bind_int64(s, (int)sh->ngroup + 1, e->bucket);
    } else {
        for (size_t i = 0; i < sh->ngroup; i++)
            bind_datum(s, sh->agroup[i] + 1, &kv[i]);
        sqlite3_bind_int64(s, sh->a_bucket + 1, e->bucket);
        sqlite3_bind_int64(s, sh->a_rows + 1, e->rows);
        sqlite3_bind_int64(s, sh->a_last_time + 1, e->last_time);
        for (size_t i = 0; i < sh->ncols; i++) {
            const cstate_t *c = &e->c[i];
            sqlite3_bind_int64(s, sh->a_cnt[i] + 1, c->cnt);
            if (c->cnt) {
                sqlite3_bind_double(s, sh->a_min[i] + 1, c->min);
                sqlite3_bind_double(s, sh->a_max[i] + 1, c->max);
                sqlite3_bind_double(s, sh->a_sum[i] + 1, c->sum);
                sqlite3_bind_double(s, sh->a_avg[i] + 1, c->sum / (double)c->cnt);
            }
            if (!c->last_null)
                sqlite3_bind_double(s, sh->a_last[i] + 1, c->last);
        }
    }
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return mesh_err_set(err, rc == SQLITE_FULL ? MESH_NOSPACE : MESH_IO, "%s: %s",
                            sh->agg->name, sqlite3_errmsg(db));
    if (e->rows && !existed)
        (*delta)++;
    else if (!e->rows && existed && sqlite3_changes(db) > 0)
        (*delta)--;
    return MESH_OK;
}

/* Reads a bucket's row into e (which holds the batch's delta) and merges: *existed tells
 * whether there was one, *stale whether the merge may have counted a row twice. */
static mesh_status_t merge_existing(sqlite3 *db, const shape_t *sh, const stmts_t *q, group_t *e,
                                    bool *existed, bool *stale, mesh_err_t *err)
{
    sqlite3_stmt *g = q->get;
    sqlite3_reset(g);
    if (bind_key(g, sh, e) != MESH_OK)
        return mesh_err_set(err, MESH_CORRUPT, "%s: a damaged group key", sh->agg->name);
    int rc = sqlite3_step(g);
    *existed = rc == SQLITE_ROW;
    *stale = e->maybe_dup;
    if (rc == SQLITE_ROW) {
        int64_t rows = sqlite3_column_int64(g, 0), lt = sqlite3_column_int64(g, 1);
        if (e->min_time <= lt)
            *stale = true;
        bool ours_newest = e->last_time > lt;
        for (size_t i = 0; i < sh->ncols; i++) {
            cstate_t *c = &e->c[i];
            int base = 2 + (int)i * 5;
            int64_t cnt = sqlite3_column_int64(g, base);
            if (cnt > 0) {
                double mn = sqlite3_column_double(g, base + 1),
                       mx = sqlite3_column_double(g, base + 2);
                if (c->cnt == 0 || mn < c->min)
                    c->min = mn;
                if (c->cnt == 0 || mx > c->max)
                    c->max = mx;
                c->sum += sqlite3_column_double(g, base + 3);
                c->cnt += cnt;
            }
            if (!ours_newest) {
                c->last_null = sqlite3_column_type(g, base + 4) == SQLITE_NULL;
                c->last = sqlite3_column_double(g, base + 4);
            }
        }
        e->rows += rows;
        if (!ours_newest)
            e->last_time = lt;
    } else if (rc != SQLITE_DONE) {
        sqlite3_reset(g);
        return mesh_err_set(err, MESH_IO, "%s: %s", sh->agg->name, sqlite3_errmsg(db));
    }
    sqlite3_reset(g);
    return MESH_OK;
}

static mesh_status_t mark_stale(sqlite3 *db, const stmts_t *q, const char *agg, const uint8_t *key,
                                size_t n, int64_t bucket, mesh_err_t *err)
{
    sqlite3_stmt *s = q->stale;
    sqlite3_reset(s);
    sqlite3_bind_text(s, 1, agg, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, n ? (const void *)key : "", (int)n, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, bucket);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return mesh_err_set(err, MESH_IO, "%s: stale mark: %s", agg, sqlite3_errmsg(db));
    return MESH_OK;
}

static void datum_of(const mesh_batch_t *b, const mesh_value_t *v, mesh_datum_t *out)
{
    memset(out, 0, sizeof *out);
    out->type = v->type;
    if (v->type == MESH_V_INT)
        out->i = v->u.i;
    else if (v->type == MESH_V_REAL)
        out->d = v->u.d;
    else if (v->type == MESH_V_TEXT) {
        out->s = b->arena.data + v->u.s.off;
        out->n = v->u.s.len;
    }
}

mesh_status_t mesh_store_cagg_batch(mesh_store_t *s, const mesh_product_t *agg,
                                    const mesh_product_t *src, const mesh_batch_t *b,
                                    const mesh_part_t *part, mesh_err_t *err)
{
    if (part->nrows == 0)
        return MESH_OK;
    shape_t sh;
    mesh_status_t st = shape_of(agg, src, &sh, err);
    if (st != MESH_OK)
        return st;
    sqlite3 *db = mesh__store_db(s);
    gtable_t g = {.ncols = sh.ncols};
    mesh_buf_t key;
    mesh_buf_init(&key, 1 << 20);
    mesh_datum_t vals[MESH_DERIVE_MAX_COLS];
    for (size_t r = 0; r < part->nrows && st == MESH_OK; r++) {
        const mesh_value_t *row = &part->vals[r * part->ncols];
        if (row[sh.stime].type != MESH_V_INT)
            continue; /* the time column is required in a time series */
        mesh_buf_reset(&key);
        for (size_t i = 0; i < sh.ngroup && st == MESH_OK; i++) {
            mesh_datum_t d;
            datum_of(b, &row[sh.sgroup[i]], &d);
            st = key_add_datum(&key, &d);
        }
        for (size_t i = 0; i < sh.ncols; i++)
            datum_of(b, &row[sh.scol[i]], &vals[i]);
        int64_t t = row[sh.stime].u.i;
        group_t *e = st == MESH_OK ? gt_get(&g, (const uint8_t *)key.data, key.len,
                                            mesh_store_cagg_bucket(t, sh.width))
                                   : NULL;
        if (e == NULL) {
            if (st == MESH_OK)
                st = mesh_err_set(err, MESH_NOMEM, "out of memory");
            break;
        }
        group_add(e, sh.ncols, t, vals);
    }
    mesh_buf_free(&key);
    stmts_t q = {0};
    if (st == MESH_OK)
        st = stmts_prepare(db, &sh, &q, err);
    int64_t delta = 0;
    for (size_t i = 0; i < g.cap && st == MESH_OK; i++) {
        group_t *e = &g.v[i];
        if (e->key == NULL)
            continue;
        bool existed = false, stale = false;
        st = merge_existing(db, &sh, &q, e, &existed, &stale, err);
        if (st == MESH_OK)
            st = write_group(db, &sh, &q, e, existed, &delta, err);
        if (st == MESH_OK && stale)
            st = mark_stale(db, &q, agg->name, e->key, e->key_len, e->bucket, err);
    }
    if (st == MESH_OK && delta)
        st = mesh__store_rows_add(s, agg->name, delta, err);
    stmts_free(&q);
    gt_free(&g);
    return st;
}

mesh_status_t mesh_store_cagg_invalidate(mesh_store_t *s, const char *agg, mesh_err_t *err)
{
    sqlite3 *db = mesh__store_db(s);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db,
                           "INSERT OR IGNORE INTO _cagg_stale(product, gkey, bucket) "
                           "VALUES (?1, x'', ?2)",
                           -1, &q, NULL) != SQLITE_OK)
        return mesh_err_set(err, MESH_IO, "stale mark: %s", sqlite3_errmsg(db));
    sqlite3_bind_text(q, 1, agg, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, REBUILD_BUCKET);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        return mesh_err_set(err, MESH_IO, "stale mark: %s", sqlite3_errmsg(db));
    return MESH_OK;
}

/* Decodes one datum of an erasure key (mesh_store_key_add's encoding); false on a damaged
 * key. Text points into the key. */
static bool erased_datum(mesh_cursor_t *c, mesh_datum_t *v)
{
    memset(v, 0, sizeof *v);
    v->type = mesh_cursor_u8(c);
    if (v->type == MESH_V_INT) {
        v->i = (int64_t)mesh_cursor_u64(c);
    } else if (v->type == MESH_V_REAL) {
        uint64_t u = mesh_cursor_u64(c);
        memcpy(&v->d, &u, 8);
    } else if (v->type == MESH_V_TEXT) {
        uint64_t n = mesh_cursor_uvarint(c);
        const uint8_t *p = c->bad || n > SIZE_MAX ? NULL : mesh_cursor_bytes(c, (size_t)n);
        if (p == NULL)
            return false;
        v->s = (const char *)p;
        v->n = (size_t)n;
    } else if (v->type != MESH_V_NULL) {
        return false;
    }
    return !c->bad;
}

mesh_status_t mesh_store_cagg_erased(mesh_store_t *s, const mesh_product_t *agg,
                                     const mesh_product_t *src, const mesh_dispose_t *d,
                                     int64_t *marks, mesh_err_t *err)
{
    *marks = 0;
    shape_t sh;
    mesh_status_t st = shape_of(agg, src, &sh, err);
    if (st != MESH_OK)
        return st;
    /* where the group columns and the time are in each key */
    size_t nmatch = src->nkey ? src->nkey : src->ncols;
    int at_group[MESH_DERIVE_MAX_COLS], at_time = -1;
    for (size_t g = 0; g < sh.ngroup; g++)
        at_group[g] = -1;
    for (size_t k = 0; k < nmatch; k++) {
        int col = src->nkey ? src->key_cols[k] : (int)k;
        if (col == sh.stime)
            at_time = (int)k;
        for (size_t g = 0; g < sh.ngroup; g++)
            if (sh.sgroup[g] == col)
                at_group[g] = (int)k;
    }
    bool whole = at_time < 0 || nmatch > 64;
    for (size_t g = 0; g < sh.ngroup; g++)
        whole = whole || at_group[g] < 0;
    if (whole) {
        *marks = -1;
        return mesh_store_cagg_invalidate(s, agg->name, err);
    }
    stmts_t q = {0};
    if ((st = stmts_prepare(mesh__store_db(s), &sh, &q, err)) != MESH_OK)
        return st;
    mesh_cursor_t c;
    mesh_cursor_init(&c, d->keys, d->keys_len);
    mesh_buf_t key;
    mesh_buf_init(&key, 1 << 20);
    mesh_datum_t vals[64];
    for (size_t i = 0; i < d->nkeys && st == MESH_OK; i++) {
        for (size_t k = 0; k < nmatch && st == MESH_OK; k++)
            if (!erased_datum(&c, &vals[k]))
                st = mesh_err_set(err, MESH_CORRUPT, "%s: a damaged erasure key", agg->name);
        if (st != MESH_OK)
            break;
        if (vals[at_time].type != MESH_V_INT)
            continue; /* no row of the aggregate holds a row without a time */
        mesh_buf_reset(&key);
        for (size_t g = 0; g < sh.ngroup && st == MESH_OK; g++) {
            mesh_datum_t v = vals[at_group[g]];
            /* as the source's rows hold it: an integer column's integral value is an integer */
            mesh_ltype_t t = src->cols[sh.sgroup[g]].type;
            if (v.type == MESH_V_REAL && (t == MESH_LT_INTEGER || t == MESH_LT_TIMESTAMP) &&
                v.d == (double)(int64_t)v.d) {
                v.i = (int64_t)v.d;
                v.type = MESH_V_INT;
            }
            st = key_add_datum(&key, &v);
        }
        if (st == MESH_OK)
            st = mark_stale(mesh__store_db(s), &q, agg->name, (const uint8_t *)key.data, key.len,
                            mesh_store_cagg_bucket(vals[at_time].i, sh.width), err);
        if (st == MESH_OK)
            (*marks)++;
    }
    mesh_buf_free(&key);
    stmts_free(&q);
    return st;
}

mesh_status_t mesh_store_cagg_forget(mesh_store_t *s, const char *agg, mesh_err_t *err)
{
    sqlite3 *db = mesh__store_db(s);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, "DELETE FROM _cagg_stale WHERE product = ?1", -1, &q, NULL) !=
        SQLITE_OK)
        return mesh_err_set(err, MESH_IO, "stale marks: %s", sqlite3_errmsg(db));
    sqlite3_bind_text(q, 1, agg, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        return mesh_err_set(err, MESH_IO, "stale marks: %s", sqlite3_errmsg(db));
    return MESH_OK;
}

mesh_status_t mesh_store_cagg_pending(mesh_store_t *s, const char *agg, bool *out)
{
    sqlite3 *db = mesh__store_db(s);
    sqlite3_stmt *q;
    *out = false;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM _cagg_stale WHERE product = ?1 LIMIT 1", -1, &q,
                           NULL) != SQLITE_OK)
        return MESH_IO;
    sqlite3_bind_text(q, 1, agg, -1, SQLITE_STATIC);
    *out = sqlite3_step(q) == SQLITE_ROW;
    sqlite3_finalize(q);
    return MESH_OK;
}

/* ---- recomputing from the source ---- */

typedef struct stale {
    uint8_t *key;
    size_t n;
    int64_t bucket;
} stale_t;

/* Reads the source through a scan (constrained to a group and a bucket when e is not NULL,
 * else every row) and accumulates into g. */
static mesh_status_t scan_source(mesh_store_t *s, mesh_store_reader_t *r, const shape_t *sh,
                                 const stale_t *one, gtable_t *g, mesh_err_t *err)
{
    mesh_scan_plan_t plan;
    memset(&plan, 0, sizeof plan);
    mesh_datum_t kv[MESH_DERIVE_MAX_COLS], args[MESH_DERIVE_MAX_COLS + 2];
    if (one) {
        if (key_values(one->key, one->n, kv, sh->ngroup) != MESH_OK)
            return mesh_err_set(err, MESH_CORRUPT, "%s: a damaged stale mark", sh->agg->name);
        for (size_t i = 0; i < sh->ngroup; i++) {
            plan.cons[plan.ncons].col = sh->sgroup[i];
            plan.cons[plan.ncons++].op = MESH_OP_EQ;
        }
        plan.cons[plan.ncons].col = sh->stime;
        plan.cons[plan.ncons++].op = MESH_OP_GE;
        plan.cons[plan.ncons].col = sh->stime;
        plan.cons[plan.ncons++].op = MESH_OP_LT;
    }
    plan.cols_used = ~(uint64_t)0;
    mesh_store_plan(s, sh->src, MESH_VIEW_ROWS, &plan);
    int nargs = 0;
    for (int i = 0; i < plan.ncons; i++) {
        if (!plan.cons[i].used)
            continue;
        if ((size_t)i < sh->ngroup) {
            args[nargs++] = kv[i];
        } else {
            memset(&args[nargs], 0, sizeof args[nargs]);
            args[nargs].type = MESH_V_INT;
            args[nargs++].i = (size_t)i == sh->ngroup ? one->bucket : one->bucket + sh->width;
        }
    }
    mesh_scan_t *sc;
    mesh_status_t st = mesh_scan_open(r, sh->src, MESH_VIEW_ROWS, &plan, args, nargs, &sc, err);
    if (st != MESH_OK)
        return st;
    mesh_buf_t key;
    mesh_buf_init(&key, 1 << 20);
    mesh_datum_t vals[MESH_DERIVE_MAX_COLS];
    int rc;
    while (st == MESH_OK && (rc = mesh_scan_next(sc)) == 1) {
        mesh_datum_t t;
        mesh_scan_value(sc, sh->stime, &t);
        if (t.type != MESH_V_INT)
            continue;
        int64_t bucket = mesh_store_cagg_bucket(t.i, sh->width);
        if (one && bucket != one->bucket)
            continue;
        mesh_buf_reset(&key);
        for (size_t i = 0; i < sh->ngroup && st == MESH_OK; i++) {
            mesh_datum_t d;
            mesh_scan_value(sc, sh->sgroup[i], &d);
            st = key_add_datum(&key, &d);
        }
        if (st != MESH_OK)
            break;
        if (one && (key.len != one->n || memcmp(key.data, one->key, key.len) != 0))
            continue;
        for (size_t i = 0; i < sh->ncols; i++)
            mesh_scan_value(sc, sh->scol[i], &vals[i]);
        group_t *e = gt_get(g, (const uint8_t *)key.data, key.len, bucket);
        if (e == NULL) {
            st = mesh_err_set(err, MESH_NOMEM, "out of memory");
            break;
        }
        group_add(e, sh->ncols, t.i, vals);
        e->maybe_dup = false;
    }
    if (st == MESH_OK && rc < 0)
        st = mesh_err_set(err, MESH_IO, "%s: scan of %s: %s", sh->agg->name, sh->src->name,
                          mesh_scan_error(sc));
    mesh_scan_close(sc);
    mesh_buf_free(&key);
    return st;
}

static mesh_status_t load_stale(sqlite3 *db, const char *agg, stale_t **out, size_t *n,
                                bool *rebuild, mesh_err_t *err)
{
    *out = NULL;
    *n = 0;
    *rebuild = false;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, "SELECT gkey, bucket FROM _cagg_stale WHERE product = ?1", -1, &q,
                           NULL) != SQLITE_OK)
        return mesh_err_set(err, MESH_IO, "stale marks: %s", sqlite3_errmsg(db));
    sqlite3_bind_text(q, 1, agg, -1, SQLITE_STATIC);
    mesh_status_t st = MESH_OK;
    size_t cap = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        int64_t bucket = sqlite3_column_int64(q, 1);
        if (bucket == REBUILD_BUCKET) {
            *rebuild = true;
            continue;
        }
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            stale_t *nv = realloc(*out, nc * sizeof *nv);
            if (nv == NULL) {
                st = mesh_err_set(err, MESH_NOMEM, "out of memory");
                break;
            }
            *out = nv;
            cap = nc;
        }
        size_t kl = (size_t)sqlite3_column_bytes(q, 0);
        stale_t *e = &(*out)[*n];
        e->key = malloc(kl ? kl : 1);
        if (e->key == NULL) {
            st = mesh_err_set(err, MESH_NOMEM, "out of memory");
            break;
        }
        if (kl)
            memcpy(e->key, sqlite3_column_blob(q, 0), kl);
        e->n = kl;
        e->bucket = bucket;
        (*n)++;
    }
    sqlite3_finalize(q);
    return st;
}

mesh_status_t mesh_store_cagg_recompute(mesh_store_t *s, const mesh_product_t *agg,
                                        const mesh_product_t *src, int64_t *buckets,
                                        mesh_err_t *err)
{
    *buckets = 0;
    shape_t sh;
    mesh_status_t st = shape_of(agg, src, &sh, err);
    if (st != MESH_OK)
        return st;
    sqlite3 *db = mesh__store_db(s);
    stale_t *marks = NULL;
    size_t nmarks = 0;
    bool rebuild = false;
    if ((st = load_stale(db, agg->name, &marks, &nmarks, &rebuild, err)) != MESH_OK)
        goto out;
    if (nmarks == 0 && !rebuild)
        goto out;
    /* read the committed source in one snapshot */
    gtable_t g = {.ncols = sh.ncols};
    mesh_store_reader_t *r = NULL;
    if ((st = mesh_store_reader_open(s, &r, err)) != MESH_OK)
        goto out;
    if ((st = mesh_store_reader_begin(r, err)) == MESH_OK) {
        if (rebuild)
            st = scan_source(s, r, &sh, NULL, &g, err);
        for (size_t i = 0; !rebuild && i < nmarks && st == MESH_OK; i++) {
            st = scan_source(s, r, &sh, &marks[i], &g, err);
            /* an emptied bucket: a group with no rows deletes its row */
            if (st == MESH_OK && gt_get(&g, marks[i].key, marks[i].n, marks[i].bucket) == NULL)
                st = mesh_err_set(err, MESH_NOMEM, "out of memory");
        }
        mesh_store_reader_end(r);
    }
    mesh_store_reader_close(r);
    /* write it in a transaction of its own */
    stmts_t q = {0};
    bool began = false;
    if (st == MESH_OK && (st = mesh_store_begin(s, err)) == MESH_OK)
        began = true;
    if (st == MESH_OK)
        st = stmts_prepare(db, &sh, &q, err);
    int64_t delta = 0;
    if (st == MESH_OK && rebuild) {
        mesh_buf_t b;
        mesh_buf_init(&b, 4096);
        mesh_buf_adds(&b, "DELETE FROM ");
        char table[160];
        snprintf(table, sizeof table, "p_%s", agg->name);
        add_ident(&b, table, NULL);
        char *msg = NULL;
        if (b.data == NULL || sqlite3_exec(db, b.data, NULL, NULL, &msg) != SQLITE_OK)
            st = mesh_err_set(err, MESH_IO, "%s: %s", agg->name, sqlite3_errmsg(db));
        else
            delta -= sqlite3_changes(db);
        sqlite3_free(msg);
        mesh_buf_free(&b);
    }
    for (size_t i = 0; i < g.cap && st == MESH_OK; i++) {
        group_t *e = &g.v[i];
        if (e->key == NULL)
            continue;
        bool existed = false;
        if (!rebuild) {
            sqlite3_reset(q.get);
            if (bind_key(q.get, &sh, e) == MESH_OK)
                existed = sqlite3_step(q.get) == SQLITE_ROW;
            sqlite3_reset(q.get);
        }
        st = write_group(db, &sh, &q, e, existed, &delta, err);
        (*buckets)++;
    }
    if (st == MESH_OK)
        st = mesh_store_cagg_forget(s, agg->name, err);
    if (st == MESH_OK && delta)
        st = mesh__store_rows_add(s, agg->name, delta, err);
    stmts_free(&q);
    gt_free(&g);
    if (began) {
        if (st == MESH_OK)
            st = mesh_store_commit(s, mesh_store_applied_seq(s), err);
        else
            mesh_store_rollback(s);
    }
out:
    for (size_t i = 0; i < nmarks; i++)
        free(marks[i].key);
    free(marks);
    return st;
}
