/*
 * policy.h - authorisation decisions, column visibility, masks and row filters.
 *
 * A policy is an immutable, reference-counted snapshot of the catalog's roles, grants, masks
 * and row filters at one version; a new one is built after every change. Decisions are
 * deny by default:
 *
 *   - A principal holds roles (comma-separated names). Built-in roles: admin (everything),
 *     writer (read and write every product), reader (read every product), auditor (read the
 *     audit log). Other roles hold only the grants given to them.
 *   - A grant allows or denies one action (read, write, admin, audit) on the mesh (every
 *     domain), a domain, a product or some columns of a product. admin on a scope implies
 *     read and write there (and audit on the mesh). Write does not imply read: a device may
 *     write readings it can never read back.
 *   - Explicit denies win over any allow, at any scope: a deny on a domain is not undone by
 *     an allow on one of its products.
 *   - A domain's owners (listed on the domain) administer that domain and its products, and
 *     nothing else; a deny still wins.
 *   - Columns: a product is readable when some grant allows reading it or some of its
 *     columns; the visible columns are the union of the allowed ones, minus denied ones.
 *   - Row filters (per role and product): a reader sees the rows that pass the filter of at
 *     least one of its roles that grants reading the product; a role that grants reading it
 *     without a filter (or ownership, or admin) means every row.
 *   - Masks (per column, or per classification/column tag, the contract's or an approved
 *     one, compared without case): the first matching policy that
 *     applies to one of the principal's roles (and to none of its excepted roles) decides
 *     the column's mask; column policies come before tag policies, a product's before a
 *     domain's before the mesh's, older before newer.
 */
#ifndef MESH_AUTH_POLICY_H
#define MESH_AUTH_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"
#include "catalog/contract.h"
#include "catalog/security.h"
#include "core/status.h"

typedef struct mesh_policy mesh_policy_t;

typedef enum {
    MESH_MASK_NONE = 0,
    MESH_MASK_REDACT,         /* MASK: letters -> x/X, digits -> n */
    MESH_MASK_SHOW_LAST_4,    /* every character but the last 4 -> x */
    MESH_MASK_SHOW_FIRST_4,   /* every character but the first 4 -> x */
    MESH_MASK_HASH,           /* hex HMAC-SHA256 of the value (equal values, equal hashes) */
    MESH_MASK_NULL,           /* NULL */
    MESH_MASK_DATE_SHOW_YEAR, /* a time -> 1 January of its year; a date text -> YYYY-01-01 */
    MESH_MASK_CUSTOM,         /* an SQL expression over the column ({col}) */
} mesh_mask_type_t;

/* Parses a mask type name (Apache Ranger's: MASK, MASK_SHOW_LAST_4, MASK_SHOW_FIRST_4,
 * MASK_HASH, MASK_NULL, MASK_DATE_SHOW_YEAR, CUSTOM); MESH_MASK_NONE when unknown. */
mesh_mask_type_t mesh_mask_type_parse(const char *name);
const char *mesh_mask_type_name(mesh_mask_type_t t);

mesh_status_t mesh_policy_build(const mesh_policy_src_t *src, mesh_policy_t **out, mesh_err_t *err);
mesh_policy_t *mesh_policy_ref(mesh_policy_t *p);
void mesh_policy_put(mesh_policy_t *p);
int64_t mesh_policy_version(const mesh_policy_t *p);
/* The key MASK_HASH uses (32 bytes). */
const uint8_t *mesh_policy_mask_key(const mesh_policy_t *p);
/* The source records the policy was built from (for listing them). */
const mesh_policy_src_t *mesh_policy_source(const mesh_policy_t *p);

typedef struct mesh_decision {
    bool allow;
    int64_t version;
    char why[192]; /* e.g. "role analyst, grant 12", "denied by grant 7", "no grant" */
} mesh_decision_t;

/* May id do act on domain.product? domain NULL: the mesh; product NULL: the domain. owner:
 * id owns the domain. Column grants count: reading some columns of a product is reading
 * it. */
bool mesh_policy_decide(const mesh_policy_t *p, const mesh_identity_t *id, mesh_action_t act,
                        const char *domain, const char *product, bool owner, mesh_decision_t *d);

/* Whether id may read anything in domain (some product of it): for listings. */
bool mesh_policy_sees_domain(const mesh_policy_t *p, const mesh_identity_t *id, const char *domain,
                             bool owner);

/* Whether a column carries tag (case-insensitive): its contract's classification, one of its
 * contract's tags, or a tag an owner approved (catalog/classification.h). Masks that target a
 * tag apply to exactly these columns. */
bool mesh_policy_column_has_tag(const mesh_policy_t *p, const mesh_product_t *prod,
                                const mesh_column_t *c, const char *tag);

/* What id gets of a product when it reads it. */
typedef struct mesh_view_policy {
    bool readable;
    int64_t version;
    size_t ncols;
    bool *visible;          /* per product column */
    mesh_mask_type_t *mask; /* per product column */
    const char **mask_expr; /* per product column: CUSTOM's expression (borrowed) */
    int64_t *mask_id;       /* per product column: the mask policy's id, 0 when none */
    const char **filters;   /* predicates, OR-ed (borrowed); nfilters 0: every row */
    int64_t *filter_ids;
    size_t nfilters;
} mesh_view_policy_t;

/* Fills v (free with mesh_view_policy_free); the strings it borrows live as long as p. */
mesh_status_t mesh_policy_view(const mesh_policy_t *p, const mesh_identity_t *id,
                               const mesh_product_t *prod, bool owner, mesh_view_policy_t *v,
                               mesh_err_t *err);
void mesh_view_policy_free(mesh_view_policy_t *v);

/* Applies a text-producing mask (REDACT, SHOW_LAST_4, SHOW_FIRST_4, HASH) to text s[0..n);
 * writes NUL-terminated text to out (cap >= 4 * n + 1 and >= 65). Returns its length. */
size_t mesh_mask_text(mesh_mask_type_t t, const uint8_t key[32], const char *s, size_t n, char *out,
                      size_t cap);
/* MASK_DATE_SHOW_YEAR of a time in ns: 1 January 00:00 UTC of its year. */
int64_t mesh_mask_year_ns(int64_t ns);

/* True when the comma-separated list names role (blanks around names ignored). */
bool mesh_roles_has(const char *roles, const char *role);
/* A role name: 1-63 of [a-z0-9_-], starting with a letter. */
bool mesh_role_name_ok(const char *name);

#endif
