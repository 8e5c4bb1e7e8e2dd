/*
 * actions.h - the node's action thread: runs the actions of alert transitions (webhooks)
 * away from the ingest path.
 *
 * Domain writers hand committed alert transitions to mesh_actions_submit, which only queues
 * them (a bounded queue; when it is full the job is dropped for now, counted, logged and
 * audited) and returns: a slow or failing receiver never delays a write. Transitions are also
 * in their domain's outbox (rules/engine.h); `done` is called once all actions of one ended,
 * so the outbox row goes, and what is left undone runs again at the next start. One thread delivers
 * jobs in the order they fall due; a failed delivery (transport error, timeout, HTTP status other
 * than 2xx) is retried after `backoff`, doubling up to 60 s, `retries` times. Every outcome is
 * audited (action.webhook: delivered, failed, dropped).
 *
 * A webhook request: POST, Content-Type application/json, the payload described in
 * docs/rules.md, and the headers
 *   X-Meshd-Event:     fired | acknowledged | resolved
 *   X-Meshd-Delivery:  ALERT_ID/EVENT/ACTION, e.g. icu-3:17/fired/0: the same on every retry
 *                      and after a restart (receivers de-duplicate on it)
 *   X-Meshd-Timestamp: Unix seconds of this attempt
 *   X-Meshd-Signature: sha256=hex(HMAC-SHA256(secret, timestamp + "." + body))
 * Sensitive columns (mesh_rule_col_sensitive) of the series and the row are replaced with
 * MASK_HASH values (the node's mask key: equal values, equal hashes, as in SQL results)
 * unless the action lists them under `unmasked`.
 *
 * An MQTT action publishes a topic and payload made from its templates (mesh_rule_expand:
 * the series' and row's columns, masked like the webhook's, and the alert's fields; the
 * payload defaults to the webhook's JSON document) through mqtt_publish, the node's MQTT
 * connection, and counts as done when the broker acknowledged it (QoS 1).
 *
 * Each action type is one function behind mesh_action_run_fn (actions.c's table).
 */
#ifndef MESH_RULES_ACTIONS_H
#define MESH_RULES_ACTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/audit.h"
#include "core/status.h"
#include "rules/engine.h"

typedef struct mesh_actions mesh_actions_t;

/* Fills key with the node's MASK_HASH key (32 bytes); false when there is none. */
typedef bool (*mesh_mask_key_fn)(void *arg, uint8_t key[32]);
/* Every action of ev ended (delivered, failed after its retries, or dropped from a full
 * queue): its outbox row may go. Not called for what a stop leaves undone. Runs on the action
 * thread (or the submitter's, for a full queue); ev is borrowed. */
typedef void (*mesh_actions_done_fn)(void *arg, const mesh_rule_event_t *ev);
/* Publishes n bytes on topic through the node's MQTT connection and waits (at most
 * timeout_ns) for the broker's acknowledgement (QoS 1) or the hand-over (QoS 0). MESH_OK, or
 * an error with why filled (no broker configured, not connected, refused, timed out). */
typedef mesh_status_t (*mesh_mqtt_publish_fn)(void *arg, const char *topic, const void *payload,
                                              size_t n, int qos, bool retain, int64_t timeout_ns,
                                              char *why, size_t cap);

typedef struct mesh_actions_opts {
    size_t queue_max;    /* jobs waiting (0: 1000) */
    mesh_audit_t *audit; /* may be NULL */
    mesh_mask_key_fn mask_key;
    void *mask_arg;
    mesh_actions_done_fn done; /* may be NULL */
    void *done_arg;
    mesh_mqtt_publish_fn mqtt_publish; /* NULL: mqtt actions fail (no broker) */
    void *mqtt_arg;
} mesh_actions_opts_t;

typedef struct mesh_actions_stats {
    uint64_t delivered, failed, dropped, attempts;
    size_t queued;
} mesh_actions_stats_t;

mesh_status_t mesh_actions_start(const mesh_actions_opts_t *opts, mesh_actions_t **out,
                                 mesh_err_t *err);
/* Stops the thread (an attempt in progress finishes); jobs still queued are dropped. */
void mesh_actions_stop(mesh_actions_t *a);
/* Queues the actions of each event of the list; takes the list. Never blocks on delivery. */
void mesh_actions_submit(mesh_actions_t *a, mesh_rule_event_t *ev);
void mesh_actions_stats(mesh_actions_t *a, mesh_actions_stats_t *out);

/* An MQTT action's topic and payload for an event (masked as the action says). */
mesh_status_t mesh_actions_mqtt_message(const mesh_rule_event_t *ev, const mesh_rule_action_t *act,
                                        const uint8_t *mask_key, const char *delivery,
                                        mesh_buf_t *topic, mesh_buf_t *payload);
/* The webhook body of an event (masked as the action says) into out; for tests. */
mesh_status_t mesh_actions_payload(const mesh_rule_event_t *ev, const mesh_rule_action_t *act,
                                   const uint8_t *mask_key, const char *delivery, mesh_buf_t *out);
/* "sha256=" + hex HMAC-SHA256(secret, ts "." body) into out (72 bytes). */
void mesh_actions_sign(const char *secret, int64_t ts, const char *body, size_t n, char out[72]);

#endif
