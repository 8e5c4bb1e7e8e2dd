/*
 * encryption.c - the node's side of encryption at rest: its key-encryption key, the
 * catalog's data key, the checks made before anything is written, and KEK rotation.
 *
 * Start (mesh_node_crypt_open, before the catalog is opened): the KEK is loaded from the one
 * configured source (crypt/kek.c), or DATA/kek.key (generated on the first start, with a loud
 * warning at every start while the key lies beside the data). Then every key file of the
 * data directory (DATA/catalog.key, DATA/domains/<name>/key) must open with it: a wrong KEK
 * stops the start with a clear message before any file is created or changed.
 *
 * KEK rotation (mesh_node_rotate_kek) rewrites the key files on disk in two phases while it
 * holds the shared KEK's write lock, so no key file is written meanwhile by a domain (they
 * wait) and none can be wrapped under a KEK the rotation did not see.
 */
#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "crypt/vfs.h"
#include "node/node.h"

/* Overwrites a secret option's text and the environment variable it may have come from. */
static void forget_secret(char *value, const char *env)
{
    if (value)
        mesh_cleanse(value, strlen(value));
    char *e = getenv(env);
    if (e)
        mesh_cleanse(e, strlen(e));
    unsetenv(env);
}

typedef struct keyfile_ref {
    char path[4096];
    char label[96];
} keyfile_ref_t;

/* DATA/catalog.key and every DATA/domains/<name>/key that exists; *n entries, malloc'd. */
static mesh_status_t list_key_files(const char *data_dir, keyfile_ref_t **out, size_t *n,
                                    mesh_err_t *err)
{
    *out = NULL;
    *n = 0;
    size_t cap = 16;
    keyfile_ref_t *v = malloc(cap * sizeof *v);
    if (v == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    snprintf(v[0].path, sizeof v[0].path, "%s/catalog.key", data_dir);
    snprintf(v[0].label, sizeof v[0].label, "catalog");
    size_t k = access(v[0].path, F_OK) == 0 ? 1 : 0;
    char dpath[4096];
    snprintf(dpath, sizeof dpath, "%s/domains", data_dir);
    DIR *d = opendir(dpath);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (!mesh_name_domain_ok(e->d_name))
            continue;
        if (k == cap) {
            cap *= 2;
            keyfile_ref_t *nv = realloc(v, cap * sizeof *nv);
            if (nv == NULL) {
                closedir(d);
                free(v);
                return mesh_err_set(err, MESH_NOMEM, "out of memory");
            }
            v = nv;
        }
        snprintf(v[k].path, sizeof v[k].path, "%s/%s/key", dpath, e->d_name);
        snprintf(v[k].label, sizeof v[k].label, "domain:%s", e->d_name);
        if (access(v[k].path, F_OK) == 0)
            k++;
    }
    if (d)
        closedir(d);
    *out = v;
    *n = k;
    return MESH_OK;
}

/* Every key file opens with the KEK (nothing is written). */
static mesh_status_t check_key_files(mesh_node_t *n, mesh_err_t *err)
{
    keyfile_ref_t *v;
    size_t nf;
    mesh_status_t st = list_key_files(n->opts.data_dir, &v, &nf, err);
    for (size_t i = 0; i < nf && st == MESH_OK; i++) {
        mesh_keyfile_t kf;
        st = mesh_keyfile_load(v[i].path, n->kek, v[i].label, &kf, NULL, err);
        mesh_keyfile_clear(&kf);
    }
    free(v);
    return st;
}

