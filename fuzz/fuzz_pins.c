/*
 * fuzz_pins.c - meshctl's --pin list parser (mesh_tls_pins_parse): text from the command line,
 * the environment or a config file, bounded by MESH_TLS_PINS_MAX_TEXT and MESH_TLS_MAX_PINS.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    uint8_t pins[MESH_TLS_MAX_PINS][MESH_TLS_FP_LEN];
    size_t n = 0;
    mesh_err_t err;
    if (mesh_tls_pins_parse(s, pins, MESH_TLS_MAX_PINS, &n, &err) == MESH_OK &&
        (n == 0 || n > MESH_TLS_MAX_PINS))
        abort(); /* a success holds 1..MESH_TLS_MAX_PINS pins */
    /* a smaller array must be respected too */
    if (mesh_tls_pins_parse(s, pins, 2, &n, &err) == MESH_OK && n > 2)
        abort();
    free(s);
    return 0;
}
