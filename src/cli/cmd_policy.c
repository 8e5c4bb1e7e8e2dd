/*
 * cmd_policy.c - what roles may do: `meshctl role`, `grant`, `mask` and `row-filter` over
 * /v1/roles, /v1/grants, /v1/masks and /v1/row-filters.
 *
 * Arguments are checked locally with access_args.h (the grant and scope syntax is documented
 * there and in `meshctl grant --help`), so a typo is a usage error naming the bad part rather
 * than a round trip. The node checks again, and checks what only it can know: that roles,
 * products and columns exist and that filter and mask expressions compile.
 *
 * The three policy lists share one printer: a table of columns filled per row by a function,
 * the same rows as CSV (lower-case headers), or the node's JSON as it is.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "auth/policy.h"
#include "cli/access_args.h"
#include "cli/cli.h"
#include "core/util.h"

#define DESCRIPTION_MAX 250 /* bytes of a role's description (the node's limit) */

/* ---- shared ---- */

typedef struct list_spec {
    const char *path;   /* "/v1/grants" */
    const char *member; /* the answer's array: "grants" */
    const char *none;   /* printed for an empty table: "no grants" */
    size_t ncols;
    const char *const *cols; /* headers (CSV: lower case, '_' for ' ') */
    const size_t *widths;    /* most characters shown per column (0: no limit) */
    void (*row)(mesh_table_t *t, const json_t *o, bool csv);
} list_spec_t;

static int list(mesh_cli_t *cli, const list_spec_t *s)
{
    const char *fmt = mesh_cli_format(cli, false);
    mesh_client_req_t req = {.method = "GET", .path = s->path};
    json_t *j;
    int rc = mesh_cli_get(cli, &req, &j);
    if (rc != 0 || j == NULL)
        return rc;
    bool csv = strcmp(fmt, "csv") == 0;
    mesh_table_t *t = mesh_table_create(s->ncols);
    if (t == NULL) {
        json_decref(j);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    for (size_t c = 0; c < s->ncols; c++) {
        char h[64];
        snprintf(h, sizeof h, "%s", s->cols[c]);
        for (char *p = h; csv && *p; p++)
            *p = *p == ' ' ? '_' : (char)tolower((unsigned char)*p);
        mesh_table_column(t, c, h, MESH_ALIGN_AUTO, csv ? 0 : s->widths[c]);
    }
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(j, s->member), i, o) s->row(t, o, csv);
    if (mesh_table_rows(t) == 0 && !csv) {
        if (!cli->quiet)
            printf("%s\n", s->none);
    } else {
        mesh_cli_emit_table(cli, t, fmt);
    }
    mesh_table_destroy(t);
    json_decref(j);
    return 0;
}

/* DELETE prefix/ID for a numeric policy id; prints "<done> <what> ID". */
static int delete_by_id(mesh_cli_t *cli, const mesh_cli_args_t *a, const char *prefix,
                        const char *what, const char *done)
{
    const char *arg = mesh_cli_pos(a, 0);
    long long id;
    mesh_err_t err;
    if (mesh_cli_policy_id_parse(arg, &id, &err) != MESH_OK)
        return mesh_cli_usage(cli, "%s", err.msg);
    char path[128];
    snprintf(path, sizeof path, "%s%lld", prefix, id);
    mesh_client_req_t req = {.method = "DELETE", .path = path};
    int rc = mesh_cli_call(cli, &req, NULL);
    if (rc == 0 && !cli->quiet)
        printf("%s %s %lld\n", done, what, id);
    return rc;
}

static void add_time(mesh_table_t *t, const json_t *o, const char *key, bool csv)
{
    char when[MESH_CLI_TIME_MAX];
    mesh_table_add(t,
                   csv ? mesh_cli_jstr(o, key) : mesh_cli_short_time(mesh_cli_jstr(o, key), when));
}

