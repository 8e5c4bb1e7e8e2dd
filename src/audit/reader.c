/*
 * reader.c - reading an audit log back: verification of the whole chain (offline, or over a
 * snapshot of the open log) and the search scan behind GET /v1/audit, system.audit and
 * `meshctl audit search`.
 *
 * Verification walks every segment in seq order with the chain carried across files, then
 * checks the end of the log against HEAD (the last fsynced checkpoint) and an optional
 * outside anchor. The first fault is classified (a record edited, deleted, out of order, a
 * segment gone, the log cut) and named by file, offset and seq.
 */
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/internal.h"
#include "core/util.h"

const char *mesh_audit_fault_name(mesh_audit_fault_t f)
{
    static const char *const names[] = {
#define MESH_X_NAME(name, text) #name,
        MESH_AUDIT_FAULT_MAP(MESH_X_NAME)
#undef MESH_X_NAME
    };
    return (unsigned)f < MESH_ARRAY_LEN(names) ? names[f] : "UNKNOWN";
}

const char *mesh_audit_fault_text(mesh_audit_fault_t f)
{
    static const char *const texts[] = {
#define MESH_X_TEXT(name, text) text,
        MESH_AUDIT_FAULT_MAP(MESH_X_TEXT)
#undef MESH_X_TEXT
    };
    return (unsigned)f < MESH_ARRAY_LEN(texts) ? texts[f] : "unknown";
}

mesh_status_t mesh_audit_anchor_parse(const char *s, mesh_audit_anchor_t *out, mesh_err_t *err)
{
    const char *colon = s ? strchr(s, ':') : NULL;
    if (colon == NULL || mesh_parse_u64(s, (size_t)(colon - s), &out->seq) != MESH_OK ||
        out->seq == 0 || strlen(colon + 1) != 2 * MESH_AUDIT_MAC_LEN ||
        !mesh_unhex(colon + 1, out->mac, MESH_AUDIT_MAC_LEN))
        return mesh_err_set(err, MESH_INVALID,
                            "an anchor is SEQ:MAC (a seq and 64 hex digits, as verify prints)");
    return MESH_OK;
}

mesh_status_t mesh_audit_parse_time(const char *s, int64_t *out_ns)
{
    if (s == NULL || *s == '\0')
        return MESH_PARSE;
    if (mesh_time_parse(s, strlen(s), out_ns) == MESH_OK)
        return MESH_OK;
    int64_t d;
    if (mesh_duration_parse(s, &d) != MESH_OK || d < 0)
        return MESH_PARSE;
    *out_ns = mesh_now_ns() - d;
    return MESH_OK;
}

/* ---- verification ---- */

typedef struct vprobe {
    uint64_t head_seq;
    bool head_found;
    int head_type;
    uint8_t head_mac[AUD_MAC];
    const mesh_audit_anchor_t *anchor;
    bool anchor_found, anchor_ok;
    int64_t cat_version; /* the newest catalog version recorded */
} vprobe_t;

static mesh_status_t vprobe(void *arg, const aud_rec_t *r, json_t *body)
{
    vprobe_t *v = arg;
    json_int_t cv = json_integer_value(json_object_get(body, "catalog_version"));
    if (cv > v->cat_version)
        v->cat_version = cv;
    if (r->seq == v->head_seq) {
        v->head_found = true;
        v->head_type = r->type;
        memcpy(v->head_mac, r->mac, AUD_MAC);
    }
    if (v->anchor && r->seq == v->anchor->seq) {
        v->anchor_found = true;
        v->anchor_ok = CRYPTO_memcmp(r->mac, v->anchor->mac, AUD_MAC) == 0;
    }
    return MESH_OK;
}

static void set_fault(mesh_audit_verify_t *out, mesh_audit_fault_t f, const char *file,
                      uint64_t off, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void set_fault(mesh_audit_verify_t *out, mesh_audit_fault_t f, const char *file,
                      uint64_t off, uint64_t seq, const char *fmt, ...)
{
    out->ok = false;
    out->fault = f;
    snprintf(out->file, sizeof out->file, "%s", file);
    out->offset = off;
    out->seq = seq;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->reason, sizeof out->reason, fmt, ap);
    va_end(ap);
}

