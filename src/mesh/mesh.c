/*
 * mesh.c - the NATS connection, the registry bucket and the heartbeat (see mesh.h).
 *
 * Threads: libnats runs its own threads (reader, flusher, reconnect, callbacks); its
 * connection callbacks only record state under m->mu and wake the mesh thread. The mesh
 * thread does every blocking call of the connection's life (bucket, version probe,
 * heartbeats). Readers (mesh_mesh_list) hold m->kv_lock for reading while they use the
 * bucket handle, so the mesh thread can replace it (a connection closed for good is made
 * again) without pulling it from under them.
 */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np */
#include "mesh/mesh.h"
#include "mesh/internal.h"

#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <nats/nats.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "mesh/internal.h"

#define MAX_SERVERS    32
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 15000
#define PASSWORD_MAX   512
/* a server that stops answering without closing the connection (a partition) is given up
 * after PINGS_OUT unanswered pings, one every PING_MS: about 15 s, not libnats' 4 minutes */
#define PING_MS   5000
#define PINGS_OUT 2

/* One served request kind of one domain (mesh_mesh_serve). Lives until mesh_mesh_stop; an
 * unserved one keeps its slot (fn NULL) so a late libnats callback finds it. */
typedef struct service {
    char domain[MESH_NAME_MAX + 1];
    char kind[MESH_MESH_KIND_MAX + 1];
    mesh_mesh_serve_fn fn; /* NULL: not served */
    void *arg;
    natsSubscription *sub; /* on connection sub_gen */
    uint64_t sub_gen;
    int running; /* calls of fn in progress (under svc_lock) */
    struct mesh_mesh *m;
} service_t;

struct mesh_mesh {
    /* options (copied) */
    char *servers[MAX_SERVERS];
    int nservers;
    char *tls_ca, *tls_cert, *tls_key, *user, *password, *js_domain, *node_name, *inbox;
    int64_t heartbeat_ns, timeout_ns;
    int replicas;
    int64_t stream_max_age_ns, stream_max_bytes, stream_max_msgs; /* domain streams created */
    mesh_mesh_describe_fn describe;
    void *describe_arg;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu; /* guards what follows, and stop */
    pthread_cond_t cv;
    bool stop;
    bool wake;             /* a connection event happened */
    int connections;       /* connections made (each ends with one closed callback) */
    int closed_cbs;        /* closed callbacks received */
    mesh_mesh_status_t st; /* state points at a literal */
    char probed_url[256];  /* the server whose version was read */

    pthread_rwlock_t kv_lock; /* readers use nc/js/kv; the mesh thread swaps them */
    uint64_t conn_gen;        /* bumped with every new nc (under kv_lock) */
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv;

    /* served request kinds; svc_lock guards the array and each service's fields */
    pthread_mutex_t svc_lock;
    pthread_cond_t svc_cv; /* a call of a service's fn ended */
    service_t **svcs;
    size_t nsvcs;
};

/* ---- helpers ---- */

static void set_error(mesh_mesh_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(mesh_mesh_t *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&m->mu);
    vsnprintf(m->st.last_error, sizeof m->st.last_error, fmt, ap);
    pthread_mutex_unlock(&m->mu);
    va_end(ap);
}

static const char *nats_text(natsStatus s)
{
    const char *t = nats_GetLastError(NULL);
    return t && *t ? t : natsStatus_GetText(s);
}

static void wake(mesh_mesh_t *m, const char *state)
{
    pthread_mutex_lock(&m->mu);
    if (state)
        m->st.state = state;
    m->wake = true;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

/* ---- libnats callbacks (its threads) ---- */

static void on_connected(natsConnection *nc, void *arg)
{
    (void)nc;
    wake(arg, "connected");
}

static void on_disconnected(natsConnection *nc, void *arg)
{
    (void)nc;
    mesh_mesh_t *m = arg;
    pthread_mutex_lock(&m->mu);
    bool stopping = m->stop;
    m->st.registered = false;
    m->st.server[0] = '\0';
    pthread_mutex_unlock(&m->mu);
    if (!stopping)
        LOG_WARN("mesh", "disconnected from the NATS server; reconnecting");
    wake(m, "reconnecting");
}

static void on_reconnected(natsConnection *nc, void *arg)
{
    (void)nc;
    mesh_mesh_t *m = arg;
    pthread_mutex_lock(&m->mu);
    m->st.reconnects++;
    pthread_mutex_unlock(&m->mu);
    wake(m, "connected");
}

static void on_closed(natsConnection *nc, void *arg)
{
    (void)nc;
    mesh_mesh_t *m = arg;
    pthread_mutex_lock(&m->mu);
    m->closed_cbs++;
    pthread_mutex_unlock(&m->mu);
    wake(m, "closed");
}

/* Asynchronous errors: a permissions violation, a slow consumer. Logged, never the payload. */
static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *arg)
{
    (void)sub;
    const char *last = NULL;
    natsConnection_GetLastError(nc, &last);
    LOG_WARN("mesh", "NATS error: %s", last && *last ? last : natsStatus_GetText(err));
    set_error(arg, "%s", last && *last ? last : natsStatus_GetText(err));
}

/* Backoff between passes over the server list: doubling from 250 ms to 15 s, with up to
 * 25% jitter so a restarted hub is not hit by every node at once. */
static int64_t reconnect_delay(natsConnection *nc, int attempts, void *arg)
{
    (void)nc;
    (void)arg;
    int64_t ms = BACKOFF_MIN_MS;
    for (int i = 1; i < attempts && ms < BACKOFF_MAX_MS; i++)
        ms *= 2;
    if (ms > BACKOFF_MAX_MS)
        ms = BACKOFF_MAX_MS;
    uint32_t r = 0;
    mesh_random(&r, sizeof r);
    return ms + (int64_t)(r % (uint32_t)(ms / 4 + 1));
}

/* ---- the server's version, from its INFO line ---- */

