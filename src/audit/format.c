/*
 * format.c - the audit log's bytes: records (encode, parse, unseal), the segment walker that
 * checks a chain, segment files and the HEAD checkpoint file.
 *
 * Everything read from disk is untrusted: the walker parses through bounds-checked offsets,
 * checks every length against AUD_MAX_PAYLOAD before use, and never allocates from a length
 * it has not checked. It is fuzzed through mesh_audit_check_segment.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/internal.h"
#include "core/util.h"

#define HEAD_LABEL "meshd-audit-head"

void mesh__audit_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void mesh__audit_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t mesh__audit_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t mesh__audit_get_u64(const uint8_t *p)
{
    return (uint64_t)mesh__audit_get_u32(p) | (uint64_t)mesh__audit_get_u32(p + 4) << 32;
}

/* ---- crypto ---- */

mesh_status_t mesh__audit_crypto_init(aud_crypto_t *c, const mesh_audit_keys_t *keys,
                                      mesh_err_t *err)
{
    memset(c, 0, sizeof *c);
    c->keys = *keys;
    c->mac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    c->mac = c->mac_alg ? EVP_MAC_CTX_new(c->mac_alg) : NULL;
    c->enc = EVP_CIPHER_CTX_new();
    c->dec = EVP_CIPHER_CTX_new();
    if (c->mac == NULL || c->enc == NULL || c->dec == NULL) {
        mesh__audit_crypto_free(c);
        return mesh_err_set(err, MESH_NOMEM, "audit: cannot set up HMAC-SHA256 and AES-256-GCM");
    }
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    /* the key is set once; each record re-initialises the context with the same key */
    if (EVP_MAC_init(c->mac, keys->mac, sizeof keys->mac, params) != 1 ||
        EVP_EncryptInit_ex(c->enc, EVP_aes_256_gcm(), NULL, keys->enc, NULL) != 1 ||
        EVP_DecryptInit_ex(c->dec, EVP_aes_256_gcm(), NULL, keys->enc, NULL) != 1) {
        mesh__audit_crypto_free(c);
        return mesh_err_set(err, MESH_INTERNAL, "audit: cannot initialise the ciphers");
    }
    return MESH_OK;
}

void mesh__audit_crypto_free(aud_crypto_t *c)
{
    EVP_MAC_CTX_free(c->mac);
    EVP_MAC_free(c->mac_alg);
    EVP_CIPHER_CTX_free(c->enc);
    EVP_CIPHER_CTX_free(c->dec);
    OPENSSL_cleanse(&c->keys, sizeof c->keys);
    memset(c, 0, sizeof *c);
}

void mesh__audit_hmac(aud_crypto_t *c, const uint8_t *a, size_t an, const uint8_t *b, size_t bn,
                      const uint8_t *d, size_t dn, uint8_t out[AUD_MAC])
{
    size_t olen = 0;
    if (EVP_MAC_init(c->mac, NULL, 0, NULL) != 1 || (an && EVP_MAC_update(c->mac, a, an) != 1) ||
        (bn && EVP_MAC_update(c->mac, b, bn) != 1) || (dn && EVP_MAC_update(c->mac, d, dn) != 1) ||
        EVP_MAC_final(c->mac, out, &olen, AUD_MAC) != 1 || olen != AUD_MAC)
        memset(out, 0, AUD_MAC); /* cannot happen with a working OpenSSL; never matches */
}

