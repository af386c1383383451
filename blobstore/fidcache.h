/* fidcache.h - fids handed out by the chunkmaster, kept in memory.
 *
 * The master hands out ranges [begin, end) (GET /v1/chunkmaster/fid?count=N).
 * Writers take one fid per piece attempt from the cache, in order: the oldest
 * range first, each range from its start. When fewer than low_water fids
 * remain, spy_fidcache_take says so, and the caller (blobstore) wakes its
 * refresher thread, which fetches another range; so writes go on through a
 * master outage until the cache runs dry, and then fail with SPY_EUNAVAIL.
 *
 * Fids are never given out twice by one cache; unused fids are lost when the
 * process exits (the master never reuses a range either, so gaps are fine).
 *
 * Thread-safe: every loop takes fids and the refresher adds ranges; a mutex
 * guards the few words of state. */
#ifndef SPY_BLOB_FIDCACHE_H
#define SPY_BLOB_FIDCACHE_H

#include <stdint.h>

#define SPY_FIDCACHE_MAX_RANGES 64 /* ranges held at once; more is refused */

struct spy_fidcache;

/* An empty cache that asks for a refill below low_water fids. NULL if out of
 * memory. */
struct spy_fidcache *spy_fidcache_new(uint64_t low_water);
void spy_fidcache_free(struct spy_fidcache *fc);

/* Takes the next fid. Returns SPY_OK, or SPY_EUNAVAIL when the cache is empty.
 * *want_refill (may be NULL) is set to 1 when the fids left (after this take)
 * are below low_water, else 0; also set on SPY_EUNAVAIL. */
int spy_fidcache_take(struct spy_fidcache *fc, uint64_t *fid, int *want_refill);

/* Appends the range [begin, end). SPY_OK, SPY_EINVAL if begin >= end, or
 * SPY_ENOMEM when SPY_FIDCACHE_MAX_RANGES ranges are already held. */
int spy_fidcache_add(struct spy_fidcache *fc, uint64_t begin, uint64_t end);

/* Fids left. */
uint64_t spy_fidcache_available(struct spy_fidcache *fc);

/* 1 if fewer than low_water fids are left. */
int spy_fidcache_needs_refill(struct spy_fidcache *fc);

#endif
