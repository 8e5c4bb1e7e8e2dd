/*
 * test_domain.c - a domain: contracts (created, unchanged, updated, conflict, breaking),
 * writes from several threads at once through the group commit, idempotent writes, close and
 * reopen, replay of the log into a store that is behind it (or new), drop_product rules,
 * checkpoints that trim the log, and the info fields.
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
#include "store/dlog.h"
#include "store/domain.h"
#include "store/group.h"
#include "store/store.h"
#include "store/ts.h"

int main(void);

/* ---- contracts ------------------------------------------------------------------------------ */

#define HEADER(id, version)                                                                        \
    "apiVersion: v3.1.0\n"                                                                         \
    "kind: DataContract\n"                                                                         \
    "id: " id "\n"                                                                                 \
    "version: " version "\n"                                                                       \
    "status: active\n"                                                                             \
    "domain: factory-a\n"

#define TELEMETRY                                                                                  \
    "schema:\n"                                                                                    \
    "  - name: telemetry\n"                                                                        \
    "    customProperties:\n"                                                                      \
    "      - property: timeColumn\n"                                                               \
    "        value: ts\n"                                                                          \
    "    properties:\n"                                                                            \
    "      - name: machine\n"                                                                      \
    "        logicalType: string\n"                                                                \
    "        required: true\n"                                                                     \
    "        primaryKey: true\n"                                                                   \
    "        primaryKeyPosition: 1\n"                                                              \
    "      - name: n\n"                                                                            \
    "        logicalType: integer\n"                                                               \
    "        required: true\n"                                                                     \
    "        primaryKey: true\n"                                                                   \
    "        primaryKeyPosition: 2\n"                                                              \
    "      - name: ts\n"                                                                           \
    "        logicalType: timestamp\n"                                                             \
    "      - name: temp\n"                                                                         \
    "        logicalType: number\n"                                                                \
    "      - name: note\n"                                                                         \
    "        logicalType: string\n"

#define PROP(name, type) "      - name: " name "\n        logicalType: " type "\n"

static const char c_v1[] = HEADER("urn:c:telemetry", "1.0.0") TELEMETRY;
/* an optional column added: not breaking */
static const char c_v11[] = HEADER("urn:c:telemetry", "1.1.0") TELEMETRY PROP("rpm", "integer");
/* the same version with another text */
static const char c_v11_other[] =
    HEADER("urn:c:telemetry", "1.1.0") TELEMETRY PROP("rpm", "number");
/* rpm retyped (breaking) without a new major version */
static const char c_v12_breaking[] =
    HEADER("urn:c:telemetry", "1.2.0") TELEMETRY PROP("rpm", "string");
/* the same with a new major version */
static const char c_v2[] = HEADER("urn:c:telemetry", "2.0.0") TELEMETRY PROP("rpm", "string");
/* a new required column: existing rows do not fit */
static const char c_v3_required[] = HEADER("urn:c:telemetry", "3.0.0") TELEMETRY PROP(
    "rpm", "string") "      - name: site\n        logicalType: string\n        required: true\n";
/* another contract claiming the same product */
static const char c_thief[] = HEADER("urn:c:other", "1.0.0") TELEMETRY;
/* another domain */
static const char c_foreign[] = "apiVersion: v3.1.0\nkind: DataContract\nid: urn:c:x\n"
                                "version: 1.0.0\nstatus: active\ndomain: home-42\n" TELEMETRY;
/* a contract with two products, and one with one */
static const char c_pair[] =
    HEADER("urn:c:pair", "1.0.0") "schema:\n"
                                  "  - name: machines\n"
                                  "    properties:\n" PROP("id", "string") "  - name: lines\n"
                                                                           "    properties:\n" PROP(
                                                                               "id", "string");
static const char c_alarms[] =
    HEADER("urn:c:alarms", "1.0.0") "schema:\n"
                                    "  - name: alarms\n"
                                    "    properties:\n" PROP("id", "integer")
                                        PROP("text", "string");

/* ---- fixture -------------------------------------------------------------------------------- */

static char dir[64];
static int changed_calls;

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
    snprintf(dir, sizeof dir, "/tmp/meshd-test-domain-XXXXXX");
    changed_calls = 0;
    mesh_log_min_level = MESH_LOG_WARN; /* replay notes are expected here */
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void on_changed(void *arg, mesh_domain_t *d)
{
    (void)arg;
    (void)d;
    changed_calls++;
}

static mesh_domain_t *open_dom(const mesh_domain_opts_t *opts)
{
    mesh_domain_t *d = NULL;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_domain_open(dir, "factory-a", opts, on_changed, NULL, &d, &err);
    if (st != MESH_OK)
        print_message("open: %s\n", err.msg);
    assert_int_equal(st, MESH_OK);
    return d;
}

static mesh_status_t put_contract(mesh_domain_t *d, const char *yaml,
                                  mesh_contract_outcome_t *outcome, uint64_t *seq, char *changes,
                                  size_t cap, mesh_err_t *err)
{
    mesh_contract_result_t res;
    mesh_err_clear(err);
    mesh_status_t st = mesh_domain_put_contract(d, yaml, strlen(yaml), &res, err);
    if (outcome)
        *outcome = res.outcome;
    if (seq)
        *seq = res.seq;
    if (changes)
        snprintf(changes, cap, "%s", res.changes.data ? res.changes.data : "");
    mesh_buf_free(&res.changes);
    return st;
}

static uint64_t put_ok(mesh_domain_t *d, const char *yaml, mesh_contract_outcome_t want)
{
    mesh_contract_outcome_t o;
    uint64_t seq;
    mesh_err_t err;
    mesh_status_t st = put_contract(d, yaml, &o, &seq, NULL, 0, &err);
    if (st != MESH_OK)
        print_message("put_contract: %s: %s\n", mesh_status_name(st), err.msg);
    assert_int_equal(st, MESH_OK);
    assert_int_equal(o, want);
    return seq;
}

/* The current definition of a product (with a reference held in *ref). */
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

static size_t ncontracts(mesh_domain_t *d)
{
    mesh_cref_t **v;
    size_t n;
    assert_int_equal(mesh_domain_contracts(d, &v, &n), MESH_OK);
    for (size_t i = 0; i < n; i++)
        mesh_cref_put(v[i]);
    free(v);
    return n;
}

/* A batch of rows machine/n..n+count-1 of telemetry; note of note_len bytes when > 0. */
static void tel_batch(mesh_batch_t *b, const mesh_product_t *p, const char *machine, int64_t n,
                      int count, size_t note_len)
{
    mesh_batch_init(b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    b->precision = MESH_PREC_NS;
    char *note = NULL;
    if (note_len) {
        note = malloc(note_len);
        assert_non_null(note);
        memset(note, 'n', note_len);
    }
    for (int i = 0; i < count; i++) {
        assert_int_equal(mesh_batch_row_begin(b, p, (uint32_t)i + 1), MESH_OK);
        mesh_batch_set_text(b, 0, machine, strlen(machine));
        mesh_batch_set_int(b, 1, n + i);
        mesh_batch_set_int(b, 2, 1795459508000000000LL + n + i);
        mesh_batch_set_real(b, 3, 20.0 + (double)i);
        if (note)
            mesh_batch_set_text(b, 4, note, note_len);
        mesh_batch_row_end(b, "", 0);
    }
    free(note);
    assert_false(mesh_batch_failed(b));
}

static uint64_t write_ok(mesh_domain_t *d, const char *machine, int64_t n, int count,
                         const char *idem)
{
    mesh_cref_t *ref;
    const mesh_product_t *p = product(d, "telemetry", &ref);
    assert_non_null(p);
    mesh_batch_t b;
    tel_batch(&b, p, machine, n, count, 0);
    mesh_apply_result_t res;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_domain_write(d, &b, idem, &res, &err);
    if (st != MESH_OK)
        print_message("write: %s\n", err.msg);
    assert_int_equal(st, MESH_OK);
    mesh_batch_free(&b);
    mesh_cref_put(ref);
    return res.seq;
}

/* Rows of a product through a reader of the domain's store. */
static int count_rows(mesh_domain_t *d, const char *name)
{
    mesh_cref_t *ref;
    const mesh_product_t *p = product(d, name, &ref);
    assert_non_null(p);
    mesh_store_reader_t *r;
    mesh_err_t err;
    assert_int_equal(mesh_store_reader_open(mesh_domain_store(d), &r, &err), MESH_OK);
    mesh_scan_plan_t pl;
    memset(&pl, 0, sizeof pl);
    mesh_store_plan(mesh_domain_store(d), p, false, &pl);
    mesh_scan_t *sc;
    assert_int_equal(mesh_scan_open(r, p, false, &pl, NULL, 0, &sc, &err), MESH_OK);
    int n = 0;
    while (mesh_scan_next(sc) == 1)
        n++;
    mesh_scan_close(sc);
    mesh_store_reader_close(r);
    mesh_cref_put(ref);
    return n;
}

static int count_segments(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/log", dir);
    DIR *dd = opendir(path);
    assert_non_null(dd);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dd)) != NULL)
        if (strstr(e->d_name, ".seg"))
            n++;
    closedir(dd);
    return n;
}

