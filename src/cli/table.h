/*
 * table.h - aligned text tables for a terminal (and the same rows as CSV).
 *
 * Cells are added left to right, row after row; the table copies them. Printing measures
 * every column (in characters, not bytes: UTF-8 sequences count once) and pads with spaces,
 * two between columns, numbers right-aligned. Control characters in cells are shown as '?'
 * so data can neither break the alignment nor send escape sequences to the terminal. A NULL
 * cell is an SQL NULL: printed as "NULL" (dimmed when colour is on), empty in CSV.
 */
#ifndef MESH_CLI_TABLE_H
#define MESH_CLI_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/status.h"

typedef struct mesh_table mesh_table_t;

typedef enum {
    MESH_ALIGN_AUTO, /* right when every non-NULL cell of the column is a number */
    MESH_ALIGN_LEFT,
    MESH_ALIGN_RIGHT,
} mesh_align_t;

/* A table of ncols columns (NULL when out of memory). */
mesh_table_t *mesh_table_create(size_t ncols);
void mesh_table_destroy(mesh_table_t *t);
/* Names column col and sets its alignment and the most characters shown of a cell (longer
 * ones end in "..."; 0: no limit; CSV output is never shortened). name is copied. */
mesh_status_t mesh_table_column(mesh_table_t *t, size_t col, const char *name, mesh_align_t align,
                                size_t max_width);
/* Adds the next cell (NULL: SQL NULL). MESH_NOMEM when out of memory. */
mesh_status_t mesh_table_add(mesh_table_t *t, const char *s);
mesh_status_t mesh_table_addf(mesh_table_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Rows completed so far. */
size_t mesh_table_rows(const mesh_table_t *t);
/* Prints the header, a rule and the rows; dim_null dims NULL with an ANSI escape. */
void mesh_table_print(const mesh_table_t *t, FILE *out, bool dim_null);
/* Prints the header and the rows as CSV (RFC 4180, CRLF line ends like the server's). */
void mesh_table_print_csv(const mesh_table_t *t, FILE *out);
/* Prints "name  value" lines of a two-column table without header (key/value views). */
void mesh_table_print_kv(const mesh_table_t *t, FILE *out);

#endif
