/*
 * vtab_agg.c - a time series' rollup view, `domain.product__agg('1h')`.
 *
 * One row per series and time bucket: the series columns, `bucket` (the bucket's start, as
 * time_bucket() floors), `rows` (the rows in it) and, per numeric value column c, c_count,
 * c_sum, c_min, c_max and c_avg over its non-NULL values. The width is the hidden argument
 * `bucket_width` (a duration text or nanoseconds). The store counts the rows in C as it
 * decodes them (store.h mesh_rollup_*), instead of SQLite aggregating one row at a time, so
 * `SELECT name, bucket, velocity_avg FROM fleet.readings__agg('1h')` answers what
 * `SELECT name, bucket, avg(velocity) FROM fleet.readings('1h') GROUP BY name, bucket` does,
 * many times faster. The time range comes from conditions on bucket, series from equality
 * on series columns; SQLite checks all of them again on the rows (omit stays 0).
 *
 * Policies: counting happens below masks and row filters, so the view is only for callers
 * whose view of the product has neither a row filter nor a masked series column, and not
 * for outsiders of an aggregates-only product (its groups must pass the k-anonymity check
 * of query/aggquery.c). Such callers get a clear error at the scan and aggregate the product
 * with GROUP BY as usual. A masked or hidden value column has no aggregate columns.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "query/internal.h"

typedef enum {
    AC_KEY,
    AC_WIDTH,
    AC_BUCKET,
    AC_ROWS,
    AC_COUNT,
    AC_SUM,
    AC_MIN,
    AC_MAX,
    AC_AVG
} akind_t;

typedef struct acol {
    akind_t kind;
    int pcol; /* AC_KEY: the product column; AC_COUNT..AC_AVG: the index in cols */
} acol_t;

typedef struct avtab {
    sqlite3_vtab base;
    qsession_t *s;
    const mesh_snap_domain_t *sd;
    const mesh_product_t *p;
    acol_t *c;
    int nc;
    int cols[MESH_ROLLUP_MAX_COLS]; /* the aggregated product columns */
    bool cint[MESH_ROLLUP_MAX_COLS];
    int ncols;
    int width_col, bucket_col;
    char *refusal; /* why this caller may not scan the view; NULL: it may */
} avtab_t;

typedef struct acursor {
    sqlite3_vtab_cursor base;
    mesh_rollup_t *ru;
    int kmap[MESH_ROLLUP_MAX_COLS]; /* aggregated column -> its index in ru, -1: not read */
    int eof;
    sqlite3_int64 rowid;
    char width_text[32];
} acursor_t;

static void avtab_free(avtab_t *t)
{
    if (t == NULL)
        return;
    sqlite3_free(t->c);
    sqlite3_free(t->refusal);
    sqlite3_free(t);
}

static bool is_series_col(const mesh_product_t *p, int col)
{
    for (size_t k = 0; k < p->nkey; k++)
        if (p->key_cols[k] == col && col != p->time_col)
            return true;
    return false;
}

/* Declares the columns; what the caller's policy allows decides which, and whether it may
 * scan at all (t->refusal). */
