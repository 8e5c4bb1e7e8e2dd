/*
 * repl.c - a domain's JetStream stream and this node's consumer of it (see repl.h).
 *
 * Threads: one per replicated domain (run), which owns the consumer's subscription; publishers
 * (HTTP workers, forwarded requests) use the connection through their own short-lived jsCtx.
 * Both hold the mesh connection's lock for reading while they use it (mesh/internal.h), so a
 * connection is never replaced under them; a new connection (its generation changed) makes
 * the thread build its subscription again.
 */
#include "mesh/repl.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/util.h"
#include "mesh/internal.h"

#define RETRY_NS      (1000LL * 1000000LL) /* after a failure, before trying again */
#define FETCH_WAIT_MS 1000                 /* a fetch waits this long for messages */
#define INFO_EVERY_NS (2000LL * 1000000LL) /* the stream's last sequence is read this often */
#define STALLS_MAX    3 /* readings without progress before the consumer is made again */

struct mesh_repl {
    mesh_mesh_t *m;
    char domain[MESH_NAME_MAX + 1];
    char stream[MESH_NAME_MAX + 16];
    char subject[MESH_NAME_MAX + 32];
    mesh_repl_apply_fn apply;
    mesh_repl_position_fn position;
    void *arg;

    pthread_t thread;
    pthread_mutex_t mu; /* guards st and stop */
    pthread_cond_t cv;
    bool stop;
    mesh_repl_status_t st;

    /* the thread's */
    jsCtx *js;
    natsSubscription *sub;
    uint64_t gen;       /* connection the two above belong to */
    bool stream_ok;     /* the stream exists (on connection gen) */
    int64_t next_info;  /* when to read the stream's state again */
    uint64_t stall_pos; /* the applied position at the last stream info */
    int stalls;         /* stream infos in a row that saw the stream ahead and no progress */
};

static const char *nats_text(natsStatus s)
{
    const char *t = nats_GetLastError(NULL);
    return t && *t ? t : natsStatus_GetText(s);
}

static void set_state(mesh_repl_t *r, const char *state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_state(mesh_repl_t *r, const char *state, const char *fmt, ...)
{
    pthread_mutex_lock(&r->mu);
    bool same_state = r->st.state == state;
    char before[sizeof r->st.last_error];
    memcpy(before, r->st.last_error, sizeof before);
    r->st.state = state;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->st.last_error, sizeof r->st.last_error, fmt, ap);
        va_end(ap);
    }
    bool changed = !same_state || (fmt && strcmp(before, r->st.last_error) != 0);
    pthread_mutex_unlock(&r->mu);
    if (changed && fmt) /* logged when the reason changes, not at every retry */
        LOG_WARN("mesh", "stream %s: %s", r->stream, r->st.last_error);
}

static void drop_consumer(mesh_repl_t *r)
{
    natsSubscription_Destroy(r->sub);
    jsCtx_Destroy(r->js);
    r->sub = NULL;
    r->js = NULL;
    r->stream_ok = false;
}

/* Creates the stream when it does not exist (nc held). */
static bool ensure_stream(mesh_repl_t *r, natsConnection *nc)
{
    jsErrCode jerr = 0;
    jsStreamInfo *si = NULL;
    natsStatus s = js_GetStreamInfo(&si, r->js, r->stream, NULL, &jerr);
    if (s == NATS_OK) {
        pthread_mutex_lock(&r->mu);
        r->st.replicas = (int)si->Config->Replicas;
        r->st.stream_last = si->State.LastSeq;
        pthread_mutex_unlock(&r->mu);
        jsStreamInfo_Destroy(si);
        return true;
    }
    if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
        set_state(r, "error", "stream info: %s", nats_text(s));
        return false;
    }
    int servers = 0;
    char **urls = NULL;
    if (natsConnection_GetServers(nc, &urls, &servers) == NATS_OK) {
        for (int i = 0; i < servers; i++)
            free(urls[i]);
        free(urls);
    }
    int replicas = mesh__mesh_replicas(r->m);
    if (replicas <= 0)
        replicas = servers >= 3 ? 3 : 1;
    const char *subjects[] = {r->subject};
    jsStreamConfig c;
    jsStreamConfig_Init(&c);
    c.Name = r->stream;
    c.Description = "meshd: a domain's records in order (docs/mesh.md)";
    c.Subjects = subjects;
    c.SubjectsLen = 1;
    c.Storage = js_FileStorage;
    c.Replicas = replicas;
    c.Retention = js_LimitsPolicy;
    c.Discard = js_DiscardOld;
    c.MaxAge = MESH_REPL_MAX_AGE_NS;
    c.Duplicates = MESH_REPL_DUPLICATES_NS;
    int64_t maxp = natsConnection_GetMaxPayload(nc);
    c.MaxMsgSize = maxp > 0 && maxp < INT32_MAX ? (int32_t)maxp : -1;
    s = js_AddStream(&si, r->js, &c, NULL, &jerr);
    if (s == NATS_OK || jerr == JSStreamNameExistErr) {
        if (s == NATS_OK)
            LOG_INFO("mesh", "created stream %s (%d replicas)", r->stream, replicas);
        pthread_mutex_lock(&r->mu);
        r->st.replicas = si ? (int)si->Config->Replicas : r->st.replicas;
        pthread_mutex_unlock(&r->mu);
        jsStreamInfo_Destroy(si);
        return true;
    }
    /* 10005 'no suitable peers for placement': the hub cluster is still forming */
    set_state(r, "waiting", "creating the stream (%d replicas): %s%s", replicas, nats_text(s),
              jerr == JSClusterNoPeersErr ? " (the cluster is forming; retrying)" : "");
    return false;
}

