/*
 * repl.c - a domain's JetStream stream and this node's consumer of it (see repl.h).
 *
 * Threads: one per replicated domain (run), which owns the consumer's subscription; publishers
 * (HTTP workers, forwarded requests) use the connection through their own short-lived jsCtx.
 * Both hold the mesh connection's lock for reading while they use it (mesh/internal.h), so a
 * connection is never replaced under them; a new connection (its generation changed) makes
 * the thread build its subscription again. An async domain has a second thread, the outbox
 * pump (pump_run), woken by writers through its own condition variable.
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
#include "mesh/recwire.h"
#include "store/dlog.h"

#define RETRY_NS      (1000LL * 1000000LL) /* after a failure, before trying again */
#define FETCH_WAIT_MS 1000                 /* a fetch waits this long for messages */
/* ... or this long after a fetch found nothing while this node's own records were acknowledged
 * (they were read from the stream's leader instead) */
#define FETCH_SILENT_WAIT_MS 200
#define SILENT_MAX           5 /* such fetches in a row before the consumer is made again */
#define INFO_EVERY_NS        (2000LL * 1000000LL) /* the stream's last sequence is read this often */
/* publishing (mesh_repl_publish, decision 0032) */
#define PUBLISH_ATTEMPT_MS      1000 /* first attempt's wait for the ack; doubles on a timeout */
#define PUBLISH_PAUSE_MIN_MS    50   /* pause after a fast failure (no leader, no link) */
#define PUBLISH_PAUSE_MAX_MS    250
#define PUBLISH_DEADLINE_FACTOR 3 /* all attempts within this many mesh_timeout */
#define STALLS_MAX              3 /* readings without progress before the consumer is made again */
/* async: after a run that published (and was not full), the outbox waits this long for more
 * batches, so that under load they travel in groups (decision 0040) */
#define OUTBOX_LINGER_NS (10LL * 1000000LL)
/* fetches failing for a consumer leader's election (8 s) before the consumer is made again,
 * and the pause after each */
#define FETCH_FAILS_MAX 32
#define FETCH_PAUSE_NS  (250LL * 1000000LL)
/* records missing before a delivery (lost in flight: JetStream delivers them again only after
 * the ack wait) read from the stream's leader and applied in order, at most, instead of
 * making the consumer again (an API call that waits out a consumer leader's election) */
#define GAP_FILL_MAX  32
#define BOOT_RETRY_NS (5000LL * 1000000LL) /* after a failed snapshot bootstrap */
/* divergence checks (decision 0029) */
#define GET_WAIT_MS    1000 /* a read of the stream (a record, its state, a lag) waits this long */
#define CHECK_FAILS    3    /* divergence checks failing in a row before a pause */
#define CHECK_PAUSE_NS (10000LL * 1000000LL) /* the pause (no leader, permission refused) */
#define CHECK_PROBES   32                    /* records compared at one check, at most */
/* Deliveries compared with the stream leader's record before they are applied, after each
 * (re)creation of the consumer: then its leader may be a server rejoining after a partition,
 * whose copy of the stream may hold records the majority's does not (nats-server 2.9.10 keeps
 * a record the cut-off leader stored but never committed, at a sequence where the majority
 * stored another). */
#define VERIFY_AFTER_MAKE MESH_REPL_FETCH
/* Records this node published that the stream's leader acknowledged, remembered by sequence
 * (a power of 2): a record the leader acknowledged at a sequence is the stream's record there
 * (JetStream acknowledges a replicated stream's record after its quorum stored it), so a
 * delivery found here with the same fingerprint is verified without reading the leader's
 * record (verify_delivery, compare_at). Whatever is not found here is read as before. */
#define ACKED_RING 1024
/* a stream record unpacked (recwire.h): at most what the domain's log takes with its 'S' header */
#define RECORD_MAX (MESH_DLOG_MAX_RECORD - 9)

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
    int fetch_fails;    /* fetches failing for an election since the last delivery */
    int silent;         /* fetches in a row that found nothing while own records were acked */
    uint64_t need_boot; /* the stream's first sequence, when it no longer holds what this
                         * node needs (0: no bootstrap needed) */
    mesh_repl_bootstrap_fn bootstrap; /* guarded by mu */
    int suspect;         /* stream infos in a row that saw this node diverge from the stream */
    int check_fails;     /* divergence checks in a row that could not read the stream */
    uint64_t verified;   /* the records up to it were found the stream's (0: none yet) */
    int verify_left;     /* deliveries still compared with the leader's before they apply */
    int verify_fails;    /* comparisons in a row that could not read the leader's record */
    int64_t verify_off;  /* no comparisons before this (mono ns): reads kept failing */
    int64_t check_after; /* no divergence check before this (mono ns) */

    /* acknowledged publishes (ACKED_RING; guarded by mu): at [seq % ACKED_RING] the stream
     * sequence (0: none) and the fingerprint (mesh_fp64) of the record acknowledged there */
    struct {
        uint64_t seq, fp;
    } acked[ACKED_RING];
    uint64_t acked_last; /* the last sequence acknowledged to this node's publishes (mu) */

    /* divergence checks (mesh_repl_set_check; guarded by mu, NULL: off) */
    mesh_repl_fp_fn fp;
    mesh_repl_rewind_fn rewind;

    /* hosts whose consumers are read for their lag (guarded by mu) */
    char hosts[MESH_REPL_HOSTS_MAX][64];
    size_t nhosts;

    /* async: the outbox pump */
    mesh_repl_pump_fn pump;
    pthread_t pump_thread;
    bool pump_started;
    pthread_cond_t pump_cv; /* with mu: kicked or stop */
    bool kicked;
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

/* Remembers that the stream's leader acknowledged the record with fingerprint fp at seq as a
 * new record (not a duplicate of an earlier one: its record there may be another one). */
static void remember_acked(mesh_repl_t *r, uint64_t seq, uint64_t fp)
{
    if (seq == 0)
        return;
    pthread_mutex_lock(&r->mu);
    if (seq > r->acked_last)
        r->acked_last = seq;
    r->acked[seq % ACKED_RING].seq = seq;
    r->acked[seq % ACKED_RING].fp = fp;
    pthread_mutex_unlock(&r->mu);
}

/* Whether this node published the record with fingerprint fp and the leader acknowledged it
 * at seq (so the stream holds it there). false: not known here (ask the leader). */
