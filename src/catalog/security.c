/*
 * security.c - principals' passwords, roles, grants, masks, row filters and the policy
 * version in catalog.db. See security.h.
 */
#include "catalog/security.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/internal.h"
#include "core/util.h"

static const char *security_sql =
    "CREATE TABLE IF NOT EXISTS roles(name TEXT PRIMARY KEY, description TEXT NOT NULL"
    "  DEFAULT '', created_ns INTEGER NOT NULL) STRICT, WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS grants(id INTEGER PRIMARY KEY, role TEXT NOT NULL,"
    "  deny INTEGER NOT NULL, action TEXT NOT NULL, domain TEXT NOT NULL, product TEXT NOT NULL,"
    "  columns TEXT NOT NULL, created_ns INTEGER NOT NULL) STRICT;"
    "CREATE TABLE IF NOT EXISTS masks(id INTEGER PRIMARY KEY, domain TEXT NOT NULL,"
    "  product TEXT NOT NULL, column_name TEXT NOT NULL, tag TEXT NOT NULL, type TEXT NOT NULL,"
    "  expr TEXT NOT NULL, roles TEXT NOT NULL, except_roles TEXT NOT NULL,"
    "  created_ns INTEGER NOT NULL) STRICT;"
    "CREATE TABLE IF NOT EXISTS row_filters(id INTEGER PRIMARY KEY, role TEXT NOT NULL,"
    "  domain TEXT NOT NULL, product TEXT NOT NULL, predicate TEXT NOT NULL,"
    "  created_ns INTEGER NOT NULL) STRICT;";

static void copy(char *dst, size_t cap, const unsigned char *src)
{
    snprintf(dst, cap, "%s", src ? (const char *)src : "");
}

static bool has_column(sqlite3 *db, const char *table, const char *col)
{
    sqlite3_stmt *q;
    bool found = false;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2", -1, &q,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, table, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, col, -1, SQLITE_STATIC);
        found = sqlite3_step(q) == SQLITE_ROW;
        sqlite3_finalize(q);
    }
    return found;
}

mesh_status_t mesh__catalog_security_init(mesh_catalog_t *c, mesh_err_t *err)
{
    sqlite3 *db = mesh__catalog_db(c);
    if (sqlite3_exec(db, security_sql, NULL, NULL, NULL) != SQLITE_OK)
        return mesh__catalog_err(db, err, "schema");
    /* catalogs made before passwords existed */
    if (!has_column(db, "principals", "password") &&
        sqlite3_exec(db,
                     "ALTER TABLE principals ADD COLUMN password TEXT NOT NULL DEFAULT '';"
                     "ALTER TABLE principals ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;",
                     NULL, NULL, NULL) != SQLITE_OK)
        return mesh__catalog_err(db, err, "schema");
    /* the key of MASK_HASH: made once, kept with the catalog (encrypted with it at rest) */
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO meta(key, value) VALUES ('mask_key', ?1)"
                           " ON CONFLICT(key) DO NOTHING",
                           -1, &q, NULL) != SQLITE_OK)
        return mesh__catalog_err(db, err, "schema");
    uint8_t key[32];
    mesh_random(key, sizeof key);
    sqlite3_bind_blob(q, 1, key, sizeof key, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    OPENSSL_cleanse(key, sizeof key);
    if (rc != SQLITE_DONE)
        return mesh__catalog_err(db, err, "schema");
    return MESH_OK;
}

/* ---- helpers: one change in one transaction, with the version bump ---- */

static int bump(sqlite3 *db)
{
    return sqlite3_exec(db,
                        "INSERT INTO meta(key, value) VALUES ('policy_version', 1)"
                        " ON CONFLICT(key) DO UPDATE SET value = value + 1",
                        NULL, NULL, NULL);
}

static void lock(mesh_catalog_t *c)
{
    pthread_mutex_lock(mesh__catalog_lock(c));
}

static void unlock(mesh_catalog_t *c)
{
    pthread_mutex_unlock(mesh__catalog_lock(c));
}

static mesh_status_t begin(mesh_catalog_t *c, mesh_err_t *err)
{
    lock(c);
    sqlite3 *db = mesh__catalog_db(c);
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        mesh_status_t st = mesh__catalog_err(db, err, "begin");
        unlock(c);
        return st;
    }
    return MESH_OK;
}

