/*
 * fuzz_scram.c - stored password verifiers are read back from the catalog and may come from a
 * PostgreSQL dump: parsing one must be bounded and never read outside the input.
 */
#include <stdint.h>

#include "auth/scram.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mesh_scram_t s;
    mesh_err_t err;
    if (mesh_scram_parse((const char *)data, size, &s, &err) == MESH_OK && s.iterations <= 4096)
        (void)mesh_scram_check(&s, "password", 8);
    return 0;
}