/* Whether a record with seq appears at or after offset off of segment i (by headers only). */
static bool seq_later(const char *dir, const aud_seg_t *segs, size_t nsegs, size_t i,
                      const uint8_t *p, size_t n, size_t off, uint64_t seq)
{
    for (size_t k = i; k < nsegs; k++) {
        uint8_t *q = (uint8_t *)p;
        size_t qn = n, o = k == i ? off : 0;
        if (k != i) {
            char name[AUD_SEG_NAME + 1], path[4096];
            mesh__audit_seg_name(segs[k].first, name);
            snprintf(path, sizeof path, "%s/%s", dir, name);
            if (mesh__audit_map(path, segs[k].size, &q, &qn, NULL) != MESH_OK)
                continue;
        }
        bool found = false;
        aud_rec_t r;
        while (!found && mesh__audit_parse(q, qn, o, &r) == 1) {
            found = r.seq == seq;
            o += r.size;
        }
        if (k != i)
            mesh__audit_unmap(q, qn);
        if (found)
            return true;
    }
    return false;
}

/* The seq of the record after the one at off, or 0. */
static uint64_t next_rec_seq(const uint8_t *p, size_t n, size_t off)
{
    aud_rec_t r;
    if (mesh__audit_parse(p, n, off, &r) != 1 || mesh__audit_parse(p, n, off + r.size, &r) != 1)
        return 0;
    return r.seq;
}

/* Turns a walk's fault in segment i into the verification result. */
static void classify(mesh_audit_verify_t *out, const char *dir, const aud_seg_t *segs, size_t nsegs,
                     size_t i, const uint8_t *p, size_t n, const char *name,
                     const aud_seg_result_t *res, uint64_t expect)
{
    uint64_t found = res->fault_seq;
    switch (res->fault) {
    case MESH_AUDIT_FAULT_REORDERED:
    case MESH_AUDIT_FAULT_MISSING:
        if (found < expect) {
            set_fault(out, MESH_AUDIT_FAULT_REORDERED, name, res->fault_off, found,
                      "seq %" PRIu64 " appears where seq %" PRIu64
                      " was expected: records are out of order (or repeated)",
                      found, expect);
        } else if (next_rec_seq(p, n, res->fault_off) == expect + 1) {
            /* the record after it carries on the chain: this one's seq field was changed */
            set_fault(out, MESH_AUDIT_FAULT_MAC, name, res->fault_off, expect,
                      "the record at this offset says seq %" PRIu64 " where seq %" PRIu64
                      " belongs: it was edited",
                      found, expect);
        } else if (seq_later(dir, segs, nsegs, i, p, n, res->fault_off, expect)) {
            set_fault(out, MESH_AUDIT_FAULT_REORDERED, name, res->fault_off, found,
                      "seq %" PRIu64 " appears where seq %" PRIu64 " was expected, and seq %" PRIu64
                      " comes later: records are out of order",
                      found, expect, expect);
        } else if (res->fault_off == 0 && i > 0) {
            set_fault(out, MESH_AUDIT_FAULT_SEGMENT_MISSING, name, 0, expect,
                      "records %" PRIu64 "..%" PRIu64 " are missing before this segment: a "
                      "segment file was deleted, or the segment before it was cut short",
                      expect, found - 1);
        } else {
            set_fault(out, MESH_AUDIT_FAULT_MISSING, name, res->fault_off, expect,
                      "records %" PRIu64 "..%" PRIu64 " are missing: seq %" PRIu64
                      " is at this offset (records deleted)",
                      expect, found - 1, found);
        }
        return;
    case MESH_AUDIT_FAULT_TRUNCATED:
        set_fault(out, MESH_AUDIT_FAULT_TRUNCATED, name, res->fault_off, expect,
                  "%s, and later segments exist: the file was cut short", res->reason);
        return;
    default:
        set_fault(out, res->fault, name, res->fault_off, found, "%s", res->reason);
        return;
    }
}

/* Verifies the segments of dir. With a (a live log) the segment list and sizes are a
 * snapshot taken after HEAD is read, so HEAD never names a record the snapshot lacks. */