static int build(avtab_t *t, sqlite3 *db, char **errmsg)
{
    qsession_t *s = t->s;
    const mesh_product_t *p = t->p;
    bool owner = mesh__session_owner(s, p->domain);
    mesh_view_policy_t v;
    mesh_err_t err;
    if (mesh_policy_view(s->policy, s->who, p, owner, &v, &err) != MESH_OK)
        return SQLITE_NOMEM;
    if (!v.readable) {
        mesh_view_policy_free(&v);
        *errmsg = sqlite3_mprintf("no such table: %s.%s__agg", p->domain, p->name);
        return SQLITE_ERROR;
    }
    size_t cap = 3 + p->ncols + 5 * MESH_ROLLUP_MAX_COLS;
    t->c = sqlite3_malloc64(cap * sizeof *t->c);
    if (t->c == NULL) {
        mesh_view_policy_free(&v);
        return SQLITE_NOMEM;
    }
    if (v.nfilters > 0)
        t->refusal = sqlite3_mprintf(
            "%s.%s__agg: a row filter applies to you on %s.%s: aggregate it with GROUP BY",
            p->domain, p->name, p->domain, p->name);
    else if (p->egress_aggregates && mesh__session_outsider(s, p))
        t->refusal = sqlite3_mprintf("%s.%s__agg: %s.%s releases aggregates to callers outside "
                                     "its domain only through GROUP BY over it",
                                     p->domain, p->name, p->domain, p->name);
    sqlite3_str *ddl = sqlite3_str_new(db);
    sqlite3_str_appendall(ddl, "CREATE TABLE x(");
    for (size_t i = 0; i < p->ncols; i++) {
        if (!is_series_col(p, (int)i))
            continue;
        if ((!v.visible[i] || v.mask[i] != MESH_MASK_NONE) && t->refusal == NULL)
            t->refusal =
                sqlite3_mprintf("%s.%s__agg: series column %s is %s for you: "
                                "aggregate %s.%s with GROUP BY",
                                p->domain, p->name, p->cols[i].name,
                                v.visible[i] ? "masked" : "not granted", p->domain, p->name);
        if (!v.visible[i])
            continue; /* it does not exist for the caller (the scan is refused) */
        t->c[t->nc++] = (acol_t){AC_KEY, (int)i};
        sqlite3_str_appendf(ddl, "\"%w\" %s,", p->cols[i].name, mesh_ltype_sql(p->cols[i].type));
    }
    t->width_col = t->nc;
    t->c[t->nc++] = (acol_t){AC_WIDTH, -1};
    t->bucket_col = t->nc;
    t->c[t->nc++] = (acol_t){AC_BUCKET, -1};
    t->c[t->nc++] = (acol_t){AC_ROWS, -1};
    sqlite3_str_appendall(ddl, "bucket_width TEXT HIDDEN,bucket TIMESTAMP,\"rows\" INTEGER");
    static const char *const suffix[] = {"count", "sum", "min", "max", "avg"};
    for (size_t i = 0; i < p->ncols && t->ncols < MESH_ROLLUP_MAX_COLS; i++) {
        if ((int)i == p->time_col || p->cols[i].primary_key ||
            !mesh_ltype_numeric(p->cols[i].type) || !v.visible[i] || v.mask[i] != MESH_MASK_NONE)
            continue;
        int k = t->ncols++;
        t->cols[k] = (int)i;
        t->cint[k] = p->cols[i].type != MESH_LT_NUMBER;
        const char *mm = mesh_ltype_sql(p->cols[i].type);
        const char *types[] = {"INTEGER", "REAL", mm, mm, "REAL"};
        for (int j = 0; j < 5; j++) {
            t->c[t->nc++] = (acol_t){AC_COUNT + j, k};
            sqlite3_str_appendf(ddl, ",\"%w_%s\" %s", p->cols[i].name, suffix[j], types[j]);
        }
    }
    /* a row's identity is its series and bucket (SQLite's OR of two conditions reads the
     * view twice and merges the rows by it) */
    sqlite3_str_appendall(ddl, ",PRIMARY KEY(");
    for (int k = 0; k < t->nc; k++)
        if (t->c[k].kind == AC_KEY)
            sqlite3_str_appendf(ddl, "\"%w\",", p->cols[t->c[k].pcol].name);
    sqlite3_str_appendall(ddl, "bucket)) WITHOUT ROWID");
    mesh_view_policy_free(&v);
    char *sql = sqlite3_str_finish(ddl);
    int rc = sql ? sqlite3_declare_vtab(db, sql) : SQLITE_NOMEM;
    if (rc != SQLITE_OK && sql)
        *errmsg = sqlite3_mprintf("%s.%s__agg: %s (a series column named bucket or rows, or "
                                  "a name clash of aggregate columns)",
                                  p->domain, p->name, sqlite3_errmsg(db));
    sqlite3_free(sql);
    return rc;
}

