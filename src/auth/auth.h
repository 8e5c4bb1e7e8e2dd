/*
 * auth.h - authentication (API tokens) and authorisation decisions.
 *
 * A token is any secret string of 16-256 printable bytes; meshd generates 256-bit random
 * ones ("mesh_" + base64url). It is never stored: the catalog keeps a lookup id (the first
 * 16 bytes of SHA-256(token), hex) and SHA-256(salt || token) with a random salt, and
 * verification compares hashes in constant time. Verified tokens are cached for a short
 * time so the catalog is not read on every request.
 *
 * Authorisation is deny by default: mesh_authz_check answers for an identity, an action and
 * a resource (mesh, a domain, a product). Today the roles are "admin" (everything), "writer"
 * (write and read data), "reader" (read data and the catalog) and "auditor" (read and verify
 * the audit log, nothing else).
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
/* Generates a new random token text into out (at least 64 bytes). */
mesh_status_t mesh_token_generate(char *out, size_t cap);

/* Stores a token for principal_id (token given by the caller, already shape-checked).
 * expires_ns 0: never. An existing identical token is left as it is. */
mesh_status_t mesh_auth_add_token(mesh_auth_t *a, int64_t principal_id, const char *token,
                                  int64_t expires_ns, const char *note, mesh_err_t *err);

/* Verifies a presented token: MESH_OK and the identity, or MESH_UNAUTHENTICATED. */
mesh_status_t mesh_auth_verify(mesh_auth_t *a, const char *token, size_t n, mesh_identity_t *out);

/* MESH_ACT_AUDIT: read and verify the audit log (GET /v1/audit, system.audit). */
typedef enum { MESH_ACT_READ = 0, MESH_ACT_WRITE, MESH_ACT_ADMIN, MESH_ACT_AUDIT } mesh_action_t;

/* domain and product may be NULL (the whole mesh / a whole domain). */
bool mesh_authz_check(const mesh_identity_t *id, mesh_action_t act, const char *domain,
                      const char *product);

#endif
