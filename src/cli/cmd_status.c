/*
 * cmd_status.c - `meshctl status`: the node's status (GET /v1/status) as key/value lines.
 */
#include <string.h>

#include "cli/cli.h"

static void uptime(double secs, char *out, size_t cap)
{
    long s = (long)secs;
    if (s >= 86400)
        snprintf(out, cap, "%ldd %ldh", s / 86400, s / 3600 % 24);
    else if (s >= 3600)
        snprintf(out, cap, "%ldh %ldm", s / 3600, s / 60 % 60);
    else if (s >= 60)
        snprintf(out, cap, "%ldm %lds", s / 60, s % 60);
    else
        snprintf(out, cap, "%lds", s);
}

static int run_status(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    (void)a;
    mesh_client_req_t req = {.method = "GET", .path = "/v1/status"};
    if (strcmp(mesh_cli_format(cli, false), "json") == 0)
        return mesh_cli_raw(cli, &req);
    json_t *j;
    int rc = mesh_cli_call(cli, &req, &j);
    if (rc != 0)
        return rc;
    mesh_table_t *t = mesh_table_create(2);
    if (t == NULL) {
        json_decref(j);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    char tmp[64], up[32], when[MESH_CLI_TIME_MAX];
    uptime(json_number_value(json_object_get(j, "uptime_seconds")), up, sizeof up);
    static const char *const plain[][2] = {
        {"node", "node"},       {"site", "site"},     {"node id", "node_id"},
        {"version", "version"}, {"listen", "listen"},
    };
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        mesh_table_add(t, plain[i][0]);
        mesh_table_add(t, mesh_cli_jstr(j, plain[i][1]));
    }
    mesh_table_add(t, "url");
    mesh_table_add(t, mesh_client_url(cli->client));
    mesh_table_add(t, "principal");
    mesh_table_add(t, mesh_cli_jstr(j, "principal"));
    const json_t *tls = json_object_get(j, "tls");
    mesh_table_add(t, "tls");
    if (json_is_true(json_object_get(tls, "enabled"))) {
        const char *fp = mesh_cli_jstr(tls, "fingerprint"),
                   *kind = mesh_cli_jstr(tls, "certificate");
        mesh_table_addf(t, "on, %s certificate %s, expires %s", kind ? kind : "?", fp ? fp : "?",
                        mesh_cli_short_time(mesh_cli_jstr(tls, "expires"), when));
        const char *client = mesh_cli_jstr(tls, "client_certificate");
        if (client) {
            mesh_table_add(t, "client cert");
            mesh_table_add(t, client);
        }
    } else {
        mesh_table_add(t, tls ? "off (plain HTTP)" : "-");
    }
    mesh_table_add(t, "started");
    mesh_table_addf(t, "%s (up %s)", mesh_cli_short_time(mesh_cli_jstr(j, "started"), when), up);
    mesh_table_add(t, "ready");
    mesh_table_add(t, json_is_true(json_object_get(j, "ready")) ? "yes" : "no");
    mesh_table_add(t, "domains");
    mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(j, "domains"));
    mesh_table_add(t, "products");
    mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(j, "products"));
    mesh_table_add(t, "rows");
    mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(j, "rows"));
    mesh_table_add(t, "storage");
    mesh_table_add(t, mesh_cli_bytes(mesh_cli_jint(j, "storage_bytes"), tmp, sizeof tmp));
    const json_t *mesh = json_object_get(j, "mesh");
    mesh_table_add(t, "mesh");
    if (json_is_true(json_object_get(mesh, "enabled"))) {
        const char *server = mesh_cli_jstr(mesh, "server");
        const char *old = mesh_cli_jstr(mesh, "warning") ? " (nats-server < 2.10)" : "";
        const char *reg =
            json_is_true(json_object_get(mesh, "registered")) ? "registered" : "not registered";
        mesh_table_addf(t, "%s%s%s%s, %s", mesh_cli_jstr(mesh, "state"), server ? " to " : "",
                        server ? server : "", old, reg);
    } else {
        mesh_table_add(t, mesh ? "off (the node runs alone)" : "-");
    }
    mesh_table_print_kv(t, stdout);
    mesh_table_destroy(t);
    json_decref(j);
    return 0;
}

const mesh_cli_cmd_t mesh_cli_status_cmds[] = {
    {
        .name = "status",
        .usage = "[OPTIONS]",
        .summary = "Show the node's status.",
        .text = "Shows the status of the node meshctl talks to (GET /v1/status): its name, site,\n"
                "version, address, uptime, readiness, how many domains, products and rows it\n"
                "holds, its storage, the principal the token belongs to, its TLS certificate\n"
                "(fingerprint and expiry), its link to the mesh (state, server, whether its\n"
                "registry entry is current), and the URL that answered (with a list of URLs,\n"
                "the first one that could be reached).",
        .formats = "table|json",
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl status\n"
                    "meshctl --url https://10.0.0.5:7070,https://10.0.0.6:7070 status\n"
                    "meshctl status --format json",
        .exits = "0  the node answered\n"
                 "4  the token is missing or wrong, or TLS verification failed\n"
                 "7  no URL could be reached",
        .run = run_status,
    },
    {.name = NULL},
};