static int av_connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out,
                      char **errmsg)
{
    qsession_t *s = aux;
    if (argc < 3) {
        *errmsg = sqlite3_mprintf("mesh_rollup: missing schema or table name");
        return SQLITE_ERROR;
    }
    const char *domain = argv[1], *table = argv[2];
    char product[MESH_NAME_MAX + 8];
    snprintf(product, sizeof product, "%s", table);
    size_t tl = strlen(product);
    if (tl > 5 && strcmp(product + tl - 5, "__agg") == 0)
        product[tl - 5] = '\0';
    const mesh_snap_domain_t *sd = s->snap ? mesh_snapshot_domain(s->snap, domain) : NULL;
    const mesh_product_t *p = sd ? mesh_snapshot_product(s->snap, domain, product) : NULL;
    if (p == NULL || p->time_col < 0) {
        *errmsg = sqlite3_mprintf("no time series %s.%s", domain, product);
        return SQLITE_ERROR;
    }
    avtab_t *t = sqlite3_malloc(sizeof *t);
    if (t == NULL)
        return SQLITE_NOMEM;
    memset(t, 0, sizeof *t);
    t->s = s;
    t->sd = sd;
    t->p = p;
    int rc = build(t, db, errmsg);
    if (rc != SQLITE_OK) {
        avtab_free(t);
        return rc;
    }
    sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
    *out = &t->base;
    return SQLITE_OK;
}

static int av_disconnect(sqlite3_vtab *vt)
{
    avtab_free((avtab_t *)vt);
    return SQLITE_OK;
}

/*
 * The plan, in idxStr: SQLite's colUsed as 16 hex digits (only the columns read are decoded),
 * then one letter per argument (the width first), in order: 'W' the width, 'k' an equality on a
 * series column (its declared index follows as two hex digits), 'b' then an operator digit
 * (mesh_op_t) for a condition on bucket.
 */
static int av_best_index(sqlite3_vtab *vt, sqlite3_index_info *info)
{
    avtab_t *t = (avtab_t *)vt;
    char plan[3 * MESH_SCAN_MAX_CONS + 24];
    size_t n = (size_t)snprintf(plan, sizeof plan, "%016llx", (unsigned long long)info->colUsed);
    int argv = 0, nkeys = 0;
    bool width = false;
    /* the width first: the bucket conditions after it are read with it */
    for (int i = 0; i < info->nConstraint && !width; i++) {
        const struct sqlite3_index_constraint *c = &info->aConstraint[i];
        if (c->usable && c->iColumn == t->width_col && c->op == SQLITE_INDEX_CONSTRAINT_EQ) {
            width = true;
            plan[n++] = 'W';
            info->aConstraintUsage[i].argvIndex = ++argv;
            info->aConstraintUsage[i].omit = 1;
        }
    }
    for (int i = 0; i < info->nConstraint; i++) {
        const struct sqlite3_index_constraint *c = &info->aConstraint[i];
        if (!c->usable || c->iColumn < 0 || c->iColumn >= t->nc)
            continue;
        acol_t *a = &t->c[c->iColumn];
        if (a->kind == AC_KEY && c->op == SQLITE_INDEX_CONSTRAINT_EQ &&
            nkeys < MESH_SCAN_MAX_CONS - 2 && c->iColumn < 256) {
            n += (size_t)snprintf(plan + n, sizeof plan - n, "k%02x", c->iColumn);
            nkeys++;
            info->aConstraintUsage[i].argvIndex = ++argv;
        } else if (a->kind == AC_BUCKET && n + 3 < sizeof plan &&
                   (c->op == SQLITE_INDEX_CONSTRAINT_EQ || c->op == SQLITE_INDEX_CONSTRAINT_GT ||
                    c->op == SQLITE_INDEX_CONSTRAINT_GE || c->op == SQLITE_INDEX_CONSTRAINT_LT ||
                    c->op == SQLITE_INDEX_CONSTRAINT_LE)) {
            mesh_op_t op = c->op == SQLITE_INDEX_CONSTRAINT_EQ   ? MESH_OP_EQ
                           : c->op == SQLITE_INDEX_CONSTRAINT_GT ? MESH_OP_GT
                           : c->op == SQLITE_INDEX_CONSTRAINT_GE ? MESH_OP_GE
                           : c->op == SQLITE_INDEX_CONSTRAINT_LT ? MESH_OP_LT
                                                                 : MESH_OP_LE;
            plan[n++] = 'b';
            plan[n++] = (char)('0' + op);
            info->aConstraintUsage[i].argvIndex = ++argv;
        }
    }
    plan[n] = '\0';
    /* rows come ordered by the series columns (in declared order), then bucket */
    int nkc = 0;
    for (int i = 0; i < t->nc; i++)
        nkc += t->c[i].kind == AC_KEY;
    bool ours = info->nOrderBy > 0 && nkc <= MESH_SCAN_MAX_ORDER;
    for (int i = 0; i < info->nOrderBy && ours; i++) {
        int col = info->aOrderBy[i].iColumn;
        ours = !info->aOrderBy[i].desc &&
               (i < nkc ? col == i && t->c[i].kind == AC_KEY : i == nkc && col == t->bucket_col);
    }
    info->orderByConsumed = ours;
    /* without a width the scan fails (clearly); a plan with it is always preferred */
    info->estimatedCost = width ? 1000.0 / (1 + nkeys) : 1e12;
    info->estimatedRows = width ? 1000 : 1000000;
    info->idxStr = sqlite3_mprintf("%s", plan);
    info->needToFreeIdxStr = 1;
    return info->idxStr ? SQLITE_OK : SQLITE_NOMEM;
}

