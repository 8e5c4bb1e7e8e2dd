/*
 * repl.c - the node's replicated domains (docs/mesh.md, decision 0021): for every domain
 * whose catalog entry lists this node among its hosts, a stream replicator (mesh/repl.h)
 * that publishes the domain's writes and applies its stream here, and the domain's "write"
 * requests served for nodes that do not host it (forwarded writes, http/api_ingest.c).
 *
 * Safe by default: a replicated domain never takes a write that would bypass its stream. Until
 * its replicator runs (the mesh not configured, or not started yet) its writes are refused
 * with 503 instead of being applied here only.
 *
 * Async domains take writes whenever the replicator runs (connected or not): they are durable
 * in the domain's log when acknowledged, and the replicator's outbox pump publishes them from
 * the log (pump below) in runs of up to OUTBOX_RUN messages, consecutive batches grouped in one
 * message (decision 0040).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/util.h"
#include "http/api_forward.h"
#include "mesh/repl.h"
#include "node/health.h"
#include "node/node.h"
#include "store/group.h"

#define REPL_MAX       256               /* replicated domains on one node */
#define OUTBOX_RUN     256               /* messages published in one run, at most */
#define OUTBOX_RUN_MAX (8 * 1024 * 1024) /* and about this many bytes of batches */

typedef struct entry {
    char domain[MESH_NAME_MAX + 1];
    char sig[8 + MESH_DOMAIN_HOSTS_MAX * 65]; /* mode and hosts it was started with */
    mesh_repl_t *r;
} entry_t;

/* The mode and hosts of a domain as one text: a change restarts its replicator. */
static void signature(const mesh_domain_meta_t *m, char *out, size_t cap)
{
    size_t k = (size_t)snprintf(out, cap, "%s", m->replication);
    for (size_t i = 0; i < m->nhosts && k < cap; i++)
        k += (size_t)snprintf(out + k, cap - k, ",%s", m->hosts[i]);
}

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

static mesh_status_t apply(void *arg, const char *domain, const mesh_repl_rec_t *v, size_t nv,
                           size_t *done, mesh_err_t *err)
{
    mesh_node_t *n = arg;
    *done = 0;
    uint64_t *seqs = calloc(nv, sizeof *seqs);
    const uint8_t **ps = calloc(nv, sizeof *ps);
    size_t *ns = calloc(nv, sizeof *ns);
    const char **ids = calloc(nv, sizeof *ids);
    mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, domain);
    mesh_status_t st;
    if (seqs == NULL || ps == NULL || ns == NULL || ids == NULL) {
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
    } else if (sd == NULL) {
        st = mesh_err_set(err, MESH_NOT_FOUND, "no domain %s here", domain);
    } else {
        for (size_t i = 0; i < nv; i++) {
            seqs[i] = v[i].seq;
            ps[i] = v[i].p;
            ns[i] = v[i].n;
            ids[i] = v[i].id;
        }
        st = mesh_domain_apply_stream_many(sd->dom, seqs, ps, ns, ids, nv, done, err);
    }
    mesh_snapshot_put(s);
    free(seqs);
    free(ps);
    free(ns);
    free(ids);
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

/* Divergence checks: what the domain applied at a stream sequence, and moving it back. */
static int stream_fp(void *arg, const char *domain, uint64_t seq, uint64_t *fp)
{
    mesh_node_t *n = arg;
    mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, domain);
    int k = sd ? mesh_domain_stream_fp(sd->dom, seq, fp) : -1;
    mesh_snapshot_put(s);
    return k;
}

static mesh_status_t rewind_to(void *arg, const char *domain, uint64_t seq, mesh_err_t *err)
{
    mesh_node_t *n = arg;
    mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, domain);
    mesh_status_t st = sd ? mesh_domain_stream_rewind(sd->dom, seq, err)
                          : mesh_err_set(err, MESH_NOT_FOUND, "no domain %s here", domain);
    mesh_snapshot_put(s);
    return st;
}

