/* syncer.h - group commit: one thread makes appended records durable for
 * every waiting writer at once, and moves each chunk's checkpoint
 * (synced_offset in its superblock) forward.
 *
 * A round: for each dirty chunk, capture its committed tail, fdatasync, then
 * write the next superblock slot with synced_offset = the captured tail (the
 * next round's fdatasync makes that slot durable). A writer that arrives
 * while a round's fdatasync runs waits for the next round, so one fdatasync
 * serves every writer that arrived before it started.
 *
 * With sync=0 nobody waits; a checkpoint round over every chunk with new
 * records runs every checkpoint_ms and at stop, so restarts only verify
 * bodies past a recent checkpoint.
 *
 * Threading: spy_syncer_wait and the counters may be called from any
 * thread; start and stop from the owner only. */
#ifndef SPY_SYNCER_H
#define SPY_SYNCER_H

#include <stdint.h>

#include "chunkserver/chunk.h"

struct spy_syncer;
struct spy_store;

/* Starts the thread over chunks[0..n) (indexed by chunk id - 1; the array
 * must outlive the syncer), with a checkpoint every checkpoint_ms (<= 0:
 * 5000). SPY_OK, SPY_ENOMEM, or SPY_EIO if the thread cannot start. */
int spy_syncer_start(struct spy_chunk **chunks, uint32_t n, int checkpoint_ms,
                     struct spy_syncer **out);

/* Runs a last checkpoint round that leaves every chunk's records and
 * superblock durable, then stops the thread and frees the syncer. No writer
 * may be waiting. */
void spy_syncer_stop(struct spy_syncer *s);

/* Registers chunk c as dirty and blocks until a round that started after
 * this call has run. 'end' is the end offset of the caller's record, which
 * must be committed (c->tail >= end) before the call. SPY_OK if the bytes
 * below 'end' are covered by a successful fdatasync; SPY_EIO if not (c's
 * fdatasync failed, in that round or before: a failed fdatasync is never
 * trusted again). After SPY_EIO the record lies beyond every checkpoint
 * written, so the caller may invalidate it. */
int spy_syncer_wait(struct spy_syncer *s, struct spy_chunk *c, uint64_t end);

/* Rounds that ran at least one fdatasync, and fdatasync calls, so far. */
uint64_t spy_syncer_rounds(struct spy_syncer *s);
uint64_t spy_syncer_fsyncs(struct spy_syncer *s);

/* Writers blocked in spy_syncer_wait right now (tests use it to line up a
 * batch deterministically). */
uint32_t spy_syncer_waiters(struct spy_syncer *s);

/* The syncer of an open store (defined in store.c; for tests and tools that
 * read the counters above, so store.h stays free of them). */
struct spy_syncer *spy_store_syncer(struct spy_store *store);

#endif
