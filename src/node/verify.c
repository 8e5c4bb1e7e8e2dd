/*
 * verify.c - `meshd --verify`: an offline check of a data directory, read-only.
 *
 * Reading every page through the encrypting VFS authenticates it (a damaged, moved or
 * foreign page fails), and SQLite's integrity_check then checks the structure; every log
 * record is checked and authenticated without opening the log for writing (a torn tail is
 * reported, not cut). Databases are opened read-only, so nothing is changed (a WAL left by a
 * crash is read, not checkpointed).
 */
#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "crypt/vfs.h"
#include "node/node.h"
#include "store/dlog.h"

/* integrity_check of path (through its attached key, if any): 0 ok, 3 damaged. Lists the
 * tables in tables (cap bytes). */
static int check_db(const char *path, FILE *out, const char *what, char *tables, size_t cap)
{
    sqlite3 *db;
    mesh_err_t err;
    tables[0] = '\0';
    if (mesh_crypt_sqlite_open(path, SQLITE_OPEN_READONLY, &db, &err) != MESH_OK) {
        fprintf(out, "%s: DAMAGED: %s\n", what, err.msg);
        return 3;
    }
    sqlite3_stmt *q;
    int rc = 0;
    int64_t pages = 0;
    mesh_crypt_failure_clear();
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check(5)", -1, &q, NULL) != SQLITE_OK) {
        fprintf(out, "%s: DAMAGED: %s\n", what, mesh_crypt_errmsg(db));
        sqlite3_close(db);
        return 3;
    }
    int step;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(q, 0);
        if (r && strcmp(r, "ok") != 0) {
            fprintf(out, "%s: DAMAGED: %s\n", what, r);
            rc = 3;
        }
    }
    if (step != SQLITE_DONE) {
        fprintf(out, "%s: DAMAGED: %s\n", what, mesh_crypt_errmsg(db));
        rc = 3;
    }
    sqlite3_finalize(q);
    if (rc == 0 && sqlite3_prepare_v2(db, "PRAGMA page_count", -1, &q, NULL) == SQLITE_OK) {
        if (sqlite3_step(q) == SQLITE_ROW)
            pages = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    if (rc == 0 && sqlite3_prepare_v2(db,
                                      "SELECT name FROM sqlite_schema WHERE type = 'table' "
                                      "ORDER BY name",
                                      -1, &q, NULL) == SQLITE_OK) {
        size_t len = 0;
        while (sqlite3_step(q) == SQLITE_ROW && len + 2 < cap)
            len += (size_t)snprintf(tables + len, cap - len, "%s%s", len ? " " : "",
                                    (const char *)sqlite3_column_text(q, 0));
        sqlite3_finalize(q);
    }
    sqlite3_close(db);
    if (rc == 0)
        fprintf(out, "%s: ok (%lld pages)\n", what, (long long)pages);
    return rc;
}

static int check_domain(mesh_node_t *n, const char *name, FILE *out)
{
    char dir[4096], kpath[4200], db[4200], logdir[4200], label[96], what[160];
    mesh__node_bootstrap_domain_dir(n, name, dir, sizeof dir); /* a bootstrap's copy */
    snprintf(kpath, sizeof kpath, "%s/key", dir);
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    snprintf(label, sizeof label, "domain:%s", name);
    snprintf(db, sizeof db, "%s/data.db", dir);
    mesh_keyfile_t kf;
    memset(&kf, 0, sizeof kf);
    mesh_keyring_t ring;
    memset(&ring, 0, sizeof ring);
    mesh_err_t err;
    mesh_key_t *cur = NULL;
    if (n->kek) {
        if (mesh_keyfile_load(kpath, n->kek, label, &kf, NULL, &err) != MESH_OK) {
            fprintf(out, "domain %s: key file: %s\n", name, err.msg);
            return err.code == MESH_CORRUPT ? 3 : 2;
        }
        for (size_t i = 0; i < kf.nkeys; i++) {
            if (kf.keys[i].state == MESH_KEY_NEXT)
                continue;
            ring.keys[ring.n++] = kf.keys[i].key;
            if (kf.keys[i].state == MESH_KEY_CURRENT) {
                ring.current = kf.keys[i].gen;
                cur = kf.keys[i].key;
                if (kf.keys[i].gen)
                    snprintf(db, sizeof db, "%s/data.%u.db", dir, (unsigned)kf.keys[i].gen);
            }
        }
        if (mesh_crypt_attach(db, cur, &err) != MESH_OK) {
            fprintf(out, "domain %s: %s\n", name, err.msg);
            mesh_keyfile_clear(&kf);
            return 2;
        }
    }
    char tables[2048];
    snprintf(what, sizeof what, "domain %s: %s", name, strrchr(db, '/') + 1);
    int rc = access(db, F_OK) == 0 ? check_db(db, out, what, tables, sizeof tables) : 0;
    if (rc == 0 && tables[0])
        fprintf(out, "domain %s: tables: %s\n", name, tables);
    if (n->kek)
        mesh_crypt_detach(db);
    uint64_t records = 0, torn = 0;
    if (mesh_dlog_check(logdir, n->kek ? &ring : NULL, &records, &torn, &err) != MESH_OK) {
        fprintf(out, "domain %s: log: DAMAGED: %s\n", name, err.msg);
        rc = 3;
    } else {
        fprintf(out, "domain %s: log: ok (%llu records%s)\n", name, (unsigned long long)records,
                torn ? ", and a torn write at the end, cut at the next start" : "");
    }
    mesh_keyfile_clear(&kf);
    return rc;
}

