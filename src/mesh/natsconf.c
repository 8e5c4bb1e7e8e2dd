/*
 * natsconf.c - writing the nats-server configs of a mesh (see natsconf.h).
 *
 * Security choices, each against a known way in:
 * - explicit accounts only (MESH with JetStream, SYS as the system account) and no
 *   no_auth_user: a client without credentials is refused. nats-server before 2.9.23 and
 *   2.10.4 let such a client into the implicit global account when the only users were in
 *   the system account (CVE-2023-47090); every config here has users in MESH, and
 *   tests/system/test_mesh.py proves the refusal against the generated configs.
 * - TLS everywhere (clients, routes, leafnodes) with certificates from the mesh CA, and
 *   client certificates required (verify: true). A certificate alone is not an identity:
 *   routes and leafnode links have their own users too, because every node holds a
 *   CA-signed certificate and must not be able to join as a route (which would bypass all
 *   permissions) or as a leaf.
 * - one user per node, deny by default: it may publish and subscribe only to its own
 *   registry key, the JetStream API of the registry bucket, its own domains' subjects and
 *   streams, and its own inbox prefix (_INBOX_<node>), so it cannot read other nodes'
 *   replies or write other domains. Every node may publish federated scan requests to any
 *   domain (meshd.dom.*.req.scan), signed; only hosting nodes may subscribe to them.
 * - passwords: random, stored by the servers as bcrypt hashes (nats-server accepts $2b$).
 */
#include "mesh/natsconf.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/util.h"
#include "mesh/entry.h"
#include "mesh/mesh.h"
#include "tls/tls.h"

#define PASSWORD_BYTES 24
#define HUB_DOMAIN     "hub"
#define NAME_CAP       64

typedef struct server {
    char name[NAME_CAP]; /* hub-1, leaf-1 */
    bool leaf;
    int index; /* among all servers: the port offset on a shared host */
    char host[256];
    int client_port, cluster_port, leafnode_port;
    char password[64]; /* a leaf's password on the hubs' leafnode listener */
} server_t;

typedef struct node {
    char name[NAME_CAP];
    int server; /* index into servers */
    const char *const *domains;
    size_t ndomains;
    char password[64];
} node_t;

typedef struct gen {
    const mesh_natsconf_opts_t *o;
    server_t servers[2 * MESH_NATSCONF_MAX_SERVERS];
    int nservers;
    node_t *nodes;
    size_t nnodes;
    char route_password[64], sys_password[64];
    char dir[3072];
    FILE *report;
    mesh_tls_ca_t *ca;
} gen_t;

/* ---- small helpers ---- */

static mesh_status_t random_password(char *out, size_t cap)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t r[PASSWORD_BYTES];
    if (cap < PASSWORD_BYTES + 1 || mesh_random(r, sizeof r) != MESH_OK)
        return MESH_INTERNAL;
    for (size_t i = 0; i < PASSWORD_BYTES; i++)
        out[i] = b64[r[i] & 63];
    out[PASSWORD_BYTES] = '\0';
    explicit_bzero(r, sizeof r);
    return MESH_OK;
}

static mesh_status_t bcrypt_hash(const char *password, int cost, char *out, size_t cap,
                                 mesh_err_t *err)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (crypt_gensalt_rn("$2b$", (unsigned long)cost, NULL, 0, salt, sizeof salt) == NULL)
        return mesh_err_set(err, MESH_INTERNAL, "bcrypt salt: %s", strerror(errno));
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (cd == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    const char *h = crypt_rn(password, salt, cd, (int)sizeof *cd);
    mesh_status_t st = MESH_OK;
    if (h == NULL || h[0] != '$' || strlen(h) >= cap)
        st = mesh_err_set(err, MESH_INTERNAL, "bcrypt failed");
    else
        snprintf(out, cap, "%s", h);
    explicit_bzero(cd, sizeof *cd);
    free(cd);
    return st;
}

