/*
 * topic.c - MQTT topic templates: parsing, matching and overlap (see topic.h).
 */
#include "mqtt/topic.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

void mesh_topic_tmpl_free(mesh_topic_tmpl_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nlevels; i++)
        free(t->levels[i].text);
    memset(t, 0, sizeof *t);
}

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n > MESH_NAME_MAX)
        return false;
    char tmp[MESH_NAME_MAX + 1];
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return mesh_name_column_ok(tmp);
}

/* Parses one level s[0..n) (the index i of nlev levels) into lv. */
static mesh_status_t parse_level(mesh_topic_tmpl_t *t, const char *s, size_t n, size_t i,
                                 size_t nlev, mesh_err_t *err)
{
    mesh_topic_level_t *lv = &t->levels[i];
    if (n == 1 && s[0] == '#') {
        if (i + 1 != nlev)
            return mesh_err_set(err, MESH_INVALID,
                                "topic level %zu: '#' may only be the last level", i + 1);
        lv->kind = MESH_TOPIC_MULTI;
        return MESH_OK;
    }
    if (n == 1 && s[0] == '+') {
        lv->kind = MESH_TOPIC_SINGLE;
        return MESH_OK;
    }
    if (n >= 2 && s[0] == '{' && s[n - 1] == '}') {
        if (!name_ok(s + 1, n - 2))
            return mesh_err_set(err, MESH_INVALID,
                                "topic level %zu: '%.*s' is not a column name "
                                "([A-Za-z_][A-Za-z0-9_]*, at most 63 characters)",
                                i + 1, (int)(n > 80 ? 80 : n), s);
        for (size_t k = 0; k < i; k++)
            if (t->levels[k].kind == MESH_TOPIC_NAMED && t->levels[k].len == n - 2 &&
                memcmp(t->levels[k].text, s + 1, n - 2) == 0)
                return mesh_err_set(err, MESH_INVALID, "topic level %zu: {%.*s} is named twice",
                                    i + 1, (int)(n - 2), s + 1);
        if (t->nnamed == MESH_TOPIC_MAX_NAMED)
            return mesh_err_set(err, MESH_INVALID, "more than %d named topic levels",
                                MESH_TOPIC_MAX_NAMED);
        lv->kind = MESH_TOPIC_NAMED;
        if ((lv->text = mesh_strndup(s + 1, n - 2)) == NULL)
            return mesh_err_set(err, MESH_NOMEM, "out of memory");
        lv->len = n - 2;
        t->nnamed++;
        return MESH_OK;
    }
    for (size_t k = 0; k < n; k++) {
        char c = s[k];
        if (c == '+' || c == '#' || c == '{' || c == '}' || c == '\0')
            return mesh_err_set(err, MESH_INVALID,
                                "topic level %zu: '%c' may not appear inside a level (a level is "
                                "{name}, +, # or text)",
                                i + 1, c ? c : '0');
    }
    lv->kind = MESH_TOPIC_LITERAL;
    if ((lv->text = mesh_strndup(s, n)) == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    lv->len = n;
    return MESH_OK;
}

mesh_status_t mesh_topic_tmpl_parse(const char *s, size_t n, mesh_topic_tmpl_t *t, mesh_err_t *err)
{
    memset(t, 0, sizeof *t);
    if (n == 0)
        return mesh_err_set(err, MESH_INVALID, "the topic filter is empty");
    if (n > MESH_TOPIC_MAX_LEN)
        return mesh_err_set(err, MESH_INVALID, "the topic filter is longer than %d bytes",
                            MESH_TOPIC_MAX_LEN);
    size_t nlev = 1;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '/')
            nlev++;
    if (nlev > MESH_TOPIC_MAX_LEVELS)
        return mesh_err_set(err, MESH_INVALID, "the topic filter has more than %d levels",
                            MESH_TOPIC_MAX_LEVELS);
    size_t start = 0, fl = 0;
    for (size_t i = 0; i < nlev; i++) {
        size_t end = start;
        while (end < n && s[end] != '/')
            end++;
        mesh_status_t st = parse_level(t, s + start, end - start, i, nlev, err);
        if (st != MESH_OK) { /* level i holds nothing: free the ones before it */
            t->nlevels = i;
            mesh_topic_tmpl_free(t);
            return st;
        }
        t->nlevels = i + 1;
        /* the filter: {name} becomes +, so it is never longer than the template */
        const mesh_topic_level_t *lv = &t->levels[i];
        if (i)
            t->filter[fl++] = '/';
        if (lv->kind == MESH_TOPIC_LITERAL) {
            memcpy(t->filter + fl, lv->text, lv->len);
            fl += lv->len;
        } else {
            t->filter[fl++] = lv->kind == MESH_TOPIC_MULTI ? '#' : '+';
        }
        start = end + 1;
    }
    t->filter[fl] = '\0';
    return MESH_OK;
}

bool mesh_topic_tmpl_match(const mesh_topic_tmpl_t *t, const char *topic, size_t n,
                           mesh_topic_value_t *vals)
{
    if (t->nlevels == 0)
        return false;
    /* wildcards in the first level do not match $SYS-like topics */
    if (n > 0 && topic[0] == '$' && t->levels[0].kind != MESH_TOPIC_LITERAL)
        return false;
    size_t pos = 0, nv = 0;
    bool ended = false; /* the topic has no more levels */
    for (size_t i = 0; i < t->nlevels; i++) {
        const mesh_topic_level_t *lv = &t->levels[i];
        if (lv->kind == MESH_TOPIC_MULTI)
            return true;
        if (ended)
            return false;
        size_t end = pos;
        while (end < n && topic[end] != '/')
            end++;
        size_t len = end - pos;
        switch (lv->kind) {
        case MESH_TOPIC_LITERAL:
            if (len != lv->len || memcmp(topic + pos, lv->text, len) != 0)
                return false;
            break;
        case MESH_TOPIC_NAMED:
            if (vals) {
                vals[nv].name = lv->text;
                vals[nv].off = pos;
                vals[nv].len = len;
            }
            nv++;
            break;
        default:
            break;
        }
        if (end >= n)
            ended = true;
        else
            pos = end + 1;
    }
    return ended;
}

bool mesh_topic_tmpl_overlap(const mesh_topic_tmpl_t *a, const mesh_topic_tmpl_t *b)
{
    size_t i = 0, j = 0;
    for (;;) {
        bool ea = i == a->nlevels, eb = j == b->nlevels;
        if ((!ea && a->levels[i].kind == MESH_TOPIC_MULTI) ||
            (!eb && b->levels[j].kind == MESH_TOPIC_MULTI))
            return true;
        if (ea || eb)
            return ea && eb;
        const mesh_topic_level_t *la = &a->levels[i], *lb = &b->levels[j];
        if (la->kind == MESH_TOPIC_LITERAL && lb->kind == MESH_TOPIC_LITERAL &&
            (la->len != lb->len || memcmp(la->text, lb->text, la->len) != 0))
            return false;
        i++;
        j++;
    }
}
