/*
 * api_audit.c - the audit trail of HTTP requests and the audit endpoints:
 *   GET /v1/audit?principal=&product=&action=&since=&until=&after_seq=&before_seq=&limit=&order=
 *   GET|POST /v1/audit/verify[?anchor=SEQ:MAC]
 * Both need the admin or the auditor role, and both are audited themselves.
 *
 * The mesh_req_audit* helpers are the one way handlers write audit events: they add who
 * called (principal id and name, token id, how the credential came), from where (the peer
 * address), the request id and the access policy's version. A token is never written, only
 * its lookup id; a password never.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "http/internal.h"
#include "node/health.h"

#define SEARCH_MAX_LIMIT 10000

static void peer(mesh_req_t *r, char *out, size_t cap)
{
    struct evhttp_connection *c = evhttp_request_get_connection(r->ev);
    char *host = NULL;
    ev_uint16_t port = 0;
    if (c)
        evhttp_connection_get_peer(c, &host, &port);
    if (host == NULL)
        snprintf(out, cap, "unknown");
    else if (strchr(host, ':'))
        snprintf(out, cap, "[%s]:%u", host, (unsigned)port);
    else
        snprintf(out, cap, "%s:%u", host, (unsigned)port);
}

void mesh_req_audit(mesh_req_t *r, mesh_audit_rec_t *rec)
{
    if (r->node->audit == NULL)
        return;
    if (r->authed) {
        rec->principal_id = r->who.principal_id;
        rec->principal = r->who.name;
        rec->token_id = r->who.token_id[0] ? r->who.token_id : NULL;
        if (rec->policy_version == 0) /* the access policy the request was decided under */
            rec->policy_version = mesh_policy_version(mesh_req_policy(r));
    }
    rec->auth = r->auth_method;
    char src[80];
    peer(r, src, sizeof src);
    rec->source = src;
    rec->request_id = r->request_id;
    mesh_audit_record(r->node->audit, rec);
}

/* {"endpoint":"...","method":"GET"...} for the events that have no other details. */
static void request_details(mesh_req_t *r, mesh_buf_t *b, const char *extra_key, const char *extra)
{
    static const char *const methods[] = {"GET", "POST", "HEAD", "PUT", "DELETE"};
    enum evhttp_cmd_type c = evhttp_request_get_command(r->ev);
    const char *m = c == EVHTTP_REQ_GET      ? methods[0]
                    : c == EVHTTP_REQ_POST   ? methods[1]
                    : c == EVHTTP_REQ_HEAD   ? methods[2]
                    : c == EVHTTP_REQ_PUT    ? methods[3]
                    : c == EVHTTP_REQ_DELETE ? methods[4]
                                             : "other";
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(r->ev));
    mesh_buf_printf(b, "{\"method\":\"%s\",\"path\":", m);
    path = path ? path : "/";
    mesh_buf_add_json_str(b, path, strnlen(path, 256));
    if (extra_key) {
        mesh_buf_printf(b, ",\"%s\":", extra_key);
        mesh_buf_add_json_str(b, extra, strlen(extra));
    }
    mesh_buf_addc(b, '}');
}

void mesh_req_audit_auth(mesh_req_t *r, bool ok, const char *why)
{
    if (!ok) { /* the auth-failures health alert counts per client address (no port) */
        struct evhttp_connection *c = evhttp_request_get_connection(r->ev);
        char *host = NULL;
        ev_uint16_t port = 0;
        if (c)
            evhttp_connection_get_peer(c, &host, &port);
        mesh_health_auth_failure(r->node->health, host);
    }
    if (r->node->audit == NULL)
        return;
    mesh_buf_t d;
    mesh_buf_init(&d, 4096);
    request_details(r, &d, ok ? NULL : "reason", why);
    char subject[512];
    if (d.len && mesh_req_client_cert(r, subject, sizeof subject)) {
        /* a TLS client certificate came with the token: whose it was */
        d.data[--d.len] = '\0';
        mesh_buf_adds(&d, ",\"client_certificate\":");
        mesh_buf_add_json_str(&d, subject, strnlen(subject, sizeof subject));
        mesh_buf_addc(&d, '}');
    }
    mesh_audit_rec_t rec = {.action = ok ? MESH_AUDIT_AUTH_OK : MESH_AUDIT_AUTH_FAIL,
                            .status = ok ? 0 : 401,
                            .details = d.data};
    mesh_req_audit(r, &rec);
    mesh_buf_free(&d);
}

