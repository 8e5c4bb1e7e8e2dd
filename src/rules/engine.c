/*
 * engine.c - a domain's rules on its writer: series states, alert rows, events.
 *
 * Layout: one entry per rule, each with its series (key JSON text -> state) in an array and
 * an open-addressing hash of indexes. States live in memory; a state a record changed is
 * marked dirty and written to the store only by mesh_rules_persist (the domain's checkpoints,
 * and records other than plain batches and ticks), so the ingest path costs O(rows) and no
 * store write per series (decision 0028). Alert rows and outbox rows are still written in
 * the record's transaction.
 *
 * Replaying (mesh_rules_replay_begin/end): the domain re-evaluates logged records whose
 * transitions are committed already, to rebuild the states after the persisted position.
 * The same code runs, but nothing is written and no event is queued; alert numbers come
 * from a counter that starts at the number recorded with the persisted states.
 *
 * An engine without a store (dry runs) evaluates the same way and only reports events.
 */
#include "rules/engine.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "query/query.h"

typedef struct sentry {
    char *series;
    uint32_t hash; /* hash_str(series) */
    mesh_rstate_t st;
    bool touched; /* in the current record's touched list */
    bool dirty;   /* changed since it was last written to the store */
    bool value_changed;
} sentry_t;

typedef struct rentry {
    mesh_rule_t *rule;
    sentry_t *v;
    size_t n, cap;
    uint32_t *tab; /* index + 1, 0 empty */
    size_t tcap;
    size_t firing; /* series whose alert fires (under the engine's lock, for readers) */
} rentry_t;

typedef struct touch {
    size_t r, s;
} touch_t;

struct mesh_rules {
    char domain[64];
    mesh_store_t *store;  /* NULL: a dry run */
    pthread_mutex_t lock; /* guards the rules array and the series counts for readers */
    rentry_t *r;
    size_t n, cap;
    touch_t *touched;
    size_t ntouched, captouched;
    mesh_rule_event_t *ev_head, *ev_tail, *ev_mark_tail;
    size_t nev, ev_mark;
    bool dirty_record, dirty_group;
    _Atomic bool has_absence;
    _Atomic int64_t next_due; /* the earliest time an absence alert can fire (INT64_MAX: none) */
    mesh_rule_event_t *recovered; /* the outbox as found at open (events to run again) */
    uint64_t dry_no;              /* alert numbers of a dry run */
    bool replaying;               /* re-evaluating committed records: no writes, no events */
    uint64_t replay_no;           /* the last alert number while replaying */
};

const char *mesh_alert_ev_name(mesh_alert_ev_t e)
{
    static const char *const names[] = {"fired", "acknowledged", "resolved"};
    return (unsigned)e < MESH_ARRAY_LEN(names) ? names[e] : "?";
}

void mesh_rule_event_free(mesh_rule_event_t *e)
{
    while (e) {
        mesh_rule_event_t *next = e->next;
        mesh_rule_put(e->rule);
        free(e->series);
        free(e->row);
        free(e->sensitive);
        free(e);
        e = next;
    }
}

/* ---- series ---- */

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static void rentry_clear(rentry_t *re)
{
    for (size_t i = 0; i < re->n; i++) {
        free(re->v[i].series);
        mesh_rstate_free(&re->v[i].st);
    }
    free(re->v);
    free(re->tab);
    mesh_rule_put(re->rule);
    memset(re, 0, sizeof *re);
}

static mesh_status_t rehash(rentry_t *re, size_t tcap)
{
    uint32_t *t = calloc(tcap, sizeof *t);
    if (t == NULL)
        return MESH_NOMEM;
    for (size_t i = 0; i < re->n; i++) {
        size_t slot = re->v[i].hash & (tcap - 1);
        while (t[slot])
            slot = (slot + 1) & (tcap - 1);
        t[slot] = (uint32_t)i + 1;
    }
    free(re->tab);
    re->tab = t;
    re->tcap = tcap;
    return MESH_OK;
}

/* The series' index, or -1 when absent; h is hash_str(key) (computed once for all rules). */
static long series_find(const rentry_t *re, const char *key, uint32_t h)
{
    if (re->tcap == 0)
        return -1;
    size_t slot = h & (re->tcap - 1);
    while (re->tab[slot]) {
        size_t i = re->tab[slot] - 1;
        if (re->v[i].hash == h && strcmp(re->v[i].series, key) == 0)
            return (long)i;
        slot = (slot + 1) & (re->tcap - 1);
    }
    return -1;
}

/* Adds a series (key copied, state moved in); its index in *idx. */
static mesh_status_t series_add(mesh_rules_t *e, rentry_t *re, const char *key, mesh_rstate_t *st,
                                size_t *idx)
{
    if (re->n >= MESH_RULE_MAX_SERIES)
        return MESH_LIMIT;
    char *k = mesh_strdup(key);
    if (k == NULL)
        return MESH_NOMEM;
    pthread_mutex_lock(&e->lock);
    mesh_status_t rc = MESH_OK;
    if (re->n == re->cap) {
        size_t ncap = re->cap ? re->cap * 2 : 16;
        sentry_t *nv = realloc(re->v, ncap * sizeof *nv);
        if (nv == NULL)
            rc = MESH_NOMEM;
        else {
            re->v = nv;
            re->cap = ncap;
        }
    }
    if (rc == MESH_OK && 2 * (re->n + 1) > re->tcap)
        rc = rehash(re, re->tcap ? re->tcap * 2 : 32);
    if (rc != MESH_OK) {
        pthread_mutex_unlock(&e->lock);
        free(k);
        return rc;
    }
    sentry_t *s = &re->v[re->n];
    memset(s, 0, sizeof *s);
    s->series = k;
    s->hash = hash_str(key);
    s->st = *st;
    memset(st, 0, sizeof *st);
    size_t slot = s->hash & (re->tcap - 1);
    while (re->tab[slot])
        slot = (slot + 1) & (re->tcap - 1);
    re->tab[slot] = (uint32_t)re->n + 1;
    *idx = re->n++;
    pthread_mutex_unlock(&e->lock);
    return MESH_OK;
}

/* ---- open / close / reload ---- */

static void clear_rules(mesh_rules_t *e)
{
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < e->n; i++)
        rentry_clear(&e->r[i]);
    e->n = 0;
    pthread_mutex_unlock(&e->lock);
    e->ntouched = 0;
}

