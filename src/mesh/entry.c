/*
 * entry.c - encoding and the strict parser of registry entries (see entry.h).
 */
#include "mesh/entry.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

bool mesh_entry_node_name_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
        if (n >= MESH_ENTRY_NODE_MAX)
            return false;
    }
    return n > 0;
}

/* ---- encoding ---- */

static json_t *jstr(const char *s)
{
    return json_string(s ? s : "");
}

mesh_status_t mesh_entry_encode(const mesh_entry_t *e, mesh_buf_t *out)
{
    json_t *o = json_object();
    if (o == NULL)
        return MESH_NOMEM;
    json_object_set_new(o, "v", json_integer(1));
    json_object_set_new(o, "node_id", jstr(e->node_id));
    json_object_set_new(o, "name", jstr(e->name));
    json_object_set_new(o, "site", jstr(e->site));
    json_object_set_new(o, "version", jstr(e->version));
    json_object_set_new(o, "api", jstr(e->api));
    json_object_set_new(o, "state", json_string(e->stopped ? "stopped" : "running"));
    json_object_set_new(o, "started", json_integer(e->started_ns));
    json_object_set_new(o, "heartbeat", json_integer(e->heartbeat_ns));
    json_object_set_new(o, "ttl", json_integer(e->ttl_ns));
    if (e->has_sign_key) {
        char hex[2 * sizeof e->sign_key + 1];
        mesh_hex(e->sign_key, sizeof e->sign_key, hex);
        json_object_set_new(o, "sign_key", json_string(hex));
    }
    json_t *doms = json_array();
    for (size_t i = 0; i < e->ndomains; i++) {
        const mesh_entry_domain_t *d = &e->domains[i];
        json_t *dj = json_object(), *owners = json_array(), *prods = json_array();
        json_object_set_new(dj, "name", jstr(d->name));
        for (size_t k = 0; k < d->nowners; k++)
            json_array_append_new(owners, jstr(d->owners[k]));
        json_object_set_new(dj, "owners", owners);
        if (d->nhosts) {
            json_t *hosts = json_array();
            for (size_t k = 0; k < d->nhosts && k < MESH_ENTRY_MAX_HOSTS; k++)
                json_array_append_new(hosts, jstr(d->hosts[k]));
            json_object_set_new(dj, "hosts", hosts);
        }
        json_object_set_new(dj, "replication", jstr(d->replication[0] ? d->replication : "none"));
        for (size_t k = 0; k < d->nproducts; k++)
            json_array_append_new(prods,
                                  json_pack("{s:o,s:o,s:o}", "name", jstr(d->products[k].name),
                                            "contract", jstr(d->products[k].contract), "version",
                                            jstr(d->products[k].version)));
        json_object_set_new(dj, "products", prods);
        json_array_append_new(doms, dj);
    }
    json_object_set_new(o, "domains", doms);
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    if (s == NULL)
        return MESH_NOMEM;
    size_t n = strlen(s);
    mesh_status_t st = n > MESH_ENTRY_MAX_BYTES ? MESH_TOO_LARGE : mesh_buf_add(out, s, n);
    free(s);
    return st;
}

/* ---- parsing ---- */

/* A text field: a JSON string of at most max bytes without control characters. */
static mesh_status_t text(json_t *o, const char *key, size_t max, bool required, char **out,
                          mesh_err_t *err)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL && !required)
        return MESH_OK;
    if (!json_is_string(v))
        return mesh_err_set(err, MESH_INVALID, "%s: missing or not a string", key);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n > max)
        return mesh_err_set(err, MESH_INVALID, "%s: longer than %zu bytes", key, max);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return mesh_err_set(err, MESH_INVALID, "%s: control character", key);
    if ((*out = mesh_strndup(s, n)) == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    return MESH_OK;
}

static mesh_status_t time_field(json_t *o, const char *key, int64_t *out, mesh_err_t *err)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return mesh_err_set(err, MESH_INVALID, "%s: missing or not a non-negative integer", key);
    *out = (int64_t)json_integer_value(v);
    return MESH_OK;
}

