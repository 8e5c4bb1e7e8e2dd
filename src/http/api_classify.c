/*
 * api_classify.c - classification discovery and approval:
 *   POST /v1/products/{d}/{p}/discover                   sample, suggest, keep as pending
 *   GET  /v1/products/{d}/{p}/classifications            effective tags per column
 *   POST /v1/products/{d}/{p}/classifications/approve    apply pending suggestions
 *   POST /v1/products/{d}/{p}/classifications/reject     reject them (not proposed again)
 *   POST /v1/products/{d}/{p}/classifications/remove     remove approved tags
 *
 * Discovery, approval, rejection and removal need admin on the product (its domain's owners,
 * mesh and domain administrators) and are audited (admin.classify.*). Reading the effective
 * tags needs read; pending and rejected suggestions are shown to administrators only.
 *
 * What leaves this file: column names, info types, tags, confidences and counts. Never a
 * sampled value: discover.c keeps none, and nothing here logs or returns one.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/classification.h"
#include "classify/detect.h"
#include "classify/discover.h"
#include "classify/request.h"
#include "core/log.h"
#include "core/util.h"
#include "http/internal.h"

static json_t *time_json(int64_t ns)
{
    if (ns == 0)
        return json_null();
    char iso[MESH_TIME_MAX];
    mesh_time_format(ns, iso);
    return json_string(iso);
}

/* The product of the path; replies 404 when there is none. */
static const mesh_product_t *path_product(mesh_req_t *r, const mesh_snap_domain_t **sd_out)
{
    mesh_snapshot_t *s = mesh_req_snapshot(r);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, r->params[0]);
    const mesh_product_t *p = sd ? mesh_snapshot_product(s, r->params[0], r->params[1]) : NULL;
    if (sd == NULL)
        mesh_req_errorf(r, MESH_NOT_FOUND, "no domain '%s'", r->params[0]);
    else if (p == NULL)
        mesh_req_errorf(r, MESH_NOT_FOUND, "no product '%s' in domain '%s'", r->params[1],
                        r->params[0]);
    if (sd_out)
        *sd_out = sd;
    return p;
}

/* The tags approving info type t adds: t, its categories, its level. */
static json_t *type_tags(mesh_info_type_t t)
{
    json_t *a = json_array();
    json_array_append_new(a, json_string(mesh_info_tag(t)));
    if (mesh_info_categories(t) & MESH_CAT_PII)
        json_array_append_new(a, json_string("PII"));
    if (mesh_info_categories(t) & MESH_CAT_PHI)
        json_array_append_new(a, json_string("PHI"));
    return a;
}

/* Audits an admin.classify.* event: details is a JSON object (taken), st the outcome. */
static void audit(mesh_req_t *r, mesh_audit_action_t act, const mesh_product_t *p,
                  const char *columns, json_t *details, mesh_status_t st, const char *error)
{
    if (details == NULL)
        details = json_object();
    if (st != MESH_OK)
        json_object_set_new(details, "error", json_string(error ? error : ""));
    char *d = json_dumps(details, JSON_COMPACT);
    json_decref(details);
    mesh_audit_rec_t rec = {.action = act,
                            .domain = p ? p->domain : r->params[0],
                            .product = p ? p->name : r->params[1],
                            .columns = columns,
                            .status = st == MESH_OK ? 200 : mesh_status_http(st),
                            .details = d};
    mesh_req_audit(r, &rec);
    free(d);
}

/* After a change of the policy: the next query sees it. */
static int64_t reload(mesh_req_t *r)
{
    mesh_err_t err;
    if (mesh_auth_reload(r->node->auth, &err) != MESH_OK)
        LOG_ERROR("auth", "the policy could not be reloaded: %s", err.msg);
    mesh_policy_t *p = mesh_auth_policy(r->node->auth);
    int64_t v = mesh_policy_version(p);
    mesh_policy_put(p);
    return v;
}

/* Parses the body of a classification request into a new request (free()); NULL after
 * replying. */
static mesh_classify_req_t *parse(mesh_req_t *r, mesh_classify_kind_t kind)
{
    const char *b;
    size_t n;
    if (mesh_req_body(r, &b, &n) != MESH_OK)
        return NULL;
    mesh_classify_req_t *req = malloc(sizeof *req);
    if (req == NULL) {
        mesh_req_errorf(r, MESH_NOMEM, "out of memory");
        return NULL;
    }
    mesh_err_t err;
    mesh_err_clear(&err);
    if (mesh_classify_req_parse(kind, b, n, req, &err) != MESH_OK) {
        mesh_req_error(r, err.code, err.msg, NULL);
        free(req);
        return NULL;
    }
    return req;
}

