/*
 * test_dlog.c - the domain log: append/sync/replay order, reopen, torn tails cut at open,
 * corruption in a non-last segment, segment rotation and trim, mark/rewind (also across a
 * rotation), a first_seq ahead of the log, and the limits.
 *
 * The rotation tests write a little more than MESH_DLOG_SEGMENT_SIZE (64 MiB) in a few large
 * records into a temporary directory, which is removed afterwards.
 */
#define _GNU_SOURCE
#include <dirent.h>
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

#include "core/util.h"
#include "store/dlog.h"

int main(void);

#define REC_HEADER 20
#define BIG        (17u << 20) /* four of these pass one segment */

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
    snprintf(dir, sizeof dir, "/tmp/meshd-test-dlog-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static mesh_dlog_t *open_log(uint64_t first_seq)
{
    mesh_dlog_t *log = NULL;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_dlog_open(dir, first_seq, &log, &err);
    if (st != MESH_OK)
        print_message("open: %s\n", err.msg);
    assert_int_equal(st, MESH_OK);
    assert_non_null(log);
    return log;
}

/* The payload of record seq in these tests: deterministic bytes of a deterministic length. */
static size_t payload_len(uint64_t seq)
{
    return (size_t)(seq * 37 % 200);
}

static void fill_payload(uint64_t seq, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seq * 131 + i * 7);
}

static uint64_t append(mesh_dlog_t *log, const void *p, size_t n)
{
    uint64_t seq = 0;
    mesh_err_t err;
    mesh_status_t st = mesh_dlog_append(log, p, n, &seq, &err);
    if (st != MESH_OK)
        print_message("append: %s\n", err.msg);
    assert_int_equal(st, MESH_OK);
    return seq;
}

static uint64_t append_std(mesh_dlog_t *log, uint64_t expect)
{
    uint8_t buf[256];
    size_t n = payload_len(expect);
    fill_payload(expect, buf, n);
    uint64_t seq = append(log, buf, n);
    assert_int_equal(seq, expect);
    return seq;
}

/* What a replay saw. */
typedef struct seen {
    uint64_t seqs[4096];
    size_t n;
    int check_std; /* payloads are the standard ones */
    uint64_t stop_at;
    uint64_t first_byte[4096];
    size_t lens[4096];
} seen_t;

static mesh_status_t collect(void *arg, uint64_t seq, const uint8_t *p, size_t n)
{
    seen_t *s = arg;
    if (s->stop_at && seq == s->stop_at)
        return MESH_CONFLICT;
    if (s->n < 4096) {
        s->seqs[s->n] = seq;
        s->lens[s->n] = n;
        s->first_byte[s->n] = n ? p[0] : 0xffff;
        s->n++;
    }
    if (s->check_std) {
        uint8_t want[256];
        if (n != payload_len(seq))
            return MESH_INTERNAL;
        fill_payload(seq, want, n);
        if (memcmp(want, p, n) != 0)
            return MESH_INTERNAL;
    }
    return MESH_OK;
}

static seen_t *replay_ok(mesh_dlog_t *log, uint64_t after, int check_std)
{
    seen_t *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->check_std = check_std;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_dlog_replay(log, after, collect, s, &err);
    if (st != MESH_OK)
        print_message("replay: %s\n", err.msg);
    assert_int_equal(st, MESH_OK);
    for (size_t i = 1; i < s->n; i++)
        assert_int_equal(s->seqs[i], s->seqs[i - 1] + 1);
    return s;
}

static void seg_path(uint64_t first, char *out, size_t n)
{
    snprintf(out, n, "%s/%020llu.seg", dir, (unsigned long long)first);
}

static off_t file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    return st.st_size;
}

static int count_segments(void)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strlen(e->d_name) == 24 && strcmp(e->d_name + 20, ".seg") == 0)
            n++;
    closedir(d);
    return n;
}

static uint64_t std_bytes(uint64_t from, uint64_t to)
{
    uint64_t b = 0;
    for (uint64_t s = from; s <= to; s++)
        b += REC_HEADER + payload_len(s);
    return b;
}

/* ---- basics -------------------------------------------------------------------------------- */

