/*
 * fed.c - the transport of federated scans (see fed.h): owner-side subscriptions, request
 * verification, open scans and their reaper; caller-side describe and scans.
 */
#include "mesh/fed.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "mesh/internal.h"

#define MAX_SERVED  256   /* domains served */
#define NONCES      8192  /* nonces remembered (within MESH_FED_MAX_SKEW) */
#define NONCE_HASH  16384 /* buckets of the nonces' index */
#define KEY_CACHE   64    /* nodes whose public key is cached */
#define KEY_TTL     (10LL * MESH_NS_PER_SEC)
#define SCAN_ID_HEX 32
#define DESCRIBES   64  /* describe answers kept (user, domain) */
#define WORKERS     4   /* threads serving requests (scans and statements at once) */
#define JOBS        256 /* requests queued for them */
#define CZ_POOL     8   /* compact values' memories kept for the next scans */

typedef struct served {
    char domain[MESH_NAME_MAX + 1];
    natsSubscription *sub;
} served_t;

/* An open scan. A worker that holds it (busy) sends a frame and then fills the next one
 * ahead, before the caller asks for it: the frame then leaves when the "next" comes, and the
 * owner's filling overlaps the frame's trip and the caller's reading of it. A "next" or a
 * "close" that comes while the worker fills is kept (asked, closing) and done by it. */
typedef struct open_scan {
    bool used, busy;
    char id[SCAN_ID_HEX + 1];
    char node[64]; /* the caller: next requests must come from its inbox */
    uint64_t seq;  /* the seq the next request must name */
    int64_t last_mono;
    void *state;
    /* the frame filled ahead: its bytes, what the fill said (1 more, 0 last, -1 error: the
     * bytes are an error frame, err why) */
    bool has_ahead;
    mesh_buf_t ahead;
    int ahead_more;
    uint32_t ahead_rows; /* counted as served when the frame leaves */
    mesh_err_t ahead_err;
    bool asked, closing;    /* a next (to asked_reply) or a close came while busy */
    char asked_reply[160];  /* bounded by serve_next */
    mesh_fed_compact_t *cz; /* the caller reads compact values (fedwire.h): their memory */
} open_scan_t;

typedef struct key_entry {
    char node[64];
    char site[MESH_FED_SITE_MAX + 1];
    uint8_t pub[MESH_SIGN_PUB_BYTES];
    bool has;
    int64_t fetched_mono;
} key_entry_t;

/* A describe answer kept MESH_FED_DESCRIBE_TTL: the schema frame's bytes. */
typedef struct describe_entry {
    char user[64];
    char domain[MESH_NAME_MAX + 1];
    int64_t mono;
    uint64_t id; /* this answer's, unique in the process (mesh_fed_describe_current) */
    mesh_buf_t frame;
} describe_entry_t;

typedef struct job {
    natsMsg *msg;
    bool next; /* on the next subject (serve_next), else a domain's (serve_request) */
} job_t;

typedef struct nonce_entry {
    uint8_t nonce[MESH_FED_NONCE_BYTES];
    int64_t ts_ns;
} nonce_entry_t;

struct mesh_fed {
    const mesh_signkey_t *key;
    mesh_fed_handler_t h;
    pthread_mutex_t mu; /* guards everything below */
    mesh_mesh_t *mesh;
    natsConnection *sub_nc; /* the connection the subscriptions were made on */
    served_t served[MAX_SERVED];
    size_t nserved;
    natsSubscription *next_sub; /* _INBOX_<me>.fed.> */
    open_scan_t scans[MESH_FED_MAX_SCANS];
    key_entry_t keys[KEY_CACHE];
    nonce_entry_t nonces[NONCES]; /* a ring, oldest at nonce_next */
    size_t nonce_next;
    /* their index: chains of ring slots by bucket, each link the slot + 1 (0 ends a chain) */
    uint16_t nonce_head[NONCE_HASH];
    uint16_t nonce_link[NONCES];
    mesh_fed_stats_t stats;
    /* the reaper */
    pthread_t reaper;
    pthread_cond_t cv;
    bool stop, reaper_started;
    int inflight; /* message callbacks running (destroy waits for them) */
    describe_entry_t describes[DESCRIBES];
    uint64_t describe_ids; /* the last id given to an answer */
    /* the workers serving requests, and their queue (dispatch) */
    pthread_t workers[WORKERS];
    int nworkers;
    pthread_cond_t job_cv;
    job_t jobs[JOBS];
    size_t job_head, njobs;
    mesh_fed_compact_t *cz_pool[CZ_POOL];
    int ncz;
};

/* The mesh link now (NULL: detached). */
static mesh_mesh_t *mesh_of(mesh_fed_t *f)
{
    pthread_mutex_lock(&f->mu);
    mesh_mesh_t *m = f->mesh;
    pthread_mutex_unlock(&f->mu);
    return m;
}

static bool enter(mesh_fed_t *f)
{
    pthread_mutex_lock(&f->mu);
    bool ok = !f->stop;
    if (ok)
        f->inflight++;
    pthread_mutex_unlock(&f->mu);
    return ok;
}

static void leave(mesh_fed_t *f)
{
    pthread_mutex_lock(&f->mu);
    f->inflight--;
    pthread_mutex_unlock(&f->mu);
}

/* ---- owner side ---- */

/* Sends p[0..n) to subject (with next as its reply subject, NULL: none) on the mesh's current
 * connection, held only for the send: a worker may have run a statement for seconds before. */
static void send_to(mesh_fed_t *f, const char *subject, const char *next, const void *p, size_t n)
{
    mesh_mesh_t *m = mesh_of(f);
    if (m == NULL)
        return;
    natsConnection *nc = mesh__mesh_conn_get(m);
    if (nc && next)
        natsConnection_PublishRequest(nc, subject, next, p, (int)n);
    else if (nc)
        natsConnection_Publish(nc, subject, p, (int)n);
    mesh__mesh_conn_put(m);
}

static void reply_error(mesh_fed_t *f, const char *reply, mesh_status_t code, const char *msg)
{
    mesh_buf_t b;
    mesh_buf_init(&b, 4096);
    if (mesh_fed_error_encode(code, msg, &b) == MESH_OK)
        send_to(f, reply, NULL, b.data, b.len);
    mesh_buf_free(&b);
}

