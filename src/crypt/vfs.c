/*
 * vfs.c - the encrypting VFS (format in vfs.h).
 *
 * Design: a registry maps a database's full path (as SQLite's unix VFS spells it) to an
 * entry holding its data key; the database, its WAL and its journal find the entry through
 * the database name when they are opened and keep a reference until closed, so a key stays
 * alive while any file sealed with it is open. Each open file owns an AEAD context and a
 * scratch page (allocated at open or when the page size grows), so reading and writing a
 * page allocates nothing. Reads of whole pages decrypt in place in SQLite's buffer; other
 * reads (the 100-byte header at open, WAL recovery reading header and page together) go
 * through the scratch page.
 *
 * Invariants: a page is sealed only when its reserved bytes are zero and, for page 1, the
 * header says MESH_CRYPT_RESERVE reserved bytes, so sealing never overwrites data; no read
 * returns ciphertext or an unauthenticated page.
 */
#include "crypt/vfs.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"

#define RES       MESH_CRYPT_RESERVE
#define WAL_HDR   32
#define FRAME_HDR 24
#define AAD_MAX   48

static const char sqlite_magic[16] = "SQLite format 3";

/* ---- registry ---- */

typedef struct entry {
    struct entry *next;
    char *path;             /* full path of the database */
    int attached;           /* mesh_crypt_attach calls not yet detached */
    int files;              /* open files using the entry */
    mesh_key_t *key;        /* owned reference */
    _Atomic uint32_t psz;   /* page size once known (journals read it) */
    _Atomic int reserve_ok; /* a page 1 with the right reserved bytes was seen */
    _Atomic int strict_wal; /* mesh_crypt_set_strict_wal: damage inside the WAL is refused */
} entry_t;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static entry_t *reg_head;
static sqlite3_vfs *base_vfs;
static sqlite3_vfs crypt_vfs;
static atomic_bool required;
static _Atomic uint64_t n_sealed, n_opened, n_failed;
static _Thread_local char failure[320];

static void entry_put_locked(entry_t *e)
{
    if (e->attached > 0 || e->files > 0)
        return;
    for (entry_t **pp = &reg_head; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    }
    mesh_key_unref(e->key);
    free(e->path);
    free(e);
}

static entry_t *find_locked(const char *path)
{
    for (entry_t *e = reg_head; e; e = e->next)
        if (strcmp(e->path, path) == 0)
            return e;
    return NULL;
}

/* The unix VFS's spelling of path (absolute, resolved), into out (cap bytes). */
static int full_path(const char *path, char *out, int cap)
{
    return base_vfs->xFullPathname(base_vfs, path, cap, out);
}

