/*
 * lineproto.c - InfluxDB line protocol parser (see lineproto.h).
 *
 * One pass over each line, no allocation per line: tokens are borrowed (pointer, length)
 * from the body; only a token holding an escape is unescaped, into one scratch buffer of
 * MESH_LP_MAX_LINE bytes allocated on first need (an unescaped token is never longer than
 * its line, and each token is handed to the batch, which copies it, before the next one
 * is unescaped). Two caches keep the per-line work flat: the last measurement text and its
 * product (so lookup runs when the measurement changes, not per line), and the column each
 * key position resolved to on the previous line (writers send keys in the same order).
 */
#include "ingest/lineproto.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define SHOW_MAX       40  /* bytes of a name or value quoted in an error */
#define MEAS_CACHE     128 /* bytes of measurement text the product cache remembers */
#define GUESS_SLOTS    64  /* key positions whose column is remembered */
#define GUESS_PRODUCTS 4   /* products whose key positions are remembered */

typedef struct lp {
    mesh_batch_t *b;
    const char *domain;
    mesh_product_lookup_fn lookup;
    void *arg;
    char *scratch; /* MESH_LP_MAX_LINE bytes, NULL until an escape is seen */
    bool scratch_failed;
    /* the current line */
    const char *ls;
    size_t len;
    uint32_t line;
    const mesh_product_t *p;
    size_t nkeys; /* tags + fields so far */
    /* measurement -> product cache */
    char meas[MEAS_CACHE];
    size_t meas_len; /* 0: empty cache */
    const mesh_product_t *meas_p;
    /* key position -> column, for a few products (lines of several measurements are often
     * interleaved, as TSBS writes them) */
    const mesh_product_t *guess_p[GUESS_PRODUCTS];
    int guess[GUESS_PRODUCTS][GUESS_SLOTS];
    size_t guess_len[GUESS_PRODUCTS][GUESS_SLOTS]; /* strlen of the guessed column's name */
    unsigned guess_next;
    int *cur_guess;   /* the line's product's row of guess (pick_guess, per line) */
    size_t *cur_glen; /* and of guess_len */
} lp_t;

/* A token of the line: borrowed bytes, or unescaped into the scratch buffer. */
typedef struct tok {
    const char *s;
    size_t n;
    size_t at; /* offset in the line, for error columns */
} tok_t;

/* Quotes at most SHOW_MAX bytes of (s, n), cut at a UTF-8 boundary, control bytes as '?'. */
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

/* Records a syntax error at byte offset `at` of the line. */
__attribute__((format(printf, 3, 4))) static void syntax(lp_t *lp, size_t at, const char *fmt, ...)
{
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mesh_batch_row_error(lp->b, -1, "line %u, col %zu: %s", lp->line, at + 1, msg);
}

static bool escapable(char c, bool eq)
{
    return c == ',' || c == ' ' || (eq && c == '=');
}

/*
 * Scans a measurement (eq false: stops at ',' or ' ') or a key or tag value (eq true: also
 * stops at '=', and "\=" is an escape) from *i. Unescapes into the scratch buffer when the
 * token holds an escape. Returns false only when the scratch buffer cannot be allocated.
 */
/* Bytes that scan_tok must look at: 1 ends a token, 2 ends a key, 4 may start an escape.
 * Every other byte is part of the token: one table load each. */
static const uint8_t tok_class[256] = {[','] = 1, [' '] = 1, ['='] = 2, ['\\'] = 4};

