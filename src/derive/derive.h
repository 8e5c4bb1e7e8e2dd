/*
 * derive.h - derived products: their output columns, checks against their sources, the
 * contracts meshd writes for them, and their lineage (docs/derived.md, decision 0023).
 *
 * A derived product is a product whose contract carries customProperties `derivation`:
 *   aggregate: a continuous aggregate of a time series of the same domain, kept up to date
 *              in the writer's transaction of every batch (store/cagg.c);
 *   sql:       a query over products (any domain of this node), materialised by meshd and
 *              refreshed on a schedule (node/derived.c).
 * This module has no SQLite in it: the SQL side of lineage is query/lineage.c.
 */
#ifndef MESH_DERIVE_DERIVE_H
#define MESH_DERIVE_DERIVE_H

#include <stdbool.h>
#include <stddef.h>

#include "catalog/contract.h"
#include "core/buf.h"
#include "core/status.h"

/* How an output column is made from its inputs. */
typedef enum {
    MESH_XF_IDENTITY = 0, /* a copy of one input column */
    MESH_XF_TRANSFORM,    /* an expression over its inputs (values pass through) */
    MESH_XF_AGGREGATE,    /* an aggregate (count, sum, avg, ...): no single input value shows */
    MESH_XF_MASK,         /* a masking or hashing function */
} mesh_xform_t;

const char *mesh_xform_name(mesh_xform_t x);

#define MESH_LINEAGE_MAX_INPUTS 64

/* One input column: domain.product.column */
typedef struct mesh_lineage_in {
    char domain[64], product[64], column[64];
} mesh_lineage_in_t;

typedef struct mesh_lineage_col {
    char name[64];
    mesh_ltype_t type;
    bool type_guessed; /* from values, not the query (SQL): the contract's type is kept */
    int pk_position;   /* 0: not in the key */
    mesh_xform_t xf;
    mesh_lineage_in_t *in; /* owned */
    size_t nin;
} mesh_lineage_col_t;

/* A derived product's lineage: its input products and, per output column, its inputs. */
typedef struct mesh_lineage {
    mesh_lineage_in_t *tables; /* column is empty */
    size_t ntables;
    mesh_lineage_col_t *cols;
    size_t ncols;
    bool column_level; /* false: each column is given every column read (a shape not split) */
} mesh_lineage_t;

void mesh_lineage_free(mesh_lineage_t *l);
mesh_status_t mesh_lineage_add_table(mesh_lineage_t *l, const char *domain, const char *product);
mesh_status_t mesh_lineage_col_add_in(mesh_lineage_col_t *c, const char *domain,
                                      const char *product, const char *column);

/* The output columns (with lineage) of the aggregate d over the time series src (of domain).
 * MESH_INVALID with the reason when d does not fit src. */
mesh_status_t mesh_derive_aggregate_lineage(const char *domain, const mesh_product_t *src,
                                            const mesh_derivation_t *d, mesh_lineage_t *out,
                                            mesh_err_t *err);

/* Checks that the derived product p declares exactly the columns (names, types and key) its
 * lineage gives, naming the first difference. */
mesh_status_t mesh_derive_check_columns(const mesh_product_t *p, const mesh_lineage_t *l,
                                        mesh_err_t *err);

/* Classifications along lineage: the classification and tags a column gets from its inputs.
 * An aggregate or a mask keeps none of the inputs' (it shows no input value); an identity or
 * a transform keeps the most restrictive classification (restricted > confidential >
 * internal > public) and the union of the tags. lookup gives an input column (NULL when
 * unknown). class_out (cap bytes) is "" when none; tags are appended to *tags (owned). */
/* The rank of a classification: public 0, internal 1, confidential 2, restricted 3, another
 * text 2, none (NULL or "") -1. */
int mesh_derive_class_rank(const char *c);
typedef const mesh_column_t *(*mesh_derive_col_lookup_fn)(void *arg, const mesh_lineage_in_t *in);
mesh_status_t mesh_derive_propagate(const mesh_lineage_col_t *c, mesh_derive_col_lookup_fn lookup,
                                    void *arg, char *class_out, size_t cap, char ***tags,
                                    size_t *ntags);

