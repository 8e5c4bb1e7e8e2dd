/*
 * meshctl.c - the meshctl program: global options and settings, command dispatch, the
 * top-level help and the generated reference (`meshctl help --markdown`, which is
 * docs/meshctl.md).
 *
 * Settings (url, token, token_file, config, timeout) are one config.h table, read at four
 * levels: default < config file < environment (MESH_*) < flags. The levels are loaded into
 * separate structs and merged here, because token and token_file are one setting in two
 * spellings: the highest level that gives either wins, and giving both at one level is an
 * error. When no level gives one, the token comes from the login file `meshctl login` wrote
 * ($XDG_CONFIG_HOME/meshctl/token), if there is one; the token file of any level is the login
 * file login and logout work on (cmd_login.c). The environment prefix is MESH_ (MESH_URL,
 * MESH_TOKEN), the names the brief and the other tools use, rather than MESHCTL_.
 *
 * Commands are looked up by their first two words, then by the first one, so `grant list`
 * is found before `grant ROLE ...`.
 *
 * `meshctl generate ...` runs mesh_cli_generate() from src/cli/generate.c, written
 * separately; it is a weak symbol so meshctl builds and says so when that file is absent.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/secret.h"
#include "core/util.h"

/* Provided by src/cli/generate.c when present; called with argv[0] = "generate". */
int mesh_cli_generate(int argc, char **argv) __attribute__((weak));

#define F(field) offsetof(mesh_cli_settings_t, field)

static const mesh_opt_t settings[] = {
    {"url", MESH_OPT_STRING, F(url), "https://127.0.0.1:7070", 0, 0, NULL, 0, "URL[,URL...]",
     "Base URL of meshd. A comma-separated list is tried in order: when a node cannot be "
     "reached, the next one is used. https:// unless the node runs with tls = off."},
    {"token", MESH_OPT_STRING, F(token), NULL, 0, 0, NULL, MESH_OPT_SECRET, "TOKEN",
     "API token, sent as `Authorization: Bearer`. Prefer --token-file or the config file: a "
     "flag is visible in the process list. Never printed."},
    {"token_file", MESH_OPT_STRING, F(token_file), NULL, 0, 0, NULL, 0, "FILE",
     "File whose first line is the API token. `meshctl login` writes it (mode 0600). When "
     "no token or token file is given, the file of the last `meshctl login` is used: "
     "$XDG_CONFIG_HOME/meshctl/token, else ~/.config/meshctl/token."},
    {"config", MESH_OPT_STRING, F(config), NULL, 0, 0, NULL, MESH_OPT_NOFILE, "FILE",
     "Config file of `name = value` lines (default: $XDG_CONFIG_HOME/meshctl/config, else "
     "~/.config/meshctl/config; a missing default file is fine)."},
    {"timeout", MESH_OPT_DURATION, F(timeout), "60s", 0, 7 * 86400 * MESH_NS_PER_SEC, NULL, 0,
     "SECONDS",
     "Abandon a request when no data has moved for this long: seconds, or a duration such as "
     "500ms or 5m; 0 never. Connecting gives up after at most 10 s."},
    {"cacert", MESH_OPT_STRING, F(cacert), NULL, 0, 0, NULL, 0, "FILE",
     "CA certificates (PEM) that verify the node's TLS certificate, instead of the system's "
     "CAs; the host in the URL must be one of the certificate's names. For a node's own "
     "self-signed certificate, give its DATA_DIR/tls/cert.pem."},
    {"pin", MESH_OPT_STRING, F(pin), NULL, 0, 0, NULL, 0, "sha256:HEX[,...]",
     "Trust the node's TLS certificate when its SHA-256 fingerprint (of the whole certificate, "
     "not of its public key) is one of these: meshd logs it at start ('fingerprint "
     "sha256:...'), and 'openssl x509 -in cert.pem -noout -fingerprint -sha256' prints it "
     "(colons are fine). A pin alone replaces the CA, name and date checks; with --cacert both "
     "must pass. One pin per node of a --url list."},
    {"cert", MESH_OPT_STRING, F(cert), NULL, 0, 0, NULL, 0, "FILE",
     "Client certificate (PEM) for nodes that ask for one (tls_client_auth)."},
    {"key", MESH_OPT_STRING, F(key), NULL, 0, 0, NULL, 0, "FILE",
     "Private key (PEM, not encrypted) of --cert; default: read from the --cert file."},
};

