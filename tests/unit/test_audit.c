/*
 * test_audit.c - the audit log: the chain verifies (also across reopen and segments);
 * sealed records hold no plaintext; tampering is found and the first bad record named (one
 * byte edited, a record deleted, two swapped, a seq field changed, the tail cut before the
 * last checkpoint, a segment deleted, HEAD deleted, a wrong key); what cannot be found (the
 * tail cut after the last checkpoint) unless an anchor was kept; a torn tail (a crash while
 * appending) is cut at open, recorded, and the chain verifies; damage a crash cannot explain
 * is refused at open; many threads append at once; search filters; retention; the key
 * file; the segment decoder on garbage.
 *
 * The tests edit segment files through the documented record format (audit.h): a 20-byte
 * header (magic, len at +4, seq at +8), len payload bytes, a 32-byte MAC.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "audit/audit.h"
#include "core/util.h"

int main(void);

#define HDR    20
#define MACLEN 32
#define MARKER "secret-marker-7f3a"

static char dir[64];
static mesh_audit_keys_t keys;

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
    snprintf(dir, sizeof dir, "/tmp/meshd-test-audit-XXXXXX");
    memset(&keys, 0, sizeof keys);
    for (int i = 0; i < 32; i++) {
        keys.mac[i] = (uint8_t)(0x11 + i);
        keys.enc[i] = (uint8_t)(0xa0 + i);
    }
    keys.encrypt = true;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* Options that leave checkpoints to the test: no automatic ones. */
static mesh_audit_opts_t quiet_opts(uint64_t segment_size)
{
    mesh_audit_opts_t o = {.checkpoint_records = 1000000,
                           .checkpoint_interval_ns = 3600 * MESH_NS_PER_SEC,
                           .segment_size = segment_size};
    return o;
}

static mesh_audit_t *open_log(const mesh_audit_opts_t *o)
{
    mesh_audit_t *a = NULL;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_audit_open(dir, &keys, o, &a, &err);
    if (st != MESH_OK)
        fail_msg("open: %s", err.msg);
    return a;
}

static void add(mesh_audit_t *a, int i)
{
    static const mesh_audit_action_t acts[] = {
        MESH_AUDIT_QUERY, MESH_AUDIT_WRITE, MESH_AUDIT_AUTHZ_DENY, MESH_AUDIT_ADMIN_DOMAIN_CREATE};
    char principal[32], details[256];
    snprintf(principal, sizeof principal, "user%d", i % 3);
    snprintf(details, sizeof details,
             "{\"sql\":\"SELECT '%s' FROM factory.readings\",\"products\":[\"factory.r%d\"],"
             "\"rows\":%d}",
             MARKER, i % 2, i);
    mesh_audit_rec_t r = {.action = acts[i % 4],
                          .principal_id = i % 3 + 1,
                          .principal = principal,
                          .auth = "bearer",
                          .token_id = "0123456789abcdef0123456789abcdef",
                          .source = "127.0.0.1:4242",
                          .domain = i % 4 == 1 ? "factory" : NULL,
                          .product = i % 4 == 1 ? "readings" : NULL,
                          .status = i % 4 == 2 ? 403 : 200,
                          .details = details,
                          .policy_version = 7};
    mesh_audit_record(a, &r);
}

static mesh_status_t verify(mesh_audit_verify_t *v, const mesh_audit_anchor_t *anchor)
{
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_audit_verify_dir(dir, &keys, anchor, v, &err);
    if (st != MESH_OK && st != MESH_CORRUPT)
        fail_msg("verify: %s", err.msg);
    return st;
}

/* ---- files ---- */

typedef struct seglist {
    char names[256][32];
    int n;
} seglist_t;

static int name_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void list(seglist_t *l)
{
    l->n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".alog") && l->n < 256)
            snprintf(l->names[l->n++], 32, "%s", e->d_name);
    closedir(d);
    qsort(l->names, (size_t)l->n, 32, name_cmp);
}

static uint8_t *slurp(const char *name, size_t *n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text;
    assert_int_equal(mesh_read_file(path, 1u << 30, &text, n, NULL), MESH_OK);
    return (uint8_t *)text;
}

static void spit(const char *name, const uint8_t *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n)
        assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/* Offsets of the records of a segment; returns how many. */
static int offsets(const uint8_t *p, size_t n, size_t *off, uint64_t *seq, int max)
{
    int k = 0;
    size_t o = 0;
    while (o + HDR <= n && k < max) {
        size_t size = HDR + rd32(p + o + 4) + MACLEN;
        if (o + size > n)
            break;
        off[k] = o;
        seq[k] = rd64(p + o + 8);
        k++;
        o += size;
    }
    return k;
}

