/*
 * fed.c - the node's side of federated queries (mesh/fed.h, docs/mesh.md).
 *
 * Owner: a verified request is run as the END USER it names, under this node's own
 * catalog, policy and sandbox, exactly as that user's local query would be: the principal
 * is looked up by name here (grants are mesh-wide names, decided by the owner), the scan
 * becomes "SELECT cols FROM domain.table WHERE col op ?n ... LIMIT ?" over the product
 * virtual table (values bound, never in the SQL text), so grants, masks, row filters and
 * any policy the product table applies hold for remote callers with no code of their own.
 * Every scan is audited here with the real user's name and the calling node.
 *
 * Caller: the query pool reaches domains of other live nodes through the transport; which
 * domains those are is read from the registry at every heartbeat.
 */
#include <stdlib.h>
#include <string.h>

#include "catalog/governance.h"
#include "catalog/security.h"
#include "core/log.h"
#include "core/util.h"
#include "http/metrics.h"
#include "mesh/fed.h"
#include "node/node.h"

#define SIGN_KEY_FILE "node_sign.key"

typedef struct fscan {
    mesh_node_t *n;
    mesh_snapshot_t *snap;
    mesh_policy_t *policy;
    mesh_identity_t who;
    mesh_query_t *q;
    char node[64];
    char domain[MESH_NAME_MAX + 1];
    char site[MESH_FED_SITE_MAX + 1]; /* the calling node's */
    char *sql;
    int64_t t0;
    int ncols;
    bool query;      /* a whole statement (decision 0039): result frames with trailers */
    bool denied;     /* refused after it started (egress_ok), audited as such */
    size_t checked;  /* bytes of mesh_query_products already checked by egress_ok */
    int64_t sent;    /* rows stepped */
    int64_t row_cap; /* a query ends cleanly after this many rows (the caller's max_rows + 1:
                        the caller then fails as a local query does), 0: none */
    uint64_t fills;  /* frames filled */
} fscan_t;

/* The end user as this node knows it; refused (and audited) when it does not. */
static mesh_status_t identity(mesh_node_t *n, const mesh_fed_request_t *r, mesh_identity_t *who,
                              mesh_err_t *err)
{
    mesh_principal_info_t p;
    memset(who, 0, sizeof *who);
    if (mesh_catalog_principal_find(n->cat, r->user, &p) != MESH_OK || p.disabled)
        return mesh_err_set(err, MESH_FORBIDDEN,
                            "principal '%s' has no access on node %s, which hosts domain %s "
                            "(grants are decided by the domain's node)",
                            r->user, n->opts.node_name, r->domain);
    who->principal_id = p.id;
    snprintf(who->name, sizeof who->name, "%s", p.name);
    snprintf(who->roles, sizeof who->roles, "%s", p.roles);
    return MESH_OK;
}

static void audit(mesh_node_t *n, mesh_audit_action_t action, const char *node,
                  const mesh_identity_t *who, const char *user, const char *domain, int status,
                  const char *details, int64_t policy_version)
{
    if (n->audit == NULL)
        return;
    char source[80];
    snprintf(source, sizeof source, "node:%s", node);
    mesh_audit_rec_t rec = {.action = action,
                            .principal_id = who ? who->principal_id : 0,
                            .principal = user,
                            .auth = "mesh-node",
                            .source = source,
                            .domain = domain && *domain ? domain : NULL,
                            .status = status,
                            .details = details,
                            .policy_version = policy_version};
    mesh_audit_record(n->audit, &rec);
}

static void audit_denied(mesh_node_t *n, const mesh_fed_request_t *r, const mesh_err_t *err)
{
    mesh_buf_t d;
    mesh_buf_init(&d, 4096);
    mesh_buf_adds(&d, "{\"via\":\"mesh\",\"reason\":");
    mesh_buf_add_json_str(&d, err->msg, strnlen(err->msg, sizeof err->msg));
    mesh_buf_addc(&d, '}');
    audit(n, MESH_AUDIT_AUTHZ_DENY, r->node, NULL, r->user, r->domain, mesh_status_http(err->code),
          d.data, 0);
    mesh_buf_free(&d);
}

