/*
 * repl.h - a domain's JetStream stream: the replicator of a replicated domain (docs/mesh.md,
 * decision 0021). The local replicator is the domain's own log (store/domain.h); this one
 * puts the domain's records in order in stream MESHD_DOM_<domain> (subject
 * meshd.dom.<domain>.log) and applies them on every hosting node.
 *
 * Design: mesh_repl_start() starts one thread per domain that, whenever the node is
 * connected, makes sure the stream exists (creating it, R3 with 3 or more servers else R1,
 * and retrying while a hub cluster is still forming), (re)creates this node's durable pull
 * consumer (named after the node) to start right after the position the domain has applied,
 * and fetches messages in stream order, handing each to apply() and acknowledging it after
 * the apply. The applied position lives in the domain's own database (stored in the same
 * transaction as the record), so the consumer is only transport: after any failure it is made
 * again from that position, and a message delivered twice is skipped by the domain.
 * mesh_repl_publish() puts one record in the stream and returns its sequence once JetStream
 * acknowledged it (a quorum of an R3 stream). Only mesh/ includes nats.h.
 */
#ifndef MESH_MESH_REPL_H
#define MESH_MESH_REPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "mesh/mesh.h"

#define MESH_REPL_DUPLICATES_NS (120LL * 1000000000LL)       /* JetStream's duplicate window */
#define MESH_REPL_MAX_AGE_NS    (7LL * 86400 * 1000000000LL) /* records kept in the stream */
#define MESH_REPL_FETCH         256                          /* messages per fetch */

/* Applies n records of the stream in order (v[i]: its sequence and the bytes as published), as
 * one group where the domain can. MESH_OK when all are applied or already applied; otherwise
 * *done says how many were (the rest is fetched again later). */
typedef struct mesh_repl_rec {
    uint64_t seq;
    const uint8_t *p;
    size_t n;
    const char *id; /* its message id (Nats-Msg-Id), NULL when it has none */
} mesh_repl_rec_t;
typedef mesh_status_t (*mesh_repl_apply_fn)(void *arg, const char *domain, const mesh_repl_rec_t *v,
                                            size_t n, size_t *done, mesh_err_t *err);
/* The last stream sequence the domain has applied. */
typedef uint64_t (*mesh_repl_position_fn)(void *arg, const char *domain);

typedef struct mesh_repl mesh_repl_t;

/*
 * Divergence checks (optional, mesh_repl_set_check). fp: what the domain applied at stream
 * sequence seq, as mesh_fp64 of the record's bytes: 1 and *fp, 0 when unknown, -1 on an
 * error. rewind: moves the domain's position back to seq (the records after it are applied
 * again; the domain skips those it applied before by their message id).
 */
typedef int (*mesh_repl_fp_fn)(void *arg, const char *domain, uint64_t seq, uint64_t *fp);
typedef mesh_status_t (*mesh_repl_rewind_fn)(void *arg, const char *domain, uint64_t seq,
                                             mesh_err_t *err);

/* Starts replicating domain over m (borrowed: it must outlive the replicator). apply and
 * position are called on the replicator's thread. */
mesh_status_t mesh_repl_start(mesh_mesh_t *m, const char *domain, mesh_repl_apply_fn apply,
                              mesh_repl_position_fn position, void *arg, mesh_repl_t **out,
                              mesh_err_t *err);
/* Stops the thread (after the apply in progress) and frees. NULL is fine. */
void mesh_repl_stop(mesh_repl_t *r);

/* Publishes one record with message id "k:" + idem (the request's idempotency key: a retry
 * through any node within the duplicate window is stored once) or a random one, and waits
 * for JetStream's ack: *sseq is its sequence (the original one when *duplicate). Transient
 * failures (no link, no stream leader, no ack in time) are retried with the same message id
 * within 3 x mesh_timeout (decision 0032), so the caller waits at most that long. Errors:
 * MESH_UNAVAILABLE (not connected, no stream leader, timeout: not acknowledged in time),
 * MESH_TOO_LARGE (larger than the servers' max payload), MESH_FORBIDDEN (permissions). */
mesh_status_t mesh_repl_publish(mesh_repl_t *r, const uint8_t *p, size_t n, const char *idem,
                                uint64_t *sseq, bool *duplicate, mesh_err_t *err);

const char *mesh_repl_stream(const mesh_repl_t *r);

/* Turns the divergence checks on: every few seconds the replicator compares the record this
 * node applied at its position with the one the stream's leader holds there (and its position
 * with the stream's last sequence); when they differ (this node applied records the stream
 * does not hold: JetStream delivered them from a server whose copy lost to the others after
 * a partition), it says so (state "diverged", last_error, the log, the divergences counter),
 * finds the last sequence where they agree, moves the domain back to it and applies the
 * stream again from there. Call it right after mesh_repl_start. */
void mesh_repl_set_check(mesh_repl_t *r, mesh_repl_fp_fn fp, mesh_repl_rewind_fn rewind);

