/*
 * fuzz_nats_info.c - the nats-server INFO line meshd reads to learn the server's version
 * (mesh_nats_info_version, bounded by MESH_NATS_INFO_MAX) and the version comparison.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/mesh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char v[32];
    if (mesh_nats_info_version((const char *)data, size, v, sizeof v) == MESH_OK) {
        if (strlen(v) == 0 || strlen(v) >= sizeof v)
            abort();
        (void)mesh_nats_version_older(v, 2, 10);
    }
    char small[4];
    (void)mesh_nats_info_version((const char *)data, size, small, sizeof small);
    /* the comparison on arbitrary text */
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    (void)mesh_nats_version_older(s, 2, 10);
    free(s);
    return 0;
}
