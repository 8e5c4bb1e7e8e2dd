/*
 * secret.c - passwords from standard input, a file or the terminal, request bodies holding
 * them, and the login file (see secret.h).
 *
 * Lines are read one byte at a time with read(2), not through stdio: nothing past the line
 * end is consumed (a second password may follow on the next line) and no stdio buffer keeps
 * a copy. At the terminal, echo is switched off with termios; a signal handler puts the
 * terminal back before the signal's default action ends the process.
 */
#include "cli/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "core/util.h"

#define LOGIN_MARK      "# written by meshctl login"
#define LOGIN_FILE_MAX  (64 * 1024)
#define SECRET_BODY_MAX ((size_t)64 << 10) /* a body with passwords: JSON-escaped, 2 at most */

/* ---- reading a line ---- */

/* Reads one line from fd into out (cap bytes, NUL-terminated, line end dropped). Returns the
 * length, -1 on a read error (errno set), -2 when the line does not fit, -3 at end of input
 * before any byte. The rest of a line that does not fit is consumed. */
static long read_line(int fd, char *out, size_t cap)
{
    size_t n = 0;
    bool any = false, over = false;
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        any = true;
        if (c == '\n')
            break;
        if (n + 1 < cap)
            out[n++] = c;
        else
            over = true;
    }
    if (n && out[n - 1] == '\r')
        n--;
    out[n] = '\0';
    if (over)
        return -2;
    return any ? (long)n : -3;
}

/* ---- the terminal ---- */

static int tty_fd = -1;
static struct termios tty_saved;

static void restore_tty(int sig)
{
    if (tty_fd >= 0)
        tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
    /* the handler was reset on entry (SA_RESETHAND): the default action ends the process */
    raise(sig);
}

static const int tty_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP};

/* Prompts on the terminal and reads a line with echo off. Returns read_line's result. */
static long read_terminal(const char *prompt, char *out, size_t cap)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -1;
    struct termios t;
    if (tcgetattr(fd, &t) != 0) {
        close(fd);
        return -1;
    }
    struct sigaction sa, old[MESH_ARRAY_LEN(tty_signals)];
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = restore_tty;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    tty_saved = t;
    tty_fd = fd;
    for (size_t i = 0; i < MESH_ARRAY_LEN(tty_signals); i++)
        sigaction(tty_signals[i], &sa, &old[i]);
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
    t.c_lflag |= ECHONL;
    long n = -1;
    if (tcsetattr(fd, TCSAFLUSH, &t) == 0) {
        (void)mesh_write_all(fd, prompt, strlen(prompt));
        n = read_line(fd, out, cap);
        tcsetattr(fd, TCSAFLUSH, &tty_saved);
    }
    for (size_t i = 0; i < MESH_ARRAY_LEN(tty_signals); i++)
        sigaction(tty_signals[i], &old[i], NULL);
    tty_fd = -1;
    close(fd);
    return n;
}

/* ---- password sources ---- */

int mesh_cli_pw_open(mesh_cli_t *cli, const mesh_cli_args_t *a, bool prompt, mesh_cli_pwsrc_t *src)
{
    memset(src, 0, sizeof *src);
    src->fd = -1;
    bool use_stdin = mesh_cli_flag(a, MESH_CLI_OPT_PASSWORD_STDIN);
    const char *file = mesh_cli_arg(a, MESH_CLI_OPT_PASSWORD_FILE);
    if (use_stdin && file)
        return mesh_cli_usage(cli, "give --password-stdin or --password-file, not both");
    if (use_stdin) {
        src->kind = MESH_CLI_PW_FD;
        src->fd = STDIN_FILENO;
        src->name = "standard input";
        return 0;
    }
    if (file) {
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return mesh_cli_local(cli, "cannot read %s: %s", file, strerror(errno));
        struct stat sb;
        if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && (sb.st_mode & 077) && !cli->quiet)
            fprintf(stderr, "meshctl: warning: other users may read %s (chmod 600 %s)\n", file,
                    file);
        src->kind = MESH_CLI_PW_FD;
        src->fd = fd;
        src->own_fd = true;
        src->name = file;
        return 0;
    }
    if (!prompt)
        return 0;
    if (!isatty(STDIN_FILENO))
        return mesh_cli_usage(cli, "no password: give --password-stdin or --password-file FILE "
                                   "(or run on a terminal to type it)");
    src->kind = MESH_CLI_PW_TERMINAL;
    src->name = "the terminal";
    return 0;
}