static bool scan_tok(lp_t *lp, size_t *i, bool eq, bool stop_eq, tok_t *t)
{
    const char *s = lp->ls;
    size_t n = lp->len, j = *i;
    bool esc = false;
    uint8_t stop = stop_eq ? 3 : 1;
    t->at = j;
    while (j < n) {
        uint8_t k = tok_class[(uint8_t)s[j]];
        if (k == 0) {
            j++;
            continue;
        }
        if (k & stop)
            break;
        if (k == 4 && j + 1 < n && escapable(s[j + 1], eq)) {
            esc = true;
            j += 2;
            continue;
        }
        j++;
    }
    *i = j;
    /* a token longer than a line may be (only the measurement of an over-long line, which
     * is refused anyway) is kept as written */
    if (!esc || j - t->at > MESH_LP_MAX_LINE) {
        t->s = s + t->at;
        t->n = j - t->at;
        return true;
    }
    if (lp->scratch == NULL) {
        lp->scratch = malloc(MESH_LP_MAX_LINE);
        if (lp->scratch == NULL)
            return false;
    }
    size_t o = 0;
    for (size_t k = t->at; k < j; k++) {
        if (s[k] == '\\' && k + 1 < j && escapable(s[k + 1], eq))
            k++;
        lp->scratch[o++] = s[k];
    }
    t->s = lp->scratch;
    t->n = o;
    return true;
}

/* (s, n) equals the C string name; reads name no further than its NUL. */
static bool name_eq(const char *name, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (name[i] != s[i] || name[i] == '\0')
            return false;
    return name[n] == '\0';
}

/* Points cur_guess and cur_glen at the key positions remembered for the line's product,
 * taking the oldest of the GUESS_PRODUCTS rows when it has none. */
static void pick_guess(lp_t *lp)
{
    const mesh_product_t *p = lp->p;
    for (size_t g = 0; g < GUESS_PRODUCTS; g++) {
        if (lp->guess_p[g] == p) {
            lp->cur_guess = lp->guess[g];
            lp->cur_glen = lp->guess_len[g];
            return;
        }
    }
    unsigned g = lp->guess_next++ % GUESS_PRODUCTS;
    lp->guess_p[g] = p;
    lp->cur_guess = lp->guess[g];
    lp->cur_glen = lp->guess_len[g];
    for (size_t i = 0; i < GUESS_SLOTS; i++)
        lp->cur_guess[i] = -1;
}

/* (s, n) holds no byte that ends a token or starts an escape: scan_tok returns such a name
 * exactly as written. Column names always are ([A-Za-z0-9_], mesh_name_column_ok); the check
 * keeps known_key right whatever a product's names hold. */
static bool plain(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (tok_class[(uint8_t)s[i]] != 0)
            return false;
    return true;
}

/* The column named (s, n) of the line's product; key position k picks a first guess (only
 * plain names are guessed). */
static int find_col(lp_t *lp, const char *s, size_t n)
{
    const mesh_product_t *p = lp->p;
    size_t k = lp->nkeys - 1;
    int *guess = lp->cur_guess;
    size_t *glen = lp->cur_glen;
    /* the guess: lengths first, then memcmp (the name has glen[k] bytes, so reading n of
     * them stays inside it) */
    if (k < GUESS_SLOTS && guess[k] >= 0 && glen[k] == n &&
        memcmp(p->cols[guess[k]].name, s, n) == 0)
        return guess[k];
    for (size_t i = 0; i < p->ncols; i++) {
        if (name_eq(p->cols[i].name, s, n)) {
            if (k < GUESS_SLOTS && plain(s, n)) {
                guess[k] = (int)i;
                glen[k] = n;
            }
            return (int)i;
        }
    }
    return -1;
}

/*
 * The key at *i when the line repeats the previous line's key at this position: the bytes
 * there are the guessed column's name followed by '='. Such a key needs neither a scan nor
 * a lookup: a guessed name is plain, so scan_tok would have returned exactly these bytes.
 * On a match sets *key and *col and moves *i onto the '='; otherwise changes nothing.
 */
static bool known_key(lp_t *lp, size_t *i, tok_t *key, int *col)
{
    size_t k = lp->nkeys, j = *i;
    if (k >= GUESS_SLOTS || lp->cur_guess[k] < 0)
        return false;
    size_t n = lp->cur_glen[k];
    if (n >= lp->len - j || lp->ls[j + n] != '=' ||
        memcmp(lp->p->cols[lp->cur_guess[k]].name, lp->ls + j, n) != 0)
        return false;
    key->s = lp->ls + j;
    key->n = n;
    key->at = j;
    *col = lp->cur_guess[k];
    *i = j + n;
    return true;
}