static bool acked_as(mesh_repl_t *r, uint64_t seq, uint64_t fp)
{
    pthread_mutex_lock(&r->mu);
    bool yes = r->acked[seq % ACKED_RING].seq == seq && r->acked[seq % ACKED_RING].fp == fp;
    pthread_mutex_unlock(&r->mu);
    return yes;
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
    int64_t max_age, max_bytes, max_msgs;
    mesh__mesh_stream_limits(r->m, &max_age, &max_bytes, &max_msgs);
    c.MaxAge = max_age > 0 ? max_age : MESH_REPL_MAX_AGE_NS;
    c.MaxBytes = max_bytes > 0 ? max_bytes : -1;
    c.MaxMsgs = max_msgs > 0 ? max_msgs : -1;
    c.Duplicates = MESH_REPL_DUPLICATES_NS;
    int64_t maxp = natsConnection_GetMaxPayload(nc);
    c.MaxMsgSize = maxp > 0 && maxp < INT32_MAX ? (int32_t)maxp : -1;
    s = js_AddStream(&si, r->js, &c, NULL, &jerr);
    if (s == NATS_OK || jerr == JSStreamNameExistErr) {
        if (s == NATS_OK)
            LOG_INFO("mesh", "created stream %s (%d replicas)", r->stream, replicas);
        pthread_mutex_lock(&r->mu);
        if (s == NATS_OK) /* a new stream: its sequences start again */
            memset(r->acked, 0, sizeof r->acked);
        r->acked_last = 0;
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
    cc.AckPolicy = js_AckAll;
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
    if (s != NATS_OK && jerr == JSStreamNotFoundErr)
        r->stream_ok = false; /* deleted: made again (its sequences start over) */
    if (s != NATS_OK) {
        set_state(r, "error", "consumer %s: %s", node, nats_text(s));
        return false;
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = r->stream;
    so.Consumer = node;
    so.Config.AckPolicy = cc.AckPolicy;
    s = js_PullSubscribe(&r->sub, r->js, r->subject, node, NULL, &so, &jerr);
    if (s != NATS_OK) {
        r->sub = NULL;
        set_state(r, "error", "pull subscription %s: %s", node, nats_text(s));
        return false;
    }
    LOG_INFO("mesh", "stream %s: consuming as %s from sequence %llu", r->stream, node,
             (unsigned long long)pos + 1);
    r->verify_left = mesh_mono_ns() < r->verify_off ? 0 : VERIFY_AFTER_MAKE;
    r->silent = 0;
    r->fetch_fails = 0;
    return true;
}

/* Options for the API calls of the consuming thread that only read (the stream's state, the
 * consumers' lags, a record): a short wait, since nothing is applied meanwhile (the context's
 * wait is mesh_timeout, and a leader's election answers none of them). */
static jsOptions *read_opts(jsOptions *jo)
{
    jsOptions_Init(jo);
    jo->Wait = GET_WAIT_MS;
    return jo;
}

/* Whether the stream no longer holds sequence seq (trimmed by its limits); *first: the
 * sequence it starts at. */
static bool trimmed_before(mesh_repl_t *r, uint64_t seq, uint64_t *first)
{
    jsErrCode jerr = 0;
    jsStreamInfo *si = NULL;
    jsOptions jo;
    if (js_GetStreamInfo(&si, r->js, r->stream, read_opts(&jo), &jerr) != NATS_OK)
        return false;
    bool gone = si->State.FirstSeq > seq;
    *first = si->State.FirstSeq;
    jsStreamInfo_Destroy(si);
    return gone;
}

/* Reads the record at seq from the stream's leader (*m: the caller destroys it). */
static natsStatus get_record(mesh_repl_t *r, uint64_t seq, natsMsg **m, jsErrCode *jerr)
{
    jsOptions jo;
    *m = NULL;
    return js_GetMsg(m, r->js, r->stream, seq, read_opts(&jo), jerr);
}

/* A consumer delivers in stream order, except that a message whose delivery was lost (a fetch
 * that timed out, a consumer leader killed with the message in flight) is delivered again only
 * after the ack wait, behind later ones: applying those first would skip it for good (it is at
 * or below the position when it comes). So the records next..seq-1, missing before a delivery
 * of seq, are read from the stream's leader into out[] (NULL where the stream does not hold
 * one: deleted), at most room of them. Returns how
 * many (seq - next), or -1: apply nothing from seq on and make the consumer again (too many,
 * or the leader could not be asked). */
static int fill_gap(mesh_repl_t *r, uint64_t next, uint64_t seq, natsMsg **out, size_t room,
                    bool delivered)
{
    if (delivered) {
        pthread_mutex_lock(&r->mu);
        r->st.out_of_order++;
        pthread_mutex_unlock(&r->mu);
    }
    if (seq - next > room) {
        set_state(r, "error",
                  "sequence %llu was delivered before %llu: more than %zu records missing, not "
                  "applied; the consumer is made again from %llu",
                  (unsigned long long)seq, (unsigned long long)next, room,
                  (unsigned long long)next);
        return -1;
    }
    size_t n = (size_t)(seq - next), held = 0;
    for (size_t k = 0; k < n; k++) {
        jsErrCode jerr = 0;
        natsStatus s = get_record(r, next + k, &out[k], &jerr);
        if (s == NATS_OK) {
            held++;
            continue;
        }
        natsMsg_Destroy(out[k]);
        out[k] = NULL;
        if (jerr == JSNoMessageFoundErr && !delivered) {
            n = k; /* not (or no longer) in the stream: the records before it are read */
            break;
        }
        if (jerr == JSNoMessageFoundErr) {
            LOG_WARN("mesh", "stream %s: sequence %llu is not in the stream (deleted): applying on",
                     r->stream, (unsigned long long)(next + k));
            continue;
        }
        for (size_t i = 0; i < k; i++)
            natsMsg_Destroy(out[i]);
        if (delivered)
            set_state(r, "error",
                      "sequence %llu was delivered before %llu, and the stream's leader could not "
                      "be asked for %llu (%s): not applied; the consumer is made again",
                      (unsigned long long)seq, (unsigned long long)next,
                      (unsigned long long)(next + k), nats_text(s));
        else
            set_state(r, "error",
                      "nothing delivered, and the stream's leader could not be asked for %llu "
                      "(%s)",
                      (unsigned long long)(next + k), nats_text(s));
        return -1;
    }
    if (held && delivered)
        LOG_INFO("mesh",
                 "stream %s: sequence %llu was delivered before %llu..%llu (a delivery lost in "
                 "flight): %zu read from the stream's leader and applied first",
                 r->stream, (unsigned long long)seq, (unsigned long long)next,
                 (unsigned long long)(seq - 1), held);
    else if (held)
        LOG_INFO("mesh",
                 "stream %s: nothing delivered with this node's records acknowledged up to "
                 "%llu: %zu from %llu read from the stream's leader and applied",
                 r->stream, (unsigned long long)(seq - 1), held, (unsigned long long)next);
    return (int)n;
}

/* Before a delivery of seq applies (verify_left): the stream leader's record there. *lm: NULL
 * when the delivery is the leader's record, else the leader's (the caller applies it instead
 * and destroys it). false: apply nothing from seq on (no leader to ask, or the leader does not
 * hold seq: the delivery is from a copy ahead of the stream). */
static bool verify_delivery(mesh_repl_t *r, uint64_t seq, natsMsg *msg, natsMsg **lm)
{
    *lm = NULL;
    jsErrCode jerr = 0;
    natsMsg *m = NULL;
    natsStatus s = get_record(r, seq, &m, &jerr);
    if (s != NATS_OK) {
        natsMsg_Destroy(m);
        if (jerr != JSNoMessageFoundErr && ++r->verify_fails >= CHECK_FAILS) {
            /* servers whose configs predate the permission to read a record
             * (STREAM.MSG.GET.MESHD_DOM_<domain>), or no leader for long: applying nothing
             * meanwhile would stop the replica; the periodic checks remain */
            LOG_WARN("mesh",
                     "stream %s: deliveries are applied without comparing them with the "
                     "leader's records for %d s: reading sequence %llu failed %d times in a row "
                     "(%s; node users need STREAM.MSG.GET on the domain's stream: regenerate "
                     "the servers' configs with meshctl mesh config)",
                     r->stream, (int)(CHECK_PAUSE_NS * 6 / MESH_NS_PER_SEC),
                     (unsigned long long)seq, r->verify_fails, nats_text(s));
            r->verify_fails = 0;
            r->verify_off = mesh_mono_ns() + CHECK_PAUSE_NS * 6;
            r->verify_left = 0;
            return true;
        }
        set_state(r, "error",
                  "sequence %llu delivered, and the stream's leader %s: not applied; the consumer "
                  "is made again",
                  (unsigned long long)seq,
                  jerr == JSNoMessageFoundErr ? "does not hold it" : "could not be asked");
        return false;
    }
    r->verify_fails = 0;
    uint64_t mine = mesh_fp64(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg));
    uint64_t theirs = mesh_fp64(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
    if (mine == theirs) {
        natsMsg_Destroy(m);
        return true;
    }
    const char *a = NULL, *b = NULL;
    natsMsgHeader_Get(msg, "Nats-Msg-Id", &a);
    natsMsgHeader_Get(m, "Nats-Msg-Id", &b);
    pthread_mutex_lock(&r->mu);
    r->st.divergences++;
    pthread_mutex_unlock(&r->mu);
    LOG_ERROR("mesh",
              "stream %s: sequence %llu was delivered as record %s, which is not the stream's "
              "(its leader holds %s there: the consumer reads a server's divergent copy); the "
              "leader's record is applied",
              r->stream, (unsigned long long)seq, a ? a : "-", b ? b : "-");
    set_state(r, "diverged",
              "sequence %llu was delivered as record %s, not the stream's (%s): the leader's "
              "record was applied",
              (unsigned long long)seq, a ? a : "-", b ? b : "-");
    *lm = m;
    return true;
}

/* Compares what this node applied at seq with what the stream's leader holds there: 0 the
 * same record, 1 another one, -1 not known (not applied here or forgotten, not in the stream),
 * -2 a failure (the stream or the domain could not be read). */
static int compare_at(mesh_repl_t *r, mesh_repl_fp_fn fp, uint64_t seq)
{
    uint64_t mine = 0;
    int k = fp(r->arg, r->domain, seq, &mine);
    if (k <= 0)
        return k < 0 ? -2 : -1;
    if (acked_as(r, seq, mine))
        return 0; /* this node's record, acknowledged there by the leader */
    jsErrCode jerr = 0;
    natsMsg *m = NULL;
    natsStatus s = get_record(r, seq, &m, &jerr);
    if (s != NATS_OK) {
        natsMsg_Destroy(m);
        if (jerr == JSNoMessageFoundErr)
            return -1;
        if (++r->check_fails >= CHECK_FAILS) {
            /* no leader for a while, or servers whose configs predate the permission to read
             * a record (STREAM.MSG.GET): each try would hold the consumer up */
            LOG_WARN("mesh",
                     "stream %s: divergence checks paused for %d s: reading sequence %llu from "
                     "the stream failed %d times in a row (%s)",
                     r->stream, (int)(CHECK_PAUSE_NS / MESH_NS_PER_SEC), (unsigned long long)seq,
                     r->check_fails, nats_text(s));
            r->check_fails = 0;
            r->check_after = mesh_mono_ns() + CHECK_PAUSE_NS;
        }
        return -2;
    }
    r->check_fails = 0;
    mesh_buf_t b;
    mesh_buf_init(&b, RECORD_MAX);
    const uint8_t *rec = NULL;
    size_t rn = 0;
    mesh_err_t e;
    int same = 1; /* a record that cannot be unpacked is not the one applied here */
    if (mesh_recwire_unpack((const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m),
                            RECORD_MAX, &b, &rec, &rn, &e) == MESH_OK)
        same = mine == mesh_fp64(rec, rn) ? 0 : 1;
    mesh_buf_free(&b);
    natsMsg_Destroy(m);
    return same;
}

/* Checks that the records this node applied since the last check are the stream's (first..last:
 * the stream's sequences when last read): every one when there are at most CHECK_PROBES, else
 * that many spread over them, the newest first; and that its position is not past the
 * stream's end. A replica must never skip a record it did not apply: when it applied records
 * the stream does not hold (delivered from a server whose copy lost to the others after a
 * partition), seen twice in a row (a leader just elected may still be applying), the domain is
 * moved back to the last sequence where both agree, and the stream applied again from there.
 * false: the consumer must be made again. */
static bool check_divergence(mesh_repl_t *r, uint64_t first, uint64_t last)
{
    pthread_mutex_lock(&r->mu);
    mesh_repl_fp_fn fp = r->fp;
    mesh_repl_rewind_fn rewind = r->rewind;
    pthread_mutex_unlock(&r->mu);
    uint64_t pos = r->position(r->arg, r->domain);
    if (fp == NULL || rewind == NULL || pos == 0 || mesh_mono_ns() < r->check_after)
        return true;
    if (r->verified > pos)
        r->verified = pos; /* moved back (here, or a restore) */
    bool ahead = pos > last;
    uint64_t lo = r->verified + 1 > first ? r->verified + 1 : first;
    uint64_t span = pos >= lo ? pos - lo + 1 : 0;
    uint64_t bad = ahead ? pos : 0; /* the newest record found not to be the stream's */
    for (uint64_t i = 0; !ahead && i < CHECK_PROBES && i < span; i++) {
        uint64_t seq = span <= CHECK_PROBES ? pos - i : pos - i * (span / CHECK_PROBES);
        int c = compare_at(r, fp, seq);
        if (c == -2)
            return true; /* asked again at the next reading */
        if (c == 1) {
            bad = seq;
            break;
        }
    }
    if (bad == 0) {
        r->suspect = 0;
        r->verified = pos;
        return true;
    }
    if (++r->suspect < 2)
        return true;
    r->suspect = 0;
    /* the last sequence where both agree, stepping back 1, 2, 4, ... (moving back further
     * than needed only re-reads records, which the domain skips by their id) */
    uint64_t good = bad < last ? bad : last, step = 1;
    while (good > 0 && good >= first) {
        int k = compare_at(r, fp, good);
        if (k == -2)
            return true; /* asked again at the next reading */
        if (k != 1)
            break; /* the same record, or one that cannot be compared */
        good = good > step ? good - step : 0;
        step *= 2;
    }
    if (first > 1 && good + 1 < first)
        good = first - 1; /* what is before the stream's first record cannot be read again */
    r->verified = good;
    pthread_mutex_lock(&r->mu);
    r->st.divergences++;
    pthread_mutex_unlock(&r->mu);
    LOG_ERROR("mesh",
              "stream %s: this node diverged from the stream: it applied sequence %llu, and the "
              "stream %s; the records it applied after %llu are not all the stream's. Moving "
              "back to %llu and applying the stream again from %llu (records applied here "
              "before are skipped by their message id)",
              r->stream, (unsigned long long)bad,
              ahead ? "ends before it" : "holds another record there", (unsigned long long)good,
              (unsigned long long)good, (unsigned long long)good + 1);
    mesh_err_t e;
    mesh_err_clear(&e);
    if (rewind(r->arg, r->domain, good, &e) != MESH_OK) {
        set_state(r, "error", "diverged at sequence %llu; moving back to %llu failed: %s",
                  (unsigned long long)bad, (unsigned long long)good, e.msg);
        return false;
    }
    set_state(r, "diverged",
              "diverged: this node had applied sequence %llu, which the stream %s (up to %llu); "
              "moved back to %llu and applying the stream again",
              (unsigned long long)bad, ahead ? "does not hold" : "holds as another record",
              (unsigned long long)last, (unsigned long long)good);
    return false;
}

/* Reads every host's consumer: how many messages it has not applied, and since when it has
 * been behind (the server's time of its last ack, or of the consumer's creation). A host
 * without a consumer (never started) is unknown (-1). */
static void read_lags(mesh_repl_t *r)
{
    char hosts[MESH_REPL_HOSTS_MAX][64];
    pthread_mutex_lock(&r->mu);
    size_t nh = r->nhosts;
    memcpy(hosts, r->hosts, sizeof hosts);
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < nh; i++) {
        jsErrCode jerr = 0;
        jsConsumerInfo *ci = NULL;
        uint64_t pending = 0;
        double lag = -1;
        jsOptions jo;
        natsStatus s = js_GetConsumerInfo(&ci, r->js, r->stream, hosts[i], read_opts(&jo), &jerr);
        if (s == NATS_TIMEOUT)
            break; /* no leader: the next reading */
        if (s == NATS_OK) {
            pending = ci->NumPending + (uint64_t)(ci->NumAckPending > 0 ? ci->NumAckPending : 0);
            int64_t since = ci->AckFloor.Last > ci->Created ? ci->AckFloor.Last : ci->Created;
            int64_t now = mesh_now_ns();
            lag = pending == 0 || since <= 0 || now <= since
                      ? 0
                      : (double)(now - since) / (double)MESH_NS_PER_SEC;
            jsConsumerInfo_Destroy(ci);
        }
        pthread_mutex_lock(&r->mu);
        snprintf(r->st.rep[i].name, sizeof r->st.rep[i].name, "%s", hosts[i]);
        r->st.rep[i].pending = pending;
        r->st.rep[i].lag_s = lag;
        r->st.nreplicas = nh;
        pthread_mutex_unlock(&r->mu);
    }
}

/* The record message msg carries at seq (recwire.h): *p, *n into msg or b. false: it cannot
 * be read (state set): nothing from seq on is applied, and the consumer is made again. */
static bool unpack(mesh_repl_t *r, uint64_t seq, natsMsg *msg, mesh_buf_t *b, const uint8_t **p,
                   size_t *n, mesh_err_t *e)
{
    if (mesh_recwire_unpack((const uint8_t *)natsMsg_GetData(msg),
                            (size_t)natsMsg_GetDataLength(msg), RECORD_MAX, b, p, n, e) == MESH_OK)
        return true;
    pthread_mutex_lock(&r->mu);
    r->st.apply_failures++;
    pthread_mutex_unlock(&r->mu);
    set_state(r, "error", "sequence %llu: %s", (unsigned long long)seq, e->msg);
    return false;
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

/* The records one call applies, in order (the domain applies them as one group). A record
 * read from the stream's leader (a missing one, or one a delivery did not match) is kept in
 * lv[] and has no delivery to acknowledge (mv[] NULL). */
typedef struct group {
    mesh_repl_rec_t *v;
    natsMsg **mv;   /* the deliveries */
    natsMsg **lv;   /* the leader's records */
    mesh_buf_t *bv; /* unpacked records */
    size_t nv, cap;
} group_t;

static bool group_init(group_t *g, size_t cap)
{
    memset(g, 0, sizeof *g);
    g->cap = cap;
    g->v = calloc(cap, sizeof *g->v);
    g->mv = calloc(cap, sizeof *g->mv);
    g->lv = calloc(cap, sizeof *g->lv);
    g->bv = calloc(cap, sizeof *g->bv);
    return g->v && g->mv && g->lv && g->bv;
}

/* Takes rec (the stream's record at seq) as the next of the group: v[nv] into it or bv[nv].
 * false: it cannot be read (state set). */
static bool take(mesh_repl_t *r, group_t *g, uint64_t seq, natsMsg *rec)
{
    if (g->nv >= g->cap)
        return false;
    mesh_buf_init(&g->bv[g->nv], RECORD_MAX);
    const uint8_t *p = NULL;
    size_t n = 0;
    mesh_err_t e;
    if (!unpack(r, seq, rec, &g->bv[g->nv], &p, &n, &e))
        return false;
    const char *id = NULL;
    if (natsMsgHeader_Get(rec, "Nats-Msg-Id", &id) != NATS_OK)
        id = NULL;
    g->v[g->nv++] = (mesh_repl_rec_t){seq, p, n, id};
    return true;
}

/* Takes the records the leader gave for a gap (fill_gap: k of them from seq on; NULL: deleted)
 * as records of the group; destroys the ones not taken. false: one cannot be read. */
static bool take_filled(mesh_repl_t *r, group_t *g, uint64_t seq, natsMsg **gap, int k)
{
    bool ok = true;
    uint64_t taken = 0;
    for (int j = 0; j < k && ok; j++) {
        if (gap[j] == NULL)
            continue; /* deleted */
        if ((ok = take(r, g, seq + (uint64_t)j, gap[j]))) {
            g->lv[g->nv - 1] = gap[j];
            gap[j] = NULL;
            taken++;
        }
    }
    for (int j = 0; j < k; j++)
        natsMsg_Destroy(gap[j]); /* those not taken (a failure) */
    pthread_mutex_lock(&r->mu);
    r->st.read_direct += taken;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

/* Applies the group, acknowledges the last delivery applied (AckAll: it covers the ones
 * before it; one ack, not one per record) and frees the group. false: not all were applied
 * (state set). */
static bool group_apply(mesh_repl_t *r, group_t *g)
{
    size_t done = 0;
    mesh_err_t e;
    mesh_err_clear(&e);
    mesh_status_t st = g->nv ? r->apply(r->arg, r->domain, g->v, g->nv, &done, &e) : MESH_OK;
    for (size_t i = done < g->nv ? done : g->nv; i > 0; i--)
        if (g->mv[i - 1]) {
            natsMsg_Ack(g->mv[i - 1], NULL);
            break;
        }
    pthread_mutex_lock(&r->mu);
    r->st.applied_msgs += done;
    if (done && g->v[done - 1].seq > r->st.stream_last)
        r->st.stream_last = g->v[done - 1].seq;
    if (st != MESH_OK)
        r->st.apply_failures++;
    pthread_mutex_unlock(&r->mu);
    if (st != MESH_OK)
        set_state(r, "error", "applying sequence %llu: %s",
                  (unsigned long long)(done < g->nv ? g->v[done].seq : 0),
                  e.msg[0] ? e.msg : mesh_status_text(st));
    for (size_t i = 0; g->lv && i < g->nv; i++)
        natsMsg_Destroy(g->lv[i]);
    for (size_t i = 0; g->bv && i < g->cap; i++)
        mesh_buf_free(&g->bv[i]); /* [nv]: a record not kept */
    free(g->bv);
    free(g->v);
    free(g->mv);
    free(g->lv);
    return st == MESH_OK;
}

/* Nothing was delivered for a while, and this node's own publishes were acknowledged past its
 * position: the records up to there are the stream's (JetStream acknowledges a record after
 * its quorum stored it, and the ones before it are stored), so the missing ones are read from
 * the stream's leader and applied. A consumer whose leader changed can stay silent until its
 * deliveries lost in flight come again after the ack wait (30 s), and a sync write here waits
 * for its record meanwhile. false: start over (consumer made again: a record read cannot be
 * applied). */
static bool apply_direct(mesh_repl_t *r, bool timed_out)
{
    pthread_mutex_lock(&r->mu);
    uint64_t last = r->acked_last;
    pthread_mutex_unlock(&r->mu);
    uint64_t pos = r->position(r->arg, r->domain);
    if (last <= pos) {
        r->silent = 0;
        return true;
    }
    if (timed_out && ++r->silent >= SILENT_MAX) {
        r->silent = 0;
        set_state(r, "error",
                  "the consumer delivered nothing while the stream acknowledged this node's "
                  "records up to %llu (this node at %llu): making it again",
                  (unsigned long long)last, (unsigned long long)pos);
        return false;
    }
    uint64_t upto = last - pos > GAP_FILL_MAX ? pos + GAP_FILL_MAX : last;
    natsMsg *gap[GAP_FILL_MAX];
    int k = fill_gap(r, pos + 1, upto + 1, gap, GAP_FILL_MAX, false);
    if (k < 0)
        return true; /* no leader yet, say: the consumer stays, the stall checks remain */
    if (k == 0) {    /* the stream was made again since: its sequences start over */
        pthread_mutex_lock(&r->mu);
        if (r->acked_last == last)
            r->acked_last = pos;
        pthread_mutex_unlock(&r->mu);
        return true;
    }
    group_t g;
    bool ok = false;
    if (group_init(&g, (size_t)k))
        ok = take_filled(r, &g, pos + 1, gap, k);
    else
        for (int j = 0; j < k; j++)
            natsMsg_Destroy(gap[j]);
    return group_apply(r, &g) && ok;
}

/* Whether the stream's leader says this node's consumer (or the stream) is gone. */
static bool consumer_gone(mesh_repl_t *r)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    jsOptions jo;
    natsStatus s = js_GetConsumerInfo(&ci, r->js, r->stream, mesh__mesh_node_name(r->m),
                                      read_opts(&jo), &jerr);
    jsConsumerInfo_Destroy(ci);
    return s != NATS_OK && (jerr == JSConsumerNotFoundErr || jerr == JSStreamNotFoundErr);
}

/* Fetches one batch and applies it in order. false: start over (consumer made again). */
static bool consume(mesh_repl_t *r)
{
    natsMsgList list = {0};
    jsErrCode jerr = 0;
    natsStatus s = natsSubscription_Fetch(&list, r->sub, MESH_REPL_FETCH,
                                          r->silent ? FETCH_SILENT_WAIT_MS : FETCH_WAIT_MS, &jerr);
    if (s == NATS_TIMEOUT)
        return apply_direct(r, true);
    if (s != NATS_OK) {
        /* the consumer's leader changing (a 409 status libnats reports with its description)
         * or none yet answers a pull at once: the subscription stays, since making the
         * consumer again is an API call that waits out the election; anything else (the
         * consumer deleted, say) makes it again at once */
        const char *t = nats_text(s);
        bool election = s == NATS_NO_RESPONDERS || strstr(t, "Leadership Change") != NULL;
        set_state(r, "error", "fetch: %s", t);
        /* a newer server also answers a pull of a missing consumer with no responders:
         * every few refusals, whether the consumer is still there */
        if (election && ++r->fetch_fails % 4 == 0 && consumer_gone(r))
            election = false;
        if (election && r->fetch_fails < FETCH_FAILS_MAX)
            return stopping(r, FETCH_PAUSE_NS) || apply_direct(r, false);
        r->fetch_fails = 0;
        return false;
    }
    r->fetch_fails = 0;
    r->silent = 0;
    bool ok = true;
    size_t filled = 0;
    group_t g;
    natsMsg *gap[GAP_FILL_MAX];
    uint64_t pos = r->position(r->arg, r->domain), next = pos + 1;
    if (!group_init(&g, (size_t)list.Count + GAP_FILL_MAX))
        ok = false;
    for (int i = 0; i < list.Count && ok; i++) {
        natsMsg *msg = list.Msgs[i];
        jsMsgMetaData *meta = NULL;
        if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
            natsMsg_Ack(msg, NULL); /* not a stream message: nothing to apply */
            continue;
        }
        uint64_t seq = meta->Sequence.Stream;
        jsMsgMetaData_Destroy(meta);
        if (seq < next) {
            natsMsg_Ack(msg, NULL); /* applied before, or read from the leader just now */
            continue;
        }
        uint64_t first = 0;
        if (seq > next && trimmed_before(r, next, &first)) {
            /* the records between are gone from the stream: applying on would skip them */
            set_state(r, "trimmed",
                      "the stream no longer holds sequence %llu that this node needs (it holds "
                      "%llu..): bootstrapping from a snapshot of another host (docs/mesh.md)",
                      (unsigned long long)next, (unsigned long long)first);
            r->need_boot = first;
            ok = false;
            break;
        }
        if (seq > next) {
            int k = fill_gap(r, next, seq, gap, GAP_FILL_MAX - filled, true);
            /* k < 0: the records before it are applied; this one and later come again */
            if (k < 0 || !take_filled(r, &g, next, gap, k)) {
                ok = false;
                break;
            }
            filled += (size_t)k;
        }
        if (!take(r, &g, seq, msg)) {
            ok = false;
            break;
        }
        natsMsg *lm = NULL;
        const mesh_repl_rec_t *t = &g.v[g.nv - 1];
        if (r->verify_left > 0 && !acked_as(r, seq, mesh_fp64(t->p, t->n)) &&
            !verify_delivery(r, seq, msg, &lm)) {
            g.nv--;     /* not kept (its buffer is freed with the group) */
            ok = false; /* the records before it are applied; this one and later come again */
            break;
        }
        if (r->verify_left > 0)
            r->verify_left--;
        if (lm) { /* the stream's record there is the leader's */
            mesh_buf_free(&g.bv[--g.nv]);
            if (!take(r, &g, seq, lm)) {
                natsMsg_Destroy(lm);
                ok = false;
                break;
            }
        }
        g.lv[g.nv - 1] = lm;
        g.mv[g.nv - 1] = msg;
        next = seq + 1;
    }
    if (!group_apply(r, &g))
        ok = false;
    natsMsgList_Destroy(&list);
    return ok;
}

/* Installs a snapshot (connection not held). true: the consumer is made again after it. */
static bool run_bootstrap(mesh_repl_t *r)
{
    pthread_mutex_lock(&r->mu);
    mesh_repl_bootstrap_fn fn = r->bootstrap;
    pthread_mutex_unlock(&r->mu);
    if (fn == NULL)
        return false;
    set_state(r, "bootstrapping", "the stream starts at %llu: fetching a snapshot",
              (unsigned long long)r->need_boot);
    mesh_err_t e;
    mesh_err_clear(&e);
    mesh_status_t st = fn(r->arg, r->domain, r, r->need_boot, &e);
    if (st != MESH_OK) {
        set_state(r, "trimmed", "snapshot bootstrap: %s (retrying)",
                  e.msg[0] ? e.msg : mesh_status_text(st));
        return false;
    }
    pthread_mutex_lock(&r->mu);
    r->st.bootstraps++;
    pthread_mutex_unlock(&r->mu);
    LOG_INFO("mesh", "stream %s: snapshot installed at sequence %llu", r->stream,
             (unsigned long long)r->position(r->arg, r->domain));
    r->need_boot = 0;
    r->stalls = 0;
    return true;
}

static void *run(void *arg)
{
    mesh_repl_t *r = arg;
    mesh_thread_name("repl", r->domain);
    while (!stopping(r, 0)) {
        uint64_t gen;
        natsConnection *nc = mesh__mesh_conn(r->m, &gen);
        /* a connection gone: its subscription goes with it (libnats freed its side); one
         * reconnecting keeps it, and the consumer (making it again waits out an election) */
        if (gen != r->gen || (nc == NULL && !mesh__mesh_conn_reconnecting(r->m))) {
            drop_consumer(r);
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
            r->need_boot = 0; /* decided again from this round's readings */
            ok = consume(r);
            int64_t now = mesh_mono_ns();
            if (ok && now >= r->next_info) {
                jsErrCode jerr = 0;
                jsStreamInfo *si = NULL;
                jsOptions jo;
                bool info =
                    js_GetStreamInfo(&si, r->js, r->stream, read_opts(&jo), &jerr) == NATS_OK;
                if (info) {
                    /* the stream is ahead and nothing was applied for STALLS_MAX readings:
                     * the consumer is lost (made on a server cut off from the others, say,
                     * whose view lost to the rest after a partition); make it again */
                    uint64_t pos = r->position(r->arg, r->domain);
                    if (si->State.FirstSeq > pos + 1) {
                        /* purged or trimmed past this node with nothing left to deliver */
                        set_state(r, "trimmed",
                                  "the stream starts at %llu and this node holds up to %llu: "
                                  "bootstrapping from a snapshot of another host",
                                  (unsigned long long)si->State.FirstSeq, (unsigned long long)pos);
                        r->need_boot = si->State.FirstSeq;
                        ok = false;
                    }
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
                    if (ok && !check_divergence(r, si->State.FirstSeq, si->State.LastSeq))
                        ok = false;
                    pthread_mutex_lock(&r->mu);
                    r->st.stream_last = si->State.LastSeq;
                    r->st.replicas = (int)si->Config->Replicas;
                    snprintf(r->st.leader, sizeof r->st.leader, "%s",
                             si->Cluster && si->Cluster->Leader ? si->Cluster->Leader : "");
                    pthread_mutex_unlock(&r->mu);
                    jsStreamInfo_Destroy(si);
                }
                if (info)
                    read_lags(r);
                r->next_info = now + INFO_EVERY_NS;
            }
        }
        if (!ok) {
            natsSubscription_Destroy(r->sub);
            r->sub = NULL;
        }
        mesh__mesh_conn_done(r->m);
        if (!ok && r->need_boot)
            ok = run_bootstrap(r);
        if (!ok)
            stopping(r, r->need_boot ? BOOT_RETRY_NS : RETRY_NS);
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
    pthread_cond_init(&r->pump_cv, NULL);
    if (pthread_create(&r->thread, NULL, run, r) != 0) {
        pthread_cond_destroy(&r->pump_cv);
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
    pthread_cond_broadcast(&r->pump_cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    if (r->pump_started)
        pthread_join(r->pump_thread, NULL);
    pthread_cond_destroy(&r->pump_cv);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

const char *mesh_repl_stream(const mesh_repl_t *r)
{
    return r->stream;
}

void mesh_repl_set_check(mesh_repl_t *r, mesh_repl_fp_fn fp, mesh_repl_rewind_fn rewind)
{
    pthread_mutex_lock(&r->mu);
    r->fp = fp;
    r->rewind = rewind;
    pthread_mutex_unlock(&r->mu);
}

/* Whether a failed publish may succeed when sent again: no connection (reconnecting), no
 * stream leader (an election: "no responders", or a JetStream "not available"/"not leader"),
 * or no ack in time (the leader died with the message, or is slow). A retry carries the same
 * message id, so a message that was stored after all is acknowledged as a duplicate. */
static bool publish_transient(natsStatus s, jsErrCode jerr)
{
    switch (s) {
    case NATS_TIMEOUT:
    case NATS_NO_RESPONDERS:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_NOT_YET_CONNECTED:
    case NATS_CONNECTION_CLOSED:
    case NATS_STALE_CONNECTION:
        return true;
    default:
        return jerr == JSClusterNotAvailErr || jerr == JSClusterNotLeaderErr;
    }
}

/* Waits ms (or until mesh_repl_stop). false when stopping. */
static bool publish_pause(mesh_repl_t *r, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + (ms % 1000) * 1000000;
    ts.tv_sec += (time_t)(ms / 1000 + ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&r->mu);
    if (!r->stop)
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    bool stop = r->stop;
    pthread_mutex_unlock(&r->mu);
    return !stop;
}

/* One attempt: sends the message p[0..n) (a record as it travels, with fingerprint fp) once
 * and waits at most wait_ms for the ack. *transient says whether a failure may pass when sent
 * again. */
static mesh_status_t publish_once(mesh_repl_t *r, const uint8_t *p, size_t n, uint64_t fp,
                                  const char *msg_id, int64_t wait_ms, uint64_t *sseq,
                                  bool *duplicate, bool *transient, mesh_err_t *err)
{
    *transient = false;
    uint64_t gen;
    natsConnection *nc = mesh__mesh_conn(r->m, &gen);
    mesh_status_t st = MESH_OK;
    jsCtx *js = NULL;
    if (nc == NULL) {
        *transient = true;
        st = mesh_err_set(err, MESH_UNAVAILABLE,
                          "domain %s is replicated and this node is not connected to the "
                          "mesh: the write was not acknowledged",
                          r->domain);
    }
    int64_t maxp = nc ? natsConnection_GetMaxPayload(nc) : 0;
    if (st == MESH_OK && maxp > 0 && (int64_t)n > maxp)
        st = mesh_err_set(err, MESH_TOO_LARGE,
                          "the batch's record (%zu bytes as it travels) exceeds the mesh "
                          "servers' max payload (%lld bytes): send smaller batches",
                          n, (long long)maxp);
    if (st == MESH_OK && natsConnection_JetStream(&js, nc, NULL) != NATS_OK)
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
    if (st == MESH_OK) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MsgId = msg_id;
        /* no ExpectStream: the header stays in the stored message, and a hub copy sourcing
         * it (source.h) refuses it on nats-server 2.9 ("expected stream does not match") */
        po.MaxWait = wait_ms;
        jsPubAck *pa = NULL;
        jsErrCode jerr = 0;
        natsStatus s = js_Publish(&pa, js, r->subject, p, (int)n, &po, &jerr);
        if (s == NATS_OK) {
            *sseq = pa->Sequence;
            *duplicate = pa->Duplicate;
            if (!pa->Duplicate)
                remember_acked(r, pa->Sequence, fp);
        } else if (s == NATS_NOT_PERMITTED) {
            st = mesh_err_set(err, MESH_FORBIDDEN, "the mesh servers refuse this node %s",
                              r->subject);
        } else {
            *transient = publish_transient(s, jerr);
            st = mesh_err_set(err, MESH_UNAVAILABLE,
                              "stream %s did not acknowledge the write (%s): it was not "
                              "acknowledged; retry with the same Idempotency-Key",
                              r->stream, nats_text(s));
        }
        jsPubAck_Destroy(pa);
    }
    jsCtx_Destroy(js);
    mesh__mesh_conn_done(r->m);
    return st;
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
    /* Retries (decision 0032): the same message id every time, so JetStream stores the record
     * once however many attempts reach it. An attempt waits PUBLISH_ATTEMPT_MS, doubling after
     * each attempt that timed out (a slow but live leader is not flooded), so a message sent
     * to a leader that then died is sent again within about a second instead of after the
     * whole mesh_timeout; fast failures (no leader during an election, reconnecting) are
     * retried after a short, growing pause. All within PUBLISH_DEADLINE_FACTOR x mesh_timeout,
     * which covers nats-server's stream leader election (4-9 s after the leader is lost). */
    mesh_buf_t wb;
    mesh_buf_init(&wb, MESH_BUF_UNLIMITED);
    const uint8_t *w = NULL;
    size_t wn = 0;
    mesh_status_t pst = mesh_recwire_pack(p, n, &wb, &w, &wn, err);
    if (pst != MESH_OK) {
        mesh_buf_free(&wb);
        return pst; /* its status and message: out of memory, or zstd's error */
    }
    uint64_t fp = mesh_fp64(p, n);
    int64_t timeout_ms = mesh__mesh_timeout_ns(r->m) / 1000000;
    int64_t start = mesh_mono_ns();
    int64_t deadline = start + PUBLISH_DEADLINE_FACTOR * timeout_ms * 1000000;
    int64_t wait_ms = PUBLISH_ATTEMPT_MS < timeout_ms ? PUBLISH_ATTEMPT_MS : timeout_ms;
    int64_t pause_ms = PUBLISH_PAUSE_MIN_MS;
    mesh_status_t st;
    unsigned attempts = 0;
    for (;;) {
        int64_t left_ms = (deadline - mesh_mono_ns()) / 1000000;
        int64_t wait = wait_ms < left_ms ? wait_ms : left_ms;
        if (wait < 1)
            wait = 1;
        bool transient = false;
        int64_t t0 = mesh_mono_ns();
        attempts++;
        st = publish_once(r, w, wn, fp, msg_id, wait, sseq, duplicate, &transient, err);
        if (st == MESH_OK || !transient)
            break;
        int64_t took_ms = (mesh_mono_ns() - t0) / 1000000;
        if (took_ms + 1 >= wait) { /* timed out: wait longer next time */
            wait_ms = wait_ms * 2 < timeout_ms ? wait_ms * 2 : timeout_ms;
        } else if (!publish_pause(r, pause_ms)) {
            break;
        } else {
            pause_ms = pause_ms * 2 < PUBLISH_PAUSE_MAX_MS ? pause_ms * 2 : PUBLISH_PAUSE_MAX_MS;
        }
        if (mesh_mono_ns() >= deadline)
            break;
    }
    /* a random id is this call's own: a duplicate of it is an earlier attempt that was stored
     * after all, not an earlier write */
    if (st == MESH_OK && !(idem && *idem))
        *duplicate = false;
    pthread_mutex_lock(&r->mu);
    if (st == MESH_OK) {
        r->st.published++;
        r->st.published_batches++;
        r->st.published_record_bytes += n;
        r->st.published_bytes += wn;
    } else {
        r->st.publish_failures++;
    }
    r->st.publish_retries += attempts - 1;
    pthread_mutex_unlock(&r->mu);
    if (attempts > 1)
        LOG_INFO("repl", "%s: a write %s after %u attempts in %lld ms", r->stream,
                 st == MESH_OK ? "was acknowledged" : "failed", attempts,
                 (long long)((mesh_mono_ns() - start) / 1000000));
    mesh_buf_free(&wb);
    return st;
}

void mesh_repl_status(mesh_repl_t *r, mesh_repl_status_t *out)
{
    pthread_mutex_lock(&r->mu);
    *out = r->st;
    pthread_mutex_unlock(&r->mu);
    out->applied = r->position(r->arg, r->domain);
}

void mesh_repl_set_bootstrap(mesh_repl_t *r, mesh_repl_bootstrap_fn fn)
{
    pthread_mutex_lock(&r->mu);
    r->bootstrap = fn;
    pthread_mutex_unlock(&r->mu);
}

bool mesh_repl_stopping(mesh_repl_t *r)
{
    return stopping(r, 0);
}

void mesh_repl_set_hosts(mesh_repl_t *r, char *const *hosts, size_t n)
{
    pthread_mutex_lock(&r->mu);
    r->nhosts = 0;
    for (size_t i = 0; i < n && r->nhosts < MESH_REPL_HOSTS_MAX; i++)
        snprintf(r->hosts[r->nhosts++], sizeof r->hosts[0], "%s", hosts[i]);
    pthread_mutex_unlock(&r->mu);
}

/* ---- async: the outbox pump ---- */

void mesh_repl_kick(mesh_repl_t *r)
{
    pthread_mutex_lock(&r->mu);
    r->kicked = true;
    pthread_cond_signal(&r->pump_cv);
    pthread_mutex_unlock(&r->mu);
}

/* Waits for a kick (or wait_ns) and returns whether to stop. */
static bool pump_wait(mesh_repl_t *r, int64_t wait_ns)
{
    pthread_mutex_lock(&r->mu);
    if (!r->stop && !r->kicked) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t t = (int64_t)ts.tv_nsec + wait_ns;
        ts.tv_sec += (time_t)(t / MESH_NS_PER_SEC);
        ts.tv_nsec = (long)(t % MESH_NS_PER_SEC);
        pthread_cond_timedwait(&r->pump_cv, &r->mu, &ts);
    }
    r->kicked = false;
    bool stop = r->stop;
    pthread_mutex_unlock(&r->mu);
    return stop;
}

static void *pump_run(void *arg)
{
    mesh_repl_t *r = arg;
    mesh_thread_name("outbox", r->domain);
    int64_t wait = RETRY_NS;
    while (!pump_wait(r, wait)) {
        int more;
        do {
            more = r->pump(r->arg, r->domain, r);
        } while (more >= 1 && !stopping(r, more == 1 ? OUTBOX_LINGER_NS : 0));
        wait = RETRY_NS; /* also after a failure: the next try is a second away */
    }
    return NULL;
}

mesh_status_t mesh_repl_start_outbox(mesh_repl_t *r, mesh_repl_pump_fn pump, mesh_err_t *err)
{
    r->pump = pump;
    if (pthread_create(&r->pump_thread, NULL, pump_run, r) != 0)
        return mesh_err_set(err, MESH_INTERNAL, "cannot start the outbox thread");
    r->pump_started = true;
    return MESH_OK;
}

/* room left in a message for what the outbox adds to a batch: its origin header, a group's
 * length, the packed form's header */
#define FITS_MARGIN 64

mesh_status_t mesh_repl_fits(mesh_repl_t *r, const uint8_t *p, size_t n, mesh_err_t *err)
{
    mesh_mesh_status_t ms;
    mesh_mesh_status(r->m, &ms);
    if (ms.max_payload <= 0 || (int64_t)(n + FITS_MARGIN) <= ms.max_payload)
        return MESH_OK;
    mesh_buf_t wb;
    mesh_buf_init(&wb, MESH_BUF_UNLIMITED);
    const uint8_t *w = NULL;
    size_t wn = 0;
    mesh_status_t st = mesh_recwire_pack(p, n, &wb, &w, &wn, err);
    if (st == MESH_OK && (int64_t)(wn + FITS_MARGIN) > ms.max_payload)
        st = mesh_err_set(err, MESH_TOO_LARGE,
                          "a batch of %zu bytes (%zu packed) is larger than the mesh servers' max "
                          "payload (%lld bytes): it could never reach the domain's other hosts; "
                          "write it in smaller batches",
                          n, wn, (long long)ms.max_payload);
    mesh_buf_free(&wb);
    return st;
}

typedef struct run_acks {
    pthread_mutex_t mu;
    int failed;
    char why[160];
} run_acks_t;

/* A record's ack error (libnats' thread). The acks of a run are not remembered for
 * verify_delivery (remember_acked): on the node written to, an async domain's own records
 * coming back still cost a leader read each in the first deliveries after the consumer is
 * made. Measured, a consumer that applied them without it took the writer from the writes
 * (BENCHMARKS.md, replication). */
static void run_ack_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    (void)js;
    run_acks_t *a = closure;
    pthread_mutex_lock(&a->mu);
    if (a->failed++ == 0)
        snprintf(a->why, sizeof a->why, "%s",
                 pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err));
    pthread_mutex_unlock(&a->mu);
}

mesh_status_t mesh_repl_publish_run(mesh_repl_t *r, const uint8_t *const *p, const size_t *n,
                                    size_t count, size_t batches, size_t *acked, mesh_err_t *err)
{
    size_t sent = 0; /* records handed to libnats */
    bool too_large = false;
    if (acked)
        *acked = 0;
    uint64_t gen;
    natsConnection *nc = mesh__mesh_conn(r->m, &gen);
    mesh_status_t st = MESH_OK;
    run_acks_t acks = {.failed = 0};
    pthread_mutex_init(&acks.mu, NULL);
    jsCtx *js = NULL;
    if (nc == NULL)
        st = mesh_err_set(err, MESH_UNAVAILABLE, "not connected to the mesh");
    if (st == MESH_OK) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.PublishAsync.MaxPending = MESH_REPL_FETCH;
        jo.PublishAsync.ErrHandler = run_ack_error;
        jo.PublishAsync.ErrHandlerClosure = &acks;
        if (natsConnection_JetStream(&js, nc, &jo) != NATS_OK)
            st = mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    int64_t maxp = nc ? natsConnection_GetMaxPayload(nc) : 0;
    mesh_buf_t wb;
    mesh_buf_init(&wb, MESH_BUF_UNLIMITED);
    uint64_t rec_bytes = 0, wire_bytes = 0;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.ExpectStream = r->stream;
    po.MaxWait = mesh__mesh_timeout_ns(r->m) / 1000000;
    for (size_t i = 0; i < count && st == MESH_OK; i++) {
        const uint8_t *w = NULL;
        size_t wn = 0;
        if ((st = mesh_recwire_pack(p[i], n[i], &wb, &w, &wn, err)) != MESH_OK)
            break;
        if (maxp > 0 && (int64_t)wn > maxp) {
            st = mesh_err_set(err, MESH_TOO_LARGE,
                              "a batch's record (%zu bytes as it travels) exceeds the mesh "
                              "servers' max payload (%lld bytes): it cannot be published",
                              wn, (long long)maxp);
            too_large = true;
            break;
        }
        /* libnats copies the message into its buffer: wb serves the next record */
        natsStatus s = js_PublishAsync(js, r->subject, w, (int)wn, &po);
        sent += s == NATS_OK;
        rec_bytes += n[i];
        wire_bytes += wn;
        if (s != NATS_OK)
            st = mesh_err_set(err, MESH_UNAVAILABLE, "publishing to %s: %s", r->stream,
                              nats_text(s));
    }
    bool complete = js != NULL;
    if (js) {
        /* every ack (or its error) before the run counts as published */
        natsStatus s = js_PublishAsyncComplete(js, &po);
        complete = s == NATS_OK;
        if (st == MESH_OK && s != NATS_OK)
            st = mesh_err_set(err, MESH_UNAVAILABLE, "stream %s: acks did not come (%s)", r->stream,
                              nats_text(s));
    }
    pthread_mutex_lock(&acks.mu);
    bool all_acked = acks.failed == 0;
    if (st == MESH_OK && acks.failed)
        st = mesh_err_set(err, MESH_UNAVAILABLE, "stream %s refused %d of %zu records: %s",
                          r->stream, acks.failed, count, acks.why);
    pthread_mutex_unlock(&acks.mu);
    jsCtx_Destroy(js); /* drops acks still pending (their handler is not called then) */
    mesh_buf_free(&wb);
    mesh__mesh_conn_done(r->m);
    pthread_mutex_destroy(&acks.mu);
    pthread_mutex_lock(&r->mu);
    /* the records before one too large were all acknowledged: the caller moves past them */
    if (acked && (st == MESH_OK || too_large) && all_acked && complete)
        *acked = st == MESH_OK ? count : sent;
    if (st == MESH_OK) {
        r->st.published += count;
        r->st.published_batches += batches;
        r->st.published_record_bytes += rec_bytes;
        r->st.published_bytes += wire_bytes;
        r->st.outbox_runs++;
    } else {
        r->st.publish_failures++;
    }
    pthread_mutex_unlock(&r->mu);
    return st;
}
