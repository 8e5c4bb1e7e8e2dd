/*
 * server.h - starting and stopping the HTTP API of a node.
 */
#ifndef MESH_HTTP_SERVER_H
#define MESH_HTTP_SERVER_H

#include <stdio.h>
#include "core/buf.h"
#include "core/status.h"
#include "node/node.h"

/* Binds n->opts.listen (the bound address goes to n->listen_addr) and starts the worker
 * threads. */
mesh_status_t mesh_http_start(mesh_node_t *n, mesh_err_t *err);
/* Stops accepting, lets requests in flight end (at most ~5 s), joins the workers. */
void mesh_http_stop(mesh_http_t *h);
/* Writes meshd_http_connections_accepted_total (per worker) to out, for /metrics. */
void mesh_http_metrics(mesh_http_t *h, mesh_buf_t *out);
/* Endpoint labels for metrics, in route order, "other" last. */
const char *const *mesh_http_endpoint_names(int *n);
/* Writes every route's path ("/v1/products/{}/{}/rows"), space-separated and wrapped before
 * width columns, from the route table (meshd --help). */
void mesh_http_endpoint_paths(FILE *out, int width);

#endif
