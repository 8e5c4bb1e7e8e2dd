/*
 * node.h - one meshd process: its options, catalog, domains, authentication, query pool,
 * metrics, audit log and HTTP server, and their start and stop.
 */
#ifndef MESH_NODE_NODE_H
#define MESH_NODE_NODE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "catalog/catalog.h"
#include "catalog/registry.h"
#include "core/config.h"
#include "crypt/keys.h"
#include "http/metrics.h"
#include "mesh/mesh.h"
#include "mesh/repl.h"
#include "quality/quality.h"
#include "query/query.h"
#include "store/space.h"
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
    int64_t min_free_space; /* bytes kept free on the data disk: writes refused below (0: off) */
    int64_t quality_interval;
    int64_t retention_interval; /* ns; 0: no retention job */
    int64_t retention_batch;    /* rows per retention record */
    int64_t login_ttl;
    int64_t audit_checkpoint_records;
    int64_t audit_checkpoint_interval;
    int64_t audit_segment_size;
    int64_t audit_retention;
    bool metrics_auth;
    char *rules_file;
    int64_t rules_tick;
    int64_t action_queue;
    /* the mesh (mesh/mesh.h); mesh NULL: the node runs alone */
    char *mesh;
    char *mesh_tls_ca;
    char *mesh_tls_cert;
    char *mesh_tls_key;
    char *mesh_user;
    char *mesh_password_file;
    char *mesh_js_domain;
    int64_t mesh_heartbeat; /* ns */
    int64_t mesh_ttl;       /* ns */
    int64_t mesh_replicas;
    int64_t mesh_timeout;          /* ns */
    int64_t mesh_stream_max_age;   /* ns: records kept in a domain's stream it creates */
    int64_t mesh_stream_max_bytes; /* bytes (0: no limit) */
    int64_t mesh_stream_max_msgs;  /* records (0: no limit) */
    char *mesh_api_url;
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
    char *log_levels;
    char *log_file;
    /* encryption at rest (node/encryption.c) */
    char *encryption;
    char *kek_file;
    char *kek;
    char *kek_passphrase;
    char *kek_passphrase_file;
    char *kek_command;
    int64_t kek_command_timeout;
    /* backups (node/backup.c) */
    char *backup_dir;
    int64_t backup_schedule;
    int64_t backup_retention;
    int64_t backup_retention_age;
    /* built-in health alerts (node/health.c) */
    char *health_domain; /* NULL or "": off */
    int64_t health_interval;
    int64_t health_disk_low;        /* bytes; 0: off */
    int64_t health_node_down;       /* ns; 0: off */
    int64_t health_replication_lag; /* ns; 0: off */
    bool health_freshness;
    int64_t health_quality_min;   /* 0..100; 0: off */
    int64_t health_auth_failures; /* 0: off */
    int64_t health_auth_window;   /* ns */
    char *health_webhook_url;
    char *health_webhook_secret_file;
    char *health_webhook_ca_file;
    char *health_webhook_alerts;
    char *health_mqtt_topic;
    char *health_mqtt_alerts;
    /* OpenLineage run events (node/lineage.c) */
    char *openlineage_file;
    int64_t openlineage_file_max_size; /* bytes; 0: never rotated */
    char *openlineage_url;
    char *openlineage_token_file;
    char *openlineage_ca_file;
    int64_t openlineage_timeout; /* ns */
    int64_t openlineage_retries;
    int64_t openlineage_queue;
    char *openlineage_namespace;
} mesh_node_opts_t;

extern const mesh_opts_spec_t mesh_node_opts_spec;

typedef struct mesh_http mesh_http_t;
struct mesh_actions;
struct mesh_rule_event;
typedef struct mesh_backups mesh_backups_t;
typedef struct mesh_mqtt mesh_mqtt_t;
typedef struct mesh_node_repl mesh_node_repl_t;
typedef struct mesh_node_edge mesh_node_edge_t;

typedef struct mesh_derived mesh_derived_t;

