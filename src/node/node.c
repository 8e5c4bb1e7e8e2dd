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

#include "catalog/security.h"
#include "core/log.h"
#include "core/util.h"
#include "http/server.h"
#include "mqtt/client.h"
#include "node/backup.h"
#include "node/governance.h"
#include "node/derived.h"
#include "node/health.h"

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
    size_t len = strlen(text), n = strcspn(text, "\r\n");
    if (n >= cap) {
        explicit_bzero(text, len);
        free(text);
        return mesh_err_set(err, MESH_INVALID, "%s: token too long", path);
    }
    memcpy(out, text, n);
    out[n] = '\0';
    explicit_bzero(text, len); /* the caller clears its copy; this one goes too */
    free(text);
    return MESH_OK;
}

/*
 * The audit log's keys. With encryption at rest on they are derived from the node's key
 * (DATA_DIR/catalog.key, wrapped by the key-encryption key), so the log is sealed and MAC'd
 * under the KEK like the data, and no audit key lies in clear on the disk; the log outlives
 * KEK rotations because the node's key itself never changes. With encryption off the node
 * keeps a random master key in DATA_DIR/audit/key (0600), generated on the first start.
 */
mesh_status_t mesh__node_audit_keys(mesh_node_t *n, mesh_audit_keys_t *out, mesh_err_t *err)
{
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/audit", n->opts.data_dir);
    mesh_status_t st = mesh_mkdirs(dir, 0700, err);
    if (st != MESH_OK)
        return st;
    if (n->catalog_key != NULL)
        return mesh_audit_keys_from_node_key(n->catalog_key, out, err);
    snprintf(path, sizeof path, "%s/key", dir);
    return mesh_audit_key_load(path, true, out, err);
}

static int64_t catalog_version_source(void *arg)
{
    return mesh_catalog_version(arg);
}

/*
 * The catalog witness (docs/security.md, "Rollback of the catalog"): the audit log records
 * the catalog version of every admin change after it committed, so a catalog older than the
 * newest recorded version lost committed changes (a WAL cut, deleted or damaged at its end,
 * or an older catalog.db put back): a revoked token would work again. Refused, unless the
 * catalog was restored from a backup (meshctl backup restore marks it) or the operator
 * starts with --accept-catalog-rollback; both are audited and raise the version past the
 * witness.
 */
static mesh_status_t check_catalog_witness(mesh_node_t *n, mesh_err_t *err)
{
    int64_t have = mesh_catalog_version(n->cat), seen = mesh_audit_catalog_version(n->audit);
    int64_t restored = mesh_catalog_restored_ns(n->cat);
    if (have >= seen) {
        if (restored)
            return mesh_catalog_version_raise(n->cat, have, err); /* clears the mark */
        return MESH_OK;
    }
    const char *why = restored                     ? "restored from a backup"
                      : n->accept_catalog_rollback ? "--accept-catalog-rollback"
                                                   : NULL;
    if (why == NULL)
        return mesh_err_set(err, MESH_CORRUPT,
                            "%s/catalog.db is older than the audit log says: it is at catalog "
                            "version %lld, but the audit log records version %lld. Committed "
                            "changes to principals, tokens or policies were lost (the catalog's "
                            "WAL was cut, deleted or damaged, or an older catalog.db was put "
                            "back), so a revoked token or a removed grant could work again. "
                            "Restore the catalog from a backup (meshctl backup restore "
                            "--in-place), or, to accept the loss, start once with "
                            "--accept-catalog-rollback (audited) and check principals, tokens "
                            "and policies",
                            n->opts.data_dir, (long long)have, (long long)seen);
    mesh_status_t st = mesh_catalog_version_raise(n->cat, seen + 1, err);
    if (st != MESH_OK)
        return st;
    LOG_WARN("node",
             "catalog.db is at catalog version %lld, older than the %lld the audit log records: "
             "accepted (%s); changes after version %lld were lost: check principals, tokens "
             "and policies",
             (long long)have, (long long)seen, why, (long long)have);
    char d[256];
    snprintf(d, sizeof d,
             "{\"catalog_version_found\":%lld,\"audit_catalog_version\":%lld,\"reason\":\"%s\"}",
             (long long)have, (long long)seen,
             restored ? "restored from a backup" : "accept_catalog_rollback");
    mesh_audit_rec_t rec = {.action = MESH_AUDIT_CATALOG_ROLLBACK_ACCEPTED,
                            .principal = "meshd",
                            .outcome = "ok",
                            .details = d,
                            .catalog_version = mesh_catalog_version(n->cat)};
    mesh_audit_record(n->audit, &rec);
    return MESH_OK;
}

