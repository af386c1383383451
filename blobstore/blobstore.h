/* blobstore.h - the registry's storage client: blobs in, blobs out, as pieces
 * on the chunkserver groups, from h2o event loops without ever blocking one.
 * docs/blobstore.md explains the design; this header is the contract.
 *
 * A BLOB is stored as pieces (piece.h): each piece is one chunkserver object
 * (a fid from the chunkmaster) written to EVERY writable replica of one group,
 * and counts only when every replica acknowledged it. The registry records
 * the piece list (group_id, fid, offset, length, crc32c) and gives it back to
 * read the blob.
 *
 * THREADS. One struct spy_blob per process: it owns a background thread that
 * refreshes the chunkmaster's route table (every route_interval_ms) and keeps
 * a cache of fids (refilled below fid_low_water), a shared blacklist of
 * failing servers, and counters. Each event loop thread attaches once
 * (spy_blob_loop_attach) and gets its own struct spy_blob_loop: deadlines,
 * deferred calls and a pool of idle chunkserver connections. Writers, readers
 * and deletes belong to the loop they were started on: call their functions
 * on that loop's thread only; their callbacks run there. spy_blob_stats and
 * spy_blob_wait_ready may be called from any thread.
 *
 * CALLBACKS never run from inside the call that started the operation or
 * passed the data (spy_blob_write_data, _finish, spy_blob_read, _resume,
 * spy_blob_delete): they run later, from the loop. Inside a callback the
 * caller may call any function of this API for the same object, including
 * the abort functions.
 *
 * MASTER OUTAGES. The last good route table stays in use, so reads go on;
 * writes go on while cached fids last (each piece attempt takes one), then
 * fail with SPY_EUNAVAIL and a log line saying the fid cache is empty and the
 * master unreachable. When the master answers again, writes work again.
 *
 * DEADLINES. Every socket operation has one: connect_timeout_ms for a
 * connect; io_timeout_ms for each wait for progress (a write completing, the
 * next bytes of a response). A deadline that passes is a failure of that
 * server (blacklisted) and the operation fails over. Nothing waits forever;
 * the one wait without a deadline is the caller's own: while a read is
 * paused or a writer has no data to send, no timer runs (the caller's HTTP
 * layer bounds its client instead). The process must ignore SIGPIPE
 * (spy_blob_create sets SIG_IGN, as h2o writes with writev(2)).
 *
 * MEMORY. A writer holds at most two pieces (the one receiving data and the
 * one before it, awaiting acknowledgements or being retried), allocated in
 * 1 MiB segments as data arrives: at most 2 x piece_size per upload plus
 * about 1 KiB of state per replica. A reader holds no body bytes of its own:
 * slices given to the sink point into the connection's input buffer, bounded
 * by so_rcvbuf because nothing is read from the chunkserver while the sink
 * is paused. Idle connections: at most pool_idle_max per server per loop. */
#ifndef SPY_BLOBSTORE_H
#define SPY_BLOBSTORE_H

#include <stddef.h>
#include <stdint.h>

#include <h2o/socket.h>

#include "blobstore/piece.h"

struct spy_blob;
struct spy_blob_loop;
struct spy_blob_writer;
struct spy_blob_reader;

/* Settings; spy_blob_config_init() fills the defaults shown. Copied by
 * spy_blob_create (master_host too). */