/* Commits (with a version bump) when st is MESH_OK, else rolls back; unlocks. */
static mesh_status_t finish(mesh_catalog_t *c, mesh_status_t st, bool bump_version, mesh_err_t *err)
{
    sqlite3 *db = mesh__catalog_db(c);
    if (st == MESH_OK && bump_version && bump(db) != SQLITE_OK)
        st = mesh__catalog_err(db, err, "version");
    if (st == MESH_OK && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        st = mesh__catalog_err(db, err, "commit");
    if (st != MESH_OK)
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    unlock(c);
    return st;
}

mesh_status_t mesh__catalog_begin(mesh_catalog_t *c, mesh_err_t *err)
{
    return begin(c, err);
}

mesh_status_t mesh__catalog_finish(mesh_catalog_t *c, mesh_status_t st, bool bump, mesh_err_t *err)
{
    return finish(c, st, bump, err);
}

static mesh_status_t prep(sqlite3 *db, const char *sql, sqlite3_stmt **q, mesh_err_t *err)
{
    if (sqlite3_prepare_v2(db, sql, -1, q, NULL) != SQLITE_OK)
        return mesh__catalog_err(db, err, "prepare");
    return MESH_OK;
}

/* Steps a statement to its end; changes: rows changed (may be NULL). */
static mesh_status_t run(sqlite3 *db, sqlite3_stmt *q, const char *what, int *changes,
                         mesh_err_t *err)
{
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        ;
    mesh_status_t st = rc == SQLITE_DONE ? MESH_OK : mesh__catalog_err(db, err, what);
    if (changes)
        *changes = sqlite3_changes(db);
    sqlite3_finalize(q);
    return st;
}

/* ---- principals ---- */

#define PRINCIPAL_COLS "id, name, kind, roles, password <> '', disabled, created_ns"

static void principal_row(sqlite3_stmt *q, mesh_principal_info_t *out)
{
    memset(out, 0, sizeof *out);
    out->id = sqlite3_column_int64(q, 0);
    copy(out->name, sizeof out->name, sqlite3_column_text(q, 1));
    copy(out->kind, sizeof out->kind, sqlite3_column_text(q, 2));
    copy(out->roles, sizeof out->roles, sqlite3_column_text(q, 3));
    out->has_password = sqlite3_column_int(q, 4) != 0;
    out->disabled = sqlite3_column_int(q, 5) != 0;
    out->created_ns = sqlite3_column_int64(q, 6);
}

static mesh_status_t principal_one(mesh_catalog_t *c, const char *sql, const char *name, int64_t id,
                                   mesh_principal_info_t *out)
{
    lock(c);
    sqlite3 *db = mesh__catalog_db(c);
    sqlite3_stmt *q;
    mesh_status_t st = MESH_NOT_FOUND;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK) {
        if (name)
            sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
        else
            sqlite3_bind_int64(q, 1, id);
        if (sqlite3_step(q) == SQLITE_ROW) {
            principal_row(q, out);
            st = MESH_OK;
        }
        sqlite3_finalize(q);
    } else {
        st = MESH_IO;
    }
    unlock(c);
    return st;
}

mesh_status_t mesh_catalog_principal_find(mesh_catalog_t *c, const char *name,
                                          mesh_principal_info_t *out)
{
    return principal_one(c, "SELECT " PRINCIPAL_COLS " FROM principals WHERE name = ?1", name, 0,
                         out);
}

mesh_status_t mesh_catalog_principal_info(mesh_catalog_t *c, int64_t id, mesh_principal_info_t *out)
{
    return principal_one(c, "SELECT " PRINCIPAL_COLS " FROM principals WHERE id = ?1", NULL, id,
                         out);
}

mesh_status_t mesh_catalog_principal_list(mesh_catalog_t *c, mesh_principal_info_t **out, size_t *n,
                                          mesh_err_t *err)
{
    *out = NULL;
    *n = 0;
    lock(c);
    sqlite3 *db = mesh__catalog_db(c);
    sqlite3_stmt *q = NULL;
    mesh_status_t st = prep(db, "SELECT " PRINCIPAL_COLS " FROM principals ORDER BY name", &q, err);
    size_t cap = 0;
    int rc = SQLITE_DONE;
    while (st == MESH_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            mesh_principal_info_t *g = realloc(*out, cap * sizeof **out);
            if (g == NULL) {
                st = mesh_err_set(err, MESH_NOMEM, "out of memory");
                break;
            }
            *out = g;
        }
        principal_row(q, &(*out)[(*n)++]);
    }
    if (st == MESH_OK && rc != SQLITE_DONE)
        st = mesh__catalog_err(db, err, "principals");
    sqlite3_finalize(q);
    unlock(c);
    if (st != MESH_OK) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return st;
}