const mesh_opts_spec_t mesh_cli_settings_spec = {settings, MESH_ARRAY_LEN(settings), "MESH_"};

static const mesh_cli_opt_t top_opts[] = {
    {"version", 0, NULL, 0, "Print the version and exit."},
    {NULL, 0, NULL, 0, NULL},
};

/* The options before the command. */
static const mesh_cli_cmd_t top_cmd = {
    .name = NULL,
    .usage = "",
    .formats = "table|json|csv|ndjson|lp|text|dot", /* any command's; checked once it is known */
    .opts = top_opts,
    .max_args = -1,
};

static const mesh_cli_cmd_t *const groups[] = {
    mesh_cli_status_cmds, mesh_cli_domain_cmds,  mesh_cli_product_cmds, mesh_cli_ingest_cmds,
    mesh_cli_query_cmds,  mesh_cli_catalog_cmds, mesh_cli_quality_cmds, mesh_cli_classify_cmds,
    mesh_cli_rule_cmds,   mesh_cli_alert_cmds,   mesh_cli_audit_cmds,   mesh_cli_keys_cmds,
    mesh_cli_login_cmds,  mesh_cli_user_cmds,    mesh_cli_token_cmds,   mesh_cli_role_cmds,
    mesh_cli_grant_cmds,  mesh_cli_mask_cmds,    mesh_cli_filter_cmds,  mesh_cli_mqtt_cmds,
    mesh_cli_mesh_cmds,   mesh_cli_backup_cmds,  mesh_cli_lineage_cmds, mesh_cli_governance_cmds,
};

/* The global flags that are not settings: spelling and help. */
static const char *const flags[][2] = {
    {"--format FORMAT", "Output format of the commands that print data (for ingest: the "
                        "input's format); each command's --help lists its formats."},
    {"-q, --quiet", "No informational output (summaries, progress bar); data and errors are "
                    "still printed."},
    {"--version", "Print the version and exit."},
    {"-h, --help", "Show this help; 'meshctl COMMAND --help' (or 'meshctl help COMMAND') shows "
                   "the help of a command."},
};

static const char overview[] =
    "meshctl administers and queries meshd nodes through their HTTP API: domains,\n"
    "data products and their ODCS contracts, ingest of CSV, NDJSON, JSON and line\n"
    "protocol files, SQL queries, the catalog, classification discovery, rules and\n"
    "their alerts, access control (login, users, tokens, roles, grants, masks and row\n"
    "filters), encryption keys, the audit log, MQTT ingest mappings, and the mesh (its\n"
    "nodes, domains and products, and the nats-server configs of a new mesh).\n";

static const char examples[] =
    "export MESH_URL=https://10.0.0.5:7070\n"
    "export MESH_PIN=sha256:3c3a60cb6788bda4...   # the fingerprint the node logs at start\n"
    "export MESH_TOKEN=$(cat ~/.meshd-token)\n"
    "meshctl status\n"
    "meshctl --url https://localhost:7070 --cacert /var/lib/meshd/tls/cert.pem status\n"
    "meshctl domain create factory --owner ops@example.com\n"
    "meshctl product apply contracts/readings.odcs.yaml\n"
    "meshctl ingest factory.readings readings.csv\n"
    "meshctl query 'SELECT device, avg(temp) FROM factory.readings GROUP BY device'\n"
    "meshctl login --user ana            # asks the password; later commands use the token\n";

static const char config_example[] = "# ~/.config/meshctl/config\n"
                                     "url = https://10.0.0.5:7070,https://10.0.0.6:7070\n"
                                     "cacert = /home/me/.config/meshctl/mesh-ca.pem\n"
                                     "token_file = /home/me/.config/meshctl/token\n"
                                     "timeout = 30s\n";

