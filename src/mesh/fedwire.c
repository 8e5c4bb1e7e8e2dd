/*
 * fedwire.c - encoding and the strict decoders of federated query messages (see fedwire.h).
 */
#include "mesh/fedwire.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mesh/entry.h"

#define SIG_CONTEXT "meshd-fed-v1\n"
#define MAGIC_LEN   4
#define FRAME_HDR   12 /* magic, kind, last, ncols, nrows */

static const char *const op_sql[MESH_FED_OP__COUNT] = {
    "=", ">", ">=", "<", "<=", "!=", "IS", "IS NOT", "IS NULL", "IS NOT NULL", "LIKE", "GLOB"};

const char *mesh_fed_op_sql(mesh_fed_opr_t op)
{
    return (unsigned)op < MESH_FED_OP__COUNT ? op_sql[op] : "=";
}

bool mesh_fed_op_has_value(mesh_fed_opr_t op)
{
    return op != MESH_FED_OP_ISNULL && op != MESH_FED_OP_NOTNULL;
}

bool mesh_fed_table_ok(const char *t)
{
    char name[MESH_FED_TABLE_MAX + 1];
    size_t n = strlen(t);
    if (n > MESH_FED_TABLE_MAX)
        return false;
    memcpy(name, t, n + 1);
    if (n > 12 && strcmp(name + n - 12, "__quarantine") == 0)
        name[n - 12] = '\0';
    else if (n > 6 && strcmp(name + n - 6, "__last") == 0)
        name[n - 6] = '\0';
    else if (n > 5 && strcmp(name + n - 5, "__agg") == 0)
        name[n - 5] = '\0';
    return mesh_name_product_ok(name);
}

/* ---- requests ---- */

/* The bytes a signature covers. */
static json_t *datum_json(const mesh_datum_t *d)
{
    switch (d->type) {
    case MESH_V_INT:
        return json_integer(d->i);
    case MESH_V_REAL:
        return json_real(d->d);
    case MESH_V_TEXT:
        return json_stringn(d->s ? d->s : "", d->n);
    default:
        return json_null();
    }
}

mesh_status_t mesh_fed_request_encode(const mesh_fed_request_t *r, const char *subject,
                                      const mesh_signkey_t *key, mesh_buf_t *out)
{
    char nonce[2 * MESH_FED_NONCE_BYTES + 1];
    mesh_hex(r->nonce, sizeof r->nonce, nonce);
    static const char *const ops[] = {"describe", "describe", "scan", "query"};
    json_t *o =
        json_pack("{s:i,s:s,s:s,s:s,s:s,s:I,s:s}", "v", 1, "op",
                  ops[(unsigned)r->op < MESH_ARRAY_LEN(ops) ? r->op : 0], "node", r->node, "user",
                  r->user, "domain", r->domain, "ts", (json_int_t)r->ts_ns, "nonce", nonce);
    if (o == NULL)
        return MESH_NOMEM;
    if (r->op == MESH_FED_QUERY) {
        if (r->sql_len > MESH_FED_MAX_SQL) {
            json_decref(o);
            return MESH_TOO_LARGE;
        }
        json_object_set_new(o, "sql", json_stringn(r->sql ? r->sql : "", r->sql_len));
        if (r->timeout_ms > 0)
            json_object_set_new(o, "timeout_ms", json_integer(r->timeout_ms));
        if (r->max_rows > 0)
            json_object_set_new(o, "max_rows", json_integer(r->max_rows));
    }
    if (r->compact && r->op != MESH_FED_DESCRIBE)
        json_object_set_new(o, "enc", json_integer(2));
    if (r->op == MESH_FED_SCAN) {
        json_t *cols = json_array(), *where = json_array();
        for (size_t i = 0; i < r->ncols; i++)
            json_array_append_new(cols, json_string(r->cols[i]));
        for (size_t i = 0; i < r->ncons; i++) {
            json_t *c =
                json_pack("{s:s,s:s}", "col", r->cons[i].col, "op", mesh_fed_op_sql(r->cons[i].op));
            if (c && mesh_fed_op_has_value(r->cons[i].op))
                json_object_set_new(c, "val", datum_json(&r->cons[i].val));
            json_array_append_new(where, c);
        }
        json_object_set_new(o, "table", json_string(r->table));
        json_object_set_new(o, "cols", cols);
        json_object_set_new(o, "where", where);
        if (r->limit >= 0)
            json_object_set_new(o, "limit", json_integer(r->limit));
    }
    char *js = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    if (js == NULL)
        return MESH_NOMEM;
    mesh_status_t st = mesh_sign_envelope(key, SIG_CONTEXT, subject, MESH_FED_MAGIC_REQ, js,
                                          strlen(js), MESH_FED_MAX_REQUEST, out);
    free(js);
    return st;
}

bool mesh_fed_request_verify(const void *p, size_t n, const char *subject,
                             const uint8_t pub[MESH_SIGN_PUB_BYTES])
{
    return mesh_sign_envelope_verify(pub, SIG_CONTEXT, subject, MESH_FED_MAGIC_REQ, p, n,
                                     MESH_FED_MAX_REQUEST);
}

