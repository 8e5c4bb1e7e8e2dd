/*
 * catalog.c - catalog.db: domains, principals, tokens.
 */
#include "catalog/catalog.h"

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/governance.h"
#include "catalog/internal.h"
#include "catalog/mqtt.h"
#include "catalog/security.h"
#include "core/util.h"
#include "crypt/vfs.h"

struct mesh_catalog {
    sqlite3 *db;
    pthread_mutex_t lock;
    char node_id[33];
    bool is_new;
};

static const char *schema_sql =
    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value ANY) STRICT, WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS domains(name TEXT PRIMARY KEY, description TEXT,"
    "  owners TEXT NOT NULL DEFAULT '[]', created_ns INTEGER NOT NULL) STRICT, WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS principals(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    "  kind TEXT NOT NULL, roles TEXT NOT NULL, created_ns INTEGER NOT NULL) STRICT;"
    "CREATE TABLE IF NOT EXISTS tokens(id TEXT PRIMARY KEY, principal_id INTEGER NOT NULL,"
    "  salt BLOB NOT NULL, hash BLOB NOT NULL, created_ns INTEGER NOT NULL,"
    "  expires_ns INTEGER NOT NULL DEFAULT 0, revoked_ns INTEGER NOT NULL DEFAULT 0,"
    "  note TEXT NOT NULL DEFAULT '') STRICT, WITHOUT ROWID;";

static mesh_status_t db_err(sqlite3 *db, mesh_err_t *err, const char *what)
{
    int rc = sqlite3_errcode(db);
    int xrc = sqlite3_extended_errcode(db);
    mesh_status_t code = rc == SQLITE_FULL                             ? MESH_NOSPACE
                         : (rc & 0xff) == SQLITE_CONSTRAINT            ? MESH_CONFLICT
                         : rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB ? MESH_CORRUPT
                         : xrc == SQLITE_IOERR_DATA                    ? MESH_CORRUPT
                                                                       : MESH_IO;
    return mesh_err_set(err, code, "catalog %s: %s", what, mesh_crypt_errmsg(db));
}

void mesh_domain_meta_free(mesh_domain_meta_t *m)
{
    if (m == NULL)
        return;
    free(m->description);
    for (size_t i = 0; i < m->nowners; i++)
        free(m->owners[i]);
    free(m->owners);
    for (size_t i = 0; i < m->nhosts; i++)
        free(m->hosts[i]);
    free(m->hosts);
    m->description = NULL;
    m->owners = NULL;
    m->nowners = 0;
    m->hosts = NULL;
    m->nhosts = 0;
}

bool mesh_domain_replication_ok(const char *mode)
{
    return mode &&
           (strcmp(mode, "none") == 0 || strcmp(mode, "sync") == 0 || strcmp(mode, "async") == 0);
}

mesh_status_t mesh_domain_meta_copy(const mesh_domain_meta_t *src, mesh_domain_meta_t *dst)
{
    memset(dst, 0, sizeof *dst);
    memcpy(dst->name, src->name, sizeof dst->name);
    dst->created_ns = src->created_ns;
    if (src->description && (dst->description = strdup(src->description)) == NULL)
        goto err;
    if (src->nowners) {
        if ((dst->owners = calloc(src->nowners, sizeof *dst->owners)) == NULL)
            goto err;
        for (size_t i = 0; i < src->nowners; i++) {
            if ((dst->owners[i] = strdup(src->owners[i])) == NULL)
                goto err;
            dst->nowners++;
        }
    }
    memcpy(dst->replication, src->replication, sizeof dst->replication);
    dst->residency_local = src->residency_local;
    if (src->nhosts) {
        if ((dst->hosts = calloc(src->nhosts, sizeof *dst->hosts)) == NULL)
            goto err;
        for (size_t i = 0; i < src->nhosts; i++) {
            if ((dst->hosts[i] = strdup(src->hosts[i])) == NULL)
                goto err;
            dst->nhosts++;
        }
    }
    return MESH_OK;
err:
    mesh_domain_meta_free(dst);
    return MESH_NOMEM;
}

