/*
 * edge.c - edge offline (docs/mesh.md, decision 0025): the node's part in the hub's copies of
 * its domains. For every replicated domain hosted by this node that is not residency local,
 * a mesh_source (mesh/source.h) makes sure the hub sources the domain's stream when this
 * node is behind a leaf server (on a hub node it finds nothing to do). A residency-local
 * domain never gets one; the generated leaf config also keeps its subjects off the link.
 */
#include <stdlib.h>
#include <string.h>

#include "catalog/governance.h"
#include "core/log.h"
#include "core/util.h"
#include "mesh/source.h"
#include "node/node.h"

#define EDGE_MAX 256 /* sourced domains on one node */

typedef struct edge_entry {
    char domain[MESH_NAME_MAX + 1];
    mesh_source_t *s;
} edge_entry_t;

struct mesh_node_edge {
    pthread_mutex_t lock; /* guards v and n */
    edge_entry_t v[EDGE_MAX];
    size_t n;
};

/* Residency local: the domain's own field (set at creation) or the governance policy of the
 * domain (meshctl governance D --residency local, docs/governance.md); either keeps it on
 * its site. A catalog error answers local (deny by default). */
static bool domain_local(mesh_node_t *n, const char *domain)
{
    bool local = mesh_residency_domain_local(n->cat, domain);
    mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, domain);
    local = local || sd == NULL || sd->meta.residency_local;
    mesh_snapshot_put(s);
    return local;
}

static bool allowed(void *arg, const char *domain)
{
    return !domain_local(arg, domain);
}

/* Whether the hub should keep a copy of the domain: replicated, hosted here, not local. */
static bool sourced(mesh_node_t *n, const mesh_domain_meta_t *m)
{
    if (m->residency_local || m->replication[0] == '\0' || strcmp(m->replication, "none") == 0 ||
        mesh_residency_domain_local(n->cat, m->name))
        return false;
    for (size_t i = 0; i < m->nhosts; i++)
        if (strcmp(m->hosts[i], n->opts.node_name) == 0)
            return true;
    return false;
}

void mesh__node_edge_sync(mesh_node_t *n)
{
    if (n->mesh == NULL)
        return;
    if (n->edge == NULL) {
        if ((n->edge = calloc(1, sizeof *n->edge)) == NULL) {
            LOG_ERROR("mesh", "edge copies: out of memory");
            return;
        }
        pthread_mutex_init(&n->edge->lock, NULL);
    }
    mesh_node_edge_t *E = n->edge;
    pthread_mutex_lock(&E->lock);
    mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
    for (size_t i = 0; i < E->n;) {
        const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, E->v[i].domain);
        if (sd && sourced(n, &sd->meta)) {
            i++;
            continue;
        }
        mesh_source_stop(E->v[i].s);
        E->v[i] = E->v[--E->n];
    }
    for (size_t i = 0; i < s->ndoms && E->n < EDGE_MAX; i++) {
        const mesh_snap_domain_t *sd = &s->doms[i];
        if (!sourced(n, &sd->meta))
            continue;
        bool known = false;
        for (size_t k = 0; k < E->n && !known; k++)
            known = strcmp(E->v[k].domain, sd->meta.name) == 0;
        if (known)
            continue;
        edge_entry_t *e = &E->v[E->n];
        snprintf(e->domain, sizeof e->domain, "%s", sd->meta.name);
        mesh_err_t err;
        if (mesh_source_start(n->mesh, sd->meta.name, allowed, n, &e->s, &err) != MESH_OK) {
            LOG_ERROR("mesh", "hub copy of %s: %s", sd->meta.name, err.msg);
            continue;
        }
        E->n++;
    }
    mesh_snapshot_put(s);
    pthread_mutex_unlock(&E->lock);
}

void mesh__node_edge_stop(mesh_node_t *n)
{
    if (n->edge == NULL)
        return;
    pthread_mutex_lock(&n->edge->lock);
    for (size_t i = 0; i < n->edge->n; i++)
        mesh_source_stop(n->edge->v[i].s);
    n->edge->n = 0;
    pthread_mutex_unlock(&n->edge->lock);
    pthread_mutex_destroy(&n->edge->lock);
    free(n->edge);
    n->edge = NULL;
}

void mesh__node_edge_each(mesh_node_t *n,
                          void (*fn)(void *arg, const char *domain,
                                     const struct mesh_source_status *st),
                          void *arg)
{
    if (n->edge == NULL)
        return;
    pthread_mutex_lock(&n->edge->lock);
    for (size_t i = 0; i < n->edge->n; i++) {
        mesh_source_status_t st;
        mesh_source_status(n->edge->v[i].s, &st);
        fn(arg, n->edge->v[i].domain, &st);
    }
    pthread_mutex_unlock(&n->edge->lock);
}
