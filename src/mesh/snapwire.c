/*
 * snapwire.c - encoding and the strict decoders of snapshot bootstrap messages (see
 * snapwire.h).
 */
#include "mesh/snapwire.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/entry.h"

#define SIG_CONTEXT "meshd-snap-v1\n"
#define MAGIC_REQ   "MSR1"
#define MAGIC_FRAME "MSF1"
#define MAGIC_LEN   4

/* The bytes a signature covers. */
mesh_status_t mesh_snap_request_encode(const mesh_snap_request_t *r, const char *subject,
                                       const mesh_signkey_t *key, mesh_buf_t *out)
{
    char nonce[2 * MESH_SNAP_NONCE_BYTES + 1];
    mesh_hex(r->nonce, sizeof r->nonce, nonce);
    json_t *o = json_pack("{s:i,s:s,s:s,s:I,s:s}", "v", 1, "node", r->node, "domain", r->domain,
                          "ts", (json_int_t)r->ts_ns, "nonce", nonce);
    if (o == NULL)
        return MESH_NOMEM;
    char *js = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    if (js == NULL)
        return MESH_NOMEM;
    mesh_status_t st = mesh_sign_envelope(key, SIG_CONTEXT, subject, MAGIC_REQ, js, strlen(js),
                                          MESH_SNAP_MAX_REQUEST, out);
    free(js);
    return st;
}

bool mesh_snap_request_verify(const void *p, size_t n, const char *subject,
                              const uint8_t pub[MESH_SIGN_PUB_BYTES])
{
    return mesh_sign_envelope_verify(pub, SIG_CONTEXT, subject, MAGIC_REQ, p, n,
                                     MESH_SNAP_MAX_REQUEST);
}

/* A string member shorter than cap, without control characters, copied into out. */
static mesh_status_t str_field(json_t *o, const char *key, char *out, size_t cap, mesh_err_t *err)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        return mesh_err_set(err, MESH_INVALID, "%s: missing or not a string", key);
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n >= cap)
        return mesh_err_set(err, MESH_INVALID, "%s: longer than %zu bytes", key, cap - 1);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return mesh_err_set(err, MESH_INVALID, "%s: control character", key);
    memcpy(out, s, n);
    out[n] = '\0';
    return MESH_OK;
}

mesh_status_t mesh_snap_request_parse(const void *p, size_t n, mesh_snap_request_t *out,
                                      mesh_err_t *err)
{
    memset(out, 0, sizeof *out);
    if (n > MESH_SNAP_MAX_REQUEST)
        return mesh_err_set(err, MESH_TOO_LARGE, "request larger than %d bytes",
                            MESH_SNAP_MAX_REQUEST);
    if (n < MAGIC_LEN + MESH_SIGN_SIG_BYTES + 2 || memcmp(p, MAGIC_REQ, MAGIC_LEN) != 0)
        return mesh_err_set(err, MESH_PARSE, "not a snapshot request");
    const char *js = (const char *)p + MAGIC_LEN + MESH_SIGN_SIG_BYTES;
    size_t jn = n - MAGIC_LEN - MESH_SIGN_SIG_BYTES;
    json_error_t je;
    json_t *o = json_loadb(js, jn, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        return mesh_err_set(err, MESH_PARSE, "not a JSON object");
    }
    char nonce[2 * MESH_SNAP_NONCE_BYTES + 1];
    json_t *v = json_object_get(o, "v"), *ts = json_object_get(o, "ts");
    mesh_status_t st = MESH_OK;
    if (!json_is_integer(v) || json_integer_value(v) != 1)
        st = mesh_err_set(err, MESH_INVALID, "v: not version 1");
    else if (json_object_size(o) != 5)
        st = mesh_err_set(err, MESH_INVALID, "unexpected members");
    else if ((st = str_field(o, "node", out->node, sizeof out->node, err)) != MESH_OK ||
             (st = str_field(o, "domain", out->domain, sizeof out->domain, err)) != MESH_OK ||
             (st = str_field(o, "nonce", nonce, sizeof nonce, err)) != MESH_OK)
        ; /* err is set */
    else if (!mesh_entry_node_name_ok(out->node))
        st = mesh_err_set(err, MESH_INVALID, "node: not a node name");
    else if (!mesh_name_domain_ok(out->domain))
        st = mesh_err_set(err, MESH_INVALID, "domain: not a domain name");
    else if (strlen(nonce) != 2 * MESH_SNAP_NONCE_BYTES ||
             !mesh_unhex(nonce, out->nonce, MESH_SNAP_NONCE_BYTES))
        st = mesh_err_set(err, MESH_INVALID, "nonce: not %d hex digits", 2 * MESH_SNAP_NONCE_BYTES);
    else if (!json_is_integer(ts) || json_integer_value(ts) <= 0)
        st = mesh_err_set(err, MESH_INVALID, "ts: not a positive integer");
    else
        out->ts_ns = (int64_t)json_integer_value(ts);
    json_decref(o);
    return st;
}

