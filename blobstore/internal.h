/* internal.h - what blobstore.c, master.c, conn.c, writer.c, reader.c and
 * delete.c share. Not for users: their contract is blobstore/blobstore.h.
 *
 * struct spy_blob is shared by every thread: its config is read-only after
 * create, the route pointer is swapped under route_mu, the fid cache and
 * blacklist lock themselves, and the counters are atomics. struct
 * spy_blob_loop belongs to its loop thread. */
#ifndef SPY_BLOB_INTERNAL_H
#define SPY_BLOB_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <h2o/linklist.h>
#include <h2o/socket.h>
#include <h2o/timeout.h>

#include "blobstore/blacklist.h"
#include "blobstore/blobstore.h"
#include "blobstore/fidcache.h"
#include "blobstore/route.h"

/* Counters, one per field of struct spy_blob_stats that is counted here. */
struct spy_blob_counters {
    atomic_uint_fast64_t route_refreshes, route_errors, fid_refills, fid_errors;
    atomic_uint_fast64_t writes_started, writes_done, writes_failed;
    atomic_uint_fast64_t pieces_written, bytes_written, piece_retries, orphans;
    atomic_uint_fast64_t reads_started, reads_done, reads_failed, bytes_read, read_failovers;
    atomic_uint_fast64_t read_aheads_used, read_aheads_dropped;
    atomic_uint_fast64_t deletes_done, deletes_failed;
    atomic_uint_fast64_t conns_opened, conns_reused, conns_idle, timeouts, server_failures;
};

struct spy_blob {
    struct spy_blob_config cfg; /* read-only; cfg.master_host points at master_host */
    char *master_host;

    pthread_mutex_t route_mu; /* held only to swap or take a reference to 'route' */
    struct spy_blobroute *route;
    int64_t route_fetched_ms; /* monotonic; under route_mu */

    struct spy_fidcache *fids;
    struct spy_blacklist *blacklist;
    struct spy_blob_counters n;
    atomic_int master_ok;
    atomic_uint loops_attached; /* varies each loop's random seed */

    /* The refresher thread (master.c). */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu; /* guards the fields below and the cond */
    pthread_cond_t cond;
    int stopping;
    int refill_wanted;
    int ready; /* a route and fids have been installed (spy_blob_wait_ready) */
};

struct spy_blob_loop {
    struct spy_blob *bs;
    h2o_loop_t *loop;
    h2o_timeout_t connect_timeout, io_timeout, idle_timeout;
    h2o_timeout_t zero_timeout;         /* deferred calls: the next turn of the loop */
    h2o_linklist_t idle;                /* pooled connections (struct spy_blobconn._pool_link) */
    h2o_buffer_prototype_t input_proto; /* chunkserver sockets' input buffers (conn.h) */
    size_t active;                      /* writers, readers, deletes and owned connections alive */
    uint64_t rng;                       /* xorshift state for group choice */
};

/* Monotonic milliseconds (shared clock of the blacklist and the refresher). */
int64_t spy_blob_now_ms(void);

/* The installed route table with a reference the caller drops with
 * spy_blobroute_unref, or NULL before the first one. Any thread. */
struct spy_blobroute *spy_blob_route_get(struct spy_blob *bs);

/* The blacklist check in the shape route.h wants (arg: struct spy_blob). */
int spy_blob_blocked(void *arg, const struct spy_blobroute_server *s);

/* A failure charged to a server: blacklists it and logs it (once per block,
 * when the block starts). */
void spy_blob_server_failed(struct spy_blob *bs, const char *name, int status, const char *what);

/* A success of a server: forgets its blacklist entry. */
void spy_blob_server_ok(struct spy_blob *bs, const char *name);

/* The next random number of a loop. */
uint64_t spy_blob_loop_random(struct spy_blob_loop *lp);

/* Links entry to the loop's zero timeout (unlinking it first if linked):
 * its callback runs on the next turn of the loop. */
void spy_blob_defer(struct spy_blob_loop *lp, h2o_timeout_entry_t *entry);

/* 1 if status is a failure of the server or the path to it (connect refused,
 * reset, closed, timed out, malformed frames) rather than an answer it gave
 * (not found, no space, ...). Only those are blacklisted. */
int spy_blob_is_server_failure(int status);

/* master.c: the refresher thread. start: SPY_OK or SPY_ENOMEM (thread
 * creation failed); stop joins it. kick wakes it to refill fids. */
int spy_blob_master_start(struct spy_blob *bs);
void spy_blob_master_stop(struct spy_blob *bs);
void spy_blob_master_kick(struct spy_blob *bs);

/* master.c: parses {"FidBegin":b,"FidEnd":e} (b < e). SPY_OK or SPY_EINVAL. */
int spy_blob_parse_fid_range(const char *body, size_t len, uint64_t *begin, uint64_t *end);

#define SPY_BLOB_COUNT(bs, field, v)                                                               \
    atomic_fetch_add_explicit(&(bs)->n.field, (v), memory_order_relaxed)

#endif
