/* Unit tests of the metadata cache (registry/meta_cache.c): holds and
 * destruction, TTL with an injected clock, the byte budget and LRU order,
 * epochs against racing puts, sharding, and a multi-threaded smoke run. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/meta_cache.h"

/* A test object that counts its destruction. */
struct tobj {
    struct spy_meta_obj obj;
    int *destroyed;
    int value;
};

static void tobj_destroy(struct spy_meta_obj *o)
{
    struct tobj *t = (struct tobj *)o;
    (*t->destroyed)++;
    free(t);
}

static struct tobj *tobj_new(int value, size_t cost, int *destroyed)
{
    struct tobj *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    spy_meta_obj_init(&t->obj, cost, tobj_destroy);
    t->destroyed = destroyed;
    t->value = value;
    return t;
}

/* The injected clock. */
static uint64_t fake_now;
static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

static bool put(struct spy_meta_cache *c, const char *key, struct tobj *t, uint32_t ttl)
{
    return spy_meta_cache_put(c, key, strlen(key), t != NULL ? &t->obj : NULL, ttl,
                              spy_meta_cache_epoch(c));
}

/* get_value: the value under key, or -1 if absent. */
static int get_value(struct spy_meta_cache *c, const char *key)
{
    struct spy_meta_obj *o = NULL;
    if (!spy_meta_cache_get(c, key, strlen(key), &o))
        return -1;
    int v = o != NULL ? ((struct tobj *)o)->value : 0;
    spy_meta_obj_drop(o);
    return v;
}

static uint64_t usage_bytes(struct spy_meta_cache *c, uint64_t *entries)
{
    uint64_t b, n;
    spy_meta_cache_usage(c, &b, &n);
    if (entries != NULL)
        *entries = n;
    return b;
}

/* entry_overhead: what an entry costs beyond key and object (measured). */
static uint64_t entry_overhead(void)
{
    struct spy_meta_cache *c = spy_meta_cache_new(1 << 20, 1, fake_clock, NULL);
    assert_true(put(c, "k", NULL, 1000));
    uint64_t b = usage_bytes(c, NULL) - 1;
    spy_meta_cache_free(c);
    return b;
}

static void test_put_get_and_holds(void **state)
{
    (void)state;
    int destroyed = 0;
    fake_now = 1000;
    struct spy_meta_cache *c = spy_meta_cache_new(1 << 20, 4, fake_clock, NULL);
    struct tobj *t = tobj_new(7, 100, &destroyed);
    assert_true(put(c, "b:x", t, 5000));
    assert_int_equal(get_value(c, "b:x"), 7);
    assert_int_equal(get_value(c, "b:y"), -1);
    /* our hold, the cache's hold: dropping ours keeps it alive */
    spy_meta_obj_drop(&t->obj);
    assert_int_equal(destroyed, 0);
    struct spy_meta_obj *held = NULL;
    assert_true(spy_meta_cache_get(c, "b:x", 3, &held));
    spy_meta_cache_invalidate(c, "b:x", 3);
    assert_int_equal(get_value(c, "b:x"), -1);
    assert_int_equal(destroyed, 0); /* still held by us */
    assert_int_equal(((struct tobj *)held)->value, 7);
    spy_meta_obj_drop(held);
    assert_int_equal(destroyed, 1);
    /* presence-only entries */
    assert_true(put(c, "l:r d", NULL, 5000));
    assert_true(spy_meta_cache_get(c, "l:r d", 5, NULL));
    struct spy_meta_obj *none = (struct spy_meta_obj *)1;
    assert_true(spy_meta_cache_get(c, "l:r d", 5, &none));
    assert_null(none);
    spy_meta_cache_free(c);
}

static void test_replace_drops_old(void **state)
{
    (void)state;
    int destroyed = 0;
    struct spy_meta_cache *c = spy_meta_cache_new(1 << 20, 1, fake_clock, NULL);
    struct tobj *a = tobj_new(1, 10, &destroyed), *b = tobj_new(2, 10, &destroyed);
    assert_true(put(c, "k", a, 1000));
    spy_meta_obj_drop(&a->obj);
    assert_true(put(c, "k", b, 1000));
    spy_meta_obj_drop(&b->obj);
    assert_int_equal(destroyed, 1);
    assert_int_equal(get_value(c, "k"), 2);
    uint64_t n;
    usage_bytes(c, &n);
    assert_int_equal(n, 1);
    spy_meta_cache_free(c);
    assert_int_equal(destroyed, 2);
}

