/*
 * vtab_remote.c - the product virtual table of a product hosted on another node: the same
 * seam as vtab.c, reading through a federated scan (mesh/fed.h) instead of the store.
 *
 * The session creates one `mesh_remote` table per table the owner's describe answer lists
 * for the caller: only the columns the owner lets the caller read, with the types the
 * caller sees there (a masked number is TEXT). Masks and row filters are applied by the
 * owner, before any row leaves it; nothing here can widen what it sent.
 *
 * xBestIndex pushes the constraints whose value is known when the scan starts (constants:
 * sqlite3_vtab_rhs_value) and LIMIT when every usable constraint is pushed, there is no
 * OFFSET and no ORDER BY; SQLite still checks every constraint itself (omit stays 0), so
 * the owner's answer can only narrow, never change, a result. A join's constraints from
 * another table are not pushed: the inner side of a nested loop then asks the same scan
 * again and again, so a result of at most CACHE_BYTES is kept for the query (the table may
 * outlive it: session.c keeps it while the describe answer holds) and replayed
 * (two remote scans per distinct plan and values, not one per outer row). Only a scan asked
 * for a second time is kept: most scans run once, and copying every row they bring (a
 * GROUP BY over all of them, say) for a replay that never comes cost about a tenth of the
 * caller's time (decision 0032).
 *
 * The plan travels in idxStr as text: "<cols used, hex>;<col>:<op>,...;<L|->".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/fed.h"
#include "query/internal.h"

#define CACHE_BYTES (32 * 1024 * 1024) /* rows of one table kept for replay, per query */
#define CACHE_MAX   8                  /* distinct scans kept per table */

typedef struct rcache {
    char *key; /* idxStr + the argument values */
    mesh_buf_t frame;
    mesh_fed_frame_t decoded;
} rcache_t;

typedef struct rvtab {
    sqlite3_vtab base;
    qsession_t *s;
    char domain[MESH_NAME_MAX + 1];
    char table[MESH_FED_TABLE_MAX + 1];
    int ncols;
    char (*cols)[MESH_NAME_MAX + 1];
    int width_col; /* a rollup view's hidden bucket_width (the last column), -1: none */
    rcache_t cache[CACHE_MAX];
    int ncache;
    char *seen[CACHE_MAX]; /* keys of scans run once (kept when asked for again) */
    int nseen;
    uint64_t gen; /* the session's query these belong to (qsession_t.query_gen) */
} rvtab_t;

typedef struct rcursor {
    sqlite3_vtab_cursor base;
    mesh_fed_scan_t *scan;
    const mesh_datum_t *row;    /* the current row: nreq values */
    int map[MESH_FED_MAX_COLS]; /* declared column -> index in the row, -1: not asked */
    int nreq;
    int eof;
    sqlite3_int64 rowid;
    /* filling a cache entry while streaming (NULL: too large, or replaying one) */
    mesh_buf_t *fill;
    mesh_fed_enc_t enc;
    char *key;
    /* replaying a cache entry */
    const mesh_fed_frame_t *replay;
    uint32_t replay_row;
} rcursor_t;

