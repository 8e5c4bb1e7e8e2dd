/*
 * snap.c - the transport of snapshot bootstrap (see snap.h): serving-side subscriptions,
 * request verification and sessions; the asking side's fetch.
 */
#include "mesh/snap.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "mesh/internal.h"

#define MAX_SERVED 256 /* domains served */
#define NONCES     256 /* nonces remembered (within MESH_SNAP_MAX_SKEW) */
#define ID_HEX     32
#define SELF_TRIES 16 /* asks again when the queue group hands the request to this node */

typedef struct served {
    char domain[MESH_NAME_MAX + 1];
    natsSubscription *sub;
} served_t;

typedef struct session {
    bool used, busy;
    char id[ID_HEX + 1];
    char node[64]; /* the asking node: next requests must come from its inbox */
    uint64_t seq;  /* the frame number the next request must name */
    uint64_t bytes, sent;
    uint32_t crc;
    int64_t last_mono;
    void *state;
} session_t;

typedef struct nonce_entry {
    uint8_t nonce[MESH_SNAP_NONCE_BYTES];
    int64_t ts_ns;
} nonce_entry_t;

struct mesh_snap {
    const mesh_signkey_t *key;
    mesh_snap_handler_t h;
    pthread_mutex_t mu; /* guards everything below */
    mesh_mesh_t *mesh;
    natsConnection *sub_nc; /* the connection the subscriptions were made on */
    served_t served[MAX_SERVED];
    size_t nserved;
    natsSubscription *next_sub; /* _INBOX_<me>.snap.> */
    session_t sessions[MESH_SNAP_MAX_SESSIONS];
    nonce_entry_t nonces[NONCES];
    size_t nonce_next;
    mesh_snap_stats_t stats;
    bool stop;
    int inflight; /* message callbacks running (destroy waits for them) */
};

static bool enter(mesh_snap_t *s)
{
    pthread_mutex_lock(&s->mu);
    bool ok = !s->stop;
    if (ok)
        s->inflight++;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static void leave(mesh_snap_t *s)
{
    pthread_mutex_lock(&s->mu);
    s->inflight--;
    pthread_mutex_unlock(&s->mu);
}

/* ---- serving side ---- */

static void reply_error(natsConnection *nc, const char *reply, mesh_status_t code, const char *msg)
{
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_SNAP_MAX_FRAME);
    if (mesh_snap_error_encode(code, msg, &b) == MESH_OK)
        natsConnection_Publish(nc, reply, b.data, (int)b.len);
    mesh_buf_free(&b);
}

static void refuse(mesh_snap_t *s, natsConnection *nc, const char *reply,
                   const mesh_snap_request_t *r, mesh_status_t code, const char *why)
{
    pthread_mutex_lock(&s->mu);
    s->stats.refused++;
    pthread_mutex_unlock(&s->mu);
    if (s->h.refused)
        s->h.refused(s->h.arg, r ? r->node : "", r ? r->domain : "", code, why);
    /* only a reply subject in a node's inbox gets an answer */
    if (reply && strncmp(reply, "_INBOX_", 7) == 0)
        reply_error(nc, reply, code, why);
}

/* The public key and site of node from the registry (read at every request: bootstraps are
 * rare, and a key replaced in the registry is seen at once). */
static bool node_entry(mesh_snap_t *s, const char *node, uint8_t pub[MESH_SIGN_PUB_BYTES],
                       char *site, size_t cap)
{
    pthread_mutex_lock(&s->mu);
    mesh_mesh_t *m = s->mesh;
    pthread_mutex_unlock(&s->mu);
    mesh_mesh_node_t e;
    mesh_err_t err;
    if (m == NULL || mesh_mesh_get(m, node, &e, &err) != MESH_OK)
        return false;
    bool has = e.e->has_sign_key;
    memcpy(pub, e.e->sign_key, MESH_SIGN_PUB_BYTES);
    snprintf(site, cap, "%s", e.e->site ? e.e->site : "");
    mesh_entry_free(e.e);
    return has;
}

