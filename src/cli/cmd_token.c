/*
 * cmd_token.c - `meshctl token create|list|revoke` over /v1/tokens.
 *
 * A new token is shown once (the node keeps only a salted hash). `token create` prints it
 * alone on standard output, so `T=$(meshctl token create)` captures exactly the token, and
 * says what it is (id, principal, expiry) on standard error. Tokens are revoked by id, the
 * first 32 hex characters of SHA-256 of the token, which lists show.
 */
#include <stdlib.h>
#include <string.h>

#include "auth/access_req.h"
#include "cli/access_args.h"
#include "cli/cli.h"
#include "cli/secret.h"
#include "core/util.h"

#define NOTE_MAX 120 /* bytes of a token's note (the node's limit) */

static int run_create(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *principal = mesh_cli_arg(a, "principal");
    const char *expires = mesh_cli_arg(a, "expires");
    const char *note = mesh_cli_arg(a, "note");
    int64_t ns;
    if (principal && !mesh_principal_name_ok(principal))
        return mesh_cli_usage(cli, "--principal '%.60s' is not a principal name", principal);
    if (expires && (mesh_duration_parse(expires, &ns) != MESH_OK || ns <= 0))
        return mesh_cli_usage(cli, "--expires %.60s: expected a duration such as 30d, 12h or 90m",
                              expires);
    if (note && strlen(note) > NOTE_MAX)
        return mesh_cli_usage(cli, "--note is at most %d bytes", NOTE_MAX);
    json_t *body = json_object();
    if (principal)
        json_object_set_new(body, "principal", json_string(principal));
    if (expires)
        json_object_set_new(body, "expires_in", json_string(expires));
    if (note)
        json_object_set_new(body, "note", json_string(note));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL)
        return mesh_cli_usage(cli, "--note must be UTF-8 text");
    mesh_client_req_t req = {.method = "POST",
                             .path = "/v1/tokens",
                             .content_type = "application/json",
                             .body = text,
                             .body_len = strlen(text),
                             .secret = true};
    int rc;
    if (strcmp(mesh_cli_format(cli, false), "json") == 0) {
        rc = mesh_cli_raw(cli, &req);
        free(text);
        return rc;
    }
    json_t *j = NULL;
    rc = mesh_cli_call(cli, &req, &j);
    free(text);
    if (rc != 0)
        return rc;
    const char *token = mesh_cli_jstr(j, "token");
    if (token == NULL) {
        json_decref(j);
        return mesh_cli_fail(cli, MESH_INTERNAL, "the answer holds no token");
    }
    if (!cli->quiet) {
        char when[MESH_CLI_TIME_MAX], info[512];
        const char *exp = mesh_cli_jstr(j, "expires");
        const char *n = mesh_cli_jstr(j, "note");
        snprintf(info, sizeof info, "token %s for %s, %s%s%s%s%s", mesh_cli_jstr(j, "id"),
                 mesh_cli_jstr(j, "principal"), exp ? "expires " : "never expires",
                 exp ? mesh_cli_short_time(exp, when) : "", n && *n ? ", note \"" : "",
                 n && *n ? n : "", n && *n ? "\"" : "");
        mesh_cli_clean(info);
        fprintf(stderr,
                "Created %s.\nThe token is on the next line; it is shown this once only: store "
                "it now.\n",
                info);
    }
    printf("%s\n", token);
    mesh_cli_json_wipe(j, "token");
    json_decref(j);
    return 0;
}

/* "active", "expired" or "revoked" for a token answer. */
static const char *token_state(const json_t *t)
{
    if (mesh_cli_jstr(t, "revoked"))
        return "revoked";
    const char *exp = mesh_cli_jstr(t, "expires");
    int64_t ns;
    if (exp && mesh_time_parse(exp, strlen(exp), &ns) == MESH_OK && ns <= mesh_now_ns())
        return "expired";
    return "active";
}

static const mesh_cli_col_t list_cols[] = {
    {"id", "ID", MESH_ALIGN_LEFT, 0},           {"principal", "PRINCIPAL", MESH_ALIGN_LEFT, 0},
    {"state", "STATE", MESH_ALIGN_LEFT, 0},     {"created", "CREATED", MESH_ALIGN_LEFT, 0},
    {"expires", "EXPIRES", MESH_ALIGN_LEFT, 0}, {"note", "NOTE", MESH_ALIGN_LEFT, 40},
};

