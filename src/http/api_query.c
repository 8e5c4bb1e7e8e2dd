/*
 * api_query.c - POST /v1/query {"sql": "...", "format": "json|ndjson|csv"} (or GET ?sql=).
 *
 * Results are produced in chunks of about CHUNK bytes. A result that fits in the first
 * chunk is sent as one ordinary response; a longer one is streamed with chunked transfer
 * encoding, producing the next chunk only when the previous one has been written to the
 * socket, so a 10M-row result never sits in memory and a slow client slows the query
 * instead of growing a buffer. A client that goes away cancels the query.
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "http/internal.h"
#include "query/request.h"

#define CHUNK (64 * 1024)

typedef struct qstream {
    mesh_req_t *r;
    mesh_query_t *q;
    mesh_writer_t w;
    mesh_buf_t buf;
    struct evhttp_connection *conn;
    int64_t t0;
    bool done;
    char *sql; /* for the audit: at most MESH_AUDIT_MAX_SQL bytes of it */
    size_t sql_len;
} qstream_t;

static double elapsed_ms(const qstream_t *qs)
{
    return (double)(mesh_mono_ns() - qs->t0) / 1e6;
}

/*
 * Audits a query: its SQL text (the first MESH_AUDIT_MAX_SQL bytes), the products it read,
 * the rows it returned and the storage scanned, how long it took, the format and how it
 * ended, the policy version it ran under, and the masks and row filters its product tables
 * applied ("masks", "filters": one text each, naming the policy).
 */
static void audit_query(mesh_req_t *r, const char *sql, size_t sql_len, size_t sql_total,
                        mesh_query_t *q, double ms, const mesh_err_t *err)
{
    if (r->node->audit == NULL)
        return;
    mesh_buf_t d;
    mesh_buf_init(&d, MESH_BUF_UNLIMITED);
    mesh_buf_adds(&d, "{\"sql\":");
    mesh_buf_add_json_str(&d, sql ? sql : "", sql ? sql_len : 0);
    if (sql_total > sql_len)
        mesh_buf_printf(&d, ",\"sql_truncated\":true,\"sql_bytes\":%zu", sql_total);
    mesh_buf_adds(&d, ",\"products\":[");
    const char *p = q ? mesh_query_products(q) : "";
    for (int k = 0; *p; k++) {
        size_t n = strcspn(p, ",");
        if (k)
            mesh_buf_addc(&d, ',');
        mesh_buf_add_json_str(&d, p, n);
        p += n + (p[n] == ',');
    }
    mesh_buf_printf(&d, "],\"rows\":%lld,\"scanned\":%lld,\"elapsed_ms\":%.3f",
                    (long long)(q ? mesh_query_rows(q) : 0),
                    (long long)(q ? mesh_query_scanned(q) : 0), ms);
    /* the masks and row filters the product tables applied ("m..." and "f..." lines) */
    const char *pol = q ? mesh_query_policies(q) : "";
    for (int kind = 0; kind < 2; kind++) {
        mesh_buf_adds(&d, kind ? "],\"filters\":[" : ",\"masks\":[");
        int k = 0;
        for (const char *l = pol; *l;) {
            size_t n = strcspn(l, "\n");
            if (n > 1 && l[0] == (kind ? 'f' : 'm')) {
                if (k++)
                    mesh_buf_addc(&d, ',');
                mesh_buf_add_json_str(&d, l + 1, n - 1);
            }
            l += n + (l[n] == '\n');
        }
    }
    mesh_buf_addc(&d, ']');
    bool failed = err && err->code != MESH_OK;
    if (failed) {
        mesh_buf_adds(&d, ",\"error\":");
        mesh_buf_add_json_str(&d, err->msg, strnlen(err->msg, sizeof err->msg));
    }
    mesh_buf_addc(&d, '}');
    mesh_audit_rec_t rec = {.action = MESH_AUDIT_QUERY,
                            .status = failed ? mesh_status_http(err->code) : 200,
                            .details = d.data,
                            .policy_version = mesh_policy_version(mesh_req_policy(r))};
    mesh_req_audit(r, &rec);
    mesh_buf_free(&d);
}

static void qs_free(qstream_t *qs, const mesh_err_t *err)
{
    bool failed = err && err->code != MESH_OK;
    audit_query(qs->r, qs->sql, qs->sql ? strlen(qs->sql) : 0, qs->sql_len, qs->q, elapsed_ms(qs),
                err);
    free(qs->sql);
    mesh_metrics_query(qs->r->node->metrics, mesh_query_rows(qs->q), elapsed_ms(qs) / 1000, failed,
                       failed && err->code == MESH_TIMEOUT);
    LOG_DEBUG("query", "%s read %s: %lld rows in %.1f ms%s%s", qs->r->who.name,
              mesh_query_products(qs->q), (long long)mesh_query_rows(qs->q), elapsed_ms(qs),
              failed ? ", failed: " : "", failed ? err->msg : "");
    mesh_query_finish(qs->q);
    mesh_buf_free(&qs->buf);
    free(qs);
}

