/*
 * cli.h - what every meshctl command shares: the run context, the declarative command and
 * option tables (which drive argument parsing, `--help` and the generated reference in
 * docs/meshctl.md), error reporting with exit codes, and small output helpers.
 *
 * Design: each command is one row of a mesh_cli_cmd_t table (name, arguments, options,
 * help text, examples, run function), kept beside its code in cmd_*.c. meshctl.c parses the
 * global options, finds the command, parses its arguments with mesh_cli_parse(), resolves
 * the settings (flag > environment > config file > default), opens the HTTP client and
 * calls run(). A command returns its exit code; every error goes through one of the
 * mesh_cli_fail*() functions, which print `meshctl: <message>` on stderr and return the
 * exit code of the status (mesh_status_exit), so the exit codes are the ones of
 * core/status.h. Local usage errors use MESH_INVALID's code (2); a local file that cannot
 * be read or written exits 1 (MESH_CLI_EXIT_LOCAL).
 */
#ifndef MESH_CLI_CLI_H
#define MESH_CLI_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/client.h"
#include "cli/table.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/status.h"

#define MESH_CLI_EXIT_LOCAL 1 /* a local file could not be read or written */

/* ---- settings (global options that may also come from the environment or a file) ---- */

typedef struct mesh_cli_settings {
    char *url;        /* comma-separated base URLs */
    char *token;      /* secret: never printed */
    char *token_file; /* file whose first line is the token */
    char *config;     /* config file path (flag or environment only) */
    int64_t timeout;  /* ns without any data moving before a request is abandoned; 0 none */
    char *cacert;     /* PEM CA file verifying the node's TLS certificate */
    char *pin;        /* pinned certificate fingerprints "sha256:HEX[,...]" */
    char *cert;       /* PEM client certificate */
    char *key;        /* PEM key of cert */
} mesh_cli_settings_t;

/* ---- the run context ---- */

struct mesh_cli_cmd;

typedef struct mesh_cli {
    mesh_cli_settings_t flags;      /* values given as flags (NULL / -1: not given) */
    const char *format;             /* --format as given, NULL when absent */
    bool quiet;                     /* -q: no informational output */
    bool out_tty;                   /* stdout is a terminal */
    bool err_tty;                   /* stderr is a terminal */
    bool color;                     /* stdout is a terminal and NO_COLOR is unset */
    mesh_client_t *client;          /* opened by the dispatcher before run() */
    const struct mesh_cli_cmd *cmd; /* the running command */
    const mesh_cli_settings_t *set; /* the resolved settings (url, timeout; token_file is the
                                       login file, see MESH_CLI_OWN_TOKEN) */
    const char *token_origin;       /* where the token came from ("MESH_TOKEN", "--token-file",
                                       "the login file"), NULL when there is none; for login
                                       and logout: a token (not a file) that wins over the
                                       login file, else NULL */
    const char *token_path;         /* the file the token was read from, or NULL */
    bool token_is_login;            /* that file was written by `meshctl login` */
} mesh_cli_t;

/* ---- commands and their options ---- */

#define MESH_CLI_MULTI 0x1 /* the option may be given more than once */

/* Command flags. OWN_TOKEN: the command handles the token settings itself (login, logout):
 * no token is read or sent, and cli->set->token_file is the login file, the file of
 * --token-file / MESH_TOKEN_FILE / token_file when one is given, else the default one. */
#define MESH_CLI_OWN_TOKEN 0x1

typedef struct mesh_cli_opt {
    const char *name;    /* long name without "--"; NULL ends a table */
    char short_name;     /* 0: none */
    const char *metavar; /* NULL: a flag without a value */
    unsigned flags;      /* MESH_CLI_MULTI */
    const char *help;    /* one or more sentences */
} mesh_cli_opt_t;

typedef struct mesh_cli_args mesh_cli_args_t;

typedef struct mesh_cli_cmd {
    const char *name;           /* "domain create"; NULL ends a table */
    const char *usage;          /* arguments after the name: "NAME [OPTIONS]" */
    const char *summary;        /* one line for the command list */
    const char *text;           /* the description (lines of at most 80 columns) */
    const char *formats;        /* "table|json|csv" accepted by --format (first is the default), or
                                   NULL when the command takes no --format */
    const char *format_help;    /* help of --format when the generic one does not fit */
    const mesh_cli_opt_t *opts; /* the command's own options, or NULL */
    int min_args, max_args;     /* positional arguments (max -1: any number) */
    const char *examples;       /* lines */
    const char *exits;          /* exit codes of this command (lines) */
    unsigned flags;             /* MESH_CLI_OWN_TOKEN */
    int (*run)(mesh_cli_t *cli, const mesh_cli_args_t *a);
} mesh_cli_cmd_t;

