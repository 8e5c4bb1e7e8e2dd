/*
 * fuzz_contract.c - libFuzzer target for the ODCS contract parser (catalog/contract.c).
 *
 * Parses arbitrary bytes. When a contract parses, it also checks the properties the rest of
 * meshd relies on, and aborts (a finding) when one fails:
 *   - export writes YAML that parses again to the same products (no diff either way), and
 *     exporting that again gives the same text (export is a fixed point);
 *   - each product exported alone parses again to that one product;
 *   - a product diffed against itself reports no change;
 *   - a version compares equal to itself.
 * Export may legitimately outgrow the input limit (escapes lengthen text); that case is
 * skipped, not reported.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/contract.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

/* Exports c (or one product of it) and parses the text again; NULL when the export outgrew
 * the input limit. *text receives the export (freed by the caller). */
static mesh_contract_t *reparse(const mesh_contract_t *c, const char *product, char **text)
{
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_CONTRACT_MAX_BYTES);
    mesh_status_t st = mesh_contract_export(c, product, &b);
    *text = NULL;
    if (st == MESH_TOO_LARGE) {
        mesh_buf_free(&b);
        return NULL;
    }
    check(st == MESH_OK);
    mesh_contract_t *c2 = NULL;
    mesh_err_t err;
    st = mesh_contract_parse(b.data, b.len, &c2, &err);
    check(st == MESH_OK || st == MESH_TOO_LARGE);
    *text = mesh_buf_steal(&b, NULL);
    return c2;
}

static bool same_product(const mesh_product_t *a, const mesh_product_t *b)
{
    mesh_buf_t changes;
    mesh_buf_init(&changes, 1 << 16);
    bool breaking = mesh_product_diff(a, b, &changes) || mesh_product_diff(b, a, NULL);
    bool same = !breaking && changes.len == 0 && strcmp(a->name, b->name) == 0 &&
                a->ncols == b->ncols && a->nkey == b->nkey && a->time_col == b->time_col;
    mesh_buf_free(&changes);
    return same;
}

static void check_round_trip(const mesh_contract_t *c)
{
    char *text, *text2;
    mesh_contract_t *c2 = reparse(c, NULL, &text);
    if (c2 == NULL) {
        free(text);
        return;
    }
    check(c2->nproducts == c->nproducts && mesh_contract_version_cmp(c, c2) == 0);
    for (size_t i = 0; i < c->nproducts; i++)
        check(same_product(&c->products[i], &c2->products[i]));
    mesh_contract_t *c3 = reparse(c2, NULL, &text2);
    check(c3 != NULL && strcmp(text, text2) == 0);
    mesh_contract_free(c3);
    mesh_contract_free(c2);
    free(text);
    free(text2);

    for (size_t i = 0; i < c->nproducts && i < 4; i++) {
        mesh_contract_t *one = reparse(c, c->products[i].name, &text);
        if (one != NULL) {
            check(one->nproducts == 1 && same_product(&c->products[i], &one->products[0]));
            mesh_contract_free(one);
        }
        free(text);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mesh_contract_t *c = NULL;
    mesh_err_t err;
    if (mesh_contract_parse((const char *)data, size, &c, &err) != MESH_OK) {
        check(c == NULL && err.msg[0] != '\0');
        return 0;
    }
    check(mesh_contract_version_cmp(c, c) == 0);
    for (size_t i = 0; i < c->nproducts; i++) {
        const mesh_product_t *p = &c->products[i];
        check(!mesh_product_diff(p, p, NULL));
        check(mesh_contract_product(c, p->name) == p);
        for (size_t j = 0; j < p->ncols; j++)
            check(mesh_product_col(p, p->cols[j].name, strlen(p->cols[j].name)) == (int)j);
    }
    check_round_trip(c);
    mesh_contract_free(c);
    return 0;
}