/*
 * Async mode: a second thread (the outbox pump) calls pump whenever it is kicked (after a
 * local write) and every second; pump reads what the domain has not published yet and hands
 * it to mesh_repl_publish_run. Returns 2 when more is waiting (called again at once), 1 when
 * there may be more (called again after a short wait, so that batches written meanwhile travel
 * together), 0 when idle, -1 on a failure (retried after a pause).
 */
typedef int (*mesh_repl_pump_fn)(void *arg, const char *domain, mesh_repl_t *r);
mesh_status_t mesh_repl_start_outbox(mesh_repl_t *r, mesh_repl_pump_fn pump, mesh_err_t *err);
/* Whether record p[0..n) can be published as an async batch: MESH_TOO_LARGE (err says why)
 * when it is larger than the servers' max payload (as last connected) even packed, so it
 * could never reach the other hosts; MESH_OK otherwise, and when the max payload is not known
 * yet. Packs only records near or above the limit. */
mesh_status_t mesh_repl_fits(mesh_repl_t *r, const uint8_t *p, size_t n, mesh_err_t *err);
/* Wakes the pump (cheap; any thread). */
void mesh_repl_kick(mesh_repl_t *r);
/* Publishes count records (carrying batches batches: a record may be a group of them,
 * store/group.h) in order, pipelined, and waits for every ack: MESH_OK only when all
 * were acknowledged (then all are in the stream, in this order relative to each other unless
 * one failed). No message ids: a failed run is published again whole, and the replicas'
 * origin chains (store/domain.h) skip the copies; a JetStream id would drop a copy that must
 * come again after a record that was missing. *acked (may be NULL): count on MESH_OK; on
 * MESH_TOO_LARGE (a record larger than the servers' max payload, found as it is packed), the
 * records before it when each of them was acknowledged; otherwise 0. */
mesh_status_t mesh_repl_publish_run(mesh_repl_t *r, const uint8_t *const *p, const size_t *n,
                                    size_t count, size_t batches, size_t *acked, mesh_err_t *err);

/* Snapshot bootstrap (decision 0033): called on the replicator's thread, without the
 * connection held, when the domain's position is below what the stream still holds (first:
 * the stream's first sequence; trimmed by its limits, or purged). MESH_OK once the domain
 * holds a snapshot at or past first - 1: the consumer is then made again after it. On an
 * error the replicator stays in state "trimmed" and tries again after a pause. Never does a
 * replicator skip the gap. */
typedef mesh_status_t (*mesh_repl_bootstrap_fn)(void *arg, const char *domain, mesh_repl_t *r,
                                                uint64_t first, mesh_err_t *err);
void mesh_repl_set_bootstrap(mesh_repl_t *r, mesh_repl_bootstrap_fn fn);
/* Whether mesh_repl_stop was called (a bootstrap in progress gives up). */
bool mesh_repl_stopping(mesh_repl_t *r);

/* The hosts of the domain (copied): the replicator reads their consumers' positions to report
 * each replica's lag (mesh_repl_status). */
void mesh_repl_set_hosts(mesh_repl_t *r, char *const *hosts, size_t n);
#define MESH_REPL_HOSTS_MAX 16

typedef struct mesh_repl_status {
    const char *state;    /* "waiting" (no link), "consuming", "error", "trimmed",
                           * "bootstrapping", "diverged" (literal) */
    uint64_t stream_last; /* last sequence in the stream, when last seen */
    uint64_t applied;     /* the domain's applied stream sequence */
    uint64_t published, publish_failures, applied_msgs, apply_failures;
    uint64_t publish_retries; /* attempts after the first (decision 0032) */
    /* of the records acknowledged: their bytes, and the bytes they took in the stream (packed,
     * recwire.h) */
    uint64_t published_record_bytes, published_bytes;
    /* divergences found (and repaired by moving back), and deliveries out of stream order
     * refused (a record delivered before an earlier one still in the stream) */
    uint64_t divergences, out_of_order;
    /* records read from the stream's leader instead of waiting for their delivery: missing
     * before a delivery (lost in flight), or this node's own when nothing was delivered */
    uint64_t read_direct;
    int replicas;    /* of the stream (0: unknown) */
    char leader[64]; /* the server leading the stream ("" when unknown) */
    char last_error[200];
    uint64_t outbox_runs; /* async: publish runs acknowledged whole */
    /* the batches the acknowledged records carried (async: more than the records when they
     * travelled in groups, decision 0040) */
    uint64_t published_batches;
    uint64_t bootstraps; /* snapshots installed */
    /* filled by the node (mesh__node_repl_each): async, the outbox position (log sequence of
     * the last batch published) and how far the last local batch is past it (0: all
     * published) */
    bool async;
    uint64_t outbox_seq, outbox_pending;
    /* each host's consumer (when last read): messages it has not applied, and for how many
     * seconds it has been behind (0: caught up; -1: unknown, no consumer) */
    size_t nreplicas;
    struct {
        char name[64];
        uint64_t pending;
        double lag_s;
    } rep[MESH_REPL_HOSTS_MAX];
} mesh_repl_status_t;
void mesh_repl_status(mesh_repl_t *r, mesh_repl_status_t *out);

#endif
