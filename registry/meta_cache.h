/* meta_cache.h - the metadata layer's in-memory cache: a bounded, sharded LRU
 * of reference-counted immutable objects (struct spy_meta_obj), each entry
 * with its own time to live.
 *
 * Why: blob and manifest lookups are content-addressed, so their answers never
 * change while the object exists; serving them from memory keeps MySQL off the
 * hot read path. Deletions are the exception, handled two ways:
 *  - spy_meta_cache_invalidate() removes a key, bumps the cache's epoch and
 *    stamps the key's shard with it;
 *  - a put carries the epoch its caller read BEFORE asking MySQL, and is
 *    dropped if its shard was stamped since. So a reader that raced with a
 *    local delete can never re-insert the deleted fact (and deletes of other
 *    keys refuse only the puts that share their shard).
 * Facts deleted by another process stay until their TTL ends or they are
 * evicted (docs/metadata.md gives the bounds). Negative answers are never
 * cached.
 *
 * Budget: every entry costs sizeof(entry) + key length + the object's _cost;
 * the budget is split evenly across shards, and each shard evicts its least
 * recently used entries to stay within its share. An entry bigger than a
 * shard's share is not cached.
 *
 * Threads: every function is thread-safe (one mutex per shard; the key's hash
 * picks the shard). Objects handed out are held (refcount) and must be
 * dropped with spy_meta_obj_drop. */
#ifndef SPY_META_CACHE_H
#define SPY_META_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/meta.h"

/* Milliseconds from any fixed origin; injected so tests control time. */
typedef uint64_t (*spy_meta_clock_fn)(void *ctx);

struct spy_meta_cache;

/* Monotonic milliseconds (CLOCK_MONOTONIC); the default clock. */
uint64_t spy_meta_clock_monotonic(void *ctx);

/* A cache of 'budget' bytes over 'shards' shards (1..256). clock NULL means
 * spy_meta_clock_monotonic. Returns NULL when out of memory (logged). */
struct spy_meta_cache *spy_meta_cache_new(uint64_t budget, unsigned shards, spy_meta_clock_fn clock,
                                          void *clock_ctx);

/* Drops every entry (and its hold on its object) and frees the cache. */
void spy_meta_cache_free(struct spy_meta_cache *c);

/* The current epoch: read it before the database query whose answer you will
 * put. */
uint64_t spy_meta_cache_epoch(struct spy_meta_cache *c);

/* Stores key -> obj (obj may be NULL: the key's presence is the fact) for
 * ttl_ms, replacing any entry for key. Takes its own hold on obj. Returns
 * false, storing nothing, when ttl_ms is 0, the entry is over a shard's
 * budget, or the key's shard saw an invalidation since 'epoch'. */
bool spy_meta_cache_put(struct spy_meta_cache *c, const char *key, size_t klen,
                        struct spy_meta_obj *obj, uint32_t ttl_ms, uint64_t epoch);

/* Looks key up. Returns true when a fresh entry exists, with *obj set to a
 * new hold on its object (or NULL for a presence-only entry); obj may be NULL
 * to only test presence. An expired entry is removed and reads as absent. */
bool spy_meta_cache_get(struct spy_meta_cache *c, const char *key, size_t klen,
                        struct spy_meta_obj **obj);

/* Removes key if present, bumps the epoch and stamps the key's shard (always,
 * so racing puts of the old fact are refused). */
void spy_meta_cache_invalidate(struct spy_meta_cache *c, const char *key, size_t klen);

/* Bytes charged and entries held now, summed over the shards. */
void spy_meta_cache_usage(struct spy_meta_cache *c, uint64_t *bytes, uint64_t *entries);

/* Object reference counting (atomic). spy_meta_obj_init sets one hold and
 * the destructor run when the last hold is dropped. NULL is ignored. */
void spy_meta_obj_init(struct spy_meta_obj *obj, size_t cost,
                       void (*destroy)(struct spy_meta_obj *));
void spy_meta_obj_hold(struct spy_meta_obj *obj);
void spy_meta_obj_drop(struct spy_meta_obj *obj);

#endif
