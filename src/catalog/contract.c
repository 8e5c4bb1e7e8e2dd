/*
 * contract.c - ODCS v3 data contracts: YAML tree, validation, model, export and diff.
 *
 * Three layers, each built on the one before:
 *   1. tree: libyaml's event parser feeds a small generic tree (scalar / sequence / mapping,
 *      each node with its source line). The bounds (bytes, depth, node count) are checked as
 *      events arrive, before anything is allocated for them. Anchors, aliases, merge keys,
 *      tags other than !!str and multiple documents are refused, so the tree is a plain tree
 *      (no sharing, no cycles) and export writes back exactly what it holds.
 *   2. model: the tree is validated as an ODCS v3 contract, strictly (unknown keys and wrong
 *      shapes are refused with the YAML path and line), while products and columns are filled
 *      in. A contract exists only fully validated.
 *   3. export (YAML back from the kept tree), diff and version comparison.
 *
 * Invariants: every scalar is NUL-free (scalars holding NUL are refused), so all model text is
 * a plain C string; mapping keys are scalars, unique within their mapping.
 */
#include "catalog/contract.h"

#include <limits.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "core/util.h"

/* Mapping keys are written back as implicit keys, which YAML caps at 1024 characters;
 * escaping may grow a key four-fold, so keys are capped well below that. */
#define MAX_KEY_BYTES 200

/* ======================================================================================
 * The tree
 * ====================================================================================== */

typedef enum { YN_SCALAR, YN_SEQ, YN_MAP } yn_kind_t;

/* What a scalar means: quoted scalars are strings; plain ones per the YAML 1.2 core schema. */
typedef enum { YS_STR, YS_NULL, YS_BOOL, YS_INT, YS_FLOAT } ys_type_t;

struct mesh_yaml_node {
    yn_kind_t kind;
    int line;                /* 1-based source line of the node's start */
    char *text;              /* scalars: the value, NUL-terminated, no NUL inside */
    size_t len;              /* scalars: bytes of text */
    bool quoted;             /* scalars: not plain (quoted, block or !!str), so always a string */
    ys_type_t st;            /* scalars: meaning of text */
    mesh_yaml_node_t **kids; /* sequence: items; mapping: key, value, key, value, ... */
    size_t nkids, cap;
};

static void node_free(mesh_yaml_node_t *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->nkids; i++)
        node_free(n->kids[i]);
    free(n->kids);
    free(n->text);
    free(n);
}

static bool all_of(const char *s, size_t n, const char *set)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || strchr(set, s[i]) == NULL)
            return false;
    return true;
}

#define DEC "0123456789"
#define OCT "01234567"
#define HEX "0123456789abcdefABCDEF"

static bool is_int_text(const char *s, size_t n)
{
    if (n > 2 && s[0] == '0' && s[1] == 'o')
        return all_of(s + 2, n - 2, OCT);
    if (n > 2 && s[0] == '0' && s[1] == 'x')
        return all_of(s + 2, n - 2, HEX);
    if (n > 0 && (s[0] == '-' || s[0] == '+'))
        return all_of(s + 1, n - 1, DEC);
    return all_of(s, n, DEC);
}

/* [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE][-+]?[0-9]+ )?  and .inf / .nan forms */
static bool is_float_text(const char *s, size_t n)
{
    static const char *const special[] = {".inf",  ".Inf",  ".INF",  "-.inf", "-.Inf", "-.INF",
                                          "+.inf", "+.Inf", "+.INF", ".nan",  ".NaN",  ".NAN"};
    for (size_t i = 0; i < MESH_ARRAY_LEN(special); i++)
        if (strcmp(s, special[i]) == 0)
            return true;
    size_t i = 0, int_digits = 0, frac_digits = 0;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
        int_digits++;
    if (i < n && s[i] == '.') {
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            frac_digits++;
        if (int_digits == 0 && frac_digits == 0)
            return false;
    } else if (int_digits == 0) {
        return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            i++;
        size_t exp_digits = 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            exp_digits++;
        if (exp_digits == 0)
            return false;
    }
    return i == n;
}

/* The meaning of a plain scalar under the YAML 1.2 core schema. */
static ys_type_t classify_plain(const char *s, size_t n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    static const char *const bools[] = {"true", "True", "TRUE", "false", "False", "FALSE"};
    for (size_t i = 0; i < MESH_ARRAY_LEN(nulls); i++)
        if (strcmp(s, nulls[i]) == 0)
            return YS_NULL;
    for (size_t i = 0; i < MESH_ARRAY_LEN(bools); i++)
        if (strcmp(s, bools[i]) == 0)
            return YS_BOOL;
    if (is_int_text(s, n))
        return YS_INT;
    if (is_float_text(s, n))
        return YS_FLOAT;
    return YS_STR;
}

static bool is_str(const mesh_yaml_node_t *n)
{
    return n->kind == YN_SCALAR && n->st == YS_STR;
}

static bool bool_true(const mesh_yaml_node_t *n)
{
    return n != NULL && n->kind == YN_SCALAR && n->st == YS_BOOL && (n->text[0] | 0x20) == 't';
}

/* A number written in decimal (ints included). Hex, octal, .inf and .nan are refused. */
static bool num_value(const mesh_yaml_node_t *n, double *out)
{
    return n->kind == YN_SCALAR && (n->st == YS_INT || n->st == YS_FLOAT) &&
           mesh_parse_f64(n->text, n->len, out) == MESH_OK;
}

static bool int_value(const mesh_yaml_node_t *n, int64_t *out)
{
    return n->kind == YN_SCALAR && n->st == YS_INT &&
           mesh_parse_i64(n->text, n->len, out) == MESH_OK;
}

static const mesh_yaml_node_t *map_get(const mesh_yaml_node_t *m, const char *key)
{
    for (size_t i = 0; i + 1 < m->nkids; i += 2)
        if (strcmp(m->kids[i]->text, key) == 0)
            return m->kids[i + 1];
    return NULL;
}

/* ---- error text helpers ---------------------------------------------------------------- */

/* A user's text made safe and short for a message: control bytes become '?', text past 64
 * bytes is cut (at a character boundary) and marked with "...". */
typedef struct {
    char s[72];
} shown_t;

static shown_t show(const char *text)
{
    shown_t r;
    size_t n = strnlen(text, 65), cut = n;
    if (n > 64)
        for (cut = 64; cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80; cut--)
            ;
    for (size_t i = 0; i < cut; i++) {
        unsigned char ch = (unsigned char)text[i];
        r.s[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    memcpy(r.s + cut, n > 64 ? "..." : "", n > 64 ? 4 : 1);
    return r;
}

/* A YAML path such as schema[0].properties[2].logicalType, truncated when very long. */
typedef struct {
    char s[256];
    size_t len;
} ypath_t;

static void __attribute__((format(printf, 2, 3))) ypath_add(ypath_t *p, const char *fmt, ...)
{
    size_t room = sizeof p->s - p->len;
    if (room <= 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(p->s + p->len, room, fmt, ap);
    va_end(ap);
    if (w > 0)
        p->len += (size_t)w < room ? (size_t)w : room - 1;
    p->s[p->len] = '\0';
}

static size_t ypath_key(ypath_t *p, const char *key)
{
    size_t old = p->len;
    ypath_add(p, "%s%s", p->len ? "." : "", show(key).s);
    return old;
}

static size_t ypath_idx(ypath_t *p, size_t i)
{
    size_t old = p->len;
    ypath_add(p, "[%zu]", i);
    return old;
}

static void ypath_pop(ypath_t *p, size_t old)
{
    p->len = old;
    p->s[old] = '\0';
}

/* ======================================================================================
 * Layer 1: events -> tree
 * ====================================================================================== */

typedef struct {
    mesh_yaml_node_t *root;
    mesh_yaml_node_t *stack[MESH_CONTRACT_MAX_DEPTH]; /* open collections, outermost first */
    int depth;
    size_t nodes;
    int docs;
    mesh_err_t *err;
} builder_t;

/* The path of the open collections' last children. When pending, the innermost frame names
 * the child about to be attached (a sequence's next index, a mapping's value key). */
static void builder_path(const builder_t *b, int frames, bool pending, ypath_t *p)
{
    p->len = 0;
    p->s[0] = '\0';
    for (int i = 0; i < frames; i++) {
        const mesh_yaml_node_t *f = b->stack[i];
        bool open = pending && i == frames - 1;
        if (f->kind == YN_SEQ)
            ypath_idx(p, open ? f->nkids : f->nkids - 1);
        else if (open && f->nkids % 2 == 1)
            ypath_key(p, f->kids[f->nkids - 1]->text);
        else if (!open && f->nkids >= 2)
            ypath_key(p, f->kids[f->nkids - 2]->text);
    }
}

static mesh_status_t __attribute__((format(printf, 4, 5)))
berr(const builder_t *b, const yaml_event_t *ev, mesh_status_t code, const char *fmt, ...)
{
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    ypath_t p;
    builder_path(b, b->depth, true, &p);
    return mesh_err_set(b->err, code, "%s (line %zu): %s", p.len ? p.s : "contract",
                        ev->start_mark.line + 1, reason);
}

static mesh_status_t yaml_error(const yaml_parser_t *p, const char *yaml, size_t n, mesh_err_t *err)
{
    if (p->error == YAML_MEMORY_ERROR)
        return mesh_err_set(err, MESH_NOMEM, "out of memory while parsing YAML");
    const char *problem = p->problem ? p->problem : "malformed YAML";
    size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1;
    if (p->error == YAML_READER_ERROR) { /* the reader reports a byte offset, not a mark */
        line = 1;
        col = 1;
        for (size_t i = 0; i < p->problem_offset && i < n; i++, col++)
            if (yaml[i] == '\n') {
                line++;
                col = 0;
            }
    }
    if (p->context)
        return mesh_err_set(err, MESH_PARSE, "line %zu, column %zu: %s (%s at line %zu)", line, col,
                            problem, p->context, p->context_mark.line + 1);
    return mesh_err_set(err, MESH_PARSE, "line %zu, column %zu: %s", line, col, problem);
}

static mesh_status_t node_new(builder_t *b, const yaml_event_t *ev, yn_kind_t kind,
                              mesh_yaml_node_t **out)
{
    if (b->nodes >= MESH_CONTRACT_MAX_NODES)
        return berr(b, ev, MESH_TOO_LARGE, "more than %d YAML nodes", MESH_CONTRACT_MAX_NODES);
    mesh_yaml_node_t *n = calloc(1, sizeof *n);
    if (n == NULL)
        return mesh_err_set(b->err, MESH_NOMEM, "out of memory while parsing YAML");
    n->kind = kind;
    n->line = (int)ev->start_mark.line + 1;
    b->nodes++;
    *out = n;
    return MESH_OK;
}

/* Hangs n under the innermost open collection (or makes it the root). Takes n: frees it on
 * failure. Mapping keys must be short scalars and not the merge key. */
static mesh_status_t attach(builder_t *b, const yaml_event_t *ev, mesh_yaml_node_t *n)
{
    mesh_status_t st = MESH_OK;
    if (b->depth == 0) {
        if (b->root != NULL)
            st = berr(b, ev, MESH_INTERNAL, "second root node");
        else
            b->root = n;
        if (st != MESH_OK)
            node_free(n);
        return st;
    }
    mesh_yaml_node_t *parent = b->stack[b->depth - 1];
    if (parent->kind == YN_MAP && parent->nkids % 2 == 0) {
        if (n->kind != YN_SCALAR)
            st = berr(b, ev, MESH_INVALID, "mapping keys must be scalars");
        else if (!n->quoted && strcmp(n->text, "<<") == 0)
            st = berr(b, ev, MESH_INVALID, "anchors and aliases are not supported (merge key <<)");
        else if (n->len > MAX_KEY_BYTES)
            st = berr(b, ev, MESH_INVALID, "mapping keys longer than %d bytes are not supported",
                      MAX_KEY_BYTES);
    }
    if (st == MESH_OK && parent->nkids == parent->cap) {
        size_t ncap = parent->cap ? parent->cap * 2 : 8;
        mesh_yaml_node_t **k = realloc(parent->kids, ncap * sizeof *k);
        if (k == NULL)
            st = mesh_err_set(b->err, MESH_NOMEM, "out of memory while parsing YAML");
        else {
            parent->kids = k;
            parent->cap = ncap;
        }
    }
    if (st != MESH_OK) {
        node_free(n);
        return st;
    }
    parent->kids[parent->nkids++] = n;
    return MESH_OK;
}

static mesh_status_t on_scalar(builder_t *b, const yaml_event_t *ev)
{
    const char *tag = (const char *)ev->data.scalar.tag;
    const char *value = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    bool str_tag = tag && (strcmp(tag, "!") == 0 || strcmp(tag, YAML_STR_TAG) == 0);
    if (ev->data.scalar.anchor)
        return berr(b, ev, MESH_INVALID, "anchors and aliases are not supported");
    if (tag && !str_tag)
        return berr(b, ev, MESH_INVALID, "YAML tags are not supported (%s)", show(tag).s);
    if (memchr(value, '\0', len) != NULL)
        return berr(b, ev, MESH_INVALID, "NUL characters are not allowed in text");
    mesh_yaml_node_t *n;
    mesh_status_t st = node_new(b, ev, YN_SCALAR, &n);
    if (st != MESH_OK)
        return st;
    n->text = mesh_strndup(value, len);
    if (n->text == NULL) {
        node_free(n);
        return mesh_err_set(b->err, MESH_NOMEM, "out of memory while parsing YAML");
    }
    n->len = len;
    n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || str_tag;
    n->st = n->quoted ? YS_STR : classify_plain(n->text, n->len);
    return attach(b, ev, n);
}

static mesh_status_t on_start(builder_t *b, const yaml_event_t *ev, yn_kind_t kind)
{
    bool seq = kind == YN_SEQ;
    const char *tag =
        (const char *)(seq ? ev->data.sequence_start.tag : ev->data.mapping_start.tag);
    const void *anchor = seq ? ev->data.sequence_start.anchor : ev->data.mapping_start.anchor;
    if (anchor)
        return berr(b, ev, MESH_INVALID, "anchors and aliases are not supported");
    if (tag && strcmp(tag, seq ? YAML_SEQ_TAG : YAML_MAP_TAG) != 0)
        return berr(b, ev, MESH_INVALID, "YAML tags are not supported (%s)", show(tag).s);
    if (b->depth >= MESH_CONTRACT_MAX_DEPTH)
        return berr(b, ev, MESH_TOO_LARGE, "nesting deeper than %d levels",
                    MESH_CONTRACT_MAX_DEPTH);
    mesh_yaml_node_t *n;
    mesh_status_t st = node_new(b, ev, kind, &n);
    if (st != MESH_OK)
        return st;
    st = attach(b, ev, n);
    if (st != MESH_OK)
        return st;
    b->stack[b->depth++] = n;
    return MESH_OK;
}

static int key_cmp(const void *pa, const void *pb)
{
    const mesh_yaml_node_t *a = *(const mesh_yaml_node_t *const *)pa;
    const mesh_yaml_node_t *b = *(const mesh_yaml_node_t *const *)pb;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->text, b->text, n);
    if (c != 0)
        return c;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return (a->line > b->line) - (a->line < b->line);
}

/* Refuses a mapping with two equal keys, naming the earliest repeated one. Sorting keeps this
 * O(n log n) for the largest mapping the node limit allows. */
static mesh_status_t check_dup_keys(builder_t *b, const mesh_yaml_node_t *m)
{
    size_t n = m->nkids / 2;
    if (n < 2)
        return MESH_OK;
    const mesh_yaml_node_t **keys = malloc(n * sizeof *keys);
    if (keys == NULL)
        return mesh_err_set(b->err, MESH_NOMEM, "out of memory while parsing YAML");
    for (size_t i = 0; i < n; i++)
        keys[i] = m->kids[2 * i];
    qsort(keys, n, sizeof *keys, key_cmp);
    const mesh_yaml_node_t *dup = NULL;
    for (size_t i = 1; i < n; i++)
        if (keys[i]->len == keys[i - 1]->len &&
            memcmp(keys[i]->text, keys[i - 1]->text, keys[i]->len) == 0 &&
            (dup == NULL || keys[i]->line < dup->line))
            dup = keys[i];
    mesh_status_t st = MESH_OK;
    if (dup != NULL) {
        ypath_t p;
        builder_path(b, b->depth - 1, false, &p);
        ypath_key(&p, dup->text);
        st = mesh_err_set(b->err, MESH_PARSE, "%s (line %d): duplicate key '%s'", p.s, dup->line,
                          show(dup->text).s);
    }
    free(keys);
    return st;
}

static mesh_status_t on_end(builder_t *b, const yaml_event_t *ev)
{
    if (b->depth == 0) /* libyaml balances its events; refuse rather than trust that blindly */
        return berr(b, ev, MESH_INTERNAL, "unbalanced YAML events");
    mesh_yaml_node_t *n = b->stack[b->depth - 1];
    if (n->kind == YN_MAP) {
        mesh_status_t st = check_dup_keys(b, n);
        if (st != MESH_OK)
            return st;
    }
    b->depth--;
    return MESH_OK;
}

static mesh_status_t on_event(builder_t *b, const yaml_event_t *ev, bool *done)
{
    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        *done = true;
        return MESH_OK;
    case YAML_DOCUMENT_START_EVENT:
        if (b->docs++ > 0)
            return berr(b, ev, MESH_INVALID, "only one YAML document is allowed");
        return MESH_OK;
    case YAML_ALIAS_EVENT:
        return berr(b, ev, MESH_INVALID, "anchors and aliases are not supported");
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_start(b, ev, YN_SEQ);
    case YAML_MAPPING_START_EVENT:
        return on_start(b, ev, YN_MAP);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return on_end(b, ev);
    default: /* stream start, document end */
        return MESH_OK;
    }
}

/* Parses n bytes of YAML into a tree (*out, freed with node_free). */
static mesh_status_t build_tree(const char *yaml, size_t n, mesh_yaml_node_t **out, mesh_err_t *err)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return mesh_err_set(err, MESH_NOMEM, "out of memory while parsing YAML");
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, n);
    builder_t b = {.err = err};
    mesh_status_t st = MESH_OK;
    bool done = false;
    while (!done && st == MESH_OK) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            st = yaml_error(&parser, yaml, n, err);
            break;
        }
        st = on_event(&b, &ev, &done);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    if (st == MESH_OK && b.root == NULL)
        st = mesh_err_set(err, MESH_INVALID, "contract (line 1): the document is empty");
    if (st != MESH_OK) {
        node_free(b.root);
        return st;
    }
    *out = b.root;
    return MESH_OK;
}

