/*
 * quality.c - evaluation of contracts' dataset quality rules, and quality reports (see
 * quality.h).
 *
 * Results are kept per product ("domain.product") in a small table under one mutex: the
 * rules' outcomes as a JSON array, the completeness, and when and how long the evaluation
 * took. Reports join them with live counters, so freshness is always current. A product
 * whose contract changed since its evaluation keeps its old results until the next one (the
 * report names the contract version they were taken under).
 */
#include "quality/quality.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/policy.h"
#include "core/log.h"
#include "core/util.h"
#include "http/metrics.h"
#include "store/domain.h"

#define EVAL_TIMEOUT_NS (120 * MESH_NS_PER_SEC) /* one rule's query */
#define FIRST_DELAY_NS  (10 * MESH_NS_PER_SEC)  /* the first scheduled round after start */

typedef struct entry {
    char key[160]; /* domain.product */
    char version[64];
    json_t *rules; /* [{"name","metric","column","unit","operator","threshold","value",...}] */
    double completeness; /* -1: no rows */
    int64_t rows;        /* rows counted by the evaluation */
    int64_t evaluated_ns, elapsed_ms;
    int npassed, nrules;
} entry_t;

struct mesh_quality {
    mesh_registry_t *reg;
    mesh_qpool_t *pool;
    mesh_policy_t *policy; /* empty: no mask, no row filter */
    mesh_identity_t who;
    int64_t interval_ns;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_mutex_t run_lock; /* one evaluation at a time (scheduler or API) */
    bool stop, thread_started;
    mesh_query_t *active; /* the measure running now (under lock): a close cancels it */
    pthread_t thread;
    entry_t *entries;
    size_t n, cap;
};

/* ---- SQL of the rules ---------------------------------------------------------------------- */

static void add_ident(mesh_buf_t *b, const char *name)
{
    mesh_buf_addc(b, '"');
    for (const char *p = name; *p; p++) {
        if (*p == '"')
            mesh_buf_addc(b, '"');
        mesh_buf_addc(b, *p);
    }
    mesh_buf_addc(b, '"');
}

static void add_table(mesh_buf_t *b, const mesh_product_t *p)
{
    add_ident(b, p->domain);
    mesh_buf_addc(b, '.');
    add_ident(b, p->name);
}

static void add_literal(mesh_buf_t *b, const char *s)
{
    mesh_buf_addc(b, '\'');
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            mesh_buf_addc(b, '\'');
        mesh_buf_addc(b, *p);
    }
    mesh_buf_addc(b, '\'');
}

static bool numeric_col(const mesh_column_t *c)
{
    return mesh_ltype_numeric(c->type);
}

/* A value of a list: a number as a number for a numeric column, else a string literal. */
static void add_value(mesh_buf_t *b, const mesh_column_t *c, const char *v)
{
    char *end;
    if (numeric_col(c) && *v) {
        double d = strtod(v, &end);
        if (*end == '\0' && isfinite(d)) {
            mesh_buf_printf(b, "%.17g", d);
            return;
        }
    }
    add_literal(b, v);
}

static void add_list(mesh_buf_t *b, const mesh_column_t *c, const mesh_quality_rule_t *r)
{
    mesh_buf_addc(b, '(');
    for (size_t i = 0; i < r->nvalues; i++) {
        if (i)
            mesh_buf_addc(b, ',');
        add_value(b, c, r->values[i]);
    }
    mesh_buf_addc(b, ')');
}

/* {object} -> "domain"."product", {property} -> "column" in a sql rule's query. */
static void expand_query(mesh_buf_t *b, const mesh_product_t *p, const mesh_quality_rule_t *r)
{
    for (const char *s = r->query; *s;) {
        if (strncmp(s, "{object}", 8) == 0) {
            add_table(b, p);
            s += 8;
        } else if (strncmp(s, "{property}", 10) == 0 && r->col >= 0) {
            add_ident(b, p->cols[r->col].name);
            s += 10;
        } else {
            mesh_buf_addc(b, *s++);
        }
    }
}

