/*
 * internal.h - what mesh.c shares with the other files of mesh/ (repl.c): the connection.
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
const char *mesh__mesh_node_name(const mesh_mesh_t *m);
int64_t mesh__mesh_timeout_ns(const mesh_mesh_t *m);
int mesh__mesh_replicas(const mesh_mesh_t *m); /* mesh_replicas (0: auto) */

#endif
