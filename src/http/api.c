/*
 * api.c - health, metrics, status, domains, contracts, products and the catalog.
 */
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/classification.h"
#include "catalog/governance.h"
#include "core/log.h"
#include "core/util.h"
#include "derive/openlineage.h"
#include "http/internal.h"
#include "http/server.h"
#include "mesh/source.h"
#include "node/derived.h"
#include "node/health.h"
#include "mqtt/client.h"

/* ---- helpers ---- */

static void reply_json(mesh_req_t *r, int code, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(j);
    if (s == NULL) {
        mesh_req_errorf(r, MESH_NOMEM, "out of memory");
        return;
    }
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (t) {
        s = t;
        s[n++] = '\n';
        s[n] = '\0';
    }
    mesh_req_reply(r, code, "application/json", s, n);
    free(s);
}

static json_t *time_or_null(int64_t ns)
{
    if (ns == 0)
        return json_null();
    char t[MESH_TIME_MAX];
    mesh_time_format(ns, t);
    return json_string(t);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *str_list(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *column_json(const mesh_product_t *p, const mesh_column_t *c)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(c->name));
    json_object_set_new(o, "type", json_string(mesh_ltype_name(c->type)));
    json_object_set_new(o, "sql_type", json_string(mesh_ltype_sql(c->type)));
    json_object_set_new(o, "required", json_boolean(c->required || c->primary_key));
    if (c->primary_key)
        json_object_set_new(o, "primary_key", json_true());
    if (c->unique)
        json_object_set_new(o, "unique", json_true());
    if (p->time_col >= 0 && &p->cols[p->time_col] == c)
        json_object_set_new(o, "time_column", json_true());
    if (c->description)
        json_object_set_new(o, "description", json_string(c->description));
    if (c->classification)
        json_object_set_new(o, "classification", json_string(c->classification));
    if (c->unit)
        json_object_set_new(o, "unit", json_string(c->unit));
    if (c->n_enum)
        json_object_set_new(o, "enum", str_list(c->enum_values, c->n_enum));
    if (c->has_min)
        json_object_set_new(o, c->min_exclusive ? "exclusiveMinimum" : "minimum",
                            json_real(c->min));
    if (c->has_max)
        json_object_set_new(o, c->max_exclusive ? "exclusiveMaximum" : "maximum",
                            json_real(c->max));
    if (c->min_len >= 0)
        json_object_set_new(o, "minLength", json_integer(c->min_len));
    if (c->max_len >= 0)
        json_object_set_new(o, "maxLength", json_integer(c->max_len));
    if (c->pattern)
        json_object_set_new(o, "pattern", json_string(c->pattern));
    if (c->format)
        json_object_set_new(o, "format", json_string(c->format));
    if (c->n_tags)
        json_object_set_new(o, "tags", str_list(c->tags, c->n_tags));
    return o;
}

static json_t *product_json(const mesh_snap_domain_t *sd, const mesh_product_t *p, bool full)
{
    json_t *o = json_object();
    const mesh_contract_t *c = p->contract;
    json_object_set_new(o, "domain", json_string(p->domain));
    json_object_set_new(o, "name", json_string(p->name));
    char fq[160];
    snprintf(fq, sizeof fq, "%s.%s", p->domain, p->name);
    json_object_set_new(o, "sql_name", json_string(fq));
    json_object_set_new(o, "description", str_or_null(p->description));
    json_t *cj = json_object();
    json_object_set_new(cj, "id", json_string(c->id));
    json_object_set_new(cj, "version", json_string(c->version));
    json_object_set_new(cj, "status", json_string(c->status));
    json_object_set_new(cj, "api_version", json_string(c->api_version));
    json_object_set_new(o, "contract", cj);
    json_object_set_new(o, "owners", str_list(sd->meta.owners, sd->meta.nowners));
    json_t *tags = json_array();
    for (size_t i = 0; i < c->n_tags; i++)
        json_array_append_new(tags, json_string(c->tags[i]));
    for (size_t i = 0; i < p->n_tags; i++)
        json_array_append_new(tags, json_string(p->tags[i]));
    json_object_set_new(o, "tags", tags);
    json_object_set_new(o, "time_column",
                        p->time_col >= 0 ? json_string(p->cols[p->time_col].name) : json_null());
    json_t *key = json_array();
    for (size_t k = 0; k < p->nkey; k++)
        json_array_append_new(key, json_string(p->cols[p->key_cols[k]].name));
    json_object_set_new(o, "primary_key", key);
    json_object_set_new(
        o, "on_invalid",
        json_string(p->on_invalid == MESH_ON_INVALID_QUARANTINE ? "quarantine" : "reject"));
    json_t *cols = json_array();
    for (size_t i = 0; i < p->ncols; i++)
        json_array_append_new(cols, full ? column_json(p, &p->cols[i])
                                         : json_pack("{s:s,s:s}", "name", p->cols[i].name, "type",
                                                     mesh_ltype_name(p->cols[i].type)));
    json_object_set_new(o, "columns", cols);
    mesh_product_stats_t st;
    mesh_store_product_stats(mesh_domain_store(sd->dom), p->name, &st);
    json_object_set_new(o, "rows", json_integer(st.rows));
    json_object_set_new(o, "quarantined", json_integer(st.quarantined));
    json_object_set_new(o, "bytes", json_integer(st.bytes));
    json_object_set_new(o, "last_write", time_or_null(st.last_write_ns));
    return o;
}

/* Audits an admin change the caller was allowed to attempt: its outcome, and extra (a JSON
 * object's members without braces, may be NULL) or the error. */
static void audit_admin(mesh_req_t *r, mesh_audit_action_t act, const char *domain,
                        const char *product, mesh_status_t st, const char *error, const char *extra)
{
    mesh_buf_t d;
    mesh_buf_init(&d, 64 * 1024);
    mesh_buf_addc(&d, '{');
    if (extra)
        mesh_buf_adds(&d, extra);
    if (st != MESH_OK) {
        mesh_buf_adds(&d, extra ? ",\"error\":" : "\"error\":");
        mesh_buf_add_json_str(&d, error ? error : "", error ? strnlen(error, 512) : 0);
    }
    mesh_buf_addc(&d, '}');
    mesh_audit_rec_t rec = {.action = act,
                            .domain = domain,
                            .product = product,
                            .status = mesh_status_http(st),
                            .details = d.data};
    mesh_req_audit(r, &rec);
    mesh_buf_free(&d);
}

/* A deleted product (product NULL: domain) takes its approved tags and suggestions with it,
 * so a product made again under the name starts unclassified. */
static void forget_classification(mesh_req_t *r, const char *domain, const char *product)
{
    mesh_err_t err;
    if (mesh_catalog_classification_drop(r->node->cat, domain, product, &err) != MESH_OK ||
        mesh_auth_reload(r->node->auth, &err) != MESH_OK)
        LOG_ERROR("classify", "the classification of deleted %s%s%s was not forgotten: %s", domain,
                  product ? "." : "", product ? product : "", err.msg);
}

