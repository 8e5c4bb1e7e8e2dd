/*
 * dlog.h - a domain's local log: the durable, ordered record of every change to a domain.
 *
 * The write path of a domain ends here: a change (a batch of rows, a contract) is appended
 * to the log and made durable (fdatasync), then applied to the domain's SQLite store, which
 * records the last applied sequence number in the same transaction. After a crash the log
 * is replayed from that position, so an acknowledged change is applied exactly once. This is
 * the local implementation of the seam that JetStream fills in a mesh.
 *
 * Layout: DIR/<first-seq, 20 digits>.seg files, each a run of records:
 *     u32 magic "MLR1" | u32 payload length | u64 seq | u32 crc32c(len, seq, payload) | payload
 * Sequence numbers start at 1 and increase by one. A torn record at the end of the last
 * segment (a crash during write) is cut off at open; a bad record anywhere else is corruption.
 *
 * Not thread-safe: the domain's writer serialises all calls.
 */
#ifndef MESH_STORE_DLOG_H
#define MESH_STORE_DLOG_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define MESH_DLOG_MAX_RECORD   (512u << 20)
#define MESH_DLOG_SEGMENT_SIZE (64u << 20)

typedef struct mesh_dlog mesh_dlog_t;

/* Opens (creating) the log in dir. first_seq is the sequence the log starts at when it is
 * empty (the store's applied position + 1, so a log deleted after a checkpoint continues). */
mesh_status_t mesh_dlog_open(const char *dir, uint64_t first_seq, mesh_dlog_t **out,
                             mesh_err_t *err);
void mesh_dlog_close(mesh_dlog_t *log);

/* Appends one record (buffered in the kernel, not yet durable) and returns its seq. */
mesh_status_t mesh_dlog_append(mesh_dlog_t *log, const void *payload, size_t n, uint64_t *seq,
                               mesh_err_t *err);
/* Makes every appended record durable. */
mesh_status_t mesh_dlog_sync(mesh_dlog_t *log, mesh_err_t *err);
/* Sequence of the last record (0 when none was ever written). */
uint64_t mesh_dlog_last_seq(const mesh_dlog_t *log);

/* Calls fn for every record with seq > after, in order. fn returning non-OK stops the replay
 * with that status. MESH_CORRUPT when a record to replay is damaged or no longer in the log
 * (trimmed: the caller's position is older than the log). */
typedef mesh_status_t (*mesh_dlog_fn)(void *arg, uint64_t seq, const uint8_t *p, size_t n);
mesh_status_t mesh_dlog_replay(mesh_dlog_t *log, uint64_t after, mesh_dlog_fn fn, void *arg,
                               mesh_err_t *err);

/* A position in the log, to undo appends that were never applied (see mesh_dlog_rewind). */
typedef struct mesh_dlog_mark {
    size_t nsegs;
    uint64_t last_seq;
    uint64_t size; /* of the last segment */
    uint64_t bytes;
} mesh_dlog_mark_t;
void mesh_dlog_mark(const mesh_dlog_t *log, mesh_dlog_mark_t *m);
/* Cuts every record appended after the mark (and syncs). Used when the records could not be
 * applied: their writers are told they failed, so they must not reappear at replay. */
mesh_status_t mesh_dlog_rewind(mesh_dlog_t *log, const mesh_dlog_mark_t *m, mesh_err_t *err);

/* Deletes whole segments whose records are all <= seq (they are durable in the store). */
mesh_status_t mesh_dlog_trim(mesh_dlog_t *log, uint64_t seq, mesh_err_t *err);
/* Bytes on disk. */
uint64_t mesh_dlog_size(const mesh_dlog_t *log);

#endif
