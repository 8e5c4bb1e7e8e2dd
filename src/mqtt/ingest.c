/*
 * ingest.c - one MQTT message into its product (see ingest.h).
 */
#include "mqtt/ingest.h"

#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "ingest/jsonrows.h"
#include "ingest/lineproto.h"
#include "store/domain.h"

#define QUARANTINE_RAW_MAX 1024 /* bytes of an oversized or binary payload kept */

const char *mesh_mqtt_result_name(mesh_mqtt_result_t r)
{
    static const char *const names[] = {"stored", "quarantined", "denied", "dropped", "failed"};
    return (unsigned)r < MESH_ARRAY_LEN(names) ? names[r] : "unknown";
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

/* Whether s[0..n) is UTF-8 without NUL bytes (so it can be kept as text). */
static bool text_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            k = 1;
        else if (c >= 0xe0 && c <= 0xef)
            k = 2;
        else if (c >= 0xf0 && c <= 0xf4)
            k = 3;
        else
            return false;
        for (size_t j = 1; j <= k; j++)
            if (i + j >= n || (s[i + j] & 0xc0) != 0x80)
                return false;
        i += k + 1;
    }
    return true;
}

/* The first reason a failed or empty batch gives. */
static void batch_reason(const mesh_batch_t *b, char *out, size_t cap)
{
    if (b->nerrors) {
        const mesh_row_error_t *e = &b->errors[0];
        if (e->column[0])
            snprintf(out, cap, "row %u, column %s: %s", e->row, e->column, e->reason);
        else
            snprintf(out, cap, "row %u: %s", e->row, e->reason);
    } else if (b->failed) {
        snprintf(out, cap, "%s", mesh_status_text(b->fail_code));
    } else {
        snprintf(out, cap, "the payload holds no rows");
    }
}

/* Puts the payload (or its first KiB, as hex when it is not text) into p's quarantine. */
static mesh_status_t quarantine(const mesh_mqtt_ingest_opts_t *o, const mesh_snap_domain_t *sd,
                                const mesh_product_t *p, const void *payload, size_t n,
                                mesh_mqtt_outcome_t *out)
{
    mesh_batch_t b;
    mesh_batch_init(&b, sd->meta.name, o->limits);
    const unsigned char *raw = payload;
    size_t keep = n;
    char hex[2 * QUARANTINE_RAW_MAX + 8];
    if (keep > QUARANTINE_RAW_MAX)
        keep = QUARANTINE_RAW_MAX;
    if (!text_ok(raw, keep)) {
        memcpy(hex, "hex:", 4);
        mesh_hex(raw, keep, hex + 4);
        raw = (const unsigned char *)hex;
        keep = strlen(hex);
    }
    mesh_batch_quarantine_raw(&b, p, 1, out->reason, (const char *)raw, keep);
    mesh_apply_result_t res;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st =
        mesh_batch_failed(&b) ? b.fail_code : mesh_domain_write(sd->dom, &b, NULL, &res, &err);
    mesh_batch_free(&b);
    if (st != MESH_OK) {
        out->result = MESH_MQTT_FAILED;
        snprintf(out->reason, sizeof out->reason, "quarantine write: %s",
                 err.msg[0] ? err.msg : mesh_status_text(st));
        return st;
    }
    out->result = MESH_MQTT_QUARANTINED;
    out->quarantined = 1;
    out->seq = res.seq;
    return MESH_OK;
}

/* A write refusal that is the message's fault (quarantined) rather than the node's. */
static bool payload_fault(mesh_status_t st)
{
    return st == MESH_CONFLICT || st == MESH_VALIDATION || st == MESH_INVALID ||
           st == MESH_TOO_LARGE || st == MESH_PARSE || st == MESH_LIMIT;
}

