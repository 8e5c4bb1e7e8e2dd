/*
 * api_access.c - login, principals, tokens, roles, grants, masks and row filters.
 *
 * Principals, tokens of others and roles are the mesh administrators' business; grants,
 * masks and row filters of a domain are also its owners' (and a domain administrator's).
 * Every change bumps the policy version and reloads the policy before the reply.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/access_req.h"
#include "auth/policy.h"
#include "auth/scram.h"
#include "catalog/security.h"
#include "core/log.h"
#include "core/util.h"
#include "http/internal.h"
#include "node/health.h"
#include "query/query.h"

static const char *const builtin_roles[] = {"admin", "writer", "reader", "auditor"};

static bool builtin_role(const char *name)
{
    for (size_t i = 0; i < MESH_ARRAY_LEN(builtin_roles); i++)
        if (strcmp(name, builtin_roles[i]) == 0)
            return true;
    return false;
}

static bool role_exists(mesh_req_t *r, const char *name)
{
    if (builtin_role(name))
        return true;
    const mesh_policy_src_t *src = mesh_policy_source(mesh_req_policy(r));
    for (size_t i = 0; i < src->nroles; i++)
        if (strcmp(src->roles[i].name, name) == 0)
            return true;
    return false;
}

/* Every role of a comma-separated list exists; else replies 400. */
static bool roles_exist(mesh_req_t *r, const char *roles)
{
    char copy[MESH_ROLES_TEXT_MAX + 1];
    snprintf(copy, sizeof copy, "%s", roles);
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "*") != 0 && !role_exists(r, t)) {
            mesh_req_errorf(r, MESH_INVALID, "no role '%s' (create it first: POST /v1/roles)", t);
            return false;
        }
    }
    return true;
}

static bool body(mesh_req_t *r, const char **p, size_t *n)
{
    return mesh_req_body(r, p, n) == MESH_OK;
}

/* After a change: the new policy applies to the next request. */
static void reload(mesh_req_t *r)
{
    mesh_err_t err;
    if (mesh_auth_reload(r->node->auth, &err) != MESH_OK)
        LOG_ERROR("auth", "the policy could not be reloaded: %s", err.msg);
}

static bool is_mesh_admin(mesh_req_t *r)
{
    return mesh_req_decide(r, MESH_ACT_ADMIN, NULL, NULL, NULL);
}

/* The administrator's right, asked by a call that words its own refusal: the decision goes
 * to the audit log (authz.allow or authz.deny) like mesh_req_allow's; the caller answers. */
static bool audited_mesh_admin(mesh_req_t *r)
{
    mesh_decision_t d;
    bool ok = mesh_req_decide(r, MESH_ACT_ADMIN, NULL, NULL, &d);
    mesh_req_audit_authz(r, MESH_ACT_ADMIN, NULL, NULL, &d);
    return ok;
}

static json_t *time_json(int64_t ns)
{
    if (ns == 0)
        return json_null();
    char iso[MESH_TIME_MAX];
    mesh_time_format(ns, iso);
    return json_string(iso);
}

static json_t *roles_json(const char *roles)
{
    json_t *a = json_array();
    char copy[MESH_ROLES_TEXT_MAX + 1];
    snprintf(copy, sizeof copy, "%s", roles);
    char *save = NULL;
    for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
        json_array_append_new(a, json_string(t));
    return a;
}

/* ---- login, whoami ---- */

static void peer(mesh_req_t *r, char *out, size_t cap)
{
    struct evhttp_connection *c = evhttp_request_get_connection(r->ev);
    const char *addr = NULL;
    ev_uint16_t port = 0;
    if (c)
        evhttp_connection_get_peer(c, (char **)&addr, &port);
    snprintf(out, cap, "%s", addr ? addr : "?");
}

