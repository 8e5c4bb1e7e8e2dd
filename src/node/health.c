/*
 * health.c - built-in health alerts: the tallies other modules feed, the health domain's
 * contract and rules, and the tick that writes the samples (see health.h, decision 0025).
 *
 * The tick runs on the node's event loop (once a second, acting every health_interval). It
 * reads the free-space guard, the mesh registry (one request to NATS, bounded by
 * mesh_timeout), the replication lags reported through mesh_health_set_lag, each product's
 * quality report and the authentication tallies, and writes one batch into the health domain
 * through its log like any client's. Rules evaluate the batch on the domain's writer; alert
 * transitions then take the rules' path (alerts product, audit, outbox, actions).
 */
#include "node/health.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "node/node.h"
#include "rules/engine.h"

/* ---- the tallies ---- */

typedef struct source {
    char addr[64];
    uint32_t ring[MESH_HEALTH_RING]; /* failures per tick; ring[head] is the current tick */
    bool reported;                   /* had failures at the previous tick */
} source_t;

typedef struct lag {
    char domain[64], replica[64];
    double seconds;
} lag_t;

struct mesh_health {
    pthread_mutex_t lock;
    source_t src[MESH_HEALTH_MAX_SOURCES];
    size_t nsrc;
    unsigned head; /* the ring slot of the current tick */
    _Atomic uint64_t auth_total;
    lag_t *lags;
    size_t nlags;
    bool lags_full_logged;
};

const char *const mesh_health_alert_names[] = {"disk-space-low", "node-down",   "replication-lag",
                                               "product-stale",  "quality-low", "auth-failures"};
const size_t mesh_health_nalerts = MESH_ARRAY_LEN(mesh_health_alert_names);

mesh_health_t *mesh_health_new(void)
{
    mesh_health_t *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->lags = calloc(MESH_HEALTH_MAX_LAGS, sizeof *h->lags);
    if (h->lags == NULL) {
        free(h);
        return NULL;
    }
    pthread_mutex_init(&h->lock, NULL);
    return h;
}

void mesh_health_free(mesh_health_t *h)
{
    if (h == NULL)
        return;
    pthread_mutex_destroy(&h->lock);
    free(h->lags);
    free(h);
}

void mesh_health_auth_failure(mesh_health_t *h, const char *addr)
{
    if (h == NULL)
        return;
    atomic_fetch_add(&h->auth_total, 1);
    if (addr == NULL || *addr == '\0')
        addr = "?";
    pthread_mutex_lock(&h->lock);
    source_t *s = NULL;
    for (size_t i = 0; i < h->nsrc && s == NULL; i++)
        if (strcmp(h->src[i].addr, addr) == 0)
            s = &h->src[i];
    if (s == NULL) {
        /* the last slot collects every address beyond the bound */
        if (h->nsrc < MESH_HEALTH_MAX_SOURCES - 1 || h->nsrc == 0) {
            s = &h->src[h->nsrc++];
            memset(s, 0, sizeof *s);
            snprintf(s->addr, sizeof s->addr, "%s", addr);
        } else {
            s = &h->src[MESH_HEALTH_MAX_SOURCES - 1];
            if (h->nsrc < MESH_HEALTH_MAX_SOURCES) {
                h->nsrc = MESH_HEALTH_MAX_SOURCES;
                memset(s, 0, sizeof *s);
            }
            snprintf(s->addr, sizeof s->addr, "other");
        }
    }
    if (s->ring[h->head] < UINT32_MAX)
        s->ring[h->head]++;
    pthread_mutex_unlock(&h->lock);
}

uint64_t mesh_health_auth_failures_total(mesh_health_t *h)
{
    return h ? atomic_load(&h->auth_total) : 0;
}

