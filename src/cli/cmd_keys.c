/*
 * cmd_keys.c - `meshctl keys status|rotate`: encryption at rest (GET /v1/keys, POST
 * /v1/keys/rotate).
 *
 * A new KEK is read here, on the operator's side (a file, an environment variable, a
 * command such as a KMS client, or a passphrase file), checked, and sent hex-encoded in the
 * request body; meshd never runs commands or reads paths named in a request. Every buffer
 * that held it is overwritten afterwards.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/util.h"
#include "crypt/keys.h"

static int run_status(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    (void)a;
    mesh_client_req_t req = {.method = "GET", .path = "/v1/keys"};
    if (strcmp(mesh_cli_format(cli, false), "json") == 0)
        return mesh_cli_raw(cli, &req);
    json_t *j;
    int rc = mesh_cli_call(cli, &req, &j);
    if (rc != 0)
        return rc;
    mesh_table_t *kv = mesh_table_create(2);
    if (kv == NULL) {
        json_decref(j);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    bool on = json_is_true(json_object_get(j, "encryption"));
    mesh_table_add(kv, "encryption");
    mesh_table_add(kv, on ? "on (AES-256-GCM)" : "OFF: data is stored in clear");
    if (on) {
        mesh_table_add(kv, "KEK id");
        mesh_table_add(kv, mesh_cli_jstr(j, "kek_id"));
        mesh_table_add(kv, "KEK from");
        mesh_table_add(kv, mesh_cli_jstr(j, "kek_source"));
        mesh_table_add(kv, "KEK beside the data");
        mesh_table_add(kv, json_is_true(json_object_get(j, "kek_in_data_dir"))
                               ? "YES: move it off the data disk (meshctl keys rotate)"
                               : "no");
        mesh_table_add(kv, "authentication failures");
        mesh_table_addf(kv, "%lld", (long long)mesh_cli_jint(j, "auth_failures"));
    }
    mesh_table_print_kv(kv, stdout);
    mesh_table_destroy(kv);
    json_t *doms = json_object_get(j, "domains");
    if (on && json_array_size(doms)) {
        mesh_table_t *t = mesh_table_create(2);
        if (t) {
            mesh_table_add(t, "DOMAIN");
            mesh_table_add(t, "DATA KEY GENERATION");
            size_t i;
            json_t *d;
            json_array_foreach(doms, i, d)
            {
                mesh_table_add(t, mesh_cli_jstr(d, "name"));
                mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(d, "data_key_generation"));
            }
            printf("\n");
            mesh_cli_emit_table(cli, t, "table");
            mesh_table_destroy(t);
        }
    }
    json_decref(j);
    return 0;
}

/* The new KEK as hex (65 bytes) from the one source given; 0 or an exit code. */
static int new_kek_hex(mesh_cli_t *cli, const mesh_cli_args_t *a, char *hex)
{
    uint8_t key[MESH_KEY_BYTES];
    mesh_err_t err;
    mesh_status_t st;
    const char *file = mesh_cli_arg(a, "new-kek-file");
    const char *env = mesh_cli_arg(a, "new-kek-env");
    const char *cmd = mesh_cli_arg(a, "new-kek-command");
    if (file) {
        char *text;
        size_t n = 0;
        int rc = mesh_cli_read_input(cli, file, 4096, &text, &n);
        if (rc != 0)
            return rc;
        st = mesh_kek_parse_text((const uint8_t *)text, n, key, &err);
        mesh_cleanse(text, n);
        free(text);
        if (st != MESH_OK)
            return mesh_cli_usage(cli, "%s: %s", file, err.msg);
    } else if (env) {
        const char *v = getenv(env);
        if (v == NULL || *v == '\0')
            return mesh_cli_usage(cli, "the environment variable %s is not set", env);
        if (mesh_kek_parse_text((const uint8_t *)v, strlen(v), key, &err) != MESH_OK)
            return mesh_cli_usage(cli, "%s: %s", env, err.msg);
    } else {
        if (mesh_kek_run_command(cmd, 30 * MESH_NS_PER_SEC, key, &err) != MESH_OK)
            return mesh_cli_fail(cli, err.code, "%s", err.msg);
    }
    mesh_hex(key, sizeof key, hex);
    mesh_cleanse(key, sizeof key);
    return 0;
}

