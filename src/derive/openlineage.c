/*
 * openlineage.c - OpenLineage RunEvents (spec 2-0-2) and the emitter's sinks (see
 * openlineage.h, decision 0030).
 *
 * Design: mesh_ol_emit builds the event's JSON on the caller's thread (small: one refresh's
 * datasets and fields) and hands a copy to each sink's queue under the sink's lock; a sink's
 * worker thread takes everything queued at once and writes it. Nothing of the caller waits on
 * a disk or a network. A full queue drops the new event for that sink (counted): lineage is
 * an observer, it must never hold up the data it observes.
 */
#include "derive/openlineage.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"

#define PRODUCER_DEFAULT "https://github.com/meshd/meshd/tree/v" MESH_VERSION
#define FACET_SCHEMA                                                                               \
    "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
#define FACET_COLUMNS                                                                              \
    "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/"              \
    "ColumnLineageDatasetFacet"
#define FACET_ERROR                                                                                \
    "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/"                   \
    "ErrorMessageRunFacet"
#define FACET_JOBTYPE                                                                              \
    "https://openlineage.io/spec/facets/2-0-3/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"

#define EVENT_MAX_BYTES (4u << 20) /* one event: far above a refresh of 64-column products */
#define LOG_EVERY_NS    60000000000LL
#define FILE_SYNC_NS    1000000000LL /* the file sink syncs at most once a second */

const char *mesh_ol_type_name(mesh_ol_type_t t)
{
    static const char *const n[] = {"START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"};
    return (unsigned)t < sizeof n / sizeof n[0] ? n[t] : "OTHER";
}

static const char *xform_name(mesh_ol_xform_t x)
{
    switch (x) {
    case MESH_OL_IDENTITY:
        return "IDENTITY";
    case MESH_OL_TRANSFORMATION:
        return "TRANSFORMATION";
    case MESH_OL_AGGREGATION:
        return "AGGREGATION";
    }
    return "TRANSFORMATION";
}

mesh_status_t mesh_ol_run_id(char out[MESH_OL_RUN_ID_LEN + 1])
{
    uint8_t u[16];
    if (mesh_random(u, sizeof u) != MESH_OK)
        return MESH_IO;
    uint64_t ms = (uint64_t)(mesh_now_ns() / 1000000);
    for (int i = 0; i < 6; i++)
        u[i] = (uint8_t)(ms >> (8 * (5 - i)));
    u[6] = (uint8_t)(0x70 | (u[6] & 0x0f)); /* version 7 */
    u[8] = (uint8_t)(0x80 | (u[8] & 0x3f)); /* variant 10 */
    char hex[33];
    mesh_hex(u, sizeof u, hex);
    snprintf(out, MESH_OL_RUN_ID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
             hex + 16, hex + 20);
    return MESH_OK;
}

/* ---- the event ---- */

static json_t *facet_base(const char *producer, const char *schema)
{
    json_t *f = json_object();
    json_object_set_new(f, "_producer", json_string(producer));
    json_object_set_new(f, "_schemaURL", json_string(schema));
    return f;
}

static bool str_ok(const char *s)
{
    return s != NULL && *s != '\0';
}

