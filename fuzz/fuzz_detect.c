/*
 * fuzz_detect.c - the detectors read values written by anyone who may write a product, and
 * column names from contracts: every value test, name hint and the discovery accumulator
 * must stay within the bytes they are given (the input is not NUL-terminated here).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "classify/detect.h"
#include "classify/discover.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy, so reading past the end is caught */
    char *s = malloc(size ? size : 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    mesh_detect_value_t v = {.s = s, .n = size};
    for (int t = 0; t < MESH_INFO__COUNT; t++)
        for (int loc = MESH_LOC_NONE; loc <= MESH_LOC_POINT; loc++) {
            v.is_num = false;
            (void)mesh_detect_value((mesh_info_type_t)t, &v, (mesh_loc_hint_t)loc, 2026);
            v.is_num = true;
            v.d = (double)size - 90;
            (void)mesh_detect_value((mesh_info_type_t)t, &v, (mesh_loc_hint_t)loc, 2026);
        }
    (void)mesh_luhn_ok(s, size);
    (void)mesh_iban_mod97(s, size);
    /* as a column name (NUL-terminated, as contracts give them) */
    char *name = malloc(size + 1);
    if (name) {
        memcpy(name, data, size);
        name[size] = '\0';
        for (int t = 0; t < MESH_INFO__COUNT; t++)
            (void)mesh_detect_hint((mesh_info_type_t)t, name);
        (void)mesh_detect_loc_hint(name);
        free(name);
    }
    free(s);
    return 0;
}