struct spy_blob_config {
    const char *master_host;     /* chunkmaster address ("127.0.0.1"); a numeric address
                                    keeps every master request inside its deadline */
    int master_port;             /* 8099 */
    int min_writable;            /* -n: writable replicas a group needs to take a piece (2) */
    uint64_t piece_size;         /* bytes per piece (2 MiB; 64 KiB .. 1 GiB) */
    uint32_t route_interval_ms;  /* route table refresh period (2000) */
    uint32_t master_timeout_ms;  /* each request to the master, connect included (2000) */
    uint32_t fid_batch;          /* fids asked for at a time (1000) */
    uint32_t fid_low_water;      /* refill when fewer are left (500) */
    uint32_t connect_timeout_ms; /* chunkserver connect (2000) */
    uint32_t io_timeout_ms;      /* chunkserver progress: each write, each wait for
                                    response bytes, an END's acknowledgement (10000) */
    unsigned write_attempts;     /* attempts per piece, each on a fresh fid, other
                                    groups first (3) */
    unsigned pool_idle_max;      /* idle connections kept per server per loop (8) */
    uint32_t pool_idle_ms;       /* an idle connection is closed after this (20000;
                                    below spy_server's --idle_timeout of 60 s) */
    uint32_t blacklist_base_ms;  /* first block of a failing server (1000) */
    uint32_t blacklist_max_ms;   /* the block doubles up to this (30000) */
    int so_rcvbuf;               /* chunkserver sockets' SO_RCVBUF (256 KiB; 0: kernel's) */
    int so_sndbuf;               /* and SO_SNDBUF (256 KiB; 0: kernel's) */
    uint64_t seed;               /* group choice randomness (0: from the clock) */
};

/* Counters since spy_blob_create (relaxed atomics, summed over loops). */
struct spy_blob_stats {
    /* the master */
    uint64_t route_refreshes; /* route tables fetched and installed */
    uint64_t route_errors;    /* route fetches that failed (table kept) */
    uint64_t fid_refills;     /* fid ranges fetched */
    uint64_t fid_errors;      /* fid fetches that failed */
    uint64_t fids_available;  /* fids in the cache now */
    int master_ok;            /* 1 if the last request to the master succeeded */
    int64_t route_age_ms;     /* since the installed table was fetched (-1: none yet) */
    uint64_t route_groups;    /* groups in the installed table */
    /* writes */
    uint64_t writes_started, writes_done, writes_failed; /* failed includes aborted */
    uint64_t pieces_written;                             /* acknowledged by every replica */
    uint64_t bytes_written; /* blob bytes in those pieces (each counted once) */
    uint64_t piece_retries; /* attempts after the first */
    uint64_t orphans;       /* fids passed to on_orphan */
    /* reads */
    uint64_t reads_started, reads_done, reads_failed;
    uint64_t bytes_read;          /* bytes given to sinks */
    uint64_t read_failovers;      /* a replica failed or lacked the piece; the next one was tried */
    uint64_t read_aheads_used;    /* a span began with its read-ahead GET (reader.c) */
    uint64_t read_aheads_dropped; /* a read-ahead GET failed or went to a replica no longer first */
    /* deletes */
    uint64_t deletes_done, deletes_failed;
    /* connections and failures */
    uint64_t conns_opened;    /* new chunkserver connections */
    uint64_t conns_reused;    /* requests served by a pooled connection */
    uint64_t conns_idle;      /* in the pools now */
    uint64_t timeouts;        /* connect or I/O deadlines that passed */
    uint64_t server_failures; /* failures charged to a server (blacklist events) */
    uint64_t blacklisted;     /* servers blocked now */
};

void spy_blob_config_init(struct spy_blob_config *cfg);

/* Checks cfg, starts the refresher thread (which fetches the route and a fid
 * range at once) and returns at once: use spy_blob_wait_ready to wait for the
 * first route table. Returns SPY_OK and *out, SPY_EINVAL (a bad setting,
 * logged) or SPY_ENOMEM. */
int spy_blob_create(const struct spy_blob_config *cfg, struct spy_blob **out);

/* Blocks until a route table is installed and fids are cached, up to
 * timeout_ms. SPY_OK or SPY_ETIMEDOUT. Any thread but a loop thread. */
int spy_blob_wait_ready(struct spy_blob *bs, int timeout_ms);

/* Stops the refresher thread and frees everything. Every loop must have been
 * detached. */
void spy_blob_destroy(struct spy_blob *bs);

