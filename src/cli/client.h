/*
 * client.h - meshctl's HTTP client for the meshd API (the only module that uses libcurl).
 *
 * A client holds one or more base URLs, the API token and an idle timeout. Requests go to
 * the base URL that answered last; when a connection cannot be made (refused, no such host,
 * connect timeout) the next URL of the list is tried, so `--url a,b` fails over from a dead
 * node to a live one. Nothing was sent when a connection failed, so failing over is safe for
 * every method. One libcurl handle is reused, keeping the connection alive between requests
 * (an ingest sends many batches).
 *
 * Answers: a 2xx body is collected into result.body (capped) or handed to a sink as it
 * arrives (query results are streamed to stdout); any other answer is decoded from the
 * server's JSON error shape ({"error":{"code","message","details"}}, or InfluxDB's) into a
 * status, the server's code word, a message and details. The token is sent only in the
 * Authorization header and never appears in any message.
 */
#ifndef MESH_CLI_CLIENT_H
#define MESH_CLI_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"

typedef struct mesh_client mesh_client_t;

/* Largest answer collected in memory unless a request says otherwise. */
#define MESH_CLIENT_MAX_BODY ((size_t)64 << 20)

/*
 * How an https:// node is verified, and the client certificate to show it. Every member may
 * be NULL or "" (unset). Strings are copied by mesh_client_create.
 *
 * - cacert alone: the node's certificate must chain to a CA in this PEM file (only this
 *   file, not the system's CAs), and the host in the URL must be one of its names.
 * - pins alone ("sha256:HEX[,sha256:HEX...]", see mesh_tls_pins_parse): the node's
 *   certificate must be one of these, by the SHA-256 fingerprint of the whole certificate
 *   (not of its public key); no CA, name or date is checked: the pin is the trust.
 * - both: both checks. Neither: the system's CAs and the host name.
 */
typedef struct mesh_client_tls {
    const char *cacert; /* PEM CA file */
    const char *pins;   /* pin list */
    const char *cert;   /* PEM client certificate */
    const char *key;    /* PEM key of cert (unset: in the cert file) */
} mesh_client_tls_t;

/*
 * Creates a client. urls is a comma-separated list of http:// or https:// base URLs (a
 * trailing '/' is dropped); token may be NULL; timeout_ns is how long a request may go with
 * no data moving either way before it is abandoned (0: no limit; connection attempts give up
 * after at most 10 s); tls may be NULL. MESH_INVALID (with err) for a malformed URL list or
 * pin list.
 */
mesh_status_t mesh_client_create(const char *urls, const char *token, int64_t timeout_ns,
                                 const mesh_client_tls_t *tls, mesh_client_t **out,
                                 mesh_err_t *err);
/* Frees the client (NULL is fine). */
void mesh_client_destroy(mesh_client_t *c);

/* Receives a 2xx body piece by piece; returns false to abandon the transfer. */
typedef bool (*mesh_client_sink_fn)(void *arg, const char *p, size_t n);

typedef struct mesh_client_req {
    const char *method;       /* "GET", "POST", "PUT", "DELETE" */
    const char *path;         /* "/v1/domains?force=true", escaped (see mesh_client_escape) */
    const char *content_type; /* of the body; NULL when there is none */
    const char *body;         /* borrowed */
    size_t body_len;
    const char *accept;          /* Accept header or NULL */
    const char *idempotency_key; /* Idempotency-Key header or NULL */
    mesh_client_sink_fn sink;    /* NULL: collect the 2xx body into result.body */
    void *sink_arg;
    size_t max_body; /* cap of a collected body (0: MESH_CLIENT_MAX_BODY) */
    bool secret;     /* the answer holds a secret (a token): its bytes are wiped when freed */
} mesh_client_req_t;

typedef struct mesh_client_result {
    mesh_status_t status;    /* MESH_OK for a 2xx answer delivered whole */
    int http;                /* HTTP status, 0 when no answer came */
    char code[32];           /* the server's error code word ("VALIDATION"), "" if none */
    char msg[1024];          /* what went wrong (server message or transport failure) */
    json_t *details;         /* the server's error details (owned), NULL when none */
    mesh_buf_t body;         /* the collected answer (or the error body) */
    bool cut;                /* a 2xx answer ended before its end (a truncated transfer) */
    bool sink_stopped;       /* the sink returned false */
    bool too_large;          /* the collected body passed max_body */
    bool retryable;          /* nothing or not all was applied for sure: connection failure,
                                timeout or 503; a retry with the same Idempotency-Key is safe */
    bool reached;            /* a connection was made (false: no URL could be reached) */
    char request_id[32];     /* X-Request-Id of the answer, "" if none */
    int64_t hdr_accepted;    /* X-Meshd-Accepted of a /write answer, -1 if none */
    int64_t hdr_quarantined; /* X-Meshd-Quarantined of a /write answer, -1 if none */
    const char *url;         /* the base URL used last (borrowed from the client) */
    bool secret;             /* from the request: wipe body when freeing */
} mesh_client_result_t;

/*
 * Sends one request and fills *res (always initialised; free with mesh_client_result_free).
 * Returns res->status: MESH_OK on a 2xx answer; the server's status for an error answer;
 * MESH_UNAVAILABLE when no URL could be reached ("cannot reach meshd at URL: <reason>");
 * MESH_TIMEOUT when the answer stalled; MESH_TOO_LARGE past max_body; MESH_IO when a 2xx
 * transfer was cut short (res->cut) or the sink stopped it; MESH_UNAUTHENTICATED when the
 * node's TLS certificate could not be verified (the message says how to trust it) or the
 * node refused the client certificate; MESH_INVALID when the CA file or the client
 * certificate cannot be used.
 */
mesh_status_t mesh_client_do(mesh_client_t *c, const mesh_client_req_t *req,
                             mesh_client_result_t *res);
void mesh_client_result_free(mesh_client_result_t *res);

/* The status a server error code word names ("VALIDATION"), else the closest to http. */
mesh_status_t mesh_client_status_of(const char *word, int http);

/* The base URL in use (the one that answered last, or the first). */
const char *mesh_client_url(const mesh_client_t *c);

/* Appends s percent-encoded for a path segment or a query value (RFC 3986 unreserved
 * characters stay as they are). */
mesh_status_t mesh_client_escape(mesh_buf_t *b, const char *s);

/* libcurl's version text ("8.1.2") for --version. */
const char *mesh_client_lib_version(void);

#endif