mesh_status_t mesh_quality_rule_sql(const mesh_product_t *p, const mesh_quality_rule_t *r,
                                    mesh_buf_t *b)
{
    const mesh_column_t *c = r->col >= 0 ? &p->cols[r->col] : NULL;
    switch (r->metric) {
    case MESH_QM_NULL_VALUES:
        mesh_buf_adds(b, "SELECT count(*) - count(");
        add_ident(b, c->name);
        mesh_buf_adds(b, "), count(*) FROM ");
        break;
    case MESH_QM_MISSING_VALUES:
        mesh_buf_adds(b, "SELECT coalesce(sum(CASE WHEN ");
        if (r->null_missing) {
            add_ident(b, c->name);
            mesh_buf_adds(b, r->nvalues ? " IS NULL OR " : " IS NULL");
        }
        if (r->nvalues) {
            add_ident(b, c->name);
            mesh_buf_adds(b, " IN ");
            add_list(b, c, r);
        }
        if (!r->null_missing && r->nvalues == 0)
            mesh_buf_adds(b, "0");
        mesh_buf_adds(b, " THEN 1 ELSE 0 END), 0), count(*) FROM ");
        break;
    case MESH_QM_INVALID_VALUES:
        mesh_buf_adds(b, "SELECT coalesce(sum(CASE WHEN ");
        add_ident(b, c->name);
        mesh_buf_adds(b, " IS NOT NULL AND NOT (");
        if (r->values) {
            add_ident(b, c->name);
            mesh_buf_adds(b, " IN ");
            add_list(b, c, r);
        }
        if (r->pattern) {
            mesh_buf_adds(b, r->values ? " AND regexp(" : "regexp(");
            add_literal(b, r->pattern);
            mesh_buf_addc(b, ',');
            add_ident(b, c->name);
            mesh_buf_adds(b, ")");
        }
        mesh_buf_adds(b, ") THEN 1 ELSE 0 END), 0), count(*) FROM ");
        break;
    case MESH_QM_DUPLICATE_VALUES:
        if (c != NULL) {
            mesh_buf_adds(b, "SELECT count(");
            add_ident(b, c->name);
            mesh_buf_adds(b, ") - count(DISTINCT ");
            add_ident(b, c->name);
            mesh_buf_adds(b, "), count(*) FROM ");
            break;
        }
        /* rows equal in the listed properties (every property when none is listed) */
        mesh_buf_adds(b, "SELECT n - d, n FROM (SELECT count(*) AS n FROM ");
        add_table(b, p);
        mesh_buf_adds(b, "), (SELECT count(*) AS d FROM (SELECT DISTINCT ");
        for (size_t i = 0; i < (r->ncols ? r->ncols : p->ncols); i++) {
            if (i)
                mesh_buf_addc(b, ',');
            add_ident(b, p->cols[r->ncols ? (size_t)r->cols[i] : i].name);
        }
        mesh_buf_adds(b, " FROM ");
        add_table(b, p);
        return mesh_buf_adds(b, "))");
    case MESH_QM_ROW_COUNT:
        mesh_buf_adds(b, "SELECT count(*), count(*) FROM ");
        break;
    case MESH_QM_SQL:
        expand_query(b, p, r);
        return b->data ? MESH_OK : MESH_NOMEM;
    }
    add_table(b, p);
    return b->data ? MESH_OK : MESH_NOMEM;
}

/* ---- running a measure --------------------------------------------------------------------- */

static bool datum_number(const mesh_datum_t *d, double *out)
{
    if (d->type == MESH_V_INT) {
        *out = (double)d->i;
        return true;
    }
    if (d->type == MESH_V_REAL) {
        *out = d->d;
        return true;
    }
    return false;
}

/* Every product the query read is of domain (none of another domain, nor system.audit). */
static bool only_domain(const char *products, const char *domain)
{
    size_t dl = strlen(domain);
    for (const char *p = products; *p;) {
        size_t n = strcspn(p, ",");
        if (n <= dl || strncmp(p, domain, dl) != 0 || p[dl] != '.')
            return false;
        p += n;
        if (*p == ',')
            p++;
    }
    return true;
}

/* Starts a measure's query, registered so that a close can cancel it. */
static mesh_status_t start_tracked(mesh_quality_t *q, mesh_snapshot_t *snap, const char *sql,
                                   size_t len, const mesh_query_limits_t *lim, mesh_query_t **out,
                                   mesh_err_t *err)
{
    pthread_mutex_lock(&q->lock);
    bool stop = q->stop;
    pthread_mutex_unlock(&q->lock);
    if (stop)
        return mesh_err_set(err, MESH_UNAVAILABLE, "the node is stopping");
    mesh_status_t st = mesh_query_start(q->pool, snap, q->policy, &q->who, sql, len, lim, out, err);
    if (st != MESH_OK)
        return st;
    pthread_mutex_lock(&q->lock);
    q->active = *out;
    if (q->stop)
        mesh_query_cancel(*out);
    pthread_mutex_unlock(&q->lock);
    return MESH_OK;
}