/* A string member of at most max bytes, without control characters, copied into out. */
static mesh_status_t str_field(json_t *o, const char *key, char *out, size_t cap, bool required,
                               mesh_err_t *err)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL && !required) {
        out[0] = '\0';
        return MESH_OK;
    }
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

static mesh_status_t parse_cons(json_t *c, mesh_fed_cons_t *out, mesh_err_t *err)
{
    if (!json_is_object(c))
        return mesh_err_set(err, MESH_INVALID, "where: an item is not an object");
    char op[16];
    mesh_status_t st = str_field(c, "col", out->col, sizeof out->col, true, err);
    if (st == MESH_OK)
        st = str_field(c, "op", op, sizeof op, true, err);
    if (st != MESH_OK)
        return st;
    if (!mesh_name_column_ok(out->col))
        return mesh_err_set(err, MESH_INVALID, "where: '%s' is not a column name", out->col);
    int k = -1;
    for (int i = 0; i < MESH_FED_OP__COUNT; i++)
        if (strcmp(op, op_sql[i]) == 0)
            k = i;
    if (k < 0)
        return mesh_err_set(err, MESH_INVALID, "where: unknown operator");
    out->op = (mesh_fed_opr_t)k;
    json_t *v = json_object_get(c, "val");
    memset(&out->val, 0, sizeof out->val);
    if (!mesh_fed_op_has_value(out->op)) {
        if (v != NULL)
            return mesh_err_set(err, MESH_INVALID, "where: %s takes no value", op);
        out->val.type = MESH_V_NULL;
        return MESH_OK;
    }
    if (json_is_integer(v)) {
        out->val.type = MESH_V_INT;
        out->val.i = json_integer_value(v);
    } else if (json_is_real(v)) {
        out->val.type = MESH_V_REAL;
        out->val.d = json_real_value(v);
    } else if (json_is_string(v)) {
        size_t n = json_string_length(v);
        if (n > MESH_FED_MAX_VALUE)
            return mesh_err_set(err, MESH_LIMIT, "where: a value longer than %d bytes",
                                MESH_FED_MAX_VALUE);
        char *s = mesh_strndup(json_string_value(v), n);
        if (s == NULL)
            return mesh_err_set(err, MESH_NOMEM, "out of memory");
        out->val.type = MESH_V_TEXT;
        out->val.s = s;
        out->val.n = n;
    } else if (json_is_null(v)) {
        out->val.type = MESH_V_NULL;
    } else {
        return mesh_err_set(err, MESH_INVALID, "where: a value is not a number, text or null");
    }
    return MESH_OK;
}

/* An optional non-negative integer member (0 when absent). */
static mesh_status_t count_field(json_t *o, const char *key, int64_t *out, mesh_err_t *err)
{
    json_t *v = json_object_get(o, key);
    *out = 0;
    if (v == NULL)
        return MESH_OK;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return mesh_err_set(err, MESH_INVALID, "%s: not a non-negative integer", key);
    *out = (int64_t)json_integer_value(v);
    return MESH_OK;
}