static bool is_owner(const mesh_snap_domain_t *sd, const char *name)
{
    for (size_t i = 0; i < sd->meta.nowners; i++)
        if (strcmp(sd->meta.owners[i], name) == 0)
            return true;
    return false;
}

/* Adds table pn+suffix of domain to a describe answer: the columns and types this user sees,
 * from the table itself. A view (suffix "__last", "__agg") this user cannot prepare is left
 * out; the product table must prepare. left: product tables still to be described. */
static mesh_status_t describe_table(mesh_node_t *n, mesh_snapshot_t *snap, mesh_policy_t *pol,
                                    const mesh_identity_t *who, const mesh_query_limits_t *lim,
                                    const char *domain, const char *pn, const char *suffix,
                                    size_t left, mesh_fed_schema_t *out, mesh_err_t *err)
{
    /* a view is left out rather than crowd out a product table still to come */
    if (suffix[0] && out->ntables + 1 + left > MESH_FED_MAX_TABLES)
        return MESH_OK;
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT * FROM \"%s\".\"%s%s\" LIMIT 0", domain, pn, suffix);
    mesh_query_t *q = NULL;
    mesh_err_t qerr;
    if (mesh_query_start(n->qpool, snap, pol, who, sql, strlen(sql), lim, &q, &qerr) != MESH_OK)
        return suffix[0] ? MESH_OK : mesh_err_set(err, qerr.code, "%s", qerr.msg);
    int nc = mesh_query_ncols(q);
    mesh_fed_table_t *t = &out->tables[out->ntables];
    if (nc > 0 && nc <= MESH_FED_MAX_COLS &&
        (t->cols = calloc((size_t)nc, sizeof *t->cols)) != NULL &&
        (t->types = calloc((size_t)nc, sizeof *t->types)) != NULL) {
        snprintf(t->name, sizeof t->name, "%s%s", pn, suffix);
        for (int j = 0; j < nc; j++) {
            const char *ty = mesh_query_coltype(q, j);
            snprintf(t->cols[j], sizeof t->cols[j], "%s", mesh_query_colname(q, j));
            snprintf(t->types[j], sizeof t->types[j], "%s", ty ? ty : "TEXT");
        }
        t->ncols = (size_t)nc;
        out->ntables++;
    } else if (t->cols) {
        free(t->cols);
        t->cols = NULL;
    }
    mesh_query_finish(q);
    return MESH_OK;
}

static mesh_status_t on_describe(void *arg, const mesh_fed_request_t *r, mesh_fed_schema_t *out,
                                 mesh_err_t *err)
{
    mesh_node_t *n = arg;
    mesh_identity_t who;
    mesh_status_t st = identity(n, r, &who, err);
    mesh_snapshot_t *snap = mesh_registry_snapshot(n->reg);
    mesh_policy_t *pol = mesh_auth_policy(n->auth);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(snap, r->domain);
    if (st == MESH_OK && sd == NULL)
        st = mesh_err_set(err, MESH_NOT_FOUND, "node %s does not host domain %s", n->opts.node_name,
                          r->domain);
    size_t np = 0;
    for (size_t k = 0; st == MESH_OK && k < sd->ncrefs; k++)
        np += sd->crefs[k]->c->nproducts;
    if (st == MESH_OK && np && (out->tables = calloc(3 * np, sizeof *out->tables)) == NULL)
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
    bool owner = st == MESH_OK && is_owner(sd, who.name);
    /* prepared for their columns only: an aggregates-only product is described too (its scans
     * are refused, its aggregates answered: decision 0039) */
    mesh_query_limits_t lim = {
        .timeout_ns = n->opts.query_timeout, .local_only = true, .prepare_only = true};
    size_t left = np;
    for (size_t k = 0; st == MESH_OK && k < sd->ncrefs; k++) {
        const mesh_contract_t *c = sd->crefs[k]->c;
        for (size_t i = 0; st == MESH_OK && i < c->nproducts; i++) {
            const char *pn = c->products[i].name;
            left--;
            if (!mesh_policy_decide(pol, &who, MESH_ACT_READ, r->domain, pn, owner, NULL))
                continue;
            /* a time series also has its newest rows and its rollups */
            bool ts = mesh_store_is_timeseries(mesh_domain_store(sd->dom), pn);
            for (int view = 0; st == MESH_OK && view < (ts ? 3 : 1); view++) {
                static const char *const suffix[] = {"", "__last", "__agg"};
                st = describe_table(n, snap, pol, &who, &lim, r->domain, pn, suffix[view], left,
                                    out, err);
            }
        }
    }
    if (st != MESH_OK)
        audit_denied(n, r, err);
    mesh_policy_put(pol);
    mesh_snapshot_put(snap);
    return st;
}

