/*
 * fuzz_recwire.c - a stream record as it travels (mesh/recwire.h): the bytes any node allowed
 * to publish to a domain's stream may have put there. Whatever unpacks must be exactly the
 * announced length within the limit, and packing it again must read back the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/recwire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LIMIT (4u << 20) /* the fuzzer's limit; meshd's is the log's record size */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mesh_buf_t out, again, back;
    mesh_buf_init(&out, LIMIT);
    mesh_buf_init(&again, MESH_BUF_UNLIMITED);
    mesh_buf_init(&back, LIMIT);
    const uint8_t *p = NULL, *w = NULL, *q = NULL;
    size_t n = 0, wn = 0, qn = 0;
    mesh_err_t err;
    if (mesh_recwire_unpack(data, size, LIMIT, &out, &p, &n, &err) == MESH_OK) {
        if (n > LIMIT && p != data)
            abort();
        if (p != data && (size == 0 || data[0] != MESH_RECWIRE_ZSTD || n == 0))
            abort();
        if (p == data && n != size)
            abort();
        /* a record (not packed itself) packs and reads back to the same bytes */
        if (n > 0 && p[0] != MESH_RECWIRE_ZSTD) {
            if (mesh_recwire_pack(p, n, &again, &w, &wn, &err) != MESH_OK)
                abort();
            if (mesh_recwire_unpack(w, wn, LIMIT, &back, &q, &qn, &err) != MESH_OK || qn != n ||
                memcmp(q, p, n) != 0)
                abort();
        }
    }
    mesh_buf_free(&out);
    mesh_buf_free(&again);
    mesh_buf_free(&back);
    return 0;
}
