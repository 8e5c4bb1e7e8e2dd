/*
 * derive.c - derived products: output columns, checks, generated contracts, classification
 * along lineage. See derive.h.
 */
#include "derive/derive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

const char *mesh_xform_name(mesh_xform_t x)
{
    static const char *const names[] = {"identity", "transformation", "aggregation", "masking"};
    return (unsigned)x < 4 ? names[x] : "?";
}

void mesh_lineage_free(mesh_lineage_t *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->ncols; i++)
        free(l->cols[i].in);
    free(l->cols);
    free(l->tables);
    memset(l, 0, sizeof *l);
}

static void copy_name(char *dst, size_t cap, const char *s)
{
    snprintf(dst, cap, "%s", s ? s : "");
}

mesh_status_t mesh_lineage_add_table(mesh_lineage_t *l, const char *domain, const char *product)
{
    for (size_t i = 0; i < l->ntables; i++)
        if (strcmp(l->tables[i].domain, domain) == 0 && strcmp(l->tables[i].product, product) == 0)
            return MESH_OK;
    if (l->ntables >= MESH_LINEAGE_MAX_INPUTS)
        return MESH_TOO_LARGE;
    mesh_lineage_in_t *nv = realloc(l->tables, (l->ntables + 1) * sizeof *nv);
    if (nv == NULL)
        return MESH_NOMEM;
    l->tables = nv;
    memset(&nv[l->ntables], 0, sizeof nv[0]);
    copy_name(nv[l->ntables].domain, sizeof nv[0].domain, domain);
    copy_name(nv[l->ntables].product, sizeof nv[0].product, product);
    l->ntables++;
    return MESH_OK;
}

mesh_status_t mesh_lineage_col_add_in(mesh_lineage_col_t *c, const char *domain,
                                      const char *product, const char *column)
{
    for (size_t i = 0; i < c->nin; i++)
        if (strcmp(c->in[i].domain, domain) == 0 && strcmp(c->in[i].product, product) == 0 &&
            strcmp(c->in[i].column, column) == 0)
            return MESH_OK;
    if (c->nin >= MESH_LINEAGE_MAX_INPUTS)
        return MESH_TOO_LARGE;
    mesh_lineage_in_t *nv = realloc(c->in, (c->nin + 1) * sizeof *nv);
    if (nv == NULL)
        return MESH_NOMEM;
    c->in = nv;
    copy_name(nv[c->nin].domain, sizeof nv[0].domain, domain);
    copy_name(nv[c->nin].product, sizeof nv[0].product, product);
    copy_name(nv[c->nin].column, sizeof nv[0].column, column);
    c->nin++;
    return MESH_OK;
}

