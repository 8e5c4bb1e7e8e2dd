/*
 * registry.c - open domains and reference-counted snapshots of them.
 */
#define _XOPEN_SOURCE 700
#include "catalog/registry.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"

struct mesh_dhandle {
    mesh_domain_t *d;
    _Atomic int refs;
    bool deleted;
    char dir[4096];
};

struct mesh_registry {
    char *data_dir;
    mesh_catalog_t *cat;
    mesh_domain_opts_t opts;
    pthread_mutex_t lock; /* guards the fields below */
    mesh_dhandle_t **handles;
    mesh_domain_meta_t *metas;
    size_t n, cap;
    mesh_snapshot_t *current;
    uint64_t gen;
    bool ready; /* domain callbacks rebuild snapshots only after open */
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void handle_put(mesh_dhandle_t *h)
{
    if (h == NULL || atomic_fetch_sub(&h->refs, 1) != 1)
        return;
    mesh_domain_close(h->d);
    if (h->deleted) {
        if (nftw(h->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
            LOG_WARN("registry", "could not remove %s: %s", h->dir, strerror(errno));
        else
            LOG_INFO("registry", "removed %s", h->dir);
    }
    free(h);
}

static mesh_dhandle_t *handle_get(mesh_dhandle_t *h)
{
    atomic_fetch_add(&h->refs, 1);
    return h;
}

void mesh_snapshot_put(mesh_snapshot_t *s)
{
    if (s == NULL || atomic_fetch_sub((_Atomic int *)&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->ndoms; i++) {
        mesh_snap_domain_t *sd = &s->doms[i];
        for (size_t k = 0; k < sd->ncrefs; k++)
            mesh_cref_put(sd->crefs[k]);
        free(sd->crefs);
        mesh_domain_meta_free(&sd->meta);
        handle_put(sd->handle);
    }
    free(s->doms);
    free(s);
}

const mesh_snap_domain_t *mesh_snapshot_domain(const mesh_snapshot_t *s, const char *name)
{
    size_t lo = 0, hi = s->ndoms;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(s->doms[mid].meta.name, name);
        if (c == 0)
            return &s->doms[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const mesh_product_t *mesh_snapshot_product(const mesh_snapshot_t *s, const char *domain,
                                            const char *product)
{
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, domain);
    if (sd == NULL)
        return NULL;
    for (size_t k = 0; k < sd->ncrefs; k++) {
        const mesh_product_t *p = mesh_contract_product(sd->crefs[k]->c, product);
        if (p)
            return p;
    }
    return NULL;
}

const mesh_product_t *mesh_snapshot_lookup(void *snapshot, const char *domain, const char *product)
{
    return mesh_snapshot_product(snapshot, domain, product);
}

static int meta_cmp(const void *a, const void *b)
{
    const mesh_snap_domain_t *x = a, *y = b;
    return strcmp(x->meta.name, y->meta.name);
}

/* Builds a new snapshot from the registry's state. Called with r->lock held. */
static void rebuild_locked(mesh_registry_t *r)
{
    mesh_snapshot_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return;
    s->refs = 1;
    s->gen = ++r->gen;
    s->doms = calloc(r->n ? r->n : 1, sizeof *s->doms);
    if (s->doms == NULL) {
        free(s);
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        mesh_snap_domain_t *sd = &s->doms[s->ndoms];
        if (mesh_domain_meta_copy(&r->metas[i], &sd->meta) != MESH_OK)
            continue;
        if (mesh_domain_contracts(r->handles[i]->d, &sd->crefs, &sd->ncrefs) != MESH_OK) {
            mesh_domain_meta_free(&sd->meta);
            continue;
        }
        sd->handle = handle_get(r->handles[i]);
        sd->dom = r->handles[i]->d;
        s->ndoms++;
    }
    qsort(s->doms, s->ndoms, sizeof *s->doms, meta_cmp);
    mesh_snapshot_t *old = r->current;
    r->current = s;
    mesh_snapshot_put(old);
}

static void domain_changed(void *arg, mesh_domain_t *d)
{
    (void)d;
    mesh_registry_t *r = arg;
    pthread_mutex_lock(&r->lock);
    if (r->ready)
        rebuild_locked(r);
    pthread_mutex_unlock(&r->lock);
}

mesh_snapshot_t *mesh_registry_snapshot(mesh_registry_t *r)
{
    pthread_mutex_lock(&r->lock);
    mesh_snapshot_t *s = r->current;
    atomic_fetch_add((_Atomic int *)&s->refs, 1);
    pthread_mutex_unlock(&r->lock);
    return s;
}

static mesh_status_t open_domain_at(mesh_registry_t *r, const char *name, const char *dir,
                                    mesh_dhandle_t **out, mesh_err_t *err)
{
    mesh_dhandle_t *h = calloc(1, sizeof *h);
    if (h == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    if (dir)
        snprintf(h->dir, sizeof h->dir, "%s", dir);
    else
        snprintf(h->dir, sizeof h->dir, "%s/domains/%s", r->data_dir, name);
    h->refs = 1;
    mesh_status_t st = mesh_domain_open(h->dir, name, &r->opts, domain_changed, r, &h->d, err);
    if (st != MESH_OK) {
        free(h);
        return st;
    }
    *out = h;
    return MESH_OK;
}

static mesh_status_t open_domain(mesh_registry_t *r, const char *name, mesh_dhandle_t **out,
                                 mesh_err_t *err)
{
    return open_domain_at(r, name, NULL, out, err);
}

static mesh_status_t add_locked(mesh_registry_t *r, mesh_dhandle_t *h, mesh_domain_meta_t *m)
{
    if (r->n == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 8;
        mesh_dhandle_t **nh = realloc(r->handles, ncap * sizeof *nh);
        if (nh == NULL)
            return MESH_NOMEM;
        r->handles = nh;
        mesh_domain_meta_t *nm = realloc(r->metas, ncap * sizeof *nm);
        if (nm == NULL)
            return MESH_NOMEM;
        r->metas = nm;
        r->cap = ncap;
    }
    r->handles[r->n] = h;
    r->metas[r->n] = *m; /* takes ownership */
    r->n++;
    return MESH_OK;
}

mesh_status_t mesh_registry_open(const char *data_dir, mesh_catalog_t *cat,
                                 const mesh_domain_opts_t *opts, mesh_registry_t **out,
                                 mesh_err_t *err)
{
    mesh_registry_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    pthread_mutex_init(&r->lock, NULL);
    r->cat = cat;
    if (opts)
        r->opts = *opts;
    mesh_status_t st;
    if ((r->data_dir = strdup(data_dir)) == NULL) {
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
        goto err;
    }
    mesh_domain_meta_t *metas;
    size_t n;
    if ((st = mesh_catalog_domains(cat, &metas, &n, err)) != MESH_OK)
        goto err;
    for (size_t i = 0; i < n; i++) {
        mesh_dhandle_t *h = NULL;
        if (st == MESH_OK)
            st = open_domain(r, metas[i].name, &h, err);
        if (st == MESH_OK && (st = add_locked(r, h, &metas[i])) == MESH_OK)
            continue;
        handle_put(h);
        mesh_domain_meta_free(&metas[i]);
    }
    free(metas);
    if (st != MESH_OK)
        goto err;
    pthread_mutex_lock(&r->lock);
    r->ready = true;
    rebuild_locked(r);
    pthread_mutex_unlock(&r->lock);
    if (r->current == NULL) {
        st = mesh_err_set(err, MESH_NOMEM, "out of memory");
        goto err;
    }
    *out = r;
    return MESH_OK;
err:
    mesh_registry_close(r);
    return st;
}

void mesh_registry_close(mesh_registry_t *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    r->ready = false;
    mesh_snapshot_t *s = r->current;
    r->current = NULL;
    pthread_mutex_unlock(&r->lock);
    mesh_snapshot_put(s);
    for (size_t i = 0; i < r->n; i++) {
        handle_put(r->handles[i]);
        mesh_domain_meta_free(&r->metas[i]);
    }
    free(r->handles);
    free(r->metas);
    free(r->data_dir);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

mesh_status_t mesh_registry_create_domain(mesh_registry_t *r, const mesh_domain_meta_t *m,
                                          mesh_err_t *err)
{
    if (!mesh_name_domain_ok(m->name))
        return mesh_err_set(err, MESH_INVALID,
                            "invalid domain name '%s': use 1-63 of a-z, 0-9, '_' and '-', "
                            "starting with a letter",
                            m->name);
    if (strcmp(m->name, "system") == 0) /* SQL's schema of system tables (system.audit) */
        return mesh_err_set(err, MESH_INVALID, "the domain name 'system' is reserved");
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->metas[i].name, m->name) == 0) {
            pthread_mutex_unlock(&r->lock);
            return mesh_err_set(err, MESH_CONFLICT, "domain '%s' already exists", m->name);
        }
    }
    pthread_mutex_unlock(&r->lock);
    mesh_domain_meta_t copy;
    if (mesh_domain_meta_copy(m, &copy) != MESH_OK)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    mesh_dhandle_t *h = NULL;
    mesh_status_t st = mesh_catalog_domain_put(r->cat, m, err);
    if (st == MESH_OK)
        st = open_domain(r, m->name, &h, err);
    if (st == MESH_OK) {
        pthread_mutex_lock(&r->lock);
        st = add_locked(r, h, &copy);
        if (st == MESH_OK)
            rebuild_locked(r);
        pthread_mutex_unlock(&r->lock);
        if (st != MESH_OK)
            mesh_err_set(err, st, "out of memory");
    } else if (st != MESH_CONFLICT) {
        mesh_catalog_domain_delete(r->cat, m->name, NULL);
    }
    if (st != MESH_OK) {
        handle_put(h);
        mesh_domain_meta_free(&copy);
    } else {
        LOG_INFO("registry", "domain %s created", m->name);
    }
    return st;
}

mesh_status_t mesh_registry_set_domain_hosts(mesh_registry_t *r, const mesh_domain_meta_t *m,
                                             mesh_err_t *err)
{
    char **hv = m->nhosts ? calloc(m->nhosts, sizeof *hv) : NULL;
    if (m->nhosts && hv == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    size_t nh = 0;
    for (; nh < m->nhosts; nh++)
        if ((hv[nh] = strdup(m->hosts[nh])) == NULL)
            break;
    mesh_status_t st = nh == m->nhosts ? MESH_OK : mesh_err_set(err, MESH_NOMEM, "out of memory");
    pthread_mutex_lock(&r->lock);
    size_t i = 0;
    while (st == MESH_OK && i < r->n && strcmp(r->metas[i].name, m->name) != 0)
        i++;
    if (st == MESH_OK && i == r->n)
        st = mesh_err_set(err, MESH_NOT_FOUND, "no domain '%s'", m->name);
    if (st == MESH_OK)
        st = mesh_catalog_domain_set_hosts(r->cat, m, err);
    if (st == MESH_OK) {
        mesh_domain_meta_t *x = &r->metas[i];
        for (size_t k = 0; k < x->nhosts; k++)
            free(x->hosts[k]);
        free(x->hosts);
        x->hosts = hv;
        x->nhosts = nh;
        hv = NULL;
        snprintf(x->replication, sizeof x->replication, "%s",
                 m->replication[0] ? m->replication : "none");
        rebuild_locked(r);
    }
    pthread_mutex_unlock(&r->lock);
    for (size_t k = 0; hv && k < nh; k++)
        free(hv[k]);
    free(hv);
    return st;
}

mesh_status_t mesh_registry_delete_domain(mesh_registry_t *r, const char *name, bool force,
                                          mesh_err_t *err)
{
    pthread_mutex_lock(&r->lock);
    size_t i = 0;
    while (i < r->n && strcmp(r->metas[i].name, name) != 0)
        i++;
    if (i == r->n) {
        pthread_mutex_unlock(&r->lock);
        return mesh_err_set(err, MESH_NOT_FOUND, "no domain '%s'", name);
    }
    mesh_cref_t **crefs;
    size_t nc = 0;
    if (mesh_domain_contracts(r->handles[i]->d, &crefs, &nc) == MESH_OK) {
        size_t nprod = 0;
        for (size_t k = 0; k < nc; k++) {
            nprod += crefs[k]->c->nproducts;
            mesh_cref_put(crefs[k]);
        }
        free(crefs);
        if (nprod && !force) {
            pthread_mutex_unlock(&r->lock);
            return mesh_err_set(err, MESH_CONFLICT,
                                "domain '%s' has %zu product(s); delete them first or force the "
                                "deletion (its data is removed)",
                                name, nprod);
        }
    }
    mesh_status_t st = mesh_catalog_domain_delete(r->cat, name, err);
    if (st != MESH_OK) {
        pthread_mutex_unlock(&r->lock);
        return st;
    }
    mesh_dhandle_t *h = r->handles[i];
    h->deleted = true;
    mesh_domain_meta_free(&r->metas[i]);
    r->handles[i] = r->handles[r->n - 1];
    r->metas[i] = r->metas[r->n - 1];
    r->n--;
    rebuild_locked(r);
    pthread_mutex_unlock(&r->lock);
    handle_put(h);
    LOG_INFO("registry", "domain %s deleted", name);
    return MESH_OK;
}

mesh_status_t mesh_registry_replace_domain(mesh_registry_t *r, const char *name, const char *dir,
                                           void (*prepare)(void *arg, mesh_domain_t *d), void *arg,
                                           mesh_err_t *err)
{
    pthread_mutex_lock(&r->lock);
    size_t i = 0;
    while (i < r->n && strcmp(r->metas[i].name, name) != 0)
        i++;
    pthread_mutex_unlock(&r->lock);
    if (i == r->n)
        return mesh_err_set(err, MESH_NOT_FOUND, "no domain '%s'", name);
    mesh_dhandle_t *h = NULL;
    mesh_status_t st = open_domain_at(r, name, dir, &h, err);
    if (st != MESH_OK)
        return st;
    if (prepare)
        prepare(arg, h->d); /* before any snapshot shows it */
    pthread_mutex_lock(&r->lock);
    i = 0;
    while (i < r->n && strcmp(r->metas[i].name, name) != 0)
        i++;
    mesh_dhandle_t *old = NULL;
    if (i < r->n) {
        old = r->handles[i];
        old->deleted = true; /* its directory goes once the last request using it ends */
        r->handles[i] = h;
        rebuild_locked(r);
    }
    pthread_mutex_unlock(&r->lock);
    if (old == NULL) { /* deleted meanwhile */
        h->deleted = true;
        handle_put(h);
        return mesh_err_set(err, MESH_NOT_FOUND, "domain '%s' was deleted", name);
    }
    handle_put(old);
    LOG_INFO("registry", "domain %s now served from %s", name, dir);
    return MESH_OK;
}
