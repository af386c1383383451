#include "registry/meta_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"

#define INITIAL_BUCKETS 64

/* One cached fact: in its shard's hash chain and in its shard's LRU list
 * (most recently used at lru.next). */
struct entry {
    struct entry *chain;
    struct entry *prev, *next;
    uint64_t hash;
    uint64_t expires_ms;
    uint64_t cost;
    struct spy_meta_obj *obj; /* held; NULL for presence-only facts */
    size_t klen;
    char key[];
};

struct shard {
    pthread_mutex_t mu;
    struct entry **buckets;
    size_t nbuckets; /* a power of two */
    uint64_t count;
    uint64_t bytes, budget;
    uint64_t invalidated; /* the epoch of this shard's last invalidation */
    struct entry lru;     /* sentinel of a circular list */
};

struct spy_meta_cache {
    spy_meta_clock_fn clock;
    void *clock_ctx;
    uint64_t epoch; /* atomic: bumped by every invalidation, in any shard */
    unsigned nshards;
    struct shard shards[];
};

uint64_t spy_meta_clock_monotonic(void *ctx)
{
    (void)ctx;
    return (uint64_t)spy_clock_ms();
}

void spy_meta_obj_init(struct spy_meta_obj *obj, size_t cost,
                       void (*destroy)(struct spy_meta_obj *))
{
    obj->_refs = 1;
    obj->_cost = cost;
    obj->_destroy = destroy;
}

void spy_meta_obj_hold(struct spy_meta_obj *obj)
{
    if (obj != NULL)
        __atomic_add_fetch(&obj->_refs, 1, __ATOMIC_RELAXED);
}

/* spy_meta_obj_drop: the last hold frees; acquire-release so the destroyer
 * sees every write made through other holds. */
void spy_meta_obj_drop(struct spy_meta_obj *obj)
{
    if (obj != NULL && __atomic_sub_fetch(&obj->_refs, 1, __ATOMIC_ACQ_REL) == 0)
        obj->_destroy(obj);
}

/* hash_key: FNV-1a, 64 bits; the low bits pick the bucket, the high the shard. */
static uint64_t hash_key(const char *key, size_t klen)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < klen; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* shard_of: the shard a key hash belongs to. */
static struct shard *shard_of(struct spy_meta_cache *c, uint64_t hash)
{
    return &c->shards[(hash >> 48) % c->nshards];
}

/* lru_unlink: takes e out of its shard's LRU list. */
static void lru_unlink(struct entry *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
}

/* lru_push_front: e becomes the most recently used. */
static void lru_push_front(struct shard *s, struct entry *e)
{
    e->next = s->lru.next;
    e->prev = &s->lru;
    s->lru.next->prev = e;
    s->lru.next = e;
}

