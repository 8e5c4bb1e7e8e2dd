/*
 * archive.h - the backup archive format: files compressed with zstd, sealed in chunks with
 * AES-256-GCM, closed by an authenticated manifest.
 *
 * Layout (little-endian; docs/decisions/0020-backups.md says why):
 *
 *   header   "MESHBAK1" | u16 version 1 | u8 flags (1: encrypted) | u8 0 | u32 chunk_size
 *            | id[40] (text, NUL padded) | i64 created_ns | u32 keyfile_len | u32 0
 *            | keyfile (the backup's data key wrapped under the KEK, label "backup:<id>")
 *            | u32 crc32c of everything before
 *   chunks   u32 len | u8 kind (1: data, 2: final) | 3 zero | nonce[12] | payload[len] | tag[16]
 *   footer   u64 offset of the final chunk | u64 number of chunks | "MESHBEND"
 *
 * The data chunks carry, in order, one zstd stream of entries: "MBE1" | u8 kind | u8 0 |
 * u16 name_len | u64 size | name | size bytes; an entry of kind 'Z' (no name, size 0) ends
 * it. The final chunk carries the manifest, a JSON object to which the writer adds the
 * format, the id and "files": every entry's name, kind, size and SHA-256, in order.
 *
 * Every chunk is sealed under a random data key of the backup (encrypted archives) with a
 * fresh nonce; its additional data is the magic, the SHA-256 of the header (so the id, the
 * key wrap and the sizes), the chunk's index, its kind and its length: a chunk moved,
 * swapped, taken from another backup or cut short fails, and the final chunk (which must be
 * the last, with the footer right after it and nothing more) proves nothing was cut off the
 * end. In an archive written without a KEK (encryption=off) nothing is secret: the tag is
 * the first 16 bytes of SHA-256 over the same additional data and the payload, which
 * detects damage, not a deliberate forgery.
 *
 * Reading is bounded: chunk lengths, entry names, the manifest and the key wrap are checked
 * against the limits below before anything is allocated; zstd's window is capped.
 */
#ifndef MESH_BACKUP_ARCHIVE_H
#define MESH_BACKUP_ARCHIVE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"
#include "crypt/keys.h"

#define MESH_ARCHIVE_ID_MAX        40 /* bytes of the id field: at most 39 characters */
#define MESH_ARCHIVE_CHUNK_DEFAULT (1u << 20)
#define MESH_ARCHIVE_CHUNK_MIN     4096u
#define MESH_ARCHIVE_CHUNK_MAX     (16u << 20)
#define MESH_ARCHIVE_MANIFEST_MAX  (4u << 20)
#define MESH_ARCHIVE_NAME_MAX      255
#define MESH_ARCHIVE_ENTRY_MAX     (1ull << 42) /* bytes of one file (4 TiB) */
#define MESH_ARCHIVE_WINDOW_LOG    24           /* zstd window: 16 MiB at most */

/* Entry kinds. */
#define MESH_ARCHIVE_CATALOG 'C'
#define MESH_ARCHIVE_DOMAIN  'D'

/* Whether id is a valid backup id: 1..39 characters of [A-Za-z0-9._-], not starting with '.'. */
bool mesh_archive_id_ok(const char *id);

/* ---- writing ---- */

typedef struct mesh_archive_writer mesh_archive_writer_t;

/* Creates path (mode 0600, refused when it exists). kek NULL: not encrypted. chunk_size 0:
 * the default. */
mesh_status_t mesh_archive_create(const char *path, const char *id, int64_t created_ns,
                                  const mesh_kek_t *kek, uint32_t chunk_size,
                                  mesh_archive_writer_t **out, mesh_err_t *err);
/* Starts an entry of exactly size bytes. */
mesh_status_t mesh_archive_entry_begin(mesh_archive_writer_t *w, char kind, const char *name,
                                       uint64_t size, mesh_err_t *err);
