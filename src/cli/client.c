/*
 * client.c - the libcurl side of meshctl (see client.h).
 *
 * One easy handle, reset and configured per request, so the connection to the node stays
 * open across requests. A request never follows redirects (the token must not travel to
 * another host) and only speaks http and https. The idle timeout is enforced in the
 * transfer-info callback: it notes when bytes last moved in either direction and stops the
 * transfer once nothing has moved for the timeout, so a slow but steady query result is
 * never cut while a hung server is.
 *
 * TLS: TLS 1.2 at least. The node's certificate is checked by libcurl against --cacert (or
 * the system's CAs), or by the TLS module's hook on libcurl's SSL_CTX
 * (CURLOPT_SSL_CTX_FUNCTION) against the pinned fingerprints; the hook also records the
 * fingerprint the node presented, so a failure can say what it was and how to trust it.
 * A TLS failure is never failed over to the next URL: a node that cannot prove who it is
 * is not a dead node.
 */
#include "cli/client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "tls/tls.h"

#define MAX_URLS        16
#define MAX_ERROR_BODY  ((size_t)1 << 20) /* bytes of an error answer kept for decoding */
#define CONNECT_TIMEOUT (10 * MESH_NS_PER_SEC)
#define SECRET_ANSWER   ((size_t)16 << 10) /* bytes reserved for an answer holding a token */

struct mesh_client {
    CURL *curl;
    char *urls[MAX_URLS]; /* base URLs without a trailing '/' */
    size_t nurls;
    size_t cur;      /* index of the URL that answered last */
    char *auth;      /* "Authorization: Bearer <token>" or NULL; wiped on destroy */
    int64_t timeout; /* ns of idle transfer before giving up; 0: none */
    char ua[64];     /* User-Agent */
    char *cacert;    /* PEM CA file or NULL */
    char *cert;      /* PEM client certificate or NULL */
    char *key;       /* its key or NULL */
    uint8_t pins[MESH_TLS_MAX_PINS][MESH_TLS_FP_LEN];
    size_t npins;
    mesh_tls_client_check_t check; /* state of the last handshake's certificate check */
};

/* State of one transfer, shared with the callbacks. */
typedef struct xfer {
    mesh_client_t *c;
    const mesh_client_req_t *req;
    mesh_client_result_t *res;
    int64_t last_move; /* monotonic ns when bytes last moved */
    curl_off_t last_dl, last_ul;
    bool stalled;
    bool started; /* a 2xx body began */
} xfer_t;

static int curl_users;

/* A copy of an optional setting (NULL for NULL or ""); false when out of memory. */
static bool copy_opt(const char *s, char **out)
{
    *out = NULL;
    if (s == NULL || *s == '\0')
        return true;
    return (*out = mesh_strdup(s)) != NULL;
}

