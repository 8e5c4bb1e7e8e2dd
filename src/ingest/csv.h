/*
 * csv.h - CSV (RFC 4180) bodies for one product, parsed into a batch.
 *
 * The first line is the header: the column names, each a column of the product, none twice
 * (otherwise the batch is refused naming it). Each following record is one row: fields are
 * separated by commas and may be quoted ("" inside quotes is one quote; quoted fields may
 * hold commas and line breaks); records end at LF or CRLF. An unquoted empty field is NULL,
 * a quoted empty field ("") is the empty string; columns absent from the header are not
 * set. Empty lines are skipped; a UTF-8 byte-order mark before the header is ignored.
 *
 * A record's row number is the physical line it starts on. A record with the wrong number
 * of fields or a stray quote is a bad row (quarantined with its raw text, or refusing the
 * batch, per the product). A quote that is never closed, a header that does not fit, and a
 * record longer than MESH_CSV_MAX_LINE refuse the batch.
 */
#ifndef MESH_INGEST_CSV_H
#define MESH_INGEST_CSV_H

#include <stddef.h>

#include "catalog/contract.h"
#include "core/status.h"
#include "ingest/batch.h"

#define MESH_CSV_MAX_FIELDS 1024       /* fields of the header */
#define MESH_CSV_MAX_LINE   (1u << 20) /* bytes of one record, line breaks inside quotes included */

/*
 * Parses body (n bytes, borrowed; need not be NUL-terminated) as rows of product p into b.
 * Returns MESH_OK when the batch can be applied (it may hold quarantined rows), else the code
 * the batch failed with (b->fail_code: INVALID for a bad header, PARSE, VALIDATION,
 * TOO_LARGE, NOMEM); the reasons are in b->errors.
 */
mesh_status_t mesh_csv_parse(const char *body, size_t n, const mesh_product_t *p, mesh_batch_t *b);

#endif
