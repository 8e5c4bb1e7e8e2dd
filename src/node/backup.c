/*
 * backup.c - backups of a node (design in backup.h and docs/decisions/0020-backups.md).
 *
 * Online (meshd): one backup at a time runs on a thread of its own. Its files, in the
 * backup directory: .<id>.staging/ (staging copies, each sealed under a throwaway key that
 * only this process holds) and .<id>.mbk.part (the archive being written), renamed to
 * <id>.mbk once complete and synced: a listed backup is always whole. What an interrupted
 * backup left is removed at the next start.
 *
 * Offline (meshctl): verify reads a file; restore verifies it, then writes a data
 * directory through the VFS, page by page, under new data keys.
 */
#include "node/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/registry.h"
#include "core/log.h"
#include "core/util.h"
#include "crypt/vfs.h"
#include "node/node.h"
#include "store/store.h"

#define COPY_STEP_PAGES 256

struct mesh_backups {
    mesh_node_t *node;
    char dir[4096];
    pthread_mutex_t lock; /* guards the job fields below */
    pthread_t thread;
    bool thread_live; /* started and not joined */
    bool running;
    char id[MESH_ARCHIVE_ID_MAX];
    char state[16];
    char domain[MESH_NAME_MAX + 1];
    char error[512];
    char by[96];
    int64_t started_ns, ended_ns;
    int64_t bytes_total, bytes_done, written;
    char **domains; /* asked for (NULL: all) */
    size_t ndomains;
    int64_t next_due_ns;       /* the next scheduled backup (0: none) */
    _Atomic bool stopping;     /* meshd stops: a running backup gives up */
    mesh_backup_stats_t stats; /* under lock */
};

void mesh_backup_dir(const mesh_node_t *n, char *out, size_t cap)
{
    if (n->opts.backup_dir && *n->opts.backup_dir)
        snprintf(out, cap, "%s", n->opts.backup_dir);
    else
        snprintf(out, cap, "%s/backups", n->opts.data_dir);
}

void mesh_backup_path(mesh_backups_t *b, const char *id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s.mbk", b->dir, id);
}

/* Removes staging directories and partial archives an interrupted backup left. */
static void clean_leftovers(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (e->d_name[0] != '.' || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n > 8 && strcmp(e->d_name + n - 8, ".staging") == 0) {
            mesh_rm_tree(p);
            LOG_WARN("backup", "removed %s (left by an interrupted backup)", p);
        } else if (n > 9 && strcmp(e->d_name + n - 9, ".mbk.part") == 0) {
            unlink(p);
            LOG_WARN("backup", "removed %s (left by an interrupted backup)", p);
        }
    }
    if (d)
        closedir(d);
}

