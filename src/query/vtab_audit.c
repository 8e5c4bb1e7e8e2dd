/*
 * vtab_audit.c - system.audit: the audit log as a read-only table, for principals who may
 * read it (the admin and auditor roles).
 *
 * The session attaches a `system` schema holding this one table when a query names it and
 * the caller may read the audit log (session.c); the authorizer refuses the schema to
 * everyone else, and xFilter checks again. Equality on action and principal and ranges on
 * seq and time are handed to the audit scan (mesh_audit_filter_t), which skips what cannot
 * match; SQLite still checks every constraint itself (omit stays 0), so the filter can only
 * narrow the scan, never change a result. Each row is one event, in seq order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "query/internal.h"

enum {
    C_SEQ,
    C_TIME,
    C_ACTION,
    C_PRINCIPAL,
    C_PRINCIPAL_ID,
    C_AUTH,
    C_TOKEN_ID,
    C_SOURCE,
    C_REQUEST_ID,
    C_DOMAIN,
    C_PRODUCT,
    C_COLUMNS,
    C_STATUS,
    C_OUTCOME,
    C_POLICY_VERSION,
    C_DETAILS,
};

static const char ddl[] =
    "CREATE TABLE x(seq INTEGER, time TIMESTAMP, action TEXT, principal TEXT, "
    "principal_id INTEGER, auth TEXT, token_id TEXT, source TEXT, request_id TEXT, "
    "domain TEXT, product TEXT, columns TEXT, status INTEGER, outcome TEXT, "
    "policy_version INTEGER, details JSON)";

typedef struct avtab {
    sqlite3_vtab base;
    qsession_t *s;
} avtab_t;

typedef struct acursor {
    sqlite3_vtab_cursor base;
    mesh_audit_scan_t *scan;
    mesh_audit_entry_t e;
    char *action, *principal; /* the pushed-down values, owned */
    int eof;
} acursor_t;

static int av_connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out,
                      char **errmsg)
{
    (void)argc;
    (void)argv;
    (void)errmsg;
    int rc = sqlite3_declare_vtab(db, ddl);
    if (rc != SQLITE_OK)
        return rc;
    avtab_t *t = sqlite3_malloc(sizeof *t);
    if (t == NULL)
        return SQLITE_NOMEM;
    memset(t, 0, sizeof *t);
    t->s = aux;
    sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
    *out = &t->base;
    return SQLITE_OK;
}

static int av_disconnect(sqlite3_vtab *vt)
{
    sqlite3_free(vt);
    return SQLITE_OK;
}

/* idxStr: two characters per argument: the column (q seq, t time, a action, p principal)
 * and the operator (e =, g >, G >=, l <, L <=). */
static int av_best_index(sqlite3_vtab *vt, sqlite3_index_info *info)
{
    (void)vt;
    char plan[64];
    int n = 0, argi = 0;
    for (int i = 0; i < info->nConstraint && n + 2 < (int)sizeof plan; i++) {
        const struct sqlite3_index_constraint *c = &info->aConstraint[i];
        if (!c->usable)
            continue;
        char col = c->iColumn == C_SEQ         ? 'q'
                   : c->iColumn == C_TIME      ? 't'
                   : c->iColumn == C_ACTION    ? 'a'
                   : c->iColumn == C_PRINCIPAL ? 'p'
                                               : 0;
        char op = c->op == SQLITE_INDEX_CONSTRAINT_EQ   ? 'e'
                  : c->op == SQLITE_INDEX_CONSTRAINT_GT ? 'g'
                  : c->op == SQLITE_INDEX_CONSTRAINT_GE ? 'G'
                  : c->op == SQLITE_INDEX_CONSTRAINT_LT ? 'l'
                  : c->op == SQLITE_INDEX_CONSTRAINT_LE ? 'L'
                                                        : 0;
        if (col == 0 || op == 0 || ((col == 'a' || col == 'p') && op != 'e'))
            continue;
        plan[n++] = col;
        plan[n++] = op;
        info->aConstraintUsage[i].argvIndex = ++argi;
        info->aConstraintUsage[i].omit = 0;
    }
    plan[n] = '\0';
    info->idxStr = sqlite3_mprintf("%s", plan);
    info->needToFreeIdxStr = 1;
    info->estimatedCost = 1e6 / (1 + argi * 10);
    info->estimatedRows = 100000 / (1 + argi * 10);
    if (info->nOrderBy == 1 && info->aOrderBy[0].iColumn == C_SEQ && !info->aOrderBy[0].desc)
        info->orderByConsumed = 1; /* events come in seq order */
    return SQLITE_OK;
}

static int av_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out)
{
    (void)vt;
    acursor_t *c = sqlite3_malloc(sizeof *c);
    if (c == NULL)
        return SQLITE_NOMEM;
    memset(c, 0, sizeof *c);
    *out = &c->base;
    return SQLITE_OK;
}

static void reset(acursor_t *c)
{
    mesh_audit_scan_close(c->scan);
    c->scan = NULL;
    free(c->action);
    free(c->principal);
    c->action = c->principal = NULL;
}

static int av_close(sqlite3_vtab_cursor *cur)
{
    acursor_t *c = (acursor_t *)cur;
    reset(c);
    sqlite3_free(c);
    return SQLITE_OK;
}

static int av_next(sqlite3_vtab_cursor *cur)
{
    acursor_t *c = (acursor_t *)cur;
    avtab_t *t = (avtab_t *)cur->pVtab;
    c->eof = mesh_audit_scan_next(c->scan, &c->e) != 1;
    if (!c->eof)
        t->s->rows_scanned++;
    return SQLITE_OK;
}

