/*
 * cmd_user.c - `meshctl user create|list|show|passwd|roles|disable|enable|delete` over
 * /v1/principals: the people (kind user) and programs (kind service) that hold roles.
 *
 * Passwords come from standard input, a file or the terminal (secret.h), never from argv.
 * `user passwd` of oneself also asks the current password, which the node checks unless the
 * caller is an administrator; it is not asked for a principal that has no password yet.
 */
#include <stdlib.h>
#include <string.h>

#include "auth/access_req.h"
#include "cli/access_args.h"
#include "cli/cli.h"
#include "cli/secret.h"
#include "core/util.h"

static int check_name(mesh_cli_t *cli, const char *name)
{
    if (mesh_principal_name_ok(name))
        return 0;
    return mesh_cli_usage(cli,
                          "'%.60s' is not a user name (1-63 letters, digits and _ . @ -, starting "
                          "with a letter or digit)",
                          name);
}

/* A JSON array of the names of a checked list. */
static json_t *names_json(const mesh_cli_names_t *n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n->n; i++)
        json_array_append_new(a, json_string(n->name[i]));
    return a;
}

/* PUT /v1/principals/NAME with body; the answer into *out (may be NULL). */
static int put_principal(mesh_cli_t *cli, const char *name, const json_t *body, json_t **out)
{
    mesh_buf_t path;
    int rc = mesh_cli_path(cli, &path, "/v1/principals/", name);
    if (rc != 0)
        return rc;
    rc = mesh_cli_send_json(cli, "PUT", path.data, body, out);
    mesh_buf_free(&path);
    return rc;
}

static int run_create(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *name = mesh_cli_pos(a, 0);
    int rc = check_name(cli, name);
    if (rc != 0)
        return rc;
    mesh_cli_names_t roles;
    mesh_err_t err;
    const char *rl = mesh_cli_arg(a, "roles");
    if (rl && mesh_cli_roles_parse(rl, "--roles", false, true, &roles, &err) != MESH_OK)
        return mesh_cli_usage(cli, "%s", err.msg);
    bool service = mesh_cli_flag(a, "service");
    mesh_cli_pwsrc_t src;
    if ((rc = mesh_cli_pw_open(cli, a, false, &src)) != 0)
        return rc;
    char password[MESH_CLI_PASSWORD_CAP] = "";
    if (src.kind != MESH_CLI_PW_NONE)
        rc = mesh_cli_pw_read(cli, &src, "Password: ", "the password", true, password);
    mesh_cli_pw_close(&src);
    if (rc != 0)
        return rc;
    json_t *plain = json_pack("{s:s,s:s}", "name", name, "kind", service ? "service" : "user");
    json_object_set_new(plain, "roles", rl ? names_json(&roles) : json_array());
    mesh_buf_t body;
    bool has_pw = password[0] != '\0';
    rc = has_pw ? mesh_cli_secret_body(cli, plain, "password", password, NULL, NULL, &body)
                : mesh_cli_secret_body(cli, plain, NULL, NULL, NULL, NULL, &body);
    explicit_bzero(password, sizeof password);
    json_decref(plain);
    if (rc == 0) {
        mesh_client_req_t req = {.method = "POST",
                                 .path = "/v1/principals",
                                 .content_type = "application/json",
                                 .body = body.data,
                                 .body_len = body.len};
        rc = mesh_cli_call(cli, &req, NULL);
    }
    mesh_cli_secret_body_free(&body);
    if (rc != 0 || cli->quiet)
        return rc;
    printf("created %s %s (roles: ", service ? "service" : "user", name);
    for (size_t i = 0; rl && i < roles.n; i++)
        printf("%s%s", i ? ", " : "", roles.name[i]);
    printf("%s; %s)\n", rl && roles.n ? "" : "none", has_pw ? "password set" : "no password");
    if (!has_pw && service)
        printf("make it a token with: meshctl token create --principal %s\n", name);
    else if (!has_pw)
        printf("set a password with: meshctl user passwd %s (or make a token with: meshctl "
               "token create --principal %s)\n",
               name, name);
    return 0;
}

static const mesh_cli_col_t list_cols[] = {
    {"name", "NAME", MESH_ALIGN_LEFT, 0},         {"kind", "KIND", MESH_ALIGN_LEFT, 0},
    {"roles", "ROLES", MESH_ALIGN_LEFT, 50},      {"password", "PASSWORD", MESH_ALIGN_LEFT, 0},
    {"disabled", "DISABLED", MESH_ALIGN_LEFT, 0}, {"created", "CREATED", MESH_ALIGN_LEFT, 0},
};