mesh_status_t mesh_backups_open(mesh_node_t *n, mesh_backups_t **out, mesh_err_t *err)
{
    mesh_backups_t *b = calloc(1, sizeof *b);
    if (b == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    b->node = n;
    mesh_backup_dir(n, b->dir, sizeof b->dir);
    pthread_mutex_init(&b->lock, NULL);
    mesh_status_t st = mesh_mkdirs(b->dir, 0700, err);
    if (st != MESH_OK) {
        mesh_err_prefix(err, "backup_dir: ");
        pthread_mutex_destroy(&b->lock);
        free(b);
        return st;
    }
    clean_leftovers(b->dir);
    if (n->opts.backup_schedule > 0)
        b->next_due_ns = mesh_now_ns() + n->opts.backup_schedule;
    *out = b;
    return MESH_OK;
}

static void free_domains(mesh_backups_t *b)
{
    for (size_t i = 0; i < b->ndomains; i++)
        free(b->domains[i]);
    free(b->domains);
    b->domains = NULL;
    b->ndomains = 0;
}

void mesh_backups_close(mesh_backups_t *b)
{
    if (b == NULL)
        return;
    atomic_store(&b->stopping, true);
    if (b->thread_live)
        pthread_join(b->thread, NULL);
    free_domains(b);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* ---- making a backup ---- */

typedef struct run {
    mesh_backups_t *b;
    mesh_archive_writer_t *w;
    int64_t base_done; /* bytes_done before the current file */
    int64_t file_est;  /* the current file's estimated bytes */
    uint32_t psz;
} run_t;

static void set_progress(mesh_backups_t *b, int64_t done, int64_t written)
{
    pthread_mutex_lock(&b->lock);
    if (done > b->bytes_done)
        b->bytes_done = done;
    if (written >= 0)
        b->written = written;
    pthread_mutex_unlock(&b->lock);
}

/* Copy progress counts half of a file's share, streaming the other half. */
static void copy_progress(void *arg, int64_t done, int64_t total)
{
    run_t *r = arg;
    if (total <= 0)
        return;
    set_progress(r->b, r->base_done + (int64_t)((double)r->file_est * 0.5 * done / total),
                 (int64_t)mesh_archive_written(r->w));
}

/* Streams the staging file at path into the archive as entry (kind, name). */
static mesh_status_t stream_file(run_t *r, const char *path, char kind, const char *name, char *sha,
                                 int64_t *bytes, mesh_err_t *err)
{
    mesh_crypt_pages_t *f;
    uint32_t psz = 0, npages = 0;
    mesh_status_t st = mesh_crypt_pages_open(path, false, &f, &psz, &npages, err);
    if (st != MESH_OK)
        return st;
    uint8_t *page = malloc(psz);
    if (page == NULL) {
        mesh_crypt_pages_close(f, NULL);
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    uint64_t size = (uint64_t)psz * npages;
    st = mesh_archive_entry_begin(r->w, kind, name, size, err);
    for (uint32_t i = 1; st == MESH_OK && i <= npages; i++) {
        st = mesh_crypt_pages_read(f, i, page, err);
        if (st == MESH_OK)
            st = mesh_archive_entry_write(r->w, page, psz, err);
        if (st == MESH_OK && atomic_load(&r->b->stopping))
            st = mesh_err_set(err, MESH_UNAVAILABLE, "meshd is stopping");
        if (st == MESH_OK && (i % 64 == 0 || i == npages))
            set_progress(r->b,
                         r->base_done + r->file_est / 2 +
                             (int64_t)((double)r->file_est * 0.5 * i / npages),
                         (int64_t)mesh_archive_written(r->w));
    }
    if (st == MESH_OK)
        st = mesh_archive_entry_end(r->w, sha, err);
    mesh_cleanse(page, psz);
    free(page);
    mesh_crypt_pages_close(f, NULL);
    *bytes = (int64_t)size;
    return st;
}

/* A throwaway key for a staging file (encrypted nodes): attached for path. */
static mesh_status_t stage_key(mesh_backups_t *b, const char *path, mesh_err_t *err)
{
    if (b->node->kek == NULL)
        return MESH_OK;
    mesh_key_t *k;
    if (mesh_key_new(0, &k) != MESH_OK)
        return mesh_err_set(err, MESH_IO, "no random bytes for a staging key");
    mesh_status_t st = mesh_crypt_attach(path, k, err);
    mesh_key_unref(k);
    return st;
}

static void stage_drop(mesh_backups_t *b, const char *path)
{
    mesh_unlink_db(path);
    if (b->node->kek)
        mesh_crypt_detach(path);
}

static int64_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

static bool wanted(const mesh_backups_t *b, const char *name)
{
    if (b->ndomains == 0)
        return true;
    for (size_t i = 0; i < b->ndomains; i++)
        if (strcmp(b->domains[i], name) == 0)
            return true;
    return false;
}

static mesh_status_t make_backup(mesh_backups_t *b, json_t *manifest, mesh_err_t *err)
{
    mesh_node_t *n = b->node;
    char part[4200], final[4200], staging[4200], stage[4400], src[4200];
    snprintf(part, sizeof part, "%s/.%s.mbk.part", b->dir, b->id);
    snprintf(staging, sizeof staging, "%s/.%s.staging", b->dir, b->id);
    mesh_backup_path(b, b->id, final, sizeof final);
    mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
    run_t r = {.b = b};
    mesh_status_t st;
    json_t *doms = json_array();
    json_object_set_new(manifest, "domains", doms);
    /* the estimate: databases and WALs */
    snprintf(src, sizeof src, "%s/catalog.db", n->opts.data_dir);
    int64_t total = file_size(src);
    for (size_t i = 0; i < s->ndoms; i++) {
        if (!wanted(b, s->doms[i].meta.name))
            continue;
        mesh_domain_info_t di;
        mesh_domain_info(s->doms[i].dom, &di);
        total += di.db_bytes + di.wal_bytes;
    }
    pthread_mutex_lock(&b->lock);
    b->bytes_total = total;
    pthread_mutex_unlock(&b->lock);
    if ((st = mesh_mkdirs(staging, 0700, err)) != MESH_OK)
        goto out;
    if ((st = mesh_archive_create(part, b->id, b->started_ns, n->kek, 0, &r.w, err)) != MESH_OK)
        goto out;
    /* the catalog: principals, token hashes, roles, grants, policies, the domain list */
    snprintf(stage, sizeof stage, "%s/catalog.db", staging);
    r.file_est = file_size(src);
    if ((st = stage_key(b, stage, err)) != MESH_OK)
        goto out;
    mesh_dbcopy_t *c = NULL;
    st = mesh_dbcopy_open(src, stage, &c, err);
    bool done = false;
    int64_t remaining = 0, pages = 0;
    while (st == MESH_OK && !done) {
        st = mesh_dbcopy_step(c, COPY_STEP_PAGES, &done, &remaining, &pages, err);
        copy_progress(&r, pages - remaining, pages);
    }
    mesh_dbcopy_close(c);
    char sha[65];
    int64_t bytes = 0;
    if (st == MESH_OK)
        st = stream_file(&r, stage, MESH_ARCHIVE_CATALOG, "catalog.db", sha, &bytes, err);
    stage_drop(b, stage);
    if (st != MESH_OK)
        goto out;
    r.base_done += r.file_est;
    json_object_set_new(manifest, "catalog",
                        json_pack("{s:s,s:I}", "file", "catalog.db", "bytes", (json_int_t)bytes));
    for (size_t i = 0; i < s->ndoms; i++) {
        const mesh_snap_domain_t *sd = &s->doms[i];
        if (!wanted(b, sd->meta.name))
            continue;
        if (atomic_load(&b->stopping)) {
            st = mesh_err_set(err, MESH_UNAVAILABLE, "meshd is stopping");
            goto out;
        }
        pthread_mutex_lock(&b->lock);
        snprintf(b->domain, sizeof b->domain, "%s", sd->meta.name);
        pthread_mutex_unlock(&b->lock);
        mesh_domain_info_t di;
        mesh_domain_info(sd->dom, &di);
        r.file_est = di.db_bytes + di.wal_bytes;
        snprintf(stage, sizeof stage, "%s/%s.db", staging, sd->meta.name);
        if ((st = stage_key(b, stage, err)) != MESH_OK)
            goto out;
        uint64_t applied = 0, sseq = 0;
        mesh_cref_t **crefs = NULL;
        size_t ncrefs = 0;
        st = mesh_domain_backup_copy(sd->dom, stage, &applied, &sseq, &crefs, &ncrefs,
                                     copy_progress, &r, err);
        char name[MESH_NAME_MAX + 32];
        snprintf(name, sizeof name, "domains/%s/data.db", sd->meta.name);
        if (st == MESH_OK)
            st = stream_file(&r, stage, MESH_ARCHIVE_DOMAIN, name, sha, &bytes, err);
        stage_drop(b, stage);
        json_t *contracts = json_array();
        size_t nproducts = 0;
        for (size_t k = 0; k < ncrefs; k++) {
            const mesh_contract_t *ct = crefs[k]->c;
            json_t *prods = json_array();
            for (size_t p = 0; p < ct->nproducts; p++)
                json_array_append_new(prods, json_string(ct->products[p].name));
            nproducts += ct->nproducts;
            json_array_append_new(contracts, json_pack("{s:s,s:s,s:o}", "id", ct->id, "version",
                                                       ct->version, "products", prods));
            mesh_cref_put(crefs[k]);
        }
        free(crefs);
        if (st != MESH_OK) {
            json_decref(contracts);
            goto out;
        }
        mesh_domain_keyinfo_t ki;
        mesh_domain_keyinfo(sd->dom, &ki);
        /* a replicated domain's copy also holds a position in its stream: a restored replica
         * resumes its consumer after it (null for a domain that is not replicated) */
        json_t *stream = sseq ? json_pack("{s:s+,s:I}", "name", "MESHD_DOM_", sd->meta.name, "seq",
                                          (json_int_t)sseq)
                              : json_null();
        json_array_append_new(doms,
                              json_pack("{s:s,s:s,s:I,s:I,s:o,s:o,s:I}", "name", sd->meta.name,
                                        "file", name, "applied_seq", (json_int_t)applied, "bytes",
                                        (json_int_t)bytes, "contracts", contracts, "stream", stream,
                                        "products", (json_int_t)nproducts));
        r.base_done += r.file_est;
    }
    char *text = json_dumps(manifest, JSON_COMPACT);
    if (text == NULL) {
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
        goto out;
    }
    st = mesh_archive_finish(r.w, text, strlen(text), err);
    r.w = NULL;
    free(text);
    if (st != MESH_OK)
        goto out;
    set_progress(b, total, file_size(part));
    if (rename(part, final) != 0) {
        st = mesh_err_set(err, MESH_IO, "rename %s: %s", part, strerror(errno));
        goto out;
    }
    mesh_fsync_dir(b->dir);
out:
    mesh_archive_writer_free(r.w);
    if (st != MESH_OK)
        unlink(part);
    mesh_rm_tree(staging);
    mesh_snapshot_put(s);
    return st;
}

typedef struct entry {
    char id[MESH_ARCHIVE_ID_MAX];
    int64_t mtime_ns;
} entry_t;

static int cmp_entry_desc(const void *x, const void *y)
{
    return -strcmp(((const entry_t *)x)->id, ((const entry_t *)y)->id);
}

/* The ids of the backups in dir, newest first (ids sort by time). */
static mesh_status_t list_ids(const char *dir, entry_t **out, size_t *n, mesh_err_t *err)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return mesh_err_set(err, MESH_IO, "open %s: %s", dir, strerror(errno));
    size_t cap = 0;
    entry_t *v = NULL;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || len - 4 >= MESH_ARCHIVE_ID_MAX || strcmp(e->d_name + len - 4, ".mbk") != 0)
            continue;
        char id[MESH_ARCHIVE_ID_MAX];
        snprintf(id, sizeof id, "%.*s", (int)(len - 4), e->d_name);
        if (!mesh_archive_id_ok(id))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            entry_t *nv = realloc(v, cap * sizeof *nv);
            if (nv == NULL) {
                free(v);
                closedir(d);
                return mesh_err_set(err, MESH_NOMEM, "out of memory");
            }
            v = nv;
        }
        char p[4200];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        v[*n].mtime_ns = stat(p, &sb) == 0 ? (int64_t)sb.st_mtime * MESH_NS_PER_SEC : 0;
        memcpy(v[*n].id, id, sizeof id);
        (*n)++;
    }
    closedir(d);
    if (*n > 1)
        qsort(v, *n, sizeof *v, cmp_entry_desc);
    *out = v;
    return MESH_OK;
}

