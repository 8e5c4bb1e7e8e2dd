/*
 * kek.c - key-encryption keys: where they come from (a file, the environment, a passphrase
 * through scrypt, a command) and their identifiers.
 *
 * Key material read from outside is parsed by mesh_kek_parse_text (fuzzed) and cleansed from
 * every buffer it passed through. A command runs without a shell (argv from
 * mesh_kek_split_command), with /dev/null as input, its output capped and timed.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "crypt/keys.h"

extern char **environ;

struct mesh_kek {
    pthread_rwlock_t lock; /* the fields below may be replaced by a rotation */
    uint8_t secret[MESH_KEY_BYTES];
    uint8_t id[MESH_KEK_ID_BYTES];
    mesh_kdf_t kdf;
    char label[160];
};

void mesh_kdf_default(mesh_kdf_t *out)
{
    memset(out, 0, sizeof *out);
    out->kind = 1;
    out->log2_n = 16;
    out->r = 8;
    out->p = 1;
    mesh_random(out->salt, sizeof out->salt);
}

static void kek_id(const uint8_t key[MESH_KEY_BYTES], uint8_t out[MESH_KEK_ID_BYTES])
{
    static const char label[] = "meshd kek id v1";
    uint8_t mac[32];
    unsigned len = sizeof mac;
    HMAC(EVP_sha256(), key, MESH_KEY_BYTES, (const uint8_t *)label, sizeof label - 1, mac, &len);
    memcpy(out, mac, MESH_KEK_ID_BYTES);
}