mesh_status_t mesh__audit_encode(aud_crypto_t *c, uint64_t seq, int type, const uint8_t *prev,
                                 const char *body, size_t n, mesh_buf_t *out, uint8_t *mac_out)
{
    if (n > MESH_AUDIT_MAX_BODY)
        return MESH_TOO_LARGE;
    bool seal = c->keys.encrypt;
    size_t plen = seal ? AUD_NONCE + n + AUD_TAG : n;
    size_t start = out->len;
    mesh_status_t st = mesh_buf_reserve(out, AUD_HEADER + plen + AUD_MAC);
    if (st != MESH_OK)
        return st;
    uint8_t *h = (uint8_t *)out->data + start;
    mesh__audit_put_u32(h, AUD_MAGIC);
    mesh__audit_put_u32(h + 4, (uint32_t)plen);
    mesh__audit_put_u64(h + 8, seq);
    h[16] = (uint8_t)type;
    h[17] = seal ? AUD_F_SEALED : 0;
    h[18] = h[19] = 0;
    uint8_t *pl = h + AUD_HEADER;
    if (seal) {
        int len = 0;
        if (RAND_bytes(pl, AUD_NONCE) != 1 ||
            EVP_EncryptInit_ex(c->enc, NULL, NULL, NULL, pl) != 1 ||
            EVP_EncryptUpdate(c->enc, NULL, &len, h, AUD_HEADER) != 1 ||
            EVP_EncryptUpdate(c->enc, pl + AUD_NONCE, &len, (const uint8_t *)body, (int)n) != 1 ||
            EVP_EncryptFinal_ex(c->enc, pl + AUD_NONCE + n, &len) != 1 ||
            EVP_CIPHER_CTX_ctrl(c->enc, EVP_CTRL_GCM_GET_TAG, AUD_TAG, pl + AUD_NONCE + n) != 1)
            return MESH_INTERNAL;
    } else {
        memcpy(pl, body, n);
    }
    uint8_t *mac = pl + plen;
    mesh__audit_hmac(c, prev, AUD_MAC, h, AUD_HEADER, pl, plen, mac);
    if (mac_out)
        memcpy(mac_out, mac, AUD_MAC);
    out->len = start + AUD_HEADER + plen + AUD_MAC;
    out->data[out->len] = '\0';
    return MESH_OK;
}

int mesh__audit_parse(const uint8_t *p, size_t n, size_t off, aud_rec_t *r)
{
    memset(r, 0, sizeof *r);
    if (off >= n)
        return 0;
    size_t left = n - off;
    const uint8_t *h = p + off;
    if (left < AUD_HEADER) {
        /* a short header: torn when it is a prefix of a record header or zeros */
        uint8_t m[4];
        mesh__audit_put_u32(m, AUD_MAGIC);
        bool zeros = true;
        for (size_t i = 0; i < left; i++)
            zeros = zeros && h[i] == 0;
        if (zeros || memcmp(h, m, left < 4 ? left : 4) == 0)
            return 0;
        return -1;
    }
    if (mesh__audit_get_u32(h) != AUD_MAGIC) {
        for (size_t i = 0; i < left; i++)
            if (h[i] != 0)
                return -1;
        return 0; /* only zeros to the end: a torn tail (a crash after the size grew) */
    }
    uint32_t plen = mesh__audit_get_u32(h + 4);
    int type = h[16], flags = h[17];
    if (plen > AUD_MAX_PAYLOAD || type < AUD_T_EVENT || type > AUD_T_SEGMENT ||
        (flags & ~AUD_F_SEALED) != 0 || h[18] != 0 || h[19] != 0 ||
        ((flags & AUD_F_SEALED) && plen < AUD_NONCE + AUD_TAG))
        return -1;
    r->off = off;
    r->size = (size_t)AUD_HEADER + plen + AUD_MAC;
    r->seq = mesh__audit_get_u64(h + 8);
    r->type = type;
    r->flags = flags;
    r->hdr = h;
    r->payload = h + AUD_HEADER;
    r->plen = plen;
    r->mac = h + AUD_HEADER + plen;
    if (r->size > left)
        return 0;
    return 1;
}

mesh_status_t mesh__audit_payload(aud_crypto_t *c, const aud_rec_t *r, mesh_buf_t *scratch,
                                  const char **text, size_t *n)
{
    mesh_buf_reset(scratch);
    if (!(r->flags & AUD_F_SEALED)) {
        if (mesh_buf_add(scratch, r->payload, r->plen) != MESH_OK)
            return MESH_NOMEM;
    } else {
        if (!c->keys.encrypt)
            return MESH_FORBIDDEN; /* sealed, and no encryption key */
        size_t ctlen = r->plen - AUD_NONCE - AUD_TAG;
        if (mesh_buf_reserve(scratch, ctlen + 1) != MESH_OK)
            return MESH_NOMEM;
        int len = 0;
        uint8_t tag[AUD_TAG];
        memcpy(tag, r->payload + AUD_NONCE + ctlen, AUD_TAG);
        uint8_t *o = (uint8_t *)scratch->data;
        if (EVP_DecryptInit_ex(c->dec, NULL, NULL, NULL, r->payload) != 1 ||
            EVP_DecryptUpdate(c->dec, NULL, &len, r->hdr, AUD_HEADER) != 1 ||
            EVP_DecryptUpdate(c->dec, o, &len, r->payload + AUD_NONCE, (int)ctlen) != 1 ||
            EVP_CIPHER_CTX_ctrl(c->dec, EVP_CTRL_GCM_SET_TAG, AUD_TAG, tag) != 1 ||
            EVP_DecryptFinal_ex(c->dec, o + ctlen, &len) != 1)
            return MESH_CORRUPT;
        scratch->len = ctlen;
        scratch->data[ctlen] = '\0';
    }
    if (scratch->data == NULL && mesh_buf_reserve(scratch, 1) != MESH_OK)
        return MESH_NOMEM;
    *text = scratch->data;
    *n = scratch->len;
    return MESH_OK;
}