static void fscan_free(fscan_t *f)
{
    if (f == NULL)
        return;
    mesh_query_finish(f->q);
    mesh_policy_put(f->policy);
    if (f->snap)
        mesh_snapshot_put(f->snap);
    free(f->sql);
    free(f);
}

static void quote(mesh_buf_t *b, const char *name)
{
    mesh_buf_addc(b, '"');
    for (const char *c = name; *c; c++) {
        if (*c == '"')
            mesh_buf_addc(b, '"');
        mesh_buf_addc(b, *c);
    }
    mesh_buf_addc(b, '"');
}

static mesh_status_t on_scan_open(void *arg, const mesh_fed_request_t *r, void **state,
                                  mesh_err_t *err)
{
    mesh_node_t *n = arg;
    fscan_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    f->n = n;
    f->t0 = mesh_mono_ns();
    snprintf(f->node, sizeof f->node, "%s", r->node);
    snprintf(f->domain, sizeof f->domain, "%s", r->domain);
    snprintf(f->site, sizeof f->site, "%s", r->site);
    f->query = r->op == MESH_FED_QUERY;
    mesh_status_t st = identity(n, r, &f->who, err);
    f->snap = mesh_registry_snapshot(n->reg);
    f->policy = mesh_auth_policy(n->auth);
    if (st == MESH_OK && mesh_snapshot_domain(f->snap, r->domain) == NULL)
        st = mesh_err_set(err, MESH_NOT_FOUND, "node %s does not host domain %s", n->opts.node_name,
                          r->domain);
    mesh_query_limits_t lim = {.timeout_ns = n->opts.query_timeout,
                               .max_rows = n->opts.query_max_rows,
                               .local_only = true};
    if (f->query) {
        /* the caller's statement, run here as the end user's own would be; the caller's
         * limits apply when they are tighter */
        if (r->timeout_ms > 0 && (lim.timeout_ns <= 0 || r->timeout_ms < lim.timeout_ns / 1000000))
            lim.timeout_ns = r->timeout_ms * 1000000;
        if (r->max_rows > 0)
            f->row_cap = r->max_rows + 1;
        if (st == MESH_OK && (f->sql = mesh_strndup(r->sql, r->sql_len)) == NULL)
            st = mesh_err_set(err, MESH_NOMEM, "out of memory");
        if (st == MESH_OK)
            st = mesh_query_start(n->qpool, f->snap, f->policy, &f->who, f->sql, r->sql_len, &lim,
                                  &f->q, err);
        if (st == MESH_OK)
            f->ncols = mesh_query_ncols(f->q);
        if (st == MESH_OK && (f->ncols < 1 || f->ncols > MESH_FED_MAX_COLS))
            st = mesh_err_set(err, MESH_LIMIT, "a result of %d columns (at most %d)", f->ncols,
                              MESH_FED_MAX_COLS);
        if (st != MESH_OK) {
            audit_denied(n, r, err);
            fscan_free(f);
            return st;
        }
        *state = f;
        return MESH_OK;
    }
    /* the scan as SQL over the product table; values are bound below */
    mesh_buf_t sql;
    mesh_buf_init(&sql, MESH_QUERY_MAX_SQL);
    mesh_buf_adds(&sql, "SELECT ");
    for (size_t i = 0; i < r->ncols; i++) {
        if (i)
            mesh_buf_addc(&sql, ',');
        quote(&sql, r->cols[i]);
    }
    if (r->ncols == 0)
        mesh_buf_adds(&sql, "NULL");
    mesh_buf_adds(&sql, " FROM ");
    quote(&sql, r->domain);
    mesh_buf_addc(&sql, '.');
    quote(&sql, r->table);
    int nparam = 0;
    for (size_t i = 0; i < r->ncons; i++) {
        mesh_buf_adds(&sql, i ? " AND " : " WHERE ");
        quote(&sql, r->cons[i].col);
        mesh_buf_printf(&sql, " %s", mesh_fed_op_sql(r->cons[i].op));
        if (mesh_fed_op_has_value(r->cons[i].op))
            mesh_buf_printf(&sql, " ?%d", ++nparam);
    }
    if (r->limit >= 0)
        mesh_buf_printf(&sql, " LIMIT %lld", (long long)r->limit);
    f->ncols = r->ncols ? (int)r->ncols : 1;
    if (st == MESH_OK && sql.data == NULL)
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
    f->sql = mesh_buf_steal(&sql, NULL);
    if (st == MESH_OK)
        st = mesh_query_start(n->qpool, f->snap, f->policy, &f->who, f->sql, strlen(f->sql), &lim,
                              &f->q, err);
    for (size_t i = 0, k = 0; st == MESH_OK && i < r->ncons; i++)
        if (mesh_fed_op_has_value(r->cons[i].op) &&
            mesh_query_bind(f->q, (int)++k, &r->cons[i].val) != MESH_OK)
            st = mesh_err_set(err, MESH_INVALID, "cannot bind a constraint's value");
    if (st != MESH_OK) {
        audit_denied(n, r, err);
        fscan_free(f);
        return st;
    }
    *state = f;
    return MESH_OK;
}

