/*
 * rule.h - rules: continuous conditions over a product, per series, and their math.
 *
 * A rule (YAML or JSON, see docs/rules.md) belongs to a domain and watches one product. It
 * splits the product's rows into series by the product's key columns (the primary key
 * without the time column) and keeps a small state per series (mesh_rstate_t):
 *
 *   threshold  the row's value against a limit
 *   window     avg | min | max | count | rate of the values of the last `period`, sliding
 *              (a bounded ring of samples)
 *   anomaly    |z| of the value against a rolling baseline: the last `samples` values
 *              (Welford mean and variance, method zscore) or an exponentially weighted one
 *              (method ewma, weight alpha); silent for the first `warmup` values
 *   absence    no row of a series for `after` (evaluated by ticks carrying the time)
 *
 * Alerts fire when the condition has held for `for` (measured in row time) and resolve when
 * the value crosses back past `clear` (hysteresis; default: the limit itself).
 *
 * The parser is strict and bounded like the contract parser: unknown keys, wrong types and
 * values out of range are refused with the path and line ("actions[0].url (line 9): ...").
 *
 * Ownership: a mesh_rule_t owns its strings; rules are shared read-only between the writer
 * and the action thread through a reference count (mesh_rule_ref / mesh_rule_put).
 */
#ifndef MESH_RULES_RULE_H
#define MESH_RULES_RULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/contract.h"
#include "core/buf.h"
#include "core/status.h"

#define MESH_RULE_MAX_BYTES   (64 * 1024)
#define MESH_RULE_MAX_NODES   2000
#define MESH_RULE_MAX_DEPTH   8
#define MESH_RULE_MAX_ACTIONS 8
#define MESH_RULE_MAX_SAMPLES 4096   /* window ring and z-score baseline, per series */
#define MESH_RULE_MAX_SERIES  100000 /* per rule: further series are not evaluated */

typedef enum {
    MESH_RULE_THRESHOLD = 0,
    MESH_RULE_WINDOW,
    MESH_RULE_ANOMALY,
    MESH_RULE_ABSENCE,
} mesh_rule_kind_t;

typedef enum {
    MESH_WIN_AVG = 0,
    MESH_WIN_MIN,
    MESH_WIN_MAX,
    MESH_WIN_COUNT,
    MESH_WIN_RATE
} mesh_win_fn_t;
typedef enum { MESH_ANOM_ZSCORE = 0, MESH_ANOM_EWMA } mesh_anom_method_t;
typedef enum { MESH_ACTION_WEBHOOK = 0, MESH_ACTION_MQTT } mesh_action_type_t;

typedef struct mesh_rule_action {
    mesh_action_type_t type;
    /* webhook */
    char *url;
    char *secret;    /* HMAC key of X-Meshd-Signature; NULL: unsigned */
    char *ca_file;   /* NULL: the system's CAs */
    char **unmasked; /* sensitive columns sent in clear (the rule owner's explicit opt-out) */
    size_t nunmasked;
    int64_t timeout_ns;
    int retries;        /* attempts after the first */
    int64_t backoff_ns; /* first retry delay; doubles up to 60 s */
    /* mqtt publish: templates with {placeholders} (see mesh_rule_expand) */
    char *topic;
    char *payload; /* NULL: the webhook's JSON document */
    int qos;       /* 0 or 1 */
    bool retain;
} mesh_rule_action_t;

typedef struct mesh_rule {
    int refs; /* atomic */
    char *name;
    char *domain;
    char *product;
    char *column; /* the value watched (NULL for absence) */
    char *description;
    char *severity; /* info | warning | critical */
    mesh_rule_kind_t kind;
    /* the condition on the value (threshold, window, anomaly) */
    bool above;     /* fire when value > limit (else value < limit) */
    double limit;   /* anomaly: the |z| that fires (sensitivity) */
    double clear;   /* resolves when value crosses back past clear */
    int64_t for_ns; /* the condition must hold this long (row time) */
    /* window */
    mesh_win_fn_t wfn;
    int64_t period_ns;
    int max_samples;
    /* anomaly */
    mesh_anom_method_t method;
    int samples;  /* zscore: baseline window in values */
    double alpha; /* ewma weight of a new value */
    int warmup;   /* values before the first evaluation */
    /* absence */
    int64_t after_ns;
    mesh_rule_action_t actions[MESH_RULE_MAX_ACTIONS];
    size_t nactions;
    char *text; /* the definition as received (NUL-terminated) */
} mesh_rule_t;

/* Parses and validates a rule (YAML or JSON). MESH_PARSE, MESH_INVALID or MESH_TOO_LARGE
 * with the path and the reason in err. *out has one reference. */