static bool file_has(const char *name, const char *needle)
{
    size_t n;
    uint8_t *p = slurp(name, &n);
    bool found = memmem(p, n, needle, strlen(needle)) != NULL;
    free(p);
    return found;
}

/* ---- tests ---- */

static void test_chain_verifies(void **state)
{
    (void)state;
    mesh_audit_opts_t o = quiet_opts(0);
    mesh_audit_t *a = open_log(&o);
    for (int i = 0; i < 100; i++)
        add(a, i);
    mesh_audit_verify_t v;
    mesh_err_t err;
    assert_int_equal(mesh_audit_verify_live(a, NULL, &v, &err), MESH_OK);
    assert_true(v.ok);
    assert_int_equal(v.events, 100);
    mesh_audit_close(a);
    assert_int_equal(verify(&v, NULL), MESH_OK);
    assert_int_equal(v.events, 100);
    assert_int_equal(v.segments, 1);
    assert_int_equal(v.first_seq, 1);
    assert_int_equal(v.checkpoint_seq, v.last_seq); /* close ends with a checkpoint */
    assert_int_equal(strlen(v.head_mac), 64);
    /* reopening continues the chain */
    a = open_log(&o);
    for (int i = 0; i < 50; i++)
        add(a, i);
    mesh_audit_close(a);
    uint64_t before = v.last_seq;
    assert_int_equal(verify(&v, NULL), MESH_OK);
    assert_int_equal(v.events, 150);
    assert_true(v.last_seq > before + 50);
    /* an anchor taken earlier still holds */
    mesh_audit_anchor_t an;
    char text[128];
    mesh_audit_verify_t v2;
    snprintf(text, sizeof text, "%llu:%s", (unsigned long long)v.last_seq, v.head_mac);
    assert_int_equal(mesh_audit_anchor_parse(text, &an, NULL), MESH_OK);
    assert_int_equal(verify(&v2, &an), MESH_OK);
    an.mac[0] ^= 1;
    assert_int_equal(verify(&v2, &an), MESH_CORRUPT);
    assert_int_equal(v2.fault, MESH_AUDIT_FAULT_ANCHOR);
    assert_int_equal(mesh_audit_anchor_parse("12:zz", &an, NULL), MESH_INVALID);
    assert_int_equal(mesh_audit_anchor_parse("abc", &an, NULL), MESH_INVALID);
}

static void test_sealed_no_plaintext(void **state)
{
    (void)state;
    mesh_audit_opts_t o = quiet_opts(0);
    mesh_audit_t *a = open_log(&o);
    for (int i = 0; i < 10; i++)
        add(a, i);
    mesh_audit_close(a);
    seglist_t l;
    list(&l);
    assert_int_equal(l.n, 1);
    assert_false(file_has(l.names[0], MARKER));
    assert_false(file_has(l.names[0], "user1"));
    assert_false(file_has("HEAD", MARKER));
    /* and without an encryption key the payload is plain JSON (the test can see it) */
    teardown(NULL);
    setup(NULL);
    keys.encrypt = false;
    a = open_log(&o);
    add(a, 1);
    mesh_audit_close(a);
    list(&l);
    assert_true(file_has(l.names[0], MARKER));
    mesh_audit_verify_t v;
    assert_int_equal(verify(&v, NULL), MESH_OK);
    /* a sealed log cannot be read without the encryption key */
    teardown(NULL);
    setup(NULL);
    a = open_log(&o);
    add(a, 1);
    mesh_audit_close(a);
    keys.encrypt = false;
    assert_int_equal(verify(&v, NULL), MESH_CORRUPT);
    assert_int_equal(v.fault, MESH_AUDIT_FAULT_DECRYPT);
    keys.encrypt = true;
}

/* Writes 40 events and closes; returns the segment's bytes and record offsets. */
static uint8_t *forty(seglist_t *l, size_t *n, size_t *off, uint64_t *seq, int *k)
{
    mesh_audit_opts_t o = quiet_opts(0);
    mesh_audit_t *a = open_log(&o);
    for (int i = 0; i < 40; i++)
        add(a, i);
    mesh_audit_close(a);
    list(l);
    assert_int_equal(l->n, 1);
    uint8_t *p = slurp(l->names[0], n);
    *k = offsets(p, *n, off, seq, 64);
    assert_true(*k > 40);
    return p;
}