void mesh_cli_pw_close(mesh_cli_pwsrc_t *src)
{
    if (src->own_fd && src->fd >= 0)
        close(src->fd);
    src->fd = -1;
    src->own_fd = false;
}

static bool utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        size_t k = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : 3;
        if ((c >= 0x80 && c < 0xc2) || c > 0xf4)
            return false;
        unsigned cp = k == 0 ? c : k == 1 ? c & 0x1f : k == 2 ? c & 0x0f : c & 0x07;
        for (size_t i = 1; i <= k; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        p += k + 1;
    }
    return true;
}

/* One password from src into out; returns 0 or an exit code. */
static int read_one(mesh_cli_t *cli, mesh_cli_pwsrc_t *src, const char *prompt, const char *what,
                    char *out)
{
    long n = src->kind == MESH_CLI_PW_TERMINAL ? read_terminal(prompt, out, MESH_CLI_PASSWORD_CAP)
                                               : read_line(src->fd, out, MESH_CLI_PASSWORD_CAP);
    if (n == -1)
        return mesh_cli_local(cli, "cannot read %s from %s: %s", what, src->name, strerror(errno));
    if (n == -2)
        return mesh_cli_usage(cli, "%s is longer than %d bytes", what, MESH_PASSWORD_MAX);
    if (n == -3)
        return mesh_cli_usage(cli, "%s: %s ended before it", src->name, what);
    if (n == 0)
        return mesh_cli_usage(cli, "%s is empty", what);
    if (!utf8_ok(out))
        return mesh_cli_usage(cli, "%s is not UTF-8 text", what);
    return 0;
}

int mesh_cli_pw_read(mesh_cli_t *cli, mesh_cli_pwsrc_t *src, const char *prompt, const char *what,
                     bool is_new, char *out)
{
    out[0] = '\0';
    int rc = read_one(cli, src, prompt, what, out);
    if (rc == 0 && is_new && strlen(out) < MESH_PASSWORD_MIN)
        rc = mesh_cli_usage(cli, "%s needs at least %d characters", what, MESH_PASSWORD_MIN);
    if (rc == 0 && is_new && src->kind == MESH_CLI_PW_TERMINAL) {
        char again[MESH_CLI_PASSWORD_CAP];
        rc = read_one(cli, src, "Retype it: ", what, again);
        if (rc == 0 && strcmp(again, out) != 0)
            rc = mesh_cli_usage(cli, "the two passwords differ; nothing was changed");
        explicit_bzero(again, sizeof again);
    }
    if (rc != 0)
        explicit_bzero(out, MESH_CLI_PASSWORD_CAP);
    return rc;
}

/* ---- bodies ---- */

int mesh_cli_secret_body(mesh_cli_t *cli, const json_t *plain, const char *key1, const char *val1,
                         const char *key2, const char *val2, mesh_buf_t *b)
{
    mesh_buf_init(b, SECRET_BODY_MAX);
    char *text = json_dumps(plain, JSON_COMPACT);
    if (text == NULL)
        return mesh_cli_usage(cli, "the arguments must be UTF-8 text");
    size_t tl = strlen(text);
    /* escaping makes a byte at most 6 (\u00XX); room for both members and the plain part */
    size_t need = tl + 64 + (key1 ? strlen(key1) + 6 * strlen(val1) : 0) +
                  (key1 && key2 ? strlen(key2) + 6 * strlen(val2) : 0);
    int rc = 0;
    if (tl < 2 || mesh_buf_reserve(b, need) != MESH_OK) {
        rc = mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
        goto done;
    }
    mesh_buf_add(b, text, tl - 1); /* without the closing brace */
    const char *keys[2] = {key1, key2}, *vals[2] = {val1, val2};
    for (size_t i = 0; i < 2 && keys[i]; i++) {
        if (b->len > 1)
            mesh_buf_addc(b, ',');
        mesh_buf_add_json_str(b, keys[i], strlen(keys[i]));
        mesh_buf_addc(b, ':');
        mesh_buf_add_json_str(b, vals[i], strlen(vals[i]));
    }
    mesh_buf_addc(b, '}');
done:
    free(text);
    return rc;
}

