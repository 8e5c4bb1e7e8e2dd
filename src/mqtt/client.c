/*
 * client.c - the MQTT connection, its thread, the mapping set and the counters (client.h).
 *
 * Threads. The connection thread owns the mosquitto handle: it connects, runs mosquitto_loop
 * (whose callbacks run on it), subscribes and unsubscribes. HTTP workers only change the
 * mapping set under `lock` and set `resub`; the thread does the (un)subscribing. A mapping
 * removed at run time is unlinked from the set and kept on a list freed at stop, so the
 * connection thread may go on using one it found a moment before.
 *
 * State for status and metrics (connection state, last error, counters) is under `lock` or
 * atomic; nothing there is ever a secret (the password is only handed to libmosquitto).
 */
#include "mqtt/client.h"

#include <errno.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "auth/policy.h"
#include "catalog/mqtt.h"
#include "catalog/security.h"
#include "core/log.h"
#include "core/util.h"
#include "http/metrics.h"
#include "mqtt/ingest.h"

typedef struct entry {
    mesh_mqtt_mapping_t m;
    bool subscribed; /* the broker acknowledged the subscription (SUBACK) */
    bool sub_sent;   /* SUBSCRIBE sent on the current connection */
    int sub_mid;     /* its message id */
    bool removed;    /* unlinked: to be unsubscribed */
    atomic_uint_fast64_t results[MESH_MQTT_RESULT__COUNT];
    atomic_uint_fast64_t rows, quarantined_rows, bytes;
    _Atomic int64_t last_message_ns;
    /* the principal, looked up again when the policy version changes (connection thread) */
    mesh_identity_t who;
    int64_t who_version;
    bool who_found, who_disabled;
    struct entry *next;
} entry_t;

typedef enum { ST_OFF = 0, ST_CONNECTING, ST_CONNECTED, ST_WAITING } conn_state_t;

struct mesh_mqtt {
    mesh_registry_t *reg;
    mesh_catalog_t *cat;
    mesh_auth_t *auth;
    mesh_audit_t *audit;
    mesh_mqtt_ingest_opts_t io;
    /* connection settings (owned copies) */
    char *url, *host, *username, *password, *tls_ca, *client_cert, *client_key, *client_id;
    int port;
    bool tls;
    int protocol; /* MQTT_PROTOCOL_V5 or MQTT_PROTOCOL_V311 */
    int keepalive_s;
    uint32_t session_expiry_s;
    int64_t backoff_min_ns, backoff_max_ns;
    struct mosquitto *mosq;
    pthread_t thread;
    bool thread_started;
    /* under lock */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    entry_t *entries; /* the live mapping set, by name */
    entry_t *removed; /* unlinked, freed at stop */
    bool resub;       /* the set changed: the thread (un)subscribes */
    conn_state_t state;
    int64_t state_since_ns;
    char last_error[256];
    int64_t last_error_ns;
    int64_t next_attempt_ns; /* wall clock of the next connect attempt (ST_WAITING) */
    bool session_present;
    /* counters */
    atomic_uint_fast64_t connects, connect_failures, disconnects, unmatched;
    /* publishing (rule actions, mesh_mqtt_publish): the message ids the broker acknowledged
     * (QoS 1) or that went out (QoS 0), newest last, under pub_lock */
    pthread_mutex_t pub_lock;
    pthread_cond_t pub_cond;
    int pub_done[64];
    size_t pub_next;
    atomic_uint_fast64_t published;
};

/* ---- small helpers ---- */

static void set_state(mesh_mqtt_t *q, conn_state_t s)
{
    pthread_mutex_lock(&q->lock);
    if (q->state != s)
        q->state_since_ns = mesh_now_ns();
    q->state = s;
    pthread_mutex_unlock(&q->lock);
}

static void set_error(mesh_mqtt_t *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(mesh_mqtt_t *q, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&q->lock);
    bool same = strcmp(q->last_error, msg) == 0;
    snprintf(q->last_error, sizeof q->last_error, "%s", msg);
    q->last_error_ns = mesh_now_ns();
    pthread_mutex_unlock(&q->lock);
    /* one line per new error, not one per reconnect attempt */
    if (!same)
        LOG_WARN("mqtt", "%s", msg);
}

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

/* Parses mqtt://HOST[:PORT] / mqtts://HOST[:PORT] ([v6] in brackets). */
static mesh_status_t parse_url(mesh_mqtt_t *q, const char *url, mesh_err_t *err)
{
    const char *rest;
    if (strncmp(url, "mqtt://", 7) == 0) {
        rest = url + 7;
        q->tls = false;
        q->port = 1883;
    } else if (strncmp(url, "mqtts://", 8) == 0) {
        rest = url + 8;
        q->tls = true;
        q->port = 8883;
    } else {
        return mesh_err_set(err, MESH_INVALID,
                            "mqtt_url: '%.100s' is not mqtt://HOST[:PORT] or mqtts://HOST[:PORT]",
                            url);
    }
    const char *host = rest, *hend, *colon = NULL;
    if (*rest == '[') {
        host = rest + 1;
        hend = strchr(host, ']');
        if (hend == NULL)
            return mesh_err_set(err, MESH_INVALID, "mqtt_url: unterminated '[' in '%.100s'", url);
        if (hend[1] == ':')
            colon = hend + 1;
        else if (hend[1] != '\0' && strcmp(hend + 1, "/") != 0)
            return mesh_err_set(err, MESH_INVALID, "mqtt_url: unexpected text after ']'");
    } else {
        hend = host + strcspn(host, ":/");
        if (*hend == ':')
            colon = hend;
    }
    if (hend == host)
        return mesh_err_set(err, MESH_INVALID, "mqtt_url: no host in '%.100s'", url);
    if (colon) {
        const char *p = colon + 1;
        size_t n = strcspn(p, "/");
        int64_t port;
        if (mesh_parse_i64(p, n, &port) != MESH_OK || port < 1 || port > 65535)
            return mesh_err_set(err, MESH_INVALID, "mqtt_url: bad port in '%.100s'", url);
        q->port = (int)port;
    }
    q->host = mesh_strndup(host, (size_t)(hend - host));
    return q->host ? MESH_OK : mesh_err_set(err, MESH_NOMEM, "out of memory");
}

