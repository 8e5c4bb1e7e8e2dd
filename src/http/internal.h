/*
 * internal.h - what the HTTP server gives its handlers (api_*.c).
 *
 * A handler receives a mesh_req_t whose caller is already authenticated (when the route
 * needs it) and answers it exactly once with one of the reply functions, or takes over the
 * response (streaming) and calls mesh_req_done when it ends.
 */
#ifndef MESH_HTTP_INTERNAL_H
#define MESH_HTTP_INTERNAL_H

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdbool.h>

#include "auth/policy.h"
#include "node/node.h"

#define MESH_REQ_MAX_PARAMS 4

typedef struct mesh_req {
    struct evhttp_request *ev;
    mesh_node_t *node;
    int route; /* index into the route table (metrics endpoint) */
    char params[MESH_REQ_MAX_PARAMS][128];
    struct evkeyvalq query;
    mesh_identity_t who;
    bool authed;
    const char *auth_method; /* how the credential came: "bearer", "basic", ... (audit) */
    int64_t t0;              /* monotonic ns at arrival */
    int status;
    bool replied;
    bool streaming; /* the handler owns the request until mesh_req_done */
    mesh_snapshot_t *snap;
    mesh_policy_t *policy; /* taken on first use, released after the reply */
    char request_id[24];
} mesh_req_t;

typedef void (*mesh_handler_fn)(mesh_req_t *r);

/* Query-string value or NULL. */
const char *mesh_req_arg(mesh_req_t *r, const char *key);
/* Request header or NULL. */
const char *mesh_req_header(mesh_req_t *r, const char *name);
/* The request body, made contiguous (and inflated when Content-Encoding is gzip). Returns
 * MESH_OK with a pointer valid until the reply, or replies itself (413/400) and returns an
 * error. */
mesh_status_t mesh_req_body(mesh_req_t *r, const char **p, size_t *n);
/* The catalog snapshot for this request (taken once, released after the reply). */
mesh_snapshot_t *mesh_req_snapshot(mesh_req_t *r);
/* The subject of the client certificate of the request's TLS connection into out; false
 * when there is none (no certificate, or plain HTTP). */
bool mesh_req_client_cert(mesh_req_t *r, char *out, size_t cap);
/* The access policy for this request (taken once, released after the reply). */
mesh_policy_t *mesh_req_policy(mesh_req_t *r);
/* Whether the caller owns the domain (is listed among its owners). */
bool mesh_req_owner(mesh_req_t *r, const char *domain);
/* An authorisation decision, without replying. */
bool mesh_req_decide(mesh_req_t *r, mesh_action_t act, const char *domain, const char *product,
                     mesh_decision_t *d);
/* Checks authorisation (and audits the decision); on a refusal replies 403 and returns false. */
bool mesh_req_allow(mesh_req_t *r, mesh_action_t act, const char *domain, const char *product);

/* Audit (api_audit.c). mesh_req_audit fills in the caller (principal, token id, how it
 * authenticated), the peer address and the request id, then appends rec to the node's
 * audit log. */
void mesh_req_audit(mesh_req_t *r, mesh_audit_rec_t *rec);
/* An authorisation decision (d as mesh_req_decide made it: allowed or not, why, the policy
 * version). */
void mesh_req_audit_authz(mesh_req_t *r, mesh_action_t act, const char *domain, const char *product,
                          const mesh_decision_t *d);
/* An authentication attempt: ok, or failed with why (never the credential). */
void mesh_req_audit_auth(mesh_req_t *r, bool ok, const char *why);
/* Whether requests of route (its name in the route table) with this method are audited after
 * their handler answered (logins and every change through the access API), and that audit:
 * the action from the route and method, the outcome from the status, the object from the
 * path and the request's fields that are not secret. */
bool mesh_req_route_audited(const char *route, enum evhttp_cmd_type method);
void mesh_req_audit_route(mesh_req_t *r, const char *route);

/* Replies. body may be NULL for an empty body. */
void mesh_req_reply(mesh_req_t *r, int code, const char *ctype, const char *body, size_t n);
void mesh_req_json(mesh_req_t *r, int code, const mesh_buf_t *body);
/* {"error":{"code":"VALIDATION","message":"...","details":<details_json>}} with the HTTP
 * status of st. details_json may be NULL. */