mesh_status_t mesh_client_create(const char *urls, const char *token, int64_t timeout_ns,
                                 const mesh_client_tls_t *tls, mesh_client_t **out, mesh_err_t *err)
{
    *out = NULL;
    mesh_client_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    mesh_status_t st = MESH_OK;
    const char *p = urls ? urls : "";
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '/'))
            n--;
        bool scheme = (n > 7 && strncasecmp(p, "http://", 7) == 0) ||
                      (n > 8 && strncasecmp(p, "https://", 8) == 0);
        if (!scheme) {
            st = mesh_err_set(err, MESH_INVALID,
                              "URL '%.*s' must start with http:// or https:// (e.g. "
                              "https://127.0.0.1:7070)",
                              (int)(n > 200 ? 200 : n), p);
            goto err;
        }
        if (c->nurls == MAX_URLS) {
            st = mesh_err_set(err, MESH_INVALID, "at most %d URLs", MAX_URLS);
            goto err;
        }
        if ((c->urls[c->nurls++] = mesh_strndup(p, n)) == NULL) {
            st = mesh_err_set(err, MESH_NOMEM, "out of memory");
            goto err;
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    if (token && *token) {
        size_t n = strlen("Authorization: Bearer ") + strlen(token) + 1;
        if ((c->auth = malloc(n)) == NULL) {
            st = mesh_err_set(err, MESH_NOMEM, "out of memory");
            goto err;
        }
        snprintf(c->auth, n, "Authorization: Bearer %s", token);
    }
    c->timeout = timeout_ns;
    snprintf(c->ua, sizeof c->ua, "meshctl/%s", MESH_VERSION);
    if (tls) {
        if (!copy_opt(tls->cacert, &c->cacert) || !copy_opt(tls->cert, &c->cert) ||
            !copy_opt(tls->key, &c->key)) {
            st = mesh_err_set(err, MESH_NOMEM, "out of memory");
            goto err;
        }
        if (tls->pins && *tls->pins &&
            (st = mesh_tls_pins_parse(tls->pins, c->pins, MESH_TLS_MAX_PINS, &c->npins, err)) !=
                MESH_OK) {
            mesh_err_prefix(err, "--pin: ");
            goto err;
        }
    }
    c->check.pins = c->pins;
    c->check.npins = c->npins;
    if (curl_users++ == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        curl_users--;
        st = mesh_err_set(err, MESH_INTERNAL, "cannot initialise libcurl");
        goto err;
    }
    if ((c->curl = curl_easy_init()) == NULL) {
        mesh_client_destroy(c);
        return mesh_err_set(err, MESH_NOMEM, "cannot create a libcurl handle");
    }
    *out = c;
    return MESH_OK;
err:
    for (size_t i = 0; i < c->nurls; i++)
        free(c->urls[i]);
    free(c->auth);
    free(c->cacert);
    free(c->cert);
    free(c->key);
    free(c);
    return st;
}

void mesh_client_destroy(mesh_client_t *c)
{
    if (c == NULL)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    for (size_t i = 0; i < c->nurls; i++)
        free(c->urls[i]);
    if (c->auth) {
        explicit_bzero(c->auth, strlen(c->auth));
        free(c->auth);
    }
    free(c->cacert);
    free(c->cert);
    free(c->key);
    free(c);
    if (--curl_users == 0)
        curl_global_cleanup();
}

const char *mesh_client_url(const mesh_client_t *c)
{
    return c->urls[c->cur];
}

const char *mesh_client_lib_version(void)
{
    return curl_version_info(CURLVERSION_NOW)->version;
}

mesh_status_t mesh_client_escape(mesh_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    mesh_status_t st = MESH_OK;
    for (const unsigned char *p = (const unsigned char *)s; *p && st == MESH_OK; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            st = mesh_buf_addc(b, (char)*p);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            st = mesh_buf_add(b, e, 3);
        }
    }
    return st;
}

void mesh_client_result_free(mesh_client_result_t *res)
{
    if (res == NULL)
        return;
    json_decref(res->details);
    res->details = NULL;
    if (res->secret && res->body.data)
        explicit_bzero(res->body.data, res->body.cap);
    mesh_buf_free(&res->body);
}

/* ---- callbacks ---- */

static bool is_2xx(long code)
{
    return code >= 200 && code < 300;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    xfer_t *x = arg;
    size_t n = size * nmemb;
    long code = 0;
    curl_easy_getinfo(x->c->curl, CURLINFO_RESPONSE_CODE, &code);
    if (is_2xx(code)) {
        x->started = true;
        if (x->req->sink) {
            if (!x->req->sink(x->req->sink_arg, p, n)) {
                x->res->sink_stopped = true;
                return 0;
            }
            return n;
        }
        if (mesh_buf_add(&x->res->body, p, n) != MESH_OK) {
            x->res->too_large = true;
            return 0;
        }
        return n;
    }
    /* an error answer: keep its start for decoding, drop the rest */
    size_t room = x->res->body.len < MAX_ERROR_BODY ? MAX_ERROR_BODY - x->res->body.len : 0;
    if (room && mesh_buf_add(&x->res->body, p, n < room ? n : room) != MESH_OK)
        return 0;
    return n;
}