static mesh_status_t verify(mesh_audit_t *a, const char *dir, const mesh_audit_keys_t *keys,
                            const mesh_audit_anchor_t *anchor, mesh_audit_verify_t *out,
                            mesh_err_t *err)
{
    memset(out, 0, sizeof *out);
    out->ok = true;
    mesh_audit_keys_t k;
    char *sdir = NULL;
    aud_seg_t *segs = NULL;
    size_t nsegs = 0;
    aud_crypto_t c;
    bool have_c = false;
    mesh_status_t st;
    if (a) {
        /* HEAD first: read with the live log's keys (a snapshot copies them) */
        if ((st = mesh__audit_snapshot(a, &sdir, NULL, NULL, &k, err)) != MESH_OK)
            return st;
        dir = sdir;
    } else {
        k = *keys;
    }
    if ((st = mesh__audit_crypto_init(&c, &k, err)) != MESH_OK)
        goto done;
    have_c = true;
    aud_head_t head = {0};
    mesh_err_t herr;
    mesh_status_t hst = mesh__audit_head_read(&c, dir, &head, &herr);
    if (hst != MESH_OK && hst != MESH_NOT_FOUND && hst != MESH_CORRUPT) {
        st = mesh_err_set(err, hst, "%s", herr.msg);
        goto done;
    }
    if (a)
        st = mesh__audit_snapshot(a, NULL, &segs, &nsegs, NULL, err);
    else
        st = mesh__audit_list(dir, &segs, &nsegs, err);
    if (st != MESH_OK) {
        if (st == MESH_NOT_FOUND)
            mesh_err_set(err, MESH_NOT_FOUND, "no audit log in %s", dir);
        goto done;
    }
    if (nsegs == 0) {
        if (hst == MESH_NOT_FOUND) {
            st = mesh_err_set(err, MESH_NOT_FOUND, "no audit log in %s", dir);
            goto done;
        }
        set_fault(out, MESH_AUDIT_FAULT_SEGMENT_MISSING, "HEAD", 0, hst == MESH_OK ? head.seq : 0,
                  "HEAD exists but no segment does: every segment file was deleted");
        goto done;
    }
    uint64_t base = hst == MESH_OK && head.base ? head.base : 1;
    out->base_seq = base;
    out->checkpoint_seq = hst == MESH_OK ? head.seq : 0;
    char name[AUD_SEG_NAME + 1];
    if (segs[0].first > base) {
        mesh__audit_seg_name(segs[0].first, name);
        set_fault(out, MESH_AUDIT_FAULT_SEGMENT_MISSING, name, 0, base,
                  "records %" PRIu64 "..%" PRIu64 " are missing: the log should start at seq "
                  "%" PRIu64 " (HEAD) but its first segment starts at %" PRIu64,
                  base, segs[0].first - 1, base, segs[0].first);
        goto done;
    }
    aud_chain_t ch = {.c = &c};
    mesh_buf_init(&ch.scratch, AUD_MAX_PAYLOAD + 1);
    if (segs[0].first == 1) {
        ch.have_prev = true;
        ch.next_seq = 1;
    }
    vprobe_t vp = {.head_seq = hst == MESH_OK ? head.seq : 0, .anchor = anchor};
    char last_name[AUD_SEG_NAME + 1] = "";
    uint64_t last_end = 0;
    for (size_t i = 0; i < nsegs && out->ok; i++) {
        mesh__audit_seg_name(segs[i].first, name);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        uint8_t *p;
        size_t n;
        if ((st = mesh__audit_map(path, a ? segs[i].size : 0, &p, &n, err)) != MESH_OK) {
            if (st == MESH_NOT_FOUND) /* deleted while we read: retention, or an attacker */
                set_fault(out, MESH_AUDIT_FAULT_SEGMENT_MISSING, name, 0, segs[i].first,
                          "the segment file vanished while it was being verified");
            st = MESH_OK;
            break;
        }
        aud_seg_result_t res;
        mesh__audit_walk(&ch, p, n, 0, segs[i].first, vprobe, &vp, &res);
        out->segments++;
        out->records += res.records;
        out->events += res.events;
        out->checkpoints += res.checkpoints;
        if (out->first_seq == 0)
            out->first_seq = res.first_seq;
        if (res.records)
            out->last_seq = res.last_seq;
        snprintf(last_name, sizeof last_name, "%s", name);
        last_end = res.good;
        if (res.fault != MESH_AUDIT_FAULT_NONE) {
            if (res.torn && i + 1 == nsegs) {
                out->torn_bytes = n - res.good;
                out->torn_offset = res.good;
                snprintf(out->torn_file, sizeof out->torn_file, "%s", name);
            } else {
                /* the walk stops before a bad record: next_seq is the seq expected there */
                classify(out, dir, segs, nsegs, i, p, n, name, &res, ch.next_seq);
            }
        }
        mesh__audit_unmap(p, n);
    }
    mesh_buf_free(&ch.scratch);
    out->catalog_version = vp.cat_version;
    if (!out->ok)
        goto done;
    if (out->records)
        mesh_hex(ch.prev, AUD_MAC, out->head_mac);
    if (hst == MESH_NOT_FOUND) {
        set_fault(out, MESH_AUDIT_FAULT_HEAD, "HEAD", 0, 0,
                  "HEAD (the last checkpoint) is missing: the log's end cannot be checked");
    } else if (hst == MESH_CORRUPT) {
        set_fault(out, MESH_AUDIT_FAULT_HEAD, "HEAD", 0, 0, "%s", herr.msg);
    } else if (head.seq > out->last_seq) {
        set_fault(out, MESH_AUDIT_FAULT_TRUNCATED_CHECKPOINT, last_name, last_end,
                  out->last_seq + 1,
                  "the log ends at seq %" PRIu64 " but its last checkpoint (fsynced, named by "
                  "HEAD) is seq %" PRIu64 ": records %" PRIu64 "..%" PRIu64 " were removed",
                  out->last_seq, head.seq, out->last_seq + 1, head.seq);
    } else if (head.seq >= out->first_seq && (!vp.head_found || vp.head_type != AUD_T_CHECKPOINT ||
                                              CRYPTO_memcmp(vp.head_mac, head.mac, AUD_MAC) != 0)) {
        set_fault(out, MESH_AUDIT_FAULT_HEAD, "HEAD", 0, head.seq,
                  "HEAD names checkpoint seq %" PRIu64 ", but that record is not it", head.seq);
    } else if (anchor && anchor->seq > out->last_seq) {
        set_fault(out, MESH_AUDIT_FAULT_ANCHOR, last_name, last_end, out->last_seq + 1,
                  "the anchor is seq %" PRIu64 " but the log ends at seq %" PRIu64
                  ": it was cut (or rolled back)",
                  anchor->seq, out->last_seq);
    } else if (anchor && anchor->seq < out->first_seq) {
        set_fault(out, MESH_AUDIT_FAULT_ANCHOR, "", 0, anchor->seq,
                  "the anchor is seq %" PRIu64 ", older than the oldest record kept (%" PRIu64
                  "): it cannot be checked",
                  anchor->seq, out->first_seq);
    } else if (anchor && !vp.anchor_ok) {
        set_fault(out, MESH_AUDIT_FAULT_ANCHOR, "", 0, anchor->seq,
                  "record %" PRIu64 " does not have the anchor's MAC: the log was rewritten up "
                  "to there",
                  anchor->seq);
    }
done:
    if (have_c)
        mesh__audit_crypto_free(&c);
    if (a)
        OPENSSL_cleanse(&k, sizeof k);
    free(segs);
    free(sdir);
    if (st != MESH_OK)
        return st;
    return out->ok ? MESH_OK : MESH_CORRUPT;
}

