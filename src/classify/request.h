/*
 * request.h - the JSON bodies of the classification API, parsed strictly (bounded, unknown
 * fields, wrong types, bad names and out-of-range numbers refused with the field named):
 *
 *   discover  {"sample": 1000, "min_confidence": 0.3}                     (both optional)
 *   approve,  {"columns": ["email", "phone"], "info_types": ["email"],
 *   reject     "min_confidence": 0.8}  or  {"all": true, "min_confidence": 0.8}
 *   remove    {"columns": ["email"], "tags": ["PII"]}  or  {"all": true}
 *
 * approve, reject and remove must name columns or say "all": true (never both), so an empty
 * body changes nothing by accident.
 */
#ifndef MESH_CLASSIFY_REQUEST_H
#define MESH_CLASSIFY_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/classification.h"
#include "core/status.h"

#define MESH_CLASSIFY_BODY_MAX  (64 * 1024)
#define MESH_CLASSIFY_MAX_NAMES 256 /* columns in one request */
#define MESH_CLASSIFY_MAX_TAGS  32  /* info types or tags in one request */

typedef enum {
    MESH_CLASSIFY_DISCOVER = 0,
    MESH_CLASSIFY_APPROVE,
    MESH_CLASSIFY_REJECT,
    MESH_CLASSIFY_REMOVE,
} mesh_classify_kind_t;

typedef struct mesh_classify_req {
    int64_t sample;        /* discover: rows to sample (0: the default) */
    double min_confidence; /* -1 when not given */
    bool all;
    size_t ncolumns;
    char columns[MESH_CLASSIFY_MAX_NAMES][128];
    size_t ntypes; /* info types (approve, reject) or tags (remove) */
    char types[MESH_CLASSIFY_MAX_TAGS][MESH_TAG_MAX + 1];
    /* pointers into the arrays above, for mesh_tag_select_t */
    const char *column_ptrs[MESH_CLASSIFY_MAX_NAMES];
    const char *type_ptrs[MESH_CLASSIFY_MAX_TAGS];
} mesh_classify_req_t;

/* Parses body[0..n) (n 0: an empty body, allowed only for discover) into out (about 40 KiB:
 * allocate it). MESH_TOO_LARGE, MESH_PARSE or MESH_INVALID with the reason. */
mesh_status_t mesh_classify_req_parse(mesh_classify_kind_t kind, const char *body, size_t n,
                                      mesh_classify_req_t *out, mesh_err_t *err);
/* The selection a parsed request makes (borrowing from req). */
void mesh_classify_req_select(const mesh_classify_req_t *req, mesh_tag_select_t *sel);
/* A tag: 1-63 of [A-Za-z0-9_.:-]. */
bool mesh_tag_name_ok(const char *s);

#endif