/* The value of header `name` in the header line p (n bytes), trimmed; false if another. */
static bool header_value(const char *p, size_t n, const char *name, const char **v, size_t *vl)
{
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(p, name, nl) != 0 || p[nl] != ':')
        return false;
    *v = p + nl + 1;
    *vl = n - nl - 1;
    while (*vl && (**v == ' ' || **v == '\t')) {
        (*v)++;
        (*vl)--;
    }
    while (*vl && ((*v)[*vl - 1] == '\r' || (*v)[*vl - 1] == '\n' || (*v)[*vl - 1] == ' '))
        (*vl)--;
    return true;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
    xfer_t *x = arg;
    size_t n = size * nmemb;
    const char *v;
    size_t vl;
    if (header_value(p, n, "X-Request-Id", &v, &vl)) {
        snprintf(x->res->request_id, sizeof x->res->request_id, "%.*s", (int)vl, v);
    } else if (header_value(p, n, "X-Meshd-Accepted", &v, &vl)) {
        int64_t k;
        if (mesh_parse_i64(v, vl, &k) == MESH_OK)
            x->res->hdr_accepted = k;
    } else if (header_value(p, n, "X-Meshd-Quarantined", &v, &vl)) {
        int64_t k;
        if (mesh_parse_i64(v, vl, &k) == MESH_OK)
            x->res->hdr_quarantined = k;
    }
    return n;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)ultotal;
    xfer_t *x = arg;
    int64_t now = mesh_mono_ns();
    if (dlnow != x->last_dl || ulnow != x->last_ul) {
        x->last_dl = dlnow;
        x->last_ul = ulnow;
        x->last_move = now;
        return 0;
    }
    if (x->c->timeout > 0 && now - x->last_move > x->c->timeout) {
        x->stalled = true;
        return 1;
    }
    return 0;
}

/* libcurl's CURLOPT_SSL_CTX_FUNCTION: the certificate check of the TLS module. */
static CURLcode on_ssl_ctx(CURL *h, void *ssl_ctx, void *arg)
{
    (void)h;
    mesh_tls_client_hook(ssl_ctx, arg);
    return CURLE_OK;
}

/* ---- one attempt against one base URL ---- */

/* Appends a header line to *list; false when out of memory (the list stays valid). */
static bool add_line(struct curl_slist **list, const char *text)
{
    struct curl_slist *t = curl_slist_append(*list, text);
    if (t == NULL)
        return false;
    *list = t;
    return true;
}

/* Appends "name: value" when value is not NULL. */
static bool add_header(struct curl_slist **list, const char *name, const char *value)
{
    if (value == NULL)
        return true;
    char line[512];
    snprintf(line, sizeof line, "%s: %s", name, value);
    return add_line(list, line);
}