/* Recomputes when the next absence alert can fire: a tick before that changes nothing. */
static void update_due(mesh_rules_t *e)
{
    int64_t due = INT64_MAX;
    for (size_t i = 0; i < e->n; i++) {
        const rentry_t *re = &e->r[i];
        if (re->rule->kind != MESH_RULE_ABSENCE)
            continue;
        for (size_t k = 0; k < re->n; k++) {
            const mesh_rstate_t *st = &re->v[k].st;
            if (st->phase == MESH_RPHASE_FIRING || st->last_t == 0 || st->latched)
                continue;
            int64_t d = st->last_t > INT64_MAX - re->rule->after_ns
                            ? INT64_MAX
                            : st->last_t + re->rule->after_ns;
            if (d < due)
                due = d;
        }
    }
    atomic_store(&e->next_due, due);
}

static void update_flags(mesh_rules_t *e)
{
    bool abs = false;
    for (size_t i = 0; i < e->n; i++)
        abs |= e->r[i].rule->kind == MESH_RULE_ABSENCE;
    atomic_store(&e->has_absence, abs);
    update_due(e);
}

/* Inserts (or replaces) a rule entry, sorted by name; takes r's reference. */
static mesh_status_t rules_insert(mesh_rules_t *e, mesh_rule_t *r, size_t *idx)
{
    pthread_mutex_lock(&e->lock);
    size_t i = 0;
    while (i < e->n && strcmp(e->r[i].rule->name, r->name) < 0)
        i++;
    if (i < e->n && strcmp(e->r[i].rule->name, r->name) == 0) {
        mesh_rule_put(e->r[i].rule);
        e->r[i].rule = r;
        *idx = i;
        pthread_mutex_unlock(&e->lock);
        return MESH_OK;
    }
    if (e->n == e->cap) {
        size_t ncap = e->cap ? e->cap * 2 : 8;
        rentry_t *nr = realloc(e->r, ncap * sizeof *nr);
        if (nr == NULL) {
            pthread_mutex_unlock(&e->lock);
            return MESH_NOMEM;
        }
        e->r = nr;
        e->cap = ncap;
    }
    memmove(&e->r[i + 1], &e->r[i], (e->n - i) * sizeof *e->r);
    memset(&e->r[i], 0, sizeof e->r[i]);
    e->r[i].rule = r;
    e->n++;
    *idx = i;
    pthread_mutex_unlock(&e->lock);
    return MESH_OK;
}

typedef struct load_ctx {
    mesh_rules_t *e;
    rentry_t *re;
    mesh_err_t *err;
} load_ctx_t;

static mesh_status_t load_state(void *arg, const char *series, const uint8_t *p, size_t n)
{
    load_ctx_t *c = arg;
    mesh_rstate_t st;
    mesh_status_t rc = mesh_rstate_decode(p, n, &st);
    if (rc != MESH_OK) {
        LOG_WARN("rules", "%s: rule %s: the state of series %s is damaged; it starts afresh",
                 c->e->domain, c->re->rule->name, series);
        return MESH_OK;
    }
    size_t idx;
    bool firing = st.phase == MESH_RPHASE_FIRING;
    rc = series_add(c->e, c->re, series, &st, &idx);
    mesh_rstate_free(&st);
    if (rc == MESH_OK && firing)
        c->re->firing++;
    if (rc == MESH_LIMIT)
        return MESH_OK;
    return rc == MESH_OK ? MESH_OK : mesh_err_set(c->err, rc, "out of memory");
}

static mesh_status_t load_rule(void *arg, const char *name, const uint8_t *p, size_t n)
{
    load_ctx_t *c = arg;
    mesh_rule_t *r;
    mesh_err_t e2;
    if (mesh_rule_parse((const char *)p, n, &r, &e2) != MESH_OK) {
        LOG_ERROR("rules", "%s: stored rule %s no longer parses: %s", c->e->domain, name, e2.msg);
        return MESH_OK; /* the others still run */
    }
    size_t idx;
    mesh_status_t st = rules_insert(c->e, r, &idx);
    if (st != MESH_OK) {
        mesh_rule_put(r);
        return mesh_err_set(c->err, st, "out of memory");
    }
    load_ctx_t lc = {.e = c->e, .re = &c->e->r[idx], .err = c->err};
    return mesh_store_rstates_load(c->e->store, name, load_state, &lc, c->err);
}

static mesh_status_t reload(mesh_rules_t *e, mesh_err_t *err)
{
    e->replaying = false;
    clear_rules(e);
    load_ctx_t c = {.e = e, .err = err};
    mesh_status_t st = mesh_store_rules_load(e->store, load_rule, &c, err);
    update_flags(e);
    e->dirty_record = e->dirty_group = false;
    return st;
}

static mesh_rules_t *engine_new(const char *domain, mesh_store_t *s)
{
    mesh_rules_t *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    snprintf(e->domain, sizeof e->domain, "%s", domain);
    e->store = s;
    pthread_mutex_init(&e->lock, NULL);
    return e;
}

static mesh_status_t load_outbox(void *arg, int64_t id, const char *rule, size_t rn,
                                 const char *event, size_t en);

