/*
 * test_config.c - the declarative option table: defaults, every type, sizes, the config file
 * (comments, quotes, blank lines, errors with path:line), the environment, precedence, and the
 * generated help, Markdown and example (which never show a secret default).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/util.h"

int main(void);

typedef struct topts {
    char *config;
    char *name;
    int64_t port;
    int64_t max_body;
    int64_t timeout;
    bool verbose;
    char *mode;
    char *secret_token;
    int64_t count;
    char *empty;
} topts_t;

#define F(f) offsetof(topts_t, f)

static const mesh_opt_t opts[] = {
    {"config", MESH_OPT_STRING, F(config), NULL, 0, 0, NULL, MESH_OPT_NOFILE, "FILE",
     "Config file."},
    {"name", MESH_OPT_STRING, F(name), "node-1", 0, 0, NULL, 0, "NAME", "Node name."},
    {"port", MESH_OPT_INT, F(port), "7070", 1, 65535, NULL, 0, "PORT", "TCP port."},
    {"max_body", MESH_OPT_SIZE, F(max_body), "64KiB", 1024, 1LL << 30, NULL, 0, "SIZE",
     "Largest body."},
    {"timeout", MESH_OPT_DURATION, F(timeout), "30s", 1000000, 86400LL * 1000000000, NULL, 0,
     "DURATION", "Time limit."},
    {"verbose", MESH_OPT_BOOL, F(verbose), "false", 0, 0, NULL, 0, NULL, "Say more."},
    {"mode", MESH_OPT_ENUM, F(mode), "fast", 0, 0, "fast|safe|off", 0, "MODE", "Mode of work."},
    {"secret_token", MESH_OPT_STRING, F(secret_token), "hunter2-default", 0, 0, NULL,
     MESH_OPT_SECRET, "TOKEN", "The secret."},
    {"count", MESH_OPT_INT, F(count), NULL, 0, 0, NULL, 0, "N", "Unbounded count."},
    {"empty", MESH_OPT_STRING, F(empty), NULL, 0, 0, NULL, 0, NULL, "No default."},
};

static const mesh_opts_spec_t spec = {opts, MESH_ARRAY_LEN(opts), "TCFG_"};

static void init(topts_t *o)
{
    memset(o, 0, sizeof *o);
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(mesh_opts_defaults(&spec, o, &err), MESH_OK);
}

/* Loads text expecting failure; checks the code and that the message holds each needle. */
static void load_fails(const char *text, const char *n1, const char *n2)
{
    topts_t o;
    init(&o);
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_opts_load_text(&spec, &o, text, "my.conf", &err);
    if (st == MESH_OK || (n1 && !strstr(err.msg, n1)) || (n2 && !strstr(err.msg, n2)))
        print_message("text %s: got %s: %s\n", text, mesh_status_name(st), err.msg);
    assert_int_equal(st, MESH_INVALID);
    assert_int_equal(err.code, MESH_INVALID);
    if (n1)
        assert_non_null(strstr(err.msg, n1));
    if (n2)
        assert_non_null(strstr(err.msg, n2));
    mesh_opts_free(&spec, &o);
}

static void test_defaults(void **state)
{
    (void)state;
    topts_t o;
    memset(&o, 0x5a, sizeof o); /* garbage in the scalar fields is overwritten */
    o.config = o.name = o.mode = o.secret_token = o.empty = NULL;
    mesh_err_t err;
    assert_int_equal(mesh_opts_defaults(&spec, &o, &err), MESH_OK);
    assert_null(o.config);
    assert_string_equal(o.name, "node-1");
    assert_int_equal(o.port, 7070);
    assert_int_equal(o.max_body, 64 * 1024);
    assert_int_equal(o.timeout, 30LL * 1000000000);
    assert_false(o.verbose);
    assert_string_equal(o.mode, "fast");
    assert_string_equal(o.secret_token, "hunter2-default");
    assert_int_equal(o.count, 0);
    assert_null(o.empty);
    mesh_opts_free(&spec, &o);
    assert_null(o.name);
    assert_null(o.mode);
    assert_null(o.secret_token);
    mesh_opts_free(&spec, &o); /* twice is fine */
}

static void test_bad_default_is_reported(void **state)
{
    (void)state;
    static const mesh_opt_t bad[] = {
        {"port", MESH_OPT_INT, 0, "70000", 1, 65535, NULL, 0, NULL, "Port."},
    };
    mesh_opts_spec_t s = {bad, 1, "X_"};
    int64_t v = 0;
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(mesh_opts_defaults(&s, &v, &err), MESH_INVALID);
    assert_non_null(strstr(err.msg, "default"));
    assert_non_null(strstr(err.msg, "out of range"));
}

