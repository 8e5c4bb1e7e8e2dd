/*
 * cli.c - argument parsing and help from the command tables, error reporting, and the
 * small output helpers every command uses (see cli.h).
 *
 * Parsing uses getopt_long over an option array built from the command's table plus the
 * global options, so the table is the one place an option is declared: it drives parsing,
 * `--help` and the Markdown reference alike.
 */
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "query/query.h"

#define OPT_BASE 1000 /* getopt_long values of long options: OPT_BASE + index */

typedef struct occ {
    const char *name; /* the option's table name */
    const char *val;  /* its value (borrowed from argv), NULL for a flag */
} occ_t;

struct mesh_cli_args {
    const mesh_cli_cmd_t *cmd;
    occ_t *occ;
    size_t nocc;
    char **pos;
    int npos;
};

/* The options a parse accepts: the command's, the settings, and the fixed flags. */
typedef struct known {
    const char *name; /* long name as typed */
    char short_name;
    bool has_value;
    enum { K_CMD, K_SETTING, K_QUIET, K_HELP, K_FORMAT } kind;
    const char *table_name; /* the command option's or setting's name */
} known_t;

/* ---- errors ---- */

void mesh_cli_clean(char *s)
{
    for (unsigned char *p = (unsigned char *)s; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
        else if (*p < 0x20 || *p == 0x7f)
            *p = '?';
}

static void vprint_error(const char *prefix, const char *fmt, va_list ap)
{
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    mesh_cli_clean(msg);
    fprintf(stderr, "meshctl: %s%s\n", prefix, msg);
}

int mesh_cli_fail(mesh_cli_t *cli, mesh_status_t st, const char *fmt, ...)
{
    (void)cli;
    va_list ap;
    va_start(ap, fmt);
    vprint_error("", fmt, ap);
    va_end(ap);
    return mesh_status_exit(st);
}

int mesh_cli_local(mesh_cli_t *cli, const char *fmt, ...)
{
    (void)cli;
    va_list ap;
    va_start(ap, fmt);
    vprint_error("", fmt, ap);
    va_end(ap);
    return MESH_CLI_EXIT_LOCAL;
}

int mesh_cli_usage(mesh_cli_t *cli, const char *fmt, ...)
{
    const char *name = cli->cmd && cli->cmd->name ? cli->cmd->name : NULL;
    char prefix[96] = "";
    if (name)
        snprintf(prefix, sizeof prefix, "%s: ", name);
    va_list ap;
    va_start(ap, fmt);
    vprint_error(prefix, fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try 'meshctl %s%s--help'.\n", name ? name : "", name ? " " : "");
    return mesh_status_exit(MESH_INVALID);
}

/* Prints change or detail lines: "product x:" heads the lines under it, which are indented
 * further. */
static void print_line(FILE *out, const char *s, bool *nested)
{
    char *c = mesh_strdup(s);
    if (c == NULL)
        return;
    mesh_cli_clean(c);
    size_t n = strlen(c);
    bool head = n && c[n - 1] == ':';
    fprintf(out, "%s%s\n", head || !*nested ? "  " : "    ", c);
    if (head)
        *nested = true;
    free(c);
}

void mesh_cli_print_details(FILE *out, const json_t *details, size_t max)
{
    if (!json_is_array(details)) {
        if (details) {
            char *s = json_dumps(details, JSON_COMPACT);
            if (s) {
                mesh_cli_clean(s);
                fprintf(out, "  %s\n", s);
            }
            free(s);
        }
        return;
    }
    size_t i;
    json_t *d;
    bool nested = false;
    json_array_foreach(details, i, d)
    {
        if (i == max) {
            fprintf(out, "  ... and %zu more\n", json_array_size(details) - max);
            break;
        }
        if (json_is_string(d)) {
            print_line(out, json_string_value(d), &nested);
            continue;
        }
        const char *col = mesh_cli_jstr(d, "column");
        const char *reason = mesh_cli_jstr(d, "reason");
        char line[1024];
        snprintf(line, sizeof line, "row %lld%s%s: %s", (long long)mesh_cli_jint(d, "row"),
                 col ? ", column " : "", col ? col : "", reason ? reason : "(no reason)");
        print_line(out, line, &nested);
    }
}

int mesh_cli_report(mesh_cli_t *cli, const mesh_client_result_t *res, const char *what)
{
    char msg[sizeof res->msg];
    snprintf(msg, sizeof msg, "%s", res->msg);
    mesh_cli_clean(msg);
    char rid[64] = "";
    if (res->http >= 500 && res->request_id[0])
        snprintf(rid, sizeof rid, " (request id %.32s)", res->request_id);
    if (res->http && !res->cut)
        fprintf(stderr, "meshctl: [%s] %s%s%s%s\n", res->code, what ? what : "", what ? ": " : "",
                msg, rid);
    else
        fprintf(stderr, "meshctl: %s%s%s\n", what ? what : "", what ? ": " : "", msg);
    mesh_cli_print_details(stderr, res->details, 10);
    bool sent = cli && cli->set && cli->set->token;
    if (res->status == MESH_UNAUTHENTICATED && sent && cli->token_is_login && cli->token_path)
        fprintf(stderr,
                "meshctl: the token stored by 'meshctl login' (%s) was refused: it may "
                "have expired or been revoked; log in again\n",
                cli->token_path);
    else if (res->status == MESH_UNAUTHENTICATED && cli && cli->set && !sent &&
             !(cli->cmd && (cli->cmd->flags & MESH_CLI_OWN_TOKEN)))
        fputs("meshctl: no token was given: log in with 'meshctl login', or give --token-file, "
              "MESH_TOKEN or a token in the config file\n",
              stderr);
    return mesh_status_exit(res->status);
}

int mesh_cli_call(mesh_cli_t *cli, const mesh_client_req_t *req, json_t **out)
{
    if (out)
        *out = NULL;
    mesh_client_result_t res;
    if (mesh_client_do(cli->client, req, &res) != MESH_OK) {
        int rc = mesh_cli_report(cli, &res, NULL);
        mesh_client_result_free(&res);
        return rc;
    }
    int rc = 0;
    if (out && res.body.len) {
        json_error_t je;
        *out = json_loadb(res.body.data, res.body.len, 0, &je);
        if (*out == NULL)
            rc = mesh_cli_fail(cli, MESH_INTERNAL, "the answer from %s is not JSON: %s", res.url,
                               je.text);
    }
    mesh_client_result_free(&res);
    return rc;
}

int mesh_cli_send_json(mesh_cli_t *cli, const char *method, const char *path, const json_t *body,
                       json_t **out)
{
    if (out)
        *out = NULL;
    char *text = json_dumps(body, JSON_COMPACT);
    if (text == NULL) /* jansson refuses text that is not UTF-8 */
        return mesh_cli_usage(cli, "the arguments must be UTF-8 text");
    mesh_client_req_t req = {.method = method,
                             .path = path,
                             .content_type = "application/json",
                             .body = text,
                             .body_len = strlen(text)};
    int rc = mesh_cli_call(cli, &req, out);
    free(text);
    return rc;
}

int mesh_cli_path(mesh_cli_t *cli, mesh_buf_t *b, const char *prefix, const char *seg)
{
    mesh_buf_init(b, 64 * 1024);
    if (mesh_buf_adds(b, prefix) != MESH_OK || mesh_client_escape(b, seg) != MESH_OK) {
        mesh_buf_free(b);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    return 0;
}

void mesh_cli_join(mesh_buf_t *b, const json_t *arr, const char *sep)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (i)
            mesh_buf_adds(b, sep);
        mesh_buf_adds(b, json_string_value(v) ? json_string_value(v) : "");
    }
    if (b->data == NULL)
        mesh_buf_adds(b, "");
}

static bool sink_stdout(void *arg, const char *p, size_t n)
{
    (void)arg;
    return mesh_cli_write_out(p, n);
}

int mesh_cli_raw(mesh_cli_t *cli, const mesh_client_req_t *req)
{
    mesh_client_req_t r = *req;
    r.sink = sink_stdout;
    mesh_client_result_t res;
    int rc = 0;
    if (mesh_client_do(cli->client, &r, &res) != MESH_OK)
        rc = res.sink_stopped ? MESH_CLI_EXIT_LOCAL : mesh_cli_report(cli, &res, NULL);
    mesh_client_result_free(&res);
    return rc;
}

void mesh_cli_emit_table(const mesh_cli_t *cli, const mesh_table_t *t, const char *fmt)
{
    if (strcmp(fmt, "csv") == 0)
        mesh_table_print_csv(t, stdout);
    else
        mesh_table_print(t, stdout, cli->color);
}

/* ---- argument parsing ---- */

static size_t count_opts(const mesh_cli_opt_t *o)
{
    size_t n = 0;
    while (o && o[n].name)
        n++;
    return n;
}

bool mesh_cli_format_ok(const char *formats, const char *f)
{
    size_t fl = strlen(f);
    for (const char *p = formats; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == fl && strncmp(p, f, l) == 0)
            return true;
        p = bar ? bar + 1 : p + l;
    }
    return false;
}