static bool nonce_fresh(mesh_snap_t *s, const uint8_t nonce[MESH_SNAP_NONCE_BYTES], int64_t ts,
                        int64_t now)
{
    bool ok = true;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < NONCES && ok; i++)
        if (s->nonces[i].ts_ns && now - s->nonces[i].ts_ns <= 2 * MESH_SNAP_MAX_SKEW &&
            memcmp(s->nonces[i].nonce, nonce, MESH_SNAP_NONCE_BYTES) == 0)
            ok = false;
    nonce_entry_t *slot = &s->nonces[s->nonce_next];
    if (ok && slot->ts_ns && now - slot->ts_ns <= 2 * MESH_SNAP_MAX_SKEW)
        ok = false; /* NONCES requests within the window: refused rather than forgotten */
    if (ok) {
        memcpy(slot->nonce, nonce, MESH_SNAP_NONCE_BYTES);
        slot->ts_ns = ts > now ? ts : now;
        s->nonce_next = (s->nonce_next + 1) % NONCES;
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static void session_end(mesh_snap_t *s, session_t *ss)
{
    void *state = ss->state;
    pthread_mutex_lock(&s->mu);
    memset(ss, 0, sizeof *ss);
    pthread_mutex_unlock(&s->mu);
    s->h.close(state);
}

/* Sends the session's next frame (data, or the end) to reply. */
static void send_next(mesh_snap_t *s, natsConnection *nc, const char *reply, session_t *ss)
{
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_SNAP_MAX_FRAME);
    uint8_t *chunk = malloc(MESH_SNAP_CHUNK_BYTES);
    size_t n = 0;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = chunk ? s->h.read(ss->state, chunk, MESH_SNAP_CHUNK_BYTES, &n, &err)
                             : mesh_err_set(&err, MESH_NOMEM, "out of memory");
    if (st == MESH_OK && n == 0 && ss->sent != ss->bytes)
        st = mesh_err_set(&err, MESH_INTERNAL, "the snapshot ended after %llu of %llu bytes",
                          (unsigned long long)ss->sent, (unsigned long long)ss->bytes);
    if (st != MESH_OK) {
        mesh_snap_error_encode(st, err.msg, &b);
        natsConnection_Publish(nc, reply, b.data, (int)b.len);
        session_end(s, ss);
    } else if (n == 0) {
        mesh_snap_end_encode(ss->sent, ss->crc, &b);
        natsConnection_Publish(nc, reply, b.data, (int)b.len);
        pthread_mutex_lock(&s->mu);
        s->stats.served++;
        s->stats.served_bytes += ss->sent;
        pthread_mutex_unlock(&s->mu);
        session_end(s, ss);
    } else {
        char next[200];
        ss->crc = mesh_crc32c(ss->crc, chunk, n);
        pthread_mutex_lock(&s->mu);
        ss->sent += n;
        ss->seq++;
        ss->last_mono = mesh_mono_ns();
        snprintf(next, sizeof next, "%s.snap.%s.%llu", mesh__mesh_inbox(s->mesh), ss->id,
                 (unsigned long long)ss->seq);
        ss->busy = false; /* before the frame leaves: its next request may come at once */
        pthread_mutex_unlock(&s->mu);
        mesh_snap_data_encode(chunk, n, &b);
        natsConnection_PublishRequest(nc, reply, next, b.data, (int)b.len);
    }
    free(chunk);
    mesh_buf_free(&b);
}

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    (void)sub;
    mesh_snap_t *s = arg;
    const char *reply = natsMsg_GetReply(msg), *subject = natsMsg_GetSubject(msg);
    const char *data = natsMsg_GetData(msg);
    size_t n = (size_t)natsMsg_GetDataLength(msg);
    mesh_snap_request_t r;
    mesh_err_t err;
    if (reply == NULL || subject == NULL || !enter(s)) {
        natsMsg_Destroy(msg);
        return;
    }
    char want[200], inbox[80], site[MESH_ENTRY_MAX_TEXT + 1] = "";
    int64_t now = mesh_now_ns();
    uint8_t pub[MESH_SIGN_PUB_BYTES];
    if (mesh_snap_request_parse(data, n, &r, &err) != MESH_OK) {
        char why[600];
        snprintf(why, sizeof why, "malformed request: %s", err.msg);
        refuse(s, nc, reply, NULL, err.code, why);
        goto out;
    }
    snprintf(want, sizeof want, "meshd.dom.%s.req.snap", r.domain);
    snprintf(inbox, sizeof inbox, "_INBOX_%s.", r.node);
    if (strcmp(subject, want) != 0) {
        refuse(s, nc, reply, &r, MESH_FORBIDDEN, "the request names another domain");
    } else if (strncmp(reply, inbox, strlen(inbox)) != 0) {
        refuse(s, nc, reply, &r, MESH_FORBIDDEN,
               "the reply subject is not the inbox of the node the request names");
    } else if (r.ts_ns < now - MESH_SNAP_MAX_SKEW || r.ts_ns > now + MESH_SNAP_MAX_SKEW) {
        refuse(s, nc, reply, &r, MESH_UNAUTHENTICATED,
               "stale request: its time is more than 30 s from ours");
    } else if (!node_entry(s, r.node, pub, site, sizeof site) ||
               !mesh_snap_request_verify(data, n, subject, pub)) {
        refuse(s, nc, reply, &r, MESH_UNAUTHENTICATED,
               "the signature does not verify with the asking node's key in the registry");
    } else if (!nonce_fresh(s, r.nonce, r.ts_ns, now)) {
        refuse(s, nc, reply, &r, MESH_UNAUTHENTICATED, "replayed request (nonce seen before)");
    } else if (strcmp(r.node, mesh__mesh_node_name(s->mesh)) == 0) {
        /* the queue group handed this node its own request: it asks again */
        reply_error(nc, reply, MESH_CONFLICT, "a node does not bootstrap from itself");
    } else {
        session_t *ss = NULL;
        uint8_t id[ID_HEX / 2];
        mesh_random(id, sizeof id);
        pthread_mutex_lock(&s->mu);
        for (int i = 0; i < MESH_SNAP_MAX_SESSIONS && ss == NULL; i++)
            if (!s->sessions[i].used)
                ss = &s->sessions[i];
        if (ss) {
            memset(ss, 0, sizeof *ss);
            ss->used = ss->busy = true;
            mesh_hex(id, sizeof id, ss->id);
            snprintf(ss->node, sizeof ss->node, "%s", r.node);
            ss->last_mono = mesh_mono_ns();
        }
        pthread_mutex_unlock(&s->mu);
        uint64_t seq = 0, bytes = 0;
        void *state = NULL;
        mesh_err_clear(&err);
        if (ss == NULL) {
            reply_error(nc, reply, MESH_BUSY, "too many snapshots being served; retry");
        } else if (s->h.open(s->h.arg, r.node, site, r.domain, &state, &seq, &bytes, &err) !=
                   MESH_OK) {
            /* the handler's refusals (who may have the domain) are audited; other errors
             * (nothing applied yet, a copy that failed) are only answered */
            mesh_status_t code = err.code == MESH_OK ? MESH_INTERNAL : err.code;
            if (code == MESH_FORBIDDEN)
                refuse(s, nc, reply, &r, code, err.msg);
            else
                reply_error(nc, reply, code, err.msg);
            pthread_mutex_lock(&s->mu);
            memset(ss, 0, sizeof *ss);
            pthread_mutex_unlock(&s->mu);
        } else {
            char next[200];
            mesh_buf_t b;
            mesh_buf_init(&b, MESH_SNAP_MAX_FRAME);
            mesh_snap_header_encode(seq, bytes, &b);
            pthread_mutex_lock(&s->mu);
            ss->state = state;
            ss->bytes = bytes;
            ss->last_mono = mesh_mono_ns();
            snprintf(next, sizeof next, "%s.snap.%s.0", mesh__mesh_inbox(s->mesh), ss->id);
            ss->busy = false;
            pthread_mutex_unlock(&s->mu);
            natsConnection_PublishRequest(nc, reply, next, b.data, (int)b.len);
            mesh_buf_free(&b);
            LOG_INFO("mesh", "serving a snapshot of %s (stream sequence %llu, %llu bytes) to %s",
                     r.domain, (unsigned long long)seq, (unsigned long long)bytes, r.node);
        }
    }