mesh_status_t mesh_crypt_attach(const char *path, mesh_key_t *key, mesh_err_t *err)
{
    mesh_status_t st = mesh_crypt_vfs_init(err);
    if (st != MESH_OK)
        return st;
    char full[4096];
    if (full_path(path, full, sizeof full) != SQLITE_OK)
        return mesh_err_set(err, MESH_IO, "%s: cannot resolve the path", path);
    pthread_mutex_lock(&reg_lock);
    entry_t *e = find_locked(full);
    if (e) {
        if (e->key != key &&
            memcmp(mesh_key_secret(e->key), mesh_key_secret(key), MESH_KEY_BYTES) != 0) {
            pthread_mutex_unlock(&reg_lock);
            return mesh_err_set(err, MESH_CONFLICT, "%s is already open with another key", path);
        }
        e->attached++;
        pthread_mutex_unlock(&reg_lock);
        return MESH_OK;
    }
    e = calloc(1, sizeof *e);
    if (e == NULL || (e->path = strdup(full)) == NULL) {
        free(e);
        pthread_mutex_unlock(&reg_lock);
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    e->key = mesh_key_ref(key);
    e->attached = 1;
    e->next = reg_head;
    reg_head = e;
    pthread_mutex_unlock(&reg_lock);
    return MESH_OK;
}

void mesh_crypt_detach(const char *path)
{
    if (base_vfs == NULL)
        return;
    char full[4096];
    if (full_path(path, full, sizeof full) != SQLITE_OK)
        return;
    pthread_mutex_lock(&reg_lock);
    entry_t *e = find_locked(full);
    if (e && e->attached > 0) {
        e->attached--;
        entry_put_locked(e);
    }
    pthread_mutex_unlock(&reg_lock);
}

void mesh_crypt_set_strict_wal(const char *path)
{
    if (base_vfs == NULL)
        return;
    char full[4096];
    if (full_path(path, full, sizeof full) != SQLITE_OK)
        return;
    pthread_mutex_lock(&reg_lock);
    entry_t *e = find_locked(full);
    if (e)
        atomic_store(&e->strict_wal, 1);
    pthread_mutex_unlock(&reg_lock);
}

static bool attached(const char *path)
{
    if (base_vfs == NULL)
        return false;
    char full[4096];
    if (full_path(path, full, sizeof full) != SQLITE_OK)
        return false;
    pthread_mutex_lock(&reg_lock);
    entry_t *e = find_locked(full);
    bool yes = e && e->attached > 0;
    pthread_mutex_unlock(&reg_lock);
    return yes;
}

void mesh_crypt_set_required(bool on)
{
    atomic_store(&required, on);
}

bool mesh_crypt_required(void)
{
    return atomic_load(&required);
}

const char *mesh_crypt_failure(void)
{
    return failure[0] ? failure : NULL;
}

void mesh_crypt_failure_clear(void)
{
    failure[0] = '\0';
}

const char *mesh_crypt_errmsg(sqlite3 *db)
{
    if (sqlite3_extended_errcode(db) == SQLITE_IOERR_DATA && failure[0])
        return failure;
    return sqlite3_errmsg(db);
}

void mesh_crypt_stats(mesh_crypt_stats_t *out)
{
    out->sealed = atomic_load_explicit(&n_sealed, memory_order_relaxed);
    out->opened = atomic_load_explicit(&n_opened, memory_order_relaxed);
    out->failed = atomic_load_explicit(&n_failed, memory_order_relaxed);
}

/* ---- files ---- */

enum { K_MAIN = 1, K_WAL, K_JOURNAL };

typedef struct cfile {
    sqlite3_file base;
    sqlite3_file *real; /* the unix file, allocated just after this struct */
    int kind;
    entry_t *e;
    mesh_aead_t *aead;
    const char *name; /* for messages (SQLite keeps the string alive while open) */
    uint32_t psz;     /* page size of this file, 0 until known */
    uint8_t *scratch; /* psz + FRAME_HDR bytes */
    size_t scratch_cap;
    int64_t hdr_off; /* WAL: offset of the last frame header written, -1 none */
    uint8_t hdr[FRAME_HDR];
    bool warned; /* WAL: a recovery stop was logged */
} cfile_t;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static bool psz_ok(uint32_t n)
{
    return n >= 512 && n <= 65536 && (n & (n - 1)) == 0;
}

/* Page size from bytes 16-17 of a database header (1 means 65536). */
static uint32_t header_psz(const uint8_t *h)
{
    uint32_t v = (uint32_t)h[16] << 8 | h[17];
    return v == 1 ? 65536 : v;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static int scratch_for(cfile_t *f, uint32_t psz)
{
    size_t need = (size_t)psz + FRAME_HDR;
    if (f->scratch_cap >= need)
        return SQLITE_OK;
    uint8_t *s = realloc(f->scratch, need);
    if (s == NULL)
        return SQLITE_NOMEM;
    f->scratch = s;
    f->scratch_cap = need;
    return SQLITE_OK;
}

static int set_psz(cfile_t *f, uint32_t psz)
{
    if (!psz_ok(psz))
        return SQLITE_IOERR_DATA;
    if (f->psz && f->psz != psz)
        return SQLITE_IOERR_DATA;
    int rc = scratch_for(f, psz);
    if (rc == SQLITE_OK) {
        f->psz = psz;
        if (f->kind == K_MAIN)
            atomic_store(&f->e->psz, psz);
    }
    return rc;
}

static int fail(cfile_t *f, const char *what, uint32_t pgno)
{
    atomic_fetch_add_explicit(&n_failed, 1, memory_order_relaxed);
    snprintf(failure, sizeof failure,
             "%s: %s %u fails authentication (the file was damaged or altered, a page was "
             "moved, or it was sealed with another key)",
             f->name, what, pgno);
    LOG_ERROR("crypt", "%s", failure);
    return SQLITE_IOERR_DATA;
}

static int refuse_write(cfile_t *f, const char *why, uint32_t pgno)
{
    snprintf(failure, sizeof failure, "%s: refusing to write page %u: %s", f->name, pgno, why);
    LOG_ERROR("crypt", "%s", failure);
    return SQLITE_IOERR_WRITE;
}

/* Additional data of a page: file id, role, page number, and per role extras. */
static size_t page_aad(cfile_t *f, uint8_t role, uint32_t pgno, const uint8_t *extra, size_t nextra,
                       uint8_t out[AAD_MAX])
{
    memcpy(out, mesh_key_file_id(f->e->key), MESH_FILE_ID_BYTES);
    out[16] = role;
    put_be32(out + 17, pgno);
    if (nextra > 0)
        memcpy(out + 21, extra, nextra);
    return 21 + nextra;
}

/*
 * Seals one page of psz bytes from src into dst (different buffers). start: the first byte
 * sealed (24 for page 1 of a database, whose first bytes are handled by the caller).
 */
static int seal(cfile_t *f, uint8_t role, uint32_t pgno, const uint8_t *extra, size_t nextra,
                size_t start, const uint8_t *src, uint8_t *dst)
{
    uint32_t psz = f->psz;
    if (!all_zero(src + psz - RES, RES))
        return refuse_write(f,
                            "its reserved bytes are in use (the database was not created "
                            "with room for the cipher)",
                            pgno);
    uint8_t aad[AAD_MAX];
    size_t naad = page_aad(f, role, pgno, extra, nextra, aad);
    uint8_t *nonce = dst + psz - RES, *tag = dst + psz - MESH_AEAD_TAG_BYTES;
    mesh_key_nonce(f->e->key, nonce);
    if (!mesh_aead_seal(f->aead, nonce, aad, naad, src + start, psz - RES - start, dst + start,
                        tag))
        return SQLITE_IOERR_WRITE;
    atomic_fetch_add_explicit(&n_sealed, 1, memory_order_relaxed);
    return SQLITE_OK;
}

/* Opens one page in place; false when it fails authentication. */
static bool unseal(cfile_t *f, uint8_t role, uint32_t pgno, const uint8_t *extra, size_t nextra,
                   size_t start, uint8_t *pg)
{
    uint32_t psz = f->psz;
    uint8_t aad[AAD_MAX];
    size_t naad = page_aad(f, role, pgno, extra, nextra, aad);
    uint8_t nonce[MESH_AEAD_NONCE_BYTES], tag[MESH_AEAD_TAG_BYTES];
    memcpy(nonce, pg + psz - RES, sizeof nonce);
    memcpy(tag, pg + psz - MESH_AEAD_TAG_BYTES, sizeof tag);
    if (!mesh_aead_open(f->aead, nonce, aad, naad, pg + start, psz - RES - start, pg + start, tag))
        return false;
    memset(pg + psz - RES, 0, RES);
    atomic_fetch_add_explicit(&n_opened, 1, memory_order_relaxed);
    return true;
}

/* ---- the database file ---- */

/* Learns the page size from the header in clear; 0 with SQLITE_OK for an empty file. */
static int main_psz(cfile_t *f)
{
    if (f->psz)
        return SQLITE_OK;
    uint8_t h[24];
    int rc = f->real->pMethods->xRead(f->real, h, sizeof h, 0);
    if (rc == SQLITE_IOERR_SHORT_READ)
        return SQLITE_OK; /* a new database */
    if (rc != SQLITE_OK)
        return rc;
    if (memcmp(h, sqlite_magic, 16) == 0) {
        snprintf(failure, sizeof failure, "%s is a SQLite database in clear, not encrypted",
                 f->name);
        LOG_ERROR("crypt", "%s", failure);
        return SQLITE_IOERR_DATA;
    }
    if (h[20] != RES)
        return fail(f, "header of page", 1);
    return set_psz(f, header_psz(h));
}

/* Opens page pgno held raw in pg (psz bytes); false when it fails. */
static bool main_unseal(cfile_t *f, uint32_t pgno, uint8_t *pg)
{
    if (pgno != 1)
        return unseal(f, 'D', pgno, NULL, 0, 0, pg);
    if (memcmp(pg, mesh_key_file_id(f->e->key), MESH_FILE_ID_BYTES) != 0)
        return false; /* another file's page 1, or another key's file */
    uint8_t hdr[8];
    memcpy(hdr, pg + 16, 8);
    if (!unseal(f, 'D', 1, hdr, 8, 24, pg))
        return false;
    memcpy(pg, sqlite_magic, 16);
    atomic_store(&f->e->reserve_ok, 1);
    return true;
}

/* Reads page pgno into pg (psz bytes). SQLITE_IOERR_SHORT_READ (zeros) past the end. */
static int main_read_page(cfile_t *f, uint32_t pgno, uint8_t *pg)
{
    uint32_t psz = f->psz;
    int rc = f->real->pMethods->xRead(f->real, pg, (int)psz, (sqlite3_int64)(pgno - 1) * psz);
    if (rc == SQLITE_IOERR_SHORT_READ) {
        if (all_zero(pg, psz))
            return rc; /* past the end of the file */
        memset(pg, 0, psz);
        return fail(f, "page (torn, short)", pgno);
    }
    if (rc != SQLITE_OK)
        return rc;
    if (main_unseal(f, pgno, pg))
        return SQLITE_OK;
    /* the pending-byte page at 1 GiB is never written: a hole that reads as zeros */
    if (pgno == (uint32_t)(0x40000000u / psz) + 1 && all_zero(pg, psz))
        return SQLITE_OK;
    memset(pg, 0, psz);
    return fail(f, "page", pgno);
}

static int main_read(cfile_t *f, uint8_t *buf, int amt, sqlite3_int64 off)
{
    int rc = main_psz(f);
    if (rc != SQLITE_OK)
        return rc;
    uint32_t psz = f->psz;
    if (psz == 0) {
        /* an empty (or header-less) file: only reads past its end make sense */
        rc = f->real->pMethods->xRead(f->real, buf, amt, off);
        if (rc == SQLITE_OK) {
            memset(buf, 0, (size_t)amt);
            return fail(f, "header of page", 1);
        }
        if (rc == SQLITE_IOERR_SHORT_READ)
            memset(buf, 0, (size_t)amt);
        return rc;
    }
    if ((uint32_t)amt == psz && off % psz == 0)
        return main_read_page(f, (uint32_t)(off / psz) + 1, buf);
    bool short_read = false;
    sqlite3_int64 end = off + amt;
    for (sqlite3_int64 p = off / psz; p * psz < end; p++) {
        rc = main_read_page(f, (uint32_t)p + 1, f->scratch);
        if (rc == SQLITE_IOERR_SHORT_READ)
            short_read = true;
        else if (rc != SQLITE_OK)
            return rc;
        sqlite3_int64 a = p * psz > off ? p * psz : off;
        sqlite3_int64 b = (p + 1) * psz < end ? (p + 1) * psz : end;
        memcpy(buf + (a - off), f->scratch + (a - p * psz), (size_t)(b - a));
    }
    return short_read ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
}

static int main_write(cfile_t *f, const uint8_t *buf, int amt, sqlite3_int64 off)
{
    int rc = main_psz(f);
    if (rc != SQLITE_OK)
        return rc;
    if (f->psz == 0) {
        /* a new database: its first write is page 1, whose header gives the page size */
        if (off != 0 || amt < 24 || header_psz(buf) != (uint32_t)amt)
            return refuse_write(f, "the first page written is not a database header", 1);
        if ((rc = set_psz(f, (uint32_t)amt)) != SQLITE_OK)
            return rc;
    }
    uint32_t psz = f->psz;
    if (amt % psz != 0 || off % psz != 0)
        return refuse_write(f, "not a whole page", (uint32_t)(off / psz) + 1);
    for (int done = 0; done < amt; done += (int)psz) {
        const uint8_t *src = buf + done;
        uint32_t pgno = (uint32_t)((off + done) / psz) + 1;
        uint8_t *dst = f->scratch;
        if (pgno == 1) {
            if (memcmp(src, sqlite_magic, 16) != 0 || header_psz(src) != psz || src[20] != RES)
                return refuse_write(f, "its header lacks the reserved bytes of the cipher", 1);
            memcpy(dst, mesh_key_file_id(f->e->key), MESH_FILE_ID_BYTES);
            memcpy(dst + 16, src + 16, 8);
            rc = seal(f, 'D', 1, src + 16, 8, 24, src, dst);
            if (rc == SQLITE_OK)
                atomic_store(&f->e->reserve_ok, 1);
        } else {
            if (!atomic_load(&f->e->reserve_ok))
                return refuse_write(f, "the database header has not been checked yet", pgno);
            rc = seal(f, 'D', pgno, NULL, 0, 0, src, dst);
        }
        if (rc != SQLITE_OK)
            return rc;
        rc = f->real->pMethods->xWrite(f->real, dst, (int)psz, off + done);
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

/* ---- the WAL ---- */

static int wal_psz(cfile_t *f)
{
    if (f->psz)
        return SQLITE_OK;
    uint8_t h[WAL_HDR];
    int rc = f->real->pMethods->xRead(f->real, h, sizeof h, 0);
    if (rc == SQLITE_IOERR_SHORT_READ)
        return SQLITE_OK;
    if (rc != SQLITE_OK)
        return rc;
    uint32_t psz = be32(h + 8);
    return psz_ok(psz) ? set_psz(f, psz) : SQLITE_OK; /* not a valid WAL: SQLite ignores it */
}

/* Extra bound into a frame's page: its position in the WAL. Not the salts of the frame
 * header: while a transaction has rewritten a frame in place, SQLite writes later frame
 * headers with salts and checksums zeroed and fixes them at commit (walEncodeFrame with
 * iReCksum set), so they change after the page was sealed. A frame of an older WAL generation
 * (other salts) is refused by SQLite's own salt check and checksum chain. */
static size_t frame_extra(const uint8_t *fh, uint32_t frame, uint8_t out[12])
{
    (void)fh;
    put_be32(out, frame);
    return 4;
}

/* The header of the frame whose page starts at poff: the one just written, or from disk. */
static int frame_header(cfile_t *f, sqlite3_int64 poff, uint8_t out[FRAME_HDR])
{
    if (f->hdr_off == poff - FRAME_HDR) {
        memcpy(out, f->hdr, FRAME_HDR);
        return SQLITE_OK;
    }
    return f->real->pMethods->xRead(f->real, out, FRAME_HDR, poff - FRAME_HDR);
}

static int wal_write(cfile_t *f, const uint8_t *buf, int amt, sqlite3_int64 off)
{
    if (off < WAL_HDR) {
        if (off != 0 || amt != WAL_HDR)
            return refuse_write(f, "a partial WAL header", 0);
        int rc = set_psz(f, be32(buf + 8));
        if (rc != SQLITE_OK)
            return rc;
        f->hdr_off = -1;
        return f->real->pMethods->xWrite(f->real, buf, amt, off);
    }
    int rc = wal_psz(f);
    if (rc != SQLITE_OK)
        return rc;
    uint32_t psz = f->psz;
    if (psz == 0)
        return refuse_write(f, "a frame before the WAL header", 0);
    sqlite3_int64 fsz = (sqlite3_int64)psz + FRAME_HDR;
    sqlite3_int64 r = (off - WAL_HDR) % fsz;
    uint32_t frame = (uint32_t)((off - WAL_HDR) / fsz);
    if (r == 0 && amt == FRAME_HDR) {
        memcpy(f->hdr, buf, FRAME_HDR);
        f->hdr_off = off;
        return f->real->pMethods->xWrite(f->real, buf, amt, off);
    }
    const uint8_t *page = buf;
    sqlite3_int64 poff = off;
    uint8_t fh[FRAME_HDR];
    if (r == 0 && amt == (int)fsz) { /* a whole frame at once */
        memcpy(fh, buf, FRAME_HDR);
        if ((rc = f->real->pMethods->xWrite(f->real, buf, FRAME_HDR, off)) != SQLITE_OK)
            return rc;
        page = buf + FRAME_HDR;
        poff = off + FRAME_HDR;
    } else if (r == FRAME_HDR && amt == (int)psz) {
        if ((rc = frame_header(f, poff, fh)) != SQLITE_OK)
            return rc;
    } else {
        return refuse_write(f, "a partial WAL frame", frame + 1);
    }
    uint32_t pgno = be32(fh);
    if (pgno == 1) {
        if (page[20] != RES)
            return refuse_write(f, "its header lacks the reserved bytes of the cipher", 1);
        atomic_store(&f->e->reserve_ok, 1);
    } else if (!atomic_load(&f->e->reserve_ok)) {
        return refuse_write(f, "the database header has not been checked yet", pgno);
    }
    uint8_t extra[12];
    size_t nextra = frame_extra(fh, frame, extra);
    if ((rc = seal(f, 'W', pgno, extra, nextra, 0, page, f->scratch)) != SQLITE_OK)
        return rc;
    return f->real->pMethods->xWrite(f->real, f->scratch, (int)psz, poff);
}

/*
 * Strict WAL: after frame k failed to open during recovery, is there a commit frame of the
 * same WAL generation (the header's salts) that opens? Then frame k is damage inside the
 * committed log, not its torn end: ending the WAL there would silently drop committed
 * transactions. Uses f->scratch (not in use on the recovery path). Bounded by the file size.
 */
static bool later_commit(cfile_t *f, sqlite3_int64 k, uint32_t *commit_frame)
{
    uint8_t wh[WAL_HDR];
    sqlite3_int64 size = 0;
    if (f->real->pMethods->xRead(f->real, wh, WAL_HDR, 0) != SQLITE_OK ||
        f->real->pMethods->xFileSize(f->real, &size) != SQLITE_OK)
        return false;
    uint32_t psz = f->psz;
    sqlite3_int64 fsz = (sqlite3_int64)psz + FRAME_HDR;
    for (sqlite3_int64 j = k + 1; WAL_HDR + (j + 1) * fsz <= size; j++) {
        if (f->real->pMethods->xRead(f->real, f->scratch, (int)fsz, WAL_HDR + j * fsz) != SQLITE_OK)
            return false;
        if (memcmp(f->scratch + 8, wh + 16, 8) != 0)
            return false; /* an older generation: the current one ended before */
        if (be32(f->scratch + 4) == 0)
            continue; /* not a commit frame */
        uint8_t extra[12];
        size_t nextra = frame_extra(f->scratch, (uint32_t)j, extra);
        if (unseal(f, 'W', be32(f->scratch), extra, nextra, 0, f->scratch + FRAME_HDR)) {
            *commit_frame = (uint32_t)j + 1;
            return true;
        }
    }
    return false;
}

static int wal_read(cfile_t *f, uint8_t *buf, int amt, sqlite3_int64 off)
{
    int rc = wal_psz(f);
    if (rc != SQLITE_OK)
        return rc;
    rc = f->real->pMethods->xRead(f->real, buf, amt, off);
    if (rc == SQLITE_IOERR_SHORT_READ) {
        memset(buf, 0, (size_t)amt); /* never hand out a partial ciphertext */
        return rc;
    }
    if (rc != SQLITE_OK || f->psz == 0)
        return rc;
    uint32_t psz = f->psz;
    sqlite3_int64 fsz = (sqlite3_int64)psz + FRAME_HDR, end = off + amt;
    sqlite3_int64 first = off > WAL_HDR ? (off - WAL_HDR) / fsz : 0;
    for (sqlite3_int64 k = first;; k++) {
        sqlite3_int64 hoff = WAL_HDR + k * fsz, poff = hoff + FRAME_HDR;
        if (hoff >= end)
            break;
        if (poff + psz <= off)
            continue; /* only the header of this frame is in the range */
        if (poff >= end)
            break;
        uint8_t fh[FRAME_HDR];
        bool whole = hoff >= off && poff + psz <= end; /* header and page in the buffer */
        uint8_t *pg;
        if (whole) {
            memcpy(fh, buf + (hoff - off), FRAME_HDR);
            pg = buf + (poff - off);
        } else if (poff >= off && poff + psz <= end) {
            if ((rc = frame_header(f, poff, fh)) != SQLITE_OK)
                return rc;
            pg = buf + (poff - off);
        } else {
            rc = f->real->pMethods->xRead(f->real, f->scratch, (int)fsz, hoff);
            if (rc != SQLITE_OK) {
                memset(buf, 0, (size_t)amt);
                return rc == SQLITE_IOERR_SHORT_READ ? SQLITE_IOERR_DATA : rc;
            }
            memcpy(fh, f->scratch, FRAME_HDR);
            pg = f->scratch + FRAME_HDR;
        }
        uint32_t pgno = be32(fh);
        uint8_t extra[12];
        size_t nextra = frame_extra(fh, (uint32_t)k, extra);
        bool ok = unseal(f, 'W', pgno, extra, nextra, 0, pg);
        uint32_t later = 0;
        if (!ok && whole && atomic_load(&f->e->strict_wal) && later_commit(f, k, &later)) {
            memset(buf, 0, (size_t)amt);
            atomic_fetch_add_explicit(&n_failed, 1, memory_order_relaxed);
            snprintf(failure, sizeof failure,
                     "%s: WAL frame %lld (page %u) fails authentication but committed frame %u "
                     "after it opens: the WAL was damaged or altered inside, not cut by a crash",
                     f->name, (long long)k + 1, pgno, later);
            LOG_ERROR("crypt", "%s", failure);
            return SQLITE_IOERR_DATA;
        }
        if (!ok && whole) {
            /* WAL recovery reads header and page together: a frame that does not open is a
             * torn or stale one; zeros make SQLite's checksum end the WAL here (strict WALs:
             * only when no committed frame of this generation follows) */
            memset(pg, 0, psz);
            if (!f->warned)
                LOG_INFO("crypt", "%s: frame %lld does not open; the WAL ends before it", f->name,
                         (long long)k + 1);
            f->warned = true;
            continue;
        }
        if (!ok) {
            memset(buf, 0, (size_t)amt);
            return fail(f, "WAL frame of page", pgno);
        }
        if (pgno == 1)
            atomic_store(&f->e->reserve_ok, 1);
        if (pg == f->scratch + FRAME_HDR) {
            sqlite3_int64 a = poff > off ? poff : off, b = poff + psz < end ? poff + psz : end;
            memcpy(buf + (a - off), pg + (a - poff), (size_t)(b - a));
        }
    }
    return SQLITE_OK;
}

/* ---- the rollback journal ---- */

/* Page size for the journal: the database's, else the journal header's (bytes 24-27). */
static int journal_psz(cfile_t *f)
{
    if (f->psz)
        return SQLITE_OK;
    uint32_t psz = atomic_load(&f->e->psz);
    if (psz == 0) {
        uint8_t h[28];
        int rc = f->real->pMethods->xRead(f->real, h, sizeof h, 0);
        if (rc == SQLITE_IOERR_SHORT_READ)
            return SQLITE_OK;
        if (rc != SQLITE_OK)
            return rc;
        psz = be32(h + 24);
    }
    return psz_ok(psz) ? set_psz(f, psz) : SQLITE_OK;
}

/* A page image in a journal record: 4 bytes of page number, the page, 4 bytes of checksum;
 * records follow sector-aligned headers, so images start at offsets = 4 (mod 8). */
static bool journal_image(cfile_t *f, int amt, sqlite3_int64 off)
{
    return f->psz && (uint32_t)amt == f->psz && off % 8 == 4;
}

static int journal_write(cfile_t *f, const uint8_t *buf, int amt, sqlite3_int64 off)
{
    int rc = journal_psz(f);
    if (rc != SQLITE_OK)
        return rc;
    if (!journal_image(f, amt, off))
        return f->real->pMethods->xWrite(f->real, buf, amt, off);
    uint8_t pn[4];
    if ((rc = f->real->pMethods->xRead(f->real, pn, 4, off - 4)) != SQLITE_OK)
        return rc;
    uint32_t pgno = be32(pn);
    if (!atomic_load(&f->e->reserve_ok))
        return refuse_write(f, "the database header has not been checked yet", pgno);
    if ((rc = seal(f, 'J', pgno, NULL, 0, 0, buf, f->scratch)) != SQLITE_OK)
        return rc;
    return f->real->pMethods->xWrite(f->real, f->scratch, amt, off);
}

static int journal_read(cfile_t *f, uint8_t *buf, int amt, sqlite3_int64 off)
{
    int rc = journal_psz(f);
    if (rc != SQLITE_OK)
        return rc;
    rc = f->real->pMethods->xRead(f->real, buf, amt, off);
    if (rc != SQLITE_OK || !journal_image(f, amt, off))
        return rc;
    uint8_t pn[4];
    if ((rc = f->real->pMethods->xRead(f->real, pn, 4, off - 4)) != SQLITE_OK)
        return rc;
    uint32_t pgno = be32(pn);
    if (!unseal(f, 'J', pgno, NULL, 0, 0, buf)) {
        memset(buf, 0, (size_t)amt);
        return fail(f, "journal image of page", pgno);
    }
    return SQLITE_OK;
}

/* ---- io methods ---- */

static int x_close(sqlite3_file *file)
{
    cfile_t *f = (cfile_t *)file;
    int rc = f->real->pMethods ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
    mesh_aead_free(f->aead);
    if (f->scratch) {
        mesh_cleanse(f->scratch, f->scratch_cap);
        free(f->scratch);
    }
    pthread_mutex_lock(&reg_lock);
    f->e->files--;
    entry_put_locked(f->e);
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

static int x_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off)
{
    cfile_t *f = (cfile_t *)file;
    switch (f->kind) {
    case K_MAIN:
        return main_read(f, buf, amt, off);
    case K_WAL:
        return wal_read(f, buf, amt, off);
    default:
        return journal_read(f, buf, amt, off);
    }
}

static int x_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off)
{
    cfile_t *f = (cfile_t *)file;
    switch (f->kind) {
    case K_MAIN:
        return main_write(f, buf, amt, off);
    case K_WAL:
        return wal_write(f, buf, amt, off);
    default:
        return journal_write(f, buf, amt, off);
    }
}

static int x_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    cfile_t *f = (cfile_t *)file;
    return f->real->pMethods->xTruncate(f->real, size);
}

static int x_sync(sqlite3_file *file, int flags)
{
    cfile_t *f = (cfile_t *)file;
    return f->real->pMethods->xSync(f->real, flags);
}

static int x_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    cfile_t *f = (cfile_t *)file;
    return f->real->pMethods->xFileSize(f->real, size);
}

static int x_lock(sqlite3_file *file, int level)
{
    cfile_t *f = (cfile_t *)file;
    return f->real->pMethods->xLock(f->real, level);
}

static int x_unlock(sqlite3_file *file, int level)
{
    cfile_t *f = (cfile_t *)file;
    return f->real->pMethods->xUnlock(f->real, level);
}

static int x_check_reserved(sqlite3_file *file, int *out)
{
    cfile_t *f = (cfile_t *)file;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int x_file_control(sqlite3_file *file, int op, void *arg)
{
    cfile_t *f = (cfile_t *)file;
    if (op == SQLITE_FCNTL_MMAP_SIZE) {
        /* never map the file: SQLite would read ciphertext */
        *(sqlite3_int64 *)arg = 0;
        return SQLITE_OK;
    }
    if (op == SQLITE_FCNTL_VFSNAME) {
        *(char **)arg = sqlite3_mprintf("%s/%s", MESH_CRYPT_VFS, base_vfs->zName);
        return SQLITE_OK;
    }
    return f->real->pMethods->xFileControl(f->real, op, arg);
}

static int x_sector_size(sqlite3_file *file)
{
    cfile_t *f = (cfile_t *)file;
    return f->real->pMethods->xSectorSize(f->real);
}

static int x_device_characteristics(sqlite3_file *file)
{
    cfile_t *f = (cfile_t *)file;
    /* writes are whole sealed pages; batch-atomic writes would bypass nothing, but keep the
     * claim to what holds for every page */
    return f->real->pMethods->xDeviceCharacteristics(f->real) & ~SQLITE_IOCAP_BATCH_ATOMIC;
}

static int x_shm_map(sqlite3_file *file, int pg, int pgsz, int extend, void volatile **pp)
{
    cfile_t *f = (cfile_t *)file;
    return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp);
}

static int x_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
    cfile_t *f = (cfile_t *)file;
    return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void x_shm_barrier(sqlite3_file *file)
{
    cfile_t *f = (cfile_t *)file;
    f->real->pMethods->xShmBarrier(f->real);
}

static int x_shm_unmap(sqlite3_file *file, int del)
{
    cfile_t *f = (cfile_t *)file;
    return f->real->pMethods->xShmUnmap(f->real, del);
}

static int x_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **pp)
{
    (void)file;
    (void)off;
    (void)amt;
    *pp = NULL; /* no memory mapping: every read goes through x_read */
    return SQLITE_OK;
}