/* Keeps the newest backup_retention backups and none older than backup_retention_age; the
 * newest is always kept. */
static void apply_retention(mesh_backups_t *b)
{
    int64_t keep = b->node->opts.backup_retention, age = b->node->opts.backup_retention_age;
    if (keep <= 0 && age <= 0)
        return;
    entry_t *v;
    size_t n;
    mesh_err_t e;
    if (list_ids(b->dir, &v, &n, &e) != MESH_OK)
        return;
    int64_t now = mesh_now_ns();
    for (size_t i = 1; i < n; i++) {
        bool drop = (keep > 0 && (int64_t)i >= keep) || (age > 0 && now - v[i].mtime_ns > age);
        if (!drop)
            continue;
        char p[4200];
        mesh_backup_path(b, v[i].id, p, sizeof p);
        if (unlink(p) == 0)
            LOG_INFO("backup", "retention: deleted backup %s", v[i].id);
    }
    free(v);
}

static void *backup_thread(void *arg)
{
    mesh_thread_name("backup", NULL);
    mesh_backups_t *b = arg;
    mesh_node_t *n = b->node;
    json_t *manifest = json_object();
    char created[MESH_TIME_MAX];
    mesh_time_format(b->started_ns, created);
    char kek_id[33] = "", label[160];
    if (n->kek)
        mesh_kek_describe(n->kek, kek_id, label, sizeof label);
    json_object_set_new(manifest, "created", json_string(created));
    json_object_set_new(manifest, "created_ns", json_integer((json_int_t)b->started_ns));
    json_object_set_new(manifest, "node",
                        json_pack("{s:s,s:s,s:s}", "id", mesh_catalog_node_id(n->cat), "name",
                                  n->opts.node_name, "site", n->opts.site));
    json_object_set_new(manifest, "meshd_version", json_string(MESH_VERSION));
    json_object_set_new(manifest, "encrypted", json_boolean(n->kek != NULL));
    json_object_set_new(manifest, "cipher", n->kek ? json_string("AES-256-GCM") : json_null());
    json_object_set_new(manifest, "kek_id", n->kek ? json_string(kek_id) : json_null());
    json_object_set_new(manifest, "compression", json_string("zstd"));
    json_object_set_new(manifest, "scope", json_string(b->ndomains ? "domains" : "node"));
    json_object_set_new(manifest, "by", json_string(b->by));
    json_object_set_new(manifest, "mesh", json_null());
    mesh_err_t err;
    mesh_err_clear(&err);
    int64_t t0 = mesh_mono_ns();
    mesh_status_t st = make_backup(b, manifest, &err);
    json_decref(manifest);
    int64_t ms = (mesh_mono_ns() - t0) / 1000000;
    char path[4200];
    mesh_backup_path(b, b->id, path, sizeof path);
    int64_t size = file_size(path);
    pthread_mutex_lock(&b->lock);
    b->running = false;
    b->ended_ns = mesh_now_ns();
    b->domain[0] = '\0';
    snprintf(b->state, sizeof b->state, "%s", st == MESH_OK ? "done" : "failed");
    snprintf(b->error, sizeof b->error, "%s", st == MESH_OK ? "" : err.msg);
    if (st == MESH_OK) {
        b->stats.done++;
        b->stats.last_success_ns = b->ended_ns;
        b->stats.last_bytes = size;
        b->stats.last_ms = ms;
    } else {
        b->stats.failed++;
    }
    pthread_mutex_unlock(&b->lock);
    mesh_buf_t d;
    mesh_buf_init(&d, 4096);
    mesh_buf_printf(&d, "{\"id\":\"%s\",\"by\":", b->id);
    mesh_buf_add_json_str(&d, b->by, strlen(b->by));
    mesh_buf_printf(&d, ",\"bytes\":%lld,\"ms\":%lld", (long long)size, (long long)ms);
    if (st != MESH_OK) {
        mesh_buf_adds(&d, ",\"error\":");
        mesh_buf_add_json_str(&d, err.msg, strlen(err.msg));
    }
    mesh_buf_addc(&d, '}');
    mesh_audit_rec_t rec = {.action = MESH_AUDIT_BACKUP_DONE,
                            .principal = "meshd",
                            .status = mesh_status_http(st),
                            .details = d.data};
    mesh_audit_record(n->audit, &rec);
    mesh_buf_free(&d);
    if (st == MESH_OK) {
        LOG_INFO("backup", "backup %s done: %lld bytes in %lld ms (%s)", b->id, (long long)size,
                 (long long)ms, b->by);
        apply_retention(b);
    } else {
        LOG_ERROR("backup", "backup %s failed: %s", b->id, err.msg);
    }
    return NULL;
}