static int av_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out)
{
    (void)vt;
    acursor_t *c = sqlite3_malloc(sizeof *c);
    if (c == NULL)
        return SQLITE_NOMEM;
    memset(c, 0, sizeof *c);
    c->eof = 1;
    *out = &c->base;
    return SQLITE_OK;
}

static int av_close(sqlite3_vtab_cursor *cur)
{
    acursor_t *c = (acursor_t *)cur;
    mesh_rollup_close(c->ru);
    sqlite3_free(c);
    return SQLITE_OK;
}

static int fail(acursor_t *c, const char *msg)
{
    c->eof = 1;
    return mesh__vtab_error(c->base.pVtab, msg);
}

/* Narrows the rows' time range [*lo, *hi] to the buckets that meet `bucket op x`. */
static void narrow(mesh_op_t op, int64_t x, int64_t w, int64_t *lo, int64_t *hi)
{
    int64_t f = mesh_store_cagg_bucket(x, w);
    /* the first bucket start >= x, and the bucket after x's (saturated at the ends) */
    int64_t ceil = f == x ? x : (f > INT64_MAX - w ? INT64_MAX : f + w);
    int64_t next = f > INT64_MAX - w ? INT64_MAX : f + w;
    int64_t a = INT64_MIN, b = INT64_MAX;
    switch (op) {
    case MESH_OP_EQ:
        if (f != x) {
            a = 1;
            b = 0; /* no bucket starts there */
        } else {
            a = x;
            b = next == INT64_MAX ? INT64_MAX : next - 1;
        }
        break;
    case MESH_OP_GE:
        a = ceil;
        break;
    case MESH_OP_GT:
        a = next;
        break;
    case MESH_OP_LT:
        b = ceil == INT64_MIN ? INT64_MIN : ceil - 1;
        break;
    case MESH_OP_LE:
        b = next == INT64_MAX ? INT64_MAX : next - 1;
        break;
    default:
        break;
    }
    if (a > *lo)
        *lo = a;
    if (b < *hi)
        *hi = b;
}

