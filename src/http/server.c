/*
 * server.c - the HTTP API: listener, worker threads, routing, authentication, replies.
 *
 * Design: one listening socket shared by N worker threads, each running its own libevent
 * base and evhttp; a connection stays on the thread that accepted it. Handlers run on the
 * worker thread and block it while they work (a write waits for its group commit), so
 * several workers keep the node responsive; long query results are streamed in chunks
 * from the worker's event loop. A worker takes one connection at a time: after an accept it
 * stops listening for ACCEPT_PAUSE_US, so the other workers take the next connections of a
 * burst (clients opening several kept-alive connections at once would otherwise all land on
 * the first worker to wake, and their requests would run one after another). Request limits (header
 * and body size, timeouts) are set before any handler or authentication runs.
 *
 * TLS (on unless tls = off): every worker's evhttp makes each accepted connection an OpenSSL
 * bufferevent (tls_bev) from the node's one SSL_CTX, which OpenSSL lets threads share. The
 * listening socket has TCP_NODELAY, which Linux copies to every accepted socket: without it
 * a response written after a TLS record waits ~40 ms for the client's delayed ACK (Nagle).
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "core/log.h"
#include "core/util.h"
#include "http/internal.h"
#include "http/metrics.h"
#include "tls/tls.h"

enum { M_GET = 1, M_POST = 2, M_PUT = 4, M_DELETE = 8, M_HEAD = 16 };

typedef struct route {
    const char *name; /* metrics endpoint label */
    unsigned methods;
    const char *pattern; /* segments; "{}" matches one segment into params */
    mesh_handler_fn fn;
    bool auth;
    bool influx_auth; /* also accept ?u=&p= and Basic credentials (InfluxDB clients) */
} route_t;

