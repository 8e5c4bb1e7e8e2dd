/*
 * cmd_domain.c - `meshctl domain create|list|show|delete` over /v1/domains.
 */
#include <string.h>

#include "cli/cli.h"
#include "core/util.h"

/* "/v1/domains/NAME" plus an optional query. */
static int domain_path(mesh_cli_t *cli, mesh_buf_t *b, const char *name, const char *query)
{
    mesh_buf_init(b, 4096);
    if (mesh_buf_adds(b, "/v1/domains/") != MESH_OK || mesh_client_escape(b, name) != MESH_OK ||
        (query && mesh_buf_adds(b, query) != MESH_OK)) {
        mesh_buf_free(b);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    return 0;
}

static int run_create(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *name = mesh_cli_pos(a, 0);
    int rc = mesh_cli_domain_name(cli, name);
    if (rc != 0)
        return rc;
    json_t *body = json_object(), *owners = json_array();
    json_object_set_new(body, "name", json_string(name));
    const char *desc = mesh_cli_arg(a, "description");
    if (desc)
        json_object_set_new(body, "description", json_string(desc));
    const char *o;
    for (size_t i = 0; (o = mesh_cli_arg_at(a, "owner", i)) != NULL; i++)
        json_array_append_new(owners, json_string(o));
    json_object_set_new(body, "owners", owners);
    const char *hosts = mesh_cli_arg(a, "hosts"), *repl = mesh_cli_arg(a, "replication");
    if (hosts) {
        json_t *hv = json_array();
        for (const char *p = hosts; *p;) {
            size_t n = strcspn(p, ",");
            if (n)
                json_array_append_new(hv, json_stringn(p, n));
            p += n + (p[n] == ',');
        }
        json_object_set_new(body, "hosts", hv);
        if (repl == NULL)
            repl = "sync";
    }
    if (repl)
        json_object_set_new(body, "replication", json_string(repl));
    if (mesh_cli_arg(a, "residency"))
        json_object_set_new(body, "residency", json_string(mesh_cli_arg(a, "residency")));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL) /* jansson refuses text that is not UTF-8 */
        return mesh_cli_usage(cli, "the description and owners must be UTF-8 text");
    mesh_client_req_t req = {.method = "POST",
                             .path = "/v1/domains",
                             .content_type = "application/json",
                             .body = text,
                             .body_len = strlen(text)};
    rc = mesh_cli_call(cli, &req, NULL);
    free(text);
    if (rc == 0 && !cli->quiet)
        printf("created domain %s\n", name);
    return rc;
}

/* meshctl domain update NAME [--hosts ...] [--replication ...]: PUT /v1/domains/NAME */
static int run_update(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *name = mesh_cli_pos(a, 0);
    int rc = mesh_cli_domain_name(cli, name);
    if (rc != 0)
        return rc;
    const char *hosts = mesh_cli_arg(a, "hosts"), *repl = mesh_cli_arg(a, "replication");
    if (hosts == NULL && repl == NULL)
        return mesh_cli_usage(cli, "give --hosts, --replication or both");
    json_t *body = json_object();
    if (hosts) {
        json_t *hv = json_array();
        for (const char *p = hosts; *p;) {
            size_t n = strcspn(p, ",");
            if (n)
                json_array_append_new(hv, json_stringn(p, n));
            p += n + (p[n] == ',');
        }
        json_object_set_new(body, "hosts", hv);
    }
    if (repl)
        json_object_set_new(body, "replication", json_string(repl));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL)
        return mesh_cli_usage(cli, "hosts and the mode must be UTF-8 text");
    mesh_buf_t path;
    mesh_buf_init(&path, 4096);
    if ((rc = mesh_cli_path(cli, &path, "/v1/domains/", name)) != 0) {
        free(text);
        mesh_buf_free(&path);
        return rc;
    }
    mesh_client_req_t req = {.method = "PUT",
                             .path = path.data,
                             .content_type = "application/json",
                             .body = text,
                             .body_len = strlen(text)};
    rc = mesh_cli_call(cli, &req, NULL);
    free(text);
    mesh_buf_free(&path);
    if (rc == 0 && !cli->quiet)
        printf("updated domain %s\n", name);
    return rc;
}

static const mesh_cli_col_t list_cols[] = {
    {"name", "NAME", MESH_ALIGN_LEFT, 0},      {"products", "PRODUCTS", MESH_ALIGN_RIGHT, 0},
    {"rows", "ROWS", MESH_ALIGN_RIGHT, 0},     {"storage_bytes", "STORAGE", MESH_ALIGN_RIGHT, 0},
    {"owners", "OWNERS", MESH_ALIGN_LEFT, 40}, {"description", "DESCRIPTION", MESH_ALIGN_LEFT, 50},
};

