/*
 * api_mesh.c - the mesh as this node sees it: GET /v1/mesh/nodes, /v1/mesh/domains and
 * /v1/mesh/products, read from the registry bucket (mesh/mesh.h).
 *
 * Access: every route needs an authenticated caller. Nodes (name, site, version, API
 * address, liveness) are shown to any authenticated caller: they are the addresses a client
 * needs to reach the mesh. Domains and products are filtered with this node's access policy,
 * exactly as the local listings are: a domain appears when the caller may see it (owner, or
 * a grant on it or one of its products), a product when the caller may read or write it.
 * Grants name domains and products, which are mesh-wide names, so a grant given on this node
 * decides what of the whole mesh the caller discovers here; admins see everything. Only
 * names, owners and contract versions travel in the registry: never rows, schemas or row
 * counts. Every value read from the registry was checked by mesh_entry_parse and is
 * re-encoded here.
 */
#include <jansson.h>
#include <string.h>

#include "core/util.h"
#include "http/internal.h"

static json_t *time_json(int64_t ns)
{
    if (ns <= 0)
        return json_null();
    char t[MESH_TIME_MAX];
    mesh_time_format(ns, t);
    return json_string(t);
}

static bool owns(const mesh_req_t *r, const mesh_entry_domain_t *d)
{
    for (size_t i = 0; i < d->nowners; i++)
        if (strcmp(d->owners[i], r->who.name) == 0)
            return true;
    return false;
}

static bool sees_domain(mesh_req_t *r, const mesh_entry_domain_t *d)
{
    return mesh_policy_sees_domain(mesh_req_policy(r), &r->who, d->name, owns(r, d));
}

static bool sees_product(mesh_req_t *r, const mesh_entry_domain_t *d, const char *product)
{
    bool owner = owns(r, d);
    return mesh_policy_decide(mesh_req_policy(r), &r->who, MESH_ACT_READ, d->name, product, owner,
                              NULL) ||
           mesh_policy_decide(mesh_req_policy(r), &r->who, MESH_ACT_WRITE, d->name, product, owner,
                              NULL);
}

/* The link's state, as in /v1/status. */
json_t *mesh_api_mesh_status_json(mesh_node_t *n)
{
    json_t *o = json_object();
    json_object_set_new(o, "enabled", json_boolean(n->mesh != NULL));
    if (n->mesh == NULL)
        return o;
    mesh_mesh_status_t st;
    mesh_mesh_status(n->mesh, &st);
    json_object_set_new(o, "state", json_string(st.state));
    json_object_set_new(o, "server", st.server[0] ? json_string(st.server) : json_null());
    json_object_set_new(o, "server_version",
                        st.server_version[0] ? json_string(st.server_version) : json_null());
    if (st.server_version[0] && st.server_pre_2_10)
        json_object_set_new(o, "warning",
                            json_string("nats-server older than 2.10: JetStream acknowledges "
                                        "before fsync; a power loss of the servers can lose "
                                        "acknowledged messages"));
    json_object_set_new(o, "registered", json_boolean(st.registered));
    json_object_set_new(o, "last_heartbeat", time_json(st.last_heartbeat_ns));
    json_object_set_new(o, "heartbeats", json_integer((json_int_t)st.heartbeats));
    json_object_set_new(o, "heartbeat_failures", json_integer((json_int_t)st.heartbeat_failures));
    json_object_set_new(o, "reconnects", json_integer((json_int_t)st.reconnects));
    json_object_set_new(o, "last_error",
                        st.last_error[0] ? json_string(st.last_error) : json_null());
    json_object_set_new(o, "inbox_captured_by",
                        st.inbox_captured_by[0] ? json_string(st.inbox_captured_by) : json_null());
    json_object_set_new(o, "requests_captured_by",
                        st.requests_captured_by[0] ? json_string(st.requests_captured_by)
                                                   : json_null());
    json_object_set_new(o, "api_url", json_string(n->mesh_api_url));
    return o;
}

/* Lists the registry or replies with the error; false when it replied. */
static bool list(mesh_req_t *r, mesh_mesh_node_t **v, size_t *n)
{
    if (r->node->mesh == NULL) {
        mesh_req_errorf(r, MESH_UNAVAILABLE,
                        "this node is not in a mesh (start it with --mesh nats://...)");
        return false;
    }
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_mesh_list(r->node->mesh, v, n, &err);
    if (st != MESH_OK) {
        mesh_req_errorf(r, st, "mesh registry: %s", err.msg);
        return false;
    }
    return true;
}

