/*
 * security.h - what the catalog keeps for access control: principals' passwords, roles,
 * grants, masking policies and row filters, and the policy version.
 *
 * Every change to any of them bumps the policy version (one integer in catalog meta): a
 * decision records the version that made it, and caches built from an older version are
 * thrown away. These are plain records; src/auth/policy.c turns them into decisions.
 */
#ifndef MESH_CATALOG_SECURITY_H
#define MESH_CATALOG_SECURITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "catalog/classification.h"
#include "core/status.h"

#define MESH_ROLE_MAX       63   /* role name length */
#define MESH_ROLES_TEXT_MAX 255  /* a principal's roles, comma-separated */
#define MESH_PREDICATE_MAX  4096 /* row-filter predicates and mask expressions */
#define MESH_COLUMNS_MAX    1024 /* a grant's column list, comma-separated */

/* ---- principals ---- */

typedef struct mesh_principal_info {
    int64_t id;
    char name[64];
    char kind[16];   /* user | service */
    char roles[256]; /* comma-separated */
    bool has_password;
    bool disabled;
    int64_t created_ns;
} mesh_principal_info_t;

mesh_status_t mesh_catalog_principal_find(mesh_catalog_t *c, const char *name,
                                          mesh_principal_info_t *out);
mesh_status_t mesh_catalog_principal_info(mesh_catalog_t *c, int64_t id,
                                          mesh_principal_info_t *out);
/* All principals, by name (free() the array). */
mesh_status_t mesh_catalog_principal_list(mesh_catalog_t *c, mesh_principal_info_t **out, size_t *n,
                                          mesh_err_t *err);
/* Creates a principal: MESH_CONFLICT when the name is taken. */
mesh_status_t mesh_catalog_principal_create(mesh_catalog_t *c, const char *name, const char *kind,
                                            const char *roles, int64_t *id, mesh_err_t *err);
/* Changes roles (NULL: unchanged) and the disabled flag (-1: unchanged). */
mesh_status_t mesh_catalog_principal_update(mesh_catalog_t *c, int64_t id, const char *roles,
                                            int disabled, mesh_err_t *err);
/* Deletes a principal and its tokens. */
mesh_status_t mesh_catalog_principal_delete(mesh_catalog_t *c, int64_t id, mesh_err_t *err);
/* The stored SCRAM-SHA-256 verifier ("" when none). */
mesh_status_t mesh_catalog_password_get(mesh_catalog_t *c, int64_t id, char *out, size_t cap);
mesh_status_t mesh_catalog_password_set(mesh_catalog_t *c, int64_t id, const char *verifier,
                                        mesh_err_t *err);

/* ---- tokens (beyond catalog.h) ---- */

/* A principal's tokens (principal_id 0: every token), newest first; free() the array. */
mesh_status_t mesh_catalog_token_list(mesh_catalog_t *c, int64_t principal_id,
                                      mesh_token_rec_t **out, size_t *n, mesh_err_t *err);
/* Marks a token revoked (MESH_NOT_FOUND when there is no such token). */
mesh_status_t mesh_catalog_token_revoke(mesh_catalog_t *c, const char *id, mesh_err_t *err);

/* ---- roles, grants, masks, row filters ---- */

typedef struct mesh_role_rec {
    char name[MESH_ROLE_MAX + 1];
    char description[256];
    int64_t created_ns;
} mesh_role_rec_t;

typedef struct mesh_grant_rec {
    int64_t id;
    char role[MESH_ROLE_MAX + 1];
    bool deny;
    char action[16];                    /* read | write | admin | audit */
    char domain[64];                    /* "" = every domain */
    char product[128];                  /* "" = every product of the domain */
    char columns[MESH_COLUMNS_MAX + 1]; /* "" = every column; else comma-separated */
    int64_t created_ns;
} mesh_grant_rec_t;

typedef struct mesh_mask_rec {
    int64_t id;
    char domain[64];   /* "" = any */
    char product[128]; /* "" = any */
    char column[128];  /* the column, or "" when tag is set */
    char tag[64];      /* a classification or column tag, or "" when column is set */
    char type[32];     /* MASK, MASK_SHOW_LAST_4, ... CUSTOM */
    char expr[MESH_PREDICATE_MAX + 1];    /* CUSTOM: SQL with {col} */
    char roles[MESH_ROLES_TEXT_MAX + 1];  /* whom it applies to: comma-separated, or "*" */
    char except[MESH_ROLES_TEXT_MAX + 1]; /* roles it never applies to */
    int64_t created_ns;
} mesh_mask_rec_t;

typedef struct mesh_filter_rec {
    int64_t id;
    char role[MESH_ROLE_MAX + 1];
    char domain[64];
    char product[128];
    char predicate[MESH_PREDICATE_MAX + 1];
    int64_t created_ns;
} mesh_filter_rec_t;

/* Everything policy.c needs, read in one transaction. */
typedef struct mesh_policy_src {
    int64_t version;
    uint8_t mask_key[32]; /* the key of MASK_HASH (HMAC-SHA256), made on first use */
    mesh_role_rec_t *roles;
    size_t nroles;
    mesh_grant_rec_t *grants;
    size_t ngrants;
    mesh_mask_rec_t *masks;
    size_t nmasks;
    mesh_filter_rec_t *filters;
    size_t nfilters;
    mesh_coltag_rec_t *coltags; /* tags approved for columns (catalog/classification.h) */
    size_t ncoltags;
} mesh_policy_src_t;

mesh_status_t mesh_catalog_policy_load(mesh_catalog_t *c, mesh_policy_src_t *out, mesh_err_t *err);
void mesh_policy_src_free(mesh_policy_src_t *s);
int64_t mesh_catalog_policy_version(mesh_catalog_t *c);

/* Each change bumps the policy version. Creating a role that exists: MESH_CONFLICT.
 * Deleting a role also deletes its grants, masks' references stay (they name roles by text). */
mesh_status_t mesh_catalog_role_create(mesh_catalog_t *c, const char *name, const char *description,
                                       mesh_err_t *err);
mesh_status_t mesh_catalog_role_delete(mesh_catalog_t *c, const char *name, mesh_err_t *err);
mesh_status_t mesh_catalog_grant_add(mesh_catalog_t *c, mesh_grant_rec_t *g, mesh_err_t *err);
mesh_status_t mesh_catalog_mask_add(mesh_catalog_t *c, mesh_mask_rec_t *m, mesh_err_t *err);
mesh_status_t mesh_catalog_filter_add(mesh_catalog_t *c, mesh_filter_rec_t *f, mesh_err_t *err);
/* kind: "grants", "masks" or "row_filters". MESH_NOT_FOUND when there is no such id. */
mesh_status_t mesh_catalog_policy_delete(mesh_catalog_t *c, const char *kind, int64_t id,
                                         mesh_err_t *err);
/* Bumps the version without another change (e.g. a principal's roles changed). */
mesh_status_t mesh_catalog_policy_bump(mesh_catalog_t *c, mesh_err_t *err);

/* Called by mesh_catalog_open: creates the tables (and new columns of old catalogs). */
mesh_status_t mesh__catalog_security_init(mesh_catalog_t *c, mesh_err_t *err);

#endif
