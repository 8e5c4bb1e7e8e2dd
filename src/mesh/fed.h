/*
 * fed.h - federated queries over the mesh: the transport of remote scans between nodes
 * (docs/mesh.md "Federated queries", decision 0022).
 *
 * Caller side: a product virtual table of a product hosted elsewhere asks the owning
 * domain, on meshd.dom.<domain>.req.scan (every hosting node subscribes in queue group
 * meshd.dom.<domain>: one live replica answers), either for the tables the end user may
 * read (describe) or for a scan. Every request is signed with the node's Ed25519 key and
 * carries the end user's principal name, the time and a random nonce (fedwire.h).
 *
 * Owner side: a request is refused unless
 *   - it parses (bounded, fedwire.c), names the domain of its subject, and its reply
 *     subject is the inbox of the node it names (_INBOX_<node>.): only that node can read
 *     the answer, whatever else is forged;
 *   - its time is within MESH_FED_MAX_SKEW of ours and its nonce was not seen within that
 *     window (a replay is refused);
 *   - its signature verifies against the public key of that node's registry entry.
 * Then the handler (the node: node/fed.c) runs it as the END USER under the owner's own
 * policy and sandbox, and rows go back in frames of at most MESH_FED_CHUNK_BYTES. The
 * caller asks for each next frame on a subject the previous frame names
 * (<owner's inbox>.fed.<scan id>.<seq>): flow control, and a capability only the receiver
 * of the previous frame holds (nats-server's allow_responses). The owner fills each next
 * frame ahead, right after sending one (decision 0041). Frames carry compact values when
 * the request asks ("enc":2). A scan not asked for within MESH_FED_IDLE is closed by the
 * owner.
 *
 * Threads: owner-side requests are served by worker threads (the subscriptions' callbacks
 * queue them); a scan is used by one thread at a time (a per-scan busy flag; a next or close
 * that comes while it is busy is kept for that thread); a reaper thread closes idle scans.
 * Caller-side calls block the calling thread (an HTTP worker running a query) for at most
 * the mesh's request timeout per frame.
 */
#ifndef MESH_MESH_FED_H
#define MESH_MESH_FED_H

#include <stdbool.h>
#include <stdint.h>

#include "crypt/sign.h"
#include "mesh/fedwire.h"
#include "mesh/mesh.h"

#define MESH_FED_MAX_SKEW     (30LL * 1000000000LL) /* ns a request's time may differ from ours */
#define MESH_FED_IDLE         (30LL * 1000000000LL) /* ns an unasked scan is kept open */
#define MESH_FED_MAX_SCANS    256                   /* open scans served at once */
#define MESH_FED_DESCRIBE_TTL (2LL * 1000000000LL)  /* ns a describe answer is reused */

/* What the owner does with a verified request (the node implements it). */
typedef struct mesh_fed_handler {
    void *arg;
    /* The tables of r->domain that r->user may read. An error goes back to the caller. */
    mesh_status_t (*describe)(void *arg, const mesh_fed_request_t *r, mesh_fed_schema_t *out,
                              mesh_err_t *err);
    /* Starts the scan as r->user: *state is handed to fill and close. */
    mesh_status_t (*scan_open)(void *arg, const mesh_fed_request_t *r, void **state,
                               mesh_err_t *err);
    /* Adds rows to e until about MESH_FED_CHUNK_BYTES: 1 more rows follow, 0 done, -1 error. */
    int (*scan_fill)(void *state, mesh_fed_enc_t *e, mesh_err_t *err);
    /* Right before a frame filled ahead leaves: whether its rows may still go (false: err
     * says why, and the caller gets that error instead; the scan is closed). NULL: none. */
    bool (*scan_recheck)(void *state, mesh_err_t *err);
    /* Ends a scan; end is NULL when it completed, else why it stopped. */
    void (*scan_close)(void *state, const mesh_err_t *end);
    /* Makes a fill running on another thread stop soon (thread-safe; the node stops). NULL:
     * none. */
    void (*scan_cancel)(void *state);
    /* A request refused before the handler saw it (for the audit log): node, user and
     * domain as claimed (may be empty), the status and the reason. */
    void (*refused)(void *arg, const char *node, const char *user, const char *domain,
                    mesh_status_t code, const char *why);
} mesh_fed_handler_t;