/* Parses a JSON request body; replies 400 and returns NULL when it is not an object. */
static json_t *body_object(mesh_req_t *r)
{
    const char *p;
    size_t n;
    if (mesh_req_body(r, &p, &n) != MESH_OK)
        return NULL;
    json_error_t je;
    json_t *j = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        mesh_req_errorf(r, MESH_PARSE, "malformed JSON at line %d, column %d: %s", je.line,
                        je.column, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        mesh_req_errorf(r, MESH_INVALID, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

void mesh_api_reply_json(mesh_req_t *r, int code, json_t *j)
{
    reply_json(r, code, j);
}

/* ---- health, metrics, status ---- */

void mesh_api_healthz(mesh_req_t *r)
{
    mesh_req_reply(r, 200, "text/plain; charset=utf-8", "ok\n", 3);
}

void mesh_api_ping(mesh_req_t *r)
{
    /* InfluxDB clients (Telegraf) check /ping before writing */
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "X-Influxdb-Version",
                      "1.8-compatible (meshd " MESH_VERSION ")");
    mesh_req_reply(r, 204, NULL, NULL, 0);
}

void mesh_api_readyz(mesh_req_t *r)
{
    if (atomic_load(&r->node->ready) && r->node->opts.mqtt_ready &&
        mesh_mqtt_enabled(r->node->mqtt) && !mesh_mqtt_connected(r->node->mqtt))
        mesh_req_reply(r, 503, "text/plain; charset=utf-8", "mqtt disconnected\n", 18);
    else if (atomic_load(&r->node->ready))
        mesh_req_reply(r, 200, "text/plain; charset=utf-8", "ready\n", 6);
    else
        mesh_req_reply(r, 503, "text/plain; charset=utf-8", "starting\n", 9);
}

static void storage_gauges(mesh_req_t *r, mesh_buf_t *b)
{
    mesh_snapshot_t *s = mesh_req_snapshot(r);
    mesh_metrics_help(b, "meshd_domain_db_bytes", "gauge", "Size of a domain's SQLite file.");
    for (size_t i = 0; i < s->ndoms; i++) {
        mesh_domain_info_t di;
        mesh_domain_info(s->doms[i].dom, &di);
        mesh_buf_adds(b, "meshd_domain_db_bytes{domain=\"");
        mesh_metrics_label(b, s->doms[i].meta.name);
        mesh_buf_printf(b, "\"} %lld\n", (long long)di.db_bytes);
    }
    mesh_metrics_help(b, "meshd_domain_wal_bytes", "gauge", "Size of a domain's SQLite WAL.");
    for (size_t i = 0; i < s->ndoms; i++) {
        mesh_domain_info_t di;
        mesh_domain_info(s->doms[i].dom, &di);
        mesh_buf_adds(b, "meshd_domain_wal_bytes{domain=\"");
        mesh_metrics_label(b, s->doms[i].meta.name);
        mesh_buf_printf(b, "\"} %lld\n", (long long)di.wal_bytes);
    }
    mesh_metrics_help(b, "meshd_domain_log_bytes", "gauge", "Size of a domain's log.");
    mesh_metrics_help(b, "meshd_domain_log_seq", "gauge", "Last sequence in a domain's log.");
    for (size_t i = 0; i < s->ndoms; i++) {
        mesh_domain_info_t di;
        mesh_domain_info(s->doms[i].dom, &di);
        mesh_buf_adds(b, "meshd_domain_log_bytes{domain=\"");
        mesh_metrics_label(b, s->doms[i].meta.name);
        mesh_buf_printf(b, "\"} %llu\nmeshd_domain_log_seq{domain=\"",
                        (unsigned long long)di.log_bytes);
        mesh_metrics_label(b, s->doms[i].meta.name);
        mesh_buf_printf(b, "\"} %llu\n", (unsigned long long)di.log_seq);
    }
    mesh_metrics_help(b, "meshd_domain_read_only", "gauge",
                      "1 when a domain refuses writes until meshd restarts (its log failed to "
                      "sync or could not be repaired after a failed write).");
    for (size_t i = 0; i < s->ndoms; i++) {
        mesh_domain_info_t di;
        mesh_domain_info(s->doms[i].dom, &di);
        mesh_buf_adds(b, "meshd_domain_read_only{domain=\"");
        mesh_metrics_label(b, s->doms[i].meta.name);
        mesh_buf_printf(b, "\"} %d\n", di.broken ? 1 : 0);
    }
    mesh_metrics_help(b, "meshd_product_rows", "gauge", "Rows held by a product.");
    mesh_metrics_help(b, "meshd_product_bytes", "gauge", "Bytes used by a product's rows.");
    mesh_metrics_help(b, "meshd_product_last_write_seconds", "gauge",
                      "Time of a product's newest row (Unix seconds).");
    for (size_t i = 0; i < s->ndoms; i++) {
        const mesh_snap_domain_t *sd = &s->doms[i];
        for (size_t k = 0; k < sd->ncrefs; k++) {
            const mesh_contract_t *c = sd->crefs[k]->c;
            for (size_t j = 0; j < c->nproducts; j++) {
                mesh_product_stats_t st;
                mesh_store_product_stats(mesh_domain_store(sd->dom), c->products[j].name, &st);
                const char *metric[] = {"meshd_product_rows", "meshd_product_bytes",
                                        "meshd_product_last_write_seconds"};
                double vals[] = {(double)st.rows, (double)st.bytes, (double)st.last_write_ns / 1e9};
                for (int m = 0; m < 3; m++) {
                    mesh_buf_printf(b, "%s{domain=\"", metric[m]);
                    mesh_metrics_label(b, sd->meta.name);
                    mesh_buf_adds(b, "\",product=\"");
                    mesh_metrics_label(b, c->products[j].name);
                    mesh_buf_printf(b, "\"} %.17g\n", vals[m]);
                }
            }
        }
    }
}

/* ---- replication (node/repl.c) ---- */

static void repl_status_json(void *arg, const char *domain, const mesh_repl_status_t *st)
{
    json_t *d = json_object();
    char stream[MESH_NAME_MAX + 16];
    snprintf(stream, sizeof stream, "MESHD_DOM_%s", domain);
    json_object_set_new(d, "stream", json_string(stream));
    json_object_set_new(d, "state", json_string(st->state));
    json_object_set_new(d, "stream_seq", json_integer((json_int_t)st->stream_last));
    json_object_set_new(d, "applied_seq", json_integer((json_int_t)st->applied));
    json_object_set_new(d, "lag",
                        json_integer(st->stream_last > st->applied
                                         ? (json_int_t)(st->stream_last - st->applied)
                                         : 0));
    json_object_set_new(d, "replicas", json_integer(st->replicas));
    json_object_set_new(d, "leader", json_string(st->leader));
    json_object_set_new(d, "published", json_integer((json_int_t)st->published));
    json_object_set_new(d, "published_batches", json_integer((json_int_t)st->published_batches));
    json_object_set_new(d, "publish_failures", json_integer((json_int_t)st->publish_failures));
    json_object_set_new(d, "publish_retries", json_integer((json_int_t)st->publish_retries));
    json_object_set_new(d, "published_record_bytes",
                        json_integer((json_int_t)st->published_record_bytes));
    json_object_set_new(d, "published_bytes", json_integer((json_int_t)st->published_bytes));
    json_object_set_new(d, "apply_failures", json_integer((json_int_t)st->apply_failures));
    json_object_set_new(d, "divergences", json_integer((json_int_t)st->divergences));
    json_object_set_new(d, "out_of_order", json_integer((json_int_t)st->out_of_order));
    json_object_set_new(d, "read_direct", json_integer((json_int_t)st->read_direct));
    json_object_set_new(d, "bootstraps", json_integer((json_int_t)st->bootstraps));
    json_object_set_new(d, "last_error", json_string(st->last_error));
    json_object_set_new(d, "mode", json_string(st->async ? "async" : "sync"));
    if (st->async) {
        json_object_set_new(d, "outbox_seq", json_integer((json_int_t)st->outbox_seq));
        json_object_set_new(d, "outbox_pending", json_integer((json_int_t)st->outbox_pending));
    }
    json_t *reps = json_object();
    for (size_t i = 0; i < st->nreplicas; i++) {
        json_t *x = json_object();
        json_object_set_new(x, "pending", json_integer((json_int_t)st->rep[i].pending));
        json_object_set_new(x, "lag_seconds", json_real(st->rep[i].lag_s));
        json_object_set_new(reps, st->rep[i].name, x);
    }
    json_object_set_new(d, "consumers", reps);
    json_object_set_new(arg, domain, d);
}

/* edge offline (node/edge.c): the hub's copy, under the domain's replication status */
static void edge_status_json(void *arg, const char *domain, const mesh_source_status_t *st)
{
    json_t *d = json_object_get(arg, domain);
    if (d == NULL || strcmp(st->state, "hub") == 0) /* a hub node: its stream is the hub's */
        return;
    json_t *c = json_object();
    json_object_set_new(c, "stream", json_string(st->copy));
    json_object_set_new(c, "state", json_string(st->state));
    json_object_set_new(c, "leaf_domain", json_string(st->leaf_domain));
    json_object_set_new(c, "seq", json_integer((json_int_t)st->copy_last));
    json_object_set_new(c, "replicas", json_integer(st->replicas));
    json_object_set_new(c, "last_error", json_string(st->last_error));
    json_object_set_new(d, "hub_copy", c);
}

static void repl_metric_line(void *arg, const char *domain, const mesh_repl_status_t *st)
{
    mesh_buf_t *b = arg;
    uint64_t lag = st->stream_last > st->applied ? st->stream_last - st->applied : 0;
    mesh_buf_printf(
        b,
        "meshd_repl_stream_seq{domain=\"%s\"} %llu\n"
        "meshd_repl_applied_seq{domain=\"%s\"} %llu\n"
        "meshd_repl_lag{domain=\"%s\"} %llu\n"
        "meshd_repl_published_total{domain=\"%s\"} %llu\n"
        "meshd_repl_publish_failures_total{domain=\"%s\"} %llu\n"
        "meshd_repl_publish_retries_total{domain=\"%s\"} %llu\n"
        "meshd_repl_apply_failures_total{domain=\"%s\"} %llu\n"
        "meshd_repl_consuming{domain=\"%s\"} %d\n",
        domain, (unsigned long long)st->stream_last, domain, (unsigned long long)st->applied,
        domain, (unsigned long long)lag, domain, (unsigned long long)st->published, domain,
        (unsigned long long)st->publish_failures, domain, (unsigned long long)st->publish_retries,
        domain, (unsigned long long)st->apply_failures, domain,
        strcmp(st->state, "consuming") == 0);
    mesh_buf_printf(b,
                    "meshd_repl_divergences_total{domain=\"%s\"} %llu\n"
                    "meshd_repl_out_of_order_total{domain=\"%s\"} %llu\n"
                    "meshd_repl_read_direct_total{domain=\"%s\"} %llu\n",
                    domain, (unsigned long long)st->divergences, domain,
                    (unsigned long long)st->out_of_order, domain,
                    (unsigned long long)st->read_direct);
    if (st->async)
        mesh_buf_printf(b, "meshd_repl_outbox_pending{domain=\"%s\"} %llu\n", domain,
                        (unsigned long long)st->outbox_pending);
    mesh_buf_printf(b, "meshd_repl_bootstraps_total{domain=\"%s\"} %llu\n", domain,
                    (unsigned long long)st->bootstraps);
    mesh_buf_printf(b, "meshd_repl_published_batches_total{domain=\"%s\"} %llu\n", domain,
                    (unsigned long long)st->published_batches);
    mesh_buf_printf(b,
                    "meshd_repl_published_record_bytes_total{domain=\"%s\"} %llu\n"
                    "meshd_repl_published_bytes_total{domain=\"%s\"} %llu\n",
                    domain, (unsigned long long)st->published_record_bytes, domain,
                    (unsigned long long)st->published_bytes);
}

static void repl_metrics(mesh_node_t *n, mesh_buf_t *b)
{
    if (n->repl == NULL)
        return;
    mesh_metrics_help(b, "meshd_repl_stream_seq", "gauge",
                      "Last sequence of a replicated domain's stream, as last seen.");
    mesh_metrics_help(b, "meshd_repl_applied_seq", "gauge",
                      "Stream sequence this node has applied (stored with the data).");
    mesh_metrics_help(b, "meshd_repl_lag", "gauge",
                      "Stream records not yet applied on this node (stream_seq - applied_seq).");
    mesh_metrics_help(b, "meshd_repl_published_total", "counter",
                      "Stream messages this node published to the domain's stream "
                      "(acknowledged): one per write in sync mode; async, one per group of "
                      "batches.");
    mesh_metrics_help(b, "meshd_repl_publish_failures_total", "counter",
                      "Writes the stream did not acknowledge (answered 503).");
    mesh_metrics_help(b, "meshd_repl_publish_retries_total", "counter",
                      "Publish attempts after the first (no stream leader, no link, no ack in "
                      "time), same message id.");
    mesh_metrics_help(b, "meshd_repl_apply_failures_total", "counter",
                      "Stream records this node failed to apply (retried).");
    mesh_metrics_help(b, "meshd_repl_divergences_total", "counter",
                      "Times this node found it had applied stream records the stream does not "
                      "hold (moved back and applied the stream again).");
    mesh_metrics_help(b, "meshd_repl_out_of_order_total", "counter",
                      "Stream records delivered before an earlier one this node had not applied "
                      "(the missing ones read from the stream's leader and applied first).");
    mesh_metrics_help(b, "meshd_repl_read_direct_total", "counter",
                      "Stream records read from the stream's leader instead of waiting for "
                      "their delivery (lost in flight, or a consumer silent after its leader "
                      "changed).");
    mesh_metrics_help(b, "meshd_repl_consuming", "gauge",
                      "1 while this node consumes the domain's stream.");
    mesh_metrics_help(b, "meshd_repl_outbox_pending", "gauge",
                      "Async: log records from the last published batch to the last local one "
                      "(0: every batch written here is in the stream).");
    mesh_metrics_help(b, "meshd_repl_bootstraps_total", "counter",
                      "Snapshots of the domain this node installed because the stream no longer "
                      "held what it needed (docs/mesh.md, snapshot bootstrap).");
    mesh_metrics_help(b, "meshd_repl_published_batches_total", "counter",
                      "Batches carried by the messages of meshd_repl_published_total: async "
                      "batches travel in groups (decision 0040), so this is at least that.");
    mesh_metrics_help(b, "meshd_repl_published_record_bytes_total", "counter",
                      "Bytes of the records this node published to the domain's stream "
                      "(acknowledged).");
    mesh_metrics_help(b, "meshd_repl_published_bytes_total", "counter",
                      "Bytes those records took in the stream, packed with zstd when that "
                      "saves an eighth or more (decision 0037).");
    mesh__node_repl_each(n, repl_metric_line, b);
}

/* OpenLineage sinks: events sent, failed (after the retries) and dropped (a full queue) per
 * sink, and waiting now. Nothing when no sink is configured. */
static void lineage_metrics(mesh_node_t *n, mesh_buf_t *b)
{
    if (n->ol == NULL)
        return;
    mesh_ol_stats_t s;
    mesh_ol_emitter_stats(n->ol, &s);
    mesh_metrics_help(b, "meshd_openlineage_events_total", "counter",
                      "OpenLineage run events per sink and result: sent, failed (given up after "
                      "the retries or a write error), dropped (the sink's queue was full).");
    const struct {
        const char *name;
        const mesh_ol_sink_stats_t *st;
    } sinks[] = {{"file", &s.file}, {"http", &s.http}};
    for (size_t i = 0; i < 2; i++) {
        if (!sinks[i].st->on)
            continue;
        mesh_buf_printf(b, "meshd_openlineage_events_total{sink=\"%s\",result=\"sent\"} %llu\n",
                        sinks[i].name, (unsigned long long)sinks[i].st->sent);
        mesh_buf_printf(b, "meshd_openlineage_events_total{sink=\"%s\",result=\"failed\"} %llu\n",
                        sinks[i].name, (unsigned long long)sinks[i].st->failed);
        mesh_buf_printf(b, "meshd_openlineage_events_total{sink=\"%s\",result=\"dropped\"} %llu\n",
                        sinks[i].name, (unsigned long long)sinks[i].st->dropped);
    }
    mesh_metrics_help(b, "meshd_openlineage_dropped_total", "counter",
                      "OpenLineage run events dropped by all sinks (full queues).");
    mesh_buf_printf(b, "meshd_openlineage_dropped_total %llu\n",
                    (unsigned long long)(s.file.dropped + s.http.dropped));
    mesh_metrics_help(b, "meshd_openlineage_queued", "gauge",
                      "OpenLineage run events waiting per sink.");
    for (size_t i = 0; i < 2; i++)
        if (sinks[i].st->on)
            mesh_buf_printf(b, "meshd_openlineage_queued{sink=\"%s\"} %llu\n", sinks[i].name,
                            (unsigned long long)sinks[i].st->queued);
}

void mesh_api_metrics(mesh_req_t *r)
{
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    mesh_metrics_write(r->node->metrics, &b);
    mesh_http_metrics(r->node->http, &b);
    storage_gauges(r, &b);
    mesh_quality_metrics(r->node->quality, mesh_req_snapshot(r), &b);
    if (r->node->audit) {
        mesh_audit_stats_t as;
        mesh_audit_stats(r->node->audit, &as);
        mesh_metrics_help(&b, "meshd_audit_seq", "gauge", "Seq of the last audit record.");
        mesh_buf_printf(&b, "meshd_audit_seq %llu\n", (unsigned long long)as.last_seq);
        mesh_metrics_help(&b, "meshd_audit_checkpoint_seq", "gauge",
                          "Seq of the last audit checkpoint on disk (HEAD).");
        mesh_buf_printf(&b, "meshd_audit_checkpoint_seq %llu\n",
                        (unsigned long long)as.checkpoint_seq);
        mesh_metrics_help(&b, "meshd_audit_lost_total", "counter",
                          "Audit events that could not be written (disk full or failing).");
        mesh_buf_printf(&b, "meshd_audit_lost_total %llu\n", (unsigned long long)as.lost);
        mesh_metrics_help(&b, "meshd_audit_bytes", "gauge", "Size of the audit log's segments.");
        mesh_buf_printf(&b, "meshd_audit_bytes %llu\n", (unsigned long long)as.bytes);
    }
    mesh_api_crypt_metrics(r, &b);
    mesh_space_stats_t ss;
    mesh_space_stats(r->node->space, &ss);
    mesh_metrics_help(&b, "meshd_disk_free_bytes", "gauge",
                      "Bytes free for meshd on the data directory's file system.");
    mesh_buf_printf(&b, "meshd_disk_free_bytes %lld\n", (long long)ss.free_bytes);
    mesh_metrics_help(&b, "meshd_disk_total_bytes", "gauge",
                      "Size of the data directory's file system.");
    mesh_buf_printf(&b, "meshd_disk_total_bytes %lld\n", (long long)ss.total_bytes);
    mesh_metrics_help(&b, "meshd_disk_min_free_bytes", "gauge",
                      "The reserve (min_free_space): writes are refused below it.");
    mesh_buf_printf(&b, "meshd_disk_min_free_bytes %lld\n", (long long)ss.min_free);
    mesh_metrics_help(&b, "meshd_writes_refused_nospace_total", "counter",
                      "Writes refused (507) because free space was under min_free_space.");
    mesh_buf_printf(&b, "meshd_writes_refused_nospace_total %llu\n",
                    (unsigned long long)ss.refused);
    mesh_metrics_help(&b, "meshd_writes_disk_full_total", "counter",
                      "Writes that hit a full disk (ENOSPC, SQLITE_FULL) and were undone (507).");
    mesh_buf_printf(&b, "meshd_writes_disk_full_total %llu\n", (unsigned long long)ss.enospc);
    mesh_api_rules_metrics(r, &b);
    mesh_api_backup_metrics(r, &b);
    repl_metrics(r->node, &b);
    lineage_metrics(r->node, &b);
    if (r->node->mesh) {
        mesh_mesh_status_t ms;
        mesh_mesh_status(r->node->mesh, &ms);
        mesh_metrics_help(&b, "meshd_mesh_connected", "gauge",
                          "1 while the node is connected to a NATS server of the mesh.");
        mesh_buf_printf(&b, "meshd_mesh_connected %d\n", strcmp(ms.state, "connected") == 0);
        mesh_metrics_help(&b, "meshd_mesh_inbox_captured", "gauge",
                          "1 while a stream takes in this node's inbox (its replies can be "
                          "read by whoever reads that stream; checked at every fourth heartbeat).");
        mesh_buf_printf(&b, "meshd_mesh_inbox_captured %d\n", ms.inbox_captured_by[0] != 0);
        mesh_metrics_help(&b, "meshd_mesh_requests_captured", "gauge",
                          "1 while a stream takes in the requests to domains (forwarded writes, "
                          "statements; checked at every fourth heartbeat).");
        mesh_buf_printf(&b, "meshd_mesh_requests_captured %d\n", ms.requests_captured_by[0] != 0);
        mesh_metrics_help(&b, "meshd_mesh_registered", "gauge",
                          "1 when the last heartbeat wrote this node's registry entry.");
        mesh_buf_printf(&b, "meshd_mesh_registered %d\n", ms.registered ? 1 : 0);
        mesh_metrics_help(&b, "meshd_mesh_heartbeats_total", "counter",
                          "Registry heartbeats written.");
        mesh_buf_printf(&b, "meshd_mesh_heartbeats_total %llu\n",
                        (unsigned long long)ms.heartbeats);
        mesh_metrics_help(&b, "meshd_mesh_heartbeat_failures_total", "counter",
                          "Registry heartbeats that failed.");
        mesh_buf_printf(&b, "meshd_mesh_heartbeat_failures_total %llu\n",
                        (unsigned long long)ms.heartbeat_failures);
        mesh_metrics_help(&b, "meshd_mesh_reconnects_total", "counter",
                          "Reconnections to the NATS servers.");
        mesh_buf_printf(&b, "meshd_mesh_reconnects_total %llu\n",
                        (unsigned long long)ms.reconnects);
        mesh_metrics_help(&b, "meshd_mesh_last_heartbeat_seconds", "gauge",
                          "Time of the last registry heartbeat written (Unix seconds).");
        mesh_buf_printf(&b, "meshd_mesh_last_heartbeat_seconds %.3f\n",
                        (double)ms.last_heartbeat_ns / 1e9);
        mesh__node_fed_metrics(r->node, &b);
    }
    mesh_mqtt_metrics(r->node->mqtt, &b);
    mesh_metrics_help(&b, "meshd_up", "gauge", "1 while the node serves requests.");
    mesh_buf_printf(&b, "meshd_up %d\n", atomic_load(&r->node->ready) ? 1 : 0);
    mesh_metrics_help(&b, "meshd_start_time_seconds", "gauge", "When the node started.");
    mesh_buf_printf(&b, "meshd_start_time_seconds %.3f\n", (double)r->node->started_ns / 1e9);
    mesh_metrics_help(&b, "meshd_auth_failures_total", "counter",
                      "Refused API tokens and logins (the auth-failures health alert).");
    mesh_buf_printf(&b, "meshd_auth_failures_total %llu\n",
                    (unsigned long long)mesh_health_auth_failures_total(r->node->health));
    mesh_metrics_process(&b);
    mesh_req_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    mesh_buf_free(&b);
}

void mesh_api_status(mesh_req_t *r)
{
    /* every caller: the counts are of what it may see */
    mesh_node_t *n = r->node;
    mesh_snapshot_t *s = mesh_req_snapshot(r);
    int64_t domains = 0, products = 0, rows = 0, bytes = 0;
    for (size_t i = 0; i < s->ndoms; i++) {
        if (!mesh_policy_sees_domain(mesh_req_policy(r), &r->who, s->doms[i].meta.name,
                                     mesh_req_owner(r, s->doms[i].meta.name)))
            continue;
        domains++;
        mesh_domain_info_t di;
        mesh_domain_info(s->doms[i].dom, &di);
        bytes += di.db_bytes + di.wal_bytes + (int64_t)di.log_bytes;
        for (size_t k = 0; k < s->doms[i].ncrefs; k++) {
            const mesh_contract_t *c = s->doms[i].crefs[k]->c;
            for (size_t j = 0; j < c->nproducts; j++) {
                if (!mesh_req_decide(r, MESH_ACT_READ, s->doms[i].meta.name, c->products[j].name,
                                     NULL))
                    continue;
                mesh_product_stats_t st;
                mesh_store_product_stats(mesh_domain_store(s->doms[i].dom), c->products[j].name,
                                         &st);
                rows += st.rows;
                products++;
            }
        }
    }
    json_t *o = json_object();
    json_object_set_new(o, "node", json_string(n->opts.node_name));
    json_object_set_new(o, "site", json_string(n->opts.site));
    json_object_set_new(o, "node_id", json_string(mesh_catalog_node_id(n->cat)));
    json_object_set_new(o, "version", json_string(MESH_VERSION));
    json_object_set_new(o, "listen", json_string(n->listen_addr));
    json_object_set_new(o, "started", time_or_null(n->started_ns));
    json_object_set_new(o, "uptime_seconds",
                        json_real((double)(mesh_now_ns() - n->started_ns) / 1e9));
    json_object_set_new(o, "ready", json_boolean(atomic_load(&n->ready)));
    json_object_set_new(o, "domains", json_integer((json_int_t)domains));
    json_object_set_new(o, "products", json_integer(products));
    json_object_set_new(o, "rows", json_integer(rows));
    json_object_set_new(o, "storage_bytes", json_integer(bytes));
    json_object_set_new(o, "principal", json_string(r->who.name));
    json_t *tls = json_object();
    json_object_set_new(tls, "enabled", json_boolean(n->tls != NULL));
    if (n->tls) {
        static const char *auth[] = {"off", "optional", "require"};
        mesh_tls_info_t tinfo;
        mesh_tls_info_get(n->tls, &tinfo);
        const mesh_tls_info_t *ti = &tinfo;
        json_object_set_new(tls, "fingerprint", json_string(ti->fingerprint));
        json_object_set_new(tls, "certificate",
                            json_string(ti->generated ? "self-signed" : "configured"));
        json_object_set_new(tls, "subject", json_string(ti->subject));
        json_object_set_new(tls, "names", json_string(ti->sans));
        json_object_set_new(tls, "expires", time_or_null(ti->not_after_ns));
        json_object_set_new(tls, "client_auth", json_string(auth[ti->client_auth]));
        char subject[256];
        json_object_set_new(tls, "client_certificate",
                            mesh_req_client_cert(r, subject, sizeof subject) ? json_string(subject)
                                                                             : json_null());
    }
    json_object_set_new(o, "tls", tls);
    json_object_set_new(o, "mesh", mesh_api_mesh_status_json(n));
    json_t *repl = json_object();
    mesh__node_repl_each(n, repl_status_json, repl);
    mesh__node_edge_each(n, edge_status_json, repl);
    json_object_set_new(o, "replication", repl);
    reply_json(r, 200, o);
}

/* ---- domains ---- */

static json_t *domain_json(mesh_req_t *r, const mesh_snap_domain_t *sd, bool with_products)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(sd->meta.name));
    json_object_set_new(o, "description", str_or_null(sd->meta.description));
    json_object_set_new(o, "owners", str_list(sd->meta.owners, sd->meta.nowners));
    json_object_set_new(o, "created", time_or_null(sd->meta.created_ns));
    json_object_set_new(o, "hosts", str_list(sd->meta.hosts, sd->meta.nhosts));
    json_object_set_new(o, "replication",
                        json_string(sd->meta.replication[0] ? sd->meta.replication : "none"));
    json_object_set_new(o, "residency", json_string(sd->meta.residency_local ? "local" : "any"));
    json_t *prods = json_array();
    int64_t rows = 0;
    for (size_t k = 0; k < sd->ncrefs; k++) {
        const mesh_contract_t *c = sd->crefs[k]->c;
        for (size_t j = 0; j < c->nproducts; j++) {
            /* only the products the caller may read (or write, for its own data) */
            if (!mesh_req_decide(r, MESH_ACT_READ, sd->meta.name, c->products[j].name, NULL) &&
                !mesh_req_decide(r, MESH_ACT_WRITE, sd->meta.name, c->products[j].name, NULL))
                continue;
            mesh_product_stats_t st;
            mesh_store_product_stats(mesh_domain_store(sd->dom), c->products[j].name, &st);
            rows += st.rows;
            if (with_products)
                json_array_append_new(
                    prods, json_pack("{s:s,s:s,s:s,s:I}", "name", c->products[j].name, "contract",
                                     c->id, "version", c->version, "rows", (json_int_t)st.rows));
            else
                json_array_append_new(prods, json_string(c->products[j].name));
        }
    }
    json_object_set_new(o, "products", prods);
    json_object_set_new(o, "rows", json_integer(rows));
    mesh_domain_info_t di;
    mesh_domain_info(sd->dom, &di);
    json_object_set_new(o, "storage_bytes",
                        json_integer(di.db_bytes + di.wal_bytes + (int64_t)di.log_bytes));
    json_object_set_new(o, "log_seq", json_integer((json_int_t)di.log_seq));
    return o;
}