static mesh_status_t write_text(gen_t *g, const char *rel, const char *text, size_t n,
                                unsigned mode, mesh_err_t *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", g->dir, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return mesh_err_set(err, MESH_IO, "cannot create %s: %s", path, strerror(errno));
    mesh_status_t st = MESH_OK;
    if (fchmod(fd, mode) != 0 || mesh_write_all(fd, text, n) != MESH_OK)
        st = mesh_err_set(err, MESH_IO, "cannot write %s: %s", path, strerror(errno));
    if (close(fd) != 0 && st == MESH_OK)
        st = mesh_err_set(err, MESH_IO, "cannot write %s: %s", path, strerror(errno));
    if (st == MESH_OK && g->report)
        fprintf(g->report, "%s  %s\n", mode == 0600 ? "secret" : "wrote ", path);
    return st;
}

static mesh_status_t mkdir_rel(gen_t *g, const char *rel, mesh_err_t *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", g->dir, rel);
    return mesh_mkdirs(path, 0700, err);
}

/* A host fit for a URL and a certificate: letters, digits, '.', '-', '_', ':' (IPv6). */
static bool host_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '-' || *c == '_' || *c == ':'))
            return false;
    return true;
}

/* host:port for a URL ([v6]:port). */
static void hostport(const char *host, int port, char *out, size_t cap)
{
    if (strchr(host, ':'))
        snprintf(out, cap, "[%s]:%d", host, port);
    else
        snprintf(out, cap, "%s:%d", host, port);
}

/* ---- permissions ---- */

static void q(mesh_buf_t *b, bool *first, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void q(mesh_buf_t *b, bool *first, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mesh_buf_adds(b, *first ? "\"" : ", \"");
    mesh_buf_vprintf(b, fmt, ap);
    mesh_buf_addc(b, '"');
    *first = false;
    va_end(ap);
}

#define KV_STREAM "KV_" MESH_REGISTRY_BUCKET

/* The JetStream API subjects of the registry bucket and of a node's domain streams, under
 * prefix api ("$JS.API" or "$JS.hub.API"). */
static void js_api(mesh_buf_t *b, bool *first, const char *api, const char *const *domains,
                   size_t ndomains)
{
    static const char *const kv_ops[] = {
        "STREAM.INFO." KV_STREAM, "STREAM.CREATE." KV_STREAM, "STREAM.MSG.GET." KV_STREAM,
        "DIRECT.GET." KV_STREAM ".>", "CONSUMER.CREATE." KV_STREAM,
        "CONSUMER.CREATE." KV_STREAM ".>", "CONSUMER.DELETE." KV_STREAM ".>",
        "CONSUMER.INFO." KV_STREAM ".>",
        /* libnats looks the stream up by subject before a watch (kvStore_Keys): the
         * account's stream names, nothing of their content */
        "STREAM.NAMES"};
    for (size_t i = 0; i < MESH_ARRAY_LEN(kv_ops); i++)
        q(b, first, "%s.%s", api, kv_ops[i]);
    for (size_t d = 0; d < ndomains; d++) {
        q(b, first, "%s.STREAM.*.MESHD_DOM_%s", api, domains[d]);
        /* a record by sequence, from the stream's leader (divergence checks, mesh/repl.c) */
        q(b, first, "%s.STREAM.MSG.GET.MESHD_DOM_%s", api, domains[d]);
        q(b, first, "%s.CONSUMER.*.MESHD_DOM_%s.>", api, domains[d]);
        q(b, first, "%s.CONSUMER.CREATE.MESHD_DOM_%s", api, domains[d]);
        /* durable pull consumers (part 2): their creation and fetches name the stream in
         * the fourth and fifth tokens */
        q(b, first, "%s.CONSUMER.DURABLE.CREATE.MESHD_DOM_%s.>", api, domains[d]);
        q(b, first, "%s.CONSUMER.MSG.NEXT.MESHD_DOM_%s.>", api, domains[d]);
        q(b, first, "%s.DIRECT.GET.MESHD_DOM_%s.>", api, domains[d]);
    }
}

static bool listed(const char *name, const char *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], name) == 0)
            return true;
    return false;
}

