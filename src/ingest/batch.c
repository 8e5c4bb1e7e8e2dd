/*
 * batch.c - building, validating, encoding and decoding ingest batches (see batch.h).
 *
 * Filling. A part's values are one row-major slab (nrows x ncols mesh_value_t) grown by
 * doubling, so a row costs no allocation. row_begin claims the slot after the last committed
 * row and marks every cell VT_UNSET; a setter marks its cell VT_BAD until the value has
 * passed its checks (both internal tags, turned into MESH_V_NULL by row_end). A setter that
 * finds its cell given already reports "column given twice"; a cell that holds a bad value
 * is not reported missing as well. row_end commits the row by bumping nrows, or drops it
 * (the next row reuses the slot) and quarantines it or fails the batch.
 *
 * Text. Every text value is copied into the arena followed by a NUL byte (not counted in
 * its length), so mesh_batch_text() is a C string and regexec()/inet_pton() can run on the
 * stored copy without another one. A value that fails its checks is cut off the arena
 * again at once; when a row is dropped, its text (which is the tail of the arena, since
 * text is only appended) is cut off at row_end. Text values may not hold NUL bytes.
 *
 * Errors. Every failed check is one entry in errors[] (at most limits.max_errors kept) and
 * marks the row bad; the first reason of a row, prefixed with its column, becomes the
 * quarantine reason. error_rows counts every bad row, kept or not.
 *
 * Log record format, version 1. Integers are little-endian; "uv" is an unsigned LEB128
 * varint, "sv" a zigzag varint, "str" a uv byte length followed by the bytes.
 *
 *     u8   version (1)
 *     str  idempotency key (empty when none; at most 255 bytes)
 *     u64  received_ns (two's complement)
 *     str  domain (at most 63 bytes)
 *     uv   nparts
 *     nparts times:
 *       str  product name (at most 255 bytes)
 *       uv   ncols (at most MESH_CONTRACT_MAX_COLUMNS)
 *       ncols times: str column name (at most 255 bytes), u8 logical type (mesh_ltype_t)
 *       uv   nrows
 *       nrows x ncols values, each u8 tag (mesh_vtype_t) then
 *            INT: sv | REAL: u64 IEEE-754 bits (finite) | TEXT: str | NULL: nothing
 *       uv   nquar
 *       nquar times: uv source row, str reason, str raw row
 *
 * Decode reads through a mesh_cursor_t: every count is checked against the bytes left
 * (each row of a part takes at least ncols bytes, each part and quarantine entry at least
 * a few), so no allocation is sized by a count the input cannot back; rows are added one
 * by one under the batch's own limits. A value whose tag does not fit its column's type is
 * corruption. Columns are mapped by name onto the product found by lookup now: a column
 * that no longer exists is skipped, a column the record lacks is NULL, a product that no
 * longer exists is skipped. A column whose type changed keeps its value when the storage
 * class allows it (integer -> number, an integral number -> integer, integer <-> boolean
 * <-> timestamp); otherwise it is NULL. Decode does not re-validate the contract: a logged
 * batch was valid when it was accepted, and replay must not drop rows.
 */
#include "ingest/batch.h"

#include <arpa/inet.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/util.h"

#define VT_UNSET       0xFF /* cell not given in the open row */
#define VT_BAD         0xFE /* cell given with a value that failed (the row has the error) */
#define SHOW_MAX       40   /* bytes of a value quoted in an error reason */
#define SHOW_BUF       (SHOW_MAX + 8)
#define RECORD_VERSION 1
#define MAX_IDEM       255 /* bytes of an idempotency key in a record */
#define MAX_ENC_NAME   255 /* bytes of a product or column name in a record */

/* ---- error text ---------------------------------------------------------------------------- */

/* Copies at most SHOW_MAX bytes of (s, n) into out for an error reason: never reads past n,
 * cuts at a UTF-8 boundary, shows control bytes as '?' and marks a cut with "...". */
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

/* Shortest text that reads back as the same double. */
static void fmt_double(char *out, size_t cap, double v)
{
    snprintf(out, cap, "%.15g", v);
    if (strtod(out, NULL) != v)
        snprintf(out, cap, "%.17g", v);
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

/* "[ok, warn, fail]", cut with "..." when it does not fit. */
static void enum_list(const mesh_column_t *c, char *out, size_t cap)
{
    size_t o = 0;
    out[o++] = '[';
    for (size_t i = 0; i < c->n_enum; i++) {
        const char *e = c->enum_values[i];
        size_t el = strlen(e);
        size_t need = el + (i ? 2 : 0);
        if (o + need + 5 > cap) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (i) {
            out[o++] = ',';
            out[o++] = ' ';
        }
        memcpy(out + o, e, el);
        o += el;
    }
    out[o++] = ']';
    out[o] = '\0';
}

/* ---- error list ----------------------------------------------------------------------------- */

/* errors[] grows by doubling from 8 entries up to max_errors; its capacity follows from
 * nerrors, so the struct needs no extra field. */
static size_t errors_cap(size_t n, size_t max)
{
    size_t cap = 8;
    while (cap < n)
        cap *= 2;
    return cap < max ? cap : max;
}

static void errors_push(mesh_batch_t *b, uint32_t row, const char *product, int col,
                        const char *column, const char *reason, bool replace_last)
{
    size_t max = b->limits.max_errors;
    if (max == 0)
        return;
    if (b->nerrors >= max) {
        if (!replace_last)
            return;
        b->nerrors = max - 1;
    }
    size_t have = b->nerrors ? errors_cap(b->nerrors, max) : 0;
    if (b->nerrors == have) {
        size_t ncap = errors_cap(b->nerrors + 1, max);
        mesh_row_error_t *e = realloc(b->errors, ncap * sizeof *e);
        if (e == NULL)
            return; /* the error is still counted; only its detail is lost */
        b->errors = e;
    }
    mesh_row_error_t *e = &b->errors[b->nerrors++];
    e->row = row;
    e->col = col;
    snprintf(e->product, sizeof e->product, "%s", product ? product : "");
    snprintf(e->column, sizeof e->column, "%s", column ? column : "");
    snprintf(e->reason, sizeof e->reason, "%s", reason);
}

static const char *pname(const mesh_product_t *p)
{
    return p && p->name ? p->name : "";
}

__attribute__((format(printf, 3, 0))) static void row_failv(mesh_batch_t *b, int col,
                                                            const char *fmt, va_list ap)
{
    if (b->cur == NULL)
        return;
    const mesh_product_t *p = b->cur->product;
    const char *cname = NULL;
    if (col >= 0 && (size_t)col < p->ncols)
        cname = p->cols[col].name;
    else
        col = -1;
    char reason[sizeof b->errors[0].reason];
    vsnprintf(reason, sizeof reason, fmt, ap);
    errors_push(b, b->cur_row, pname(p), col, cname, reason, false);
    if (!b->cur_bad) {
        b->cur_bad = true;
        if (cname)
            snprintf(b->cur_reason, sizeof b->cur_reason, "%s: %s", cname, reason);
        else
            snprintf(b->cur_reason, sizeof b->cur_reason, "%s", reason);
    }
}

__attribute__((format(printf, 3, 4))) static void row_fail(mesh_batch_t *b, int col,
                                                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    row_failv(b, col, fmt, ap);
    va_end(ap);
}

void mesh_batch_row_error(mesh_batch_t *b, int col, const char *fmt, ...)
{
    /* an error on a column means the column was given, badly: not "missing" as well */
    if (b->cur && col >= 0 && (size_t)col < b->cur->ncols) {
        mesh_value_t *v = &b->cur->vals[b->cur->nrows * b->cur->ncols + (size_t)col];
        if (v->type == VT_UNSET)
            v->type = VT_BAD;
    }
    va_list ap;
    va_start(ap, fmt);
    row_failv(b, col, fmt, ap);
    va_end(ap);
}

void mesh_batch_fail(mesh_batch_t *b, mesh_status_t code, uint32_t source_row, const char *fmt, ...)
{
    /* the first hard failure wins; a hard failure replaces a validation failure */
    if (b->failed && b->fail_code != MESH_VALIDATION)
        return;
    b->failed = true;
    b->fail_code = code;
    char reason[sizeof b->errors[0].reason];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    /* kept even when the list is full: the reason the batch was refused must be visible */
    errors_push(b, source_row, b->cur ? pname(b->cur->product) : "", -1, NULL, reason, true);
}

static void fail_validation(mesh_batch_t *b)
{
    if (!b->failed) {
        b->failed = true;
        b->fail_code = MESH_VALIDATION;
    }
}

void mesh_batch_source_error(mesh_batch_t *b, uint32_t source_row, const char *product,
                             const char *fmt, ...)
{
    char reason[sizeof b->errors[0].reason];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    b->total_rows++;
    b->error_rows++;
    errors_push(b, source_row, product, -1, NULL, reason, false);
    /* a row without a product has no quarantine to go to */
    fail_validation(b);
}

/* ---- life cycle ----------------------------------------------------------------------------- */

/* Text values that passed every check of their column (UTF-8, length, enum, pattern,
 * format): tags repeat on every row (a device's name, its fleet), and a regexec per row is a
 * tenth of the cost of parsing it. A per-batch cache of TEXT_OK_SETS sets of 2 ways, the
 * newer entry in way 0: direct-mapped with 256 slots, the 200 names of the benchmark's
 * trucks collided often enough that half its rows ran the regex again. A value is only
 * skipped when its column and bytes are equal. */
#define TEXT_OK_SETS 512
#define TEXT_OK_WAYS 2
#define TEXT_OK_MAX  64

struct mesh_text_ok {
    const mesh_column_t *col;
    uint32_t len;
    char val[TEXT_OK_MAX];
};

static uint64_t text_hash(const mesh_column_t *c, const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)(uintptr_t)c;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ULL;
    return h;
}