static void domains_create(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, NULL, NULL))
        return;
    json_t *j = body_object(r);
    if (j == NULL)
        return;
    mesh_domain_meta_t m;
    memset(&m, 0, sizeof m);
    const char *name = json_string_value(json_object_get(j, "name"));
    json_t *desc = json_object_get(j, "description");
    json_t *owners = json_object_get(j, "owners");
    const char *key;
    json_t *val;
    json_object_foreach(j, key, val)
    {
        if (strcmp(key, "name") && strcmp(key, "description") && strcmp(key, "owners") &&
            strcmp(key, "hosts") && strcmp(key, "replication") && strcmp(key, "residency")) {
            mesh_req_errorf(r, MESH_INVALID,
                            "unknown field '%.60s' (expected name, "
                            "description, owners, hosts, replication, residency)",
                            key);
            json_decref(j);
            return;
        }
    }
    if (name == NULL || strlen(name) >= sizeof m.name) {
        mesh_req_errorf(r, MESH_INVALID, "'name' (a string) is required");
        json_decref(j);
        return;
    }
    if ((desc && !json_is_string(desc) && !json_is_null(desc)) ||
        (owners && !json_is_array(owners))) {
        mesh_req_errorf(r, MESH_INVALID,
                        "'description' is a string and 'owners' a list of strings");
        json_decref(j);
        return;
    }
    snprintf(m.name, sizeof m.name, "%s", name);
    m.created_ns = mesh_now_ns();
    if (json_is_string(desc))
        m.description = (char *)json_string_value(desc);
    size_t no = owners ? json_array_size(owners) : 0;
    char *ov[64];
    if (no > 64) {
        mesh_req_errorf(r, MESH_LIMIT, "at most 64 owners");
        json_decref(j);
        return;
    }
    for (size_t i = 0; i < no; i++) {
        ov[i] = (char *)json_string_value(json_array_get(owners, i));
        if (ov[i] == NULL || strlen(ov[i]) == 0 || strlen(ov[i]) > 200) {
            mesh_req_errorf(r, MESH_INVALID, "owners[%zu] must be a non-empty string", i);
            json_decref(j);
            return;
        }
    }
    m.owners = ov;
    m.nowners = no;
    /* replication: the hosting nodes (node names) and the mode */
    json_t *hosts = json_object_get(j, "hosts");
    json_t *repl = json_object_get(j, "replication");
    size_t nh = json_is_array(hosts) ? json_array_size(hosts) : 0;
    char *hv[MESH_DOMAIN_HOSTS_MAX];
    const char *mode = json_is_string(repl) ? json_string_value(repl) : repl ? NULL : "none";
    if ((hosts && !json_is_array(hosts)) || nh > MESH_DOMAIN_HOSTS_MAX ||
        !mesh_domain_replication_ok(mode)) {
        mesh_req_errorf(r, MESH_INVALID,
                        "'hosts' is a list of at most %d node names and 'replication' one of "
                        "none, sync, async",
                        MESH_DOMAIN_HOSTS_MAX);
        json_decref(j);
        return;
    }
    for (size_t i = 0; i < nh; i++) {
        hv[i] = (char *)json_string_value(json_array_get(hosts, i));
        if (hv[i] == NULL || !mesh_entry_node_name_ok(hv[i])) {
            mesh_req_errorf(r, MESH_INVALID, "hosts[%zu] is not a node name", i);
            json_decref(j);
            return;
        }
    }
    if (strcmp(mode, "none") != 0 && nh == 0) {
        mesh_req_errorf(r, MESH_INVALID, "replication %s needs 'hosts', the nodes hosting %s", mode,
                        name);
        json_decref(j);
        return;
    }
    m.hosts = hv;
    m.nhosts = nh;
    snprintf(m.replication, sizeof m.replication, "%s", mode);
    /* residency: local keeps the domain's stream on its site (never sourced by the hub) */
    json_t *res = json_object_get(j, "residency");
    const char *rs = json_is_string(res) ? json_string_value(res) : res ? "" : "any";
    if (strcmp(rs, "any") != 0 && strcmp(rs, "local") != 0) {
        mesh_req_errorf(r, MESH_INVALID, "'residency' is local or any");
        json_decref(j);
        return;
    }
    m.residency_local = strcmp(rs, "local") == 0;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_registry_create_domain(r->node->reg, &m, &err);
    json_decref(j);
    audit_admin(r, MESH_AUDIT_ADMIN_DOMAIN_CREATE, m.name, NULL, st, err.msg, NULL);
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    mesh__node_repl_sync(r->node); /* a replicated domain: its stream, before any write */
    mesh_snapshot_t *s = mesh_registry_snapshot(r->node->reg);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, m.name);
    if (sd)
        reply_json(r, 201, domain_json(r, sd, true));
    else
        mesh_req_errorf(r, MESH_INTERNAL, "domain vanished");
    mesh_snapshot_put(s);
}

