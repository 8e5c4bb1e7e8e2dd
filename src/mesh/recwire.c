/*
 * recwire.c - a domain's record as it travels in its stream (see recwire.h).
 *
 * zstd contexts are kept per thread (publishers are HTTP workers and the outbox pump; the
 * consumer is the replicator's thread) and freed when the thread ends.
 */
#include "mesh/recwire.h"

#include <pthread.h>
#include <stdbool.h>
#include <zstd.h>

static pthread_key_t cctx_key, dctx_key;
static pthread_once_t keys_once = PTHREAD_ONCE_INIT;
static bool keys_ok;

static void free_cctx(void *p)
{
    ZSTD_freeCCtx(p);
}

static void free_dctx(void *p)
{
    ZSTD_freeDCtx(p);
}

static void make_keys(void)
{
    keys_ok = pthread_key_create(&cctx_key, free_cctx) == 0 &&
              pthread_key_create(&dctx_key, free_dctx) == 0;
}

static ZSTD_CCtx *thread_cctx(void)
{
    pthread_once(&keys_once, make_keys);
    if (!keys_ok)
        return NULL;
    ZSTD_CCtx *c = pthread_getspecific(cctx_key);
    if (c == NULL && (c = ZSTD_createCCtx()) != NULL && pthread_setspecific(cctx_key, c) != 0) {
        ZSTD_freeCCtx(c);
        c = NULL;
    }
    return c;
}

static ZSTD_DCtx *thread_dctx(void)
{
    pthread_once(&keys_once, make_keys);
    if (!keys_ok)
        return NULL;
    ZSTD_DCtx *c = pthread_getspecific(dctx_key);
    if (c == NULL && (c = ZSTD_createDCtx()) != NULL && pthread_setspecific(dctx_key, c) != 0) {
        ZSTD_freeDCtx(c);
        c = NULL;
    }
    return c;
}

mesh_status_t mesh_recwire_pack(const uint8_t *p, size_t n, mesh_buf_t *out, const uint8_t **w,
                                size_t *wn, mesh_err_t *err)
{
    *w = p;
    *wn = n;
    if (n < MESH_RECWIRE_MIN || n > UINT32_MAX)
        return MESH_OK;
    ZSTD_CCtx *c = thread_cctx();
    size_t bound = ZSTD_compressBound(n);
    mesh_buf_reset(out);
    if (c == NULL || mesh_buf_reserve(out, MESH_RECWIRE_HDR + bound) != MESH_OK)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    uint8_t *h = (uint8_t *)out->data;
    h[0] = MESH_RECWIRE_ZSTD;
    for (int i = 0; i < 4; i++)
        h[1 + i] = (uint8_t)(n >> (8 * i));
    size_t z = ZSTD_compressCCtx(c, h + MESH_RECWIRE_HDR, bound, p, n, MESH_RECWIRE_LEVEL);
    if (ZSTD_isError(z))
        return mesh_err_set(err, MESH_INTERNAL, "zstd: %s", ZSTD_getErrorName(z));
    if (MESH_RECWIRE_HDR + z > n - n / 8)
        return MESH_OK; /* too little gained: as it is */
    out->len = MESH_RECWIRE_HDR + z;
    *w = h;
    *wn = out->len;
    return MESH_OK;
}

mesh_status_t mesh_recwire_unpack(const uint8_t *w, size_t wn, size_t max, mesh_buf_t *out,
                                  const uint8_t **p, size_t *n, mesh_err_t *err)
{
    *p = w;
    *n = wn;
    if (wn == 0 || w[0] != MESH_RECWIRE_ZSTD)
        return MESH_OK;
    if (wn <= MESH_RECWIRE_HDR)
        return mesh_err_set(err, MESH_CORRUPT, "packed stream record: %zu bytes, no frame", wn);
    size_t len = 0;
    for (int i = 0; i < 4; i++)
        len |= (size_t)w[1 + i] << (8 * i);
    const uint8_t *f = w + MESH_RECWIRE_HDR;
    size_t fn = wn - MESH_RECWIRE_HDR;
    if (len == 0 || len > max)
        return mesh_err_set(err, MESH_CORRUPT,
                            "packed stream record: %zu bytes announced (at most %zu)", len, max);
    /* exactly one frame, which says its content size, and that size is the one announced */
    unsigned long long fsize = ZSTD_getFrameContentSize(f, fn);
    size_t flen = ZSTD_findFrameCompressedSize(f, fn);
    if (fsize != (unsigned long long)len || ZSTD_isError(flen) || flen != fn)
        return mesh_err_set(err, MESH_CORRUPT,
                            "packed stream record: not one zstd frame of %zu bytes", len);
    ZSTD_DCtx *c = thread_dctx();
    mesh_buf_reset(out);
    if (c == NULL || mesh_buf_reserve(out, len) != MESH_OK)
        return mesh_err_set(err, MESH_NOMEM, "out of memory for a stream record of %zu bytes", len);
    size_t got = ZSTD_decompressDCtx(c, out->data, len, f, fn);
    if (ZSTD_isError(got) || got != len)
        return mesh_err_set(err, MESH_CORRUPT, "packed stream record: %s",
                            ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short frame");
    out->len = len;
    out->data[len] = '\0';
    *p = (const uint8_t *)out->data;
    *n = len;
    return MESH_OK;
}
