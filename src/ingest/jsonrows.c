/*
 * jsonrows.c - JSON array / NDJSON rows with jansson (see jsonrows.h).
 *
 * jansson has no nesting limit of its own below 2048, so a pre-scan checks the depth before
 * jansson sees the text. For the array form the same scan records where each top-level
 * element starts and ends: a bad row's raw text is then a borrowed slice of the body, exactly
 * as received, instead of a re-serialisation (json_dumps) per row. The scan only tracks
 * strings and brackets; the slices are used only after jansson has accepted the text, and
 * only when their count matches the array's, so for valid JSON they are exact (otherwise
 * the row is re-serialised).
 */
#include "ingest/jsonrows.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define SHOW_MAX    40 /* bytes of a name quoted in an error */
#define GUESS_SLOTS 64 /* member positions whose column is remembered */

typedef struct span {
    size_t off, len;
} span_t;

typedef struct spans {
    span_t *v;
    size_t n, cap;
} spans_t;

typedef struct jr {
    mesh_batch_t *b;
    const mesh_product_t *p;
    int guess[GUESS_SLOTS]; /* member position -> column on the previous row */
} jr_t;

static void show(char *out, const char *s, size_t n)
{
    size_t k = n;
    bool cut = false;
    if (k > SHOW_MAX) {
        k = SHOW_MAX;
        for (int back = 0; back < 3 && k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80; back++)
            k--;
        cut = true;
    }
    size_t o = 0;
    for (size_t i = 0; i < k; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[o++] = (ch < 0x20 || ch == 0x7F) ? '?' : (char)ch;
    }
    if (cut) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

static const char *type_a(mesh_ltype_t t)
{
    switch (t) {
    case MESH_LT_STRING:
        return "a string";
    case MESH_LT_INTEGER:
        return "an integer";
    case MESH_LT_NUMBER:
        return "a number";
    case MESH_LT_BOOLEAN:
        return "a boolean";
    case MESH_LT_TIMESTAMP:
        return "a timestamp";
    case MESH_LT_DATE:
        return "a date";
    case MESH_LT_TIME:
        return "a time";
    case MESH_LT_OBJECT:
        return "an object";
    case MESH_LT_ARRAY:
        return "an array";
    }
    return "a value";
}

enum { SCAN_OK = 0, SCAN_DEEP = -1, SCAN_NOMEM = -2 };

static bool spans_push(spans_t *sp, size_t off, size_t len)
{
    if (sp->n == sp->cap) {
        size_t ncap = sp->cap ? sp->cap * 2 : 64;
        span_t *v = realloc(sp->v, ncap * sizeof *v);
        if (v == NULL)
            return false;
        sp->v = v;
        sp->cap = ncap;
    }
    sp->v[sp->n].off = off;
    sp->v[sp->n].len = len;
    sp->n++;
    return true;
}

/*
 * Checks that arrays and objects nest at most MESH_JSON_MAX_DEPTH deep (SCAN_DEEP with the
 * offending offset in *at otherwise). With sp, also records the extent of each element of a
 * top-level array.
 */
static int prescan(const char *s, size_t n, spans_t *sp, size_t *at)
{
    int depth = 0;
    bool top_array = false, top_seen = false;
    size_t el = SIZE_MAX, last = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        switch (c) {
        case ' ':
        case '\t':
        case '\n':
        case '\r':
            continue;
        case '"':
            if (depth == 1 && el == SIZE_MAX)
                el = i;
            for (i++; i < n && s[i] != '"'; i++)
                if (s[i] == '\\')
                    i++;
            last = i < n ? i + 1 : n;
            continue;
        case '[':
        case '{':
            if (!top_seen) {
                top_seen = true;
                top_array = c == '[';
            }
            if (depth == 1 && el == SIZE_MAX)
                el = i;
            if (++depth > MESH_JSON_MAX_DEPTH) {
                *at = i;
                return SCAN_DEEP;
            }
            last = i + 1;
            continue;
        case ']':
        case '}':
        case ',':
            if (depth == 1 && top_array && el != SIZE_MAX && sp) {
                if (!spans_push(sp, el, last - el))
                    return SCAN_NOMEM;
                el = SIZE_MAX;
            }
            if (c != ',' && depth > 0)
                depth--;
            last = i + 1;
            continue;
        default:
            top_seen = true;
            if (depth == 1 && el == SIZE_MAX)
                el = i;
            last = i + 1;
            continue;
        }
    }
    return SCAN_OK;
}