static CURLcode perform(mesh_client_t *c, size_t idx, const mesh_client_req_t *req, xfer_t *x,
                        char *errbuf)
{
    CURL *h = c->curl;
    curl_easy_reset(h);
    mesh_buf_t url;
    mesh_buf_init(&url, 64 * 1024);
    if (mesh_buf_adds(&url, c->urls[idx]) != MESH_OK || mesh_buf_adds(&url, req->path) != MESH_OK) {
        mesh_buf_free(&url);
        snprintf(errbuf, CURL_ERROR_SIZE, "the request URL is too long");
        return CURLE_URL_MALFORMAT;
    }
    struct curl_slist *hdrs = NULL;
    bool ok = (c->auth == NULL || add_line(&hdrs, c->auth)) &&
              add_header(&hdrs, "Content-Type", req->content_type) &&
              add_header(&hdrs, "Accept", req->accept) &&
              add_header(&hdrs, "Idempotency-Key", req->idempotency_key) &&
              add_line(&hdrs, "Expect:"); /* no 100-continue wait before a batch */
    if (!ok) {
        curl_slist_free_all(hdrs);
        mesh_buf_free(&url);
        snprintf(errbuf, CURL_ERROR_SIZE, "out of memory");
        return CURLE_OUT_OF_MEMORY;
    }
    int64_t connect_ns =
        c->timeout > 0 && c->timeout < CONNECT_TIMEOUT ? c->timeout : CONNECT_TIMEOUT;
    curl_easy_setopt(h, CURLOPT_URL, url.data);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, c->ua);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(connect_ns / 1000000));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (c->cacert) { /* this file only, not the system's CAs */
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
        curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
    } else if (c->npins) { /* the pin is the trust: no CA, no name */
        curl_easy_setopt(h, CURLOPT_CAINFO, NULL);
        curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (c->cert) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert);
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
        if (c->key)
            curl_easy_setopt(h, CURLOPT_SSLKEY, c->key);
    }
    c->check.seen[0] = '\0';
    c->check.pin_mismatch = false;
    c->check.cert_requested = false;
    if ((curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx) != CURLE_OK ||
         curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, &c->check) != CURLE_OK) &&
        c->npins) {
        curl_slist_free_all(hdrs);
        mesh_buf_free(&url);
        snprintf(errbuf, CURL_ERROR_SIZE, "this libcurl cannot check pinned certificates");
        return CURLE_NOT_BUILT_IN;
    }
    if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        if (strcmp(req->method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
        if (req->body || strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0) {
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        }
    }
    x->last_move = mesh_mono_ns();
    x->last_dl = x->last_ul = 0;
    x->stalled = false;
    x->started = false;
    errbuf[0] = '\0';
    CURLcode rc = curl_easy_perform(h);
    /* the handle outlives this call: leave it no pointers to the stack or to freed lists */
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    mesh_buf_free(&url);
    return rc;
}

/* True when no connection was made: nothing reached the server, another URL may be tried. */
static bool connect_failed(CURL *h, CURLcode rc)
{
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
        rc == CURLE_COULDNT_RESOLVE_PROXY)
        return true;
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        curl_off_t connected = 0;
        curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connected);
        return connected == 0;
    }
    return false;
}

mesh_status_t mesh_client_status_of(const char *word, int http)
{
    for (int i = 0; i < MESH_STATUS__COUNT; i++)
        if (strcmp(mesh_status_name((mesh_status_t)i), word) == 0)
            return (mesh_status_t)i;
    return mesh_status_from_http(http);
}

/* Decodes an error answer: meshd's {"error":{"code","message","details"}}, InfluxDB v1's
 * {"error":"..."} and v2's {"code","message"}, or anything else by its HTTP status. */
static void decode_error(mesh_client_result_t *res)
{
    res->status = mesh_status_from_http(res->http);
    json_t *j = res->body.len ? json_loadb(res->body.data, res->body.len, 0, NULL) : NULL;
    json_t *e = json_object_get(j, "error");
    const char *msg = NULL;
    if (json_is_object(e)) {
        const char *code = json_string_value(json_object_get(e, "code"));
        msg = json_string_value(json_object_get(e, "message"));
        if (code) {
            snprintf(res->code, sizeof res->code, "%s", code);
            res->status = mesh_client_status_of(code, res->http);
        }
        json_t *d = json_object_get(e, "details");
        if (d && !json_is_null(d))
            res->details = json_incref(d);
    } else if (json_is_string(e)) {
        msg = json_string_value(e);
    } else if (json_is_string(json_object_get(j, "message"))) {
        msg = json_string_value(json_object_get(j, "message"));
    }
    if (res->code[0] == '\0')
        snprintf(res->code, sizeof res->code, "%s", mesh_status_name(res->status));
    if (msg) {
        snprintf(res->msg, sizeof res->msg, "%s", msg);
    } else {
        /* not meshd's JSON (a proxy?): name the status and the start of the body */
        size_t n = res->body.len;
        const char *b = res->body.data ? res->body.data : "";
        const char *nl = memchr(b, '\n', n);
        if (nl)
            n = (size_t)(nl - b);
        snprintf(res->msg, sizeof res->msg, "HTTP %d from %s%s%.*s", res->http, res->url,
                 n ? ": " : "", (int)(n > 200 ? 200 : n), b);
    }
    if (res->http == 503)
        res->retryable = true;
    json_decref(j);
}

