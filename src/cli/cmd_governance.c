/*
 * cmd_governance.c - `meshctl governance`, `meshctl retention run` and `meshctl erase` over
 * /v1/governance, /v1/retention/run and /v1/products/{d}/{p}/erase (docs/governance.md).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/util.h"

/* "/v1/governance/DOMAIN[/PRODUCT]" from DOMAIN or DOMAIN.PRODUCT. */
static int gov_path(mesh_cli_t *cli, const char *arg, char *out, size_t cap)
{
    char domain[MESH_NAME_MAX + 1], product[MESH_NAME_MAX + 1];
    if (strchr(arg, '.') == NULL) {
        int rc = mesh_cli_domain_name(cli, arg);
        if (rc != 0)
            return rc;
        snprintf(out, cap, "/v1/governance/%s", arg);
        return 0;
    }
    int rc = mesh_cli_product_name(cli, arg, domain, product);
    if (rc != 0)
        return rc;
    snprintf(out, cap, "/v1/governance/%s/%s", domain, product);
    return 0;
}

static void print_policy(const json_t *j)
{
    const json_t *r = json_object_get(j, "retention_s");
    const json_t *e = json_object_get(j, "effective");
    printf("%s%s%s\n", mesh_cli_jstr(j, "domain"), mesh_cli_jstr(j, "product") ? "." : "",
           mesh_cli_jstr(j, "product") ? mesh_cli_jstr(j, "product") : "");
    if (json_is_integer(r))
        printf("  retention:  %llds%s\n", (long long)json_integer_value(r),
               json_integer_value(r) == 0 ? " (forever)" : "");
    else
        printf("  retention:  (the contract's)\n");
    printf("  legal hold: %s%s%s\n", json_is_true(json_object_get(j, "legal_hold")) ? "on" : "off",
           mesh_cli_jstr(j, "hold_reason") ? ": " : "",
           mesh_cli_jstr(j, "hold_reason") ? mesh_cli_jstr(j, "hold_reason") : "");
    printf("  residency:  %s\n", mesh_cli_jstr(j, "residency"));
    if (json_is_object(e))
        printf("  in force:   retention %llds, legal hold %s%s%s, residency %s\n",
               (long long)mesh_cli_jint(e, "retention_s"),
               json_is_true(json_object_get(e, "legal_hold")) ? "on " : "off",
               mesh_cli_jstr(e, "held_on") ? mesh_cli_jstr(e, "held_on") : "",
               json_is_true(json_object_get(e, "legal_hold")) ? "" : "",
               mesh_cli_jstr(e, "residency"));
}

static int run_governance(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    char path[300];
    int rc = gov_path(cli, mesh_cli_pos(a, 0), path, sizeof path);
    if (rc != 0)
        return rc;
    const char *ret = mesh_cli_arg(a, "retention");
    const char *hold = mesh_cli_arg(a, "hold");
    bool release = mesh_cli_flag(a, "release");
    const char *res = mesh_cli_arg(a, "residency");
    json_t *j = NULL;
    if (hold && release)
        return mesh_cli_usage(cli, "--hold and --release exclude each other");
    if (ret || hold || release || res) {
        json_t *body = json_object();
        if (ret)
            json_object_set_new(body, "retention", json_string(ret));
        if (hold) {
            json_object_set_new(body, "legal_hold", json_true());
            json_object_set_new(body, "reason", json_string(hold));
        }
        if (release)
            json_object_set_new(body, "legal_hold", json_false());
        if (res)
            json_object_set_new(body, "residency", json_string(res));
        rc = mesh_cli_send_json(cli, "PUT", path, body, &j);
        json_decref(body);
    } else {
        mesh_client_req_t req = {.method = "GET", .path = path};
        rc = mesh_cli_call(cli, &req, &j);
    }
    if (rc == 0) {
        if (strcmp(mesh_cli_format(cli, false), "json") == 0) {
            char *t = json_dumps(j, JSON_COMPACT);
            if (t)
                printf("%s\n", t);
            free(t);
        } else if (!cli->quiet) {
            print_policy(j);
        }
    }
    json_decref(j);
    return rc;
}

static int run_retention(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    (void)a;
    mesh_client_req_t req = {.method = "POST",
                             .path = "/v1/retention/run",
                             .content_type = "application/json",
                             .body = "{}",
                             .body_len = 2};
    json_t *j = NULL;
    int rc = mesh_cli_call(cli, &req, &j);
    if (rc == 0) {
        if (strcmp(mesh_cli_format(cli, false), "json") == 0) {
            char *t = json_dumps(j, JSON_COMPACT);
            if (t)
                printf("%s\n", t);
            free(t);
        } else if (!cli->quiet) {
            size_t i;
            json_t *p;
            json_array_foreach(json_object_get(j, "products"), i, p)
            {
                if (json_is_true(json_object_get(p, "held")))
                    printf("%s.%s: held (%s), nothing deleted\n", mesh_cli_jstr(p, "domain"),
                           mesh_cli_jstr(p, "product"), mesh_cli_jstr(p, "held_on"));
                else
                    printf("%s.%s: %lld rows deleted in %lld batches\n", mesh_cli_jstr(p, "domain"),
                           mesh_cli_jstr(p, "product"), (long long)mesh_cli_jint(p, "deleted"),
                           (long long)mesh_cli_jint(p, "batches"));
            }
        }
    }
    json_decref(j);
    return rc;
}

