/*
 * cmd_backup.c - `meshctl backup create|list|verify|restore|delete`.
 *
 * create, list, delete and `verify ID` go through the API (meshd makes and keeps the
 * backups; create polls GET /v1/backups/{id} and draws a progress bar). `verify --file` and
 * restore work on a backup file here, without a node (node/backup.c), with the KEK options
 * of meshd: restore is what rebuilds a data directory after a disk is lost.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "core/util.h"
#include "crypt/aead.h"
#include "node/backup.h"

/* ---- create ---- */

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int run_create(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    json_t *body = json_object();
    if (mesh_cli_arg(a, "domain")) {
        json_t *doms = json_array();
        const char *d;
        for (size_t i = 0; (d = mesh_cli_arg_at(a, "domain", i)) != NULL; i++) {
            int rc = mesh_cli_domain_name(cli, d);
            if (rc != 0) {
                json_decref(doms);
                json_decref(body);
                return rc;
            }
            json_array_append_new(doms, json_string(d));
        }
        json_object_set_new(body, "domains", doms);
    }
    json_t *j = NULL;
    int rc = mesh_cli_send_json(cli, "POST", "/v1/backups", body, &j);
    json_decref(body);
    if (rc != 0)
        return rc;
    char id[MESH_ARCHIVE_ID_MAX];
    snprintf(id, sizeof id, "%s", mesh_cli_jstr(j, "id") ? mesh_cli_jstr(j, "id") : "");
    json_decref(j);
    bool json_out = strcmp(mesh_cli_format(cli, false), "json") == 0;
    if (mesh_cli_flag(a, "no-wait")) {
        if (json_out)
            printf("{\"id\":\"%s\",\"state\":\"running\"}\n", id);
        else
            printf("%s\n", id);
        return 0;
    }
    mesh_buf_t path;
    mesh_buf_init(&path, 4096);
    if ((rc = mesh_cli_path(cli, &path, "/v1/backups/", id)) != 0)
        return rc;
    mesh_progress_t *bar = NULL;
    json_t *m = NULL;
    const char *state = "running";
    for (;;) {
        mesh_client_req_t req = {.method = "GET", .path = path.data};
        json_decref(m);
        m = NULL;
        if ((rc = mesh_cli_call(cli, &req, &m)) != 0)
            break;
        json_t *job = json_object_get(m, "job");
        state = mesh_cli_jstr(job, "state") ? mesh_cli_jstr(job, "state") : "done";
        if (bar == NULL && mesh_cli_jint(job, "bytes_total") > 0)
            bar = mesh_progress_create(stderr, !cli->quiet && !json_out,
                                       mesh_cli_jint(job, "bytes_total"));
        mesh_progress_update(bar, -1, mesh_cli_jint(job, "bytes_done"));
        if (strcmp(state, "running") != 0)
            break;
        sleep_ms(200);
    }
    mesh_progress_destroy(bar);
    mesh_buf_free(&path);
    if (rc != 0) {
        json_decref(m);
        return rc;
    }
    json_t *job = json_object_get(m, "job");
    if (strcmp(state, "done") != 0) {
        rc = mesh_cli_fail(cli, MESH_IO, "backup %s failed: %s", id,
                           mesh_cli_jstr(job, "error") ? mesh_cli_jstr(job, "error") : state);
        json_decref(m);
        return rc;
    }
    if (json_out) {
        json_object_del(m, "job");
        char *s = json_dumps(m, JSON_COMPACT);
        if (s)
            printf("%s\n", s);
        free(s);
    } else if (!cli->quiet) {
        char b[24], t[24];
        printf("backup %s: %zu domain%s, %s of databases in %s (%s), %.1f s\n%s\n", id,
               json_array_size(json_object_get(m, "domains")),
               json_array_size(json_object_get(m, "domains")) == 1 ? "" : "s",
               mesh_cli_bytes(mesh_cli_jint(job, "bytes_total"), t, sizeof t),
               mesh_cli_bytes(mesh_cli_jint(m, "bytes"), b, sizeof b),
               json_is_true(json_object_get(m, "encrypted")) ? "compressed, encrypted"
                                                             : "compressed, NOT encrypted",
               (double)mesh_cli_jint(job, "elapsed_ms") / 1000.0, mesh_cli_jstr(m, "file"));
    }
    json_decref(m);
    return 0;
}

