#include "chunkmaster/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/status.h"

#define RETRY_MS 1000 /* pause before retrying writes after a failed pass */

enum write_kind { WRITE_SERVER, WRITE_DELETE, WRITE_GROUP };

/* One queued write; server writes and deletions share an identity, so a
 * deletion replaces a pending save of the same server and vice versa. */
struct pending {
    enum write_kind kind;
    struct spy_db_server_row row; /* WRITE_SERVER; key also for WRITE_DELETE */
    uint32_t group_id;            /* WRITE_GROUP */
    int draining;                 /* WRITE_GROUP */
    struct pending *next;
};

struct spy_worker {
    struct spy_db *db;
    pthread_t thread;
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t wake;
    struct spy_fid_job *fid_head, *fid_tail;
    struct pending *writes;   /* unordered, at most one entry per identity */
    struct timespec retry_at; /* no write pass before this (after a failure) */
    int stopping;
    struct spy_worker_stats stats;
};

/* same_identity: whether two queued writes are about the same row. */
static int same_identity(const struct pending *a, const struct pending *b)
{
    if ((a->kind == WRITE_GROUP) != (b->kind == WRITE_GROUP))
        return 0;
    if (a->kind == WRITE_GROUP)
        return a->group_id == b->group_id;
    return a->row.r.key.port == b->row.r.key.port && strcmp(a->row.r.key.ip, b->row.r.key.ip) == 0;
}

/* find_pending: the queued write with p's identity, or NULL. Lock held. */
static struct pending **find_pending(struct spy_worker *w, const struct pending *p)
{
    for (struct pending **it = &w->writes; *it != NULL; it = &(*it)->next)
        if (same_identity(*it, p))
            return it;
    return NULL;
}

/* queue_write: replaces the pending write with the same identity, or appends
 * a copy. Called on the loop thread. */
