/*
 * codec.h - compressed column chunks for time series.
 *
 * A chunk holds up to MESH_CHUNK_MAX_ROWS rows of one series, sorted by time. Each column is
 * encoded on its own:
 *   time     delta-of-delta, zigzag varints, runs of equal deltas run-length encoded
 *            (a regular 10 s interval costs a few bytes per chunk)
 *   integer  delta, zigzag varints (booleans too)
 *   real     Gorilla XOR: the XOR with the previous value, with leading/trailing zero
 *            counts reused when they fit (Pelkonen et al., VLDB 2015)
 *   text     a dictionary of the chunk's distinct values and one varint index per row
 *            (a tag that never changes within a series costs one entry)
 * Every column has a null bitmap when it holds a NULL. Per numeric column the chunk keeps
 * count, min, max and sum of its non-null values so a scan can skip chunks whose range
 * cannot match.
 *
 * Layout: u8 version | uvarint nrows | uvarint ncols | per column: uvarint name length,
 * name, u8 kind, u8 flags, [summary], [last row's value], uvarint data length, data. The last
 * row's value (since version 2) lets the newest row of a series be read without decoding. Decoding
 * treats the bytes as untrusted: every length is checked against what remains.
 */
#ifndef MESH_STORE_CODEC_H
#define MESH_STORE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"

#define MESH_CHUNK_MAX_ROWS 8192
#define MESH_CHUNK_MAX_COLS 1000

typedef enum {
    MESH_COL_TIME = 1, /* int64 ns, sorted ascending */
    MESH_COL_INT = 2,
    MESH_COL_REAL = 3,
    MESH_COL_TEXT = 4,
} mesh_colkind_t;

/* One column of rows to encode (borrowed arrays of nrows entries). */
typedef struct mesh_colvec {
    const char *name;
    mesh_colkind_t kind;
    const uint8_t *nulls; /* nrows bytes, 1 = NULL; NULL pointer when none is null */
    const int64_t *i;     /* TIME, INT */
    const double *d;      /* REAL */
    const char *const *s; /* TEXT: pointers to the values */
    const uint32_t *slen; /* TEXT: their lengths */
} mesh_colvec_t;

/* Appends the encoded chunk to out. */
mesh_status_t mesh_chunk_encode(const mesh_colvec_t *cols, size_t ncols, size_t nrows,
                                mesh_buf_t *out);

/* Summary of a numeric column in a chunk. */
typedef struct mesh_colsum {
    int64_t count;
    double min, max, sum;
} mesh_colsum_t;

/* One decoded column. */
typedef struct mesh_chunk_col {
    char *name;
    mesh_colkind_t kind;
    bool has_summary;
    mesh_colsum_t sum;
    uint8_t *nulls; /* nrows bytes or NULL */
    int64_t *i;     /* TIME, INT */
    double *d;      /* REAL */
    uint32_t *sidx; /* TEXT: dictionary index per row */
    char **dict;    /* TEXT: distinct values (NUL-terminated) */
    uint32_t *dlen;
    size_t ndict;
} mesh_chunk_col_t;

/* A decoded chunk: column-major values, owned by the chunk. */
typedef struct mesh_chunk {
    size_t nrows, ncols;
    mesh_chunk_col_t *cols;
} mesh_chunk_t;

/* Decodes a chunk. On failure (MESH_CORRUPT) *out is left empty. */
mesh_status_t mesh_chunk_decode(const uint8_t *p, size_t n, mesh_chunk_t *out, mesh_err_t *err);
/* Decodes only the columns want(arg, name) accepts; the others keep their name and kind but
 * no values (their arrays are NULL). A scan reading two columns of twelve decodes two. */
typedef bool (*mesh_chunk_want_fn)(void *arg, const char *name);
mesh_status_t mesh_chunk_decode_some(const uint8_t *p, size_t n, mesh_chunk_want_fn want, void *arg,
                                     mesh_chunk_t *out, mesh_err_t *err);
/* Like mesh_chunk_decode_some, but a chunk of one row: the last (newest) row, read from the
 * column headers without decoding the columns. MESH_NOT_FOUND for a chunk written before
 * headers held it (version 1): decode it whole. */
mesh_status_t mesh_chunk_decode_last(const uint8_t *p, size_t n, mesh_chunk_want_fn want, void *arg,
                                     mesh_chunk_t *out, mesh_err_t *err);
void mesh_chunk_free(mesh_chunk_t *c);
/* Index of a column by name, or -1. */
int mesh_chunk_col(const mesh_chunk_t *c, const char *name);

/* Reads only the header and summaries: row count and the summary of column name. Returns
 * false when the chunk has no such numeric column. */
bool mesh_chunk_summary(const uint8_t *p, size_t n, const char *name, size_t *nrows,
                        mesh_colsum_t *sum);

#endif
