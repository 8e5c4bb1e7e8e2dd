/*
 * config.h - options from one declarative table.
 *
 * A program declares its options once (name, type, bounds, default, help) in an array of
 * mesh_opt_t. The same table then drives the config file (`name = value` lines), the
 * command-line flags (`--name value` or `--name=value`, '_' written as '-'), the environment
 * (PREFIX + NAME upper-cased, e.g. MESHD_DATA_DIR) and the generated --help text.
 * Precedence, lowest first: default, config file, environment, flag. Every error names where
 * the value came from (file:line, the variable or the flag) and why it was refused.
 */
#ifndef MESH_CORE_CONFIG_H
#define MESH_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

typedef enum {
    MESH_OPT_STRING,   /* char * (malloc'd, freed by mesh_opts_free) */
    MESH_OPT_INT,      /* int64_t, within [min, max] */
    MESH_OPT_SIZE,     /* int64_t bytes; accepts 10, 64KiB, 64MiB, 1GiB, 64k, 64M, 1G */
    MESH_OPT_DURATION, /* int64_t nanoseconds; accepts 500ms, 30s, 5m, 24h, 7d */
    MESH_OPT_BOOL,     /* bool */
    MESH_OPT_ENUM,     /* char *, one of choices ("a|b|c") */
    MESH_OPT_LIST,     /* char *: every value given (file lines, flags, the environment variable),
                          in order, separated by '\n'; NULL when none */
} mesh_opt_type_t;

#define MESH_OPT_SECRET 0x1 /* never printed (help shows no default, dumps show ***) */
#define MESH_OPT_NOFILE 0x2 /* flag or environment only (e.g. the config file path) */

typedef struct mesh_opt {
    const char *name; /* snake_case */
    mesh_opt_type_t type;
    size_t offset;       /* offsetof the field in the options struct */
    const char *def;     /* default as text (NULL: empty / 0 / false) */
    int64_t min, max;    /* for INT, SIZE, DURATION (0, 0: unbounded) */
    const char *choices; /* for ENUM: "a|b|c" */
    unsigned flags;
    const char *metavar; /* e.g. "DIR", "ADDR:PORT" */
    const char *help;
} mesh_opt_t;

typedef struct mesh_opts_spec {
    const mesh_opt_t *opts;
    size_t nopts;
    const char *env_prefix; /* "MESHD_" */
} mesh_opts_spec_t;

/* Sets every option of the struct at base to its default. */
mesh_status_t mesh_opts_defaults(const mesh_opts_spec_t *spec, void *base, mesh_err_t *err);
/* Applies `name = value` lines of a file. Errors name path:line. */
mesh_status_t mesh_opts_load_file(const mesh_opts_spec_t *spec, void *base, const char *path,
                                  mesh_err_t *err);
/* Same from text already in memory; origin is used in messages. */
mesh_status_t mesh_opts_load_text(const mesh_opts_spec_t *spec, void *base, const char *text,
                                  const char *origin, mesh_err_t *err);
/* Applies PREFIX_NAME environment variables. */
mesh_status_t mesh_opts_load_env(const mesh_opts_spec_t *spec, void *base, mesh_err_t *err);
/* Sets one option by name from text; origin names the source for errors. */
mesh_status_t mesh_opts_set(const mesh_opts_spec_t *spec, void *base, const char *name,
                            const char *value, const char *origin, mesh_err_t *err);
/* Finds an option by its flag spelling ("data-dir") or name ("data_dir"). */
const mesh_opt_t *mesh_opts_find(const mesh_opts_spec_t *spec, const char *name);
/* Frees the strings held by the struct. */
void mesh_opts_free(const mesh_opts_spec_t *spec, void *base);
/* Writes the --help section for all options (flag, metavar, env, default, help). */
void mesh_opts_help(const mesh_opts_spec_t *spec, FILE *out);
/* Writes the options as a Markdown table (docs/configuration.md is generated from it). */
void mesh_opts_markdown(const mesh_opts_spec_t *spec, FILE *out);
/* Writes an annotated example config file with every option commented out at its default. */
void mesh_opts_example(const mesh_opts_spec_t *spec, FILE *out);
/* Parses a size ("64MiB") into bytes. */
mesh_status_t mesh_parse_size(const char *s, int64_t *out);

#endif
