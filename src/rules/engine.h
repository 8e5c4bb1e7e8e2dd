/*
 * engine.h - a domain's rules, evaluated on the domain's writer as each record is applied.
 *
 * The engine belongs to one domain and is driven only by its writer thread (store/domain.c),
 * inside the store transaction that applies a log record:
 *
 *   a batch    each row of a watched product goes to its series' state (mesh_rule_step);
 *              changed states are marked dirty, and written to _rule_state only by
 *              mesh_rules_persist (decision 0028)
 *   a tick     absence rules compare the tick's time with each series' newest row
 *   a rule     put or deleted (its series states go with it)
 *   an alert   acknowledged or resolved by hand
 *
 * Alert transitions write rows into the domain's `alerts` product (one row per alert, merged
 * on alert_id) and `alert_events` product (one row per transition), and queue an event
 * (mesh_rule_event_t) that the domain hands to the node's action thread after the commit.
 * States are persisted at the domain's checkpoints with the log position they hold
 * ('rules_clean'); the log is kept back to it. After a crash the domain loads them and
 * re-evaluates the committed records after that position with the engine replaying (no
 * writes, no events: their transitions are in the store already), then applies the rest
 * normally, so every record is still evaluated exactly once. A transition whose rule has actions is
 * also written to the domain's outbox (_outbox) in that transaction; the node deletes the row
 * once its actions ended, so actions still owed at a stop or a crash run again at the next
 * start (mesh_rules_take_recovered).
 *
 * A record that fails is rolled back by the store; the engine then rereads the persisted
 * states (mesh_rules_rollback) and the domain replays the records after them.
 *
 * Readers on other threads only list rules (mesh_rules_list), under the engine's lock.
 */
#ifndef MESH_RULES_ENGINE_H
#define MESH_RULES_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "ingest/batch.h"
#include "rules/rule.h"
#include "store/store.h"

#define MESH_ALERTS_PRODUCT       "alerts"
#define MESH_ALERT_EVENTS_PRODUCT "alert_events"

typedef struct mesh_rules mesh_rules_t;

/* The domain's current definition of a product (NULL when none). */
typedef const mesh_product_t *(*mesh_rules_lookup_fn)(void *arg, const char *product);

typedef enum {
    MESH_ALERT_FIRED = 0,
    MESH_ALERT_ACKNOWLEDGED,
    MESH_ALERT_RESOLVED,
} mesh_alert_ev_t;

const char *mesh_alert_ev_name(mesh_alert_ev_t e);

/* One alert transition, for the actions and the audit log. Owned by whoever took it from the
 * engine: free with mesh_rule_event_free. */
typedef struct mesh_rule_event {
    struct mesh_rule_event *next;
    mesh_rule_t *rule; /* a reference */
    mesh_alert_ev_t ev;
    char alert_id[96];
    char domain[64];
    char product[64];
    char *series;    /* JSON object of the series' key values */
    char *row;       /* JSON object of the row that caused it (NULL: a tick or by hand) */
    char *sensitive; /* JSON array of the product's sensitive column names */
    bool has_value;
    double value;  /* what the condition compared (value, aggregate, |z|, seconds silent) */
    double sample; /* the row's value */
    int64_t time_ns;
    char by[64]; /* who acknowledged or resolved it; "" for the rule itself */
    char note[256];
    int64_t outbox_id; /* its row in the domain's outbox (0: none: the rule has no action) */
} mesh_rule_event_t;

void mesh_rule_event_free(mesh_rule_event_t *e);

/* Loads the domain's rules and every series state from the store (writer's connection). */
mesh_status_t mesh_rules_open(mesh_store_t *s, const char *domain, mesh_rules_t **out,
                              mesh_err_t *err);
void mesh_rules_close(mesh_rules_t *e);

/* The text of the contract of the alerts products for a domain (ODCS YAML) into out. */
mesh_status_t mesh_rules_alerts_contract(const char *domain, mesh_buf_t *out);

/* ---- the writer (inside its transaction) ---- */

/* Starts a record: what follows can be undone by mesh_rules_rollback. */
void mesh_rules_record_begin(mesh_rules_t *e);
/* The record failed and its savepoint was rolled back: drops its events; when it had changed
 * states, rereads the persisted ones and sets *reloaded: the caller must then replay the
 * records after mesh_store_rules_clean() that stay (mesh_rules_replay_begin). */