static mesh_status_t open_catalog_key(mesh_node_t *n, mesh_err_t *err)
{
    char kpath[4096], db[4096];
    snprintf(kpath, sizeof kpath, "%s/catalog.key", n->opts.data_dir);
    snprintf(db, sizeof db, "%s/catalog.db", n->opts.data_dir);
    mesh_keyfile_t kf;
    bool other = false;
    const mesh_kek_t *keks[] = {n->kek};
    mesh_status_t st = mesh_keyfile_load(kpath, n->kek, "catalog", &kf, &other, err);
    if (st == MESH_NOT_FOUND) {
        mesh_dbfile_t kind = mesh_crypt_probe(db, NULL);
        if (kind != MESH_DBFILE_ABSENT && kind != MESH_DBFILE_EMPTY)
            return mesh_err_set(err, MESH_CORRUPT,
                                "%s is missing: %s cannot be decrypted without it (restore it "
                                "from where it was backed up)",
                                kpath, db);
        memset(&kf, 0, sizeof kf);
        kf.kind = 'N';
        kf.nkeys = 1;
        kf.keys[0].state = MESH_KEY_CURRENT;
        if (mesh_key_new(0, &kf.keys[0].key) != MESH_OK)
            return mesh_err_set(err, MESH_IO, "no random bytes for a data key");
        memcpy(kf.keys[0].file_id, mesh_key_file_id(kf.keys[0].key), MESH_FILE_ID_BYTES);
        st = mesh_keyfile_save(kpath, &kf, keks, 1, "catalog", err);
    } else if (st == MESH_OK && (kf.kind != 'N' || kf.nkeys != 1)) {
        st = mesh_err_set(err, MESH_CORRUPT, "%s is not the node's key file", kpath);
    } else if (st == MESH_OK && other) {
        /* an interrupted KEK rotation: keep the wrap of the KEK this start was given */
        st = mesh_keyfile_save(kpath, &kf, keks, 1, "catalog", err);
    }
    if (st == MESH_OK) {
        uint8_t fid[MESH_FILE_ID_BYTES];
        if (mesh_crypt_probe(db, fid) == MESH_DBFILE_ENCRYPTED &&
            memcmp(fid, kf.keys[0].file_id, MESH_FILE_ID_BYTES) != 0)
            st = mesh_err_set(err, MESH_CORRUPT, "%s does not belong to %s (another file id)", db,
                              kpath);
    }
    if (st == MESH_OK && (st = mesh_crypt_attach(db, kf.keys[0].key, err)) == MESH_OK) {
        n->catalog_key = mesh_key_ref(kf.keys[0].key);
        n->catalog_attached = true;
        mesh_crypt_set_strict_wal(db); /* no log replays what a cut WAL would drop */
    }
    mesh_keyfile_clear(&kf);
    return st;
}

mesh_status_t mesh_node_crypt_open(mesh_node_t *n, mesh_err_t *err)
{
    const char *dd = n->opts.data_dir;
    char ck[4096], cdb[4096], kk[4096];
    snprintf(ck, sizeof ck, "%s/catalog.key", dd);
    snprintf(cdb, sizeof cdb, "%s/catalog.db", dd);
    snprintf(kk, sizeof kk, "%s/kek.key", dd);
    pthread_mutex_init(&n->rotate_lock, NULL);
    n->rotate_lock_init = true;
    bool kek_given = (n->opts.kek_file && *n->opts.kek_file) || (n->opts.kek && *n->opts.kek) ||
                     (n->opts.kek_passphrase && *n->opts.kek_passphrase) ||
                     (n->opts.kek_passphrase_file && *n->opts.kek_passphrase_file) ||
                     (n->opts.kek_command && *n->opts.kek_command);
    if (n->opts.encryption && strcmp(n->opts.encryption, "off") == 0) {
        forget_secret(n->opts.kek, "MESHD_KEK");
        forget_secret(n->opts.kek_passphrase, "MESHD_KEK_PASSPHRASE");
        if (access(ck, F_OK) == 0)
            return mesh_err_set(err, MESH_INVALID,
                                "%s is encrypted (%s exists): encryption=off cannot open it; "
                                "start meshd with encryption on and its key-encryption key",
                                dd, ck);
        if (kek_given)
            return mesh_err_set(err, MESH_INVALID,
                                "a key-encryption key is configured but encryption=off");
        LOG_WARN("crypt",
                 "encryption at rest is OFF (encryption=off): %s holds every domain's "
                 "data, the catalog and the logs in clear",
                 dd);
        return MESH_OK;
    }
    if (access(ck, F_OK) != 0 && mesh_crypt_probe(cdb, NULL) == MESH_DBFILE_PLAIN)
        return mesh_err_set(err, MESH_INVALID,
                            "%s was created without encryption (%s is in clear) but encryption "
                            "is on: start meshd with encryption=off for this data directory, or "
                            "move its data into a new, encrypted node",
                            dd, cdb);
    mesh_status_t st = mesh_crypt_vfs_init(err);
    if (st != MESH_OK)
        return st;
    mesh_kek_source_t src = {.file = n->opts.kek_file,
                             .value = n->opts.kek,
                             .passphrase = n->opts.kek_passphrase,
                             .passphrase_file = n->opts.kek_passphrase_file,
                             .command = n->opts.kek_command,
                             .command_timeout_ns = n->opts.kek_command_timeout};
    bool generated = false, in_dir = false;
    st = mesh_kek_load(&src, dd, &generated, &in_dir, &n->kek, err);
    forget_secret(n->opts.kek, "MESHD_KEK");
    forget_secret(n->opts.kek_passphrase, "MESHD_KEK_PASSPHRASE");
    if (st != MESH_OK) {
        mesh_err_prefix(err, "key-encryption key: ");
        return st;
    }
    n->kek_in_data_dir = in_dir;
    char id[33];
    mesh_kek_describe(n->kek, id, NULL, 0);
    if (generated)
        LOG_WARN("crypt",
                 "encryption at rest is on, with a NEW key-encryption key generated in %s, BESIDE "
                 "THE DATA: anyone who copies the data directory can decrypt it. Move the key "
                 "off this disk (kek_file on another volume, MESHD_KEK, kek_passphrase_file or "
                 "kek_command for a KMS) with `meshctl keys rotate`, and back it up: without it "
                 "the data cannot be read",
                 kk);
    else if (in_dir)
        LOG_WARN("crypt",
                 "the key-encryption key is %s, BESIDE THE DATA: anyone who copies the data "
                 "directory can decrypt it; move it off this disk with `meshctl keys rotate` "
                 "(docs/security.md)",
                 kk);
    else if (access(kk, F_OK) == 0)
        LOG_WARN("crypt",
                 "%s still holds a key-encryption key beside the data although another one is "
                 "configured; delete it once no key file needs it",
                 kk);
    if ((st = check_key_files(n, err)) != MESH_OK)
        return st;
    if ((st = open_catalog_key(n, err)) != MESH_OK)
        return st;
    mesh_crypt_set_required(true);
    LOG_INFO("crypt", "encryption at rest on (AES-256-GCM), key-encryption key %.12s... from %s",
             id, generated || in_dir ? kk : mesh_kek_label(n->kek));
    return MESH_OK;
}