void mesh_api_domains(mesh_req_t *r)
{
    if (evhttp_request_get_command(r->ev) == EVHTTP_REQ_POST) {
        domains_create(r);
        return;
    }
    /* every caller may list: only the domains it may see are listed */
    mesh_snapshot_t *s = mesh_req_snapshot(r);
    json_t *a = json_array();
    for (size_t i = 0; i < s->ndoms; i++)
        if (mesh_policy_sees_domain(mesh_req_policy(r), &r->who, s->doms[i].meta.name,
                                    mesh_req_owner(r, s->doms[i].meta.name)))
            json_array_append_new(a, domain_json(r, &s->doms[i], false));
    json_t *o = json_object();
    json_object_set_new(o, "domains", a);
    reply_json(r, 200, o);
}

static bool lists(char *const *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], name) == 0)
            return true;
    return false;
}

/* PUT /v1/domains/D {"hosts": [...], "replication": "..."}: where D is hosted and its mode, on
 * this node (docs/mesh.md, "Changing a domain's hosts or mode"). Refused while it would strand
 * data: leaving async here with batches not yet published, or replicating a domain that
 * already has contracts (they are in no stream). */
static void domain_update(mesh_req_t *r, const char *name)
{
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, name, NULL))
        return;
    json_t *j = body_object(r);
    if (j == NULL)
        return;
    const char *key;
    json_t *val;
    json_object_foreach(j, key, val)
    {
        if (strcmp(key, "hosts") && strcmp(key, "replication")) {
            mesh_req_errorf(r, MESH_INVALID, "unknown field '%.60s' (expected hosts, replication)",
                            key);
            json_decref(j);
            return;
        }
    }
    mesh_snapshot_t *s = mesh_registry_snapshot(r->node->reg);
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(s, name);
    mesh_domain_meta_t m;
    memset(&m, 0, sizeof m);
    char *hv[MESH_DOMAIN_HOSTS_MAX];
    json_t *hosts = json_object_get(j, "hosts"), *repl = json_object_get(j, "replication");
    const char *mode = repl ? json_string_value(repl) : sd ? sd->meta.replication : "none";
    mesh_status_t st = MESH_OK;
    mesh_err_t err;
    mesh_err_clear(&err);
    if (sd == NULL)
        st = mesh_err_set(&err, MESH_NOT_FOUND, "no domain '%s'", name);
    else if ((hosts && !json_is_array(hosts)) || json_array_size(hosts) > MESH_DOMAIN_HOSTS_MAX ||
             !mesh_domain_replication_ok(mode))
        st = mesh_err_set(&err, MESH_INVALID,
                          "'hosts' is a list of at most %d node names and 'replication' one of "
                          "none, sync, async",
                          MESH_DOMAIN_HOSTS_MAX);
    size_t nh = 0;
    if (st == MESH_OK && hosts) {
        for (; nh < json_array_size(hosts) && st == MESH_OK; nh++) {
            hv[nh] = (char *)json_string_value(json_array_get(hosts, nh));
            if (hv[nh] == NULL || !mesh_entry_node_name_ok(hv[nh]))
                st = mesh_err_set(&err, MESH_INVALID, "hosts[%zu] is not a node name", nh);
        }
    } else if (st == MESH_OK) {
        for (; nh < sd->meta.nhosts; nh++)
            hv[nh] = sd->meta.hosts[nh];
    }
    if (st == MESH_OK && strcmp(mode, "none") != 0 && nh == 0)
        st = mesh_err_set(&err, MESH_INVALID, "replication %s needs 'hosts'", mode);
    const char *me = r->node->opts.node_name;
    if (st == MESH_OK && strcmp(sd->meta.replication, "async") == 0 &&
        lists(sd->meta.hosts, sd->meta.nhosts, me) &&
        !(strcmp(mode, "async") == 0 && lists(hv, nh, me))) {
        uint64_t pub, last;
        mesh_domain_outbox_pos(sd->dom, &pub, &last);
        if (last == UINT64_MAX || last > pub)
            st = mesh_err_set(&err, MESH_CONFLICT,
                              "domain %s has batches written on this node that are not in its "
                              "stream yet (outbox_pending in GET /v1/status): retry once it is 0, "
                              "or they would stay on this node only",
                              name);
    }
    if (st == MESH_OK && strcmp(sd->meta.replication, "none") == 0 && strcmp(mode, "none") != 0 &&
        sd->ncrefs > 0)
        st = mesh_err_set(&err, MESH_CONFLICT,
                          "domain %s has contracts and data that are in no stream: it cannot "
                          "become replicated (create a replicated domain and write into it)",
                          name);
    if (st == MESH_OK) {
        snprintf(m.name, sizeof m.name, "%s", name);
        m.hosts = hv;
        m.nhosts = nh;
        snprintf(m.replication, sizeof m.replication, "%s", mode);
        st = mesh_registry_set_domain_hosts(r->node->reg, &m, &err);
    }
    mesh_snapshot_put(s);
    json_decref(j);
    char extra[96];
    snprintf(extra, sizeof extra, "\"replication\":\"%s\",\"hosts\":%zu",
             st == MESH_OK ? m.replication : "", nh);
    audit_admin(r, MESH_AUDIT_ADMIN_DOMAIN_UPDATE, name, NULL, st, err.msg, extra);
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    mesh__node_repl_sync(r->node); /* the replicator restarted with the new mode and hosts */
    s = mesh_registry_snapshot(r->node->reg);
    sd = mesh_snapshot_domain(s, name);
    if (sd)
        reply_json(r, 200, domain_json(r, sd, true));
    else
        mesh_req_errorf(r, MESH_INTERNAL, "domain vanished");
    mesh_snapshot_put(s);
}

