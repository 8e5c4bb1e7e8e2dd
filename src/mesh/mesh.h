/*
 * mesh.h - this node's link to the mesh: one NATS connection (libnats) to a nats-server
 * cluster or leaf node, and the node's entry in the mesh registry, a JetStream KV bucket.
 * The only module that includes nats.h.
 *
 * Design: mesh_mesh_start() returns at once; a background thread owns the connection. The
 * connection retries a failed first connect and reconnects forever with a capped backoff;
 * while connected, the thread makes sure the registry bucket exists (creating it with 3
 * replicas when the server pool has 3 or more servers, else 1) and writes the node's entry
 * every heartbeat. mesh_mesh_stop() writes a last entry in state "stopped", closes the
 * connection and joins the thread. Reads of the registry (mesh_mesh_list) run on the
 * caller's thread (an HTTP worker) through the same connection; libnats is thread-safe.
 * The mesh never affects /readyz: a node serves its own domains with or without the mesh;
 * mesh_mesh_status() reports the link (status, metrics).
 *
 * Liveness: an entry is alive when its state is "running" and the server wrote it less than
 * the entry's own ttl ago, by the reading node's clock (the KV entry's time is the server's:
 * keep hub and node clocks in NTP sync). Entries are kept for MESH_REGISTRY_MAX_AGE after
 * their last write, then JetStream drops them.
 */
#ifndef MESH_MESH_MESH_H
#define MESH_MESH_MESH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"
#include "mesh/entry.h"

#define MESH_REGISTRY_BUCKET   "meshd_nodes"
#define MESH_REGISTRY_MAX_AGE  (7LL * 86400 * 1000000000LL) /* ns an entry outlives its node */
#define MESH_REGISTRY_MAX_KEYS 4096                         /* entries read by one listing */

/* Writes the node's entry (state running, or stopped, heartbeat now) into out; called by the mesh
 * thread at every heartbeat. Returns MESH_OK or an error (the heartbeat is then skipped). */
typedef mesh_status_t (*mesh_mesh_describe_fn)(void *arg, bool stopped, mesh_buf_t *out);

typedef struct mesh_mesh_opts {
    const char *servers;       /* "nats://h1:4222,tls://h2:4222" */
    const char *tls_ca;        /* PEM CA verifying the servers (turns TLS on), or NULL */
    const char *tls_cert;      /* PEM client certificate, or NULL */
    const char *tls_key;       /* its key (NULL: none; libnats needs both) */
    const char *user;          /* NATS user, or NULL */
    const char *password_file; /* first line is the password, or NULL */
    const char *js_domain;     /* JetStream domain of the registry, or NULL: the server's */
    const char *node_name;     /* registry key and connection name (mesh_entry_node_name_ok) */
    int64_t heartbeat_ns;      /* between two entry writes */
    int64_t timeout_ns;        /* of one request to the server */
    int replicas;              /* of the bucket when this node creates it; 0: auto */
    /* limits of a domain stream this node creates (mesh/repl.h): MaxAge (0: 7 days), MaxBytes
     * and MaxMsgs (0: none). A replica behind what they keep bootstraps from a snapshot. */
    int64_t stream_max_age_ns;
    int64_t stream_max_bytes;
    int64_t stream_max_msgs;
    mesh_mesh_describe_fn describe;
    void *describe_arg;
} mesh_mesh_opts_t;

typedef struct mesh_mesh mesh_mesh_t;

/* Checks the options (readable files, a node name that can be a key), reads the password
 * and starts the mesh thread. Strings are copied. */
mesh_status_t mesh_mesh_start(const mesh_mesh_opts_t *o, mesh_mesh_t **out, mesh_err_t *err);
/* Marks the entry stopped (best effort, bounded by timeout_ns), disconnects, joins the
 * thread, frees. NULL is fine. */
void mesh_mesh_stop(mesh_mesh_t *m);

typedef struct mesh_mesh_status {
    const char *state;       /* "connecting", "connected", "reconnecting", "closed" */
    char server[256];        /* URL of the server connected to ("" when none) */
    char server_version[32]; /* from the server's INFO ("" when unknown) */
    bool server_pre_2_10;    /* older than 2.10: fsync on a timer (see docs/mesh.md) */
    int64_t max_payload;     /* the server's max payload, as last connected (0: unknown) */
    bool registered;         /* the last heartbeat succeeded */
    int64_t last_heartbeat_ns;
    uint64_t heartbeats, heartbeat_failures, reconnects;
    char last_error[256];
    /* streams whose subjects take in this node's inbox (comma-separated, "" when none): whoever
     * reads them reads the replies sent to this node (docs/mesh.md, "Limits of part 1");
     * checked at every heartbeat */
    char inbox_captured_by[256];
    char requests_captured_by[256]; /* likewise for the requests to domains (meshd.dom.*.req.>) */
} mesh_mesh_status_t;