mesh_status_t mesh_catalog_principal_create(mesh_catalog_t *c, const char *name, const char *kind,
                                            const char *roles, int64_t *id, mesh_err_t *err)
{
    mesh_status_t st = begin(c, err);
    if (st != MESH_OK)
        return st;
    sqlite3 *db = mesh__catalog_db(c);
    sqlite3_stmt *q;
    if ((st = prep(db,
                   "INSERT INTO principals(name, kind, roles, created_ns) VALUES (?1,?2,?3,?4)"
                   " ON CONFLICT(name) DO NOTHING RETURNING id",
                   &q, err)) == MESH_OK) {
        sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, roles, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 4, mesh_now_ns());
        int rc = sqlite3_step(q);
        if (rc == SQLITE_ROW)
            *id = sqlite3_column_int64(q, 0);
        else if (rc == SQLITE_DONE)
            st = mesh_err_set(err, MESH_CONFLICT, "principal '%s' exists", name);
        else
            st = mesh__catalog_err(db, err, "principal");
        sqlite3_finalize(q);
    }
    return finish(c, st, true, err);
}

mesh_status_t mesh_catalog_principal_update(mesh_catalog_t *c, int64_t id, const char *roles,
                                            int disabled, mesh_err_t *err)
{
    mesh_status_t st = begin(c, err);
    if (st != MESH_OK)
        return st;
    sqlite3 *db = mesh__catalog_db(c);
    sqlite3_stmt *q;
    int changes = 0;
    if ((st = prep(db,
                   "UPDATE principals SET roles = coalesce(?2, roles),"
                   " disabled = CASE WHEN ?3 < 0 THEN disabled ELSE ?3 END WHERE id = ?1",
                   &q, err)) == MESH_OK) {
        sqlite3_bind_int64(q, 1, id);
        if (roles)
            sqlite3_bind_text(q, 2, roles, -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 3, disabled);
        st = run(db, q, "principal", &changes, err);
    }
    if (st == MESH_OK && changes == 0)
        st = mesh_err_set(err, MESH_NOT_FOUND, "no principal %lld", (long long)id);
    return finish(c, st, true, err);
}

mesh_status_t mesh_catalog_principal_delete(mesh_catalog_t *c, int64_t id, mesh_err_t *err)
{
    mesh_status_t st = begin(c, err);
    if (st != MESH_OK)
        return st;
    sqlite3 *db = mesh__catalog_db(c);
    sqlite3_stmt *q;
    int changes = 0;
    if ((st = prep(db, "DELETE FROM tokens WHERE principal_id = ?1", &q, err)) == MESH_OK) {
        sqlite3_bind_int64(q, 1, id);
        st = run(db, q, "tokens", NULL, err);
    }
    if (st == MESH_OK &&
        (st = prep(db, "DELETE FROM principals WHERE id = ?1", &q, err)) == MESH_OK) {
        sqlite3_bind_int64(q, 1, id);
        st = run(db, q, "principal", &changes, err);
    }
    if (st == MESH_OK && changes == 0)
        st = mesh_err_set(err, MESH_NOT_FOUND, "no principal %lld", (long long)id);
    return finish(c, st, true, err);
}

