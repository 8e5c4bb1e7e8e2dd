/*
 * metrics.c - the Prometheus exposition of meshd's own counters.
 */
#include "http/metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/util.h"

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NB        ((int)MESH_ARRAY_LEN(buckets))
#define MAX_CODES 12

typedef struct hist {
    uint64_t counts[NB + 1]; /* last: +Inf */
    double sum;
    uint64_t n;
} hist_t;

typedef struct endpoint {
    const char *name;
    int codes[MAX_CODES];
    uint64_t by_code[MAX_CODES];
    int ncodes;
    hist_t lat;
} endpoint_t;

typedef struct pmetric {
    char domain[64], product[64];
    uint64_t rows, quarantined, refused, batches, bytes;
} pmetric_t;

struct mesh_metrics {
    pthread_mutex_t lock;
    endpoint_t *eps;
    int neps;
    pmetric_t *prods;
    size_t nprods, capprods;
    uint64_t queries, query_failures, query_timeouts, query_rows;
    hist_t query_lat;
    hist_t ingest_lat;        /* durable writes: log append, sync and apply */
    uint64_t alert_events[3]; /* fired, acknowledged, resolved */
};

mesh_metrics_t *mesh_metrics_new(const char *const *endpoints, int nendpoints)
{
    mesh_metrics_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->eps = calloc((size_t)nendpoints, sizeof *m->eps);
    if (m->eps == NULL) {
        free(m);
        return NULL;
    }
    for (int i = 0; i < nendpoints; i++)
        m->eps[i].name = endpoints[i];
    m->neps = nendpoints;
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

void mesh_metrics_free(mesh_metrics_t *m)
{
    if (m == NULL)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m->eps);
    free(m->prods);
    free(m);
}

static void hist_add(hist_t *h, double v)
{
    int i = 0;
    while (i < NB && v > buckets[i])
        i++;
    h->counts[i]++;
    h->sum += v;
    h->n++;
}

void mesh_metrics_request(mesh_metrics_t *m, int e, int status, double seconds)
{
    if (m == NULL || e < 0 || e >= m->neps)
        return;
    pthread_mutex_lock(&m->lock);
    endpoint_t *ep = &m->eps[e];
    int i = 0;
    while (i < ep->ncodes && ep->codes[i] != status)
        i++;
    if (i == ep->ncodes && ep->ncodes < MAX_CODES)
        ep->codes[ep->ncodes++] = status;
    if (i < ep->ncodes)
        ep->by_code[i]++;
    hist_add(&ep->lat, seconds);
    pthread_mutex_unlock(&m->lock);
}

void mesh_metrics_ingest(mesh_metrics_t *m, const char *domain, const char *product, int64_t rows,
                         int64_t quarantined, int64_t refused, int64_t bytes)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->lock);
    pmetric_t *p = NULL;
    for (size_t i = 0; i < m->nprods && !p; i++)
        if (strcmp(m->prods[i].domain, domain) == 0 && strcmp(m->prods[i].product, product) == 0)
            p = &m->prods[i];
    if (p == NULL) {
        if (m->nprods == m->capprods) {
            size_t ncap = m->capprods ? m->capprods * 2 : 16;
            pmetric_t *np = realloc(m->prods, ncap * sizeof *np);
            if (np == NULL) {
                pthread_mutex_unlock(&m->lock);
                return;
            }
            m->prods = np;
            m->capprods = ncap;
        }
        p = &m->prods[m->nprods++];
        memset(p, 0, sizeof *p);
        snprintf(p->domain, sizeof p->domain, "%s", domain);
        snprintf(p->product, sizeof p->product, "%s", product);
    }
    p->rows += (uint64_t)rows;
    p->quarantined += (uint64_t)quarantined;
    p->refused += (uint64_t)refused;
    p->bytes += (uint64_t)bytes;
    p->batches++;
    pthread_mutex_unlock(&m->lock);
}

void mesh_metrics_ingest_time(mesh_metrics_t *m, double seconds)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->lock);
    hist_add(&m->ingest_lat, seconds);
    pthread_mutex_unlock(&m->lock);
}

