/*
 * codec.c - column chunk encoding and decoding (see codec.h for the format).
 */
#include "store/codec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_VERSION 2 /* 2: the last row's values in the column headers; 1 is still read */
#define F_NULLS       0x1
#define F_SUMMARY     0x2
#define F_LAST        0x4 /* the header holds the column's value in the last row */
#define F_LAST_NULL   0x8 /* ... which is NULL (no value follows) */

/* ---- small encoders ---- */

static uint64_t zz(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzz(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* A bit writer into memory reserved beforehand (enc_real): bits go out most significant
 * first, eight bytes at a time from a 64-bit accumulator. */
typedef struct bitw {
    uint8_t *p;   /* the next byte to write */
    uint64_t acc; /* pending bits, in its low nacc bits */
    int nacc;     /* 0..63 */
} bitw_t;

static inline void bw_store64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* Appends the low nbits (1..64) of v. */
static inline void bw_put(bitw_t *w, uint64_t v, int nbits)
{
    if (nbits < 64)
        v &= (1ULL << nbits) - 1;
    int room = 64 - w->nacc; /* 1..64 */
    if (nbits < room) {
        w->acc = (w->acc << nbits) | v;
        w->nacc += nbits;
        return;
    }
    int rest = nbits - room; /* 0..63: bits of v left for the next word */
    uint64_t word = room == 64 ? v : (w->acc << room) | (v >> rest);
    bw_store64(w->p, word);
    w->p += 8;
    w->acc = rest ? v & ((1ULL << rest) - 1) : 0;
    w->nacc = rest;
}

/* Writes out the pending bits, the last byte padded with zero bits. */
static void bw_flush(bitw_t *w)
{
    while (w->nacc >= 8) {
        *w->p++ = (uint8_t)(w->acc >> (w->nacc - 8));
        w->nacc -= 8;
    }
    if (w->nacc > 0)
        *w->p++ = (uint8_t)(w->acc << (8 - w->nacc));
    w->acc = 0;
    w->nacc = 0;
}

typedef struct bitr {
    const uint8_t *p;
    size_t n;   /* bytes */
    size_t pos; /* bits consumed */
    int bad;
} bitr_t;

static inline uint64_t load_be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint64_t br_get(bitr_t *r, int nbits)
{
    if (nbits <= 0)
        return 0;
    if (r->pos + (size_t)nbits > r->n * 8) {
        r->bad = 1;
        return 0;
    }
    size_t at = r->pos >> 3;
    if (nbits <= 56 && at + 8 <= r->n) { /* one load: the bit offset (< 8) + nbits fit */
        uint64_t w = load_be64(r->p + at) << (r->pos & 7);
        r->pos += (size_t)nbits;
        return w >> (64 - nbits);
    }
    if (nbits > 56 && at + 16 <= r->n) { /* two loads (a real's XOR often has 57-64 bits) */
        uint64_t hi = load_be64(r->p + at) << (r->pos & 7) >> 32; /* 32 bits */
        r->pos += 32;
        int rest = nbits - 32;
        at = r->pos >> 3;
        uint64_t lo = (load_be64(r->p + at) << (r->pos & 7)) >> (64 - rest);
        r->pos += (size_t)rest;
        return (hi << rest) | lo;
    }
    uint64_t v = 0;
    while (nbits > 0) {
        size_t byte = r->pos >> 3;
        int off = (int)(r->pos & 7);
        int avail = 8 - off;
        int take = nbits < avail ? nbits : avail;
        uint64_t bits = (uint64_t)(r->p[byte] >> (avail - take)) & ((1u << take) - 1);
        v = (v << take) | bits;
        r->pos += (size_t)take;
        nbits -= take;
    }
    return v;
}

/* ---- per-kind encoders ---- */

/* A stream of signed values where runs of zeros are run-length encoded: each value is a
 * zigzag varint; a zero is followed by the count of further zeros. */
static mesh_status_t put_rle(mesh_buf_t *b, const int64_t *v, size_t n)
{
    mesh_status_t st = MESH_OK;
    for (size_t i = 0; i < n && st == MESH_OK; i++) {
        st = mesh_buf_add_uvarint(b, zz(v[i]));
        if (v[i] == 0 && st == MESH_OK) {
            size_t run = 0;
            while (i + 1 < n && v[i + 1] == 0) {
                run++;
                i++;
            }
            st = mesh_buf_add_uvarint(b, run);
        }
    }
    return st;
}

static int get_rle(mesh_cursor_t *c, int64_t *out, size_t n)
{
    size_t i = 0;
    while (i < n) {
        int64_t v = unzz(mesh_cursor_uvarint(c));
        if (c->bad)
            return -1;
        out[i++] = v;
        if (v == 0) {
            uint64_t run = mesh_cursor_uvarint(c);
            if (c->bad || run > n - i)
                return -1;
            for (uint64_t k = 0; k < run; k++)
                out[i++] = 0;
        }
    }
    return 0;
}

static mesh_status_t enc_time(mesh_buf_t *b, const int64_t *v, size_t n, int64_t *scratch)
{
    /* first value, first delta, then deltas of deltas (wrapping arithmetic is exact) */
    for (size_t i = 0; i < n; i++) {
        uint64_t d = i == 0 ? (uint64_t)v[0] : (uint64_t)v[i] - (uint64_t)v[i - 1];
        if (i >= 2) {
            uint64_t pd = (uint64_t)v[i - 1] - (uint64_t)v[i - 2];
            scratch[i] = (int64_t)(d - pd);
        } else {
            scratch[i] = (int64_t)d;
        }
    }
    return put_rle(b, scratch, n);
}

static int dec_time(mesh_cursor_t *c, int64_t *out, size_t n)
{
    if (get_rle(c, out, n) != 0)
        return -1;
    uint64_t prev = 0, delta = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0) {
            prev = (uint64_t)out[0];
        } else if (i == 1) {
            delta = (uint64_t)out[1];
            prev += delta;
        } else {
            delta += (uint64_t)out[i];
            prev += delta;
        }
        out[i] = (int64_t)prev;
    }
    return 0;
}

