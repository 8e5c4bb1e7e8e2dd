/*
 * test_crypt_vfs.c - the encrypting VFS against real SQLite: databases in WAL and rollback
 * journal modes round-trip through it, nothing in clear reaches the files, and a wrong key,
 * a flipped bit, a page moved within or between files, or a file in clear are errors, never
 * wrong data. Also the backup API and VACUUM through it, WAL recovery after a "crash" (the
 * files copied while a connection still holds them), and refusal of temporary files.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/util.h"
#include "crypt/keys.h"
#include "crypt/vfs.h"

int main(void);

#define MARKER "plaintext-marker-7f3a9c"

static char dir[64];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/meshd-test-cvfs-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static sqlite3 *open_db(const char *path)
{
    sqlite3 *db = NULL;
    mesh_err_t err;
    mesh_status_t st = mesh_crypt_sqlite_open(
        path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, &db, &err);
    if (st != MESH_OK)
        fail_msg("open %s: %s", path, err.msg);
    return db;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
}

static int exec_rc(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static int64_t scalar(sqlite3 *db, const char *sql, int *rc)
{
    sqlite3_stmt *q;
    int64_t v = -1;
    *rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
    if (*rc != SQLITE_OK)
        return v;
    *rc = sqlite3_step(q);
    if (*rc == SQLITE_ROW) {
        v = sqlite3_column_int64(q, 0);
        *rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    return v;
}

static bool file_has(const char *path, const char *needle)
{
    char *text;
    size_t n;
    if (mesh_read_file(path, 1 << 28, &text, &n, NULL) != MESH_OK)
        return false;
    bool found = memmem(text, n, needle, strlen(needle)) != NULL;
    free(text);
    return found;
}

static void fill(sqlite3 *db, int rows)
{
    exec_ok(db, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)");
    exec_ok(db, "BEGIN");
    char sql[256];
    for (int i = 0; i < rows; i++) {
        snprintf(sql, sizeof sql, "INSERT INTO t(v) VALUES ('%s-%d-%0100d')", MARKER, i, i);
        exec_ok(db, sql);
    }
    exec_ok(db, "COMMIT");
}

static void flip(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0x10;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static void copy_file(const char *from, const char *to)
{
    char *text;
    size_t n;
    assert_int_equal(mesh_read_file(from, 1 << 28, &text, &n, NULL), MESH_OK);
    int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(mesh_write_all(fd, text, n), MESH_OK);
    close(fd);
    free(text);
}

/* Opens path (its key attached) and reads every row: true when all of it worked. The
 * error (if any) is left in err. */
static bool reads_all(const char *path, mesh_err_t *err)
{
    sqlite3 *db = NULL;
    mesh_crypt_failure_clear();
    if (mesh_crypt_sqlite_open(path, SQLITE_OPEN_READWRITE, &db, err) != MESH_OK)
        return false;
    int rc;
    sqlite3_exec(db, "PRAGMA cache_size=0", NULL, NULL, NULL);
    scalar(db, "SELECT sum(length(v)) FROM t", &rc);
    if (rc != SQLITE_OK)
        snprintf(err->msg, sizeof err->msg, "%s",
                 mesh_crypt_failure() ? mesh_crypt_failure() : sqlite3_errmsg(db));
    sqlite3_close(db);
    return rc == SQLITE_OK;
}

static mesh_key_t *attach_new(const char *path)
{
    mesh_key_t *k;
    assert_int_equal(mesh_key_new(0, &k), MESH_OK);
    mesh_err_t err;
    assert_int_equal(mesh_crypt_attach(path, k, &err), MESH_OK);
    return k;
}

