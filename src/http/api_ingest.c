/*
 * api_ingest.c - writes: rows of one product (JSON, NDJSON, CSV, line protocol) and the
 * InfluxDB v1/v2 write endpoints (line protocol, measurement = product).
 *
 * Every write: authenticate (done by the server) -> parse and validate into a batch ->
 * authorise each product -> refuse the whole batch on a bad row (or quarantine it, per
 * product) -> the domain writer logs, syncs and applies it -> answer. A batch is all or
 * nothing, and the answer comes only once it is durable.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "http/api_forward.h"
#include "http/internal.h"
#include "mesh/fwd.h"
#include "ingest/csv.h"
#include "ingest/jsonrows.h"
#include "ingest/lineproto.h"

#define IDEM_MAX 200

typedef enum { WF_JSON, WF_NDJSON, WF_CSV, WF_LP } wformat_t;

/* Error reply shapes: meshd's own, InfluxDB v1 ({"error": "..."}) and v2. */
typedef enum { SHAPE_MESH, SHAPE_INFLUX1, SHAPE_INFLUX2 } shape_t;

static void reply_error(mesh_req_t *r, shape_t shape, mesh_status_t st, const char *msg,
                        const char *details)
{
    if (shape == SHAPE_MESH) {
        mesh_req_error(r, st, msg, details);
        return;
    }
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    if (shape == SHAPE_INFLUX1) {
        mesh_buf_adds(&b, "{\"error\":");
        mesh_buf_add_json_str(&b, msg, strlen(msg));
    } else {
        const char *code = st == MESH_UNAUTHENTICATED    ? "unauthorized"
                           : st == MESH_FORBIDDEN        ? "forbidden"
                           : st == MESH_NOT_FOUND        ? "not found"
                           : st == MESH_TOO_LARGE        ? "request too large"
                           : mesh_status_http(st) >= 500 ? "internal error"
                                                         : "invalid";
        mesh_buf_adds(&b, "{\"code\":");
        mesh_buf_add_json_str(&b, code, strlen(code));
        mesh_buf_adds(&b, ",\"message\":");
        mesh_buf_add_json_str(&b, msg, strlen(msg));
    }
    mesh_buf_adds(&b, "}\n");
    mesh_req_json(r, mesh_status_http(st), &b);
    mesh_buf_free(&b);
}

static bool idem_key(mesh_req_t *r, shape_t shape, const char **out)
{
    const char *k = mesh_req_header(r, "Idempotency-Key");
    *out = NULL;
    if (k == NULL)
        return true;
    size_t n = strlen(k);
    bool ok = n > 0 && n <= IDEM_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = k[i] > ' ' && k[i] <= '~';
    if (!ok) {
        reply_error(r, shape, MESH_INVALID,
                    "Idempotency-Key must be 1-200 printable characters without spaces", NULL);
        return false;
    }
    *out = k;
    return true;
}

static mesh_batch_limits_t limits(const mesh_node_t *n)
{
    mesh_batch_limits_t l = MESH_BATCH_DEFAULT_LIMITS;
    l.max_rows = (size_t)n->opts.max_batch_rows;
    l.max_errors = (size_t)n->opts.max_errors;
    return l;
}

/*
 * Audits a write: the domain and product (or products, for line protocol), how many rows
 * came, were accepted, quarantined and refused, the log position, and why it failed. res is
 * NULL when nothing was written.
 */
static void audit_write(mesh_req_t *r, const mesh_batch_t *b, const mesh_apply_result_t *res,
                        mesh_status_t st, const char *error)
{
    if (r->node->audit == NULL)
        return;
    mesh_buf_t d;
    mesh_buf_init(&d, MESH_BUF_UNLIMITED);
    size_t accepted = res ? res->rows : 0, quarantined = res ? res->quarantined : 0;
    mesh_buf_printf(&d, "{\"rows\":%zu,\"accepted\":%zu,\"quarantined\":%zu,\"refused\":%zu",
                    b->total_rows, accepted, quarantined, res ? (size_t)0 : b->total_rows);
    if (b->error_rows)
        mesh_buf_printf(&d, ",\"bad_rows\":%zu", b->error_rows);
    mesh_buf_adds(&d, ",\"products\":[");
    for (size_t i = 0; i < b->nparts && i < 100; i++) {
        char fq[160];
        snprintf(fq, sizeof fq, "%s.%s", b->domain, b->parts[i].product->name);
        if (i)
            mesh_buf_addc(&d, ',');
        mesh_buf_add_json_str(&d, fq, strlen(fq));
    }
    mesh_buf_addc(&d, ']');
    if (res)
        mesh_buf_printf(&d, ",\"seq\":%llu,\"duplicate\":%s", (unsigned long long)res->seq,
                        res->duplicate ? "true" : "false");
    if (st != MESH_OK) {
        mesh_buf_adds(&d, ",\"error\":");
        mesh_buf_add_json_str(&d, error ? error : "", error ? strnlen(error, 512) : 0);
    }
    mesh_buf_addc(&d, '}');
    mesh_audit_rec_t rec = {.action = MESH_AUDIT_WRITE,
                            .domain = b->domain,
                            .product = b->nparts == 1 ? b->parts[0].product->name : NULL,
                            .status = mesh_status_http(st),
                            .details = d.data};
    mesh_req_audit(r, &rec);
    mesh_buf_free(&d);
}