/* A query's statement and limits (the owner's sandbox decides what the statement may do). */
static mesh_status_t parse_query(json_t *o, mesh_fed_request_t *r, mesh_err_t *err)
{
    json_t *v = json_object_get(o, "sql");
    if (!json_is_string(v))
        return mesh_err_set(err, MESH_INVALID, "sql: missing or not a string");
    size_t n = json_string_length(v);
    if (n == 0 || n > MESH_FED_MAX_SQL)
        return mesh_err_set(err, n ? MESH_LIMIT : MESH_INVALID,
                            "sql: empty or longer than %d bytes", MESH_FED_MAX_SQL);
    if (strlen(json_string_value(v)) != n)
        return mesh_err_set(err, MESH_INVALID, "sql: a NUL character");
    mesh_status_t st = count_field(o, "timeout_ms", &r->timeout_ms, err);
    if (st == MESH_OK)
        st = count_field(o, "max_rows", &r->max_rows, err);
    if (st != MESH_OK)
        return st;
    if ((r->sql = mesh_strndup(json_string_value(v), n)) == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    r->sql_len = n;
    return MESH_OK;
}

static mesh_status_t parse_request(json_t *o, mesh_fed_request_t *r, mesh_err_t *err)
{
    if (!json_is_object(o))
        return mesh_err_set(err, MESH_INVALID, "not a JSON object");
    json_t *v = json_object_get(o, "v");
    if (!json_is_integer(v) || json_integer_value(v) != 1)
        return mesh_err_set(err, MESH_INVALID, "v: not version 1");
    char op[16], nonce[2 * MESH_FED_NONCE_BYTES + 1];
    mesh_status_t st;
    if ((st = str_field(o, "op", op, sizeof op, true, err)) != MESH_OK ||
        (st = str_field(o, "node", r->node, sizeof r->node, true, err)) != MESH_OK ||
        (st = str_field(o, "user", r->user, sizeof r->user, true, err)) != MESH_OK ||
        (st = str_field(o, "domain", r->domain, sizeof r->domain, true, err)) != MESH_OK ||
        (st = str_field(o, "nonce", nonce, sizeof nonce, true, err)) != MESH_OK)
        return st;
    if (strcmp(op, "describe") == 0)
        r->op = MESH_FED_DESCRIBE;
    else if (strcmp(op, "scan") == 0)
        r->op = MESH_FED_SCAN;
    else if (strcmp(op, "query") == 0)
        r->op = MESH_FED_QUERY;
    else
        return mesh_err_set(err, MESH_INVALID, "op: not describe, scan or query");
    if (!mesh_entry_node_name_ok(r->node))
        return mesh_err_set(err, MESH_INVALID, "node: not a node name");
    if (r->user[0] == '\0')
        return mesh_err_set(err, MESH_INVALID, "user: empty");
    if (!mesh_name_domain_ok(r->domain))
        return mesh_err_set(err, MESH_INVALID, "domain: not a domain name");
    if (!mesh_unhex(nonce, r->nonce, sizeof r->nonce))
        return mesh_err_set(err, MESH_INVALID, "nonce: not %d hex digits",
                            2 * MESH_FED_NONCE_BYTES);
    json_t *ts = json_object_get(o, "ts");
    if (!json_is_integer(ts) || json_integer_value(ts) <= 0)
        return mesh_err_set(err, MESH_INVALID, "ts: missing or not a positive integer");
    r->ts_ns = (int64_t)json_integer_value(ts);
    r->limit = -1;
    json_t *enc = json_object_get(o, "enc");
    if (enc && (!json_is_integer(enc) || json_integer_value(enc) < 1))
        return mesh_err_set(err, MESH_INVALID, "enc: not a positive integer");
    /* a later caller may name an encoding this owner does not know: it gets one it does */
    r->compact = enc && json_integer_value(enc) >= 2;
    if (r->op == MESH_FED_QUERY)
        return parse_query(o, r, err);
    if (r->op != MESH_FED_SCAN)
        return MESH_OK;
    if ((st = str_field(o, "table", r->table, sizeof r->table, true, err)) != MESH_OK)
        return st;
    if (!mesh_fed_table_ok(r->table))
        return mesh_err_set(err, MESH_INVALID, "table: not a product name");
    json_t *cols = json_object_get(o, "cols"), *where = json_object_get(o, "where");
    if (!json_is_array(cols) || (where && !json_is_array(where)))
        return mesh_err_set(err, MESH_INVALID, "cols, where: not arrays");
    size_t nc = json_array_size(cols), nw = json_array_size(where);
    if (nc > MESH_FED_MAX_COLS || nw > MESH_FED_MAX_CONS)
        return mesh_err_set(err, MESH_LIMIT, "more than %d columns or %d constraints",
                            MESH_FED_MAX_COLS, MESH_FED_MAX_CONS);
    if (nc && (r->cols = calloc(nc, sizeof *r->cols)) == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    for (size_t i = 0; i < nc; i++) {
        json_t *c = json_array_get(cols, i);
        size_t n = json_string_length(c);
        if (!json_is_string(c) || n >= sizeof r->cols[0] || strlen(json_string_value(c)) != n ||
            !mesh_name_column_ok(json_string_value(c)))
            return mesh_err_set(err, MESH_INVALID, "cols: an item is not a column name");
        memcpy(r->cols[i], json_string_value(c), n + 1);
        r->ncols++;
    }
    for (size_t i = 0; i < nw; i++) {
        r->ncons++;
        if ((st = parse_cons(json_array_get(where, i), &r->cons[i], err)) != MESH_OK)
            return st;
    }
    json_t *lim = json_object_get(o, "limit");
    if (lim) {
        if (!json_is_integer(lim) || json_integer_value(lim) < 0)
            return mesh_err_set(err, MESH_INVALID, "limit: not a non-negative integer");
        r->limit = (int64_t)json_integer_value(lim);
    }
    return MESH_OK;
}

mesh_status_t mesh_fed_request_parse(const void *p, size_t n, mesh_fed_request_t *out,
                                     mesh_err_t *err)
{
    memset(out, 0, sizeof *out);
    out->limit = -1;
    if (n > MESH_FED_MAX_REQUEST)
        return mesh_err_set(err, MESH_TOO_LARGE, "request of %zu bytes (limit %d)", n,
                            MESH_FED_MAX_REQUEST);
    if (n < MAGIC_LEN + MESH_SIGN_SIG_BYTES || memcmp(p, MESH_FED_MAGIC_REQ, MAGIC_LEN) != 0)
        return mesh_err_set(err, MESH_PARSE, "not a signed federation request");
    const char *js = (const char *)p + MAGIC_LEN + MESH_SIGN_SIG_BYTES;
    json_error_t je;
    json_t *o = json_loadb(js, n - MAGIC_LEN - MESH_SIGN_SIG_BYTES, JSON_REJECT_DUPLICATES, &je);
    if (o == NULL)
        return mesh_err_set(err, MESH_PARSE, "malformed JSON at column %d: %s", je.column, je.text);
    mesh_status_t st = parse_request(o, out, err);
    json_decref(o);
    if (st != MESH_OK)
        mesh_fed_request_free(out);
    return st;
}

void mesh_fed_request_free(mesh_fed_request_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->ncons; i++)
        if (r->cons[i].val.type == MESH_V_TEXT)
            free((char *)r->cons[i].val.s);
    r->ncons = 0;
    free(r->cols);
    r->cols = NULL;
    r->ncols = 0;
    free(r->sql);
    r->sql = NULL;
    r->sql_len = 0;
}

/* ---- frames ---- */

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static mesh_status_t header(mesh_buf_t *out, mesh_fed_kind_t kind)
{
    uint8_t h[FRAME_HDR] = {'M', 'F', 'C', '1', (uint8_t)kind, 1, 0, 0, 0, 0, 0, 0};
    return mesh_buf_add(out, h, sizeof h);
}

/* ---- compact values (tags 4-6) ---- */

#define DICT_SLOTS 8192               /* twice MESH_FED_DICT_MAX: a probe always ends */
#define INT_EXACT  9007199254740992.0 /* 2^53: doubles up to this hold every integer */

struct mesh_fed_compact {
    uint64_t prev[MESH_FED_MAX_COLS]; /* the last integer of each column */
    uint32_t ndict, gen;              /* entries; slots of another generation are free */
    struct {
        uint32_t gen, off; /* the text's bytes at out->data + off */
        uint16_t len, idx;
    } slot[DICT_SLOTS];
};

mesh_fed_compact_t *mesh_fed_compact_new(void)
{
    return calloc(1, sizeof(mesh_fed_compact_t));
}

void mesh_fed_compact_free(mesh_fed_compact_t *cz)
{
    free(cz);
}

static uint64_t zigzag(int64_t v)
{
    uint64_t u = (uint64_t)v;
    return (u << 1) ^ (0 - (u >> 63));
}

static int64_t unzigzag(uint64_t z)
{
    return (int64_t)((z >> 1) ^ (0 - (z & 1)));
}

static size_t uvarint_len(uint64_t v)
{
    size_t n = 1;
    for (; v >= 0x80; v >>= 7)
        n++;
    return n;
}

static uint32_t text_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

void mesh_fed_rows_begin(mesh_fed_enc_t *e, mesh_buf_t *out, uint16_t ncols)
{
    e->out = out;
    e->start = out->len;
    e->ncols = ncols;
    e->nrows = 0;
    e->target = MESH_FED_CHUNK_BYTES;
    e->cz = NULL;
    e->col = 0;
    header(out, MESH_FED_ROWS);
}

void mesh_fed_rows_compact(mesh_fed_enc_t *e, mesh_fed_compact_t *cz)
{
    e->cz = cz;
    memset(cz->prev, 0, sizeof cz->prev);
    cz->ndict = 0;
    if (++cz->gen == 0) { /* wrapped: every slot free again */
        memset(cz->slot, 0, sizeof cz->slot);
        cz->gen = 1;
    }
}

static mesh_status_t add_tagged_uvarint(mesh_buf_t *b, uint8_t tag, uint64_t v)
{
    mesh_status_t st = mesh_buf_addc(b, tag);
    return st == MESH_OK ? mesh_buf_add_uvarint(b, v) : st;
}

/* A text in compact mode: an entry of the frame's table when it is there (tag 6), else the
 * bytes (tag 3), entered when short enough (as the decoder enters them). */
static mesh_status_t compact_text(mesh_fed_enc_t *e, const char *s, size_t n)
{
    mesh_fed_compact_t *cz = e->cz;
    mesh_buf_t *b = e->out;
    if (n > MESH_FED_DICT_TEXT)
        return MESH_NOT_FOUND;
    uint32_t i = text_hash(s, n) % DICT_SLOTS;
    bool found = false;
    for (; cz->slot[i].gen == cz->gen && !found; i = found ? i : (i + 1) % DICT_SLOTS)
        found = cz->slot[i].len == n && memcmp(b->data + cz->slot[i].off, s, n) == 0;
    if (found && uvarint_len(cz->slot[i].idx) < uvarint_len(n) + n)
        return add_tagged_uvarint(b, 6, cz->slot[i].idx);
    mesh_status_t st = add_tagged_uvarint(b, 3, n);
    size_t off = b->len;
    if (st == MESH_OK)
        st = mesh_buf_add(b, s, n);
    if (st == MESH_OK && found && cz->ndict < MESH_FED_DICT_MAX) {
        cz->ndict++; /* sent again (shorter so): the decoder enters it again; its slot keeps
                        the first entry */
    } else if (st == MESH_OK && cz->ndict < MESH_FED_DICT_MAX && off <= UINT32_MAX) {
        cz->slot[i].gen = cz->gen;
        cz->slot[i].off = (uint32_t)off;
        cz->slot[i].len = (uint16_t)n;
        cz->slot[i].idx = (uint16_t)cz->ndict++;
    }
    return st;
}

mesh_status_t mesh_fed_rows_value(mesh_fed_enc_t *e, const mesh_datum_t *d)
{
    mesh_buf_t *b = e->out;
    mesh_fed_compact_t *cz = e->cz;
    uint32_t col = e->col++ % MESH_FED_MAX_COLS;
    switch (d->type) {
    case MESH_V_INT: {
        if (cz) {
            uint64_t z = zigzag((int64_t)((uint64_t)d->i - cz->prev[col]));
            cz->prev[col] = (uint64_t)d->i;
            if (uvarint_len(z) < 8)
                return add_tagged_uvarint(b, 4, z);
        }
        mesh_status_t st = mesh_buf_addc(b, 1);
        return st == MESH_OK ? mesh_buf_add_u64(b, (uint64_t)d->i) : st;
    }
    case MESH_V_REAL: {
        /* the range test first: it is false for NaN, and the cast is defined after it */
        if (cz && d->d >= -INT_EXACT && d->d <= INT_EXACT && d->d == (double)(int64_t)d->d &&
            !(d->d == 0 && signbit(d->d))) {
            uint64_t z = zigzag((int64_t)d->d);
            if (uvarint_len(z) < 8)
                return add_tagged_uvarint(b, 5, z);
        }
        uint64_t bits;
        memcpy(&bits, &d->d, sizeof bits);
        mesh_status_t st = mesh_buf_addc(b, 2);
        return st == MESH_OK ? mesh_buf_add_u64(b, bits) : st;
    }
    case MESH_V_TEXT: {
        const char *s = d->s ? d->s : "";
        if (cz) {
            mesh_status_t st = compact_text(e, s, d->n);
            if (st != MESH_NOT_FOUND)
                return st;
        }
        mesh_status_t st = add_tagged_uvarint(b, 3, d->n);
        return st == MESH_OK ? mesh_buf_add(b, s, d->n) : st;
    }
    default:
        return mesh_buf_addc(b, 0);
    }
}

void mesh_fed_rows_row(mesh_fed_enc_t *e)
{
    e->nrows++;
    e->col = 0;
}

void mesh_fed_rows_end(mesh_fed_enc_t *e, bool last)
{
    uint8_t *h = (uint8_t *)e->out->data + e->start;
    h[5] = last ? 1 : 0;
    put_u16(h + 6, e->ncols);
    put_u32(h + 8, e->nrows);
}

mesh_status_t mesh_fed_error_encode(mesh_status_t code, const char *msg, mesh_buf_t *out)
{
    size_t n = strnlen(msg, 500);
    uint8_t t[3] = {(uint8_t)code, (uint8_t)n, (uint8_t)(n >> 8)};
    mesh_status_t st = header(out, MESH_FED_ERROR);
    if (st == MESH_OK)
        st = mesh_buf_add(out, t, sizeof t);
    return st == MESH_OK ? mesh_buf_add(out, msg, n) : st;
}

static const char *const col_types[] = {"TEXT",      "INTEGER", "REAL", "BOOLEAN",
                                        "TIMESTAMP", "DATE",    "TIME", "JSON"};

const char *mesh_fed_type_name(int i)
{
    return i >= 0 && (size_t)i < MESH_ARRAY_LEN(col_types) ? col_types[i] : NULL;
}

int mesh_fed_type_index(const char *name)
{
    for (size_t i = 0; name && i < MESH_ARRAY_LEN(col_types); i++)
        if (strcmp(name, col_types[i]) == 0)
            return (int)i;
    return -1;
}

void mesh_fed_meta_free(mesh_fed_meta_t *m)
{
    if (m == NULL)
        return;
    free(m->cols);
    free(m->types);
    free(m->products);
    free(m->policies);
    memset(m, 0, sizeof *m);
    m->scanned = m->suppressed = -1;
}

/* n bytes of s, at most max, cut after the last sep that fits when longer. */
static size_t cut_at(const char *s, size_t max, char sep)
{
    size_t n = strlen(s);
    if (n <= max)
        return n;
    while (max > 0 && s[max - 1] != sep)
        max--;
    return max;
}

/* n bytes of a name, at most max, not inside a UTF-8 sequence. */
static size_t cut_utf8(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return n;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    return max;
}

mesh_status_t mesh_fed_rows_meta(mesh_fed_enc_t *e, const mesh_fed_meta_t *m)
{
    json_t *o = json_object();
    if (o == NULL)
        return MESH_NOMEM;
    if (m->ncols) {
        json_t *cols = json_array();
        for (size_t i = 0; i < m->ncols; i++) {
            const char *ty = mesh_fed_type_name(m->types[i]);
            json_array_append_new(cols, json_pack("[s%,o]", m->cols[i],
                                                  cut_utf8(m->cols[i], MESH_FED_NAME_MAX),
                                                  ty ? json_string(ty) : json_null()));
        }
        json_object_set_new(o, "cols", cols);
    }
    if (m->products)
        json_object_set_new(
            o, "products", json_stringn(m->products, cut_at(m->products, MESH_FED_META_TEXT, ',')));
    if (m->policies)
        json_object_set_new(
            o, "policies",
            json_stringn(m->policies, cut_at(m->policies, MESH_FED_META_TEXT, '\n')));
    if (m->scanned >= 0)
        json_object_set_new(o, "scanned", json_integer(m->scanned));
    if (m->scanned >= 0 || m->suppressed >= 0)
        json_object_set_new(o, "suppressed", json_integer(m->suppressed));
    char *js = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (js == NULL)
        return MESH_NOMEM;
    size_t n = strlen(js);
    uint8_t len[4];
    put_u32(len, (uint32_t)n);
    mesh_status_t st = mesh_buf_add(e->out, len, sizeof len);
    if (st == MESH_OK)
        st = mesh_buf_add(e->out, js, n);
    free(js);
    if (st == MESH_OK)
        e->out->data[e->start + 4] = (char)MESH_FED_RESULT;
    return st;
}

/* A trailer (see fedwire.h): strict, every member optional, nothing else. */
static mesh_status_t parse_meta(const char *p, size_t n, mesh_fed_meta_t *m, mesh_err_t *err)
{
    json_error_t je;
    json_t *o = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        return mesh_err_set(err, MESH_PARSE, "result trailer: not a JSON object");
    }
    mesh_status_t st = MESH_OK;
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        if (st != MESH_OK)
            break;
        if (strcmp(key, "cols") == 0) {
            size_t nc = json_array_size(v);
            if (!json_is_array(v) || nc == 0 || nc > MESH_FED_MAX_COLS) {
                st = mesh_err_set(err, MESH_INVALID, "result trailer: cols");
                break;
            }
            if ((m->cols = calloc(nc, sizeof *m->cols)) == NULL ||
                (m->types = calloc(nc, sizeof *m->types)) == NULL) {
                st = mesh_err_set(err, MESH_NOMEM, "out of memory");
                break;
            }
            for (size_t i = 0; i < nc && st == MESH_OK; i++) {
                json_t *c = json_array_get(v, i);
                json_t *cn = json_array_get(c, 0), *ct = json_array_get(c, 1);
                size_t len = json_string_length(cn);
                int ty = json_is_string(ct) ? mesh_fed_type_index(json_string_value(ct)) : -1;
                if (json_array_size(c) != 2 || !json_is_string(cn) || len > MESH_FED_NAME_MAX ||
                    strlen(json_string_value(cn)) != len || (!json_is_null(ct) && ty < 0)) {
                    st = mesh_err_set(err, MESH_INVALID, "result trailer: a column");
                    break;
                }
                memcpy(m->cols[i], json_string_value(cn), len + 1);
                m->types[i] = (int8_t)ty;
                m->ncols++;
            }
        } else if (strcmp(key, "products") == 0 || strcmp(key, "policies") == 0) {
            char **dst = key[1] == 'r' ? &m->products : &m->policies;
            size_t len = json_string_length(v);
            if (!json_is_string(v) || len > MESH_FED_META_TEXT ||
                strlen(json_string_value(v)) != len) {
                st = mesh_err_set(err, MESH_INVALID, "result trailer: %s", key);
                break;
            }
            if ((*dst = mesh_strndup(json_string_value(v), len)) == NULL)
                st = mesh_err_set(err, MESH_NOMEM, "out of memory");
        } else if (strcmp(key, "scanned") == 0 || strcmp(key, "suppressed") == 0) {
            bool scanned = key[1] == 'c';
            if (!json_is_integer(v) || json_integer_value(v) < (scanned ? 0 : -1)) {
                st = mesh_err_set(err, MESH_INVALID, "result trailer: %s", key);
                break;
            }
            *(scanned ? &m->scanned : &m->suppressed) = (int64_t)json_integer_value(v);
        } else {
            st = mesh_err_set(err, MESH_INVALID, "result trailer: unknown member");
        }
    }
    json_decref(o);
    return st;
}