static mesh_status_t enc_int(mesh_buf_t *b, const int64_t *v, size_t n, int64_t *scratch)
{
    for (size_t i = 0; i < n; i++)
        scratch[i] = (int64_t)((uint64_t)v[i] - (i ? (uint64_t)v[i - 1] : 0));
    return put_rle(b, scratch, n);
}

static int dec_int(mesh_cursor_t *c, int64_t *out, size_t n)
{
    if (get_rle(c, out, n) != 0)
        return -1;
    uint64_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc += (uint64_t)out[i];
        out[i] = (int64_t)acc;
    }
    return 0;
}

static uint64_t dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

static double bitsd(uint64_t u)
{
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static mesh_status_t enc_real(mesh_buf_t *b, const double *v, size_t n)
{
    if (n == 0)
        return MESH_OK;
    /* at most 64 bits for the first value and 2 + 5 + 6 + 64 for each other one */
    mesh_status_t st = mesh_buf_reserve(b, n * 10 + 16);
    if (st != MESH_OK)
        return st;
    bitw_t w = {.p = (uint8_t *)b->data + b->len};
    uint64_t prev = dbits(v[0]);
    bw_put(&w, prev, 64);
    int plz = -1, ptz = 0;
    for (size_t i = 1; i < n; i++) {
        uint64_t cur = dbits(v[i]);
        uint64_t x = cur ^ prev;
        prev = cur;
        if (x == 0) {
            bw_put(&w, 0, 1);
            continue;
        }
        int lz = __builtin_clzll(x), tz = __builtin_ctzll(x);
        if (lz > 31)
            lz = 31;
        if (plz >= 0 && lz >= plz && tz >= ptz) {
            int mlen = 64 - plz - ptz; /* '10': reuse the previous window */
            if (mlen <= 62) {
                bw_put(&w, (2ULL << mlen) | (x >> ptz), 2 + mlen);
            } else {
                bw_put(&w, 2, 2);
                bw_put(&w, x >> ptz, mlen);
            }
        } else {
            int len = 64 - lz - tz; /* '11': a new window, its 5 + 6 bits, the bits */
            bw_put(&w, (3ULL << 11) | ((uint64_t)lz << 6) | (uint64_t)(len - 1), 13);
            bw_put(&w, x >> tz, len);
            plz = lz;
            ptz = tz;
        }
    }
    bw_flush(&w);
    b->len = (size_t)((char *)w.p - b->data);
    b->data[b->len] = '\0';
    return MESH_OK;
}

static int dec_real(const uint8_t *p, size_t len, double *out, size_t n)
{
    bitr_t r = {.p = p, .n = len};
    uint64_t prev = 0;
    int plz = 0, ptz = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0) {
            prev = br_get(&r, 64);
            if (r.bad)
                return -1;
            out[0] = bitsd(prev);
            continue;
        }
        size_t at = r.pos >> 3;
        if (at + 8 <= len) {
            /* the next 57 bits or more in one load: the control bits, a new window's header
             * and most values are read from it without a call each */
            uint64_t w = load_be64(p + at) << (r.pos & 7);
            if (!(w >> 63)) { /* '0': the same value */
                r.pos += 1;
                out[i] = bitsd(prev);
                continue;
            }
            int used;
            int mlen;
            if (!((w >> 62) & 1)) { /* '10': the previous window */
                mlen = 64 - plz - ptz;
                if (mlen <= 0)
                    return -1;
                used = 2;
            } else { /* '11': a new window, 5 bits of leading zeros and 6 of length - 1 */
                plz = (int)((w >> 57) & 31);
                mlen = (int)((w >> 51) & 63) + 1;
                ptz = 64 - plz - mlen;
                if (ptz < 0)
                    return -1;
                used = 13;
            }
            uint64_t x;
            if (used + mlen <= 57) {
                x = ((w << used) >> (64 - mlen)) << ptz;
                r.pos += (size_t)(used + mlen);
            } else {
                r.pos += (size_t)used;
                x = br_get(&r, mlen) << ptz;
                if (r.bad)
                    return -1;
            }
            prev ^= x;
            out[i] = bitsd(prev);
            continue;
        }
        if (br_get(&r, 1) == 1) {
            uint64_t x;
            if (br_get(&r, 1) == 0) {
                int mlen = 64 - plz - ptz;
                if (mlen <= 0)
                    return -1;
                x = br_get(&r, mlen) << ptz;
            } else {
                plz = (int)br_get(&r, 5);
                int mlen = (int)br_get(&r, 6) + 1;
                ptz = 64 - plz - mlen;
                if (ptz < 0)
                    return -1;
                x = br_get(&r, mlen) << ptz;
            }
            prev ^= x;
        }
        if (r.bad)
            return -1;
        out[i] = bitsd(prev);
    }
    return 0;
}

