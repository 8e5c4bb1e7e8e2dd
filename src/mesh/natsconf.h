/*
 * natsconf.h - `meshctl mesh config`: the nats-server configurations of a mesh, secure by
 * default, with a small CA, the certificates, per-node credentials and the meshd config of
 * every node. Offline: nothing is contacted.
 *
 * What is written to DIR (see docs/mesh.md and the decision "mesh on NATS" in docs/decisions/):
 *   ca.pem, ca-key.pem         the mesh CA (keep ca-key.pem offline once done)
 *   hub-N/nats.conf            a hub server: client TLS with client certificates required,
 *                              JetStream (domain "hub"), a cluster with TLS and a route
 *                              user, a leafnode listener with one user per leaf, accounts
 *                              SYS and MESH, one user per node with subject permissions
 *   hub-N/cert.pem, key.pem    its certificate (serverAuth + clientAuth) and key
 *   leaf-N/nats.conf, ...      an edge leaf server: its own JetStream domain "leaf-N", a
 *                              leafnode remote to every hub, the users of its own nodes
 *   nodes/NAME/meshd.conf      the mesh_* options of node NAME
 *   nodes/NAME/password        its NATS password (0600); cert.pem, key.pem its certificate
 *   sys.password               the password of the SYS account's user "sys" (operators)
 * Passwords are random (24 bytes, base64url); the servers hold only their bcrypt hashes,
 * except where a server is itself the client (route and leafnode remote URLs), and those
 * config files are 0600.
 */
#ifndef MESH_MESH_NATSCONF_H
#define MESH_MESH_NATSCONF_H

#include <stddef.h>
#include <stdio.h>

#include "core/status.h"

#define MESH_NATSCONF_MAX_SERVERS 16 /* hubs, and leaves, each */
#define MESH_NATSCONF_MAX_NODES   256
#define MESH_NATSCONF_MAX_DOMAINS 64 /* per node */

typedef struct mesh_natsconf_node {
    const char *name;   /* mesh_entry_node_name_ok */
    const char *server; /* "hub-2", "leaf-1"; NULL: assigned */
    const char *const *domains;
    size_t ndomains;
} mesh_natsconf_node_t;

typedef struct mesh_natsconf_opts {
    int hubs, leaves;
    const char *const *hub_hosts; /* names or addresses clients use; 1 host: all on it */
    size_t nhub_hosts;
    const char *const *leaf_hosts;
    size_t nleaf_hosts;
    const char *bind;                             /* address the servers listen on */
    int client_port, cluster_port, leafnode_port; /* on a shared host: + the server's index */
    const mesh_natsconf_node_t *nodes;            /* NULL: one node per server */
    size_t nnodes;
    const char *out_dir; /* absolute; created; must not hold a previous mesh (ca.pem) */
    /* domains with residency local: an edge leaf's node gets no permission to have them
     * sourced by the hub, and the leaf's link to the hub carries none of their subjects */
    const char *const *local_domains;
    size_t nlocal_domains;
    int cert_days;
    int bcrypt_cost;
} mesh_natsconf_opts_t;

/* Writes everything; a line per file to report (may be NULL). */
mesh_status_t mesh_natsconf_write(const mesh_natsconf_opts_t *o, FILE *report, mesh_err_t *err);

/* The NATS subject permissions of a node, as nats-server config text (the permissions
 * block), into out (at most cap bytes). leaf: the node's server is a leaf (the registry is
 * reached in JetStream domain "hub", and the node may create and read the hub's copy
 * MESHD_COPY_<domain> of each of its domains not listed in local, docs/mesh.md). */
mesh_status_t mesh_natsconf_permissions(const char *node, const char *const *domains,
                                        size_t ndomains, int leaf, const char *const *local,
                                        size_t nlocal, char *out, size_t cap);

#endif