static void test_edit_one_byte(void **state)
{
    (void)state;
    seglist_t l;
    size_t n, off[64];
    uint64_t seq[64];
    int k;
    uint8_t *p = forty(&l, &n, off, seq, &k);
    /* one byte of record 10's sealed payload */
    p[off[10] + HDR + 20] ^= 0x01;
    spit(l.names[0], p, n);
    mesh_audit_verify_t v;
    assert_int_equal(verify(&v, NULL), MESH_CORRUPT);
    assert_int_equal(v.fault, MESH_AUDIT_FAULT_MAC);
    assert_int_equal(v.seq, seq[10]);
    assert_int_equal(v.offset, off[10]);
    assert_string_equal(v.file, l.names[0]);
    /* a byte of the MAC itself */
    p[off[10] + HDR + 20] ^= 0x01;
    p[off[12 + 1] - 1] ^= 0x80;
    spit(l.names[0], p, n);
    assert_int_equal(verify(&v, NULL), MESH_CORRUPT);
    assert_int_equal(v.fault, MESH_AUDIT_FAULT_MAC);
    assert_int_equal(v.seq, seq[12]);
    /* the seq field of a record */
    p[off[12 + 1] - 1] ^= 0x80;
    p[off[20] + 8] ^= 0x40;
    spit(l.names[0], p, n);
    assert_int_equal(verify(&v, NULL), MESH_CORRUPT);
    assert_int_equal(v.fault, MESH_AUDIT_FAULT_MAC);
    assert_int_equal(v.seq, seq[20]);
    assert_int_equal(v.offset, off[20]);
    /* the length field: the record no longer parses as one */
    p[off[20] + 8] ^= 0x40;
    p[off[25] + 4] ^= 0x01;
    spit(l.names[0], p, n);
    assert_int_equal(verify(&v, NULL), MESH_CORRUPT);
    assert_int_equal(v.offset, off[25]);
    free(p);
    /* meshd refuses to open a log damaged in the middle */
    mesh_audit_t *a = NULL;
    mesh_err_t err;
    mesh_audit_opts_t o = quiet_opts(0);
    assert_int_equal(mesh_audit_open(dir, &keys, &o, &a, &err), MESH_CORRUPT);
    assert_non_null(strstr(err.msg, "move the audit directory aside"));
}

static void test_delete_record(void **state)
{
    (void)state;
    seglist_t l;
    size_t n, off[64];
    uint64_t seq[64];
    int k;
    uint8_t *p = forty(&l, &n, off, seq, &k);
    size_t len = off[16] - off[15];
    memmove(p + off[15], p + off[16], n - off[16]);
    spit(l.names[0], p, n - len);
    mesh_audit_verify_t v;
    assert_int_equal(verify(&v, NULL), MESH_CORRUPT);
    assert_int_equal(v.fault, MESH_AUDIT_FAULT_MISSING);
    assert_int_equal(v.seq, seq[15]);
    assert_int_equal(v.offset, off[15]);
    free(p);
}

static void test_reorder(void **state)
{
    (void)state;
    seglist_t l;
    size_t n, off[64];
    uint64_t seq[64];
    int k;
    uint8_t *p = forty(&l, &n, off, seq, &k);
    size_t l1 = off[21] - off[20], l2 = off[22] - off[21];
    uint8_t *q = malloc(n);
    memcpy(q, p, n);
    memcpy(q + off[20], p + off[21], l2);
    memcpy(q + off[20] + l2, p + off[20], l1);
    spit(l.names[0], q, n);
    mesh_audit_verify_t v;
    assert_int_equal(verify(&v, NULL), MESH_CORRUPT);
    assert_int_equal(v.fault, MESH_AUDIT_FAULT_REORDERED);
    assert_int_equal(v.offset, off[20]);
    assert_int_equal(v.seq, seq[21]);
    free(q);
    free(p);
}

static void test_truncate_before_checkpoint(void **state)
{
    (void)state;
    seglist_t l;
    size_t n, off[64];
    uint64_t seq[64];
    int k;
    uint8_t *p = forty(&l, &n, off, seq, &k);
    /* the last record is close's checkpoint (HEAD names it): cut the last three records */
    spit(l.names[0], p, off[k - 3]);
    mesh_audit_verify_t v;
    assert_int_equal(verify(&v, NULL), MESH_CORRUPT);
    assert_int_equal(v.fault, MESH_AUDIT_FAULT_TRUNCATED_CHECKPOINT);
    assert_int_equal(v.seq, seq[k - 3]);
    assert_int_equal(v.offset, off[k - 3]);
    /* and meshd will not start on it */
    mesh_audit_t *a = NULL;
    mesh_err_t err;
    mesh_audit_opts_t o = quiet_opts(0);
    assert_int_equal(mesh_audit_open(dir, &keys, &o, &a, &err), MESH_CORRUPT);
    /* mid-record, before the checkpoint: the same */
    spit(l.names[0], p, off[k - 2] + 7);
    assert_int_equal(verify(&v, NULL), MESH_CORRUPT);
    assert_int_equal(v.fault, MESH_AUDIT_FAULT_TRUNCATED_CHECKPOINT);
    free(p);
}

