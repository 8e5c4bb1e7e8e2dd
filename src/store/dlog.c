/*
 * dlog.c - segmented append-only log with CRC-32C records and torn-tail recovery, sealed
 * with the domain's data keys when opened with a key ring (format in dlog.h).
 *
 * Sealing and opening go through one scratch buffer owned by the log (grown to the largest
 * record seen) and cached AEAD contexts per key generation, so appending allocates nothing
 * in the steady state.
 */
#include "store/dlog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/util.h"
#include "crypt/aead.h"

#define REC_MAGIC        0x31524c4du /* "MLR1" little-endian: payload in clear */
#define REC_MAGIC_SEALED 0x32524c4du /* "MLR2": sealed body */
#define REC_HEADER       20
#define SEAL_OVERHEAD    (4 + MESH_AEAD_NONCE_BYTES + MESH_AEAD_TAG_BYTES)
#define AEAD_CACHE       4

typedef struct segment {
    uint64_t first_seq;
    uint64_t size;
} segment_t;

struct mesh_dlog {
    char *dir;
    segment_t *segs;
    size_t nsegs, cap;
    int fd; /* the last segment, open for append */
    uint64_t last_seq;
    uint64_t bytes;     /* total on disk */
    int dirty;          /* appended since the last sync */
    uint64_t must_hold; /* records up to here were applied by the store: synced */
    bool broken;        /* see mesh_dlog_broken */
    /* sealing (ring NULL: records in clear) */
    const mesh_keyring_t *ring;
    struct {
        uint32_t gen;
        const mesh_key_t *key;
        mesh_aead_t *a;
    } aead[AEAD_CACHE];
    size_t naead;
    uint8_t *scratch; /* a sealed body or an opened payload */
    size_t scratch_cap;
    /* where the last replay stopped: record seq starts at byte off of the segment whose first
     * record is seg (seq 0: not known). A replay from there on starts at it instead of the
     * segment's first record: the async outbox reads the tail of a segment after every write,
     * and walking (checksumming) the segment from its start each time cost the writer time
     * quadratic in the records since the last trim. Forgotten by a rewind. */
    struct {
        uint64_t seq, seg;
        size_t off;
    } hint;
};

/* The AEAD context for generation gen (NULL when the ring has no such key). */
static mesh_aead_t *aead_for(mesh_dlog_t *log, uint32_t gen)
{
    mesh_key_t *k = mesh_keyring_get(log->ring, gen);
    if (k == NULL)
        return NULL;
    for (size_t i = 0; i < log->naead; i++)
        if (log->aead[i].gen == gen && log->aead[i].key == k)
            return log->aead[i].a;
    size_t slot = log->naead < AEAD_CACHE ? log->naead++ : 0;
    if (slot < log->naead && log->aead[slot].a) {
        mesh_aead_free(log->aead[slot].a);
        log->aead[slot].a = NULL;
    }
    if (mesh_aead_new(mesh_key_secret(k), &log->aead[slot].a) != MESH_OK)
        return NULL;
    log->aead[slot].gen = gen;
    log->aead[slot].key = k;
    return log->aead[slot].a;
}

static mesh_status_t scratch_for(mesh_dlog_t *log, size_t n)
{
    if (log->scratch_cap >= n)
        return MESH_OK;
    size_t cap = log->scratch_cap ? log->scratch_cap : 4096;
    while (cap < n)
        cap *= 2;
    uint8_t *p = realloc(log->scratch, cap);
    if (p == NULL)
        return MESH_NOMEM;
    log->scratch = p;
    log->scratch_cap = cap;
    return MESH_OK;
}

static void seal_aad(uint64_t seq, uint32_t gen, uint8_t aad[16])
{
    for (int i = 0; i < 4; i++)
        aad[i] = (uint8_t)(REC_MAGIC_SEALED >> (8 * i));
    for (int i = 0; i < 8; i++)
        aad[4 + i] = (uint8_t)(seq >> (8 * i));
    for (int i = 0; i < 4; i++)
        aad[12 + i] = (uint8_t)(gen >> (8 * i));
}

