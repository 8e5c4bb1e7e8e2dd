/*
 * catalog.h - the node's catalog database: domains, principals and their API tokens.
 *
 * Contracts and rows live in each domain's own database (store/); the catalog lists which
 * domains this node hosts and who may call it. One connection, guarded by a mutex: catalog
 * traffic is small (token checks are cached by auth/).
 */
#ifndef MESH_CATALOG_CATALOG_H
#define MESH_CATALOG_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct mesh_catalog mesh_catalog_t;

typedef struct mesh_domain_meta {
    char name[64];
    char *description; /* may be NULL */
    char **owners;
    size_t nowners;
    int64_t created_ns;
    /* replication (docs/mesh.md): the nodes hosting the domain and the mode; nhosts 0 and
     * replication "none": the domain lives on this node only */
    char **hosts;
    size_t nhosts;
    char replication[8]; /* "none", "sync" or "async" */
    /* residency: local (docs/mesh.md, edge offline): the domain's stream is never sourced
     * off its site. TODO(retain): OR it with mesh_residency_domain_local() at the merge. */
    bool residency_local;
} mesh_domain_meta_t;

#define MESH_DOMAIN_HOSTS_MAX 16
/* Whether mode names a replication mode ("none", "sync", "async"). */
bool mesh_domain_replication_ok(const char *mode);

void mesh_domain_meta_free(mesh_domain_meta_t *m);
/* Deep copy; MESH_NOMEM on failure. */
mesh_status_t mesh_domain_meta_copy(const mesh_domain_meta_t *src, mesh_domain_meta_t *dst);

mesh_status_t mesh_catalog_open(const char *path, mesh_catalog_t **out, mesh_err_t *err);
void mesh_catalog_close(mesh_catalog_t *c);

/* Node identity, created on first open. */
const char *mesh_catalog_node_id(const mesh_catalog_t *c);
/* True when the catalog was created by this open (first start). */
bool mesh_catalog_is_new(const mesh_catalog_t *c);

/*
 * The catalog version: a counter in the meta table that triggers on every table of the
 * catalog (all but meta itself) raise inside the very transaction of each change, so no
 * write path can forget it: principals, passwords, tokens (create, revoke), roles, grants,
 * masks, row filters, domains, contracts, tags, mappings. The audit log records it with
 * every admin change (the witness, docs/security.md), and a start refuses a catalog older
 * than the audit log says it was. 0 when it cannot be read.
 */
int64_t mesh_catalog_version(mesh_catalog_t *c);
/* Raises the version to at least to (accepting a rollback: the catalog goes on from past
 * what the audit log saw) and clears the restore mark. */
mesh_status_t mesh_catalog_version_raise(mesh_catalog_t *c, int64_t to, mesh_err_t *err);
/* Marks the catalog as restored from a backup (meshctl backup restore): the next start
 * accepts that it is older than the audit log, and audits so. */
mesh_status_t mesh_catalog_mark_restored(mesh_catalog_t *c, mesh_err_t *err);
/* The time (ns) of the restore mark, 0 without one. */
int64_t mesh_catalog_restored_ns(mesh_catalog_t *c);

mesh_status_t mesh_catalog_domain_put(mesh_catalog_t *c, const mesh_domain_meta_t *m,
                                      mesh_err_t *err);
mesh_status_t mesh_catalog_domain_delete(mesh_catalog_t *c, const char *name, mesh_err_t *err);
/* Changes a domain's hosts and replication mode (m->name names it; other fields unused). */
mesh_status_t mesh_catalog_domain_set_hosts(mesh_catalog_t *c, const mesh_domain_meta_t *m,
                                            mesh_err_t *err);
/* All domains, by name. The array and its entries are freed with mesh_domain_meta_free on
 * each entry and free() on the array. */
mesh_status_t mesh_catalog_domains(mesh_catalog_t *c, mesh_domain_meta_t **out, size_t *n,
                                   mesh_err_t *err);

/* Principals: a name, a kind (user or service) and roles (comma-separated). */
typedef struct mesh_principal {
    int64_t id;
    char name[64];
    char kind[16];
    char roles[256];
} mesh_principal_t;

mesh_status_t mesh_catalog_principal_put(mesh_catalog_t *c, const char *name, const char *kind,
                                         const char *roles, int64_t *id, mesh_err_t *err);
mesh_status_t mesh_catalog_principal_get(mesh_catalog_t *c, int64_t id, mesh_principal_t *out);

/* A token as stored: never the token itself, only a salted hash of it. */
typedef struct mesh_token_rec {
    char id[33]; /* lookup id: hex of the first 16 bytes of SHA-256(token) */
    int64_t principal_id;
    uint8_t salt[16];
    uint8_t hash[32];                           /* SHA-256(salt || token) */
    int64_t created_ns, expires_ns, revoked_ns; /* 0: none */
    char note[128];
} mesh_token_rec_t;

mesh_status_t mesh_catalog_token_put(mesh_catalog_t *c, const mesh_token_rec_t *t, mesh_err_t *err);
mesh_status_t mesh_catalog_token_get(mesh_catalog_t *c, const char *id, mesh_token_rec_t *out);
/* Number of tokens (0 on a new node). */
int64_t mesh_catalog_token_count(mesh_catalog_t *c);

#endif
