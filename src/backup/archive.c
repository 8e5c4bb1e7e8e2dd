/*
 * archive.c - the backup archive format (layout in archive.h).
 *
 * Writer: entries are framed and compressed into one zstd stream whose output fills a
 * chunk buffer; each full chunk is sealed and written. finish ends the stream, seals the
 * last partial chunk, then the manifest as the final chunk, then the footer.
 *
 * Reader: the header and the footer are read first (open), so the manifest can be read
 * alone (list); a full read walks every chunk in order from the header, checking the index
 * and kind of each against its additional data, decompresses, parses the entries with a
 * small state machine (every length bounded before use), hashes each entry, and compares
 * everything with the manifest at the end.
 */
#include "backup/archive.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "core/buf.h"
#include "core/util.h"
#include "crypt/aead.h"

#define MAGIC       "MESHBAK1"
#define END_MAGIC   "MESHBEND"
#define VERSION     1
#define HDR_FIXED   72
#define CHUNK_HDR   20
#define TAG         16
#define FOOTER      24
#define AAD_BYTES   (8 + 32 + 8 + 1 + 4)
#define ENTRY_HDR   16
#define ENTRY_MAGIC "MBE1"
#define KIND_DATA   1
#define KIND_FINAL  2
#define MAX_FILES   100000 /* entries of one archive */

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

bool mesh_archive_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= MESH_ARCHIVE_ID_MAX || id[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static void sha256(const void *p, size_t n, uint8_t out[32])
{
    unsigned len = 32;
    EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

/* Additional data of chunk idx. */
static void chunk_aad(const uint8_t hdr_hash[32], uint64_t idx, uint8_t kind, uint32_t len,
                      uint8_t out[AAD_BYTES])
{
    memcpy(out, MAGIC, 8);
    memcpy(out + 8, hdr_hash, 32);
    put_u64(out + 40, idx);
    out[48] = kind;
    put_u32(out + 49, len);
}

/* The tag of a chunk of an archive in clear: SHA-256 over aad and payload, cut to 16 bytes. */
static void clear_tag(const uint8_t *aad, const uint8_t *p, size_t n, uint8_t tag[TAG])
{
    uint8_t h[32];
    unsigned len = 32;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c == NULL || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(c, aad, AAD_BYTES) != 1 || EVP_DigestUpdate(c, p, n) != 1 ||
        EVP_DigestFinal_ex(c, h, &len) != 1)
        memset(h, 0, sizeof h); /* never matches a real tag of nonzero data by chance */
    EVP_MD_CTX_free(c);
    memcpy(tag, h, TAG);
}

/* ---- writer ---- */

typedef struct file_rec {
    char name[MESH_ARCHIVE_NAME_MAX + 1];
    char kind;
    uint64_t size;
    char sha[65];
} file_rec_t;

struct mesh_archive_writer {
    int fd;
    char id[MESH_ARCHIVE_ID_MAX];
    uint8_t hdr_hash[32];
    uint32_t chunk_size;
    uint64_t off, idx; /* bytes written, chunks written */
    mesh_key_t *key;   /* NULL: in clear */
    mesh_aead_t *aead;
    ZSTD_CCtx *z;
    uint8_t *chunk; /* chunk_size bytes of compressed stream not yet sealed */
    size_t fill;
    uint8_t *sealed; /* CHUNK_HDR + max payload + TAG */
    size_t sealed_cap;
    uint8_t *zout;
    size_t zout_cap;
    uint64_t compressed;
    /* the entry being written */
    bool in_entry;
    EVP_MD_CTX *md;
    uint64_t left;
    file_rec_t *files;
    size_t nfiles, files_cap;
};

static mesh_status_t write_all(mesh_archive_writer_t *w, const uint8_t *p, size_t n,
                               mesh_err_t *err)
{
    while (n > 0) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return mesh_err_set(err, errno == ENOSPC ? MESH_NOSPACE : MESH_IO,
                                "writing the backup: %s", strerror(errno));
        p += k;
        n -= (size_t)k;
        w->off += (uint64_t)k;
    }
    return MESH_OK;
}

static mesh_status_t seal_chunk(mesh_archive_writer_t *w, uint8_t kind, const uint8_t *p, size_t n,
                                mesh_err_t *err)
{
    size_t need = CHUNK_HDR + n + TAG;
    if (need > w->sealed_cap) {
        uint8_t *s = realloc(w->sealed, need);
        if (s == NULL)
            return mesh_err_set(err, MESH_NOMEM, "out of memory");
        w->sealed = s;
        w->sealed_cap = need;
    }
    uint8_t *h = w->sealed;
    put_u32(h, (uint32_t)n);
    h[4] = kind;
    h[5] = h[6] = h[7] = 0;
    uint8_t aad[AAD_BYTES];
    chunk_aad(w->hdr_hash, w->idx, kind, (uint32_t)n, aad);
    if (w->key) {
        mesh_key_nonce(w->key, h + 8);
        if (!mesh_aead_seal(w->aead, h + 8, aad, sizeof aad, p, n, h + CHUNK_HDR,
                            h + CHUNK_HDR + n))
            return mesh_err_set(err, MESH_INTERNAL, "sealing a backup chunk failed");
    } else {
        memset(h + 8, 0, 12);
        memcpy(h + CHUNK_HDR, p, n);
        clear_tag(aad, p, n, h + CHUNK_HDR + n);
    }
    w->idx++;
    return write_all(w, h, need, err);
}

