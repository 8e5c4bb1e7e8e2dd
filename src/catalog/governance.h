/*
 * governance.h - the catalog's governance policies: retention, legal holds and residency set
 * by meshctl or the API, per domain (product "") or per product (docs/governance.md).
 *
 * A product's contract may declare retention and residency too (customProperties); a policy
 * here overrides the contract's retention and can only make residency stricter. A legal hold
 * on the domain or on the product stops retention and erasure.
 */
#ifndef MESH_CATALOG_GOVERNANCE_H
#define MESH_CATALOG_GOVERNANCE_H

#include <stdbool.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "catalog/contract.h"
#include "core/status.h"

#define MESH_HOLD_REASON_MAX 256

typedef struct mesh_gov_rec {
    char domain[64];
    char product[64];     /* "" for the whole domain */
    int64_t retention_ns; /* -1: not set (the contract's); 0: kept forever */
    bool hold;
    char hold_reason[MESH_HOLD_REASON_MAX + 1];
    bool residency_local;
    int64_t updated_ns;
    char updated_by[64];
} mesh_gov_rec_t;

/* Called by mesh_catalog_open: creates the table. */
mesh_status_t mesh__catalog_gov_init(mesh_catalog_t *c, mesh_err_t *err);
/* The record of (domain, product) or defaults (retention -1, no hold) when there is none. */
mesh_status_t mesh_catalog_gov_get(mesh_catalog_t *c, const char *domain, const char *product,
                                   mesh_gov_rec_t *out, mesh_err_t *err);
mesh_status_t mesh_catalog_gov_put(mesh_catalog_t *c, const mesh_gov_rec_t *r, mesh_err_t *err);

/* The policy in force for a product: the contract's, overridden by the catalog's. */
typedef struct mesh_gov_effective {
    int64_t retention_ns; /* 0: kept forever */
    bool held;
    char held_on[160]; /* "domain icu" or "product icu.vitals" */
    char hold_reason[MESH_HOLD_REASON_MAX + 1];
    bool residency_local;
} mesh_gov_effective_t;
mesh_status_t mesh_catalog_gov_effective(mesh_catalog_t *c, const mesh_product_t *p,
                                         mesh_gov_effective_t *out, mesh_err_t *err);

/*
 * Residency, the predicate for everything that sends rows off this node (the mesh's
 * replication and federated scans, exports, backups copied elsewhere): true when the
 * product's rows must stay on this node (its contract says residency: local, or a policy on
 * it or its domain does). On a catalog error it answers true (deny by default).
 */
bool mesh_residency_local(mesh_catalog_t *c, const mesh_product_t *p);
/* The same for a whole domain: true when the domain's policy says local. */
bool mesh_residency_domain_local(mesh_catalog_t *c, const char *domain);

#endif