/* ---- the walker ---- */

static void fault(aud_seg_result_t *res, mesh_audit_fault_t f, size_t off, uint64_t seq,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void fault(aud_seg_result_t *res, mesh_audit_fault_t f, size_t off, uint64_t seq,
                  const char *fmt, ...)
{
    if (res->fault != MESH_AUDIT_FAULT_NONE)
        return; /* lenient walks keep the first one */
    res->fault = f;
    res->fault_off = off;
    res->fault_seq = seq;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->reason, sizeof res->reason, fmt, ap);
    va_end(ap);
}

/* The hex MAC in member key of body equals mac. */
static bool hex_is(const json_t *body, const char *key, const uint8_t *mac)
{
    char hex[2 * AUD_MAC + 1];
    mesh_hex(mac, AUD_MAC, hex);
    const char *s = json_string_value(json_object_get(body, key));
    return s && strcmp(s, hex) == 0;
}

static bool int_is(const json_t *body, const char *key, uint64_t v)
{
    const json_t *j = json_object_get(body, key);
    return json_is_integer(j) && json_integer_value(j) >= 0 && (uint64_t)json_integer_value(j) == v;
}

/* Checks the shape of a record's payload for its type. */
static const char *shape_problem(const aud_rec_t *r, const json_t *body, const uint8_t *prev)
{
    if (!json_is_integer(json_object_get(body, "time")))
        return "no time";
    switch (r->type) {
    case AUD_T_SEGMENT:
        if (!int_is(body, "first_seq", r->seq))
            return "a segment record whose first_seq is not its own seq";
        if (!hex_is(body, "prev", prev))
            return "a segment record that does not name the MAC of the record before";
        return NULL;
    case AUD_T_CHECKPOINT:
        if (!int_is(body, "count", r->seq - 1))
            return "a checkpoint whose count is not the number of records before it";
        if (!hex_is(body, "head", prev))
            return "a checkpoint whose head is not the MAC of the record before";
        if (!json_is_integer(json_object_get(body, "base")))
            return "a checkpoint without base";
        return NULL;
    default:
        if (!json_is_string(json_object_get(body, "action")))
            return "an event without action";
        return NULL;
    }
}