static int rv_connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out,
                      char **errmsg)
{
    qsession_t *s = aux;
    const mesh_fed_schema_t *sc = s->remote_schema;
    if (argc < 3 || sc == NULL) {
        *errmsg = sqlite3_mprintf("mesh_remote: only the session creates remote tables");
        return SQLITE_ERROR;
    }
    const mesh_fed_table_t *ft = NULL;
    for (size_t i = 0; i < sc->ntables && ft == NULL; i++)
        if (strcmp(sc->tables[i].name, argv[2]) == 0)
            ft = &sc->tables[i];
    if (ft == NULL || ft->ncols == 0) {
        *errmsg = sqlite3_mprintf("no product %s.%s", argv[1], argv[2]);
        return SQLITE_ERROR;
    }
    rvtab_t *t = sqlite3_malloc(sizeof *t);
    if (t == NULL)
        return SQLITE_NOMEM;
    memset(t, 0, sizeof *t);
    t->s = s;
    snprintf(t->domain, sizeof t->domain, "%s", argv[1]);
    snprintf(t->table, sizeof t->table, "%s", ft->name);
    /* a rollup view (p__agg) takes its width as an argument, the hidden column bucket_width
     * (which the owner's view has and its describe answer, from SELECT *, does not list) */
    size_t tl = strlen(ft->name);
    bool rollup =
        tl > 5 && strcmp(ft->name + tl - 5, "__agg") == 0 && ft->ncols < MESH_FED_MAX_COLS;
    t->ncols = (int)ft->ncols + (rollup ? 1 : 0);
    t->width_col = rollup ? (int)ft->ncols : -1;
    t->cols = sqlite3_malloc64((size_t)t->ncols * sizeof *t->cols);
    if (t->cols == NULL) {
        sqlite3_free(t);
        return SQLITE_NOMEM;
    }
    memcpy(t->cols, ft->cols, ft->ncols * sizeof *t->cols);
    if (rollup)
        snprintf(t->cols[t->width_col], sizeof t->cols[0], "bucket_width");
    sqlite3_str *ddl = sqlite3_str_new(db);
    sqlite3_str_appendall(ddl, "CREATE TABLE x(");
    for (size_t i = 0; i < ft->ncols; i++)
        sqlite3_str_appendf(ddl, "%s\"%w\" %s", i ? "," : "", ft->cols[i], ft->types[i]);
    if (rollup)
        sqlite3_str_appendall(ddl, ",\"bucket_width\" TEXT HIDDEN");
    sqlite3_str_appendall(ddl, ")");
    char *sql = sqlite3_str_finish(ddl);
    int rc = sql ? sqlite3_declare_vtab(db, sql) : SQLITE_NOMEM;
    sqlite3_free(sql);
    if (rc != SQLITE_OK) {
        sqlite3_free(t->cols);
        sqlite3_free(t);
        return rc;
    }
    sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
    *out = &t->base;
    return SQLITE_OK;
}

/* Drops the scans noted and kept for replay: they belong to one query. */
static void forget_scans(rvtab_t *t)
{
    for (int i = 0; i < t->ncache; i++) {
        sqlite3_free(t->cache[i].key);
        mesh_fed_frame_free(&t->cache[i].decoded);
        mesh_buf_free(&t->cache[i].frame);
    }
    for (int i = 0; i < t->nseen; i++)
        sqlite3_free(t->seen[i]);
    t->ncache = 0;
    t->nseen = 0;
}

static int rv_disconnect(sqlite3_vtab *vt)
{
    rvtab_t *t = (rvtab_t *)vt;
    forget_scans(t);
    sqlite3_free(t->cols);
    sqlite3_free(t);
    return SQLITE_OK;
}

static int map_op(unsigned char op, mesh_fed_opr_t *out)
{
    switch (op) {
    case SQLITE_INDEX_CONSTRAINT_EQ:
        *out = MESH_FED_OP_EQ;
        return 1;
    case SQLITE_INDEX_CONSTRAINT_GT:
        *out = MESH_FED_OP_GT;
        return 1;
    case SQLITE_INDEX_CONSTRAINT_GE:
        *out = MESH_FED_OP_GE;
        return 1;
    case SQLITE_INDEX_CONSTRAINT_LT:
        *out = MESH_FED_OP_LT;
        return 1;
    case SQLITE_INDEX_CONSTRAINT_LE:
        *out = MESH_FED_OP_LE;
        return 1;
    case SQLITE_INDEX_CONSTRAINT_NE:
        *out = MESH_FED_OP_NE;
        return 1;
    case SQLITE_INDEX_CONSTRAINT_IS:
        *out = MESH_FED_OP_IS;
        return 1;
    case SQLITE_INDEX_CONSTRAINT_ISNOT:
        *out = MESH_FED_OP_ISNOT;
        return 1;
    case SQLITE_INDEX_CONSTRAINT_ISNULL:
        *out = MESH_FED_OP_ISNULL;
        return 1;
    case SQLITE_INDEX_CONSTRAINT_ISNOTNULL:
        *out = MESH_FED_OP_NOTNULL;
        return 1;
    case SQLITE_INDEX_CONSTRAINT_LIKE:
        *out = MESH_FED_OP_LIKE;
        return 1;
    case SQLITE_INDEX_CONSTRAINT_GLOB:
        *out = MESH_FED_OP_GLOB;
        return 1;
    default:
        return 0;
    }
}

