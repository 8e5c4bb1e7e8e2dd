/*
 * sqlshape.c - the shape of a derived product's SQL: its top-level SELECT list, split into
 * items, and for each item whether it is one hiding aggregate or one masking call
 * (docs/derived.md "Lineage of a SQL definition"). Outside input: bounded
 * (MESH_DERIVE_MAX_SQL bytes, MESH_SQL_MAX_ITEMS items), fuzzed (fuzz/fuzz_sql_shape.c).
 *
 * This is not a SQL parser and never decides what a query may do (the sandbox does): it only
 * finds where each result expression starts and ends, so that query/lineage.c can ask SQLite
 * which columns each one reads. Anything it does not understand is MESH_UNSUPPORTED, and
 * lineage then falls back to what SQLite alone tells (column origins, or every column read).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/sqltok.h"
#include "derive/derive.h"

typedef enum { T_WORD, T_NUM, T_STR, T_QID, T_LP, T_RP, T_COMMA, T_STAR, T_DOT, T_OTHER } tkind_t;

typedef struct tok {
    tkind_t k;
    size_t off, len;
    int depth; /* parenthesis depth before the token */
} tok_t;

#define MAX_TOKENS 8192

typedef struct lexer {
    const char *s;
    size_t n;
    tok_t *t;
    size_t nt;
} lexer_t;

/* Splits s into tokens (comments and spaces dropped). MESH_UNSUPPORTED for an unterminated
 * string, quoted name or comment, unbalanced parentheses or too many tokens. */
static mesh_status_t lex(lexer_t *x)
{
    static const tkind_t kinds[] = {[MESH_SQLT_WORD] = T_WORD,
                                    [MESH_SQLT_NUM] = T_NUM,
                                    [MESH_SQLT_STR] = T_STR,
                                    [MESH_SQLT_QID] = T_QID};
    const char *s = x->s;
    size_t n = x->n, i = 0;
    int depth = 0;
    for (;;) {
        if (mesh_sql_skip(s, n, &i) != 0)
            return MESH_UNSUPPORTED;
        if (i >= n)
            break;
        if (x->nt >= MAX_TOKENS)
            return MESH_UNSUPPORTED;
        tok_t *t = &x->t[x->nt++];
        t->off = i;
        t->depth = depth;
        mesh_sqlt_t k = mesh_sql_token(s, n, i, &t->len);
        if (k == MESH_SQLT_BAD)
            return MESH_UNSUPPORTED;
        i += t->len;
        if (k != MESH_SQLT_OTHER) {
            t->k = kinds[k];
            continue;
        }
        switch (s[t->off]) {
        case '(':
            t->k = T_LP;
            depth++;
            break;
        case ')':
            t->k = T_RP;
            if (--depth < 0)
                return MESH_UNSUPPORTED;
            t->depth = depth;
            break;
        case ',':
            t->k = T_COMMA;
            break;
        case '*':
            t->k = T_STAR;
            break;
        case '.':
            t->k = T_DOT;
            break;
        default:
            t->k = T_OTHER;
        }
    }
    return depth == 0 ? MESH_OK : MESH_UNSUPPORTED;
}

static bool word_is(const lexer_t *x, size_t i, const char *w)
{
    return i < x->nt && x->t[i].k == T_WORD && x->t[i].len == strlen(w) &&
           strncasecmp(x->s + x->t[i].off, w, x->t[i].len) == 0;
}

static bool word_in(const lexer_t *x, size_t i, const char *const *ws)
{
    for (; *ws; ws++)
        if (word_is(x, i, *ws))
            return true;
    return false;
}

/* The index of the token closing the parenthesis opened at lp (a T_LP). */
static size_t close_of(const lexer_t *x, size_t lp)
{
    for (size_t k = lp + 1; k < x->nt; k++)
        if (x->t[k].k == T_RP && x->t[k].depth == x->t[lp].depth)
            return k;
    return x->nt;
}

/* The aggregates that show no single input value (docs/derived.md). min, max and
 * group_concat pass values through: they are not here. */
static const char *const hiding_aggs[] = {"count", "sum", "total", "avg", NULL};
/* meshd's masking functions (query/sqlfuncs.c). */
static const char *const mask_funcs[] = {"mask", "mask_hash", NULL};

/* Whether tokens [a, b] are one call F(...) with F in fs, or round(E, N) / cast(E AS T) /
 * coalesce(E, N) (N a number) around such a call E. */
static bool one_call(const lexer_t *x, size_t a, size_t b, const char *const *fs, int nest)
{
    if (a + 2 > b || b >= x->nt || nest > 8 || x->t[a + 1].k != T_LP)
        return false;
    size_t rp = close_of(x, a + 1);
    if (rp != b)
        return false;
    if (word_in(x, a, fs))
        return true;
    if (word_is(x, a, "round") || word_is(x, a, "coalesce") || word_is(x, a, "ifnull")) {
        /* round(E) | round(E, N) */
        size_t e = b - 1;
        if (e >= a + 4 && x->t[e].k == T_NUM && x->t[e - 1].k == T_COMMA &&
            x->t[e - 1].depth == x->t[a + 1].depth + 1)
            return one_call(x, a + 2, e - 2, fs, nest + 1);
        return word_is(x, a, "round") && one_call(x, a + 2, b - 1, fs, nest + 1);
    }
    if (word_is(x, a, "cast") && b >= a + 5 && x->t[b - 1].k == T_WORD && word_is(x, b - 2, "as"))
        return one_call(x, a + 2, b - 3, fs, nest + 1);
    return false;
}

