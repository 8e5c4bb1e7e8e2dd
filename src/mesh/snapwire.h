/*
 * snapwire.h - the messages of snapshot bootstrap between nodes (docs/mesh.md "Snapshot
 * bootstrap", decision 0033).
 *
 * Everything here is read from other processes over the network: strict, bounded decoders,
 * every length checked against the bytes present and a named limit before use. Fuzzed by
 * fuzz/fuzz_snap_wire.c.
 *
 * A request (a hosting node -> the domain's other hosts, on meshd.dom.<domain>.req.snap,
 * queue group meshd.dom.<domain>) is signed by the asking node:
 *   "MSR1" | Ed25519 signature (64 bytes) | JSON
 * The signature covers "meshd-snap-v1\n" + subject + "\n" + JSON, so a request cannot be
 * moved to another subject or domain. The JSON (version 1):
 *   {"v":1,"node":"n3","domain":"plant","ts":<unix ns>,"nonce":"<32 hex>"}
 * A reply is a frame:
 *   "MSF1" | u8 kind | u32 length | body                      (integers little-endian)
 *   kind 0 data:   bytes of the snapshot's database, in order (whole pages);
 *   kind 1 error:  u8 status (mesh_status_t) | message text;
 *   kind 2 header: u64 stream sequence the snapshot holds | u64 its size in bytes;
 *   kind 3 end:    u64 size in bytes | u32 CRC-32C of all the data bytes.
 * Every frame but an error or the end carries, as its NATS reply subject, where the asking
 * node asks for the next frame ("next") or gives up ("close"): a subject in the serving
 * node's inbox that only the receiver of that frame may publish to (allow_responses).
 */
#ifndef MESH_MESH_SNAPWIRE_H
#define MESH_MESH_SNAPWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"
#include "core/util.h"
#include "crypt/sign.h"

#define MESH_SNAP_MAX_REQUEST 4096         /* bytes of a request */
#define MESH_SNAP_CHUNK_BYTES (512 * 1024) /* data bytes in one frame, at most */
#define MESH_SNAP_MAX_FRAME   (MESH_SNAP_CHUNK_BYTES + 9)
#define MESH_SNAP_MAX_TEXT    512 /* bytes of an error message */
#define MESH_SNAP_NONCE_BYTES 16
#define MESH_SNAP_FRAME_HDR   9 /* magic, kind, length */

typedef struct mesh_snap_request {
    char node[64]; /* the asking node (mesh_entry_node_name_ok) */
    char domain[MESH_NAME_MAX + 1];
    int64_t ts_ns;
    uint8_t nonce[MESH_SNAP_NONCE_BYTES];
} mesh_snap_request_t;

/* Signs and encodes r for subject into out. */
mesh_status_t mesh_snap_request_encode(const mesh_snap_request_t *r, const char *subject,
                                       const mesh_signkey_t *key, mesh_buf_t *out);
/* Parses a request without checking its signature: MESH_TOO_LARGE, MESH_PARSE, MESH_INVALID. */
mesh_status_t mesh_snap_request_parse(const void *p, size_t n, mesh_snap_request_t *out,
                                      mesh_err_t *err);
/* Whether the request bytes p[0..n) carry pub's signature for subject. */
bool mesh_snap_request_verify(const void *p, size_t n, const char *subject,
                              const uint8_t pub[MESH_SIGN_PUB_BYTES]);

typedef enum {
    MESH_SNAP_DATA = 0,
    MESH_SNAP_ERROR = 1,
    MESH_SNAP_HEADER = 2,
    MESH_SNAP_END = 3
} mesh_snap_kind_t;

typedef struct mesh_snap_frame {
    mesh_snap_kind_t kind;
    const uint8_t *data; /* DATA: borrowed from the frame's bytes */
    size_t len;
    uint64_t seq;                     /* HEADER */
    uint64_t bytes;                   /* HEADER, END */
    uint32_t crc;                     /* END */
    mesh_status_t code;               /* ERROR */
    char msg[MESH_SNAP_MAX_TEXT + 1]; /* ERROR (control characters replaced) */
} mesh_snap_frame_t;

/* Frame encoders (out is reset first). */
mesh_status_t mesh_snap_data_encode(const uint8_t *p, size_t n, mesh_buf_t *out);
mesh_status_t mesh_snap_error_encode(mesh_status_t code, const char *msg, mesh_buf_t *out);
mesh_status_t mesh_snap_header_encode(uint64_t seq, uint64_t bytes, mesh_buf_t *out);
mesh_status_t mesh_snap_end_encode(uint64_t bytes, uint32_t crc, mesh_buf_t *out);
/* Decodes a frame: MESH_PARSE (not a frame, a length that does not match the bytes, an
 * unknown kind or status), MESH_TOO_LARGE (past MESH_SNAP_MAX_FRAME). */
mesh_status_t mesh_snap_frame_decode(const void *p, size_t n, mesh_snap_frame_t *out,
                                     mesh_err_t *err);

#endif