/* ---- list ---- */

static int run_list(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    (void)a;
    mesh_client_req_t req = {.method = "GET", .path = "/v1/backups"};
    if (strcmp(mesh_cli_format(cli, false), "json") == 0)
        return mesh_cli_raw(cli, &req);
    json_t *j;
    int rc = mesh_cli_call(cli, &req, &j);
    if (rc != 0)
        return rc;
    mesh_table_t *t = mesh_table_create(6);
    if (t == NULL) {
        json_decref(j);
        return mesh_cli_fail(cli, MESH_NOMEM, "out of memory");
    }
    const char *head[] = {"ID", "CREATED", "SIZE", "DOMAINS", "ENCRYPTED", "BY"};
    for (size_t i = 0; i < 6; i++)
        mesh_table_column(t, i, head[i], i == 2 ? MESH_ALIGN_RIGHT : MESH_ALIGN_LEFT,
                          i == 3 ? 60 : 0);
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(j, "backups"), i, b)
    {
        char tm[MESH_CLI_TIME_MAX], sz[24];
        mesh_table_add(t, mesh_cli_jstr(b, "id"));
        mesh_table_add(t, mesh_cli_short_time(mesh_cli_jstr(b, "created"), tm));
        mesh_table_add(t, mesh_cli_bytes(mesh_cli_jint(b, "bytes"), sz, sizeof sz));
        if (mesh_cli_jstr(b, "kek_id") && mesh_cli_jstr(b, "error") &&
            strstr(mesh_cli_jstr(b, "error"), "wrong key-encryption key")) {
            char e[200];
            snprintf(e, sizeof e, "? (made under KEK %s)", mesh_cli_jstr(b, "kek_id"));
            mesh_table_add(t, e);
        } else if (mesh_cli_jstr(b, "error")) {
            char e[200];
            snprintf(e, sizeof e, "? (%s)", mesh_cli_jstr(b, "error"));
            mesh_cli_clean(e);
            mesh_table_add(t, e);
        } else {
            mesh_buf_t d;
            mesh_buf_init(&d, 4096);
            mesh_cli_join(&d, json_object_get(b, "domains"), ",");
            mesh_table_add(t, d.len ? d.data : "-");
            mesh_buf_free(&d);
        }
        mesh_table_add(t, json_is_true(json_object_get(b, "encrypted")) ? "yes" : "NO");
        mesh_table_add(t, mesh_cli_jstr(b, "by") ? mesh_cli_jstr(b, "by") : "-");
    }
    mesh_cli_emit_table(cli, t, "table");
    mesh_table_destroy(t);
    if (!cli->quiet)
        printf("(in %s)\n", mesh_cli_jstr(j, "backup_dir") ? mesh_cli_jstr(j, "backup_dir") : "?");
    json_decref(j);
    return 0;
}

/* ---- offline helpers ---- */

static void on_progress(void *arg, uint64_t done, uint64_t total)
{
    (void)total;
    mesh_progress_update(arg, -1, (int64_t)done);
}

/* Opens path's archive and the KEK that opens it (from the --kek-* options, MESHD_KEK). */
static int backup_kek(mesh_cli_t *cli, const mesh_cli_args_t *a, const char *path,
                      const char *prefix, mesh_kek_t **out)
{
    *out = NULL;
    mesh_archive_t *ar;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_archive_open(path, &ar, &err);
    if (st == MESH_NOT_FOUND || st == MESH_IO)
        return mesh_cli_local(cli, "%s", err.msg);
    if (st != MESH_OK)
        return mesh_cli_fail(cli, st, "%s", err.msg);
    char name[64];
    const char *env = NULL;
    if (strcmp(prefix, "kek") == 0)
        env = getenv("MESHD_KEK");
    mesh_kek_source_t src = {.value = env && *env ? env : NULL,
                             .command_timeout_ns = 30 * MESH_NS_PER_SEC};
    snprintf(name, sizeof name, "%s-file", prefix);
    src.file = mesh_cli_arg(a, name);
    snprintf(name, sizeof name, "%s-passphrase-file", prefix);
    src.passphrase_file = mesh_cli_arg(a, name);
    snprintf(name, sizeof name, "%s-command", prefix);
    src.command = mesh_cli_arg(a, name);
    if (src.file || src.passphrase_file || src.command)
        src.value = NULL; /* an explicit option wins over the environment */
    st = mesh_backup_kek(ar, &src, out, &err);
    mesh_archive_close(ar);
    if (st == MESH_INVALID)
        return mesh_cli_usage(cli, "%s", err.msg);
    if (st != MESH_OK)
        return mesh_cli_fail(cli, st, "%s", err.msg);
    return 0;
}