/* The index of the first way of the set of (c, s, n). */
static size_t text_set(const mesh_column_t *c, const char *s, size_t n)
{
    return (size_t)(text_hash(c, s, n) % TEXT_OK_SETS) * TEXT_OK_WAYS;
}

static bool text_known_ok(mesh_batch_t *b, const mesh_column_t *c, const char *s, size_t n)
{
    if (n > TEXT_OK_MAX || b->text_ok == NULL)
        return false;
    const struct mesh_text_ok *e = &b->text_ok[text_set(c, s, n)];
    for (size_t w = 0; w < TEXT_OK_WAYS; w++)
        if (e[w].col == c && e[w].len == n && memcmp(e[w].val, s, n) == 0)
            return true;
    return false;
}

static void text_note_ok(mesh_batch_t *b, const mesh_column_t *c, const char *s, size_t n)
{
    if (n > TEXT_OK_MAX)
        return;
    if (b->text_ok == NULL &&
        (b->text_ok = calloc(TEXT_OK_SETS * TEXT_OK_WAYS, sizeof *b->text_ok)) == NULL)
        return;
    struct mesh_text_ok *e = &b->text_ok[text_set(c, s, n)];
    e[1] = e[0]; /* the older entry is dropped */
    e[0].col = c;
    e[0].len = (uint32_t)n;
    memcpy(e[0].val, s, n);
}

void mesh_batch_init(mesh_batch_t *b, const char *domain, mesh_batch_limits_t limits)
{
    memset(b, 0, sizeof *b);
    snprintf(b->domain, sizeof b->domain, "%s", domain ? domain : "");
    b->limits = limits;
    /* arena offsets and lengths are uint32_t */
    size_t amax = limits.max_arena < UINT32_MAX - 1 ? limits.max_arena : UINT32_MAX - 1;
    mesh_buf_init(&b->arena, amax);
    b->received_ns = mesh_now_ns();
    b->precision = MESH_PREC_AUTO;
    b->fail_code = MESH_OK;
}

void mesh_batch_free(mesh_batch_t *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->nparts; i++) {
        free(b->parts[i].vals);
        free(b->parts[i].quar);
    }
    free(b->parts);
    free(b->errors);
    free(b->text_ok);
    b->text_ok = NULL;
    mesh_buf_free(&b->arena);
    b->parts = NULL;
    b->nparts = b->cap_parts = 0;
    b->errors = NULL;
    b->nerrors = 0;
    b->cur = NULL;
}

mesh_status_t mesh_precision_parse(const char *s, mesh_precision_t *out)
{
    static const struct {
        const char *name;
        mesh_precision_t prec;
    } names[] = {
        {"ns", MESH_PREC_NS}, {"n", MESH_PREC_NS}, {"us", MESH_PREC_US},     {"u", MESH_PREC_US},
        {"ms", MESH_PREC_MS}, {"s", MESH_PREC_S},  {"auto", MESH_PREC_AUTO},
    };
    if (s == NULL)
        return MESH_INVALID;
    for (size_t i = 0; i < MESH_ARRAY_LEN(names); i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].prec;
            return MESH_OK;
        }
    }
    return MESH_INVALID;
}

size_t mesh_batch_good_rows(const mesh_batch_t *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->nparts; i++)
        n += b->parts[i].nrows;
    return n;
}

size_t mesh_batch_quarantined_rows(const mesh_batch_t *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->nparts; i++)
        n += b->parts[i].nquar;
    return n;
}

/* ---- parts and rows -------------------------------------------------------------------------- */

static mesh_part_t *part_for(mesh_batch_t *b, const mesh_product_t *p)
{
    for (size_t i = b->nparts; i-- > 0;)
        if (b->parts[i].product == p)
            return &b->parts[i];
    if (b->nparts == b->cap_parts) {
        size_t ncap = b->cap_parts ? b->cap_parts * 2 : 4;
        mesh_part_t *np = realloc(b->parts, ncap * sizeof *np);
        if (np == NULL)
            return NULL;
        b->parts = np;
        b->cap_parts = ncap;
    }
    mesh_part_t *part = &b->parts[b->nparts++];
    memset(part, 0, sizeof *part);
    part->product = p;
    part->ncols = p->ncols;
    return part;
}

/* Makes room for one more row after nrows. */
/* Room given to a part from the row hint at most, in bytes of values. */
#define PREALLOC_MAX (4u << 20)

void mesh_batch_expect_rows(mesh_batch_t *b, size_t n)
{
    b->rows_hint = n < b->limits.max_rows ? n : b->limits.max_rows;
}

/* Gives part room for ncap rows (at least: it never shrinks). */
static mesh_status_t part_grow(mesh_part_t *part, size_t ncap)
{
    if (ncap <= part->cap_rows)
        return MESH_OK;
    size_t w = part->ncols ? part->ncols : 1;
    if (ncap > SIZE_MAX / sizeof(mesh_value_t) / w)
        return MESH_NOMEM;
    mesh_value_t *nv = realloc(part->vals, ncap * w * sizeof *nv);
    if (nv == NULL)
        return MESH_NOMEM;
    part->vals = nv;
    part->cap_rows = ncap;
    return MESH_OK;
}

static mesh_status_t part_reserve_row(mesh_batch_t *b, mesh_part_t *part)
{
    if (part->nrows < part->cap_rows)
        return MESH_OK;
    size_t ncap = part->cap_rows ? part->cap_rows * 2 : 64;
    if (part->cap_rows == 0 && b->rows_hint > b->total_rows &&
        b->rows_prealloc < 2 * b->rows_hint) {
        /* a new part: room for the rows still to come, within twice the hint in all and
         * PREALLOC_MAX bytes a part (a body of empty lines is no reason for more) */
        size_t want = b->rows_hint - b->total_rows;
        size_t budget = 2 * b->rows_hint - b->rows_prealloc;
        size_t bytes = PREALLOC_MAX / ((part->ncols ? part->ncols : 1) * sizeof(mesh_value_t));
        if (want > budget)
            want = budget;
        if (want > bytes)
            want = bytes;
        if (want > ncap) {
            ncap = want;
            b->rows_prealloc += want;
        }
    }
    return part_grow(part, ncap);
}

static mesh_value_t *cur_row(mesh_batch_t *b)
{
    return &b->cur->vals[b->cur->nrows * b->cur->ncols];
}