/* Counts, per product, the rows a refused batch held (good ones and reported bad ones). */
static void note_refused(mesh_req_t *r, const mesh_batch_t *b, size_t body)
{
    for (size_t i = 0; i < b->nparts; i++)
        mesh_metrics_ingest(r->node->metrics, b->domain, b->parts[i].product->name, 0, 0,
                            (int64_t)(b->parts[i].nrows + b->parts[i].nquar), 0);
    for (size_t i = 0; i < b->nerrors; i++)
        if (b->errors[i].product[0])
            mesh_metrics_ingest(r->node->metrics, b->domain, b->errors[i].product, 0, 0, 1, 0);
    (void)body;
}

/* Refuses a failed batch with the list of bad rows. */
static void refuse(mesh_req_t *r, shape_t shape, const mesh_batch_t *b, size_t body_len)
{
    note_refused(r, b, body_len);
    char msg[512];
    mesh_status_t code = b->fail_code != MESH_OK ? b->fail_code : MESH_VALIDATION;
    if (code == MESH_VALIDATION)
        snprintf(msg, sizeof msg, "%zu of %zu rows violate the contract; nothing was written",
                 b->error_rows, b->total_rows);
    else
        snprintf(msg, sizeof msg, "%s; nothing was written",
                 b->nerrors ? b->errors[0].reason : mesh_status_text(code));
    if (shape != SHAPE_MESH && b->nerrors) {
        /* InfluxDB clients show one string: name the first bad row in it */
        size_t l = strlen(msg);
        snprintf(msg + l, sizeof msg - l, " (first: line %u%s%s: %s)", b->errors[0].row,
                 b->errors[0].column[0] ? ", column " : "", b->errors[0].column,
                 b->errors[0].reason);
    }
    audit_write(r, b, NULL, code, msg);
    mesh_buf_t d;
    mesh_buf_init(&d, MESH_BUF_UNLIMITED);
    mesh_batch_errors_json(b, &d);
    reply_error(r, shape, code, msg, d.data);
    mesh_buf_free(&d);
}

/* Writes a validated batch through its domain; replies on failure. */
static bool write_batch(mesh_req_t *r, shape_t shape, const mesh_snap_domain_t *sd, mesh_batch_t *b,
                        const char *idem, size_t body_len, mesh_apply_result_t *res)
{
    mesh_err_t err;
    mesh_err_clear(&err);
    int64_t t0 = mesh_mono_ns();
    mesh_status_t st = mesh_domain_write(sd->dom, b, idem, res, &err);
    if (st == MESH_OK)
        mesh_metrics_ingest_time(r->node->metrics, (double)(mesh_mono_ns() - t0) / 1e9);
    audit_write(r, b, st == MESH_OK ? res : NULL, st, err.msg);
    if (st != MESH_OK) {
        note_refused(r, b, body_len);
        reply_error(r, shape, st, err.msg[0] ? err.msg : mesh_status_text(st), NULL);
        return false;
    }
    if (!res->duplicate)
        for (size_t i = 0; i < b->nparts; i++)
            mesh_metrics_ingest(r->node->metrics, b->domain, b->parts[i].product->name,
                                (int64_t)b->parts[i].nrows, (int64_t)b->parts[i].nquar, 0,
                                (int64_t)(body_len / (b->nparts ? b->nparts : 1)));
    return true;
}

/* A product refusing writes because of its contract's status. */
static bool writable(mesh_req_t *r, shape_t shape, const mesh_product_t *p)
{
    const char *status = p->contract->status;
    if (status && strcmp(status, "retired") == 0) {
        char msg[256];
        snprintf(msg, sizeof msg, "product %s.%s is retired (contract '%s' %s); it takes no writes",
                 p->domain, p->name, p->contract->id, p->contract->version);
        reply_error(r, shape, MESH_CONFLICT, msg, NULL);
        return false;
    }
    if (status && strcmp(status, "deprecated") == 0)
        evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Warning",
                          "299 meshd \"the product's contract is deprecated\"");
    return true;
}