/* ---- help ---- */

/* The flag ("token-file") and environment ("MESH_TOKEN_FILE") spellings of a setting; both
 * buffers hold 64 bytes. */
static void spell(const char *name, char *flag, char *env)
{
    size_t k = 0, e = (size_t)snprintf(env, 64, "%s", mesh_cli_settings_spec.env_prefix);
    for (const char *p = name; *p && k + 1 < 64 && e + 1 < 64; p++) {
        flag[k++] = *p == '_' ? '-' : *p;
        env[e++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    }
    flag[k] = '\0';
    env[e] = '\0';
}

static void exit_codes(FILE *out, bool md)
{
    static const char *const meaning[] = {
        "success",
        "a local file could not be read or written",
        "invalid input: a bad flag or argument (checked locally), or the server's",
        "not found:",
        "authentication or permission (also: a TLS certificate was refused):",
        "conflict:",
        "a limit or a time limit (also: no data within --timeout):",
        "unavailable (also: meshd cannot be reached):",
        "server error:",
    };
    if (md)
        fputs("| code | meaning |\n| --- | --- |\n", out);
    for (int e = 0; e < (int)MESH_ARRAY_LEN(meaning); e++) {
        char names[256] = "";
        size_t n = 0;
        for (int s = 1; e >= 2 && s < MESH_STATUS__COUNT; s++)
            if (mesh_status_exit((mesh_status_t)s) == e && n < sizeof names)
                n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", n ? ", " : " ",
                                      mesh_status_name((mesh_status_t)s));
        char text[512];
        snprintf(text, sizeof text, "%s%s", meaning[e], names);
        if (md) {
            fprintf(out, "| %d | %s |\n", e, text);
        } else {
            fprintf(out, "  %d  ", e);
            mesh_cli_wrap(out, text, 5, 5);
        }
    }
}

static void list_commands(FILE *out, bool md)
{
    if (md)
        fputs("| command | what it does |\n| --- | --- |\n", out);
    for (size_t g = 0; g < MESH_ARRAY_LEN(groups); g++)
        for (const mesh_cli_cmd_t *c = groups[g]; c->name; c++) {
            if (md) {
                char anchor[64];
                size_t k = 0;
                for (const char *p = "meshctl-"; *p; p++)
                    anchor[k++] = *p;
                for (const char *p = c->name; *p && k + 1 < sizeof anchor; p++)
                    anchor[k++] = *p == ' ' ? '-' : *p;
                anchor[k] = '\0';
                fprintf(out, "| [`%s`](#%s) | %s |\n", c->name, anchor, c->summary);
            } else {
                fprintf(out, "  %-20s %s\n", c->name, c->summary);
            }
        }
    if (md) {
        fputs("| `generate` | Generate demo data (see `meshctl generate --help`). |\n", out);
    } else {
        fprintf(out, "  %-20s %s\n", "generate", "Generate demo data (see 'generate --help').");
        fprintf(out, "  %-20s %s\n", "help [COMMAND]", "Show the help of a command.");
    }
}

