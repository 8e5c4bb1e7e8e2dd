/*
 * vtab.c - the product virtual table: the one way SQL reads a data product.
 *
 * `CREATE VIRTUAL TABLE dom.prod USING mesh_product` (done by the session) declares the
 * product's columns with meshd's SQL types. xBestIndex hands the usable WHERE constraints,
 * a single-column ORDER BY and LIMIT to the store's planner, which says what it will apply
 * (its indexes do the work: a device's last hour does not read the product); SQLite still
 * checks every constraint itself (omit stays 0), so a plan can only narrow, never change,
 * a result. This is the seam where policies (masks, row filters) and remote scans plug in.
 *
 * The plan travels from xBestIndex to xFilter in idxStr as hex of the plan struct.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "crypt/vfs.h"
#include "query/internal.h"

typedef struct pvtab {
    sqlite3_vtab base;
    qsession_t *s;
    const mesh_snap_domain_t *sd;
    const mesh_product_t *p;
    bool quarantine;
    mesh_view_t view;
    int ncols;
    int time_col;
} pvtab_t;

typedef struct pcursor {
    sqlite3_vtab_cursor base;
    mesh_scan_t *scan;
    char *plan_str; /* the idxStr the scan was opened with: the same plan rewinds it */
    int eof;
    sqlite3_int64 rowid;
} pcursor_t;

static const char *col_sql_type(const pvtab_t *t, int i)
{
    if (t->quarantine) {
        static const char *qt[] = {"INTEGER", "TIMESTAMP", "INTEGER", "TEXT", "TEXT"};
        return qt[i];
    }
    return mesh_ltype_sql(t->p->cols[i].type);
}

static int pv_connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out,
                      char **errmsg)
{
    qsession_t *s = aux;
    if (argc < 3) {
        *errmsg = sqlite3_mprintf("mesh_product: missing schema or table name");
        return SQLITE_ERROR;
    }
    const char *domain = argv[1], *table = argv[2];
    char product[128];
    snprintf(product, sizeof product, "%s", table);
    bool quarantine = false;
    mesh_view_t view = MESH_VIEW_ROWS;
    size_t tl = strlen(product);
    if (tl > 12 && strcmp(product + tl - 12, "__quarantine") == 0) {
        product[tl - 12] = '\0';
        quarantine = true;
        view = MESH_VIEW_QUARANTINE;
    } else if (tl > 6 && strcmp(product + tl - 6, "__last") == 0) {
        product[tl - 6] = '\0';
        view = MESH_VIEW_LAST;
    }
    const mesh_snap_domain_t *sd = s->snap ? mesh_snapshot_domain(s->snap, domain) : NULL;
    const mesh_product_t *p = sd ? mesh_snapshot_product(s->snap, domain, product) : NULL;
    if (p == NULL) {
        *errmsg = sqlite3_mprintf("no product %s.%s", domain, product);
        return SQLITE_ERROR;
    }
    pvtab_t *t = sqlite3_malloc(sizeof *t);
    if (t == NULL)
        return SQLITE_NOMEM;
    memset(t, 0, sizeof *t);
    t->s = s;
    t->sd = sd;
    t->p = p;
    t->quarantine = quarantine;
    t->view = view;
    t->ncols = quarantine ? MESH_QUARANTINE_NCOLS : (int)p->ncols;
    t->time_col = quarantine ? 1 : p->time_col;
    sqlite3_str *ddl = sqlite3_str_new(db);
    sqlite3_str_appendall(ddl, "CREATE TABLE x(");
    for (int i = 0; i < t->ncols; i++) {
        const char *name = quarantine ? mesh_quarantine_cols[i] : p->cols[i].name;
        sqlite3_str_appendf(ddl, "%s\"%w\" %s", i ? "," : "", name, col_sql_type(t, i));
    }
    sqlite3_str_appendall(ddl, ")");
    char *sql = sqlite3_str_finish(ddl);
    int rc = sql ? sqlite3_declare_vtab(db, sql) : SQLITE_NOMEM;
    sqlite3_free(sql);
    if (rc != SQLITE_OK) {
        sqlite3_free(t);
        return rc;
    }
    sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
    *out = &t->base;
    return SQLITE_OK;
}

