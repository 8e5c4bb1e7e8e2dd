/*
 * lineproto.h - the InfluxDB line protocol, parsed into a batch.
 *
 *     measurement[,tag=value...] field=value[,field=value...] [timestamp]
 *
 * One row per line. The measurement names a product of the domain, tag and field keys name
 * its columns, the timestamp goes to the product's time column (in the batch's precision).
 * Tag values are text (converted to the column's type); field values are typed: 12i, 12u,
 * 1.5 / -2e3 / 1, "text", and t/T/true/True/TRUE/f/F/false/False/FALSE. Escapes follow the
 * InfluxDB reference: "\," and "\ " in measurements; "\,", "\=" and "\ " in tag keys, tag
 * values and field keys; "\"" and "\\" in string field values. A line ends at '\n' (a '\r'
 * before it is dropped), so string values cannot span lines. Blank lines and lines whose
 * first non-blank byte is '#' are skipped.
 *
 * Errors are per line (its 1-based number is the row): syntax errors name the byte column
 * ("line 3, col 17: expected '=' after field key 'temp'"), then go to the product's
 * quarantine or refuse the batch like any bad row. A line whose product is unknown cannot
 * be quarantined and refuses the batch.
 */
#ifndef MESH_INGEST_LINEPROTO_H
#define MESH_INGEST_LINEPROTO_H

#include <stddef.h>

#include "core/status.h"
#include "ingest/batch.h"

#define MESH_LP_MAX_LINE   (64 * 1024) /* bytes of one line, without its line ending */
#define MESH_LP_MAX_FIELDS 1024        /* tags + fields of one line */

/*
 * Parses body (n bytes, borrowed; need not be NUL-terminated) into b. Products are found with
 * lookup(arg, domain, measurement). Returns MESH_OK when the batch can be applied (it may
 * hold quarantined rows), else the code the batch failed with (b->fail_code: VALIDATION,
 * TOO_LARGE, NOMEM); the reasons are in b->errors. Parsing stops early only on a limit.
 */
mesh_status_t mesh_lp_parse(const char *body, size_t n, const char *domain,
                            mesh_product_lookup_fn lookup, void *arg, mesh_batch_t *b);

#endif