static mesh_status_t shape(lexer_t *xp, mesh_sql_shape_t *out);

/* Whether the text of tokens [a, b] equals s ignoring case and spaces between tokens. */
static bool tokens_equal(const lexer_t *x, size_t a, size_t b, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t t = a; t <= b; t++) {
        while (k < n && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n' || s[k] == '\r'))
            k++;
        if (k + x->t[t].len > n || strncasecmp(s + k, x->s + x->t[t].off, x->t[t].len) != 0)
            return false;
        k += x->t[t].len;
    }
    while (k < n && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n' || s[k] == '\r'))
        k++;
    return k == n;
}

/* The time-bucket shape (docs/derived.md "Incremental refresh"): one table after FROM (token
 * from), GROUP BY naming an item that is time_bucket('<width>', <column>) (by its alias, its
 * position or its text), no window, DISTINCT, LIMIT, subquery, join or time-dependent function.
 * Sets out->bucket_item, bucket_width, where_kw, group_kw. */
static void bucket_shape(const lexer_t *x, size_t from, mesh_sql_shape_t *out)
{
    static const char *const never[] = {
        "window", "over",       "limit",   "distinct", "join",    "select", "now",    "ago",
        "random", "randomblob", "changes", "values",   "natural", "using",  "offset", NULL};
    if (!word_is(x, from, "from"))
        return;
    size_t where = SIZE_MAX, group = SIZE_MAX, gend = x->nt;
    for (size_t k = 1; k < x->nt; k++) {
        if (word_in(x, k, never))
            return;
        if (k > from && x->t[k].depth == 0 && x->t[k].k == T_COMMA && group == SIZE_MAX)
            return; /* FROM a, b */
        if (x->t[k].depth == 0 && word_is(x, k, "where") && where == SIZE_MAX && k > from)
            where = k;
        if (x->t[k].depth == 0 && word_is(x, k, "group") && word_is(x, k + 1, "by"))
            group = k;
        if (group != SIZE_MAX && k > group && x->t[k].depth == 0 &&
            (word_is(x, k, "having") || word_is(x, k, "order")) && gend == x->nt)
            gend = k;
    }
    if (group == SIZE_MAX)
        return;
    /* the GROUP BY items */
    for (size_t a = group + 2; a < gend;) {
        size_t b = a;
        while (b < gend && !(x->t[b].depth == 0 && x->t[b].k == T_COMMA))
            b++;
        if (b == a)
            return;
        for (size_t i = 0; i < out->nitems; i++) {
            const mesh_sql_item_t *it = &out->items[i];
            if (strcmp(it->head, "time_bucket") != 0)
                continue;
            bool named = false;
            char pos[16];
            snprintf(pos, sizeof pos, "%zu", i + 1);
            if (b == a + 1 && x->t[a].k == T_NUM)
                named = x->t[a].len == strlen(pos) &&
                        strncmp(x->s + x->t[a].off, pos, x->t[a].len) == 0;
            else if (b == a + 1 && it->alias_len)
                named = tokens_equal(x, a, a, x->s + it->alias_off, it->alias_len);
            if (!named)
                named = tokens_equal(x, a, b - 1, x->s + it->off, it->expr_len);
            if (!named)
                continue;
            /* time_bucket ( 'width' , column ) */
            const char *e = x->s + it->off;
            const char *q1 = memchr(e, '\'', it->expr_len);
            const char *q2 = q1 ? memchr(q1 + 1, '\'', it->expr_len - (size_t)(q1 + 1 - e)) : NULL;
            if (q1 == NULL || q2 == NULL || (size_t)(q2 - q1 - 1) >= sizeof out->bucket_width)
                continue;
            memcpy(out->bucket_width, q1 + 1, (size_t)(q2 - q1 - 1));
            out->bucket_width[q2 - q1 - 1] = '\0';
            out->bucket_item = (int)i;
            out->where_kw = where == SIZE_MAX ? SIZE_MAX : x->t[where].off;
            out->group_kw = x->t[group].off;
        }
        a = b + 1;
    }
}

/* Whether the query maps each input row to at most one output row on its own: one table after
 * FROM (at token from), no aggregate, grouping, window, DISTINCT, LIMIT, subquery, join or
 * function whose value changes with time (docs/derived.md "Incremental refresh"). */
static bool row_mapping(const lexer_t *x, size_t from)
{
    static const char *const never[] = {"count",
                                        "sum",
                                        "total",
                                        "avg",
                                        "min",
                                        "max",
                                        "group_concat",
                                        "string_agg",
                                        "json_group_array",
                                        "json_group_object",
                                        "group",
                                        "having",
                                        "window",
                                        "over",
                                        "limit",
                                        "distinct",
                                        "join",
                                        "select",
                                        "now",
                                        "ago",
                                        "random",
                                        "randomblob",
                                        "changes",
                                        "values",
                                        "natural",
                                        "using",
                                        "offset",
                                        NULL};
    if (!word_is(x, from, "from"))
        return false;
    for (size_t k = 1; k < x->nt; k++) {
        if (word_in(x, k, never))
            return false;
        if (k > from && x->t[k].depth == 0 && x->t[k].k == T_COMMA)
            return false; /* FROM a, b */
    }
    return true;
}

mesh_status_t mesh_sql_select_shape(const char *sql, size_t n, mesh_sql_shape_t *out)
{
    memset(out, 0, sizeof *out);
    if (n > MESH_DERIVE_MAX_SQL)
        return MESH_TOO_LARGE;
    lexer_t x = {.s = sql, .n = n, .t = malloc(MAX_TOKENS * sizeof(tok_t))};
    if (x.t == NULL)
        return MESH_NOMEM;
    mesh_status_t st = shape(&x, out);
    free(x.t);
    return st;
}

static mesh_status_t shape(lexer_t *xp, mesh_sql_shape_t *out)
{
    lexer_t x = *xp;
    const char *sql = x.s;
    size_t n = x.n;
    mesh_status_t st = lex(&x);
    if (st != MESH_OK)
        return st;
    /* a trailing ';' */
    if (x.nt && x.t[x.nt - 1].k == T_OTHER && sql[x.t[x.nt - 1].off] == ';')
        x.nt--;
    if (!word_is(&x, 0, "select"))
        return MESH_UNSUPPORTED; /* WITH, VALUES, ... */
    static const char *const compound[] = {"union", "intersect", "except", NULL};
    static const char *const list_end[] = {"from",   "where", "group", "having",
                                           "window", "order", "limit", NULL};
    for (size_t i = 0; i < x.nt; i++)
        if (x.t[i].depth == 0 && (word_in(&x, i, compound) || (i > 0 && word_is(&x, i, "select"))))
            return MESH_UNSUPPORTED;
    size_t i = 1;
    if (word_is(&x, i, "distinct") || word_is(&x, i, "all")) {
        out->distinct = word_is(&x, i, "distinct");
        i++;
    }
    size_t start = i;
    for (;; i++) {
        bool end = i >= x.nt || (x.t[i].depth == 0 && word_in(&x, i, list_end));
        if (end || (x.t[i].depth == 0 && x.t[i].k == T_COMMA)) {
            if (i == start)
                return MESH_UNSUPPORTED;
            if (out->nitems >= MESH_SQL_MAX_ITEMS)
                return MESH_UNSUPPORTED;
            mesh_sql_item_t *it = &out->items[out->nitems++];
            it->off = x.t[start].off;
            it->len = x.t[i - 1].off + x.t[i - 1].len - it->off;
            /* the expression without its alias: "E AS a" or "E a" */
            size_t last = i - 1;
            if (last > start && (x.t[last].k == T_WORD || x.t[last].k == T_QID) &&
                word_is(&x, last - 1, "as"))
                last -= 2;
            else if (last > start && (x.t[last].k == T_WORD || x.t[last].k == T_QID) &&
                     (x.t[last - 1].k == T_RP || x.t[last - 1].k == T_WORD ||
                      x.t[last - 1].k == T_QID || x.t[last - 1].k == T_NUM ||
                      x.t[last - 1].k == T_STR) &&
                     !word_is(&x, last, "end") && !word_is(&x, last - 1, "distinct"))
                last -= 1;
            it->expr_len = x.t[last].off + x.t[last].len - it->off;
            if (last + 1 <= i - 1) {
                it->alias_off = x.t[i - 1].off;
                it->alias_len = x.t[i - 1].len;
            }
            for (size_t k = start; k <= last; k++)
                if (x.t[k].k == T_STAR && (k == start || x.t[k - 1].k == T_DOT))
                    it->star = true;
            it->hides = one_call(&x, start, last, hiding_aggs, 0);
            it->masks = one_call(&x, start, last, mask_funcs, 0);
            if (x.t[start].k == T_WORD) {
                size_t l =
                    x.t[start].len < sizeof it->head - 1 ? x.t[start].len : sizeof it->head - 1;
                for (size_t k = 0; k < l; k++)
                    it->head[k] = (char)tolower((unsigned char)sql[x.t[start].off + k]);
                it->head[l] = '\0';
                if (start + 1 > last || x.t[start + 1].k != T_LP)
                    it->head[0] = '\0'; /* a name, not a call */
            }
            start = i + 1;
            if (end) {
                out->list_end = i < x.nt ? x.t[i].off : n;
                out->row_mapping = row_mapping(&x, i);
                out->bucket_item = -1;
                bucket_shape(&x, i, out);
                for (size_t k = i; k < x.nt; k++)
                    if (x.t[k].depth > 0 && word_is(&x, k, "select"))
                        out->subquery_from = true;
                break;
            }
        }
    }
    return MESH_OK;
}