static json_t *dataset_json(const mesh_ol_dataset_t *d, const char *producer, bool output,
                            mesh_err_t *err)
{
    if (!str_ok(d->ns) || !str_ok(d->name)) {
        mesh_err_set(err, MESH_INVALID, "an OpenLineage dataset needs a namespace and a name");
        return NULL;
    }
    json_t *j = json_object();
    json_object_set_new(j, "namespace", json_string(d->ns));
    json_object_set_new(j, "name", json_string(d->name));
    json_t *facets = json_object();
    if (d->nfields) {
        json_t *f = facet_base(producer, FACET_SCHEMA), *fields = json_array();
        for (size_t i = 0; i < d->nfields; i++) {
            json_t *x = json_object();
            json_object_set_new(x, "name", json_string(d->fields[i].name ? d->fields[i].name : ""));
            if (d->fields[i].type)
                json_object_set_new(x, "type", json_string(d->fields[i].type));
            json_array_append_new(fields, x);
        }
        json_object_set_new(f, "fields", fields);
        json_object_set_new(facets, "schema", f);
    }
    if (output && d->nlineage) {
        json_t *f = facet_base(producer, FACET_COLUMNS), *fields = json_object();
        for (size_t i = 0; i < d->nlineage; i++) {
            const mesh_ol_column_t *c = &d->lineage[i];
            json_t *ins = json_array();
            for (size_t k = 0; k < c->ninputs; k++) {
                const mesh_ol_input_field_t *in = &c->inputs[k];
                json_t *x = json_object(), *xf = json_object(), *xfs = json_array();
                json_object_set_new(x, "namespace", json_string(in->ns ? in->ns : ""));
                json_object_set_new(x, "name", json_string(in->name ? in->name : ""));
                json_object_set_new(x, "field", json_string(in->field ? in->field : ""));
                json_object_set_new(xf, "type", json_string("DIRECT"));
                json_object_set_new(xf, "subtype", json_string(xform_name(in->xform)));
                json_object_set_new(xf, "masking", json_false());
                json_array_append_new(xfs, xf);
                json_object_set_new(x, "transformations", xfs);
                json_array_append_new(ins, x);
            }
            json_t *o = json_object();
            json_object_set_new(o, "inputFields", ins);
            json_object_set_new(fields, c->name ? c->name : "", o);
        }
        json_object_set_new(f, "fields", fields);
        json_object_set_new(facets, "columnLineage", f);
    }
    json_object_set_new(j, "facets", facets);
    return j;
}

mesh_status_t mesh_ol_event_json(const mesh_ol_event_t *ev, const char *producer, mesh_buf_t *out,
                                 mesh_err_t *err)
{
    if (producer == NULL)
        producer = PRODUCER_DEFAULT;
    if (!str_ok(ev->run_id) || !str_ok(ev->job_ns) || !str_ok(ev->job_name))
        return mesh_err_set(err, MESH_INVALID,
                            "an OpenLineage run event needs a run id and a job namespace and name");
    char when[MESH_TIME_MAX];
    mesh_time_format(ev->time_ns ? ev->time_ns : mesh_now_ns(), when);
    json_t *j = json_object();
    json_object_set_new(j, "eventType", json_string(mesh_ol_type_name(ev->type)));
    json_object_set_new(j, "eventTime", json_string(when));
    json_object_set_new(j, "producer", json_string(producer));
    json_object_set_new(j, "schemaURL", json_string(MESH_OL_SCHEMA_URL));
    json_t *run = json_object(), *rfacets = json_object();
    json_object_set_new(run, "runId", json_string(ev->run_id));
    if (ev->type == MESH_OL_FAIL && ev->error) {
        json_t *f = facet_base(producer, FACET_ERROR);
        json_object_set_new(f, "message", json_string(ev->error));
        json_object_set_new(f, "programmingLanguage", json_string("C"));
        json_object_set_new(rfacets, "errorMessage", f);
    }
    json_object_set_new(run, "facets", rfacets);
    json_object_set_new(j, "run", run);
    json_t *job = json_object(), *jfacets = json_object(),
           *jt = facet_base(producer, FACET_JOBTYPE);
    json_object_set_new(job, "namespace", json_string(ev->job_ns));
    json_object_set_new(job, "name", json_string(ev->job_name));
    json_object_set_new(jt, "processingType", json_string("STREAMING"));
    json_object_set_new(jt, "integration", json_string("MESHD"));
    json_object_set_new(jt, "jobType", json_string("DERIVED_PRODUCT"));
    json_object_set_new(jfacets, "jobType", jt);
    json_object_set_new(job, "facets", jfacets);
    json_object_set_new(j, "job", job);
    mesh_status_t st = MESH_OK;
    json_t *ins = json_array(), *outs = json_array();
    for (size_t i = 0; i < ev->ninputs && st == MESH_OK; i++) {
        json_t *d = dataset_json(&ev->inputs[i], producer, false, err);
        if (d == NULL)
            st = err->code;
        else
            json_array_append_new(ins, d);
    }
    for (size_t i = 0; i < ev->noutputs && st == MESH_OK; i++) {
        json_t *d = dataset_json(&ev->outputs[i], producer, true, err);
        if (d == NULL)
            st = err->code;
        else
            json_array_append_new(outs, d);
    }
    json_object_set_new(j, "inputs", ins);
    json_object_set_new(j, "outputs", outs);
    if (st == MESH_OK) {
        char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (s == NULL)
            st = mesh_err_set(err, MESH_NOMEM, "out of memory");
        else if ((st = mesh_buf_adds(out, s)) != MESH_OK)
            mesh_err_set(err, st, "an OpenLineage event too large");
        free(s);
    }
    json_decref(j);
    return st;
}