/* Writes an ODCS contract (YAML) for the derived product domain.name from its lineage: the
 * columns with their types, key, propagated classification and tags, and the derivation.
 * Classification lookups go through lookup. */
typedef struct mesh_derive_spec {
    const char *domain, *name, *description; /* description may be NULL */
    const mesh_derivation_t *d;
    const mesh_lineage_t *l;
    mesh_derive_col_lookup_fn lookup;
    void *arg;
} mesh_derive_spec_t;
mesh_status_t mesh_derive_contract(const mesh_derive_spec_t *s, mesh_buf_t *out, mesh_err_t *err);

/* ---- the shape of a SQL definition (derive/sqlshape.c) ---- */

#define MESH_SQL_MAX_ITEMS 256

/* One item of a top-level SELECT list: its text (with its alias) at sql[off, off + len). */
typedef struct mesh_sql_item {
    size_t off, len;
    bool star;       /* "*" or "t.*": expands to several columns */
    bool hides;      /* one call of a hiding aggregate (count, sum, total, avg), possibly inside
                      * round(), cast() or coalesce(E, number) */
    bool masks;      /* one call of a masking function (mask, mask_hash), likewise */
    char head[32];   /* the function called at the top of the item, lower case ("" if none) */
    size_t expr_len; /* the expression without its alias: sql[off, off + expr_len) */
    size_t alias_off, alias_len; /* its alias (alias_len 0: none) */
} mesh_sql_item_t;

typedef struct mesh_sql_shape {
    mesh_sql_item_t items[MESH_SQL_MAX_ITEMS];
    size_t nitems;
    size_t list_end; /* offset of what follows the list (FROM ...), or the length */
    bool distinct;
    bool subquery_from; /* a subquery after the list (FROM (SELECT ...), IN (SELECT ...)) */
    bool row_mapping;   /* one table, each row mapped on its own: see sqlshape.c row_mapping */
    /* the time-bucket shape (sqlshape.c bucket_shape): the item grouped by, -1 when not */
    int bucket_item;
    char bucket_width[32]; /* its time_bucket's width literal ("1m") */
    size_t where_kw;       /* offset of the top-level WHERE (SIZE_MAX: none) */
    size_t group_kw;       /* offset of GROUP BY */
} mesh_sql_shape_t;

/* Splits the top-level SELECT list of sql (n <= MESH_DERIVE_MAX_SQL bytes). Not a parser: a
 * bounded tokenizer that finds the items of one plain SELECT. MESH_UNSUPPORTED for any other
 * shape (WITH, VALUES, UNION/INTERSECT/EXCEPT, unterminated text, more than
 * MESH_SQL_MAX_ITEMS items), MESH_TOO_LARGE above the bound. */
mesh_status_t mesh_sql_select_shape(const char *sql, size_t n, mesh_sql_shape_t *out);

/* ---- POST /v1/derive/{domain}/{product} (http/api_lineage.c) ---- */

#define MESH_DERIVE_REQUEST_MAX 65536 /* bytes of a request body */

/* A request to derive a product: JSON {"aggregate": {"source", "bucket", "groupBy",
 * "columns"}, "description"} or {"sql", "refresh", "description"}. Bounded
 * (MESH_DERIVE_REQUEST_MAX bytes, MESH_DERIVE_MAX_SQL bytes of SQL, MESH_DERIVE_MAX_COLS
 * names, names checked). On success *out holds the derivation (free with
 * mesh_derivation_free) and desc (cap bytes) the description ("" when none). MESH_PARSE or
 * MESH_INVALID with the reason. */
mesh_status_t mesh_derive_request_parse(const char *p, size_t n, mesh_derivation_t **out,
                                        char *desc, size_t cap, mesh_err_t *err);
void mesh_derivation_free(mesh_derivation_t *d);

#endif