static bool pick_format(mesh_req_t *r, wformat_t *out)
{
    const char *f = mesh_req_arg(r, "format");
    const char *ct = mesh_req_header(r, "Content-Type");
    if (f) {
        if (strcmp(f, "json") == 0)
            *out = WF_JSON;
        else if (strcmp(f, "ndjson") == 0 || strcmp(f, "jsonl") == 0)
            *out = WF_NDJSON;
        else if (strcmp(f, "csv") == 0)
            *out = WF_CSV;
        else if (strcmp(f, "lp") == 0 || strcmp(f, "line") == 0)
            *out = WF_LP;
        else {
            mesh_req_errorf(r, MESH_UNSUPPORTED, "format=%.40s: expected json, ndjson, csv or lp",
                            f);
            return false;
        }
        return true;
    }
    if (ct == NULL || strncmp(ct, "application/json", 16) == 0) {
        *out = WF_JSON;
    } else if (strncmp(ct, "application/x-ndjson", 20) == 0 ||
               strncmp(ct, "application/jsonl", 17) == 0 ||
               strncmp(ct, "application/ndjson", 18) == 0) {
        *out = WF_NDJSON;
    } else if (strncmp(ct, "text/csv", 8) == 0) {
        *out = WF_CSV;
    } else if (strncmp(ct, "text/plain", 10) == 0) {
        *out = WF_LP;
    } else {
        mesh_req_errorf(r, MESH_UNSUPPORTED,
                        "Content-Type '%.60s' is not accepted: use application/json, "
                        "application/x-ndjson, text/csv or text/plain (line protocol)",
                        ct);
        return false;
    }
    return true;
}

typedef struct one_product {
    const mesh_product_t *p;
} one_product_t;

static const mesh_product_t *lookup_one(void *arg, const char *domain, const char *product)
{
    one_product_t *o = arg;
    (void)domain;
    return strcmp(product, o->p->name) == 0 ? o->p : NULL;
}

/* Parses a body of fmt into b (rows of product p of domain). */
static void parse_rows(wformat_t fmt, const char *body, size_t n, const mesh_product_t *p,
                       const char *domain, mesh_batch_t *b)
{
    one_product_t one = {p};
    switch (fmt) {
    case WF_JSON:
        mesh_json_rows_parse(body, n, p, false, b);
        break;
    case WF_NDJSON:
        mesh_json_rows_parse(body, n, p, true, b);
        break;
    case WF_CSV:
        mesh_csv_parse(body, n, p, b);
        break;
    case WF_LP:
        mesh_lp_parse(body, n, domain, lookup_one, &one, b);
        break;
    }
}

/* The answer to an accepted write (the forwarded one's too). */
static void written_json(const mesh_product_t *p, const mesh_batch_t *b,
                         const mesh_apply_result_t *res, const char *stream, mesh_buf_t *o)
{
    mesh_buf_adds(o, "{\"domain\":");
    mesh_buf_add_json_str(o, p->domain, strlen(p->domain));
    mesh_buf_adds(o, ",\"product\":");
    mesh_buf_add_json_str(o, p->name, strlen(p->name));
    mesh_buf_printf(o, ",\"accepted\":%zu,\"quarantined\":%zu,\"seq\":%llu,\"duplicate\":%s",
                    res->rows, res->quarantined, (unsigned long long)res->seq,
                    res->duplicate ? "true" : "false");
    if (res->stream_seq && stream) {
        mesh_buf_adds(o, ",\"position\":{\"stream\":");
        mesh_buf_add_json_str(o, stream, strlen(stream));
        mesh_buf_printf(o, ",\"seq\":%llu}", (unsigned long long)res->stream_seq);
    }
    if (b->nerrors && !res->duplicate) {
        mesh_buf_adds(o, ",\"quarantine\":");
        mesh_batch_errors_json(b, o);
    }
    mesh_buf_adds(o, "}\n");
}

static const char *format_name(wformat_t f)
{
    return f == WF_JSON ? "json" : f == WF_NDJSON ? "ndjson" : f == WF_CSV ? "csv" : "lp";
}

/* A write for a domain this node does not host, in a mesh: sent to the domain's hosting nodes
 * (request kind "write"), whose answer is relayed. The caller was authorised here (grants
 * name domains and products mesh-wide); the hosting node validates and audits it too. */
