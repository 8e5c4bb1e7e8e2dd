/*
 * audit.c - the appender: opening (with torn-tail recovery), group-flushed appends from many
 * threads, segment rotation, checkpoints and retention on a background thread, and the key
 * file.
 *
 * Locks: mu guards the chain (seq, prev), the pending buffer, the current segment and the
 * segment list. Encoding (seal + MAC) happens under mu, so seq order is chain order and file
 * order. The write(2) of the pending bytes happens outside mu, by one "leader" thread at a
 * time (writing = true); records appended meanwhile wait in pend for the leader's next pass.
 * Whoever needs the file quiet (rotation, checkpoint, snapshot, close) counts itself in
 * quiet_waiters, waits for !writing on `flushed` and then writes pend itself under mu; the
 * leader ends its pass as soon as someone waits, and appenders hold back meanwhile, so
 * under a steady stream of appends neither a checkpoint nor a rotation is starved. cp_mu serialises
 * checkpoints (their fsync and HEAD write run outside mu, so appenders never wait for a disk sync)
 * and owns hc, the crypto context of HEAD.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/internal.h"
#include "core/log.h"
#include "core/util.h"

#define PEND_MAX        (16u << 20) /* records waiting for a failing disk, then counted as lost */
#define RETRY_NS        (1000LL * 1000 * 1000)
#define RETENTION_EVERY (60LL * MESH_NS_PER_SEC) /* at most; a short retention checks sooner */
#define REPAIR_SAVE_MAX (1u << 20)
#define KEY_HEADER      "meshd audit key v1\n"

struct mesh_audit {
    char *dir;
    mesh_audit_opts_t opts;
    pthread_mutex_t mu;
    pthread_cond_t flushed; /* the leader finished a write pass */
    pthread_cond_t wake;    /* the background thread */
    aud_crypto_t c;         /* under mu */
    /* the chain */
    uint64_t seq;
    uint8_t prev[AUD_MAC];
    /* records encoded but not yet written, and the leader's buffer */
    mesh_buf_t pend, wbuf;
    bool writing;
    int quiet_waiters; /* threads waiting for the leader to stop (rotation, checkpoint) */
    bool rotating;     /* a thread is starting a new segment */
    /* segments; the last one is open for append */
    aud_seg_t *segs;
    size_t nsegs, segcap;
    int fd;
    uint64_t seg_bytes;   /* bytes of the current segment written or pending */
    uint64_t seg_written; /* bytes of the current segment in the file */
    uint64_t bytes;       /* of every segment in the files */
    /* checkpoints */
    pthread_mutex_t cp_mu;
    aud_crypto_t hc;         /* under cp_mu */
    uint64_t since_cp;       /* events since the last checkpoint record */
    int64_t first_uncp_mono; /* when the first of them was appended */
    uint64_t cp_seq;         /* of the checkpoint HEAD names */
    int64_t cp_failed_mono;  /* when the last checkpoint failed */
    uint64_t base_seq;
    /* failures */
    bool failing;
    int64_t last_try_mono;
    uint64_t lost, lost_reported;
    /* the background thread */
    pthread_t bg;
    bool bg_started, stop;
    int64_t last_retention_mono;
    /* the catalog witness (see audit.h): newest version recorded, under mu */
    int64_t cat_version;
    mesh_audit_catalog_fn cat_fn;
    void *cat_arg;
};

const char *mesh_audit_action_name(mesh_audit_action_t a)
{
    static const char *const names[] = {
#define MESH_X_NAME(name, text) text,
        MESH_AUDIT_ACTION_MAP(MESH_X_NAME)
#undef MESH_X_NAME
    };
    return (unsigned)a < MESH_ARRAY_LEN(names) ? names[a] : "unknown";
}

/* ---- key file ---- */

static void hkdf_expand(const uint8_t *prk, const char *info, uint8_t out[32])
{
    /* HKDF-Expand (RFC 5869) for one block: HMAC(PRK, info || 0x01) */
    uint8_t msg[64];
    size_t n = strlen(info);
    memcpy(msg, info, n);
    msg[n] = 1;
    unsigned int len = 32;
    HMAC(EVP_sha256(), prk, 32, msg, n + 1, out, &len);
}

mesh_status_t mesh_audit_key_load(const char *path, bool create, mesh_audit_keys_t *out,
                                  mesh_err_t *err)
{
    uint8_t master[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT && create) {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return mesh_err_set(err, MESH_IO, "create %s: %s", path, strerror(errno));
        char text[sizeof KEY_HEADER + 2 * sizeof master + 2];
        if (mesh_random(master, sizeof master) != MESH_OK) {
            close(fd);
            unlink(path);
            return mesh_err_set(err, MESH_IO, "no randomness for the audit key");
        }
        size_t n = (size_t)snprintf(text, sizeof text, "%s", KEY_HEADER);
        mesh_hex(master, sizeof master, text + n);
        n += 2 * sizeof master;
        text[n++] = '\n';
        mesh_status_t st = mesh_write_all(fd, text, n);
        OPENSSL_cleanse(text, sizeof text);
        if (st != MESH_OK || fsync(fd) != 0) {
            close(fd);
            unlink(path);
            OPENSSL_cleanse(master, sizeof master);
            return mesh_err_set(err, MESH_IO, "write %s: %s", path, strerror(errno));
        }
        close(fd);
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) {
            *slash = '\0';
            mesh_fsync_dir(*dir ? dir : "/");
        }
    } else {
        if (fd < 0)
            return mesh_err_set(err, errno == ENOENT ? MESH_NOT_FOUND : MESH_IO, "open %s: %s",
                                path, strerror(errno));
        struct stat sb;
        if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            close(fd);
            return mesh_err_set(err, MESH_IO, "%s is not a regular file", path);
        }
        if (sb.st_mode & 077) {
            close(fd);
            return mesh_err_set(err, MESH_FORBIDDEN,
                                "%s may be read or written by other users: chmod 600 %s", path,
                                path);
        }
        char text[256];
        ssize_t n = read(fd, text, sizeof text - 1);
        close(fd);
        size_t hl = strlen(KEY_HEADER);
        bool ok = n > 0 && (size_t)n >= hl + 2 * sizeof master && memcmp(text, KEY_HEADER, hl) == 0;
        if (ok) {
            text[hl + 2 * sizeof master] = '\0';
            ok = mesh_unhex(text + hl, master, sizeof master);
        }
        OPENSSL_cleanse(text, sizeof text);
        if (!ok)
            return mesh_err_set(err, MESH_CORRUPT, "%s is not an audit key file", path);
    }
    mesh_audit_keys_derive(master, out);
    OPENSSL_cleanse(master, sizeof master);
    return MESH_OK;
}