void mesh_api_domain(mesh_req_t *r)
{
    const char *name = r->params[0];
    if (evhttp_request_get_command(r->ev) == EVHTTP_REQ_PUT) {
        domain_update(r, name);
        return;
    }
    if (evhttp_request_get_command(r->ev) == EVHTTP_REQ_DELETE) {
        if (!mesh_req_allow(r, MESH_ACT_ADMIN, name, NULL))
            return;
        const char *force = mesh_req_arg(r, "force");
        bool f = false;
        if (force && mesh_parse_bool(force, strlen(force), &f) != MESH_OK) {
            mesh_req_errorf(r, MESH_INVALID, "force=%s: expected true or false", force);
            return;
        }
        mesh_err_t err;
        mesh_err_clear(&err);
        mesh_status_t st = mesh_registry_delete_domain(r->node->reg, name, f, &err);
        if (st == MESH_OK) {
            forget_classification(r, name, NULL);
            mesh__node_repl_sync(r->node);
        }
        audit_admin(r, MESH_AUDIT_ADMIN_DOMAIN_DELETE, name, NULL, st, err.msg,
                    f ? "\"force\":true" : "\"force\":false");
        if (st != MESH_OK)
            mesh_req_error(r, st, err.msg, NULL);
        else
            mesh_req_reply(r, 204, NULL, NULL, 0);
        return;
    }
    if (!mesh_req_allow(r, MESH_ACT_READ, name, NULL))
        return;
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(mesh_req_snapshot(r), name);
    if (sd == NULL) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "no domain '%s'", name);
        return;
    }
    reply_json(r, 200, domain_json(r, sd, true));
}