static mesh_status_t parse_domain(json_t *dj, mesh_entry_domain_t *d, size_t *nprod,
                                  mesh_err_t *err)
{
    if (!json_is_object(dj))
        return mesh_err_set(err, MESH_INVALID, "domains: an item is not an object");
    mesh_status_t st = text(dj, "name", MESH_NAME_MAX, true, &d->name, err);
    if (st != MESH_OK)
        return st;
    if (!mesh_name_domain_ok(d->name))
        return mesh_err_set(err, MESH_INVALID, "domains: '%s' is not a domain name", d->name);
    json_t *owners = json_object_get(dj, "owners");
    if (owners && !json_is_array(owners))
        return mesh_err_set(err, MESH_INVALID, "%s: owners is not an array", d->name);
    size_t no = json_array_size(owners);
    if (no > MESH_ENTRY_MAX_OWNERS)
        return mesh_err_set(err, MESH_LIMIT, "%s: more than %d owners", d->name,
                            MESH_ENTRY_MAX_OWNERS);
    if (no && (d->owners = calloc(no, sizeof *d->owners)) == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    for (size_t i = 0; i < no; i++) {
        json_t *w = json_object();
        json_object_set(w, "owner", json_array_get(owners, i));
        st = text(w, "owner", MESH_ENTRY_MAX_TEXT, true, &d->owners[i], err);
        json_decref(w);
        if (st != MESH_OK)
            return st;
        d->nowners++;
    }
    json_t *hosts = json_object_get(dj, "hosts");
    if (hosts && !json_is_array(hosts))
        return mesh_err_set(err, MESH_INVALID, "%s: hosts is not an array", d->name);
    size_t nh = json_array_size(hosts);
    if (nh > MESH_ENTRY_MAX_HOSTS)
        return mesh_err_set(err, MESH_LIMIT, "%s: more than %d hosts", d->name,
                            MESH_ENTRY_MAX_HOSTS);
    if (nh && (d->hosts = calloc(nh, sizeof *d->hosts)) == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    for (size_t i = 0; i < nh; i++) {
        json_t *w = json_object();
        json_object_set(w, "host", json_array_get(hosts, i));
        st = text(w, "host", MESH_ENTRY_NODE_MAX, true, &d->hosts[i], err);
        json_decref(w);
        if (st != MESH_OK)
            return st;
        d->nhosts++;
        if (!mesh_entry_node_name_ok(d->hosts[i]))
            return mesh_err_set(err, MESH_INVALID, "%s: hosts[%zu] is not a node name", d->name, i);
    }
    char *mode = NULL;
    if (json_object_get(dj, "replication") &&
        (st = text(dj, "replication", 7, true, &mode, err)) != MESH_OK)
        return st;
    if (mode && strcmp(mode, "none") != 0 && strcmp(mode, "sync") != 0 &&
        strcmp(mode, "async") != 0) {
        free(mode);
        return mesh_err_set(err, MESH_INVALID, "%s: replication is not none|sync|async", d->name);
    }
    snprintf(d->replication, sizeof d->replication, "%s", mode ? mode : "none");
    free(mode);
    json_t *prods = json_object_get(dj, "products");
    if (prods && !json_is_array(prods))
        return mesh_err_set(err, MESH_INVALID, "%s: products is not an array", d->name);
    size_t np = json_array_size(prods);
    if (np > MESH_ENTRY_MAX_PRODUCTS - *nprod)
        return mesh_err_set(err, MESH_LIMIT, "more than %d products", MESH_ENTRY_MAX_PRODUCTS);
    *nprod += np;
    if (np && (d->products = calloc(np, sizeof *d->products)) == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    for (size_t i = 0; i < np; i++) {
        json_t *pj = json_array_get(prods, i);
        mesh_entry_product_t *p = &d->products[i];
        if (!json_is_object(pj))
            return mesh_err_set(err, MESH_INVALID, "%s: a product is not an object", d->name);
        d->nproducts++;
        if ((st = text(pj, "name", MESH_NAME_MAX, true, &p->name, err)) != MESH_OK ||
            (st = text(pj, "contract", MESH_ENTRY_MAX_TEXT, true, &p->contract, err)) != MESH_OK ||
            (st = text(pj, "version", MESH_ENTRY_MAX_TEXT, true, &p->version, err)) != MESH_OK)
            return st;
        if (!mesh_name_product_ok(p->name))
            return mesh_err_set(err, MESH_INVALID, "%s: '%s' is not a product name", d->name,
                                p->name);
    }
    return MESH_OK;
}

static mesh_status_t parse_obj(json_t *o, mesh_entry_t *e, mesh_err_t *err)
{
    if (!json_is_object(o))
        return mesh_err_set(err, MESH_INVALID, "not a JSON object");
    json_t *v = json_object_get(o, "v");
    if (!json_is_integer(v) || json_integer_value(v) != 1)
        return mesh_err_set(err, MESH_INVALID, "v: not version 1");
    char *state = NULL;
    mesh_status_t st;
    if ((st = text(o, "node_id", MESH_ENTRY_MAX_TEXT, true, &e->node_id, err)) != MESH_OK ||
        (st = text(o, "name", MESH_ENTRY_NODE_MAX, true, &e->name, err)) != MESH_OK ||
        (st = text(o, "site", MESH_ENTRY_MAX_TEXT, true, &e->site, err)) != MESH_OK ||
        (st = text(o, "version", MESH_ENTRY_MAX_TEXT, true, &e->version, err)) != MESH_OK ||
        (st = text(o, "api", MESH_ENTRY_MAX_TEXT, true, &e->api, err)) != MESH_OK ||
        (st = text(o, "state", 16, true, &state, err)) != MESH_OK)
        return st;
    if (!mesh_entry_node_name_ok(e->name))
        st = mesh_err_set(err, MESH_INVALID, "name: not a node name");
    else if (strcmp(state, "running") == 0)
        e->stopped = false;
    else if (strcmp(state, "stopped") == 0)
        e->stopped = true;
    else
        st = mesh_err_set(err, MESH_INVALID, "state: not running|stopped");
    free(state);
    if (st != MESH_OK)
        return st;
    if ((st = time_field(o, "started", &e->started_ns, err)) != MESH_OK ||
        (st = time_field(o, "heartbeat", &e->heartbeat_ns, err)) != MESH_OK ||
        (st = time_field(o, "ttl", &e->ttl_ns, err)) != MESH_OK)
        return st;
    json_t *sk = json_object_get(o, "sign_key");
    if (sk) {
        /* exactly 64 hex digits: a key of another length or shape is refused, not cut */
        if (!json_is_string(sk) || json_string_length(sk) != 2 * sizeof e->sign_key ||
            !mesh_unhex(json_string_value(sk), e->sign_key, sizeof e->sign_key))
            return mesh_err_set(err, MESH_INVALID, "sign_key: not 64 hex digits");
        e->has_sign_key = true;
    }
    json_t *doms = json_object_get(o, "domains");
    if (!json_is_array(doms))
        return mesh_err_set(err, MESH_INVALID, "domains: missing or not an array");
    size_t nd = json_array_size(doms), nprod = 0;
    if (nd > MESH_ENTRY_MAX_DOMAINS)
        return mesh_err_set(err, MESH_LIMIT, "more than %d domains", MESH_ENTRY_MAX_DOMAINS);
    if (nd && (e->domains = calloc(nd, sizeof *e->domains)) == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    for (size_t i = 0; i < nd; i++) {
        e->ndomains++;
        if ((st = parse_domain(json_array_get(doms, i), &e->domains[i], &nprod, err)) != MESH_OK)
            return st;
    }
    return MESH_OK;
}

mesh_status_t mesh_entry_parse(const char *p, size_t n, mesh_entry_t **out, mesh_err_t *err)
{
    *out = NULL;
    if (n > MESH_ENTRY_MAX_BYTES)
        return mesh_err_set(err, MESH_TOO_LARGE, "entry of %zu bytes (limit %d)", n,
                            MESH_ENTRY_MAX_BYTES);
    json_error_t je;
    json_t *o = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
    if (o == NULL)
        return mesh_err_set(err, MESH_PARSE, "malformed JSON at column %d: %s", je.column, je.text);
    mesh_entry_t *e = calloc(1, sizeof *e);
    mesh_status_t st = e ? parse_obj(o, e, err) : mesh_err_set(err, MESH_NOMEM, "out of memory");
    json_decref(o);
    if (st != MESH_OK) {
        mesh_entry_free(e);
        return st;
    }
    *out = e;
    return MESH_OK;
}

void mesh_entry_free(mesh_entry_t *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->ndomains; i++) {
        mesh_entry_domain_t *d = &e->domains[i];
        free(d->name);
        for (size_t k = 0; k < d->nowners; k++)
            free(d->owners[k]);
        free(d->owners);
        for (size_t k = 0; k < d->nhosts; k++)
            free(d->hosts[k]);
        free(d->hosts);
        for (size_t k = 0; k < d->nproducts; k++) {
            free(d->products[k].name);
            free(d->products[k].contract);
            free(d->products[k].version);
        }
        free(d->products);
    }
    free(e->domains);
    free(e->node_id);
    free(e->name);
    free(e->site);
    free(e->version);
    free(e->api);
    free(e);
}