static const route_t routes[] = {
    {"healthz", M_GET | M_HEAD, "/healthz", mesh_api_healthz, false, false},
    {"readyz", M_GET | M_HEAD, "/readyz", mesh_api_readyz, false, false},
    {"metrics", M_GET, "/metrics", mesh_api_metrics, true, false},
    {"ping", M_GET | M_HEAD, "/ping", mesh_api_ping, false, false},
    {"status", M_GET, "/v1/status", mesh_api_status, true, false},
    {"domains", M_GET | M_POST, "/v1/domains", mesh_api_domains, true, false},
    {"domain", M_GET | M_PUT | M_DELETE, "/v1/domains/{}", mesh_api_domain, true, false},
    {"contracts", M_POST | M_PUT, "/v1/contracts", mesh_api_contracts, true, false},
    {"products", M_GET, "/v1/products", mesh_api_products, true, false},
    {"product", M_GET | M_DELETE, "/v1/products/{}/{}", mesh_api_product, true, false},
    {"contract", M_GET, "/v1/products/{}/{}/contract", mesh_api_product_contract, true, false},
    {"history", M_GET, "/v1/products/{}/{}/history", mesh_api_product_history, true, false},
    {"diff", M_GET, "/v1/products/{}/{}/diff", mesh_api_product_diff, true, false},
    {"quality", M_GET, "/v1/products/{}/{}/quality", mesh_api_product_quality, true, false},
    {"quality_run", M_POST, "/v1/products/{}/{}/quality/run", mesh_api_product_quality_run, true,
     false},
    {"rows", M_POST, "/v1/products/{}/{}/rows", mesh_api_rows, true, false},
    {"quarantine", M_GET, "/v1/products/{}/{}/quarantine", mesh_api_quarantine, true, false},
    {"quarantine_drop", M_POST, "/v1/products/{}/{}/quarantine/drop", mesh_api_quarantine_drop,
     true, false},
    {"quarantine_row", M_DELETE, "/v1/products/{}/{}/quarantine/{}", mesh_api_quarantine_row, true,
     false},
    {"quarantine_resubmit", M_POST, "/v1/products/{}/{}/quarantine/{}/resubmit",
     mesh_api_quarantine_resubmit, true, false},
    {"discover", M_POST, "/v1/products/{}/{}/discover", mesh_api_discover, true, false},
    {"classifications", M_GET, "/v1/products/{}/{}/classifications", mesh_api_classifications, true,
     false},
    {"classify", M_POST, "/v1/products/{}/{}/classifications/{}", mesh_api_classify_change, true,
     false},
    {"query", M_GET | M_POST, "/v1/query", mesh_api_query, true, false},
    {"catalog", M_GET, "/v1/catalog", mesh_api_catalog, true, false},
    {"login", M_POST, "/v1/login", mesh_api_login, false, false},
    {"whoami", M_GET, "/v1/whoami", mesh_api_whoami, true, false},
    {"principals", M_GET | M_POST, "/v1/principals", mesh_api_principals, true, false},
    {"principal", M_GET | M_PUT | M_DELETE, "/v1/principals/{}", mesh_api_principal, true, false},
    {"tokens", M_GET | M_POST, "/v1/tokens", mesh_api_tokens, true, false},
    {"token", M_DELETE, "/v1/tokens/{}", mesh_api_token, true, false},
    {"roles", M_GET | M_POST, "/v1/roles", mesh_api_roles, true, false},
    {"role", M_DELETE, "/v1/roles/{}", mesh_api_role, true, false},
    {"grants", M_GET | M_POST, "/v1/grants", mesh_api_grants, true, false},
    {"grant", M_DELETE, "/v1/grants/{}", mesh_api_grant, true, false},
    {"masks", M_GET | M_POST, "/v1/masks", mesh_api_masks, true, false},
    {"mask", M_DELETE, "/v1/masks/{}", mesh_api_mask, true, false},
    {"row_filters", M_GET | M_POST, "/v1/row-filters", mesh_api_row_filters, true, false},
    {"row_filter", M_DELETE, "/v1/row-filters/{}", mesh_api_row_filter, true, false},
    {"audit", M_GET, "/v1/audit", mesh_api_audit, true, false},
    {"audit_verify", M_GET | M_POST, "/v1/audit/verify", mesh_api_audit_verify, true, false},
    {"keys", M_GET, "/v1/keys", mesh_api_keys, true, false},
    {"mesh_nodes", M_GET, "/v1/mesh/nodes", mesh_api_mesh_nodes, true, false},
    {"mesh_domains", M_GET, "/v1/mesh/domains", mesh_api_mesh_domains, true, false},
    {"mesh_products", M_GET, "/v1/mesh/products", mesh_api_mesh_products, true, false},
    {"keys_rotate", M_POST, "/v1/keys/rotate", mesh_api_keys_rotate, true, false},
    {"rules", M_GET | M_POST, "/v1/rules", mesh_api_rules, true, false},
    {"rules_test", M_POST, "/v1/rules/test", mesh_api_rules_test, true, false},
    {"rule", M_GET | M_DELETE, "/v1/rules/{}/{}", mesh_api_rule, true, false},
    {"alerts", M_GET, "/v1/alerts", mesh_api_alerts, true, false},
    {"alert", M_GET, "/v1/alerts/{}", mesh_api_alert, true, false},
    {"alert_op", M_POST, "/v1/alerts/{}/{}", mesh_api_alert, true, false},
    {"backups", M_GET | M_POST, "/v1/backups", mesh_api_backups, true, false},
    {"backup", M_GET | M_DELETE, "/v1/backups/{}", mesh_api_backup, true, false},
    {"backup_verify", M_POST, "/v1/backups/{}/verify", mesh_api_backup_verify, true, false},
    {"mqtt_status", M_GET, "/v1/mqtt/status", mesh_api_mqtt_status, true, false},
    {"mqtt_mappings", M_GET | M_POST, "/v1/mqtt/mappings", mesh_api_mqtt_mappings, true, false},
    {"mqtt_mapping", M_GET | M_DELETE, "/v1/mqtt/mappings/{}", mesh_api_mqtt_mapping, true, false},
    {"governance", M_GET | M_PUT, "/v1/governance/{}", mesh_api_governance_domain, true, false},
    {"governance_product", M_GET | M_PUT, "/v1/governance/{}/{}", mesh_api_governance_product, true,
     false},
    {"retention_run", M_POST, "/v1/retention/run", mesh_api_retention_run, true, false},
    {"erase", M_POST, "/v1/products/{}/{}/erase", mesh_api_erase, true, false},
    {"write", M_POST, "/write", mesh_api_influx_write, true, true},
    {"write_v2", M_POST, "/api/v2/write", mesh_api_influx_write_v2, true, true},
    {"lineage", M_GET, "/v1/lineage/{}/{}", mesh_api_lineage, true, false},
    {"derive", M_POST, "/v1/derive/{}/{}", mesh_api_derive, true, false},
};
#define NROUTES ((int)MESH_ARRAY_LEN(routes))

typedef struct worker {
    mesh_http_t *h;
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    atomic_int inflight;
    struct event *stop_timer;
    int stop_polls;
    struct event *accept_timer;    /* listening again after an accept (several workers) */
    atomic_uint_fast64_t accepted; /* connections taken (metrics) */
} worker_t;

