/*
 * api_lineage.c - lineage of derived products and the contracts of new ones
 * (docs/derived.md).
 *
 *   GET  /v1/lineage/{domain}/{product}  upstream and downstream products of a product, and
 *                                        per column of a derived product its inputs, how it
 *                                        is made and the classification it inherits (read on
 *                                        the product; products the caller may not read are
 *                                        left out of the graph and counted in "hidden")
 *   POST /v1/derive/{domain}/{product}   writes the contract of a new derived product (admin
 *                                        on the domain, read on its source): the columns,
 *                                        key and inherited classifications; the caller
 *                                        applies it (POST /v1/contracts, meshctl product
 *                                        derive)
 *
 * Lineage is extracted by meshd from each derivation (derive/derive.c); nothing is stored
 * besides the contracts.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/registry.h"
#include "core/util.h"
#include "derive/derive.h"
#include "http/internal.h"
#include "node/derived.h"

#define GRAPH_MAX_NODES 256
#define GRAPH_MAX_DEPTH 16

static void reply(mesh_req_t *r, int code, json_t *j)
{
    mesh_api_reply_json(r, code, j);
}

/* The lineage of a derived product (NULL derive: none). A derivation by SQL is prepared as
 * its definer (node/derived.c). */
static mesh_status_t lineage_of(mesh_node_t *n, const mesh_snapshot_t *s, const mesh_product_t *p,
                                mesh_lineage_t *out, mesh_err_t *err)
{
    memset(out, 0, sizeof *out);
    if (p->derive == NULL)
        return MESH_OK;
    if (p->derive->kind == MESH_DERIVE_SQL)
        return mesh__node_derived_lineage(n, (mesh_snapshot_t *)s, p, out, err);
    const mesh_product_t *src = mesh_snapshot_product(s, p->domain, p->derive->source);
    if (src == NULL)
        return mesh_err_set(err, MESH_NOT_FOUND, "%s.%s: no source %s", p->domain, p->name,
                            p->derive->source);
    return mesh_derive_aggregate_lineage(p->domain, src, p->derive, out, err);
}

typedef struct graph {
    mesh_req_t *r;
    const mesh_snapshot_t *s;
    json_t *nodes, *edges;
    char ids[GRAPH_MAX_NODES][130];
    size_t nids;
    int hidden;
} graph_t;

static bool seen(graph_t *g, const char *id)
{
    for (size_t i = 0; i < g->nids; i++)
        if (strcmp(g->ids[i], id) == 0)
            return true;
    return false;
}

static bool readable(graph_t *g, const char *domain, const char *product)
{
    mesh_decision_t d;
    return mesh_req_decide(g->r, MESH_ACT_READ, domain, product, &d);
}

/* Adds a product node (once). false when the caller may not see it or the graph is full. */
static bool add_node(graph_t *g, const mesh_product_t *p)
{
    char id[130];
    snprintf(id, sizeof id, "%s.%s", p->domain, p->name);
    if (seen(g, id))
        return true;
    if (!readable(g, p->domain, p->name)) {
        g->hidden++;
        return false;
    }
    if (g->nids >= GRAPH_MAX_NODES)
        return false;
    snprintf(g->ids[g->nids++], sizeof g->ids[0], "%s", id);
    json_t *n = json_pack("{s:s,s:s,s:s,s:b}", "id", id, "domain", p->domain, "product", p->name,
                          "derived", p->derive != NULL);
    if (p->derive && p->derive->kind == MESH_DERIVE_AGGREGATE) {
        json_object_set_new(n, "kind", json_string("aggregate"));
        json_object_set_new(n, "bucket_ns", json_integer(p->derive->bucket_ns));
    } else if (p->derive && p->derive->kind == MESH_DERIVE_SQL) {
        json_object_set_new(n, "kind", json_string("sql"));
    }
    json_array_append_new(g->nodes, n);
    return true;
}

static void add_edge(graph_t *g, const char *from_d, const char *from_p, const char *to_d,
                     const char *to_p)
{
    char a[130], b[130];
    snprintf(a, sizeof a, "%s.%s", from_d, from_p);
    snprintf(b, sizeof b, "%s.%s", to_d, to_p);
    size_t i;
    json_t *e;
    json_array_foreach(g->edges, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "from")), a) == 0 &&
            strcmp(json_string_value(json_object_get(e, "to")), b) == 0)
            return;
    }
    json_array_append_new(g->edges, json_pack("{s:s,s:s}", "from", a, "to", b));
}