/* Copies the counters. Any thread. */
void spy_blob_stats(struct spy_blob *bs, struct spy_blob_stats *out);

/* Attaches a loop: call on the loop's thread, once per loop. SPY_OK and *out,
 * or SPY_ENOMEM. */
int spy_blob_loop_attach(struct spy_blob *bs, h2o_loop_t *loop, struct spy_blob_loop **out);

/* Closes the loop's idle connections and frees its state. Every writer,
 * reader and delete of the loop must have ended (done, failed or aborted):
 * SPY_EBUSY otherwise, and nothing is freed. Closed sockets are released by
 * h2o on the loop's next turn: run it once more before destroying it. */
int spy_blob_loop_detach(struct spy_blob_loop *lp);

/* ---- writing ----------------------------------------------------------
 *
 *   w = begin;  (write_data, wait for consumed)*;  finish -> done
 *                                  or at any point:  abort
 *
 * EVERY FID IS ACCOUNTED FOR: each fid the writer takes ends up exactly once
 * either in the piece list given to a successful done callback, or passed to
 * on_orphan. on_orphan is called when a piece attempt fails (a replica
 * failed, timed out or refused; the piece is then retried from its buffer on
 * a fresh fid, preferring another group), and, when the write fails or is
 * aborted, for every fid still held, completed pieces included. The caller
 * records orphans for cleanup (spy_blob_delete later): a failed attempt may
 * have left the object on some replicas. */

/* A writer's callbacks; one 'arg' for all of them (given to begin). */
struct spy_blob_write_handler {
    /* Required. A fid that may hold data and belongs to no blob. */
    void (*on_orphan)(void *arg, uint32_t group_id, uint64_t fid);
    /* Optional. A piece was acknowledged by every replica (pieces may
     * complete out of order when one is retried). Progress only: the final
     * list comes with done. */
    void (*on_piece)(void *arg, const struct spy_blob_piece *piece);
};

/* status SPY_OK: the slice was copied and every replica's socket write of it
 * completed, so the caller may read more from its client and call
 * spy_blob_write_data again. Otherwise the write has failed (status says
 * why; the caller must call spy_blob_write_abort). */
typedef void (*spy_blob_consumed_cb)(void *arg, int status);

/* The end of a finished write. SPY_OK: pieces[0..n) is the blob, ordered by
 * offset (n == 0 for an empty blob), valid during the call only. Otherwise
 * the write failed (pieces NULL; every fid went to on_orphan). Either way the
 * writer is freed when this returns. */
typedef void (*spy_blob_written_cb)(void *arg, int status, const struct spy_blob_piece *pieces,
                                    size_t n);

/* Starts a blob write on loop lp. Nothing is sent yet. SPY_OK and *out,
 * SPY_EINVAL (no on_orphan) or SPY_ENOMEM. */
int spy_blob_write_begin(struct spy_blob_loop *lp, const struct spy_blob_write_handler *h,
                         void *arg, struct spy_blob_writer **out);

/* Appends data[0..len) to the blob. data is borrowed: it must stay valid and
 * unchanged until cb runs. One slice at a time: call again only after cb.
 * Bytes go out to the replicas as they arrive (a copy stays in the piece
 * buffer for retries); cb runs when every replica's socket write of them
 * completed, which is the back-pressure: resume the client only then.
 * Returns SPY_OK (cb will run), SPY_EINVAL (len 0, a slice pending, or after
 * finish), or the status of an earlier failure (cb will not run; abort). */
int spy_blob_write_data(struct spy_blob_writer *w, const void *data, size_t len,
                        spy_blob_consumed_cb cb);

/* No more data: the last piece is sealed and, once every piece is
 * acknowledged, cb runs with the piece list (or the failure), and the writer
 * is freed. Returns SPY_OK (cb will run) or SPY_EINVAL (a slice pending, or
 * called twice; nothing changes). */