static void help_top(FILE *out)
{
    fputs("Usage: meshctl [GLOBAL OPTIONS] COMMAND [ARGUMENTS] [OPTIONS]\n\n", out);
    fputs(overview, out);
    fputs("\nCommands:\n", out);
    list_commands(out, false);
    fputs("\nGlobal options (before or after the command):\n", out);
    for (size_t i = 0; i < MESH_ARRAY_LEN(settings); i++) {
        const mesh_opt_t *o = &settings[i];
        char flag[64], env[64], text[1024];
        spell(o->name, flag, env);
        size_t n = (size_t)snprintf(text, sizeof text, "%s Environment: %s", o->help, env);
        if (!(o->flags & MESH_OPT_NOFILE) && n < sizeof text)
            n += (size_t)snprintf(text + n, sizeof text - n, "; config file: %s", o->name);
        if (o->def && !(o->flags & MESH_OPT_SECRET) && n < sizeof text)
            n += (size_t)snprintf(text + n, sizeof text - n, "; default: %s", o->def);
        if (n < sizeof text)
            snprintf(text + n, sizeof text - n, ".");
        fprintf(out, "  --%s %s\n      ", flag, o->metavar);
        mesh_cli_wrap(out, text, 6, 6);
    }
    for (size_t i = 0; i < MESH_ARRAY_LEN(flags); i++) {
        fprintf(out, "  %s\n      ", flags[i][0]);
        mesh_cli_wrap(out, flags[i][1], 6, 6);
    }
    fputs("\nPrecedence: flag > environment (MESH_URL, MESH_TOKEN, ...) > config file > "
          "default\n(for the token: the file of 'meshctl login').\nNO_COLOR (set to anything) "
          "turns off the dimmed NULL in tables.\n\n"
          "Config file:\n",
          out);
    for (const char *p = config_example; *p;) {
        const char *nl = strchr(p, '\n');
        fprintf(out, "  %.*s\n", (int)(nl - p), p);
        p = nl + 1;
    }
    fputs("\nExit codes (the server's error code word is printed in brackets):\n", out);
    exit_codes(out, false);
    fputs("\nExamples:\n", out);
    for (const char *p = examples; *p;) {
        const char *nl = strchr(p, '\n');
        fprintf(out, "  %.*s\n", (int)(nl - p), p);
        p = nl + 1;
    }
}

static void help_group(FILE *out, const char *group)
{
    fprintf(out, "Usage: meshctl %s COMMAND [ARGUMENTS] [OPTIONS]\n\nCommands:\n", group);
    size_t gl = strlen(group);
    for (size_t g = 0; g < MESH_ARRAY_LEN(groups); g++)
        for (const mesh_cli_cmd_t *c = groups[g]; c->name; c++)
            if (strncmp(c->name, group, gl) == 0 && c->name[gl] == ' ')
                fprintf(out, "  %-20s %s\n", c->name, c->summary);
    fprintf(out, "\n'meshctl %s COMMAND --help' shows the help of a command.\n", group);
}

/* The reference in Markdown: docs/meshctl.md is this output. */
static void help_markdown(FILE *out)
{
    fputs("<!-- Generated by `meshctl help --markdown` from the option tables in src/cli/; "
          "edit those, then regenerate. -->\n# meshctl reference\n\n",
          out);
    fputs(overview, out);
    fputs("\n```\nmeshctl [GLOBAL OPTIONS] COMMAND [ARGUMENTS] [OPTIONS]\n```\n\n"
          "## Commands\n\n",
          out);
    list_commands(out, true);
    fputs("\n## Global options\n\nAccepted before or after the command. Precedence: flag > "
          "environment > config file > default (for the token: the file of `meshctl login`). "
          "`NO_COLOR` (set to anything) turns off the "
          "dimmed NULL in tables.\n\n"
          "| option | environment | config file | default | description |\n"
          "| --- | --- | --- | --- | --- |\n",
          out);
    for (size_t i = 0; i < mesh_cli_settings_spec.nopts; i++) {
        const mesh_opt_t *o = &settings[i];
        char flag[64], env[64];
        spell(o->name, flag, env);
        fprintf(out, "| `--%s %s` | `%s` | %s | %s | ", flag, o->metavar, env,
                o->flags & MESH_OPT_NOFILE ? "-" : o->name,
                o->def && !(o->flags & MESH_OPT_SECRET) ? o->def : "-");
        mesh_cli_md_cell(out, o->help);
        fputs(" |\n", out);
    }
    for (size_t i = 0; i < MESH_ARRAY_LEN(flags); i++)
        fprintf(out, "| `%s` | - | - | - | %s |\n", flags[i][0], flags[i][1]);
    fputs("\n## Config file\n\n`name = value` lines (`#` starts a comment); the names are "
          "those of the table above. A file holding a token should be readable by its owner "
          "only (meshctl warns otherwise).\n\n```\n",
          out);
    fputs(config_example, out);
    fputs("```\n\n## Exit codes\n\nErrors are printed on stderr as `meshctl: [CODE] message`, "
          "with the server's error code word in brackets when the server answered, and the "
          "details (bad rows, contract changes) on the lines below.\n\n",
          out);
    exit_codes(out, true);
    fputs("\n## Examples\n\n```\n", out);
    fputs(examples, out);
    fputs("```\n\n## Command reference\n\n", out);
    for (size_t g = 0; g < MESH_ARRAY_LEN(groups); g++)
        for (const mesh_cli_cmd_t *c = groups[g]; c->name; c++)
            mesh_cli_help_cmd(c, out, true);
    fputs("### meshctl generate\n\n```\nmeshctl generate ...\n```\n\nGenerates demo data; "
          "provided by src/cli/generate.c (see `meshctl generate --help`). A build without it "
          "says so and exits 2.\n",
          out);
}