static void add_names(mesh_table_t *t, const json_t *arr, bool csv, const char *empty)
{
    mesh_buf_t b;
    mesh_buf_init(&b, 64 * 1024);
    mesh_cli_join(&b, arr, csv ? ";" : ",");
    mesh_table_add(t, b.len ? b.data : empty);
    mesh_buf_free(&b);
}

static json_t *names_json(const mesh_cli_names_t *n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n->n; i++)
        json_array_append_new(a, json_string(n->name[i]));
    return a;
}

/* A scope from an answer's domain, product and columns (null: none). */
static void scope_of(const json_t *o, mesh_cli_scope_t *s)
{
    memset(s, 0, sizeof *s);
    const char *d = mesh_cli_jstr(o, "domain"), *p = mesh_cli_jstr(o, "product");
    snprintf(s->domain, sizeof s->domain, "%s", d ? d : "");
    snprintf(s->product, sizeof s->product, "%s", p ? p : "");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(o, "columns"), i, c)
    {
        if (s->ncolumns == MESH_CLI_NAMES_MAX)
            break;
        snprintf(s->columns[s->ncolumns++], sizeof s->columns[0], "%s",
                 json_string_value(c) ? json_string_value(c) : "?");
    }
}

/* ---- roles ---- */

static int run_role_create(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *name = mesh_cli_pos(a, 0);
    const char *desc = mesh_cli_arg(a, "description");
    if (!mesh_role_name_ok(name))
        return mesh_cli_usage(cli,
                              "'%.60s' is not a role name (1-63 of a-z 0-9 _ -, starting with a "
                              "letter)",
                              name);
    if (desc && strlen(desc) > DESCRIPTION_MAX)
        return mesh_cli_usage(cli, "--description is at most %d bytes", DESCRIPTION_MAX);
    json_t *body = json_pack("{s:s}", "name", name);
    if (desc)
        json_object_set_new(body, "description", json_string(desc));
    int rc = mesh_cli_send_json(cli, "POST", "/v1/roles", body, NULL);
    json_decref(body);
    if (rc == 0 && !cli->quiet)
        printf("created role %s (give it rights with: meshctl grant %s ACTION on SCOPE)\n", name,
               name);
    return rc;
}

static void role_row(mesh_table_t *t, const json_t *o, bool csv)
{
    mesh_table_add(t, mesh_cli_jstr(o, "name"));
    mesh_table_add(t, json_is_true(json_object_get(o, "builtin")) ? "yes" : "no");
    mesh_table_add(t, mesh_cli_jstr(o, "description") ? mesh_cli_jstr(o, "description") : "");
    (void)csv;
}

static int run_role_list(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    (void)a;
    static const char *const cols[] = {"NAME", "BUILTIN", "DESCRIPTION"};
    static const size_t widths[] = {0, 0, 60};
    list_spec_t s = {"/v1/roles", "roles", "no roles", 3, cols, widths, role_row};
    return list(cli, &s);
}

static int run_role_delete(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *name = mesh_cli_pos(a, 0);
    if (!mesh_role_name_ok(name))
        return mesh_cli_usage(cli, "'%.60s' is not a role name", name);
    mesh_buf_t path;
    int rc = mesh_cli_path(cli, &path, "/v1/roles/", name);
    if (rc != 0)
        return rc;
    mesh_client_req_t req = {.method = "DELETE", .path = path.data};
    rc = mesh_cli_call(cli, &req, NULL);
    mesh_buf_free(&path);
    if (rc == 0 && !cli->quiet)
        printf("deleted role %s and its grants and row filters\n", name);
    return rc;
}

/* ---- grants ---- */

#define GRANT_ARGS_MAX 8 /* more words than a grant has: the parser names the extra one */