static const mesh_product_t *find_product(lp_t *lp, const char *raw, size_t raw_n,
                                          const tok_t *name)
{
    if (lp->meas_len && raw_n == lp->meas_len && memcmp(raw, lp->meas, raw_n) == 0)
        return lp->meas_p;
    const mesh_product_t *p = NULL;
    if (name->n <= MESH_NAME_MAX && lp->lookup) {
        char z[MESH_NAME_MAX + 1];
        memcpy(z, name->s, name->n);
        z[name->n] = '\0';
        /* a NUL inside the name would look up a different, shorter name */
        if (memchr(name->s, '\0', name->n) == NULL)
            p = lp->lookup(lp->arg, lp->domain, z);
    }
    if (raw_n <= MEAS_CACHE) {
        memcpy(lp->meas, raw, raw_n);
        lp->meas_len = raw_n;
        lp->meas_p = p;
    }
    return p;
}

static bool is_bool_word(const char *s, size_t n, bool *v)
{
    static const char *const yes[] = {"t", "T", "true", "True", "TRUE"};
    static const char *const no[] = {"f", "F", "false", "False", "FALSE"};
    for (size_t i = 0; i < MESH_ARRAY_LEN(yes); i++) {
        if (name_eq(yes[i], s, n)) {
            *v = true;
            return true;
        }
        if (name_eq(no[i], s, n)) {
            *v = false;
            return true;
        }
    }
    return false;
}

/* Sets column col (-1: unknown, already reported) from an unquoted field value. Returns false
 * after a syntax error. */
static bool field_value(lp_t *lp, int col, const tok_t *key, const char *v, size_t vn, size_t at)
{
    mesh_batch_t *b = lp->b;
    char kshow[SHOW_MAX + 4], vshow[SHOW_MAX + 4];
    char last = v[vn - 1];
    if (last == 'i' && vn > 1) {
        int64_t iv;
        if (mesh_parse_i64(v, vn - 1, &iv) == MESH_OK) {
            if (col >= 0)
                mesh_batch_set_int(b, col, iv);
            return true;
        }
    } else if (last == 'u' && vn > 1) {
        uint64_t uv;
        if (mesh_parse_u64(v, vn - 1, &uv) == MESH_OK) {
            if (col < 0)
                return true;
            if (uv > (uint64_t)INT64_MAX) {
                show(vshow, v, vn);
                mesh_batch_row_error(b, col, "value %s is above the largest integer %lld", vshow,
                                     (long long)INT64_MAX);
            } else {
                mesh_batch_set_int(b, col, (int64_t)uv);
            }
            return true;
        }
    } else {
        bool bv;
        double dv;
        /* a number starts with a digit, a sign or a point, a boolean word never does: most
         * values are numbers, so they skip the ten word comparisons */
        char first = v[0];
        bool numeric =
            (first >= '0' && first <= '9') || first == '-' || first == '+' || first == '.';
        if (!numeric && is_bool_word(v, vn, &bv)) {
            if (col >= 0)
                mesh_batch_set_bool(b, col, bv);
            return true;
        }
        if (mesh_parse_f64(v, vn, &dv) == MESH_OK) {
            if (col >= 0)
                mesh_batch_set_real(b, col, dv);
            return true;
        }
    }
    show(kshow, key->s, key->n);
    show(vshow, v, vn);
    syntax(lp, at, "invalid value '%s' for field '%s'", vshow, kshow);
    return false;
}