/* ---- contracts and products ---- */

void mesh_api_contracts(mesh_req_t *r)
{
    const char *p;
    size_t n;
    if (mesh_req_body(r, &p, &n) != MESH_OK)
        return;
    /* the domain is inside the contract: parse once to find it and check the caller */
    mesh_contract_t *c;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_contract_parse(p, n, &c, &err);
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    char domain[64];
    snprintf(domain, sizeof domain, "%s", c->domain);
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, domain, NULL)) {
        mesh_contract_free(c);
        return;
    }
    /* derivations by SQL: prepared as the caller, who must be their definer */
    st = mesh__node_derived_check(r->node, mesh_req_snapshot(r), mesh_req_policy(r), &r->who, c,
                                  &err);
    bool sql_derived = false;
    for (size_t i = 0; i < c->nproducts; i++)
        sql_derived |= c->products[i].derive && c->products[i].derive->kind == MESH_DERIVE_SQL;
    mesh_contract_free(c);
    if (st != MESH_OK) {
        audit_admin(r, MESH_AUDIT_ADMIN_CONTRACT_APPLY, domain, NULL, st, err.msg, NULL);
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(mesh_req_snapshot(r), domain);
    if (sd == NULL) {
        mesh_req_errorf(r, MESH_NOT_FOUND,
                        "no domain '%s': create it first (meshctl domain create %s)", domain,
                        domain);
        return;
    }
    mesh_contract_result_t res;
    const char *dry = mesh_req_arg(r, "dry_run");
    bool dry_run = dry && (strcmp(dry, "true") == 0 || strcmp(dry, "1") == 0);
    if (dry && !dry_run && strcmp(dry, "false") != 0 && strcmp(dry, "0") != 0) {
        mesh_req_errorf(r, MESH_INVALID, "dry_run must be true or false");
        return;
    }
    st = dry_run ? mesh_domain_check_contract(sd->dom, p, n, &res, &err)
                 : mesh_domain_put_contract(sd->dom, p, n, &res, &err);
    json_t *changes = json_array();
    if (res.changes.data) {
        char *save = NULL;
        for (char *line = strtok_r(res.changes.data, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save))
            json_array_append_new(changes, json_string(line));
    }
    mesh_buf_free(&res.changes);
    if (st != MESH_OK) {
        char *d = json_dumps(changes, JSON_COMPACT);
        if (!dry_run)
            audit_admin(r, MESH_AUDIT_ADMIN_CONTRACT_APPLY, domain, NULL, st, err.msg, NULL);
        /* the message keeps its first line; the changes go into details */
        char *nl = strchr(err.msg, '\n');
        if (nl)
            *nl = '\0';
        mesh_req_error(r, st, err.msg, json_array_size(changes) ? d : NULL);
        free(d);
        json_decref(changes);
        return;
    }
    /* re-read the contract as applied, for the products list */
    mesh_contract_parse(p, n, &c, NULL);
    json_t *o = json_object();
    static const char *outcomes[] = {"created", "updated", "unchanged"};
    json_object_set_new(o, "outcome", json_string(outcomes[res.outcome]));
    json_object_set_new(o, "domain", json_string(domain));
    if (c) {
        json_object_set_new(o, "contract", json_string(c->id));
        json_object_set_new(o, "version", json_string(c->version));
        json_t *prods = json_array();
        for (size_t i = 0; i < c->nproducts; i++) {
            char fq[160];
            snprintf(fq, sizeof fq, "%s.%s", domain, c->products[i].name);
            json_array_append_new(prods, json_string(fq));
        }
        json_object_set_new(o, "products", prods);
        mesh_contract_free(c);
    }
    json_object_set_new(o, "changes", changes);
    if (dry_run) {
        /* nothing applied, nothing to audit beyond the authorisation decision */
        json_object_set_new(o, "dry_run", json_true());
        reply_json(r, 200, o);
        return;
    }
    json_object_set_new(o, "seq", json_integer((json_int_t)res.seq));
    json_t *aj = json_object();
    json_object_set(aj, "contract", json_object_get(o, "contract"));
    json_object_set(aj, "version", json_object_get(o, "version"));
    json_object_set(aj, "products", json_object_get(o, "products"));
    json_object_set(aj, "changes", changes);
    json_object_set_new(aj, "outcome", json_string(outcomes[res.outcome]));
    char *ad = json_dumps(aj, JSON_COMPACT);
    json_decref(aj);
    if (ad && strlen(ad) > 2) {
        ad[strlen(ad) - 1] = '\0'; /* the members, without the braces */
        audit_admin(r, MESH_AUDIT_ADMIN_CONTRACT_APPLY, domain, NULL, MESH_OK, NULL, ad + 1);
    } else {
        audit_admin(r, MESH_AUDIT_ADMIN_CONTRACT_APPLY, domain, NULL, MESH_OK, NULL, NULL);
    }
    free(ad);
    LOG_INFO("api", "contract for domain %s %s by %s", domain, outcomes[res.outcome], r->who.name);
    /* a product derived by SQL is materialised at once (then on its schedule) */
    if (sql_derived && res.outcome != MESH_CONTRACT_UNCHANGED) {
        json_t *refreshed = json_array();
        mesh_contract_parse(p, n, &c, NULL);
        for (size_t i = 0; c && i < c->nproducts; i++) {
            const mesh_product_t *dp = &c->products[i];
            if (dp->derive == NULL || dp->derive->kind != MESH_DERIVE_SQL)
                continue;
            int64_t rows = 0;
            mesh_err_t e;
            mesh_err_clear(&e);
            mesh_status_t rst =
                mesh__node_derived_refresh(r->node, domain, dp->name, true, &rows, &e);
            json_t *o2 = json_pack("{s:s,s:I}", "product", dp->name, "rows", (json_int_t)rows);
            if (rst != MESH_OK)
                json_object_set_new(o2, "error", json_string(e.msg));
            json_array_append_new(refreshed, o2);
        }
        mesh_contract_free(c);
        json_object_set_new(o, "refreshed", refreshed);
    }
    reply_json(r, res.outcome == MESH_CONTRACT_CREATED ? 201 : 200, o);
}

/* Finds domain.product from the path; replies 404 when absent. */
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

void mesh_api_products(mesh_req_t *r)
{
    /* every caller may list: only the products it may read are listed */
    const char *only = mesh_req_arg(r, "domain");
    mesh_snapshot_t *s = mesh_req_snapshot(r);
    json_t *a = json_array();
    for (size_t i = 0; i < s->ndoms; i++) {
        const mesh_snap_domain_t *sd = &s->doms[i];
        if (only && strcmp(only, sd->meta.name) != 0)
            continue;
        for (size_t k = 0; k < sd->ncrefs; k++)
            for (size_t j = 0; j < sd->crefs[k]->c->nproducts; j++) {
                const mesh_product_t *p = &sd->crefs[k]->c->products[j];
                if (mesh_req_decide(r, MESH_ACT_READ, p->domain, p->name, NULL))
                    json_array_append_new(a, product_json(sd, p, false));
            }
    }
    json_t *o = json_object();
    json_object_set_new(o, "products", a);
    reply_json(r, 200, o);
}

static int class_rank(const char *c)
{
    static const char *const levels[] = {"public", "internal", "confidential", "restricted"};
    for (int i = 0; c && i < 4; i++)
        if (strcasecmp(c, levels[i]) == 0)
            return i;
    return -1;
}

static void add_unique(json_t *a, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (strcasecmp(json_string_value(v), s) == 0)
            return;
    }
    json_array_append_new(a, json_string(s));
}

/* The product page's classifications: per column its effective classification (the highest
 * of the contract's and the approved) and tags (the contract's and the approved), and the
 * product's highest level and all its tags. */
static json_t *classifications_json(const mesh_product_t *p, const mesh_policy_src_t *src)
{
    json_t *o = json_object(), *cols = json_array(), *all = json_array();
    int top = -1;
    for (size_t i = 0; i < p->ncols; i++) {
        const mesh_column_t *c = &p->cols[i];
        const char *cls = c->classification;
        json_t *tags = json_array();
        for (size_t k = 0; k < c->n_tags; k++)
            add_unique(tags, c->tags[k]);
        for (size_t k = 0; src && k < src->ncoltags; k++) {
            const mesh_coltag_rec_t *t = &src->coltags[k];
            if (strcmp(t->domain, p->domain) != 0 || strcmp(t->product, p->name) != 0 ||
                strcmp(t->column, c->name) != 0)
                continue;
            if (t->classification) {
                if (class_rank(t->tag) > class_rank(cls))
                    cls = t->tag;
            } else {
                add_unique(tags, t->tag);
            }
        }
        if (cls == NULL && json_array_size(tags) == 0) {
            json_decref(tags);
            continue;
        }
        size_t k;
        json_t *v;
        json_array_foreach(tags, k, v) add_unique(all, json_string_value(v));
        if (class_rank(cls) > top)
            top = class_rank(cls);
        json_array_append_new(cols, json_pack("{s:s,s:o,s:o}", "name", c->name, "classification",
                                              cls ? json_string(cls) : json_null(), "tags", tags));
    }
    static const char *const levels[] = {"public", "internal", "confidential", "restricted"};
    json_object_set_new(o, "classification", top >= 0 ? json_string(levels[top]) : json_null());
    json_object_set_new(o, "tags", all);
    json_object_set_new(o, "columns", cols);
    return o;
}

