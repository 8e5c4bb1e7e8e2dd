/*
 * fuzz_backup.c - a backup archive is read from a file anyone with access to the backup
 * directory (or a copy on other media) could have changed: the header, the key wrap, chunk
 * lengths, the zstd stream, the entry headers and the manifest must be refused cleanly, never
 * read outside the input or allocate past the format's limits. The seeds are sealed under a
 * KEK of 32 bytes 0x42, so the fuzzer gets past authentication with them. An input that
 * starts with a zstd frame is the stream the data chunks carry, fed to the decompressor and
 * the entry parser directly (which no forged chunk could reach).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/archive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mesh_status_t sink(void *arg, char kind, const char *name, uint64_t size, const uint8_t *p,
                          size_t n)
{
    (void)arg;
    (void)kind;
    (void)size;
    (void)p;
    (void)n;
    return strlen(name) <= MESH_ARCHIVE_NAME_MAX ? MESH_OK : MESH_INTERNAL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mesh_kek_t *kek;
    mesh_err_t err;
    if (kek == NULL) {
        uint8_t k[MESH_KEY_BYTES];
        memset(k, 0x42, sizeof k);
        mesh_kek_from_bytes(k, "fuzz", &kek, &err);
    }
    if (size == 0)
        return 0;
    /* inputs starting with a zstd frame's magic: the stream inside the data chunks */
    if (size >= 4 && data[0] == 0x28 && data[1] == 0xb5 && data[2] == 0x2f && data[3] == 0xfd) {
        mesh__archive_parse_stream(data, size, &err);
        return 0;
    }
    FILE *f = fmemopen((void *)data, size, "rb");
    if (f == NULL)
        return 0;
    mesh_archive_t *a;
    if (mesh_archive_open_file(f, "fuzz", &a, &err) != MESH_OK)
        return 0;
    if (mesh_archive_unlock(a, kek, &err) == MESH_OK) {
        char *m = NULL;
        size_t n = 0;
        if (mesh_archive_manifest(a, &m, &n, &err) == MESH_OK)
            free(m);
        m = NULL;
        if (mesh_archive_read(a, sink, NULL, NULL, NULL, &m, &err) == MESH_OK)
            free(m);
    }
    mesh_archive_close(a);
    return 0;
}