void mesh_health_auth_tick(mesh_health_t *h, int ticks, mesh_health_source_fn fn, void *arg)
{
    if (h == NULL)
        return;
    if (ticks < 1)
        ticks = 1;
    if (ticks > MESH_HEALTH_RING)
        ticks = MESH_HEALTH_RING;
    pthread_mutex_lock(&h->lock);
    size_t keep = 0;
    for (size_t i = 0; i < h->nsrc; i++) {
        source_t *s = &h->src[i];
        int64_t sum = 0;
        for (int k = 0; k < ticks; k++)
            sum += s->ring[(h->head + MESH_HEALTH_RING - (unsigned)k) % MESH_HEALTH_RING];
        if (sum > 0 || s->reported)
            fn(arg, s->addr, sum);
        s->reported = sum > 0;
        /* a source with nothing left in the whole ring is forgotten */
        bool any = false;
        for (int k = 0; k < MESH_HEALTH_RING && !any; k++)
            any = s->ring[k] != 0;
        if (any || s->reported)
            h->src[keep++] = *s;
    }
    h->nsrc = keep;
    h->head = (h->head + 1) % MESH_HEALTH_RING;
    for (size_t i = 0; i < h->nsrc; i++)
        h->src[i].ring[h->head] = 0;
    pthread_mutex_unlock(&h->lock);
}

void mesh_health_set_lag(mesh_health_t *h, const char *domain, const char *replica, double seconds)
{
    if (h == NULL || domain == NULL || replica == NULL)
        return;
    if (!(seconds >= 0)) /* NaN and negative (clock skew) read as caught up */
        seconds = 0;
    pthread_mutex_lock(&h->lock);
    lag_t *l = NULL;
    for (size_t i = 0; i < h->nlags && l == NULL; i++)
        if (strcmp(h->lags[i].domain, domain) == 0 && strcmp(h->lags[i].replica, replica) == 0)
            l = &h->lags[i];
    if (l == NULL && h->nlags < MESH_HEALTH_MAX_LAGS) {
        l = &h->lags[h->nlags++];
        snprintf(l->domain, sizeof l->domain, "%s", domain);
        snprintf(l->replica, sizeof l->replica, "%s", replica);
    }
    if (l)
        l->seconds = seconds;
    else if (!h->lags_full_logged) {
        h->lags_full_logged = true;
        LOG_WARN("health", "more than %d replicas report lag: further ones are not watched",
                 MESH_HEALTH_MAX_LAGS);
    }
    pthread_mutex_unlock(&h->lock);
}

void mesh_health_lags(mesh_health_t *h, mesh_health_lag_fn fn, void *arg)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->nlags; i++)
        fn(arg, h->lags[i].domain, h->lags[i].replica, h->lags[i].seconds);
    pthread_mutex_unlock(&h->lock);
}

/* ---- alert lists (health_webhook_alerts, health_mqtt_alerts) ---- */

static bool alert_known(const char *s, size_t n)
{
    for (size_t i = 0; i < mesh_health_nalerts; i++)
        if (strlen(mesh_health_alert_names[i]) == n &&
            memcmp(mesh_health_alert_names[i], s, n) == 0)
            return true;
    return false;
}

/* Calls fn for each trimmed, non-empty item of a comma-separated list; stops at false. */
static bool list_each(const char *list, bool (*fn)(void *, const char *, size_t), void *arg)
{
    const char *p = list ? list : "";
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *s = p;
        while (n && (*s == ' ' || *s == '\t'))
            s++, n--;
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (n && !fn(arg, s, n))
            return false;
        p += e ? (size_t)(e - p) + 1 : strlen(p);
    }
    return true;
}

typedef struct list_chk {
    char *bad;
    size_t cap;
} list_chk_t;

static bool check_item(void *arg, const char *s, size_t n)
{
    list_chk_t *c = arg;
    if ((n == 3 && memcmp(s, "all", 3) == 0) || (n == 4 && memcmp(s, "none", 4) == 0) ||
        alert_known(s, n))
        return true;
    snprintf(c->bad, c->cap, "%.*s", (int)(n > 64 ? 64 : n), s);
    return false;
}

bool mesh_health_list_ok(const char *list, char *bad, size_t cap)
{
    list_chk_t c = {bad, cap};
    return list_each(list, check_item, &c);
}

typedef struct list_has {
    const char *name;
    bool found;
} list_has_t;

static bool has_item(void *arg, const char *s, size_t n)
{
    list_has_t *c = arg;
    if ((n == 3 && memcmp(s, "all", 3) == 0) ||
        (strlen(c->name) == n && memcmp(c->name, s, n) == 0))
        c->found = true;
    return !c->found;
}

bool mesh_health_list_has(const char *list, const char *name)
{
    list_has_t c = {name, false};
    list_each(list, has_item, &c);
    return c.found;
}

/* ---- the contract ---- */