mesh_status_t mesh_catalog_password_get(mesh_catalog_t *c, int64_t id, char *out, size_t cap)
{
    lock(c);
    sqlite3 *db = mesh__catalog_db(c);
    sqlite3_stmt *q;
    mesh_status_t st = MESH_NOT_FOUND;
    out[0] = '\0';
    if (sqlite3_prepare_v2(db, "SELECT password FROM principals WHERE id = ?1", -1, &q, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_int64(q, 1, id);
        if (sqlite3_step(q) == SQLITE_ROW) {
            copy(out, cap, sqlite3_column_text(q, 0));
            st = MESH_OK;
        }
        sqlite3_finalize(q);
    }
    unlock(c);
    return st;
}

mesh_status_t mesh_catalog_password_set(mesh_catalog_t *c, int64_t id, const char *verifier,
                                        mesh_err_t *err)
{
    mesh_status_t st = begin(c, err);
    if (st != MESH_OK)
        return st;
    sqlite3 *db = mesh__catalog_db(c);
    sqlite3_stmt *q;
    int changes = 0;
    if ((st = prep(db, "UPDATE principals SET password = ?2 WHERE id = ?1", &q, err)) == MESH_OK) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_text(q, 2, verifier, -1, SQLITE_STATIC);
        st = run(db, q, "password", &changes, err);
    }
    if (st == MESH_OK && changes == 0)
        st = mesh_err_set(err, MESH_NOT_FOUND, "no principal %lld", (long long)id);
    return finish(c, st, false, err);
}

/* ---- tokens ---- */

mesh_status_t mesh_catalog_token_list(mesh_catalog_t *c, int64_t principal_id,
                                      mesh_token_rec_t **out, size_t *n, mesh_err_t *err)
{
    *out = NULL;
    *n = 0;
    lock(c);
    sqlite3 *db = mesh__catalog_db(c);
    sqlite3_stmt *q = NULL;
    mesh_status_t st = prep(db,
                            "SELECT id, principal_id, created_ns, expires_ns, revoked_ns, note"
                            " FROM tokens WHERE ?1 = 0 OR principal_id = ?1"
                            " ORDER BY created_ns DESC, id",
                            &q, err);
    size_t cap = 0;
    int rc = SQLITE_DONE;
    if (st == MESH_OK)
        sqlite3_bind_int64(q, 1, principal_id);
    while (st == MESH_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            mesh_token_rec_t *g = realloc(*out, cap * sizeof **out);
            if (g == NULL) {
                st = mesh_err_set(err, MESH_NOMEM, "out of memory");
                break;
            }
            *out = g;
        }
        mesh_token_rec_t *t = &(*out)[(*n)++];
        memset(t, 0, sizeof *t); /* never the salt or the hash */
        copy(t->id, sizeof t->id, sqlite3_column_text(q, 0));
        t->principal_id = sqlite3_column_int64(q, 1);
        t->created_ns = sqlite3_column_int64(q, 2);
        t->expires_ns = sqlite3_column_int64(q, 3);
        t->revoked_ns = sqlite3_column_int64(q, 4);
        copy(t->note, sizeof t->note, sqlite3_column_text(q, 5));
    }
    if (st == MESH_OK && rc != SQLITE_DONE)
        st = mesh__catalog_err(db, err, "tokens");
    sqlite3_finalize(q);
    unlock(c);
    if (st != MESH_OK) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return st;
}

mesh_status_t mesh_catalog_token_revoke(mesh_catalog_t *c, const char *id, mesh_err_t *err)
{
    mesh_status_t st = begin(c, err);
    if (st != MESH_OK)
        return st;
    sqlite3 *db = mesh__catalog_db(c);
    sqlite3_stmt *q;
    int changes = 0;
    if ((st = prep(db, "UPDATE tokens SET revoked_ns = ?2 WHERE id = ?1 AND revoked_ns = 0", &q,
                   err)) == MESH_OK) {
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, mesh_now_ns());
        st = run(db, q, "token", &changes, err);
    }
    if (st == MESH_OK && changes == 0)
        st = mesh_err_set(err, MESH_NOT_FOUND, "no active token %s", id);
    return finish(c, st, false, err);
}

/* ---- policy ---- */

int64_t mesh_catalog_policy_version(mesh_catalog_t *c)
{
    lock(c);
    sqlite3 *db = mesh__catalog_db(c);
    sqlite3_stmt *q;
    int64_t v = 0;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'policy_version'", -1, &q,
                           NULL) == SQLITE_OK) {
        if (sqlite3_step(q) == SQLITE_ROW)
            v = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    unlock(c);
    return v;
}

void mesh_policy_src_free(mesh_policy_src_t *s)
{
    if (s == NULL)
        return;
    free(s->roles);
    free(s->grants);
    free(s->masks);
    free(s->filters);
    free(s->coltags);
    OPENSSL_cleanse(s->mask_key, sizeof s->mask_key);
    memset(s, 0, sizeof *s);
}

