/*
 * rules.c - the node's side of rules: the action thread, the outbox reaper, the audit of
 * alert transitions, absence ticks and the rules_file option.
 *
 * Domains report committed alert transitions through mesh__node_rule_events on their writer
 * thread. Transitions from the replay at open come before the audit log and the action
 * thread exist; they wait in ev_pending until mesh__node_rules_start.
 */
#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth/policy.h"
#include "mqtt/client.h"
#include "core/log.h"
#include "core/util.h"
#include "node/node.h"
#include "rules/actions.h"

static const mesh_audit_action_t ev_actions[] = {
    [MESH_ALERT_FIRED] = MESH_AUDIT_ALERT_FIRED,
    [MESH_ALERT_ACKNOWLEDGED] = MESH_AUDIT_ALERT_ACKNOWLEDGED,
    [MESH_ALERT_RESOLVED] = MESH_AUDIT_ALERT_RESOLVED,
};

/* Audits each transition of the list (the series' values are not in the audit log: they may
 * be sensitive; the alert id leads to them in the alerts product). */
static void audit_events(mesh_node_t *n, const mesh_rule_event_t *ev)
{
    for (const mesh_rule_event_t *e = ev; e; e = e->next)
        mesh_metrics_alert_event(n->metrics, (int)e->ev);
    for (; ev && n->audit; ev = ev->next) {
        json_t *d = json_object();
        json_object_set_new(d, "alert", json_string(ev->alert_id));
        json_object_set_new(d, "rule", json_string(ev->rule->name));
        json_object_set_new(d, "severity", json_string(ev->rule->severity));
        if (ev->has_value)
            json_object_set_new(d, "value", json_real(ev->value));
        if (ev->note[0])
            json_object_set_new(d, "note", json_string(ev->note));
        json_object_set_new(d, "actions", json_integer((json_int_t)ev->rule->nactions));
        char *s = json_dumps(d, JSON_COMPACT | JSON_REAL_PRECISION(17));
        json_decref(d);
        mesh_audit_rec_t rec = {.action = ev_actions[ev->ev],
                                .principal = ev->by[0] ? ev->by : "meshd",
                                .domain = ev->domain,
                                .product = ev->product,
                                .outcome = "ok",
                                .status = 200,
                                .details = s};
        mesh_audit_record(n->audit, &rec);
        free(s);
    }
}

void mesh__node_rule_events(void *arg, mesh_domain_t *d, mesh_rule_event_t *ev)
{
    mesh_node_t *n = arg;
    (void)d;
    pthread_mutex_lock(&n->ev_lock);
    if (n->ev_closed) {
        /* stopping: the actions are owed in the domains' outboxes, for the next start */
        pthread_mutex_unlock(&n->ev_lock);
        mesh_rule_event_free(ev);
        return;
    }
    if (n->actions == NULL) {
        mesh_rule_event_t **tail = &n->ev_pending;
        while (*tail)
            tail = &(*tail)->next;
        *tail = ev;
        pthread_mutex_unlock(&n->ev_lock);
        return;
    }
    audit_events(n, ev);
    mesh_actions_submit(n->actions, ev);
    pthread_mutex_unlock(&n->ev_lock);
}

static bool node_mask_key(void *arg, uint8_t key[32])
{
    mesh_node_t *n = arg;
    mesh_policy_t *p = n->auth ? mesh_auth_policy(n->auth) : NULL;
    if (p == NULL)
        return false;
    memcpy(key, mesh_policy_mask_key(p), 32);
    mesh_policy_put(p);
    return true;
}

/* Applies one rule file unless the domain holds the same text already. */
static mesh_status_t apply_rule_file(mesh_node_t *n, const char *path, mesh_err_t *err)
{
    char *text = NULL;
    size_t len = 0;
    mesh_status_t st = mesh_read_file(path, MESH_RULE_MAX_BYTES, &text, &len, err);
    if (st != MESH_OK)
        return st;
    mesh_rule_t *r = NULL;
    if ((st = mesh_rule_parse(text, len, &r, err)) != MESH_OK)
        goto out;
    mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, r->domain);
    if (sd == NULL) {
        st = mesh_err_set(err, MESH_NOT_FOUND, "no domain '%s' on this node", r->domain);
        mesh_snapshot_put(s);
        goto out;
    }
    mesh_rule_info_t *list = NULL;
    size_t nl = 0;
    bool same = false;
    if (mesh_domain_rules(sd->dom, &list, &nl) == MESH_OK) {
        for (size_t i = 0; i < nl; i++) {
            same |= strcmp(list[i].rule->name, r->name) == 0 &&
                    strcmp(list[i].rule->text, r->text) == 0;
            mesh_rule_put(list[i].rule);
        }
        free(list);
    }
    if (!same) {
        st = mesh_domain_put_rule(sd->dom, text, len, err);
        mesh_audit_rec_t rec = {.action = MESH_AUDIT_ADMIN_RULE_PUT,
                                .principal = "meshd",
                                .domain = r->domain,
                                .product = r->product,
                                .status = mesh_status_http(st),
                                .details = st == MESH_OK ? "{\"source\":\"rules_file\"}" : NULL};
        mesh_audit_record(n->audit, &rec);
        if (st == MESH_OK)
            LOG_INFO("rules", "rule %s of domain %s applied from %s", r->name, r->domain, path);
    }
    mesh_snapshot_put(s);