static void seg_path(const mesh_dlog_t *log, uint64_t first, char *out, size_t n)
{
    snprintf(out, n, "%s/%020" PRIu64 ".seg", log->dir, first);
}

static int seg_cmp(const void *a, const void *b)
{
    const segment_t *x = a, *y = b;
    return x->first_seq < y->first_seq ? -1 : x->first_seq > y->first_seq;
}

static mesh_status_t add_seg(mesh_dlog_t *log, uint64_t first, uint64_t size)
{
    if (log->nsegs == log->cap) {
        size_t ncap = log->cap ? log->cap * 2 : 8;
        segment_t *s = realloc(log->segs, ncap * sizeof *s);
        if (s == NULL)
            return MESH_NOMEM;
        log->segs = s;
        log->cap = ncap;
    }
    log->segs[log->nsegs].first_seq = first;
    log->segs[log->nsegs].size = size;
    log->nsegs++;
    return MESH_OK;
}

static uint32_t rec_crc(uint32_t len, uint64_t seq, const uint8_t *p, size_t n)
{
    uint8_t h[12];
    for (int i = 0; i < 4; i++)
        h[i] = (uint8_t)(len >> (8 * i));
    for (int i = 0; i < 8; i++)
        h[4 + i] = (uint8_t)(seq >> (8 * i));
    return mesh_crc32c(mesh_crc32c(0, h, sizeof h), p, n);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/* Opens a sealed body into the scratch buffer: the payload and its length, or an error. */
static mesh_status_t unseal(mesh_dlog_t *log, uint64_t seq, const uint8_t *body, size_t len,
                            const uint8_t **out, size_t *n, mesh_err_t *err)
{
    uint32_t gen = rd32(body);
    mesh_aead_t *a = aead_for(log, gen);
    if (a == NULL)
        return mesh_err_set(err, MESH_CORRUPT,
                            "log %s: record %" PRIu64 " is sealed with key generation %u, which "
                            "the domain's key file does not hold",
                            log->dir, seq, (unsigned)gen);
    size_t plen = len - SEAL_OVERHEAD;
    if (scratch_for(log, plen + 1) != MESH_OK)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    uint8_t aad[16];
    seal_aad(seq, gen, aad);
    if (!mesh_aead_open(a, body + 4, aad, sizeof aad, body + 4 + MESH_AEAD_NONCE_BYTES, plen,
                        log->scratch, body + len - MESH_AEAD_TAG_BYTES))
        return mesh_err_set(err, MESH_CORRUPT,
                            "log %s: record %" PRIu64 " fails authentication (the file was "
                            "damaged or altered, or the record was sealed with another key)",
                            log->dir, seq);
    *out = log->scratch;
    *n = plen;
    return MESH_OK;
}

/*
 * Walks the records of a mapped segment. Stops at the first record that is short or fails
 * its check; *good is the byte length of the valid prefix and *last the last valid seq.
 * fn (optional) is called for records with seq > after (opened first when sealed). A valid
 * record of the other kind (sealed in a clear log, or the reverse) is an error.
 */
static mesh_status_t walk(mesh_dlog_t *log, const uint8_t *p, size_t n, uint64_t expect_seq,
                          size_t start, uint64_t *good, uint64_t *last, uint64_t after,
                          mesh_dlog_fn fn, void *arg, size_t *stop, mesh_err_t *err)
{
    size_t off = start;
    *good = start;
    uint32_t want = log->ring ? REC_MAGIC_SEALED : REC_MAGIC;
    size_t max = MESH_DLOG_MAX_RECORD + (log->ring ? SEAL_OVERHEAD : 0);
    while (n - off >= REC_HEADER) {
        const uint8_t *h = p + off;
        uint32_t magic = rd32(h);
        uint32_t len = rd32(h + 4);
        uint64_t seq = rd64(h + 8);
        if ((magic != REC_MAGIC && magic != REC_MAGIC_SEALED) || len > n - off - REC_HEADER ||
            seq != expect_seq || rd32(h + 16) != rec_crc(len, seq, h + REC_HEADER, len))
            break;
        if (magic != want)
            return mesh_err_set(err, MESH_CORRUPT, "log %s holds %s records, but the domain is %s",
                                log->dir, magic == REC_MAGIC_SEALED ? "encrypted" : "clear-text",
                                log->ring ? "encrypted" : "not encrypted (encryption=off)");
        if (len > max || (log->ring && len < SEAL_OVERHEAD))
            break;
        if (fn && seq > after) {
            const uint8_t *pl = h + REC_HEADER;
            size_t pn = len;
            mesh_status_t st = MESH_OK;
            if (log->ring)
                st = unseal(log, seq, h + REC_HEADER, len, &pl, &pn, err);
            if (st == MESH_OK)
                st = fn(arg, seq, pl, pn);
            if (st != MESH_OK) {
                if (stop)
                    *stop = off; /* where record seq starts */
                return st;
            }
        }
        off += REC_HEADER + len;
        *good = off;
        *last = seq;
        expect_seq++;
    }
    return MESH_OK;
}

static mesh_status_t map_file(const char *path, uint8_t **p, size_t *n, mesh_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mesh_err_set(err, MESH_IO, "open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return mesh_err_set(err, MESH_IO, "stat %s: %s", path, strerror(errno));
    }
    *n = (size_t)st.st_size;
    *p = NULL;
    if (*n > 0) {
        void *m = mmap(NULL, *n, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            return mesh_err_set(err, MESH_IO, "mmap %s: %s", path, strerror(errno));
        }
        *p = m;
    }
    close(fd);
    return MESH_OK;
}

static mesh_status_t open_segment_for_append(mesh_dlog_t *log, uint64_t first, mesh_err_t *err)
{
    char path[4096];
    seg_path(log, first, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return mesh_err_set(err, errno == ENOSPC ? MESH_NOSPACE : MESH_IO, "create %s: %s", path,
                            strerror(errno));
    if (log->fd >= 0)
        close(log->fd);
    log->fd = fd;
    return MESH_OK;
}

static mesh_status_t new_segment(mesh_dlog_t *log, uint64_t first, mesh_err_t *err)
{
    mesh_status_t st = open_segment_for_append(log, first, err);
    if (st != MESH_OK)
        return st;
    if ((st = add_seg(log, first, 0)) != MESH_OK)
        return mesh_err_set(err, st, "out of memory");
    if (mesh_fsync_dir(log->dir) != MESH_OK)
        return mesh_err_set(err, MESH_IO, "fsync %s: %s", log->dir, strerror(errno));
    return MESH_OK;
}

static mesh_status_t list_segments(mesh_dlog_t *log, mesh_err_t *err)
{
    DIR *d = opendir(log->dir);
    if (d == NULL)
        return mesh_err_set(err, MESH_IO, "opendir %s: %s", log->dir, strerror(errno));
    struct dirent *e;
    mesh_status_t st = MESH_OK;
    while ((e = readdir(d)) != NULL && st == MESH_OK) {
        size_t l = strlen(e->d_name);
        if (l != 24 || strcmp(e->d_name + 20, ".seg") != 0)
            continue;
        uint64_t first;
        if (mesh_parse_u64(e->d_name, 20, &first) != MESH_OK)
            continue;
        char path[4096];
        seg_path(log, first, path, sizeof path);
        struct stat stt;
        if (stat(path, &stt) != 0) {
            st = mesh_err_set(err, MESH_IO, "stat %s: %s", path, strerror(errno));
            break;
        }
        st = add_seg(log, first, (uint64_t)stt.st_size);
        log->bytes += (uint64_t)stt.st_size;
    }
    closedir(d);
    if (st == MESH_OK && log->nsegs > 1)
        qsort(log->segs, log->nsegs, sizeof *log->segs, seg_cmp);
    return st;
}

/* Validates the last segment, cuts a torn tail and finds the last sequence. */
static mesh_status_t recover_tail(mesh_dlog_t *log, mesh_err_t *err)
{
    segment_t *s = &log->segs[log->nsegs - 1];
    char path[4096];
    seg_path(log, s->first_seq, path, sizeof path);
    uint8_t *p;
    size_t n;
    mesh_status_t st = map_file(path, &p, &n, err);
    if (st != MESH_OK)
        return st;
    uint64_t good = 0, last = s->first_seq - 1;
    st = walk(log, p, n, s->first_seq, 0, &good, &last, 0, NULL, NULL, NULL, err);
    if (p)
        munmap(p, n);
    if (st != MESH_OK)
        return st;
    if (good < n && last < log->must_hold)
        return mesh_err_set(err, MESH_CORRUPT,
                            "log segment %s is damaged at record %" PRIu64
                            ", which the store has applied (it was synced: not a torn write)",
                            path, last + 1);
    if (good < n) {
        if (truncate(path, (off_t)good) != 0)
            return mesh_err_set(err, MESH_IO, "truncate %s: %s", path, strerror(errno));
        log->bytes -= n - good;
        s->size = good;
    }
    log->last_seq = last;
    return MESH_OK;
}

mesh_status_t mesh_dlog_open(const char *dir, uint64_t first_seq, mesh_dlog_t **out,
                             mesh_err_t *err)
{
    return mesh_dlog_open_sealed(dir, first_seq, NULL, out, err);
}

mesh_status_t mesh_dlog_open_sealed(const char *dir, uint64_t first_seq, const mesh_keyring_t *ring,
                                    mesh_dlog_t **out, mesh_err_t *err)
{
    mesh_dlog_t *log = calloc(1, sizeof *log);
    if (log == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    log->fd = -1;
    log->ring = ring;
    log->must_hold = first_seq ? first_seq - 1 : 0;
    mesh_status_t st;
    if ((log->dir = strdup(dir)) == NULL) {
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
        goto err;
    }
    if ((st = mesh_mkdirs(dir, 0700, err)) != MESH_OK)
        goto err;
    if ((st = list_segments(log, err)) != MESH_OK)
        goto err;
    if (first_seq == 0)
        first_seq = 1;
    if (log->nsegs == 0) {
        log->last_seq = first_seq - 1;
        st = new_segment(log, first_seq, err);
    } else {
        if ((st = recover_tail(log, err)) != MESH_OK)
            goto err;
        if (log->last_seq + 1 < first_seq) {
            /* the store is ahead of the log (log lost or trimmed): continue after the store */
            log->last_seq = first_seq - 1;
            st = new_segment(log, first_seq, err);
        } else {
            st = open_segment_for_append(log, log->segs[log->nsegs - 1].first_seq, err);
        }
    }
    if (st != MESH_OK)
        goto err;
    *out = log;
    return MESH_OK;
err:
    mesh_dlog_close(log);
    return st;
}

void mesh_dlog_close(mesh_dlog_t *log)
{
    if (log == NULL)
        return;
    if (log->fd >= 0) {
        if (log->dirty)
            fdatasync(log->fd);
        close(log->fd);
    }
    for (size_t i = 0; i < log->naead; i++)
        mesh_aead_free(log->aead[i].a);
    if (log->scratch) {
        mesh_cleanse(log->scratch, log->scratch_cap);
        free(log->scratch);
    }
    free(log->segs);
    free(log->dir);
    free(log);
}

mesh_status_t mesh_dlog_append(mesh_dlog_t *log, const void *payload, size_t n, uint64_t *seq,
                               mesh_err_t *err)
{
    if (n > MESH_DLOG_MAX_RECORD)
        return mesh_err_set(err, MESH_TOO_LARGE, "log record of %zu bytes exceeds %u", n,
                            MESH_DLOG_MAX_RECORD);
    if (log->broken)
        return mesh_err_set(err, MESH_UNAVAILABLE,
                            "log %s takes no more records after a failed write or sync; restart "
                            "meshd",
                            log->dir);
    segment_t *cur = &log->segs[log->nsegs - 1];
    if (cur->size >= MESH_DLOG_SEGMENT_SIZE) {
        mesh_status_t st = mesh_dlog_sync(log, err);
        if (st != MESH_OK)
            return st;
        if ((st = new_segment(log, log->last_seq + 1, err)) != MESH_OK)
            return st;
        cur = &log->segs[log->nsegs - 1];
    }
    uint64_t s = log->last_seq + 1;
    if (log->ring) {
        /* the body replaces the payload: key generation, nonce, ciphertext, tag */
        uint32_t gen = log->ring->current;
        mesh_aead_t *a = aead_for(log, gen);
        mesh_key_t *k = mesh_keyring_get(log->ring, gen);
        if (a == NULL || k == NULL)
            return mesh_err_set(err, MESH_INTERNAL, "log %s: no key for generation %u", log->dir,
                                (unsigned)gen);
        if (scratch_for(log, n + SEAL_OVERHEAD) != MESH_OK)
            return mesh_err_set(err, MESH_NOMEM, "out of memory");
        uint8_t *b = log->scratch, aad[16];
        for (int i = 0; i < 4; i++)
            b[i] = (uint8_t)(gen >> (8 * i));
        mesh_key_nonce(k, b + 4);
        seal_aad(s, gen, aad);
        if (!mesh_aead_seal(a, b + 4, aad, sizeof aad, payload, n, b + 4 + MESH_AEAD_NONCE_BYTES,
                            b + 4 + MESH_AEAD_NONCE_BYTES + n))
            return mesh_err_set(err, MESH_INTERNAL, "log %s: sealing failed", log->dir);
        payload = b;
        n += SEAL_OVERHEAD;
    }
    uint8_t h[REC_HEADER];
    uint32_t len = (uint32_t)n;
    uint32_t crc = rec_crc(len, s, payload, n);
    uint32_t magic = log->ring ? REC_MAGIC_SEALED : REC_MAGIC;
    for (int i = 0; i < 4; i++) {
        h[i] = (uint8_t)(magic >> (8 * i));
        h[4 + i] = (uint8_t)(len >> (8 * i));
        h[16 + i] = (uint8_t)(crc >> (8 * i));
    }
    for (int i = 0; i < 8; i++)
        h[8 + i] = (uint8_t)(s >> (8 * i));
    struct iovec iov[2] = {{h, REC_HEADER}, {(void *)payload, n}};
    size_t total = REC_HEADER + n, done = 0;
    while (done < total) {
        ssize_t w;
        if (done < REC_HEADER) {
            struct iovec v[2] = {{h + done, REC_HEADER - done}, iov[1]};
            w = writev(log->fd, v, 2);
        } else {
            w = write(log->fd, (const uint8_t *)payload + (done - REC_HEADER), total - done);
        }
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            /* cut the partial record so the segment stays a clean run of records */
            if (done > 0 && ftruncate(log->fd, (off_t)cur->size) != 0) {
                log->broken = true;
                return mesh_err_set(err, MESH_IO, "log write failed (%s) and truncate failed",
                                    strerror(e));
            }
            return mesh_err_set(err, (e == ENOSPC || e == EDQUOT) ? MESH_NOSPACE : MESH_IO,
                                "log write: %s", strerror(e));
        }
        done += (size_t)w;
    }
    cur->size += total;
    log->bytes += total;
    log->last_seq = s;
    log->dirty = 1;
    *seq = s;
    return MESH_OK;
}

mesh_status_t mesh_dlog_sync(mesh_dlog_t *log, mesh_err_t *err)
{
    if (!log->dirty)
        return MESH_OK;
    if (fdatasync(log->fd) != 0) {
        int e = errno;
        log->broken = true; /* never retried: the kernel may have dropped the failed pages */
        return mesh_err_set(err, e == ENOSPC ? MESH_NOSPACE : MESH_IO, "log fdatasync: %s",
                            strerror(e));
    }
    log->dirty = 0;
    return MESH_OK;
}

bool mesh_dlog_broken(const mesh_dlog_t *log)
{
    return log->broken;
}

uint64_t mesh_dlog_last_seq(const mesh_dlog_t *log)
{
    return log->last_seq;
}

uint64_t mesh_dlog_first_seq(const mesh_dlog_t *log)
{
    return log->nsegs ? log->segs[0].first_seq : log->last_seq + 1;
}

uint64_t mesh_dlog_size(const mesh_dlog_t *log)
{
    return log->bytes;
}

mesh_status_t mesh_dlog_replay(mesh_dlog_t *log, uint64_t after, mesh_dlog_fn fn, void *arg,
                               mesh_err_t *err)
{
    /* records after `after` that were trimmed away cannot be replayed: say so rather than
     * start at the first record still here (a store older than the log's trim point) */
    if (log->last_seq > after && log->segs[0].first_seq > after + 1)
        return mesh_err_set(err, MESH_CORRUPT,
                            "log %s starts at seq %" PRIu64 ": records %" PRIu64 "..%" PRIu64
                            " are missing (trimmed after a checkpoint)",
                            log->dir, log->segs[0].first_seq, after + 1,
                            log->segs[0].first_seq - 1);
    for (size_t i = 0; i < log->nsegs; i++) {
        segment_t *s = &log->segs[i];
        uint64_t next_first = i + 1 < log->nsegs ? log->segs[i + 1].first_seq : log->last_seq + 1;
        if (next_first <= after + 1)
            continue; /* every record here is already applied */
        char path[4096];
        seg_path(log, s->first_seq, path, sizeof path);
        /* start where the last replay stopped when that is not past the first record wanted
         * (the records before it were checked then, and a log only grows between rewinds) */
        uint64_t first = s->first_seq;
        size_t start = 0;
        if (log->hint.seq != 0 && log->hint.seg == s->first_seq && log->hint.seq <= after + 1 &&
            log->hint.off <= s->size) {
            first = log->hint.seq;
            start = log->hint.off;
        }
        uint8_t *p;
        size_t n;
        mesh_status_t st = map_file(path, &p, &n, err);
        if (st != MESH_OK)
            return st;
        if (start > n) { /* not the file the hint was taken from */
            first = s->first_seq;
            start = 0;
        }
        uint64_t good = 0, last = first - 1;
        size_t stop = SIZE_MAX;
        mesh_err_t e2;
        mesh_err_clear(&e2);
        st = walk(log, p, n, first, start, &good, &last, after, fn, arg, &stop, &e2);
        if (p)
            munmap(p, n);
        if (stop != SIZE_MAX) {
            log->hint.seq = last + 1;
            log->hint.seg = s->first_seq;
            log->hint.off = stop;
        }
        if (st != MESH_OK) {
            if (e2.msg[0])
                return mesh_err_set(err, st, "%s", e2.msg);
            return mesh_err_set(err, st, "replay of %s stopped at seq %" PRIu64, path, last + 1);
        }
        if (good != n || last + 1 != next_first)
            return mesh_err_set(err, MESH_CORRUPT,
                                "log segment %s is damaged after seq %" PRIu64
                                " (expected records up to %" PRIu64 ")",
                                path, last, next_first - 1);
        log->hint.seq = last + 1;
        log->hint.seg = s->first_seq;
        log->hint.off = good;
    }
    return MESH_OK;
}

mesh_status_t mesh_dlog_trim(mesh_dlog_t *log, uint64_t seq, mesh_err_t *err)
{
    /* everything is in the store: start an empty segment so the full one can go too */
    if (seq >= log->last_seq && log->segs[log->nsegs - 1].size > 0) {
        mesh_status_t st = mesh_dlog_sync(log, err);
        if (st == MESH_OK)
            st = new_segment(log, log->last_seq + 1, err);
        if (st != MESH_OK)
            return st;
    }
    size_t drop = 0;
    while (drop + 1 < log->nsegs && log->segs[drop + 1].first_seq <= seq + 1) {
        char path[4096];
        seg_path(log, log->segs[drop].first_seq, path, sizeof path);
        if (unlink(path) != 0 && errno != ENOENT)
            return mesh_err_set(err, MESH_IO, "unlink %s: %s", path, strerror(errno));
        log->bytes -= log->segs[drop].size;
        drop++;
    }
    if (drop) {
        memmove(log->segs, log->segs + drop, (log->nsegs - drop) * sizeof *log->segs);
        log->nsegs -= drop;
        mesh_fsync_dir(log->dir);
    }
    return MESH_OK;
}

void mesh_dlog_mark(const mesh_dlog_t *log, mesh_dlog_mark_t *m)
{
    m->nsegs = log->nsegs;
    m->last_seq = log->last_seq;
    m->size = log->segs[log->nsegs - 1].size;
    m->bytes = log->bytes;
}

mesh_status_t mesh_dlog_rewind(mesh_dlog_t *log, const mesh_dlog_mark_t *m, mesh_err_t *err)
{
    char path[4096];
    log->hint.seq = 0; /* the records after the mark are rewritten */
    /* segments started after the mark go entirely */
    while (log->nsegs > m->nsegs) {
        seg_path(log, log->segs[log->nsegs - 1].first_seq, path, sizeof path);
        if (unlink(path) != 0 && errno != ENOENT)
            return mesh_err_set(err, MESH_IO, "unlink %s: %s", path, strerror(errno));
        log->nsegs--;
    }
    segment_t *s = &log->segs[log->nsegs - 1];
    mesh_status_t st = open_segment_for_append(log, s->first_seq, err);
    if (st != MESH_OK)
        return st;
    if (ftruncate(log->fd, (off_t)m->size) != 0 || fdatasync(log->fd) != 0)
        return mesh_err_set(err, MESH_IO, "log rewind: %s", strerror(errno));
    s->size = m->size;
    log->last_seq = m->last_seq;
    log->bytes = m->bytes;
    log->dirty = 0;
    mesh_fsync_dir(log->dir);
    return MESH_OK;
}

bool mesh_dlog_only_gen(mesh_dlog_t *log, uint32_t gen)
{
    if (log->ring == NULL)
        return false;
    for (size_t i = 0; i < log->nsegs; i++) {
        char path[4096];
        seg_path(log, log->segs[i].first_seq, path, sizeof path);
        uint8_t *p;
        size_t n;
        if (map_file(path, &p, &n, NULL) != MESH_OK)
            return false;
        bool ok = true;
        for (size_t off = 0; ok && n - off >= REC_HEADER;) {
            uint32_t len = rd32(p + off + 4);
            if (len < 4 || len > n - off - REC_HEADER)
                break;
            ok = rd32(p + off + REC_HEADER) == gen;
            off += REC_HEADER + len;
        }
        if (p)
            munmap(p, n);
        if (!ok)
            return false;
    }
    return true;
}

static mesh_status_t count_fn(void *arg, uint64_t seq, const uint8_t *p, size_t n)
{
    (void)seq;
    (void)p;
    (void)n;
    (*(uint64_t *)arg)++;
    return MESH_OK;
}

mesh_status_t mesh_dlog_check(const char *dir, const mesh_keyring_t *ring, uint64_t *records,
                              uint64_t *torn_bytes, mesh_err_t *err)
{
    *records = 0;
    *torn_bytes = 0;
    mesh_dlog_t *log = calloc(1, sizeof *log);
    if (log == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    log->fd = -1;
    log->ring = ring;
    mesh_status_t st = MESH_OK;
    if ((log->dir = strdup(dir)) == NULL)
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
    if (st == MESH_OK && access(dir, F_OK) == 0)
        st = list_segments(log, err);
    for (size_t i = 0; i < log->nsegs && st == MESH_OK; i++) {
        char path[4096];
        seg_path(log, log->segs[i].first_seq, path, sizeof path);
        uint8_t *p;
        size_t n;
        if ((st = map_file(path, &p, &n, err)) != MESH_OK)
            break;
        uint64_t good = 0, last = log->segs[i].first_seq - 1;
        st = walk(log, p, n, log->segs[i].first_seq, 0, &good, &last, 0, count_fn, records, NULL,
                  err);
        if (p)
            munmap(p, n);
        if (st != MESH_OK)
            break;
        uint64_t next_first = i + 1 < log->nsegs ? log->segs[i + 1].first_seq : last + 1;
        if (i + 1 == log->nsegs)
            *torn_bytes = n - good;
        else if (good != n || last + 1 != next_first)
            st = mesh_err_set(err, MESH_CORRUPT,
                              "log segment %s is damaged after seq %" PRIu64
                              " (expected records up to %" PRIu64 ")",
                              path, last, next_first - 1);
    }
    mesh_dlog_close(log);
    return st;
}