static int pv_disconnect(sqlite3_vtab *vt)
{
    sqlite3_free(vt);
    return SQLITE_OK;
}

static int map_op(unsigned char op, mesh_op_t *out)
{
    switch (op) {
    case SQLITE_INDEX_CONSTRAINT_EQ:
        *out = MESH_OP_EQ;
        return 1;
    case SQLITE_INDEX_CONSTRAINT_GT:
        *out = MESH_OP_GT;
        return 1;
    case SQLITE_INDEX_CONSTRAINT_GE:
        *out = MESH_OP_GE;
        return 1;
    case SQLITE_INDEX_CONSTRAINT_LT:
        *out = MESH_OP_LT;
        return 1;
    case SQLITE_INDEX_CONSTRAINT_LE:
        *out = MESH_OP_LE;
        return 1;
    case SQLITE_INDEX_CONSTRAINT_NE:
        *out = MESH_OP_NE;
        return 1;
    case SQLITE_INDEX_CONSTRAINT_ISNULL:
        *out = MESH_OP_ISNULL;
        return 1;
    case SQLITE_INDEX_CONSTRAINT_ISNOTNULL:
        *out = MESH_OP_ISNOTNULL;
        return 1;
    case SQLITE_INDEX_CONSTRAINT_IS:
        *out = MESH_OP_IS;
        return 1;
    case SQLITE_INDEX_CONSTRAINT_ISNOT:
        *out = MESH_OP_ISNOT;
        return 1;
    default:
        return 0;
    }
}

static int has_arg(mesh_op_t op)
{
    return op != MESH_OP_ISNULL && op != MESH_OP_ISNOTNULL;
}

static int pv_best_index(sqlite3_vtab *vt, sqlite3_index_info *info)
{
    pvtab_t *t = (pvtab_t *)vt;
    mesh_scan_plan_t plan;
    memset(&plan, 0, sizeof plan);
    int map[MESH_SCAN_MAX_CONS]; /* plan constraint -> aConstraint index */
    int limit_idx = -1, offset_seen = 0, all_pushable = 1;
    for (int i = 0; i < info->nConstraint; i++) {
        const struct sqlite3_index_constraint *c = &info->aConstraint[i];
        if (c->op == SQLITE_INDEX_CONSTRAINT_LIMIT) {
            if (c->usable)
                limit_idx = i;
            continue;
        }
        if (c->op == SQLITE_INDEX_CONSTRAINT_OFFSET) {
            offset_seen = 1;
            continue;
        }
        mesh_op_t op;
        if (!c->usable || c->iColumn < 0 || !map_op(c->op, &op) ||
            plan.ncons == MESH_SCAN_MAX_CONS) {
            all_pushable = 0;
            continue;
        }
        /* comparing a time column with text never does what was meant: say so */
        if (c->iColumn == t->time_col && has_arg(op)) {
            sqlite3_value *rhs = NULL;
            if (sqlite3_vtab_rhs_value(info, i, &rhs) == SQLITE_OK && rhs &&
                sqlite3_value_type(rhs) == SQLITE_TEXT) {
                const char *col = t->quarantine ? mesh_quarantine_cols[t->time_col]
                                                : t->p->cols[t->time_col].name;
                sqlite3_free(vt->zErrMsg);
                vt->zErrMsg = sqlite3_mprintf(
                    "time column '%s' holds nanoseconds since 1970: compare it with "
                    "ts('%s') or ago('1h'), not with text",
                    col, (const char *)sqlite3_value_text(rhs));
                return SQLITE_ERROR;
            }
        }
        map[plan.ncons] = i;
        plan.cons[plan.ncons].col = c->iColumn;
        plan.cons[plan.ncons].op = op;
        plan.ncons++;
    }
    /* an ORDER BY, or a GROUP BY (rows of a group adjacent), of columns: the store may give
     * rows in that order and spare SQLite its sort */
    if (info->nOrderBy > 0 && info->nOrderBy <= MESH_SCAN_MAX_ORDER) {
        plan.norder = info->nOrderBy;
        for (int i = 0; i < info->nOrderBy; i++) {
            plan.order[i].col = info->aOrderBy[i].iColumn;
            plan.order[i].desc = info->aOrderBy[i].desc;
            if (plan.order[i].col < 0)
                plan.norder = 0;
        }
    }
    /* LIMIT only when every constraint is pushed, the order is ours and there is no OFFSET */
    plan.want_limit =
        limit_idx >= 0 && all_pushable && !offset_seen && (info->nOrderBy == 0 || plan.norder > 0);
    plan.cols_used = info->colUsed;
    mesh_store_plan(mesh_domain_store(t->sd->dom), t->p, t->view, &plan);

    int argv = 0;
    for (int k = 0; k < plan.ncons; k++) {
        if (!plan.cons[k].used)
            continue;
        if (has_arg(plan.cons[k].op))
            info->aConstraintUsage[map[k]].argvIndex = ++argv;
        info->aConstraintUsage[map[k]].omit = 0;
    }
    if (plan.limit_used)
        info->aConstraintUsage[limit_idx].argvIndex = ++argv;
    if (plan.order_used && plan.norder == info->nOrderBy)
        info->orderByConsumed = 1;
    info->estimatedRows = plan.est_rows;
    info->estimatedCost = plan.cost;
    if (plan.est_rows <= 1)
        info->idxFlags |= SQLITE_INDEX_SCAN_UNIQUE;
    char *hex = sqlite3_malloc(2 * sizeof plan + 1);
    if (hex == NULL)
        return SQLITE_NOMEM;
    mesh_hex((const uint8_t *)&plan, sizeof plan, hex);
    info->idxStr = hex;
    info->needToFreeIdxStr = 1;
    return SQLITE_OK;
}