/* ======================================================================================
 * Layer 2: tree -> validated model
 * ====================================================================================== */

typedef struct {
    mesh_err_t *err;
    ypath_t path; /* where the validator is; errors name it */
} vctx_t;

static mesh_status_t vverr(vctx_t *v, const char *key, const mesh_yaml_node_t *n, const char *fmt,
                           va_list ap) __attribute__((format(printf, 4, 0)));

static mesh_status_t vverr(vctx_t *v, const char *key, const mesh_yaml_node_t *n, const char *fmt,
                           va_list ap)
{
    char reason[448];
    vsnprintf(reason, sizeof reason, fmt, ap);
    size_t old = v->path.len;
    if (key != NULL)
        ypath_key(&v->path, key);
    mesh_err_set(v->err, MESH_INVALID, "%s (line %d): %s", v->path.len ? v->path.s : "contract",
                 n ? n->line : 1, reason);
    ypath_pop(&v->path, old);
    return MESH_INVALID;
}

/* Refuses the node n found at <current path>.key (key may be NULL) with a reason. */
static mesh_status_t __attribute__((format(printf, 4, 5)))
verr(vctx_t *v, const char *key, const mesh_yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mesh_status_t st = vverr(v, key, n, fmt, ap);
    va_end(ap);
    return st;
}

static mesh_status_t nomem(vctx_t *v)
{
    return mesh_err_set(v->err, MESH_NOMEM, "out of memory while reading the contract");
}

/* ---- shapes ----------------------------------------------------------------------------- */

typedef enum {
    SH_ANY,
    SH_STR,            /* a string */
    SH_SCALAR,         /* any scalar but null */
    SH_BOOL,           /* true / false */
    SH_INT,            /* a decimal integer */
    SH_NUM,            /* a finite decimal number */
    SH_BOOL_OR_NUM,    /* exclusiveMinimum: 3.0 boolean or 3.1 number */
    SH_MAP,            /* a mapping */
    SH_SEQ,            /* a sequence of anything */
    SH_SEQ_STR,        /* a sequence of strings */
    SH_SEQ_MAP,        /* a sequence of mappings */
    SH_MAP_OR_STR,     /* description: an object or (leniently) its purpose */
    SH_MAP_OR_SEQ_MAP, /* team: the 3.1 object or the deprecated 3.0 list */
} shape_t;

typedef struct {
    const char *key;
    shape_t shape;
} keyspec_t;

static const char *describe(const mesh_yaml_node_t *n)
{
    static const char *const scalar[] = {"a string", "null", "a boolean", "an integer", "a number"};
    if (n->kind == YN_MAP)
        return "a mapping";
    if (n->kind == YN_SEQ)
        return "a sequence";
    return scalar[n->st];
}

static mesh_status_t check_items(vctx_t *v, const char *key, const mesh_yaml_node_t *seq, bool maps)
{
    for (size_t i = 0; i < seq->nkids; i++) {
        const mesh_yaml_node_t *it = seq->kids[i];
        if (maps ? it->kind == YN_MAP : is_str(it))
            continue;
        ypath_key(&v->path, key); /* the error ends validation: no need to pop */
        ypath_idx(&v->path, i);
        return verr(v, NULL, it, "expected %s, got %s", maps ? "a mapping" : "a string",
                    describe(it));
    }
    return MESH_OK;
}

static mesh_status_t check_shape(vctx_t *v, const char *key, const mesh_yaml_node_t *n,
                                 shape_t shape)
{
    double d;
    int64_t i;
    bool scalar = n->kind == YN_SCALAR;
    switch (shape) {
    case SH_ANY:
        return MESH_OK;
    case SH_STR:
        return is_str(n) ? MESH_OK : verr(v, key, n, "expected a string, got %s", describe(n));
    case SH_SCALAR:
        return scalar && n->st != YS_NULL
                   ? MESH_OK
                   : verr(v, key, n, "expected a value, got %s", describe(n));
    case SH_BOOL:
        return scalar && n->st == YS_BOOL
                   ? MESH_OK
                   : verr(v, key, n, "expected true or false (a YAML boolean), got %s",
                          describe(n));
    case SH_INT:
        return int_value(n, &i) ? MESH_OK
                                : verr(v, key, n, "expected an integer, got %s", describe(n));
    case SH_NUM:
        return num_value(n, &d) ? MESH_OK
                                : verr(v, key, n, "expected a number, got %s", describe(n));
    case SH_BOOL_OR_NUM:
        return (scalar && n->st == YS_BOOL) || num_value(n, &d)
                   ? MESH_OK
                   : verr(v, key, n, "expected a number (or a 3.0 boolean), got %s", describe(n));
    case SH_MAP:
        return n->kind == YN_MAP ? MESH_OK
                                 : verr(v, key, n, "expected a mapping, got %s", describe(n));
    case SH_SEQ:
    case SH_SEQ_STR:
    case SH_SEQ_MAP:
        if (n->kind != YN_SEQ)
            return verr(v, key, n, "expected a sequence, got %s", describe(n));
        return shape == SH_SEQ ? MESH_OK : check_items(v, key, n, shape == SH_SEQ_MAP);
    case SH_MAP_OR_STR:
        return n->kind == YN_MAP || is_str(n)
                   ? MESH_OK
                   : verr(v, key, n, "expected a mapping or a string, got %s", describe(n));
    case SH_MAP_OR_SEQ_MAP:
        if (n->kind == YN_MAP)
            return MESH_OK;
        return check_shape(v, key, n, SH_SEQ_MAP);
    }
    return MESH_OK;
}

static const keyspec_t *find_spec(const keyspec_t *spec, size_t nspec, const char *key)
{
    for (size_t i = 0; i < nspec; i++)
        if (strcmp(spec[i].key, key) == 0)
            return &spec[i];
    return NULL;
}