static void upstream(graph_t *g, const mesh_product_t *p, json_t *list, int depth)
{
    mesh_lineage_t l;
    mesh_err_t err;
    if (depth > GRAPH_MAX_DEPTH || lineage_of(g->r->node, g->s, p, &l, &err) != MESH_OK)
        return;
    for (size_t i = 0; i < l.ntables; i++) {
        const mesh_product_t *in =
            mesh_snapshot_product(g->s, l.tables[i].domain, l.tables[i].product);
        if (in == NULL || !add_node(g, in))
            continue;
        add_edge(g, in->domain, in->name, p->domain, p->name);
        char id[130];
        snprintf(id, sizeof id, "%s.%s", in->domain, in->name);
        json_array_append_new(list, json_string(id));
        upstream(g, in, list, depth + 1);
    }
    mesh_lineage_free(&l);
}

static void downstream(graph_t *g, const mesh_product_t *p, json_t *list, int depth)
{
    if (depth > GRAPH_MAX_DEPTH)
        return;
    for (size_t i = 0; i < g->s->ndoms; i++) {
        const mesh_snap_domain_t *sd = &g->s->doms[i];
        for (size_t k = 0; k < sd->ncrefs; k++) {
            const mesh_contract_t *c = sd->crefs[k]->c;
            for (size_t j = 0; j < c->nproducts; j++) {
                const mesh_product_t *q = &c->products[j];
                mesh_lineage_t l;
                mesh_err_t err;
                if (q->derive == NULL || lineage_of(g->r->node, g->s, q, &l, &err) != MESH_OK)
                    continue;
                bool feeds = false;
                for (size_t t = 0; t < l.ntables; t++)
                    feeds |= strcmp(l.tables[t].domain, p->domain) == 0 &&
                             strcmp(l.tables[t].product, p->name) == 0;
                mesh_lineage_free(&l);
                if (!feeds || !add_node(g, q))
                    continue;
                add_edge(g, p->domain, p->name, q->domain, q->name);
                char id[130];
                snprintf(id, sizeof id, "%s.%s", q->domain, q->name);
                bool listed = false;
                size_t x;
                json_t *e;
                json_array_foreach(list, x, e) listed |= strcmp(json_string_value(e), id) == 0;
                if (!listed) {
                    json_array_append_new(list, json_string(id));
                    downstream(g, q, list, depth + 1);
                }
            }
        }
    }
}

typedef struct lookup_ctx {
    const mesh_snapshot_t *s;
} lookup_ctx_t;

static const mesh_column_t *col_lookup(void *arg, const mesh_lineage_in_t *in)
{
    lookup_ctx_t *x = arg;
    const mesh_product_t *p = mesh_snapshot_product(x->s, in->domain, in->product);
    int c = p ? mesh_product_col(p, in->column, strlen(in->column)) : -1;
    return c < 0 ? NULL : &p->cols[c];
}

