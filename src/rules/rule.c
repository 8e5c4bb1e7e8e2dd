/*
 * rule.c - the rule parser (strict, bounded) and the per-series math: windows, z-scores,
 * EWMA, hysteresis and minimum durations. Everything here is pure: no I/O, no clock.
 */
#include "rules/rule.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/util.h"

/* ---- parsing ---- */

typedef struct pctx {
    yaml_document_t *doc;
    mesh_err_t *err;
    int nodes;
} pctx_t;

static mesh_status_t perr(pctx_t *c, const yaml_node_t *n, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static mesh_status_t perr(pctx_t *c, const yaml_node_t *n, const char *path, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n)
        return mesh_err_set(c->err, MESH_INVALID, "%s (line %lu): %s", path,
                            (unsigned long)n->start_mark.line + 1, msg);
    return mesh_err_set(c->err, MESH_INVALID, "%s: %s", path, msg);
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static mesh_status_t get_str(pctx_t *c, const yaml_node_t *n, const char *path, size_t max,
                             char **out)
{
    const char *s = scalar(n);
    if (s == NULL)
        return perr(c, n, path, "must be a text");
    size_t len = n->data.scalar.length;
    if (len == 0 || len > max || strlen(s) != len)
        return perr(c, n, path, "must be 1 to %zu characters without NUL", max);
    free(*out);
    if ((*out = mesh_strndup(s, len)) == NULL)
        return mesh_err_set(c->err, MESH_NOMEM, "out of memory");
    return MESH_OK;
}

static mesh_status_t get_num(pctx_t *c, const yaml_node_t *n, const char *path, double *out)
{
    const char *s = scalar(n);
    if (s == NULL || mesh_parse_f64(s, n->data.scalar.length, out) != MESH_OK || !isfinite(*out))
        return perr(c, n, path, "must be a finite number");
    return MESH_OK;
}

static mesh_status_t get_int(pctx_t *c, const yaml_node_t *n, const char *path, int64_t lo,
                             int64_t hi, int *out)
{
    const char *s = scalar(n);
    int64_t v;
    if (s == NULL || mesh_parse_i64(s, n->data.scalar.length, &v) != MESH_OK || v < lo || v > hi)
        return perr(c, n, path, "must be an integer from %lld to %lld", (long long)lo,
                    (long long)hi);
    *out = (int)v;
    return MESH_OK;
}

static mesh_status_t get_dur(pctx_t *c, const yaml_node_t *n, const char *path, int64_t lo,
                             int64_t hi, int64_t *out)
{
    const char *s = scalar(n);
    if (s == NULL || strlen(s) != n->data.scalar.length || mesh_duration_parse(s, out) != MESH_OK ||
        *out < lo || *out > hi)
        return perr(c, n, path, "must be a duration (\"30s\", \"5m\") from %lld ms to %lld s",
                    (long long)(lo / 1000000), (long long)(hi / MESH_NS_PER_SEC));
    return MESH_OK;
}

static bool rule_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MESH_NAME_MAX || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '-'))
            return false;
    return true;
}

#define DAY_NS (86400 * MESH_NS_PER_SEC)

