/* syncer.c - the group-commit thread (syncer.h). */
#include "chunkserver/syncer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/status.h"

struct spy_syncer {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the thread: a writer registered, or stop */
    pthread_cond_t done; /* writers: a round finished */
    struct spy_chunk **chunks;
    uint32_t n;
    uint8_t *dirty;    /* per chunk: some writer waits for it (under lock) */
    uint8_t *batch;    /* the thread's copy of 'dirty' for the running round */
    uint64_t *durable; /* per chunk: tail covered by its last good fdatasync (under lock) */
    uint32_t ndirty;   /* chunks marked in 'dirty' */
    uint64_t started;  /* rounds started; a writer's ticket is started + 1 */
    uint64_t finished; /* rounds finished */
    uint32_t waiters;
    int stopping;
    int checkpoint_ms;
    uint64_t rounds; /* rounds with at least one fdatasync */
    uint64_t fsyncs;
    pthread_t thread;
};

/* sync_chunk -- chunk i's share of a round: capture the committed tail,
 * fdatasync, publish the tail as durable, then record it as the checkpoint
 * in the next slot (not on a damaged chunk: it is never written again).
 * Skips chunks with nothing new and a durable superblock. Returns 1 if it
 * called fdatasync. */
static int sync_chunk(struct spy_syncer *s, uint32_t i)
{
    struct spy_chunk *c = s->chunks[i];
    if (c->no_superblock || atomic_load(&c->sync_failed))
        return 0;
    uint64_t tail = atomic_load(&c->tail);
    if (tail == s->durable[i] && c->sb_durable)
        return 0; /* only this thread writes durable[], so it may read it unlocked */
    if (spy_chunk_sync(c) != SPY_OK)
        return 1;
    pthread_mutex_lock(&s->lock);
    s->durable[i] = tail;
    pthread_mutex_unlock(&s->lock);
    c->sb_durable = 1;
    if (tail != c->sb_synced && !atomic_load(&c->damaged))
        spy_chunk_write_super(c, tail);
    return 1;
}

/* run_round -- syncs the chunks marked in 'which' (all when NULL). Returns
 * the number of fdatasync calls. */
static uint64_t run_round(struct spy_syncer *s, const uint8_t *which)
{
    uint64_t calls = 0;
    for (uint32_t i = 0; i < s->n; i++)
        if (which == NULL || which[i])
            calls += (uint64_t)sync_chunk(s, i);
    return calls;
}

/* passed -- true once the monotonic clock reached ts. */
static int passed(const struct timespec *ts)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > ts->tv_sec || (now.tv_sec == ts->tv_sec && now.tv_nsec >= ts->tv_nsec);
}

/* next_round -- waits (lock held) for writers, the checkpoint timer or
 * stop. Returns 0 to stop, else 1 with s->batch set (or NULL in *which for
 * a checkpoint round over every chunk). */
static int next_round(struct spy_syncer *s, struct timespec *checkpoint, const uint8_t **which)
{
    while (!s->stopping && s->ndirty == 0 && !passed(checkpoint))
        pthread_cond_timedwait(&s->wake, &s->lock, checkpoint);
    if (s->ndirty == 0 && s->stopping)
        return 0;
    if (s->ndirty == 0) {
        *which = NULL;
        *checkpoint = spy_clock_deadline(s->checkpoint_ms);
    } else {
        memcpy(s->batch, s->dirty, s->n);
        memset(s->dirty, 0, s->n);
        s->ndirty = 0;
        *which = s->batch;
    }
    s->started++;
    return 1;
}

/* syncer_main -- the thread: rounds until stop, then a last checkpoint in
 * two passes (the second makes the superblocks written by the first
 * durable). */
