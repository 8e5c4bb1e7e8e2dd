/*
 * node.c - starting, running and stopping a node.
 */
#include "node/node.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "http/server.h"

static int lock_fd = -1;

/* One meshd per data directory: a second one would corrupt nothing (SQLite locks) but would
 * fight over the logs. Also taken by `meshd --verify` (node/verify.c). */
mesh_status_t mesh__node_lock_data_dir(const char *dir, mesh_err_t *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd < 0)
        return mesh_err_set(err, MESH_IO, "%s: %s", path, strerror(errno));
    if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0)
        return mesh_err_set(err, MESH_CONFLICT, "%s is in use by another meshd (lock %s held)", dir,
                            path);
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(lock_fd, 0) == 0)
        mesh_write_all(lock_fd, pid, (size_t)n);
    return MESH_OK;
}

static mesh_status_t read_token_file(const char *path, char *out, size_t cap, mesh_err_t *err)
{
    char *text;
    mesh_status_t st = mesh_read_file(path, 4096, &text, NULL, err);
    if (st != MESH_OK)
        return st;
    size_t n = strcspn(text, "\r\n");
    if (n >= cap) {
        free(text);
        return mesh_err_set(err, MESH_INVALID, "%s: token too long", path);
    }
    memcpy(out, text, n);
    out[n] = '\0';
    free(text);
    return MESH_OK;
}

/* Ensures the admin principal and its token: the configured one, or on first start a
 * generated one, printed once. */
static mesh_status_t bootstrap_admin(mesh_node_t *n, mesh_err_t *err)
{
    int64_t admin_id;
    mesh_status_t st =
        mesh_catalog_principal_put(n->cat, "admin", "service", "admin", &admin_id, err);
    if (st != MESH_OK)
        return st;
    char token[MESH_TOKEN_MAX + 2] = "";
    if (n->opts.admin_token && *n->opts.admin_token) {
        snprintf(token, sizeof token, "%s", n->opts.admin_token);
    } else if (n->opts.admin_token_file && *n->opts.admin_token_file) {
        if ((st = read_token_file(n->opts.admin_token_file, token, sizeof token, err)) != MESH_OK)
            return st;
    }
    if (*token) {
        if ((st = mesh_token_check_shape(token, strlen(token), err)) != MESH_OK) {
            mesh_err_prefix(err, "admin token: ");
            return st;
        }
        st = mesh_auth_add_token(n->auth, admin_id, token, 0, "admin (configured)", err);
        memset(token, 0, sizeof token);
        if (st == MESH_CONFLICT) {
            /* a revoked token stays revoked: start, but without it */
            LOG_WARN("node", "the configured admin token is not installed: %s", err->msg);
            return MESH_OK;
        }
        return st;
    }
    if (mesh_catalog_token_count(n->cat) > 0)
        return MESH_OK;
    if (mesh_token_generate(token, sizeof token) != MESH_OK)
        return mesh_err_set(err, MESH_IO, "cannot generate a token");
    st = mesh_auth_add_token(n->auth, admin_id, token, 0, "admin (generated)", err);
    if (st == MESH_OK) {
        /* printed once, to stdout only; it is stored as a salted hash */
        printf("meshd: first start: admin API token (shown once, keep it safe):\n%s\n", token);
        fflush(stdout);
    }
    memset(token, 0, sizeof token);
    return st;
}