static mesh_status_t parse_action(pctx_t *c, yaml_node_t *m, size_t idx, mesh_rule_action_t *a)
{
    char path[64], sub[96];
    snprintf(path, sizeof path, "actions[%zu]", idx);
    if (m->type != YAML_MAPPING_NODE)
        return perr(c, m, path, "must be a mapping (type: webhook, url: ...)");
    a->timeout_ns = 5 * MESH_NS_PER_SEC;
    a->retries = 5;
    a->backoff_ns = MESH_NS_PER_SEC;
    char *type = NULL;
    mesh_status_t st = MESH_OK;
    yaml_node_t *type_node = NULL;
    bool has_qos = false, has_retain = false;
    a->qos = 1;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start;
         p < m->data.mapping.pairs.top && st == MESH_OK; p++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        const char *key = scalar(k);
        if (key == NULL) {
            st = perr(c, k, path, "keys must be texts");
            break;
        }
        snprintf(sub, sizeof sub, "%s.%s", path, key);
        if (strcmp(key, "type") == 0) {
            st = get_str(c, v, sub, 16, &type);
            type_node = v;
        } else if (strcmp(key, "url") == 0) {
            st = get_str(c, v, sub, 2048, &a->url);
            if (st == MESH_OK && strncmp(a->url, "http://", 7) != 0 &&
                strncmp(a->url, "https://", 8) != 0)
                st = perr(c, v, sub, "must be an http:// or https:// URL");
        } else if (strcmp(key, "secret") == 0) {
            st = get_str(c, v, sub, 256, &a->secret);
        } else if (strcmp(key, "ca_file") == 0) {
            st = get_str(c, v, sub, 1024, &a->ca_file);
        } else if (strcmp(key, "timeout") == 0) {
            st = get_dur(c, v, sub, 100 * 1000000LL, 60 * MESH_NS_PER_SEC, &a->timeout_ns);
        } else if (strcmp(key, "retries") == 0) {
            st = get_int(c, v, sub, 0, 20, &a->retries);
        } else if (strcmp(key, "backoff") == 0) {
            st = get_dur(c, v, sub, 10 * 1000000LL, 60 * MESH_NS_PER_SEC, &a->backoff_ns);
        } else if (strcmp(key, "unmasked") == 0) {
            if (v->type != YAML_SEQUENCE_NODE) {
                st = perr(c, v, sub, "must be a list of column names");
                break;
            }
            size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
            if (n > MESH_CONTRACT_MAX_COLUMNS) {
                st = perr(c, v, sub, "too many columns");
                break;
            }
            for (size_t i = 0; i < a->nunmasked; i++) /* a second unmasked: the last wins */
                free(a->unmasked[i]);
            free(a->unmasked);
            a->unmasked = NULL;
            a->nunmasked = 0;
            if (n && (a->unmasked = calloc(n, sizeof *a->unmasked)) == NULL) {
                st = mesh_err_set(c->err, MESH_NOMEM, "out of memory");
                break;
            }
            for (size_t i = 0; i < n && st == MESH_OK; i++) {
                yaml_node_t *e = yaml_document_get_node(c->doc, v->data.sequence.items.start[i]);
                char ep[128];
                snprintf(ep, sizeof ep, "%s[%zu]", sub, i);
                st = get_str(c, e, ep, MESH_NAME_MAX, &a->unmasked[i]);
                if (st == MESH_OK)
                    a->nunmasked++;
                if (st == MESH_OK && !mesh_name_column_ok(a->unmasked[i]))
                    st = perr(c, e, ep, "not a column name");
            }
        } else if (strcmp(key, "topic") == 0) {
            st = get_str(c, v, sub, 1024, &a->topic);
            if (st == MESH_OK && strpbrk(a->topic, "+#"))
                st = perr(c, v, sub, "a topic to publish to has no wildcards (+, #)");
        } else if (strcmp(key, "payload") == 0) {
            st = get_str(c, v, sub, 4096, &a->payload);
        } else if (strcmp(key, "qos") == 0) {
            st = get_int(c, v, sub, 0, 1, &a->qos);
            has_qos = true;
        } else if (strcmp(key, "retain") == 0) {
            const char *sv = scalar(v);
            if (sv == NULL || mesh_parse_bool(sv, v->data.scalar.length, &a->retain) != MESH_OK)
                st = perr(c, v, sub, "must be true or false");
            has_retain = true;
        } else {
            st = perr(c, k, sub,
                      "unknown key (type, url, secret, ca_file, timeout, retries, "
                      "backoff, unmasked; topic, payload, qos, retain for mqtt)");
        }
    }
    if (st == MESH_OK) {
        if (type == NULL) {
            st = perr(c, m, path, "type is required (webhook)");
        } else if (strcmp(type, "webhook") == 0) {
            a->type = MESH_ACTION_WEBHOOK;
            if (a->url == NULL)
                st = perr(c, m, path, "a webhook needs url");
            else if (a->topic || a->payload || has_qos || has_retain)
                st = perr(c, m, path, "topic, payload, qos and retain are for mqtt actions");
        } else if (strcmp(type, "mqtt") == 0) {
            a->type = MESH_ACTION_MQTT;
            if (a->topic == NULL)
                st = perr(c, m, path, "an mqtt action needs topic");
            else if (a->url || a->secret || a->ca_file)
                st = perr(c, m, path, "url, secret and ca_file are for webhooks");
        } else {
            st = perr(c, type_node, path, "type must be webhook or mqtt");
        }
    }
    free(type);
    return st;
}

