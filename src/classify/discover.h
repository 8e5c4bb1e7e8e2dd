/*
 * discover.h - classification discovery: samples a product's values where they are stored
 * and suggests, per column, the info types it holds (detect.h), with a confidence, the
 * categories (PII, PHI) and the classification level they call for.
 *
 * Values are read through the store's scan interface by the node itself (not through a
 * caller's query session: masks and row filters would hide exactly what has to be looked
 * at). Each value is tested and forgotten: a discovery keeps only counts, so nothing of a
 * value can leave this module, be logged or be returned. Suggestions are only that: they
 * change nothing until an owner approves them (catalog/classification.h).
 *
 * Ownership: mesh_discovery_t owns its column array (mesh_discovery_free); column names are
 * borrowed from the product, which must outlive the discovery.
 */
#ifndef MESH_CLASSIFY_DISCOVER_H
#define MESH_CLASSIFY_DISCOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/contract.h"
#include "classify/detect.h"
#include "core/status.h"
#include "store/store.h"

#define MESH_DISCOVER_DEFAULT_ROWS 1000   /* rows sampled when the caller does not say */
#define MESH_DISCOVER_MAX_ROWS     100000 /* the most rows one discovery reads */
#define MESH_DISCOVER_MIN_CONF     0.30   /* a lower confidence is not suggested */
#define MESH_DISCOVER_VALUE_MAX    256    /* longer values are counted but never match */

typedef struct mesh_disc_match {
    mesh_info_type_t type;
    bool hint;       /* the column's name hinted at it */
    int64_t matched; /* sampled non-NULL values that passed its test */
    double confidence;
} mesh_disc_match_t;

typedef struct mesh_disc_column {
    const char *name; /* borrowed from the product */
    mesh_ltype_t type;
    mesh_loc_hint_t loc;
    bool hint[MESH_INFO__COUNT];
    int64_t non_null; /* sampled non-NULL values */
    int64_t matched[MESH_INFO__COUNT];
    /* filled by mesh_discovery_finish */
    size_t nmatches;
    mesh_disc_match_t matches[MESH_INFO__COUNT]; /* confidence >= the minimum, best first */
    mesh_level_t level;                          /* the highest level of the matches */
    unsigned categories;                         /* MESH_CAT_* of the matches */
    double confidence;                           /* the best match's, 0 when none */
} mesh_disc_column_t;

typedef struct mesh_discovery {
    int64_t sampled; /* rows read */
    int now_year;    /* for dates of birth */
    size_t ncols;
    mesh_disc_column_t *cols;
} mesh_discovery_t;

/* Prepares a discovery over p's columns (name hints computed now). */
mesh_status_t mesh_discovery_init(mesh_discovery_t *d, const mesh_product_t *p, mesh_err_t *err);
/* Tests one value of column col (as the store hands it: NULL, integer, real or text). */
void mesh_discovery_add(mesh_discovery_t *d, size_t col, const mesh_datum_t *v);
/* Turns the counts into matches (those at or above min_conf). */
void mesh_discovery_finish(mesh_discovery_t *d, double min_conf);
void mesh_discovery_free(mesh_discovery_t *d);

/*
 * Samples up to max_rows rows of p (the first ones its scan returns) from store s and fills
 * d (mesh_discovery_free it, also on failure). min_conf: see mesh_discovery_finish.
 */
mesh_status_t mesh_discover_product(mesh_store_t *s, const mesh_product_t *p, int64_t max_rows,
                                    double min_conf, mesh_discovery_t *d, mesh_err_t *err);

#endif
