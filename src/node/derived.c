/*
 * derived.c - derived products defined by SQL on a node: checked when their contract is
 * applied, materialised and refreshed as their definer, reached by erasures
 * (docs/derived.md, decision 0031).
 *
 * Whose privileges: the definer's. The contract names it (derivation.definer) and only that
 * principal may apply it: meshd prepares the query as the applying principal and refuses a
 * contract whose definer is someone else. Every refresh looks the definer up again (a
 * deleted or disabled principal stops it) and runs the query through the sandbox as them,
 * with the current policy: their grants, masks and row filters of now, not of the
 * definition. A refresh that cannot run (definer revoked, an input dropped, a column
 * changed) changes nothing, is logged and audited (derive.refresh with the error), and its
 * error shows in GET /v1/lineage (refresh.error) until a refresh succeeds.
 *
 * Materialisation: the query's rows become one 'F' record in the product's domain log
 * (store/domain.h mesh_domain_refresh), which replaces every row in one transaction: a
 * crash leaves the old content or the new, never a mix. A query that maps each row of one
 * time series on its own, or groups it by time_bucket of its time, is refreshed incrementally
 * (the rows or buckets at or after the smallest time written to its input since the last
 * refresh, which the domain writer keeps for it); any other shape is recomputed in full.
 *
 * Scheduling: mesh__node_derived_tick (once a second, on the main loop) refreshes each
 * product whose refresh interval (derivation.refresh, default 1m) has passed since its last
 * attempt; a contract applied and an erasure upstream refresh at once.
 */
#define _GNU_SOURCE /* strcasestr */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/security.h"
#include "core/log.h"
#include "core/util.h"
#include "derive/derive.h"
#include "node/derived.h"
#include "store/domain.h"
#include "store/store.h"

#define DERIVED_MAX        256                      /* products tracked per node */
#define REFRESH_DEFAULT_NS (60LL * MESH_NS_PER_SEC) /* derivation.refresh not given */
#define REFRESH_MAX_ROWS   1000000                  /* rows a refresh may write */
#define ERASE_CHAIN_MAX    16                       /* derived products of derived products */
#define FULL_EVERY         100 /* an incremental product is recomputed in full this often */

typedef struct dstate {
    char id[130]; /* domain.product */
    int64_t last_ns, next_ns;
    int64_t rows; /* rows the last successful refresh wrote */
    uint64_t seq;
    char error[512];  /* "" after a success */
    const char *mode; /* of the last successful refresh: "full", "incremental", "unchanged" */
    uint64_t sqlhash; /* of the definition the last full refresh ran */
    bool inc_ready;   /* a full refresh succeeded while its input was watched */
    int since_full;   /* incremental refreshes since */
    int64_t full_runs, incremental_runs; /* successful refreshes of each kind */
    int64_t policy_ver;                  /* the policy version of the last full refresh */
} dstate_t;

struct mesh_derived {
    pthread_mutex_t lock;
    dstate_t v[DERIVED_MAX];
    size_t n;
    pthread_mutex_t run_lock; /* one refresh at a time */
};

static mesh_derived_t *state_of(mesh_node_t *n)
{
    static pthread_mutex_t init = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&init);
    if (n->derived == NULL && (n->derived = calloc(1, sizeof *n->derived)) != NULL) {
        pthread_mutex_init(&n->derived->lock, NULL);
        pthread_mutex_init(&n->derived->run_lock, NULL);
    }
    pthread_mutex_unlock(&init);
    return n->derived;
}

void mesh__node_derived_free(mesh_node_t *n)
{
    if (n->derived == NULL)
        return;
    pthread_mutex_destroy(&n->derived->lock);
    pthread_mutex_destroy(&n->derived->run_lock);
    free(n->derived);
    n->derived = NULL;
}