/* How long a worker leaves new connections to the others after accepting one. */
#define ACCEPT_PAUSE_US 1000

struct mesh_http {
    mesh_node_t *node;
    int fd;
    worker_t *workers;
    int nworkers;
    atomic_uint_fast64_t next_id;
};

/* Per-request state beyond mesh_req_t: the inflated body. */
typedef struct req_ext {
    mesh_req_t r;
    worker_t *w;
    mesh_buf_t inflated;
    bool have_body;
    const char *body;
    size_t body_len;
    bool in_handler;      /* the route's handler is running */
    bool done_in_handler; /* a streaming handler ended the request before returning */
} req_ext_t;

const char *const *mesh_http_endpoint_names(int *n)
{
    static const char *names[NROUTES + 1];
    for (int i = 0; i < NROUTES; i++)
        names[i] = routes[i].name;
    names[NROUTES] = "other";
    *n = NROUTES + 1;
    return names;
}

void mesh_http_endpoint_paths(FILE *out, int width)
{
    int col = 0;
    for (int i = 0; i < NROUTES; i++) {
        int len = (int)strlen(routes[i].pattern);
        if (col > 0 && col + 1 + len > width) {
            fputc('\n', out);
            col = 0;
        }
        col += fprintf(out, "%s%s", col ? " " : "", routes[i].pattern);
    }
    if (col)
        fputc('\n', out);
}

/* ---- replies ---- */

static void finish(mesh_req_t *r)
{
    req_ext_t *x = (req_ext_t *)r;
    double secs = (double)(mesh_mono_ns() - r->t0) / 1e9;
    mesh_metrics_request(r->node->metrics, r->route, r->status, secs);
    if (r->status >= 500)
        LOG_WARN("http", "endpoint %s answered %d after %.1f ms (request %s)",
                 r->route < NROUTES ? routes[r->route].name : "other", r->status, secs * 1000,
                 r->request_id);
    mesh_snapshot_put(r->snap);
    mesh_policy_put(r->policy);
    evhttp_clear_headers(&r->query);
    mesh_buf_free(&x->inflated);
    atomic_fetch_sub(&x->w->inflight, 1);
    free(x);
}

static void common_headers(mesh_req_t *r)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "X-Frame-Options", "DENY");
    evhttp_add_header(h, "Content-Security-Policy", "default-src 'none'");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    evhttp_add_header(h, "Cache-Control", "no-store");
    if (r->node->tls) /* HTTPS only: a browser that saw it never tries plain HTTP here again */
        evhttp_add_header(h, "Strict-Transport-Security", "max-age=31536000");
    evhttp_add_header(h, "X-Request-Id", r->request_id);
}

/* Reason phrases libevent 2.1 does not know (it would send "Unknown Status Code"). */
static const char *reason_phrase(int code)
{
    switch (code) {
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 507:
        return "Insufficient Storage";
    default:
        return NULL;
    }
}

void mesh_req_reply(mesh_req_t *r, int code, const char *ctype, const char *body, size_t n)
{
    if (r->replied)
        return;
    r->replied = true;
    r->status = code;
    common_headers(r);
    struct evbuffer *b = NULL;
    if (body && n) {
        b = evbuffer_new();
        evbuffer_add(b, body, n);
    }
    if (ctype)
        evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Content-Type", ctype);
    evhttp_send_reply(r->ev, code, reason_phrase(code), b);
    if (b)
        evbuffer_free(b);
}

void mesh_req_json(mesh_req_t *r, int code, const mesh_buf_t *body)
{
    mesh_req_reply(r, code, "application/json", body->data, body->len);
}

void mesh_req_error(mesh_req_t *r, mesh_status_t st, const char *msg, const char *details_json)
{
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    const char *name = mesh_status_name(st);
    mesh_buf_adds(&b, "{\"error\":{\"code\":");
    mesh_buf_add_json_str(&b, name, strlen(name));
    mesh_buf_adds(&b, ",\"message\":");
    mesh_buf_add_json_str(&b, msg, strlen(msg));
    if (details_json) {
        mesh_buf_adds(&b, ",\"details\":");
        mesh_buf_adds(&b, details_json);
    }
    mesh_buf_adds(&b, "}}\n");
    int code = mesh_status_http(st);
    if (code == 401)
        evhttp_add_header(evhttp_request_get_output_headers(r->ev), "WWW-Authenticate",
                          "Bearer realm=\"meshd\"");
    mesh_req_json(r, code, &b);
    mesh_buf_free(&b);
}