static void test_truncate_after_checkpoint(void **state)
{
    (void)state;
    mesh_audit_opts_t o = quiet_opts(0);
    mesh_audit_t *a = open_log(&o);
    for (int i = 0; i < 20; i++)
        add(a, i);
    mesh_err_t err;
    assert_int_equal(mesh_audit_checkpoint(a, &err), MESH_OK);
    for (int i = 0; i < 10; i++)
        add(a, i);
    mesh_audit_abandon(a); /* as if killed: no checkpoint after the last ten */
    mesh_audit_verify_t v, v2;
    assert_int_equal(verify(&v, NULL), MESH_OK);
    assert_int_equal(v.last_seq, v.checkpoint_seq + 10);
    mesh_audit_anchor_t an = {.seq = v.last_seq};
    assert_true(mesh_unhex(v.head_mac, an.mac, 32));
    /* cut five records after the checkpoint at a record boundary: nothing in the log says
     * they existed (documented), only an anchor kept outside does */
    seglist_t l;
    list(&l);
    size_t n, off[64];
    uint64_t seq[64];
    uint8_t *p = slurp(l.names[0], &n);
    int k = offsets(p, n, off, seq, 64);
    spit(l.names[0], p, off[k - 5]);
    assert_int_equal(verify(&v2, NULL), MESH_OK);
    assert_int_equal(v2.last_seq, v.last_seq - 5);
    assert_int_equal(verify(&v2, &an), MESH_CORRUPT);
    assert_int_equal(v2.fault, MESH_AUDIT_FAULT_ANCHOR);
    assert_int_equal(v2.seq, v.last_seq - 4);
    free(p);
}