static json_t *strs(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* Per column: inputs, transformation, declared and inherited classification and tags, and
 * what the declaration lacks of the inheritance. */
static json_t *columns_json(const mesh_snapshot_t *s, const mesh_product_t *p,
                            const mesh_lineage_t *l)
{
    json_t *a = json_array();
    lookup_ctx_t x = {.s = s};
    for (size_t i = 0; i < l->ncols; i++) {
        const mesh_lineage_col_t *lc = &l->cols[i];
        json_t *in = json_array();
        for (size_t k = 0; k < lc->nin; k++) {
            char id[200];
            snprintf(id, sizeof id, "%s.%s.%s", lc->in[k].domain, lc->in[k].product,
                     lc->in[k].column);
            json_array_append_new(in, json_string(id));
        }
        char cls[64];
        char **tags = NULL;
        size_t ntags = 0;
        mesh_derive_propagate(lc, col_lookup, &x, cls, sizeof cls, &tags, &ntags);
        int pc = mesh_product_col(p, lc->name, strlen(lc->name));
        const mesh_column_t *c = pc >= 0 ? &p->cols[pc] : NULL;
        json_t *missing = json_array();
        for (size_t k = 0; k < ntags; k++) {
            bool have = false;
            for (size_t t = 0; c && t < c->n_tags; t++)
                have |= strcmp(c->tags[t], tags[k]) == 0;
            if (!have)
                json_array_append_new(missing, json_string(tags[k]));
        }
        json_t *o = json_pack("{s:s,s:s,s:o}", "name", lc->name, "transformation",
                              mesh_xform_name(lc->xf), "inputs", in);
        json_object_set_new(o, "classification",
                            c && c->classification ? json_string(c->classification) : json_null());
        json_object_set_new(o, "tags", c ? strs(c->tags, c->n_tags) : json_array());
        json_object_set_new(o, "inherited_classification", cls[0] ? json_string(cls) : json_null());
        json_object_set_new(o, "inherited_tags", strs(tags, ntags));
        json_object_set_new(o, "missing_tags", missing);
        json_array_append_new(a, o);
        for (size_t k = 0; k < ntags; k++)
            free(tags[k]);
        free(tags);
    }
    return a;
}

json_t *mesh__api_lineage_summary(mesh_req_t *r, const mesh_product_t *p)
{
    graph_t *g = calloc(1, sizeof *g);
    if (g == NULL)
        return json_null();
    g->r = r;
    g->s = mesh_req_snapshot(r);
    g->nodes = json_array();
    g->edges = json_array();
    add_node(g, p);
    json_t *up = json_array(), *down = json_array();
    upstream(g, p, up, 0);
    downstream(g, p, down, 0);
    json_t *o = json_object();
    json_object_set_new(o, "derived", json_boolean(p->derive != NULL));
    if (p->derive)
        json_object_set_new(
            o, "kind", json_string(p->derive->kind == MESH_DERIVE_AGGREGATE ? "aggregate" : "sql"));
    json_object_set_new(o, "upstream", up);
    json_object_set_new(o, "downstream", down);
    json_object_set_new(o, "hidden", json_integer(g->hidden));
    json_decref(g->nodes);
    json_decref(g->edges);
    free(g);
    return o;
}

void mesh_api_lineage(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_READ, r->params[0], r->params[1]))
        return;
    const mesh_snapshot_t *s = mesh_req_snapshot(r);
    const mesh_product_t *p = mesh_snapshot_product(s, r->params[0], r->params[1]);
    if (p == NULL) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "no product %s.%s", r->params[0], r->params[1]);
        return;
    }
    graph_t *g = calloc(1, sizeof *g);
    if (g == NULL) {
        mesh_req_errorf(r, MESH_NOMEM, "out of memory");
        return;
    }
    g->r = r;
    g->s = s;
    g->nodes = json_array();
    g->edges = json_array();
    add_node(g, p);
    json_t *up = json_array(), *down = json_array();
    upstream(g, p, up, 0);
    downstream(g, p, down, 0);
    json_t *o = json_object();
    char id[130];
    snprintf(id, sizeof id, "%s.%s", p->domain, p->name);
    json_object_set_new(o, "product", json_string(id));
    json_object_set_new(o, "derived", json_boolean(p->derive != NULL));
    json_object_set_new(o, "upstream", up);
    json_object_set_new(o, "downstream", down);
    json_object_set_new(o, "nodes", g->nodes);
    json_object_set_new(o, "edges", g->edges);
    json_object_set_new(o, "hidden", json_integer(g->hidden));
    mesh_lineage_t l;
    mesh_err_t err;
    mesh_err_clear(&err);
    if (p->derive && lineage_of(r->node, s, p, &l, &err) == MESH_OK) {
        json_object_set_new(o, "column_level", json_boolean(l.column_level));
        json_object_set_new(o, "columns", columns_json(s, p, &l));
        mesh_lineage_free(&l);
    } else if (p->derive) {
        json_object_set_new(o, "lineage_error", json_string(err.msg));
    }
    if (p->derive && p->derive->kind == MESH_DERIVE_SQL) {
        json_t *d = json_pack(
            "{s:s,s:s?,s:I}", "sql", p->derive->sql, "definer", p->derive->definer, "refresh_ns",
            (json_int_t)(p->derive->refresh_ns ? p->derive->refresh_ns : 60LL * MESH_NS_PER_SEC));
        mesh_derived_status_t ds;
        if (mesh__node_derived_status(r->node, p->domain, p->name, &ds)) {
            json_t *rs = json_pack("{s:I,s:I,s:I}", "last_ns", (json_int_t)ds.last_ns, "next_ns",
                                   (json_int_t)ds.next_ns, "rows", (json_int_t)ds.rows);
            json_object_set_new(rs, "error", ds.error[0] ? json_string(ds.error) : json_null());
            json_object_set_new(rs, "mode", json_string(ds.mode));
            json_object_set_new(rs, "runs",
                                json_pack("{s:I,s:I}", "full", (json_int_t)ds.full_runs,
                                          "incremental", (json_int_t)ds.incremental_runs));
            json_object_set_new(d, "refresh", rs);
        }
        json_object_set_new(o, "definition", d);
    }
    free(g);
    reply(r, 200, o);
}