static int run_grant(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *words[GRANT_ARGS_MAX];
    int n = mesh_cli_npos(a) < GRANT_ARGS_MAX ? mesh_cli_npos(a) : GRANT_ARGS_MAX;
    for (int i = 0; i < n; i++)
        words[i] = mesh_cli_pos(a, i);
    mesh_cli_grant_t *g = malloc(sizeof *g);
    if (g == NULL)
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    mesh_err_t err;
    if (mesh_cli_grant_parse(n, words, g, &err) != MESH_OK) {
        free(g);
        return mesh_cli_usage(cli, "%s", err.msg);
    }
    bool deny = mesh_cli_flag(a, "deny");
    json_t *body = json_pack("{s:s,s:s}", "role", g->role, "action", g->action);
    if (g->scope.domain[0])
        json_object_set_new(body, "domain", json_string(g->scope.domain));
    if (g->scope.product[0])
        json_object_set_new(body, "product", json_string(g->scope.product));
    if (g->scope.ncolumns) {
        json_t *cols = json_array();
        for (size_t i = 0; i < g->scope.ncolumns; i++)
            json_array_append_new(cols, json_string(g->scope.columns[i]));
        json_object_set_new(body, "columns", cols);
    }
    if (deny)
        json_object_set_new(body, "deny", json_true());
    json_t *j = NULL;
    int rc = mesh_cli_send_json(cli, "POST", "/v1/grants", body, &j);
    json_decref(body);
    if (rc == 0 && !cli->quiet) {
        char scope[2048];
        mesh_cli_scope_format(&g->scope, scope, sizeof scope);
        printf("%s %s on %s%s role %s (grant %lld)\n", deny ? "denied" : "granted", g->action,
               scope, deny ? " for" : " to", g->role, (long long)mesh_cli_jint(j, "id"));
    }
    json_decref(j);
    free(g);
    return rc;
}

static void grant_row(mesh_table_t *t, const json_t *o, bool csv)
{
    (void)csv;
    mesh_cli_scope_t *s = malloc(sizeof *s);
    char scope[2048];
    if (s)
        scope_of(o, s);
    mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(o, "id"));
    mesh_table_add(t, mesh_cli_jstr(o, "role"));
    mesh_table_add(t, json_is_true(json_object_get(o, "deny")) ? "deny" : "allow");
    mesh_table_add(t, mesh_cli_jstr(o, "action"));
    mesh_table_add(t, s ? mesh_cli_scope_format(s, scope, sizeof scope) : "?");
    add_time(t, o, "created", csv);
    free(s);
}

static int run_grant_list(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    (void)a;
    static const char *const cols[] = {"ID", "ROLE", "EFFECT", "ACTION", "SCOPE", "CREATED"};
    static const size_t widths[] = {0, 0, 0, 0, 60, 0};
    list_spec_t s = {"/v1/grants", "grants", "no grants", 6, cols, widths, grant_row};
    return list(cli, &s);
}

static int run_grant_revoke(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    return delete_by_id(cli, a, "/v1/grants/", "grant", "revoked");
}

/* ---- masks ---- */