static mesh_lineage_col_t *add_col(mesh_lineage_t *l, const char *name, const char *suffix,
                                   mesh_ltype_t type, int pk, mesh_xform_t xf)
{
    mesh_lineage_col_t *nv = realloc(l->cols, (l->ncols + 1) * sizeof *nv);
    if (nv == NULL)
        return NULL;
    l->cols = nv;
    mesh_lineage_col_t *c = &nv[l->ncols++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s%s%s", name, suffix ? "_" : "", suffix ? suffix : "");
    c->type = type;
    c->pk_position = pk;
    c->xf = xf;
    return c;
}

mesh_status_t mesh_derive_aggregate_lineage(const char *domain, const mesh_product_t *src,
                                            const mesh_derivation_t *d, mesh_lineage_t *out,
                                            mesh_err_t *err)
{
    memset(out, 0, sizeof *out);
    out->column_level = true;
    if (src->time_col < 0)
        return mesh_err_set(err, MESH_INVALID,
                            "%s.%s has no time column: only a time series can be aggregated",
                            domain, src->name);
    const char *tname = src->cols[src->time_col].name;
    /* group columns: given, or the source's series columns */
    int group[MESH_DERIVE_MAX_COLS];
    size_t ng = 0;
    if (d->group_given) {
        for (size_t i = 0; i < d->ngroup; i++) {
            int c = mesh_product_col(src, d->group[i], strlen(d->group[i]));
            if (c < 0)
                return mesh_err_set(err, MESH_INVALID, "groupBy: %s.%s has no column %s", domain,
                                    src->name, d->group[i]);
            if (!src->cols[c].primary_key || c == src->time_col)
                return mesh_err_set(err, MESH_INVALID,
                                    "groupBy: %s is not a series column of %s.%s (a key column "
                                    "other than its time)",
                                    d->group[i], domain, src->name);
            group[ng++] = c;
        }
    } else {
        for (size_t i = 0; i < src->nkey && ng < MESH_DERIVE_MAX_COLS; i++)
            if (src->key_cols[i] != src->time_col)
                group[ng++] = src->key_cols[i];
    }
    mesh_status_t st = mesh_lineage_add_table(out, domain, src->name);
    for (size_t i = 0; i < ng && st == MESH_OK; i++) {
        const mesh_column_t *sc = &src->cols[group[i]];
        mesh_lineage_col_t *c =
            add_col(out, sc->name, NULL, sc->type, (int)i + 1, MESH_XF_IDENTITY);
        st = c ? mesh_lineage_col_add_in(c, domain, src->name, sc->name) : MESH_NOMEM;
    }
    mesh_lineage_col_t *c;
    if (st == MESH_OK) {
        c = add_col(out, "bucket", NULL, MESH_LT_TIMESTAMP, (int)ng + 1, MESH_XF_TRANSFORM);
        st = c ? mesh_lineage_col_add_in(c, domain, src->name, tname) : MESH_NOMEM;
    }
    if (st == MESH_OK) {
        c = add_col(out, "rows", NULL, MESH_LT_INTEGER, 0, MESH_XF_AGGREGATE);
        st = c ? mesh_lineage_col_add_in(c, domain, src->name, tname) : MESH_NOMEM;
    }
    if (st == MESH_OK) {
        c = add_col(out, "last_time", NULL, MESH_LT_TIMESTAMP, 0, MESH_XF_AGGREGATE);
        st = c ? mesh_lineage_col_add_in(c, domain, src->name, tname) : MESH_NOMEM;
    }
    for (size_t i = 0; i < d->ncolumns && st == MESH_OK; i++) {
        int sc = mesh_product_col(src, d->columns[i], strlen(d->columns[i]));
        if (sc < 0)
            return mesh_err_set(err, MESH_INVALID, "columns: %s.%s has no column %s", domain,
                                src->name, d->columns[i]);
        if (src->cols[sc].type != MESH_LT_INTEGER && src->cols[sc].type != MESH_LT_NUMBER)
            return mesh_err_set(err, MESH_INVALID,
                                "columns: %s is %s; only integer and number columns are "
                                "aggregated",
                                d->columns[i], mesh_ltype_name(src->cols[sc].type));
        static const char *const sfx[] = {"count", "min", "max", "sum", "avg", "last"};
        for (size_t k = 0; k < 6 && st == MESH_OK; k++) {
            /* min, max and last are values of the column: they pass its classification on */
            mesh_xform_t xf = (k == 1 || k == 2 || k == 5) ? MESH_XF_TRANSFORM : MESH_XF_AGGREGATE;
            c = add_col(out, d->columns[i], sfx[k], k == 0 ? MESH_LT_INTEGER : MESH_LT_NUMBER, 0,
                        xf);
            st = c ? mesh_lineage_col_add_in(c, domain, src->name, d->columns[i]) : MESH_NOMEM;
            if (st == MESH_OK && k == 5)
                st = mesh_lineage_col_add_in(c, domain, src->name, tname);
        }
    }
    if (st != MESH_OK)
        return mesh_err_set(err, st, "out of memory");
    return MESH_OK;
}

mesh_status_t mesh_derive_check_columns(const mesh_product_t *p, const mesh_lineage_t *l,
                                        mesh_err_t *err)
{
    for (size_t i = 0; i < l->ncols; i++) {
        const mesh_lineage_col_t *lc = &l->cols[i];
        int c = mesh_product_col(p, lc->name, strlen(lc->name));
        if (c < 0)
            return mesh_err_set(err, MESH_INVALID,
                                "derived product %s.%s: column %s (%s) is missing; `meshctl "
                                "product derive --dry-run` prints the contract it needs",
                                p->domain, p->name, lc->name, mesh_ltype_name(lc->type));
        const mesh_column_t *pc = &p->cols[c];
        if (pc->type != lc->type && !lc->type_guessed)
            return mesh_err_set(err, MESH_INVALID,
                                "derived product %s.%s: column %s is %s, its derivation gives %s",
                                p->domain, p->name, lc->name, mesh_ltype_name(pc->type),
                                mesh_ltype_name(lc->type));
        if (pc->pk_position != lc->pk_position)
            return mesh_err_set(err, MESH_INVALID, "derived product %s.%s: column %s must %s",
                                p->domain, p->name, lc->name,
                                lc->pk_position ? "be in the primary key at its position"
                                                : "not be in the primary key");
    }
    if (p->ncols != l->ncols)
        return mesh_err_set(err, MESH_INVALID,
                            "derived product %s.%s declares %zu columns; its derivation gives %zu",
                            p->domain, p->name, p->ncols, l->ncols);
    return MESH_OK;
}

int mesh_derive_class_rank(const char *c)
{
    static const char *const levels[] = {"public", "internal", "confidential", "restricted"};
    for (int i = 0; c && i < 4; i++)
        if (strcmp(c, levels[i]) == 0)
            return i;
    return c && *c ? 2 : -1; /* an unknown level counts as confidential */
}

static mesh_status_t tag_add(char ***tags, size_t *n, const char *t)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*tags)[i], t) == 0)
            return MESH_OK;
    char **nv = realloc(*tags, (*n + 1) * sizeof *nv);
    if (nv == NULL)
        return MESH_NOMEM;
    *tags = nv;
    if ((nv[*n] = mesh_strdup(t)) == NULL)
        return MESH_NOMEM;
    (*n)++;
    return MESH_OK;
}