mesh_status_t mesh_batch_row_begin(mesh_batch_t *b, const mesh_product_t *p, uint32_t source_row)
{
    if (b->failed && b->fail_code != MESH_VALIDATION)
        return b->fail_code;
    if (p == NULL)
        return MESH_INVALID;
    b->cur = NULL; /* a row left open by a caller is dropped */
    if (b->total_rows >= b->limits.max_rows) {
        mesh_batch_fail(b, MESH_TOO_LARGE, source_row, "the batch has more than %zu rows",
                        b->limits.max_rows);
        return MESH_TOO_LARGE;
    }
    mesh_part_t *part = part_for(b, p);
    if (part == NULL || part_reserve_row(b, part) != MESH_OK) {
        mesh_batch_fail(b, MESH_NOMEM, source_row, "out of memory for the batch");
        return MESH_NOMEM;
    }
    b->total_rows++;
    b->cur = part;
    b->cur_row = source_row;
    b->cur_bad = false;
    b->cur_reason[0] = '\0';
    mesh_value_t *row = cur_row(b);
    for (size_t i = 0; i < part->ncols; i++)
        row[i].type = VT_UNSET;
    for (size_t i = 0; i < b->nfixed; i++)
        if (b->fixed[i].product == p)
            mesh_batch_set_text(b, b->fixed[i].col, b->fixed[i].s, b->fixed[i].n);
    return MESH_OK;
}

mesh_status_t mesh_batch_fixed_text(mesh_batch_t *b, const mesh_product_t *p, int col,
                                    const char *s, size_t n)
{
    if (b->nfixed == MESH_BATCH_MAX_FIXED)
        return MESH_LIMIT;
    if (p == NULL || col < 0 || (size_t)col >= p->ncols)
        return MESH_INVALID;
    b->fixed[b->nfixed].product = p;
    b->fixed[b->nfixed].col = col;
    b->fixed[b->nfixed].s = s;
    b->fixed[b->nfixed].n = n;
    b->nfixed++;
    return MESH_OK;
}

/* The cell of column col in the open row, marked VT_BAD until a value is stored, or NULL when
 * there is no open row, col is out of range or the column was given already. */
static mesh_value_t *slot_for(mesh_batch_t *b, int col)
{
    if (b->cur == NULL)
        return NULL;
    if (col < 0 || (size_t)col >= b->cur->ncols) {
        row_fail(b, -1, "column index %d is out of range", col);
        return NULL;
    }
    mesh_value_t *v = &cur_row(b)[col];
    if (v->type != VT_UNSET) {
        row_fail(b, col, "column given twice");
        return NULL;
    }
    v->type = VT_BAD;
    return v;
}

/* ---- arena ---------------------------------------------------------------------------------- */

static bool value_len_ok(mesh_batch_t *b, int col, size_t n)
{
    if (n <= b->limits.max_value_len)
        return true;
    const mesh_column_t *c = &b->cur->product->cols[col];
    mesh_batch_fail(b, MESH_TOO_LARGE, b->cur_row,
                    "value of column '%s' is %zu bytes, more than the limit of %zu bytes", c->name,
                    n, b->limits.max_value_len);
    return false;
}

/* Appends (s, n) and a NUL to the arena; the offset goes to *off. Fails the batch when the
 * arena is full. */
static bool arena_put(mesh_batch_t *b, const char *s, size_t n, uint32_t *off)
{
    mesh_status_t st = mesh_buf_reserve(&b->arena, n + 1);
    if (st != MESH_OK) {
        if (st == MESH_TOO_LARGE)
            mesh_batch_fail(b, MESH_TOO_LARGE, b->cur ? b->cur_row : 0,
                            "the batch holds more than %zu bytes of text", b->arena.max);
        else
            mesh_batch_fail(b, MESH_NOMEM, b->cur ? b->cur_row : 0, "out of memory for the batch");
        return false;
    }
    *off = (uint32_t)b->arena.len;
    if (n)
        memcpy(b->arena.data + b->arena.len, s, n);
    b->arena.len += n;
    b->arena.data[b->arena.len++] = '\0';
    b->arena.data[b->arena.len] = '\0';
    return true;
}

static void arena_cut(mesh_batch_t *b, uint32_t off)
{
    if (off < b->arena.len) {
        b->arena.len = off;
        b->arena.data[off] = '\0';
    }
}

static bool put_text(mesh_batch_t *b, mesh_value_t *v, const char *s, size_t n)
{
    uint32_t off;
    if (!arena_put(b, s, n, &off))
        return false;
    v->type = MESH_V_TEXT;
    v->u.s.off = off;
    v->u.s.len = (uint32_t)n;
    return true;
}

/* ---- validators ----------------------------------------------------------------------------- */

/* Checks UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF) and counts characters. */
static bool utf8_ok(const char *s, size_t n, size_t *nchars)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, chars = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            chars++;
            continue;
        }
        size_t len;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
        chars++;
    }
    *nchars = chars;
    return true;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int num2(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_digit(s[i]))
            return false;
    return true;
}

/* YYYY-MM-DD, a real calendar date. */
static bool date_ok(const char *s, size_t n)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n != 10 || s[4] != '-' || s[7] != '-' || !all_digits(s, 4) || !all_digits(s + 5, 2) ||
        !all_digits(s + 8, 2))
        return false;
    int y = num2(s) * 100 + num2(s + 2), m = num2(s + 5), d = num2(s + 8);
    if (m < 1 || m > 12 || d < 1)
        return false;
    int max = dm[m - 1];
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        max = 29;
    return d <= max;
}

/* HH:MM:SS[.fraction of 1..9 digits]; a leap second (60) is allowed as RFC 3339 does. */
static bool time_ok(const char *s, size_t n)
{
    if (n < 8 || s[2] != ':' || s[5] != ':' || !all_digits(s, 2) || !all_digits(s + 3, 2) ||
        !all_digits(s + 6, 2))
        return false;
    if (num2(s) > 23 || num2(s + 3) > 59 || num2(s + 6) > 60)
        return false;
    if (n == 8)
        return true;
    return s[8] == '.' && n - 9 >= 1 && n - 9 <= 9 && all_digits(s + 9, n - 9);
}

/* A DNS name: labels of 1..63 letters, digits and hyphens, not starting or ending with a
 * hyphen, at most 253 bytes in all. */
static bool hostname_ok(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!(is_alpha(c) || is_digit(c) || c == '-'))
            return false;
        if (c == '-' && label == 0)
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0 && s[n - 1] != '-';
}

/* local@domain: a dot-atom local part of 1..64 bytes and a hostname. */
static bool email_ok(const char *s, size_t n)
{
    const char *at = memchr(s, '@', n);
    if (at == NULL || n > 254)
        return false;
    size_t ln = (size_t)(at - s);
    if (ln == 0 || ln > 64 || s[0] == '.' || s[ln - 1] == '.')
        return false;
    for (size_t i = 0; i < ln; i++) {
        char c = s[i];
        if (is_alpha(c) || is_digit(c) || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL)
            continue;
        if (c == '.' && s[i + 1] != '.')
            continue;
        return false;
    }
    return hostname_ok(at + 1, n - ln - 1);
}

/* 8-4-4-4-12 hex digits. */
static bool uuid_ok(const char *s, size_t n)
{
    if (n != 36)
        return false;
    for (size_t i = 0; i < n; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_hex(s[i]))
            return false;
    }
    return true;
}

/* An absolute URI (RFC 3986): scheme ":" then only URI characters, '%' followed by two hex
 * digits. The parts after the scheme are not taken apart. */