void mesh_req_error(mesh_req_t *r, mesh_status_t st, const char *msg, const char *details_json);
void mesh_req_errorf(mesh_req_t *r, mesh_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* For streaming handlers: marks the response as started by the handler; mesh_req_done
 * must then be called exactly once when the response has ended or the connection failed. */
void mesh_req_stream_begin(mesh_req_t *r, int status);
void mesh_req_done(mesh_req_t *r);

/* Handlers (api_*.c). */
/* api_governance.c */
void mesh_api_governance_domain(mesh_req_t *r);
void mesh_api_governance_product(mesh_req_t *r);
void mesh_api_retention_run(mesh_req_t *r);
void mesh_api_erase(mesh_req_t *r);
void mesh_api_healthz(mesh_req_t *r);
void mesh_api_readyz(mesh_req_t *r);
void mesh_api_metrics(mesh_req_t *r);
void mesh_api_status(mesh_req_t *r);
void mesh_api_domains(mesh_req_t *r);
void mesh_api_domain(mesh_req_t *r);
void mesh_api_contracts(mesh_req_t *r);
void mesh_api_products(mesh_req_t *r);
void mesh_api_product(mesh_req_t *r);
void mesh_api_product_contract(mesh_req_t *r);
void mesh_api_product_history(mesh_req_t *r);
void mesh_api_product_quality(mesh_req_t *r);
void mesh_api_product_quality_run(mesh_req_t *r);
void mesh_api_product_diff(mesh_req_t *r);
void mesh_api_rows(mesh_req_t *r);
void mesh_api_quarantine(mesh_req_t *r);
void mesh_api_quarantine_row(mesh_req_t *r);
void mesh_api_quarantine_drop(mesh_req_t *r);
void mesh_api_quarantine_resubmit(mesh_req_t *r);
void mesh_api_influx_write(mesh_req_t *r);
void mesh_api_influx_write_v2(mesh_req_t *r);
void mesh_api_ping(mesh_req_t *r);
void mesh_api_query(mesh_req_t *r);
void mesh_api_catalog(mesh_req_t *r);
void mesh_api_login(mesh_req_t *r);
void mesh_api_whoami(mesh_req_t *r);
void mesh_api_principals(mesh_req_t *r);
void mesh_api_principal(mesh_req_t *r);
void mesh_api_tokens(mesh_req_t *r);
void mesh_api_token(mesh_req_t *r);
void mesh_api_roles(mesh_req_t *r);
void mesh_api_role(mesh_req_t *r);
void mesh_api_grants(mesh_req_t *r);
void mesh_api_grant(mesh_req_t *r);
void mesh_api_masks(mesh_req_t *r);
void mesh_api_mask(mesh_req_t *r);
void mesh_api_row_filters(mesh_req_t *r);
void mesh_api_row_filter(mesh_req_t *r);
void mesh_api_discover(mesh_req_t *r);
void mesh_api_classifications(mesh_req_t *r);
void mesh_api_classify_change(mesh_req_t *r);
void mesh_api_mqtt_status(mesh_req_t *r);
void mesh_api_mqtt_mappings(mesh_req_t *r);
void mesh_api_mqtt_mapping(mesh_req_t *r);

/* Replies with a JSON document (and releases it). */
struct json_t;
void mesh_api_reply_json(mesh_req_t *r, int code, struct json_t *j);
void mesh_api_audit(mesh_req_t *r);
/* The mesh (api_mesh.c). */
void mesh_api_mesh_nodes(mesh_req_t *r);
void mesh_api_mesh_domains(mesh_req_t *r);
void mesh_api_mesh_products(mesh_req_t *r);
/* The mesh link's state for /v1/status (a new JSON object). */
struct json_t *mesh_api_mesh_status_json(mesh_node_t *n);
void mesh_api_audit_verify(mesh_req_t *r);
void mesh_api_keys(mesh_req_t *r);
/* Rules and alerts (api_rules.c). */
void mesh_api_rules(mesh_req_t *r);
void mesh_api_rules_test(mesh_req_t *r);
void mesh_api_rule(mesh_req_t *r);
void mesh_api_alerts(mesh_req_t *r);
void mesh_api_alert(mesh_req_t *r);
/* Rule and action counters for /metrics (api_rules.c). */
void mesh_api_rules_metrics(mesh_req_t *r, mesh_buf_t *b);
void mesh_api_backups(mesh_req_t *r);
void mesh_api_backup(mesh_req_t *r);
void mesh_api_backup_verify(mesh_req_t *r);
void mesh_api_keys_rotate(mesh_req_t *r);
/* Encryption counters for /metrics (api_keys.c). */
void mesh_api_crypt_metrics(mesh_req_t *r, mesh_buf_t *b);
/* Backup gauges and counters for /metrics (api_backup.c). */
void mesh_api_backup_metrics(mesh_req_t *r, mesh_buf_t *b);
/* Lineage and derived products (api_lineage.c). */
void mesh_api_lineage(mesh_req_t *r);
/* The product page's lineage: {"derived","kind","upstream":[...],"downstream":[...],"hidden"}
 * (every level, as GET /v1/lineage; products the caller may not read left out and counted). */
struct json_t *mesh__api_lineage_summary(mesh_req_t *r, const mesh_product_t *p);
void mesh_api_derive(mesh_req_t *r);

#endif
