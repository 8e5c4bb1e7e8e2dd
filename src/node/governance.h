/*
 * governance.h - erasure (right to be forgotten) on a node, and the hook derived products
 * plug into (docs/governance.md).
 */
#ifndef MESH_NODE_GOVERNANCE_H
#define MESH_NODE_GOVERNANCE_H

#include <stdint.h>

#include "core/buf.h"
#include "node/node.h"

typedef struct mesh_erase_report {
    int64_t matched;    /* rows the WHERE selected */
    int64_t deleted;    /* rows removed from the product */
    int64_t records;    /* disposal records written to the domain's log */
    mesh_buf_t derived; /* JSON array of what the derived hook did ("" when no hook) */
} mesh_erase_report_t;
void mesh_erase_report_free(mesh_erase_report_t *r);

/*
 * Erases the rows of product p that `where` (untrusted SQL: one condition over its columns)
 * selects, as caller `who` under `policy`: the condition is evaluated by the sandboxed query
 * engine (the caller's masks and row filters apply: it erases only rows it can see, and is
 * refused when a key column is masked for it), the keys found are written as disposal
 * records through the domain's log. Then the derived hook, if any, runs. A legal hold on the
 * product or its domain refuses it (MESH_CONFLICT). rep is always initialised.
 */
mesh_status_t mesh_node_erase(mesh_node_t *n, mesh_snapshot_t *snap, mesh_policy_t *policy,
                              const mesh_identity_t *who, const mesh_product_t *p,
                              const char *where, mesh_erase_report_t *rep, mesh_err_t *err);

/*
 * Hooks for derived products: each registered hook is called after an erasure
 * of source product p with the same WHERE, it removes what derives from the erased rows in
 * every downstream product (by re-deriving them or erasing matching rows through
 * mesh_node_erase / mesh_domain_dispose) and appends to out one JSON object per product it
 * touched ({"domain","product", and "deleted" (rows) or what it did}, comma-separated,
 * without brackets). Its status is
 * the erasure's: an error is reported to the caller after the source rows are gone.
 */
typedef mesh_status_t (*mesh_erase_derived_fn)(void *arg, mesh_node_t *n, const mesh_product_t *p,
                                               const char *where, mesh_buf_t *out, mesh_err_t *err);
/* Registers a hook (up to 8; the same fn again only replaces its arg). They run in the order
 * registered; their objects go into one array, the answer's `derived`. */
void mesh_node_set_erase_derived(mesh_erase_derived_fn fn, void *arg);
/* Registers the node's own hook (at start): continuous aggregates, which an erasure reaches
 * through the domain's log, reported one object each ({"domain","product","kind":"aggregate",
 * "recomputed"}). */
void mesh__node_governance_start(mesh_node_t *n);

#endif