static bool uri_ok(const char *s, size_t n)
{
    size_t i = 0;
    if (n == 0 || !is_alpha(s[0]))
        return false;
    while (i < n && (is_alpha(s[i]) || is_digit(s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.'))
        i++;
    if (i == n || s[i] != ':')
        return false;
    for (i++; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n || !is_hex(s[i + 1]) || !is_hex(s[i + 2]))
                return false;
            i += 2;
            continue;
        }
        if (is_alpha(c) || is_digit(c) || strchr("-._~:/?#[]@!$&'()*+,;=", c) != NULL)
            continue;
        return false;
    }
    return true;
}

/* s is NUL-terminated (the arena copy). */
static const char *format_error(mesh_format_t fmt, const char *s, size_t n)
{
    unsigned char addr[sizeof(struct in6_addr)];
    switch (fmt) {
    case MESH_FMT_EMAIL:
        return email_ok(s, n) ? NULL : "a valid email address";
    case MESH_FMT_UUID:
        return uuid_ok(s, n) ? NULL : "a valid UUID";
    case MESH_FMT_URI:
        return uri_ok(s, n) ? NULL : "a valid URI";
    case MESH_FMT_HOSTNAME:
        return hostname_ok(s, n) ? NULL : "a valid hostname";
    case MESH_FMT_IPV4:
        return inet_pton(AF_INET, s, addr) == 1 ? NULL : "a valid IPv4 address";
    case MESH_FMT_IPV6:
        return inet_pton(AF_INET6, s, addr) == 1 ? NULL : "a valid IPv6 address";
    case MESH_FMT_NONE:
    case MESH_FMT_OTHER:
        break;
    }
    return NULL;
}

/* ---- enum checks ---------------------------------------------------------------------------- */

/* (s, n) equals the C string name; reads name no further than its NUL. */
static bool name_eq(const char *name, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (name[i] != s[i] || name[i] == '\0')
            return false;
    return name[n] == '\0';
}

static bool enum_has_text(const mesh_column_t *c, const char *s, size_t n)
{
    for (size_t i = 0; i < c->n_enum; i++)
        if (name_eq(c->enum_values[i], s, n))
            return true;
    return false;
}

/* A number as received: typed, or text (kept for error messages). */
typedef struct num {
    bool is_int;
    int64_t i;
    double d;
    const char *txt; /* the value as written, or NULL */
    size_t tn;
} num_t;

static void num_show(const num_t *x, char *out)
{
    if (x->txt)
        show(out, x->txt, x->tn);
    else if (x->is_int)
        snprintf(out, SHOW_BUF, "%lld", (long long)x->i);
    else
        fmt_double(out, SHOW_BUF, x->d);
}

static double num_d(const num_t *x)
{
    return x->is_int ? (double)x->i : x->d;
}

static bool enum_has_num(const mesh_column_t *c, const num_t *x)
{
    for (size_t i = 0; i < c->n_enum; i++) {
        const char *e = c->enum_values[i];
        size_t el = strlen(e);
        int64_t ei;
        double ed;
        if (x->is_int && mesh_parse_i64(e, el, &ei) == MESH_OK) {
            if (ei == x->i)
                return true;
        } else if (mesh_parse_f64(e, el, &ed) == MESH_OK && ed == num_d(x)) {
            return true;
        }
    }
    return false;
}

static bool enum_has_bool(const mesh_column_t *c, bool v)
{
    for (size_t i = 0; i < c->n_enum; i++) {
        bool ev;
        if (mesh_parse_bool(c->enum_values[i], strlen(c->enum_values[i]), &ev) == MESH_OK &&
            ev == v)
            return true;
    }
    return false;
}

static bool enum_has_ts(const mesh_column_t *c, int64_t ns)
{
    for (size_t i = 0; i < c->n_enum; i++) {
        int64_t ev;
        if (mesh_time_parse(c->enum_values[i], strlen(c->enum_values[i]), &ev) == MESH_OK &&
            ev == ns)
            return true;
    }
    return false;
}

static void enum_fail(mesh_batch_t *b, int col, const char *shown, bool quote)
{
    char list[128];
    enum_list(&b->cur->product->cols[col], list, sizeof list);
    if (quote)
        row_fail(b, col, "'%s' is not one of %s", shown, list);
    else
        row_fail(b, col, "value %s is not one of %s", shown, list);
}

/* ---- typed stores --------------------------------------------------------------------------- */

/* Range and enum checks of a number for an integer or number column. */
static bool num_checks(mesh_batch_t *b, int col, const num_t *x)
{
    const mesh_column_t *c = &b->cur->product->cols[col];
    double d = num_d(x);
    char shown[SHOW_BUF], lim[32];
    if (c->has_min && (c->min_exclusive ? !(d > c->min) : d < c->min)) {
        num_show(x, shown);
        fmt_double(lim, sizeof lim, c->min);
        row_fail(b, col, "value %s is %s the %sminimum %s", shown,
                 c->min_exclusive ? "not above" : "below", c->min_exclusive ? "exclusive " : "",
                 lim);
        return false;
    }
    if (c->has_max && (c->max_exclusive ? !(d < c->max) : d > c->max)) {
        num_show(x, shown);
        fmt_double(lim, sizeof lim, c->max);
        row_fail(b, col, "value %s is %s the %smaximum %s", shown,
                 c->max_exclusive ? "not below" : "above", c->max_exclusive ? "exclusive " : "",
                 lim);
        return false;
    }
    if (c->enum_values && !enum_has_num(c, x)) {
        num_show(x, shown);
        enum_fail(b, col, shown, false);
        return false;
    }
    return true;
}

static void store_int(mesh_batch_t *b, int col, mesh_value_t *v, const num_t *x)
{
    if (!num_checks(b, col, x))
        return;
    v->type = MESH_V_INT;
    v->u.i = x->i;
}

static void store_real(mesh_batch_t *b, int col, mesh_value_t *v, const num_t *x)
{
    if (!num_checks(b, col, x))
        return;
    v->type = MESH_V_REAL;
    v->u.d = num_d(x);
}

static void store_bool(mesh_batch_t *b, int col, mesh_value_t *v, bool val)
{
    const mesh_column_t *c = &b->cur->product->cols[col];
    if (c->enum_values && !enum_has_bool(c, val)) {
        enum_fail(b, col, val ? "true" : "false", false);
        return;
    }
    v->type = MESH_V_INT;
    v->u.i = val;
}

/* txt is the value as written (for the message), or NULL */
static void store_ts(mesh_batch_t *b, int col, mesh_value_t *v, int64_t ns, const char *txt,
                     size_t tn)
{
    const mesh_column_t *c = &b->cur->product->cols[col];
    if (c->enum_values && !enum_has_ts(c, ns)) {
        char shown[SHOW_BUF > MESH_TIME_MAX ? SHOW_BUF : MESH_TIME_MAX];
        if (txt)
            show(shown, txt, tn);
        else
            mesh_time_format(ns, shown);
        enum_fail(b, col, shown, true);
        return;
    }
    v->type = MESH_V_INT;
    v->u.i = ns;
}

/* Whole doubles in int64 range. */
static bool dbl_is_i64(double d)
{
    return d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == trunc(d);
}

static int64_t prec_mult(mesh_precision_t prec, double mag)
{
    switch (prec) {
    case MESH_PREC_NS:
        return 1;
    case MESH_PREC_US:
        return 1000;
    case MESH_PREC_MS:
        return 1000000;
    case MESH_PREC_S:
        return MESH_NS_PER_SEC;
    case MESH_PREC_AUTO:
        break;
    }
    if (mag < 1e11)
        return MESH_NS_PER_SEC;
    if (mag < 1e14)
        return 1000000;
    if (mag < 1e17)
        return 1000;
    return 1;
}

static bool ts_from_int(mesh_precision_t prec, int64_t v, int64_t *ns)
{
    int64_t mult = prec_mult(prec, fabs((double)v));
    return !__builtin_mul_overflow(v, mult, ns);
}

/* [-+]digits[.digits] read exactly (a double would lose nanoseconds at today's epoch
 * values); fraction digits finer than a nanosecond are dropped. false when the text has
 * another shape or is out of range. */
static bool ts_from_decimal(mesh_precision_t prec, const char *s, size_t n, int64_t *ns,
                            bool *range)
{
    *range = false;
    const char *dot = memchr(s, '.', n);
    if (dot == NULL)
        return false;
    size_t ilen = (size_t)(dot - s), flen = n - ilen - 1;
    bool neg = ilen > 0 && s[0] == '-';
    size_t sign = ilen > 0 && (s[0] == '-' || s[0] == '+');
    int64_t ip;
    if (ilen == sign || flen == 0 || !all_digits(dot + 1, flen) ||
        mesh_parse_i64(s, ilen, &ip) != MESH_OK)
        return false;
    *range = true;
    int64_t mult = prec_mult(prec, fabs((double)ip));
    int64_t frac = 0, scale = mult;
    for (size_t i = 0; i < flen && scale > 1; i++) {
        scale /= 10;
        frac += (dot[1 + i] - '0') * scale;
    }
    int64_t whole;
    if (__builtin_mul_overflow(ip, mult, &whole) ||
        __builtin_add_overflow(whole, neg ? -frac : frac, ns))
        return false;
    *range = false;
    return true;
}

static bool ts_from_real(mesh_precision_t prec, double v, int64_t *ns)
{
    if (!isfinite(v))
        return false;
    double r = v * (double)prec_mult(prec, fabs(v));
    if (!(r >= -9223372036854775808.0 && r < 9223372036854775808.0))
        return false;
    *ns = llround(r);
    return true;
}

static void string_value(mesh_batch_t *b, int col, mesh_value_t *v, const char *s, size_t n)
{
    const mesh_column_t *c = &b->cur->product->cols[col];
    char shown[SHOW_BUF];
    size_t nchars;
    /* only columns with a check beyond UTF-8 are cached: a plain string is checked faster
     * than it is looked up */
    bool cached = c->enum_values || c->pattern_re || c->fmt != MESH_FMT_NONE;
    if (cached && text_known_ok(b, c, s, n)) {
        put_text(b, v, s, n);
        return;
    }
    if (!utf8_ok(s, n, &nchars)) {
        show(shown, s, n);
        row_fail(b, col, "'%s' is not valid UTF-8", shown);
        return;
    }
    if (memchr(s, '\0', n) != NULL) {
        show(shown, s, n);
        row_fail(b, col, "'%s' contains a NUL byte", shown);
        return;
    }
    if (c->min_len >= 0 && (int64_t)nchars < c->min_len) {
        show(shown, s, n);
        row_fail(b, col, "'%s' is %zu character%s, shorter than the minimum length %lld", shown,
                 nchars, nchars == 1 ? "" : "s", (long long)c->min_len);
        return;
    }
    if (c->max_len >= 0 && (int64_t)nchars > c->max_len) {
        show(shown, s, n);
        row_fail(b, col, "'%s' is %zu characters, longer than the maximum length %lld", shown,
                 nchars, (long long)c->max_len);
        return;
    }
    if (c->enum_values && !enum_has_text(c, s, n)) {
        show(shown, s, n);
        enum_fail(b, col, shown, true);
        return;
    }
    if (!put_text(b, v, s, n))
        return;
    if (c->pattern_re == NULL && c->fmt == MESH_FMT_NONE) {
        if (cached)
            text_note_ok(b, c, s, n);
        return;
    }
    /* the stored copy is NUL-terminated: check it in place, cut it again when it fails */
    const char *z = mesh_batch_text(b, v);
    if (c->pattern_re && regexec((const regex_t *)c->pattern_re, z, 0, NULL, 0) != 0) {
        char pat[SHOW_BUF];
        show(shown, s, n);
        show(pat, c->pattern ? c->pattern : "", c->pattern ? strlen(c->pattern) : 0);
        row_fail(b, col, "'%s' does not match the pattern '%s'", shown, pat);
        goto bad;
    }
    const char *what = format_error(c->fmt, z, n);
    if (what) {
        show(shown, s, n);
        row_fail(b, col, "'%s' is not %s", shown, what);
        goto bad;
    }
    text_note_ok(b, c, s, n);
    return;
bad:
    arena_cut(b, v->u.s.off);
    v->type = VT_BAD;
}

/* Date, time, object and array text: checked for its kind, then stored as given. */
static void text_value(mesh_batch_t *b, int col, mesh_value_t *v, const char *s, size_t n)
{
    const mesh_column_t *c = &b->cur->product->cols[col];
    char shown[SHOW_BUF];
    if (c->type == MESH_LT_DATE && !date_ok(s, n)) {
        show(shown, s, n);
        row_fail(b, col, "'%s' is not a date (YYYY-MM-DD)", shown);
        return;
    }
    if (c->type == MESH_LT_TIME && !time_ok(s, n)) {
        show(shown, s, n);
        row_fail(b, col, "'%s' is not a time (HH:MM:SS[.fraction])", shown);
        return;
    }
    if (c->type == MESH_LT_OBJECT || c->type == MESH_LT_ARRAY) {
        json_error_t jerr;
        json_t *j = json_loadb(s, n, JSON_REJECT_DUPLICATES, &jerr);
        bool kind = j && (c->type == MESH_LT_OBJECT ? json_is_object(j) : json_is_array(j));
        json_decref(j);
        if (!kind) {
            show(shown, s, n);
            if (j == NULL)
                row_fail(b, col, "'%s' is not valid JSON: %s", shown, jerr.text);
            else
                row_fail(b, col, "'%s' is not %s", shown, type_a(c->type));
            return;
        }
    }
    if (c->enum_values && !enum_has_text(c, s, n)) {
        show(shown, s, n);
        enum_fail(b, col, shown, true);
        return;
    }
    put_text(b, v, s, n);
}

/* ---- setters -------------------------------------------------------------------------------- */

void mesh_batch_set_text(mesh_batch_t *b, int col, const char *s, size_t n)
{
    mesh_value_t *v = slot_for(b, col);
    if (v == NULL || !value_len_ok(b, col, n))
        return;
    const mesh_column_t *c = &b->cur->product->cols[col];
    char shown[SHOW_BUF];
    num_t x = {.txt = s, .tn = n};
    switch (c->type) {
    case MESH_LT_STRING:
        string_value(b, col, v, s, n);
        return;
    case MESH_LT_INTEGER:
        if (mesh_parse_i64(s, n, &x.i) == MESH_OK) {
            x.is_int = true;
            store_int(b, col, v, &x);
            return;
        }
        /* an integral decimal ("3.0", "1e3") is an integer too */
        if (mesh_parse_f64(s, n, &x.d) == MESH_OK && dbl_is_i64(x.d)) {
            x.is_int = true;
            x.i = (int64_t)x.d;
            store_int(b, col, v, &x);
            return;
        }
        show(shown, s, n);
        row_fail(b, col, "'%s' is not an integer", shown);
        return;
    case MESH_LT_NUMBER:
        if (mesh_parse_f64(s, n, &x.d) == MESH_OK) {
            store_real(b, col, v, &x);
            return;
        }
        show(shown, s, n);
        row_fail(b, col, "'%s' is not a number", shown);
        return;
    case MESH_LT_BOOLEAN: {
        bool bv;
        if (mesh_parse_bool(s, n, &bv) == MESH_OK) {
            store_bool(b, col, v, bv);
            return;
        }
        show(shown, s, n);
        row_fail(b, col, "'%s' is not a boolean", shown);
        return;
    }
    case MESH_LT_TIMESTAMP: {
        int64_t ns;
        bool ok;
        bool range;
        if (mesh_parse_i64(s, n, &x.i) == MESH_OK)
            ok = ts_from_int(b->precision, x.i, &ns);
        else if (ts_from_decimal(b->precision, s, n, &ns, &range) || range)
            ok = !range;
        else if (mesh_parse_f64(s, n, &x.d) == MESH_OK)
            ok = ts_from_real(b->precision, x.d, &ns);
        else if (mesh_time_parse(s, n, &ns) == MESH_OK)
            ok = true;
        else {
            show(shown, s, n);
            row_fail(b, col, "'%s' is not a timestamp (RFC 3339 text or a number)", shown);
            return;
        }
        if (!ok) {
            show(shown, s, n);
            row_fail(b, col, "value %s is out of range for a timestamp", shown);
            return;
        }
        store_ts(b, col, v, ns, s, n);
        return;
    }
    case MESH_LT_DATE:
    case MESH_LT_TIME:
    case MESH_LT_OBJECT:
    case MESH_LT_ARRAY:
        text_value(b, col, v, s, n);
        return;
    }
    row_fail(b, col, "column has an unknown type");
}

void mesh_batch_set_int(mesh_batch_t *b, int col, int64_t val)
{
    mesh_value_t *v = slot_for(b, col);
    if (v == NULL)
        return;
    const mesh_column_t *c = &b->cur->product->cols[col];
    num_t x = {.is_int = true, .i = val};
    int64_t ns;
    switch (c->type) {
    case MESH_LT_INTEGER:
        store_int(b, col, v, &x);
        return;
    case MESH_LT_NUMBER:
        store_real(b, col, v, &x);
        return;
    case MESH_LT_BOOLEAN:
        if (val == 0 || val == 1)
            store_bool(b, col, v, val == 1);
        else
            row_fail(b, col, "value %lld is not a boolean (0 or 1)", (long long)val);
        return;
    case MESH_LT_TIMESTAMP:
        if (ts_from_int(b->precision, val, &ns))
            store_ts(b, col, v, ns, NULL, 0);
        else
            row_fail(b, col, "value %lld is out of range for a timestamp", (long long)val);
        return;
    default:
        row_fail(b, col, "expected %s, got an integer", type_a(c->type));
        return;
    }
}

void mesh_batch_set_real(mesh_batch_t *b, int col, double val)
{
    mesh_value_t *v = slot_for(b, col);
    if (v == NULL)
        return;
    const mesh_column_t *c = &b->cur->product->cols[col];
    num_t x = {.d = val};
    char shown[SHOW_BUF];
    int64_t ns;
    if (!isfinite(val) &&
        (c->type == MESH_LT_NUMBER || c->type == MESH_LT_INTEGER || c->type == MESH_LT_TIMESTAMP)) {
        fmt_double(shown, sizeof shown, val);
        row_fail(b, col, "value %s is not a finite number", shown);
        return;
    }
    switch (c->type) {
    case MESH_LT_NUMBER:
        store_real(b, col, v, &x);
        return;
    case MESH_LT_INTEGER:
        if (dbl_is_i64(val)) {
            x.is_int = true;
            x.i = (int64_t)val;
            store_int(b, col, v, &x);
            return;
        }
        fmt_double(shown, sizeof shown, val);
        row_fail(b, col, "value %s is not an integer", shown);
        return;
    case MESH_LT_TIMESTAMP:
        if (ts_from_real(b->precision, val, &ns)) {
            store_ts(b, col, v, ns, NULL, 0);
            return;
        }
        fmt_double(shown, sizeof shown, val);
        row_fail(b, col, "value %s is out of range for a timestamp", shown);
        return;
    default:
        row_fail(b, col, "expected %s, got a number", type_a(c->type));
        return;
    }
}

void mesh_batch_set_bool(mesh_batch_t *b, int col, bool val)
{
    mesh_value_t *v = slot_for(b, col);
    if (v == NULL)
        return;
    const mesh_column_t *c = &b->cur->product->cols[col];
    if (c->type == MESH_LT_BOOLEAN)
        store_bool(b, col, v, val);
    else
        row_fail(b, col, "expected %s, got a boolean", type_a(c->type));
}

void mesh_batch_set_null(mesh_batch_t *b, int col)
{
    /* required columns are checked at row_end */
    mesh_value_t *v = slot_for(b, col);
    if (v)
        v->type = MESH_V_NULL;
}

void mesh_batch_set_json(mesh_batch_t *b, int col, const char *s, size_t n)
{
    mesh_value_t *v = slot_for(b, col);
    if (v == NULL || !value_len_ok(b, col, n))
        return;
    const mesh_column_t *c = &b->cur->product->cols[col];
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    mesh_ltype_t got;
    if (i < n && s[i] == '{')
        got = MESH_LT_OBJECT;
    else if (i < n && s[i] == '[')
        got = MESH_LT_ARRAY;
    else {
        row_fail(b, col, "expected %s, got JSON that is neither an object nor an array",
                 type_a(c->type));
        return;
    }
    if (c->type == got)
        put_text(b, v, s, n);
    else
        row_fail(b, col, "expected %s, got %s", type_a(c->type), type_a(got));
}

/* ---- row end -------------------------------------------------------------------------------- */

static mesh_status_t quarantine(mesh_batch_t *b, mesh_part_t *part, const char *raw, size_t raw_len)
{
    if (part->nquar == part->cap_quar) {
        size_t ncap = part->cap_quar ? part->cap_quar * 2 : 16;
        mesh_quarantined_t *q = realloc(part->quar, ncap * sizeof *q);
        if (q == NULL) {
            mesh_batch_fail(b, MESH_NOMEM, b->cur_row, "out of memory for the batch");
            return MESH_NOMEM;
        }
        part->quar = q;
        part->cap_quar = ncap;
    }
    size_t rlen = strlen(b->cur_reason);
    uint32_t roff, woff;
    if (!arena_put(b, b->cur_reason, rlen, &roff) || !arena_put(b, raw ? raw : "", raw_len, &woff))
        return b->fail_code;
    mesh_quarantined_t *q = &part->quar[part->nquar++];
    q->row = b->cur_row;
    q->reason_off = roff;
    q->reason_len = (uint32_t)rlen;
    q->raw_off = woff;
    q->raw_len = (uint32_t)raw_len;
    return MESH_OK;
}

mesh_status_t mesh_batch_quarantine_raw(mesh_batch_t *b, const mesh_product_t *p,
                                        uint32_t source_row, const char *reason, const char *raw,
                                        size_t raw_len)
{
    if (b->failed && b->fail_code != MESH_VALIDATION)
        return b->fail_code;
    if (p == NULL)
        return MESH_INVALID;
    b->cur = NULL;
    mesh_part_t *part = part_for(b, p);
    if (part == NULL) {
        mesh_batch_fail(b, MESH_NOMEM, source_row, "out of memory for the batch");
        return MESH_NOMEM;
    }
    b->total_rows++;
    b->error_rows++;
    b->cur_row = source_row;
    snprintf(b->cur_reason, sizeof b->cur_reason, "%s", reason ? reason : "");
    return quarantine(b, part, raw, raw ? raw_len : 0);
}

void mesh_batch_row_end(mesh_batch_t *b, const char *raw, size_t raw_len)
{
    mesh_part_t *part = b->cur;
    if (part == NULL)
        return;
    const mesh_product_t *p = part->product;
    mesh_value_t *row = cur_row(b);
    /* a row cut short by a failure of the whole batch (an unclosed quote, a limit) is not
     * also reported for the columns it never reached: the failure says what happened */
    bool bad_before = b->cur_bad || (b->failed && b->fail_code != MESH_VALIDATION);
    if (raw == NULL)
        raw_len = 0;
    for (size_t i = 0; i < part->ncols; i++) {
        mesh_value_t *v = &row[i];
        if (v->type == VT_BAD) {
            v->type = MESH_V_NULL;
            continue;
        }
        if (v->type != VT_UNSET && v->type != MESH_V_NULL)
            continue;
        v->type = MESH_V_NULL;
        /* an absent (or null) time column is the receive time */
        if ((int)i == p->time_col) {
            v->type = MESH_V_INT;
            v->u.i = b->received_ns;
        } else if ((p->cols[i].required || p->cols[i].primary_key) && !bad_before) {
            /* a row that is bad already (a line that did not parse, a value that did not
             * convert) is not also reported for every column it then lacks */
            row_fail(b, (int)i, "required value is missing");
        }
    }
    if (!b->cur_bad) {
        part->nrows++;
        b->cur = NULL;
        return;
    }
    b->error_rows++;
    /* this row's text is the arena's tail from its first text value on */
    uint32_t first = UINT32_MAX;
    for (size_t i = 0; i < part->ncols; i++)
        if (row[i].type == MESH_V_TEXT && row[i].u.s.off < first)
            first = row[i].u.s.off;
    if (first != UINT32_MAX)
        arena_cut(b, first);
    if (p->on_invalid == MESH_ON_INVALID_QUARANTINE && !b->no_quarantine)
        quarantine(b, part, raw, raw_len);
    else
        fail_validation(b);
    b->cur = NULL;
}

/* ---- encoding ------------------------------------------------------------------------------- */

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        mesh_status_t st_ = (expr);                                                                \
        if (st_ != MESH_OK)                                                                        \
            return st_;                                                                            \
    } while (0)

