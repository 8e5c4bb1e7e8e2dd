/*
 * csv.c - RFC 4180 parser (see csv.h).
 *
 * One pass, no allocation per record: a field is handed to the batch as soon as it is read,
 * borrowed from the body; only a quoted field holding "" is unescaped, into one scratch buffer
 * of MESH_CSV_MAX_LINE bytes allocated on first need (a field is never longer than its
 * record, and the batch copies each value before the next field is read). Line numbers count
 * every LF, including those inside quoted fields, so errors point at the physical line.
 */
#include "ingest/csv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHOW_MAX 40 /* bytes of a name quoted in an error */

typedef struct csv {
    const char *s;
    size_t n;
    size_t pos;        /* next byte to read */
    uint32_t line;     /* physical line of pos, 1-based */
    size_t line_start; /* offset of that line's first byte */
    char *scratch;     /* MESH_CSV_MAX_LINE bytes, NULL until a "" escape is seen */
    mesh_batch_t *b;
    /* the current record */
    size_t rec_start;
    uint32_t rec_line;
    size_t field_end; /* offset just past the last field read (before its separator) */
    /* first syntax error of the record */
    const char *syn;
    uint32_t syn_line;
    size_t syn_col;
} csv_t;

typedef enum { END_FIELD, END_RECORD, END_BODY, END_FATAL } csv_end_t;

typedef struct field {
    const char *p;
    size_t n;
    bool quoted;
} field_t;

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

static void syntax(csv_t *c, size_t at, const char *msg)
{
    if (c->syn)
        return;
    c->syn = msg;
    c->syn_line = c->line;
    c->syn_col = at - c->line_start + 1;
}

static void newline_at(csv_t *c, size_t i)
{
    c->line++;
    c->line_start = i + 1;
}

static bool too_long(csv_t *c, size_t end)
{
    if (end - c->rec_start <= MESH_CSV_MAX_LINE)
        return false;
    mesh_batch_fail(c->b, MESH_TOO_LARGE, c->rec_line,
                    "the record at line %u is longer than %u bytes", c->rec_line,
                    MESH_CSV_MAX_LINE);
    return true;
}

/* How the field that ends at i (on a separator, a line break or the end) ends. */
static csv_end_t field_end(csv_t *c, size_t i)
{
    const char *s = c->s;
    c->field_end = i;
    if (i >= c->n) {
        c->pos = c->n;
        return END_BODY;
    }
    if (s[i] == ',') {
        c->pos = i + 1;
        return END_FIELD;
    }
    if (s[i] == '\r')
        i++; /* the scanners stop at '\r' only before '\n' */
    newline_at(c, i);
    c->pos = i + 1;
    return END_RECORD;
}

/* Scans unquoted bytes from i to the next separator or line break. */
static size_t scan_plain(csv_t *c, size_t i)
{
    const char *s = c->s;
    size_t n = c->n;
    while (i < n) {
        char ch = s[i];
        if (ch == ',' || ch == '\n' || (ch == '\r' && i + 1 < n && s[i + 1] == '\n'))
            break;
        if (ch == '"')
            syntax(c, i, "quote inside an unquoted field");
        i++;
    }
    return i;
}

/* Reads the field at c->pos into f. Syntax errors are noted on the record (the field's end is
 * still found, so the record can be skipped); END_FATAL fails the batch. */