mesh_status_t mesh_natsconf_permissions(const char *node, const char *const *domains,
                                        size_t ndomains, int leaf, const char *const *local,
                                        size_t nlocal, char *out, size_t cap)
{
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 20); /* then checked against cap: no silent truncation */
    bool first = true;
    mesh_buf_adds(&b, "permissions: {\n        publish: { allow: [");
    q(&b, &first, "$KV.%s.%s", MESH_REGISTRY_BUCKET, node);
    q(&b, &first, "$JS.API.INFO");
    js_api(&b, &first, "$JS.API", domains, ndomains);
    if (leaf) {
        q(&b, &first, "$JS.%s.API.INFO", HUB_DOMAIN);
        /* libnats puts a KV key through another domain on this subject */
        q(&b, &first, "$JS.%s.API.$KV.%s.%s", HUB_DOMAIN, MESH_REGISTRY_BUCKET, node);
        js_api(&b, &first, "$JS." HUB_DOMAIN ".API", domains, 0);
        /* edge offline: the node has the hub source each non-local domain's stream into
         * MESHD_COPY_<domain> (created and looked at, nothing else) */
        for (size_t d = 0; d < ndomains; d++)
            if (!listed(domains[d], local, nlocal)) {
                q(&b, &first, "$JS.%s.API.STREAM.CREATE.MESHD_COPY_%s", HUB_DOMAIN, domains[d]);
                q(&b, &first, "$JS.%s.API.STREAM.INFO.MESHD_COPY_%s", HUB_DOMAIN, domains[d]);
            }
    }
    q(&b, &first, "$JS.FC.%s.>", KV_STREAM);
    /* requests to any domain (forwarded writes, federated scans): the hosting node decides */
    q(&b, &first, "meshd.dom.*.req.>");
    for (size_t d = 0; d < ndomains; d++) {
        q(&b, &first, "meshd.dom.%s.>", domains[d]);
        q(&b, &first, "$JS.ACK.MESHD_DOM_%s.>", domains[d]);
        q(&b, &first, "$JS.FC.MESHD_DOM_%s.>", domains[d]);
    }
    mesh_buf_adds(&b, "] }\n        subscribe: { allow: [");
    first = true;
    q(&b, &first, "_INBOX_%s.>", node);
    q(&b, &first, "meshd.node.%s.>", node);
    for (size_t d = 0; d < ndomains; d++)
        q(&b, &first, "meshd.dom.%s.>", domains[d]);
    mesh_buf_adds(&b, "] }\n        allow_responses: true\n      }");
    mesh_status_t st = b.data && b.len < cap ? MESH_OK : MESH_TOO_LARGE;
    if (st == MESH_OK)
        memcpy(out, b.data, b.len + 1);
    mesh_buf_free(&b);
    return st;
}

/* ---- the server configs ---- */

static void tls_block(mesh_buf_t *b, gen_t *g, const server_t *s, const char *indent)
{
    mesh_buf_printf(b,
                    "%stls {\n"
                    "%s  cert_file: \"%s/%s/cert.pem\"\n"
                    "%s  key_file: \"%s/%s/key.pem\"\n"
                    "%s  ca_file: \"%s/ca.pem\"\n"
                    "%s  verify: true\n"
                    "%s  timeout: 3\n"
                    "%s}\n",
                    indent, indent, g->dir, s->name, indent, g->dir, s->name, indent, g->dir,
                    indent, indent, indent);
}