static bool says(const char *why, const char *what)
{
    return strstr(why, what) != NULL;
}

/* Explains a TLS failure (rc, libcurl's message why) of a request that got no answer, in res
 * (status and message); false when rc is not a TLS failure. */
static bool tls_failure(const mesh_client_t *c, CURLcode rc, const char *why,
                        mesh_client_result_t *res)
{
    const char *url = res->url;
    size_t cap = sizeof res->msg;
    switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
        res->status = MESH_UNAUTHENTICATED;
        if (c->check.pin_mismatch)
            snprintf(res->msg, cap,
                     "the TLS certificate of meshd at %s (%s) matches no pinned fingerprint "
                     "(--pin, MESH_PIN); if the node's certificate was replaced, pin the "
                     "fingerprint the node now logs at start",
                     url, c->check.seen);
        else if (c->cacert)
            snprintf(res->msg, cap,
                     "cannot verify the TLS certificate of meshd at %s with --cacert %s: %s (it "
                     "must come from a CA in that file, and the host in the URL must be one of "
                     "its names)",
                     url, c->cacert, why);
        else
            snprintf(res->msg, cap,
                     "cannot verify the TLS certificate of meshd at %s: %s. To trust a node's "
                     "own certificate, pin its fingerprint with --pin sha256:HEX (MESH_PIN): "
                     "meshd logs it at every start ('fingerprint sha256:...'), or run 'openssl "
                     "x509 -in DATA_DIR/tls/cert.pem -noout -fingerprint -sha256' on the node; or "
                     "give that cert.pem file with --cacert (MESH_CACERT). This node presented "
                     "%s: compare it with the node's log before you pin it",
                     url, why, c->check.seen[0] ? c->check.seen : "no certificate");
        return true;
    case CURLE_SSL_CACERT_BADFILE:
        res->status = MESH_INVALID;
        snprintf(res->msg, cap, "cannot use the CA file %s: %s",
                 c->cacert ? c->cacert : "(libcurl's default)", why);
        return true;
    case CURLE_SSL_CERTPROBLEM:
        res->status = MESH_INVALID;
        snprintf(res->msg, cap, "cannot use the client certificate %s: %s", c->cert ? c->cert : "",
                 why);
        return true;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
        if (strncasecmp(url, "https://", 8) != 0)
            return false;
        break;
    default:
        return false;
    }
    if (says(why, "certificate required") || (!c->cert && c->check.cert_requested)) {
        res->status = MESH_UNAUTHENTICATED;
        snprintf(res->msg, cap,
                 "meshd at %s requires a client certificate: give --cert FILE and --key FILE "
                 "(MESH_CERT, MESH_KEY) from a CA it trusts (%s)",
                 url, why);
    } else if (c->cert && (says(why, "unknown ca") || says(why, "bad certificate") ||
                           says(why, "certificate unknown") || says(why, "certificate expired") ||
                           says(why, "unsupported certificate") || says(why, "access denied"))) {
        res->status = MESH_UNAUTHENTICATED;
        snprintf(res->msg, cap, "meshd at %s refused the client certificate %s: %s", url, c->cert,
                 why);
    } else if (c->cert && rc != CURLE_SSL_CONNECT_ERROR) {
        /* the node checks our certificate after the handshake (TLS 1.3): its refusal comes
         * as an alert or, when the request was on its way, as a reset */
        res->status = MESH_UNAUTHENTICATED;
        snprintf(res->msg, cap,
                 "meshd at %s closed the connection after the handshake: it refused the client "
                 "certificate %s, or it failed (%s)",
                 url, c->cert, why);
    } else if (says(why, "wrong version number") || says(why, "packet length too long")) {
        res->status = MESH_UNAVAILABLE;
        snprintf(res->msg, cap,
                 "meshd at %s does not answer in TLS (%s): a node started with tls = off "
                 "speaks plain HTTP, reached with an http:// URL",
                 url, why);
    } else if (rc == CURLE_SSL_CONNECT_ERROR) {
        res->status = MESH_UNAVAILABLE;
        snprintf(res->msg, cap, "TLS handshake with meshd at %s failed: %s", url, why);
    } else {
        return false;
    }
    return true;
}