mesh_status_t mesh_derive_propagate(const mesh_lineage_col_t *c, mesh_derive_col_lookup_fn lookup,
                                    void *arg, char *class_out, size_t cap, char ***tags,
                                    size_t *ntags)
{
    class_out[0] = '\0';
    if (c->xf == MESH_XF_AGGREGATE || c->xf == MESH_XF_MASK)
        return MESH_OK;
    int best = -1;
    for (size_t i = 0; i < c->nin; i++) {
        const mesh_column_t *in = lookup(arg, &c->in[i]);
        if (in == NULL)
            continue;
        int r = mesh_derive_class_rank(in->classification);
        if (r > best) {
            best = r;
            snprintf(class_out, cap, "%s", in->classification);
        }
        for (size_t k = 0; k < in->n_tags; k++) {
            mesh_status_t st = tag_add(tags, ntags, in->tags[k]);
            if (st != MESH_OK)
                return st;
        }
    }
    return MESH_OK;
}

/* A YAML double-quoted scalar. */
static void yq(mesh_buf_t *b, const char *s)
{
    mesh_buf_addc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            mesh_buf_printf(b, "\\%c", *p);
        else if (*p == '\n')
            mesh_buf_adds(b, "\\n");
        else if (*p < 0x20)
            mesh_buf_printf(b, "\\x%02x", *p);
        else
            mesh_buf_addc(b, (char)*p);
    }
    mesh_buf_addc(b, '"');
}

static void duration(mesh_buf_t *b, int64_t ns)
{
    if (ns % 1000000000LL == 0)
        mesh_buf_printf(b, "%llds", (long long)(ns / 1000000000LL));
    else if (ns % 1000000LL == 0)
        mesh_buf_printf(b, "%lldms", (long long)(ns / 1000000LL));
    else
        mesh_buf_printf(b, "%lldns", (long long)ns);
}

