/*
 * retention.c - the retention job: deletes expired rows of products that have a retention
 * (their contract's customProperties retention, or a catalog policy) unless a legal hold is
 * on the product or its domain, then gives the freed pages back (docs/governance.md).
 *
 * Each deletion is a disposal record in the domain's log (store/domain.h mesh_domain_dispose)
 * carrying the cutoff and a row limit, so a crash mid-pass loses nothing, replay repeats
 * exactly what was applied, and a replica deletes the same rows. The cutoff is computed once
 * per product and pass; batches run until one deletes fewer rows than the limit. Every batch
 * that deleted rows is audited (dispose.retention: product, cutoff, rows, log position).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "catalog/governance.h"
#include "core/log.h"
#include "core/util.h"
#include "node/node.h"
#include "store/domain.h"

/* Batches per product and pass: a pass never runs unbounded (the next one continues). */
#define RETENTION_MAX_BATCHES 1000
/* Pages given back per domain and pass (64 MiB of 4 KiB pages). */
#define RETENTION_VACUUM_PAGES 16384

static void audit_batch(mesh_node_t *n, const mesh_product_t *p, int64_t cutoff, int64_t rows,
                        uint64_t seq, mesh_status_t st, const char *msg)
{
    char iso[MESH_TIME_MAX];
    mesh_time_format(cutoff, iso);
    mesh_buf_t det;
    mesh_buf_init(&det, 4096);
    mesh_buf_printf(&det, "{\"why\":\"retention\",\"cutoff\":\"%s\"", iso);
    if (st == MESH_OK) {
        mesh_buf_printf(&det, ",\"rows\":%" PRId64 ",\"seq\":%" PRIu64 "}", rows, seq);
    } else {
        mesh_buf_adds(&det, ",\"error\":");
        mesh_buf_add_json_str(&det, msg, strlen(msg));
        mesh_buf_addc(&det, '}');
    }
    mesh_audit_rec_t rec = {.action = MESH_AUDIT_DISPOSE_RETENTION,
                            .principal = "meshd",
                            .domain = p->domain,
                            .product = p->name,
                            .status = mesh_status_http(st),
                            .details = det.data};
    mesh_audit_record(n->audit, &rec);
    mesh_buf_free(&det);
}

void mesh__node_retention_run(mesh_node_t *n, mesh_buf_t *report)
{
    mesh_snapshot_t *s = mesh_registry_snapshot(n->reg);
    int64_t now = mesh_now_ns();
    int64_t limit = n->opts.retention_batch > 0 ? n->opts.retention_batch : 10000;
    bool first = true;
    if (report)
        mesh_buf_addc(report, '[');
    for (size_t i = 0; i < s->ndoms; i++) {
        const mesh_snap_domain_t *sd = &s->doms[i];
        int64_t total = 0;
        for (size_t c = 0; c < sd->ncrefs; c++) {
            const mesh_contract_t *ct = sd->crefs[c]->c;
            for (size_t k = 0; k < ct->nproducts; k++) {
                const mesh_product_t *p = &ct->products[k];
                mesh_gov_effective_t g;
                mesh_err_t err;
                mesh_err_clear(&err);
                if (mesh_catalog_gov_effective(n->cat, p, &g, &err) != MESH_OK)
                    LOG_WARN("retention", "%s.%s: %s", p->domain, p->name, err.msg);
                if (g.retention_ns <= 0 || p->time_col < 0)
                    continue;
                int64_t cutoff = now - g.retention_ns, deleted = 0, batches = 0;
                mesh_status_t st = MESH_OK;
                if (!g.held) {
                    for (; batches < RETENTION_MAX_BATCHES; batches++) {
                        int64_t rows = 0;
                        uint64_t seq = 0;
                        st = mesh_domain_dispose(sd->dom, p->name, 'r', cutoff, limit, NULL, 0, 0,
                                                 &rows, &seq, &err);
                        if (st != MESH_OK) {
                            LOG_WARN("retention", "%s.%s: %s", p->domain, p->name, err.msg);
                            audit_batch(n, p, cutoff, 0, 0, st, err.msg);
                            break;
                        }
                        if (rows > 0)
                            audit_batch(n, p, cutoff, rows, seq, st, NULL);
                        deleted += rows;
                        if (rows < limit) {
                            batches++;
                            break;
                        }
                    }
                    if (deleted > 0)
                        LOG_INFO("retention",
                                 "%s.%s: %" PRId64 " rows older than %" PRId64
                                 " s deleted in %" PRId64 " batches",
                                 p->domain, p->name, deleted,
                                 (int64_t)(g.retention_ns / MESH_NS_PER_SEC), batches);
                }
                total += deleted;
                if (report) {
                    if (!first)
                        mesh_buf_addc(report, ',');
                    first = false;
                    mesh_buf_adds(report, "{\"domain\":");
                    mesh_buf_add_json_str(report, p->domain, strlen(p->domain));
                    mesh_buf_adds(report, ",\"product\":");
                    mesh_buf_add_json_str(report, p->name, strlen(p->name));
                    mesh_buf_printf(report,
                                    ",\"retention_s\":%" PRId64 ",\"deleted\":%" PRId64
                                    ",\"batches\":%" PRId64 ",\"held\":%s",
                                    (int64_t)(g.retention_ns / MESH_NS_PER_SEC), deleted, batches,
                                    g.held ? "true" : "false");
                    if (g.held) {
                        mesh_buf_adds(report, ",\"held_on\":");
                        mesh_buf_add_json_str(report, g.held_on, strlen(g.held_on));
                    }
                    if (st != MESH_OK) {
                        mesh_buf_adds(report, ",\"error\":");
                        mesh_buf_add_json_str(report, err.msg, strlen(err.msg));
                    }
                    mesh_buf_addc(report, '}');
                }
            }
        }
        if (total > 0) {
            /* the deleted rows' pages back to the file system; the file shrinks at the next
             * checkpoint, which copies the WAL into it */
            int64_t freed = 0;
            mesh_err_t err;
            mesh_err_clear(&err);
            if (mesh_domain_vacuum(sd->dom, RETENTION_VACUUM_PAGES, &freed, &err) != MESH_OK)
                LOG_WARN("retention", "%s: vacuum: %s", sd->meta.name, err.msg);
            else if (mesh_domain_checkpoint(sd->dom, &err) != MESH_OK)
                LOG_DEBUG("retention", "%s: checkpoint: %s", sd->meta.name, err.msg);
            LOG_INFO("retention", "%s: %" PRId64 " free pages given back", sd->meta.name, freed);
        }
    }
    if (report)
        mesh_buf_adds(report, "]");
    mesh_snapshot_put(s);
}
