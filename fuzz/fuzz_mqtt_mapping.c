/*
 * fuzz_mqtt_mapping.c - MQTT mappings from outside: the topic template parser and matcher
 * (the first line is a template, the second a topic matched against it: topics come from the
 * broker), and the whole input as a mapping's JSON (HTTP API) and as a config file line.
 * Checks: a match's values lie inside the topic, a template overlaps itself, a filter is never
 * longer than its template, a parsed mapping round-trips through its JSON.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/mapping.h"
#include "mqtt/topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void topics(const char *s, size_t n)
{
    const char *nl = memchr(s, '\n', n);
    size_t tl = nl ? (size_t)(nl - s) : n;
    const char *topic = nl ? nl + 1 : "";
    size_t n_topic = nl ? n - tl - 1 : 0;
    mesh_topic_tmpl_t t;
    mesh_err_t err;
    if (mesh_topic_tmpl_parse(s, tl, &t, &err) != MESH_OK)
        return;
    if (strlen(t.filter) > tl || !mesh_topic_tmpl_overlap(&t, &t))
        abort();
    mesh_topic_value_t vals[MESH_TOPIC_MAX_NAMED];
    if (mesh_topic_tmpl_match(&t, topic, n_topic, vals))
        for (size_t i = 0; i < t.nnamed; i++)
            if (vals[i].off > n_topic || vals[i].len > n_topic - vals[i].off)
                abort();
    mesh_topic_tmpl_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    topics(s, size);
    mesh_mqtt_mapping_t m;
    mesh_err_t err;
    if (mesh_mqtt_mapping_from_json(s, size, &m, &err) == MESH_OK) {
        mesh_buf_t b;
        mesh_buf_init(&b, MESH_BUF_UNLIMITED);
        mesh_mqtt_mapping_to_json(&m, true, &b);
        mesh_mqtt_mapping_t again;
        if (mesh_mqtt_mapping_from_json(b.data, b.len, &again, &err) != MESH_OK)
            abort();
        if (strcmp(again.topic, m.topic) != 0 || strcmp(again.name, m.name) != 0)
            abort();
        mesh_mqtt_mapping_free(&again);
        mesh_buf_free(&b);
        mesh_mqtt_mapping_free(&m);
    }
    if (mesh_mqtt_mapping_from_line(s, &m, &err) == MESH_OK)
        mesh_mqtt_mapping_free(&m);
    free(s);
    return 0;
}
