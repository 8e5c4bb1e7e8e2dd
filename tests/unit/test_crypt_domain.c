/*
 * test_crypt_domain.c - an encrypted domain: nothing written through it is in clear in its
 * files, a wrong KEK is refused at open without touching anything, domains in clear and
 * encrypted ones are not mixed up, the key file is rewrapped under a new KEK, a re-encryption
 * under a new data key runs while writers keep writing (row and time-series layouts) and
 * loses nothing, and what an interrupted re-encryption leaves is cleaned at open.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"
#include "core/util.h"
#include "crypt/keys.h"
#include "crypt/vfs.h"
#include "store/domain.h"

int main(void);

#define MARKER "mkr-5b0f1d2e"

#define HEADER(id, version)                                                                        \
    "apiVersion: v3.1.0\n"                                                                         \
    "kind: DataContract\n"                                                                         \
    "id: " id "\n"                                                                                 \
    "version: " version "\n"                                                                       \
    "status: active\n"                                                                             \
    "domain: factory-a\n"

/* rows keyed by (machine, n): the row layout */
static const char c_rows[] = HEADER("urn:c:telemetry", "1.0.0") "description:\n"
                                                                "  purpose: " MARKER "-contract\n"
                                                                "schema:\n"
                                                                "  - name: telemetry\n"
                                                                "    properties:\n"
                                                                "      - name: machine\n"
                                                                "        logicalType: string\n"
                                                                "        primaryKey: true\n"
                                                                "        primaryKeyPosition: 1\n"
                                                                "      - name: n\n"
                                                                "        logicalType: integer\n"
                                                                "        primaryKey: true\n"
                                                                "        primaryKeyPosition: 2\n"
                                                                "      - name: note\n"
                                                                "        logicalType: string\n";

/* keyed by (machine, ts) with a time column: the time-series layout */
static const char c_ts[] = HEADER("urn:c:ticks", "1.0.0") "schema:\n"
                                                          "  - name: ticks\n"
                                                          "    customProperties:\n"
                                                          "      - property: timeColumn\n"
                                                          "        value: ts\n"
                                                          "    properties:\n"
                                                          "      - name: machine\n"
                                                          "        logicalType: string\n"
                                                          "        primaryKey: true\n"
                                                          "        primaryKeyPosition: 1\n"
                                                          "      - name: ts\n"
                                                          "        logicalType: timestamp\n"
                                                          "        primaryKey: true\n"
                                                          "        primaryKeyPosition: 2\n"
                                                          "      - name: v\n"
                                                          "        logicalType: integer\n";

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
    snprintf(dir, sizeof dir, "/tmp/meshd-test-cdom-XXXXXX");
    mesh_log_min_level = MESH_LOG_ERROR;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static mesh_kek_t *kek_of(uint8_t fill)
{
    uint8_t b[32];
    memset(b, fill, sizeof b);
    mesh_kek_t *k;
    assert_int_equal(mesh_kek_from_bytes(b, "test KEK", &k, NULL), MESH_OK);
    return k;
}

static mesh_status_t try_open(const mesh_kek_t *kek, mesh_domain_t **d, mesh_err_t *err)
{
    mesh_domain_opts_t o;
    memset(&o, 0, sizeof o);
    o.kek = kek;
    o.rekey_pages = 4; /* many small steps, with writes between them */
    mesh_err_clear(err);
    return mesh_domain_open(dir, "factory-a", &o, NULL, NULL, d, err);
}

static mesh_domain_t *open_dom(const mesh_kek_t *kek)
{
    mesh_domain_t *d = NULL;
    mesh_err_t err;
    mesh_status_t st = try_open(kek, &d, &err);
    if (st != MESH_OK)
        print_message("open: %s\n", err.msg);
    assert_int_equal(st, MESH_OK);
    return d;
}

static void put(mesh_domain_t *d, const char *yaml)
{
    mesh_contract_result_t res;
    mesh_err_t err;
    mesh_status_t st = mesh_domain_put_contract(d, yaml, strlen(yaml), &res, &err);
    if (st != MESH_OK)
        print_message("contract: %s\n", err.msg);
    assert_int_equal(st, MESH_OK);
    mesh_buf_free(&res.changes);
}