static void refuse(mesh_fed_t *f, const char *reply, const mesh_fed_request_t *r,
                   mesh_status_t code, const char *why)
{
    pthread_mutex_lock(&f->mu);
    f->stats.refused++;
    pthread_mutex_unlock(&f->mu);
    LOG_WARN("fed", "refused a request from node %s for %s (user %s): %s", r ? r->node : "?",
             r ? r->domain : "?", r ? r->user : "?", why);
    if (f->h.refused)
        f->h.refused(f->h.arg, r ? r->node : "", r ? r->user : "", r ? r->domain : "", code, why);
    /* only a reply subject in a node's inbox gets an answer (see fed.h) */
    if (reply && strncmp(reply, "_INBOX_", 7) == 0)
        reply_error(f, reply, code, why);
}

/* The public key and the site of node from the registry (cached KEY_TTL; refresh forces a
 * read). */
static bool node_key(mesh_fed_t *f, const char *node, bool refresh,
                     uint8_t out[MESH_SIGN_PUB_BYTES], char site[MESH_FED_SITE_MAX + 1])
{
    int64_t now = mesh_mono_ns();
    site[0] = '\0';
    pthread_mutex_lock(&f->mu);
    int slot = -1, oldest = 0;
    for (int i = 0; i < KEY_CACHE; i++) {
        if (strcmp(f->keys[i].node, node) == 0)
            slot = i;
        if (f->keys[i].fetched_mono < f->keys[oldest].fetched_mono)
            oldest = i;
    }
    if (slot >= 0 && !refresh && now - f->keys[slot].fetched_mono < KEY_TTL) {
        bool has = f->keys[slot].has;
        memcpy(out, f->keys[slot].pub, MESH_SIGN_PUB_BYTES);
        memcpy(site, f->keys[slot].site, MESH_FED_SITE_MAX + 1);
        pthread_mutex_unlock(&f->mu);
        return has;
    }
    mesh_mesh_t *m = f->mesh;
    pthread_mutex_unlock(&f->mu);
    if (m == NULL)
        return false;
    mesh_mesh_node_t e;
    mesh_err_t err;
    bool has = false;
    if (mesh_mesh_get(m, node, &e, &err) == MESH_OK) {
        has = e.e->has_sign_key;
        memcpy(out, e.e->sign_key, MESH_SIGN_PUB_BYTES);
        snprintf(site, MESH_FED_SITE_MAX + 1, "%s", e.e->site ? e.e->site : "");
        mesh_entry_free(e.e);
    } else if (err.code != MESH_NOT_FOUND) {
        return false; /* the registry is not reachable: not cached */
    }
    pthread_mutex_lock(&f->mu);
    key_entry_t *k = &f->keys[slot >= 0 ? slot : oldest];
    snprintf(k->node, sizeof k->node, "%s", node);
    memcpy(k->pub, out, MESH_SIGN_PUB_BYTES);
    memcpy(k->site, site, MESH_FED_SITE_MAX + 1);
    k->has = has;
    k->fetched_mono = now;
    pthread_mutex_unlock(&f->mu);
    return has;
}

/* The bucket of a nonce. Nonces are random bytes the calling node chose and signed (the
 * signature is checked first), so their first bytes serve as the hash. */
static size_t nonce_bucket(const uint8_t nonce[MESH_FED_NONCE_BYTES])
{
    uint64_t h;
    memcpy(&h, nonce, sizeof h);
    return (size_t)((h ^ (h >> 31)) % NONCE_HASH);
}

/* Remembers a nonce: false when it was seen within the window (a replay), or when the
 * memory is full of nonces still in the window (refused rather than forgotten). */
static bool nonce_fresh(mesh_fed_t *f, const uint8_t nonce[MESH_FED_NONCE_BYTES], int64_t ts,
                        int64_t now)
{
    size_t b = nonce_bucket(nonce);
    bool ok = true;
    pthread_mutex_lock(&f->mu);
    for (unsigned i = f->nonce_head[b]; i && ok; i = f->nonce_link[i - 1]) {
        const nonce_entry_t *e = &f->nonces[i - 1];
        if (e->ts_ns && now - e->ts_ns <= 2 * MESH_FED_MAX_SKEW &&
            memcmp(e->nonce, nonce, MESH_FED_NONCE_BYTES) == 0)
            ok = false;
    }
    size_t at = f->nonce_next;
    nonce_entry_t *slot = &f->nonces[at];
    if (ok && slot->ts_ns && now - slot->ts_ns <= 2 * MESH_FED_MAX_SKEW)
        ok = false; /* NONCES requests within the window: too many to remember */
    if (ok) {
        if (slot->ts_ns) { /* the oldest nonce leaves its chain */
            uint16_t *l = &f->nonce_head[nonce_bucket(slot->nonce)];
            while (*l && *l != at + 1)
                l = &f->nonce_link[*l - 1];
            if (*l)
                *l = f->nonce_link[at];
        }
        memcpy(slot->nonce, nonce, MESH_FED_NONCE_BYTES);
        slot->ts_ns = ts > now ? ts : now;
        f->nonce_link[at] = f->nonce_head[b];
        f->nonce_head[b] = (uint16_t)(at + 1);
        f->nonce_next = (at + 1) % NONCES;
    }
    pthread_mutex_unlock(&f->mu);
    return ok;
}

bool mesh__fed_nonce_fresh(mesh_fed_t *f, const uint8_t *nonce, int64_t ts, int64_t now)
{
    return nonce_fresh(f, nonce, ts, now);
}

/* Frees a slot's frame filled ahead, keeps its compact values' memory for the next scan
 * (about 100 KiB each, up to CZ_POOL), and makes the slot free (f->mu held). */
static void slot_free(mesh_fed_t *f, open_scan_t *os)
{
    mesh_buf_free(&os->ahead);
    if (os->cz && f->ncz < CZ_POOL)
        f->cz_pool[f->ncz++] = os->cz;
    else
        mesh_fed_compact_free(os->cz);
    memset(os, 0, sizeof *os);
}

/* Fills the frame after the ones sent into os->ahead (the worker holding os, f->mu not
 * held). */