mesh_status_t mesh_node_start(mesh_node_t *n, mesh_err_t *err)
{
    mesh_status_t st;
    n->started_ns = mesh_now_ns();
    atomic_store(&n->ready, false);
    if (n->opts.node_name == NULL || *n->opts.node_name == '\0') {
        char host[256] = "meshd";
        gethostname(host, sizeof host);
        host[sizeof host - 1] = '\0';
        free(n->opts.node_name);
        n->opts.node_name = strdup(host);
    }
    if ((st = mesh_mkdirs(n->opts.data_dir, 0700, err)) != MESH_OK)
        return st;
    if ((st = mesh__node_lock_data_dir(n->opts.data_dir, err)) != MESH_OK)
        return st;
    /* the KEK and every key file are checked before anything else is written */
    if ((st = mesh_node_crypt_open(n, err)) != MESH_OK)
        return st;
    char path[4096];
    snprintf(path, sizeof path, "%s/catalog.db", n->opts.data_dir);
    if ((st = mesh_catalog_open(path, &n->cat, err)) != MESH_OK)
        return st;
    if (mesh_catalog_is_new(n->cat))
        LOG_INFO("node", "new data directory %s (node id %s)", n->opts.data_dir,
                 mesh_catalog_node_id(n->cat));
    mesh_domain_opts_t dopts = {.sync_full = n->opts.sync && strcmp(n->opts.sync, "full") == 0,
                                .idem_ttl_ns = n->opts.idempotency_ttl,
                                .kek = n->kek};
    if ((st = mesh_registry_open(n->opts.data_dir, n->cat, &dopts, &n->reg, err)) != MESH_OK)
        return st;
    if ((st = mesh_auth_open(n->cat, &n->auth, err)) != MESH_OK)
        return st;
    if ((st = bootstrap_admin(n, err)) != MESH_OK)
        return st;
    if ((st = mesh_qpool_create((size_t)n->opts.query_sessions, &n->qpool, err)) != MESH_OK)
        return st;
    int neps;
    const char *const *eps = mesh_http_endpoint_names(&neps);
    if ((n->metrics = mesh_metrics_new(eps, neps)) == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    if ((st = mesh_http_start(n, err)) != MESH_OK)
        return st;
    atomic_store(&n->ready, true);
    mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
    LOG_INFO("node", "meshd %s node=%s site=%s listening on http://%s data=%s domains=%zu",
             MESH_VERSION, n->opts.node_name, n->opts.site, n->listen_addr, n->opts.data_dir,
             s->ndoms);
    mesh_snapshot_put(s);
    return MESH_OK;
}

typedef struct run_ctx {
    mesh_node_t *n;
    struct event_base *base;
} run_ctx_t;

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    run_ctx_t *c = arg;
    if (sig == SIGHUP) {
        LOG_INFO("node", "SIGHUP: nothing to reload yet");
        return;
    }
    LOG_INFO("node", "%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    event_base_loopbreak(c->base);
}

static void on_checkpoint(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run_ctx_t *c = arg;
    mesh_snapshot_t *s = mesh_registry_snapshot(c->n->reg);
    for (size_t i = 0; i < s->ndoms; i++) {
        mesh_err_t err;
        mesh_err_clear(&err);
        mesh_status_t st = mesh_domain_checkpoint(s->doms[i].dom, &err);
        if (st == MESH_BUSY) /* a long query holds an old snapshot: next time */
            LOG_DEBUG("node", "checkpoint of %s postponed: %s", s->doms[i].meta.name, err.msg);
        else if (st != MESH_OK)
            LOG_WARN("node", "checkpoint of %s: %s", s->doms[i].meta.name, err.msg);
    }
    mesh_snapshot_put(s);
}

int mesh_node_run(mesh_node_t *n)
{
    run_ctx_t c = {.n = n, .base = event_base_new()};
    if (c.base == NULL)
        return 1;
    struct event *sigs[3];
    int signos[3] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        sigs[i] = evsignal_new(c.base, signos[i], on_signal, &c);
        event_add(sigs[i], NULL);
    }
    struct event *cp = event_new(c.base, -1, EV_PERSIST, on_checkpoint, &c);
    struct timeval tv = {.tv_sec = n->opts.checkpoint_interval / MESH_NS_PER_SEC,
                         .tv_usec = (n->opts.checkpoint_interval % MESH_NS_PER_SEC) / 1000};
    event_add(cp, &tv);
    event_base_dispatch(c.base);
    for (int i = 0; i < 3; i++)
        event_free(sigs[i]);
    event_free(cp);
    event_base_free(c.base);
    mesh_node_stop(n);
    return 0;
}

void mesh_node_stop(mesh_node_t *n)
{
    atomic_store(&n->ready, false);
    mesh_http_stop(n->http);
    n->http = NULL;
    mesh_qpool_destroy(n->qpool);
    n->qpool = NULL;
    mesh_registry_close(n->reg); /* checkpoints every domain */
    n->reg = NULL;
    mesh_auth_close(n->auth);
    n->auth = NULL;
    mesh_catalog_close(n->cat);
    n->cat = NULL;
    mesh_node_crypt_close(n); /* after every encrypted file is closed */
    mesh_metrics_free(n->metrics);
    n->metrics = NULL;
    if (lock_fd >= 0) {
        close(lock_fd);
        lock_fd = -1;
    }
    LOG_INFO("node", "stopped");
}