static int rv_best_index(sqlite3_vtab *vt, sqlite3_index_info *info)
{
    rvtab_t *t = (rvtab_t *)vt;
    sqlite3_str *plan = sqlite3_str_new(NULL);
    sqlite3_str_appendf(plan, "%llx;", (unsigned long long)info->colUsed);
    int argv = 0, limit_idx = -1, npushed = 0;
    bool all = true, offset = false;
    double rows = 1e6;
    for (int i = 0; i < info->nConstraint; i++) {
        const struct sqlite3_index_constraint *c = &info->aConstraint[i];
        if (c->op == SQLITE_INDEX_CONSTRAINT_LIMIT) {
            if (c->usable)
                limit_idx = i;
            continue;
        }
        if (c->op == SQLITE_INDEX_CONSTRAINT_OFFSET) {
            offset = true;
            continue;
        }
        mesh_fed_opr_t op;
        sqlite3_value *rhs = NULL;
        bool has_value = map_op(c->op, &op) && mesh_fed_op_has_value(op);
        if (!c->usable || c->iColumn < 0 || c->iColumn >= t->ncols || !map_op(c->op, &op) ||
            npushed == MESH_FED_MAX_CONS ||
            (has_value && (sqlite3_vtab_rhs_value(info, i, &rhs) != SQLITE_OK || rhs == NULL))) {
            all = false;
            continue;
        }
        sqlite3_str_appendf(plan, "%d:%d,", c->iColumn, (int)op);
        if (has_value)
            info->aConstraintUsage[i].argvIndex = ++argv;
        /* the owner's view takes the width and answers with it as it writes it ('60m' is
         * '1h'): SQLite must not compare the two */
        info->aConstraintUsage[i].omit = c->iColumn == t->width_col && op == MESH_FED_OP_EQ;
        npushed++;
        rows /= op == MESH_FED_OP_EQ ? 100 : 3;
    }
    bool limit = limit_idx >= 0 && all && !offset && info->nOrderBy == 0;
    if (limit)
        info->aConstraintUsage[limit_idx].argvIndex = ++argv;
    sqlite3_str_appendf(plan, ";%c", limit ? 'L' : '-');
    info->idxStr = sqlite3_str_finish(plan);
    if (info->idxStr == NULL)
        return SQLITE_NOMEM;
    info->needToFreeIdxStr = 1;
    info->estimatedRows = (sqlite3_int64)(rows < 1 ? 1 : rows);
    /* a round trip to another node costs more than a local scan of the same rows */
    info->estimatedCost = 1000.0 + rows * 2;
    return SQLITE_OK;
}

static int rv_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out)
{
    (void)vt;
    rcursor_t *c = sqlite3_malloc(sizeof *c);
    if (c == NULL)
        return SQLITE_NOMEM;
    memset(c, 0, sizeof *c);
    c->eof = 1;
    *out = &c->base;
    return SQLITE_OK;
}

static void drop_fill(rcursor_t *c)
{
    if (c->fill) {
        mesh_buf_free(c->fill);
        sqlite3_free(c->fill);
        c->fill = NULL;
    }
    sqlite3_free(c->key);
    c->key = NULL;
}

static int rv_close(sqlite3_vtab_cursor *cur)
{
    rcursor_t *c = (rcursor_t *)cur;
    mesh_fed_scan_close(c->scan);
    drop_fill(c);
    sqlite3_free(c);
    return SQLITE_OK;
}

/* The owner's refusal keeps its status (forbidden stays forbidden) for mesh_query_step. */
static int fail_code(rcursor_t *c, const mesh_err_t *err)
{
    ((rvtab_t *)c->base.pVtab)->s->remote_code = err->code;
    c->eof = 1;
    return mesh__vtab_error(c->base.pVtab, err->msg);
}

static int fail(rcursor_t *c, const char *msg)
{
    c->eof = 1;
    return mesh__vtab_error(c->base.pVtab, msg);
}

/* The scan ended: a result small enough becomes a cache entry of the table. */
static void keep(rcursor_t *c)
{
    rvtab_t *t = (rvtab_t *)c->base.pVtab;
    if (c->fill == NULL || t->ncache == CACHE_MAX) {
        drop_fill(c);
        return;
    }
    mesh_fed_rows_end(&c->enc, true);
    t->s->remote_kept = true; /* freed with the table at the query's end (session.c) */
    rcache_t *e = &t->cache[t->ncache];
    memset(e, 0, sizeof *e);
    mesh_err_t err;
    e->frame = *c->fill;
    sqlite3_free(c->fill);
    c->fill = NULL;
    if (mesh_fed_frame_decode(e->frame.data, e->frame.len, &e->decoded, &err) != MESH_OK) {
        mesh_buf_free(&e->frame);
        drop_fill(c);
        return;
    }
    e->key = c->key;
    c->key = NULL;
    t->ncache++;
}

