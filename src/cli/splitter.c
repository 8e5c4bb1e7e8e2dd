/*
 * splitter.c - cutting an input into batches at record boundaries (see splitter.h).
 *
 * The input is read in 64 KiB blocks; a format-specific scanner finds where the current
 * record ends within the block, and whole spans are appended to the batch body, so the
 * per-byte work is a memchr (NDJSON, LP) or a four-state machine (CSV, JSON). Scanner state
 * survives block boundaries. Record size limits are the server's own (the ingest headers), checked
 * as bytes arrive, so a runaway record (an unclosed quote) fails here with its line rather
 * than as a huge request.
 */
#include "cli/splitter.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "ingest/csv.h"
#include "ingest/jsonrows.h"
#include "ingest/lineproto.h"

#define BLOCK (64 * 1024)

/* CSV scanner states within a record. */
enum { CSV_FIELD_START, CSV_PLAIN, CSV_QUOTED, CSV_QUOTE_SEEN };
/* JSON positions in the top-level value. */
enum { J_START, J_VALUE, J_SEP, J_SINGLE, J_DONE };

struct mesh_splitter {
    FILE *in;
    mesh_split_fmt_t fmt;
    size_t max_rows;
    size_t max_bytes;
    size_t max_record; /* bytes of one record (the server's limit for the format) */
    char blk[BLOCK];
    size_t bpos, blen;
    bool eof;
    bool first_block;
    uint64_t line;     /* input line of blk[bpos], 1-based */
    uint64_t consumed; /* input bytes consumed */
    uint64_t batches;
    mesh_buf_t body;
    uint64_t body_line; /* input line where the current batch's records begin */
    uint64_t rec_line;  /* input line where the last record read starts */
    /* CSV */
    int csv;
    bool have_header;
    mesh_buf_t header;
    uint64_t header_line;  /* input line of the header */
    uint64_t header_lines; /* physical lines the header spans */
    /* JSON */
    int js;
    bool after_comma;
    uint64_t *elem_line; /* input line of each element of the current batch (max_rows) */
};

mesh_status_t mesh_splitter_create(FILE *in, mesh_split_fmt_t fmt, size_t max_rows,
                                   size_t max_bytes, mesh_splitter_t **out)
{
    *out = NULL;
    mesh_splitter_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return MESH_NOMEM;
    s->in = in;
    s->fmt = fmt;
    s->max_rows = max_rows ? max_rows : 1;
    s->max_bytes = max_bytes;
    s->first_block = true;
    s->line = 1;
    switch (fmt) {
    case MESH_SPLIT_CSV:
        s->max_record = MESH_CSV_MAX_LINE;
        break;
    case MESH_SPLIT_NDJSON:
        s->max_record = MESH_JSON_MAX_LINE;
        break;
    case MESH_SPLIT_LP:
        s->max_record = MESH_LP_MAX_LINE;
        break;
    case MESH_SPLIT_JSON:
        s->max_record = MESH_JSON_MAX_BODY;
        break;
    }
    mesh_buf_init(&s->body, MESH_BUF_UNLIMITED);
    mesh_buf_init(&s->header, MESH_CSV_MAX_LINE + 2);
    if (fmt == MESH_SPLIT_JSON &&
        (s->elem_line = calloc(s->max_rows, sizeof *s->elem_line)) == NULL) {
        mesh_splitter_destroy(s);
        return MESH_NOMEM;
    }
    *out = s;
    return MESH_OK;
}

void mesh_splitter_destroy(mesh_splitter_t *s)
{
    if (s == NULL)
        return;
    mesh_buf_free(&s->body);
    mesh_buf_free(&s->header);
    free(s->elem_line);
    free(s);
}

uint64_t mesh_splitter_bytes(const mesh_splitter_t *s)
{
    return s->consumed;
}

