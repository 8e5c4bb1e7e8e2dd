/*
 * api_backup.c - backups over the API (admin only): POST /v1/backups (start one), GET
 * /v1/backups (list, and the running one), GET /v1/backups/{id} (its manifest, and its
 * progress while it runs), POST /v1/backups/{id}/verify, DELETE /v1/backups/{id}.
 *
 * A backup runs on meshd's backup thread (node/backup.c): POST answers 202 with its id at
 * once and meshctl polls GET /v1/backups/{id} for progress. Every call is audited
 * (admin.backup.*), and the end of every backup too (backup.done).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "http/internal.h"
#include "node/backup.h"

#define MAX_DOMAINS 1024

static void audit(mesh_req_t *r, mesh_audit_action_t act, const char *id, mesh_status_t st,
                  const char *error)
{
    mesh_buf_t d;
    mesh_buf_init(&d, 4096);
    mesh_buf_addc(&d, '{');
    if (id) {
        mesh_buf_adds(&d, "\"id\":");
        mesh_buf_add_json_str(&d, id, strnlen(id, 64));
    }
    if (st != MESH_OK) {
        mesh_buf_adds(&d, id ? ",\"error\":" : "\"error\":");
        mesh_buf_add_json_str(&d, error ? error : "", error ? strnlen(error, 512) : 0);
    }
    mesh_buf_addc(&d, '}');
    mesh_audit_rec_t rec = {
        .action = act, .status = st == MESH_OK ? 200 : mesh_status_http(st), .details = d.data};
    mesh_req_audit(r, &rec);
    mesh_buf_free(&d);
}

void mesh_api_backup_metrics(mesh_req_t *r, mesh_buf_t *b)
{
    if (r->node->backups == NULL)
        return;
    mesh_backup_stats_t s;
    mesh_backup_stats(r->node->backups, &s);
    mesh_metrics_help(b, "meshd_backup_running", "gauge", "1 while a backup is being made.");
    mesh_buf_printf(b, "meshd_backup_running %d\n", s.running ? 1 : 0);
    mesh_metrics_help(b, "meshd_backups_total", "counter",
                      "Backups ended since the start, by outcome (scheduled or asked for).");
    mesh_buf_printf(b, "meshd_backups_total{outcome=\"done\"} %llu\n", (unsigned long long)s.done);
    mesh_buf_printf(b, "meshd_backups_total{outcome=\"failed\"} %llu\n",
                    (unsigned long long)s.failed);
    if (s.last_success_ns == 0)
        return;
    mesh_metrics_help(b, "meshd_backup_last_success_timestamp_seconds", "gauge",
                      "When the last successful backup of this process ended: alert when it is "
                      "older than the schedule allows.");
    mesh_buf_printf(b, "meshd_backup_last_success_timestamp_seconds %lld\n",
                    (long long)(s.last_success_ns / MESH_NS_PER_SEC));
    mesh_metrics_help(b, "meshd_backup_last_bytes", "gauge", "Size of the last successful backup.");
    mesh_buf_printf(b, "meshd_backup_last_bytes %lld\n", (long long)s.last_bytes);
    mesh_metrics_help(b, "meshd_backup_last_duration_seconds", "gauge",
                      "How long the last successful backup took.");
    mesh_buf_printf(b, "meshd_backup_last_duration_seconds %.3f\n", (double)s.last_ms / 1000.0);
}

static void create(mesh_req_t *r)
{
    const char *body;
    size_t len;
    if (mesh_req_body(r, &body, &len) != MESH_OK)
        return;
    const char *names[MAX_DOMAINS];
    size_t n = 0;
    json_t *j = NULL;
    if (len > 0) {
        json_error_t je;
        j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
        const char *key;
        json_t *val;
        if (!json_is_object(j)) {
            json_decref(j);
            mesh_req_errorf(r, MESH_PARSE, "the body must be a JSON object");
            return;
        }
        json_object_foreach(j, key, val)
        {
            if (strcmp(key, "domains") != 0) {
                json_decref(j);
                mesh_req_errorf(r, MESH_INVALID, "unknown field '%.60s' (expected domains)", key);
                return;
            }
        }
        json_t *doms = json_object_get(j, "domains");
        size_t i;
        json_t *d;
        if (doms && (!json_is_array(doms) || json_array_size(doms) > MAX_DOMAINS)) {
            json_decref(j);
            mesh_req_errorf(r, MESH_INVALID, "\"domains\" must be an array of domain names");
            return;
        }
        json_array_foreach(doms, i, d)
        {
            if (!json_is_string(d) || !mesh_name_domain_ok(json_string_value(d))) {
                json_decref(j);
                mesh_req_errorf(r, MESH_INVALID, "\"domains\" must be an array of domain names");
                return;
            }
            names[n++] = json_string_value(d);
        }
    }
    char id[MESH_ARCHIVE_ID_MAX] = "";
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_backup_start(r->node->backups, names, n, r->who.name, id, &err);
    json_decref(j);
    audit(r, MESH_AUDIT_ADMIN_BACKUP_CREATE, st == MESH_OK ? id : NULL, st, err.msg);
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    json_t *job = mesh_backup_job(r->node->backups, id);
    mesh_api_reply_json(r, 202, job ? job : json_pack("{s:s,s:s}", "id", id, "state", "running"));
}

void mesh_api_backups(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, NULL, NULL))
        return;
    if (evhttp_request_get_command(r->ev) == EVHTTP_REQ_POST) {
        create(r);
        return;
    }
    json_t *list;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_backup_list(r->node->backups, &list, &err);
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    char dir[4096];
    mesh_backup_dir(r->node, dir, sizeof dir);
    json_t *job = mesh_backup_job(r->node->backups, NULL);
    json_t *o = json_pack("{s:s,s:o,s:o}", "backup_dir", dir, "backups", list, "last_job",
                          job ? job : json_null());
    mesh_api_reply_json(r, 200, o);
}

void mesh_api_backup(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, NULL, NULL))
        return;
    const char *id = r->params[0];
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st;
    if (evhttp_request_get_command(r->ev) == EVHTTP_REQ_DELETE) {
        st = mesh_backup_delete(r->node->backups, id, &err);
        audit(r, MESH_AUDIT_ADMIN_BACKUP_DELETE, id, st, err.msg);
        if (st != MESH_OK) {
            mesh_req_error(r, st, err.msg, NULL);
            return;
        }
        LOG_INFO("api", "backup %s deleted by %s", id, r->who.name);
        mesh_api_reply_json(r, 200, json_pack("{s:s}", "deleted", id));
        return;
    }
    json_t *job = mesh_backup_job(r->node->backups, id);
    json_t *m = NULL;
    st = mesh_backup_get(r->node->backups, id, &m, &err);
    if (st == MESH_NOT_FOUND && job) {
        /* still being made */
        mesh_api_reply_json(r, 200, json_pack("{s:s,s:o}", "id", id, "job", job));
        return;
    }
    if (st != MESH_OK) {
        json_decref(job);
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    if (job)
        json_object_set_new(m, "job", job);
    mesh_api_reply_json(r, 200, m);
}

void mesh_api_backup_verify(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, NULL, NULL))
        return;
    const char *id = r->params[0];
    mesh_err_t err;
    mesh_err_clear(&err);
    if (!mesh_archive_id_ok(id)) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "no backup '%.60s'", id);
        return;
    }
    char path[4200];
    mesh_backup_path(r->node->backups, id, path, sizeof path);
    json_t *m = NULL;
    int64_t t0 = mesh_mono_ns();
    mesh_status_t st = mesh_backup_verify_file(path, r->node->kek, NULL, NULL, &m, &err);
    if (st == MESH_NOT_FOUND)
        mesh_err_set(&err, st, "no backup '%s'", id);
    audit(r, MESH_AUDIT_ADMIN_BACKUP_VERIFY, id, st, err.msg);
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    json_object_set_new(m, "verify_ms", json_integer((mesh_mono_ns() - t0) / 1000000));
    mesh_api_reply_json(r, 200, m);
}
