/*
 * fuzz_access_request.c - the access API's JSON bodies (principals, grants, masks, row
 * filters, login) come from any authenticated caller (login from anyone): every parser must
 * be bounded and fail cleanly.
 */
#include <stdint.h>

#include "auth/access_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    mesh_err_t err;
    mesh_principal_req_t p;
    if (mesh_principal_req_parse(s, size, size & 1, &p, &err) == MESH_OK)
        mesh_principal_req_wipe(&p);
    mesh_grant_rec_t g;
    (void)mesh_grant_req_parse(s, size, &g, &err);
    mesh_mask_rec_t m;
    (void)mesh_mask_req_parse(s, size, &m, &err);
    mesh_filter_rec_t f;
    (void)mesh_filter_req_parse(s, size, &f, &err);
    mesh_login_req_t l;
    if (mesh_login_req_parse(s, size, &l, &err) == MESH_OK)
        mesh_login_req_wipe(&l);
    return 0;
}