/* Answers a derive request: the contract of the derived product (st: how the lineage went),
 * or the error. Frees d and l. */
static void reply_contract(mesh_req_t *r, const mesh_snapshot_t *s, const char *domain,
                           const char *name, const char *desc, mesh_derivation_t *d,
                           mesh_lineage_t *l, mesh_status_t st, mesh_err_t *err)
{
    mesh_buf_t y;
    mesh_buf_init(&y, MESH_CONTRACT_MAX_BYTES);
    lookup_ctx_t x = {.s = s};
    mesh_derive_spec_t spec = {.domain = domain,
                               .name = name,
                               .description = desc[0] ? desc : NULL,
                               .d = d,
                               .l = l,
                               .lookup = col_lookup,
                               .arg = &x};
    if (st == MESH_OK)
        st = mesh_derive_contract(&spec, &y, err);
    mesh_lineage_free(l);
    mesh_derivation_free(d);
    if (st != MESH_OK) {
        mesh_buf_free(&y);
        mesh_req_error(r, st, err->msg, NULL);
        return;
    }
    json_t *o = json_pack("{s:s%}", "contract", y.data, y.len);
    mesh_buf_free(&y);
    reply(r, 200, o);
}

/* POST /v1/derive for a derivation by SQL: prepared as the caller, who becomes its
 * definer; its columns, types and inherited classifications make the contract. */
static void derive_sql(mesh_req_t *r, mesh_derivation_t *d, const char *desc)
{
    const char *domain = r->params[0], *name = r->params[1];
    mesh_snapshot_t *s = mesh_req_snapshot(r);
    mesh_err_t err;
    mesh_err_clear(&err);
    if ((d->definer = mesh_strdup(r->who.name)) == NULL) {
        mesh_derivation_free(d);
        mesh_req_errorf(r, MESH_NOMEM, "out of memory");
        return;
    }
    mesh_lineage_t l;
    mesh_status_t st =
        mesh_query_lineage(r->node->qpool, s, mesh_req_policy(r), &r->who, d->sql, strlen(d->sql),
                           r->node->opts.query_timeout, 1000, &l, &err);
    for (size_t k = 0; st == MESH_OK && k < l.ntables; k++)
        if (strcmp(l.tables[k].domain, domain) == 0 && strcmp(l.tables[k].product, name) == 0)
            st = mesh_err_set(&err, MESH_INVALID, "a derived product cannot read itself");
    reply_contract(r, s, domain, name, desc, d, &l, st, &err);
}

void mesh_api_derive(mesh_req_t *r)
{
    const char *domain = r->params[0], *name = r->params[1];
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, domain, NULL))
        return;
    if (!mesh_name_product_ok(name)) {
        mesh_req_errorf(r, MESH_INVALID, "'%s' is not a valid product name", name);
        return;
    }
    const char *body;
    size_t n;
    if (mesh_req_body(r, &body, &n) != MESH_OK)
        return;
    mesh_derivation_t *d = NULL;
    char desc[1024];
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_derive_request_parse(body, n, &d, desc, sizeof desc, &err);
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    const mesh_snapshot_t *s = mesh_req_snapshot(r);
    if (d->kind == MESH_DERIVE_SQL) {
        derive_sql(r, d, desc);
        return;
    }
    const mesh_product_t *src = mesh_snapshot_product(s, domain, d->source);
    if (src == NULL) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "no product %s.%s", domain, d->source);
        mesh_derivation_free(d);
        return;
    }
    if (!mesh_req_allow(r, MESH_ACT_READ, domain, d->source)) {
        mesh_derivation_free(d);
        return;
    }
    mesh_lineage_t l;
    st = mesh_derive_aggregate_lineage(domain, src, d, &l, &err);
    reply_contract(r, s, domain, name, desc, d, &l, st, &err);
}
