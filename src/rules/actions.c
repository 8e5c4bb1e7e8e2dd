/*
 * actions.c - the action thread: a bounded queue of jobs, delivered in due order, retried
 * with exponential backoff, every outcome audited. See actions.h.
 *
 * Jobs are one per (event, action). The thread owns the libcurl handle; submitters only take
 * the queue's lock for the time of a list insertion.
 */
#include "rules/actions.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/policy.h"
#include "core/log.h"
#include "core/util.h"

#define BACKOFF_MAX_NS (60 * MESH_NS_PER_SEC)

/* What the jobs of one event share. */
typedef struct evshare {
    _Atomic int refs;    /* jobs not ended */
    _Atomic bool undone; /* a job ended without its action done (a stop, a full queue) */
} evshare_t;

typedef struct job {
    struct job *next;
    mesh_actions_t *owner;
    mesh_rule_event_t *ev; /* a single event (next NULL), shared by the jobs of its actions */
    evshare_t *share;
    size_t action; /* index into ev->rule->actions */
    int attempts;
    int64_t due; /* monotonic ns */
    char delivery[128];
    char *body; /* built at the first attempt */
    size_t body_len;
    char *topic; /* mqtt */
} job_t;

typedef mesh_status_t (*mesh_action_run_fn)(mesh_actions_t *a, job_t *j, char *why, size_t cap);

struct mesh_actions {
    mesh_actions_opts_t opts;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job_t *head; /* unordered; the thread picks the earliest due */
    size_t n;
    bool stop;
    mesh_actions_stats_t stats;
    CURL *curl; /* the thread's */
};

/* Frees a job; the last job of an event frees the event, after telling the owner its actions
 * ended when every one of them finished (finished false: a stop or a full queue left this
 * one undone, and the event runs again at the next start). */
static void job_end(job_t *j, bool finished)
{
    if (j == NULL)
        return;
    if (!finished)
        atomic_store(&j->share->undone, true);
    if (atomic_fetch_sub(&j->share->refs, 1) == 1) {
        mesh_actions_t *a = j->owner;
        if (!atomic_load(&j->share->undone) && a->opts.done)
            a->opts.done(a->opts.done_arg, j->ev);
        mesh_rule_event_free(j->ev);
        free(j->share);
    }
    free(j->body);
    free(j->topic);
    free(j);
}

/* ---- payload ---- */

