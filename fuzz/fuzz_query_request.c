/*
 * fuzz_query_request.c - the query request body (JSON) and the schema-reference scanner that
 * reads untrusted SQL before it reaches SQLite.
 */
#include <stdint.h>
#include <string.h>

#include "query/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t refs;

static void count_ref(void *arg, const char *name, size_t n)
{
    (void)arg;
    if (n > 0 && name[0] && name[n - 1] != 1)
        refs++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mesh_query_request_t r;
    mesh_err_t err;
    if (mesh_query_request_parse((const char *)data, size, false, &r, &err) == MESH_OK) {
        if (r.sql)
            mesh_sql_schema_refs(r.sql, r.sql_len, count_ref, NULL);
        mesh_query_request_free(&r);
    }
    mesh_sql_schema_refs((const char *)data, size, count_ref, NULL);
    if (mesh_query_request_parse((const char *)data, size, true, &r, &err) == MESH_OK)
        mesh_query_request_free(&r);
    return 0;
}
