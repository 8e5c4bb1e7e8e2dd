/*
 * quality.h - data quality of products: the ODCS quality rules of their contracts evaluated
 * on a schedule (and on demand), and a report per product.
 *
 * Per-row rules (types, required, ranges, lengths, patterns, formats, enums) are enforced at
 * ingest by the batch validator: a bad row refuses its batch or goes to the quarantine.
 * Dataset rules (nullValues, missingValues, invalidValues, duplicateValues, rowCount and
 * sql) are evaluated here, as SQL over the product through the query engine, by the node
 * itself: an identity of its own under an empty policy, so no mask or row filter of any
 * user changes a measure, and only numbers leave the evaluation. A sql rule may read only
 * products of its own domain.
 *
 * The report of a product joins the last evaluation (rules, completeness) with live
 * counters (rows accepted and quarantined, the time of the newest row against the
 * contract's latency and frequency) into a score from 0 to 100: the mean of the parts that
 * apply (share of rules passed, completeness, validity, freshness).
 */
#ifndef MESH_QUALITY_QUALITY_H
#define MESH_QUALITY_QUALITY_H

#include <jansson.h>
#include <stdint.h>

#include "catalog/registry.h"
#include "core/buf.h"
#include "core/status.h"
#include "query/query.h"

typedef struct mesh_quality mesh_quality_t;

/* interval_ns: time between scheduled evaluations of every product (0: none, on demand
 * only). The scheduler thread starts at once and evaluates soon after start. */
mesh_status_t mesh_quality_open(mesh_registry_t *reg, mesh_qpool_t *pool, int64_t interval_ns,
                                mesh_quality_t **out, mesh_err_t *err);
void mesh_quality_close(mesh_quality_t *q);

/* Evaluates one product now (its rules and completeness) and keeps the result. */
mesh_status_t mesh_quality_run(mesh_quality_t *q, mesh_snapshot_t *snap, const char *domain,
                               const char *product, mesh_err_t *err);

/* The report of a product (a new JSON object): {"domain","product","score","evaluated_at",
 * "rules":[...],"completeness","validity","rows","quarantined","quarantined_by_column",
 * "freshness":{...}}. Products never evaluated have "evaluated_at": null. */
json_t *mesh_quality_report(mesh_quality_t *q, const mesh_snap_domain_t *sd,
                            const mesh_product_t *p);
/* The score alone (the same as the report's), or -1 when nothing applies yet. */
double mesh_quality_score(mesh_quality_t *q, const mesh_snap_domain_t *sd, const mesh_product_t *p);

/* Appends the quality gauges of every product of snap to b (Prometheus text). */
void mesh_quality_metrics(mesh_quality_t *q, mesh_snapshot_t *snap, mesh_buf_t *b);

/* The SQL that measures rule r of product p (for tests and `quality --explain`): a query of
 * two numbers, the measure and the rows it is taken over. */
mesh_status_t mesh_quality_rule_sql(const mesh_product_t *p, const mesh_quality_rule_t *r,
                                    mesh_buf_t *out);

#endif