out:
    natsMsg_Destroy(msg);
    leave(s);
}

/* "next" or "close" on _INBOX_<me>.snap.<id>.<seq>. */
static void on_next(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    (void)sub;
    mesh_snap_t *s = arg;
    const char *reply = natsMsg_GetReply(msg), *subject = natsMsg_GetSubject(msg);
    const char *data = natsMsg_GetData(msg);
    int n = natsMsg_GetDataLength(msg);
    const char *p = subject ? strstr(subject, ".snap.") : NULL;
    char id[ID_HEX + 1] = "";
    uint64_t seq = 0;
    if (p && strlen(p + 6) > ID_HEX && p[6 + ID_HEX] == '.') {
        memcpy(id, p + 6, ID_HEX);
        const char *sq = p + 7 + ID_HEX;
        if (mesh_parse_u64(sq, strlen(sq), &seq) != MESH_OK)
            id[0] = '\0';
    }
    if (!enter(s)) {
        natsMsg_Destroy(msg);
        return;
    }
    bool is_next = n == 4 && memcmp(data, "next", 4) == 0;
    bool is_close = n == 5 && memcmp(data, "close", 5) == 0;
    session_t *ss = NULL;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < MESH_SNAP_MAX_SESSIONS && id[0] && ss == NULL; i++)
        if (s->sessions[i].used && strcmp(s->sessions[i].id, id) == 0)
            ss = &s->sessions[i];
    char inbox[80];
    snprintf(inbox, sizeof inbox, "_INBOX_%s.", ss ? ss->node : "");
    bool ok = ss && !ss->busy && ss->seq == seq && (is_next || is_close) &&
              (is_close || (reply && strncmp(reply, inbox, strlen(inbox)) == 0));
    if (ok)
        ss->busy = true;
    pthread_mutex_unlock(&s->mu);
    if (!ok) {
        if (reply && strncmp(reply, "_INBOX_", 7) == 0)
            reply_error(nc, reply, MESH_NOT_FOUND, "no such snapshot (ended, or closed when idle)");
    } else if (is_close) {
        session_end(s, ss);
    } else {
        send_next(s, nc, reply, ss);
    }
    natsMsg_Destroy(msg);
    leave(s);
}

