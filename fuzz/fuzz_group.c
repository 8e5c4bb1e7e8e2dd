/*
 * fuzz_group.c - a group of origin records (store/group.h): bytes any node allowed to publish
 * to a domain's stream may have put there. Whatever splits must be records that lie within the
 * input, each an origin record of one origin, and building the group again from them must give
 * back the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/group.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mesh_group_rec_t v[MESH_GROUP_MAX];
    size_t n = 0;
    mesh_err_t err;
    uint64_t origin = mesh_group_origin(data, size);
    if (mesh_group_split(data, size, v, &n, &err) != MESH_OK) {
        if (n != 0 || err.msg[0] == '\0')
            abort();
        return 0;
    }
    if (n == 0 || n > MESH_GROUP_MAX || origin == 0)
        abort();
    mesh_buf_t again;
    mesh_buf_init(&again, MESH_BUF_UNLIMITED);
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].p < data || v[i].p + v[i].n > data + size || v[i].n <= MESH_GROUP_ORIGIN_HDR ||
            v[i].p[0] != MESH_GROUP_ORIGIN || mesh_group_origin(v[i].p, v[i].n) != origin)
            abort();
        if (mesh_group_add(&again, &count, v[i].p, MESH_GROUP_ORIGIN_HDR,
                           v[i].p + MESH_GROUP_ORIGIN_HDR,
                           v[i].n - MESH_GROUP_ORIGIN_HDR) != MESH_OK)
            abort();
    }
    /* one record builds as the lone record; more as the same group */
    const uint8_t *want = n == 1 ? v[0].p : data;
    size_t wn = n == 1 ? v[0].n : size;
    if (count != n || again.len != wn || memcmp(again.data, want, wn) != 0)
        abort();
    mesh_buf_free(&again);
    return 0;
}
