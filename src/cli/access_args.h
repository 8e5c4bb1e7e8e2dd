/*
 * access_args.h - the command-line syntax of meshctl's access-control commands, parsed and
 * checked locally before anything is sent: grant scopes, a grant's words, role lists and
 * column paths.
 *
 * Scope syntax (`meshctl grant ROLE ACTION [on] SCOPE`):
 *
 *   '*'                     the whole mesh: every domain (quote it for the shell)
 *   icu                     the domain icu and all its products ("icu.*" is the same)
 *   icu.vitals              the product icu.vitals
 *   icu.vitals:hr,spo2      the columns hr and spo2 of icu.vitals (read grants only)
 *   'icu.vitals(hr,spo2)'   the same, the way SQL writes a column list
 *
 * A scope is never implied: a grant with no scope would cover the whole mesh, so that has to
 * be said with '*' (only audit, which exists on the mesh alone, may leave it out).
 *
 * Everything here is pure (no I/O, no allocation), so the unit tests and the fuzz target
 * (fuzz/fuzz_cli_access_args.c) compile this file in directly. Errors are MESH_INVALID with
 * a message that says what was expected; parsers never echo more than 60 bytes of input.
 */
#ifndef MESH_CLI_ACCESS_ARGS_H
#define MESH_CLI_ACCESS_ARGS_H

#include <stdbool.h>
#include <stddef.h>

#include "catalog/security.h"
#include "core/status.h"
#include "core/util.h"

#define MESH_CLI_NAMES_MAX   64 /* names in one list (the server's limit) */
#define MESH_CLI_ARG_ECHO    60 /* bytes of a bad argument quoted back in a message */
#define MESH_CLI_ACTION_TEXT 8  /* "read", "write", "admin", "audit" + NUL */

/* A grant's scope. domain "" is the mesh; product "" the whole domain. */
typedef struct mesh_cli_scope {
    char domain[MESH_NAME_MAX + 1];
    char product[MESH_NAME_MAX + 1];
    size_t ncolumns; /* 0: every column */
    char columns[MESH_CLI_NAMES_MAX][MESH_NAME_MAX + 1];
} mesh_cli_scope_t;

/* `ROLE ACTION [on] SCOPE` checked. */
typedef struct mesh_cli_grant {
    char role[MESH_ROLE_MAX + 1];
    char action[MESH_CLI_ACTION_TEXT]; /* read | write | admin | audit (lower case) */
    mesh_cli_scope_t scope;
} mesh_cli_grant_t;

/* A list of role names ("analyst,ward-a"), or "*" alone when allowed. */
typedef struct mesh_cli_names {
    size_t n;
    char name[MESH_CLI_NAMES_MAX][MESH_ROLE_MAX + 1];
} mesh_cli_names_t;

/* Parses a scope (syntax above) into *out. MESH_INVALID with err on anything else. */
mesh_status_t mesh_cli_scope_parse(const char *s, mesh_cli_scope_t *out, mesh_err_t *err);

/* Writes a scope in the syntax above ("*", "icu", "icu.vitals", "icu.vitals:hr,spo2") to out
 * (cap bytes; truncated text ends in "..."). Returns out. */
const char *mesh_cli_scope_format(const mesh_cli_scope_t *s, char *out, size_t cap);

/*
 * Parses the positional words of `meshctl grant` (argv[0] is the role): ROLE ACTION [on]
 * [SCOPE]. The action is case-insensitive; "on" (any case) is a keyword only when a scope
 * follows it, so a domain called "on" can still be named. Column scopes go with read only;
 * audit goes with the mesh only. MESH_INVALID with err otherwise.
 */
mesh_status_t mesh_cli_grant_parse(int argc, const char *const *argv, mesh_cli_grant_t *out,
                                   mesh_err_t *err);

/*
 * Parses a comma-separated list of role names (blanks around names are ignored); allow_star
 * accepts "*" (everyone) as the whole list. allow_empty accepts "" as an empty list (to take
 * every role away). Duplicates and empty names are refused. what names the list in messages
 * ("--roles").
 */
mesh_status_t mesh_cli_roles_parse(const char *s, const char *what, bool allow_star,
                                   bool allow_empty, mesh_cli_names_t *out, mesh_err_t *err);

/* Splits "DOMAIN.PRODUCT.COLUMN" into checked names (buffers of MESH_NAME_MAX + 1). */
mesh_status_t mesh_cli_column_path_parse(const char *s, char *domain, char *product, char *column,
                                         mesh_err_t *err);

/* A policy id (grant, mask, row filter): a whole number from 1. */
mesh_status_t mesh_cli_policy_id_parse(const char *s, long long *out, mesh_err_t *err);

/* A token id: 32 lower-case hex characters (as `meshctl token list` shows). A text that looks
 * like a token itself is refused without being quoted back. */
mesh_status_t mesh_cli_token_id_check(const char *s, mesh_err_t *err);

#endif