static void test_ttl_injected_clock(void **state)
{
    (void)state;
    int destroyed = 0;
    fake_now = 50000;
    struct spy_meta_cache *c = spy_meta_cache_new(1 << 20, 2, fake_clock, NULL);
    struct tobj *t = tobj_new(3, 10, &destroyed);
    assert_true(put(c, "m:r d", t, 60000));
    assert_true(put(c, "t:r tag", NULL, 1000));
    spy_meta_obj_drop(&t->obj);
    fake_now += 999;
    assert_true(spy_meta_cache_get(c, "t:r tag", 7, NULL));
    fake_now += 1; /* exactly the TTL: expired */
    assert_false(spy_meta_cache_get(c, "t:r tag", 7, NULL));
    assert_int_equal(get_value(c, "m:r d"), 3);
    fake_now += 59000 - 1;
    assert_int_equal(get_value(c, "m:r d"), 3);
    fake_now += 1;
    assert_int_equal(get_value(c, "m:r d"), -1);
    assert_int_equal(destroyed, 1); /* the expired entry was removed on lookup */
    uint64_t n;
    assert_int_equal(usage_bytes(c, &n), 0);
    assert_int_equal(n, 0);
    /* ttl 0 stores nothing */
    assert_false(put(c, "x", NULL, 0));
    spy_meta_cache_free(c);
}

static void test_budget_and_lru(void **state)
{
    (void)state;
    int destroyed = 0;
    uint64_t over = entry_overhead();
    uint64_t cost = over + 2 + 1000; /* keys "k0".."k9", objects of 1000 */
    struct spy_meta_cache *c = spy_meta_cache_new(3 * cost, 1, fake_clock, NULL);
    char key[8];
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        struct tobj *t = tobj_new(i, 1000, &destroyed);
        assert_true(put(c, key, t, 100000));
        spy_meta_obj_drop(&t->obj);
    }
    assert_int_equal(usage_bytes(c, NULL), 3 * cost);
    assert_int_equal(get_value(c, "k0"), 0); /* k0 is now the most recent; k1 the oldest */
    struct tobj *t = tobj_new(3, 1000, &destroyed);
    assert_true(put(c, "k3", t, 100000));
    spy_meta_obj_drop(&t->obj);
    assert_int_equal(get_value(c, "k1"), -1);
    assert_int_equal(get_value(c, "k0"), 0);
    assert_int_equal(get_value(c, "k2"), 2);
    assert_int_equal(get_value(c, "k3"), 3);
    assert_int_equal(destroyed, 1);
    assert_true(usage_bytes(c, NULL) <= 3 * cost);
    /* an object bigger than the budget is refused and nothing is evicted */
    struct tobj *big = tobj_new(9, 3 * cost, &destroyed);
    assert_false(put(c, "big", big, 100000));
    spy_meta_obj_drop(&big->obj);
    assert_int_equal(destroyed, 2);
    assert_int_equal(get_value(c, "k0"), 0);
    /* one twice the size evicts the two least recently used */
    struct tobj *two = tobj_new(8, 1000 + cost, &destroyed);
    assert_true(put(c, "k8", two, 100000));
    spy_meta_obj_drop(&two->obj);
    assert_int_equal(get_value(c, "k8"), 8);
    assert_int_equal(get_value(c, "k0"), 0); /* read last above: survives */
    assert_int_equal(get_value(c, "k2"), -1);
    assert_int_equal(get_value(c, "k3"), -1);
    assert_true(usage_bytes(c, NULL) <= 3 * cost);
    spy_meta_cache_free(c);
    assert_int_equal(destroyed, 6);
}

