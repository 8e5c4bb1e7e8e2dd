/*
 * fuzz_rule.c - libFuzzer target for the rule parser and the per-series state (rules/rule.c).
 *
 * Parses arbitrary bytes as a rule. When it parses, checks what the engine relies on, and
 * aborts (a finding) when one fails:
 *   - its JSON form parses again as a rule of the same name, kind and condition;
 *   - feeding it values derived from the input never fails and keeps the state's ring
 *     within its bounds; the state encodes and decodes to the same bytes.
 * The same bytes are also decoded as a stored state (untrusted: a damaged database).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "rules/rule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

static void roundtrip_state(const mesh_rstate_t *s)
{
    mesh_buf_t a, b;
    mesh_buf_init(&a, 1 << 20);
    mesh_buf_init(&b, 1 << 20);
    check(mesh_rstate_encode(s, &a) == MESH_OK);
    mesh_rstate_t d;
    check(mesh_rstate_decode((const uint8_t *)a.data, a.len, &d) == MESH_OK);
    check(mesh_rstate_encode(&d, &b) == MESH_OK);
    check(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    mesh_rstate_free(&d);
    mesh_buf_free(&a);
    mesh_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mesh_rstate_t st;
    if (mesh_rstate_decode(data, size, &st) == MESH_OK)
        roundtrip_state(&st);
    mesh_rstate_free(&st);

    mesh_rule_t *r;
    mesh_err_t err;
    if (mesh_rule_parse((const char *)data, size, &r, &err) != MESH_OK)
        return 0;
    mesh_buf_t j;
    mesh_buf_init(&j, 1 << 20);
    check(mesh_rule_json(r, &j) == MESH_OK);
    mesh_rule_t *r2 = NULL;
    /* the JSON form lists every action setting, and may outgrow the input limit */
    if (j.len <= MESH_RULE_MAX_BYTES) {
        check(mesh_rule_parse(j.data, j.len, &r2, &err) == MESH_OK);
        check(strcmp(r2->name, r->name) == 0 && r2->kind == r->kind && r2->above == r->above &&
              r2->for_ns == r->for_ns && r2->nactions == r->nactions);
    }
    mesh_rule_put(r2);
    mesh_buf_free(&j);

    memset(&st, 0, sizeof st);
    int64_t t = 1;
    for (size_t i = 0; i + 2 <= size && i < 4096; i += 2) {
        mesh_reval_t out;
        t += (int64_t)data[i] * 100000000LL;
        double v = (double)(int8_t)data[i + 1];
        check(mesh_rule_step(r, &st, data[i] == 0 ? t - 5 : t, data[i + 1] != 0x7f, v, &out) ==
              MESH_OK);
        check(st.ring_n <= st.ring_cap && st.ring_cap <= MESH_RULE_MAX_SAMPLES);
        mesh_rule_tick(r, &st, t + (int64_t)data[i] * 1000000000LL, &out);
    }
    roundtrip_state(&st);
    mesh_rstate_free(&st);
    mesh_rule_put(r);
    return 0;
}