/* Whether rows of what the query read may go to the calling node: every product must be of
 * the domain asked for (a query sent to one domain's nodes reads that domain only), and one of
 * a residency-local domain or product only to a node of this node's site (as snapshots,
 * bootstrap.c). Checked when each frame is full, before it leaves, for the products the query
 * opened since the last check (a product is noted when its scan opens, which may be after the
 * first frame: a UNION's second part). */
static bool egress_ok(fscan_t *f, mesh_err_t *err)
{
    mesh_node_t *n = f->n;
    const char *mine = n->opts.site ? n->opts.site : "";
    bool same_site = strcmp(f->site, mine) == 0;
    const char *all = mesh_query_products(f->q);
    size_t len_all = strlen(all);
    const char *from = all + (f->checked <= len_all ? f->checked : len_all);
    f->checked = len_all;
    for (const char *p = from; *p;) {
        if (*p == ',')
            p++;
        size_t len = strcspn(p, ",");
        char name[MESH_NAME_MAX * 2 + 16];
        snprintf(name, sizeof name, "%.*s", (int)len, p);
        p += len;
        char *dot = strchr(name, '.');
        if (dot == NULL)
            continue;
        *dot = '\0';
        const char *pn = dot + 1;
        if (strcmp(name, f->domain) != 0) {
            mesh_err_set(err, MESH_FORBIDDEN,
                         "a query sent to domain %s reads %s.%s: one domain's node answers for "
                         "that domain only",
                         f->domain, name, pn);
            return false;
        }
        if (same_site)
            continue;
        /* the product itself (its views and quarantine share its residency) */
        char base[MESH_NAME_MAX + 1];
        snprintf(base, sizeof base, "%s", pn);
        static const char *const suffix[] = {"__quarantine", "__last", "__agg"};
        for (size_t i = 0; i < MESH_ARRAY_LEN(suffix); i++) {
            size_t bl = strlen(base), sl = strlen(suffix[i]);
            if (bl > sl && strcmp(base + bl - sl, suffix[i]) == 0)
                base[bl - sl] = '\0';
        }
        const mesh_snap_domain_t *sd = mesh_snapshot_domain(f->snap, name);
        const mesh_product_t *prod = mesh_snapshot_product(f->snap, name, base);
        if (sd == NULL || sd->meta.residency_local || mesh_residency_domain_local(n->cat, name) ||
            prod == NULL || mesh_residency_local(n->cat, prod)) {
            mesh_err_set(err, MESH_FORBIDDEN,
                         "%s.%s is residency local to site %s: its rows are not sent to node %s "
                         "(site %s); ask a node of that site",
                         name, base, mine, f->node, f->site[0] ? f->site : "none");
            return false;
        }
    }
    return true;
}

