/*
 * access_req.c - parsing the access-control API's JSON bodies. See access_req.h.
 */
#include "auth/access_req.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "auth/policy.h"
#include "core/util.h"

#define BODY_MAX (64 * 1024)

bool mesh_principal_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '@' && c != '-')))
            return false;
    }
    return true;
}

void mesh_principal_req_wipe(mesh_principal_req_t *r)
{
    OPENSSL_cleanse(r->password, sizeof r->password);
    OPENSSL_cleanse(r->current_password, sizeof r->current_password);
}

void mesh_login_req_wipe(mesh_login_req_t *r)
{
    OPENSSL_cleanse(r->password, sizeof r->password);
}

/* Loads a JSON object body; only the listed keys are allowed. */
static json_t *load(const char *body, size_t n, const char *const *keys, mesh_err_t *err)
{
    if (n > BODY_MAX) {
        mesh_err_set(err, MESH_TOO_LARGE, "body larger than %d bytes", BODY_MAX);
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(body, n, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        mesh_err_set(err, MESH_PARSE, "malformed JSON at line %d, column %d: %s", je.line,
                     je.column, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        mesh_err_set(err, MESH_INVALID, "the body must be a JSON object");
        return NULL;
    }
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        bool known = false;
        for (size_t i = 0; keys[i] && !known; i++)
            known = strcmp(k, keys[i]) == 0;
        if (!known) {
            mesh_err_set(err, MESH_INVALID, "unknown field '%.60s'", k);
            json_decref(j);
            return NULL;
        }
    }
    return j;
}

/* A string field into out (at most cap-1 bytes): 1 given, 0 absent, -1 error. */
static int str_field(json_t *j, const char *key, char *out, size_t cap, bool required,
                     mesh_err_t *err)
{
    json_t *v = json_object_get(j, key);
    if (v == NULL || json_is_null(v)) {
        if (required) {
            mesh_err_set(err, MESH_INVALID, "'%s' is required", key);
            return -1;
        }
        return 0;
    }
    if (!json_is_string(v)) {
        mesh_err_set(err, MESH_INVALID, "'%s' must be a string", key);
        return -1;
    }
    size_t l = json_string_length(v);
    if (l >= cap) {
        mesh_err_set(err, MESH_INVALID, "'%s' is longer than %zu bytes", key, cap - 1);
        return -1;
    }
    if (strlen(json_string_value(v)) != l) {
        mesh_err_set(err, MESH_INVALID, "'%s' holds a NUL character", key);
        return -1;
    }
    memcpy(out, json_string_value(v), l + 1);
    return 1;
}

/* A list of names (or one name as a string) joined with commas; check validates each
 * (NULL: any non-empty name without commas). 1 given, 0 absent, -1 error. */
static int list_field(json_t *j, const char *key, char *out, size_t cap,
                      bool (*check)(const char *), bool allow_star, mesh_err_t *err)
{
    json_t *v = json_object_get(j, key);
    out[0] = '\0';
    if (v == NULL || json_is_null(v))
        return 0;
    json_t *one = json_is_string(v) ? v : NULL;
    if (!one && !json_is_array(v)) {
        mesh_err_set(err, MESH_INVALID, "'%s' must be a list of names", key);
        return -1;
    }
    size_t count = one ? 1 : json_array_size(v);
    if (count > 64) {
        mesh_err_set(err, MESH_INVALID, "'%s' lists more than 64 names", key);
        return -1;
    }
    size_t o = 0;
    for (size_t i = 0; i < count; i++) {
        json_t *e = one ? one : json_array_get(v, i);
        const char *name = json_is_string(e) ? json_string_value(e) : NULL;
        bool ok = name && *name && strlen(name) == json_string_length(e) && !strchr(name, ',') &&
                  !strchr(name, ' ');
        if (ok && !(allow_star && strcmp(name, "*") == 0))
            ok = check ? check(name) : strlen(name) < 128;
        if (!ok) {
            mesh_err_set(err, MESH_INVALID, "'%s': '%.60s' is not a valid name", key,
                         name ? name : "(not a string)");
            return -1;
        }
        size_t l = strlen(name);
        if (o + l + 2 > cap) {
            mesh_err_set(err, MESH_INVALID, "'%s' is too long", key);
            return -1;
        }
        if (o)
            out[o++] = ',';
        memcpy(out + o, name, l);
        o += l;
        out[o] = '\0';
    }
    return count > 0 ? 1 : 0;
}

static int bool_field(json_t *j, const char *key, mesh_err_t *err)
{
    json_t *v = json_object_get(j, key);
    if (v == NULL || json_is_null(v))
        return -1;
    if (!json_is_boolean(v)) {
        mesh_err_set(err, MESH_INVALID, "'%s' must be true or false", key);
        return -2;
    }
    return json_is_true(v) ? 1 : 0;
}

static bool column_name_ok(const char *s)
{
    return mesh_name_column_ok(s);
}

/* domain and product (optional, product only with a domain) */
static mesh_status_t scope(json_t *j, char *domain, size_t dcap, char *product, size_t pcap,
                           bool required, mesh_err_t *err)
{
    int d = str_field(j, "domain", domain, dcap, required, err);
    int p = d < 0 ? -1 : str_field(j, "product", product, pcap, required, err);
    if (d < 0 || p < 0)
        return err ? err->code : MESH_INVALID;
    if (d && !mesh_name_domain_ok(domain))
        return mesh_err_set(err, MESH_INVALID, "'domain': '%s' is not a domain name", domain);
    if (p && !d)
        return mesh_err_set(err, MESH_INVALID, "'product' needs a 'domain'");
    if (p && !mesh_name_product_ok(product))
        return mesh_err_set(err, MESH_INVALID, "'product': '%s' is not a product name", product);
    return MESH_OK;
}

mesh_status_t mesh_principal_req_parse(const char *body, size_t n, bool create,
                                       mesh_principal_req_t *out, mesh_err_t *err)
{
    static const char *const keys[] = {
        "name", "kind", "roles", "password", "disabled", "current_password", NULL};
    memset(out, 0, sizeof *out);
    out->disabled = -1;
    json_t *j = load(body, n, keys, err);
    if (j == NULL)
        return err ? err->code : MESH_INVALID;
    mesh_status_t st = MESH_OK;
    int r;
    if ((r = str_field(j, "name", out->name, sizeof out->name, create, err)) < 0) {
        st = err->code;
    } else if (r && !mesh_principal_name_ok(out->name)) {
        st = mesh_err_set(err, MESH_INVALID,
                          "'name': 1-63 letters, digits and _ . @ - (starting with a letter or "
                          "digit)");
    } else if ((r = str_field(j, "kind", out->kind, sizeof out->kind, false, err)) < 0) {
        st = err->code;
    } else if (r && strcmp(out->kind, "user") != 0 && strcmp(out->kind, "service") != 0) {
        st = mesh_err_set(err, MESH_INVALID, "'kind' is user or service");
    } else if ((r = list_field(j, "roles", out->roles, sizeof out->roles, mesh_role_name_ok, false,
                               err)) < 0) {
        st = err->code;
    } else {
        out->has_roles = json_object_get(j, "roles") != NULL;
        if (!out->kind[0])
            snprintf(out->kind, sizeof out->kind, "user");
        int pw = str_field(j, "password", out->password, sizeof out->password, false, err);
        int cur = pw < 0 ? -1
                         : str_field(j, "current_password", out->current_password,
                                     sizeof out->current_password, false, err);
        int dis = cur < 0 ? -2 : bool_field(j, "disabled", err);
        if (pw < 0 || cur < 0 || dis == -2)
            st = err->code;
        out->has_password = pw == 1;
        out->has_current = cur == 1;
        out->disabled = dis >= 0 ? dis : -1;
        if (st == MESH_OK && out->has_password && strlen(out->password) < MESH_PASSWORD_MIN)
            st = mesh_err_set(err, MESH_INVALID, "a password needs at least %d characters",
                              MESH_PASSWORD_MIN);
    }
    json_decref(j);
    if (st != MESH_OK)
        mesh_principal_req_wipe(out);
    return st;
}

mesh_status_t mesh_grant_req_parse(const char *body, size_t n, mesh_grant_rec_t *out,
                                   mesh_err_t *err)
{
    static const char *const keys[] = {"role",    "action", "domain", "product",
                                       "columns", "deny",   NULL};
    memset(out, 0, sizeof *out);
    json_t *j = load(body, n, keys, err);
    if (j == NULL)
        return err ? err->code : MESH_INVALID;
    mesh_status_t st = MESH_OK;
    int dn;
    if (str_field(j, "role", out->role, sizeof out->role, true, err) < 0 ||
        str_field(j, "action", out->action, sizeof out->action, true, err) < 0) {
        st = err->code;
    } else if (!mesh_role_name_ok(out->role)) {
        st = mesh_err_set(err, MESH_INVALID, "'role': '%s' is not a role name", out->role);
    } else if (strcmp(out->action, "read") != 0 && strcmp(out->action, "write") != 0 &&
               strcmp(out->action, "admin") != 0 && strcmp(out->action, "audit") != 0) {
        st = mesh_err_set(err, MESH_INVALID, "'action' is read, write, admin or audit");
    } else if ((st = scope(j, out->domain, sizeof out->domain, out->product, sizeof out->product,
                           false, err)) != MESH_OK) {
        /* err set */
    } else if (list_field(j, "columns", out->columns, sizeof out->columns, column_name_ok, false,
                          err) < 0) {
        st = err->code;
    } else if (out->columns[0] && (!out->product[0] || strcmp(out->action, "read") != 0)) {
        st = mesh_err_set(err, MESH_INVALID, "'columns' is for read grants on one product");
    } else if (strcmp(out->action, "audit") == 0 && out->domain[0]) {
        st = mesh_err_set(err, MESH_INVALID, "'audit' is granted on the whole mesh only");
    } else if ((dn = bool_field(j, "deny", err)) == -2) {
        st = err->code;
    } else {
        out->deny = dn == 1;
    }
    json_decref(j);
    return st;
}

mesh_status_t mesh_mask_req_parse(const char *body, size_t n, mesh_mask_rec_t *out, mesh_err_t *err)
{
    static const char *const keys[] = {"domain", "product", "column", "tag", "type",
                                       "expr",   "roles",   "except", NULL};
    memset(out, 0, sizeof *out);
    json_t *j = load(body, n, keys, err);
    if (j == NULL)
        return err ? err->code : MESH_INVALID;
    mesh_status_t st = MESH_OK;
    int c = 0, t = 0, e = 0, r = 0;
    if ((st = scope(j, out->domain, sizeof out->domain, out->product, sizeof out->product, false,
                    err)) != MESH_OK) {
        /* err set */
    } else if ((c = str_field(j, "column", out->column, sizeof out->column, false, err)) < 0 ||
               (t = str_field(j, "tag", out->tag, sizeof out->tag, false, err)) < 0 ||
               str_field(j, "type", out->type, sizeof out->type, true, err) < 0 ||
               (e = str_field(j, "expr", out->expr, sizeof out->expr, false, err)) < 0) {
        st = err->code;
    } else if (c == t) {
        st = mesh_err_set(err, MESH_INVALID, "give either 'column' or 'tag'");
    } else if (c && !mesh_name_column_ok(out->column)) {
        st = mesh_err_set(err, MESH_INVALID, "'column': '%s' is not a column name", out->column);
    } else if (t && (out->tag[0] == '\0' || strchr(out->tag, ','))) {
        st = mesh_err_set(err, MESH_INVALID, "'tag' must be a tag or classification");
    } else if (mesh_mask_type_parse(out->type) == MESH_MASK_NONE) {
        st = mesh_err_set(err, MESH_INVALID,
                          "'type' is MASK, MASK_SHOW_LAST_4, MASK_SHOW_FIRST_4, MASK_HASH, "
                          "MASK_NULL, MASK_DATE_SHOW_YEAR or CUSTOM");
    } else if ((mesh_mask_type_parse(out->type) == MESH_MASK_CUSTOM) != (e == 1)) {
        st = mesh_err_set(err, MESH_INVALID, "'expr' goes with type CUSTOM, and only with it");
    } else if (e && (!c || !out->product[0])) {
        st = mesh_err_set(err, MESH_INVALID,
                          "a CUSTOM mask names its domain, product and column (its expression "
                          "is checked against them)");
    } else if ((r = list_field(j, "roles", out->roles, sizeof out->roles, mesh_role_name_ok, true,
                               err)) < 0 ||
               list_field(j, "except", out->except, sizeof out->except, mesh_role_name_ok, false,
                          err) < 0) {
        st = err->code;
    } else if (r == 0) {
        st = mesh_err_set(err, MESH_INVALID, "'roles': whom the mask applies to (\"*\": everyone)");
    }
    json_decref(j);
    return st;
}

mesh_status_t mesh_filter_req_parse(const char *body, size_t n, mesh_filter_rec_t *out,
                                    mesh_err_t *err)
{
    static const char *const keys[] = {"role", "domain", "product", "predicate", NULL};
    memset(out, 0, sizeof *out);
    json_t *j = load(body, n, keys, err);
    if (j == NULL)
        return err ? err->code : MESH_INVALID;
    mesh_status_t st = MESH_OK;
    if (str_field(j, "role", out->role, sizeof out->role, true, err) < 0 ||
        str_field(j, "predicate", out->predicate, sizeof out->predicate, true, err) < 0) {
        st = err->code;
    } else if (!mesh_role_name_ok(out->role)) {
        st = mesh_err_set(err, MESH_INVALID, "'role': '%s' is not a role name", out->role);
    } else if ((st = scope(j, out->domain, sizeof out->domain, out->product, sizeof out->product,
                           true, err)) != MESH_OK) {
        /* err set */
    } else if (out->predicate[0] == '\0') {
        st = mesh_err_set(err, MESH_INVALID, "'predicate' is empty");
    }
    json_decref(j);
    return st;
}

mesh_status_t mesh_login_req_parse(const char *body, size_t n, mesh_login_req_t *out,
                                   mesh_err_t *err)
{
    static const char *const keys[] = {"user", "password", "ttl", NULL};
    memset(out, 0, sizeof *out);
    json_t *j = load(body, n, keys, err);
    if (j == NULL)
        return err ? err->code : MESH_INVALID;
    mesh_status_t st = MESH_OK;
    char ttl[32];
    int t = 0;
    if (str_field(j, "user", out->user, sizeof out->user, true, err) < 0 ||
        str_field(j, "password", out->password, sizeof out->password, true, err) < 0 ||
        (t = str_field(j, "ttl", ttl, sizeof ttl, false, err)) < 0) {
        st = err->code;
    } else if (t && (mesh_duration_parse(ttl, &out->ttl_ns) != MESH_OK || out->ttl_ns <= 0)) {
        st = mesh_err_set(err, MESH_INVALID, "'ttl' is a duration such as 1h or 30m");
    }
    json_decref(j);
    if (st != MESH_OK)
        mesh_login_req_wipe(out);
    return st;
}