/* Grows an array by one element; NULL when out of memory. */
static void *grow(void **arr, size_t *n, size_t *cap, size_t size)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
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

/* One record of a policy table from the current row of q. */
typedef void (*fill_fn)(sqlite3_stmt *q, void *rec);

static void fill_role(sqlite3_stmt *q, void *rec)
{
    mesh_role_rec_t *r = rec;
    copy(r->name, sizeof r->name, sqlite3_column_text(q, 0));
    copy(r->description, sizeof r->description, sqlite3_column_text(q, 1));
    r->created_ns = sqlite3_column_int64(q, 2);
}

static void fill_grant(sqlite3_stmt *q, void *rec)
{
    mesh_grant_rec_t *g = rec;
    g->id = sqlite3_column_int64(q, 0);
    copy(g->role, sizeof g->role, sqlite3_column_text(q, 1));
    g->deny = sqlite3_column_int(q, 2) != 0;
    copy(g->action, sizeof g->action, sqlite3_column_text(q, 3));
    copy(g->domain, sizeof g->domain, sqlite3_column_text(q, 4));
    copy(g->product, sizeof g->product, sqlite3_column_text(q, 5));
    copy(g->columns, sizeof g->columns, sqlite3_column_text(q, 6));
    g->created_ns = sqlite3_column_int64(q, 7);
}

static void fill_mask(sqlite3_stmt *q, void *rec)
{
    mesh_mask_rec_t *m = rec;
    m->id = sqlite3_column_int64(q, 0);
    copy(m->domain, sizeof m->domain, sqlite3_column_text(q, 1));
    copy(m->product, sizeof m->product, sqlite3_column_text(q, 2));
    copy(m->column, sizeof m->column, sqlite3_column_text(q, 3));
    copy(m->tag, sizeof m->tag, sqlite3_column_text(q, 4));
    copy(m->type, sizeof m->type, sqlite3_column_text(q, 5));
    copy(m->expr, sizeof m->expr, sqlite3_column_text(q, 6));
    copy(m->roles, sizeof m->roles, sqlite3_column_text(q, 7));
    copy(m->except, sizeof m->except, sqlite3_column_text(q, 8));
    m->created_ns = sqlite3_column_int64(q, 9);
}

static void fill_filter(sqlite3_stmt *q, void *rec)
{
    mesh_filter_rec_t *f = rec;
    f->id = sqlite3_column_int64(q, 0);
    copy(f->role, sizeof f->role, sqlite3_column_text(q, 1));
    copy(f->domain, sizeof f->domain, sqlite3_column_text(q, 2));
    copy(f->product, sizeof f->product, sqlite3_column_text(q, 3));
    copy(f->predicate, sizeof f->predicate, sqlite3_column_text(q, 4));
    f->created_ns = sqlite3_column_int64(q, 5);
}

/* Every row of sql into a grown array of records of size bytes (*v, *n), each by fill. */
static mesh_status_t read_rows(sqlite3 *db, const char *sql, const char *what, void **v, size_t *n,
                               size_t size, fill_fn fill, mesh_err_t *err)
{
    sqlite3_stmt *q;
    mesh_status_t st = prep(db, sql, &q, err);
    if (st != MESH_OK)
        return st;
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        void *rec = grow(v, n, &cap, size);
        if (rec == NULL) {
            st = mesh_err_set(err, MESH_NOMEM, "out of memory");
            break;
        }
        fill(q, rec);
    }
    if (st == MESH_OK && rc != SQLITE_DONE)
        st = mesh__catalog_err(db, err, what);
    sqlite3_finalize(q);
    return st;
}