out:
    mesh_rule_put(r);
    free(text);
    if (st != MESH_OK)
        mesh_err_prefix(err, "%s: ", path);
    return st;
}

/* A rule whose domain or product does not exist yet waits for the next start (a new node
 * gets its domains through the API after it started); anything else wrong fails the start. */
static mesh_status_t apply_rule_file_or_wait(mesh_node_t *n, const char *path, mesh_err_t *err)
{
    mesh_status_t st = apply_rule_file(n, path, err);
    if (st != MESH_NOT_FOUND)
        return st;
    LOG_WARN("rules", "%s; not applied now (it is at the next start)", err->msg);
    mesh_err_clear(err);
    return MESH_OK;
}

static bool rule_file_name(const char *name)
{
    size_t l = strlen(name);
    return name[0] != '.' && ((l > 5 && strcmp(name + l - 5, ".yaml") == 0) ||
                              (l > 4 && strcmp(name + l - 4, ".yml") == 0) ||
                              (l > 5 && strcmp(name + l - 5, ".json") == 0));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static mesh_status_t apply_rules_file(mesh_node_t *n, mesh_err_t *err)
{
    const char *path = n->opts.rules_file;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return mesh_err_set(err, MESH_NOT_FOUND, "rules_file %s: not found", path);
    if (!S_ISDIR(sb.st_mode))
        return apply_rule_file_or_wait(n, path, err);
    DIR *d = opendir(path);
    if (d == NULL)
        return mesh_err_set(err, MESH_IO, "rules_file %s: cannot read the directory", path);
    char **names = NULL;
    size_t nn = 0, cap = 0;
    struct dirent *e;
    mesh_status_t st = MESH_OK;
    while ((e = readdir(d)) != NULL && st == MESH_OK) {
        if (!rule_file_name(e->d_name))
            continue;
        if (nn == cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = realloc(names, cap * sizeof *nv);
            if (nv == NULL) {
                st = mesh_err_set(err, MESH_NOMEM, "out of memory");
                break;
            }
            names = nv;
        }
        if ((names[nn] = mesh_strdup(e->d_name)) != NULL)
            nn++;
    }
    closedir(d);
    if (nn)
        qsort(names, nn, sizeof *names, cmp_str); /* in name order: a stable start */
    for (size_t i = 0; i < nn && st == MESH_OK; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, names[i]);
        st = apply_rule_file_or_wait(n, p, err);
    }
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    return st;
}

/* ---- the outbox reaper ----
 *
 * When every action of a transition ended, its row leaves the domain's outbox. The delete is a
 * job of the domain's writer, which may be busy for a long time with a large batch (seconds
 * with many rules, see BENCHMARKS.md): the action thread only queues the row here and goes on
 * with the next delivery, and this thread waits for the writers. A row not deleted yet when
 * meshd dies is delivered again at the next start, as for a crash right after the delivery
 * (at least once, docs/rules.md); a clean stop deletes every queued row first. */

typedef struct reap_item {
    struct reap_item *next;
    char domain[MESH_NAME_MAX + 1];
    int64_t outbox_id;
} reap_item_t;

struct node_reaper {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    reap_item_t *head, *tail; /* in order of the ends */
    bool stop;
};

static void outbox_delete(mesh_node_t *n, const char *domain, int64_t outbox_id)
{
    mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, domain);
    mesh_err_t err;
    mesh_err_clear(&err);
    if (sd && mesh_domain_outbox_done(sd->dom, outbox_id, &err) != MESH_OK)
        LOG_WARN("rules", "%s: outbox entry %lld: %s (its actions run again at the next start)",
                 domain, (long long)outbox_id, err.msg);
    mesh_snapshot_put(s);
}