static void test_segments(void **state)
{
    (void)state;
    mesh_audit_opts_t o = quiet_opts(4096);
    mesh_audit_t *a = open_log(&o);
    for (int i = 0; i < 200; i++)
        add(a, i);
    mesh_audit_close(a);
    seglist_t l;
    list(&l);
    assert_true(l.n >= 5);
    mesh_audit_verify_t v;
    assert_int_equal(verify(&v, NULL), MESH_OK);
    assert_int_equal(v.events, 200);
    assert_int_equal(v.segments, l.n);
    char path[128], keep[128];
    /* a middle segment deleted: the next one names the gap */
    snprintf(path, sizeof path, "%s/%s", dir, l.names[2]);
    snprintf(keep, sizeof keep, "%s/keep", dir);
    assert_int_equal(rename(path, keep), 0);
    assert_int_equal(verify(&v, NULL), MESH_CORRUPT);
    assert_int_equal(v.fault, MESH_AUDIT_FAULT_SEGMENT_MISSING);
    assert_string_equal(v.file, l.names[3]);
    assert_int_equal(v.offset, 0);
    uint64_t first2;
    assert_int_equal(mesh_parse_u64(l.names[2], 20, &first2), MESH_OK);
    assert_int_equal(v.seq, first2);
    assert_int_equal(rename(keep, path), 0);
    /* the first segment deleted */
    snprintf(path, sizeof path, "%s/%s", dir, l.names[0]);
    assert_int_equal(rename(path, keep), 0);
    assert_int_equal(verify(&v, NULL), MESH_CORRUPT);
    assert_int_equal(v.fault, MESH_AUDIT_FAULT_SEGMENT_MISSING);
    assert_int_equal(v.seq, 1);
    assert_int_equal(rename(keep, path), 0);
    /* the last segment deleted: shorter than its checkpoint */
    snprintf(path, sizeof path, "%s/%s", dir, l.names[l.n - 1]);
    assert_int_equal(rename(path, keep), 0);
    assert_int_equal(verify(&v, NULL), MESH_CORRUPT);
    assert_int_equal(v.fault, MESH_AUDIT_FAULT_TRUNCATED_CHECKPOINT);
    assert_int_equal(rename(keep, path), 0);
    /* two segments swapped by name */
    char p1[128], p2[128];
    snprintf(p1, sizeof p1, "%s/%s", dir, l.names[1]);
    snprintf(p2, sizeof p2, "%s/%s", dir, l.names[2]);
    assert_int_equal(rename(p1, keep), 0);
    assert_int_equal(rename(p2, p1), 0);
    assert_int_equal(rename(keep, p2), 0);
    assert_int_equal(verify(&v, NULL), MESH_CORRUPT);
    assert_string_equal(v.file, l.names[1]);
    assert_int_equal(rename(p2, keep), 0);
    assert_int_equal(rename(p1, p2), 0);
    assert_int_equal(rename(keep, p1), 0);
    assert_int_equal(verify(&v, NULL), MESH_OK);
    /* HEAD deleted */
    snprintf(path, sizeof path, "%s/HEAD", dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(verify(&v, NULL), MESH_CORRUPT);
    assert_int_equal(v.fault, MESH_AUDIT_FAULT_HEAD);
    mesh_err_t err;
    assert_int_equal(mesh_audit_open(dir, &keys, &o, &a, &err), MESH_CORRUPT);
}

static void test_wrong_key(void **state)
{
    (void)state;
    mesh_audit_opts_t o = quiet_opts(0);
    mesh_audit_t *a = open_log(&o);
    add(a, 1);
    mesh_audit_close(a);
    keys.mac[5] ^= 1;
    mesh_audit_verify_t v;
    assert_int_equal(verify(&v, NULL), MESH_CORRUPT);
    assert_int_equal(v.fault, MESH_AUDIT_FAULT_MAC);
    assert_int_equal(v.seq, 1);
    mesh_err_t err;
    assert_int_equal(mesh_audit_open(dir, &keys, &o, &a, &err), MESH_CORRUPT);
    keys.mac[5] ^= 1;
}

/* Counts the events of an action. */
static int count_action(const char *action)
{
    mesh_audit_filter_t f = {.action = action};
    mesh_audit_scan_t *s;
    assert_int_equal(mesh_audit_scan_open(NULL, dir, &keys, &f, &s, NULL), MESH_OK);
    mesh_audit_entry_t e;
    int n = 0;
    while (mesh_audit_scan_next(s, &e) == 1)
        n++;
    mesh_audit_scan_close(s);
    return n;
}

static void test_torn_tail(void **state)
{
    (void)state;
    mesh_audit_opts_t o = quiet_opts(0);
    mesh_audit_t *a = open_log(&o);
    for (int i = 0; i < 30; i++)
        add(a, i);
    mesh_audit_abandon(a);
    seglist_t l;
    list(&l);
    size_t n, off[64];
    uint64_t seq[64];
    uint8_t *p = slurp(l.names[0], &n);
    int k = offsets(p, n, off, seq, 64);
    /* the process died in the middle of writing the last record */
    spit(l.names[0], p, n - 11);
    mesh_audit_verify_t v;
    assert_int_equal(verify(&v, NULL), MESH_OK);
    assert_int_equal(v.torn_bytes, n - 11 - off[k - 1]);
    assert_int_equal(v.torn_offset, off[k - 1]);
    assert_int_equal(v.last_seq, seq[k - 2]);
    /* open cuts it, keeps the bytes, and says so in the log */
    a = open_log(&o);
    add(a, 99);
    mesh_audit_close(a);
    assert_int_equal(verify(&v, NULL), MESH_OK);
    assert_int_equal(v.torn_bytes, 0);
    assert_int_equal(count_action("audit.repair"), 1);
    char saved[128];
    snprintf(saved, sizeof saved, "%s/repaired-%020llu-%llu.bin", dir,
             (unsigned long long)seq[k - 1], (unsigned long long)off[k - 1]);
    struct stat sb;
    assert_int_equal(stat(saved, &sb), 0);
    assert_int_equal(sb.st_size, n - 11 - off[k - 1]);
    free(p);
    /* zeros after the last record (the size grew, the data never came) */
    list(&l);
    p = slurp(l.names[0], &n);
    uint8_t *z = calloc(1, n + 4096);
    memcpy(z, p, n);
    spit(l.names[0], z, n + 4096);
    assert_int_equal(verify(&v, NULL), MESH_OK);
    assert_int_equal(v.torn_bytes, 4096);
    a = open_log(&o);
    mesh_audit_close(a);
    assert_int_equal(verify(&v, NULL), MESH_OK);
    assert_int_equal(count_action("audit.repair"), 2);
    free(z);
    free(p);
    /* a whole damaged last record after the checkpoint (power loss) is cut, and recorded */
    a = open_log(&o);
    add(a, 5);
    mesh_audit_abandon(a);
    list(&l);
    p = slurp(l.names[0], &n);
    p[n - 40] ^= 0xff;
    spit(l.names[0], p, n);
    assert_int_equal(verify(&v, NULL), MESH_CORRUPT); /* verify says what it sees */
    assert_int_equal(v.fault, MESH_AUDIT_FAULT_MAC);
    a = open_log(&o);
    mesh_audit_close(a);
    assert_int_equal(verify(&v, NULL), MESH_OK);
    assert_int_equal(count_action("audit.repair"), 3);
    free(p);
}

static void test_torn_segment_start(void **state)
{
    (void)state;
    /* a crash right after a new segment was created, before its first record was whole */
    mesh_audit_opts_t o = quiet_opts(4096);
    mesh_audit_t *a = open_log(&o);
    for (int i = 0; i < 40; i++)
        add(a, i);
    mesh_audit_abandon(a);
    seglist_t l;
    list(&l);
    assert_true(l.n >= 2);
    size_t n;
    uint8_t *p = slurp(l.names[l.n - 1], &n);
    spit(l.names[l.n - 1], p, 9);
    free(p);
    a = open_log(&o);
    add(a, 1);
    mesh_audit_close(a);
    mesh_audit_verify_t v;
    assert_int_equal(verify(&v, NULL), MESH_OK);
    assert_int_equal(count_action("audit.repair"), 1);
}

typedef struct worker {
    mesh_audit_t *a;
    int id;
} worker_t;

static void *hammer(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < 500; i++) {
        char principal[16], details[64];
        snprintf(principal, sizeof principal, "t%d", w->id);
        snprintf(details, sizeof details, "{\"i\":%d}", i);
        mesh_audit_rec_t r = {
            .action = MESH_AUDIT_WRITE, .principal = principal, .details = details, .status = 200};
        mesh_audit_record(w->a, &r);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    mesh_audit_opts_t o = {.checkpoint_records = 100,
                           .checkpoint_interval_ns = 10 * 1000 * 1000,
                           .segment_size = 64 * 1024};
    mesh_audit_t *a = open_log(&o);
    pthread_t t[8];
    worker_t w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (worker_t){a, i};
        pthread_create(&t[i], NULL, hammer, &w[i]);
    }
    mesh_audit_verify_t v;
    mesh_err_t err;
    /* verify the live log while it grows */
    for (int i = 0; i < 3; i++)
        assert_int_equal(mesh_audit_verify_live(a, NULL, &v, &err), MESH_OK);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    mesh_audit_stats_t st;
    mesh_audit_stats(a, &st);
    assert_int_equal(st.lost, 0);
    mesh_audit_close(a);
    assert_int_equal(verify(&v, NULL), MESH_OK);
    assert_int_equal(v.events, 4000);
    assert_true(v.checkpoints >= 2); /* asynchronous: several batches of 100 per checkpoint */
    /* 4000 records of ~180 bytes in 64 KiB segments: no rotation was starved */
    assert_true(v.segments >= 10);
    /* each thread's events, in its own order */
    mesh_audit_filter_t f = {.principal = "t3"};
    mesh_audit_scan_t *s;
    assert_int_equal(mesh_audit_scan_open(NULL, dir, &keys, &f, &s, NULL), MESH_OK);
    mesh_audit_entry_t e;
    int n = 0;
    uint64_t last = 0;
    while (mesh_audit_scan_next(s, &e) == 1) {
        char want[32];
        snprintf(want, sizeof want, "{\"i\":%d}", n);
        assert_string_equal(e.details, want);
        assert_true(e.seq > last);
        last = e.seq;
        n++;
    }
    assert_null(mesh_audit_scan_warning(s));
    mesh_audit_scan_close(s);
    assert_int_equal(n, 500);
}