static void remove_db(void)
{
    const char *names[] = {"data.db", "data.db-wal", "data.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        char path[160];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
}

static void copy_file(const char *from, const char *to)
{
    char *data;
    size_t n;
    mesh_err_t err;
    assert_int_equal(mesh_read_file(from, 1 << 30, &data, &n, &err), MESH_OK);
    int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(mesh_write_all(fd, data, n), MESH_OK);
    close(fd);
    free(data);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_open_info(void **state)
{
    (void)state;
    mesh_domain_t *d = open_dom(NULL);
    assert_string_equal(mesh_domain_name(d), "factory-a");
    assert_string_equal(mesh_domain_dir(d), dir);
    assert_non_null(mesh_domain_store(d));
    mesh_domain_info_t info;
    mesh_domain_info(d, &info);
    assert_int_equal(info.log_seq, 0);
    assert_int_equal(info.applied_seq, 0);
    assert_int_equal(info.log_bytes, 0);
    assert_true(info.db_bytes > 0);
    assert_false(info.broken);
    assert_int_equal(ncontracts(d), 0);

    uint64_t s1 = put_ok(d, c_v1, MESH_CONTRACT_CREATED);
    assert_int_equal(s1, 1);
    uint64_t s2 = write_ok(d, "m1", 0, 3, NULL);
    assert_int_equal(s2, 2);
    mesh_domain_info(d, &info);
    assert_int_equal(info.log_seq, 2);
    assert_int_equal(info.applied_seq, 2);
    assert_true(info.log_bytes > 0);
    assert_true(info.wal_bytes > 0);
    mesh_err_t err;
    assert_int_equal(mesh_domain_checkpoint(d, &err), MESH_OK);
    mesh_domain_info(d, &info);
    assert_int_equal(info.wal_bytes, 0);
    assert_int_equal(info.applied_seq, 2);
    /* the store holds every record: the log keeps none of them */
    assert_int_equal(info.log_bytes, 0);
    assert_int_equal(count_segments(), 1); /* an empty one, for the next record */
    mesh_domain_close(d);
    mesh_domain_close(NULL);

    /* after a clean close too; numbering goes on after a reopen */
    d = open_dom(NULL);
    mesh_domain_info(d, &info);
    assert_int_equal(info.log_seq, 2);
    assert_int_equal(info.applied_seq, 2);
    assert_int_equal(info.log_bytes, 0);
    assert_int_equal(write_ok(d, "m1", 10, 1, NULL), 3);
    mesh_domain_close(d);
    assert_int_equal(count_segments(), 1); /* an empty one, for the next record */

    /* a domain directory that cannot be created */
    char bad[128];
    snprintf(bad, sizeof bad, "%s/data.db/sub", dir);
    mesh_domain_t *d2 = NULL;
    mesh_err_clear(&err);
    assert_int_not_equal(mesh_domain_open(bad, "factory-a", NULL, NULL, NULL, &d2, &err), MESH_OK);
    assert_non_null(strstr(err.msg, "factory-a"));
}

static void test_contract_outcomes(void **state)
{
    (void)state;
    mesh_domain_t *d = open_dom(NULL);
    mesh_err_t err;
    mesh_contract_outcome_t o;
    uint64_t seq;
    char changes[2048];

    assert_int_equal(put_contract(d, c_v1, &o, &seq, changes, sizeof changes, &err), MESH_OK);
    assert_int_equal(o, MESH_CONTRACT_CREATED);
    assert_int_equal(seq, 1);
    assert_non_null(strstr(changes, "factory-a.telemetry created"));
    assert_int_equal(changed_calls, 1);

    /* the same text again: unchanged, nothing logged */
    assert_int_equal(put_contract(d, c_v1, &o, &seq, changes, sizeof changes, &err), MESH_OK);
    assert_int_equal(o, MESH_CONTRACT_UNCHANGED);
    mesh_domain_info_t info;
    mesh_domain_info(d, &info);
    assert_int_equal(info.log_seq, 1);
    assert_int_equal(changed_calls, 1);

    write_ok(d, "m1", 0, 5, NULL);

    /* a compatible change */
    assert_int_equal(put_contract(d, c_v11, &o, &seq, changes, sizeof changes, &err), MESH_OK);
    assert_int_equal(o, MESH_CONTRACT_UPDATED);
    assert_int_equal(seq, 3);
    assert_non_null(strstr(changes, "rpm"));
    assert_int_equal(changed_calls, 2);
    assert_int_equal(count_rows(d, "telemetry"), 5);

    /* refusals */
    assert_int_equal(put_contract(d, c_v11_other, &o, NULL, NULL, 0, &err), MESH_CONFLICT);
    assert_non_null(strstr(err.msg, "1.1.0"));
    assert_int_equal(put_contract(d, c_v1, &o, NULL, NULL, 0, &err), MESH_CONFLICT); /* older */
    assert_non_null(strstr(err.msg, "older"));
    assert_int_equal(put_contract(d, c_v12_breaking, &o, NULL, changes, sizeof changes, &err),
                     MESH_BREAKING);
    assert_non_null(strstr(err.msg, "2.0.0"));
    assert_non_null(strstr(changes, "breaking"));
    assert_int_equal(put_contract(d, c_thief, &o, NULL, NULL, 0, &err), MESH_CONFLICT);
    assert_non_null(strstr(err.msg, "urn:c:telemetry"));
    assert_int_equal(put_contract(d, c_foreign, &o, NULL, NULL, 0, &err), MESH_INVALID);
    assert_non_null(strstr(err.msg, "home-42"));
    assert_int_not_equal(put_contract(d, "not: [a contract", &o, NULL, NULL, 0, &err), MESH_OK);
    assert_int_not_equal(put_contract(d, "kind: DataContract\n", &o, NULL, NULL, 0, &err), MESH_OK);
    mesh_domain_info(d, &info);
    assert_int_equal(info.log_seq, 3); /* early refusals never reach the log */
    assert_int_equal(changed_calls, 2);

    /* the breaking change with a new major version rebuilds and keeps the rows */
    assert_int_equal(put_contract(d, c_v2, &o, &seq, changes, sizeof changes, &err), MESH_OK);
    assert_int_equal(o, MESH_CONTRACT_UPDATED);
    assert_int_equal(count_rows(d, "telemetry"), 5);
    assert_int_equal(changed_calls, 3);

    /* a new required column that the rows lack: refused when applied, nothing changes */
    mesh_domain_info(d, &info);
    uint64_t before = info.log_seq;
    assert_int_equal(put_contract(d, c_v3_required, &o, NULL, NULL, 0, &err), MESH_BREAKING);
    assert_non_null(strstr(err.msg, "do not fit"));
    mesh_cref_t *ref;
    const mesh_product_t *p = product(d, "telemetry", &ref);
    assert_string_equal(p->contract->version, "2.0.0");
    mesh_cref_put(ref);
    assert_int_equal(count_rows(d, "telemetry"), 5);
    mesh_domain_info(d, &info);
    assert_int_equal(info.log_seq, before + 1); /* logged, refused on apply */
    assert_int_equal(info.applied_seq, before + 1);
    write_ok(d, "m2", 0, 1, NULL);
    assert_int_equal(count_rows(d, "telemetry"), 6);

    /* a second contract in the same domain */
    put_ok(d, c_alarms, MESH_CONTRACT_CREATED);
    assert_int_equal(ncontracts(d), 2);
    mesh_domain_close_untrimmed(d); /* as if killed: the log keeps it all */

    /* all of it after a reopen, and the refused record is refused again if replayed */
    d = open_dom(NULL);
    assert_int_equal(ncontracts(d), 2);
    p = product(d, "telemetry", &ref);
    assert_string_equal(p->contract->version, "2.0.0");
    mesh_cref_put(ref);
    assert_int_equal(count_rows(d, "telemetry"), 6);
    mesh_domain_close_untrimmed(d); /* as if killed: the log keeps it all */
    remove_db();
    d = open_dom(NULL);
    assert_int_equal(ncontracts(d), 2);
    p = product(d, "telemetry", &ref);
    assert_string_equal(p->contract->version, "2.0.0");
    mesh_cref_put(ref);
    assert_int_equal(count_rows(d, "telemetry"), 6);
    mesh_domain_close(d);
}

/* ---- writers on several threads ------------------------------------------------------------- */

#define NTHREADS 4
#define NBATCH   200

typedef struct wjob {
    mesh_domain_t *d;
    int id;
    uint64_t seqs[NBATCH];
    int failures;
    char why[256];
} wjob_t;

static void *writer(void *arg)
{
    wjob_t *j = arg;
    char machine[16];
    snprintf(machine, sizeof machine, "t%d", j->id);
    for (int i = 0; i < NBATCH; i++) {
        mesh_cref_t *ref;
        const mesh_product_t *p = product(j->d, "telemetry", &ref);
        mesh_batch_t b;
        tel_batch(&b, p, machine, (int64_t)i * 2, 2, 0);
        mesh_apply_result_t res;
        mesh_err_t err;
        char idem[64];
        snprintf(idem, sizeof idem, "w%d-%d", j->id, i);
        mesh_status_t st = mesh_domain_write(j->d, &b, i % 3 ? NULL : idem, &res, &err);
        if (st != MESH_OK || res.rows != 2 || res.duplicate) {
            j->failures++;
            snprintf(j->why, sizeof j->why, "%s: %s", mesh_status_name(st), err.msg);
        }
        j->seqs[i] = res.seq;
        mesh_batch_free(&b);
        mesh_cref_put(ref);
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_concurrent_writers(void **state)
{
    (void)state;
    mesh_domain_t *d = open_dom(NULL);
    put_ok(d, c_v1, MESH_CONTRACT_CREATED);
    static wjob_t jobs[NTHREADS];
    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        memset(&jobs[t], 0, sizeof jobs[t]);
        jobs[t].d = d;
        jobs[t].id = t;
        assert_int_equal(pthread_create(&th[t], NULL, writer, &jobs[t]), 0);
    }
    /* a reader and a checkpointer at the same time */
    for (int k = 0; k < 20; k++) {
        mesh_err_t err;
        assert_int_equal(mesh_domain_checkpoint(d, &err), MESH_OK);
        count_rows(d, "telemetry");
        mesh_domain_info_t info;
        mesh_domain_info(d, &info);
        assert_true(info.applied_seq <= info.log_seq);
    }
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);

    static uint64_t all[NTHREADS * NBATCH];
    size_t n = 0;
    for (int t = 0; t < NTHREADS; t++) {
        if (jobs[t].failures)
            print_message("thread %d: %d failures, last %s\n", t, jobs[t].failures, jobs[t].why);
        assert_int_equal(jobs[t].failures, 0);
        for (int i = 0; i < NBATCH; i++) {
            if (i > 0)
                assert_true(jobs[t].seqs[i] > jobs[t].seqs[i - 1]); /* increasing per writer */
            all[n++] = jobs[t].seqs[i];
        }
    }
    qsort(all, n, sizeof all[0], cmp_u64);
    for (size_t i = 1; i < n; i++)
        assert_true(all[i] != all[i - 1]); /* unique */
    assert_true(all[0] >= 2);
    assert_int_equal(all[n - 1], 1 + NTHREADS * NBATCH); /* no gaps: seqs 2..801 */

    /* every row once */
    int want = NTHREADS * NBATCH * 2;
    assert_int_equal(count_rows(d, "telemetry"), want);
    mesh_product_stats_t st;
    assert_int_equal(mesh_store_product_stats(mesh_domain_store(d), "telemetry", &st), MESH_OK);
    assert_int_equal(st.rows, want);
    mesh_cref_t *ref;
    const mesh_product_t *p = product(d, "telemetry", &ref);
    mesh_store_reader_t *r;
    mesh_err_t err;
    assert_int_equal(mesh_store_reader_open(mesh_domain_store(d), &r, &err), MESH_OK);
    static unsigned char seen[NTHREADS][NBATCH * 2];
    memset(seen, 0, sizeof seen);
    mesh_scan_plan_t pl;
    memset(&pl, 0, sizeof pl);
    pl.cols_used = 3;
    mesh_store_plan(mesh_domain_store(d), p, false, &pl);
    mesh_scan_t *sc;
    assert_int_equal(mesh_scan_open(r, p, false, &pl, NULL, 0, &sc, &err), MESH_OK);
    while (mesh_scan_next(sc) == 1) {
        mesh_datum_t m, k;
        mesh_scan_value(sc, 0, &m);
        mesh_scan_value(sc, 1, &k);
        int t = m.s[1] - '0';
        assert_true(t >= 0 && t < NTHREADS && k.i >= 0 && k.i < NBATCH * 2);
        seen[t][k.i]++;
    }
    mesh_scan_close(sc);
    mesh_store_reader_close(r);
    mesh_cref_put(ref);
    for (int t = 0; t < NTHREADS; t++)
        for (int i = 0; i < NBATCH * 2; i++)
            assert_int_equal(seen[t][i], 1);
    mesh_domain_info_t info;
    mesh_domain_info(d, &info);
    assert_int_equal(info.log_seq, 1 + NTHREADS * NBATCH);
    assert_int_equal(info.applied_seq, info.log_seq);
    mesh_domain_close(d);

    /* reopen: all back */
    d = open_dom(NULL);
    assert_int_equal(count_rows(d, "telemetry"), want);
    mesh_domain_close(d);
}

static void test_idempotent_write(void **state)
{
    (void)state;
    mesh_domain_t *d = open_dom(NULL);
    put_ok(d, c_v1, MESH_CONTRACT_CREATED);
    uint64_t s = write_ok(d, "m1", 0, 2, "req-1");
    mesh_cref_t *ref;
    const mesh_product_t *p = product(d, "telemetry", &ref);
    mesh_batch_t b;
    tel_batch(&b, p, "m1", 100, 3, 0);
    mesh_apply_result_t res;
    mesh_err_t err;
    assert_int_equal(mesh_domain_write(d, &b, "req-1", &res, &err), MESH_OK);
    assert_true(res.duplicate);
    assert_int_equal(res.seq, s);
    assert_int_equal(res.rows, 2);
    assert_int_equal(count_rows(d, "telemetry"), 2);
    mesh_domain_close_untrimmed(d); /* as if killed: the log keeps it all */
    /* still a duplicate after a reopen, and after a replay into a new store */
    d = open_dom(NULL);
    assert_int_equal(mesh_domain_write(d, &b, "req-1", &res, &err), MESH_OK);
    assert_true(res.duplicate);
    mesh_domain_close_untrimmed(d); /* as if killed: the log keeps it all */
    remove_db();
    d = open_dom(NULL);
    assert_int_equal(mesh_domain_write(d, &b, "req-1", &res, &err), MESH_OK);
    assert_true(res.duplicate);
    assert_int_equal(res.seq, s);
    assert_int_equal(count_rows(d, "telemetry"), 2);
    mesh_batch_free(&b);
    mesh_cref_put(ref);

    /* keys are forgotten at a checkpoint once older than the TTL */
    mesh_domain_close(d);
    mesh_domain_opts_t o = {.idem_ttl_ns = 1};
    d = open_dom(&o);
    p = product(d, "telemetry", &ref);
    assert_int_equal(mesh_domain_checkpoint(d, &err), MESH_OK);
    tel_batch(&b, p, "m1", 100, 3, 0);
    assert_int_equal(mesh_domain_write(d, &b, "req-1", &res, &err), MESH_OK);
    assert_false(res.duplicate);
    assert_int_equal(count_rows(d, "telemetry"), 5);
    mesh_batch_free(&b);
    mesh_cref_put(ref);
    mesh_domain_close(d);
}

static void test_refused_write(void **state)
{
    (void)state;
    static const char uniq[] = HEADER("urn:c:u", "1.0.0") "schema:\n"
                                                          "  - name: tags\n"
                                                          "    properties:\n"
                                                          "      - name: tag\n"
                                                          "        logicalType: string\n"
                                                          "        unique: true\n";
    mesh_domain_t *d = open_dom(NULL);
    put_ok(d, uniq, MESH_CONTRACT_CREATED);
    mesh_cref_t *ref;
    const mesh_product_t *p = product(d, "tags", &ref);
    mesh_batch_t b;
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    mesh_batch_row_begin(&b, p, 1);
    mesh_batch_set_text(&b, 0, "a", 1);
    mesh_batch_row_end(&b, "", 0);
    mesh_apply_result_t res;
    mesh_err_t err;
    assert_int_equal(mesh_domain_write(d, &b, NULL, &res, &err), MESH_OK);
    mesh_err_clear(&err);
    assert_int_equal(mesh_domain_write(d, &b, NULL, &res, &err), MESH_CONFLICT);
    assert_true(strlen(err.msg) > 0);
    assert_int_equal(count_rows(d, "tags"), 1);
    mesh_domain_info_t info;
    mesh_domain_info(d, &info);
    assert_int_equal(info.log_seq, 3); /* the refused record is in the log, without effect */
    assert_int_equal(info.applied_seq, 3);
    assert_false(info.broken);
    mesh_batch_free(&b);
    mesh_cref_put(ref);
    mesh_domain_close_untrimmed(d); /* as if killed: the log keeps it all */
    /* replayed into a new store: refused the same way */
    remove_db();
    d = open_dom(NULL);
    assert_int_equal(count_rows(d, "tags"), 1);
    mesh_domain_close(d);
}

/* ---- replay --------------------------------------------------------------------------------- */

static void test_replay_into_new_store(void **state)
{
    (void)state;
    mesh_domain_t *d = open_dom(NULL);
    put_ok(d, c_v1, MESH_CONTRACT_CREATED);
    for (int i = 0; i < 30; i++)
        write_ok(d, "m1", i * 10, 10, NULL);
    put_ok(d, c_v11, MESH_CONTRACT_UPDATED);
    put_ok(d, c_alarms, MESH_CONTRACT_CREATED);
    write_ok(d, "m2", 0, 1, NULL);
    mesh_domain_close_untrimmed(d); /* as if killed: the log keeps it all */

    /* the database is lost; the log alone rebuilds contracts and rows */
    remove_db();
    d = open_dom(NULL);
    assert_int_equal(ncontracts(d), 2);
    mesh_cref_t *ref;
    const mesh_product_t *p = product(d, "telemetry", &ref);
    assert_string_equal(p->contract->version, "1.1.0");
    assert_true(mesh_product_col(p, "rpm", 3) >= 0);
    mesh_cref_put(ref);
    assert_int_equal(count_rows(d, "telemetry"), 301);
    mesh_domain_info_t info;
    mesh_domain_info(d, &info);
    assert_int_equal(info.applied_seq, 34);
    assert_int_equal(info.log_seq, 34);
    /* and writes continue after it */
    assert_int_equal(write_ok(d, "m3", 0, 1, NULL), 35);
    mesh_domain_close(d);
}

static void test_replay_store_behind(void **state)
{
    (void)state;
    /* a store that committed less than the log holds (as after a crash between the log's
     * sync and the store's commit): the records after it are replayed at open */
    mesh_domain_t *d = open_dom(NULL);
    put_ok(d, c_v1, MESH_CONTRACT_CREATED);
    for (int i = 0; i < 5; i++)
        write_ok(d, "m1", i * 10, 10, NULL);
    mesh_domain_close(d);
    char db[160], saved[160];
    snprintf(db, sizeof db, "%s/data.db", dir);
    snprintf(saved, sizeof saved, "%s/saved.db", dir);
    copy_file(db, saved); /* applied_seq 6 */

    d = open_dom(NULL);
    for (int i = 5; i < 10; i++)
        write_ok(d, "m1", i * 10, 10, NULL);
    put_ok(d, c_v11, MESH_CONTRACT_UPDATED);
    write_ok(d, "m1", 100, 1, NULL);
    mesh_domain_close_untrimmed(d); /* as if killed: the log keeps it all */

    remove_db();
    copy_file(saved, db);
    unlink(saved);
    d = open_dom(NULL);
    mesh_domain_info_t info;
    mesh_domain_info(d, &info);
    assert_int_equal(info.applied_seq, 13);
    assert_int_equal(count_rows(d, "telemetry"), 101);
    mesh_cref_t *ref;
    const mesh_product_t *p = product(d, "telemetry", &ref);
    assert_string_equal(p->contract->version, "1.1.0");
    mesh_cref_put(ref);
    mesh_domain_close(d);
}

/* A time series keyed by (machine, ts): rows live in memory between flushes. */
static const char c_ticks[] =
    HEADER("urn:c:ticks", "1.0.0") "schema:\n"
                                   "  - name: ticks\n"
                                   "    properties:\n"
                                   "      - name: machine\n"
                                   "        logicalType: string\n"
                                   "        primaryKey: true\n"
                                   "        primaryKeyPosition: 1\n"
                                   "      - name: ts\n"
                                   "        logicalType: timestamp\n"
                                   "        primaryKey: true\n"
                                   "        primaryKeyPosition: 2\n" PROP("v", "number");

/* Writes count rows of ticks for machine m at base + first .. base + first + count - 1 ns,
 * value first + i + bias, with an idempotency key when idem is not NULL. */
static bool write_ticks_v(mesh_domain_t *d, int64_t first, int count, double bias, const char *idem)
{
    mesh_cref_t *ref;
    const mesh_product_t *p = product(d, "ticks", &ref);
    assert_non_null(p);
    mesh_batch_t b;
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    b.precision = MESH_PREC_NS;
    for (int i = 0; i < count; i++) {
        assert_int_equal(mesh_batch_row_begin(&b, p, (uint32_t)i + 1), MESH_OK);
        mesh_batch_set_text(&b, 0, "m", 1);
        mesh_batch_set_int(&b, 1, 1795459508000000000LL + first + i);
        mesh_batch_set_real(&b, 2, (double)(first + i) + bias);
        mesh_batch_row_end(&b, "", 0);
    }
    assert_false(mesh_batch_failed(&b));
    mesh_apply_result_t res;
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(mesh_domain_write(d, &b, idem, &res, &err), MESH_OK);
    mesh_batch_free(&b);
    mesh_cref_put(ref);
    return res.duplicate;
}

static void write_ticks(mesh_domain_t *d, int64_t first, int count)
{
    write_ticks_v(d, first, count, 0, NULL);
}

/* Sum of column v of ticks, and its row count in *rows. */
static double sum_ticks(mesh_domain_t *d, int *rows)
{
    mesh_cref_t *ref;
    const mesh_product_t *p = product(d, "ticks", &ref);
    assert_non_null(p);
    mesh_store_reader_t *r;
    mesh_err_t err;
    assert_int_equal(mesh_store_reader_open(mesh_domain_store(d), &r, &err), MESH_OK);
    mesh_scan_plan_t pl;
    memset(&pl, 0, sizeof pl);
    pl.cols_used = 7;
    mesh_store_plan(mesh_domain_store(d), p, false, &pl);
    mesh_scan_t *sc;
    assert_int_equal(mesh_scan_open(r, p, false, &pl, NULL, 0, &sc, &err), MESH_OK);
    double sum = 0;
    *rows = 0;
    while (mesh_scan_next(sc) == 1) {
        mesh_datum_t v;
        mesh_scan_value(sc, 2, &v);
        sum += v.d;
        (*rows)++;
    }
    mesh_scan_close(sc);
    mesh_store_reader_close(r);
    mesh_cref_put(ref);
    return sum;
}

static void test_replay_skips_duplicate_batches(void **state)
{
    (void)state;
    /* A retried batch (the same idempotency key) is logged and changes nothing. A replay of
     * the records the store holds must not buffer its rows again: a retry with other values
     * would overwrite the first, and the rows counted twice kept the log from being trimmed
     * at a clean stop. */
    mesh_domain_t *d = open_dom(NULL);
    put_ok(d, c_ticks, MESH_CONTRACT_CREATED);
    assert_false(write_ticks_v(d, 0, 100, 0, "k1"));
    assert_true(write_ticks_v(d, 0, 100, 1000, "k1"));
    int rows;
    double want = sum_ticks(d, &rows);
    assert_int_equal(rows, 100);
    assert_true(want == 4950.0);
    mesh_domain_close_untrimmed(d); /* as if killed: the log keeps it all */

    d = open_dom(NULL);
    assert_true(sum_ticks(d, &rows) == want);
    assert_int_equal(rows, 100);
    /* a clean stop writes every buffer out: nothing is left to replay */
    mesh_domain_close(d);
    d = open_dom(NULL);
    mesh_domain_info_t info;
    mesh_domain_info(d, &info);
    assert_int_equal(mesh_store_replay_from(mesh_domain_store(d)), info.applied_seq);
    assert_true(sum_ticks(d, &rows) == want);
    mesh_domain_close(d);
}

static void test_replay_rows_older_than_a_flush_in_their_group(void **state)
{
    (void)state;
    /* A full buffer is flushed at the start of the next group, in that group's transaction.
     * Rows of that group older than what the flush writes out, but newer than the chunks
     * before it, must come back after a crash: the first write fills the buffer, the second
     * (a few rows older than all of the first) runs in the group that flushes it. */
    mesh_domain_t *d = open_dom(NULL);
    put_ok(d, c_ticks, MESH_CONTRACT_CREATED);
    write_ticks(d, 1000, MESH_TS_CHUNK_ROWS + 10);
    write_ticks(d, 1, 5);
    assert_int_equal(count_rows(d, "ticks"), MESH_TS_CHUNK_ROWS + 15);
    mesh_domain_close_untrimmed(d); /* as if killed: the log keeps it all */

    d = open_dom(NULL);
    assert_int_equal(count_rows(d, "ticks"), MESH_TS_CHUNK_ROWS + 15);
    /* and once more after a clean close, which writes every buffer out */
    write_ticks(d, 500, 3);
    mesh_domain_close(d);
    d = open_dom(NULL);
    assert_int_equal(count_rows(d, "ticks"), MESH_TS_CHUNK_ROWS + 18);
    mesh_domain_close(d);
}

/* An erasure key of ticks: machine "m", time base + t. */
static void tick_key(mesh_buf_t *b, int64_t t)
{
    mesh_datum_t m = {.type = MESH_V_TEXT, .s = "m", .n = 1};
    mesh_datum_t ts = {.type = MESH_V_INT, .i = 1795459508000000000LL + t};
    assert_int_equal(mesh_store_key_add(b, &m), MESH_OK);
    assert_int_equal(mesh_store_key_add(b, &ts), MESH_OK);
}

static void test_dispose_time_series(void **state)
{
    (void)state;
    /* rows in chunks and in the buffer; erasure by key, retention in bounded batches; all of
     * it survives a crash (replay) and a late row after every chunk went */
    mesh_domain_t *d = open_dom(NULL);
    put_ok(d, c_ticks, MESH_CONTRACT_CREATED);
    write_ticks(d, 0, 3000);
    write_ticks(d, 3000, 20); /* still buffered */
    mesh_buf_t keys;
    mesh_buf_init(&keys, 1 << 20);
    tick_key(&keys, 10);
    tick_key(&keys, 1500);
    tick_key(&keys, 3010);
    tick_key(&keys, 99999); /* not there */
    int64_t deleted = 0;
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(mesh_domain_dispose(d, "ticks", 'e', 0, 0, (const uint8_t *)keys.data,
                                         keys.len, 4, &deleted, NULL, &err),
                     MESH_OK);
    assert_int_equal(deleted, 3);
    assert_int_equal(count_rows(d, "ticks"), 3017);
    write_ticks(d, 3020, 5); /* buffered after the erasure */
    /* retention: rows before base + 1000, at most 100 rows a record (whole chunks) */
    int64_t total = 0;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(mesh_domain_dispose(d, "ticks", 'r', 1795459508000000000LL + 1000, 100,
                                             NULL, 0, 0, &deleted, NULL, &err),
                         MESH_OK);
        total += deleted;
        if (deleted < 100)
            break;
    }
    assert_int_equal(total, 999);
    assert_int_equal(count_rows(d, "ticks"), 2023);
    mesh_domain_close_untrimmed(d); /* as if killed: the log keeps it all */

    d = open_dom(NULL);
    assert_int_equal(count_rows(d, "ticks"), 2023);
    /* everything expires; then a row older than the (deleted) chunks arrives */
    assert_int_equal(mesh_domain_dispose(d, "ticks", 'r', 1795459508000000000LL + 100000, 0, NULL,
                                         0, 0, &deleted, NULL, &err),
                     MESH_OK);
    assert_int_equal(deleted, 2023);
    assert_int_equal(count_rows(d, "ticks"), 0);
    write_ticks(d, 1, 1);
    assert_int_equal(count_rows(d, "ticks"), 1);
    mesh_domain_close_untrimmed(d);
    d = open_dom(NULL);
    assert_int_equal(count_rows(d, "ticks"), 1);
    mesh_domain_close(d);
    mesh_buf_free(&keys);
}

/* ---- drop ----------------------------------------------------------------------------------- */

static void test_drop_product(void **state)
{
    (void)state;
    mesh_domain_t *d = open_dom(NULL);
    put_ok(d, c_v1, MESH_CONTRACT_CREATED);
    put_ok(d, c_pair, MESH_CONTRACT_CREATED);
    write_ok(d, "m1", 0, 4, NULL);
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(mesh_domain_drop_product(d, "nope", &err), MESH_NOT_FOUND);
    assert_non_null(strstr(err.msg, "nope"));
    /* one product of a contract with two: refused */
    mesh_err_clear(&err);
    assert_int_equal(mesh_domain_drop_product(d, "machines", &err), MESH_CONFLICT);
    assert_non_null(strstr(err.msg, "urn:c:pair"));
    /* the only product of its contract: dropped with its rows and its contract */
    int calls = changed_calls;
    assert_int_equal(mesh_domain_drop_product(d, "telemetry", &err), MESH_OK);
    assert_int_equal(changed_calls, calls + 1);
    assert_int_equal(ncontracts(d), 1);
    mesh_cref_t *ref;
    assert_null(product(d, "telemetry", &ref));
    mesh_product_stats_t st;
    assert_int_equal(mesh_store_product_stats(mesh_domain_store(d), "telemetry", &st),
                     MESH_NOT_FOUND);
    assert_int_equal(mesh_domain_drop_product(d, "telemetry", &err), MESH_NOT_FOUND);
    mesh_domain_close_untrimmed(d); /* as if killed: the log keeps it all */

    /* it stays dropped after a reopen */
    d = open_dom(NULL);
    assert_int_equal(ncontracts(d), 1);
    assert_null(product(d, "telemetry", &ref));
    /* and can be created again, empty */
    put_ok(d, c_v1, MESH_CONTRACT_CREATED);
    assert_int_equal(count_rows(d, "telemetry"), 0);
    write_ok(d, "m9", 0, 1, NULL);
    assert_int_equal(count_rows(d, "telemetry"), 1);
    mesh_domain_close_untrimmed(d); /* as if killed: the log keeps it all */

    /* and the log replays the same story into a new store */
    remove_db();
    d = open_dom(NULL);
    assert_int_equal(ncontracts(d), 2);
    assert_int_equal(count_rows(d, "telemetry"), 1);
    mesh_domain_close(d);
}

/* ---- checkpoints and the log ---------------------------------------------------------------- */

/* A bit more than one log segment (64 MiB) of large rows of telemetry: the batches written. */
static int write_past_segment(mesh_domain_t *d)
{
    mesh_cref_t *ref;
    const mesh_product_t *p = product(d, "telemetry", &ref);
    size_t note = 900 * 1024;
    int batches = (int)((MESH_DLOG_SEGMENT_SIZE / note) + 4);
    for (int i = 0; i < batches; i++) {
        mesh_batch_t b;
        tel_batch(&b, p, "big", i, 1, note);
        mesh_apply_result_t res;
        mesh_err_t err;
        assert_int_equal(mesh_domain_write(d, &b, NULL, &res, &err), MESH_OK);
        mesh_batch_free(&b);
    }
    mesh_cref_put(ref);
    return batches;
}

static void test_checkpoint_trims_log(void **state)
{
    (void)state;
    mesh_domain_t *d = open_dom(NULL);
    put_ok(d, c_v1, MESH_CONTRACT_CREATED);
    int batches = write_past_segment(d);
    assert_int_equal(count_segments(), 2);
    mesh_cref_t *ref;
    const mesh_product_t *p = product(d, "telemetry", &ref);

    /* a query holding a snapshot from before the last write keeps that write out of the
     * database file: the checkpoint says so, does not wait, and keeps the log */
    mesh_store_reader_t *r;
    mesh_err_t err;
    assert_int_equal(mesh_store_reader_open(mesh_domain_store(d), &r, &err), MESH_OK);
    assert_int_equal(mesh_store_reader_begin(r, &err), MESH_OK);
    mesh_scan_plan_t pl;
    memset(&pl, 0, sizeof pl);
    pl.cols_used = 1;
    mesh_store_plan(mesh_domain_store(d), p, false, &pl);
    mesh_scan_t *sc;
    assert_int_equal(mesh_scan_open(r, p, false, &pl, NULL, 0, &sc, &err), MESH_OK);
    assert_int_equal(mesh_scan_next(sc), 1);
    mesh_scan_close(sc);
    mesh_cref_put(ref);
    write_ok(d, "small", 0, 1, NULL);
    int64_t t0 = mesh_mono_ns();
    assert_int_equal(mesh_domain_checkpoint(d, &err), MESH_BUSY);
    /* waiting would take the store's busy timeout (10 s): far less means it did not wait */
    assert_true(mesh_mono_ns() - t0 < 8 * MESH_NS_PER_SEC);
    assert_int_equal(count_segments(), 2);
    /* writes go on meanwhile */
    write_ok(d, "small", 1, 1, NULL);
    mesh_store_reader_end(r);
    mesh_store_reader_close(r);
    batches += 2;

    mesh_domain_info_t before, after;
    mesh_domain_info(d, &before);
    assert_true(before.log_bytes > MESH_DLOG_SEGMENT_SIZE);
    assert_int_equal(mesh_domain_checkpoint(d, &err), MESH_OK);
    mesh_domain_info(d, &after);
    assert_int_equal(count_segments(), 1);
    assert_true(after.log_bytes < before.log_bytes);
    assert_true(after.log_bytes < MESH_DLOG_SEGMENT_SIZE);
    assert_int_equal(after.log_seq, before.log_seq);
    assert_int_equal(after.applied_seq, before.log_seq);
    assert_int_equal(after.wal_bytes, 0);
    assert_int_equal(count_rows(d, "telemetry"), batches);
    mesh_domain_close(d);

    /* reopen after the trim: all there */
    d = open_dom(NULL);
    assert_int_equal(count_rows(d, "telemetry"), batches);
    mesh_domain_close(d);

    /* a new store cannot be rebuilt from a trimmed log: open says so instead of silently
     * rebuilding only the tail */
    remove_db();
    mesh_domain_t *d2 = NULL;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_domain_open(dir, "factory-a", NULL, NULL, NULL, &d2, &err);
    if (st == MESH_OK) {
        print_message("opened with %d rows of %d\n", count_rows(d2, "telemetry"), batches);
        mesh_domain_close(d2);
    }
    assert_int_equal(st, MESH_CORRUPT);
    assert_non_null(strstr(err.msg, "missing"));
}

/* ---- async replication: the outbox and origin chains ---- */

static mesh_status_t no_publish(void *arg, const char *domain, const uint8_t *p, size_t n,
                                const char *idem, uint64_t *sseq, bool *duplicate, mesh_err_t *err)
{
    (void)arg, (void)domain, (void)p, (void)n, (void)idem, (void)sseq, (void)duplicate;
    return mesh_err_set(err, MESH_UNAVAILABLE, "no stream in this test");
}

/* An async origin in DIR/sub: the contract, and a replicator that only takes writes (the
 * tests read its outbox themselves). */
static mesh_domain_t *open_origin(const char *sub)
{
    static const mesh_replicator_t rp = {.publish = no_publish, .async = true};
    char odir[96];
    snprintf(odir, sizeof odir, "%s/%s", dir, sub);
    mesh_domain_t *o = NULL;
    mesh_err_t err;
    assert_int_equal(mesh_domain_open(odir, "factory-a", NULL, NULL, NULL, &o, &err), MESH_OK);
    put_ok(o, c_v1, MESH_CONTRACT_CREATED);
    mesh_domain_set_replicator(o, &rp);
    return o;
}

static void apply_rec(mesh_domain_t *d, uint64_t sseq, const mesh_outbox_rec_t *r, bool want)
{
    bool applied = false;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st =
        mesh_domain_apply_stream(d, sseq, (const uint8_t *)r->msg.data, r->msg.len, &applied, &err);
    if (st != MESH_OK)
        print_message("apply_stream: %s\n", err.msg);
    assert_int_equal(st, MESH_OK);
    assert_true(applied); /* logged with its sequence either way */
    (void)want;
}

static void test_async_origin_chain(void **state)
{
    (void)state;
    /* the origin: an async domain whose batches are written locally */
    char odir[96];
    snprintf(odir, sizeof odir, "%s/origin", dir);
    mesh_domain_t *o = NULL;
    mesh_err_t err;
    assert_int_equal(mesh_domain_open(odir, "factory-a", NULL, NULL, NULL, &o, &err), MESH_OK);
    put_ok(o, c_v1, MESH_CONTRACT_CREATED);
    mesh_replicator_t rp = {.publish = no_publish, .async = true};
    mesh_domain_set_replicator(o, &rp);
    uint64_t s1 = write_ok(o, "m1", 0, 2, NULL);
    uint64_t s2 = write_ok(o, "m2", 0, 3, NULL);
    uint64_t s3 = write_ok(o, "m3", 0, 4, NULL);
    mesh_outbox_rec_t *v;
    size_t n;
    uint64_t origin;
    assert_int_equal(mesh_domain_outbox_read(o, 16, 1 << 20, 0, &v, &n, &origin, &err), MESH_OK);
    assert_int_equal(n, 3);
    assert_true(origin != 0);
    assert_int_equal(v[0].seq, s1);
    assert_int_equal(v[2].seq, s3);
    uint64_t pub, last;
    mesh_domain_outbox_pos(o, &pub, &last);
    assert_int_equal(pub, 0);
    assert_int_equal(last, s3);

    /* a replica: the third before the others (a run whose second record failed) is skipped,
     * then the chain applies in order, and a copy published again is skipped */
    mesh_domain_t *d = open_dom(NULL);
    put_ok(d, c_v1, MESH_CONTRACT_CREATED);
    apply_rec(d, 1, &v[2], false);
    assert_int_equal(count_rows(d, "telemetry"), 0);
    apply_rec(d, 2, &v[0], true);
    apply_rec(d, 3, &v[1], true);
    apply_rec(d, 4, &v[2], true);
    assert_int_equal(count_rows(d, "telemetry"), 9);
    apply_rec(d, 5, &v[0], false);
    apply_rec(d, 6, &v[2], false);
    assert_int_equal(count_rows(d, "telemetry"), 9);
    assert_int_equal(mesh_domain_stream_seq(d), 6);
    /* killed and replayed from its log into a new store: the same decisions */
    mesh_domain_close_untrimmed(d);
    remove_db();
    d = open_dom(NULL);
    assert_int_equal(count_rows(d, "telemetry"), 9);
    /* skipped records are not logged: the position may be older, and they come again */
    assert_true(mesh_domain_stream_seq(d) >= 4);
    apply_rec(d, 5, &v[0], false);
    apply_rec(d, 6, &v[2], false);
    apply_rec(d, 7, &v[1], false);
    assert_int_equal(count_rows(d, "telemetry"), 9);
    mesh_domain_close(d);

    /* the origin's own records coming back are not applied twice */
    apply_rec(o, 1, &v[0], false);
    apply_rec(o, 2, &v[1], false);
    assert_int_equal(count_rows(o, "telemetry"), 9);
    /* published: nothing more to read, and the position survives a restart */
    assert_int_equal(mesh_domain_outbox_published(o, s3, &err), MESH_OK);
    mesh_domain_outbox_free(v, n);
    mesh_domain_close_untrimmed(o);
    assert_int_equal(mesh_domain_open(odir, "factory-a", NULL, NULL, NULL, &o, &err), MESH_OK);
    assert_int_equal(mesh_domain_outbox_read(o, 16, 1 << 20, 0, &v, &n, &origin, &err), MESH_OK);
    assert_int_equal(n, 0);
    mesh_domain_outbox_free(v, n);
    mesh_domain_outbox_pos(o, &pub, &last);
    assert_int_equal(pub, s3);
    assert_int_equal(last, s3);
    (void)s2;
    mesh_domain_close(o);
}

/* Applies stream records v[0..n) at first, first + 1, ... in one call. */
static mesh_status_t apply_msgs(mesh_domain_t *d, uint64_t first, const mesh_buf_t *const *v,
                                size_t n, size_t *done)
{
    uint64_t seqs[8];
    const uint8_t *ps[8];
    size_t ns[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        seqs[i] = first + i;
        ps[i] = (const uint8_t *)v[i]->data;
        ns[i] = v[i]->len;
    }
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_domain_apply_stream_many(d, seqs, ps, ns, NULL, n, done, &err);
    if (st != MESH_OK)
        print_message("apply_stream_many: %s\n", err.msg);
    return st;
}

static mesh_status_t apply_own(mesh_domain_t *d, uint64_t first, const mesh_outbox_rec_t *v,
                               size_t n)
{
    const mesh_buf_t *msgs[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++)
        msgs[i] = &v[i].msg;
    size_t done = 0;
    mesh_status_t st = apply_msgs(d, first, msgs, n, &done);
    assert_int_equal(done, st == MESH_OK ? n : done);
    return st;
}

/* The origin's own records coming back (decision 0035): skipped without a log record or a
 * transaction, the position and their fingerprints stored with the next transaction; killed
 * before it, the node gets them again and skips them again. */
static void test_async_own_skipped(void **state)
{
    (void)state;
    char odir[96];
    snprintf(odir, sizeof odir, "%s/own", dir);
    mesh_domain_t *o = NULL;
    mesh_err_t err;
    assert_int_equal(mesh_domain_open(odir, "factory-a", NULL, NULL, NULL, &o, &err), MESH_OK);
    put_ok(o, c_v1, MESH_CONTRACT_CREATED);
    mesh_replicator_t rp = {.publish = no_publish, .async = true};
    mesh_domain_set_replicator(o, &rp);
    write_ok(o, "m1", 0, 2, NULL);
    write_ok(o, "m2", 0, 3, NULL);
    write_ok(o, "m3", 0, 4, NULL);
    mesh_outbox_rec_t *v;
    size_t n;
    uint64_t origin;
    assert_int_equal(mesh_domain_outbox_read(o, 16, 1 << 20, 0, &v, &n, &origin, &err), MESH_OK);
    assert_int_equal(n, 3);

    mesh_domain_info_t before, after;
    mesh_domain_info(o, &before);
    assert_int_equal(apply_own(o, 1, v, 3), MESH_OK);
    mesh_domain_info(o, &after);
    assert_int_equal(after.log_seq, before.log_seq); /* nothing logged */
    assert_int_equal(mesh_domain_stream_seq(o), 3);
    assert_int_equal(count_rows(o, "telemetry"), 9);
    uint64_t fp = 0;
    assert_int_equal(mesh_domain_stream_fp(o, 2, &fp), 1); /* known before it is stored */
    assert_true(fp == mesh_fp64(v[1].msg.data, v[1].msg.len));
    /* delivered again (a fetch that overlaps): nothing */
    assert_int_equal(apply_own(o, 2, v + 1, 2), MESH_OK);
    assert_int_equal(mesh_domain_stream_seq(o), 3);

    /* killed before any transaction stored them: they come again and are skipped again */
    mesh_domain_close_untrimmed(o);
    assert_int_equal(mesh_domain_open(odir, "factory-a", NULL, NULL, NULL, &o, &err), MESH_OK);
    mesh_domain_set_replicator(o, &rp);
    assert_int_equal(mesh_domain_stream_seq(o), 0);
    assert_int_equal(mesh_domain_stream_fp(o, 2, &fp), 0);
    assert_int_equal(apply_own(o, 1, v, 3), MESH_OK);
    assert_int_equal(count_rows(o, "telemetry"), 9);
    assert_int_equal(mesh_domain_stream_seq(o), 3);

    /* the next write's transaction stores them: they survive a kill */
    write_ok(o, "m4", 0, 1, NULL);
    mesh_domain_close_untrimmed(o);
    assert_int_equal(mesh_domain_open(odir, "factory-a", NULL, NULL, NULL, &o, &err), MESH_OK);
    mesh_domain_set_replicator(o, &rp);
    assert_int_equal(mesh_domain_stream_seq(o), 3);
    assert_int_equal(mesh_domain_stream_fp(o, 3, &fp), 1);
    assert_true(fp == mesh_fp64(v[2].msg.data, v[2].msg.len));
    assert_int_equal(count_rows(o, "telemetry"), 10);

    /* a checkpoint stores them too; a rewind forgets the ones after it (they come again) */
    assert_int_equal(apply_own(o, 4, v, 2), MESH_OK);
    assert_int_equal(mesh_domain_stream_seq(o), 5);
    assert_int_equal(mesh_domain_stream_rewind(o, 4, &err), MESH_OK);
    assert_int_equal(mesh_domain_stream_seq(o), 4);
    assert_int_equal(mesh_domain_stream_fp(o, 5, &fp), 0);
    assert_int_equal(mesh_domain_checkpoint(o, &err), MESH_OK);
    mesh_domain_close_untrimmed(o);
    assert_int_equal(mesh_domain_open(odir, "factory-a", NULL, NULL, NULL, &o, &err), MESH_OK);
    assert_int_equal(mesh_domain_stream_seq(o), 4);
    assert_int_equal(count_rows(o, "telemetry"), 10);
    mesh_domain_outbox_free(v, n);
    mesh_domain_close(o);
}

/* A group of origin records (decision 0040) made by hand from lone records v[i] (i in which). */
static void make_group(mesh_buf_t *g, const mesh_outbox_rec_t *v, const int *which, size_t n)
{
    mesh_buf_init(g, MESH_BUF_UNLIMITED);
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(mesh_group_add(g, &count, (const uint8_t *)v[which[i]].msg.data, 25,
                                        (const uint8_t *)v[which[i]].msg.data + 25,
                                        v[which[i]].msg.len - 25),
                         MESH_OK);
    assert_int_equal(count, n);
}

/* Async batches in groups (decision 0040): the outbox groups consecutive batches; a replica
 * applies each batch of a group once, whatever the grouping of the copies it gets, stores the
 * group's sequence and fingerprint with its last batch (also when replayed from its log), and
 * refuses a malformed group whole. */
static void test_async_groups(void **state)
{
    (void)state;
    mesh_domain_t *o = open_origin("grouped");
    mesh_err_t err;
    uint64_t s[5];
    for (int i = 0; i < 5; i++) {
        char m[8];
        snprintf(m, sizeof m, "m%d", i + 1);
        s[i] = write_ok(o, m, 0, 2 + i, NULL); /* 2 + 3 + 4 + 5 + 6 = 20 rows */
    }
    /* alone (group_bytes 0), in one group, and in groups of about two */
    mesh_outbox_rec_t *lone, *one, *two;
    size_t nlone, none, ntwo;
    uint64_t origin;
    assert_int_equal(mesh_domain_outbox_read(o, 16, 1 << 20, 0, &lone, &nlone, &origin, &err),
                     MESH_OK);
    assert_int_equal(nlone, 5);
    assert_int_equal(
        mesh_domain_outbox_read(o, 16, 1 << 20, MESH_GROUP_BYTES, &one, &none, &origin, &err),
        MESH_OK);
    assert_int_equal(none, 1);
    assert_int_equal(one[0].batches, 5);
    assert_int_equal(one[0].seq, s[4]);
    assert_int_equal(one[0].msg.data[0], MESH_GROUP_KIND);
    size_t pair = lone[0].msg.len + lone[1].msg.len + MESH_GROUP_HDR + 8;
    assert_int_equal(mesh_domain_outbox_read(o, 16, 1 << 20, pair, &two, &ntwo, &origin, &err),
                     MESH_OK);
    assert_true(ntwo > 2 && ntwo < 5);
    assert_int_equal(two[0].batches, 2);
    size_t batches = 0;
    for (size_t i = 0; i < ntwo; i++) {
        batches += two[i].batches;
        assert_true(two[i].msg.len <= pair || two[i].batches == 1);
    }
    assert_int_equal(batches, 5);
    assert_int_equal(two[ntwo - 1].seq, s[4]);
    mesh_group_rec_t gv[MESH_GROUP_MAX];
    size_t gn = 0;
    assert_int_equal(
        mesh_group_split((const uint8_t *)one[0].msg.data, one[0].msg.len, gv, &gn, &err), MESH_OK);
    assert_int_equal(gn, 5);
    for (size_t i = 0; i < gn; i++) /* each record as it travels alone */
        assert_true(gv[i].n == lone[i].msg.len && memcmp(gv[i].p, lone[i].msg.data, gv[i].n) == 0);
    assert_true(mesh_group_origin((const uint8_t *)one[0].msg.data, one[0].msg.len) == origin);

    /* a replica: the group applies its 5 batches, and its sequence and fingerprint are stored */
    mesh_domain_t *d = open_dom(NULL);
    put_ok(d, c_v1, MESH_CONTRACT_CREATED);
    const mesh_buf_t *m1[] = {&one[0].msg};
    size_t done = 0;
    assert_int_equal(apply_msgs(d, 1, m1, 1, &done), MESH_OK);
    assert_int_equal(done, 1);
    assert_int_equal(count_rows(d, "telemetry"), 20);
    assert_int_equal(mesh_domain_stream_seq(d), 1);
    uint64_t fp = 0, gfp = mesh_fp64(one[0].msg.data, one[0].msg.len);
    assert_int_equal(mesh_domain_stream_fp(d, 1, &fp), 1);
    assert_true(fp == gfp);
    /* copies grouped otherwise, and alone: skipped by the chain */
    const mesh_buf_t *m2[] = {&two[0].msg, &two[1].msg, &two[2].msg, &lone[3].msg};
    assert_int_equal(apply_msgs(d, 2, m2, 4, &done), MESH_OK);
    assert_int_equal(done, 4);
    assert_int_equal(count_rows(d, "telemetry"), 20);
    assert_int_equal(mesh_domain_stream_seq(d), 5);
    /* killed and replayed from its log into a new store: the same rows, and the group's
     * fingerprint stored at its sequence (the log records of its batches carry it) */
    mesh_domain_close_untrimmed(d);
    remove_db();
    d = open_dom(NULL);
    assert_int_equal(count_rows(d, "telemetry"), 20);
    assert_true(mesh_domain_stream_seq(d) >= 1);
    assert_int_equal(mesh_domain_stream_fp(d, 1, &fp), 1);
    assert_true(fp == gfp);
    mesh_domain_close(d);

    /* another replica that has the first two batches: a group of all five applies the other
     * three; a group with a gap (m1, m3) applies m1 only, and m3 once m2 came */
    char rdir[96];
    snprintf(rdir, sizeof rdir, "%s/grouped-replica", dir);
    assert_int_equal(mesh_domain_open(rdir, "factory-a", NULL, NULL, NULL, &d, &err), MESH_OK);
    put_ok(d, c_v1, MESH_CONTRACT_CREATED);
    mesh_buf_t gap;
    make_group(&gap, lone, (const int[]){0, 2}, 2);
    const mesh_buf_t *m3[] = {&gap, &lone[1].msg, &two[1].msg};
    assert_int_equal(apply_msgs(d, 1, m3, 3, &done), MESH_OK);
    assert_int_equal(count_rows(d, "telemetry"), 2 + 3 + 4);
    const mesh_buf_t *m4[] = {&one[0].msg};
    assert_int_equal(apply_msgs(d, 4, m4, 1, &done), MESH_OK);
    assert_int_equal(count_rows(d, "telemetry"), 20);
    assert_int_equal(mesh_domain_stream_seq(d), 4);

    /* malformed groups are refused whole: nothing applied, the position unchanged */
    mesh_buf_t bad[5];
    make_group(&bad[0], lone, (const int[]){3, 4}, 2);
    bad[0].data[1] = 0; /* count 0 */
    bad[0].data[2] = 0;
    make_group(&bad[1], lone, (const int[]){3, 4}, 2);
    mesh_buf_addc(&bad[1], 0); /* a byte after its records */
    make_group(&bad[2], lone, (const int[]){3, 4}, 2);
    bad[2].data[MESH_GROUP_HDR + 4 + lone[3].msg.len + 4 + 1] ^= 1; /* another origin */
    make_group(&bad[3], lone, (const int[]){3, 4}, 2);
    bad[3].data[MESH_GROUP_HDR + 4] = 'B'; /* not an origin record */
    make_group(&bad[4], lone, (const int[]){3, 4}, 2);
    bad[4].len -= 3; /* cut short */
    for (int i = 0; i < 5; i++) {
        const mesh_buf_t *mb[] = {&bad[i]};
        assert_int_equal(apply_msgs(d, 5, mb, 1, &done), MESH_CORRUPT);
        assert_int_equal(done, 0);
        assert_int_equal(mesh_domain_stream_seq(d), 4);
        mesh_buf_free(&bad[i]);
    }
    assert_int_equal(count_rows(d, "telemetry"), 20);
    mesh_buf_free(&gap);
    mesh_domain_close(d);

    /* the origin's own group coming back: skipped without a log record */
    mesh_domain_info_t before, after;
    mesh_domain_info(o, &before);
    assert_int_equal(apply_msgs(o, 1, m1, 1, &done), MESH_OK);
    mesh_domain_info(o, &after);
    assert_int_equal(after.log_seq, before.log_seq);
    assert_int_equal(mesh_domain_stream_seq(o), 1);
    assert_int_equal(count_rows(o, "telemetry"), 20);
    mesh_domain_outbox_free(lone, nlone);
    mesh_domain_outbox_free(one, none);
    mesh_domain_outbox_free(two, ntwo);
    mesh_domain_close(o);
}

/* A group cut by a crash in the replica's log (its last record torn before the commit): the
 * replay applies the batches before the cut and leaves the stream position before the group;
 * the group delivered again applies only the rest, and stores the group's fingerprint. */
static void test_async_group_cut_by_crash(void **state)
{
    (void)state;
    mesh_domain_t *o = open_origin("cut-origin");
    mesh_err_t err;
    for (int i = 0; i < 3; i++) {
        char m[8];
        snprintf(m, sizeof m, "m%d", i + 1);
        write_ok(o, m, 0, 2 + i, NULL); /* 2 + 3 + 4 rows */
    }
    mesh_outbox_rec_t *one;
    size_t none;
    uint64_t origin;
    assert_int_equal(
        mesh_domain_outbox_read(o, 16, 1 << 20, MESH_GROUP_BYTES, &one, &none, &origin, &err),
        MESH_OK);
    assert_int_equal(none, 1);
    assert_int_equal(one[0].batches, 3);

    mesh_domain_t *d = open_dom(NULL);
    put_ok(d, c_v1, MESH_CONTRACT_CREATED);
    mesh_domain_close(d);
    char db[160], saved[160];
    snprintf(db, sizeof db, "%s/data.db", dir);
    snprintf(saved, sizeof saved, "%s/saved.db", dir);
    copy_file(db, saved);
    d = open_dom(NULL);
    const mesh_buf_t *m1[] = {&one[0].msg};
    size_t done = 0;
    assert_int_equal(apply_msgs(d, 1, m1, 1, &done), MESH_OK);
    assert_int_equal(count_rows(d, "telemetry"), 9);
    mesh_domain_close_untrimmed(d);
    /* the store as before the group, the log's last record (the group's last part) torn */
    remove_db();
    copy_file(saved, db);
    unlink(saved);
    char seg[256] = "";
    {
        char ld[160];
        snprintf(ld, sizeof ld, "%s/log", dir);
        DIR *dd = opendir(ld);
        struct dirent *e;
        while ((e = readdir(dd)) != NULL)
            if (strstr(e->d_name, ".seg") && strcmp(e->d_name, seg) > 0)
                snprintf(seg, sizeof seg, "%s", e->d_name);
        closedir(dd);
        char path[512];
        snprintf(path, sizeof path, "%s/%s", ld, seg);
        struct stat sb;
        assert_int_equal(stat(path, &sb), 0);
        assert_int_equal(truncate(path, sb.st_size - 3), 0);
    }
    d = open_dom(NULL); /* replays the group's first two batches */
    assert_int_equal(mesh_domain_stream_seq(d), 0);
    assert_int_equal(count_rows(d, "telemetry"), 5);
    /* delivered again: only the third batch is new */
    assert_int_equal(apply_msgs(d, 1, m1, 1, &done), MESH_OK);
    assert_int_equal(done, 1);
    assert_int_equal(count_rows(d, "telemetry"), 9);
    assert_int_equal(mesh_domain_stream_seq(d), 1);
    uint64_t fp = 0;
    assert_int_equal(mesh_domain_stream_fp(d, 1, &fp), 1);
    assert_true(fp == mesh_fp64(one[0].msg.data, one[0].msg.len));
    mesh_domain_close_untrimmed(d);
    d = open_dom(NULL); /* time series rows replayed into memory once */
    assert_int_equal(count_rows(d, "telemetry"), 9);
    mesh_domain_close(d);
    d = open_dom(NULL);
    assert_int_equal(count_rows(d, "telemetry"), 9);
    mesh_domain_close(d);
    mesh_domain_outbox_free(one, none);
    mesh_domain_close(o);
}

/* A stream record skipped before it was logged (a duplicate by its origin chain, here a group
 * or a lone record delivered again) must not move the position replay starts from: it was
 * stored as 0, and a replica killed after the log's start was trimmed then could not reopen
 * ("records 1..N are missing"). */
static void skipped_keeps_replay_start(const char *sub, size_t group_bytes)
{
    mesh_domain_t *o = open_origin(sub);
    mesh_err_t err;
    write_ok(o, "m1", 0, 2, NULL);
    write_ok(o, "m2", 0, 2, NULL);
    mesh_outbox_rec_t *one;
    size_t none;
    uint64_t origin;
    assert_int_equal(
        mesh_domain_outbox_read(o, 16, 1 << 20, group_bytes, &one, &none, &origin, &err), MESH_OK);
    mesh_domain_t *d = open_dom(NULL);
    put_ok(d, c_v1, MESH_CONTRACT_CREATED);
    /* local batches past a log segment, and a checkpoint: the log's start is trimmed */
    write_past_segment(d);
    assert_int_equal(mesh_domain_checkpoint(d, &err), MESH_OK);
    assert_int_equal(count_segments(), 1);
    const mesh_buf_t *m1[] = {&one[0].msg};
    size_t done = 0;
    assert_int_equal(apply_msgs(d, 1, m1, 1, &done), MESH_OK);
    uint64_t clean = mesh_store_rules_clean(mesh_domain_store(d));
    assert_true(clean > 0);
    assert_int_equal(apply_msgs(d, 2, m1, 1, &done), MESH_OK); /* the same again: skipped */
    assert_true(mesh_store_rules_clean(mesh_domain_store(d)) >= clean);
    mesh_domain_close_untrimmed(d); /* killed */
    mesh_domain_t *d2 = NULL;
    mesh_status_t st = mesh_domain_open(dir, "factory-a", NULL, NULL, NULL, &d2, &err);
    if (st != MESH_OK)
        print_message("reopen: %s\n", err.msg);
    assert_int_equal(st, MESH_OK);
    mesh_domain_close(d2);
    mesh_domain_outbox_free(one, none);
    mesh_domain_close(o);
}

static void test_skipped_group_keeps_replay_start(void **state)
{
    (void)state;
    skipped_keeps_replay_start("skip-group", MESH_GROUP_BYTES);
}

static void test_skipped_lone_keeps_replay_start(void **state)
{
    (void)state;
    skipped_keeps_replay_start("skip-lone", 0);
}

/* A copy of an async origin (a snapshot bootstrap's, decision 0033) taken while its outbox was
 * behind: it records the origin's own chain position, so the node that installs it skips the
 * origin's records it holds, which reach the stream after the copy, and applies the later ones
 * (even though their chain's previous record is one the copy holds, not the position). */
static void test_async_copy_chain(void **state)
{
    (void)state;
    char cdir[96], cdb[128];
    snprintf(cdir, sizeof cdir, "%s/copy", dir);
    snprintf(cdb, sizeof cdb, "%s/data.db", cdir);
    assert_int_equal(mkdir(cdir, 0700), 0);
    mesh_domain_t *o = open_origin("origin2");
    mesh_err_t err;
    write_ok(o, "m1", 0, 1, NULL);
    uint64_t s2 = write_ok(o, "m2", 0, 2, NULL);
    mesh_outbox_rec_t *v;
    size_t n;
    uint64_t origin;
    assert_int_equal(mesh_domain_outbox_read(o, 16, 1 << 20, 0, &v, &n, &origin, &err), MESH_OK);
    assert_int_equal(n, 2);
    assert_int_equal(mesh_domain_outbox_published(o, s2, &err), MESH_OK);
    mesh_domain_outbox_free(v, n);
    /* m3 and m4 unpublished when the copy is taken, m5 written after it */
    write_ok(o, "m3", 0, 4, NULL);
    write_ok(o, "m4", 0, 8, NULL);
    uint64_t applied = 0, sseq = 0;
    mesh_cref_t **crefs;
    size_t ncrefs;
    assert_int_equal(
        mesh_domain_backup_copy(o, cdb, &applied, &sseq, &crefs, &ncrefs, NULL, NULL, &err),
        MESH_OK);
    for (size_t i = 0; i < ncrefs; i++)
        mesh_cref_put(crefs[i]);
    free(crefs);
    write_ok(o, "m5", 0, 16, NULL);
    assert_int_equal(mesh_domain_outbox_read(o, 16, 1 << 20, 0, &v, &n, &origin, &err), MESH_OK);
    assert_int_equal(n, 3); /* m3, m4, m5: the chain goes on from m2 */

    /* the copy made another node's own, as node/bootstrap.c does */
    mesh_store_opts_t so = {.sync_full = true};
    mesh_store_t *st = NULL;
    assert_int_equal(mesh_store_open(cdb, &so, &st, &err), MESH_OK);
    assert_int_equal(mesh_store_meta_put(st, "repl_origin", 0, &err), MESH_OK);
    assert_int_equal(mesh_store_meta_put(st, "repl_outbox", 0, &err), MESH_OK);
    mesh_store_close(st);
    mesh_domain_t *c = NULL;
    assert_int_equal(mesh_domain_open(cdir, "factory-a", NULL, NULL, NULL, &c, &err), MESH_OK);
    assert_int_equal(count_rows(c, "telemetry"), 15);
    apply_rec(c, 10, &v[0], false); /* m3: in the copy */
    apply_rec(c, 11, &v[1], false); /* m4: in the copy */
    assert_int_equal(count_rows(c, "telemetry"), 15);
    apply_rec(c, 12, &v[2], true); /* m5: after it */
    assert_int_equal(count_rows(c, "telemetry"), 31);
    apply_rec(c, 13, &v[1], false); /* published again: still once */
    apply_rec(c, 14, &v[2], false);
    assert_int_equal(count_rows(c, "telemetry"), 31);
    mesh_domain_outbox_free(v, n);
    mesh_domain_close(c);
    mesh_domain_close(o);
}

/* ---- sync replication: stream records by id, divergence, moving back ---- */

/* A batch of count alarms (a product without a key: every batch applied adds its rows) as
 * the stream carries it ('B' and the encoded batch). */
static void batch_rec(mesh_domain_t *d, const char *text, int count, const char *idem,
                      mesh_buf_t *out)
{
    mesh_cref_t *ref;
    const mesh_product_t *p = product(d, "alarms", &ref);
    assert_non_null(p);
    mesh_batch_t b;
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    for (int i = 0; i < count; i++) {
        assert_int_equal(mesh_batch_row_begin(&b, p, (uint32_t)i + 1), MESH_OK);
        mesh_batch_set_int(&b, 0, i);
        mesh_batch_set_text(&b, 1, text, strlen(text));
        mesh_batch_row_end(&b, "", 0);
    }
    assert_false(mesh_batch_failed(&b));
    mesh_buf_init(out, MESH_DLOG_MAX_RECORD);
    assert_int_equal(mesh_buf_addc(out, 'B'), MESH_OK);
    assert_int_equal(mesh_batch_encode(&b, idem, out), MESH_OK);
    mesh_batch_free(&b);
    mesh_cref_put(ref);
}

static void apply_many(mesh_domain_t *d, uint64_t first, const mesh_buf_t *const *recs,
                       const char *const *ids, size_t n)
{
    uint64_t seqs[8];
    const uint8_t *ps[8];
    size_t ns[8];
    for (size_t i = 0; i < n; i++) {
        seqs[i] = first + i;
        ps[i] = (const uint8_t *)recs[i]->data;
        ns[i] = recs[i]->len;
    }
    size_t done = 0;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_domain_apply_stream_many(d, seqs, ps, ns, ids, n, &done, &err);
    if (st != MESH_OK)
        print_message("apply_stream_many: %s\n", err.msg);
    assert_int_equal(st, MESH_OK);
    assert_int_equal(done, n);
}

static void assert_fp(mesh_domain_t *d, uint64_t sseq, const mesh_buf_t *rec)
{
    uint64_t fp = 0;
    assert_int_equal(mesh_domain_stream_fp(d, sseq, &fp), 1);
    assert_true(fp == mesh_fp64(rec->data, rec->len));
}

/* A replica that applied records the stream does not hold (delivered from a server whose copy
 * lost after a partition) moves back and applies the stream's records: a record it applied
 * before, now at another sequence, is not applied twice (its message id), one it had not is
 * applied, and what it applied at each sequence is the stream's afterwards. */
static void test_stream_rewind_by_id(void **state)
{
    (void)state;
    mesh_domain_t *d = open_dom(NULL);
    put_ok(d, c_alarms, MESH_CONTRACT_CREATED);
    mesh_buf_t m1, m2, m3, m4;
    batch_rec(d, "m1", 2, NULL, &m1);
    batch_rec(d, "m2", 3, NULL, &m2);
    batch_rec(d, "m3", 4, NULL, &m3);
    batch_rec(d, "m4", 5, "key-4", &m4);
    /* this replica's view: m1 at 1, m2 at 2 (the stream's: m3 at 2, m2 at 3) */
    const mesh_buf_t *mine[] = {&m1, &m2};
    const char *mine_ids[] = {"n1:a", "n1:b"};
    apply_many(d, 1, mine, mine_ids, 2);
    assert_int_equal(count_rows(d, "alarms"), 5);
    assert_int_equal(mesh_domain_stream_seq(d), 2);
    assert_fp(d, 2, &m2);
    uint64_t fp = 0;
    assert_int_equal(mesh_domain_stream_fp(d, 3, &fp), 0);

    mesh_err_t err;
    assert_int_equal(mesh_domain_stream_rewind(d, 1, &err), MESH_OK);
    assert_int_equal(mesh_domain_stream_seq(d), 1);
    /* the stream's records from 2: m3 (new here), m2 (applied here at 2 before), m4 twice
     * (published again with the same key after the duplicate window) */
    const mesh_buf_t *theirs[] = {&m3, &m2, &m4, &m4};
    const char *their_ids[] = {"n2:c", "n1:b", "k:key-4", "k:key-4"};
    apply_many(d, 2, theirs, their_ids, 4);
    assert_int_equal(count_rows(d, "alarms"), 2 + 3 + 4 + 5);
    assert_int_equal(mesh_domain_stream_seq(d), 5);
    assert_fp(d, 2, &m3);
    assert_fp(d, 3, &m2);
    assert_fp(d, 5, &m4);
    /* moving "back" to a later position changes nothing */
    assert_int_equal(mesh_domain_stream_rewind(d, 9, &err), MESH_OK);
    assert_int_equal(mesh_domain_stream_seq(d), 5);

    /* the same bytes under another id are another write: applied */
    const mesh_buf_t *again[] = {&m1};
    const char *again_ids[] = {"n3:z"};
    apply_many(d, 6, again, again_ids, 1);
    assert_int_equal(count_rows(d, "alarms"), 2 + 3 + 4 + 5 + 2);

    /* a restart keeps the position and what was applied where */
    mesh_domain_close(d);
    d = open_dom(NULL);
    assert_int_equal(mesh_domain_stream_seq(d), 6);
    assert_fp(d, 2, &m3);
    assert_int_equal(count_rows(d, "alarms"), 16);
    /* records delivered again after the restart (the consumer is transport only) */
    apply_many(d, 2, theirs, their_ids, 4);
    assert_int_equal(count_rows(d, "alarms"), 16);
    mesh_domain_close(d);
    mesh_buf_free(&m1);
    mesh_buf_free(&m2);
    mesh_buf_free(&m3);
    mesh_buf_free(&m4);
}

/* A domain that becomes async after its log was trimmed (it was local or sync before): the
 * outbox starts at the log's first record, and the chain at 0. */
static void test_async_after_trim(void **state)
{
    (void)state;
    mesh_domain_t *d = open_dom(NULL);
    put_ok(d, c_v1, MESH_CONTRACT_CREATED);
    write_ok(d, "m1", 0, 2, NULL);
    write_ok(d, "m2", 0, 2, NULL);
    mesh_err_t err;
    assert_int_equal(mesh_domain_checkpoint(d, &err), MESH_OK);
    write_ok(d, "m3", 0, 2, NULL);
    assert_int_equal(mesh_domain_checkpoint(d, &err), MESH_OK); /* m1..m3 trimmed */
    mesh_replicator_t rp = {.publish = no_publish, .async = true};
    mesh_domain_set_replicator(d, &rp);
    uint64_t s4 = write_ok(d, "m4", 0, 3, NULL);
    mesh_outbox_rec_t *v;
    size_t n;
    uint64_t origin;
    assert_int_equal(mesh_domain_outbox_read(d, 16, 1 << 20, 0, &v, &n, &origin, &err), MESH_OK);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].seq, s4);
    const uint8_t *p = (const uint8_t *)v[0].msg.data;
    uint64_t prev = 0;
    for (int k = 7; k >= 0; k--)
        prev = prev << 8 | p[17 + k];
    assert_int_equal(prev, 0);
    mesh_domain_outbox_free(v, n);
    mesh_domain_close(d);
}

