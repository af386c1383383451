/* test_cache.c - the blacklist's back-off (with injected time) and the fid
 * cache (order, refill trigger, empty). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>

#include "blobstore/blacklist.h"
#include "blobstore/fidcache.h"
#include "common/status.h"

static void test_blacklist_backoff(void **state)
{
    (void)state;
    struct spy_blacklist *bl = spy_blacklist_new(1000, 30000);
    assert_non_null(bl);
    const char *s = "127.0.0.1:8001";
    int64_t t = 50000;
    assert_false(spy_blacklist_blocked(bl, s, t));
    /* First failure: blocked for base, then free to probe. */
    assert_int_equal(spy_blacklist_fail(bl, s, t), 1000);
    assert_true(spy_blacklist_blocked(bl, s, t));
    assert_true(spy_blacklist_blocked(bl, s, t + 999));
    assert_false(spy_blacklist_blocked(bl, s, t + 1000));
    assert_int_equal(spy_blacklist_count(bl, t), 1);
    /* Failures while blocked (requests in flight when it died) do not double. */
    assert_int_equal(spy_blacklist_fail(bl, s, t + 10), 1000);
    /* Each failed probe doubles: 2 s, 4 s, 8 s, 16 s, then the 30 s cap. */
    int64_t expect[] = {2000, 4000, 8000, 16000, 30000, 30000};
    t += 1010;
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        assert_false(spy_blacklist_blocked(bl, s, t));
        assert_int_equal(spy_blacklist_fail(bl, s, t), expect[i]);
        assert_true(spy_blacklist_blocked(bl, s, t + expect[i] - 1));
        t += expect[i];
    }
    /* Another server is unaffected. */
    assert_false(spy_blacklist_blocked(bl, "127.0.0.1:8002", t - 1));
    /* A success forgets it: the next failure starts at base again. */
    spy_blacklist_ok(bl, s);
    assert_false(spy_blacklist_blocked(bl, s, t - 1));
    assert_int_equal(spy_blacklist_count(bl, t - 1), 0);
    assert_int_equal(spy_blacklist_fail(bl, s, t), 1000);
    spy_blacklist_free(bl);
}

static void test_blacklist_forgets_quiet_servers(void **state)
{
    (void)state;
    struct spy_blacklist *bl = spy_blacklist_new(100, 1000);
    assert_int_equal(spy_blacklist_fail(bl, "a:1", 0), 100);
    assert_int_equal(spy_blacklist_fail(bl, "a:1", 100), 200);
    /* Long after its block (more than 2 x max), it starts over at base. */
    assert_int_equal(spy_blacklist_fail(bl, "a:1", 100 + 200 + 2000 + 1), 100);
    assert_null(spy_blacklist_new(0, 10));
    assert_null(spy_blacklist_new(10, 5));
    spy_blacklist_free(bl);
}

static void test_blacklist_many(void **state)
{
    (void)state;
    struct spy_blacklist *bl = spy_blacklist_new(1000, 30000);
    char name[32];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "10.0.0.%d:8000", i);
        spy_blacklist_fail(bl, name, 0);
    }
    assert_int_equal(spy_blacklist_count(bl, 0), 100);
    for (int i = 0; i < 100; i += 2) {
        snprintf(name, sizeof(name), "10.0.0.%d:8000", i);
        spy_blacklist_ok(bl, name);
    }
    assert_int_equal(spy_blacklist_count(bl, 0), 50);
    assert_true(spy_blacklist_blocked(bl, "10.0.0.1:8000", 0));
    assert_false(spy_blacklist_blocked(bl, "10.0.0.2:8000", 0));
    spy_blacklist_free(bl);
}

static void test_fids_in_order(void **state)
{
    (void)state;
    struct spy_fidcache *fc = spy_fidcache_new(3);
    assert_non_null(fc);
    uint64_t fid;
    int refill = 0;
    /* Empty: a clear error, and a refill is wanted. */
    assert_int_equal(spy_fidcache_take(fc, &fid, &refill), SPY_EUNAVAIL);
    assert_true(refill);
    assert_true(spy_fidcache_needs_refill(fc));
    assert_int_equal(spy_fidcache_add(fc, 100, 103), SPY_OK);
    assert_int_equal(spy_fidcache_add(fc, 500, 502), SPY_OK);
    assert_int_equal(spy_fidcache_available(fc), 5);
    assert_false(spy_fidcache_needs_refill(fc));
    /* Consumed in order: the first range from its start, then the next. */
    uint64_t expect[] = {100, 101, 102, 500, 501};
    int expect_refill[] = {0, 0, 1, 1, 1}; /* fewer than 3 left after the 3rd take */
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(spy_fidcache_take(fc, &fid, &refill), SPY_OK);
        assert_int_equal(fid, expect[i]);
        assert_int_equal(refill, expect_refill[i]);
    }
    assert_int_equal(spy_fidcache_available(fc), 0);
    assert_int_equal(spy_fidcache_take(fc, &fid, NULL), SPY_EUNAVAIL);
    /* Refilled, it works again. */
    assert_int_equal(spy_fidcache_add(fc, 900, 1000), SPY_OK);
    assert_int_equal(spy_fidcache_take(fc, &fid, &refill), SPY_OK);
    assert_int_equal(fid, 900);
    assert_false(refill);
    spy_fidcache_free(fc);
}

static void test_fids_bad_ranges(void **state)
{
    (void)state;
    struct spy_fidcache *fc = spy_fidcache_new(1);
    assert_int_equal(spy_fidcache_add(fc, 10, 10), SPY_EINVAL);
    assert_int_equal(spy_fidcache_add(fc, 10, 9), SPY_EINVAL);
    for (int i = 0; i < SPY_FIDCACHE_MAX_RANGES; i++)
        assert_int_equal(spy_fidcache_add(fc, (uint64_t)i * 10, (uint64_t)i * 10 + 1), SPY_OK);
    assert_int_equal(spy_fidcache_add(fc, 5000, 5001), SPY_ENOMEM);
    /* The ring wraps: take one range, add one more, all come out in order. */
    uint64_t fid;
    assert_int_equal(spy_fidcache_take(fc, &fid, NULL), SPY_OK);
    assert_int_equal(fid, 0);
    assert_int_equal(spy_fidcache_add(fc, 7000, 7001), SPY_OK);
    for (int i = 1; i < SPY_FIDCACHE_MAX_RANGES; i++) {
        assert_int_equal(spy_fidcache_take(fc, &fid, NULL), SPY_OK);
        assert_int_equal(fid, (uint64_t)i * 10);
    }
    assert_int_equal(spy_fidcache_take(fc, &fid, NULL), SPY_OK);
    assert_int_equal(fid, 7000);
    assert_int_equal(spy_fidcache_take(fc, &fid, NULL), SPY_EUNAVAIL);
    spy_fidcache_free(fc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blacklist_backoff),
        cmocka_unit_test(test_blacklist_forgets_quiet_servers),
        cmocka_unit_test(test_blacklist_many),
        cmocka_unit_test(test_fids_in_order),
        cmocka_unit_test(test_fids_bad_ranges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
