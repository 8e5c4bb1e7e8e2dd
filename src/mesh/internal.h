/*
 * internal.h - what the mesh module's files share: the connection of mesh.c, for the
 * federation's subscriptions and requests (fed.c).
 */
#ifndef MESH_MESH_INTERNAL_H
#define MESH_MESH_INTERNAL_H

#include <nats/nats.h>

#include "mesh/mesh.h"

/* The current connection (NULL when there is none), held for use until
 * mesh__mesh_conn_put: the mesh thread does not replace it meanwhile. Pairs always. */
natsConnection *mesh__mesh_conn_get(mesh_mesh_t *m);
void mesh__mesh_conn_put(mesh_mesh_t *m);
/* The node's name and its reply inbox prefix ("_INBOX_<node>"). */
const char *mesh__mesh_node_name(const mesh_mesh_t *m);
const char *mesh__mesh_inbox(const mesh_mesh_t *m);
/* The time limit of one request (ns). */
int64_t mesh__mesh_timeout_ns(const mesh_mesh_t *m);

#endif