mesh_status_t mesh_catalog_policy_load(mesh_catalog_t *c, mesh_policy_src_t *out, mesh_err_t *err)
{
    memset(out, 0, sizeof *out);
    lock(c);
    sqlite3 *db = mesh__catalog_db(c);
    mesh_status_t st = MESH_OK;
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        st = mesh__catalog_err(db, err, "begin");
        unlock(c);
        return st;
    }
    sqlite3_stmt *q = NULL;
    /* version and the mask key */
    if ((st = prep(db,
                   "SELECT (SELECT value FROM meta WHERE key = 'policy_version'),"
                   " (SELECT value FROM meta WHERE key = 'mask_key')",
                   &q, err)) == MESH_OK) {
        if (sqlite3_step(q) == SQLITE_ROW) {
            out->version = sqlite3_column_int64(q, 0);
            if (sqlite3_column_bytes(q, 1) == (int)sizeof out->mask_key)
                memcpy(out->mask_key, sqlite3_column_blob(q, 1), sizeof out->mask_key);
        }
        sqlite3_finalize(q);
    }
    if (st == MESH_OK)
        st = read_rows(db, "SELECT name, description, created_ns FROM roles ORDER BY name", "roles",
                       (void **)&out->roles, &out->nroles, sizeof *out->roles, fill_role, err);
    if (st == MESH_OK)
        st = read_rows(db,
                       "SELECT id, role, deny, action, domain, product, columns, created_ns"
                       " FROM grants ORDER BY id",
                       "grants", (void **)&out->grants, &out->ngrants, sizeof *out->grants,
                       fill_grant, err);
    if (st == MESH_OK)
        st = read_rows(db,
                       "SELECT id, domain, product, column_name, tag, type, expr, roles,"
                       " except_roles, created_ns FROM masks ORDER BY id",
                       "masks", (void **)&out->masks, &out->nmasks, sizeof *out->masks, fill_mask,
                       err);
    if (st == MESH_OK)
        st = read_rows(db,
                       "SELECT id, role, domain, product, predicate, created_ns FROM row_filters"
                       " ORDER BY id",
                       "row filters", (void **)&out->filters, &out->nfilters, sizeof *out->filters,
                       fill_filter, err);
    /* tags approved for columns (masks may target them) */
    if (st == MESH_OK)
        st = mesh__catalog_coltags_read(db, NULL, NULL, &out->coltags, &out->ncoltags, err);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    unlock(c);
    if (st != MESH_OK)
        mesh_policy_src_free(out);
    return st;
}

mesh_status_t mesh_catalog_policy_bump(mesh_catalog_t *c, mesh_err_t *err)
{
    mesh_status_t st = begin(c, err);
    if (st != MESH_OK)
        return st;
    return finish(c, MESH_OK, true, err);
}

mesh_status_t mesh_catalog_role_create(mesh_catalog_t *c, const char *name, const char *description,
                                       mesh_err_t *err)
{
    mesh_status_t st = begin(c, err);
    if (st != MESH_OK)
        return st;
    sqlite3 *db = mesh__catalog_db(c);
    sqlite3_stmt *q;
    int changes = 0;
    if ((st = prep(db,
                   "INSERT INTO roles(name, description, created_ns) VALUES (?1, ?2, ?3)"
                   " ON CONFLICT(name) DO NOTHING",
                   &q, err)) == MESH_OK) {
        sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, description ? description : "", -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 3, mesh_now_ns());
        st = run(db, q, "role", &changes, err);
    }
    if (st == MESH_OK && changes == 0)
        st = mesh_err_set(err, MESH_CONFLICT, "role '%s' exists", name);
    return finish(c, st, true, err);
}

mesh_status_t mesh_catalog_role_delete(mesh_catalog_t *c, const char *name, mesh_err_t *err)
{
    mesh_status_t st = begin(c, err);
    if (st != MESH_OK)
        return st;
    sqlite3 *db = mesh__catalog_db(c);
    sqlite3_stmt *q;
    int changes = 0;
    if ((st = prep(db, "DELETE FROM roles WHERE name = ?1", &q, err)) == MESH_OK) {
        sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
        st = run(db, q, "role", &changes, err);
    }
    if (st == MESH_OK && changes == 0)
        st = mesh_err_set(err, MESH_NOT_FOUND, "no role '%s'", name);
    const char *dependents[] = {"DELETE FROM grants WHERE role = ?1",
                                "DELETE FROM row_filters WHERE role = ?1"};
    for (size_t i = 0; i < 2 && st == MESH_OK; i++)
        if ((st = prep(db, dependents[i], &q, err)) == MESH_OK) {
            sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
            st = run(db, q, "role", NULL, err);
        }
    return finish(c, st, true, err);
}