void mesh_req_errorf(mesh_req_t *r, mesh_status_t st, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mesh_req_error(r, st, msg, NULL);
}

void mesh_req_stream_begin(mesh_req_t *r, int status)
{
    r->replied = true;
    r->streaming = true;
    r->status = status;
    common_headers(r);
}

void mesh_req_done(mesh_req_t *r)
{
    req_ext_t *x = (req_ext_t *)r;
    if (x->in_handler) {
        /* on_request still uses r when the handler returns: it finishes it then */
        x->done_in_handler = true;
        return;
    }
    finish(r);
}

/* ---- request accessors ---- */

const char *mesh_req_arg(mesh_req_t *r, const char *key)
{
    return evhttp_find_header(&r->query, key);
}

const char *mesh_req_header(mesh_req_t *r, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(r->ev), name);
}

mesh_snapshot_t *mesh_req_snapshot(mesh_req_t *r)
{
    if (r->snap == NULL)
        r->snap = mesh_registry_snapshot(r->node->reg);
    return r->snap;
}

mesh_policy_t *mesh_req_policy(mesh_req_t *r)
{
    if (r->policy == NULL)
        r->policy = mesh_auth_policy(r->node->auth);
    return r->policy;
}

bool mesh_req_owner(mesh_req_t *r, const char *domain)
{
    if (domain == NULL || !r->authed)
        return false;
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(mesh_req_snapshot(r), domain);
    for (size_t i = 0; sd && i < sd->meta.nowners; i++)
        if (strcmp(sd->meta.owners[i], r->who.name) == 0)
            return true;
    return false;
}

bool mesh_req_decide(mesh_req_t *r, mesh_action_t act, const char *domain, const char *product,
                     mesh_decision_t *d)
{
    return mesh_policy_decide(mesh_req_policy(r), r->authed ? &r->who : NULL, act, domain, product,
                              mesh_req_owner(r, domain), d);
}

bool mesh_req_allow(mesh_req_t *r, mesh_action_t act, const char *domain, const char *product)
{
    mesh_decision_t d;
    bool ok = mesh_req_decide(r, act, domain, product, &d);
    mesh_req_audit_authz(r, act, domain, product, &d);
    if (ok)
        return true;
    LOG_DEBUG("http", "%s denied %d on %s.%s: %s (policy %lld)", r->who.name, (int)act,
              domain ? domain : "*", product ? product : "*", d.why, (long long)d.version);
    static const char *acts[] = {"read", "write", "administer", "read the audit log of"};
    if (product)
        mesh_req_errorf(r, MESH_FORBIDDEN, "%s may not %s %s.%s", r->who.name, acts[act], domain,
                        product);
    else if (domain)
        mesh_req_errorf(r, MESH_FORBIDDEN, "%s may not %s domain %s", r->who.name, acts[act],
                        domain);
    else
        mesh_req_errorf(r, MESH_FORBIDDEN, "%s may not %s this node", r->who.name, acts[act]);
    return false;
}

static mesh_status_t inflate_body(req_ext_t *x, const unsigned char *in, size_t n)
{
    size_t max = (size_t)x->r.node->opts.max_body;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return MESH_NOMEM;
    mesh_buf_init(&x->inflated, max);
    zs.next_in = (unsigned char *)in;
    zs.avail_in = (uInt)n;
    mesh_status_t st = MESH_OK;
    for (;;) {
        if ((st = mesh_buf_reserve(&x->inflated, 64 * 1024)) != MESH_OK)
            break;
        size_t room = x->inflated.cap - x->inflated.len - 1;
        if (room > max - x->inflated.len + 1)
            room = max - x->inflated.len + 1;
        zs.next_out = (unsigned char *)x->inflated.data + x->inflated.len;
        zs.avail_out = (uInt)room;
        int rc = inflate(&zs, Z_NO_FLUSH);
        x->inflated.len += room - zs.avail_out;
        if (x->inflated.len > max) {
            st = MESH_TOO_LARGE;
            break;
        }
        if (rc == Z_STREAM_END)
            break;
        if (rc != Z_OK) {
            st = MESH_PARSE;
            break;
        }
        if (zs.avail_in == 0 && zs.avail_out != 0) {
            st = MESH_PARSE; /* truncated stream */
            break;
        }
    }
    inflateEnd(&zs);
    if (st == MESH_OK)
        x->inflated.data[x->inflated.len] = '\0';
    return st;
}