static mesh_status_t parse_doc(pctx_t *c, mesh_rule_t *r)
{
    yaml_node_t *root = yaml_document_get_root_node(c->doc);
    if (root == NULL)
        return mesh_err_set(c->err, MESH_INVALID, "empty rule");
    if (root->type != YAML_MAPPING_NODE)
        return perr(c, root, "(rule)", "must be a mapping");
    bool has_above = false, has_below = false, has_clear = false, has_sens = false;
    char *kind = NULL, *fn = NULL, *method = NULL;
    yaml_node_t *kind_node = root;
    double v;
    mesh_status_t st = MESH_OK;
    r->severity = NULL;
    r->max_samples = 1024;
    r->samples = 60;
    r->alpha = 0.1;
    r->warmup = 10;
    r->limit = 3;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
         p < root->data.mapping.pairs.top && st == MESH_OK; p++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        yaml_node_t *val = yaml_document_get_node(c->doc, p->value);
        const char *key = scalar(k);
        if (key == NULL) {
            st = perr(c, k, "(rule)", "keys must be texts");
            break;
        }
        if (strcmp(key, "name") == 0) {
            st = get_str(c, val, key, MESH_NAME_MAX, &r->name);
            if (st == MESH_OK && !rule_name_ok(r->name))
                st = perr(c, val, key, "must be [a-z][a-z0-9_-]{0,62}");
        } else if (strcmp(key, "domain") == 0) {
            st = get_str(c, val, key, MESH_NAME_MAX, &r->domain);
            if (st == MESH_OK && !mesh_name_domain_ok(r->domain))
                st = perr(c, val, key, "not a domain name");
        } else if (strcmp(key, "product") == 0) {
            st = get_str(c, val, key, MESH_NAME_MAX, &r->product);
            if (st == MESH_OK && !mesh_name_product_ok(r->product))
                st = perr(c, val, key, "not a product name");
        } else if (strcmp(key, "column") == 0) {
            st = get_str(c, val, key, MESH_NAME_MAX, &r->column);
            if (st == MESH_OK && !mesh_name_column_ok(r->column))
                st = perr(c, val, key, "not a column name");
        } else if (strcmp(key, "description") == 0) {
            st = get_str(c, val, key, 4096, &r->description);
        } else if (strcmp(key, "severity") == 0) {
            st = get_str(c, val, key, 16, &r->severity);
            if (st == MESH_OK && strcmp(r->severity, "info") && strcmp(r->severity, "warning") &&
                strcmp(r->severity, "critical"))
                st = perr(c, val, key, "must be info, warning or critical");
        } else if (strcmp(key, "kind") == 0) {
            st = get_str(c, val, key, 16, &kind);
            kind_node = val;
        } else if (strcmp(key, "above") == 0 || strcmp(key, "below") == 0) {
            st = get_num(c, val, key, &v);
            if (key[0] == 'a')
                has_above = true;
            else
                has_below = true;
            r->above = key[0] == 'a';
            r->limit = v;
        } else if (strcmp(key, "clear") == 0) {
            st = get_num(c, val, key, &r->clear);
            has_clear = true;
        } else if (strcmp(key, "for") == 0) {
            st = get_dur(c, val, key, 0, DAY_NS, &r->for_ns);
        } else if (strcmp(key, "function") == 0) {
            st = get_str(c, val, key, 16, &fn);
            if (st == MESH_OK) {
                static const char *const fns[] = {"avg", "min", "max", "count", "rate"};
                size_t i = 0;
                while (i < MESH_ARRAY_LEN(fns) && strcmp(fns[i], fn) != 0)
                    i++;
                if (i == MESH_ARRAY_LEN(fns))
                    st = perr(c, val, key, "must be avg, min, max, count or rate");
                r->wfn = (mesh_win_fn_t)i;
            }
        } else if (strcmp(key, "period") == 0) {
            st = get_dur(c, val, key, 1000000LL, 30 * DAY_NS, &r->period_ns);
        } else if (strcmp(key, "max_samples") == 0) {
            st = get_int(c, val, key, 2, MESH_RULE_MAX_SAMPLES, &r->max_samples);
        } else if (strcmp(key, "method") == 0) {
            st = get_str(c, val, key, 16, &method);
            if (st == MESH_OK) {
                if (strcmp(method, "zscore") == 0)
                    r->method = MESH_ANOM_ZSCORE;
                else if (strcmp(method, "ewma") == 0)
                    r->method = MESH_ANOM_EWMA;
                else
                    st = perr(c, val, key, "must be zscore or ewma");
            }
        } else if (strcmp(key, "samples") == 0) {
            st = get_int(c, val, key, 2, MESH_RULE_MAX_SAMPLES, &r->samples);
        } else if (strcmp(key, "alpha") == 0) {
            st = get_num(c, val, key, &r->alpha);
            if (st == MESH_OK && !(r->alpha > 0 && r->alpha <= 1))
                st = perr(c, val, key, "must be in (0, 1]");
        } else if (strcmp(key, "sensitivity") == 0) {
            st = get_num(c, val, key, &r->limit);
            has_sens = true;
            if (st == MESH_OK && !(r->limit > 0 && r->limit <= 1000))
                st = perr(c, val, key, "must be in (0, 1000]");
        } else if (strcmp(key, "warmup") == 0) {
            st = get_int(c, val, key, 2, 1000000, &r->warmup);
        } else if (strcmp(key, "after") == 0) {
            st = get_dur(c, val, key, MESH_NS_PER_SEC / 10, 30 * DAY_NS, &r->after_ns);
        } else if (strcmp(key, "actions") == 0) {
            if (val->type != YAML_SEQUENCE_NODE) {
                st = perr(c, val, key, "must be a list of actions");
                break;
            }
            size_t n = (size_t)(val->data.sequence.items.top - val->data.sequence.items.start);
            if (n > MESH_RULE_MAX_ACTIONS) {
                st = perr(c, val, key, "at most %d actions", MESH_RULE_MAX_ACTIONS);
                break;
            }
            for (size_t i = 0; i < n && st == MESH_OK; i++) {
                st = parse_action(c,
                                  yaml_document_get_node(c->doc, val->data.sequence.items.start[i]),
                                  i, &r->actions[i]);
                r->nactions = i + 1;
            }
        } else {
            st = perr(c, k, key,
                      "unknown key (name, domain, product, kind, column, above, below, clear, "
                      "for, severity, description, function, period, max_samples, method, "
                      "samples, alpha, sensitivity, warmup, after, actions)");
        }
    }
    if (st != MESH_OK)
        goto out;
    if (!r->name || !r->domain || !r->product || !kind) {
        st = perr(c, root, "(rule)", "name, domain, product and kind are required");
        goto out;
    }
    if (strcmp(kind, "threshold") == 0)
        r->kind = MESH_RULE_THRESHOLD;
    else if (strcmp(kind, "window") == 0)
        r->kind = MESH_RULE_WINDOW;
    else if (strcmp(kind, "anomaly") == 0)
        r->kind = MESH_RULE_ANOMALY;
    else if (strcmp(kind, "absence") == 0)
        r->kind = MESH_RULE_ABSENCE;
    else {
        st = perr(c, kind_node, "kind", "must be threshold, window, anomaly or absence");
        goto out;
    }
    switch (r->kind) {
    case MESH_RULE_THRESHOLD:
    case MESH_RULE_WINDOW:
        if (has_above == has_below) {
            st = perr(c, root, "(rule)", "give exactly one of above or below");
            goto out;
        }
        if (has_sens || method || r->after_ns) {
            st = perr(c, root, "(rule)", "sensitivity, method and after are for other kinds");
            goto out;
        }
        if (r->kind == MESH_RULE_WINDOW && (fn == NULL || r->period_ns == 0)) {
            st = perr(c, root, "(rule)", "a window rule needs function and period");
            goto out;
        }
        if (r->kind == MESH_RULE_THRESHOLD && (fn || r->period_ns)) {
            st = perr(c, root, "(rule)", "function and period are for window rules");
            goto out;
        }
        if (r->column == NULL && !(r->kind == MESH_RULE_WINDOW && r->wfn == MESH_WIN_COUNT)) {
            st = perr(c, root, "column", "required");
            goto out;
        }
        if (!has_clear)
            r->clear = r->limit;
        if ((r->above && r->clear > r->limit) || (!r->above && r->clear < r->limit)) {
            st = perr(c, root, "clear", "must be on the safe side of the limit (%s %g)",
                      r->above ? "at most" : "at least", r->limit);
            goto out;
        }
        break;
    case MESH_RULE_ANOMALY:
        if (has_above || has_below || fn || r->period_ns || r->after_ns) {
            st = perr(c, root, "(rule)",
                      "an anomaly rule takes sensitivity (not above/below), no function, period "
                      "or after");
            goto out;
        }
        if (r->column == NULL) {
            st = perr(c, root, "column", "required");
            goto out;
        }
        r->above = true;
        if (!has_clear)
            r->clear = r->limit;
        if (r->clear > r->limit || r->clear < 0) {
            st = perr(c, root, "clear", "must be from 0 to the sensitivity (%g)", r->limit);
            goto out;
        }
        if (r->method == MESH_ANOM_ZSCORE && r->warmup > r->samples)
            r->warmup = r->samples;
        break;
    case MESH_RULE_ABSENCE:
        if (r->after_ns == 0) {
            st = perr(c, root, "after", "required for an absence rule");
            goto out;
        }
        if (has_above || has_below || has_clear || fn || method || has_sens || r->for_ns) {
            st = perr(c, root, "(rule)", "an absence rule takes only after");
            goto out;
        }
        break;
    }
    if (r->severity == NULL && (r->severity = mesh_strdup("warning")) == NULL)
        st = mesh_err_set(c->err, MESH_NOMEM, "out of memory");