/* ---- chunk ---- */

static void summarise(const mesh_colvec_t *c, size_t n, mesh_colsum_t *s)
{
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < n; i++) {
        if (c->nulls && c->nulls[i])
            continue;
        double v = c->kind == MESH_COL_REAL ? c->d[i] : (double)c->i[i];
        if (isnan(v))
            continue;
        if (s->count == 0 || v < s->min)
            s->min = v;
        if (s->count == 0 || v > s->max)
            s->max = v;
        s->sum += v;
        s->count++;
    }
    if (c->kind == MESH_COL_INT && s->count) {
        /* keep the bounds conservative when int64 does not fit a double exactly */
        s->min = nextafter(s->min, -HUGE_VAL);
        s->max = nextafter(s->max, HUGE_VAL);
    }
}

static mesh_status_t add_double(mesh_buf_t *b, double d)
{
    return mesh_buf_add_u64(b, dbits(d));
}

mesh_status_t mesh_chunk_encode(const mesh_colvec_t *cols, size_t ncols, size_t nrows,
                                mesh_buf_t *out)
{
    if (nrows == 0 || nrows > MESH_CHUNK_MAX_ROWS || ncols > MESH_CHUNK_MAX_COLS)
        return MESH_INVALID;
    int64_t *scratch = malloc(nrows * sizeof *scratch);
    int64_t *packed_i = malloc(nrows * sizeof *packed_i);
    double *packed_d = malloc(nrows * sizeof *packed_d);
    uint32_t *idx = malloc(nrows * sizeof *idx);
    mesh_buf_t data;
    mesh_buf_init(&data, MESH_BUF_UNLIMITED);
    mesh_status_t st = (scratch && packed_i && packed_d && idx) ? MESH_OK : MESH_NOMEM;
    if (st == MESH_OK)
        st = mesh_buf_addc(out, CHUNK_VERSION);
    if (st == MESH_OK)
        st = mesh_buf_add_uvarint(out, nrows);
    if (st == MESH_OK)
        st = mesh_buf_add_uvarint(out, ncols);
    for (size_t c = 0; c < ncols && st == MESH_OK; c++) {
        const mesh_colvec_t *cv = &cols[c];
        size_t nl = strlen(cv->name);
        bool has_nulls = false;
        for (size_t i = 0; cv->nulls && i < nrows && !has_nulls; i++)
            has_nulls = cv->nulls[i] != 0;
        bool numeric = cv->kind == MESH_COL_INT || cv->kind == MESH_COL_REAL;
        mesh_buf_add_uvarint(out, nl);
        mesh_buf_add(out, cv->name, nl);
        mesh_buf_addc(out, (char)cv->kind);
        bool last_null = has_nulls && cv->nulls[nrows - 1];
        st = mesh_buf_addc(out, (char)((has_nulls ? F_NULLS : 0) | (numeric ? F_SUMMARY : 0) |
                                       F_LAST | (last_null ? F_LAST_NULL : 0)));
        if (numeric && st == MESH_OK) {
            mesh_colsum_t s;
            summarise(cv, nrows, &s);
            mesh_buf_add_uvarint(out, (uint64_t)s.count);
            add_double(out, s.min);
            add_double(out, s.max);
            st = add_double(out, s.sum);
        }
        /* the newest row's value, so the newest row of a series is read without decoding */
        if (!last_null && st == MESH_OK) {
            size_t l = nrows - 1;
            if (cv->kind == MESH_COL_REAL) {
                st = add_double(out, cv->d[l]);
            } else if (cv->kind == MESH_COL_TEXT) {
                mesh_buf_add_uvarint(out, cv->slen[l]);
                st = mesh_buf_add(out, cv->s[l], cv->slen[l]);
            } else {
                st = mesh_buf_add_uvarint(out, zz(cv->i[l]));
            }
        }
        mesh_buf_reset(&data);
        size_t m = 0; /* non-null values */
        if (has_nulls) {
            uint8_t byte = 0;
            for (size_t i = 0; i < nrows; i++) {
                if (cv->nulls[i])
                    byte |= (uint8_t)(1u << (i & 7));
                if ((i & 7) == 7 || i + 1 == nrows) {
                    mesh_buf_addc(&data, (char)byte);
                    byte = 0;
                }
            }
        }
        for (size_t i = 0; i < nrows; i++) {
            if (has_nulls && cv->nulls[i])
                continue;
            if (cv->kind == MESH_COL_REAL)
                packed_d[m] = cv->d[i];
            else if (cv->kind != MESH_COL_TEXT)
                packed_i[m] = cv->i[i];
            else
                idx[m] = (uint32_t)i;
            m++;
        }
        switch (cv->kind) {
        case MESH_COL_TIME:
            st = m ? enc_time(&data, packed_i, m, scratch) : MESH_OK;
            break;
        case MESH_COL_INT:
            st = m ? enc_int(&data, packed_i, m, scratch) : MESH_OK;
            break;
        case MESH_COL_REAL:
            st = m ? enc_real(&data, packed_d, m) : MESH_OK;
            break;
        case MESH_COL_TEXT: {
            /* dictionary in order of first appearance, found through a hash table */
            size_t hcap = 16;
            while (hcap < 2 * m)
                hcap *= 2;
            uint32_t *table = malloc(hcap * sizeof *table); /* entry + 1, 0 = empty */
            uint32_t *dict_of = (uint32_t *)scratch;        /* entry -> row */
            size_t ndict = 0;
            if (table == NULL) {
                st = MESH_NOMEM;
                break;
            }
            memset(table, 0, hcap * sizeof *table);
            for (size_t k = 0; k < m; k++) {
                size_t row = idx[k];
                const char *sv = cv->s[row];
                uint32_t sl = cv->slen[row];
                uint64_t h = 1469598103934665603ULL;
                for (uint32_t q = 0; q < sl; q++)
                    h = (h ^ (uint8_t)sv[q]) * 1099511628211ULL;
                size_t slot = (size_t)h & (hcap - 1);
                uint32_t hit = UINT32_MAX;
                while (table[slot]) {
                    size_t r2 = dict_of[table[slot] - 1];
                    if (cv->slen[r2] == sl && memcmp(cv->s[r2], sv, sl) == 0) {
                        hit = table[slot] - 1;
                        break;
                    }
                    slot = (slot + 1) & (hcap - 1);
                }
                if (hit == UINT32_MAX) {
                    hit = (uint32_t)ndict;
                    dict_of[ndict++] = (uint32_t)row;
                    table[slot] = hit + 1;
                }
                idx[k] = hit; /* k <= row: the row index is no longer needed */
            }
            free(table);
            mesh_buf_add_uvarint(&data, ndict);
            for (size_t t = 0; t < ndict; t++) {
                size_t r2 = dict_of[t];
                mesh_buf_add_uvarint(&data, cv->slen[r2]);
                mesh_buf_add(&data, cv->s[r2], cv->slen[r2]);
            }
            if (ndict > 1) {
                for (size_t k = 0; k < m; k++)
                    packed_i[k] = idx[k];
                st = enc_int(&data, packed_i, m, scratch); /* dict_of is no longer needed */
            }
            if (data.data == NULL && st == MESH_OK)
                st = mesh_buf_reserve(&data, 1);
            break;
        }
        }
        if (st == MESH_OK) {
            mesh_buf_add_uvarint(out, data.len);
            st = mesh_buf_add(out, data.data ? data.data : "", data.len);
        }
    }
    mesh_buf_free(&data);
    free(scratch);
    free(packed_i);
    free(packed_d);
    free(idx);
    return st;
}