/* ---- the mapping set ---- */

static entry_t *find_entry(entry_t *list, const char *name)
{
    for (entry_t *e = list; e; e = e->next)
        if (strcmp(e->m.name, name) == 0)
            return e;
    return NULL;
}

/* The live mapping (other than m itself) whose topics overlap m's, or NULL. Under lock. */
static entry_t *overlapping(mesh_mqtt_t *q, const mesh_mqtt_mapping_t *m)
{
    for (entry_t *e = q->entries; e; e = e->next)
        if (strcmp(e->m.name, m->name) != 0 && mesh_topic_tmpl_overlap(&e->m.tmpl, &m->tmpl))
            return e;
    return NULL;
}

/* Links a copy of m (its template moved) into the set, kept sorted by name. Under lock. */
static entry_t *link_entry(mesh_mqtt_t *q, mesh_mqtt_mapping_t *m)
{
    entry_t *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->m = *m;
    memset(&m->tmpl, 0, sizeof m->tmpl);
    entry_t **pp = &q->entries;
    while (*pp && strcmp((*pp)->m.name, e->m.name) < 0)
        pp = &(*pp)->next;
    e->next = *pp;
    *pp = e;
    q->resub = true;
    return e;
}

static void free_entries(entry_t *e)
{
    while (e) {
        entry_t *next = e->next;
        mesh_mqtt_mapping_free(&e->m);
        free(e);
        e = next;
    }
}

/* Checks m against the catalog: its product exists and has a column for each named level. */
static mesh_status_t check_target(mesh_mqtt_t *q, const mesh_mqtt_mapping_t *m, mesh_err_t *err)
{
    mesh_snapshot_t *s = mesh_registry_snapshot(q->reg);
    mesh_status_t st = MESH_OK;
    const mesh_product_t *p = mesh_snapshot_product(s, m->domain, m->product);
    if (p == NULL) {
        st = mesh_err_set(err, MESH_NOT_FOUND, "no product %s.%s", m->domain, m->product);
        goto out;
    }
    for (size_t i = 0; i < m->tmpl.nlevels; i++) {
        const mesh_topic_level_t *lv = &m->tmpl.levels[i];
        if (lv->kind == MESH_TOPIC_NAMED && mesh_product_col(p, lv->text, lv->len) < 0) {
            st = mesh_err_set(err, MESH_INVALID, "topic: {%s}: product %s.%s has no column %s",
                              lv->text, m->domain, m->product, lv->text);
            goto out;
        }
    }
out:
    mesh_snapshot_put(s);
    return st;
}

typedef struct load_ctx {
    mesh_mqtt_t *q;
} load_ctx_t;

static void load_one(void *arg, const char *name, const char *spec, int64_t created_ns)
{
    load_ctx_t *c = arg;
    mesh_mqtt_mapping_t m;
    mesh_err_t err;
    mesh_err_clear(&err);
    if (mesh_mqtt_mapping_from_json(spec, strlen(spec), &m, &err) != MESH_OK) {
        LOG_WARN("mqtt", "catalog mapping %s is not valid and is skipped: %s", name, err.msg);
        return;
    }
    m.created_ns = created_ns;
    if (find_entry(c->q->entries, m.name)) {
        LOG_WARN("mqtt", "catalog mapping %s is skipped: the config file defines one of that name",
                 m.name);
        mesh_mqtt_mapping_free(&m);
        return;
    }
    entry_t *o = overlapping(c->q, &m);
    if (o) {
        LOG_WARN("mqtt", "catalog mapping %s is skipped: its topics overlap mapping %s's", m.name,
                 o->m.name);
        mesh_mqtt_mapping_free(&m);
        return;
    }
    if (link_entry(c->q, &m) == NULL)
        mesh_mqtt_mapping_free(&m);
}

static mesh_status_t load_mappings(mesh_mqtt_t *q, const mesh_mqtt_opts_t *o, mesh_err_t *err)
{
    for (size_t i = 0; i < o->nconfig_mappings; i++) {
        mesh_mqtt_mapping_t m;
        mesh_status_t st = mesh_mqtt_mapping_from_line(o->config_mappings[i], &m, err);
        if (st != MESH_OK) {
            mesh_err_prefix(err, "mqtt_mapping '%.80s': ", o->config_mappings[i]);
            return st;
        }
        entry_t *dup = find_entry(q->entries, m.name), *ov = overlapping(q, &m);
        if (dup || ov) {
            st = mesh_err_set(err, MESH_INVALID, "mqtt_mapping %s: %s %s", m.name,
                              dup ? "is defined twice" : "its topics overlap mapping",
                              dup ? "" : ov->m.name);
            mesh_mqtt_mapping_free(&m);
            return st;
        }
        mesh_err_t w;
        if (check_target(q, &m, &w) != MESH_OK)
            LOG_WARN("mqtt", "mqtt_mapping %s: %s (its messages are dropped until it exists)",
                     m.name, w.msg);
        if (link_entry(q, &m) == NULL) {
            mesh_mqtt_mapping_free(&m);
            return mesh_err_set(err, MESH_NOMEM, "out of memory");
        }
    }
    load_ctx_t c = {q};
    return mesh_catalog_mqtt_list(q->cat, load_one, &c, err);
}