/* ---- settings ---- */

static void level_init(mesh_cli_settings_t *s)
{
    memset(s, 0, sizeof *s);
    s->timeout = -1;
}

/* The token from the first line of a file. */
static int read_token_file(mesh_cli_t *cli, const char *path, char **out)
{
    char *text;
    size_t len;
    mesh_err_t err;
    mesh_err_clear(&err);
    if (mesh_read_file(path, 64 * 1024, &text, &len, &err) != MESH_OK)
        return mesh_cli_local(cli, "cannot read the token file %s", err.msg);
    size_t n = strcspn(text, "\r\n");
    while (n && (text[n - 1] == ' ' || text[n - 1] == '\t'))
        n--;
    size_t s = 0;
    while (s < n && (text[s] == ' ' || text[s] == '\t'))
        s++;
    *out = s < n ? mesh_strndup(text + s, n - s) : NULL;
    explicit_bzero(text, len);
    free(text);
    if (*out == NULL)
        return mesh_cli_usage(cli, "the token file %s holds no token on its first line", path);
    return 0;
}

/*
 * Resolves the settings: default < config file < environment < flags. On success out holds
 * malloc'd strings (free with mesh_opts_free) and the token, read from token_file if that
 * is how it was given. Returns 0 or an exit code.
 */
static int resolve(mesh_cli_t *cli, mesh_cli_settings_t *out)
{
    const mesh_opts_spec_t *spec = &mesh_cli_settings_spec;
    mesh_cli_settings_t env, file;
    level_init(&env);
    level_init(&file);
    mesh_err_t err;
    mesh_err_clear(&err);
    int rc = 0;
    if (mesh_opts_defaults(spec, out, &err) != MESH_OK ||
        mesh_opts_load_env(spec, &env, &err) != MESH_OK) {
        rc = mesh_cli_usage(cli, "%s", err.msg);
        goto done;
    }
    char defpath[4096] = "";
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(defpath, sizeof defpath, "%s/meshctl/config", xdg);
    else if (home && *home)
        snprintf(defpath, sizeof defpath, "%s/.config/meshctl/config", home);
    const char *path = cli->flags.config ? cli->flags.config : env.config ? env.config : defpath;
    bool explicit_path = cli->flags.config || env.config;
    if (*path && (explicit_path || access(path, F_OK) == 0)) {
        mesh_status_t st = mesh_opts_load_file(spec, &file, path, &err);
        if (st == MESH_NOT_FOUND || st == MESH_IO) {
            rc = mesh_cli_local(cli, "cannot read the config file %s", err.msg);
            goto done;
        }
        if (st != MESH_OK) {
            rc = mesh_cli_usage(cli, "%s", err.msg);
            goto done;
        }
        struct stat sb;
        if (file.token && stat(path, &sb) == 0 && (sb.st_mode & 077) && !cli->quiet)
            fprintf(stderr,
                    "meshctl: warning: %s holds a token and other users may read it "
                    "(chmod 600 %s)\n",
                    path, path);
    }
    /* url: the highest level that gives it */
    const mesh_cli_settings_t *levels[] = {&cli->flags, &env, &file};
    const char *level_names[] = {"flags", "the environment", "the config file"};
    for (size_t i = 0; i < 3; i++)
        if (levels[i]->url) {
            free(out->url);
            if ((out->url = mesh_strdup(levels[i]->url)) == NULL)
                rc = mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
            break;
        }
    /* the TLS settings, each from the highest level that gives it ("" there: none) */
    static const size_t tls_fields[] = {
        offsetof(mesh_cli_settings_t, cacert), offsetof(mesh_cli_settings_t, pin),
        offsetof(mesh_cli_settings_t, cert), offsetof(mesh_cli_settings_t, key)};
    for (size_t f = 0; f < MESH_ARRAY_LEN(tls_fields) && rc == 0; f++) {
        char **dst = (char **)((char *)out + tls_fields[f]);
        for (size_t i = 0; i < 3; i++) {
            char *const *src = (char *const *)((const char *)levels[i] + tls_fields[f]);
            if (*src == NULL)
                continue;
            free(*dst);
            if ((*dst = mesh_strdup(*src)) == NULL)
                rc = mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
            break;
        }
    }
    for (size_t i = 0; i < 3 && rc == 0; i++)
        if (levels[i]->timeout >= 0) {
            out->timeout = levels[i]->timeout;
            break;
        }
    /* token and token_file are one setting: the highest level giving either wins; when none
     * does, the login file (if there is one) */
    static const char *const token_names[] = {"--token", "MESH_TOKEN", "token (config file)"};
    static const char *const file_names[] = {"--token-file", "MESH_TOKEN_FILE",
                                             "token_file (config file)"};
    int won = -1;
    for (int i = 0; i < 3 && rc == 0 && won < 0; i++) {
        if (levels[i]->token && levels[i]->token_file)
            rc = mesh_cli_usage(cli, "%s give both a token and a token file: keep one",
                                level_names[i]);
        else if (levels[i]->token || levels[i]->token_file)
            won = i;
    }
    /* the login file: the token file of any level, else the default place */
    char login_path[4096] = "";
    for (size_t i = 0; i < 3 && !login_path[0]; i++)
        if (levels[i]->token_file)
            snprintf(login_path, sizeof login_path, "%s", levels[i]->token_file);
    if (!login_path[0])
        mesh_cli_login_default_path(login_path, sizeof login_path);
    if (rc == 0 && login_path[0] && (out->token_file = mesh_strdup(login_path)) == NULL)
        rc = mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    bool own = cli->cmd && (cli->cmd->flags & MESH_CLI_OWN_TOKEN);
    const char *from = NULL; /* the file the token is read from */
    if (rc == 0 && won >= 0) {
        const mesh_cli_settings_t *l = levels[won];
        cli->token_origin = l->token ? token_names[won] : file_names[won];
        from = l->token_file;
        if (own)
            cli->token_origin = l->token ? cli->token_origin : NULL;
        else if (l->token && (out->token = mesh_strdup(l->token)) == NULL)
            rc = mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    } else if (rc == 0 && login_path[0] && !own && access(login_path, F_OK) == 0) {
        cli->token_origin = "the login file";
        from = login_path;
    }
    /* login and logout (own) handle the token file themselves. A file that wins is the
     * first token file of the levels, so it is the login file too: out->token_file. */
    if (rc == 0 && from && !own) {
        mesh_cli_login_state_t state;
        cli->token_path = out->token_file;
        rc = read_token_file(cli, from, &out->token);
        if (rc == 0 && mesh_cli_login_inspect(cli, from, &state, NULL) == 0)
            cli->token_is_login = state == MESH_CLI_LOGIN_OURS;
    }
done:
    if (env.token)
        explicit_bzero(env.token, strlen(env.token));
    if (file.token)
        explicit_bzero(file.token, strlen(file.token));
    mesh_opts_free(spec, &env);
    mesh_opts_free(spec, &file);
    return rc;
}