static void forward_rows(mesh_req_t *r, wformat_t fmt, const char *idem)
{
    const char *body;
    size_t n;
    if (mesh_req_body(r, &body, &n) != MESH_OK)
        return;
    mesh_fwd_req_t fr;
    memset(&fr, 0, sizeof fr);
    snprintf(fr.product, sizeof fr.product, "%s", r->params[1]);
    snprintf(fr.format, sizeof fr.format, "%s", format_name(fmt));
    const char *ps = mesh_req_arg(r, "precision");
    snprintf(fr.precision, sizeof fr.precision, "%s", ps ? ps : "");
    snprintf(fr.idem, sizeof fr.idem, "%s", idem ? idem : "");
    snprintf(fr.user, sizeof fr.user, "%s", r->who.name);
    snprintf(fr.node, sizeof fr.node, "%s", r->node->opts.node_name);
    fr.body = (const uint8_t *)body;
    fr.body_len = n;
    mesh_buf_t req, rep;
    mesh_buf_init(&req, MESH_BUF_UNLIMITED);
    mesh_buf_init(&rep, MESH_MESH_REPLY_MAX);
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_fwd_encode(&fr, &req);
    if (st == MESH_OK)
        st = mesh_mesh_request(r->node->mesh, r->params[0], "write", req.data, req.len,
                               2 * r->node->opts.mesh_timeout, &rep, &err);
    int status = 0;
    const uint8_t *json = NULL;
    size_t jn = 0;
    if (st == MESH_OK &&
        mesh_fwd_reply_parse((const uint8_t *)rep.data, rep.len, &status, &json, &jn) != MESH_OK)
        st = mesh_err_set(&err, MESH_UNAVAILABLE, "the hosting node's answer is malformed");
    if (st == MESH_UNAVAILABLE && strstr(err.msg, "no node answers"))
        mesh_err_set(&err, MESH_NOT_FOUND,
                     "no product %s.%s here, and no live node of the mesh hosts domain %s",
                     r->params[0], r->params[1], r->params[0]);
    mesh_buf_t d;
    mesh_buf_init(&d, 1024);
    mesh_buf_printf(&d, "{\"forwarded\":true,\"status\":%d", st == MESH_OK ? status : 0);
    if (st != MESH_OK) {
        mesh_buf_adds(&d, ",\"error\":");
        mesh_buf_add_json_str(&d, err.msg, strnlen(err.msg, 300));
    }
    mesh_buf_addc(&d, '}');
    mesh_audit_rec_t rec = {.action = MESH_AUDIT_WRITE,
                            .domain = r->params[0],
                            .product = r->params[1],
                            .status = st == MESH_OK ? status : mesh_status_http(err.code),
                            .details = d.data};
    mesh_req_audit(r, &rec);
    mesh_buf_free(&d);
    if (st != MESH_OK) {
        mesh_req_error(r, err.code != MESH_OK ? err.code : st, err.msg, NULL);
    } else {
        evhttp_add_header(evhttp_request_get_output_headers(r->ev), "X-Meshd-Forwarded", "true");
        mesh_req_reply(r, status, "application/json", (const char *)json, jn);
    }
    mesh_buf_free(&req);
    mesh_buf_free(&rep);
}

void mesh_api_rows(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_WRITE, r->params[0], r->params[1]))
        return;
    mesh_snapshot_t *s = mesh_req_snapshot(r);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, r->params[0]);
    const mesh_product_t *p = sd ? mesh_snapshot_product(s, r->params[0], r->params[1]) : NULL;
    if (sd == NULL && r->node->mesh) {
        wformat_t fmt;
        const char *idem;
        if (pick_format(r, &fmt) && idem_key(r, SHAPE_MESH, &idem))
            forward_rows(r, fmt, idem);
        return;
    }
    if (p == NULL) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "no product %s.%s", r->params[0], r->params[1]);
        return;
    }
    if (!writable(r, SHAPE_MESH, p))
        return;
    wformat_t fmt;
    const char *idem;
    if (!pick_format(r, &fmt) || !idem_key(r, SHAPE_MESH, &idem))
        return;
    mesh_precision_t prec = fmt == WF_LP ? MESH_PREC_NS : MESH_PREC_AUTO;
    const char *ps = mesh_req_arg(r, "precision");
    if (ps && mesh_precision_parse(ps, &prec) != MESH_OK) {
        mesh_req_errorf(r, MESH_INVALID, "precision=%.20s: expected ns, us, ms, s or auto", ps);
        return;
    }
    const char *body;
    size_t n;
    if (mesh_req_body(r, &body, &n) != MESH_OK)
        return;
    mesh_batch_t b;
    mesh_batch_init(&b, sd->meta.name, limits(r->node));
    b.received_ns = mesh_now_ns();
    b.precision = prec;
    parse_rows(fmt, body, n, p, sd->meta.name, &b);
    if (mesh_batch_failed(&b)) {
        refuse(r, SHAPE_MESH, &b, n);
        mesh_batch_free(&b);
        return;
    }
    if (b.total_rows == 0) {
        audit_write(r, &b, NULL, MESH_INVALID, "the body holds no rows");
        mesh_batch_free(&b);
        mesh_req_errorf(r, MESH_INVALID, "the body holds no rows");
        return;
    }
    mesh_apply_result_t res;
    if (write_batch(r, SHAPE_MESH, sd, &b, idem, n, &res)) {
        mesh_buf_t o;
        mesh_buf_init(&o, MESH_BUF_UNLIMITED);
        char stream[MESH_NAME_MAX + 16];
        snprintf(stream, sizeof stream, "MESHD_DOM_%s", sd->meta.name);
        written_json(p, &b, &res, stream, &o);
        mesh_req_json(r, 200, &o);
        mesh_buf_free(&o);
    }
    mesh_batch_free(&b);
}

/* ---- writes forwarded by other nodes ---- */

