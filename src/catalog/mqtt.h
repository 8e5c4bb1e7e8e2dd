/*
 * mqtt.h - the catalog's MQTT mappings: each one a name and its definition as JSON text
 * (mqtt/mapping.h reads and checks it; the catalog only keeps it).
 */
#ifndef MESH_CATALOG_MQTT_H
#define MESH_CATALOG_MQTT_H

#include <stdint.h>

#include "catalog/catalog.h"
#include "core/status.h"

/* Adds a mapping: MESH_CONFLICT when the name is taken. */
mesh_status_t mesh_catalog_mqtt_put(mesh_catalog_t *c, const char *name, const char *spec,
                                    int64_t created_ns, mesh_err_t *err);
/* Deletes a mapping: MESH_NOT_FOUND when there is none of that name. */
mesh_status_t mesh_catalog_mqtt_delete(mesh_catalog_t *c, const char *name, mesh_err_t *err);
/* Calls fn for each mapping, by name (under the catalog's lock: fn must not call the
 * catalog). */
typedef void (*mesh_catalog_mqtt_fn)(void *arg, const char *name, const char *spec,
                                     int64_t created_ns);
mesh_status_t mesh_catalog_mqtt_list(mesh_catalog_t *c, mesh_catalog_mqtt_fn fn, void *arg,
                                     mesh_err_t *err);

/* Called by mesh_catalog_open: creates the table. */
mesh_status_t mesh__catalog_mqtt_init(mesh_catalog_t *c, mesh_err_t *err);

#endif