static bool listed(char **names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

/* Replaces the sensitive members of obj with their MASK_HASH values; adds their names to
 * masked. */
static void mask_object(json_t *obj, const json_t *sensitive, const mesh_rule_action_t *act,
                        const uint8_t *key, json_t *masked)
{
    size_t i;
    json_t *name;
    json_array_foreach(sensitive, i, name)
    {
        const char *col = json_string_value(name);
        json_t *v = col ? json_object_get(obj, col) : NULL;
        if (v == NULL || json_is_null(v) || listed(act->unmasked, act->nunmasked, col))
            continue;
        char *text =
            json_is_string(v) ? strdup(json_string_value(v)) : json_dumps(v, JSON_ENCODE_ANY);
        char out[65] = "";
        if (text && key)
            mesh_mask_text(MESH_MASK_HASH, key, text, strlen(text), out, sizeof out);
        free(text);
        /* no key: the value goes, not in clear */
        json_object_set_new(obj, col, key ? json_string(out) : json_null());
        bool seen = false;
        size_t k;
        json_t *m;
        json_array_foreach(masked, k, m) seen |= strcmp(json_string_value(m), col) == 0;
        if (!seen)
            json_array_append_new(masked, json_string(col));
    }
}

mesh_status_t mesh_actions_payload(const mesh_rule_event_t *ev, const mesh_rule_action_t *act,
                                   const uint8_t *mask_key, const char *delivery, mesh_buf_t *out)
{
    const mesh_rule_t *r = ev->rule;
    json_t *o = json_object();
    json_t *series = json_loads(ev->series ? ev->series : "{}", 0, NULL);
    json_t *row = ev->row ? json_loads(ev->row, 0, NULL) : NULL;
    json_t *sens = json_loads(ev->sensitive ? ev->sensitive : "[]", 0, NULL);
    json_t *masked = json_array();
    if (o == NULL || series == NULL || sens == NULL || masked == NULL) {
        json_decref(o);
        json_decref(series);
        json_decref(row);
        json_decref(sens);
        json_decref(masked);
        return MESH_NOMEM;
    }
    mask_object(series, sens, act, mask_key, masked);
    if (row)
        mask_object(row, sens, act, mask_key, masked);
    char tbuf[48];
    mesh_time_format(ev->time_ns, tbuf);
    json_object_set_new(o, "delivery", json_string(delivery));
    json_object_set_new(o, "event", json_string(mesh_alert_ev_name(ev->ev)));
    json_object_set_new(o, "alert_id", json_string(ev->alert_id));
    json_object_set_new(o, "domain", json_string(ev->domain));
    json_object_set_new(o, "product", json_string(ev->product));
    json_t *rj = json_object();
    json_object_set_new(rj, "name", json_string(r->name));
    json_object_set_new(rj, "kind", json_string(mesh_rule_kind_name(r->kind)));
    json_object_set_new(rj, "severity", json_string(r->severity));
    if (r->column)
        json_object_set_new(rj, "column", json_string(r->column));
    if (r->description)
        json_object_set_new(rj, "description", json_string(r->description));
    json_object_set_new(o, "rule", rj);
    json_object_set_new(o, "series", series);
    if (ev->has_value)
        json_object_set_new(o, "value", json_real(ev->value));
    if (row) {
        json_object_set_new(o, "sample", json_real(ev->sample));
        json_object_set_new(o, "row", row);
    }
    json_object_set_new(o, "time", json_string(tbuf));
    json_object_set_new(o, "time_ns", json_integer((json_int_t)ev->time_ns));
    if (ev->by[0])
        json_object_set_new(o, "by", json_string(ev->by));
    if (ev->note[0])
        json_object_set_new(o, "note", json_string(ev->note));
    json_object_set_new(o, "masked", masked);
    json_decref(sens);
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (s == NULL)
        return MESH_NOMEM;
    mesh_status_t st = mesh_buf_adds(out, s);
    free(s);
    return st;
}

void mesh_actions_sign(const char *secret, int64_t ts, const char *body, size_t n, char out[72])
{
    char pre[32];
    int pl = snprintf(pre, sizeof pre, "%" PRId64 ".", ts);
    uint8_t mac[32];
    unsigned int ml = sizeof mac;
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = m ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t outl = 0;
    if (c && EVP_MAC_init(c, (const unsigned char *)secret, strlen(secret), params) == 1 &&
        EVP_MAC_update(c, (const unsigned char *)pre, (size_t)pl) == 1 &&
        EVP_MAC_update(c, (const unsigned char *)body, n) == 1 &&
        EVP_MAC_final(c, mac, &outl, sizeof mac) == 1)
        ml = (unsigned int)outl;
    else
        memset(mac, 0, sizeof mac);
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(m);
    memcpy(out, "sha256=", 7);
    mesh_hex(mac, ml, out + 7);
    out[7 + 2 * ml] = '\0';
}

/* ---- the webhook ---- */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

static mesh_status_t run_webhook(mesh_actions_t *a, job_t *j, char *why, size_t cap)
{
    const mesh_rule_action_t *act = &j->ev->rule->actions[j->action];
    if (j->body == NULL) {
        uint8_t key[32];
        bool have = a->opts.mask_key && a->opts.mask_key(a->opts.mask_arg, key);
        mesh_buf_t b;
        mesh_buf_init(&b, 4 << 20);
        mesh_status_t st = mesh_actions_payload(j->ev, act, have ? key : NULL, j->delivery, &b);
        memset(key, 0, sizeof key);
        if (st != MESH_OK) {
            mesh_buf_free(&b);
            snprintf(why, cap, "payload: %s", mesh_status_name(st));
            return st;
        }
        j->body = mesh_buf_steal(&b, &j->body_len);
    }
    if (a->curl == NULL && (a->curl = curl_easy_init()) == NULL) {
        snprintf(why, cap, "libcurl did not start");
        return MESH_INTERNAL;
    }
    CURL *c = a->curl;
    curl_easy_reset(c);
    struct curl_slist *h = NULL;
    char line[256];
    int64_t ts = mesh_now_ns() / MESH_NS_PER_SEC;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    snprintf(line, sizeof line, "X-Meshd-Event: %s", mesh_alert_ev_name(j->ev->ev));
    h = curl_slist_append(h, line);
    snprintf(line, sizeof line, "X-Meshd-Delivery: %s", j->delivery);
    h = curl_slist_append(h, line);
    snprintf(line, sizeof line, "X-Meshd-Timestamp: %" PRId64, ts);
    h = curl_slist_append(h, line);
    if (act->secret) {
        char sig[72];
        mesh_actions_sign(act->secret, ts, j->body, j->body_len, sig);
        snprintf(line, sizeof line, "X-Meshd-Signature: %s", sig);
        h = curl_slist_append(h, line);
    }
    char ua[64];
    snprintf(ua, sizeof ua, "meshd/%s", MESH_VERSION);
    curl_easy_setopt(c, CURLOPT_URL, act->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, ua);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, j->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(act->timeout_ns / 1000000));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(act->timeout_ns / 1000000));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    if (act->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, act->ca_file);
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) {
        snprintf(why, cap, "%s", curl_easy_strerror(rc));
        return MESH_UNAVAILABLE;
    }
    if (code < 200 || code > 299) {
        snprintf(why, cap, "HTTP %ld", code);
        return MESH_UNAVAILABLE;
    }
    snprintf(why, cap, "HTTP %ld", code);
    return MESH_OK;
}