/* "table, json or csv" from "table|json|csv". */
static void format_list(const char *formats, char *out, size_t cap)
{
    size_t o = 0, n = 0, total = 1;
    for (const char *p = formats; *p; p++)
        total += *p == '|';
    for (const char *p = formats; *p && o + 8 < cap; p++) {
        if (*p == '|') {
            n++;
            const char *sep = n + 1 == total ? " or " : ", ";
            o += (size_t)snprintf(out + o, cap - o, "%s", sep);
        } else {
            out[o++] = *p;
        }
    }
    out[o < cap ? o : cap - 1] = '\0';
}

void mesh_cli_args_free(mesh_cli_args_t *a)
{
    if (a == NULL)
        return;
    free(a->occ);
    free(a->pos);
    free(a);
}

int mesh_cli_parse(mesh_cli_t *cli, const mesh_cli_cmd_t *cmd, int argc, char **argv,
                   bool stop_at_positional, mesh_cli_args_t **out)
{
    *out = NULL;
    const mesh_opts_spec_t *spec = &mesh_cli_settings_spec;
    size_t ncmd = count_opts(cmd->opts);
    size_t nk = ncmd + spec->nopts + 3;
    known_t *k = calloc(nk, sizeof *k);
    struct option *lo = calloc(nk + 1, sizeof *lo);
    char(*spelled)[64] = calloc(spec->nopts ? spec->nopts : 1, sizeof *spelled);
    mesh_cli_args_t *a = calloc(1, sizeof *a);
    int rc = 0;
    if (k == NULL || lo == NULL || spelled == NULL || a == NULL ||
        (a->occ = calloc((size_t)argc + 1, sizeof *a->occ)) == NULL ||
        (a->pos = calloc((size_t)argc + 1, sizeof *a->pos)) == NULL) {
        rc = mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
        goto done;
    }
    a->cmd = cmd;
    size_t n = 0;
    for (size_t i = 0; i < ncmd; i++, n++)
        k[n] = (known_t){cmd->opts[i].name, cmd->opts[i].short_name, cmd->opts[i].metavar != NULL,
                         K_CMD, cmd->opts[i].name};
    for (size_t i = 0; i < spec->nopts; i++, n++) {
        const char *nm = spec->opts[i].name;
        size_t j = 0;
        for (; nm[j] && j + 1 < sizeof spelled[i]; j++)
            spelled[i][j] = nm[j] == '_' ? '-' : nm[j];
        k[n] = (known_t){spelled[i], 0, true, K_SETTING, nm};
    }
    k[n++] = (known_t){"quiet", 'q', false, K_QUIET, NULL};
    k[n++] = (known_t){"help", 'h', false, K_HELP, NULL};
    if (cmd->formats)
        k[n++] = (known_t){"format", 0, true, K_FORMAT, NULL};
    char shorts[64];
    size_t sl = (size_t)snprintf(shorts, sizeof shorts, "%s", stop_at_positional ? "+:" : ":");
    for (size_t i = 0; i < n; i++) {
        lo[i] = (struct option){k[i].name, k[i].has_value ? required_argument : no_argument, NULL,
                                OPT_BASE + (int)i};
        if (k[i].short_name && sl + 3 < sizeof shorts) {
            shorts[sl++] = k[i].short_name;
            if (k[i].has_value)
                shorts[sl++] = ':';
        }
    }
    shorts[sl] = '\0';

    optind = 0; /* glibc: a full re-initialisation */
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, shorts, lo, NULL);
        if (c == -1)
            break;
        if (c == '?' || c == ':') {
            const char *what = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
            if (c == ':')
                rc = mesh_cli_usage(cli, "option '%s' needs a value", what);
            else if (optopt && optopt < OPT_BASE)
                rc = mesh_cli_usage(cli, "unknown option '-%c'", optopt);
            else
                rc = mesh_cli_usage(cli, "unknown option '%s'", what);
            goto done;
        }
        size_t idx = n;
        if (c >= OPT_BASE) {
            idx = (size_t)(c - OPT_BASE);
        } else {
            for (size_t i = 0; i < n; i++)
                if (k[i].short_name == c)
                    idx = i;
        }
        if (idx >= n)
            continue;
        const known_t *o = &k[idx];
        switch (o->kind) {
        case K_HELP:
            if (!stop_at_positional)
                mesh_cli_help_cmd(cmd, stdout, false);
            rc = -1;
            goto done;
        case K_QUIET:
            cli->quiet = true;
            break;
        case K_FORMAT:
            if (!mesh_cli_format_ok(cmd->formats, optarg)) {
                char list[96];
                format_list(cmd->formats, list, sizeof list);
                rc = mesh_cli_usage(cli, "--format %s: expected %s", optarg, list);
                goto done;
            }
            cli->format = optarg;
            break;
        case K_SETTING: {
            mesh_err_t err;
            mesh_err_clear(&err);
            char origin[80];
            snprintf(origin, sizeof origin, "--%s", o->name);
            if (mesh_opts_set(spec, &cli->flags, o->table_name, optarg, origin, &err) != MESH_OK) {
                rc = mesh_cli_usage(cli, "%s", err.msg);
                goto done;
            }
            break;
        }
        case K_CMD: {
            const mesh_cli_opt_t *co = &cmd->opts[idx];
            if (!(co->flags & MESH_CLI_MULTI)) {
                for (size_t i = 0; i < a->nocc; i++)
                    if (a->occ[i].name == co->name) {
                        rc = mesh_cli_usage(cli, "option '--%s' given twice", co->name);
                        goto done;
                    }
            }
            a->occ[a->nocc++] = (occ_t){co->name, co->metavar ? optarg : NULL};
            break;
        }
        }
    }
    for (int i = optind; i < argc; i++)
        a->pos[a->npos++] = argv[i];
    if (!stop_at_positional) {
        if (a->npos < cmd->min_args) {
            rc = mesh_cli_usage(cli, "missing arguments (usage: meshctl %s %s)", cmd->name,
                                cmd->usage);
            goto done;
        }
        if (cmd->max_args >= 0 && a->npos > cmd->max_args) {
            rc = mesh_cli_usage(cli, "unexpected argument '%s'", a->pos[cmd->max_args]);
            goto done;
        }
    }
