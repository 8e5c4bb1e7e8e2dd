/*
 * test_space.c - the free-space guard: a reserve larger than the disk refuses every write
 * with MESH_NOSPACE and a message naming the domain, the free space and the reserve; a
 * reserve of 0 never refuses; refusals and disk-full notes are counted; sizes print in
 * binary units.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/space.h"

int main(void);

static void test_reserve_refuses(void **state)
{
    (void)state;
    mesh_space_t *s;
    mesh_err_t err;
    /* no disk here has 2^50 bytes free */
    assert_int_equal(mesh_space_new("/tmp", 1LL << 50, &s, &err), MESH_OK);
    mesh_err_clear(&err);
    assert_int_equal(mesh_space_check(s, "factory-a", 100, &err), MESH_NOSPACE);
    assert_non_null(strstr(err.msg, "domain factory-a"));
    assert_non_null(strstr(err.msg, "free on the data disk"));
    assert_non_null(strstr(err.msg, "reserve of 1.0 PiB"));
    assert_non_null(strstr(err.msg, "min_free_space"));
    assert_int_equal(mesh_space_check(s, "factory-a", 0, NULL), MESH_NOSPACE);
    mesh_space_note_full(s);
    mesh_space_stats_t st;
    mesh_space_stats(s, &st);
    assert_int_equal(st.refused, 2);
    assert_int_equal(st.enospc, 1);
    assert_int_equal(st.min_free, 1LL << 50);
    assert_true(st.free_bytes >= 0);
    assert_true(st.total_bytes >= st.free_bytes);
    mesh_space_free(s);
}

static void test_zero_reserve_never_refuses(void **state)
{
    (void)state;
    mesh_space_t *s;
    assert_int_equal(mesh_space_new("/tmp", 0, &s, NULL), MESH_OK);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(mesh_space_check(s, "d", 1 << 20, NULL), MESH_OK);
    mesh_space_stats_t st;
    mesh_space_stats(s, &st);
    assert_int_equal(st.refused, 0);
    mesh_space_free(s);
    /* NULL: no guard */
    assert_int_equal(mesh_space_check(NULL, "d", 1, NULL), MESH_OK);
    mesh_space_note_full(NULL);
    mesh_space_stats(NULL, &st);
    assert_int_equal(st.free_bytes, -1);
    mesh_space_free(NULL);
}

static void test_missing_dir_is_not_a_refusal(void **state)
{
    (void)state;
    /* statvfs fails: the figures are unknown, and a write is not refused on a guess */
    mesh_space_t *s;
    assert_int_equal(mesh_space_new("/nonexistent/meshd-space", 1 << 20, &s, NULL), MESH_OK);
    assert_int_equal(mesh_space_check(s, "d", 1, NULL), MESH_OK);
    mesh_space_stats_t st;
    mesh_space_stats(s, &st);
    assert_int_equal(st.free_bytes, -1);
    mesh_space_free(s);
}

static void test_human(void **state)
{
    (void)state;
    char b[32];
    assert_string_equal(mesh_space_human(0, b), "0 B");
    assert_string_equal(mesh_space_human(1023, b), "1023 B");
    assert_string_equal(mesh_space_human(1536, b), "1.5 KiB");
    assert_string_equal(mesh_space_human(64LL << 20, b), "64.0 MiB");
    assert_string_equal(mesh_space_human(-1, b), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserve_refuses),
        cmocka_unit_test(test_zero_reserve_never_refuses),
        cmocka_unit_test(test_missing_dir_is_not_a_refusal),
        cmocka_unit_test(test_human),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