mesh_status_t mesh_mqtt_mapping_add(mesh_mqtt_t *q, mesh_mqtt_mapping_t *m, mesh_err_t *err)
{
    mesh_status_t st = check_target(q, m, err);
    if (st != MESH_OK)
        return st;
    mesh_principal_info_t pi;
    if (mesh_catalog_principal_find(q->cat, m->principal, &pi) != MESH_OK)
        return mesh_err_set(err, MESH_NOT_FOUND,
                            "principal: no principal %s (create it, or name another one)",
                            m->principal);
    m->from_config = false;
    m->created_ns = mesh_now_ns();
    mesh_buf_t spec;
    mesh_buf_init(&spec, MESH_MQTT_MAPPING_MAX_JSON * 2);
    mesh_mqtt_mapping_to_json(m, false, &spec);
    pthread_mutex_lock(&q->lock);
    entry_t *o = find_entry(q->entries, m->name);
    if (o) {
        st = mesh_err_set(err, MESH_CONFLICT, "an MQTT mapping named '%s' exists%s", m->name,
                          o->m.from_config ? " (in the config file)" : "");
    } else if ((o = overlapping(q, m)) != NULL) {
        st = mesh_err_set(err, MESH_CONFLICT,
                          "topic: '%s' overlaps mapping %s ('%s'): a message may belong to one "
                          "mapping only",
                          m->topic, o->m.name, o->m.topic);
    } else if ((st = mesh_catalog_mqtt_put(q->cat, m->name, spec.data, m->created_ns, err)) ==
               MESH_OK) {
        if (link_entry(q, m) == NULL)
            st = mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    pthread_mutex_unlock(&q->lock);
    mesh_buf_free(&spec);
    return st;
}

mesh_status_t mesh_mqtt_mapping_remove(mesh_mqtt_t *q, const char *name, mesh_err_t *err)
{
    pthread_mutex_lock(&q->lock);
    mesh_status_t st = MESH_OK;
    entry_t **pp = &q->entries;
    while (*pp && strcmp((*pp)->m.name, name) != 0)
        pp = &(*pp)->next;
    entry_t *e = *pp;
    if (e == NULL) {
        st = mesh_err_set(err, MESH_NOT_FOUND, "no MQTT mapping named '%s'", name);
    } else if (e->m.from_config) {
        st = mesh_err_set(err, MESH_CONFLICT,
                          "mapping %s is defined in the config file (mqtt_mapping): remove it "
                          "there",
                          name);
    } else if ((st = mesh_catalog_mqtt_delete(q->cat, name, err)) == MESH_OK) {
        *pp = e->next;
        e->removed = true;
        e->next = q->removed;
        q->removed = e;
        q->resub = true;
    }
    pthread_mutex_unlock(&q->lock);
    return st;
}

/* ---- authorisation and audit of messages (connection thread) ---- */

static bool decide(mesh_mqtt_t *q, entry_t *e, const mesh_snapshot_t *s, mesh_decision_t *d)
{
    memset(d, 0, sizeof *d);
    mesh_policy_t *pol = mesh_auth_policy(q->auth);
    if (pol == NULL) {
        snprintf(d->why, sizeof d->why, "no policy");
        return false;
    }
    int64_t ver = mesh_policy_version(pol);
    if (e->who_version != ver || e->who_version == 0) {
        mesh_principal_info_t pi;
        e->who_found = mesh_catalog_principal_find(q->cat, e->m.principal, &pi) == MESH_OK;
        memset(&e->who, 0, sizeof e->who);
        if (e->who_found) {
            e->who.principal_id = pi.id;
            snprintf(e->who.name, sizeof e->who.name, "%s", pi.name);
            snprintf(e->who.roles, sizeof e->who.roles, "%s", pi.roles);
            e->who_disabled = pi.disabled;
        }
        e->who_version = ver;
    }
    bool ok = false;
    d->version = ver;
    if (!e->who_found) {
        snprintf(d->why, sizeof d->why, "no principal %s", e->m.principal);
    } else if (e->who_disabled) {
        snprintf(d->why, sizeof d->why, "principal %s is disabled", e->m.principal);
    } else {
        bool owner = false;
        const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, e->m.domain);
        for (size_t i = 0; sd && i < sd->meta.nowners; i++)
            owner = owner || strcmp(sd->meta.owners[i], e->who.name) == 0;
        ok = mesh_policy_decide(pol, &e->who, MESH_ACT_WRITE, e->m.domain, e->m.product, owner, d);
    }
    mesh_policy_put(pol);
    return ok;
}

static void audit_message(mesh_mqtt_t *q, const entry_t *e, const char *topic,
                          const mesh_mqtt_outcome_t *out, const mesh_decision_t *d)
{
    if (q->audit == NULL)
        return;
    mesh_buf_t b;
    mesh_buf_init(&b, 8192);
    mesh_buf_adds(&b, "{\"via\":\"mqtt\",\"mapping\":");
    mesh_buf_add_json_str(&b, e->m.name, strlen(e->m.name));
    mesh_buf_adds(&b, ",\"topic\":");
    mesh_buf_add_json_str(&b, topic, strnlen(topic, 1024));
    mesh_buf_printf(&b, ",\"result\":\"%s\"", mesh_mqtt_result_name(out->result));
    if (out->result == MESH_MQTT_DENIED) {
        mesh_buf_adds(&b, ",\"right\":\"write\",\"why\":");
        mesh_buf_add_json_str(&b, d->why, strnlen(d->why, sizeof d->why));
    } else {
        mesh_buf_printf(&b, ",\"accepted\":%zu,\"quarantined\":%zu,\"seq\":%llu", out->rows,
                        out->quarantined, (unsigned long long)out->seq);
    }
    if (out->reason[0] && out->result != MESH_MQTT_DENIED) {
        mesh_buf_adds(&b, ",\"reason\":");
        mesh_buf_add_json_str(&b, out->reason, strnlen(out->reason, sizeof out->reason));
    }
    mesh_buf_addc(&b, '}');
    int status = out->result == MESH_MQTT_DENIED    ? 403
                 : out->result == MESH_MQTT_FAILED  ? 500
                 : out->result == MESH_MQTT_DROPPED ? 404
                                                    : 200;
    mesh_audit_rec_t rec = {.action = out->result == MESH_MQTT_DENIED ? MESH_AUDIT_AUTHZ_DENY
                                                                      : MESH_AUDIT_WRITE,
                            .principal_id = e->who.principal_id,
                            .principal = e->m.principal,
                            .auth = "mqtt",
                            .domain = e->m.domain,
                            .product = e->m.product,
                            .status = status,
                            .details = b.data,
                            .policy_version = d->version};
    mesh_audit_record(q->audit, &rec);
    mesh_buf_free(&b);
}

/* ---- libmosquitto callbacks (connection thread) ---- */