static void node_common(json_t *o, const mesh_mesh_node_t *nd)
{
    json_object_set_new(o, "node", json_string(nd->e->name));
    json_object_set_new(o, "site", json_string(nd->e->site));
    json_object_set_new(o, "alive", json_boolean(nd->alive));
}

void mesh_api_mesh_nodes(mesh_req_t *r)
{
    mesh_mesh_node_t *v;
    size_t n;
    if (!list(r, &v, &n))
        return;
    json_t *arr = json_array();
    int64_t now = mesh_now_ns();
    for (size_t i = 0; i < n; i++) {
        const mesh_entry_t *e = v[i].e;
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(e->name));
        json_object_set_new(o, "node_id", json_string(e->node_id));
        json_object_set_new(o, "site", json_string(e->site));
        json_object_set_new(o, "version", json_string(e->version));
        json_object_set_new(o, "api", json_string(e->api));
        json_object_set_new(o, "state", json_string(e->stopped ? "stopped" : "running"));
        json_object_set_new(o, "alive", json_boolean(v[i].alive));
        json_object_set_new(o, "started", time_json(e->started_ns));
        json_object_set_new(o, "last_seen", time_json(v[i].written_ns));
        json_object_set_new(o, "seconds_since_heartbeat",
                            json_real((double)(now - v[i].written_ns) / 1e9));
        json_object_set_new(o, "ttl_seconds", json_real((double)e->ttl_ns / 1e9));
        json_object_set_new(o, "self", json_boolean(strcmp(e->name, r->node->opts.node_name) == 0));
        json_t *doms = json_array();
        for (size_t k = 0; k < e->ndomains; k++)
            if (sees_domain(r, &e->domains[k]))
                json_array_append_new(doms, json_string(e->domains[k].name));
        json_object_set_new(o, "domains", doms);
        json_array_append_new(arr, o);
    }
    mesh_mesh_list_free(v, n);
    json_t *o = json_object();
    json_object_set_new(o, "mesh", mesh_api_mesh_status_json(r->node));
    json_object_set_new(o, "nodes", arr);
    mesh_api_reply_json(r, 200, o);
}

void mesh_api_mesh_domains(mesh_req_t *r)
{
    mesh_mesh_node_t *v;
    size_t n;
    if (!list(r, &v, &n))
        return;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < v[i].e->ndomains; k++) {
            const mesh_entry_domain_t *d = &v[i].e->domains[k];
            if (!sees_domain(r, d))
                continue;
            json_t *o = json_object(), *owners = json_array();
            json_object_set_new(o, "name", json_string(d->name));
            for (size_t j = 0; j < d->nowners; j++)
                json_array_append_new(owners, json_string(d->owners[j]));
            json_object_set_new(o, "owners", owners);
            json_t *hosts = json_array();
            for (size_t j = 0; j < d->nhosts; j++)
                json_array_append_new(hosts, json_string(d->hosts[j]));
            json_object_set_new(o, "hosts", hosts);
            json_object_set_new(o, "replication", json_string(d->replication));
            size_t np = 0;
            for (size_t j = 0; j < d->nproducts; j++)
                np += sees_product(r, d, d->products[j].name);
            json_object_set_new(o, "products", json_integer((json_int_t)np));
            node_common(o, &v[i]);
            json_array_append_new(arr, o);
        }
    mesh_mesh_list_free(v, n);
    json_t *o = json_object();
    json_object_set_new(o, "domains", arr);
    mesh_api_reply_json(r, 200, o);
}

void mesh_api_mesh_products(mesh_req_t *r)
{
    const char *only = mesh_req_arg(r, "domain");
    mesh_mesh_node_t *v;
    size_t n;
    if (!list(r, &v, &n))
        return;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < v[i].e->ndomains; k++) {
            const mesh_entry_domain_t *d = &v[i].e->domains[k];
            if (only && strcmp(only, d->name) != 0)
                continue;
            for (size_t j = 0; j < d->nproducts; j++) {
                const mesh_entry_product_t *p = &d->products[j];
                if (!sees_product(r, d, p->name))
                    continue;
                json_t *o = json_object();
                json_object_set_new(o, "domain", json_string(d->name));
                json_object_set_new(o, "name", json_string(p->name));
                json_object_set_new(o, "contract", json_string(p->contract));
                json_object_set_new(o, "version", json_string(p->version));
                node_common(o, &v[i]);
                json_array_append_new(arr, o);
            }
        }
    mesh_mesh_list_free(v, n);
    json_t *o = json_object();
    json_object_set_new(o, "products", arr);
    mesh_api_reply_json(r, 200, o);
}