static int run_list(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    (void)a;
    mesh_client_req_t req = {.method = "GET", .path = "/v1/principals"};
    json_t *j;
    mesh_table_t *t;
    bool csv;
    int rc = mesh_cli_list(cli, &req, list_cols, MESH_ARRAY_LEN(list_cols), &j, &t, &csv);
    if (rc != 0 || j == NULL)
        return rc;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(j, "principals"), i, p)
    {
        mesh_buf_t roles;
        mesh_buf_init(&roles, 64 * 1024);
        mesh_cli_join(&roles, json_object_get(p, "roles"), csv ? ";" : ", ");
        char when[MESH_CLI_TIME_MAX];
        mesh_table_add(t, mesh_cli_jstr(p, "name"));
        mesh_table_add(t, mesh_cli_jstr(p, "kind"));
        mesh_table_add(t, roles.data);
        mesh_table_add(t, json_is_true(json_object_get(p, "password")) ? "yes" : "no");
        mesh_table_add(t, json_is_true(json_object_get(p, "disabled")) ? "yes" : "no");
        mesh_table_add(t, csv ? mesh_cli_jstr(p, "created")
                              : mesh_cli_short_time(mesh_cli_jstr(p, "created"), when));
        mesh_buf_free(&roles);
    }
    mesh_cli_emit_table(cli, t, csv ? "csv" : "table");
    mesh_table_destroy(t);
    json_decref(j);
    return 0;
}

/* Prints a principal's answer as key/value lines. */
static void print_principal(const json_t *p)
{
    mesh_table_t *t = mesh_table_create(2);
    if (t == NULL)
        return;
    mesh_buf_t roles;
    mesh_buf_init(&roles, 64 * 1024);
    mesh_cli_join(&roles, json_object_get(p, "roles"), ", ");
    char when[MESH_CLI_TIME_MAX];
    mesh_table_add(t, "name");
    mesh_table_add(t, mesh_cli_jstr(p, "name"));
    mesh_table_add(t, "kind");
    mesh_table_add(t, mesh_cli_jstr(p, "kind"));
    mesh_table_add(t, "roles");
    mesh_table_add(t, roles.len ? roles.data : "none");
    mesh_table_add(t, "password");
    mesh_table_add(t, json_is_true(json_object_get(p, "password")) ? "set" : "none");
    mesh_table_add(t, "disabled");
    mesh_table_add(t, json_is_true(json_object_get(p, "disabled")) ? "yes" : "no");
    mesh_table_add(t, "created");
    mesh_table_add(t, mesh_cli_short_time(mesh_cli_jstr(p, "created"), when));
    mesh_table_print_kv(t, stdout);
    mesh_table_destroy(t);
    mesh_buf_free(&roles);
}

static int run_show(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *name = mesh_cli_pos(a, 0);
    int rc = check_name(cli, name);
    if (rc != 0)
        return rc;
    mesh_buf_t path;
    if ((rc = mesh_cli_path(cli, &path, "/v1/principals/", name)) != 0)
        return rc;
    mesh_client_req_t req = {.method = "GET", .path = path.data};
    json_t *j = NULL;
    rc = mesh_cli_get(cli, &req, &j);
    mesh_buf_free(&path);
    if (rc == 0 && j)
        print_principal(j);
    json_decref(j);
    return rc;
}

/* Whether name is the caller, and whether that principal has a password now. */
static int self_check(mesh_cli_t *cli, const char *name, bool *self, bool *has_password)
{
    *self = *has_password = false;
    json_t *who;
    mesh_client_req_t req = {.method = "GET", .path = "/v1/whoami"};
    int rc = mesh_cli_call(cli, &req, &who);
    if (rc != 0)
        return rc;
    const char *me = mesh_cli_jstr(who, "principal");
    *self = me && strcmp(me, name) == 0;
    json_decref(who);
    if (!*self)
        return 0;
    mesh_buf_t path;
    if ((rc = mesh_cli_path(cli, &path, "/v1/principals/", name)) != 0)
        return rc;
    json_t *p;
    mesh_client_req_t get = {.method = "GET", .path = path.data};
    rc = mesh_cli_call(cli, &get, &p);
    mesh_buf_free(&path);
    if (rc == 0)
        *has_password = json_is_true(json_object_get(p, "password"));
    json_decref(p);
    return rc;
}