static void test_find(void **state)
{
    (void)state;
    assert_ptr_equal(mesh_opts_find(&spec, "max_body"), &opts[3]);
    assert_ptr_equal(mesh_opts_find(&spec, "max-body"), &opts[3]);
    assert_ptr_equal(mesh_opts_find(&spec, "secret-token"), &opts[7]);
    assert_null(mesh_opts_find(&spec, "max body"));
    assert_null(mesh_opts_find(&spec, "MAX_BODY"));
    assert_null(mesh_opts_find(&spec, ""));
    assert_null(mesh_opts_find(&spec, "max_bod"));
    assert_null(mesh_opts_find(&spec, "max_body_"));
}

static void test_set_each_type(void **state)
{
    (void)state;
    topts_t o;
    init(&o);
    mesh_err_t err;
    assert_int_equal(mesh_opts_set(&spec, &o, "name", "edge-7", "flag --name", &err), MESH_OK);
    assert_string_equal(o.name, "edge-7");
    assert_int_equal(mesh_opts_set(&spec, &o, "name", "", "flag --name", &err), MESH_OK);
    assert_string_equal(o.name, "");
    assert_int_equal(mesh_opts_set(&spec, &o, "port", "1", "t", &err), MESH_OK);
    assert_int_equal(o.port, 1);
    assert_int_equal(mesh_opts_set(&spec, &o, "port", "65535", "t", &err), MESH_OK);
    assert_int_equal(o.port, 65535);
    assert_int_equal(mesh_opts_set(&spec, &o, "count", "-9223372036854775808", "t", &err), MESH_OK);
    assert_true(o.count == INT64_MIN);
    assert_int_equal(mesh_opts_set(&spec, &o, "max-body", "16MiB", "t", &err), MESH_OK);
    assert_int_equal(o.max_body, 16 << 20);
    assert_int_equal(mesh_opts_set(&spec, &o, "max_body", "1G", "t", &err), MESH_OK);
    assert_int_equal(o.max_body, 1 << 30);
    assert_int_equal(mesh_opts_set(&spec, &o, "max_body", "1024", "t", &err), MESH_OK);
    assert_int_equal(o.max_body, 1024);
    assert_int_equal(mesh_opts_set(&spec, &o, "timeout", "500ms", "t", &err), MESH_OK);
    assert_int_equal(o.timeout, 500000000);
    assert_int_equal(mesh_opts_set(&spec, &o, "timeout", "1h30m", "t", &err), MESH_OK);
    assert_int_equal(o.timeout, 5400LL * 1000000000);
    assert_int_equal(mesh_opts_set(&spec, &o, "verbose", "yes", "t", &err), MESH_OK);
    assert_true(o.verbose);
    assert_int_equal(mesh_opts_set(&spec, &o, "verbose", "OFF", "t", &err), MESH_OK);
    assert_false(o.verbose);
    assert_int_equal(mesh_opts_set(&spec, &o, "mode", "safe", "t", &err), MESH_OK);
    assert_string_equal(o.mode, "safe");
    assert_int_equal(mesh_opts_set(&spec, &o, "mode", "off", "t", &err), MESH_OK);
    assert_string_equal(o.mode, "off");
    mesh_opts_free(&spec, &o);
}

static void set_fails(const char *name, const char *value, const char *needle)
{
    topts_t o;
    init(&o);
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_opts_set(&spec, &o, name, value, "flag --x", &err);
    if (st != MESH_INVALID || !strstr(err.msg, needle))
        print_message("%s=%s: %s: %s\n", name, value, mesh_status_name(st), err.msg);
    assert_int_equal(st, MESH_INVALID);
    assert_non_null(strstr(err.msg, "flag --x"));
    assert_non_null(strstr(err.msg, needle));
    /* the fields keep their defaults */
    assert_string_equal(o.name, "node-1");
    assert_int_equal(o.port, 7070);
    assert_int_equal(o.max_body, 64 << 10);
    assert_int_equal(o.timeout, 30LL * 1000000000);
    assert_false(o.verbose);
    assert_string_equal(o.mode, "fast");
    mesh_opts_free(&spec, &o);
}

