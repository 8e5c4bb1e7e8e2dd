/*
 * governance.c - erasure on a node (see governance.h).
 */
#include "node/governance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/governance.h"
#include "catalog/registry.h"
#include "node/derived.h"
#include "store/domain.h"

#define ERASE_MAX_KEYS        1000000
#define ERASE_KEYS_PER_RECORD 10000

#define DERIVED_HOOKS 8

/* The registered hooks (process-wide: set at start, before requests come; a node registers
 * the same hooks again when it restarts in one process, which changes nothing). */
static struct {
    mesh_erase_derived_fn fn;
    void *arg;
} hooks[DERIVED_HOOKS];
static size_t nhooks;

void mesh_node_set_erase_derived(mesh_erase_derived_fn fn, void *arg)
{
    for (size_t i = 0; i < nhooks; i++)
        if (hooks[i].fn == fn) {
            hooks[i].arg = arg;
            return;
        }
    if (fn && nhooks < DERIVED_HOOKS) {
        hooks[nhooks].fn = fn;
        hooks[nhooks++].arg = arg;
    }
}

/* The continuous aggregates' hook: an erasure reaches them through the domain's log (the
 * disposal record marks the buckets that held erased rows, the writer recomputes them before
 * the erasure is answered: store/cagg.c), so on every replica and after any crash. This
 * reports them: one object per aggregate over p. */
static mesh_status_t erase_aggregates(void *arg, mesh_node_t *n, const mesh_product_t *p,
                                      const char *where, mesh_buf_t *out, mesh_err_t *err)
{
    (void)arg;
    (void)where;
    (void)err;
    mesh_snapshot_t *snap = mesh_registry_snapshot(n->reg);
    if (snap == NULL)
        return MESH_OK;
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(snap, p->domain);
    size_t k = 0;
    for (size_t ci = 0; sd && ci < sd->ncrefs; ci++) {
        const mesh_contract_t *c = sd->crefs[ci]->c;
        for (size_t i = 0; i < c->nproducts; i++) {
            const mesh_product_t *ap = &c->products[i];
            if (ap->derive == NULL || ap->derive->kind != MESH_DERIVE_AGGREGATE ||
                ap->derive->source == NULL || strcmp(ap->derive->source, p->name) != 0)
                continue;
            if (k++)
                mesh_buf_addc(out, ',');
            mesh_buf_adds(out, "{\"domain\":");
            mesh_buf_add_json_str(out, p->domain, strlen(p->domain));
            mesh_buf_adds(out, ",\"product\":");
            mesh_buf_add_json_str(out, ap->name, strlen(ap->name));
            mesh_buf_adds(out, ",\"kind\":\"aggregate\",\"recomputed\":\"buckets of the erased "
                               "rows\"}");
        }
    }
    mesh_snapshot_put(snap);
    return MESH_OK;
}

void mesh__node_governance_start(mesh_node_t *n)
{
    (void)n;
    mesh_node_set_erase_derived(erase_aggregates, NULL);
}

void mesh_erase_report_free(mesh_erase_report_t *r)
{
    mesh_buf_free(&r->derived);
}

/* Writes the keys collected so far as one disposal record. */
static mesh_status_t flush_keys(const mesh_snap_domain_t *sd, const mesh_product_t *p,
                                mesh_buf_t *keys, size_t *nkeys, mesh_erase_report_t *rep,
                                mesh_err_t *err)
{
    if (*nkeys == 0)
        return MESH_OK;
    int64_t deleted = 0;
    mesh_status_t st = mesh_domain_dispose(sd->dom, p->name, 'e', 0, 0, (const uint8_t *)keys->data,
                                           keys->len, *nkeys, &deleted, NULL, err);
    if (st == MESH_OK) {
        rep->deleted += deleted;
        rep->records++;
    }
    mesh_buf_reset(keys);
    *nkeys = 0;
    return st;
}