/* The TLS files must be readable (a clear local error before any connection); a pin or CA
 * file with a plain http:// URL protects nothing: say so. Returns 0 or an exit code. */
static int check_tls_files(mesh_cli_t *cli, const mesh_cli_settings_t *s)
{
    const char *files[][2] = {{"CA file (--cacert)", s->cacert},
                              {"client certificate (--cert)", s->cert},
                              {"client key (--key)", s->key}};
    for (size_t i = 0; i < MESH_ARRAY_LEN(files); i++) {
        const char *path = files[i][1];
        if (path && *path && access(path, R_OK) != 0)
            return mesh_cli_local(cli, "cannot read the %s %s: %s", files[i][0], path,
                                  strerror(errno));
    }
    if (s->key && *s->key && !(s->cert && *s->cert))
        return mesh_cli_usage(cli, "--key needs --cert");
    bool tls_trust = (s->cacert && *s->cacert) || (s->pin && *s->pin);
    bool plain = false;
    for (const char *u = s->url; u && *u && !plain; u++)
        plain = strncasecmp(u, "http://", 7) == 0;
    if (tls_trust && plain && !cli->quiet)
        fprintf(stderr, "meshctl: warning: --cacert and --pin apply to https:// URLs only; an "
                        "http:// URL is not encrypted\n");
    return 0;
}

