/*
 * client.h - MQTT ingest: meshd subscribes to a broker and writes what mapped topics carry.
 *
 * One connection (libmosquitto, MQTT 5 or 3.1.1, TCP or TLS, user name and password and/or a
 * client certificate) with a stable client id and a persistent session, driven by one
 * dedicated thread that connects, reconnects with exponential backoff and jitter, and runs the
 * network loop. Messages are handled on that thread in arrival order: match a mapping, check
 * that the mapping's principal may write the product (access policy, audited), write the
 * message through the domain writer (mqtt/ingest.h) and only then return to libmosquitto,
 * which sends the PUBACK after the message callback returns. So a QoS 1 message is
 * acknowledged only once its rows (or its quarantine entry) are durable; a message whose write
 * failed is never acknowledged: the connection is closed instead, and the broker redelivers it
 * after the reconnect. The broker holds at most MESH_MQTT_RECEIVE_MAX unacknowledged messages
 * for meshd at once (MQTT 5 receive maximum).
 *
 * Mappings come from the catalog (created and deleted at run time through the HTTP API) and
 * from the config file (mqtt_mapping lines, read-only at run time). No two mappings may
 * overlap, so a message belongs to exactly one mapping.
 *
 * This is the only file that includes mosquitto.h.
 */
#ifndef MESH_MQTT_CLIENT_H
#define MESH_MQTT_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "catalog/catalog.h"
#include "catalog/registry.h"
#include "core/buf.h"
#include "core/status.h"
#include "ingest/batch.h"
#include "mqtt/mapping.h"

#define MESH_MQTT_RECEIVE_MAX 32

typedef struct mesh_mqtt_opts {
    const char *url;         /* mqtt://HOST[:PORT] or mqtts://HOST[:PORT]; NULL/"": no broker */
    const char *username;    /* NULL: none */
    const char *password;    /* NULL: none (copied, wiped on destroy) */
    const char *tls_ca;      /* PEM CA file; NULL: the system's CAs (mqtts) */
    const char *client_cert; /* PEM client certificate (mqtts) */
    const char *client_key;  /* its key */
    const char *client_id;   /* stable id of the persistent session */
    const char *protocol;    /* "5" or "3.1.1" */
    int64_t keepalive_ns;
    int64_t session_expiry_ns; /* MQTT 5: how long the broker keeps the session offline */
    int64_t reconnect_min_ns, reconnect_max_ns;
    size_t max_payload;
    mesh_batch_limits_t limits;
    const char *const *config_mappings; /* mqtt_mapping lines */
    size_t nconfig_mappings;
} mesh_mqtt_opts_t;

typedef struct mesh_mqtt mesh_mqtt_t;

/* Loads the mappings (config lines first: a bad one fails with its reason) and, when a url
 * is given, starts the connection thread. */
mesh_status_t mesh_mqtt_start(const mesh_mqtt_opts_t *o, mesh_registry_t *reg, mesh_catalog_t *cat,
                              mesh_auth_t *auth, mesh_audit_t *audit, mesh_mqtt_t **out,
                              mesh_err_t *err);
/* Disconnects, stops the thread and frees everything. NULL is fine. */
void mesh_mqtt_stop(mesh_mqtt_t *q);

/* Adds a mapping (parsed and checked by mapping.c) after checking it against the catalog
 * (product, columns of the named levels, principal) and the other mappings (names, overlap),
 * stores it in the catalog and subscribes. m is copied (its template moved: do not free it on
 * success). MESH_INVALID, MESH_NOT_FOUND or MESH_CONFLICT with a reason. */
mesh_status_t mesh_mqtt_mapping_add(mesh_mqtt_t *q, mesh_mqtt_mapping_t *m, mesh_err_t *err);
/* Deletes a catalog mapping and unsubscribes. A config file mapping: MESH_CONFLICT. */
mesh_status_t mesh_mqtt_mapping_remove(mesh_mqtt_t *q, const char *name, mesh_err_t *err);
/* {"mappings":[...]} with each mapping's counters; only the mappings into a domain for which
 * visible(arg, domain) is true (visible NULL: all). */
mesh_status_t mesh_mqtt_mappings_json(mesh_mqtt_t *q,
                                      bool (*visible)(void *arg, const char *domain), void *arg,
                                      mesh_buf_t *out);
/* One mapping as JSON (with its counters): MESH_NOT_FOUND when there is none. domain (64
 * bytes) receives its domain either way it exists. */
mesh_status_t mesh_mqtt_mapping_json(mesh_mqtt_t *q, const char *name, char *domain,
                                     mesh_buf_t *out);
/* The connection's state, counters and last error as a JSON object. */
mesh_status_t mesh_mqtt_status_json(mesh_mqtt_t *q, mesh_buf_t *out);
/* Whether a broker is configured, and whether the session is up now. */
bool mesh_mqtt_enabled(const mesh_mqtt_t *q);
bool mesh_mqtt_connected(mesh_mqtt_t *q);
/* Prometheus metrics (meshd_mqtt_*). */
void mesh_mqtt_metrics(mesh_mqtt_t *q, mesh_buf_t *out);

#endif