void mesh_req_audit_authz(mesh_req_t *r, mesh_action_t act, const char *domain, const char *product,
                          const mesh_decision_t *d)
{
    if (r->node->audit == NULL)
        return;
    static const char *const rights[] = {"read", "write", "admin", "audit"};
    mesh_buf_t b;
    mesh_buf_init(&b, 4096);
    request_details(r, &b, "right", (unsigned)act < 4 ? rights[act] : "unknown");
    if (b.len && b.data[b.len - 1] == '}') { /* and why the policy decided so */
        b.data[--b.len] = '\0';
        mesh_buf_adds(&b, ",\"why\":");
        mesh_buf_add_json_str(&b, d->why, strnlen(d->why, sizeof d->why));
        mesh_buf_addc(&b, '}');
    }
    mesh_audit_rec_t rec = {.action = d->allow ? MESH_AUDIT_AUTHZ_ALLOW : MESH_AUDIT_AUTHZ_DENY,
                            .domain = domain,
                            .product = product,
                            .status = d->allow ? 0 : 403,
                            .details = b.data,
                            .policy_version = d->version};
    mesh_req_audit(r, &rec);
    mesh_buf_free(&b);
}

/* ---- routes audited after their handler: logins and the access API ---- */

static const struct {
    const char *route;
    enum evhttp_cmd_type method;
    mesh_audit_action_t action;
} audited_routes[] = {
    {"login", EVHTTP_REQ_POST, MESH_AUDIT_AUTH_OK}, /* AUTH_FAIL when refused */
    {"principals", EVHTTP_REQ_POST, MESH_AUDIT_ADMIN_PRINCIPAL_CREATE},
    {"principal", EVHTTP_REQ_PUT, MESH_AUDIT_ADMIN_PRINCIPAL_UPDATE},
    {"principal", EVHTTP_REQ_DELETE, MESH_AUDIT_ADMIN_PRINCIPAL_DELETE},
    {"tokens", EVHTTP_REQ_POST, MESH_AUDIT_ADMIN_TOKEN_CREATE},
    {"token", EVHTTP_REQ_DELETE, MESH_AUDIT_ADMIN_TOKEN_REVOKE},
    {"roles", EVHTTP_REQ_POST, MESH_AUDIT_ADMIN_ROLE_CREATE},
    {"role", EVHTTP_REQ_DELETE, MESH_AUDIT_ADMIN_ROLE_DELETE},
    {"grants", EVHTTP_REQ_POST, MESH_AUDIT_ADMIN_GRANT_CREATE},
    {"grant", EVHTTP_REQ_DELETE, MESH_AUDIT_ADMIN_GRANT_DELETE},
    {"masks", EVHTTP_REQ_POST, MESH_AUDIT_ADMIN_MASK_CREATE},
    {"mask", EVHTTP_REQ_DELETE, MESH_AUDIT_ADMIN_MASK_DELETE},
    {"row_filters", EVHTTP_REQ_POST, MESH_AUDIT_ADMIN_ROW_FILTER_CREATE},
    {"row_filter", EVHTTP_REQ_DELETE, MESH_AUDIT_ADMIN_ROW_FILTER_DELETE},
    {"mqtt_mappings", EVHTTP_REQ_POST, MESH_AUDIT_ADMIN_MQTT_MAPPING_CREATE},
    {"mqtt_mapping", EVHTTP_REQ_DELETE, MESH_AUDIT_ADMIN_MQTT_MAPPING_DELETE},
};

/* Request body fields an audit event may repeat. Anything else (a password above all) is
 * left out; a secret that was given is only named in "secrets". */
