/*
 * progress.h - a one-line progress bar for long work (ingest, backup, restore): rows, rows/s
 * (or, for work counted in bytes only, bytes/s), bytes and an ETA from the total size,
 * redrawn at most ten times a second.
 *
 * It draws only when its stream is a terminal and it is enabled (not --quiet); otherwise
 * every call does nothing, so callers never check. Before printing anything else on the same
 * stream, call mesh_progress_clear(); the next update draws the bar again.
 */
#ifndef MESH_CLI_PROGRESS_H
#define MESH_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct mesh_progress mesh_progress_t;

/* A bar on out (usually stderr) for total bytes (-1 when unknown, e.g. stdin). Returns NULL
 * when out of memory; every function accepts NULL. */
mesh_progress_t *mesh_progress_create(FILE *out, bool enabled, int64_t total_bytes);
/* Clears the bar and frees it. */
void mesh_progress_destroy(mesh_progress_t *p);
/* Reports the work done so far (totals, not increments); rows < 0: work counted in bytes
 * only (the rate is in bytes per second). */
void mesh_progress_update(mesh_progress_t *p, int64_t rows, int64_t bytes);
/* Erases the bar from the terminal line. */
void mesh_progress_clear(mesh_progress_t *p);

#endif
