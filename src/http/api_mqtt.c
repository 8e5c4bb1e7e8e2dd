/*
 * api_mqtt.c - MQTT ingest: the mappings (list, create, show, delete) and the connection's
 * status.
 *
 * Deny by default: a mapping makes messages write into a domain, so managing one needs admin
 * on that domain (a domain's owners have it); the list shows the mappings into domains the
 * caller administers; the status (broker, client id, last error, every mapping) needs admin on
 * the node. Creations and deletions are audited (admin.mqtt_mapping.*) by the server after the
 * handler, like the access API's changes.
 */
#include <string.h>

#include "http/internal.h"
#include "mqtt/client.h"

static bool admin_of(void *arg, const char *domain)
{
    return mesh_req_decide(arg, MESH_ACT_ADMIN, domain, NULL, NULL);
}

static void reply_buf(mesh_req_t *r, int code, mesh_buf_t *b)
{
    mesh_req_json(r, code, b);
    mesh_buf_free(b);
}

void mesh_api_mqtt_status(mesh_req_t *r)
{
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, NULL, NULL))
        return;
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    mesh_mqtt_status_json(r->node->mqtt, &b);
    reply_buf(r, 200, &b);
}

static void create(mesh_req_t *r)
{
    const char *body;
    size_t n;
    if (mesh_req_body(r, &body, &n) != MESH_OK)
        return;
    mesh_mqtt_mapping_t m;
    mesh_err_t err;
    mesh_err_clear(&err);
    mesh_status_t st = mesh_mqtt_mapping_from_json(body, n, &m, &err);
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, m.domain, NULL)) {
        mesh_mqtt_mapping_free(&m);
        return;
    }
    char name[64];
    memcpy(name, m.name, sizeof name);
    st = mesh_mqtt_mapping_add(r->node->mqtt, &m, &err);
    mesh_mqtt_mapping_free(&m); /* its template was moved on success */
    if (st != MESH_OK) {
        mesh_req_error(r, st, err.msg, NULL);
        return;
    }
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    char domain[64];
    mesh_mqtt_mapping_json(r->node->mqtt, name, domain, &b);
    mesh_buf_addc(&b, '\n');
    reply_buf(r, 201, &b);
}

void mesh_api_mqtt_mappings(mesh_req_t *r)
{
    if (evhttp_request_get_command(r->ev) == EVHTTP_REQ_POST) {
        create(r);
        return;
    }
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    mesh_mqtt_mappings_json(r->node->mqtt, admin_of, r, &b);
    reply_buf(r, 200, &b);
}

void mesh_api_mqtt_mapping(mesh_req_t *r)
{
    const char *name = r->params[0];
    char domain[64] = "";
    if (mesh_mqtt_mapping_json(r->node->mqtt, name, domain, NULL) != MESH_OK) {
        /* whether a mapping exists is for those who could administer one to learn */
        if (mesh_req_allow(r, MESH_ACT_ADMIN, NULL, NULL))
            mesh_req_errorf(r, MESH_NOT_FOUND, "no MQTT mapping named '%.64s'", name);
        return;
    }
    if (!mesh_req_allow(r, MESH_ACT_ADMIN, domain, NULL))
        return;
    mesh_err_t err;
    mesh_err_clear(&err);
    if (evhttp_request_get_command(r->ev) == EVHTTP_REQ_DELETE) {
        mesh_status_t st = mesh_mqtt_mapping_remove(r->node->mqtt, name, &err);
        if (st != MESH_OK) {
            mesh_req_error(r, st, err.msg, NULL);
            return;
        }
        mesh_req_reply(r, 204, NULL, NULL, 0);
        return;
    }
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_BUF_UNLIMITED);
    if (mesh_mqtt_mapping_json(r->node->mqtt, name, domain, &b) != MESH_OK) {
        mesh_buf_free(&b);
        mesh_req_errorf(r, MESH_NOT_FOUND, "no MQTT mapping named '%.64s'", name);
        return;
    }
    mesh_buf_addc(&b, '\n');
    reply_buf(r, 200, &b);
}