/* A put that read the database before an invalidation must not land. */
static void test_epoch_refuses_stale_put(void **state)
{
    (void)state;
    struct spy_meta_cache *c = spy_meta_cache_new(1 << 20, 8, fake_clock, NULL);
    uint64_t before = spy_meta_cache_epoch(c);
    spy_meta_cache_invalidate(c, "m:r d", 5); /* a delete, even of an absent key */
    assert_false(spy_meta_cache_put(c, "m:r d", 5, NULL, 1000, before));
    assert_false(spy_meta_cache_get(c, "m:r d", 5, NULL));
    assert_true(spy_meta_cache_put(c, "m:r d", 5, NULL, 1000, spy_meta_cache_epoch(c)));
    assert_true(spy_meta_cache_get(c, "m:r d", 5, NULL));
    spy_meta_cache_free(c);

    /* an invalidation refuses stale puts in its own shard only */
    c = spy_meta_cache_new(1 << 20, 256, fake_clock, NULL);
    before = spy_meta_cache_epoch(c);
    spy_meta_cache_invalidate(c, "t:r tag", 7);
    assert_false(spy_meta_cache_put(c, "t:r tag", 7, NULL, 1000, before));
    int stored = 0;
    char key[16];
    for (int i = 0; i < 64; i++) {
        snprintf(key, sizeof(key), "b:%d", i);
        stored += spy_meta_cache_put(c, key, strlen(key), NULL, 1000, before);
    }
    assert_true(stored >= 60);
    spy_meta_cache_free(c);
}

/* Many keys over many shards: all retrievable while within budget (the
 * hash tables grow), and the total stays within budget when over. */
static void test_many_keys_and_shards(void **state)
{
    (void)state;
    fake_now = 0;
    struct spy_meta_cache *c = spy_meta_cache_new(64u << 20, 16, fake_clock, NULL);
    char key[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "b:sha256:%08d", i);
        assert_true(put(c, key, NULL, 1000));
    }
    uint64_t n;
    usage_bytes(c, &n);
    assert_int_equal(n, 20000);
    for (int i = 0; i < 20000; i += 97) {
        snprintf(key, sizeof(key), "b:sha256:%08d", i);
        assert_true(spy_meta_cache_get(c, key, strlen(key), NULL));
    }
    spy_meta_cache_free(c);
    uint64_t budget = 16 * 100 * (entry_overhead() + 17);
    c = spy_meta_cache_new(budget, 16, fake_clock, NULL);
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "b:sha256:%08d", i);
        put(c, key, NULL, 1000);
    }
    assert_true(usage_bytes(c, &n) <= budget);
    assert_true(n > 0 && n <= 1600);
    spy_meta_cache_free(c);
}

/* Readers, writers and invalidators at once; ASan/TSan-style smoke test
 * whose correctness check is the object count at the end. */
struct race_arg {
    struct spy_meta_cache *c;
    int id;
    int *destroyed;
    pthread_mutex_t *mu;
};

static void race_destroy(struct spy_meta_obj *o)
{
    struct tobj *t = (struct tobj *)o;
    __atomic_add_fetch(t->destroyed, 1, __ATOMIC_RELAXED);
    free(t);
}

static void *race_main(void *p)
{
    struct race_arg *a = p;
    char key[16];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "k%d", (i * 7 + a->id) % 64);
        if (i % 3 == 0) {
            struct tobj *t = calloc(1, sizeof(*t));
            spy_meta_obj_init(&t->obj, 64, race_destroy);
            t->destroyed = a->destroyed;
            spy_meta_cache_put(a->c, key, strlen(key), &t->obj, 1000, spy_meta_cache_epoch(a->c));
            spy_meta_obj_drop(&t->obj);
        } else if (i % 11 == 0) {
            spy_meta_cache_invalidate(a->c, key, strlen(key));
        } else {
            struct spy_meta_obj *o = NULL;
            if (spy_meta_cache_get(a->c, key, strlen(key), &o))
                spy_meta_obj_drop(o);
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    int destroyed = 0;
    struct spy_meta_cache *c = spy_meta_cache_new(16 * 1024, 4, NULL, NULL);
    pthread_t th[4];
    struct race_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct race_arg){c, i, &destroyed, NULL};
        pthread_create(&th[i], NULL, race_main, &args[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    spy_meta_cache_free(c);
    /* every object created was destroyed exactly once: 4 x ceil(20000/3) */
    assert_int_equal(destroyed, 4 * 6667);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_and_holds),
        cmocka_unit_test(test_replace_drops_old),
        cmocka_unit_test(test_ttl_injected_clock),
        cmocka_unit_test(test_budget_and_lru),
        cmocka_unit_test(test_epoch_refuses_stale_put),
        cmocka_unit_test(test_many_keys_and_shards),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
