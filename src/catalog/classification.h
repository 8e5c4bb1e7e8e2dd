/*
 * classification.h - what the catalog keeps about columns' classifications beyond their
 * contracts: the suggestions of discovery (pending or rejected) and the tags an owner
 * approved, with who approved them and when.
 *
 * A column's effective tags are its contract's (its `classification` and `tags`) together
 * with the approved ones; its effective classification is the highest level among them
 * (restricted > confidential > internal > public). Approved tags are part of the access
 * policy: approving or removing one bumps the policy version in the same transaction, so a
 * mask that targets the tag applies from the next query on, in every session
 * (src/auth/policy.c reads them with the rest of the policy).
 *
 * Approving a suggestion of info type T for column C adds to C the tags T (e.g. "email"), its
 * categories ("PII", "PHI") and T's classification level ("confidential").
 */
#ifndef MESH_CATALOG_CLASSIFICATION_H
#define MESH_CATALOG_CLASSIFICATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "core/status.h"

#define MESH_TAG_MAX 63 /* a tag's length */

/* One approved tag of a column. */
typedef struct mesh_coltag_rec {
    char domain[64];
    char product[128];
    char column[128];
    char tag[MESH_TAG_MAX + 1];
    bool classification; /* tag is a classification level (public ... restricted) */
    char info_type[32];  /* the suggestion it came from */
    double confidence;   /* that suggestion's confidence */
    char approved_by[64];
    int64_t approved_ns;
} mesh_coltag_rec_t;

/* One suggestion of discovery: column holds info_type. */
typedef struct mesh_suggestion_rec {
    char domain[64];
    char product[128];
    char column[128];
    char info_type[32];
    double confidence;
    int64_t matched;  /* sampled values that matched */
    int64_t non_null; /* sampled non-NULL values of the column */
    int64_t sampled;  /* rows sampled */
    bool hint;        /* the column's name hinted at it */
    char status[16];  /* pending | rejected */
    char suggested_by[64];
    int64_t suggested_ns;
    char decided_by[64]; /* who rejected it ("" while pending) */
    int64_t decided_ns;
} mesh_suggestion_rec_t;

/* A selection of suggestions or tags: columns (NULL or none: every column), info types or
 * tags (NULL or none: all), and the lowest confidence. */
typedef struct mesh_tag_select {
    const char *const *columns;
    size_t ncolumns;
    const char *const *types;
    size_t ntypes;
    double min_confidence;
} mesh_tag_select_t;

/*
 * Records a discovery's suggestions for domain.product: the product's pending suggestions
 * are replaced by these; a suggestion rejected before (same column and info type) stays
 * rejected and is not proposed again (its counts are refreshed). Does not change the policy.
 */
mesh_status_t mesh_catalog_suggestions_put(mesh_catalog_t *c, const char *domain,
                                           const char *product, const mesh_suggestion_rec_t *s,
                                           size_t n, mesh_err_t *err);
/* The suggestions of a product (product NULL: of the domain), by column and confidence; free()
 * the array. */
mesh_status_t mesh_catalog_suggestions_list(mesh_catalog_t *c, const char *domain,
                                            const char *product, mesh_suggestion_rec_t **out,
                                            size_t *n, mesh_err_t *err);
/*
 * Approves the pending suggestions of domain.product that sel selects: their tags are added
 * (an existing one is kept as it was) and the suggestions are removed; the policy version is
 * bumped when a tag was added. *out (free()) lists the tags added, *nout their number.
 */
mesh_status_t mesh_catalog_suggestions_approve(mesh_catalog_t *c, const char *domain,
                                               const char *product, const mesh_tag_select_t *sel,
                                               const char *by, mesh_coltag_rec_t **out,
                                               size_t *nout, mesh_err_t *err);
/* Marks the pending suggestions sel selects rejected; *n: how many. */
mesh_status_t mesh_catalog_suggestions_reject(mesh_catalog_t *c, const char *domain,
                                              const char *product, const mesh_tag_select_t *sel,
                                              const char *by, size_t *n, mesh_err_t *err);
/* Removes approved tags (sel->types are tags here; min_confidence unused); bumps the policy
 * version when one was removed. *n: how many. */
mesh_status_t mesh_catalog_coltags_remove(mesh_catalog_t *c, const char *domain,
                                          const char *product, const mesh_tag_select_t *sel,
                                          size_t *n, mesh_err_t *err);
/* Forgets every tag and suggestion of a product (product NULL: of the whole domain), when
 * it is deleted; bumps the policy version when a tag was removed. */
mesh_status_t mesh_catalog_classification_drop(mesh_catalog_t *c, const char *domain,
                                               const char *product, mesh_err_t *err);
/* The approved tags of a product (product NULL: of the domain; domain NULL: all), by column;
 * free() the array. */
mesh_status_t mesh_catalog_coltags_list(mesh_catalog_t *c, const char *domain, const char *product,
                                        mesh_coltag_rec_t **out, size_t *n, mesh_err_t *err);

/* Called by mesh_catalog_open: creates the tables. */
mesh_status_t mesh__catalog_classification_init(mesh_catalog_t *c, mesh_err_t *err);

#endif