mesh_status_t mesh_audit_verify_dir(const char *dir, const mesh_audit_keys_t *keys,
                                    const mesh_audit_anchor_t *anchor, mesh_audit_verify_t *out,
                                    mesh_err_t *err)
{
    return verify(NULL, dir, keys, anchor, out, err);
}

mesh_status_t mesh_audit_verify_live(mesh_audit_t *a, const mesh_audit_anchor_t *anchor,
                                     mesh_audit_verify_t *out, mesh_err_t *err)
{
    return verify(a, NULL, NULL, anchor, out, err);
}

mesh_status_t mesh_audit_verify_json(const mesh_audit_verify_t *v, mesh_buf_t *b)
{
    mesh_buf_printf(b,
                    "{\"ok\":%s,\"records\":%" PRIu64 ",\"events\":%" PRIu64
                    ",\"checkpoints\":%" PRIu64 ",\"segments\":%" PRIu64 ",\"first_seq\":%" PRIu64
                    ",\"last_seq\":%" PRIu64 ",\"checkpoint_seq\":%" PRIu64
                    ",\"base_seq\":%" PRIu64,
                    v->ok ? "true" : "false", v->records, v->events, v->checkpoints, v->segments,
                    v->first_seq, v->last_seq, v->checkpoint_seq, v->base_seq);
    if (v->catalog_version > 0)
        mesh_buf_printf(b, ",\"catalog_version\":%lld", (long long)v->catalog_version);
    if (v->head_mac[0])
        mesh_buf_printf(b, ",\"anchor\":\"%" PRIu64 ":%s\"", v->last_seq, v->head_mac);
    if (v->torn_bytes) {
        mesh_buf_adds(b, ",\"torn\":{\"file\":");
        mesh_buf_add_json_str(b, v->torn_file, strlen(v->torn_file));
        mesh_buf_printf(b, ",\"offset\":%" PRIu64 ",\"bytes\":%" PRIu64 "}", v->torn_offset,
                        v->torn_bytes);
    }
    if (!v->ok) {
        const char *code = mesh_audit_fault_name(v->fault);
        const char *text = mesh_audit_fault_text(v->fault);
        mesh_buf_adds(b, ",\"fault\":{\"code\":");
        mesh_buf_add_json_str(b, code, strlen(code));
        mesh_buf_adds(b, ",\"text\":");
        mesh_buf_add_json_str(b, text, strlen(text));
        mesh_buf_adds(b, ",\"file\":");
        mesh_buf_add_json_str(b, v->file, strlen(v->file));
        mesh_buf_printf(b, ",\"offset\":%" PRIu64 ",\"seq\":%" PRIu64 ",\"reason\":", v->offset,
                        v->seq);
        mesh_buf_add_json_str(b, v->reason, strlen(v->reason));
        mesh_buf_addc(b, '}');
    }
    return mesh_buf_addc(b, '}');
}