/* The catalog version of path (catalog.h), read-only; -1 when it cannot be read. */
static int64_t catalog_version(const char *path)
{
    sqlite3 *db;
    mesh_err_t err;
    int64_t v = -1;
    if (mesh_crypt_sqlite_open(path, SQLITE_OPEN_READONLY, &db, &err) != MESH_OK)
        return -1;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'catalog_version'", -1, &q,
                           NULL) == SQLITE_OK) {
        v = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
        sqlite3_finalize(q);
    }
    sqlite3_close(db);
    return v;
}

/* The audit log's chain, MACs and sealed records (read-only): 0 ok, 3 damaged. *cat_version:
 * the newest catalog version it records. */
static int check_audit(mesh_node_t *n, FILE *out, int64_t *cat_version)
{
    char dir[4096], kpath[4200];
    snprintf(dir, sizeof dir, "%s/audit", n->opts.data_dir);
    if (access(dir, F_OK) != 0)
        return 0;
    mesh_audit_keys_t keys;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st;
    if (n->catalog_key != NULL) {
        st = mesh__node_audit_keys(n, &keys, &err);
    } else {
        snprintf(kpath, sizeof kpath, "%s/key", dir);
        st = mesh_audit_key_load(kpath, false, &keys, &err);
    }
    if (st != MESH_OK) {
        fprintf(out, "audit log: DAMAGED: its key: %s\n", err.msg);
        return 3;
    }
    mesh_audit_verify_t v;
    st = mesh_audit_verify_dir(dir, &keys, NULL, &v, &err);
    mesh_audit_keys_wipe(&keys);
    *cat_version = v.catalog_version;
    if (st == MESH_NOT_FOUND)
        return 0;
    if (st == MESH_CORRUPT) {
        fprintf(out, "audit log: DAMAGED: %s offset %llu seq %llu: %s (%s)\n", v.file,
                (unsigned long long)v.offset, (unsigned long long)v.seq,
                mesh_audit_fault_name(v.fault), v.reason);
        return 3;
    }
    if (st != MESH_OK) {
        fprintf(out, "audit log: DAMAGED: %s\n", err.msg);
        return 3;
    }
    fprintf(out, "audit log: ok (%llu records in %llu segments, seq %llu..%llu%s)\n",
            (unsigned long long)v.records, (unsigned long long)v.segments,
            (unsigned long long)v.first_seq, (unsigned long long)v.last_seq,
            v.torn_bytes ? ", and a torn write at the end, cut at the next start" : "");
    return 0;
}

int mesh_node_verify(mesh_node_t *n, FILE *out)
{
    mesh_err_t err;
    mesh_err_clear(&err);
    if (access(n->opts.data_dir, F_OK) != 0) {
        fprintf(out, "verify: %s does not exist\n", n->opts.data_dir);
        return 2;
    }
    if (mesh__node_lock_data_dir(n->opts.data_dir, &err) != MESH_OK) {
        fprintf(out, "verify: %s\n", err.msg);
        return 2;
    }
    if (mesh_node_crypt_open(n, &err) != MESH_OK) {
        fprintf(out, "verify: %s\n", err.msg);
        mesh_node_crypt_close(n); /* what the failed open loaded (the KEK) */
        return 2;
    }
    int rc = 0, r;
    char cdb[4096], tables[2048];
    snprintf(cdb, sizeof cdb, "%s/catalog.db", n->opts.data_dir);
    if (access(cdb, F_OK) == 0 && (r = check_db(cdb, out, "catalog.db", tables, sizeof tables)))
        rc = r;
    char dpath[4096];
    snprintf(dpath, sizeof dpath, "%s/domains", n->opts.data_dir);
    DIR *d = opendir(dpath);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (!mesh_name_domain_ok(e->d_name))
            continue;
        if ((r = check_domain(n, e->d_name, out)) > rc)
            rc = r;
    }
    if (d)
        closedir(d);
    int64_t witness = 0;
    if ((r = check_audit(n, out, &witness)) > rc)
        rc = r;
    /* the catalog witness (docs/security.md): a catalog older than the audit log says */
    int64_t have = access(cdb, F_OK) == 0 ? catalog_version(cdb) : 0;
    if (have >= 0 && have < witness) {
        fprintf(out,
                "catalog.db: ROLLED BACK: catalog version %lld, but the audit log records "
                "version %lld: committed changes (tokens, principals, policies) were lost; "
                "restore the catalog from a backup, or accept the loss with meshd "
                "--accept-catalog-rollback\n",
                (long long)have, (long long)witness);
        rc = 3;
    } else if (have >= 0 && witness > 0) {
        fprintf(out, "catalog.db: version %lld, not older than the audit log's %lld: ok\n",
                (long long)have, (long long)witness);
    }
    mesh_node_crypt_close(n);
    fprintf(out, "verify: %s\n", rc == 0 ? "ok" : rc == 3 ? "DAMAGE FOUND" : "failed");
    return rc;
}
