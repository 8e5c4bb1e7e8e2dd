/*
 * vtab.c - the product virtual table: the one way SQL reads a data product.
 *
 * `CREATE VIRTUAL TABLE dom.prod USING mesh_product` (done by the session) declares the
 * product's columns with meshd's SQL types. xBestIndex hands the usable WHERE constraints,
 * a single-column ORDER BY and LIMIT to the store's planner, which says what it will apply
 * (its indexes do the work: a device's last hour does not read the product); SQLite still
 * checks every constraint itself (omit stays 0), so a plan can only narrow, never change,
 * a result, except those the store marks exact (a time series' time range, checked on every
 * row it returns; decision 0034). This is the seam where policies and remote scans plug in.
 *
 * Policies (auth/policy.h), fixed when the table is connected (a session's schemas belong to
 * one principal under one policy version):
 *   - only the columns the caller may read are declared; the others do not exist for it;
 *   - masked columns hand SQLite the masked value, so every predicate, ORDER BY, join and
 *     output sees only that; constraints and orders on them are never pushed to the store
 *     (it would compare the clear values);
 *   - a row filter is evaluated here, on every row the store hands over, before xNext
 *     returns it: SQLite never sees a filtered row, so no predicate, function, error, count
 *     or LIMIT of the caller's query can reveal one (and LIMIT is not pushed down then).
 *
 * The plan travels from xBestIndex to xFilter in idxStr as hex of the plan struct, after
 * one character: 'B' when the last argument is a bucket width.
 *
 * Products with a time column also have two hidden columns: bucket_width, an argument
 * (`FROM d.p('1h')` or `WHERE bucket_width = '1h'`), and bucket, the row's time floored to
 * that width (as time_bucket() floors). A time series gives rows in time order within each
 * series, so `GROUP BY key, bucket` is an order the scan gives itself and SQLite aggregates
 * without sorting every row.
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
    int ncols;              /* declared (visible) columns */
    int time_col;           /* declared index of the time column, -1 */
    int *pcol;              /* declared column -> product (or quarantine) column */
    mesh_mask_type_t *mask; /* per declared column */
    sqlite3_stmt **custom;  /* per declared column: CUSTOM masks */
    sqlite3_stmt *filter;   /* the row filter; NULL: every row */
    bool need_row;          /* the filter or a CUSTOM mask reads every column */
    mesh_policy_t *policy;  /* keeps the mask key alive */
    char *applied;          /* the masks and row filter applied, for the audit (see below) */
    /* hidden columns of a product with a time column: bucket_width (an argument: '1h') and
     * bucket (the time floored to it), so GROUP BY key, bucket needs no sort; -1: none */
    int bw_col, bucket_col;
    /* an aggregates-only product read by an outsider: scanned only for a query the session
     * checked and rewrote (query/aggquery.c) */
    bool agg_only;
} pvtab_t;

typedef struct pcursor {
    sqlite3_vtab_cursor base;
    mesh_scan_t *scan;
    char *plan_str; /* the idxStr the scan was opened with: the same plan rewinds it */
    int eof;
    sqlite3_int64 rowid;
    mesh_datum_t *row; /* the current row's product columns, for policy expressions */
    bool row_loaded;
    int64_t bucket_ns; /* the bucket width of this scan, 0: none */
    char bucket_text[32];
    /* per declared column: its text outlives the statement (a series key), so SQLite may
     * point at it rather than copy it on every row */
    bool stable[MESH_CONTRACT_MAX_COLUMNS];
} pcursor_t;