/* ---- sinks ---- */

typedef struct item {
    struct item *next;
    size_t len;
    char data[]; /* the event's JSON, then '\n' */
} item_t;

typedef struct sink {
    struct mesh_ol_emitter *em;
    const char *kind; /* "file" | "http" */
    bool on, stop, started;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    item_t *head, **tail;
    size_t n;
    uint64_t sent, failed, dropped;
    int64_t last_log_ns; /* the last "dropped" warning */
} sink_t;

struct mesh_ol_emitter {
    char *file, *url, *cacert, *token, *producer;
    char url_shown[512]; /* the URL without user info or query, for logs */
    int64_t file_max, timeout_ns;
    int retries;
    size_t queue_max;
    sink_t fsink, hsink;
    int fd;
    int64_t fsize;
    pthread_mutex_t build_lock; /* build_failures */
    uint64_t build_failures;
};

/* Takes everything queued, waiting for something at most wait_ns (< 0: without limit). NULL:
 * nothing came (*stopped: the sink is stopping and its queue is empty). */
static item_t *take_wait(sink_t *s, int64_t wait_ns, bool *stopped)
{
    struct timespec ts;
    if (wait_ns >= 0) {
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t t = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec + wait_ns;
        ts.tv_sec = (time_t)(t / 1000000000LL);
        ts.tv_nsec = (long)(t % 1000000000LL);
    }
    pthread_mutex_lock(&s->lock);
    while (s->head == NULL && !s->stop)
        if (wait_ns < 0)
            pthread_cond_wait(&s->cond, &s->lock);
        else if (pthread_cond_timedwait(&s->cond, &s->lock, &ts) != 0)
            break;
    *stopped = s->stop && s->head == NULL;
    item_t *all = s->head;
    s->head = NULL;
    s->tail = &s->head;
    s->n = 0;
    pthread_mutex_unlock(&s->lock);
    return all;
}

static item_t *take_all(sink_t *s)
{
    pthread_mutex_lock(&s->lock);
    while (s->head == NULL && !s->stop)
        pthread_cond_wait(&s->cond, &s->lock);
    item_t *all = s->head;
    s->head = NULL;
    s->tail = &s->head;
    s->n = 0;
    pthread_mutex_unlock(&s->lock);
    return all;
}

static void count(sink_t *s, uint64_t sent, uint64_t failed, uint64_t dropped)
{
    pthread_mutex_lock(&s->lock);
    s->sent += sent;
    s->failed += failed;
    s->dropped += dropped;
    pthread_mutex_unlock(&s->lock);
}

static bool stopping(sink_t *s)
{
    pthread_mutex_lock(&s->lock);
    bool st = s->stop;
    pthread_mutex_unlock(&s->lock);
    return st;
}