/*
 * The catalog version (catalog.h): a trigger per table and per kind of change, made for
 * every table but meta (tables added by later releases get theirs at the next open). Row
 * triggers: a change of n rows raises it by n, which is fine, it only has to grow.
 */
static mesh_status_t version_triggers(sqlite3 *db, mesh_err_t *err)
{
    if (sqlite3_exec(db,
                     "INSERT INTO meta(key, value) VALUES ('catalog_version', 0)"
                     " ON CONFLICT(key) DO NOTHING",
                     NULL, NULL, NULL) != SQLITE_OK)
        return db_err(db, err, "version");
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db,
                           "SELECT name FROM sqlite_schema WHERE type = 'table' AND name <> 'meta'"
                           " AND name NOT LIKE 'sqlite_%' ORDER BY name",
                           -1, &q, NULL) != SQLITE_OK)
        return db_err(db, err, "version");
    static const char *const ops[] = {"INSERT", "UPDATE", "DELETE"};
    mesh_status_t st = MESH_OK;
    char names[64][64];
    size_t n = 0;
    while (sqlite3_step(q) == SQLITE_ROW && n < MESH_ARRAY_LEN(names)) {
        const char *t = (const char *)sqlite3_column_text(q, 0);
        if (t && strlen(t) < sizeof names[0] &&
            strspn(t, "abcdefghijklmnopqrstuvwxyz_0123456789") == strlen(t))
            snprintf(names[n++], sizeof names[0], "%s", t);
    }
    sqlite3_finalize(q);
    for (size_t i = 0; i < n && st == MESH_OK; i++) {
        for (size_t k = 0; k < MESH_ARRAY_LEN(ops) && st == MESH_OK; k++) {
            char sql[512];
            snprintf(sql, sizeof sql,
                     "CREATE TRIGGER IF NOT EXISTS catalog_version_%s_%c AFTER %s ON %s BEGIN"
                     " UPDATE meta SET value = value + 1 WHERE key = 'catalog_version'; END",
                     names[i], ops[k][0] + ('a' - 'A'), ops[k], names[i]);
            if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
                st = db_err(db, err, "version trigger");
        }
    }
    return st;
}

static int64_t meta_int(mesh_catalog_t *c, const char *key)
{
    int64_t v = 0;
    sqlite3_stmt *q;
    pthread_mutex_lock(&c->lock);
    if (sqlite3_prepare_v2(c->db, "SELECT value FROM meta WHERE key = ?1", -1, &q, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW)
            v = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    pthread_mutex_unlock(&c->lock);
    return v;
}

int64_t mesh_catalog_version(mesh_catalog_t *c)
{
    return c ? meta_int(c, "catalog_version") : 0;
}

int64_t mesh_catalog_restored_ns(mesh_catalog_t *c)
{
    return meta_int(c, "restored_ns");
}

mesh_status_t mesh_catalog_version_raise(mesh_catalog_t *c, int64_t to, mesh_err_t *err)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "BEGIN IMMEDIATE; UPDATE meta SET value = max(value, %lld) WHERE key = "
             "'catalog_version'; DELETE FROM meta WHERE key = 'restored_ns'; COMMIT",
             (long long)to);
    pthread_mutex_lock(&c->lock);
    mesh_status_t st = MESH_OK;
    if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        st = db_err(c->db, err, "version");
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    }
    pthread_mutex_unlock(&c->lock);
    return st;
}

mesh_status_t mesh_catalog_mark_restored(mesh_catalog_t *c, mesh_err_t *err)
{
    char sql[160];
    snprintf(sql, sizeof sql,
             "INSERT OR REPLACE INTO meta(key, value) VALUES ('restored_ns', %lld)",
             (long long)mesh_now_ns());
    pthread_mutex_lock(&c->lock);
    mesh_status_t st = sqlite3_exec(c->db, sql, NULL, NULL, NULL) == SQLITE_OK
                           ? MESH_OK
                           : db_err(c->db, err, "mark");
    pthread_mutex_unlock(&c->lock);
    return st;
}