char *mesh_health_contract(const char *domain)
{
    mesh_buf_t b;
    mesh_buf_init(&b, 64 * 1024);
    mesh_status_t st = mesh_buf_printf(
        &b,
        "apiVersion: v3.1.0\n"
        "kind: DataContract\n"
        "id: urn:meshd:contract:%s:health\n"
        "name: health\n"
        "version: 1.0.0\n"
        "status: active\n"
        "domain: %s\n"
        "tags: [meshd, health]\n"
        "description:\n"
        "  purpose: Health samples the node writes every health_interval; the built-in health "
        "alerts are rules over them (docs/operations.md).\n"
        "schema:\n"
        "  - name: disk\n"
        "    description: Free space of the file system holding the data directory.\n"
        "    customProperties: [{property: timeColumn, value: time}]\n"
        "    properties:\n"
        "      - {name: node, logicalType: string, required: true, primaryKey: true, "
        "primaryKeyPosition: 1}\n"
        "      - {name: time, logicalType: timestamp, required: true, primaryKey: true, "
        "primaryKeyPosition: 2}\n"
        "      - {name: free_bytes, logicalType: integer}\n"
        "      - {name: total_bytes, logicalType: integer}\n"
        "      - {name: min_free_bytes, logicalType: integer, description: the min_free_space "
        "reserve}\n"
        "  - name: nodes\n"
        "    description: Other nodes of the mesh registry and the seconds since their last "
        "heartbeat (0 for a node that stopped cleanly).\n"
        "    customProperties: [{property: timeColumn, value: time}]\n"
        "    properties:\n"
        "      - {name: node, logicalType: string, required: true, primaryKey: true, "
        "primaryKeyPosition: 1}\n"
        "      - {name: time, logicalType: timestamp, required: true, primaryKey: true, "
        "primaryKeyPosition: 2}\n"
        "      - {name: silent_s, logicalType: number}\n"
        "      - {name: state, logicalType: string}\n"
        "  - name: replication\n"
        "    description: How far each replica of a domain is behind its stream, in seconds.\n"
        "    customProperties: [{property: timeColumn, value: time}]\n"
        "    properties:\n"
        "      - {name: domain, logicalType: string, required: true, primaryKey: true, "
        "primaryKeyPosition: 1}\n"
        "      - {name: replica, logicalType: string, required: true, primaryKey: true, "
        "primaryKeyPosition: 2}\n"
        "      - {name: time, logicalType: timestamp, required: true, primaryKey: true, "
        "primaryKeyPosition: 3}\n"
        "      - {name: lag_s, logicalType: number}\n"
        "  - name: products\n"
        "    description: Freshness (1 when the newest row is within the contract's SLA, else 0) "
        "and quality score (0-100) of every product of the node.\n"
        "    customProperties: [{property: timeColumn, value: time}]\n"
        "    properties:\n"
        "      - {name: domain, logicalType: string, required: true, primaryKey: true, "
        "primaryKeyPosition: 1}\n"
        "      - {name: product, logicalType: string, required: true, primaryKey: true, "
        "primaryKeyPosition: 2}\n"
        "      - {name: time, logicalType: timestamp, required: true, primaryKey: true, "
        "primaryKeyPosition: 3}\n"
        "      - {name: fresh, logicalType: integer}\n"
        "      - {name: score, logicalType: number}\n"
        "      - {name: age_s, logicalType: number}\n"
        "  - name: auth\n"
        "    description: Refused tokens and logins per client address within "
        "health_auth_window.\n"
        "    customProperties: [{property: timeColumn, value: time}]\n"
        "    properties:\n"
        "      - {name: source, logicalType: string, required: true, primaryKey: true, "
        "primaryKeyPosition: 1, classification: internal}\n"
        "      - {name: time, logicalType: timestamp, required: true, primaryKey: true, "
        "primaryKeyPosition: 2}\n"
        "      - {name: failures, logicalType: integer}\n",
        domain, domain);
    if (st != MESH_OK) {
        mesh_buf_free(&b);
        return NULL;
    }
    return b.data; /* the buffer's memory is the caller's */
}

/* ---- the node's side ---- */

typedef struct alert_def {
    const char *name, *product, *column, *severity, *description;
    bool above;
} alert_def_t;

