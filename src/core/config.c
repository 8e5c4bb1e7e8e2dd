/*
 * config.c - the declarative option table: defaults, file, environment, flags and help.
 */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define LINE_MAX_BYTES 4096

static void *field(void *base, const mesh_opt_t *o)
{
    return (char *)base + o->offset;
}

static void flag_spelling(const char *name, char *out, size_t n)
{
    size_t i = 0;
    for (; name[i] && i + 1 < n; i++)
        out[i] = name[i] == '_' ? '-' : name[i];
    out[i] = '\0';
}

const mesh_opt_t *mesh_opts_find(const mesh_opts_spec_t *spec, const char *name)
{
    char norm[128];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof norm; i++)
        norm[i] = name[i] == '-' ? '_' : name[i];
    norm[i] = '\0';
    for (size_t k = 0; k < spec->nopts; k++)
        if (strcmp(spec->opts[k].name, norm) == 0)
            return &spec->opts[k];
    return NULL;
}

mesh_status_t mesh_parse_size(const char *s, int64_t *out)
{
    char *end;
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return MESH_PARSE;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return MESH_PARSE;
    static const struct {
        const char *suffix;
        unsigned long long mult;
    } units[] = {{"", 1},
                 {"b", 1},
                 {"k", 1ULL << 10},
                 {"kb", 1ULL << 10},
                 {"kib", 1ULL << 10},
                 {"m", 1ULL << 20},
                 {"mb", 1ULL << 20},
                 {"mib", 1ULL << 20},
                 {"g", 1ULL << 30},
                 {"gb", 1ULL << 30},
                 {"gib", 1ULL << 30},
                 {"t", 1ULL << 40},
                 {"tib", 1ULL << 40}};
    for (size_t i = 0; i < MESH_ARRAY_LEN(units); i++) {
        if (mesh_streqi(end, strlen(end), units[i].suffix)) {
            if (v > (unsigned long long)INT64_MAX / units[i].mult)
                return MESH_PARSE;
            *out = (int64_t)(v * units[i].mult);
            return MESH_OK;
        }
    }
    return MESH_PARSE;
}

static mesh_status_t check_range(const mesh_opt_t *o, int64_t v, const char *value,
                                 const char *origin, mesh_err_t *err)
{
    if ((o->min != 0 || o->max != 0) && (v < o->min || v > o->max))
        return mesh_err_set(err, MESH_INVALID, "%s: %s = %s is out of range [%lld, %lld]", origin,
                            o->name, value, (long long)o->min, (long long)o->max);
    return MESH_OK;
}

static bool enum_has(const char *choices, const char *v)
{
    size_t vl = strlen(v);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == vl && strncmp(p, v, l) == 0)
            return true;
        if (!bar)
            break;
        p = bar + 1;
    }
    return false;
}

