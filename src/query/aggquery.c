/*
 * aggquery.c - the query shape allowed on an aggregates-only product (docs/governance.md).
 *
 * A principal outside the domain of a product whose contract says `egress: aggregates-only`
 * may run only queries of this form over it (anything else is refused, deny by default):
 *
 *   SELECT item, ... FROM domain.product [[AS] alias] [WHERE cond] [GROUP BY expr, ...]
 *          [ORDER BY ...] [LIMIT ...] [;]
 *
 * where each item is an aggregate count|sum|avg|min|max|total over one column, * or DISTINCT
 * column, or an expression written exactly as one of the GROUP BY expressions, each with an
 * optional AS alias. Refused anywhere: a second SELECT (subqueries), WITH, UNION, INTERSECT,
 * EXCEPT, JOIN, HAVING, OVER, WINDOW, FILTER, VALUES, parameters; in the WHERE, the privacy
 * unit column (a condition on it isolates people); min or max of the unit.
 * The query run is the same text with `, count(DISTINCT "unit")` added as the last result
 * column, which the session uses to suppress every group of fewer than k units.
 *
 * The tokenizer is bounded (MESH_AGGQ_MAX_TOKENS) and reads strings, quoted names and
 * comments as SQLite does; it is fuzzed (fuzz/fuzz_aggquery.c).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/sqltok.h"
#include "query/internal.h"

typedef enum { T_IDENT, T_QIDENT, T_STR, T_NUM, T_PUNCT } ttype_t;

typedef struct tok {
    ttype_t type;
    size_t off, len; /* in the text (for T_QIDENT: the quotes included) */
} tok_t;

typedef struct lexer {
    const char *s;
    size_t n;
    tok_t *t;
    size_t nt;
} lexer_t;

static mesh_status_t lex(lexer_t *lx, mesh_err_t *err)
{
    static const ttype_t types[] = {[MESH_SQLT_WORD] = T_IDENT,
                                    [MESH_SQLT_NUM] = T_NUM,
                                    [MESH_SQLT_STR] = T_STR,
                                    [MESH_SQLT_QID] = T_QIDENT};
    const char *s = lx->s;
    size_t n = lx->n, i = 0;
    if (memchr(s, '\0', n) != NULL) /* SQLite would stop reading there */
        return mesh_err_set(err, MESH_FORBIDDEN, "a NUL byte in the query");
    for (;;) {
        if (mesh_sql_skip(s, n, &i) != 0)
            return mesh_err_set(err, MESH_FORBIDDEN, "an unterminated comment");
        if (i >= n)
            break;
        if (lx->nt == MESH_AGGQ_MAX_TOKENS)
            return mesh_err_set(err, MESH_FORBIDDEN, "an aggregate query has at most %d tokens",
                                MESH_AGGQ_MAX_TOKENS);
        tok_t *t = &lx->t[lx->nt++];
        t->off = i;
        mesh_sqlt_t k = mesh_sql_token(s, n, i, &t->len);
        if (k == MESH_SQLT_BAD)
            return mesh_err_set(err, MESH_FORBIDDEN, "an unterminated string or name");
        if (k != MESH_SQLT_OTHER) {
            t->type = types[k];
        } else if (s[i] != '\0' && strchr("?:@$#", s[i]) != NULL) {
            return mesh_err_set(err, MESH_FORBIDDEN, "parameters are not allowed here");
        } else {
            /* two-character operators are one token so expressions compare alike */
            static const char *const ops[] = {"<=", ">=", "<>", "!=", "==", "||", "<<", ">>"};
            t->type = T_PUNCT;
            for (size_t o = 0; o < sizeof ops / sizeof *ops; o++)
                if (i + 1 < n && s[i] == ops[o][0] && s[i + 1] == ops[o][1])
                    t->len = 2;
        }
        i += t->len;
    }
    return MESH_OK;
}

static bool is_kw(const lexer_t *lx, size_t i, const char *kw)
{
    if (i >= lx->nt || lx->t[i].type != T_IDENT)
        return false;
    size_t l = strlen(kw);
    return lx->t[i].len == l && strncasecmp(lx->s + lx->t[i].off, kw, l) == 0;
}

static bool is_p(const lexer_t *lx, size_t i, char c)
{
    return i < lx->nt && lx->t[i].type == T_PUNCT && lx->t[i].len == 1 && lx->s[lx->t[i].off] == c;
}

/* Whether token i names column `col` (bare or quoted, case-insensitive). */
static bool names(const lexer_t *lx, size_t i, const char *col)
{
    const tok_t *t = &lx->t[i];
    size_t l = strlen(col);
    if (t->type == T_IDENT)
        return t->len == l && strncasecmp(lx->s + t->off, col, l) == 0;
    if (t->type == T_QIDENT && t->len == l + 2)
        return strncasecmp(lx->s + t->off + 1, col, l) == 0;
    return false;
}