/* Opens (creating, appending) the file; its size is kept for the rotation. */
static mesh_status_t file_open(mesh_ol_emitter_t *em, mesh_err_t *err)
{
    em->fd = open(em->file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (em->fd < 0)
        return mesh_err_set(err, MESH_IO, "openlineage_file %s: %s", em->file, strerror(errno));
    struct stat sb;
    em->fsize = fstat(em->fd, &sb) == 0 ? (int64_t)sb.st_size : 0;
    return MESH_OK;
}

/* Renames the full file to FILE.1 (replacing an older one) and starts a new one. */
static void file_rotate(mesh_ol_emitter_t *em)
{
    char old[4200];
    snprintf(old, sizeof old, "%s.1", em->file);
    fdatasync(em->fd);
    close(em->fd);
    em->fd = -1;
    if (rename(em->file, old) != 0)
        LOG_WARN("openlineage", "rotating %s: %s", em->file, strerror(errno));
    mesh_err_t e;
    mesh_err_clear(&e);
    if (file_open(em, &e) != MESH_OK)
        LOG_WARN("openlineage", "%s", e.msg);
    else {
        /* the rename and the new file survive a crash */
        char dir[4200];
        snprintf(dir, sizeof dir, "%s", em->file);
        char *slash = strrchr(dir, '/');
        if (slash)
            *(slash == dir ? slash + 1 : slash) = '\0';
        mesh_fsync_dir(slash ? dir : ".");
    }
}

static void file_sync(mesh_ol_emitter_t *em)
{
    if (em->fd >= 0 && fdatasync(em->fd) != 0)
        LOG_WARN("openlineage", "syncing %s: %s", em->file, strerror(errno));
}

/* Writes what is queued as it comes; syncs at most once per FILE_SYNC_NS while events keep
 * coming (the file shares its disk with the domains' logs, whose syncs acknowledge writes),
 * and FILE_SYNC_NS after the last one, and at the stop. */
static void *file_worker(void *arg)
{
    sink_t *s = arg;
    mesh_ol_emitter_t *em = s->em;
    int64_t last_sync = mesh_mono_ns(), reopen_log = 0;
    bool dirty = false, stopped = false;
    for (;;) {
        item_t *all = take_wait(s, dirty ? FILE_SYNC_NS : -1, &stopped);
        if (all == NULL) {
            if (dirty) {
                file_sync(em);
                last_sync = mesh_mono_ns();
                dirty = false;
            }
            if (stopped)
                break;
            continue;
        }
        uint64_t ok = 0, bad = 0;
        if (em->fd < 0) { /* a failed rotation: open it again */
            mesh_err_t e;
            mesh_err_clear(&e);
            int64_t now = mesh_mono_ns();
            if (file_open(em, &e) != MESH_OK &&
                (reopen_log == 0 || now - reopen_log > LOG_EVERY_NS)) {
                LOG_WARN("openlineage", "%s", e.msg);
                reopen_log = now;
            }
        }
        while (all) {
            item_t *it = all;
            all = it->next;
            if (em->fd >= 0 && em->file_max > 0 && em->fsize > 0 &&
                em->fsize + (int64_t)it->len > em->file_max)
                file_rotate(em);
            if (em->fd >= 0 && mesh_write_all(em->fd, it->data, it->len) == MESH_OK) {
                em->fsize += (int64_t)it->len;
                ok++;
            } else {
                if (bad == 0)
                    LOG_WARN("openlineage", "writing %s: %s", em->file, strerror(errno));
                bad++;
            }
            free(it);
        }
        dirty = dirty || ok > 0;
        if (dirty && mesh_mono_ns() - last_sync >= FILE_SYNC_NS) {
            file_sync(em);
            last_sync = mesh_mono_ns();
            dirty = false;
        }
        count(s, ok, bad, 0);
    }
    return NULL;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* One POST: true on a 2xx. */
static bool post_once(mesh_ol_emitter_t *em, CURL *c, struct curl_slist *h, const item_t *it,
                      char *why, size_t cap)
{
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, em->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "meshd/" MESH_VERSION);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    const char *body = it->data;
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(it->len - 1)); /* no '\n' */
    long ms = (long)(em->timeout_ns / 1000000);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ms > 0 ? ms : 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, ms > 0 ? ms : 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    if (em->cacert)
        curl_easy_setopt(c, CURLOPT_CAINFO, em->cacert);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        snprintf(why, cap, "%s", curl_easy_strerror(rc));
        return false;
    }
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (code < 200 || code > 299) {
        snprintf(why, cap, "HTTP %ld", code);
        return false;
    }
    return true;
}

/* Sleeps ns unless the sink is stopped meanwhile: false when stopped. */
static bool nap(sink_t *s, int64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t t = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec + ns;
    ts.tv_sec = (time_t)(t / 1000000000LL);
    ts.tv_nsec = (long)(t % 1000000000LL);
    pthread_mutex_lock(&s->lock);
    while (!s->stop && pthread_cond_timedwait(&s->cond, &s->lock, &ts) == 0)
        ;
    bool st = s->stop;
    pthread_mutex_unlock(&s->lock);
    return !st;
}