void mesh__audit_walk(aud_chain_t *ch, const uint8_t *p, size_t n, size_t start, uint64_t name_seq,
                      aud_rec_fn fn, void *arg, aud_seg_result_t *res)
{
    memset(res, 0, sizeof *res);
    size_t off = start;
    res->good = start;
    bool first = start == 0;
    while (off < n) {
        aud_rec_t r;
        int pr = mesh__audit_parse(p, n, off, &r);
        uint64_t expect = ch->have_prev ? ch->next_seq : r.seq;
        if (pr == 0) {
            res->torn = true;
            fault(res, MESH_AUDIT_FAULT_TRUNCATED, off, expect,
                  "an incomplete record of %zu bytes at the end of the segment", n - off);
            break;
        }
        if (pr < 0) {
            fault(res, MESH_AUDIT_FAULT_MALFORMED, off, expect,
                  "not a record header (magic, length, type or flags)");
            break; /* no way to find the next record */
        }
        if (first && r.type != AUD_T_SEGMENT) {
            fault(res, MESH_AUDIT_FAULT_MALFORMED, off, r.seq,
                  "the segment does not start with a segment record");
            if (!ch->lenient)
                break;
        } else if (!first && r.type == AUD_T_SEGMENT) {
            fault(res, MESH_AUDIT_FAULT_MALFORMED, off, r.seq, "a segment record inside a segment");
            if (!ch->lenient)
                break;
        }
        const char *text = NULL;
        size_t tn = 0;
        mesh_status_t pst = MESH_OK;
        if (!ch->have_prev) {
            /* the first segment present: its segment record names the MAC before it */
            pst = mesh__audit_payload(ch->c, &r, &ch->scratch, &text, &tn);
            json_t *b = pst == MESH_OK ? json_loadb(text, tn, 0, NULL) : NULL;
            const char *ph = json_string_value(json_object_get(b, "prev"));
            if (r.type != AUD_T_SEGMENT || ph == NULL || !mesh_unhex(ph, ch->prev, AUD_MAC)) {
                fault(res,
                      pst == MESH_CORRUPT ? MESH_AUDIT_FAULT_DECRYPT : MESH_AUDIT_FAULT_MALFORMED,
                      off, r.seq, "the segment's first record does not name the MAC before it");
                json_decref(b);
                break;
            }
            json_decref(b);
            ch->next_seq = r.seq;
            ch->have_prev = true;
        }
        bool bad = false;
        if (r.seq != ch->next_seq) {
            fault(res, r.seq < ch->next_seq ? MESH_AUDIT_FAULT_REORDERED : MESH_AUDIT_FAULT_MISSING,
                  off, r.seq, "seq %" PRIu64 " where seq %" PRIu64 " was expected", r.seq,
                  ch->next_seq);
            if (!ch->lenient)
                break;
            ch->next_seq = r.seq; /* resynchronise */
            bad = true;
        } else if (first && name_seq && r.seq != name_seq) {
            fault(res, MESH_AUDIT_FAULT_MALFORMED, off, r.seq,
                  "the file name says the segment starts at seq %" PRIu64, name_seq);
            if (!ch->lenient)
                break;
        }
        uint8_t mac[AUD_MAC];
        mesh__audit_hmac(ch->c, ch->prev, AUD_MAC, r.hdr, AUD_HEADER, r.payload, r.plen, mac);
        if (!bad && CRYPTO_memcmp(mac, r.mac, AUD_MAC) != 0) {
            fault(res, MESH_AUDIT_FAULT_MAC, off, r.seq,
                  "MAC mismatch: the record (or one before it in the chain) was edited, or the "
                  "key is wrong");
            bad = true;
            if (!ch->lenient)
                break;
        }
        json_t *body = NULL;
        if (!bad) {
            pst = mesh__audit_payload(ch->c, &r, &ch->scratch, &text, &tn);
            if (pst == MESH_FORBIDDEN || pst == MESH_CORRUPT) {
                fault(res, MESH_AUDIT_FAULT_DECRYPT, off, r.seq,
                      pst == MESH_FORBIDDEN ? "a sealed record, and no encryption key"
                                            : "the sealed payload does not decrypt");
                bad = true;
            } else if (pst != MESH_OK) {
                fault(res, MESH_AUDIT_FAULT_MALFORMED, off, r.seq, "out of memory");
                bad = true;
            } else {
                body = json_loadb(text, tn, JSON_REJECT_DUPLICATES, NULL);
                const char *why = !json_is_object(body) ? "the payload is not a JSON object"
                                                        : shape_problem(&r, body, ch->prev);
                if (why) {
                    fault(res, MESH_AUDIT_FAULT_MALFORMED, off, r.seq, "%s", why);
                    bad = true;
                }
            }
            if (bad && !ch->lenient) {
                json_decref(body);
                break;
            }
        }
        bool pause = false;
        if (!bad && fn) {
            mesh_status_t st = fn(arg, &r, body);
            if (st == MESH_BUSY) {
                pause = true;
            } else if (st != MESH_OK) {
                json_decref(body);
                fault(res, MESH_AUDIT_FAULT_MALFORMED, off, r.seq, "stopped");
                break;
            }
        }
        json_decref(body);
        if (bad) {
            res->skipped++;
        } else {
            res->records++;
            if (r.type == AUD_T_EVENT)
                res->events++;
            else if (r.type == AUD_T_CHECKPOINT)
                res->checkpoints++;
            if (res->first_seq == 0)
                res->first_seq = r.seq;
            res->last_seq = r.seq;
        }
        memcpy(ch->prev, r.mac, AUD_MAC);
        ch->next_seq = r.seq + 1;
        off += r.size;
        if (!bad && res->fault == MESH_AUDIT_FAULT_NONE)
            res->good = off;
        first = false;
        if (pause) {
            res->paused = true;
            res->good = off; /* lenient walks resume here too */
            return;
        }
    }
}