static void *reaper_main(void *arg)
{
    mesh_thread_name("rules-reaper", NULL);
    mesh_node_t *n = arg;
    struct node_reaper *r = n->reaper;
    pthread_mutex_lock(&r->lock);
    for (;;) {
        while (r->head == NULL && !r->stop)
            pthread_cond_wait(&r->cond, &r->lock);
        reap_item_t *list = r->head;
        r->head = r->tail = NULL;
        if (list == NULL) /* stopping, and nothing left */
            break;
        pthread_mutex_unlock(&r->lock);
        while (list) {
            reap_item_t *next = list->next;
            outbox_delete(n, list->domain, list->outbox_id);
            free(list);
            list = next;
        }
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

static mesh_status_t reaper_start(mesh_node_t *n, mesh_err_t *err)
{
    struct node_reaper *r = calloc(1, sizeof *r);
    if (r == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    n->reaper = r;
    if (pthread_create(&r->thread, NULL, reaper_main, n) != 0) {
        n->reaper = NULL;
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->lock);
        free(r);
        return mesh_err_set(err, MESH_INTERNAL, "cannot start the outbox thread");
    }
    return MESH_OK;
}

/* Deletes every queued row, then ends the thread. */
static void reaper_stop(mesh_node_t *n)
{
    struct node_reaper *r = n->reaper;
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    n->reaper = NULL;
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* The actions of a transition ended (on the action thread): its outbox row goes to the
 * reaper, never waited for here. */
static void node_actions_done(void *arg, const mesh_rule_event_t *ev)
{
    mesh_node_t *n = arg;
    if (ev->outbox_id <= 0)
        return;
    struct node_reaper *r = n->reaper;
    reap_item_t *it = r ? calloc(1, sizeof *it) : NULL;
    if (it == NULL) { /* no reaper, or no memory: delete it now */
        outbox_delete(n, ev->domain, ev->outbox_id);
        return;
    }
    snprintf(it->domain, sizeof it->domain, "%s", ev->domain);
    it->outbox_id = ev->outbox_id;
    pthread_mutex_lock(&r->lock);
    if (r->tail)
        r->tail->next = it;
    else
        r->head = it;
    r->tail = it;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

/* MQTT actions publish through the node's MQTT connection (started after the action thread
 * and stopped after it: n->mqtt is read under ev_lock). */
static mesh_status_t node_mqtt_publish(void *arg, const char *topic, const void *payload, size_t n,
                                       int qos, bool retain, int64_t timeout_ns, char *why,
                                       size_t cap)
{
    mesh_node_t *node = arg;
    pthread_mutex_lock(&node->ev_lock);
    mesh_mqtt_t *q = node->mqtt;
    pthread_mutex_unlock(&node->ev_lock);
    if (q == NULL || !mesh_mqtt_enabled(q)) {
        snprintf(why, cap, "no MQTT broker is configured (mqtt_url)");
        return MESH_UNAVAILABLE;
    }
    return mesh_mqtt_publish(q, topic, payload, n, qos, retain, timeout_ns, why, cap);
}

mesh_status_t mesh__node_rules_start(mesh_node_t *n, mesh_err_t *err)
{
    mesh_actions_opts_t ao = {.queue_max = (size_t)n->opts.action_queue,
                              .audit = n->audit,
                              .mask_key = node_mask_key,
                              .mask_arg = n,
                              .done = node_actions_done,
                              .done_arg = n,
                              .mqtt_publish = node_mqtt_publish,
                              .mqtt_arg = n};
    mesh_actions_t *a;
    mesh_status_t st = reaper_start(n, err);
    if (st != MESH_OK)
        return st;
    if ((st = mesh_actions_start(&ao, &a, err)) != MESH_OK) {
        reaper_stop(n);
        return st;
    }
    pthread_mutex_lock(&n->ev_lock);
    n->actions = a;
    mesh_rule_event_t *pending = n->ev_pending;
    n->ev_pending = NULL;
    if (pending) {
        audit_events(n, pending);
        mesh_actions_submit(a, pending);
    }
    pthread_mutex_unlock(&n->ev_lock);
    if (n->opts.rules_file && *n->opts.rules_file)
        return apply_rules_file(n, err);
    return MESH_OK;
}

void mesh__node_rules_tick(mesh_node_t *n)
{
    mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
    int64_t now = mesh_now_ns();
    for (size_t i = 0; i < s->ndoms; i++) {
        mesh_err_t err;
        mesh_err_clear(&err);
        if (mesh_domain_tick(s->doms[i].dom, now, &err) != MESH_OK)
            LOG_WARN("rules", "tick of %s: %s", s->doms[i].meta.name, err.msg);
    }
    mesh_snapshot_put(s);
}

void mesh__node_rules_stop(mesh_node_t *n)
{
    pthread_mutex_lock(&n->ev_lock);
    mesh_actions_t *a = n->actions;
    n->actions = NULL;
    n->ev_closed = true;
    mesh_rule_event_t *pending = n->ev_pending;
    n->ev_pending = NULL;
    pthread_mutex_unlock(&n->ev_lock);
    mesh_actions_stop(a);
    reaper_stop(n); /* after the action thread: no more rows come */
    mesh_rule_event_free(pending);
}