/* Scans a quoted string field value starting at *i (on the opening quote). */
static bool string_value(lp_t *lp, size_t *i, int col, const tok_t *key)
{
    const char *s = lp->ls;
    size_t n = lp->len, start = *i + 1, j = start;
    bool esc = false;
    while (j < n) {
        if (s[j] == '\\' && j + 1 < n && (s[j + 1] == '"' || s[j + 1] == '\\')) {
            esc = true;
            j += 2;
            continue;
        }
        if (s[j] == '"')
            break;
        j++;
    }
    if (j >= n) {
        char kshow[SHOW_MAX + 4];
        show(kshow, key->s, key->n);
        syntax(lp, *i, "unterminated string value for field '%s'", kshow);
        return false;
    }
    *i = j + 1;
    if (col < 0)
        return true;
    if (!esc) {
        mesh_batch_set_text(lp->b, col, s + start, j - start);
        return true;
    }
    if (lp->scratch == NULL && (lp->scratch = malloc(MESH_LP_MAX_LINE)) == NULL) {
        lp->scratch_failed = true;
        return false;
    }
    size_t o = 0;
    for (size_t k = start; k < j; k++) {
        if (s[k] == '\\' && (s[k + 1] == '"' || s[k + 1] == '\\'))
            k++;
        lp->scratch[o++] = s[k];
    }
    mesh_batch_set_text(lp->b, col, lp->scratch, o);
    return true;
}

static bool count_key(lp_t *lp)
{
    if (++lp->nkeys <= MESH_LP_MAX_FIELDS)
        return true;
    mesh_batch_row_error(lp->b, -1, "line %u has more than %d tags and fields", lp->line,
                         MESH_LP_MAX_FIELDS);
    return false;
}

static int key_col(lp_t *lp, const tok_t *key)
{
    int col = find_col(lp, key->s, key->n);
    if (col < 0) {
        char kshow[SHOW_MAX + 4];
        show(kshow, key->s, key->n);
        mesh_batch_row_error(lp->b, -1, "unknown column '%s'", kshow);
    }
    return col;
}

/* Parses the tags, fields and timestamp after the measurement (i is on the ',' or ' '
 * that ends it). Returns after the first syntax error. */
static void parse_rest(lp_t *lp, size_t i)
{
    const char *s = lp->ls;
    size_t n = lp->len;
    char kshow[SHOW_MAX + 4];
    tok_t key, val;
    while (i < n && s[i] == ',') {
        i++;
        int col = -1;
        bool known = known_key(lp, &i, &key, &col);
        if (!known && !scan_tok(lp, &i, true, true, &key))
            goto nomem;
        if (key.n == 0) {
            syntax(lp, key.at, "empty tag key");
            return;
        }
        if (i >= n || s[i] != '=') {
            show(kshow, key.s, key.n);
            syntax(lp, i, "expected '=' after tag key '%s'", kshow);
            return;
        }
        if (!count_key(lp))
            return;
        if (!known)
            col = key_col(lp, &key); /* before the value reuses the scratch buffer */
        i++;
        if (!scan_tok(lp, &i, true, false, &val))
            goto nomem;
        if (val.n == 0) {
            show(kshow, key.s, key.n);
            syntax(lp, val.at, "empty value for tag '%s'", kshow);
            return;
        }
        if (col >= 0)
            mesh_batch_set_text(lp->b, col, val.s, val.n);
    }
    if (i >= n || s[i] != ' ') {
        syntax(lp, i, "expected a space and fields after the measurement and tags");
        return;
    }
    while (i < n && s[i] == ' ')
        i++;
    if (i >= n) {
        syntax(lp, i, "expected fields after the measurement and tags");
        return;
    }
    for (;;) {
        int col = -1;
        bool known = known_key(lp, &i, &key, &col);
        if (!known && !scan_tok(lp, &i, true, true, &key))
            goto nomem;
        if (key.n == 0) {
            syntax(lp, key.at, "empty field key");
            return;
        }
        if (i >= n || s[i] != '=') {
            show(kshow, key.s, key.n);
            syntax(lp, i, "expected '=' after field key '%s'", kshow);
            return;
        }
        if (!count_key(lp))
            return;
        if (!known)
            col = key_col(lp, &key);
        i++;
        if (i < n && s[i] == '"') {
            if (!string_value(lp, &i, col, &key)) {
                if (lp->scratch_failed)
                    goto nomem;
                return;
            }
        } else {
            size_t at = i;
            while (i < n && !(tok_class[(uint8_t)s[i]] & 1))
                i++;
            if (i == at) {
                show(kshow, key.s, key.n);
                syntax(lp, at, "missing value for field '%s'", kshow);
                return;
            }
            if (!field_value(lp, col, &key, s + at, i - at, at))
                return;
        }
        if (i < n && s[i] == ',') {
            i++;
            continue;
        }
        if (i < n && s[i] != ' ') {
            show(kshow, key.s, key.n);
            syntax(lp, i, "expected ',' or ' ' after the value of field '%s'", kshow);
            return;
        }
        break;
    }
    while (i < n && s[i] == ' ')
        i++;
    if (i >= n)
        return;
    size_t at = i;
    while (i < n && s[i] != ' ')
        i++;
    int64_t ts;
    if (mesh_parse_i64(s + at, i - at, &ts) != MESH_OK) {
        char tshow[SHOW_MAX + 4];
        show(tshow, s + at, i - at);
        syntax(lp, at, "invalid timestamp '%s'", tshow);
        return;
    }
    while (i < n && s[i] == ' ')
        i++;
    if (i < n) {
        syntax(lp, i, "unexpected text after the timestamp");
        return;
    }
    if (lp->p->time_col < 0)
        mesh_batch_row_error(lp->b, -1, "a timestamp was given but product '%s' has no time column",
                             lp->p->name);
    else
        mesh_batch_set_int(lp->b, lp->p->time_col, ts);
    return;
nomem:
    mesh_batch_fail(lp->b, MESH_NOMEM, lp->line, "out of memory parsing line protocol");
}

