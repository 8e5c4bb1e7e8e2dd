/*
 * fuzz_csv.c - RFC 4180 parser (ingest/csv.c) on arbitrary bodies, for a product with every
 * column type and for a quarantining product; a usable batch must also survive its log
 * record round trip.
 */
#include <stddef.h>
#include <stdint.h>

#include "ingest/csv.h"
#include "../tests/unit/test_products.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tp_catalog_t *cat = tp_fuzz_catalog();
    static const int products[] = {1, 3}; /* readings_q, kinds */
    for (size_t i = 0; i < sizeof products / sizeof products[0]; i++) {
        mesh_batch_t b;
        mesh_batch_limits_t lim = MESH_BATCH_DEFAULT_LIMITS;
        lim.max_rows = 10000;
        mesh_batch_init(&b, "factory-a", lim);
        b.received_ns = 1700000000000000000;
        mesh_csv_parse((const char *)data, size, &cat->v[products[i]]->p, &b);
        mesh_buf_t json;
        mesh_buf_init(&json, MESH_BUF_UNLIMITED);
        mesh_batch_errors_json(&b, &json);
        mesh_buf_free(&json);
        tp_check_round_trip(&b, cat);
        mesh_batch_free(&b);
    }
    return 0;
}