void mesh_metrics_alert_event(mesh_metrics_t *m, int ev)
{
    if (m == NULL || ev < 0 || ev >= 3)
        return;
    pthread_mutex_lock(&m->lock);
    m->alert_events[ev]++;
    pthread_mutex_unlock(&m->lock);
}

void mesh_metrics_query(mesh_metrics_t *m, int64_t rows, double seconds, int failed, int timeout)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->lock);
    m->queries++;
    m->query_rows += (uint64_t)rows;
    if (failed)
        m->query_failures++;
    if (timeout)
        m->query_timeouts++;
    hist_add(&m->query_lat, seconds);
    pthread_mutex_unlock(&m->lock);
}

void mesh_metrics_help(mesh_buf_t *out, const char *name, const char *type, const char *help)
{
    mesh_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void mesh_metrics_label(mesh_buf_t *out, const char *v)
{
    /* label values escape backslash, quote and newline */
    for (const char *c = v; *c; c++) {
        if (*c == '\\' || *c == '"')
            mesh_buf_addc(out, '\\');
        if (*c == '\n') {
            mesh_buf_adds(out, "\\n");
            continue;
        }
        mesh_buf_addc(out, *c);
    }
}

static void hist_write(mesh_buf_t *out, const char *name, const char *labels, const hist_t *h)
{
    uint64_t cum = 0;
    for (int i = 0; i <= NB; i++) {
        cum += h->counts[i];
        if (i < NB)
            mesh_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels,
                            *labels ? "," : "", buckets[i], (unsigned long long)cum);
        else
            mesh_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels,
                            *labels ? "," : "", (unsigned long long)cum);
    }
    if (*labels)
        mesh_buf_printf(out, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels, h->sum, name,
                        labels, (unsigned long long)h->n);
    else
        mesh_buf_printf(out, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name,
                        (unsigned long long)h->n);
}