mesh_status_t mesh_nats_info_version(const char *p, size_t n, char *out, size_t cap)
{
    if (cap == 0)
        return MESH_INVALID;
    out[0] = '\0';
    if (n > MESH_NATS_INFO_MAX || n < 5 || memcmp(p, "INFO", 4) != 0 ||
        (p[4] != ' ' && p[4] != '\t'))
        return MESH_PARSE;
    size_t i = 5, end = n;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    while (end > i && (p[end - 1] == '\r' || p[end - 1] == '\n'))
        end--;
    json_error_t je;
    json_t *o = json_loadb(p + i, end - i, 0, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        return MESH_PARSE;
    }
    json_t *v = json_object_get(o, "version");
    mesh_status_t st = MESH_PARSE;
    if (json_is_string(v) && json_string_length(v) < cap && json_string_length(v) > 0) {
        const char *s = json_string_value(v);
        bool ok = true;
        for (const char *c = s; *c; c++)
            ok = ok && ((*c >= '0' && *c <= '9') || *c == '.' || *c == '-' ||
                        (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z'));
        if (ok) {
            snprintf(out, cap, "%s", s);
            st = MESH_OK;
        }
    }
    json_decref(o);
    return st;
}

bool mesh_nats_version_older(const char *version, int major, int minor)
{
    int64_t v[2];
    const char *p = version;
    if (p[0] == 'v')
        p++;
    for (int k = 0; k < 2; k++) {
        size_t len = strspn(p, "0123456789");
        if (len == 0 || mesh_parse_i64(p, len, &v[k]) != MESH_OK)
            return true;
        p += len;
        if (k == 0 && *p++ != '.')
            return true;
    }
    return v[0] < major || (v[0] == major && v[1] < minor);
}

/* Reads the INFO line the server sends first on a new connection (before any TLS), with a
 * short deadline; the connection is then closed. */
static mesh_status_t probe_version(const char *url, char *out, size_t cap)
{
    const char *hp = strstr(url, "://");
    hp = hp ? hp + 3 : url;
    const char *at = strrchr(hp, '@');
    if (at)
        hp = at + 1;
    char host[256], port[16];
    const char *colon = strrchr(hp, ':');
    if (colon == NULL || colon == hp)
        return MESH_INVALID;
    if (hp[0] == '[') {
        const char *close = strchr(hp, ']');
        if (close == NULL || close > colon)
            return MESH_INVALID;
        snprintf(host, sizeof host, "%.*s", (int)(close - hp - 1), hp + 1);
    } else {
        snprintf(host, sizeof host, "%.*s", (int)(colon - hp), hp);
    }
    snprintf(port, sizeof port, "%.*s", (int)strcspn(colon + 1, "/"), colon + 1);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || ai == NULL)
        return MESH_UNAVAILABLE;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    mesh_status_t st = MESH_UNAVAILABLE;
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        char buf[MESH_NATS_INFO_MAX];
        size_t n = 0;
        int64_t deadline = mesh_mono_ns() + 2 * MESH_NS_PER_SEC;
        while (n < sizeof buf && memchr(buf, '\n', n) == NULL) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            int64_t left = (deadline - mesh_mono_ns()) / 1000000;
            if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
                break;
            ssize_t r = read(fd, buf + n, sizeof buf - n);
            if (r <= 0)
                break;
            n += (size_t)r;
        }
        char *nl = memchr(buf, '\n', n);
        if (nl)
            st = mesh_nats_info_version(buf, (size_t)(nl - buf + 1), out, cap);
    }
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return st;
}

/* ---- the connection ---- */

static natsStatus make_options(mesh_mesh_t *m, natsOptions **out)
{
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetServers(o, (const char **)m->servers, m->nservers);
    if (s == NATS_OK)
        s = natsOptions_SetName(o, m->node_name);
    if (s == NATS_OK)
        s = natsOptions_SetCustomInboxPrefix(o, m->inbox);
    if (s == NATS_OK) /* the first server is the node's own hub (meshctl mesh config) */
        s = natsOptions_SetNoRandomize(o, true);
    /* Publishes leave at once instead of through libnats' flusher thread, which waits 1 ms
     * for more data first: that millisecond was on every federated frame the owner sends and
     * every next request (decision 0032). What this connection publishes is few and large
     * (batches of rows, frames, acks of whole batches), so the lost coalescing costs little. */
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(o, true);
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval(o, PING_MS);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut(o, PINGS_OUT);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(o, -1); /* forever */
    if (s == NATS_OK)
        s = natsOptions_SetCustomReconnectDelay(o, reconnect_delay, m);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, m->timeout_ns / 1000000);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(o, true, on_connected, m);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(o, on_disconnected, m);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(o, on_reconnected, m);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(o, on_closed, m);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(o, on_error, m);
    if (s == NATS_OK && m->user)
        s = natsOptions_SetUserInfo(o, m->user, m->password);
    if (s == NATS_OK && m->tls_ca) {
        s = natsOptions_SetSecure(o, true);
        if (s == NATS_OK)
            s = natsOptions_LoadCATrustedCertificates(o, m->tls_ca);
    }
    if (s == NATS_OK && m->tls_cert)
        s = natsOptions_LoadCertificatesChain(o, m->tls_cert, m->tls_key);
    if (s != NATS_OK) {
        natsOptions_Destroy(o);
        return s;
    }
    *out = o;
    return NATS_OK;
}

/* Starts a connection (returns at once; libnats keeps trying in the background). */
static void connect_start(mesh_mesh_t *m)
{
    natsOptions *o = NULL;
    natsStatus s = make_options(m, &o);
    if (s != NATS_OK) {
        set_error(m, "NATS options: %s", nats_text(s));
        LOG_ERROR("mesh", "NATS options: %s", nats_text(s));
        return;
    }
    natsConnection *nc = NULL;
    s = natsConnection_Connect(&nc, o);
    natsOptions_Destroy(o);
    if (s == NATS_OK)
        wake(m, "connected");
    else if (s == NATS_NOT_YET_CONNECTED)
        wake(m, "connecting");
    else {
        set_error(m, "connect: %s", nats_text(s));
        LOG_WARN("mesh", "cannot connect to the mesh: %s", nats_text(s));
        return;
    }
    pthread_mutex_lock(&m->mu);
    m->connections++;
    pthread_mutex_unlock(&m->mu);
    pthread_rwlock_wrlock(&m->kv_lock);
    m->nc = nc;
    m->conn_gen++;
    pthread_rwlock_unlock(&m->kv_lock);
}