mesh_status_t mesh_fed_schema_encode(const mesh_fed_schema_t *s, mesh_buf_t *out)
{
    json_t *tables = json_array();
    for (size_t i = 0; i < s->ntables; i++) {
        json_t *cols = json_array();
        for (size_t k = 0; k < s->tables[i].ncols; k++)
            json_array_append_new(cols,
                                  json_pack("[s,s]", s->tables[i].cols[k], s->tables[i].types[k]));
        json_array_append_new(tables,
                              json_pack("{s:s,s:o}", "name", s->tables[i].name, "cols", cols));
    }
    json_t *o = json_pack("{s:o}", "tables", tables);
    char *js = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(o);
    if (js == NULL)
        return MESH_NOMEM;
    mesh_status_t st = strlen(js) + FRAME_HDR > MESH_FED_MAX_FRAME ? MESH_TOO_LARGE : MESH_OK;
    if (st == MESH_OK)
        st = header(out, MESH_FED_SCHEMA);
    if (st == MESH_OK)
        st = mesh_buf_adds(out, js);
    free(js);
    return st;
}

void mesh_fed_schema_free(mesh_fed_schema_t *s)
{
    for (size_t i = 0; s && i < s->ntables; i++) {
        free(s->tables[i].cols);
        free(s->tables[i].types);
    }
    if (s) {
        free(s->tables);
        s->tables = NULL;
        s->ntables = 0;
    }
}

