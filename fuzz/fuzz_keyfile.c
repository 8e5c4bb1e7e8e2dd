/*
 * fuzz_keyfile.c - a key file (DATA/catalog.key, DATA/domains/<name>/key) is read from disk
 * before anything is decrypted: damaged or forged bytes must be refused cleanly, never read
 * outside the input, and a forged wrap must not open with a KEK.
 */
#include <stdint.h>
#include <string.h>

#include "crypt/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mesh_keyfile_t kf;
    mesh_err_t err;
    if (mesh_keyfile_parse(data, size, &kf, &err) != MESH_OK)
        return 0;
    static mesh_kek_t *kek;
    if (kek == NULL) {
        uint8_t k[MESH_KEY_BYTES];
        memset(k, 0x42, sizeof k);
        mesh_kek_from_bytes(k, "fuzz", &kek, &err);
    }
    /* the seeds are wrapped with this KEK: unwrap and encode again */
    if (kek && mesh_keyfile_unwrap(&kf, kek, "domain:fuzz", &err) == MESH_OK) {
        mesh_buf_t b;
        mesh_buf_init(&b, MESH_KEYFILE_MAX_BYTES);
        const mesh_kek_t *keks[] = {kek};
        mesh_keyfile_encode(&kf, keks, 1, "domain:fuzz", &b, &err);
        mesh_buf_free(&b);
    }
    mesh_keyfile_clear(&kf);
    return 0;
}