/* ---- MQTT publish ---- */

typedef struct tvals {
    const mesh_rule_event_t *ev;
    json_t *cols; /* the series' and the row's columns, masked */
    char tmp[64];
    char *dumped; /* a number (or other JSON value) as text; freed at the next lookup */
} tvals_t;

/* A placeholder's text: a column of the series or the row first, then the alert's fields. */
static const char *tval(void *arg, const char *name)
{
    tvals_t *t = arg;
    free(t->dumped);
    t->dumped = NULL;
    const json_t *v = json_object_get(t->cols, name);
    if (v) {
        if (json_is_string(v))
            return json_string_value(v);
        if (json_is_null(v))
            return "";
        return (t->dumped = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17)));
    }
    const mesh_rule_event_t *ev = t->ev;
    if (strcmp(name, "domain") == 0)
        return ev->domain;
    if (strcmp(name, "product") == 0)
        return ev->product;
    if (strcmp(name, "rule") == 0)
        return ev->rule->name;
    if (strcmp(name, "alert_id") == 0)
        return ev->alert_id;
    if (strcmp(name, "event") == 0)
        return mesh_alert_ev_name(ev->ev);
    if (strcmp(name, "severity") == 0)
        return ev->rule->severity;
    if (strcmp(name, "value") == 0) {
        if (!ev->has_value)
            return "";
        json_t *n = json_real(ev->value);
        t->dumped = json_dumps(n, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
        json_decref(n);
        return t->dumped;
    }
    if (strcmp(name, "time") == 0) {
        mesh_time_format(ev->time_ns, t->tmp);
        return t->tmp;
    }
    return "";
}

mesh_status_t mesh_actions_mqtt_message(const mesh_rule_event_t *ev, const mesh_rule_action_t *act,
                                        const uint8_t *mask_key, const char *delivery,
                                        mesh_buf_t *topic, mesh_buf_t *payload)
{
    tvals_t t = {.ev = ev};
    json_t *series = json_loads(ev->series ? ev->series : "{}", 0, NULL);
    json_t *row = ev->row ? json_loads(ev->row, 0, NULL) : NULL;
    json_t *sens = json_loads(ev->sensitive ? ev->sensitive : "[]", 0, NULL);
    json_t *masked = json_array();
    mesh_status_t st = MESH_NOMEM;
    if (series && sens && masked) {
        mask_object(series, sens, act, mask_key, masked);
        if (row) {
            mask_object(row, sens, act, mask_key, masked);
            json_object_update(series, row);
        }
        t.cols = series;
        st = mesh_rule_expand(act->topic, true, tval, &t, topic);
        if (st == MESH_OK && act->payload)
            st = mesh_rule_expand(act->payload, false, tval, &t, payload);
        else if (st == MESH_OK)
            st = mesh_actions_payload(ev, act, mask_key, delivery, payload);
    }
    free(t.dumped);
    json_decref(series);
    json_decref(row);
    json_decref(sens);
    json_decref(masked);
    return st;
}

static mesh_status_t run_mqtt(mesh_actions_t *a, job_t *j, char *why, size_t cap)
{
    const mesh_rule_action_t *act = &j->ev->rule->actions[j->action];
    if (j->body == NULL) {
        uint8_t key[32];
        bool have = a->opts.mask_key && a->opts.mask_key(a->opts.mask_arg, key);
        mesh_buf_t topic, payload;
        mesh_buf_init(&topic, 64 * 1024);
        mesh_buf_init(&payload, 4 << 20);
        mesh_status_t st =
            mesh_actions_mqtt_message(j->ev, act, have ? key : NULL, j->delivery, &topic, &payload);
        memset(key, 0, sizeof key);
        if (st == MESH_OK && topic.len == 0)
            st = MESH_INVALID;
        if (st != MESH_OK) {
            mesh_buf_free(&topic);
            mesh_buf_free(&payload);
            snprintf(why, cap, "message: %s", mesh_status_name(st));
            return st;
        }
        free(j->topic);
        j->topic = mesh_buf_steal(&topic, NULL);
        j->body = mesh_buf_steal(&payload, &j->body_len);
        if (j->body == NULL) /* an empty payload */
            j->body = calloc(1, 1);
    }
    if (a->opts.mqtt_publish == NULL) {
        snprintf(why, cap, "no MQTT broker is configured (mqtt_url)");
        return MESH_UNAVAILABLE;
    }
    mesh_status_t st = a->opts.mqtt_publish(a->opts.mqtt_arg, j->topic, j->body, j->body_len,
                                            act->qos, act->retain, act->timeout_ns, why, cap);
    if (st == MESH_OK && !*why)
        snprintf(why, cap, "published to %s", j->topic);
    return st;
}

