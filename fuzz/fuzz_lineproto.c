/*
 * fuzz_lineproto.c - InfluxDB line protocol parser (ingest/lineproto.c) on arbitrary bodies,
 * against the test products; a usable batch must also survive its log record round trip.
 */
#include <stddef.h>
#include <stdint.h>

#include "ingest/lineproto.h"
#include "../tests/unit/test_products.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tp_catalog_t *cat = tp_fuzz_catalog();
    mesh_batch_t b;
    mesh_batch_limits_t lim = MESH_BATCH_DEFAULT_LIMITS;
    lim.max_rows = 10000;
    mesh_batch_init(&b, "factory-a", lim);
    b.received_ns = 1700000000000000000;
    /* the precision changes how timestamps convert: let the input's length pick one */
    b.precision = (mesh_precision_t)(size % 5);
    mesh_lp_parse((const char *)data, size, "factory-a", tp_lookup, cat, &b);
    mesh_buf_t json;
    mesh_buf_init(&json, MESH_BUF_UNLIMITED);
    mesh_batch_errors_json(&b, &json);
    mesh_buf_free(&json);
    tp_check_round_trip(&b, cat);
    mesh_batch_free(&b);
    return 0;
}
