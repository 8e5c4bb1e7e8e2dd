/*
 * cmd_mqtt.c - `meshctl mqtt mapping create|list|delete` and `meshctl mqtt status` over
 * /v1/mqtt/mappings and /v1/mqtt/status.
 */
#include <string.h>

#include "cli/cli.h"
#include "core/util.h"

static int run_create(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    char domain[MESH_NAME_MAX + 1], product[MESH_NAME_MAX + 1];
    int rc = mesh_cli_product_name(cli, mesh_cli_pos(a, 2), domain, product);
    if (rc != 0)
        return rc;
    json_t *body = json_object();
    json_object_set_new(body, "name", json_string(mesh_cli_pos(a, 0)));
    json_object_set_new(body, "topic", json_string(mesh_cli_pos(a, 1)));
    json_object_set_new(body, "domain", json_string(domain));
    json_object_set_new(body, "product", json_string(product));
    const char *fmt = mesh_cli_arg(a, "payload");
    if (fmt)
        json_object_set_new(body, "format", json_string(fmt));
    const char *who = mesh_cli_arg(a, "principal");
    if (who)
        json_object_set_new(body, "principal", json_string(who));
    int64_t qos;
    if ((rc = mesh_cli_arg_int(cli, a, "qos", 1, 0, 1, &qos)) != 0) {
        json_decref(body);
        return rc;
    }
    json_object_set_new(body, "qos", json_integer(qos));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL)
        return mesh_cli_usage(cli, "the name, topic and principal must be UTF-8 text");
    mesh_client_req_t req = {.method = "POST",
                             .path = "/v1/mqtt/mappings",
                             .content_type = "application/json",
                             .body = text,
                             .body_len = strlen(text)};
    json_t *j = NULL;
    rc = mesh_cli_call(cli, &req, &j);
    free(text);
    if (rc == 0 && !cli->quiet)
        printf("created mapping %s: %s -> %s.%s (subscribes to %s)\n", mesh_cli_pos(a, 0),
               mesh_cli_pos(a, 1), domain, product,
               mesh_cli_jstr(j, "filter") ? mesh_cli_jstr(j, "filter") : "?");
    json_decref(j);
    return rc;
}

static int64_t jres(const json_t *m, const char *key)
{
    return mesh_cli_jint(json_object_get(m, "messages"), key);
}

/* The mappings of a /v1/mqtt/mappings or /v1/mqtt/status document as a table. */
static int mappings_table(mesh_cli_t *cli, const json_t *list, const char *fmt)
{
    bool csv = strcmp(fmt, "csv") == 0;
    mesh_table_t *t = mesh_table_create(10);
    if (t == NULL)
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    const char *cols[][2] = {
        {"NAME", "name"},     {"TOPIC", "topic"},   {"PRODUCT", "product"},
        {"FORMAT", "format"}, {"QOS", "qos"},       {"PRINCIPAL", "principal"},
        {"SOURCE", "source"}, {"STORED", "stored"}, {"QUARANTINED", "quarantined"},
        {"OTHER", "other"}};
    for (int c = 0; c < 10; c++)
        mesh_table_column(t, c, cols[c][csv ? 1 : 0],
                          c >= 7 || c == 4 ? MESH_ALIGN_RIGHT : MESH_ALIGN_LEFT, c == 1 ? 50 : 0);
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m)
    {
        mesh_table_add(t, mesh_cli_jstr(m, "name"));
        mesh_table_add(t, mesh_cli_jstr(m, "topic"));
        mesh_table_addf(t, "%s.%s", mesh_cli_jstr(m, "domain"), mesh_cli_jstr(m, "product"));
        mesh_table_add(t, mesh_cli_jstr(m, "format"));
        mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(m, "qos"));
        mesh_table_add(t, mesh_cli_jstr(m, "principal"));
        mesh_table_add(t, mesh_cli_jstr(m, "source"));
        mesh_table_addf(t, "%lld", (long long)jres(m, "stored"));
        mesh_table_addf(t, "%lld", (long long)jres(m, "quarantined"));
        mesh_table_addf(t, "%lld",
                        (long long)(jres(m, "denied") + jres(m, "dropped") + jres(m, "failed")));
    }
    mesh_cli_emit_table(cli, t, fmt);
    mesh_table_destroy(t);
    return 0;
}

static int run_list(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    (void)a;
    const char *fmt = mesh_cli_format(cli, false);
    mesh_client_req_t req = {.method = "GET", .path = "/v1/mqtt/mappings"};
    json_t *j;
    int rc = mesh_cli_get(cli, &req, &j);
    if (rc != 0 || j == NULL)
        return rc;
    rc = mappings_table(cli, json_object_get(j, "mappings"), fmt);
    json_decref(j);
    return rc;
}

