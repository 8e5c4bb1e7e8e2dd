/*
 * fuzz_derive_request.c - libFuzzer target for the body of POST /v1/derive (derive/request.c).
 *
 * Parses arbitrary bytes as a derive request; when it parses, the derivation it gives must be
 * within the bounds the rest of meshd relies on, and the contract written from it (over a
 * fixed source) must parse as a contract, or the target aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/contract.h"
#include "derive/derive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char source_yaml[] =
    "apiVersion: v3.0.2\nkind: DataContract\nid: urn:f\nversion: 1.0.0\nstatus: active\n"
    "domain: f\nschema:\n  - name: readings\n    properties:\n"
    "      - {name: device, logicalType: string, primaryKey: true, primaryKeyPosition: 1}\n"
    "      - {name: ts, logicalType: timestamp, primaryKey: true, primaryKeyPosition: 2}\n"
    "      - {name: temp, logicalType: number}\n      - {name: n, logicalType: integer}\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mesh_derivation_t *d = NULL;
    char desc[1024];
    mesh_err_t err;
    if (mesh_derive_request_parse((const char *)data, size, &d, desc, sizeof desc, &err) != MESH_OK)
        return 0;
    if (d->kind == MESH_DERIVE_SQL) {
        /* the contract of a SQL derivation (one column) must parse and keep the query */
        size_t ql = strlen(d->sql);
        if (ql == 0 || ql > MESH_DERIVE_MAX_SQL || (d->refresh_ns && d->refresh_ns < 1000000000LL))
            abort();
        mesh_lineage_t l;
        memset(&l, 0, sizeof l);
        mesh_lineage_col_t col = {.name = "x", .type = MESH_LT_NUMBER, .xf = MESH_XF_TRANSFORM};
        l.cols = &col;
        l.ncols = 1;
        d->definer = strdup("fuzzer");
        mesh_buf_t y;
        mesh_buf_init(&y, MESH_CONTRACT_MAX_BYTES);
        mesh_derive_spec_t s = {.domain = "f", .name = "sq", .description = desc, .d = d, .l = &l};
        if (mesh_derive_contract(&s, &y, &err) == MESH_OK) {
            mesh_contract_t *c = NULL;
            if (mesh_contract_parse(y.data, y.len, &c, &err) != MESH_OK)
                abort();
            const mesh_derivation_t *cd = c->products[0].derive;
            if (cd == NULL || cd->kind != MESH_DERIVE_SQL || strcmp(cd->sql, d->sql) != 0)
                abort();
            mesh_contract_free(c);
        }
        mesh_buf_free(&y);
        mesh_derivation_free(d);
        return 0;
    }
    if (d->ncolumns == 0 || d->ncolumns > MESH_DERIVE_MAX_COLS ||
        d->ngroup > MESH_DERIVE_MAX_COLS || d->bucket_ns < 1000000LL)
        abort();
    mesh_contract_t *src = NULL;
    if (mesh_contract_parse(source_yaml, sizeof source_yaml - 1, &src, &err) != MESH_OK)
        abort();
    mesh_lineage_t l;
    if (mesh_derive_aggregate_lineage("f", &src->products[0], d, &l, &err) == MESH_OK) {
        mesh_buf_t y;
        mesh_buf_init(&y, MESH_CONTRACT_MAX_BYTES);
        mesh_derive_spec_t s = {.domain = "f", .name = "agg", .description = desc, .d = d, .l = &l};
        if (mesh_derive_contract(&s, &y, &err) == MESH_OK) {
            mesh_contract_t *c = NULL;
            if (mesh_contract_parse(y.data, y.len, &c, &err) != MESH_OK)
                abort();
            mesh_contract_free(c);
        }
        mesh_buf_free(&y);
    }
    mesh_lineage_free(&l);
    mesh_contract_free(src);
    mesh_derivation_free(d);
    return 0;
}