mesh_status_t mesh_req_body(mesh_req_t *r, const char **p, size_t *n)
{
    req_ext_t *x = (req_ext_t *)r;
    if (!x->have_body) {
        struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
        size_t len = evbuffer_get_length(in);
        const unsigned char *raw = len ? evbuffer_pullup(in, -1) : (const unsigned char *)"";
        const char *enc = mesh_req_header(r, "Content-Encoding");
        if (enc && (strcmp(enc, "gzip") == 0 || strcmp(enc, "x-gzip") == 0)) {
            mesh_status_t st = inflate_body(x, raw, len);
            if (st == MESH_TOO_LARGE) {
                mesh_req_errorf(r, st, "the inflated body is larger than max_body (%lld bytes)",
                                (long long)r->node->opts.max_body);
                return st;
            }
            if (st != MESH_OK) {
                mesh_req_errorf(r, MESH_PARSE, "the body is not valid gzip");
                return MESH_PARSE;
            }
            x->body = x->inflated.data;
            x->body_len = x->inflated.len;
        } else if (enc && strcmp(enc, "identity") != 0) {
            mesh_req_errorf(r, MESH_UNSUPPORTED,
                            "Content-Encoding '%.40s' is not supported "
                            "(use gzip or none)",
                            enc);
            return MESH_UNSUPPORTED;
        } else {
            x->body = (const char *)raw;
            x->body_len = len;
        }
        x->have_body = true;
    }
    *p = x->body;
    *n = x->body_len;
    return MESH_OK;
}

/* ---- authentication ---- */

static size_t b64_decode(const char *in, unsigned char *out, size_t cap)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (const char *c = in; *c && *c != '='; c++) {
        const char *pos = strchr(tbl, *c);
        if (pos == NULL)
            return 0;
        acc = (acc << 6) | (uint32_t)(pos - tbl);
        bits += 6;
        if (bits >= 8) {
            if (o + 1 >= cap)
                return 0;
            out[o++] = (unsigned char)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    out[o] = '\0';
    return o;
}

/* Finds the presented credential; returns its length (0 when none) and sets r->auth_method
 * to how it came. */
static size_t credential(mesh_req_t *r, const route_t *rt, char *out, size_t cap)
{
    const char *h = mesh_req_header(r, "Authorization");
    if (h) {
        const char *tok = NULL;
        r->auth_method = "authorization"; /* a scheme we do not take */
        if (strncasecmp(h, "Bearer ", 7) == 0) {
            tok = h + 7;
            r->auth_method = "bearer";
        } else if (strncasecmp(h, "Token ", 6) == 0) {
            tok = h + 6;
            r->auth_method = "token";
        } else if (rt->influx_auth && strncasecmp(h, "Basic ", 6) == 0) {
            r->auth_method = "basic";
            unsigned char dec[600];
            size_t n = b64_decode(h + 6, dec, sizeof dec);
            char *colon = n ? memchr(dec, ':', n) : NULL;
            if (colon == NULL)
                return 0;
            snprintf(out, cap, "%s", colon + 1);
            OPENSSL_cleanse(dec, sizeof dec);
            return strlen(out);
        }
        if (tok == NULL)
            return 0;
        while (*tok == ' ')
            tok++;
        snprintf(out, cap, "%s", tok);
        return strlen(out);
    }
    if (rt->influx_auth) {
        const char *p = mesh_req_arg(r, "p");
        if (p) {
            r->auth_method = "query-parameter";
            snprintf(out, cap, "%s", p);
            return strlen(out);
        }
    }
    return 0;
}

/* ---- dispatch ---- */

static int match(const char *pattern, const char *path, mesh_req_t *r)
{
    int np = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (p[0] == '{' && p[1] == '}') {
            const char *end = strchr(s, '/');
            size_t len = end ? (size_t)(end - s) : strlen(s);
            if (len == 0 || len >= sizeof r->params[0] || np >= MESH_REQ_MAX_PARAMS)
                return 0;
            char seg[sizeof r->params[0]];
            memcpy(seg, s, len);
            seg[len] = '\0';
            char *dec = evhttp_uridecode(seg, 0, NULL); /* decodes this segment only */
            if (dec == NULL)
                return 0;
            /* the decoded segment must not hold a '/' or control characters */
            size_t dl = strlen(dec);
            bool ok = dl > 0 && dl < sizeof r->params[0];
            for (size_t i = 0; ok && i < dl; i++)
                ok = dec[i] != '/' && (unsigned char)dec[i] >= 0x20;
            if (ok)
                snprintf(r->params[np++], sizeof r->params[0], "%s", dec);
            free(dec);
            if (!ok)
                return 0;
            p += 2;
            s += len;
            continue;
        }
        if (*p != *s)
            return 0;
        p++;
        s++;
    }
    if (*s == '/' && s[1] == '\0')
        s++; /* a trailing slash is fine */
    return *p == '\0' && *s == '\0';
}