out:
    free(kind);
    free(fn);
    free(method);
    return st;
}

mesh_status_t mesh_rule_parse(const char *text, size_t n, mesh_rule_t **out, mesh_err_t *err)
{
    *out = NULL;
    if (n > MESH_RULE_MAX_BYTES)
        return mesh_err_set(err, MESH_TOO_LARGE, "a rule is at most %d bytes", MESH_RULE_MAX_BYTES);
    if (n == 0 || memchr(text, '\0', n))
        return mesh_err_set(err, MESH_PARSE, "empty rule or NUL byte in it");
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, n);
    if (!yaml_parser_load(&parser, &doc)) {
        mesh_status_t st = mesh_err_set(err, MESH_PARSE, "not YAML or JSON (line %lu): %s",
                                        (unsigned long)parser.problem_mark.line + 1,
                                        parser.problem ? parser.problem : "syntax error");
        yaml_parser_delete(&parser);
        return st;
    }
    yaml_parser_delete(&parser);
    mesh_status_t st = MESH_OK;
    if (doc.nodes.top - doc.nodes.start > MESH_RULE_MAX_NODES) {
        yaml_document_delete(&doc);
        return mesh_err_set(err, MESH_TOO_LARGE, "a rule has at most %d YAML nodes",
                            MESH_RULE_MAX_NODES);
    }
    mesh_rule_t *r = calloc(1, sizeof *r);
    if (r == NULL) {
        yaml_document_delete(&doc);
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    r->refs = 1;
    pctx_t c = {.doc = &doc, .err = err};
    st = parse_doc(&c, r);
    yaml_document_delete(&doc);
    if (st == MESH_OK && (r->text = mesh_strndup(text, n)) == NULL)
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
    if (st != MESH_OK) {
        mesh_rule_put(r);
        return st;
    }
    *out = r;
    return MESH_OK;
}

mesh_rule_t *mesh_rule_ref(mesh_rule_t *r)
{
    if (r)
        atomic_fetch_add_explicit((_Atomic int *)&r->refs, 1, memory_order_relaxed);
    return r;
}