/* A result frame's trailer: the columns, products and policies with the first frame, the
 * counts with the last. */
static mesh_status_t add_meta(fscan_t *f, mesh_fed_enc_t *e, bool first, bool last)
{
    mesh_fed_meta_t m = {.scanned = -1, .suppressed = -1};
    char(*cols)[MESH_FED_NAME_MAX + 1] = NULL;
    int8_t *types = NULL;
    mesh_status_t st = MESH_OK;
    if (first) {
        cols = calloc((size_t)f->ncols, sizeof *cols);
        types = calloc((size_t)f->ncols, sizeof *types);
        if (cols == NULL || types == NULL)
            st = MESH_NOMEM;
        for (int i = 0; st == MESH_OK && i < f->ncols; i++) {
            snprintf(cols[i], sizeof cols[i], "%s", mesh_query_colname(f->q, i));
            types[i] = (int8_t)mesh_fed_type_index(mesh_query_coltype(f->q, i));
        }
        m.ncols = (size_t)f->ncols;
        m.cols = cols;
        m.types = types;
        m.products = (char *)mesh_query_products(f->q);
        m.policies = (char *)mesh_query_policies(f->q);
    }
    /* the rows scanned so far with every frame: a caller that stops early (max_rows) still
     * reports what its answer cost; the groups suppressed only once known */
    m.scanned = mesh_query_scanned(f->q);
    if (last)
        m.suppressed = mesh_query_suppressed(f->q);
    if (st == MESH_OK)
        st = mesh_fed_rows_meta(e, &m);
    free(cols);
    free(types);
    return st;
}

/* Audits a refusal of egress_ok (authz.deny) and marks the scan denied: -1. */
static int egress_denied(fscan_t *f, mesh_err_t *err)
{
    mesh_buf_t d;
    mesh_buf_init(&d, MESH_BUF_UNLIMITED);
    mesh_buf_adds(&d, "{\"via\":\"mesh\",\"reason\":");
    mesh_buf_add_json_str(&d, err->msg, strnlen(err->msg, sizeof err->msg));
    mesh_buf_adds(&d, ",\"sql\":");
    mesh_buf_add_json_str(&d, f->sql, strnlen(f->sql, MESH_AUDIT_MAX_SQL));
    mesh_buf_addc(&d, '}');
    audit(f->n, MESH_AUDIT_AUTHZ_DENY, f->node, &f->who, f->who.name, f->domain,
          mesh_status_http(err->code), d.data, mesh_policy_version(f->policy));
    mesh_buf_free(&d);
    f->denied = true;
    return -1;
}