static mesh_status_t open_audit(mesh_node_t *n, mesh_err_t *err)
{
    mesh_audit_keys_t keys;
    mesh_status_t st = mesh__node_audit_keys(n, &keys, err);
    if (st != MESH_OK) {
        mesh_err_prefix(err, "audit key: ");
        return st;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/audit", n->opts.data_dir);
    mesh_audit_opts_t ao = {.checkpoint_records = (uint64_t)n->opts.audit_checkpoint_records,
                            .checkpoint_interval_ns = n->opts.audit_checkpoint_interval,
                            .segment_size = (uint64_t)n->opts.audit_segment_size,
                            .retention_ns = n->opts.audit_retention};
    st = mesh_audit_open(dir, &keys, &ao, &n->audit, err);
    mesh_audit_keys_wipe(&keys);
    if (st != MESH_OK)
        return st;
    if ((st = check_catalog_witness(n, err)) != MESH_OK)
        return st;
    mesh_audit_set_catalog_source(n->audit, catalog_version_source, n->cat);
    mesh_buf_t d;
    mesh_buf_init(&d, 4096);
    mesh_buf_printf(&d, "{\"version\":\"%s\",\"node_id\":\"%s\",\"pid\":%d,\"node\":", MESH_VERSION,
                    mesh_catalog_node_id(n->cat), (int)getpid());
    mesh_buf_add_json_str(&d, n->opts.node_name, strlen(n->opts.node_name));
    mesh_buf_addc(&d, '}');
    mesh_audit_rec_t rec = {
        .action = MESH_AUDIT_NODE_START, .principal = "meshd", .details = d.data};
    mesh_audit_record(n->audit, &rec);
    mesh_buf_free(&d);
    return MESH_OK;
}

/* An admin token installed at start (never the token: who gets it and how it came). */
static void audit_token(mesh_node_t *n, int64_t admin_id, const char *how)
{
    char details[128];
    snprintf(details, sizeof details,
             "{\"for_principal\":\"admin\",\"for_principal_id\":%lld,"
             "\"token\":\"%s\"}",
             (long long)admin_id, how);
    mesh_audit_rec_t rec = {
        .action = MESH_AUDIT_ADMIN_TOKEN_CREATE, .principal = "meshd", .details = details};
    mesh_audit_record(n->audit, &rec);
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
        int64_t before = mesh_catalog_token_count(n->cat);
        st = mesh_auth_add_token(n->auth, admin_id, token, 0, "admin (configured)", err);
        memset(token, 0, sizeof token);
        if (st == MESH_OK && mesh_catalog_token_count(n->cat) > before)
            audit_token(n, admin_id, "configured");
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
        audit_token(n, admin_id, "generated");
        /* printed once, to stdout only; it is stored as a salted hash */
        printf("meshd: first start: admin API token (shown once, keep it safe):\n%s\n", token);
        fflush(stdout);
    }
    memset(token, 0, sizeof token);
    return st;
}

/* The host part of a listen address ("10.0.0.5" of "10.0.0.5:7070", "::1" of "[::1]:7070");
 * "" for a wildcard address, which names no host a certificate could carry. */
static void listen_host(const char *listen, char *out, size_t cap)
{
    out[0] = '\0';
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (close)
            snprintf(out, cap, "%.*s", (int)(close - listen - 1), listen + 1);
    } else {
        const char *colon = strrchr(listen, ':');
        if (colon)
            snprintf(out, cap, "%.*s", (int)(colon - listen), listen);
    }
    if (strcmp(out, "0.0.0.0") == 0 || strcmp(out, "::") == 0)
        out[0] = '\0';
}