static const mesh_product_t *product(mesh_domain_t *d, const char *name, mesh_cref_t **ref)
{
    mesh_cref_t **v;
    size_t n;
    assert_int_equal(mesh_domain_contracts(d, &v, &n), MESH_OK);
    const mesh_product_t *p = NULL;
    *ref = NULL;
    for (size_t i = 0; i < n; i++) {
        const mesh_product_t *q = mesh_contract_product(v[i]->c, name);
        if (q && !p) {
            p = q;
            *ref = mesh_cref_get(v[i]);
        }
        mesh_cref_put(v[i]);
    }
    free(v);
    return p;
}

/* Writes rows machine/n..n+count-1 (notes carry the marker) or ticks; MESH_OK when acked. */
static mesh_status_t write_rows(mesh_domain_t *d, bool ts, const char *machine, int64_t n,
                                int count)
{
    mesh_cref_t *ref;
    const mesh_product_t *p = product(d, ts ? "ticks" : "telemetry", &ref);
    assert_non_null(p);
    mesh_batch_t b;
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    b.precision = MESH_PREC_NS;
    char note[64];
    for (int i = 0; i < count; i++) {
        assert_int_equal(mesh_batch_row_begin(&b, p, (uint32_t)i + 1), MESH_OK);
        mesh_batch_set_text(&b, 0, machine, strlen(machine));
        if (ts) {
            mesh_batch_set_int(&b, 1, 1795459508000000000LL + (n + i) * 1000000000LL);
            mesh_batch_set_int(&b, 2, n + i);
        } else {
            mesh_batch_set_int(&b, 1, n + i);
            snprintf(note, sizeof note, "%s-row-%lld", MARKER, (long long)(n + i));
            mesh_batch_set_text(&b, 2, note, strlen(note));
        }
        mesh_batch_row_end(&b, "", 0);
    }
    assert_false(mesh_batch_failed(&b));
    mesh_apply_result_t res;
    mesh_err_t err;
    mesh_status_t st = mesh_domain_write(d, &b, NULL, &res, &err);
    if (st != MESH_OK)
        print_message("write: %s\n", err.msg);
    mesh_batch_free(&b);
    mesh_cref_put(ref);
    return st;
}

static int count_rows(mesh_domain_t *d, const char *name)
{
    mesh_cref_t *ref;
    const mesh_product_t *p = product(d, name, &ref);
    assert_non_null(p);
    mesh_store_reader_t *r;
    mesh_err_t err;
    assert_int_equal(mesh_store_reader_open(mesh_domain_store(d), &r, &err), MESH_OK);
    assert_int_equal(mesh_store_reader_begin(r, &err), MESH_OK);
    mesh_scan_plan_t pl;
    memset(&pl, 0, sizeof pl);
    pl.cols_used = ~0ull;
    mesh_store_plan(mesh_domain_store(d), p, MESH_VIEW_ROWS, &pl);
    mesh_scan_t *sc;
    assert_int_equal(mesh_scan_open(r, p, MESH_VIEW_ROWS, &pl, NULL, 0, &sc, &err), MESH_OK);
    int n = 0, rc;
    while ((rc = mesh_scan_next(sc)) == 1)
        n++;
    assert_int_equal(rc, 0);
    mesh_scan_close(sc);
    mesh_store_reader_end(r);
    mesh_store_reader_close(r);
    mesh_cref_put(ref);
    return n;
}

/* Every file under dir (recursively) searched for needle; returns the hits. */
static int hits;
static const char *needle;
static int scan_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (flag != FTW_F)
        return 0;
    char *text;
    size_t n;
    if (mesh_read_file(path, 1 << 30, &text, &n, NULL) == MESH_OK) {
        if (memmem(text, n, needle, strlen(needle))) {
            print_message("found in %s\n", path);
            hits++;
        }
        free(text);
    }
    return 0;
}

static int scan_dir(const char *what)
{
    hits = 0;
    needle = what;
    nftw(dir, scan_one, 8, FTW_PHYS);
    return hits;
}