mesh_status_t mesh_catalog_open(const char *path, mesh_catalog_t **out, mesh_err_t *err)
{
    mesh_catalog_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    pthread_mutex_init(&c->lock, NULL);
    mesh_status_t st;
    /* through the encrypting VFS when the node attached its key for path */
    if ((st = mesh_crypt_sqlite_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &c->db,
                                     err)) != MESH_OK)
        goto err;
    sqlite3_busy_timeout(c->db, 10000);
    if (sqlite3_exec(c->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK) {
        st = db_err(c->db, err, "schema");
        goto err;
    }
    if ((st = mesh__catalog_security_init(c, err)) != MESH_OK ||
        (st = mesh__catalog_classification_init(c, err)) != MESH_OK)
        goto err;
    if ((st = mesh__catalog_mqtt_init(c, err)) != MESH_OK ||
        (st = mesh__catalog_gov_init(c, err)) != MESH_OK)
        goto err;
    /* replication columns, added to catalogs made before them (an error: already there) */
    sqlite3_exec(c->db, "ALTER TABLE domains ADD COLUMN hosts TEXT NOT NULL DEFAULT '[]'", NULL,
                 NULL, NULL);
    sqlite3_exec(c->db, "ALTER TABLE domains ADD COLUMN replication TEXT NOT NULL DEFAULT 'none'",
                 NULL, NULL, NULL);
    sqlite3_exec(c->db, "ALTER TABLE domains ADD COLUMN residency_local INTEGER NOT NULL DEFAULT 0",
                 NULL, NULL, NULL);
    if ((st = version_triggers(c->db, err)) != MESH_OK)
        goto err;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(c->db, "SELECT value FROM meta WHERE key = 'node_id'", -1, &q, NULL) !=
        SQLITE_OK) {
        st = db_err(c->db, err, "read");
        goto err;
    }
    if (sqlite3_step(q) == SQLITE_ROW) {
        snprintf(c->node_id, sizeof c->node_id, "%s", (const char *)sqlite3_column_text(q, 0));
    } else {
        uint8_t raw[16];
        mesh_random(raw, sizeof raw);
        mesh_hex(raw, sizeof raw, c->node_id);
        char sql[160];
        snprintf(sql, sizeof sql,
                 "INSERT INTO meta(key, value) VALUES ('node_id', '%s'), ('created_ns', %lld)",
                 c->node_id, (long long)mesh_now_ns());
        c->is_new = true;
        if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            sqlite3_finalize(q);
            st = db_err(c->db, err, "init");
            goto err;
        }
    }
    sqlite3_finalize(q);
    *out = c;
    return MESH_OK;
err:
    mesh_catalog_close(c);
    return st;
}