static mesh_status_t put_str(mesh_buf_t *o, const char *s, size_t n)
{
    TRY(mesh_buf_add_uvarint(o, n));
    return mesh_buf_add(o, s, n);
}

static uint64_t zigzag(int64_t v)
{
    uint64_t u = (uint64_t)v;
    return (u << 1) ^ (0 - (u >> 63));
}

static int64_t unzigzag(uint64_t u)
{
    return (int64_t)((u >> 1) ^ (0 - (u & 1)));
}

/* out has room for n more bytes and its NUL without growing, within its cap: the per-value
 * writes of encode_part then skip mesh_buf_reserve (a call per value was ~4 % of ingest) */
static inline bool room(const mesh_buf_t *o, size_t n)
{
    return o->data && n < o->cap - o->len && n <= o->max - o->len;
}

static mesh_status_t encode_part(const mesh_batch_t *b, const mesh_part_t *part, mesh_buf_t *out)
{
    const mesh_product_t *p = part->product;
    TRY(put_str(out, pname(p), strlen(pname(p))));
    TRY(mesh_buf_add_uvarint(out, part->ncols));
    for (size_t i = 0; i < part->ncols; i++) {
        TRY(put_str(out, p->cols[i].name, strlen(p->cols[i].name)));
        TRY(mesh_buf_addc(out, (char)p->cols[i].type));
    }
    TRY(mesh_buf_add_uvarint(out, part->nrows));
    const mesh_value_t *v = part->vals;
    for (size_t r = 0; r < part->nrows; r++) {
        for (size_t i = 0; i < part->ncols; i++, v++) {
            /* worst case of one value besides text bytes: tag + 10-byte varint */
            if (!room(out, 11))
                TRY(mesh_buf_reserve(out, 11));
            char *w = out->data + out->len;
            size_t k = 0;
            w[k++] = (char)v->type;
            uint64_t u;
            switch (v->type) {
            case MESH_V_INT:
                u = zigzag(v->u.i);
                while (u >= 0x80) {
                    w[k++] = (char)(u | 0x80);
                    u >>= 7;
                }
                w[k++] = (char)u;
                out->len += k;
                break;
            case MESH_V_REAL:
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                memcpy(w + k, &v->u.d, 8); /* the record's order: little-endian */
                k += 8;
#else
                memcpy(&u, &v->u.d, sizeof u);
                for (int j = 0; j < 8; j++)
                    w[k++] = (char)(u >> (8 * j));
#endif
                out->len += k;
                break;
            case MESH_V_TEXT: {
                size_t tn = v->u.s.len;
                if (!room(out, 1 + 10 + tn)) {
                    out->len += k;
                    TRY(put_str(out, mesh_batch_text(b, v), tn));
                    break;
                }
                u = tn;
                while (u >= 0x80) {
                    w[k++] = (char)(u | 0x80);
                    u >>= 7;
                }
                w[k++] = (char)u;
                if (tn)
                    memcpy(w + k, mesh_batch_text(b, v), tn);
                out->len += k + tn;
                break;
            }
            default:
                out->len += k;
                break;
            }
            out->data[out->len] = '\0';
        }
    }
    TRY(mesh_buf_add_uvarint(out, part->nquar));
    for (size_t i = 0; i < part->nquar; i++) {
        const mesh_quarantined_t *q = &part->quar[i];
        TRY(mesh_buf_add_uvarint(out, q->row));
        TRY(put_str(out, b->arena.data + q->reason_off, q->reason_len));
        TRY(put_str(out, b->arena.data + q->raw_off, q->raw_len));
    }
    return MESH_OK;
}