static unsigned method_bit(enum evhttp_cmd_type c)
{
    switch (c) {
    case EVHTTP_REQ_GET:
        return M_GET;
    case EVHTTP_REQ_POST:
        return M_POST;
    case EVHTTP_REQ_PUT:
        return M_PUT;
    case EVHTTP_REQ_DELETE:
        return M_DELETE;
    case EVHTTP_REQ_HEAD:
        return M_HEAD;
    default:
        return 0;
    }
}

static void allow_header(mesh_req_t *r, unsigned methods)
{
    char allow[64] = "";
    size_t len = 0;
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {
        {M_GET, "GET"}, {M_HEAD, "HEAD"}, {M_POST, "POST"}, {M_PUT, "PUT"}, {M_DELETE, "DELETE"}};
    for (size_t i = 0; i < MESH_ARRAY_LEN(names); i++) {
        if (!(methods & names[i].bit))
            continue;
        len += (size_t)snprintf(allow + len, sizeof allow - len, "%s%s", len ? ", " : "",
                                names[i].name);
    }
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Allow", allow);
}

static void on_request(struct evhttp_request *ev, void *arg)
{
    worker_t *w = arg;
    mesh_http_t *h = w->h;
    req_ext_t *x = calloc(1, sizeof *x);
    if (x == NULL) {
        evhttp_send_error(ev, 503, "out of memory");
        return;
    }
    atomic_fetch_add(&w->inflight, 1);
    x->w = w;
    mesh_req_t *r = &x->r;
    r->ev = ev;
    r->node = h->node;
    r->t0 = mesh_mono_ns();
    r->route = NROUTES; /* "other" */
    TAILQ_INIT(&r->query);
    snprintf(r->request_id, sizeof r->request_id, "%llx",
             (unsigned long long)atomic_fetch_add(&h->next_id, 1));

    /* small responses and streamed chunks go out at once (no Nagle delay); the listener's
     * TCP_NODELAY already covers this where accepted sockets inherit it (Linux) */
    struct evhttp_connection *conn = evhttp_request_get_connection(ev);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    if (bev) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (h->node->tls && (bev == NULL || bufferevent_openssl_get_ssl(bev) == NULL)) {
        /* a TLS listener never answers without TLS (tls_bev could not make one) */
        evhttp_add_header(evhttp_request_get_output_headers(ev), "Connection", "close");
        mesh_req_errorf(r, MESH_UNAVAILABLE, "this connection has no TLS: try again");
        finish(r);
        return;
    }

    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *qs = uri ? evhttp_uri_get_query(uri) : NULL;
    if (path == NULL || *path == '\0')
        path = "/";
    if (qs && evhttp_parse_query_str(qs, &r->query) != 0) {
        mesh_req_errorf(r, MESH_INVALID, "malformed query string");
        finish(r);
        return;
    }
    unsigned m = method_bit(evhttp_request_get_command(ev));
    const route_t *rt = NULL;
    for (int i = 0; i < NROUTES; i++) {
        if (match(routes[i].pattern, path, r)) {
            rt = &routes[i];
            r->route = i;
            break;
        }
        memset(r->params, 0, sizeof r->params);
    }
    if (rt == NULL) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "no such endpoint: %.200s", path);
        finish(r);
        return;
    }
    if (!(rt->methods & m)) {
        allow_header(r, rt->methods);
        mesh_req_errorf(r, MESH_METHOD, "method not allowed on %s", rt->pattern);
        finish(r);
        return;
    }
    bool need_auth = rt->auth && !(rt->fn == mesh_api_metrics && !h->node->opts.metrics_auth);
    if (need_auth) {
        char tok[MESH_TOKEN_MAX + 2];
        size_t n = credential(r, rt, tok, sizeof tok);
        mesh_status_t st =
            n ? mesh_auth_verify(h->node->auth, tok, n, &r->who) : MESH_UNAUTHENTICATED;
        OPENSSL_cleanse(tok, sizeof tok);
        r->authed = st == MESH_OK;
        mesh_req_audit_auth(r, st == MESH_OK, n ? "invalid or expired token" : "no credential");
        if (st != MESH_OK) {
            mesh_req_errorf(r, MESH_UNAUTHENTICATED,
                            n ? "invalid or expired token"
                              : "this endpoint needs an API token: Authorization: Bearer <token>");
            finish(r);
            return;
        }
    }
    /* audited routes never stream: r is still ours after the handler */
    bool audit_after = mesh_req_route_audited(rt->name, evhttp_request_get_command(ev));
    x->in_handler = true;
    rt->fn(r);
    x->in_handler = false;
    if (x->done_in_handler) { /* a stream that ended at once (a CSV failing in its first chunk) */
        finish(r);
        return;
    }
    if (audit_after && r->replied)
        mesh_req_audit_route(r, rt->name);
    /* a streaming handler owns r from here: it ends through mesh_req_done */
    if (!r->replied) {
        mesh_req_errorf(r, MESH_INTERNAL, "the handler did not answer");
        finish(r);
    } else if (!r->streaming) {
        finish(r);
    }
}