mesh_status_t mesh_audit_check_segment(const uint8_t *p, size_t n, const mesh_audit_keys_t *keys,
                                       mesh_audit_verify_t *out)
{
    memset(out, 0, sizeof *out);
    aud_crypto_t c;
    if (mesh__audit_crypto_init(&c, keys, NULL) != MESH_OK)
        return MESH_NOMEM;
    aud_chain_t ch = {.c = &c};
    mesh_buf_init(&ch.scratch, AUD_MAX_PAYLOAD + 1);
    aud_seg_result_t res;
    mesh__audit_walk(&ch, p, n, 0, 0, NULL, NULL, &res);
    out->records = res.records;
    out->events = res.events;
    out->checkpoints = res.checkpoints;
    out->segments = 1;
    out->first_seq = res.first_seq;
    out->last_seq = res.last_seq;
    if (res.records)
        mesh_hex(ch.prev, AUD_MAC, out->head_mac);
    out->fault = res.fault;
    out->offset = res.fault_off;
    out->seq = res.fault_seq;
    snprintf(out->reason, sizeof out->reason, "%s", res.reason);
    out->ok = res.fault == MESH_AUDIT_FAULT_NONE;
    mesh_buf_free(&ch.scratch);
    mesh__audit_crypto_free(&c);
    return out->ok ? MESH_OK : MESH_CORRUPT;
}

/* ---- files ---- */

void mesh__audit_seg_name(uint64_t first, char *out)
{
    snprintf(out, AUD_SEG_NAME + 1, "%020" PRIu64 AUD_SEG_SUFFIX, first);
}

uint64_t mesh__audit_seg_parse(const char *name)
{
    uint64_t v;
    if (strlen(name) != AUD_SEG_NAME || strcmp(name + 20, AUD_SEG_SUFFIX) != 0)
        return 0;
    for (int i = 0; i < 20; i++)
        if (name[i] < '0' || name[i] > '9')
            return 0;
    if (mesh_parse_u64(name, 20, &v) != MESH_OK)
        return 0;
    return v;
}

static int seg_cmp(const void *a, const void *b)
{
    const aud_seg_t *x = a, *y = b;
    return x->first < y->first ? -1 : x->first > y->first;
}

mesh_status_t mesh__audit_list(const char *dir, aud_seg_t **out, size_t *n, mesh_err_t *err)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return mesh_err_set(err, errno == ENOENT ? MESH_NOT_FOUND : MESH_IO, "%s: %s", dir,
                            strerror(errno));
    aud_seg_t *v = NULL;
    size_t len = 0, cap = 0;
    mesh_status_t st = MESH_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t first = mesh__audit_seg_parse(e->d_name);
        if (first == 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        if (len == cap) {
            size_t nc = cap ? cap * 2 : 16;
            aud_seg_t *t = realloc(v, nc * sizeof *t);
            if (t == NULL) {
                st = mesh_err_set(err, MESH_NOMEM, "out of memory");
                break;
            }
            v = t;
            cap = nc;
        }
        v[len].first = first;
        v[len].size = (uint64_t)sb.st_size;
        len++;
    }
    closedir(d);
    if (st != MESH_OK) {
        free(v);
        return st;
    }
    if (len > 1)
        qsort(v, len, sizeof *v, seg_cmp);
    *out = v;
    *n = len;
    return MESH_OK;
}

