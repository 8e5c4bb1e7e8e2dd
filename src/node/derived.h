/*
 * derived.h - derived products defined by SQL on a node (node/derived.c, docs/derived.md,
 * decision 0031): checked at definition, refreshed as their definer, reached by erasures.
 */
#ifndef MESH_NODE_DERIVED_H
#define MESH_NODE_DERIVED_H

#include <stdbool.h>
#include <stdint.h>

#include "derive/derive.h"
#include "node/node.h"

/* Checks the derivations by SQL of contract c before it is applied by who: the definer must
 * be who, the query must prepare as who (read-only, products of this node who may read) and
 * give exactly the columns the contract declares. MESH_FORBIDDEN, MESH_PARSE, MESH_INVALID,
 * MESH_TOO_LARGE with the reason. */
mesh_status_t mesh__node_derived_check(mesh_node_t *n, mesh_snapshot_t *snap, mesh_policy_t *policy,
                                       const mesh_identity_t *who, const mesh_contract_t *c,
                                       mesh_err_t *err);

/* Refreshes domain.product now, as its definer, in one log record: a full recompute, or (full
 * false, an incremental shape, and a full refresh done before on this node) the rows at or
 * after the smallest time written to its input since, or nothing when nothing was written.
 * *rows (may be NULL): rows written. The outcome is audited and kept for
 * mesh__node_derived_status. */
mesh_status_t mesh__node_derived_refresh(mesh_node_t *n, const char *domain, const char *product,
                                         bool full, int64_t *rows, mesh_err_t *err);

/* Refreshes the derived products whose interval has passed (the main loop, once a second). */
void mesh__node_derived_tick(mesh_node_t *n);

typedef struct mesh_derived_status {
    int64_t last_ns, next_ns; /* the last refresh attempt, the next one */
    int64_t rows;             /* rows the last successful refresh wrote */
    char mode[16];            /* how: full, incremental, unchanged */
    int64_t full_runs;        /* full recomputes that succeeded since the node started */
    int64_t incremental_runs; /* incremental refreshes that succeeded since the node started */
    char error[512];          /* the last attempt's error, "" when it succeeded */
} mesh_derived_status_t;
/* The refresh state of domain.product; false when it was never refreshed on this node. */
bool mesh__node_derived_status(mesh_node_t *n, const char *domain, const char *product,
                               mesh_derived_status_t *out);

/* The lineage of the SQL-derived product p, extracted as its definer (free with
 * mesh_lineage_free). */
mesh_status_t mesh__node_derived_lineage(mesh_node_t *n, mesh_snapshot_t *snap,
                                         const mesh_product_t *p, mesh_lineage_t *out,
                                         mesh_err_t *err);

/* After rows of src were erased: refreshes every SQL-derived product reading src (and those
 * reading them), appending one JSON object per product to out ({"domain","product",
 * "deleted","refreshed","rows"}, comma-separated); a product that cannot be refreshed is
 * emptied instead, so no erased value stays in it. *count: products touched. */
mesh_status_t mesh__node_derived_erased(mesh_node_t *n, const mesh_product_t *src, mesh_buf_t *out,
                                        size_t *count, mesh_err_t *err);

/* Whether a product derived by SQL reads p (its lineage, or its query naming p when the
 * lineage cannot be had); out (cap bytes): "domain.product" of the first. */
bool mesh__node_derived_reader(mesh_node_t *n, mesh_snapshot_t *snap, const mesh_product_t *p,
                               char *out, size_t cap);

void mesh__node_derived_free(mesh_node_t *n);

#endif