void mesh_cli_secret_body_free(mesh_buf_t *b)
{
    if (b->data)
        explicit_bzero(b->data, b->cap);
    mesh_buf_free(b);
}

void mesh_cli_json_wipe(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        return;
    /* jansson owns the bytes and frees them with v: overwrite them first */
    char *s = (char *)json_string_value(v);
    explicit_bzero(s, json_string_length(v));
}

/* ---- the login file ---- */

bool mesh_cli_login_default_path(char *out, size_t cap)
{
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(out, cap, "%s/meshctl/token", xdg);
    else if (home && *home)
        snprintf(out, cap, "%s/.config/meshctl/token", home);
    else
        return false;
    return true;
}

int mesh_cli_login_inspect(mesh_cli_t *cli, const char *path, mesh_cli_login_state_t *state,
                           char **token)
{
    *state = MESH_CLI_LOGIN_NONE;
    if (token)
        *token = NULL;
    if (access(path, F_OK) != 0 && errno == ENOENT)
        return 0;
    char *text;
    size_t len;
    mesh_err_t err;
    mesh_err_clear(&err);
    if (mesh_read_file(path, LOGIN_FILE_MAX, &text, &len, &err) != MESH_OK)
        return mesh_cli_local(cli, "cannot read %s", err.msg);
    size_t first = strcspn(text, "\n");
    const char *second = text[first] ? text + first + 1 : "";
    bool ours = strncmp(second, LOGIN_MARK, strlen(LOGIN_MARK)) == 0;
    *state = ours ? MESH_CLI_LOGIN_OURS : MESH_CLI_LOGIN_FOREIGN;
    int rc = 0;
    if (ours && token) {
        size_t n = first && text[first - 1] == '\r' ? first - 1 : first;
        if (n && (*token = mesh_strndup(text, n)) == NULL)
            rc = mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    explicit_bzero(text, len);
    free(text);
    return rc;
}

int mesh_cli_login_write(mesh_cli_t *cli, const char *path, bool mkdir, const char *token,
                         const char *note)
{
    char dir[4096], tmp[4200];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    mesh_err_t err;
    mesh_err_clear(&err);
    if (mkdir && mesh_mkdirs(dir, 0700, &err) != MESH_OK)
        return mesh_cli_local(cli, "cannot make the directory of %s: %s", path, err.msg);
    snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
    int fd = mkstemp(tmp); /* mode 0600 */
    if (fd < 0)
        return mesh_cli_local(cli, "cannot write %s: %s", path, strerror(errno));
    mesh_buf_t b;
    mesh_buf_init(&b, LOGIN_FILE_MAX);
    int rc = 0;
    if (mesh_buf_reserve(&b, strlen(token) + strlen(note) + 64) != MESH_OK ||
        mesh_buf_printf(&b, "%s\n%s: %s\n", token, LOGIN_MARK, note) != MESH_OK) {
        rc = mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    } else if (fchmod(fd, 0600) != 0 || mesh_write_all(fd, b.data, b.len) != MESH_OK ||
               fsync(fd) != 0) {
        rc = mesh_cli_local(cli, "cannot write %s: %s", tmp, strerror(errno));
    }
    if (close(fd) != 0 && rc == 0)
        rc = mesh_cli_local(cli, "cannot write %s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = mesh_cli_local(cli, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc != 0)
        unlink(tmp);
    else
        mesh_fsync_dir(dir);
    mesh_cli_secret_body_free(&b);
    return rc;
}
