/*
 * util.h - small shared helpers: clocks, time and duration text, strict number parsing,
 * names, hex, checksums and random bytes.
 */
#ifndef MESH_CORE_UTIL_H
#define MESH_CORE_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define MESH_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MESH_NS_PER_SEC   1000000000LL

/* Wall clock and monotonic clock in nanoseconds. */
int64_t mesh_now_ns(void);
int64_t mesh_mono_ns(void);

/* Names the calling thread (what top -H, ps -L and /proc/<pid>/task/<tid>/comm show): at most
 * 15 bytes of "what" and "sub", joined by ':' when sub is given ("repl:plant"). */
void mesh_thread_name(const char *what, const char *sub);

/*
 * Parses an ISO 8601 / RFC 3339 time: "2026-11-23", "2026-11-23T18:45", "2026-11-23T18:45:08",
 * with an optional fraction of up to 9 digits, a 'T' or a space between date and time, and
 * 'Z', "+hh:mm", "-hh:mm" or nothing (UTC). Result in nanoseconds since the Unix epoch;
 * MESH_PARSE when the text is not such a time or is outside 1677..2262.
 */
mesh_status_t mesh_time_parse(const char *s, size_t n, int64_t *out_ns);
/* Formats ns as "2026-11-23T18:45:08.123Z" (fraction trimmed to the digits that matter).
 * out must hold MESH_TIME_MAX bytes; returns the length. */
#define MESH_TIME_MAX 40
size_t mesh_time_format(int64_t ns, char *out);

/* Parses a duration: "500ms", "10s", "5m", "2h", "7d", "1h30m", "250us", "100ns", or a bare
 * number of seconds. MESH_PARSE on anything else or overflow. */
mesh_status_t mesh_duration_parse(const char *s, int64_t *out_ns);

/* Strict parsers over (p, n): the whole text must be the number, no spaces, no overflow. */
mesh_status_t mesh_parse_i64(const char *p, size_t n, int64_t *out);
mesh_status_t mesh_parse_u64(const char *p, size_t n, uint64_t *out);
mesh_status_t mesh_parse_f64(const char *p, size_t n, double *out);
/* "true/false/yes/no/on/off/1/0" (case-insensitive). */
mesh_status_t mesh_parse_bool(const char *p, size_t n, bool *out);

/* Names. A domain: [a-z][a-z0-9_-]{0,62}; a product: [a-z][a-z0-9_]{0,62} without "__";
 * a column: [A-Za-z_][A-Za-z0-9_]{0,62}. */
#define MESH_NAME_MAX 63
bool mesh_name_domain_ok(const char *s);
bool mesh_name_product_ok(const char *s);
bool mesh_name_column_ok(const char *s);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void mesh_hex(const uint8_t *p, size_t n, char *out);
/* Parses exactly 2n hex digits into n bytes; false on anything else. */
bool mesh_unhex(const char *s, uint8_t *out, size_t n);

/* Initialises a condition variable whose timed waits count CLOCK_MONOTONIC (deadlines
 * from mesh_mono_ns-style clocks, unmoved by changes of the wall clock). */
void mesh_cond_init_mono(pthread_cond_t *c);

/* CRC-32C (Castagnoli) of n bytes, continuing from crc (start with 0). With the CPU's
 * instruction where it has one (x86-64 SSE4.2), else mesh_crc32c_portable. */
uint32_t mesh_crc32c(uint32_t crc, const void *p, size_t n);
/* The same by table lookups (slicing by 8), on any CPU. */
uint32_t mesh_crc32c_portable(uint32_t crc, const void *p, size_t n);

/* A 64-bit fingerprint (FNV-1a) of n bytes: tells records apart, not a MAC. Never 0. */
uint64_t mesh_fp64(const void *p, size_t n);

/* Fills p with n bytes from the kernel's CSPRNG. MESH_IO when that fails. */
mesh_status_t mesh_random(void *p, size_t n);

/* Duplicates s (NULL stays NULL; NULL also when malloc fails: callers check). */
char *mesh_strdup(const char *s);
char *mesh_strndup(const char *s, size_t n);
/* Case-insensitive ASCII comparison of a counted string with a C string. */
bool mesh_streqi(const char *p, size_t n, const char *s);

/* Writes the whole buffer to fd, retrying on EINTR and short writes. */
mesh_status_t mesh_write_all(int fd, const void *p, size_t n);
/* Reads a whole file (at most max bytes) into a malloc'd NUL-terminated buffer. */
mesh_status_t mesh_read_file(const char *path, size_t max, char **out, size_t *out_len,
                             mesh_err_t *err);
/* Creates a directory and its parents with the given mode (existing ones are fine). */
mesh_status_t mesh_mkdirs(const char *path, unsigned mode, mesh_err_t *err);
/* fsyncs a directory so a file created or renamed in it is durable. */
mesh_status_t mesh_fsync_dir(const char *path);

/* Removes an SQLite database file and its -wal, -shm and -journal files (errors ignored). */
void mesh_unlink_db(const char *path);
/* Removes a directory tree (symlinks are removed, not followed; errors ignored). */
void mesh_rm_tree(const char *path);

#endif
