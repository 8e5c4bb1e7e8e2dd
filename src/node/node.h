/*
 * node.h - one meshd process: its options, catalog, domains, authentication, query pool,
 * metrics, audit log and HTTP server, and their start and stop.
 */
#ifndef MESH_NODE_NODE_H
#define MESH_NODE_NODE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "catalog/catalog.h"
#include "catalog/registry.h"
#include "core/config.h"
#include "http/metrics.h"
#include "query/query.h"
#include "tls/tls.h"

typedef struct mesh_node_opts {
    char *config;
    char *data_dir;
    char *listen;
    char *tls;             /* "on" | "off" */
    char *tls_cert;        /* NULL: generated in DATA_DIR/tls */
    char *tls_key;         /* NULL: in tls_cert */
    char *tls_client_ca;   /* CAs of accepted client certificates */
    char *tls_client_auth; /* "off" | "optional" | "require" */
    char *node_name;
    char *site;
    char *admin_token;
    char *admin_token_file;
    int64_t http_threads;
    int64_t max_body;
    int64_t max_batch_rows;
    int64_t max_errors;
    int64_t query_timeout;
    int64_t query_max_rows;
    int64_t query_sessions;
    char *sync;
    int64_t idempotency_ttl;
    int64_t checkpoint_interval;
    int64_t login_ttl;
    int64_t audit_checkpoint_records;
    int64_t audit_checkpoint_interval;
    int64_t audit_segment_size;
    int64_t audit_retention;
    bool metrics_auth;
    char *mqtt_url;
    char *mqtt_username;
    char *mqtt_password_file;
    char *mqtt_tls_ca;
    char *mqtt_client_cert;
    char *mqtt_client_key;
    char *mqtt_client_id;
    char *mqtt_protocol;
    int64_t mqtt_keepalive;
    int64_t mqtt_session_expiry;
    int64_t mqtt_reconnect_min;
    int64_t mqtt_reconnect_max;
    int64_t mqtt_max_payload;
    bool mqtt_ready;
    char *mqtt_mapping; /* mqtt_mapping lines, '\n'-separated */
    char *log_level;
    char *log_format;
} mesh_node_opts_t;

extern const mesh_opts_spec_t mesh_node_opts_spec;

typedef struct mesh_http mesh_http_t;
typedef struct mesh_mqtt mesh_mqtt_t;

typedef struct mesh_node {
    mesh_node_opts_t opts;
    mesh_catalog_t *cat;
    mesh_registry_t *reg;
    mesh_auth_t *auth;
    mesh_audit_t *audit; /* the tamper-evident audit log (DATA_DIR/audit) */
    mesh_qpool_t *qpool;
    mesh_metrics_t *metrics;
    mesh_http_t *http;
    mesh_tls_t *tls;   /* the listener's TLS context; NULL with tls = off */
    mesh_mqtt_t *mqtt; /* MQTT ingest: mappings, and the broker connection when configured */
    int64_t started_ns;
    atomic_bool ready;
    char listen_addr[128]; /* the address actually bound (with the real port) */
} mesh_node_t;

/* Opens the data directory (creating it and the admin credential on first start) and binds
 * the listener. The generated admin token, if any, is printed to stdout once. */
mesh_status_t mesh_node_start(mesh_node_t *n, mesh_err_t *err);
/* Handles SIGTERM, SIGINT and SIGHUP, logs "listening on http(s)://ADDR" (the line harnesses
 * wait for), runs until SIGTERM or SIGINT, then stops cleanly. */
int mesh_node_run(mesh_node_t *n);
void mesh_node_stop(mesh_node_t *n);

#endif