static const char *const safe_fields[] = {
    "name",      "kind", "roles",      "disabled", "role",        "action", "domain", "product",
    "columns",   "deny", "column",     "tag",      "type",        "expr",   "except", "predicate",
    "principal", "note", "expires_in", "user",     "description", "topic",  "format", "qos",
};
static const char *const secret_fields[] = {"password", "current_password"};

static int route_index(const char *route, enum evhttp_cmd_type method)
{
    for (size_t i = 0; i < MESH_ARRAY_LEN(audited_routes); i++)
        if (audited_routes[i].method == method && strcmp(audited_routes[i].route, route) == 0)
            return (int)i;
    return -1;
}

bool mesh_req_route_audited(const char *route, enum evhttp_cmd_type method)
{
    return route_index(route, method) >= 0;
}

void mesh_req_audit_route(mesh_req_t *r, const char *route)
{
    int i = route_index(route, evhttp_request_get_command(r->ev));
    if (i < 0 || r->node->audit == NULL)
        return;
    mesh_buf_t d;
    mesh_buf_init(&d, MESH_BUF_UNLIMITED);
    request_details(r, &d, NULL, NULL);
    d.data[--d.len] = '\0'; /* reopen the object */
    const char *p = NULL;
    size_t n = 0;
    json_t *j = NULL;
    if (mesh_req_body(r, &p, &n) == MESH_OK && n > 0)
        j = json_loadb(p, n, 0, NULL);
    const char *user = NULL;
    if (json_is_object(j)) {
        mesh_buf_adds(&d, ",\"request\":{");
        int k = 0;
        for (size_t f = 0; f < MESH_ARRAY_LEN(safe_fields); f++) {
            json_t *v = json_object_get(j, safe_fields[f]);
            char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            if (text && strlen(text) <= 2048)
                mesh_buf_printf(&d, "%s\"%s\":%s", k++ ? "," : "", safe_fields[f], text);
            free(text);
        }
        mesh_buf_addc(&d, '}');
        int s = 0;
        for (size_t f = 0; f < MESH_ARRAY_LEN(secret_fields); f++)
            if (json_object_get(j, secret_fields[f]))
                mesh_buf_printf(&d, "%s\"%s\"", s++ ? "," : ",\"secrets\":[", secret_fields[f]);
        if (s)
            mesh_buf_addc(&d, ']');
        user = json_string_value(json_object_get(j, "user"));
    }
    bool login = audited_routes[i].action == MESH_AUDIT_AUTH_OK;
    bool ok = r->status >= 200 && r->status < 300;
    if (login && !ok)
        mesh_buf_printf(&d, ",\"reason\":\"%s\"",
                        r->status == 429   ? "too many failed attempts (rate limited)"
                        : r->status == 401 ? "wrong name or password"
                                           : "malformed login request");
    if (r->params[0][0]) { /* the object named by the path: a principal, a token id, ... */
        mesh_buf_adds(&d, ",\"target\":");
        mesh_buf_add_json_str(&d, r->params[0], strlen(r->params[0]));
    }
    mesh_buf_addc(&d, '}');
    mesh_audit_rec_t rec = {.action =
                                login && !ok ? MESH_AUDIT_AUTH_FAIL : audited_routes[i].action,
                            .status = r->status,
                            .details = d.data};
    if (login) {
        /* who tried to log in, by the name given; never the password */
        r->auth_method = "password";
        rec.principal = user;
    } else if (json_is_object(j)) {
        rec.domain = json_string_value(json_object_get(j, "domain"));
        rec.product = json_string_value(json_object_get(j, "product"));
    }
    mesh_req_audit(r, &rec);
    json_decref(j);
    mesh_buf_free(&d);
}

/* ---- GET /v1/audit ---- */

static bool u64_arg(mesh_req_t *r, const char *key, uint64_t *out)
{
    const char *s = mesh_req_arg(r, key);
    *out = 0;
    if (s && mesh_parse_u64(s, strlen(s), out) != MESH_OK) {
        mesh_req_errorf(r, MESH_INVALID, "%s=%.40s: expected a sequence number", key, s);
        return false;
    }
    return true;
}