/* ---- verify ---- */

static int print_manifest(mesh_cli_t *cli, json_t *m, const char *what)
{
    if (strcmp(mesh_cli_format(cli, false), "json") == 0) {
        char *s = json_dumps(m, JSON_COMPACT);
        if (s)
            printf("%s\n", s);
        free(s);
        return 0;
    }
    if (cli->quiet)
        return 0;
    char b[24], tm[MESH_CLI_TIME_MAX];
    size_t nfiles = json_array_size(json_object_get(m, "files"));
    printf("backup %s %s: %zu file%s, every chunk and checksum verified\n",
           mesh_cli_jstr(m, "id") ? mesh_cli_jstr(m, "id") : "?", what, nfiles,
           nfiles == 1 ? "" : "s");
    printf("created:   %s by node %s (%s)\n", mesh_cli_short_time(mesh_cli_jstr(m, "created"), tm),
           mesh_cli_jstr(json_object_get(m, "node"), "name")
               ? mesh_cli_jstr(json_object_get(m, "node"), "name")
               : "?",
           mesh_cli_jstr(m, "meshd_version") ? mesh_cli_jstr(m, "meshd_version") : "?");
    printf("size:      %s, %s\n", mesh_cli_bytes(mesh_cli_jint(m, "bytes"), b, sizeof b),
           json_is_true(json_object_get(m, "encrypted")) ? "encrypted (AES-256-GCM)"
                                                         : "NOT encrypted");
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(m, "domains"), i, d)
    {
        mesh_buf_t c;
        mesh_buf_init(&c, 4096);
        size_t k;
        json_t *ct;
        json_array_foreach(json_object_get(d, "contracts"), k, ct) mesh_buf_printf(
            &c, "%s%s %s", k ? ", " : "", mesh_cli_jstr(ct, "id"), mesh_cli_jstr(ct, "version"));
        printf("domain:    %s at log position %lld (%s)\n", mesh_cli_jstr(d, "name"),
               (long long)mesh_cli_jint(d, "applied_seq"), c.len ? c.data : "no contracts");
        mesh_buf_free(&c);
    }
    return 0;
}

static int run_verify(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *file = mesh_cli_arg(a, "file");
    if ((file != NULL) == (mesh_cli_npos(a) == 1))
        return mesh_cli_usage(cli, "give a backup id (verified by the node) or --file PATH");
    if (file == NULL) {
        mesh_buf_t path;
        mesh_buf_init(&path, 4096);
        int rc = mesh_cli_path(cli, &path, "/v1/backups/", mesh_cli_pos(a, 0));
        if (rc == 0)
            mesh_buf_adds(&path, "/verify");
        mesh_client_req_t req = {.method = "POST", .path = path.data};
        json_t *m = NULL;
        if (rc == 0)
            rc = mesh_cli_call(cli, &req, &m);
        mesh_buf_free(&path);
        if (rc == 0)
            rc = print_manifest(cli, m, "verifies");
        json_decref(m);
        return rc;
    }
    mesh_kek_t *kek = NULL;
    int rc = backup_kek(cli, a, file, "kek", &kek);
    if (rc != 0)
        return rc;
    mesh_archive_t *ar;
    mesh_err_t err;
    mesh_err_clear(&err);
    int64_t size = 0;
    if (mesh_archive_open(file, &ar, &err) == MESH_OK) {
        size = (int64_t)mesh_archive_info(ar)->file_bytes;
        mesh_archive_close(ar);
    }
    mesh_progress_t *bar = mesh_progress_create(stderr, !cli->quiet, size);
    json_t *m = NULL;
    mesh_status_t st = mesh_backup_verify_file(file, kek, on_progress, bar, &m, &err);
    mesh_progress_destroy(bar);
    mesh_kek_free(kek);
    if (st != MESH_OK)
        return mesh_cli_fail(cli, st, "%s", err.msg);
    rc = print_manifest(cli, m, "verifies");
    json_decref(m);
    return rc;
}

