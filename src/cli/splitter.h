/*
 * splitter.h - cuts an input file into request-sized batches at record boundaries, for
 * `meshctl ingest`, reading it as a stream (the file is never held whole in memory).
 *
 *   CSV     a record ends at a line break outside quotes (RFC 4180, as the server reads it:
 *           a field is quoted only when it starts with '"', and "" inside quotes is one
 *           quote); the header is repeated at the top of every batch.
 *   NDJSON  one record per line.
 *   LP      one record per line (InfluxDB line protocol).
 *   JSON    a top-level array is cut between its elements by a small scanner that tracks
 *           strings and nesting; each batch is sent as an array of its elements. A single
 *           top-level object is one batch of one row.
 *
 * Records are copied verbatim, blank lines included, so a row number the server reports
 * for a batch (its line in the body, or its index in a JSON array) maps back to the line of
 * the file: see mesh_splitter_line(). Blank lines (and LP comments) are not counted as rows.
 * A UTF-8 byte-order mark at the start of the input is dropped.
 */
#ifndef MESH_CLI_SPLITTER_H
#define MESH_CLI_SPLITTER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

typedef enum { MESH_SPLIT_CSV, MESH_SPLIT_NDJSON, MESH_SPLIT_JSON, MESH_SPLIT_LP } mesh_split_fmt_t;

typedef struct mesh_splitter mesh_splitter_t;

typedef struct mesh_split_batch {
    const char *body;    /* the request body, borrowed until the next call */
    size_t len;          /* bytes of body */
    size_t rows;         /* records in it (blank lines and comments not counted) */
    uint64_t number;     /* 1-based batch number */
    uint64_t first_line; /* line of the input where the batch's first record starts */
    uint64_t last_line;  /* line of the input where its last record ends */
} mesh_split_batch_t;

/*
 * Reads in (borrowed; not closed) as fmt, cutting batches of at most max_rows records and
 * about max_bytes bytes (a batch ends at the first record boundary past max_bytes).
 * MESH_NOMEM when out of memory.
 */
mesh_status_t mesh_splitter_create(FILE *in, mesh_split_fmt_t fmt, size_t max_rows,
                                   size_t max_bytes, mesh_splitter_t **out);
void mesh_splitter_destroy(mesh_splitter_t *s);

/*
 * Cuts the next batch into *b. Returns 1 with a batch, 0 at the end of the input, -1 on an
 * error with err set: MESH_PARSE when the input cannot be cut (a JSON value never closed,
 * data after the top-level value), MESH_TOO_LARGE for a record longer than the server
 * accepts, MESH_IO when reading fails. The message names the input line.
 */
int mesh_splitter_next(mesh_splitter_t *s, mesh_split_batch_t *b, mesh_err_t *err);

/* Bytes consumed from the input so far. */
uint64_t mesh_splitter_bytes(const mesh_splitter_t *s);

/* The input line of the row the server numbers `row` in batch b (the last batch returned):
 * CSV, NDJSON and LP number rows by their line in the body, JSON by their 1-based index in
 * the array. 0 when row is outside the batch. */
uint64_t mesh_splitter_line(const mesh_splitter_t *s, const mesh_split_batch_t *b, uint64_t row);

#endif