mesh_status_t mesh_rule_parse(const char *text, size_t n, mesh_rule_t **out, mesh_err_t *err);
mesh_rule_t *mesh_rule_ref(mesh_rule_t *r);
void mesh_rule_put(mesh_rule_t *r);

/* Checks the rule against its product: the column exists and is numeric (integer, number,
 * boolean, timestamp), unmasked columns exist. MESH_INVALID with the reason. */
mesh_status_t mesh_rule_check(const mesh_rule_t *r, const mesh_product_t *p, mesh_err_t *err);

/* Whether a column is sensitive: classified confidential or restricted (or secret), or tagged
 * pii or phi. Such columns are masked in action payloads unless the action unmasks them. */
bool mesh_rule_col_sensitive(const mesh_column_t *c);

/* The rule as a JSON object text (webhook secrets shown as "(set)"). */
mesh_status_t mesh_rule_json(const mesh_rule_t *r, mesh_buf_t *out);

const char *mesh_rule_kind_name(mesh_rule_kind_t k);

/*
 * Templates of MQTT actions. A placeholder is '{' NAME '}' with NAME an identifier: a column of
 * the product (the series' key or the row that made the transition) or one of domain, product,
 * rule, alert_id, event, severity, value, time. Any other '{' is text ({"target": 19.5} is a
 * JSON payload without placeholders). lookup returns a placeholder's text (NULL: empty).
 * In a topic (topic true) '/', '+', '#' and NUL of a value become '_', so a value cannot add
 * levels or wildcards.
 */
typedef const char *(*mesh_rule_lookup_fn)(void *arg, const char *name);
mesh_status_t mesh_rule_expand(const char *tmpl, bool topic, mesh_rule_lookup_fn lookup, void *arg,
                               mesh_buf_t *out);
/* Whether name is a placeholder a template may use with product p. */
bool mesh_rule_placeholder_ok(const mesh_product_t *p, const char *name);

/* ---- per-series state and its math ---- */

typedef enum { MESH_RPHASE_OK = 0, MESH_RPHASE_PENDING, MESH_RPHASE_FIRING } mesh_rphase_t;

typedef struct mesh_rsample {
    int64_t t;
    double v;
} mesh_rsample_t;

typedef struct mesh_rstate {
    uint8_t phase;   /* mesh_rphase_t */
    uint8_t acked;   /* the current alert was acknowledged */
    uint8_t latched; /* resolved by hand while the condition held: no new alert until it clears */
    int64_t since;   /* PENDING: when the condition started to hold (row time, ns) */
    int64_t last_t;  /* newest row time evaluated; older rows are ignored (late) */
    int64_t fired_at;
    uint64_t alert_no; /* FIRING: the alert's number in the domain */
    double first_value, last_value;
    /* the ring: window samples, or the z-score baseline's values */
    mesh_rsample_t *ring;
    uint32_t ring_cap, ring_n, ring_head; /* head: index of the oldest */
    /* baseline: Welford (count, mean, m2) over the ring, or EWMA (mean, var) */
    uint64_t count;
    double mean, m2;
} mesh_rstate_t;

void mesh_rstate_free(mesh_rstate_t *s);
/* Serialised form (versioned, little-endian); decode checks every length. */
mesh_status_t mesh_rstate_encode(const mesh_rstate_t *s, mesh_buf_t *out);
mesh_status_t mesh_rstate_decode(const uint8_t *p, size_t n, mesh_rstate_t *s);

/* What one value does to a series' state. */
typedef enum {
    MESH_RSTEP_NONE = 0,
    MESH_RSTEP_FIRE,    /* a new alert */
    MESH_RSTEP_UPDATE,  /* still firing, last value changed */
    MESH_RSTEP_RESOLVE, /* the firing alert resolved */
} mesh_rstep_t;

typedef struct mesh_reval {
    mesh_rstep_t step;
    bool has_value;
    double value;  /* what the condition compared: the value, the aggregate, |z| */
    double sample; /* the row's value */
} mesh_reval_t;

/* Feeds one row (time t, value v; has_v false for a NULL) to the series' state. Rows older
 * than the newest evaluated are ignored (late rows). Pure: no I/O. */
mesh_status_t mesh_rule_step(const mesh_rule_t *r, mesh_rstate_t *s, int64_t t, bool has_v,
                             double v, mesh_reval_t *out);
/* An absence check at time now (absence rules; a no-op for the others). */
void mesh_rule_tick(const mesh_rule_t *r, mesh_rstate_t *s, int64_t now, mesh_reval_t *out);

/* The window aggregate of the ring (false when it has none: no sample, or rate of one). */
bool mesh_rule_window_value(const mesh_rule_t *r, const mesh_rstate_t *s, double *out);

#endif
