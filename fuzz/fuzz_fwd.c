/*
 * fuzz_fwd.c - a forwarded write as another node sends it (mesh_fwd_parse) and the reply it
 * gets back (mesh_fwd_reply_parse). A parsed request must encode again and parse back to the
 * same request.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/fwd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int status;
    const uint8_t *json;
    size_t jn;
    if (mesh_fwd_reply_parse(data, size, &status, &json, &jn) == MESH_OK &&
        (status < 100 || status > 599 || json + jn != data + size))
        abort();
    mesh_fwd_req_t r, again;
    mesh_err_t err;
    if (mesh_fwd_parse(data, size, &r, &err) != MESH_OK)
        return 0;
    if (r.body + r.body_len != data + size)
        abort();
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    if (mesh_fwd_encode(&r, &b) == MESH_OK) {
        if (mesh_fwd_parse((const uint8_t *)b.data, b.len, &again, &err) != MESH_OK)
            abort();
        if (strcmp(r.product, again.product) || strcmp(r.format, again.format) ||
            strcmp(r.idem, again.idem) || strcmp(r.user, again.user) ||
            strcmp(r.node, again.node) || r.body_len != again.body_len ||
            (r.body_len && memcmp(r.body, again.body, r.body_len)))
            abort();
    }
    mesh_buf_free(&b);
    return 0;
}