static bool time_arg(mesh_req_t *r, const char *key, int64_t *out)
{
    const char *s = mesh_req_arg(r, key);
    *out = 0;
    if (s && mesh_audit_parse_time(s, out) != MESH_OK) {
        mesh_req_errorf(r, MESH_INVALID,
                        "%s=%.40s: expected an ISO 8601 time or a duration ago (15m, 7d)", key, s);
        return false;
    }
    return true;
}

/* The filter as JSON, for the audit.read event. */
static void filter_json(mesh_buf_t *b, const mesh_audit_filter_t *f, int64_t limit, bool desc)
{
    const char *keys[] = {"principal", "product", "action"};
    const char *vals[] = {f->principal, f->product, f->action};
    mesh_buf_adds(b, "{");
    for (int i = 0; i < 3; i++) {
        if (vals[i] == NULL)
            continue;
        mesh_buf_printf(b, "\"%s\":", keys[i]);
        mesh_buf_add_json_str(b, vals[i], strnlen(vals[i], 200));
        mesh_buf_addc(b, ',');
    }
    if (f->since_ns)
        mesh_buf_printf(b, "\"since_ns\":%lld,", (long long)f->since_ns);
    if (f->until_ns)
        mesh_buf_printf(b, "\"until_ns\":%lld,", (long long)f->until_ns);
    if (f->after_seq)
        mesh_buf_printf(b, "\"after_seq\":%" PRIu64 ",", f->after_seq);
    if (f->before_seq)
        mesh_buf_printf(b, "\"before_seq\":%" PRIu64 ",", f->before_seq);
    mesh_buf_printf(b, "\"limit\":%lld,\"order\":\"%s\"}", (long long)limit, desc ? "desc" : "asc");
}

