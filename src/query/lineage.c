/*
 * lineage.c - the output columns and column-level lineage of a derived product's SQL,
 * extracted by SQLite itself inside the sandbox (docs/derived.md, decision 0031).
 *
 * The query is prepared as the definer, like any query (their grants, masks and row filters;
 * read-only; one statement), which validates it. Then:
 *   - each output column's name and type: its declared type when it reads a product column
 *     directly, else from its top-level function (count -> integer, sum/avg/total ->
 *     number, time_bucket -> timestamp), else from the values of its first rows;
 *   - its origin (sqlite3_column_table_name/origin_name): a direct read of one product
 *     column, through subqueries too: an identity;
 *   - which columns each result expression reads: the query is prepared a second time (never
 *     run) with a mark, a call of mesh_lineage_mark(), between its result expressions
 *     (derive/sqlshape.c finds them). SQLite resolves the result list in order and asks the
 *     authorizer about every column read (SQLITE_READ) and every function (SQLITE_FUNCTION)
 *     as it goes, so the reads between two marks are that expression's. Reads in FROM,
 *     WHERE, GROUP BY, HAVING and ORDER BY come outside the marks: they choose rows and feed
 *     no value (table-level lineage only).
 * When the list cannot be split (WITH, compound SELECT, "*" among expressions, a subquery in
 * FROM, whose columns SQLite does not report) each column without an origin is given every
 * column the query reads (column_level false): more inputs than true, never fewer, so
 * classifications propagate at least as far as they should.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "derive/derive.h"
#include "query/internal.h"

#define SAMPLE_ROWS 1000

typedef struct trace {
    const mesh_snapshot_t *snap;
    mesh_lineage_t *l;
    int marks;              /* marks met so far */
    size_t nwin;            /* windows (result expressions) mapped to columns; 0: none */
    mesh_lineage_col_t all; /* every column read */
    mesh_status_t st;
    char why[200];
} trace_t;

static void refuse(trace_t *t, mesh_status_t st, const char *why)
{
    if (t->st != MESH_OK)
        return;
    t->st = st;
    snprintf(t->why, sizeof t->why, "%s", why);
}

/* The product column a column of table (of domain db) comes from, in out, and how: itself
 * (identity), except in a rollup view (p__agg), where c_count, c_sum and c_avg aggregate c,
 * c_min and c_max show one of its values (as min() and max() do), bucket transforms the time
 * and rows counts it. */
static mesh_xform_t rollup_source(const mesh_snapshot_t *snap, const char *db, const char *table,
                                  const char *column, char *out, size_t cap)
{
    snprintf(out, cap, "%s", column);
    const char *view = strstr(table, "__");
    if (view == NULL || strcmp(view, "__agg") != 0)
        return MESH_XF_IDENTITY;
    char product[MESH_NAME_MAX + 1];
    snprintf(product, sizeof product, "%.*s", (int)(view - table), table);
    const mesh_product_t *p = mesh_snapshot_product(snap, db, product);
    if (p == NULL)
        return MESH_XF_IDENTITY;
    static const struct {
        const char *suffix;
        mesh_xform_t xf;
    } aggs[] = {{"_count", MESH_XF_AGGREGATE},
                {"_sum", MESH_XF_AGGREGATE},
                {"_avg", MESH_XF_AGGREGATE},
                {"_min", MESH_XF_TRANSFORM},
                {"_max", MESH_XF_TRANSFORM}};
    size_t n = strlen(out);
    for (size_t i = 0; i < MESH_ARRAY_LEN(aggs); i++) {
        size_t k = strlen(aggs[i].suffix);
        if (n > k && strcmp(out + n - k, aggs[i].suffix) == 0 &&
            mesh_product_col(p, out, n - k) >= 0) {
            out[n - k] = '\0';
            return aggs[i].xf;
        }
    }
    bool bucket = strcmp(out, "bucket") == 0;
    if (p->time_col >= 0 && (bucket || strcmp(out, "rows") == 0)) {
        snprintf(out, cap, "%s", p->cols[p->time_col].name);
        return bucket ? MESH_XF_TRANSFORM : MESH_XF_AGGREGATE;
    }
    return MESH_XF_IDENTITY;
}

