/*
 * fuzz_fed_frame.c - the federated scan reply decoder (mesh_fed_frame_decode): rows, error,
 * schema and result (rows and a trailer) frames another node sends back, with plain and
 * compact values (tags 4-6). A decoded rows or result frame encodes again, plain and compact,
 * to frames that decode to the same values and trailer; a schema frame likewise.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/fedwire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(const mesh_datum_t *a, const mesh_datum_t *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case MESH_V_INT:
        return a->i == b->i;
    case MESH_V_REAL:
        return memcmp(&a->d, &b->d, sizeof a->d) == 0;
    case MESH_V_TEXT:
        return a->n == b->n && (a->n == 0 || memcmp(a->s, b->s, a->n) == 0);
    default:
        return true;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mesh_fed_frame_t f;
    mesh_err_t err;
    if (mesh_fed_frame_decode(data, size, &f, &err) != MESH_OK) {
        if (f.vals != NULL || f.schema.tables != NULL)
            abort();
        return 0;
    }
    mesh_buf_t b;
    mesh_buf_init(&b, MESH_FED_MAX_FRAME);
    mesh_fed_compact_t *cz = mesh_fed_compact_new();
    if (cz == NULL)
        abort();
    for (int compact = 0; compact < 2 && (f.kind == MESH_FED_ROWS || f.kind == MESH_FED_RESULT);
         compact++) {
        if (f.ncols > MESH_FED_MAX_COLS || f.nrows > MESH_FED_MAX_ROWS)
            abort();
        mesh_buf_reset(&b);
        mesh_fed_enc_t e;
        mesh_fed_rows_begin(&e, &b, f.ncols);
        if (compact)
            mesh_fed_rows_compact(&e, cz);
        size_t nv = (size_t)f.nrows * f.ncols;
        mesh_status_t st = MESH_OK;
        for (size_t i = 0; i < nv && st == MESH_OK; i++) {
            st = mesh_fed_rows_value(&e, &f.vals[i]);
            if ((i + 1) % f.ncols == 0)
                mesh_fed_rows_row(&e);
        }
        /* compact values written plain (or compact otherwise) may not fit a frame: only
         * the frame's size limit may refuse them */
        if (st == MESH_TOO_LARGE)
            continue;
        if (st != MESH_OK)
            abort();
        e.nrows = f.nrows; /* rows of no columns */
        const mesh_fed_meta_t *m = &f.meta;
        if (f.kind == MESH_FED_RESULT) {
            /* a trailer holds only checked names, known types and bounded texts */
            for (size_t i = 0; i < m->ncols; i++)
                if (strlen(m->cols[i]) > MESH_FED_NAME_MAX ||
                    (m->types[i] != -1 && mesh_fed_type_name(m->types[i]) == NULL))
                    abort();
            if ((m->products && strlen(m->products) > MESH_FED_META_TEXT) ||
                (m->policies && strlen(m->policies) > MESH_FED_META_TEXT) || m->scanned < -1 ||
                m->suppressed < -1 || m->ncols > MESH_FED_MAX_COLS)
                abort();
            st = mesh_fed_rows_meta(&e, m);
            if (st == MESH_TOO_LARGE)
                continue;
            if (st != MESH_OK)
                abort();
        }
        mesh_fed_rows_end(&e, f.last);
        mesh_fed_frame_t g;
        if (mesh_fed_frame_decode(b.data, b.len, &g, &err) != MESH_OK || g.nrows != f.nrows ||
            g.ncols != f.ncols || g.last != f.last || g.kind != f.kind ||
            g.meta.ncols != m->ncols || g.meta.scanned != m->scanned ||
            (m->products == NULL) != (g.meta.products == NULL) ||
            (m->products && strcmp(m->products, g.meta.products) != 0))
            abort();
        for (size_t i = 0; i < m->ncols; i++)
            if (strcmp(m->cols[i], g.meta.cols[i]) != 0 || m->types[i] != g.meta.types[i])
                abort();
        for (size_t i = 0; i < nv; i++)
            if (!same(&f.vals[i], &g.vals[i]))
                abort();
        mesh_fed_frame_free(&g);
    }
    mesh_fed_compact_free(cz);
    if (f.kind == MESH_FED_SCHEMA) {
        if (mesh_fed_schema_encode(&f.schema, &b) == MESH_OK) {
            mesh_fed_frame_t g;
            if (mesh_fed_frame_decode(b.data, b.len, &g, &err) != MESH_OK ||
                g.schema.ntables != f.schema.ntables)
                abort();
            mesh_fed_frame_free(&g);
        }
    } else if (f.kind == MESH_FED_ERROR && (f.code == MESH_OK || f.code >= MESH_STATUS__COUNT ||
                                            strlen(f.msg) >= sizeof f.msg)) {
        abort();
    }
    mesh_buf_free(&b);
    mesh_fed_frame_free(&f);
    return 0;
}