void mesh_chunk_free(mesh_chunk_t *c)
{
    if (c == NULL || c->cols == NULL)
        return;
    for (size_t k = 0; k < c->ncols; k++) {
        free(c->cols[k].name);
        free(c->cols[k].nulls);
        free(c->cols[k].i);
        free(c->cols[k].d);
        free(c->cols[k].sidx);
        for (size_t t = 0; t < c->cols[k].ndict; t++)
            free(c->cols[k].dict[t]);
        free(c->cols[k].dict);
        free(c->cols[k].dlen);
    }
    free(c->cols);
    memset(c, 0, sizeof *c);
}

int mesh_chunk_col(const mesh_chunk_t *c, const char *name)
{
    for (size_t k = 0; k < c->ncols; k++)
        if (strcmp(c->cols[k].name, name) == 0)
            return (int)k;
    return -1;
}

static double get_double(mesh_cursor_t *c)
{
    return bitsd(mesh_cursor_u64(c));
}

/* Spreads m packed values over n rows according to the null bitmap (in place, backwards). */
static void spread_i(int64_t *v, const uint8_t *nulls, size_t n, size_t m)
{
    size_t k = m;
    for (size_t i = n; i-- > 0;)
        v[i] = nulls[i] ? 0 : v[--k];
}

static void spread_d(double *v, const uint8_t *nulls, size_t n, size_t m)
{
    size_t k = m;
    for (size_t i = n; i-- > 0;)
        v[i] = nulls[i] ? 0 : v[--k];
}