/* The domain's replicator: publish to its stream. */
static mesh_status_t publish(void *arg, const char *domain, const uint8_t *p, size_t n,
                             const char *idem, uint64_t *sseq, bool *duplicate, mesh_err_t *err)
{
    (void)domain;
    return mesh_repl_publish(arg, p, n, idem, sseq, duplicate, err);
}

/* Async: whether a batch's record can ever be published. */
static mesh_status_t fits(void *arg, const uint8_t *p, size_t n, mesh_err_t *err)
{
    return mesh_repl_fits(arg, p, n, err);
}

/* Async: wakes the domain's outbox pump after a local write. */
static void kick(void *arg)
{
    mesh_repl_kick(arg);
}

/* Async: reads the next run of the domain's outbox (batches grouped up to group_bytes, 0:
 * alone) and publishes it. *any: something was read; *full: the run was as large as a run gets
 * (more is waiting). Refused as too large, the outbox moves past the messages acknowledged
 * before the one refused. */
static mesh_status_t pump_run_once(const mesh_snap_domain_t *sd, mesh_repl_t *r, size_t group_bytes,
                                   bool *any, bool *full, bool *grouped, mesh_err_t *err)
{
    mesh_outbox_rec_t *v = NULL;
    size_t nv = 0;
    uint64_t origin = 0;
    *any = *full = *grouped = false;
    mesh_status_t st = mesh_domain_outbox_read(sd->dom, OUTBOX_RUN, OUTBOX_RUN_MAX, group_bytes, &v,
                                               &nv, &origin, err);
    if (st == MESH_OK && nv > 0) {
        *any = true;
        const uint8_t *pv[OUTBOX_RUN];
        size_t lv[OUTBOX_RUN], batches = 0, bytes = 0, acked = 0;
        for (size_t i = 0; i < nv; i++) {
            pv[i] = (const uint8_t *)v[i].msg.data;
            lv[i] = v[i].msg.len;
            batches += v[i].batches;
            bytes += v[i].msg.len;
            *grouped = *grouped || v[i].batches > 1;
        }
        *full = nv == OUTBOX_RUN || bytes >= OUTBOX_RUN_MAX - MESH_GROUP_BYTES;
        st = mesh_repl_publish_run(r, pv, lv, nv, batches, &acked, err);
        if (acked > 0) {
            mesh_err_t e;
            if (mesh_domain_outbox_published(sd->dom, v[acked - 1].seq, &e) != MESH_OK &&
                st == MESH_OK)
                st = mesh_err_set(err, e.code, "%s", e.msg);
        }
    }
    mesh_domain_outbox_free(v, nv);
    return st;
}

/* Async: publishes the next run of the domain's outbox (the replicator's pump thread). Its
 * batches travel in groups (decision 0040), alone when a group is larger than the servers
 * take. Returns 2 after a full run (publish the next one at once), 1 after a smaller one (the
 * pump waits a little for more batches to group), 0 when idle, -1 on a failure. */