static void fwd_reply(mesh_buf_t *reply, mesh_status_t st, const char *msg, const char *details)
{
    mesh_buf_reset(reply);
    mesh_buf_printf(reply, "%03d\n{\"error\":{\"code\":\"%s\",\"message\":", mesh_status_http(st),
                    mesh_status_name(st));
    mesh_buf_add_json_str(reply, msg, strnlen(msg, 1024));
    if (details) {
        mesh_buf_adds(reply, ",\"details\":");
        mesh_buf_adds(reply, details);
    }
    mesh_buf_adds(reply, "}}\n");
}

void mesh__api_forwarded_write(mesh_node_t *n, const char *domain, const uint8_t *p, size_t len,
                               mesh_buf_t *reply)
{
    mesh_fwd_req_t fr;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_fwd_parse(p, len, &fr, &err);
    if (st != MESH_OK) {
        LOG_WARN("mesh", "a forwarded write for %s refused: %s", domain, err.msg);
        fwd_reply(reply, st, err.msg, NULL);
        return;
    }
    char who[200];
    snprintf(who, sizeof who, "%s@%s", fr.user, fr.node);
    mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, domain);
    const mesh_product_t *prod = sd ? mesh_snapshot_product(s, domain, fr.product) : NULL;
    mesh_batch_t b;
    mesh_batch_init(&b, domain, limits(n));
    mesh_apply_result_t res;
    memset(&res, 0, sizeof res);
    wformat_t fmt = strcmp(fr.format, "ndjson") == 0 ? WF_NDJSON
                    : strcmp(fr.format, "csv") == 0  ? WF_CSV
                    : strcmp(fr.format, "lp") == 0   ? WF_LP
                                                     : WF_JSON;
    mesh_precision_t prec = fmt == WF_LP ? MESH_PREC_NS : MESH_PREC_AUTO;
    if (prod == NULL)
        st = mesh_err_set(&err, MESH_NOT_FOUND, "no product %s.%s", domain, fr.product);
    else if (prod->contract->status && strcmp(prod->contract->status, "retired") == 0)
        st = mesh_err_set(&err, MESH_CONFLICT, "product %s.%s is retired", domain, fr.product);
    else if (fr.precision[0] && mesh_precision_parse(fr.precision, &prec) != MESH_OK)
        st = mesh_err_set(&err, MESH_INVALID, "precision=%s: expected ns, us, ms, s or auto",
                          fr.precision);
    if (st == MESH_OK) {
        b.received_ns = mesh_now_ns();
        b.precision = prec;
        parse_rows(fmt, (const char *)fr.body, fr.body_len, prod, domain, &b);
        if (mesh_batch_failed(&b))
            st = mesh_err_set(&err, b.fail_code != MESH_OK ? b.fail_code : MESH_VALIDATION,
                              "%zu of %zu rows violate the contract; nothing was written",
                              b.error_rows, b.total_rows);
        else if (b.total_rows == 0)
            st = mesh_err_set(&err, MESH_INVALID, "the body holds no rows");
    }
    if (st == MESH_OK)
        st = mesh_domain_write(sd->dom, &b, fr.idem[0] ? fr.idem : NULL, &res, &err);
    mesh_buf_t d;
    mesh_buf_init(&d, 4096);
    mesh_buf_printf(&d, "{\"forwarded_by\":");
    mesh_buf_add_json_str(&d, fr.node, strlen(fr.node));
    mesh_buf_printf(&d, ",\"rows\":%zu,\"accepted\":%zu", b.total_rows, res.rows);
    if (st != MESH_OK) {
        mesh_buf_adds(&d, ",\"error\":");
        mesh_buf_add_json_str(&d, err.msg, strnlen(err.msg, 300));
    }
    mesh_buf_addc(&d, '}');
    mesh_audit_rec_t rec = {.action = MESH_AUDIT_WRITE,
                            .principal = who,
                            .auth = "mesh",
                            .domain = domain,
                            .product = fr.product,
                            .status = mesh_status_http(st),
                            .details = d.data};
    if (n->audit)
        mesh_audit_record(n->audit, &rec);
    mesh_buf_free(&d);
    if (st == MESH_OK) {
        mesh_buf_reset(reply);
        mesh_buf_adds(reply, "200\n");
        char stream[MESH_NAME_MAX + 16];
        snprintf(stream, sizeof stream, "MESHD_DOM_%s", domain);
        written_json(prod, &b, &res, stream, reply);
        if (!res.duplicate)
            mesh_metrics_ingest(n->metrics, domain, prod->name, (int64_t)mesh_batch_good_rows(&b),
                                (int64_t)mesh_batch_quarantined_rows(&b), 0, (int64_t)fr.body_len);
    } else {
        mesh_buf_t det;
        mesh_buf_init(&det, MESH_BUF_UNLIMITED);
        if (b.nerrors)
            mesh_batch_errors_json(&b, &det);
        fwd_reply(reply, st, err.msg, b.nerrors ? det.data : NULL);
        mesh_buf_free(&det);
    }
    mesh_batch_free(&b);
    mesh_snapshot_put(s);
}

/* ---- InfluxDB compatibility ---- */