static int on_scan_fill(void *state, mesh_fed_enc_t *e, mesh_err_t *err)
{
    fscan_t *f = state;
    e->ncols = (uint16_t)f->ncols;
    int rc = 1;
    while (e->out->len < e->target && e->nrows < MESH_FED_MAX_ROWS - 1) {
        if (f->row_cap > 0 && f->sent >= f->row_cap) {
            rc = 0;
            break;
        }
        rc = mesh_query_step(f->q, err);
        if (rc < 0)
            return rc;
        if (rc == 0)
            break;
        f->sent++;
        mesh_status_t st = MESH_OK;
        for (int i = 0; i < f->ncols && st == MESH_OK; i++) {
            mesh_datum_t d;
            mesh_query_value_bytes(f->q, i, &d);
            st = mesh_fed_rows_value(e, &d);
        }
        if (st != MESH_OK) { /* a frame holds at least one whole row */
            mesh_err_set(err, MESH_LIMIT, "a row larger than a federation frame (%d bytes)",
                         MESH_FED_MAX_FRAME - MESH_FED_CHUNK_BYTES);
            return -1;
        }
        mesh_fed_rows_row(e);
    }
    bool first = f->fills++ == 0;
    if (!egress_ok(f, err))
        return egress_denied(f, err);
    if (f->query && add_meta(f, e, first, rc == 0) != MESH_OK) {
        mesh_err_set(err, MESH_LIMIT,
                     "a row and the result's columns do not fit one federation frame (%d bytes)",
                     MESH_FED_MAX_FRAME);
        return -1;
    }
    return rc;
}

/* Right before a frame filled ahead leaves (decision 0041): every product the scan read is
 * checked again against the catalog as it is now, as if the frame were filled now. */
static bool on_scan_recheck(void *state, mesh_err_t *err)
{
    fscan_t *f = state;
    f->checked = 0;
    if (egress_ok(f, err))
        return true;
    egress_denied(f, err);
    return false;
}

static void on_scan_close(void *state, const mesh_err_t *end)
{
    fscan_t *f = state;
    mesh_node_t *n = f->n;
    double ms = (double)(mesh_mono_ns() - f->t0) / 1e6;
    if (f->denied) { /* audited as refused; no row left */
        fscan_free(f);
        return;
    }
    /* as a local query's record, with the calling node */
    mesh_buf_t d;
    mesh_buf_init(&d, MESH_BUF_UNLIMITED);
    mesh_buf_adds(&d, "{\"via\":\"mesh\",\"node\":");
    mesh_buf_add_json_str(&d, f->node, strlen(f->node));
    mesh_buf_adds(&d, ",\"sql\":");
    mesh_buf_add_json_str(&d, f->sql, strnlen(f->sql, MESH_AUDIT_MAX_SQL));
    mesh_buf_printf(&d, ",\"products\":[");
    const char *p = mesh_query_products(f->q);
    for (int k = 0; *p; k++) {
        size_t len = strcspn(p, ",");
        if (k)
            mesh_buf_addc(&d, ',');
        mesh_buf_add_json_str(&d, p, len);
        p += len + (p[len] == ',');
    }
    mesh_buf_printf(&d, "],\"rows\":%lld,\"elapsed_ms\":%.3f", (long long)mesh_query_rows(f->q),
                    ms);
    const char *pol = mesh_query_policies(f->q);
    for (int kind = 0; kind < 2; kind++) {
        mesh_buf_adds(&d, kind ? "],\"filters\":[" : ",\"masks\":[");
        int k = 0;
        for (const char *l = pol; *l;) {
            size_t len = strcspn(l, "\n");
            if (len > 1 && l[0] == (kind ? 'f' : 'm')) {
                if (k++)
                    mesh_buf_addc(&d, ',');
                mesh_buf_add_json_str(&d, l + 1, len - 1);
            }
            l += len + (l[len] == '\n');
        }
    }
    mesh_buf_addc(&d, ']');
    if (end && end->code != MESH_OK) {
        mesh_buf_adds(&d, ",\"error\":");
        mesh_buf_add_json_str(&d, end->msg, strnlen(end->msg, sizeof end->msg));
    }
    mesh_buf_addc(&d, '}');
    bool failed = end && end->code != MESH_OK;
    audit(n, MESH_AUDIT_QUERY, f->node, &f->who, f->who.name, f->domain,
          failed ? mesh_status_http(end->code) : 200, d.data, mesh_policy_version(f->policy));
    mesh_buf_free(&d);
    LOG_DEBUG("fed", "%s (via node %s) read %s: %lld rows in %.1f ms", f->who.name, f->node,
              mesh_query_products(f->q), (long long)mesh_query_rows(f->q), ms);
    fscan_free(f);
}