/* Validity of a generated certificate, and how long before its expiry a start replaces it. */
#define TLS_GEN_VALIDITY_DAYS 365
#define TLS_GEN_RENEW_DAYS    30

/* Builds the TLS context from the options: a new one (start) or in place of the one in use
 * (reload, on SIGHUP), and logs the certificate and its fingerprint. */
static mesh_status_t load_tls(mesh_node_t *n, bool reload, mesh_err_t *err)
{
    const mesh_node_opts_t *o = &n->opts;
    char host[256], hostname[256] = "";
    listen_host(o->listen, host, sizeof host);
    if (gethostname(hostname, sizeof hostname) != 0)
        hostname[0] = '\0';
    hostname[sizeof hostname - 1] = '\0';
    const char *names[] = {o->node_name, "localhost", "127.0.0.1", "::1", hostname, host};
    char gen_dir[4096];
    snprintf(gen_dir, sizeof gen_dir, "%s/tls", o->data_dir);
    mesh_tls_server_opts_t to = {.cert_file = o->tls_cert,
                                 .key_file = o->tls_key,
                                 .client_ca_file = o->tls_client_ca,
                                 .gen_dir = gen_dir,
                                 .common_name = o->node_name,
                                 .names = names,
                                 .nnames = MESH_ARRAY_LEN(names),
                                 .validity_days = TLS_GEN_VALIDITY_DAYS,
                                 .renew_days = TLS_GEN_RENEW_DAYS};
    if (!mesh_tls_client_auth_parse(o->tls_client_auth, &to.client_auth))
        return mesh_err_set(err, MESH_INVALID, "tls_client_auth: '%s' is not off|optional|require",
                            o->tls_client_auth);
    mesh_status_t st = reload ? mesh_tls_server_reload(n->tls, &to, err)
                              : mesh_tls_server_create(&to, &n->tls, err);
    if (st != MESH_OK)
        return st;
    mesh_tls_info_t ti;
    mesh_tls_info_get(n->tls, &ti);
    char until[MESH_TIME_MAX];
    mesh_time_format(ti.not_after_ns, until);
    if (ti.renewed)
        LOG_INFO("tls", "generated a self-signed certificate %s (EC P-256, %s, valid until %s)",
                 ti.cert_file, ti.sans, until);
    LOG_INFO("tls", "%scertificate %s fingerprint %s (%s, expires %s, client certificates %s)",
             reload ? "reloaded: " : "", ti.cert_file, ti.fingerprint,
             ti.generated ? "self-signed" : "configured", until, o->tls_client_auth);
    return MESH_OK;
}

/* Sets up TLS for the listener (n->tls), or says loudly that it is off. */
static mesh_status_t start_tls(mesh_node_t *n, mesh_err_t *err)
{
    const mesh_node_opts_t *o = &n->opts;
    if (strcmp(o->tls, "off") == 0) {
        LOG_WARN("node", "TLS IS OFF (tls = off): the HTTP API, API tokens included, travels in "
                         "clear text; use this only on a trusted network or behind a TLS proxy");
        if ((o->tls_cert && *o->tls_cert) || (o->tls_key && *o->tls_key) ||
            strcmp(o->tls_client_auth, "off") != 0)
            LOG_WARN("node", "tls_cert, tls_key and tls_client_auth are ignored: tls is off");
        return MESH_OK;
    }
    return load_tls(n, false, err);
}