static bool same_tokens(const lexer_t *lx, size_t a, size_t an, size_t b, size_t bn)
{
    if (an != bn)
        return false;
    for (size_t k = 0; k < an; k++) {
        const tok_t *x = &lx->t[a + k], *y = &lx->t[b + k];
        if (x->type != y->type || x->len != y->len)
            return false;
        bool ci = x->type == T_IDENT;
        if (ci ? strncasecmp(lx->s + x->off, lx->s + y->off, x->len) != 0
               : memcmp(lx->s + x->off, lx->s + y->off, x->len) != 0)
            return false;
    }
    return true;
}

static const char *const forbidden[] = {
    "WITH",   "UNION",  "INTERSECT", "EXCEPT",  "JOIN",   "HAVING", "OVER",      "WINDOW",
    "FILTER", "VALUES", "RECURSIVE", "NATURAL", "ATTACH", "PRAGMA", "RETURNING", "MATERIALIZED",
};
static const char *const aggs[] = {"count", "sum", "avg", "min", "max", "total"};

/* The end (exclusive) of a list element starting at i: the next top-level comma or one of
 * the stop keywords at depth 0. */
static size_t elem_end(const lexer_t *lx, size_t i, const char *const *stops, size_t nstops)
{
    int depth = 0;
    for (; i < lx->nt; i++) {
        if (is_p(lx, i, '('))
            depth++;
        else if (is_p(lx, i, ')'))
            depth--;
        if (depth > 0)
            continue;
        if (is_p(lx, i, ',') || is_p(lx, i, ';'))
            return i;
        for (size_t k = 0; k < nstops; k++)
            if (is_kw(lx, i, stops[k]))
                return i;
    }
    return i;
}