static int x_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
    (void)file;
    (void)off;
    (void)p;
    return SQLITE_OK;
}

static const sqlite3_io_methods io_methods = {
    3,
    x_close,
    x_read,
    x_write,
    x_truncate,
    x_sync,
    x_file_size,
    x_lock,
    x_unlock,
    x_check_reserved,
    x_file_control,
    x_sector_size,
    x_device_characteristics,
    x_shm_map,
    x_shm_lock,
    x_shm_barrier,
    x_shm_unmap,
    x_fetch,
    x_unfetch,
};

/* ---- the VFS ---- */

static int x_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags,
                  int *out_flags)
{
    (void)vfs;
    cfile_t *f = (cfile_t *)file;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)(f + 1);
    f->hdr_off = -1;
    if (flags & SQLITE_OPEN_MAIN_DB)
        f->kind = K_MAIN;
    else if (flags & SQLITE_OPEN_WAL)
        f->kind = K_WAL;
    else if (flags & SQLITE_OPEN_MAIN_JOURNAL)
        f->kind = K_JOURNAL;
    if (f->kind == 0 || name == NULL) {
        /* temporary files, statement and super journals: meshd runs temp_store=MEMORY, so
         * one of these means a connection was set up wrong; never write it in clear */
        LOG_ERROR("crypt",
                  "refusing to open a temporary file (flags 0x%x) in clear: "
                  "temp_store=MEMORY is missing on a connection",
                  (unsigned)flags);
        return SQLITE_CANTOPEN;
    }
    const char *db = f->kind == K_MAIN ? name : sqlite3_filename_database(name);
    pthread_mutex_lock(&reg_lock);
    entry_t *e = db ? find_locked(db) : NULL;
    if (e)
        e->files++;
    pthread_mutex_unlock(&reg_lock);
    if (e == NULL) {
        snprintf(failure, sizeof failure, "%s: no data key is attached for it", name);
        LOG_ERROR("crypt", "%s", failure);
        return SQLITE_AUTH;
    }
    f->e = e;
    f->name = name;
    int rc = SQLITE_NOMEM;
    if (mesh_aead_new(mesh_key_secret(e->key), &f->aead) == MESH_OK)
        rc = base_vfs->xOpen(base_vfs, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        mesh_aead_free(f->aead);
        pthread_mutex_lock(&reg_lock);
        e->files--;
        entry_put_locked(e);
        pthread_mutex_unlock(&reg_lock);
        f->base.pMethods = NULL;
        return rc;
    }
    f->base.pMethods = &io_methods;
    return SQLITE_OK;
}