static uint32_t dir_crc_acc;
static int crc_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag != FTW_F)
        return 0;
    char *text;
    size_t n;
    dir_crc_acc = mesh_crc32c(dir_crc_acc, path, strlen(path));
    dir_crc_acc = mesh_crc32c(dir_crc_acc, &sb->st_size, sizeof sb->st_size);
    if (mesh_read_file(path, 1 << 30, &text, &n, NULL) == MESH_OK) {
        dir_crc_acc = mesh_crc32c(dir_crc_acc, text, n);
        free(text);
    }
    return 0;
}

static uint32_t dir_crc(void)
{
    dir_crc_acc = 0;
    nftw(dir, crc_one, 8, FTW_PHYS);
    return dir_crc_acc;
}

static void test_nothing_in_clear(void **state)
{
    (void)state;
    mesh_kek_t *kek = kek_of(1);
    mesh_domain_t *d = open_dom(kek);
    put(d, c_rows);
    put(d, c_ts);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(write_rows(d, false, "m-" MARKER, i * 10, 10), MESH_OK);
        assert_int_equal(write_rows(d, true, "m-" MARKER, i * 10, 10), MESH_OK);
    }
    /* running, WAL and log present, time series in memory */
    mesh_domain_close_untrimmed(d);
    assert_int_equal(scan_dir(MARKER), 0);
    assert_int_equal(scan_dir("SQLite format 3"), 0);
    d = open_dom(kek);
    assert_int_equal(count_rows(d, "telemetry"), 200);
    assert_int_equal(count_rows(d, "ticks"), 200);
    mesh_domain_keyinfo_t ki;
    mesh_domain_keyinfo(d, &ki);
    assert_true(ki.encrypted);
    assert_int_equal(ki.gen, 0);
    mesh_domain_close(d);
    assert_int_equal(scan_dir(MARKER), 0);
    mesh_kek_free(kek);
}

static void test_wrong_kek_and_mixing(void **state)
{
    (void)state;
    mesh_kek_t *kek = kek_of(1), *wrong = kek_of(2);
    mesh_domain_t *d = open_dom(kek);
    put(d, c_rows);
    assert_int_equal(write_rows(d, false, "a", 0, 5), MESH_OK);
    mesh_domain_close(d);
    uint32_t before = dir_crc();
    mesh_err_t err;
    assert_int_equal(try_open(wrong, &d, &err), MESH_FORBIDDEN);
    assert_non_null(strstr(err.msg, "wrong key?"));
    assert_non_null(strstr(err.msg, "factory-a"));
    assert_int_equal(dir_crc(), before); /* nothing written */
    assert_int_equal(try_open(NULL, &d, &err), MESH_INVALID);
    assert_non_null(strstr(err.msg, "encryption is off"));
    assert_int_equal(dir_crc(), before);
    /* the key file lost: said plainly, nothing created */
    char kp[128], kp2[128];
    snprintf(kp, sizeof kp, "%s/key", dir);
    snprintf(kp2, sizeof kp2, "%s/key.saved", dir);
    assert_int_equal(rename(kp, kp2), 0);
    assert_int_equal(try_open(kek, &d, &err), MESH_CORRUPT);
    assert_non_null(strstr(err.msg, "key file"));
    assert_int_equal(rename(kp2, kp), 0);
    /* a flipped bit in the key file */
    int fd = open(kp, O_RDWR);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, 70), 1);
    b ^= 1;
    assert_int_equal(pwrite(fd, &b, 1, 70), 1);
    assert_int_equal(try_open(kek, &d, &err), MESH_CORRUPT);
    b ^= 1;
    assert_int_equal(pwrite(fd, &b, 1, 70), 1);
    close(fd);
    d = open_dom(kek);
    assert_int_equal(count_rows(d, "telemetry"), 5);
    mesh_domain_close(d);
    /* a domain in clear is not opened with encryption on */
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    assert_int_equal(mkdir(dir, 0700), 0);
    d = open_dom(NULL);
    put(d, c_rows);
    mesh_domain_close(d);
    before = dir_crc();
    assert_int_equal(try_open(kek, &d, &err), MESH_INVALID);
    assert_non_null(strstr(err.msg, "created without encryption"));
    assert_int_equal(dir_crc(), before);
    mesh_kek_free(kek);
    mesh_kek_free(wrong);
}