static int run_list(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *principal = mesh_cli_arg(a, "principal");
    if (principal && !mesh_principal_name_ok(principal))
        return mesh_cli_usage(cli, "--principal '%.60s' is not a principal name", principal);
    mesh_buf_t path;
    int rc = principal ? mesh_cli_path(cli, &path, "/v1/tokens?principal=", principal)
                       : mesh_cli_path(cli, &path, "/v1/tokens", "");
    if (rc != 0)
        return rc;
    mesh_client_req_t req = {.method = "GET", .path = path.data};
    json_t *j;
    mesh_table_t *t;
    bool csv;
    rc = mesh_cli_list(cli, &req, list_cols, MESH_ARRAY_LEN(list_cols), &j, &t, &csv);
    mesh_buf_free(&path);
    if (rc != 0 || j == NULL)
        return rc;
    size_t i;
    json_t *tok;
    json_array_foreach(json_object_get(j, "tokens"), i, tok)
    {
        char c[MESH_CLI_TIME_MAX], e[MESH_CLI_TIME_MAX];
        const char *exp = mesh_cli_jstr(tok, "expires");
        mesh_table_add(t, mesh_cli_jstr(tok, "id"));
        mesh_table_add(t, mesh_cli_jstr(tok, "principal"));
        mesh_table_add(t, token_state(tok));
        mesh_table_add(t, csv ? mesh_cli_jstr(tok, "created")
                              : mesh_cli_short_time(mesh_cli_jstr(tok, "created"), c));
        mesh_table_add(t, csv ? exp : exp ? mesh_cli_short_time(exp, e) : "never");
        mesh_table_add(t, mesh_cli_jstr(tok, "note") ? mesh_cli_jstr(tok, "note") : "");
    }
    if (mesh_table_rows(t) == 0 && !csv && !cli->quiet)
        printf("no tokens\n");
    else
        mesh_cli_emit_table(cli, t, csv ? "csv" : "table");
    mesh_table_destroy(t);
    json_decref(j);
    return 0;
}

static int run_revoke(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *id = mesh_cli_pos(a, 0);
    mesh_err_t err;
    if (mesh_cli_token_id_check(id, &err) != MESH_OK)
        return mesh_cli_usage(cli, "%s", err.msg);
    mesh_buf_t path;
    int rc = mesh_cli_path(cli, &path, "/v1/tokens/", id);
    if (rc != 0)
        return rc;
    mesh_client_req_t req = {.method = "DELETE", .path = path.data};
    rc = mesh_cli_call(cli, &req, NULL);
    mesh_buf_free(&path);
    if (rc == 0 && !cli->quiet)
        printf("revoked token %s: it stops working at once\n", id);
    return rc;
}

static const mesh_cli_opt_t create_opts[] = {
    {"principal", 0, "NAME", 0,
     "Whose token (default: yours). Only administrators make tokens for others."},
    {"expires", 0, "DURATION", 0, "Expire after this long, e.g. 30d or 12h (default: never)."},
    {"note", 0, "TEXT", 0, "What the token is for (at most 120 bytes), shown in lists."},
    {NULL, 0, NULL, 0, NULL},
};

static const mesh_cli_opt_t list_opts[] = {
    {"principal", 0, "NAME", 0,
     "Only this principal's tokens (administrators; others always see only their own)."},
    {NULL, 0, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_token_cmds[] = {
    {
        .name = "token create",
        .usage = "[--principal NAME] [--expires DURATION] [--note TEXT]",
        .summary = "Make an API token (shown once).",
        .text = "Makes a new API token for you or, as an administrator, for another principal\n"
                "(a service, typically). The node keeps only a salted hash: the token is shown\n"
                "this once. It goes alone to standard output, so a script can capture it;\n"
                "what it is (id, principal, expiry) goes to standard error. Give it to\n"
                "meshctl with --token-file, MESH_TOKEN or the config file, or to any HTTP\n"
                "client as 'Authorization: Bearer TOKEN'.",
        .formats = "table|json",
        .format_help = "table (default): the token alone on standard output; json: the node's "
                       "answer, with the token, its id and expiry.",
        .opts = create_opts,
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl token create --principal ingest-bot --expires 90d --note 'gateway 7' "
                    "\\\n    > ingest-bot.token\n"
                    "T=$(meshctl token create --expires 1h -q)",
        .exits = "0  made, and printed\n"
                 "2  a bad duration or note\n"
                 "3  no such principal\n"
                 "4  a token for another principal, and not an administrator\n"
                 "5  the principal is disabled",
        .run = run_create,
    },
    {
        .name = "token list",
        .usage = "[--principal NAME] [OPTIONS]",
        .summary = "List API tokens (never the tokens themselves).",
        .text = "Lists tokens by id: principal, state (active, expired, revoked), creation,\n"
                "expiry and note. Administrators see every token, others their own. Tokens of\n"
                "'meshctl login' have the note 'login'. A token itself is never shown.",
        .formats = "table|json|csv",
        .opts = list_opts,
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl token list\nmeshctl token list --principal ingest-bot",
        .exits = "0  listed\n"
                 "3  no such principal",
        .run = run_list,
    },
    {
        .name = "token revoke",
        .usage = "ID",
        .summary = "Revoke an API token.",
        .text = "Revokes a token by its id (the ID column of 'meshctl token list'): it stops\n"
                "working at once, and cannot be installed again. Your own tokens need no\n"
                "administrator.",
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl token revoke 5f0c2a9e1b7d4c3a8e6f0b1d2c3a4e5f",
        .exits = "0  revoked\n"
                 "2  not a token id (32 hex characters)\n"
                 "3  no such token\n"
                 "4  another principal's token, and not an administrator",
        .run = run_revoke,
    },
    {.name = NULL},
};