static void disconnect(mesh_mesh_t *m)
{
    pthread_rwlock_wrlock(&m->kv_lock);
    kvStore_Destroy(m->kv);
    jsCtx_Destroy(m->js);
    natsConnection_Destroy(m->nc);
    m->kv = NULL;
    m->js = NULL;
    m->nc = NULL;
    pthread_rwlock_unlock(&m->kv_lock);
}

/* Binds to the registry bucket, creating it when it does not exist. */
static void ensure_bucket(mesh_mesh_t *m)
{
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = m->timeout_ns / 1000000;
    jo.Domain = m->js_domain;
    jsCtx *js = NULL;
    kvStore *kv = NULL;
    natsStatus s = natsConnection_JetStream(&js, m->nc, &jo);
    if (s == NATS_OK) {
        s = js_KeyValue(&kv, js, MESH_REGISTRY_BUCKET);
        /* a node that reaches the registry through a leaf (another JetStream domain) only
         * binds: it sees one server and would create the hub's bucket with one replica, on
         * whichever hub, if it came first (a race while the hub cluster forms) */
        if (s == NATS_NOT_FOUND && m->js_domain && *m->js_domain && m->replicas <= 0) {
            /* retried every second, like any failure here, until the hub has made it */
        } else if (s == NATS_NOT_FOUND) {
            kvConfig kc;
            kvConfig_Init(&kc);
            kc.Bucket = MESH_REGISTRY_BUCKET;
            kc.Description = "meshd: the mesh's nodes, their domains and products";
            kc.History = 1;
            kc.TTL = MESH_REGISTRY_MAX_AGE;
            kc.MaxValueSize = MESH_ENTRY_MAX_BYTES;
            kc.StorageType = js_FileStorage;
            int servers = 0;
            char **urls = NULL;
            if (natsConnection_GetServers(m->nc, &urls, &servers) == NATS_OK) {
                for (int i = 0; i < servers; i++)
                    free(urls[i]);
                free(urls);
            }
            kc.Replicas = m->replicas > 0 ? m->replicas : servers >= 3 ? 3 : 1;
            s = js_CreateKeyValue(&kv, js, &kc);
            if (s == NATS_OK)
                LOG_INFO("mesh", "created the registry bucket %s (%d replicas)",
                         MESH_REGISTRY_BUCKET, kc.Replicas);
        }
    }
    if (s != NATS_OK) {
        /* retried every second while JetStream is not ready: logged when the reason changes */
        char why[256];
        snprintf(why, sizeof why, "registry bucket %s: %s", MESH_REGISTRY_BUCKET, nats_text(s));
        pthread_mutex_lock(&m->mu);
        bool same = strcmp(why, m->st.last_error) == 0;
        snprintf(m->st.last_error, sizeof m->st.last_error, "%s", why);
        pthread_mutex_unlock(&m->mu);
        if (!same)
            LOG_WARN("mesh", "%s (retrying)", why);
        jsCtx_Destroy(js);
        return;
    }
    pthread_rwlock_wrlock(&m->kv_lock);
    m->js = js;
    m->kv = kv;
    pthread_rwlock_unlock(&m->kv_lock);
}

/* Reads the version of the server connected to, once per server, and warns about one older
 * than 2.10 (JetStream acks before fsync). */
static void check_server(mesh_mesh_t *m)
{
    char url[256] = "";
    if (natsConnection_GetConnectedUrl(m->nc, url, sizeof url) != NATS_OK || !url[0])
        return;
    int64_t maxp = natsConnection_GetMaxPayload(m->nc);
    pthread_mutex_lock(&m->mu);
    snprintf(m->st.server, sizeof m->st.server, "%s", url);
    if (maxp > 0)
        m->st.max_payload = maxp;
    bool known = strcmp(url, m->probed_url) == 0;
    pthread_mutex_unlock(&m->mu);
    if (known)
        return;
    char version[32] = "";
    probe_version(url, version, sizeof version);
    bool old = version[0] && mesh_nats_version_older(version, 2, 10);
    pthread_mutex_lock(&m->mu);
    snprintf(m->probed_url, sizeof m->probed_url, "%s", url);
    snprintf(m->st.server_version, sizeof m->st.server_version, "%s", version);
    m->st.server_pre_2_10 = old;
    pthread_mutex_unlock(&m->mu);
    LOG_INFO("mesh", "connected to %s (nats-server %s) as %s", url, version[0] ? version : "?",
             m->user ? m->user : "(no user)");
    if (old)
        LOG_WARN("mesh",
                 "nats-server %s is older than 2.10: JetStream acknowledges before its data "
                 "is fsynced (fsync on a timer), so a power loss of the servers can lose "
                 "acknowledged messages; run nats-server >= 2.10 with sync_interval: always "
                 "(docs/mesh.md)",
                 version);
}

#define CAPTURE_BEATS 4 /* heartbeats between two looks for streams that take in the inbox */

/* Asks the servers which streams take in this node's inbox: nats-server does not check a
 * stream's subjects against its creator's subscribe permissions, so a node that may create its
 * domain's stream can make it store another node's replies. Nothing here stops that; it makes
 * it seen (status, metric, an error in the log). Best effort: no answer changes nothing. */
/* The streams whose subjects take in filter, comma-separated into by (cap bytes): false when
 * the servers did not answer (nothing is known then). */
