/*
 * fuzz_jsonrows.c - JSON array and NDJSON rows (ingest/jsonrows.c) on arbitrary bodies, for
 * a quarantining product, the registry (object and array columns) and a product with every
 * column type; a usable batch must also survive its log record round trip.
 */
#include <stddef.h>
#include <stdint.h>

#include "ingest/jsonrows.h"
#include "../tests/unit/test_products.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tp_catalog_t *cat = tp_fuzz_catalog();
    static const int products[] = {1, 2, 3}; /* readings_q, registry, kinds */
    for (size_t i = 0; i < sizeof products / sizeof products[0]; i++) {
        for (int ndjson = 0; ndjson < 2; ndjson++) {
            mesh_batch_t b;
            mesh_batch_limits_t lim = MESH_BATCH_DEFAULT_LIMITS;
            lim.max_rows = 10000;
            mesh_batch_init(&b, "factory-a", lim);
            b.received_ns = 1700000000000000000;
            mesh_json_rows_parse((const char *)data, size, &cat->v[products[i]]->p, ndjson, &b);
            tp_check_round_trip(&b, cat);
            mesh_batch_free(&b);
        }
    }
    return 0;
}
