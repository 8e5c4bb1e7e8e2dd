/*
 * cmd_login.c - `meshctl login`, `logout` and `whoami`: a password exchanged for a token
 * (POST /v1/login) that later meshctl calls use, and who that token is (GET /v1/whoami).
 *
 * login writes the token to the login file (secret.h): the file of --token-file,
 * MESH_TOKEN_FILE or token_file when one is given, else $XDG_CONFIG_HOME/meshctl/token
 * (~/.config/meshctl/token). meshctl.c reads that file when no other token is given, so the
 * usual precedence holds: a --token flag, MESH_TOKEN or a token in the config file still
 * win, and login says so. logout revokes the stored token on the server (DELETE
 * /v1/tokens/{id}, one's own token needs no administrator) and removes the file.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/access_req.h"
#include "cli/cli.h"
#include "cli/secret.h"
#include "core/util.h"

typedef enum { REVOKED, WAS_INVALID, NOT_REVOKED } revoke_t;

/* Revokes the stored token on the server (NOT_REVOKED, after a warning unless quiet). */
static revoke_t revoke_stored(mesh_cli_t *cli, const char *token, bool quiet)
{
    mesh_client_t *c = NULL;
    mesh_err_t err;
    mesh_err_clear(&err);
    const mesh_cli_settings_t *s = cli->set;
    mesh_client_tls_t tls = {s->cacert, s->pin, s->cert, s->key};
    if (mesh_client_create(s->url, token, s->timeout, &tls, &c, &err) != MESH_OK) {
        if (!quiet)
            fprintf(stderr, "meshctl: warning: the token was not revoked: %s\n", err.msg);
        return NOT_REVOKED;
    }
    mesh_client_req_t who = {.method = "GET", .path = "/v1/whoami"};
    mesh_client_result_t res;
    bool ok = false;
    char msg[sizeof res.msg] = "";
    if (mesh_client_do(c, &who, &res) == MESH_OK) {
        json_t *j = json_loadb(res.body.data, res.body.len, 0, NULL);
        const char *id = mesh_cli_jstr(j, "token_id");
        mesh_buf_t path;
        mesh_buf_init(&path, 4096);
        if (id && mesh_buf_adds(&path, "/v1/tokens/") == MESH_OK &&
            mesh_client_escape(&path, id) == MESH_OK) {
            mesh_client_req_t del = {.method = "DELETE", .path = path.data};
            mesh_client_result_free(&res);
            ok = mesh_client_do(c, &del, &res) == MESH_OK;
        }
        mesh_buf_free(&path);
        json_decref(j);
    }
    revoke_t r = ok ? REVOKED : NOT_REVOKED;
    if (!ok && res.status == MESH_UNAUTHENTICATED) {
        r = WAS_INVALID; /* expired or revoked already: nothing left to revoke */
    } else if (!ok && !quiet) {
        snprintf(msg, sizeof msg, "%s", res.msg);
        mesh_cli_clean(msg);
        fprintf(stderr,
                "meshctl: warning: the token was not revoked on the server (%s); it stays "
                "valid until it expires\n",
                msg[0] ? msg : "no token id");
    }
    mesh_client_result_free(&res);
    mesh_client_destroy(c);
    return r;
}

/* Reads the password (terminal, stdin or file) and exchanges it for a token: the node's
 * answer into *out (its "token" member is wiped by the caller). Returns 0 or an exit code. */