static bool capturing_streams(mesh_mesh_t *m, const char *filter, char *by, size_t cap)
{
    char subj[160], body[200];
    if (m->js_domain && *m->js_domain)
        snprintf(subj, sizeof subj, "$JS.%s.API.STREAM.NAMES", m->js_domain);
    else
        snprintf(subj, sizeof subj, "$JS.API.STREAM.NAMES");
    int n = snprintf(body, sizeof body, "{\"subject\":\"%s\"}", filter);
    natsMsg *r = NULL;
    pthread_rwlock_rdlock(&m->kv_lock);
    /* on the heartbeat's thread: waits at most half a heartbeat (a meta leader being elected
     * must not make this node miss its next heartbeat) */
    int64_t ms =
        (m->timeout_ns < m->heartbeat_ns / 2 ? m->timeout_ns : m->heartbeat_ns / 2) / 1000000;
    natsStatus s = m->nc ? natsConnection_Request(&r, m->nc, subj, body, n, ms > 0 ? ms : 1)
                         : NATS_CONNECTION_CLOSED;
    pthread_rwlock_unlock(&m->kv_lock);
    if (s != NATS_OK)
        return false;
    json_error_t je;
    json_t *o = json_loadb(natsMsg_GetData(r), (size_t)natsMsg_GetDataLength(r), 0, &je);
    natsMsg_Destroy(r);
    json_t *names = json_object_get(o, "streams");
    /* none: "streams":null */
    if (o == NULL || json_object_get(o, "error") ||
        (names && !json_is_array(names) && !json_is_null(names))) {
        json_decref(o);
        return false;
    }
    by[0] = '\0';
    size_t at = 0;
    for (size_t i = 0; i < json_array_size(names); i++) {
        const char *v = json_string_value(json_array_get(names, i));
        if (v && at < cap - 1)
            at += (size_t)snprintf(by + at, cap - at, "%s%s", at ? "," : "", v);
        if (at >= cap)
            at = cap - 1;
    }
    json_decref(o);
    return true;
}

/* Asks the servers which streams take in this node's inbox, and which take in the requests
 * to domains: nats-server does not check a stream's subjects against its creator's subscribe
 * permissions, so a node that may create its domain's stream can make it store another
 * node's replies, or the requests (forwarded rows, statements) sent to other domains. Nothing
 * here stops that; it makes it seen (status, metrics, an error in the log). Best effort: no
 * answer changes nothing. */
static void check_captures(mesh_mesh_t *m)
{
    char filter[MESH_ENTRY_NODE_MAX + 16];
    snprintf(filter, sizeof filter, "%s.>", m->inbox);
    struct {
        const char *filter, *what;
        char *field; /* in m->st, sizeof m->st.inbox_captured_by */
    } look[] = {
        {filter, "this node's inbox: the replies sent to it (answers, snapshots)",
         m->st.inbox_captured_by},
        {"meshd.dom.*.req.>", "the requests to domains (forwarded writes, statements)",
         m->st.requests_captured_by},
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(look); i++) {
        char by[sizeof m->st.inbox_captured_by];
        if (!capturing_streams(m, look[i].filter, by, sizeof by))
            continue;
        pthread_mutex_lock(&m->mu);
        bool changed = strcmp(by, look[i].field) != 0;
        snprintf(look[i].field, sizeof m->st.inbox_captured_by, "%s", by);
        pthread_mutex_unlock(&m->mu);
        if (changed && by[0])
            LOG_ERROR("mesh",
                      "stream(s) %s take in %s (%s): whoever reads them reads those; a node "
                      "that hosts a domain can set its stream's subjects so (docs/mesh.md)",
                      by, look[i].what, look[i].filter);
        else if (changed)
            LOG_INFO("mesh", "no stream takes in %s any more", look[i].filter);
    }
}

static void heartbeat(mesh_mesh_t *m, bool stopped)
{
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_ENTRY_MAX_BYTES);
    mesh_status_t st = m->describe(m->describe_arg, stopped, &b);
    if (st != MESH_OK) {
        LOG_WARN("mesh", "registry entry: %s", mesh_status_text(st));
        mesh_buf_free(&b);
        return;
    }
    uint64_t rev = 0;
    pthread_rwlock_rdlock(&m->kv_lock);
    natsStatus s =
        m->kv ? kvStore_Put(&rev, m->kv, m->node_name, b.data, (int)b.len) : NATS_CONNECTION_CLOSED;
    pthread_rwlock_unlock(&m->kv_lock);
    mesh_buf_free(&b);
    pthread_mutex_lock(&m->mu);
    bool was = m->st.registered;
    m->st.registered = s == NATS_OK;
    if (s == NATS_OK) {
        m->st.heartbeats++;
        m->st.last_heartbeat_ns = mesh_now_ns();
    } else {
        m->st.heartbeat_failures++;
        snprintf(m->st.last_error, sizeof m->st.last_error, "heartbeat: %s", nats_text(s));
    }
    pthread_mutex_unlock(&m->mu);
    if (s == NATS_OK && !was && !stopped)
        LOG_INFO("mesh", "registered as %s in %s", m->node_name, MESH_REGISTRY_BUCKET);
    else if (s != NATS_OK && was)
        LOG_WARN("mesh", "heartbeat failed: %s", nats_text(s));
    if (s == NATS_OK && !stopped && m->st.heartbeats % CAPTURE_BEATS == 1)
        check_captures(m);
}

/* ---- served requests ---- */

static bool kind_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > MESH_MESH_KIND_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '_' ||
              k[i] == '-'))
            return false;
    return true;
}

static void request_subject(char *out, size_t cap, const char *domain, const char *kind)
{
    snprintf(out, cap, "meshd.dom.%s.req.%s", domain, kind);
}

/* A request arrived for a service (a libnats delivery thread). */
static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)sub;
    service_t *sv = closure;
    mesh_mesh_t *m = sv->m;
    const char *reply_to = natsMsg_GetReply(msg);
    pthread_mutex_lock(&m->svc_lock);
    mesh_mesh_serve_fn fn = sv->fn;
    void *arg = sv->arg;
    if (fn)
        sv->running++;
    pthread_mutex_unlock(&m->svc_lock);
    if (fn == NULL || reply_to == NULL || *reply_to == '\0') {
        natsMsg_Destroy(msg);
        return;
    }
    int max = natsConnection_GetMaxPayload(nc);
    mesh_buf_t out;
    mesh_buf_init(&out,
                  max > 0 && (size_t)max < MESH_MESH_REPLY_MAX ? (size_t)max : MESH_MESH_REPLY_MAX);
    fn(arg, sv->domain, sv->kind, (const uint8_t *)natsMsg_GetData(msg),
       (size_t)natsMsg_GetDataLength(msg), &out);
    natsStatus s = natsConnection_Publish(nc, reply_to, out.data ? out.data : "", (int)out.len);
    if (s != NATS_OK)
        LOG_WARN("mesh", "reply to a %s request for %s: %s", sv->kind, sv->domain,
                 natsStatus_GetText(s));
    mesh_buf_free(&out);
    natsMsg_Destroy(msg);
    pthread_mutex_lock(&m->svc_lock);
    sv->running--;
    pthread_cond_broadcast(&m->svc_cv);
    pthread_mutex_unlock(&m->svc_lock);
}

