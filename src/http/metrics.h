/*
 * metrics.h - counters and histograms exported in the Prometheus text format.
 *
 * Request metrics are per endpoint (a route name) and status code; ingest metrics are per
 * product. Everything is updated with a short mutex-protected critical section once per
 * request or batch, never per row.
 */
#ifndef MESH_HTTP_METRICS_H
#define MESH_HTTP_METRICS_H

#include <stdint.h>

#include "core/buf.h"

typedef struct mesh_metrics mesh_metrics_t;

mesh_metrics_t *mesh_metrics_new(const char *const *endpoints, int nendpoints);
void mesh_metrics_free(mesh_metrics_t *m);

/* A request to endpoint index e ended with an HTTP status after seconds. */
void mesh_metrics_request(mesh_metrics_t *m, int e, int status, double seconds);
/* A batch for domain.product: rows stored, quarantined, refused (a refused batch counts all
 * its rows as refused). */
void mesh_metrics_ingest(mesh_metrics_t *m, const char *domain, const char *product, int64_t rows,
                         int64_t quarantined, int64_t refused, int64_t bytes);
/* A batch's durable write (log append, sync, apply) took seconds. */
void mesh_metrics_ingest_time(mesh_metrics_t *m, double seconds);
/* An alert transition (mesh_alert_ev_t: 0 fired, 1 acknowledged, 2 resolved). */
void mesh_metrics_alert_event(mesh_metrics_t *m, int ev);
/* A query ended: rows returned, seconds, and whether it failed (timeout counted apart). */
void mesh_metrics_query(mesh_metrics_t *m, int64_t rows, double seconds, int failed, int timeout);

/* Writes all counters and histograms. */
void mesh_metrics_write(mesh_metrics_t *m, mesh_buf_t *out);

/* Helpers for other modules writing gauges into the same exposition. */
void mesh_metrics_help(mesh_buf_t *out, const char *name, const char *type, const char *help);
void mesh_metrics_label(mesh_buf_t *out, const char *value);
/* The process's CPU time, memory and file descriptors (from /proc), Prometheus names. */
void mesh_metrics_process(mesh_buf_t *b);

#endif