/* One runner per action type (mesh_action_type_t). */
static const mesh_action_run_fn runners[] = {
    [MESH_ACTION_WEBHOOK] = run_webhook,
    [MESH_ACTION_MQTT] = run_mqtt,
};

/* ---- audit ---- */

static void audit_job(mesh_actions_t *a, const job_t *j, const char *outcome, const char *why)
{
    if (a->opts.audit == NULL)
        return;
    const mesh_rule_action_t *act = &j->ev->rule->actions[j->action];
    json_t *d = json_object();
    json_object_set_new(d, "rule", json_string(j->ev->rule->name));
    json_object_set_new(d, "alert", json_string(j->ev->alert_id));
    json_object_set_new(d, "event", json_string(mesh_alert_ev_name(j->ev->ev)));
    json_object_set_new(d, "delivery", json_string(j->delivery));
    if (act->type == MESH_ACTION_MQTT)
        json_object_set_new(d, "topic", json_string(j->topic ? j->topic : act->topic));
    else
        json_object_set_new(d, "url", json_string(act->url ? act->url : ""));
    json_object_set_new(d, "attempts", json_integer(j->attempts));
    if (why && *why)
        json_object_set_new(d, "result", json_string(why));
    char *s = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    mesh_audit_rec_t rec = {.action = act->type == MESH_ACTION_MQTT ? MESH_AUDIT_ACTION_MQTT
                                                                    : MESH_AUDIT_ACTION_WEBHOOK,
                            .principal = "meshd",
                            .domain = j->ev->domain,
                            .product = j->ev->product,
                            .outcome = outcome,
                            .status = strcmp(outcome, "ok") == 0 ? 200 : 502,
                            .details = s};
    mesh_audit_record(a->opts.audit, &rec);
    free(s);
}

/* ---- the thread ---- */