void mesh_node_crypt_close(mesh_node_t *n)
{
    if (n->catalog_attached) {
        char cdb[4096];
        snprintf(cdb, sizeof cdb, "%s/catalog.db", n->opts.data_dir);
        mesh_crypt_detach(cdb);
        n->catalog_attached = false;
    }
    mesh_key_unref(n->catalog_key);
    n->catalog_key = NULL;
    mesh_kek_free(n->kek);
    n->kek = NULL;
    if (n->rotate_lock_init) {
        pthread_mutex_destroy(&n->rotate_lock);
        n->rotate_lock_init = false;
    }
}

/* Writes the KEK's key to path as hex text (mode 0600, atomically). */
static mesh_status_t save_kek(const mesh_kek_t *k, const char *path, mesh_err_t *err)
{
    char text[2 * MESH_KEY_BYTES + 2];
    mesh__kek_rdlock(k);
    mesh_hex(mesh__kek_secret(k), MESH_KEY_BYTES, text);
    mesh__kek_unlock(k);
    text[2 * MESH_KEY_BYTES] = '\n';
    mesh_status_t st = mesh_write_file_atomic(path, text, 2 * MESH_KEY_BYTES + 1, 0600, err);
    mesh_cleanse(text, sizeof text);
    return st;
}

mesh_status_t mesh_node_rotate_kek(mesh_node_t *n, const mesh_kek_t *next, bool into_data_dir,
                                   mesh_kek_rotation_t *res, mesh_err_t *err)
{
    memset(res, 0, sizeof *res);
    if (n->kek == NULL)
        return mesh_err_set(err, MESH_INVALID, "encryption at rest is off on this node");
    char kk[4096];
    snprintf(kk, sizeof kk, "%s/kek.key", n->opts.data_dir);
    pthread_mutex_lock(&n->rotate_lock);
    mesh_kek_t *old = NULL;
    keyfile_ref_t *files = NULL;
    mesh_keyfile_t *kfs = NULL;
    size_t nf = 0, loaded = 0;
    mesh_status_t st = mesh_kek_clone(n->kek, &old, err);
    if (st != MESH_OK)
        goto out;
    if (memcmp(mesh_kek_id(old), mesh_kek_id(next), MESH_KEK_ID_BYTES) == 0) {
        st = mesh_err_set(err, MESH_INVALID, "the new key-encryption key is the one in use");
        goto out;
    }
    if (into_data_dir && !n->kek_in_data_dir) {
        st = mesh_err_set(err, MESH_INVALID,
                          "a KEK is only generated into the data directory to replace the one "
                          "there; give the new KEK (kek or passphrase) instead");
        goto out;
    }
    mesh_hex(mesh_kek_id(old), MESH_KEK_ID_BYTES, res->previous_kek_id);
    mesh_hex(mesh_kek_id(next), MESH_KEK_ID_BYTES, res->kek_id);
    mesh_kek_write_lock(n->kek); /* key file writes by domains wait from here */
    if ((st = list_key_files(n->opts.data_dir, &files, &nf, err)) != MESH_OK)
        goto unlock;
    if ((kfs = calloc(nf ? nf : 1, sizeof *kfs)) == NULL) {
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
        goto unlock;
    }
    for (loaded = 0; loaded < nf; loaded++)
        if ((st = mesh_keyfile_load(files[loaded].path, old, files[loaded].label, &kfs[loaded],
                                    NULL, err)) != MESH_OK)
            goto unlock; /* nothing written yet */
    /* phase 1: under both (a crash here: every file opens with the old KEK) */
    const mesh_kek_t *both[] = {old, next}, *only_old[] = {old}, *only_next[] = {next};
    size_t done = 0;
    for (; done < nf && st == MESH_OK; done++)
        st = mesh_keyfile_save(files[done].path, &kfs[done], both, 2, files[done].label, err);
    if (st == MESH_OK && into_data_dir)
        st = save_kek(next, kk, err);
    if (st != MESH_OK) {
        for (size_t i = 0; i < done; i++)
            mesh_keyfile_save(files[i].path, &kfs[i], only_old, 1, files[i].label, NULL);
        goto unlock;
    }
    /* phase 2: under the new KEK only (a crash here: every file opens with the new one) */
    mesh_err_t e2;
    size_t failed = 0;
    for (size_t i = 0; i < nf; i++)
        if (mesh_keyfile_save(files[i].path, &kfs[i], only_next, 1, files[i].label, &e2) !=
            MESH_OK) {
            LOG_WARN("crypt", "KEK rotation: %s keeps its old wrap until the next start: %s",
                     files[i].path, e2.msg);
            failed++;
        }
    mesh_kek_assign_locked(n->kek, next);
    res->key_files = nf;
    res->in_data_dir = into_data_dir;
    if (n->kek_in_data_dir && !into_data_dir) {
        /* the old KEK beside the data is no longer needed by any key file */
        if (unlink(kk) != 0 && errno != ENOENT)
            LOG_WARN("crypt", "KEK rotation: could not delete %s: %s", kk, strerror(errno));
        mesh_fsync_dir(n->opts.data_dir);
        n->kek_in_data_dir = false;
    }
    LOG_INFO("crypt",
             "key-encryption key rotated: %zu key files now wrapped under KEK %.12s... (was "
             "%.12s...)%s",
             nf, res->kek_id, res->previous_kek_id,
             failed ? "; some keep the old wrap too, see above" : "");
unlock:
    mesh_kek_write_unlock(n->kek);
out:
    for (size_t i = 0; i < loaded; i++)
        mesh_keyfile_clear(&kfs[i]);
    free(kfs);
    free(files);
    mesh_kek_free(old);
    pthread_mutex_unlock(&n->rotate_lock);
    return st;
}