static void influx_write(mesh_req_t *r, shape_t shape, const char *domain, const char *prec_s)
{
    if (domain == NULL || *domain == '\0') {
        reply_error(r, shape, MESH_INVALID,
                    shape == SHAPE_INFLUX1 ? "database is required (?db=DOMAIN)"
                                           : "bucket is required (?bucket=DOMAIN)",
                    NULL);
        return;
    }
    mesh_precision_t prec = MESH_PREC_NS;
    if (prec_s) {
        /* v1 spells them n, u, ms, s; v2 ns, us, ms, s */
        const char *p = strcmp(prec_s, "n") == 0 ? "ns" : strcmp(prec_s, "u") == 0 ? "us" : prec_s;
        if (mesh_precision_parse(p, &prec) != MESH_OK || prec == MESH_PREC_AUTO) {
            char msg[128];
            snprintf(msg, sizeof msg, "precision '%.10s' is not supported (ns, us, ms, s)", prec_s);
            reply_error(r, shape, MESH_INVALID, msg, NULL);
            return;
        }
    }
    mesh_snapshot_t *s = mesh_req_snapshot(r);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, domain);
    if (sd == NULL) {
        char msg[160];
        snprintf(msg, sizeof msg, "database not found: \"%.64s\"", domain);
        reply_error(r, shape, MESH_NOT_FOUND, msg, NULL);
        return;
    }
    const char *idem;
    if (!idem_key(r, shape, &idem))
        return;
    const char *body;
    size_t n;
    if (mesh_req_body(r, &body, &n) != MESH_OK)
        return;
    mesh_batch_t b;
    mesh_batch_init(&b, sd->meta.name, limits(r->node));
    b.received_ns = mesh_now_ns();
    b.precision = prec;
    mesh_lp_parse(body, n, sd->meta.name, mesh_snapshot_lookup, s, &b);
    if (mesh_batch_failed(&b)) {
        refuse(r, shape, &b, n);
        mesh_batch_free(&b);
        return;
    }
    for (size_t i = 0; i < b.nparts; i++) {
        const mesh_product_t *p = b.parts[i].product;
        mesh_decision_t d;
        bool allowed = mesh_req_decide(r, MESH_ACT_WRITE, p->domain, p->name, &d);
        mesh_req_audit_authz(r, MESH_ACT_WRITE, p->domain, p->name, &d);
        if (!allowed) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s may not write %s.%s", r->who.name, p->domain, p->name);
            reply_error(r, shape, MESH_FORBIDDEN, msg, NULL);
            mesh_batch_free(&b);
            return;
        }
        if (!writable(r, shape, p)) {
            mesh_batch_free(&b);
            return;
        }
    }
    mesh_apply_result_t res;
    memset(&res, 0, sizeof res);
    if (b.total_rows == 0 || write_batch(r, shape, sd, &b, idem, n, &res)) {
        /* InfluxDB clients expect an empty 204; the counts travel in headers */
        struct evkeyvalq *oh = evhttp_request_get_output_headers(r->ev);
        char v[32];
        snprintf(v, sizeof v, "%zu", res.rows);
        evhttp_add_header(oh, "X-Meshd-Accepted", v);
        snprintf(v, sizeof v, "%zu", res.quarantined);
        evhttp_add_header(oh, "X-Meshd-Quarantined", v);
        snprintf(v, sizeof v, "%llu", (unsigned long long)res.seq);
        evhttp_add_header(oh, "X-Meshd-Seq", v);
        if (res.duplicate)
            evhttp_add_header(oh, "X-Meshd-Duplicate", "true");
        mesh_req_reply(r, 204, NULL, NULL, 0);
    }
    mesh_batch_free(&b);
}

void mesh_api_influx_write(mesh_req_t *r)
{
    influx_write(r, SHAPE_INFLUX1, mesh_req_arg(r, "db"), mesh_req_arg(r, "precision"));
}

void mesh_api_influx_write_v2(mesh_req_t *r)
{
    influx_write(r, SHAPE_INFLUX2, mesh_req_arg(r, "bucket"), mesh_req_arg(r, "precision"));
}

/* ---- quarantine: drop and resubmit ---- */

/* Audits a change to a product's quarantine. */
static void audit_quarantine(mesh_req_t *r, const mesh_product_t *p, mesh_status_t st,
                             const char *what, int64_t dropped, const char *error)
{
    mesh_buf_t d;
    mesh_buf_init(&d, 4096);
    mesh_buf_printf(&d, "{\"%s\":true,\"dropped\":%lld", what, (long long)dropped);
    if (st != MESH_OK) {
        mesh_buf_adds(&d, ",\"error\":");
        mesh_buf_add_json_str(&d, error ? error : "", error ? strnlen(error, 512) : 0);
    }
    mesh_buf_addc(&d, '}');
    mesh_audit_rec_t rec = {.action = MESH_AUDIT_ADMIN_QUARANTINE,
                            .domain = p->domain,
                            .product = p->name,
                            .status = mesh_status_http(st),
                            .details = d.data};
    mesh_req_audit(r, &rec);
    mesh_buf_free(&d);
}