static void finish_tracked(mesh_quality_t *q, mesh_query_t *qq)
{
    pthread_mutex_lock(&q->lock);
    if (q->active == qq)
        q->active = NULL;
    pthread_mutex_unlock(&q->lock);
    mesh_query_finish(qq);
}

/* Runs sql; the first row's first value in *a and (when b) its second in *b. */
static mesh_status_t run_numbers(mesh_quality_t *q, mesh_snapshot_t *snap, const char *sql,
                                 const char *only, double *a, double *b, mesh_err_t *err)
{
    mesh_query_t *qq;
    mesh_query_limits_t lim = {.timeout_ns = EVAL_TIMEOUT_NS, .max_rows = 0};
    mesh_status_t st = start_tracked(q, snap, sql, strlen(sql), &lim, &qq, err);
    if (st != MESH_OK)
        return st;
    int r = mesh_query_step(qq, err);
    if (r < 0) {
        st = err->code ? err->code : MESH_INTERNAL;
    } else if (only && !only_domain(mesh_query_products(qq), only)) {
        st = mesh_err_set(err, MESH_FORBIDDEN,
                          "a quality query may read only the products of its own domain %s", only);
    } else if (r == 0) {
        st = mesh_err_set(err, MESH_INVALID, "the query returned no row");
    } else {
        mesh_datum_t d;
        mesh_query_value(qq, 0, &d);
        if (!datum_number(&d, a))
            st = mesh_err_set(err, MESH_INVALID, "the query's first value is not a number");
        if (st == MESH_OK && b) {
            if (mesh_query_ncols(qq) < 2) {
                *b = 0;
            } else {
                mesh_query_value(qq, 1, &d);
                if (!datum_number(&d, b))
                    *b = 0;
            }
        }
    }
    finish_tracked(q, qq);
    return st;
}

/* ---- the results table --------------------------------------------------------------------- */

static entry_t *entry_find(mesh_quality_t *q, const char *key)
{
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->entries[i].key, key) == 0)
            return &q->entries[i];
    return NULL;
}

static void entry_put(mesh_quality_t *q, const entry_t *e)
{
    pthread_mutex_lock(&q->lock);
    entry_t *old = entry_find(q, e->key);
    if (old != NULL) {
        json_decref(old->rules);
        *old = *e;
        pthread_mutex_unlock(&q->lock);
        return;
    }
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        entry_t *v = realloc(q->entries, cap * sizeof *v);
        if (v == NULL) { /* keep what there is; this result is lost */
            json_decref(e->rules);
            pthread_mutex_unlock(&q->lock);
            return;
        }
        q->entries = v;
        q->cap = cap;
    }
    q->entries[q->n++] = *e;
    pthread_mutex_unlock(&q->lock);
}

/* ---- evaluation ---------------------------------------------------------------------------- */