typedef struct mesh_node {
    mesh_node_opts_t opts;
    mesh_catalog_t *cat;
    mesh_registry_t *reg;
    mesh_auth_t *auth;
    mesh_audit_t *audit; /* the tamper-evident audit log (DATA_DIR/audit) */
    mesh_qpool_t *qpool;
    mesh_quality_t *quality; /* dataset quality rules and reports */
    mesh_metrics_t *metrics;
    mesh_space_t *space; /* the data directory's free-space guard (min_free_space) */
    mesh_http_t *http;
    mesh_tls_t *tls;        /* the listener's TLS context; NULL with tls = off */
    mesh_mesh_t *mesh;      /* the link to the mesh; NULL when the node runs alone */
    char mesh_api_url[300]; /* the API URL this node advertises in the registry */
    mesh_mqtt_t *mqtt;      /* MQTT ingest: mappings, and the broker connection when configured */
    int64_t started_ns;
    atomic_bool ready;
    char listen_addr[128]; /* the address actually bound (with the real port) */
    /* encryption at rest: kek NULL when off. The KEK object is shared with every domain and
     * replaced in place by a rotation (see crypt/keys.h). */
    mesh_kek_t *kek;
    mesh_key_t *catalog_key;
    bool catalog_attached;
    bool kek_in_data_dir;        /* the generated DATA/kek.key */
    mesh_backups_t *backups;     /* node/backup.c */
    pthread_mutex_t rotate_lock; /* one KEK rotation at a time */
    bool rotate_lock_init;
    /* rules (node/rules.c): the action thread, and the alert transitions that came before it
     * started (replay at open) */
    struct mesh_actions *actions;
    pthread_mutex_t ev_lock;
    struct mesh_rule_event *ev_pending;
    bool ev_closed;             /* stopping: transitions are left to the outboxes */
    struct mesh_health *health; /* node/health.h: tallies of the built-in health alerts */
    int64_t health_next_ns;     /* when the health tick next writes samples */
    mesh_node_repl_t *repl;     /* replicated domains (node/repl.c) */
    mesh_node_edge_t *edge;     /* hub copies of this edge node's domains (node/edge.c) */
    /* `meshd --accept-catalog-rollback`: a start accepts a catalog older than the audit log
     * records (changes lost), raises its version and audits catalog.rollback_accepted */
    bool accept_catalog_rollback;
    /* federated queries (node/fed.c): the node's signing key, the transport, and the domains
     * other live nodes host (read from the registry when a query needs them) */
    struct mesh_signkey *signkey;
    struct mesh_fed *fed;
    pthread_mutex_t fed_lock;
    char (*fed_remote)[64];
    size_t fed_nremote;
    int64_t fed_remote_mono;       /* when fed_remote was read */
    struct node_reaper *reaper;    /* node/rules.c: deletes the outbox rows of ended actions */
    struct mesh_ol_emitter *ol;    /* OpenLineage sinks (node/lineage.c); NULL: none */
    struct mesh_derived *derived;  /* node/derived.c: refresh states of SQL-derived products */
    struct mesh_snap *snap;        /* snapshot bootstrap between hosts (node/bootstrap.c) */
    struct mesh_signkey *snap_key; /* its own handle on the node's signing key */
} mesh_node_t;

/* Opens the data directory (creating it and the admin credential on first start) and binds
 * the listener. The generated admin token, if any, is printed to stdout once. */
mesh_status_t mesh_node_start(mesh_node_t *n, mesh_err_t *err);
/* Handles SIGTERM, SIGINT and SIGHUP, logs "listening on http(s)://ADDR" (the line harnesses
 * wait for), runs until SIGTERM or SIGINT, then stops cleanly. */
int mesh_node_run(mesh_node_t *n);
void mesh_node_stop(mesh_node_t *n);

/* ---- OpenLineage run events (node/lineage.c, docs/derived.md) ---- */

/* Starts the sinks the openlineage_* options name (none: n->ol stays NULL). */
mesh_status_t mesh__node_lineage_start(mesh_node_t *n, mesh_err_t *err);
/* Stops them (after the domains: the file sink writes what is queued). */
void mesh__node_lineage_stop(mesh_node_t *n);

struct mesh_lineage;
/* One refresh of derived product `product` of `domain` (a run): emits a START event at
 * start_ns and a COMPLETE (status MESH_OK) or FAIL (with error) event at end_ns, with the
 * same run id. lin is the product's lineage (input products and per column the inputs);
 * input gives the definition of each input product of lin->tables (NULL: the dataset goes
 * without its schema facet). Never blocks and never fails: see derive/openlineage.h. For any
 * kind of derived product (continuous aggregates call it from the domain writer). */
typedef const mesh_product_t *(*mesh_node_input_fn)(void *arg, const char *domain,
                                                    const char *product);
void mesh_node_lineage_run(mesh_node_t *n, const char *domain, const mesh_product_t *product,
                           const struct mesh_lineage *lin, mesh_node_input_fn input, void *arg,
                           int64_t start_ns, int64_t end_ns, mesh_status_t status,
                           const char *error);