static void fill_ahead(mesh_fed_t *f, open_scan_t *os)
{
    mesh_buf_t *b = &os->ahead; /* the frame just sent's memory, when there was one */
    if (b->data)
        mesh_buf_reset(b);
    else
        mesh_buf_init(b, MESH_FED_MAX_FRAME);
    mesh_fed_enc_t e;
    mesh_err_clear(&os->ahead_err);
    mesh_fed_rows_begin(&e, b, 0);
    if (os->cz)
        mesh_fed_rows_compact(&e, os->cz);
    int more = f->h.scan_fill(os->state, &e, &os->ahead_err);
    if (more < 0) {
        mesh_err_t *err = &os->ahead_err;
        mesh_buf_reset(b);
        mesh_fed_error_encode(err->code == MESH_OK ? MESH_INTERNAL : err->code, err->msg, b);
        e.nrows = 0;
    } else {
        mesh_fed_rows_end(&e, more == 0);
    }
    os->ahead_more = more;
    os->ahead_rows = e.nrows;
    os->has_ahead = true;
}

/* Sends the scan's next frame to reply, then fills the one after it ahead; sends that too
 * when a next came meanwhile, and so on. Closes the scan when its last frame left (or a
 * close came); else leaves it idle. The worker calling this holds os (busy). */
static void pump(mesh_fed_t *f, open_scan_t *os, const char *first_reply)
{
    char reply[160];
    snprintf(reply, sizeof reply, "%s", first_reply);
    for (;;) {
        bool fresh = !os->has_ahead;
        if (fresh)
            fill_ahead(f, os); /* the first frame */
        mesh_buf_t b = os->ahead;
        int more = os->ahead_more;
        mesh_err_t err = os->ahead_err;
        memset(&os->ahead, 0, sizeof os->ahead);
        os->has_ahead = false;
        if (!fresh && more >= 0 && f->h.scan_recheck && !f->h.scan_recheck(os->state, &err)) {
            /* filled before a change of what may leave: the error goes instead */
            mesh_buf_reset(&b);
            mesh_fed_error_encode(err.code == MESH_OK ? MESH_INTERNAL : err.code, err.msg, &b);
            more = -1;
            os->ahead_rows = 0;
        }
        char next[160];
        pthread_mutex_lock(&f->mu);
        f->stats.served_rows += os->ahead_rows;
        os->seq++;
        os->last_mono = mesh_mono_ns();
        snprintf(next, sizeof next, "%s.fed.%s.%llu", mesh__mesh_inbox(f->mesh), os->id,
                 (unsigned long long)os->seq);
        pthread_mutex_unlock(&f->mu);
        send_to(f, reply, more == 1 ? next : NULL, b.data, b.len);
        if (more == 1) {
            os->ahead = b;
            fill_ahead(f, os);
        } else {
            mesh_buf_free(&b);
        }
        pthread_mutex_lock(&f->mu);
        bool closing = os->closing, asked = os->asked && !closing && more == 1;
        if (asked)
            snprintf(reply, sizeof reply, "%s", os->asked_reply);
        os->asked = false;
        if (more == 1 && !closing && !asked) {
            os->busy = false; /* idle until the next request */
            os->last_mono = mesh_mono_ns();
        }
        void *state = os->state;
        pthread_mutex_unlock(&f->mu);
        if (asked)
            continue;
        if (more == 1 && !closing)
            return;
        mesh_err_t why;
        if (more == 1)
            mesh_err_set(&why, MESH_TIMEOUT, "closed by the caller");
        f->h.scan_close(state, more < 0 ? &err : more == 1 ? &why : NULL);
        pthread_mutex_lock(&f->mu);
        slot_free(f, os);
        pthread_mutex_unlock(&f->mu);
        return;
    }
}

/* A request on a domain's subject (a worker thread). */
static void serve_request(mesh_fed_t *f, natsMsg *msg)
{
    const char *reply = natsMsg_GetReply(msg), *subject = natsMsg_GetSubject(msg);
    const char *data = natsMsg_GetData(msg);
    size_t n = (size_t)natsMsg_GetDataLength(msg);
    mesh_fed_request_t r;
    mesh_err_t err;
    if (reply == NULL || subject == NULL || !enter(f)) {
        natsMsg_Destroy(msg);
        return;
    }
    if (mesh_fed_request_parse(data, n, &r, &err) != MESH_OK) {
        char why[600];
        snprintf(why, sizeof why, "malformed request: %s", err.msg);
        refuse(f, reply, NULL, err.code, why);
        natsMsg_Destroy(msg);
        leave(f);
        return;
    }
    char want[200], inbox[80];
    snprintf(want, sizeof want, "meshd.dom.%s.req.scan", r.domain);
    snprintf(inbox, sizeof inbox, "_INBOX_%s.", r.node);
    int64_t now = mesh_now_ns();
    uint8_t pub[MESH_SIGN_PUB_BYTES];
    if (strcmp(subject, want) != 0) {
        refuse(f, reply, &r, MESH_FORBIDDEN, "the request names another domain");
    } else if (strncmp(reply, inbox, strlen(inbox)) != 0) {
        refuse(f, reply, &r, MESH_FORBIDDEN,
               "the reply subject is not the inbox of the node the request names");
    } else if (r.ts_ns < now - MESH_FED_MAX_SKEW || r.ts_ns > now + MESH_FED_MAX_SKEW) {
        refuse(f, reply, &r, MESH_UNAUTHENTICATED,
               "stale request: its time is more than 30 s from ours (replay, or clocks out of "
               "sync)");
    } else if (!node_key(f, r.node, false, pub, r.site) ||
               (!mesh_fed_request_verify(data, n, subject, pub) &&
                (!node_key(f, r.node, true, pub, r.site) ||
                 !mesh_fed_request_verify(data, n, subject, pub)))) {
        refuse(f, reply, &r, MESH_UNAUTHENTICATED,
               "the signature does not verify with the calling node's key in the registry");
    } else if (!nonce_fresh(f, r.nonce, r.ts_ns, now)) {
        refuse(f, reply, &r, MESH_UNAUTHENTICATED, "replayed request (nonce seen before)");
    } else if (r.op == MESH_FED_DESCRIBE) {
        mesh_fed_schema_t s = {0};
        mesh_buf_t b;
        mesh_buf_init(&b, MESH_FED_MAX_FRAME);
        mesh_err_clear(&err);
        if (f->h.describe(f->h.arg, &r, &s, &err) == MESH_OK &&
            mesh_fed_schema_encode(&s, &b) == MESH_OK)
            send_to(f, reply, NULL, b.data, b.len);
        else
            reply_error(f, reply, err.code == MESH_OK ? MESH_INTERNAL : err.code,
                        err.msg[0] ? err.msg : "cannot describe the domain");
        mesh_fed_schema_free(&s);
        mesh_buf_free(&b);
    } else {
        /* a scan: take a slot, open it as the end user, send the first frame */
        open_scan_t *os = NULL;
        uint8_t id[SCAN_ID_HEX / 2];
        mesh_random(id, sizeof id);
        pthread_mutex_lock(&f->mu);
        for (int i = 0; i < MESH_FED_MAX_SCANS && os == NULL; i++)
            if (!f->scans[i].used)
                os = &f->scans[i];
        if (os) {
            memset(os, 0, sizeof *os);
            os->used = os->busy = true;
            if (r.compact && f->ncz > 0) /* one kept from an earlier scan */
                os->cz = f->cz_pool[--f->ncz];
            mesh_hex(id, sizeof id, os->id);
            snprintf(os->node, sizeof os->node, "%s", r.node);
            os->last_mono = mesh_mono_ns();
            f->stats.served++;
        }
        pthread_mutex_unlock(&f->mu);
        mesh_err_clear(&err);
        void *state = NULL;
        if (os && r.compact && os->cz == NULL)
            os->cz = mesh_fed_compact_new(); /* the slot is this worker's (busy) */
        if (os == NULL) {
            reply_error(f, reply, MESH_BUSY, "too many federated scans open on the owner");
        } else if (r.compact && os->cz == NULL) {
            reply_error(f, reply, MESH_NOMEM, "out of memory");
            pthread_mutex_lock(&f->mu);
            slot_free(f, os);
            pthread_mutex_unlock(&f->mu);
        } else if (f->h.scan_open(f->h.arg, &r, &state, &err) != MESH_OK) {
            reply_error(f, reply, err.code == MESH_OK ? MESH_INTERNAL : err.code, err.msg);
            pthread_mutex_lock(&f->mu);
            slot_free(f, os);
            pthread_mutex_unlock(&f->mu);
        } else {
            pthread_mutex_lock(&f->mu); /* seen by mesh_fed_destroy's cancel */
            os->state = state;
            pthread_mutex_unlock(&f->mu);
            pump(f, os, reply);
        }
    }
    mesh_fed_request_free(&r);
    natsMsg_Destroy(msg);
    leave(f);
}