/* Steps an INSERT ... RETURNING id. */
static mesh_status_t insert_id(sqlite3_stmt *q, int64_t *id, mesh_err_t *err)
{
    sqlite3 *db = sqlite3_db_handle(q);
    mesh_status_t st = MESH_OK;
    if (sqlite3_step(q) == SQLITE_ROW)
        *id = sqlite3_column_int64(q, 0);
    else
        st = mesh__catalog_err(db, err, "insert");
    sqlite3_finalize(q);
    return st;
}

mesh_status_t mesh_catalog_grant_add(mesh_catalog_t *c, mesh_grant_rec_t *g, mesh_err_t *err)
{
    mesh_status_t st = begin(c, err);
    if (st != MESH_OK)
        return st;
    sqlite3 *db = mesh__catalog_db(c);
    sqlite3_stmt *q;
    static const char sql[] =
        "INSERT INTO grants(role, deny, action, domain, product, columns, created_ns)"
        " VALUES (?1,?2,?3,?4,?5,?6,?7) RETURNING id";
    if ((st = prep(db, sql, &q, err)) == MESH_OK) {
        g->created_ns = mesh_now_ns();
        sqlite3_bind_text(q, 1, g->role, -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 2, g->deny);
        sqlite3_bind_text(q, 3, g->action, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 4, g->domain, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 5, g->product, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 6, g->columns, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 7, g->created_ns);
        st = insert_id(q, &g->id, err);
    }
    return finish(c, st, true, err);
}

mesh_status_t mesh_catalog_mask_add(mesh_catalog_t *c, mesh_mask_rec_t *m, mesh_err_t *err)
{
    mesh_status_t st = begin(c, err);
    if (st != MESH_OK)
        return st;
    sqlite3 *db = mesh__catalog_db(c);
    sqlite3_stmt *q;
    static const char sql[] =
        "INSERT INTO masks(domain, product, column_name, tag, type, expr, roles, except_roles,"
        " created_ns) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9) RETURNING id";
    if ((st = prep(db, sql, &q, err)) == MESH_OK) {
        m->created_ns = mesh_now_ns();
        sqlite3_bind_text(q, 1, m->domain, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, m->product, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, m->column, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 4, m->tag, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 5, m->type, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 6, m->expr, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 7, m->roles, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 8, m->except, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 9, m->created_ns);
        st = insert_id(q, &m->id, err);
    }
    return finish(c, st, true, err);
}

mesh_status_t mesh_catalog_filter_add(mesh_catalog_t *c, mesh_filter_rec_t *f, mesh_err_t *err)
{
    mesh_status_t st = begin(c, err);
    if (st != MESH_OK)
        return st;
    sqlite3 *db = mesh__catalog_db(c);
    sqlite3_stmt *q;
    static const char sql[] =
        "INSERT INTO row_filters(role, domain, product, predicate, created_ns)"
        " VALUES (?1,?2,?3,?4,?5) RETURNING id";
    if ((st = prep(db, sql, &q, err)) == MESH_OK) {
        f->created_ns = mesh_now_ns();
        sqlite3_bind_text(q, 1, f->role, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, f->domain, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, f->product, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 4, f->predicate, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 5, f->created_ns);
        st = insert_id(q, &f->id, err);
    }
    return finish(c, st, true, err);
}

mesh_status_t mesh_catalog_policy_delete(mesh_catalog_t *c, const char *kind, int64_t id,
                                         mesh_err_t *err)
{
    const char *sql = strcmp(kind, "grants") == 0        ? "DELETE FROM grants WHERE id = ?1"
                      : strcmp(kind, "masks") == 0       ? "DELETE FROM masks WHERE id = ?1"
                      : strcmp(kind, "row_filters") == 0 ? "DELETE FROM row_filters WHERE id = ?1"
                                                         : NULL;
    if (sql == NULL)
        return mesh_err_set(err, MESH_INVALID, "no policy kind '%s'", kind);
    mesh_status_t st = begin(c, err);
    if (st != MESH_OK)
        return st;
    sqlite3 *db = mesh__catalog_db(c);
    sqlite3_stmt *q;
    int changes = 0;
    if ((st = prep(db, sql, &q, err)) == MESH_OK) {
        sqlite3_bind_int64(q, 1, id);
        st = run(db, q, kind, &changes, err);
    }
    if (st == MESH_OK && changes == 0)
        st = mesh_err_set(err, MESH_NOT_FOUND, "no %s with id %lld", kind, (long long)id);
    return finish(c, st, true, err);
}
