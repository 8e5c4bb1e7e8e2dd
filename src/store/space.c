/*
 * space.c - the free-space guard (space.h): a cached statvfs(2) of the data directory.
 */
#include "store/space.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "core/log.h"
#include "core/util.h"

struct mesh_space {
    char *dir;
    int64_t min_free; /* bytes */
    pthread_mutex_t mu;
    /* under mu */
    int64_t checked_ns;  /* monotonic time of the last statvfs (0: never) */
    int64_t free_bytes;  /* at the last statvfs, minus what was written since (-1: unknown) */
    int64_t total_bytes; /* -1: unknown */
    bool refusing;       /* the last check refused: log once when refusals start and end */
    uint64_t refused, enospc;
};

const char *mesh_space_human(int64_t bytes, char out[32])
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    if (bytes < 0) {
        snprintf(out, 32, "unknown");
        return out;
    }
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < MESH_ARRAY_LEN(units)) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(out, 32, "%lld B", (long long)bytes);
    else
        snprintf(out, 32, "%.1f %s", v, units[u]);
    return out;
}

mesh_status_t mesh_space_new(const char *dir, int64_t min_free, mesh_space_t **out, mesh_err_t *err)
{
    mesh_space_t *s = calloc(1, sizeof *s);
    if (s == NULL || (s->dir = strdup(dir)) == NULL) {
        free(s);
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    s->min_free = min_free > 0 ? min_free : 0;
    s->free_bytes = s->total_bytes = -1;
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return MESH_OK;
}

void mesh_space_free(mesh_space_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_destroy(&s->mu);
    free(s->dir);
    free(s);
}

/* With mu held: reads the file system. A failing statvfs leaves the figures unknown (writes
 * are then not refused on a guess: the write itself will say what the disk says). */
static void measure_locked(mesh_space_t *s, int64_t now)
{
    struct statvfs v;
    s->checked_ns = now;
    if (statvfs(s->dir, &v) != 0) {
        s->free_bytes = s->total_bytes = -1;
        return;
    }
    s->free_bytes = (int64_t)v.f_bavail * (int64_t)v.f_frsize;
    s->total_bytes = (int64_t)v.f_blocks * (int64_t)v.f_frsize;
}

mesh_status_t mesh_space_check(mesh_space_t *s, const char *domain, size_t n, mesh_err_t *err)
{
    if (s == NULL)
        return MESH_OK;
    int64_t now = mesh_mono_ns();
    int64_t need = (int64_t)(n > (size_t)INT64_MAX / 4 ? (size_t)INT64_MAX / 4 : n);
    pthread_mutex_lock(&s->mu);
    /* close to the reserve (or stale): ask the file system; otherwise trust the estimate */
    if (s->checked_ns == 0 || now - s->checked_ns >= MESH_SPACE_RECHECK_NS || s->free_bytes < 0 ||
        s->free_bytes - need < 2 * s->min_free + ((int64_t)16 << 20))
        measure_locked(s, now);
    bool refuse = s->min_free > 0 && s->free_bytes >= 0 && s->free_bytes - need < s->min_free;
    int64_t free_now = s->free_bytes;
    if (refuse) {
        s->refused++;
    } else if (s->free_bytes >= 0) {
        s->free_bytes -= need;
    }
    bool changed = refuse != s->refusing;
    s->refusing = refuse;
    pthread_mutex_unlock(&s->mu);
    char fb[32], mb[32];
    if (changed && refuse)
        LOG_WARN("space",
                 "%s has %s free, under min_free_space (%s): writes are refused until "
                 "space is freed",
                 s->dir, mesh_space_human(free_now, fb), mesh_space_human(s->min_free, mb));
    else if (changed)
        LOG_INFO("space", "%s has %s free again: writes are accepted", s->dir,
                 mesh_space_human(free_now, fb));
    if (!refuse)
        return MESH_OK;
    return mesh_err_set(err, MESH_NOSPACE,
                        "domain %s: insufficient storage: %s free on the data disk, under the "
                        "reserve of %s (min_free_space); nothing was written. Writes resume when "
                        "space is freed; queries still work",
                        domain, mesh_space_human(free_now, fb), mesh_space_human(s->min_free, mb));
}

void mesh_space_note_full(mesh_space_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->enospc++;
    s->checked_ns = 0; /* the next check asks the file system */
    pthread_mutex_unlock(&s->mu);
}

void mesh_space_stats(mesh_space_t *s, mesh_space_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->free_bytes = out->total_bytes = -1;
    if (s == NULL)
        return;
    int64_t now = mesh_mono_ns();
    pthread_mutex_lock(&s->mu);
    if (s->checked_ns == 0 || now - s->checked_ns >= MESH_SPACE_RECHECK_NS)
        measure_locked(s, now);
    out->free_bytes = s->free_bytes;
    out->total_bytes = s->total_bytes;
    out->min_free = s->min_free;
    out->refused = s->refused;
    out->enospc = s->enospc;
    pthread_mutex_unlock(&s->mu);
}
