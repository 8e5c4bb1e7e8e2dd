/*
 * fuzz_chunk.c - decoding column chunks from disk is decoding untrusted bytes (a damaged or
 * tampered file); it must fail cleanly, never read outside the input.
 */
#include <stdint.h>

#include "store/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mesh_chunk_t c;
    mesh_err_t err;
    if (mesh_chunk_decode(data, size, &c, &err) == MESH_OK)
        mesh_chunk_free(&c);
    if (mesh_chunk_decode_last(data, size, NULL, NULL, &c, &err) == MESH_OK)
        mesh_chunk_free(&c);
    size_t n;
    mesh_colsum_t s;
    mesh_chunk_summary(data, size, "v", &n, &s);
    return 0;
}