void mesh_api_audit(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_AUDIT, NULL, NULL))
        return;
    if (r->node->audit == NULL) {
        mesh_req_errorf(r, MESH_UNAVAILABLE, "this node keeps no audit log");
        return;
    }
    mesh_audit_filter_t f = {.principal = mesh_req_arg(r, "principal"),
                             .product = mesh_req_arg(r, "product"),
                             .action = mesh_req_arg(r, "action")};
    int64_t limit = 100;
    const char *ls = mesh_req_arg(r, "limit");
    if (ls && (mesh_parse_i64(ls, strlen(ls), &limit) != MESH_OK || limit < 1 ||
               limit > SEARCH_MAX_LIMIT)) {
        mesh_req_errorf(r, MESH_INVALID, "limit must be 1..%d", SEARCH_MAX_LIMIT);
        return;
    }
    const char *order = mesh_req_arg(r, "order");
    if (order && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0) {
        mesh_req_errorf(r, MESH_INVALID, "order=%.20s: expected asc or desc", order);
        return;
    }
    bool desc = order == NULL || strcmp(order, "desc") == 0;
    if (!time_arg(r, "since", &f.since_ns) || !time_arg(r, "until", &f.until_ns) ||
        !u64_arg(r, "after_seq", &f.after_seq) || !u64_arg(r, "before_seq", &f.before_seq))
        return;
    mesh_audit_scan_t *s;
    mesh_err_t err;
    mesh_err_clear(&err);
    if (mesh_audit_scan_open(r->node->audit, NULL, NULL, &f, &s, &err) != MESH_OK) {
        mesh_req_error(r, err.code, err.msg, NULL);
        return;
    }
    /* oldest first stops at limit; newest first keeps the last `limit` in a ring */
    char **ring = desc ? calloc((size_t)limit, sizeof *ring) : NULL;
    uint64_t *ring_seq = desc ? calloc((size_t)limit, sizeof *ring_seq) : NULL;
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    mesh_buf_adds(&b, "{\"records\":[");
    mesh_audit_entry_t e;
    int64_t n = 0, total = 0;
    uint64_t edge = 0;
    bool more = false;
    while (mesh_audit_scan_next(s, &e) == 1) {
        if (desc) {
            if (ring == NULL || ring_seq == NULL)
                break;
            size_t slot = (size_t)(total % limit);
            free(ring[slot]);
            ring[slot] = strdup(e.json);
            ring_seq[slot] = e.seq;
            total++;
            continue;
        }
        if (n == limit) {
            more = true;
            break;
        }
        if (n++)
            mesh_buf_addc(&b, ',');
        mesh_buf_adds(&b, e.json);
        edge = e.seq;
    }
    if (desc) {
        n = total < limit ? total : limit;
        more = total > limit;
        for (int64_t i = 0; i < n && ring && ring_seq; i++) {
            size_t slot = (size_t)((total - 1 - i) % limit);
            if (i)
                mesh_buf_addc(&b, ',');
            mesh_buf_adds(&b, ring[slot] ? ring[slot] : "null");
            edge = ring_seq[slot]; /* the oldest returned: page on with before_seq */
        }
        for (int64_t i = 0; i < limit && ring; i++)
            free(ring[i]);
        free(ring);
        free(ring_seq);
    }
    mesh_buf_printf(&b, "],\"count\":%lld,\"order\":\"%s\",\"more\":%s", (long long)n,
                    desc ? "desc" : "asc", more ? "true" : "false");
    if (more)
        mesh_buf_printf(&b, ",\"next\":{\"%s\":%" PRIu64 "}", desc ? "before_seq" : "after_seq",
                        edge);
    const char *w = mesh_audit_scan_warning(s);
    if (w) {
        mesh_buf_adds(&b, ",\"warning\":");
        mesh_buf_add_json_str(&b, w, strlen(w));
    }
    mesh_buf_adds(&b, "}\n");
    mesh_audit_scan_close(s);
    mesh_req_json(r, 200, &b);
    mesh_buf_free(&b);

    mesh_buf_t d;
    mesh_buf_init(&d, 8192);
    mesh_buf_adds(&d, "{\"filter\":");
    filter_json(&d, &f, limit, desc);
    mesh_buf_printf(&d, ",\"returned\":%lld}", (long long)n);
    mesh_audit_rec_t rec = {.action = MESH_AUDIT_AUDIT_READ, .status = 200, .details = d.data};
    mesh_req_audit(r, &rec);
    mesh_buf_free(&d);
}

/* ---- /v1/audit/verify ---- */

void mesh_api_audit_verify(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_AUDIT, NULL, NULL))
        return;
    if (r->node->audit == NULL) {
        mesh_req_errorf(r, MESH_UNAVAILABLE, "this node keeps no audit log");
        return;
    }
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_audit_anchor_t anchor;
    const char *as = mesh_req_arg(r, "anchor");
    if (as && mesh_audit_anchor_parse(as, &anchor, &err) != MESH_OK) {
        mesh_req_error(r, err.code, err.msg, NULL);
        return;
    }
    mesh_audit_verify_t v;
    mesh_status_t st = mesh_audit_verify_live(r->node->audit, as ? &anchor : NULL, &v, &err);
    if (st != MESH_OK && st != MESH_CORRUPT) {
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    /* the verification ran: 200 either way, "ok" says how it went */
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    mesh_audit_verify_json(&v, &b);
    mesh_buf_addc(&b, '\n');
    mesh_req_json(r, 200, &b);
    mesh_buf_free(&b);

    char d[512];
    snprintf(d, sizeof d,
             "{\"ok\":%s,\"last_seq\":%" PRIu64 ",\"fault\":\"%s\",\"seq\":%" PRIu64
             ",\"anchor\":%s}",
             v.ok ? "true" : "false", v.last_seq, mesh_audit_fault_name(v.fault), v.seq,
             as ? "true" : "false");
    mesh_audit_rec_t rec = {.action = MESH_AUDIT_AUDIT_VERIFY,
                            .status = 200,
                            .outcome = v.ok ? "ok" : "failed",
                            .details = d};
    mesh_req_audit(r, &rec);
}
