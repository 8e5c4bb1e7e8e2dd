/*
 * mapping.h - an MQTT mapping: which topics feed which product, how their payloads read and
 * as whom they write.
 *
 * As JSON (the HTTP API, the catalog):
 *
 *     {"name": "press-telemetry", "topic": "factory/{site}/{device}/telemetry",
 *      "domain": "factory-a", "product": "telemetry", "format": "json", "qos": 1,
 *      "principal": "mqtt"}
 *
 * As a config file line (mqtt_mapping = ..., repeated):
 *
 *     NAME TOPIC DOMAIN.PRODUCT [json|lineprotocol] [qos=0|1] [principal=NAME]
 *
 * name: [a-z][a-z0-9_-]{0,62}. topic: a template (topic.h); every {name} in it must be a
 * column of the product (checked against the catalog by the caller). format: json (an object
 * or an array of objects, as POST .../rows takes them) or lineprotocol ("lp" is accepted too;
 * the measurement must be the product's name). qos: 1 (default) or 0. principal: whom the
 * messages write as (default "mqtt"); access policy applies to it like to any caller.
 */
#ifndef MESH_MQTT_MAPPING_H
#define MESH_MQTT_MAPPING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"
#include "mqtt/topic.h"

#define MESH_MQTT_MAPPING_MAX_JSON  (16 * 1024) /* bytes of a mapping's JSON */
#define MESH_MQTT_DEFAULT_PRINCIPAL "mqtt"

typedef enum { MESH_MQTT_FORMAT_JSON = 0, MESH_MQTT_FORMAT_LP } mesh_mqtt_format_t;

typedef struct mesh_mqtt_mapping {
    char name[64];
    char topic[MESH_TOPIC_MAX_LEN + 1]; /* the template as given */
    char domain[64];
    char product[64];
    mesh_mqtt_format_t format;
    int qos; /* 0 or 1 */
    char principal[64];
    bool from_config; /* defined by the config file (not in the catalog) */
    int64_t created_ns;
    mesh_topic_tmpl_t tmpl; /* parsed topic (owned) */
} mesh_mqtt_mapping_t;

/* Parses a mapping from JSON text (n bytes). Unknown fields, wrong types and bad values are
 * MESH_INVALID with a reason naming the field. m must be freed with mesh_mqtt_mapping_free
 * on success only. */
mesh_status_t mesh_mqtt_mapping_from_json(const char *s, size_t n, mesh_mqtt_mapping_t *m,
                                          mesh_err_t *err);
/* Parses a config file line's value (see above). */
mesh_status_t mesh_mqtt_mapping_from_line(const char *line, mesh_mqtt_mapping_t *m,
                                          mesh_err_t *err);
/* Writes m as a JSON object (the fields above, plus "source" and "created" when with_meta). */
mesh_status_t mesh_mqtt_mapping_to_json(const mesh_mqtt_mapping_t *m, bool with_meta,
                                        mesh_buf_t *out);
void mesh_mqtt_mapping_free(mesh_mqtt_mapping_t *m);

const char *mesh_mqtt_format_name(mesh_mqtt_format_t f);

#endif
