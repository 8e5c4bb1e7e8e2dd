/*
 * classification.c - discovery's suggestions and approved column tags in catalog.db. See
 * classification.h.
 */
#include "catalog/classification.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "catalog/internal.h"
#include "classify/detect.h"
#include "core/util.h"

static const char *classification_sql =
    "CREATE TABLE IF NOT EXISTS column_tags(domain TEXT NOT NULL, product TEXT NOT NULL,"
    "  column_name TEXT NOT NULL, tag TEXT NOT NULL, classification INTEGER NOT NULL,"
    "  info_type TEXT NOT NULL, confidence REAL NOT NULL, approved_by TEXT NOT NULL,"
    "  approved_ns INTEGER NOT NULL, PRIMARY KEY(domain, product, column_name, tag))"
    "  STRICT, WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS classification_suggestions(domain TEXT NOT NULL,"
    "  product TEXT NOT NULL, column_name TEXT NOT NULL, info_type TEXT NOT NULL,"
    "  confidence REAL NOT NULL, matched INTEGER NOT NULL, non_null INTEGER NOT NULL,"
    "  sampled INTEGER NOT NULL, hint INTEGER NOT NULL, status TEXT NOT NULL,"
    "  suggested_by TEXT NOT NULL, suggested_ns INTEGER NOT NULL,"
    "  decided_by TEXT NOT NULL DEFAULT '', decided_ns INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY(domain, product, column_name, info_type)) STRICT, WITHOUT ROWID;";

mesh_status_t mesh__catalog_classification_init(mesh_catalog_t *c, mesh_err_t *err)
{
    sqlite3 *db = mesh__catalog_db(c);
    if (sqlite3_exec(db, classification_sql, NULL, NULL, NULL) != SQLITE_OK)
        return mesh__catalog_err(db, err, "schema");
    return MESH_OK;
}

static void copy(char *dst, size_t cap, const unsigned char *src)
{
    snprintf(dst, cap, "%s", src ? (const char *)src : "");
}

static mesh_status_t prep(sqlite3 *db, const char *sql, sqlite3_stmt **q, mesh_err_t *err)
{
    if (sqlite3_prepare_v2(db, sql, -1, q, NULL) != SQLITE_OK)
        return mesh__catalog_err(db, err, "prepare");
    return MESH_OK;
}

/* Grows an array by one zeroed element; NULL when out of memory. */
static void *grow(void **arr, size_t *n, size_t *cap, size_t size)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        void *g = realloc(*arr, nc * size);
        if (g == NULL)
            return NULL;
        *arr = g;
        *cap = nc;
    }
    void *e = (char *)*arr + (*n)++ * size;
    memset(e, 0, size);
    return e;
}

static bool in_list(const char *const *list, size_t n, const char *s)
{
    if (list == NULL || n == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(list[i], s) == 0)
            return true;
    return false;
}

/* ---- approved tags ---- */

mesh_status_t mesh__catalog_coltags_read(sqlite3 *db, const char *domain, const char *product,
                                         mesh_coltag_rec_t **out, size_t *n, mesh_err_t *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *q;
    mesh_status_t st = prep(db,
                            "SELECT domain, product, column_name, tag, classification, info_type,"
                            " confidence, approved_by, approved_ns FROM column_tags"
                            " WHERE (?1 IS NULL OR domain = ?1) AND (?2 IS NULL OR product = ?2)"
                            " ORDER BY domain, product, column_name, classification DESC, tag",
                            &q, err);
    if (st != MESH_OK)
        return st;
    if (domain)
        sqlite3_bind_text(q, 1, domain, -1, SQLITE_STATIC);
    if (product)
        sqlite3_bind_text(q, 2, product, -1, SQLITE_STATIC);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        mesh_coltag_rec_t *t = grow((void **)out, n, &cap, sizeof *t);
        if (t == NULL) {
            st = mesh_err_set(err, MESH_NOMEM, "out of memory");
            break;
        }
        copy(t->domain, sizeof t->domain, sqlite3_column_text(q, 0));
        copy(t->product, sizeof t->product, sqlite3_column_text(q, 1));
        copy(t->column, sizeof t->column, sqlite3_column_text(q, 2));
        copy(t->tag, sizeof t->tag, sqlite3_column_text(q, 3));
        t->classification = sqlite3_column_int(q, 4) != 0;
        copy(t->info_type, sizeof t->info_type, sqlite3_column_text(q, 5));
        t->confidence = sqlite3_column_double(q, 6);
        copy(t->approved_by, sizeof t->approved_by, sqlite3_column_text(q, 7));
        t->approved_ns = sqlite3_column_int64(q, 8);
    }
    if (st == MESH_OK && rc != SQLITE_DONE)
        st = mesh__catalog_err(db, err, "column tags");
    sqlite3_finalize(q);
    if (st != MESH_OK) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return st;
}