static mesh_status_t encode(const mesh_batch_t *b, const char *idem_key, size_t ik,
                            mesh_buf_t *out);

/*
 * Appends the record of b (see the format at the top) to out. MESH_INVALID for a failed batch,
 * an open row or an idempotency key longer than 255 bytes; MESH_TOO_LARGE / MESH_NOMEM from
 * out, which is then left as it was.
 */
mesh_status_t mesh_batch_encode(const mesh_batch_t *b, const char *idem_key, mesh_buf_t *out)
{
    if (b->failed || b->cur != NULL)
        return MESH_INVALID;
    size_t ik = idem_key ? strlen(idem_key) : 0;
    if (ik > MAX_IDEM)
        return MESH_INVALID;
    size_t start = out->len;
    mesh_status_t st = encode(b, idem_key, ik, out);
    if (st != MESH_OK && out->data) {
        out->len = start;
        out->data[start] = '\0';
    }
    return st;
}

static mesh_status_t encode(const mesh_batch_t *b, const char *idem_key, size_t ik, mesh_buf_t *out)
{
    size_t nparts = 0, cells = 0;
    for (size_t i = 0; i < b->nparts; i++) {
        if (b->parts[i].nrows || b->parts[i].nquar)
            nparts++;
        cells += b->parts[i].nrows * b->parts[i].ncols;
    }
    /* a first guess at the size, so a large batch is not copied by doubling many times */
    size_t guess = b->arena.len + cells * 3 + 64;
    if (guess < out->max - out->len)
        TRY(mesh_buf_reserve(out, guess));
    TRY(mesh_buf_addc(out, RECORD_VERSION));
    TRY(put_str(out, idem_key ? idem_key : "", ik));
    TRY(mesh_buf_add_u64(out, (uint64_t)b->received_ns));
    TRY(put_str(out, b->domain, strlen(b->domain)));
    TRY(mesh_buf_add_uvarint(out, nparts));
    for (size_t i = 0; i < b->nparts; i++)
        if (b->parts[i].nrows || b->parts[i].nquar)
            TRY(encode_part(b, &b->parts[i], out));
    return MESH_OK;
}

