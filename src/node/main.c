/*
 * main.c - the meshd program: options, then a node until SIGTERM.
 */
#include <event2/thread.h>
#include <signal.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "http/server.h"
#include "node/node.h"

int main(int argc, char **argv);

static void usage(FILE *out)
{
    fprintf(out, "Usage: meshd [OPTIONS]\n"
                 "\n"
                 "meshd runs one node of a data mesh for edge and IoT data: it hosts domains,\n"
                 "their data products (defined by ODCS data contracts), stores and validates\n"
                 "their rows, and answers SQL over them, through an HTTP API.\n"
                 "\n"
                 "On first start it creates DATA_DIR with its catalog and prints an admin API\n"
                 "token once (or installs the one given by --admin-token / MESHD_ADMIN_TOKEN /\n"
                 "--admin-token-file). Every API call needs `Authorization: Bearer <token>`.\n"
                 "The API speaks HTTPS (TLS 1.2/1.3): without --tls-cert, the first start\n"
                 "generates a self-signed certificate in DATA_DIR/tls/ and every start logs its\n"
                 "fingerprint, for `meshctl --pin` (docs/security.md). --tls off: plain HTTP.\n"
                 "Stop it with SIGTERM (or Ctrl-C); writes in flight finish first. SIGHUP\n"
                 "reloads the TLS certificate, key and client CAs.\n"
                 "\n"
                 "Options (each also a MESHD_* environment variable and a config file line;\n"
                 "precedence: flag > environment > config file > default):\n");
    mesh_opts_help(&mesh_node_opts_spec, out);
    fprintf(out, "  --help\n      Show this help.\n"
                 "  --version\n      Show the version.\n"
                 "  --check-config\n      Load and check the options, print them (secrets hidden), "
                 "and exit.\n"
                 "  --verify\n      Check a stopped node's data directory without changing it: "
                 "the KEK\n      opens every key file, every page and log record authenticates, "
                 "SQLite's\n      integrity check passes. Exit 0 when all is well, 2 when it "
                 "cannot be\n      opened (wrong key, in use), 3 when damage was found, or a\n"
                 "      catalog older than the audit log records.\n"
                 "  --accept-catalog-rollback\n      Start even though catalog.db is older than "
                 "the audit log records\n      (committed changes lost: a revoked token may work "
                 "again). Audited;\n      check principals, tokens and policies afterwards "
                 "(docs/security.md).\n"
                 "\n"
                 "Endpoints ({} is a path segment; docs/api.md):\n");
    mesh_http_endpoint_paths(out, 79);
    fprintf(out, "/write is InfluxDB v1's, /api/v2/write v2's.\n"
                 "Every authentication, authorisation decision, query, write and admin change\n"
                 "goes goes to the audit log in DATA_DIR/audit (meshctl audit\n"
                 "verify|search; docs/security.md). Data at rest is encrypted (AES-256-GCM)\n"
                 "unless --encryption off: see the kek_* options. With --mqtt-url meshd\n"
                 "subscribes to an MQTT broker and writes the topics its mappings name (QoS 1,\n"
                 "acknowledged once durable; docs/mqtt.md).\n"
                 "With --mesh nats://HOST:4222[,...] the node joins a mesh over NATS JetStream:\n"
                 "it registers itself (name, site, API URL, domains and products) and shows\n"
                 "the other nodes (meshctl mesh nodes); `meshctl mesh config` writes secure\n"
                 "nats-server configs and each node's mesh_* options (docs/mesh.md).\n"
                 "Documentation: docs/user-guide.md, docs/operations.md, docs/security.md, man\n"
                 "meshd. Exit status: 0 clean stop, 1 bad options, 2 start-up failure (a wrong\n"
                 "key-encryption key included).\n");
}

/* Finds --config FILE / --config=FILE before the other flags are applied. */
static const char *find_config(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(argv[i], "--config=", 9) == 0)
            return argv[i] + 9;
    }
    return getenv("MESHD_CONFIG");
}

static int apply_flags(mesh_node_opts_t *o, int argc, char **argv, bool *check_only, bool *verify,
                       bool *accept_rollback)
{
    mesh_err_t err;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--accept-catalog-rollback") == 0) {
            *accept_rollback = true;
            continue;
        }
        if (strcmp(a, "--check-config") == 0) {
            *check_only = true;
            continue;
        }
        if (strcmp(a, "--verify") == 0) {
            *verify = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "meshd: unexpected argument '%s' (see meshd --help)\n", a);
            return 1;
        }
        char name[128];
        const char *value;
        const char *eq = strchr(a + 2, '=');
        if (eq) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - a - 2), a + 2);
            value = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a + 2);
            const mesh_opt_t *opt = mesh_opts_find(&mesh_node_opts_spec, name);
            if (opt && opt->type == MESH_OPT_BOOL && (i + 1 >= argc || argv[i + 1][0] == '-')) {
                value = "true";
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                fprintf(stderr, "meshd: option --%s needs a value\n", name);
                return 1;
            }
        }
        char origin[160];
        snprintf(origin, sizeof origin, "flag --%s", name);
        if (mesh_opts_set(&mesh_node_opts_spec, o, name, value, origin, &err) != MESH_OK) {
            fprintf(stderr, "meshd: %s (see meshd --help)\n", err.msg);
            return 1;
        }
    }
    return 0;
}