mesh_status_t mesh_opts_set(const mesh_opts_spec_t *spec, void *base, const char *name,
                            const char *value, const char *origin, mesh_err_t *err)
{
    const mesh_opt_t *o = mesh_opts_find(spec, name);
    if (o == NULL)
        return mesh_err_set(err, MESH_INVALID, "%s: unknown option '%s'", origin, name);
    void *f = field(base, o);
    int64_t v = 0;
    switch (o->type) {
    case MESH_OPT_LIST: {
        char **slot = f;
        if (strchr(value, '\n'))
            return mesh_err_set(err, MESH_INVALID, "%s: %s: a value may not hold a line break",
                                origin, o->name);
        size_t old = *slot ? strlen(*slot) : 0, n = strlen(value);
        char *grown = realloc(*slot, old + n + 2);
        if (grown == NULL)
            return mesh_err_set(err, MESH_NOMEM, "out of memory");
        if (old)
            grown[old++] = '\n';
        memcpy(grown + old, value, n + 1);
        *slot = grown;
        return MESH_OK;
    }
    case MESH_OPT_STRING:
    case MESH_OPT_ENUM: {
        if (o->type == MESH_OPT_ENUM && !enum_has(o->choices, value))
            return mesh_err_set(err, MESH_INVALID, "%s: %s = '%s' is not one of %s", origin,
                                o->name, value, o->choices);
        char *copy = strdup(value);
        if (copy == NULL)
            return mesh_err_set(err, MESH_NOMEM, "out of memory");
        char **slot = f;
        free(*slot);
        *slot = copy;
        return MESH_OK;
    }
    case MESH_OPT_INT:
        if (mesh_parse_i64(value, strlen(value), &v) != MESH_OK)
            return mesh_err_set(err, MESH_INVALID, "%s: %s = '%s' is not an integer", origin,
                                o->name, value);
        break;
    case MESH_OPT_SIZE:
        if (mesh_parse_size(value, &v) != MESH_OK)
            return mesh_err_set(err, MESH_INVALID,
                                "%s: %s = '%s' is not a size (e.g. 4096, 64KiB, 16MiB, 1GiB)",
                                origin, o->name, value);
        break;
    case MESH_OPT_DURATION:
        if (mesh_duration_parse(value, &v) != MESH_OK)
            return mesh_err_set(err, MESH_INVALID,
                                "%s: %s = '%s' is not a duration (e.g. 500ms, 30s, 5m, 24h)",
                                origin, o->name, value);
        break;
    case MESH_OPT_BOOL: {
        bool bv;
        if (mesh_parse_bool(value, strlen(value), &bv) != MESH_OK)
            return mesh_err_set(err, MESH_INVALID, "%s: %s = '%s' is not true or false", origin,
                                o->name, value);
        *(bool *)f = bv;
        return MESH_OK;
    }
    }
    mesh_status_t st = check_range(o, v, value, origin, err);
    if (st != MESH_OK)
        return st;
    *(int64_t *)f = v;
    return MESH_OK;
}

mesh_status_t mesh_opts_defaults(const mesh_opts_spec_t *spec, void *base, mesh_err_t *err)
{
    for (size_t i = 0; i < spec->nopts; i++) {
        const mesh_opt_t *o = &spec->opts[i];
        if (o->def == NULL) {
            if (o->type == MESH_OPT_STRING || o->type == MESH_OPT_ENUM || o->type == MESH_OPT_LIST)
                *(char **)field(base, o) = NULL;
            else if (o->type == MESH_OPT_BOOL)
                *(bool *)field(base, o) = false;
            else
                *(int64_t *)field(base, o) = 0;
            continue;
        }
        mesh_status_t st = mesh_opts_set(spec, base, o->name, o->def, "default", err);
        if (st != MESH_OK)
            return st;
    }
    return MESH_OK;
}

/* Strips a trailing comment and surrounding blanks; unquotes "..." values. Returns false on
 * an unterminated quote. */
static bool clean_value(char *v)
{
    while (isspace((unsigned char)*v))
        memmove(v, v + 1, strlen(v));
    if (*v == '"') {
        char *w = v, *r = v + 1;
        while (*r && *r != '"') {
            if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
                r++;
            *w++ = *r++;
        }
        if (*r != '"')
            return false;
        r++;
        while (isspace((unsigned char)*r))
            r++;
        if (*r != '\0' && *r != '#')
            return false;
        *w = '\0';
        return true;
    }
    /* a comment starts at a '#' after a blank (a space or a tab); "a#b" is a value */
    for (char *c = v + 1; *v && *c; c++) {
        if (*c == '#' && isspace((unsigned char)c[-1])) {
            *c = '\0';
            break;
        }
    }
    if (*v == '#')
        *v = '\0';
    size_t n = strlen(v);
    while (n > 0 && isspace((unsigned char)v[n - 1]))
        v[--n] = '\0';
    return true;
}