/* ---- decoding ------------------------------------------------------------------------------- */

/* Storage class of a logical type: what mesh_value_t type its values have. */
static uint8_t storage_class(uint8_t lt)
{
    switch (lt) {
    case MESH_LT_INTEGER:
    case MESH_LT_BOOLEAN:
    case MESH_LT_TIMESTAMP:
        return MESH_V_INT;
    case MESH_LT_NUMBER:
        return MESH_V_REAL;
    default:
        return MESH_V_TEXT;
    }
}

/* Reads a str of at most max bytes; NULL (and c->bad) when short or too long. */
static const char *cursor_str(mesh_cursor_t *c, size_t max, size_t *len)
{
    uint64_t n = mesh_cursor_uvarint(c);
    if (c->bad || n > max || n > c->n) {
        c->bad = 1;
        return NULL;
    }
    *len = (size_t)n;
    return (const char *)mesh_cursor_bytes(c, (size_t)n);
}

static int find_col(const mesh_product_t *p, const char *s, size_t n)
{
    for (size_t i = 0; i < p->ncols; i++)
        if (name_eq(p->cols[i].name, s, n))
            return (int)i;
    return -1;
}

typedef struct dec {
    mesh_cursor_t c;
    size_t total;
    mesh_batch_t *b;
    mesh_err_t *err;
} dec_t;

__attribute__((format(printf, 3, 4))) static mesh_status_t dec_fail(dec_t *d, mesh_status_t code,
                                                                    const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    d->b->failed = true;
    d->b->fail_code = code;
    return mesh_err_set(d->err, code, "batch record at byte %zu: %s", d->total - d->c.n, msg);
}

static mesh_status_t dec_truncated(dec_t *d)
{
    return dec_fail(d, MESH_CORRUPT, "truncated or malformed");
}

/* Converts a stored value of the record's type to the current column's storage class. */
static void convert_value(mesh_value_t *v, uint8_t want)
{
    if (v->type == MESH_V_NULL || v->type == want)
        return;
    if (v->type == MESH_V_INT && want == MESH_V_REAL) {
        v->u.d = (double)v->u.i;
        v->type = MESH_V_REAL;
    } else if (v->type == MESH_V_REAL && want == MESH_V_INT && dbl_is_i64(v->u.d)) {
        v->u.i = (int64_t)v->u.d;
        v->type = MESH_V_INT;
    } else {
        v->type = MESH_V_NULL;
    }
}