void mesh_audit_keys_derive(const uint8_t master[MESH_AUDIT_KEY_LEN], mesh_audit_keys_t *out)
{
    memset(out, 0, sizeof *out);
    hkdf_expand(master, "meshd audit mac v1", out->mac);
    hkdf_expand(master, "meshd audit enc v1", out->enc);
    out->encrypt = true;
}

void mesh_audit_keys_wipe(mesh_audit_keys_t *k)
{
    OPENSSL_cleanse(k, sizeof *k);
}

/* ---- writing ---- */

static void seg_path(const mesh_audit_t *a, uint64_t first, char *out, size_t cap)
{
    char name[AUD_SEG_NAME + 1];
    mesh__audit_seg_name(first, name);
    snprintf(out, cap, "%s/%s", a->dir, name);
}

/* Writes n bytes at the end of the segment whose size is at; a partial write is cut off so
 * the file stays a clean run of records. */
static mesh_status_t write_bytes(int fd, const char *p, size_t n, uint64_t at, mesh_err_t *err)
{
    mesh_status_t st = mesh_write_all(fd, p, n);
    if (st == MESH_OK)
        return MESH_OK;
    int e = errno;
    if (ftruncate(fd, (off_t)at) != 0)
        LOG_ERROR("audit", "a failed write left a partial record: truncate: %s", strerror(errno));
    return mesh_err_set(err, st, "audit log write: %s", strerror(e));
}

static void note_written(mesh_audit_t *a, size_t n)
{
    a->seg_written += n;
    a->bytes += n;
    a->segs[a->nsegs - 1].size = a->seg_written;
}

static void note_failure(mesh_audit_t *a, const mesh_err_t *err)
{
    if (!a->failing)
        LOG_ERROR("audit", "%s; audit records wait in memory (up to %u MiB)", err->msg,
                  PEND_MAX >> 20);
    a->failing = true;
    a->last_try_mono = mesh_mono_ns();
}

/* With mu held: waits for the leader to stop, then writes pend to the current segment. */
static mesh_status_t write_pending_locked(mesh_audit_t *a, mesh_err_t *err)
{
    a->quiet_waiters++;
    while (a->writing)
        pthread_cond_wait(&a->flushed, &a->mu);
    if (--a->quiet_waiters == 0)
        pthread_cond_broadcast(&a->flushed); /* appenders held back go on once mu is free */
    if (a->pend.len == 0)
        return MESH_OK;
    mesh_status_t st = write_bytes(a->fd, a->pend.data, a->pend.len, a->seg_written, err);
    if (st != MESH_OK) {
        note_failure(a, err);
        return st;
    }
    note_written(a, a->pend.len);
    mesh_buf_reset(&a->pend);
    if (a->failing)
        LOG_INFO("audit", "audit log writes work again");
    a->failing = false;
    return MESH_OK;
}

/* With mu held: the group flush. The caller becomes the leader unless one is writing. */
static void flush_group(mesh_audit_t *a)
{
    if (a->writing || a->quiet_waiters > 0) /* the waiter writes what is pending */
        return;
    if (a->failing && mesh_mono_ns() - a->last_try_mono < RETRY_NS)
        return;
    a->writing = true;
    while (a->pend.len && a->quiet_waiters == 0) {
        mesh_buf_t t = a->pend;
        a->pend = a->wbuf;
        a->wbuf = t;
        int fd = a->fd;
        uint64_t at = a->seg_written;
        pthread_mutex_unlock(&a->mu);
        mesh_err_t err;
        mesh_status_t st = write_bytes(fd, a->wbuf.data, a->wbuf.len, at, &err);
        pthread_mutex_lock(&a->mu);
        if (st != MESH_OK) {
            /* put them back in front of what came meanwhile */
            if (mesh_buf_add(&a->wbuf, a->pend.data ? a->pend.data : "", a->pend.len) == MESH_OK) {
                t = a->pend;
                a->pend = a->wbuf;
                a->wbuf = t;
            } else {
                a->lost += 1; /* cannot happen within PEND_MAX; counted, not hidden */
            }
            mesh_buf_reset(&a->wbuf);
            note_failure(a, &err);
            break;
        }
        note_written(a, a->wbuf.len);
        mesh_buf_reset(&a->wbuf);
        if (a->failing)
            LOG_INFO("audit", "audit log writes work again");
        a->failing = false;
    }
    a->writing = false;
    pthread_cond_broadcast(&a->flushed);
}