static int run_mask_create(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *column = mesh_cli_arg(a, "column"), *tag = mesh_cli_arg(a, "tag");
    const char *dom = mesh_cli_arg(a, "domain"), *prod = mesh_cli_arg(a, "product");
    const char *type = mesh_cli_arg(a, "type"), *expr = mesh_cli_arg(a, "expr");
    const char *roles = mesh_cli_arg(a, "roles"), *except = mesh_cli_arg(a, "except");
    char d[MESH_NAME_MAX + 1] = "", p[MESH_NAME_MAX + 1] = "", c[MESH_NAME_MAX + 1] = "";
    char t[32];
    mesh_err_t err;
    int rc;
    if ((column != NULL) == (tag != NULL))
        return mesh_cli_usage(cli, "give --column DOMAIN.PRODUCT.COLUMN or --tag TAG (one of "
                                   "them)");
    if (column) {
        if (dom || prod)
            return mesh_cli_usage(cli, "--column names its domain and product: drop --domain "
                                       "and --product");
        if (mesh_cli_column_path_parse(column, d, p, c, &err) != MESH_OK)
            return mesh_cli_usage(cli, "--column: %s", err.msg);
    } else {
        if (*tag == '\0' || strlen(tag) > MESH_NAME_MAX || strchr(tag, ','))
            return mesh_cli_usage(cli, "--tag: a tag or classification such as PII or "
                                       "restricted (at most 63 bytes, no commas)");
        if (prod && (rc = mesh_cli_product_name(cli, prod, d, p)) != 0)
            return rc;
        if (dom && (rc = mesh_cli_domain_name(cli, dom)) != 0)
            return rc;
        if (dom && prod && strcmp(dom, d) != 0)
            return mesh_cli_usage(cli,
                                  "--domain %s and --product %s disagree (--product alone "
                                  "names both)",
                                  dom, prod);
        if (dom)
            snprintf(d, sizeof d, "%s", dom);
    }
    if (type == NULL)
        return mesh_cli_usage(cli, "--type is required (e.g. MASK_HASH)");
    size_t tl = strlen(type);
    for (size_t i = 0; i <= tl && i < sizeof t; i++)
        t[i] = (char)toupper((unsigned char)type[i]);
    t[sizeof t - 1] = '\0';
    mesh_mask_type_t mt = tl < sizeof t ? mesh_mask_type_parse(t) : MESH_MASK_NONE;
    if (mt == MESH_MASK_NONE)
        return mesh_cli_usage(cli,
                              "--type %.60s: expected MASK, MASK_SHOW_LAST_4, "
                              "MASK_SHOW_FIRST_4, MASK_HASH, MASK_NULL, "
                              "MASK_DATE_SHOW_YEAR or CUSTOM",
                              type);
    if (mt == MESH_MASK_CUSTOM && (expr == NULL || *expr == '\0' || column == NULL))
        return mesh_cli_usage(cli, "--type CUSTOM needs --expr (SQL over {col}) and --column");
    if (mt != MESH_MASK_CUSTOM && expr)
        return mesh_cli_usage(cli, "--expr goes with --type CUSTOM only");
    if (expr && strlen(expr) > MESH_PREDICATE_MAX)
        return mesh_cli_usage(cli, "--expr is at most %d bytes", MESH_PREDICATE_MAX);
    if (roles == NULL)
        return mesh_cli_usage(cli, "--roles is required: whom the mask applies to ('*': "
                                   "everyone)");
    mesh_cli_names_t *rn = malloc(2 * sizeof *rn), *en = rn ? rn + 1 : NULL;
    if (rn == NULL)
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    en->n = 0;
    if (mesh_cli_roles_parse(roles, "--roles", true, false, rn, &err) != MESH_OK ||
        (except && mesh_cli_roles_parse(except, "--except", false, false, en, &err) != MESH_OK)) {
        free(rn);
        return mesh_cli_usage(cli, "%s", err.msg);
    }
    json_t *body = json_pack("{s:s}", "type", mesh_mask_type_name(mt));
    if (d[0])
        json_object_set_new(body, "domain", json_string(d));
    if (p[0])
        json_object_set_new(body, "product", json_string(p));
    json_object_set_new(body, column ? "column" : "tag", json_string(column ? c : tag));
    if (expr)
        json_object_set_new(body, "expr", json_string(expr));
    json_object_set_new(body, "roles", names_json(rn));
    if (en->n)
        json_object_set_new(body, "except", names_json(en));
    json_t *j = NULL;
    rc = mesh_cli_send_json(cli, "POST", "/v1/masks", body, &j);
    json_decref(body);
    if (rc == 0 && !cli->quiet) {
        char what[256];
        if (column)
            snprintf(what, sizeof what, "%s", column);
        else
            snprintf(what, sizeof what, "the columns tagged %s%s%s%s%s", tag, d[0] ? " in " : "", d,
                     p[0] ? "." : "", p);
        mesh_cli_clean(what);
        printf("created mask %lld: %s of %s for %s", (long long)mesh_cli_jint(j, "id"),
               mesh_mask_type_name(mt), what, strcmp(rn->name[0], "*") == 0 ? "everyone" : "");
        for (size_t i = 0; strcmp(rn->name[0], "*") != 0 && i < rn->n; i++)
            printf("%s%s", i ? ", " : "", rn->name[i]);
        for (size_t i = 0; i < en->n; i++)
            printf("%s%s", i ? ", " : " except ", en->name[i]);
        putchar('\n');
    }
    json_decref(j);
    free(rn);
    return rc;
}