/* "next" or "close" on _INBOX_<me>.fed.<id>.<seq> (a worker thread). */
static void serve_next(mesh_fed_t *f, natsMsg *msg)
{
    const char *reply = natsMsg_GetReply(msg), *subject = natsMsg_GetSubject(msg);
    const char *data = natsMsg_GetData(msg);
    int n = natsMsg_GetDataLength(msg);
    const char *p = subject ? strstr(subject, ".fed.") : NULL;
    char id[SCAN_ID_HEX + 1] = "";
    uint64_t seq = 0;
    if (p && strlen(p + 5) > SCAN_ID_HEX && p[5 + SCAN_ID_HEX] == '.') {
        memcpy(id, p + 5, SCAN_ID_HEX);
        const char *sq = p + 6 + SCAN_ID_HEX;
        if (mesh_parse_u64(sq, strlen(sq), &seq) != MESH_OK)
            id[0] = '\0';
    }
    if (!enter(f)) {
        natsMsg_Destroy(msg);
        return;
    }
    bool is_next = n == 4 && memcmp(data, "next", 4) == 0;
    bool is_close = n == 5 && memcmp(data, "close", 5) == 0;
    open_scan_t *os = NULL;
    pthread_mutex_lock(&f->mu);
    for (int i = 0; i < MESH_FED_MAX_SCANS && id[0] && os == NULL; i++)
        if (f->scans[i].used && strcmp(f->scans[i].id, id) == 0)
            os = &f->scans[i];
    char inbox[80];
    snprintf(inbox, sizeof inbox, "_INBOX_%s.", os ? os->node : "");
    /* one next or close per frame sent; while a worker holds the scan (filling the frame
     * after), it is kept for that worker to do */
    bool ok = os && os->seq == seq && !os->asked && !os->closing && (is_next || is_close) &&
              (is_close || (reply && strncmp(reply, inbox, strlen(inbox)) == 0 &&
                            strlen(reply) < sizeof os->asked_reply));
    bool mine = ok && !os->busy;
    if (mine)
        os->busy = true;
    if (ok && is_close) {
        os->closing = true; /* done by whoever holds the scan; a next now is refused */
    } else if (ok && !mine) {
        os->asked = true;
        snprintf(os->asked_reply, sizeof os->asked_reply, "%s", reply);
    }
    pthread_mutex_unlock(&f->mu);
    if (!ok) {
        if (reply && strncmp(reply, "_INBOX_", 7) == 0)
            reply_error(f, reply, MESH_NOT_FOUND, "no such scan (ended, or closed when idle)");
    } else if (mine && is_close) {
        mesh_err_t err;
        mesh_err_set(&err, MESH_TIMEOUT, "closed by the caller");
        f->h.scan_close(os->state, &err);
        pthread_mutex_lock(&f->mu);
        slot_free(f, os);
        pthread_mutex_unlock(&f->mu);
    } else if (mine) {
        pump(f, os, reply);
    }
    natsMsg_Destroy(msg);
    leave(f);
}

/* The subscriptions' callbacks queue their message for a worker and return: a statement run
 * whole may take seconds, and run on the subscription's own delivery thread it would hold
 * every other request for the domain (and every next frame) behind it. */
static void dispatch(mesh_fed_t *f, natsMsg *msg, bool next)
{
    pthread_mutex_lock(&f->mu);
    bool ok = !f->stop && f->nworkers > 0 && f->njobs < JOBS;
    if (ok) {
        f->jobs[(f->job_head + f->njobs) % JOBS] = (job_t){.msg = msg, .next = next};
        f->njobs++;
        pthread_cond_signal(&f->job_cv);
    }
    pthread_mutex_unlock(&f->mu);
    if (!ok) {
        const char *reply = natsMsg_GetReply(msg);
        if (reply && strncmp(reply, "_INBOX_", 7) == 0)
            reply_error(f, reply, MESH_BUSY, "the owner is busy: too many federated requests");
        natsMsg_Destroy(msg);
    }
}

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    (void)nc;
    (void)sub;
    dispatch(arg, msg, false);
}