mesh_status_t mesh_rules_open(mesh_store_t *s, const char *domain, mesh_rules_t **out,
                              mesh_err_t *err)
{
    mesh_rules_t *e = engine_new(domain, s);
    if (e == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    mesh_status_t st = reload(e, err);
    if (st == MESH_OK)
        st = mesh_store_outbox_load(s, load_outbox, e, err);
    if (st != MESH_OK) {
        mesh_rules_close(e);
        return st;
    }
    *out = e;
    return MESH_OK;
}

void mesh_rules_close(mesh_rules_t *e)
{
    if (e == NULL)
        return;
    clear_rules(e);
    free(e->r);
    free(e->touched);
    mesh_rule_event_free(e->ev_head);
    mesh_rule_event_free(e->recovered);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

/* ---- records ---- */

void mesh_rules_record_begin(mesh_rules_t *e)
{
    e->ev_mark = e->nev;
    e->ev_mark_tail = e->ev_tail;
    e->dirty_record = false;
    e->ntouched = 0;
}

static void drop_events_after(mesh_rules_t *e, mesh_rule_event_t *tail, size_t n)
{
    mesh_rule_event_t *rest = tail ? tail->next : e->ev_head;
    if (tail)
        tail->next = NULL;
    else
        e->ev_head = NULL;
    e->ev_tail = tail;
    e->nev = n;
    mesh_rule_event_free(rest);
}

mesh_status_t mesh_rules_rollback(mesh_rules_t *e, bool *reloaded, mesh_err_t *err)
{
    drop_events_after(e, e->ev_mark_tail, e->ev_mark);
    for (size_t i = 0; i < e->ntouched; i++)
        e->r[e->touched[i].r].v[e->touched[i].s].touched = false;
    e->ntouched = 0;
    *reloaded = false;
    if (!e->dirty_record)
        return MESH_OK;
    /* the persisted states; the caller replays the records after their position */
    *reloaded = true;
    mesh_status_t st = reload(e, err);
    e->dirty_group = true;
    return st;
}

mesh_status_t mesh_rules_abort(mesh_rules_t *e, bool *reloaded, mesh_err_t *err)
{
    drop_events_after(e, NULL, 0);
    for (size_t i = 0; i < e->ntouched; i++)
        e->r[e->touched[i].r].v[e->touched[i].s].touched = false;
    e->ntouched = 0;
    *reloaded = false;
    if (!e->dirty_group && !e->dirty_record)
        return MESH_OK;
    *reloaded = true;
    return reload(e, err);
}

mesh_rule_event_t *mesh_rules_take_events(mesh_rules_t *e)
{
    mesh_rule_event_t *h = e->ev_head;
    e->ev_head = e->ev_tail = e->ev_mark_tail = NULL;
    e->nev = e->ev_mark = 0;
    e->dirty_group = e->dirty_record = false;
    return h;
}

static void dirty(mesh_rules_t *e)
{
    e->dirty_record = e->dirty_group = true;
}

/* ---- alert rows ---- */

mesh_status_t mesh_rules_alerts_contract(const char *domain, mesh_buf_t *out)
{
    return mesh_buf_printf(
        out,
        "apiVersion: v3.1.0\n"
        "kind: DataContract\n"
        "id: urn:meshd:contract:%s:alerts\n"
        "name: alerts\n"
        "version: 1.0.0\n"
        "status: active\n"
        "domain: %s\n"
        "tags: [meshd, alerts]\n"
        "description:\n"
        "  purpose: Alerts of the domain's rules, written by meshd (docs/rules.md).\n"
        "schema:\n"
        "  - name: " MESH_ALERTS_PRODUCT "\n"
        "    description: One row per alert, updated as it moves from firing to acknowledged to "
        "resolved.\n"
        "    properties:\n"
        "      - {name: alert_id, logicalType: string, required: true, primaryKey: true, "
        "primaryKeyPosition: 1, description: 'domain:number'}\n"
        "      - {name: rule, logicalType: string}\n"
        "      - {name: product, logicalType: string}\n"
        "      - {name: series, logicalType: string, description: \"the series' key values "
        "(JSON)\", "
        "classification: restricted}\n"
        "      - {name: state, logicalType: string, description: 'firing, "
        "acknowledged or resolved'}\n"
        "      - {name: severity, logicalType: string}\n"
        "      - {name: value, logicalType: number, description: the last value the rule "
        "compared}\n"
        "      - {name: first_value, logicalType: number}\n"
        "      - {name: fired_at, logicalType: timestamp}\n"
        "      - {name: updated_at, logicalType: timestamp}\n"
        "      - {name: acked_at, logicalType: timestamp}\n"
        "      - {name: acked_by, logicalType: string}\n"
        "      - {name: resolved_at, logicalType: timestamp}\n"
        "      - {name: resolved_by, logicalType: string}\n"
        "      - {name: note, logicalType: string}\n"
        "  - name: " MESH_ALERT_EVENTS_PRODUCT "\n"
        "    description: The history of the alerts, one row per transition.\n"
        "    properties:\n"
        "      - {name: time, logicalType: timestamp, required: true}\n"
        "      - {name: alert_id, logicalType: string, required: true}\n"
        "      - {name: rule, logicalType: string}\n"
        "      - {name: event, logicalType: string, required: true, description: 'fired, "
        "acknowledged or resolved'}\n"
        "      - {name: value, logicalType: number}\n"
        "      - {name: by, logicalType: string}\n"
        "      - {name: note, logicalType: string}\n",
        domain, domain);
}

typedef struct alert_row {
    const char *id, *rule, *product, *series, *state, *severity, *event, *by, *note;
    bool has_value, has_first;
    double value, first;
    int64_t fired_at, updated_at, acked_at, resolved_at;
} alert_row_t;

static void set_text(mesh_batch_t *b, const mesh_product_t *p, const char *col, const char *v)
{
    int ci = mesh_product_col(p, col, strlen(col));
    if (ci >= 0 && v)
        mesh_batch_set_text(b, ci, v, strlen(v));
}

static void set_ts(mesh_batch_t *b, const mesh_product_t *p, const char *col, int64_t v)
{
    int ci = mesh_product_col(p, col, strlen(col));
    if (ci >= 0 && v)
        mesh_batch_set_int(b, ci, v);
}

static void set_real(mesh_batch_t *b, const mesh_product_t *p, const char *col, bool has, double v)
{
    int ci = mesh_product_col(p, col, strlen(col));
    if (ci >= 0 && has)
        mesh_batch_set_real(b, ci, v);
}

/* Writes the alert's row (columns left NULL keep their stored value) and a history row. */
static mesh_status_t write_alert(mesh_rules_t *e, uint64_t seq, const alert_row_t *a,
                                 mesh_rules_lookup_fn lookup, void *arg, mesh_err_t *err)
{
    if (e->store == NULL || e->replaying)
        return MESH_OK;
    const mesh_product_t *pa = lookup(arg, MESH_ALERTS_PRODUCT);
    const mesh_product_t *pe = lookup(arg, MESH_ALERT_EVENTS_PRODUCT);
    if (pa == NULL || pe == NULL)
        return MESH_OK; /* dropped by its owner: alerts are then only events */
    mesh_batch_t b;
    mesh_batch_init(&b, e->domain, MESH_BATCH_DEFAULT_LIMITS);
    b.received_ns = a->updated_at;
    mesh_status_t st = mesh_batch_row_begin(&b, pa, 1);
    if (st == MESH_OK) {
        set_text(&b, pa, "alert_id", a->id);
        set_text(&b, pa, "rule", a->rule);
        set_text(&b, pa, "product", a->product);
        set_text(&b, pa, "series", a->series);
        set_text(&b, pa, "state", a->state);
        set_text(&b, pa, "severity", a->severity);
        set_real(&b, pa, "value", a->has_value, a->value);
        set_real(&b, pa, "first_value", a->has_first, a->first);
        set_ts(&b, pa, "fired_at", a->fired_at);
        set_ts(&b, pa, "updated_at", a->updated_at);
        set_ts(&b, pa, "acked_at", a->acked_at);
        set_ts(&b, pa, "resolved_at", a->resolved_at);
        if (a->acked_at)
            set_text(&b, pa, "acked_by", a->by);
        if (a->resolved_at)
            set_text(&b, pa, "resolved_by", a->by);
        set_text(&b, pa, "note", a->note);
        mesh_batch_row_end(&b, "", 0);
    }
    if (st == MESH_OK && a->event && (st = mesh_batch_row_begin(&b, pe, 2)) == MESH_OK) {
        set_ts(&b, pe, "time", a->updated_at);
        set_text(&b, pe, "alert_id", a->id);
        set_text(&b, pe, "rule", a->rule);
        set_text(&b, pe, "event", a->event);
        set_real(&b, pe, "value", a->has_value, a->value);
        set_text(&b, pe, "by", a->by);
        set_text(&b, pe, "note", a->note);
        mesh_batch_row_end(&b, "", 0);
    }
    if (st == MESH_OK && mesh_batch_failed(&b)) {
        /* the alerts products were changed by hand: the rule goes on, the row is lost */
        LOG_WARN("rules", "%s: alert %s: row refused by the alerts contract: %s", e->domain, a->id,
                 b.nerrors ? b.errors[0].reason : "?");
    } else if (st == MESH_OK) {
        mesh_apply_result_t res;
        st = mesh_store_apply_batch(e->store, seq, &b, NULL, &res, err);
    } else {
        mesh_err_set(err, st, "alert row");
    }
    mesh_batch_free(&b);
    return st;
}

static mesh_status_t next_alert_no(mesh_rules_t *e, uint64_t *out, mesh_err_t *err)
{
    if (e->store == NULL) {
        *out = ++e->dry_no;
        return MESH_OK;
    }
    if (e->replaying) {
        *out = ++e->replay_no; /* the number this alert got when the record was applied */
        return MESH_OK;
    }
    int64_t v;
    mesh_status_t st = mesh_store_meta_get(e->store, "alert_seq", &v, err);
    if (st == MESH_OK)
        st = mesh_store_meta_put(e->store, "alert_seq", v + 1, err);
    *out = (uint64_t)v + 1;
    return st;
}

static void alert_id(const mesh_rules_t *e, uint64_t no, char *out, size_t cap)
{
    snprintf(out, cap, "%s:%" PRIu64, e->domain, no);
}

/* ---- values of a batch row ---- */

static void json_value(mesh_buf_t *o, const mesh_batch_t *b, const mesh_value_t *v)
{
    switch ((mesh_vtype_t)v->type) {
    case MESH_V_NULL:
        mesh_buf_adds(o, "null");
        break;
    case MESH_V_INT:
        mesh_buf_printf(o, "%" PRId64, v->u.i);
        break;
    case MESH_V_REAL:
        mesh_buf_add_double(o, v->u.d);
        break;
    case MESH_V_TEXT:
        mesh_buf_add_json_str(o, mesh_batch_text(b, v), v->u.s.len);
        break;
    }
}

/* The series key of row r: a JSON object of the key columns but the time column. */
static mesh_status_t series_key(const mesh_batch_t *b, const mesh_part_t *part, size_t r,
                                mesh_buf_t *o)
{
    const mesh_product_t *p = part->product;
    const mesh_value_t *row = part->vals + r * part->ncols;
    mesh_buf_reset(o);
    mesh_buf_addc(o, '{');
    bool first = true;
    for (size_t k = 0; k < p->nkey; k++) {
        int c = p->key_cols[k];
        if (c == p->time_col)
            continue;
        if (!first)
            mesh_buf_addc(o, ',');
        first = false;
        mesh_buf_add_json_str(o, p->cols[c].name, strlen(p->cols[c].name));
        mesh_buf_addc(o, ':');
        json_value(o, b, &row[c]);
    }
    return mesh_buf_addc(o, '}');
}

static char *row_json(const mesh_batch_t *b, const mesh_part_t *part, size_t r)
{
    const mesh_product_t *p = part->product;
    const mesh_value_t *row = part->vals + r * part->ncols;
    mesh_buf_t o;
    mesh_buf_init(&o, 1 << 20);
    mesh_buf_addc(&o, '{');
    for (size_t c = 0; c < part->ncols; c++) {
        if (c)
            mesh_buf_addc(&o, ',');
        mesh_buf_add_json_str(&o, p->cols[c].name, strlen(p->cols[c].name));
        mesh_buf_addc(&o, ':');
        json_value(&o, b, &row[c]);
    }
    if (mesh_buf_addc(&o, '}') != MESH_OK) {
        mesh_buf_free(&o);
        return NULL;
    }
    return mesh_buf_steal(&o, NULL);
}

static char *sensitive_json(const mesh_product_t *p)
{
    mesh_buf_t o;
    mesh_buf_init(&o, 1 << 20);
    mesh_buf_addc(&o, '[');
    bool first = true;
    for (size_t c = 0; p && c < p->ncols; c++) {
        if (!mesh_rule_col_sensitive(&p->cols[c]))
            continue;
        if (!first)
            mesh_buf_addc(&o, ',');
        first = false;
        mesh_buf_add_json_str(&o, p->cols[c].name, strlen(p->cols[c].name));
    }
    if (mesh_buf_addc(&o, ']') != MESH_OK) {
        mesh_buf_free(&o);
        return NULL;
    }
    return mesh_buf_steal(&o, NULL);
}

/* ---- the outbox ---- */

/* The event as JSON for the outbox (malloc'd), or NULL. */
static char *event_json(const mesh_rule_event_t *x)
{
    json_t *o = json_object();
    json_object_set_new(o, "ev", json_integer(x->ev));
    json_object_set_new(o, "alert", json_string(x->alert_id));
    json_object_set_new(o, "product", json_string(x->product));
    json_object_set_new(o, "series", json_string(x->series));
    if (x->row)
        json_object_set_new(o, "row", json_string(x->row));
    json_object_set_new(o, "sensitive", json_string(x->sensitive));
    if (x->has_value)
        json_object_set_new(o, "value", json_real(x->value));
    json_object_set_new(o, "sample", json_real(x->sample));
    json_object_set_new(o, "time", json_integer((json_int_t)x->time_ns));
    json_object_set_new(o, "by", json_string(x->by));
    json_object_set_new(o, "note", json_string(x->note));
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(o);
    return s;
}

static char *jdup(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? mesh_strdup(s) : NULL;
}

/* An outbox row back into an event (NULL when it is damaged). */
static mesh_rule_event_t *event_parse(const char *domain, int64_t id, const char *rule, size_t rn,
                                      const char *event, size_t en)
{
    mesh_rule_t *r = NULL;
    mesh_err_t err;
    if (mesh_rule_parse(rule, rn, &r, &err) != MESH_OK)
        return NULL;
    json_t *o = json_loadb(event, en, 0, NULL);
    mesh_rule_event_t *x = calloc(1, sizeof *x);
    json_int_t ev = json_integer_value(json_object_get(o, "ev"));
    if (o == NULL || x == NULL || ev < 0 || ev > MESH_ALERT_RESOLVED) {
        json_decref(o);
        free(x);
        mesh_rule_put(r);
        return NULL;
    }
    x->rule = r;
    x->ev = (mesh_alert_ev_t)ev;
    x->outbox_id = id;
    snprintf(x->domain, sizeof x->domain, "%s", domain);
    snprintf(x->alert_id, sizeof x->alert_id, "%s",
             json_string_value(json_object_get(o, "alert")) ?: "");
    snprintf(x->product, sizeof x->product, "%s",
             json_string_value(json_object_get(o, "product")) ?: "");
    x->series = jdup(o, "series");
    x->row = jdup(o, "row");
    x->sensitive = jdup(o, "sensitive");
    const json_t *v = json_object_get(o, "value");
    x->has_value = v != NULL;
    x->value = json_number_value(v);
    x->sample = json_number_value(json_object_get(o, "sample"));
    x->time_ns = (int64_t)json_integer_value(json_object_get(o, "time"));
    snprintf(x->by, sizeof x->by, "%s", json_string_value(json_object_get(o, "by")) ?: "");
    snprintf(x->note, sizeof x->note, "%s", json_string_value(json_object_get(o, "note")) ?: "");
    json_decref(o);
    if (x->series == NULL || x->sensitive == NULL) {
        mesh_rule_event_free(x);
        return NULL;
    }
    return x;
}

static mesh_status_t load_outbox(void *arg, int64_t id, const char *rule, size_t rn,
                                 const char *event, size_t en)
{
    mesh_rules_t *e = arg;
    mesh_rule_event_t *x = event_parse(e->domain, id, rule, rn, event, en);
    if (x == NULL) {
        LOG_WARN("rules", "%s: outbox entry %lld is damaged; its actions are not run", e->domain,
                 (long long)id);
        return MESH_OK;
    }
    mesh_rule_event_t **tail = &e->recovered;
    while (*tail)
        tail = &(*tail)->next;
    *tail = x;
    return MESH_OK;
}

mesh_rule_event_t *mesh_rules_take_recovered(mesh_rules_t *e)
{
    mesh_rule_event_t *x = e->recovered;
    e->recovered = NULL;
    return x;
}

/* ---- transitions ---- */

static mesh_status_t queue_event(mesh_rules_t *e, const rentry_t *re, const sentry_t *se,
                                 mesh_alert_ev_t ev, const mesh_reval_t *val, int64_t t, char *row,
                                 const char *by, const char *note, const mesh_product_t *p,
                                 mesh_err_t *err)
{
    if (e->replaying) {
        free(row); /* its event and outbox row were committed with the record */
        return MESH_OK;
    }
    mesh_rule_event_t *x = calloc(1, sizeof *x);
    if (x == NULL) {
        free(row);
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    x->rule = mesh_rule_ref(re->rule);
    x->ev = ev;
    alert_id(e, se->st.alert_no, x->alert_id, sizeof x->alert_id);
    snprintf(x->domain, sizeof x->domain, "%s", e->domain);
    snprintf(x->product, sizeof x->product, "%s", re->rule->product);
    x->series = mesh_strdup(se->series);
    x->row = row;
    x->sensitive = sensitive_json(p);
    if (val) {
        x->has_value = val->has_value;
        x->value = val->value;
        x->sample = val->sample;
    }
    x->time_ns = t;
    snprintf(x->by, sizeof x->by, "%s", by ? by : "");
    snprintf(x->note, sizeof x->note, "%s", note ? note : "");
    if (x->series == NULL || x->sensitive == NULL) {
        mesh_rule_event_free(x);
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    if (e->store && re->rule->nactions) {
        /* the actions are owed from this commit on, also across a crash */
        char *j = event_json(x);
        mesh_status_t st =
            j ? mesh_store_outbox_put(e->store, re->rule->text, j, &x->outbox_id, err)
              : mesh_err_set(err, MESH_NOMEM, "out of memory");
        free(j);
        if (st != MESH_OK) {
            mesh_rule_event_free(x);
            return st;
        }
    }
    if (e->ev_tail)
        e->ev_tail->next = x;
    else
        e->ev_head = x;
    e->ev_tail = x;
    e->nev++;
    return MESH_OK;
}

static void count_firing(mesh_rules_t *e, rentry_t *re, int delta)
{
    pthread_mutex_lock(&e->lock);
    re->firing = (size_t)((long)re->firing + delta);
    pthread_mutex_unlock(&e->lock);
}

/* Handles a step's outcome for series se of rule re at row time t. */
static mesh_status_t on_step(mesh_rules_t *e, uint64_t seq, rentry_t *re, sentry_t *se,
                             const mesh_reval_t *val, int64_t t, const mesh_batch_t *b,
                             const mesh_part_t *part, size_t r, const mesh_product_t *p,
                             mesh_rules_lookup_fn lookup, void *arg, mesh_err_t *err)
{
    mesh_status_t st;
    char id[96];
    alert_row_t a = {.rule = re->rule->name,
                     .product = re->rule->product,
                     .series = se->series,
                     .severity = re->rule->severity,
                     .has_value = val->has_value,
                     .value = val->value,
                     .updated_at = t};
    switch (val->step) {
    case MESH_RSTEP_NONE:
        return MESH_OK;
    case MESH_RSTEP_UPDATE:
        se->value_changed = true;
        return MESH_OK;
    case MESH_RSTEP_FIRE:
        if ((st = next_alert_no(e, &se->st.alert_no, err)) != MESH_OK)
            return st;
        alert_id(e, se->st.alert_no, id, sizeof id);
        a.id = id;
        a.state = "firing";
        a.event = "fired";
        a.has_first = true;
        a.first = se->st.first_value;
        a.fired_at = t;
        count_firing(e, re, 1);
        break;
    case MESH_RSTEP_RESOLVE:
        alert_id(e, se->st.alert_no, id, sizeof id);
        a.id = id;
        a.state = "resolved";
        a.event = "resolved";
        a.resolved_at = t;
        a.by = "";
        count_firing(e, re, -1);
        break;
    }
    se->value_changed = false;
    if ((st = write_alert(e, seq, &a, lookup, arg, err)) != MESH_OK)
        return st;
    return queue_event(e, re, se,
                       val->step == MESH_RSTEP_FIRE ? MESH_ALERT_FIRED : MESH_ALERT_RESOLVED, val,
                       t, b ? row_json(b, part, r) : NULL, NULL, NULL, p, err);
}

static mesh_status_t touch(mesh_rules_t *e, size_t ri, size_t si)
{
    sentry_t *se = &e->r[ri].v[si];
    dirty(e);
    if (se->touched)
        return MESH_OK;
    if (e->ntouched == e->captouched) {
        size_t ncap = e->captouched ? e->captouched * 2 : 64;
        touch_t *nt = realloc(e->touched, ncap * sizeof *nt);
        if (nt == NULL)
            return MESH_NOMEM;
        e->touched = nt;
        e->captouched = ncap;
    }
    se->touched = true;
    e->touched[e->ntouched++] = (touch_t){ri, si};
    return MESH_OK;
}

/* Marks every touched state dirty (it is written at the next mesh_rules_persist) and writes
 * the last value of firing alerts to their rows. */
static mesh_status_t flush_touched(mesh_rules_t *e, uint64_t seq, int64_t t,
                                   mesh_rules_lookup_fn lookup, void *arg, mesh_err_t *err)
{
    mesh_status_t st = MESH_OK;
    for (size_t i = 0; i < e->ntouched; i++) {
        rentry_t *re = &e->r[e->touched[i].r];
        sentry_t *se = &re->v[e->touched[i].s];
        se->touched = false;
        se->dirty = true;
        if (st == MESH_OK && se->value_changed && se->st.phase == MESH_RPHASE_FIRING) {
            char id[96];
            alert_id(e, se->st.alert_no, id, sizeof id);
            alert_row_t a = {
                .id = id, .has_value = true, .value = se->st.last_value, .updated_at = t};
            st = write_alert(e, seq, &a, lookup, arg, err);
        }
        se->value_changed = false;
    }
    e->ntouched = 0;
    if (atomic_load(&e->has_absence))
        update_due(e);
    return st;
}

/* ---- persistence (decision 0028) ---- */

mesh_status_t mesh_rules_persist(mesh_rules_t *e, mesh_err_t *err)
{
    if (e->store == NULL)
        return MESH_OK;
    mesh_status_t st = MESH_OK;
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 20);
    for (size_t ri = 0; ri < e->n && st == MESH_OK; ri++) {
        rentry_t *re = &e->r[ri];
        for (size_t si = 0; si < re->n && st == MESH_OK; si++) {
            sentry_t *se = &re->v[si];
            if (!se->dirty)
                continue;
            mesh_buf_reset(&b);
            if ((st = mesh_rstate_encode(&se->st, &b)) != MESH_OK) {
                mesh_err_set(err, st, "out of memory");
                break;
            }
            st = mesh_store_rstate_put(e->store, re->rule->name, se->series,
                                       (const uint8_t *)b.data, b.len, err);
        }
    }
    mesh_buf_free(&b);
    /* the alert number the persisted states go with: replay numbers new alerts from it */
    int64_t no = 0;
    if (st == MESH_OK)
        st = mesh_store_meta_get(e->store, "alert_seq", &no, err);
    if (st == MESH_OK)
        st = mesh_store_meta_put(e->store, "rules_alert_seq", no, err);
    if (st != MESH_OK)
        return st;
    for (size_t ri = 0; ri < e->n; ri++)
        for (size_t si = 0; si < e->r[ri].n; si++)
            e->r[ri].v[si].dirty = false;
    return MESH_OK;
}

bool mesh_rules_dirty(const mesh_rules_t *e)
{
    for (size_t ri = 0; ri < e->n; ri++)
        for (size_t si = 0; si < e->r[ri].n; si++)
            if (e->r[ri].v[si].dirty)
                return true;
    return false;
}

void mesh_rules_mark_dirty(mesh_rules_t *e)
{
    for (size_t ri = 0; ri < e->n; ri++)
        for (size_t si = 0; si < e->r[ri].n; si++)
            e->r[ri].v[si].dirty = true;
}

mesh_status_t mesh_rules_replay_begin(mesh_rules_t *e, mesh_err_t *err)
{
    int64_t no = 0;
    mesh_status_t st = mesh_store_meta_get(e->store, "rules_alert_seq", &no, err);
    if (st != MESH_OK)
        return st;
    e->replay_no = (uint64_t)no;
    e->replaying = true;
    return MESH_OK;
}

void mesh_rules_replay_end(mesh_rules_t *e)
{
    if (!e->replaying)
        return;
    e->replaying = false;
    int64_t no = 0;
    if (mesh_store_meta_get(e->store, "alert_seq", &no, NULL) == MESH_OK &&
        (uint64_t)no != e->replay_no)
        LOG_ERROR("rules",
                  "%s: replaying the log numbered alerts up to %llu, the store has %lld: the "
                  "rebuilt states differ from the ones that ran",
                  e->domain, (unsigned long long)e->replay_no, (long long)no);
    update_due(e);
}

/* ---- the writer's operations ---- */

/* Resolves every firing alert of rule entry re (the rule goes away or starts afresh). */
static mesh_status_t resolve_all(mesh_rules_t *e, uint64_t seq, rentry_t *re, int64_t now,
                                 const char *note, mesh_rules_lookup_fn lookup, void *arg,
                                 mesh_err_t *err)
{
    const mesh_product_t *p = lookup(arg, re->rule->product);
    for (size_t si = 0; si < re->n; si++) {
        sentry_t *se = &re->v[si];
        if (se->st.phase != MESH_RPHASE_FIRING)
            continue;
        char id[96];
        alert_id(e, se->st.alert_no, id, sizeof id);
        se->st.phase = MESH_RPHASE_OK;
        se->dirty = true;
        count_firing(e, re, -1);
        dirty(e);
        alert_row_t a = {.id = id,
                         .state = "resolved",
                         .event = "resolved",
                         .by = "",
                         .note = note,
                         .resolved_at = now,
                         .updated_at = now};
        mesh_status_t st = write_alert(e, seq, &a, lookup, arg, err);
        mesh_reval_t val = {.has_value = true, .value = se->st.last_value};
        if (st == MESH_OK)
            st = queue_event(e, re, se, MESH_ALERT_RESOLVED, &val, now, NULL, NULL, note, p, err);
        if (st != MESH_OK)
            return st;
    }
    return MESH_OK;
}

mesh_status_t mesh_rules_put(mesh_rules_t *e, uint64_t seq, int64_t now, mesh_rule_t *r,
                             mesh_rules_lookup_fn lookup, void *arg, mesh_err_t *err)
{
    if (strcmp(r->domain, e->domain) != 0)
        return mesh_err_set(err, MESH_INVALID, "the rule is for domain '%s', not '%s'", r->domain,
                            e->domain);
    const mesh_product_t *p = lookup(arg, r->product);
    if (p == NULL)
        return mesh_err_set(err, MESH_NOT_FOUND, "no product %s.%s", e->domain, r->product);
    mesh_status_t st = mesh_rule_check(r, p, err);
    if (st != MESH_OK)
        return st;
    /* a changed condition starts afresh: state of another kind or column means nothing */
    bool fresh = true;
    for (size_t i = 0; i < e->n; i++) {
        const mesh_rule_t *o = e->r[i].rule;
        if (strcmp(o->name, r->name) != 0)
            continue;
        fresh = o->kind != r->kind || strcmp(o->product, r->product) != 0 ||
                (o->column == NULL) != (r->column == NULL) ||
                (o->column && strcmp(o->column, r->column) != 0) || o->method != r->method;
        if (fresh) {
            if ((st = resolve_all(e, seq, &e->r[i], now, "the rule was redefined", lookup, arg,
                                  err)) != MESH_OK)
                return st;
            pthread_mutex_lock(&e->lock);
            mesh_rule_t *keep = mesh_rule_ref(e->r[i].rule);
            rentry_clear(&e->r[i]);
            e->r[i].rule = keep;
            pthread_mutex_unlock(&e->lock);
        }
    }
    dirty(e);
    if (e->store) {
        if (fresh && (st = mesh_store_rule_delete(e->store, r->name, true, err)) != MESH_OK)
            return st;
        if ((st = mesh_store_rule_put(e->store, r->name, seq, r->text, err)) != MESH_OK)
            return st;
    }
    size_t idx;
    if ((st = rules_insert(e, mesh_rule_ref(r), &idx)) != MESH_OK) {
        mesh_rule_put(r);
        return mesh_err_set(err, st, "out of memory");
    }
    update_flags(e);
    return MESH_OK;
}

mesh_status_t mesh_rules_delete(mesh_rules_t *e, uint64_t seq, int64_t now, const char *name,
                                mesh_rules_lookup_fn lookup, void *arg, mesh_err_t *err)
{
    for (size_t i = 0; i < e->n; i++) {
        if (strcmp(e->r[i].rule->name, name) != 0)
            continue;
        dirty(e);
        mesh_status_t st =
            resolve_all(e, seq, &e->r[i], now, "the rule was deleted", lookup, arg, err);
        if (st == MESH_OK && e->store)
            st = mesh_store_rule_delete(e->store, name, false, err);
        if (st != MESH_OK)
            return st;
        pthread_mutex_lock(&e->lock);
        rentry_clear(&e->r[i]);
        memmove(&e->r[i], &e->r[i + 1], (e->n - i - 1) * sizeof *e->r);
        e->n--;
        pthread_mutex_unlock(&e->lock);
        update_flags(e);
        return MESH_OK;
    }
    return mesh_err_set(err, MESH_NOT_FOUND, "no rule %s in domain %s", name, e->domain);
}

static bool row_number(const mesh_value_t *v, double *out)
{
    if (v->type == MESH_V_INT) {
        *out = (double)v->u.i;
        return true;
    }
    if (v->type == MESH_V_REAL) {
        *out = v->u.d;
        return true;
    }
    return false;
}

/* Finds or creates the series; -1 when the rule has too many. */
static long series_get(mesh_rules_t *e, rentry_t *re, const char *key, uint32_t h, mesh_err_t *err,
                       mesh_status_t *st)
{
    long si = series_find(re, key, h);
    if (si >= 0)
        return si;
    mesh_rstate_t fresh;
    memset(&fresh, 0, sizeof fresh);
    size_t idx;
    *st = series_add(e, re, key, &fresh, &idx);
    if (*st == MESH_LIMIT) {
        *st = MESH_OK;
        LOG_WARN("rules", "%s: rule %s has %d series; series %s is not evaluated", e->domain,
                 re->rule->name, MESH_RULE_MAX_SERIES, key);
        return -1;
    }
    if (*st != MESH_OK) {
        mesh_err_set(err, *st, "out of memory");
        return -1;
    }
    return (long)idx;
}

mesh_status_t mesh_rules_batch(mesh_rules_t *e, uint64_t seq, const mesh_batch_t *b,
                               mesh_rules_lookup_fn lookup, void *arg, mesh_err_t *err)
{
    if (e->n == 0)
        return MESH_OK;
    /* the rules of each part's product, with their column; the series key of a row is built
     * once for all of them */
    size_t *ris = malloc(e->n * sizeof *ris);
    int *cis = malloc(e->n * sizeof *cis);
    if (ris == NULL || cis == NULL) {
        free(ris);
        free(cis);
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    mesh_status_t st = MESH_OK;
    mesh_buf_t key;
    mesh_buf_init(&key, 1 << 20);
    int64_t last_t = b->received_ns;
    for (size_t pi = 0; pi < b->nparts && st == MESH_OK; pi++) {
        const mesh_part_t *part = &b->parts[pi];
        const mesh_product_t *p = part->product;
        size_t nr = 0;
        for (size_t ri = 0; ri < e->n; ri++) {
            const mesh_rule_t *r = e->r[ri].rule;
            if (strcmp(r->product, p->name) != 0)
                continue;
            int ci = r->column ? mesh_product_col(p, r->column, strlen(r->column)) : -1;
            if (r->column && ci < 0)
                continue; /* the column went away with a new contract */
            ris[nr] = ri;
            cis[nr++] = ci;
        }
        for (size_t row = 0; nr && row < part->nrows && st == MESH_OK; row++) {
            const mesh_value_t *vals = part->vals + row * part->ncols;
            int64_t t = b->received_ns;
            if (p->time_col >= 0 && vals[p->time_col].type == MESH_V_INT)
                t = vals[p->time_col].u.i;
            if (t > last_t)
                last_t = t;
            if ((st = series_key(b, part, row, &key)) != MESH_OK) {
                mesh_err_set(err, st, "series key too large");
                break;
            }
            uint32_t h = hash_str(key.data);
            for (size_t k = 0; k < nr && st == MESH_OK; k++) {
                rentry_t *re = &e->r[ris[k]];
                long si = series_get(e, re, key.data, h, err, &st);
                if (si < 0)
                    continue;
                double v = 0;
                bool has = cis[k] >= 0 && row_number(&vals[cis[k]], &v);
                mesh_reval_t val;
                if ((st = mesh_rule_step(re->rule, &re->v[si].st, t, has, v, &val)) != MESH_OK) {
                    mesh_err_set(err, st, "out of memory");
                    break;
                }
                if ((st = touch(e, ris[k], (size_t)si)) != MESH_OK) {
                    mesh_err_set(err, st, "out of memory");
                    break;
                }
                st = on_step(e, seq, re, &re->v[si], &val, t, b, part, row, p, lookup, arg, err);
            }
        }
    }
    free(ris);
    free(cis);
    mesh_buf_free(&key);
    if (st == MESH_OK)
        st = flush_touched(e, seq, last_t, lookup, arg, err);
    return st;
}

mesh_status_t mesh_rules_tick(mesh_rules_t *e, uint64_t seq, int64_t now,
                              mesh_rules_lookup_fn lookup, void *arg, mesh_err_t *err)
{
    mesh_status_t st = MESH_OK;
    for (size_t ri = 0; ri < e->n && st == MESH_OK; ri++) {
        rentry_t *re = &e->r[ri];
        if (re->rule->kind != MESH_RULE_ABSENCE)
            continue;
        const mesh_product_t *p = lookup(arg, re->rule->product);
        for (size_t si = 0; si < re->n && st == MESH_OK; si++) {
            mesh_reval_t val;
            mesh_rule_tick(re->rule, &re->v[si].st, now, &val);
            if (val.step == MESH_RSTEP_NONE)
                continue;
            if ((st = touch(e, ri, si)) != MESH_OK)
                return mesh_err_set(err, st, "out of memory");
            st = on_step(e, seq, re, &re->v[si], &val, now, NULL, NULL, 0, p, lookup, arg, err);
        }
    }
    if (st == MESH_OK)
        st = flush_touched(e, seq, now, lookup, arg, err);
    return st;
}

mesh_status_t mesh_rules_alert_op(mesh_rules_t *e, uint64_t seq, char op, const char *id,
                                  const char *by, const char *note, int64_t now,
                                  mesh_rules_lookup_fn lookup, void *arg, mesh_err_t *err)
{
    size_t dl = strlen(e->domain);
    uint64_t no;
    if (strncmp(id, e->domain, dl) != 0 || id[dl] != ':' ||
        mesh_parse_u64(id + dl + 1, strlen(id + dl + 1), &no) != MESH_OK)
        return mesh_err_set(err, MESH_NOT_FOUND, "no alert %s in domain %s", id, e->domain);
    for (size_t ri = 0; ri < e->n; ri++) {
        rentry_t *re = &e->r[ri];
        for (size_t si = 0; si < re->n; si++) {
            sentry_t *se = &re->v[si];
            if (se->st.phase != MESH_RPHASE_FIRING || se->st.alert_no != no)
                continue;
            if (op == 'a' && se->st.acked)
                return mesh_err_set(err, MESH_CONFLICT, "alert %s is acknowledged already", id);
            mesh_status_t st = touch(e, ri, si);
            if (st != MESH_OK)
                return mesh_err_set(err, st, "out of memory");
            alert_row_t a = {.id = id, .by = by, .note = note, .updated_at = now};
            mesh_alert_ev_t ev;
            if (op == 'a') {
                se->st.acked = 1;
                a.state = "acknowledged";
                a.event = "acknowledged";
                a.acked_at = now;
                ev = MESH_ALERT_ACKNOWLEDGED;
            } else {
                se->st.phase = MESH_RPHASE_OK;
                se->st.latched = 1; /* no new alert until the condition clears */
                count_firing(e, re, -1);
                a.state = "resolved";
                a.event = "resolved";
                a.resolved_at = now;
                ev = MESH_ALERT_RESOLVED;
            }
            if ((st = write_alert(e, seq, &a, lookup, arg, err)) != MESH_OK)
                return st;
            mesh_reval_t val = {.has_value = true, .value = se->st.last_value};
            if ((st = queue_event(e, re, se, ev, &val, now, NULL, by, note,
                                  lookup(arg, re->rule->product), err)) != MESH_OK)
                return st;
            return flush_touched(e, seq, now, lookup, arg, err);
        }
    }
    int64_t last = 0;
    if (e->store)
        mesh_store_meta_get(e->store, "alert_seq", &last, NULL);
    if (no >= 1 && no <= (uint64_t)last)
        return mesh_err_set(err, MESH_CONFLICT, "alert %s is resolved already", id);
    return mesh_err_set(err, MESH_NOT_FOUND, "no alert %s in domain %s", id, e->domain);
}

/* ---- readers ---- */

bool mesh_rules_has_absence(mesh_rules_t *e)
{
    return atomic_load(&e->has_absence);
}

bool mesh_rules_due(mesh_rules_t *e, int64_t now)
{
    return atomic_load(&e->has_absence) && now >= atomic_load(&e->next_due);
}

mesh_status_t mesh_rules_list(mesh_rules_t *e, mesh_rule_info_t **out, size_t *n)
{
    pthread_mutex_lock(&e->lock);
    *n = e->n;
    *out = e->n ? calloc(e->n, sizeof **out) : NULL;
    if (e->n && *out == NULL) {
        pthread_mutex_unlock(&e->lock);
        return MESH_NOMEM;
    }
    for (size_t i = 0; i < e->n; i++) {
        (*out)[i].rule = mesh_rule_ref(e->r[i].rule);
        (*out)[i].series = e->r[i].n;
        (*out)[i].firing = e->r[i].firing;
    }
    pthread_mutex_unlock(&e->lock);
    return MESH_OK;
}

/* ---- dry runs ---- */

static const mesh_product_t *no_product(void *arg, const char *product)
{
    const mesh_product_t *p = arg;
    return p && strcmp(p->name, product) == 0 ? p : NULL;
}

mesh_status_t mesh_rules_dry_run(const mesh_rule_t *r, const mesh_batch_t *b, int64_t until_ns,
                                 mesh_rules_dry_fn fn, void *arg, mesh_err_t *err)
{
    mesh_rules_t *e = engine_new(r->domain, NULL);
    if (e == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    const mesh_product_t *p = b->nparts ? b->parts[0].product : NULL;
    mesh_status_t st = mesh_rules_put(e, 0, 0, (mesh_rule_t *)r, no_product, (void *)p, err);
    if (st == MESH_OK && r->kind == MESH_RULE_ABSENCE && b->nparts) {
        /* absence: a tick before each row (the gap it closes) and one at the end */
        const mesh_part_t *part = &b->parts[0];
        for (size_t row = 0; row < part->nrows && st == MESH_OK; row++) {
            const mesh_value_t *v = part->vals + row * part->ncols;
            int64_t t = p->time_col >= 0 && v[p->time_col].type == MESH_V_INT ? v[p->time_col].u.i
                                                                              : b->received_ns;
            if ((st = mesh_rules_tick(e, 0, t, no_product, (void *)p, err)) != MESH_OK)
                break;
            mesh_batch_t one = *b;
            mesh_part_t pone = *part;
            pone.vals = part->vals + row * part->ncols;
            pone.nrows = 1;
            one.parts = &pone;
            one.nparts = 1;
            st = mesh_rules_batch(e, 0, &one, no_product, (void *)p, err);
        }
    } else if (st == MESH_OK) {
        st = mesh_rules_batch(e, 0, b, no_product, (void *)p, err);
    }
    if (st == MESH_OK && until_ns)
        st = mesh_rules_tick(e, 0, until_ns, no_product, (void *)p, err);
    mesh_rule_event_t *ev = mesh_rules_take_events(e);
    for (mesh_rule_event_t *x = ev; x && st == MESH_OK; x = x->next)
        fn(arg, x);
    mesh_rule_event_free(ev);
    mesh_rules_close(e);
    return st;
}
