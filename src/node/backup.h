/*
 * backup.h - backups of a node: made online by meshd, verified and restored offline.
 *
 * A backup is one archive file (backup/archive.h) in the node's backup directory, named
 * <id>.mbk. meshd makes it on a thread of its own while writes go on: the catalog, then each
 * domain, each copied from a snapshot taken at a write-group boundary (the domain's writer),
 * into a staging file sealed under a throwaway key, then streamed page by page into the
 * archive (compressed, then sealed under the backup's data key, which is wrapped under the
 * node's KEK). The manifest records the node, the domains with their contract versions and
 * the log position each copy holds, and every file's size and SHA-256. Scheduled backups
 * (backup_schedule) and retention (backup_retention, backup_retention_age) run in meshd.
 *
 * Verify and restore work on a file, without a running node (meshctl): verify reads and
 * checks everything and writes nothing; restore writes a data directory (new, or in place
 * with the node stopped) whose databases are sealed under new data keys wrapped under the
 * target KEK. docs/decisions/0020-backups.md says why.
 */
#ifndef MESH_NODE_BACKUP_H
#define MESH_NODE_BACKUP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "backup/archive.h"
#include "core/status.h"
#include "crypt/keys.h"

struct mesh_node;
typedef struct mesh_backups mesh_backups_t;

/* The backup directory of a node: backup_dir, or DATA_DIR/backups. */
void mesh_backup_dir(const struct mesh_node *n, char *out, size_t cap);

/* Sets up the node's backups (creating the directory, removing what an interrupted backup
 * left). */
mesh_status_t mesh_backups_open(struct mesh_node *n, mesh_backups_t **out, mesh_err_t *err);
/* Waits for a running backup to end. NULL is fine. */
void mesh_backups_close(mesh_backups_t *b);

/* Starts a backup of the given domains (none: every domain; the catalog always) on a thread
 * of its own; by names who asked (for the audit log). MESH_CONFLICT while one runs;
 * MESH_NOT_FOUND for an unknown domain. id (MESH_ARCHIVE_ID_MAX bytes) receives its id. */
mesh_status_t mesh_backup_start(mesh_backups_t *b, const char *const *domains, size_t ndomains,
                                const char *by, char *id, mesh_err_t *err);
/* The state of the running or last backup of this process as JSON (NULL when id is not
 * it): id, state (running, done, failed), bytes_total (an estimate), bytes_done, written,
 * elapsed_ms, domain (being copied), error. */
json_t *mesh_backup_job(mesh_backups_t *b, const char *id);
/* Every backup in the directory, newest first: id, created, bytes, encrypted, kek_id and,
 * when its manifest opens with the node's KEK, node, domains; else "error". */
mesh_status_t mesh_backup_list(mesh_backups_t *b, json_t **out, mesh_err_t *err);
/* One backup's manifest (with file, bytes). MESH_NOT_FOUND when absent. */
mesh_status_t mesh_backup_get(mesh_backups_t *b, const char *id, json_t **out, mesh_err_t *err);
mesh_status_t mesh_backup_delete(mesh_backups_t *b, const char *id, mesh_err_t *err);
/* The path of backup id in the node's directory (whether it exists or not). */
void mesh_backup_path(mesh_backups_t *b, const char *id, char *out, size_t cap);
/* Counters for /metrics. */
typedef struct mesh_backup_stats {
    bool running;
    int64_t last_success_ns; /* end of the last backup that succeeded (0: none yet) */
    int64_t last_bytes;      /* its size */
    int64_t last_ms;         /* its duration */
    uint64_t done, failed;   /* backups ended since start */
} mesh_backup_stats_t;
void mesh_backup_stats(mesh_backups_t *b, mesh_backup_stats_t *out);
/* Called from the node's event loop every second: starts a scheduled backup when due. */
void mesh_backups_tick(mesh_backups_t *b);

/* ---- offline: verify and restore a file ---- */

typedef void (*mesh_backup_progress_fn)(void *arg, uint64_t done, uint64_t total);

/*
 * Loads the KEK that opens archive a from src (as meshd's options; a passphrase is
 * stretched with the scrypt parameters recorded in the archive). An archive in clear needs
 * none (*out NULL). MESH_INVALID when no source is given for an encrypted archive.
 */
mesh_status_t mesh_backup_kek(const mesh_archive_t *a, const mesh_kek_source_t *src,
                              mesh_kek_t **out, mesh_err_t *err);

/* Reads every chunk and entry of path, checking each against the manifest; writes nothing.
 * *out: the manifest with "verified": true. */
mesh_status_t mesh_backup_verify_file(const char *path, const mesh_kek_t *kek,
                                      mesh_backup_progress_fn progress, void *arg, json_t **out,
                                      mesh_err_t *err);

typedef struct mesh_restore_opts {
    const char *archive;          /* the backup file */
    const char *data_dir;         /* the target */
    bool in_place;                /* allow a non-empty target (an existing node's directory) */
    const mesh_kek_t *kek;        /* opens the archive (NULL for one in clear) */
    const mesh_kek_t *target_kek; /* wraps the restored data keys (NULL: kek) */
    mesh_backup_progress_fn progress;
    void *arg;
} mesh_restore_opts_t;

/*
 * Restores a backup into a data directory: first verifies the whole archive, then writes
 * the catalog and each domain's database (sealed under new data keys when the backup was
 * encrypted), each domain with an empty log starting after the position the backup holds.
 * A new target must be absent or empty; in place (in_place) the target's DATA/LOCK must be
 * free (meshd stopped): its catalog and domains are replaced, its audit log, TLS files and
 * backups kept (an encrypted node keeps its node key, so its audit log still opens). A
 * partial backup's catalog lists only the domains it holds. *out: a summary.
 */
mesh_status_t mesh_backup_restore(const mesh_restore_opts_t *o, json_t **out, mesh_err_t *err);

#endif
