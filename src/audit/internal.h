/*
 * internal.h - what the audit module's files share: the record format, the crypto context
 * and the segment walker (format.c), used by the appender (audit.c) and the readers
 * (reader.c).
 */
#ifndef MESH_AUDIT_INTERNAL_H
#define MESH_AUDIT_INTERNAL_H

#include <jansson.h>
#include <openssl/evp.h>

#include "audit/audit.h"
#include "core/buf.h"

#define AUD_MAGIC  0x3155414du /* "MAU1" little-endian */
#define AUD_HEADER 20
#define AUD_NONCE  12
#define AUD_TAG    16
#define AUD_MAC    MESH_AUDIT_MAC_LEN
/* the largest payload: a sealed MESH_AUDIT_MAX_BODY */
#define AUD_MAX_PAYLOAD (MESH_AUDIT_MAX_BODY + AUD_NONCE + AUD_TAG)

enum { AUD_T_EVENT = 1, AUD_T_CHECKPOINT = 2, AUD_T_SEGMENT = 3 };
#define AUD_F_SEALED 0x1

#define AUD_SEG_SUFFIX ".alog"
#define AUD_SEG_NAME   25 /* 20 digits + ".alog" */

/* HEAD: "MAH1" | u64 seq | u64 base | i64 time | mac[32] | hmac[32] over what precedes */
#define AUD_HEAD_MAGIC 0x3148414du
#define AUD_HEAD_SIZE  (4 + 8 + 8 + 8 + AUD_MAC + AUD_MAC)

/* Per-thread crypto state (OpenSSL contexts are not shared between threads). */
typedef struct aud_crypto {
    EVP_MAC *mac_alg;
    EVP_MAC_CTX *mac;
    EVP_CIPHER_CTX *enc, *dec;
    mesh_audit_keys_t keys;
} aud_crypto_t;

mesh_status_t mesh__audit_crypto_init(aud_crypto_t *c, const mesh_audit_keys_t *keys,
                                      mesh_err_t *err);
void mesh__audit_crypto_free(aud_crypto_t *c);
/* HMAC-SHA256(mac key, a || b || c); any part may be empty. */
void mesh__audit_hmac(aud_crypto_t *c, const uint8_t *a, size_t an, const uint8_t *b, size_t bn,
                      const uint8_t *d, size_t dn, uint8_t out[AUD_MAC]);

/*
 * Appends one whole record (header, payload sealed when the keys encrypt, MAC over prev) to
 * out and sets mac_out to its MAC. body is the JSON payload (at most MESH_AUDIT_MAX_BODY).
 */
mesh_status_t mesh__audit_encode(aud_crypto_t *c, uint64_t seq, int type, const uint8_t *prev,
                                 const char *body, size_t n, mesh_buf_t *out, uint8_t *mac_out);

/* A record as found in a segment (pointers into the segment's bytes). */
typedef struct aud_rec {
    size_t off;  /* in the segment */
    size_t size; /* header + payload + MAC */
    uint64_t seq;
    int type;
    int flags;
    const uint8_t *hdr;
    const uint8_t *payload;
    uint32_t plen;
    const uint8_t *mac;
} aud_rec_t;

/* Parses the record at p[off..n): 1 complete, 0 incomplete (it runs past n, or only zero
 * bytes remain: a torn tail), -1 malformed (magic, length, type or flags). */
int mesh__audit_parse(const uint8_t *p, size_t n, size_t off, aud_rec_t *r);
/* The record's JSON payload (unsealed into scratch when sealed), NUL-terminated. */
mesh_status_t mesh__audit_payload(aud_crypto_t *c, const aud_rec_t *r, mesh_buf_t *scratch,
                                  const char **text, size_t *n);

/* The state of a chain walk across segments. */
typedef struct aud_chain {
    aud_crypto_t *c;
    bool have_prev; /* prev and next_seq known; else taken from the segment's first record */
    uint8_t prev[AUD_MAC];
    uint64_t next_seq;
    bool lenient; /* search: after a bad record, go on from it (its MAC becomes prev) */
    mesh_buf_t scratch;
} aud_chain_t;