static void on_next(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    (void)nc;
    (void)sub;
    dispatch(arg, msg, true);
}

static void *worker(void *arg)
{
    mesh_thread_name("fed-worker", NULL);
    mesh_fed_t *f = arg;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!f->stop && f->njobs == 0)
            pthread_cond_wait(&f->job_cv, &f->mu);
        if (f->njobs == 0)
            break;
        job_t j = f->jobs[f->job_head];
        f->job_head = (f->job_head + 1) % JOBS;
        f->njobs--;
        pthread_mutex_unlock(&f->mu);
        /* after stop, enter() refuses: the message is only freed */
        if (j.next)
            serve_next(f, j.msg);
        else
            serve_request(f, j.msg);
        pthread_mutex_lock(&f->mu);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static void drop_subs(mesh_fed_t *f)
{
    for (size_t i = 0; i < f->nserved; i++) {
        natsSubscription_Unsubscribe(f->served[i].sub);
        natsSubscription_Destroy(f->served[i].sub);
    }
    f->nserved = 0;
    if (f->next_sub) {
        natsSubscription_Unsubscribe(f->next_sub);
        natsSubscription_Destroy(f->next_sub);
        f->next_sub = NULL;
    }
    f->sub_nc = NULL;
}

void mesh_fed_serve(mesh_fed_t *f, const char *const *domains, size_t n)
{
    mesh_mesh_t *m = mesh_of(f);
    if (m == NULL)
        return;
    natsConnection *nc = mesh__mesh_conn_get(m);
    /* subscriptions are changed on this (the mesh) thread only; f->mu is not held across
     * libnats calls, whose delivery threads take it */
    if (nc != f->sub_nc)
        drop_subs(f);
    if (nc) {
        f->sub_nc = nc;
        if (f->next_sub == NULL) {
            char subj[128];
            snprintf(subj, sizeof subj, "%s.fed.>", mesh__mesh_inbox(m));
            if (natsConnection_Subscribe(&f->next_sub, nc, subj, on_next, f) != NATS_OK)
                f->next_sub = NULL;
        }
        /* unsubscribe domains no longer hosted */
        for (size_t i = 0; i < f->nserved;) {
            bool keep = false;
            for (size_t k = 0; k < n && !keep; k++)
                keep = strcmp(domains[k], f->served[i].domain) == 0;
            if (keep) {
                i++;
                continue;
            }
            natsSubscription_Unsubscribe(f->served[i].sub);
            natsSubscription_Destroy(f->served[i].sub);
            f->served[i] = f->served[--f->nserved];
        }
        for (size_t k = 0; k < n && f->nserved < MAX_SERVED; k++) {
            bool have = false;
            for (size_t i = 0; i < f->nserved && !have; i++)
                have = strcmp(domains[k], f->served[i].domain) == 0;
            if (have)
                continue;
            char subj[160], queue[160];
            snprintf(subj, sizeof subj, "meshd.dom.%s.req.scan", domains[k]);
            snprintf(queue, sizeof queue, "meshd.dom.%s", domains[k]);
            served_t *s = &f->served[f->nserved];
            if (natsConnection_QueueSubscribe(&s->sub, nc, subj, queue, on_request, f) == NATS_OK) {
                snprintf(s->domain, sizeof s->domain, "%s", domains[k]);
                f->nserved++;
                LOG_INFO("fed", "serving federated scans of %s", domains[k]);
            }
        }
    }
    mesh__mesh_conn_put(m);
}

