/* mempool.c - the --mem_blocks pool (see mempool.h for the contract).
 *
 * A mutex-protected stack of free blocks plus two counters: 'allocated'
 * (blocks that exist, free or handed out) and 'in_use' (handed out). A block
 * is malloc'd only when the free stack is empty and allocated < max_blocks, so
 * an idle daemon holds only the blocks its busiest moment needed. Waiters sleep
 * on a condition variable with a CLOCK_MONOTONIC deadline. */
#include "chunkserver/mempool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"

struct spy_mempool {
    pthread_mutex_t lock;
    pthread_cond_t freed; /* signalled once per spy_mempool_put */
    uint32_t max_blocks;
    uint32_t allocated; /* blocks malloc'd so far (<= max_blocks) */
    uint32_t in_use;    /* blocks owned by callers */
    uint32_t nfree;     /* entries in free_stack */
    uint8_t **free_stack;
};

struct spy_mempool *spy_mempool_create(uint32_t max_blocks)
{
    if (max_blocks == 0)
        return NULL;
    struct spy_mempool *pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return NULL;
    pool->free_stack = calloc(max_blocks, sizeof(*pool->free_stack));
    if (pool->free_stack == NULL) {
        free(pool);
        return NULL;
    }
    spy_cond_init_monotonic(&pool->freed);
    pthread_mutex_init(&pool->lock, NULL);
    pool->max_blocks = max_blocks;
    return pool;
}

void spy_mempool_destroy(struct spy_mempool *pool)
{
    if (pool == NULL)
        return;
    if (pool->in_use != 0)
        spy_error("mempool destroyed with %u blocks still in use", pool->in_use);
    for (uint32_t i = 0; i < pool->nfree; i++)
        free(pool->free_stack[i]);
    free(pool->free_stack);
    pthread_cond_destroy(&pool->freed);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}

/* take_locked: hands out a free block, or mallocs a new one while under the
 * limit. Returns NULL when the caller has to wait (or malloc failed, which
 * sets *malloc_failed). Called with pool->lock held. */
static uint8_t *take_locked(struct spy_mempool *pool, int *malloc_failed)
{
    uint8_t *block = NULL;
    if (pool->nfree > 0) {
        block = pool->free_stack[--pool->nfree];
    } else if (pool->allocated < pool->max_blocks) {
        block = malloc(SPY_MEMPOOL_BLOCK);
        if (block == NULL) {
            *malloc_failed = 1;
            return NULL;
        }
        pool->allocated++;
    }
    if (block != NULL)
        pool->in_use++;
    return block;
}

uint8_t *spy_mempool_get(struct spy_mempool *pool, int wait_ms)
{
    struct timespec deadline = spy_clock_deadline(wait_ms > 0 ? wait_ms : 0);
    int malloc_failed = 0;
    pthread_mutex_lock(&pool->lock);
    uint8_t *block = take_locked(pool, &malloc_failed);
    while (block == NULL && !malloc_failed) {
        int rc = pthread_cond_timedwait(&pool->freed, &pool->lock, &deadline);
        block = take_locked(pool, &malloc_failed);
        if (rc == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&pool->lock);
    if (malloc_failed)
        spy_error("mempool: malloc of a %u-byte block failed", SPY_MEMPOOL_BLOCK);
    return block;
}

void spy_mempool_put(struct spy_mempool *pool, uint8_t *block)
{
    if (block == NULL)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->free_stack[pool->nfree++] = block;
    pool->in_use--;
    pthread_cond_signal(&pool->freed);
    pthread_mutex_unlock(&pool->lock);
}

uint32_t spy_mempool_in_use(struct spy_mempool *pool)
{
    pthread_mutex_lock(&pool->lock);
    uint32_t n = pool->in_use;
    pthread_mutex_unlock(&pool->lock);
    return n;
}

uint32_t spy_mempool_limit(struct spy_mempool *pool)
{
    return pool->max_blocks;
}
