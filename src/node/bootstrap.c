/*
 * bootstrap.c - snapshot bootstrap of a replicated domain (docs/mesh.md "Snapshot
 * bootstrap", decision 0033; the transport is mesh/snap.h).
 *
 * A hosting node whose stored stream position is below what the domain's stream still holds
 * (trimmed by its limits or purged; or a new host of a domain whose stream does not start at
 * 1) cannot catch up from the stream: the records it misses are gone. Its replicator calls
 * mesh__node_bootstrap, which
 *   1. asks another host (queue group) for a consistent copy of the domain's database and the
 *      stream sequence it holds: the serving node copies it exactly as a backup does (at a
 *      write-group boundary, mesh_domain_backup_copy) into a staging file sealed under a
 *      throwaway key, and sends its pages in clear over the mesh's TLS link;
 *   2. writes the pages through the VFS into DATA/bootstrap/<domain>.staging/ under a new data
 *      key of this node (wrapped by this node's KEK: no data key is shared between nodes), and
 *      checks size, CRC-32C and that the copy holds the announced sequence;
 *   3. makes the copy this node's own: its async origin and outbox position are cleared (the
 *      copy publishes as a new origin, like a restored backup); the chain positions of every
 *      origin it holds stay, the serving node's own among them (store/domain.c writes it at
 *      the copy), so the stream's records after the copy's sequence apply exactly once. An
 *      async node asks only once its outbox is published (the copy replaces its batches);
 *   4. renames the staging directory to DATA/bootstrap/<domain>.ready.<seq>: the commit point.
 *      Before it, a crash leaves the old state (the staging directory is deleted at the next
 *      start and the bootstrap starts over); after it, the copy is the domain's state;
 *   5. swaps the domain in the registry for the copy (mesh_registry_replace_domain), with the
 *      stream replicator set before any request sees it; the old domain refuses writes from
 *      the start of the swap and its directory goes once the last request using it ends.
 * At the next start (mesh__node_bootstrap_recover, before the domains open) the newest ready
 * copy of each domain is moved to DATA/domains/<domain>.
 *
 * Serving: only to a node the domain's hosts (in this node's catalog) name, whose request is
 * signed with the key of its registry entry; a residency-local domain only to a node of this
 * node's site. Refusals are audited (auth.fail, source node:<name>).
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/governance.h"
#include "core/log.h"
#include "core/util.h"
#include "crypt/sign.h"
#include "crypt/vfs.h"
#include "mesh/snap.h"
#include "node/node.h"
#include "store/store.h"

#define BOOT_DIR        "bootstrap"
#define OPEN_TIMEOUT_NS (60LL * MESH_NS_PER_SEC) /* the serving node copies the database first */
/* _meta keys of store/domain.c that name this copy's place in async replication */
#define META_REPL_SEQ "repl_seq"
#define META_OUTBOX   "repl_outbox"
#define META_ORIGIN   "repl_origin"
static void boot_dir(const mesh_node_t *n, char *out, size_t cap)
{
    snprintf(out, cap, "%s/" BOOT_DIR, n->opts.data_dir);
}

static bool is_host(const mesh_domain_meta_t *m, const char *node)
{
    if (m->replication[0] == '\0' || strcmp(m->replication, "none") == 0)
        return false;
    for (size_t i = 0; i < m->nhosts; i++)
        if (strcmp(m->hosts[i], node) == 0)
            return true;
    return false;
}

/* ---- serving a snapshot ---- */

typedef struct serve {
    mesh_node_t *n;
    char path[4300];
    bool attached;
    mesh_crypt_pages_t *f;
    uint32_t psz, npages, next;
} serve_t;

static void serve_close(void *state)
{
    serve_t *s = state;
    if (s == NULL)
        return;
    mesh_crypt_pages_close(s->f, NULL);
    mesh_unlink_db(s->path);
    if (s->attached)
        mesh_crypt_detach(s->path);
    free(s);
}

/* Async: whether batches acknowledged here are not yet in the stream. The copy installed by a
 * bootstrap replaces this node's, so they would be lost: it publishes them first (its outbox
 * pump goes on while the replicator waits), and they then reach the new copy from the stream. */
static bool outbox_pending(mesh_domain_t *d)
{
    uint64_t pub = 0, last = 0;
    mesh_domain_outbox_pos(d, &pub, &last);
    return last > pub;
}