static const char *reason_text(mesh_mqtt_t *q, int rc)
{
    return q->protocol == MQTT_PROTOCOL_V5 ? mosquitto_reason_string(rc)
                                           : mosquitto_connack_string(rc);
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
    (void)mosq;
    (void)props;
    mesh_mqtt_t *q = obj;
    if (rc != 0) {
        atomic_fetch_add(&q->connect_failures, 1);
        set_error(q, "the broker %s:%d refused the connection: %s (%d)", q->host, q->port,
                  reason_text(q, rc), rc);
        return;
    }
    atomic_fetch_add(&q->connects, 1);
    pthread_mutex_lock(&q->lock);
    q->session_present = (flags & 1) != 0;
    q->last_error[0] = '\0';
    for (entry_t *e = q->entries; e; e = e->next)
        e->subscribed = e->sub_sent = false;
    q->resub = true;
    pthread_mutex_unlock(&q->lock);
    set_state(q, ST_CONNECTED);
    LOG_INFO("mqtt", "connected to %s:%d as %s (%s, session %s)", q->host, q->port, q->client_id,
             q->tls ? "TLS" : "plain TCP", (flags & 1) ? "resumed" : "new");
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc,
                          const mosquitto_property *props)
{
    (void)mosq;
    (void)props;
    mesh_mqtt_t *q = obj;
    pthread_mutex_lock(&q->lock);
    bool was = q->state == ST_CONNECTED;
    pthread_mutex_unlock(&q->lock);
    if (was) {
        atomic_fetch_add(&q->disconnects, 1);
        if (rc != 0)
            set_error(q, "connection to %s:%d lost: %s", q->host, q->port,
                      rc < 128 ? mosquitto_strerror(rc) : reason_text(q, rc));
    }
    set_state(q, ST_CONNECTING);
}

static void count(entry_t *e, const mesh_mqtt_outcome_t *out, size_t bytes)
{
    atomic_fetch_add(&e->results[out->result], 1);
    atomic_fetch_add(&e->rows, out->rows);
    atomic_fetch_add(&e->quarantined_rows, out->quarantined);
    atomic_fetch_add(&e->bytes, bytes);
    atomic_store(&e->last_message_ns, mesh_now_ns());
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    (void)props;
    mesh_mqtt_t *q = obj;
    const char *topic = msg->topic ? msg->topic : "";
    size_t tlen = strlen(topic);
    pthread_mutex_lock(&q->lock);
    entry_t *e = q->entries;
    while (e && !mesh_topic_tmpl_match(&e->m.tmpl, topic, tlen, NULL))
        e = e->next;
    pthread_mutex_unlock(&q->lock);
    if (e == NULL) {
        /* a subscription of a mapping removed while meshd was away: acknowledged, counted */
        atomic_fetch_add(&q->unmatched, 1);
        LOG_DEBUG("mqtt", "message on %s matches no mapping: dropped", topic);
        return;
    }
    size_t n = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    mesh_snapshot_t *s = mesh_registry_snapshot(q->reg);
    mesh_decision_t d;
    mesh_mqtt_outcome_t out;
    memset(&out, 0, sizeof out);
    if (!decide(q, e, s, &d)) {
        out.result = MESH_MQTT_DENIED;
        snprintf(out.reason, sizeof out.reason, "%s may not write %s.%s: %s", e->m.principal,
                 e->m.domain, e->m.product, d.why);
        LOG_DEBUG("mqtt", "mapping %s: %s", e->m.name, out.reason);
    } else {
        mesh_mqtt_ingest(&q->io, &e->m, s, topic, tlen, msg->payload ? msg->payload : "", n, &out);
    }
    mesh_snapshot_put(s);
    count(e, &out, n);
    audit_message(q, e, topic, &out, &d);
    if (out.result == MESH_MQTT_FAILED) {
        /* Not durable: the PUBACK libmosquitto queued before this callback must never reach
         * the broker. The socket is shut down here, before the loop's write phase, so nothing
         * queued is sent; the broker keeps the message and redelivers it to the session after
         * the reconnect. */
        int fd = mosquitto_socket(mosq);
        if (fd >= 0)
            shutdown(fd, SHUT_RDWR);
        set_error(q,
                  "mapping %s: a message on %s could not be written (%s); reconnecting so the "
                  "broker redelivers it",
                  e->m.name, topic, out.reason);
        mosquitto_disconnect_v5(mosq,
                                q->protocol == MQTT_PROTOCOL_V5 ? MQTT_RC_UNSPECIFIED
                                                                : MQTT_RC_NORMAL_DISCONNECTION,
                                NULL);
    } else if (out.result == MESH_MQTT_QUARANTINED || out.result == MESH_MQTT_DROPPED) {
        LOG_DEBUG("mqtt", "mapping %s: message on %s %s: %s", e->m.name, topic,
                  mesh_mqtt_result_name(out.result), out.reason);
    }
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int nqos, const int *granted,
                         const mosquitto_property *props)
{
    (void)mosq;
    (void)props;
    mesh_mqtt_t *q = obj;
    pthread_mutex_lock(&q->lock);
    for (entry_t *e = q->entries; e; e = e->next) {
        if (!e->sub_sent || e->sub_mid != mid)
            continue;
        /* 0x80 and above: the broker refused the subscription (an ACL, a bad filter) */
        if (nqos >= 1 && granted[0] >= 0x80) {
            pthread_mutex_unlock(&q->lock);
            set_error(q, "mapping %s: the broker refused the subscription to %s (%s)", e->m.name,
                      e->m.tmpl.filter, reason_text(q, granted[0]));
            return;
        }
        e->subscribed = true;
    }
    pthread_mutex_unlock(&q->lock);
}

/* ---- the connection thread ---- */

