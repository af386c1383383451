/* store.h - the chunkserver storage engine: preallocated chunk files holding
 * append-only checksummed records, and the in-memory fid index over them.
 * docs/chunkserver.md describes the on-disk format and recovery.
 *
 * Threading: every function is safe to call from any thread. A chunk has at
 * most one writer at a time (a put or a delete holds it exclusively); up to
 * 'chunks' puts run in parallel. Reads never block on writers.
 *
 * Durability: spy_store_put_commit and spy_store_delete return SPY_OK only
 * when the record is in the kernel (sync=0: survives kill -9 of the process)
 * or on disk (sync=1: fdatasync, batched across concurrent writers by one
 * group-commit thread). An object is visible to readers only after its put
 * committed; a fid being written is invisible (ENOTFOUND) but refuses a second
 * put (EEXISTS). A deleted fid stays refused for puts (fids are never reused).
 *
 * Memory: the store allocates nothing per byte of object; callers pass their
 * own buffers (from the --mem_blocks pool). */
#ifndef SPY_STORE_H
#define SPY_STORE_H

#include <stddef.h>
#include <stdint.h>

#define SPY_STORE_BLOCK 65536u /* bytes covered by one body crc (read granule) */

struct spy_store_config {
    const char *data_dir;
    uint32_t chunks;     /* chunk files to create when data_dir holds none */
    uint64_t chunk_size; /* bytes per chunk file, including its 4 KiB superblock */
    int sync;            /* 1: fdatasync before acknowledging */
    uint32_t group_id;   /* recorded in each superblock; a mismatch refuses to open */
    int wait_ms;         /* how long a put/delete waits for a free chunk (back-pressure) */
};

struct spy_store_stats {
    uint64_t total_free;          /* bytes still appendable, all chunks */
    uint64_t max_free;            /* largest object body one chunk can still take */
    uint64_t used;                /* bytes of live records */
    uint64_t garbage;             /* bytes of deleted objects and tombstones (reclaimable) */
    uint64_t objects;             /* live objects */
    uint64_t deleted;             /* tombstoned fids */
    uint32_t chunks;              /* chunk files */
    uint32_t chunks_damaged;      /* chunks refused for writing after an error */
    uint32_t writes_active;       /* puts and deletes holding a chunk */
    uint32_t writes_pending;      /* puts/deletes waiting for a free chunk */
    uint64_t recovered_truncated; /* bytes cut off torn tails at the last open */
    double open_seconds;          /* how long the last spy_store_open took */
};

struct spy_object_info {
    uint64_t fid;
    uint64_t len;       /* body bytes */
    uint32_t chunk_id;  /* 1-based, as in the chunk file name */
    uint64_t offset;    /* record start in the chunk file */
    uint64_t timestamp; /* unix seconds when written */
};

struct spy_store;
struct spy_put;

/* Opens data_dir, creating the chunk files if it holds none, otherwise
 * recovering: checkpointed regions are walked header by header, the rest is
 * fully verified and a torn or corrupt tail is cut. On failure returns a
 * negative status and writes a one-line reason into err. */
int spy_store_open(const struct spy_store_config *cfg, struct spy_store **out, char *err,
                   size_t errlen);

/* Flushes, writes checkpoints and frees everything. In-flight puts must have
 * finished (committed or aborted) before. */
void spy_store_close(struct spy_store *store);

/* Starts a put of fid with a body of at most max_len bytes: reserves the fid
 * and takes a chunk with room, waiting up to cfg->wait_ms for one (EBUSY after).
 * Errors: EEXISTS, ENOSPC (no chunk could ever hold it), EBUSY, EREADONLY. */
int spy_store_put_begin(struct spy_store *store, uint64_t fid, uint64_t max_len,
                        struct spy_put **out);

/* Appends body bytes (any split). ERANGE if the body would exceed max_len,
 * EIO on a write error. After an error the put must be aborted. */
int spy_store_put_append(struct spy_put *put, const void *buf, size_t len);

/* Finishes the put: checks the body's crc32c against 'expect_crc' (ECHECKSUM
 * on mismatch), writes the record trailer and header, waits for durability
 * (see above), indexes the fid and releases the chunk. The put is freed in
 * every case; on error nothing is indexed and the fid is free again. */
int spy_store_put_commit(struct spy_put *put, uint32_t expect_crc);

/* Abandons the put: nothing is indexed, the fid is free again, put freed. */
void spy_store_put_abort(struct spy_put *put);

/* Looks up a committed, live fid. ENOTFOUND otherwise. */
int spy_store_stat(struct spy_store *store, uint64_t fid, struct spy_object_info *info);

/* What one spy_store_read serves: n >= 1 verified bytes at data (inside
 * the caller's buf) and their crc32c, derived from the blocks' table crcs
 * (crc32c_combine) so the caller need not sum the bytes again. */
struct spy_store_slice {
    const uint8_t *data;
    size_t n;
    uint32_t crc;
};

/* Reads verified body bytes of the object 'info' (from spy_store_stat)
 * starting at 'off' (< info->len), at most len (>= 1) of them. It reads the
 * 64 KiB blocks covering as much as fits in buf (cap >= 2 * SPY_STORE_BLOCK),
 * checks each block's crc, and fills *out with the bytes from 'off' on. Call
 * again with off += out->n for more. ERANGE if off >= info->len (an empty
 * object has no bytes to read), EINVAL if cap < 2 * SPY_STORE_BLOCK or len
 * is 0. ECORRUPT if a block or the record header fails its checksum
 * (nothing from that block is returned), EIO on read errors. */
int spy_store_read(struct spy_store *store, const struct spy_object_info *info, uint64_t off,
                   uint64_t len, uint8_t *buf, size_t cap, struct spy_store_slice *out);

/* Deletes fid: appends a tombstone (durable as a put), removes it from the
 * index for readers and accounts its space as garbage. ENOTFOUND if not live. */
int spy_store_delete(struct spy_store *store, uint64_t fid);

void spy_store_get_stats(struct spy_store *store, struct spy_store_stats *st);

#endif
