/*
 * topic.h - MQTT topic templates: a topic filter whose single-level wildcards may be named,
 * so that the topic levels they match become column values.
 *
 *     factory/{site}/{device}/telemetry   ->  subscribes to factory/+/+/telemetry and, for
 *                                             factory/lyon/press-7/telemetry, gives
 *                                             site = "lyon", device = "press-7"
 *
 * A template is levels separated by '/'. A level is one of:
 *   {name}   a named single-level wildcard; name is a column name ([A-Za-z_][A-Za-z0-9_]*,
 *            at most 63 bytes), each name at most once per template
 *   +        an unnamed single-level wildcard
 *   #        the multi-level wildcard, only as the last level
 *   text     a literal level: any bytes but '+', '#', '{', '}' and NUL (it may be empty)
 * Limits: MESH_TOPIC_MAX_LEN bytes, MESH_TOPIC_MAX_LEVELS levels, MESH_TOPIC_MAX_NAMED named
 * levels. Matching follows MQTT: '#' also matches its parent level ("a/#" matches "a"), and a
 * topic starting with '$' is not matched by a wildcard in the first level.
 *
 * This module is pure (no MQTT library): it is what the fuzz target and unit tests drive.
 */
#ifndef MESH_MQTT_TOPIC_H
#define MESH_MQTT_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"

#define MESH_TOPIC_MAX_LEN    1024 /* bytes of a template, and of the filter made from it */
#define MESH_TOPIC_MAX_LEVELS 32
#define MESH_TOPIC_MAX_NAMED  16
#define MESH_TOPIC_MAX_VALUE  256 /* bytes of one topic level taken as a column value */

typedef enum {
    MESH_TOPIC_LITERAL = 0,
    MESH_TOPIC_NAMED,  /* {name} */
    MESH_TOPIC_SINGLE, /* + */
    MESH_TOPIC_MULTI,  /* # */
} mesh_topic_level_kind_t;

typedef struct mesh_topic_level {
    mesh_topic_level_kind_t kind;
    char *text; /* LITERAL: the level; NAMED: the name; else NULL (owned) */
    size_t len;
} mesh_topic_level_t;

typedef struct mesh_topic_tmpl {
    mesh_topic_level_t levels[MESH_TOPIC_MAX_LEVELS];
    size_t nlevels;
    size_t nnamed;
    char filter[MESH_TOPIC_MAX_LEN + 1]; /* the MQTT subscription filter ({name} -> +) */
} mesh_topic_tmpl_t;

/* A value taken from a topic: bytes [off, off + len) of the topic. */
typedef struct mesh_topic_value {
    const char *name; /* borrowed from the template */
    size_t off, len;
} mesh_topic_value_t;

/* Parses s (n bytes, need not be NUL-terminated) into t. MESH_INVALID with a reason that
 * names the level on any error; t then holds nothing to free. */
mesh_status_t mesh_topic_tmpl_parse(const char *s, size_t n, mesh_topic_tmpl_t *t, mesh_err_t *err);
void mesh_topic_tmpl_free(mesh_topic_tmpl_t *t);

/* Whether topic (n bytes) matches t; when it does and vals is not NULL, vals[0..t->nnamed)
 * are the named levels' values in template order. */
bool mesh_topic_tmpl_match(const mesh_topic_tmpl_t *t, const char *topic, size_t n,
                           mesh_topic_value_t *vals);

/* Whether some topic matches both templates (so one message could go to both). */
bool mesh_topic_tmpl_overlap(const mesh_topic_tmpl_t *a, const mesh_topic_tmpl_t *b);

#endif