static void test_set_refusals(void **state)
{
    (void)state;
    set_fails("nope", "1", "unknown option 'nope'");
    set_fails("port", "0", "out of range");
    set_fails("port", "65536", "out of range");
    set_fails("port", "-1", "out of range");
    set_fails("port", "80x", "not an integer");
    set_fails("port", " 80", "not an integer");
    set_fails("port", "", "not an integer");
    set_fails("port", "1e3", "not an integer");
    set_fails("port", "99999999999999999999", "not an integer");
    set_fails("max_body", "1023", "out of range");
    set_fails("max_body", "2GiB", "out of range");
    set_fails("max_body", "64 KiB", "not a size");
    set_fails("max_body", "1.5M", "not a size");
    set_fails("max_body", "-1", "not a size");
    set_fails("max_body", "12XB", "not a size");
    set_fails("timeout", "0s", "out of range");
    set_fails("timeout", "2d", "out of range");
    set_fails("timeout", "30 seconds", "not a duration");
    set_fails("verbose", "maybe", "not true or false");
    set_fails("mode", "Fast", "not one of fast|safe|off");
    set_fails("mode", "fas", "not one of");
    set_fails("mode", "fast|safe", "not one of");
    set_fails("mode", "", "not one of");
}

static void test_sizes(void **state)
{
    (void)state;
    struct {
        const char *text;
        int64_t want;
    } ok[] = {
        {"0", 0},
        {"10", 10},
        {"10b", 10},
        {"64k", 64 << 10},
        {"64K", 64 << 10},
        {"64kb", 64 << 10},
        {"64KiB", 64 << 10},
        {"64kib", 64 << 10},
        {"16M", 16 << 20},
        {"16MB", 16 << 20},
        {"16MiB", 16 << 20},
        {"1G", 1LL << 30},
        {"1g", 1LL << 30},
        {"1GB", 1LL << 30},
        {"1GiB", 1LL << 30},
        {"3t", 3LL << 40},
        {"2TiB", 2LL << 40},
        {"8388607TiB", 8388607LL << 40},
        {"9223372036854775807", INT64_MAX},
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(ok); i++) {
        int64_t v = -1;
        mesh_status_t st = mesh_parse_size(ok[i].text, &v);
        if (st != MESH_OK || v != ok[i].want)
            print_message("size %s: %s %lld\n", ok[i].text, mesh_status_name(st), (long long)v);
        assert_int_equal(st, MESH_OK);
        assert_true(v == ok[i].want);
    }
    const char *bad[] = {"",
                         "K",
                         "KiB",
                         "-1",
                         "+1",
                         " 1",
                         "1 ",
                         "1 K",
                         "1.5G",
                         "1e3",
                         "1KiBx",
                         "1kk",
                         "1PiB",
                         "0x10",
                         "8388608TiB",
                         "9223372036854775808",
                         "99999999999999999999999",
                         "10Kib!"};
    for (size_t i = 0; i < MESH_ARRAY_LEN(bad); i++) {
        int64_t v = -1;
        mesh_status_t st = mesh_parse_size(bad[i], &v);
        if (st != MESH_PARSE)
            print_message("size %s accepted: %lld\n", bad[i], (long long)v);
        assert_int_equal(st, MESH_PARSE);
        assert_int_equal(v, -1);
    }
    assert_int_equal(mesh_parse_size(NULL, &(int64_t){0}), MESH_PARSE);
}

/* ---- the config file ----------------------------------------------------------------------- */

static void test_file_text(void **state)
{
    (void)state;
    const char *text = "# a comment line\n"
                       "\n"
                       "   \n"
                       "  # an indented comment\n"
                       "name = edge-9\n"
                       "port=8080\n"
                       "\tmax_body\t=\t16MiB\t\n"
                       "timeout = 5m # trailing comment\n"
                       "verbose = true\r\n"
                       "mode = \"safe\"\n"
                       "secret_token = \"s3cret # not a comment\"\n"
                       "empty = \"\"\n"
                       "count = -5";
    topts_t o;
    init(&o);
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_opts_load_text(&spec, &o, text, "t.conf", &err);
    if (st != MESH_OK)
        print_message("%s\n", err.msg);
    assert_int_equal(st, MESH_OK);
    assert_string_equal(o.name, "edge-9");
    assert_int_equal(o.port, 8080);
    assert_int_equal(o.max_body, 16 << 20);
    assert_int_equal(o.timeout, 300LL * 1000000000);
    assert_true(o.verbose);
    assert_string_equal(o.mode, "safe");
    assert_string_equal(o.secret_token, "s3cret # not a comment");
    assert_string_equal(o.empty, "");
    assert_int_equal(o.count, -5);
    /* options not in the file keep their defaults */
    assert_null(o.config);
    mesh_opts_free(&spec, &o);
}

