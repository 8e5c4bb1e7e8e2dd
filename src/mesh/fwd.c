/*
 * fwd.c - the forwarded write's request and reply (see fwd.h).
 */
#include "mesh/fwd.h"

#include <jansson.h>
#include <string.h>

#include "mesh/entry.h"

mesh_status_t mesh_fwd_encode(const mesh_fwd_req_t *r, mesh_buf_t *out)
{
    json_t *o = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s}", "v", 1, "product", r->product, "format",
                          r->format, "precision", r->precision, "idem", r->idem, "user", r->user,
                          "node", r->node);
    char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (line == NULL)
        return MESH_NOMEM;
    mesh_status_t st = mesh_buf_adds(out, line);
    free(line);
    if (st == MESH_OK)
        st = mesh_buf_addc(out, '\n');
    if (st == MESH_OK && r->body_len)
        st = mesh_buf_add(out, r->body, r->body_len);
    return st;
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < ' ' || *s == 0x7f)
            return false;
    return true;
}

static mesh_status_t field(json_t *o, const char *key, bool required, char *out, size_t cap,
                           mesh_err_t *err)
{
    json_t *v = json_object_get(o, key);
    out[0] = '\0';
    if (v == NULL && !required)
        return MESH_OK;
    if (!json_is_string(v) || json_string_length(v) >= cap || !printable(json_string_value(v)))
        return mesh_err_set(err, MESH_INVALID, "forwarded write: '%s' is missing or not valid",
                            key);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return MESH_OK;
}

mesh_status_t mesh_fwd_parse(const uint8_t *p, size_t n, mesh_fwd_req_t *out, mesh_err_t *err)
{
    memset(out, 0, sizeof *out);
    size_t lim = n < MESH_FWD_HEAD_MAX ? n : MESH_FWD_HEAD_MAX;
    const uint8_t *nl = memchr(p, '\n', lim);
    if (nl == NULL)
        return mesh_err_set(err, MESH_PARSE, "forwarded write: no header line within %d bytes",
                            MESH_FWD_HEAD_MAX);
    json_error_t je;
    json_t *o = json_loadb((const char *)p, (size_t)(nl - p), JSON_REJECT_DUPLICATES, &je);
    mesh_status_t st = MESH_OK;
    if (!json_is_object(o) || json_integer_value(json_object_get(o, "v")) != 1)
        st = mesh_err_set(err, MESH_PARSE, "forwarded write: the header is not a version 1 object");
    if (st == MESH_OK)
        st = field(o, "product", true, out->product, sizeof out->product, err);
    if (st == MESH_OK && !mesh_name_product_ok(out->product))
        st = mesh_err_set(err, MESH_INVALID, "forwarded write: not a product name");
    if (st == MESH_OK)
        st = field(o, "format", true, out->format, sizeof out->format, err);
    if (st == MESH_OK && strcmp(out->format, "json") && strcmp(out->format, "ndjson") &&
        strcmp(out->format, "csv") && strcmp(out->format, "lp"))
        st = mesh_err_set(err, MESH_INVALID, "forwarded write: unknown format");
    if (st == MESH_OK)
        st = field(o, "precision", false, out->precision, sizeof out->precision, err);
    if (st == MESH_OK)
        st = field(o, "idem", false, out->idem, sizeof out->idem, err);
    for (size_t i = 0; st == MESH_OK && out->idem[i]; i++)
        if (out->idem[i] == ' ')
            st = mesh_err_set(err, MESH_INVALID, "forwarded write: a bad idempotency key");
    if (st == MESH_OK)
        st = field(o, "user", true, out->user, sizeof out->user, err);
    if (st == MESH_OK)
        st = field(o, "node", true, out->node, sizeof out->node, err);
    if (st == MESH_OK && !mesh_entry_node_name_ok(out->node))
        st = mesh_err_set(err, MESH_INVALID, "forwarded write: not a node name");
    json_decref(o);
    if (st == MESH_OK) {
        out->body = nl + 1;
        out->body_len = n - (size_t)(nl + 1 - p);
    }
    return st;
}

mesh_status_t mesh_fwd_reply_parse(const uint8_t *p, size_t n, int *status, const uint8_t **json,
                                   size_t *json_len)
{
    *status = 0;
    size_t i = 0;
    int v = 0;
    while (i < n && i < 3 && p[i] >= '0' && p[i] <= '9')
        v = v * 10 + (p[i++] - '0');
    if (i != 3 || i >= n || p[i] != '\n' || v < 100 || v > 599)
        return MESH_PARSE;
    *status = v;
    *json = p + i + 1;
    *json_len = n - i - 1;
    return MESH_OK;
}