done:
    free(k);
    free(lo);
    free(spelled);
    if (rc != 0) {
        mesh_cli_args_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

const char *mesh_cli_arg_at(const mesh_cli_args_t *a, const char *name, size_t i)
{
    for (size_t k = 0; k < a->nocc; k++)
        if (strcmp(a->occ[k].name, name) == 0 && i-- == 0)
            return a->occ[k].val;
    return NULL;
}

const char *mesh_cli_arg(const mesh_cli_args_t *a, const char *name)
{
    const char *v = NULL;
    for (size_t k = 0; k < a->nocc; k++)
        if (strcmp(a->occ[k].name, name) == 0)
            v = a->occ[k].val;
    return v;
}

bool mesh_cli_flag(const mesh_cli_args_t *a, const char *name)
{
    for (size_t k = 0; k < a->nocc; k++)
        if (strcmp(a->occ[k].name, name) == 0)
            return true;
    return false;
}

int mesh_cli_npos(const mesh_cli_args_t *a)
{
    return a->npos;
}

const char *mesh_cli_pos(const mesh_cli_args_t *a, int i)
{
    return i >= 0 && i < a->npos ? a->pos[i] : NULL;
}

int mesh_cli_arg_int(mesh_cli_t *cli, const mesh_cli_args_t *a, const char *name, int64_t def,
                     int64_t min, int64_t max, int64_t *out)
{
    const char *v = mesh_cli_arg(a, name);
    *out = def;
    if (v == NULL)
        return 0;
    int64_t x;
    if (mesh_parse_i64(v, strlen(v), &x) != MESH_OK || x < min || x > max)
        return mesh_cli_usage(cli, "--%s %s: expected a whole number from %lld to %lld", name, v,
                              (long long)min, (long long)max);
    *out = x;
    return 0;
}

const char *mesh_cli_format(const mesh_cli_t *cli, bool def_tty_only)
{
    static char first[16];
    if (cli->format)
        return cli->format;
    if (def_tty_only)
        return cli->out_tty ? "table" : "json";
    const char *f = cli->cmd && cli->cmd->formats ? cli->cmd->formats : "table";
    size_t n = strcspn(f, "|");
    snprintf(first, sizeof first, "%.*s", (int)n, f);
    return first;
}

/* ---- help ---- */

#define HELP_WIDTH 80

void mesh_cli_wrap(FILE *out, const char *text, size_t first_indent, size_t indent)
{
    size_t col = first_indent;
    bool line_start = true;
    for (const char *p = text; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        size_t w = strcspn(p, " ");
        if (!line_start && col + 1 + w > HELP_WIDTH) {
            fprintf(out, "\n%*s", (int)indent, "");
            col = indent;
            line_start = true;
        }
        if (!line_start) {
            fputc(' ', out);
            col++;
        }
        fwrite(p, 1, w, out);
        col += w;
        p += w;
        line_start = false;
    }
    fputc('\n', out);
}

void mesh_cli_md_cell(FILE *out, const char *text)
{
    for (const char *p = text; *p; p++) {
        if (*p == '|')
            fputc('\\', out);
        fputc(*p, out);
    }
}

static void help_opt(FILE *out, bool md, char short_name, const char *name, const char *metavar,
                     const char *help, const char *extra)
{
    char flag[128];
    if (short_name)
        snprintf(flag, sizeof flag, "-%c, --%s%s%s", short_name, name, metavar ? " " : "",
                 metavar ? metavar : "");
    else
        snprintf(flag, sizeof flag, "--%s%s%s", name, metavar ? " " : "", metavar ? metavar : "");
    if (md) {
        fputs("| `", out);
        mesh_cli_md_cell(out, flag);
        fputs("` | ", out);
        mesh_cli_md_cell(out, help);
        mesh_cli_md_cell(out, extra ? extra : "");
        fputs(" |\n", out);
        return;
    }
    char text[1024];
    snprintf(text, sizeof text, "%s%s", help, extra ? extra : "");
    fprintf(out, "  %s\n      ", flag);
    mesh_cli_wrap(out, text, 6, 6);
}

/* Writes text with every line indented by ind (text mode) or as is (Markdown). */
static void block(FILE *out, const char *text, const char *ind)
{
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        fprintf(out, "%s%.*s\n", n ? ind : "", (int)n, p);
        p = nl ? nl + 1 : p + n;
    }
}