/* Appends compressed bytes to the chunk buffer, sealing every full chunk. */
static mesh_status_t chunk_add(mesh_archive_writer_t *w, const uint8_t *p, size_t n,
                               mesh_err_t *err)
{
    w->compressed += n;
    while (n > 0) {
        size_t k = w->chunk_size - w->fill;
        if (k > n)
            k = n;
        memcpy(w->chunk + w->fill, p, k);
        w->fill += k;
        p += k;
        n -= k;
        if (w->fill == w->chunk_size) {
            mesh_status_t st = seal_chunk(w, KIND_DATA, w->chunk, w->fill, err);
            if (st != MESH_OK)
                return st;
            w->fill = 0;
        }
    }
    return MESH_OK;
}

/* Compresses p[0..n) into the stream (end: finish the frame). */
static mesh_status_t zput(mesh_archive_writer_t *w, const void *p, size_t n, bool end,
                          mesh_err_t *err)
{
    ZSTD_inBuffer in = {p, n, 0};
    for (;;) {
        ZSTD_outBuffer out = {w->zout, w->zout_cap, 0};
        size_t r = ZSTD_compressStream2(w->z, &out, &in, end ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(r))
            return mesh_err_set(err, MESH_INTERNAL, "zstd: %s", ZSTD_getErrorName(r));
        mesh_status_t st = chunk_add(w, w->zout, out.pos, err);
        if (st != MESH_OK)
            return st;
        if (end ? r == 0 : in.pos == in.size)
            return MESH_OK;
    }
}

mesh_status_t mesh_archive_create(const char *path, const char *id, int64_t created_ns,
                                  const mesh_kek_t *kek, uint32_t chunk_size,
                                  mesh_archive_writer_t **out, mesh_err_t *err)
{
    *out = NULL;
    if (!mesh_archive_id_ok(id))
        return mesh_err_set(err, MESH_INVALID, "'%s' is not a valid backup id", id);
    if (chunk_size == 0)
        chunk_size = MESH_ARCHIVE_CHUNK_DEFAULT;
    if (chunk_size < MESH_ARCHIVE_CHUNK_MIN || chunk_size > MESH_ARCHIVE_CHUNK_MAX)
        return mesh_err_set(err, MESH_INVALID, "chunk size %u out of range", (unsigned)chunk_size);
    mesh_archive_writer_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    w->fd = -1;
    snprintf(w->id, sizeof w->id, "%s", id);
    w->chunk_size = chunk_size;
    mesh_status_t st;
    mesh_buf_t hdr;
    mesh_buf_init(&hdr, HDR_FIXED + MESH_KEYFILE_MAX_BYTES + 4);
    w->chunk = malloc(chunk_size);
    w->zout_cap = ZSTD_CStreamOutSize();
    w->zout = malloc(w->zout_cap);
    w->z = ZSTD_createCCtx();
    w->md = EVP_MD_CTX_new();
    if (w->chunk == NULL || w->zout == NULL || w->z == NULL || w->md == NULL) {
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
        goto fail;
    }
    ZSTD_CCtx_setParameter(w->z, ZSTD_c_compressionLevel, 3);
    ZSTD_CCtx_setParameter(w->z, ZSTD_c_windowLog, 22);
    ZSTD_CCtx_setParameter(w->z, ZSTD_c_checksumFlag, 1);
    /* the header, with the data key wrapped under the KEK */
    mesh_buf_t kfb;
    mesh_buf_init(&kfb, MESH_KEYFILE_MAX_BYTES);
    if (kek) {
        if (mesh_key_new(0, &w->key) != MESH_OK) {
            st = mesh_err_set(err, MESH_IO, "no random bytes for the backup's data key");
            goto fail;
        }
        if (mesh_aead_new(mesh_key_secret(w->key), &w->aead) != MESH_OK) {
            st = mesh_err_set(err, MESH_INTERNAL, "cipher setup failed");
            goto fail;
        }
        mesh_keyfile_t kf;
        memset(&kf, 0, sizeof kf);
        kf.kind = 'N';
        kf.nkeys = 1;
        kf.keys[0].state = MESH_KEY_CURRENT;
        kf.keys[0].key = w->key;
        memcpy(kf.keys[0].file_id, mesh_key_file_id(w->key), MESH_FILE_ID_BYTES);
        char label[64];
        snprintf(label, sizeof label, "backup:%s", id);
        const mesh_kek_t *keks[] = {kek};
        if ((st = mesh_keyfile_encode(&kf, keks, 1, label, &kfb, err)) != MESH_OK) {
            mesh_buf_free(&kfb);
            goto fail;
        }
    }
    uint8_t fixed[HDR_FIXED];
    memset(fixed, 0, sizeof fixed);
    memcpy(fixed, MAGIC, 8);
    put_u16(fixed + 8, VERSION);
    fixed[10] = kek ? 1 : 0;
    put_u32(fixed + 12, chunk_size);
    memcpy(fixed + 16, id, strlen(id));
    put_u64(fixed + 56, (uint64_t)created_ns);
    put_u32(fixed + 64, (uint32_t)kfb.len);
    mesh_buf_add(&hdr, fixed, sizeof fixed);
    if (kfb.len)
        mesh_buf_add(&hdr, kfb.data, kfb.len);
    mesh_buf_free(&kfb);
    uint8_t crc[4];
    put_u32(crc, mesh_crc32c(0, hdr.data, hdr.len));
    if ((st = mesh_buf_add(&hdr, crc, 4)) != MESH_OK)
        goto fail;
    sha256(hdr.data, hdr.len, w->hdr_hash);
    w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        st = mesh_err_set(err, errno == EEXIST ? MESH_CONFLICT : MESH_IO, "create %s: %s", path,
                          strerror(errno));
        goto fail;
    }
    if ((st = write_all(w, (const uint8_t *)hdr.data, hdr.len, err)) != MESH_OK)
        goto fail;
    mesh_buf_free(&hdr);
    *out = w;
    return MESH_OK;