/* The commands of each group, each table ended by a row whose name is NULL. */
extern const mesh_cli_cmd_t mesh_cli_status_cmds[];
extern const mesh_cli_cmd_t mesh_cli_domain_cmds[];
extern const mesh_cli_cmd_t mesh_cli_product_cmds[];
extern const mesh_cli_cmd_t mesh_cli_ingest_cmds[];
extern const mesh_cli_cmd_t mesh_cli_query_cmds[];
extern const mesh_cli_cmd_t mesh_cli_catalog_cmds[];
extern const mesh_cli_cmd_t mesh_cli_quality_cmds[];
extern const mesh_cli_cmd_t mesh_cli_login_cmds[];
extern const mesh_cli_cmd_t mesh_cli_user_cmds[];
extern const mesh_cli_cmd_t mesh_cli_token_cmds[];
extern const mesh_cli_cmd_t mesh_cli_role_cmds[];
extern const mesh_cli_cmd_t mesh_cli_grant_cmds[];
extern const mesh_cli_cmd_t mesh_cli_mask_cmds[];
extern const mesh_cli_cmd_t mesh_cli_filter_cmds[];
extern const mesh_cli_cmd_t mesh_cli_keys_cmds[];
extern const mesh_cli_cmd_t mesh_cli_audit_cmds[];
extern const mesh_cli_cmd_t mesh_cli_rule_cmds[];
extern const mesh_cli_cmd_t mesh_cli_alert_cmds[];
extern const mesh_cli_cmd_t mesh_cli_backup_cmds[];
extern const mesh_cli_cmd_t mesh_cli_classify_cmds[];
extern const mesh_cli_cmd_t mesh_cli_mesh_cmds[];
extern const mesh_cli_cmd_t mesh_cli_mqtt_cmds[];
extern const mesh_cli_cmd_t mesh_cli_governance_cmds[];
extern const mesh_cli_cmd_t mesh_cli_lineage_cmds[];
/* product derive (cmd_lineage.c) */
extern const mesh_cli_opt_t mesh__cli_derive_opts[];
int mesh__cli_run_derive(mesh_cli_t *cli, const mesh_cli_args_t *a);

/* The settings table (meshctl.c): url, token, token_file, config, timeout, cacert, pin,
 * cert, key; accepted as
 * flags before and after every command, with -q/--quiet, -h/--help and --format. */
extern const mesh_opts_spec_t mesh_cli_settings_spec;

/*
 * Parses the arguments of cmd (argv[0] is the first argument after the command's name).
 * Global options are applied to cli. With stop_at_positional the parse ends at the first
 * positional argument (used for the options before the command; the caller then prints the
 * help itself). Returns 0 with *out set (free with mesh_cli_args_free), -1 when --help was
 * asked for (and shown, unless stop_at_positional: exit 0), or an exit code after printing a
 * usage error.
 */
int mesh_cli_parse(mesh_cli_t *cli, const mesh_cli_cmd_t *cmd, int argc, char **argv,
                   bool stop_at_positional, mesh_cli_args_t **out);
void mesh_cli_args_free(mesh_cli_args_t *a);
/* The last value of an option, or NULL when it was not given. */
const char *mesh_cli_arg(const mesh_cli_args_t *a, const char *name);
/* The i-th value (0-based) of a repeatable option, or NULL past the last. */
const char *mesh_cli_arg_at(const mesh_cli_args_t *a, const char *name, size_t i);
bool mesh_cli_flag(const mesh_cli_args_t *a, const char *name);
/* Positional arguments (borrowed from argv). */
int mesh_cli_npos(const mesh_cli_args_t *a);
const char *mesh_cli_pos(const mesh_cli_args_t *a, int i);
/* An integer option within [min, max] (def when absent). Returns 0 or a usage exit code. */
int mesh_cli_arg_int(mesh_cli_t *cli, const mesh_cli_args_t *a, const char *name, int64_t def,
                     int64_t min, int64_t max, int64_t *out);
/* True when f is one of formats ("table|json|csv"). */
bool mesh_cli_format_ok(const char *formats, const char *f);
/* The output format: --format when given (already checked against cmd->formats), else
 * the command's default (its first format, or "table" on a terminal and "json" otherwise
 * when def_tty_only is set). */
const char *mesh_cli_format(const mesh_cli_t *cli, bool def_tty_only);

/* Writes the help of one command (text for --help, or Markdown for the reference). */
void mesh_cli_help_cmd(const mesh_cli_cmd_t *cmd, FILE *out, bool markdown);
/* Writes text for a Markdown table cell ('|' escaped). */
void mesh_cli_md_cell(FILE *out, const char *text);
/* Writes text word-wrapped to 80 columns: the first line after first_indent characters
 * already written, the following ones indented by indent spaces. */
void mesh_cli_wrap(FILE *out, const char *text, size_t first_indent, size_t indent);

/* ---- errors ---- */