/* The last row's value of a column, as its header holds it. */
typedef struct last_val {
    bool present, null;
    int64_t i;
    double d;
    const uint8_t *s;
    uint64_t slen;
} last_val_t;

static void read_last(mesh_cursor_t *c, uint8_t kind, uint8_t flags, last_val_t *lv)
{
    memset(lv, 0, sizeof *lv);
    if (!(flags & F_LAST))
        return;
    lv->present = true;
    lv->null = (flags & F_LAST_NULL) != 0;
    if (lv->null)
        return;
    if (kind == MESH_COL_REAL) {
        lv->d = get_double(c);
    } else if (kind == MESH_COL_TEXT) {
        lv->slen = mesh_cursor_uvarint(c);
        lv->s = lv->slen <= c->n ? mesh_cursor_bytes(c, lv->slen) : NULL;
        if (lv->s == NULL)
            c->bad = 1;
    } else {
        lv->i = unzz(mesh_cursor_uvarint(c));
    }
}

/* A column of one row: the last row's value. */
static mesh_status_t set_last(mesh_chunk_col_t *col, const last_val_t *lv, mesh_err_t *err)
{
    if (lv->null && (col->nulls = calloc(1, 1)) != NULL)
        col->nulls[0] = 1;
    bool ok = !lv->null || col->nulls;
    switch (col->kind) {
    case MESH_COL_TIME:
    case MESH_COL_INT:
        if (ok && (col->i = malloc(sizeof *col->i)) != NULL)
            col->i[0] = lv->null ? 0 : lv->i;
        ok = ok && col->i;
        break;
    case MESH_COL_REAL:
        if (ok && (col->d = malloc(sizeof *col->d)) != NULL)
            col->d[0] = lv->null ? 0 : lv->d;
        ok = ok && col->d;
        break;
    case MESH_COL_TEXT:
        if (lv->slen > UINT32_MAX)
            return mesh_err_set(err, MESH_CORRUPT, "chunk: bad last value of %s", col->name);
        col->dict = calloc(1, sizeof *col->dict);
        col->dlen = calloc(1, sizeof *col->dlen);
        col->sidx = calloc(1, sizeof *col->sidx);
        ok = ok && col->dict && col->dlen && col->sidx;
        if (ok && !lv->null) {
            if ((col->dict[0] = malloc(lv->slen + 1)) == NULL)
                return mesh_err_set(err, MESH_NOMEM, "out of memory");
            if (lv->slen)
                memcpy(col->dict[0], lv->s, lv->slen);
            col->dict[0][lv->slen] = '\0';
            col->dlen[0] = (uint32_t)lv->slen;
            col->ndict = 1;
        }
        break;
    }
    return ok ? MESH_OK : mesh_err_set(err, MESH_NOMEM, "out of memory");
}

