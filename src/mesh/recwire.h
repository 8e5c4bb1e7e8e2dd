/*
 * recwire.h - a domain's record as it travels in its JetStream stream (decision 0037).
 *
 * The stream holds each record either as the domain's record itself (store/domain.c: its
 * first byte is a record kind, never 'Z'), or packed:
 *   'Z' | u32 length of the record (little-endian) | one zstd frame of the record
 * A record of MESH_RECWIRE_MIN bytes or more is packed when that saves at least an eighth of
 * it. Fingerprints (mesh_fp64), the domain's log and its checks always see the record, never
 * the packed bytes: packing is transport only, and records stored unpacked by older nodes
 * read as before.
 *
 * mesh_recwire_unpack reads bytes any node with the right to publish to the stream may have
 * put there: it is bounded (the record's length is checked against a limit before any
 * allocation, the frame must fill the message exactly and give exactly that many bytes).
 * Fuzzed by fuzz/fuzz_recwire.c.
 */
#ifndef MESH_MESH_RECWIRE_H
#define MESH_MESH_RECWIRE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"

#define MESH_RECWIRE_ZSTD  'Z'
#define MESH_RECWIRE_HDR   5   /* 'Z' and the length */
#define MESH_RECWIRE_MIN   512 /* smaller records travel as they are */
#define MESH_RECWIRE_LEVEL 1   /* zstd level: the fastest, most of the gain on batch records */

/* The bytes to publish for record p[0..n): *w, *wn point into out (packed) or at p itself. */
mesh_status_t mesh_recwire_pack(const uint8_t *p, size_t n, mesh_buf_t *out, const uint8_t **w,
                                size_t *wn, mesh_err_t *err);

/* The record carried by the message bytes w[0..wn): *p, *n point at w itself (unpacked) or
 * into out (its previous content is dropped). A packed record longer than max, or any bytes
 * that are not exactly one frame giving the announced length, are refused with MESH_CORRUPT;
 * MESH_NOMEM when out cannot hold it. */
mesh_status_t mesh_recwire_unpack(const uint8_t *w, size_t wn, size_t max, mesh_buf_t *out,
                                  const uint8_t **p, size_t *n, mesh_err_t *err);

#endif