static mesh_status_t accounts(mesh_buf_t *b, gen_t *g, int server, mesh_err_t *err)
{
    char hash[128], perms[16384];
    mesh_status_t st = bcrypt_hash(g->sys_password, g->o->bcrypt_cost, hash, sizeof hash, err);
    if (st != MESH_OK)
        return st;
    mesh_buf_printf(b,
                    "# Explicit accounts only; no_auth_user is deliberately not set: a client\n"
                    "# without credentials is refused (CVE-2023-47090 concerns the implicit\n"
                    "# account $G on nats-server < 2.9.23).\n"
                    "accounts {\n"
                    "  SYS {\n"
                    "    users: [ { user: sys, password: \"%s\" } ]\n"
                    "  }\n"
                    "  MESH {\n"
                    "    jetstream: enabled\n"
                    "    users: [\n",
                    hash);
    bool leaf = g->servers[server].leaf;
    for (size_t i = 0; i < g->nnodes; i++) {
        const node_t *n = &g->nodes[i];
        /* a hub knows the users of every node on a hub; a leaf only its own nodes */
        bool here = leaf ? n->server == server : !g->servers[n->server].leaf;
        if (!here)
            continue;
        if ((st = bcrypt_hash(n->password, g->o->bcrypt_cost, hash, sizeof hash, err)) != MESH_OK)
            return st;
        if (mesh_natsconf_permissions(n->name, n->domains, n->ndomains, leaf, g->o->local_domains,
                                      g->o->nlocal_domains, perms, sizeof perms) != MESH_OK)
            return mesh_err_set(err, MESH_LIMIT, "%s: too many domains", n->name);
        mesh_buf_printf(b, "      { user: \"%s\", password: \"%s\",\n        %s\n      }\n",
                        n->name, hash, perms);
    }
    mesh_buf_adds(b, "    ]\n  }\n}\nsystem_account: SYS\n");
    return MESH_OK;
}

static mesh_status_t hub_conf(gen_t *g, int i, mesh_err_t *err)
{
    const server_t *s = &g->servers[i];
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 22);
    char hash[128], hp[300];
    mesh_buf_printf(&b,
                    "# nats-server config of hub server %s, generated by `meshctl mesh config`.\n"
                    "# Holds secrets (route and leaf passwords): keep it mode 0600.\n"
                    "server_name: %s\n"
                    "host: \"%s\"\n"
                    "port: %d\n",
                    s->name, s->name, g->o->bind, s->client_port);
    tls_block(&b, g, s, "");
    mesh_buf_printf(&b,
                    "jetstream {\n"
                    "  store_dir: \"%s/%s/jetstream\"\n"
                    "  domain: %s\n"
                    "}\n",
                    g->dir, s->name, HUB_DOMAIN);
    mesh_status_t st = MESH_OK;
    if (g->o->hubs > 1 &&
        (st = bcrypt_hash(g->route_password, g->o->bcrypt_cost, hash, sizeof hash, err)) != MESH_OK)
        goto done;
    /* a hub of one has no cluster: JetStream then runs as a single server */
    if (g->o->hubs > 1) {
        mesh_buf_printf(&b,
                        "cluster {\n"
                        "  name: meshd-hub\n"
                        "  host: \"%s\"\n"
                        "  port: %d\n",
                        g->o->bind, s->cluster_port);
        tls_block(&b, g, s, "  ");
        mesh_buf_printf(&b,
                        "  # a route needs this user as well as a CA certificate: nodes hold CA\n"
                        "  # certificates too, and a route bypasses every permission\n"
                        "  authorization { user: route, password: \"%s\" }\n"
                        "  routes: [\n",
                        hash);
        for (int k = 0; k < g->o->hubs; k++) {
            if (k == i)
                continue;
            hostport(g->servers[k].host, g->servers[k].cluster_port, hp, sizeof hp);
            mesh_buf_printf(&b, "    \"nats-route://route:%s@%s\"\n", g->route_password, hp);
        }
        mesh_buf_adds(&b, "  ]\n}\n");
    }
    mesh_buf_printf(&b,
                    "leafnodes {\n"
                    "  host: \"%s\"\n"
                    "  port: %d\n",
                    g->o->bind, s->leafnode_port);
    tls_block(&b, g, s, "  ");
    mesh_buf_adds(&b, "  authorization {\n    users: [\n");
    for (int k = g->o->hubs; k < g->nservers; k++) {
        if ((st = bcrypt_hash(g->servers[k].password, g->o->bcrypt_cost, hash, sizeof hash, err)) !=
            MESH_OK)
            goto done;
        mesh_buf_printf(&b, "      { user: \"%s\", password: \"%s\", account: MESH }\n",
                        g->servers[k].name, hash);
    }
    if (g->o->leaves == 0)
        mesh_buf_adds(&b, "      # no leaf nodes: this listener accepts nobody\n");
    mesh_buf_adds(&b, "    ]\n  }\n}\n");
    if ((st = accounts(&b, g, i, err)) != MESH_OK)
        goto done;
    char rel[128];
    snprintf(rel, sizeof rel, "%s/nats.conf", s->name);
    st = b.data ? write_text(g, rel, b.data, b.len, 0600, err)
                : mesh_err_set(err, MESH_NOMEM, "out of memory");