static csv_end_t read_field(csv_t *c, field_t *f)
{
    const char *s = c->s;
    size_t n = c->n, i = c->pos;
    if (i >= n || s[i] != '"') {
        size_t end = scan_plain(c, i);
        if (too_long(c, end))
            return END_FATAL;
        f->p = s + i;
        f->n = end - i;
        f->quoted = false;
        return field_end(c, end);
    }
    uint32_t open_line = c->line;
    size_t open_col = i - c->line_start + 1;
    size_t start = i + 1;
    bool esc = false;
    i = start;
    for (;;) {
        const char *q = memchr(s + i, '"', n - i);
        size_t end = q ? (size_t)(q - s) : n;
        for (const char *nl = memchr(s + i, '\n', end - i); nl != NULL;
             nl = memchr(nl + 1, '\n', (size_t)(s + end - nl - 1)))
            newline_at(c, (size_t)(nl - s));
        if (too_long(c, end))
            return END_FATAL;
        if (q == NULL) {
            mesh_batch_fail(c->b, MESH_PARSE, c->rec_line,
                            "line %u, col %zu: quoted field is never closed", open_line, open_col);
            return END_FATAL;
        }
        i = end + 1;
        if (i < n && s[i] == '"') {
            esc = true;
            i++;
            continue;
        }
        break;
    }
    size_t len = i - 1 - start;
    f->quoted = true;
    if (!esc) {
        f->p = s + start;
        f->n = len;
    } else {
        if (c->scratch == NULL && (c->scratch = malloc(MESH_CSV_MAX_LINE)) == NULL) {
            mesh_batch_fail(c->b, MESH_NOMEM, c->rec_line, "out of memory parsing CSV");
            return END_FATAL;
        }
        size_t o = 0;
        for (size_t k = start; k < start + len; k++) {
            c->scratch[o++] = s[k];
            if (s[k] == '"')
                k++;
        }
        f->p = c->scratch;
        f->n = o;
    }
    if (i < n && s[i] != ',' && s[i] != '\n' && !(s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')) {
        syntax(c, i, "unexpected character after a closing quote");
        i = scan_plain(c, i);
        if (too_long(c, i))
            return END_FATAL;
    }
    return field_end(c, i);
}

/* Skips empty lines at c->pos. */
static void skip_blank(csv_t *c)
{
    while (c->pos < c->n) {
        size_t i = c->pos;
        if (c->s[i] == '\r' && i + 1 < c->n && c->s[i + 1] == '\n')
            i++;
        if (c->s[i] != '\n')
            return;
        newline_at(c, i);
        c->pos = i + 1;
    }
}

/* (s, n) equals the C string name; reads name no further than its NUL. */
static bool name_eq(const char *name, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (name[i] != s[i] || name[i] == '\0')
            return false;
    return name[n] == '\0';
}

static int find_col(const mesh_product_t *p, const char *s, size_t n)
{
    for (size_t i = 0; i < p->ncols; i++)
        if (name_eq(p->cols[i].name, s, n))
            return (int)i;
    return -1;
}

/* Reads the header into map[]; returns the number of fields, or 0 after failing the batch. */
static size_t read_header(csv_t *c, const mesh_product_t *p, int *map, uint8_t *used)
{
    mesh_batch_t *b = c->b;
    char nshow[SHOW_MAX + 4];
    if (c->n >= 3 && memcmp(c->s, "\xEF\xBB\xBF", 3) == 0)
        c->pos = c->line_start = 3;
    skip_blank(c);
    if (c->pos >= c->n) {
        mesh_batch_fail(b, MESH_INVALID, 1,
                        "the CSV body is empty: the first line must be "
                        "the header");
        return 0;
    }
    c->rec_start = c->pos;
    c->rec_line = c->line;
    size_t nf = 0;
    for (;;) {
        field_t f;
        csv_end_t end = read_field(c, &f);
        if (end == END_FATAL)
            return 0;
        if (c->syn) {
            mesh_batch_fail(b, MESH_PARSE, c->rec_line, "line %u, col %zu: %s in the CSV header",
                            c->syn_line, c->syn_col, c->syn);
            return 0;
        }
        if (nf == MESH_CSV_MAX_FIELDS) {
            mesh_batch_fail(b, MESH_TOO_LARGE, c->rec_line,
                            "the CSV header has more than %d fields", MESH_CSV_MAX_FIELDS);
            return 0;
        }
        nf++;
        if (f.n == 0) {
            mesh_batch_fail(b, MESH_INVALID, c->rec_line,
                            "empty column name in the CSV header (field %zu)", nf);
            return 0;
        }
        int col = find_col(p, f.p, f.n);
        show(nshow, f.p, f.n);
        if (col < 0) {
            mesh_batch_fail(b, MESH_INVALID, c->rec_line,
                            "unknown column '%s' in the CSV header: product '%s' has no such "
                            "column",
                            nshow, p->name);
            return 0;
        }
        if (used[col]) {
            mesh_batch_fail(b, MESH_INVALID, c->rec_line,
                            "column '%s' appears twice in the CSV header", nshow);
            return 0;
        }
        used[col] = 1;
        map[nf - 1] = col;
        if (end != END_FIELD)
            return nf;
    }
}

/* Parses one data record at c->pos as a row. Returns false when parsing must stop. */
static bool read_record(csv_t *c, const mesh_product_t *p, const int *map, size_t nhdr)
{
    mesh_batch_t *b = c->b;
    c->rec_start = c->pos;
    c->rec_line = c->line;
    c->syn = NULL;
    if (mesh_batch_row_begin(b, p, c->rec_line) != MESH_OK)
        return false;
    size_t nf = 0;
    for (;;) {
        field_t f;
        csv_end_t end = read_field(c, &f);
        if (end == END_FATAL) {
            mesh_batch_row_end(b, NULL, 0);
            return false;
        }
        nf++;
        if (c->syn == NULL && nf <= nhdr) {
            if (!f.quoted && f.n == 0)
                mesh_batch_set_null(b, map[nf - 1]);
            else
                mesh_batch_set_text(b, map[nf - 1], f.p, f.n);
        }
        if (end != END_FIELD)
            break;
    }
    if (c->syn)
        mesh_batch_row_error(b, -1, "line %u, col %zu: %s", c->syn_line, c->syn_col, c->syn);
    else if (nf != nhdr)
        mesh_batch_row_error(b, -1, "row has %zu field%s, the header has %zu", nf,
                             nf == 1 ? "" : "s", nhdr);
    mesh_batch_row_end(b, c->s + c->rec_start, c->field_end - c->rec_start);
    return !(b->failed && b->fail_code != MESH_VALIDATION);
}

mesh_status_t mesh_csv_parse(const char *body, size_t n, const mesh_product_t *p, mesh_batch_t *b)
{
    csv_t c = {.s = body, .n = n, .line = 1, .b = b};
    int map[MESH_CSV_MAX_FIELDS];
    uint8_t *used = calloc(p->ncols ? p->ncols : 1, 1);
    if (used == NULL) {
        mesh_batch_fail(b, MESH_NOMEM, 0, "out of memory parsing CSV");
        return MESH_NOMEM;
    }
    size_t nhdr = read_header(&c, p, map, used);
    free(used);
    if (nhdr > 0) {
        for (;;) {
            skip_blank(&c);
            if (c.pos >= c.n || !read_record(&c, p, map, nhdr))
                break;
        }
    }
    free(c.scratch);
    return b->failed ? b->fail_code : MESH_OK;
}
