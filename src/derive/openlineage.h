/*
 * openlineage.h - OpenLineage run events for refreshes of derived products, and the emitter
 * that sends them to the configured sinks (docs/derived.md "OpenLineage", decision 0030).
 *
 * A refresh of a derived product is a run of a job (namespace, the product's
 * "domain.product"): its inputs and outputs are datasets (namespace, "domain.product") with the
 * schema facet (fields: name, type) and, on outputs, the columnLineage facet (per output field
 * its input fields and how: IDENTITY, TRANSFORMATION, AGGREGATION). mesh_ol_event_json builds
 * one RunEvent of spec 2-0-2 from such a description; the caller keeps its strings.
 *
 * The emitter owns one bounded queue and one worker thread per sink (a JSON Lines file, an
 * HTTP(S) endpoint). mesh_ol_emit never blocks on I/O and never fails the caller: an event
 * that finds a sink's queue full is dropped for that sink and counted. The file sink appends
 * one line per event, fdatasyncs at most once a second (and a second after the last event,
 * and at the stop) and rotates the file to FILE.1 past its size bound; the HTTP sink POSTs
 * application/json with a timeout and a bounded number of retries. Failures are counted and logged
 * (URLs without their user info or query, never a token).
 */
#ifndef MESH_DERIVE_OPENLINEAGE_H
#define MESH_DERIVE_OPENLINEAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"

#define MESH_OL_SCHEMA_URL "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"

typedef enum {
    MESH_OL_START = 0,
    MESH_OL_RUNNING,
    MESH_OL_COMPLETE,
    MESH_OL_ABORT,
    MESH_OL_FAIL,
    MESH_OL_OTHER,
} mesh_ol_type_t;

const char *mesh_ol_type_name(mesh_ol_type_t t);

/* How an output field is made from an input field (the columnLineage facet's transformation
 * subtype; its type is DIRECT). */
typedef enum {
    MESH_OL_IDENTITY = 0,
    MESH_OL_TRANSFORMATION,
    MESH_OL_AGGREGATION,
} mesh_ol_xform_t;

/* A field of the schema facet. */
typedef struct mesh_ol_field {
    const char *name;
    const char *type; /* e.g. the ODCS logical type ("integer", "timestamp") */
} mesh_ol_field_t;

/* An input field of an output field (columnLineage). */
typedef struct mesh_ol_input_field {
    const char *ns, *name; /* the input dataset */
    const char *field;
    mesh_ol_xform_t xform;
} mesh_ol_input_field_t;

/* An output field's lineage (columnLineage). */
typedef struct mesh_ol_column {
    const char *name;
    const mesh_ol_input_field_t *inputs;
    size_t ninputs;
} mesh_ol_column_t;

typedef struct mesh_ol_dataset {
    const char *ns, *name;
    const mesh_ol_field_t *fields; /* schema facet (omitted when nfields is 0) */
    size_t nfields;
    const mesh_ol_column_t *lineage; /* columnLineage facet (outputs; omitted when 0) */
    size_t nlineage;
} mesh_ol_dataset_t;

#define MESH_OL_RUN_ID_LEN 36 /* a UUID in text form, without the NUL */

typedef struct mesh_ol_event {
    mesh_ol_type_t type;
    int64_t time_ns; /* eventTime (0: now) */
    char run_id[MESH_OL_RUN_ID_LEN + 1];
    const char *job_ns, *job_name;
    const mesh_ol_dataset_t *inputs;
    size_t ninputs;
    const mesh_ol_dataset_t *outputs;
    size_t noutputs;
    const char *error; /* FAIL: the errorMessage run facet's message (NULL: none) */
} mesh_ol_event_t;

/* A new run id: a UUID version 7 (time-ordered, 74 random bits), as the spec recommends.
 * MESH_IO when the system's random source fails. */
mesh_status_t mesh_ol_run_id(char out[MESH_OL_RUN_ID_LEN + 1]);

/* Appends ev as one RunEvent JSON object (no newline) to out; producer is the URI that
 * names meshd in `producer` and every facet's `_producer`. MESH_INVALID when a required
 * member is missing (run id, job namespace or name, a dataset's namespace or name), MESH_NOMEM
 * or MESH_TOO_LARGE from the buffer. */
mesh_status_t mesh_ol_event_json(const mesh_ol_event_t *ev, const char *producer, mesh_buf_t *out,
                                 mesh_err_t *err);

/* ---- the emitter ---- */

typedef struct mesh_ol_opts {
    const char *file;       /* JSON Lines file (NULL: no file sink) */
    int64_t file_max_bytes; /* rotate to FILE.1 past this (0: never) */
    const char *url;        /* http(s) endpoint (NULL: no HTTP sink) */
    const char *cacert;     /* CA file for an https endpoint (NULL: the system's) */
    const char *token;      /* Authorization: Bearer token (NULL: none); never logged */
    int64_t timeout_ns;     /* per POST */
    int retries;            /* further attempts after a failed POST */
    size_t queue_max;       /* events waiting per sink; more are dropped and counted */
    const char *producer;   /* the producer URI (NULL: meshd's) */
} mesh_ol_opts_t;

typedef struct mesh_ol_emitter mesh_ol_emitter_t;

/* Counters of one sink since the start. */
typedef struct mesh_ol_sink_stats {
    bool on;
    uint64_t sent;    /* written (file) or accepted with a 2xx (http) */
    uint64_t failed;  /* given up after the retries, or a write error */
    uint64_t dropped; /* found the queue full (or left in it at the stop) */
    uint64_t queued;  /* waiting now */
} mesh_ol_sink_stats_t;

typedef struct mesh_ol_stats {
    mesh_ol_sink_stats_t file, http;
    uint64_t build_failures; /* events that could not be built */
} mesh_ol_stats_t;

/* Starts the sinks opts names (copied). With neither a file nor a URL, *out is NULL and
 * mesh_ol_emit is a no-op on it. Errors: the file cannot be opened (MESH_IO), the URL is not
 * http(s) (MESH_INVALID). */
mesh_status_t mesh_ol_emitter_create(const mesh_ol_opts_t *opts, mesh_ol_emitter_t **out,
                                     mesh_err_t *err);
/* Stops the workers: the file sink writes what is queued; the HTTP sink finishes the POST in
 * flight and drops (counts) the rest. Accepts NULL. */
void mesh_ol_emitter_destroy(mesh_ol_emitter_t *em);

/* Builds ev and queues it on every sink. Never blocks on I/O, never fails: what cannot be
 * built or queued is counted (and logged at most once a minute). em may be NULL. */
void mesh_ol_emit(mesh_ol_emitter_t *em, const mesh_ol_event_t *ev);

/* The producer URI the emitter writes. */
const char *mesh_ol_producer(const mesh_ol_emitter_t *em);

void mesh_ol_emitter_stats(mesh_ol_emitter_t *em, mesh_ol_stats_t *out);

#endif