/* Comma-separated column names for the audit record. */
static void column_list(mesh_buf_t *b, const char *name)
{
    if (strstr(b->data ? b->data : "", name) != NULL) {
        /* already there? compare whole names */
        for (const char *s = b->data; s && *s;) {
            size_t l = strcspn(s, ",");
            if (l == strlen(name) && memcmp(s, name, l) == 0)
                return;
            s += l + (s[l] == ',');
        }
    }
    if (b->len)
        mesh_buf_addc(b, ',');
    mesh_buf_adds(b, name);
}

/* ---- discover ---- */

void mesh_api_discover(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, r->params[0], r->params[1]))
        return;
    const mesh_snap_domain_t *sd;
    const mesh_product_t *p = path_product(r, &sd);
    if (p == NULL)
        return;
    mesh_classify_req_t *req = parse(r, MESH_CLASSIFY_DISCOVER);
    if (req == NULL)
        return;
    int64_t sample = req->sample ? req->sample : MESH_DISCOVER_DEFAULT_ROWS;
    double min_conf = req->min_confidence >= 0 ? req->min_confidence : MESH_DISCOVER_MIN_CONF;
    free(req);
    mesh_discovery_t d;
    mesh_err_t err;
    mesh_err_clear(&err);
    int64_t t0 = mesh_mono_ns();
    mesh_status_t st =
        mesh_discover_product(mesh_domain_store(sd->dom), p, sample, min_conf, &d, &err);
    /* the suggestions, kept as pending */
    mesh_suggestion_rec_t *recs = NULL;
    size_t nrecs = 0;
    if (st == MESH_OK) {
        size_t total = 0;
        for (size_t c = 0; c < d.ncols; c++)
            total += d.cols[c].nmatches;
        recs = calloc(total ? total : 1, sizeof *recs);
        if (recs == NULL)
            st = mesh_err_set(&err, MESH_NOMEM, "out of memory");
    }
    for (size_t c = 0; st == MESH_OK && c < d.ncols; c++) {
        const mesh_disc_column_t *dc = &d.cols[c];
        for (size_t k = 0; k < dc->nmatches; k++) {
            mesh_suggestion_rec_t *s = &recs[nrecs++];
            snprintf(s->column, sizeof s->column, "%s", dc->name);
            snprintf(s->info_type, sizeof s->info_type, "%s", mesh_info_tag(dc->matches[k].type));
            s->confidence = dc->matches[k].confidence;
            s->matched = dc->matches[k].matched;
            s->non_null = dc->non_null;
            s->sampled = d.sampled;
            s->hint = dc->matches[k].hint;
            snprintf(s->suggested_by, sizeof s->suggested_by, "%s", r->who.name);
        }
    }
    if (st == MESH_OK)
        st = mesh_catalog_suggestions_put(r->node->cat, p->domain, p->name, recs, nrecs, &err);
    free(recs);
    /* which of them were rejected before */
    mesh_suggestion_rec_t *known = NULL;
    size_t nknown = 0;
    if (st == MESH_OK)
        st = mesh_catalog_suggestions_list(r->node->cat, p->domain, p->name, &known, &nknown, &err);
    if (st != MESH_OK) {
        audit(r, MESH_AUDIT_ADMIN_CLASSIFY_DISCOVER, p, NULL, NULL, st, err.msg);
        mesh_discovery_free(&d);
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    double ms = (double)(mesh_mono_ns() - t0) / 1e6;
    json_t *cols = json_array();
    json_t *acols = json_array(); /* for the audit: the same without tags */
    mesh_buf_t flagged;
    mesh_buf_init(&flagged, 64 * 1024);
    size_t pending = 0, nflagged = 0;
    for (size_t c = 0; c < d.ncols; c++) {
        const mesh_disc_column_t *dc = &d.cols[c];
        json_t *sug = json_array();
        json_t *tags = json_array();
        json_t *asug = json_array();
        for (size_t k = 0; k < dc->nmatches; k++) {
            const mesh_disc_match_t *m = &dc->matches[k];
            const char *status = "pending";
            for (size_t i = 0; i < nknown; i++)
                if (strcmp(known[i].column, dc->name) == 0 &&
                    strcmp(known[i].info_type, mesh_info_tag(m->type)) == 0)
                    status = known[i].status;
            pending += strcmp(status, "pending") == 0;
            json_t *o = json_object();
            json_object_set_new(o, "info_type", json_string(mesh_info_tag(m->type)));
            json_object_set_new(o, "confidence", json_real(m->confidence));
            json_object_set_new(o, "matched", json_integer(m->matched));
            json_object_set_new(o, "hint", json_boolean(m->hint));
            json_object_set_new(o, "classification",
                                json_string(mesh_level_name(mesh_info_level(m->type))));
            json_object_set_new(o, "tags", type_tags(m->type));
            json_object_set_new(o, "status", json_string(status));
            json_array_append_new(sug, o);
            json_array_append_new(tags, json_string(mesh_info_tag(m->type)));
            json_array_append_new(
                asug, json_pack("{s:s,s:f,s:I}", "info_type", mesh_info_tag(m->type), "confidence",
                                m->confidence, "matched", (json_int_t)m->matched));
        }
        if (dc->categories & MESH_CAT_PII)
            json_array_append_new(tags, json_string("PII"));
        if (dc->categories & MESH_CAT_PHI)
            json_array_append_new(tags, json_string("PHI"));
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(dc->name));
        json_object_set_new(o, "non_null", json_integer(dc->non_null));
        json_object_set_new(o, "classification",
                            dc->level ? json_string(mesh_level_name(dc->level)) : json_null());
        json_object_set_new(o, "tags", tags);
        json_object_set_new(o, "confidence", json_real(dc->confidence));
        json_object_set_new(o, "suggestions", sug);
        json_array_append_new(cols, o);
        if (dc->nmatches) {
            nflagged++;
            column_list(&flagged, dc->name);
            json_array_append_new(acols, json_pack("{s:s,s:I,s:o}", "column", dc->name, "non_null",
                                                   (json_int_t)dc->non_null, "suggestions", asug));
        } else {
            json_decref(asug);
        }
    }
    free(known);
    json_t *details =
        json_pack("{s:I,s:I,s:f,s:o}", "sampled", (json_int_t)d.sampled, "sample",
                  (json_int_t)sample, "min_confidence", min_conf, "suggestions", acols);
    audit(r, MESH_AUDIT_ADMIN_CLASSIFY_DISCOVER, p, flagged.len ? flagged.data : NULL, details,
          MESH_OK, NULL);
    LOG_INFO("classify",
             "discovery of %s.%s by %s: %lld rows sampled, %zu columns flagged, %zu "
             "suggestions pending (%.1f ms)",
             p->domain, p->name, r->who.name, (long long)d.sampled, nflagged, pending, ms);
    mesh_buf_free(&flagged);
    json_t *o = json_object();
    json_object_set_new(o, "domain", json_string(p->domain));
    json_object_set_new(o, "product", json_string(p->name));
    json_object_set_new(o, "sampled", json_integer(d.sampled));
    json_object_set_new(o, "sample", json_integer(sample));
    json_object_set_new(o, "min_confidence", json_real(min_conf));
    json_object_set_new(o, "pending", json_integer((json_int_t)pending));
    json_object_set_new(o, "elapsed_ms", json_real(ms));
    json_object_set_new(o, "columns", cols);
    mesh_discovery_free(&d);
    mesh_api_reply_json(r, 200, o);
}