static int av_next(sqlite3_vtab_cursor *cur)
{
    acursor_t *c = (acursor_t *)cur;
    int r = mesh_rollup_next(c->ru);
    if (r < 0)
        return fail(c, mesh_rollup_error(c->ru));
    c->eof = r == 0;
    if (r == 1) {
        int64_t rows;
        mesh_rollup_bucket(c->ru, &rows);
        ((avtab_t *)cur->pVtab)->s->rows_scanned += rows;
    }
    c->rowid++;
    return SQLITE_OK;
}

static int av_filter(sqlite3_vtab_cursor *cur, int idx_num, const char *idx_str, int argc,
                     sqlite3_value **argv)
{
    (void)idx_num;
    acursor_t *c = (acursor_t *)cur;
    avtab_t *t = (avtab_t *)cur->pVtab;
    mesh_rollup_close(c->ru);
    c->ru = NULL;
    c->eof = 1;
    if (t->refusal)
        return fail(c, t->refusal);
    int64_t width = 0, lo = INT64_MIN, hi = INT64_MAX;
    mesh_rollup_key_t keys[MESH_SCAN_MAX_CONS];
    int nkeys = 0, ai = 0;
    if (idx_str == NULL || strlen(idx_str) < 16)
        return fail(c, "mesh_rollup: bad plan");
    char used_hex[17];
    memcpy(used_hex, idx_str, 16);
    used_hex[16] = '\0';
    uint64_t used = strtoull(used_hex, NULL, 16);
    for (const char *p = idx_str + 16; *p && ai < argc; ai++) {
        sqlite3_value *v = argv[ai];
        int type = sqlite3_value_type(v);
        if (*p == 'W') {
            p++;
            if (type == SQLITE_INTEGER)
                width = sqlite3_value_int64(v);
            else if (type != SQLITE_TEXT ||
                     mesh_duration_parse((const char *)sqlite3_value_text(v), &width) != MESH_OK)
                width = -1;
        } else if (*p == 'k' && p[1] && p[2]) {
            char hex[3] = {p[1], p[2], 0};
            int dc = (int)strtol(hex, NULL, 16);
            p += 3;
            if (dc >= t->nc || t->c[dc].kind != AC_KEY || nkeys == MESH_SCAN_MAX_CONS - 2)
                return fail(c, "mesh_rollup: bad plan");
            mesh_rollup_key_t *k = &keys[nkeys++];
            k->col = t->c[dc].pcol;
            k->op = MESH_OP_EQ;
            memset(&k->v, 0, sizeof k->v);
            if (type == SQLITE_INTEGER) {
                k->v.type = MESH_V_INT;
                k->v.i = sqlite3_value_int64(v);
            } else if (type == SQLITE_FLOAT) {
                k->v.type = MESH_V_REAL;
                k->v.d = sqlite3_value_double(v);
            } else if (type == SQLITE_TEXT) {
                k->v.type = MESH_V_TEXT;
                k->v.s = (const char *)sqlite3_value_text(v);
                k->v.n = (size_t)sqlite3_value_bytes(v);
            } else {
                nkeys--; /* NULL or a blob: SQLite's own check decides (no row) */
            }
        } else if (*p == 'b' && p[1] >= '0' && p[1] <= '9') {
            mesh_op_t op = (mesh_op_t)(p[1] - '0');
            p += 2;
            /* a whole number narrows the range; anything else is left to SQLite's check */
            if (type == SQLITE_INTEGER && width > 0)
                narrow(op, sqlite3_value_int64(v), width, &lo, &hi);
            else if (type == SQLITE_NULL)
                lo = 1, hi = 0; /* a comparison with NULL holds for no row */
        } else {
            return fail(c, "mesh_rollup: bad plan");
        }
    }
    if (width == 0)
        return fail(c, "__agg needs a bucket width: FROM domain.product__agg('1h') (or "
                       "WHERE bucket_width = '1h')");
    if (width < 0)
        return fail(c, "bucket_width: a positive duration such as '1h' or '15m'");
    mesh__width_text(width, c->width_text, sizeof c->width_text);
    /* only the aggregated columns the query reads */
    int cols[MESH_ROLLUP_MAX_COLS], ncols = 0;
    for (int k = 0; k < t->ncols; k++)
        c->kmap[k] = -1;
    for (int i = 0; i < t->nc; i++) {
        int k = t->c[i].pcol;
        if (t->c[i].kind >= AC_COUNT && c->kmap[k] < 0 && ((used >> (i < 63 ? i : 63)) & 1)) {
            c->kmap[k] = ncols;
            cols[ncols++] = t->cols[k];
        }
    }
    mesh_store_reader_t *r;
    mesh_err_t err;
    mesh_err_clear(&err);
    if (mesh__session_reader(t->s, t->sd, &r, &err) != MESH_OK ||
        mesh_rollup_open(r, t->p, width, lo, hi, keys, nkeys, cols, ncols, &c->ru, &err) != MESH_OK)
        return fail(c, err.msg);
    char pname[MESH_NAME_MAX + 8];
    snprintf(pname, sizeof pname, "%s__agg", t->p->name);
    mesh__session_note_product(t->s, t->sd->meta.name, pname);
    c->rowid = 0;
    return av_next(cur);
}