/* find: the entry for key and the link pointing at it (for removal). */
static struct entry **find(struct shard *s, uint64_t hash, const char *key, size_t klen)
{
    struct entry **link = &s->buckets[hash & (s->nbuckets - 1)];
    for (; *link != NULL; link = &(*link)->chain) {
        struct entry *e = *link;
        if (e->hash == hash && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return link;
    }
    return link;
}

/* remove_at: unlinks the entry *link from both lists and frees it. */
static void remove_at(struct shard *s, struct entry **link)
{
    struct entry *e = *link;
    *link = e->chain;
    lru_unlink(e);
    s->count--;
    s->bytes -= e->cost;
    spy_meta_obj_drop(e->obj);
    free(e);
}

/* remove_entry: remove_at for an entry in hand. */
static void remove_entry(struct shard *s, struct entry *e)
{
    remove_at(s, find(s, e->hash, e->key, e->klen));
}

/* grow: doubles the bucket array when chains get long; on allocation failure
 * the chains just stay longer. */
static void grow(struct shard *s)
{
    size_t n = s->nbuckets * 2;
    struct entry **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return;
    for (size_t i = 0; i < s->nbuckets; i++) {
        for (struct entry *e = s->buckets[i], *next; e != NULL; e = next) {
            next = e->chain;
            e->chain = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
}

struct spy_meta_cache *spy_meta_cache_new(uint64_t budget, unsigned shards, spy_meta_clock_fn clock,
                                          void *clock_ctx)
{
    if (shards == 0 || shards > 256)
        shards = 16;
    struct spy_meta_cache *c = calloc(1, sizeof(*c) + shards * sizeof(struct shard));
    if (c == NULL) {
        spy_error("meta cache: out of memory");
        return NULL;
    }
    c->clock = clock != NULL ? clock : spy_meta_clock_monotonic;
    c->clock_ctx = clock_ctx;
    c->nshards = shards;
    for (unsigned i = 0; i < shards; i++) {
        struct shard *s = &c->shards[i];
        s->buckets = calloc(INITIAL_BUCKETS, sizeof(*s->buckets));
        if (s->buckets == NULL) {
            c->nshards = i;
            spy_meta_cache_free(c);
            spy_error("meta cache: out of memory");
            return NULL;
        }
        pthread_mutex_init(&s->mu, NULL);
        s->nbuckets = INITIAL_BUCKETS;
        s->budget = budget / shards;
        s->lru.next = s->lru.prev = &s->lru;
    }
    return c;
}

void spy_meta_cache_free(struct spy_meta_cache *c)
{
    if (c == NULL)
        return;
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        while (s->lru.next != &s->lru)
            remove_entry(s, s->lru.next);
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    free(c);
}

uint64_t spy_meta_cache_epoch(struct spy_meta_cache *c)
{
    return __atomic_load_n(&c->epoch, __ATOMIC_ACQUIRE);
}

/* spy_meta_cache_put: an invalidation stamps its shard with the new epoch
 * under the shard lock, and a put compares that stamp under the same lock, so
 * a put either lands before the invalidation (and is removed by it) or sees
 * a stamp newer than its epoch and gives up. Invalidations in other shards
 * do not refuse it. */
bool spy_meta_cache_put(struct spy_meta_cache *c, const char *key, size_t klen,
                        struct spy_meta_obj *obj, uint32_t ttl_ms, uint64_t epoch)
{
    uint64_t hash = hash_key(key, klen);
    struct shard *s = shard_of(c, hash);
    uint64_t cost = sizeof(struct entry) + klen + (obj != NULL ? obj->_cost : 0);
    if (ttl_ms == 0 || cost > s->budget)
        return false;
    struct entry *e = malloc(sizeof(*e) + klen);
    if (e == NULL)
        return false;
    memcpy(e->key, key, klen);
    e->klen = klen;
    e->hash = hash;
    e->cost = cost;
    e->obj = obj;
    e->expires_ms = c->clock(c->clock_ctx) + ttl_ms;
    pthread_mutex_lock(&s->mu);
    if (s->invalidated > epoch) {
        pthread_mutex_unlock(&s->mu);
        free(e);
        return false;
    }
    spy_meta_obj_hold(obj);
    struct entry **link = find(s, hash, key, klen);
    if (*link != NULL)
        remove_at(s, link);
    while (s->bytes + cost > s->budget && s->lru.prev != &s->lru)
        remove_entry(s, s->lru.prev);
    if (s->count >= s->nbuckets)
        grow(s);
    link = &s->buckets[hash & (s->nbuckets - 1)];
    e->chain = *link;
    *link = e;
    lru_push_front(s, e);
    s->count++;
    s->bytes += cost;
    pthread_mutex_unlock(&s->mu);
    return true;
}

bool spy_meta_cache_get(struct spy_meta_cache *c, const char *key, size_t klen,
                        struct spy_meta_obj **obj)
{
    uint64_t hash = hash_key(key, klen);
    struct shard *s = shard_of(c, hash);
    uint64_t now = c->clock(c->clock_ctx);
    bool found = false;
    pthread_mutex_lock(&s->mu);
    struct entry **link = find(s, hash, key, klen);
    struct entry *e = *link;
    if (e != NULL && now >= e->expires_ms) {
        remove_at(s, link);
    } else if (e != NULL) {
        lru_unlink(e);
        lru_push_front(s, e);
        if (obj != NULL) {
            spy_meta_obj_hold(e->obj);
            *obj = e->obj;
        }
        found = true;
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

void spy_meta_cache_invalidate(struct spy_meta_cache *c, const char *key, size_t klen)
{
    uint64_t hash = hash_key(key, klen);
    struct shard *s = shard_of(c, hash);
    pthread_mutex_lock(&s->mu);
    s->invalidated = __atomic_add_fetch(&c->epoch, 1, __ATOMIC_ACQ_REL);
    struct entry **link = find(s, hash, key, klen);
    if (*link != NULL)
        remove_at(s, link);
    pthread_mutex_unlock(&s->mu);
}

void spy_meta_cache_usage(struct spy_meta_cache *c, uint64_t *bytes, uint64_t *entries)
{
    uint64_t b = 0, n = 0;
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        pthread_mutex_lock(&s->mu);
        b += s->bytes;
        n += s->count;
        pthread_mutex_unlock(&s->mu);
    }
    *bytes = b;
    *entries = n;
}
