/*
 * log.h - structured log lines.
 *
 * One line per event: `ts=2026-11-23T18:45:08.123Z level=info comp=http msg="..." k=v ...` in
 * logfmt (or one JSON object per line with --log-format json). The MESH_LOG macro checks the
 * level before formatting anything. Callers never pass secrets or raw payloads: tokens,
 * passwords and row values do not belong in logs.
 */
#ifndef MESH_CORE_LOG_H
#define MESH_CORE_LOG_H

#include <stdio.h>

typedef enum { MESH_LOG_DEBUG = 0, MESH_LOG_INFO, MESH_LOG_WARN, MESH_LOG_ERROR } mesh_log_level_t;

extern int mesh_log_min_level;

/* Parses "debug|info|warn|error"; -1 when unknown. */
int mesh_log_level_parse(const char *s);
/* Sets the output format: 0 logfmt (default), 1 JSON. */
void mesh_log_set_json(int json);
/* Sets the sink (default stderr). Not owned. */
void mesh_log_set_file(FILE *f);
/*
 * Per-component levels: "comp=level[,comp=level...]" (e.g. "http=debug,crypt=warn") over the
 * default level given. mesh_log_min_level becomes the least of them (the macro's quick check)
 * and each line is then checked against its component's level. Returns -1 with the bad part
 * in why when the text does not parse (nothing changed).
 */
int mesh_log_set_levels(int default_level, const char *spec, char *why, size_t cap);
/* Writes to path (appending, created 0640) from now on; reopened by mesh_log_reopen (after a
 * log rotation, on SIGHUP). Returns -1 with errno set when it cannot be opened. */
int mesh_log_open(const char *path);
int mesh_log_reopen(void);
/* Writes one line. `kv` is an optional preformatted " k=v k2=v2" tail (logfmt) that is
 * converted for JSON output; msg is printf-formatted. Thread-safe. */
void mesh_log_write(mesh_log_level_t level, const char *comp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define MESH_LOG(level, comp, ...)                                                                 \
    do {                                                                                           \
        if ((level) >= mesh_log_min_level)                                                         \
            mesh_log_write((level), (comp), __VA_ARGS__);                                          \
    } while (0)

#define LOG_DEBUG(comp, ...) MESH_LOG(MESH_LOG_DEBUG, comp, __VA_ARGS__)
#define LOG_INFO(comp, ...)  MESH_LOG(MESH_LOG_INFO, comp, __VA_ARGS__)
#define LOG_WARN(comp, ...)  MESH_LOG(MESH_LOG_WARN, comp, __VA_ARGS__)
#define LOG_ERROR(comp, ...) MESH_LOG(MESH_LOG_ERROR, comp, __VA_ARGS__)

#endif