/* ---- retention (node/retention.c) ---- */
/* One retention pass over every domain: expired rows of products with a retention and no
 * legal hold are deleted in batches through the log (audited), then free pages go back. */
/* report (may be NULL): a JSON array of {domain, product, deleted, batches, held, ...}. */
void mesh__node_retention_run(mesh_node_t *n, mesh_buf_t *report);
/* ---- rules (node/rules.c) ---- */

/* The domains' event callback (mesh_domain_opts_t.events; arg: the node): audits each alert
 * transition and queues its actions. */
void mesh__node_rule_events(void *arg, mesh_domain_t *d, struct mesh_rule_event *ev);
/* The domains' refresh callback (node/lineage.c): a continuous aggregate's refresh as an
 * OpenLineage run. */
struct mesh_domain_refresh;
void mesh__node_refresh(void *arg, mesh_domain_t *d, const struct mesh_domain_refresh *r);
/* Starts the action thread (after the audit log and authentication) and applies rules_file. */
mesh_status_t mesh__node_rules_start(mesh_node_t *n, mesh_err_t *err);
/* A tick for absence rules in every domain (the event loop's timer). */
void mesh__node_rules_tick(mesh_node_t *n);
void mesh__node_rules_stop(mesh_node_t *n);
/* Joins the mesh when the mesh option is set (node/mesh.c): starts the connection and the
 * heartbeat of this node's registry entry. Returns at once; the link comes up in the
 * background. */
mesh_status_t mesh__node_mesh_start(mesh_node_t *n, mesh_err_t *err);
/* Federated queries (node/fed.c): the signing key and the transport, before the mesh starts;
 * at every heartbeat, the domains served and the remote ones; stopped before the mesh. */
mesh_status_t mesh__node_fed_start(mesh_node_t *n, mesh_err_t *err);
void mesh__node_fed_heartbeat(mesh_node_t *n, mesh_snapshot_t *s);
void mesh__node_fed_stop(mesh_node_t *n);
/* The federation's counters in the Prometheus text format. */
void mesh__node_fed_metrics(mesh_node_t *n, mesh_buf_t *b);

/* Snapshot bootstrap (node/bootstrap.c, mesh/snap.h, decision 0033). recover: at start,
 * before the domains open, settles what an interrupted bootstrap left (a complete snapshot
 * is moved in, a partial one deleted). start: the transport, after mesh__node_fed_start
 * (the signing key). heartbeat: the domains served. stop: before the mesh stops, after the
 * replicators (which fetch through it). */
mesh_status_t mesh__node_bootstrap_recover(mesh_node_t *n, mesh_err_t *err);
/* The directory holding domain name's files: DATA/domains/<name>, or the newest complete
 * bootstrap copy not moved there yet (a crash after its commit point). */
void mesh__node_bootstrap_domain_dir(const mesh_node_t *n, const char *name, char *out, size_t cap);
mesh_status_t mesh__node_bootstrap_start(mesh_node_t *n, mesh_err_t *err);
void mesh__node_bootstrap_heartbeat(mesh_node_t *n, mesh_snapshot_t *s);
void mesh__node_bootstrap_stop(mesh_node_t *n);
/* (a mesh_repl_bootstrap_fn; node: the mesh_node_t) The replicator of domain r found its position
 * below what the stream holds (first: the stream's first sequence): fetches a snapshot from another
 * host, installs it and returns MESH_OK once the domain holds it (the replicator then consumes
 * after its sequence). Runs on the replicator's thread. */
mesh_status_t mesh__node_bootstrap(void *node, const char *domain, mesh_repl_t *r, uint64_t first,
                                   mesh_err_t *err);

/* Built-in health alerts (node/health.c): with health_domain set, creates the domain, its
 * contract and the alert rules from the options (after the rules' start). */
mesh_status_t mesh__node_health_start(mesh_node_t *n, mesh_err_t *err);
/* Writes the health samples when health_interval has passed (the event loop's timer). */
void mesh__node_health_tick(mesh_node_t *n);
/* Replicated domains (node/repl.c): starts the stream replicator of every domain hosted here
 * with a replication mode, stops those no longer hosted, and makes writes of replicated
 * domains without a running replicator fail (503) rather than bypass the stream. Called at
 * start (before the API, and after the mesh started) and after a domain is created or
 * deleted. */
