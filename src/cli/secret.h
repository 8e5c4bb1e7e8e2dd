/*
 * secret.h - the secrets meshctl handles besides the API token: passwords and the token file
 * `meshctl login` writes.
 *
 * Passwords never come from the command line (argv is visible to every user in `ps`): they
 * are read from standard input (--password-stdin), from a file (--password-file), or typed
 * at the terminal with echo off. Every buffer that held one is wiped before it is freed, and
 * request bodies that carry one are built in a buffer reserved up front so that no copy is
 * left behind by a reallocation.
 *
 * The login file: the token on its first line (what --token-file reads), then a comment line
 * that marks the file as written by `meshctl login` (who, where, until when). Only files with
 * that mark are replaced by login or removed by logout, so a token file written by hand (a
 * service's token) is never overwritten or deleted. The file is written whole to a temporary
 * name with mode 0600 and renamed into place.
 */
#ifndef MESH_CLI_SECRET_H
#define MESH_CLI_SECRET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "auth/scram.h"
#include "cli/cli.h"

/* A password buffer: MESH_PASSWORD_MAX bytes, a NUL, and one byte to see a longer line. */
#define MESH_CLI_PASSWORD_CAP (MESH_PASSWORD_MAX + 2)

/* The options every command reading a password offers (--password-stdin, --password-file);
 * command tables copy these two rows. */
#define MESH_CLI_OPT_PASSWORD_STDIN "password-stdin"
#define MESH_CLI_OPT_PASSWORD_FILE  "password-file"

typedef enum {
    MESH_CLI_PW_NONE,     /* no password (neither option, and prompting was not asked for) */
    MESH_CLI_PW_FD,       /* lines of standard input or of a file */
    MESH_CLI_PW_TERMINAL, /* typed at the terminal, echo off */
} mesh_cli_pw_kind_t;

typedef struct mesh_cli_pwsrc {
    mesh_cli_pw_kind_t kind;
    int fd;           /* MESH_CLI_PW_FD: where lines come from */
    bool own_fd;      /* the fd was opened here (a --password-file) */
    const char *name; /* "standard input", the file's path, "the terminal" (for messages) */
} mesh_cli_pwsrc_t;

/*
 * Chooses where passwords come from: --password-stdin, --password-file FILE, else the
 * terminal when prompt is set and standard input is one, else nothing (kind NONE) when
 * prompt is not set. Giving both options, or needing a prompt without a terminal, is a usage
 * error. Returns 0 or an exit code; close with mesh_cli_pw_close.
 */
int mesh_cli_pw_open(mesh_cli_t *cli, const mesh_cli_args_t *a, bool prompt, mesh_cli_pwsrc_t *src);
void mesh_cli_pw_close(mesh_cli_pwsrc_t *src);

/*
 * Reads the next password: the next line of the fd (without its line end), or one typed at
 * the terminal after prompt (echo off; the terminal is restored even on Ctrl-C). what names
 * it in messages ("the current password"). A new password (is_new) must have at least
 * MESH_PASSWORD_MIN characters and is asked twice at a terminal. Every password must be UTF-8
 * and at most MESH_PASSWORD_MAX bytes. out holds MESH_CLI_PASSWORD_CAP bytes; the caller
 * wipes it. Returns 0 or an exit code (2 for a bad password, 1 when it cannot be read).
 */
int mesh_cli_pw_read(mesh_cli_t *cli, mesh_cli_pwsrc_t *src, const char *prompt, const char *what,
                     bool is_new, char *out);

/*
 * Builds a JSON request body from plain (an object without secrets, left unchanged) plus the
 * secret string members key1=val1 and key2=val2 (key2, or both, may be NULL) into b, reserved
 * once so
 * the secrets are never copied by a reallocation. Wipe and free it with
 * mesh_cli_secret_body_free. Returns 0 or an exit code.
 */
int mesh_cli_secret_body(mesh_cli_t *cli, const json_t *plain, const char *key1, const char *val1,
                         const char *key2, const char *val2, mesh_buf_t *b);
void mesh_cli_secret_body_free(mesh_buf_t *b);
/* Overwrites the value of the string member key of o (a token in an answer) before it is
 * freed with o. */
void mesh_cli_json_wipe(json_t *o, const char *key);

/* ---- the login file ---- */

typedef enum {
    MESH_CLI_LOGIN_NONE,    /* no file */
    MESH_CLI_LOGIN_OURS,    /* a file `meshctl login` wrote */
    MESH_CLI_LOGIN_FOREIGN, /* some other file (a token file written by hand) */
} mesh_cli_login_state_t;

/* The default place of the login file: $XDG_CONFIG_HOME/meshctl/token, else
 * ~/.config/meshctl/token. False when neither variable is set. */
bool mesh_cli_login_default_path(char *out, size_t cap);

/* What is at path; when it is ours and token is not NULL, *token is its token (malloc'd:
 * wipe and free it). Returns 0 or an exit code (the file exists but cannot be read). */
int mesh_cli_login_inspect(mesh_cli_t *cli, const char *path, mesh_cli_login_state_t *state,
                           char **token);

/* Writes the login file at path (mode 0600, atomically): token, then the mark with note
 * (one line: who, where, until when). mkdir makes the missing directories (mode 0700).
 * Returns 0 or an exit code. */
int mesh_cli_login_write(mesh_cli_t *cli, const char *path, bool mkdir, const char *token,
                         const char *note);

#endif