static void *thread_main(void *arg)
{
    mesh_thread_name("actions", NULL);
    mesh_actions_t *a = arg;
    pthread_mutex_lock(&a->lock);
    while (!a->stop) {
        job_t **best = NULL;
        for (job_t **pp = &a->head; *pp; pp = &(*pp)->next)
            if (best == NULL || (*pp)->due < (*best)->due)
                best = pp;
        int64_t now = mesh_mono_ns();
        if (best == NULL || (*best)->due > now) {
            if (best == NULL) {
                pthread_cond_wait(&a->cond, &a->lock);
            } else {
                /* the condition variable uses CLOCK_MONOTONIC (see start) */
                int64_t due = (*best)->due;
                struct timespec ts = {.tv_sec = due / MESH_NS_PER_SEC,
                                      .tv_nsec = due % MESH_NS_PER_SEC};
                pthread_cond_timedwait(&a->cond, &a->lock, &ts);
            }
            continue;
        }
        job_t *j = *best;
        *best = j->next;
        a->n--;
        pthread_mutex_unlock(&a->lock);
        j->attempts++;
        char why[256] = "";
        mesh_action_run_fn run = runners[j->ev->rule->actions[j->action].type];
        mesh_status_t st = run ? run(a, j, why, sizeof why) : MESH_UNSUPPORTED;
        if (run == NULL)
            snprintf(why, sizeof why, "this action type is not available");
        const mesh_rule_action_t *act = &j->ev->rule->actions[j->action];
        bool retry = st != MESH_OK && run && j->body && j->attempts <= act->retries;
        pthread_mutex_lock(&a->lock);
        a->stats.attempts++;
        if (st == MESH_OK)
            a->stats.delivered++;
        else if (!retry)
            a->stats.failed++;
        if (retry) {
            int64_t delay = act->backoff_ns;
            for (int i = 1; i < j->attempts && delay < BACKOFF_MAX_NS; i++)
                delay *= 2;
            if (delay > BACKOFF_MAX_NS)
                delay = BACKOFF_MAX_NS;
            j->due = mesh_mono_ns() + delay;
            j->next = a->head;
            a->head = j;
            a->n++;
            pthread_mutex_unlock(&a->lock);
            LOG_INFO("actions",
                     "webhook of rule %s (alert %s): attempt %d failed (%s); next in "
                     "%lld ms",
                     j->ev->rule->name, j->ev->alert_id, j->attempts, why,
                     (long long)(delay / 1000000));
            pthread_mutex_lock(&a->lock);
            continue;
        }
        pthread_mutex_unlock(&a->lock);
        if (st == MESH_OK)
            LOG_DEBUG("actions", "webhook of rule %s (alert %s, %s) delivered: %s",
                      j->ev->rule->name, j->ev->alert_id, mesh_alert_ev_name(j->ev->ev), why);
        else
            LOG_WARN("actions", "webhook of rule %s (alert %s) failed after %d attempts: %s",
                     j->ev->rule->name, j->ev->alert_id, j->attempts, why);
        audit_job(a, j, st == MESH_OK ? "ok" : "failed", why);
        job_end(j, true);
        pthread_mutex_lock(&a->lock);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

mesh_status_t mesh_actions_start(const mesh_actions_opts_t *opts, mesh_actions_t **out,
                                 mesh_err_t *err)
{
    mesh_actions_t *a = calloc(1, sizeof *a);
    if (a == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    a->opts = *opts;
    if (a->opts.queue_max == 0)
        a->opts.queue_max = 1000;
    pthread_mutex_init(&a->lock, NULL);
    mesh_cond_init_mono(&a->cond);
    if (pthread_create(&a->thread, NULL, thread_main, a) != 0) {
        mesh_actions_stop(a);
        return mesh_err_set(err, MESH_INTERNAL, "cannot start the action thread");
    }
    a->started = true;
    *out = a;
    return MESH_OK;
}

void mesh_actions_stop(mesh_actions_t *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->lock);
    a->stop = true;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
    if (a->started)
        pthread_join(a->thread, NULL);
    size_t dropped = 0;
    while (a->head) {
        job_t *j = a->head;
        a->head = j->next;
        audit_job(a, j, "dropped", "meshd stopped before delivery");
        job_end(j, false);
        dropped++;
    }
    if (dropped)
        LOG_WARN("actions", "%zu action(s) not delivered: meshd is stopping", dropped);
    if (a->curl)
        curl_easy_cleanup(a->curl);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->cond);
    free(a);
}

void mesh_actions_submit(mesh_actions_t *a, mesh_rule_event_t *ev)
{
    while (ev) {
        mesh_rule_event_t *next = ev->next;
        ev->next = NULL;
        size_t nact = ev->rule->nactions;
        evshare_t *share = malloc(sizeof *share);
        if (share == NULL || nact == 0) {
            free(share);
            mesh_rule_event_free(ev);
            ev = next;
            continue;
        }
        atomic_init(&share->refs, (int)nact);
        atomic_init(&share->undone, false);
        for (size_t i = 0; i < nact; i++) {
            job_t *j = calloc(1, sizeof *j);
            if (j == NULL) {
                atomic_store(&share->undone, true);
                if (atomic_fetch_sub(&share->refs, 1) == 1) {
                    mesh_rule_event_free(ev);
                    free(share);
                }
                continue;
            }
            j->owner = a;
            j->ev = ev;
            j->share = share;
            j->action = i;
            snprintf(j->delivery, sizeof j->delivery, "%s/%s/%zu", ev->alert_id,
                     mesh_alert_ev_name(ev->ev), i);
            j->due = mesh_mono_ns();
            pthread_mutex_lock(&a->lock);
            bool full = a->n >= a->opts.queue_max;
            if (full) {
                a->stats.dropped++;
            } else {
                j->next = a->head;
                a->head = j;
                a->n++;
                pthread_cond_signal(&a->cond);
            }
            pthread_mutex_unlock(&a->lock);
            if (full) {
                LOG_WARN("actions", "action queue full (%zu jobs): webhook of rule %s dropped",
                         a->opts.queue_max, ev->rule->name);
                /* its outbox row stays: it runs again at the next start */
                audit_job(a, j, "dropped", "the action queue is full");
                job_end(j, false);
            }
        }
        ev = next;
    }
}

void mesh_actions_stats(mesh_actions_t *a, mesh_actions_stats_t *out)
{
    pthread_mutex_lock(&a->lock);
    *out = a->stats;
    out->queued = a->n;
    pthread_mutex_unlock(&a->lock);
}