static mesh_status_t evaluate(mesh_quality_t *q, mesh_snapshot_t *snap, const mesh_product_t *p,
                              mesh_err_t *err)
{
    int64_t t0 = mesh_mono_ns();
    entry_t e;
    memset(&e, 0, sizeof e);
    snprintf(e.key, sizeof e.key, "%s.%s", p->domain, p->name);
    snprintf(e.version, sizeof e.version, "%s", p->contract ? p->contract->version : "");
    e.rules = json_array();
    e.completeness = -1;
    if (e.rules == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    mesh_buf_t sql;
    mesh_buf_init(&sql, MESH_QUERY_MAX_SQL);
    /* completeness: the share of non-null cells */
    mesh_buf_adds(&sql, "SELECT count(*)");
    for (size_t i = 0; i < p->ncols; i++) {
        mesh_buf_adds(&sql, ", count(");
        add_ident(&sql, p->cols[i].name);
        mesh_buf_addc(&sql, ')');
    }
    mesh_buf_adds(&sql, " FROM ");
    add_table(&sql, p);
    mesh_query_t *qq;
    mesh_query_limits_t lim = {.timeout_ns = EVAL_TIMEOUT_NS};
    mesh_err_t e2;
    mesh_err_clear(&e2);
    if (sql.data && start_tracked(q, snap, sql.data, sql.len, &lim, &qq, &e2) == MESH_OK) {
        if (mesh_query_step(qq, &e2) == 1) {
            mesh_datum_t d;
            double rows = 0, cells = 0, v;
            mesh_query_value(qq, 0, &d);
            datum_number(&d, &rows);
            for (size_t i = 0; i < p->ncols; i++) {
                mesh_query_value(qq, (int)i + 1, &d);
                if (datum_number(&d, &v))
                    cells += v;
            }
            e.rows = (int64_t)rows;
            if (rows > 0)
                e.completeness = cells / (rows * (double)p->ncols);
        } else if (e2.code != MESH_OK) {
            LOG_WARN("quality", "completeness of %s: %s", e.key, e2.msg);
        }
        finish_tracked(q, qq);
    } else {
        LOG_WARN("quality", "completeness of %s: %s", e.key, e2.msg);
    }
    for (size_t i = 0; i < p->nquality; i++) {
        const mesh_quality_rule_t *r = &p->quality[i];
        pthread_mutex_lock(&q->lock);
        bool stop = q->stop;
        pthread_mutex_unlock(&q->lock);
        if (stop) { /* a partial evaluation is not kept */
            mesh_buf_free(&sql);
            json_decref(e.rules);
            return mesh_err_set(err, MESH_UNAVAILABLE, "the node is stopping");
        }
        mesh_buf_reset(&sql);
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(r->name));
        json_object_set_new(o, "metric", json_string(mesh_qmetric_name(r->metric)));
        json_object_set_new(o, "column",
                            r->col >= 0 ? json_string(p->cols[r->col].name) : json_null());
        json_object_set_new(o, "unit", json_string(r->percent ? "percent" : "rows"));
        json_object_set_new(o, "operator", json_string(mesh_qop_name(r->op)));
        if (r->op == MESH_QOP_IN || r->op == MESH_QOP_OUT)
            json_object_set_new(o, "threshold", json_pack("[f,f]", r->a, r->b));
        else
            json_object_set_new(o, "threshold", json_real(r->a));
        if (r->severity)
            json_object_set_new(o, "severity", json_string(r->severity));
        if (r->dimension)
            json_object_set_new(o, "dimension", json_string(r->dimension));
        if (r->description)
            json_object_set_new(o, "description", json_string(r->description));
        double a = 0, n = 0;
        mesh_err_t re;
        mesh_err_clear(&re);
        mesh_status_t st = mesh_quality_rule_sql(p, r, &sql);
        if (st == MESH_OK)
            st = run_numbers(q, snap, sql.data, r->metric == MESH_QM_SQL ? p->domain : NULL, &a,
                             r->metric == MESH_QM_SQL ? NULL : &n, &re);
        else
            mesh_err_set(&re, st, "out of memory");
        e.nrules++;
        if (st != MESH_OK) {
            /* a rule that cannot be measured fails, with the reason */
            json_object_set_new(o, "passed", json_false());
            json_object_set_new(o, "error", json_string(re.msg));
        } else {
            double value = a;
            if (r->percent)
                value = n > 0 ? 100.0 * a / n : 0;
            bool ok = mesh_quality_pass(r, value);
            json_object_set_new(o, "value", json_real(value));
            if (r->metric != MESH_QM_SQL && r->metric != MESH_QM_ROW_COUNT)
                json_object_set_new(o, "rows_measured", json_integer((json_int_t)n));
            json_object_set_new(o, "passed", json_boolean(ok));
            if (ok)
                e.npassed++;
        }
        json_array_append_new(e.rules, o);
    }
    mesh_buf_free(&sql);
    e.evaluated_ns = mesh_now_ns();
    e.elapsed_ms = (mesh_mono_ns() - t0) / 1000000;
    entry_put(q, &e);
    return MESH_OK;
}

mesh_status_t mesh_quality_run(mesh_quality_t *q, mesh_snapshot_t *snap, const char *domain,
                               const char *product, mesh_err_t *err)
{
    const mesh_product_t *p = mesh_snapshot_product(snap, domain, product);
    if (p == NULL)
        return mesh_err_set(err, MESH_NOT_FOUND, "no product %s.%s", domain, product);
    pthread_mutex_lock(&q->run_lock);
    mesh_status_t st = evaluate(q, snap, p, err);
    pthread_mutex_unlock(&q->run_lock);
    return st;
}

