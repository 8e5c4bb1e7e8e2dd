/*
 * batch.h - a validated batch of rows for one domain: what every ingest parser produces and
 * what the domain log records and the store applies.
 *
 * A batch holds one part per product (a line-protocol body may write several products of a
 * domain at once). Parsers fill it row by row:
 *
 *     mesh_batch_row_begin(b, product, source_row);
 *     mesh_batch_set_text(b, col, "21.5", 4);   // or set_int / set_real / set_bool / set_null
 *     ...
 *     mesh_batch_row_end(b, raw_line, raw_len);
 *
 * Each set_* converts the input to the column's logical type and checks it against the
 * contract (type, range, length, pattern, format, enum); row_end checks required columns and
 * fills an absent time column with the batch's receive time. A row that fails is recorded in
 * the error list (row number, column, reason); if its product quarantines bad rows, the raw
 * row and the reasons are kept in the part's quarantine list instead and the rest of the
 * batch still applies. Otherwise the batch as a whole is refused (mesh_batch_failed()).
 *
 * Values live in one row-major slab per part (no allocation per row); text values point into
 * the batch's string arena. Everything is freed by mesh_batch_free().
 */
#ifndef MESH_INGEST_BATCH_H
#define MESH_INGEST_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/contract.h"
#include "core/buf.h"
#include "core/status.h"

typedef enum {
    MESH_V_NULL = 0,
    MESH_V_INT = 1,  /* integer, boolean (0/1), timestamp (ns) */
    MESH_V_REAL = 2, /* number */
    MESH_V_TEXT = 3, /* string, date, time, object, array (JSON text) */
} mesh_vtype_t;

typedef struct mesh_value {
    union {
        int64_t i;
        double d;
        struct {
            uint32_t off; /* offset into the batch's string arena */
            uint32_t len;
        } s;
    } u;
    uint8_t type; /* mesh_vtype_t */
} mesh_value_t;

/* How numeric timestamps are read: a unit, or AUTO (by magnitude: s, ms, us or ns). */
typedef enum {
    MESH_PREC_NS = 0,
    MESH_PREC_US,
    MESH_PREC_MS,
    MESH_PREC_S,
    MESH_PREC_AUTO,
} mesh_precision_t;

mesh_status_t mesh_precision_parse(const char *s, mesh_precision_t *out);

typedef struct mesh_row_error {
    uint32_t row; /* source row: line number (line protocol, CSV) or 1-based array index */
    int col;      /* column index or -1 for the row as a whole */
    char product[64];
    char column[64];
    char reason[192];
} mesh_row_error_t;

typedef struct mesh_quarantined {
    uint32_t row;
    uint32_t reason_off, reason_len; /* into the arena */
    uint32_t raw_off, raw_len;       /* into the arena */
} mesh_quarantined_t;

typedef struct mesh_part {
    const mesh_product_t *product; /* borrowed from the catalog snapshot */
    size_t ncols;
    mesh_value_t *vals; /* nrows * ncols, row-major */
    size_t nrows, cap_rows;
    mesh_quarantined_t *quar;
    size_t nquar, cap_quar;
} mesh_part_t;

/* Limits a batch enforces while it is filled. */
typedef struct mesh_batch_limits {
    size_t max_rows;      /* rows in the whole batch */
    size_t max_errors;    /* detailed errors kept (all are counted) */
    size_t max_arena;     /* bytes of text */
    size_t max_value_len; /* bytes of one text value */
} mesh_batch_limits_t;

#define MESH_BATCH_DEFAULT_LIMITS                                                                  \
    ((mesh_batch_limits_t){.max_rows = 1000000,                                                    \
                           .max_errors = 100,                                                      \
                           .max_arena = 256u << 20,                                                \
                           .max_value_len = 1u << 20})

#define MESH_BATCH_MAX_FIXED 16

typedef struct mesh_batch {
    char domain[64];
    mesh_part_t *parts;
    size_t nparts, cap_parts;
    mesh_buf_t arena;
    int64_t received_ns;        /* receive time: default for an absent time column */
    mesh_precision_t precision; /* for numeric timestamps */
    mesh_batch_limits_t limits;
    bool no_quarantine; /* a bad row fails the batch even in a quarantining product */
    /* errors */
    mesh_row_error_t *errors;
    size_t nerrors;          /* kept in errors[] */
    size_t error_rows;       /* rows that failed (kept or not) */
    size_t total_rows;       /* rows seen (good, bad, quarantined) */
    size_t rows_hint;        /* rows the body holds at most (mesh_batch_expect_rows), or 0 */
    size_t rows_prealloc;    /* rows' room given to parts from the hint */
    bool failed;             /* a bad row in a rejecting product, or a limit hit */
    mesh_status_t fail_code; /* VALIDATION, TOO_LARGE, ... when failed */
    /* current row (between row_begin and row_end) */
    mesh_part_t *cur;
    uint32_t cur_row;
    bool cur_bad;
    char cur_reason[256];         /* first reason of the current row, for the quarantine */
    struct mesh_text_ok *text_ok; /* text values that passed a pattern or format check */
    /* values every row of a product starts with (mesh_batch_fixed_text) */
    struct mesh_batch_fixed {
        const mesh_product_t *product;
        int col;
        const char *s; /* borrowed */
        size_t n;
    } fixed[MESH_BATCH_MAX_FIXED];
    size_t nfixed;
} mesh_batch_t;

