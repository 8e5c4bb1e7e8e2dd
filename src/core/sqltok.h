/*
 * sqltok.h - reading SQL text a token at a time, as SQLite reads it: spaces and comments
 * between tokens, strings and quoted names with their doubled quotes, words, numbers. For
 * the few places that look at a query's shape before SQLite prepares it (derive/sqlshape.c,
 * query/aggquery.c); never a parser, and never what decides what a query may do.
 */
#ifndef MESH_CORE_SQLTOK_H
#define MESH_CORE_SQLTOK_H

#include <stddef.h>

typedef enum {
    MESH_SQLT_WORD,  /* a name or keyword (letters, digits, _ and $ after a letter or _) */
    MESH_SQLT_NUM,   /* a number (digits, ., an exponent) */
    MESH_SQLT_STR,   /* '...', the quotes included */
    MESH_SQLT_QID,   /* "...", `...` or [...], the quotes included */
    MESH_SQLT_OTHER, /* one other character */
    MESH_SQLT_BAD,   /* a string or quoted name without its closing quote */
} mesh_sqlt_t;

/* Moves *i past spaces and comments. -1 for a block comment without its end, else 0. */
int mesh_sql_skip(const char *s, size_t n, size_t *i);
/* The token at s[i] (i < n, not a space or comment): its kind and length. */
mesh_sqlt_t mesh_sql_token(const char *s, size_t n, size_t i, size_t *len);

#endif