static void test_rewrap(void **state)
{
    (void)state;
    mesh_kek_t *old = kek_of(1), *next = kek_of(3);
    mesh_domain_t *d = open_dom(old);
    put(d, c_rows);
    assert_int_equal(write_rows(d, false, "a", 0, 5), MESH_OK);
    mesh_err_t err;
    const mesh_kek_t *both[] = {old, next}, *only[] = {next};
    assert_int_equal(mesh_domain_rewrap(d, both, 2, old, &err), MESH_OK);
    assert_int_equal(mesh_domain_rewrap(d, only, 1, next, &err), MESH_OK);
    assert_int_equal(write_rows(d, false, "a", 5, 5), MESH_OK);
    mesh_domain_close(d);
    assert_int_equal(try_open(old, &d, &err), MESH_FORBIDDEN);
    d = open_dom(next);
    assert_int_equal(count_rows(d, "telemetry"), 10);
    /* interrupted after the first phase: the old KEK still opens it, and the open leaves the
     * key file wrapped under it alone */
    assert_int_equal(mesh_domain_rewrap(d, both, 2, next, &err), MESH_OK);
    mesh_domain_close(d);
    d = open_dom(old);
    mesh_domain_close(d);
    assert_int_equal(try_open(next, &d, &err), MESH_FORBIDDEN);
    mesh_kek_free(old);
    mesh_kek_free(next);
}

typedef struct wjob {
    mesh_domain_t *d;
    bool ts;
    _Atomic bool stop;
    int acked; /* batches acknowledged (each 10 rows) */
    int failed;
} wjob_t;

static void *writer(void *arg)
{
    wjob_t *j = arg;
    while (!atomic_load(&j->stop) && j->acked < 5000) {
        if (write_rows(j->d, j->ts, j->ts ? "tsw" : "roww", (int64_t)j->acked * 10, 10) == MESH_OK)
            j->acked++;
        else
            j->failed++;
    }
    return NULL;
}