mesh_status_t mesh_catalog_coltags_list(mesh_catalog_t *c, const char *domain, const char *product,
                                        mesh_coltag_rec_t **out, size_t *n, mesh_err_t *err)
{
    pthread_mutex_lock(mesh__catalog_lock(c));
    mesh_status_t st =
        mesh__catalog_coltags_read(mesh__catalog_db(c), domain, product, out, n, err);
    pthread_mutex_unlock(mesh__catalog_lock(c));
    return st;
}

/* ---- suggestions ---- */

#define SUGGESTION_COLS                                                                            \
    "domain, product, column_name, info_type, confidence, matched, non_null, sampled, hint,"       \
    " status, suggested_by, suggested_ns, decided_by, decided_ns"

static void suggestion_row(sqlite3_stmt *q, mesh_suggestion_rec_t *s)
{
    copy(s->domain, sizeof s->domain, sqlite3_column_text(q, 0));
    copy(s->product, sizeof s->product, sqlite3_column_text(q, 1));
    copy(s->column, sizeof s->column, sqlite3_column_text(q, 2));
    copy(s->info_type, sizeof s->info_type, sqlite3_column_text(q, 3));
    s->confidence = sqlite3_column_double(q, 4);
    s->matched = sqlite3_column_int64(q, 5);
    s->non_null = sqlite3_column_int64(q, 6);
    s->sampled = sqlite3_column_int64(q, 7);
    s->hint = sqlite3_column_int(q, 8) != 0;
    copy(s->status, sizeof s->status, sqlite3_column_text(q, 9));
    copy(s->suggested_by, sizeof s->suggested_by, sqlite3_column_text(q, 10));
    s->suggested_ns = sqlite3_column_int64(q, 11);
    copy(s->decided_by, sizeof s->decided_by, sqlite3_column_text(q, 12));
    s->decided_ns = sqlite3_column_int64(q, 13);
}

/* Reads the suggestions of a product (status NULL: any) inside the caller's lock. */
static mesh_status_t read_suggestions(sqlite3 *db, const char *domain, const char *product,
                                      const char *status, mesh_suggestion_rec_t **out, size_t *n,
                                      mesh_err_t *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *q;
    mesh_status_t st = prep(db,
                            "SELECT " SUGGESTION_COLS " FROM classification_suggestions"
                            " WHERE domain = ?1 AND (?2 IS NULL OR product = ?2)"
                            " AND (?3 IS NULL OR status = ?3)"
                            " ORDER BY product, column_name, confidence DESC, info_type",
                            &q, err);
    if (st != MESH_OK)
        return st;
    sqlite3_bind_text(q, 1, domain, -1, SQLITE_STATIC);
    if (product)
        sqlite3_bind_text(q, 2, product, -1, SQLITE_STATIC);
    if (status)
        sqlite3_bind_text(q, 3, status, -1, SQLITE_STATIC);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        mesh_suggestion_rec_t *s = grow((void **)out, n, &cap, sizeof *s);
        if (s == NULL) {
            st = mesh_err_set(err, MESH_NOMEM, "out of memory");
            break;
        }
        suggestion_row(q, s);
    }
    if (st == MESH_OK && rc != SQLITE_DONE)
        st = mesh__catalog_err(db, err, "suggestions");
    sqlite3_finalize(q);
    if (st != MESH_OK) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return st;
}