static int run_list(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    (void)a;
    mesh_client_req_t req = {.method = "GET", .path = "/v1/domains"};
    json_t *j;
    mesh_table_t *t;
    bool csv;
    int rc = mesh_cli_list(cli, &req, list_cols, MESH_ARRAY_LEN(list_cols), &j, &t, &csv);
    if (rc != 0 || j == NULL)
        return rc;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(j, "domains"), i, d)
    {
        char tmp[32];
        mesh_buf_t owners;
        mesh_buf_init(&owners, 64 * 1024);
        size_t k;
        json_t *o;
        json_array_foreach(json_object_get(d, "owners"), k, o)
        {
            if (k)
                mesh_buf_adds(&owners, csv ? ";" : ", ");
            mesh_buf_adds(&owners, json_string_value(o) ? json_string_value(o) : "");
        }
        int64_t bytes = mesh_cli_jint(d, "storage_bytes");
        mesh_table_add(t, mesh_cli_jstr(d, "name"));
        mesh_table_addf(t, "%zu", json_array_size(json_object_get(d, "products")));
        mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(d, "rows"));
        if (csv)
            mesh_table_addf(t, "%lld", (long long)bytes);
        else
            mesh_table_add(t, mesh_cli_bytes(bytes, tmp, sizeof tmp));
        mesh_table_add(t, owners.data ? owners.data : "");
        mesh_table_add(t, mesh_cli_jstr(d, "description") ? mesh_cli_jstr(d, "description") : "");
        mesh_buf_free(&owners);
    }
    mesh_cli_emit_table(cli, t, csv ? "csv" : "table");
    mesh_table_destroy(t);
    json_decref(j);
    return 0;
}

static int run_show(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *name = mesh_cli_pos(a, 0);
    int rc = mesh_cli_domain_name(cli, name);
    if (rc != 0)
        return rc;
    mesh_buf_t path;
    if ((rc = domain_path(cli, &path, name, NULL)) != 0)
        return rc;
    mesh_client_req_t req = {.method = "GET", .path = path.data};
    json_t *j = NULL;
    rc = mesh_cli_get(cli, &req, &j);
    mesh_buf_free(&path);
    if (rc != 0 || j == NULL)
        return rc;
    mesh_table_t *kv = mesh_table_create(2);
    mesh_table_t *t = mesh_table_create(4);
    if (kv == NULL || t == NULL) {
        mesh_table_destroy(kv);
        mesh_table_destroy(t);
        json_decref(j);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    char tmp[32], when[MESH_CLI_TIME_MAX];
    mesh_buf_t owners;
    mesh_buf_init(&owners, 64 * 1024);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "owners"), i, v)
    {
        if (i)
            mesh_buf_adds(&owners, ", ");
        mesh_buf_adds(&owners, json_string_value(v) ? json_string_value(v) : "");
    }
    mesh_table_add(kv, "domain");
    mesh_table_add(kv, mesh_cli_jstr(j, "name"));
    mesh_table_add(kv, "description");
    mesh_table_add(kv, mesh_cli_jstr(j, "description"));
    mesh_table_add(kv, "owners");
    mesh_table_add(kv, owners.len ? owners.data : NULL);
    mesh_table_add(kv, "created");
    mesh_table_add(kv, mesh_cli_short_time(mesh_cli_jstr(j, "created"), when));
    mesh_table_add(kv, "rows");
    mesh_table_addf(kv, "%lld", (long long)mesh_cli_jint(j, "rows"));
    mesh_table_add(kv, "storage");
    mesh_table_add(kv, mesh_cli_bytes(mesh_cli_jint(j, "storage_bytes"), tmp, sizeof tmp));
    mesh_table_add(kv, "log seq");
    mesh_table_addf(kv, "%lld", (long long)mesh_cli_jint(j, "log_seq"));
    mesh_table_add(kv, "replication");
    mesh_table_add(kv, mesh_cli_jstr(j, "replication"));
    mesh_table_add(kv, "residency");
    mesh_table_add(kv, mesh_cli_jstr(j, "residency"));
    mesh_table_print_kv(kv, stdout);
    mesh_buf_free(&owners);

    json_t *prods = json_object_get(j, "products");
    if (json_array_size(prods)) {
        mesh_table_column(t, 0, "PRODUCT", MESH_ALIGN_LEFT, 0);
        mesh_table_column(t, 1, "CONTRACT", MESH_ALIGN_LEFT, 60);
        mesh_table_column(t, 2, "VERSION", MESH_ALIGN_LEFT, 0);
        mesh_table_column(t, 3, "ROWS", MESH_ALIGN_RIGHT, 0);
        json_array_foreach(prods, i, v)
        {
            mesh_table_addf(t, "%s.%s", mesh_cli_jstr(j, "name"), mesh_cli_jstr(v, "name"));
            mesh_table_add(t, mesh_cli_jstr(v, "contract"));
            mesh_table_add(t, mesh_cli_jstr(v, "version"));
            mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(v, "rows"));
        }
        putchar('\n');
        mesh_table_print(t, stdout, cli->color);
    } else {
        printf("\nno products (add one with: meshctl product apply CONTRACT.yaml)\n");
    }
    mesh_table_destroy(kv);
    mesh_table_destroy(t);
    json_decref(j);
    return 0;
}

