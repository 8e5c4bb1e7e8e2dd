/*
 * internal.h - what the mesh module's files share: the connection of mesh.c, for the
 * replicator (repl.c) and the federation's subscriptions and requests (fed.c).
 * Only mesh/ includes it (it includes nats.h).
 */
#ifndef MESH_MESH_INTERNAL_H
#define MESH_MESH_INTERNAL_H

#include <nats/nats.h>
#include <stdint.h>

#include "mesh/mesh.h"

/* The connection, or NULL when not connected; *gen changes with every new connection. The
 * connection lock is held for reading in both cases: release it with mesh__mesh_conn_done
 * soon (a blocking call of a second or so is fine). */
natsConnection *mesh__mesh_conn(mesh_mesh_t *m, uint64_t *gen);
void mesh__mesh_conn_done(mesh_mesh_t *m);
/* With the connection lock held (mesh__mesh_conn): whether the connection is there and
 * reconnecting (its subscriptions stay: libnats sends them again once it is back). */
bool mesh__mesh_conn_reconnecting(mesh_mesh_t *m);
const char *mesh__mesh_node_name(const mesh_mesh_t *m);
int64_t mesh__mesh_timeout_ns(const mesh_mesh_t *m);
int mesh__mesh_replicas(const mesh_mesh_t *m); /* mesh_replicas (0: auto) */
/* The limits of the domain streams this node creates (mesh_mesh_opts_t). */
void mesh__mesh_stream_limits(const mesh_mesh_t *m, int64_t *max_age_ns, int64_t *max_bytes,
                              int64_t *max_msgs);
/* The current connection (NULL when there is none), held for use until
 * mesh__mesh_conn_put: the mesh thread does not replace it meanwhile. Pairs always. */
natsConnection *mesh__mesh_conn_get(mesh_mesh_t *m);
void mesh__mesh_conn_put(mesh_mesh_t *m);
/* The node's reply inbox prefix ("_INBOX_<node>"). */
const char *mesh__mesh_inbox(const mesh_mesh_t *m);

/* Test seam: the federation's replay check of a request's nonce at time now (fed.c). */
typedef struct mesh_fed mesh_fed_t;
bool mesh__fed_nonce_fresh(mesh_fed_t *f, const uint8_t *nonce, int64_t ts, int64_t now);

#endif