mesh_status_t mesh_opts_load_text(const mesh_opts_spec_t *spec, void *base, const char *text,
                                  const char *origin, mesh_err_t *err)
{
    const char *p = text;
    int lineno = 0;
    while (*p) {
        lineno++;
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char where[512];
        snprintf(where, sizeof where, "%s:%d", origin, lineno);
        if (len >= LINE_MAX_BYTES)
            return mesh_err_set(err, MESH_INVALID, "%s: line longer than %d bytes", where,
                                LINE_MAX_BYTES);
        char line[LINE_MAX_BYTES];
        memcpy(line, p, len);
        line[len] = '\0';
        if (len && line[len - 1] == '\r')
            line[len - 1] = '\0';
        p = nl ? nl + 1 : p + len;

        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL)
            return mesh_err_set(err, MESH_INVALID, "%s: expected 'name = value'", where);
        *eq = '\0';
        char *name = s;
        size_t nl2 = strlen(name);
        while (nl2 > 0 && isspace((unsigned char)name[nl2 - 1]))
            name[--nl2] = '\0';
        char *value = eq + 1;
        if (!clean_value(value))
            return mesh_err_set(err, MESH_INVALID, "%s: unterminated or malformed quoted value",
                                where);
        const mesh_opt_t *o = mesh_opts_find(spec, name);
        if (o == NULL)
            return mesh_err_set(err, MESH_INVALID, "%s: unknown option '%s'", where, name);
        if (o->flags & MESH_OPT_NOFILE)
            return mesh_err_set(err, MESH_INVALID, "%s: '%s' can only be given as a flag", where,
                                name);
        mesh_status_t st = mesh_opts_set(spec, base, name, value, where, err);
        if (st != MESH_OK)
            return st;
    }
    return MESH_OK;
}

mesh_status_t mesh_opts_load_file(const mesh_opts_spec_t *spec, void *base, const char *path,
                                  mesh_err_t *err)
{
    char *text;
    mesh_status_t st = mesh_read_file(path, 1 << 20, &text, NULL, err);
    if (st != MESH_OK)
        return st;
    st = mesh_opts_load_text(spec, base, text, path, err);
    free(text);
    return st;
}

mesh_status_t mesh_opts_load_env(const mesh_opts_spec_t *spec, void *base, mesh_err_t *err)
{
    for (size_t i = 0; i < spec->nopts; i++) {
        const mesh_opt_t *o = &spec->opts[i];
        char var[128];
        size_t n = (size_t)snprintf(var, sizeof var, "%s", spec->env_prefix);
        for (const char *c = o->name; *c && n + 1 < sizeof var; c++)
            var[n++] = (char)toupper((unsigned char)*c);
        var[n] = '\0';
        const char *v = getenv(var);
        if (v == NULL)
            continue;
        char origin[160];
        snprintf(origin, sizeof origin, "environment %s", var);
        mesh_status_t st = mesh_opts_set(spec, base, o->name, v, origin, err);
        if (st != MESH_OK)
            return st;
    }
    return MESH_OK;
}

void mesh_opts_free(const mesh_opts_spec_t *spec, void *base)
{
    for (size_t i = 0; i < spec->nopts; i++) {
        const mesh_opt_t *o = &spec->opts[i];
        if (o->type == MESH_OPT_STRING || o->type == MESH_OPT_ENUM || o->type == MESH_OPT_LIST) {
            char **slot = field(base, o);
            free(*slot);
            *slot = NULL;
        }
    }
}

void mesh_opts_help(const mesh_opts_spec_t *spec, FILE *out)
{
    for (size_t i = 0; i < spec->nopts; i++) {
        const mesh_opt_t *o = &spec->opts[i];
        char flag[96], env[96];
        flag_spelling(o->name, flag, sizeof flag);
        size_t n = (size_t)snprintf(env, sizeof env, "%s", spec->env_prefix);
        for (const char *c = o->name; *c && n + 1 < sizeof env; c++)
            env[n++] = (char)toupper((unsigned char)*c);
        env[n] = '\0';
        const char *mv = o->metavar ? o->metavar : (o->type == MESH_OPT_BOOL ? "BOOL" : "VALUE");
        fprintf(out, "  --%s %s\n", flag, mv);
        fprintf(out, "      %s\n", o->help);
        if (o->type == MESH_OPT_ENUM)
            fprintf(out, "      One of: %s.\n", o->choices);
        if (o->type == MESH_OPT_LIST)
            fprintf(out, "      May be given more than once (every value counts).\n");
        if ((o->min || o->max) && o->type == MESH_OPT_INT)
            fprintf(out, "      Range: %lld..%lld.\n", (long long)o->min, (long long)o->max);
        fprintf(out, "      Environment: %s", env);
        if (!(o->flags & MESH_OPT_NOFILE))
            fprintf(out, "; config file: %s", o->name);
        if (o->def && !(o->flags & MESH_OPT_SECRET))
            fprintf(out, "; default: %s", o->def);
        fputs(".\n", out);
    }
}

