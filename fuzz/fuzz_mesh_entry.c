/*
 * fuzz_mesh_entry.c - the mesh registry entry parser (mesh_entry_parse): JSON values other
 * nodes (or anyone able to write the bucket) put in the KV bucket meshd_nodes. A parsed
 * entry must encode again and parse back to the same entry.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mesh_entry_t *e = NULL;
    mesh_err_t err;
    if (mesh_entry_parse((const char *)data, size, &e, &err) != MESH_OK) {
        if (e != NULL)
            abort();
        return 0;
    }
    if (!mesh_entry_node_name_ok(e->name) || e->ndomains > MESH_ENTRY_MAX_DOMAINS)
        abort();
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    if (mesh_entry_encode(e, &b) == MESH_OK) {
        mesh_entry_t *again = NULL;
        if (mesh_entry_parse(b.data, b.len, &again, &err) != MESH_OK)
            abort();
        if (strcmp(again->name, e->name) != 0 || again->ndomains != e->ndomains ||
            again->stopped != e->stopped || again->ttl_ns != e->ttl_ns ||
            again->has_sign_key != e->has_sign_key ||
            memcmp(again->sign_key, e->sign_key, sizeof e->sign_key) != 0)
            abort();
        mesh_entry_free(again);
    }
    mesh_buf_free(&b);
    mesh_entry_free(e);
    return 0;
}