/* Makes input available at blk[bpos]. 1: there is some; 0: end of input; -1: read error. */
static int fill(mesh_splitter_t *s, mesh_err_t *err)
{
    while (s->bpos >= s->blen) {
        if (s->eof)
            return 0;
        size_t n = fread(s->blk, 1, BLOCK, s->in);
        if (n == 0) {
            if (ferror(s->in)) {
                mesh_err_set(err, MESH_IO, "read error at line %llu: %s",
                             (unsigned long long)s->line, strerror(errno));
                return -1;
            }
            s->eof = true;
            return 0;
        }
        s->bpos = 0;
        s->blen = n;
        if (s->first_block) {
            s->first_block = false;
            if (n >= 3 && memcmp(s->blk, "\xEF\xBB\xBF", 3) == 0) {
                s->bpos = 3;
                s->consumed += 3;
            }
        }
    }
    return 1;
}

/* Appends blk[bpos, end) to the body and consumes it. */
static int take(mesh_splitter_t *s, size_t end, size_t rec_start, mesh_err_t *err)
{
    if (mesh_buf_add(&s->body, s->blk + s->bpos, end - s->bpos) != MESH_OK) {
        mesh_err_set(err, MESH_NOMEM, "out of memory");
        return -1;
    }
    s->consumed += end - s->bpos;
    s->bpos = end;
    if (s->body.len - rec_start > s->max_record + 2) { /* + its line break */
        mesh_err_set(err, MESH_TOO_LARGE,
                     "line %llu: the record is longer than %zu bytes, more than the server "
                     "accepts%s",
                     (unsigned long long)s->rec_line, s->max_record,
                     s->fmt == MESH_SPLIT_CSV ? " (a quoted field never closed?)" : "");
        return -1;
    }
    return 0;
}

/* Finds the end of a line record in the block: the offset past its '\n', or blen. */
static size_t scan_line(mesh_splitter_t *s, bool *done)
{
    const char *nl = memchr(s->blk + s->bpos, '\n', s->blen - s->bpos);
    *done = nl != NULL;
    if (nl == NULL)
        return s->blen;
    s->line++;
    return (size_t)(nl - s->blk) + 1;
}

/* Finds the end of a CSV record in the block, the way the server's parser reads records:
 * only a field that starts with '"' is quoted; inside it "" is a quote. */
static size_t scan_csv(mesh_splitter_t *s, bool *done)
{
    *done = false;
    for (size_t i = s->bpos; i < s->blen; i++) {
        char ch = s->blk[i];
        if (ch == '\n')
            s->line++;
        switch (s->csv) {
        case CSV_QUOTED:
            if (ch == '"')
                s->csv = CSV_QUOTE_SEEN;
            continue;
        case CSV_QUOTE_SEEN:
            if (ch == '"') {
                s->csv = CSV_QUOTED;
                continue;
            }
            break;
        case CSV_FIELD_START:
            if (ch == '"') {
                s->csv = CSV_QUOTED;
                continue;
            }
            break;
        default:
            break;
        }
        /* outside quotes */
        if (ch == '\n') {
            s->csv = CSV_FIELD_START;
            *done = true;
            return i + 1;
        }
        s->csv = ch == ',' ? CSV_FIELD_START : CSV_PLAIN;
    }
    return s->blen;
}

/* Appends the next CSV, NDJSON or LP record to the body. 1: a record (the last may end
 * without a line break); 0: end of input; -1: error. */
static int read_record(mesh_splitter_t *s, mesh_err_t *err)
{
    size_t start = s->body.len;
    s->rec_line = s->line;
    for (;;) {
        int r = fill(s, err);
        if (r < 0)
            return -1;
        if (r == 0) {
            if (s->fmt == MESH_SPLIT_CSV && s->csv == CSV_QUOTED) {
                mesh_err_set(err, MESH_PARSE,
                             "line %llu: a quoted field is never closed before the end of the "
                             "input",
                             (unsigned long long)s->rec_line);
                return -1;
            }
            s->csv = CSV_FIELD_START;
            return s->body.len > start;
        }
        bool done;
        size_t end = s->fmt == MESH_SPLIT_CSV ? scan_csv(s, &done) : scan_line(s, &done);
        if (take(s, end, start, err) < 0)
            return -1;
        if (done)
            return 1;
    }
}

