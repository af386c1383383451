/* fidcache.c - a FIFO of fid ranges behind a mutex (see fidcache.h). */
#include "blobstore/fidcache.h"

#include <pthread.h>
#include <stdlib.h>

#include "common/status.h"

struct range {
    uint64_t next, end; /* fids next..end-1 are left */
};

struct spy_fidcache {
    pthread_mutex_t mu;
    uint64_t low_water;
    struct range ranges[SPY_FIDCACHE_MAX_RANGES]; /* a ring: head is the oldest */
    unsigned head, count;
    uint64_t available;
};

/* spy_fidcache_new: an empty cache. */
struct spy_fidcache *spy_fidcache_new(uint64_t low_water)
{
    struct spy_fidcache *fc = calloc(1, sizeof(*fc));
    if (fc == NULL)
        return NULL;
    pthread_mutex_init(&fc->mu, NULL);
    fc->low_water = low_water;
    return fc;
}

/* spy_fidcache_free: frees the cache. */
void spy_fidcache_free(struct spy_fidcache *fc)
{
    if (fc == NULL)
        return;
    pthread_mutex_destroy(&fc->mu);
    free(fc);
}

/* spy_fidcache_take: the oldest range's next fid; says when to refill. */
int spy_fidcache_take(struct spy_fidcache *fc, uint64_t *fid, int *want_refill)
{
    pthread_mutex_lock(&fc->mu);
    int rc = SPY_EUNAVAIL;
    if (fc->count > 0) {
        struct range *r = &fc->ranges[fc->head];
        *fid = r->next++;
        fc->available--;
        if (r->next == r->end) {
            fc->head = (fc->head + 1) % SPY_FIDCACHE_MAX_RANGES;
            fc->count--;
        }
        rc = SPY_OK;
    }
    if (want_refill != NULL)
        *want_refill = fc->available < fc->low_water;
    pthread_mutex_unlock(&fc->mu);
    return rc;
}

/* spy_fidcache_add: appends a range behind the others. */
int spy_fidcache_add(struct spy_fidcache *fc, uint64_t begin, uint64_t end)
{
    if (begin >= end)
        return SPY_EINVAL;
    pthread_mutex_lock(&fc->mu);
    int rc = SPY_ENOMEM;
    if (fc->count < SPY_FIDCACHE_MAX_RANGES) {
        unsigned slot = (fc->head + fc->count) % SPY_FIDCACHE_MAX_RANGES;
        fc->ranges[slot] = (struct range){.next = begin, .end = end};
        fc->count++;
        fc->available += end - begin;
        rc = SPY_OK;
    }
    pthread_mutex_unlock(&fc->mu);
    return rc;
}

/* spy_fidcache_available: fids left. */
uint64_t spy_fidcache_available(struct spy_fidcache *fc)
{
    pthread_mutex_lock(&fc->mu);
    uint64_t n = fc->available;
    pthread_mutex_unlock(&fc->mu);
    return n;
}

/* spy_fidcache_needs_refill: below the low-water mark? */
int spy_fidcache_needs_refill(struct spy_fidcache *fc)
{
    pthread_mutex_lock(&fc->mu);
    int low = fc->available < fc->low_water;
    pthread_mutex_unlock(&fc->mu);
    return low;
}