static int exchange(mesh_cli_t *cli, const mesh_cli_args_t *a, const char *user, const char *ttl,
                    json_t **out)
{
    mesh_cli_pwsrc_t src;
    int rc = mesh_cli_pw_open(cli, a, true, &src);
    if (rc != 0)
        return rc;
    char prompt[256], password[MESH_CLI_PASSWORD_CAP];
    snprintf(prompt, sizeof prompt, "Password for %s at %s: ", user, mesh_client_url(cli->client));
    rc = mesh_cli_pw_read(cli, &src, prompt, "the password", false, password);
    mesh_cli_pw_close(&src);
    if (rc != 0)
        return rc;
    json_t *plain = json_pack("{s:s}", "user", user);
    if (ttl)
        json_object_set_new(plain, "ttl", json_string(ttl));
    mesh_buf_t body;
    rc = mesh_cli_secret_body(cli, plain, "password", password, NULL, NULL, &body);
    explicit_bzero(password, sizeof password);
    json_decref(plain);
    if (rc == 0) {
        mesh_client_req_t req = {.method = "POST",
                                 .path = "/v1/login",
                                 .content_type = "application/json",
                                 .body = body.data,
                                 .body_len = body.len,
                                 .secret = true};
        rc = mesh_cli_call(cli, &req, out);
    }
    mesh_cli_secret_body_free(&body);
    return rc;
}

/* Writes the login file from the node's answer j and says so. ttl_ns: what --ttl asked for
 * (0: nothing). Returns 0 or an exit code. */
static int store(mesh_cli_t *cli, const char *path, const json_t *j, int64_t ttl_ns)
{
    const char *token = mesh_cli_jstr(j, "token");
    const char *principal = mesh_cli_jstr(j, "principal");
    const char *expires = mesh_cli_jstr(j, "expires");
    if (token == NULL || principal == NULL)
        return mesh_cli_fail(cli, MESH_INTERNAL, "the answer from %s holds no token",
                             mesh_client_url(cli->client));
    char when[MESH_CLI_TIME_MAX], note[512], def[4096];
    mesh_cli_short_time(expires, when);
    snprintf(note, sizeof note, "%s at %s, expires %s", principal, mesh_client_url(cli->client),
             when);
    mesh_cli_clean(note);
    bool is_default = mesh_cli_login_default_path(def, sizeof def) && strcmp(def, path) == 0;
    int rc = mesh_cli_login_write(cli, path, is_default, token, note);
    if (rc != 0 || cli->quiet)
        return rc;
    mesh_buf_t roles;
    mesh_buf_init(&roles, 64 * 1024);
    mesh_cli_join(&roles, json_object_get(j, "roles"), ", ");
    char who[256];
    snprintf(who, sizeof who, "%s (roles: %s)", principal, roles.len ? roles.data : "none");
    mesh_cli_clean(who);
    mesh_buf_free(&roles);
    printf("logged in to %s as %s\n", mesh_client_url(cli->client), who);
    int64_t exp_ns;
    bool capped = ttl_ns && expires &&
                  mesh_time_parse(expires, strlen(expires), &exp_ns) == MESH_OK &&
                  exp_ns + 60 * MESH_NS_PER_SEC < mesh_now_ns() + ttl_ns;
    printf("token stored in %s (mode 0600); it expires %s%s\n", path, when,
           capped ? " (sooner than --ttl: the node's login_ttl is shorter)" : "");
    return 0;
}

