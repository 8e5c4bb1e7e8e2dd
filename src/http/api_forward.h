/*
 * api_forward.h - writes forwarded between nodes (http/api_ingest.c, mesh/fwd.h).
 */
#ifndef MESH_HTTP_API_FORWARD_H
#define MESH_HTTP_API_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct mesh_node;

/* Serves a write another node forwarded for domain (hosted here): parses the request
 * (untrusted), validates the rows against the product's contract and writes them like an API
 * write; the reply (mesh/fwd.h) carries the HTTP status and JSON the client gets. Audited here
 * with the caller and the forwarding node. */
void mesh__api_forwarded_write(struct mesh_node *n, const char *domain, const uint8_t *p,
                               size_t len, mesh_buf_t *reply);

#endif