static void test_wal_roundtrip(void **state)
{
    (void)state;
    char db_path[128], wal[160];
    path_of(db_path, sizeof db_path, "a.db");
    snprintf(wal, sizeof wal, "%s-wal", db_path);
    mesh_key_t *k = attach_new(db_path);
    sqlite3 *db = open_db(db_path);
    exec_ok(db, "PRAGMA journal_mode=WAL");
    fill(db, 500);
    int rc;
    /* the WAL holds the pages now: nothing in clear in it */
    assert_false(file_has(wal, MARKER));
    assert_int_equal(scalar(db, "SELECT count(*) FROM t WHERE v LIKE 'plaintext%'", &rc), 500);
    exec_ok(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    fill(db, 100);
    sqlite3_close(db);
    assert_false(file_has(db_path, MARKER));
    assert_false(file_has(db_path, "SQLite format 3"));
    assert_int_equal(mesh_crypt_probe(db_path, NULL), MESH_DBFILE_ENCRYPTED);
    db = open_db(db_path);
    assert_int_equal(scalar(db, "SELECT count(*) FROM t", &rc), 600);
    assert_int_equal(rc, SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(db);
    mesh_crypt_detach(db_path);
    mesh_key_unref(k);
}

/* A second key attached for another path, or the same path re-attached with a new key. */
static void test_wrong_key(void **state)
{
    (void)state;
    char p[128];
    path_of(p, sizeof p, "w.db");
    mesh_key_t *k = attach_new(p);
    sqlite3 *db = open_db(p);
    exec_ok(db, "PRAGMA journal_mode=WAL");
    fill(db, 50);
    sqlite3_close(db);
    mesh_crypt_detach(p);
    mesh_key_t *other = attach_new(p);
    mesh_err_t err;
    assert_false(reads_all(p, &err));
    assert_non_null(strstr(err.msg, "fails authentication"));
    mesh_crypt_detach(p);
    /* the right key opens it again */
    int rc;
    assert_int_equal(mesh_crypt_attach(p, k, &err), MESH_OK);
    db = open_db(p);
    assert_int_equal(scalar(db, "SELECT count(*) FROM t", &rc), 50);
    /* attaching a second, different key for an attached path is refused */
    assert_int_equal(mesh_crypt_attach(p, other, &err), MESH_CONFLICT);
    sqlite3_close(db);
    mesh_crypt_detach(p);
    mesh_key_unref(k);
    mesh_key_unref(other);
}

/* Every byte of a sealed page matters: flips in the data, the nonce, the tag, the clear
 * header bytes of page 1 and the file id all fail, and the query fails (never returns a
 * changed value). */
static void test_bit_flips(void **state)
{
    (void)state;
    char p[128], c[128];
    path_of(p, sizeof p, "f.db");
    path_of(c, sizeof c, "f-copy.db");
    mesh_key_t *k = attach_new(p);
    sqlite3 *db = open_db(p);
    exec_ok(db, "PRAGMA journal_mode=WAL");
    fill(db, 200);
    exec_ok(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    int rc;
    int64_t pages = scalar(db, "PRAGMA page_count", &rc);
    sqlite3_close(db);
    mesh_err_t err;
    assert_true(reads_all(p, &err));
    assert_true(pages > 5);
    off_t offs[] = {4096 + 100,
                    4096 + 4096 - 28,
                    4096 + 4096 - 1,
                    2 * 4096 + 7,
                    3,
                    17,
                    20,
                    99,
                    (off_t)(pages - 1) * 4096 + 2000};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        copy_file(p, c);
        assert_int_equal(mesh_crypt_attach(c, k, &err), MESH_OK);
        flip(c, offs[i]);
        if (reads_all(c, &err))
            fail_msg("a flip at %lld went unnoticed", (long long)offs[i]);
        mesh_crypt_detach(c);
        unlink(c);
    }
    mesh_crypt_detach(p);
    mesh_key_unref(k);
}

static void swap_pages(const char *path, int a, int b, int psz)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t x[65536], y[65536];
    assert_int_equal(pread(fd, x, (size_t)psz, (off_t)(a - 1) * psz), psz);
    assert_int_equal(pread(fd, y, (size_t)psz, (off_t)(b - 1) * psz), psz);
    assert_int_equal(pwrite(fd, y, (size_t)psz, (off_t)(a - 1) * psz), psz);
    assert_int_equal(pwrite(fd, x, (size_t)psz, (off_t)(b - 1) * psz), psz);
    close(fd);
}

/* A page moved within a file, or copied from another file (another key and file id), fails. */
static void test_moved_pages(void **state)
{
    (void)state;
    char p[128], q[128];
    path_of(p, sizeof p, "m.db");
    path_of(q, sizeof q, "n.db");
    mesh_key_t *k = attach_new(p);
    mesh_key_t *k2 = attach_new(q);
    sqlite3 *db = open_db(p);
    fill(db, 300);
    sqlite3_close(db);
    db = open_db(q);
    fill(db, 300);
    sqlite3_close(db);
    swap_pages(p, 3, 4, 4096);
    mesh_err_t err;
    assert_false(reads_all(p, &err));
    swap_pages(p, 3, 4, 4096); /* back: it opens again */
    assert_true(reads_all(p, &err));
    /* page 5 of q into p */
    int fp = open(p, O_RDWR), fq = open(q, O_RDONLY);
    uint8_t pg[4096];
    assert_int_equal(pread(fq, pg, sizeof pg, 4 * 4096), 4096);
    assert_int_equal(pwrite(fp, pg, sizeof pg, 4 * 4096), 4096);
    close(fp);
    close(fq);
    assert_false(reads_all(p, &err));
    mesh_crypt_detach(p);
    mesh_crypt_detach(q);
    mesh_key_unref(k);
    mesh_key_unref(k2);
}

/* Rollback-journal mode: a rolled-back transaction and a hot journal left by a "crash" (the
 * database and journal copied mid-transaction) restore the old content; the journal holds
 * nothing in clear. */
static void test_rollback_journal(void **state)
{
    (void)state;
    char p[128], j[160], c[128], cj[160];
    path_of(p, sizeof p, "j.db");
    snprintf(j, sizeof j, "%s-journal", p);
    path_of(c, sizeof c, "jc.db");
    snprintf(cj, sizeof cj, "%s-journal", c);
    mesh_key_t *k = attach_new(p);
    sqlite3 *db = open_db(p);
    exec_ok(db, "PRAGMA journal_mode=PERSIST; PRAGMA cache_size=10");
    fill(db, 300);
    int rc;
    exec_ok(db, "BEGIN; UPDATE t SET v = 'changed'; DELETE FROM t WHERE id > 250");
    /* mid-transaction, with a small cache the database file was already written: copy it
     * and its journal as a crash would leave them */
    copy_file(p, c);
    copy_file(j, cj);
    struct stat js;
    assert_int_equal(stat(j, &js), 0);
    assert_true(js.st_size > 8 * 4096); /* page images were journaled */
    assert_false(file_has(j, MARKER));
    exec_ok(db, "ROLLBACK");
    assert_int_equal(scalar(db, "SELECT count(*) FROM t WHERE v LIKE 'plaintext%'", &rc), 300);
    sqlite3_close(db);
    mesh_err_t err;
    assert_int_equal(mesh_crypt_attach(c, k, &err), MESH_OK);
    db = open_db(c);
    assert_int_equal(scalar(db, "SELECT count(*) FROM t WHERE v LIKE 'plaintext%'", &rc), 300);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(db);
    mesh_crypt_detach(c);
    mesh_crypt_detach(p);
    mesh_key_unref(k);
}

/* WAL: the files copied while a connection holds them (no checkpoint) recover on open; a flip
 * in the last frame ends the WAL before it (SQLite's own rule for a bad frame: an older
 * state, never a changed value); a flip in a frame a running connection reads is an error. */
static void test_wal_recovery_and_flips(void **state)
{
    (void)state;
    char p[128], w[160], c[128], cw[160];
    path_of(p, sizeof p, "r.db");
    snprintf(w, sizeof w, "%s-wal", p);
    path_of(c, sizeof c, "rc.db");
    snprintf(cw, sizeof cw, "%s-wal", c);
    mesh_key_t *k = attach_new(p);
    sqlite3 *db = open_db(p);
    exec_ok(db, "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0");
    fill(db, 100);
    exec_ok(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    fill(db, 100); /* in the WAL only */
    exec_ok(db, "INSERT INTO t(v) VALUES ('last')");
    copy_file(p, c);
    copy_file(w, cw);
    mesh_err_t err;
    assert_int_equal(mesh_crypt_attach(c, k, &err), MESH_OK);
    sqlite3 *d2 = open_db(c);
    int rc;
    assert_int_equal(scalar(d2, "SELECT count(*) FROM t", &rc), 201);
    sqlite3_close(d2);
    /* again, with the last frame's page damaged */
    copy_file(p, c);
    copy_file(w, cw);
    struct stat st;
    assert_int_equal(stat(cw, &st), 0);
    flip(cw, st.st_size - 100);
    d2 = open_db(c);
    int64_t n = scalar(d2, "SELECT count(*) FROM t", &rc);
    assert_int_equal(rc, SQLITE_OK);
    assert_true(n == 200 || n == 100); /* the last transaction (or more) is gone, not altered */
    assert_int_equal(scalar(d2, "SELECT count(*) FROM t WHERE v = 'last'", &rc), 0);
    sqlite3_close(d2);
    mesh_crypt_detach(c);
    /* a running reader: frames are known valid, a damaged one is an error */
    assert_true(reads_all(p, &err));
    assert_int_equal(stat(w, &st), 0);
    flip(w, 32 + 24 + 1000); /* the page of the first frame */
    assert_false(reads_all(p, &err));
    flip(w, 32 + 24 + 1000);
    sqlite3_close(db);
    mesh_crypt_detach(p);
    mesh_key_unref(k);
}

/* The backup API copies a database into a file sealed with another key (how a domain is
 * re-encrypted); VACUUM rewrites every page; odd page sizes work. */
static void test_backup_vacuum_page_sizes(void **state)
{
    (void)state;
    char p[128], b[128];
    path_of(p, sizeof p, "s.db");
    path_of(b, sizeof b, "s2.db");
    mesh_key_t *k = attach_new(p);
    mesh_key_t *k2 = attach_new(b);
    sqlite3 *db = open_db(p);
    exec_ok(db, "PRAGMA page_size=512; PRAGMA journal_mode=WAL");
    fill(db, 400);
    exec_ok(db, "DELETE FROM t WHERE id % 3 = 0; VACUUM");
    int rc;
    assert_int_equal(scalar(db, "PRAGMA page_size", &rc), 512);
    sqlite3 *dst = open_db(b);
    exec_ok(dst, "PRAGMA page_size=512; PRAGMA journal_mode=WAL");
    sqlite3_backup *bk = sqlite3_backup_init(dst, "main", db, "main");
    assert_non_null(bk);
    while ((rc = sqlite3_backup_step(bk, 7)) == SQLITE_OK)
        exec_ok(db, "INSERT INTO t(v) VALUES ('during backup')"); /* same connection: tracked */
    assert_int_equal(rc, SQLITE_DONE);
    assert_int_equal(sqlite3_backup_finish(bk), SQLITE_OK);
    int64_t want = scalar(db, "SELECT count(*) FROM t", &rc);
    assert_int_equal(scalar(dst, "SELECT count(*) FROM t", &rc), want);
    sqlite3_close(dst);
    sqlite3_close(db);
    assert_false(file_has(b, MARKER));
    dst = open_db(b);
    assert_int_equal(scalar(dst, "SELECT count(*) FROM t", &rc), want);
    sqlite3_close(dst);
    mesh_crypt_detach(p);
    mesh_crypt_detach(b);
    /* 64 KiB pages */
    path_of(p, sizeof p, "big.db");
    mesh_key_t *k3 = attach_new(p);
    db = open_db(p);
    exec_ok(db, "PRAGMA page_size=65536; PRAGMA journal_mode=WAL");
    fill(db, 100);
    sqlite3_close(db);
    db = open_db(p);
    assert_int_equal(scalar(db, "PRAGMA page_size", &rc), 65536);
    assert_int_equal(scalar(db, "SELECT count(*) FROM t", &rc), 100);
    sqlite3_close(db);
    mesh_crypt_detach(p);
    mesh_key_unref(k);
    mesh_key_unref(k2);
    mesh_key_unref(k3);
}

/* A transaction larger than the page cache spills frames to the WAL, then rewrites some of
 * them in place; SQLite writes the frames after such a rewrite with zeroed salts and fixes
 * their headers at commit (so salts cannot be bound into a page). Everything must read back,
 * from the WAL by another connection, after recovery and after a checkpoint. */
static void test_wal_spill_rewrite(void **state)
{
    (void)state;
    char p[128], w[160], c[128], cw[160];
    path_of(p, sizeof p, "spill.db");
    snprintf(w, sizeof w, "%s-wal", p);
    path_of(c, sizeof c, "spill-copy.db");
    snprintf(cw, sizeof cw, "%s-wal", c);
    mesh_key_t *k = attach_new(p);
    sqlite3 *db = open_db(p);
    exec_ok(db, "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=20;"
                "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
                "BEGIN;"
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)"
                "  INSERT INTO t(v) SELECT printf('%0300d', i) FROM n;"
                "UPDATE t SET v = 'first' || v WHERE id % 7 = 0;"
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)"
                "  INSERT INTO t(v) SELECT printf('%0300d', i) FROM n;"
                "UPDATE t SET v = 'again' || v WHERE id % 11 = 0;"
                "COMMIT;");
    int rc;
    copy_file(p, c);
    copy_file(w, cw);
    mesh_err_t err;
    assert_true(reads_all(p, &err)); /* another connection, through the WAL index */
    assert_int_equal(mesh_crypt_attach(c, k, &err), MESH_OK);
    assert_true(reads_all(c, &err)); /* recovery of the copied WAL */
    sqlite3 *d2 = open_db(c);
    assert_int_equal(scalar(d2, "SELECT count(*) FROM t", &rc), 3500);
    assert_int_equal(scalar(d2, "SELECT count(*) FROM t WHERE v LIKE 'again%'", &rc), 318);
    sqlite3_close(d2);
    exec_ok(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    assert_int_equal(scalar(db, "SELECT count(*) FROM t WHERE v LIKE 'first%'", &rc), 390);
    sqlite3_close(db);
    assert_true(reads_all(p, &err));
    mesh_crypt_detach(c);
    mesh_crypt_detach(p);
    mesh_key_unref(k);
}

/* A database in clear is refused where a key is attached, an encrypted one without a key,
 * and a path without a key while encryption is required; temporary files are refused. */
static void test_refusals(void **state)
{
    (void)state;
    char p[128], e[128];
    path_of(p, sizeof p, "plain.db");
    path_of(e, sizeof e, "enc.db");
    sqlite3 *db = open_db(p); /* no key: plain */
    fill(db, 10);
    sqlite3_close(db);
    assert_true(file_has(p, MARKER));
    assert_int_equal(mesh_crypt_probe(p, NULL), MESH_DBFILE_PLAIN);
    mesh_key_t *k = attach_new(p);
    mesh_err_t err;
    assert_int_equal(mesh_crypt_sqlite_open(p, SQLITE_OPEN_READWRITE, &db, &err), MESH_CORRUPT);
    assert_non_null(strstr(err.msg, "not encrypted"));
    mesh_crypt_detach(p);
    mesh_key_t *k2 = attach_new(e);
    db = open_db(e);
    fill(db, 10);
    sqlite3_close(db);
    mesh_crypt_detach(e);
    assert_int_equal(mesh_crypt_sqlite_open(e, SQLITE_OPEN_READWRITE, &db, &err), MESH_CORRUPT);
    assert_non_null(strstr(err.msg, "is encrypted"));
    mesh_crypt_set_required(true);
    assert_int_equal(mesh_crypt_sqlite_open(p, SQLITE_OPEN_READWRITE, &db, &err), MESH_INTERNAL);
    mesh_crypt_set_required(false);
    /* a connection without temp_store=MEMORY cannot spill to a clear temporary file */
    assert_int_equal(mesh_crypt_attach(e, k2, &err), MESH_OK);
    assert_int_equal(sqlite3_open_v2(e, &db, SQLITE_OPEN_READWRITE, MESH_CRYPT_VFS), SQLITE_OK);
    exec_ok(db, "PRAGMA temp_store=FILE; PRAGMA temp.cache_size=2");
    assert_int_not_equal(exec_rc(db, "CREATE TEMP TABLE x(a);"
                                     "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                                     "FROM n WHERE i < 3000) "
                                     "INSERT INTO x SELECT randomblob(1000) FROM n"),
                         SQLITE_OK);
    sqlite3_close(db);
    mesh_crypt_detach(e);
    mesh_key_unref(k);
    mesh_key_unref(k2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wal_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bit_flips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_moved_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_recovery_and_flips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_vacuum_page_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_spill_rewrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