/* ---- reports -------------------------------------------------------------------------------- */

typedef struct parts {
    double rules, completeness, validity, freshness; /* each -1 when it does not apply */
    int64_t age_ns;
    bool latency_ok, frequency_ok;
} parts_t;

static double score_of(const parts_t *pt)
{
    double sum = 0;
    int n = 0;
    const double v[] = {pt->rules, pt->completeness, pt->validity, pt->freshness};
    for (int i = 0; i < 4; i++)
        if (v[i] >= 0) {
            sum += v[i];
            n++;
        }
    return n ? 100.0 * sum / n : -1;
}

/* The parts of a product's score from its entry (under q->lock, e may be NULL) and stats. */
static void parts_of(const entry_t *e, const mesh_product_t *p, const mesh_product_stats_t *st,
                     parts_t *pt)
{
    pt->rules = e && e->nrules ? (double)e->npassed / e->nrules : -1;
    pt->completeness = e ? e->completeness : -1;
    int64_t seen = st->rows + st->quarantined;
    pt->validity = seen > 0 ? (double)st->rows / (double)seen : -1;
    pt->freshness = -1;
    pt->age_ns = st->last_write_ns ? mesh_now_ns() - st->last_write_ns : -1;
    pt->latency_ok = pt->frequency_ok = true;
    if (p->sla_latency_ns > 0)
        pt->latency_ok = pt->age_ns >= 0 && pt->age_ns <= p->sla_latency_ns;
    if (p->sla_frequency_ns > 0)
        pt->frequency_ok = pt->age_ns >= 0 && pt->age_ns <= p->sla_frequency_ns;
    if (p->sla_latency_ns > 0 || p->sla_frequency_ns > 0)
        pt->freshness = pt->latency_ok && pt->frequency_ok ? 1 : 0;
}

static json_t *num_or_null(double v)
{
    return v >= 0 ? json_real(v) : json_null();
}

json_t *mesh_quality_report(mesh_quality_t *q, const mesh_snap_domain_t *sd,
                            const mesh_product_t *p)
{
    mesh_product_stats_t st;
    memset(&st, 0, sizeof st);
    mesh_store_product_stats(mesh_domain_store(sd->dom), p->name, &st);
    char key[160];
    snprintf(key, sizeof key, "%s.%s", p->domain, p->name);
    json_t *o = json_object();
    json_object_set_new(o, "domain", json_string(p->domain));
    json_object_set_new(o, "product", json_string(p->name));
    parts_t pt;
    pthread_mutex_lock(&q->lock);
    const entry_t *e = entry_find(q, key);
    parts_of(e, p, &st, &pt);
    if (e != NULL) {
        char when[MESH_TIME_MAX];
        mesh_time_format(e->evaluated_ns, when);
        json_object_set_new(o, "evaluated_at", json_string(when));
        json_object_set_new(o, "evaluation_ms", json_integer(e->elapsed_ms));
        json_object_set_new(o, "contract_version", json_string(e->version));
        json_object_set_new(o, "rules", json_deep_copy(e->rules));
        json_object_set_new(o, "rules_passed", json_integer(e->npassed));
        json_object_set_new(o, "rules_failed", json_integer(e->nrules - e->npassed));
        json_object_set_new(o, "rows_measured", json_integer(e->rows));
    } else {
        json_object_set_new(o, "evaluated_at", json_null());
        json_object_set_new(o, "rules", json_array());
    }
    pthread_mutex_unlock(&q->lock);
    double score = score_of(&pt);
    json_object_set_new(o, "score", score >= 0 ? json_real(round(score * 10) / 10) : json_null());
    json_object_set_new(o, "completeness", num_or_null(pt.completeness));
    json_object_set_new(o, "validity", num_or_null(pt.validity));
    json_object_set_new(o, "rows", json_integer(st.rows));
    json_object_set_new(o, "quarantined", json_integer(st.quarantined));
    json_t *f = json_object();
    if (st.last_write_ns) {
        char when[MESH_TIME_MAX];
        mesh_time_format(st.last_write_ns, when);
        json_object_set_new(f, "last_write", json_string(when));
        json_object_set_new(f, "age_s", json_real((double)pt.age_ns / 1e9));
    } else {
        json_object_set_new(f, "last_write", json_null());
    }
    if (p->sla_latency_ns > 0) {
        json_object_set_new(f, "latency_s", json_real((double)p->sla_latency_ns / 1e9));
        json_object_set_new(f, "latency_ok", json_boolean(pt.latency_ok));
    }
    if (p->sla_frequency_ns > 0) {
        json_object_set_new(f, "frequency_s", json_real((double)p->sla_frequency_ns / 1e9));
        json_object_set_new(f, "frequency_ok", json_boolean(pt.frequency_ok));
    }
    json_object_set_new(o, "freshness", f);
    return o;
}