done:
    if (b.data)
        explicit_bzero(b.data, b.len);
    mesh_buf_free(&b);
    return st;
}

/* The residency-local domains of the nodes on leaf i: none of their subjects crosses the
 * link to the hub, either way: their traffic, and the leaf's JetStream API about their
 * streams (so the hub can neither source, mirror nor read them). */
static void deny_local(mesh_buf_t *b, gen_t *g, int i)
{
    mesh_buf_t l;
    mesh_buf_init(&l, 1 << 20);
    bool first = true;
    const char *leaf = g->servers[i].name;
    for (size_t k = 0; k < g->nnodes; k++) {
        const node_t *n = &g->nodes[k];
        for (size_t d = 0; n->server == i && d < n->ndomains; d++) {
            const char *dom = n->domains[d];
            if (!listed(dom, g->o->local_domains, g->o->nlocal_domains))
                continue;
            q(&l, &first, "meshd.dom.%s.>", dom);
            q(&l, &first, "$JS.%s.API.*.*.MESHD_DOM_%s", leaf, dom);
            q(&l, &first, "$JS.%s.API.*.*.MESHD_DOM_%s.>", leaf, dom);
            q(&l, &first, "$JS.%s.API.*.*.*.MESHD_DOM_%s", leaf, dom);
            q(&l, &first, "$JS.%s.API.*.*.*.MESHD_DOM_%s.>", leaf, dom);
            q(&l, &first, "$JS.ACK.MESHD_DOM_%s.>", dom);
            q(&l, &first, "$JS.FC.MESHD_DOM_%s.>", dom);
        }
    }
    if (!first && l.data)
        mesh_buf_printf(b,
                        "      # residency local: these domains never leave the site\n"
                        "      deny_imports: [%s]\n"
                        "      deny_exports: [%s]\n",
                        l.data, l.data);
    mesh_buf_free(&l);
}

static mesh_status_t leaf_conf(gen_t *g, int i, mesh_err_t *err)
{
    const server_t *s = &g->servers[i];
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 22);
    char hp[300];
    mesh_buf_printf(&b,
                    "# nats-server config of edge leaf server %s, generated by `meshctl mesh\n"
                    "# config`. Holds its leafnode password: keep it mode 0600.\n"
                    "server_name: %s\n"
                    "host: \"%s\"\n"
                    "port: %d\n",
                    s->name, s->name, g->o->bind, s->client_port);
    tls_block(&b, g, s, "");
    mesh_buf_printf(&b,
                    "# its own JetStream domain: local streams keep working with the uplink "
                    "down\n"
                    "jetstream {\n"
                    "  store_dir: \"%s/%s/jetstream\"\n"
                    "  domain: %s\n"
                    "}\n"
                    "leafnodes {\n"
                    "  remotes: [\n"
                    "    {\n"
                    "      urls: [\n",
                    g->dir, s->name, s->name);
    for (int k = 0; k < g->o->hubs; k++) {
        hostport(g->servers[k].host, g->servers[k].leafnode_port, hp, sizeof hp);
        mesh_buf_printf(&b, "        \"tls://%s:%s@%s\"\n", s->name, s->password, hp);
    }
    mesh_buf_adds(&b, "      ]\n      account: MESH\n");
    deny_local(&b, g, i);
    tls_block(&b, g, s, "      ");
    mesh_buf_adds(&b, "    }\n  ]\n}\n");
    mesh_status_t st = accounts(&b, g, i, err);
    char rel[128];
    snprintf(rel, sizeof rel, "%s/nats.conf", s->name);
    if (st == MESH_OK)
        st = b.data ? write_text(g, rel, b.data, b.len, 0600, err)
                    : mesh_err_set(err, MESH_NOMEM, "out of memory");
    if (b.data)
        explicit_bzero(b.data, b.len);
    mesh_buf_free(&b);
    return st;
}

