/*
 * fuzz_fed_request.c - the federated scan request parser (mesh_fed_request_parse) and the
 * signature check (mesh_fed_request_verify): bytes any node of the mesh can send to a
 * domain's subject. A parsed request must hold only checked names and bounded counts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/entry.h"
#include "mesh/fedwire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t pub[MESH_SIGN_PUB_BYTES] = {1, 2, 3};
    mesh_fed_request_t r;
    mesh_err_t err;
    /* a random signature never verifies; the check must not crash on any input */
    if (mesh_fed_request_verify(data, size, "meshd.dom.factory.req.scan", pub))
        abort();
    if (mesh_fed_request_parse(data, size, &r, &err) != MESH_OK) {
        if (r.cols != NULL || r.ncons != 0)
            abort();
        return 0;
    }
    if (!mesh_entry_node_name_ok(r.node) || !mesh_name_domain_ok(r.domain) || r.user[0] == '\0' ||
        r.ncols > MESH_FED_MAX_COLS || r.ncons > MESH_FED_MAX_CONS || r.ts_ns <= 0)
        abort();
    if (r.op == MESH_FED_SCAN && !mesh_fed_table_ok(r.table))
        abort();
    if (r.op == MESH_FED_QUERY &&
        (r.sql == NULL || r.sql_len == 0 || r.sql_len > MESH_FED_MAX_SQL ||
         strlen(r.sql) != r.sql_len || r.timeout_ms < 0 || r.max_rows < 0))
        abort();
    if (r.op != MESH_FED_QUERY && r.sql != NULL)
        abort();
    for (size_t i = 0; i < r.ncols; i++)
        if (!mesh_name_column_ok(r.cols[i]))
            abort();
    for (size_t i = 0; i < r.ncons; i++) {
        if (!mesh_name_column_ok(r.cons[i].col) || (unsigned)r.cons[i].op >= MESH_FED_OP__COUNT)
            abort();
        if (r.cons[i].val.type == MESH_V_TEXT && r.cons[i].val.n > MESH_FED_MAX_VALUE)
            abort();
    }
    mesh_fed_request_free(&r);
    return 0;
}