mesh_status_t mesh_node_erase(mesh_node_t *n, mesh_snapshot_t *snap, mesh_policy_t *policy,
                              const mesh_identity_t *who, const mesh_product_t *p,
                              const char *where, mesh_erase_report_t *rep, mesh_err_t *err)
{
    memset(rep, 0, sizeof *rep);
    mesh_buf_init(&rep->derived, 1 << 20);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(snap, p->domain);
    if (sd == NULL)
        return mesh_err_set(err, MESH_NOT_FOUND, "no domain %s", p->domain);
    mesh_gov_effective_t g;
    mesh_status_t st = mesh_catalog_gov_effective(n->cat, p, &g, err);
    if (st != MESH_OK)
        return st;
    if (g.held)
        return mesh_err_set(err, MESH_CONFLICT,
                            "%s.%s is under a legal hold (on %s: %s): nothing may be erased "
                            "until it is released",
                            p->domain, p->name, g.held_on, g.hold_reason);
    /* the condition must be one expression over the product: no statement tails, and no
     * parenthesis closing the one it is put in */
    if (!mesh_sql_parens_balanced(where, strlen(where)))
        return mesh_err_set(err, MESH_INVALID,
                            "the condition's parentheses do not balance: it must be one "
                            "expression over the columns of %s.%s",
                            p->domain, p->name);
    if ((st = mesh_policy_expr_check(p, where, NULL, err)) != MESH_OK)
        return st;
    /* the key columns (every column for a product without a key) */
    size_t nmatch = p->nkey ? p->nkey : p->ncols;
    mesh_buf_t sql;
    mesh_buf_init(&sql, MESH_QUERY_MAX_SQL);
    mesh_buf_adds(&sql, "SELECT ");
    for (size_t k = 0; k < nmatch; k++)
        mesh_buf_printf(&sql, "%s\"%s\"", k ? "," : "",
                        p->cols[p->nkey ? p->key_cols[k] : (int)k].name);
    mesh_buf_printf(&sql, " FROM \"%s\".\"%s\" WHERE (%s)", p->domain, p->name, where);
    if (sql.data == NULL) {
        mesh_buf_free(&sql);
        return mesh_err_set(err, MESH_TOO_LARGE, "the condition is too long");
    }
    mesh_query_limits_t lim = {.timeout_ns = n->opts.query_timeout, .max_rows = ERASE_MAX_KEYS + 1};
    mesh_query_t *q = NULL;
    st = mesh_query_start(n->qpool, snap, policy, who, sql.data, sql.len, &lim, &q, err);
    mesh_buf_free(&sql);
    if (st != MESH_OK)
        return st;
    /* a masked key column would hand back masked values: refuse rather than miss rows */
    const char *pol = mesh_query_policies(q);
    for (size_t k = 0; k < nmatch; k++) {
        char needle[200];
        snprintf(needle, sizeof needle, "m%s.%s.%s:", p->domain, p->name,
                 p->cols[p->nkey ? p->key_cols[k] : (int)k].name);
        if (strstr(pol, needle)) {
            mesh_query_finish(q);
            return mesh_err_set(err, MESH_FORBIDDEN,
                                "column %s is masked for you: erasure needs the key in clear",
                                p->cols[p->nkey ? p->key_cols[k] : (int)k].name);
        }
    }
    mesh_buf_t keys;
    mesh_buf_init(&keys, MESH_BUF_UNLIMITED);
    size_t nkeys = 0;
    int rc;
    while ((rc = mesh_query_step(q, err)) == 1) {
        rep->matched++;
        for (size_t k = 0; k < nmatch; k++) {
            mesh_datum_t v;
            mesh_query_value(q, (int)k, &v);
            mesh_store_key_add(&keys, &v);
        }
        if (++nkeys >= ERASE_KEYS_PER_RECORD &&
            (st = flush_keys(sd, p, &keys, &nkeys, rep, err)) != MESH_OK)
            break;
    }
    if (rc < 0)
        st = err->code != MESH_OK ? err->code : MESH_INTERNAL;
    mesh_query_finish(q);
    if (st == MESH_OK)
        st = flush_keys(sd, p, &keys, &nkeys, rep, err);
    mesh_buf_free(&keys);
    if (st != MESH_OK)
        return st;
    /* the products derived by SQL from it are recomputed from what remains (node/derived.c),
     * then each hook's objects (the continuous aggregates, ...), comma-separated, in one
     * array */
    size_t nsql = 0;
    mesh_buf_addc(&rep->derived, '[');
    st = mesh__node_derived_erased(n, p, &rep->derived, &nsql, err);
    bool any = nsql > 0;
    for (size_t i = 0; i < nhooks && st == MESH_OK; i++) {
        mesh_buf_t one;
        mesh_buf_init(&one, 1 << 20);
        st = hooks[i].fn(hooks[i].arg, n, p, where, &one, err);
        if (one.len) {
            if (any)
                mesh_buf_addc(&rep->derived, ',');
            mesh_buf_add(&rep->derived, one.data, one.len);
            any = true;
        }
        mesh_buf_free(&one);
    }
    mesh_buf_addc(&rep->derived, ']');
    return st;
}