mesh_status_t mesh_client_do(mesh_client_t *c, const mesh_client_req_t *req,
                             mesh_client_result_t *res)
{
    memset(res, 0, sizeof *res);
    res->hdr_accepted = res->hdr_quarantined = -1;
    res->secret = req->secret;
    mesh_buf_init(&res->body, req->max_body ? req->max_body : MESH_CLIENT_MAX_BODY);
    if (req->secret) /* room up front: no reallocation leaves a copy of the secret behind */
        (void)mesh_buf_reserve(&res->body, SECRET_ANSWER);
    xfer_t x = {.c = c, .req = req, .res = res};
    char errbuf[CURL_ERROR_SIZE];
    char failures[768] = "";
    size_t flen = 0;
    CURLcode rc = CURLE_COULDNT_CONNECT;
    size_t idx = c->cur;
    for (size_t k = 0; k < c->nurls; k++) {
        idx = (c->cur + k) % c->nurls;
        res->url = c->urls[idx];
        rc = perform(c, idx, req, &x, errbuf);
        if (!connect_failed(c->curl, rc))
            break;
        if (flen < sizeof failures)
            flen += (size_t)snprintf(failures + flen, sizeof failures - flen, "%s%s: %s",
                                     flen ? "; " : "", c->urls[idx],
                                     errbuf[0] ? errbuf : curl_easy_strerror(rc));
        mesh_buf_reset(&res->body);
    }
    if (connect_failed(c->curl, rc)) {
        res->retryable = true;
        snprintf(res->msg, sizeof res->msg, "cannot reach meshd at %s", failures);
        return res->status = MESH_UNAVAILABLE;
    }
    c->cur = idx;
    res->reached = true;
    long code = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
    res->http = (int)code;
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (rc == CURLE_OK) {
        if (is_2xx(code))
            return res->status = MESH_OK;
        decode_error(res);
        return res->status;
    }
    if (code == 0 && tls_failure(c, rc, why, res))
        return res->status;
    if (x.stalled) {
        res->retryable = true;
        snprintf(res->msg, sizeof res->msg,
                 "no answer from meshd at %s for %.1f s (raise --timeout, or 0 for no limit)",
                 res->url, (double)c->timeout / 1e9);
        return res->status = MESH_TIMEOUT;
    }
    if (res->sink_stopped) {
        snprintf(res->msg, sizeof res->msg, "the transfer from %s was stopped", res->url);
        return res->status = MESH_IO;
    }
    if (res->too_large) {
        snprintf(res->msg, sizeof res->msg, "the answer from %s is larger than %zu MiB", res->url,
                 res->body.max >> 20);
        return res->status = MESH_TOO_LARGE;
    }
    res->retryable = true;
    if (is_2xx(code) && x.started) {
        res->cut = true;
        snprintf(res->msg, sizeof res->msg, "the answer from %s was cut short: %s", res->url, why);
        return res->status = MESH_IO;
    }
    if (code && !is_2xx(code)) {
        decode_error(res);
        return res->status;
    }
    if (rc == CURLE_GOT_NOTHING)
        snprintf(res->msg, sizeof res->msg, "meshd at %s closed the connection without an answer%s",
                 res->url,
                 strncasecmp(res->url, "http://", 7) == 0
                     ? " (a node with TLS on, the default, is reached with an https:// URL)"
                     : "");
    else
        snprintf(res->msg, sizeof res->msg, "request to %s failed: %s", res->url, why);
    return res->status = MESH_UNAVAILABLE;
}