static int run_passwd(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *name = mesh_cli_pos(a, 0);
    int rc = check_name(cli, name);
    if (rc != 0)
        return rc;
    mesh_cli_pwsrc_t src;
    if ((rc = mesh_cli_pw_open(cli, a, true, &src)) != 0)
        return rc;
    bool self, has_password;
    if ((rc = self_check(cli, name, &self, &has_password)) != 0) {
        mesh_cli_pw_close(&src);
        return rc;
    }
    char cur[MESH_CLI_PASSWORD_CAP] = "", pw[MESH_CLI_PASSWORD_CAP] = "", prompt[128];
    bool ask_current = self && has_password;
    if (ask_current)
        rc = mesh_cli_pw_read(cli, &src, "Current password: ", "the current password", false, cur);
    snprintf(prompt, sizeof prompt, "New password for %s: ", name);
    if (rc == 0)
        rc = mesh_cli_pw_read(cli, &src, prompt, "the new password", true, pw);
    mesh_cli_pw_close(&src);
    mesh_buf_t body;
    mesh_buf_init(&body, 0);
    if (rc == 0) {
        json_t *plain = json_object();
        rc = mesh_cli_secret_body(cli, plain, "password", pw,
                                  ask_current ? "current_password" : NULL, cur, &body);
        json_decref(plain);
    }
    explicit_bzero(cur, sizeof cur);
    explicit_bzero(pw, sizeof pw);
    mesh_buf_t path;
    if (rc == 0 && (rc = mesh_cli_path(cli, &path, "/v1/principals/", name)) == 0) {
        mesh_client_req_t req = {.method = "PUT",
                                 .path = path.data,
                                 .content_type = "application/json",
                                 .body = body.data,
                                 .body_len = body.len};
        rc = mesh_cli_call(cli, &req, NULL);
        mesh_buf_free(&path);
    }
    mesh_cli_secret_body_free(&body);
    if (rc == 0 && !cli->quiet)
        printf("changed the password of %s\n", name);
    return rc;
}

static int run_roles(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *name = mesh_cli_pos(a, 0);
    int rc = check_name(cli, name);
    if (rc != 0)
        return rc;
    mesh_cli_names_t roles;
    mesh_err_t err;
    if (mesh_cli_roles_parse(mesh_cli_pos(a, 1), "roles", false, true, &roles, &err) != MESH_OK)
        return mesh_cli_usage(cli, "%s", err.msg);
    json_t *body = json_object(), *j = NULL;
    json_object_set_new(body, "roles", names_json(&roles));
    rc = put_principal(cli, name, body, &j);
    json_decref(body);
    if (rc == 0 && !cli->quiet) {
        mesh_buf_t b;
        mesh_buf_init(&b, 64 * 1024);
        mesh_cli_join(&b, json_object_get(j, "roles"), ", ");
        printf("%s now has the roles: %s\n", name, b.len ? b.data : "none");
        mesh_buf_free(&b);
    }
    json_decref(j);
    return rc;
}

static int set_disabled(mesh_cli_t *cli, const mesh_cli_args_t *a, bool disabled)
{
    const char *name = mesh_cli_pos(a, 0);
    int rc = check_name(cli, name);
    if (rc != 0)
        return rc;
    json_t *body = json_pack("{s:b}", "disabled", disabled);
    rc = put_principal(cli, name, body, NULL);
    json_decref(body);
    if (rc == 0 && !cli->quiet)
        printf(disabled ? "disabled %s: its tokens and password stop working at once\n"
                        : "enabled %s\n",
               name);
    return rc;
}

static int run_disable(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    return set_disabled(cli, a, true);
}

static int run_enable(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    return set_disabled(cli, a, false);
}

static int run_delete(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *name = mesh_cli_pos(a, 0);
    int rc = check_name(cli, name);
    if (rc != 0)
        return rc;
    mesh_buf_t path;
    if ((rc = mesh_cli_path(cli, &path, "/v1/principals/", name)) != 0)
        return rc;
    mesh_client_req_t req = {.method = "DELETE", .path = path.data};
    rc = mesh_cli_call(cli, &req, NULL);
    mesh_buf_free(&path);
    if (rc == 0 && !cli->quiet)
        printf("deleted %s and its tokens\n", name);
    return rc;
}

#define PASSWORD_OPTS(stdin_help, file_help)                                                       \
    {MESH_CLI_OPT_PASSWORD_STDIN, 0, NULL, 0, stdin_help},                                         \
    {                                                                                              \
        MESH_CLI_OPT_PASSWORD_FILE, 0, "FILE", 0, file_help                                        \
    }

static const mesh_cli_opt_t create_opts[] = {
    {"roles", 0, "ROLE[,ROLE...]", 0,
     "Its roles: built-in (admin, writer, reader, auditor) or made with 'meshctl role create'."},
    {"service", 0, NULL, 0, "A service (a program) rather than a person: usually no password."},
    PASSWORD_OPTS("Read its password from the first line of standard input.",
                  "Read its password from the first line of FILE."),
    {NULL, 0, NULL, 0, NULL},
};

