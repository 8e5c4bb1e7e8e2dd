/*
 * jsonrows.h - JSON rows for one product, parsed into a batch.
 *
 * Two shapes: a JSON array of objects (or one object), or NDJSON (one object per line;
 * blank lines skipped). Members map to columns by name; JSON types must fit the column:
 * strings for string, date, time and timestamp columns; numbers for integer, number and
 * timestamp columns; true/false for booleans; objects and arrays for object and array
 * columns; null anywhere (then required columns fail at the end of the row).
 *
 * Rows are numbered by their 1-based index in the array, or by their line in NDJSON. In
 * NDJSON each line is parsed on its own, so a malformed line is one bad row; in the array
 * form a malformed body refuses the batch with the line and column jansson reports. Duplicate
 * member names are malformed. A bad row's raw text (for the quarantine) is its bytes as
 * received.
 */
#ifndef MESH_INGEST_JSONROWS_H
#define MESH_INGEST_JSONROWS_H

#include <stdbool.h>
#include <stddef.h>

#include "catalog/contract.h"
#include "core/status.h"
#include "ingest/batch.h"

#define MESH_JSON_MAX_BODY  (64u << 20) /* bytes of an array-form body (parsed whole) */
#define MESH_JSON_MAX_LINE  (1u << 20)  /* bytes of one NDJSON line */
#define MESH_JSON_MAX_DEPTH 64          /* nesting of arrays and objects, the outer array counted */

/*
 * Parses body (n bytes, borrowed; need not be NUL-terminated) as rows of product p into b.
 * Returns MESH_OK when the batch can be applied (it may hold quarantined rows), else the code
 * the batch failed with (b->fail_code: PARSE, VALIDATION, TOO_LARGE, NOMEM); the reasons are
 * in b->errors.
 */
mesh_status_t mesh_json_rows_parse(const char *body, size_t n, const mesh_product_t *p, bool ndjson,
                                   mesh_batch_t *b);

#endif
