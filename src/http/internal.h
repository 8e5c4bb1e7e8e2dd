/*
 * internal.h - what the HTTP server gives its handlers (api_*.c).
 *
 * A handler receives a mesh_req_t whose caller is already authenticated (when the route
 * needs it) and answers it exactly once with one of the reply functions, or takes over the
 * response (streaming) and calls mesh_req_done when it ends.
 */
#ifndef MESH_HTTP_INTERNAL_H
#define MESH_HTTP_INTERNAL_H

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdbool.h>

#include "node/node.h"

#define MESH_REQ_MAX_PARAMS 4

typedef struct mesh_req {
    struct evhttp_request *ev;
    mesh_node_t *node;
    int route; /* index into the route table (metrics endpoint) */
    char params[MESH_REQ_MAX_PARAMS][128];
    struct evkeyvalq query;
    mesh_identity_t who;
    bool authed;
    int64_t t0; /* monotonic ns at arrival */
    int status;
    bool replied;
    bool streaming; /* the handler owns the request until mesh_req_done */
    mesh_snapshot_t *snap;
    char request_id[24];
} mesh_req_t;

typedef void (*mesh_handler_fn)(mesh_req_t *r);

/* Query-string value or NULL. */
const char *mesh_req_arg(mesh_req_t *r, const char *key);
/* Request header or NULL. */
const char *mesh_req_header(mesh_req_t *r, const char *name);
/* The request body, made contiguous (and inflated when Content-Encoding is gzip). Returns
 * MESH_OK with a pointer valid until the reply, or replies itself (413/400) and returns an
 * error. */
mesh_status_t mesh_req_body(mesh_req_t *r, const char **p, size_t *n);
/* The catalog snapshot for this request (taken once, released after the reply). */
mesh_snapshot_t *mesh_req_snapshot(mesh_req_t *r);
/* Checks authorisation; on a refusal replies 403 and returns false. */
bool mesh_req_allow(mesh_req_t *r, mesh_action_t act, const char *domain, const char *product);

/* Replies. body may be NULL for an empty body. */
void mesh_req_reply(mesh_req_t *r, int code, const char *ctype, const char *body, size_t n);
void mesh_req_json(mesh_req_t *r, int code, const mesh_buf_t *body);
/* {"error":{"code":"VALIDATION","message":"...","details":<details_json>}} with the HTTP
 * status of st. details_json may be NULL. */
void mesh_req_error(mesh_req_t *r, mesh_status_t st, const char *msg, const char *details_json);
void mesh_req_errorf(mesh_req_t *r, mesh_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* For streaming handlers: marks the response as started by the handler; mesh_req_done
 * must then be called exactly once when the response has ended or the connection failed. */
void mesh_req_stream_begin(mesh_req_t *r, int status);
void mesh_req_done(mesh_req_t *r);

/* Handlers (api_*.c). */
void mesh_api_healthz(mesh_req_t *r);
void mesh_api_readyz(mesh_req_t *r);
void mesh_api_metrics(mesh_req_t *r);
void mesh_api_status(mesh_req_t *r);
void mesh_api_domains(mesh_req_t *r);
void mesh_api_domain(mesh_req_t *r);
void mesh_api_contracts(mesh_req_t *r);
void mesh_api_products(mesh_req_t *r);
void mesh_api_product(mesh_req_t *r);
void mesh_api_product_contract(mesh_req_t *r);
void mesh_api_rows(mesh_req_t *r);
void mesh_api_quarantine(mesh_req_t *r);
void mesh_api_influx_write(mesh_req_t *r);
void mesh_api_influx_write_v2(mesh_req_t *r);
void mesh_api_ping(mesh_req_t *r);
void mesh_api_query(mesh_req_t *r);
void mesh_api_catalog(mesh_req_t *r);
void mesh_api_keys(mesh_req_t *r);
void mesh_api_keys_rotate(mesh_req_t *r);
/* Encryption counters for /metrics (api_keys.c). */
void mesh_api_crypt_metrics(mesh_req_t *r, mesh_buf_t *b);

#endif