/* ---- dispatch ---- */

/* Finds the command whose name is the first words (a name is one to three words: "status",
 * "domain create", "mqtt mapping create"); *nwords says how many it used. The longest name
 * wins (`grant list` over `grant ROLE ...`); `meshctl grant -- list read icu` reaches the
 * one-word command. */
static const mesh_cli_cmd_t *find_cmd(char **words, int n, int *nwords)
{
    const mesh_cli_cmd_t *best = NULL;
    int best_words = 0;
    for (size_t g = 0; g < MESH_ARRAY_LEN(groups); g++)
        for (const mesh_cli_cmd_t *c = groups[g]; c->name; c++) {
            const char *p = c->name;
            for (int k = 0; k < n; k++) {
                size_t len = strcspn(p, " ");
                if (strlen(words[k]) != len || strncmp(p, words[k], len) != 0)
                    break;
                p += len;
                if (*p == '\0') {
                    if (k + 1 > best_words) {
                        best = c;
                        best_words = k + 1;
                    }
                    break;
                }
                p++;
            }
        }
    *nwords = best_words;
    return best;
}

static bool is_group(const char *w)
{
    size_t n = strlen(w);
    for (size_t g = 0; g < MESH_ARRAY_LEN(groups); g++)
        for (const mesh_cli_cmd_t *c = groups[g]; c->name; c++)
            if (strncmp(c->name, w, n) == 0 && c->name[n] == ' ')
                return true;
    return false;
}

static int cmd_help(mesh_cli_t *cli, int n, char **words)
{
    if (n >= 1 && strcmp(words[0], "--markdown") == 0) {
        help_markdown(stdout);
        return 0;
    }
    if (n == 0) {
        help_top(stdout);
        return 0;
    }
    int used;
    const mesh_cli_cmd_t *c = find_cmd(words, n, &used);
    if (c) {
        mesh_cli_help_cmd(c, stdout, false);
        return 0;
    }
    if (is_group(words[0])) {
        help_group(stdout, words[0]);
        return 0;
    }
    if (strcmp(words[0], "generate") == 0 && mesh_cli_generate) {
        char *av[] = {(char *)"generate", (char *)"--help", NULL};
        return mesh_cli_generate(2, av);
    }
    return mesh_cli_usage(cli, "no command '%s' (see 'meshctl --help')", words[0]);
}

static int run_generate(mesh_cli_t *cli, int argc, char **argv)
{
    if (mesh_cli_generate == NULL)
        return mesh_cli_fail(cli, MESH_INVALID,
                             "generate: not available in this build (src/cli/generate.c is "
                             "missing)");
    fflush(stdout);
    return mesh_cli_generate(argc, argv);
}