static int scan_count(const mesh_audit_filter_t *f)
{
    mesh_audit_scan_t *s;
    mesh_err_t err;
    if (mesh_audit_scan_open(NULL, dir, &keys, f, &s, &err) != MESH_OK)
        fail_msg("scan: %s", err.msg);
    mesh_audit_entry_t e;
    int n = 0;
    while (mesh_audit_scan_next(s, &e) == 1)
        n++;
    mesh_audit_scan_close(s);
    return n;
}

static void test_search(void **state)
{
    (void)state;
    mesh_audit_opts_t o = quiet_opts(2048);
    mesh_audit_t *a = open_log(&o);
    for (int i = 0; i < 40; i++)
        add(a, i);
    int64_t mid = mesh_now_ns();
    for (int i = 40; i < 60; i++)
        add(a, i);
    mesh_audit_close(a);
    mesh_audit_filter_t f = {0};
    assert_int_equal(scan_count(&f), 60);
    assert_int_equal(scan_count(NULL), 60);
    f.principal = "user1";
    assert_int_equal(scan_count(&f), 20);
    f.principal = "2"; /* by id: user1 has id 2 */
    assert_int_equal(scan_count(&f), 20);
    memset(&f, 0, sizeof f);
    f.action = "query";
    assert_int_equal(scan_count(&f), 15);
    f.action = "admin";
    assert_int_equal(scan_count(&f), 15);
    f.action = "admin.domain.create";
    assert_int_equal(scan_count(&f), 15);
    f.action = "adm";
    assert_int_equal(scan_count(&f), 0);
    memset(&f, 0, sizeof f);
    f.product = "factory.readings"; /* the writes' object */
    assert_int_equal(scan_count(&f), 15);
    f.product = "factory.r1"; /* in details.products, odd i */
    assert_int_equal(scan_count(&f), 30);
    f.product = "factory";
    assert_int_equal(scan_count(&f), 60);
    f.product = "nowhere.x";
    assert_int_equal(scan_count(&f), 0);
    memset(&f, 0, sizeof f);
    f.since_ns = mid;
    assert_int_equal(scan_count(&f), 20);
    f.since_ns = 0;
    f.until_ns = mid;
    assert_int_equal(scan_count(&f), 40);
    memset(&f, 0, sizeof f);
    f.principal = "user0";
    f.action = "query";
    assert_int_equal(scan_count(&f), 5);
    /* paging by seq */
    memset(&f, 0, sizeof f);
    mesh_audit_scan_t *s;
    assert_int_equal(mesh_audit_scan_open(NULL, dir, &keys, &f, &s, NULL), MESH_OK);
    mesh_audit_entry_t e;
    uint64_t tenth = 0;
    for (int i = 0; i < 10; i++)
        assert_int_equal(mesh_audit_scan_next(s, &e), 1);
    tenth = e.seq;
    assert_non_null(strstr(e.json, "\"seq\":"));
    assert_non_null(strstr(e.json, "\"time\":\"20"));
    assert_string_equal(e.token_id, "0123456789abcdef0123456789abcdef");
    assert_int_equal(e.policy_version, 7);
    mesh_audit_scan_close(s);
    f.after_seq = tenth;
    assert_int_equal(scan_count(&f), 50);
    f.before_seq = tenth + 1;
    f.after_seq = 0;
    assert_int_equal(scan_count(&f), 10);
    /* a damaged record is skipped with a warning; the others are still found */
    seglist_t l;
    list(&l);
    size_t n, off[64];
    uint64_t seq[64];
    uint8_t *p = slurp(l.names[1], &n);
    int k = offsets(p, n, off, seq, 64);
    assert_true(k > 3);
    p[off[2] + HDR + 3] ^= 1;
    spit(l.names[1], p, n);
    free(p);
    assert_non_null(mesh_audit_scan_open(NULL, dir, &keys, NULL, &s, NULL) == MESH_OK ? s : NULL);
    int got = 0;
    while (mesh_audit_scan_next(s, &e) == 1)
        got++;
    assert_int_equal(got, 59);
    assert_non_null(mesh_audit_scan_warning(s));
    mesh_audit_scan_close(s);
}

