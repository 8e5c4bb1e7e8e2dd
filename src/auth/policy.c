/*
 * policy.c - decisions over a policy snapshot. See policy.h for the rules.
 */
#include "auth/policy.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"

typedef struct grant {
    const mesh_grant_rec_t *rec;
    mesh_action_t act;
} grant_t;

struct mesh_policy {
    _Atomic int refs;
    mesh_policy_src_t src;
    grant_t *grants;
    size_t ngrants;
};

static const struct {
    const char *name;
    mesh_mask_type_t type;
} mask_names[] = {
    {"MASK", MESH_MASK_REDACT},
    {"MASK_SHOW_LAST_4", MESH_MASK_SHOW_LAST_4},
    {"MASK_SHOW_FIRST_4", MESH_MASK_SHOW_FIRST_4},
    {"MASK_HASH", MESH_MASK_HASH},
    {"MASK_NULL", MESH_MASK_NULL},
    {"MASK_DATE_SHOW_YEAR", MESH_MASK_DATE_SHOW_YEAR},
    {"CUSTOM", MESH_MASK_CUSTOM},
};

mesh_mask_type_t mesh_mask_type_parse(const char *name)
{
    for (size_t i = 0; name && i < MESH_ARRAY_LEN(mask_names); i++)
        if (strcmp(name, mask_names[i].name) == 0)
            return mask_names[i].type;
    return MESH_MASK_NONE;
}

const char *mesh_mask_type_name(mesh_mask_type_t t)
{
    for (size_t i = 0; i < MESH_ARRAY_LEN(mask_names); i++)
        if (mask_names[i].type == t)
            return mask_names[i].name;
    return "NONE";
}

bool mesh_roles_has(const char *roles, const char *role)
{
    size_t rl = strlen(role);
    const char *p = roles;
    while (p && *p) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *comma = strchr(p, ',');
        size_t l = comma ? (size_t)(comma - p) : strlen(p);
        while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\t'))
            l--;
        if (l == rl && strncmp(p, role, rl) == 0)
            return true;
        if (!comma)
            break;
        p = comma + 1;
    }
    return false;
}