/* Subscribes the mappings not yet subscribed and unsubscribes removed ones. */
static void sync_subscriptions(mesh_mqtt_t *q)
{
    pthread_mutex_lock(&q->lock);
    if (!q->resub || q->state != ST_CONNECTED) {
        pthread_mutex_unlock(&q->lock);
        return;
    }
    q->resub = false;
    for (entry_t *e = q->entries; e; e = e->next) {
        if (e->sub_sent)
            continue;
        int opts = q->protocol == MQTT_PROTOCOL_V5 ? MQTT_SUB_OPT_SEND_RETAIN_NEW : 0;
        int rc =
            mosquitto_subscribe_v5(q->mosq, &e->sub_mid, e->m.tmpl.filter, e->m.qos, opts, NULL);
        if (rc == MOSQ_ERR_SUCCESS) {
            e->sub_sent = true;
            LOG_INFO("mqtt", "mapping %s: subscribed to %s (QoS %d) -> %s.%s", e->m.name,
                     e->m.tmpl.filter, e->m.qos, e->m.domain, e->m.product);
        } else {
            q->resub = true;
        }
    }
    for (entry_t *e = q->removed; e; e = e->next) {
        if (!e->removed)
            continue;
        if (mosquitto_unsubscribe_v5(q->mosq, NULL, e->m.tmpl.filter, NULL) == MOSQ_ERR_SUCCESS) {
            e->removed = false;
            LOG_INFO("mqtt", "mapping %s removed: unsubscribed from %s", e->m.name,
                     e->m.tmpl.filter);
        }
    }
    pthread_mutex_unlock(&q->lock);
}

/* Waits up to ns unless stopped; returns true when stopped. */
static bool wait_or_stop(mesh_mqtt_t *q, int64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t until = (int64_t)ts.tv_sec * MESH_NS_PER_SEC + ts.tv_nsec + ns;
    ts.tv_sec = until / MESH_NS_PER_SEC;
    ts.tv_nsec = until % MESH_NS_PER_SEC;
    pthread_mutex_lock(&q->lock);
    while (!q->stop && pthread_cond_timedwait(&q->cond, &q->lock, &ts) != ETIMEDOUT) {
    }
    bool stop = q->stop;
    pthread_mutex_unlock(&q->lock);
    return stop;
}

static bool stopping(mesh_mqtt_t *q)
{
    pthread_mutex_lock(&q->lock);
    bool s = q->stop;
    pthread_mutex_unlock(&q->lock);
    return s;
}

/* Exponential backoff with "equal jitter": half the delay fixed, half random. */
static int64_t jittered(int64_t delay)
{
    uint64_t r = 0;
    mesh_random(&r, sizeof r);
    int64_t half = delay / 2;
    return half + (half > 0 ? (int64_t)(r % (uint64_t)half) : 0);
}