double mesh_quality_score(mesh_quality_t *q, const mesh_snap_domain_t *sd, const mesh_product_t *p)
{
    mesh_product_stats_t st;
    memset(&st, 0, sizeof st);
    mesh_store_product_stats(mesh_domain_store(sd->dom), p->name, &st);
    char key[160];
    snprintf(key, sizeof key, "%s.%s", p->domain, p->name);
    parts_t pt;
    pthread_mutex_lock(&q->lock);
    parts_of(entry_find(q, key), p, &st, &pt);
    pthread_mutex_unlock(&q->lock);
    return score_of(&pt);
}

static void gauge(mesh_buf_t *b, const char *name, const mesh_product_t *p, const char *rule,
                  double v)
{
    mesh_buf_printf(b, "%s{domain=\"", name);
    mesh_metrics_label(b, p->domain);
    mesh_buf_adds(b, "\",product=\"");
    mesh_metrics_label(b, p->name);
    if (rule) {
        mesh_buf_adds(b, "\",rule=\"");
        mesh_metrics_label(b, rule);
    }
    mesh_buf_printf(b, "\"} %.17g\n", v);
}

void mesh_quality_metrics(mesh_quality_t *q, mesh_snapshot_t *snap, mesh_buf_t *b)
{
    mesh_metrics_help(b, "meshd_quality_score", "gauge",
                      "Quality score of a product, 0-100 (docs/quality.md).");
    mesh_metrics_help(b, "meshd_quality_completeness", "gauge",
                      "Share of non-null cells of a product at its last evaluation.");
    mesh_metrics_help(b, "meshd_quality_validity", "gauge",
                      "Share of a product's rows accepted rather than quarantined.");
    mesh_metrics_help(b, "meshd_quality_rule_passed", "gauge",
                      "1 when a quality rule passed at its last evaluation, else 0.");
    mesh_metrics_help(b, "meshd_quality_freshness_ok", "gauge",
                      "1 when a product's newest row is within its contract's latency and "
                      "frequency, else 0.");
    for (size_t i = 0; i < snap->ndoms; i++) {
        const mesh_snap_domain_t *sd = &snap->doms[i];
        for (size_t k = 0; k < sd->ncrefs; k++) {
            const mesh_contract_t *c = sd->crefs[k]->c;
            for (size_t j = 0; j < c->nproducts; j++) {
                const mesh_product_t *p = &c->products[j];
                mesh_product_stats_t st;
                memset(&st, 0, sizeof st);
                mesh_store_product_stats(mesh_domain_store(sd->dom), p->name, &st);
                char key[160];
                snprintf(key, sizeof key, "%s.%s", p->domain, p->name);
                parts_t pt;
                pthread_mutex_lock(&q->lock);
                const entry_t *e = entry_find(q, key);
                parts_of(e, p, &st, &pt);
                double score = score_of(&pt);
                if (score >= 0)
                    gauge(b, "meshd_quality_score", p, NULL, score);
                if (pt.completeness >= 0)
                    gauge(b, "meshd_quality_completeness", p, NULL, pt.completeness);
                if (pt.validity >= 0)
                    gauge(b, "meshd_quality_validity", p, NULL, pt.validity);
                if (pt.freshness >= 0)
                    gauge(b, "meshd_quality_freshness_ok", p, NULL, pt.freshness);
                size_t ri;
                json_t *r;
                json_array_foreach(e ? e->rules : NULL, ri, r)
                {
                    const char *name = json_string_value(json_object_get(r, "name"));
                    gauge(b, "meshd_quality_rule_passed", p, name ? name : "",
                          json_is_true(json_object_get(r, "passed")) ? 1 : 0);
                }
                pthread_mutex_unlock(&q->lock);
            }
        }
    }
}

/* ---- the scheduler ------------------------------------------------------------------------- */

