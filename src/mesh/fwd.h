/*
 * fwd.h - a write forwarded by a node that does not host the domain to one that does
 * (request kind "write" on meshd.dom.<domain>.req.write, mesh.h), and its reply.
 *
 * Request: one line of JSON, then the body as the client sent it:
 *   {"v":1,"product":"telemetry","format":"json","precision":"auto","idem":"k1",
 *    "user":"alice","node":"hq"}\n<body>
 * Reply: the HTTP status in decimal, a newline, then the JSON the hosting node answered.
 * Both come from other nodes: parsed as untrusted input (fuzz/fuzz_fwd.c), bounded.
 */
#ifndef MESH_MESH_FWD_H
#define MESH_MESH_FWD_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"
#include "core/util.h"

#define MESH_FWD_HEAD_MAX 4096 /* bytes of the JSON line */

typedef struct mesh_fwd_req {
    char product[MESH_NAME_MAX + 1];
    char format[16];     /* json, ndjson, csv, lp */
    char precision[8];   /* ns, us, ms, s, auto, or "" */
    char idem[201];      /* "" when none */
    char user[128];      /* the caller on the forwarding node (audit) */
    char node[64];       /* the forwarding node (audit) */
    const uint8_t *body; /* into the request */
    size_t body_len;
} mesh_fwd_req_t;

/* Encodes a request into out (the body is appended). */
mesh_status_t mesh_fwd_encode(const mesh_fwd_req_t *r, mesh_buf_t *out);
/* Parses p[0..n): MESH_PARSE or MESH_INVALID with detail on anything unexpected. */
mesh_status_t mesh_fwd_parse(const uint8_t *p, size_t n, mesh_fwd_req_t *out, mesh_err_t *err);
/* Parses a reply: *status (100-599) and the JSON that follows (borrowed from p). */
mesh_status_t mesh_fwd_reply_parse(const uint8_t *p, size_t n, int *status, const uint8_t **json,
                                   size_t *json_len);

#endif
