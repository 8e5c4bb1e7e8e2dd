/*
 * fuzz_batch_decode.c - the log record decoder (mesh_batch_decode) on arbitrary bytes: it
 * must fail cleanly or decode; a decoded batch must encode, decode and encode again to the
 * same bytes.
 */
#include <stddef.h>
#include <stdint.h>

#include "ingest/batch.h"
#include "../tests/unit/test_products.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tp_catalog_t *cat = tp_fuzz_catalog();
    mesh_batch_t b;
    mesh_batch_limits_t lim = MESH_BATCH_DEFAULT_LIMITS;
    lim.max_rows = 100000;
    lim.max_arena = 16u << 20;
    mesh_batch_init(&b, "", lim);
    char idem[256];
    mesh_err_t err;
    if (mesh_batch_decode(data, size, tp_lookup, cat, &b, idem, sizeof idem, &err) == MESH_OK)
        tp_check_round_trip(&b, cat);
    mesh_batch_free(&b);
    return 0;
}