static void *reaper(void *arg)
{
    mesh_thread_name("fed-reaper", NULL);
    mesh_fed_t *f = arg;
    pthread_mutex_lock(&f->mu);
    while (!f->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&f->cv, &f->mu, &ts);
        int64_t now = mesh_mono_ns();
        for (int i = 0; i < MESH_FED_MAX_SCANS; i++) {
            open_scan_t *os = &f->scans[i];
            if (!os->used || os->busy || (!f->stop && now - os->last_mono < MESH_FED_IDLE))
                continue;
            os->busy = os->closing = true; /* a next now is refused, not kept */
            void *state = os->state;
            pthread_mutex_unlock(&f->mu);
            mesh_err_t err;
            mesh_err_set(&err, MESH_TIMEOUT, "the caller did not ask for more within 30 s");
            f->h.scan_close(state, &err);
            pthread_mutex_lock(&f->mu);
            slot_free(f, os);
        }
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

mesh_status_t mesh_fed_create(const mesh_signkey_t *key, const mesh_fed_handler_t *h,
                              mesh_fed_t **out, mesh_err_t *err)
{
    mesh_fed_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    f->key = key;
    f->h = *h;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    pthread_cond_init(&f->job_cv, NULL);
    for (int i = 0; i < WORKERS; i++) {
        if (pthread_create(&f->workers[i], NULL, worker, f) != 0) {
            mesh_fed_destroy(f);
            return mesh_err_set(err, MESH_INTERNAL, "cannot start the federation threads");
        }
        f->nworkers++;
    }
    if (pthread_create(&f->reaper, NULL, reaper, f) != 0) {
        mesh_fed_destroy(f);
        return mesh_err_set(err, MESH_INTERNAL, "cannot start the federation thread");
    }
    f->reaper_started = true;
    *out = f;
    return MESH_OK;
}

void mesh_fed_destroy(mesh_fed_t *f)
{
    if (f == NULL)
        return;
    /* no new requests, then every open scan closed by the reaper's last pass */
    if (f->mesh) {
        mesh__mesh_conn_get(f->mesh);
        drop_subs(f);
        mesh__mesh_conn_put(f->mesh);
    }
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    /* a statement a worker runs stops at its next step (its caller gets the error), rather
     * than hold the node's stop for up to its time limit; the slot keeps its state until the
     * worker is done with it (pump), so it is alive here */
    for (int i = 0; i < MESH_FED_MAX_SCANS && f->h.scan_cancel; i++)
        if (f->scans[i].used && f->scans[i].busy && f->scans[i].state)
            f->h.scan_cancel(f->scans[i].state);
    /* the workers free what is queued and end */
    pthread_cond_broadcast(&f->job_cv);
    pthread_mutex_unlock(&f->mu);
    for (int i = 0; i < f->nworkers; i++)
        pthread_join(f->workers[i], NULL);
    pthread_mutex_lock(&f->mu);
    /* a callback already running finishes first (it may hold a scan) */
    for (int64_t t0 = mesh_mono_ns();
         f->inflight > 0 && mesh_mono_ns() - t0 < 10 * MESH_NS_PER_SEC;) {
        pthread_mutex_unlock(&f->mu);
        usleep(5000);
        pthread_mutex_lock(&f->mu);
    }
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    if (f->reaper_started)
        pthread_join(f->reaper, NULL);
    for (int i = 0; i < DESCRIBES; i++)
        mesh_buf_free(&f->describes[i].frame);
    for (int i = 0; i < f->ncz; i++)
        mesh_fed_compact_free(f->cz_pool[i]);
    pthread_cond_destroy(&f->cv);
    pthread_cond_destroy(&f->job_cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

void mesh_fed_set_mesh(mesh_fed_t *f, mesh_mesh_t *m)
{
    pthread_mutex_lock(&f->mu);
    f->mesh = m;
    pthread_mutex_unlock(&f->mu);
}

void mesh_fed_stats(mesh_fed_t *f, mesh_fed_stats_t *out)
{
    pthread_mutex_lock(&f->mu);
    *out = f->stats;
    pthread_mutex_unlock(&f->mu);
}

/* ---- caller side ---- */

/* One frame in flight: as soon as a frame that is not the last arrives, the next one is asked
 * for (on the subject that frame names, with a reply subject of this scan's own in the
 * node's inbox), so the owner fills frame k+1 while the query consumes frame k. The owner
 * still sends one frame per request (flow control unchanged: at most two frames of a scan
 * are in memory here). The subscription is made when the first frame is not the last, so a
 * scan of one frame costs nothing more. */
struct mesh_fed_scan {
    mesh_fed_t *f;
    natsMsg *msg; /* the current frame's message (its bytes back frame's text values) */
    mesh_fed_frame_t frame;
    uint32_t row;
    char next[160];        /* where to ask for the next frame ("" after the last, or once asked) */
    natsSubscription *sub; /* replies to this scan's next requests (NULL until needed) */
    char inbox[160];       /* its subject */
    bool pending;          /* a next request is in flight */
    int64_t t0;
    bool failed;
    bool query;           /* a whole statement's answer (result frames with trailers) */
    int64_t wait_ms;      /* the longest wait for a frame (query_wait_ms; 0: the mesh's) */
    mesh_fed_meta_t meta; /* a query's: what the trailers said so far */
    char domain[MESH_NAME_MAX + 1];
};

static mesh_status_t nats_error(natsStatus s, const char *domain, mesh_err_t *err)
{
    if (s == NATS_NO_RESPONDERS)
        return mesh_err_set(err, MESH_UNAVAILABLE, "no live node of the mesh answers for domain %s",
                            domain);
    if (s == NATS_TIMEOUT)
        return mesh_err_set(err, MESH_TIMEOUT, "the node of domain %s did not answer in time",
                            domain);
    return mesh_err_set(err, MESH_UNAVAILABLE, "mesh request for domain %s: %s", domain,
                        natsStatus_GetText(s));
}

/* How long to wait for a frame of r (ms): the mesh's request timeout, or for a statement
 * run whole, its time limit and a margin (an aggregate or ORDER BY sends nothing until it is
 * done; without a limit, the owner's own applies: QUERY_WAIT_MAX). */
#define QUERY_WAIT_MARGIN_MS 2000
#define QUERY_WAIT_MAX_MS    (10 * 60 * 1000)
static int64_t query_wait_ms(const mesh_fed_request_t *r)
{
    return r->timeout_ms > 0 && r->timeout_ms < QUERY_WAIT_MAX_MS
               ? r->timeout_ms + QUERY_WAIT_MARGIN_MS
               : QUERY_WAIT_MAX_MS;
}

static int64_t frame_wait_ms(mesh_mesh_t *m, const mesh_fed_request_t *r)
{
    int64_t w = mesh__mesh_timeout_ns(m) / 1000000;
    if (r->op == MESH_FED_QUERY && query_wait_ms(r) > w)
        w = query_wait_ms(r);
    return w;
}

/* Signs r and sends it to its domain; *reply is the answer. */
static mesh_status_t request(mesh_fed_t *f, mesh_fed_request_t *r, natsMsg **reply, mesh_err_t *err)
{
    mesh_mesh_t *m = mesh_of(f);
    if (m == NULL)
        return mesh_err_set(err, MESH_UNAVAILABLE, "this node is not in a mesh");
    snprintf(r->node, sizeof r->node, "%s", mesh__mesh_node_name(m));
    r->ts_ns = mesh_now_ns();
    if (mesh_random(r->nonce, sizeof r->nonce) != MESH_OK)
        return mesh_err_set(err, MESH_INTERNAL, "no randomness");
    char subject[160];
    snprintf(subject, sizeof subject, "meshd.dom.%s.req.scan", r->domain);
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_FED_MAX_REQUEST);
    mesh_status_t st = mesh_fed_request_encode(r, subject, f->key, &b);
    if (st != MESH_OK) {
        mesh_buf_free(&b);
        return r->op == MESH_FED_QUERY
                   ? mesh_err_set(err, st, "the query of domain %s is too large to send", r->domain)
                   : mesh_err_set(err, st, "the scan of %s.%s is too large to send", r->domain,
                                  r->table);
    }
    natsConnection *nc = mesh__mesh_conn_get(m);
    natsStatus s =
        nc ? natsConnection_Request(reply, nc, subject, b.data, (int)b.len, frame_wait_ms(m, r))
           : NATS_CONNECTION_CLOSED;
    mesh__mesh_conn_put(m);
    mesh_buf_free(&b);
    return s == NATS_OK ? MESH_OK : nats_error(s, r->domain, err);
}

/* Decodes a reply into f; an error frame becomes err. */
static mesh_status_t decode(natsMsg *msg, const char *domain, mesh_fed_frame_t *fr, mesh_err_t *err)
{
    if (mesh_fed_frame_decode(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), fr, err) !=
        MESH_OK) {
        mesh_err_prefix(err, "domain %s answered with a bad frame: ", domain);
        return err->code;
    }
    if (fr->kind == MESH_FED_ERROR)
        return mesh_err_set(err, fr->code, "domain %s: %s", domain, fr->msg);
    return MESH_OK;
}

uint64_t mesh_fed_describe_current(mesh_fed_t *f, const char *user, const char *domain)
{
    int64_t now = mesh_mono_ns();
    uint64_t id = 0;
    pthread_mutex_lock(&f->mu);
    for (int i = 0; i < DESCRIBES && id == 0; i++) {
        describe_entry_t *d = &f->describes[i];
        if (d->mono && now - d->mono < MESH_FED_DESCRIBE_TTL && strcmp(d->user, user) == 0 &&
            strcmp(d->domain, domain) == 0)
            id = d->id;
    }
    pthread_mutex_unlock(&f->mu);
    return id;
}

mesh_status_t mesh_fed_describe(mesh_fed_t *f, const char *user, const char *domain,
                                mesh_fed_schema_t *out, uint64_t *id, mesh_err_t *err)
{
    memset(out, 0, sizeof *out);
    *id = 0;
    /* a recent answer for the same user and domain saves a round trip (the owner enforces
     * its current policy on every scan whatever the caller's schema says) */
    int64_t now = mesh_mono_ns();
    int slot = 0;
    mesh_status_t st = MESH_NOT_FOUND;
    pthread_mutex_lock(&f->mu);
    for (int i = 0; i < DESCRIBES; i++) {
        describe_entry_t *d = &f->describes[i];
        if (d->mono && strcmp(d->user, user) == 0 && strcmp(d->domain, domain) == 0 &&
            now - d->mono < MESH_FED_DESCRIBE_TTL) {
            mesh_fed_frame_t fr;
            st = mesh_fed_frame_decode(d->frame.data, d->frame.len, &fr, err);
            if (st == MESH_OK) {
                *id = d->id;
                *out = fr.schema;
                memset(&fr.schema, 0, sizeof fr.schema);
                mesh_fed_frame_free(&fr);
            }
            break;
        }
        if (d->mono < f->describes[slot].mono)
            slot = i;
    }
    pthread_mutex_unlock(&f->mu);
    if (st == MESH_OK)
        return MESH_OK;
    mesh_fed_request_t r;
    memset(&r, 0, sizeof r);
    r.op = MESH_FED_DESCRIBE;
    r.limit = -1;
    snprintf(r.user, sizeof r.user, "%s", user);
    snprintf(r.domain, sizeof r.domain, "%s", domain);
    natsMsg *msg = NULL;
    st = request(f, &r, &msg, err);
    if (st != MESH_OK)
        return st;
    mesh_fed_frame_t fr;
    st = decode(msg, domain, &fr, err);
    if (st == MESH_OK && fr.kind != MESH_FED_SCHEMA)
        st = mesh_err_set(err, MESH_INTERNAL, "domain %s: not a schema answer", domain);
    if (st == MESH_OK) {
        pthread_mutex_lock(&f->mu);
        describe_entry_t *d = &f->describes[slot];
        snprintf(d->user, sizeof d->user, "%s", user);
        snprintf(d->domain, sizeof d->domain, "%s", domain);
        d->mono = mesh_mono_ns();
        d->id = *id = ++f->describe_ids;
        mesh_buf_free(&d->frame);
        mesh_buf_init(&d->frame, MESH_FED_MAX_FRAME);
        mesh_buf_add(&d->frame, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg));
        pthread_mutex_unlock(&f->mu);
        *out = fr.schema;
        memset(&fr.schema, 0, sizeof fr.schema);
    }
    mesh_fed_frame_free(&fr);
    natsMsg_Destroy(msg);
    return st;
}

