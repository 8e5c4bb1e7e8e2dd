/*
 * governance.c - catalog.db's governance table (see governance.h).
 */
#include "catalog/governance.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "catalog/internal.h"

mesh_status_t mesh__catalog_gov_init(mesh_catalog_t *c, mesh_err_t *err)
{
    sqlite3 *db = mesh__catalog_db(c);
    if (sqlite3_exec(db,
                     "CREATE TABLE IF NOT EXISTS governance(domain TEXT NOT NULL,"
                     " product TEXT NOT NULL, retention_ns INTEGER NOT NULL,"
                     " hold INTEGER NOT NULL, hold_reason TEXT NOT NULL,"
                     " residency_local INTEGER NOT NULL, updated_ns INTEGER NOT NULL,"
                     " updated_by TEXT NOT NULL, PRIMARY KEY(domain, product)) STRICT,"
                     " WITHOUT ROWID;",
                     NULL, NULL, NULL) != SQLITE_OK)
        return mesh__catalog_err(db, err, "schema");
    return MESH_OK;
}

static void defaults(mesh_gov_rec_t *r, const char *domain, const char *product)
{
    memset(r, 0, sizeof *r);
    snprintf(r->domain, sizeof r->domain, "%s", domain);
    snprintf(r->product, sizeof r->product, "%s", product ? product : "");
    r->retention_ns = -1;
}

mesh_status_t mesh_catalog_gov_get(mesh_catalog_t *c, const char *domain, const char *product,
                                   mesh_gov_rec_t *out, mesh_err_t *err)
{
    defaults(out, domain, product);
    sqlite3 *db = mesh__catalog_db(c);
    pthread_mutex_lock(mesh__catalog_lock(c));
    sqlite3_stmt *q = NULL;
    mesh_status_t st = MESH_OK;
    if (sqlite3_prepare_v2(db,
                           "SELECT retention_ns, hold, hold_reason, residency_local, updated_ns,"
                           " updated_by FROM governance WHERE domain = ?1 AND product = ?2",
                           -1, &q, NULL) != SQLITE_OK) {
        st = mesh__catalog_err(db, err, "governance");
        goto out;
    }
    sqlite3_bind_text(q, 1, domain, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, product ? product : "", -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        out->retention_ns = sqlite3_column_int64(q, 0);
        out->hold = sqlite3_column_int(q, 1) != 0;
        snprintf(out->hold_reason, sizeof out->hold_reason, "%s",
                 (const char *)sqlite3_column_text(q, 2));
        out->residency_local = sqlite3_column_int(q, 3) != 0;
        out->updated_ns = sqlite3_column_int64(q, 4);
        snprintf(out->updated_by, sizeof out->updated_by, "%s",
                 (const char *)sqlite3_column_text(q, 5));
    } else if (rc != SQLITE_DONE) {
        st = mesh__catalog_err(db, err, "governance");
    }
out:
    sqlite3_finalize(q);
    pthread_mutex_unlock(mesh__catalog_lock(c));
    return st;
}

mesh_status_t mesh_catalog_gov_put(mesh_catalog_t *c, const mesh_gov_rec_t *r, mesh_err_t *err)
{
    sqlite3 *db = mesh__catalog_db(c);
    pthread_mutex_lock(mesh__catalog_lock(c));
    sqlite3_stmt *q = NULL;
    mesh_status_t st = MESH_OK;
    if (sqlite3_prepare_v2(db,
                           "INSERT OR REPLACE INTO governance(domain, product, retention_ns, hold,"
                           " hold_reason, residency_local, updated_ns, updated_by)"
                           " VALUES (?,?,?,?,?,?,?,?)",
                           -1, &q, NULL) != SQLITE_OK) {
        st = mesh__catalog_err(db, err, "governance");
        goto out;
    }
    sqlite3_bind_text(q, 1, r->domain, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, r->product, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, r->retention_ns);
    sqlite3_bind_int(q, 4, r->hold);
    sqlite3_bind_text(q, 5, r->hold_reason, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 6, r->residency_local);
    sqlite3_bind_int64(q, 7, r->updated_ns);
    sqlite3_bind_text(q, 8, r->updated_by, -1, SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_DONE)
        st = mesh__catalog_err(db, err, "governance");
out:
    sqlite3_finalize(q);
    pthread_mutex_unlock(mesh__catalog_lock(c));
    return st;
}

mesh_status_t mesh_catalog_gov_effective(mesh_catalog_t *c, const mesh_product_t *p,
                                         mesh_gov_effective_t *out, mesh_err_t *err)
{
    memset(out, 0, sizeof *out);
    out->retention_ns = p->retention_ns;
    out->residency_local = p->residency_local;
    mesh_gov_rec_t dom, prod;
    mesh_status_t st = mesh_catalog_gov_get(c, p->domain, "", &dom, err);
    if (st == MESH_OK)
        st = mesh_catalog_gov_get(c, p->domain, p->name, &prod, err);
    if (st != MESH_OK) {
        out->held = true; /* unknown: nothing is deleted */
        snprintf(out->held_on, sizeof out->held_on, "(the catalog could not be read)");
        out->residency_local = true;
        return st;
    }
    if (dom.retention_ns >= 0)
        out->retention_ns = dom.retention_ns;
    if (prod.retention_ns >= 0)
        out->retention_ns = prod.retention_ns;
    out->residency_local |= dom.residency_local || prod.residency_local;
    const mesh_gov_rec_t *h = dom.hold ? &dom : prod.hold ? &prod : NULL;
    if (h) {
        out->held = true;
        if (h == &dom)
            snprintf(out->held_on, sizeof out->held_on, "domain %s", p->domain);
        else
            snprintf(out->held_on, sizeof out->held_on, "product %s.%s", p->domain, p->name);
        snprintf(out->hold_reason, sizeof out->hold_reason, "%s", h->hold_reason);
    }
    return MESH_OK;
}

bool mesh_residency_local(mesh_catalog_t *c, const mesh_product_t *p)
{
    mesh_gov_effective_t e;
    mesh_err_t err;
    if (mesh_catalog_gov_effective(c, p, &e, &err) != MESH_OK)
        return true;
    return e.residency_local;
}

bool mesh_residency_domain_local(mesh_catalog_t *c, const char *domain)
{
    mesh_gov_rec_t r;
    mesh_err_t err;
    if (mesh_catalog_gov_get(c, domain, "", &r, &err) != MESH_OK)
        return true;
    return r.residency_local;
}
