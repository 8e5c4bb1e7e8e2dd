/*
 * vfs.h - the encrypting SQLite VFS ("meshcrypt") and the one way meshd opens databases.
 *
 * The VFS wraps the default unix VFS. A database file, its WAL and its rollback journal
 * are sealed page by page with AES-256-GCM under the data key registered for the
 * database's path (mesh_crypt_attach); temporary files are refused (every connection runs
 * with temp_store=MEMORY) and memory mapping is off, so no page reaches the disk in clear.
 *
 * Pages keep SQLite's size; the last MESH_CRYPT_RESERVE bytes of each page, which SQLite is
 * told to leave unused (SQLITE_FCNTL_RESERVE_BYTES), hold the nonce and the tag. What SQLite
 * reads back is exactly what it wrote (the reserved bytes read as zeros, as SQLite writes
 * them), so its own checksums (WAL frames, journal records) hold. The additional data of
 * every seal binds the page to its place: the file's identity (a random id per data key
 * generation), its role (database, WAL, journal) and the page number (plus, in the WAL, the
 * frame's position), so a page moved within or between files fails to open.
 *
 * Database file, page 1: bytes 0-15 hold the file id instead of "SQLite format 3", bytes
 * 16-23 (page size, versions, reserved bytes, payload fractions) stay in clear because the
 * page size must be known to read anything, and are covered by the tag; the rest is sealed.
 * WAL: the 32-byte header and the 24-byte frame headers stay in clear (SQLite's recovery
 * reads them), the page in each frame is sealed. Journal: page images are sealed, record
 * headers and checksums stay in clear.
 *
 * A page that fails authentication is never handed to SQLite: the read fails with
 * SQLITE_IOERR_DATA (meshd reports MESH_CORRUPT with the reason), except while SQLite
 * recovers a WAL, where a frame that does not open is given to SQLite as zeros so that its
 * checksum ends the WAL there (a torn or stale frame, exactly as without encryption).
 */
#ifndef MESH_CRYPT_VFS_H
#define MESH_CRYPT_VFS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "crypt/keys.h"

#define MESH_CRYPT_VFS     "meshcrypt"
#define MESH_CRYPT_RESERVE 28 /* nonce (12) + tag (16) at the end of every page */

struct sqlite3;

/* Registers the VFS (once per process, thread-safe). */
mesh_status_t mesh_crypt_vfs_init(mesh_err_t *err);

/* Says that the database at path (and its -wal and -journal) is sealed with key. Counted:
 * each attach needs one detach. Attaching a path again with another key is refused. */
mesh_status_t mesh_crypt_attach(const char *path, mesh_key_t *key, mesh_err_t *err);
void mesh_crypt_detach(const char *path);
/* Makes the WAL of an attached path strict (the catalog, which has no log to replay what a
 * cut WAL drops): during recovery, a frame that fails authentication but is followed by a
 * commit frame of the same WAL generation that opens is refused as damage
 * (SQLITE_IOERR_DATA), not taken for a torn end. */
void mesh_crypt_set_strict_wal(const char *path);

/* Process-wide switch: when on, mesh_crypt_sqlite_open refuses a path without a key. */
void mesh_crypt_set_required(bool on);
bool mesh_crypt_required(void);

/*
 * Opens a database: through the encrypting VFS when a key is attached for path, otherwise
 * plain (refused when encryption is required). Refuses a file in clear where a key is
 * attached, and an encrypted file where none is, with a message that says so. Sets the
 * reserved bytes for new databases, temp_store=MEMORY and mmap_size=0.
 */
mesh_status_t mesh_crypt_sqlite_open(const char *path, int flags, struct sqlite3 **out,
                                     mesh_err_t *err);

/* What a database file is, from its first bytes. */
typedef enum {
    MESH_DBFILE_ABSENT = 0,
    MESH_DBFILE_EMPTY,     /* shorter than a header (a new database) */
    MESH_DBFILE_PLAIN,     /* a SQLite database in clear */
    MESH_DBFILE_ENCRYPTED, /* sealed by this VFS; file_id filled when not NULL */
    MESH_DBFILE_OTHER,
} mesh_dbfile_t;
mesh_dbfile_t mesh_crypt_probe(const char *path, uint8_t file_id[MESH_FILE_ID_BYTES]);

/* The last authentication failure seen by this thread (a sentence naming the file and the
 * page), or NULL; cleared by mesh_crypt_failure_clear. Used to turn SQLite's "disk I/O
 * error" into a message that says what happened. */
const char *mesh_crypt_failure(void);
void mesh_crypt_failure_clear(void);
/* sqlite3_errmsg(db), or the authentication failure behind it when the last error of db is
 * SQLITE_IOERR_DATA. */
const char *mesh_crypt_errmsg(struct sqlite3 *db);

/*
 * Page files: a database file read or written page by page through the VFS, without SQLite
 * (backups: crypt/ seals and opens the pages, the caller sees them in clear in memory only).
 * Through the encrypting VFS when a key is attached for path, else the plain file. Reading
 * authenticates every page (MESH_CORRUPT naming the page otherwise); writing takes whole
 * pages in order from page 1, whose header gives the page size (and must reserve the
 * cipher's bytes when a key is attached). The file is not locked: use it only on files no
 * connection has open (a staging copy, a database being restored).
 */
typedef struct mesh_crypt_pages mesh_crypt_pages_t;
/* Opens path to read (its page size and page count are set) or to write (created, truncated
 * to zero). */
mesh_status_t mesh_crypt_pages_open(const char *path, bool write, mesh_crypt_pages_t **out,
                                    uint32_t *psz, uint32_t *npages, mesh_err_t *err);
/* Reads page pgno (1-based) into buf (psz bytes), in clear. */
mesh_status_t mesh_crypt_pages_read(mesh_crypt_pages_t *f, uint32_t pgno, uint8_t *buf,
                                    mesh_err_t *err);
/* Writes the next page (page 1 first): n must be the page size (learnt from page 1). */
mesh_status_t mesh_crypt_pages_write(mesh_crypt_pages_t *f, const uint8_t *buf, size_t n,
                                     mesh_err_t *err);
/* Syncs (after writing) and closes; NULL is fine. */
mesh_status_t mesh_crypt_pages_close(mesh_crypt_pages_t *f, mesh_err_t *err);

/* Counters since start (all files): pages sealed and opened, authentication failures. */
typedef struct mesh_crypt_stats {
    uint64_t sealed, opened, failed;
} mesh_crypt_stats_t;
void mesh_crypt_stats(mesh_crypt_stats_t *out);

#endif