fail:
    mesh_buf_free(&hdr);
    mesh_archive_writer_free(w);
    return st;
}

mesh_status_t mesh_archive_entry_begin(mesh_archive_writer_t *w, char kind, const char *name,
                                       uint64_t size, mesh_err_t *err)
{
    size_t nl = strlen(name);
    if (w->in_entry || nl == 0 || nl > MESH_ARCHIVE_NAME_MAX || size > MESH_ARCHIVE_ENTRY_MAX ||
        w->nfiles >= MAX_FILES)
        return mesh_err_set(err, MESH_INVALID, "backup entry '%s' refused", name);
    if (w->nfiles == w->files_cap) {
        size_t cap = w->files_cap ? w->files_cap * 2 : 8;
        file_rec_t *f = realloc(w->files, cap * sizeof *f);
        if (f == NULL)
            return mesh_err_set(err, MESH_NOMEM, "out of memory");
        w->files = f;
        w->files_cap = cap;
    }
    file_rec_t *f = &w->files[w->nfiles];
    memset(f, 0, sizeof *f);
    memcpy(f->name, name, nl);
    f->kind = kind;
    f->size = size;
    uint8_t h[ENTRY_HDR];
    memcpy(h, ENTRY_MAGIC, 4);
    h[4] = (uint8_t)kind;
    h[5] = 0;
    put_u16(h + 6, (uint16_t)nl);
    put_u64(h + 8, size);
    mesh_status_t st = zput(w, h, sizeof h, false, err);
    if (st == MESH_OK)
        st = zput(w, name, nl, false, err);
    if (st != MESH_OK)
        return st;
    if (EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1)
        return mesh_err_set(err, MESH_INTERNAL, "sha256 setup failed");
    w->in_entry = true;
    w->left = size;
    return MESH_OK;
}

mesh_status_t mesh_archive_entry_write(mesh_archive_writer_t *w, const void *p, size_t n,
                                       mesh_err_t *err)
{
    if (!w->in_entry || n > w->left)
        return mesh_err_set(err, MESH_INTERNAL, "backup entry: more bytes than announced");
    EVP_DigestUpdate(w->md, p, n);
    w->left -= n;
    return zput(w, p, n, false, err);
}

mesh_status_t mesh_archive_entry_end(mesh_archive_writer_t *w, char *sha256_hex, mesh_err_t *err)
{
    if (!w->in_entry || w->left != 0)
        return mesh_err_set(err, MESH_INTERNAL, "backup entry: %llu bytes missing",
                            (unsigned long long)w->left);
    uint8_t h[32];
    unsigned len = 32;
    EVP_DigestFinal_ex(w->md, h, &len);
    file_rec_t *f = &w->files[w->nfiles++];
    mesh_hex(h, 32, f->sha);
    if (sha256_hex)
        memcpy(sha256_hex, f->sha, 65);
    w->in_entry = false;
    return MESH_OK;
}

uint64_t mesh_archive_written(const mesh_archive_writer_t *w)
{
    return w->off;
}

mesh_status_t mesh_archive_finish(mesh_archive_writer_t *w, const char *manifest, size_t n,
                                  mesh_err_t *err)
{
    mesh_status_t st;
    json_t *m = NULL;
    char *text = NULL;
    if (w->in_entry) {
        st = mesh_err_set(err, MESH_INTERNAL, "an entry is still open");
        goto out;
    }
    uint8_t end[ENTRY_HDR];
    memset(end, 0, sizeof end);
    memcpy(end, ENTRY_MAGIC, 4);
    end[4] = 'Z';
    if ((st = zput(w, end, sizeof end, true, err)) != MESH_OK)
        goto out;
    if (w->fill && (st = seal_chunk(w, KIND_DATA, w->chunk, w->fill, err)) != MESH_OK)
        goto out;
    w->fill = 0;
    json_error_t je;
    m = json_loadb(manifest, n, 0, &je);
    if (!json_is_object(m)) {
        st = mesh_err_set(err, MESH_INTERNAL, "the manifest is not a JSON object");
        goto out;
    }
    json_t *files = json_array();
    for (size_t i = 0; i < w->nfiles; i++) {
        char kind[2] = {w->files[i].kind, 0};
        json_array_append_new(files, json_pack("{s:s,s:s,s:I,s:s}", "name", w->files[i].name,
                                               "kind", kind, "bytes", (json_int_t)w->files[i].size,
                                               "sha256", w->files[i].sha));
    }
    json_object_set_new(m, "format", json_integer(VERSION));
    json_object_set_new(m, "id", json_string(w->id));
    json_object_set_new(m, "files", files);
    json_object_set_new(m, "chunks", json_integer((json_int_t)w->idx + 1));
    json_object_set_new(m, "compressed_bytes", json_integer((json_int_t)w->compressed));
    text = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL || strlen(text) > MESH_ARCHIVE_MANIFEST_MAX) {
        st = mesh_err_set(err, MESH_TOO_LARGE, "the manifest is too large");
        goto out;
    }
    uint64_t final_off = w->off;
    if ((st = seal_chunk(w, KIND_FINAL, (const uint8_t *)text, strlen(text), err)) != MESH_OK)
        goto out;
    uint8_t foot[FOOTER];
    put_u64(foot, final_off);
    put_u64(foot + 8, w->idx);
    memcpy(foot + 16, END_MAGIC, 8);
    if ((st = write_all(w, foot, sizeof foot, err)) != MESH_OK)
        goto out;
    if (fsync(w->fd) != 0) {
        st = mesh_err_set(err, MESH_IO, "fsync of the backup: %s", strerror(errno));
        goto out;
    }
    if (close(w->fd) != 0) {
        w->fd = -1;
        st = mesh_err_set(err, MESH_IO, "close of the backup: %s", strerror(errno));
        goto out;
    }
    w->fd = -1;
    st = MESH_OK;