static void on_trace(void *arg, int action, const char *a1, const char *a2, const char *db)
{
    trace_t *t = arg;
    if (action == SQLITE_FUNCTION && a2 && strcasecmp(a2, MESH_LINEAGE_MARK) == 0) {
        t->marks++;
        return;
    }
    if (action != SQLITE_READ || a1 == NULL || db == NULL || a2 == NULL || a2[0] == '\0')
        return;
    if (strcmp(db, "main") == 0 || strcmp(db, "temp") == 0)
        return; /* json_each and the like */
    if (mesh_snapshot_domain(t->snap, db) == NULL) {
        char why[200];
        snprintf(why, sizeof why,
                 "%s: a derived product reads products of the domains of this "
                 "node only",
                 db);
        refuse(t, MESH_INVALID, why);
        return;
    }
    char product[MESH_NAME_MAX + 1];
    snprintf(product, sizeof product, "%s", a1);
    char *sep = strstr(product, "__");
    if (sep) {
        if (strcmp(sep, "__quarantine") == 0) {
            char why[200];
            snprintf(why, sizeof why, "%s.%s: a derived product reads products, not quarantine", db,
                     a1);
            refuse(t, MESH_FORBIDDEN, why);
            return;
        }
        *sep = '\0';
    }
    char col[MESH_NAME_MAX + 8];
    rollup_source(t->snap, db, a1, a2, col, sizeof col);
    mesh_status_t st = mesh_lineage_col_add_in(&t->all, db, product, col);
    if (st == MESH_OK && t->nwin && t->marks >= 1 && (size_t)t->marks <= t->nwin)
        st = mesh_lineage_col_add_in(&t->l->cols[t->marks - 1], db, product, col);
    if (st == MESH_OK)
        st = mesh_lineage_add_table(t->l, db, product);
    if (st != MESH_OK)
        refuse(t, st, "lineage: too many inputs");
}

static bool ltype_of_decl(const char *decl, mesh_ltype_t *out)
{
    static const struct {
        const char *decl;
        mesh_ltype_t t;
    } map[] = {{"TEXT", MESH_LT_STRING},         {"INTEGER", MESH_LT_INTEGER},
               {"REAL", MESH_LT_NUMBER},         {"BOOLEAN", MESH_LT_BOOLEAN},
               {"TIMESTAMP", MESH_LT_TIMESTAMP}, {"DATE", MESH_LT_DATE},
               {"TIME", MESH_LT_TIME},           {"JSON", MESH_LT_OBJECT}};
    for (size_t i = 0; decl && i < MESH_ARRAY_LEN(map); i++)
        if (strcasecmp(decl, map[i].decl) == 0) {
            *out = map[i].t;
            return true;
        }
    return false;
}

static bool ltype_of_head(const char *head, mesh_ltype_t *out)
{
    if (strcmp(head, "count") == 0 || strcmp(head, "length") == 0 || strcmp(head, "instr") == 0) {
        *out = MESH_LT_INTEGER;
        return true;
    }
    if (strcmp(head, "avg") == 0 || strcmp(head, "sum") == 0 || strcmp(head, "total") == 0) {
        *out = MESH_LT_NUMBER;
        return true;
    }
    if (strcmp(head, "time_bucket") == 0 || strcmp(head, "ts") == 0 || strcmp(head, "now") == 0) {
        *out = MESH_LT_TIMESTAMP;
        return true;
    }
    if (strcmp(head, "mask") == 0 || strcmp(head, "mask_hash") == 0 ||
        strcmp(head, "group_concat") == 0 || strcmp(head, "iso") == 0) {
        *out = MESH_LT_STRING;
        return true;
    }
    return false;
}

/* Whether the definer's view of the input masks it (the policy lines of the query). */
static bool masked_for_definer(const char *policies, const mesh_lineage_in_t *in)
{
    char needle[220];
    snprintf(needle, sizeof needle, "m%s.%s.%s:", in->domain, in->product, in->column);
    return policies && strstr(policies, needle) != NULL;
}

/* The second preparation, with marks between the result expressions. */
static mesh_status_t traced_prepare(qsession_t *s, const char *sql, size_t n,
                                    const mesh_sql_shape_t *sh, trace_t *t)
{
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_QUERY_MAX_SQL);
    if (sh == NULL) {
        /* no split: the reads of the whole query */
        mesh_buf_add(&b, sql, n);
        goto prepare;
    }
    mesh_buf_add(&b, sql, sh->items[0].off);
    for (size_t i = 0; i < sh->nitems; i++) {
        mesh_buf_printf(&b, "%s" MESH_LINEAGE_MARK "(%zu), ", i ? ", " : "", i);
        mesh_buf_add(&b, sql + sh->items[i].off, sh->items[i].len);
    }
    mesh_buf_printf(&b, ", " MESH_LINEAGE_MARK "(%zu) ", sh->nitems);
    mesh_buf_add(&b, sql + sh->list_end, n - sh->list_end);
prepare:
    if (b.data == NULL) {
        mesh_buf_free(&b);
        return MESH_TOO_LARGE;
    }
    sqlite3_stmt *stmt = NULL;
    s->trace = on_trace;
    s->trace_arg = t;
    int rc = sqlite3_prepare_v3(s->db, b.data, (int)b.len, 0, &stmt, NULL);
    s->trace = NULL;
    s->trace_arg = NULL;
    sqlite3_finalize(stmt);
    mesh_buf_free(&b);
    if (rc != SQLITE_OK)
        return MESH_UNSUPPORTED;
    return sh == NULL || (size_t)t->marks == sh->nitems + 1 ? MESH_OK : MESH_UNSUPPORTED;
}

