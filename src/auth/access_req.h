/*
 * access_req.h - the JSON bodies of the access-control API, parsed and checked (bounded,
 * strict: unknown fields, wrong types and bad names are refused with the field named).
 *
 *   principal  {"name": "ana", "kind": "user"|"service", "roles": ["analyst"],
 *               "password": "...", "disabled": false}
 *   grant      {"role": "analyst", "action": "read"|"write"|"admin"|"audit",
 *               "domain": "icu-3", "product": "vitals", "columns": ["hr", "spo2"],
 *               "deny": false}
 *   mask       {"domain": "icu-3", "product": "vitals", "column": "patient_id" | "tag": "PII",
 *               "type": "MASK_HASH", "expr": "substr({col}, 1, 3)", "roles": ["*"],
 *               "except": ["doctor"]}
 *   row filter {"role": "ward-a", "domain": "icu-3", "product": "vitals",
 *               "predicate": "ward = 'A'"}
 *   login      {"user": "ana", "password": "...", "ttl": "1h"}
 */
#ifndef MESH_AUTH_ACCESS_REQ_H
#define MESH_AUTH_ACCESS_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/scram.h"
#include "catalog/security.h"
#include "core/status.h"

typedef struct mesh_principal_req {
    char name[64];
    char kind[16];
    char roles[MESH_ROLES_TEXT_MAX + 1];
    bool has_roles;
    char password[MESH_PASSWORD_MAX + 1];
    bool has_password;
    int disabled; /* -1: not given */
    char current_password[MESH_PASSWORD_MAX + 1];
    bool has_current;
} mesh_principal_req_t;

typedef struct mesh_login_req {
    char user[64];
    char password[MESH_PASSWORD_MAX + 1];
    int64_t ttl_ns; /* 0: not given */
} mesh_login_req_t;

/* create: the name and kind are required (an update takes roles, password, disabled). */
mesh_status_t mesh_principal_req_parse(const char *body, size_t n, bool create,
                                       mesh_principal_req_t *out, mesh_err_t *err);
mesh_status_t mesh_grant_req_parse(const char *body, size_t n, mesh_grant_rec_t *out,
                                   mesh_err_t *err);
mesh_status_t mesh_mask_req_parse(const char *body, size_t n, mesh_mask_rec_t *out,
                                  mesh_err_t *err);
mesh_status_t mesh_filter_req_parse(const char *body, size_t n, mesh_filter_rec_t *out,
                                    mesh_err_t *err);
mesh_status_t mesh_login_req_parse(const char *body, size_t n, mesh_login_req_t *out,
                                   mesh_err_t *err);
/* A principal name: 1-63 of [A-Za-z0-9_.@-], not starting with a punctuation mark. */
bool mesh_principal_name_ok(const char *name);
/* Wipes the secrets a request held. */
void mesh_principal_req_wipe(mesh_principal_req_t *r);
void mesh_login_req_wipe(mesh_login_req_t *r);

#endif
