/*
 * keys.h - data keys, key files and key-encryption keys (KEKs).
 *
 * Every encrypted thing meshd stores is sealed with a random 256-bit *data key*: one per
 * domain (its database, WAL and log) and one for the node (catalog.db). Data keys never
 * touch the disk in clear: each lives in a *key file* beside what it seals (DIR/key for a
 * domain, DATA/catalog.key for the node), wrapped (AES-256-GCM) under the node's *KEK*,
 * which comes from outside the data directory: a key file, an environment variable, a
 * passphrase through scrypt, or a command (a KMS client). Rotating the KEK rewrites the key
 * files only; rotating a domain's data key re-encrypts the domain (domain.c).
 *
 * Key file layout (little-endian, every size fixed by the header, CRC-32C at the end so a
 * damaged file is told apart from a wrong KEK):
 *
 *   magic "MESHKEY1" | kind 'N' (node) or 'D' (domain) | nkeys 1..3 | nwraps 1..2 | 5 zero
 *   nkeys x { u32 gen | u8 state | 3 zero | file id[16] }
 *   nwraps x { kek id[16] | kdf[4] | salt[16] | nonce[12] | nkeys*32 sealed key bytes | tag[16] }
 *   u32 crc32c of everything before
 *
 * A key's generation names the database file it seals (gen 0: data.db, else data.<gen>.db)
 * and its file id is bound into every page of that file. States: current (used for new
 * writes), next (a re-encryption in progress builds its file), retired (only log records
 * older than a rotation may still use it). Each wrap seals all keys under one KEK, with the
 * label ("catalog" or "domain:<name>"), the header and the key list as additional data, so a
 * key file cannot be moved to another domain or have its list edited. Two wraps exist only
 * while the KEK is being rotated (under the old and the new KEK, so a crash at any point
 * leaves every key file readable with one of them).
 *
 * Keys in memory are cleansed when freed and never logged.
 */
#ifndef MESH_CRYPT_KEYS_H
#define MESH_CRYPT_KEYS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"
#include "crypt/aead.h"

#define MESH_KEY_BYTES      32
#define MESH_FILE_ID_BYTES  16
#define MESH_KEK_ID_BYTES   16
#define MESH_KDF_SALT_BYTES 16

/* ---- data keys ---- */

typedef struct mesh_key mesh_key_t;

/* A new random data key for generation gen with a random file id. */
mesh_status_t mesh_key_new(uint32_t gen, mesh_key_t **out);
/* A data key from its parts (the secret is copied). */
mesh_status_t mesh_key_from(uint32_t gen, const uint8_t file_id[MESH_FILE_ID_BYTES],
                            const uint8_t secret[MESH_KEY_BYTES], mesh_key_t **out);
mesh_key_t *mesh_key_ref(mesh_key_t *k);
/* Drops a reference; the last one cleanses the secret. NULL is fine. */
void mesh_key_unref(mesh_key_t *k);
uint32_t mesh_key_gen(const mesh_key_t *k);
const uint8_t *mesh_key_file_id(const mesh_key_t *k);
const uint8_t *mesh_key_secret(const mesh_key_t *k);
/*
 * The next nonce for sealing under k: a 96-bit counter that starts at a random value when
 * the key is loaded and is incremented atomically, so no two seals of one process share a
 * nonce, and two processes collide only if their ranges overlap (probability about
 * (n1 + n2) / 2^96). Never derived from page numbers or log positions.
 */
void mesh_key_nonce(mesh_key_t *k, uint8_t out[MESH_AEAD_NONCE_BYTES]);

/* The keys of one domain by generation (the domain log looks records' keys up here). */
#define MESH_KEYRING_MAX 3
typedef struct mesh_keyring {
    mesh_key_t *keys[MESH_KEYRING_MAX];
    size_t n;
    uint32_t current; /* generation used for new records */
} mesh_keyring_t;
mesh_key_t *mesh_keyring_get(const mesh_keyring_t *r, uint32_t gen);

/* ---- key-encryption keys ---- */

/*
 * A KEK object may be shared (the node's, used by every domain): a rotation replaces its key
 * in place under its write lock (mesh_kek_write_lock, mesh_kek_assign_locked) while the key
 * file functions below take its read lock, so a key file is always wrapped under one whole
 * KEK, never a mix. The pointer accessors (mesh_kek_id, _kdf, _label) are for KEKs no
 * rotation changes (a clone, a new one); for a shared one use mesh_kek_describe.
 */
typedef struct mesh_kek mesh_kek_t;

/* Scrypt parameters of a passphrase KEK (as stored in key files). */
typedef struct mesh_kdf {
    uint8_t kind; /* 0: none (a raw key), 1: scrypt */
    uint8_t log2_n, r, p;
    uint8_t salt[MESH_KDF_SALT_BYTES];
} mesh_kdf_t;