static void test_file_values(void **state)
{
    (void)state;
    struct {
        const char *line;
        const char *want;
    } cases[] = {
        {"name = plain", "plain"},
        {"name = two words", "two words"},
        {"name = a#b", "a#b"}, /* '#' inside a value is not a comment */
        {"name = a=b", "a=b"}, /* only the first '=' separates */
        {"name = x # c", "x"},
        {"name = x\t# tab before the comment", "x"},
        {"name = # only a comment", ""},
        {"name =", ""},
        {"name = \"  padded  \"", "  padded  "},
        {"name = \"say \\\"hi\\\"\"", "say \"hi\""},
        {"name = \"back\\\\slash\"", "back\\slash"},
        {"name = \"keep \\n as is\"", "keep \\n as is"},
        {"name = \"q\"   # comment after a quote", "q"},
        {"name = \"q\"\t", "q"},
        {"name = 'single'", "'single'"},
    };
    for (size_t i = 0; i < MESH_ARRAY_LEN(cases); i++) {
        topts_t o;
        init(&o);
        mesh_err_t err;
        mesh_err_clear(&err);
        mesh_status_t st = mesh_opts_load_text(&spec, &o, cases[i].line, "v.conf", &err);
        if (st != MESH_OK || strcmp(o.name, cases[i].want) != 0)
            print_message("line <%s>: %s <%s> (%s)\n", cases[i].line, mesh_status_name(st),
                          o.name ? o.name : "(null)", err.msg);
        assert_int_equal(st, MESH_OK);
        assert_string_equal(o.name, cases[i].want);
        mesh_opts_free(&spec, &o);
    }
}

static void test_file_errors(void **state)
{
    (void)state;
    load_fails("name = a\nbogus = 1\n", "my.conf:2", "unknown option 'bogus'");
    load_fails("\n\n# c\nport = 99999\n", "my.conf:4", "out of range");
    load_fails("port = eighty\n", "my.conf:1", "not an integer");
    load_fails("port = 80 80\n", "my.conf:1", "not an integer");
    load_fails("verbose = sure\n", "my.conf:1", "not true or false");
    load_fails("mode = slow\n", "my.conf:1", "not one of");
    load_fails("max_body = 12 parsecs\n", "my.conf:1", "not a size");
    load_fails("timeout = soon\n", "my.conf:1", "not a duration");
    load_fails("name = \"unterminated\n", "my.conf:1", "unterminated");
    load_fails("a = 1\r\nname = \"x\" y\r\n", "my.conf:1", NULL); /* a is unknown first */
    load_fails("name = \"x\" y\n", "my.conf:1", "quoted");
    load_fails("name\n", "my.conf:1", "name = value");
    load_fails("ok\n", "my.conf:1", NULL);
    load_fails("= value\n", "my.conf:1", "unknown option");
    load_fails("config = /etc/x.conf\n", "my.conf:1", "config");
    load_fails("name = a\nname = b\nconfig = x\n", "my.conf:3", "flag");
    /* CRLF line endings count lines the same way */
    load_fails("name = a\r\n\r\nport = 0\r\n", "my.conf:3", "out of range");
    /* an over-long line */
    char *long_line = malloc(5000);
    assert_non_null(long_line);
    memcpy(long_line, "name = ", 7);
    memset(long_line + 7, 'x', 4990);
    long_line[4997] = '\0';
    load_fails(long_line, "my.conf:1", "longer than");
    free(long_line);
}

static void test_file_partial_application(void **state)
{
    (void)state;
    /* lines before the bad one are applied (the caller exits on the error anyway) and
     * nothing leaks */
    topts_t o;
    init(&o);
    mesh_err_t err;
    assert_int_equal(mesh_opts_load_text(&spec, &o, "name = first\nport = x\n", "p.conf", &err),
                     MESH_INVALID);
    assert_string_equal(o.name, "first");
    assert_int_equal(o.port, 7070);
    mesh_opts_free(&spec, &o);
}