/* Subscribes every served kind not yet subscribed on the current connection (the mesh
 * thread, or mesh_mesh_serve; kv_lock held for reading). */
static void subscribe_services(mesh_mesh_t *m)
{
    if (m->nc == NULL || natsConnection_Status(m->nc) != NATS_CONN_STATUS_CONNECTED)
        return;
    pthread_mutex_lock(&m->svc_lock);
    for (size_t i = 0; i < m->nsvcs; i++) {
        service_t *sv = m->svcs[i];
        if (sv->fn == NULL || (sv->sub && sv->sub_gen == m->conn_gen))
            continue;
        if (sv->sub) { /* of a connection gone: libnats freed its side with it */
            natsSubscription_Destroy(sv->sub);
            sv->sub = NULL;
        }
        char subj[160];
        request_subject(subj, sizeof subj, sv->domain, sv->kind);
        natsStatus s =
            natsConnection_QueueSubscribe(&sv->sub, m->nc, subj, "meshd", on_request, sv);
        if (s != NATS_OK) {
            sv->sub = NULL;
            LOG_WARN("mesh", "cannot serve %s: %s", subj, nats_text(s));
            continue;
        }
        sv->sub_gen = m->conn_gen;
        LOG_DEBUG("mesh", "serving %s", subj);
    }
    pthread_mutex_unlock(&m->svc_lock);
}

mesh_status_t mesh_mesh_serve(mesh_mesh_t *m, const char *domain, const char *kind,
                              mesh_mesh_serve_fn fn, void *arg, mesh_err_t *err)
{
    if (!mesh_name_domain_ok(domain) || !kind_ok(kind) || fn == NULL)
        return mesh_err_set(err, MESH_INVALID, "cannot serve kind '%.40s' of domain '%.70s'", kind,
                            domain);
    pthread_mutex_lock(&m->svc_lock);
    service_t *sv = NULL;
    for (size_t i = 0; i < m->nsvcs && sv == NULL; i++)
        if (strcmp(m->svcs[i]->domain, domain) == 0 && strcmp(m->svcs[i]->kind, kind) == 0)
            sv = m->svcs[i];
    mesh_status_t st = MESH_OK;
    if (sv == NULL) {
        if (m->nsvcs == MESH_MESH_SERVICES_MAX) {
            st = mesh_err_set(err, MESH_LIMIT, "more than %d served request kinds",
                              MESH_MESH_SERVICES_MAX);
        } else {
            service_t **nv = realloc(m->svcs, (m->nsvcs + 1) * sizeof *nv);
            if (nv)
                m->svcs = nv;
            sv = nv ? calloc(1, sizeof *sv) : NULL;
            if (sv == NULL) {
                st = mesh_err_set(err, MESH_NOMEM, "out of memory");
            } else {
                snprintf(sv->domain, sizeof sv->domain, "%s", domain);
                snprintf(sv->kind, sizeof sv->kind, "%s", kind);
                sv->m = m;
                m->svcs[m->nsvcs++] = sv;
            }
        }
    }
    if (sv != NULL) {
        sv->fn = fn;
        sv->arg = arg;
    }
    pthread_mutex_unlock(&m->svc_lock);
    if (st == MESH_OK) {
        pthread_rwlock_rdlock(&m->kv_lock);
        subscribe_services(m);
        pthread_rwlock_unlock(&m->kv_lock);
    }
    return st;
}

void mesh_mesh_unserve(mesh_mesh_t *m, const char *domain, const char *kind)
{
    pthread_rwlock_rdlock(&m->kv_lock);
    pthread_mutex_lock(&m->svc_lock);
    for (size_t i = 0; i < m->nsvcs; i++) {
        service_t *sv = m->svcs[i];
        if (strcmp(sv->domain, domain) != 0 || strcmp(sv->kind, kind) != 0)
            continue;
        sv->fn = NULL;
        if (sv->sub) {
            if (sv->sub_gen == m->conn_gen)
                natsSubscription_Unsubscribe(sv->sub);
            natsSubscription_Destroy(sv->sub);
            sv->sub = NULL;
        }
        while (sv->running > 0)
            pthread_cond_wait(&m->svc_cv, &m->svc_lock);
    }
    pthread_mutex_unlock(&m->svc_lock);
    pthread_rwlock_unlock(&m->kv_lock);
}

mesh_status_t mesh_mesh_request(mesh_mesh_t *m, const char *domain, const char *kind, const void *p,
                                size_t n, int64_t timeout_ns, mesh_buf_t *reply, mesh_err_t *err)
{
    if (!mesh_name_domain_ok(domain) || !kind_ok(kind))
        return mesh_err_set(err, MESH_INVALID, "no request kind '%.40s' of domain '%.70s'", kind,
                            domain);
    char subj[160];
    request_subject(subj, sizeof subj, domain, kind);
    pthread_rwlock_rdlock(&m->kv_lock);
    if (m->nc == NULL || natsConnection_Status(m->nc) != NATS_CONN_STATUS_CONNECTED) {
        pthread_rwlock_unlock(&m->kv_lock);
        return mesh_err_set(err, MESH_UNAVAILABLE, "not connected to the mesh");
    }
    int64_t max = natsConnection_GetMaxPayload(m->nc);
    if (max > 0 && (int64_t)n > max) {
        pthread_rwlock_unlock(&m->kv_lock);
        return mesh_err_set(err, MESH_TOO_LARGE,
                            "a request of %zu bytes exceeds the servers' max payload (%lld bytes)",
                            n, (long long)max);
    }
    natsMsg *r = NULL;
    int64_t ms = timeout_ns / 1000000;
    natsStatus s = natsConnection_Request(&r, m->nc, subj, p, (int)n, ms > 0 ? ms : 1);
    pthread_rwlock_unlock(&m->kv_lock);
    mesh_status_t st = MESH_OK;
    if (s == NATS_NO_RESPONDERS)
        st = mesh_err_set(err, MESH_UNAVAILABLE, "no node answers %s", subj);
    else if (s == NATS_TIMEOUT)
        st = mesh_err_set(err, MESH_TIMEOUT, "no answer to %s within %lld ms", subj, (long long)ms);
    else if (s == NATS_NOT_PERMITTED)
        st = mesh_err_set(err, MESH_FORBIDDEN, "the servers refuse this node %s", subj);
    else if (s != NATS_OK)
        st = mesh_err_set(err, MESH_UNAVAILABLE, "%s: %s", subj, nats_text(s));
    else if (mesh_buf_add(reply, natsMsg_GetData(r), (size_t)natsMsg_GetDataLength(r)) != MESH_OK)
        st = mesh_err_set(err, MESH_TOO_LARGE, "the reply to %s is too large", subj);
    natsMsg_Destroy(r);
    return st;
}

