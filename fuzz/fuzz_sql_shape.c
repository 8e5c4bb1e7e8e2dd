/*
 * fuzz_sql_shape.c - libFuzzer target for the SELECT-list splitter of derived products'
 * SQL (derive/sqlshape.c).
 *
 * Splits arbitrary bytes; when it splits, every item must lie inside the input, in order,
 * not overlapping, and the list must end at or after the last item, or the target aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "derive/derive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mesh_sql_shape_t *sh = malloc(sizeof *sh);
    if (sh == NULL)
        return 0;
    if (mesh_sql_select_shape((const char *)data, size, sh) == MESH_OK) {
        if (sh->nitems == 0 || sh->nitems > MESH_SQL_MAX_ITEMS || sh->list_end > size)
            abort();
        size_t end = 0;
        for (size_t i = 0; i < sh->nitems; i++) {
            const mesh_sql_item_t *it = &sh->items[i];
            if (it->len == 0 || it->off < end || it->off + it->len > sh->list_end ||
                strnlen(it->head, sizeof it->head) >= sizeof it->head)
                abort();
            end = it->off + it->len;
        }
    }
    free(sh);
    return 0;
}