static void narrow_after(uint64_t *after, uint64_t v)
{
    if (v > *after)
        *after = v;
}

static void narrow_before(uint64_t *before, uint64_t v)
{
    if (*before == 0 || v < *before)
        *before = v;
}

static int av_filter(sqlite3_vtab_cursor *cur, int idx, const char *plan, int argc,
                     sqlite3_value **argv)
{
    (void)idx;
    acursor_t *c = (acursor_t *)cur;
    avtab_t *t = (avtab_t *)cur->pVtab;
    qsession_t *s = t->s;
    reset(c);
    if (!s->audit_ok || s->audit == NULL) {
        sqlite3_free(t->base.zErrMsg);
        t->base.zErrMsg = sqlite3_mprintf("system.audit: the admin or auditor role is needed");
        return SQLITE_AUTH;
    }
    mesh__session_note_product(s, "system", "audit");
    mesh_audit_filter_t f;
    memset(&f, 0, sizeof f);
    uint64_t before = 0;
    int64_t until = 0;
    bool empty = false;
    for (int i = 0; plan && plan[2 * i] && i < argc; i++) {
        char col = plan[2 * i], op = plan[2 * i + 1];
        sqlite3_value *v = argv[i];
        if (col == 'a' || col == 'p') {
            if (sqlite3_value_type(v) != SQLITE_TEXT)
                continue;
            char **slot = col == 'a' ? &c->action : &c->principal;
            if (*slot == NULL)
                *slot = mesh_strdup((const char *)sqlite3_value_text(v));
            continue;
        }
        if (sqlite3_value_type(v) != SQLITE_INTEGER)
            continue; /* SQLite compares other types itself */
        int64_t x = sqlite3_value_int64(v);
        if (col == 'q') {
            uint64_t u = x < 0 ? 0 : (uint64_t)x;
            if (op == 'e' || op == 'G' || op == 'L') {
                if (op != 'L')
                    narrow_after(&f.after_seq, u ? u - 1 : 0);
                if (op != 'G')
                    narrow_before(&before, u + 1);
            } else if (op == 'g') {
                narrow_after(&f.after_seq, u);
            } else {
                if (u == 0)
                    empty = true;
                narrow_before(&before, u);
            }
        } else {
            if (op == 'e' || op == 'G')
                f.since_ns = x > f.since_ns ? x : f.since_ns;
            if (op == 'g' && x < INT64_MAX)
                f.since_ns = x + 1 > f.since_ns ? x + 1 : f.since_ns;
            if ((op == 'e' || op == 'L') && x < INT64_MAX && (until == 0 || x + 1 < until))
                until = x + 1;
            if (op == 'l' && (until == 0 || x < until))
                until = x;
        }
    }
    f.before_seq = before;
    f.until_ns = until;
    f.action = c->action;
    f.principal = c->principal;
    mesh_err_t err;
    mesh_err_clear(&err);
    if (mesh_audit_scan_open(s->audit, NULL, NULL, &f, &c->scan, &err) != MESH_OK) {
        sqlite3_free(t->base.zErrMsg);
        t->base.zErrMsg = sqlite3_mprintf("system.audit: %s", err.msg);
        return SQLITE_ERROR;
    }
    if (empty) {
        c->eof = 1;
        return SQLITE_OK;
    }
    return av_next(cur);
}

static int av_eof(sqlite3_vtab_cursor *cur)
{
    return ((acursor_t *)cur)->eof;
}

static void text(sqlite3_context *ctx, const char *s)
{
    if (s)
        sqlite3_result_text(ctx, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_result_null(ctx);
}

static int av_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int i)
{
    const mesh_audit_entry_t *e = &((acursor_t *)cur)->e;
    switch (i) {
    case C_SEQ:
        sqlite3_result_int64(ctx, (sqlite3_int64)e->seq);
        break;
    case C_TIME:
        sqlite3_result_int64(ctx, e->time_ns);
        break;
    case C_ACTION:
        text(ctx, e->action);
        break;
    case C_PRINCIPAL:
        text(ctx, e->principal);
        break;
    case C_PRINCIPAL_ID:
        if (e->principal_id)
            sqlite3_result_int64(ctx, e->principal_id);
        else
            sqlite3_result_null(ctx);
        break;
    case C_AUTH:
        text(ctx, e->auth);
        break;
    case C_TOKEN_ID:
        text(ctx, e->token_id);
        break;
    case C_SOURCE:
        text(ctx, e->source);
        break;
    case C_REQUEST_ID:
        text(ctx, e->request_id);
        break;
    case C_DOMAIN:
        text(ctx, e->domain);
        break;
    case C_PRODUCT:
        text(ctx, e->product);
        break;
    case C_COLUMNS:
        text(ctx, e->columns);
        break;
    case C_STATUS:
        if (e->status)
            sqlite3_result_int64(ctx, e->status);
        else
            sqlite3_result_null(ctx);
        break;
    case C_OUTCOME:
        text(ctx, e->outcome);
        break;
    case C_POLICY_VERSION:
        sqlite3_result_int64(ctx, e->policy_version);
        break;
    default:
        text(ctx, e->details);
    }
    return SQLITE_OK;
}

static int av_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *out)
{
    *out = (sqlite3_int64)((acursor_t *)cur)->e.seq;
    return SQLITE_OK;
}

static const sqlite3_module audit_module = {
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

int mesh__vtab_audit_register(sqlite3 *db, qsession_t *s)
{
    return sqlite3_create_module(db, "mesh_audit", &audit_module, s);
}