mesh_status_t mesh_catalog_suggestions_list(mesh_catalog_t *c, const char *domain,
                                            const char *product, mesh_suggestion_rec_t **out,
                                            size_t *n, mesh_err_t *err)
{
    pthread_mutex_lock(mesh__catalog_lock(c));
    mesh_status_t st = read_suggestions(mesh__catalog_db(c), domain, product, NULL, out, n, err);
    pthread_mutex_unlock(mesh__catalog_lock(c));
    return st;
}

/* Steps a statement to its end and finalizes it; *changes (may be NULL) adds rows changed. */
static mesh_status_t run(sqlite3 *db, sqlite3_stmt *q, const char *what, size_t *changes,
                         mesh_err_t *err)
{
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        ;
    mesh_status_t st = rc == SQLITE_DONE ? MESH_OK : mesh__catalog_err(db, err, what);
    if (changes && st == MESH_OK)
        *changes += (size_t)sqlite3_changes(db);
    sqlite3_finalize(q);
    return st;
}

mesh_status_t mesh_catalog_suggestions_put(mesh_catalog_t *c, const char *domain,
                                           const char *product, const mesh_suggestion_rec_t *s,
                                           size_t n, mesh_err_t *err)
{
    mesh_status_t st = mesh__catalog_begin(c, err);
    if (st != MESH_OK)
        return st;
    sqlite3 *db = mesh__catalog_db(c);
    sqlite3_stmt *q;
    if ((st = prep(db,
                   "DELETE FROM classification_suggestions WHERE domain = ?1 AND product = ?2"
                   " AND status = 'pending'",
                   &q, err)) == MESH_OK) {
        sqlite3_bind_text(q, 1, domain, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, product, -1, SQLITE_STATIC);
        st = run(db, q, "suggestions", NULL, err);
    }
    /* a rejected one keeps its status (and who rejected it), with fresh counts */
    static const char ins[] =
        "INSERT INTO classification_suggestions(domain, product, column_name, info_type,"
        " confidence, matched, non_null, sampled, hint, status, suggested_by, suggested_ns)"
        " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,'pending',?10,?11)"
        " ON CONFLICT(domain, product, column_name, info_type) DO UPDATE SET"
        " confidence = excluded.confidence, matched = excluded.matched,"
        " non_null = excluded.non_null, sampled = excluded.sampled, hint = excluded.hint,"
        " suggested_by = excluded.suggested_by, suggested_ns = excluded.suggested_ns";
    int64_t now = mesh_now_ns();
    for (size_t i = 0; i < n && st == MESH_OK; i++) {
        if ((st = prep(db, ins, &q, err)) != MESH_OK)
            break;
        sqlite3_bind_text(q, 1, domain, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, product, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, s[i].column, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 4, s[i].info_type, -1, SQLITE_STATIC);
        sqlite3_bind_double(q, 5, s[i].confidence);
        sqlite3_bind_int64(q, 6, s[i].matched);
        sqlite3_bind_int64(q, 7, s[i].non_null);
        sqlite3_bind_int64(q, 8, s[i].sampled);
        sqlite3_bind_int(q, 9, s[i].hint);
        sqlite3_bind_text(q, 10, s[i].suggested_by, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 11, s[i].suggested_ns ? s[i].suggested_ns : now);
        st = run(db, q, "suggestions", NULL, err);
    }
    return mesh__catalog_finish(c, st, false, err);
}

static bool selected(const mesh_tag_select_t *sel, const char *column, const char *type,
                     double confidence)
{
    return in_list(sel->columns, sel->ncolumns, column) && in_list(sel->types, sel->ntypes, type) &&
           confidence + 1e-9 >= sel->min_confidence;
}