mesh_status_t mesh_backup_start(mesh_backups_t *b, const char *const *domains, size_t ndomains,
                                const char *by, char *id, mesh_err_t *err)
{
    mesh_snapshot_t *s = mesh_registry_snapshot(b->node->reg);
    for (size_t i = 0; i < ndomains; i++) {
        if (mesh_snapshot_domain(s, domains[i]) == NULL) {
            mesh_snapshot_put(s);
            return mesh_err_set(err, MESH_NOT_FOUND, "no domain '%s'", domains[i]);
        }
    }
    mesh_snapshot_put(s);
    pthread_mutex_lock(&b->lock);
    if (b->running) {
        mesh_status_t st =
            mesh_err_set(err, MESH_CONFLICT, "backup %s is running; try again when it ends", b->id);
        pthread_mutex_unlock(&b->lock);
        return st;
    }
    if (b->thread_live) {
        pthread_join(b->thread, NULL);
        b->thread_live = false;
    }
    free_domains(b);
    if (ndomains) {
        b->domains = calloc(ndomains, sizeof *b->domains);
        for (size_t i = 0; b->domains && i < ndomains; i++)
            if ((b->domains[b->ndomains] = strdup(domains[i])) != NULL)
                b->ndomains++;
        if (b->domains == NULL || b->ndomains != ndomains) {
            free_domains(b);
            pthread_mutex_unlock(&b->lock);
            return mesh_err_set(err, MESH_NOMEM, "out of memory");
        }
    }
    /* the id: the UTC time to the millisecond, then random hex (ids sort by time) */
    b->started_ns = mesh_now_ns();
    time_t t = (time_t)(b->started_ns / MESH_NS_PER_SEC);
    struct tm tm;
    gmtime_r(&t, &tm);
    uint8_t rnd[3];
    char hex[7];
    mesh_random(rnd, sizeof rnd);
    mesh_hex(rnd, sizeof rnd, hex);
    snprintf(b->id, sizeof b->id, "%04d%02d%02dT%02d%02d%02d.%03dZ-%s", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(b->started_ns % MESH_NS_PER_SEC / 1000000), hex);
    snprintf(b->state, sizeof b->state, "running");
    snprintf(b->by, sizeof b->by, "%s", by ? by : "");
    b->error[0] = b->domain[0] = '\0';
    b->bytes_total = b->bytes_done = b->written = 0;
    b->ended_ns = 0;
    b->running = true;
    if (pthread_create(&b->thread, NULL, backup_thread, b) != 0) {
        b->running = false;
        snprintf(b->state, sizeof b->state, "failed");
        pthread_mutex_unlock(&b->lock);
        return mesh_err_set(err, MESH_INTERNAL, "cannot start the backup thread");
    }
    b->thread_live = true;
    snprintf(id, MESH_ARCHIVE_ID_MAX, "%s", b->id);
    pthread_mutex_unlock(&b->lock);
    LOG_INFO("backup", "backup %s started (%s)", id, by ? by : "");
    return MESH_OK;
}

json_t *mesh_backup_job(mesh_backups_t *b, const char *id)
{
    pthread_mutex_lock(&b->lock);
    json_t *j = NULL;
    if (b->id[0] && (id == NULL || strcmp(id, b->id) == 0)) {
        int64_t end = b->running ? mesh_now_ns() : b->ended_ns;
        j = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:s}", "id", b->id, "state", b->state,
                      "bytes_total", (json_int_t)b->bytes_total, "bytes_done",
                      (json_int_t)b->bytes_done, "written", (json_int_t)b->written, "elapsed_ms",
                      (json_int_t)((end - b->started_ns) / 1000000), "by", b->by);
        if (b->domain[0])
            json_object_set_new(j, "domain", json_string(b->domain));
        if (b->error[0])
            json_object_set_new(j, "error", json_string(b->error));
    }
    pthread_mutex_unlock(&b->lock);
    return j;
}

void mesh_backup_stats(mesh_backups_t *b, mesh_backup_stats_t *out)
{
    pthread_mutex_lock(&b->lock);
    *out = b->stats;
    out->running = b->running;
    pthread_mutex_unlock(&b->lock);
}

void mesh_backups_tick(mesh_backups_t *b)
{
    int64_t every = b->node->opts.backup_schedule;
    if (every <= 0 || b->next_due_ns == 0 || mesh_now_ns() < b->next_due_ns)
        return;
    b->next_due_ns = mesh_now_ns() + every;
    char id[MESH_ARCHIVE_ID_MAX];
    mesh_err_t err;
    mesh_status_t st = mesh_backup_start(b, NULL, 0, "schedule", id, &err);
    if (st == MESH_CONFLICT)
        LOG_INFO("backup", "scheduled backup skipped: %s", err.msg);
    else if (st != MESH_OK)
        LOG_WARN("backup", "scheduled backup: %s", err.msg);
}