mesh_status_t mesh__aggq_rewrite(const char *sql, size_t n, const char *unit, mesh_buf_t *out,
                                 mesh_err_t *err)
{
    lexer_t lx = {.s = sql, .n = n};
    lx.t = malloc(MESH_AGGQ_MAX_TOKENS * sizeof *lx.t);
    if (lx.t == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    mesh_status_t st = lex(&lx, err);
    size_t items_at[MESH_AGGQ_MAX_ITEMS], items_n[MESH_AGGQ_MAX_ITEMS], nitems = 0;
    size_t groups_at[MESH_AGGQ_MAX_ITEMS], groups_n[MESH_AGGQ_MAX_ITEMS], ngroups = 0;
    size_t from = 0, i = 0;
    if (st != MESH_OK)
        goto done;
#define REFUSE(...)                                                                                \
    do {                                                                                           \
        st = mesh_err_set(err, MESH_FORBIDDEN, __VA_ARGS__);                                       \
        goto done;                                                                                 \
    } while (0)
    /* everywhere: one SELECT, none of the forbidden words */
    for (size_t k = 0; k < lx.nt; k++) {
        if (k > 0 && is_kw(&lx, k, "SELECT"))
            REFUSE("subqueries are not allowed on aggregates-only products");
        for (size_t f = 0; f < sizeof forbidden / sizeof *forbidden; f++)
            if (is_kw(&lx, k, forbidden[f]))
                REFUSE("%s is not allowed on aggregates-only products", forbidden[f]);
    }
    if (!is_kw(&lx, 0, "SELECT"))
        REFUSE("only SELECT ... FROM the product [WHERE ...] [GROUP BY ...] queries are allowed");
    i = 1;
    if (is_kw(&lx, i, "DISTINCT") || is_kw(&lx, i, "ALL"))
        REFUSE("SELECT DISTINCT is not allowed on aggregates-only products");
    /* the result columns, up to FROM */
    static const char *const item_stops[] = {"FROM"};
    while (i < lx.nt && !is_kw(&lx, i, "FROM")) {
        size_t e = elem_end(&lx, i, item_stops, 1);
        if (e == i || nitems == MESH_AGGQ_MAX_ITEMS)
            REFUSE("a bad or too long select list");
        items_at[nitems] = i;
        items_n[nitems++] = e - i;
        i = e;
        if (is_p(&lx, i, ','))
            i++;
        else if (!is_kw(&lx, i, "FROM"))
            REFUSE("a bad select list");
    }
    if (nitems == 0 || !is_kw(&lx, i, "FROM"))
        REFUSE("a query needs SELECT items FROM the product");
    from = i++;
    /* one product, maybe with an alias */
    if (i >= lx.nt || (lx.t[i].type != T_IDENT && lx.t[i].type != T_QIDENT))
        REFUSE("FROM names one product");
    i++;
    if (is_p(&lx, i, '.')) {
        i++;
        if (i >= lx.nt || (lx.t[i].type != T_IDENT && lx.t[i].type != T_QIDENT))
            REFUSE("FROM names one product");
        i++;
    }
    if (is_kw(&lx, i, "AS"))
        i++;
    if (i < lx.nt && (lx.t[i].type == T_IDENT || lx.t[i].type == T_QIDENT) &&
        !is_kw(&lx, i, "WHERE") && !is_kw(&lx, i, "GROUP") && !is_kw(&lx, i, "ORDER") &&
        !is_kw(&lx, i, "LIMIT"))
        i++;
    if (is_kw(&lx, i, "WHERE")) {
        for (i++; i < lx.nt && !is_kw(&lx, i, "GROUP") && !is_kw(&lx, i, "ORDER") &&
                  !is_kw(&lx, i, "LIMIT") && !is_p(&lx, i, ';');
             i++) {
            if (names(&lx, i, unit))
                REFUSE("conditions on the privacy unit (%s) are not allowed: they isolate "
                       "people",
                       unit);
            if (is_p(&lx, i, ','))
                REFUSE("FROM names one product (no joins)");
        }
    } else if (i < lx.nt && !is_kw(&lx, i, "GROUP") && !is_kw(&lx, i, "ORDER") &&
               !is_kw(&lx, i, "LIMIT") && !is_p(&lx, i, ';')) {
        REFUSE("FROM names one product (no joins)");
    }
    if (is_kw(&lx, i, "GROUP")) {
        if (!is_kw(&lx, ++i, "BY"))
            REFUSE("GROUP must be followed by BY");
        static const char *const group_stops[] = {"ORDER", "LIMIT"};
        for (i++;;) {
            size_t e = elem_end(&lx, i, group_stops, 2);
            if (e == i || ngroups == MESH_AGGQ_MAX_ITEMS)
                REFUSE("a bad GROUP BY list");
            groups_at[ngroups] = i;
            groups_n[ngroups++] = e - i;
            i = e;
            if (!is_p(&lx, i, ','))
                break;
            i++;
        }
    }
    /* ORDER BY and LIMIT pass as written (the words above are refused in them too) */
    /* each item: an aggregate of one column, or a GROUP BY expression */
    for (size_t k = 0; k < nitems; k++) {
        size_t a = items_at[k], m = items_n[k];
        if (m >= 2 && is_kw(&lx, a + m - 2, "AS"))
            m -= 2;
        bool ok = false;
        if (m >= 4 && lx.t[a].type == T_IDENT && is_p(&lx, a + 1, '(') &&
            is_p(&lx, a + m - 1, ')')) {
            size_t f;
            for (f = 0; f < sizeof aggs / sizeof *aggs; f++)
                if (is_kw(&lx, a, aggs[f]))
                    break;
            size_t arg = a + 2, argn = m - 3;
            if (argn == 2 && is_kw(&lx, arg, "DISTINCT")) {
                arg++;
                argn--;
            }
            bool col = argn == 1 && (lx.t[arg].type == T_IDENT || lx.t[arg].type == T_QIDENT ||
                                     (is_p(&lx, arg, '*') && f == 0));
            if (f < sizeof aggs / sizeof *aggs && col) {
                if ((f == 3 || f == 4) && names(&lx, arg, unit))
                    REFUSE("min and max of the privacy unit (%s) name a person", unit);
                ok = true;
            }
        }
        for (size_t g = 0; !ok && g < ngroups; g++)
            ok = same_tokens(&lx, a, m, groups_at[g], groups_n[g]);
        if (!ok)
            REFUSE("result column %zu must be count, sum, avg, min, max or total of one column, "
                   "or an expression of the GROUP BY: aggregates-only product",
                   k + 1);
    }
#undef REFUSE
    /* the text to run: the unit count as the last result column */
    mesh_buf_reset(out);
    mesh_buf_add(out, sql, lx.t[from].off);
    mesh_buf_adds(out, ", count(DISTINCT \"");
    for (const char *c = unit; *c; c++) {
        if (*c == '"')
            mesh_buf_addc(out, '"');
        mesh_buf_addc(out, *c);
    }
    mesh_buf_adds(out, "\") ");
    st = mesh_buf_add(out, sql + lx.t[from].off, n - lx.t[from].off);
    if (st != MESH_OK)
        mesh_err_set(err, st, "the query is too long");
done:
    free(lx.t);
    return st;
}

bool mesh_sql_parens_balanced(const char *s, size_t n)
{
    int depth = 0;
    size_t i = 0;
    while (i < n) {
        char c = s[i++];
        if (c == '\0') {
            return false;
        } else if (c == '\'' || c == '"' || c == '`' || c == '[') {
            char end = c == '[' ? ']' : c;
            while (i < n && s[i] != end)
                i++;
            if (i >= n)
                return false;
            i++;
        } else if (c == '-' && i < n && s[i] == '-') {
            return false; /* a line comment would swallow what follows the condition */
        } else if (c == '/' && i < n && s[i] == '*') {
            i++;
            while (i + 1 < n && !(s[i] == '*' && s[i + 1] == '/'))
                i++;
            if (i + 1 >= n)
                return false;
            i += 2;
        } else if (c == '(') {
            depth++;
        } else if (c == ')' && --depth < 0) {
            return false;
        } else if (c == ';') {
            return false;
        }
    }
    return depth == 0;
}
