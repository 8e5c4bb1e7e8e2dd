/*
 * internal.h - what catalog.c shares with the catalog's other files.
 */
#ifndef MESH_CATALOG_INTERNAL_H
#define MESH_CATALOG_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <sqlite3.h>

#include "catalog/catalog.h"
#include "catalog/classification.h"
#include "core/status.h"

/* The catalog's connection and the mutex that guards it. */
sqlite3 *mesh__catalog_db(mesh_catalog_t *c);
pthread_mutex_t *mesh__catalog_lock(mesh_catalog_t *c);
/* A catalog error from the connection's last one. */
mesh_status_t mesh__catalog_err(sqlite3 *db, mesh_err_t *err, const char *what);
/* One change in one transaction: begin takes the lock and begins (BEGIN IMMEDIATE); finish
 * commits when st is MESH_OK (bumping the policy version first when bump is set), else rolls
 * back, and unlocks. finish returns the final status. */
mesh_status_t mesh__catalog_begin(mesh_catalog_t *c, mesh_err_t *err);
mesh_status_t mesh__catalog_finish(mesh_catalog_t *c, mesh_status_t st, bool bump, mesh_err_t *err);
/* The approved column tags (domain, product NULL: all), read on db by a caller that holds
 * the lock; free() *out. */
mesh_status_t mesh__catalog_coltags_read(sqlite3 *db, const char *domain, const char *product,
                                         mesh_coltag_rec_t **out, size_t *n, mesh_err_t *err);

#endif