static void test_append_sync_replay(void **state)
{
    (void)state;
    mesh_dlog_t *log = open_log(0);
    assert_int_equal(mesh_dlog_last_seq(log), 0);
    assert_int_equal(mesh_dlog_size(log), 0);
    seen_t *s = replay_ok(log, 0, 1);
    assert_int_equal(s->n, 0);
    free(s);
    mesh_err_t err;
    for (uint64_t i = 1; i <= 300; i++) {
        append_std(log, i);
        if (i % 50 == 0)
            assert_int_equal(mesh_dlog_sync(log, &err), MESH_OK);
    }
    assert_int_equal(mesh_dlog_sync(log, &err), MESH_OK);
    assert_int_equal(mesh_dlog_sync(log, &err), MESH_OK); /* nothing to do */
    assert_int_equal(mesh_dlog_last_seq(log), 300);
    assert_int_equal(mesh_dlog_size(log), std_bytes(1, 300));
    char path[128];
    seg_path(1, path, sizeof path);
    assert_int_equal(file_size(path), (off_t)std_bytes(1, 300));

    s = replay_ok(log, 0, 1);
    assert_int_equal(s->n, 300);
    assert_int_equal(s->seqs[0], 1);
    assert_int_equal(s->seqs[299], 300);
    free(s);
    s = replay_ok(log, 250, 1);
    assert_int_equal(s->n, 50);
    assert_int_equal(s->seqs[0], 251);
    free(s);
    s = replay_ok(log, 299, 1);
    assert_int_equal(s->n, 1);
    free(s);
    s = replay_ok(log, 300, 1);
    assert_int_equal(s->n, 0);
    free(s);
    s = replay_ok(log, 100000, 1);
    assert_int_equal(s->n, 0);
    free(s);
    /* replay before a sync sees appended records too */
    append_std(log, 301);
    s = replay_ok(log, 300, 1);
    assert_int_equal(s->n, 1);
    free(s);
    mesh_dlog_close(log);
    mesh_dlog_close(NULL);
}

static void test_replay_stops_on_callback_error(void **state)
{
    (void)state;
    mesh_dlog_t *log = open_log(1);
    for (uint64_t i = 1; i <= 10; i++)
        append_std(log, i);
    seen_t *s = calloc(1, sizeof *s);
    s->stop_at = 7;
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(mesh_dlog_replay(log, 3, collect, s, &err), MESH_CONFLICT);
    assert_int_equal(s->n, 3); /* 4, 5, 6 */
    assert_int_equal(s->seqs[0], 4);
    assert_int_equal(err.code, MESH_CONFLICT);
    assert_non_null(strstr(err.msg, "7"));
    free(s);
    mesh_dlog_close(log);
}

/* A replay goes on where the last one stopped (the async outbox reads the log's tail after
 * every write): the records it gives are the same as from the segment's start, after a stop
 * by the callback, at the end, after more appends, for an earlier position, and after a
 * rewind that rewrote the records past the stop. */
static void test_replay_resumes(void **state)
{
    (void)state;
    mesh_dlog_t *log = open_log(1);
    for (uint64_t i = 1; i <= 10; i++)
        append_std(log, i);
    seen_t *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->stop_at = 7;
    s->check_std = 1;
    mesh_err_t err;
    assert_int_equal(mesh_dlog_replay(log, 3, collect, s, &err), MESH_CONFLICT);
    free(s);
    for (uint64_t after = 6; after <= 10; after++) { /* from the stop, and past it */
        s = replay_ok(log, after, 1);
        assert_int_equal(s->n, 10 - after);
        if (s->n)
            assert_int_equal(s->seqs[0], after + 1);
        free(s);
    }
    for (uint64_t i = 11; i <= 15; i++)
        append_std(log, i);
    s = replay_ok(log, 12, 1); /* from the end of the last replay, after appends */
    assert_int_equal(s->n, 3);
    assert_int_equal(s->seqs[0], 13);
    free(s);
    s = replay_ok(log, 2, 1); /* before the last stop: from the segment's start */
    assert_int_equal(s->n, 13);
    assert_int_equal(s->seqs[0], 3);
    free(s);
    mesh_dlog_mark_t m;
    s = replay_ok(log, 15, 1);
    free(s);
    assert_int_equal(mesh_dlog_sync(log, &err), MESH_OK);
    s = replay_ok(log, 11, 1);
    free(s);
    mesh_dlog_mark(log, &m);
    append(log, "doomed-16", 9);
    append(log, "doomed-17", 9);
    s = replay_ok(log, 16, 0); /* stops at the end, past the mark */
    assert_int_equal(s->n, 1);
    free(s);
    assert_int_equal(mesh_dlog_rewind(log, &m, &err), MESH_OK);
    append(log, "x", 1); /* 16 again, shorter */
    append_std(log, 17);
    append_std(log, 18); /* where the replay before the rewind stopped, at another offset */
    s = replay_ok(log, 17, 1);
    assert_int_equal(s->n, 1);
    assert_int_equal(s->seqs[0], 18);
    free(s);
    s = replay_ok(log, 15, 0);
    assert_int_equal(s->n, 3);
    assert_int_equal(s->seqs[0], 16);
    assert_int_equal(s->lens[0], 1);
    assert_int_equal(s->first_byte[0], 'x');
    assert_int_equal(s->lens[1], payload_len(17));
    free(s);
    mesh_dlog_close(log);
}