/* The product page's policies: the effective retention, legal hold and residency (contract,
 * domain and product policies together: GET /v1/governance) and the egress rule. */
static json_t *policies_json(mesh_node_t *n, const mesh_product_t *p)
{
    mesh_gov_effective_t g;
    mesh_err_t err;
    mesh_err_clear(&err);
    json_t *o = json_object();
    if (mesh_catalog_gov_effective(n->cat, p, &g, &err) != MESH_OK)
        json_object_set_new(o, "error", json_string(err.msg));
    json_object_set_new(o, "retention_s",
                        g.retention_ns > 0 ? json_integer(g.retention_ns / MESH_NS_PER_SEC)
                                           : json_null());
    json_object_set_new(o, "legal_hold", json_boolean(g.held));
    if (g.held) {
        json_object_set_new(o, "held_on", json_string(g.held_on));
        json_object_set_new(o, "hold_reason", json_string(g.hold_reason));
    }
    json_object_set_new(o, "residency", json_string(g.residency_local ? "local" : "any"));
    json_object_set_new(o, "egress", json_string(p->egress_aggregates ? "aggregates-only" : "any"));
    if (p->egress_aggregates) {
        json_object_set_new(o, "min_group_size", json_integer(p->egress_k));
        if (p->privacy_unit_col >= 0)
            json_object_set_new(o, "privacy_unit", json_string(p->cols[p->privacy_unit_col].name));
    }
    return o;
}

void mesh_api_product(mesh_req_t *r)
{
    bool del = evhttp_request_get_command(r->ev) == EVHTTP_REQ_DELETE;
    if (!mesh_req_allow(r, del ? MESH_ACT_ADMIN : MESH_ACT_READ, r->params[0], r->params[1]))
        return;
    const mesh_snap_domain_t *sd;
    const mesh_product_t *p = path_product(r, &sd);
    if (p == NULL)
        return;
    if (del) {
        mesh_err_t err;
        mesh_err_clear(&err);
        char reader[140];
        mesh_status_t st = MESH_OK;
        if (mesh__node_derived_reader(r->node, mesh_req_snapshot(r), p, reader, sizeof reader))
            st = mesh_err_set(&err, MESH_CONFLICT,
                              "%s.%s is an input of the derived product %s: drop that first",
                              p->domain, p->name, reader);
        if (st == MESH_OK)
            st = mesh_domain_drop_product(sd->dom, p->name, &err);
        if (st == MESH_OK)
            forget_classification(r, p->domain, p->name);
        audit_admin(r, MESH_AUDIT_ADMIN_PRODUCT_DELETE, p->domain, p->name, st, err.msg, NULL);
        if (st != MESH_OK)
            mesh_req_error(r, st, err.msg, NULL);
        else
            mesh_req_reply(r, 204, NULL, NULL, 0);
        return;
    }
    json_t *o = product_json(sd, p, true);
    /* the product's page: its quality at a glance (the full report: .../quality) */
    json_t *rep = mesh_quality_report(r->node->quality, sd, p);
    json_t *q = json_object();
    static const char *const keep[] = {"score",        "evaluated_at", "rules_passed",
                                       "rules_failed", "completeness", "validity",
                                       "freshness"};
    for (size_t i = 0; i < MESH_ARRAY_LEN(keep); i++) {
        json_t *v = json_object_get(rep, keep[i]);
        if (v)
            json_object_set(q, keep[i], v);
    }
    json_decref(rep);
    json_object_set_new(o, "quality", q);
    /* where it comes from and what is made of it, how it is classified, what governs it */
    json_object_set_new(o, "lineage", mesh__api_lineage_summary(r, p));
    json_object_set_new(o, "classifications",
                        classifications_json(p, mesh_policy_source(mesh_req_policy(r))));
    json_object_set_new(o, "policies", policies_json(r->node, p));
    reply_json(r, 200, o);
}

/* ---- contract history ---- */

typedef struct hist {
    json_t *versions; /* [{version, seq, applied}] */
    const char *want; /* a version whose YAML is wanted, or NULL */
    char *yaml;       /* its YAML (the last applied with that version text) */
    size_t yaml_len;
} hist_t;

static mesh_status_t on_version(void *arg, const char *version, uint64_t seq, int64_t applied_ns,
                                const char *yaml, size_t n)
{
    hist_t *h = arg;
    if (h->versions) {
        json_t *o = json_pack("{s:s,s:I}", "version", version, "seq", (json_int_t)seq);
        json_object_set_new(o, "applied", time_or_null(applied_ns));
        json_array_append_new(h->versions, o);
    }
    if (h->want && strcmp(h->want, version) == 0) {
        free(h->yaml);
        h->yaml = malloc(n + 1);
        if (h->yaml == NULL)
            return MESH_NOMEM;
        memcpy(h->yaml, yaml, n);
        h->yaml[n] = '\0';
        h->yaml_len = n;
    }
    return MESH_OK;
}

/* Reads the product's contract history; replies itself on failure. */
static bool history(mesh_req_t *r, const mesh_snap_domain_t *sd, const mesh_product_t *p, hist_t *h)
{
    mesh_store_reader_t *rd;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_store_reader_open(mesh_domain_store(sd->dom), &rd, &err);
    if (st == MESH_OK) {
        st = mesh_store_contract_history(rd, p->contract->id, on_version, h, &err);
        mesh_store_reader_close(rd);
    }
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg[0] ? err.msg : "cannot read the contract history", NULL);
        return false;
    }
    return true;
}

/* The product as a contract version defined it; replies itself and returns NULL when that
 * version is unknown or no longer defines the product. *c must be freed. */
static const mesh_product_t *product_at(mesh_req_t *r, const mesh_snap_domain_t *sd,
                                        const mesh_product_t *p, const char *version,
                                        mesh_contract_t **c)
{
    *c = NULL;
    hist_t h = {.want = version};
    if (!history(r, sd, p, &h))
        return NULL;
    if (h.yaml == NULL) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "contract %s has no version %.40s", p->contract->id,
                        version);
        return NULL;
    }
    mesh_err_t err;
    mesh_status_t st = mesh_contract_parse(h.yaml, h.yaml_len, c, &err);
    free(h.yaml);
    if (st != MESH_OK) {
        mesh_req_errorf(r, MESH_CORRUPT, "stored version %.40s does not parse: %s", version,
                        err.msg);
        return NULL;
    }
    const mesh_product_t *old = mesh_contract_product(*c, p->name);
    if (old == NULL) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "version %.40s of %s has no product %s", version,
                        p->contract->id, p->name);
        mesh_contract_free(*c);
        *c = NULL;
    }
    return old;
}

void mesh_api_product_history(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_READ, r->params[0], r->params[1]))
        return;
    const mesh_snap_domain_t *sd;
    const mesh_product_t *p = path_product(r, &sd);
    if (p == NULL)
        return;
    hist_t h = {.versions = json_array()};
    if (!history(r, sd, p, &h)) {
        json_decref(h.versions);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "contract", json_string(p->contract->id));
    json_object_set_new(o, "current", json_string(p->contract->version));
    json_object_set_new(o, "versions", h.versions);
    reply_json(r, 200, o);
}

/* GET /v1/products/{d}/{p}/quality: the quality report (read on the product). */
void mesh_api_product_quality(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_READ, r->params[0], r->params[1]))
        return;
    const mesh_snap_domain_t *sd;
    const mesh_product_t *p = path_product(r, &sd);
    if (p == NULL)
        return;
    reply_json(r, 200, mesh_quality_report(r->node->quality, sd, p));
}

/* POST /v1/products/{d}/{p}/quality/run: evaluates now (admin on the product: it scans). */
void mesh_api_product_quality_run(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, r->params[0], r->params[1]))
        return;
    const mesh_snap_domain_t *sd;
    const mesh_product_t *p = path_product(r, &sd);
    if (p == NULL)
        return;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st =
        mesh_quality_run(r->node->quality, mesh_req_snapshot(r), p->domain, p->name, &err);
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    reply_json(r, 200, mesh_quality_report(r->node->quality, sd, p));
}

void mesh_api_product_diff(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_READ, r->params[0], r->params[1]))
        return;
    const mesh_snap_domain_t *sd;
    const mesh_product_t *p = path_product(r, &sd);
    if (p == NULL)
        return;
    const char *from = mesh_req_arg(r, "from"), *to = mesh_req_arg(r, "to");
    if (from == NULL) {
        mesh_req_errorf(r, MESH_INVALID, "which versions? ?from=1.0.0[&to=2.0.0] (to: current)");
        return;
    }
    mesh_contract_t *cf = NULL, *ct = NULL;
    const mesh_product_t *pf = product_at(r, sd, p, from, &cf);
    const mesh_product_t *pt = pf == NULL ? NULL : to ? product_at(r, sd, p, to, &ct) : p;
    if (pf == NULL || pt == NULL) {
        mesh_contract_free(cf);
        return;
    }
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    bool breaking = mesh_product_diff(pf, pt, &b);
    json_t *changes = json_array();
    for (char *line = b.data, *end; line && *line; line = end + 1) {
        end = strchr(line, '\n');
        if (end == NULL)
            break;
        *end = '\0';
        static const char mark[] = " (breaking)";
        size_t l = strlen(line);
        bool br = l > sizeof mark - 1 && strcmp(line + l - (sizeof mark - 1), mark) == 0;
        if (br)
            line[l - (sizeof mark - 1)] = '\0';
        json_array_append_new(changes, json_pack("{s:s,s:b}", "change", line, "breaking", br));
    }
    mesh_buf_free(&b);
    json_t *o = json_object();
    json_object_set_new(o, "contract", json_string(p->contract->id));
    json_object_set_new(o, "from", json_string(from));
    json_object_set_new(o, "to", json_string(to ? to : p->contract->version));
    json_object_set_new(o, "breaking", json_boolean(breaking));
    json_object_set_new(o, "changes", changes);
    mesh_contract_free(cf);
    mesh_contract_free(ct);
    reply_json(r, 200, o);
}