static void drop_subs(mesh_snap_t *s)
{
    for (size_t i = 0; i < s->nserved; i++) {
        natsSubscription_Unsubscribe(s->served[i].sub);
        natsSubscription_Destroy(s->served[i].sub);
    }
    s->nserved = 0;
    if (s->next_sub) {
        natsSubscription_Unsubscribe(s->next_sub);
        natsSubscription_Destroy(s->next_sub);
        s->next_sub = NULL;
    }
    s->sub_nc = NULL;
}

/* Closes sessions nobody asked for within MESH_SNAP_IDLE (all of them when all is set). */
static void reap(mesh_snap_t *s, bool all)
{
    int64_t now = mesh_mono_ns();
    for (int i = 0; i < MESH_SNAP_MAX_SESSIONS; i++) {
        session_t *ss = &s->sessions[i];
        pthread_mutex_lock(&s->mu);
        bool idle =
            ss->used && !ss->busy && ss->state && (all || now - ss->last_mono >= MESH_SNAP_IDLE);
        if (idle)
            ss->busy = true;
        pthread_mutex_unlock(&s->mu);
        if (idle) {
            LOG_INFO("mesh", "snapshot for %s closed (not asked for within %d s)", ss->node,
                     (int)(MESH_SNAP_IDLE / MESH_NS_PER_SEC));
            session_end(s, ss);
        }
    }
}

void mesh_snap_serve(mesh_snap_t *s, const char *const *domains, size_t n)
{
    pthread_mutex_lock(&s->mu);
    mesh_mesh_t *m = s->mesh;
    pthread_mutex_unlock(&s->mu);
    reap(s, false);
    if (m == NULL)
        return;
    natsConnection *nc = mesh__mesh_conn_get(m);
    /* subscriptions change on this (the mesh) thread only; s->mu is not held across libnats
     * calls, whose delivery threads take it */
    if (nc != s->sub_nc)
        drop_subs(s);
    if (nc) {
        s->sub_nc = nc;
        if (s->next_sub == NULL) {
            char subj[128];
            snprintf(subj, sizeof subj, "%s.snap.>", mesh__mesh_inbox(m));
            if (natsConnection_Subscribe(&s->next_sub, nc, subj, on_next, s) != NATS_OK)
                s->next_sub = NULL;
        }
        for (size_t i = 0; i < s->nserved;) {
            bool keep = false;
            for (size_t k = 0; k < n && !keep; k++)
                keep = strcmp(domains[k], s->served[i].domain) == 0;
            if (keep) {
                i++;
                continue;
            }
            natsSubscription_Unsubscribe(s->served[i].sub);
            natsSubscription_Destroy(s->served[i].sub);
            s->served[i] = s->served[--s->nserved];
        }
        for (size_t k = 0; k < n && s->nserved < MAX_SERVED; k++) {
            bool have = false;
            for (size_t i = 0; i < s->nserved && !have; i++)
                have = strcmp(domains[k], s->served[i].domain) == 0;
            if (have)
                continue;
            char subj[160], queue[160];
            snprintf(subj, sizeof subj, "meshd.dom.%s.req.snap", domains[k]);
            snprintf(queue, sizeof queue, "meshd.dom.%s", domains[k]);
            served_t *sv = &s->served[s->nserved];
            if (natsConnection_QueueSubscribe(&sv->sub, nc, subj, queue, on_request, s) ==
                NATS_OK) {
                snprintf(sv->domain, sizeof sv->domain, "%s", domains[k]);
                s->nserved++;
            }
        }
    }
    mesh__mesh_conn_put(m);
}