out:
    free(text);
    json_decref(m);
    mesh_archive_writer_free(w);
    return st;
}

void mesh_archive_writer_free(mesh_archive_writer_t *w)
{
    if (w == NULL)
        return;
    if (w->fd >= 0)
        close(w->fd);
    mesh_key_unref(w->key);
    mesh_aead_free(w->aead);
    ZSTD_freeCCtx(w->z);
    EVP_MD_CTX_free(w->md);
    free(w->chunk);
    free(w->zout);
    if (w->sealed)
        mesh_cleanse(w->sealed, w->sealed_cap);
    free(w->sealed);
    free(w->files);
    free(w);
}

/* ---- reader ---- */

struct mesh_archive {
    FILE *f;
    char name[256];
    mesh_archive_info_t info;
    uint64_t hdr_len;
    uint8_t hdr_hash[32];
    uint64_t final_off;
    mesh_keyfile_t kf;
    bool have_kf;
    mesh_aead_t *aead; /* set by unlock (encrypted archives) */
    bool unlocked;
};

static mesh_status_t read_at(mesh_archive_t *a, uint64_t off, void *p, size_t n, mesh_err_t *err)
{
    if (off > (uint64_t)INT64_MAX || fseeko(a->f, (off_t)off, SEEK_SET) != 0)
        return mesh_err_set(err, MESH_IO, "%s: seek failed", a->name);
    if (n && fread(p, 1, n, a->f) != n)
        return mesh_err_set(err, MESH_CORRUPT,
                            "%s is truncated: %zu bytes expected at offset %llu are missing",
                            a->name, n, (unsigned long long)off);
    return MESH_OK;
}