/* Steps the query until the buffer holds a chunk or the query ends. Returns 1 when the
 * query has more rows, 0 when it ended (err set if it failed). */
static int fill(qstream_t *qs, mesh_err_t *err)
{
    while (qs->buf.len < CHUNK) {
        int rc = mesh_query_step(qs->q, err);
        if (rc == 1) {
            if (mesh_writer_row(&qs->w, qs->q, &qs->buf) != MESH_OK) {
                mesh_err_set(err, MESH_NOMEM, "out of memory formatting a row");
                return 0;
            }
            continue;
        }
        return 0;
    }
    return 1;
}

static void on_close(struct evhttp_connection *conn, void *arg);

static void abort_connection(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    evhttp_connection_free(arg);
}

/* Called when the last chunk of a failed CSV result has reached the socket: closing now,
 * without the terminating chunk, tells the client the transfer is incomplete. The close is
 * deferred to the next loop pass: libevent is still inside the connection's callback. */
static void close_after_flush(struct evhttp_connection *conn, void *arg)
{
    (void)arg;
    event_base_once(evhttp_connection_get_base(conn), -1, EV_TIMEOUT, abort_connection, conn,
                    &(struct timeval){0, 0});
}

static void pump(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    qstream_t *qs = arg;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_buf_reset(&qs->buf);
    int more = fill(qs, &err);
    struct evbuffer *b = evbuffer_new();
    if (!more) {
        if (err.code != MESH_OK && qs->w.fmt == MESH_OUT_CSV) {
            /* CSV has no place for an error: end the response abnormally so the client
             * sees a truncated transfer rather than a short but complete-looking file */
            if (qs->buf.len)
                evbuffer_add(b, qs->buf.data, qs->buf.len);
            evhttp_connection_set_closecb(qs->conn, NULL, NULL);
            evhttp_send_reply_chunk_with_cb(qs->r->ev, b, close_after_flush, NULL);
            evbuffer_free(b);
            mesh_req_t *r = qs->r;
            qs_free(qs, &err);
            mesh_req_done(r);
            return;
        }
        mesh_writer_end(&qs->w, qs->q, &err, elapsed_ms(qs), &qs->buf);
        evbuffer_add(b, qs->buf.data, qs->buf.len);
        evhttp_send_reply_chunk(qs->r->ev, b);
        evbuffer_free(b);
        evhttp_connection_set_closecb(qs->conn, NULL, NULL);
        evhttp_send_reply_end(qs->r->ev);
        mesh_req_t *r = qs->r;
        qs_free(qs, &err);
        mesh_req_done(r);
        return;
    }
    evbuffer_add(b, qs->buf.data, qs->buf.len);
    evhttp_send_reply_chunk_with_cb(qs->r->ev, b, pump, qs);
    evbuffer_free(b);
}

static void on_close(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    qstream_t *qs = arg;
    /* the client went away mid-result: libevent frees the request itself */
    mesh_err_t err;
    mesh_err_set(&err, MESH_TIMEOUT, "client closed the connection");
    mesh_req_t *r = qs->r;
    qs_free(qs, &err);
    mesh_req_done(r);
}