static int advance(rcursor_t *c)
{
    rvtab_t *t = (rvtab_t *)c->base.pVtab;
    if (c->replay) {
        if (c->replay_row >= c->replay->nrows) {
            c->eof = 1;
            return SQLITE_OK;
        }
        c->row =
            c->replay->vals ? c->replay->vals + (size_t)c->replay_row * c->replay->ncols : NULL;
        c->replay_row++;
        c->rowid++;
        return SQLITE_OK;
    }
    mesh_err_t err;
    mesh_err_clear(&err);
    int r = mesh_fed_scan_next(c->scan, &c->row, &err);
    if (r < 0) {
        drop_fill(c);
        return fail_code(c, &err);
    }
    if (r == 0) {
        c->eof = 1;
        mesh_fed_scan_close(c->scan);
        c->scan = NULL;
        keep(c);
        return SQLITE_OK;
    }
    if (c->fill) {
        /* copy the row into the cache entry while it stays small */
        mesh_status_t st = MESH_OK;
        for (int k = 0; k < c->nreq && st == MESH_OK; k++)
            st = mesh_fed_rows_value(&c->enc, &c->row[k]);
        if (st != MESH_OK || c->enc.nrows + 1 >= MESH_FED_MAX_ROWS)
            drop_fill(c);
        else
            mesh_fed_rows_row(&c->enc);
    }
    t->s->rows_scanned++;
    c->rowid++;
    return SQLITE_OK;
}

static void datum_of(sqlite3_value *v, mesh_datum_t *a)
{
    memset(a, 0, sizeof *a);
    switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER:
        a->type = MESH_V_INT;
        a->i = sqlite3_value_int64(v);
        break;
    case SQLITE_FLOAT:
        a->type = MESH_V_REAL;
        a->d = sqlite3_value_double(v);
        break;
    case SQLITE_TEXT:
    case SQLITE_BLOB:
        a->type = MESH_V_TEXT;
        a->s = (const char *)sqlite3_value_text(v);
        a->n = (size_t)sqlite3_value_bytes(v);
        break;
    default:
        a->type = MESH_V_NULL;
    }
}