/* ---- search ---- */

struct mesh_audit_scan {
    aud_crypto_t c;
    aud_chain_t ch;
    char *dir;
    aud_seg_t *segs;
    size_t nsegs, cur;
    uint8_t *buf;
    size_t n, off;
    bool loaded;
    /* the filter, copied */
    char *principal, *product, *action;
    mesh_audit_filter_t f;
    /* the current event */
    json_t *body;
    uint64_t seq;
    char *details, *json;
    mesh_buf_t warning;
    bool done;
};

static bool str_is(const json_t *o, const char *key, const char *v)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && strcmp(s, v) == 0;
}

static bool product_matches(const json_t *body, const char *want)
{
    const char *dot = strchr(want, '.');
    const char *dom = json_string_value(json_object_get(body, "domain"));
    const char *prod = json_string_value(json_object_get(body, "product"));
    size_t dl = dot ? (size_t)(dot - want) : strlen(want);
    if (dom && strlen(dom) == dl && strncmp(dom, want, dl) == 0 &&
        (dot == NULL || (prod && strcmp(prod, dot + 1) == 0)))
        return true;
    /* a query's products, or a write's when it touched several */
    const json_t *list = json_object_get(json_object_get(body, "details"), "products");
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v)
    {
        const char *s = json_string_value(v);
        if (s == NULL && json_is_object(v))
            s = json_string_value(json_object_get(v, "product"));
        if (s == NULL)
            continue;
        if (dot ? strcmp(s, want) == 0 : strncmp(s, want, dl) == 0 && s[dl] == '.')
            return true;
    }
    return false;
}