mesh_status_t mesh_archive_open_file(FILE *f, const char *name, mesh_archive_t **out,
                                     mesh_err_t *err)
{
    *out = NULL;
    mesh_archive_t *a = calloc(1, sizeof *a);
    if (a == NULL) {
        fclose(f);
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    a->f = f;
    snprintf(a->name, sizeof a->name, "%s", name);
    mesh_status_t st;
    uint8_t fixed[HDR_FIXED];
    uint8_t *hdr = NULL;
    if (fseeko(f, 0, SEEK_END) != 0) {
        st = mesh_err_set(err, MESH_IO, "%s: seek failed", name);
        goto fail;
    }
    off_t size = ftello(f);
    a->info.file_bytes = size > 0 ? (uint64_t)size : 0;
    if (a->info.file_bytes < HDR_FIXED + 4 + FOOTER) {
        st = mesh_err_set(err, MESH_CORRUPT, "%s is not a meshd backup (too short: %llu bytes)",
                          name, (unsigned long long)a->info.file_bytes);
        goto fail;
    }
    if ((st = read_at(a, 0, fixed, sizeof fixed, err)) != MESH_OK)
        goto fail;
    if (memcmp(fixed, MAGIC, 8) != 0) {
        st = mesh_err_set(err, MESH_CORRUPT, "%s is not a meshd backup (no MESHBAK1 header)", name);
        goto fail;
    }
    if (get_u16(fixed + 8) != VERSION) {
        st = mesh_err_set(err, MESH_CORRUPT, "%s: backup format version %u is not supported", name,
                          (unsigned)get_u16(fixed + 8));
        goto fail;
    }
    uint32_t kflen = get_u32(fixed + 64);
    a->info.chunk_size = get_u32(fixed + 12);
    a->info.encrypted = fixed[10] == 1;
    if (fixed[10] > 1 || fixed[11] != 0 || kflen > MESH_KEYFILE_MAX_BYTES ||
        (a->info.encrypted != (kflen > 0)) || a->info.chunk_size < MESH_ARCHIVE_CHUNK_MIN ||
        a->info.chunk_size > MESH_ARCHIVE_CHUNK_MAX || get_u32(fixed + 68) != 0 ||
        fixed[16 + MESH_ARCHIVE_ID_MAX - 1] != 0) {
        st = mesh_err_set(err, MESH_CORRUPT, "%s: the backup header is damaged", name);
        goto fail;
    }
    memcpy(a->info.id, fixed + 16, MESH_ARCHIVE_ID_MAX);
    a->info.created_ns = (int64_t)get_u64(fixed + 56);
    if (!mesh_archive_id_ok(a->info.id)) {
        st = mesh_err_set(err, MESH_CORRUPT, "%s: the backup header is damaged (its id)", name);
        goto fail;
    }
    a->hdr_len = HDR_FIXED + (uint64_t)kflen + 4;
    if (a->hdr_len + FOOTER > a->info.file_bytes) {
        st = mesh_err_set(err, MESH_CORRUPT, "%s is truncated (inside its header)", name);
        goto fail;
    }
    hdr = malloc(a->hdr_len);
    if (hdr == NULL) {
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
        goto fail;
    }
    if ((st = read_at(a, 0, hdr, a->hdr_len, err)) != MESH_OK)
        goto fail;
    if (mesh_crc32c(0, hdr, a->hdr_len - 4) != get_u32(hdr + a->hdr_len - 4)) {
        st = mesh_err_set(err, MESH_CORRUPT, "%s: the backup header is damaged (checksum)", name);
        goto fail;
    }
    sha256(hdr, a->hdr_len, a->hdr_hash);
    if (kflen) {
        if ((st = mesh_keyfile_parse(hdr + HDR_FIXED, kflen, &a->kf, err)) != MESH_OK) {
            mesh_err_prefix(err, "%s: the backup's key wrap: ", name);
            goto fail;
        }
        a->have_kf = true;
        if (a->kf.kind != 'N' || a->kf.nkeys != 1 || a->kf.nwraps != 1) {
            st = mesh_err_set(err, MESH_CORRUPT, "%s: the backup's key wrap is not one key", name);
            goto fail;
        }
        mesh_hex(a->kf.wraps[0].kek_id, MESH_KEK_ID_BYTES, a->info.kek_id);
        a->info.kdf = a->kf.wraps[0].kdf;
    }
    uint8_t foot[FOOTER];
    if ((st = read_at(a, a->info.file_bytes - FOOTER, foot, FOOTER, err)) != MESH_OK)
        goto fail;
    a->final_off = get_u64(foot);
    a->info.chunks = get_u64(foot + 8);
    if (memcmp(foot + 16, END_MAGIC, 8) != 0) {
        st = mesh_err_set(err, MESH_CORRUPT,
                          "%s is truncated or damaged at its end (no MESHBEND footer): the "
                          "backup did not finish, or bytes were cut off",
                          name);
        goto fail;
    }
    if (a->final_off < a->hdr_len || a->final_off + CHUNK_HDR + TAG + FOOTER > a->info.file_bytes ||
        a->info.chunks == 0) {
        st = mesh_err_set(err, MESH_CORRUPT, "%s: the backup's footer is damaged", name);
        goto fail;
    }
    free(hdr);
    a->unlocked = !a->info.encrypted;
    *out = a;
    return MESH_OK;
fail:
    free(hdr);
    mesh_archive_close(a);
    return st;
}

mesh_status_t mesh_archive_open(const char *path, mesh_archive_t **out, mesh_err_t *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rbe");
    if (f == NULL)
        return mesh_err_set(err, errno == ENOENT ? MESH_NOT_FOUND : MESH_IO, "open %s: %s", path,
                            strerror(errno));
    return mesh_archive_open_file(f, path, out, err);
}

const mesh_archive_info_t *mesh_archive_info(const mesh_archive_t *a)
{
    return &a->info;
}

mesh_status_t mesh_archive_unlock(mesh_archive_t *a, const mesh_kek_t *kek, mesh_err_t *err)
{
    if (!a->info.encrypted || a->aead)
        return MESH_OK;
    if (kek == NULL)
        return mesh_err_set(err, MESH_FORBIDDEN,
                            "%s is encrypted: give the key-encryption key it was made under "
                            "(KEK id %s)",
                            a->name, a->info.kek_id);
    char label[64];
    snprintf(label, sizeof label, "backup:%s", a->info.id);
    mesh_status_t st = mesh_keyfile_unwrap(&a->kf, kek, label, err);
    if (st == MESH_FORBIDDEN) {
        char id[2 * MESH_KEK_ID_BYTES + 1];
        mesh_kek_id_hex(kek, id);
        return mesh_err_set(err, MESH_FORBIDDEN,
                            "%s: wrong key-encryption key: the backup was made under KEK %s, "
                            "the key given is KEK %s",
                            a->name, a->info.kek_id, id);
    }
    if (st == MESH_CORRUPT)
        return mesh_err_set(err, MESH_CORRUPT,
                            "%s: the backup's data key does not authenticate as backup %s's: its "
                            "header was altered (the id?) or the file is damaged",
                            a->name, a->info.id);
    if (st != MESH_OK) {
        mesh_err_prefix(err, "%s: ", a->name);
        return st;
    }
    if (mesh_aead_new(mesh_key_secret(a->kf.keys[0].key), &a->aead) != MESH_OK)
        return mesh_err_set(err, MESH_INTERNAL, "cipher setup failed");
    a->unlocked = true;
    return MESH_OK;
}

/* Reads and opens the chunk at off, expected to be number idx; *kind and the payload
 * (malloc'd into *buf, of *n bytes) out; *next is the offset after it. */
static mesh_status_t read_chunk(mesh_archive_t *a, uint64_t off, uint64_t idx, uint8_t *kind,
                                uint8_t **buf, size_t *bufcap, size_t *n, uint64_t *next,
                                mesh_err_t *err)
{
    uint8_t h[CHUNK_HDR];
    mesh_status_t st = read_at(a, off, h, sizeof h, err);
    if (st != MESH_OK)
        return st;
    uint32_t len = get_u32(h);
    *kind = h[4];
    if ((*kind != KIND_DATA && *kind != KIND_FINAL) || h[5] || h[6] || h[7])
        return mesh_err_set(err, MESH_CORRUPT,
                            "%s: chunk %llu at offset %llu is damaged (its header)", a->name,
                            (unsigned long long)idx, (unsigned long long)off);
    uint32_t max = *kind == KIND_DATA ? a->info.chunk_size : MESH_ARCHIVE_MANIFEST_MAX;
    if (len > max || off + CHUNK_HDR + (uint64_t)len + TAG > a->info.file_bytes)
        return mesh_err_set(
            err, MESH_CORRUPT, "%s: chunk %llu at offset %llu is damaged or truncated (length %u)",
            a->name, (unsigned long long)idx, (unsigned long long)off, (unsigned)len);
    if ((size_t)len + TAG + 1 > *bufcap) {
        uint8_t *b = realloc(*buf, (size_t)len + TAG + 1);
        if (b == NULL)
            return mesh_err_set(err, MESH_NOMEM, "out of memory");
        *buf = b;
        *bufcap = (size_t)len + TAG + 1;
    }
    if ((st = read_at(a, off + CHUNK_HDR, *buf, (size_t)len + TAG, err)) != MESH_OK)
        return st;
    uint8_t aad[AAD_BYTES];
    chunk_aad(a->hdr_hash, idx, *kind, len, aad);
    bool ok;
    if (a->info.encrypted) {
        if (a->aead == NULL)
            return mesh_err_set(err, MESH_FORBIDDEN, "%s is encrypted: unlock it first", a->name);
        ok = mesh_aead_open(a->aead, h + 8, aad, sizeof aad, *buf, len, *buf, *buf + len);
    } else {
        uint8_t tag[TAG];
        clear_tag(aad, *buf, len, tag);
        ok = memcmp(tag, *buf + len, TAG) == 0;
        for (int i = 0; i < 12; i++)
            ok = ok && h[8 + i] == 0;
    }
    if (!ok)
        return mesh_err_set(err, MESH_CORRUPT,
                            "%s: chunk %llu at offset %llu fails authentication: the backup "
                            "was damaged or altered, or chunks were moved or taken from "
                            "another backup",
                            a->name, (unsigned long long)idx, (unsigned long long)off);
    (*buf)[len] = 0;
    *n = len;
    *next = off + CHUNK_HDR + len + TAG;
    return MESH_OK;
}

mesh_status_t mesh_archive_manifest(mesh_archive_t *a, char **out, size_t *n, mesh_err_t *err)
{
    *out = NULL;
    uint8_t kind;
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    uint64_t next;
    mesh_status_t st =
        read_chunk(a, a->final_off, a->info.chunks - 1, &kind, &buf, &cap, &len, &next, err);
    if (st == MESH_OK && (kind != KIND_FINAL || next + FOOTER != a->info.file_bytes))
        st = mesh_err_set(err, MESH_CORRUPT, "%s: the footer does not point at the manifest",
                          a->name);
    if (st != MESH_OK) {
        free(buf);
        return st;
    }
    *out = (char *)buf;
    if (n)
        *n = len;
    return MESH_OK;
}

/* ---- the entry parser over the decompressed stream ---- */

typedef struct parser {
    mesh_archive_t *a;
    mesh_archive_entry_fn fn;
    void *arg;
    uint8_t hdr[ENTRY_HDR + MESH_ARCHIVE_NAME_MAX];
    size_t have; /* header (and name) bytes gathered */
    bool in_data;
    bool ended; /* the 'Z' entry was seen */
    char kind;
    char name[MESH_ARCHIVE_NAME_MAX + 1];
    uint64_t size, left;
    EVP_MD_CTX *md;
    file_rec_t *files;
    size_t nfiles, files_cap;
} parser_t;

static mesh_status_t entry_done(parser_t *ps, mesh_err_t *err)
{
    uint8_t h[32];
    unsigned len = 32;
    EVP_DigestFinal_ex(ps->md, h, &len);
    if (ps->nfiles == ps->files_cap) {
        size_t cap = ps->files_cap ? ps->files_cap * 2 : 8;
        file_rec_t *f = realloc(ps->files, cap * sizeof *f);
        if (f == NULL)
            return mesh_err_set(err, MESH_NOMEM, "out of memory");
        ps->files = f;
        ps->files_cap = cap;
    }
    file_rec_t *f = &ps->files[ps->nfiles++];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", ps->name);
    f->kind = ps->kind;
    f->size = ps->size;
    mesh_hex(h, 32, f->sha);
    ps->in_data = false;
    ps->have = 0;
    if (ps->fn)
        return ps->fn(ps->arg, ps->kind, ps->name, ps->size, NULL, 0);
    return MESH_OK;
}

static mesh_status_t parse(parser_t *ps, const uint8_t *p, size_t n, mesh_err_t *err)
{
    mesh_status_t st;
    while (n > 0) {
        if (ps->ended)
            return mesh_err_set(err, MESH_CORRUPT, "%s: data after the end of the backup stream",
                                ps->a->name);
        if (ps->in_data) {
            size_t k = ps->left < n ? (size_t)ps->left : n;
            EVP_DigestUpdate(ps->md, p, k);
            if (ps->fn && (st = ps->fn(ps->arg, ps->kind, ps->name, ps->size, p, k)) != MESH_OK)
                return st;
            ps->left -= k;
            p += k;
            n -= k;
            if (ps->left == 0 && (st = entry_done(ps, err)) != MESH_OK)
                return st;
            continue;
        }
        size_t want = ENTRY_HDR;
        if (ps->have >= ENTRY_HDR)
            want += get_u16(ps->hdr + 6);
        size_t k = want - ps->have < n ? want - ps->have : n;
        memcpy(ps->hdr + ps->have, p, k);
        ps->have += k;
        p += k;
        n -= k;
        if (ps->have == ENTRY_HDR) {
            uint16_t nl = get_u16(ps->hdr + 6);
            ps->kind = (char)ps->hdr[4];
            ps->size = get_u64(ps->hdr + 8);
            if (memcmp(ps->hdr, ENTRY_MAGIC, 4) != 0 || ps->hdr[5] != 0)
                return mesh_err_set(err, MESH_CORRUPT, "%s: an entry header is damaged",
                                    ps->a->name);
            if (ps->kind == 'Z') {
                if (nl != 0 || ps->size != 0)
                    return mesh_err_set(err, MESH_CORRUPT, "%s: the end entry is damaged",
                                        ps->a->name);
                ps->ended = true;
                ps->have = 0;
                continue;
            }
            if (nl == 0 || nl > MESH_ARCHIVE_NAME_MAX || ps->size > MESH_ARCHIVE_ENTRY_MAX ||
                ps->nfiles >= MAX_FILES)
                return mesh_err_set(err, MESH_CORRUPT, "%s: an entry header is out of bounds",
                                    ps->a->name);
        }
        if (ps->have >= ENTRY_HDR && ps->have == (size_t)ENTRY_HDR + get_u16(ps->hdr + 6)) {
            size_t nl = ps->have - ENTRY_HDR;
            memcpy(ps->name, ps->hdr + ENTRY_HDR, nl);
            ps->name[nl] = '\0';
            if (strlen(ps->name) != nl)
                return mesh_err_set(err, MESH_CORRUPT, "%s: an entry name is damaged", ps->a->name);
            if (EVP_DigestInit_ex(ps->md, EVP_sha256(), NULL) != 1)
                return mesh_err_set(err, MESH_INTERNAL, "sha256 setup failed");
            ps->in_data = true;
            ps->left = ps->size;
            if (ps->size == 0 && (st = entry_done(ps, err)) != MESH_OK)
                return st;
        }
    }
    return MESH_OK;
}

/* Compares the manifest's "files" with what the stream held. */
static mesh_status_t check_manifest(mesh_archive_t *a, const parser_t *ps, const char *text,
                                    size_t n, uint64_t chunks, mesh_err_t *err)
{
    json_error_t je;
    json_t *m = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
    mesh_status_t st = MESH_OK;
    json_t *files = json_object_get(m, "files");
    const char *id = json_string_value(json_object_get(m, "id"));
    if (!json_is_object(m) || !json_is_array(files) || id == NULL ||
        json_integer_value(json_object_get(m, "format")) != VERSION) {
        st = mesh_err_set(err, MESH_CORRUPT, "%s: the manifest is malformed", a->name);
        goto out;
    }
    if (strcmp(id, a->info.id) != 0) {
        st = mesh_err_set(err, MESH_CORRUPT, "%s: the manifest names backup %s, not %s", a->name,
                          id, a->info.id);
        goto out;
    }
    if (json_integer_value(json_object_get(m, "chunks")) != (json_int_t)chunks) {
        st = mesh_err_set(err, MESH_CORRUPT, "%s: the manifest counts other chunks", a->name);
        goto out;
    }
    if (json_array_size(files) != ps->nfiles) {
        st = mesh_err_set(err, MESH_CORRUPT,
                          "%s: the manifest lists %zu files, the backup holds %zu", a->name,
                          json_array_size(files), ps->nfiles);
        goto out;
    }
    for (size_t i = 0; i < ps->nfiles; i++) {
        json_t *f = json_array_get(files, i);
        const char *name = json_string_value(json_object_get(f, "name"));
        const char *sha = json_string_value(json_object_get(f, "sha256"));
        json_int_t bytes = json_integer_value(json_object_get(f, "bytes"));
        if (name == NULL || sha == NULL || strcmp(name, ps->files[i].name) != 0 ||
            bytes != (json_int_t)ps->files[i].size) {
            st = mesh_err_set(err, MESH_CORRUPT, "%s: file %zu (%s) does not match the manifest",
                              a->name, i + 1, ps->files[i].name);
            goto out;
        }
        if (strcmp(sha, ps->files[i].sha) != 0) {
            st = mesh_err_set(err, MESH_CORRUPT, "%s: %s: SHA-256 %s, the manifest says %s",
                              a->name, ps->files[i].name, ps->files[i].sha, sha);
            goto out;
        }
    }
out:
    json_decref(m);
    return st;
}

mesh_status_t mesh_archive_read(mesh_archive_t *a, mesh_archive_entry_fn fn, void *arg,
                                mesh_archive_progress_fn progress, void *parg, char **manifest,
                                mesh_err_t *err)
{
    if (manifest)
        *manifest = NULL;
    if (!a->unlocked)
        return mesh_err_set(err, MESH_FORBIDDEN, "%s is encrypted: unlock it first", a->name);
    parser_t ps;
    memset(&ps, 0, sizeof ps);
    ps.a = a;
    ps.fn = fn;
    ps.arg = arg;
    ps.md = EVP_MD_CTX_new();
    ZSTD_DCtx *z = ZSTD_createDCtx();
    size_t zcap = ZSTD_DStreamOutSize();
    uint8_t *zout = malloc(zcap);
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    mesh_status_t st = MESH_OK;
    bool frame_done = false;
    if (ps.md == NULL || z == NULL || zout == NULL) {
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
        goto out;
    }
    ZSTD_DCtx_setParameter(z, ZSTD_d_windowLogMax, MESH_ARCHIVE_WINDOW_LOG);
    uint64_t off = a->hdr_len, idx = 0;
    for (;; idx++) {
        if (idx >= a->info.chunks || off > a->final_off) {
            st = mesh_err_set(err, MESH_CORRUPT,
                              "%s: chunk %llu is not where the footer says the last one is: "
                              "chunks were added, removed or damaged",
                              a->name, (unsigned long long)idx);
            goto out;
        }
        uint8_t kind;
        uint64_t next;
        if ((st = read_chunk(a, off, idx, &kind, &buf, &cap, &len, &next, err)) != MESH_OK)
            goto out;
        if (kind == KIND_FINAL) {
            if (off != a->final_off || idx + 1 != a->info.chunks ||
                next + FOOTER != a->info.file_bytes) {
                st =
                    mesh_err_set(err, MESH_CORRUPT, "%s: the final chunk is out of place", a->name);
                goto out;
            }
            break;
        }
        if (frame_done) {
            st = mesh_err_set(err, MESH_CORRUPT, "%s: data after the end of the stream", a->name);
            goto out;
        }
        ZSTD_inBuffer in = {buf, len, 0};
        for (;;) {
            ZSTD_outBuffer o = {zout, zcap, 0};
            size_t r = ZSTD_decompressStream(z, &o, &in);
            if (ZSTD_isError(r)) {
                st = mesh_err_set(err, MESH_CORRUPT, "%s: chunk %llu does not decompress: %s",
                                  a->name, (unsigned long long)idx, ZSTD_getErrorName(r));
                goto out;
            }
            if ((st = parse(&ps, zout, o.pos, err)) != MESH_OK)
                goto out;
            if (r == 0) {
                frame_done = true;
                break;
            }
            if (in.pos == in.size && o.pos < zcap)
                break;
        }
        if (in.pos < in.size) {
            st = mesh_err_set(err, MESH_CORRUPT, "%s: data after the end of the stream", a->name);
            goto out;
        }
        off = next;
        if (progress)
            progress(parg, off);
    }
    if (!frame_done || !ps.ended || ps.in_data || ps.have) {
        st = mesh_err_set(err, MESH_CORRUPT, "%s: the backup stream ends early (truncated)",
                          a->name);
        goto out;
    }
    if ((st = check_manifest(a, &ps, (const char *)buf, len, a->info.chunks, err)) != MESH_OK)
        goto out;
    if (progress)
        progress(parg, a->info.file_bytes);
    if (manifest) {
        *manifest = (char *)buf;
        buf = NULL;
    }
out:
    free(buf);
    free(zout);
    ZSTD_freeDCtx(z);
    EVP_MD_CTX_free(ps.md);
    free(ps.files);
    return st;
}

mesh_status_t mesh__archive_parse_stream(const uint8_t *p, size_t n, mesh_err_t *err)
{
    mesh_archive_t a;
    memset(&a, 0, sizeof a);
    snprintf(a.name, sizeof a.name, "stream");
    parser_t ps;
    memset(&ps, 0, sizeof ps);
    ps.a = &a;
    ps.md = EVP_MD_CTX_new();
    ZSTD_DCtx *z = ZSTD_createDCtx();
    size_t zcap = ZSTD_DStreamOutSize();
    uint8_t *zout = malloc(zcap);
    mesh_status_t st = MESH_OK;
    if (ps.md == NULL || z == NULL || zout == NULL) {
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
        goto out;
    }
    ZSTD_DCtx_setParameter(z, ZSTD_d_windowLogMax, MESH_ARCHIVE_WINDOW_LOG);
    ZSTD_inBuffer in = {p, n, 0};
    for (;;) {
        ZSTD_outBuffer o = {zout, zcap, 0};
        size_t r = ZSTD_decompressStream(z, &o, &in);
        if (ZSTD_isError(r)) {
            st = mesh_err_set(err, MESH_CORRUPT, "zstd: %s", ZSTD_getErrorName(r));
            break;
        }
        if ((st = parse(&ps, zout, o.pos, err)) != MESH_OK)
            break;
        if (r == 0 || (in.pos == in.size && o.pos < zcap))
            break;
    }
out:
    free(zout);
    ZSTD_freeDCtx(z);
    EVP_MD_CTX_free(ps.md);
    free(ps.files);
    return st;
}

void mesh_archive_close(mesh_archive_t *a)
{
    if (a == NULL)
        return;
    if (a->f)
        fclose(a->f);
    if (a->have_kf)
        mesh_keyfile_clear(&a->kf);
    mesh_aead_free(a->aead);
    free(a);
}