/* (s, n) equals the C string name; reads name no further than its NUL. */
static bool name_eq(const char *name, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (name[i] != s[i] || name[i] == '\0')
            return false;
    return name[n] == '\0';
}

static int find_col(jr_t *jr, size_t k, const char *s, size_t n)
{
    const mesh_product_t *p = jr->p;
    if (k < GUESS_SLOTS && jr->guess[k] >= 0 && name_eq(p->cols[jr->guess[k]].name, s, n))
        return jr->guess[k];
    for (size_t i = 0; i < p->ncols; i++) {
        if (name_eq(p->cols[i].name, s, n)) {
            if (k < GUESS_SLOTS)
                jr->guess[k] = (int)i;
            return (int)i;
        }
    }
    return -1;
}

static void set_member(jr_t *jr, int col, json_t *v)
{
    mesh_batch_t *b = jr->b;
    const mesh_column_t *c = &jr->p->cols[col];
    switch (json_typeof(v)) {
    case JSON_STRING:
        if (c->type == MESH_LT_STRING || c->type == MESH_LT_DATE || c->type == MESH_LT_TIME ||
            c->type == MESH_LT_TIMESTAMP)
            mesh_batch_set_text(b, col, json_string_value(v), json_string_length(v));
        else
            mesh_batch_row_error(b, col, "expected %s, got a string", type_a(c->type));
        return;
    case JSON_INTEGER:
        mesh_batch_set_int(b, col, (int64_t)json_integer_value(v));
        return;
    case JSON_REAL:
        mesh_batch_set_real(b, col, json_real_value(v));
        return;
    case JSON_TRUE:
    case JSON_FALSE:
        mesh_batch_set_bool(b, col, json_is_true(v));
        return;
    case JSON_NULL:
        mesh_batch_set_null(b, col);
        return;
    case JSON_OBJECT:
    case JSON_ARRAY:
        if (c->type == MESH_LT_OBJECT || c->type == MESH_LT_ARRAY) {
            char *text = json_dumps(v, JSON_COMPACT);
            if (text == NULL) {
                mesh_batch_fail(b, MESH_NOMEM, b->cur_row, "out of memory serialising JSON");
                return;
            }
            mesh_batch_set_json(b, col, text, strlen(text));
            free(text);
        } else {
            mesh_batch_row_error(b, col, "expected %s, got %s", type_a(c->type), json_kind(v));
        }
        return;
    }
}

/* One row from a parsed value; raw NULL: re-serialise it for the quarantine. Returns false
 * when parsing must stop. */
static bool do_row(jr_t *jr, uint32_t rowno, json_t *obj, const char *raw, size_t raw_len)
{
    mesh_batch_t *b = jr->b;
    if (mesh_batch_row_begin(b, jr->p, rowno) != MESH_OK)
        return false;
    if (!json_is_object(obj)) {
        mesh_batch_row_error(b, -1, "row %u is %s, not an object", rowno, json_kind(obj));
    } else {
        size_t k = 0;
        for (void *it = json_object_iter(obj); it; it = json_object_iter_next(obj, it), k++) {
            const char *key = json_object_iter_key(it);
            size_t klen = json_object_iter_key_len(it);
            int col = find_col(jr, k, key, klen);
            if (col < 0) {
                char kshow[SHOW_MAX + 4];
                show(kshow, key, klen);
                mesh_batch_row_error(b, -1, "unknown column '%s'", kshow);
                continue;
            }
            set_member(jr, col, json_object_iter_value(it));
        }
    }
    if (raw) {
        mesh_batch_row_end(b, raw, raw_len);
    } else {
        char *text = json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY);
        mesh_batch_row_end(b, text ? text : "", text ? strlen(text) : 0);
        free(text);
    }
    return !(b->failed && b->fail_code != MESH_VALIDATION);
}

/* 1-based line and column of byte offset at. */
static void line_col(const char *s, size_t at, unsigned *line, size_t *col)
{
    unsigned l = 1;
    size_t start = 0;
    for (size_t i = 0; i < at; i++) {
        if (s[i] == '\n') {
            l++;
            start = i + 1;
        }
    }
    *line = l;
    *col = at - start + 1;
}

