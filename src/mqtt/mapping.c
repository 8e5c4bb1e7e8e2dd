/*
 * mapping.c - MQTT mappings from JSON and config lines, and back to JSON (see mapping.h).
 */
#include "mqtt/mapping.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/access_req.h"
#include "core/util.h"

const char *mesh_mqtt_format_name(mesh_mqtt_format_t f)
{
    return f == MESH_MQTT_FORMAT_LP ? "lineprotocol" : "json";
}

static bool format_parse(const char *s, mesh_mqtt_format_t *out)
{
    if (strcmp(s, "json") == 0)
        *out = MESH_MQTT_FORMAT_JSON;
    else if (strcmp(s, "lineprotocol") == 0 || strcmp(s, "lp") == 0)
        *out = MESH_MQTT_FORMAT_LP;
    else
        return false;
    return true;
}

void mesh_mqtt_mapping_free(mesh_mqtt_mapping_t *m)
{
    if (m)
        mesh_topic_tmpl_free(&m->tmpl);
}

/* Checks the fields set so far and parses the topic. */
static mesh_status_t finish(mesh_mqtt_mapping_t *m, mesh_err_t *err)
{
    if (!mesh_name_domain_ok(m->name))
        return mesh_err_set(err, MESH_INVALID,
                            "name: '%.64s' is not a mapping name ([a-z][a-z0-9_-]*, at most 63 "
                            "characters)",
                            m->name);
    if (!mesh_name_domain_ok(m->domain))
        return mesh_err_set(err, MESH_INVALID, "domain: '%.64s' is not a domain name", m->domain);
    if (!mesh_name_product_ok(m->product))
        return mesh_err_set(err, MESH_INVALID, "product: '%.64s' is not a product name",
                            m->product);
    if (!mesh_principal_name_ok(m->principal))
        return mesh_err_set(err, MESH_INVALID, "principal: '%.64s' is not a principal name",
                            m->principal);
    if (m->qos != 0 && m->qos != 1)
        return mesh_err_set(err, MESH_INVALID, "qos: %d is not 0 or 1", m->qos);
    mesh_status_t st = mesh_topic_tmpl_parse(m->topic, strlen(m->topic), &m->tmpl, err);
    if (st != MESH_OK)
        mesh_err_prefix(err, "topic: ");
    return st;
}

static void defaults(mesh_mqtt_mapping_t *m)
{
    memset(m, 0, sizeof *m);
    m->qos = 1;
    m->format = MESH_MQTT_FORMAT_JSON;
    snprintf(m->principal, sizeof m->principal, "%s", MESH_MQTT_DEFAULT_PRINCIPAL);
}

/* Copies a JSON string field into out[cap]; false (with err set) when it does not fit. */
static bool take_str(json_t *v, const char *field, char *out, size_t cap, mesh_err_t *err)
{
    if (!json_is_string(v)) {
        mesh_err_set(err, MESH_INVALID, "%s: expected a string", field);
        return false;
    }
    size_t n = json_string_length(v);
    if (n == 0 || n >= cap || memchr(json_string_value(v), '\0', n)) {
        mesh_err_set(err, MESH_INVALID, "%s: expected 1 to %zu characters", field, cap - 1);
        return false;
    }
    memcpy(out, json_string_value(v), n + 1);
    return true;
}

mesh_status_t mesh_mqtt_mapping_from_json(const char *s, size_t n, mesh_mqtt_mapping_t *m,
                                          mesh_err_t *err)
{
    defaults(m);
    if (n > MESH_MQTT_MAPPING_MAX_JSON)
        return mesh_err_set(err, MESH_TOO_LARGE, "a mapping is at most %d bytes of JSON",
                            MESH_MQTT_MAPPING_MAX_JSON);
    json_error_t je;
    json_t *j = json_loadb(s, n, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL)
        return mesh_err_set(err, MESH_INVALID, "malformed JSON (line %d, column %d): %s", je.line,
                            je.column, je.text);
    mesh_status_t st = MESH_OK;
    bool has_name = false, has_topic = false, has_domain = false, has_product = false;
    if (!json_is_object(j)) {
        st = mesh_err_set(err, MESH_INVALID, "expected a JSON object");
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        char tmp[32];
        if (strcmp(key, "name") == 0) {
            has_name = take_str(v, key, m->name, sizeof m->name, err);
            if (!has_name)
                goto bad;
        } else if (strcmp(key, "topic") == 0) {
            has_topic = take_str(v, key, m->topic, sizeof m->topic, err);
            if (!has_topic)
                goto bad;
        } else if (strcmp(key, "domain") == 0) {
            has_domain = take_str(v, key, m->domain, sizeof m->domain, err);
            if (!has_domain)
                goto bad;
        } else if (strcmp(key, "product") == 0) {
            has_product = take_str(v, key, m->product, sizeof m->product, err);
            if (!has_product)
                goto bad;
        } else if (strcmp(key, "principal") == 0) {
            if (!take_str(v, key, m->principal, sizeof m->principal, err))
                goto bad;
        } else if (strcmp(key, "format") == 0) {
            if (!take_str(v, key, tmp, sizeof tmp, err))
                goto bad;
            if (!format_parse(tmp, &m->format)) {
                st = mesh_err_set(err, MESH_INVALID, "format: '%s' is not json or lineprotocol",
                                  tmp);
                goto out;
            }
        } else if (strcmp(key, "qos") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1) {
                st = mesh_err_set(err, MESH_INVALID, "qos: expected 0 or 1");
                goto out;
            }
            m->qos = (int)json_integer_value(v);
        } else if (strcmp(key, "source") == 0 || strcmp(key, "created") == 0) {
            /* what to_json adds: ignored, so a listed mapping can be posted back */
        } else {
            st = mesh_err_set(err, MESH_INVALID,
                              "unknown field '%.60s' (expected name, topic, domain, product, "
                              "format, qos, principal)",
                              key);
            goto out;
        }
    }
    if (!has_name || !has_topic || !has_domain || !has_product) {
        st = mesh_err_set(err, MESH_INVALID, "%s is required",
                          !has_name     ? "name"
                          : !has_topic  ? "topic"
                          : !has_domain ? "domain"
                                        : "product");
        goto out;
    }
    st = finish(m, err);
    goto out;