static void add_time(mesh_buf_t *b, int64_t ns)
{
    mesh_buf_printf(b, "{\"time\":%lld", (long long)ns);
}

/* With mu held: encodes a record of type with body into pend as seq + 1. */
static mesh_status_t encode_locked(mesh_audit_t *a, int type, const char *body, size_t n)
{
    uint8_t mac[AUD_MAC];
    size_t before = a->pend.len;
    mesh_status_t st = mesh__audit_encode(&a->c, a->seq + 1, type, a->prev, body, n, &a->pend, mac);
    if (st != MESH_OK)
        return st;
    a->seq++;
    memcpy(a->prev, mac, AUD_MAC);
    a->seg_bytes += a->pend.len - before;
    return MESH_OK;
}

/* The segment record that starts a segment at seq + 1. */
static mesh_status_t encode_segment_locked(mesh_audit_t *a)
{
    char hex[2 * AUD_MAC + 1];
    mesh_hex(a->prev, AUD_MAC, hex);
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_AUDIT_MAX_BODY);
    add_time(&b, mesh_now_ns());
    mesh_buf_printf(&b, ",\"first_seq\":%" PRIu64 ",\"prev\":\"%s\"", a->seq + 1, hex);
    if (a->cat_version > 0) /* carried forward: the last segment alone knows the newest */
        mesh_buf_printf(&b, ",\"catalog_version\":%lld", (long long)a->cat_version);
    mesh_buf_addc(&b, '}');
    mesh_status_t st = b.data ? encode_locked(a, AUD_T_SEGMENT, b.data, b.len) : MESH_NOMEM;
    mesh_buf_free(&b);
    return st;
}

static mesh_status_t add_seg_locked(mesh_audit_t *a, uint64_t first, uint64_t size)
{
    if (a->nsegs == a->segcap) {
        size_t nc = a->segcap ? a->segcap * 2 : 16;
        aud_seg_t *t = realloc(a->segs, nc * sizeof *t);
        if (t == NULL)
            return MESH_NOMEM;
        a->segs = t;
        a->segcap = nc;
    }
    a->segs[a->nsegs].first = first;
    a->segs[a->nsegs].size = size;
    a->nsegs++;
    return MESH_OK;
}

/* With mu held: starts segment seq + 1 (the current one, if any, is written out and synced
 * first) and encodes its segment record. */