/* The defaults for a new passphrase KEK: scrypt N=2^16, r=8, p=1 (64 MiB, ~0.2 s), a new
 * random salt. */
void mesh_kdf_default(mesh_kdf_t *out);

/* A KEK from 32 key bytes; label says where it came from (for messages, never the key). */
mesh_status_t mesh_kek_from_bytes(const uint8_t key[MESH_KEY_BYTES], const char *label,
                                  mesh_kek_t **out, mesh_err_t *err);
/* A KEK derived from a passphrase with kdf (kind 1). MESH_INVALID for parameters out of
 * bounds (at most 256 MiB of memory) or a passphrase shorter than 8 bytes. */
mesh_status_t mesh_kek_from_passphrase(const char *pass, size_t n, const mesh_kdf_t *kdf,
                                       const char *label, mesh_kek_t **out, mesh_err_t *err);
void mesh_kek_free(mesh_kek_t *k);
/* Identifier of a KEK: the first 16 bytes of HMAC-SHA256(KEK, "meshd kek id v1"). Reveals
 * nothing about the key; tells which KEK a key file was wrapped with. */
const uint8_t *mesh_kek_id(const mesh_kek_t *k);
/* Its hex form (33 bytes: 32 digits and a NUL). */
void mesh_kek_id_hex(const mesh_kek_t *k, char out[2 * MESH_KEK_ID_BYTES + 1]);
const mesh_kdf_t *mesh_kek_kdf(const mesh_kek_t *k);
const char *mesh_kek_label(const mesh_kek_t *k);
/* Copies of the id (hex) and the label, under the read lock. */
void mesh_kek_describe(const mesh_kek_t *k, char id_hex[2 * MESH_KEK_ID_BYTES + 1], char *label,
                       size_t cap);
/* A private copy (for a rotation: the old key stays usable while the shared one changes). */
mesh_status_t mesh_kek_clone(const mesh_kek_t *k, mesh_kek_t **out, mesh_err_t *err);
void mesh_kek_write_lock(mesh_kek_t *k);
void mesh_kek_write_unlock(mesh_kek_t *k);
/* Replaces k's key, id, KDF and label by from's (k's write lock held). */
void mesh_kek_assign_locked(mesh_kek_t *k, const mesh_kek_t *from);
/* For crypt/ only: the key bytes, and the read lock around every use of them. */
const uint8_t *mesh__kek_secret(const mesh_kek_t *k);
void mesh__kek_rdlock(const mesh_kek_t *k);
void mesh__kek_unlock(const mesh_kek_t *k);

/*
 * Parses key material as given in a KEK file, MESHD_KEK or a command's output: 64 hex
 * digits, or the standard base64 of 32 bytes (44 characters with padding), either with
 * surrounding whitespace; or exactly 32 raw bytes. MESH_INVALID otherwise (the message never
 * quotes the input).
 */
mesh_status_t mesh_kek_parse_text(const uint8_t *p, size_t n, uint8_t out[MESH_KEY_BYTES],
                                  mesh_err_t *err);

/* Splits a command line into argv without a shell: words separated by blanks, '...' and
 * "..." quote (a backslash escapes the next character outside single quotes). At most
 * MESH_KEK_CMD_MAX_ARGS words of a line of at most MESH_KEK_CMD_MAX bytes. argv[i] point
 * into buf (cap bytes, at least n + 1); argv[*argc] = NULL. */
#define MESH_KEK_CMD_MAX      4096
#define MESH_KEK_CMD_MAX_ARGS 64
mesh_status_t mesh_kek_split_command(const char *line, size_t n, char *buf, size_t cap, char **argv,
                                     int *argc, mesh_err_t *err);
/* Runs a command (no shell) and parses its standard output (at most 4 KiB, read within
 * timeout_ns; the command is killed past it) as key material. */
mesh_status_t mesh_kek_run_command(const char *line, int64_t timeout_ns,
                                   uint8_t out[MESH_KEY_BYTES], mesh_err_t *err);

/* Where the node's KEK comes from: at most one of the fields is set. */
typedef struct mesh_kek_source {
    const char *file;            /* a KEK file */
    const char *value;           /* the key text itself (MESHD_KEK) */
    const char *passphrase;      /* a passphrase (MESHD_KEK_PASSPHRASE) */
    const char *passphrase_file; /* a file whose first line is the passphrase */
    const char *command;         /* a command whose output is the key */
    int64_t command_timeout_ns;
} mesh_kek_source_t;