static int run_login(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *user = mesh_cli_arg(a, "user");
    if (user == NULL || *user == '\0')
        user = getenv("USER");
    if (user == NULL || *user == '\0')
        user = getenv("LOGNAME");
    if (user == NULL || *user == '\0')
        return mesh_cli_usage(cli, "no user name: give --user NAME");
    if (!mesh_principal_name_ok(user))
        return mesh_cli_usage(cli,
                              "'%.60s' is not a user name (1-63 letters, digits and _ . @ -, "
                              "starting with a letter or digit)",
                              user);
    const char *ttl = mesh_cli_arg(a, "ttl");
    int64_t ttl_ns = 0;
    if (ttl && (mesh_duration_parse(ttl, &ttl_ns) != MESH_OK || ttl_ns <= 0))
        return mesh_cli_usage(cli, "--ttl %.60s: expected a duration such as 1h, 30m or 7d", ttl);
    const char *path = cli->set->token_file;
    if (path == NULL)
        return mesh_cli_usage(cli, "nowhere to store the token: give --token-file FILE (or set "
                                   "HOME or XDG_CONFIG_HOME)");
    /* a token file written by hand (a service's token) is never replaced; the token of an
     * earlier login is revoked once the new one is stored */
    mesh_cli_login_state_t state;
    char *old = NULL;
    int rc = mesh_cli_login_inspect(cli, path, &state, &old);
    if (rc != 0)
        return rc;
    if (state == MESH_CLI_LOGIN_FOREIGN)
        return mesh_cli_local(cli,
                              "%s holds a token that 'meshctl login' did not write: not replacing "
                              "it (remove it, or give another --token-file)",
                              path);
    json_t *j = NULL;
    rc = exchange(cli, a, user, ttl, &j);
    if (rc == 0)
        rc = store(cli, path, j, ttl_ns);
    const char *token = mesh_cli_jstr(j, "token");
    if (rc == 0 && old && token && strcmp(old, token) != 0)
        (void)revoke_stored(cli, old, true);
    if (rc == 0 && cli->token_origin)
        fprintf(stderr,
                "meshctl: note: %s is set and takes precedence over the login file: unset it "
                "for later commands to use this login\n",
                cli->token_origin);
    if (old) {
        explicit_bzero(old, strlen(old));
        free(old);
    }
    mesh_cli_json_wipe(j, "token");
    json_decref(j);
    return rc;
}

static int run_logout(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    (void)a;
    const char *path = cli->set->token_file;
    if (path == NULL)
        return mesh_cli_usage(cli, "no login file: give --token-file FILE (or set HOME or "
                                   "XDG_CONFIG_HOME)");
    mesh_cli_login_state_t state;
    char *token = NULL;
    int rc = mesh_cli_login_inspect(cli, path, &state, &token);
    if (rc != 0)
        return rc;
    if (state == MESH_CLI_LOGIN_NONE) {
        if (!cli->quiet)
            printf("not logged in (there is no %s)\n", path);
        return 0;
    }
    if (state == MESH_CLI_LOGIN_FOREIGN)
        return mesh_cli_local(cli,
                              "%s was not written by 'meshctl login': not removing it (remove it "
                              "yourself if that is what you want)",
                              path);
    revoke_t r = token ? revoke_stored(cli, token, false) : WAS_INVALID;
    if (token) {
        explicit_bzero(token, strlen(token));
        free(token);
    }
    if (unlink(path) != 0)
        return mesh_cli_local(cli, "cannot remove %s: %s", path, strerror(errno));
    if (!cli->quiet)
        printf("logged out: %sremoved %s\n",
               r == REVOKED       ? "revoked the token and "
               : r == WAS_INVALID ? "the token had expired or been revoked; "
                                  : "",
               path);
    return 0;
}

static int run_whoami(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    (void)a;
    mesh_client_req_t req = {.method = "GET", .path = "/v1/whoami"};
    if (strcmp(mesh_cli_format(cli, false), "json") == 0)
        return mesh_cli_raw(cli, &req);
    json_t *j;
    int rc = mesh_cli_call(cli, &req, &j);
    if (rc != 0)
        return rc;
    mesh_table_t *t = mesh_table_create(2);
    mesh_buf_t roles;
    mesh_buf_init(&roles, 64 * 1024);
    if (t == NULL) {
        json_decref(j);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    mesh_cli_join(&roles, json_object_get(j, "roles"), ", ");
    mesh_table_add(t, "principal");
    mesh_table_add(t, mesh_cli_jstr(j, "principal"));
    mesh_table_add(t, "roles");
    mesh_table_add(t, roles.len ? roles.data : "none");
    mesh_table_add(t, "token id");
    mesh_table_add(t, mesh_cli_jstr(j, "token_id"));
    mesh_table_add(t, "token from");
    if (cli->token_path)
        mesh_table_addf(t, "%s %s%s", cli->token_origin, cli->token_path,
                        cli->token_is_login ? " (meshctl login)" : "");
    else
        mesh_table_add(t, cli->token_origin);
    mesh_table_add(t, "url");
    mesh_table_add(t, mesh_client_url(cli->client));
    mesh_table_add(t, "policy version");
    mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(j, "policy_version"));
    mesh_table_print_kv(t, stdout);
    mesh_table_destroy(t);
    mesh_buf_free(&roles);
    json_decref(j);
    return 0;
}

