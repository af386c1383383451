/* mempool.h - the --mem_blocks pool: every buffered byte of request and
 * response data in spy_server lives in one of these fixed 1 MiB blocks.
 *
 * Blocks are allocated on first use and kept on a free list, never more than
 * 'max_blocks' at once, so memory is bounded by max_blocks MiB whatever the
 * object sizes or client count. spy_mempool_get waits (back-pressure) up to
 * wait_ms for a block to come back, then fails. Thread-safe. */
#ifndef SPY_MEMPOOL_H
#define SPY_MEMPOOL_H

#include <stddef.h>
#include <stdint.h>

#define SPY_MEMPOOL_BLOCK (1u << 20)

struct spy_mempool;

/* Returns NULL on allocation failure of the pool itself. */
struct spy_mempool *spy_mempool_create(uint32_t max_blocks);

/* Frees the pool and every block; all blocks must have been put back. */
void spy_mempool_destroy(struct spy_mempool *pool);

/* Returns a SPY_MEMPOOL_BLOCK-byte block owned by the caller until
 * spy_mempool_put, or NULL if none came free within wait_ms (or malloc failed). */
uint8_t *spy_mempool_get(struct spy_mempool *pool, int wait_ms);

/* Returns a block to the pool and wakes one waiter. */
void spy_mempool_put(struct spy_mempool *pool, uint8_t *block);

/* Blocks handed out right now, and the limit. */
uint32_t spy_mempool_in_use(struct spy_mempool *pool);
uint32_t spy_mempool_limit(struct spy_mempool *pool);

#endif