/* ---- frames ---- */

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static mesh_status_t frame(mesh_snap_kind_t kind, const void *body, size_t n, mesh_buf_t *out)
{
    mesh_buf_reset(out);
    if (n + MESH_SNAP_FRAME_HDR > MESH_SNAP_MAX_FRAME)
        return MESH_TOO_LARGE;
    uint8_t h[MESH_SNAP_FRAME_HDR];
    memcpy(h, MAGIC_FRAME, MAGIC_LEN);
    h[4] = (uint8_t)kind;
    put_le(h + 5, n, 4);
    mesh_status_t st = mesh_buf_add(out, h, sizeof h);
    if (st == MESH_OK && n)
        st = mesh_buf_add(out, body, n);
    return st;
}

mesh_status_t mesh_snap_data_encode(const uint8_t *p, size_t n, mesh_buf_t *out)
{
    return frame(MESH_SNAP_DATA, p, n, out);
}

mesh_status_t mesh_snap_error_encode(mesh_status_t code, const char *msg, mesh_buf_t *out)
{
    uint8_t b[1 + MESH_SNAP_MAX_TEXT];
    size_t n = strnlen(msg ? msg : "", MESH_SNAP_MAX_TEXT);
    b[0] = (uint8_t)code;
    memcpy(b + 1, msg ? msg : "", n);
    return frame(MESH_SNAP_ERROR, b, n + 1, out);
}

mesh_status_t mesh_snap_header_encode(uint64_t seq, uint64_t bytes, mesh_buf_t *out)
{
    uint8_t b[16];
    put_le(b, seq, 8);
    put_le(b + 8, bytes, 8);
    return frame(MESH_SNAP_HEADER, b, sizeof b, out);
}

mesh_status_t mesh_snap_end_encode(uint64_t bytes, uint32_t crc, mesh_buf_t *out)
{
    uint8_t b[12];
    put_le(b, bytes, 8);
    put_le(b + 8, crc, 4);
    return frame(MESH_SNAP_END, b, sizeof b, out);
}

mesh_status_t mesh_snap_frame_decode(const void *p, size_t n, mesh_snap_frame_t *out,
                                     mesh_err_t *err)
{
    memset(out, 0, sizeof *out);
    if (n > MESH_SNAP_MAX_FRAME)
        return mesh_err_set(err, MESH_TOO_LARGE, "frame larger than %d bytes", MESH_SNAP_MAX_FRAME);
    const uint8_t *b = p;
    if (n < MESH_SNAP_FRAME_HDR || memcmp(b, MAGIC_FRAME, MAGIC_LEN) != 0)
        return mesh_err_set(err, MESH_PARSE, "not a snapshot frame");
    uint64_t len = get_le(b + 5, 4);
    if (len != n - MESH_SNAP_FRAME_HDR)
        return mesh_err_set(err, MESH_PARSE, "frame length %llu does not match its %zu bytes",
                            (unsigned long long)len, n - MESH_SNAP_FRAME_HDR);
    const uint8_t *body = b + MESH_SNAP_FRAME_HDR;
    switch (b[4]) {
    case MESH_SNAP_DATA:
        if (len == 0 || len > MESH_SNAP_CHUNK_BYTES)
            return mesh_err_set(err, MESH_PARSE, "data frame of %llu bytes",
                                (unsigned long long)len);
        out->kind = MESH_SNAP_DATA;
        out->data = body;
        out->len = (size_t)len;
        return MESH_OK;
    case MESH_SNAP_ERROR:
        if (len < 1 || len > 1 + MESH_SNAP_MAX_TEXT || body[0] == MESH_OK ||
            body[0] >= MESH_STATUS__COUNT)
            return mesh_err_set(err, MESH_PARSE, "malformed error frame");
        out->kind = MESH_SNAP_ERROR;
        out->code = (mesh_status_t)body[0];
        for (size_t i = 1; i < len; i++)
            out->msg[i - 1] = body[i] < 0x20 || body[i] == 0x7f ? '?' : (char)body[i];
        out->msg[len - 1] = '\0';
        return MESH_OK;
    case MESH_SNAP_HEADER:
        if (len != 16)
            return mesh_err_set(err, MESH_PARSE, "malformed header frame");
        out->kind = MESH_SNAP_HEADER;
        out->seq = get_le(body, 8);
        out->bytes = get_le(body + 8, 8);
        return MESH_OK;
    case MESH_SNAP_END:
        if (len != 12)
            return mesh_err_set(err, MESH_PARSE, "malformed end frame");
        out->kind = MESH_SNAP_END;
        out->bytes = get_le(body, 8);
        out->crc = (uint32_t)get_le(body + 8, 4);
        return MESH_OK;
    default:
        return mesh_err_set(err, MESH_PARSE, "unknown frame kind %u", (unsigned)b[4]);
    }
}
