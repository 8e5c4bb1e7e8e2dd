/*
 * source.c - the hub's copy of an edge domain's stream (see source.h).
 *
 * One thread per sourced domain. Whenever the node is connected it learns its JetStream
 * domain from the account info of the server it is connected to (once per connection); on a
 * leaf it asks the hub (API prefix $JS.hub.API, across the leaf link) for the copy's info
 * every few seconds and creates the copy when the hub answers that there is none. With the
 * uplink down those requests time out: the state stays "sourcing" when the copy was seen
 * before, and the leaf goes on acknowledging writes (repl.c) while the hub waits for them.
 */
#include "mesh/source.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/util.h"
#include "mesh/internal.h"
#include "mesh/repl.h"

#define CHECK_NS (2000LL * 1000000LL) /* the copy's info is read this often */

struct mesh_source {
    mesh_mesh_t *m;
    char domain[MESH_NAME_MAX + 1];
    char stream[MESH_NAME_MAX + 16];  /* the leaf's: MESHD_DOM_<domain> */
    char api[96];                     /* $JS.<leaf domain>.API */
    char deliver[MESH_NAME_MAX + 16]; /* meshd.copy.<domain>: where the leaf delivers */
    mesh_source_allowed_fn allowed;
    void *arg;

    pthread_t thread;
    pthread_mutex_t mu; /* guards st and stop */
    pthread_cond_t cv;
    bool stop;
    mesh_source_status_t st;

    /* the thread's */
    uint64_t gen;    /* connection the two below were learnt on */
    bool know_where; /* leaf_domain is known for connection gen */
    bool seen_copy;  /* the copy existed at least once */
};

static const char *nats_text(natsStatus s)
{
    const char *t = nats_GetLastError(NULL);
    return t && *t ? t : natsStatus_GetText(s);
}