static int x_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    return base_vfs->xDelete(base_vfs, name, sync_dir);
}

static int x_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return base_vfs->xAccess(base_vfs, name, flags, out);
}

static int x_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return base_vfs->xFullPathname(base_vfs, name, n, out);
}

static int x_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return base_vfs->xRandomness(base_vfs, n, out);
}

static int x_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return base_vfs->xSleep(base_vfs, us);
}

static int x_current_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return base_vfs->xCurrentTime(base_vfs, out);
}

static int x_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return base_vfs->xGetLastError ? base_vfs->xGetLastError(base_vfs, n, out) : 0;
}

static int x_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return base_vfs->xCurrentTimeInt64(base_vfs, out);
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc = SQLITE_ERROR;

static void init(void)
{
    sqlite3_vfs *unix_vfs = sqlite3_vfs_find(NULL);
    if (unix_vfs == NULL || unix_vfs->iVersion < 2)
        return;
    base_vfs = unix_vfs;
    crypt_vfs.iVersion = 2;
    crypt_vfs.szOsFile = (int)sizeof(cfile_t) + unix_vfs->szOsFile;
    crypt_vfs.mxPathname = unix_vfs->mxPathname;
    crypt_vfs.zName = MESH_CRYPT_VFS;
    crypt_vfs.xOpen = x_open;
    crypt_vfs.xDelete = x_delete;
    crypt_vfs.xAccess = x_access;
    crypt_vfs.xFullPathname = x_full_pathname;
    crypt_vfs.xRandomness = x_randomness;
    crypt_vfs.xSleep = x_sleep;
    crypt_vfs.xCurrentTime = x_current_time;
    crypt_vfs.xGetLastError = x_last_error;
    crypt_vfs.xCurrentTimeInt64 = x_current_time64;
    init_rc = sqlite3_vfs_register(&crypt_vfs, 0);
}

