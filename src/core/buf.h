/*
 * buf.h - the one growable byte buffer, always capped.
 *
 * A mesh_buf_t owns its bytes (free with mesh_buf_free). Every append checks the cap given
 * at init and fails with MESH_TOO_LARGE rather than grow past it, so a buffer fed from the
 * network cannot exhaust memory. The content is kept NUL-terminated (the NUL is not counted
 * in len), so text can be handed to C string functions directly.
 */
#ifndef MESH_CORE_BUF_H
#define MESH_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/status.h"

typedef struct mesh_buf {
    char *data; /* NUL-terminated; NULL until the first append */
    size_t len; /* bytes used, excluding the NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* hard cap on len */
} mesh_buf_t;

#define MESH_BUF_UNLIMITED ((size_t)-1 / 2)

void mesh_buf_init(mesh_buf_t *b, size_t max);
void mesh_buf_free(mesh_buf_t *b);
/* Empties the buffer, keeping its allocation. */
void mesh_buf_reset(mesh_buf_t *b);
/* Makes room for n more bytes. MESH_TOO_LARGE past the cap, MESH_NOMEM when malloc fails. */
mesh_status_t mesh_buf_reserve(mesh_buf_t *b, size_t n);
/* Appends n bytes (or one character). Inline where the bytes fit the allocation and the cap:
 * result rows and log records append a few bytes at a time. */
mesh_status_t mesh__buf_add_slow(mesh_buf_t *b, const void *p, size_t n);
static inline mesh_status_t mesh_buf_add(mesh_buf_t *b, const void *p, size_t n)
{
    if (b->data && n < b->cap - b->len && n <= b->max - b->len) {
        if (n)
            memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return MESH_OK;
    }
    return mesh__buf_add_slow(b, p, n);
}
static inline mesh_status_t mesh_buf_addc(mesh_buf_t *b, char c)
{
    if (b->data && b->len + 1 < b->cap && b->len < b->max) {
        b->data[b->len++] = c;
        b->data[b->len] = '\0';
        return MESH_OK;
    }
    return mesh__buf_add_slow(b, &c, 1);
}
mesh_status_t mesh_buf_adds(mesh_buf_t *b, const char *s);
mesh_status_t mesh_buf_printf(mesh_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
mesh_status_t mesh_buf_vprintf(mesh_buf_t *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Appends s as a JSON string literal, quotes included, escaping per RFC 8259. Invalid UTF-8
 * bytes are replaced by U+FFFD so the output is always valid JSON. */
mesh_status_t mesh_buf_add_json_str(mesh_buf_t *b, const char *s, size_t n);
/* Appends s as a CSV field (RFC 4180): quoted when it holds a comma, quote, CR or LF. */
mesh_status_t mesh_buf_add_csv_field(mesh_buf_t *b, const char *s, size_t n);
/* Little-endian fixed-width and varint encoders used by the log and chunk formats. */
mesh_status_t mesh_buf_add_u32(mesh_buf_t *b, uint32_t v);
mesh_status_t mesh_buf_add_u64(mesh_buf_t *b, uint64_t v);
/* v in decimal, as printf's %lld writes it. */
mesh_status_t mesh_buf_add_decimal(mesh_buf_t *b, int64_t v);
mesh_status_t mesh_buf_add_uvarint(mesh_buf_t *b, uint64_t v);
/* Hands the bytes to the caller (who frees them with free()) and resets the buffer. */
char *mesh_buf_steal(mesh_buf_t *b, size_t *len);

/*
 * A bounded read cursor over borrowed bytes. Every read checks the remaining length; a short
 * read sets the sticky `bad` flag and returns zero values, so a decoder can read a whole
 * structure and check `bad` once.
 */
typedef struct mesh_cursor {
    const uint8_t *p;
    size_t n;
    int bad;
} mesh_cursor_t;

void mesh_cursor_init(mesh_cursor_t *c, const void *p, size_t n);
uint8_t mesh_cursor_u8(mesh_cursor_t *c);
uint32_t mesh_cursor_u32(mesh_cursor_t *c);
uint64_t mesh_cursor_u64(mesh_cursor_t *c);
uint64_t mesh__cursor_uvarint_slow(mesh_cursor_t *c);
static inline uint64_t mesh_cursor_uvarint(mesh_cursor_t *c)
{
    if (!c->bad && c->n > 0 && c->p[0] < 0x80) { /* one byte: most of them */
        c->n--;
        return *c->p++;
    }
    return mesh__cursor_uvarint_slow(c);
}
/* Returns a pointer to the next n bytes (borrowed) or NULL (and sets bad) when short. */
const uint8_t *mesh_cursor_bytes(mesh_cursor_t *c, size_t n);

#endif