/* Called for every record that passed its checks; body is its JSON payload (borrowed).
 * Returning MESH_BUSY pauses the walk after this record (res->paused, res->good is where to
 * resume); any other non-OK stops it with a MALFORMED fault. */
typedef mesh_status_t (*aud_rec_fn)(void *arg, const aud_rec_t *r, json_t *body);

/* What a segment walk found. */
typedef struct aud_seg_result {
    size_t good;      /* bytes of the valid prefix */
    uint64_t records; /* valid records */
    uint64_t events, checkpoints;
    uint64_t first_seq, last_seq;
    bool torn; /* the invalid suffix is an incomplete record or zero bytes */
    mesh_audit_fault_t fault;
    size_t fault_off;
    uint64_t fault_seq; /* the seq found there (for MISSING/REORDERED: the one found) */
    char reason[256];
    uint64_t skipped; /* lenient: records skipped */
    bool paused;      /* the callback asked to pause; resume at good */
} aud_seg_result_t;

/*
 * Walks one segment's bytes from offset start (0, or where a paused walk stopped): name_seq
 * is the first seq its file name gives (0: unknown). Stops at the first fault (except in
 * lenient mode) with res filled; ch carries prev and next_seq on to the next segment.
 */
void mesh__audit_walk(aud_chain_t *ch, const uint8_t *p, size_t n, size_t start, uint64_t name_seq,
                      aud_rec_fn fn, void *arg, aud_seg_result_t *res);

/* Segment file name for a first seq (AUD_SEG_NAME + 1 bytes). */
void mesh__audit_seg_name(uint64_t first, char *out);
/* The first seq a segment file name gives, or 0 when it is not one. */
uint64_t mesh__audit_seg_parse(const char *name);

/* A listed segment. */
typedef struct aud_seg {
    uint64_t first;
    uint64_t size; /* bytes to read (a snapshot of a live log stops at whole records) */
} aud_seg_t;

/* Lists dir's segments in seq order (malloc'd array). */
mesh_status_t mesh__audit_list(const char *dir, aud_seg_t **out, size_t *n, mesh_err_t *err);
/* Maps size bytes of a file read-only (size 0: the whole file, *n set); *p NULL when empty. */
mesh_status_t mesh__audit_map(const char *path, size_t size, uint8_t **p, size_t *n,
                              mesh_err_t *err);
void mesh__audit_unmap(uint8_t *p, size_t n);

typedef struct aud_head {
    uint64_t seq;
    uint64_t base;
    int64_t time_ns;
    uint8_t mac[AUD_MAC];
} aud_head_t;

/* Reads DIR/HEAD: MESH_OK, MESH_NOT_FOUND, or MESH_CORRUPT (bad shape or MAC). */
mesh_status_t mesh__audit_head_read(aud_crypto_t *c, const char *dir, aud_head_t *h,
                                    mesh_err_t *err);
/* Replaces DIR/HEAD atomically (temporary file, fsync, rename, fsync of the directory). */
mesh_status_t mesh__audit_head_write(aud_crypto_t *c, const char *dir, const aud_head_t *h,
                                     mesh_err_t *err);

/* Snapshot of a live log for readers (pending records written first): its directory, its
 * segments with the sizes written so far, its keys. Any output may be NULL (not wanted). */
mesh_status_t mesh__audit_snapshot(mesh_audit_t *a, char **dir, aud_seg_t **segs, size_t *n,
                                   mesh_audit_keys_t *keys, mesh_err_t *err);

void mesh__audit_put_u32(uint8_t *p, uint32_t v);
void mesh__audit_put_u64(uint8_t *p, uint64_t v);
uint32_t mesh__audit_get_u32(const uint8_t *p);
uint64_t mesh__audit_get_u64(const uint8_t *p);

#endif