void mesh_batch_init(mesh_batch_t *b, const char *domain, mesh_batch_limits_t limits);
/* Tells the batch its body holds about n rows at most (a line count): parts get room for
 * them at once instead of growing by doubling (at most twice n rows in all, whatever the
 * number of products). */
void mesh_batch_expect_rows(mesh_batch_t *b, size_t n);
void mesh_batch_free(mesh_batch_t *b);

/* Starts a row of product p; source_row is what errors report (1-based). Returns
 * MESH_TOO_LARGE (and fails the batch) when the row limit is reached. */
mesh_status_t mesh_batch_row_begin(mesh_batch_t *b, const mesh_product_t *p, uint32_t source_row);
/* Setters for column col of the current row. Conversion or contract errors are recorded on
 * the row; they return nothing because the parser goes on either way. */
void mesh_batch_set_text(mesh_batch_t *b, int col, const char *s, size_t n);
void mesh_batch_set_int(mesh_batch_t *b, int col, int64_t v);
void mesh_batch_set_real(mesh_batch_t *b, int col, double v);
void mesh_batch_set_bool(mesh_batch_t *b, int col, bool v);
void mesh_batch_set_null(mesh_batch_t *b, int col);
/* Sets a JSON text value for an object/array column (already serialised). */
void mesh_batch_set_json(mesh_batch_t *b, int col, const char *s, size_t n);
/* Records an error the parser found on the current row (col -1 for the row). */
void mesh_batch_row_error(mesh_batch_t *b, int col, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Records an error on a source row that never reached row_begin (e.g. unknown product). */
void mesh_batch_source_error(mesh_batch_t *b, uint32_t source_row, const char *product,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Gives every row of product p that starts after this call the text value s[0..n) in column
 * col, converted and checked like a parser's value (MQTT topic levels). A parser that sets the
 * column as well makes the row bad ("column given twice"). s is borrowed: it must outlive the
 * parse. MESH_LIMIT beyond MESH_BATCH_MAX_FIXED values. */
mesh_status_t mesh_batch_fixed_text(mesh_batch_t *b, const mesh_product_t *p, int col,
                                    const char *s, size_t n);
/* Puts a source record that could not become rows (a payload that does not parse, or whose
 * rows a rejecting product refused) into p's quarantine whatever p's onInvalid says, with a
 * reason; it counts as one bad row. Fails the batch only on a limit. */
mesh_status_t mesh_batch_quarantine_raw(mesh_batch_t *b, const mesh_product_t *p,
                                        uint32_t source_row, const char *reason, const char *raw,
                                        size_t raw_len);
/* Finishes the current row; raw is the row as received (kept if it is quarantined). */
void mesh_batch_row_end(mesh_batch_t *b, const char *raw, size_t raw_len);
/* Marks the whole batch as refused with a code and a reason (e.g. a malformed body). */
void mesh_batch_fail(mesh_batch_t *b, mesh_status_t code, uint32_t source_row, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static inline bool mesh_batch_failed(const mesh_batch_t *b)
{
    return b->failed;
}

/* Rows that will be stored / quarantined. */
size_t mesh_batch_good_rows(const mesh_batch_t *b);
size_t mesh_batch_quarantined_rows(const mesh_batch_t *b);

/* A text value's bytes. */
static inline const char *mesh_batch_text(const mesh_batch_t *b, const mesh_value_t *v)
{
    return b->arena.data + v->u.s.off;
}

/*
 * Log record encoding. A record holds an optional idempotency key and the batch; decode maps
 * product and column names back through `lookup` (the current catalog), skipping columns that
 * no longer exist. The encoding is versioned and decode treats its input as untrusted.
 */
typedef const mesh_product_t *(*mesh_product_lookup_fn)(void *arg, const char *domain,
                                                        const char *product);
mesh_status_t mesh_batch_encode(const mesh_batch_t *b, const char *idem_key, mesh_buf_t *out);
mesh_status_t mesh_batch_decode(const uint8_t *p, size_t n, mesh_product_lookup_fn lookup,
                                void *arg, mesh_batch_t *b, char *idem_key, size_t idem_cap,
                                mesh_err_t *err);

/* Writes the error list as a JSON array into out. */
mesh_status_t mesh_batch_errors_json(const mesh_batch_t *b, mesh_buf_t *out);

#endif
