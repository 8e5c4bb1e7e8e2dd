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
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "http/internal.h"

#define CHUNK (64 * 1024)

typedef struct qstream {
    mesh_req_t *r;
    mesh_query_t *q;
    mesh_writer_t w;
    mesh_buf_t buf;
    struct evhttp_connection *conn;
    int64_t t0;
    bool done;
} qstream_t;

static double elapsed_ms(const qstream_t *qs)
{
    return (double)(mesh_mono_ns() - qs->t0) / 1e6;
}

static void qs_free(qstream_t *qs, const mesh_err_t *err)
{
    bool failed = err && err->code != MESH_OK;
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
            evhttp_send_reply_chunk(qs->r->ev, b);
            evbuffer_free(b);
            evhttp_connection_set_closecb(qs->conn, NULL, NULL);
            event_base_once(evhttp_connection_get_base(qs->conn), -1, EV_TIMEOUT, abort_connection,
                            qs->conn, &(struct timeval){0, 0});
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

static bool parse_bool_opt(const char *s, bool *out)
{
    return s == NULL || mesh_parse_bool(s, strlen(s), out) == MESH_OK;
}

void mesh_api_query(mesh_req_t *r)
{
    mesh_node_t *n = r->node;
    const char *sql = NULL, *format = NULL, *time_format = NULL;
    size_t sql_len = 0;
    int64_t timeout_ns = n->opts.query_timeout, max_rows = n->opts.query_max_rows;
    json_t *j = NULL;
    if (evhttp_request_get_command(r->ev) == EVHTTP_REQ_POST) {
        const char *p;
        size_t len;
        if (mesh_req_body(r, &p, &len) != MESH_OK)
            return;
        const char *ct = mesh_req_header(r, "Content-Type");
        if (ct && (strncmp(ct, "application/sql", 15) == 0 || strncmp(ct, "text/plain", 10) == 0)) {
            sql = p;
            sql_len = len;
        } else {
            json_error_t je;
            j = json_loadb(p, len, JSON_REJECT_DUPLICATES, &je);
            if (j == NULL || !json_is_object(j)) {
                json_decref(j);
                if (j == NULL)
                    mesh_req_errorf(r, MESH_PARSE, "malformed JSON at line %d, column %d: %s",
                                    je.line, je.column, je.text);
                else
                    mesh_req_errorf(r, MESH_INVALID, "the body must be {\"sql\": \"...\"}");
                return;
            }
            const char *key;
            json_t *v;
            json_object_foreach(j, key, v)
            {
                if (strcmp(key, "sql") == 0 && json_is_string(v)) {
                    sql = json_string_value(v);
                    sql_len = json_string_length(v);
                } else if (strcmp(key, "format") == 0 && json_is_string(v)) {
                    format = json_string_value(v);
                } else if (strcmp(key, "time_format") == 0 && json_is_string(v)) {
                    time_format = json_string_value(v);
                } else if (strcmp(key, "timeout_ms") == 0 && json_is_integer(v) &&
                           json_integer_value(v) > 0) {
                    int64_t t = json_integer_value(v) * 1000000;
                    if (t < timeout_ns)
                        timeout_ns = t; /* a caller may only shorten the node's limit */
                } else if (strcmp(key, "max_rows") == 0 && json_is_integer(v) &&
                           json_integer_value(v) > 0) {
                    int64_t m = json_integer_value(v);
                    if (max_rows == 0 || m < max_rows)
                        max_rows = m;
                } else {
                    mesh_req_errorf(r, MESH_INVALID,
                                    "unknown or mistyped field '%.60s' (sql: string, format: "
                                    "string, time_format: string, timeout_ms: integer, "
                                    "max_rows: integer)",
                                    key);
                    json_decref(j);
                    return;
                }
            }
        }
    } else {
        sql = mesh_req_arg(r, "sql");
        sql_len = sql ? strlen(sql) : 0;
    }
    if (format == NULL)
        format = mesh_req_arg(r, "format");
    if (time_format == NULL)
        time_format = mesh_req_arg(r, "time_format");
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
        json_decref(j);
        return;
    }
    if (time_format && strcmp(time_format, "ns") == 0)
        time_ns = true;
    else if (time_format && strcmp(time_format, "iso") != 0) {
        mesh_req_errorf(r, MESH_INVALID, "time_format '%.20s': expected iso or ns", time_format);
        json_decref(j);
        return;
    }
    (void)parse_bool_opt;
    if (sql == NULL || sql_len == 0) {
        mesh_req_errorf(r, MESH_INVALID, "no query: send {\"sql\": \"SELECT ...\"}");
        json_decref(j);
        return;
    }
    if (!mesh_req_allow(r, MESH_ACT_READ, NULL, NULL)) {
        json_decref(j);
        return;
    }
    qstream_t *qs = calloc(1, sizeof *qs);
    if (qs == NULL) {
        json_decref(j);
        mesh_req_errorf(r, MESH_NOMEM, "out of memory");
        return;
    }
    qs->r = r;
    qs->t0 = mesh_mono_ns();
    mesh_buf_init(&qs->buf, MESH_BUF_UNLIMITED);
    mesh_query_limits_t lim = {.timeout_ns = timeout_ns, .max_rows = max_rows};
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st =
        mesh_query_start(n->qpool, mesh_req_snapshot(r), &r->who, sql, sql_len, &lim, &qs->q, &err);
    json_decref(j);
    if (st != MESH_OK) {
        mesh_metrics_query(n->metrics, 0, (double)(mesh_mono_ns() - qs->t0) / 1e9, 1,
                           st == MESH_TIMEOUT);
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
        evhttp_send_reply_chunk(r->ev, b);
        evbuffer_free(b);
        evhttp_connection_set_closecb(qs->conn, NULL, NULL);
        event_base_once(evhttp_connection_get_base(qs->conn), -1, EV_TIMEOUT, abort_connection,
                        qs->conn, &(struct timeval){0, 0});
        qs_free(qs, &err);
        mesh_req_done(r);
        return;
    }
    evhttp_send_reply_chunk_with_cb(r->ev, b, pump, qs);
    evbuffer_free(b);
}