mesh_status_t mesh_snap_create(const mesh_signkey_t *key, const mesh_snap_handler_t *h,
                               mesh_snap_t **out, mesh_err_t *err)
{
    mesh_snap_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    s->key = key;
    s->h = *h;
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return MESH_OK;
}

void mesh_snap_destroy(mesh_snap_t *s)
{
    if (s == NULL)
        return;
    if (s->mesh) {
        mesh__mesh_conn_get(s->mesh);
        drop_subs(s);
        mesh__mesh_conn_put(s->mesh);
    }
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    for (int64_t t0 = mesh_mono_ns();
         s->inflight > 0 && mesh_mono_ns() - t0 < 10 * MESH_NS_PER_SEC;) {
        pthread_mutex_unlock(&s->mu);
        usleep(5000);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    reap(s, true);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void mesh_snap_set_mesh(mesh_snap_t *s, mesh_mesh_t *m)
{
    pthread_mutex_lock(&s->mu);
    s->mesh = m;
    pthread_mutex_unlock(&s->mu);
}

void mesh_snap_stats(mesh_snap_t *s, mesh_snap_stats_t *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}

/* ---- asking side ---- */

static mesh_status_t nats_error(natsStatus ns, const char *domain, mesh_err_t *err)
{
    if (ns == NATS_NO_RESPONDERS)
        return mesh_err_set(err, MESH_UNAVAILABLE,
                            "no other live host of domain %s answers for a snapshot", domain);
    if (ns == NATS_TIMEOUT)
        return mesh_err_set(err, MESH_TIMEOUT, "the host of domain %s did not answer in time",
                            domain);
    if (ns == NATS_NOT_PERMITTED)
        return mesh_err_set(err, MESH_FORBIDDEN, "the mesh servers refuse this node's request");
    return mesh_err_set(err, MESH_UNAVAILABLE, "snapshot of %s: %s", domain,
                        natsStatus_GetText(ns));
}

/* Decodes a reply; an error frame becomes err. *next: its reply subject ("" when none). */
static mesh_status_t decode(natsMsg *msg, const char *domain, mesh_snap_frame_t *fr, char *next,
                            size_t cap, mesh_err_t *err)
{
    next[0] = '\0';
    if (mesh_snap_frame_decode(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), fr, err) !=
        MESH_OK) {
        mesh_err_prefix(err, "a host of %s answered with a bad frame: ", domain);
        return err->code;
    }
    if (fr->kind == MESH_SNAP_ERROR)
        return mesh_err_set(err, fr->code, "a host of %s: %s", domain, fr->msg);
    const char *r = natsMsg_GetReply(msg);
    if (fr->kind != MESH_SNAP_END) {
        /* the server's inbox, and nothing else: a next request goes only there */
        if (r == NULL || strncmp(r, "_INBOX_", 7) != 0 || strlen(r) >= cap)
            return mesh_err_set(err, MESH_PARSE, "a host of %s: a frame without a next subject",
                                domain);
        snprintf(next, cap, "%s", r);
    }
    return MESH_OK;
}

static mesh_status_t open_once(mesh_snap_t *s, mesh_mesh_t *m, const char *domain,
                               int64_t timeout_ns, natsMsg **reply, mesh_err_t *err)
{
    mesh_snap_request_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.node, sizeof r.node, "%s", mesh__mesh_node_name(m));
    snprintf(r.domain, sizeof r.domain, "%s", domain);
    r.ts_ns = mesh_now_ns();
    if (mesh_random(r.nonce, sizeof r.nonce) != MESH_OK)
        return mesh_err_set(err, MESH_INTERNAL, "no randomness");
    char subject[160];
    snprintf(subject, sizeof subject, "meshd.dom.%s.req.snap", domain);
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_SNAP_MAX_REQUEST);
    mesh_status_t st = mesh_snap_request_encode(&r, subject, s->key, &b);
    if (st != MESH_OK) {
        mesh_buf_free(&b);
        return mesh_err_set(err, st, "cannot encode the snapshot request");
    }
    natsConnection *nc = mesh__mesh_conn_get(m);
    natsStatus ns =
        nc ? natsConnection_Request(reply, nc, subject, b.data, (int)b.len, timeout_ns / 1000000)
           : NATS_CONNECTION_CLOSED;
    mesh__mesh_conn_put(m);
    mesh_buf_free(&b);
    return ns == NATS_OK ? MESH_OK : nats_error(ns, domain, err);
}

