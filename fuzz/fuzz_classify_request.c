/*
 * fuzz_classify_request.c - the classification API's bodies (discover, approve, reject,
 * remove) come from authenticated callers: the parser must be bounded and fail cleanly for
 * every kind.
 */
#include <stdint.h>
#include <stdlib.h>

#include "classify/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mesh_classify_req_t *r = malloc(sizeof *r);
    if (r == NULL)
        return 0;
    for (int k = MESH_CLASSIFY_DISCOVER; k <= MESH_CLASSIFY_REMOVE; k++) {
        mesh_err_t err;
        if (mesh_classify_req_parse((mesh_classify_kind_t)k, (const char *)data, size, r, &err) ==
            MESH_OK) {
            mesh_tag_select_t sel;
            mesh_classify_req_select(r, &sel);
        }
    }
    free(r);
    return 0;
}
