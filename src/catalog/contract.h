/*
 * contract.h - ODCS v3 data contracts: the model of a domain's data products.
 *
 * A contract (YAML, apiVersion v3.0.x or v3.1.0, kind DataContract) names a domain and holds
 * schema objects; each schema object becomes one data product `domain.name`. Parsing is
 * strict: unknown keys, wrong types and invalid values are refused with the YAML path and
 * line of the offending node ("schema[0].properties[2].logicalType (line 14): ..."). meshd's
 * own settings live only under customProperties:
 *
 *   schema object: timeColumn (a property name), onInvalid (reject | quarantine),
 *                  retention (a duration), residency (local | any), egress (any |
 *                  aggregates-only), minGroupSize (an integer >= 2), privacyUnit (a property)
 *                  derivation (a derived product: {aggregate: {...}} or {sql, refresh})
 *   property:      unit (text), enum (list of allowed values)
 *
 * The parsed document tree is kept so a product's contract can be exported back as ODCS YAML
 * with every field the user wrote (mesh_contract_export).
 *
 * Ownership: a mesh_contract_t owns everything it points to; free it with
 * mesh_contract_free(). Products point back to their contract (not owned).
 */
#ifndef MESH_CATALOG_CONTRACT_H
#define MESH_CATALOG_CONTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"

/* Bounds on contract input, checked before anything is allocated for it. */
#define MESH_CONTRACT_MAX_BYTES   (1024 * 1024)
#define MESH_CONTRACT_MAX_DEPTH   32
#define MESH_CONTRACT_MAX_NODES   100000
#define MESH_CONTRACT_MAX_COLUMNS 1000
#define MESH_CONTRACT_MAX_OBJECTS 256

typedef enum {
    MESH_LT_STRING = 0,
    MESH_LT_INTEGER,
    MESH_LT_NUMBER,
    MESH_LT_BOOLEAN,
    MESH_LT_TIMESTAMP, /* stored and shown to SQL as int64 ns since the epoch */
    MESH_LT_DATE,      /* "YYYY-MM-DD" text */
    MESH_LT_TIME,      /* "HH:MM:SS[.fff]" text */
    MESH_LT_OBJECT,    /* JSON text */
    MESH_LT_ARRAY,     /* JSON text */
} mesh_ltype_t;

/* logicalTypeOptions.format for strings */
typedef enum {
    MESH_FMT_NONE = 0,
    MESH_FMT_EMAIL,
    MESH_FMT_UUID,
    MESH_FMT_URI,
    MESH_FMT_HOSTNAME,
    MESH_FMT_IPV4,
    MESH_FMT_IPV6,
    MESH_FMT_OTHER, /* a format we keep but do not check (password, byte, binary, ...) */
} mesh_format_t;

typedef struct mesh_column {
    char *name;
    mesh_ltype_t type;
    char *description;    /* may be NULL */
    char *classification; /* may be NULL: public, internal, confidential, restricted, ... */
    bool required;
    bool primary_key;
    int pk_position; /* 1-based order within the key; 0 when not part of the key */
    bool unique;
    /* logicalTypeOptions */
    bool has_min, has_max;
    bool min_exclusive, max_exclusive;
    double min, max;          /* for integer, number */
    int64_t min_len, max_len; /* for strings, in characters; -1 when unset */
    char *pattern;            /* ECMA-262 text as written; NULL when unset */
    void *pattern_re;         /* compiled POSIX ERE (regex_t *), NULL when unset */
    char *format;             /* as written */
    mesh_format_t fmt;
    /* customProperties we understand */
    char *unit;         /* may be NULL */
    char **enum_values; /* allowed values, as text; NULL when unset */
    size_t n_enum;
    char **tags;
    size_t n_tags;
} mesh_column_t;

typedef enum { MESH_ON_INVALID_REJECT = 0, MESH_ON_INVALID_QUARANTINE } mesh_on_invalid_t;

/* ODCS quality rules meshd evaluates on a schedule (the library metrics and sql); text and
 * custom rules are kept in the contract but not run. */