static int pv_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out)
{
    (void)vt;
    pcursor_t *c = sqlite3_malloc(sizeof *c);
    if (c == NULL)
        return SQLITE_NOMEM;
    memset(c, 0, sizeof *c);
    c->eof = 1;
    *out = &c->base;
    return SQLITE_OK;
}

static int pv_close(sqlite3_vtab_cursor *cur)
{
    pcursor_t *c = (pcursor_t *)cur;
    mesh_scan_close(c->scan);
    sqlite3_free(c->plan_str);
    sqlite3_free(c);
    return SQLITE_OK;
}

static int fail(pcursor_t *c, const char *msg)
{
    sqlite3_vtab *vt = c->base.pVtab;
    sqlite3_free(vt->zErrMsg);
    vt->zErrMsg = sqlite3_mprintf("%s", msg);
    c->eof = 1;
    /* a page that failed authentication (crypt/vfs.c) is damage, not a bad query */
    return mesh_crypt_failure() && strstr(msg, "fails authentication") ? SQLITE_CORRUPT_VTAB
                                                                       : SQLITE_ERROR;
}

static int advance(pcursor_t *c)
{
    int r = mesh_scan_next(c->scan);
    if (r < 0)
        return fail(c, mesh_scan_error(c->scan));
    c->eof = r == 0;
    if (r == 1)
        ((pvtab_t *)c->base.pVtab)->s->rows_scanned++;
    c->rowid++;
    return SQLITE_OK;
}