static void parse_array(jr_t *jr, const char *body, size_t n)
{
    mesh_batch_t *b = jr->b;
    if (n > MESH_JSON_MAX_BODY) {
        mesh_batch_fail(b, MESH_TOO_LARGE, 0,
                        "the JSON body is %zu bytes, more than the limit of %u (send NDJSON for "
                        "larger bodies)",
                        n, MESH_JSON_MAX_BODY);
        return;
    }
    spans_t sp = {0};
    size_t at = 0;
    int r = prescan(body, n, &sp, &at);
    if (r != SCAN_OK) {
        if (r == SCAN_DEEP) {
            unsigned line;
            size_t col;
            line_col(body, at, &line, &col);
            mesh_batch_fail(b, MESH_PARSE, line,
                            "malformed JSON at line %u, column %zu: nested deeper than %d levels",
                            line, col, MESH_JSON_MAX_DEPTH);
        } else {
            mesh_batch_fail(b, MESH_NOMEM, 0, "out of memory parsing JSON");
        }
        free(sp.v);
        return;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, n, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        mesh_batch_fail(b, MESH_PARSE, jerr.line > 0 ? (uint32_t)jerr.line : 0,
                        "malformed JSON at line %d, column %d: %s", jerr.line, jerr.column,
                        jerr.text);
        free(sp.v);
        return;
    }
    if (json_is_array(root)) {
        size_t count = json_array_size(root);
        bool have_spans = sp.n == count;
        for (size_t i = 0; i < count && i < UINT32_MAX; i++) {
            const char *raw = have_spans ? body + sp.v[i].off : NULL;
            size_t raw_len = have_spans ? sp.v[i].len : 0;
            if (!do_row(jr, (uint32_t)(i + 1), json_array_get(root, i), raw, raw_len))
                break;
        }
    } else {
        size_t s = 0, e = n;
        while (s < e && (body[s] == ' ' || body[s] == '\t' || body[s] == '\n' || body[s] == '\r'))
            s++;
        while (e > s && (body[e - 1] == ' ' || body[e - 1] == '\t' || body[e - 1] == '\n' ||
                         body[e - 1] == '\r'))
            e--;
        do_row(jr, 1, root, body + s, e - s);
    }
    json_decref(root);
    free(sp.v);
}

/* A bad NDJSON line that never became a value: still a row of the product. */
__attribute__((format(printf, 5, 6))) static bool bad_line(jr_t *jr, uint32_t line, const char *raw,
                                                           size_t len, const char *fmt, ...)
{
    mesh_batch_t *b = jr->b;
    if (mesh_batch_row_begin(b, jr->p, line) != MESH_OK)
        return false;
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mesh_batch_row_error(b, -1, "%s", msg);
    mesh_batch_row_end(b, raw, len);
    return !(b->failed && b->fail_code != MESH_VALIDATION);
}

static void parse_ndjson(jr_t *jr, const char *body, size_t n)
{
    size_t pos = 0;
    uint32_t line = 0;
    while (pos < n) {
        const char *ls = body + pos;
        const char *nl = memchr(ls, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - ls) : n - pos;
        pos += len + (nl ? 1 : 0);
        line++;
        if (len && ls[len - 1] == '\r')
            len--;
        size_t i = 0;
        while (i < len && (ls[i] == ' ' || ls[i] == '\t' || ls[i] == '\r'))
            i++;
        if (i == len)
            continue;
        bool go;
        size_t at;
        if (len > MESH_JSON_MAX_LINE) {
            go = bad_line(jr, line, ls, len, "line %u is %zu bytes, longer than the limit of %u",
                          line, len, MESH_JSON_MAX_LINE);
        } else if (prescan(ls, len, NULL, &at) != SCAN_OK) {
            go = bad_line(jr, line, ls, len,
                          "line %u, col %zu: malformed JSON: nested deeper than %d levels", line,
                          at + 1, MESH_JSON_MAX_DEPTH);
        } else {
            json_error_t jerr;
            json_t *obj = json_loadb(ls, len, JSON_REJECT_DUPLICATES, &jerr);
            if (obj == NULL) {
                go = bad_line(jr, line, ls, len, "line %u, col %d: malformed JSON: %s", line,
                              jerr.column, jerr.text);
            } else {
                go = do_row(jr, line, obj, ls, len);
                json_decref(obj);
            }
        }
        if (!go)
            break;
    }
}

mesh_status_t mesh_json_rows_parse(const char *body, size_t n, const mesh_product_t *p, bool ndjson,
                                   mesh_batch_t *b)
{
    jr_t jr = {.b = b, .p = p};
    for (size_t i = 0; i < GUESS_SLOTS; i++)
        jr.guess[i] = -1;
    if (ndjson)
        parse_ndjson(&jr, body, n);
    else
        parse_array(&jr, body, n);
    return b->failed ? b->fail_code : MESH_OK;
}