typedef enum {
    MESH_QM_NULL_VALUES = 0,
    MESH_QM_MISSING_VALUES,
    MESH_QM_INVALID_VALUES,
    MESH_QM_DUPLICATE_VALUES,
    MESH_QM_ROW_COUNT,
    MESH_QM_SQL,
} mesh_qmetric_t;

typedef enum {
    MESH_QOP_EQ = 0, /* mustBe */
    MESH_QOP_NE,     /* mustNotBe */
    MESH_QOP_GT,     /* mustBeGreaterThan */
    MESH_QOP_GE,     /* mustBeGreaterOrEqualTo */
    MESH_QOP_LT,     /* mustBeLessThan */
    MESH_QOP_LE,     /* mustBeLessOrEqualTo */
    MESH_QOP_IN,     /* mustBeBetween [a, b] */
    MESH_QOP_OUT,    /* mustNotBeBetween [a, b] */
} mesh_qop_t;

#define MESH_QUALITY_MAX_RULES 64 /* per schema object, its properties' included */
#define MESH_QUALITY_MAX_SQL   4096

typedef struct mesh_quality_rule {
    char *name; /* the rule's id or name, else "<column>.<metric>" or "<metric>" */
    char *description, *dimension, *severity; /* may be NULL */
    mesh_qmetric_t metric;
    int col; /* index into the product's cols, -1 for a rule on the whole product */
    mesh_qop_t op;
    double a, b;  /* threshold (b: upper bound of a between) */
    bool percent; /* unit: percent (of the rows) rather than rows */
    /* arguments */
    char **values; /* missingValues: the values counted as missing; invalidValues: validValues */
    size_t nvalues;
    bool null_missing; /* missingValues: null is in the list */
    char *pattern;     /* invalidValues: a value must match it (ECMA text as written) */
    int *cols;         /* duplicateValues on the product: the properties compared */
    size_t ncols;
    char *query; /* sql: the query, {object} and {property} not yet replaced */
} mesh_quality_rule_t;

struct mesh_contract;

/* A derived product's definition (customProperties `derivation`, docs/derived.md). */
typedef enum {
    MESH_DERIVE_AGGREGATE = 1, /* a continuous aggregate of a time series of the same domain */
    MESH_DERIVE_SQL = 2,       /* a SQL query over products, refreshed on a schedule */
} mesh_derive_kind_t;

#define MESH_DERIVE_MAX_SQL  16384
#define MESH_DERIVE_MAX_COLS 32

typedef struct mesh_derivation {
    mesh_derive_kind_t kind;
    /* aggregate */
    char *source;      /* the source product (same domain) */
    int64_t bucket_ns; /* bucket width */
    char **group;      /* grouping columns of the source (NULL: its series columns) */
    size_t ngroup;
    bool group_given;
    char **columns; /* aggregated source columns (integer or number) */
    size_t ncolumns;
    /* sql */
    char *sql;
    int64_t refresh_ns; /* 0: the default (docs/derived.md) */
    char *definer;      /* sql: the principal whose grants the refresh runs with (decision 31) */
} mesh_derivation_t;

typedef struct mesh_product {
    char *domain;
    char *name;
    char *description; /* may be NULL */
    mesh_column_t *cols;
    size_t ncols;
    int time_col;  /* index into cols of the time column, or -1 when not a time series */
    int *key_cols; /* primary-key columns in primaryKeyPosition order (indexes into cols) */
    size_t nkey;
    mesh_on_invalid_t on_invalid;
    char **tags;
    size_t n_tags;
    struct mesh_contract *contract; /* owning contract (not owned) */
    int object_index;               /* position of this object in the contract's schema[] */
    mesh_quality_rule_t *quality;   /* the object's and its properties' executable rules */
    size_t nquality;
    /* slaProperties of the contract that apply to this product (0: none declared) */
    int64_t sla_latency_ns;   /* latency: the newest row is at most this old */
    int64_t sla_frequency_ns; /* frequency: a write at least this often */
    /* governance (customProperties retention, residency, egress, minGroupSize,
     * privacyUnit; docs/governance.md) */
    int64_t retention_ns;      /* rows older than this are deleted (0: kept forever) */
    bool residency_local;      /* rows never leave this node */
    bool egress_aggregates;    /* outside the domain: aggregates over >= egress_k units only */
    int egress_k;              /* minimum distinct privacy units per group (default 11) */
    int privacy_unit_col;      /* index into cols, -1 when none */
    mesh_derivation_t *derive; /* NULL: a source product */
} mesh_product_t;