/* A summary of archive path for listing: header facts, and the manifest's when it opens. */
static json_t *summary(mesh_backups_t *b, const char *id)
{
    char path[4200];
    mesh_backup_path(b, id, path, sizeof path);
    json_t *j = json_pack("{s:s}", "id", id);
    mesh_archive_t *a;
    mesh_err_t err;
    if (mesh_archive_open(path, &a, &err) != MESH_OK) {
        json_object_set_new(j, "error", json_string(err.msg));
        return j;
    }
    const mesh_archive_info_t *in = mesh_archive_info(a);
    char created[MESH_TIME_MAX];
    mesh_time_format(in->created_ns, created);
    json_object_set_new(j, "created", json_string(created));
    json_object_set_new(j, "bytes", json_integer((json_int_t)in->file_bytes));
    json_object_set_new(j, "encrypted", json_boolean(in->encrypted));
    if (in->encrypted)
        json_object_set_new(j, "kek_id", json_string(in->kek_id));
    char *text = NULL;
    size_t n = 0;
    mesh_status_t st = mesh_archive_unlock(a, b->node->kek, &err);
    if (st == MESH_OK)
        st = mesh_archive_manifest(a, &text, &n, &err);
    json_error_t je;
    json_t *m = st == MESH_OK ? json_loadb(text, n, 0, &je) : NULL;
    if (m) {
        json_t *doms = json_array(), *d;
        size_t i;
        json_array_foreach(json_object_get(m, "domains"), i, d)
            json_array_append(doms, json_object_get(d, "name"));
        json_object_set_new(j, "domains", doms);
        json_object_set(j, "node", json_object_get(m, "node"));
        json_object_set(j, "scope", json_object_get(m, "scope"));
        json_object_set(j, "by", json_object_get(m, "by"));
    } else {
        json_object_set_new(j, "error",
                            json_string(st == MESH_OK ? "the manifest is malformed" : err.msg));
    }
    json_decref(m);
    free(text);
    mesh_archive_close(a);
    return j;
}

mesh_status_t mesh_backup_list(mesh_backups_t *b, json_t **out, mesh_err_t *err)
{
    entry_t *v;
    size_t n;
    mesh_status_t st = list_ids(b->dir, &v, &n, err);
    if (st != MESH_OK)
        return st;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, summary(b, v[i].id));
    free(v);
    *out = arr;
    return MESH_OK;
}

mesh_status_t mesh_backup_get(mesh_backups_t *b, const char *id, json_t **out, mesh_err_t *err)
{
    *out = NULL;
    if (!mesh_archive_id_ok(id))
        return mesh_err_set(err, MESH_NOT_FOUND, "no backup '%.60s'", id);
    char path[4200];
    mesh_backup_path(b, id, path, sizeof path);
    mesh_archive_t *a;
    mesh_status_t st = mesh_archive_open(path, &a, err);
    if (st == MESH_NOT_FOUND)
        return mesh_err_set(err, MESH_NOT_FOUND, "no backup '%s'", id);
    if (st != MESH_OK)
        return st;
    char *text = NULL;
    size_t n = 0;
    st = mesh_archive_unlock(a, b->node->kek, err);
    if (st == MESH_OK)
        st = mesh_archive_manifest(a, &text, &n, err);
    uint64_t bytes = mesh_archive_info(a)->file_bytes;
    mesh_archive_close(a);
    if (st != MESH_OK)
        return st;
    json_error_t je;
    json_t *m = json_loadb(text, n, 0, &je);
    free(text);
    if (!json_is_object(m)) {
        json_decref(m);
        return mesh_err_set(err, MESH_CORRUPT, "%s: the manifest is malformed", path);
    }
    json_object_set_new(m, "file", json_string(path));
    json_object_set_new(m, "bytes", json_integer((json_int_t)bytes));
    *out = m;
    return MESH_OK;
}

mesh_status_t mesh_backup_delete(mesh_backups_t *b, const char *id, mesh_err_t *err)
{
    if (!mesh_archive_id_ok(id))
        return mesh_err_set(err, MESH_NOT_FOUND, "no backup '%.60s'", id);
    pthread_mutex_lock(&b->lock);
    bool busy = b->running && strcmp(b->id, id) == 0;
    pthread_mutex_unlock(&b->lock);
    if (busy)
        return mesh_err_set(err, MESH_CONFLICT, "backup %s is still being made", id);
    char path[4200];
    mesh_backup_path(b, id, path, sizeof path);
    if (unlink(path) != 0)
        return mesh_err_set(err, errno == ENOENT ? MESH_NOT_FOUND : MESH_IO, "no backup '%s'%s%s",
                            id, errno == ENOENT ? "" : ": ",
                            errno == ENOENT ? "" : strerror(errno));
    mesh_fsync_dir(b->dir);
    return MESH_OK;
}

/* ---- offline: keys, verify, restore ---- */

