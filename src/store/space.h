/*
 * space.h - the free-space guard of a data directory: writes are refused cleanly (507,
 * MESH_NOSPACE) while the file system holding the data has less than a reserve free, before
 * the disk is actually full, and accepted again as soon as space is freed (no restart).
 *
 * The reserve leaves room for what must still be written while writes are refused: SQLite's
 * checkpoints and rollbacks, the audit log of queries, key files. Refusing at the door also
 * means a write is rarely cut half way by ENOSPC; when it is anyway (a reserve of 0, another
 * process filling the disk), the domain writer undoes it (docs/decisions/0018-disk-full.md).
 *
 * The free space is read with statvfs(2) at most every MESH_SPACE_RECHECK_NS while there is
 * plenty of it (each write subtracts its size from the cached figure in between), and at every
 * write once it is close to the reserve, so refusals start and end at the right write.
 * Thread-safe.
 */
#ifndef MESH_STORE_SPACE_H
#define MESH_STORE_SPACE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define MESH_SPACE_RECHECK_NS (500LL * 1000000LL)

typedef struct mesh_space mesh_space_t;

typedef struct mesh_space_stats {
    int64_t free_bytes;  /* available to meshd's user at the last check (-1: unknown) */
    int64_t total_bytes; /* size of the file system (-1: unknown) */
    int64_t min_free;    /* the reserve (0: no check) */
    uint64_t refused;    /* writes refused because free space was under the reserve */
    uint64_t enospc;     /* writes that failed on the disk being full (ENOSPC, SQLITE_FULL) */
} mesh_space_stats_t;

/* A guard for the file system holding dir, keeping min_free bytes free (0: never refuses, but
 * still measures for the metrics). *out is freed with mesh_space_free (which accepts NULL). */
mesh_status_t mesh_space_new(const char *dir, int64_t min_free, mesh_space_t **out,
                             mesh_err_t *err);
void mesh_space_free(mesh_space_t *s);

/* Before a write of about n bytes to domain: MESH_OK, or MESH_NOSPACE with a message naming
 * the domain, the free space and the reserve. s may be NULL (no guard). */
mesh_status_t mesh_space_check(mesh_space_t *s, const char *domain, size_t n, mesh_err_t *err);
/* A write failed on a full disk after it passed the check: counted, and the next check reads
 * the file system again. s may be NULL. */
void mesh_space_note_full(mesh_space_t *s);
/* Current figures (reads the file system when the cached ones are stale). */
void mesh_space_stats(mesh_space_t *s, mesh_space_stats_t *out);

/* "12.3 MiB" (out must hold 32 bytes). */
const char *mesh_space_human(int64_t bytes, char out[32]);

#endif