static const mesh_product_t *quarantine_product(mesh_req_t *r, const mesh_snap_domain_t **sd)
{
    mesh_snapshot_t *s = mesh_req_snapshot(r);
    *sd = mesh_snapshot_domain(s, r->params[0]);
    const mesh_product_t *p = *sd ? mesh_snapshot_product(s, r->params[0], r->params[1]) : NULL;
    if (p == NULL)
        mesh_req_errorf(r, MESH_NOT_FOUND, "no product %s.%s", r->params[0], r->params[1]);
    return p;
}

static bool parse_id(mesh_req_t *r, const char *s, int64_t *id)
{
    if (mesh_parse_i64(s, strlen(s), id) != MESH_OK || *id < 1) {
        mesh_req_errorf(r, MESH_INVALID, "'%.40s' is not a quarantined row's id", s);
        return false;
    }
    return true;
}

static void reply_dropped(mesh_req_t *r, int64_t dropped)
{
    mesh_buf_t o;
    mesh_buf_init(&o, 256);
    mesh_buf_printf(&o, "{\"dropped\":%lld}\n", (long long)dropped);
    mesh_req_json(r, 200, &o);
    mesh_buf_free(&o);
}

/* DELETE /v1/products/{d}/{p}/quarantine/{id} */
void mesh_api_quarantine_row(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, r->params[0], r->params[1]))
        return;
    const mesh_snap_domain_t *sd;
    const mesh_product_t *p = quarantine_product(r, &sd);
    int64_t id, dropped = 0;
    if (p == NULL || !parse_id(r, r->params[2], &id))
        return;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_domain_quarantine_drop(sd->dom, p->name, &id, 1, false, &dropped, &err);
    if (st == MESH_OK && dropped == 0)
        st = mesh_err_set(&err, MESH_NOT_FOUND, "no quarantined row %lld in %s.%s", (long long)id,
                          p->domain, p->name);
    audit_quarantine(r, p, st, "drop", dropped, err.msg);
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    reply_dropped(r, dropped);
}

/* POST /v1/products/{d}/{p}/quarantine/drop {"ids":[...]} or {"all":true} */
void mesh_api_quarantine_drop(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, r->params[0], r->params[1]))
        return;
    const mesh_snap_domain_t *sd;
    const mesh_product_t *p = quarantine_product(r, &sd);
    if (p == NULL)
        return;
    const char *body;
    size_t n;
    if (mesh_req_body(r, &body, &n) != MESH_OK)
        return;
    json_error_t je;
    json_t *j = json_loadb(body, n, JSON_REJECT_DUPLICATES, &je);
    const char *key;
    json_t *v;
    bool bad = !json_is_object(j);
    json_object_foreach(bad ? NULL : j, key, v)
    {
        if (strcmp(key, "ids") != 0 && strcmp(key, "all") != 0)
            bad = true;
    }
    json_t *ids = bad ? NULL : json_object_get(j, "ids"),
           *all = bad ? NULL : json_object_get(j, "all");
    bool everything = json_is_true(all);
    if (bad || (ids == NULL) == !everything || (ids && !json_is_array(ids)) ||
        (all && !json_is_boolean(all)) || (ids && json_array_size(ids) > 100000)) {
        json_decref(j);
        mesh_req_errorf(r, MESH_INVALID,
                        "the body is {\"ids\": [id, ...]} (at most 100000) or {\"all\": true}");
        return;
    }
    size_t cnt = ids ? json_array_size(ids) : 0;
    int64_t *v_ids = cnt ? calloc(cnt, sizeof *v_ids) : NULL;
    if (cnt && v_ids == NULL) {
        json_decref(j);
        mesh_req_errorf(r, MESH_NOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < cnt; i++) {
        json_t *x = json_array_get(ids, i);
        if (!json_is_integer(x) || json_integer_value(x) < 1) {
            free(v_ids);
            json_decref(j);
            mesh_req_errorf(r, MESH_INVALID, "ids[%zu] is not a quarantined row's id", i);
            return;
        }
        v_ids[i] = (int64_t)json_integer_value(x);
    }
    json_decref(j);
    int64_t dropped = 0;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st =
        mesh_domain_quarantine_drop(sd->dom, p->name, v_ids, cnt, everything, &dropped, &err);
    free(v_ids);
    audit_quarantine(r, p, st, everything ? "drop_all" : "drop", dropped, err.msg);
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    reply_dropped(r, dropped);
}