mesh_status_t mesh_backup_kek(const mesh_archive_t *a, const mesh_kek_source_t *src,
                              mesh_kek_t **out, mesh_err_t *err)
{
    *out = NULL;
    const mesh_archive_info_t *in = mesh_archive_info(a);
    if (!in->encrypted)
        return MESH_OK;
    bool pass =
        (src->passphrase && *src->passphrase) || (src->passphrase_file && *src->passphrase_file);
    bool other =
        (src->file && *src->file) || (src->value && *src->value) || (src->command && *src->command);
    if (!pass && !other)
        return mesh_err_set(err, MESH_INVALID,
                            "the backup is encrypted under KEK %s: give that key-encryption key "
                            "(--kek-file, MESHD_KEK, --kek-passphrase-file or --kek-command)",
                            in->kek_id);
    if (!pass) {
        bool gen = false, indir = false;
        return mesh_kek_load(src, "/nonexistent", &gen, &indir, out, err);
    }
    if (other)
        return mesh_err_set(err, MESH_INVALID, "give one source of the key-encryption key");
    if (in->kdf.kind != 1)
        return mesh_err_set(err, MESH_FORBIDDEN,
                            "the backup was made under KEK %s, which is not derived from a "
                            "passphrase: give its key file, MESHD_KEK or command",
                            in->kek_id);
    char buf[4096];
    size_t n = 0;
    if (src->passphrase && *src->passphrase) {
        n = strlen(src->passphrase);
        if (n >= sizeof buf)
            return mesh_err_set(err, MESH_INVALID, "the passphrase is too long");
        memcpy(buf, src->passphrase, n);
    } else {
        int fd = open(src->passphrase_file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return mesh_err_set(err, MESH_INVALID, "%s: %s", src->passphrase_file, strerror(errno));
        ssize_t k = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (k < 0)
            return mesh_err_set(err, MESH_IO, "%s: %s", src->passphrase_file, strerror(errno));
        n = strcspn(buf, "\r\n") < (size_t)k ? strcspn(buf, "\r\n") : (size_t)k;
    }
    buf[n] = '\0';
    mesh_status_t st = mesh_kek_from_passphrase(buf, n, &in->kdf, "a passphrase", out, err);
    mesh_cleanse(buf, sizeof buf);
    return st;
}

typedef struct prog {
    mesh_backup_progress_fn fn;
    void *arg;
    uint64_t base, total;
} prog_t;

static void on_read(void *arg, uint64_t bytes)
{
    prog_t *p = arg;
    if (p->fn)
        p->fn(p->arg, p->base + bytes, p->total);
}

mesh_status_t mesh_backup_verify_file(const char *path, const mesh_kek_t *kek,
                                      mesh_backup_progress_fn progress, void *arg, json_t **out,
                                      mesh_err_t *err)
{
    *out = NULL;
    mesh_archive_t *a;
    mesh_status_t st = mesh_archive_open(path, &a, err);
    if (st != MESH_OK)
        return st;
    prog_t p = {.fn = progress, .arg = arg, .total = mesh_archive_info(a)->file_bytes};
    char *text = NULL;
    st = mesh_archive_unlock(a, kek, err);
    if (st == MESH_OK)
        st = mesh_archive_read(a, NULL, NULL, on_read, &p, &text, err);
    uint64_t bytes = mesh_archive_info(a)->file_bytes;
    mesh_archive_close(a);
    if (st != MESH_OK)
        return st;
    json_error_t je;
    json_t *m = json_loads(text, 0, &je);
    free(text);
    if (!json_is_object(m)) {
        json_decref(m);
        return mesh_err_set(err, MESH_CORRUPT, "%s: the manifest is malformed", path);
    }
    json_object_set_new(m, "file", json_string(path));
    json_object_set_new(m, "bytes", json_integer((json_int_t)bytes));
    json_object_set_new(m, "verified", json_true());
    *out = m;
    return MESH_OK;
}

/* Restore: the target of the entry being written. */
typedef struct restore {
    const mesh_restore_opts_t *o;
    const char *root;      /* where files are written (the target, or its staging directory) */
    const mesh_kek_t *kek; /* wraps new data keys (NULL: in clear) */
    mesh_key_t *node_key;  /* seals catalog.db */
    mesh_crypt_pages_t *f;
    char path[4200]; /* the database being written */
    bool attached;
    uint8_t *page;
    size_t fill, psz;
    json_t *domains; /* the manifest's */
    mesh_err_t e;    /* why an entry could not be written */
} restore_t;

static mesh_status_t restore_entry_open(restore_t *r, char kind, const char *name, mesh_err_t *err)
{
    mesh_status_t st;
    mesh_key_t *key = NULL;
    if (kind == MESH_ARCHIVE_CATALOG && strcmp(name, "catalog.db") == 0) {
        snprintf(r->path, sizeof r->path, "%s/catalog.db", r->root);
        key = r->node_key ? mesh_key_ref(r->node_key) : NULL;
    } else if (kind == MESH_ARCHIVE_DOMAIN) {
        char dom[MESH_NAME_MAX + 1];
        size_t n = strlen(name);
        if (n < 17 || strncmp(name, "domains/", 8) != 0 || strcmp(name + n - 8, "/data.db") != 0 ||
            n - 16 > MESH_NAME_MAX)
            return mesh_err_set(err, MESH_CORRUPT, "unexpected file '%s' in the backup", name);
        snprintf(dom, sizeof dom, "%.*s", (int)(n - 16), name + 8);
        if (!mesh_name_domain_ok(dom))
            return mesh_err_set(err, MESH_CORRUPT, "unexpected file '%s' in the backup", name);
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/domains/%s", r->root, dom);
        if ((st = mesh_mkdirs(dir, 0700, err)) != MESH_OK)
            return st;
        snprintf(r->path, sizeof r->path, "%s/data.db", dir);
        if (r->kek) {
            mesh_keyfile_t kf;
            memset(&kf, 0, sizeof kf);
            kf.kind = 'D';
            kf.nkeys = 1;
            kf.keys[0].state = MESH_KEY_CURRENT;
            if (mesh_key_new(0, &key) != MESH_OK)
                return mesh_err_set(err, MESH_IO, "no random bytes for a data key");
            kf.keys[0].key = key;
            memcpy(kf.keys[0].file_id, mesh_key_file_id(key), MESH_FILE_ID_BYTES);
            char kpath[4300], label[96];
            snprintf(kpath, sizeof kpath, "%s/key", dir);
            snprintf(label, sizeof label, "domain:%s", dom);
            const mesh_kek_t *keks[] = {r->kek};
            if ((st = mesh_keyfile_save(kpath, &kf, keks, 1, label, err)) != MESH_OK) {
                mesh_key_unref(key);
                return st;
            }
        }
    } else {
        return mesh_err_set(err, MESH_CORRUPT, "unexpected file '%s' in the backup", name);
    }
    mesh_unlink_db(r->path);
    if (key) {
        st = mesh_crypt_attach(r->path, key, err);
        mesh_key_unref(key);
        if (st != MESH_OK)
            return st;
        r->attached = true;
    }
    r->fill = r->psz = 0;
    return mesh_crypt_pages_open(r->path, true, &r->f, NULL, NULL, err);
}

static mesh_status_t restore_entry_close(restore_t *r, mesh_err_t *err)
{
    mesh_status_t st = mesh_crypt_pages_close(r->f, err);
    r->f = NULL;
    if (r->attached)
        mesh_crypt_detach(r->path);
    r->attached = false;
    return st;
}

static mesh_status_t restore_fn(void *arg, char kind, const char *name, uint64_t size,
                                const uint8_t *p, size_t n, mesh_err_t *err)
{
    restore_t *r = arg;
    mesh_status_t st;
    if (r->f == NULL && (st = restore_entry_open(r, kind, name, err)) != MESH_OK)
        return st;
    if (p == NULL) {
        if (r->fill != 0 || r->psz == 0)
            return mesh_err_set(err, MESH_CORRUPT, "%s: not a whole database", name);
        return restore_entry_close(r, err);
    }
    while (n > 0) {
        size_t want = r->psz ? r->psz : 24;
        size_t k = want - r->fill < n ? want - r->fill : n;
        memcpy(r->page + r->fill, p, k);
        r->fill += k;
        p += k;
        n -= k;
        if (r->psz == 0 && r->fill == 24) {
            uint32_t v = (uint32_t)r->page[16] << 8 | r->page[17];
            r->psz = v == 1 ? 65536 : v;
            if (r->psz < 512 || r->psz > 65536 || (r->psz & (r->psz - 1)) || size % r->psz)
                return mesh_err_set(err, MESH_CORRUPT, "%s: not a database (page size)", name);
            continue;
        }
        if (r->psz && r->fill == r->psz) {
            if ((st = mesh_crypt_pages_write(r->f, r->page, r->psz, err)) != MESH_OK)
                return st;
            r->fill = 0;
        }
    }
    return MESH_OK;
}

static mesh_status_t restore_entry(void *arg, char kind, const char *name, uint64_t size,
                                   const uint8_t *p, size_t n)
{
    restore_t *r = arg;
    return restore_fn(arg, kind, name, size, p, n, &r->e);
}

static bool dir_empty(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return true;
    struct dirent *e;
    bool empty = true;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            empty = false;
    closedir(d);
    return empty;
}

/* Takes DATA/LOCK for the restore's duration: no meshd may run on the target. */
static int lock_target(const char *dir, mesh_err_t *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        mesh_err_set(err, MESH_IO, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        mesh_err_set(err, MESH_CONFLICT,
                     "%s is in use by a running meshd (lock %s held): stop it before restoring "
                     "in place",
                     dir, path);
        return -1;
    }
    return fd;
}

/* The node key of the target: the existing catalog.key in place, else a new one saved in
 * root. */
static mesh_status_t node_key(restore_t *r, mesh_err_t *err)
{
    if (r->kek == NULL)
        return MESH_OK;
    char kpath[4200];
    snprintf(kpath, sizeof kpath, "%s/catalog.key", r->o->data_dir);
    mesh_keyfile_t kf;
    if (r->o->in_place && access(kpath, F_OK) == 0) {
        mesh_status_t st = mesh_keyfile_load(kpath, r->kek, "catalog", &kf, NULL, err);
        if (st != MESH_OK)
            return st;
        r->node_key = mesh_key_ref(kf.keys[0].key);
        mesh_keyfile_clear(&kf);
        return MESH_OK;
    }
    memset(&kf, 0, sizeof kf);
    kf.kind = 'N';
    kf.nkeys = 1;
    kf.keys[0].state = MESH_KEY_CURRENT;
    if (mesh_key_new(0, &kf.keys[0].key) != MESH_OK)
        return mesh_err_set(err, MESH_IO, "no random bytes for a data key");
    memcpy(kf.keys[0].file_id, mesh_key_file_id(kf.keys[0].key), MESH_FILE_ID_BYTES);
    snprintf(kpath, sizeof kpath, "%s/catalog.key", r->root);
    const mesh_kek_t *keks[] = {r->kek};
    mesh_status_t st = mesh_keyfile_save(kpath, &kf, keks, 1, "catalog", err);
    if (st == MESH_OK)
        r->node_key = mesh_key_ref(kf.keys[0].key);
    mesh_keyfile_clear(&kf);
    return st;
}

/* A partial backup's catalog lists every domain of its node: keep those it holds (prune).
 * Every restored catalog is marked as such: it is older than the node's audit log says, and
 * the next start accepts that once (node.c, the catalog witness) and audits it. */
static mesh_status_t prune_catalog(restore_t *r, bool prune, mesh_err_t *err)
{
    char db[4200];
    snprintf(db, sizeof db, "%s/catalog.db", r->root);
    mesh_status_t st = MESH_OK;
    if (r->node_key && (st = mesh_crypt_attach(db, r->node_key, err)) != MESH_OK)
        return st;
    mesh_catalog_t *cat = NULL;
    if ((st = mesh_catalog_open(db, &cat, err)) == MESH_OK) {
        mesh_domain_meta_t *v = NULL;
        size_t n = 0;
        st = mesh_catalog_mark_restored(cat, err);
        if (st == MESH_OK && prune && (st = mesh_catalog_domains(cat, &v, &n, err)) == MESH_OK) {
            for (size_t i = 0; i < n && st == MESH_OK; i++) {
                bool kept = false;
                size_t k;
                json_t *d;
                json_array_foreach(r->domains, k, d)
                {
                    const char *name = json_string_value(json_object_get(d, "name"));
                    kept |= name && strcmp(name, v[i].name) == 0;
                }
                if (!kept)
                    st = mesh_catalog_domain_delete(cat, v[i].name, err);
            }
            for (size_t i = 0; i < n; i++)
                mesh_domain_meta_free(&v[i]);
            free(v);
        }
        mesh_catalog_close(cat);
    }
    if (r->node_key)
        mesh_crypt_detach(db);
    return st;
}

mesh_status_t mesh_backup_restore(const mesh_restore_opts_t *o, json_t **out, mesh_err_t *err)
{
    *out = NULL;
    mesh_status_t st = mesh_crypt_vfs_init(err);
    if (st != MESH_OK)
        return st;
    struct stat sb;
    bool exists = stat(o->data_dir, &sb) == 0;
    if (exists && !S_ISDIR(sb.st_mode))
        return mesh_err_set(err, MESH_INVALID, "%s is not a directory", o->data_dir);
    if (exists && !dir_empty(o->data_dir) && !o->in_place)
        return mesh_err_set(err, MESH_CONFLICT,
                            "%s is not empty: restore into a new directory, or replace this "
                            "node's data with --in-place --force (meshd stopped)",
                            o->data_dir);
    mesh_archive_t *a;
    if ((st = mesh_archive_open(o->archive, &a, err)) != MESH_OK)
        return st;
    if ((st = mesh_archive_unlock(a, o->kek, err)) != MESH_OK) {
        mesh_archive_close(a);
        return st;
    }
    /* 1. the whole archive checks out before anything is written */
    uint64_t total = mesh_archive_info(a)->file_bytes;
    prog_t p = {.fn = o->progress, .arg = o->arg, .total = 2 * total};
    char *text = NULL;
    st = mesh_archive_read(a, NULL, NULL, on_read, &p, &text, err);
    mesh_archive_close(a);
    if (st != MESH_OK)
        return st;
    json_error_t je;
    json_t *m = json_loads(text, 0, &je);
    free(text);
    bool encrypted = json_is_true(json_object_get(m, "encrypted"));
    if (!json_is_object(m))
        return mesh_err_set(err, MESH_CORRUPT, "%s: the manifest is malformed", o->archive);
    /* 2. the target (in place: encrypted the same way as the backup) */
    char ckey[4200];
    snprintf(ckey, sizeof ckey, "%s/catalog.key", o->data_dir);
    if (o->in_place && exists && !dir_empty(o->data_dir) &&
        (access(ckey, F_OK) == 0) != encrypted) {
        json_decref(m);
        return mesh_err_set(err, MESH_INVALID,
                            "the backup is %s but the node in %s is %s: restore into a new "
                            "directory instead",
                            encrypted ? "encrypted" : "in clear", o->data_dir,
                            encrypted ? "in clear" : "encrypted");
    }
    if ((st = mesh_mkdirs(o->data_dir, 0700, err)) != MESH_OK) {
        json_decref(m);
        return st;
    }
    int lock = lock_target(o->data_dir, err);
    if (lock < 0) {
        json_decref(m);
        return MESH_CONFLICT;
    }
    restore_t r = {.o = o, .kek = encrypted ? (o->target_kek ? o->target_kek : o->kek) : NULL};
    mesh_err_clear(&r.e);
    r.domains = json_object_get(m, "domains");
    char staging[4200];
    snprintf(staging, sizeof staging, "%s/.restore-staging", o->data_dir);
    mesh_rm_tree(staging);
    r.root = o->in_place ? staging : o->data_dir;
    r.page = malloc(65536);
    if (encrypted && r.kek == NULL)
        st = mesh_err_set(err, MESH_INVALID, "the backup is encrypted: a KEK is needed");
    if (st == MESH_OK && r.page == NULL)
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
    if (st == MESH_OK && o->in_place)
        st = mesh_mkdirs(staging, 0700, err);
    if (st == MESH_OK)
        st = node_key(&r, err);
    /* 3. the files, from a second read */
    if (st == MESH_OK && (st = mesh_archive_open(o->archive, &a, err)) == MESH_OK) {
        p.base = total;
        st = mesh_archive_unlock(a, o->kek, err);
        if (st == MESH_OK) {
            st = mesh_archive_read(a, restore_entry, &r, on_read, &p, NULL, err);
            if (st != MESH_OK && r.e.msg[0] && err)
                *err = r.e;
        }
        mesh_archive_close(a);
    }
    if (r.f) {
        mesh_crypt_pages_close(r.f, NULL);
        if (r.attached)
            mesh_crypt_detach(r.path);
    }
    if (st == MESH_OK)
        st = prune_catalog(&r,
                           json_string_value(json_object_get(m, "scope")) &&
                               strcmp(json_string_value(json_object_get(m, "scope")), "node") != 0,
                           err);
    /* 4. in place: swap the restored catalog and domains in */
    if (st == MESH_OK && o->in_place) {
        char p1[4300], p2[4300];
        snprintf(p1, sizeof p1, "%s/catalog.db", o->data_dir);
        mesh_unlink_db(p1);
        snprintf(p1, sizeof p1, "%s/domains", o->data_dir);
        mesh_rm_tree(p1);
        snprintf(p2, sizeof p2, "%s/domains", staging);
        if (access(p2, F_OK) == 0 && rename(p2, p1) != 0)
            st = mesh_err_set(err, MESH_IO, "rename %s: %s", p2, strerror(errno));
        snprintf(p1, sizeof p1, "%s/catalog.db", o->data_dir);
        snprintf(p2, sizeof p2, "%s/catalog.db", staging);
        if (st == MESH_OK && rename(p2, p1) != 0)
            st = mesh_err_set(err, MESH_IO, "rename %s: %s", p2, strerror(errno));
        snprintf(p1, sizeof p1, "%s/catalog.key", o->data_dir);
        snprintf(p2, sizeof p2, "%s/catalog.key", staging);
        if (st == MESH_OK && access(p2, F_OK) == 0 && rename(p2, p1) != 0)
            st = mesh_err_set(err, MESH_IO, "rename %s: %s", p2, strerror(errno));
        mesh_rm_tree(staging);
    }
    if (st != MESH_OK && !o->in_place) {
        /* a new directory: nothing half-restored stays */
        char p1[4300];
        snprintf(p1, sizeof p1, "%s/catalog.db", o->data_dir);
        mesh_unlink_db(p1);
        snprintf(p1, sizeof p1, "%s/catalog.key", o->data_dir);
        unlink(p1);
        snprintf(p1, sizeof p1, "%s/domains", o->data_dir);
        mesh_rm_tree(p1);
        snprintf(p1, sizeof p1, "%s/LOCK", o->data_dir);
        unlink(p1); /* so the directory is empty again for another try */
        if (!exists)
            rmdir(o->data_dir);
    }
    if (o->in_place)
        mesh_rm_tree(staging);
    mesh_fsync_dir(o->data_dir);
    if (st == MESH_OK) {
        json_t *doms = json_array(), *d;
        size_t i;
        json_array_foreach(r.domains, i, d) json_array_append_new(
            doms, json_pack("{s:O,s:O}", "name", json_object_get(d, "name"), "applied_seq",
                            json_object_get(d, "applied_seq")));
        *out = json_pack("{s:O,s:s,s:o,s:b,s:b}", "id", json_object_get(m, "id"), "data_dir",
                         o->data_dir, "domains", doms, "encrypted", encrypted, "in_place",
                         o->in_place);
    }
    mesh_key_unref(r.node_key);
    free(r.page);
    json_decref(m);
    close(lock);
    return st;
}