static void *run(void *arg)
{
    mesh_thread_name("mesh", NULL);
    mesh_mesh_t *m = arg;
    int64_t next_try = 0;
    for (;;) {
        pthread_mutex_lock(&m->mu);
        bool stop = m->stop;
        m->wake = false;
        pthread_mutex_unlock(&m->mu);
        if (stop)
            break;
        if (m->nc == NULL && mesh_mono_ns() >= next_try) {
            connect_start(m);
            if (m->nc == NULL)
                next_try = mesh_mono_ns() + BACKOFF_MAX_MS * 1000000LL;
        }
        natsConnStatus cs = m->nc ? natsConnection_Status(m->nc) : NATS_CONN_STATUS_CLOSED;
        if (m->nc && cs == NATS_CONN_STATUS_CLOSED) {
            /* libnats gave up (e.g. the same authentication error twice): start again */
            LOG_WARN("mesh", "NATS connection closed; connecting again in %d s",
                     BACKOFF_MAX_MS / 1000);
            disconnect(m);
            next_try = mesh_mono_ns() + BACKOFF_MAX_MS * 1000000LL;
        } else if (cs == NATS_CONN_STATUS_CONNECTED) {
            check_server(m);
            pthread_rwlock_rdlock(&m->kv_lock);
            subscribe_services(m);
            pthread_rwlock_unlock(&m->kv_lock);
            if (m->kv == NULL)
                ensure_bucket(m);
            if (m->kv)
                heartbeat(m, false);
        }
        /* sleep one heartbeat, or until a connection event or stop */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t wait = m->heartbeat_ns;
        if (m->nc && natsConnection_Status(m->nc) == NATS_CONN_STATUS_CONNECTED && m->kv == NULL)
            wait = MESH_NS_PER_SEC; /* the bucket failed: retry sooner */
        ts.tv_sec += (time_t)(wait / MESH_NS_PER_SEC);
        ts.tv_nsec += (long)(wait % MESH_NS_PER_SEC);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&m->mu);
        while (!m->stop && !m->wake)
            if (pthread_cond_timedwait(&m->cv, &m->mu, &ts) == ETIMEDOUT)
                break;
        pthread_mutex_unlock(&m->mu);
    }
    /* a clean stop: say so in the registry, so the node is not alive at once */
    if (m->nc && m->kv && natsConnection_Status(m->nc) == NATS_CONN_STATUS_CONNECTED)
        heartbeat(m, true);
    return NULL;
}

/* ---- start and stop ---- */

static mesh_status_t read_password(const char *path, char **out, mesh_err_t *err)
{
    char *text = NULL;
    size_t len = 0;
    mesh_status_t st = mesh_read_file(path, PASSWORD_MAX, &text, &len, err);
    if (st != MESH_OK) {
        mesh_err_prefix(err, "mesh_password_file: ");
        return st;
    }
    size_t n = strcspn(text, "\r\n");
    text[n] = '\0';
    if (n == 0) {
        free(text);
        return mesh_err_set(err, MESH_INVALID, "mesh_password_file %s: empty first line", path);
    }
    *out = text;
    return MESH_OK;
}

static char *dup_or_null(const char *s)
{
    return s && *s ? mesh_strdup(s) : NULL;
}