void mesh__node_repl_sync(mesh_node_t *n);
void mesh__node_repl_stop(mesh_node_t *n);
/* Runs fn(arg) while no replicator starts or stops, if r is still domain's replicator (not
 * stopping): true then. For snapshot bootstrap's swap (node/bootstrap.c), on r's thread. */
bool mesh__node_repl_exclusive(mesh_node_t *n, const char *domain, mesh_repl_t *r,
                               void (*fn)(void *arg), void *arg);
/* Calls fn with the status of each replicated domain (metrics, status). */
/* Reports each replica's lag (of every domain replicated here) to the health tallies. */
void mesh__node_repl_health(mesh_node_t *n);
void mesh__node_repl_each(mesh_node_t *n,
                          void (*fn)(void *arg, const char *domain, const mesh_repl_status_t *st),
                          void *arg);

/* Edge offline (node/edge.c, mesh/source.h): for each replicated domain hosted here that is
 * not residency local, has the hub keep a sourced copy of its stream when this node is
 * behind a leaf. Called by mesh__node_repl_sync and mesh__node_repl_stop. */
void mesh__node_edge_sync(mesh_node_t *n);
void mesh__node_edge_stop(mesh_node_t *n);
/* Calls fn with the status of each hub copy (status). */
struct mesh_source_status;
void mesh__node_edge_each(mesh_node_t *n,
                          void (*fn)(void *arg, const char *domain,
                                     const struct mesh_source_status *st),
                          void *arg);

/* Takes DATA/LOCK (one meshd per data directory); node.c. */
mesh_status_t mesh__node_lock_data_dir(const char *dir, mesh_err_t *err);
/* The audit log's keys (node.c): derived from the node's key when encryption at rest is on
 * (after mesh_node_crypt_open), else DATA_DIR/audit/key, created on the first call. */
mesh_status_t mesh__node_audit_keys(mesh_node_t *n, mesh_audit_keys_t *out, mesh_err_t *err);
/* The audit keys of an encrypted node, derived from its key (encryption.c). */
mesh_status_t mesh_audit_keys_from_node_key(const mesh_key_t *node_key, mesh_audit_keys_t *out,
                                            mesh_err_t *err);
/* The audit keys of data_dir read offline, without starting a node (meshctl audit --data-dir):
 * an encrypted directory's from its catalog.key opened with the KEK of src (DATA/kek.key
 * when src names none), a clear one's from DATA/audit/key. Nothing is created or changed. */
mesh_status_t mesh_audit_keys_offline(const char *data_dir, const mesh_kek_source_t *src,
                                      mesh_audit_keys_t *out, mesh_err_t *err);

/*
 * `meshd --verify` (node/verify.c): checks a stopped node's data directory without changing
 * it: the KEK opens every key file, every page of the catalog and of each domain's database
 * authenticates and passes SQLite's integrity check, every log record authenticates. Writes
 * one line per file to out. Returns 0 when all is well, 2 when the directory cannot be opened
 * (wrong key, in use), 3 when damage was found.
 */
int mesh_node_verify(mesh_node_t *n, FILE *out);

/* ---- encryption at rest (node/encryption.c) ---- */

/* Loads the KEK (generating DATA/kek.key on the first start when none is configured), checks
 * that it opens every key file of the data directory before anything is written, and
 * attaches the catalog's data key. With encryption=off, refuses an encrypted directory. */
mesh_status_t mesh_node_crypt_open(mesh_node_t *n, mesh_err_t *err);
/* After the catalog and the domains are closed. */
void mesh_node_crypt_close(mesh_node_t *n);

typedef struct mesh_kek_rotation {
    char kek_id[33], previous_kek_id[33];
    size_t key_files;
    bool in_data_dir; /* the new KEK was written to DATA/kek.key */
} mesh_kek_rotation_t;
/*
 * Rewraps every key file (the catalog's and each domain's) under next, in two phases so a
 * crash leaves every file readable with one KEK: first wrapped under both, then under next
 * only (after a crash in the first phase start with the old KEK, in the second with the new
 * one; each start drops the other wrap). into_data_dir: next is written to DATA/kek.key
 * (only when the current KEK is the generated one there); when the current KEK was there and
 * next is not, DATA/kek.key is deleted. Writes and queries go on; key file writes of domains
 * wait for the rotation. next stays the caller's.
 */
mesh_status_t mesh_node_rotate_kek(mesh_node_t *n, const mesh_kek_t *next, bool into_data_dir,
                                   mesh_kek_rotation_t *res, mesh_err_t *err);

#endif
