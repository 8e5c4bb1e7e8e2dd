/*
 * sign.h - the node's signing key: Ed25519 (OpenSSL 3), for what one node asserts to another
 * (the end user of a federated query, docs/mesh.md).
 *
 * The private key is a 32-byte seed in a file of its own (DATA_DIR/node_sign.key, mode 0600,
 * created on first start with O_EXCL), like the TLS key beside it; the public key is
 * published in the node's registry entry. Keys in memory are cleansed when freed and never
 * logged. The only file besides aead.c and kek.c that includes OpenSSL's EVP interface.
 */
#ifndef MESH_CRYPT_SIGN_H
#define MESH_CRYPT_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define MESH_SIGN_PUB_BYTES 32
#define MESH_SIGN_SIG_BYTES 64

typedef struct mesh_signkey mesh_signkey_t;

/* Reads the key file at path, or creates it (0600) with a new random key when it does not
 * exist. MESH_CORRUPT when the file is not a key. *out is the caller's (mesh_signkey_free). */
mesh_status_t mesh_signkey_open(const char *path, mesh_signkey_t **out, mesh_err_t *err);
/* Frees (cleansing) the key. NULL is fine. */
void mesh_signkey_free(mesh_signkey_t *k);
/* The public key. */
void mesh_signkey_public(const mesh_signkey_t *k, uint8_t out[MESH_SIGN_PUB_BYTES]);
/* Signs msg[0..n): MESH_OK or MESH_INTERNAL. Thread-safe. */
mesh_status_t mesh_sign(const mesh_signkey_t *k, const void *msg, size_t n,
                        uint8_t sig[MESH_SIGN_SIG_BYTES]);
/* Whether sig is pub's signature of msg[0..n). Thread-safe. */
bool mesh_sign_verify(const uint8_t pub[MESH_SIGN_PUB_BYTES], const void *msg, size_t n,
                      const uint8_t sig[MESH_SIGN_SIG_BYTES]);

/* A signed envelope between nodes (federated scans, snapshot requests): magic (4 bytes) |
 * signature | body, the signature over context | subject | '\n' | body, so a message signed
 * for one purpose or subject verifies for no other. MESH_TOO_LARGE when the envelope would
 * pass max bytes. Appends to out (a core/buf mesh_buf_t). */
struct mesh_buf;
mesh_status_t mesh_sign_envelope(const mesh_signkey_t *k, const char *context, const char *subject,
                                 const char magic[4], const void *body, size_t n, size_t max,
                                 struct mesh_buf *out);
/* Whether p[0..n) is an envelope with that magic, at most max bytes, signed by pub for context
 * and subject. */
bool mesh_sign_envelope_verify(const uint8_t pub[MESH_SIGN_PUB_BYTES], const char *context,
                               const char *subject, const char magic[4], const void *p, size_t n,
                               size_t max);

#endif