static mesh_status_t serve_open(void *arg, const char *node, const char *site, const char *domain,
                                void **state, uint64_t *seq, uint64_t *bytes, mesh_err_t *err)
{
    mesh_node_t *n = arg;
    *state = NULL;
    mesh_snapshot_t *snap = mesh_registry_snapshot(n->reg);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(snap, domain);
    mesh_status_t st = MESH_OK;
    if (sd == NULL)
        st = mesh_err_set(err, MESH_NOT_FOUND, "node %s does not host domain %s", n->opts.node_name,
                          domain);
    else if (!is_host(&sd->meta, n->opts.node_name))
        st = mesh_err_set(err, MESH_NOT_FOUND, "node %s does not replicate domain %s",
                          n->opts.node_name, domain);
    else if (!is_host(&sd->meta, node))
        st = mesh_err_set(err, MESH_FORBIDDEN,
                          "node %s is not a host of domain %s (its hosts on node %s)", node, domain,
                          n->opts.node_name);
    else if ((sd->meta.residency_local || mesh_residency_domain_local(n->cat, domain)) &&
             strcmp(site, n->opts.site ? n->opts.site : "") != 0)
        st = mesh_err_set(err, MESH_FORBIDDEN,
                          "domain %s is residency local to site %s: never shipped to node %s "
                          "(site %s)",
                          domain, n->opts.site, node, site);
    serve_t *s = st == MESH_OK ? calloc(1, sizeof *s) : NULL;
    if (st == MESH_OK && s == NULL)
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
    char dir[4200];
    boot_dir(n, dir, sizeof dir);
    if (st == MESH_OK)
        st = mesh_mkdirs(dir, 0700, err);
    if (st == MESH_OK) {
        uint8_t id[8];
        char hex[17];
        mesh_random(id, sizeof id);
        mesh_hex(id, sizeof id, hex);
        s->n = n;
        snprintf(s->path, sizeof s->path, "%s/serve-%s.db", dir, hex);
    }
    if (st == MESH_OK && n->kek) {
        /* a throwaway key: the staging copy is unreadable once this process is gone */
        mesh_key_t *k = NULL;
        if (mesh_key_new(0, &k) != MESH_OK)
            st = mesh_err_set(err, MESH_IO, "no random bytes for a staging key");
        else if ((st = mesh_crypt_attach(s->path, k, err)) == MESH_OK)
            s->attached = true;
        mesh_key_unref(k);
    }
    uint64_t applied = 0, sseq = 0;
    mesh_cref_t **crefs = NULL;
    size_t ncrefs = 0;
    if (st == MESH_OK)
        st = mesh_domain_backup_copy(sd->dom, s->path, &applied, &sseq, &crefs, &ncrefs, NULL, NULL,
                                     err);
    for (size_t k = 0; k < ncrefs; k++)
        mesh_cref_put(crefs[k]);
    free(crefs);
    if (st == MESH_OK && sseq == 0)
        st = mesh_err_set(err, MESH_UNAVAILABLE, "node %s has applied nothing of %s's stream",
                          n->opts.node_name, domain);
    if (st == MESH_OK)
        st = mesh_crypt_pages_open(s->path, false, &s->f, &s->psz, &s->npages, err);
    mesh_snapshot_put(snap);
    if (st != MESH_OK) {
        serve_close(s);
        return st;
    }
    s->next = 1;
    *seq = sseq;
    *bytes = (uint64_t)s->psz * s->npages;
    *state = s;
    return MESH_OK;
}

static mesh_status_t serve_read(void *state, uint8_t *buf, size_t cap, size_t *n, mesh_err_t *err)
{
    serve_t *s = state;
    *n = 0;
    while (s->next <= s->npages && *n + s->psz <= cap) {
        mesh_status_t st = mesh_crypt_pages_read(s->f, s->next, buf + *n, err);
        if (st != MESH_OK)
            return st;
        *n += s->psz;
        s->next++;
    }
    return MESH_OK;
}

