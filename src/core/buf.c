/*
 * buf.c - capped growable buffer and bounded cursor.
 */
#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mesh_buf_init(mesh_buf_t *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void mesh_buf_free(mesh_buf_t *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void mesh_buf_reset(mesh_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

mesh_status_t mesh_buf_reserve(mesh_buf_t *b, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return MESH_TOO_LARGE;
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return MESH_OK;
    size_t ncap = b->cap ? b->cap : 64;
    while (ncap < need)
        ncap = ncap > ((size_t)-1) / 2 ? need : ncap * 2;
    char *p = realloc(b->data, ncap);
    if (p == NULL)
        return MESH_NOMEM;
    b->data = p;
    b->cap = ncap;
    return MESH_OK;
}

mesh_status_t mesh__buf_add_slow(mesh_buf_t *b, const void *p, size_t n)
{
    mesh_status_t st = mesh_buf_reserve(b, n);
    if (st != MESH_OK)
        return st;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return MESH_OK;
}

mesh_status_t mesh_buf_adds(mesh_buf_t *b, const char *s)
{
    return mesh_buf_add(b, s, strlen(s));
}

mesh_status_t mesh_buf_vprintf(mesh_buf_t *b, const char *fmt, va_list ap)
{
    char small[256];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return MESH_INTERNAL;
    if ((size_t)n < sizeof small)
        return mesh_buf_add(b, small, (size_t)n);
    mesh_status_t st = mesh_buf_reserve(b, (size_t)n);
    if (st != MESH_OK)
        return st;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return MESH_OK;
}

mesh_status_t mesh_buf_printf(mesh_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mesh_status_t st = mesh_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return st;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned int cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

mesh_status_t mesh_buf_add_json_str(mesh_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    mesh_status_t st = mesh_buf_reserve(b, n + 2);
    if (st != MESH_OK)
        return st;
    b->data[b->len++] = '"';
    b->data[b->len] = '\0'; /* stays terminated if an escape below does not fit the cap */
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
            run++;
        if (run > i) {
            if ((st = mesh_buf_add(b, p + i, run - i)) != MESH_OK)
                return st;
            i = run;
            continue;
        }
        unsigned char c = p[i];
        char esc[8];
        size_t elen = 2;
        esc[0] = '\\';
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            if (c < 0x20) {
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                elen = 6;
            } else {
                size_t l = utf8_seq(p + i, n - i);
                if (l == 0) {
                    if ((st = mesh_buf_add(b, "\xEF\xBF\xBD", 3)) != MESH_OK)
                        return st;
                    i++;
                } else {
                    if ((st = mesh_buf_add(b, p + i, l)) != MESH_OK)
                        return st;
                    i += l;
                }
                continue;
            }
        }
        if ((st = mesh_buf_add(b, esc, elen)) != MESH_OK)
            return st;
        i++;
    }
    return mesh_buf_addc(b, '"');
}

mesh_status_t mesh_buf_add_csv_field(mesh_buf_t *b, const char *s, size_t n)
{
    int quote = 0;
    for (size_t i = 0; i < n && !quote; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r')
            quote = 1;
    if (!quote)
        return mesh_buf_add(b, s, n);
    mesh_status_t st = mesh_buf_addc(b, '"');
    for (size_t i = 0; i < n && st == MESH_OK; i++) {
        if (s[i] == '"')
            st = mesh_buf_addc(b, '"');
        if (st == MESH_OK)
            st = mesh_buf_addc(b, s[i]);
    }
    return st == MESH_OK ? mesh_buf_addc(b, '"') : st;
}

mesh_status_t mesh_buf_add_u32(mesh_buf_t *b, uint32_t v)
{
    uint8_t x[4];
    for (int i = 0; i < 4; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    return mesh_buf_add(b, x, 4);
}

mesh_status_t mesh_buf_add_u64(mesh_buf_t *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    return mesh_buf_add(b, x, 8);
}

mesh_status_t mesh_buf_add_decimal(mesh_buf_t *b, int64_t v)
{
    char t[24];
    size_t i = sizeof t;
    /* the magnitude as unsigned: -INT64_MIN does not fit an int64_t */
    uint64_t m = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        t[--i] = (char)('0' + m % 10);
        m /= 10;
    } while (m > 0);
    if (v < 0)
        t[--i] = '-';
    return mesh_buf_add(b, t + i, sizeof t - i);
}

mesh_status_t mesh_buf_add_uvarint(mesh_buf_t *b, uint64_t v)
{
    uint8_t x[10];
    size_t n = 0;
    while (v >= 0x80) {
        x[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    x[n++] = (uint8_t)v;
    return mesh_buf_add(b, x, n);
}

char *mesh_buf_steal(mesh_buf_t *b, size_t *len)
{
    char *p = b->data;
    if (p == NULL) {
        p = malloc(1);
        if (p)
            p[0] = '\0';
    }
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void mesh_cursor_init(mesh_cursor_t *c, const void *p, size_t n)
{
    c->p = p;
    c->n = n;
    c->bad = 0;
}

const uint8_t *mesh_cursor_bytes(mesh_cursor_t *c, size_t n)
{
    if (c->bad || n > c->n) {
        c->bad = 1;
        return NULL;
    }
    const uint8_t *r = c->p;
    c->p += n;
    c->n -= n;
    return r;
}

uint8_t mesh_cursor_u8(mesh_cursor_t *c)
{
    const uint8_t *p = mesh_cursor_bytes(c, 1);
    return p ? p[0] : 0;
}

uint32_t mesh_cursor_u32(mesh_cursor_t *c)
{
    const uint8_t *p = mesh_cursor_bytes(c, 4);
    if (p == NULL)
        return 0;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t mesh_cursor_u64(mesh_cursor_t *c)
{
    const uint8_t *p = mesh_cursor_bytes(c, 8);
    if (p == NULL)
        return 0;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint64_t mesh__cursor_uvarint_slow(mesh_cursor_t *c)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (c->bad || c->n == 0) {
            c->bad = 1;
            return 0;
        }
        uint8_t byte = *c->p++;
        c->n--;
        if (shift == 63 && byte > 1) { /* the tenth byte holds bit 63 only */
            c->bad = 1;
            return 0;
        }
        v |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80))
            return v;
    }
    c->bad = 1;
    return 0;
}