static mesh_status_t decode_part(dec_t *d, mesh_product_lookup_fn lookup, void *arg)
{
    mesh_batch_t *b = d->b;
    size_t len = 0;
    const char *s = cursor_str(&d->c, MAX_ENC_NAME, &len);
    if (s == NULL)
        return dec_truncated(d);
    char name[MAX_ENC_NAME + 1];
    memcpy(name, s, len);
    name[len] = '\0';
    const mesh_product_t *p = lookup ? lookup(arg, b->domain, name) : NULL;
    if (p && p->ncols > MESH_CONTRACT_MAX_COLUMNS)
        return dec_fail(d, MESH_INTERNAL, "product '%s' has more than %d columns", name,
                        MESH_CONTRACT_MAX_COLUMNS);
    uint64_t ncols = mesh_cursor_uvarint(&d->c);
    /* each column takes at least 2 bytes */
    if (d->c.bad || ncols > MESH_CONTRACT_MAX_COLUMNS || ncols > d->c.n / 2)
        return dec_truncated(d);
    int map[MESH_CONTRACT_MAX_COLUMNS];
    uint8_t cls[MESH_CONTRACT_MAX_COLUMNS];
    uint8_t used[MESH_CONTRACT_MAX_COLUMNS] = {0};
    for (size_t i = 0; i < ncols; i++) {
        s = cursor_str(&d->c, MAX_ENC_NAME, &len);
        uint8_t lt = mesh_cursor_u8(&d->c);
        if (s == NULL || d->c.bad)
            return dec_truncated(d);
        if (lt > MESH_LT_ARRAY)
            return dec_fail(d, MESH_CORRUPT, "unknown column type %u", lt);
        cls[i] = storage_class(lt);
        map[i] = p ? find_col(p, s, len) : -1;
        if (map[i] >= 0) {
            if (used[map[i]])
                return dec_fail(d, MESH_CORRUPT, "column listed twice");
            used[map[i]] = 1;
        }
    }
    uint64_t nrows = mesh_cursor_uvarint(&d->c);
    if (d->c.bad || (ncols == 0 && nrows > 0) || (ncols > 0 && nrows > d->c.n / ncols))
        return dec_truncated(d);
    mesh_part_t *part = NULL;
    if (p) {
        part = part_for(b, p);
        if (part == NULL)
            return dec_fail(d, MESH_NOMEM, "out of memory");
    }
    /* the record says how many rows come: room for them once, up to PREALLOC_MAX bytes (a
     * damaged or hostile count, bounded only by the record's size, sizes no more) */
    if (part && nrows > 0 && b->total_rows < b->limits.max_rows) {
        size_t room = b->limits.max_rows - b->total_rows;
        size_t cap = PREALLOC_MAX / ((part->ncols ? part->ncols : 1) * sizeof(mesh_value_t));
        if (room > cap)
            room = cap;
        if (part_grow(part, part->nrows + (nrows < room ? (size_t)nrows : room)) != MESH_OK)
            return dec_fail(d, MESH_NOMEM, "out of memory");
    }
    for (uint64_t r = 0; r < nrows; r++) {
        mesh_value_t *row = NULL;
        if (part) {
            if (b->total_rows >= b->limits.max_rows)
                return dec_fail(d, MESH_TOO_LARGE, "more than %zu rows", b->limits.max_rows);
            if (part_reserve_row(b, part) != MESH_OK)
                return dec_fail(d, MESH_NOMEM, "out of memory");
            row = &part->vals[part->nrows * part->ncols];
            for (size_t i = 0; i < part->ncols; i++)
                row[i].type = MESH_V_NULL;
        }
        for (size_t i = 0; i < ncols; i++) {
            mesh_value_t v = {.type = mesh_cursor_u8(&d->c)};
            switch (v.type) {
            case MESH_V_NULL:
                break;
            case MESH_V_INT:
                v.u.i = unzigzag(mesh_cursor_uvarint(&d->c));
                break;
            case MESH_V_REAL: {
                uint64_t u = mesh_cursor_u64(&d->c);
                memcpy(&v.u.d, &u, sizeof u);
                if (!isfinite(v.u.d))
                    return dec_fail(d, MESH_CORRUPT, "a number that is not finite");
                break;
            }
            case MESH_V_TEXT:
                s = cursor_str(&d->c, b->limits.max_value_len, &len);
                if (s == NULL)
                    return dec_truncated(d);
                if (row && map[i] >= 0) {
                    uint32_t off;
                    if (!arena_put(b, s, len, &off))
                        return dec_fail(d, b->fail_code, "text exceeds the batch limit");
                    v.u.s.off = off;
                    v.u.s.len = (uint32_t)len;
                }
                break;
            default:
                return dec_fail(d, MESH_CORRUPT, "unknown value tag %u", v.type);
            }
            if (d->c.bad)
                return dec_truncated(d);
            if (v.type != MESH_V_NULL && v.type != cls[i])
                return dec_fail(d, MESH_CORRUPT, "a value does not fit its column's type");
            if (row && map[i] >= 0) {
                convert_value(&v, storage_class((uint8_t)p->cols[map[i]].type));
                row[map[i]] = v;
            }
        }
        if (part) {
            part->nrows++;
            b->total_rows++;
        }
    }
    uint64_t nquar = mesh_cursor_uvarint(&d->c);
    if (d->c.bad || nquar > d->c.n / 3)
        return dec_truncated(d);
    for (uint64_t i = 0; i < nquar; i++) {
        uint64_t row = mesh_cursor_uvarint(&d->c);
        size_t rlen = 0, wlen = 0;
        const char *reason = cursor_str(&d->c, sizeof b->cur_reason, &rlen);
        const char *raw = cursor_str(&d->c, d->c.n, &wlen);
        if (reason == NULL || raw == NULL || row > UINT32_MAX)
            return dec_truncated(d);
        if (part == NULL)
            continue;
        if (b->total_rows >= b->limits.max_rows)
            return dec_fail(d, MESH_TOO_LARGE, "more than %zu rows", b->limits.max_rows);
        memcpy(b->cur_reason, reason, rlen);
        b->cur_reason[rlen < sizeof b->cur_reason ? rlen : sizeof b->cur_reason - 1] = '\0';
        b->cur_row = (uint32_t)row;
        if (quarantine(b, part, raw, wlen) != MESH_OK)
            return dec_fail(d, b->fail_code, "quarantined rows exceed the batch limit");
        b->total_rows++;
        b->error_rows++;
    }
    b->cur_reason[0] = '\0';
    return MESH_OK;
}

/*
 * Decodes a record (p, n: untrusted, borrowed) into b, which the caller has initialised with
 * mesh_batch_init (its limits bound the decode) and not filled. Takes the domain and receive
 * time from the record; the idempotency key goes to idem_key (NUL-terminated; idem_cap of 256
 * always fits; NULL or 0 when not wanted). MESH_CORRUPT for a malformed record, MESH_TOO_LARGE
 * past b's limits, MESH_INVALID when the key does not fit; err says where. b must be freed
 * with mesh_batch_free either way.
 */
mesh_status_t mesh_batch_decode(const uint8_t *p, size_t n, mesh_product_lookup_fn lookup,
                                void *arg, mesh_batch_t *b, char *idem_key, size_t idem_cap,
                                mesh_err_t *err)
{
    dec_t d = {.total = n, .b = b, .err = err};
    mesh_cursor_init(&d.c, p, n);
    if (b->nparts || b->cur)
        return mesh_err_set(err, MESH_INVALID, "decode needs an empty batch");
    if (idem_key && idem_cap)
        idem_key[0] = '\0';
    uint8_t ver = mesh_cursor_u8(&d.c);
    if (d.c.bad)
        return dec_truncated(&d);
    if (ver != RECORD_VERSION)
        return dec_fail(&d, MESH_CORRUPT, "unsupported version %u", ver);
    size_t len = 0;
    const char *s = cursor_str(&d.c, MAX_IDEM, &len);
    if (s == NULL)
        return dec_truncated(&d);
    if (idem_key && idem_cap) {
        if (len >= idem_cap)
            return dec_fail(&d, MESH_INVALID, "idempotency key of %zu bytes does not fit", len);
        memcpy(idem_key, s, len);
        idem_key[len] = '\0';
    }
    b->received_ns = (int64_t)mesh_cursor_u64(&d.c);
    s = cursor_str(&d.c, sizeof b->domain - 1, &len);
    if (s == NULL)
        return dec_truncated(&d);
    memcpy(b->domain, s, len);
    b->domain[len] = '\0';
    uint64_t nparts = mesh_cursor_uvarint(&d.c);
    /* each part takes at least 4 bytes */
    if (d.c.bad || nparts > d.c.n / 4)
        return dec_truncated(&d);
    for (uint64_t i = 0; i < nparts; i++) {
        mesh_status_t st = decode_part(&d, lookup, arg);
        if (st != MESH_OK)
            return st;
    }
    if (d.c.n != 0)
        return dec_fail(&d, MESH_CORRUPT, "%zu bytes after the end", d.c.n);
    return MESH_OK;
}

/* ---- errors as JSON ------------------------------------------------------------------------- */

static mesh_status_t json_str_or_null(mesh_buf_t *out, const char *s)
{
    if (s[0] == '\0')
        return mesh_buf_adds(out, "null");
    return mesh_buf_add_json_str(out, s, strlen(s));
}

mesh_status_t mesh_batch_errors_json(const mesh_batch_t *b, mesh_buf_t *out)
{
    TRY(mesh_buf_addc(out, '['));
    for (size_t i = 0; i < b->nerrors; i++) {
        const mesh_row_error_t *e = &b->errors[i];
        TRY(mesh_buf_printf(out, "%s{\"row\":%u,\"product\":", i ? "," : "", e->row));
        TRY(json_str_or_null(out, e->product));
        TRY(mesh_buf_adds(out, ",\"column\":"));
        TRY(json_str_or_null(out, e->column));
        TRY(mesh_buf_adds(out, ",\"reason\":"));
        TRY(mesh_buf_add_json_str(out, e->reason, strlen(e->reason)));
        TRY(mesh_buf_addc(out, '}'));
    }
    return mesh_buf_addc(out, ']');
}