/* In the order of mesh_health_alert_names. */
static const alert_def_t defs[] = {
    {"disk-space-low", "disk", "free_bytes", "warning",
     "free space of the data disk below health_disk_low (writes are refused below "
     "min_free_space)",
     false},
    {"node-down", "nodes", "silent_s", "critical",
     "a node of the mesh registry sent no heartbeat for health_node_down", true},
    {"replication-lag", "replication", "lag_s", "warning",
     "a replica is more than health_replication_lag behind its domain's stream", true},
    {"product-stale", "products", "fresh", "warning",
     "a product's newest row is older than its contract's freshness SLA", false},
    {"quality-low", "products", "score", "warning",
     "a product's quality score is below health_quality_min", false},
    {"auth-failures", "auth", "failures", "warning",
     "more than health_auth_failures refused tokens or logins from one address within "
     "health_auth_window",
     true},
};

/* The limit of alert i from the options; false when the alert is off. */
static bool alert_limit(const mesh_node_opts_t *o, size_t i, double *limit)
{
    switch (i) {
    case 0:
        *limit = (double)o->health_disk_low;
        return o->health_disk_low > 0;
    case 1:
        *limit = (double)o->health_node_down / 1e9;
        return o->health_node_down > 0;
    case 2:
        *limit = (double)o->health_replication_lag / 1e9;
        return o->health_replication_lag > 0;
    case 3:
        *limit = 0.5; /* fresh is 0 or 1 */
        return o->health_freshness;
    case 4:
        *limit = (double)o->health_quality_min;
        return o->health_quality_min > 0;
    default:
        *limit = (double)o->health_auth_failures;
        return o->health_auth_failures > 0;
    }
}

