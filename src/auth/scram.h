/*
 * scram.h - password verifiers in PostgreSQL's SCRAM-SHA-256 format (RFC 5802, RFC 7677):
 *
 *   SCRAM-SHA-256$<iterations>:<salt base64>$<StoredKey base64>:<ServerKey base64>
 *
 * SaltedPassword = PBKDF2-HMAC-SHA256(password, salt, iterations); ClientKey =
 * HMAC(SaltedPassword, "Client Key"); StoredKey = SHA-256(ClientKey); ServerKey =
 * HMAC(SaltedPassword, "Server Key"). The same text a PostgreSQL server stores, so a SQL wire
 * protocol front end can run the SCRAM exchange with it later. The password is used as
 * given (UTF-8 bytes; no SASLprep, which leaves ASCII passwords unchanged).
 */
#ifndef MESH_AUTH_SCRAM_H
#define MESH_AUTH_SCRAM_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define MESH_SCRAM_ITERATIONS     4096 /* PostgreSQL's default */
#define MESH_SCRAM_ITERATIONS_MAX 1000000
#define MESH_SCRAM_VERIFIER_MAX   256
#define MESH_PASSWORD_MIN         8
#define MESH_PASSWORD_MAX         1024

typedef struct mesh_scram {
    int iterations;
    uint8_t salt[64];
    size_t salt_len;
    uint8_t stored_key[32];
    uint8_t server_key[32];
} mesh_scram_t;

/* Makes a verifier for password with a random 16-byte salt. MESH_INVALID when the password is
 * shorter than MESH_PASSWORD_MIN or longer than MESH_PASSWORD_MAX bytes. */
mesh_status_t mesh_scram_make(const char *password, size_t n, int iterations, char *out, size_t cap,
                              mesh_err_t *err);
/* Parses a verifier (bounded, strict): MESH_PARSE with a reason when it is malformed. */
mesh_status_t mesh_scram_parse(const char *text, size_t n, mesh_scram_t *out, mesh_err_t *err);
/* True when password matches the verifier (constant-time comparison of StoredKey). */
int mesh_scram_check(const mesh_scram_t *v, const char *password, size_t n);
/* The client's proof for an exchange (RFC 5802 3): for tests against the RFC's example and
 * for a future SCRAM exchange. out: 32 bytes. */
void mesh_scram_client_proof(const char *password, size_t n, const uint8_t *salt, size_t salt_len,
                             int iterations, const char *auth_message, uint8_t out[32]);

#endif