static void *syncer_main(void *arg)
{
    struct spy_syncer *s = arg;
    struct timespec checkpoint = spy_clock_deadline(s->checkpoint_ms);
    const uint8_t *which;
    pthread_mutex_lock(&s->lock);
    while (next_round(s, &checkpoint, &which)) {
        pthread_mutex_unlock(&s->lock);
        uint64_t calls = run_round(s, which);
        pthread_mutex_lock(&s->lock);
        s->rounds += calls > 0;
        s->fsyncs += calls;
        s->finished = s->started;
        pthread_cond_broadcast(&s->done);
    }
    pthread_mutex_unlock(&s->lock);
    uint64_t calls = run_round(s, NULL);
    calls += run_round(s, NULL);
    pthread_mutex_lock(&s->lock);
    s->fsyncs += calls;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* syncer_free -- releases what spy_syncer_start allocated. */
static void syncer_free(struct spy_syncer *s)
{
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->done);
    pthread_mutex_destroy(&s->lock);
    free(s->dirty);
    free(s->batch);
    free(s->durable);
    free(s);
}

/* spy_syncer_start -- the condvars use the monotonic clock so checkpoint
 * timing survives wall-clock jumps. */
int spy_syncer_start(struct spy_chunk **chunks, uint32_t n, int checkpoint_ms,
                     struct spy_syncer **out)
{
    struct spy_syncer *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return SPY_ENOMEM;
    s->chunks = chunks;
    s->n = n;
    s->checkpoint_ms = checkpoint_ms > 0 ? checkpoint_ms : 5000;
    s->dirty = calloc(n ? n : 1, 1);
    s->batch = calloc(n ? n : 1, 1);
    s->durable = calloc(n ? n : 1, sizeof(uint64_t));
    for (uint32_t i = 0; s->durable != NULL && i < n; i++)
        s->durable[i] = chunks[i]->sb_synced;
    spy_cond_init_monotonic(&s->wake);
    spy_cond_init_monotonic(&s->done);
    pthread_mutex_init(&s->lock, NULL);
    if (s->dirty == NULL || s->batch == NULL || s->durable == NULL) {
        syncer_free(s);
        return SPY_ENOMEM;
    }
    if (pthread_create(&s->thread, NULL, syncer_main, s) != 0) {
        spy_error("cannot start the group-commit thread");
        syncer_free(s);
        return SPY_EIO;
    }
    *out = s;
    return SPY_OK;
}

/* spy_syncer_stop -- wakes the thread for its last checkpoint and joins it. */
void spy_syncer_stop(struct spy_syncer *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    syncer_free(s);
}

/* spy_syncer_wait -- a ticket for the next round to start, then sleep until
 * it finished. That round synced c unless c had nothing new (then an
 * earlier one covered 'end') or c's fdatasync had failed. */
int spy_syncer_wait(struct spy_syncer *s, struct spy_chunk *c, uint64_t end)
{
    pthread_mutex_lock(&s->lock);
    uint32_t i = c->id - 1;
    if (!s->dirty[i]) {
        s->dirty[i] = 1;
        s->ndirty++;
    }
    uint64_t ticket = s->started + 1;
    s->waiters++;
    pthread_cond_signal(&s->wake);
    while (s->finished < ticket)
        pthread_cond_wait(&s->done, &s->lock);
    s->waiters--;
    int rc = s->durable[i] >= end ? SPY_OK : SPY_EIO;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* spy_syncer_rounds -- rounds that called fdatasync. */
uint64_t spy_syncer_rounds(struct spy_syncer *s)
{
    pthread_mutex_lock(&s->lock);
    uint64_t v = s->rounds;
    pthread_mutex_unlock(&s->lock);
    return v;
}

/* spy_syncer_fsyncs -- fdatasync calls. */
uint64_t spy_syncer_fsyncs(struct spy_syncer *s)
{
    pthread_mutex_lock(&s->lock);
    uint64_t v = s->fsyncs;
    pthread_mutex_unlock(&s->lock);
    return v;
}

/* spy_syncer_waiters -- writers inside spy_syncer_wait. */
uint32_t spy_syncer_waiters(struct spy_syncer *s)
{
    pthread_mutex_lock(&s->lock);
    uint32_t v = s->waiters;
    pthread_mutex_unlock(&s->lock);
    return v;
}