int spy_blob_write_finish(struct spy_blob_writer *w, spy_blob_written_cb cb);

/* Gives up: connections with puts in flight are closed (the chunkservers
 * drop those puts), every fid still held goes to on_orphan (called from
 * inside this function), and the writer is freed; no other callback runs.
 * Not after a done callback (the writer is gone then). */
void spy_blob_write_abort(struct spy_blob_writer *w);

/* ---- reading ----------------------------------------------------------- */

#define SPY_BLOB_CONTINUE 0 /* sink: give me more */
#define SPY_BLOB_PAUSE    1 /* sink: hold on until spy_blob_read_resume */

/* Receives the range's bytes in order. data is valid until the sink returns
 * SPY_BLOB_CONTINUE, or, if it returns SPY_BLOB_PAUSE, until the caller calls
 * spy_blob_read_resume or spy_blob_read_abort (nothing is read from the
 * chunkserver meanwhile: that is the back-pressure). Bytes reach the sink as they arrive, before
 * the chunkserver's END frame confirms them: if done later reports an error, the caller must fail
 * its response (a broken transfer), never end it cleanly. */
typedef int (*spy_blob_sink_cb)(void *arg, const uint8_t *data, size_t len);

/* The end of a read, called once unless the read was aborted. SPY_OK: every
 * byte of the range went to the sink and was verified (END status and crc of
 * every GET; the piece crc32c too when a whole piece was read). Otherwise:
 * SPY_ENOTFOUND (every replica of a piece said not found), SPY_ECORRUPT (a
 * checksum mismatch that no failover could repair, or data already given to
 * the sink failed its check), SPY_EIO (no replica of a piece could be read:
 * down, timed out or unknown group), SPY_EINVAL. The reader is freed when
 * this returns. */
typedef void (*spy_blob_read_done_cb)(void *arg, int status);

/* Reads blob bytes [offset, offset + length) of the blob described by
 * pieces[0..n) (checked with spy_pieces_check; copied, so the caller may free
 * them at once). Only the pieces and byte spans the range needs are fetched.
 * Each piece is read from one replica (route.h's order: healthy, then
 * others, blacklisted last); on an error, a timeout, not-found or a corrupt
 * END, the next replica is tried, resuming at the first byte not yet given to
 * the sink. Returns SPY_OK and *out (done will run), SPY_EINVAL (bad list) or
 * SPY_ERANGE (range past the end; nothing starts), SPY_ENOMEM. */
int spy_blob_read(struct spy_blob_loop *lp, const struct spy_blob_piece *pieces, size_t n,
                  uint64_t offset, uint64_t length, spy_blob_sink_cb sink,
                  spy_blob_read_done_cb done, void *arg, struct spy_blob_reader **out);

/* After the sink returned SPY_BLOB_PAUSE: the slice is released and reading
 * goes on from the next turn of the loop. */
void spy_blob_read_resume(struct spy_blob_reader *r);

/* Stops a read: its connection is closed and the reader freed; neither the
 * sink nor done runs again. Allowed inside the sink. Not after done. */
void spy_blob_read_abort(struct spy_blob_reader *r);

/* ---- deleting ---------------------------------------------------------- */

/* Called once with SPY_OK (every replica of the group in the route table
 * deleted the fid or never had it) or the first failure (a replica down or
 * answering an error: try again later). */
typedef void (*spy_blob_deleted_cb)(void *arg, int status);

/* Deletes fid on every replica of group_id, in parallel (orphan cleanup and
 * GC). SPY_OK (cb will run) or SPY_ENOMEM. A group unknown to the route table
 * completes with SPY_ENOTFOUND, and SPY_EIO before the first route table
 * arrived. No abort: it ends within the deadlines. */
int spy_blob_delete(struct spy_blob_loop *lp, uint32_t group_id, uint64_t fid,
                    spy_blob_deleted_cb cb, void *arg);

#endif
