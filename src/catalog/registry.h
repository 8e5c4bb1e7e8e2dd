/*
 * registry.h - the domains this node hosts, and immutable snapshots of them.
 *
 * Request handlers take a snapshot (mesh_registry_snapshot) at the start of a request and
 * release it at the end: for the whole request, domains, contracts and products it points
 * to stay valid and unchanged, even when a contract is replaced or a domain deleted
 * meanwhile (both are reference-counted). A change builds a new snapshot with a higher
 * generation; sessions that cache work per snapshot (query connections) compare it.
 */
#ifndef MESH_CATALOG_REGISTRY_H
#define MESH_CATALOG_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "catalog/contract.h"
#include "core/status.h"
#include "store/domain.h"

typedef struct mesh_dhandle mesh_dhandle_t;

typedef struct mesh_snap_domain {
    mesh_domain_meta_t meta;
    mesh_dhandle_t *handle;
    mesh_domain_t *dom; /* valid while the snapshot is held */
    mesh_cref_t **crefs;
    size_t ncrefs;
} mesh_snap_domain_t;

typedef struct mesh_snapshot {
    int refs; /* atomic */
    uint64_t gen;
    mesh_snap_domain_t *doms; /* sorted by name */
    size_t ndoms;
} mesh_snapshot_t;

const mesh_snap_domain_t *mesh_snapshot_domain(const mesh_snapshot_t *s, const char *name);
const mesh_product_t *mesh_snapshot_product(const mesh_snapshot_t *s, const char *domain,
                                            const char *product);
/* For batch decoding and parsers: a mesh_product_lookup_fn over a snapshot (arg = snapshot). */
const mesh_product_t *mesh_snapshot_lookup(void *snapshot, const char *domain, const char *product);
void mesh_snapshot_put(mesh_snapshot_t *s);

typedef struct mesh_registry mesh_registry_t;

/* Opens every domain the catalog lists (DATA/domains/<name>). */
mesh_status_t mesh_registry_open(const char *data_dir, mesh_catalog_t *cat,
                                 const mesh_domain_opts_t *opts, mesh_registry_t **out,
                                 mesh_err_t *err);
void mesh_registry_close(mesh_registry_t *r);

/* The current snapshot, with a reference the caller releases with mesh_snapshot_put. */
mesh_snapshot_t *mesh_registry_snapshot(mesh_registry_t *r);

mesh_status_t mesh_registry_create_domain(mesh_registry_t *r, const mesh_domain_meta_t *m,
                                          mesh_err_t *err);
/* Changes a domain's hosts and replication mode (from m: name, hosts, replication), in the
 * catalog and the next snapshot. */
mesh_status_t mesh_registry_set_domain_hosts(mesh_registry_t *r, const mesh_domain_meta_t *m,
                                             mesh_err_t *err);
/* Deletes a domain; refused (MESH_CONFLICT) while it has products unless force. Its files
 * are removed when the last request using it ends. */
mesh_status_t mesh_registry_delete_domain(mesh_registry_t *r, const char *name, bool force,
                                          mesh_err_t *err);

/* Replaces the open domain name by the one in dir (a complete copy: snapshot bootstrap,
 * node/bootstrap.c): opens it, calls prepare (may be NULL) before any snapshot shows it, and
 * swaps it in. Requests holding an older snapshot keep the old domain until they end; its
 * directory is then removed. MESH_NOT_FOUND when there is no such domain (the copy is then
 * left in dir); open errors as mesh_domain_open's. */
mesh_status_t mesh_registry_replace_domain(mesh_registry_t *r, const char *name, const char *dir,
                                           void (*prepare)(void *arg, mesh_domain_t *d), void *arg,
                                           mesh_err_t *err);

#endif