static void mask_row(mesh_table_t *t, const json_t *o, bool csv)
{
    const char *d = mesh_cli_jstr(o, "domain"), *p = mesh_cli_jstr(o, "product");
    const char *col = mesh_cli_jstr(o, "column"), *tag = mesh_cli_jstr(o, "tag");
    mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(o, "id"));
    if (col)
        mesh_table_addf(t, "%s.%s.%s", d ? d : "*", p ? p : "*", col);
    else
        mesh_table_addf(t, "tag %s in %s%s%s", tag ? tag : "?", d ? d : "*", p ? "." : "",
                        p ? p : "");
    mesh_table_add(t, mesh_cli_jstr(o, "type"));
    add_names(t, json_object_get(o, "roles"), csv, "");
    add_names(t, json_object_get(o, "except"), csv, "");
    mesh_table_add(t, mesh_cli_jstr(o, "expr") ? mesh_cli_jstr(o, "expr") : "");
    add_time(t, o, "created", csv);
}

static int run_mask_list(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    (void)a;
    static const char *const cols[] = {"ID",     "APPLIES TO", "TYPE",   "ROLES",
                                       "EXCEPT", "EXPR",       "CREATED"};
    static const size_t widths[] = {0, 50, 0, 30, 30, 40, 0};
    list_spec_t s = {"/v1/masks", "masks", "no masks", 7, cols, widths, mask_row};
    return list(cli, &s);
}

static int run_mask_delete(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    return delete_by_id(cli, a, "/v1/masks/", "mask", "deleted");
}

/* ---- row filters ---- */

static int run_filter_create(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    if (mesh_cli_npos(a) > 3)
        return mesh_cli_usage(cli, "the predicate is one argument: quote it, e.g. "
                                   "\"ward = 'A'\"");
    const char *role = mesh_cli_pos(a, 0), *prod = mesh_cli_pos(a, 1);
    const char *pred = mesh_cli_pos(a, 2);
    char d[MESH_NAME_MAX + 1], p[MESH_NAME_MAX + 1];
    if (!mesh_role_name_ok(role))
        return mesh_cli_usage(cli,
                              "'%.60s' is not a role name (1-63 of a-z 0-9 _ -, starting with a "
                              "letter)",
                              role);
    int rc = mesh_cli_product_name(cli, prod, d, p);
    if (rc != 0)
        return rc;
    size_t pl = strlen(pred);
    while (pl && (pred[pl - 1] == ' ' || pred[pl - 1] == '\t'))
        pl--;
    if (pl == 0)
        return mesh_cli_usage(cli, "the predicate is empty");
    if (strlen(pred) > MESH_PREDICATE_MAX)
        return mesh_cli_usage(cli, "the predicate is at most %d bytes", MESH_PREDICATE_MAX);
    json_t *body =
        json_pack("{s:s,s:s,s:s,s:s}", "role", role, "domain", d, "product", p, "predicate", pred);
    json_t *j = NULL;
    rc = mesh_cli_send_json(cli, "POST", "/v1/row-filters", body, &j);
    json_decref(body);
    if (rc == 0 && !cli->quiet) {
        char line[MESH_PREDICATE_MAX + 256];
        snprintf(line, sizeof line,
                 "created row filter %lld: role %s reads the rows of %s.%s "
                 "where %s",
                 (long long)mesh_cli_jint(j, "id"), role, d, p, pred);
        mesh_cli_clean(line);
        puts(line);
    }
    json_decref(j);
    return rc;
}