void mesh_rule_put(mesh_rule_t *r)
{
    if (r == NULL ||
        atomic_fetch_sub_explicit((_Atomic int *)&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(r->name);
    free(r->domain);
    free(r->product);
    free(r->column);
    free(r->description);
    free(r->severity);
    for (size_t i = 0; i < MESH_RULE_MAX_ACTIONS; i++) {
        mesh_rule_action_t *a = &r->actions[i];
        free(a->url);
        if (a->secret)
            memset(a->secret, 0, strlen(a->secret));
        free(a->secret);
        free(a->ca_file);
        for (size_t k = 0; k < a->nunmasked; k++)
            free(a->unmasked[k]);
        free(a->unmasked);
        free(a->topic);
        free(a->payload);
    }
    free(r->text);
    free(r);
}

static bool placeholders_ok(const mesh_product_t *p, const char *t, char bad[MESH_NAME_MAX + 1]);

mesh_status_t mesh_rule_check(const mesh_rule_t *r, const mesh_product_t *p, mesh_err_t *err)
{
    if (r->column) {
        int ci = mesh_product_col(p, r->column, strlen(r->column));
        if (ci < 0)
            return mesh_err_set(err, MESH_INVALID, "column: %s.%s has no column '%s'", p->domain,
                                p->name, r->column);
        if (!mesh_ltype_numeric(p->cols[ci].type))
            return mesh_err_set(err, MESH_INVALID,
                                "column: %s.%s.%s is %s; a rule watches a number, an integer, a "
                                "boolean or a timestamp",
                                p->domain, p->name, r->column, mesh_ltype_name(p->cols[ci].type));
    }
    for (size_t i = 0; i < r->nactions; i++) {
        const char *tmpls[2] = {r->actions[i].topic, r->actions[i].payload};
        for (int t = 0; t < 2; t++) {
            char bad[MESH_NAME_MAX + 1];
            if (tmpls[t] && !placeholders_ok(p, tmpls[t], bad))
                return mesh_err_set(err, MESH_INVALID,
                                    "actions[%zu].%s: {%s} is neither a column of %s.%s nor one "
                                    "of domain, product, rule, alert_id, event, severity, value, "
                                    "time",
                                    i, t ? "payload" : "topic", bad, p->domain, p->name);
        }
    }
    for (size_t i = 0; i < r->nactions; i++)
        for (size_t k = 0; k < r->actions[i].nunmasked; k++)
            if (mesh_product_col(p, r->actions[i].unmasked[k], strlen(r->actions[i].unmasked[k])) <
                0)
                return mesh_err_set(err, MESH_INVALID, "actions[%zu].unmasked[%zu]: no column '%s'",
                                    i, k, r->actions[i].unmasked[k]);
    return MESH_OK;
}

/* ---- templates ---- */

static const char *const builtins[] = {"domain", "product",  "rule",  "alert_id",
                                       "event",  "severity", "value", "time"};

bool mesh_rule_placeholder_ok(const mesh_product_t *p, const char *name)
{
    for (size_t i = 0; i < MESH_ARRAY_LEN(builtins); i++)
        if (strcmp(builtins[i], name) == 0)
            return true;
    return p && mesh_product_col(p, name, strlen(name)) >= 0;
}

/* The placeholder at s ('{' first): its name's length, or 0 when it is text. */
static size_t placeholder(const char *s)
{
    size_t n = 1;
    if (!((s[1] >= 'a' && s[1] <= 'z') || (s[1] >= 'A' && s[1] <= 'Z') || s[1] == '_'))
        return 0;
    while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') || s[n] == '_' ||
           (s[n] >= '0' && s[n] <= '9'))
        n++;
    return s[n] == '}' && n - 1 <= MESH_NAME_MAX ? n - 1 : 0;
}

static bool placeholders_ok(const mesh_product_t *p, const char *t, char bad[MESH_NAME_MAX + 1])
{
    for (; *t; t++) {
        size_t n = *t == '{' ? placeholder(t) : 0;
        if (n == 0)
            continue;
        memcpy(bad, t + 1, n);
        bad[n] = '\0';
        if (!mesh_rule_placeholder_ok(p, bad))
            return false;
        t += n + 1;
    }
    return true;
}

mesh_status_t mesh_rule_expand(const char *t, bool topic, mesh_rule_lookup_fn lookup, void *arg,
                               mesh_buf_t *out)
{
    mesh_status_t st = MESH_OK;
    for (; *t && st == MESH_OK; t++) {
        size_t n = *t == '{' ? placeholder(t) : 0;
        if (n == 0) {
            st = mesh_buf_addc(out, *t);
            continue;
        }
        char name[MESH_NAME_MAX + 1];
        memcpy(name, t + 1, n);
        name[n] = '\0';
        const char *v = lookup(arg, name);
        for (; v && *v && st == MESH_OK; v++)
            st = mesh_buf_addc(out, topic && strchr("/+#", *v) ? '_' : *v);
        t += n + 1;
    }
    return st;
}

static bool has_tag(char **tags, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(tags[i], "pii") == 0 || strcasecmp(tags[i], "phi") == 0)
            return true;
    return false;
}

bool mesh_rule_col_sensitive(const mesh_column_t *c)
{
    const char *k = c->classification;
    if (k && (strcasecmp(k, "confidential") == 0 || strcasecmp(k, "restricted") == 0 ||
              strcasecmp(k, "secret") == 0))
        return true;
    return has_tag(c->tags, c->n_tags);
}

const char *mesh_rule_kind_name(mesh_rule_kind_t k)
{
    static const char *const names[] = {"threshold", "window", "anomaly", "absence"};
    return (unsigned)k < MESH_ARRAY_LEN(names) ? names[k] : "?";
}

static void add_dur(json_t *o, const char *key, int64_t ns)
{
    char b[48];
    /* exact, in the largest unit that divides it (the form parses back to the same value) */
    if (ns % MESH_NS_PER_SEC == 0)
        snprintf(b, sizeof b, "%llds", (long long)(ns / MESH_NS_PER_SEC));
    else if (ns % 1000000 == 0)
        snprintf(b, sizeof b, "%lldms", (long long)(ns / 1000000));
    else if (ns % 1000 == 0)
        snprintf(b, sizeof b, "%lldus", (long long)(ns / 1000));
    else
        snprintf(b, sizeof b, "%lldns", (long long)ns);
    json_object_set_new(o, key, json_string(b));
}