static void parse_line(lp_t *lp)
{
    const char *s = lp->ls;
    size_t n = lp->len, i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i == n || s[i] == '#')
        return;
    tok_t name;
    size_t mstart = i;
    if (!scan_tok(lp, &i, false, false, &name)) {
        mesh_batch_fail(lp->b, MESH_NOMEM, lp->line, "out of memory parsing line protocol");
        return;
    }
    char mshow[SHOW_MAX + 4];
    if (name.n == 0) {
        mesh_batch_source_error(lp->b, lp->line, NULL, "line %u, col %zu: empty measurement",
                                lp->line, mstart + 1);
        return;
    }
    const mesh_product_t *p = find_product(lp, s + mstart, i - mstart, &name);
    if (p == NULL) {
        show(mshow, name.s, name.n);
        mesh_batch_source_error(lp->b, lp->line, mshow, "unknown product '%s' in domain '%s'",
                                mshow, lp->domain);
        return;
    }
    if (mesh_batch_row_begin(lp->b, p, lp->line) != MESH_OK)
        return;
    lp->p = p;
    lp->nkeys = 0;
    pick_guess(lp);
    if (n > MESH_LP_MAX_LINE)
        mesh_batch_row_error(lp->b, -1, "line %u is %zu bytes, longer than the limit of %d",
                             lp->line, n, MESH_LP_MAX_LINE);
    else
        parse_rest(lp, i);
    mesh_batch_row_end(lp->b, s, n);
}

mesh_status_t mesh_lp_parse(const char *body, size_t n, const char *domain,
                            mesh_product_lookup_fn lookup, void *arg, mesh_batch_t *b)
{
    lp_t lp = {.b = b, .domain = domain ? domain : b->domain, .lookup = lookup, .arg = arg};
    size_t lines = 1;
    for (const char *q = body, *end = body + n; (q = memchr(q, '\n', (size_t)(end - q))) != NULL;
         q++)
        lines++;
    mesh_batch_expect_rows(b, lines);
    size_t pos = 0;
    while (pos < n) {
        const char *ls = body + pos;
        const char *nl = memchr(ls, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - ls) : n - pos;
        pos += len + (nl ? 1 : 0);
        if (len && ls[len - 1] == '\r')
            len--;
        lp.line++;
        lp.ls = ls;
        lp.len = len;
        parse_line(&lp);
        if (b->failed && b->fail_code != MESH_VALIDATION)
            break;
    }
    free(lp.scratch);
    return b->failed ? b->fail_code : MESH_OK;
}