mesh_status_t mesh_archive_entry_write(mesh_archive_writer_t *w, const void *p, size_t n,
                                       mesh_err_t *err);
/* Ends the entry (all its bytes written); sha256_hex (65 bytes) receives its checksum. */
mesh_status_t mesh_archive_entry_end(mesh_archive_writer_t *w, char *sha256_hex, mesh_err_t *err);
/* Ends the stream, writes the final chunk with manifest (a JSON object text; the writer adds
 * "format", "id", "files", "chunks" and "compressed_bytes") and the footer, syncs and
 * closes. The writer is freed either way. */
mesh_status_t mesh_archive_finish(mesh_archive_writer_t *w, const char *manifest, size_t n,
                                  mesh_err_t *err);
/* Bytes written to the file so far. */
uint64_t mesh_archive_written(const mesh_archive_writer_t *w);
/* Abandons the archive (the caller deletes the file). NULL is fine. */
void mesh_archive_writer_free(mesh_archive_writer_t *w);

/* ---- reading ---- */

typedef struct mesh_archive mesh_archive_t;

typedef struct mesh_archive_info {
    char id[MESH_ARCHIVE_ID_MAX];
    int64_t created_ns;
    bool encrypted;
    char kek_id[2 * MESH_KEK_ID_BYTES + 1]; /* the KEK its data key is wrapped under */
    mesh_kdf_t kdf;                         /* that KEK's passphrase parameters (kind 0: none) */
    uint32_t chunk_size;
    uint64_t file_bytes;
    uint64_t chunks; /* as the footer says (checked while reading) */
} mesh_archive_info_t;

/* Opens an archive from f (owned: closed by mesh_archive_close), reading its header and
 * footer; name is used in messages. MESH_CORRUPT for anything out of shape, with the reason. */
mesh_status_t mesh_archive_open_file(FILE *f, const char *name, mesh_archive_t **out,
                                     mesh_err_t *err);
mesh_status_t mesh_archive_open(const char *path, mesh_archive_t **out, mesh_err_t *err);
const mesh_archive_info_t *mesh_archive_info(const mesh_archive_t *a);
/* Opens the backup's data key with kek (encrypted archives; a no-op otherwise).
 * MESH_FORBIDDEN when kek is not the KEK the archive names, MESH_CORRUPT when the wrap does
 * not authenticate. */
mesh_status_t mesh_archive_unlock(mesh_archive_t *a, const mesh_kek_t *kek, mesh_err_t *err);
/* The manifest from the final chunk (authenticated; read without the rest). *out is malloc'd
 * and NUL-terminated. */
mesh_status_t mesh_archive_manifest(mesh_archive_t *a, char **out, size_t *n, mesh_err_t *err);

/*
 * Reads the whole archive in order, authenticating every chunk, and hands each entry's
 * bytes to fn: (kind, name, size, p, n) for each piece, then once with p NULL when it ends.
 * At the end checks the manifest's "files" against what was read (names, sizes, SHA-256s)
 * and the footer. fn returning an error stops the read with it. progress (may be NULL) gets
 * the bytes of the file read so far. *manifest (may be NULL) receives the manifest text.
 */
typedef mesh_status_t (*mesh_archive_entry_fn)(void *arg, char kind, const char *name,
                                               uint64_t size, const uint8_t *p, size_t n);
typedef void (*mesh_archive_progress_fn)(void *arg, uint64_t bytes);
mesh_status_t mesh_archive_read(mesh_archive_t *a, mesh_archive_entry_fn fn, void *arg,
                                mesh_archive_progress_fn progress, void *parg, char **manifest,
                                mesh_err_t *err);
void mesh_archive_close(mesh_archive_t *a);

/* For the fuzz target: runs the decompressor and the entry parser over a raw zstd stream (what
 * the data chunks carry once opened), without chunks or keys. */
mesh_status_t mesh__archive_parse_stream(const uint8_t *p, size_t n, mesh_err_t *err);

#endif