bool mesh_req_client_cert(mesh_req_t *r, char *out, size_t cap)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(r->ev);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    return bev && mesh_tls_peer_subject(bufferevent_openssl_get_ssl(bev), out, cap);
}

/* ---- lifecycle ---- */

/* evhttp's bufferevent callback on a TLS listener: each accepted connection becomes an
 * OpenSSL bufferevent in the accepting state; evhttp hands it the socket. Returning NULL
 * would make evhttp use a plain bufferevent, which on_request refuses. */
static struct bufferevent *tls_bev(struct event_base *base, worker_t *w)
{
    struct ssl_st *ssl = mesh_tls_new_ssl(w->h->node->tls);
    struct bufferevent *bev =
        ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                             BEV_OPT_CLOSE_ON_FREE)
            : NULL;
    if (bev == NULL) {
        mesh_tls_free_ssl(ssl);
        LOG_ERROR("http", "cannot set up TLS for a connection: out of memory");
        return NULL;
    }
    /* a client that closes without close_notify ends its connection like an EOF */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

static void accept_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_t *w = arg;
    if (w->bound) /* NULL: stopping */
        evconnlistener_enable(evhttp_bound_socket_get_listener(w->bound));
}

/* evhttp's bufferevent callback, called for each connection the worker accepts: a TLS
 * bufferevent on a TLS listener (tls_bev), else NULL (evhttp makes a plain one). With other
 * workers, this one stops accepting for a moment (libevent's accept loop ends when its
 * listener is disabled), so a burst of connections spreads over the workers. */
static struct bufferevent *conn_bev(struct event_base *base, void *arg)
{
    worker_t *w = arg;
    atomic_fetch_add(&w->accepted, 1);
    if (w->accept_timer && w->bound) {
        evconnlistener_disable(evhttp_bound_socket_get_listener(w->bound));
        struct timeval tv = {0, ACCEPT_PAUSE_US};
        evtimer_add(w->accept_timer, &tv);
    }
    return w->h->node->tls ? tls_bev(base, w) : NULL;
}

static mesh_status_t bind_listener(const char *addr, int *out_fd, char *bound, size_t bcap,
                                   mesh_err_t *err)
{
    char host[256];
    const char *port;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':')
            return mesh_err_set(err, MESH_INVALID, "listen address '%s': expected [IPv6]:PORT",
                                addr);
        snprintf(host, sizeof host, "%.*s", (int)(close - addr - 1), addr + 1);
        port = close + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (colon == NULL)
            return mesh_err_set(err, MESH_INVALID, "listen address '%s': expected HOST:PORT", addr);
        snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
        port = colon + 1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(*host ? host : NULL, port, &hints, &res);
    if (rc != 0)
        return mesh_err_set(err, MESH_INVALID, "listen address '%s': %s", addr, gai_strerror(rc));
    int fd = -1;
    int e = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* inherited on accept */
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0)
            break;
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return mesh_err_set(err, MESH_UNAVAILABLE, "cannot listen on %s: %s", addr, strerror(e));
    evutil_make_socket_nonblocking(fd);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    char ip[INET6_ADDRSTRLEN] = "?";
    int p = 0;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        p = ntohs(s6->sin6_port);
        snprintf(bound, bcap, "[%s]:%d", ip, p);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        p = ntohs(s4->sin_port);
        snprintf(bound, bcap, "%s:%d", ip, p);
    }
    *out_fd = fd;
    return MESH_OK;
}