/* "a, b, c" of the keys of spec into out. */
static void spec_list(const keyspec_t *spec, size_t nspec, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < nspec && len < cap; i++) {
        int w = snprintf(out + len, cap - len, "%s%s", i ? ", " : "", spec[i].key);
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

/* Refuses keys of mapping m that spec does not name and values of the wrong shape. The list
 * of allowed keys is shown when short enough to read; hint says where other things belong. */
static mesh_status_t check_keys(vctx_t *v, const mesh_yaml_node_t *m, const keyspec_t *spec,
                                size_t nspec, const char *hint)
{
    for (size_t i = 0; i + 1 < m->nkids; i += 2) {
        const mesh_yaml_node_t *k = m->kids[i];
        const keyspec_t *ks = find_spec(spec, nspec, k->text);
        if (ks == NULL) {
            char list[320] = "";
            if (nspec <= 24)
                spec_list(spec, nspec, list, sizeof list);
            return verr(v, k->text, k, "unknown key '%s'%s%s%s%s", show(k->text).s,
                        list[0] ? "; expected one of " : "", list, hint ? "; " : "",
                        hint ? hint : "");
        }
        mesh_status_t st = check_shape(v, ks->key, m->kids[i + 1], ks->shape);
        if (st != MESH_OK)
            return st;
    }
    return MESH_OK;
}

/* The value of a required key, or NULL (the error set) when it is missing. */
static const mesh_yaml_node_t *need(vctx_t *v, const mesh_yaml_node_t *m, const char *key)
{
    const mesh_yaml_node_t *x = map_get(m, key);
    if (x == NULL)
        verr(v, key, m, "required key is missing");
    return x;
}

/* ---- copies into the model -------------------------------------------------------------- */

static mesh_status_t dup_text(vctx_t *v, const mesh_yaml_node_t *n, char **out)
{
    if (n == NULL)
        return MESH_OK;
    *out = mesh_strndup(n->text, n->len);
    return *out ? MESH_OK : nomem(v);
}

static mesh_status_t dup_key(vctx_t *v, const mesh_yaml_node_t *m, const char *key, char **out)
{
    return dup_text(v, map_get(m, key), out);
}

static void strs_free(char **a, size_t n)
{
    for (size_t i = 0; a != NULL && i < n; i++)
        free(a[i]);
    free(a);
}

/* Copies a sequence of scalars (shape already checked) as text. */
static mesh_status_t dup_list(vctx_t *v, const mesh_yaml_node_t *seq, char ***out, size_t *n)
{
    if (seq == NULL || seq->nkids == 0)
        return MESH_OK;
    *out = calloc(seq->nkids, sizeof **out);
    if (*out == NULL)
        return nomem(v);
    *n = seq->nkids;
    for (size_t i = 0; i < seq->nkids; i++) {
        mesh_status_t st = dup_text(v, seq->kids[i], &(*out)[i]);
        if (st != MESH_OK)
            return st;
    }
    return MESH_OK;
}

/* ---- customProperties ------------------------------------------------------------------- */

static const keyspec_t custom_keys[] = {
    {"property", SH_STR},
    {"value", SH_ANY},
    {"description", SH_STR},
    {"id", SH_STR},
};

/* Checks the entries of a customProperties list (a sequence of mappings, already checked). */
static mesh_status_t check_custom(vctx_t *v, const mesh_yaml_node_t *seq)
{
    if (seq == NULL)
        return MESH_OK;
    size_t old = ypath_key(&v->path, "customProperties");
    for (size_t i = 0; i < seq->nkids; i++) {
        const mesh_yaml_node_t *e = seq->kids[i];
        size_t at = ypath_idx(&v->path, i);
        mesh_status_t st = check_keys(v, e, custom_keys, MESH_ARRAY_LEN(custom_keys), NULL);
        if (st != MESH_OK)
            return st;
        if (need(v, e, "property") == NULL || need(v, e, "value") == NULL)
            return MESH_INVALID;
        ypath_pop(&v->path, at);
    }
    ypath_pop(&v->path, old);
    return MESH_OK;
}

/* Refuses the value of customProperties[i] with a reason. */
static mesh_status_t __attribute__((format(printf, 4, 5)))
custom_err(vctx_t *v, size_t i, const mesh_yaml_node_t *n, const char *fmt, ...)
{
    ypath_key(&v->path, "customProperties");
    ypath_idx(&v->path, i);
    va_list ap;
    va_start(ap, fmt);
    mesh_status_t st = vverr(v, "value", n, fmt, ap);
    va_end(ap);
    return st;
}

/* The value of the understood custom property `name` (*out NULL when absent) and its index.
 * Settings meshd acts on may appear once. */
static mesh_status_t custom_find(vctx_t *v, const mesh_yaml_node_t *seq, const char *name,
                                 const mesh_yaml_node_t **out, size_t *idx)
{
    *out = NULL;
    for (size_t i = 0; seq != NULL && i < seq->nkids; i++) {
        const mesh_yaml_node_t *prop = map_get(seq->kids[i], "property");
        if (prop == NULL || strcmp(prop->text, name) != 0)
            continue;
        if (*out != NULL) {
            ypath_key(&v->path, "customProperties");
            ypath_idx(&v->path, i);
            return verr(v, "property", prop, "'%s' is given twice", name);
        }
        *out = map_get(seq->kids[i], "value");
        *idx = i;
    }
    return MESH_OK;
}

/* ---- logicalType and logicalTypeOptions ------------------------------------------------- */

static const char *const ltype_names[] = {"string", "integer", "number", "boolean", "timestamp",
                                          "date",   "time",    "object", "array"};
static const char *const ltype_sql[] = {"TEXT", "INTEGER", "REAL", "BOOLEAN", "TIMESTAMP",
                                        "DATE", "TIME",    "JSON", "JSON"};

static bool ltype_from(const char *s, mesh_ltype_t *out)
{
    for (size_t i = 0; i < MESH_ARRAY_LEN(ltype_names); i++)
        if (strcmp(s, ltype_names[i]) == 0) {
            *out = (mesh_ltype_t)i;
            return true;
        }
    return false;
}

static const keyspec_t lto_string[] = {
    {"minLength", SH_INT}, {"maxLength", SH_INT}, {"pattern", SH_STR}, {"format", SH_STR}};
static const keyspec_t lto_number[] = {{"minimum", SH_NUM},
                                       {"maximum", SH_NUM},
                                       {"exclusiveMinimum", SH_BOOL_OR_NUM},
                                       {"exclusiveMaximum", SH_BOOL_OR_NUM},
                                       {"multipleOf", SH_NUM},
                                       {"format", SH_STR}};
static const keyspec_t lto_temporal[] = {{"format", SH_STR},
                                         {"timezone", SH_BOOL},
                                         {"defaultTimezone", SH_STR},
                                         {"minimum", SH_SCALAR},
                                         {"maximum", SH_SCALAR}};
static const keyspec_t lto_array[] = {
    {"minItems", SH_INT}, {"maxItems", SH_INT}, {"uniqueItems", SH_BOOL}};
static const keyspec_t lto_object[] = {
    {"minProperties", SH_INT}, {"maxProperties", SH_INT}, {"required", SH_SEQ_STR}};

static const keyspec_t *lto_spec(mesh_ltype_t t, size_t *n)
{
    switch (t) {
    case MESH_LT_STRING:
        *n = MESH_ARRAY_LEN(lto_string);
        return lto_string;
    case MESH_LT_INTEGER:
    case MESH_LT_NUMBER:
        *n = MESH_ARRAY_LEN(lto_number);
        return lto_number;
    case MESH_LT_TIMESTAMP:
    case MESH_LT_DATE:
    case MESH_LT_TIME:
        *n = MESH_ARRAY_LEN(lto_temporal);
        return lto_temporal;
    case MESH_LT_ARRAY:
        *n = MESH_ARRAY_LEN(lto_array);
        return lto_array;
    case MESH_LT_OBJECT:
        *n = MESH_ARRAY_LEN(lto_object);
        return lto_object;
    default: /* boolean has no options */
        *n = 0;
        return NULL;
    }
}

/* A pair of non-negative integer bounds (minLength/maxLength, minItems/maxItems, ...); each
 * is -1 when absent. */
static mesh_status_t int_range(vctx_t *v, const mesh_yaml_node_t *m, const char *kmin,
                               const char *kmax, int64_t *lo, int64_t *hi)
{
    const char *keys[2] = {kmin, kmax};
    int64_t *outs[2] = {lo, hi};
    for (int i = 0; i < 2; i++) {
        const mesh_yaml_node_t *x = map_get(m, keys[i]);
        *outs[i] = -1;
        if (x == NULL)
            continue;
        int_value(x, outs[i]);
        if (*outs[i] < 0)
            return verr(v, keys[i], x, "must not be negative");
    }
    if (*lo >= 0 && *hi >= 0 && *lo > *hi)
        return verr(v, kmax, map_get(m, kmax), "%s %lld is less than %s %lld", kmax, (long long)*hi,
                    kmin, (long long)*lo);
    return MESH_OK;
}

/* exclusiveMinimum / exclusiveMaximum: a number (3.1: the bound itself, exclusive; with an
 * inclusive bound as well the tighter one wins) or a boolean (3.0: makes minimum / maximum
 * exclusive). */
static mesh_status_t exclusive_bound(vctx_t *v, const mesh_yaml_node_t *m, bool lower,
                                     mesh_column_t *col)
{
    const char *key = lower ? "exclusiveMinimum" : "exclusiveMaximum";
    const mesh_yaml_node_t *x = map_get(m, key);
    bool *has = lower ? &col->has_min : &col->has_max;
    bool *excl = lower ? &col->min_exclusive : &col->max_exclusive;
    double *bound = lower ? &col->min : &col->max, d;
    if (x == NULL)
        return MESH_OK;
    if (x->st == YS_BOOL) {
        if (bool_true(x) && !*has)
            return verr(v, key, x, "the boolean form needs %s", lower ? "minimum" : "maximum");
        *excl = bool_true(x);
        return MESH_OK;
    }
    num_value(x, &d);
    if (!*has || (lower ? d >= *bound : d <= *bound)) {
        *has = true;
        *excl = true;
        *bound = d;
    }
    return MESH_OK;
}

static mesh_status_t number_options(vctx_t *v, const mesh_yaml_node_t *m, mesh_column_t *col)
{
    const mesh_yaml_node_t *x;
    double d;
    if ((x = map_get(m, "minimum")) != NULL && num_value(x, &col->min))
        col->has_min = true;
    if ((x = map_get(m, "maximum")) != NULL && num_value(x, &col->max))
        col->has_max = true;
    mesh_status_t st = exclusive_bound(v, m, true, col);
    if (st == MESH_OK)
        st = exclusive_bound(v, m, false, col);
    if (st != MESH_OK)
        return st;
    if ((x = map_get(m, "multipleOf")) != NULL && num_value(x, &d) && !(d > 0))
        return verr(v, "multipleOf", x, "must be greater than 0");
    if (col->has_min && col->has_max &&
        (col->min > col->max ||
         (col->min == col->max && (col->min_exclusive || col->max_exclusive)))) {
        const char *k = map_get(m, "maximum") ? "maximum" : "exclusiveMaximum";
        return verr(v, k, map_get(m, k), "the range is empty (minimum %g, maximum %g)", col->min,
                    col->max);
    }
    return MESH_OK;
}

/* ---- patterns: ECMA-262 approximated by POSIX ERE ---------------------------------------
 *
 * ODCS patterns are ECMA-262 regular expressions; meshd checks them with POSIX regcomp
 * (REG_EXTENDED). The common dialect is close, so the text is translated rather than
 * interpreted: the class escapes \d \w \s (and \D \W \S) become [0-9] [A-Za-z0-9_]
 * [[:space:]] (their negations; inside [...] the positive ones become 0-9, A-Za-z0-9_,
 * [:space:]), \n \t \r \f \v \xHH become the character, an escaped punctuation character
 * becomes that literal character, and (?: becomes (. What ERE cannot express is refused:
 * lookaround, backreferences (they make matching exponential), other letter escapes (\u, \p,
 * \k), \D \W \S inside [...]. Two limits keep regcomp cheap on hostile input: the pattern
 * length and an estimate of the automaton size (regcomp expands a{n,m} into copies, so
 * nested counted repetitions multiply).
 */
#define PATTERN_MAX_BYTES  1024
#define PATTERN_MAX_COST   20000
#define PATTERN_MAX_GROUPS 16
#define PATTERN_MAX_REPEAT 1000

typedef struct {
    mesh_buf_t out;
    int64_t sum[PATTERN_MAX_GROUPS + 1]; /* estimated size of each open group */
    int depth;
    int64_t last; /* size of the atom just written, for a following quantifier */
    const char *why;
} ere_t;

static void ere_add(ere_t *e, const char *s, size_t n)
{
    if (mesh_buf_add(&e->out, s, n) != MESH_OK && e->why == NULL)
        e->why = "out of memory";
}

static void ere_put(ere_t *e, const char *s)
{
    ere_add(e, s, strlen(s));
}

static void ere_atom(ere_t *e, int64_t cost)
{
    e->last = cost;
    e->sum[e->depth] += cost;
    if (e->sum[e->depth] > PATTERN_MAX_COST && e->why == NULL)
        e->why = "it is too complex (nested repetitions)";
}

static bool is_alnum(char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

/* Writes ch as a literal character outside brackets. */
static void ere_literal(ere_t *e, char ch)
{
    char s[3] = {'\\', ch, '\0'};
    ere_put(e, ch != '\0' && strchr(".[]()*+?{}|^$\\", ch) ? s : s + 1);
}

/* Writes ch as a member of a bracket expression, where ] - ^ [ take the collating-symbol
 * form [.c.] and a backslash is already literal. */
static void ere_member(ere_t *e, char ch)
{
    if (ch != '\0' && strchr("]-^[", ch) != NULL) {
        char sym[6] = {'[', '.', ch, '.', ']', '\0'};
        ere_put(e, sym);
    } else {
        ere_add(e, &ch, 1);
    }
}

static int hexdigit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

/* The character of a control escape (\n \t \r \f \v, or \xHH below 0x80) at p[i] == '\\'
 * with its length in *len; 0 when the escape is not one of these. */
static char control_escape(const char *p, size_t i, size_t *len)
{
    static const char from[] = "ntrfv", to[] = "\n\t\r\f\v";
    *len = 2;
    if (p[i + 1] != '\0' && strchr(from, p[i + 1]) != NULL)
        return to[strchr(from, p[i + 1]) - from];
    if (p[i + 1] == 'x' && hexdigit(p[i + 2]) >= 0 && hexdigit(p[i + 3]) >= 0) {
        int c = hexdigit(p[i + 2]) * 16 + hexdigit(p[i + 3]);
        *len = 4;
        return c > 0 && c < 0x80 ? (char)c : '\0';
    }
    return '\0';
}

/* Translates the escape at p[i] == '\\' outside brackets; returns the index after it. */
static size_t ere_escape(ere_t *e, const char *p, size_t i)
{
    static const char cls[] = "dDwWsS";
    static const char *const ere[] = {"[0-9]",         "[^0-9]",      "[A-Za-z0-9_]",
                                      "[^A-Za-z0-9_]", "[[:space:]]", "[^[:space:]]"};
    char d = p[i + 1];
    size_t len;
    char ch = control_escape(p, i, &len);
    if (d == '\0')
        e->why = "it ends with a backslash";
    else if (strchr(cls, d) != NULL)
        ere_put(e, ere[strchr(cls, d) - cls]);
    else if (d == 'b' || d == 'B')
        ere_put(e, d == 'b' ? "\\b" : "\\B");
    else if (ch != '\0')
        ere_literal(e, ch);
    else if (d >= '0' && d <= '9')
        e->why = "backreferences are not supported";
    else if (is_alnum(d))
        e->why = "it uses an escape POSIX regular expressions lack (\\u, \\p, \\k, ...)";
    else
        ere_literal(e, d);
    ere_atom(e, 1);
    return i + len;
}

/* Translates one member of a bracket expression at p[i]; returns its length. */
static size_t ere_bracket_member(ere_t *e, const char *p, size_t i)
{
    static const char cls[] = "dws";
    static const char *const member[] = {"0-9", "A-Za-z0-9_", "[:space:]"};
    size_t len = 1;
    char d = p[i + 1], ch;
    if (p[i] == '[' && d != '\0' && strchr(":.=", d) != NULL) { /* [:alpha:] [.a.] [=a=] */
        char close[3] = {d, ']', '\0'};
        const char *end = strstr(p + i + 2, close);
        if (end == NULL) {
            e->why = "a [: is not closed";
            return 1;
        }
        len = (size_t)(end + 2 - (p + i));
        ere_add(e, p + i, len);
    } else if (p[i] != '\\') {
        ere_add(e, p + i, 1);
    } else if (d != '\0' && strchr(cls, d) != NULL) {
        ere_put(e, member[strchr(cls, d) - cls]);
        len = 2;
    } else if ((ch = control_escape(p, i, &len)) != '\0' || d == 'b') {
        ere_member(e, d == 'b' ? '\b' : ch); /* [\b] is a backspace in ECMA-262 */
    } else if (d == '\0' || is_alnum(d)) {
        e->why = "it uses an escape inside [...] POSIX regular expressions lack";
    } else {
        ere_member(e, d);
        len = 2;
    }
    return len;
}

/* Translates the bracket expression at p[i] == '['; returns the index after it. */
static size_t ere_bracket(ere_t *e, const char *p, size_t i)
{
    ere_put(e, "[");
    i++;
    if (p[i] == '^') {
        ere_put(e, "^");
        i++;
    }
    if (p[i] == ']')
        e->why = "it has an empty character class []";
    while (e->why == NULL && p[i] != ']') {
        if (p[i] == '\0')
            e->why = "a [ is not closed";
        else
            i += ere_bracket_member(e, p, i);
    }
    ere_put(e, "]");
    ere_atom(e, 1);
    return i + 1;
}

static int64_t count_digits(const char *p, size_t *j)
{
    int64_t n = -1;
    for (; p[*j] >= '0' && p[*j] <= '9'; (*j)++)
        n = n > 99999 ? n : (n < 0 ? 0 : n) * 10 + (p[*j] - '0');
    return n;
}

/* The counted repetition {n}, {n,} or {n,m} at p[i]: its length (0 when p[i] starts none:
 * ECMA then reads '{' as a literal) and the copies regcomp will make of the atom. */
static size_t ere_count(const char *p, size_t i, int64_t *copies)
{
    size_t j = i + 1;
    int64_t lo = count_digits(p, &j), hi = -1;
    if (lo < 0)
        return 0;
    if (p[j] == ',') {
        j++;
        hi = count_digits(p, &j);
    }
    if (p[j] != '}')
        return 0;
    *copies = (hi > lo ? hi : lo) + 1;
    return j + 1 - i;
}

/* Opens or closes a group at p[*i]; (?: opens a plain group (nothing is captured under
 * REG_NOSUB), other (? forms are lookaround or named groups, which ERE lacks. */
static void ere_group(ere_t *e, const char *p, size_t *i)
{
    if (p[*i] == ')') {
        if (e->depth == 0) {
            e->why = "a ) has no (";
            return;
        }
        int64_t cost = e->sum[e->depth--];
        ere_put(e, ")");
        ere_atom(e, cost);
        return;
    }
    if (p[*i + 1] == '?' && p[*i + 2] == ':')
        *i += 2;
    else if (p[*i + 1] == '?')
        e->why = "lookaround and named groups are not supported";
    if (e->depth == PATTERN_MAX_GROUPS && e->why == NULL)
        e->why = "groups are nested too deeply";
    if (e->why != NULL)
        return;
    e->sum[++e->depth] = 0;
    e->last = 0;
    ere_put(e, "(");
}

static void ere_quantifier(ere_t *e, int64_t copies)
{
    if (copies > PATTERN_MAX_REPEAT + 1) {
        e->why = "a repetition count is above 1000";
        return;
    }
    e->sum[e->depth] -= e->last;
    ere_atom(e, e->last * copies);
}

/* Translates the NUL-terminated ECMA pattern p into e->out; e->why says why it cannot. */
static void ecma_to_ere(ere_t *e, const char *p)
{
    size_t i = 0, len;
    int64_t copies;
    while (e->why == NULL && p[i] != '\0') {
        char c = p[i];
        if (c == '\\') {
            i = ere_escape(e, p, i);
        } else if (c == '[') {
            i = ere_bracket(e, p, i);
        } else if (c == '(' || c == ')') {
            ere_group(e, p, &i);
            i++;
        } else if (c == '{' && (len = ere_count(p, i, &copies)) > 0) {
            ere_add(e, p + i, len);
            ere_quantifier(e, copies);
            i += len;
        } else if (c == '+' || c == '*' || c == '?' || c == '|') {
            ere_add(e, p + i, 1);
            if (c == '+') /* regcomp expands a+ to aa* */
                ere_quantifier(e, 2);
            i++;
        } else {
            if (c == '{' || c == '}') /* not a count: a literal brace, as ECMA reads it */
                ere_literal(e, c);
            else
                ere_add(e, p + i, 1);
            ere_atom(e, 1);
            i++;
        }
    }
    if (e->why == NULL && e->depth != 0)
        e->why = "a ( is not closed";
}

static mesh_status_t compile_pattern(vctx_t *v, const mesh_yaml_node_t *x, mesh_column_t *col)
{
    if (x->len > PATTERN_MAX_BYTES)
        return verr(v, "pattern", x, "pattern is longer than %d bytes", PATTERN_MAX_BYTES);
    ere_t e = {.depth = 0};
    mesh_buf_init(&e.out, PATTERN_MAX_BYTES * 16);
    ecma_to_ere(&e, x->text);
    if (e.why != NULL) {
        mesh_buf_free(&e.out);
        return verr(v, "pattern", x, "pattern '%s' is not supported: %s", show(x->text).s, e.why);
    }
    regex_t *re = malloc(sizeof *re);
    if (re == NULL) {
        mesh_buf_free(&e.out);
        return nomem(v);
    }
    int rc = regcomp(re, e.out.data ? e.out.data : "", REG_EXTENDED | REG_NOSUB);
    mesh_buf_free(&e.out);
    if (rc != 0) {
        char why[128];
        regerror(rc, re, why, sizeof why);
        free(re);
        return verr(v, "pattern", x, "pattern '%s' does not compile: %s", show(x->text).s, why);
    }
    col->pattern_re = re;
    return dup_text(v, x, &col->pattern);
}

mesh_status_t mesh_pattern_compile(const char *ecma, void **out, char *why, size_t cap)
{
    *out = NULL;
    if (strlen(ecma) > PATTERN_MAX_BYTES) {
        snprintf(why, cap, "pattern is longer than %d bytes", PATTERN_MAX_BYTES);
        return MESH_INVALID;
    }
    ere_t e = {.depth = 0};
    mesh_buf_init(&e.out, PATTERN_MAX_BYTES * 16);
    ecma_to_ere(&e, ecma);
    if (e.why != NULL) {
        snprintf(why, cap, "not supported: %s", e.why);
        mesh_buf_free(&e.out);
        return MESH_INVALID;
    }
    regex_t *re = malloc(sizeof *re);
    if (re == NULL) {
        mesh_buf_free(&e.out);
        snprintf(why, cap, "out of memory");
        return MESH_NOMEM;
    }
    int rc = regcomp(re, e.out.data ? e.out.data : "", REG_EXTENDED | REG_NOSUB);
    mesh_buf_free(&e.out);
    if (rc != 0) {
        char r[128];
        regerror(rc, re, r, sizeof r);
        snprintf(why, cap, "does not compile: %s", r);
        free(re);
        return MESH_INVALID;
    }
    *out = re;
    return MESH_OK;
}

void mesh_pattern_free(void *re)
{
    if (re != NULL) {
        regfree(re);
        free(re);
    }
}

/* ---- columns (ODCS properties) ---------------------------------------------------------- */

static const struct {
    const char *name;
    mesh_format_t fmt;
} string_formats[] = {
    {"email", MESH_FMT_EMAIL},       {"uuid", MESH_FMT_UUID},  {"uri", MESH_FMT_URI},
    {"hostname", MESH_FMT_HOSTNAME}, {"ipv4", MESH_FMT_IPV4},  {"ipv6", MESH_FMT_IPV6},
    {"password", MESH_FMT_OTHER},    {"byte", MESH_FMT_OTHER}, {"binary", MESH_FMT_OTHER},
};

/* logicalTypeOptions.format: checked for strings; kept unchecked (MESH_FMT_OTHER) for the
 * other types, whose formats (Rust int types, DateTimeFormatter patterns) meshd does not use. */
static mesh_status_t format_option(vctx_t *v, const mesh_yaml_node_t *x, mesh_column_t *col)
{
    if (x == NULL)
        return MESH_OK;
    col->fmt = MESH_FMT_OTHER;
    if (col->type == MESH_LT_STRING) {
        size_t i = 0;
        while (i < MESH_ARRAY_LEN(string_formats) && strcmp(x->text, string_formats[i].name) != 0)
            i++;
        if (i == MESH_ARRAY_LEN(string_formats))
            return verr(v, "format", x,
                        "unknown string format '%s'; expected one of email, uuid, uri, hostname, "
                        "ipv4, ipv6, password, byte, binary",
                        show(x->text).s);
        col->fmt = string_formats[i].fmt;
    }
    return dup_text(v, x, &col->format);
}

static mesh_status_t parse_options(vctx_t *v, const mesh_yaml_node_t *m, mesh_column_t *col)
{
    size_t nspec;
    const keyspec_t *spec = lto_spec(col->type, &nspec);
    size_t old = ypath_key(&v->path, "logicalTypeOptions");
    /* an option of another type is refused here, with a clearer message than check_keys's */
    for (size_t i = 0; i + 1 < m->nkids; i += 2) {
        const mesh_yaml_node_t *k = m->kids[i];
        if (find_spec(spec, nspec, k->text) != NULL)
            continue;
        char list[200];
        spec_list(spec, nspec, list, sizeof list);
        return verr(v, k->text, k, "option '%s' is not valid for logicalType %s (valid: %s)",
                    show(k->text).s, ltype_names[col->type], nspec ? list : "none");
    }
    int64_t lo, hi;
    mesh_status_t st = check_keys(v, m, spec, nspec, NULL);
    if (st == MESH_OK && col->type == MESH_LT_STRING)
        st = int_range(v, m, "minLength", "maxLength", &col->min_len, &col->max_len);
    else if (st == MESH_OK && col->type == MESH_LT_ARRAY)
        st = int_range(v, m, "minItems", "maxItems", &lo, &hi);
    else if (st == MESH_OK && col->type == MESH_LT_OBJECT)
        st = int_range(v, m, "minProperties", "maxProperties", &lo, &hi);
    else if (st == MESH_OK && (col->type == MESH_LT_INTEGER || col->type == MESH_LT_NUMBER))
        st = number_options(v, m, col);
    if (st == MESH_OK && col->type == MESH_LT_STRING && map_get(m, "pattern") != NULL)
        st = compile_pattern(v, map_get(m, "pattern"), col);
    if (st == MESH_OK)
        st = format_option(v, map_get(m, "format"), col);
    if (st == MESH_OK)
        ypath_pop(&v->path, old);
    return st;
}

/* customProperties meshd understands on a property: unit (text), enum (values as text). */
static mesh_status_t column_settings(vctx_t *v, const mesh_yaml_node_t *custom, mesh_column_t *col)
{
    const mesh_yaml_node_t *x;
    size_t i = 0;
    mesh_status_t st = custom_find(v, custom, "unit", &x, &i);
    if (st != MESH_OK)
        return st;
    if (x != NULL && !is_str(x))
        return custom_err(v, i, x, "unit must be a string, got %s", describe(x));
    if (x != NULL && (st = dup_text(v, x, &col->unit)) != MESH_OK)
        return st;
    if ((st = custom_find(v, custom, "enum", &x, &i)) != MESH_OK || x == NULL)
        return st;
    if (x->kind != YN_SEQ || x->nkids == 0)
        return custom_err(v, i, x, "enum must be a non-empty sequence of values, got %s",
                          describe(x));
    for (size_t k = 0; k < x->nkids; k++)
        if (x->kids[k]->kind != YN_SCALAR || x->kids[k]->st == YS_NULL)
            return custom_err(v, i, x->kids[k], "enum values must be scalars (not null), got %s",
                              describe(x->kids[k]));
    return dup_list(v, x, &col->enum_values, &col->n_enum);
}

static const keyspec_t prop_keys[] = {
    {"name", SH_STR},
    {"logicalType", SH_STR},
    {"physicalType", SH_STR},
    {"physicalName", SH_STR},
    {"description", SH_STR},
    {"businessName", SH_STR},
    {"required", SH_BOOL},
    {"primaryKey", SH_BOOL},
    {"primaryKeyPosition", SH_INT},
    {"unique", SH_BOOL},
    {"partitioned", SH_BOOL},
    {"partitionKeyPosition", SH_INT},
    {"classification", SH_STR},
    {"encryptedName", SH_STR},
    {"transformSourceObjects", SH_SEQ_STR},
    {"transformLogic", SH_STR},
    {"transformDescription", SH_STR},
    {"examples", SH_SEQ},
    {"criticalDataElement", SH_BOOL},
    {"items", SH_MAP},
    {"relationships", SH_SEQ_MAP},
    {"quality", SH_SEQ_MAP},
    {"tags", SH_SEQ_STR},
    {"customProperties", SH_SEQ_MAP},
    {"authoritativeDefinitions", SH_SEQ_MAP},
    {"id", SH_STR},
    {"logicalTypeOptions", SH_MAP},
};

/* Fills col from the property mapping m. pk_position holds the declared primaryKeyPosition
 * (0 when none) until derive_key ranks the key. */
static mesh_status_t parse_column(vctx_t *v, const mesh_yaml_node_t *m, mesh_column_t *col)
{
    const mesh_yaml_node_t *name, *lt, *x;
    int64_t pos = 0;
    col->min_len = col->max_len = -1;
    mesh_status_t st = check_keys(v, m, prop_keys, MESH_ARRAY_LEN(prop_keys),
                                  "units and enums go under customProperties");
    if (st != MESH_OK)
        return st;
    if ((name = need(v, m, "name")) == NULL || (lt = need(v, m, "logicalType")) == NULL)
        return MESH_INVALID;
    if (!mesh_name_column_ok(name->text))
        return verr(v, "name", name,
                    "'%s' is not a valid column name (letters, digits and _, not starting with a "
                    "digit, at most 63 bytes)",
                    show(name->text).s);
    if (!ltype_from(lt->text, &col->type))
        return verr(v, "logicalType", lt,
                    "unknown logical type '%s'; expected one of string, integer, number, boolean, "
                    "timestamp, date, time, object, array",
                    show(lt->text).s);
    if ((x = map_get(m, "primaryKeyPosition")) != NULL &&
        (!int_value(x, &pos) || pos == 0 || pos < -1 || pos > INT_MAX))
        return verr(v, "primaryKeyPosition", x, "must be -1 (none) or a position from 1");
    col->pk_position = pos > 0 ? (int)pos : 0;
    col->required = bool_true(map_get(m, "required"));
    col->primary_key = bool_true(map_get(m, "primaryKey"));
    col->unique = bool_true(map_get(m, "unique"));
    if (col->primary_key) /* a key column cannot be NULL */
        col->required = true;
    const mesh_yaml_node_t *custom = map_get(m, "customProperties");
    if ((st = dup_key(v, m, "name", &col->name)) != MESH_OK ||
        (st = dup_key(v, m, "description", &col->description)) != MESH_OK ||
        (st = dup_key(v, m, "classification", &col->classification)) != MESH_OK ||
        (st = dup_list(v, map_get(m, "tags"), &col->tags, &col->n_tags)) != MESH_OK)
        return st;
    if ((x = map_get(m, "logicalTypeOptions")) != NULL &&
        (st = parse_options(v, x, col)) != MESH_OK)
        return st;
    if ((st = check_custom(v, custom)) != MESH_OK)
        return st;
    return column_settings(v, custom, col);
}

static mesh_status_t parse_columns(vctx_t *v, const mesh_yaml_node_t *seq, mesh_product_t *p)
{
    if (seq->nkids == 0)
        return verr(v, "properties", seq, "a schema object needs at least one property");
    if (seq->nkids > MESH_CONTRACT_MAX_COLUMNS)
        return verr(v, "properties", seq, "%zu properties is more than the limit of %d", seq->nkids,
                    MESH_CONTRACT_MAX_COLUMNS);
    p->cols = calloc(seq->nkids, sizeof *p->cols);
    if (p->cols == NULL)
        return nomem(v);
    p->ncols = seq->nkids;
    size_t old = ypath_key(&v->path, "properties");
    for (size_t i = 0; i < seq->nkids; i++) {
        size_t at = ypath_idx(&v->path, i);
        mesh_status_t st = parse_column(v, seq->kids[i], &p->cols[i]);
        if (st != MESH_OK)
            return st;
        /* SQL names ignore case, so Temp and temp would be one column of the domain table */
        for (size_t j = 0; j < i; j++)
            if (strcasecmp(p->cols[j].name, p->cols[i].name) == 0)
                return verr(v, "name", map_get(seq->kids[i], "name"),
                            "duplicate column '%s' (also properties[%zu]; names ignore case)",
                            p->cols[i].name, j);
        ypath_pop(&v->path, at);
    }
    ypath_pop(&v->path, old);
    return MESH_OK;
}

/* ---- quality rules ---------------------------------------------------------------------- */

static const char *const qmetric_names[] = {"nullValues",      "missingValues", "invalidValues",
                                            "duplicateValues", "rowCount",      "sql"};
static const char *const qop_names[] = {
    "mustBe",         "mustNotBe",           "mustBeGreaterThan", "mustBeGreaterOrEqualTo",
    "mustBeLessThan", "mustBeLessOrEqualTo", "mustBeBetween",     "mustNotBeBetween"};

const char *mesh_qmetric_name(mesh_qmetric_t m)
{
    return (unsigned)m < MESH_ARRAY_LEN(qmetric_names) ? qmetric_names[m] : "?";
}

const char *mesh_qop_name(mesh_qop_t op)
{
    return (unsigned)op < MESH_ARRAY_LEN(qop_names) ? qop_names[op] : "?";
}

bool mesh_quality_pass(const mesh_quality_rule_t *r, double x)
{
    switch (r->op) {
    case MESH_QOP_EQ:
        return x == r->a;
    case MESH_QOP_NE:
        return x != r->a;
    case MESH_QOP_GT:
        return x > r->a;
    case MESH_QOP_GE:
        return x >= r->a;
    case MESH_QOP_LT:
        return x < r->a;
    case MESH_QOP_LE:
        return x <= r->a;
    case MESH_QOP_IN:
        return x >= r->a && x <= r->b;
    case MESH_QOP_OUT:
        return x < r->a || x > r->b;
    }
    return false;
}

static const keyspec_t quality_keys[] = {
    {"id", SH_STR},
    {"name", SH_STR},
    {"type", SH_STR},
    {"metric", SH_STR},
    {"rule", SH_STR}, /* the 3.0 spelling of metric */
    {"description", SH_STR},
    {"dimension", SH_STR},
    {"severity", SH_STR},
    {"businessImpact", SH_STR},
    {"method", SH_STR},
    {"unit", SH_STR},
    {"arguments", SH_MAP},
    {"validValues", SH_SEQ}, /* 3.0 placed arguments beside the operator */
    {"query", SH_STR},
    {"engine", SH_STR},
    {"implementation", SH_ANY},
    {"schedule", SH_STR},
    {"scheduler", SH_STR},
    {"tags", SH_SEQ_STR},
    {"authoritativeDefinitions", SH_SEQ_MAP},
    {"customProperties", SH_SEQ_MAP},
    {"mustBe", SH_NUM},
    {"mustNotBe", SH_NUM},
    {"mustBeGreaterThan", SH_NUM},
    {"mustBeGreaterOrEqualTo", SH_NUM},
    {"mustBeGreaterThanOrEqualTo", SH_NUM},
    {"mustBeLessThan", SH_NUM},
    {"mustBeLessOrEqualTo", SH_NUM},
    {"mustBeLessThanOrEqualTo", SH_NUM},
    {"mustBeBetween", SH_SEQ},
    {"mustNotBeBetween", SH_SEQ},
};

static const keyspec_t quality_arg_keys[] = {
    {"missingValues", SH_SEQ},
    {"validValues", SH_SEQ},
    {"pattern", SH_STR},
    {"properties", SH_SEQ_STR},
};

static void quality_rule_free(mesh_quality_rule_t *r)
{
    free(r->name);
    free(r->description);
    free(r->dimension);
    free(r->severity);
    strs_free(r->values, r->nvalues);
    free(r->pattern);
    free(r->cols);
    free(r->query);
}

/* The operator of rule m: exactly one of the must* keys. */
static mesh_status_t quality_op(vctx_t *v, const mesh_yaml_node_t *m, mesh_quality_rule_t *r)
{
    static const struct {
        const char *key;
        mesh_qop_t op;
    } ops[] = {{"mustBe", MESH_QOP_EQ},
               {"mustNotBe", MESH_QOP_NE},
               {"mustBeGreaterThan", MESH_QOP_GT},
               {"mustBeGreaterOrEqualTo", MESH_QOP_GE},
               {"mustBeGreaterThanOrEqualTo", MESH_QOP_GE},
               {"mustBeLessThan", MESH_QOP_LT},
               {"mustBeLessOrEqualTo", MESH_QOP_LE},
               {"mustBeLessThanOrEqualTo", MESH_QOP_LE},
               {"mustBeBetween", MESH_QOP_IN},
               {"mustNotBeBetween", MESH_QOP_OUT}};
    const mesh_yaml_node_t *found = NULL;
    const char *fkey = NULL;
    for (size_t i = 0; i < MESH_ARRAY_LEN(ops); i++) {
        const mesh_yaml_node_t *x = map_get(m, ops[i].key);
        if (x == NULL)
            continue;
        if (found != NULL)
            return verr(v, ops[i].key, x, "a rule has one operator; %s is given too", fkey);
        found = x;
        fkey = ops[i].key;
        r->op = ops[i].op;
    }
    if (found == NULL)
        return verr(v, NULL, m,
                    "the rule needs an operator: mustBe, mustNotBe, mustBeGreaterThan, "
                    "mustBeGreaterOrEqualTo, mustBeLessThan, mustBeLessOrEqualTo, "
                    "mustBeBetween or mustNotBeBetween");
    if (r->op == MESH_QOP_IN || r->op == MESH_QOP_OUT) {
        if (found->nkids != 2 || !num_value(found->kids[0], &r->a) ||
            !num_value(found->kids[1], &r->b))
            return verr(v, fkey, found, "expected two numbers [low, high]");
        if (r->a > r->b)
            return verr(v, fkey, found, "the low bound %g is above the high bound %g", r->a, r->b);
        return MESH_OK;
    }
    num_value(found, &r->a);
    return MESH_OK;
}

/* The arguments of a library rule (and the 3.0 validValues beside the operator). */
static mesh_status_t quality_args(vctx_t *v, const mesh_yaml_node_t *m, const mesh_product_t *p,
                                  mesh_quality_rule_t *r)
{
    const mesh_yaml_node_t *args = map_get(m, "arguments"), *x;
    mesh_status_t st;
    if (args != NULL) {
        size_t old = ypath_key(&v->path, "arguments");
        st = check_keys(v, args, quality_arg_keys, MESH_ARRAY_LEN(quality_arg_keys), NULL);
        if (st != MESH_OK)
            return st;
        ypath_pop(&v->path, old);
    }
    const mesh_yaml_node_t *missing = args ? map_get(args, "missingValues") : NULL;
    const mesh_yaml_node_t *valid = args ? map_get(args, "validValues") : NULL;
    const mesh_yaml_node_t *pattern = args ? map_get(args, "pattern") : NULL;
    const mesh_yaml_node_t *props = args ? map_get(args, "properties") : NULL;
    if (valid == NULL)
        valid = map_get(m, "validValues");
    if (missing && r->metric != MESH_QM_MISSING_VALUES)
        return verr(v, "arguments", args, "missingValues is an argument of missingValues only");
    if ((valid || pattern) && r->metric != MESH_QM_INVALID_VALUES)
        return verr(v, "arguments", args ? args : m,
                    "validValues and pattern are arguments of invalidValues only");
    if (props && r->metric != MESH_QM_DUPLICATE_VALUES)
        return verr(v, "arguments", args, "properties is an argument of duplicateValues only");
    const mesh_yaml_node_t *list = missing ? missing : valid;
    if (list != NULL) {
        if (list->nkids > 1000)
            return verr(v, "arguments", list, "at most 1000 values");
        r->values = calloc(list->nkids ? list->nkids : 1, sizeof *r->values);
        if (r->values == NULL)
            return nomem(v);
        for (size_t i = 0; i < list->nkids; i++) {
            x = list->kids[i];
            if (x->kind != YN_SCALAR)
                return verr(v, "arguments", x, "a value is a scalar, got %s", describe(x));
            if (x->st == YS_NULL) {
                if (missing)
                    r->null_missing = true;
                continue;
            }
            if ((r->values[r->nvalues] = mesh_strndup(x->text, x->len)) == NULL)
                return nomem(v);
            r->nvalues++;
        }
    } else if (r->metric == MESH_QM_MISSING_VALUES) {
        /* the default: null and the empty string */
        r->null_missing = true;
        r->values = calloc(1, sizeof *r->values);
        if (r->values == NULL || (r->values[0] = mesh_strdup("")) == NULL)
            return nomem(v);
        r->nvalues = 1;
    }
    if (r->metric == MESH_QM_INVALID_VALUES && valid == NULL && pattern == NULL)
        return verr(v, NULL, m, "invalidValues needs arguments: validValues or pattern");
    if (pattern != NULL) {
        void *re = NULL;
        char why[256];
        if (mesh_pattern_compile(pattern->text, &re, why, sizeof why) != MESH_OK)
            return verr(v, "arguments", pattern, "pattern '%s': %s", show(pattern->text).s, why);
        mesh_pattern_free(re); /* checked here; the query compiles it where it runs */
        if ((st = dup_text(v, pattern, &r->pattern)) != MESH_OK)
            return st;
    }
    if (props != NULL) {
        if (r->col >= 0)
            return verr(v, "arguments", props,
                        "properties is for a rule on the schema object, not on a property");
        if (props->nkids == 0 || props->nkids > 32)
            return verr(v, "arguments", props, "1 to 32 properties");
        if ((r->cols = calloc(props->nkids, sizeof *r->cols)) == NULL)
            return nomem(v);
        for (size_t i = 0; i < props->nkids; i++) {
            int c = mesh_product_col(p, props->kids[i]->text, props->kids[i]->len);
            if (c < 0)
                return verr(v, "arguments", props->kids[i], "'%s' is not a property of %s",
                            show(props->kids[i]->text).s, p->name);
            r->cols[r->ncols++] = c;
        }
    }
    return MESH_OK;
}

/* One rule of a quality list; *skip when it is text or custom (kept, not run). */
static mesh_status_t parse_quality_rule(vctx_t *v, const mesh_yaml_node_t *m,
                                        const mesh_product_t *p, int col, mesh_quality_rule_t *r,
                                        bool *skip)
{
    *skip = false;
    r->col = col;
    mesh_status_t st = check_keys(v, m, quality_keys, MESH_ARRAY_LEN(quality_keys), NULL);
    if (st != MESH_OK)
        return st;
    const mesh_yaml_node_t *type = map_get(m, "type"), *metric = map_get(m, "metric"), *x;
    if (metric == NULL)
        metric = map_get(m, "rule");
    const char *t = type ? type->text : metric ? "library" : NULL;
    if (t == NULL)
        return verr(v, NULL, m, "a rule needs a type (library, sql, text or custom) or a metric");
    if (strcmp(t, "text") == 0 || strcmp(t, "custom") == 0) {
        *skip = true;
        return MESH_OK;
    }
    if (strcmp(t, "sql") == 0) {
        r->metric = MESH_QM_SQL;
        if ((x = need(v, m, "query")) == NULL)
            return MESH_INVALID;
        if (x->len == 0 || x->len > MESH_QUALITY_MAX_SQL)
            return verr(v, "query", x, "a query of 1 to %d bytes", MESH_QUALITY_MAX_SQL);
        if ((st = dup_text(v, x, &r->query)) != MESH_OK)
            return st;
    } else if (strcmp(t, "library") == 0) {
        if (metric == NULL)
            return verr(v, NULL, m, "a library rule needs a metric");
        size_t i = 0;
        while (i < MESH_QM_SQL && strcmp(metric->text, qmetric_names[i]) != 0)
            i++;
        if (i == MESH_QM_SQL)
            return verr(v, metric == map_get(m, "metric") ? "metric" : "rule", metric,
                        "unknown metric '%s'; expected one of nullValues, missingValues, "
                        "invalidValues, duplicateValues, rowCount",
                        show(metric->text).s);
        r->metric = (mesh_qmetric_t)i;
        bool column_metric =
            r->metric != MESH_QM_ROW_COUNT && r->metric != MESH_QM_DUPLICATE_VALUES;
        if (column_metric && col < 0)
            return verr(v, "metric", metric, "%s is a metric of a property: put the rule under it",
                        metric->text);
        if (r->metric == MESH_QM_ROW_COUNT && col >= 0)
            return verr(v, "metric", metric,
                        "rowCount is a metric of the schema object, not of a property");
    } else {
        return verr(v, "type", type,
                    "unknown rule type '%s'; expected library, sql, text or custom", show(t).s);
    }
    if ((x = map_get(m, "unit")) != NULL) {
        if (strcmp(x->text, "percent") == 0)
            r->percent = true;
        else if (strcmp(x->text, "rows") != 0)
            return verr(v, "unit", x, "unit must be rows or percent");
        if (r->percent && (r->metric == MESH_QM_ROW_COUNT || r->metric == MESH_QM_SQL))
            return verr(v, "unit", x, "percent is not a unit of %s", qmetric_names[r->metric]);
    }
    if ((st = quality_op(v, m, r)) != MESH_OK)
        return st;
    if (r->metric != MESH_QM_SQL && (st = quality_args(v, m, p, r)) != MESH_OK)
        return st;
    if ((st = dup_key(v, m, "description", &r->description)) != MESH_OK ||
        (st = dup_key(v, m, "dimension", &r->dimension)) != MESH_OK ||
        (st = dup_key(v, m, "severity", &r->severity)) != MESH_OK)
        return st;
    const mesh_yaml_node_t *nm = map_get(m, "id");
    if (nm == NULL)
        nm = map_get(m, "name");
    char gen[160];
    if (nm != NULL && nm->len > 0 && nm->len < 128)
        snprintf(gen, sizeof gen, "%s", nm->text);
    else if (col >= 0)
        snprintf(gen, sizeof gen, "%s.%s", p->cols[col].name, qmetric_names[r->metric]);
    else
        snprintf(gen, sizeof gen, "%s", qmetric_names[r->metric]);
    return (r->name = mesh_strdup(gen)) ? MESH_OK : nomem(v);
}

/* Appends the executable rules of the list seq (on property col, or -1) to p->quality. */
static mesh_status_t parse_quality(vctx_t *v, const mesh_yaml_node_t *seq, mesh_product_t *p,
                                   int col)
{
    if (seq == NULL)
        return MESH_OK;
    size_t old = ypath_key(&v->path, "quality");
    for (size_t i = 0; i < seq->nkids; i++) {
        if (p->nquality >= MESH_QUALITY_MAX_RULES)
            return verr(v, NULL, seq->kids[i], "more than %d quality rules in one schema object",
                        MESH_QUALITY_MAX_RULES);
        if (p->quality == NULL &&
            (p->quality = calloc(MESH_QUALITY_MAX_RULES, sizeof *p->quality)) == NULL)
            return nomem(v);
        size_t at = ypath_idx(&v->path, i);
        bool skip;
        mesh_quality_rule_t *r = &p->quality[p->nquality];
        mesh_status_t st = parse_quality_rule(v, seq->kids[i], p, col, r, &skip);
        if (st != MESH_OK) {
            quality_rule_free(r);
            memset(r, 0, sizeof *r);
            return st;
        }
        if (!skip) {
            for (size_t j = 0; j < p->nquality; j++)
                if (strcmp(p->quality[j].name, r->name) == 0) {
                    st = verr(v, NULL, seq->kids[i], "duplicate quality rule name '%s'", r->name);
                    quality_rule_free(r);
                    memset(r, 0, sizeof *r);
                    return st;
                }
            p->nquality++;
        }
        ypath_pop(&v->path, at);
    }
    ypath_pop(&v->path, old);
    return MESH_OK;
}

/* The quality lists of the schema object m and of each of its properties. */
static mesh_status_t parse_object_quality(vctx_t *v, const mesh_yaml_node_t *m, mesh_product_t *p)
{
    mesh_status_t st = parse_quality(v, map_get(m, "quality"), p, -1);
    const mesh_yaml_node_t *props = map_get(m, "properties");
    size_t old = ypath_key(&v->path, "properties");
    for (size_t i = 0; st == MESH_OK && props && i < props->nkids; i++) {
        size_t at = ypath_idx(&v->path, i);
        st = parse_quality(v, map_get(props->kids[i], "quality"), p, (int)i);
        ypath_pop(&v->path, at);
    }
    ypath_pop(&v->path, old);
    return st;
}

/* ---- schema objects (products) ---------------------------------------------------------- */

/* customProperties meshd understands on a schema object: onInvalid and timeColumn; without a
 * timeColumn the first timestamp property is the time column. */
static mesh_status_t object_settings(vctx_t *v, const mesh_yaml_node_t *custom, mesh_product_t *p)
{
    const mesh_yaml_node_t *x;
    size_t i = 0;
    mesh_status_t st = custom_find(v, custom, "onInvalid", &x, &i);
    if (st != MESH_OK)
        return st;
    if (x != NULL && is_str(x) && strcmp(x->text, "quarantine") == 0)
        p->on_invalid = MESH_ON_INVALID_QUARANTINE;
    else if (x != NULL && !(is_str(x) && strcmp(x->text, "reject") == 0))
        return custom_err(v, i, x, "onInvalid must be reject or quarantine");
    if ((st = custom_find(v, custom, "timeColumn", &x, &i)) != MESH_OK)
        return st;
    if (x == NULL) {
        for (size_t c = 0; c < p->ncols && p->time_col < 0; c++)
            if (p->cols[c].type == MESH_LT_TIMESTAMP)
                p->time_col = (int)c;
        return MESH_OK;
    }
    if (!is_str(x))
        return custom_err(v, i, x, "timeColumn must name a property, got %s", describe(x));
    int c = mesh_product_col(p, x->text, x->len);
    if (c < 0)
        return custom_err(v, i, x, "timeColumn '%s' is not a property of %s", show(x->text).s,
                          p->name);
    if (p->cols[c].type != MESH_LT_TIMESTAMP)
        return custom_err(v, i, x, "timeColumn '%s' has logicalType %s; it must be timestamp",
                          p->cols[c].name, ltype_names[p->cols[c].type]);
    p->time_col = c;
    return MESH_OK;
}

/* Governance settings of a schema object (docs/governance.md): retention (a duration),
 * residency (local | any), egress (any | aggregates-only), minGroupSize, privacyUnit. */
static mesh_status_t governance_settings(vctx_t *v, const mesh_yaml_node_t *custom,
                                         mesh_product_t *p)
{
    const mesh_yaml_node_t *x;
    size_t i = 0;
    mesh_status_t st = custom_find(v, custom, "retention", &x, &i);
    if (st != MESH_OK)
        return st;
    if (x != NULL && (!is_str(x) || mesh_duration_parse(x->text, &p->retention_ns) != MESH_OK ||
                      p->retention_ns <= 0))
        return custom_err(v, i, x, "retention must be a duration such as 30d or 12h");
    if (p->retention_ns > 0 && p->time_col < 0)
        return custom_err(v, i, x, "retention needs a time column (a timestamp property)");
    if ((st = custom_find(v, custom, "residency", &x, &i)) != MESH_OK)
        return st;
    if (x != NULL && is_str(x) && strcmp(x->text, "local") == 0)
        p->residency_local = true;
    else if (x != NULL && !(is_str(x) && strcmp(x->text, "any") == 0))
        return custom_err(v, i, x, "residency must be local or any");
    if ((st = custom_find(v, custom, "egress", &x, &i)) != MESH_OK)
        return st;
    const mesh_yaml_node_t *egress = x;
    size_t egress_i = i;
    if (x != NULL && is_str(x) && strcmp(x->text, "aggregates-only") == 0)
        p->egress_aggregates = true;
    else if (x != NULL && !(is_str(x) && strcmp(x->text, "any") == 0))
        return custom_err(v, i, x, "egress must be any or aggregates-only");
    if ((st = custom_find(v, custom, "minGroupSize", &x, &i)) != MESH_OK)
        return st;
    if (x != NULL) {
        int64_t k;
        if (mesh_parse_i64(x->text, x->len, &k) != MESH_OK || k < 2 || k > 1000000)
            return custom_err(v, i, x, "minGroupSize must be an integer from 2 to 1000000");
        p->egress_k = (int)k;
    }
    if ((st = custom_find(v, custom, "privacyUnit", &x, &i)) != MESH_OK)
        return st;
    if (x != NULL) {
        int c = is_str(x) ? mesh_product_col(p, x->text, x->len) : -1;
        if (c < 0)
            return custom_err(v, i, x, "privacyUnit must name a property of %s", p->name);
        p->privacy_unit_col = c;
    }
    if (p->egress_aggregates && p->privacy_unit_col < 0)
        return custom_err(v, egress_i, egress,
                          "egress aggregates-only needs a privacyUnit (the column that names "
                          "one person or subject, e.g. patient_id)");
    return MESH_OK;
}

/* A list of column names (a sequence of strings, 1..MESH_DERIVE_MAX_COLS, each a column name). */
static mesh_status_t derive_names(vctx_t *v, size_t ci, const mesh_yaml_node_t *seq,
                                  const char *what, char ***out, size_t *n)
{
    if (seq->kind != YN_SEQ || seq->nkids == 0 || seq->nkids > MESH_DERIVE_MAX_COLS)
        return custom_err(v, ci, seq, "derivation: %s must be a list of 1 to %d column names", what,
                          MESH_DERIVE_MAX_COLS);
    for (size_t i = 0; i < seq->nkids; i++)
        if (!is_str(seq->kids[i]) || !mesh_name_column_ok(seq->kids[i]->text))
            return custom_err(v, ci, seq->kids[i], "derivation: %s[%zu] is not a column name", what,
                              i);
    return dup_list(v, seq, out, n);
}

/* A principal's name as a definer: printable ASCII without spaces. */
static bool printable_name(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

/* customProperties `derivation`: what a derived product is made from. Its columns are checked
 * against the sources when the contract is applied (derive/derive.c). */
static mesh_status_t derivation_setting(vctx_t *v, const mesh_yaml_node_t *custom,
                                        mesh_product_t *p)
{
    const mesh_yaml_node_t *x, *y;
    size_t i = 0;
    mesh_status_t st = custom_find(v, custom, "derivation", &x, &i);
    if (st != MESH_OK || x == NULL)
        return st;
    if (x->kind != YN_MAP)
        return custom_err(v, i, x, "derivation must be a mapping with aggregate or sql, got %s",
                          describe(x));
    for (size_t k = 0; k + 1 < x->nkids; k += 2) {
        const char *key = x->kids[k]->text;
        if (strcmp(key, "aggregate") != 0 && strcmp(key, "sql") != 0 &&
            strcmp(key, "refresh") != 0 && strcmp(key, "definer") != 0)
            return custom_err(v, i, x->kids[k],
                              "derivation: unknown key '%s' (aggregate, sql, refresh, definer)",
                              show(key).s);
    }
    mesh_derivation_t *d = calloc(1, sizeof *d);
    if (d == NULL)
        return nomem(v);
    p->derive = d;
    const mesh_yaml_node_t *agg = map_get(x, "aggregate"), *sql = map_get(x, "sql");
    if ((agg == NULL) == (sql == NULL))
        return custom_err(v, i, x, "derivation needs exactly one of aggregate or sql");
    if ((y = map_get(x, "refresh")) != NULL) {
        if (!is_str(y) || mesh_duration_parse(y->text, &d->refresh_ns) != MESH_OK ||
            d->refresh_ns < 1000000000LL)
            return custom_err(v, i, y, "derivation: refresh must be a duration of 1s or more");
    }
    if (sql != NULL) {
        d->kind = MESH_DERIVE_SQL;
        if (!is_str(sql) || sql->len == 0 || sql->len > MESH_DERIVE_MAX_SQL)
            return custom_err(v, i, sql, "derivation: sql must be a query of 1 to %d bytes",
                              MESH_DERIVE_MAX_SQL);
        if ((y = map_get(x, "definer")) != NULL &&
            (!is_str(y) || y->len == 0 || y->len > 63 || !printable_name(y->text)))
            return custom_err(v, i, y, "derivation: definer must be a principal's name");
        if (y != NULL && (st = dup_text(v, y, &d->definer)) != MESH_OK)
            return st;
        return dup_text(v, sql, &d->sql);
    }
    if (map_get(x, "definer") != NULL)
        return custom_err(v, i, x, "derivation: definer is for a derivation by sql");
    d->kind = MESH_DERIVE_AGGREGATE;
    if (agg->kind != YN_MAP)
        return custom_err(v, i, agg, "derivation: aggregate must be a mapping");
    for (size_t k = 0; k + 1 < agg->nkids; k += 2) {
        const char *key = agg->kids[k]->text;
        if (strcmp(key, "source") != 0 && strcmp(key, "bucket") != 0 &&
            strcmp(key, "groupBy") != 0 && strcmp(key, "columns") != 0)
            return custom_err(v, i, agg->kids[k],
                              "derivation: unknown aggregate key '%s' (source, bucket, groupBy, "
                              "columns)",
                              show(key).s);
    }
    if ((y = map_get(agg, "source")) == NULL || !is_str(y) || !mesh_name_product_ok(y->text))
        return custom_err(v, i, y ? y : agg,
                          "derivation: aggregate.source must name a product "
                          "of this domain");
    if ((st = dup_text(v, y, &d->source)) != MESH_OK)
        return st;
    if (strcmp(d->source, p->name) == 0)
        return custom_err(v, i, y, "derivation: a product cannot aggregate itself");
    if ((y = map_get(agg, "bucket")) == NULL || !is_str(y) ||
        mesh_duration_parse(y->text, &d->bucket_ns) != MESH_OK || d->bucket_ns < 1000000LL ||
        d->bucket_ns > 366LL * 86400 * 1000000000LL)
        return custom_err(v, i, y ? y : agg,
                          "derivation: aggregate.bucket must be a duration from 1ms to 366d");
    if ((y = map_get(agg, "groupBy")) != NULL) {
        d->group_given = true;
        if (!(y->kind == YN_SEQ && y->nkids == 0) &&
            (st = derive_names(v, i, y, "groupBy", &d->group, &d->ngroup)) != MESH_OK)
            return st;
    }
    if ((y = map_get(agg, "columns")) == NULL)
        return custom_err(v, i, agg, "derivation: aggregate.columns is missing");
    return derive_names(v, i, y, "columns", &d->columns, &d->ncolumns);
}

/* Sort rank of a key column: its declared position, columns without one after those with. */
static int key_rank(const mesh_column_t *c)
{
    return c->pk_position > 0 ? c->pk_position : INT_MAX;
}

/* Orders the primary-key columns by primaryKeyPosition (ties in declaration order) and ranks
 * them 1..n in pk_position. */
static mesh_status_t derive_key(vctx_t *v, mesh_product_t *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->ncols; i++)
        n += p->cols[i].primary_key;
    if (n > 0 && (p->key_cols = calloc(n, sizeof *p->key_cols)) == NULL)
        return nomem(v);
    for (size_t i = 0; i < p->ncols; i++) { /* insertion sort: stable, n <= 1000 */
        if (!p->cols[i].primary_key)
            continue;
        size_t j = p->nkey++;
        for (; j > 0 && key_rank(&p->cols[p->key_cols[j - 1]]) > key_rank(&p->cols[i]); j--)
            p->key_cols[j] = p->key_cols[j - 1];
        p->key_cols[j] = (int)i;
    }
    for (size_t i = 0; i < p->ncols; i++)
        p->cols[i].pk_position = 0;
    for (size_t r = 0; r < p->nkey; r++)
        p->cols[p->key_cols[r]].pk_position = (int)r + 1;
    return MESH_OK;
}

static const keyspec_t object_keys[] = {
    {"name", SH_STR},
    {"id", SH_STR},
    {"physicalName", SH_STR},
    {"physicalType", SH_STR},
    {"logicalType", SH_STR},
    {"description", SH_STR},
    {"businessName", SH_STR},
    {"dataGranularityDescription", SH_STR},
    {"authoritativeDefinitions", SH_SEQ_MAP},
    {"quality", SH_SEQ_MAP},
    {"tags", SH_SEQ_STR},
    {"customProperties", SH_SEQ_MAP},
    {"relationships", SH_SEQ_MAP},
    {"properties", SH_SEQ_MAP},
};

static mesh_status_t parse_object(vctx_t *v, mesh_contract_t *c, size_t idx,
                                  const mesh_yaml_node_t *m)
{
    mesh_product_t *p = &c->products[idx];
    const mesh_yaml_node_t *name, *props, *x;
    p->contract = c;
    p->object_index = (int)idx;
    p->time_col = -1;
    p->privacy_unit_col = -1;
    p->egress_k = 11;
    size_t old = ypath_key(&v->path, "schema");
    ypath_idx(&v->path, idx);
    mesh_status_t st = check_keys(v, m, object_keys, MESH_ARRAY_LEN(object_keys),
                                  "meshd's own settings go under customProperties");
    if (st != MESH_OK)
        return st;
    if ((name = need(v, m, "name")) == NULL || (props = need(v, m, "properties")) == NULL)
        return MESH_INVALID;
    if (!mesh_name_product_ok(name->text))
        return verr(v, "name", name,
                    "'%s' is not a valid product name (a-z, digits and _, starting with a "
                    "letter, no __, at most 63 bytes)",
                    show(name->text).s);
    for (size_t j = 0; j < idx; j++)
        if (strcmp(c->products[j].name, name->text) == 0)
            return verr(v, "name", name, "duplicate schema object '%s' (also schema[%zu])",
                        name->text, j);
    if ((x = map_get(m, "logicalType")) != NULL && strcmp(x->text, "object") != 0)
        return verr(v, "logicalType", x, "the logicalType of a schema object is object, not '%s'",
                    show(x->text).s);
    if ((p->domain = mesh_strdup(c->domain)) == NULL)
        return nomem(v);
    const mesh_yaml_node_t *custom = map_get(m, "customProperties");
    if ((st = dup_key(v, m, "name", &p->name)) != MESH_OK ||
        (st = dup_key(v, m, "description", &p->description)) != MESH_OK ||
        (st = dup_list(v, map_get(m, "tags"), &p->tags, &p->n_tags)) != MESH_OK ||
        (st = parse_columns(v, props, p)) != MESH_OK || (st = check_custom(v, custom)) != MESH_OK ||
        (st = object_settings(v, custom, p)) != MESH_OK ||
        (st = governance_settings(v, custom, p)) != MESH_OK ||
        (st = derivation_setting(v, custom, p)) != MESH_OK || (st = derive_key(v, p)) != MESH_OK ||
        (st = parse_object_quality(v, m, p)) != MESH_OK)
        return st;
    ypath_pop(&v->path, old);
    return MESH_OK;
}

/* ---- the contract ----------------------------------------------------------------------- */

/* A decimal number without leading zeros (semver's rule) at *s, advancing *s. */
static bool semver_num(const char **s, int *out)
{
    const char *p = *s;
    long long n = 0;
    if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9'))
        return false;
    for (; *p >= '0' && *p <= '9'; p++)
        if ((n = n * 10 + (*p - '0')) > INT_MAX)
            return false;
    *out = (int)n;
    *s = p;
    return true;
}

/* Dot-separated identifiers of [0-9A-Za-z-] at *s; numeric ones may not have leading zeros
 * in a prerelease (strict), they may in build metadata. */
static bool semver_ids(const char **s, bool strict)
{
    const char *p = *s;
    for (;;) {
        const char *start = p;
        bool digits = true;
        for (; is_alnum(*p) || *p == '-'; p++)
            digits = digits && *p >= '0' && *p <= '9';
        if (p == start || (strict && digits && *start == '0' && p - start > 1))
            return false;
        if (*p != '.')
            break;
        p++;
    }
    *s = p;
    return true;
}

/* MAJOR.MINOR.PATCH[-prerelease][+build] (semver.org 2.0.0). */
static bool semver_parse(const char *s, int *major, int *minor, int *patch)
{
    if (!semver_num(&s, major) || *s++ != '.' || !semver_num(&s, minor) || *s++ != '.' ||
        !semver_num(&s, patch))
        return false;
    if (*s == '-' && (s++, !semver_ids(&s, true)))
        return false;
    if (*s == '+' && (s++, !semver_ids(&s, false)))
        return false;
    return *s == '\0';
}

static const keyspec_t top_keys[] = {
    {"version", SH_SCALAR},
    {"kind", SH_SCALAR},
    {"apiVersion", SH_SCALAR},
    {"id", SH_STR},
    {"name", SH_STR},
    {"tenant", SH_STR},
    {"tags", SH_SEQ_STR},
    {"status", SH_STR},
    {"servers", SH_SEQ_MAP},
    {"dataProduct", SH_STR},
    {"description", SH_MAP_OR_STR},
    {"domain", SH_STR},
    {"schema", SH_SEQ_MAP},
    {"support", SH_SEQ_MAP},
    {"price", SH_MAP},
    {"team", SH_MAP_OR_SEQ_MAP},
    {"roles", SH_SEQ_MAP},
    {"slaDefaultElement", SH_STR},
    {"slaProperties", SH_SEQ_MAP},
    {"authoritativeDefinitions", SH_SEQ_MAP},
    {"customProperties", SH_SEQ_MAP},
    {"contractCreatedTs", SH_STR},
    {"quality", SH_SEQ_MAP},
};

static const keyspec_t description_keys[] = {
    {"purpose", SH_STR},
    {"limitations", SH_STR},
    {"usage", SH_STR},
    {"authoritativeDefinitions", SH_SEQ_MAP},
    {"customProperties", SH_SEQ_MAP},
};

/* The required keys, in the order they are checked. */
typedef struct {
    const mesh_yaml_node_t *api, *kind, *id, *version, *status, *domain, *schema;
} header_t;

static mesh_status_t find_header(vctx_t *v, const mesh_yaml_node_t *root, header_t *h)
{
    if ((h->api = need(v, root, "apiVersion")) == NULL ||
        (h->kind = need(v, root, "kind")) == NULL || (h->id = need(v, root, "id")) == NULL ||
        (h->version = need(v, root, "version")) == NULL ||
        (h->status = need(v, root, "status")) == NULL ||
        (h->domain = need(v, root, "domain")) == NULL ||
        (h->schema = need(v, root, "schema")) == NULL)
        return MESH_INVALID;
    return MESH_OK;
}

/* apiVersion, kind, id, version, status, domain, name, tags. */
static mesh_status_t parse_header(vctx_t *v, const mesh_yaml_node_t *root, const header_t *h,
                                  mesh_contract_t *c)
{
    static const char *const api[] = {"v3.0.0", "v3.0.1", "v3.0.2", "v3.1.0"};
    size_t i = 0;
    while (i < MESH_ARRAY_LEN(api) && strcmp(h->api->text, api[i]) != 0)
        i++;
    if (i == MESH_ARRAY_LEN(api))
        return verr(v, "apiVersion", h->api,
                    "unsupported apiVersion '%s'; expected one of v3.0.0, v3.0.1, v3.0.2, v3.1.0",
                    show(h->api->text).s);
    if (strcmp(h->kind->text, "DataContract") != 0)
        return verr(v, "kind", h->kind, "kind must be DataContract, not '%s'",
                    show(h->kind->text).s);
    if (h->id->len == 0)
        return verr(v, "id", h->id, "must not be empty");
    if (!semver_parse(h->version->text, &c->ver_major, &c->ver_minor, &c->ver_patch))
        return verr(v, "version", h->version,
                    "'%s' is not a semantic version (MAJOR.MINOR.PATCH[-prerelease])",
                    show(h->version->text).s);
    if (h->status->len == 0)
        return verr(v, "status", h->status, "must not be empty");
    if (!mesh_name_domain_ok(h->domain->text))
        return verr(v, "domain", h->domain,
                    "'%s' is not a valid domain name (a-z, digits, _ and -, starting with a "
                    "letter, at most 63 bytes)",
                    show(h->domain->text).s);
    mesh_status_t st;
    if ((st = dup_text(v, h->api, &c->api_version)) != MESH_OK ||
        (st = dup_text(v, h->id, &c->id)) != MESH_OK ||
        (st = dup_key(v, root, "name", &c->name)) != MESH_OK ||
        (st = dup_text(v, h->version, &c->version)) != MESH_OK ||
        (st = dup_text(v, h->status, &c->status)) != MESH_OK ||
        (st = dup_text(v, h->domain, &c->domain)) != MESH_OK)
        return st;
    return dup_list(v, map_get(root, "tags"), &c->tags, &c->n_tags);
}

/* description: the ODCS object, or (leniently) a plain string taken as its purpose. */
static mesh_status_t parse_description(vctx_t *v, const mesh_yaml_node_t *d, mesh_contract_t *c)
{
    if (d == NULL)
        return MESH_OK;
    if (is_str(d))
        return dup_text(v, d, &c->purpose);
    size_t old = ypath_key(&v->path, "description");
    mesh_status_t st = check_keys(v, d, description_keys, MESH_ARRAY_LEN(description_keys), NULL);
    if (st == MESH_OK)
        st = check_custom(v, map_get(d, "customProperties"));
    if (st == MESH_OK)
        st = dup_key(v, d, "purpose", &c->purpose);
    if (st == MESH_OK)
        ypath_pop(&v->path, old);
    return st;
}

static mesh_status_t parse_schema(vctx_t *v, mesh_contract_t *c, const mesh_yaml_node_t *seq)
{
    if (seq->nkids == 0)
        return verr(v, "schema", seq, "a contract needs at least one schema object");
    if (seq->nkids > MESH_CONTRACT_MAX_OBJECTS)
        return verr(v, "schema", seq, "%zu schema objects is more than the limit of %d", seq->nkids,
                    MESH_CONTRACT_MAX_OBJECTS);
    c->products = calloc(seq->nkids, sizeof *c->products);
    if (c->products == NULL)
        return nomem(v);
    c->nproducts = seq->nkids;
    for (size_t i = 0; i < seq->nkids; i++) {
        mesh_status_t st = parse_object(v, c, i, seq->kids[i]);
        if (st != MESH_OK)
            return st;
    }
    return MESH_OK;
}

/* ---- slaProperties ---------------------------------------------------------------------- */

static const keyspec_t sla_keys[] = {
    {"id", SH_STR},        {"property", SH_STR}, {"value", SH_SCALAR}, {"valueExt", SH_SCALAR},
    {"unit", SH_STR},      {"element", SH_STR},  {"driver", SH_STR},   {"description", SH_STR},
    {"scheduler", SH_STR}, {"schedule", SH_STR},
};

/* value x unit as nanoseconds; false when the unit is not a duration unit we know. */
static bool sla_duration(double value, const char *unit, int64_t *out)
{
    static const struct {
        const char *name;
        double ns;
    } units[] = {{"ms", 1e6},        {"s", 1e9},         {"sec", 1e9},      {"second", 1e9},
                 {"seconds", 1e9},   {"m", 60e9},        {"min", 60e9},     {"minute", 60e9},
                 {"minutes", 60e9},  {"h", 3600e9},      {"hour", 3600e9},  {"hours", 3600e9},
                 {"d", 86400e9},     {"day", 86400e9},   {"days", 86400e9}, {"w", 604800e9},
                 {"week", 604800e9}, {"weeks", 604800e9}};
    for (size_t i = 0; i < MESH_ARRAY_LEN(units); i++)
        if (strcmp(unit, units[i].name) == 0) {
            double ns = value * units[i].ns;
            if (!(ns > 0) || ns > 9e18)
                return false;
            *out = (int64_t)ns;
            return true;
        }
    return false;
}

/* latency and frequency of slaProperties, onto the products their element names (a schema
 * object, or one of its properties; slaDefaultElement when none; every product when
 * neither). Other SLA properties are kept in the contract, not enforced. */
static mesh_status_t parse_sla(vctx_t *v, const mesh_yaml_node_t *root, mesh_contract_t *c)
{
    const mesh_yaml_node_t *seq = map_get(root, "slaProperties");
    const mesh_yaml_node_t *def = map_get(root, "slaDefaultElement");
    if (seq == NULL)
        return MESH_OK;
    size_t old = ypath_key(&v->path, "slaProperties");
    for (size_t i = 0; i < seq->nkids; i++) {
        const mesh_yaml_node_t *m = seq->kids[i], *prop, *val, *unit, *el;
        size_t at = ypath_idx(&v->path, i);
        mesh_status_t st = check_keys(v, m, sla_keys, MESH_ARRAY_LEN(sla_keys), NULL);
        if (st != MESH_OK)
            return st;
        if ((prop = need(v, m, "property")) == NULL)
            return MESH_INVALID;
        bool latency = strcmp(prop->text, "latency") == 0;
        bool frequency = strcmp(prop->text, "frequency") == 0;
        if (!latency && !frequency) {
            ypath_pop(&v->path, at);
            continue;
        }
        double d;
        int64_t ns;
        if ((val = need(v, m, "value")) == NULL || (unit = need(v, m, "unit")) == NULL)
            return MESH_INVALID;
        if (!num_value(val, &d))
            return verr(v, "value", val, "%s needs a number, got %s", prop->text, describe(val));
        if (!sla_duration(d, unit->text, &ns))
            return verr(v, "unit", unit,
                        "'%s' is not a duration unit (ms, s, m, h, d, w, or their names) or the "
                        "value is not a positive duration",
                        show(unit->text).s);
        el = map_get(m, "element");
        if (el == NULL)
            el = def;
        size_t matched = 0;
        for (size_t k = 0; k < c->nproducts; k++) {
            mesh_product_t *p = &c->products[k];
            if (el != NULL) {
                size_t n = strlen(p->name);
                if (strncmp(el->text, p->name, n) != 0 ||
                    (el->text[n] != '\0' && el->text[n] != '.'))
                    continue;
            }
            matched++;
            if (latency)
                p->sla_latency_ns = ns;
            else
                p->sla_frequency_ns = ns;
        }
        if (el != NULL && matched == 0)
            return verr(v, el == def ? NULL : "element", el,
                        "element '%s' names no schema object of this contract", show(el->text).s);
        ypath_pop(&v->path, at);
    }
    ypath_pop(&v->path, old);
    return MESH_OK;
}

static mesh_status_t parse_contract(vctx_t *v, mesh_contract_t *c)
{
    const mesh_yaml_node_t *root = c->doc;
    if (root->kind != YN_MAP)
        return verr(v, NULL, root, "a contract is a YAML mapping of ODCS keys, not %s",
                    describe(root));
    header_t h;
    mesh_status_t st = check_keys(v, root, top_keys, MESH_ARRAY_LEN(top_keys),
                                  "meshd's own settings go under customProperties");
    if (st == MESH_OK)
        st = find_header(v, root, &h);
    if (st == MESH_OK)
        st = parse_header(v, root, &h, c);
    if (st == MESH_OK)
        st = parse_description(v, map_get(root, "description"), c);
    if (st == MESH_OK)
        st = check_custom(v, map_get(root, "customProperties"));
    if (st == MESH_OK)
        st = parse_schema(v, c, h.schema);
    if (st == MESH_OK)
        st = parse_sla(v, root, c);
    return st;
}

static void col_free(mesh_column_t *col)
{
    free(col->name);
    free(col->description);
    free(col->classification);
    free(col->pattern);
    if (col->pattern_re != NULL) {
        regfree(col->pattern_re);
        free(col->pattern_re);
    }
    free(col->format);
    free(col->unit);
    strs_free(col->enum_values, col->n_enum);
    strs_free(col->tags, col->n_tags);
}

static void product_free(mesh_product_t *p)
{
    for (size_t i = 0; p->cols != NULL && i < p->ncols; i++)
        col_free(&p->cols[i]);
    free(p->cols);
    free(p->key_cols);
    free(p->domain);
    free(p->name);
    free(p->description);
    strs_free(p->tags, p->n_tags);
    for (size_t i = 0; i < p->nquality; i++)
        quality_rule_free(&p->quality[i]);
    free(p->quality);
    if (p->derive) {
        free(p->derive->source);
        strs_free(p->derive->group, p->derive->ngroup);
        strs_free(p->derive->columns, p->derive->ncolumns);
        free(p->derive->sql);
        free(p->derive->definer);
        free(p->derive);
    }
}

void mesh_contract_free(mesh_contract_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; c->products != NULL && i < c->nproducts; i++)
        product_free(&c->products[i]);
    free(c->products);
    free(c->api_version);
    free(c->id);
    free(c->name);
    free(c->version);
    free(c->status);
    free(c->domain);
    free(c->purpose);
    strs_free(c->tags, c->n_tags);
    free(c->yaml);
    node_free(c->doc);
    free(c);
}

mesh_status_t mesh_contract_parse(const char *yaml, size_t n, mesh_contract_t **out,
                                  mesh_err_t *err)
{
    *out = NULL;
    if (n > MESH_CONTRACT_MAX_BYTES)
        return mesh_err_set(err, MESH_TOO_LARGE, "contract: %zu bytes is more than the limit of %d",
                            n, MESH_CONTRACT_MAX_BYTES);
    if (yaml == NULL && n > 0)
        return mesh_err_set(err, MESH_INVALID, "contract: no text");
    mesh_status_t st;
    mesh_contract_t *c = calloc(1, sizeof *c);
    if (c == NULL || (c->yaml = mesh_strndup(n ? yaml : "", n)) == NULL) {
        st = mesh_err_set(err, MESH_NOMEM, "out of memory while reading the contract");
        goto err;
    }
    st = build_tree(c->yaml, n, &c->doc, err);
    if (st != MESH_OK)
        goto err;
    vctx_t v = {.err = err};
    st = parse_contract(&v, c);
    if (st != MESH_OK)
        goto err;
    *out = c;
    return MESH_OK;
err:
    mesh_contract_free(c);
    return st;
}

const mesh_product_t *mesh_contract_product(const mesh_contract_t *c, const char *name)
{
    for (size_t i = 0; c != NULL && name != NULL && i < c->nproducts; i++)
        if (strcmp(c->products[i].name, name) == 0)
            return &c->products[i];
    return NULL;
}

int mesh_product_col(const mesh_product_t *p, const char *name, size_t n)
{
    for (size_t i = 0; p != NULL && name != NULL && i < p->ncols; i++) {
        const char *cn = p->cols[i].name;
        if (cn != NULL && strlen(cn) == n && memcmp(cn, name, n) == 0)
            return (int)i;
    }
    return -1;
}

const char *mesh_ltype_name(mesh_ltype_t t)
{
    return (unsigned)t < MESH_ARRAY_LEN(ltype_names) ? ltype_names[t] : "unknown";
}

bool mesh_ltype_numeric(mesh_ltype_t t)
{
    return t == MESH_LT_INTEGER || t == MESH_LT_NUMBER || t == MESH_LT_BOOLEAN ||
           t == MESH_LT_TIMESTAMP;
}

const char *mesh_ltype_sql(mesh_ltype_t t)
{
    return (unsigned)t < MESH_ARRAY_LEN(ltype_sql) ? ltype_sql[t] : "TEXT";
}

/* ======================================================================================
 * Layer 3: export
 * ====================================================================================== */

/* The code point of the UTF-8 sequence at s (n > 0 bytes left) and its length; -1 and length
 * 1 for an invalid sequence. */
static long utf8_next(const unsigned char *s, size_t n, size_t *len)
{
    unsigned c = s[0];
    size_t need;
    long cp, min;
    *len = 1;
    if (c < 0x80)
        return (long)c;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        need = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        need = 4, cp = c & 0x07, min = 0x10000;
    else
        return -1;
    if (n < need)
        return -1;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return -1;
    *len = need;
    return cp;
}

/* A character that may stand as is in a plain or block scalar: printable (YAML 1.2 c-printable),
 * not a control character, not a line break YAML knows beyond \n (NEL, LS, PS), not a BOM. */
static bool text_char_ok(long cp)
{
    return (cp >= 0x20 && cp <= 0x7E) || (cp >= 0xA0 && cp <= 0xD7FF) ||
           (cp >= 0xE000 && cp <= 0xFFFD && cp != 0xFEFF && cp != 0x2028 && cp != 0x2029) ||
           (cp >= 0x10000 && cp <= 0x10FFFF);
}

static bool chars_ok(const char *s, size_t n, bool newlines)
{
    for (size_t i = 0, len; i < n; i += len) {
        long cp = utf8_next((const unsigned char *)s + i, n - i, &len);
        if (!text_char_ok(cp) && !(newlines && (cp == '\n' || cp == '\t')))
            return false;
    }
    return true;
}

/* Whether a string can be written plain and read back as the same string by YAML 1.2 and
 * YAML 1.1 readers alike (so yes/no/on/off and anything number-like are quoted). */
static bool plain_ok(const char *s, size_t n)
{
    static const char *const words[] = {"y",    "n",     "yes",  "no", "on", "off",
                                        "true", "false", "null", "~",  "=",  "<<"};
    if (n == 0 || classify_plain(s, n) != YS_STR)
        return false;
    for (size_t i = 0; i < MESH_ARRAY_LEN(words); i++)
        if (strcasecmp(s, words[i]) == 0)
            return false;
    char c0 = s[0], c1 = n > 1 ? s[1] : '\0';
    if (strchr("-?:,[]{}#&*!|>'\"%@` \t", c0) != NULL || (c0 >= '0' && c0 <= '9') ||
        ((c0 == '+' || c0 == '.') && ((c1 >= '0' && c1 <= '9') || c1 == '.')))
        return false;
    if (s[n - 1] == ' ' || s[n - 1] == ':' || strstr(s, ": ") != NULL || strstr(s, " #") != NULL ||
        strncmp(s, "...", 3) == 0)
        return false;
    return chars_ok(s, n, false);
}

/* Whether a multi-line string can be written as a literal block (|): no leading space (that
 * would need an indentation indicator) and nothing a block cannot hold as is. */
static bool literal_ok(const char *s, size_t n)
{
    return memchr(s, '\n', n) != NULL && s[0] != ' ' && s[0] != '\t' && s[0] != '\n' &&
           chars_ok(s, n, true);
}

/* Output with a sticky status, so the writers below need no error checks of their own. */
typedef struct {
    mesh_buf_t *b;
    mesh_status_t st;
    const char *only_name; /* exporting one product: its schema object's name */
} emitter_t;

static void em_add(emitter_t *e, const char *s, size_t n)
{
    if (e->st == MESH_OK)
        e->st = mesh_buf_add(e->b, s, n);
}

static void em_puts(emitter_t *e, const char *s)
{
    em_add(e, s, strlen(s));
}

static void em_indent(emitter_t *e, int n)
{
    static const char spaces[] = "                                ";
    for (; n > 0; n -= (int)sizeof spaces - 1)
        em_add(e, spaces, n < (int)sizeof spaces - 1 ? (size_t)n : sizeof spaces - 1);
}

/* A double-quoted scalar: escapes for quote, backslash, control and non-printable characters
 * and YAML's extra line breaks; everything else (UTF-8 included) as is. */
static void em_quoted(emitter_t *e, const char *s, size_t n)
{
    em_puts(e, "\"");
    for (size_t i = 0, len; i < n; i += len) {
        long cp = utf8_next((const unsigned char *)s + i, n - i, &len);
        char esc[24] = "";
        if (cp == '"' || cp == '\\')
            snprintf(esc, sizeof esc, "\\%c", (char)cp);
        else if (cp == '\n' || cp == '\t' || cp == '\r')
            snprintf(esc, sizeof esc, "\\%c", cp == '\n' ? 'n' : cp == '\t' ? 't' : 'r');
        else if (cp == 0x85 || cp == 0x2028 || cp == 0x2029)
            snprintf(esc, sizeof esc, "\\%c", cp == 0x85 ? 'N' : cp == 0x2028 ? 'L' : 'P');
        else if (cp < 0) /* not reached: libyaml hands over valid UTF-8 only */
            snprintf(esc, sizeof esc, "\\uFFFD");
        else if (cp < 0x20 || cp == 0x7F)
            snprintf(esc, sizeof esc, "\\x%02lX", cp);
        else if (!text_char_ok(cp))
            snprintf(esc, sizeof esc, "\\u%04lX", cp);
        if (esc[0] != '\0')
            em_puts(e, esc);
        else
            em_add(e, s + i, len);
    }
    em_puts(e, "\"");
}

/* A literal block scalar whose lines are indented by indent; the chomping indicator keeps the
 * trailing newlines exact. The caller ends the last line. */
static void em_literal(emitter_t *e, const char *s, size_t n, int indent)
{
    size_t trail = 0;
    while (trail < n && s[n - 1 - trail] == '\n')
        trail++;
    em_puts(e, trail == 0 ? "|-" : trail == 1 ? "|" : "|+");
    size_t end = trail > 0 ? n - 1 : n; /* the final newline is the caller's */
    for (size_t pos = 0; pos <= end;) {
        const char *nl = memchr(s + pos, '\n', end - pos);
        size_t stop = nl ? (size_t)(nl - s) : end;
        em_puts(e, "\n");
        if (stop > pos) {
            em_indent(e, indent);
            em_add(e, s + pos, stop - pos);
        }
        pos = stop + 1;
    }
}

/* A scalar whose key (or sequence dash) sits at column indent. */
static void em_scalar(emitter_t *e, const mesh_yaml_node_t *n, int indent, bool key)
{
    if (n->st != YS_STR)
        em_puts(e, n->len ? n->text : "null");
    else if (plain_ok(n->text, n->len))
        em_add(e, n->text, n->len);
    else if (!key && literal_ok(n->text, n->len))
        em_literal(e, n->text, n->len, indent + 2);
    else
        em_quoted(e, n->text, n->len);
}

static void em_map(emitter_t *e, const mesh_yaml_node_t *m, int indent, bool inline_first,
                   long only);

static void em_seq(emitter_t *e, const mesh_yaml_node_t *s, int indent, long only);

static void em_value(emitter_t *e, const mesh_yaml_node_t *n, int indent);

/* slaProperties of a one-product export: the items whose element names another schema object
 * go (the export would not parse: an element must name an object of its contract). */
static void em_sla(emitter_t *e, const mesh_yaml_node_t *s, int indent)
{
    size_t nl = e->only_name ? strlen(e->only_name) : 0;
    bool any = false;
    for (size_t i = 0; i < s->nkids; i++) {
        const mesh_yaml_node_t *it = s->kids[i], *el = NULL;
        for (size_t k = 0; it->kind == YN_MAP && k + 1 < it->nkids; k += 2)
            if (it->kids[k]->kind == YN_SCALAR && strcmp(it->kids[k]->text, "element") == 0)
                el = it->kids[k + 1];
        if (el != NULL && el->kind == YN_SCALAR &&
            !(e->only_name && strncmp(el->text, e->only_name, nl) == 0 &&
              (el->text[nl] == '\0' || el->text[nl] == '.')))
            continue;
        if (!any)
            em_puts(e, "\n");
        any = true;
        em_indent(e, indent);
        if (it->kind == YN_MAP && it->nkids > 0) {
            em_puts(e, "- ");
            em_map(e, it, indent + 2, true, -1);
        } else {
            em_puts(e, "-");
            em_value(e, it, indent);
        }
    }
    if (!any)
        em_puts(e, " []\n");
}

/* The value after "key:" or "-" at column indent, through the end of its last line. */
static void em_value(emitter_t *e, const mesh_yaml_node_t *n, int indent)
{
    if (n->kind == YN_SCALAR) {
        em_puts(e, " ");
        em_scalar(e, n, indent, false);
        em_puts(e, "\n");
    } else if (n->nkids == 0) {
        em_puts(e, n->kind == YN_MAP ? " {}\n" : " []\n");
    } else if (n->kind == YN_MAP) {
        em_puts(e, "\n");
        em_map(e, n, indent + 2, false, -1);
    } else {
        em_puts(e, "\n");
        em_seq(e, n, indent + 2, -1);
    }
}

/* A block mapping with its keys at column indent (the first one already positioned after a
 * "- " when inline_first). only >= 0 keeps that one item of a "schema" sequence. */
static void em_map(emitter_t *e, const mesh_yaml_node_t *m, int indent, bool inline_first,
                   long only)
{
    for (size_t i = 0; i + 1 < m->nkids; i += 2) {
        const mesh_yaml_node_t *k = m->kids[i], *val = m->kids[i + 1];
        if (i > 0 || !inline_first)
            em_indent(e, indent);
        em_scalar(e, k, indent, true);
        em_puts(e, ":");
        if (only >= 0 && val->kind == YN_SEQ && strcmp(k->text, "schema") == 0) {
            em_puts(e, "\n");
            em_seq(e, val, indent + 2, only);
        } else if (only >= 0 && val->kind == YN_SEQ && strcmp(k->text, "slaProperties") == 0) {
            em_sla(e, val, indent + 2);
        } else {
            em_value(e, val, indent);
        }
    }
}

/* A block sequence with its dashes at column indent; only >= 0 keeps that one item. */
static void em_seq(emitter_t *e, const mesh_yaml_node_t *s, int indent, long only)
{
    for (size_t i = 0; i < s->nkids; i++) {
        const mesh_yaml_node_t *it = s->kids[i];
        if (only >= 0 && i != (size_t)only)
            continue;
        em_indent(e, indent);
        if (it->kind == YN_MAP && it->nkids > 0) {
            em_puts(e, "- ");
            em_map(e, it, indent + 2, true, -1);
        } else {
            em_puts(e, "-");
            em_value(e, it, indent);
        }
    }
}

mesh_status_t mesh_contract_export(const mesh_contract_t *c, const char *product, mesh_buf_t *out)
{
    long only = -1;
    if (c == NULL || c->doc == NULL || out == NULL)
        return MESH_INVALID;
    if (product != NULL) {
        const mesh_product_t *p = mesh_contract_product(c, product);
        if (p == NULL)
            return MESH_NOT_FOUND;
        only = p->object_index;
    }
    size_t start = out->len;
    emitter_t e = {.b = out, .st = MESH_OK, .only_name = product};
    em_map(&e, c->doc, 0, false, only);
    if (e.st != MESH_OK && out->data != NULL) { /* leave out as it was */
        out->len = start;
        out->data[start] = '\0';
    }
    return e.st;
}

/* ======================================================================================
 * Diff and versions
 * ====================================================================================== */

typedef struct {
    mesh_buf_t *out; /* may be NULL */
    bool breaking;
} diff_t;

/* Records one change. The text is best effort (a full buffer loses lines, not the verdict). */
static void __attribute__((format(printf, 3, 4)))
change(diff_t *d, bool breaking, const char *fmt, ...)
{
    d->breaking = d->breaking || breaking;
    if (d->out == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    mesh_buf_vprintf(d->out, fmt, ap);
    va_end(ap);
    mesh_buf_adds(d->out, breaking ? " (breaking)\n" : "\n");
}

static bool str_eq(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

static bool strs_eq(char *const *a, size_t an, char *const *b, size_t bn)
{
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

static const char *or_none(const char *s)
{
    return s ? s : "(none)";
}

static bool constraints_eq(const mesh_column_t *a, const mesh_column_t *b)
{
    return a->has_min == b->has_min && a->has_max == b->has_max &&
           (!a->has_min || (a->min == b->min && a->min_exclusive == b->min_exclusive)) &&
           (!a->has_max || (a->max == b->max && a->max_exclusive == b->max_exclusive)) &&
           a->min_len == b->min_len && a->max_len == b->max_len && str_eq(a->pattern, b->pattern) &&
           str_eq(a->format, b->format);
}

static void diff_column(diff_t *d, const mesh_column_t *o, const mesh_column_t *n)
{
    const char *name = o->name;
    if (o->type != n->type)
        change(d, true, "column %s: type %s -> %s", name, ltype_names[o->type],
               ltype_names[n->type]);
    if (o->required != n->required)
        change(d, n->required, "column %s: required %s -> %s", name, o->required ? "true" : "false",
               n->required ? "true" : "false");
    if (o->unique != n->unique)
        change(d, n->unique, "column %s: unique %s", name, n->unique ? "added" : "removed");
    if (!str_eq(o->description, n->description))
        change(d, false, "column %s: description changed", name);
    if (!str_eq(o->classification, n->classification))
        change(d, false, "column %s: classification %s -> %s", name,
               show(or_none(o->classification)).s, show(or_none(n->classification)).s);
    if (!str_eq(o->unit, n->unit))
        change(d, false, "column %s: unit %s -> %s", name, show(or_none(o->unit)).s,
               show(or_none(n->unit)).s);
    if (!strs_eq(o->enum_values, o->n_enum, n->enum_values, n->n_enum))
        change(d, false, "column %s: enum changed", name);
    if (!constraints_eq(o, n))
        change(d, false, "column %s: constraints changed", name);
    if (!strs_eq(o->tags, o->n_tags, n->tags, n->n_tags))
        change(d, false, "column %s: tags changed", name);
}

static bool key_eq(const mesh_product_t *a, const mesh_product_t *b)
{
    if (a->nkey != b->nkey)
        return false;
    for (size_t i = 0; i < a->nkey; i++)
        if (strcmp(a->cols[a->key_cols[i]].name, b->cols[b->key_cols[i]].name) != 0)
            return false;
    return true;
}

/* "(a, b)" or "(none)" into b (capped; the text is for people). */
static void key_text(const mesh_product_t *p, mesh_buf_t *b)
{
    mesh_buf_adds(b, p->nkey ? "(" : "(none");
    for (size_t i = 0; i < p->nkey; i++)
        mesh_buf_printf(b, "%s%s", i ? ", " : "", p->cols[p->key_cols[i]].name);
    mesh_buf_adds(b, ")");
}

static void diff_product(diff_t *d, const mesh_product_t *o, const mesh_product_t *n)
{
    const char *ot = o->time_col >= 0 ? o->cols[o->time_col].name : NULL;
    const char *nt = n->time_col >= 0 ? n->cols[n->time_col].name : NULL;
    if (!str_eq(ot, nt))
        change(d, true, "time column: %s -> %s", or_none(ot), or_none(nt));
    if (!key_eq(o, n)) {
        mesh_buf_t a, b;
        mesh_buf_init(&a, 1024);
        mesh_buf_init(&b, 1024);
        key_text(o, &a);
        key_text(n, &b);
        change(d, true, "primary key: %s -> %s", a.data ? a.data : "", b.data ? b.data : "");
        mesh_buf_free(&a);
        mesh_buf_free(&b);
    }
    if (!str_eq(o->description, n->description))
        change(d, false, "description changed");
    if (o->on_invalid != n->on_invalid)
        change(d, false, "onInvalid: %s -> %s",
               o->on_invalid == MESH_ON_INVALID_QUARANTINE ? "quarantine" : "reject",
               n->on_invalid == MESH_ON_INVALID_QUARANTINE ? "quarantine" : "reject");
    if (!strs_eq(o->tags, o->n_tags, n->tags, n->n_tags))
        change(d, false, "tags changed");
}

static const mesh_quality_rule_t *rule_named(const mesh_product_t *p, const char *name)
{
    for (size_t i = 0; i < p->nquality; i++)
        if (strcmp(p->quality[i].name, name) == 0)
            return &p->quality[i];
    return NULL;
}

static bool rule_same(const mesh_quality_rule_t *a, const mesh_quality_rule_t *b)
{
    if (a->metric != b->metric || a->op != b->op || a->a != b->a || a->b != b->b ||
        a->percent != b->percent || a->nvalues != b->nvalues ||
        a->null_missing != b->null_missing || a->ncols != b->ncols || (a->col < 0) != (b->col < 0))
        return false;
    if ((a->pattern == NULL) != (b->pattern == NULL) ||
        (a->pattern && strcmp(a->pattern, b->pattern)))
        return false;
    if ((a->query == NULL) != (b->query == NULL) || (a->query && strcmp(a->query, b->query)))
        return false;
    for (size_t i = 0; i < a->nvalues; i++)
        if (strcmp(a->values[i], b->values[i]) != 0)
            return false;
    return true;
}

/* Quality rules and SLA bounds: never breaking (they judge data, they do not shape it). */
static void diff_quality(diff_t *d, const mesh_product_t *old, const mesh_product_t *next)
{
    for (size_t i = 0; i < old->nquality; i++) {
        const mesh_quality_rule_t *n = rule_named(next, old->quality[i].name);
        if (n == NULL)
            change(d, false, "quality rule %s: removed", old->quality[i].name);
        else if (!rule_same(&old->quality[i], n))
            change(d, false, "quality rule %s: changed", n->name);
    }
    for (size_t i = 0; i < next->nquality; i++)
        if (rule_named(old, next->quality[i].name) == NULL)
            change(d, false, "quality rule %s: added", next->quality[i].name);
    if (old->sla_latency_ns != next->sla_latency_ns)
        change(d, false, "SLA latency: %.0f s -> %.0f s", (double)old->sla_latency_ns / 1e9,
               (double)next->sla_latency_ns / 1e9);
    if (old->sla_frequency_ns != next->sla_frequency_ns)
        change(d, false, "SLA frequency: %.0f s -> %.0f s", (double)old->sla_frequency_ns / 1e9,
               (double)next->sla_frequency_ns / 1e9);
    if (!mesh_derivation_same(old->derive, next->derive))
        change(d, false, "derivation: %s",
               next->derive ? "changed (its rows are rebuilt)"
                            : "removed (it becomes a source product)");
}

static bool strs_same(char **a, size_t na, char **b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

bool mesh_derivation_same(const mesh_derivation_t *a, const mesh_derivation_t *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return a->kind == b->kind && a->bucket_ns == b->bucket_ns && a->refresh_ns == b->refresh_ns &&
           a->group_given == b->group_given &&
           strcmp(a->source ? a->source : "", b->source ? b->source : "") == 0 &&
           strcmp(a->sql ? a->sql : "", b->sql ? b->sql : "") == 0 &&
           strcmp(a->definer ? a->definer : "", b->definer ? b->definer : "") == 0 &&
           strs_same(a->group, a->ngroup, b->group, b->ngroup) &&
           strs_same(a->columns, a->ncolumns, b->columns, b->ncolumns);
}

bool mesh_product_diff(const mesh_product_t *old, const mesh_product_t *next, mesh_buf_t *changes)
{
    diff_t d = {.out = changes, .breaking = false};
    for (size_t i = 0; i < old->ncols; i++) {
        const mesh_column_t *o = &old->cols[i];
        int j = mesh_product_col(next, o->name, strlen(o->name));
        if (j < 0)
            change(&d, true, "column %s: dropped", o->name);
        else
            diff_column(&d, o, &next->cols[j]);
    }
    for (size_t i = 0; i < next->ncols; i++) {
        const mesh_column_t *n = &next->cols[i];
        if (mesh_product_col(old, n->name, strlen(n->name)) < 0)
            change(&d, n->required, "column %s: added (%s)", n->name,
                   n->required ? "required" : "optional");
    }
    diff_product(&d, old, next);
    diff_quality(&d, old, next);
    return d.breaking;
}

/* The prerelease part of a version text (between '-' and '+' or the end); *n 0 when none. */
static const char *prerelease(const char *v, size_t *n)
{
    const char *dash = strchr(v, '-'), *plus = strchr(v, '+');
    *n = 0;
    if (dash == NULL || (plus != NULL && plus < dash))
        return "";
    *n = plus ? (size_t)(plus - dash - 1) : strlen(dash + 1);
    return dash + 1;
}

/* One prerelease identifier against another: numbers numerically and below words, words in
 * ASCII order. */
static int ident_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    bool ad = all_of(a, an, DEC), bd = all_of(b, bn, DEC);
    if (ad != bd)
        return ad ? -1 : 1;
    if (ad && an != bn) /* no leading zeros: the longer number is the larger */
        return an < bn ? -1 : 1;
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c != 0)
        return c < 0 ? -1 : 1;
    return (an > bn) - (an < bn);
}

/* semver.org 2.0.0 rule 11: a version without prerelease ranks above one with; otherwise the
 * identifiers in turn, a longer list above its own prefix. */
static int prerelease_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    if (an == 0 || bn == 0)
        return (an == 0) - (bn == 0);
    size_t i = 0, j = 0;
    for (;;) {
        size_t ie = i, je = j;
        while (ie < an && a[ie] != '.')
            ie++;
        while (je < bn && b[je] != '.')
            je++;
        int c = ident_cmp(a + i, ie - i, b + j, je - j);
        if (c != 0)
            return c;
        if (ie == an || je == bn)
            return (ie < an) - (je < bn);
        i = ie + 1;
        j = je + 1;
    }
}

int mesh_contract_version_cmp(const mesh_contract_t *a, const mesh_contract_t *b)
{
    if (a == NULL || b == NULL)
        return (a != NULL) - (b != NULL);
    int pa[3] = {a->ver_major, a->ver_minor, a->ver_patch};
    int pb[3] = {b->ver_major, b->ver_minor, b->ver_patch};
    for (int i = 0; i < 3; i++)
        if (pa[i] != pb[i])
            return pa[i] < pb[i] ? -1 : 1;
    size_t an, bn;
    const char *ra = prerelease(a->version, &an), *rb = prerelease(b->version, &bn);
    return prerelease_cmp(ra, an, rb, bn);
}