/* ---- the effective tags ---- */

void mesh_api_classifications(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_READ, r->params[0], r->params[1]))
        return;
    const mesh_snap_domain_t *sd;
    const mesh_product_t *p = path_product(r, &sd);
    if (p == NULL)
        return;
    bool admin = mesh_req_decide(r, MESH_ACT_ADMIN, p->domain, p->name, NULL);
    mesh_policy_t *pol = mesh_req_policy(r);
    mesh_view_policy_t v;
    mesh_err_t err;
    mesh_err_clear(&err);
    if (mesh_policy_view(pol, &r->who, p, mesh_req_owner(r, p->domain), &v, &err) != MESH_OK) {
        mesh_req_error(r, err.code, err.msg, NULL);
        return;
    }
    /* the approved tags in force are the policy's (the version this answer reports) */
    const mesh_policy_src_t *src = mesh_policy_source(pol);
    mesh_suggestion_rec_t *sug = NULL;
    size_t nsug = 0;
    if (admin && mesh_catalog_suggestions_list(r->node->cat, p->domain, p->name, &sug, &nsug,
                                               &err) != MESH_OK) {
        mesh_view_policy_free(&v);
        mesh_req_error(r, err.code, err.msg, NULL);
        return;
    }
    json_t *cols = json_array();
    for (size_t c = 0; c < p->ncols; c++) {
        const mesh_column_t *col = &p->cols[c];
        if (!admin && !(v.readable && v.visible[c]))
            continue; /* a column the caller may not read does not exist for it */
        json_t *tags = json_array();
        const char *eff = col->classification;
        if (col->classification)
            json_array_append_new(tags, json_pack("{s:s,s:s,s:s}", "tag", col->classification,
                                                  "kind", "classification", "source", "contract"));
        for (size_t i = 0; i < col->n_tags; i++)
            json_array_append_new(tags, json_pack("{s:s,s:s,s:s}", "tag", col->tags[i], "kind",
                                                  "tag", "source", "contract"));
        for (size_t i = 0; i < src->ncoltags; i++) {
            const mesh_coltag_rec_t *t = &src->coltags[i];
            if (strcmp(t->domain, p->domain) != 0 || strcmp(t->product, p->name) != 0 ||
                strcmp(t->column, col->name) != 0)
                continue;
            if (t->classification && mesh_level_parse(t->tag) > mesh_level_parse(eff))
                eff = t->tag;
            json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:f,s:s}", "tag", t->tag, "kind",
                                  t->classification ? "classification" : "tag", "source",
                                  "approved", "info_type", t->info_type, "confidence",
                                  t->confidence, "approved_by", t->approved_by);
            json_object_set_new(o, "approved", time_json(t->approved_ns));
            json_array_append_new(tags, o);
        }
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(col->name));
        json_object_set_new(o, "classification", eff ? json_string(eff) : json_null());
        json_object_set_new(o, "tags", tags);
        if (admin) {
            json_t *pend = json_array(), *rej = json_array();
            for (size_t i = 0; i < nsug; i++) {
                const mesh_suggestion_rec_t *s = &sug[i];
                if (strcmp(s->column, col->name) != 0)
                    continue;
                mesh_info_type_t t = mesh_info_parse(s->info_type);
                json_t *so = json_object();
                json_object_set_new(so, "info_type", json_string(s->info_type));
                json_object_set_new(so, "confidence", json_real(s->confidence));
                json_object_set_new(so, "matched", json_integer(s->matched));
                json_object_set_new(so, "non_null", json_integer(s->non_null));
                json_object_set_new(so, "sampled", json_integer(s->sampled));
                json_object_set_new(so, "hint", json_boolean(s->hint));
                json_object_set_new(so, "classification",
                                    t == MESH_INFO__COUNT
                                        ? json_null()
                                        : json_string(mesh_level_name(mesh_info_level(t))));
                json_object_set_new(so, "tags",
                                    t == MESH_INFO__COUNT ? json_array() : type_tags(t));
                json_object_set_new(so, "suggested_by", json_string(s->suggested_by));
                json_object_set_new(so, "suggested", time_json(s->suggested_ns));
                if (strcmp(s->status, "rejected") == 0) {
                    json_object_set_new(so, "rejected_by", json_string(s->decided_by));
                    json_object_set_new(so, "rejected", time_json(s->decided_ns));
                    json_array_append_new(rej, so);
                } else {
                    json_array_append_new(pend, so);
                }
            }
            json_object_set_new(o, "pending", pend);
            json_object_set_new(o, "rejected", rej);
        }
        json_array_append_new(cols, o);
    }
    free(sug);
    mesh_view_policy_free(&v);
    json_t *o = json_object();
    json_object_set_new(o, "domain", json_string(p->domain));
    json_object_set_new(o, "product", json_string(p->name));
    json_object_set_new(o, "policy_version", json_integer(mesh_policy_version(pol)));
    json_object_set_new(o, "columns", cols);
    mesh_api_reply_json(r, 200, o);
}