mesh_status_t mesh_crypt_vfs_init(mesh_err_t *err)
{
    pthread_once(&init_once, init);
    if (init_rc != SQLITE_OK)
        return mesh_err_set(err, MESH_INTERNAL, "cannot register the encrypting SQLite VFS");
    return MESH_OK;
}

/* ---- opening databases ---- */

mesh_dbfile_t mesh_crypt_probe(const char *path, uint8_t file_id[MESH_FILE_ID_BYTES])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return MESH_DBFILE_ABSENT;
    uint8_t h[24];
    ssize_t n = pread(fd, h, sizeof h, 0);
    close(fd);
    if (n < (ssize_t)sizeof h)
        return MESH_DBFILE_EMPTY;
    if (memcmp(h, sqlite_magic, 16) == 0)
        return MESH_DBFILE_PLAIN;
    if (psz_ok(header_psz(h)) && h[20] == RES && h[21] == 64 && h[22] == 32 && h[23] == 32) {
        if (file_id)
            memcpy(file_id, h, MESH_FILE_ID_BYTES);
        return MESH_DBFILE_ENCRYPTED;
    }
    return MESH_DBFILE_OTHER;
}

mesh_status_t mesh_crypt_sqlite_open(const char *path, int flags, struct sqlite3 **out,
                                     mesh_err_t *err)
{
    *out = NULL;
    bool keyed = attached(path);
    if (!keyed && mesh_crypt_required())
        return mesh_err_set(err, MESH_INTERNAL, "%s: encryption is on but no data key is set",
                            path);
    mesh_dbfile_t kind = mesh_crypt_probe(path, NULL);
    if (keyed && kind == MESH_DBFILE_PLAIN)
        return mesh_err_set(err, MESH_CORRUPT,
                            "%s is not encrypted (a SQLite database in clear) but encryption is "
                            "on: it was created with encryption=off; start meshd with "
                            "encryption=off for this data directory, or move the data into a "
                            "new, encrypted node",
                            path);
    if (!keyed && kind == MESH_DBFILE_ENCRYPTED)
        return mesh_err_set(err, MESH_CORRUPT,
                            "%s is encrypted: meshd needs encryption=on and its "
                            "key-encryption key to open it",
                            path);
    if (keyed && kind == MESH_DBFILE_OTHER)
        return mesh_err_set(err, MESH_CORRUPT, "%s is not a database meshd can open", path);
    sqlite3 *db = NULL;
    mesh_crypt_failure_clear();
    int rc = sqlite3_open_v2(path, &db, flags, keyed ? MESH_CRYPT_VFS : NULL);
    if (rc != SQLITE_OK) {
        mesh_status_t st;
        if (mesh_crypt_failure())
            st = mesh_err_set(err, MESH_CORRUPT, "%s", mesh_crypt_failure());
        else
            st = mesh_err_set(err, rc == SQLITE_NOMEM ? MESH_NOMEM : MESH_IO, "open %s: %s", path,
                              db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return st;
    }
    if (keyed) {
        int reserve = RES;
        sqlite3_file_control(db, "main", SQLITE_FCNTL_RESERVE_BYTES, &reserve);
    }
    char *msg = NULL;
    if (sqlite3_exec(db, "PRAGMA temp_store=MEMORY; PRAGMA mmap_size=0;", NULL, NULL, &msg) !=
        SQLITE_OK) {
        mesh_status_t st =
            mesh_crypt_failure()
                ? mesh_err_set(err, MESH_CORRUPT, "%s", mesh_crypt_failure())
                : mesh_err_set(err, MESH_IO, "open %s: %s", path, msg ? msg : "pragma failed");
        sqlite3_free(msg);
        sqlite3_close(db);
        return st;
    }
    *out = db;
    return MESH_OK;
}

/* ---- page files (backups) ---- */

struct mesh_crypt_pages {
    sqlite3_vfs *vfs;
    sqlite3_file *file; /* vfs->szOsFile bytes */
    char *name;         /* a SQLite filename (sqlite3_create_filename), alive while open */
    bool open, write;
    uint32_t psz, next; /* writing: page size once page 1 is written, next page number */
};

mesh_status_t mesh_crypt_pages_open(const char *path, bool write, mesh_crypt_pages_t **out,
                                    uint32_t *psz, uint32_t *npages, mesh_err_t *err)
{
    *out = NULL;
    mesh_status_t st = mesh_crypt_vfs_init(err);
    if (st != MESH_OK)
        return st;
    bool keyed = attached(path);
    if (!keyed && mesh_crypt_probe(path, NULL) == MESH_DBFILE_ENCRYPTED)
        return mesh_err_set(err, MESH_CORRUPT, "%s is encrypted and no data key is attached", path);
    if (write)
        unlink(path);
    mesh_crypt_pages_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    f->vfs = keyed ? &crypt_vfs : base_vfs;
    f->write = write;
    f->next = 1;
    char full[4096];
    if (full_path(path, full, sizeof full) != SQLITE_OK) {
        free(f);
        return mesh_err_set(err, MESH_IO, "%s: cannot resolve the path", path);
    }
    f->name = (char *)sqlite3_create_filename(full, "", "", 0, NULL);
    f->file = calloc(1, (size_t)f->vfs->szOsFile);
    if (f->name == NULL || f->file == NULL) {
        mesh_crypt_pages_close(f, NULL);
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    int flags = SQLITE_OPEN_MAIN_DB |
                (write ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY);
    int oflags = 0;
    mesh_crypt_failure_clear();
    int rc = f->vfs->xOpen(f->vfs, f->name, f->file, flags, &oflags);
    if (rc != SQLITE_OK) {
        mesh_crypt_pages_close(f, NULL);
        return mesh_err_set(err, MESH_IO, "open %s: %s", path, sqlite3_errstr(rc));
    }
    f->open = true;
    if (!write) {
        sqlite3_int64 size = 0;
        uint8_t h[24];
        rc = f->file->pMethods->xFileSize(f->file, &size);
        if (rc == SQLITE_OK && size > 0)
            rc = f->file->pMethods->xRead(f->file, h, sizeof h, 0);
        if (rc != SQLITE_OK || size < 512 || !psz_ok(header_psz(h)) || size % header_psz(h) != 0 ||
            size / header_psz(h) > UINT32_MAX) {
            const char *why = mesh_crypt_failure();
            mesh_crypt_pages_close(f, NULL);
            return mesh_err_set(err, MESH_CORRUPT, "%s: %s", path,
                                why ? why : "not a whole database (header or size)");
        }
        f->psz = header_psz(h);
        if (psz)
            *psz = f->psz;
        if (npages)
            *npages = (uint32_t)(size / f->psz);
    }
    *out = f;
    return MESH_OK;
}

mesh_status_t mesh_crypt_pages_read(mesh_crypt_pages_t *f, uint32_t pgno, uint8_t *buf,
                                    mesh_err_t *err)
{
    mesh_crypt_failure_clear();
    int rc =
        f->file->pMethods->xRead(f->file, buf, (int)f->psz, (sqlite3_int64)(pgno - 1) * f->psz);
    if (rc == SQLITE_OK)
        return MESH_OK;
    if (mesh_crypt_failure())
        return mesh_err_set(err, MESH_CORRUPT, "%s", mesh_crypt_failure());
    return mesh_err_set(err, rc == SQLITE_IOERR_SHORT_READ ? MESH_CORRUPT : MESH_IO,
                        "%s: page %u: %s", f->name, (unsigned)pgno, sqlite3_errstr(rc));
}

mesh_status_t mesh_crypt_pages_write(mesh_crypt_pages_t *f, const uint8_t *buf, size_t n,
                                     mesh_err_t *err)
{
    if (f->next == 1) {
        if (n < 24 || !psz_ok(header_psz(buf)) || header_psz(buf) != n ||
            memcmp(buf, sqlite_magic, 16) != 0)
            return mesh_err_set(err, MESH_CORRUPT, "%s: page 1 is not a database header", f->name);
        f->psz = (uint32_t)n;
    } else if (n != f->psz) {
        return mesh_err_set(err, MESH_CORRUPT, "%s: page %u is %zu bytes, not %u", f->name,
                            (unsigned)f->next, n, (unsigned)f->psz);
    }
    mesh_crypt_failure_clear();
    int rc = f->file->pMethods->xWrite(f->file, buf, (int)n, (sqlite3_int64)(f->next - 1) * f->psz);
    if (rc != SQLITE_OK) {
        if (mesh_crypt_failure())
            return mesh_err_set(err, MESH_CORRUPT, "%s", mesh_crypt_failure());
        return mesh_err_set(err, rc == SQLITE_FULL ? MESH_NOSPACE : MESH_IO, "%s: page %u: %s",
                            f->name, (unsigned)f->next, sqlite3_errstr(rc));
    }
    f->next++;
    return MESH_OK;
}

mesh_status_t mesh_crypt_pages_close(mesh_crypt_pages_t *f, mesh_err_t *err)
{
    if (f == NULL)
        return MESH_OK;
    mesh_status_t st = MESH_OK;
    if (f->open) {
        if (f->write && f->file->pMethods->xSync(f->file, SQLITE_SYNC_NORMAL) != SQLITE_OK)
            st = mesh_err_set(err, MESH_IO, "%s: sync failed", f->name);
        f->file->pMethods->xClose(f->file);
    }
    free(f->file);
    sqlite3_free_filename((sqlite3_filename)f->name);
    free(f);
    return st;
}