static mesh_status_t decode_column(mesh_cursor_t *c, size_t nrows, mesh_chunk_t *ch, size_t k,
                                   mesh_chunk_want_fn want, void *arg, bool last_only,
                                   mesh_err_t *err)
{
    mesh_chunk_col_t *col = &ch->cols[k];
    uint64_t nl = mesh_cursor_uvarint(c);
    const uint8_t *name = nl <= 256 ? mesh_cursor_bytes(c, nl) : NULL;
    uint8_t kind = mesh_cursor_u8(c);
    uint8_t flags = mesh_cursor_u8(c);
    if (c->bad || name == NULL || kind < MESH_COL_TIME || kind > MESH_COL_TEXT)
        return mesh_err_set(err, MESH_CORRUPT, "chunk: bad column header");
    col->kind = (mesh_colkind_t)kind;
    if ((col->name = malloc(nl + 1)) == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    memcpy(col->name, name, nl);
    col->name[nl] = '\0';
    if (flags & F_SUMMARY) {
        col->has_summary = true;
        col->sum.count = (int64_t)mesh_cursor_uvarint(c);
        col->sum.min = get_double(c);
        col->sum.max = get_double(c);
        col->sum.sum = get_double(c);
    }
    last_val_t lv;
    read_last(c, kind, flags, &lv);
    uint64_t dlen = mesh_cursor_uvarint(c);
    const uint8_t *d = dlen <= c->n ? mesh_cursor_bytes(c, dlen) : NULL;
    if (c->bad || d == NULL)
        return mesh_err_set(err, MESH_CORRUPT, "chunk: column %s is truncated", col->name);
    if (want && !want(arg, col->name))
        return MESH_OK; /* not read: the column stays without values */
    if (last_only) {
        if (!lv.present)
            return mesh_err_set(err, MESH_NOT_FOUND, "chunk: no last values (version 1)");
        return set_last(col, &lv, err);
    }
    mesh_cursor_t dc;
    mesh_cursor_init(&dc, d, dlen);
    size_t m = nrows;
    if (flags & F_NULLS) {
        size_t nb = (nrows + 7) / 8;
        const uint8_t *bm = mesh_cursor_bytes(&dc, nb);
        if (bm == NULL || (col->nulls = malloc(nrows)) == NULL)
            return mesh_err_set(err, bm ? MESH_NOMEM : MESH_CORRUPT, "chunk: null bitmap");
        m = 0;
        for (size_t i = 0; i < nrows; i++) {
            col->nulls[i] = (bm[i >> 3] >> (i & 7)) & 1;
            m += !col->nulls[i];
        }
    }
    int rc = 0;
    switch (col->kind) {
    case MESH_COL_TIME:
    case MESH_COL_INT:
        if ((col->i = malloc(nrows * sizeof *col->i)) == NULL)
            return mesh_err_set(err, MESH_NOMEM, "out of memory");
        rc = m ? (col->kind == MESH_COL_TIME ? dec_time(&dc, col->i, m) : dec_int(&dc, col->i, m))
               : 0;
        if (rc == 0 && col->nulls)
            spread_i(col->i, col->nulls, nrows, m);
        break;
    case MESH_COL_REAL:
        if ((col->d = malloc(nrows * sizeof *col->d)) == NULL)
            return mesh_err_set(err, MESH_NOMEM, "out of memory");
        rc = m ? dec_real(dc.p, dc.n, col->d, m) : 0;
        if (rc == 0 && col->nulls)
            spread_d(col->d, col->nulls, nrows, m);
        break;
    case MESH_COL_TEXT: {
        uint64_t nd = mesh_cursor_uvarint(&dc);
        if (dc.bad || nd > m || (m > 0 && nd == 0))
            return mesh_err_set(err, MESH_CORRUPT, "chunk: bad dictionary of %s", col->name);
        col->dict = calloc(nd ? nd : 1, sizeof *col->dict);
        col->dlen = calloc(nd ? nd : 1, sizeof *col->dlen);
        col->sidx = calloc(nrows, sizeof *col->sidx);
        if (!col->dict || !col->dlen || !col->sidx)
            return mesh_err_set(err, MESH_NOMEM, "out of memory");
        for (uint64_t t = 0; t < nd; t++) {
            uint64_t sl = mesh_cursor_uvarint(&dc);
            const uint8_t *sp = sl <= dc.n ? mesh_cursor_bytes(&dc, sl) : NULL;
            if (dc.bad || sp == NULL || sl > UINT32_MAX)
                return mesh_err_set(err, MESH_CORRUPT, "chunk: bad dictionary of %s", col->name);
            if ((col->dict[t] = malloc(sl + 1)) == NULL)
                return mesh_err_set(err, MESH_NOMEM, "out of memory");
            memcpy(col->dict[t], sp, sl);
            col->dict[t][sl] = '\0';
            col->dlen[t] = (uint32_t)sl;
            col->ndict++;
        }
        if (nd > 1) {
            int64_t *iv = malloc(m * sizeof *iv);
            if (iv == NULL)
                return mesh_err_set(err, MESH_NOMEM, "out of memory");
            rc = dec_int(&dc, iv, m);
            size_t q = 0;
            for (size_t i = 0; rc == 0 && i < nrows; i++) {
                if (col->nulls && col->nulls[i])
                    continue;
                if (iv[q] < 0 || (uint64_t)iv[q] >= nd)
                    rc = -1;
                else
                    col->sidx[i] = (uint32_t)iv[q];
                q++;
            }
            free(iv);
        }
        break;
    }
    }
    if (rc != 0)
        return mesh_err_set(err, MESH_CORRUPT, "chunk: column %s does not decode", col->name);
    return MESH_OK;
}

mesh_status_t mesh_chunk_decode(const uint8_t *p, size_t n, mesh_chunk_t *out, mesh_err_t *err)
{
    return mesh_chunk_decode_some(p, n, NULL, NULL, out, err);
}

static mesh_status_t decode(const uint8_t *p, size_t n, mesh_chunk_want_fn want, void *arg,
                            bool last_only, mesh_chunk_t *out, mesh_err_t *err);

mesh_status_t mesh_chunk_decode_some(const uint8_t *p, size_t n, mesh_chunk_want_fn want, void *arg,
                                     mesh_chunk_t *out, mesh_err_t *err)
{
    return decode(p, n, want, arg, false, out, err);
}

mesh_status_t mesh_chunk_decode_last(const uint8_t *p, size_t n, mesh_chunk_want_fn want, void *arg,
                                     mesh_chunk_t *out, mesh_err_t *err)
{
    return decode(p, n, want, arg, true, out, err);
}

static mesh_status_t decode(const uint8_t *p, size_t n, mesh_chunk_want_fn want, void *arg,
                            bool last_only, mesh_chunk_t *out, mesh_err_t *err)
{
    memset(out, 0, sizeof *out);
    mesh_cursor_t c;
    mesh_cursor_init(&c, p, n);
    uint8_t ver = mesh_cursor_u8(&c);
    uint64_t nrows = mesh_cursor_uvarint(&c);
    uint64_t ncols = mesh_cursor_uvarint(&c);
    if (c.bad || ver < 1 || ver > CHUNK_VERSION || nrows == 0 || nrows > MESH_CHUNK_MAX_ROWS ||
        ncols > MESH_CHUNK_MAX_COLS)
        return mesh_err_set(err, MESH_CORRUPT, "chunk: bad header");
    out->cols = calloc(ncols ? ncols : 1, sizeof *out->cols);
    if (out->cols == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    out->nrows = last_only ? 1 : (size_t)nrows;
    for (size_t k = 0; k < ncols; k++) {
        out->ncols = k + 1;
        mesh_status_t st = decode_column(&c, (size_t)nrows, out, k, want, arg, last_only, err);
        if (st != MESH_OK) {
            mesh_chunk_free(out);
            return st;
        }
    }
    return MESH_OK;
}

bool mesh_chunk_summary(const uint8_t *p, size_t n, const char *name, size_t *nrows,
                        mesh_colsum_t *sum)
{
    mesh_cursor_t c;
    mesh_cursor_init(&c, p, n);
    uint8_t ver = mesh_cursor_u8(&c);
    uint64_t nr = mesh_cursor_uvarint(&c);
    uint64_t ncols = mesh_cursor_uvarint(&c);
    if (c.bad || ver < 1 || ver > CHUNK_VERSION)
        return false;
    *nrows = (size_t)nr;
    size_t want = strlen(name);
    for (uint64_t k = 0; k < ncols && !c.bad; k++) {
        uint64_t nl = mesh_cursor_uvarint(&c);
        const uint8_t *nm = nl <= 256 ? mesh_cursor_bytes(&c, nl) : NULL;
        uint8_t kind = mesh_cursor_u8(&c);
        uint8_t flags = mesh_cursor_u8(&c);
        if (c.bad || nm == NULL)
            return false;
        mesh_colsum_t s = {0};
        if (flags & F_SUMMARY) {
            s.count = (int64_t)mesh_cursor_uvarint(&c);
            s.min = get_double(&c);
            s.max = get_double(&c);
            s.sum = get_double(&c);
        }
        last_val_t lv;
        read_last(&c, kind, flags, &lv);
        uint64_t dlen = mesh_cursor_uvarint(&c);
        if (nl == want && memcmp(nm, name, nl) == 0) {
            if (!(flags & F_SUMMARY) || c.bad)
                return false;
            *sum = s;
            return true;
        }
        if (dlen > c.n)
            return false;
        mesh_cursor_bytes(&c, dlen);
    }
    return false;
}