/* Adds one tag (kept as it was when the column has it already); *added counts new ones. */
static mesh_status_t add_tag(sqlite3 *db, const mesh_suggestion_rec_t *s, const char *tag,
                             bool classification, const char *by, int64_t now,
                             mesh_coltag_rec_t **out, size_t *nout, size_t *cap, mesh_err_t *err)
{
    sqlite3_stmt *q;
    mesh_status_t st =
        prep(db,
             "INSERT INTO column_tags(domain, product, column_name, tag, classification,"
             " info_type, confidence, approved_by, approved_ns) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)"
             " ON CONFLICT(domain, product, column_name, tag) DO NOTHING",
             &q, err);
    if (st != MESH_OK)
        return st;
    sqlite3_bind_text(q, 1, s->domain, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, s->product, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, s->column, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, tag, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 5, classification);
    sqlite3_bind_text(q, 6, s->info_type, -1, SQLITE_STATIC);
    sqlite3_bind_double(q, 7, s->confidence);
    sqlite3_bind_text(q, 8, by, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 9, now);
    size_t changed = 0;
    if ((st = run(db, q, "column tags", &changed, err)) != MESH_OK || changed == 0)
        return st;
    mesh_coltag_rec_t *t = grow((void **)out, nout, cap, sizeof *t);
    if (t == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    snprintf(t->domain, sizeof t->domain, "%s", s->domain);
    snprintf(t->product, sizeof t->product, "%s", s->product);
    snprintf(t->column, sizeof t->column, "%s", s->column);
    snprintf(t->tag, sizeof t->tag, "%s", tag);
    t->classification = classification;
    snprintf(t->info_type, sizeof t->info_type, "%s", s->info_type);
    t->confidence = s->confidence;
    snprintf(t->approved_by, sizeof t->approved_by, "%s", by);
    t->approved_ns = now;
    return MESH_OK;
}

/* Deletes one suggestion, or marks it rejected when by is not NULL. */
static mesh_status_t settle(sqlite3 *db, const mesh_suggestion_rec_t *s, const char *rejected_by,
                            int64_t now, mesh_err_t *err)
{
    sqlite3_stmt *q;
    mesh_status_t st = prep(db,
                            rejected_by ? "UPDATE classification_suggestions SET status ="
                                          " 'rejected', decided_by = ?5, decided_ns = ?6"
                                          " WHERE domain = ?1 AND product = ?2 AND"
                                          " column_name = ?3 AND info_type = ?4"
                                        : "DELETE FROM classification_suggestions WHERE"
                                          " domain = ?1 AND product = ?2 AND column_name = ?3"
                                          " AND info_type = ?4",
                            &q, err);
    if (st != MESH_OK)
        return st;
    sqlite3_bind_text(q, 1, s->domain, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, s->product, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, s->column, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, s->info_type, -1, SQLITE_STATIC);
    if (rejected_by) {
        sqlite3_bind_text(q, 5, rejected_by, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 6, now);
    }
    return run(db, q, "suggestions", NULL, err);
}

mesh_status_t mesh_catalog_suggestions_approve(mesh_catalog_t *c, const char *domain,
                                               const char *product, const mesh_tag_select_t *sel,
                                               const char *by, mesh_coltag_rec_t **out,
                                               size_t *nout, mesh_err_t *err)
{
    *out = NULL;
    *nout = 0;
    mesh_status_t st = mesh__catalog_begin(c, err);
    if (st != MESH_OK)
        return st;
    sqlite3 *db = mesh__catalog_db(c);
    mesh_suggestion_rec_t *s = NULL;
    size_t n = 0, cap = 0;
    int64_t now = mesh_now_ns();
    st = read_suggestions(db, domain, product, "pending", &s, &n, err);
    for (size_t i = 0; i < n && st == MESH_OK; i++) {
        if (!selected(sel, s[i].column, s[i].info_type, s[i].confidence))
            continue;
        mesh_info_type_t t = mesh_info_parse(s[i].info_type);
        if (t == MESH_INFO__COUNT)
            continue; /* not one of ours (a catalog from a newer meshd): leave it */
        st = add_tag(db, &s[i], mesh_info_tag(t), false, by, now, out, nout, &cap, err);
        unsigned cats = mesh_info_categories(t);
        if (st == MESH_OK && (cats & MESH_CAT_PII))
            st = add_tag(db, &s[i], "PII", false, by, now, out, nout, &cap, err);
        if (st == MESH_OK && (cats & MESH_CAT_PHI))
            st = add_tag(db, &s[i], "PHI", false, by, now, out, nout, &cap, err);
        if (st == MESH_OK)
            st = add_tag(db, &s[i], mesh_level_name(mesh_info_level(t)), true, by, now, out, nout,
                         &cap, err);
        if (st == MESH_OK)
            st = settle(db, &s[i], NULL, now, err);
    }
    free(s);
    st = mesh__catalog_finish(c, st, st == MESH_OK && *nout > 0, err);
    if (st != MESH_OK) {
        free(*out);
        *out = NULL;
        *nout = 0;
    }
    return st;
}

mesh_status_t mesh_catalog_suggestions_reject(mesh_catalog_t *c, const char *domain,
                                              const char *product, const mesh_tag_select_t *sel,
                                              const char *by, size_t *nrej, mesh_err_t *err)
{
    *nrej = 0;
    mesh_status_t st = mesh__catalog_begin(c, err);
    if (st != MESH_OK)
        return st;
    sqlite3 *db = mesh__catalog_db(c);
    mesh_suggestion_rec_t *s = NULL;
    size_t n = 0;
    int64_t now = mesh_now_ns();
    st = read_suggestions(db, domain, product, "pending", &s, &n, err);
    for (size_t i = 0; i < n && st == MESH_OK; i++) {
        if (!selected(sel, s[i].column, s[i].info_type, s[i].confidence))
            continue;
        if ((st = settle(db, &s[i], by, now, err)) == MESH_OK)
            (*nrej)++;
    }
    free(s);
    return mesh__catalog_finish(c, st, false, err);
}

mesh_status_t mesh_catalog_coltags_remove(mesh_catalog_t *c, const char *domain,
                                          const char *product, const mesh_tag_select_t *sel,
                                          size_t *nrem, mesh_err_t *err)
{
    *nrem = 0;
    mesh_status_t st = mesh__catalog_begin(c, err);
    if (st != MESH_OK)
        return st;
    sqlite3 *db = mesh__catalog_db(c);
    mesh_coltag_rec_t *t = NULL;
    size_t n = 0;
    st = mesh__catalog_coltags_read(db, domain, product, &t, &n, err);
    for (size_t i = 0; i < n && st == MESH_OK; i++) {
        if (!in_list(sel->columns, sel->ncolumns, t[i].column) ||
            !in_list(sel->types, sel->ntypes, t[i].tag))
            continue;
        sqlite3_stmt *q;
        if ((st = prep(db,
                       "DELETE FROM column_tags WHERE domain = ?1 AND product = ?2 AND"
                       " column_name = ?3 AND tag = ?4",
                       &q, err)) != MESH_OK)
            break;
        sqlite3_bind_text(q, 1, t[i].domain, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, t[i].product, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, t[i].column, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 4, t[i].tag, -1, SQLITE_STATIC);
        st = run(db, q, "column tags", nrem, err);
    }
    free(t);
    return mesh__catalog_finish(c, st, st == MESH_OK && *nrem > 0, err);
}

mesh_status_t mesh_catalog_classification_drop(mesh_catalog_t *c, const char *domain,
                                               const char *product, mesh_err_t *err)
{
    mesh_status_t st = mesh__catalog_begin(c, err);
    if (st != MESH_OK)
        return st;
    sqlite3 *db = mesh__catalog_db(c);
    size_t removed = 0;
    static const char *const sql[] = {
        "DELETE FROM column_tags WHERE domain = ?1 AND (?2 IS NULL OR product = ?2)",
        "DELETE FROM classification_suggestions WHERE domain = ?1 AND"
        " (?2 IS NULL OR product = ?2)",
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(sql) && st == MESH_OK; i++) {
        sqlite3_stmt *q;
        if ((st = prep(db, sql[i], &q, err)) != MESH_OK)
            break;
        sqlite3_bind_text(q, 1, domain, -1, SQLITE_STATIC);
        if (product)
            sqlite3_bind_text(q, 2, product, -1, SQLITE_STATIC);
        st = run(db, q, "classification", i == 0 ? &removed : NULL, err);
    }
    return mesh__catalog_finish(c, st, st == MESH_OK && removed > 0, err);
}