static int pv_filter(sqlite3_vtab_cursor *cur, int idx_num, const char *idx_str, int argc,
                     sqlite3_value **argv)
{
    (void)idx_num;
    pcursor_t *c = (pcursor_t *)cur;
    pvtab_t *t = (pvtab_t *)cur->pVtab;
    mesh_scan_plan_t plan;
    if (idx_str == NULL || strlen(idx_str) != 2 * sizeof plan ||
        !mesh_unhex(idx_str, (uint8_t *)&plan, sizeof plan))
        return fail(c, "mesh_product: bad plan");
    mesh_datum_t args[MESH_SCAN_MAX_CONS + 1];
    if (argc > (int)MESH_ARRAY_LEN(args))
        return fail(c, "mesh_product: too many arguments");
    for (int i = 0; i < argc; i++) {
        mesh_datum_t *a = &args[i];
        memset(a, 0, sizeof *a);
        switch (sqlite3_value_type(argv[i])) {
        case SQLITE_INTEGER:
            a->type = MESH_V_INT;
            a->i = sqlite3_value_int64(argv[i]);
            break;
        case SQLITE_FLOAT:
            a->type = MESH_V_REAL;
            a->d = sqlite3_value_double(argv[i]);
            break;
        case SQLITE_TEXT:
        case SQLITE_BLOB:
            a->type = MESH_V_TEXT;
            a->s = (const char *)sqlite3_value_text(argv[i]);
            a->n = (size_t)sqlite3_value_bytes(argv[i]);
            break;
        default:
            a->type = MESH_V_NULL;
        }
    }
    mesh_err_t err;
    mesh_err_clear(&err);
    if (c->scan && c->plan_str && strcmp(c->plan_str, idx_str) == 0) {
        /* the same plan with new values (the inner side of a join): rewind */
        if (mesh_scan_rewind(c->scan, &plan, args, argc, &err) != MESH_OK)
            return fail(c, err.msg);
        c->rowid = 0;
        return advance(c);
    }
    mesh_scan_close(c->scan);
    c->scan = NULL;
    sqlite3_free(c->plan_str);
    c->plan_str = sqlite3_mprintf("%s", idx_str);
    mesh_store_reader_t *r;
    if (mesh__session_reader(t->s, t->sd, &r, &err) != MESH_OK ||
        mesh_scan_open(r, t->p, t->view, &plan, args, argc, &c->scan, &err) != MESH_OK)
        return fail(c, err.msg);
    char pname[160];
    static const char *const suffix[] = {"", "__quarantine", "__last"};
    snprintf(pname, sizeof pname, "%s%s", t->p->name, suffix[t->view]);
    mesh__session_note_product(t->s, t->sd->meta.name, pname);
    c->rowid = 0;
    return advance(c);
}

static int pv_next(sqlite3_vtab_cursor *cur)
{
    return advance((pcursor_t *)cur);
}

static int pv_eof(sqlite3_vtab_cursor *cur)
{
    return ((pcursor_t *)cur)->eof;
}

static int pv_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col)
{
    pcursor_t *c = (pcursor_t *)cur;
    mesh_datum_t d;
    mesh_scan_value(c->scan, col, &d);
    switch (d.type) {
    case MESH_V_INT:
        sqlite3_result_int64(ctx, d.i);
        break;
    case MESH_V_REAL:
        sqlite3_result_double(ctx, d.d);
        break;
    case MESH_V_TEXT:
        sqlite3_result_text(ctx, d.s, (int)d.n, SQLITE_TRANSIENT);
        break;
    default:
        sqlite3_result_null(ctx);
    }
    return SQLITE_OK;
}

static int pv_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *out)
{
    *out = ((pcursor_t *)cur)->rowid;
    return SQLITE_OK;
}

static sqlite3_module product_module = {
    .iVersion = 0,
    .xCreate = pv_connect,
    .xConnect = pv_connect,
    .xBestIndex = pv_best_index,
    .xDisconnect = pv_disconnect,
    .xDestroy = pv_disconnect,
    .xOpen = pv_open,
    .xClose = pv_close,
    .xFilter = pv_filter,
    .xNext = pv_next,
    .xEof = pv_eof,
    .xColumn = pv_column,
    .xRowid = pv_rowid,
};

int mesh__vtab_register(sqlite3 *db, qsession_t *s)
{
    return sqlite3_create_module_v2(db, "mesh_product", &product_module, s, NULL);
}