static mesh_status_t new_segment_locked(mesh_audit_t *a, mesh_err_t *err)
{
    mesh_status_t st;
    if (a->fd >= 0) {
        if ((st = write_pending_locked(a, err)) != MESH_OK)
            return st;
        if (fdatasync(a->fd) != 0)
            return mesh_err_set(err, MESH_IO, "audit log fdatasync: %s", strerror(errno));
    }
    char path[4096];
    seg_path(a, a->seq + 1, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return mesh_err_set(err, errno == ENOSPC ? MESH_NOSPACE : MESH_IO, "create %s: %s", path,
                            strerror(errno));
    if (mesh_fsync_dir(a->dir) != MESH_OK || add_seg_locked(a, a->seq + 1, 0) != MESH_OK) {
        close(fd);
        unlink(path);
        return mesh_err_set(err, MESH_IO, "cannot add the audit segment %s", path);
    }
    if (a->fd >= 0)
        close(a->fd);
    a->fd = fd;
    a->seg_bytes = a->seg_written = 0;
    if ((st = encode_segment_locked(a)) != MESH_OK)
        return mesh_err_set(err, st, "cannot encode a segment record");
    return MESH_OK;
}

/* Builds the JSON payload of an event into b (capped at MESH_AUDIT_MAX_BODY). */
static void event_body(const mesh_audit_rec_t *r, int64_t now, mesh_buf_t *b)
{
    static const struct {
        const char *key;
        size_t off;
    } strs[] = {
        {"principal", offsetof(mesh_audit_rec_t, principal)},
        {"auth", offsetof(mesh_audit_rec_t, auth)},
        {"token_id", offsetof(mesh_audit_rec_t, token_id)},
        {"source", offsetof(mesh_audit_rec_t, source)},
        {"request_id", offsetof(mesh_audit_rec_t, request_id)},
        {"domain", offsetof(mesh_audit_rec_t, domain)},
        {"product", offsetof(mesh_audit_rec_t, product)},
        {"columns", offsetof(mesh_audit_rec_t, columns)},
    };
    add_time(b, r->time_ns ? r->time_ns : now);
    mesh_buf_adds(b, ",\"action\":\"");
    mesh_buf_adds(b, mesh_audit_action_name(r->action));
    mesh_buf_addc(b, '"');
    if (r->principal_id)
        mesh_buf_printf(b, ",\"principal_id\":%lld", (long long)r->principal_id);
    for (size_t i = 0; i < MESH_ARRAY_LEN(strs); i++) {
        const char *s = *(const char *const *)((const char *)r + strs[i].off);
        if (s == NULL)
            continue;
        size_t n = strlen(s);
        if (n > 1024)
            n = 1024; /* object names are short; a long one is cut, not the record */
        mesh_buf_printf(b, ",\"%s\":", strs[i].key);
        mesh_buf_add_json_str(b, s, n);
    }
    if (r->status)
        mesh_buf_printf(b, ",\"status\":%d", r->status);
    const char *outcome = r->outcome                             ? r->outcome
                          : r->status == 401 || r->status == 403 ? "denied"
                          : r->status >= 400                     ? "failed"
                                                                 : "ok";
    mesh_buf_adds(b, ",\"outcome\":");
    mesh_buf_add_json_str(b, outcome, strlen(outcome));
    if (r->policy_version)
        mesh_buf_printf(b, ",\"policy_version\":%lld", (long long)r->policy_version);
    if (r->catalog_version > 0)
        mesh_buf_printf(b, ",\"catalog_version\":%lld", (long long)r->catalog_version);
    if (r->details) {
        /* the record must stay a valid JSON object whatever a caller passes */
        size_t dn = strlen(r->details);
        json_t *d = json_loadb(r->details, dn, JSON_REJECT_DUPLICATES, NULL);
        mesh_buf_adds(b, ",\"details\":");
        if (json_is_object(d))
            mesh_buf_add(b, r->details, dn);
        else
            mesh_buf_adds(b, "{\"invalid_details\":true}");
        json_decref(d);
    }
    mesh_buf_addc(b, '}');
}

/* With mu held: appends an event (reporting lost ones first) and starts a segment when the
 * current one is full. */
static mesh_status_t append_event_locked(mesh_audit_t *a, const char *body, size_t n)
{
    if (!a->rotating && a->seg_bytes > 0 &&
        a->seg_bytes + AUD_HEADER + n + AUD_NONCE + AUD_TAG + AUD_MAC > a->opts.segment_size) {
        /* new_segment_locked may wait for the leader (mu released): one rotation at a time */
        a->rotating = true;
        mesh_err_t err;
        if (new_segment_locked(a, &err) != MESH_OK)
            LOG_WARN("audit", "cannot start a new segment (%s): the current one grows", err.msg);
        a->rotating = false;
    }
    if (a->pend.len + n + 256 > PEND_MAX) {
        a->lost++;
        return MESH_NOSPACE;
    }
    if (a->lost > a->lost_reported && !a->failing) {
        char lb[128];
        int ln = snprintf(lb, sizeof lb,
                          "{\"time\":%lld,\"action\":\"audit.lost\",\"outcome\":\"failed\","
                          "\"details\":{\"lost\":%" PRIu64 "}}",
                          (long long)mesh_now_ns(), a->lost - a->lost_reported);
        if (encode_locked(a, AUD_T_EVENT, lb, (size_t)ln) == MESH_OK) {
            a->lost_reported = a->lost;
            a->since_cp++;
        }
    }
    mesh_status_t st = encode_locked(a, AUD_T_EVENT, body, n);
    if (st != MESH_OK) {
        a->lost++;
        return st;
    }
    if (a->since_cp++ == 0)
        a->first_uncp_mono = mesh_mono_ns();
    if (a->since_cp >= a->opts.checkpoint_records)
        pthread_cond_signal(&a->wake);
    return MESH_OK;
}

void mesh_audit_record(mesh_audit_t *a, const mesh_audit_rec_t *rec)
{
    if (a == NULL || rec == NULL)
        return;
    mesh_audit_rec_t r = *rec;
    if (r.catalog_version == 0 && a->cat_fn &&
        strncmp(mesh_audit_action_name(r.action), "admin.", 6) == 0)
        r.catalog_version = a->cat_fn(a->cat_arg); /* read after the change committed */
    /* built without a cap, then checked: a capped buffer would drop one piece silently */
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    event_body(&r, mesh_now_ns(), &b);
    if (b.len > MESH_AUDIT_MAX_BODY) {
        /* a caller's details too long: keep the event without them */
        r.details = "{\"truncated\":true}";
        mesh_buf_reset(&b);
        event_body(&r, mesh_now_ns(), &b);
    }
    pthread_mutex_lock(&a->mu);
    if (r.catalog_version > a->cat_version)
        a->cat_version = r.catalog_version;
    while (a->quiet_waiters > 0) /* a rotation or checkpoint is waiting for the file */
        pthread_cond_wait(&a->flushed, &a->mu);
    if (b.data && b.len <= MESH_AUDIT_MAX_BODY)
        append_event_locked(a, b.data, b.len);
    else
        a->lost++;
    flush_group(a);
    pthread_mutex_unlock(&a->mu);
    mesh_buf_free(&b);
}

void mesh_audit_set_catalog_source(mesh_audit_t *a, mesh_audit_catalog_fn fn, void *arg)
{
    pthread_mutex_lock(&a->mu);
    a->cat_fn = fn;
    a->cat_arg = arg;
    pthread_mutex_unlock(&a->mu);
}

int64_t mesh_audit_catalog_version(mesh_audit_t *a)
{
    pthread_mutex_lock(&a->mu);
    int64_t v = a->cat_version;
    pthread_mutex_unlock(&a->mu);
    return v;
}

/* ---- checkpoints ---- */

static mesh_status_t checkpoint(mesh_audit_t *a, mesh_err_t *err)
{
    pthread_mutex_lock(&a->cp_mu);
    pthread_mutex_lock(&a->mu);
    char hex[2 * AUD_MAC + 1];
    mesh_hex(a->prev, AUD_MAC, hex);
    char body[320], cv[48] = "";
    if (a->cat_version > 0)
        snprintf(cv, sizeof cv, ",\"catalog_version\":%lld", (long long)a->cat_version);
    int n = snprintf(body, sizeof body,
                     "{\"time\":%lld,\"count\":%" PRIu64 ",\"head\":\"%s\",\"base\":%" PRIu64 "%s}",
                     (long long)mesh_now_ns(), a->seq, hex, a->base_seq, cv);
    mesh_status_t st = encode_locked(a, AUD_T_CHECKPOINT, body, (size_t)n);
    aud_head_t h = {.seq = a->seq, .base = a->base_seq, .time_ns = mesh_now_ns()};
    memcpy(h.mac, a->prev, AUD_MAC);
    if (st == MESH_OK)
        st = write_pending_locked(a, err);
    else
        mesh_err_set(err, st, "cannot encode a checkpoint");
    int fd = st == MESH_OK ? dup(a->fd) : -1;
    if (st == MESH_OK) {
        a->since_cp = 0;
        if (fd < 0)
            st = mesh_err_set(err, MESH_IO, "dup: %s", strerror(errno));
    }
    pthread_mutex_unlock(&a->mu);
    /* the fsync and HEAD happen outside mu: appenders go on meanwhile */
    if (st == MESH_OK && fdatasync(fd) != 0)
        st = mesh_err_set(err, MESH_IO, "audit log fdatasync: %s", strerror(errno));
    if (fd >= 0)
        close(fd);
    if (st == MESH_OK)
        st = mesh__audit_head_write(&a->hc, a->dir, &h, err);
    if (st == MESH_OK) {
        pthread_mutex_lock(&a->mu);
        a->cp_seq = h.seq;
        pthread_mutex_unlock(&a->mu);
    }
    pthread_mutex_unlock(&a->cp_mu);
    return st;
}

mesh_status_t mesh_audit_checkpoint(mesh_audit_t *a, mesh_err_t *err)
{
    return checkpoint(a, err);
}

/* Deletes the oldest segments whose files were last written before the retention period:
 * an audit.retention event and a checkpoint carrying the new base go first, so the files
 * are gone only once HEAD says they may be. */
static void retention(mesh_audit_t *a)
{
    pthread_mutex_lock(&a->mu);
    size_t n = a->nsegs;
    uint64_t *firsts = n > 1 ? malloc((n - 1) * sizeof *firsts) : NULL;
    for (size_t i = 0; firsts && i + 1 < n; i++)
        firsts[i] = a->segs[i].first;
    pthread_mutex_unlock(&a->mu);
    if (firsts == NULL)
        return;
    int64_t cutoff = mesh_now_ns() - a->opts.retention_ns;
    size_t k = 0;
    for (; k + 1 < n; k++) {
        char path[4096];
        seg_path(a, firsts[k], path, sizeof path);
        struct stat sb;
        if (stat(path, &sb) != 0)
            break;
        int64_t mtime = (int64_t)sb.st_mtim.tv_sec * MESH_NS_PER_SEC + sb.st_mtim.tv_nsec;
        if (mtime >= cutoff)
            break;
    }
    if (k == 0) {
        free(firsts);
        return;
    }
    pthread_mutex_lock(&a->mu);
    uint64_t base = a->segs[k].first;
    a->base_seq = base;
    char body[256];
    int bn = snprintf(body, sizeof body,
                      "{\"time\":%lld,\"action\":\"audit.retention\",\"outcome\":\"ok\","
                      "\"details\":{\"deleted_before_seq\":%" PRIu64 ",\"segments\":%zu}}",
                      (long long)mesh_now_ns(), base, k);
    append_event_locked(a, body, (size_t)bn);
    pthread_mutex_unlock(&a->mu);
    mesh_err_t err;
    if (checkpoint(a, &err) != MESH_OK) {
        LOG_WARN("audit", "retention postponed: %s", err.msg);
        free(firsts);
        return;
    }
    for (size_t i = 0; i < k; i++) {
        char path[4096];
        seg_path(a, firsts[i], path, sizeof path);
        if (unlink(path) != 0 && errno != ENOENT)
            LOG_WARN("audit", "retention: unlink %s: %s", path, strerror(errno));
    }
    mesh_fsync_dir(a->dir);
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < k; i++)
        a->bytes -= a->segs[i].size;
    memmove(a->segs, a->segs + k, (a->nsegs - k) * sizeof *a->segs);
    a->nsegs -= k;
    pthread_mutex_unlock(&a->mu);
    LOG_INFO("audit", "retention: deleted %zu segments (records before seq %" PRIu64 ")", k, base);
    free(firsts);
}