void mesh_metrics_write(mesh_metrics_t *m, mesh_buf_t *out)
{
    pthread_mutex_lock(&m->lock);
    mesh_metrics_help(out, "meshd_http_requests_total", "counter",
                      "HTTP requests by endpoint and status code.");
    for (int e = 0; e < m->neps; e++)
        for (int i = 0; i < m->eps[e].ncodes; i++)
            mesh_buf_printf(out, "meshd_http_requests_total{endpoint=\"%s\",code=\"%d\"} %llu\n",
                            m->eps[e].name, m->eps[e].codes[i],
                            (unsigned long long)m->eps[e].by_code[i]);
    mesh_metrics_help(out, "meshd_http_request_duration_seconds", "histogram",
                      "Time from request to the end of the response, by endpoint.");
    for (int e = 0; e < m->neps; e++) {
        if (m->eps[e].lat.n == 0)
            continue;
        char labels[96];
        snprintf(labels, sizeof labels, "endpoint=\"%s\"", m->eps[e].name);
        hist_write(out, "meshd_http_request_duration_seconds", labels, &m->eps[e].lat);
    }
    static const struct {
        const char *name, *help;
        size_t off;
    } pm[] = {
        {"meshd_ingest_rows_total", "Rows stored, by product.", offsetof(pmetric_t, rows)},
        {"meshd_ingest_rows_quarantined_total", "Rows kept in quarantine, by product.",
         offsetof(pmetric_t, quarantined)},
        {"meshd_ingest_rows_refused_total", "Rows refused (their batch was refused), by product.",
         offsetof(pmetric_t, refused)},
        {"meshd_ingest_batches_total", "Batches written, by product.",
         offsetof(pmetric_t, batches)},
        {"meshd_ingest_bytes_total", "Bytes of request bodies written, by product.",
         offsetof(pmetric_t, bytes)},
    };
    for (size_t k = 0; k < MESH_ARRAY_LEN(pm); k++) {
        mesh_metrics_help(out, pm[k].name, "counter", pm[k].help);
        for (size_t i = 0; i < m->nprods; i++) {
            mesh_buf_printf(out, "%s{domain=\"", pm[k].name);
            mesh_metrics_label(out, m->prods[i].domain);
            mesh_buf_adds(out, "\",product=\"");
            mesh_metrics_label(out, m->prods[i].product);
            mesh_buf_printf(
                out, "\"} %llu\n",
                (unsigned long long)*(const uint64_t *)((const char *)&m->prods[i] + pm[k].off));
        }
    }
    mesh_metrics_help(out, "meshd_ingest_write_duration_seconds", "histogram",
                      "Time a batch took from its domain's log to its acknowledgement (append, "
                      "sync, apply).");
    hist_write(out, "meshd_ingest_write_duration_seconds", "", &m->ingest_lat);
    mesh_metrics_help(out, "meshd_queries_total", "counter", "Queries run.");
    mesh_buf_printf(out, "meshd_queries_total %llu\n", (unsigned long long)m->queries);
    mesh_metrics_help(out, "meshd_query_failures_total", "counter", "Queries that failed.");
    mesh_buf_printf(out, "meshd_query_failures_total %llu\n",
                    (unsigned long long)m->query_failures);
    mesh_metrics_help(out, "meshd_query_timeouts_total", "counter",
                      "Queries stopped by their time limit.");
    mesh_buf_printf(out, "meshd_query_timeouts_total %llu\n",
                    (unsigned long long)m->query_timeouts);
    mesh_metrics_help(out, "meshd_query_rows_total", "counter", "Rows returned by queries.");
    mesh_buf_printf(out, "meshd_query_rows_total %llu\n", (unsigned long long)m->query_rows);
    mesh_metrics_help(out, "meshd_query_duration_seconds", "histogram", "Query run time.");
    hist_write(out, "meshd_query_duration_seconds", "", &m->query_lat);
    mesh_metrics_help(out, "meshd_alert_events_total", "counter",
                      "Alert transitions of rules (built-in health alerts included), by event.");
    static const char *const evs[] = {"fired", "acknowledged", "resolved"};
    for (int i = 0; i < 3; i++)
        mesh_buf_printf(out, "meshd_alert_events_total{event=\"%s\"} %llu\n", evs[i],
                        (unsigned long long)m->alert_events[i]);
    pthread_mutex_unlock(&m->lock);
}

/* ---- the process (the standard names Prometheus client libraries use) ---- */

void mesh_metrics_process(mesh_buf_t *b)
{
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char buf[4096];
    FILE *f = fopen("/proc/self/stat", "re");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    /* fields after the command name (which may hold spaces): from the last ')' */
    const char *p = strrchr(buf, ')');
    unsigned long utime = 0, stime = 0, vsize = 0;
    long rss = 0;
    if (p && ticks > 0 &&
        sscanf(p + 2,
               "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
               "%*u %lu %ld",
               &utime, &stime, &vsize, &rss) == 4) {
        mesh_metrics_help(b, "process_cpu_seconds_total", "counter",
                          "User and system CPU time spent by meshd.");
        mesh_buf_printf(b, "process_cpu_seconds_total %.2f\n",
                        (double)(utime + stime) / (double)ticks);
        mesh_metrics_help(b, "process_resident_memory_bytes", "gauge", "Resident memory.");
        mesh_buf_printf(b, "process_resident_memory_bytes %lld\n", (long long)rss * page);
        mesh_metrics_help(b, "process_virtual_memory_bytes", "gauge", "Virtual memory.");
        mesh_buf_printf(b, "process_virtual_memory_bytes %lu\n", vsize);
    }
    int fds = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            fds++;
    if (d) {
        closedir(d);
        mesh_metrics_help(b, "process_open_fds", "gauge", "Open file descriptors.");
        mesh_buf_printf(b, "process_open_fds %d\n", fds - 1); /* less the one listing them */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        mesh_metrics_help(b, "process_max_fds", "gauge", "The limit of open file descriptors.");
        mesh_buf_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
}