/* Takes msg as the scan's current frame. */
static mesh_status_t take_frame(mesh_fed_scan_t *s, natsMsg *msg, const char *domain,
                                mesh_err_t *err)
{
    mesh_fed_frame_free(&s->frame);
    natsMsg_Destroy(s->msg);
    s->msg = msg;
    s->row = 0;
    s->next[0] = '\0';
    mesh_status_t st = decode(msg, domain, &s->frame, err);
    if (st == MESH_OK && s->frame.kind != (s->query ? MESH_FED_RESULT : MESH_FED_ROWS))
        st = mesh_err_set(err, MESH_INTERNAL, "domain %s: not a %s answer", domain,
                          s->query ? "result" : "rows");
    if (st == MESH_OK && s->query) {
        /* the trailer: the columns come once, first; the counts with the last frame */
        mesh_fed_meta_t *m = &s->frame.meta, *q = &s->meta;
        bool first = q->ncols == 0;
        if (first != (m->ncols > 0) || (m->ncols && m->ncols != s->frame.ncols) ||
            (!first && s->frame.ncols != q->ncols))
            st =
                mesh_err_set(err, MESH_INTERNAL, "domain %s: a result without its columns", domain);
        if (st == MESH_OK && first) {
            q->ncols = m->ncols;
            q->cols = m->cols;
            q->types = m->types;
            m->cols = NULL;
            m->types = NULL;
            m->ncols = 0;
        }
        if (st == MESH_OK && m->products) {
            free(q->products);
            q->products = m->products;
            m->products = NULL;
        }
        if (st == MESH_OK && m->policies) {
            free(q->policies);
            q->policies = m->policies;
            m->policies = NULL;
        }
        if (m->scanned >= 0)
            q->scanned = m->scanned;
        if (m->suppressed >= 0 || m->scanned >= 0)
            q->suppressed = m->suppressed;
    }
    const char *next = natsMsg_GetReply(msg);
    if (st == MESH_OK && !s->frame.last) {
        /* the owner's inbox, and nothing else: a next request goes only there */
        if (next == NULL || strncmp(next, "_INBOX_", 7) != 0 || strlen(next) >= sizeof s->next)
            st = mesh_err_set(err, MESH_INTERNAL, "domain %s: a frame without a next subject",
                              domain);
        else
            snprintf(s->next, sizeof s->next, "%s", next);
    }
    pthread_mutex_lock(&s->f->mu);
    s->f->stats.frames++;
    s->f->stats.bytes += (uint64_t)natsMsg_GetDataLength(msg);
    s->f->stats.rows += st == MESH_OK ? s->frame.nrows : 0;
    pthread_mutex_unlock(&s->f->mu);
    return st;
}

