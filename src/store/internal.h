/*
 * internal.h - what the files of store/ share beyond store.h.
 */
#ifndef MESH_STORE_INTERNAL_H
#define MESH_STORE_INTERNAL_H

#include <sqlite3.h>

#include "store/store.h"

/* The writer's connection (the writer thread only). */
sqlite3 *mesh__store_db(mesh_store_t *s);
/* Adds delta to a product's row count (inside the writer's transaction). */
mesh_status_t mesh__store_rows_add(mesh_store_t *s, const char *product, int64_t delta,
                                   mesh_err_t *err);

/* Test seam: when set, called on the writer thread between a SQLite commit and the
 * publication of its effects on the time-series buffers. */
extern void (*mesh__store_commit_hook)(void *arg);
extern void *mesh__store_commit_hook_arg;

#endif