mesh_status_t mesh_mqtt_ingest(const mesh_mqtt_ingest_opts_t *o, const mesh_mqtt_mapping_t *m,
                               const mesh_snapshot_t *s, const char *topic, size_t n_topic,
                               const void *payload, size_t n, mesh_mqtt_outcome_t *out)
{
    memset(out, 0, sizeof *out);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, m->domain);
    const mesh_product_t *p = sd ? mesh_snapshot_product(s, m->domain, m->product) : NULL;
    if (p == NULL) {
        out->result = MESH_MQTT_DROPPED;
        snprintf(out->reason, sizeof out->reason, "no product %s.%s", m->domain, m->product);
        return MESH_OK;
    }
    const char *status = p->contract->status;
    if (status && strcmp(status, "retired") == 0) {
        out->result = MESH_MQTT_DROPPED;
        snprintf(out->reason, sizeof out->reason, "product %s.%s is retired", m->domain,
                 m->product);
        return MESH_OK;
    }
    mesh_topic_value_t vals[MESH_TOPIC_MAX_NAMED];
    if (!mesh_topic_tmpl_match(&m->tmpl, topic, n_topic, vals)) {
        out->result = MESH_MQTT_DROPPED;
        snprintf(out->reason, sizeof out->reason, "the topic does not match the mapping");
        return MESH_OK;
    }
    if (n > o->max_payload) {
        snprintf(out->reason, sizeof out->reason,
                 "the payload of %zu bytes exceeds mqtt_max_payload (%zu bytes); its first %d "
                 "bytes are kept",
                 n, o->max_payload, QUARANTINE_RAW_MAX);
        return quarantine(o, sd, p, payload, n, out);
    }
    mesh_batch_t b;
    mesh_batch_init(&b, sd->meta.name, o->limits);
    b.received_ns = mesh_now_ns();
    b.precision = m->format == MESH_MQTT_FORMAT_LP ? MESH_PREC_NS : MESH_PREC_AUTO;
    for (size_t i = 0; i < m->tmpl.nnamed; i++) {
        const mesh_topic_value_t *v = &vals[i];
        int col = mesh_product_col(p, v->name, strlen(v->name));
        if (col < 0) {
            snprintf(out->reason, sizeof out->reason,
                     "topic level {%s}: the product has no column %s", v->name, v->name);
            mesh_batch_free(&b);
            return quarantine(o, sd, p, payload, n, out);
        }
        if (v->len > MESH_TOPIC_MAX_VALUE) {
            snprintf(out->reason, sizeof out->reason, "topic level {%s}: %zu bytes is more than %d",
                     v->name, v->len, MESH_TOPIC_MAX_VALUE);
            mesh_batch_free(&b);
            return quarantine(o, sd, p, payload, n, out);
        }
        mesh_batch_fixed_text(&b, p, col, topic + v->off, v->len);
    }
    if (m->format == MESH_MQTT_FORMAT_JSON) {
        mesh_json_rows_parse(payload, n, p, false, &b);
    } else {
        one_product_t one = {p};
        mesh_lp_parse(payload, n, sd->meta.name, lookup_one, &one, &b);
    }
    if (mesh_batch_failed(&b) || b.total_rows == 0) {
        batch_reason(&b, out->reason, sizeof out->reason);
        mesh_batch_free(&b);
        return quarantine(o, sd, p, payload, n, out);
    }
    mesh_apply_result_t res;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_domain_write(sd->dom, &b, NULL, &res, &err);
    mesh_batch_free(&b);
    if (st == MESH_OK) {
        out->rows = res.rows;
        out->quarantined = res.quarantined;
        out->seq = res.seq;
        out->result = res.rows == 0 ? MESH_MQTT_QUARANTINED : MESH_MQTT_STORED;
        if (res.quarantined)
            snprintf(out->reason, sizeof out->reason, "%zu rows quarantined", res.quarantined);
        return MESH_OK;
    }
    snprintf(out->reason, sizeof out->reason, "%s", err.msg[0] ? err.msg : mesh_status_text(st));
    if (payload_fault(st))
        return quarantine(o, sd, p, payload, n, out);
    out->result = MESH_MQTT_FAILED;
    return st;
}