void mesh__width_text(int64_t ns, char *out, size_t cap)
{
    static const struct {
        const char *unit;
        int64_t ns;
    } units[] = {{"d", 86400000000000LL},
                 {"h", 3600000000000LL},
                 {"m", 60000000000LL},
                 {"s", 1000000000LL},
                 {"ms", 1000000LL},
                 {"us", 1000LL},
                 {"ns", 1}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (ns % units[i].ns == 0) {
            snprintf(out, cap, "%lld%s", (long long)(ns / units[i].ns), units[i].unit);
            return;
        }
}

static const char *col_sql_type(const pvtab_t *t, int i)
{
    if (t->quarantine) {
        static const char *qt[] = {"INTEGER", "TIMESTAMP", "INTEGER", "TEXT", "TEXT"};
        return qt[t->pcol[i]];
    }
    /* a text mask of a number gives text */
    mesh_mask_type_t m = t->mask[i];
    if (m == MESH_MASK_REDACT || m == MESH_MASK_SHOW_LAST_4 || m == MESH_MASK_SHOW_FIRST_4 ||
        m == MESH_MASK_HASH)
        return "TEXT";
    return mesh_ltype_sql(t->p->cols[t->pcol[i]].type);
}

static void pvtab_free(pvtab_t *t)
{
    if (t == NULL)
        return;
    for (int i = 0; t->custom && i < t->ncols; i++)
        sqlite3_finalize(t->custom[i]);
    sqlite3_finalize(t->filter);
    sqlite3_free(t->pcol);
    sqlite3_free(t->mask);
    sqlite3_free(t->custom);
    sqlite3_free(t->applied);
    mesh_policy_put(t->policy);
    sqlite3_free(t);
}

/* Applies the caller's policy for the product: visible columns, masks, the row filter. */
static int apply_policy(pvtab_t *t, char **errmsg)
{
    qsession_t *s = t->s;
    const mesh_product_t *p = t->p;
    int total = t->quarantine ? MESH_QUARANTINE_NCOLS : (int)p->ncols;
    t->pcol = sqlite3_malloc64((size_t)(total ? total : 1) * sizeof *t->pcol);
    t->mask = sqlite3_malloc64((size_t)(total ? total : 1) * sizeof *t->mask);
    t->custom = sqlite3_malloc64((size_t)(total ? total : 1) * sizeof *t->custom);
    if (!t->pcol || !t->mask || !t->custom)
        return SQLITE_NOMEM;
    memset(t->mask, 0, (size_t)(total ? total : 1) * sizeof *t->mask);
    memset(t->custom, 0, (size_t)(total ? total : 1) * sizeof *t->custom);
    t->time_col = -1;
    bool owner = mesh__session_owner(s, p->domain);
    if (t->quarantine) {
        /* raw refused input: administrators of the product only, all of it */
        if (!mesh_policy_decide(s->policy, s->who, MESH_ACT_ADMIN, p->domain, p->name, owner,
                                NULL)) {
            *errmsg = sqlite3_mprintf("no such table: %s.%s__quarantine", p->domain, p->name);
            return SQLITE_ERROR;
        }
        for (int i = 0; i < total; i++)
            t->pcol[i] = i;
        t->ncols = total;
        t->time_col = 1;
        return SQLITE_OK;
    }
    t->agg_only = p->egress_aggregates && mesh__session_outsider(s, p);
    mesh_view_policy_t v;
    mesh_err_t err;
    if (mesh_policy_view(s->policy, s->who, p, owner, &v, &err) != MESH_OK)
        return SQLITE_NOMEM;
    if (!v.readable) {
        mesh_view_policy_free(&v);
        *errmsg = sqlite3_mprintf("no such table: %s.%s", p->domain, p->name);
        return SQLITE_ERROR;
    }
    int rc = SQLITE_OK;
    bool exprs = v.nfilters > 0;
    for (size_t c = 0; c < p->ncols; c++)
        exprs |= v.visible[c] && v.mask[c] == MESH_MASK_CUSTOM;
    if (exprs && s->pdb == NULL) {
        if (mesh__pexpr_open(&s->pdb, &err) != MESH_OK)
            rc = SQLITE_NOMEM;
        else /* a slow filter or mask stops at the query's deadline too */
            sqlite3_progress_handler(s->pdb, 1000, mesh__session_progress, s);
    }
    for (size_t c = 0; c < p->ncols && rc == SQLITE_OK; c++) {
        if (!v.visible[c])
            continue;
        int k = t->ncols++;
        t->pcol[k] = (int)c;
        t->mask[k] = v.mask[c];
        if ((int)c == p->time_col)
            t->time_col = k;
        if (v.mask[c] == MESH_MASK_CUSTOM) {
            if (mesh__pexpr_prepare(s->pdb, p, v.mask_expr[c], NULL, 0, p->cols[c].name,
                                    &t->custom[k], &err) != MESH_OK) {
                /* a policy that no longer compiles (the contract changed): hide the value */
                t->mask[k] = MESH_MASK_NULL;
            } else {
                t->need_row = true;
            }
        }
    }
    if (rc == SQLITE_OK && v.nfilters > 0) {
        if (mesh__pexpr_prepare(s->pdb, p, "1", v.filters, v.nfilters, NULL, &t->filter, &err) !=
            MESH_OK) {
            /* a filter that does not compile any more lets no row through */
            *errmsg = sqlite3_mprintf("%s.%s: its row filter does not apply to this product "
                                      "any more (%s): ask an administrator",
                                      p->domain, p->name, err.msg);
            rc = SQLITE_ERROR;
        }
        t->need_row = true;
    }
    /* what the audit log says the query ran under: one line per mask and per row filter */
    sqlite3_str *ap = sqlite3_str_new(NULL);
    for (int k = 0; k < t->ncols; k++)
        if (t->mask[k] != MESH_MASK_NONE)
            sqlite3_str_appendf(ap, "m%s.%s.%s: %s (mask %lld)\n", p->domain, p->name,
                                p->cols[t->pcol[k]].name, mesh_mask_type_name(t->mask[k]),
                                (long long)v.mask_id[t->pcol[k]]);
    for (size_t i = 0; t->filter && i < v.nfilters; i++)
        sqlite3_str_appendf(ap, "f%s.%s (row filter %lld)\n", p->domain, p->name,
                            (long long)v.filter_ids[i]);
    t->applied = sqlite3_str_finish(ap);
    mesh_view_policy_free(&v);
    t->policy = mesh_policy_ref(s->policy);
    return rc;
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
    int rc = apply_policy(t, errmsg);
    if (rc != SQLITE_OK) {
        pvtab_free(t);
        return rc;
    }
    sqlite3_str *ddl = sqlite3_str_new(db);
    sqlite3_str_appendall(ddl, "CREATE TABLE x(");
    for (int i = 0; i < t->ncols; i++) {
        const char *name = quarantine ? mesh_quarantine_cols[i] : p->cols[t->pcol[i]].name;
        sqlite3_str_appendf(ddl, "%s\"%w\" %s", i ? "," : "", name, col_sql_type(t, i));
    }
    /* time buckets as columns: offered on a visible, unmasked time column when the product
     * has no columns of these names */
    t->bw_col = t->bucket_col = -1;
    if (!quarantine && t->time_col >= 0 && t->mask[t->time_col] == MESH_MASK_NONE &&
        mesh_product_col(p, "bucket", 6) < 0 && mesh_product_col(p, "bucket_width", 12) < 0) {
        t->bw_col = t->ncols;
        t->bucket_col = t->ncols + 1;
        sqlite3_str_appendall(ddl, ",\"bucket_width\" TEXT HIDDEN,\"bucket\" TIMESTAMP HIDDEN");
    }
    /* A row's identity. SQLite's multi-index OR (WHERE a = 1 OR b = 2, one scan per branch)
     * drops rows whose identity a branch already returned: scans number their rows from 1,
     * so identity must be the key. Declared WITHOUT ROWID with the product's key as PRIMARY
     * KEY when every key column is visible and unmasked (a masked key is not unique); else
     * the table has a rowid that no plan may use (pv_rowid refuses, clearly). */
    int keycols[MESH_CONTRACT_MAX_COLUMNS];
    size_t nk = 0;
    if (quarantine) {
        keycols[nk++] = 0; /* id */
    } else {
        /* the __last view: one row per series, keyed by the key without the time */
        size_t want = view == MESH_VIEW_LAST && p->time_col >= 0 && p->nkey ? p->nkey - 1 : p->nkey;
        for (size_t k = 0; k < p->nkey; k++) {
            int pc = p->key_cols[k], dc = -1;
            if (view == MESH_VIEW_LAST && pc == p->time_col)
                continue;
            for (int i = 0; i < t->ncols; i++)
                if (t->pcol[i] == pc)
                    dc = i;
            if (dc < 0 || t->mask[dc] != MESH_MASK_NONE) {
                nk = 0;
                break;
            }
            keycols[nk++] = dc;
        }
        if (nk != want)
            nk = 0;
    }
    if (nk > 0) {
        sqlite3_str_appendall(ddl, ",PRIMARY KEY(");
        for (size_t k = 0; k < nk; k++) {
            const char *name =
                quarantine ? mesh_quarantine_cols[keycols[k]] : p->cols[t->pcol[keycols[k]]].name;
            sqlite3_str_appendf(ddl, "%s\"%w\"", k ? "," : "", name);
        }
        sqlite3_str_appendall(ddl, ")) WITHOUT ROWID");
    } else {
        sqlite3_str_appendall(ddl, ")");
    }
    char *sql = sqlite3_str_finish(ddl);
    rc = sql ? sqlite3_declare_vtab(db, sql) : SQLITE_NOMEM;
    sqlite3_free(sql);
    if (rc != SQLITE_OK) {
        pvtab_free(t);
        return rc;
    }
    sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
    *out = &t->base;
    return SQLITE_OK;
}

static int pv_disconnect(sqlite3_vtab *vt)
{
    pvtab_free((pvtab_t *)vt);
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
    if (t->agg_only && t->s->agg_hit == NULL && !t->s->agg_strict)
        t->s->agg_hit = t->p; /* planned in a query: the session checks its shape */
    mesh_scan_plan_t plan;
    memset(&plan, 0, sizeof plan);
    int map[MESH_SCAN_MAX_CONS]; /* plan constraint -> aConstraint index */
    int limit_idx = -1, offset_seen = 0, all_pushable = 1, bw_idx = -1;
    for (int i = 0; i < info->nConstraint; i++) {
        const struct sqlite3_index_constraint *c = &info->aConstraint[i];
        if (t->bw_col >= 0 && c->iColumn == t->bw_col) {
            /* bucket_width = '1h' (or d.p('1h')): the scan's argument */
            if (c->usable && c->op == SQLITE_INDEX_CONSTRAINT_EQ)
                bw_idx = i;
            else
                all_pushable = 0;
            continue;
        }
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
        /* a masked column is compared by SQLite on the masked value, never by the store */
        if (!c->usable || c->iColumn < 0 || c->iColumn >= t->ncols || !map_op(c->op, &op) ||
            plan.ncons == MESH_SCAN_MAX_CONS || t->mask[c->iColumn] != MESH_MASK_NONE) {
            all_pushable = 0;
            continue;
        }
        /* comparing a time column with text never does what was meant: say so */
        if (c->iColumn == t->time_col && has_arg(op)) {
            sqlite3_value *rhs = NULL;
            if (sqlite3_vtab_rhs_value(info, i, &rhs) == SQLITE_OK && rhs &&
                sqlite3_value_type(rhs) == SQLITE_TEXT) {
                const char *col = t->quarantine ? mesh_quarantine_cols[t->time_col]
                                                : t->p->cols[t->pcol[t->time_col]].name;
                sqlite3_free(vt->zErrMsg);
                vt->zErrMsg = sqlite3_mprintf(
                    "time column '%s' holds nanoseconds since 1970: compare it with "
                    "ts('%s') or ago('1h'), not with text",
                    col, (const char *)sqlite3_value_text(rhs));
                return SQLITE_ERROR;
            }
        }
        map[plan.ncons] = i;
        plan.cons[plan.ncons].col = t->pcol[c->iColumn];
        plan.cons[plan.ncons].op = op;
        plan.ncons++;
    }
    /* an ORDER BY, or a GROUP BY (rows of a group adjacent), of columns: the store may give
     * rows in that order and spare SQLite its sort */
    if (info->nOrderBy > 0 && info->nOrderBy <= MESH_SCAN_MAX_ORDER) {
        plan.norder = info->nOrderBy;
        for (int i = 0; i < info->nOrderBy; i++) {
            int k = info->aOrderBy[i].iColumn;
            /* a bucket follows its time: ordered by time, ordered by bucket */
            if (k >= 0 && k == t->bucket_col && bw_idx >= 0)
                k = t->time_col;
            /* the order of clear values would tell what a mask hides */
            if (k < 0 || k >= t->ncols || t->mask[k] != MESH_MASK_NONE) {
                plan.norder = 0;
                break;
            }
            plan.order[i].col = t->pcol[k];
            plan.order[i].desc = info->aOrderBy[i].desc;
        }
    }
    /* LIMIT only when every constraint is pushed, the order is ours and there is no OFFSET */
    plan.want_limit = limit_idx >= 0 && all_pushable && !offset_seen && t->filter == NULL &&
                      (info->nOrderBy == 0 || plan.norder > 0);
    /* the columns read, as product columns (bit 63: any column from the 64th on) */
    if (t->need_row) {
        plan.cols_used = ~0ULL;
    } else {
        for (int k = 0; k < t->ncols; k++) {
            bool used = (info->colUsed >> (k < 63 ? k : 63)) & 1;
            if (used)
                plan.cols_used |= 1ULL << (t->pcol[k] < 63 ? t->pcol[k] : 63);
        }
        int pt = t->time_col >= 0 ? t->pcol[t->time_col] : 0;
        int bc = t->bucket_col < 63 ? t->bucket_col : 63;
        if (t->bucket_col >= 0 && ((info->colUsed >> bc) & 1))
            plan.cols_used |= 1ULL << (pt < 63 ? pt : 63);
    }
    mesh_store_plan(mesh_domain_store(t->sd->dom), t->p, t->view, &plan);

    int argv = 0;
    for (int k = 0; k < plan.ncons; k++) {
        if (!plan.cons[k].used)
            continue;
        if (has_arg(plan.cons[k].op))
            info->aConstraintUsage[map[k]].argvIndex = ++argv;
        /* only what the store checks on every row as SQLite would (a time range of a time
         * series): SQLite's own check of it would only repeat the store's (decision 0034) */
        info->aConstraintUsage[map[k]].omit = plan.cons[k].exact && has_arg(plan.cons[k].op);
    }
    if (plan.limit_used)
        info->aConstraintUsage[limit_idx].argvIndex = ++argv;
    if (bw_idx >= 0) { /* always the last argument */
        info->aConstraintUsage[bw_idx].argvIndex = ++argv;
        info->aConstraintUsage[bw_idx].omit = 1;
    }
    if (plan.order_used && plan.norder == info->nOrderBy)
        info->orderByConsumed = 1;
    info->estimatedRows = plan.est_rows;
    info->estimatedCost = plan.cost;
    if (plan.est_rows <= 1)
        info->idxFlags |= SQLITE_INDEX_SCAN_UNIQUE;
    /* 'B' when the last argument is a bucket width, '-' otherwise, then the plan */
    char *hex = sqlite3_malloc(2 * sizeof plan + 2);
    if (hex == NULL)
        return SQLITE_NOMEM;
    hex[0] = bw_idx >= 0 ? 'B' : '-';
    mesh_hex((const uint8_t *)&plan, sizeof plan, hex + 1);
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
    sqlite3_free(c->row);
    sqlite3_free(c);
    return SQLITE_OK;
}

/* The current row's product columns, for a policy expression. */
static int load_row(pcursor_t *c)
{
    pvtab_t *t = (pvtab_t *)c->base.pVtab;
    if (c->row_loaded)
        return SQLITE_OK;
    if (c->row == NULL) {
        c->row = sqlite3_malloc64((t->p->ncols ? t->p->ncols : 1) * sizeof *c->row);
        if (c->row == NULL)
            return SQLITE_NOMEM;
    }
    for (size_t i = 0; i < t->p->ncols; i++)
        mesh_scan_value(c->scan, (int)i, &c->row[i]);
    c->row_loaded = true;
    return SQLITE_OK;
}

/* Does the current row pass the caller's row filter? 1 yes, 0 no, -1 error. */
static int passes(pcursor_t *c)
{
    pvtab_t *t = (pvtab_t *)c->base.pVtab;
    if (t->filter == NULL)
        return 1;
    if (load_row(c) != SQLITE_OK)
        return -1;
    mesh__pexpr_bind(t->filter, c->row, t->p->ncols);
    int rc = sqlite3_step(t->filter);
    sqlite3_reset(t->filter);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int mesh__vtab_error(sqlite3_vtab *vt, const char *msg)
{
    sqlite3_free(vt->zErrMsg);
    vt->zErrMsg = sqlite3_mprintf("%s", msg);
    return SQLITE_ERROR;
}

static int fail(pcursor_t *c, const char *msg)
{
    mesh__vtab_error(c->base.pVtab, msg);
    c->eof = 1;
    /* a page that failed authentication (crypt/vfs.c) is damage, not a bad query */
    return mesh_crypt_failure() && strstr(msg, "fails authentication") ? SQLITE_CORRUPT_VTAB
                                                                       : SQLITE_ERROR;
}

static int advance(pcursor_t *c)
{
    pvtab_t *t = (pvtab_t *)c->base.pVtab;
    for (;;) {
        c->row_loaded = false;
        int r = mesh_scan_next(c->scan);
        if (r < 0)
            return fail(c, mesh_scan_error(c->scan));
        c->eof = r == 0;
        if (r == 0)
            break;
        /* a row the caller's filter hides is never seen by SQLite, nor counted */
        int ok = passes(c);
        if (ok < 0) {
            char msg[200];
            snprintf(msg, sizeof msg, "the row filter of %s.%s failed", t->p->domain, t->p->name);
            return fail(c, msg);
        }
        if (ok == 1) {
            t->s->rows_scanned++;
            break;
        }
    }
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
    if (idx_str == NULL || strlen(idx_str) != 2 * sizeof plan + 1 ||
        !mesh_unhex(idx_str + 1, (uint8_t *)&plan, sizeof plan))
        return fail(c, "mesh_product: bad plan");
    if (t->agg_only && !t->s->agg_ok)
        return fail(c, "this product releases aggregates only to callers outside its domain");
    c->bucket_ns = 0;
    if (idx_str[0] == 'B' && argc > 0) {
        /* the bucket width: a duration text or nanoseconds */
        sqlite3_value *w = argv[--argc];
        int64_t ns = 0;
        if (sqlite3_value_type(w) == SQLITE_INTEGER)
            ns = sqlite3_value_int64(w);
        else if (sqlite3_value_type(w) != SQLITE_TEXT ||
                 mesh_duration_parse((const char *)sqlite3_value_text(w), &ns) != MESH_OK)
            ns = -1;
        if (ns <= 0)
            return fail(c, "bucket_width: a positive duration such as '1h' or '15m'");
        c->bucket_ns = ns;
        mesh__width_text(ns, c->bucket_text, sizeof c->bucket_text);
    }
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
    for (int i = 0; i < t->ncols && i < MESH_CONTRACT_MAX_COLUMNS; i++)
        c->stable[i] = !t->quarantine && t->mask[i] == MESH_MASK_NONE &&
                       mesh_scan_text_stable(c->scan, t->pcol[i]);
    char pname[160];
    static const char *const suffix[] = {"", "__quarantine", "__last"};
    snprintf(pname, sizeof pname, "%s%s", t->p->name, suffix[t->view]);
    mesh__session_note_product(t->s, t->sd->meta.name, pname);
    mesh__session_note_policies(t->s, t->applied);
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

void mesh__result_datum(sqlite3_context *ctx, const mesh_datum_t *d, bool stable)
{
    switch (d->type) {
    case MESH_V_INT:
        sqlite3_result_int64(ctx, d->i);
        break;
    case MESH_V_REAL:
        sqlite3_result_double(ctx, d->d);
        break;
    case MESH_V_TEXT:
        sqlite3_result_text(ctx, d->s, (int)d->n, stable ? SQLITE_STATIC : SQLITE_TRANSIENT);
        break;
    default:
        sqlite3_result_null(ctx);
    }
}

/* A masked value of column k (declared index) of the current row. */
static int result_masked(pcursor_t *c, sqlite3_context *ctx, int k, const mesh_datum_t *d)
{
    pvtab_t *t = (pvtab_t *)c->base.pVtab;
    mesh_mask_type_t m = t->mask[k];
    if (m == MESH_MASK_NULL || (d->type == MESH_V_NULL && m != MESH_MASK_CUSTOM)) {
        sqlite3_result_null(ctx);
        return SQLITE_OK;
    }
    if (m == MESH_MASK_CUSTOM) {
        int rc = load_row(c);
        if (rc != SQLITE_OK)
            return rc;
        sqlite3_stmt *q = t->custom[k];
        mesh__pexpr_bind(q, c->row, t->p->ncols);
        if (sqlite3_step(q) == SQLITE_ROW)
            sqlite3_result_value(ctx, sqlite3_column_value(q, 0));
        else
            sqlite3_result_null(ctx);
        sqlite3_reset(q);
        return SQLITE_OK;
    }
    if (m == MESH_MASK_DATE_SHOW_YEAR) {
        if (d->type == MESH_V_INT) {
            sqlite3_result_int64(ctx, mesh_mask_year_ns(d->i));
        } else if (d->type == MESH_V_TEXT && d->n >= 5 && d->s[4] == '-' &&
                   strspn(d->s, "0123456789") >= 4) {
            char y[16];
            snprintf(y, sizeof y, "%.4s-01-01", d->s);
            sqlite3_result_text(ctx, y, -1, SQLITE_TRANSIENT);
        } else {
            sqlite3_result_null(ctx);
        }
        return SQLITE_OK;
    }
    /* text masks: numbers are masked in their text form */
    char num[48];
    const char *src = num;
    size_t n;
    if (d->type == MESH_V_TEXT) {
        src = d->s;
        n = d->n;
    } else if (d->type == MESH_V_INT) {
        n = (size_t)snprintf(num, sizeof num, "%lld", (long long)d->i);
    } else {
        mesh_buf_t b;
        mesh_buf_init(&b, 64);
        mesh_buf_add_double(&b, d->d);
        n = b.len < sizeof num ? b.len : sizeof num - 1;
        memcpy(num, b.data ? b.data : "", n);
        num[n] = '\0';
        mesh_buf_free(&b);
    }
    size_t cap = 4 * n + 66;
    char *out = sqlite3_malloc64(cap);
    if (out == NULL)
        return SQLITE_NOMEM;
    size_t len = mesh_mask_text(m, mesh_policy_mask_key(t->policy), src, n, out, cap);
    sqlite3_result_text(ctx, out, (int)len, sqlite3_free);
    return SQLITE_OK;
}

static int pv_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col)
{
    pcursor_t *c = (pcursor_t *)cur;
    pvtab_t *t = (pvtab_t *)cur->pVtab;
    if (col >= t->ncols) { /* bucket_width, bucket */
        mesh_datum_t tv;
        if (c->bucket_ns <= 0) {
            sqlite3_result_null(ctx);
        } else if (col == t->bw_col) {
            sqlite3_result_text(ctx, c->bucket_text, -1, SQLITE_TRANSIENT);
        } else {
            mesh_scan_value(c->scan, t->pcol[t->time_col], &tv);
            if (tv.type != MESH_V_INT) {
                sqlite3_result_null(ctx);
            } else {
                sqlite3_result_int64(ctx, mesh_store_cagg_bucket(tv.i, c->bucket_ns));
            }
        }
        return SQLITE_OK;
    }
    mesh_datum_t d;
    mesh_scan_value(c->scan, t->pcol[col], &d);
    if (t->mask[col] != MESH_MASK_NONE)
        return result_masked(c, ctx, col, &d);
    mesh__result_datum(ctx, &d, c->stable[col]);
    return SQLITE_OK;
}

static int pv_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *out)
{
    /* only a table without a usable key has a rowid (see pv_connect), and a scan's row
     * numbers are no identity: a plan that needs one (an OR over different columns) would
     * drop rows, so it fails instead */
    (void)out;
    sqlite3_vtab *vt = cur->pVtab;
    sqlite3_free(vt->zErrMsg);
    vt->zErrMsg = sqlite3_mprintf(
        "this query needs a row identity that the product cannot give (its key is masked, not "
        "visible, or it has none): write the OR as a UNION of two queries");
    return SQLITE_ERROR;
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