/* Prints `meshctl: <message>` and returns mesh_status_exit(st). */
int mesh_cli_fail(mesh_cli_t *cli, mesh_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prints a usage error naming the command and pointing at its --help; returns 2. */
int mesh_cli_usage(mesh_cli_t *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints a local error (a file that cannot be read or written); returns 1. */
int mesh_cli_local(mesh_cli_t *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the error of a failed request (with the server's code in brackets when the server
 * answered, prefixed by `what: ` when what is not NULL) and its details; returns its exit
 * code. */
int mesh_cli_report(mesh_cli_t *cli, const mesh_client_result_t *res, const char *what);
/* Prints error details: strings one per line, row errors as "row N, column C: reason". */
void mesh_cli_print_details(FILE *out, const json_t *details, size_t max);

/*
 * Sends req and, on a 2xx answer, parses its JSON body into *out (NULL for an empty body;
 * out may be NULL when the body is not wanted). On failure prints the error and returns its
 * exit code; returns 0 on success. The caller json_decref()s *out.
 */
int mesh_cli_call(mesh_cli_t *cli, const mesh_client_req_t *req, json_t **out);

/*
 * Sends body (a JSON object, borrowed) with method to path and parses a JSON answer into *out
 * like mesh_cli_call (out may be NULL). A body that is not UTF-8 is a usage error. Returns 0
 * or the exit code after printing the error.
 */
int mesh_cli_send_json(mesh_cli_t *cli, const char *method, const char *path, const json_t *body,
                       json_t **out);
/* Builds prefix + the percent-encoded seg ("/v1/principals/" + "ana") into b (free it with
 * mesh_buf_free). Returns 0 or an exit code. */
int mesh_cli_path(mesh_cli_t *cli, mesh_buf_t *b, const char *prefix, const char *seg);
/* Appends the strings of a JSON array joined by sep to b ("" for none or a non-array). */
void mesh_cli_join(mesh_buf_t *b, const json_t *arr, const char *sep);

/* Sends req and copies a 2xx answer to stdout as it arrives (the server's bytes, e.g. a
 * contract's YAML or --format json). Returns 0 or the exit code after printing the error. */
int mesh_cli_raw(mesh_cli_t *cli, const mesh_client_req_t *req);
/* GET-like requests that print the node's JSON as it is with --format json: sends req and
 * then either copies the answer to stdout (*out NULL) or parses it into *out. Returns 0 or the
 * exit code after printing the error. */
int mesh_cli_get(mesh_cli_t *cli, const mesh_client_req_t *req, json_t **out);

/* A column of a listing: its header in CSV output (the node's JSON name), its title in a
 * table, its alignment and the most characters a table shows of a cell (0: all). */
typedef struct mesh_cli_col {
    const char *csv;
    const char *title;
    mesh_align_t align;
    size_t max_width;
} mesh_cli_col_t;

/*
 * The common start of a listing: sends req; with --format json copies the node's answer to
 * stdout and leaves *out NULL; otherwise parses it into *out and makes *t with the columns
 * (titles, or CSV headers when *csv). Returns 0 (then the caller fills and emits *t, and
 * frees both when *out is set) or the exit code after printing the error.
 */
int mesh_cli_list(mesh_cli_t *cli, const mesh_client_req_t *req, const mesh_cli_col_t *cols,
                  size_t ncols, json_t **out, mesh_table_t **t, bool *csv);

/* Prints t to stdout as fmt: "csv", or an aligned table for anything else. */
void mesh_cli_emit_table(const mesh_cli_t *cli, const mesh_table_t *t, const char *fmt);

/* ---- helpers ---- */

/* Splits "domain.product" into its checked names (buffers of MESH_NAME_MAX + 1). Returns 0
 * or a usage exit code. */
int mesh_cli_product_name(mesh_cli_t *cli, const char *arg, char *domain, char *product);
/* Checks a domain name; returns 0 or a usage exit code. */
int mesh_cli_domain_name(mesh_cli_t *cli, const char *arg);
/* Makes server text safe to print on a terminal, in place: line breaks and tabs become
 * spaces, other control characters (terminal escapes) '?'. */
void mesh_cli_clean(char *s);
/* "12.3 MiB" for n bytes into out (at least 16 bytes). */
const char *mesh_cli_bytes(int64_t n, char *out, size_t cap);
/* "2026-11-23T10:00:00Z" from an ISO time with a fraction (the fraction dropped); "-" for
 * NULL. out holds at least MESH_CLI_TIME_MAX bytes. */
#define MESH_CLI_TIME_MAX 48
const char *mesh_cli_short_time(const char *iso, char *out);
/* A JSON number or string as text, the way the server writes it ("21.0", "3"); NULL for
 * null or a missing value. Valid until the next call with the same buffer. */
const char *mesh_cli_json_text(const json_t *v, char *tmp, size_t cap);
/* Object member helpers that tolerate absent or mistyped members. */
const char *mesh_cli_jstr(const json_t *o, const char *key);
int64_t mesh_cli_jint(const json_t *o, const char *key);
/* Reads a whole file ("-": stdin) of at most max bytes; returns 0 or an exit code (after
 * printing why). *out is malloc'd and NUL-terminated. */
int mesh_cli_read_input(mesh_cli_t *cli, const char *path, size_t max, char **out, size_t *len);
/* Writes n bytes to stdout; false (after printing why) when stdout fails. */
bool mesh_cli_write_out(const char *p, size_t n);

#endif
