/* worker.h - the chunkmaster's database thread.
 *
 * The event loop never waits for MySQL. It hands this thread two kinds of
 * work:
 *   - fid jobs: answered as soon as possible; all jobs waiting at one moment
 *     share one spy_db_alloc_fids statement and are split from its range;
 *   - writes (server rows, deletions, group flags): queued per identity, so a
 *     newer write of the same server replaces an older one not yet written
 *     (a report storm costs at most one row per server per pass). Each pass
 *     writes its batch in one transaction. If the database is unreachable
 *     the batch is kept and retried every second (a newer write still wins),
 *     so memory, not MySQL, is the master's truth while it runs.
 *
 * Threading: every function except the callbacks is called from the loop
 * thread; spy_fid_job.done runs on the worker thread and must only hand the
 * job back to the loop (e.g. h2o_multithread_send_message). */
#ifndef SPY_CHUNKMASTER_WORKER_H
#define SPY_CHUNKMASTER_WORKER_H

#include <stdint.h>

#include "chunkmaster/db.h"

struct spy_fid_job {
    uint64_t count;                        /* in: fids wanted, >= 1 */
    uint64_t first;                        /* out: first fid of [first, first + count) */
    int status;                            /* out: SPY_OK or SPY_EIO */
    void (*done)(struct spy_fid_job *job); /* worker thread; the job is the caller's again */
    struct spy_fid_job *next;              /* the worker's while queued */
};

struct spy_worker_stats {
    uint64_t pending_writes; /* queued, not yet written */
    uint64_t rows_written;
    uint64_t write_errors;   /* failed passes (each retried) */
    uint64_t fid_statements; /* spy_db_alloc_fids calls */
    uint64_t fid_errors;
    int db_ok; /* 1 if the last statement succeeded */
};

struct spy_worker;

/* Starts the thread on an open connection, which it then owns (closed by
 * spy_worker_stop). SPY_OK or SPY_ENOMEM/SPY_EIO (thread not created; db is
 * still the caller's). */
int spy_worker_start(struct spy_db *db, struct spy_worker **out);

/* Queues a fid job; job->done is called exactly once, also at stop. */
void spy_worker_alloc_fids(struct spy_worker *w, struct spy_fid_job *job);

/* Queue writes; the row is copied. */
void spy_worker_save_server(struct spy_worker *w, const struct spy_db_server_row *row);
void spy_worker_delete_server(struct spy_worker *w, const struct spy_server_key *key);
void spy_worker_save_group(struct spy_worker *w, uint32_t group_id, int draining);

void spy_worker_stats(struct spy_worker *w, struct spy_worker_stats *out);

/* Makes one last attempt to write what is queued, fails fid jobs still
 * waiting (SPY_EIO), joins the thread, closes the connection and frees w. */
void spy_worker_stop(struct spy_worker *w);

#endif