void mesh_api_login(mesh_req_t *r)
{
    const char *p;
    size_t n;
    if (!body(r, &p, &n))
        return;
    mesh_login_req_t req;
    mesh_err_t err;
    if (mesh_login_req_parse(p, n, &req, &err) != MESH_OK) {
        mesh_req_error(r, err.code, err.msg, NULL);
        return;
    }
    int64_t ttl = r->node->opts.login_ttl;
    if (req.ttl_ns > 0 && req.ttl_ns < ttl)
        ttl = req.ttl_ns;
    char addr[64], token[128];
    peer(r, addr, sizeof addr);
    int64_t retry = 0;
    mesh_identity_t who;
    mesh_status_t st = mesh_auth_login(r->node->auth, req.user, req.password, strlen(req.password),
                                       addr, ttl, token, sizeof token, &who, &retry, &err);
    mesh_login_req_wipe(&req);
    if (st != MESH_OK) {
        if (st == MESH_UNAUTHENTICATED || st == MESH_RATE_LIMITED)
            mesh_health_auth_failure(r->node->health, addr);
        LOG_INFO("auth", "login of '%s' from %s refused: %s", req.user, addr, mesh_status_name(st));
        if (st == MESH_RATE_LIMITED) {
            char s[32];
            snprintf(s, sizeof s, "%lld",
                     (long long)((retry + MESH_NS_PER_SEC - 1) / MESH_NS_PER_SEC));
            evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Retry-After", s);
        }
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    LOG_INFO("auth", "login of '%s' from %s", who.name, addr);
    json_t *o = json_object();
    json_object_set_new(o, "token", json_string(token));
    json_object_set_new(o, "principal", json_string(who.name));
    json_object_set_new(o, "roles", roles_json(who.roles));
    json_object_set_new(o, "expires", time_json(mesh_now_ns() + ttl));
    OPENSSL_cleanse(token, sizeof token);
    mesh_api_reply_json(r, 200, o);
}

void mesh_api_whoami(mesh_req_t *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "principal", json_string(r->who.name));
    json_object_set_new(o, "roles", roles_json(r->who.roles));
    json_object_set_new(o, "token_id", json_string(r->who.token_id));
    json_object_set_new(o, "policy_version",
                        json_integer((json_int_t)mesh_policy_version(mesh_req_policy(r))));
    mesh_api_reply_json(r, 200, o);
}

/* ---- principals ---- */

static json_t *principal_json(const mesh_principal_info_t *p)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer((json_int_t)p->id));
    json_object_set_new(o, "name", json_string(p->name));
    json_object_set_new(o, "kind", json_string(p->kind));
    json_object_set_new(o, "roles", roles_json(p->roles));
    json_object_set_new(o, "password", json_boolean(p->has_password));
    json_object_set_new(o, "disabled", json_boolean(p->disabled));
    json_object_set_new(o, "created", time_json(p->created_ns));
    return o;
}

static mesh_status_t set_password(mesh_req_t *r, int64_t id, const char *password, mesh_err_t *err)
{
    char v[MESH_SCRAM_VERIFIER_MAX];
    mesh_status_t st =
        mesh_scram_make(password, strlen(password), MESH_SCRAM_ITERATIONS, v, sizeof v, err);
    if (st == MESH_OK)
        st = mesh_catalog_password_set(r->node->cat, id, v, err);
    return st;
}

void mesh_api_principals(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, NULL, NULL))
        return;
    mesh_err_t err;
    mesh_catalog_t *cat = r->node->cat;
    if (evhttp_request_get_command(r->ev) == EVHTTP_REQ_GET) {
        mesh_principal_info_t *all;
        size_t n;
        if (mesh_catalog_principal_list(cat, &all, &n, &err) != MESH_OK) {
            mesh_req_error(r, err.code, err.msg, NULL);
            return;
        }
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, principal_json(&all[i]));
        free(all);
        json_t *o = json_object();
        json_object_set_new(o, "principals", a);
        mesh_api_reply_json(r, 200, o);
        return;
    }
    const char *p;
    size_t n;
    if (!body(r, &p, &n))
        return;
    mesh_principal_req_t req;
    if (mesh_principal_req_parse(p, n, true, &req, &err) != MESH_OK) {
        mesh_req_error(r, err.code, err.msg, NULL);
        return;
    }
    if (!roles_exist(r, req.roles)) {
        mesh_principal_req_wipe(&req);
        return;
    }
    int64_t id;
    mesh_status_t st = mesh_catalog_principal_create(cat, req.name, req.kind, req.roles, &id, &err);
    if (st == MESH_OK && req.has_password)
        st = set_password(r, id, req.password, &err);
    if (st == MESH_OK && req.disabled == 1)
        st = mesh_catalog_principal_update(cat, id, NULL, 1, &err);
    mesh_principal_req_wipe(&req);
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    reload(r);
    mesh_principal_info_t info;
    mesh_catalog_principal_info(cat, id, &info);
    LOG_INFO("auth", "%s created principal %s (roles %s)", r->who.name, info.name, info.roles);
    mesh_api_reply_json(r, 201, principal_json(&info));
}