/* A record that holds no row: an empty line, whitespace only (NDJSON, LP) or a comment
 * (LP), as the server skips them. */
static bool blank(const mesh_splitter_t *s, const char *p, size_t n)
{
    if (s->fmt == MESH_SPLIT_CSV)
        return n == 0 || (n == 1 && p[0] == '\n') || (n == 2 && p[0] == '\r' && p[1] == '\n');
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    return i == n || (s->fmt == MESH_SPLIT_LP && p[i] == '#');
}

static int oom(mesh_err_t *err)
{
    mesh_err_set(err, MESH_NOMEM, "out of memory");
    return -1;
}

static int json_error(mesh_splitter_t *s, mesh_err_t *err, const char *what)
{
    mesh_err_set(err, MESH_PARSE, "line %llu: %s", (unsigned long long)s->line, what);
    return -1;
}

/* Moves to the start of the next JSON element (or the single top-level object). 1: an
 * element starts at blk[bpos]; 0: the value ended; -1: error. */
static int json_seek(mesh_splitter_t *s, mesh_err_t *err)
{
    for (;;) {
        int r = fill(s, err);
        if (r < 0)
            return -1;
        if (r == 0) {
            if (s->js == J_DONE || s->js == J_START)
                return 0;
            return json_error(s, err, "the JSON array is not closed at the end of the input");
        }
        char ch = s->blk[s->bpos];
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
            s->line += ch == '\n';
            s->bpos++;
            s->consumed++;
            continue;
        }
        switch (s->js) {
        case J_START:
            if (ch == '{') {
                s->js = J_SINGLE;
                return 1;
            }
            if (ch != '[')
                return json_error(s, err, "expected a JSON array of objects (or one object)");
            s->js = J_VALUE;
            s->after_comma = false;
            break;
        case J_VALUE:
            if (ch == ']' && !s->after_comma) {
                s->js = J_DONE;
                break;
            }
            if (ch == ']' || ch == ',')
                return json_error(s, err, "expected an array element");
            return 1;
        case J_SEP:
            if (ch == ',') {
                s->js = J_VALUE;
                s->after_comma = true;
            } else if (ch == ']') {
                s->js = J_DONE;
            } else {
                return json_error(s, err, "expected ',' or ']' after an array element");
            }
            break;
        case J_SINGLE:
            return 1;
        default:
            return json_error(s, err,
                              "unexpected data after the end of the JSON value (one object per "
                              "line is NDJSON: --format ndjson)");
        }
        s->bpos++;
        s->consumed++;
    }
}

/* Appends the JSON element starting at blk[bpos] to the body, tracking strings and nesting
 * to find where it ends. Returns 1 or -1 on error. */
static int json_elem(mesh_splitter_t *s, mesh_err_t *err)
{
    size_t start = s->body.len;
    s->rec_line = s->line;
    int depth = 0;
    bool in_str = false, esc = false;
    for (;;) {
        int r = fill(s, err);
        if (r < 0)
            return -1;
        if (r == 0) {
            mesh_err_set(err, MESH_PARSE,
                         "line %llu: the JSON value that starts there is not closed at the end "
                         "of the input",
                         (unsigned long long)s->rec_line);
            return -1;
        }
        size_t i = s->bpos, end = s->blen;
        bool done = false;
        for (; i < s->blen && !done; i++) {
            char ch = s->blk[i];
            if (in_str) {
                if (esc)
                    esc = false;
                else if (ch == '\\')
                    esc = true;
                else if (ch == '"')
                    in_str = false;
                s->line += ch == '\n';
                continue;
            }
            switch (ch) {
            case '"':
                in_str = true;
                break;
            case '{':
            case '[':
                depth++;
                break;
            case '}':
            case ']':
                if (depth == 0) { /* a scalar element ended by the array's ']' */
                    end = i;
                    done = true;
                } else if (--depth == 0) {
                    end = i + 1;
                    done = true;
                }
                break;
            case ',':
            case ' ':
            case '\t':
            case '\r':
            case '\n':
                if (depth == 0) { /* a scalar element ends; json_seek reads the separator */
                    end = i;
                    done = true;
                } else {
                    s->line += ch == '\n';
                }
                break;
            default:
                break;
            }
        }
        if (take(s, end, start, err) < 0)
            return -1;
        if (done) {
            s->js = s->js == J_SINGLE ? J_DONE : J_SEP;
            return 1;
        }
    }
}