void mesh_cli_help_cmd(const mesh_cli_cmd_t *cmd, FILE *out, bool md)
{
    if (md) {
        fprintf(out, "### meshctl %s\n\n```\nmeshctl %s %s\n```\n\n", cmd->name, cmd->name,
                cmd->usage);
        block(out, cmd->text, "");
        fputs("\n| option | description |\n| --- | --- |\n", out);
    } else {
        fprintf(out, "Usage: meshctl %s %s\n\n", cmd->name, cmd->usage);
        block(out, cmd->text, "");
        fputs("\nOptions:\n", out);
    }
    for (size_t i = 0; cmd->opts && cmd->opts[i].name; i++) {
        const mesh_cli_opt_t *o = &cmd->opts[i];
        help_opt(out, md, o->short_name, o->name, o->metavar, o->help,
                 o->flags & MESH_CLI_MULTI ? " May be repeated." : NULL);
    }
    if (cmd->formats) {
        char list[96], text[256];
        format_list(cmd->formats, list, sizeof list);
        size_t n = strcspn(cmd->formats, "|");
        snprintf(text, sizeof text, "Output format: %s (default: %.*s).", list, (int)n,
                 cmd->formats);
        help_opt(out, md, 0, "format", "FORMAT", cmd->format_help ? cmd->format_help : text, NULL);
    }
    help_opt(out, md, 'h', "help", NULL, "Show this help and exit.", NULL);
    fputs(md ? "\nGlobal options (`--url`, `--token`, `--token-file`, `--config`, `--timeout`, "
               "`--cacert`, `--pin`, `--cert`, `--key`, `-q`) are accepted too: see [global "
               "options](#global-options).\n"
             : "\nGlobal options (--url, --token, --token-file, --config, --timeout, --cacert,\n"
               "--pin, --cert, --key, -q) are accepted too: see 'meshctl --help'.\n",
          out);
    if (cmd->examples) {
        fputs(md ? "\nExamples:\n\n```\n" : "\nExamples:\n", out);
        block(out, cmd->examples, md ? "" : "  ");
        if (md)
            fputs("```\n", out);
    }
    if (cmd->exits) {
        fputs(md ? "\nExit codes:\n\n```\n" : "\nExit codes:\n", out);
        block(out, cmd->exits, md ? "" : "  ");
        if (md)
            fputs("```\n", out);
    }
    if (md)
        fputc('\n', out);
}