void mesh_api_principal(mesh_req_t *r)
{
    mesh_catalog_t *cat = r->node->cat;
    const char *name = r->params[0];
    bool self = strcmp(name, r->who.name) == 0;
    bool admin = is_mesh_admin(r);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(r->ev);
    /* one may read oneself and change one's own password; the rest is for administrators,
     * and an administrator's call is an audited decision even on itself */
    bool own = self && (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_PUT);
    if ((admin || !own) && !mesh_req_allow(r, MESH_ACT_ADMIN, NULL, NULL))
        return;
    mesh_principal_info_t info;
    if (mesh_catalog_principal_find(cat, name, &info) != MESH_OK) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "no principal '%s'", name);
        return;
    }
    mesh_err_t err;
    if (cmd == EVHTTP_REQ_GET) {
        mesh_api_reply_json(r, 200, principal_json(&info));
        return;
    }
    if (cmd == EVHTTP_REQ_DELETE) {
        if (self) {
            mesh_req_errorf(r, MESH_CONFLICT, "a principal cannot delete itself");
            return;
        }
        if (mesh_catalog_principal_delete(cat, info.id, &err) != MESH_OK) {
            mesh_req_error(r, err.code, err.msg, NULL);
            return;
        }
        reload(r);
        LOG_INFO("auth", "%s deleted principal %s", r->who.name, info.name);
        mesh_req_reply(r, 204, NULL, NULL, 0);
        return;
    }
    const char *p;
    size_t n;
    if (!body(r, &p, &n))
        return;
    mesh_principal_req_t req;
    if (mesh_principal_req_parse(p, n, false, &req, &err) != MESH_OK) {
        mesh_req_error(r, err.code, err.msg, NULL);
        return;
    }
    mesh_status_t st = MESH_OK;
    if (req.name[0] && strcmp(req.name, info.name) != 0) {
        st = mesh_err_set(&err, MESH_INVALID, "a principal cannot be renamed");
    } else if (!admin) {
        /* oneself: only the password, proving the current one */
        char stored[MESH_SCRAM_VERIFIER_MAX];
        mesh_scram_t v;
        if (req.has_roles || req.disabled >= 0 ? !audited_mesh_admin(r) : !req.has_password)
            st = mesh_err_set(&err, MESH_FORBIDDEN,
                              "you may change only your own password (with current_password)");
        else if (!req.has_current ||
                 mesh_catalog_password_get(cat, info.id, stored, sizeof stored) != MESH_OK ||
                 mesh_scram_parse(stored, strlen(stored), &v, NULL) != MESH_OK ||
                 !mesh_scram_check(&v, req.current_password, strlen(req.current_password)))
            st = mesh_err_set(&err, MESH_FORBIDDEN, "current_password is wrong");
    } else if (self && req.disabled == 1) {
        st = mesh_err_set(&err, MESH_CONFLICT, "a principal cannot disable itself");
    }
    if (st == MESH_OK && req.has_roles && !roles_exist(r, req.roles)) {
        mesh_principal_req_wipe(&req);
        return;
    }
    if (st == MESH_OK && (req.has_roles || req.disabled >= 0))
        st = mesh_catalog_principal_update(cat, info.id, req.has_roles ? req.roles : NULL,
                                           req.disabled, &err);
    if (st == MESH_OK && req.has_password)
        st = set_password(r, info.id, req.password, &err);
    mesh_principal_req_wipe(&req);
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    reload(r);
    mesh_catalog_principal_info(cat, info.id, &info);
    LOG_INFO("auth", "%s changed principal %s", r->who.name, info.name);
    mesh_api_reply_json(r, 200, principal_json(&info));
}

/* ---- tokens ---- */

static json_t *token_json(const mesh_token_rec_t *t, const char *principal)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(t->id));
    json_object_set_new(o, "principal", json_string(principal));
    json_object_set_new(o, "created", time_json(t->created_ns));
    json_object_set_new(o, "expires", time_json(t->expires_ns));
    json_object_set_new(o, "revoked", time_json(t->revoked_ns));
    json_object_set_new(o, "note", json_string(t->note));
    return o;
}

