/*
 * mqtt.c - catalog.db's mqtt_mappings table (see mqtt.h).
 */
#include "catalog/mqtt.h"

#include <sqlite3.h>

#include "catalog/internal.h"

mesh_status_t mesh__catalog_mqtt_init(mesh_catalog_t *c, mesh_err_t *err)
{
    sqlite3 *db = mesh__catalog_db(c);
    if (sqlite3_exec(db,
                     "CREATE TABLE IF NOT EXISTS mqtt_mappings(name TEXT PRIMARY KEY,"
                     " spec TEXT NOT NULL, created_ns INTEGER NOT NULL) STRICT, WITHOUT ROWID;",
                     NULL, NULL, NULL) != SQLITE_OK)
        return mesh__catalog_err(db, err, "schema");
    return MESH_OK;
}

mesh_status_t mesh_catalog_mqtt_put(mesh_catalog_t *c, const char *name, const char *spec,
                                    int64_t created_ns, mesh_err_t *err)
{
    sqlite3 *db = mesh__catalog_db(c);
    pthread_mutex_lock(mesh__catalog_lock(c));
    sqlite3_stmt *q = NULL;
    mesh_status_t st = MESH_OK;
    if (sqlite3_prepare_v2(db, "INSERT INTO mqtt_mappings(name, spec, created_ns) VALUES (?,?,?)",
                           -1, &q, NULL) != SQLITE_OK) {
        st = mesh__catalog_err(db, err, "mqtt mapping");
        goto out;
    }
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, spec, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, created_ns);
    if (sqlite3_step(q) != SQLITE_DONE) {
        if ((sqlite3_extended_errcode(db) & 0xff) == SQLITE_CONSTRAINT)
            st = mesh_err_set(err, MESH_CONFLICT, "an MQTT mapping named '%s' exists", name);
        else
            st = mesh__catalog_err(db, err, "mqtt mapping");
    }
out:
    sqlite3_finalize(q);
    pthread_mutex_unlock(mesh__catalog_lock(c));
    return st;
}

mesh_status_t mesh_catalog_mqtt_delete(mesh_catalog_t *c, const char *name, mesh_err_t *err)
{
    sqlite3 *db = mesh__catalog_db(c);
    pthread_mutex_lock(mesh__catalog_lock(c));
    sqlite3_stmt *q = NULL;
    mesh_status_t st = MESH_OK;
    if (sqlite3_prepare_v2(db, "DELETE FROM mqtt_mappings WHERE name = ?", -1, &q, NULL) !=
        SQLITE_OK) {
        st = mesh__catalog_err(db, err, "mqtt mapping");
        goto out;
    }
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_DONE)
        st = mesh__catalog_err(db, err, "mqtt mapping");
    else if (sqlite3_changes(db) == 0)
        st = mesh_err_set(err, MESH_NOT_FOUND, "no MQTT mapping named '%s'", name);
out:
    sqlite3_finalize(q);
    pthread_mutex_unlock(mesh__catalog_lock(c));
    return st;
}

mesh_status_t mesh_catalog_mqtt_list(mesh_catalog_t *c, mesh_catalog_mqtt_fn fn, void *arg,
                                     mesh_err_t *err)
{
    sqlite3 *db = mesh__catalog_db(c);
    pthread_mutex_lock(mesh__catalog_lock(c));
    sqlite3_stmt *q = NULL;
    mesh_status_t st = MESH_OK;
    if (sqlite3_prepare_v2(db, "SELECT name, spec, created_ns FROM mqtt_mappings ORDER BY name", -1,
                           &q, NULL) != SQLITE_OK) {
        st = mesh__catalog_err(db, err, "mqtt mappings");
        goto out;
    }
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        fn(arg, (const char *)sqlite3_column_text(q, 0), (const char *)sqlite3_column_text(q, 1),
           sqlite3_column_int64(q, 2));
    if (rc != SQLITE_DONE)
        st = mesh__catalog_err(db, err, "mqtt mappings");
out:
    sqlite3_finalize(q);
    pthread_mutex_unlock(mesh__catalog_lock(c));
    return st;
}