mesh_status_t mesh_derive_contract(const mesh_derive_spec_t *s, mesh_buf_t *out, mesh_err_t *err)
{
    const mesh_derivation_t *d = s->d;
    mesh_buf_t *b = out;
    mesh_buf_adds(b, "apiVersion: v3.0.2\nkind: DataContract\nid: ");
    char id[200];
    snprintf(id, sizeof id, "urn:meshd:derived:%s:%s", s->domain, s->name);
    yq(b, id);
    mesh_buf_adds(b, "\nname: ");
    yq(b, s->name);
    mesh_buf_adds(b, "\nversion: 1.0.0\nstatus: active\ndomain: ");
    yq(b, s->domain);
    mesh_buf_adds(b, "\ndescription:\n  purpose: ");
    yq(b, s->description ? s->description : "a derived product (meshd)");
    mesh_buf_adds(b, "\nschema:\n  - name: ");
    yq(b, s->name);
    mesh_buf_adds(b, "\n    logicalType: object\n    customProperties:\n"
                     "      - property: derivation\n        value:\n");
    if (d->kind == MESH_DERIVE_AGGREGATE) {
        mesh_buf_adds(b, "          aggregate:\n            source: ");
        yq(b, d->source);
        mesh_buf_adds(b, "\n            bucket: \"");
        duration(b, d->bucket_ns);
        mesh_buf_adds(b, "\"\n");
        if (d->group_given) {
            mesh_buf_adds(b, "            groupBy: [");
            for (size_t i = 0; i < d->ngroup; i++) {
                mesh_buf_adds(b, i ? ", " : "");
                yq(b, d->group[i]);
            }
            mesh_buf_adds(b, "]\n");
        }
        mesh_buf_adds(b, "            columns: [");
        for (size_t i = 0; i < d->ncolumns; i++) {
            mesh_buf_adds(b, i ? ", " : "");
            yq(b, d->columns[i]);
        }
        mesh_buf_adds(b, "]\n");
    } else {
        mesh_buf_adds(b, "          sql: ");
        yq(b, d->sql);
        mesh_buf_addc(b, '\n');
        if (d->definer) {
            mesh_buf_adds(b, "          definer: ");
            yq(b, d->definer);
            mesh_buf_addc(b, '\n');
        }
    }
    if (d->refresh_ns) {
        mesh_buf_adds(b, "          refresh: \"");
        duration(b, d->refresh_ns);
        mesh_buf_adds(b, "\"\n");
    }
    mesh_buf_adds(b, "    properties:\n");
    mesh_status_t st = MESH_OK;
    for (size_t i = 0; i < s->l->ncols && st == MESH_OK; i++) {
        const mesh_lineage_col_t *c = &s->l->cols[i];
        mesh_buf_adds(b, "      - name: ");
        yq(b, c->name);
        mesh_buf_printf(b, "\n        logicalType: %s\n", mesh_ltype_name(c->type));
        if (c->pk_position)
            mesh_buf_printf(b,
                            "        primaryKey: true\n        primaryKeyPosition: %d\n"
                            "        required: true\n",
                            c->pk_position);
        char cls[64];
        char **tags = NULL;
        size_t ntags = 0;
        if (s->lookup)
            st = mesh_derive_propagate(c, s->lookup, s->arg, cls, sizeof cls, &tags, &ntags);
        else
            cls[0] = '\0';
        if (st == MESH_OK && cls[0]) {
            mesh_buf_adds(b, "        classification: ");
            yq(b, cls);
            mesh_buf_addc(b, '\n');
        }
        if (st == MESH_OK && ntags) {
            mesh_buf_adds(b, "        tags: [");
            for (size_t k = 0; k < ntags; k++) {
                mesh_buf_adds(b, k ? ", " : "");
                yq(b, tags[k]);
            }
            mesh_buf_adds(b, "]\n");
        }
        for (size_t k = 0; k < ntags; k++)
            free(tags[k]);
        free(tags);
        mesh_buf_adds(b, "        description: ");
        char desc[256];
        if (c->nin == 0)
            snprintf(desc, sizeof desc, "%s of no input column", mesh_xform_name(c->xf));
        else if (c->nin == 1)
            snprintf(desc, sizeof desc, "%s of %s.%s.%s", mesh_xform_name(c->xf), c->in[0].domain,
                     c->in[0].product, c->in[0].column);
        else
            snprintf(desc, sizeof desc, "%s of %zu columns", mesh_xform_name(c->xf), c->nin);
        yq(b, desc);
        st = mesh_buf_addc(b, '\n');
    }
    if (st != MESH_OK)
        return mesh_err_set(err, st == MESH_NOMEM ? MESH_NOMEM : MESH_TOO_LARGE,
                            "the derived contract is too large");
    return MESH_OK;
}