static void test_retention(void **state)
{
    (void)state;
    mesh_audit_opts_t o = quiet_opts(2048);
    mesh_audit_t *a = open_log(&o);
    for (int i = 0; i < 60; i++)
        add(a, i);
    mesh_audit_close(a);
    seglist_t l;
    list(&l);
    assert_true(l.n > 4);
    /* the first three segments were last written two hours ago */
    for (int i = 0; i < 3; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", dir, l.names[i]);
        struct timespec ts[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};
        assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    }
    /* retention looks every quarter of its period (1 s here, at most a minute) */
    o.retention_ns = 4 * MESH_NS_PER_SEC;
    a = open_log(&o);
    seglist_t l2;
    for (int i = 0; i < 100; i++) {
        list(&l2);
        if (l2.n <= l.n - 3)
            break;
        usleep(50 * 1000);
    }
    mesh_audit_close(a);
    list(&l2);
    assert_true(l2.n <= l.n - 3 + 1);
    assert_string_equal(l2.names[0], l.names[3]);
    mesh_audit_verify_t v;
    assert_int_equal(verify(&v, NULL), MESH_OK);
    uint64_t first3;
    assert_int_equal(mesh_parse_u64(l.names[3], 20, &first3), MESH_OK);
    assert_int_equal(v.base_seq, first3);
    assert_int_equal(v.first_seq, first3);
    assert_int_equal(count_action("audit.retention"), 1);
    /* deleting the new first segment is still found */
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, l2.names[0]);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(verify(&v, NULL), MESH_CORRUPT);
    assert_int_equal(v.fault, MESH_AUDIT_FAULT_SEGMENT_MISSING);
    assert_int_equal(v.seq, first3);
}