static int run_delete(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *name = mesh_cli_pos(a, 0);
    mesh_buf_t path;
    mesh_buf_init(&path, 4096);
    if (mesh_buf_adds(&path, "/v1/mqtt/mappings/") != MESH_OK ||
        mesh_client_escape(&path, name) != MESH_OK) {
        mesh_buf_free(&path);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    mesh_client_req_t req = {.method = "DELETE", .path = path.data};
    int rc = mesh_cli_call(cli, &req, NULL);
    mesh_buf_free(&path);
    if (rc == 0 && !cli->quiet)
        printf("deleted mapping %s\n", name);
    return rc;
}

static void kv(mesh_table_t *t, const char *k, const char *v)
{
    mesh_table_add(t, k);
    mesh_table_add(t, v ? v : "-");
}

static int run_status(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    (void)a;
    mesh_client_req_t req = {.method = "GET", .path = "/v1/mqtt/status"};
    json_t *j;
    int rc = mesh_cli_get(cli, &req, &j);
    if (rc != 0 || j == NULL)
        return rc;
    mesh_table_t *t = mesh_table_create(2);
    if (t == NULL) {
        json_decref(j);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    char tmp[MESH_CLI_TIME_MAX], err[512];
    bool on = json_is_true(json_object_get(j, "enabled"));
    kv(t, "broker", on ? mesh_cli_jstr(j, "url") : "none (mqtt_url is not set)");
    if (on) {
        kv(t, "client id", mesh_cli_jstr(j, "client_id"));
        kv(t, "protocol", mesh_cli_jstr(j, "protocol"));
        kv(t, "user", mesh_cli_jstr(j, "username"));
    }
    kv(t, "state", mesh_cli_jstr(j, "state"));
    kv(t, "since", mesh_cli_short_time(mesh_cli_jstr(j, "since"), tmp));
    snprintf(err, sizeof err, "%s",
             mesh_cli_jstr(j, "last_error") ? mesh_cli_jstr(j, "last_error") : "-");
    mesh_cli_clean(err);
    kv(t, "last error", err);
    mesh_table_add(t, "connects");
    mesh_table_addf(t, "%lld (%lld failed attempts, %lld lost)",
                    (long long)mesh_cli_jint(j, "connects"),
                    (long long)mesh_cli_jint(j, "connect_failures"),
                    (long long)mesh_cli_jint(j, "disconnects"));
    mesh_table_add(t, "unmatched messages");
    mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(j, "unmatched_messages"));
    mesh_cli_emit_table(cli, t, "table");
    mesh_table_destroy(t);
    json_t *maps = json_object_get(j, "mappings");
    if (json_array_size(maps) > 0) {
        printf("\n");
        rc = mappings_table(cli, maps, "table");
    }
    json_decref(j);
    return rc;
}

static const mesh_cli_opt_t create_opts[] = {
    {"payload", 0, "json|lineprotocol", 0,
     "How payloads read (default json: an object or an array of objects, as for `meshctl "
     "ingest`; lineprotocol: InfluxDB line protocol whose measurement is the product)."},
    {"qos", 0, "0|1", 0,
     "QoS of the subscription (default 1: a message is acknowledged only once durable)."},
    {"principal", 0, "NAME", 0,
     "Whom the messages write as (default mqtt, a service principal created without rights: "
     "grant it write on the product). Access policy applies to every message."},
    {NULL, 0, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_mqtt_cmds[] = {
    {
        .name = "mqtt mapping create",
        .usage = "NAME TOPIC DOMAIN.PRODUCT [OPTIONS]",
        .summary = "Map MQTT topics to a product.",
        .text = "Creates a mapping: meshd subscribes to TOPIC at its MQTT broker (mqtt_url) and\n"
                "writes every message on it to DOMAIN.PRODUCT. TOPIC is an MQTT topic filter\n"
                "whose levels may be named: {name} matches one level and gives its value to\n"
                "the column of that name (factory/{site}/{device}/telemetry). + and a final #\n"
                "work as in MQTT. A payload that cannot be stored goes to the product's\n"
                "quarantine. Mappings may not overlap. Needs admin on the domain. See\n"
                "docs/mqtt.md.",
        .opts = create_opts,
        .min_args = 3,
        .max_args = 3,
        .examples = "meshctl mqtt mapping create press 'factory/{site}/{device}/telemetry' \\\n"
                    "    factory-a.telemetry --principal press-gateway\n"
                    "meshctl mqtt mapping create env 'home/{room}/env' home-42.climate \\\n"
                    "    --payload lineprotocol",
        .exits = "0  created\n"
                 "2  the name, topic or options are not valid, or a {name} is not a column\n"
                 "3  no such product or principal\n"
                 "4  the token may not administer the domain\n"
                 "5  a mapping of that name exists, or the topic overlaps another mapping",
        .run = run_create,
    },
    {
        .name = "mqtt mapping list",
        .usage = "[OPTIONS]",
        .summary = "List the MQTT mappings.",
        .text = "Lists the mappings into the domains the token administers: topic, product,\n"
                "payload format, QoS, principal, where it is defined (catalog or config file)\n"
                "and its messages since start (stored, quarantined, other: denied, dropped or\n"
                "failed).",
        .formats = "table|json|csv",
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl mqtt mapping list\nmeshctl mqtt mapping list --format json",
        .exits = "0  listed (maybe none)",
        .run = run_list,
    },
    {
        .name = "mqtt mapping delete",
        .usage = "NAME",
        .summary = "Delete an MQTT mapping.",
        .text = "Deletes a mapping and unsubscribes from its topic. Rows already written stay.\n"
                "A mapping from the config file is removed there, not here.",
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl mqtt mapping delete press",
        .exits = "0  deleted\n"
                 "3  no such mapping\n"
                 "4  the token may not administer the domain\n"
                 "5  the mapping is defined in the config file",
        .run = run_delete,
    },
    {
        .name = "mqtt status",
        .usage = "[OPTIONS]",
        .summary = "Show the MQTT connection and mappings.",
        .text = "Shows the broker connection: URL, client id, state (connected, connecting,\n"
                "waiting to reconnect, off), the last error (a refused password, a TLS failure,\n"
                "a lost connection), counters, then every mapping with its counters. Needs\n"
                "admin on the node.",
        .formats = "table|json",
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl mqtt status\nmeshctl mqtt status --format json | jq .last_error",
        .exits = "0  shown\n"
                 "4  the token may not administer the node",
        .run = run_status,
    },
    {.name = NULL},
};