mesh_status_t mesh_rule_json(const mesh_rule_t *r, mesh_buf_t *out)
{
    static const char *const fns[] = {"avg", "min", "max", "count", "rate"};
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(r->name));
    json_object_set_new(o, "domain", json_string(r->domain));
    json_object_set_new(o, "product", json_string(r->product));
    json_object_set_new(o, "kind", json_string(mesh_rule_kind_name(r->kind)));
    if (r->column)
        json_object_set_new(o, "column", json_string(r->column));
    if (r->description)
        json_object_set_new(o, "description", json_string(r->description));
    json_object_set_new(o, "severity", json_string(r->severity));
    if (r->kind == MESH_RULE_THRESHOLD || r->kind == MESH_RULE_WINDOW) {
        json_object_set_new(o, r->above ? "above" : "below", json_real(r->limit));
        json_object_set_new(o, "clear", json_real(r->clear));
    }
    if (r->kind == MESH_RULE_WINDOW) {
        json_object_set_new(o, "function", json_string(fns[r->wfn]));
        add_dur(o, "period", r->period_ns);
        json_object_set_new(o, "max_samples", json_integer(r->max_samples));
    }
    if (r->kind == MESH_RULE_ANOMALY) {
        json_object_set_new(o, "method",
                            json_string(r->method == MESH_ANOM_ZSCORE ? "zscore" : "ewma"));
        json_object_set_new(o, "sensitivity", json_real(r->limit));
        json_object_set_new(o, "clear", json_real(r->clear));
        if (r->method == MESH_ANOM_ZSCORE)
            json_object_set_new(o, "samples", json_integer(r->samples));
        else
            json_object_set_new(o, "alpha", json_real(r->alpha));
        json_object_set_new(o, "warmup", json_integer(r->warmup));
    }
    if (r->kind == MESH_RULE_ABSENCE)
        add_dur(o, "after", r->after_ns);
    if (r->for_ns)
        add_dur(o, "for", r->for_ns);
    json_t *acts = json_array();
    for (size_t i = 0; i < r->nactions; i++) {
        const mesh_rule_action_t *a = &r->actions[i];
        json_t *aj = json_object();
        json_object_set_new(aj, "type",
                            json_string(a->type == MESH_ACTION_WEBHOOK ? "webhook" : "mqtt"));
        if (a->url)
            json_object_set_new(aj, "url", json_string(a->url));
        if (a->secret)
            json_object_set_new(aj, "secret", json_string("(set)"));
        if (a->ca_file)
            json_object_set_new(aj, "ca_file", json_string(a->ca_file));
        add_dur(aj, "timeout", a->timeout_ns);
        json_object_set_new(aj, "retries", json_integer(a->retries));
        add_dur(aj, "backoff", a->backoff_ns);
        if (a->topic)
            json_object_set_new(aj, "topic", json_string(a->topic));
        if (a->payload)
            json_object_set_new(aj, "payload", json_string(a->payload));
        if (a->type == MESH_ACTION_MQTT) {
            json_object_set_new(aj, "qos", json_integer(a->qos));
            json_object_set_new(aj, "retain", json_boolean(a->retain));
        }
        if (a->nunmasked) {
            json_t *u = json_array();
            for (size_t k = 0; k < a->nunmasked; k++)
                json_array_append_new(u, json_string(a->unmasked[k]));
            json_object_set_new(aj, "unmasked", u);
        }
        json_array_append_new(acts, aj);
    }
    json_object_set_new(o, "actions", acts);
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (s == NULL)
        return MESH_NOMEM;
    mesh_status_t st = mesh_buf_adds(out, s);
    free(s);
    return st;
}

/* ---- state ---- */

void mesh_rstate_free(mesh_rstate_t *s)
{
    if (s == NULL)
        return;
    free(s->ring);
    memset(s, 0, sizeof *s);
}

#define RSTATE_VERSION 1

mesh_status_t mesh_rstate_encode(const mesh_rstate_t *s, mesh_buf_t *out)
{
    /* host byte order: the state never leaves the node's database */
    uint8_t hdr[3] = {RSTATE_VERSION, s->phase, (uint8_t)(s->acked | (s->latched << 1))};
    mesh_status_t st = mesh_buf_add(out, hdr, sizeof hdr);
    int64_t ints[4] = {s->since, s->last_t, s->fired_at, (int64_t)s->alert_no};
    double dbl[4] = {s->first_value, s->last_value, s->mean, s->m2};
    uint64_t count = s->count;
    uint32_t ring[2] = {s->ring_cap, s->ring_n};
    if (st == MESH_OK)
        st = mesh_buf_add(out, ints, sizeof ints);
    if (st == MESH_OK)
        st = mesh_buf_add(out, dbl, sizeof dbl);
    if (st == MESH_OK)
        st = mesh_buf_add(out, &count, sizeof count);
    if (st == MESH_OK)
        st = mesh_buf_add(out, ring, sizeof ring);
    /* samples oldest first */
    for (uint32_t i = 0; i < s->ring_n && st == MESH_OK; i++)
        st = mesh_buf_add(out, &s->ring[(s->ring_head + i) % s->ring_cap], sizeof(mesh_rsample_t));
    return st;
}