static void run_all(mesh_quality_t *q)
{
    mesh_snapshot_t *snap = mesh_registry_snapshot(q->reg);
    if (snap == NULL)
        return;
    size_t done = 0, failed = 0;
    for (size_t i = 0; i < snap->ndoms; i++) {
        const mesh_snap_domain_t *sd = &snap->doms[i];
        for (size_t k = 0; k < sd->ncrefs; k++) {
            const mesh_contract_t *c = sd->crefs[k]->c;
            for (size_t j = 0; j < c->nproducts; j++) {
                pthread_mutex_lock(&q->lock);
                bool stop = q->stop;
                pthread_mutex_unlock(&q->lock);
                if (stop)
                    goto out;
                mesh_err_t err;
                mesh_err_clear(&err);
                pthread_mutex_lock(&q->run_lock);
                mesh_status_t st = evaluate(q, snap, &c->products[j], &err);
                if (st != MESH_OK && st != MESH_UNAVAILABLE) {
                    failed++;
                    LOG_WARN("quality", "%s.%s: %s", sd->meta.name, c->products[j].name, err.msg);
                }
                pthread_mutex_unlock(&q->run_lock);
                done++;
            }
        }
    }
out:
    mesh_snapshot_put(snap);
    LOG_DEBUG("quality", "evaluated %zu products (%zu failed)", done, failed);
}

static void *scheduler(void *arg)
{
    mesh_thread_name("quality", NULL);
    mesh_quality_t *q = arg;
    int64_t next =
        mesh_mono_ns() + (q->interval_ns < FIRST_DELAY_NS ? q->interval_ns : FIRST_DELAY_NS);
    pthread_mutex_lock(&q->lock);
    while (!q->stop) {
        int64_t now = mesh_mono_ns();
        if (now < next) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t wait = next - now;
            if (wait > MESH_NS_PER_SEC)
                wait = MESH_NS_PER_SEC;
            ts.tv_sec += (time_t)(wait / MESH_NS_PER_SEC);
            ts.tv_nsec += (long)(wait % MESH_NS_PER_SEC);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&q->wake, &q->lock, &ts);
            continue;
        }
        pthread_mutex_unlock(&q->lock);
        run_all(q);
        next = mesh_mono_ns() + q->interval_ns;
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

mesh_status_t mesh_quality_open(mesh_registry_t *reg, mesh_qpool_t *pool, int64_t interval_ns,
                                mesh_quality_t **out, mesh_err_t *err)
{
    mesh_quality_t *q = calloc(1, sizeof *q);
    if (q == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    q->reg = reg;
    q->pool = pool;
    q->interval_ns = interval_ns;
    mesh_policy_src_t src;
    memset(&src, 0, sizeof src);
    mesh_status_t st = mesh_policy_build(&src, &q->policy, err);
    if (st != MESH_OK) {
        free(q);
        return st;
    }
    /* the node's own identity: never a catalog principal (ids from 1), never a token */
    q->who.principal_id = 0;
    snprintf(q->who.name, sizeof q->who.name, "meshd:quality");
    snprintf(q->who.roles, sizeof q->who.roles, "admin");
    pthread_mutex_init(&q->lock, NULL);
    pthread_mutex_init(&q->run_lock, NULL);
    mesh_cond_init_mono(&q->wake);
    if (interval_ns > 0) {
        if (pthread_create(&q->thread, NULL, scheduler, q) != 0) {
            mesh_quality_close(q);
            return mesh_err_set(err, MESH_INTERNAL, "cannot start the quality scheduler");
        }
        q->thread_started = true;
    }
    *out = q;
    return MESH_OK;
}

void mesh_quality_close(mesh_quality_t *q)
{
    if (q == NULL)
        return;
    pthread_mutex_lock(&q->lock);
    q->stop = true;
    if (q->active) /* a long measure must not hold the node's stop */
        mesh_query_cancel(q->active);
    pthread_cond_broadcast(&q->wake);
    pthread_mutex_unlock(&q->lock);
    if (q->thread_started)
        pthread_join(q->thread, NULL);
    for (size_t i = 0; i < q->n; i++)
        json_decref(q->entries[i].rules);
    free(q->entries);
    mesh_policy_put(q->policy);
    pthread_cond_destroy(&q->wake);
    pthread_mutex_destroy(&q->lock);
    pthread_mutex_destroy(&q->run_lock);
    free(q);
}