/* ---- helpers ---- */

int mesh_cli_domain_name(mesh_cli_t *cli, const char *arg)
{
    if (!mesh_name_domain_ok(arg))
        return mesh_cli_usage(cli,
                              "'%s' is not a domain name (1-63 of a-z 0-9 _ -, starting with "
                              "a letter)",
                              arg);
    return 0;
}

int mesh_cli_product_name(mesh_cli_t *cli, const char *arg, char *domain, char *product)
{
    const char *dot = strchr(arg, '.');
    size_t dl = dot ? (size_t)(dot - arg) : 0;
    if (dot == NULL || dl == 0 || dl > MESH_NAME_MAX || strlen(dot + 1) > MESH_NAME_MAX)
        return mesh_cli_usage(cli, "'%s' is not DOMAIN.PRODUCT (e.g. factory.readings)", arg);
    memcpy(domain, arg, dl);
    domain[dl] = '\0';
    snprintf(product, MESH_NAME_MAX + 1, "%s", dot + 1);
    if (!mesh_name_domain_ok(domain))
        return mesh_cli_domain_name(cli, domain);
    if (!mesh_name_product_ok(product))
        return mesh_cli_usage(cli,
                              "'%s' is not a product name (1-63 of a-z 0-9 _, starting with a "
                              "letter, no '__')",
                              product);
    return 0;
}

