/*
 * health.h - built-in health alerts: the node watches itself and the mesh and raises alerts
 * through the rules engine (docs/operations.md "Built-in health alerts", decision 0025).
 *
 * Design: with `health_domain` set, the node keeps a domain of that name with one contract,
 * urn:meshd:contract:DOMAIN:health, whose products are samples the node writes every
 * `health_interval`:
 *
 *   disk         node, time, free_bytes, total_bytes, min_free_bytes
 *   nodes        node, time, silent_s, state      (other nodes of the mesh registry)
 *   replication  domain, replica, time, lag_s     (fed by mesh_health_set_lag)
 *   products     domain, product, time, fresh, score, age_s
 *   auth         source, time, failures           (failures within health_auth_window)
 *
 * and one threshold rule per alert (disk-space-low, node-down, replication-lag,
 * product-stale, quality-low, auth-failures) made from the health_* thresholds, with the
 * configured webhook and MQTT actions. Health alerts are then rule alerts: rows of the
 * domain's alerts product, acknowledged and resolved with meshctl alert, audited, delivered
 * at least once through the outbox. The samples are ordinary rows: an operator may add rules
 * of their own over them.
 *
 * The tallies below are fed from any thread and read by the node's health tick (the event
 * loop's timer). Everything is bounded: MESH_HEALTH_MAX_SOURCES client addresses and
 * MESH_HEALTH_MAX_LAGS replicas; beyond that new sources are counted under "other" and new
 * replicas are dropped (logged once).
 */
#ifndef MESH_NODE_HEALTH_H
#define MESH_NODE_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MESH_HEALTH_MAX_SOURCES 256
#define MESH_HEALTH_MAX_LAGS    1024
#define MESH_HEALTH_RING        64 /* auth tallies kept per source, one per tick */

typedef struct mesh_health mesh_health_t;

/* The tallies; NULL when out of memory (every function accepts a NULL h). */
mesh_health_t *mesh_health_new(void);
void mesh_health_free(mesh_health_t *h);

/* An authentication failure (a refused token or login) from a client address. */
void mesh_health_auth_failure(mesh_health_t *h, const char *addr);
/* Authentication failures counted since the start (for /metrics). */
uint64_t mesh_health_auth_failures_total(mesh_health_t *h);

/* Ends a tick of the authentication tallies: calls fn for every source with failures within
 * the last `ticks` ticks (count > 0), and once with count 0 for a source that had some at the
 * previous call and has none now (so its alert resolves). ticks is clamped to 1..RING. */
typedef void (*mesh_health_source_fn)(void *arg, const char *source, int64_t count);
void mesh_health_auth_tick(mesh_health_t *h, int ticks, mesh_health_source_fn fn, void *arg);

/* The replication hook: the replica `replica` of `domain` is `seconds` behind its stream
 * (0: caught up). Called by the replication code whenever it knows; the health tick writes
 * the last value of each. */
void mesh_health_set_lag(mesh_health_t *h, const char *domain, const char *replica, double seconds);
/* Calls fn for each known replica's lag. */
typedef void (*mesh_health_lag_fn)(void *arg, const char *domain, const char *replica,
                                   double seconds);
void mesh_health_lags(mesh_health_t *h, mesh_health_lag_fn fn, void *arg);

/* The names of the built-in alerts (the rules' names), and whether s is one. */
extern const char *const mesh_health_alert_names[];
extern const size_t mesh_health_nalerts;
/* Whether a comma-separated list of alert names ("all", "none" or names) is valid; when not,
 * the first unknown name goes to bad (cap bytes). */
bool mesh_health_list_ok(const char *list, char *bad, size_t cap);
/* Whether alert `name` is in list ("all": every one; NULL, "" or "none": none). */
bool mesh_health_list_has(const char *list, const char *name);

/* The health contract of a domain (ODCS YAML, malloc'd), or NULL. */
char *mesh_health_contract(const char *domain);

#endif