static int rv_filter(sqlite3_vtab_cursor *cur, int idx_num, const char *idx_str, int argc,
                     sqlite3_value **argv)
{
    (void)idx_num;
    rcursor_t *c = (rcursor_t *)cur;
    rvtab_t *t = (rvtab_t *)cur->pVtab;
    qsession_t *s = t->s;
    if (t->gen != s->query_gen) { /* the table outlives a query: its first scan in this one */
        forget_scans(t);
        t->gen = s->query_gen;
    }
    mesh_fed_scan_close(c->scan);
    c->scan = NULL;
    drop_fill(c);
    c->replay = NULL;
    c->rowid = 0;
    c->eof = 0;
    /* the cache key: the plan and the values */
    sqlite3_str *key = sqlite3_str_new(NULL);
    sqlite3_str_appendall(key, idx_str ? idx_str : "");
    for (int i = 0; i < argc; i++)
        sqlite3_str_appendf(key, "|%d:%Q", sqlite3_value_type(argv[i]),
                            (const char *)sqlite3_value_text(argv[i]));
    c->key = sqlite3_str_finish(key);
    if (c->key == NULL)
        return SQLITE_NOMEM;
    mesh__session_note_product(s, t->domain, t->table);
    /* parse the plan: used columns; constraints; limit */
    unsigned long long used = 0;
    const char *p = idx_str;
    char *end = NULL;
    if (p == NULL || (used = strtoull(p, &end, 16), end == NULL || *end != ';'))
        return fail(c, "mesh_remote: bad plan");
    p = end + 1;
    c->nreq = 0;
    for (int k = 0; k < t->ncols; k++) {
        bool u = (used >> (k < 63 ? k : 63)) & 1;
        c->map[k] = u ? c->nreq++ : -1;
    }
    for (int i = 0; i < t->ncache; i++)
        if (strcmp(t->cache[i].key, c->key) == 0) {
            c->replay = &t->cache[i].decoded;
            c->replay_row = 0;
            sqlite3_free(c->key);
            c->key = NULL;
            return advance(c);
        }
    mesh_fed_request_t r;
    memset(&r, 0, sizeof r);
    r.limit = -1;
    snprintf(r.user, sizeof r.user, "%s", s->who ? s->who->name : "");
    snprintf(r.domain, sizeof r.domain, "%s", t->domain);
    snprintf(r.table, sizeof r.table, "%s", t->table);
    char(*cols)[MESH_NAME_MAX + 1] = sqlite3_malloc64((size_t)t->ncols * sizeof *cols);
    if (cols == NULL)
        return SQLITE_NOMEM;
    for (int k = 0; k < t->ncols; k++)
        if (c->map[k] >= 0)
            memcpy(cols[c->map[k]], t->cols[k], sizeof cols[0]);
    r.cols = cols;
    r.ncols = (size_t)c->nreq;
    int arg = 0;
    while (*p && *p != ';' && r.ncons < MESH_FED_MAX_CONS) {
        long col = strtol(p, &end, 10);
        if (*end != ':')
            break;
        long op = strtol(end + 1, &end, 10);
        if (*end != ',' || col < 0 || col >= t->ncols || op < 0 || op >= MESH_FED_OP__COUNT)
            break;
        p = end + 1;
        mesh_fed_cons_t *k = &r.cons[r.ncons++];
        memcpy(k->col, t->cols[col], sizeof k->col);
        k->op = (mesh_fed_opr_t)op;
        if (mesh_fed_op_has_value(k->op) && arg < argc)
            datum_of(argv[arg++], &k->val);
    }
    if (*p == ';' && p[1] == 'L' && arg < argc && sqlite3_value_type(argv[arg]) == SQLITE_INTEGER)
        r.limit = sqlite3_value_int64(argv[arg]);
    mesh_err_t err;
    mesh_err_clear(&err);
    if (s->local_only) { /* never on another node's behalf (detached then anyway) */
        mesh_err_set(&err, MESH_FORBIDDEN,
                     "%s.%s is on another node: not read for a query "
                     "another node sent",
                     t->domain, t->table);
        return fail_code(c, &err);
    }
    mesh_status_t st = mesh_fed_scan_open(s->fed, &r, &c->scan, &err);
    sqlite3_free(cols);
    if (st != MESH_OK)
        return fail_code(c, &err);
    /* the second scan of the same plan and values: keep its result for a replay while it
     * stays small; the first is only noted */
    bool again = false;
    for (int i = 0; i < t->nseen && !again; i++)
        again = strcmp(t->seen[i], c->key) == 0;
    if (!again && t->nseen < CACHE_MAX) {
        t->seen[t->nseen++] = c->key;
        c->key = NULL;
    }
    if (again && t->ncache < CACHE_MAX)
        c->fill = sqlite3_malloc(sizeof *c->fill);
    if (c->fill) {
        mesh_buf_init(c->fill, CACHE_BYTES);
        mesh_fed_rows_begin(&c->enc, c->fill, (uint16_t)c->nreq);
    }
    return advance(c);
}

static int rv_next(sqlite3_vtab_cursor *cur)
{
    return advance((rcursor_t *)cur);
}

static int rv_eof(sqlite3_vtab_cursor *cur)
{
    return ((rcursor_t *)cur)->eof;
}

static int rv_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col)
{
    rcursor_t *c = (rcursor_t *)cur;
    int k = col >= 0 && col < MESH_FED_MAX_COLS ? c->map[col] : -1;
    if (k < 0 || c->row == NULL) {
        sqlite3_result_null(ctx);
        return SQLITE_OK;
    }
    mesh__result_datum(ctx, &c->row[k], false);
    return SQLITE_OK;
}

static int rv_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *out)
{
    (void)out;
    sqlite3_vtab *vt = cur->pVtab;
    sqlite3_free(vt->zErrMsg);
    vt->zErrMsg = sqlite3_mprintf("this query needs a row identity that a product on another "
                                  "node cannot give: write the OR as a UNION of two queries");
    return SQLITE_ERROR;
}

static sqlite3_module remote_module = {
    .iVersion = 0,
    .xCreate = rv_connect,
    .xConnect = rv_connect,
    .xBestIndex = rv_best_index,
    .xDisconnect = rv_disconnect,
    .xDestroy = rv_disconnect,
    .xOpen = rv_open,
    .xClose = rv_close,
    .xFilter = rv_filter,
    .xNext = rv_next,
    .xEof = rv_eof,
    .xColumn = rv_column,
    .xRowid = rv_rowid,
};

int mesh__vtab_remote_register(sqlite3 *db, qsession_t *s)
{
    return sqlite3_create_module_v2(db, "mesh_remote", &remote_module, s, NULL);
}