/* The raw text of quarantined row id of p (malloc'd in *raw), or MESH_NOT_FOUND. */
static mesh_status_t quarantined_raw(const mesh_snap_domain_t *sd, const mesh_product_t *p,
                                     int64_t id, char **raw, mesh_err_t *err)
{
    *raw = NULL;
    mesh_store_reader_t *rd;
    mesh_status_t st = mesh_store_reader_open(mesh_domain_store(sd->dom), &rd, err);
    if (st != MESH_OK)
        return st;
    mesh_scan_plan_t plan;
    memset(&plan, 0, sizeof plan);
    plan.cols_used = ~0ULL;
    mesh_store_plan(mesh_domain_store(sd->dom), p, true, &plan);
    mesh_scan_t *sc = NULL;
    st = mesh_err_set(err, MESH_NOT_FOUND, "no quarantined row %lld in %s.%s", (long long)id,
                      p->domain, p->name);
    mesh_err_t e2;
    if (mesh_scan_open(rd, p, true, &plan, NULL, 0, &sc, &e2) == MESH_OK) {
        while (mesh_scan_next(sc) == 1) {
            mesh_datum_t v0, v4;
            mesh_scan_value(sc, 0, &v0);
            if (v0.i != id)
                continue;
            mesh_scan_value(sc, 4, &v4);
            *raw = mesh_strndup(v4.s ? v4.s : "", v4.s ? v4.n : 0);
            mesh_err_clear(err);
            st = *raw ? MESH_OK : mesh_err_set(err, MESH_NOMEM, "out of memory");
            break;
        }
        mesh_scan_close(sc);
    } else {
        st = mesh_err_set(err, e2.code, "%s", e2.msg);
    }
    mesh_store_reader_close(rd);
    return st;
}

/* POST /v1/products/{d}/{p}/quarantine/{id}/resubmit: the row fixed (a JSON object in the
 * body), or as it was kept when it is a JSON object (after a contract change), validated
 * again as any write (a bad row is refused, never quarantined again), written once
 * (idempotent on the quarantined row's id), then dropped from the quarantine. */
void mesh_api_quarantine_resubmit(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, r->params[0], r->params[1]) ||
        !mesh_req_allow(r, MESH_ACT_WRITE, r->params[0], r->params[1]))
        return;
    const mesh_snap_domain_t *sd;
    const mesh_product_t *p = quarantine_product(r, &sd);
    int64_t id;
    if (p == NULL || !parse_id(r, r->params[2], &id) || !writable(r, SHAPE_MESH, p))
        return;
    const char *body;
    size_t n;
    if (mesh_req_body(r, &body, &n) != MESH_OK)
        return;
    char *raw = NULL;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = quarantined_raw(sd, p, id, &raw, &err);
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    const char *row = body;
    size_t rn = n;
    while (rn && (*row == ' ' || *row == '\n' || *row == '\r' || *row == '\t')) {
        row++;
        rn--;
    }
    if (rn == 0) {
        row = raw;
        rn = strlen(raw);
        if (rn == 0 || raw[0] != '{') {
            free(raw);
            mesh_req_errorf(r, MESH_INVALID,
                            "quarantined row %lld was not sent as a JSON object: give the fixed "
                            "row as a JSON object in the body",
                            (long long)id);
            return;
        }
    } else if (row[0] != '{') {
        free(raw);
        mesh_req_errorf(r, MESH_INVALID, "the body is the fixed row, one JSON object");
        return;
    }
    mesh_batch_t b;
    mesh_batch_init(&b, sd->meta.name, limits(r->node));
    b.received_ns = mesh_now_ns();
    b.no_quarantine = true;
    mesh_json_rows_parse(row, rn, p, true, &b);
    free(raw);
    if (mesh_batch_failed(&b) || b.total_rows != 1) {
        if (!mesh_batch_failed(&b))
            mesh_batch_fail(&b, MESH_INVALID, 1, "the body is one row");
        refuse(r, SHAPE_MESH, &b, n);
        mesh_batch_free(&b);
        return;
    }
    char idem[IDEM_MAX + 1];
    snprintf(idem, sizeof idem, "meshd-resubmit:%s:%lld", p->name, (long long)id);
    mesh_apply_result_t res;
    if (!write_batch(r, SHAPE_MESH, sd, &b, idem, n, &res)) {
        mesh_batch_free(&b);
        return;
    }
    mesh_batch_free(&b);
    int64_t dropped = 0;
    st = mesh_domain_quarantine_drop(sd->dom, p->name, &id, 1, false, &dropped, &err);
    audit_quarantine(r, p, st, "resubmit", dropped, err.msg);
    if (st != MESH_OK) {
        /* the row is written (and a retry writes it no second time): say so */
        mesh_req_errorf(r, st, "the row was written (seq %llu) but is still in the quarantine: %s",
                        (unsigned long long)res.seq, err.msg);
        return;
    }
    mesh_buf_t o;
    mesh_buf_init(&o, 512);
    mesh_buf_printf(&o, "{\"accepted\":%zu,\"seq\":%llu,\"duplicate\":%s,\"dropped\":%lld}\n",
                    res.rows, (unsigned long long)res.seq, res.duplicate ? "true" : "false",
                    (long long)dropped);
    mesh_req_json(r, 200, &o);
    mesh_buf_free(&o);
}