/* ---- restore ---- */

static int run_restore(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    const char *file = mesh_cli_pos(a, 0);
    const char *dir = mesh_cli_arg(a, "data-dir");
    if (dir == NULL)
        return mesh_cli_usage(cli, "--data-dir DIR is required: the data directory to restore "
                                   "into (new, or this node's with --in-place --force)");
    bool in_place = mesh_cli_flag(a, "in-place");
    if (in_place != mesh_cli_flag(a, "force"))
        return mesh_cli_usage(cli, "restoring over an existing node needs both --in-place and "
                                   "--force (meshd stopped): its catalog and domains are replaced");
    mesh_kek_t *kek = NULL, *target = NULL;
    int rc = backup_kek(cli, a, file, "kek", &kek);
    if (rc != 0)
        return rc;
    if (mesh_cli_arg(a, "target-kek-file") || mesh_cli_arg(a, "target-kek-command") ||
        mesh_cli_arg(a, "target-kek-passphrase-file")) {
        if (mesh_cli_arg(a, "target-kek-passphrase-file")) {
            mesh_kek_free(kek);
            return mesh_cli_usage(cli, "--target-kek-passphrase-file is not supported: restore "
                                       "with the backup's KEK, then meshctl keys rotate");
        }
        mesh_kek_source_t src = {.file = mesh_cli_arg(a, "target-kek-file"),
                                 .command = mesh_cli_arg(a, "target-kek-command"),
                                 .command_timeout_ns = 30 * MESH_NS_PER_SEC};
        bool gen = false, indir = false;
        mesh_err_t err;
        if (mesh_kek_load(&src, "/nonexistent", &gen, &indir, &target, &err) != MESH_OK) {
            mesh_kek_free(kek);
            return mesh_cli_usage(cli, "the target KEK: %s", err.msg);
        }
    }
    mesh_archive_t *ar;
    mesh_err_t err;
    mesh_err_clear(&err);
    int64_t size = 0;
    if (mesh_archive_open(file, &ar, &err) == MESH_OK) {
        size = (int64_t)mesh_archive_info(ar)->file_bytes;
        mesh_archive_close(ar);
    }
    mesh_progress_t *bar = mesh_progress_create(stderr, !cli->quiet, 2 * size);
    mesh_restore_opts_t o = {.archive = file,
                             .data_dir = dir,
                             .in_place = in_place,
                             .kek = kek,
                             .target_kek = target,
                             .progress = on_progress,
                             .arg = bar};
    json_t *res = NULL;
    mesh_status_t st = mesh_backup_restore(&o, &res, &err);
    mesh_progress_destroy(bar);
    mesh_kek_free(kek);
    mesh_kek_free(target);
    if (st != MESH_OK)
        return mesh_cli_fail(cli, st, "restore: %s", err.msg);
    if (strcmp(mesh_cli_format(cli, false), "json") == 0) {
        char *s = json_dumps(res, JSON_COMPACT);
        if (s)
            printf("%s\n", s);
        free(s);
    } else if (!cli->quiet) {
        printf("backup %s restored into %s%s\n", mesh_cli_jstr(res, "id"), dir,
               in_place ? " (in place)" : "");
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(res, "domains"), i, d)
            printf("domain %s at log position %lld\n", mesh_cli_jstr(d, "name"),
                   (long long)mesh_cli_jint(d, "applied_seq"));
        printf("start meshd with --data-dir %s and the same KEK options%s\n", dir,
               target ? " (the target KEK)" : "");
    }
    json_decref(res);
    return 0;
}

/* ---- delete ---- */

