/*
 * api_keys.c - encryption at rest over the API (admin only): GET /v1/keys (what is
 * encrypted under which key) and POST /v1/keys/rotate (a new KEK for every key file, or a
 * new data key for one domain).
 *
 * The new KEK travels in the request body (meshctl reads it from a local file, variable or
 * command): meshd never runs a command or reads a path named by a request. Key material in
 * the body is overwritten once parsed and never logged.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "crypt/vfs.h"
#include "http/internal.h"

static void reply(mesh_req_t *r, int code, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(j);
    if (s == NULL) {
        mesh_req_errorf(r, MESH_NOMEM, "out of memory");
        return;
    }
    mesh_req_reply(r, code, "application/json", s, strlen(s));
    free(s);
}

void mesh_api_crypt_metrics(mesh_req_t *r, mesh_buf_t *b)
{
    if (r->node->kek == NULL)
        return;
    mesh_crypt_stats_t st;
    mesh_crypt_stats(&st);
    mesh_metrics_help(b, "meshd_crypt_pages_sealed_total", "counter",
                      "Database, WAL and journal pages encrypted.");
    mesh_buf_printf(b, "meshd_crypt_pages_sealed_total %llu\n", (unsigned long long)st.sealed);
    mesh_metrics_help(b, "meshd_crypt_pages_opened_total", "counter",
                      "Pages decrypted and authenticated.");
    mesh_buf_printf(b, "meshd_crypt_pages_opened_total %llu\n", (unsigned long long)st.opened);
    mesh_metrics_help(b, "meshd_crypt_auth_failures_total", "counter",
                      "Pages that failed authentication (damage or tampering): alert on any.");
    mesh_buf_printf(b, "meshd_crypt_auth_failures_total %llu\n", (unsigned long long)st.failed);
}

void mesh_api_keys(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, NULL, NULL))
        return;
    mesh_node_t *n = r->node;
    json_t *o = json_object();
    json_object_set_new(o, "encryption", json_boolean(n->kek != NULL));
    if (n->kek) {
        char id[33], label[160];
        mesh_kek_describe(n->kek, id, label, sizeof label);
        json_object_set_new(o, "cipher", json_string("AES-256-GCM"));
        json_object_set_new(o, "kek_id", json_string(id));
        json_object_set_new(o, "kek_source", json_string(label));
        json_object_set_new(o, "kek_in_data_dir", json_boolean(n->kek_in_data_dir));
        mesh_snapshot_t *s = mesh_req_snapshot(r);
        json_t *doms = json_array();
        for (size_t i = 0; i < s->ndoms; i++) {
            mesh_domain_keyinfo_t ki;
            mesh_domain_keyinfo(s->doms[i].dom, &ki);
            json_array_append_new(doms, json_pack("{s:s,s:b,s:I}", "name", s->doms[i].meta.name,
                                                  "encrypted", ki.encrypted, "data_key_generation",
                                                  (json_int_t)ki.gen));
        }
        json_object_set_new(o, "domains", doms);
        mesh_crypt_stats_t cs;
        mesh_crypt_stats(&cs);
        json_object_set_new(o, "auth_failures", json_integer((json_int_t)cs.failed));
    }
    reply(r, 200, o);
}

/* Audits a rotation the caller was allowed to attempt: its outcome and what changed (ids and
 * generations, never a key). */
static void audit_rotation(mesh_req_t *r, mesh_audit_action_t act, const char *domain,
                           mesh_status_t st, const char *error, const char *extra)
{
    mesh_buf_t d;
    mesh_buf_init(&d, 4096);
    mesh_buf_addc(&d, '{');
    if (extra)
        mesh_buf_adds(&d, extra);
    if (st != MESH_OK) {
        mesh_buf_adds(&d, extra ? ",\"error\":" : "\"error\":");
        mesh_buf_add_json_str(&d, error ? error : "", error ? strnlen(error, 512) : 0);
    }
    mesh_buf_addc(&d, '}');
    mesh_audit_rec_t rec = {
        .action = act, .domain = domain, .status = mesh_status_http(st), .details = d.data};
    mesh_req_audit(r, &rec);
    mesh_buf_free(&d);
}

