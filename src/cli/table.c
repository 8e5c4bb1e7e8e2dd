/*
 * table.c - aligned text tables (see table.h).
 *
 * Cells live in one growing array of malloc'd strings, row-major; a NULL pointer is an SQL
 * NULL. Widths are computed at print time, so rows can be added as they are decoded.
 */
#include "cli/table.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/util.h"

#define GAP      2
#define NULL_TXT "NULL"

typedef struct column {
    char *name;
    mesh_align_t align;
    size_t max_width;
} column_t;

struct mesh_table {
    size_t ncols;
    column_t *cols;
    char **cells; /* row-major; NULL is an SQL NULL */
    size_t ncells, cap;
};

mesh_table_t *mesh_table_create(size_t ncols)
{
    mesh_table_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->ncols = ncols;
    if ((t->cols = calloc(ncols ? ncols : 1, sizeof *t->cols)) == NULL) {
        free(t);
        return NULL;
    }
    return t;
}

void mesh_table_destroy(mesh_table_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->ncols; i++)
        free(t->cols[i].name);
    for (size_t i = 0; i < t->ncells; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t->cols);
    free(t);
}

/* A copy of s with control characters (C0, DEL) replaced by '?'. */
static char *clean_copy(const char *s)
{
    char *c = mesh_strdup(s);
    if (c == NULL)
        return NULL;
    for (unsigned char *p = (unsigned char *)c; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
    return c;
}

mesh_status_t mesh_table_column(mesh_table_t *t, size_t col, const char *name, mesh_align_t align,
                                size_t max_width)
{
    if (col >= t->ncols)
        return MESH_INVALID;
    char *n = clean_copy(name ? name : "");
    if (n == NULL)
        return MESH_NOMEM;
    free(t->cols[col].name);
    t->cols[col].name = n;
    t->cols[col].align = align;
    t->cols[col].max_width = max_width;
    return MESH_OK;
}

mesh_status_t mesh_table_add(mesh_table_t *t, const char *s)
{
    if (t->ncells == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        char **c = realloc(t->cells, cap * sizeof *c);
        if (c == NULL)
            return MESH_NOMEM;
        t->cells = c;
        t->cap = cap;
    }
    char *copy = NULL;
    if (s && (copy = clean_copy(s)) == NULL)
        return MESH_NOMEM;
    t->cells[t->ncells++] = copy;
    return MESH_OK;
}

mesh_status_t mesh_table_addf(mesh_table_t *t, const char *fmt, ...)
{
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 20);
    va_list ap;
    va_start(ap, fmt);
    mesh_status_t st = mesh_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (st == MESH_OK)
        st = mesh_table_add(t, b.data ? b.data : "");
    mesh_buf_free(&b);
    return st;
}

size_t mesh_table_rows(const mesh_table_t *t)
{
    return t->ncols ? t->ncells / t->ncols : 0;
}

/* Characters of a UTF-8 string (continuation bytes do not count). */
static size_t width_of(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        w += (*p & 0xC0) != 0x80;
    return w;
}

/* Bytes of the first w characters of s. */
static size_t bytes_of(const char *s, size_t w)
{
    size_t i = 0, seen = 0;
    while (s[i]) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (seen == w)
                break;
            seen++;
        }
        i++;
    }
    return i;
}

static bool is_number(const char *s)
{
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    size_t digits = 0;
    while (*p >= '0' && *p <= '9') {
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            p++;
            digits++;
        }
    }
    if (digits && (*p == 'e' || *p == 'E')) {
        p++;
        if (*p == '-' || *p == '+')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return digits > 0 && *p == '\0';
}

static size_t shown_width(const column_t *c, const char *s)
{
    size_t w = width_of(s ? s : NULL_TXT);
    return c->max_width && w > c->max_width ? c->max_width : w;
}

static void pad(mesh_buf_t *line, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mesh_buf_addc(line, ' ');
}

/* Appends one cell padded to width. */
static void put_cell(mesh_buf_t *line, const column_t *c, const char *s, size_t width, bool right,
                     bool dim_null)
{
    const char *text = s ? s : NULL_TXT;
    size_t w = width_of(text);
    size_t nbytes = strlen(text);
    bool cut = c->max_width && w > c->max_width;
    if (cut) {
        nbytes = bytes_of(text, c->max_width > 3 ? c->max_width - 3 : 0);
        w = c->max_width;
    }
    if (right)
        pad(line, width - w);
    if (s == NULL && dim_null)
        mesh_buf_adds(line, "\033[2m");
    mesh_buf_add(line, text, nbytes);
    if (cut && c->max_width > 3)
        mesh_buf_adds(line, "...");
    if (s == NULL && dim_null)
        mesh_buf_adds(line, "\033[0m");
    if (!right)
        pad(line, width - w);
}