static void on_scan_cancel(void *state)
{
    fscan_t *f = state;
    if (f->q)
        mesh_query_cancel(f->q);
}

static void on_refused(void *arg, const char *node, const char *user, const char *domain,
                       mesh_status_t code, const char *why)
{
    mesh_node_t *n = arg;
    mesh_buf_t d;
    mesh_buf_init(&d, 4096);
    mesh_buf_adds(&d, "{\"via\":\"mesh\",\"reason\":");
    mesh_buf_add_json_str(&d, why, strlen(why));
    mesh_buf_addc(&d, '}');
    audit(n, MESH_AUDIT_AUTH_FAIL, node && *node ? node : "?", NULL, user && *user ? user : NULL,
          domain, mesh_status_http(code), d.data, 0);
    mesh_buf_free(&d);
}

void mesh__node_fed_metrics(mesh_node_t *n, mesh_buf_t *b)
{
    if (n->fed == NULL)
        return;
    mesh_fed_stats_t st;
    mesh_fed_stats(n->fed, &st);
    static const struct {
        const char *name, *help;
    } m[] = {{"meshd_fed_remote_scans_total", "Scans of products on other nodes (federated)."},
             {"meshd_fed_remote_scan_failures_total", "Remote scans that failed."},
             {"meshd_fed_remote_rows_total", "Rows received from remote scans."},
             {"meshd_fed_remote_frames_total", "Frames (chunks) received from remote scans."},
             {"meshd_fed_remote_queries_total",
              "Of the remote scans, queries sent whole to the node of the one domain they read "
              "(decision 0039)."},
             {"meshd_fed_remote_scan_seconds_total",
              "Time from the request of a remote scan to its end, summed (latency: divide by "
              "meshd_fed_remote_scans_total)."},
             {"meshd_fed_served_scans_total", "Scans this node served to other nodes."},
             {"meshd_fed_served_rows_total", "Rows this node sent to other nodes."},
             {"meshd_fed_refused_total",
              "Requests from other nodes refused (malformed, unsigned, stale, replayed)."},
             {"meshd_fed_remote_bytes_total",
              "Bytes of the frames received from remote scans (what the mesh carried)."}};
    double v[] = {(double)st.scans,  (double)st.scan_failures, (double)st.rows,
                  (double)st.frames, (double)st.queries,       st.scan_seconds,
                  (double)st.served, (double)st.served_rows,   (double)st.refused,
                  (double)st.bytes};
    for (size_t i = 0; i < MESH_ARRAY_LEN(m); i++) {
        mesh_metrics_help(b, m[i].name, "counter", m[i].help);
        mesh_buf_printf(b, i == 5 ? "%s %.6f\n" : "%s %.0f\n", m[i].name, v[i]);
    }
}

/* ---- caller side ---- */

static void refresh_remote(mesh_node_t *n);

static bool hosted_elsewhere(void *arg, const char *domain)
{
    mesh_node_t *n = arg;
    /* the directory is read from the registry when a query needs it (not at every heartbeat
     * of every node): a name it does not list is looked up again once the list is older than
     * a heartbeat (a domain may have appeared), a name it lists is trusted until the list is
     * older than mesh_ttl, the time a node counts as alive after its last heartbeat anyway
     * (a domain gone meanwhile fails its describe: no live node answers). So a steady stream
     * of federated queries reads the registry once a TTL, not once a heartbeat (decision 0032). */
    for (int pass = 0; pass < 2; pass++) {
        bool found = false;
        pthread_mutex_lock(&n->fed_lock);
        int64_t age = mesh_mono_ns() - n->fed_remote_mono;
        for (size_t i = 0; i < n->fed_nremote && !found; i++)
            found = strcmp(n->fed_remote[i], domain) == 0;
        pthread_mutex_unlock(&n->fed_lock);
        if (found && age <= n->opts.mesh_ttl)
            return true;
        if (pass == 1) /* refreshed, or the registry is out of reach: the list as it is */
            return found;
        if (!found && age <= n->opts.mesh_heartbeat)
            return false;
        refresh_remote(n);
    }
    return false;
}