mesh_status_t mesh_mesh_start(const mesh_mesh_opts_t *o, mesh_mesh_t **out, mesh_err_t *err)
{
    *out = NULL;
    if (!mesh_entry_node_name_ok(o->node_name))
        return mesh_err_set(err, MESH_INVALID,
                            "node_name '%s' cannot name a mesh node: use 1-63 of A-Z a-z 0-9 - _",
                            o->node_name);
    if (o->heartbeat_ns <= 0 || o->timeout_ns <= 0 || o->describe == NULL)
        return mesh_err_set(err, MESH_INVALID, "mesh: bad options");
    const char *files[][2] = {{"mesh_tls_ca", o->tls_ca},
                              {"mesh_tls_cert", o->tls_cert},
                              {"mesh_tls_key", o->tls_key},
                              {"mesh_password_file", o->password_file}};
    for (size_t i = 0; i < MESH_ARRAY_LEN(files); i++)
        if (files[i][1] && *files[i][1] && access(files[i][1], R_OK) != 0)
            return mesh_err_set(err, MESH_INVALID, "%s %s: %s", files[i][0], files[i][1],
                                strerror(errno));
    if ((o->tls_cert && *o->tls_cert) != (o->tls_key && *o->tls_key))
        return mesh_err_set(err, MESH_INVALID, "mesh_tls_cert and mesh_tls_key go together");
    if (o->password_file && *o->password_file && !(o->user && *o->user))
        return mesh_err_set(err, MESH_INVALID, "mesh_password_file needs mesh_user");
    mesh_mesh_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    /* writers first: replicator threads take it for reading over and over, and the mesh
     * thread must still get it to replace a connection closed for good */
    pthread_rwlockattr_t rwa;
    pthread_rwlockattr_init(&rwa);
    pthread_rwlockattr_setkind_np(&rwa, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&m->kv_lock, &rwa);
    pthread_rwlockattr_destroy(&rwa);
    pthread_mutex_init(&m->svc_lock, NULL);
    pthread_cond_init(&m->svc_cv, NULL);
    m->st.state = "connecting";
    /* the server list: comma-separated URLs */
    const char *p = o->servers ? o->servers : "";
    mesh_status_t st = MESH_OK;
    while (*p && st == MESH_OK) {
        size_t n = strcspn(p, ",");
        size_t a = 0;
        while (a < n && p[a] == ' ')
            a++;
        size_t b = n;
        while (b > a && p[b - 1] == ' ')
            b--;
        if (b > a) {
            if (m->nservers == MAX_SERVERS)
                st = mesh_err_set(err, MESH_LIMIT, "mesh: more than %d servers", MAX_SERVERS);
            else if ((m->servers[m->nservers++] = mesh_strndup(p + a, b - a)) == NULL)
                st = mesh_err_set(err, MESH_NOMEM, "out of memory");
        }
        p += n;
        if (*p == ',')
            p++;
    }
    if (st == MESH_OK && m->nservers == 0)
        st = mesh_err_set(err, MESH_INVALID, "mesh: no server URL");
    for (int i = 0; i < m->nservers && st == MESH_OK; i++) {
        const char *u = m->servers[i];
        if (strncmp(u, "nats://", 7) != 0 && strncmp(u, "tls://", 6) != 0)
            st = mesh_err_set(err, MESH_INVALID, "mesh: '%s' is not a nats:// or tls:// URL", u);
        else if (strchr(u, '@'))
            st = mesh_err_set(err, MESH_INVALID,
                              "mesh: credentials in a server URL end up in process lists and "
                              "logs: use mesh_user and mesh_password_file");
    }
    char inbox[128];
    snprintf(inbox, sizeof inbox, "_INBOX_%s", o->node_name);
    m->tls_ca = dup_or_null(o->tls_ca);
    m->tls_cert = dup_or_null(o->tls_cert);
    m->tls_key = dup_or_null(o->tls_key);
    m->user = dup_or_null(o->user);
    m->js_domain = dup_or_null(o->js_domain);
    m->node_name = mesh_strdup(o->node_name);
    m->inbox = mesh_strdup(inbox);
    m->heartbeat_ns = o->heartbeat_ns;
    m->timeout_ns = o->timeout_ns;
    m->replicas = o->replicas;
    m->stream_max_age_ns = o->stream_max_age_ns;
    m->stream_max_bytes = o->stream_max_bytes;
    m->stream_max_msgs = o->stream_max_msgs;
    m->describe = o->describe;
    m->describe_arg = o->describe_arg;
    if (st == MESH_OK && (m->node_name == NULL || m->inbox == NULL))
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
    if (st == MESH_OK && o->password_file && *o->password_file)
        st = read_password(o->password_file, &m->password, err);
    if (st == MESH_OK && pthread_create(&m->thread, NULL, run, m) != 0)
        st = mesh_err_set(err, MESH_INTERNAL, "cannot start the mesh thread");
    if (st != MESH_OK) {
        mesh_mesh_stop(m);
        return st;
    }
    m->thread_started = true;
    *out = m;
    return MESH_OK;
}