/* The rule of alert i as JSON text (malloc'd), with the configured actions. */
static char *rule_text(mesh_node_t *n, size_t i, double limit, const char *secret)
{
    const alert_def_t *d = &defs[i];
    const mesh_node_opts_t *o = &n->opts;
    json_t *r = json_object();
    json_object_set_new(r, "name", json_string(d->name));
    json_object_set_new(r, "domain", json_string(o->health_domain));
    json_object_set_new(r, "product", json_string(d->product));
    json_object_set_new(r, "description", json_string(d->description));
    json_object_set_new(r, "kind", json_string("threshold"));
    json_object_set_new(r, "column", json_string(d->column));
    json_object_set_new(r, d->above ? "above" : "below", json_real(limit));
    json_object_set_new(r, "severity", json_string(d->severity));
    json_t *acts = json_array();
    if (o->health_webhook_url && *o->health_webhook_url &&
        mesh_health_list_has(o->health_webhook_alerts, d->name)) {
        json_t *a = json_object();
        json_object_set_new(a, "type", json_string("webhook"));
        json_object_set_new(a, "url", json_string(o->health_webhook_url));
        if (secret && *secret)
            json_object_set_new(a, "secret", json_string(secret));
        if (o->health_webhook_ca_file && *o->health_webhook_ca_file)
            json_object_set_new(a, "ca_file", json_string(o->health_webhook_ca_file));
        json_array_append_new(acts, a);
    }
    if (o->health_mqtt_topic && *o->health_mqtt_topic &&
        mesh_health_list_has(o->health_mqtt_alerts, d->name)) {
        json_t *a = json_object();
        json_object_set_new(a, "type", json_string("mqtt"));
        json_object_set_new(a, "topic", json_string(o->health_mqtt_topic));
        json_array_append_new(acts, a);
    }
    if (json_array_size(acts))
        json_object_set_new(r, "actions", acts);
    else
        json_decref(acts);
    char *s = json_dumps(r, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(r);
    return s;
}

static void audit_rule(mesh_node_t *n, mesh_audit_action_t act, const char *rule, mesh_status_t st)
{
    mesh_audit_rec_t rec = {.action = act,
                            .principal = "meshd",
                            .domain = n->opts.health_domain,
                            .status = mesh_status_http(st),
                            .details = "{\"source\":\"health\"}"};
    (void)rule;
    mesh_audit_record(n->audit, &rec);
}

/* Puts, replaces or deletes the built-in rules of the health domain to match the options. */
static mesh_status_t sync_rules(mesh_node_t *n, mesh_domain_t *dom, const char *secret,
                                mesh_err_t *err)
{
    mesh_rule_info_t *list = NULL;
    size_t nl = 0;
    mesh_status_t st = mesh_domain_rules(dom, &list, &nl);
    if (st != MESH_OK)
        return mesh_err_set(err, st, "health: cannot list the rules of %s", n->opts.health_domain);
    for (size_t i = 0; i < MESH_ARRAY_LEN(defs) && st == MESH_OK; i++) {
        const mesh_rule_t *old = NULL;
        for (size_t k = 0; k < nl; k++)
            if (strcmp(list[k].rule->name, defs[i].name) == 0)
                old = list[k].rule;
        double limit;
        if (!alert_limit(&n->opts, i, &limit)) {
            if (old == NULL)
                continue;
            st = mesh_domain_delete_rule(dom, defs[i].name, err);
            audit_rule(n, MESH_AUDIT_ADMIN_RULE_DELETE, defs[i].name, st);
            if (st == MESH_OK)
                LOG_INFO("health", "alert %s is off: its rule was deleted", defs[i].name);
            continue;
        }
        char *text = rule_text(n, i, limit, secret);
        if (text == NULL) {
            st = mesh_err_set(err, MESH_NOMEM, "out of memory");
            break;
        }
        if (old == NULL || strcmp(old->text, text) != 0) {
            st = mesh_domain_put_rule(dom, text, strlen(text), err);
            audit_rule(n, MESH_AUDIT_ADMIN_RULE_PUT, defs[i].name, st);
            if (st == MESH_OK)
                LOG_INFO("health", "alert %s: rule %s in domain %s", defs[i].name,
                         old ? "updated" : "created", n->opts.health_domain);
        }
        free(text);
    }
    for (size_t k = 0; k < nl; k++)
        mesh_rule_put(list[k].rule);
    free(list);
    if (st != MESH_OK)
        mesh_err_prefix(err, "health alert rules: ");
    return st;
}

static mesh_status_t read_secret(const char *path, char **out, mesh_err_t *err)
{
    *out = NULL;
    if (path == NULL || *path == '\0')
        return MESH_OK;
    size_t len = 0;
    mesh_status_t st = mesh_read_file(path, 4096, out, &len, err);
    if (st != MESH_OK) {
        mesh_err_prefix(err, "health_webhook_secret_file: ");
        return st;
    }
    (*out)[strcspn(*out, "\r\n")] = '\0';
    if (**out == '\0') {
        free(*out);
        *out = NULL;
        return mesh_err_set(err, MESH_INVALID, "health_webhook_secret_file %s: empty first line",
                            path);
    }
    return MESH_OK;
}

mesh_status_t mesh__node_health_start(mesh_node_t *n, mesh_err_t *err)
{
    const mesh_node_opts_t *o = &n->opts;
    char bad[80];
    if (!mesh_health_list_ok(o->health_webhook_alerts, bad, sizeof bad))
        return mesh_err_set(err, MESH_INVALID, "health_webhook_alerts: unknown alert '%s'", bad);
    if (!mesh_health_list_ok(o->health_mqtt_alerts, bad, sizeof bad))
        return mesh_err_set(err, MESH_INVALID, "health_mqtt_alerts: unknown alert '%s'", bad);
    if (o->health_domain == NULL || *o->health_domain == '\0')
        return MESH_OK;
    if (o->health_disk_low > 0 && o->health_disk_low <= o->min_free_space)
        LOG_WARN("health",
                 "health_disk_low (%lld bytes) is not above min_free_space (%lld): "
                 "disk-space-low can only fire once writes are refused",
                 (long long)o->health_disk_low, (long long)o->min_free_space);
    mesh_status_t st;
    mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
    bool exists = mesh_snapshot_domain(s, o->health_domain) != NULL;
    mesh_snapshot_put(s);
    if (!exists) {
        mesh_domain_meta_t m;
        memset(&m, 0, sizeof m);
        snprintf(m.name, sizeof m.name, "%s", o->health_domain);
        m.description = "Health samples and built-in health alerts of this node (meshd)";
        m.created_ns = mesh_now_ns();
        st = mesh_registry_create_domain(n->reg, &m, err);
        mesh_audit_rec_t rec = {.action = MESH_AUDIT_ADMIN_DOMAIN_CREATE,
                                .principal = "meshd",
                                .domain = o->health_domain,
                                .status = mesh_status_http(st),
                                .details = "{\"source\":\"health\"}"};
        mesh_audit_record(n->audit, &rec);
        if (st != MESH_OK) {
            mesh_err_prefix(err, "health_domain: ");
            return st;
        }
        LOG_INFO("health", "created the health domain %s", o->health_domain);
    }
    char *yaml = mesh_health_contract(o->health_domain);
    if (yaml == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    s = mesh_registry_snapshot(n->reg);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, o->health_domain);
    mesh_contract_result_t res;
    memset(&res, 0, sizeof res);
    st = sd ? mesh_domain_put_contract(sd->dom, yaml, strlen(yaml), &res, err)
            : mesh_err_set(err, MESH_NOT_FOUND, "no domain %s", o->health_domain);
    mesh_buf_free(&res.changes);
    free(yaml);
    mesh_snapshot_put(s);
    if (st != MESH_OK) {
        mesh_err_prefix(err, "health_domain %s: the health contract: ", o->health_domain);
        return st;
    }
    char *secret = NULL;
    if ((st = read_secret(o->health_webhook_secret_file, &secret, err)) != MESH_OK)
        return st;
    s = mesh_registry_snapshot(n->reg);
    sd = mesh_snapshot_domain(s, o->health_domain);
    st = sd ? sync_rules(n, sd->dom, secret, err)
            : mesh_err_set(err, MESH_NOT_FOUND, "no domain %s", o->health_domain);
    mesh_snapshot_put(s);
    free(secret);
    n->health_next_ns = mesh_now_ns(); /* the first samples at the first tick */
    return st;
}

/* ---- the samples ---- */

typedef struct sampler {
    mesh_node_t *n;
    mesh_snapshot_t *snap;
    mesh_batch_t b;
    int64_t now;
    uint32_t rows;
    const mesh_product_t *p; /* the product of the row being built */
} sampler_t;

static bool row_begin(sampler_t *x, const char *product)
{
    x->p = mesh_snapshot_product(x->snap, x->n->opts.health_domain, product);
    if (x->p == NULL || mesh_batch_row_begin(&x->b, x->p, ++x->rows) != MESH_OK)
        return false;
    int c = mesh_product_col(x->p, "time", 4);
    if (c >= 0)
        mesh_batch_set_int(&x->b, c, x->now);
    return true;
}

static void put_text(sampler_t *x, const char *col, const char *v)
{
    int c = mesh_product_col(x->p, col, strlen(col));
    if (c >= 0 && v)
        mesh_batch_set_text(&x->b, c, v, strlen(v));
}

static void put_int(sampler_t *x, const char *col, int64_t v)
{
    int c = mesh_product_col(x->p, col, strlen(col));
    if (c >= 0)
        mesh_batch_set_int(&x->b, c, v);
}

static void put_real(sampler_t *x, const char *col, double v)
{
    int c = mesh_product_col(x->p, col, strlen(col));
    if (c >= 0)
        mesh_batch_set_real(&x->b, c, v);
}

static void row_end(sampler_t *x)
{
    mesh_batch_row_end(&x->b, "", 0);
}

static void sample_disk(sampler_t *x)
{
    mesh_space_stats_t ss;
    mesh_space_stats(x->n->space, &ss);
    if (ss.free_bytes < 0 || !row_begin(x, "disk"))
        return;
    put_text(x, "node", x->n->opts.node_name);
    put_int(x, "free_bytes", ss.free_bytes);
    put_int(x, "total_bytes", ss.total_bytes);
    put_int(x, "min_free_bytes", ss.min_free);
    row_end(x);
}

static void sample_nodes(sampler_t *x)
{
    if (x->n->mesh == NULL)
        return;
    mesh_mesh_node_t *v = NULL;
    size_t nv = 0;
    mesh_err_t err;
    mesh_err_clear(&err);
    if (mesh_mesh_list(x->n->mesh, &v, &nv, &err) != MESH_OK) {
        /* not connected: this node cannot judge the others (meshd_mesh_connected says so) */
        LOG_DEBUG("health", "node-down not sampled: %s", err.msg);
        return;
    }
    for (size_t i = 0; i < nv; i++) {
        const mesh_entry_t *e = v[i].e;
        if (strcmp(e->name, x->n->opts.node_name) == 0 || !row_begin(x, "nodes"))
            continue;
        double silent = 0;
        if (!e->stopped && v[i].written_ns > 0 && x->now > v[i].written_ns)
            silent = (double)(x->now - v[i].written_ns) / 1e9;
        put_text(x, "node", e->name);
        put_real(x, "silent_s", silent);
        put_text(x, "state", e->stopped ? "stopped" : v[i].alive ? "running" : "silent");
        row_end(x);
    }
    mesh_mesh_list_free(v, nv);
}

static void lag_row(void *arg, const char *domain, const char *replica, double seconds)
{
    sampler_t *x = arg;
    if (!row_begin(x, "replication"))
        return;
    put_text(x, "domain", domain);
    put_text(x, "replica", replica);
    put_real(x, "lag_s", seconds);
    row_end(x);
}

static void sample_products(sampler_t *x)
{
    for (size_t i = 0; i < x->snap->ndoms; i++) {
        const mesh_snap_domain_t *sd = &x->snap->doms[i];
        if (strcmp(sd->meta.name, x->n->opts.health_domain) == 0)
            continue;
        for (size_t k = 0; k < sd->ncrefs; k++) {
            const mesh_contract_t *c = sd->crefs[k]->c;
            for (size_t j = 0; j < c->nproducts; j++) {
                const mesh_product_t *p = &c->products[j];
                if (strcmp(p->name, MESH_ALERTS_PRODUCT) == 0 ||
                    strcmp(p->name, MESH_ALERT_EVENTS_PRODUCT) == 0)
                    continue;
                json_t *rep = mesh_quality_report(x->n->quality, sd, p);
                if (rep == NULL)
                    continue;
                json_t *score = json_object_get(rep, "score");
                json_t *f = json_object_get(rep, "freshness");
                json_t *age = json_object_get(f, "age_s");
                bool sla = p->sla_latency_ns > 0 || p->sla_frequency_ns > 0;
                /* a product never written is not stale yet: it has no data to be late */
                bool fresh_known = sla && json_is_number(age);
                if ((json_is_number(score) || fresh_known) && row_begin(x, "products")) {
                    put_text(x, "domain", sd->meta.name);
                    put_text(x, "product", p->name);
                    if (fresh_known) {
                        json_t *lo = json_object_get(f, "latency_ok");
                        json_t *fo = json_object_get(f, "frequency_ok");
                        bool ok = !json_is_false(lo) && !json_is_false(fo);
                        put_int(x, "fresh", ok ? 1 : 0);
                    }
                    if (json_is_number(score))
                        put_real(x, "score", json_number_value(score));
                    if (json_is_number(age))
                        put_real(x, "age_s", json_number_value(age));
                    row_end(x);
                }
                json_decref(rep);
            }
        }
    }
}

static void auth_row(void *arg, const char *source, int64_t count)
{
    sampler_t *x = arg;
    if (!row_begin(x, "auth"))
        return;
    put_text(x, "source", source);
    put_int(x, "failures", count);
    row_end(x);
}

void mesh__node_health_tick(mesh_node_t *n)
{
    const mesh_node_opts_t *o = &n->opts;
    if (o->health_domain == NULL || *o->health_domain == '\0')
        return;
    int64_t now = mesh_now_ns();
    if (now < n->health_next_ns)
        return;
    n->health_next_ns = now + o->health_interval;
    sampler_t x = {.n = n, .snap = mesh_registry_snapshot(n->reg), .now = now};
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(x.snap, o->health_domain);
    if (sd == NULL) { /* deleted by an administrator: nothing to write to until a restart */
        mesh_snapshot_put(x.snap);
        return;
    }
    mesh_batch_init(&x.b, o->health_domain, MESH_BATCH_DEFAULT_LIMITS);
    x.b.received_ns = now;
    sample_disk(&x);
    sample_nodes(&x);
    mesh__node_repl_health(n); /* each replica's lag, as the streams' consumers say */
    mesh_health_lags(n->health, lag_row, &x);
    sample_products(&x);
    int64_t ticks = o->health_auth_window / (o->health_interval ? o->health_interval : 1);
    mesh_health_auth_tick(n->health, (int)(ticks > MESH_HEALTH_RING ? MESH_HEALTH_RING : ticks),
                          auth_row, &x);
    mesh_err_t err;
    mesh_err_clear(&err);
    if (mesh_batch_failed(&x.b)) {
        LOG_WARN("health", "health samples refused by the health contract: %s",
                 x.b.nerrors ? x.b.errors[0].reason : "?");
    } else if (x.rows > 0) {
        mesh_apply_result_t res;
        mesh_status_t st = mesh_domain_write(sd->dom, &x.b, NULL, &res, &err);
        if (st != MESH_OK)
            LOG_WARN("health", "health samples not written: %s", err.msg);
    }
    mesh_batch_free(&x.b);
    mesh_snapshot_put(x.snap);
}