bad:
    st = MESH_INVALID;
out:
    json_decref(j);
    return st;
}

/* The next blank-separated word of *p into out[cap]; false at the end or when it is too long. */
static bool next_word(const char **p, char *out, size_t cap, bool *too_long)
{
    const char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\0')
        return false;
    const char *e = s;
    while (*e && *e != ' ' && *e != '\t')
        e++;
    *p = e;
    if ((size_t)(e - s) >= cap) {
        *too_long = true;
        return false;
    }
    memcpy(out, s, (size_t)(e - s));
    out[e - s] = '\0';
    return true;
}

mesh_status_t mesh_mqtt_mapping_from_line(const char *line, mesh_mqtt_mapping_t *m, mesh_err_t *err)
{
    defaults(m);
    const char *p = line;
    bool too_long = false;
    char target[160];
    if (!next_word(&p, m->name, sizeof m->name, &too_long) ||
        !next_word(&p, m->topic, sizeof m->topic, &too_long) ||
        !next_word(&p, target, sizeof target, &too_long))
        return mesh_err_set(err, MESH_INVALID,
                            too_long ? "a word is too long"
                                     : "expected NAME TOPIC DOMAIN.PRODUCT [json|lineprotocol] "
                                       "[qos=0|1] [principal=NAME]");
    const char *dot = strchr(target, '.');
    if (dot == NULL || (size_t)(dot - target) >= sizeof m->domain ||
        strlen(dot + 1) >= sizeof m->product)
        return mesh_err_set(err, MESH_INVALID, "'%s' is not DOMAIN.PRODUCT", target);
    memcpy(m->domain, target, (size_t)(dot - target));
    m->domain[dot - target] = '\0';
    snprintf(m->product, sizeof m->product, "%s", dot + 1);
    char w[128];
    while (next_word(&p, w, sizeof w, &too_long)) {
        if (strncmp(w, "qos=", 4) == 0) {
            if (strcmp(w + 4, "0") != 0 && strcmp(w + 4, "1") != 0)
                return mesh_err_set(err, MESH_INVALID, "%s: qos is 0 or 1", w);
            m->qos = w[4] - '0';
        } else if (strncmp(w, "principal=", 10) == 0) {
            snprintf(m->principal, sizeof m->principal, "%.63s", w + 10);
        } else if (!format_parse(w, &m->format)) {
            return mesh_err_set(err, MESH_INVALID,
                                "'%.60s': expected json, lineprotocol, qos=N or principal=NAME", w);
        }
    }
    if (too_long)
        return mesh_err_set(err, MESH_INVALID, "a word is too long");
    m->from_config = true;
    return finish(m, err);
}

mesh_status_t mesh_mqtt_mapping_to_json(const mesh_mqtt_mapping_t *m, bool with_meta,
                                        mesh_buf_t *out)
{
    mesh_buf_adds(out, "{\"name\":");
    mesh_buf_add_json_str(out, m->name, strlen(m->name));
    mesh_buf_adds(out, ",\"topic\":");
    mesh_buf_add_json_str(out, m->topic, strlen(m->topic));
    mesh_buf_adds(out, ",\"domain\":");
    mesh_buf_add_json_str(out, m->domain, strlen(m->domain));
    mesh_buf_adds(out, ",\"product\":");
    mesh_buf_add_json_str(out, m->product, strlen(m->product));
    mesh_buf_printf(out, ",\"format\":\"%s\",\"qos\":%d,\"principal\":",
                    mesh_mqtt_format_name(m->format), m->qos);
    mesh_buf_add_json_str(out, m->principal, strlen(m->principal));
    if (with_meta) {
        mesh_buf_printf(out, ",\"source\":\"%s\"", m->from_config ? "config" : "catalog");
        if (m->created_ns) {
            char when[MESH_TIME_MAX];
            mesh_time_format(m->created_ns, when);
            mesh_buf_printf(out, ",\"created\":\"%s\"", when);
        }
    }
    return mesh_buf_addc(out, '}');
}