const char *mesh_cli_bytes(int64_t n, char *out, size_t cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int i = 0;
    while (v >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    snprintf(out, cap, i ? "%.1f %s" : "%.0f %s", v, units[i]);
    return out;
}

const char *mesh_cli_short_time(const char *iso, char *out)
{
    if (iso == NULL)
        return "-";
    snprintf(out, MESH_CLI_TIME_MAX, "%s", iso);
    char *t = strchr(out, 'T');
    char *dot = t ? strchr(t, '.') : NULL;
    if (dot) {
        char *end = dot + 1;
        while (*end >= '0' && *end <= '9')
            end++;
        memmove(dot, end, strlen(end) + 1);
    }
    return out;
}

const char *mesh_cli_json_text(const json_t *v, char *tmp, size_t cap)
{
    if (v == NULL)
        return NULL;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return json_string_value(v);
    case JSON_INTEGER:
        snprintf(tmp, cap, "%lld", (long long)json_integer_value(v));
        return tmp;
    case JSON_REAL: {
        mesh_buf_t b;
        mesh_buf_init(&b, 64);
        mesh_buf_add_double(&b, json_real_value(v));
        snprintf(tmp, cap, "%s", b.data ? b.data : "");
        mesh_buf_free(&b);
        return tmp;
    }
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    case JSON_NULL:
        return NULL;
    default: {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(tmp, cap, "%s", s ? s : "");
        free(s);
        return tmp;
    }
    }
}