static void *http_worker(void *arg)
{
    sink_t *s = arg;
    mesh_ol_emitter_t *em = s->em;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (em->token) {
        char auth[1200];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", em->token);
        h = curl_slist_append(h, auth);
        explicit_bzero(auth, sizeof auth);
    }
    int64_t last_log = 0;
    for (;;) {
        item_t *all = take_all(s);
        if (all == NULL)
            break;
        while (all) {
            item_t *it = all;
            all = it->next;
            if (stopping(s)) { /* no more POSTs once stopping: each could take the timeout */
                free(it);
                count(s, 0, 0, 1);
                continue;
            }
            bool ok = false;
            char why[256] = "no HTTP client";
            for (int a = 0; c && !ok && a <= em->retries; a++) {
                /* backoff between attempts: 100 ms, 200 ms, ... at most 5 s */
                if (a > 0) {
                    int64_t back = 100000000LL << (a - 1 < 6 ? a - 1 : 6);
                    if (!nap(s, back < 5000000000LL ? back : 5000000000LL))
                        break;
                }
                ok = post_once(em, c, h, it, why, sizeof why);
            }
            free(it);
            if (ok) {
                count(s, 1, 0, 0);
                continue;
            }
            /* stopped during the backoff: this one and the rest are dropped */
            if (stopping(s)) {
                count(s, 0, 0, 1);
                continue;
            }
            count(s, 0, 1, 0);
            int64_t now = mesh_mono_ns();
            if (last_log == 0 || now - last_log > LOG_EVERY_NS) {
                LOG_WARN("openlineage", "POST %s failed after %d attempts: %s", em->url_shown,
                         em->retries + 1, why);
                last_log = now;
            }
        }
    }
    curl_slist_free_all(h);
    if (c)
        curl_easy_cleanup(c);
    return NULL;
}

static mesh_status_t sink_start(sink_t *s, mesh_ol_emitter_t *em, const char *kind,
                                void *(*fn)(void *), mesh_err_t *err)
{
    s->em = em;
    s->kind = kind;
    s->on = true;
    s->tail = &s->head;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (pthread_create(&s->thread, NULL, fn, s) != 0)
        return mesh_err_set(err, MESH_INTERNAL, "openlineage: cannot start the %s sink", kind);
    s->started = true;
    return MESH_OK;
}

static void sink_stop(sink_t *s, bool drop_rest)
{
    if (!s->on)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    if (drop_rest) {
        for (item_t *it = s->head, *nx; it; it = nx) {
            nx = it->next;
            free(it);
            s->dropped++;
        }
        s->head = NULL;
        s->tail = &s->head;
        s->n = 0;
    }
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    if (s->started)
        pthread_join(s->thread, NULL);
    for (item_t *it = s->head, *nx; it; it = nx) {
        nx = it->next;
        free(it);
    }
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    s->on = false;
}

static void sink_push(mesh_ol_emitter_t *em, sink_t *s, const char *p, size_t n)
{
    if (!s->on)
        return;
    item_t *it = NULL;
    pthread_mutex_lock(&s->lock);
    bool full = s->stop || s->n >= em->queue_max;
    if (!full && (it = malloc(sizeof *it + n + 1)) != NULL) {
        memcpy(it->data, p, n);
        it->data[n] = '\n';
        it->len = n + 1;
        it->next = NULL;
        *s->tail = it;
        s->tail = &it->next;
        s->n++;
        pthread_cond_signal(&s->cond);
    } else {
        s->dropped++;
    }
    bool say = false;
    if (it == NULL) {
        int64_t now = mesh_mono_ns();
        if (s->last_log_ns == 0 || now - s->last_log_ns > LOG_EVERY_NS) {
            s->last_log_ns = now;
            say = true;
        }
    }
    uint64_t dropped = s->dropped;
    pthread_mutex_unlock(&s->lock);
    if (say)
        LOG_WARN("openlineage",
                 "the %s sink's queue is full (%zu events): events dropped (%llu "
                 "so far)",
                 s->kind, em->queue_max, (unsigned long long)dropped);
}

/* The URL as it may be logged: scheme, host and path, no user info and no query. */
static void url_for_logs(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, "://");
    const char *host = p ? p + 3 : url;
    const char *end = host + strcspn(host, "/?#");
    const char *at = memchr(host, '@', (size_t)(end - host));
    if (at)
        host = at + 1;
    size_t path = strcspn(end, "?#");
    snprintf(out, cap, "%.*s%.*s%.*s", p ? (int)(p + 3 - url) : 0, url, (int)(end - host), host,
             (int)path, end);
}

static char *dup_or_null(const char *s)
{
    return s && *s ? mesh_strdup(s) : NULL;
}

