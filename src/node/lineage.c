/*
 * lineage.c - OpenLineage run events of the node's derived products (node.h; the events and
 * sinks are derive/openlineage.h; decision 0030).
 *
 * The domain writer reports each refresh of a continuous aggregate (mesh__node_refresh, the
 * domains' refresh callback); mesh_node_lineage_run turns a refresh of any derived product
 * into a START and a COMPLETE or FAIL event of one run: the job is the product
 * ("domain.product" in openlineage_namespace), the inputs are its lineage's products with
 * their schema, the output is the product with its schema and column lineage.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "derive/derive.h"
#include "derive/openlineage.h"
#include "node/node.h"
#include "store/domain.h"

#define NAME_CAP (2 * 64 + 2)

mesh_status_t mesh__node_lineage_start(mesh_node_t *n, mesh_err_t *err)
{
    const mesh_node_opts_t *o = &n->opts;
    char *token = NULL;
    if (o->openlineage_token_file && *o->openlineage_token_file) {
        size_t len = 0;
        mesh_status_t st = mesh_read_file(o->openlineage_token_file, 4096, &token, &len, err);
        if (st != MESH_OK) {
            mesh_err_prefix(err, "openlineage_token_file: ");
            return st;
        }
        token[strcspn(token, "\r\n")] = '\0';
        if (*token == '\0') {
            free(token);
            return mesh_err_set(err, MESH_INVALID, "openlineage_token_file %s: empty first line",
                                o->openlineage_token_file);
        }
    }
    mesh_ol_opts_t oo = {.file = o->openlineage_file,
                         .file_max_bytes = o->openlineage_file_max_size,
                         .url = o->openlineage_url,
                         .cacert = o->openlineage_ca_file,
                         .token = token,
                         .timeout_ns = o->openlineage_timeout,
                         .retries = (int)o->openlineage_retries,
                         .queue_max = (size_t)o->openlineage_queue};
    mesh_status_t st = mesh_ol_emitter_create(&oo, &n->ol, err);
    if (token) {
        explicit_bzero(token, strlen(token));
        free(token);
    }
    return st;
}

void mesh__node_lineage_stop(mesh_node_t *n)
{
    mesh_ol_emitter_destroy(n->ol);
    n->ol = NULL;
}

static mesh_ol_xform_t ol_xform(mesh_xform_t x)
{
    switch (x) {
    case MESH_XF_IDENTITY:
        return MESH_OL_IDENTITY;
    case MESH_XF_AGGREGATE:
        return MESH_OL_AGGREGATION;
    case MESH_XF_TRANSFORM:
    case MESH_XF_MASK:
        break;
    }
    return MESH_OL_TRANSFORMATION;
}

static mesh_ol_field_t *fields_of(const mesh_product_t *p)
{
    mesh_ol_field_t *f = calloc(p->ncols ? p->ncols : 1, sizeof *f);
    for (size_t i = 0; f && i < p->ncols; i++) {
        f[i].name = p->cols[i].name;
        f[i].type = mesh_ltype_name(p->cols[i].type);
    }
    return f;
}

void mesh_node_lineage_run(mesh_node_t *n, const char *domain, const mesh_product_t *product,
                           const struct mesh_lineage *lin, mesh_node_input_fn input, void *arg,
                           int64_t start_ns, int64_t end_ns, mesh_status_t status,
                           const char *error)
{
    if (n->ol == NULL)
        return;
    const char *ns = n->opts.openlineage_namespace && *n->opts.openlineage_namespace
                         ? n->opts.openlineage_namespace
                         : "meshd";
    size_t nt = lin->ntables;
    char(*tnames)[NAME_CAP] = calloc(nt ? nt : 1, sizeof *tnames);
    mesh_ol_dataset_t *ins = calloc(nt ? nt : 1, sizeof *ins);
    mesh_ol_field_t **tfields = calloc(nt ? nt : 1, sizeof *tfields);
    mesh_ol_column_t *cols = calloc(lin->ncols ? lin->ncols : 1, sizeof *cols);
    mesh_ol_input_field_t **cins = calloc(lin->ncols ? lin->ncols : 1, sizeof *cins);
    char(*cnames)[NAME_CAP] = NULL;
    size_t ncn = 0;
    for (size_t i = 0; i < lin->ncols; i++)
        ncn += lin->cols[i].nin;
    cnames = calloc(ncn ? ncn : 1, sizeof *cnames);
    mesh_ol_field_t *ofields = fields_of(product);
    if (!tnames || !ins || !tfields || !cols || !cins || !cnames || !ofields) {
        LOG_WARN("openlineage", "%s.%s: out of memory: the run event is not sent", domain,
                 product->name);
        goto out;
    }
    for (size_t i = 0; i < nt; i++) {
        snprintf(tnames[i], NAME_CAP, "%s.%s", lin->tables[i].domain, lin->tables[i].product);
        ins[i].ns = ns;
        ins[i].name = tnames[i];
        const mesh_product_t *ip =
            input ? input(arg, lin->tables[i].domain, lin->tables[i].product) : NULL;
        if (ip && (tfields[i] = fields_of(ip)) != NULL) {
            ins[i].fields = tfields[i];
            ins[i].nfields = ip->ncols;
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < lin->ncols; i++) {
        const mesh_lineage_col_t *c = &lin->cols[i];
        cols[i].name = c->name;
        cins[i] = calloc(c->nin ? c->nin : 1, sizeof *cins[i]);
        if (cins[i] == NULL)
            continue;
        cols[i].inputs = cins[i];
        cols[i].ninputs = c->nin;
        for (size_t j = 0; j < c->nin; j++, k++) {
            snprintf(cnames[k], NAME_CAP, "%s.%s", c->in[j].domain, c->in[j].product);
            cins[i][j].ns = ns;
            cins[i][j].name = cnames[k];
            cins[i][j].field = c->in[j].column;
            cins[i][j].xform = ol_xform(c->xf);
        }
    }
    char oname[NAME_CAP];
    snprintf(oname, sizeof oname, "%s.%s", domain, product->name);
    mesh_ol_dataset_t out = {.ns = ns,
                             .name = oname,
                             .fields = ofields,
                             .nfields = product->ncols,
                             .lineage = cols,
                             .nlineage = lin->ncols};
    mesh_ol_event_t ev = {.type = MESH_OL_START,
                          .time_ns = start_ns,
                          .job_ns = ns,
                          .job_name = oname,
                          .inputs = ins,
                          .ninputs = nt,
                          .outputs = &out,
                          .noutputs = 1};
    if (mesh_ol_run_id(ev.run_id) != MESH_OK) {
        LOG_WARN("openlineage", "%s: no random run id: the run event is not sent", oname);
        goto out;
    }
    mesh_ol_emit(n->ol, &ev);
    ev.type = status == MESH_OK ? MESH_OL_COMPLETE : MESH_OL_FAIL;
    ev.time_ns = end_ns > start_ns ? end_ns : start_ns;
    ev.error = status == MESH_OK ? NULL : (error && *error ? error : mesh_status_name(status));
    mesh_ol_emit(n->ol, &ev);
out:
    for (size_t i = 0; tfields && i < nt; i++)
        free(tfields[i]);
    for (size_t i = 0; cins && i < lin->ncols; i++)
        free(cins[i]);
    free(tnames);
    free(ins);
    free(tfields);
    free(cols);
    free(cins);
    free(cnames);
    free(ofields);
}

/* The input of a continuous aggregate: its source, in the same domain. */
static const mesh_product_t *agg_input(void *arg, const char *domain, const char *product)
{
    const mesh_domain_refresh_t *r = arg;
    (void)domain;
    return strcmp(product, r->source->name) == 0 ? r->source : NULL;
}

void mesh__node_refresh(void *arg, mesh_domain_t *d, const mesh_domain_refresh_t *r)
{
    mesh_node_t *n = arg;
    if (n->ol == NULL || r->product->derive == NULL)
        return;
    const char *domain = mesh_domain_name(d);
    mesh_lineage_t lin;
    mesh_err_t e;
    mesh_err_clear(&e);
    if (mesh_derive_aggregate_lineage(domain, r->source, r->product->derive, &lin, &e) != MESH_OK) {
        LOG_WARN("openlineage", "%s.%s: no lineage: %s", domain, r->product->name, e.msg);
        return;
    }
    mesh_node_lineage_run(n, domain, r->product, &lin, agg_input, (void *)r, r->start_ns, r->end_ns,
                          r->status, r->error);
    mesh_lineage_free(&lin);
}