typedef struct mesh_yaml_node mesh_yaml_node_t; /* parsed document, private to contract.c */

typedef struct mesh_contract {
    char *api_version;
    char *id;
    char *name;    /* may be NULL */
    char *version; /* as written, e.g. "1.2.0" */
    int ver_major, ver_minor, ver_patch;
    char *status; /* proposed, draft, active, deprecated, retired, ... */
    char *domain;
    char *purpose; /* description.purpose, may be NULL */
    char **tags;
    size_t n_tags;
    mesh_product_t *products;
    size_t nproducts;
    char *yaml; /* the text it was parsed from (NUL-terminated) */
    mesh_yaml_node_t *doc;
} mesh_contract_t;

/*
 * Parses and validates an ODCS contract. On failure returns MESH_PARSE (not YAML) or
 * MESH_INVALID (not a valid contract) or MESH_TOO_LARGE, with err->msg naming the path, the
 * line and the reason. *out is owned by the caller.
 */
mesh_status_t mesh_contract_parse(const char *yaml, size_t n, mesh_contract_t **out,
                                  mesh_err_t *err);
void mesh_contract_free(mesh_contract_t *c);

/* Finds a product or a column by name; NULL / -1 when absent. */
const mesh_product_t *mesh_contract_product(const mesh_contract_t *c, const char *name);
int mesh_product_col(const mesh_product_t *p, const char *name, size_t n);

/*
 * Writes the contract as ODCS YAML to out. When product is not NULL only that product's
 * schema object is kept in schema[] (everything else of the document is written as parsed).
 */
mesh_status_t mesh_contract_export(const mesh_contract_t *c, const char *product, mesh_buf_t *out);

/*
 * Compares a product's previous and next definition. Appends one line per change to
 * changes (may be NULL), e.g. "column speed: type number -> integer (breaking)", and returns
 * true when any change breaks consumers or producers: a column dropped or retyped, a
 * column made required or added as required, the primary key or the time column changed,
 * a column made unique.
 */
bool mesh_product_diff(const mesh_product_t *old, const mesh_product_t *next, mesh_buf_t *changes);
/* Whether two derivations (either may be NULL) define the same thing. */
bool mesh_derivation_same(const mesh_derivation_t *a, const mesh_derivation_t *b);

/* Names of quality metrics ("nullValues", ..., "sql") and operators ("mustBe", ...). */
const char *mesh_qmetric_name(mesh_qmetric_t m);
const char *mesh_qop_name(mesh_qop_t op);
/* Whether value passes the rule's operator and threshold. */
bool mesh_quality_pass(const mesh_quality_rule_t *r, double value);

/*
 * Compiles an ECMA-262 pattern (the dialect of logicalTypeOptions.pattern) into a POSIX ERE
 * (regex_t *, REG_NOSUB) in *out, the translation meshd uses everywhere. MESH_INVALID with
 * the reason in why when it is not supported or does not compile.
 */
mesh_status_t mesh_pattern_compile(const char *ecma, void **out, char *why, size_t cap);
void mesh_pattern_free(void *re);

/* Compares two semantic versions: <0, 0, >0. */
int mesh_contract_version_cmp(const mesh_contract_t *a, const mesh_contract_t *b);

/* Names of logical types ("string", ...) and the SQL declared type meshd gives them
 * (TEXT, INTEGER, REAL, BOOLEAN, TIMESTAMP, DATE, TIME, JSON). */
const char *mesh_ltype_name(mesh_ltype_t t);
const char *mesh_ltype_sql(mesh_ltype_t t);
/* Whether values of the type are numbers (integer, number, boolean, timestamp). */
bool mesh_ltype_numeric(mesh_ltype_t t);

#endif