mesh_status_t mesh_ol_emitter_create(const mesh_ol_opts_t *o, mesh_ol_emitter_t **out,
                                     mesh_err_t *err)
{
    *out = NULL;
    bool file = o->file && *o->file, url = o->url && *o->url;
    if (!file && !url)
        return MESH_OK;
    if (url && strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0)
        return mesh_err_set(err, MESH_INVALID,
                            "openlineage_url must be an http:// or https:// URL");
    mesh_ol_emitter_t *em = calloc(1, sizeof *em);
    if (em == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    em->fd = -1;
    em->file = dup_or_null(o->file);
    em->url = dup_or_null(o->url);
    em->cacert = dup_or_null(o->cacert);
    em->token = dup_or_null(o->token);
    em->producer = mesh_strdup(o->producer && *o->producer ? o->producer : PRODUCER_DEFAULT);
    em->file_max = o->file_max_bytes;
    em->timeout_ns = o->timeout_ns > 0 ? o->timeout_ns : 5000000000LL;
    em->retries = o->retries < 0 ? 0 : o->retries;
    em->queue_max = o->queue_max ? o->queue_max : 1024;
    pthread_mutex_init(&em->build_lock, NULL);
    mesh_status_t st = MESH_OK;
    if (em->producer == NULL || (file && em->file == NULL) || (url && em->url == NULL)) {
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
        goto err;
    }
    if (url)
        url_for_logs(em->url, em->url_shown, sizeof em->url_shown);
    if (file && (st = file_open(em, err)) != MESH_OK)
        goto err;
    if (file && (st = sink_start(&em->fsink, em, "file", file_worker, err)) != MESH_OK)
        goto err;
    if (url && (st = sink_start(&em->hsink, em, "http", http_worker, err)) != MESH_OK)
        goto err;
    LOG_INFO("openlineage", "run events to%s%s%s%s", file ? " " : "", file ? em->file : "",
             url ? " " : "", url ? em->url_shown : "");
    *out = em;
    return MESH_OK;
err:
    mesh_ol_emitter_destroy(em);
    return st;
}

void mesh_ol_emitter_destroy(mesh_ol_emitter_t *em)
{
    if (em == NULL)
        return;
    sink_stop(&em->fsink, false);
    sink_stop(&em->hsink, true);
    if (em->fd >= 0) {
        fdatasync(em->fd);
        close(em->fd);
    }
    if (em->token)
        explicit_bzero(em->token, strlen(em->token));
    free(em->file);
    free(em->url);
    free(em->cacert);
    free(em->token);
    free(em->producer);
    pthread_mutex_destroy(&em->build_lock);
    free(em);
}

const char *mesh_ol_producer(const mesh_ol_emitter_t *em)
{
    return em ? em->producer : PRODUCER_DEFAULT;
}

void mesh_ol_emit(mesh_ol_emitter_t *em, const mesh_ol_event_t *ev)
{
    if (em == NULL)
        return;
    mesh_buf_t b;
    mesh_buf_init(&b, EVENT_MAX_BYTES);
    mesh_err_t e;
    mesh_err_clear(&e);
    if (mesh_ol_event_json(ev, em->producer, &b, &e) != MESH_OK) {
        pthread_mutex_lock(&em->build_lock);
        em->build_failures++;
        pthread_mutex_unlock(&em->build_lock);
        LOG_WARN("openlineage", "%s: the run event cannot be built: %s",
                 ev->job_name ? ev->job_name : "?", e.msg);
        mesh_buf_free(&b);
        return;
    }
    sink_push(em, &em->fsink, b.data, b.len);
    sink_push(em, &em->hsink, b.data, b.len);
    mesh_buf_free(&b);
}

static void sink_stats(sink_t *s, mesh_ol_sink_stats_t *o)
{
    memset(o, 0, sizeof *o);
    if (!s->on)
        return;
    pthread_mutex_lock(&s->lock);
    o->on = true;
    o->sent = s->sent;
    o->failed = s->failed;
    o->dropped = s->dropped;
    o->queued = s->n;
    pthread_mutex_unlock(&s->lock);
}

void mesh_ol_emitter_stats(mesh_ol_emitter_t *em, mesh_ol_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (em == NULL)
        return;
    sink_stats(&em->fsink, &out->file);
    sink_stats(&em->hsink, &out->http);
    pthread_mutex_lock(&em->build_lock);
    out->build_failures = em->build_failures;
    pthread_mutex_unlock(&em->build_lock);
}
