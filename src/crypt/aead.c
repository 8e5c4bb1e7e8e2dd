/*
 * aead.c - AES-256-GCM over EVP: contexts initialised with the key once, then re-armed with
 * a new nonce for every message (EVP_*Init_ex with a NULL cipher and key keeps the schedule).
 */
#include "crypt/aead.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>

struct mesh_aead {
    EVP_CIPHER_CTX *enc;
    EVP_CIPHER_CTX *dec;
};

void mesh_cleanse(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}

mesh_status_t mesh_aead_new(const uint8_t key[MESH_AEAD_KEY_BYTES], mesh_aead_t **out)
{
    mesh_aead_t *a = calloc(1, sizeof *a);
    if (a == NULL)
        return MESH_NOMEM;
    a->enc = EVP_CIPHER_CTX_new();
    a->dec = EVP_CIPHER_CTX_new();
    if (a->enc == NULL || a->dec == NULL) {
        mesh_aead_free(a);
        return MESH_NOMEM;
    }
    if (EVP_EncryptInit_ex(a->enc, EVP_aes_256_gcm(), NULL, key, NULL) != 1 ||
        EVP_DecryptInit_ex(a->dec, EVP_aes_256_gcm(), NULL, key, NULL) != 1) {
        mesh_aead_free(a);
        return MESH_INTERNAL;
    }
    *out = a;
    return MESH_OK;
}

void mesh_aead_free(mesh_aead_t *a)
{
    if (a == NULL)
        return;
    EVP_CIPHER_CTX_free(a->enc); /* frees (and cleanses) the key schedule */
    EVP_CIPHER_CTX_free(a->dec);
    free(a);
}

/* EVP lengths are ints: long messages (log records up to 512 MiB) go in slices. */
#define SLICE (1 << 30)

bool mesh_aead_seal(mesh_aead_t *a, const uint8_t nonce[MESH_AEAD_NONCE_BYTES], const uint8_t *aad,
                    size_t naad, const uint8_t *in, size_t n, uint8_t *out,
                    uint8_t tag[MESH_AEAD_TAG_BYTES])
{
    int len;
    if (EVP_EncryptInit_ex(a->enc, NULL, NULL, NULL, nonce) != 1)
        return false;
    if (naad && EVP_EncryptUpdate(a->enc, NULL, &len, aad, (int)naad) != 1)
        return false;
    for (size_t off = 0; off < n;) {
        int chunk = n - off > SLICE ? SLICE : (int)(n - off);
        if (EVP_EncryptUpdate(a->enc, out + off, &len, in + off, chunk) != 1)
            return false;
        off += (size_t)chunk;
    }
    if (EVP_EncryptFinal_ex(a->enc, out + n, &len) != 1)
        return false;
    return EVP_CIPHER_CTX_ctrl(a->enc, EVP_CTRL_GCM_GET_TAG, MESH_AEAD_TAG_BYTES, tag) == 1;
}

bool mesh_aead_open(mesh_aead_t *a, const uint8_t nonce[MESH_AEAD_NONCE_BYTES], const uint8_t *aad,
                    size_t naad, const uint8_t *in, size_t n, uint8_t *out,
                    const uint8_t tag[MESH_AEAD_TAG_BYTES])
{
    int len;
    if (EVP_DecryptInit_ex(a->dec, NULL, NULL, NULL, nonce) != 1)
        return false;
    if (naad && EVP_DecryptUpdate(a->dec, NULL, &len, aad, (int)naad) != 1)
        return false;
    for (size_t off = 0; off < n;) {
        int chunk = n - off > SLICE ? SLICE : (int)(n - off);
        if (EVP_DecryptUpdate(a->dec, out + off, &len, in + off, chunk) != 1)
            return false;
        off += (size_t)chunk;
    }
    /* the tag is only read by the library; the cast drops a const EVP does not declare */
    if (EVP_CIPHER_CTX_ctrl(a->dec, EVP_CTRL_GCM_SET_TAG, MESH_AEAD_TAG_BYTES, (void *)tag) != 1)
        return false;
    return EVP_DecryptFinal_ex(a->dec, out + n, &len) == 1;
}

bool mesh_aead_seal_once(const uint8_t key[MESH_AEAD_KEY_BYTES],
                         const uint8_t nonce[MESH_AEAD_NONCE_BYTES], const uint8_t *aad,
                         size_t naad, const uint8_t *in, size_t n, uint8_t *out,
                         uint8_t tag[MESH_AEAD_TAG_BYTES])
{
    mesh_aead_t *a;
    if (mesh_aead_new(key, &a) != MESH_OK)
        return false;
    bool ok = mesh_aead_seal(a, nonce, aad, naad, in, n, out, tag);
    mesh_aead_free(a);
    return ok;
}

bool mesh_aead_open_once(const uint8_t key[MESH_AEAD_KEY_BYTES],
                         const uint8_t nonce[MESH_AEAD_NONCE_BYTES], const uint8_t *aad,
                         size_t naad, const uint8_t *in, size_t n, uint8_t *out,
                         const uint8_t tag[MESH_AEAD_TAG_BYTES])
{
    mesh_aead_t *a;
    if (mesh_aead_new(key, &a) != MESH_OK)
        return false;
    bool ok = mesh_aead_open(a, nonce, aad, naad, in, n, out, tag);
    mesh_aead_free(a);
    return ok;
}