static int pump(void *arg, const char *domain, mesh_repl_t *r)
{
    mesh_node_t *n = arg;
    mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, domain);
    int more = 0;
    bool any = false, full = false, grouped = false;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st =
        sd ? pump_run_once(sd, r, MESH_GROUP_BYTES, &any, &full, &grouped, &err) : MESH_OK;
    if (st == MESH_TOO_LARGE) {
        if (grouped)
            LOG_INFO("mesh",
                     "outbox of %s: a group of batches is larger than the mesh servers' max "
                     "payload: its batches go alone",
                     domain);
        st = pump_run_once(sd, r, 0, &any, &full, &grouped, &err);
    }
    if (st != MESH_OK) {
        more = -1;
        if (any && st != MESH_TOO_LARGE)
            LOG_DEBUG("mesh", "outbox of %s: %s (published again later)", domain, err.msg);
        else
            LOG_WARN("mesh", "outbox of %s: %s", domain, err.msg);
    } else if (any) {
        more = full ? 2 : 1;
    }
    mesh_snapshot_put(s);
    return more;
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
    /* async: a write that came between a change's check and now still gets published (when
     * the link is up; a copy the pump also sent is skipped by the replicas' chains) */
    for (int i = 0; i < 64 && strncmp(e->sig, "async", 5) == 0; i++)
        if (pump(n, e->domain, e->r) < 1)
            break;
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
        char sig[sizeof R->v[i].sig];
        if (sd)
            signature(&sd->meta, sig, sizeof sig);
        if (sd && hosts_me(n, &sd->meta) && strcmp(sig, R->v[i].sig) == 0) {
            i++;
            continue;
        }
        if (sd)
            LOG_INFO("mesh", "domain %s: hosts or mode changed (%s): replication restarted",
                     R->v[i].domain, sig);
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
            } else {
                mesh_domain_set_replicator(sd->dom, NULL); /* local (again, after an update) */
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
        signature(&sd->meta, e->sig, sizeof e->sig);
        mesh_err_t err;
        if (mesh_repl_start(n->mesh, sd->meta.name, apply, position, n, &e->r, &err) != MESH_OK) {
            LOG_ERROR("mesh", "replication of %s: %s", sd->meta.name, err.msg);
            continue;
        }
        bool async = strcmp(sd->meta.replication, "async") == 0;
        mesh_repl_set_check(e->r, stream_fp, rewind_to);
        mesh_repl_set_hosts(e->r, sd->meta.hosts, sd->meta.nhosts);
        mesh_repl_set_bootstrap(e->r, mesh__node_bootstrap); /* node/bootstrap.c */
        if (async && mesh_repl_start_outbox(e->r, pump, &err) != MESH_OK) {
            LOG_ERROR("mesh", "replication of %s: %s", sd->meta.name, err.msg);
            mesh_repl_stop(e->r);
            e->r = NULL;
            continue;
        }
        mesh_replicator_t rp = {.publish = publish,
                                .arg = e->r,
                                .apply_timeout_ns = n->opts.mesh_timeout,
                                .stream = mesh_repl_stream(e->r),
                                .async = async,
                                .kick = async ? kick : NULL,
                                .fits = async ? fits : NULL};
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
        mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
        const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, n->repl->v[i].domain);
        if (sd && strcmp(sd->meta.replication, "async") == 0) {
            uint64_t pub, last;
            mesh_domain_outbox_pos(sd->dom, &pub, &last);
            st.async = true;
            st.outbox_seq = pub;
            st.outbox_pending = last > pub ? (last == UINT64_MAX ? 1 : last - pub) : 0;
        }
        mesh_snapshot_put(s);
        fn(arg, n->repl->v[i].domain, &st);
    }
    pthread_mutex_unlock(&n->repl->lock);
}

void mesh__node_repl_health(mesh_node_t *n)
{
    if (n->repl == NULL || n->health == NULL)
        return;
    pthread_mutex_lock(&n->repl->lock);
    for (size_t i = 0; i < n->repl->n; i++) {
        mesh_repl_status_t st;
        mesh_repl_status(n->repl->v[i].r, &st);
        for (size_t k = 0; k < st.nreplicas; k++)
            if (st.rep[k].lag_s >= 0)
                mesh_health_set_lag(n->health, n->repl->v[i].domain, st.rep[k].name,
                                    st.rep[k].lag_s);
    }
    pthread_mutex_unlock(&n->repl->lock);
}

bool mesh__node_repl_exclusive(mesh_node_t *n, const char *domain, mesh_repl_t *r,
                               void (*fn)(void *arg), void *arg)
{
    mesh_node_repl_t *R = n->repl;
    if (R == NULL)
        return false;
    /* not a blocking lock: a sync holding it may be joining r's thread (this one) */
    while (pthread_mutex_trylock(&R->lock) != 0) {
        if (mesh_repl_stopping(r))
            return false;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    bool mine = false;
    for (size_t i = 0; i < R->n && !mine; i++)
        mine = R->v[i].r == r && strcmp(R->v[i].domain, domain) == 0;
    mine = mine && !mesh_repl_stopping(r);
    if (mine)
        fn(arg);
    pthread_mutex_unlock(&R->lock);
    return mine;
}