/* Asks for the frame after the current one when there is one (see struct mesh_fed_scan). */
static mesh_status_t ask_next(mesh_fed_scan_t *s, mesh_err_t *err)
{
    if (s->next[0] == '\0' || s->pending)
        return MESH_OK;
    mesh_mesh_t *m = mesh_of(s->f);
    natsConnection *nc = m ? mesh__mesh_conn_get(m) : NULL;
    natsStatus ns = nc ? NATS_OK : NATS_CONNECTION_CLOSED;
    if (ns == NATS_OK && s->sub == NULL) {
        uint8_t id[12];
        char hex[sizeof id * 2 + 1];
        mesh_random(id, sizeof id);
        mesh_hex(id, sizeof id, hex);
        snprintf(s->inbox, sizeof s->inbox, "%s.fs.%s", mesh__mesh_inbox(m), hex);
        ns = natsConnection_SubscribeSync(&s->sub, nc, s->inbox);
        if (ns != NATS_OK)
            s->sub = NULL;
    }
    if (ns == NATS_OK)
        ns = natsConnection_PublishRequest(nc, s->next, s->inbox, "next", 4);
    if (m)
        mesh__mesh_conn_put(m);
    s->next[0] = '\0';
    if (ns != NATS_OK)
        return nats_error(ns, s->domain, err);
    s->pending = true;
    return MESH_OK;
}

/* Waits for the frame asked for by ask_next (at most the mesh's request timeout). */
static mesh_status_t wait_next(mesh_fed_scan_t *s, natsMsg **msg, mesh_err_t *err)
{
    mesh_mesh_t *m = mesh_of(s->f);
    s->pending = false;
    int64_t wait = m ? mesh__mesh_timeout_ns(m) / 1000000 : 0;
    if (s->wait_ms > wait)
        wait = s->wait_ms;
    natsStatus ns = m ? natsSubscription_NextMsg(msg, s->sub, wait) : NATS_CONNECTION_CLOSED;
    if (ns == NATS_OK && natsMsg_IsNoResponders(*msg)) {
        natsMsg_Destroy(*msg);
        *msg = NULL;
        ns = NATS_NO_RESPONDERS;
    }
    return ns == NATS_OK ? MESH_OK : nats_error(ns, s->domain, err);
}

static mesh_status_t scan_open(mesh_fed_t *f, const mesh_fed_request_t *req, mesh_fed_op_t op,
                               mesh_fed_scan_t **out, mesh_err_t *err)
{
    mesh_fed_request_t r = *req;
    r.op = op;
    r.compact = true; /* every frame decoder reads compact values */
    mesh_fed_scan_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    s->f = f;
    s->t0 = mesh_mono_ns();
    s->query = op == MESH_FED_QUERY;
    s->meta.scanned = s->meta.suppressed = -1;
    s->wait_ms = s->query ? query_wait_ms(&r) : 0;
    snprintf(s->domain, sizeof s->domain, "%s", r.domain);
    pthread_mutex_lock(&f->mu);
    f->stats.scans++;
    f->stats.queries += s->query;
    pthread_mutex_unlock(&f->mu);
    natsMsg *msg = NULL;
    mesh_status_t st = request(f, &r, &msg, err);
    if (st == MESH_OK)
        st = take_frame(s, msg, r.domain, err);
    if (st == MESH_OK)
        st = ask_next(s, err);
    if (st != MESH_OK) {
        s->failed = true;
        mesh_fed_scan_close(s);
        return st;
    }
    *out = s;
    return MESH_OK;
}

mesh_status_t mesh_fed_scan_open(mesh_fed_t *f, const mesh_fed_request_t *r, mesh_fed_scan_t **out,
                                 mesh_err_t *err)
{
    return scan_open(f, r, MESH_FED_SCAN, out, err);
}

mesh_status_t mesh_fed_query_open(mesh_fed_t *f, const mesh_fed_request_t *r, mesh_fed_scan_t **out,
                                  mesh_err_t *err)
{
    if (r->sql_len > MESH_FED_MAX_SQL)
        return mesh_err_set(err, MESH_TOO_LARGE, "a statement longer than %d bytes",
                            MESH_FED_MAX_SQL);
    return scan_open(f, r, MESH_FED_QUERY, out, err);
}

const mesh_fed_meta_t *mesh_fed_scan_meta(const mesh_fed_scan_t *s)
{
    return &s->meta;
}

int mesh_fed_scan_next(mesh_fed_scan_t *s, const mesh_datum_t **row, mesh_err_t *err)
{
    while (s->row >= s->frame.nrows) {
        if (s->frame.last || !s->pending)
            return 0;
        natsMsg *msg = NULL;
        if (wait_next(s, &msg, err) != MESH_OK || take_frame(s, msg, s->domain, err) != MESH_OK ||
            ask_next(s, err) != MESH_OK) {
            s->failed = true;
            return -1;
        }
    }
    *row = s->frame.vals ? s->frame.vals + (size_t)s->row * s->frame.ncols : NULL;
    s->row++;
    return 1;
}

void mesh_fed_scan_close(mesh_fed_scan_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->f->mu);
    mesh_mesh_t *m = s->f->mesh;
    s->f->stats.scan_seconds += (double)(mesh_mono_ns() - s->t0) / 1e9;
    if (s->failed)
        s->f->stats.scan_failures++;
    pthread_mutex_unlock(&s->f->mu);
    if (s->pending && m) {
        /* a frame is on its way: it names where to say close (when it is not the last) */
        natsMsg *msg = NULL;
        mesh_err_t err;
        s->next[0] = '\0';
        if (wait_next(s, &msg, &err) == MESH_OK && take_frame(s, msg, s->domain, &err) != MESH_OK)
            s->next[0] = '\0';
    }
    if (s->next[0] && m) {
        /* ended before the owner's last frame: let it free the scan now */
        natsConnection *nc = mesh__mesh_conn_get(m);
        if (nc)
            natsConnection_Publish(nc, s->next, "close", 5);
        mesh__mesh_conn_put(m);
    }
    if (s->sub) {
        natsSubscription_Unsubscribe(s->sub);
        natsSubscription_Destroy(s->sub);
    }
    mesh_fed_frame_free(&s->frame);
    mesh_fed_meta_free(&s->meta);
    natsMsg_Destroy(s->msg);
    free(s);
}