static mesh_status_t parse_schema(const char *p, size_t n, mesh_fed_schema_t *s, mesh_err_t *err)
{
    json_error_t je;
    json_t *o = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
    if (o == NULL)
        return mesh_err_set(err, MESH_PARSE, "schema: malformed JSON: %s", je.text);
    mesh_status_t st = MESH_OK;
    json_t *tables = json_object_get(o, "tables");
    size_t nt = json_array_size(tables);
    if (!json_is_array(tables))
        st = mesh_err_set(err, MESH_INVALID, "schema: tables is not an array");
    else if (nt > MESH_FED_MAX_TABLES)
        st = mesh_err_set(err, MESH_LIMIT, "schema: more than %d tables", MESH_FED_MAX_TABLES);
    else if (nt && (s->tables = calloc(nt, sizeof *s->tables)) == NULL)
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
    for (size_t i = 0; i < nt && st == MESH_OK; i++) {
        json_t *t = json_array_get(tables, i);
        mesh_fed_table_t *ft = &s->tables[s->ntables++];
        json_t *cols = json_object_get(t, "cols");
        size_t nc = json_array_size(cols);
        if (!json_is_object(t) || !json_is_array(cols)) {
            st = mesh_err_set(err, MESH_INVALID, "schema: a table is not {name, cols}");
            break;
        }
        if ((st = str_field(t, "name", ft->name, sizeof ft->name, true, err)) != MESH_OK)
            break;
        if (!mesh_fed_table_ok(ft->name) || nc > MESH_FED_MAX_COLS) {
            st = mesh_err_set(err, MESH_INVALID, "schema: a bad table name or too many columns");
            break;
        }
        /* a table name appears once */
        for (size_t k = 0; k + 1 < s->ntables && st == MESH_OK; k++)
            if (strcmp(s->tables[k].name, ft->name) == 0)
                st = mesh_err_set(err, MESH_INVALID, "schema: table %s twice", ft->name);
        if (st != MESH_OK)
            break;
        if (nc && ((ft->cols = calloc(nc, sizeof *ft->cols)) == NULL ||
                   (ft->types = calloc(nc, sizeof *ft->types)) == NULL)) {
            st = mesh_err_set(err, MESH_NOMEM, "out of memory");
            break;
        }
        for (size_t k = 0; k < nc && st == MESH_OK; k++) {
            json_t *c = json_array_get(cols, k);
            json_t *cn = json_array_get(c, 0), *ct = json_array_get(c, 1);
            if (!json_is_array(c) || json_array_size(c) != 2 || !json_is_string(cn) ||
                !json_is_string(ct) || json_string_length(cn) >= sizeof ft->cols[0] ||
                strlen(json_string_value(cn)) != json_string_length(cn) ||
                !mesh_name_column_ok(json_string_value(cn))) {
                st = mesh_err_set(err, MESH_INVALID, "schema: a column is not [name, type]");
                break;
            }
            int ty = -1;
            for (size_t j = 0; j < MESH_ARRAY_LEN(col_types); j++)
                if (strcmp(json_string_value(ct), col_types[j]) == 0)
                    ty = (int)j;
            if (ty < 0) {
                st = mesh_err_set(err, MESH_INVALID, "schema: unknown column type");
                break;
            }
            memcpy(ft->cols[k], json_string_value(cn), json_string_length(cn) + 1);
            snprintf(ft->types[k], sizeof ft->types[k], "%s", col_types[ty]);
            ft->ncols++;
        }
    }
    json_decref(o);
    if (st != MESH_OK)
        mesh_fed_schema_free(s);
    return st;
}

