/*
 * group.h - several async origin records carried by one stream message (decision 0040).
 *
 * An async domain's outbox publishes the batches of its log as origin records ('O', see
 * store/domain.c): u64 origin id, u64 origin sequence (the batch's log sequence on its
 * origin), u64 the origin sequence before it, then the batch. Consecutive origin records of one
 * outbox run travel together as one group, so the stream's servers pay their per-message cost
 * once for many batches:
 *
 *   'G' | u32 count | count x ( u32 length | origin record )        (little-endian)
 *
 * Every record of a group is an origin record of the same origin, longer than its header. A
 * replica applies each record of a group as it applies a lone origin record (its origin chain
 * decides, record by record, whether it is new), and stores the group's stream sequence once,
 * with the last of them: a group cut by a crash is applied again from its first record and
 * the chain skips those already applied. A group is published again whole after a failed run,
 * maybe cut elsewhere: the chain makes the grouping irrelevant to what is applied.
 *
 * mesh_group_split reads bytes any node allowed to publish to the stream may have put there:
 * bounded (count, lengths and sizes checked before use; no allocation). Fuzzed by
 * fuzz/fuzz_group.c.
 */
#ifndef MESH_STORE_GROUP_H
#define MESH_STORE_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"

#define MESH_GROUP_KIND       'G'
#define MESH_GROUP_HDR        5            /* 'G' and the count */
#define MESH_GROUP_MAX        256          /* records in one group, at most */
#define MESH_GROUP_BYTES      (256u << 10) /* the outbox closes a group at about this many bytes */
#define MESH_GROUP_ORIGIN     'O'          /* the kind of every record of a group */
#define MESH_GROUP_ORIGIN_HDR 25           /* 'O', origin id, origin sequence, previous sequence */

typedef struct mesh_group_rec {
    const uint8_t *p; /* into the group's bytes */
    size_t n;
} mesh_group_rec_t;

/* Whether p[0..n) is a group (its first byte; mesh_group_split says whether it is a good one). */
bool mesh_group_is(const uint8_t *p, size_t n);

/* Splits the group p[0..n) into its records: v[0..*count) point into p. MESH_CORRUPT (err says
 * why) unless it is exactly a header and 1..MESH_GROUP_MAX records, each an origin record
 * longer than its header, all of the same origin, filling the bytes exactly. v holds
 * MESH_GROUP_MAX. */
mesh_status_t mesh_group_split(const uint8_t *p, size_t n, mesh_group_rec_t *v, size_t *count,
                               mesh_err_t *err);

/* The origin id of origin record or group p[0..n) (its first record's), 0 when it is neither. */
uint64_t mesh_group_origin(const uint8_t *p, size_t n);

/* Building: out holds a lone origin record, or a group once a second one was added.
 * mesh_group_add appends the origin record made of head[0..hn) and body[0..bn) to out (empty:
 * it becomes the lone record; holding one: it becomes a group of both). *count: the records
 * out holds (updated). MESH_LIMIT when out holds MESH_GROUP_MAX already. */
mesh_status_t mesh_group_add(mesh_buf_t *out, size_t *count, const uint8_t *head, size_t hn,
                             const uint8_t *body, size_t bn);

#endif
