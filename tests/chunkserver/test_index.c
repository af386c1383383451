/* test_index: the fid index: states and their transitions, refusal of
 * duplicates, growth across many doublings, removal keeping every other
 * fid reachable, and recovery's order-independent PUT/DEL loading. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>

#include "chunkserver/index.h"
#include "common/status.h"

#define MANY 200000u

/* entry -- a location derived from the fid, so lookups can be checked. */
static struct spy_index_entry entry(uint64_t fid)
{
    struct spy_index_entry e = {
        .fid = fid,
        .offset = 4096 + (fid % 1000) * 8,
        .body_len = fid % 77777,
        .timestamp = (uint32_t)(fid * 3),
        .chunk_id = (uint32_t)(fid % 20) + 1,
    };
    return e;
}

/* rand64 -- xorshift64*, deterministic per seed. */
static uint64_t rand64(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static void test_states(void **state)
{
    (void)state;
    struct spy_index *idx = spy_index_create(0);
    assert_non_null(idx);
    struct spy_index_entry got, e = entry(7);
    assert_int_equal(spy_index_lookup(idx, 7, &got), SPY_ENOTFOUND);
    assert_int_equal(spy_index_reserve(idx, 7), SPY_OK);
    assert_int_equal(spy_index_lookup(idx, 7, &got), SPY_OK);
    assert_int_equal(got.state, SPY_INDEX_PENDING);
    assert_int_equal(spy_index_reserve(idx, 7), SPY_EEXISTS); /* pending */
    assert_int_equal(spy_index_commit(idx, &e), SPY_OK);
    assert_int_equal(spy_index_commit(idx, &e), SPY_ENOTFOUND); /* not pending any more */
    assert_int_equal(spy_index_lookup(idx, 7, &got), SPY_OK);
    assert_int_equal(got.state, SPY_INDEX_LIVE);
    assert_int_equal(got.offset, e.offset);
    assert_int_equal(got.body_len, e.body_len);
    assert_int_equal(got.chunk_id, e.chunk_id);
    assert_int_equal(got.timestamp, e.timestamp);
    assert_int_equal(spy_index_reserve(idx, 7), SPY_EEXISTS); /* live */
    assert_int_equal(spy_index_release(idx, 7), SPY_ENOTFOUND);
    assert_int_equal(spy_index_delete(idx, 7, &got), SPY_OK);
    assert_int_equal(got.state, SPY_INDEX_LIVE);
    assert_int_equal(spy_index_delete(idx, 7, &got), SPY_ENOTFOUND);
    assert_int_equal(got.state, SPY_INDEX_DELETED);
    assert_int_equal(spy_index_reserve(idx, 7), SPY_EEXISTS); /* deleted: never reused */
    /* An aborted put frees its fid. fid 0 is an ordinary fid. */
    assert_int_equal(spy_index_reserve(idx, 0), SPY_OK);
    assert_int_equal(spy_index_release(idx, 0), SPY_OK);
    assert_int_equal(spy_index_lookup(idx, 0, &got), SPY_ENOTFOUND);
    assert_int_equal(spy_index_reserve(idx, 0), SPY_OK);
    uint64_t live, deleted;
    spy_index_counts(idx, &live, &deleted);
    assert_int_equal(live, 0);
    assert_int_equal(deleted, 1);
    spy_index_destroy(idx);
}

static void test_growth_many_random_fids(void **state)
{
    (void)state;
    struct spy_index *idx = spy_index_create(0);
    uint64_t *fids = malloc(MANY * sizeof(*fids));
    assert_true(idx != NULL && fids != NULL);
    uint64_t seed = 88172645463325252ull;
    uint64_t mem0 = spy_index_memory(idx);
    for (uint32_t i = 0; i < MANY; i++) {
        fids[i] = rand64(&seed);
        assert_int_equal(spy_index_reserve(idx, fids[i]), SPY_OK);
        struct spy_index_entry e = entry(fids[i]);
        assert_int_equal(spy_index_commit(idx, &e), SPY_OK);
    }
    assert_true(spy_index_memory(idx) >= mem0 * 128); /* grew through 7+ doublings */
    assert_true(spy_index_memory(idx) <= 32ull * MANY * 4 / 3 * 2);
    for (uint32_t i = 0; i < MANY; i++) {
        struct spy_index_entry got, want = entry(fids[i]);
        assert_int_equal(spy_index_lookup(idx, fids[i], &got), SPY_OK);
        assert_int_equal(got.state, SPY_INDEX_LIVE);
        assert_int_equal(got.offset, want.offset);
        assert_int_equal(got.chunk_id, want.chunk_id);
        assert_int_equal(spy_index_reserve(idx, fids[i]), SPY_EEXISTS);
    }
    uint64_t other = 12345; /* another sequence: none of these was inserted */
    for (int i = 0; i < 10000; i++) {
        struct spy_index_entry got;
        assert_int_equal(spy_index_lookup(idx, rand64(&other), &got), SPY_ENOTFOUND);
    }
    uint64_t live, deleted;
    spy_index_counts(idx, &live, &deleted);
    assert_int_equal(live, MANY);
    free(fids);
    spy_index_destroy(idx);
}

static void test_release_keeps_probe_runs(void **state)
{
    (void)state;
    /* Sequential fids in a small table make long probe runs after mixing
     * collisions; releasing every third must leave the others reachable. */
    struct spy_index *idx = spy_index_create(0);
    assert_non_null(idx);
    for (uint64_t fid = 1; fid <= 50000; fid++)
        assert_int_equal(spy_index_reserve(idx, fid), SPY_OK);
    for (uint64_t fid = 3; fid <= 50000; fid += 3)
        assert_int_equal(spy_index_release(idx, fid), SPY_OK);
    for (uint64_t fid = 1; fid <= 50000; fid++) {
        struct spy_index_entry got;
        int rc = spy_index_lookup(idx, fid, &got);
        if (fid % 3 == 0)
            assert_int_equal(rc, SPY_ENOTFOUND);
        else
            assert_int_equal(rc, SPY_OK);
    }
    for (uint64_t fid = 3; fid <= 50000; fid += 3)
        assert_int_equal(spy_index_reserve(idx, fid), SPY_OK);
    spy_index_destroy(idx);
}

static void test_load_order_independent(void **state)
{
    (void)state;
    struct spy_index *idx = spy_index_create(100);
    assert_non_null(idx);
    struct spy_index_entry was, got, e = entry(10);
    /* PUT then DEL. */
    assert_int_equal(spy_index_load_put(idx, &e, &was), SPY_OK);
    assert_int_equal(spy_index_load_del(idx, 10, &was), SPY_OK);
    assert_int_equal(was.state, SPY_INDEX_LIVE);
    assert_int_equal(was.body_len, e.body_len);
    assert_int_equal(spy_index_lookup(idx, 10, &got), SPY_OK);
    assert_int_equal(got.state, SPY_INDEX_DELETED);
    /* DEL then PUT: still deleted, and the PUT's location is remembered. */
    e = entry(11);
    assert_int_equal(spy_index_load_del(idx, 11, &was), SPY_OK);
    assert_int_equal(was.state, SPY_INDEX_EMPTY);
    assert_int_equal(spy_index_load_put(idx, &e, &was), SPY_EEXISTS);
    assert_int_equal(was.state, SPY_INDEX_DELETED);
    assert_int_equal(spy_index_lookup(idx, 11, &got), SPY_OK);
    assert_int_equal(got.state, SPY_INDEX_DELETED);
    assert_int_equal(got.chunk_id, e.chunk_id);
    /* A duplicate PUT keeps the first. */
    struct spy_index_entry first = entry(12), second = entry(12);
    second.offset += 800;
    assert_int_equal(spy_index_load_put(idx, &first, &was), SPY_OK);
    assert_int_equal(spy_index_load_put(idx, &second, &was), SPY_EEXISTS);
    assert_int_equal(was.state, SPY_INDEX_LIVE);
    assert_int_equal(spy_index_lookup(idx, 12, &got), SPY_OK);
    assert_int_equal(got.offset, first.offset);
    /* Two DELs of one fid count once. */
    assert_int_equal(spy_index_load_del(idx, 11, &was), SPY_OK);
    uint64_t live, deleted;
    spy_index_counts(idx, &live, &deleted);
    assert_int_equal(live, 1);
    assert_int_equal(deleted, 2);
    spy_index_destroy(idx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_growth_many_random_fids),
        cmocka_unit_test(test_release_keeps_probe_runs),
        cmocka_unit_test(test_load_order_independent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