mesh_status_t mesh__audit_map(const char *path, size_t size, uint8_t **p, size_t *n,
                              mesh_err_t *err)
{
    /* read(), not mmap: a file cut short by someone else while mapped would be a SIGBUS */
    *p = NULL;
    *n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mesh_err_set(err, errno == ENOENT ? MESH_NOT_FOUND : MESH_IO, "open %s: %s", path,
                            strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return mesh_err_set(err, MESH_IO, "stat %s: %s", path, strerror(errno));
    }
    size_t want = (size_t)sb.st_size;
    if (size && size < want)
        want = size;
    if (want == 0) {
        close(fd);
        return MESH_OK;
    }
    uint8_t *buf = malloc(want);
    if (buf == NULL) {
        close(fd);
        return mesh_err_set(err, MESH_NOMEM, "out of memory reading %s", path);
    }
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(fd, buf + got, want - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return mesh_err_set(err, MESH_IO, "read %s: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    *p = buf;
    *n = got;
    return MESH_OK;
}

void mesh__audit_unmap(uint8_t *p, size_t n)
{
    (void)n;
    free(p);
}

/* ---- HEAD ---- */

static void head_bytes(const aud_head_t *h, uint8_t *b)
{
    mesh__audit_put_u32(b, AUD_HEAD_MAGIC);
    mesh__audit_put_u64(b + 4, h->seq);
    mesh__audit_put_u64(b + 12, h->base);
    mesh__audit_put_u64(b + 20, (uint64_t)h->time_ns);
    memcpy(b + 28, h->mac, AUD_MAC);
}

mesh_status_t mesh__audit_head_read(aud_crypto_t *c, const char *dir, aud_head_t *h,
                                    mesh_err_t *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/HEAD", dir);
    uint8_t *p;
    size_t n;
    mesh_status_t st = mesh__audit_map(path, AUD_HEAD_SIZE + 1, &p, &n, err);
    if (st != MESH_OK)
        return st;
    if (n != AUD_HEAD_SIZE || mesh__audit_get_u32(p) != AUD_HEAD_MAGIC) {
        mesh__audit_unmap(p, n);
        return mesh_err_set(err, MESH_CORRUPT, "%s is not a checkpoint file", path);
    }
    uint8_t mac[AUD_MAC];
    mesh__audit_hmac(c, (const uint8_t *)HEAD_LABEL, strlen(HEAD_LABEL), p, AUD_HEAD_SIZE - AUD_MAC,
                     NULL, 0, mac);
    if (CRYPTO_memcmp(mac, p + AUD_HEAD_SIZE - AUD_MAC, AUD_MAC) != 0) {
        mesh__audit_unmap(p, n);
        return mesh_err_set(err, MESH_CORRUPT, "%s: MAC mismatch (edited, or the key is wrong)",
                            path);
    }
    h->seq = mesh__audit_get_u64(p + 4);
    h->base = mesh__audit_get_u64(p + 12);
    h->time_ns = (int64_t)mesh__audit_get_u64(p + 20);
    memcpy(h->mac, p + 28, AUD_MAC);
    mesh__audit_unmap(p, n);
    return MESH_OK;
}

mesh_status_t mesh__audit_head_write(aud_crypto_t *c, const char *dir, const aud_head_t *h,
                                     mesh_err_t *err)
{
    uint8_t b[AUD_HEAD_SIZE];
    head_bytes(h, b);
    mesh__audit_hmac(c, (const uint8_t *)HEAD_LABEL, strlen(HEAD_LABEL), b, AUD_HEAD_SIZE - AUD_MAC,
                     NULL, 0, b + AUD_HEAD_SIZE - AUD_MAC);
    char tmp[4096], path[4096];
    snprintf(tmp, sizeof tmp, "%s/HEAD.tmp", dir);
    snprintf(path, sizeof path, "%s/HEAD", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return mesh_err_set(err, errno == ENOSPC ? MESH_NOSPACE : MESH_IO, "create %s: %s", tmp,
                            strerror(errno));
    if (mesh_write_all(fd, b, sizeof b) != MESH_OK || fdatasync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return mesh_err_set(err, e == ENOSPC ? MESH_NOSPACE : MESH_IO, "write %s: %s", tmp,
                            strerror(e));
    }
    close(fd);
    if (rename(tmp, path) != 0)
        return mesh_err_set(err, MESH_IO, "rename %s: %s", tmp, strerror(errno));
    if (mesh_fsync_dir(dir) != MESH_OK)
        return mesh_err_set(err, MESH_IO, "fsync %s: %s", dir, strerror(errno));
    return MESH_OK;
}
