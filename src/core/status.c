/*
 * status.c - tables generated from MESH_STATUS_MAP and the error-detail helpers.
 */
#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int http;
    const char *sqlstate;
    int exit;
    const char *text;
} status_table[] = {
#define MESH_X_ROW(name, http, sqlstate, exit, text) {#name, http, sqlstate, exit, text},
    MESH_STATUS_MAP(MESH_X_ROW)
#undef MESH_X_ROW
};

static mesh_status_t clamp(mesh_status_t st)
{
    return ((unsigned)st < MESH_STATUS__COUNT) ? st : MESH_INTERNAL;
}

const char *mesh_status_name(mesh_status_t st)
{
    return status_table[clamp(st)].name;
}

int mesh_status_http(mesh_status_t st)
{
    return status_table[clamp(st)].http;
}

const char *mesh_status_sqlstate(mesh_status_t st)
{
    return status_table[clamp(st)].sqlstate;
}

int mesh_status_exit(mesh_status_t st)
{
    return status_table[clamp(st)].exit;
}

const char *mesh_status_text(mesh_status_t st)
{
    return status_table[clamp(st)].text;
}

mesh_status_t mesh_status_from_http(int http)
{
    if (http >= 200 && http < 300)
        return MESH_OK;
    for (int i = 0; i < MESH_STATUS__COUNT; i++)
        if (status_table[i].http == http)
            return (mesh_status_t)i;
    return http >= 500 ? MESH_INTERNAL : MESH_INVALID;
}

mesh_status_t mesh_err_set(mesh_err_t *err, mesh_status_t code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

void mesh_err_prefix(mesh_err_t *err, const char *fmt, ...)
{
    if (err == NULL)
        return;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s%s", prefix, old);
}

void mesh_err_clear(mesh_err_t *err)
{
    if (err == NULL)
        return;
    err->code = MESH_OK;
    err->msg[0] = '\0';
}