mesh_status_t mesh_kek_from_bytes(const uint8_t key[MESH_KEY_BYTES], const char *label,
                                  mesh_kek_t **out, mesh_err_t *err)
{
    mesh_kek_t *k = calloc(1, sizeof *k);
    if (k == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    pthread_rwlock_init(&k->lock, NULL);
    memcpy(k->secret, key, MESH_KEY_BYTES);
    kek_id(k->secret, k->id);
    snprintf(k->label, sizeof k->label, "%s", label ? label : "?");
    *out = k;
    return MESH_OK;
}

mesh_status_t mesh_kek_from_passphrase(const char *pass, size_t n, const mesh_kdf_t *kdf,
                                       const char *label, mesh_kek_t **out, mesh_err_t *err)
{
    if (n < 8)
        return mesh_err_set(err, MESH_INVALID, "%s: a passphrase needs at least 8 characters",
                            label);
    if (kdf->kind != 1 || kdf->log2_n < 10 || kdf->log2_n > 24 || kdf->r < 1 || kdf->r > 32 ||
        kdf->p < 1 || kdf->p > 16 || ((128ull * kdf->r) << kdf->log2_n) > (256ull << 20))
        return mesh_err_set(err, MESH_INVALID, "%s: scrypt parameters out of bounds", label);
    uint64_t nn = 1ull << kdf->log2_n;
    uint64_t maxmem = 128ull * kdf->r * (nn + 2 + kdf->p) + (1u << 20);
    uint8_t key[MESH_KEY_BYTES];
    if (EVP_PBE_scrypt(pass, n, kdf->salt, sizeof kdf->salt, nn, kdf->r, kdf->p, maxmem, key,
                       sizeof key) != 1)
        return mesh_err_set(err, MESH_NOMEM, "%s: scrypt failed (out of memory?)", label);
    mesh_status_t st = mesh_kek_from_bytes(key, label, out, err);
    mesh_cleanse(key, sizeof key);
    if (st == MESH_OK)
        (*out)->kdf = *kdf;
    return st;
}

void mesh_kek_free(mesh_kek_t *k)
{
    if (k == NULL)
        return;
    pthread_rwlock_destroy(&k->lock);
    mesh_cleanse(k, sizeof *k);
    free(k);
}

/* The lock is not part of the KEK's value: const users still take it. */
void mesh__kek_rdlock(const mesh_kek_t *k)
{
    pthread_rwlock_rdlock((pthread_rwlock_t *)&k->lock);
}

void mesh__kek_unlock(const mesh_kek_t *k)
{
    pthread_rwlock_unlock((pthread_rwlock_t *)&k->lock);
}

mesh_status_t mesh_kek_clone(const mesh_kek_t *k, mesh_kek_t **out, mesh_err_t *err)
{
    mesh__kek_rdlock(k);
    mesh_status_t st = mesh_kek_from_bytes(k->secret, k->label, out, err);
    if (st == MESH_OK)
        (*out)->kdf = k->kdf;
    mesh__kek_unlock(k);
    return st;
}

void mesh_kek_write_lock(mesh_kek_t *k)
{
    pthread_rwlock_wrlock(&k->lock);
}

void mesh_kek_write_unlock(mesh_kek_t *k)
{
    pthread_rwlock_unlock(&k->lock);
}

void mesh_kek_assign_locked(mesh_kek_t *k, const mesh_kek_t *from)
{
    memcpy(k->secret, from->secret, sizeof k->secret);
    memcpy(k->id, from->id, sizeof k->id);
    k->kdf = from->kdf;
    memcpy(k->label, from->label, sizeof k->label);
}

void mesh_kek_describe(const mesh_kek_t *k, char id_hex[2 * MESH_KEK_ID_BYTES + 1], char *label,
                       size_t cap)
{
    mesh__kek_rdlock(k);
    mesh_hex(k->id, MESH_KEK_ID_BYTES, id_hex);
    if (label && cap)
        snprintf(label, cap, "%s", k->label);
    mesh__kek_unlock(k);
}

const uint8_t *mesh_kek_id(const mesh_kek_t *k)
{
    return k->id;
}

void mesh_kek_id_hex(const mesh_kek_t *k, char out[2 * MESH_KEK_ID_BYTES + 1])
{
    mesh_hex(k->id, MESH_KEK_ID_BYTES, out);
}

const mesh_kdf_t *mesh_kek_kdf(const mesh_kek_t *k)
{
    return &k->kdf;
}

const char *mesh_kek_label(const mesh_kek_t *k)
{
    return k->label;
}

const uint8_t *mesh__kek_secret(const mesh_kek_t *k)
{
    return k->secret;
}

/* ---- key material as text ---- */

static int b64_value(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Standard base64 of exactly 32 bytes: 43 characters, then an optional '='. */
static bool b64_32(const uint8_t *p, size_t n, uint8_t out[MESH_KEY_BYTES])
{
    if (n == 44 && p[43] == '=')
        n = 43;
    if (n != 43)
        return false;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value(p[i]);
        if (v < 0)
            return false;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == MESH_KEY_BYTES)
                return false;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* 43 * 6 = 258 bits: 256 used, the last 2 must be zero (canonical form) */
    return o == MESH_KEY_BYTES && (acc & ((1u << bits) - 1)) == 0;
}

static bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

mesh_status_t mesh_kek_parse_text(const uint8_t *p, size_t n, uint8_t out[MESH_KEY_BYTES],
                                  mesh_err_t *err)
{
    size_t a = 0, b = n;
    while (a < b && is_space(p[a]))
        a++;
    while (b > a && is_space(p[b - 1]))
        b--;
    char hex[2 * MESH_KEY_BYTES + 1];
    if (b - a == 2 * MESH_KEY_BYTES) {
        memcpy(hex, p + a, 2 * MESH_KEY_BYTES);
        hex[2 * MESH_KEY_BYTES] = '\0';
        bool ok = mesh_unhex(hex, out, MESH_KEY_BYTES);
        mesh_cleanse(hex, sizeof hex);
        if (ok)
            return MESH_OK;
    }
    if (b64_32(p + a, b - a, out))
        return MESH_OK;
    if (n == MESH_KEY_BYTES) {
        memcpy(out, p, MESH_KEY_BYTES);
        return MESH_OK;
    }
    mesh_cleanse(out, MESH_KEY_BYTES);
    return mesh_err_set(err, MESH_INVALID,
                        "not a 256-bit key: expected 64 hex digits, base64 of 32 bytes, or "
                        "exactly 32 bytes (got %zu bytes)",
                        n);
}

/* ---- commands ---- */

mesh_status_t mesh_kek_split_command(const char *line, size_t n, char *buf, size_t cap, char **argv,
                                     int *argc, mesh_err_t *err)
{
    *argc = 0;
    if (n > MESH_KEK_CMD_MAX || cap < n + 1)
        return mesh_err_set(err, MESH_INVALID, "command longer than %d bytes", MESH_KEK_CMD_MAX);
    size_t i = 0, o = 0;
    for (;;) {
        while (i < n && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i == n)
            break;
        if (*argc == MESH_KEK_CMD_MAX_ARGS)
            return mesh_err_set(err, MESH_INVALID, "command of more than %d words",
                                MESH_KEK_CMD_MAX_ARGS);
        argv[(*argc)++] = buf + o;
        char quote = 0;
        while (i < n) {
            char c = line[i];
            if (c == '\0' || c == '\n' || c == '\r')
                return mesh_err_set(err, MESH_INVALID, "command holds a control character");
            if (quote == 0 && (c == ' ' || c == '\t'))
                break;
            i++;
            if (quote == 0 && (c == '\'' || c == '"')) {
                quote = c;
                continue;
            }
            if (quote == c) {
                quote = 0;
                continue;
            }
            if (c == '\\' && quote != '\'') {
                if (i == n)
                    return mesh_err_set(err, MESH_INVALID, "command ends with a backslash");
                c = line[i++];
            }
            buf[o++] = c;
        }
        if (quote)
            return mesh_err_set(err, MESH_INVALID, "unterminated %c quote in the command", quote);
        buf[o++] = '\0';
    }
    argv[*argc] = NULL;
    if (*argc == 0)
        return mesh_err_set(err, MESH_INVALID, "empty command");
    return MESH_OK;
}

mesh_status_t mesh_kek_run_command(const char *line, int64_t timeout_ns,
                                   uint8_t out[MESH_KEY_BYTES], mesh_err_t *err)
{
    char words[MESH_KEK_CMD_MAX + 1];
    char *argv[MESH_KEK_CMD_MAX_ARGS + 1];
    int argc;
    mesh_status_t st =
        mesh_kek_split_command(line, strlen(line), words, sizeof words, argv, &argc, err);
    if (st != MESH_OK)
        return st;
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return mesh_err_set(err, MESH_IO, "kek_command: pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (rc != 0) {
        close(pfd[0]);
        return mesh_err_set(err, MESH_INVALID, "kek_command: cannot run %s: %s", argv[0],
                            strerror(rc));
    }
    uint8_t buf[4096];
    size_t len = 0;
    bool too_long = false, timed_out = false;
    int64_t deadline = mesh_mono_ns() + (timeout_ns > 0 ? timeout_ns : 10 * MESH_NS_PER_SEC);
    for (;;) {
        int64_t left = deadline - mesh_mono_ns();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        int pr = poll(&p, 1, (int)(left / 1000000 + 1));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue; /* the deadline check above ends it */
        ssize_t r = read(pfd[0], buf + len, sizeof buf - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len == sizeof buf) {
            too_long = true;
            break;
        }
    }
    close(pfd[0]);
    if (timed_out || too_long)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (timed_out)
        st = mesh_err_set(err, MESH_TIMEOUT, "kek_command: %s did not finish in time", argv[0]);
    else if (too_long)
        st = mesh_err_set(err, MESH_INVALID, "kek_command: %s printed more than 4 KiB", argv[0]);
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        st = mesh_err_set(err, MESH_INVALID, "kek_command: %s failed (status %d)", argv[0],
                          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    else if ((st = mesh_kek_parse_text(buf, len, out, err)) != MESH_OK)
        mesh_err_prefix(err, "kek_command output: ");
    mesh_cleanse(buf, sizeof buf);
    return st;
}

/* ---- the node's KEK ---- */

/* Reads a small secret file into buf (cap bytes); warns when others may read it. */
static mesh_status_t read_secret(const char *path, uint8_t *buf, size_t cap, size_t *n,
                                 mesh_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mesh_err_set(err, errno == ENOENT ? MESH_NOT_FOUND : MESH_IO, "%s: %s", path,
                            strerror(errno));
    struct stat stt;
    if (fstat(fd, &stt) == 0 && (stt.st_mode & 077))
        LOG_WARN("crypt", "%s can be read by group or others (mode %03o); chmod 600 it", path,
                 (unsigned)(stt.st_mode & 0777));
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return mesh_err_set(err, MESH_IO, "%s: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len == cap) {
            close(fd);
            return mesh_err_set(err, MESH_INVALID, "%s: larger than %zu bytes", path, cap - 1);
        }
    }
    close(fd);
    *n = len;
    return MESH_OK;
}

mesh_status_t mesh_kek_generate_file(const char *path, mesh_kek_t **out, mesh_err_t *err)
{
    uint8_t key[MESH_KEY_BYTES];
    char text[2 * MESH_KEY_BYTES + 2];
    if (mesh_random(key, sizeof key) != MESH_OK)
        return mesh_err_set(err, MESH_IO, "no random bytes");
    mesh_hex(key, sizeof key, text);
    text[2 * MESH_KEY_BYTES] = '\n';
    text[2 * MESH_KEY_BYTES + 1] = '\0';
    mesh_status_t st = mesh_write_file_atomic(path, text, 2 * MESH_KEY_BYTES + 1, 0600, err);
    mesh_cleanse(text, sizeof text);
    if (st == MESH_OK) {
        char label[160];
        snprintf(label, sizeof label, "%s", path);
        st = mesh_kek_from_bytes(key, label, out, err);
    }
    mesh_cleanse(key, sizeof key);
    return st;
}

static mesh_status_t kek_from_file(const char *path, const char *label, mesh_kek_t **out,
                                   mesh_err_t *err)
{
    uint8_t buf[4096], key[MESH_KEY_BYTES];
    size_t n = 0;
    mesh_status_t st = read_secret(path, buf, sizeof buf, &n, err);
    if (st == MESH_OK && (st = mesh_kek_parse_text(buf, n, key, err)) != MESH_OK)
        mesh_err_prefix(err, "%s: ", path);
    if (st == MESH_OK)
        st = mesh_kek_from_bytes(key, label, out, err);
    mesh_cleanse(buf, sizeof buf);
    mesh_cleanse(key, sizeof key);
    return st;
}

/* Derives a passphrase KEK with the scrypt parameters recorded in DATA/catalog.key (the one
 * whose KEK id matches, when there are two), or new ones for a new data directory. */
static mesh_status_t kek_from_passphrase(const char *pass, size_t n, const char *data_dir,
                                         const char *label, mesh_kek_t **out, mesh_err_t *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/catalog.key", data_dir);
    mesh_keyfile_t kf;
    mesh_err_t e2;
    mesh_status_t st = mesh_keyfile_peek(path, &kf, &e2);
    if (st == MESH_NOT_FOUND) {
        mesh_kdf_t kdf;
        mesh_kdf_default(&kdf);
        return mesh_kek_from_passphrase(pass, n, &kdf, label, out, err);
    }
    if (st != MESH_OK) {
        *err = e2;
        return st;
    }
    const mesh_kdf_t *first = NULL;
    for (size_t w = 0; w < kf.nwraps; w++) {
        if (kf.wraps[w].kdf.kind != 1)
            continue;
        if (first == NULL)
            first = &kf.wraps[w].kdf;
        mesh_kek_t *k;
        if ((st = mesh_kek_from_passphrase(pass, n, &kf.wraps[w].kdf, label, &k, err)) != MESH_OK)
            return st;
        if (memcmp(mesh_kek_id(k), kf.wraps[w].kek_id, MESH_KEK_ID_BYTES) == 0 ||
            w + 1 == kf.nwraps) {
            *out = k; /* a mismatch is reported by the unwrap, with both ids */
            return MESH_OK;
        }
        mesh_kek_free(k);
    }
    if (first == NULL)
        return mesh_err_set(err, MESH_FORBIDDEN,
                            "%s was not wrapped with a passphrase: give the key-encryption key "
                            "it was made with (kek_file, kek or kek_command)",
                            path);
    return mesh_err_set(err, MESH_INTERNAL, "unreachable");
}

mesh_status_t mesh_kek_load(const mesh_kek_source_t *src, const char *data_dir, bool *generated,
                            bool *in_data_dir, mesh_kek_t **out, mesh_err_t *err)
{
    *generated = false;
    *in_data_dir = false;
    const char *names[5] = {"kek_file", "kek", "kek_passphrase", "kek_passphrase_file",
                            "kek_command"};
    const char *vals[5] = {src->file, src->value, src->passphrase, src->passphrase_file,
                           src->command};
    int given = -1;
    for (int i = 0; i < 5; i++) {
        if (vals[i] == NULL || vals[i][0] == '\0')
            continue;
        if (given >= 0)
            return mesh_err_set(err, MESH_INVALID,
                                "give one source of the key-encryption key, not both %s and %s",
                                names[given], names[i]);
        given = i;
    }
    char label[160];
    mesh_status_t st;
    uint8_t key[MESH_KEY_BYTES];
    switch (given) {
    case 0:
        snprintf(label, sizeof label, "kek_file %s", src->file);
        return kek_from_file(src->file, label, out, err);
    case 1:
        if ((st = mesh_kek_parse_text((const uint8_t *)src->value, strlen(src->value), key, err)) !=
            MESH_OK) {
            mesh_err_prefix(err, "kek (MESHD_KEK): ");
            return st;
        }
        st = mesh_kek_from_bytes(key, "kek (MESHD_KEK)", out, err);
        mesh_cleanse(key, sizeof key);
        return st;
    case 2:
        return kek_from_passphrase(src->passphrase, strlen(src->passphrase), data_dir,
                                   "kek_passphrase (MESHD_KEK_PASSPHRASE)", out, err);
    case 3: {
        uint8_t buf[4096];
        size_t n = 0;
        if ((st = read_secret(src->passphrase_file, buf, sizeof buf, &n, err)) != MESH_OK)
            return st;
        size_t line = 0;
        while (line < n && buf[line] != '\n' && buf[line] != '\r')
            line++;
        snprintf(label, sizeof label, "kek_passphrase_file %s", src->passphrase_file);
        st = kek_from_passphrase((const char *)buf, line, data_dir, label, out, err);
        mesh_cleanse(buf, sizeof buf);
        return st;
    }
    case 4:
        if ((st = mesh_kek_run_command(src->command, src->command_timeout_ns, key, err)) != MESH_OK)
            return st;
        st = mesh_kek_from_bytes(key, "kek_command", out, err);
        mesh_cleanse(key, sizeof key);
        return st;
    default:
        break;
    }
    /* nothing configured: the key file in the data directory */
    char kpath[4096], cpath[4096];
    snprintf(kpath, sizeof kpath, "%s/kek.key", data_dir);
    snprintf(cpath, sizeof cpath, "%s/catalog.key", data_dir);
    *in_data_dir = true;
    if (access(kpath, F_OK) == 0)
        return kek_from_file(kpath, kpath, out, err);
    if (access(cpath, F_OK) == 0)
        return mesh_err_set(err, MESH_NOT_FOUND,
                            "%s is encrypted but no key-encryption key is configured and %s is "
                            "absent: give kek_file, kek (MESHD_KEK), kek_passphrase_file, "
                            "kek_passphrase or kek_command",
                            data_dir, kpath);
    *generated = true;
    return mesh_kek_generate_file(kpath, out, err);
}