static mesh_status_t node_files(gen_t *g, const node_t *n, mesh_err_t *err)
{
    char rel[256], path[4096], hp[300];
    snprintf(rel, sizeof rel, "nodes/%s", n->name);
    mesh_status_t st = mkdir_rel(g, rel, err);
    if (st != MESH_OK)
        return st;
    snprintf(rel, sizeof rel, "nodes/%s/password", n->name);
    char line[80];
    int len = snprintf(line, sizeof line, "%s\n", n->password);
    if ((st = write_text(g, rel, line, (size_t)len, 0600, err)) != MESH_OK)
        return st;
    explicit_bzero(line, sizeof line);
    char cert[4096], key[4096];
    snprintf(cert, sizeof cert, "%s/nodes/%s/cert.pem", g->dir, n->name);
    snprintf(key, sizeof key, "%s/nodes/%s/key.pem", g->dir, n->name);
    const char *names[] = {n->name};
    if ((st = mesh_tls_ca_issue(g->ca, n->name, names, 1, g->o->cert_days, cert, key, err)) !=
        MESH_OK)
        return st;
    if (g->report)
        fprintf(g->report, "wrote   %s (and key.pem)\n", cert);
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 16);
    const server_t *home = &g->servers[n->server];
    mesh_buf_printf(&b,
                    "# meshd options of node %s (server %s), generated by `meshctl mesh "
                    "config`.\n"
                    "# Append to the node's meshd.conf, or start meshd --config this-file.\n"
                    "node_name = %s\n"
                    "mesh = ",
                    n->name, home->name, n->name);
    if (home->leaf) {
        hostport(home->host, home->client_port, hp, sizeof hp);
        mesh_buf_printf(&b, "tls://%s", hp);
    } else {
        /* its own hub first, then the others */
        for (int k = 0; k < g->o->hubs; k++) {
            int h = (n->server + k) % g->o->hubs;
            hostport(g->servers[h].host, g->servers[h].client_port, hp, sizeof hp);
            mesh_buf_printf(&b, "%stls://%s", k ? "," : "", hp);
        }
    }
    snprintf(path, sizeof path, "%s/nodes/%s", g->dir, n->name);
    mesh_buf_printf(&b,
                    "\nmesh_tls_ca = %s/ca.pem\n"
                    "mesh_tls_cert = %s/cert.pem\n"
                    "mesh_tls_key = %s/key.pem\n"
                    "mesh_user = %s\n"
                    "mesh_password_file = %s/password\n",
                    g->dir, path, path, n->name, path);
    if (home->leaf)
        mesh_buf_printf(&b, "mesh_js_domain = %s\n", HUB_DOMAIN);
    snprintf(rel, sizeof rel, "nodes/%s/meshd.conf", n->name);
    st = b.data ? write_text(g, rel, b.data, b.len, 0644, err)
                : mesh_err_set(err, MESH_NOMEM, "out of memory");
    mesh_buf_free(&b);
    return st;
}

/* ---- the plan ---- */