static const mesh_cli_opt_t login_opts[] = {
    {"user", 0, "NAME", 0, "The user to log in as (default: $USER)."},
    {"ttl", 0, "DURATION", 0,
     "How long the token lives, e.g. 1h or 8h (at most the node's login_ttl, which is also "
     "the default)."},
    {MESH_CLI_OPT_PASSWORD_STDIN, 0, NULL, 0,
     "Read the password from the first line of standard input."},
    {MESH_CLI_OPT_PASSWORD_FILE, 0, "FILE", 0, "Read the password from the first line of FILE."},
    {NULL, 0, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_login_cmds[] = {
    {
        .name = "login",
        .usage = "[--user NAME] [--ttl DURATION] [--password-stdin | --password-file FILE]",
        .summary = "Log in with a password; later commands use the token.",
        .text = "Exchanges a user's password for a token (POST /v1/login) and stores the token\n"
                "in the login file, mode 0600: the --token-file / MESH_TOKEN_FILE / token_file\n"
                "when one is set, else $XDG_CONFIG_HOME/meshctl/token (or\n"
                "~/.config/meshctl/token). Later commands use that file when no --token,\n"
                "MESH_TOKEN or config file token is given. The token expires after --ttl (at\n"
                "most the node's login_ttl); 'meshctl logout' revokes it and removes the file.\n"
                "\n"
                "The password is typed at the terminal (not shown), or read from standard input\n"
                "or a file; it is never an argument, so it never shows in the process list.\n"
                "The password and the token are never printed. A token file that login did not\n"
                "write (a service's token) is never replaced.\n"
                "\n"
                "Wrong passwords are the same answer for an unknown user; after repeated\n"
                "failures the node holds the user (and the address) back for a while: the\n"
                "error says how long.",
        .opts = login_opts,
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl login --user ana\n"
                    "meshctl login --user ana --ttl 8h\n"
                    "pass show meshd/ana | meshctl login --user ana --password-stdin\n"
                    "meshctl --token-file ~/.meshd-site-b login --user ana   # one file per node",
        .exits = "0  logged in, the token is stored\n"
                 "1  the login file cannot be written, or is a token file login did not write\n"
                 "2  no password, or a bad option\n"
                 "4  wrong user name or password, or the node's TLS certificate was refused\n"
                 "   (the password is not sent then)\n"
                 "7  held back after repeated failures (retry later), or meshd cannot be reached",
        .flags = MESH_CLI_OWN_TOKEN,
        .run = run_login,
    },
    {
        .name = "logout",
        .usage = "",
        .summary = "Revoke the stored login token and remove it.",
        .text = "Revokes the token 'meshctl login' stored (on the node, so a copy of it stops\n"
                "working too) and removes the login file. Without a login file it says so and\n"
                "succeeds. A token file that login did not write is left alone. When the node\n"
                "cannot be reached, the file is still removed and a warning says the token stays\n"
                "valid until it expires.",
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl logout",
        .exits = "0  logged out (or not logged in)\n"
                 "1  the file cannot be read or removed, or login did not write it",
        .flags = MESH_CLI_OWN_TOKEN,
        .run = run_logout,
    },
    {
        .name = "whoami",
        .usage = "[OPTIONS]",
        .summary = "Show who the token belongs to.",
        .text = "Shows the principal the token belongs to (GET /v1/whoami), its roles, the\n"
                "token's id, where meshctl took the token from (flag, environment, config file\n"
                "or the login file), the URL and the node's policy version.",
        .formats = "table|json",
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl whoami\nmeshctl whoami --format json",
        .exits = "0  shown\n"
                 "4  the token is missing, wrong, expired or revoked",
        .run = run_whoami,
    },
    {.name = NULL},
};
