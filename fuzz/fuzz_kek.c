/*
 * fuzz_kek.c - key material from outside (a KEK file, MESHD_KEK, a command's output) and the
 * kek_command line split into argv: both must refuse anything that is not what they expect,
 * never read or write outside their buffers.
 */
#include <stdint.h>
#include <string.h>

#include "crypt/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t key[MESH_KEY_BYTES];
    mesh_err_t err;
    mesh_kek_parse_text(data, size, key, &err);
    if (size <= MESH_KEK_CMD_MAX) {
        char line[MESH_KEK_CMD_MAX + 1], buf[MESH_KEK_CMD_MAX + 1];
        char *argv[MESH_KEK_CMD_MAX_ARGS + 1];
        int argc;
        memcpy(line, data, size);
        line[size] = '\0';
        mesh_kek_split_command(line, size, buf, sizeof buf, argv, &argc, &err);
    }
    return 0;
}