static int run_delete(mesh_cli_t *cli, const mesh_cli_args_t *a)
{
    mesh_buf_t path;
    mesh_buf_init(&path, 4096);
    int rc = mesh_cli_path(cli, &path, "/v1/backups/", mesh_cli_pos(a, 0));
    mesh_client_req_t req = {.method = "DELETE", .path = path.data};
    if (rc == 0)
        rc = mesh_cli_call(cli, &req, NULL);
    mesh_buf_free(&path);
    if (rc == 0 && !cli->quiet)
        printf("backup %s deleted\n", mesh_cli_pos(a, 0));
    return rc;
}

static const mesh_cli_opt_t create_opts[] = {
    {"domain", 0, "NAME", MESH_CLI_MULTI,
     "Back up this domain only (repeatable); the catalog is always included. Default: every "
     "domain."},
    {"no-wait", 0, NULL, 0, "Print the backup's id and return at once (see backup list)."},
    {NULL, 0, NULL, 0, NULL},
};

static const mesh_cli_opt_t verify_opts[] = {
    {"file", 0, "PATH", 0, "Verify this backup file here, offline, instead of asking the node."},
    {"kek-file", 0, "FILE", 0,
     "The key-encryption key the backup was made under (a file as meshd's kek_file; also "
     "MESHD_KEK). With --file."},
    {"kek-passphrase-file", 0, "FILE", 0,
     "... or a file whose first line is that KEK's passphrase (the backup records its scrypt "
     "salt)."},
    {"kek-command", 0, "COMMAND", 0,
     "... or a command printing that KEK (as meshd's kek_command)."},
    {NULL, 0, NULL, 0, NULL},
};

static const mesh_cli_opt_t restore_opts[] = {
    {"data-dir", 0, "DIR", 0,
     "The data directory to restore into: absent or empty, or (with --in-place --force) the "
     "directory of a stopped node."},
    {"in-place", 0, NULL, 0,
     "Replace the catalog and domains of an existing node's data directory (needs --force; "
     "meshd must be stopped: its DATA_DIR/LOCK is taken)."},
    {"force", 0, NULL, 0, "Confirm --in-place."},
    {"kek-file", 0, "FILE", 0,
     "The key-encryption key the backup was made under (a file as meshd's kek_file; also "
     "MESHD_KEK). The restored data keys are wrapped under it too, unless --target-kek-file."},
    {"kek-passphrase-file", 0, "FILE", 0,
     "... or a file whose first line is that KEK's passphrase (the backup records its scrypt "
     "salt)."},
    {"kek-command", 0, "COMMAND", 0,
     "... or a command printing that KEK (as meshd's kek_command)."},
    {"target-kek-file", 0, "FILE", 0,
     "Wrap the restored node's data keys under this KEK instead (e.g. the current one after "
     "a rotation, when the backup was made under the previous one)."},
    {"target-kek-command", 0, "COMMAND", 0, "... or under the KEK this command prints."},
    {"target-kek-passphrase-file", 0, "FILE", 0,
     "Not supported: restore with the backup's KEK, then rotate (meshctl keys rotate)."},
    {NULL, 0, NULL, 0, NULL},
};

