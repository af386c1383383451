/* index.h - the in-memory fid index: fid -> where the object's record is.
 *
 * Open addressing with linear probing over a power-of-two table of 32-byte
 * entries, doubled when it passes 3/4 full, so it costs 32 / load bytes per
 * fid: 43 to 85 bytes (load 0.375 to 0.75), nothing else per object. Keys
 * go through a 64-bit mixer, so sequential fids spread evenly.
 *
 * Every fid ever written stays in the index: LIVE (readable), PENDING (a
 * put is writing it: invisible, refuses a second put) or DELETED (a
 * tombstone exists; fids are never reused, so a put of it is refused).
 * Only an aborted put removes its PENDING entry again.
 *
 * Threading: every function takes the index's rwlock (readers share it). */
#ifndef SPY_INDEX_H
#define SPY_INDEX_H

#include <stdint.h>

enum spy_index_state {
    SPY_INDEX_EMPTY = 0, /* internal: a free slot */
    SPY_INDEX_PENDING = 1,
    SPY_INDEX_LIVE = 2,
    SPY_INDEX_DELETED = 3,
};

/* Where a record is. For DELETED entries: the deleted object's record if it
 * was seen, else chunk_id 0. */
struct spy_index_entry {
    uint64_t fid;
    uint64_t offset;    /* record start in the chunk file */
    uint64_t body_len;  /* body bytes */
    uint32_t timestamp; /* unix seconds (the record holds 64 bits; 32 last until 2106) */
    uint32_t chunk_id;  /* 1-based; at most SPY_INDEX_MAX_CHUNK */
    enum spy_index_state state;
};

#define SPY_INDEX_MAX_CHUNK 0xffffffu /* chunk ids are stored in 24 bits */

struct spy_index;

/* Creates an index sized for about 'expect' fids (0: a small default).
 * NULL if out of memory. */
struct spy_index *spy_index_create(uint64_t expect);

/* Frees the index; no other thread may be using it. NULL is ignored. */
void spy_index_destroy(struct spy_index *idx);

/* Reserves fid for a put: inserts it PENDING. SPY_OK, SPY_EEXISTS if fid is
 * present in any state, SPY_ENOMEM if the table cannot grow. */
int spy_index_reserve(struct spy_index *idx, uint64_t fid);

/* Makes the PENDING fid e->fid LIVE at e's location. SPY_OK, or
 * SPY_ENOTFOUND if that fid is not PENDING (a caller bug). */
int spy_index_commit(struct spy_index *idx, const struct spy_index_entry *e);

/* Removes a PENDING fid (an aborted put). SPY_OK or SPY_ENOTFOUND. */
int spy_index_release(struct spy_index *idx, uint64_t fid);

/* Copies fid's entry into *out. SPY_OK (any state) or SPY_ENOTFOUND. */
int spy_index_lookup(struct spy_index *idx, uint64_t fid, struct spy_index_entry *out);

/* Marks a LIVE fid DELETED, copying the entry as it was into *was.
 * SPY_OK, or SPY_ENOTFOUND if fid is not LIVE (*was then holds its entry,
 * state EMPTY if absent). */
int spy_index_delete(struct spy_index *idx, uint64_t fid, struct spy_index_entry *was);

/* Recovery: adds a PUT record found on disk. SPY_OK if fid was absent (it
 * is LIVE now). SPY_EEXISTS otherwise, with *was set to the entry found:
 * LIVE means a duplicate record (the first one stays), DELETED means a
 * tombstone came first (the entry records this location if it had none).
 * SPY_ENOMEM if the table cannot grow. */
int spy_index_load_put(struct spy_index *idx, const struct spy_index_entry *e,
                       struct spy_index_entry *was);

/* Recovery: applies a DEL record for fid, in any order relative to its PUT:
 * the fid becomes DELETED whatever it was. *was receives the previous entry
 * (state EMPTY if fid was absent). SPY_OK or SPY_ENOMEM. */
int spy_index_load_del(struct spy_index *idx, uint64_t fid, struct spy_index_entry *was);

/* Counts of LIVE and DELETED fids. */
void spy_index_counts(struct spy_index *idx, uint64_t *live, uint64_t *deleted);

/* Bytes the table uses (for stats and docs). */
uint64_t spy_index_memory(struct spy_index *idx);

#endif