void mesh_catalog_close(mesh_catalog_t *c)
{
    if (c == NULL)
        return;
    sqlite3_close(c->db);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

const char *mesh_catalog_node_id(const mesh_catalog_t *c)
{
    return c->node_id;
}

bool mesh_catalog_is_new(const mesh_catalog_t *c)
{
    return c->is_new;
}

mesh_status_t mesh_catalog_domain_put(mesh_catalog_t *c, const mesh_domain_meta_t *m,
                                      mesh_err_t *err)
{
    json_t *owners = json_array();
    for (size_t i = 0; owners && i < m->nowners; i++)
        json_array_append_new(owners, json_string(m->owners[i]));
    char *ojs = owners ? json_dumps(owners, JSON_COMPACT) : NULL;
    json_decref(owners);
    json_t *hosts = json_array();
    for (size_t i = 0; hosts && i < m->nhosts; i++)
        json_array_append_new(hosts, json_string(m->hosts[i]));
    char *hjs = hosts ? json_dumps(hosts, JSON_COMPACT) : NULL;
    json_decref(hosts);
    if (ojs == NULL || hjs == NULL) {
        free(ojs);
        free(hjs);
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    pthread_mutex_lock(&c->lock);
    sqlite3_stmt *q;
    mesh_status_t st = MESH_OK;
    if (sqlite3_prepare_v2(c->db,
                           "INSERT INTO domains(name, description, owners, created_ns, hosts,"
                           " replication, residency_local) VALUES (?,?,?,?,?,?,?)",
                           -1, &q, NULL) != SQLITE_OK) {
        st = db_err(c->db, err, "prepare");
    } else {
        sqlite3_bind_text(q, 1, m->name, -1, SQLITE_STATIC);
        if (m->description)
            sqlite3_bind_text(q, 2, m->description, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, ojs, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 4, m->created_ns);
        sqlite3_bind_text(q, 5, hjs, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 6, m->replication[0] ? m->replication : "none", -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 7, m->residency_local ? 1 : 0);
        if (sqlite3_step(q) != SQLITE_DONE) {
            if ((sqlite3_errcode(c->db) & 0xff) == SQLITE_CONSTRAINT)
                st = mesh_err_set(err, MESH_CONFLICT, "domain '%s' already exists", m->name);
            else
                st = db_err(c->db, err, "insert domain");
        }
        sqlite3_finalize(q);
    }
    pthread_mutex_unlock(&c->lock);
    free(ojs);
    free(hjs);
    return st;
}

mesh_status_t mesh_catalog_domain_set_hosts(mesh_catalog_t *c, const mesh_domain_meta_t *m,
                                            mesh_err_t *err)
{
    json_t *hosts = json_array();
    for (size_t i = 0; hosts && i < m->nhosts; i++)
        json_array_append_new(hosts, json_string(m->hosts[i]));
    char *hjs = hosts ? json_dumps(hosts, JSON_COMPACT) : NULL;
    json_decref(hosts);
    if (hjs == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    pthread_mutex_lock(&c->lock);
    sqlite3_stmt *q;
    mesh_status_t st = MESH_OK;
    if (sqlite3_prepare_v2(c->db, "UPDATE domains SET hosts = ?, replication = ? WHERE name = ?",
                           -1, &q, NULL) != SQLITE_OK) {
        st = db_err(c->db, err, "prepare");
    } else {
        sqlite3_bind_text(q, 1, hjs, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, m->replication[0] ? m->replication : "none", -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, m->name, -1, SQLITE_STATIC);
        if (sqlite3_step(q) != SQLITE_DONE)
            st = db_err(c->db, err, "update domain");
        else if (sqlite3_changes(c->db) == 0)
            st = mesh_err_set(err, MESH_NOT_FOUND, "no domain '%s'", m->name);
        sqlite3_finalize(q);
    }
    pthread_mutex_unlock(&c->lock);
    free(hjs);
    return st;
}

mesh_status_t mesh_catalog_domain_delete(mesh_catalog_t *c, const char *name, mesh_err_t *err)
{
    pthread_mutex_lock(&c->lock);
    sqlite3_stmt *q;
    mesh_status_t st = MESH_OK;
    if (sqlite3_prepare_v2(c->db, "DELETE FROM domains WHERE name = ?", -1, &q, NULL) !=
        SQLITE_OK) {
        st = db_err(c->db, err, "prepare");
    } else {
        sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_step(q) != SQLITE_DONE)
            st = db_err(c->db, err, "delete domain");
        else if (sqlite3_changes(c->db) == 0)
            st = mesh_err_set(err, MESH_NOT_FOUND, "no domain '%s'", name);
        sqlite3_finalize(q);
    }
    pthread_mutex_unlock(&c->lock);
    return st;
}

static void parse_list(const char *js, char ***out, size_t *nout)
{
    json_t *a = json_loads(js ? js : "[]", 0, NULL);
    size_t n = json_is_array(a) ? json_array_size(a) : 0;
    if (n) {
        *out = calloc(n, sizeof **out);
        for (size_t i = 0; *out && i < n; i++) {
            const char *s = json_string_value(json_array_get(a, i));
            if (s && ((*out)[*nout] = strdup(s)) != NULL)
                (*nout)++;
        }
    }
    json_decref(a);
}

mesh_status_t mesh_catalog_domains(mesh_catalog_t *c, mesh_domain_meta_t **out, size_t *n,
                                   mesh_err_t *err)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&c->lock);
    sqlite3_stmt *q;
    mesh_status_t st = MESH_OK;
    if (sqlite3_prepare_v2(
            c->db,
            "SELECT name, description, owners, created_ns, hosts, replication, residency_local"
            " FROM domains"
            " ORDER BY name",
            -1, &q, NULL) != SQLITE_OK) {
        st = db_err(c->db, err, "prepare");
        pthread_mutex_unlock(&c->lock);
        return st;
    }
    size_t cap = 0;
    mesh_domain_meta_t *v = NULL;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            mesh_domain_meta_t *nv = realloc(v, cap * sizeof *nv);
            if (nv == NULL) {
                st = mesh_err_set(err, MESH_NOMEM, "out of memory");
                break;
            }
            v = nv;
        }
        mesh_domain_meta_t *m = &v[*n];
        memset(m, 0, sizeof *m);
        snprintf(m->name, sizeof m->name, "%s", (const char *)sqlite3_column_text(q, 0));
        if (sqlite3_column_type(q, 1) != SQLITE_NULL)
            m->description = strdup((const char *)sqlite3_column_text(q, 1));
        parse_list((const char *)sqlite3_column_text(q, 2), &m->owners, &m->nowners);
        m->created_ns = sqlite3_column_int64(q, 3);
        parse_list((const char *)sqlite3_column_text(q, 4), &m->hosts, &m->nhosts);
        snprintf(m->replication, sizeof m->replication, "%s",
                 sqlite3_column_text(q, 5) ? (const char *)sqlite3_column_text(q, 5) : "none");
        m->residency_local = sqlite3_column_int(q, 6) != 0;
        (*n)++;
    }
    if (st == MESH_OK && rc != SQLITE_DONE)
        st = db_err(c->db, err, "read domains"); /* never a shorter list */
    sqlite3_finalize(q);
    pthread_mutex_unlock(&c->lock);
    if (st != MESH_OK) {
        for (size_t i = 0; i < *n; i++)
            mesh_domain_meta_free(&v[i]);
        free(v);
        v = NULL;
        *n = 0;
    }
    *out = v;
    return st;
}

