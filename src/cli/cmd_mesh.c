/*
 * cmd_mesh.c - `meshctl mesh nodes|domains|products` (the mesh as the node sees it, from
 * GET /v1/mesh/...) and `meshctl mesh config` (nats-server configs, certificates and
 * credentials for a new mesh, written offline by mesh/natsconf.c).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/util.h"
#include "mesh/natsconf.h"

/* ---- listings ---- */

static const char *yesno(const json_t *o, const char *key)
{
    return json_is_true(json_object_get(o, key)) ? "yes" : "no";
}

static int emit(mesh_cli_t *cli, mesh_table_t *t, json_t *j, const char *none)
{
    const char *fmt = mesh_cli_format(cli, false);
    if (mesh_table_rows(t) == 0 && strcmp(fmt, "csv") != 0) {
        if (!cli->quiet)
            printf("%s\n", none);
    } else {
        mesh_cli_emit_table(cli, t, fmt);
    }
    mesh_table_destroy(t);
    json_decref(j);
    return 0;
}

static int run_nodes(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    (void)a;
    static const mesh_cli_col_t cols[] = {
        {"node", "NODE", MESH_ALIGN_LEFT, 0},        {"site", "SITE", MESH_ALIGN_LEFT, 0},
        {"alive", "ALIVE", MESH_ALIGN_LEFT, 0},      {"last_seen", "LAST SEEN", MESH_ALIGN_LEFT, 0},
        {"version", "VERSION", MESH_ALIGN_LEFT, 0},  {"api", "API", MESH_ALIGN_LEFT, 0},
        {"domains", "DOMAINS", MESH_ALIGN_LEFT, 60},
    };
    mesh_client_req_t req = {.method = "GET", .path = "/v1/mesh/nodes"};
    json_t *j;
    mesh_table_t *t;
    bool csv;
    int rc = mesh_cli_list(cli, &req, cols, MESH_ARRAY_LEN(cols), &j, &t, &csv);
    if (rc != 0 || j == NULL)
        return rc;
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(j, "nodes"), i, n)
    {
        char when[MESH_CLI_TIME_MAX];
        const char *seen = mesh_cli_jstr(n, "last_seen");
        mesh_buf_t doms;
        mesh_buf_init(&doms, 1 << 20);
        mesh_cli_join(&doms, json_object_get(n, "domains"), csv ? " " : ", ");
        mesh_table_add(t, mesh_cli_jstr(n, "name"));
        mesh_table_add(t, mesh_cli_jstr(n, "site"));
        mesh_table_add(t, yesno(n, "alive"));
        mesh_table_add(t, csv ? seen : mesh_cli_short_time(seen, when));
        mesh_table_add(t, mesh_cli_jstr(n, "version"));
        mesh_table_add(t, mesh_cli_jstr(n, "api"));
        mesh_table_add(t, doms.data ? doms.data : "");
        mesh_buf_free(&doms);
    }
    return emit(cli, t, j, "no nodes in the registry");
}

static int run_domains(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    (void)a;
    static const mesh_cli_col_t cols[] = {
        {"domain", "DOMAIN", MESH_ALIGN_LEFT, 0},
        {"node", "NODE", MESH_ALIGN_LEFT, 0},
        {"site", "SITE", MESH_ALIGN_LEFT, 0},
        {"alive", "ALIVE", MESH_ALIGN_LEFT, 0},
        {"products", "PRODUCTS", MESH_ALIGN_RIGHT, 0},
        {"replication", "REPLICATION", MESH_ALIGN_LEFT, 0},
        {"hosts", "HOSTS", MESH_ALIGN_LEFT, 40},
        {"owners", "OWNERS", MESH_ALIGN_LEFT, 60},
    };
    mesh_client_req_t req = {.method = "GET", .path = "/v1/mesh/domains"};
    json_t *j;
    mesh_table_t *t;
    bool csv;
    int rc = mesh_cli_list(cli, &req, cols, MESH_ARRAY_LEN(cols), &j, &t, &csv);
    if (rc != 0 || j == NULL)
        return rc;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(j, "domains"), i, d)
    {
        mesh_buf_t owners;
        mesh_buf_init(&owners, 1 << 20);
        mesh_cli_join(&owners, json_object_get(d, "owners"), csv ? " " : ", ");
        mesh_table_add(t, mesh_cli_jstr(d, "name"));
        mesh_table_add(t, mesh_cli_jstr(d, "node"));
        mesh_table_add(t, mesh_cli_jstr(d, "site"));
        mesh_table_add(t, yesno(d, "alive"));
        mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(d, "products"));
        mesh_buf_t hosts;
        mesh_buf_init(&hosts, 1 << 16);
        mesh_cli_join(&hosts, json_object_get(d, "hosts"), csv ? " " : ", ");
        mesh_table_add(t, mesh_cli_jstr(d, "replication"));
        mesh_table_add(t, hosts.data ? hosts.data : "");
        mesh_table_add(t, owners.data ? owners.data : "");
        mesh_buf_free(&hosts);
        mesh_buf_free(&owners);
    }
    return emit(cli, t, j, "no domains in the mesh (that you may see)");
}