static void test_key_file(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/key", dir);
    mesh_audit_keys_t k1, k2;
    mesh_err_t err;
    assert_int_equal(mesh_audit_key_load(path, false, &k1, &err), MESH_NOT_FOUND);
    assert_int_equal(mesh_audit_key_load(path, true, &k1, &err), MESH_OK);
    assert_true(k1.encrypt);
    assert_memory_not_equal(k1.mac, k1.enc, 32);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(mesh_audit_key_load(path, true, &k2, &err), MESH_OK);
    assert_memory_equal(&k1, &k2, sizeof k1);
    chmod(path, 0644);
    assert_int_equal(mesh_audit_key_load(path, false, &k2, &err), MESH_FORBIDDEN);
    assert_non_null(strstr(err.msg, "chmod 600"));
    chmod(path, 0600);
    FILE *f = fopen(path, "w");
    fputs("meshd audit key v1\nnot hex\n", f);
    fclose(f);
    assert_int_equal(mesh_audit_key_load(path, false, &k2, &err), MESH_CORRUPT);
    mesh_audit_keys_wipe(&k1);
}

static void test_check_segment(void **state)
{
    (void)state;
    mesh_audit_opts_t o = quiet_opts(0);
    mesh_audit_t *a = open_log(&o);
    for (int i = 0; i < 5; i++)
        add(a, i);
    mesh_audit_close(a);
    seglist_t l;
    list(&l);
    size_t n;
    uint8_t *p = slurp(l.names[0], &n);
    mesh_audit_verify_t v;
    assert_int_equal(mesh_audit_check_segment(p, n, &keys, &v), MESH_OK);
    assert_int_equal(v.events, 5);
    /* every prefix and every single-byte change: no crash, never a false OK but for
     * prefixes ending at a record boundary or changes the format ignores */
    for (size_t cut = 0; cut < n; cut += 7)
        mesh_audit_check_segment(p, cut, &keys, &v);
    for (size_t i = 0; i < n; i += 3) {
        p[i] ^= 0x5a;
        assert_int_equal(mesh_audit_check_segment(p, n, &keys, &v), MESH_CORRUPT);
        p[i] ^= 0x5a;
    }
    /* a header claiming a huge payload */
    uint8_t big[HDR] = {'M', 'A', 'U', '1', 0xff, 0xff, 0xff, 0x7f, 1, 0, 0, 0, 0, 0, 0, 0, 3};
    assert_int_equal(mesh_audit_check_segment(big, sizeof big, &keys, &v), MESH_CORRUPT);
    assert_int_equal(v.fault, MESH_AUDIT_FAULT_MALFORMED);
    assert_int_equal(mesh_audit_check_segment(NULL, 0, &keys, &v), MESH_OK);
    free(p);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(mesh_audit_action_name(MESH_AUDIT_AUTH_FAIL), "auth.fail");
    assert_string_equal(mesh_audit_action_name(MESH_AUDIT_ADMIN_CONTRACT_APPLY),
                        "admin.contract.apply");
    assert_string_equal(mesh_audit_action_name((mesh_audit_action_t)999), "unknown");
    assert_string_equal(mesh_audit_fault_name(MESH_AUDIT_FAULT_TRUNCATED_CHECKPOINT),
                        "TRUNCATED_CHECKPOINT");
    int64_t t;
    assert_int_equal(mesh_audit_parse_time("2026-01-02T03:04:05Z", &t), MESH_OK);
    assert_int_equal(mesh_audit_parse_time("15m", &t), MESH_OK);
    assert_true(t < mesh_now_ns() - 14 * 60 * MESH_NS_PER_SEC);
    assert_int_equal(mesh_audit_parse_time("yesterday", &t), MESH_PARSE);
    /* details that are not a JSON object do not break the record */
    mesh_audit_opts_t o = quiet_opts(0);
    mesh_audit_t *a = open_log(&o);
    mesh_audit_rec_t r = {.action = MESH_AUDIT_QUERY, .details = "{not json"};
    mesh_audit_record(a, &r);
    char *huge = malloc(MESH_AUDIT_MAX_BODY + 10);
    memset(huge, 'x', MESH_AUDIT_MAX_BODY + 9);
    memcpy(huge, "{\"sql\":\"", 8);
    memcpy(huge + MESH_AUDIT_MAX_BODY + 6, "\"}", 3);
    r.details = huge;
    mesh_audit_record(a, &r);
    free(huge);
    mesh_audit_record(NULL, &r);
    mesh_audit_close(a);
    mesh_audit_verify_t v;
    assert_int_equal(verify(&v, NULL), MESH_OK);
    assert_int_equal(v.events, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chain_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sealed_no_plaintext, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edit_one_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reorder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_before_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_after_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_segment_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