void mesh_api_tokens(mesh_req_t *r)
{
    mesh_catalog_t *cat = r->node->cat;
    bool admin = is_mesh_admin(r);
    mesh_err_t err;
    if (evhttp_request_get_command(r->ev) == EVHTTP_REQ_GET) {
        const char *who = mesh_req_arg(r, "principal");
        int64_t pid = 0;
        if (!admin) {
            pid = r->who.principal_id; /* one's own */
        } else if (who) {
            mesh_principal_info_t info;
            if (mesh_catalog_principal_find(cat, who, &info) != MESH_OK) {
                mesh_req_errorf(r, MESH_NOT_FOUND, "no principal '%.63s'", who);
                return;
            }
            pid = info.id;
        }
        mesh_token_rec_t *all;
        size_t n;
        if (mesh_catalog_token_list(cat, pid, &all, &n, &err) != MESH_OK) {
            mesh_req_error(r, err.code, err.msg, NULL);
            return;
        }
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++) {
            mesh_principal_info_t info;
            bool known = mesh_catalog_principal_info(cat, all[i].principal_id, &info) == MESH_OK;
            json_array_append_new(a, token_json(&all[i], known ? info.name : "?"));
        }
        free(all);
        json_t *o = json_object();
        json_object_set_new(o, "tokens", a);
        mesh_api_reply_json(r, 200, o);
        return;
    }
    /* POST: a new token, shown once */
    const char *p;
    size_t n;
    if (!body(r, &p, &n))
        return;
    json_error_t je;
    json_t *j = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
    const char *principal = NULL, *expires = NULL, *note = NULL;
    if (j == NULL || !json_is_object(j) ||
        json_unpack_ex(j, &je, JSON_STRICT, "{s?s,s?s,s?s}", "principal", &principal, "expires_in",
                       &expires, "note", &note) != 0) {
        json_decref(j);
        mesh_req_errorf(r, MESH_INVALID,
                        "expected {\"principal\": NAME, \"expires_in\": \"30d\", \"note\": TEXT}");
        return;
    }
    mesh_principal_info_t info;
    const char *target = principal ? principal : r->who.name;
    int64_t exp_ns = 0;
    mesh_status_t st = MESH_OK;
    if (strcmp(target, r->who.name) != 0 && !audited_mesh_admin(r))
        st = mesh_err_set(&err, MESH_FORBIDDEN, "only administrators make tokens for others");
    else if (mesh_catalog_principal_find(cat, target, &info) != MESH_OK)
        st = mesh_err_set(&err, MESH_NOT_FOUND, "no principal '%.63s'", target);
    else if (info.disabled)
        st = mesh_err_set(&err, MESH_CONFLICT, "principal '%s' is disabled", info.name);
    else if (expires && (mesh_duration_parse(expires, &exp_ns) != MESH_OK || exp_ns <= 0))
        st = mesh_err_set(&err, MESH_INVALID, "expires_in is a duration such as 30d");
    else if (note && strlen(note) > 120)
        st = mesh_err_set(&err, MESH_INVALID, "note is at most 120 bytes");
    char token[128];
    if (st == MESH_OK && mesh_token_generate(token, sizeof token) != MESH_OK)
        st = mesh_err_set(&err, MESH_IO, "no randomness");
    int64_t expires_at = exp_ns ? mesh_now_ns() + exp_ns : 0;
    if (st == MESH_OK)
        st = mesh_auth_add_token(r->node->auth, info.id, token, expires_at, note ? note : "", &err);
    json_decref(j);
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    mesh_token_rec_t rec;
    memset(&rec, 0, sizeof rec);
    char tid[33];
    mesh_token_id(token, strlen(token), tid);
    if (mesh_catalog_token_get(cat, tid, &rec) != MESH_OK)
        snprintf(rec.id, sizeof rec.id, "%s", tid);
    OPENSSL_cleanse(rec.salt, sizeof rec.salt);
    OPENSSL_cleanse(rec.hash, sizeof rec.hash);
    json_t *o = token_json(&rec, info.name);
    json_object_set_new(o, "token", json_string(token));
    OPENSSL_cleanse(token, sizeof token);
    LOG_INFO("auth", "%s made token %s for %s", r->who.name, rec.id, info.name);
    mesh_api_reply_json(r, 201, o);
}