/* How often retention looks for old segments: a quarter of the period, 1..60 s. */
static int64_t retention_every(const mesh_audit_t *a)
{
    int64_t e = a->opts.retention_ns / 4;
    return e < MESH_NS_PER_SEC ? MESH_NS_PER_SEC : e > RETENTION_EVERY ? RETENTION_EVERY : e;
}

static void *bg_main(void *arg)
{
    mesh_thread_name("audit", NULL);
    mesh_audit_t *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        int64_t now = mesh_mono_ns();
        int64_t due = a->since_cp >= a->opts.checkpoint_records ? now
                      : a->since_cp ? a->first_uncp_mono + a->opts.checkpoint_interval_ns
                                    : now + a->opts.checkpoint_interval_ns;
        if (a->opts.retention_ns > 0 && due > a->last_retention_mono + retention_every(a))
            due = a->last_retention_mono + retention_every(a);
        /* after a failure, try again no sooner than RETRY_NS (and no later, for writes) */
        if (due < a->cp_failed_mono + RETRY_NS)
            due = a->cp_failed_mono + RETRY_NS;
        if (a->failing && due > now + RETRY_NS)
            due = now + RETRY_NS;
        if (due > now) {
            /* the condition variable waits on CLOCK_MONOTONIC (see open) */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t t = (int64_t)ts.tv_sec * MESH_NS_PER_SEC + ts.tv_nsec + (due - now);
            ts.tv_sec = t / MESH_NS_PER_SEC;
            ts.tv_nsec = t % MESH_NS_PER_SEC;
            pthread_cond_timedwait(&a->wake, &a->mu, &ts);
            if (a->stop)
                break;
        }
        now = mesh_mono_ns();
        if (a->failing)
            flush_group(a);
        bool cp =
            (a->since_cp >= a->opts.checkpoint_records ||
             (a->since_cp > 0 && now - a->first_uncp_mono >= a->opts.checkpoint_interval_ns)) &&
            now - a->cp_failed_mono >= RETRY_NS;
        bool ret = a->opts.retention_ns > 0 && now - a->last_retention_mono >= retention_every(a);
        if (!cp && !ret)
            continue;
        pthread_mutex_unlock(&a->mu);
        if (cp) {
            mesh_err_t err;
            if (checkpoint(a, &err) != MESH_OK) {
                LOG_WARN("audit", "checkpoint: %s", err.msg);
                pthread_mutex_lock(&a->mu);
                a->cp_failed_mono = mesh_mono_ns();
                pthread_mutex_unlock(&a->mu);
            }
        }
        if (ret) {
            a->last_retention_mono = now;
            retention(a);
        }
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* ---- opening ---- */

typedef struct head_probe {
    uint64_t seq;
    bool found;
    int type;
    uint8_t mac[AUD_MAC];
    int64_t cat_version; /* the newest catalog version in the segment */
} head_probe_t;

static mesh_status_t probe_head(void *arg, const aud_rec_t *r, json_t *body)
{
    head_probe_t *hp = arg;
    json_int_t cv = json_integer_value(json_object_get(body, "catalog_version"));
    if (cv > hp->cat_version)
        hp->cat_version = cv;
    if (r->seq == hp->seq) {
        hp->found = true;
        hp->type = r->type;
        memcpy(hp->mac, r->mac, AUD_MAC);
    }
    return MESH_OK;
}

/* What open() cut from the last segment, for the audit.repair event. */
typedef struct repair {
    bool done;
    char file[AUD_SEG_NAME + 1];
    uint64_t offset, bytes, seq;
    char reason[256];
    char saved[64];
} repair_t;

/* Keeps the bytes a repair cuts, beside the log (they are evidence). */
static void save_cut(mesh_audit_t *a, const uint8_t *p, size_t n, repair_t *rp)
{
    snprintf(rp->saved, sizeof rp->saved, "repaired-%020" PRIu64 "-%" PRIu64 ".bin", rp->seq,
             rp->offset);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", a->dir, rp->saved);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || mesh_write_all(fd, p, n < REPAIR_SAVE_MAX ? n : REPAIR_SAVE_MAX) != MESH_OK ||
        fsync(fd) != 0) {
        LOG_WARN("audit", "cannot keep the cut bytes in %s: %s", path, strerror(errno));
        rp->saved[0] = '\0';
    }
    if (fd >= 0)
        close(fd);
}