/* Makes this node's durable consumer start after what the domain has applied, and binds a
 * pull subscription to it (nc held). */
static bool make_consumer(mesh_repl_t *r)
{
    const char *node = mesh__mesh_node_name(r->m);
    uint64_t pos = r->position(r->arg, r->domain);
    jsErrCode jerr = 0;
    js_DeleteConsumer(r->js, r->stream, node, NULL, &jerr); /* none yet is fine */
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = node;
    cc.Description = "meshd: a hosting node applying the domain's records";
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = 30LL * 1000000000LL;
    cc.MaxAckPending = 4 * MESH_REPL_FETCH;
    cc.FilterSubject = r->subject;
    if (pos > 0) {
        cc.DeliverPolicy = js_DeliverByStartSequence;
        cc.OptStartSeq = pos + 1;
    } else {
        cc.DeliverPolicy = js_DeliverAll;
    }
    jsConsumerInfo *ci = NULL;
    natsStatus s = js_AddConsumer(&ci, r->js, r->stream, &cc, NULL, &jerr);
    jsConsumerInfo_Destroy(ci);
    if (s != NATS_OK) {
        set_state(r, "error", "consumer %s: %s", node, nats_text(s));
        return false;
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = r->stream;
    so.Consumer = node;
    s = js_PullSubscribe(&r->sub, r->js, r->subject, node, NULL, &so, &jerr);
    if (s != NATS_OK) {
        r->sub = NULL;
        set_state(r, "error", "pull subscription %s: %s", node, nats_text(s));
        return false;
    }
    LOG_INFO("mesh", "stream %s: consuming as %s from sequence %llu", r->stream, node,
             (unsigned long long)pos + 1);
    return true;
}

/* Whether the stream no longer holds sequence seq (trimmed by its limits). */
static bool trimmed_before(mesh_repl_t *r, uint64_t seq)
{
    jsErrCode jerr = 0;
    jsStreamInfo *si = NULL;
    if (js_GetStreamInfo(&si, r->js, r->stream, NULL, &jerr) != NATS_OK)
        return false;
    bool gone = si->State.FirstSeq > seq;
    jsStreamInfo_Destroy(si);
    return gone;
}

/* Fetches one batch and applies it in order. false: start over (consumer made again). */
static bool consume(mesh_repl_t *r)
{
    natsMsgList list = {0};
    jsErrCode jerr = 0;
    natsStatus s = natsSubscription_Fetch(&list, r->sub, MESH_REPL_FETCH, FETCH_WAIT_MS, &jerr);
    if (s == NATS_TIMEOUT)
        return true;
    if (s != NATS_OK) {
        set_state(r, "error", "fetch: %s", nats_text(s));
        return false;
    }
    bool ok = true;
    for (int i = 0; i < list.Count && ok; i++) {
        natsMsg *msg = list.Msgs[i];
        jsMsgMetaData *meta = NULL;
        if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
            natsMsg_Ack(msg, NULL); /* not a stream message: nothing to apply */
            continue;
        }
        uint64_t seq = meta->Sequence.Stream;
        jsMsgMetaData_Destroy(meta);
        uint64_t pos = r->position(r->arg, r->domain);
        if (seq > pos + 1 && trimmed_before(r, pos + 1)) {
            /* the records between are gone from the stream: applying on would skip them */
            set_state(r, "trimmed",
                      "the stream no longer holds sequence %llu that this node needs (it holds "
                      "%llu..): this replica must be seeded again (docs/mesh.md)",
                      (unsigned long long)pos + 1, (unsigned long long)seq);
            ok = false;
            break;
        }
        mesh_err_t e;
        mesh_err_clear(&e);
        mesh_status_t st =
            seq <= pos ? MESH_OK
                       : r->apply(r->arg, r->domain, seq, (const uint8_t *)natsMsg_GetData(msg),
                                  (size_t)natsMsg_GetDataLength(msg), &e);
        if (st != MESH_OK) {
            pthread_mutex_lock(&r->mu);
            r->st.apply_failures++;
            pthread_mutex_unlock(&r->mu);
            set_state(r, "error", "applying sequence %llu: %s", (unsigned long long)seq,
                      e.msg[0] ? e.msg : mesh_status_text(st));
            ok = false;
            break;
        }
        natsMsg_Ack(msg, NULL);
        pthread_mutex_lock(&r->mu);
        if (seq > pos)
            r->st.applied_msgs++;
        if (seq > r->st.stream_last)
            r->st.stream_last = seq;
        pthread_mutex_unlock(&r->mu);
    }
    natsMsgList_Destroy(&list);
    return ok;
}

