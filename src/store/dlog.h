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
 *     u32 magic | u32 body length | u64 seq | u32 crc32c(len, seq, body) | body
 * In clear (magic "MLR1") the body is the payload. Sealed (magic "MLR2", a log opened with a
 * key ring) it is  u32 key generation | nonce[12] | AES-256-GCM(payload) | tag[16], with the
 * magic, seq and key generation as additional data; nonces come from the key's counter
 * (keys.h), never from seq, which repeats after a rewind. A log is either sealed or in clear:
 * a record of the other kind is an error, never cut off.
 *
 * Sequence numbers start at 1 and increase by one. A record whose checksum fails at the end
 * of the last segment is a torn write (a crash during the write) and is cut off at open,
 * unless the store has already applied it (then it was synced, and damage is corruption); a
 * bad record anywhere else, and a sealed record that fails authentication when it is
 * replayed, is corruption.
 *
 * Not thread-safe: the domain's writer serialises all calls.
 */
#ifndef MESH_STORE_DLOG_H
#define MESH_STORE_DLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "crypt/keys.h"

#define MESH_DLOG_MAX_RECORD   (512u << 20)
#define MESH_DLOG_SEGMENT_SIZE (64u << 20)

typedef struct mesh_dlog mesh_dlog_t;

/* Opens (creating) the log in dir. first_seq is the sequence the log starts at when it is
 * empty (the store's applied position + 1, so a log deleted after a checkpoint continues). */
mesh_status_t mesh_dlog_open(const char *dir, uint64_t first_seq, mesh_dlog_t **out,
                             mesh_err_t *err);
/* Same for a sealed log: ring (borrowed, owned by the domain, which may add keys and change
 * its current generation between calls) gives the key of each record by generation, and the
 * current one for appends. */
mesh_status_t mesh_dlog_open_sealed(const char *dir, uint64_t first_seq, const mesh_keyring_t *ring,
                                    mesh_dlog_t **out, mesh_err_t *err);
/* True when every record of the log (still on disk) is sealed with generation gen or the
 * log holds none under another generation (after a re-encryption, once trimmed). */
bool mesh_dlog_only_gen(mesh_dlog_t *log, uint32_t gen);
void mesh_dlog_close(mesh_dlog_t *log);

/* Appends one record (buffered in the kernel, not yet durable) and returns its seq. */
mesh_status_t mesh_dlog_append(mesh_dlog_t *log, const void *payload, size_t n, uint64_t *seq,
                               mesh_err_t *err);
/* True once the log takes no more records until it is reopened: a failed write left a partial
 * record that could not be cut, or fdatasync failed (what reached the disk is then unknown,
 * and retrying would pretend it is known: PostgreSQL's "fsyncgate"). Appends then fail with
 * MESH_UNAVAILABLE. Reopening (a restart) cuts a torn tail and replays what the disk holds. */
bool mesh_dlog_broken(const mesh_dlog_t *log);
/* Makes every appended record durable. */
mesh_status_t mesh_dlog_sync(mesh_dlog_t *log, mesh_err_t *err);
/* Sequence of the last record (0 when none was ever written). */
uint64_t mesh_dlog_last_seq(const mesh_dlog_t *log);
/* Sequence of the first record still in the log (older ones were trimmed). */
uint64_t mesh_dlog_first_seq(const mesh_dlog_t *log);

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

/*
 * Checks a log without opening it for writing (nothing is changed, a torn tail is only
 * counted): every record's checksum, sequence and, when ring is given, authentication.
 * MESH_CORRUPT with the first problem; *records and *torn_bytes (an unfinished record at the
 * end of the last segment) otherwise.
 */
mesh_status_t mesh_dlog_check(const char *dir, const mesh_keyring_t *ring, uint64_t *records,
                              uint64_t *torn_bytes, mesh_err_t *err);

/* Deletes whole segments whose records are all <= seq (they are durable in the store). */
mesh_status_t mesh_dlog_trim(mesh_dlog_t *log, uint64_t seq, mesh_err_t *err);
/* Bytes on disk. */
uint64_t mesh_dlog_size(const mesh_dlog_t *log);

#endif