static int run_delete(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *name = mesh_cli_pos(a, 0);
    int rc = mesh_cli_domain_name(cli, name);
    if (rc != 0)
        return rc;
    mesh_buf_t path;
    bool force = mesh_cli_flag(a, "force");
    if ((rc = domain_path(cli, &path, name, force ? "?force=true" : NULL)) != 0)
        return rc;
    mesh_client_req_t req = {.method = "DELETE", .path = path.data};
    rc = mesh_cli_call(cli, &req, NULL);
    mesh_buf_free(&path);
    if (rc == 0 && !cli->quiet)
        printf("deleted domain %s%s\n", name, force ? " and its products" : "");
    return rc;
}

static const mesh_cli_opt_t create_opts[] = {
    {"description", 0, "TEXT", 0, "What the domain holds."},
    {"owner", 0, "EMAIL", MESH_CLI_MULTI, "An owner of the domain (a person or a team)."},
    {"hosts", 0, "NODE,...", 0,
     "The mesh nodes hosting the domain (node names): its writes go through the domain's "
     "JetStream stream and every host applies them (docs/mesh.md). Create the domain on each."},
    {"replication", 0, "MODE", 0,
     "sync (the default with --hosts: acknowledged after the stream's quorum and this node's "
     "apply), async, or none."},
    {"residency", 0, "WHERE", 0,
     "local: the domain's stream stays on its site (an edge leaf's domain is then never "
     "sourced by the hub, docs/mesh.md), or any (the default)."},
    {NULL, 0, NULL, 0, NULL},
};

static const mesh_cli_opt_t update_opts[] = {
    {"hosts", 0, "NODE,...", 0, "The mesh nodes hosting the domain from now on (node names)."},
    {"replication", 0, "MODE", 0, "sync, async or none."},
    {NULL, 0, NULL, 0, NULL},
};

static const mesh_cli_opt_t delete_opts[] = {
    {"force", 0, NULL, 0,
     "Delete the domain even when it has products, with their data and contracts."},
    {NULL, 0, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_domain_cmds[] = {
    {
        .name = "domain create",
        .usage = "NAME [OPTIONS]",
        .summary = "Create a domain.",
        .text = "Creates a domain, the unit of ownership that holds data products. A name is\n"
                "1-63 of a-z 0-9 _ -, starting with a letter.",
        .opts = create_opts,
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl domain create factory-a --description 'Plant A sensors' \\\n"
                    "    --owner ops@example.com --owner data@example.com\n"
                    "meshctl domain create factory-a --hosts plant-a,hq-1,hq-2 --replication sync",
        .exits = "0  created\n"
                 "2  the name or an owner is not valid\n"
                 "4  the token may not administer the node\n"
                 "5  the domain exists already",
        .run = run_create,
    },
    {
        .name = "domain update",
        .usage = "NAME [--hosts NODE,...] [--replication MODE]",
        .summary = "Change a domain's hosting nodes or replication mode (on this node).",
        .text = "Changes where the domain is hosted and its replication mode in this node's\n"
                "catalog (PUT /v1/domains/NAME); run it on each hosting node. Refused while it\n"
                "would strand data: leaving async on a node whose batches are not all in the\n"
                "stream yet (retry when outbox_pending is 0), or replicating a domain that\n"
                "already has contracts. A node added to the hosts applies the stream from its\n"
                "start (docs/mesh.md).",
        .opts = update_opts,
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl domain update factory-a --replication async\n"
                    "meshctl domain update factory-a --hosts plant-a,hq-1,hq-2",
        .exits = "0  updated\n"
                 "2  a host or the mode is not valid\n"
                 "3  no such domain\n"
                 "4  the token may not administer the domain\n"
                 "5  refused: it would strand data (see above)",
        .run = run_update,
    },
    {
        .name = "domain list",
        .usage = "[OPTIONS]",
        .summary = "List the domains.",
        .text = "Lists the domains the token may read, with their product count, rows, storage\n"
                "(database, WAL and log), owners and description. CSV gives storage in bytes.",
        .formats = "table|json|csv",
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl domain list\nmeshctl domain list --format csv > domains.csv",
        .exits = "0  listed (maybe none)",
        .run = run_list,
    },
    {
        .name = "domain show",
        .usage = "NAME [OPTIONS]",
        .summary = "Show a domain and its products.",
        .text = "Shows a domain: description, owners, creation time, rows, storage and the\n"
                "position of its log, then its products with their contract and rows.",
        .formats = "table|json",
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl domain show factory-a",
        .exits = "0  shown\n"
                 "3  no such domain",
        .run = run_show,
    },
    {
        .name = "domain delete",
        .usage = "NAME [--force]",
        .summary = "Delete a domain.",
        .text = "Deletes a domain. A domain with products is only deleted with --force, which\n"
                "deletes the products' data too; there is no undo.",
        .opts = delete_opts,
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl domain delete scratch\nmeshctl domain delete old-site --force",
        .exits = "0  deleted\n"
                 "3  no such domain\n"
                 "5  the domain has products (use --force)",
        .run = run_delete,
    },
    {.name = NULL},
};