void mesh_api_token(mesh_req_t *r)
{
    mesh_catalog_t *cat = r->node->cat;
    const char *id = r->params[0];
    mesh_token_rec_t t;
    mesh_err_t err;
    if (strlen(id) != 32 || mesh_catalog_token_get(cat, id, &t) != MESH_OK) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "no token %.40s", id);
        return;
    }
    OPENSSL_cleanse(t.hash, sizeof t.hash);
    if (t.principal_id != r->who.principal_id && !mesh_req_allow(r, MESH_ACT_ADMIN, NULL, NULL))
        return;
    if (mesh_catalog_token_revoke(cat, id, &err) != MESH_OK) {
        mesh_req_error(r, err.code, err.msg, NULL);
        return;
    }
    mesh_auth_forget(r->node->auth);
    LOG_INFO("auth", "%s revoked token %s", r->who.name, id);
    mesh_req_reply(r, 204, NULL, NULL, 0);
}

/* ---- roles ---- */

void mesh_api_roles(mesh_req_t *r)
{
    mesh_err_t err;
    if (evhttp_request_get_command(r->ev) == EVHTTP_REQ_GET) {
        const mesh_policy_src_t *src = mesh_policy_source(mesh_req_policy(r));
        json_t *a = json_array();
        static const char *const what[] = {"every action everywhere",
                                           "read and write every product", "read every product",
                                           "read the audit log"};
        for (size_t i = 0; i < MESH_ARRAY_LEN(builtin_roles); i++)
            json_array_append_new(a, json_pack("{s:s,s:s,s:b}", "name", builtin_roles[i],
                                               "description", what[i], "builtin", 1));
        for (size_t i = 0; i < src->nroles; i++)
            json_array_append_new(a, json_pack("{s:s,s:s,s:b}", "name", src->roles[i].name,
                                               "description", src->roles[i].description, "builtin",
                                               0));
        json_t *o = json_object();
        json_object_set_new(o, "roles", a);
        mesh_api_reply_json(r, 200, o);
        return;
    }
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, NULL, NULL))
        return;
    const char *p;
    size_t n;
    if (!body(r, &p, &n))
        return;
    json_error_t je;
    json_t *j = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
    const char *name = NULL, *desc = "";
    if (j == NULL || !json_is_object(j) ||
        json_unpack_ex(j, &je, JSON_STRICT, "{s:s,s?s}", "name", &name, "description", &desc) !=
            0) {
        json_decref(j);
        mesh_req_errorf(r, MESH_INVALID, "expected {\"name\": ROLE, \"description\": TEXT}");
        return;
    }
    mesh_status_t st = MESH_OK;
    if (!mesh_role_name_ok(name))
        st = mesh_err_set(&err, MESH_INVALID,
                          "a role name is 1-63 of a-z, 0-9, _ and -, starting with a letter");
    else if (builtin_role(name))
        st = mesh_err_set(&err, MESH_CONFLICT, "'%s' is a built-in role", name);
    else if (strlen(desc) > 250)
        st = mesh_err_set(&err, MESH_INVALID, "description is at most 250 bytes");
    else
        st = mesh_catalog_role_create(r->node->cat, name, desc, &err);
    if (st != MESH_OK) {
        json_decref(j);
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    reload(r);
    LOG_INFO("auth", "%s created role %s", r->who.name, name);
    json_t *o = json_pack("{s:s,s:s,s:b}", "name", name, "description", desc, "builtin", 0);
    json_decref(j);
    mesh_api_reply_json(r, 201, o);
}

void mesh_api_role(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, NULL, NULL))
        return;
    const char *name = r->params[0];
    mesh_err_t err;
    if (builtin_role(name)) {
        mesh_req_errorf(r, MESH_CONFLICT, "'%s' is a built-in role", name);
        return;
    }
    if (mesh_catalog_role_delete(r->node->cat, name, &err) != MESH_OK) {
        mesh_req_error(r, err.code, err.msg, NULL);
        return;
    }
    reload(r);
    LOG_INFO("auth", "%s deleted role %s (and its grants and row filters)", r->who.name, name);
    mesh_req_reply(r, 204, NULL, NULL, 0);
}

/* ---- grants, masks, row filters ---- */

/* May the caller administer policies of this scope ("" domain: the whole mesh)? */
static bool may_administer(mesh_req_t *r, const char *domain, bool reply)
{
    const char *d = domain && domain[0] ? domain : NULL;
    if (reply)
        return mesh_req_allow(r, MESH_ACT_ADMIN, d, NULL);
    return mesh_req_decide(r, MESH_ACT_ADMIN, d, NULL, NULL);
}