static void serve_refused(void *arg, const char *node, const char *domain, mesh_status_t code,
                          const char *why)
{
    mesh_node_t *n = arg;
    LOG_WARN("mesh", "refused a snapshot of %s to node %s: %s", domain[0] ? domain : "?",
             node[0] ? node : "?", why);
    if (n->audit == NULL)
        return;
    char source[80];
    snprintf(source, sizeof source, "node:%s", node[0] ? node : "?");
    mesh_buf_t d;
    mesh_buf_init(&d, 4096);
    mesh_buf_adds(&d, "{\"via\":\"mesh\",\"request\":\"snapshot\",\"reason\":");
    mesh_buf_add_json_str(&d, why, strlen(why));
    mesh_buf_addc(&d, '}');
    mesh_audit_rec_t rec = {.action = MESH_AUDIT_AUTH_FAIL,
                            .principal = node[0] ? node : "?",
                            .auth = "mesh-node",
                            .source = source,
                            .domain = domain[0] ? domain : NULL,
                            .status = mesh_status_http(code),
                            .details = d.data};
    mesh_audit_record(n->audit, &rec);
    mesh_buf_free(&d);
}

/* ---- fetching and installing ---- */

typedef struct fetch {
    mesh_node_t *n;
    const char *domain;
    uint64_t first; /* the stream's first sequence: the copy must reach first - 1 */
    char dir[4200]; /* the staging directory */
    char path[4300];
    bool attached;
    mesh_crypt_pages_t *f;
    uint8_t *page;
    size_t fill, psz;
    uint64_t bytes, seq;
} fetch_t;