static void queue_write(struct spy_worker *w, const struct pending *p)
{
    pthread_mutex_lock(&w->lock);
    struct pending **slot = find_pending(w, p);
    if (slot != NULL) {
        struct pending *next = (*slot)->next;
        **slot = *p;
        (*slot)->next = next;
    } else {
        struct pending *copy = malloc(sizeof(*copy));
        if (copy == NULL) {
            pthread_mutex_unlock(&w->lock);
            spy_error("worker: out of memory, a database write is lost");
            return;
        }
        *copy = *p;
        copy->next = w->writes;
        w->writes = copy;
        w->stats.pending_writes++;
    }
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

void spy_worker_save_server(struct spy_worker *w, const struct spy_db_server_row *row)
{
    struct pending p = {.kind = WRITE_SERVER, .row = *row};
    queue_write(w, &p);
}

void spy_worker_delete_server(struct spy_worker *w, const struct spy_server_key *key)
{
    struct pending p = {.kind = WRITE_DELETE};
    p.row.r.key = *key;
    queue_write(w, &p);
}

void spy_worker_save_group(struct spy_worker *w, uint32_t group_id, int draining)
{
    struct pending p = {.kind = WRITE_GROUP, .group_id = group_id, .draining = draining};
    queue_write(w, &p);
}

void spy_worker_alloc_fids(struct spy_worker *w, struct spy_fid_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&w->lock);
    if (w->fid_tail != NULL)
        w->fid_tail->next = job;
    else
        w->fid_head = job;
    w->fid_tail = job;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

void spy_worker_stats(struct spy_worker *w, struct spy_worker_stats *out)
{
    pthread_mutex_lock(&w->lock);
    *out = w->stats;
    pthread_mutex_unlock(&w->lock);
}

/* serve_fids: one statement for every waiting job, each job getting its own
 * consecutive slice of the range. Completes every job. */
static void serve_fids(struct spy_worker *w, struct spy_fid_job *jobs)
{
    uint64_t total = 0;
    for (struct spy_fid_job *j = jobs; j != NULL; j = j->next)
        total += j->count;
    uint64_t first = 0;
    int rc = spy_db_alloc_fids(w->db, total, &first);
    pthread_mutex_lock(&w->lock);
    w->stats.fid_statements++;
    w->stats.fid_errors += rc != SPY_OK;
    w->stats.db_ok = rc == SPY_OK;
    pthread_mutex_unlock(&w->lock);
    while (jobs != NULL) {
        struct spy_fid_job *j = jobs;
        jobs = j->next;
        j->status = rc;
        j->first = first;
        first += j->count;
        j->done(j);
    }
}

/* write_one: one queued write as a statement. */
static int write_one(struct spy_db *db, const struct pending *p)
{
    switch (p->kind) {
    case WRITE_SERVER:
        return spy_db_save_server(db, &p->row);
    case WRITE_DELETE:
        return spy_db_delete_server(db, &p->row.r.key);
    case WRITE_GROUP:
        return spy_db_save_group(db, p->group_id, p->draining);
    }
    return SPY_EINVAL;
}

/* write_batch: the taken writes in one transaction. SPY_OK or SPY_EIO (then
 * nothing of the batch is committed, as far as we can tell). */
static int write_batch(struct spy_db *db, const struct pending *batch)
{
    if (spy_db_begin(db) != SPY_OK)
        return SPY_EIO;
    for (const struct pending *p = batch; p != NULL; p = p->next) {
        if (write_one(db, p) != SPY_OK) {
            spy_db_rollback(db);
            return SPY_EIO;
        }
    }
    return spy_db_commit(db);
}

/* requeue: after a failed pass, puts back each write that no newer write of
 * the same identity replaced meanwhile. Lock held. */
static void requeue(struct spy_worker *w, struct pending *batch)
{
    while (batch != NULL) {
        struct pending *p = batch;
        batch = p->next;
        if (find_pending(w, p) != NULL) {
            free(p);
            continue;
        }
        p->next = w->writes;
        w->writes = p;
        w->stats.pending_writes++;
    }
}

static void free_list(struct pending *p)
{
    while (p != NULL) {
        struct pending *next = p->next;
        free(p);
        p = next;
    }
}

/* flush_writes: writes a taken batch and accounts for it; a failed batch
 * goes back to the queue with a retry time. */
static void flush_writes(struct spy_worker *w, struct pending *batch, uint64_t n)
{
    int rc = write_batch(w->db, batch);
    pthread_mutex_lock(&w->lock);
    w->stats.db_ok = rc == SPY_OK;
    if (rc == SPY_OK) {
        w->stats.rows_written += n;
        free_list(batch);
    } else {
        w->stats.write_errors++;
        requeue(w, batch);
        clock_gettime(CLOCK_MONOTONIC, &w->retry_at);
        w->retry_at.tv_sec += RETRY_MS / 1000;
    }
    pthread_mutex_unlock(&w->lock);
}

static int time_reached(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/* wait_for_work: sleeps until a fid job arrives, writes are due, or stop.
 * Lock held. */
static void wait_for_work(struct spy_worker *w)
{
    while (!w->stopping && w->fid_head == NULL &&
           (w->writes == NULL || !time_reached(&w->retry_at))) {
        if (w->writes == NULL) {
            pthread_cond_wait(&w->wake, &w->lock);
        } else {
            /* the condition variable runs on CLOCK_MONOTONIC (see start) */
            pthread_cond_timedwait(&w->wake, &w->lock, &w->retry_at);
        }
    }
}

/* worker_main: the thread: fids first (someone waits for them), then writes;
 * at stop, one last write pass. */
static void *worker_main(void *arg)
{
    struct spy_worker *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        wait_for_work(w);
        struct spy_fid_job *jobs = w->fid_head;
        w->fid_head = w->fid_tail = NULL;
        struct pending *batch = NULL;
        uint64_t n = w->stats.pending_writes;
        if (w->writes != NULL && (w->stopping || time_reached(&w->retry_at))) {
            batch = w->writes;
            w->writes = NULL;
            w->stats.pending_writes = 0;
        }
        int stopping = w->stopping;
        pthread_mutex_unlock(&w->lock);
        if (jobs != NULL)
            serve_fids(w, jobs);
        if (batch != NULL)
            flush_writes(w, batch, n);
        pthread_mutex_lock(&w->lock);
        if (stopping)
            break;
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int spy_worker_start(struct spy_db *db, struct spy_worker **out)
{
    struct spy_worker *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return SPY_ENOMEM;
    w->db = db;
    w->stats.db_ok = 1;
    pthread_mutex_init(&w->lock, NULL);
    spy_cond_init_monotonic(&w->wake);
    int err = pthread_create(&w->thread, NULL, worker_main, w);
    if (err != 0) {
        spy_error("worker: cannot start the database thread: %s", strerror(err));
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return SPY_EIO;
    }
    *out = w;
    return SPY_OK;
}

void spy_worker_stop(struct spy_worker *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    /* jobs queued after the thread's last look: fail them, as promised */
    for (struct spy_fid_job *j = w->fid_head, *next; j != NULL; j = next) {
        next = j->next;
        j->status = SPY_EIO;
        j->done(j);
    }
    if (w->writes != NULL)
        spy_warn("worker: %llu database writes lost at stop (database unreachable)",
                 (unsigned long long)w->stats.pending_writes);
    free_list(w->writes);
    spy_db_close(w->db);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