const char *mesh_cli_jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

int64_t mesh_cli_jint(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v))
        return (int64_t)json_real_value(v);
    return 0;
}

int mesh_cli_read_input(mesh_cli_t *cli, const char *path, size_t max, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (strcmp(path, "-") != 0) {
        mesh_err_t err;
        mesh_err_clear(&err);
        if (mesh_read_file(path, max, out, len, &err) != MESH_OK)
            return mesh_cli_local(cli, "cannot read %s", err.msg);
        return 0;
    }
    mesh_buf_t b;
    mesh_buf_init(&b, max);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
        if (mesh_buf_add(&b, chunk, n) != MESH_OK) {
            mesh_buf_free(&b);
            return mesh_cli_local(cli, "standard input is larger than %zu bytes", max);
        }
    }
    if (ferror(stdin)) {
        mesh_buf_free(&b);
        return mesh_cli_local(cli, "cannot read standard input: %s", strerror(errno));
    }
    if (mesh_buf_reserve(&b, 1) != MESH_OK) {
        mesh_buf_free(&b);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    b.data[b.len] = '\0';
    *out = mesh_buf_steal(&b, len);
    return 0;
}

bool mesh_cli_write_out(const char *p, size_t n)
{
    if (n && fwrite(p, 1, n, stdout) != n) {
        fprintf(stderr, "meshctl: cannot write to standard output: %s\n", strerror(errno));
        return false;
    }
    return true;
}

int mesh_cli_get(mesh_cli_t *cli, const mesh_client_req_t *req, json_t **out)
{
    *out = NULL;
    if (strcmp(mesh_cli_format(cli, false), "json") == 0)
        return mesh_cli_raw(cli, req);
    int rc = mesh_cli_call(cli, req, out);
    if (rc == 0 && *out == NULL)
        return mesh_cli_fail(cli, MESH_INTERNAL, "the node's answer was empty");
    return rc;
}

int mesh_cli_list(mesh_cli_t *cli, const mesh_client_req_t *req, const mesh_cli_col_t *cols,
                  size_t ncols, json_t **out, mesh_table_t **t, bool *csv)
{
    *out = NULL;
    *t = NULL;
    *csv = strcmp(mesh_cli_format(cli, false), "csv") == 0;
    json_t *j;
    int rc = mesh_cli_get(cli, req, &j);
    if (rc != 0 || j == NULL)
        return rc;
    if ((*t = mesh_table_create(ncols)) == NULL) {
        json_decref(j);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < ncols; i++)
        mesh_table_column(*t, i, *csv ? cols[i].csv : cols[i].title, cols[i].align,
                          cols[i].max_width);
    *out = j;
    return 0;
}