static void print_config(const mesh_node_opts_t *o)
{
    const mesh_opts_spec_t *spec = &mesh_node_opts_spec;
    for (size_t i = 0; i < spec->nopts; i++) {
        const mesh_opt_t *d = &spec->opts[i];
        const void *f = (const char *)o + d->offset;
        printf("%s = ", d->name);
        if (d->flags & MESH_OPT_SECRET) {
            printf("%s\n", *(char *const *)f ? "***" : "");
            continue;
        }
        switch (d->type) {
        case MESH_OPT_LIST: {
            const char *v = *(char *const *)f ? *(char *const *)f : "";
            for (const char *nl; (nl = strchr(v, '\n')) != NULL; v = nl + 1)
                printf("%.*s\n%s = ", (int)(nl - v), v, d->name);
            printf("%s\n", v);
            break;
        }
        case MESH_OPT_STRING:
        case MESH_OPT_ENUM:
            printf("%s\n", *(char *const *)f ? *(char *const *)f : "");
            break;
        case MESH_OPT_BOOL:
            printf("%s\n", *(const bool *)f ? "true" : "false");
            break;
        default:
            printf("%lld\n", (long long)*(const int64_t *)f);
        }
    }
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("meshd %s\n", MESH_VERSION);
            return 0;
        }
        /* used to generate docs/configuration.md and examples/meshd.conf */
        if (strcmp(argv[i], "--print-config-reference") == 0) {
            mesh_opts_markdown(&mesh_node_opts_spec, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--print-config-example") == 0) {
            fputs("# meshd configuration file: `name = value` lines; '#' starts a comment.\n"
                  "# Every option is shown at its default, commented out. Each one can also\n"
                  "# be given as a flag or a MESHD_* environment variable (flag > environment >\n"
                  "# this file > default). Start with: meshd --config /etc/meshd/meshd.conf\n",
                  stdout);
            mesh_opts_example(&mesh_node_opts_spec, stdout);
            return 0;
        }
    }
    mesh_node_t node;
    memset(&node, 0, sizeof node);
    mesh_err_t err;
    mesh_err_clear(&err);
    const mesh_opts_spec_t *spec = &mesh_node_opts_spec;
    if (mesh_opts_defaults(spec, &node.opts, &err) != MESH_OK) {
        fprintf(stderr, "meshd: %s\n", err.msg);
        mesh_opts_free(spec, &node.opts);
        return 1;
    }
    const char *cfg = find_config(argc, argv);
    bool check_only = false, verify = false;
    if ((cfg && mesh_opts_load_file(spec, &node.opts, cfg, &err) != MESH_OK) ||
        mesh_opts_load_env(spec, &node.opts, &err) != MESH_OK) {
        fprintf(stderr, "meshd: %s\n", err.msg);
        mesh_opts_free(spec, &node.opts);
        return 1;
    }
    if (apply_flags(&node.opts, argc, argv, &check_only, &verify, &node.accept_catalog_rollback) !=
        0) {
        mesh_opts_free(spec, &node.opts);
        return 1;
    }
    mesh_log_min_level = mesh_log_level_parse(node.opts.log_level);
    mesh_log_set_json(strcmp(node.opts.log_format, "json") == 0);
    char why[160];
    if (mesh_log_set_levels(mesh_log_min_level, node.opts.log_levels, why, sizeof why) != 0) {
        fprintf(stderr, "meshd: log_levels: %s\n", why);
        mesh_opts_free(spec, &node.opts);
        return 1;
    }
    if (node.opts.log_file && *node.opts.log_file && !check_only &&
        mesh_log_open(node.opts.log_file) != 0) {
        fprintf(stderr, "meshd: log_file %s: %s\n", node.opts.log_file, strerror(errno));
        mesh_opts_free(spec, &node.opts);
        return 1;
    }
    if (check_only) {
        print_config(&node.opts);
        mesh_opts_free(spec, &node.opts);
        return 0;
    }
    if (verify) {
        int rc = mesh_node_verify(&node, stdout);
        mesh_opts_free(spec, &node.opts);
        return rc;
    }
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    if (mesh_node_start(&node, &err) != MESH_OK) {
        LOG_ERROR("node", "cannot start: %s", err.msg);
        mesh_node_stop(&node);
        mesh_opts_free(spec, &node.opts);
        return 2;
    }
    int rc = mesh_node_run(&node);
    mesh_opts_free(spec, &node.opts);
    return rc;
}