bool mesh_role_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > MESH_ROLE_MAX || !(name[0] >= 'a' && name[0] <= 'z'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool parse_action(const char *s, mesh_action_t *out)
{
    static const char *names[] = {"read", "write", "admin", "audit"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (mesh_action_t)i;
            return true;
        }
    return false;
}

mesh_status_t mesh_policy_build(const mesh_policy_src_t *src, mesh_policy_t **out, mesh_err_t *err)
{
    mesh_policy_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    atomic_init(&p->refs, 1);
    /* take the arrays over */
    p->src = *src;
    p->grants = calloc(src->ngrants ? src->ngrants : 1, sizeof *p->grants);
    if (p->grants == NULL) {
        free(p);
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < src->ngrants; i++) {
        grant_t *g = &p->grants[p->ngrants];
        g->rec = &src->grants[i];
        if (parse_action(g->rec->action, &g->act))
            p->ngrants++; /* a grant with an unknown action grants nothing */
    }
    *out = p;
    return MESH_OK;
}

mesh_policy_t *mesh_policy_ref(mesh_policy_t *p)
{
    if (p)
        atomic_fetch_add(&p->refs, 1);
    return p;
}

void mesh_policy_put(mesh_policy_t *p)
{
    if (p == NULL || atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    free(p->grants);
    mesh_policy_src_free(&p->src);
    free(p);
}

int64_t mesh_policy_version(const mesh_policy_t *p)
{
    return p ? p->src.version : 0;
}

const uint8_t *mesh_policy_mask_key(const mesh_policy_t *p)
{
    return p->src.mask_key;
}

const mesh_policy_src_t *mesh_policy_source(const mesh_policy_t *p)
{
    return &p->src;
}

/* ---- decisions ---- */

/* Does the grant's scope cover domain.product? (domain NULL: the mesh itself) */
static bool covers(const mesh_grant_rec_t *g, const char *domain, const char *product)
{
    if (g->domain[0] == '\0')
        return true;
    if (domain == NULL || strcmp(g->domain, domain) != 0)
        return false;
    if (g->product[0] == '\0')
        return true;
    return product != NULL && strcmp(g->product, product) == 0;
}

/* Does a grant of action ga allow act? admin implies read and write (and audit mesh-wide). */
static bool implies(mesh_action_t ga, const mesh_grant_rec_t *g, mesh_action_t act)
{
    if (ga == act)
        return true;
    if (ga != MESH_ACT_ADMIN)
        return false;
    return act != MESH_ACT_AUDIT || g->domain[0] == '\0';
}

/* The built-in roles' grants. */
static bool builtin_allows(const mesh_identity_t *id, mesh_action_t act, const char **role)
{
    if (mesh_roles_has(id->roles, "admin")) {
        *role = "admin";
        return true;
    }
    if ((act == MESH_ACT_READ || act == MESH_ACT_WRITE) && mesh_roles_has(id->roles, "writer")) {
        *role = "writer";
        return true;
    }
    if (act == MESH_ACT_READ && mesh_roles_has(id->roles, "reader")) {
        *role = "reader";
        return true;
    }
    if (act == MESH_ACT_AUDIT && mesh_roles_has(id->roles, "auditor")) {
        *role = "auditor";
        return true;
    }
    return false;
}

bool mesh_policy_decide(const mesh_policy_t *p, const mesh_identity_t *id, mesh_action_t act,
                        const char *domain, const char *product, bool owner, mesh_decision_t *d)
{
    mesh_decision_t local;
    if (d == NULL)
        d = &local;
    memset(d, 0, sizeof *d);
    d->version = mesh_policy_version(p);
    if (id == NULL || p == NULL) {
        snprintf(d->why, sizeof d->why, "not authenticated");
        return false;
    }
    /* explicit denies first: a deny of some columns only does not deny the product */
    for (size_t i = 0; i < p->ngrants; i++) {
        const grant_t *g = &p->grants[i];
        if (!g->rec->deny || g->rec->columns[0] != '\0' || g->act != act ||
            !mesh_roles_has(id->roles, g->rec->role))
            continue;
        /* a deny on a product also denies acting on it through its domain's scope */
        if (covers(g->rec, domain, product)) {
            snprintf(d->why, sizeof d->why, "denied by grant %lld (role %s)", (long long)g->rec->id,
                     g->rec->role);
            return false;
        }
    }
    const char *role;
    if (builtin_allows(id, act, &role)) {
        d->allow = true;
        snprintf(d->why, sizeof d->why, "built-in role %s", role);
        return true;
    }
    if (owner && domain != NULL && act != MESH_ACT_AUDIT) {
        d->allow = true;
        snprintf(d->why, sizeof d->why, "owner of domain %s", domain);
        return true;
    }
    for (size_t i = 0; i < p->ngrants; i++) {
        const grant_t *g = &p->grants[i];
        if (g->rec->deny || !implies(g->act, g->rec, act) ||
            !mesh_roles_has(id->roles, g->rec->role) || !covers(g->rec, domain, product))
            continue;
        d->allow = true;
        snprintf(d->why, sizeof d->why, "grant %lld (role %s)", (long long)g->rec->id,
                 g->rec->role);
        return true;
    }
    snprintf(d->why, sizeof d->why, "no grant");
    return false;
}

bool mesh_policy_sees_domain(const mesh_policy_t *p, const mesh_identity_t *id, const char *domain,
                             bool owner)
{
    if (mesh_policy_decide(p, id, MESH_ACT_READ, domain, NULL, owner, NULL) ||
        mesh_policy_decide(p, id, MESH_ACT_WRITE, domain, NULL, owner, NULL))
        return true;
    /* a grant on one of its products */
    for (size_t i = 0; i < p->ngrants; i++) {
        const grant_t *g = &p->grants[i];
        if (!g->rec->deny && mesh_roles_has(id->roles, g->rec->role) &&
            strcmp(g->rec->domain, domain) == 0 && g->rec->product[0] != '\0' &&
            mesh_policy_decide(p, id, g->act == MESH_ACT_WRITE ? MESH_ACT_WRITE : MESH_ACT_READ,
                               domain, g->rec->product, owner, NULL))
            return true;
    }
    return false;
}

/* ---- the view of a product ---- */

/* Is name in the comma-separated list? */
static bool list_has(const char *list, const char *name)
{
    return mesh_roles_has(list, name);
}

/* Does a mask policy apply to id? */
static bool mask_applies(const mesh_mask_rec_t *m, const mesh_identity_t *id)
{
    bool to = strcmp(m->roles, "*") == 0;
    for (const char *r = m->roles; !to && *r;) {
        const char *comma = strchr(r, ',');
        size_t l = comma ? (size_t)(comma - r) : strlen(r);
        char role[MESH_ROLE_MAX + 1];
        while (l > 0 && (*r == ' ' || *r == '\t')) {
            r++;
            l--;
        }
        while (l > 0 && (r[l - 1] == ' ' || r[l - 1] == '\t'))
            l--;
        if (l > 0 && l <= MESH_ROLE_MAX) {
            memcpy(role, r, l);
            role[l] = '\0';
            to = mesh_roles_has(id->roles, role);
        }
        if (!comma)
            break;
        r = comma + 1;
    }
    if (!to)
        return false;
    for (const char *r = m->except; *r;) {
        const char *comma = strchr(r, ',');
        size_t l = comma ? (size_t)(comma - r) : strlen(r);
        char role[MESH_ROLE_MAX + 1];
        while (l > 0 && (*r == ' ' || *r == '\t')) {
            r++;
            l--;
        }
        while (l > 0 && (r[l - 1] == ' ' || r[l - 1] == '\t'))
            l--;
        if (l > 0 && l <= MESH_ROLE_MAX) {
            memcpy(role, r, l);
            role[l] = '\0';
            if (mesh_roles_has(id->roles, role))
                return false;
        }
        if (!comma)
            break;
        r = comma + 1;
    }
    return true;
}

bool mesh_policy_column_has_tag(const mesh_policy_t *p, const mesh_product_t *prod,
                                const mesh_column_t *c, const char *tag)
{
    if (c->classification && strcasecmp(c->classification, tag) == 0)
        return true;
    for (size_t i = 0; i < c->n_tags; i++)
        if (strcasecmp(c->tags[i], tag) == 0)
            return true;
    for (size_t i = 0; p && i < p->src.ncoltags; i++) {
        const mesh_coltag_rec_t *t = &p->src.coltags[i];
        if (strcasecmp(t->tag, tag) == 0 && strcmp(t->column, c->name) == 0 &&
            strcmp(t->product, prod->name) == 0 && strcmp(t->domain, prod->domain) == 0)
            return true;
    }
    return false;
}

/* How specific a mask policy is for a column (higher wins), or -1 when it does not match. */
static int mask_rank(const mesh_policy_t *p, const mesh_mask_rec_t *m, const mesh_product_t *prod,
                     const mesh_column_t *c)
{
    if (m->domain[0] && strcmp(m->domain, prod->domain) != 0)
        return -1;
    if (m->product[0] && strcmp(m->product, prod->name) != 0)
        return -1;
    int scope = m->product[0] ? 2 : m->domain[0] ? 1 : 0;
    if (m->column[0])
        return strcmp(m->column, c->name) == 0 ? 10 + scope : -1;
    if (m->tag[0] == '\0')
        return -1;
    /* the contract's classification and tags, and the tags an owner approved */
    return mesh_policy_column_has_tag(p, prod, c, m->tag) ? scope : -1;
}

void mesh_view_policy_free(mesh_view_policy_t *v)
{
    if (v == NULL)
        return;
    free(v->visible);
    free(v->mask);
    free(v->mask_expr);
    free(v->mask_id);
    free(v->filters);
    free(v->filter_ids);
    memset(v, 0, sizeof *v);
}

mesh_status_t mesh_policy_view(const mesh_policy_t *p, const mesh_identity_t *id,
                               const mesh_product_t *prod, bool owner, mesh_view_policy_t *v,
                               mesh_err_t *err)
{
    memset(v, 0, sizeof *v);
    v->version = mesh_policy_version(p);
    v->ncols = prod->ncols;
    size_t n = prod->ncols ? prod->ncols : 1;
    v->visible = calloc(n, sizeof *v->visible);
    v->mask = calloc(n, sizeof *v->mask);
    v->mask_expr = calloc(n, sizeof *v->mask_expr);
    v->mask_id = calloc(n, sizeof *v->mask_id);
    v->filters = calloc(p->src.nfilters + 1, sizeof *v->filters);
    v->filter_ids = calloc(p->src.nfilters + 1, sizeof *v->filter_ids);
    if (!v->visible || !v->mask || !v->mask_expr || !v->mask_id || !v->filters || !v->filter_ids) {
        mesh_view_policy_free(v);
        return mesh_err_set(err, MESH_NOMEM, "out of memory");
    }
    const char *dom = prod->domain, *name = prod->name;
    /* a deny of the whole product (or more) */
    for (size_t i = 0; i < p->ngrants; i++) {
        const grant_t *g = &p->grants[i];
        if (g->rec->deny && g->rec->columns[0] == '\0' && g->act == MESH_ACT_READ &&
            mesh_roles_has(id->roles, g->rec->role) && covers(g->rec, dom, name))
            return MESH_OK; /* not readable */
    }
    /* who reads it in full (built-in roles, owners, grants without a column list), and the
     * roles that give read access (for row filters) */
    const char *role;
    bool all_cols = builtin_allows(id, MESH_ACT_READ, &role) || owner;
    bool unfiltered = all_cols;
    bool any = all_cols;
    for (size_t i = 0; i < p->ngrants; i++) {
        const grant_t *g = &p->grants[i];
        if (g->rec->deny || !implies(g->act, g->rec, MESH_ACT_READ) ||
            !mesh_roles_has(id->roles, g->rec->role) || !covers(g->rec, dom, name))
            continue;
        any = true;
        if (g->rec->columns[0] == '\0')
            all_cols = true;
        for (size_t c = 0; c < prod->ncols && g->rec->columns[0]; c++)
            if (list_has(g->rec->columns, prod->cols[c].name))
                v->visible[c] = true;
        /* row filters of this role for this product */
        bool filtered = false;
        for (size_t k = 0; k < p->src.nfilters; k++) {
            const mesh_filter_rec_t *f = &p->src.filters[k];
            if (strcmp(f->role, g->rec->role) != 0 || strcmp(f->domain, dom) != 0 ||
                strcmp(f->product, name) != 0)
                continue;
            filtered = true;
            bool seen = false;
            for (size_t j = 0; j < v->nfilters; j++)
                seen |= v->filter_ids[j] == f->id;
            if (!seen) {
                v->filters[v->nfilters] = f->predicate;
                v->filter_ids[v->nfilters++] = f->id;
            }
        }
        if (!filtered)
            unfiltered = true;
    }
    if (!any)
        return MESH_OK;
    if (unfiltered)
        v->nfilters = 0;
    for (size_t c = 0; c < prod->ncols; c++)
        if (all_cols)
            v->visible[c] = true;
    /* denied columns */
    for (size_t i = 0; i < p->ngrants; i++) {
        const grant_t *g = &p->grants[i];
        if (!g->rec->deny || g->rec->columns[0] == '\0' || g->act != MESH_ACT_READ ||
            !mesh_roles_has(id->roles, g->rec->role) || !covers(g->rec, dom, name))
            continue;
        for (size_t c = 0; c < prod->ncols; c++)
            if (list_has(g->rec->columns, prod->cols[c].name))
                v->visible[c] = false;
    }
    bool some = false;
    for (size_t c = 0; c < prod->ncols; c++)
        some |= v->visible[c];
    if (!some)
        return MESH_OK;
    v->readable = true;
    /* masks */
    for (size_t c = 0; c < prod->ncols; c++) {
        int best = -1;
        const mesh_mask_rec_t *pick = NULL;
        for (size_t k = 0; k < p->src.nmasks; k++) {
            const mesh_mask_rec_t *m = &p->src.masks[k];
            int r = mask_rank(p, m, prod, &prod->cols[c]);
            if (r > best && mask_applies(m, id)) {
                best = r;
                pick = m;
            }
        }
        if (pick) {
            v->mask[c] = mesh_mask_type_parse(pick->type);
            v->mask_expr[c] = pick->expr;
            v->mask_id[c] = pick->id;
            if (v->mask[c] == MESH_MASK_NONE)
                v->mask[c] = MESH_MASK_NULL; /* an unknown type hides the value */
        }
    }
    return MESH_OK;
}

/* ---- masking values ---- */

/* Length of the UTF-8 sequence starting with byte b (1 for invalid bytes). */
static size_t u8len(unsigned char b)
{
    return b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}

size_t mesh_mask_text(mesh_mask_type_t t, const uint8_t key[32], const char *s, size_t n, char *out,
                      size_t cap)
{
    size_t o = 0;
    if (t == MESH_MASK_HASH) {
        uint8_t h[32];
        unsigned int hl = 32;
        HMAC(EVP_sha256(), key, 32, (const unsigned char *)s, n, h, &hl);
        if (cap < 65)
            return 0;
        mesh_hex(h, 32, out);
        out[64] = '\0';
        return 64;
    }
    /* count characters for SHOW_FIRST/LAST */
    size_t nchars = 0;
    for (size_t i = 0; i < n; i += u8len((unsigned char)s[i]))
        nchars++;
    size_t ci = 0;
    for (size_t i = 0; i < n && o + 5 < cap;) {
        size_t l = u8len((unsigned char)s[i]);
        if (i + l > n)
            l = n - i;
        bool keep = (t == MESH_MASK_SHOW_LAST_4 && ci + 4 >= nchars) ||
                    (t == MESH_MASK_SHOW_FIRST_4 && ci < 4);
        unsigned char ch = (unsigned char)s[i];
        if (keep) {
            memcpy(out + o, s + i, l);
            o += l;
        } else if (t == MESH_MASK_REDACT) {
            if (ch >= 'A' && ch <= 'Z')
                out[o++] = 'X';
            else if (ch >= 'a' && ch <= 'z')
                out[o++] = 'x';
            else if (ch >= '0' && ch <= '9')
                out[o++] = 'n';
            else if (ch >= 0x80)
                out[o++] = 'x'; /* a letter of another script */
            else
                out[o++] = (char)ch;
        } else {
            out[o++] = 'x';
        }
        i += l;
        ci++;
    }
    out[o] = '\0';
    return o;
}

int64_t mesh_mask_year_ns(int64_t ns)
{
    char iso[MESH_TIME_MAX];
    mesh_time_format(ns, iso);
    /* YYYY-... : the year's first instant */
    char y[32];
    snprintf(y, sizeof y, "%.4s-01-01T00:00:00Z", iso);
    int64_t out = 0;
    if (mesh_time_parse(y, strlen(y), &out) != MESH_OK)
        return 0;
    return out;
}