void mesh_mesh_status(mesh_mesh_t *m, mesh_mesh_status_t *out);

/* One registry entry as read. */
typedef struct mesh_mesh_node {
    mesh_entry_t *e;
    int64_t written_ns; /* when the server stored it (Unix ns) */
    bool alive;
} mesh_mesh_node_t;

/* Reads every entry of the registry (at most MESH_REGISTRY_MAX_KEYS), sorted by name. An
 * entry that fails mesh_entry_parse is skipped and logged. MESH_UNAVAILABLE when not
 * connected. Free with mesh_mesh_list_free. */
mesh_status_t mesh_mesh_list(mesh_mesh_t *m, mesh_mesh_node_t **out, size_t *n, mesh_err_t *err);
void mesh_mesh_list_free(mesh_mesh_node_t *v, size_t n);
/* Reads one node's entry (out->e is the caller's: mesh_entry_free). MESH_NOT_FOUND when the
 * registry has none, MESH_UNAVAILABLE when not connected. */
mesh_status_t mesh_mesh_get(mesh_mesh_t *m, const char *name, mesh_mesh_node_t *out,
                            mesh_err_t *err);

/* ---- requests between nodes ----
 *
 * NATS request/reply on per-domain subjects `meshd.dom.<domain>.req.<kind>`, served in a
 * queue group: every node serving a kind for a domain subscribes, one of them answers each
 * request, and when one dies the others answer the next ones. Used for forwarded writes
 * (kind "write") and federated scans. Requests and replies are opaque bytes; their format is
 * the kind's business, and a served request is untrusted input (only nodes whose NATS user may
 * publish on the subject reach it; meshctl mesh config grants `meshd.dom.*.req.>`).
 */
#define MESH_MESH_KIND_MAX     32   /* bytes of a kind: [a-z0-9_-] */
#define MESH_MESH_SERVICES_MAX 1024 /* kinds served by one node, all domains */
#define MESH_MESH_REPLY_MAX                                                                        \
    (8u << 20) /* cap of a reply buffer (the server's max payload                                  \
                * applies too) */

/* Handles one request; p/n are borrowed for the call. Writes the reply into reply (empty is a
 * valid reply). Runs on a libnats thread, one request at a time per served kind and domain:
 * it may block, bounded (the requester's timeout is running). */
typedef void (*mesh_mesh_serve_fn)(void *arg, const char *domain, const char *kind,
                                   const uint8_t *p, size_t n, mesh_buf_t *reply);

/* Serves kind for domain from now on (subscribed at once when connected, again after every
 * new connection). Serving the same kind and domain again replaces fn and arg. MESH_INVALID
 * for a bad domain or kind name, MESH_LIMIT beyond MESH_MESH_SERVICES_MAX. fn and arg must
 * stay valid until mesh_mesh_unserve or mesh_mesh_stop. */
mesh_status_t mesh_mesh_serve(mesh_mesh_t *m, const char *domain, const char *kind,
                              mesh_mesh_serve_fn fn, void *arg, mesh_err_t *err);
/* Stops serving; returns once no call of its fn runs any more. A no-op when not served. */
void mesh_mesh_unserve(mesh_mesh_t *m, const char *domain, const char *kind);

/* Sends a request to kind of domain and waits at most timeout_ns for the reply, which is
 * appended to reply. MESH_UNAVAILABLE when not connected or when no node serves it (NATS "no
 * responders"), MESH_TIMEOUT when none answered in time, MESH_TOO_LARGE when p is larger than
 * the server's max payload, MESH_FORBIDDEN when the servers refuse this node the subject. */
mesh_status_t mesh_mesh_request(mesh_mesh_t *m, const char *domain, const char *kind, const void *p,
                                size_t n, int64_t timeout_ns, mesh_buf_t *reply, mesh_err_t *err);

/* Parses a nats-server INFO line ("INFO {json}\r\n"), taking its "version" into out (cap
 * bytes). MESH_PARSE when it is not one. Bounded: at most MESH_NATS_INFO_MAX bytes. */
#define MESH_NATS_INFO_MAX 8192
mesh_status_t mesh_nats_info_version(const char *p, size_t n, char *out, size_t cap);
/* Whether version "2.9.10" is older than major.minor. Unparseable: true. */
bool mesh_nats_version_older(const char *version, int major, int minor);

#endif