static mesh_status_t plan(gen_t *g, mesh_err_t *err)
{
    const mesh_natsconf_opts_t *o = g->o;
    if (o->hubs < 1 || o->hubs > MESH_NATSCONF_MAX_SERVERS || o->leaves < 0 ||
        o->leaves > MESH_NATSCONF_MAX_SERVERS)
        return mesh_err_set(err, MESH_INVALID, "--hub 1..%d and --leaf 0..%d",
                            MESH_NATSCONF_MAX_SERVERS, MESH_NATSCONF_MAX_SERVERS);
    if (o->hubs == 2)
        return mesh_err_set(
            err, MESH_INVALID,
            "a hub of 2 servers has no JetStream quorum when one fails: use 1 or 3");
    for (int i = 0; i < o->hubs + o->leaves; i++) {
        server_t *s = &g->servers[i];
        s->leaf = i >= o->hubs;
        s->index = i;
        int k = s->leaf ? i - o->hubs : i;
        snprintf(s->name, sizeof s->name, "%s-%d", s->leaf ? "leaf" : "hub", k + 1);
        const char *const *hosts = s->leaf ? o->leaf_hosts : o->hub_hosts;
        size_t nh = s->leaf ? o->nleaf_hosts : o->nhub_hosts;
        const char *host = nh == 0 ? "127.0.0.1" : nh == 1 ? hosts[0] : NULL;
        if (host == NULL && (size_t)k >= nh)
            return mesh_err_set(err, MESH_INVALID, "%zu %s hosts for %d servers", nh,
                                s->leaf ? "leaf" : "hub", s->leaf ? o->leaves : o->hubs);
        if (host == NULL)
            host = hosts[k];
        if (!host_ok(host))
            return mesh_err_set(err, MESH_INVALID, "'%s' is not a host name or address", host);
        snprintf(s->host, sizeof s->host, "%s", host);
        /* several servers on one host: each on its own ports */
        int off = nh <= 1 ? i : 0;
        s->client_port = o->client_port + off;
        s->cluster_port = o->cluster_port + off;
        s->leafnode_port = o->leafnode_port + off;
        if (s->client_port > 65535 || s->cluster_port > 65535 || s->leafnode_port > 65535)
            return mesh_err_set(err, MESH_INVALID, "ports out of range");
        if (s->leaf && random_password(s->password, sizeof s->password) != MESH_OK)
            return mesh_err_set(err, MESH_INTERNAL, "no randomness");
    }
    g->nservers = o->hubs + o->leaves;
    for (size_t d = 0; d < o->nlocal_domains; d++)
        if (!mesh_name_domain_ok(o->local_domains[d]))
            return mesh_err_set(err, MESH_INVALID, "--local-domain: '%s' is not a domain name",
                                o->local_domains[d]);
    g->nnodes = o->nodes ? o->nnodes : (size_t)g->nservers;
    if (g->nnodes == 0 || g->nnodes > MESH_NATSCONF_MAX_NODES)
        return mesh_err_set(err, MESH_INVALID, "1..%d nodes", MESH_NATSCONF_MAX_NODES);
    if ((g->nodes = calloc(g->nnodes, sizeof *g->nodes)) == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    for (size_t i = 0; i < g->nnodes; i++) {
        node_t *n = &g->nodes[i];
        if (o->nodes == NULL) {
            snprintf(n->name, sizeof n->name, "node-%zu", i + 1);
            n->server = (int)i;
        } else {
            const mesh_natsconf_node_t *src = &o->nodes[i];
            if (!mesh_entry_node_name_ok(src->name) || strcmp(src->name, "sys") == 0 ||
                strcmp(src->name, "route") == 0 || strncmp(src->name, "leaf-", 5) == 0)
                return mesh_err_set(err, MESH_INVALID,
                                    "node name '%s': use 1-63 of A-Z a-z 0-9 - _ (not sys, "
                                    "route or leaf-*)",
                                    src->name);
            snprintf(n->name, sizeof n->name, "%s", src->name);
            n->server = -1;
            if (src->server) {
                for (int k = 0; k < g->nservers; k++)
                    if (strcmp(g->servers[k].name, src->server) == 0)
                        n->server = k;
                if (n->server < 0)
                    return mesh_err_set(err, MESH_INVALID, "node %s: no server '%s'", src->name,
                                        src->server);
            } else {
                n->server = (int)(i % (size_t)o->hubs);
            }
            if (src->ndomains > MESH_NATSCONF_MAX_DOMAINS)
                return mesh_err_set(err, MESH_LIMIT, "node %s: more than %d domains", src->name,
                                    MESH_NATSCONF_MAX_DOMAINS);
            for (size_t d = 0; d < src->ndomains; d++)
                if (!mesh_name_domain_ok(src->domains[d]))
                    return mesh_err_set(err, MESH_INVALID, "node %s: '%s' is not a domain name",
                                        src->name, src->domains[d]);
            n->domains = src->domains;
            n->ndomains = src->ndomains;
            for (size_t k = 0; k < i; k++)
                if (strcmp(g->nodes[k].name, n->name) == 0)
                    return mesh_err_set(err, MESH_INVALID, "node %s given twice", n->name);
        }
        if (random_password(n->password, sizeof n->password) != MESH_OK)
            return mesh_err_set(err, MESH_INTERNAL, "no randomness");
    }
    if (random_password(g->route_password, sizeof g->route_password) != MESH_OK ||
        random_password(g->sys_password, sizeof g->sys_password) != MESH_OK)
        return mesh_err_set(err, MESH_INTERNAL, "no randomness");
    return MESH_OK;
}

mesh_status_t mesh_natsconf_write(const mesh_natsconf_opts_t *o, FILE *report, mesh_err_t *err)
{
    gen_t *g = calloc(1, sizeof *g);
    if (g == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    g->o = o;
    g->report = report;
    mesh_status_t st = MESH_OK;
    if (o->out_dir == NULL || o->out_dir[0] != '/' || strlen(o->out_dir) >= sizeof g->dir ||
        strpbrk(o->out_dir, "\"\\\n\r$ ") != NULL)
        st = mesh_err_set(err, MESH_INVALID,
                          "the output directory must be an absolute path without quotes, "
                          "backslashes, '$' or spaces");
    else if (!host_ok(o->bind))
        st = mesh_err_set(err, MESH_INVALID, "'%s' is not an address to listen on", o->bind);
    if (st == MESH_OK) {
        snprintf(g->dir, sizeof g->dir, "%s", o->out_dir);
        st = plan(g, err);
    }
    char path[4096], kpath[4096];
    if (st == MESH_OK && (st = mesh_mkdirs(g->dir, 0700, err)) == MESH_OK) {
        snprintf(path, sizeof path, "%s/ca.pem", g->dir);
        if (access(path, F_OK) == 0)
            st =
                mesh_err_set(err, MESH_CONFLICT,
                             "%s exists: this directory holds a mesh already (pick another)", path);
    }
    if (st == MESH_OK) {
        snprintf(kpath, sizeof kpath, "%s/ca-key.pem", g->dir);
        st = mesh_tls_ca_create("meshd mesh CA", o->cert_days, path, kpath, &g->ca, err);
        if (st == MESH_OK && report)
            fprintf(report, "wrote   %s (the mesh CA; ca-key.pem: keep it offline)\n", path);
    }
    for (int i = 0; i < g->nservers && st == MESH_OK; i++) {
        server_t *s = &g->servers[i];
        if ((st = mkdir_rel(g, s->name, err)) != MESH_OK)
            break;
        snprintf(path, sizeof path, "%s/%s/cert.pem", g->dir, s->name);
        snprintf(kpath, sizeof kpath, "%s/%s/key.pem", g->dir, s->name);
        const char *names[] = {s->host, s->name, "localhost"};
        if ((st = mesh_tls_ca_issue(g->ca, s->name, names, MESH_ARRAY_LEN(names), o->cert_days,
                                    path, kpath, err)) != MESH_OK)
            break;
        st = s->leaf ? leaf_conf(g, i, err) : hub_conf(g, i, err);
    }
    if (st == MESH_OK)
        st = mkdir_rel(g, "nodes", err);
    for (size_t i = 0; i < g->nnodes && st == MESH_OK; i++)
        st = node_files(g, &g->nodes[i], err);
    if (st == MESH_OK) {
        char line[80];
        int len = snprintf(line, sizeof line, "%s\n", g->sys_password);
        st = write_text(g, "sys.password", line, (size_t)len, 0600, err);
        explicit_bzero(line, sizeof line);
    }
    mesh_tls_ca_destroy(g->ca);
    free(g->nodes);
    explicit_bzero(g, sizeof *g);
    free(g);
    return st;
}