static int run_products(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    static const mesh_cli_col_t cols[] = {
        {"product", "PRODUCT", MESH_ALIGN_LEFT, 0}, {"contract", "CONTRACT", MESH_ALIGN_LEFT, 0},
        {"version", "VERSION", MESH_ALIGN_LEFT, 0}, {"node", "NODE", MESH_ALIGN_LEFT, 0},
        {"site", "SITE", MESH_ALIGN_LEFT, 0},       {"alive", "ALIVE", MESH_ALIGN_LEFT, 0},
    };
    const char *dom = mesh_cli_arg(a, "domain");
    char path[128] = "/v1/mesh/products";
    int rc;
    if (dom) {
        if ((rc = mesh_cli_domain_name(cli, dom)) != 0)
            return rc;
        snprintf(path, sizeof path, "/v1/mesh/products?domain=%s", dom);
    }
    mesh_client_req_t req = {.method = "GET", .path = path};
    json_t *j;
    mesh_table_t *t;
    bool csv;
    if ((rc = mesh_cli_list(cli, &req, cols, MESH_ARRAY_LEN(cols), &j, &t, &csv)) != 0 || j == NULL)
        return rc;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(j, "products"), i, p)
    {
        mesh_table_addf(t, "%s.%s", mesh_cli_jstr(p, "domain"), mesh_cli_jstr(p, "name"));
        mesh_table_add(t, mesh_cli_jstr(p, "contract"));
        mesh_table_add(t, mesh_cli_jstr(p, "version"));
        mesh_table_add(t, mesh_cli_jstr(p, "node"));
        mesh_table_add(t, mesh_cli_jstr(p, "site"));
        mesh_table_add(t, yesno(p, "alive"));
    }
    return emit(cli, t, j, "no products in the mesh (that you may read)");
}

/* ---- mesh config ---- */

/* Splits s at commas into v (at most max items, each non-empty), in place. */
static size_t split(char *s, char **v, size_t max)
{
    size_t n = 0;
    for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ","))
        if (*tok)
            v[n++] = tok;
    return n;
}

typedef struct node_spec {
    char *text; /* owned copy of the argument, split in place */
    char *domains[MESH_NATSCONF_MAX_DOMAINS];
} node_spec_t;