static void test_load_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/meshd-test-config-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/meshd.conf", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("# test\nname = from-file\nport = 9000\nmode = off\n", f);
    fclose(f);
    topts_t o;
    init(&o);
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(mesh_opts_load_file(&spec, &o, path, &err), MESH_OK);
    assert_string_equal(o.name, "from-file");
    assert_int_equal(o.port, 9000);
    assert_string_equal(o.mode, "off");

    /* errors name path:line */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("name = x\n\nport = 0\n", f);
    fclose(f);
    assert_int_equal(mesh_opts_load_file(&spec, &o, path, &err), MESH_INVALID);
    char where[300];
    snprintf(where, sizeof where, "%s:3", path);
    assert_non_null(strstr(err.msg, where));

    /* a missing file */
    char missing[300];
    snprintf(missing, sizeof missing, "%s/none.conf", dir);
    mesh_err_clear(&err);
    assert_int_equal(mesh_opts_load_file(&spec, &o, missing, &err), MESH_NOT_FOUND);
    assert_non_null(strstr(err.msg, "none.conf"));
    mesh_opts_free(&spec, &o);
    unlink(path);
    rmdir(dir);
}

/* ---- the environment and precedence -------------------------------------------------------- */

static void clear_env(void)
{
    const char *vars[] = {"TCFG_CONFIG",  "TCFG_NAME",    "TCFG_PORT",  "TCFG_MAX_BODY",
                          "TCFG_TIMEOUT", "TCFG_VERBOSE", "TCFG_MODE",  "TCFG_SECRET_TOKEN",
                          "TCFG_COUNT",   "TCFG_EMPTY",   "TCFG_BOGUS", "port"};
    for (size_t i = 0; i < MESH_ARRAY_LEN(vars); i++)
        unsetenv(vars[i]);
}

static void test_env(void **state)
{
    (void)state;
    clear_env();
    setenv("TCFG_PORT", "8443", 1);
    setenv("TCFG_MAX_BODY", "1MiB", 1);
    setenv("TCFG_VERBOSE", "1", 1);
    setenv("TCFG_CONFIG", "/etc/from-env.conf", 1); /* NOFILE options come from env too */
    setenv("TCFG_EMPTY", "", 1);
    setenv("TCFG_BOGUS", "ignored", 1);
    setenv("port", "1", 1); /* without the prefix: not ours */
    topts_t o;
    init(&o);
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(mesh_opts_load_env(&spec, &o, &err), MESH_OK);
    assert_int_equal(o.port, 8443);
    assert_int_equal(o.max_body, 1 << 20);
    assert_true(o.verbose);
    assert_string_equal(o.config, "/etc/from-env.conf");
    assert_string_equal(o.empty, "");
    assert_string_equal(o.name, "node-1");

    /* a bad value names the variable */
    setenv("TCFG_TIMEOUT", "forever", 1);
    mesh_err_clear(&err);
    assert_int_equal(mesh_opts_load_env(&spec, &o, &err), MESH_INVALID);
    assert_non_null(strstr(err.msg, "TCFG_TIMEOUT"));
    assert_non_null(strstr(err.msg, "not a duration"));
    mesh_opts_free(&spec, &o);
    clear_env();
}

static void test_precedence(void **state)
{
    (void)state;
    clear_env();
    topts_t o;
    init(&o); /* default: port 7070, name node-1, mode fast */
    mesh_err_t err;
    assert_int_equal(
        mesh_opts_load_text(&spec, &o, "port = 1000\nname = file\nmode = safe\n", "p.conf", &err),
        MESH_OK);
    setenv("TCFG_PORT", "2000", 1);
    setenv("TCFG_NAME", "env", 1);
    assert_int_equal(mesh_opts_load_env(&spec, &o, &err), MESH_OK);
    assert_int_equal(mesh_opts_set(&spec, &o, "port", "3000", "flag --port", &err), MESH_OK);
    assert_int_equal(o.port, 3000);         /* flag > env > file > default */
    assert_string_equal(o.name, "env");     /* env > file */
    assert_string_equal(o.mode, "safe");    /* file > default */
    assert_int_equal(o.max_body, 64 << 10); /* default */
    mesh_opts_free(&spec, &o);
    clear_env();
}

/* ---- generated text ------------------------------------------------------------------------ */

static char *capture(void (*fn)(const mesh_opts_spec_t *, FILE *))
{
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    assert_non_null(f);
    fn(&spec, f);
    fclose(f);
    return text;
}