static void env_name(const mesh_opts_spec_t *spec, const mesh_opt_t *o, char *env, size_t cap)
{
    size_t n = (size_t)snprintf(env, cap, "%s", spec->env_prefix);
    for (const char *c = o->name; *c && n + 1 < cap; c++)
        env[n++] = (char)toupper((unsigned char)*c);
    env[n] = '\0';
}

static const char *type_name(const mesh_opt_t *o)
{
    switch (o->type) {
    case MESH_OPT_INT:
        return "integer";
    case MESH_OPT_SIZE:
        return "size";
    case MESH_OPT_DURATION:
        return "duration";
    case MESH_OPT_BOOL:
        return "boolean";
    case MESH_OPT_ENUM:
        return "one of";
    case MESH_OPT_LIST:
        return "text, repeatable";
    default:
        return "text";
    }
}

void mesh_opts_markdown(const mesh_opts_spec_t *spec, FILE *out)
{
    fputs("| config file | flag | environment | type | default | meaning |\n", out);
    fputs("| --- | --- | --- | --- | --- | --- |\n", out);
    for (size_t i = 0; i < spec->nopts; i++) {
        const mesh_opt_t *o = &spec->opts[i];
        char flag[96], env[96];
        flag_spelling(o->name, flag, sizeof flag);
        env_name(spec, o, env, sizeof env);
        char type[128];
        if (o->type == MESH_OPT_ENUM)
            snprintf(type, sizeof type, "one of `%s`", o->choices);
        else if (o->type == MESH_OPT_INT && (o->min || o->max))
            snprintf(type, sizeof type, "integer %lld..%lld", (long long)o->min, (long long)o->max);
        else
            snprintf(type, sizeof type, "%s", type_name(o));
        fprintf(out, "| %s | `--%s %s` | `%s` | %s | %s%s%s | %s |\n",
                (o->flags & MESH_OPT_NOFILE) ? "(flag only)" : o->name, flag,
                o->metavar ? o->metavar : "VALUE", env, type,
                o->def && !(o->flags & MESH_OPT_SECRET) ? "`" : "",
                o->def && !(o->flags & MESH_OPT_SECRET) ? o->def : "",
                o->def && !(o->flags & MESH_OPT_SECRET) ? "`" : "", o->help);
    }
}

void mesh_opts_example(const mesh_opts_spec_t *spec, FILE *out)
{
    for (size_t i = 0; i < spec->nopts; i++) {
        const mesh_opt_t *o = &spec->opts[i];
        if (o->flags & MESH_OPT_NOFILE)
            continue;
        char env[96];
        env_name(spec, o, env, sizeof env);
        /* wrap the help text at about 88 columns */
        fputs("\n", out);
        const char *h = o->help;
        while (*h) {
            size_t len = strlen(h);
            size_t cut = len;
            if (len > 86) {
                cut = 86;
                while (cut > 0 && h[cut] != ' ')
                    cut--;
                if (cut == 0)
                    cut = 86;
            }
            fprintf(out, "# %.*s\n", (int)cut, h);
            h += cut;
            while (*h == ' ')
                h++;
        }
        if (o->type == MESH_OPT_ENUM)
            fprintf(out, "# One of: %s.\n", o->choices);
        fprintf(out, "# Also: --");
        for (const char *c = o->name; *c; c++)
            fputc(*c == '_' ? '-' : *c, out);
        fprintf(out, ", %s.\n", env);
        if (o->flags & MESH_OPT_SECRET)
            fprintf(out, "# %s = \n", o->name);
        else
            fprintf(out, "# %s = %s\n", o->name, o->def ? o->def : "");
    }
}
