/* test_mempool.c - the --mem_blocks pool: the limit holds across threads,
 * waiters are woken by a put, a wait times out with NULL, in_use returns to 0. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "chunkserver/mempool.h"
#include "common/log.h"

/* mono_ms: monotonic milliseconds. */
static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_create_limits(void **state)
{
    (void)state;
    assert_null(spy_mempool_create(0));
    struct spy_mempool *pool = spy_mempool_create(3);
    assert_non_null(pool);
    assert_int_equal(spy_mempool_limit(pool), 3);
    assert_int_equal(spy_mempool_in_use(pool), 0);
    uint8_t *b[3];
    for (int i = 0; i < 3; i++) {
        b[i] = spy_mempool_get(pool, 0);
        assert_non_null(b[i]);
        memset(b[i], i, SPY_MEMPOOL_BLOCK); /* the whole block is ours (ASan checks) */
    }
    assert_true(b[0] != b[1] && b[1] != b[2] && b[0] != b[2]);
    assert_int_equal(spy_mempool_in_use(pool), 3);
    assert_null(spy_mempool_get(pool, 0));
    spy_mempool_put(pool, b[1]);
    uint8_t *again = spy_mempool_get(pool, 0);
    assert_ptr_equal(again, b[1]); /* reused, not a fresh malloc */
    for (int i = 0; i < 3; i++)
        spy_mempool_put(pool, b[i]);
    assert_int_equal(spy_mempool_in_use(pool), 0);
    spy_mempool_destroy(pool);
}

static void test_timeout_returns_null(void **state)
{
    (void)state;
    struct spy_mempool *pool = spy_mempool_create(1);
    uint8_t *b = spy_mempool_get(pool, 0);
    assert_non_null(b);
    int64_t t0 = mono_ms();
    assert_null(spy_mempool_get(pool, 100));
    int64_t waited = mono_ms() - t0;
    assert_true(waited >= 99);
    assert_true(waited < 5000);
    spy_mempool_put(pool, b);
    assert_int_equal(spy_mempool_in_use(pool), 0);
    spy_mempool_destroy(pool);
}

struct waiter {
    struct spy_mempool *pool;
    atomic_int started;
    uint8_t *got;
};

/* waiter_thread: waits (long) for a block; it only gets one if a put wakes it. */
static void *waiter_thread(void *arg)
{
    struct waiter *w = arg;
    atomic_store(&w->started, 1);
    w->got = spy_mempool_get(w->pool, 20000);
    return NULL;
}

static void test_waiter_woken(void **state)
{
    (void)state;
    struct spy_mempool *pool = spy_mempool_create(1);
    uint8_t *b = spy_mempool_get(pool, 0);
    struct waiter w = {.pool = pool};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waiter_thread, &w), 0);
    while (!atomic_load(&w.started))
        sched_yield();
    struct timespec pause = {.tv_nsec = 20 * 1000000};
    nanosleep(&pause, NULL); /* likely waiting by now; correct either way */
    int64_t t0 = mono_ms();
    spy_mempool_put(pool, b);
    pthread_join(th, NULL);
    assert_ptr_equal(w.got, b);
    assert_true(mono_ms() - t0 < 10000); /* woken, not timed out */
    assert_int_equal(spy_mempool_in_use(pool), 1);
    spy_mempool_put(pool, w.got);
    assert_int_equal(spy_mempool_in_use(pool), 0);
    spy_mempool_destroy(pool);
}

#define HAMMER_THREADS 12
#define HAMMER_LIMIT   3
#define HAMMER_ROUNDS  300

struct hammer {
    struct spy_mempool *pool;
    atomic_int holding, max_holding;
    atomic_int timeouts;
    atomic_int over_limit; /* times spy_mempool_in_use reported > the limit */
};

/* hammer_thread: takes and returns blocks, recording how many are out. */
static void *hammer_thread(void *arg)
{
    struct hammer *h = arg;
    for (int i = 0; i < HAMMER_ROUNDS; i++) {
        uint8_t *b = spy_mempool_get(h->pool, 20000);
        if (b == NULL) {
            atomic_fetch_add(&h->timeouts, 1);
            continue;
        }
        int now = atomic_fetch_add(&h->holding, 1) + 1;
        int max = atomic_load(&h->max_holding);
        while (now > max && !atomic_compare_exchange_weak(&h->max_holding, &max, now))
            ;
        if (spy_mempool_in_use(h->pool) > HAMMER_LIMIT)
            atomic_fetch_add(&h->over_limit, 1);
        b[0] = (uint8_t)i;
        b[SPY_MEMPOOL_BLOCK - 1] = (uint8_t)i;
        sched_yield();
        atomic_fetch_sub(&h->holding, 1);
        spy_mempool_put(h->pool, b);
    }
    return NULL;
}

static void test_limit_across_threads(void **state)
{
    (void)state;
    struct hammer h = {.pool = spy_mempool_create(HAMMER_LIMIT)};
    pthread_t th[HAMMER_THREADS];
    for (int i = 0; i < HAMMER_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer_thread, &h), 0);
    for (int i = 0; i < HAMMER_THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&h.timeouts), 0);
    assert_int_equal(atomic_load(&h.over_limit), 0);
    assert_true(atomic_load(&h.max_holding) <= HAMMER_LIMIT);
    assert_true(atomic_load(&h.max_holding) >= 1);
    assert_int_equal(spy_mempool_in_use(h.pool), 0);
    spy_mempool_destroy(h.pool);
}

int main(void)
{
    spy_log_set_level(SPY_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_limits),
        cmocka_unit_test(test_timeout_returns_null),
        cmocka_unit_test(test_waiter_woken),
        cmocka_unit_test(test_limit_across_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