mesh_status_t mesh_rstate_decode(const uint8_t *p, size_t n, mesh_rstate_t *s)
{
    memset(s, 0, sizeof *s);
    mesh_cursor_t c;
    mesh_cursor_init(&c, p, n);
    const uint8_t *hdr = mesh_cursor_bytes(&c, 3);
    const uint8_t *ints = mesh_cursor_bytes(&c, 4 * 8);
    const uint8_t *dbl = mesh_cursor_bytes(&c, 4 * 8);
    const uint8_t *cnt = mesh_cursor_bytes(&c, 8);
    const uint8_t *ring = mesh_cursor_bytes(&c, 8);
    if (c.bad || hdr[0] != RSTATE_VERSION || hdr[1] > MESH_RPHASE_FIRING)
        return MESH_CORRUPT;
    s->phase = hdr[1];
    s->acked = hdr[2] & 1;
    s->latched = (hdr[2] >> 1) & 1;
    int64_t iv[4];
    double dv[4];
    uint32_t rv[2];
    memcpy(iv, ints, sizeof iv);
    memcpy(dv, dbl, sizeof dv);
    memcpy(&s->count, cnt, 8);
    memcpy(rv, ring, sizeof rv);
    s->since = iv[0];
    s->last_t = iv[1];
    s->fired_at = iv[2];
    s->alert_no = (uint64_t)iv[3];
    s->first_value = dv[0];
    s->last_value = dv[1];
    s->mean = dv[2];
    s->m2 = dv[3];
    if (rv[0] > MESH_RULE_MAX_SAMPLES || rv[1] > rv[0])
        return MESH_CORRUPT;
    const uint8_t *samples = mesh_cursor_bytes(&c, (size_t)rv[1] * sizeof(mesh_rsample_t));
    if (c.bad || c.n != 0)
        return MESH_CORRUPT;
    if (rv[0]) {
        if ((s->ring = calloc(rv[0], sizeof *s->ring)) == NULL)
            return MESH_NOMEM;
        s->ring_cap = rv[0];
        s->ring_n = rv[1];
        if (rv[1])
            memcpy(s->ring, samples, (size_t)rv[1] * sizeof(mesh_rsample_t));
    }
    return MESH_OK;
}

/* ---- the math ---- */

static mesh_status_t ring_ensure(mesh_rstate_t *s, uint32_t cap)
{
    if (s->ring_cap == cap)
        return MESH_OK;
    /* a changed capacity (the rule was redefined): keep the newest samples that fit */
    mesh_rsample_t *nr = calloc(cap, sizeof *nr);
    if (nr == NULL)
        return MESH_NOMEM;
    uint32_t keep = s->ring_n < cap ? s->ring_n : cap;
    for (uint32_t i = 0; i < keep; i++)
        nr[i] = s->ring[(s->ring_head + s->ring_n - keep + i) % s->ring_cap];
    free(s->ring);
    s->ring = nr;
    s->ring_cap = cap;
    s->ring_n = keep;
    s->ring_head = 0;
    return MESH_OK;
}

static mesh_rsample_t *ring_at(const mesh_rstate_t *s, uint32_t i)
{
    return &s->ring[(s->ring_head + i) % s->ring_cap];
}

static void ring_pop(mesh_rstate_t *s)
{
    s->ring_head = (s->ring_head + 1) % s->ring_cap;
    s->ring_n--;
}

static void ring_push(mesh_rstate_t *s, int64_t t, double v)
{
    if (s->ring_n == s->ring_cap)
        ring_pop(s);
    mesh_rsample_t *e = &s->ring[(s->ring_head + s->ring_n) % s->ring_cap];
    e->t = t;
    e->v = v;
    s->ring_n++;
}

bool mesh_rule_window_value(const mesh_rule_t *r, const mesh_rstate_t *s, double *out)
{
    if (s->ring_n == 0)
        return r->wfn == MESH_WIN_COUNT ? (*out = 0, true) : false;
    double acc = ring_at(s, 0)->v;
    switch (r->wfn) {
    case MESH_WIN_COUNT:
        *out = s->ring_n;
        return true;
    case MESH_WIN_AVG:
        for (uint32_t i = 1; i < s->ring_n; i++)
            acc += ring_at(s, i)->v;
        *out = acc / s->ring_n;
        return true;
    case MESH_WIN_MIN:
    case MESH_WIN_MAX:
        for (uint32_t i = 1; i < s->ring_n; i++) {
            double v = ring_at(s, i)->v;
            if (r->wfn == MESH_WIN_MIN ? v < acc : v > acc)
                acc = v;
        }
        *out = acc;
        return true;
    case MESH_WIN_RATE: {
        const mesh_rsample_t *a = ring_at(s, 0), *b = ring_at(s, s->ring_n - 1);
        if (s->ring_n < 2 || b->t == a->t)
            return false;
        *out = (b->v - a->v) / ((double)(b->t - a->t) / (double)MESH_NS_PER_SEC);
        return true;
    }
    }
    return false;
}

/* The baseline's mean and standard deviation before v is added; false while warming up. */
static bool baseline(const mesh_rule_t *r, const mesh_rstate_t *s, double *mean, double *sd)
{
    if (s->count < (uint64_t)r->warmup)
        return false;
    *mean = s->mean;
    double var;
    if (r->method == MESH_ANOM_ZSCORE)
        var = s->count > 1 ? s->m2 / (double)(s->count - 1) : 0; /* sample variance */
    else
        var = s->m2;
    *sd = var > 0 ? sqrt(var) : 0;
    return true;
}