mesh_status_t mesh_query_lineage(mesh_qpool_t *pool, mesh_snapshot_t *snap, mesh_policy_t *policy,
                                 const mesh_identity_t *who, const char *sql, size_t n,
                                 int64_t timeout_ns, int64_t sample_rows, struct mesh_lineage *out,
                                 mesh_err_t *err)
{
    memset(out, 0, sizeof *out);
    if (n == 0)
        return mesh_err_set(err, MESH_INVALID, "the derivation's SQL is empty");
    if (n > MESH_DERIVE_MAX_SQL)
        return mesh_err_set(err, MESH_TOO_LARGE, "the derivation's SQL is longer than %d bytes",
                            MESH_DERIVE_MAX_SQL);
    if (sample_rows < 0 || sample_rows > SAMPLE_ROWS)
        sample_rows = SAMPLE_ROWS;
    mesh_query_limits_t lim = {.timeout_ns = timeout_ns, .max_rows = sample_rows ? sample_rows : 1};
    mesh_query_t *q = NULL;
    mesh_status_t st = mesh_query_start(pool, snap, policy, who, sql, n, &lim, &q, err);
    if (st != MESH_OK)
        return st;
    if (sqlite3_bind_parameter_count(q->stmt) > 0)
        st = mesh_err_set(err, MESH_INVALID,
                          "a derivation's query cannot have parameters (?, :name): it runs "
                          "unattended");
    else if (q->agg)
        st = mesh_err_set(err, MESH_FORBIDDEN,
                          "a derived product cannot read an aggregates-only product from "
                          "outside its domain");
    int ncols = mesh_query_ncols(q);
    mesh_sql_shape_t *sh = calloc(1, sizeof *sh);
    int *sampled = calloc((size_t)(ncols > 0 ? ncols : 1), sizeof *sampled);
    bool *seen = calloc((size_t)(ncols > 0 ? ncols : 1), sizeof *seen);
    trace_t t = {.snap = snap, .l = out};
    if (st == MESH_OK && (sh == NULL || sampled == NULL || seen == NULL))
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
    if (st == MESH_OK && ncols > MESH_DERIVE_MAX_COLS * 4)
        st = mesh_err_set(err, MESH_INVALID, "the query gives %d columns; at most %d", ncols,
                          MESH_DERIVE_MAX_COLS * 4);
    /* the columns: names, declared types, origins */
    if (st == MESH_OK && (out->cols = calloc((size_t)ncols, sizeof *out->cols)) == NULL)
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
    for (int i = 0; st == MESH_OK && i < ncols; i++) {
        mesh_lineage_col_t *c = &out->cols[i];
        out->ncols++;
        const char *name = mesh_query_colname(q, i);
        if (!mesh_name_column_ok(name))
            st = mesh_err_set(err, MESH_INVALID,
                              "output column %d (%.60s) is not a column name: give it one "
                              "with AS",
                              i + 1, name);
        for (int k = 0; st == MESH_OK && k < i; k++)
            if (strcmp(out->cols[k].name, name) == 0)
                st = mesh_err_set(err, MESH_INVALID,
                                  "two output columns are named %s: give them names with AS", name);
        if (st != MESH_OK)
            break;
        snprintf(c->name, sizeof c->name, "%s", name);
        c->type = MESH_LT_STRING;
        c->xf = MESH_XF_TRANSFORM;
        const char *odb = sqlite3_column_database_name(q->stmt, i);
        const char *otab = sqlite3_column_table_name(q->stmt, i);
        const char *ocol = sqlite3_column_origin_name(q->stmt, i);
        if (odb && otab && ocol && mesh_snapshot_domain(snap, odb)) {
            char product[MESH_NAME_MAX + 1];
            snprintf(product, sizeof product, "%s", otab);
            char *sep = strstr(product, "__");
            if (sep)
                *sep = '\0';
            char col[MESH_NAME_MAX + 8];
            c->xf = rollup_source(snap, odb, otab, ocol, col, sizeof col);
            st = mesh_lineage_col_add_in(c, odb, product, col);
            if (st != MESH_OK)
                st = mesh_err_set(err, st, "out of memory");
        }
        if (ltype_of_decl(mesh_query_coltype(q, i), &c->type))
            seen[i] = true;
    }
    /* the values of the first rows, for the types of expressions */
    int rc = 0;
    while (st == MESH_OK && sample_rows > 0 && (rc = mesh_query_step(q, err)) == 1) {
        for (int i = 0; i < ncols; i++) {
            mesh_datum_t v;
            mesh_query_value(q, i, &v);
            mesh_ltype_t vt = v.type == MESH_V_INT    ? MESH_LT_INTEGER
                              : v.type == MESH_V_REAL ? MESH_LT_NUMBER
                                                      : MESH_LT_STRING;
            if (v.type == MESH_V_NULL)
                continue;
            /* 0: nothing yet, -1: text seen, else the numeric type */
            if (vt == MESH_LT_STRING)
                sampled[i] = -1;
            else if (sampled[i] == 0)
                sampled[i] = (int)vt;
            else if (vt == MESH_LT_NUMBER && sampled[i] == (int)MESH_LT_INTEGER)
                sampled[i] = (int)MESH_LT_NUMBER;
        }
    }
    if (st == MESH_OK && rc < 0 && err->code != MESH_LIMIT)
        st = err->code != MESH_OK ? err->code : MESH_INTERNAL;
    mesh_err_clear(err);
    /* the column-level split */
    bool split = st == MESH_OK && mesh_sql_select_shape(sql, n, sh) == MESH_OK &&
                 sh->nitems == (size_t)ncols;
    for (size_t i = 0; split && i < sh->nitems; i++)
        split = !sh->items[i].star;
    if (split && sh->subquery_from)
        split = false;
    t.nwin = split ? sh->nitems : 0;
    if (st == MESH_OK) {
        mesh_status_t ts = traced_prepare(q->s, sql, n, split ? sh : NULL, &t);
        if (t.st == MESH_OK && ts != MESH_OK && split) {
            /* the marked query did not prepare (e.g. GROUP BY 2 now names a mark): the
             * reads of the query as written, every column given all of them */
            split = false;
            t.nwin = 0;
            t.marks = 0;
            for (int i = 0; i < ncols; i++)
                if (out->cols[i].xf != MESH_XF_IDENTITY)
                    out->cols[i].nin = 0;
            ts = traced_prepare(q->s, sql, n, NULL, &t);
        }
        if (t.st != MESH_OK)
            st = mesh_err_set(err, t.st, "%s", t.why);
        else if (ts != MESH_OK)
            st = mesh_err_set(err, MESH_INTERNAL, "lineage: the query did not prepare again");
    }
    out->column_level = split;
    /* table-level lineage: every product read */
    const char *prods = mesh_query_products(q);
    for (const char *p = prods; st == MESH_OK && p && *p;) {
        size_t m = strcspn(p, ",");
        char id[140], *dot;
        snprintf(id, sizeof id, "%.*s", (int)m, p);
        if ((dot = strchr(id, '.')) != NULL) {
            *dot = '\0';
            if (mesh_snapshot_domain(snap, id) == NULL)
                st = mesh_err_set(err, MESH_INVALID,
                                  "%s: a derived product reads products of the domains of this "
                                  "node only",
                                  id);
            else if (mesh_lineage_add_table(out, id, dot + 1) != MESH_OK)
                st = mesh_err_set(err, MESH_TOO_LARGE, "too many input products");
        }
        p += m + (p[m] == ',');
    }
    const char *pol = mesh_query_policies(q);
    for (int i = 0; st == MESH_OK && i < ncols; i++) {
        mesh_lineage_col_t *c = &out->cols[i];
        const mesh_sql_item_t *it = split ? &sh->items[i] : NULL;
        if (!split && c->xf != MESH_XF_IDENTITY) {
            for (size_t k = 0; k < t.all.nin && st == MESH_OK; k++)
                st = mesh_lineage_col_add_in(c, t.all.in[k].domain, t.all.in[k].product,
                                             t.all.in[k].column);
        }
        if (it && it->hides)
            c->xf = MESH_XF_AGGREGATE;
        else if (it && it->masks)
            c->xf = MESH_XF_MASK;
        else if (c->xf == MESH_XF_IDENTITY && it && (it->head[0] || c->nin != 1))
            c->xf = MESH_XF_TRANSFORM;
        /* every input masked for the definer: the values are masked ones */
        bool all_masked = c->nin > 0 && c->xf != MESH_XF_AGGREGATE;
        for (size_t k = 0; all_masked && k < c->nin; k++)
            all_masked = masked_for_definer(pol, &c->in[k]);
        if (all_masked)
            c->xf = MESH_XF_MASK;
        if (!seen[i]) {
            if (it && ltype_of_head(it->head, &c->type))
                ;
            else if (sampled[i] > 0)
                c->type = (mesh_ltype_t)sampled[i], c->type_guessed = true;
            else
                c->type_guessed = true; /* string: text seen, or no value */
        }
        if (st != MESH_OK)
            st = mesh_err_set(err, st, "lineage: too many inputs");
    }
    free(t.all.in);
    free(sh);
    free(sampled);
    free(seen);
    mesh_query_finish(q);
    if (st != MESH_OK)
        mesh_lineage_free(out);
    return st;
}