static void test_empty_and_odd_payloads(void **state)
{
    (void)state;
    mesh_dlog_t *log = open_log(1);
    assert_int_equal(append(log, "", 0), 1);
    uint8_t magic_like[24] = {'M', 'L', 'R', '1', 4, 0, 0, 0, 1};
    assert_int_equal(append(log, magic_like, sizeof magic_like), 2); /* looks like a header */
    assert_int_equal(append(log, "x", 1), 3);
    mesh_dlog_close(log);
    log = open_log(1);
    assert_int_equal(mesh_dlog_last_seq(log), 3);
    seen_t *s = replay_ok(log, 0, 0);
    assert_int_equal(s->n, 3);
    assert_int_equal(s->lens[0], 0);
    assert_int_equal(s->lens[1], sizeof magic_like);
    assert_int_equal(s->first_byte[1], 'M');
    assert_int_equal(s->first_byte[2], 'x');
    free(s);
    /* a record over the limit is refused before its bytes are read */
    uint64_t seq = 99;
    mesh_err_t err;
    assert_int_equal(mesh_dlog_append(log, "x", (size_t)MESH_DLOG_MAX_RECORD + 1, &seq, &err),
                     MESH_TOO_LARGE);
    assert_int_equal(seq, 99);
    assert_int_equal(mesh_dlog_last_seq(log), 3);
    mesh_dlog_close(log);
}

static void test_reopen_continues(void **state)
{
    (void)state;
    mesh_dlog_t *log = open_log(1);
    for (uint64_t i = 1; i <= 20; i++)
        append_std(log, i);
    mesh_dlog_close(log); /* close syncs */
    log = open_log(1);
    assert_int_equal(mesh_dlog_last_seq(log), 20);
    assert_int_equal(mesh_dlog_size(log), std_bytes(1, 20));
    append_std(log, 21);
    mesh_dlog_close(log);
    /* first_seq at or below the log's position does not change it */
    log = open_log(5);
    assert_int_equal(mesh_dlog_last_seq(log), 21);
    append_std(log, 22);
    mesh_dlog_close(log);
    log = open_log(23);
    assert_int_equal(mesh_dlog_last_seq(log), 22);
    seen_t *s = replay_ok(log, 0, 1);
    assert_int_equal(s->n, 22);
    free(s);
    assert_int_equal(count_segments(), 1);
    mesh_dlog_close(log);
}

