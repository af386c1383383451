/* blacklist.h - chunkservers that failed recently, with exponential back-off.
 *
 * Why: a dead or hung server costs a connect or I/O timeout. Without memory,
 * every request that picks it pays that timeout again. A server that fails
 * (connect refused, timeout, reset; not a status it answered such as
 * ENOTFOUND) is blocked for base_ms; each further failure while it is
 * remembered doubles the block, up to max_ms; a success forgets it at once.
 * Once a block expires, the next request may try the server again (a probe):
 * if that fails, the block doubles. So a dead server costs one timeout per
 * back-off period, not one per request.
 *
 * Blocked servers are avoided, not forbidden: writers skip groups with a
 * blocked replica, readers try blocked replicas last (see route.h).
 *
 * Servers are named by their "ip:port" text (route.h's name). Time is the
 * caller's monotonic clock in milliseconds, passed in, so tests need no sleep.
 *
 * Thread-safe: one instance is shared by every loop; a mutex guards it and is
 * held for a short scan of the (small) entry array only. */
#ifndef SPY_BLOB_BLACKLIST_H
#define SPY_BLOB_BLACKLIST_H

#include <stddef.h>
#include <stdint.h>

struct spy_blacklist;

/* A blacklist with the given back-off bounds (base_ms >= 1, max_ms >=
 * base_ms). NULL if out of memory or the bounds are invalid. */
struct spy_blacklist *spy_blacklist_new(int64_t base_ms, int64_t max_ms);
void spy_blacklist_free(struct spy_blacklist *bl);

/* Records a failure of 'name' at now_ms and returns the block it now has in
 * ms (base_ms for a first failure, doubled for each failure after, at most
 * max_ms). A failure while the server is already blocked (several requests
 * in flight when it died) does not double the block again. */
int64_t spy_blacklist_fail(struct spy_blacklist *bl, const char *name, int64_t now_ms);

/* Records a success: the server is forgotten (block and back-off level). */
void spy_blacklist_ok(struct spy_blacklist *bl, const char *name);

/* 1 if 'name' is blocked at now_ms, else 0. */
int spy_blacklist_blocked(struct spy_blacklist *bl, const char *name, int64_t now_ms);

/* Servers blocked at now_ms (for metrics). */
size_t spy_blacklist_count(struct spy_blacklist *bl, int64_t now_ms);

#endif
