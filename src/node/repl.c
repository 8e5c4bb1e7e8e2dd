/*
 * repl.c - the node's replicated domains (docs/mesh.md, decision 0021): for every domain
 * whose catalog entry lists this node among its hosts, a stream replicator (mesh/repl.h)
 * that publishes the domain's writes and applies its stream here, and the domain's "write"
 * requests served for nodes that do not host it (forwarded writes, http/api_ingest.c).
 *
 * Safe by default: a replicated domain never takes a write that would bypass its stream. Until
 * its replicator runs (the mesh not configured, or not started yet) its writes are refused
 * with 503 instead of being applied here only.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "http/api_forward.h"
#include "mesh/repl.h"
#include "node/node.h"

#define REPL_MAX 256 /* replicated domains on one node */

typedef struct entry {
    char domain[MESH_NAME_MAX + 1];
    mesh_repl_t *r;
} entry_t;

struct mesh_node_repl {
    pthread_mutex_t lock; /* guards v and n */
    entry_t v[REPL_MAX];
    size_t n;
};

static bool hosts_me(const mesh_node_t *n, const mesh_domain_meta_t *m)
{
    if (m->replication[0] == '\0' || strcmp(m->replication, "none") == 0)
        return false;
    for (size_t i = 0; i < m->nhosts; i++)
        if (strcmp(m->hosts[i], n->opts.node_name) == 0)
            return true;
    return false;
}

/* ---- the replicator's callbacks (its thread) ---- */

static mesh_status_t apply(void *arg, const char *domain, uint64_t sseq, const uint8_t *p,
                           size_t len, mesh_err_t *err)
{
    mesh_node_t *n = arg;
    mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, domain);
    mesh_status_t st;
    if (sd == NULL) {
        st = mesh_err_set(err, MESH_NOT_FOUND, "no domain %s here", domain);
    } else {
        bool applied;
        st = mesh_domain_apply_stream(sd->dom, sseq, p, len, &applied, err);
    }
    mesh_snapshot_put(s);
    return st;
}

static uint64_t position(void *arg, const char *domain)
{
    mesh_node_t *n = arg;
    mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, domain);
    uint64_t pos = sd ? mesh_domain_stream_seq(sd->dom) : 0;
    mesh_snapshot_put(s);
    return pos;
}

/* The domain's replicator: publish to its stream. */
static mesh_status_t publish(void *arg, const char *domain, const uint8_t *p, size_t n,
                             const char *idem, uint64_t *sseq, bool *duplicate, mesh_err_t *err)
{
    (void)domain;
    return mesh_repl_publish(arg, p, n, idem, sseq, duplicate, err);
}

/* The placeholder of a replicated domain whose stream is not running. */
static mesh_status_t refuse(void *arg, const char *domain, const uint8_t *p, size_t n,
                            const char *idem, uint64_t *sseq, bool *duplicate, mesh_err_t *err)
{
    mesh_node_t *node = arg;
    (void)p;
    (void)n;
    (void)idem;
    (void)sseq;
    (void)duplicate;
    if (node->opts.mesh == NULL || node->opts.mesh[0] == '\0')
        return mesh_err_set(err, MESH_UNAVAILABLE,
                            "domain %s is replicated (hosts and a replication mode) but this "
                            "node is not in a mesh (no mesh option): it takes no writes",
                            domain);
    return mesh_err_set(err, MESH_UNAVAILABLE,
                        "domain %s: replication is not running on this node yet; retry", domain);
}

/* ---- forwarded writes (served for the nodes that do not host the domain) ---- */

static void serve_write(void *arg, const char *domain, const char *kind, const uint8_t *p, size_t n,
                        mesh_buf_t *reply)
{
    (void)kind;
    mesh__api_forwarded_write(arg, domain, p, n, reply);
}

/* ---- start, sync, stop ---- */

static void stop_entry(mesh_node_t *n, entry_t *e)
{
    if (n->mesh)
        mesh_mesh_unserve(n->mesh, e->domain, "write");
    mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, e->domain);
    if (sd) {
        mesh_replicator_t ph = {.publish = refuse, .arg = n};
        mesh_domain_set_replicator(sd->dom, &ph);
    }
    mesh_snapshot_put(s);
    mesh_repl_stop(e->r);
    e->r = NULL;
}