static bool matches(const mesh_audit_scan_t *s, uint64_t seq, const json_t *body)
{
    const mesh_audit_filter_t *f = &s->f;
    if (seq <= f->after_seq || (f->before_seq && seq >= f->before_seq))
        return false;
    json_int_t t = json_integer_value(json_object_get(body, "time"));
    if ((f->since_ns && t < f->since_ns) || (f->until_ns && t >= f->until_ns))
        return false;
    if (s->action) {
        const char *a = json_string_value(json_object_get(body, "action"));
        size_t al = strlen(s->action);
        if (a == NULL ||
            (strcmp(a, s->action) != 0 && !(strncmp(a, s->action, al) == 0 && a[al] == '.')))
            return false;
    }
    if (s->principal) {
        uint64_t id;
        bool by_id = mesh_parse_u64(s->principal, strlen(s->principal), &id) == MESH_OK &&
                     json_integer_value(json_object_get(body, "principal_id")) == (json_int_t)id;
        if (!by_id && !str_is(body, "principal", s->principal))
            return false;
    }
    if (s->product && !product_matches(body, s->product))
        return false;
    return true;
}

static mesh_status_t scan_cb(void *arg, const aud_rec_t *r, json_t *body)
{
    mesh_audit_scan_t *s = arg;
    if (r->type != AUD_T_EVENT || !matches(s, r->seq, body))
        return MESH_OK;
    s->body = json_incref(body);
    s->seq = r->seq;
    return MESH_BUSY;
}

static void warn(mesh_audit_scan_t *s, const char *name, const aud_seg_result_t *res)
{
    if (s->warning.len > 600)
        return;
    mesh_buf_printf(&s->warning, "%s%s at offset %zu (seq %" PRIu64 "): %s%s",
                    s->warning.len ? "; " : "", name, res->fault_off, res->fault_seq, res->reason,
                    res->skipped > 1 ? " (and more)" : "");
}

mesh_status_t mesh_audit_scan_open(mesh_audit_t *a, const char *dir, const mesh_audit_keys_t *keys,
                                   const mesh_audit_filter_t *f, mesh_audit_scan_t **out,
                                   mesh_err_t *err)
{
    mesh_audit_scan_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    mesh_buf_init(&s->warning, 4096);
    mesh_buf_init(&s->ch.scratch, AUD_MAX_PAYLOAD + 1);
    mesh_audit_keys_t k;
    mesh_status_t st;
    if (a) {
        st = mesh__audit_snapshot(a, &s->dir, &s->segs, &s->nsegs, &k, err);
    } else {
        k = *keys;
        s->dir = strdup(dir);
        st = s->dir ? mesh__audit_list(dir, &s->segs, &s->nsegs, err)
                    : mesh_err_set(err, MESH_NOMEM, "out of memory");
        if (st == MESH_OK && s->nsegs == 0)
            st = mesh_err_set(err, MESH_NOT_FOUND, "no audit log in %s", dir);
    }
    if (st == MESH_OK)
        st = mesh__audit_crypto_init(&s->c, &k, err);
    OPENSSL_cleanse(&k, sizeof k);
    if (st != MESH_OK) {
        mesh_audit_scan_close(s);
        return st;
    }
    s->ch.c = &s->c;
    s->ch.lenient = true;
    if (f) {
        s->f = *f;
        s->principal = f->principal && *f->principal ? strdup(f->principal) : NULL;
        s->product = f->product && *f->product ? strdup(f->product) : NULL;
        s->action = f->action && *f->action ? strdup(f->action) : NULL;
    }
    /* segments wholly at or before after_seq are skipped (the chain restarts at the next) */
    while (s->cur + 1 < s->nsegs && s->segs[s->cur + 1].first <= s->f.after_seq + 1)
        s->cur++;
    *out = s;
    return MESH_OK;
}