/* ---- derived products defined by SQL: 'F' refresh records (node/derived.c) ---------------- */

static const char c_hot[] =
    HEADER("urn:c:hot", "1.0.0") "schema:\n"
                                 "  - name: hot\n"
                                 "    customProperties:\n"
                                 "      - property: derivation\n"
                                 "        value:\n"
                                 "          sql: SELECT machine, ts, v FROM \"factory-a\".ticks\n"
                                 "          definer: t\n"
                                 "    properties:\n" PROP("machine", "string")
                                     PROP("ts", "timestamp") PROP("v", "number");

/* Replaces (since < 0: all of) hot's rows with rows at times ts[0..n). */
static mesh_status_t refresh_hot(mesh_domain_t *d, int64_t since, const int64_t *ts, int n,
                                 int64_t *rows, mesh_err_t *err)
{
    mesh_cref_t *ref;
    const mesh_product_t *p = product(d, "hot", &ref);
    assert_non_null(p);
    mesh_batch_t b;
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    b.precision = MESH_PREC_NS;
    for (int i = 0; i < n; i++) {
        assert_int_equal(mesh_batch_row_begin(&b, p, (uint32_t)i + 1), MESH_OK);
        mesh_batch_set_text(&b, 0, "m", 1);
        mesh_batch_set_int(&b, 1, ts[i]);
        mesh_batch_set_real(&b, 2, (double)ts[i] / 2);
        mesh_batch_row_end(&b, NULL, 0);
    }
    assert_false(mesh_batch_failed(&b));
    mesh_err_clear(err);
    mesh_status_t st =
        mesh_domain_refresh(d, "hot", since < 0 ? NULL : "ts", since, &b, rows, NULL, err);
    mesh_batch_free(&b);
    mesh_cref_put(ref);
    return st;
}