/*
 * Loads the node's KEK. With no source configured, the KEK is DATA/kek.key, generated on
 * the first start of a new data directory (*generated set): encryption stays on, but the
 * key lies beside the data (the caller warns). A passphrase is derived with the scrypt
 * parameters of DATA/catalog.key (new ones for a new data directory). MESH_INVALID when
 * two sources are given or a source is unusable; MESH_NOT_FOUND when the data directory is
 * encrypted (catalog.key exists) but no source is configured and DATA/kek.key is absent.
 */
mesh_status_t mesh_kek_load(const mesh_kek_source_t *src, const char *data_dir, bool *generated,
                            bool *in_data_dir, mesh_kek_t **out, mesh_err_t *err);
/* Writes a new random KEK to path (mode 0600, replacing it atomically) and returns it. */
mesh_status_t mesh_kek_generate_file(const char *path, mesh_kek_t **out, mesh_err_t *err);

/* ---- key files ---- */

#define MESH_KEYFILE_MAX_KEYS  3
#define MESH_KEYFILE_MAX_WRAPS 2
/* header, key entries, wraps (id 16, KDF 4, salt 16, nonce 12, tag 16 and the keys), CRC */
#define MESH_KEYFILE_MAX_BYTES                                                                     \
    (16 + MESH_KEYFILE_MAX_KEYS * 24 +                                                             \
     MESH_KEYFILE_MAX_WRAPS * (64 + MESH_KEYFILE_MAX_KEYS * MESH_KEY_BYTES) + 4)

typedef enum {
    MESH_KEY_CURRENT = 1,
    MESH_KEY_NEXT = 2,
    MESH_KEY_RETIRED = 3,
} mesh_key_state_t;

typedef struct mesh_keyfile {
    char kind; /* 'N' node, 'D' domain */
    size_t nkeys;
    struct {
        uint32_t gen;
        uint8_t state; /* mesh_key_state_t */
        uint8_t file_id[MESH_FILE_ID_BYTES];
        mesh_key_t *key; /* set by mesh_keyfile_unwrap (owned reference) */
    } keys[MESH_KEYFILE_MAX_KEYS];
    size_t nwraps;
    struct {
        uint8_t kek_id[MESH_KEK_ID_BYTES];
        mesh_kdf_t kdf;
        uint8_t nonce[MESH_AEAD_NONCE_BYTES];
        uint8_t sealed[MESH_KEYFILE_MAX_KEYS * MESH_KEY_BYTES];
        uint8_t tag[MESH_AEAD_TAG_BYTES];
    } wraps[MESH_KEYFILE_MAX_WRAPS];
} mesh_keyfile_t;

/* Parses the layout (no key is needed): MESH_CORRUPT with the reason for anything out of
 * shape or a checksum mismatch. kf needs no initialisation and holds no key afterwards. */
mesh_status_t mesh_keyfile_parse(const uint8_t *p, size_t n, mesh_keyfile_t *kf, mesh_err_t *err);
/* Opens the wrap made with kek and sets keys[i].key. MESH_FORBIDDEN when no wrap is for
 * this KEK ("wrong key?"), MESH_CORRUPT when the wrap fails authentication. */
mesh_status_t mesh_keyfile_unwrap(mesh_keyfile_t *kf, const mesh_kek_t *kek, const char *label,
                                  mesh_err_t *err);
/* Encodes kf (its keys[].key must be set) wrapped under each of keks. */
mesh_status_t mesh_keyfile_encode(const mesh_keyfile_t *kf, const mesh_kek_t *const *keks,
                                  size_t nkeks, const char *label, mesh_buf_t *out,
                                  mesh_err_t *err);
/* Drops the key references (cleansing their secrets when last). */
void mesh_keyfile_clear(mesh_keyfile_t *kf);

/* Reads, parses and unwraps path. MESH_NOT_FOUND when it does not exist. *other_kek is set
 * when the file also holds a wrap for another KEK (an interrupted KEK rotation). The error
 * message names the file and, for a wrong KEK, says so plainly. */
mesh_status_t mesh_keyfile_load(const char *path, const mesh_kek_t *kek, const char *label,
                                mesh_keyfile_t *kf, bool *other_kek, mesh_err_t *err);
/* Encodes and writes path atomically (a temporary file, fsync, rename, fsync of the
 * directory), mode 0600. */
mesh_status_t mesh_keyfile_save(const char *path, const mesh_keyfile_t *kf,
                                const mesh_kek_t *const *keks, size_t nkeks, const char *label,
                                mesh_err_t *err);
/* Reads the KEK ids and KDF parameters of a key file without any key (for a passphrase's
 * salt). */
mesh_status_t mesh_keyfile_peek(const char *path, mesh_keyfile_t *kf, mesh_err_t *err);

/* Writes a small file atomically (tmp, fsync, rename, fsync dir) with the given mode. */
mesh_status_t mesh_write_file_atomic(const char *path, const void *p, size_t n, unsigned mode,
                                     mesh_err_t *err);

#endif
