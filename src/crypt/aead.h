/*
 * aead.h - AES-256-GCM sealing and opening over OpenSSL's EVP interface.
 *
 * A mesh_aead_t holds one encryption and one decryption context with the key schedule set
 * up once; each seal or open only sets the nonce, so the per-page and per-record cost is
 * the cipher itself (no allocation, no key expansion). A context is used by one thread at a
 * time: each SQLite file handle and each domain log owns its own.
 *
 * Callers choose nonces (see mesh_key_nonce in keys.h: never derived from page numbers or
 * log positions, which repeat) and pass the additional data that binds a ciphertext to its
 * place (page number, file identity, log sequence).
 */
#ifndef MESH_CRYPT_AEAD_H
#define MESH_CRYPT_AEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define MESH_AEAD_KEY_BYTES   32
#define MESH_AEAD_NONCE_BYTES 12
#define MESH_AEAD_TAG_BYTES   16

typedef struct mesh_aead mesh_aead_t;

/* Sets up contexts for key (copied into OpenSSL's key schedule, not kept by this module).
 * MESH_NOMEM or MESH_INTERNAL (OpenSSL refused) on failure. */
mesh_status_t mesh_aead_new(const uint8_t key[MESH_AEAD_KEY_BYTES], mesh_aead_t **out);
/* Frees the contexts (OpenSSL cleanses the key schedule). NULL is fine. */
void mesh_aead_free(mesh_aead_t *a);

/* Encrypts in[0..n) into out (out may equal in) and writes the tag. False only when OpenSSL
 * fails (never for valid arguments). */
bool mesh_aead_seal(mesh_aead_t *a, const uint8_t nonce[MESH_AEAD_NONCE_BYTES], const uint8_t *aad,
                    size_t naad, const uint8_t *in, size_t n, uint8_t *out,
                    uint8_t tag[MESH_AEAD_TAG_BYTES]);
/* Decrypts in[0..n) into out (out may equal in) and checks the tag. False when the tag does
 * not match (wrong key, damaged or moved data): out then holds garbage the caller must not
 * use (callers overwrite it). */
bool mesh_aead_open(mesh_aead_t *a, const uint8_t nonce[MESH_AEAD_NONCE_BYTES], const uint8_t *aad,
                    size_t naad, const uint8_t *in, size_t n, uint8_t *out,
                    const uint8_t tag[MESH_AEAD_TAG_BYTES]);

/* One-shot forms for rare uses (key files): set up, seal or open, free. */
bool mesh_aead_seal_once(const uint8_t key[MESH_AEAD_KEY_BYTES],
                         const uint8_t nonce[MESH_AEAD_NONCE_BYTES], const uint8_t *aad,
                         size_t naad, const uint8_t *in, size_t n, uint8_t *out,
                         uint8_t tag[MESH_AEAD_TAG_BYTES]);
bool mesh_aead_open_once(const uint8_t key[MESH_AEAD_KEY_BYTES],
                         const uint8_t nonce[MESH_AEAD_NONCE_BYTES], const uint8_t *aad,
                         size_t naad, const uint8_t *in, size_t n, uint8_t *out,
                         const uint8_t tag[MESH_AEAD_TAG_BYTES]);

/* Overwrites n bytes so the compiler cannot drop it (OPENSSL_cleanse). */
void mesh_cleanse(void *p, size_t n);

#endif