static void rotate_domain(mesh_req_t *r, const char *name)
{
    const mesh_snap_domain_t *sd = mesh_snapshot_domain(mesh_req_snapshot(r), name);
    if (sd == NULL) {
        mesh_req_errorf(r, MESH_NOT_FOUND, "no domain '%s'", name);
        return;
    }
    mesh_rekey_result_t res;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_domain_rekey(sd->dom, &res, &err);
    if (st != MESH_OK) {
        audit_rotation(r, MESH_AUDIT_ADMIN_DATA_KEY_ROTATE, name, st, err.msg, NULL);
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    char extra[128];
    snprintf(extra, sizeof extra, "\"data_key_generation\":%u,\"pages\":%llu", (unsigned)res.gen,
             (unsigned long long)res.pages);
    audit_rotation(r, MESH_AUDIT_ADMIN_DATA_KEY_ROTATE, name, MESH_OK, NULL, extra);
    LOG_INFO("api", "data key of domain %s rotated by %s (generation %u)", name, r->who.name,
             (unsigned)res.gen);
    reply(r, 200,
          json_pack("{s:s,s:I,s:I,s:I,s:I}", "domain", name, "data_key_generation",
                    (json_int_t)res.gen, "pages", (json_int_t)res.pages, "steps",
                    (json_int_t)res.steps, "ms", (json_int_t)res.ms));
}

static void cleanse_json_string(json_t *v)
{
    const char *s = json_string_value(v);
    if (s)
        mesh_cleanse((char *)s, strlen(s)); /* jansson owns a private copy: ours to overwrite */
}

void mesh_api_keys_rotate(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, NULL, NULL))
        return;
    const char *body;
    size_t len;
    if (mesh_req_body(r, &body, &len) != MESH_OK)
        return;
    json_error_t je;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    mesh_cleanse((char *)body, len); /* the request buffer, held until the reply */
    if (!json_is_object(j)) {
        json_decref(j);
        mesh_req_errorf(r, MESH_PARSE, "the body must be a JSON object");
        return;
    }
    const char *key;
    json_t *val;
    int given = 0;
    json_object_foreach(j, key, val)
    {
        if (strcmp(key, "kek") && strcmp(key, "passphrase") && strcmp(key, "generate") &&
            strcmp(key, "domain")) {
            mesh_req_errorf(r, MESH_INVALID,
                            "unknown field '%.60s' (expected one of kek, passphrase, generate, "
                            "domain)",
                            key);
            json_object_foreach(j, key, val) cleanse_json_string(val);
            json_decref(j);
            return;
        }
        given++;
    }
    json_t *jk = json_object_get(j, "kek"), *jp = json_object_get(j, "passphrase");
    json_t *jg = json_object_get(j, "generate"), *jd = json_object_get(j, "domain");
    if (given != 1 || (jk && !json_is_string(jk)) || (jp && !json_is_string(jp)) ||
        (jg && !json_is_true(jg)) || (jd && !json_is_string(jd))) {
        cleanse_json_string(jk);
        cleanse_json_string(jp);
        json_decref(j);
        mesh_req_errorf(r, MESH_INVALID,
                        "give one of: \"kek\" (the new key-encryption key, 64 hex digits or "
                        "base64), \"passphrase\" (a new passphrase), \"generate\": true (a new "
                        "random KEK in the data directory) or \"domain\" (re-encrypt it under a "
                        "new data key)");
        return;
    }
    if (r->node->kek == NULL) {
        cleanse_json_string(jk);
        cleanse_json_string(jp);
        json_decref(j);
        mesh_req_errorf(r, MESH_INVALID, "encryption at rest is off on this node");
        return;
    }
    if (jd) {
        char name[MESH_NAME_MAX + 1];
        snprintf(name, sizeof name, "%s", json_string_value(jd));
        json_decref(j);
        rotate_domain(r, name);
        return;
    }
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_kek_t *next = NULL;
    mesh_status_t st;
    char label[4200];
    if (jk) {
        const char *t = json_string_value(jk);
        uint8_t k[MESH_KEY_BYTES];
        st = mesh_kek_parse_text((const uint8_t *)t, strlen(t), k, &err);
        cleanse_json_string(jk);
        if (st == MESH_OK)
            st = mesh_kek_from_bytes(k, "a KEK given to meshctl keys rotate", &next, &err);
        mesh_cleanse(k, sizeof k);
    } else if (jp) {
        const char *t = json_string_value(jp);
        mesh_kdf_t kdf;
        mesh_kdf_default(&kdf);
        st = mesh_kek_from_passphrase(t, strlen(t), &kdf,
                                      "a passphrase given to meshctl keys rotate", &next, &err);
        cleanse_json_string(jp);
    } else {
        uint8_t k[MESH_KEY_BYTES];
        snprintf(label, sizeof label, "%s/kek.key", r->node->opts.data_dir);
        st = mesh_random(k, sizeof k) == MESH_OK ? mesh_kek_from_bytes(k, label, &next, &err)
                                                 : mesh_err_set(&err, MESH_IO, "no random bytes");
        mesh_cleanse(k, sizeof k);
    }
    json_decref(j);
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    mesh_kek_rotation_t res;
    st = mesh_node_rotate_kek(r->node, next, jg != NULL, &res, &err);
    mesh_kek_free(next);
    if (st != MESH_OK) {
        audit_rotation(r, MESH_AUDIT_ADMIN_KEK_ROTATE, NULL, st, err.msg, NULL);
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    char extra[256];
    snprintf(extra, sizeof extra,
             "\"kek_id\":\"%s\",\"previous_kek_id\":\"%s\",\"key_files\":%zu,"
             "\"kek_in_data_dir\":%s",
             res.kek_id, res.previous_kek_id, res.key_files, res.in_data_dir ? "true" : "false");
    audit_rotation(r, MESH_AUDIT_ADMIN_KEK_ROTATE, NULL, MESH_OK, NULL, extra);
    LOG_INFO("api", "key-encryption key rotated by %s", r->who.name);
    reply(r, 200,
          json_pack("{s:s,s:s,s:I,s:b,s:s}", "kek_id", res.kek_id, "previous_kek_id",
                    res.previous_kek_id, "key_files", (json_int_t)res.key_files, "kek_in_data_dir",
                    res.in_data_dir, "next_start",
                    res.in_data_dir ? "the new KEK is in the data directory's kek.key: nothing "
                                      "to change"
                                    : "configure meshd with the new KEK (kek_file, MESHD_KEK, "
                                      "kek_passphrase_file or kek_command) before it restarts: "
                                      "the old one no longer opens the key files"));
}