static int run_rotate(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    static const char *const sources[] = {"new-kek-file",        "new-kek-env", "new-kek-command",
                                          "new-passphrase-file", "generate",    "domain"};
    int given = 0;
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++)
        given += strcmp(sources[i], "generate") == 0 ? mesh_cli_flag(a, sources[i])
                                                     : mesh_cli_arg(a, sources[i]) != NULL;
    if (given != 1)
        return mesh_cli_usage(cli, "give one of --new-kek-file, --new-kek-env, "
                                   "--new-kek-command, --new-passphrase-file, --generate, or "
                                   "--domain NAME --data-key");
    const char *domain = mesh_cli_arg(a, "domain");
    if (domain && !mesh_cli_flag(a, "data-key"))
        return mesh_cli_usage(cli, "--domain re-encrypts a domain under a new data key: add "
                                   "--data-key to say so");
    if (!domain && mesh_cli_flag(a, "data-key"))
        return mesh_cli_usage(cli, "--data-key needs --domain NAME");
    json_t *body = json_object();
    char secret[4200] = "";
    int rc = 0;
    if (domain) {
        if ((rc = mesh_cli_domain_name(cli, domain)) != 0) {
            json_decref(body);
            return rc;
        }
        json_object_set_new(body, "domain", json_string(domain));
    } else if (mesh_cli_flag(a, "generate")) {
        json_object_set_new(body, "generate", json_true());
    } else if (mesh_cli_arg(a, "new-passphrase-file")) {
        const char *file = mesh_cli_arg(a, "new-passphrase-file");
        char *text;
        size_t n = 0;
        if ((rc = mesh_cli_read_input(cli, file, 4096, &text, &n)) != 0) {
            json_decref(body);
            return rc;
        }
        size_t line = strcspn(text, "\r\n");
        snprintf(secret, sizeof secret, "%.*s", (int)line, text);
        mesh_cleanse(text, n);
        free(text);
        if (strlen(secret) < 8) {
            mesh_cleanse(secret, sizeof secret);
            json_decref(body);
            return mesh_cli_usage(cli, "%s: a passphrase needs at least 8 characters", file);
        }
        json_object_set_new(body, "passphrase", json_string(secret));
    } else {
        if ((rc = new_kek_hex(cli, a, secret)) != 0) {
            json_decref(body);
            return rc;
        }
        json_object_set_new(body, "kek", json_string(secret));
    }
    char *text = json_dumps(body, JSON_COMPACT);
    const char *s = json_string_value(json_object_get(body, domain ? "domain" : "kek"));
    if (s && !domain)
        mesh_cleanse((char *)s, strlen(s));
    s = json_string_value(json_object_get(body, "passphrase"));
    if (s)
        mesh_cleanse((char *)s, strlen(s));
    json_decref(body);
    mesh_cleanse(secret, sizeof secret);
    if (text == NULL)
        return mesh_cli_usage(cli, "the passphrase must be UTF-8 text");
    mesh_client_req_t req = {.method = "POST",
                             .path = "/v1/keys/rotate",
                             .content_type = "application/json",
                             .body = text,
                             .body_len = strlen(text)};
    json_t *j = NULL;
    rc = mesh_cli_call(cli, &req, &j);
    mesh_cleanse(text, strlen(text));
    free(text);
    if (rc != 0)
        return rc;
    if (strcmp(mesh_cli_format(cli, false), "json") == 0) {
        char *out = json_dumps(j, JSON_COMPACT);
        if (out)
            printf("%s\n", out);
        free(out);
    } else if (!cli->quiet && domain) {
        printf("domain %s re-encrypted under data key generation %lld (%lld pages, %lld ms); "
               "no file of it is sealed with the old key any more\n",
               domain, (long long)mesh_cli_jint(j, "data_key_generation"),
               (long long)mesh_cli_jint(j, "pages"), (long long)mesh_cli_jint(j, "ms"));
    } else if (!cli->quiet) {
        printf("key-encryption key rotated: %lld key files rewrapped under KEK %s (was %s)\n"
               "next start: %s\n",
               (long long)mesh_cli_jint(j, "key_files"), mesh_cli_jstr(j, "kek_id"),
               mesh_cli_jstr(j, "previous_kek_id"), mesh_cli_jstr(j, "next_start"));
    }
    json_decref(j);
    return 0;
}