/* Splits the '\n'-separated mqtt_mapping lines in place into an array (free() it). */
static const char **split_lines(char *text, size_t *n)
{
    *n = 0;
    if (text == NULL || *text == '\0')
        return NULL;
    size_t cap = 1;
    for (const char *p = text; *p; p++)
        cap += *p == '\n';
    const char **v = calloc(cap, sizeof *v);
    if (v == NULL)
        return NULL;
    for (char *p = text;;) {
        v[(*n)++] = p;
        char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    return v;
}

/* MQTT ingest: the mappings always (they can be managed without a broker), the connection
 * when mqtt_url is set. */
static mesh_status_t start_mqtt(mesh_node_t *n, mesh_err_t *err)
{
    const mesh_node_opts_t *o = &n->opts;
    char password[1024] = "", client_id[64];
    mesh_status_t st;
    if (o->mqtt_password_file && *o->mqtt_password_file &&
        (st = read_token_file(o->mqtt_password_file, password, sizeof password, err)) != MESH_OK) {
        mesh_err_prefix(err, "mqtt_password_file: ");
        return st;
    }
    snprintf(client_id, sizeof client_id, "meshd-%.16s", mesh_catalog_node_id(n->cat));
    mesh_batch_limits_t limits = MESH_BATCH_DEFAULT_LIMITS;
    limits.max_rows = (size_t)o->max_batch_rows;
    limits.max_errors = (size_t)o->max_errors;
    char *lines_text = o->mqtt_mapping ? strdup(o->mqtt_mapping) : NULL;
    size_t nlines = 0;
    const char **lines = split_lines(lines_text, &nlines);
    mesh_mqtt_opts_t mo = {
        .url = o->mqtt_url,
        .username = o->mqtt_username,
        .password = *password ? password : NULL,
        .tls_ca = o->mqtt_tls_ca,
        .client_cert = o->mqtt_client_cert,
        .client_key = o->mqtt_client_key,
        .client_id = o->mqtt_client_id && *o->mqtt_client_id ? o->mqtt_client_id : client_id,
        .protocol = o->mqtt_protocol,
        .keepalive_ns = o->mqtt_keepalive,
        .session_expiry_ns = o->mqtt_session_expiry,
        .reconnect_min_ns = o->mqtt_reconnect_min,
        .reconnect_max_ns = o->mqtt_reconnect_max,
        .max_payload = (size_t)o->mqtt_max_payload,
        .limits = limits,
        .config_mappings = lines,
        .nconfig_mappings = nlines,
    };
    mesh_mqtt_t *q = NULL;
    st = mesh_mqtt_start(&mo, n->reg, n->cat, n->auth, n->audit, &q, err);
    pthread_mutex_lock(&n->ev_lock); /* the action thread publishes through it (node/rules.c) */
    n->mqtt = q;
    pthread_mutex_unlock(&n->ev_lock);
    memset(password, 0, sizeof password);
    free(lines);
    free(lines_text);
    if (st != MESH_OK)
        return st;
    /* the default principal of mappings: a service account without rights until granted */
    mesh_principal_info_t pi;
    if (mesh_catalog_principal_find(n->cat, MESH_MQTT_DEFAULT_PRINCIPAL, &pi) == MESH_NOT_FOUND) {
        int64_t id;
        mesh_err_t e2;
        if (mesh_catalog_principal_create(n->cat, MESH_MQTT_DEFAULT_PRINCIPAL, "service", "", &id,
                                          &e2) == MESH_OK)
            LOG_INFO("mqtt",
                     "created service principal %s (no roles: grant it write on the "
                     "products its mappings feed)",
                     MESH_MQTT_DEFAULT_PRINCIPAL);
    }
    return MESH_OK;
}

mesh_status_t mesh_node_start(mesh_node_t *n, mesh_err_t *err)
{
    mesh_status_t st;
    n->started_ns = mesh_now_ns();
    atomic_store(&n->ready, false);
    if (n->health == NULL && (n->health = mesh_health_new()) == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
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
    /* before the domains open: a bad certificate or key fails the start at once */
    if ((st = start_tls(n, err)) != MESH_OK)
        return st;
    char path[4096];
    snprintf(path, sizeof path, "%s/catalog.db", n->opts.data_dir);
    if ((st = mesh_catalog_open(path, &n->cat, err)) != MESH_OK)
        return st;
    if (mesh_catalog_is_new(n->cat))
        LOG_INFO("node", "new data directory %s (node id %s)", n->opts.data_dir,
                 mesh_catalog_node_id(n->cat));
    if ((st = mesh_space_new(n->opts.data_dir, n->opts.min_free_space, &n->space, err)) != MESH_OK)
        return st;
    mesh_domain_opts_t dopts = {.sync_full = n->opts.sync && strcmp(n->opts.sync, "full") == 0,
                                .idem_ttl_ns = n->opts.idempotency_ttl,
                                .kek = n->kek,
                                .space = n->space,
                                .events = mesh__node_rule_events,
                                .events_arg = n,
                                .refresh = mesh__node_refresh,
                                .refresh_arg = n};
    /* before the domains open: their replay refreshes aggregates */
    if ((st = mesh__node_lineage_start(n, err)) != MESH_OK)
        return st;
    /* before the domains open: their replay reports alert transitions */
    int neps;
    const char *const *eps = mesh_http_endpoint_names(&neps);
    if ((n->metrics = mesh_metrics_new(eps, neps)) == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    pthread_mutex_init(&n->ev_lock, NULL);
    /* a snapshot bootstrap interrupted by a crash: finished (or dropped) before the open */
    if ((st = mesh__node_bootstrap_recover(n, err)) != MESH_OK)
        return st;
    if ((st = mesh_registry_open(n->opts.data_dir, n->cat, &dopts, &n->reg, err)) != MESH_OK)
        return st;
    mesh__node_governance_start(n); /* erasure's hooks for derived products */
    if ((st = open_audit(n, err)) != MESH_OK)
        return st;
    if ((st = mesh_auth_open(n->cat, &n->auth, err)) != MESH_OK)
        return st;
    if ((st = bootstrap_admin(n, err)) != MESH_OK)
        return st;
    if ((st = mesh_qpool_create((size_t)n->opts.query_sessions, &n->qpool, err)) != MESH_OK)
        return st;
    mesh_qpool_set_audit(n->qpool, n->audit); /* system.audit for auditors */
    if ((st = mesh_quality_open(n->reg, n->qpool, n->opts.quality_interval, &n->quality, err)) !=
        MESH_OK)
        return st;
    if ((st = mesh__node_rules_start(n, err)) != MESH_OK)
        return st;
    if ((st = mesh__node_health_start(n, err)) != MESH_OK)
        return st;
    if ((st = mesh_backups_open(n, &n->backups, err)) != MESH_OK)
        return st;
    if ((st = start_mqtt(n, err)) != MESH_OK)
        return st;
    mesh__node_repl_sync(n); /* before the API: replicated domains refuse writes until then */
    if ((st = mesh_http_start(n, err)) != MESH_OK)
        return st;
    /* after the listener: the registry entry carries the bound address */
    if ((st = mesh__node_mesh_start(n, err)) != MESH_OK)
        return st;
    mesh__node_repl_sync(n);
    atomic_store(&n->ready, true);
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
        /* what is reloadable: the log file (reopened after a rotation), the TLS certificate,
         * key and client CAs (a renewed certificate is served to new connections; open ones
         * keep theirs) */
        if (mesh_log_reopen() != 0)
            LOG_ERROR("node",
                      "SIGHUP: cannot reopen the log file: %s (still writing to the one "
                      "open)",
                      strerror(errno));
        else if (c->n->opts.log_file && *c->n->opts.log_file)
            LOG_INFO("node", "SIGHUP: log file %s reopened", c->n->opts.log_file);
        if (c->n->tls == NULL) {
            LOG_INFO("node", "SIGHUP: nothing to reload (tls is off)");
            return;
        }
        mesh_err_t err;
        mesh_err_clear(&err);
        if (load_tls(c->n, true, &err) != MESH_OK)
            LOG_ERROR("tls", "SIGHUP: the certificate was not reloaded, the one in use stays: %s",
                      err.msg);
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

static void on_rules_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run_ctx_t *c = arg;
    mesh__node_rules_tick(c->n);
}

static void on_retention(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run_ctx_t *c = arg;
    mesh__node_retention_run(c->n, NULL);
}

/* Once a second: scheduled work (backups). */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run_ctx_t *c = arg;
    mesh_backups_tick(c->n->backups);
    mesh__node_health_tick(c->n);
    mesh__node_derived_tick(c->n);
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
    /* harnesses wait for this line, then may send SIGTERM at once: it comes only now that
     * SIGTERM stops the node cleanly (before, it would kill the process) */
    mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
    LOG_INFO("node", "meshd %s node=%s site=%s listening on %s://%s data=%s domains=%zu",
             MESH_VERSION, n->opts.node_name, n->opts.site, n->tls ? "https" : "http",
             n->listen_addr, n->opts.data_dir, s->ndoms);
    mesh_snapshot_put(s);
    struct event *rtick = event_new(c.base, -1, EV_PERSIST, on_rules_tick, &c);
    struct timeval ttv = {.tv_sec = n->opts.rules_tick / MESH_NS_PER_SEC,
                          .tv_usec = (n->opts.rules_tick % MESH_NS_PER_SEC) / 1000};
    event_add(rtick, &ttv);
    struct event *cp = event_new(c.base, -1, EV_PERSIST, on_checkpoint, &c);
    struct timeval tv = {.tv_sec = n->opts.checkpoint_interval / MESH_NS_PER_SEC,
                         .tv_usec = (n->opts.checkpoint_interval % MESH_NS_PER_SEC) / 1000};
    event_add(cp, &tv);
    struct event *tick = event_new(c.base, -1, EV_PERSIST, on_tick, &c);
    struct timeval one = {.tv_sec = 1, .tv_usec = 0};
    event_add(tick, &one);
    struct event *ret = NULL;
    if (n->opts.retention_interval > 0) {
        ret = event_new(c.base, -1, EV_PERSIST, on_retention, &c);
        struct timeval rtv = {.tv_sec = n->opts.retention_interval / MESH_NS_PER_SEC,
                              .tv_usec = (n->opts.retention_interval % MESH_NS_PER_SEC) / 1000};
        event_add(ret, &rtv);
    }
    event_base_dispatch(c.base);
    if (ret)
        event_free(ret);
    event_free(rtick);
    for (int i = 0; i < 3; i++)
        event_free(sigs[i]);
    event_free(cp);
    event_free(tick);
    event_base_free(c.base);
    mesh_node_stop(n);
    return 0;
}

void mesh_node_stop(mesh_node_t *n)
{
    atomic_store(&n->ready, false);
    mesh_http_stop(n->http);
    n->http = NULL;
    /* after the API (whose handlers read the registry), before the domains: the last
     * heartbeat marks this node stopped */
    mesh__node_fed_stop(n); /* its subscriptions and open scans, before the link */
    mesh__node_repl_stop(n);
    mesh__node_bootstrap_stop(n); /* after the replicators, which fetch through it */
    mesh_mesh_stop(n->mesh);
    n->mesh = NULL;
    /* the action thread (it publishes through MQTT) before MQTT; it audits what it drops */
    mesh__node_rules_stop(n);
    mesh_mqtt_stop(n->mqtt); /* a message being written finishes first */
    n->mqtt = NULL;
    mesh_tls_destroy(n->tls);
    n->tls = NULL;
    mesh_quality_close(n->quality); /* before the pool its queries use */
    n->quality = NULL;
    mesh_qpool_destroy(n->qpool);
    n->qpool = NULL;
    mesh_backups_close(n->backups); /* waits for a running backup */
    n->backups = NULL;
    if (n->audit) {
        mesh_audit_rec_t rec = {.action = MESH_AUDIT_NODE_STOP, .principal = "meshd"};
        mesh_audit_record(n->audit, &rec);
        mesh_audit_close(n->audit); /* a last checkpoint */
        n->audit = NULL;
    }
    mesh_registry_close(n->reg); /* checkpoints every domain */
    n->reg = NULL;
    mesh__node_lineage_stop(n); /* after the domains that report refreshes */
    mesh_auth_close(n->auth);
    n->auth = NULL;
    mesh_catalog_close(n->cat);
    n->cat = NULL;
    mesh_node_crypt_close(n); /* after every encrypted file is closed */
    mesh_metrics_free(n->metrics);
    n->metrics = NULL;
    mesh_space_free(n->space); /* after the domains that borrow it */
    n->space = NULL;
    mesh_health_free(n->health);
    mesh__node_derived_free(n);
    n->health = NULL;
    if (lock_fd >= 0) {
        close(lock_fd);
        lock_fd = -1;
    }
    LOG_INFO("node", "stopped");
}