typedef struct mesh_fed_stats {
    /* caller side */
    uint64_t scans, scan_failures, rows, frames, bytes; /* bytes: of the frames received */
    uint64_t queries;    /* of the scans, whole statements run by the owner (decision 0039) */
    double scan_seconds; /* sum of the time from a scan's request to its last frame */
    /* owner side */
    uint64_t served, served_rows, refused;
} mesh_fed_stats_t;

typedef struct mesh_fed mesh_fed_t;

/* key and h are borrowed and must outlive the federation. */
mesh_status_t mesh_fed_create(const mesh_signkey_t *key, const mesh_fed_handler_t *h,
                              mesh_fed_t **out, mesh_err_t *err);
/* Closes open scans, unsubscribes, stops the reaper, frees. Before mesh_mesh_stop. NULL ok. */
void mesh_fed_destroy(mesh_fed_t *f);
/* Attaches the mesh link (NULL: detached, every call fails MESH_UNAVAILABLE). */
void mesh_fed_set_mesh(mesh_fed_t *f, mesh_mesh_t *m);
/* Serves requests for exactly these domains (subscribes and unsubscribes as needed; makes
 * the subscriptions again on a new connection). Called at every heartbeat. */
void mesh_fed_serve(mesh_fed_t *f, const char *const *domains, size_t n);
void mesh_fed_stats(mesh_fed_t *f, mesh_fed_stats_t *out);

/* ---- caller side ---- */

/* The tables of domain that user may read there, from a live node hosting it (an answer
 * for the same user and domain is reused for MESH_FED_DESCRIBE_TTL). *id: the answer's
 * (unique in the process; the same while it is reused). */
mesh_status_t mesh_fed_describe(mesh_fed_t *f, const char *user, const char *domain,
                                mesh_fed_schema_t *out, uint64_t *id, mesh_err_t *err);
/* The id of the answer mesh_fed_describe would reuse now for user and domain, 0 when none
 * (never asked, or older than MESH_FED_DESCRIBE_TTL): a caller holding tables made from
 * that answer may keep them. */
uint64_t mesh_fed_describe_current(mesh_fed_t *f, const char *user, const char *domain);

typedef struct mesh_fed_scan mesh_fed_scan_t;

/* Opens a scan of r (op, node, ts and nonce are filled here; the rest is the caller's and
 * is copied). */
mesh_status_t mesh_fed_scan_open(mesh_fed_t *f, const mesh_fed_request_t *r, mesh_fed_scan_t **out,
                                 mesh_err_t *err);
/* Runs the whole statement r->sql (with r->timeout_ms, r->max_rows) on a live node hosting
 * r->domain, as r->user under that node's policy and sandbox (decision 0039): the answer's
 * rows come as a scan's, its columns and counts in mesh_fed_scan_meta. MESH_TOO_LARGE when
 * the statement cannot be sent (past MESH_FED_MAX_SQL or the request's size). */
mesh_status_t mesh_fed_query_open(mesh_fed_t *f, const mesh_fed_request_t *r, mesh_fed_scan_t **out,
                                  mesh_err_t *err);
/* A query's columns (set once open returned), products, policies and counts (the counts once
 * the last row was read). */
const mesh_fed_meta_t *mesh_fed_scan_meta(const mesh_fed_scan_t *s);
/* The next row: 1 (*row: ncols values, borrowed until the next call), 0 done, -1 error. */
int mesh_fed_scan_next(mesh_fed_scan_t *s, const mesh_datum_t **row, mesh_err_t *err);
/* Ends the scan (telling the owner when it has not sent its last frame). NULL is fine. */
void mesh_fed_scan_close(mesh_fed_scan_t *s);

#endif