static void test_refresh_records(void **state)
{
    (void)state;
    mesh_domain_t *d = open_dom(NULL);
    put_ok(d, c_ticks, MESH_CONTRACT_CREATED);
    put_ok(d, c_hot, MESH_CONTRACT_CREATED);
    mesh_err_t err;
    int64_t rows = 0;
    const int64_t all[] = {1, 2, 3}, late[] = {2, 5};
    assert_int_equal(refresh_hot(d, -1, all, 3, &rows, &err), MESH_OK);
    assert_int_equal(rows, 3);
    assert_int_equal(count_rows(d, "hot"), 3);
    /* a full refresh replaces everything, an incremental one the rows from its mark */
    assert_int_equal(refresh_hot(d, -1, all, 2, &rows, &err), MESH_OK);
    assert_int_equal(count_rows(d, "hot"), 2);
    assert_int_equal(refresh_hot(d, -1, all, 3, &rows, &err), MESH_OK);
    assert_int_equal(refresh_hot(d, 2, late, 2, &rows, &err), MESH_OK);
    assert_int_equal(rows, 2);
    assert_int_equal(count_rows(d, "hot"), 3); /* 1, 2, 5 */
    /* only SQL-derived products are refreshed */
    mesh_err_clear(&err);
    mesh_batch_t b;
    mesh_batch_init(&b, "factory-a", MESH_BATCH_DEFAULT_LIMITS);
    assert_int_equal(mesh_domain_refresh(d, "ticks", NULL, 0, &b, &rows, NULL, &err),
                     MESH_NOT_FOUND);
    mesh_batch_free(&b);
    /* watchers of a time series: the smallest time written since they last asked */
    int64_t min_t = 0;
    assert_true(mesh_domain_watch(d, "ticks", "factory-a.hot"));
    assert_false(mesh_domain_written(d, "ticks", "factory-a.hot", &min_t));
    write_ticks(d, 100, 5);
    write_ticks(d, 50, 2);
    assert_true(mesh_domain_written(d, "ticks", "factory-a.hot", &min_t));
    assert_int_equal(min_t, 1795459508000000000LL + 50);
    assert_false(mesh_domain_written(d, "ticks", "factory-a.hot", &min_t));
    mesh_buf_t keys;
    mesh_buf_init(&keys, 1 << 16);
    tick_key(&keys, 100);
    int64_t deleted = 0;
    assert_int_equal(mesh_domain_dispose(d, "ticks", 'e', 0, 0, (const uint8_t *)keys.data,
                                         keys.len, 1, &deleted, NULL, &err),
                     MESH_OK);
    mesh_buf_free(&keys);
    assert_true(mesh_domain_written(d, "ticks", "factory-a.hot", &min_t));
    assert_true(min_t == INT64_MIN);
    mesh_domain_close_untrimmed(d); /* as if killed: the log keeps it all */

    /* replay reaches the same content, also into a new store */
    d = open_dom(NULL);
    assert_int_equal(count_rows(d, "hot"), 3);
    mesh_domain_close_untrimmed(d);
    remove_db();
    d = open_dom(NULL);
    assert_int_equal(count_rows(d, "hot"), 3);
    mesh_domain_close(d);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_open_info),
        T(test_contract_outcomes),
        T(test_concurrent_writers),
        T(test_idempotent_write),
        T(test_refused_write),
        T(test_replay_into_new_store),
        T(test_replay_store_behind),
        T(test_drop_product),
        T(test_checkpoint_trims_log),
        T(test_replay_rows_older_than_a_flush_in_their_group),
        T(test_async_origin_chain),
        T(test_async_own_skipped),
        T(test_async_groups),
        T(test_async_group_cut_by_crash),
        T(test_skipped_group_keeps_replay_start),
        T(test_skipped_lone_keeps_replay_start),
        T(test_async_copy_chain),
        T(test_stream_rewind_by_id),
        T(test_async_after_trim),
        T(test_dispose_time_series),
        T(test_replay_skips_duplicate_batches),
        T(test_refresh_records),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