/* Writes a line without its trailing blanks. */
static void put_line(FILE *out, mesh_buf_t *line)
{
    while (line->len && line->data[line->len - 1] == ' ')
        line->len--;
    mesh_buf_addc(line, '\n');
    fwrite(line->data, 1, line->len, out);
    mesh_buf_reset(line);
}

void mesh_table_print(const mesh_table_t *t, FILE *out, bool dim_null)
{
    size_t nrows = mesh_table_rows(t);
    size_t *width = calloc(t->ncols ? t->ncols : 1, sizeof *width);
    bool *right = calloc(t->ncols ? t->ncols : 1, sizeof *right);
    mesh_buf_t line;
    mesh_buf_init(&line, MESH_BUF_UNLIMITED);
    if (width == NULL || right == NULL) {
        free(width);
        free(right);
        return;
    }
    for (size_t c = 0; c < t->ncols; c++) {
        const column_t *col = &t->cols[c];
        width[c] = width_of(col->name ? col->name : "");
        bool numeric = col->align == MESH_ALIGN_RIGHT, any = false;
        for (size_t r = 0; r < nrows; r++) {
            const char *s = t->cells[r * t->ncols + c];
            size_t w = shown_width(col, s);
            if (w > width[c])
                width[c] = w;
            if (col->align == MESH_ALIGN_AUTO && s) {
                numeric = (any ? numeric : true) && is_number(s);
                any = true;
            }
        }
        right[c] = numeric;
    }
    for (size_t c = 0; c < t->ncols; c++) {
        if (c)
            pad(&line, GAP);
        put_cell(&line, &t->cols[c], t->cols[c].name ? t->cols[c].name : "", width[c], right[c],
                 false);
    }
    put_line(out, &line);
    for (size_t c = 0; c < t->ncols; c++) {
        if (c)
            pad(&line, GAP);
        for (size_t i = 0; i < width[c]; i++)
            mesh_buf_addc(&line, '-');
    }
    put_line(out, &line);
    for (size_t r = 0; r < nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            if (c)
                pad(&line, GAP);
            put_cell(&line, &t->cols[c], t->cells[r * t->ncols + c], width[c], right[c], dim_null);
        }
        put_line(out, &line);
    }
    mesh_buf_free(&line);
    free(width);
    free(right);
}

static void csv_line(FILE *out, char *const *cells, size_t n, mesh_buf_t *b)
{
    mesh_buf_reset(b);
    for (size_t c = 0; c < n; c++) {
        if (c)
            mesh_buf_addc(b, ',');
        if (cells[c])
            mesh_buf_add_csv_field(b, cells[c], strlen(cells[c]));
    }
    mesh_buf_adds(b, "\r\n");
    fwrite(b->data, 1, b->len, out);
}

void mesh_table_print_csv(const mesh_table_t *t, FILE *out)
{
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    char **names = calloc(t->ncols ? t->ncols : 1, sizeof *names);
    if (names) {
        for (size_t c = 0; c < t->ncols; c++)
            names[c] = t->cols[c].name ? t->cols[c].name : (char *)"";
        csv_line(out, names, t->ncols, &b);
        free(names);
    }
    size_t nrows = mesh_table_rows(t);
    for (size_t r = 0; r < nrows; r++)
        csv_line(out, t->cells + r * t->ncols, t->ncols, &b);
    mesh_buf_free(&b);
}

void mesh_table_print_kv(const mesh_table_t *t, FILE *out)
{
    size_t nrows = mesh_table_rows(t), w = 0;
    if (t->ncols < 2)
        return;
    for (size_t r = 0; r < nrows; r++) {
        const char *k = t->cells[r * t->ncols];
        size_t kw = width_of(k ? k : "");
        if (kw > w)
            w = kw;
    }
    for (size_t r = 0; r < nrows; r++) {
        const char *k = t->cells[r * t->ncols], *v = t->cells[r * t->ncols + 1];
        fputs(k ? k : "", out);
        fprintf(out, "%*s", (int)(w - width_of(k ? k : "") + GAP), "");
        fputs(v ? v : "-", out);
        fputc('\n', out);
    }
}