static void test_help(void **state)
{
    (void)state;
    char *h = capture(mesh_opts_help);
    assert_non_null(strstr(h, "--max-body SIZE"));
    assert_non_null(strstr(h, "Largest body."));
    assert_non_null(strstr(h, "Environment: TCFG_MAX_BODY"));
    assert_non_null(strstr(h, "config file: max_body"));
    assert_non_null(strstr(h, "default: 64KiB"));
    assert_non_null(strstr(h, "--port PORT"));
    assert_non_null(strstr(h, "Range: 1..65535"));
    assert_non_null(strstr(h, "One of: fast|safe|off"));
    assert_non_null(strstr(h, "--verbose BOOL"));
    assert_non_null(strstr(h, "--empty VALUE"));
    /* a NOFILE option is not offered for the file */
    assert_non_null(strstr(h, "Environment: TCFG_CONFIG"));
    assert_null(strstr(h, "config file: config"));
    /* the secret is documented but its default never shown */
    assert_non_null(strstr(h, "--secret-token TOKEN"));
    assert_non_null(strstr(h, "TCFG_SECRET_TOKEN"));
    assert_null(strstr(h, "hunter2"));
    free(h);

    char *md = capture(mesh_opts_markdown);
    assert_non_null(strstr(md, "| max_body | `--max-body SIZE` | `TCFG_MAX_BODY` |"));
    assert_non_null(strstr(md, "`64KiB`"));
    assert_non_null(strstr(md, "(flag only)"));
    assert_non_null(strstr(md, "integer 1..65535"));
    assert_null(strstr(md, "hunter2"));
    free(md);

    char *ex = capture(mesh_opts_example);
    assert_non_null(strstr(ex, "# max_body = 64KiB\n"));
    assert_non_null(strstr(ex, "# Also: --max-body, TCFG_MAX_BODY."));
    assert_non_null(strstr(ex, "# secret_token = \n"));
    assert_null(strstr(ex, "hunter2"));
    assert_null(strstr(ex, "# config ="));
    free(ex);
}

static void test_example_loads_back(void **state)
{
    (void)state;
    /* the example with every line uncommented is a valid config at the defaults */
    char *ex = capture(mesh_opts_example);
    mesh_buf_t b;
    mesh_buf_init(&b, 1 << 20);
    for (char *line = strtok(ex, "\n"); line; line = strtok(NULL, "\n")) {
        size_t l = strlen(line);
        /* options without a default are shown as "name = " and stay unset */
        if (strncmp(line, "# ", 2) == 0 && strstr(line, " = ") && line[l - 1] != ' ')
            mesh_buf_printf(&b, "%s\n", line + 2);
    }
    free(ex);
    topts_t o;
    init(&o);
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_opts_load_text(&spec, &o, b.data, "example", &err);
    if (st != MESH_OK)
        print_message("%s\n%s\n", b.data, err.msg);
    assert_int_equal(st, MESH_OK);
    assert_int_equal(o.port, 7070);
    assert_int_equal(o.max_body, 64 << 10);
    mesh_opts_free(&spec, &o);
    mesh_buf_free(&b);
}

/* A repeatable option: every value counts, from lines, flags and the environment alike. */
typedef struct lopts {
    char *item;
} lopts_t;

static void test_list(void **state)
{
    (void)state;
    static const mesh_opt_t lo[] = {
        {"item", MESH_OPT_LIST, offsetof(lopts_t, item), NULL, 0, 0, NULL, 0, "ITEM", "An item."},
    };
    static const mesh_opts_spec_t ls = {lo, 1, "TCFGL_"};
    lopts_t o;
    mesh_err_t err;
    assert_int_equal(mesh_opts_defaults(&ls, &o, &err), MESH_OK);
    assert_null(o.item);
    assert_int_equal(mesh_opts_load_text(&ls, &o, "item = a b c\n# x\nitem = \"d e\"\n", "f", &err),
                     MESH_OK);
    assert_int_equal(mesh_opts_set(&ls, &o, "item", "f", "flag --item", &err), MESH_OK);
    assert_string_equal(o.item, "a b c\nd e\nf");
    assert_int_equal(mesh_opts_set(&ls, &o, "item", "x\ny", "flag --item", &err), MESH_INVALID);
    assert_non_null(strstr(err.msg, "line break"));
    assert_string_equal(o.item, "a b c\nd e\nf");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    mesh_opts_help(&ls, f);
    fclose(f);
    assert_non_null(strstr(text, "more than once"));
    free(text);
    mesh_opts_free(&ls, &o);
    assert_null(o.item);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_bad_default_is_reported),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_set_each_type),
        cmocka_unit_test(test_set_refusals),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_file_text),
        cmocka_unit_test(test_file_values),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_file_partial_application),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_example_loads_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
