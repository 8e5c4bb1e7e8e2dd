/*
 * internal.h - what catalog.c shares with the catalog's other files.
 */
#ifndef MESH_CATALOG_INTERNAL_H
#define MESH_CATALOG_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>

#include "catalog/catalog.h"
#include "core/status.h"

/* The catalog's connection and the mutex that guards it. */
sqlite3 *mesh__catalog_db(mesh_catalog_t *c);
pthread_mutex_t *mesh__catalog_lock(mesh_catalog_t *c);
/* A catalog error from the connection's last one. */
mesh_status_t mesh__catalog_err(sqlite3 *db, mesh_err_t *err, const char *what);

#endif
