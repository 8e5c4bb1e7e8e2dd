/*
 * mesh.c - the node's side of the mesh: what its registry entry says (name, site, API
 * address, the domains and products of its catalog) and starting the link (mesh/mesh.h).
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "crypt/sign.h"
#include "mesh/fed.h"
#include "mesh/snap.h"
#include "node/node.h"

/* The entry of this node from the current catalog snapshot. */
static mesh_status_t describe(void *arg, bool stopped, mesh_buf_t *out)
{
    mesh_node_t *n = arg;
    mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
    if (!stopped) {
        mesh__node_fed_heartbeat(n, s);
        mesh__node_bootstrap_heartbeat(n, s);
    }
    size_t nd = s->ndoms < MESH_ENTRY_MAX_DOMAINS ? s->ndoms : MESH_ENTRY_MAX_DOMAINS;
    mesh_entry_domain_t *doms = calloc(nd ? nd : 1, sizeof *doms);
    mesh_status_t st = doms ? MESH_OK : MESH_NOMEM;
    size_t nprod = 0;
    for (size_t i = 0; i < nd && st == MESH_OK; i++) {
        const mesh_snap_domain_t *sd = &s->doms[i];
        mesh_entry_domain_t *d = &doms[i];
        d->name = (char *)sd->meta.name;
        d->owners = (char **)sd->meta.owners;
        d->nowners =
            sd->meta.nowners < MESH_ENTRY_MAX_OWNERS ? sd->meta.nowners : MESH_ENTRY_MAX_OWNERS;
        d->hosts = sd->meta.hosts;
        d->nhosts = sd->meta.nhosts < MESH_ENTRY_MAX_HOSTS ? sd->meta.nhosts : MESH_ENTRY_MAX_HOSTS;
        snprintf(d->replication, sizeof d->replication, "%s",
                 sd->meta.replication[0] ? sd->meta.replication : "none");
        size_t np = 0;
        for (size_t k = 0; k < sd->ncrefs; k++)
            np += sd->crefs[k]->c->nproducts;
        if (np == 0)
            continue;
        if ((d->products = calloc(np, sizeof *d->products)) == NULL) {
            st = MESH_NOMEM;
            break;
        }
        for (size_t k = 0; k < sd->ncrefs; k++) {
            const mesh_contract_t *c = sd->crefs[k]->c;
            for (size_t j = 0; j < c->nproducts && nprod < MESH_ENTRY_MAX_PRODUCTS; j++) {
                mesh_entry_product_t *p = &d->products[d->nproducts++];
                p->name = (char *)c->products[j].name;
                p->contract = (char *)c->id;
                p->version = (char *)c->version;
                nprod++;
            }
        }
    }
    if (st == MESH_OK) {
        mesh_entry_t e = {.node_id = (char *)mesh_catalog_node_id(n->cat),
                          .name = n->opts.node_name,
                          .site = n->opts.site,
                          .version = (char *)MESH_VERSION,
                          .api = n->mesh_api_url,
                          .stopped = stopped,
                          .started_ns = n->started_ns,
                          .heartbeat_ns = mesh_now_ns(),
                          .ttl_ns = n->opts.mesh_ttl,
                          .domains = doms,
                          .ndomains = nd};
        if (n->signkey) {
            e.has_sign_key = true;
            mesh_signkey_public(n->signkey, e.sign_key);
        }
        st = mesh_entry_encode(&e, out);
    }
    for (size_t i = 0; doms && i < nd; i++)
        free(doms[i].products);
    free(doms);
    mesh_snapshot_put(s);
    return st;
}

mesh_status_t mesh__node_mesh_start(mesh_node_t *n, mesh_err_t *err)
{
    const mesh_node_opts_t *o = &n->opts;
    if (o->mesh == NULL || *o->mesh == '\0')
        return MESH_OK;
    if (o->mesh_ttl < 2 * o->mesh_heartbeat)
        return mesh_err_set(err, MESH_INVALID, "mesh_ttl must be at least twice mesh_heartbeat");
    if (o->mesh_api_url && *o->mesh_api_url) {
        snprintf(n->mesh_api_url, sizeof n->mesh_api_url, "%s", o->mesh_api_url);
    } else {
        /* the bound address, or the node name for a wildcard one */
        const char *addr = n->listen_addr;
        const char *colon = strrchr(addr, ':');
        bool wildcard = strncmp(addr, "0.0.0.0:", 8) == 0 || strncmp(addr, "[::]:", 5) == 0;
        if (wildcard && colon)
            snprintf(n->mesh_api_url, sizeof n->mesh_api_url, "%s://%s%s",
                     n->tls ? "https" : "http", o->node_name, colon);
        else
            snprintf(n->mesh_api_url, sizeof n->mesh_api_url, "%s://%s", n->tls ? "https" : "http",
                     addr);
    }
    mesh_mesh_opts_t mo = {.servers = o->mesh,
                           .tls_ca = o->mesh_tls_ca,
                           .tls_cert = o->mesh_tls_cert,
                           .tls_key = o->mesh_tls_key,
                           .user = o->mesh_user,
                           .password_file = o->mesh_password_file,
                           .js_domain = o->mesh_js_domain,
                           .node_name = o->node_name,
                           .heartbeat_ns = o->mesh_heartbeat,
                           .timeout_ns = o->mesh_timeout,
                           .replicas = (int)o->mesh_replicas,
                           .stream_max_age_ns = o->mesh_stream_max_age,
                           .stream_max_bytes = o->mesh_stream_max_bytes,
                           .stream_max_msgs = o->mesh_stream_max_msgs,
                           .describe = describe,
                           .describe_arg = n};
    mesh_status_t st = mesh__node_fed_start(n, err);
    if (st == MESH_OK)
        st = mesh__node_bootstrap_start(n, err);
    if (st == MESH_OK)
        st = mesh_mesh_start(&mo, &n->mesh, err);
    if (st != MESH_OK)
        return st;
    mesh_fed_set_mesh(n->fed, n->mesh);
    mesh_snap_set_mesh(n->snap, n->mesh);
    LOG_INFO("mesh", "joining the mesh through %s as %s (site %s, TLS %s, user %s)", o->mesh,
             o->node_name, o->site, o->mesh_tls_ca && *o->mesh_tls_ca ? "on" : "OFF",
             o->mesh_user && *o->mesh_user ? o->mesh_user : "none");
    if (!(o->mesh_tls_ca && *o->mesh_tls_ca))
        LOG_WARN("mesh", "the mesh connection is not encrypted (no mesh_tls_ca): use the TLS "
                         "configs of `meshctl mesh config` outside a test bench");
    return MESH_OK;
}