static void test_rekey_online(void **state)
{
    (void)state;
    mesh_kek_t *kek = kek_of(1);
    mesh_domain_t *d = open_dom(kek);
    put(d, c_rows);
    put(d, c_ts);
    /* enough pages that the copy takes several steps */
    for (int i = 0; i < 300; i++)
        assert_int_equal(write_rows(d, false, "bulk", i * 10, 10), MESH_OK);
    char old_db[128];
    snprintf(old_db, sizeof old_db, "%s/data.db", dir);
    uint8_t old_id[16];
    assert_int_equal(mesh_crypt_probe(old_db, old_id), MESH_DBFILE_ENCRYPTED);
    static wjob_t jr, jt;
    memset(&jr, 0, sizeof jr);
    memset(&jt, 0, sizeof jt);
    jr.d = jt.d = d;
    jt.ts = true;
    pthread_t a, b;
    assert_int_equal(pthread_create(&a, NULL, writer, &jr), 0);
    assert_int_equal(pthread_create(&b, NULL, writer, &jt), 0);
    usleep(50000);
    int before = jr.acked + jt.acked;
    mesh_rekey_result_t res;
    mesh_err_t err;
    mesh_status_t st = mesh_domain_rekey(d, &res, &err);
    if (st != MESH_OK)
        print_message("rekey: %s\n", err.msg);
    assert_int_equal(st, MESH_OK);
    int during = jr.acked + jt.acked - before;
    usleep(50000);
    atomic_store(&jr.stop, true);
    atomic_store(&jt.stop, true);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    print_message("re-encryption: %lld pages in %lld steps, %lld ms; %d batches acknowledged "
                  "meanwhile\n",
                  (long long)res.pages, (long long)res.steps, (long long)res.ms, during);
    assert_int_equal(res.gen, 1);
    assert_true(res.steps > 1);
    assert_int_equal(jr.failed + jt.failed, 0);
    assert_int_equal(count_rows(d, "telemetry"), 3000 + jr.acked * 10);
    assert_int_equal(count_rows(d, "ticks"), jt.acked * 10);
    /* the old file is gone; the new one has another id; the log holds only new records */
    assert_int_not_equal(access(old_db, F_OK), 0);
    char new_db[128];
    snprintf(new_db, sizeof new_db, "%s/data.1.db", dir);
    uint8_t new_id[16];
    assert_int_equal(mesh_crypt_probe(new_db, new_id), MESH_DBFILE_ENCRYPTED);
    assert_memory_not_equal(old_id, new_id, 16);
    mesh_domain_keyinfo_t ki;
    mesh_domain_keyinfo(d, &ki);
    assert_int_equal(ki.gen, 1);
    mesh_domain_close_untrimmed(d); /* as a crash leaves it: the log replays */
    char kp[128];
    snprintf(kp, sizeof kp, "%s/key", dir);
    mesh_keyfile_t kf;
    bool other;
    assert_int_equal(mesh_keyfile_load(kp, kek, "domain:factory-a", &kf, &other, &err), MESH_OK);
    assert_int_equal(kf.nkeys, 1); /* the old data key is forgotten */
    assert_int_equal(kf.keys[0].gen, 1);
    assert_memory_equal(kf.keys[0].file_id, new_id, 16);
    mesh_keyfile_clear(&kf);
    assert_int_equal(scan_dir(MARKER), 0);
    d = open_dom(kek);
    assert_int_equal(count_rows(d, "telemetry"), 3000 + jr.acked * 10);
    assert_int_equal(count_rows(d, "ticks"), jt.acked * 10);
    /* and again (generation 2) */
    assert_int_equal(mesh_domain_rekey(d, &res, &err), MESH_OK);
    assert_int_equal(res.gen, 2);
    assert_int_equal(count_rows(d, "telemetry"), 3000 + jr.acked * 10);
    mesh_domain_close(d);
    d = open_dom(kek);
    assert_int_equal(count_rows(d, "ticks"), jt.acked * 10);
    mesh_domain_close(d);
    mesh_kek_free(kek);
}

/* A re-encryption interrupted before its commit point: a "next" key and a partial copy. */
static void test_rekey_interrupted(void **state)
{
    (void)state;
    mesh_kek_t *kek = kek_of(1);
    mesh_domain_t *d = open_dom(kek);
    put(d, c_rows);
    assert_int_equal(write_rows(d, false, "a", 0, 50), MESH_OK);
    mesh_domain_close(d);
    char kp[128], junk[128];
    snprintf(kp, sizeof kp, "%s/key", dir);
    snprintf(junk, sizeof junk, "%s/data.1.db", dir);
    mesh_keyfile_t kf;
    mesh_err_t err;
    assert_int_equal(mesh_keyfile_load(kp, kek, "domain:factory-a", &kf, NULL, &err), MESH_OK);
    kf.nkeys = 2;
    kf.keys[1].gen = 1;
    kf.keys[1].state = MESH_KEY_NEXT;
    assert_int_equal(mesh_key_new(1, &kf.keys[1].key), MESH_OK);
    memcpy(kf.keys[1].file_id, mesh_key_file_id(kf.keys[1].key), 16);
    const mesh_kek_t *keks[] = {kek};
    assert_int_equal(mesh_keyfile_save(kp, &kf, keks, 1, "domain:factory-a", &err), MESH_OK);
    mesh_keyfile_clear(&kf);
    int fd = open(junk, O_WRONLY | O_CREAT, 0600);
    assert_int_equal(write(fd, "partial", 7), 7);
    close(fd);
    d = open_dom(kek);
    assert_int_equal(count_rows(d, "telemetry"), 50);
    mesh_domain_close(d);
    assert_int_not_equal(access(junk, F_OK), 0);
    assert_int_equal(mesh_keyfile_load(kp, kek, "domain:factory-a", &kf, NULL, &err), MESH_OK);
    assert_int_equal(kf.nkeys, 1);
    mesh_keyfile_clear(&kf);
    mesh_kek_free(kek);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nothing_in_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_kek_and_mixing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewrap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rekey_online, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rekey_interrupted, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