mesh_status_t mesh_audit_keys_from_node_key(const mesh_key_t *node_key, mesh_audit_keys_t *out,
                                            mesh_err_t *err)
{
    static const char label[] = "meshd audit master key v1";
    uint8_t master[MESH_AUDIT_KEY_LEN];
    unsigned int len = sizeof master;
    if (HMAC(EVP_sha256(), mesh_key_secret(node_key), MESH_KEY_BYTES, (const unsigned char *)label,
             sizeof label - 1, master, &len) == NULL)
        return mesh_err_set(err, MESH_INTERNAL, "cannot derive the audit key");
    mesh_audit_keys_derive(master, out);
    mesh_cleanse(master, sizeof master);
    return MESH_OK;
}

mesh_status_t mesh_audit_keys_offline(const char *data_dir, const mesh_kek_source_t *src,
                                      mesh_audit_keys_t *out, mesh_err_t *err)
{
    char ck[4096];
    snprintf(ck, sizeof ck, "%s/catalog.key", data_dir);
    if (access(ck, F_OK) != 0) {
        char ak[4096];
        snprintf(ak, sizeof ak, "%s/audit/key", data_dir);
        return mesh_audit_key_load(ak, false, out, err);
    }
    bool generated = false, in_dir = false;
    mesh_kek_t *kek = NULL;
    mesh_status_t st = mesh_kek_load(src, data_dir, &generated, &in_dir, &kek, err);
    if (st != MESH_OK) {
        mesh_err_prefix(err, "key-encryption key: ");
        return st;
    }
    mesh_keyfile_t kf;
    memset(&kf, 0, sizeof kf);
    st = mesh_keyfile_load(ck, kek, "catalog", &kf, NULL, err);
    if (st == MESH_OK && (kf.kind != 'N' || kf.nkeys != 1 || kf.keys[0].key == NULL))
        st = mesh_err_set(err, MESH_CORRUPT, "%s is not the node's key file", ck);
    if (st == MESH_OK)
        st = mesh_audit_keys_from_node_key(kf.keys[0].key, out, err);
    mesh_keyfile_clear(&kf);
    mesh_kek_free(kek);
    return st;
}