void mesh__node_fed_heartbeat(mesh_node_t *n, mesh_snapshot_t *s)
{
    if (n->signkey == NULL)
        return;
    /* serve this node's domains (under fed_lock: mesh__node_fed_stop may run meanwhile) */
    const char *names[256];
    size_t nn = 0;
    for (size_t i = 0; i < s->ndoms && nn < MESH_ARRAY_LEN(names); i++)
        names[nn++] = s->doms[i].meta.name;
    pthread_mutex_lock(&n->fed_lock);
    bool on = n->fed != NULL;
    if (on)
        mesh_fed_serve(n->fed, names, nn);
    pthread_mutex_unlock(&n->fed_lock);
}

/* Learns the domains of the other live nodes. */
static void refresh_remote(mesh_node_t *n)
{
    mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
    mesh_mesh_node_t *v = NULL;
    size_t nv = 0;
    mesh_err_t err;
    if (n->mesh == NULL || mesh_mesh_list(n->mesh, &v, &nv, &err) != MESH_OK) {
        mesh_snapshot_put(s);
        return;
    }
    size_t total = 0;
    for (size_t i = 0; i < nv; i++)
        total += v[i].alive ? v[i].e->ndomains : 0;
    char(*remote)[64] = calloc(total ? total : 1, sizeof *remote);
    size_t nr = 0;
    for (size_t i = 0; remote && i < nv; i++) {
        if (!v[i].alive || strcmp(v[i].e->name, n->opts.node_name) == 0)
            continue;
        for (size_t k = 0; k < v[i].e->ndomains; k++)
            if (mesh_snapshot_domain(s, v[i].e->domains[k].name) == NULL)
                snprintf(remote[nr++], sizeof remote[0], "%s", v[i].e->domains[k].name);
    }
    mesh_mesh_list_free(v, nv);
    mesh_snapshot_put(s);
    if (remote == NULL)
        return;
    pthread_mutex_lock(&n->fed_lock);
    free(n->fed_remote);
    n->fed_remote = remote;
    n->fed_nremote = nr;
    n->fed_remote_mono = mesh_mono_ns();
    pthread_mutex_unlock(&n->fed_lock);
}

mesh_status_t mesh__node_fed_start(mesh_node_t *n, mesh_err_t *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", n->opts.data_dir, SIGN_KEY_FILE);
    mesh_status_t st = mesh_signkey_open(path, &n->signkey, err);
    if (st != MESH_OK)
        return st;
    pthread_mutex_init(&n->fed_lock, NULL);
    mesh_fed_handler_t h = {.describe = on_describe,
                            .scan_open = on_scan_open,
                            .scan_fill = on_scan_fill,
                            .scan_recheck = on_scan_recheck,
                            .scan_close = on_scan_close,
                            .scan_cancel = on_scan_cancel,
                            .refused = on_refused};
    h.arg = n;
    if ((st = mesh_fed_create(n->signkey, &h, &n->fed, err)) != MESH_OK)
        return st;
    mesh_qpool_set_federation(n->qpool, n->fed, hosted_elsewhere, n);
    return MESH_OK;
}

void mesh__node_fed_stop(mesh_node_t *n)
{
    if (n->signkey == NULL)
        return;
    pthread_mutex_lock(&n->fed_lock);
    mesh_fed_t *f = n->fed;
    n->fed = NULL;
    pthread_mutex_unlock(&n->fed_lock);
    mesh_fed_destroy(f);
    free(n->fed_remote);
    n->fed_remote = NULL;
    n->fed_nremote = 0;
    pthread_mutex_destroy(&n->fed_lock);
    mesh_signkey_free(n->signkey);
    n->signkey = NULL;
}