/* The state of id (created; NULL when the table is full). Under ds->lock. */
static dstate_t *find(mesh_derived_t *ds, const char *id)
{
    for (size_t i = 0; i < ds->n; i++)
        if (strcmp(ds->v[i].id, id) == 0)
            return &ds->v[i];
    if (ds->n >= DERIVED_MAX)
        return NULL;
    dstate_t *s = &ds->v[ds->n++];
    memset(s, 0, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", id);
    return s;
}

/* The definer as an identity: MESH_FORBIDDEN when it no longer exists or is disabled. */
static mesh_status_t definer_identity(mesh_node_t *n, const mesh_product_t *p, mesh_identity_t *who,
                                      mesh_err_t *err)
{
    const char *name = p->derive->definer;
    if (name == NULL)
        return mesh_err_set(err, MESH_FORBIDDEN, "%s.%s names no definer (derivation.definer)",
                            p->domain, p->name);
    mesh_principal_info_t info;
    if (mesh_catalog_principal_find(n->cat, name, &info) != MESH_OK || info.disabled)
        return mesh_err_set(err, MESH_FORBIDDEN,
                            "the definer of %s.%s, %s, %s: its refreshes are stopped until the "
                            "contract names another definer",
                            p->domain, p->name, name,
                            info.disabled ? "is disabled" : "no longer exists");
    memset(who, 0, sizeof *who);
    who->principal_id = info.id;
    snprintf(who->name, sizeof who->name, "%s", info.name);
    snprintf(who->roles, sizeof who->roles, "%s", info.roles);
    return MESH_OK;
}

/* The lineage of p's SQL as who (its definer, or the one defining it). */
static mesh_status_t sql_lineage(mesh_node_t *n, mesh_snapshot_t *snap, mesh_policy_t *policy,
                                 const mesh_identity_t *who, const mesh_product_t *p,
                                 mesh_lineage_t *l, mesh_err_t *err)
{
    const char *sql = p->derive->sql;
    return mesh_query_lineage(n->qpool, snap, policy, who, sql, strlen(sql), n->opts.query_timeout,
                              0, l, err);
}

static const mesh_column_t *col_lookup(void *arg, const mesh_lineage_in_t *in)
{
    const mesh_snapshot_t *s = arg;
    const mesh_product_t *p = mesh_snapshot_product(s, in->domain, in->product);
    int c = p ? mesh_product_col(p, in->column, strlen(in->column)) : -1;
    return c < 0 ? NULL : &p->cols[c];
}

/* Each column of p must declare at least the classification and the tags it inherits from its
 * inputs (derived.md "Classification along lineage"): a tag mask then reaches it. */
static mesh_status_t check_inherited(const mesh_snapshot_t *snap, const mesh_product_t *p,
                                     const mesh_lineage_t *l, mesh_err_t *err)
{
    mesh_status_t st = MESH_OK;
    for (size_t i = 0; i < l->ncols && st == MESH_OK; i++) {
        char cls[64];
        char **tags = NULL;
        size_t ntags = 0;
        int pc = mesh_product_col(p, l->cols[i].name, strlen(l->cols[i].name));
        if (pc < 0)
            continue;
        const mesh_column_t *c = &p->cols[pc];
        st = mesh_derive_propagate(&l->cols[i], col_lookup, (void *)snap, cls, sizeof cls, &tags,
                                   &ntags);
        if (st != MESH_OK)
            st = mesh_err_set(err, st, "out of memory");
        if (st == MESH_OK && cls[0] &&
            mesh_derive_class_rank(c->classification) < mesh_derive_class_rank(cls))
            st = mesh_err_set(err, MESH_INVALID,
                              "derived product %s.%s: column %s inherits classification %s from "
                              "its inputs; declare it (meshctl product derive --dry-run writes "
                              "it)",
                              p->domain, p->name, c->name, cls);
        for (size_t k = 0; k < ntags && st == MESH_OK; k++) {
            bool have = false;
            for (size_t t = 0; t < c->n_tags && !have; t++)
                have = strcmp(c->tags[t], tags[k]) == 0;
            if (!have)
                st = mesh_err_set(err, MESH_INVALID,
                                  "derived product %s.%s: column %s inherits tag %s from its "
                                  "inputs; declare it (meshctl product derive --dry-run writes "
                                  "it)",
                                  p->domain, p->name, c->name, tags[k]);
        }
        for (size_t k = 0; k < ntags; k++)
            free(tags[k]);
        free(tags);
    }
    return st;
}

/* Whether a derivation reading the tables of l would close a cycle through target ("d.p"):
 * some input, or an input of an input (SQL-derived products by their lineage, aggregates by
 * their source), is target. Bounded by DERIVED_MAX products visited. *via: the input whose
 * upstream holds target. */
static bool closes_cycle(mesh_node_t *n, mesh_snapshot_t *snap, const mesh_lineage_t *l,
                         const char *target, char via[130])
{
    char(*ids)[130] = calloc(DERIVED_MAX, sizeof *ids);
    char(*from)[130] = calloc(DERIVED_MAX, sizeof *from);
    if (ids == NULL || from == NULL) {
        free(ids);
        free(from);
        return false;
    }
    size_t nids = 0;
    for (size_t k = 0; k < l->ntables && nids < DERIVED_MAX; k++) {
        snprintf(ids[nids], sizeof ids[0], "%s.%s", l->tables[k].domain, l->tables[k].product);
        snprintf(from[nids++], sizeof from[0], "%s.%s", l->tables[k].domain, l->tables[k].product);
    }
    bool hit = false;
    for (size_t i = 0; i < nids && !hit; i++) {
        char dom[130];
        snprintf(dom, sizeof dom, "%s", ids[i]);
        char *dot = strchr(dom, '.');
        if (dot == NULL)
            continue;
        *dot = '\0';
        const mesh_product_t *q = mesh_snapshot_product(snap, dom, dot + 1);
        if (q == NULL || q->derive == NULL)
            continue;
        mesh_lineage_t ql;
        memset(&ql, 0, sizeof ql);
        size_t nin = 0;
        char in[1][130];
        if (q->derive->kind == MESH_DERIVE_AGGREGATE && q->derive->source) {
            snprintf(in[nin++], sizeof in[0], "%s.%s", dom, q->derive->source);
        } else if (q->derive->kind == MESH_DERIVE_SQL) {
            mesh_err_t e;
            if (mesh__node_derived_lineage(n, snap, q, &ql, &e) != MESH_OK)
                continue;
        }
        for (size_t t = 0; t < nin + ql.ntables && !hit; t++) {
            char id[130];
            if (t < nin)
                snprintf(id, sizeof id, "%s", in[t]);
            else
                snprintf(id, sizeof id, "%s.%s", ql.tables[t - nin].domain,
                         ql.tables[t - nin].product);
            if (strcmp(id, target) == 0) {
                hit = true;
                snprintf(via, 130, "%s", from[i]);
                break;
            }
            bool seen = false;
            for (size_t x = 0; x < nids && !seen; x++)
                seen = strcmp(ids[x], id) == 0;
            if (!seen && nids < DERIVED_MAX) {
                snprintf(ids[nids], sizeof ids[0], "%s", id);
                memcpy(from[nids++], from[i], sizeof from[0]); /* nids > i: no overlap */
            }
        }
        mesh_lineage_free(&ql);
    }
    free(ids);
    free(from);
    return hit;
}

mesh_status_t mesh__node_derived_check(mesh_node_t *n, mesh_snapshot_t *snap, mesh_policy_t *policy,
                                       const mesh_identity_t *who, const mesh_contract_t *c,
                                       mesh_err_t *err)
{
    for (size_t i = 0; i < c->nproducts; i++) {
        const mesh_product_t *p = &c->products[i];
        if (p->derive == NULL || p->derive->kind != MESH_DERIVE_SQL)
            continue;
        if (p->derive->definer == NULL || strcmp(p->derive->definer, who->name) != 0)
            return mesh_err_set(err, MESH_FORBIDDEN,
                                "derived product %s.%s: derivation.definer must name you (%s): "
                                "its refreshes run with the definer's grants, and only the "
                                "definer may apply them",
                                c->domain, p->name, who->name);
        mesh_lineage_t l;
        mesh_status_t st = sql_lineage(n, snap, policy, who, p, &l, err);
        if (st != MESH_OK) {
            char why[sizeof err->msg];
            snprintf(why, sizeof why, "%s", err->msg);
            return mesh_err_set(err, st, "derived product %s.%s: its sql: %s", c->domain, p->name,
                                why);
        }
        for (size_t k = 0; k < l.ntables && st == MESH_OK; k++)
            if (strcmp(l.tables[k].domain, c->domain) == 0 &&
                strcmp(l.tables[k].product, p->name) == 0)
                st = mesh_err_set(err, MESH_INVALID, "derived product %s.%s reads itself",
                                  c->domain, p->name);
        char target[130], via[130];
        snprintf(target, sizeof target, "%s.%s", c->domain, p->name);
        if (st == MESH_OK && closes_cycle(n, snap, &l, target, via))
            st = mesh_err_set(err, MESH_INVALID,
                              "derived product %s.%s would read itself through %s, which is "
                              "derived from it: a cycle",
                              c->domain, p->name, via);
        if (st == MESH_OK)
            st = mesh_derive_check_columns(p, &l, err);
        if (st == MESH_OK)
            st = check_inherited(snap, p, &l, err);
        mesh_lineage_free(&l);
        if (st != MESH_OK)
            return st;
    }
    return MESH_OK;
}

/* An input of a SQL-derived product, by name in the refresh's snapshot (arg). */
static const mesh_product_t *sql_input(void *arg, const char *domain, const char *product)
{
    return mesh_snapshot_product(arg, domain, product);
}

/* One refresh that ran (not one that found nothing written): audited as its definer, and an
 * OpenLineage run (a START and a COMPLETE or FAIL event, node/lineage.c) when sinks are set. */
static void refresh_ran(mesh_node_t *n, mesh_snapshot_t *snap, const mesh_product_t *p,
                        const mesh_lineage_t *l, const char *mode, mesh_status_t st,
                        const char *msg, int64_t rows, uint64_t seq, int64_t started_ns,
                        int64_t ended_ns)
{
    mesh_node_lineage_run(n, p->domain, p, l, sql_input, snap, started_ns, ended_ns, st, msg);
    mesh_buf_t det;
    mesh_buf_init(&det, 8192);
    mesh_buf_printf(&det, "{\"definer\":");
    const char *def = p->derive->definer ? p->derive->definer : "";
    mesh_buf_add_json_str(&det, def, strlen(def));
    mesh_buf_printf(&det, ",\"mode\":\"%s\",\"ms\":%" PRId64, mode,
                    (ended_ns - started_ns) / 1000000);
    if (st == MESH_OK) {
        mesh_buf_printf(&det, ",\"rows\":%" PRId64 ",\"seq\":%" PRIu64 "}", rows, seq);
    } else {
        mesh_buf_adds(&det, ",\"error\":");
        mesh_buf_add_json_str(&det, msg, strlen(msg));
        mesh_buf_addc(&det, '}');
    }
    mesh_audit_rec_t rec = {.action = MESH_AUDIT_DERIVE_REFRESH,
                            .principal = def[0] ? def : "meshd",
                            .domain = p->domain,
                            .product = p->name,
                            .status = mesh_status_http(st),
                            .details = det.data};
    if (n->audit)
        mesh_audit_record(n->audit, &rec);
    mesh_buf_free(&det);
}

/* Runs p's query as who and collects its rows into b (columns matched by name). */
static mesh_status_t run_query(mesh_node_t *n, mesh_snapshot_t *snap, mesh_policy_t *policy,
                               const mesh_identity_t *who, const mesh_product_t *p, const char *sql,
                               mesh_batch_t *b, mesh_err_t *err)
{
    mesh_query_limits_t lim = {.timeout_ns = n->opts.query_timeout,
                               .max_rows = REFRESH_MAX_ROWS + 1};
    mesh_query_t *q = NULL;
    mesh_status_t st =
        mesh_query_start(n->qpool, snap, policy, who, sql, strlen(sql), &lim, &q, err);
    if (st != MESH_OK)
        return st;
    int ncols = mesh_query_ncols(q);
    int map[4 * MESH_DERIVE_MAX_COLS];
    if (ncols > (int)MESH_ARRAY_LEN(map))
        st = mesh_err_set(err, MESH_INVALID, "too many columns");
    for (int i = 0; st == MESH_OK && i < ncols; i++) {
        const char *name = mesh_query_colname(q, i);
        if ((map[i] = mesh_product_col(p, name, strlen(name))) < 0)
            st = mesh_err_set(err, MESH_INVALID, "the query gives column %s, which %s.%s lacks",
                              name, p->domain, p->name);
    }
    int rc = 0;
    uint32_t row = 0;
    while (st == MESH_OK && (rc = mesh_query_step(q, err)) == 1) {
        if ((st = mesh_batch_row_begin(b, p, ++row)) != MESH_OK) {
            st =
                mesh_err_set(err, MESH_LIMIT, "a refresh writes at most %d rows", REFRESH_MAX_ROWS);
            break;
        }
        for (int i = 0; i < ncols; i++) {
            mesh_datum_t v;
            mesh_query_value(q, i, &v);
            switch (v.type) {
            case MESH_V_INT:
                if (p->cols[map[i]].type == MESH_LT_BOOLEAN)
                    mesh_batch_set_bool(b, map[i], v.i != 0);
                else
                    mesh_batch_set_int(b, map[i], v.i);
                break;
            case MESH_V_REAL:
                mesh_batch_set_real(b, map[i], v.d);
                break;
            case MESH_V_TEXT:
                if (p->cols[map[i]].type == MESH_LT_OBJECT || p->cols[map[i]].type == MESH_LT_ARRAY)
                    mesh_batch_set_json(b, map[i], v.s ? v.s : "", v.n);
                else
                    mesh_batch_set_text(b, map[i], v.s ? v.s : "", v.n);
                break;
            default:
                mesh_batch_set_null(b, map[i]);
            }
        }
        mesh_batch_row_end(b, NULL, 0);
        if (mesh_batch_failed(b)) {
            mesh_buf_t e;
            mesh_buf_init(&e, 4096);
            mesh_batch_errors_json(b, &e);
            st = mesh_err_set(err, MESH_INVALID, "row %u does not fit the contract: %.300s", row,
                              e.data ? e.data : "");
            mesh_buf_free(&e);
        }
    }
    if (st == MESH_OK && rc < 0)
        st = err->code != MESH_OK ? err->code : MESH_INTERNAL;
    mesh_query_finish(q);
    return st;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 14695981039346656037ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* How p can be refreshed incrementally (docs/derived.md "Incremental refresh"). */
typedef struct inc {
    const mesh_product_t *src; /* its one input, a source time series */
    char tcol[64];             /* the output column of the time (or of its bucket) */
    int64_t width;             /* the bucket width; 0: rows mapped one by one */
    size_t where_kw, group_kw; /* buckets: where the query's WHERE and GROUP BY start */
} inc_t;

/* Whether p's query maps each row of one time series on its own and passes the time column
 * through, or groups it by time_bucket of the time column. */
static bool incremental_shape(const mesh_snapshot_t *snap, const mesh_product_t *p,
                              const mesh_lineage_t *l, inc_t *inc)
{
    memset(inc, 0, sizeof *inc);
    if (l->ntables != 1)
        return false;
    const mesh_product_t *s =
        mesh_snapshot_product(snap, l->tables[0].domain, l->tables[0].product);
    /* a source product: its rows come in batches, which the writer reports to watchers
     * (derived products are rewritten by refreshes and aggregates, which it does not) */
    if (s == NULL || s->time_col < 0 || s->derive != NULL)
        return false;
    const char *sql = p->derive->sql, *tname = s->cols[s->time_col].name;
    mesh_sql_shape_t *sh = malloc(sizeof *sh);
    if (sh == NULL || mesh_sql_select_shape(sql, strlen(sql), sh) != MESH_OK) {
        free(sh);
        return false;
    }
    bool ok = false;
    if (sh->row_mapping) {
        for (size_t i = 0; !ok && i < l->ncols; i++) {
            const mesh_lineage_col_t *c = &l->cols[i];
            if (c->xf == MESH_XF_IDENTITY && c->nin == 1 && strcmp(c->in[0].column, tname) == 0) {
                snprintf(inc->tcol, sizeof inc->tcol, "%s", c->name);
                ok = true;
            }
        }
    } else if (sh->bucket_item >= 0 && sh->nitems == l->ncols) {
        const mesh_lineage_col_t *c = &l->cols[sh->bucket_item];
        int64_t w = 0;
        if (l->column_level && c->nin == 1 && strcmp(c->in[0].column, tname) == 0 &&
            mesh_duration_parse(sh->bucket_width, &w) == MESH_OK && w > 0) {
            snprintf(inc->tcol, sizeof inc->tcol, "%s", c->name);
            inc->width = w;
            inc->where_kw = sh->where_kw;
            inc->group_kw = sh->group_kw;
            ok = true;
        }
    }
    free(sh);
    if (ok)
        inc->src = s;
    return ok;
}

/* The query of an incremental refresh from since into q: rows mapped one by one are filtered
 * after the query (SQLite pushes the term down to the scan); buckets are filtered before
 * grouping, from the start of since's bucket (*since moves there). */
static void incremental_query(const mesh_product_t *p, const inc_t *inc, int64_t *since,
                              mesh_buf_t *q)
{
    const char *sql = p->derive->sql;
    if (inc->width == 0) {
        mesh_buf_printf(q, "SELECT * FROM (\n%s\n) WHERE \"%s\" >= %lld", sql, inc->tcol,
                        (long long)*since);
        return;
    }
    if (*since == INT64_MIN) {
        mesh_buf_adds(q, sql);
        return;
    }
    *since = mesh_store_cagg_bucket(*since, inc->width);
    const char *tname = inc->src->cols[inc->src->time_col].name;
    if (inc->where_kw == SIZE_MAX) {
        mesh_buf_add(q, sql, inc->group_kw);
        mesh_buf_printf(q, " WHERE \"%s\" >= %lld\n", tname, (long long)*since);
    } else {
        mesh_buf_add(q, sql, inc->where_kw);
        mesh_buf_printf(q, "WHERE \"%s\" >= %lld AND (", tname, (long long)*since);
        mesh_buf_add(q, sql + inc->where_kw + 5, inc->group_kw - inc->where_kw - 5);
        mesh_buf_adds(q, "\n) ");
    }
    mesh_buf_adds(q, sql + inc->group_kw);
}

mesh_status_t mesh__node_derived_refresh(mesh_node_t *n, const char *domain, const char *product,
                                         bool full, int64_t *rows_out, mesh_err_t *err)
{
    mesh_derived_t *ds = state_of(n);
    if (ds == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    int64_t started = mesh_now_ns();
    if (rows_out)
        *rows_out = 0;
    pthread_mutex_lock(&ds->run_lock);
    mesh_snapshot_t *snap = mesh_registry_snapshot(n->reg);
    mesh_policy_t *policy = mesh_auth_policy(n->auth);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(snap, domain);
    const mesh_product_t *p = sd ? mesh_snapshot_product(snap, domain, product) : NULL;
    mesh_status_t st = MESH_OK;
    mesh_lineage_t l;
    memset(&l, 0, sizeof l);
    int64_t rows = 0;
    uint64_t seq = 0;
    mesh_identity_t who;
    bool incremental = false, watching_ok = false;
    const char *mode = "full";
    uint64_t hash = 0;
    if (p == NULL || p->derive == NULL || p->derive->kind != MESH_DERIVE_SQL) {
        st = mesh_err_set(err, MESH_NOT_FOUND, "no product %s.%s derived by SQL", domain, product);
        goto out;
    }
    if ((st = definer_identity(n, p, &who, err)) != MESH_OK)
        goto done;
    /* the definer's grants now (a revoked grant hides the product: "no such table"), the
     * columns the query gives now against the contract */
    if ((st = sql_lineage(n, snap, policy, &who, p, &l, err)) == MESH_OK)
        st = mesh_derive_check_columns(p, &l, err);
    if (st != MESH_OK) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        st = mesh_err_set(err, st,
                          "%s.%s cannot be refreshed as its definer %s (a grant revoked, an input "
                          "changed?): %s",
                          domain, product, p->derive->definer, why);
        goto done;
    }
    /* incremental: the rows at or after the smallest time written to the input since the
     * last refresh (its watch is set before a full refresh reads, so nothing is missed) */
    inc_t inc;
    char watcher[140];
    snprintf(watcher, sizeof watcher, "%s.%s", domain, product);
    const mesh_snap_domain_t *srcd = NULL;
    bool watching = false;
    if (incremental_shape(snap, p, &l, &inc) &&
        (srcd = mesh_snapshot_domain(snap, inc.src->domain)) != NULL)
        watching = mesh_domain_watch(srcd->dom, inc.src->name, watcher);
    const mesh_product_t *src = watching ? inc.src : NULL;
    /* the definition and its input's contract: a change of either makes the next one full */
    hash = fnv1a(p->derive->sql) ^ (src && src->contract ? 31 * fnv1a(src->contract->version) : 0);
    bool ready = false;
    pthread_mutex_lock(&ds->lock);
    dstate_t *sp = find(ds, watcher);
    ready = sp && sp->inc_ready && sp->sqlhash == hash && sp->since_full < FULL_EVERY &&
            sp->policy_ver == mesh_policy_version(policy);
    pthread_mutex_unlock(&ds->lock);
    watching_ok = watching;
    int64_t since = INT64_MIN;
    bool any = watching && mesh_domain_written(srcd->dom, src->name, watcher, &since);
    incremental = watching && ready && !full;
    if (incremental && !any) {
        mode = "unchanged";
        goto done;
    }
    mesh_buf_t q;
    mesh_buf_init(&q, MESH_QUERY_MAX_SQL);
    if (incremental)
        incremental_query(p, &inc, &since, &q);
    else
        mesh_buf_adds(&q, p->derive->sql);
    mesh_batch_t b;
    mesh_batch_limits_t lim = MESH_BATCH_DEFAULT_LIMITS;
    lim.max_rows = REFRESH_MAX_ROWS;
    lim.max_arena = 256u << 20;
    mesh_batch_init(&b, domain, lim);
    b.no_quarantine = true;
    b.precision = MESH_PREC_NS; /* the query's timestamps are ns, whatever their magnitude */
    st = q.data ? run_query(n, snap, policy, &who, p, q.data, &b, err)
                : mesh_err_set(err, MESH_TOO_LARGE, "the query is too long");
    if (st == MESH_OK)
        st = mesh_domain_refresh(sd->dom, product, incremental ? inc.tcol : NULL, since, &b, &rows,
                                 &seq, err);
    mesh_batch_free(&b);
    mesh_buf_free(&q);
    mode = incremental ? "incremental" : "full";
done:
    if (p) {
        int64_t ended = mesh_now_ns();
        if (st != MESH_OK || strcmp(mode, "unchanged") != 0) /* nothing ran: nothing to say */
            refresh_ran(n, snap, p, &l, mode, st, err ? err->msg : "", rows, seq, started, ended);
        char id[130];
        snprintf(id, sizeof id, "%s.%s", domain, product);
        pthread_mutex_lock(&ds->lock);
        dstate_t *s = find(ds, id);
        if (s) {
            bool was_ok = s->error[0] == '\0';
            s->last_ns = ended;
            int64_t every = p->derive->refresh_ns ? p->derive->refresh_ns : REFRESH_DEFAULT_NS;
            s->next_ns = ended + every;
            if (st == MESH_OK) {
                if (strcmp(mode, "unchanged") != 0) {
                    s->rows = rows;
                    s->seq = seq;
                }
                s->mode = mode;
                s->error[0] = '\0';
                if (strcmp(mode, "full") == 0)
                    s->full_runs++;
                else if (strcmp(mode, "incremental") == 0)
                    s->incremental_runs++;
                if (strcmp(mode, "full") == 0) {
                    s->inc_ready = watching_ok;
                    s->sqlhash = hash;
                    s->since_full = 0;
                    s->policy_ver = mesh_policy_version(policy);
                } else {
                    s->since_full++;
                }
            } else {
                s->inc_ready = false; /* the marks taken are lost: the next one is full */
                snprintf(s->error, sizeof s->error, "%s", err->msg);
                if (was_ok)
                    LOG_WARN("derived", "%s", err->msg);
            }
        }
        pthread_mutex_unlock(&ds->lock);
        if (st == MESH_OK)
            LOG_DEBUG("derived", "%s.%s refreshed: %" PRId64 " rows", domain, product, rows);
    }
out:
    mesh_lineage_free(&l);
    mesh_policy_put(policy);
    mesh_snapshot_put(snap);
    pthread_mutex_unlock(&ds->run_lock);
    if (rows_out)
        *rows_out = rows;
    return st;
}

void mesh__node_derived_tick(mesh_node_t *n)
{
    mesh_derived_t *ds = state_of(n);
    if (ds == NULL)
        return;
    mesh_snapshot_t *snap = mesh_registry_snapshot(n->reg);
    int64_t now = mesh_now_ns();
    for (size_t i = 0; i < snap->ndoms; i++) {
        const mesh_snap_domain_t *sd = &snap->doms[i];
        for (size_t k = 0; k < sd->ncrefs; k++) {
            const mesh_contract_t *c = sd->crefs[k]->c;
            for (size_t j = 0; j < c->nproducts; j++) {
                const mesh_product_t *p = &c->products[j];
                if (p->derive == NULL || p->derive->kind != MESH_DERIVE_SQL)
                    continue;
                char id[130];
                snprintf(id, sizeof id, "%s.%s", p->domain, p->name);
                pthread_mutex_lock(&ds->lock);
                dstate_t *s = find(ds, id);
                bool due = s && now >= s->next_ns;
                pthread_mutex_unlock(&ds->lock);
                if (!due)
                    continue;
                mesh_err_t err;
                mesh_err_clear(&err);
                mesh__node_derived_refresh(n, p->domain, p->name, false, NULL, &err);
            }
        }
    }
    mesh_snapshot_put(snap);
}

bool mesh__node_derived_status(mesh_node_t *n, const char *domain, const char *product,
                               mesh_derived_status_t *out)
{
    memset(out, 0, sizeof *out);
    mesh_derived_t *ds = state_of(n);
    if (ds == NULL)
        return false;
    char id[130];
    snprintf(id, sizeof id, "%s.%s", domain, product);
    bool found = false;
    pthread_mutex_lock(&ds->lock);
    for (size_t i = 0; i < ds->n && !found; i++) {
        if (strcmp(ds->v[i].id, id) != 0)
            continue;
        found = ds->v[i].last_ns != 0;
        out->last_ns = ds->v[i].last_ns;
        out->next_ns = ds->v[i].next_ns;
        out->rows = ds->v[i].rows;
        out->full_runs = ds->v[i].full_runs;
        out->incremental_runs = ds->v[i].incremental_runs;
        snprintf(out->mode, sizeof out->mode, "%s", ds->v[i].mode ? ds->v[i].mode : "");
        snprintf(out->error, sizeof out->error, "%s", ds->v[i].error);
    }
    pthread_mutex_unlock(&ds->lock);
    return found;
}

mesh_status_t mesh__node_derived_lineage(mesh_node_t *n, mesh_snapshot_t *snap,
                                         const mesh_product_t *p, mesh_lineage_t *out,
                                         mesh_err_t *err)
{
    memset(out, 0, sizeof *out);
    mesh_identity_t who;
    mesh_status_t st = definer_identity(n, p, &who, err);
    if (st != MESH_OK)
        return st;
    mesh_policy_t *policy = mesh_auth_policy(n->auth);
    st = sql_lineage(n, snap, policy, &who, p, out, err);
    mesh_policy_put(policy);
    return st;
}

/* Whether derived product q reads one of the products in ids ("d.p", n of them). */
static bool reads_any(mesh_node_t *n, mesh_snapshot_t *snap, const mesh_product_t *q,
                      char (*ids)[130], size_t nids)
{
    mesh_lineage_t l;
    mesh_err_t err;
    if (mesh__node_derived_lineage(n, snap, q, &l, &err) != MESH_OK) {
        /* no lineage (its definer revoked): it reads a product if its query names it (no view
         * or alias can hide a name: the sandbox has none) */
        for (size_t k = 0; k < nids; k++) {
            const char *dot = strchr(ids[k], '.');
            if (dot && strcasestr(q->derive->sql, dot + 1))
                return true;
        }
        return false;
    }
    bool hit = false;
    for (size_t t = 0; t < l.ntables && !hit; t++) {
        char id[130];
        snprintf(id, sizeof id, "%s.%s", l.tables[t].domain, l.tables[t].product);
        for (size_t k = 0; k < nids && !hit; k++)
            hit = strcmp(ids[k], id) == 0;
    }
    mesh_lineage_free(&l);
    return hit;
}

mesh_status_t mesh__node_derived_erased(mesh_node_t *n, const mesh_product_t *src, mesh_buf_t *out,
                                        size_t *count, mesh_err_t *err)
{
    *count = 0;
    char(*ids)[130] = calloc(DERIVED_MAX + 1, sizeof *ids);
    if (ids == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    size_t nids = 1;
    snprintf(ids[0], sizeof ids[0], "%s.%s", src->domain, src->name);
    mesh_snapshot_t *snap = mesh_registry_snapshot(n->reg);
    mesh_status_t st = MESH_OK;
    /* the products reading what changed, then those reading them, ... */
    for (int round = 0; round < ERASE_CHAIN_MAX && st == MESH_OK; round++) {
        size_t before = nids;
        for (size_t i = 0; i < snap->ndoms && st == MESH_OK; i++) {
            const mesh_snap_domain_t *sd = &snap->doms[i];
            for (size_t k = 0; k < sd->ncrefs && st == MESH_OK; k++) {
                const mesh_contract_t *c = sd->crefs[k]->c;
                for (size_t j = 0; j < c->nproducts && st == MESH_OK; j++) {
                    const mesh_product_t *q = &c->products[j];
                    if (q->derive == NULL || q->derive->kind != MESH_DERIVE_SQL ||
                        nids > DERIVED_MAX)
                        continue;
                    char id[130];
                    snprintf(id, sizeof id, "%s.%s", q->domain, q->name);
                    bool done = false;
                    for (size_t x = 0; x < nids && !done; x++)
                        done = strcmp(ids[x], id) == 0;
                    if (done || !reads_any(n, snap, q, ids, before))
                        continue;
                    int64_t rows = 0;
                    mesh_err_t e;
                    mesh_err_clear(&e);
                    mesh_status_t rst =
                        mesh__node_derived_refresh(n, q->domain, q->name, true, &rows, &e);
                    bool emptied = false;
                    if (rst != MESH_OK) {
                        /* no erased value may stay: an empty content until a refresh works */
                        mesh_batch_t b;
                        mesh_batch_init(&b, q->domain, MESH_BATCH_DEFAULT_LIMITS);
                        int64_t r0 = 0;
                        mesh_err_t e2;
                        st = mesh_domain_refresh(sd->dom, q->name, NULL, 0, &b, &r0, NULL, &e2);
                        mesh_batch_free(&b);
                        if (st != MESH_OK)
                            mesh_err_set(err, st, "%s.%s: %s", q->domain, q->name, e2.msg);
                        emptied = st == MESH_OK;
                    }
                    snprintf(ids[nids++], sizeof ids[0], "%s", id);
                    if (*count)
                        mesh_buf_addc(out, ',');
                    mesh_buf_adds(out, "{\"domain\":");
                    mesh_buf_add_json_str(out, q->domain, strlen(q->domain));
                    mesh_buf_adds(out, ",\"product\":");
                    mesh_buf_add_json_str(out, q->name, strlen(q->name));
                    mesh_buf_printf(
                        out, ",\"deleted\":0,\"refreshed\":%s,\"emptied\":%s,\"rows\":%" PRId64,
                        rst == MESH_OK ? "true" : "false", emptied ? "true" : "false", rows);
                    if (rst != MESH_OK) {
                        mesh_buf_adds(out, ",\"error\":");
                        mesh_buf_add_json_str(out, e.msg, strlen(e.msg));
                    }
                    mesh_buf_addc(out, '}');
                    (*count)++;
                }
            }
        }
        if (nids == before)
            break;
    }
    mesh_snapshot_put(snap);
    free(ids);
    return st;
}

bool mesh__node_derived_reader(mesh_node_t *n, mesh_snapshot_t *snap, const mesh_product_t *p,
                               char *out, size_t cap)
{
    char id[1][130];
    snprintf(id[0], sizeof id[0], "%s.%s", p->domain, p->name);
    for (size_t i = 0; i < snap->ndoms; i++) {
        const mesh_snap_domain_t *sd = &snap->doms[i];
        for (size_t k = 0; k < sd->ncrefs; k++) {
            const mesh_contract_t *c = sd->crefs[k]->c;
            for (size_t j = 0; j < c->nproducts; j++) {
                const mesh_product_t *q = &c->products[j];
                if (q == p || q->derive == NULL || q->derive->kind != MESH_DERIVE_SQL ||
                    !reads_any(n, snap, q, id, 1))
                    continue;
                snprintf(out, cap, "%s.%s", q->domain, q->name);
                return true;
            }
        }
    }
    return false;
}