mesh_status_t mesh_rules_rollback(mesh_rules_t *e, bool *reloaded, mesh_err_t *err);
/* The whole transaction was rolled back: as mesh_rules_rollback, for the group. */
mesh_status_t mesh_rules_abort(mesh_rules_t *e, bool *reloaded, mesh_err_t *err);

/* Writes every dirty state to _rule_state, and the alert number they go with, in the open
 * transaction; the caller records the log position (meta 'rules_clean') in it. The states
 * are clean from then on: if that transaction does not commit, call mesh_rules_mark_dirty. */
mesh_status_t mesh_rules_persist(mesh_rules_t *e, mesh_err_t *err);
/* Whether a state changed since it was last persisted. */
bool mesh_rules_dirty(const mesh_rules_t *e);
/* Marks every state dirty (a persisting transaction was rolled back). */
void mesh_rules_mark_dirty(mesh_rules_t *e);
/* Replaying: records whose effects are committed are evaluated again to rebuild the states
 * after the persisted ones; nothing is written and no event is queued, alert numbers continue
 * from the one persisted with the states. replay_end checks they reach the store's. */
mesh_status_t mesh_rules_replay_begin(mesh_rules_t *e, mesh_err_t *err);
void mesh_rules_replay_end(mesh_rules_t *e);
/* After the commit: the group's events (a list, oldest first), now the caller's. */
mesh_rule_event_t *mesh_rules_take_events(mesh_rules_t *e);
/* The events of the outbox found at open (actions owed before a stop or crash), once. */
mesh_rule_event_t *mesh_rules_take_recovered(mesh_rules_t *e);

/* Puts (creates or replaces) a rule; takes a reference of r. The rule is checked against its
 * product. A replaced rule of another kind, product or column starts its series afresh: its
 * firing alerts resolve at now (the record's time). */
mesh_status_t mesh_rules_put(mesh_rules_t *e, uint64_t seq, int64_t now, mesh_rule_t *r,
                             mesh_rules_lookup_fn lookup, void *arg, mesh_err_t *err);
/* Deletes a rule with its series states; its firing alerts resolve at now. */
mesh_status_t mesh_rules_delete(mesh_rules_t *e, uint64_t seq, int64_t now, const char *name,
                                mesh_rules_lookup_fn lookup, void *arg, mesh_err_t *err);
/* Evaluates an applied batch. */
mesh_status_t mesh_rules_batch(mesh_rules_t *e, uint64_t seq, const mesh_batch_t *b,
                               mesh_rules_lookup_fn lookup, void *arg, mesh_err_t *err);
/* Absence rules at time now. */
mesh_status_t mesh_rules_tick(mesh_rules_t *e, uint64_t seq, int64_t now,
                              mesh_rules_lookup_fn lookup, void *arg, mesh_err_t *err);
/* Acknowledges ('a') or resolves ('r') an alert by hand. MESH_NOT_FOUND, or MESH_CONFLICT
 * when it is resolved already (or acknowledged already, for 'a'). */
mesh_status_t mesh_rules_alert_op(mesh_rules_t *e, uint64_t seq, char op, const char *alert_id,
                                  const char *by, const char *note, int64_t now,
                                  mesh_rules_lookup_fn lookup, void *arg, mesh_err_t *err);

/* ---- any thread ---- */

/* Whether an absence rule exists. */
bool mesh_rules_has_absence(mesh_rules_t *e);
/* Whether a tick at now could fire an absence alert (the node sends ticks only then). */
bool mesh_rules_due(mesh_rules_t *e, int64_t now);
/* References to the rules (sorted by name) with their series and firing counts; release
 * with mesh_rule_put each and free() the arrays. */
typedef struct mesh_rule_info {
    mesh_rule_t *rule;
    size_t series, firing;
} mesh_rule_info_t;
mesh_status_t mesh_rules_list(mesh_rules_t *e, mesh_rule_info_t **out, size_t *n);

/* ---- dry runs (meshctl rule test): no store, no actions ---- */

/* Evaluates rows of r's product (a batch) from a fresh state and calls fn for each transition
 * (with a tick at each row's time for absence rules). */
typedef void (*mesh_rules_dry_fn)(void *arg, const mesh_rule_event_t *ev);
mesh_status_t mesh_rules_dry_run(const mesh_rule_t *r, const mesh_batch_t *b, int64_t until_ns,
                                 mesh_rules_dry_fn fn, void *arg, mesh_err_t *err);

#endif