/*
 * Checks the last segment and cuts a torn tail (see audit.h). Sets seq, prev and the
 * current segment. Refuses (MESH_CORRUPT) what a crash cannot explain.
 */
static mesh_status_t recover(mesh_audit_t *a, const aud_head_t *head, repair_t *rp, mesh_err_t *err)
{
    static const char remedy[] =
        "; run `meshctl audit verify --data-dir` for details. The log is evidence and is not "
        "rewritten: to start a new one, move the audit directory aside and restart";
    for (;;) {
        aud_seg_t *s = &a->segs[a->nsegs - 1];
        char name[AUD_SEG_NAME + 1], path[4096];
        mesh__audit_seg_name(s->first, name);
        seg_path(a, s->first, path, sizeof path);
        uint8_t *p;
        size_t n;
        mesh_status_t st = mesh__audit_map(path, 0, &p, &n, err);
        if (st != MESH_OK)
            return st;
        aud_chain_t ch = {.c = &a->c};
        mesh_buf_init(&ch.scratch, AUD_MAX_PAYLOAD + 1);
        head_probe_t hp = {.seq = head->seq};
        aud_seg_result_t res;
        mesh__audit_walk(&ch, p, n, 0, s->first, probe_head, &hp, &res);
        mesh_buf_free(&ch.scratch);
        if (res.fault != MESH_AUDIT_FAULT_NONE) {
            /* a crash explains an incomplete record at the end, or a damaged last one */
            aud_rec_t r;
            bool last = res.torn || (mesh__audit_parse(p, n, res.fault_off, &r) == 1 &&
                                     res.fault_off + r.size == n);
            if (!last || res.fault_off != res.good) {
                mesh__audit_unmap(p, n);
                return mesh_err_set(err, MESH_CORRUPT,
                                    "audit log %s is damaged at offset %zu (seq %" PRIu64 "): %s%s",
                                    path, res.fault_off, res.fault_seq, res.reason, remedy);
            }
            uint64_t last_seq = res.records ? res.last_seq : s->first - 1;
            if (head->seq > last_seq) {
                mesh__audit_unmap(p, n);
                return mesh_err_set(err, MESH_CORRUPT,
                                    "audit log %s: a damaged record at offset %zu lies before "
                                    "the last checkpoint (seq %" PRIu64 ")%s",
                                    path, res.fault_off, head->seq, remedy);
            }
            rp->done = true;
            snprintf(rp->file, sizeof rp->file, "%s", name);
            rp->offset = res.good;
            rp->bytes = n - res.good;
            rp->seq = last_seq + 1;
            snprintf(rp->reason, sizeof rp->reason, "%s", res.reason);
            save_cut(a, p + res.good, n - res.good, rp);
            LOG_WARN("audit", "cut %zu bytes at offset %zu of %s: %s (kept in %s)", n - res.good,
                     res.good, path, res.reason, rp->saved[0] ? rp->saved : "nowhere");
            if (truncate(path, (off_t)res.good) != 0) {
                mesh__audit_unmap(p, n);
                return mesh_err_set(err, MESH_IO, "truncate %s: %s", path, strerror(errno));
            }
            a->bytes -= n - res.good;
            n = res.good;
        }
        mesh__audit_unmap(p, n);
        if (res.records == 0) {
            /* a segment that never got its first record: drop it and recover the one before */
            if (unlink(path) != 0)
                return mesh_err_set(err, MESH_IO, "unlink %s: %s", path, strerror(errno));
            mesh_fsync_dir(a->dir);
            a->nsegs--;
            if (a->nsegs == 0)
                return MESH_NOT_FOUND; /* an empty log: start afresh */
            continue;
        }
        if (head->seq > res.last_seq)
            return mesh_err_set(err, MESH_CORRUPT,
                                "audit log truncated: it ends at seq %" PRIu64
                                " but the last checkpoint (HEAD) is seq %" PRIu64 "%s",
                                res.last_seq, head->seq, remedy);
        if (head->seq >= s->first && (!hp.found || hp.type != AUD_T_CHECKPOINT ||
                                      CRYPTO_memcmp(hp.mac, head->mac, AUD_MAC) != 0))
            return mesh_err_set(err, MESH_CORRUPT,
                                "audit log %s: record %" PRIu64
                                " is not the checkpoint HEAD names%s",
                                path, head->seq, remedy);
        a->seq = res.last_seq;
        memcpy(a->prev, ch.prev, AUD_MAC);
        a->cat_version = hp.cat_version;
        s->size = n;
        a->seg_bytes = a->seg_written = n;
        a->fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (a->fd < 0)
            return mesh_err_set(err, MESH_IO, "open %s: %s", path, strerror(errno));
        return MESH_OK;
    }
}