static int av_eof(sqlite3_vtab_cursor *cur)
{
    return ((acursor_t *)cur)->eof;
}

static int av_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col)
{
    acursor_t *c = (acursor_t *)cur;
    avtab_t *t = (avtab_t *)cur->pVtab;
    if (col < 0 || col >= t->nc) {
        sqlite3_result_null(ctx);
        return SQLITE_OK;
    }
    const acol_t *a = &t->c[col];
    int64_t rows;
    int64_t bucket = mesh_rollup_bucket(c->ru, &rows);
    const mesh_rollup_acc_t *x =
        a->kind >= AC_COUNT ? mesh_rollup_acc(c->ru, c->kmap[a->pcol]) : NULL;
    bool in = a->kind >= AC_COUNT && t->cint[a->pcol];
    switch (a->kind) {
    case AC_KEY: {
        mesh_datum_t d;
        mesh_rollup_key_value(c->ru, a->pcol, &d);
        mesh__result_datum(ctx, &d, true); /* lives until the read transaction ends */
        break;
    }
    case AC_WIDTH:
        sqlite3_result_text(ctx, c->width_text, -1, SQLITE_TRANSIENT);
        break;
    case AC_BUCKET:
        sqlite3_result_int64(ctx, bucket);
        break;
    case AC_ROWS:
        sqlite3_result_int64(ctx, rows);
        break;
    case AC_COUNT:
        sqlite3_result_int64(ctx, x->count);
        break;
    default:
        if (x->count == 0)
            sqlite3_result_null(ctx);
        else if (a->kind == AC_SUM)
            sqlite3_result_double(ctx, x->sum);
        else if (a->kind == AC_AVG)
            sqlite3_result_double(ctx, x->sum / (double)x->count);
        else if (in)
            sqlite3_result_int64(ctx, a->kind == AC_MIN ? x->min.i : x->max.i);
        else
            sqlite3_result_double(ctx, a->kind == AC_MIN ? x->min.d : x->max.d);
    }
    return SQLITE_OK;
}

static int av_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *out)
{
    (void)cur;
    (void)out;
    return SQLITE_ERROR; /* WITHOUT ROWID: never asked */
}

static sqlite3_module rollup_module = {
    .iVersion = 0,
    .xCreate = av_connect,
    .xConnect = av_connect,
    .xBestIndex = av_best_index,
    .xDisconnect = av_disconnect,
    .xDestroy = av_disconnect,
    .xOpen = av_open,
    .xClose = av_close,
    .xFilter = av_filter,
    .xNext = av_next,
    .xEof = av_eof,
    .xColumn = av_column,
    .xRowid = av_rowid,
};

int mesh__vtab_agg_register(sqlite3 *db, qsession_t *s)
{
    return sqlite3_create_module_v2(db, "mesh_rollup", &rollup_module, s, NULL);
}