mesh_status_t mesh_catalog_principal_put(mesh_catalog_t *c, const char *name, const char *kind,
                                         const char *roles, int64_t *id, mesh_err_t *err)
{
    pthread_mutex_lock(&c->lock);
    sqlite3_stmt *q;
    mesh_status_t st = MESH_OK;
    if (sqlite3_prepare_v2(c->db,
                           "INSERT INTO principals(name, kind, roles, created_ns) VALUES (?,?,?,?)"
                           " ON CONFLICT(name) DO UPDATE SET kind = excluded.kind,"
                           " roles = excluded.roles RETURNING id",
                           -1, &q, NULL) != SQLITE_OK) {
        st = db_err(c->db, err, "prepare");
    } else {
        sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, roles, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 4, mesh_now_ns());
        if (sqlite3_step(q) == SQLITE_ROW)
            *id = sqlite3_column_int64(q, 0);
        else
            st = db_err(c->db, err, "principal");
        sqlite3_finalize(q);
    }
    pthread_mutex_unlock(&c->lock);
    return st;
}

mesh_status_t mesh_catalog_principal_get(mesh_catalog_t *c, int64_t id, mesh_principal_t *out)
{
    pthread_mutex_lock(&c->lock);
    sqlite3_stmt *q;
    mesh_status_t st = MESH_NOT_FOUND;
    if (sqlite3_prepare_v2(c->db, "SELECT name, kind, roles FROM principals WHERE id = ?", -1, &q,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_int64(q, 1, id);
        if (sqlite3_step(q) == SQLITE_ROW) {
            out->id = id;
            snprintf(out->name, sizeof out->name, "%s", (const char *)sqlite3_column_text(q, 0));
            snprintf(out->kind, sizeof out->kind, "%s", (const char *)sqlite3_column_text(q, 1));
            snprintf(out->roles, sizeof out->roles, "%s", (const char *)sqlite3_column_text(q, 2));
            st = MESH_OK;
        }
        sqlite3_finalize(q);
    }
    pthread_mutex_unlock(&c->lock);
    return st;
}

mesh_status_t mesh_catalog_token_put(mesh_catalog_t *c, const mesh_token_rec_t *t, mesh_err_t *err)
{
    pthread_mutex_lock(&c->lock);
    sqlite3_stmt *q;
    mesh_status_t st = MESH_OK;
    if (sqlite3_prepare_v2(c->db,
                           "INSERT OR REPLACE INTO tokens(id, principal_id, salt, hash, created_ns,"
                           " expires_ns, revoked_ns, note) VALUES (?,?,?,?,?,?,?,?)",
                           -1, &q, NULL) != SQLITE_OK) {
        st = db_err(c->db, err, "prepare");
    } else {
        sqlite3_bind_text(q, 1, t->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, t->principal_id);
        sqlite3_bind_blob(q, 3, t->salt, sizeof t->salt, SQLITE_STATIC);
        sqlite3_bind_blob(q, 4, t->hash, sizeof t->hash, SQLITE_STATIC);
        sqlite3_bind_int64(q, 5, t->created_ns);
        sqlite3_bind_int64(q, 6, t->expires_ns);
        sqlite3_bind_int64(q, 7, t->revoked_ns);
        sqlite3_bind_text(q, 8, t->note, -1, SQLITE_STATIC);
        if (sqlite3_step(q) != SQLITE_DONE)
            st = db_err(c->db, err, "token");
        sqlite3_finalize(q);
    }
    pthread_mutex_unlock(&c->lock);
    return st;
}

mesh_status_t mesh_catalog_token_get(mesh_catalog_t *c, const char *id, mesh_token_rec_t *out)
{
    pthread_mutex_lock(&c->lock);
    sqlite3_stmt *q;
    mesh_status_t st = MESH_NOT_FOUND;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT principal_id, salt, hash, created_ns, expires_ns, revoked_ns,"
                           " note FROM tokens WHERE id = ?",
                           -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_bytes(q, 1) == sizeof out->salt &&
            sqlite3_column_bytes(q, 2) == sizeof out->hash) {
            memset(out, 0, sizeof *out);
            snprintf(out->id, sizeof out->id, "%s", id);
            out->principal_id = sqlite3_column_int64(q, 0);
            memcpy(out->salt, sqlite3_column_blob(q, 1), sizeof out->salt);
            memcpy(out->hash, sqlite3_column_blob(q, 2), sizeof out->hash);
            out->created_ns = sqlite3_column_int64(q, 3);
            out->expires_ns = sqlite3_column_int64(q, 4);
            out->revoked_ns = sqlite3_column_int64(q, 5);
            snprintf(out->note, sizeof out->note, "%s", (const char *)sqlite3_column_text(q, 6));
            st = MESH_OK;
        }
        sqlite3_finalize(q);
    }
    pthread_mutex_unlock(&c->lock);
    return st;
}

int64_t mesh_catalog_token_count(mesh_catalog_t *c)
{
    pthread_mutex_lock(&c->lock);
    sqlite3_stmt *q;
    int64_t n = 0;
    if (sqlite3_prepare_v2(c->db, "SELECT count(*) FROM tokens", -1, &q, NULL) == SQLITE_OK) {
        if (sqlite3_step(q) == SQLITE_ROW)
            n = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    pthread_mutex_unlock(&c->lock);
    return n;
}

sqlite3 *mesh__catalog_db(mesh_catalog_t *c)
{
    return c->db;
}

pthread_mutex_t *mesh__catalog_lock(mesh_catalog_t *c)
{
    return &c->lock;
}

mesh_status_t mesh__catalog_err(sqlite3 *db, mesh_err_t *err, const char *what)
{
    return db_err(db, err, what);
}