static void free_audit(mesh_audit_t *a)
{
    if (a->fd >= 0)
        close(a->fd);
    mesh__audit_crypto_free(&a->c);
    mesh__audit_crypto_free(&a->hc);
    mesh_buf_free(&a->pend);
    mesh_buf_free(&a->wbuf);
    pthread_mutex_destroy(&a->mu);
    pthread_mutex_destroy(&a->cp_mu);
    pthread_cond_destroy(&a->flushed);
    pthread_cond_destroy(&a->wake);
    free(a->segs);
    free(a->dir);
    free(a);
}

mesh_status_t mesh_audit_open(const char *dir, const mesh_audit_keys_t *keys,
                              const mesh_audit_opts_t *opts, mesh_audit_t **out, mesh_err_t *err)
{
    mesh_audit_t *a = calloc(1, sizeof *a);
    if (a == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    a->fd = -1;
    pthread_mutex_init(&a->mu, NULL);
    pthread_mutex_init(&a->cp_mu, NULL);
    pthread_cond_init(&a->flushed, NULL);
    mesh_cond_init_mono(&a->wake);
    mesh_buf_init(&a->pend, MESH_BUF_UNLIMITED);
    mesh_buf_init(&a->wbuf, MESH_BUF_UNLIMITED);
    if (opts)
        a->opts = *opts;
    if (a->opts.checkpoint_records == 0)
        a->opts.checkpoint_records = 1000;
    if (a->opts.checkpoint_interval_ns <= 0)
        a->opts.checkpoint_interval_ns = 5 * MESH_NS_PER_SEC;
    if (a->opts.segment_size == 0)
        a->opts.segment_size = 16u << 20;
    a->base_seq = 1;
    a->cp_failed_mono = -RETRY_NS;
    mesh_status_t st;
    aud_seg_t *segs = NULL;
    size_t nsegs = 0;
    aud_head_t head = {0};
    repair_t rp = {0};
    if ((a->dir = strdup(dir)) == NULL) {
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
        goto fail;
    }
    if ((st = mesh_mkdirs(dir, 0700, err)) != MESH_OK ||
        (st = mesh__audit_crypto_init(&a->c, keys, err)) != MESH_OK ||
        (st = mesh__audit_crypto_init(&a->hc, keys, err)) != MESH_OK ||
        (st = mesh__audit_list(dir, &segs, &nsegs, err)) != MESH_OK)
        goto fail;
    a->segs = segs;
    a->nsegs = a->segcap = nsegs;
    for (size_t i = 0; i < nsegs; i++)
        a->bytes += segs[i].size;
    mesh_err_t herr;
    mesh_status_t hst = mesh__audit_head_read(&a->hc, dir, &head, &herr);
    if (hst != MESH_OK && hst != MESH_NOT_FOUND) {
        st = mesh_err_set(err, MESH_CORRUPT,
                          "%s; the audit log is evidence and is not rewritten: move the audit "
                          "directory aside to start a new one",
                          herr.msg);
        goto fail;
    }
    if (hst == MESH_OK) {
        a->base_seq = head.base ? head.base : 1;
        a->cp_seq = head.seq;
    }
    if (nsegs > 0 && hst == MESH_NOT_FOUND) {
        st = mesh_err_set(err, MESH_CORRUPT,
                          "%s/HEAD is missing but segments exist (deleted?); the audit log is "
                          "evidence and is not rewritten: move the audit directory aside to "
                          "start a new one",
                          dir);
        goto fail;
    }
    st = nsegs ? recover(a, &head, &rp, err) : MESH_NOT_FOUND;
    if (st == MESH_NOT_FOUND && head.seq > 0) {
        st = mesh_err_set(err, MESH_CORRUPT,
                          "%s holds no segments but its HEAD names checkpoint seq %" PRIu64
                          " (deleted?); move the audit directory aside to start a new one",
                          dir, head.seq);
        goto fail;
    }
    pthread_mutex_lock(&a->mu);
    if (st == MESH_NOT_FOUND) {
        /* a new log: seq 1 is the first segment's record, chained from 32 zero bytes */
        a->seq = 0;
        memset(a->prev, 0, sizeof a->prev);
        a->base_seq = 1;
        st = new_segment_locked(a, err);
    }
    if (st == MESH_OK && rp.done) {
        mesh_buf_t b;
        mesh_buf_init(&b, MESH_AUDIT_MAX_BODY);
        add_time(&b, mesh_now_ns());
        mesh_buf_adds(&b, ",\"action\":\"audit.repair\",\"outcome\":\"ok\",\"details\":{\"file\":");
        mesh_buf_add_json_str(&b, rp.file, strlen(rp.file));
        mesh_buf_printf(&b,
                        ",\"offset\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"first_seq_cut\":%" PRIu64
                        ",\"reason\":",
                        rp.offset, rp.bytes, rp.seq);
        mesh_buf_add_json_str(&b, rp.reason, strlen(rp.reason));
        mesh_buf_adds(&b, ",\"saved\":");
        mesh_buf_add_json_str(&b, rp.saved, strlen(rp.saved));
        mesh_buf_adds(&b, "}}");
        if (b.data)
            append_event_locked(a, b.data, b.len);
        mesh_buf_free(&b);
    }
    if (st == MESH_OK)
        st = write_pending_locked(a, err);
    pthread_mutex_unlock(&a->mu);
    if (st != MESH_OK)
        goto fail;
    /* a fresh log, or one just repaired, gets its checkpoint (and HEAD) now */
    if ((hst == MESH_NOT_FOUND || rp.done) && (st = checkpoint(a, err)) != MESH_OK)
        goto fail;
    a->last_retention_mono = mesh_mono_ns();
    if (pthread_create(&a->bg, NULL, bg_main, a) != 0) {
        st = mesh_err_set(err, MESH_NOMEM, "cannot start the audit thread");
        goto fail;
    }
    a->bg_started = true;
    *out = a;
    return MESH_OK;
fail:
    free_audit(a);
    return st;
}

static void stop_bg(mesh_audit_t *a)
{
    if (!a->bg_started)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->bg, NULL);
    a->bg_started = false;
}