static bool stopping(mesh_repl_t *r, int64_t wait_ns)
{
    pthread_mutex_lock(&r->mu);
    if (!r->stop && wait_ns > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t t = (int64_t)ts.tv_nsec + wait_ns;
        ts.tv_sec += (time_t)(t / MESH_NS_PER_SEC);
        ts.tv_nsec = (long)(t % MESH_NS_PER_SEC);
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
    bool stop = r->stop;
    pthread_mutex_unlock(&r->mu);
    return stop;
}

static void *run(void *arg)
{
    mesh_repl_t *r = arg;
    while (!stopping(r, 0)) {
        uint64_t gen;
        natsConnection *nc = mesh__mesh_conn(r->m, &gen);
        if (nc == NULL || gen != r->gen) {
            drop_consumer(r); /* of a connection gone (libnats freed its side) */
            r->gen = gen;
        }
        if (nc == NULL) {
            mesh__mesh_conn_done(r->m);
            set_state(r, "waiting", NULL);
            stopping(r, RETRY_NS);
            continue;
        }
        bool ok = true;
        if (r->js == NULL) {
            jsOptions jo;
            jsOptions_Init(&jo);
            jo.Wait = mesh__mesh_timeout_ns(r->m) / 1000000;
            ok = natsConnection_JetStream(&r->js, nc, &jo) == NATS_OK;
        }
        if (ok && !r->stream_ok)
            ok = r->stream_ok = ensure_stream(r, nc);
        if (ok && r->sub == NULL)
            ok = make_consumer(r);
        if (ok) {
            set_state(r, "consuming", NULL);
            ok = consume(r);
            int64_t now = mesh_mono_ns();
            if (ok && now >= r->next_info) {
                jsErrCode jerr = 0;
                jsStreamInfo *si = NULL;
                if (js_GetStreamInfo(&si, r->js, r->stream, NULL, &jerr) == NATS_OK) {
                    /* the stream is ahead and nothing was applied for STALLS_MAX readings:
                     * the consumer is lost (made on a server cut off from the others, say,
                     * whose view lost to the rest after a partition); make it again */
                    uint64_t pos = r->position(r->arg, r->domain);
                    r->stalls = si->State.LastSeq > pos && pos == r->stall_pos ? r->stalls + 1 : 0;
                    r->stall_pos = pos;
                    if (r->stalls >= STALLS_MAX) {
                        set_state(r, "error",
                                  "no progress for %d s with the stream at %llu and this node "
                                  "at %llu: making the consumer again",
                                  (int)(STALLS_MAX * INFO_EVERY_NS / MESH_NS_PER_SEC),
                                  (unsigned long long)si->State.LastSeq, (unsigned long long)pos);
                        r->stalls = 0;
                        ok = false;
                    }
                    pthread_mutex_lock(&r->mu);
                    r->st.stream_last = si->State.LastSeq;
                    r->st.replicas = (int)si->Config->Replicas;
                    snprintf(r->st.leader, sizeof r->st.leader, "%s",
                             si->Cluster && si->Cluster->Leader ? si->Cluster->Leader : "");
                    pthread_mutex_unlock(&r->mu);
                    jsStreamInfo_Destroy(si);
                }
                r->next_info = now + INFO_EVERY_NS;
            }
        }
        if (!ok) {
            natsSubscription_Destroy(r->sub);
            r->sub = NULL;
        }
        mesh__mesh_conn_done(r->m);
        if (!ok)
            stopping(r, RETRY_NS);
    }
    uint64_t gen;
    mesh__mesh_conn(r->m, &gen);
    drop_consumer(r);
    mesh__mesh_conn_done(r->m);
    return NULL;
}

mesh_status_t mesh_repl_start(mesh_mesh_t *m, const char *domain, mesh_repl_apply_fn apply,
                              mesh_repl_position_fn position, void *arg, mesh_repl_t **out,
                              mesh_err_t *err)
{
    *out = NULL;
    if (!mesh_name_domain_ok(domain))
        return mesh_err_set(err, MESH_INVALID, "'%s' is not a domain name", domain);
    mesh_repl_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    r->m = m;
    snprintf(r->domain, sizeof r->domain, "%s", domain);
    snprintf(r->stream, sizeof r->stream, "MESHD_DOM_%s", domain);
    snprintf(r->subject, sizeof r->subject, "meshd.dom.%s.log", domain);
    r->apply = apply;
    r->position = position;
    r->arg = arg;
    r->st.state = "waiting";
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (pthread_create(&r->thread, NULL, run, r) != 0) {
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return mesh_err_set(err, MESH_INTERNAL, "cannot start the replication thread");
    }
    *out = r;
    return MESH_OK;
}

void mesh_repl_stop(mesh_repl_t *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

const char *mesh_repl_stream(const mesh_repl_t *r)
{
    return r->stream;
}

mesh_status_t mesh_repl_publish(mesh_repl_t *r, const uint8_t *p, size_t n, const char *idem,
                                uint64_t *sseq, bool *duplicate, mesh_err_t *err)
{
    *sseq = 0;
    *duplicate = false;
    char msg_id[256];
    if (idem && *idem) {
        snprintf(msg_id, sizeof msg_id, "k:%s", idem);
    } else {
        uint8_t rnd[16];
        mesh_random(rnd, sizeof rnd);
        int k = snprintf(msg_id, sizeof msg_id, "%s:", mesh__mesh_node_name(r->m));
        for (size_t i = 0; i < sizeof rnd && k > 0 && (size_t)k + 2 < sizeof msg_id; i++)
            k += snprintf(msg_id + k, sizeof msg_id - (size_t)k, "%02x", rnd[i]);
    }
    uint64_t gen;
    natsConnection *nc = mesh__mesh_conn(r->m, &gen);
    mesh_status_t st = MESH_OK;
    jsCtx *js = NULL;
    if (nc == NULL)
        st = mesh_err_set(err, MESH_UNAVAILABLE,
                          "domain %s is replicated and this node is not connected to the "
                          "mesh: the write was not acknowledged",
                          r->domain);
    int64_t maxp = nc ? natsConnection_GetMaxPayload(nc) : 0;
    if (st == MESH_OK && maxp > 0 && (int64_t)n > maxp)
        st = mesh_err_set(err, MESH_TOO_LARGE,
                          "the batch's record (%zu bytes) exceeds the mesh servers' max payload "
                          "(%lld bytes): send smaller batches",
                          n, (long long)maxp);
    if (st == MESH_OK && natsConnection_JetStream(&js, nc, NULL) != NATS_OK)
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
    if (st == MESH_OK) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MsgId = msg_id;
        /* no ExpectStream: the header stays in the stored message, and a hub copy sourcing
         * it (source.h) refuses it on nats-server 2.9 ("expected stream does not match") */
        po.MaxWait = mesh__mesh_timeout_ns(r->m) / 1000000;
        jsPubAck *pa = NULL;
        jsErrCode jerr = 0;
        natsStatus s = js_Publish(&pa, js, r->subject, p, (int)n, &po, &jerr);
        if (s == NATS_OK) {
            *sseq = pa->Sequence;
            *duplicate = pa->Duplicate;
        } else if (s == NATS_NOT_PERMITTED) {
            st = mesh_err_set(err, MESH_FORBIDDEN, "the mesh servers refuse this node %s",
                              r->subject);
        } else {
            st = mesh_err_set(err, MESH_UNAVAILABLE,
                              "stream %s did not acknowledge the write (%s): it was not "
                              "acknowledged; retry with the same Idempotency-Key",
                              r->stream, nats_text(s));
        }
        jsPubAck_Destroy(pa);
    }
    jsCtx_Destroy(js);
    mesh__mesh_conn_done(r->m);
    pthread_mutex_lock(&r->mu);
    if (st == MESH_OK)
        r->st.published++;
    else
        r->st.publish_failures++;
    pthread_mutex_unlock(&r->mu);
    return st;
}

void mesh_repl_status(mesh_repl_t *r, mesh_repl_status_t *out)
{
    pthread_mutex_lock(&r->mu);
    *out = r->st;
    pthread_mutex_unlock(&r->mu);
    out->applied = r->position(r->arg, r->domain);
}
