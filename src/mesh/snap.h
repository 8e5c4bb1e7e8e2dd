/*
 * snap.h - snapshot bootstrap between nodes: the transport (docs/mesh.md "Snapshot bootstrap",
 * decision 0033).
 *
 * A hosting node whose position is behind what the domain's stream still holds (trimmed by
 * its limits, or purged) asks the domain's other hosts for a consistent copy of the domain's
 * database together with the stream sequence it holds, installs it, and consumes the stream
 * after that sequence.
 *
 * Serving side: every node serving a domain subscribes meshd.dom.<domain>.req.snap in queue
 * group meshd.dom.<domain> (one live host answers). A request is refused unless it parses
 * (bounded, snapwire.c), names the domain of its subject, its reply subject is the inbox of
 * the node it names (_INBOX_<node>.: only that node can read the answer), its time is within
 * MESH_SNAP_MAX_SKEW of ours, its nonce is new, and its signature verifies against the
 * public key in the registry entry of that node. Then the handler (node/bootstrap.c) decides
 * (the asking node must be a host of the domain, residency) and makes the copy; the copy
 * goes back in frames of MESH_SNAP_CHUNK_BYTES, each asked for by the receiver of the
 * previous one on _INBOX_<server>.snap.<id>.<seq> (flow control, and a capability only that
 * receiver holds). A session not asked for within MESH_SNAP_IDLE is closed.
 *
 * Asking side: mesh_snap_fetch blocks the calling thread (the domain's replicator).
 */
#ifndef MESH_MESH_SNAP_H
#define MESH_MESH_SNAP_H

#include <stdbool.h>
#include <stdint.h>

#include "crypt/sign.h"
#include "mesh/mesh.h"
#include "mesh/snapwire.h"

#define MESH_SNAP_MAX_SKEW     (30LL * 1000000000LL) /* ns a request's time may differ */
#define MESH_SNAP_IDLE         (60LL * 1000000000LL) /* ns an unasked session is kept */
#define MESH_SNAP_MAX_SESSIONS 4                     /* snapshots served at once */

/* What the serving node does with a verified request (node/bootstrap.c). */
typedef struct mesh_snap_handler {
    void *arg;
    /* Decides and makes the copy of domain for node (whose registry entry says site): *state
     * goes to read and close, *seq is the stream sequence the copy holds, *bytes its size.
     * An error goes back to the asking node. */
    mesh_status_t (*open)(void *arg, const char *node, const char *site, const char *domain,
                          void **state, uint64_t *seq, uint64_t *bytes, mesh_err_t *err);
    /* Reads the next at most cap bytes into buf: *n (0 at the end). */
    mesh_status_t (*read)(void *state, uint8_t *buf, size_t cap, size_t *n, mesh_err_t *err);
    void (*close)(void *state);
    /* A request refused (for the audit log and the logs): node and domain as claimed. */
    void (*refused)(void *arg, const char *node, const char *domain, mesh_status_t code,
                    const char *why);
} mesh_snap_handler_t;

typedef struct mesh_snap_stats {
    uint64_t served, served_bytes, refused;          /* serving side */
    uint64_t fetched, fetched_bytes, fetch_failures; /* asking side */
} mesh_snap_stats_t;

typedef struct mesh_snap mesh_snap_t;

/* key and h are borrowed and must outlive the transport. */
mesh_status_t mesh_snap_create(const mesh_signkey_t *key, const mesh_snap_handler_t *h,
                               mesh_snap_t **out, mesh_err_t *err);
/* Unsubscribes, closes open sessions, frees. Before mesh_mesh_stop. NULL is fine. */
void mesh_snap_destroy(mesh_snap_t *s);
void mesh_snap_set_mesh(mesh_snap_t *s, mesh_mesh_t *m);
/* Serves exactly these domains (subscriptions made again on a new connection); at every
 * heartbeat. Also closes sessions idle for MESH_SNAP_IDLE. */
void mesh_snap_serve(mesh_snap_t *s, const char *const *domains, size_t n);
void mesh_snap_stats(mesh_snap_t *s, mesh_snap_stats_t *out);

/* Where a fetched snapshot goes: begin (the sequence and size announced; an error refuses
 * the snapshot), then data in order, whole as sent. */
typedef struct mesh_snap_sink {
    void *arg;
    mesh_status_t (*begin)(void *arg, uint64_t seq, uint64_t bytes, mesh_err_t *err);
    mesh_status_t (*data)(void *arg, const uint8_t *p, size_t n, mesh_err_t *err);
} mesh_snap_sink_t;

/* Asks a host of domain (not this node) for a snapshot and hands it to sink. open_timeout_ns
 * bounds the first answer (the serving node copies the database before it); each later
 * frame has the mesh's request timeout. MESH_OK once the end frame checked out (size and
 * CRC-32C of the data); MESH_UNAVAILABLE when no other host answers. */
mesh_status_t mesh_snap_fetch(mesh_snap_t *s, const char *domain, int64_t open_timeout_ns,
                              const mesh_snap_sink_t *sink, uint64_t *seq, mesh_err_t *err);

#endif