void mesh_audit_close(mesh_audit_t *a)
{
    if (a == NULL)
        return;
    stop_bg(a);
    mesh_err_t err;
    pthread_mutex_lock(&a->mu);
    bool need = a->since_cp > 0 || a->pend.len > 0;
    pthread_mutex_unlock(&a->mu);
    if (need && checkpoint(a, &err) != MESH_OK)
        LOG_ERROR("audit", "last checkpoint: %s", err.msg);
    pthread_mutex_lock(&a->mu);
    if (write_pending_locked(a, &err) != MESH_OK)
        LOG_ERROR("audit", "%zu bytes of audit records are lost: %s", a->pend.len, err.msg);
    if (a->fd >= 0)
        fdatasync(a->fd);
    pthread_mutex_unlock(&a->mu);
    free_audit(a);
}

void mesh_audit_abandon(mesh_audit_t *a)
{
    if (a == NULL)
        return;
    stop_bg(a);
    mesh_err_t err;
    pthread_mutex_lock(&a->mu);
    write_pending_locked(a, &err);
    pthread_mutex_unlock(&a->mu);
    free_audit(a);
}

void mesh_audit_stats(mesh_audit_t *a, mesh_audit_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->mu);
    out->last_seq = a->seq;
    out->checkpoint_seq = a->cp_seq;
    out->lost = a->lost;
    out->bytes = a->bytes;
    pthread_mutex_unlock(&a->mu);
}

mesh_status_t mesh__audit_snapshot(mesh_audit_t *a, char **dir, aud_seg_t **segs, size_t *n,
                                   mesh_audit_keys_t *keys, mesh_err_t *err)
{
    pthread_mutex_lock(&a->mu);
    /* what is still pending (a failing disk) is not in the files: readers do without it */
    mesh_err_t werr;
    write_pending_locked(a, &werr);
    mesh_status_t st = MESH_OK;
    if (dir && (*dir = strdup(a->dir)) == NULL)
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
    if (segs && st == MESH_OK) {
        *segs = malloc((a->nsegs ? a->nsegs : 1) * sizeof **segs);
        if (*segs == NULL) {
            st = mesh_err_set(err, MESH_NOMEM, "out of memory");
        } else {
            memcpy(*segs, a->segs, a->nsegs * sizeof **segs);
            *n = a->nsegs;
        }
    }
    if (keys)
        *keys = a->c.keys;
    pthread_mutex_unlock(&a->mu);
    if (st != MESH_OK && dir) {
        free(*dir);
        *dir = NULL;
    }
    return st;
}