static void set_state(mesh_source_t *s, const char *state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_state(mesh_source_t *s, const char *state, const char *fmt, ...)
{
    char msg[sizeof s->st.last_error] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_lock(&s->mu);
    bool changed = s->st.state != state || (fmt && strcmp(msg, s->st.last_error) != 0);
    s->st.state = state;
    if (fmt)
        memcpy(s->st.last_error, msg, sizeof msg);
    pthread_mutex_unlock(&s->mu);
    if (changed && fmt) /* logged when the reason changes, not at every retry */
        LOG_WARN("mesh", "hub copy %s: %s", s->st.copy, msg);
}

static bool stopping(mesh_source_t *s, int64_t wait_ns)
{
    pthread_mutex_lock(&s->mu);
    if (!s->stop && wait_ns > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t t = (int64_t)ts.tv_nsec + wait_ns;
        ts.tv_sec += (time_t)(t / MESH_NS_PER_SEC);
        ts.tv_nsec = (long)(t % MESH_NS_PER_SEC);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    bool stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

/* Learns the JetStream domain of the server the node is connected to (nc held). false: not
 * known (try again). */
static bool learn_where(mesh_source_t *s, natsConnection *nc)
{
    jsCtx *js = NULL;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = mesh__mesh_timeout_ns(s->m) / 1000000;
    if (natsConnection_JetStream(&js, nc, &jo) != NATS_OK)
        return false;
    jsAccountInfo *ai = NULL;
    jsErrCode jerr = 0;
    natsStatus rc = js_GetAccountInfo(&ai, js, NULL, &jerr);
    bool ok = rc == NATS_OK;
    if (ok) {
        pthread_mutex_lock(&s->mu);
        snprintf(s->st.leaf_domain, sizeof s->st.leaf_domain, "%s",
                 ai->Domain && strcmp(ai->Domain, MESH_SOURCE_HUB_DOMAIN) != 0 ? ai->Domain : "");
        pthread_mutex_unlock(&s->mu);
        snprintf(s->api, sizeof s->api, "$JS.%s.API", ai->Domain ? ai->Domain : "");
    } else {
        set_state(s, "error", "JetStream account info: %s", nats_text(rc));
    }
    jsAccountInfo_Destroy(ai);
    jsCtx_Destroy(js);
    return ok;
}

static void note_copy(mesh_source_t *s, const jsStreamInfo *si)
{
    pthread_mutex_lock(&s->mu);
    s->st.copy_last = si->State.LastSeq;
    s->st.replicas = (int)si->Config->Replicas;
    pthread_mutex_unlock(&s->mu);
}

/* Looks at the hub's copy, creating it when the hub has none (nc held). */
static void check_copy(mesh_source_t *s, natsConnection *nc)
{
    jsCtx *js = NULL;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Domain = MESH_SOURCE_HUB_DOMAIN;
    jo.Wait = mesh__mesh_timeout_ns(s->m) / 1000000;
    if (natsConnection_JetStream(&js, nc, &jo) != NATS_OK)
        return;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus rc = js_GetStreamInfo(&si, js, s->st.copy, NULL, &jerr);
    if (rc == NATS_OK) {
        note_copy(s, si);
        s->seen_copy = true;
        set_state(s, "sourcing", NULL);
        goto done;
    }
    if (rc != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
        /* the uplink is down (or the hub has no quorum): the leaf goes on alone */
        set_state(s, s->seen_copy ? "sourcing" : "waiting", "the hub does not answer (%s)",
                  nats_text(rc));
        goto done;
    }
    if (!s->allowed(s->arg, s->domain)) {
        set_state(s, "local", NULL); /* residency local: never copied off the site */
        goto done;
    }
    int replicas = mesh__mesh_replicas(s->m);
    if (replicas <= 0)
        replicas = 3;
    jsExternalStream ext;
    jsExternalStream_Init(&ext);
    ext.APIPrefix = s->api;
    /* the leaf delivers to <prefix>.S.<random>: an ordinary subject of the account, which
     * crosses the leaf link (the server's default $JS.S.<random> did not, on 2.9.10) */
    ext.DeliverPrefix = s->deliver;
    jsStreamSource src;
    jsStreamSource_Init(&src);
    src.Name = s->stream;
    src.External = &ext;
    jsStreamSource *srcs[] = {&src};
    jsStreamConfig c;
    jsStreamConfig_Init(&c);
    c.Name = s->st.copy;
    c.Description = "meshd: the hub's copy of an edge domain's stream (docs/mesh.md)";
    c.Sources = srcs;
    c.SourcesLen = 1;
    c.Storage = js_FileStorage;
    c.Replicas = replicas;
    c.Retention = js_LimitsPolicy;
    c.Discard = js_DiscardOld;
    c.MaxAge = MESH_REPL_MAX_AGE_NS;
    c.Duplicates = MESH_REPL_DUPLICATES_NS;
    rc = js_AddStream(&si, js, &c, NULL, &jerr);
    if (rc == NATS_OK || jerr == JSStreamNameExistErr) {
        if (rc == NATS_OK) {
            LOG_INFO("mesh", "created the hub's copy %s of stream %s (domain %s, %d replicas)",
                     s->st.copy, s->stream, s->st.leaf_domain, replicas);
            note_copy(s, si);
        }
        s->seen_copy = true;
        set_state(s, "sourcing", NULL);
    } else {
        set_state(s, "waiting", "creating the hub's copy (%d replicas): %s%s", replicas,
                  nats_text(rc),
                  jerr == JSClusterNoPeersErr ? " (the hub is forming; retrying)" : "");
    }
done:
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
}

static void *run(void *arg)
{
    mesh_source_t *s = arg;
    mesh_thread_name("source", s->domain);
    while (!stopping(s, 0)) {
        uint64_t gen;
        natsConnection *nc = mesh__mesh_conn(s->m, &gen);
        if (nc == NULL) {
            mesh__mesh_conn_done(s->m);
            set_state(s, s->seen_copy ? "sourcing" : "waiting", NULL);
            stopping(s, CHECK_NS / 2);
            continue;
        }
        if (gen != s->gen) {
            s->gen = gen;
            s->know_where = false;
        }
        if (!s->know_where)
            s->know_where = learn_where(s, nc);
        if (s->know_where && s->st.leaf_domain[0] == '\0')
            set_state(s, "hub", NULL); /* not behind a leaf: the stream is the hub's own */
        else if (s->know_where)
            check_copy(s, nc);
        mesh__mesh_conn_done(s->m);
        stopping(s, CHECK_NS);
    }
    return NULL;
}

mesh_status_t mesh_source_start(mesh_mesh_t *m, const char *domain, mesh_source_allowed_fn allowed,
                                void *arg, mesh_source_t **out, mesh_err_t *err)
{
    *out = NULL;
    if (!mesh_name_domain_ok(domain))
        return mesh_err_set(err, MESH_INVALID, "'%s' is not a domain name", domain);
    mesh_source_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    s->m = m;
    s->allowed = allowed;
    s->arg = arg;
    snprintf(s->domain, sizeof s->domain, "%s", domain);
    snprintf(s->stream, sizeof s->stream, "MESHD_DOM_%s", domain);
    snprintf(s->st.copy, sizeof s->st.copy, "MESHD_COPY_%s", domain);
    snprintf(s->deliver, sizeof s->deliver, "meshd.copy.%s", domain);
    s->st.state = "waiting";
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->thread, NULL, run, s) != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return mesh_err_set(err, MESH_INTERNAL, "cannot start the sourcing thread");
    }
    *out = s;
    return MESH_OK;
}

void mesh_source_stop(mesh_source_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void mesh_source_status(mesh_source_t *s, mesh_source_status_t *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    pthread_mutex_unlock(&s->mu);
}