static mesh_status_t fetch_begin(void *arg, uint64_t seq, uint64_t bytes, mesh_err_t *err)
{
    fetch_t *f = arg;
    if (seq + 1 < f->first)
        return mesh_err_set(err, MESH_CONFLICT,
                            "the snapshot holds stream sequence %llu, older than the stream's "
                            "first %llu (its host is behind too)",
                            (unsigned long long)seq, (unsigned long long)f->first);
    if (bytes < 512 || bytes % 512)
        return mesh_err_set(err, MESH_PARSE, "a snapshot of %llu bytes is not a database",
                            (unsigned long long)bytes);
    f->seq = seq;
    f->bytes = bytes;
    mesh_status_t st;
    if ((st = mesh_mkdirs(f->dir, 0700, err)) != MESH_OK)
        return st;
    snprintf(f->path, sizeof f->path, "%s/data.db", f->dir);
    if (f->n->kek) {
        /* a new data key of this node, wrapped by its KEK, as a restore does */
        mesh_keyfile_t kf;
        memset(&kf, 0, sizeof kf);
        kf.kind = 'D';
        kf.nkeys = 1;
        kf.keys[0].state = MESH_KEY_CURRENT;
        mesh_key_t *key = NULL;
        if (mesh_key_new(0, &key) != MESH_OK)
            return mesh_err_set(err, MESH_IO, "no random bytes for a data key");
        kf.keys[0].key = key;
        memcpy(kf.keys[0].file_id, mesh_key_file_id(key), MESH_FILE_ID_BYTES);
        char kpath[4300], label[96];
        snprintf(kpath, sizeof kpath, "%s/key", f->dir);
        snprintf(label, sizeof label, "domain:%s", f->domain);
        const mesh_kek_t *keks[] = {f->n->kek};
        st = mesh_keyfile_save(kpath, &kf, keks, 1, label, err);
        if (st == MESH_OK && (st = mesh_crypt_attach(f->path, key, err)) == MESH_OK)
            f->attached = true;
        mesh_key_unref(key);
        if (st != MESH_OK)
            return st;
    }
    if ((f->page = malloc(65536)) == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    return mesh_crypt_pages_open(f->path, true, &f->f, NULL, NULL, err);
}

/* Whole pages go through the VFS (sealed under this node's key); page 1 says their size. */
static mesh_status_t fetch_data(void *arg, const uint8_t *p, size_t n, mesh_err_t *err)
{
    fetch_t *f = arg;
    while (n > 0) {
        size_t want = f->psz ? f->psz : 24;
        size_t k = want - f->fill < n ? want - f->fill : n;
        memcpy(f->page + f->fill, p, k);
        f->fill += k;
        p += k;
        n -= k;
        if (f->psz == 0 && f->fill == 24) {
            uint32_t v = (uint32_t)f->page[16] << 8 | f->page[17];
            f->psz = v == 1 ? 65536 : v;
            if (f->psz < 512 || f->psz > 65536 || (f->psz & (f->psz - 1)) || f->bytes % f->psz ||
                memcmp(f->page, "SQLite format 3", 16) != 0)
                return mesh_err_set(err, MESH_CORRUPT, "the snapshot is not a database");
            continue;
        }
        if (f->psz && f->fill == f->psz) {
            mesh_status_t st = mesh_crypt_pages_write(f->f, f->page, f->psz, err);
            if (st != MESH_OK)
                return st;
            f->fill = 0;
        }
    }
    return MESH_OK;
}

static void fetch_free(fetch_t *f)
{
    mesh_crypt_pages_close(f->f, NULL);
    f->f = NULL;
    if (f->attached)
        mesh_crypt_detach(f->path);
    f->attached = false;
    if (f->page)
        mesh_cleanse(f->page, 65536);
    free(f->page);
    f->page = NULL;
}

/* The copy becomes this node's: it holds seq, and it is not the serving node's async origin. */
static mesh_status_t make_own(fetch_t *f, mesh_err_t *err)
{
    mesh_store_opts_t so = {.sync_full = true};
    mesh_store_t *s = NULL;
    mesh_status_t st = mesh_store_open(f->path, &so, &s, err);
    int64_t held = 0;
    if (st == MESH_OK)
        st = mesh_store_meta_get(s, META_REPL_SEQ, &held, err);
    if (st == MESH_OK && (uint64_t)held != f->seq)
        st = mesh_err_set(err, MESH_CORRUPT,
                          "the snapshot holds stream sequence %lld, not the %llu announced",
                          (long long)held, (unsigned long long)f->seq);
    if (st == MESH_OK)
        st = mesh_store_meta_put(s, META_ORIGIN, 0, err);
    if (st == MESH_OK)
        st = mesh_store_meta_put(s, META_OUTBOX, 0, err);
    mesh_store_close(s);
    return st;
}

/* The domain's writes go to its stream (as node/repl.c sets them up). */
typedef struct rebind {
    mesh_node_t *n;
    mesh_repl_t *r;
    bool async;
} rebind_t;

static mesh_status_t publish(void *arg, const char *domain, const uint8_t *p, size_t n,
                             const char *idem, uint64_t *sseq, bool *duplicate, mesh_err_t *err)
{
    (void)domain;
    return mesh_repl_publish(arg, p, n, idem, sseq, duplicate, err);
}

static void kick(void *arg)
{
    mesh_repl_kick(arg);
}

static mesh_status_t refuse(void *arg, const char *domain, const uint8_t *p, size_t n,
                            const char *idem, uint64_t *sseq, bool *duplicate, mesh_err_t *err)
{
    (void)arg;
    (void)p;
    (void)n;
    (void)idem;
    (void)sseq;
    (void)duplicate;
    return mesh_err_set(err, MESH_UNAVAILABLE,
                        "domain %s is being replaced by a snapshot on this node; retry", domain);
}

static void rebind(void *arg, mesh_domain_t *d)
{
    rebind_t *b = arg;
    mesh_replicator_t rp = {.publish = publish,
                            .arg = b->r,
                            .apply_timeout_ns = b->n->opts.mesh_timeout,
                            .stream = mesh_repl_stream(b->r),
                            .async = b->async,
                            .kick = b->async ? kick : NULL};
    mesh_domain_set_replicator(d, &rp);
}

typedef struct swap {
    mesh_node_t *n;
    const char *domain, *dir;
    rebind_t b;
    mesh_status_t st;
    mesh_err_t err;
} swap_t;

static void swap(void *arg)
{
    swap_t *w = arg;
    mesh_snapshot_t *snap = mesh_registry_snapshot(w->n->reg);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(snap, w->domain);
    if (sd) {
        mesh_replicator_t ph = {.publish = refuse, .arg = w->n};
        mesh_domain_set_replicator(sd->dom, &ph);
    }
    mesh_err_clear(&w->err);
    w->st = mesh_registry_replace_domain(w->n->reg, w->domain, w->dir, rebind, &w->b, &w->err);
    if (w->st != MESH_OK && sd) {
        rebind(&w->b, sd->dom); /* the old copy serves on */
        if (w->st != MESH_NOT_FOUND)
            mesh_rm_tree(w->dir); /* it does not open: a restart must not install it */
    }
    mesh_snapshot_put(snap);
}

mesh_status_t mesh__node_bootstrap(void *arg, const char *domain, mesh_repl_t *r, uint64_t first,
                                   mesh_err_t *err)
{
    mesh_node_t *n = arg;
    if (n->snap == NULL)
        return mesh_err_set(err, MESH_UNAVAILABLE, "this node is not in a mesh");
    mesh_snapshot_t *snap = mesh_registry_snapshot(n->reg);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(snap, domain);
    bool async = sd && strcmp(sd->meta.replication, "async") == 0;
    mesh_status_t st = sd ? MESH_OK : mesh_err_set(err, MESH_NOT_FOUND, "no domain %s", domain);
    if (st == MESH_OK && async && outbox_pending(sd->dom))
        st = mesh_err_set(err, MESH_UNAVAILABLE,
                          "batches written on this node are not all published yet: the "
                          "snapshot would replace them (it waits for the outbox)");
    mesh_snapshot_put(snap);
    if (st != MESH_OK)
        return st;
    fetch_t f = {.n = n, .domain = domain, .first = first};
    char bdir[4200], ready[4400];
    boot_dir(n, bdir, sizeof bdir);
    snprintf(f.dir, sizeof f.dir, "%s/%s.staging", bdir, domain);
    mesh_rm_tree(f.dir);
    int64_t t0 = mesh_mono_ns();
    LOG_INFO("mesh",
             "domain %s: the stream starts at %llu, past this node's position: asking "
             "another host for a snapshot",
             domain, (unsigned long long)first);
    mesh_snap_sink_t sink = {.arg = &f, .begin = fetch_begin, .data = fetch_data};
    uint64_t seq = 0;
    int64_t open_timeout = 6 * n->opts.mesh_timeout;
    if (open_timeout < OPEN_TIMEOUT_NS)
        open_timeout = OPEN_TIMEOUT_NS;
    st = mesh_snap_fetch(n->snap, domain, open_timeout, &sink, &seq, err);
    if (st == MESH_OK && (f.fill != 0 || f.psz == 0))
        st = mesh_err_set(err, MESH_CORRUPT, "the snapshot of %s is not whole pages", domain);
    if (st == MESH_OK) {
        mesh_crypt_pages_t *pf = f.f;
        f.f = NULL; /* closed (and freed) whatever the outcome */
        if ((st = mesh_crypt_pages_close(pf, err)) == MESH_OK)
            st = make_own(&f, err);
    }
    fetch_free(&f);
    snprintf(ready, sizeof ready, "%s/%s.ready.%llu", bdir, domain, (unsigned long long)seq);
    if (st == MESH_OK && mesh_fsync_dir(f.dir) != MESH_OK)
        st = mesh_err_set(err, MESH_IO, "fsync %s", f.dir);
    mesh_snapshot_t *held = NULL; /* async: the old copy, refusing writes until the swap */
    if (st == MESH_OK && async) {
        /* again just before the commit point, with writes refused from here (and every write
         * already past the door landed): a batch acknowledged here during the transfer, not
         * yet published, would be replaced by the copy */
        held = mesh_registry_snapshot(n->reg);
        sd = mesh_snapshot_domain(held, domain);
        if (sd) {
            mesh_replicator_t ph = {.publish = refuse, .arg = n};
            mesh_domain_set_replicator(sd->dom, &ph);
            mesh_domain_drain_writes(sd->dom);
            if (outbox_pending(sd->dom))
                st = mesh_err_set(err, MESH_UNAVAILABLE,
                                  "batches written on this node during the snapshot's transfer "
                                  "are not all published yet: it asks again");
        }
    }
    if (st == MESH_OK) {
        mesh_rm_tree(ready);
        /* the commit point: from here a restart installs this copy */
        if (rename(f.dir, ready) != 0)
            st = mesh_err_set(err, MESH_IO, "rename %s: %s", f.dir, strerror(errno));
        else
            mesh_fsync_dir(bdir);
    }
    if (st != MESH_OK) {
        if (held) {
            const mesh_snap_domain_t *hd = mesh_snapshot_domain(held, domain);
            rebind_t b = {.n = n, .r = r, .async = async};
            if (hd)
                rebind(&b, hd->dom); /* no commit: the old copy serves on */
            mesh_snapshot_put(held);
        }
        mesh_rm_tree(f.dir);
        return st;
    }
    if (held)
        mesh_snapshot_put(held);
    /* the swap, while no replicator of this node starts or stops (a change of the domain's
     * hosts or mode, the node stopping): the old copy refuses writes from now on; the new
     * one gets the replicator before any request can see it */
    swap_t sw = {.n = n, .domain = domain, .dir = ready, .b = {.n = n, .r = r, .async = async}};
    if (!mesh__node_repl_exclusive(n, domain, r, swap, &sw)) {
        mesh_rm_tree(ready); /* the domain's hosts or mode changed: it decides again */
        return mesh_err_set(err, MESH_UNAVAILABLE, "replication of %s stopped during its bootstrap",
                            domain);
    }
    st = sw.st;
    if (st != MESH_OK && err)
        *err = sw.err;
    if (st != MESH_OK)
        return st;
    int64_t ms = (mesh_mono_ns() - t0) / 1000000;
    LOG_INFO("mesh",
             "domain %s: installed a snapshot at stream sequence %llu (%llu bytes in "
             "%lld ms); consuming the stream after it",
             domain, (unsigned long long)seq, (unsigned long long)f.bytes, (long long)ms);
    return MESH_OK;
}

/* ---- start, heartbeat, stop, recovery ---- */

/* Guards n->snap against the heartbeat (the mesh thread) while the node stops. */
static pthread_mutex_t snap_lock = PTHREAD_MUTEX_INITIALIZER;

mesh_status_t mesh__node_bootstrap_start(mesh_node_t *n, mesh_err_t *err)
{
    /* a handle of its own on the node's key (node/fed.c made the file): the federation frees
     * its handle before the replicators, which may be fetching a snapshot, stop */
    char path[4200];
    snprintf(path, sizeof path, "%s/node_sign.key", n->opts.data_dir);
    mesh_status_t st = mesh_signkey_open(path, &n->snap_key, err);
    if (st != MESH_OK)
        return st;
    mesh_snap_handler_t h = {.arg = n,
                             .open = serve_open,
                             .read = serve_read,
                             .close = serve_close,
                             .refused = serve_refused};
    mesh_snap_t *s = NULL;
    st = mesh_snap_create(n->snap_key, &h, &s, err);
    pthread_mutex_lock(&snap_lock);
    n->snap = s;
    pthread_mutex_unlock(&snap_lock);
    return st;
}

void mesh__node_bootstrap_heartbeat(mesh_node_t *n, mesh_snapshot_t *s)
{
    const char **names = calloc(s->ndoms ? s->ndoms : 1, sizeof *names);
    size_t nn = 0;
    for (size_t i = 0; names && i < s->ndoms; i++)
        if (is_host(&s->doms[i].meta, n->opts.node_name))
            names[nn++] = s->doms[i].meta.name;
    pthread_mutex_lock(&snap_lock);
    if (names && n->snap)
        mesh_snap_serve(n->snap, names, nn);
    pthread_mutex_unlock(&snap_lock);
    free(names);
}

void mesh__node_bootstrap_stop(mesh_node_t *n)
{
    pthread_mutex_lock(&snap_lock);
    mesh_snap_t *s = n->snap;
    n->snap = NULL;
    pthread_mutex_unlock(&snap_lock);
    mesh_snap_destroy(s);
    mesh_signkey_free(n->snap_key);
    n->snap_key = NULL;
}

/* "<domain>.ready.<seq>": the domain and the sequence. */
static bool ready_name(const char *name, char *domain, size_t cap, uint64_t *seq)
{
    const char *p = strstr(name, ".ready.");
    if (p == NULL || (size_t)(p - name) >= cap)
        return false;
    snprintf(domain, cap, "%.*s", (int)(p - name), name);
    return mesh_name_domain_ok(domain) && mesh_parse_u64(p + 7, strlen(p + 7), seq) == MESH_OK;
}

void mesh__node_bootstrap_domain_dir(const mesh_node_t *n, const char *name, char *out, size_t cap)
{
    char bdir[4200];
    boot_dir(n, bdir, sizeof bdir);
    snprintf(out, cap, "%s/domains/%s", n->opts.data_dir, name);
    DIR *d = opendir(bdir);
    struct dirent *e;
    uint64_t best = 0;
    while (d && (e = readdir(d)) != NULL) {
        char dom[MESH_NAME_MAX + 1];
        uint64_t seq;
        if (ready_name(e->d_name, dom, sizeof dom, &seq) && strcmp(dom, name) == 0 && seq >= best) {
            best = seq;
            snprintf(out, cap, "%s/%s", bdir, e->d_name);
        }
    }
    if (d)
        closedir(d);
}

mesh_status_t mesh__node_bootstrap_recover(mesh_node_t *n, mesh_err_t *err)
{
    char bdir[4200];
    boot_dir(n, bdir, sizeof bdir);
    DIR *d = opendir(bdir);
    if (d == NULL)
        return MESH_OK;
    /* the newest ready copy of each domain; staging copies and served copies go */
    enum { MAXD = 256 };
    struct {
        char domain[MESH_NAME_MAX + 1];
        uint64_t seq;
    } best[MAXD];
    size_t nb = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char p[4400], dom[MESH_NAME_MAX + 1];
        uint64_t seq;
        snprintf(p, sizeof p, "%s/%s", bdir, e->d_name);
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "serve-", 6) == 0) {
            unlink(p);
        } else if (len > 8 && strcmp(e->d_name + len - 8, ".staging") == 0) {
            mesh_rm_tree(p);
            LOG_WARN("mesh", "removed %s (an interrupted snapshot bootstrap: it starts over)", p);
        } else if (ready_name(e->d_name, dom, sizeof dom, &seq)) {
            size_t k = 0;
            while (k < nb && strcmp(best[k].domain, dom) != 0)
                k++;
            if (k == nb && nb < MAXD) {
                snprintf(best[nb].domain, sizeof best[nb].domain, "%s", dom);
                best[nb++].seq = seq;
            } else if (k < nb && seq > best[k].seq) {
                best[k].seq = seq;
            }
        }
    }
    closedir(d);
    char doms[4200];
    snprintf(doms, sizeof doms, "%s/domains", n->opts.data_dir);
    mesh_status_t st = mesh_mkdirs(doms, 0700, err);
    for (size_t k = 0; k < nb && st == MESH_OK; k++) {
        char ready[4400], target[4400], old[4400];
        snprintf(ready, sizeof ready, "%s/%s.ready.%llu", bdir, best[k].domain,
                 (unsigned long long)best[k].seq);
        snprintf(target, sizeof target, "%s/%s", doms, best[k].domain);
        snprintf(old, sizeof old, "%s/%s.old", bdir, best[k].domain);
        /* target -> old, ready -> target: a crash between leaves ready and old, and the
         * next start does the rest */
        struct stat sb;
        if (stat(target, &sb) == 0) {
            mesh_rm_tree(old);
            if (rename(target, old) != 0) {
                st = mesh_err_set(err, MESH_IO, "rename %s: %s", target, strerror(errno));
                break;
            }
        }
        if (rename(ready, target) != 0) {
            st = mesh_err_set(err, MESH_IO, "rename %s: %s", ready, strerror(errno));
            break;
        }
        mesh_fsync_dir(doms);
        mesh_fsync_dir(bdir);
        mesh_rm_tree(old);
        LOG_INFO("mesh", "domain %s: the snapshot at stream sequence %llu moved into %s",
                 best[k].domain, (unsigned long long)best[k].seq, target);
    }
    /* older ready copies, and an old copy a finished move left */
    d = st == MESH_OK ? opendir(bdir) : NULL;
    while (d && (e = readdir(d)) != NULL) {
        char p[4400], dom[MESH_NAME_MAX + 1], target[4400];
        uint64_t seq;
        size_t len = strlen(e->d_name);
        snprintf(p, sizeof p, "%s/%s", bdir, e->d_name);
        if (ready_name(e->d_name, dom, sizeof dom, &seq)) {
            mesh_rm_tree(p);
        } else if (len > 4 && strcmp(e->d_name + len - 4, ".old") == 0) {
            snprintf(target, sizeof target, "%s/%.*s", doms, (int)(len - 4), e->d_name);
            if (access(target, F_OK) == 0)
                mesh_rm_tree(p);
            else if (rename(p, target) != 0) /* never left without a copy */
                LOG_WARN("mesh", "rename %s: %s", p, strerror(errno));
        }
    }
    if (d)
        closedir(d);
    return st;
}