static const mesh_cli_opt_t rotate_opts[] = {
    {"new-kek-file", 0, "FILE", 0,
     "Read the new key-encryption key from FILE (64 hex digits, base64 of 32 bytes, or 32 raw "
     "bytes), here on this machine."},
    {"new-kek-env", 0, "VAR", 0, "Read the new KEK from the environment variable VAR."},
    {"new-kek-command", 0, "COMMAND", 0,
     "Run COMMAND here (no shell; words split on blanks, quotes group) and read the new KEK "
     "from its output, e.g. a KMS or vault client."},
    {"new-passphrase-file", 0, "FILE", 0,
     "Derive the new KEK from a passphrase (the first line of FILE, 8 characters or more) with "
     "scrypt on the node (a new salt)."},
    {"generate", 0, NULL, 0,
     "Have meshd generate a new random KEK into its data directory (only when the current one "
     "is the generated DATA/kek.key)."},
    {"domain", 0, "NAME", 0, "With --data-key: re-encrypt this domain under a new data key."},
    {"data-key", 0, NULL, 0, "Rotate the data key of --domain (not the KEK)."},
    {NULL, 0, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_keys_cmds[] = {
    {
        .name = "keys status",
        .usage = "[OPTIONS]",
        .summary = "Show how the node's data is encrypted at rest.",
        .text = "Shows whether encryption at rest is on, the key-encryption key's id and where\n"
                "it comes from (a warning when it lies in the data directory), pages that\n"
                "failed authentication since the start, and each domain's data key generation.\n"
                "Needs an admin token.",
        .formats = "table|json",
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl keys status",
        .exits = "0  shown\n"
                 "4  the token may not administer the node",
        .run = run_status,
    },
    {
        .name = "keys rotate",
        .usage = "(--new-kek-file FILE | --new-kek-env VAR | --new-kek-command CMD |\n"
                 "    --new-passphrase-file FILE | --generate | --domain NAME --data-key)",
        .summary = "Rotate the key-encryption key, or a domain's data key.",
        .text = "With a new KEK: every key file of the node (the catalog's and each domain's\n"
                "data keys) is rewrapped under it, at once, in two steps (wrapped under both\n"
                "keys, then under the new one only), while writes and queries go on. Then\n"
                "configure meshd with the new KEK before it restarts: the old one no longer\n"
                "opens anything. If meshd stops during the rotation, start it with the new KEK\n"
                "(or, when that is refused as the wrong key, with the old one): either finishes\n"
                "or undoes the rotation. The new KEK is read here and sent in the request body:\n"
                "use an https:// URL off the local machine.\n"
                "\n"
                "With --domain NAME --data-key: the domain is re-encrypted online under a new\n"
                "data key (its database copied into a new file, its log trimmed) while writes\n"
                "continue; afterwards no file of the domain is sealed with the old key. A large\n"
                "domain takes a while: give --timeout 0 (or a longer one) beyond 60 s.\n"
                "\n"
                "Needs an admin token.",
        .opts = rotate_opts,
        .min_args = 0,
        .max_args = 0,
        .format_help = "json prints the server's answer",
        .formats = "table|json",
        .examples = "meshctl keys rotate --new-kek-file /media/keys/meshd-kek-2026\n"
                    "meshctl keys rotate --new-kek-command 'vault kv get -field=kek secret/meshd'\n"
                    "meshctl keys rotate --domain icu-3 --data-key --timeout 0",
        .exits = "0  rotated\n"
                 "2  no or several key sources, an unusable key, encryption is off\n"
                 "3  no such domain\n"
                 "4  the token may not administer the node\n"
                 "5  another key operation runs on the domain",
        .run = run_rotate,
    },
    {.name = NULL},
};