static void drop_current(mesh_audit_scan_t *s)
{
    json_decref(s->body);
    s->body = NULL;
    free(s->details);
    free(s->json);
    s->details = s->json = NULL;
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void fill(mesh_audit_scan_t *s, mesh_audit_entry_t *e)
{
    json_t *b = s->body;
    memset(e, 0, sizeof *e);
    e->seq = s->seq;
    e->time_ns = json_integer_value(json_object_get(b, "time"));
    e->action = jstr(b, "action");
    e->principal_id = json_integer_value(json_object_get(b, "principal_id"));
    e->principal = jstr(b, "principal");
    e->auth = jstr(b, "auth");
    e->token_id = jstr(b, "token_id");
    e->source = jstr(b, "source");
    e->request_id = jstr(b, "request_id");
    e->domain = jstr(b, "domain");
    e->product = jstr(b, "product");
    e->columns = jstr(b, "columns");
    e->status = json_integer_value(json_object_get(b, "status"));
    e->outcome = jstr(b, "outcome");
    e->policy_version = json_integer_value(json_object_get(b, "policy_version"));
    json_t *d = json_object_get(b, "details");
    if (d)
        e->details = s->details = json_dumps(d, JSON_COMPACT);
    /* the event as the API shows it: seq first, the time as ISO text (and in ns) */
    json_t *o = json_object();
    json_object_set_new(o, "seq", json_integer((json_int_t)s->seq));
    char t[MESH_TIME_MAX];
    mesh_time_format(e->time_ns, t);
    json_object_set_new(o, "time", json_string(t));
    json_object_set_new(o, "time_ns", json_integer(e->time_ns));
    const char *key;
    json_t *v;
    json_object_foreach(b, key, v)
    {
        if (strcmp(key, "time") != 0)
            json_object_set(o, key, v);
    }
    e->json = s->json = json_dumps(o, JSON_COMPACT);
    json_decref(o);
}

int mesh_audit_scan_next(mesh_audit_scan_t *s, mesh_audit_entry_t *e)
{
    drop_current(s);
    while (!s->done) {
        if (s->f.before_seq && s->cur < s->nsegs && s->segs[s->cur].first >= s->f.before_seq)
            s->done = true;
        if (s->cur >= s->nsegs || s->done) {
            s->done = true;
            break;
        }
        char name[AUD_SEG_NAME + 1];
        mesh__audit_seg_name(s->segs[s->cur].first, name);
        if (!s->loaded) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", s->dir, name);
            mesh_err_t err;
            if (mesh__audit_map(path, s->segs[s->cur].size, &s->buf, &s->n, &err) != MESH_OK) {
                if (s->warning.len < 600)
                    mesh_buf_printf(&s->warning, "%s%s", s->warning.len ? "; " : "", err.msg);
                s->cur++;
                s->ch.have_prev = false;
                continue;
            }
            s->loaded = true;
            s->off = 0;
            if (s->ch.have_prev && s->ch.next_seq != s->segs[s->cur].first)
                s->ch.have_prev = false; /* a gap (retention, or skipped): restart the chain */
        }
        aud_seg_result_t res;
        mesh__audit_walk(&s->ch, s->buf, s->n, s->off, s->segs[s->cur].first, scan_cb, s, &res);
        if (res.fault != MESH_AUDIT_FAULT_NONE && !(res.torn && s->cur + 1 == s->nsegs))
            warn(s, name, &res);
        if (res.paused) {
            s->off = res.good;
            if (s->body) {
                fill(s, e);
                return 1;
            }
            continue;
        }
        mesh__audit_unmap(s->buf, s->n);
        s->buf = NULL;
        s->loaded = false;
        s->cur++;
        if (res.fault == MESH_AUDIT_FAULT_MALFORMED || res.fault == MESH_AUDIT_FAULT_TRUNCATED)
            s->ch.have_prev = false; /* the rest of that segment was unreadable */
    }
    return 0;
}

const char *mesh_audit_scan_warning(const mesh_audit_scan_t *s)
{
    return s->warning.len ? s->warning.data : NULL;
}

void mesh_audit_scan_close(mesh_audit_scan_t *s)
{
    if (s == NULL)
        return;
    drop_current(s);
    if (s->buf)
        mesh__audit_unmap(s->buf, s->n);
    if (s->ch.c)
        mesh__audit_crypto_free(&s->c);
    mesh_buf_free(&s->ch.scratch);
    mesh_buf_free(&s->warning);
    free(s->segs);
    free(s->dir);
    free(s->principal);
    free(s->product);
    free(s->action);
    free(s);
}