static int run_config(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    int64_t hubs, leaves, cport, rport, lport, days;
    int rc;
    if ((rc = mesh_cli_arg_int(cli, a, "hub", 3, 1, MESH_NATSCONF_MAX_SERVERS, &hubs)) != 0 ||
        (rc = mesh_cli_arg_int(cli, a, "leaf", 0, 0, MESH_NATSCONF_MAX_SERVERS, &leaves)) != 0 ||
        (rc = mesh_cli_arg_int(cli, a, "client-port", 4222, 1, 65535, &cport)) != 0 ||
        (rc = mesh_cli_arg_int(cli, a, "cluster-port", 6222, 1, 65535, &rport)) != 0 ||
        (rc = mesh_cli_arg_int(cli, a, "leafnode-port", 7422, 1, 65535, &lport)) != 0 ||
        (rc = mesh_cli_arg_int(cli, a, "days", 825, 1, 3650, &days)) != 0)
        return rc;
    const char *out = mesh_cli_arg(a, "out");
    if (out == NULL || *out == '\0')
        return mesh_cli_usage(cli, "--out DIR is required");
    char dir[PATH_MAX];
    if (out[0] == '/') {
        snprintf(dir, sizeof dir, "%s", out);
    } else {
        char cwd[PATH_MAX - 256];
        if (getcwd(cwd, sizeof cwd) == NULL)
            return mesh_cli_local(cli, "cannot find the current directory");
        snprintf(dir, sizeof dir, "%s/%s", cwd, out);
    }
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        dir[--len] = '\0';
    char *hub_hosts_text =
        mesh_strdup(mesh_cli_arg(a, "hub-hosts") ? mesh_cli_arg(a, "hub-hosts") : "");
    char *leaf_hosts_text =
        mesh_strdup(mesh_cli_arg(a, "leaf-hosts") ? mesh_cli_arg(a, "leaf-hosts") : "");
    char *hub_hosts[MESH_NATSCONF_MAX_SERVERS], *leaf_hosts[MESH_NATSCONF_MAX_SERVERS];
    const char *local[MESH_NATSCONF_MAX_DOMAINS];
    size_t nspecs = 0;
    while (mesh_cli_arg_at(a, "node", nspecs))
        nspecs++;
    node_spec_t *specs = calloc(nspecs ? nspecs : 1, sizeof *specs);
    mesh_natsconf_node_t *nodes = calloc(nspecs ? nspecs : 1, sizeof *nodes);
    if (hub_hosts_text == NULL || leaf_hosts_text == NULL || specs == NULL || nodes == NULL) {
        rc = mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nspecs; i++) {
        /* NAME[@SERVER][=DOMAIN,...] */
        if ((specs[i].text = mesh_strdup(mesh_cli_arg_at(a, "node", i))) == NULL) {
            rc = mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
            goto done;
        }
        char *s = specs[i].text;
        char *eq = strchr(s, '=');
        if (eq) {
            *eq = '\0';
            nodes[i].ndomains = split(eq + 1, specs[i].domains, MESH_NATSCONF_MAX_DOMAINS);
            nodes[i].domains = (const char *const *)specs[i].domains;
        }
        char *at = strchr(s, '@');
        if (at) {
            *at = '\0';
            nodes[i].server = at + 1;
        }
        nodes[i].name = s;
    }
    mesh_natsconf_opts_t o = {
        .hubs = (int)hubs,
        .leaves = (int)leaves,
        .hub_hosts = (const char *const *)hub_hosts,
        .nhub_hosts = split(hub_hosts_text, hub_hosts, MESH_NATSCONF_MAX_SERVERS),
        .leaf_hosts = (const char *const *)leaf_hosts,
        .nleaf_hosts = split(leaf_hosts_text, leaf_hosts, MESH_NATSCONF_MAX_SERVERS),
        .bind = mesh_cli_arg(a, "bind") ? mesh_cli_arg(a, "bind") : "0.0.0.0",
        .client_port = (int)cport,
        .cluster_port = (int)rport,
        .leafnode_port = (int)lport,
        .nodes = nspecs ? nodes : NULL,
        .nnodes = nspecs,
        .out_dir = dir,
        .cert_days = (int)days,
        .bcrypt_cost = 11,
        .local_domains = (const char *const *)local,
    };
    while (o.nlocal_domains < MESH_NATSCONF_MAX_DOMAINS &&
           (local[o.nlocal_domains] = mesh_cli_arg_at(a, "local-domain", o.nlocal_domains)))
        o.nlocal_domains++;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_natsconf_write(&o, cli->quiet ? NULL : stdout, &err);
    if (st == MESH_IO)
        rc = mesh_cli_local(cli, "%s", err.msg);
    else if (st != MESH_OK)
        rc = mesh_cli_fail(cli, st, "%s", err.msg);
    else if (!cli->quiet)
        printf("\nStart each server with: nats-server -c %s/<server>/nats.conf\n"
               "Start each node with its options: meshd --config %s/nodes/<node>/meshd.conf "
               "...\n(see docs/mesh.md)\n",
               dir, dir);
done:
    for (size_t i = 0; specs && i < nspecs; i++)
        free(specs[i].text);
    free(specs);
    free(nodes);
    free(hub_hosts_text);
    free(leaf_hosts_text);
    return rc;
}

static const mesh_cli_opt_t products_opts[] = {
    {"domain", 0, "DOMAIN", 0, "Only the products of this domain."},
    {NULL, 0, NULL, 0, NULL},
};