static void baseline_add(const mesh_rule_t *r, mesh_rstate_t *s, int64_t t, double v)
{
    if (r->method == MESH_ANOM_EWMA) {
        if (s->count == 0) {
            s->mean = v;
            s->m2 = 0;
        } else {
            /* West (1979): exponentially weighted mean and variance */
            double d = v - s->mean, inc = r->alpha * d;
            s->mean += inc;
            s->m2 = (1 - r->alpha) * (s->m2 + d * inc);
        }
        s->count++;
        return;
    }
    /* Welford over the last `samples` values: remove the oldest, then add */
    if (s->ring_n == s->ring_cap) {
        double old = ring_at(s, 0)->v;
        if (s->count <= 1) {
            s->count = 0;
            s->mean = s->m2 = 0;
        } else {
            double d = old - s->mean;
            s->count--;
            s->mean -= d / (double)s->count;
            s->m2 -= d * (old - s->mean);
            if (s->m2 < 0)
                s->m2 = 0;
        }
    }
    ring_push(s, t, v);
    s->count++;
    double d = v - s->mean;
    s->mean += d / (double)s->count;
    s->m2 += d * (v - s->mean);
}

/* Applies the condition's verdict (active: the fire side of the limit; cleared: past clear)
 * at row time t to the phase. */
static mesh_rstep_t transition(const mesh_rule_t *r, mesh_rstate_t *s, int64_t t, bool active,
                               bool cleared, double value)
{
    if (s->latched) {
        if (!cleared)
            return MESH_RSTEP_NONE;
        s->latched = 0; /* the condition cleared after a manual resolve: armed again */
    }
    switch ((mesh_rphase_t)s->phase) {
    case MESH_RPHASE_OK:
        if (!active)
            return MESH_RSTEP_NONE;
        s->phase = MESH_RPHASE_PENDING;
        s->since = t;
        s->first_value = value;
        /* fall through: a zero `for` fires at once */
        __attribute__((fallthrough));
    case MESH_RPHASE_PENDING:
        if (!active) {
            s->phase = MESH_RPHASE_OK;
            return MESH_RSTEP_NONE;
        }
        if (t - s->since < r->for_ns)
            return MESH_RSTEP_NONE;
        s->phase = MESH_RPHASE_FIRING;
        s->fired_at = t;
        s->acked = 0;
        s->last_value = value;
        return MESH_RSTEP_FIRE;
    case MESH_RPHASE_FIRING:
        s->last_value = value;
        if (!cleared)
            return MESH_RSTEP_UPDATE;
        s->phase = MESH_RPHASE_OK;
        return MESH_RSTEP_RESOLVE;
    }
    return MESH_RSTEP_NONE;
}

mesh_status_t mesh_rule_step(const mesh_rule_t *r, mesh_rstate_t *s, int64_t t, bool has_v,
                             double v, mesh_reval_t *out)
{
    memset(out, 0, sizeof *out);
    if (s->last_t != 0 && t < s->last_t)
        return MESH_OK; /* late: older than what this series already evaluated */
    s->last_t = t;
    out->sample = v;
    mesh_status_t st;
    double value = v;
    switch (r->kind) {
    case MESH_RULE_ABSENCE:
        /* a row: the series is alive */
        s->latched = 0;
        out->has_value = true;
        out->value = 0;
        if (s->phase == MESH_RPHASE_FIRING) {
            s->phase = MESH_RPHASE_OK;
            s->last_value = 0;
            out->step = MESH_RSTEP_RESOLVE;
        }
        return MESH_OK;
    case MESH_RULE_THRESHOLD:
        if (!has_v)
            return MESH_OK;
        break;
    case MESH_RULE_WINDOW:
        if ((st = ring_ensure(s, (uint32_t)r->max_samples)) != MESH_OK)
            return st;
        while (s->ring_n && ring_at(s, 0)->t <= t - r->period_ns)
            ring_pop(s);
        if (has_v || r->wfn == MESH_WIN_COUNT)
            ring_push(s, t, has_v ? v : 0);
        if (!mesh_rule_window_value(r, s, &value))
            return MESH_OK;
        break;
    case MESH_RULE_ANOMALY: {
        if (!has_v)
            return MESH_OK;
        if (r->method == MESH_ANOM_ZSCORE && (st = ring_ensure(s, (uint32_t)r->samples)) != MESH_OK)
            return st;
        double mean, sd;
        bool ready = baseline(r, s, &mean, &sd);
        baseline_add(r, s, t, v);
        if (!ready)
            return MESH_OK;
        if (sd > 0)
            value = fabs(v - mean) / sd;
        else
            value = v == mean ? 0 : HUGE_VAL; /* any change of a constant series */
        if (isinf(value))
            value = 1e308;
        break;
    }
    }
    bool active = r->above ? value > r->limit : value < r->limit;
    bool cleared = r->above ? value < r->clear : value > r->clear;
    if (r->clear == r->limit)
        cleared = !active;
    out->has_value = true;
    out->value = value;
    out->step = transition(r, s, t, active, cleared, value);
    return MESH_OK;
}

void mesh_rule_tick(const mesh_rule_t *r, mesh_rstate_t *s, int64_t now, mesh_reval_t *out)
{
    memset(out, 0, sizeof *out);
    if (r->kind != MESH_RULE_ABSENCE || s->phase == MESH_RPHASE_FIRING || s->last_t == 0 ||
        s->latched)
        return;
    int64_t silent = now - s->last_t;
    if (silent < r->after_ns)
        return;
    out->has_value = true;
    out->value = (double)silent / (double)MESH_NS_PER_SEC;
    s->phase = MESH_RPHASE_FIRING;
    s->fired_at = now;
    s->acked = 0;
    s->first_value = s->last_value = out->value;
    out->step = MESH_RSTEP_FIRE;
}