static int next_json(mesh_splitter_t *s, size_t *rows, mesh_err_t *err)
{
    if (mesh_buf_addc(&s->body, '[') != MESH_OK)
        return oom(err);
    while (*rows < s->max_rows && s->body.len < s->max_bytes) {
        int r = json_seek(s, err);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        if (*rows && mesh_buf_addc(&s->body, ',') != MESH_OK)
            return oom(err);
        s->elem_line[*rows] = s->line;
        if (json_elem(s, err) < 0)
            return -1;
        ++*rows;
    }
    if (mesh_buf_addc(&s->body, ']') != MESH_OK)
        return oom(err);
    return 0;
}

static int next_lines(mesh_splitter_t *s, size_t *rows, uint64_t *first, uint64_t *last,
                      mesh_err_t *err)
{
    if (s->fmt == MESH_SPLIT_CSV && !s->have_header) {
        /* the first record that is not blank is the header */
        for (;;) {
            int r = read_record(s, err);
            if (r <= 0)
                return r;
            if (!blank(s, s->body.data, s->body.len))
                break;
            mesh_buf_reset(&s->body);
        }
        s->header_line = s->rec_line;
        s->header_lines = s->line - s->rec_line;
        if (s->header_lines == 0)
            s->header_lines = 1;
        if (mesh_buf_add(&s->header, s->body.data, s->body.len) != MESH_OK)
            return oom(err);
        s->have_header = true;
        mesh_buf_reset(&s->body);
    }
    if (s->fmt == MESH_SPLIT_CSV &&
        mesh_buf_add(&s->body, s->header.data, s->header.len) != MESH_OK)
        return oom(err);
    s->body_line = s->line;
    while (*rows < s->max_rows && s->body.len < s->max_bytes) {
        size_t start = s->body.len;
        int r = read_record(s, err);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        if (blank(s, s->body.data + start, s->body.len - start))
            continue;
        if (*rows == 0)
            *first = s->rec_line;
        *last = s->rec_line;
        ++*rows;
    }
    return 0;
}

int mesh_splitter_next(mesh_splitter_t *s, mesh_split_batch_t *b, mesh_err_t *err)
{
    memset(b, 0, sizeof *b);
    mesh_buf_reset(&s->body);
    size_t rows = 0;
    uint64_t first = 0, last = 0;
    int r = s->fmt == MESH_SPLIT_JSON ? next_json(s, &rows, err)
                                      : next_lines(s, &rows, &first, &last, err);
    if (r < 0)
        return -1;
    if (rows == 0)
        return 0;
    b->body = s->body.data;
    b->len = s->body.len;
    b->rows = rows;
    b->number = ++s->batches;
    b->first_line = s->fmt == MESH_SPLIT_JSON ? s->elem_line[0] : first;
    b->last_line = s->fmt == MESH_SPLIT_JSON ? s->elem_line[rows - 1] : last;
    return 1;
}

uint64_t mesh_splitter_line(const mesh_splitter_t *s, const mesh_split_batch_t *b, uint64_t row)
{
    if (row == 0)
        return 0;
    switch (s->fmt) {
    case MESH_SPLIT_JSON:
        return row <= b->rows ? s->elem_line[row - 1] : 0;
    case MESH_SPLIT_CSV:
        if (row <= s->header_lines)
            return s->header_line + row - 1;
        return s->body_line + (row - s->header_lines - 1);
    default:
        return s->body_line + row - 1;
    }
}