static const mesh_cli_opt_t passwd_opts[] = {
    PASSWORD_OPTS("Read the passwords from standard input: the new one on the first line; when "
                  "changing your own, the current one first and the new one on the second line.",
                  "Read the passwords from FILE, in the same lines as --password-stdin."),
    {NULL, 0, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_user_cmds[] = {
    {
        .name = "user create",
        .usage = "NAME [--roles ROLE,...] [--service] [--password-stdin | --password-file FILE]",
        .summary = "Create a user or service principal.",
        .text = "Creates a principal: a user (a person, who may log in with a password) or,\n"
                "with --service, a service (a program, which uses a token). A name is 1-63\n"
                "letters, digits and _ . @ -, starting with a letter or digit.\n"
                "\n"
                "A password is only set when --password-stdin or --password-file is given;\n"
                "it needs at least 8 characters and is never an argument. Without a password\n"
                "the principal authenticates with tokens ('meshctl token create --principal').",
        .opts = create_opts,
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl user create nina --roles ward-a\n"
                    "pass show meshd/nina | meshctl user create nina --roles ward-a "
                    "--password-stdin\n"
                    "meshctl user create ingest-bot --service --roles writer",
        .exits = "0  created\n"
                 "2  a bad name, role list or password, or a role that does not exist\n"
                 "4  the token may not administer principals\n"
                 "5  the name is taken",
        .run = run_create,
    },
    {
        .name = "user list",
        .usage = "[OPTIONS]",
        .summary = "List users and services.",
        .text = "Lists every principal with its kind, roles, whether it has a password, whether\n"
                "it is disabled, and when it was made. Administrators only.",
        .formats = "table|json|csv",
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl user list\nmeshctl user list --format csv",
        .exits = "0  listed\n"
                 "4  the token may not administer principals",
        .run = run_list,
    },
    {
        .name = "user show",
        .usage = "NAME [OPTIONS]",
        .summary = "Show a user or service.",
        .text = "Shows a principal: kind, roles, password (set or none), disabled, created.\n"
                "Anyone may show themselves; others need an administrator.",
        .formats = "table|json",
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl user show nina",
        .exits = "0  shown\n"
                 "3  no such principal\n"
                 "4  not yourself, and not an administrator",
        .run = run_show,
    },
    {
        .name = "user passwd",
        .usage = "NAME [--password-stdin | --password-file FILE]",
        .summary = "Set or change a password.",
        .text = "Sets a principal's password. At a terminal the new password is asked twice,\n"
                "without echo. Changing your own password also asks the current one (when you\n"
                "have one), which the node checks unless you are an administrator; anyone may\n"
                "change their own password, administrators anyone's. Existing tokens stay\n"
                "valid.\n"
                "\n"
                "From standard input or a file: the new password on the first line; for your\n"
                "own, the current password on the first line and the new one on the second.",
        .opts = passwd_opts,
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl user passwd nina\n"
                    "printf '%s\\n' \"$NEW\" | meshctl user passwd nina --password-stdin\n"
                    "printf '%s\\n%s\\n' \"$OLD\" \"$NEW\" | meshctl user passwd me "
                    "--password-stdin",
        .exits = "0  changed\n"
                 "2  a bad password (too short, too long, empty), or the two typed differ\n"
                 "3  no such principal\n"
                 "4  the current password is wrong, or not yourself and not an administrator",
        .run = run_passwd,
    },
    {
        .name = "user roles",
        .usage = "NAME ROLE[,ROLE...]",
        .summary = "Set the roles of a user or service.",
        .text = "Replaces a principal's roles with the given list ('' for none). The change\n"
                "applies to its next request, also with tokens it already holds.",
        .min_args = 2,
        .max_args = 2,
        .examples = "meshctl user roles nina ward-a,ward-b\nmeshctl user roles nina ''",
        .exits = "0  set\n"
                 "2  a bad role list, or a role that does not exist\n"
                 "3  no such principal\n"
                 "4  the token may not administer principals",
        .run = run_roles,
    },
    {
        .name = "user disable",
        .usage = "NAME",
        .summary = "Disable a user or service.",
        .text = "Disables a principal: its password and all its tokens stop working at once,\n"
                "until 'meshctl user enable'. You cannot disable yourself.",
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl user disable nina",
        .exits = "0  disabled\n"
                 "3  no such principal\n"
                 "4  the token may not administer principals\n"
                 "5  that is yourself",
        .run = run_disable,
    },
    {
        .name = "user enable",
        .usage = "NAME",
        .summary = "Enable a disabled user or service.",
        .text = "Enables a disabled principal again: its password and its tokens that have not\n"
                "expired or been revoked work again.",
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl user enable nina",
        .exits = "0  enabled\n"
                 "3  no such principal\n"
                 "4  the token may not administer principals",
        .run = run_enable,
    },
    {
        .name = "user delete",
        .usage = "NAME",
        .summary = "Delete a user or service and its tokens.",
        .text = "Deletes a principal and all its tokens. You cannot delete yourself.",
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl user delete nina",
        .exits = "0  deleted\n"
                 "3  no such principal\n"
                 "4  the token may not administer principals\n"
                 "5  that is yourself",
        .run = run_delete,
    },
    {.name = NULL},
};
