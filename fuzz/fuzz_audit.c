/*
 * fuzz_audit.c - the audit segment decoder (mesh_audit_check_segment) on arbitrary bytes: a
 * segment file is read back from disk by verify, open and search, and a damaged or tampered
 * one must fail cleanly, never read outside the input. The first byte picks sealed or plain
 * records; the keys are fixed, so the seed corpus holds real segments that verify.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "audit/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mesh_audit_keys_t keys;
    for (int i = 0; i < MESH_AUDIT_KEY_LEN; i++) {
        keys.mac[i] = (uint8_t)i;
        keys.enc[i] = (uint8_t)(0x80 + i);
    }
    keys.encrypt = size == 0 || (data[0] & 1) == 0;
    mesh_audit_verify_t v;
    /* the seeds' first byte is the segment's own ('M' of the magic: sealed) */
    mesh_audit_check_segment(data, size, &keys, &v);
    keys.encrypt = !keys.encrypt;
    mesh_audit_check_segment(data, size, &keys, &v);
    return 0;
}