static json_t *grant_json(const mesh_grant_rec_t *g)
{
    json_t *o = json_pack("{s:I,s:s,s:s,s:b}", "id", (json_int_t)g->id, "role", g->role, "action",
                          g->action, "deny", g->deny);
    json_object_set_new(o, "domain", g->domain[0] ? json_string(g->domain) : json_null());
    json_object_set_new(o, "product", g->product[0] ? json_string(g->product) : json_null());
    json_object_set_new(o, "columns", g->columns[0] ? roles_json(g->columns) : json_null());
    json_object_set_new(o, "created", time_json(g->created_ns));
    return o;
}

static json_t *mask_json(const mesh_mask_rec_t *m)
{
    json_t *o = json_pack("{s:I,s:s}", "id", (json_int_t)m->id, "type", m->type);
    json_object_set_new(o, "domain", m->domain[0] ? json_string(m->domain) : json_null());
    json_object_set_new(o, "product", m->product[0] ? json_string(m->product) : json_null());
    json_object_set_new(o, "column", m->column[0] ? json_string(m->column) : json_null());
    json_object_set_new(o, "tag", m->tag[0] ? json_string(m->tag) : json_null());
    json_object_set_new(o, "expr", m->expr[0] ? json_string(m->expr) : json_null());
    json_object_set_new(o, "roles", roles_json(m->roles));
    json_object_set_new(o, "except", roles_json(m->except));
    json_object_set_new(o, "created", time_json(m->created_ns));
    return o;
}

static json_t *filter_json(const mesh_filter_rec_t *f)
{
    json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:s}", "id", (json_int_t)f->id, "role", f->role,
                          "domain", f->domain, "product", f->product, "predicate", f->predicate);
    json_object_set_new(o, "created", time_json(f->created_ns));
    return o;
}

typedef enum { K_GRANT, K_MASK, K_FILTER } pkind_t;

static const char *const kind_table[] = {"grants", "masks", "row_filters"};

static void list_policies(mesh_req_t *r, pkind_t k)
{
    const mesh_policy_src_t *src = mesh_policy_source(mesh_req_policy(r));
    json_t *a = json_array();
    size_t n = k == K_GRANT ? src->ngrants : k == K_MASK ? src->nmasks : src->nfilters;
    for (size_t i = 0; i < n; i++) {
        const char *dom = k == K_GRANT  ? src->grants[i].domain
                          : k == K_MASK ? src->masks[i].domain
                                        : src->filters[i].domain;
        if (!may_administer(r, dom, false))
            continue;
        json_array_append_new(a, k == K_GRANT  ? grant_json(&src->grants[i])
                                 : k == K_MASK ? mask_json(&src->masks[i])
                                               : filter_json(&src->filters[i]));
    }
    json_t *o = json_object();
    json_object_set_new(o, k == K_GRANT ? "grants" : k == K_MASK ? "masks" : "row_filters", a);
    mesh_api_reply_json(r, 200, o);
}

static const mesh_product_t *find_product(mesh_req_t *r, const char *domain, const char *name)
{
    const mesh_product_t *p = mesh_snapshot_product(mesh_req_snapshot(r), domain, name);
    if (p == NULL)
        mesh_req_errorf(r, MESH_NOT_FOUND, "no product %s.%s", domain, name);
    return p;
}