static void filter_row(mesh_table_t *t, const json_t *o, bool csv)
{
    mesh_table_addf(t, "%lld", (long long)mesh_cli_jint(o, "id"));
    mesh_table_add(t, mesh_cli_jstr(o, "role"));
    mesh_table_addf(t, "%s.%s", mesh_cli_jstr(o, "domain"), mesh_cli_jstr(o, "product"));
    mesh_table_add(t, mesh_cli_jstr(o, "predicate"));
    add_time(t, o, "created", csv);
}

static int run_filter_list(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    (void)a;
    static const char *const cols[] = {"ID", "ROLE", "PRODUCT", "PREDICATE", "CREATED"};
    static const size_t widths[] = {0, 0, 0, 60, 0};
    list_spec_t s = {"/v1/row-filters", "row_filters", "no row filters", 5, cols, widths,
                     filter_row};
    return list(cli, &s);
}

static int run_filter_delete(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    return delete_by_id(cli, a, "/v1/row-filters/", "row filter", "deleted");
}

/* ---- tables ---- */

static const mesh_cli_opt_t role_create_opts[] = {
    {"description", 0, "TEXT", 0, "What the role is for (at most 250 bytes)."},
    {NULL, 0, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_role_cmds[] = {
    {
        .name = "role create",
        .usage = "NAME [--description TEXT]",
        .summary = "Create a role.",
        .text = "Creates a role: a name that principals hold ('meshctl user roles') and that\n"
                "grants, masks and row filters name. A name is 1-63 of a-z 0-9 _ -, starting\n"
                "with a letter. The built-in roles admin, writer, reader and auditor exist\n"
                "always. A new role may do nothing until it is granted something.",
        .opts = role_create_opts,
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl role create ward-a --description 'Nurses of ward A'",
        .exits = "0  created\n"
                 "2  not a role name\n"
                 "4  the token may not administer the mesh\n"
                 "5  the role exists (or is built in)",
        .run = run_role_create,
    },
    {
        .name = "role list",
        .usage = "[OPTIONS]",
        .summary = "List the roles.",
        .text = "Lists the built-in roles and the roles made with 'meshctl role create'.",
        .formats = "table|json|csv",
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl role list",
        .exits = "0  listed",
        .run = run_role_list,
    },
    {
        .name = "role delete",
        .usage = "NAME",
        .summary = "Delete a role, its grants and row filters.",
        .text = "Deletes a role with its grants and row filters. Principals keep the name in\n"
                "their roles, which then grants nothing; masks that name it stay.",
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl role delete ward-a",
        .exits = "0  deleted\n"
                 "3  no such role\n"
                 "4  the token may not administer the mesh\n"
                 "5  a built-in role",
        .run = run_role_delete,
    },
    {.name = NULL},
};

static const mesh_cli_opt_t grant_opts[] = {
    {"deny", 0, NULL, 0,
     "Deny rather than allow. A deny wins over every allow, at any scope: deny a domain and no "
     "grant on one of its products undoes it."},
    {NULL, 0, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_grant_cmds[] = {
    {
        .name = "grant",
        .usage = "ROLE read|write|admin|audit [on] SCOPE [--deny]",
        .summary = "Allow (or deny) a role an action on a scope.",
        .text = "Grants ROLE an action on a scope (POST /v1/grants). Actions: read (query,\n"
                "export), write (ingest), admin (administer: implies read and write there, and\n"
                "lets the role manage the scope's grants, masks and row filters), audit (read\n"
                "the audit log; on the whole mesh only, so it takes no scope). Write does not\n"
                "imply read. The word 'on' is optional.\n"
                "\n"
                "SCOPE is one word:\n"
                "  '*'                    the whole mesh: every domain (quote it for the shell)\n"
                "  icu                    the domain icu and all its products (also: icu.*)\n"
                "  icu.vitals             the product icu.vitals\n"
                "  icu.vitals:hr,spo2     only these columns of icu.vitals (read only)\n"
                "  'icu.vitals(hr,spo2)'  the same, written like SQL (quote it)\n"
                "A scope is never implied: the whole mesh has to be asked for with '*'.\n"
                "\n"
                "A readable product shows only the columns granted (the union over the\n"
                "principal's roles, minus denied columns); other products do not exist for\n"
                "it, in lists and in SQL alike. 'meshctl grant list' lists the grants and\n"
                "'meshctl grant revoke ID' takes one back; a role named list or revoke is\n"
                "granted with 'meshctl grant -- list read icu'.",
        .opts = grant_opts,
        .min_args = 2,
        .max_args = -1,
        .examples = "meshctl grant analyst read on icu.vitals\n"
                    "meshctl grant ward-a read icu.vitals\n"
                    "meshctl grant clerk read on icu.vitals:patient_id,ts,ward,hr\n"
                    "meshctl grant temp read on icu --deny\n"
                    "meshctl grant ingest write on factory\n"
                    "meshctl grant ops admin on '*'\n"
                    "meshctl grant compliance audit",
        .exits = "0  granted\n"
                 "2  bad syntax (the message names the bad part), or a role that does not "
                 "exist\n"
                 "3  no such domain or product\n"
                 "4  the token may not administer the scope",
        .run = run_grant,
    },
    {
        .name = "grant list",
        .usage = "[OPTIONS]",
        .summary = "List the grants.",
        .text = "Lists the grants the token may administer (all of them for a mesh\n"
                "administrator, a domain's for its owners), with their id, role, effect\n"
                "(allow or deny), action, scope (in the syntax of 'meshctl grant') and when\n"
                "they were made.",
        .formats = "table|json|csv",
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl grant list\nmeshctl grant list --format csv",
        .exits = "0  listed",
        .run = run_grant_list,
    },
    {
        .name = "grant revoke",
        .usage = "ID",
        .summary = "Take back a grant.",
        .text = "Deletes the grant with this id (the ID column of 'meshctl grant list'). It\n"
                "applies to the next request of everyone holding the role.",
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl grant revoke 12",
        .exits = "0  revoked\n"
                 "2  not an id\n"
                 "3  no such grant\n"
                 "4  the token may not administer the grant's scope",
        .run = run_grant_revoke,
    },
    {.name = NULL},
};

static const mesh_cli_opt_t mask_create_opts[] = {
    {"column", 0, "DOMAIN.PRODUCT.COLUMN", 0, "The column to mask."},
    {"tag", 0, "TAG", 0,
     "Mask every column with this classification or tag (e.g. PII, restricted) instead."},
    {"domain", 0, "DOMAIN", 0, "With --tag: only in this domain (default: every domain)."},
    {"product", 0, "DOMAIN.PRODUCT", 0, "With --tag: only in this product."},
    {"type", 0, "TYPE", 0,
     "MASK (letters to x/X, digits to n), MASK_SHOW_LAST_4, MASK_SHOW_FIRST_4, MASK_HASH (an "
     "HMAC: equal values stay equal, so joins work), MASK_NULL, MASK_DATE_SHOW_YEAR or CUSTOM "
     "(case does not matter)."},
    {"expr", 0, "SQL", 0,
     "With --type CUSTOM: an SQL expression over {col}, e.g. 'round({col} / 10) * 10'."},
    {"roles", 0, "ROLE[,ROLE...]|*", 0,
     "Whom the mask applies to; '*' (quoted) is everyone, administrators included."},
    {"except", 0, "ROLE[,ROLE...]", 0, "Roles it never applies to (they see clear values)."},
    {NULL, 0, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_mask_cmds[] = {
    {
        .name = "mask create",
        .usage = "(--column DOMAIN.PRODUCT.COLUMN | --tag TAG [--domain D] [--product D.P])\n"
                 "    --type TYPE [--expr SQL] --roles ROLE,...|'*' [--except ROLE,...]",
        .summary = "Mask a column (or tagged columns) for some roles.",
        .text = "Creates a masking policy: readers holding one of --roles (and none of\n"
                "--except) see the masked value instead of the clear one, in every output\n"
                "format, and their WHERE, ORDER BY and joins see the masked value too. When\n"
                "several policies match a column, the first decides: column policies before\n"
                "tag policies, a product's before a domain's before the mesh's, older before\n"
                "newer. Masks do not grant reading: combine them with 'meshctl grant'.",
        .opts = mask_create_opts,
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl mask create --column icu.vitals.patient_id --type MASK_HASH "
                    "--roles analyst\n"
                    "meshctl mask create --tag PII --domain icu --type MASK --roles '*' "
                    "--except doctor\n"
                    "meshctl mask create --column icu.vitals.spo2 --type CUSTOM \\\n"
                    "    --expr 'round({col} / 10) * 10' --roles analyst",
        .exits = "0  created\n"
                 "2  bad options, a role that does not exist, or a CUSTOM expression that does "
                 "not compile\n"
                 "3  no such product or column\n"
                 "4  the token may not administer the domain",
        .run = run_mask_create,
    },
    {
        .name = "mask list",
        .usage = "[OPTIONS]",
        .summary = "List the masking policies.",
        .text = "Lists the masking policies the token may administer: id, what they apply to\n"
                "(DOMAIN.PRODUCT.COLUMN, or a tag in a scope; * for any), type, roles, the\n"
                "excepted roles and a CUSTOM expression.",
        .formats = "table|json|csv",
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl mask list",
        .exits = "0  listed",
        .run = run_mask_list,
    },
    {
        .name = "mask delete",
        .usage = "ID",
        .summary = "Delete a masking policy.",
        .text = "Deletes the masking policy with this id (the ID column of 'meshctl mask\n"
                "list'); readers see clear values again from their next query.",
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl mask delete 3",
        .exits = "0  deleted\n"
                 "2  not an id\n"
                 "3  no such mask\n"
                 "4  the token may not administer its domain",
        .run = run_mask_delete,
    },
    {.name = NULL},
};

const mesh_cli_cmd_t mesh_cli_filter_cmds[] = {
    {
        .name = "row-filter create",
        .usage = "ROLE DOMAIN.PRODUCT PREDICATE",
        .summary = "Limit the rows a role reads of a product.",
        .text = "Creates a row filter: ROLE reads only the rows of the product for which the\n"
                "SQL PREDICATE (one argument: quote it) is true. A reader sees the rows that\n"
                "pass the filter of at least one of its roles that grants reading the product;\n"
                "a role that grants reading it without a filter (or admin, or owning the\n"
                "domain) sees every row. The filter applies before the query sees a row, so\n"
                "neither errors, ordering, limits, joins nor counts reveal a hidden row. The\n"
                "predicate is checked against the product's columns when it is made.",
        .min_args = 3,
        .max_args = -1,
        .examples = "meshctl row-filter create ward-a icu.vitals \"ward = 'A'\"\n"
                    "meshctl row-filter create eu-sales sales.orders \"region IN ('FR', 'DE')\"",
        .exits = "0  created\n"
                 "2  a bad role or product name, a predicate that does not compile, or a role "
                 "that does not exist\n"
                 "3  no such product\n"
                 "4  the token may not administer the domain",
        .run = run_filter_create,
    },
    {
        .name = "row-filter list",
        .usage = "[OPTIONS]",
        .summary = "List the row filters.",
        .text = "Lists the row filters the token may administer: id, role, product and\n"
                "predicate.",
        .formats = "table|json|csv",
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl row-filter list",
        .exits = "0  listed",
        .run = run_filter_list,
    },
    {
        .name = "row-filter delete",
        .usage = "ID",
        .summary = "Delete a row filter.",
        .text = "Deletes the row filter with this id (the ID column of 'meshctl row-filter\n"
                "list'). If it was the role's only filter on the product, the role reads every\n"
                "row of it again.",
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl row-filter delete 4",
        .exits = "0  deleted\n"
                 "2  not an id\n"
                 "3  no such row filter\n"
                 "4  the token may not administer its domain",
        .run = run_filter_delete,
    },
    {.name = NULL},
};