const mesh_cli_cmd_t mesh_cli_backup_cmds[] = {
    {
        .name = "backup create",
        .usage = "[--domain NAME]... [OPTIONS]",
        .summary = "Take an online backup of the node.",
        .text = "Asks the node for a backup (POST /v1/backups) and follows it with a progress\n"
                "bar (size and rate) on a terminal. meshd copies the catalog and each domain\n"
                "while writes go on, each domain at a write-group boundary (the manifest records\n"
                "the log position it holds), compresses them with zstd and seals them with\n"
                "AES-256-GCM under a new data key wrapped by the node's key-encryption key. The\n"
                "backup lands in the node's backup_dir as ID.mbk. On a node with encryption=off\n"
                "the backup is compressed and checksummed but NOT encrypted. Needs an admin\n"
                "token.",
        .formats = "table|json",
        .opts = create_opts,
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl backup create\n"
                    "meshctl backup create --domain icu-3 --domain icu-4\n"
                    "meshctl backup create --no-wait",
        .exits = "0  the backup is complete\n"
                 "4  the token may not administer the node\n"
                 "5  another backup is running\n"
                 "8  the backup failed (the reason is printed)",
        .run = run_create,
    },
    {
        .name = "backup list",
        .usage = "[OPTIONS]",
        .summary = "List the node's backups.",
        .text = "Lists the backups in the node's backup_dir, newest first: id, time, size,\n"
                "domains, whether encrypted, and who asked (a principal, or schedule). A backup\n"
                "made under another KEK (before a rotation) shows its KEK id instead of its\n"
                "domains. Needs an admin token.",
        .formats = "table|json",
        .min_args = 0,
        .max_args = 0,
        .examples = "meshctl backup list\n"
                    "meshctl backup list --format json",
        .exits = "0  listed\n"
                 "4  the token may not administer the node",
        .run = run_list,
    },
    {
        .name = "backup verify",
        .usage = "(ID | --file PATH) [OPTIONS]",
        .summary = "Check every chunk and checksum of a backup.",
        .text = "Reads the whole backup without restoring anything: every chunk must\n"
                "authenticate in its place (nothing damaged, moved, swapped, cut off or taken\n"
                "from another backup), the stream must decompress to exactly the files the\n"
                "manifest lists, with their sizes and SHA-256 checksums. With an ID the node\n"
                "verifies one of its backups (POST /v1/backups/ID/verify, admin token); with\n"
                "--file meshctl verifies a file here, offline, given the KEK it was made under.",
        .formats = "table|json",
        .opts = verify_opts,
        .min_args = 0,
        .max_args = 1,
        .examples = "meshctl backup verify 20261123T230646.512Z-5d3c89\n"
                    "meshctl backup verify --file /mnt/backups/20261123T230646.512Z-5d3c89.mbk "
                    "--kek-file /etc/meshd/kek",
        .exits = "0  the backup verifies\n"
                 "1  the file cannot be read\n"
                 "2  no KEK given for an encrypted backup\n"
                 "3  no such backup\n"
                 "4  the KEK is not the one the backup was made under\n"
                 "8  the backup is damaged, truncated or altered (the first fault is printed)",
        .run = run_verify,
    },
    {
        .name = "backup restore",
        .usage = "FILE --data-dir DIR [OPTIONS]",
        .summary = "Restore a backup into a data directory (offline).",
        .text = "Rebuilds a node's data directory from a backup file, here, without a running\n"
                "node. The whole backup is verified first; nothing is written if it does not\n"
                "verify. The target must be absent or empty (a new node), unless --in-place\n"
                "--force replaces the catalog and domains of a stopped node (its audit log, TLS\n"
                "files and backups stay). Every database is sealed under a new data key wrapped\n"
                "by the KEK; each domain starts at the log position the backup holds. Then start\n"
                "meshd on DIR with that KEK: it serves the data as it was at the backup.",
        .formats = "table|json",
        .opts = restore_opts,
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl backup restore /mnt/backups/20261123T230646.512Z-5d3c89.mbk \\\n"
                    "    --data-dir /var/lib/meshd-new --kek-file /etc/meshd/kek\n"
                    "meshctl backup restore B.mbk --data-dir /var/lib/meshd --in-place --force "
                    "--kek-file /etc/meshd/kek",
        .exits = "0  restored\n"
                 "1  the file cannot be read\n"
                 "2  a usage error, or no KEK for an encrypted backup\n"
                 "4  the KEK is not the one the backup was made under\n"
                 "5  the target is not empty (no --in-place --force), or a meshd runs on it\n"
                 "8  the backup is damaged (nothing was written)",
        .run = run_restore,
    },
    {
        .name = "backup delete",
        .usage = "ID [OPTIONS]",
        .summary = "Delete one of the node's backups.",
        .text = "Deletes a backup from the node's backup_dir (DELETE /v1/backups/ID). Needs an\n"
                "admin token.",
        .min_args = 1,
        .max_args = 1,
        .examples = "meshctl backup delete 20261123T230646.512Z-5d3c89",
        .exits = "0  deleted\n"
                 "3  no such backup\n"
                 "4  the token may not administer the node\n"
                 "5  the backup is still being made",
        .run = run_delete,
    },
    {.name = NULL},
};