void mesh_api_product_contract(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_READ, r->params[0], r->params[1]))
        return;
    const mesh_snap_domain_t *sd;
    const mesh_product_t *p = path_product(r, &sd);
    if (p == NULL)
        return;
    /* an earlier version, from the history */
    const char *version = mesh_req_arg(r, "version");
    mesh_contract_t *old = NULL;
    if (version && strcmp(version, p->contract->version) != 0) {
        if ((p = product_at(r, sd, p, version, &old)) == NULL)
            return;
    }
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    const char *all = mesh_req_arg(r, "whole");
    mesh_status_t st =
        mesh_contract_export(p->contract, all && strcmp(all, "true") == 0 ? NULL : p->name, &b);
    mesh_contract_free(old);
    if (st != MESH_OK)
        mesh_req_errorf(r, st, "cannot export the contract");
    else
        mesh_req_reply(r, 200, "application/yaml; charset=utf-8", b.data, b.len);
    mesh_buf_free(&b);
}

void mesh_api_quarantine(mesh_req_t *r)
{
    /* refused rows are raw input, beyond masks and filters: for the product's administrators */
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, r->params[0], r->params[1]))
        return;
    const mesh_snap_domain_t *sd;
    const mesh_product_t *p = path_product(r, &sd);
    if (p == NULL)
        return;
    int64_t limit = 100;
    const char *ls = mesh_req_arg(r, "limit");
    if (ls && (mesh_parse_i64(ls, strlen(ls), &limit) != MESH_OK || limit < 1 || limit > 10000)) {
        mesh_req_errorf(r, MESH_INVALID, "limit must be 1..10000");
        return;
    }
    mesh_store_reader_t *rd;
    mesh_err_t err;
    mesh_err_clear(&err);
    if (mesh_store_reader_open(mesh_domain_store(sd->dom), &rd, &err) != MESH_OK) {
        mesh_req_error(r, err.code, err.msg, NULL);
        return;
    }
    mesh_scan_plan_t plan;
    memset(&plan, 0, sizeof plan);
    plan.norder = 1;
    plan.order[0].col = 0;
    plan.order[0].desc = true;
    plan.cols_used = ~0ULL;
    mesh_store_plan(mesh_domain_store(sd->dom), p, true, &plan);
    mesh_scan_t *sc = NULL;
    json_t *rows = json_array();
    if (mesh_scan_open(rd, p, true, &plan, NULL, 0, &sc, &err) == MESH_OK) {
        int64_t n = 0;
        while (n < limit && mesh_scan_next(sc) == 1) {
            mesh_datum_t v[MESH_QUARANTINE_NCOLS];
            for (int c = 0; c < MESH_QUARANTINE_NCOLS; c++)
                mesh_scan_value(sc, c, &v[c]);
            json_array_append_new(
                rows, json_pack("{s:I,s:o,s:I,s:s%,s:s%}", "id", (json_int_t)v[0].i, "received_at",
                                time_or_null(v[1].i), "source_row", (json_int_t)v[2].i, "reason",
                                v[3].s ? v[3].s : "", v[3].n, "raw", v[4].s ? v[4].s : "", v[4].n));
            n++;
        }
        mesh_scan_close(sc);
    }
    mesh_store_reader_close(rd);
    json_t *o = json_object();
    json_object_set_new(o, "domain", json_string(p->domain));
    json_object_set_new(o, "product", json_string(p->name));
    json_object_set_new(o, "rows", rows);
    reply_json(r, 200, o);
}

/* ---- catalog ---- */

static bool contains_ci(const char *hay, const char *needle)
{
    if (hay == NULL)
        return false;
    size_t nl = strlen(needle);
    for (const char *h = hay; *h; h++) {
        size_t i = 0;
        while (i < nl && h[i] && tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == nl)
            return true;
    }
    return false;
}

/* Whether an approved tag (classification when cls) of one of p's columns is name. */
static bool approved_has(const mesh_policy_src_t *src, const mesh_product_t *p, const char *name,
                         bool cls)
{
    for (size_t i = 0; src && i < src->ncoltags; i++) {
        const mesh_coltag_rec_t *t = &src->coltags[i];
        if ((!cls || t->classification) && strcasecmp(t->tag, name) == 0 &&
            strcmp(t->product, p->name) == 0 && strcmp(t->domain, p->domain) == 0)
            return true;
    }
    return false;
}

static bool matches(const mesh_snap_domain_t *sd, const mesh_product_t *p, const char *q,
                    const char *owner, const char *tag, const char *cls,
                    const mesh_policy_src_t *src)
{
    const mesh_contract_t *c = p->contract;
    if (owner) {
        bool ok = false;
        for (size_t i = 0; i < sd->meta.nowners && !ok; i++)
            ok = strcasecmp(sd->meta.owners[i], owner) == 0;
        if (!ok)
            return false;
    }
    if (tag) {
        bool ok = false;
        for (size_t i = 0; i < c->n_tags && !ok; i++)
            ok = strcasecmp(c->tags[i], tag) == 0;
        for (size_t i = 0; i < p->n_tags && !ok; i++)
            ok = strcasecmp(p->tags[i], tag) == 0;
        for (size_t i = 0; i < p->ncols && !ok; i++)
            for (size_t k = 0; k < p->cols[i].n_tags && !ok; k++)
                ok = strcasecmp(p->cols[i].tags[k], tag) == 0;
        if (!ok && !approved_has(src, p, tag, false))
            return false;
    }
    if (cls) {
        bool ok = false;
        for (size_t i = 0; i < p->ncols && !ok; i++)
            ok = p->cols[i].classification && strcasecmp(p->cols[i].classification, cls) == 0;
        if (!ok && !approved_has(src, p, cls, true))
            return false;
    }
    if (q) {
        if (contains_ci(p->name, q) || contains_ci(p->domain, q) ||
            contains_ci(p->description, q) || contains_ci(c->purpose, q) ||
            contains_ci(sd->meta.description, q))
            return true;
        for (size_t i = 0; i < p->ncols; i++)
            if (contains_ci(p->cols[i].name, q) || contains_ci(p->cols[i].description, q))
                return true;
        for (size_t i = 0; i < c->n_tags; i++)
            if (contains_ci(c->tags[i], q))
                return true;
        for (size_t i = 0; i < p->n_tags; i++)
            if (contains_ci(p->tags[i], q))
                return true;
        for (size_t i = 0; i < p->ncols; i++)
            for (size_t k = 0; k < p->cols[i].n_tags; k++)
                if (contains_ci(p->cols[i].tags[k], q))
                    return true;
        for (size_t i = 0; src && i < src->ncoltags; i++)
            if (strcmp(src->coltags[i].domain, p->domain) == 0 &&
                strcmp(src->coltags[i].product, p->name) == 0 &&
                contains_ci(src->coltags[i].tag, q))
                return true;
        return false;
    }
    return true;
}

void mesh_api_catalog(mesh_req_t *r)
{
    /* every caller may search: only the products it may read are found */
    const char *q = mesh_req_arg(r, "q");
    const char *dom = mesh_req_arg(r, "domain");
    const char *owner = mesh_req_arg(r, "owner");
    const char *tag = mesh_req_arg(r, "tag");
    const char *cls = mesh_req_arg(r, "classification");
    const char *minq = mesh_req_arg(r, "min_quality");
    double min_quality = -1;
    if (minq) {
        char *end;
        min_quality = strtod(minq, &end);
        if (*minq == '\0' || *end != '\0' || !(min_quality >= 0 && min_quality <= 100)) {
            mesh_req_errorf(r, MESH_INVALID, "min_quality must be a score from 0 to 100");
            return;
        }
    }
    if (q && *q == '\0')
        q = NULL;
    mesh_snapshot_t *s = mesh_req_snapshot(r);
    json_t *a = json_array();
    for (size_t i = 0; i < s->ndoms; i++) {
        const mesh_snap_domain_t *sd = &s->doms[i];
        if (dom && strcmp(dom, sd->meta.name) != 0)
            continue;
        for (size_t k = 0; k < sd->ncrefs; k++)
            for (size_t j = 0; j < sd->crefs[k]->c->nproducts; j++) {
                const mesh_product_t *p = &sd->crefs[k]->c->products[j];
                if (!mesh_req_decide(r, MESH_ACT_READ, p->domain, p->name, NULL) ||
                    !matches(sd, p, q, owner, tag, cls, mesh_policy_source(mesh_req_policy(r))))
                    continue;
                double score = mesh_quality_score(r->node->quality, sd, p);
                if (min_quality >= 0 && !(score >= min_quality))
                    continue;
                json_t *e = product_json(sd, p, true);
                json_object_set_new(
                    e, "classifications",
                    classifications_json(p, mesh_policy_source(mesh_req_policy(r))));
                json_object_set_new(e, "quality_score",
                                    score >= 0 ? json_real(round(score * 10) / 10) : json_null());
                json_array_append_new(a, e);
            }
    }
    json_t *o = json_object();
    json_object_set_new(o, "count", json_integer((json_int_t)json_array_size(a)));
    json_object_set_new(o, "products", a);
    reply_json(r, 200, o);
}