static void *run(void *arg)
{
    mesh_thread_name("mqtt", NULL);
    mesh_mqtt_t *q = arg;
    int64_t backoff = q->backoff_min_ns;
    while (!stopping(q)) {
        set_state(q, ST_CONNECTING);
        int64_t attempt_ns = mesh_now_ns();
        mosquitto_property *props = NULL;
        if (q->protocol == MQTT_PROTOCOL_V5)
            mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                         q->session_expiry_s);
        int rc = mosquitto_connect_bind_v5(q->mosq, q->host, q->port, q->keepalive_s, NULL, props);
        mosquitto_property_free_all(&props);
        if (rc != MOSQ_ERR_SUCCESS) {
            atomic_fetch_add(&q->connect_failures, 1);
            set_error(q, "cannot connect to %s:%d: %s", q->host, q->port,
                      rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        } else {
            int64_t connected_at = 0;
            while (!stopping(q)) {
                rc = mosquitto_loop(q->mosq, 250, 1);
                if (rc != MOSQ_ERR_SUCCESS)
                    break;
                sync_subscriptions(q);
                pthread_mutex_lock(&q->lock);
                bool up = q->state == ST_CONNECTED;
                pthread_mutex_unlock(&q->lock);
                if (up && connected_at == 0) {
                    connected_at = mesh_mono_ns();
                    backoff = q->backoff_min_ns; /* a session came up: start over */
                }
            }
            if (stopping(q)) {
                mosquitto_disconnect_v5(q->mosq, 0, NULL);
                for (int i = 0; i < 4 && mosquitto_loop(q->mosq, 50, 1) == MOSQ_ERR_SUCCESS; i++) {
                }
                break;
            }
            pthread_mutex_lock(&q->lock);
            bool explained = q->last_error_ns >= attempt_ns; /* by on_connect or on_disconnect */
            pthread_mutex_unlock(&q->lock);
            if (!explained)
                set_error(q, "connection to %s:%d failed: %s", q->host, q->port,
                          rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
            /* drop the socket before waiting */
            mosquitto_disconnect(q->mosq);
        }
        int64_t delay = jittered(backoff);
        pthread_mutex_lock(&q->lock);
        q->state = ST_WAITING;
        q->state_since_ns = mesh_now_ns();
        q->next_attempt_ns = mesh_now_ns() + delay;
        pthread_mutex_unlock(&q->lock);
        if (wait_or_stop(q, delay))
            break;
        backoff = backoff * 2 > q->backoff_max_ns ? q->backoff_max_ns : backoff * 2;
    }
    set_state(q, ST_OFF);
    return NULL;
}

/* ---- life cycle ---- */

/* A message meshd published left (QoS 0) or was acknowledged (QoS 1). Connection thread. */
static void on_publish(struct mosquitto *mosq, void *obj, int mid, int reason,
                       const mosquitto_property *props)
{
    (void)mosq;
    (void)props;
    mesh_mqtt_t *q = obj;
    pthread_mutex_lock(&q->pub_lock);
    /* a refusal (MQTT 5 reason >= 0x80) is not a delivery: its id is not recorded */
    if (reason < 0x80)
        q->pub_done[q->pub_next++ % MESH_ARRAY_LEN(q->pub_done)] = mid;
    pthread_cond_broadcast(&q->pub_cond);
    pthread_mutex_unlock(&q->pub_lock);
}

static bool pub_seen(const mesh_mqtt_t *q, int mid)
{
    for (size_t i = 0; i < MESH_ARRAY_LEN(q->pub_done); i++)
        if (q->pub_done[i] == mid)
            return true;
    return false;
}

mesh_status_t mesh_mqtt_publish(mesh_mqtt_t *q, const char *topic, const void *payload, size_t n,
                                int qos, bool retain, int64_t timeout_ns, char *why, size_t cap)
{
    if (q == NULL || q->mosq == NULL) {
        snprintf(why, cap, "no MQTT broker is configured (mqtt_url)");
        return MESH_UNAVAILABLE;
    }
    if (!mesh_mqtt_connected(q)) {
        snprintf(why, cap, "not connected to the MQTT broker");
        return MESH_UNAVAILABLE;
    }
    if (n > (size_t)INT32_MAX || mosquitto_pub_topic_check(topic) != MOSQ_ERR_SUCCESS) {
        snprintf(why, cap, "not a topic to publish to: %.100s", topic);
        return MESH_INVALID;
    }
    int mid = 0;
    pthread_mutex_lock(&q->pub_lock); /* the callback may come before the wait below */
    int rc = mosquitto_publish_v5(q->mosq, &mid, topic, (int)n, payload, qos, retain, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        pthread_mutex_unlock(&q->pub_lock);
        snprintf(why, cap, "publish: %s", mosquitto_strerror(rc));
        return rc == MOSQ_ERR_NO_CONN ? MESH_UNAVAILABLE : MESH_INVALID;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t until = (int64_t)ts.tv_sec * MESH_NS_PER_SEC + ts.tv_nsec + timeout_ns;
    ts.tv_sec = until / MESH_NS_PER_SEC;
    ts.tv_nsec = until % MESH_NS_PER_SEC;
    bool done;
    while (!(done = pub_seen(q, mid)))
        if (pthread_cond_timedwait(&q->pub_cond, &q->pub_lock, &ts) != 0)
            break;
    pthread_mutex_unlock(&q->pub_lock);
    if (!done) {
        snprintf(why, cap, "the broker did not acknowledge the message in time");
        return MESH_TIMEOUT;
    }
    atomic_fetch_add(&q->published, 1);
    snprintf(why, cap, "published (QoS %d)", qos);
    return MESH_OK;
}

static mesh_status_t setup_client(mesh_mqtt_t *q, mesh_err_t *err)
{
    q->mosq = mosquitto_new(q->client_id, false, q);
    if (q->mosq == NULL)
        return mesh_err_set(err, MESH_NOMEM, "mqtt: cannot create the client: %s", strerror(errno));
    /* Our own thread runs mosquitto_loop, and other threads publish (rule actions). Without
     * this, libmosquitto 2.0 writes a packet the moment it is queued when no callback runs:
     * it queues a QoS 1 message's PUBACK just *before* calling on_message, so the broker had
     * the acknowledgement before the message was durable (a kill -9 then lost it). Threaded,
     * queued packets go out in the loop's write phase, after on_message returned. */
    mosquitto_threaded_set(q->mosq, true);
    mosquitto_int_option(q->mosq, MOSQ_OPT_PROTOCOL_VERSION, q->protocol);
    if (q->protocol == MQTT_PROTOCOL_V5)
        mosquitto_int_option(q->mosq, MOSQ_OPT_RECEIVE_MAXIMUM, MESH_MQTT_RECEIVE_MAX);
    mosquitto_int_option(q->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_connect_v5_callback_set(q->mosq, on_connect);
    mosquitto_disconnect_v5_callback_set(q->mosq, on_disconnect);
    mosquitto_message_v5_callback_set(q->mosq, on_message);
    mosquitto_subscribe_v5_callback_set(q->mosq, on_subscribe);
    mosquitto_publish_v5_callback_set(q->mosq, on_publish);
    if ((q->username || q->password) &&
        mosquitto_username_pw_set(q->mosq, q->username, q->password) != MOSQ_ERR_SUCCESS)
        return mesh_err_set(err, MESH_INVALID, "mqtt: the user name or password is not accepted");
    if ((q->client_cert || q->client_key || q->tls_ca) && !q->tls)
        return mesh_err_set(err, MESH_INVALID,
                            "mqtt_tls_ca, mqtt_client_cert and mqtt_client_key need an mqtts:// "
                            "mqtt_url");
    if ((q->client_cert == NULL) != (q->client_key == NULL))
        return mesh_err_set(err, MESH_INVALID, "mqtt_client_cert and mqtt_client_key go together");
    if (q->tls) {
        if (q->tls_ca == NULL)
            mosquitto_int_option(q->mosq, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
        int rc = mosquitto_tls_set(q->mosq, q->tls_ca, NULL, q->client_cert, q->client_key, NULL);
        if (rc != MOSQ_ERR_SUCCESS)
            return mesh_err_set(
                err, MESH_INVALID, "mqtt TLS settings (mqtt_tls_ca %s, mqtt_client_cert %s): %s",
                q->tls_ca ? q->tls_ca : "(system CAs)", q->client_cert ? q->client_cert : "(none)",
                rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
    }
    return MESH_OK;
}

mesh_status_t mesh_mqtt_start(const mesh_mqtt_opts_t *o, mesh_registry_t *reg, mesh_catalog_t *cat,
                              mesh_auth_t *auth, mesh_audit_t *audit, mesh_mqtt_t **out,
                              mesh_err_t *err)
{
    mesh_mqtt_t *q = calloc(1, sizeof *q);
    if (q == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    q->reg = reg;
    q->cat = cat;
    q->auth = auth;
    q->audit = audit;
    q->io.max_payload = o->max_payload;
    q->io.limits = o->limits;
    pthread_mutex_init(&q->lock, NULL);
    mesh_cond_init_mono(&q->cond);
    pthread_mutex_init(&q->pub_lock, NULL);
    mesh_cond_init_mono(&q->pub_cond);
    for (size_t i = 0; i < MESH_ARRAY_LEN(q->pub_done); i++)
        q->pub_done[i] = -1; /* message ids are 1..65535 */
    mesh_status_t st = load_mappings(q, o, err);
    if (st != MESH_OK)
        goto err;
    if (o->url == NULL || *o->url == '\0') {
        if (q->entries)
            LOG_WARN("mqtt", "MQTT mappings are defined but mqtt_url is not set: nothing is "
                             "subscribed");
        *out = q;
        return MESH_OK;
    }
    q->url = strdup(o->url);
    q->username = dup_or_null(o->username);
    q->password = dup_or_null(o->password);
    q->tls_ca = dup_or_null(o->tls_ca);
    q->client_cert = dup_or_null(o->client_cert);
    q->client_key = dup_or_null(o->client_key);
    q->client_id = dup_or_null(o->client_id);
    if (q->url == NULL || q->client_id == NULL) {
        st = mesh_err_set(err, MESH_INVALID, "mqtt: a client id is needed");
        goto err;
    }
    if ((st = parse_url(q, o->url, err)) != MESH_OK)
        goto err;
    q->protocol =
        o->protocol && strcmp(o->protocol, "3.1.1") == 0 ? MQTT_PROTOCOL_V311 : MQTT_PROTOCOL_V5;
    q->keepalive_s = (int)(o->keepalive_ns / MESH_NS_PER_SEC);
    int64_t se = o->session_expiry_ns / MESH_NS_PER_SEC;
    q->session_expiry_s = se >= (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)se;
    q->backoff_min_ns = o->reconnect_min_ns;
    q->backoff_max_ns =
        o->reconnect_max_ns < o->reconnect_min_ns ? o->reconnect_min_ns : o->reconnect_max_ns;
    mosquitto_lib_init();
    if ((st = setup_client(q, err)) != MESH_OK)
        goto err;
    q->state = ST_CONNECTING;
    q->state_since_ns = mesh_now_ns();
    if (pthread_create(&q->thread, NULL, run, q) != 0) {
        st = mesh_err_set(err, MESH_INTERNAL, "mqtt: cannot start a thread");
        goto err;
    }
    q->thread_started = true;
    size_t nmap = 0;
    for (entry_t *e = q->entries; e; e = e->next)
        nmap++;
    LOG_INFO("mqtt", "broker %s, client id %s, MQTT %s, %zu mappings", q->url, q->client_id,
             q->protocol == MQTT_PROTOCOL_V5 ? "5" : "3.1.1", nmap);
    *out = q;
    return MESH_OK;
err:
    mesh_mqtt_stop(q);
    return st;
}

void mesh_mqtt_stop(mesh_mqtt_t *q)
{
    if (q == NULL)
        return;
    if (q->thread_started) {
        pthread_mutex_lock(&q->lock);
        q->stop = true;
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
        pthread_join(q->thread, NULL);
    }
    if (q->mosq)
        mosquitto_destroy(q->mosq);
    free_entries(q->entries);
    free_entries(q->removed);
    if (q->password) {
        memset(q->password, 0, strlen(q->password));
        free(q->password);
    }
    free(q->url);
    free(q->host);
    free(q->username);
    free(q->tls_ca);
    free(q->client_cert);
    free(q->client_key);
    free(q->client_id);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->pub_cond);
    pthread_mutex_destroy(&q->pub_lock);
    free(q);
}

/* ---- status and metrics ---- */

bool mesh_mqtt_enabled(const mesh_mqtt_t *q)
{
    return q && q->url;
}

bool mesh_mqtt_connected(mesh_mqtt_t *q)
{
    if (q == NULL)
        return false;
    pthread_mutex_lock(&q->lock);
    bool up = q->state == ST_CONNECTED;
    pthread_mutex_unlock(&q->lock);
    return up;
}

static const char *state_name(conn_state_t s)
{
    static const char *const names[] = {"off", "connecting", "connected", "waiting"};
    return names[s];
}

static void time_field(mesh_buf_t *b, const char *name, int64_t ns)
{
    if (ns == 0) {
        mesh_buf_printf(b, ",\"%s\":null", name);
        return;
    }
    char t[MESH_TIME_MAX];
    mesh_time_format(ns, t);
    mesh_buf_printf(b, ",\"%s\":\"%s\"", name, t);
}

static void results_json(mesh_buf_t *b, const atomic_uint_fast64_t *r)
{
    mesh_buf_addc(b, '{');
    for (int i = 0; i < MESH_MQTT_RESULT__COUNT; i++)
        mesh_buf_printf(b, "%s\"%s\":%llu", i ? "," : "", mesh_mqtt_result_name(i),
                        (unsigned long long)atomic_load(&r[i]));
    mesh_buf_addc(b, '}');
}

/* Under lock. */
static void entry_json(mesh_buf_t *b, entry_t *e)
{
    mesh_buf_t m;
    mesh_buf_init(&m, MESH_BUF_UNLIMITED);
    mesh_mqtt_mapping_to_json(&e->m, true, &m);
    m.data[--m.len] = '\0'; /* reopen the object */
    mesh_buf_add(b, m.data, m.len);
    mesh_buf_free(&m);
    mesh_buf_printf(b, ",\"filter\":");
    mesh_buf_add_json_str(b, e->m.tmpl.filter, strlen(e->m.tmpl.filter));
    mesh_buf_printf(b, ",\"subscribed\":%s,\"messages\":", e->subscribed ? "true" : "false");
    results_json(b, e->results);
    mesh_buf_printf(b, ",\"rows\":%llu,\"quarantined_rows\":%llu,\"bytes\":%llu",
                    (unsigned long long)atomic_load(&e->rows),
                    (unsigned long long)atomic_load(&e->quarantined_rows),
                    (unsigned long long)atomic_load(&e->bytes));
    time_field(b, "last_message", atomic_load(&e->last_message_ns));
    mesh_buf_addc(b, '}');
}

mesh_status_t mesh_mqtt_mappings_json(mesh_mqtt_t *q,
                                      bool (*visible)(void *arg, const char *domain), void *arg,
                                      mesh_buf_t *out)
{
    mesh_buf_adds(out, "{\"mappings\":[");
    pthread_mutex_lock(&q->lock);
    bool first = true;
    for (entry_t *e = q->entries; e; e = e->next) {
        if (visible && !visible(arg, e->m.domain))
            continue;
        if (!first)
            mesh_buf_addc(out, ',');
        first = false;
        entry_json(out, e);
    }
    pthread_mutex_unlock(&q->lock);
    return mesh_buf_adds(out, "]}\n");
}

mesh_status_t mesh_mqtt_mapping_json(mesh_mqtt_t *q, const char *name, char *domain,
                                     mesh_buf_t *out)
{
    pthread_mutex_lock(&q->lock);
    entry_t *e = find_entry(q->entries, name);
    if (e) {
        snprintf(domain, 64, "%s", e->m.domain);
        if (out)
            entry_json(out, e);
    }
    pthread_mutex_unlock(&q->lock);
    return e ? MESH_OK : MESH_NOT_FOUND;
}

mesh_status_t mesh_mqtt_status_json(mesh_mqtt_t *q, mesh_buf_t *out)
{
    pthread_mutex_lock(&q->lock);
    mesh_buf_printf(out, "{\"enabled\":%s", q->url ? "true" : "false");
    if (q->url) {
        mesh_buf_adds(out, ",\"url\":");
        mesh_buf_add_json_str(out, q->url, strlen(q->url));
        mesh_buf_adds(out, ",\"client_id\":");
        mesh_buf_add_json_str(out, q->client_id, strlen(q->client_id));
        mesh_buf_printf(out, ",\"protocol\":\"%s\",\"tls\":%s,\"username\":",
                        q->protocol == MQTT_PROTOCOL_V5 ? "5" : "3.1.1", q->tls ? "true" : "false");
        if (q->username)
            mesh_buf_add_json_str(out, q->username, strlen(q->username));
        else
            mesh_buf_adds(out, "null");
        mesh_buf_printf(out, ",\"client_certificate\":%s", q->client_cert ? "true" : "false");
    }
    mesh_buf_printf(out, ",\"state\":\"%s\",\"connected\":%s", state_name(q->state),
                    q->state == ST_CONNECTED ? "true" : "false");
    time_field(out, "since", q->state_since_ns);
    if (q->state == ST_CONNECTED)
        mesh_buf_printf(out, ",\"session_present\":%s", q->session_present ? "true" : "false");
    if (q->state == ST_WAITING)
        time_field(out, "next_attempt", q->next_attempt_ns);
    mesh_buf_adds(out, ",\"last_error\":");
    if (q->last_error[0])
        mesh_buf_add_json_str(out, q->last_error, strlen(q->last_error));
    else
        mesh_buf_adds(out, "null");
    time_field(out, "last_error_at", q->last_error[0] ? q->last_error_ns : 0);
    mesh_buf_printf(out,
                    ",\"connects\":%llu,\"connect_failures\":%llu,\"disconnects\":%llu,"
                    "\"unmatched_messages\":%llu,\"mappings\":[",
                    (unsigned long long)atomic_load(&q->connects),
                    (unsigned long long)atomic_load(&q->connect_failures),
                    (unsigned long long)atomic_load(&q->disconnects),
                    (unsigned long long)atomic_load(&q->unmatched));
    for (entry_t *e = q->entries; e; e = e->next) {
        if (e != q->entries)
            mesh_buf_addc(out, ',');
        entry_json(out, e);
    }
    pthread_mutex_unlock(&q->lock);
    return mesh_buf_adds(out, "]}\n");
}

void mesh_mqtt_metrics(mesh_mqtt_t *q, mesh_buf_t *b)
{
    if (q == NULL)
        return;
    pthread_mutex_lock(&q->lock);
    mesh_metrics_help(b, "meshd_mqtt_connected", "gauge",
                      "1 while the MQTT session with the broker is up.");
    mesh_buf_printf(b, "meshd_mqtt_connected %d\n", q->state == ST_CONNECTED);
    mesh_metrics_help(b, "meshd_mqtt_connects_total", "counter", "MQTT sessions established.");
    mesh_buf_printf(b, "meshd_mqtt_connects_total %llu\n",
                    (unsigned long long)atomic_load(&q->connects));
    mesh_metrics_help(b, "meshd_mqtt_connect_failures_total", "counter",
                      "MQTT connection attempts that failed or were refused.");
    mesh_buf_printf(b, "meshd_mqtt_connect_failures_total %llu\n",
                    (unsigned long long)atomic_load(&q->connect_failures));
    mesh_metrics_help(b, "meshd_mqtt_disconnects_total", "counter", "MQTT sessions lost.");
    mesh_buf_printf(b, "meshd_mqtt_disconnects_total %llu\n",
                    (unsigned long long)atomic_load(&q->disconnects));
    mesh_metrics_help(b, "meshd_mqtt_messages_total", "counter",
                      "MQTT messages by mapping and result (stored, quarantined, denied, "
                      "dropped, failed; unmatched: no mapping).");
    for (entry_t *e = q->entries; e; e = e->next) {
        for (int i = 0; i < MESH_MQTT_RESULT__COUNT; i++) {
            mesh_buf_adds(b, "meshd_mqtt_messages_total{mapping=\"");
            mesh_metrics_label(b, e->m.name);
            mesh_buf_printf(b, "\",result=\"%s\"} %llu\n", mesh_mqtt_result_name(i),
                            (unsigned long long)atomic_load(&e->results[i]));
        }
    }
    mesh_buf_printf(b, "meshd_mqtt_messages_total{mapping=\"\",result=\"unmatched\"} %llu\n",
                    (unsigned long long)atomic_load(&q->unmatched));
    mesh_metrics_help(b, "meshd_mqtt_rows_total", "counter",
                      "Rows written from MQTT messages, by mapping and result.");
    for (entry_t *e = q->entries; e; e = e->next) {
        mesh_buf_adds(b, "meshd_mqtt_rows_total{mapping=\"");
        mesh_metrics_label(b, e->m.name);
        mesh_buf_printf(b, "\",result=\"stored\"} %llu\n",
                        (unsigned long long)atomic_load(&e->rows));
        mesh_buf_adds(b, "meshd_mqtt_rows_total{mapping=\"");
        mesh_metrics_label(b, e->m.name);
        mesh_buf_printf(b, "\",result=\"quarantined\"} %llu\n",
                        (unsigned long long)atomic_load(&e->quarantined_rows));
    }
    mesh_metrics_help(b, "meshd_mqtt_received_bytes_total", "counter",
                      "Payload bytes of MQTT messages, by mapping.");
    for (entry_t *e = q->entries; e; e = e->next) {
        mesh_buf_adds(b, "meshd_mqtt_received_bytes_total{mapping=\"");
        mesh_metrics_label(b, e->m.name);
        mesh_buf_printf(b, "\"} %llu\n", (unsigned long long)atomic_load(&e->bytes));
    }
    pthread_mutex_unlock(&q->lock);
}