/* ---- approve, reject, remove ---- */

void mesh_api_classify_change(mesh_req_t *r)
{
    const char *what = r->params[2];
    mesh_classify_kind_t kind;
    mesh_audit_action_t act;
    if (strcmp(what, "approve") == 0) {
        kind = MESH_CLASSIFY_APPROVE;
        act = MESH_AUDIT_ADMIN_CLASSIFY_APPROVE;
    } else if (strcmp(what, "reject") == 0) {
        kind = MESH_CLASSIFY_REJECT;
        act = MESH_AUDIT_ADMIN_CLASSIFY_REJECT;
    } else if (strcmp(what, "remove") == 0) {
        kind = MESH_CLASSIFY_REMOVE;
        act = MESH_AUDIT_ADMIN_CLASSIFY_REMOVE;
    } else {
        mesh_req_errorf(r, MESH_NOT_FOUND,
                        "no such endpoint: classifications/%s (approve, "
                        "reject or remove)",
                        what);
        return;
    }
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, r->params[0], r->params[1]))
        return;
    const mesh_product_t *p = path_product(r, NULL);
    if (p == NULL)
        return;
    mesh_classify_req_t *req = parse(r, kind);
    if (req == NULL)
        return;
    /* (tags of a column the contract has since dropped may still be removed) */
    for (size_t i = 0; kind != MESH_CLASSIFY_REMOVE && i < req->ncolumns; i++)
        if (mesh_product_col(p, req->columns[i], strlen(req->columns[i])) < 0) {
            mesh_req_errorf(r, MESH_INVALID, "product %s.%s has no column '%s'", p->domain, p->name,
                            req->columns[i]);
            free(req);
            return;
        }
    mesh_tag_select_t sel;
    mesh_classify_req_select(req, &sel);
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st;
    json_t *o = json_object();
    json_t *details = json_object();
    mesh_buf_t cols;
    mesh_buf_init(&cols, 64 * 1024);
    json_t *sel_cols = json_array(), *sel_types = json_array();
    for (size_t i = 0; i < req->ncolumns; i++)
        json_array_append_new(sel_cols, json_string(req->columns[i]));
    for (size_t i = 0; i < req->ntypes; i++)
        json_array_append_new(sel_types, json_string(req->types[i]));
    json_object_set_new(details, "request",
                        json_pack("{s:o,s:o,s:b,s:f}", "columns", sel_cols,
                                  kind == MESH_CLASSIFY_REMOVE ? "tags" : "info_types", sel_types,
                                  "all", req->all, "min_confidence", sel.min_confidence));
    if (kind == MESH_CLASSIFY_APPROVE) {
        mesh_coltag_rec_t *added = NULL;
        size_t nadded = 0;
        st = mesh_catalog_suggestions_approve(r->node->cat, p->domain, p->name, &sel, r->who.name,
                                              &added, &nadded, &err);
        json_t *a = json_array();
        for (size_t i = 0; i < nadded; i++) {
            json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s}", "column", added[i].column,
                                               "tag", added[i].tag, "kind",
                                               added[i].classification ? "classification" : "tag",
                                               "info_type", added[i].info_type));
            column_list(&cols, added[i].column);
        }
        free(added);
        json_object_set_new(o, "approved", a);
        json_object_set(details, "approved", a);
        if (st == MESH_OK && nadded > 0)
            LOG_INFO("classify", "%zu tags approved on %s.%s by %s", nadded, p->domain, p->name,
                     r->who.name);
    } else if (kind == MESH_CLASSIFY_REJECT) {
        size_t n = 0;
        st = mesh_catalog_suggestions_reject(r->node->cat, p->domain, p->name, &sel, r->who.name,
                                             &n, &err);
        json_object_set_new(o, "rejected", json_integer((json_int_t)n));
        json_object_set_new(details, "rejected", json_integer((json_int_t)n));
        for (size_t i = 0; i < req->ncolumns; i++)
            column_list(&cols, req->columns[i]);
    } else {
        size_t n = 0;
        st = mesh_catalog_coltags_remove(r->node->cat, p->domain, p->name, &sel, &n, &err);
        json_object_set_new(o, "removed", json_integer((json_int_t)n));
        json_object_set_new(details, "removed", json_integer((json_int_t)n));
        for (size_t i = 0; i < req->ncolumns; i++)
            column_list(&cols, req->columns[i]);
        if (st == MESH_OK && n > 0)
            LOG_INFO("classify", "%zu approved tags removed from %s.%s by %s", n, p->domain,
                     p->name, r->who.name);
    }
    free(req);
    int64_t version = reload(r);
    json_object_set_new(details, "policy_version_after", json_integer(version));
    audit(r, act, p, cols.len ? cols.data : NULL, details, st, err.msg);
    mesh_buf_free(&cols);
    if (st != MESH_OK) {
        json_decref(o);
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    json_object_set_new(o, "policy_version", json_integer(version));
    mesh_api_reply_json(r, 200, o);
}
