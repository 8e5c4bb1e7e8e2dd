/*
 * auth.h - authentication (API tokens) and authorisation decisions.
 *
 * A token is any secret string of 16-256 printable bytes; meshd generates 256-bit random
 * ones ("mesh_" + base64url). It is never stored: the catalog keeps a lookup id (the first
 * 16 bytes of SHA-256(token), hex) and SHA-256(salt || token) with a random salt, and
 * verification compares hashes in constant time. Verified tokens are cached for a short
 * time so the catalog is not read on every request.
 *
 * Users may also hold a password (a SCRAM-SHA-256 verifier, see scram.h) and exchange it
 * for a short-lived token (mesh_auth_login). Authorisation decisions are made by policy.h
 * over the policy snapshot this module keeps current.
 */
#ifndef MESH_AUTH_AUTH_H
#define MESH_AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "core/status.h"

#define MESH_TOKEN_MIN 16
#define MESH_TOKEN_MAX 256

typedef struct mesh_identity {
    int64_t principal_id;
    char name[64];
    char roles[256];
    char token_id[33];
} mesh_identity_t;

typedef struct mesh_auth mesh_auth_t;

mesh_status_t mesh_auth_open(mesh_catalog_t *cat, mesh_auth_t **out, mesh_err_t *err);
void mesh_auth_close(mesh_auth_t *a);

/* Checks the token's shape (length, printable ASCII): MESH_INVALID with a reason. */
mesh_status_t mesh_token_check_shape(const char *token, size_t n, mesh_err_t *err);
/* The lookup id of a token: hex of the first 16 bytes of its SHA-256. */
void mesh_token_id(const char *token, size_t n, char out[33]);
/* Generates a new random token text into out (at least 64 bytes). */
mesh_status_t mesh_token_generate(char *out, size_t cap);

/* Stores a token for principal_id (token given by the caller, already shape-checked).
 * expires_ns 0: never. An existing identical token is left as it is. */
mesh_status_t mesh_auth_add_token(mesh_auth_t *a, int64_t principal_id, const char *token,
                                  int64_t expires_ns, const char *note, mesh_err_t *err);

/* Verifies a presented token: MESH_OK and the identity, or MESH_UNAUTHENTICATED. */
mesh_status_t mesh_auth_verify(mesh_auth_t *a, const char *token, size_t n, mesh_identity_t *out);

typedef enum { MESH_ACT_READ = 0, MESH_ACT_WRITE, MESH_ACT_ADMIN, MESH_ACT_AUDIT } mesh_action_t;

struct mesh_policy;

/* Reads the policy (roles, grants, masks, row filters) from the catalog again and forgets
 * cached identities: after every change to principals or policies. */
mesh_status_t mesh_auth_reload(mesh_auth_t *a, mesh_err_t *err);
/* The current policy (a reference: release with mesh_policy_put). */
struct mesh_policy *mesh_auth_policy(mesh_auth_t *a);
/* Forgets cached token checks (after a token is revoked). */
void mesh_auth_forget(mesh_auth_t *a);

/* Exchanges a user's password for a new token valid ttl_ns (written to token, cap >= 64).
 * Failed attempts are limited per user name and per address: MESH_RATE_LIMITED with
 * *retry_ns set while they wait. A wrong name or password: MESH_UNAUTHENTICATED (the same
 * answer and cost for both). */
mesh_status_t mesh_auth_login(mesh_auth_t *a, const char *name, const char *password, size_t n,
                              const char *addr, int64_t ttl_ns, char *token, size_t cap,
                              mesh_identity_t *who, int64_t *retry_ns, mesh_err_t *err);

#endif