static void create_policy(mesh_req_t *r, pkind_t k)
{
    const char *p;
    size_t n;
    if (!body(r, &p, &n))
        return;
    mesh_err_t err;
    mesh_status_t st;
    union {
        mesh_grant_rec_t g;
        mesh_mask_rec_t m;
        mesh_filter_rec_t f;
    } *u = calloc(1, sizeof *u);
    if (u == NULL) {
        mesh_req_errorf(r, MESH_NOMEM, "out of memory");
        return;
    }
    st = k == K_GRANT  ? mesh_grant_req_parse(p, n, &u->g, &err)
         : k == K_MASK ? mesh_mask_req_parse(p, n, &u->m, &err)
                       : mesh_filter_req_parse(p, n, &u->f, &err);
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        free(u);
        return;
    }
    const char *dom = k == K_GRANT ? u->g.domain : k == K_MASK ? u->m.domain : u->f.domain;
    bool audit = k == K_GRANT && strcmp(u->g.action, "audit") == 0;
    if (!may_administer(r, audit ? "" : dom, true)) {
        free(u);
        return;
    }
    if ((k == K_GRANT && !roles_exist(r, u->g.role)) ||
        (k == K_FILTER && !roles_exist(r, u->f.role)) ||
        (k == K_MASK && (!roles_exist(r, u->m.roles) || !roles_exist(r, u->m.except)))) {
        free(u);
        return;
    }
    /* expressions are checked against the product now, not when a query meets them */
    const mesh_product_t *prod = NULL;
    if (k == K_FILTER || (k == K_MASK && u->m.expr[0])) {
        prod = find_product(r, dom, k == K_FILTER ? u->f.product : u->m.product);
        if (prod == NULL) {
            free(u);
            return;
        }
        st = mesh_policy_expr_check(prod, k == K_FILTER ? u->f.predicate : u->m.expr,
                                    k == K_FILTER ? NULL : u->m.column, &err);
        if (st == MESH_OK && k == K_MASK &&
            mesh_product_col(prod, u->m.column, strlen(u->m.column)) < 0)
            st = mesh_err_set(&err, MESH_INVALID, "no column %s in %s.%s", u->m.column, dom,
                              u->m.product);
        if (st != MESH_OK) {
            mesh_req_error(r, st, err.msg, NULL);
            free(u);
            return;
        }
    }
    st = k == K_GRANT  ? mesh_catalog_grant_add(r->node->cat, &u->g, &err)
         : k == K_MASK ? mesh_catalog_mask_add(r->node->cat, &u->m, &err)
                       : mesh_catalog_filter_add(r->node->cat, &u->f, &err);
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        free(u);
        return;
    }
    reload(r);
    json_t *o = k == K_GRANT  ? grant_json(&u->g)
                : k == K_MASK ? mask_json(&u->m)
                              : filter_json(&u->f);
    LOG_INFO("auth", "%s added %s %lld", r->who.name, kind_table[k],
             (long long)(k == K_GRANT  ? u->g.id
                         : k == K_MASK ? u->m.id
                                       : u->f.id));
    free(u);
    mesh_api_reply_json(r, 201, o);
}

static void policies(mesh_req_t *r, pkind_t k)
{
    if (evhttp_request_get_command(r->ev) == EVHTTP_REQ_GET)
        list_policies(r, k);
    else
        create_policy(r, k);
}

static void delete_policy(mesh_req_t *r, pkind_t k)
{
    int64_t id;
    if (mesh_parse_i64(r->params[0], strlen(r->params[0]), &id) != MESH_OK || id <= 0) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "no %s with id %.40s", kind_table[k], r->params[0]);
        return;
    }
    const mesh_policy_src_t *src = mesh_policy_source(mesh_req_policy(r));
    const char *dom = NULL;
    size_t n = k == K_GRANT ? src->ngrants : k == K_MASK ? src->nmasks : src->nfilters;
    for (size_t i = 0; i < n && dom == NULL; i++) {
        int64_t rid = k == K_GRANT  ? src->grants[i].id
                      : k == K_MASK ? src->masks[i].id
                                    : src->filters[i].id;
        if (rid == id)
            dom = k == K_GRANT
                      ? (strcmp(src->grants[i].action, "audit") == 0 ? "" : src->grants[i].domain)
                  : k == K_MASK ? src->masks[i].domain
                                : src->filters[i].domain;
    }
    if (dom == NULL) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "no %s with id %lld", kind_table[k], (long long)id);
        return;
    }
    if (!may_administer(r, dom, true))
        return;
    mesh_err_t err;
    if (mesh_catalog_policy_delete(r->node->cat, kind_table[k], id, &err) != MESH_OK) {
        mesh_req_error(r, err.code, err.msg, NULL);
        return;
    }
    reload(r);
    LOG_INFO("auth", "%s deleted %s %lld", r->who.name, kind_table[k], (long long)id);
    mesh_req_reply(r, 204, NULL, NULL, 0);
}

void mesh_api_grants(mesh_req_t *r)
{
    policies(r, K_GRANT);
}

void mesh_api_grant(mesh_req_t *r)
{
    delete_policy(r, K_GRANT);
}

void mesh_api_masks(mesh_req_t *r)
{
    policies(r, K_MASK);
}

void mesh_api_mask(mesh_req_t *r)
{
    delete_policy(r, K_MASK);
}

void mesh_api_row_filters(mesh_req_t *r)
{
    policies(r, K_FILTER);
}

void mesh_api_row_filter(mesh_req_t *r)
{
    delete_policy(r, K_FILTER);
}