void mesh_api_query(mesh_req_t *r)
{
    mesh_node_t *n = r->node;
    mesh_query_request_t qr;
    mesh_err_t err;
    mesh_err_clear(&err);
    memset(&qr, 0, sizeof qr);
    if (evhttp_request_get_command(r->ev) == EVHTTP_REQ_POST) {
        const char *p;
        size_t len;
        if (mesh_req_body(r, &p, &len) != MESH_OK)
            return;
        const char *ct = mesh_req_header(r, "Content-Type");
        bool raw =
            ct && (strncmp(ct, "application/sql", 15) == 0 || strncmp(ct, "text/plain", 10) == 0);
        if (mesh_query_request_parse(p, len, raw, &qr, &err) != MESH_OK) {
            mesh_req_error(r, err.code, err.msg, NULL);
            return;
        }
    } else {
        const char *sql = mesh_req_arg(r, "sql");
        if (sql && mesh_query_request_parse(sql, strlen(sql), true, &qr, &err) != MESH_OK) {
            mesh_req_error(r, err.code, err.msg, NULL);
            return;
        }
    }
    /* a caller may only tighten the node's limits */
    int64_t timeout_ns = n->opts.query_timeout, max_rows = n->opts.query_max_rows;
    if (qr.timeout_ms > 0 && qr.timeout_ms < timeout_ns / 1000000)
        timeout_ns = qr.timeout_ms * 1000000;
    if (qr.min_domain[0]) {
        /* read-your-writes: wait (within the query's time limit) until this node has applied
         * the domain's stream up to the position a write answered */
        mesh_snapshot_t *s = mesh_req_snapshot(r);
        const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, qr.min_domain);
        mesh_status_t wst =
            sd == NULL ? MESH_NOT_FOUND
                       : mesh_domain_wait_stream(sd->dom, (uint64_t)qr.min_seq, timeout_ns);
        if (wst != MESH_OK) {
            mesh_req_errorf(r, wst == MESH_NOT_FOUND ? MESH_NOT_FOUND : MESH_UNAVAILABLE,
                            wst == MESH_NOT_FOUND
                                ? "min_position: domain %s is not hosted on this node"
                                : "min_position: this node has not applied stream MESHD_DOM_%s "
                                  "up to the requested sequence in time; retry or ask another "
                                  "node",
                            qr.min_domain);
            mesh_query_request_free(&qr);
            return;
        }
    }
    if (qr.max_rows > 0 && (max_rows == 0 || qr.max_rows < max_rows))
        max_rows = qr.max_rows;
    const char *format = qr.format[0] ? qr.format : mesh_req_arg(r, "format");
    const char *time_format = qr.time_format[0] ? qr.time_format : mesh_req_arg(r, "time_format");
    if (format == NULL) {
        const char *accept = mesh_req_header(r, "Accept");
        if (accept && strstr(accept, "text/csv"))
            format = "csv";
        else if (accept && (strstr(accept, "ndjson") || strstr(accept, "jsonl")))
            format = "ndjson";
    }
    mesh_outfmt_t fmt;
    bool time_ns = false;
    if (mesh_outfmt_parse(format, &fmt) != MESH_OK) {
        mesh_req_errorf(r, MESH_INVALID, "format '%.20s': expected json, ndjson or csv", format);
        mesh_query_request_free(&qr);
        return;
    }
    if (time_format && strcmp(time_format, "ns") == 0) {
        time_ns = true;
    } else if (time_format && strcmp(time_format, "iso") != 0) {
        mesh_req_errorf(r, MESH_INVALID, "time_format '%.20s': expected iso or ns", time_format);
        mesh_query_request_free(&qr);
        return;
    }
    if (qr.sql == NULL || qr.sql_len == 0) {
        mesh_req_errorf(r, MESH_INVALID, "no query: send {\"sql\": \"SELECT ...\"}");
        mesh_query_request_free(&qr);
        return;
    }
    /* what the caller may read is decided product by product inside the query */
    qstream_t *qs = calloc(1, sizeof *qs);
    if (qs == NULL) {
        mesh_query_request_free(&qr);
        mesh_req_errorf(r, MESH_NOMEM, "out of memory");
        return;
    }
    qs->r = r;
    qs->t0 = mesh_mono_ns();
    qs->sql_len = qr.sql_len;
    qs->sql =
        mesh_strndup(qr.sql, qr.sql_len < MESH_AUDIT_MAX_SQL ? qr.sql_len : MESH_AUDIT_MAX_SQL);
    mesh_buf_init(&qs->buf, MESH_BUF_UNLIMITED);
    mesh_query_limits_t lim = {.timeout_ns = timeout_ns, .max_rows = max_rows, .push_ok = true};
    mesh_status_t st = mesh_query_start(n->qpool, mesh_req_snapshot(r), mesh_req_policy(r), &r->who,
                                        qr.sql, qr.sql_len, &lim, &qs->q, &err);
    mesh_query_request_free(&qr);
    if (st != MESH_OK) {
        mesh_metrics_query(n->metrics, 0, (double)(mesh_mono_ns() - qs->t0) / 1e9, 1,
                           st == MESH_TIMEOUT);
        audit_query(r, qs->sql, qs->sql ? strlen(qs->sql) : 0, qs->sql_len, NULL, elapsed_ms(qs),
                    &err);
        free(qs->sql);
        mesh_buf_free(&qs->buf);
        free(qs);
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    mesh_writer_init(&qs->w, fmt, time_ns);
    mesh_writer_begin(&qs->w, qs->q, &qs->buf);
    int more = fill(qs, &err);
    if (!more && err.code != MESH_OK && qs->w.rows == 0) {
        /* failed before the first row: an ordinary error response */
        mesh_req_error(r, err.code, err.msg, NULL);
        qs_free(qs, &err);
        return;
    }
    struct evkeyvalq *oh = evhttp_request_get_output_headers(r->ev);
    evhttp_add_header(oh, "Content-Type", mesh_outfmt_mime(fmt));
    if (!more && (err.code == MESH_OK || fmt != MESH_OUT_CSV)) {
        mesh_writer_end(&qs->w, qs->q, &err, elapsed_ms(qs), &qs->buf);
        mesh_req_reply(r, 200, NULL, qs->buf.data, qs->buf.len);
        qs_free(qs, &err);
        return;
    }
    /* a longer result: stream it */
    mesh_req_stream_begin(r, 200);
    qs->conn = evhttp_request_get_connection(r->ev);
    evhttp_connection_set_closecb(qs->conn, on_close, qs);
    evhttp_send_reply_start(r->ev, 200, "OK");
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, qs->buf.data, qs->buf.len);
    if (!more) {
        /* CSV that failed within the first chunk: send what there is, then cut */
        evhttp_connection_set_closecb(qs->conn, NULL, NULL);
        evhttp_send_reply_chunk_with_cb(r->ev, b, close_after_flush, NULL);
        evbuffer_free(b);
        qs_free(qs, &err);
        mesh_req_done(r);
        return;
    }
    evhttp_send_reply_chunk_with_cb(r->ev, b, pump, qs);
    evbuffer_free(b);
}