static mesh_status_t fetch(mesh_snap_t *s, mesh_mesh_t *m, const char *domain,
                           int64_t open_timeout_ns, const mesh_snap_sink_t *sink, uint64_t *seq,
                           uint64_t *got, mesh_err_t *err)
{
    natsMsg *msg = NULL;
    mesh_snap_frame_t fr;
    char next[200];
    mesh_status_t st = MESH_CONFLICT;
    for (int i = 0; i < SELF_TRIES && st == MESH_CONFLICT; i++) {
        natsMsg_Destroy(msg);
        msg = NULL;
        st = open_once(s, m, domain, open_timeout_ns, &msg, err);
        if (st == MESH_OK)
            st = decode(msg, domain, &fr, next, sizeof next, err);
    }
    if (st == MESH_OK && fr.kind != MESH_SNAP_HEADER)
        st = mesh_err_set(err, MESH_PARSE, "a host of %s: the first frame is not a header", domain);
    if (st == MESH_OK) {
        *seq = fr.seq;
        st = sink->begin(sink->arg, fr.seq, fr.bytes, err);
        if (st != MESH_OK) {
            natsConnection *nc = mesh__mesh_conn_get(m);
            if (nc)
                natsConnection_Publish(nc, next, "close", 5);
            mesh__mesh_conn_put(m);
        }
    }
    uint64_t bytes = st == MESH_OK ? fr.bytes : 0, sum = 0;
    uint32_t crc = 0;
    while (st == MESH_OK) {
        natsMsg_Destroy(msg);
        msg = NULL;
        natsConnection *nc = mesh__mesh_conn_get(m);
        natsStatus ns = nc ? natsConnection_Request(&msg, nc, next, "next", 4,
                                                    mesh__mesh_timeout_ns(m) / 1000000)
                           : NATS_CONNECTION_CLOSED;
        mesh__mesh_conn_put(m);
        if (ns != NATS_OK) {
            st = nats_error(ns, domain, err);
            break;
        }
        if ((st = decode(msg, domain, &fr, next, sizeof next, err)) != MESH_OK)
            break;
        if (fr.kind == MESH_SNAP_END) {
            if (fr.bytes != sum || sum != bytes || fr.crc != crc)
                st = mesh_err_set(err, MESH_CORRUPT,
                                  "the snapshot of %s arrived damaged (%llu of %llu bytes, "
                                  "checksum %s)",
                                  domain, (unsigned long long)sum, (unsigned long long)bytes,
                                  fr.crc == crc ? "ok" : "wrong");
            break;
        }
        if (fr.kind != MESH_SNAP_DATA || sum + fr.len > bytes) {
            st = mesh_err_set(err, MESH_PARSE, "a host of %s sent more than it announced", domain);
            break;
        }
        crc = mesh_crc32c(crc, fr.data, fr.len);
        sum += fr.len;
        st = sink->data(sink->arg, fr.data, fr.len, err);
        if (st != MESH_OK && next[0]) {
            nc = mesh__mesh_conn_get(m);
            if (nc)
                natsConnection_Publish(nc, next, "close", 5);
            mesh__mesh_conn_put(m);
        }
    }
    natsMsg_Destroy(msg);
    *got = sum;
    return st;
}

mesh_status_t mesh_snap_fetch(mesh_snap_t *s, const char *domain, int64_t open_timeout_ns,
                              const mesh_snap_sink_t *sink, uint64_t *seq, mesh_err_t *err)
{
    *seq = 0;
    pthread_mutex_lock(&s->mu);
    mesh_mesh_t *m = s->mesh;
    pthread_mutex_unlock(&s->mu);
    if (m == NULL)
        return mesh_err_set(err, MESH_UNAVAILABLE, "this node is not in a mesh");
    uint64_t got = 0;
    mesh_status_t st = fetch(s, m, domain, open_timeout_ns, sink, seq, &got, err);
    pthread_mutex_lock(&s->mu);
    if (st == MESH_OK) {
        s->stats.fetched++;
        s->stats.fetched_bytes += got;
    } else {
        s->stats.fetch_failures++;
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}