mesh_status_t mesh_fed_frame_decode(const void *p, size_t n, mesh_fed_frame_t *out, mesh_err_t *err)
{
    memset(out, 0, sizeof *out);
    out->meta.scanned = out->meta.suppressed = -1;
    if (n > MESH_FED_MAX_FRAME)
        return mesh_err_set(err, MESH_TOO_LARGE, "frame of %zu bytes (limit %d)", n,
                            MESH_FED_MAX_FRAME);
    mesh_cursor_t c;
    mesh_cursor_init(&c, p, n);
    const uint8_t *magic = mesh_cursor_bytes(&c, MAGIC_LEN);
    if (magic == NULL || memcmp(magic, MESH_FED_MAGIC_FRAME, MAGIC_LEN) != 0)
        return mesh_err_set(err, MESH_PARSE, "not a federation frame");
    uint8_t kind = mesh_cursor_u8(&c), last = mesh_cursor_u8(&c);
    const uint8_t *nc = mesh_cursor_bytes(&c, 2);
    uint32_t nrows = mesh_cursor_u32(&c);
    if (c.bad || nc == NULL || kind > MESH_FED_RESULT || last > 1)
        return mesh_err_set(err, MESH_PARSE, "bad frame header");
    out->kind = (mesh_fed_kind_t)kind;
    out->last = last;
    out->ncols = (uint16_t)(nc[0] | nc[1] << 8);
    out->nrows = nrows;
    if (kind == MESH_FED_ERROR) {
        uint8_t code = mesh_cursor_u8(&c);
        const uint8_t *ln = mesh_cursor_bytes(&c, 2);
        size_t len = ln ? (size_t)(ln[0] | ln[1] << 8) : 0;
        const uint8_t *msg = mesh_cursor_bytes(&c, len);
        if (c.bad || msg == NULL || c.n != 0 || code == MESH_OK || code >= MESH_STATUS__COUNT ||
            len >= sizeof out->msg)
            return mesh_err_set(err, MESH_PARSE, "bad error frame");
        out->code = (mesh_status_t)code;
        for (size_t i = 0; i < len; i++) /* shown to users: no control characters */
            out->msg[i] = msg[i] < 0x20 || msg[i] == 0x7f ? '?' : (char)msg[i];
        out->msg[len] = '\0';
        return MESH_OK;
    }
    if (kind == MESH_FED_SCHEMA)
        return parse_schema((const char *)c.p, c.n, &out->schema, err);
    if (out->ncols > MESH_FED_MAX_COLS || nrows > MESH_FED_MAX_ROWS)
        return mesh_err_set(err, MESH_LIMIT, "frame of %u rows of %u columns", nrows, out->ncols);
    size_t nvals = (size_t)nrows * out->ncols;
    /* every value takes at least one byte: more values than bytes is a lie */
    if (nvals > c.n)
        return mesh_err_set(err, MESH_PARSE, "frame shorter than its rows");
    /* the compact values' memory: each column's last integer, the frame's text table */
    uint64_t prev[MESH_FED_MAX_COLS] = {0};
    const mesh_datum_t **dict = NULL;
    size_t ndict = 0;
    if (nvals && ((out->vals = calloc(nvals, sizeof *out->vals)) == NULL ||
                  (dict = malloc(MESH_FED_DICT_MAX * sizeof *dict)) == NULL)) {
        free(out->vals);
        out->vals = NULL;
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    for (size_t i = 0, col = 0; i < nvals && !c.bad;
         i++, col = col + 1 == out->ncols ? 0 : col + 1) {
        mesh_datum_t *d = &out->vals[i];
        uint8_t tag = mesh_cursor_u8(&c);
        switch (tag) {
        case 0:
            d->type = MESH_V_NULL;
            break;
        case 1:
        case 4: {
            uint64_t v = tag == 1 ? mesh_cursor_u64(&c)
                                  : prev[col] + (uint64_t)unzigzag(mesh_cursor_uvarint(&c));
            d->type = MESH_V_INT;
            d->i = (int64_t)v;
            prev[col] = v;
            break;
        }
        case 2: {
            uint64_t bits = mesh_cursor_u64(&c);
            d->type = MESH_V_REAL;
            memcpy(&d->d, &bits, sizeof bits);
            break;
        }
        case 5: {
            int64_t v = unzigzag(mesh_cursor_uvarint(&c));
            if (v < -(1LL << 53) || v > (1LL << 53))
                c.bad = 1; /* an encoder sends larger ones as tag 2 */
            d->type = MESH_V_REAL;
            d->d = (double)v;
            break;
        }
        case 3: {
            uint64_t len = mesh_cursor_uvarint(&c);
            const uint8_t *s = len <= c.n ? mesh_cursor_bytes(&c, (size_t)len) : NULL;
            if (s == NULL) {
                c.bad = 1;
                break;
            }
            d->type = MESH_V_TEXT;
            d->s = (const char *)s;
            d->n = (size_t)len;
            if (len <= MESH_FED_DICT_TEXT && ndict < MESH_FED_DICT_MAX)
                dict[ndict++] = d;
            break;
        }
        case 6: {
            uint64_t k = mesh_cursor_uvarint(&c);
            if (c.bad || k >= ndict) {
                c.bad = 1;
                break;
            }
            *d = *dict[k];
            break;
        }
        default:
            c.bad = 1;
        }
    }
    free(dict);
    if (!c.bad && kind == MESH_FED_RESULT) {
        uint32_t len = mesh_cursor_u32(&c);
        const uint8_t *js = !c.bad && len == c.n ? mesh_cursor_bytes(&c, len) : NULL;
        if (js == NULL) {
            c.bad = 1;
        } else if (parse_meta((const char *)js, len, &out->meta, err) != MESH_OK) {
            mesh_status_t st = err->code;
            mesh_fed_frame_free(out);
            return st;
        }
    }
    if (c.bad || c.n != 0) {
        mesh_fed_frame_free(out);
        return mesh_err_set(err, MESH_PARSE, "malformed rows frame");
    }
    return MESH_OK;
}

void mesh_fed_frame_free(mesh_fed_frame_t *f)
{
    if (f == NULL)
        return;
    free(f->vals);
    f->vals = NULL;
    mesh_fed_schema_free(&f->schema);
    mesh_fed_meta_free(&f->meta);
}
