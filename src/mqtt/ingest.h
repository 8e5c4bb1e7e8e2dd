/*
 * ingest.h - one MQTT message through a mapping into its product: the topic's named levels
 * become column values, the payload is parsed (JSON or line protocol) and validated against
 * the contract, and the batch goes through the domain writer (log, fsync, apply).
 *
 * A message is one unit. When its rows can be stored they are (a product whose contract
 * quarantines bad rows keeps its good rows and quarantines the bad ones, as for HTTP). When
 * they cannot - the payload does not parse, holds no rows, is too large, or a row breaks the
 * contract of a product that refuses bad rows, or breaks a unique column - the whole payload
 * goes to the product's quarantine with the reason, whatever the contract's onInvalid says:
 * a publisher cannot be told "400", and dropping the message would lose it silently.
 *
 * Nothing here knows MQTT's wire protocol or access policy (client.c does both): this is what
 * the unit tests drive with a real domain.
 */
#ifndef MESH_MQTT_INGEST_H
#define MESH_MQTT_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/registry.h"
#include "core/status.h"
#include "ingest/batch.h"
#include "mqtt/mapping.h"

typedef enum {
    MESH_MQTT_STORED = 0,  /* rows are durable (some may be quarantined) */
    MESH_MQTT_QUARANTINED, /* the payload is durable in the quarantine */
    MESH_MQTT_DENIED,      /* the mapping's principal may not write the product */
    MESH_MQTT_DROPPED,     /* no such product (or retired): nothing to keep it in */
    MESH_MQTT_FAILED,      /* the write did not become durable: not acknowledged */
    MESH_MQTT_RESULT__COUNT
} mesh_mqtt_result_t;

const char *mesh_mqtt_result_name(mesh_mqtt_result_t r);

typedef struct mesh_mqtt_outcome {
    mesh_mqtt_result_t result;
    size_t rows;        /* rows stored */
    size_t quarantined; /* rows (or payloads) quarantined */
    uint64_t seq;       /* the domain log position, when something was written */
    char reason[256];   /* why it was quarantined, dropped or failed */
} mesh_mqtt_outcome_t;

typedef struct mesh_mqtt_ingest_opts {
    size_t max_payload;         /* bytes; larger payloads are quarantined (their first KiB) */
    mesh_batch_limits_t limits; /* of the batch one message makes */
} mesh_mqtt_ingest_opts_t;

/*
 * Writes one message (topic n_topic bytes, payload n bytes; both borrowed) through mapping m
 * into its product in snapshot s. Fills out; returns MESH_OK unless the write failed in a way
 * that a retry may fix (out->result FAILED: the message must not be acknowledged).
 */
mesh_status_t mesh_mqtt_ingest(const mesh_mqtt_ingest_opts_t *o, const mesh_mqtt_mapping_t *m,
                               const mesh_snapshot_t *s, const char *topic, size_t n_topic,
                               const void *payload, size_t n, mesh_mqtt_outcome_t *out);

#endif