static int run_erase(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    char domain[MESH_NAME_MAX + 1], product[MESH_NAME_MAX + 1], path[300];
    int rc = mesh_cli_product_name(cli, mesh_cli_pos(a, 0), domain, product);
    if (rc != 0)
        return rc;
    const char *where = mesh_cli_arg(a, "where");
    if (where == NULL || *where == '\0')
        return mesh_cli_usage(cli, "--where CONDITION is required (e.g. \"patient_id = 'p-17'\")");
    snprintf(path, sizeof path, "/v1/products/%s/%s/erase", domain, product);
    json_t *body = json_object();
    json_object_set_new(body, "where", json_string(where));
    json_t *j = NULL;
    rc = mesh_cli_send_json(cli, "POST", path, body, &j);
    json_decref(body);
    if (rc == 0) {
        if (strcmp(mesh_cli_format(cli, false), "json") == 0) {
            char *t = json_dumps(j, JSON_COMPACT);
            if (t)
                printf("%s\n", t);
            free(t);
        } else if (!cli->quiet) {
            printf("%s.%s: %lld rows matched, %lld erased\n", domain, product,
                   (long long)mesh_cli_jint(j, "matched"), (long long)mesh_cli_jint(j, "deleted"));
            size_t i;
            json_t *p;
            json_array_foreach(json_object_get(j, "derived"), i, p)
            {
                if (json_is_true(json_object_get(p, "refreshed")))
                    printf("  derived %s.%s: recomputed, %lld rows\n", mesh_cli_jstr(p, "domain"),
                           mesh_cli_jstr(p, "product"), (long long)mesh_cli_jint(p, "rows"));
                else if (json_is_true(json_object_get(p, "emptied")))
                    printf("  derived %s.%s: emptied (it could not be recomputed)\n",
                           mesh_cli_jstr(p, "domain"), mesh_cli_jstr(p, "product"));
                else if (json_object_get(p, "deleted"))
                    printf("  derived %s.%s: %lld rows erased\n", mesh_cli_jstr(p, "domain"),
                           mesh_cli_jstr(p, "product"), (long long)mesh_cli_jint(p, "deleted"));
                else
                    printf("  derived %s.%s: %s recomputed\n", mesh_cli_jstr(p, "domain"),
                           mesh_cli_jstr(p, "product"),
                           mesh_cli_jstr(p, "recomputed") ? mesh_cli_jstr(p, "recomputed")
                                                          : "what derives from them");
            }
        }
    }
    json_decref(j);
    return rc;
}

static const mesh_cli_opt_t gov_opts[] = {
    {"retention", 0, "DURATION", 0,
     "Keep rows this long (30d, 12h), \"forever\", or \"contract\" for the contract's "
     "retention."},
    {"hold", 0, "REASON", 0,
     "Put a legal hold on: no row is deleted by retention or erased until it is released."},
    {"release", 0, NULL, 0, "Release the legal hold."},
    {"residency", 0, "local|any", 0,
     "local: the rows never leave this node (replication, federation, exports)."},
    {NULL, 0, NULL, 0, NULL},
};

static const mesh_cli_opt_t erase_opts[] = {
    {"where", 0, "CONDITION", 0,
     "The rows to erase: one SQL condition over the product's columns, evaluated by the "
     "sandboxed query engine."},
    {NULL, 0, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_governance_cmds[] = {
    {
        .name = "governance",
        .usage = "DOMAIN[.PRODUCT] [OPTIONS]",
        .summary = "Show or set retention, legal hold and residency.",
        .text = "Without options, shows the governance policy of a domain or a product and, for\n"
                "a product, what is in force (the contract's customProperties retention and\n"
                "residency, overridden by this policy; a hold on the domain holds every\n"
                "product). With options, changes it (needs admin on it). Every change is\n"
                "audited (admin.governance). See docs/governance.md.",
        .formats = "text|json",
        .opts = gov_opts,
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl governance icu.vitals\n"
                    "meshctl governance icu.vitals --retention 30d\n"
                    "meshctl governance icu --hold 'case 2026-117'\n"
                    "meshctl governance icu --release",
        .exits = "0  shown or changed\n"
                 "2  a bad option\n"
                 "3  no such domain or product\n"
                 "4  the token may not read (or administer) it",
        .run = run_governance,
    },
    {
        .name = "retention run",
        .usage = "",
        .summary = "Delete expired rows now.",
        .text = "Runs one retention pass at once (meshd also runs one every retention_interval):\n"
                "for each product with a retention and no legal hold, rows older than the\n"
                "retention are deleted in batches of retention_batch rows, each through the\n"
                "domain's log and audited (dispose.retention), then the freed pages go back to\n"
                "the file system. Needs the admin role.",
        .formats = "text|json",
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl retention run",
        .exits = "0  done\n"
                 "4  the token is not an administrator's",
        .run = run_retention,
    },
    {
        .name = "erase",
        .usage = "DOMAIN.PRODUCT --where CONDITION",
        .summary = "Erase rows (right to erasure).",
        .text = "Removes the rows of a product that CONDITION selects, and what derives from\n"
                "them in derived products, and reports the counts. The condition is evaluated\n"
                "by the sandboxed query engine as you (never pasted into a DELETE); the keys\n"
                "found are deleted through the domain's log, so a crash loses nothing. Needs\n"
                "admin on the product; refused while a legal hold is on it or its domain.\n"
                "Audited as dispose.erasure with the condition and the counts.",
        .formats = "text|json",
        .opts = erase_opts,
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl erase icu.vitals --where \"patient_id = 'p-17'\"",
        .exits = "0  erased (maybe nothing)\n"
                 "2  the condition is not one SQL condition over the product\n"
                 "3  no such product\n"
                 "4  the token may not administer the product\n"
                 "5  a legal hold is on the product or its domain",
        .run = run_erase,
    },
    {.name = NULL},
};