static const mesh_cli_opt_t config_opts[] = {
    {"out", 'o', "DIR", 0,
     "Directory to write into (created; refused when it holds a mesh already)."},
    {"hub", 0, "N", 0, "Servers in the hub cluster: 1 or 3 (more works; default 3)."},
    {"leaf", 0, "N", 0, "Edge leaf servers, each with its own JetStream domain (default 0)."},
    {"node", 0, "NAME[@SERVER][=DOMAIN,...]", MESH_CLI_MULTI,
     "A meshd node: its name (its NATS user), the server it connects to (hub-1, leaf-2; "
     "default: the hubs in turn) and the domains it hosts (their subjects and streams are "
     "the only ones it may use). Repeat for each node; default: one node per server, "
     "node-1, node-2, ..., without domains."},
    {"hub-hosts", 0, "HOST[,HOST...]", 0,
     "Names or addresses of the hub servers as nodes and leaves reach them, in the "
     "certificates too (default 127.0.0.1). One host for all: each server gets its own ports "
     "(the port options plus the server's number, counting from 0)."},
    {"leaf-hosts", 0, "HOST[,HOST...]", 0, "The same for the leaf servers."},
    {"local-domain", 0, "DOMAIN", MESH_CLI_MULTI,
     "A domain with residency local (create it with --residency local too): its edge leaf's "
     "link carries none of its subjects and its node may not have the hub source it."},
    {"bind", 0, "ADDR", 0, "Address the servers listen on (default 0.0.0.0)."},
    {"client-port", 0, "PORT", 0, "Client port (default 4222)."},
    {"cluster-port", 0, "PORT", 0, "Cluster route port of the hubs (default 6222)."},
    {"leafnode-port", 0, "PORT", 0, "Leafnode port of the hubs (default 7422)."},
    {"days", 0, "N", 0, "Validity of the certificates in days (default 825)."},
    {NULL, 0, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_mesh_cmds[] = {
    {
        .name = "mesh nodes",
        .usage = "[OPTIONS]",
        .summary = "List the nodes of the mesh and which are alive.",
        .text = "Lists every node in the mesh registry (GET /v1/mesh/nodes), as the node meshctl\n"
                "talks to reads it: name, site, whether it is alive (its last heartbeat is\n"
                "younger than its TTL and it did not stop), when it was last seen, its version,\n"
                "its API URL and the domains it hosts that you may see. Any authenticated\n"
                "principal may list the nodes.",
        .formats = "table|json|csv",
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl mesh nodes\n"
                    "meshctl mesh nodes --format csv",
        .exits = "0  listed\n"
                 "7  the node is not in a mesh, or not connected to it",
        .run = run_nodes,
    },
    {
        .name = "mesh domains",
        .usage = "[OPTIONS]",
        .summary = "List the domains of the mesh and where they are hosted.",
        .text = "Lists the domains hosted by the nodes of the mesh (GET /v1/mesh/domains), one\n"
                "line per domain and hosting node, with its replication mode (none, sync, async)\n"
                "and hosts, its owners and how many of its products you may see. Only the domains "
                "this node's access policy lets you see (owner,\n"
                "or a grant on the domain or one of its products; admins see all).",
        .formats = "table|json|csv",
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl mesh domains",
        .exits = "0  listed\n"
                 "7  the node is not in a mesh, or not connected to it",
        .run = run_domains,
    },
    {
        .name = "mesh products",
        .usage = "[OPTIONS]",
        .summary = "List the data products of the mesh.",
        .text = "Lists the data products of every node of the mesh (GET /v1/mesh/products): name,\n"
                "contract id and version, hosting node and whether it is alive. Only the\n"
                "products you may read or write under this node's access policy. Names and\n"
                "versions only: schemas and rows stay with the owning node.",
        .formats = "table|json|csv",
        .opts = products_opts,
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl mesh products\n"
                    "meshctl mesh products --domain factory-a --format json",
        .exits = "0  listed\n"
                 "7  the node is not in a mesh, or not connected to it",
        .run = run_products,
    },
    {
        .name = "mesh config",
        .usage = "--out DIR [OPTIONS]",
        .summary = "Write nats-server configs, certificates and credentials for a mesh.",
        .text = "Writes, without contacting anything, what a new mesh needs: a CA, the\n"
                "nats-server config and certificate of each hub server (a cluster with JetStream\n"
                "domain 'hub') and of each edge leaf server (its own JetStream domain, a leafnode\n"
                "link to the hubs), and for each meshd node its NATS user, password file,\n"
                "client certificate and a meshd.conf with its mesh_* options. Secure by default:\n"
                "TLS with client certificates on every link, explicit accounts only (MESH with\n"
                "JetStream, SYS), no no_auth_user (a client without credentials is refused),\n"
                "route and leaf users, one user per node allowed only its own registry key, its\n"
                "own domains' subjects and streams and its own inbox. The servers keep bcrypt\n"
                "hashes of the node passwords. See docs/mesh.md.",
        .opts = config_opts,
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl mesh config --out /etc/meshd/mesh --hub 3 --leaf 1 \\\n"
                    "    --hub-hosts hub1.example.com,hub2.example.com,hub3.example.com \\\n"
                    "    --leaf-hosts edge1.example.com \\\n"
                    "    --node plant-a=factory-a --node hq=reports --node edge1@leaf-1=home-42\n"
                    "meshctl mesh config --out ./mesh-test --bind 127.0.0.1",
        .exits = "0  written\n"
                 "1  a file could not be written\n"
                 "2  bad options\n"
                 "5  the directory holds a mesh already",
        .run = run_config,
    },
    {.name = NULL},
};