int main(int argc, char **argv)
{
    mesh_cli_t cli;
    memset(&cli, 0, sizeof cli);
    level_init(&cli.flags);
    cli.out_tty = isatty(STDOUT_FILENO);
    cli.err_tty = isatty(STDERR_FILENO);
    const char *nc = getenv("NO_COLOR");
    cli.color = cli.out_tty && (nc == NULL || *nc == '\0');

    mesh_cli_args_t *top = NULL, *a = NULL;
    mesh_cli_settings_t set;
    memset(&set, 0, sizeof set);
    int rc = mesh_cli_parse(&cli, &top_cmd, argc, argv, true, &top);
    if (rc == -1) {
        help_top(stdout);
        rc = 0;
        goto out;
    }
    if (rc != 0)
        goto out;
    if (mesh_cli_flag(top, "version")) {
        printf("meshctl %s (libcurl %s, jansson %s)\n", MESH_VERSION, mesh_client_lib_version(),
               JANSSON_VERSION);
        goto out;
    }
    int first = argc - mesh_cli_npos(top); /* argv index of the command's first word */
    if (mesh_cli_npos(top) == 0) {
        fputs("Usage: meshctl [GLOBAL OPTIONS] COMMAND [ARGUMENTS] [OPTIONS]\n"
              "Try 'meshctl --help' for the commands.\n",
              stderr);
        rc = mesh_status_exit(MESH_INVALID);
        goto out;
    }
    char **words = argv + first;
    int nwords = argc - first;
    if (strcmp(words[0], "help") == 0) {
        rc = cmd_help(&cli, nwords - 1, words + 1);
        goto out;
    }
    if (strcmp(words[0], "generate") == 0) {
        rc = run_generate(&cli, nwords, words);
        goto out;
    }
    int used = 0;
    const mesh_cli_cmd_t *cmd = find_cmd(words, nwords, &used);
    if (cmd == NULL) {
        if (is_group(words[0])) {
            bool want_help = nwords == 1
                                 ? false
                                 : strcmp(words[1], "--help") == 0 || strcmp(words[1], "-h") == 0;
            help_group(want_help ? stdout : stderr, words[0]);
            if (!want_help && nwords > 1)
                fprintf(stderr, "meshctl: no command '%s %s'\n", words[0], words[1]);
            rc = want_help ? 0 : mesh_status_exit(MESH_INVALID);
        } else {
            rc = mesh_cli_usage(&cli, "no command '%s' (see 'meshctl --help')", words[0]);
        }
        goto out;
    }
    cli.cmd = cmd;
    /* getopt skips argv[0]: hand it the command's last word as the program name */
    rc = mesh_cli_parse(&cli, cmd, nwords - used + 1, words + used - 1, false, &a);
    if (rc == -1) {
        rc = 0;
        goto out;
    }
    if (rc != 0)
        goto out;
    if (cli.format && !mesh_cli_format_ok(cmd->formats, cli.format)) {
        rc = cmd->formats
                 ? mesh_cli_usage(&cli, "--format %s is not a format of this command", cli.format)
                 : mesh_cli_usage(&cli, "this command takes no --format");
        goto out;
    }
    if ((rc = resolve(&cli, &set)) != 0)
        goto out;
    cli.set = &set;
    mesh_err_t err;
    mesh_err_clear(&err);
    if ((rc = check_tls_files(&cli, &set)) != 0)
        goto out;
    mesh_client_tls_t tls = {set.cacert, set.pin, set.cert, set.key};
    if (mesh_client_create(set.url, set.token, set.timeout, &tls, &cli.client, &err) != MESH_OK) {
        rc = mesh_cli_usage(&cli, "%s", err.msg);
        goto out;
    }
    rc = cmd->run(&cli, a);
    if (fflush(stdout) != 0 && rc == 0)
        rc = mesh_cli_local(&cli, "cannot write to standard output: %s", strerror(errno));
out:
    mesh_client_destroy(cli.client);
    mesh_cli_args_free(a);
    mesh_cli_args_free(top);
    if (set.token)
        explicit_bzero(set.token, strlen(set.token));
    if (cli.flags.token)
        explicit_bzero(cli.flags.token, strlen(cli.flags.token));
    mesh_opts_free(&mesh_cli_settings_spec, &set);
    mesh_opts_free(&mesh_cli_settings_spec, &cli.flags);
    return rc;
}