void mesh__node_repl_sync(mesh_node_t *n)
{
    if (n->repl == NULL) {
        n->repl = calloc(1, sizeof *n->repl);
        if (n->repl == NULL) {
            LOG_ERROR("mesh", "replication: out of memory");
            return;
        }
        pthread_mutex_init(&n->repl->lock, NULL);
    }
    mesh_node_repl_t *R = n->repl;
    pthread_mutex_lock(&R->lock);
    mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
    /* gone, or no longer hosted here: stop */
    for (size_t i = 0; i < R->n;) {
        const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, R->v[i].domain);
        if (sd && hosts_me(n, &sd->meta)) {
            i++;
            continue;
        }
        stop_entry(n, &R->v[i]);
        R->v[i] = R->v[--R->n];
    }
    for (size_t i = 0; i < s->ndoms; i++) {
        const mesh_snap_domain_t *sd = &s->doms[i];
        if (!hosts_me(n, &sd->meta)) {
            if (strcmp(sd->meta.replication, "none") != 0 && sd->meta.replication[0]) {
                /* replicated, but not by this node's name: refuse writes here */
                mesh_replicator_t ph = {.publish = refuse, .arg = n};
                mesh_domain_set_replicator(sd->dom, &ph);
            }
            continue;
        }
        bool known = false;
        for (size_t k = 0; k < R->n && !known; k++)
            known = strcmp(R->v[k].domain, sd->meta.name) == 0;
        if (known)
            continue;
        if (n->mesh == NULL || R->n == REPL_MAX) {
            mesh_replicator_t ph = {.publish = refuse, .arg = n};
            mesh_domain_set_replicator(sd->dom, &ph);
            continue;
        }
        entry_t *e = &R->v[R->n];
        snprintf(e->domain, sizeof e->domain, "%s", sd->meta.name);
        mesh_err_t err;
        if (mesh_repl_start(n->mesh, sd->meta.name, apply, position, n, &e->r, &err) != MESH_OK) {
            LOG_ERROR("mesh", "replication of %s: %s", sd->meta.name, err.msg);
            continue;
        }
        mesh_replicator_t rp = {.publish = publish,
                                .arg = e->r,
                                .apply_timeout_ns = n->opts.mesh_timeout,
                                .stream = mesh_repl_stream(e->r)};
        mesh_domain_set_replicator(sd->dom, &rp);
        if (mesh_mesh_serve(n->mesh, sd->meta.name, "write", serve_write, n, &err) != MESH_OK)
            LOG_WARN("mesh", "forwarded writes for %s: %s", sd->meta.name, err.msg);
        LOG_INFO("mesh", "replicating domain %s (%s) through stream %s", sd->meta.name,
                 sd->meta.replication, mesh_repl_stream(e->r));
        R->n++;
    }
    mesh_snapshot_put(s);
    pthread_mutex_unlock(&R->lock);
    mesh__node_edge_sync(n);
}

void mesh__node_repl_stop(mesh_node_t *n)
{
    mesh__node_edge_stop(n);
    if (n->repl == NULL)
        return;
    pthread_mutex_lock(&n->repl->lock);
    for (size_t i = 0; i < n->repl->n; i++)
        stop_entry(n, &n->repl->v[i]);
    n->repl->n = 0;
    pthread_mutex_unlock(&n->repl->lock);
    pthread_mutex_destroy(&n->repl->lock);
    free(n->repl);
    n->repl = NULL;
}

void mesh__node_repl_each(mesh_node_t *n,
                          void (*fn)(void *arg, const char *domain, const mesh_repl_status_t *st),
                          void *arg)
{
    if (n->repl == NULL)
        return;
    pthread_mutex_lock(&n->repl->lock);
    for (size_t i = 0; i < n->repl->n; i++) {
        mesh_repl_status_t st;
        mesh_repl_status(n->repl->v[i].r, &st);
        fn(arg, n->repl->v[i].domain, &st);
    }
    pthread_mutex_unlock(&n->repl->lock);
}