void mesh_mesh_stop(mesh_mesh_t *m)
{
    if (m == NULL)
        return;
    if (m->thread_started) {
        pthread_mutex_lock(&m->mu);
        m->stop = true;
        pthread_cond_signal(&m->cv);
        pthread_mutex_unlock(&m->mu);
        pthread_join(m->thread, NULL);
    }
    for (size_t i = 0; i < m->nsvcs; i++)
        mesh_mesh_unserve(m, m->svcs[i]->domain, m->svcs[i]->kind);
    if (m->nc)
        natsConnection_Close(m->nc);
    disconnect(m);
    /* libnats calls the closed callback of every connection on its own thread, after
     * Close: m must outlive them */
    if (m->thread_started) {
        int64_t deadline = mesh_mono_ns() + 5 * MESH_NS_PER_SEC;
        pthread_mutex_lock(&m->mu);
        while (m->closed_cbs < m->connections && mesh_mono_ns() < deadline) {
            pthread_mutex_unlock(&m->mu);
            usleep(10000);
            pthread_mutex_lock(&m->mu);
        }
        pthread_mutex_unlock(&m->mu);
        /* not nats_CloseAndWait(): with a TLS connection made, libnats' cleanup leaves
         * OpenSSL in a state where OpenSSL's own cleanup at exit crashes (seen with
         * libnats 3.4.1 and OpenSSL 3.0); its few global objects stay reachable instead */
    }
    for (int i = 0; i < m->nservers; i++)
        free(m->servers[i]);
    if (m->password) {
        explicit_bzero(m->password, strlen(m->password));
        free(m->password);
    }
    free(m->tls_ca);
    free(m->tls_cert);
    free(m->tls_key);
    free(m->user);
    free(m->js_domain);
    free(m->node_name);
    free(m->inbox);
    for (size_t i = 0; i < m->nsvcs; i++)
        free(m->svcs[i]);
    free(m->svcs);
    pthread_cond_destroy(&m->svc_cv);
    pthread_mutex_destroy(&m->svc_lock);
    pthread_rwlock_destroy(&m->kv_lock);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

natsConnection *mesh__mesh_conn_get(mesh_mesh_t *m)
{
    pthread_rwlock_rdlock(&m->kv_lock);
    return m->nc;
}

void mesh__mesh_conn_put(mesh_mesh_t *m)
{
    pthread_rwlock_unlock(&m->kv_lock);
}

const char *mesh__mesh_node_name(const mesh_mesh_t *m)
{
    return m->node_name;
}

const char *mesh__mesh_inbox(const mesh_mesh_t *m)
{
    return m->inbox;
}

int64_t mesh__mesh_timeout_ns(const mesh_mesh_t *m)
{
    return m->timeout_ns;
}

mesh_status_t mesh_mesh_get(mesh_mesh_t *m, const char *name, mesh_mesh_node_t *out,
                            mesh_err_t *err)
{
    memset(out, 0, sizeof *out);
    if (!mesh_entry_node_name_ok(name))
        return mesh_err_set(err, MESH_INVALID, "'%s' is not a node name", name);
    pthread_rwlock_rdlock(&m->kv_lock);
    if (m->kv == NULL) {
        pthread_rwlock_unlock(&m->kv_lock);
        return mesh_err_set(err, MESH_UNAVAILABLE, "not connected to the mesh");
    }
    kvEntry *e = NULL;
    natsStatus s = kvStore_Get(&e, m->kv, name);
    pthread_rwlock_unlock(&m->kv_lock);
    if (s == NATS_NOT_FOUND)
        return mesh_err_set(err, MESH_NOT_FOUND, "node %s is not in the registry", name);
    if (s != NATS_OK)
        return mesh_err_set(err, MESH_UNAVAILABLE, "registry: %s", nats_text(s));
    mesh_status_t st =
        mesh_entry_parse(kvEntry_ValueString(e), (size_t)kvEntry_ValueLen(e), &out->e, err);
    if (st == MESH_OK) {
        out->written_ns = kvEntry_Created(e);
        out->alive = !out->e->stopped && mesh_now_ns() - out->written_ns < out->e->ttl_ns;
    }
    kvEntry_Destroy(e);
    return st;
}

void mesh_mesh_status(mesh_mesh_t *m, mesh_mesh_status_t *out)
{
    pthread_mutex_lock(&m->mu);
    *out = m->st;
    pthread_mutex_unlock(&m->mu);
}

/* ---- for the other files of mesh/ (mesh/internal.h) ---- */

natsConnection *mesh__mesh_conn(mesh_mesh_t *m, uint64_t *gen)
{
    pthread_rwlock_rdlock(&m->kv_lock);
    *gen = m->conn_gen;
    if (m->nc == NULL || natsConnection_Status(m->nc) != NATS_CONN_STATUS_CONNECTED)
        return NULL;
    return m->nc;
}

bool mesh__mesh_conn_reconnecting(mesh_mesh_t *m)
{
    return m->nc != NULL && natsConnection_Status(m->nc) == NATS_CONN_STATUS_RECONNECTING;
}

void mesh__mesh_conn_done(mesh_mesh_t *m)
{
    pthread_rwlock_unlock(&m->kv_lock);
}

void mesh__mesh_stream_limits(const mesh_mesh_t *m, int64_t *max_age_ns, int64_t *max_bytes,
                              int64_t *max_msgs)
{
    *max_age_ns = m->stream_max_age_ns;
    *max_bytes = m->stream_max_bytes;
    *max_msgs = m->stream_max_msgs;
}

int mesh__mesh_replicas(const mesh_mesh_t *m)
{
    return m->replicas;
}

/* ---- reading the registry ---- */

static int by_name(const void *a, const void *b)
{
    const mesh_mesh_node_t *x = a, *y = b;
    return strcmp(x->e->name, y->e->name);
}

mesh_status_t mesh_mesh_list(mesh_mesh_t *m, mesh_mesh_node_t **out, size_t *n, mesh_err_t *err)
{
    *out = NULL;
    *n = 0;
    pthread_rwlock_rdlock(&m->kv_lock);
    if (m->kv == NULL || m->nc == NULL ||
        natsConnection_Status(m->nc) != NATS_CONN_STATUS_CONNECTED) {
        pthread_rwlock_unlock(&m->kv_lock);
        return mesh_err_set(err, MESH_UNAVAILABLE, "not connected to the mesh");
    }
    /* the keys are the bucket stream's subjects, as its leader lists them: no consumer (a
     * watch would make one, which the meta leader places, and after a server's death that
     * can time out for long while the stream itself answers) */
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = m->timeout_ns / 1000000;
    jo.Stream.Info.SubjectsFilter = "$KV." MESH_REGISTRY_BUCKET ".>";
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, m->js, "KV_" MESH_REGISTRY_BUCKET, &jo, &jerr);
    if (s != NATS_OK) {
        pthread_rwlock_unlock(&m->kv_lock);
        return mesh_err_set(err, MESH_UNAVAILABLE, "registry: %s", nats_text(s));
    }
    const jsStreamStateSubjects *subj = si->State.Subjects;
    size_t nkeys = subj ? (size_t)subj->Count : 0;
    size_t cap = nkeys < MESH_REGISTRY_MAX_KEYS ? nkeys : MESH_REGISTRY_MAX_KEYS;
    const size_t pfx = strlen("$KV." MESH_REGISTRY_BUCKET ".");
    mesh_mesh_node_t *v = calloc(cap ? cap : 1, sizeof *v);
    mesh_status_t st = v ? MESH_OK : mesh_err_set(err, MESH_NOMEM, "out of memory");
    size_t k = 0;
    int64_t now = mesh_now_ns();
    for (size_t i = 0; i < cap && st == MESH_OK; i++) {
        const char *key = subj->List[i].Subject;
        if (key == NULL || strlen(key) <= pfx)
            continue;
        key += pfx;
        kvEntry *e = NULL;
        s = kvStore_Get(&e, m->kv, key);
        if (s == NATS_NOT_FOUND)
            continue;
        if (s != NATS_OK) {
            st = mesh_err_set(err, MESH_UNAVAILABLE, "registry %s: %s", key, nats_text(s));
            break;
        }
        mesh_err_t perr;
        mesh_entry_t *pe = NULL;
        if (mesh_entry_parse(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), &pe, &perr) !=
            MESH_OK) {
            LOG_WARN("mesh", "registry entry %.64s refused: %s", key, perr.msg);
        } else if (strcmp(pe->name, key) != 0) {
            LOG_WARN("mesh", "registry entry %.64s refused: it names node %s", key, pe->name);
            mesh_entry_free(pe);
        } else {
            v[k].e = pe;
            v[k].written_ns = kvEntry_Created(e);
            v[k].alive = !pe->stopped && now - v[k].written_ns < pe->ttl_ns;
            k++;
        }
        kvEntry_Destroy(e);
    }
    pthread_rwlock_unlock(&m->kv_lock);
    jsStreamInfo_Destroy(si);
    if (st != MESH_OK) {
        mesh_mesh_list_free(v, k);
        return st;
    }
    qsort(v, k, sizeof *v, by_name);
    *out = v;
    *n = k;
    return MESH_OK;
}

void mesh_mesh_list_free(mesh_mesh_node_t *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        mesh_entry_free(v[i].e);
    free(v);
}
