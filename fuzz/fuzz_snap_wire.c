/*
 * fuzz_snap_wire.c - the snapshot bootstrap messages (mesh/snapwire.h): the request parser and
 * signature check (bytes any node may send to a domain's meshd.dom.<d>.req.snap) and the frame
 * decoder (bytes a serving node sends back). The first input byte picks the decoder.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/entry.h"
#include "mesh/snapwire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    mesh_err_t err;
    if (data[0] & 1) {
        static const uint8_t pub[MESH_SIGN_PUB_BYTES] = {1, 2, 3};
        mesh_snap_request_t r;
        /* a random signature never verifies; the check must not crash on any input */
        if (mesh_snap_request_verify(p, n, "meshd.dom.plant.req.snap", pub))
            abort();
        if (mesh_snap_request_parse(p, n, &r, &err) != MESH_OK)
            return 0;
        if (!mesh_entry_node_name_ok(r.node) || !mesh_name_domain_ok(r.domain) || r.ts_ns <= 0)
            abort();
        return 0;
    }
    mesh_snap_frame_t f;
    if (mesh_snap_frame_decode(p, n, &f, &err) != MESH_OK)
        return 0;
    switch (f.kind) {
    case MESH_SNAP_DATA:
        if (f.len == 0 || f.len > MESH_SNAP_CHUNK_BYTES || f.data < p || f.data + f.len > p + n)
            abort();
        break;
    case MESH_SNAP_ERROR:
        if (f.code == MESH_OK || f.code >= MESH_STATUS__COUNT || strlen(f.msg) > MESH_SNAP_MAX_TEXT)
            abort();
        for (const char *c = f.msg; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                abort();
        break;
    case MESH_SNAP_HEADER:
    case MESH_SNAP_END:
        break;
    default:
        abort();
    }
    return 0;
}