static void *worker_main(void *arg)
{
    mesh_thread_name("http", NULL);
    worker_t *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

mesh_status_t mesh_http_start(mesh_node_t *n, mesh_err_t *err)
{
    mesh_http_t *h = calloc(1, sizeof *h);
    if (h == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    h->node = n;
    h->fd = -1;
    mesh_status_t st =
        bind_listener(n->opts.listen, &h->fd, n->listen_addr, sizeof n->listen_addr, err);
    if (st != MESH_OK) {
        free(h);
        return st;
    }
    h->nworkers = (int)n->opts.http_threads;
    h->workers = calloc((size_t)h->nworkers, sizeof *h->workers);
    if (h->workers == NULL) {
        close(h->fd);
        free(h);
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    n->http = h;
    for (int i = 0; i < h->nworkers; i++) {
        worker_t *w = &h->workers[i];
        w->h = h;
        w->base = event_base_new();
        w->http = w->base ? evhttp_new(w->base) : NULL;
        int fd = dup(h->fd);
        if (w->http == NULL || fd < 0) {
            if (fd >= 0)
                close(fd);
            st = mesh_err_set(err, MESH_NOMEM, "cannot start HTTP worker");
            break;
        }
        evhttp_set_max_body_size(w->http, (ev_ssize_t)n->opts.max_body);
        evhttp_set_max_headers_size(w->http, 64 * 1024);
        evhttp_set_timeout(w->http, 120);
        evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                                EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
        evhttp_set_gencb(w->http, on_request, w);
        if (h->nworkers > 1 && (w->accept_timer = evtimer_new(w->base, accept_resume, w)) == NULL) {
            close(fd);
            st = mesh_err_set(err, MESH_NOMEM, "cannot start HTTP worker");
            break;
        }
        evhttp_set_bevcb(w->http, conn_bev, w);
        w->bound = evhttp_accept_socket_with_handle(w->http, fd);
        if (w->bound == NULL) {
            close(fd);
            st = mesh_err_set(err, MESH_UNAVAILABLE, "cannot accept on %s", n->listen_addr);
            break;
        }
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            st = mesh_err_set(err, MESH_NOMEM, "cannot start HTTP worker thread");
            break;
        }
    }
    if (st != MESH_OK) {
        mesh_http_stop(h);
        n->http = NULL;
        return st;
    }
    return MESH_OK;
}

void mesh_http_metrics(mesh_http_t *h, mesh_buf_t *out)
{
    if (h == NULL)
        return;
    mesh_metrics_help(out, "meshd_http_connections_accepted_total", "counter",
                      "Connections accepted, by HTTP worker thread.");
    for (int i = 0; i < h->nworkers; i++)
        mesh_buf_printf(out, "meshd_http_connections_accepted_total{worker=\"%d\"} %llu\n", i,
                        (unsigned long long)atomic_load(&h->workers[i].accepted));
}

static void stop_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_t *w = arg;
    if (atomic_load(&w->inflight) == 0 || ++w->stop_polls > 100) {
        event_base_loopbreak(w->base);
        return;
    }
    struct timeval tv = {0, 50000};
    evtimer_add(w->stop_timer, &tv);
}

static void stop_begin(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_t *w = arg;
    if (w->bound) {
        evhttp_del_accept_socket(w->http, w->bound);
        w->bound = NULL;
    }
    w->stop_timer = evtimer_new(w->base, stop_poll, w);
    struct timeval tv = {0, 0};
    evtimer_add(w->stop_timer, &tv);
}

void mesh_http_stop(mesh_http_t *h)
{
    if (h == NULL)
        return;
    for (int i = 0; i < h->nworkers; i++) {
        worker_t *w = &h->workers[i];
        if (w->thread) {
            struct timeval now = {0, 0};
            event_base_once(w->base, -1, EV_TIMEOUT, stop_begin, w, &now);
        }
    }
    for (int i = 0; i < h->nworkers; i++) {
        worker_t *w = &h->workers[i];
        if (w->thread)
            pthread_join(w->thread, NULL);
        if (w->stop_timer)
            event_free(w->stop_timer);
        if (w->accept_timer)
            event_free(w->accept_timer);
        if (w->http)
            evhttp_free(w->http);
        if (w->base)
            event_base_free(w->base);
    }
    if (h->fd >= 0)
        close(h->fd);
    free(h->workers);
    free(h);
}