static void test_other_files_ignored(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/README", dir);
    FILE *f = fopen(path, "w");
    fputs("not a segment", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/12.seg", dir);
    f = fopen(path, "w");
    fputs("short name", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/0000000000000000000x.seg", dir);
    f = fopen(path, "w");
    fputs("not digits", f);
    fclose(f);
    mesh_dlog_t *log = open_log(1);
    assert_int_equal(mesh_dlog_last_seq(log), 0);
    append_std(log, 1);
    seen_t *s = replay_ok(log, 0, 1);
    assert_int_equal(s->n, 1);
    free(s);
    mesh_dlog_close(log);
}

static void test_open_errors(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/file", dir);
    FILE *f = fopen(path, "w");
    fclose(f);
    mesh_dlog_t *log = (mesh_dlog_t *)&log;
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_not_equal(mesh_dlog_open(path, 1, &log, &err), MESH_OK);
    assert_true(strlen(err.msg) > 0);
    /* a subdirectory that does not exist yet is created */
    snprintf(path, sizeof path, "%s/a/b/log", dir);
    assert_int_equal(mesh_dlog_open(path, 1, &log, &err), MESH_OK);
    mesh_dlog_close(log);
}

/* ---- torn tails ---------------------------------------------------------------------------- */

static void write_n_close(uint64_t n)
{
    mesh_dlog_t *log = open_log(1);
    for (uint64_t i = 1; i <= n; i++)
        append_std(log, i);
    mesh_dlog_close(log);
}

static void test_torn_tail_mid_payload(void **state)
{
    (void)state;
    write_n_close(10); /* payload_len(10) = 170 */
    char path[128];
    seg_path(1, path, sizeof path);
    assert_int_equal(truncate(path, (off_t)std_bytes(1, 10) - 5), 0);
    mesh_dlog_t *log = open_log(1);
    assert_int_equal(mesh_dlog_last_seq(log), 9);
    assert_int_equal(file_size(path), (off_t)std_bytes(1, 9)); /* the tail is cut at open */
    assert_int_equal(mesh_dlog_size(log), std_bytes(1, 9));
    append_std(log, 10);
    append_std(log, 11);
    seen_t *s = replay_ok(log, 0, 1);
    assert_int_equal(s->n, 11);
    free(s);
    mesh_dlog_close(log);
    log = open_log(1);
    assert_int_equal(mesh_dlog_last_seq(log), 11);
    mesh_dlog_close(log);
}

static void test_torn_tail_mid_header(void **state)
{
    (void)state;
    write_n_close(10);
    char path[128];
    seg_path(1, path, sizeof path);
    /* keep 7 bytes of record 10's header */
    assert_int_equal(truncate(path, (off_t)std_bytes(1, 9) + 7), 0);
    mesh_dlog_t *log = open_log(1);
    assert_int_equal(mesh_dlog_last_seq(log), 9);
    assert_int_equal(file_size(path), (off_t)std_bytes(1, 9));
    append_std(log, 10);
    mesh_dlog_close(log);
    /* every record torn: the log is empty and starts again at 1 */
    assert_int_equal(truncate(path, 3), 0);
    log = open_log(1);
    assert_int_equal(mesh_dlog_last_seq(log), 0);
    assert_int_equal(file_size(path), 0);
    append_std(log, 1);
    seen_t *s = replay_ok(log, 0, 1);
    assert_int_equal(s->n, 1);
    free(s);
    mesh_dlog_close(log);
}

static void append_bytes(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

static void test_garbage_tail(void **state)
{
    (void)state;
    write_n_close(5);
    char path[128];
    seg_path(1, path, sizeof path);
    /* random garbage */
    uint8_t junk[100];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 91 + 3);
    append_bytes(path, junk, sizeof junk);
    mesh_dlog_t *log = open_log(1);
    assert_int_equal(mesh_dlog_last_seq(log), 5);
    assert_int_equal(file_size(path), (off_t)std_bytes(1, 5));
    append_std(log, 6);
    mesh_dlog_close(log);

    /* a well-formed header with the right magic and seq but a wrong CRC */
    uint8_t fake[REC_HEADER + 4] = {'M', 'L', 'R', '1', 4, 0, 0, 0, 7,   0,   0,   0,
                                    0,   0,   0,   0,   1, 2, 3, 4, 'a', 'b', 'c', 'd'};
    append_bytes(path, fake, sizeof fake);
    /* a header with a length far past the end of the file */
    uint8_t longer[REC_HEADER] = {'M', 'L', 'R', '1', 0xff, 0xff, 0, 0, 7, 0};
    append_bytes(path, longer, sizeof longer);
    log = open_log(1);
    assert_int_equal(mesh_dlog_last_seq(log), 6);
    assert_int_equal(file_size(path), (off_t)std_bytes(1, 6));
    append_std(log, 7);
    seen_t *s = replay_ok(log, 0, 1);
    assert_int_equal(s->n, 7);
    free(s);
    mesh_dlog_close(log);

    /* a copy of a valid record with the wrong seq (a duplicate) is not accepted either */
    uint8_t *seg = NULL;
    size_t n = 0;
    mesh_err_t err;
    assert_int_equal(mesh_read_file(path, 1 << 20, (char **)&seg, &n, &err), MESH_OK);
    size_t rec7 = (size_t)std_bytes(1, 6);
    append_bytes(path, seg + rec7, n - rec7);
    free(seg);
    log = open_log(1);
    assert_int_equal(mesh_dlog_last_seq(log), 7);
    assert_int_equal(file_size(path), (off_t)std_bytes(1, 7));
    mesh_dlog_close(log);
}

/* ---- rotation, corruption, trim ------------------------------------------------------------ */

static uint8_t *big_payload(uint8_t fill)
{
    uint8_t *p = malloc(BIG);
    assert_non_null(p);
    memset(p, fill, BIG);
    p[0] = fill;
    return p;
}

/* Four big records (seg 1: seqs 1..4, over the segment size), then `small` small ones in the
 * second segment (seqs 5..). */
static mesh_dlog_t *two_segments(int small)
{
    mesh_dlog_t *log = open_log(1);
    uint8_t *p = big_payload(0xab);
    for (int i = 1; i <= 4; i++) {
        p[0] = (uint8_t)i;
        assert_int_equal(append(log, p, BIG), (uint64_t)i);
    }
    free(p);
    assert_int_equal(count_segments(), 1);
    for (int i = 0; i < small; i++)
        assert_int_equal(append(log, "small", 5), (uint64_t)(5 + i));
    assert_int_equal(count_segments(), small > 0 ? 2 : 1);
    mesh_err_t err;
    assert_int_equal(mesh_dlog_sync(log, &err), MESH_OK);
    return log;
}

static void test_rotation(void **state)
{
    (void)state;
    mesh_dlog_t *log = two_segments(3);
    char p1[128], p5[128];
    seg_path(1, p1, sizeof p1);
    seg_path(5, p5, sizeof p5);
    assert_int_equal(file_size(p1), (off_t)(4 * (REC_HEADER + BIG)));
    assert_int_equal(file_size(p5), (off_t)(3 * (REC_HEADER + 5)));
    assert_int_equal(mesh_dlog_size(log), 4 * (REC_HEADER + BIG) + 3 * (REC_HEADER + 5));
    seen_t *s = replay_ok(log, 0, 0);
    assert_int_equal(s->n, 7);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(s->lens[i], BIG);
        assert_int_equal(s->first_byte[i], i + 1);
    }
    assert_int_equal(s->lens[4], 5);
    free(s);
    s = replay_ok(log, 3, 0);
    assert_int_equal(s->n, 4);
    assert_int_equal(s->seqs[0], 4);
    free(s);
    mesh_dlog_close(log);
    /* reopen: both segments found, appends go to the last */
    log = open_log(1);
    assert_int_equal(mesh_dlog_last_seq(log), 7);
    assert_int_equal(mesh_dlog_size(log), 4 * (REC_HEADER + BIG) + 3 * (REC_HEADER + 5));
    assert_int_equal(append(log, "more", 4), 8);
    assert_int_equal(file_size(p5), (off_t)(3 * (REC_HEADER + 5) + REC_HEADER + 4));
    s = replay_ok(log, 0, 0);
    assert_int_equal(s->n, 8);
    free(s);
    mesh_dlog_close(log);
}

static void test_corrupt_non_last_segment(void **state)
{
    (void)state;
    mesh_dlog_t *log = two_segments(2);
    mesh_dlog_close(log);
    char p1[128];
    seg_path(1, p1, sizeof p1);
    /* flip one payload byte of record 2 */
    int fd = open(p1, O_RDWR);
    assert_true(fd >= 0);
    off_t at = (off_t)(REC_HEADER + BIG + REC_HEADER + 1000);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    close(fd);

    /* open only checks the last segment, and keeps the damaged one as it is */
    log = open_log(1);
    assert_int_equal(mesh_dlog_last_seq(log), 6);
    assert_int_equal(file_size(p1), (off_t)(4 * (REC_HEADER + BIG)));
    seen_t *s = calloc(1, sizeof *s);
    mesh_err_t err;
    mesh_err_clear(&err);
    assert_int_equal(mesh_dlog_replay(log, 0, collect, s, &err), MESH_CORRUPT);
    assert_int_equal(s->n, 1); /* record 1 was fine */
    assert_non_null(strstr(err.msg, "00000000000000000001.seg"));
    memset(s, 0, sizeof *s);
    assert_int_equal(mesh_dlog_replay(log, 1, collect, s, &err), MESH_CORRUPT);
    assert_int_equal(s->n, 0);
    /* a replay that starts after the damaged segment does not read it */
    memset(s, 0, sizeof *s);
    assert_int_equal(mesh_dlog_replay(log, 4, collect, s, &err), MESH_OK);
    assert_int_equal(s->n, 2);
    free(s);
    /* appends go on */
    assert_int_equal(append(log, "x", 1), 7);
    mesh_dlog_close(log);
}

static void test_trim(void **state)
{
    (void)state;
    mesh_dlog_t *log = two_segments(3); /* seg 1: 1..4, seg 5: 5..7 */
    char p1[128], p5[128];
    seg_path(1, p1, sizeof p1);
    seg_path(5, p5, sizeof p5);
    mesh_err_t err;
    uint64_t total = mesh_dlog_size(log);
    /* not every record of segment 1 is applied: nothing goes */
    assert_int_equal(mesh_dlog_trim(log, 0, &err), MESH_OK);
    assert_int_equal(mesh_dlog_trim(log, 3, &err), MESH_OK);
    assert_int_equal(count_segments(), 2);
    assert_int_equal(mesh_dlog_size(log), total);
    /* all of segment 1 applied: it goes, the last segment stays */
    assert_int_equal(mesh_dlog_trim(log, 4, &err), MESH_OK);
    assert_int_equal(count_segments(), 1);
    assert_int_equal(file_size(p1), -1);
    assert_int_equal(file_size(p5), (off_t)(3 * (REC_HEADER + 5)));
    assert_int_equal(mesh_dlog_size(log), 3 * (REC_HEADER + 5));
    seen_t *s = replay_ok(log, 4, 0);
    assert_int_equal(s->n, 3);
    assert_int_equal(s->seqs[0], 5);
    free(s);
    /* the last segment is never trimmed, even when everything is applied */
    assert_int_equal(mesh_dlog_trim(log, UINT64_MAX - 1, &err), MESH_OK);
    assert_int_equal(count_segments(), 1);
    assert_int_equal(append(log, "y", 1), 8);
    mesh_dlog_close(log);
    /* reopen after a trim */
    log = open_log(8);
    assert_int_equal(mesh_dlog_last_seq(log), 8);
    s = replay_ok(log, 7, 0);
    assert_int_equal(s->n, 1);
    free(s);
    mesh_dlog_close(log);
}

static void test_replay_reports_trimmed_records(void **state)
{
    (void)state;
    /* records the log no longer holds cannot be replayed: a replay asking for them is told
     * so instead of silently starting later */
    mesh_dlog_t *log = two_segments(2);
    mesh_err_t err;
    assert_int_equal(mesh_dlog_trim(log, 4, &err), MESH_OK);
    seen_t *s = calloc(1, sizeof *s);
    mesh_err_clear(&err);
    assert_int_equal(mesh_dlog_replay(log, 0, collect, s, &err), MESH_CORRUPT);
    assert_int_equal(s->n, 0);
    assert_non_null(strstr(err.msg, "1..4"));
    memset(s, 0, sizeof *s);
    assert_int_equal(mesh_dlog_replay(log, 2, collect, s, &err), MESH_CORRUPT);
    memset(s, 0, sizeof *s);
    assert_int_equal(mesh_dlog_replay(log, 4, collect, s, &err), MESH_OK);
    assert_int_equal(s->n, 2);
    free(s);
    mesh_dlog_close(log);
}

/* ---- mark and rewind ----------------------------------------------------------------------- */

static void test_mark_rewind(void **state)
{
    (void)state;
    mesh_dlog_t *log = open_log(1);
    for (uint64_t i = 1; i <= 5; i++)
        append_std(log, i);
    mesh_err_t err;
    assert_int_equal(mesh_dlog_sync(log, &err), MESH_OK);
    mesh_dlog_mark_t m;
    mesh_dlog_mark(log, &m);
    uint64_t size = mesh_dlog_size(log);
    append(log, "doomed-1", 8);
    append(log, "doomed-2", 8);
    append(log, "doomed-3", 8);
    assert_int_equal(mesh_dlog_last_seq(log), 8);
    assert_int_equal(mesh_dlog_rewind(log, &m, &err), MESH_OK);
    assert_int_equal(mesh_dlog_last_seq(log), 5);
    assert_int_equal(mesh_dlog_size(log), size);
    char path[128];
    seg_path(1, path, sizeof path);
    assert_int_equal(file_size(path), (off_t)size);
    seen_t *s = replay_ok(log, 0, 1);
    assert_int_equal(s->n, 5);
    free(s);
    /* the next append reuses seq 6 */
    append_std(log, 6);
    /* rewinding to a mark with nothing after it changes nothing */
    mesh_dlog_mark(log, &m);
    assert_int_equal(mesh_dlog_rewind(log, &m, &err), MESH_OK);
    assert_int_equal(mesh_dlog_last_seq(log), 6);
    append_std(log, 7);
    mesh_dlog_close(log);
    /* what is on disk agrees */
    log = open_log(1);
    assert_int_equal(mesh_dlog_last_seq(log), 7);
    s = replay_ok(log, 0, 1);
    assert_int_equal(s->n, 7);
    free(s);
    mesh_dlog_close(log);
}

static void test_rewind_across_rotation(void **state)
{
    (void)state;
    mesh_dlog_t *log = open_log(1);
    uint8_t *p = big_payload(0x11);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(append(log, p, BIG), (uint64_t)i);
    mesh_err_t err;
    assert_int_equal(mesh_dlog_sync(log, &err), MESH_OK);
    mesh_dlog_mark_t m;
    mesh_dlog_mark(log, &m);
    uint64_t size = mesh_dlog_size(log);
    /* two appends past the mark: the second one rotates */
    assert_int_equal(append(log, p, BIG), 4);
    assert_int_equal(append(log, "tail", 4), 5);
    assert_int_equal(count_segments(), 2);
    assert_int_equal(mesh_dlog_rewind(log, &m, &err), MESH_OK);
    assert_int_equal(count_segments(), 1);
    assert_int_equal(mesh_dlog_last_seq(log), 3);
    assert_int_equal(mesh_dlog_size(log), size);
    char p1[128], p5[128];
    seg_path(1, p1, sizeof p1);
    seg_path(5, p5, sizeof p5);
    assert_int_equal(file_size(p1), (off_t)size);
    assert_int_equal(file_size(p5), -1);
    /* appends continue in segment 1 and rotate again later */
    assert_int_equal(append(log, "again", 5), 4);
    assert_int_equal(file_size(p1), (off_t)(size + REC_HEADER + 5));
    seen_t *s = replay_ok(log, 0, 0);
    assert_int_equal(s->n, 4);
    assert_int_equal(s->lens[3], 5);
    free(s);
    assert_int_equal(append(log, p, BIG), 5);
    assert_int_equal(append(log, "next", 4), 6);
    assert_int_equal(count_segments(), 2);
    char p6[128];
    seg_path(6, p6, sizeof p6);
    assert_int_equal(file_size(p6), REC_HEADER + 4);
    free(p);
    mesh_dlog_close(log);
    log = open_log(1);
    assert_int_equal(mesh_dlog_last_seq(log), 6);
    s = replay_ok(log, 0, 0);
    assert_int_equal(s->n, 6);
    free(s);
    mesh_dlog_close(log);
}

/* ---- a store ahead of the log -------------------------------------------------------------- */

static void test_first_seq_ahead(void **state)
{
    (void)state;
    /* an empty log starts where the store is */
    mesh_dlog_t *log = open_log(100);
    assert_int_equal(mesh_dlog_last_seq(log), 99);
    append_std(log, 100);
    append_std(log, 101);
    char path[128];
    seg_path(100, path, sizeof path);
    assert_true(file_size(path) > 0);
    seen_t *s = replay_ok(log, 99, 1);
    assert_int_equal(s->n, 2);
    free(s);
    mesh_dlog_close(log);

    /* the store ahead of a log that has records: continue after the store */
    log = open_log(500);
    assert_int_equal(mesh_dlog_last_seq(log), 499);
    append_std(log, 500);
    assert_int_equal(count_segments(), 2);
    s = replay_ok(log, 499, 1);
    assert_int_equal(s->n, 1);
    assert_int_equal(s->seqs[0], 500);
    free(s);
    /* the old records are never asked for again; a replay from before the gap is refused */
    seen_t *t = calloc(1, sizeof *t);
    mesh_err_t err;
    assert_int_equal(mesh_dlog_replay(log, 0, collect, t, &err), MESH_CORRUPT);
    free(t);
    /* the older segment goes at the next trim */
    assert_int_equal(mesh_dlog_trim(log, 500, &err), MESH_OK);
    assert_int_equal(count_segments(), 1);
    mesh_dlog_close(log);
    log = open_log(1);
    assert_int_equal(mesh_dlog_last_seq(log), 500);
    append_std(log, 501);
    mesh_dlog_close(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_sync_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_stops_on_callback_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_and_odd_payloads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_continues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_files_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_mid_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_mid_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_non_last_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_reports_trimmed_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mark_rewind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewind_across_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_seq_ahead, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
