/* meta_pool.c - the metadata layer's workers: create and destroy, the bounded
 * queue, one thread and one MySQL connection per worker, the retry policy
 * and the hand-back of finished ops to their loops. */
#include "registry/meta_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/status.h"

#define DEADLOCK_RETRIES       3
#define IDLE_WAKE_MS           1000 /* an idle, disconnected worker retries this often at most */
#define MIGRATION_IO_TIMEOUT_S 900

typedef int (*meta_exec_fn)(struct meta_ctx *x, struct spy_meta_op *op);

/* Per kind: the executor; whether running it twice is harmless even after a
 * COMMIT whose outcome is unknown; whether in.pieces must be recorded as
 * orphans when the op does not store them. */
struct kind_info {
    meta_exec_fn exec;
    bool idempotent;
    bool has_pieces;
    const char *name;
};

static const struct kind_info kinds[] = {
    [SPY_META_REPO_ENSURE] = {meta_exec_repo_ensure, true, false, "repo ensure"},
    [SPY_META_BLOB_STAT] = {meta_exec_blob_stat, true, false, "blob stat"},
    [SPY_META_BLOB_COMMIT] = {meta_exec_blob_commit, true, true, "blob commit"},
    [SPY_META_BLOB_LINK] = {meta_exec_blob_link, true, false, "blob link"},
    [SPY_META_BLOB_UNLINK] = {meta_exec_blob_unlink, false, false, "blob unlink"},
    [SPY_META_MANIFEST_PUT] = {meta_exec_manifest_put, true, false, "manifest put"},
    [SPY_META_MANIFEST_GET] = {meta_exec_manifest_get, true, false, "manifest get"},
    [SPY_META_MANIFEST_DELETE] = {meta_exec_manifest_delete, false, false, "manifest delete"},
    [SPY_META_TAG_LIST] = {meta_exec_tag_list, true, false, "tag list"},
    [SPY_META_CATALOG] = {meta_exec_catalog, true, false, "catalog"},
    [SPY_META_REFERRERS] = {meta_exec_referrers, true, false, "referrers"},
    [SPY_META_UPLOAD_CREATE] = {meta_exec_upload_create, true, false, "upload create"},
    [SPY_META_UPLOAD_GET] = {meta_exec_upload_get, true, false, "upload get"},
    [SPY_META_UPLOAD_APPEND] = {meta_exec_upload_append, false, true, "upload append"},
    [SPY_META_UPLOAD_CANCEL] = {meta_exec_upload_cancel, false, false, "upload cancel"},
    [SPY_META_UPLOAD_COMPLETE] = {meta_exec_upload_complete, true, true, "upload complete"},
    [SPY_META_ORPHANS_RECORD] = {meta_exec_orphans_record, false, false, "orphans record"},
    [SPY_META_UPLOADS_EXPIRE] = {meta_exec_uploads_expire, true, false, "uploads expire"},
};

/* What spy_meta_run waits on. */
struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
};

void spy_meta_config_init(struct spy_meta_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->host = "127.0.0.1";
    cfg->port = 3306;
    cfg->user = "root";
    cfg->password = "";
    cfg->database = "metadb";
    cfg->workers = 8;
    cfg->queue_max = 1024;
    cfg->connect_timeout_s = 2;
    cfg->io_timeout_s = 5;
    cfg->queue_timeout_ms = 5000;
    cfg->backoff_min_ms = 100;
    cfg->backoff_max_ms = 2000;
    cfg->cache_bytes = 64u << 20;
    cfg->cache_ttl_ms = 60000;
    cfg->tag_ttl_ms = 1000;
}

/* ---- finishing ops ---- */

/* log_lost_pieces: the last resort for pieces that could not be recorded,
 * so an operator can still find them. */
static void log_lost_pieces(const struct spy_meta_op *op, const char *why)
{
    for (size_t i = 0; i < op->in.npieces; i++)
        spy_error("meta: %s: piece group %" PRIu32 " fid %" PRIu64 " (%" PRIu64 " bytes) of %s "
                  "is not recorded anywhere",
                  why, op->in.pieces[i].group_id, op->in.pieces[i].fid, op->in.pieces[i].length,
                  kinds[op->kind].name);
}

/* orphan_unstored_pieces: a piece-carrying op failed; its pieces belong to
 * nothing. Record them (autocommit) unless the failed commit may in fact have
 * succeeded, in which case recording them could get live data collected. */
static void orphan_unstored_pieces(struct meta_worker *w, struct spy_meta_op *op, bool unknown)
{
    if (!kinds[op->kind].has_pieces || op->in.npieces == 0)
        return;
    if (unknown) {
        for (size_t i = 0; i < op->in.npieces; i++)
            spy_warn("meta: %s: connection lost while committing; piece group %" PRIu32
                     " fid %" PRIu64 " may be orphaned",
                     kinds[op->kind].name, op->in.pieces[i].group_id, op->in.pieces[i].fid);
        return;
    }
    struct meta_ctx x = {w->m, &w->conn, &w->q};
    if (meta_conn_open(&w->conn, true) != SPY_OK ||
        meta_orphans_insert(&x, op->in.pieces, op->in.npieces, "failed op") != SPY_OK) {
        meta_sql_reset(&w->q);
        log_lost_pieces(op, "database unavailable");
        return;
    }
    META_COUNT(w->m, orphans, op->in.npieces);
}

/* finish: hands a finished op back: to its poster, or to spy_meta_run. */
static void finish(struct spy_meta_op *op)
{
    struct waiter *wt = op->_p.waiter;
    if (wt == NULL) {
        op->_p.poster->post(op->_p.poster->ctx, op);
        return;
    }
    pthread_mutex_lock(&wt->mu);
    wt->done = true;
    pthread_cond_signal(&wt->cv);
    pthread_mutex_unlock(&wt->mu);
}

void spy_meta_op_deliver(struct spy_meta_op *op)
{
    op->done(op);
}

/* ---- running ops ---- */

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* clear_outputs: an op run again starts from empty results. */
static void clear_outputs(struct spy_meta_op *op)
{
    void *ext = op->_p.ext;
    op->_p.ext = NULL;
    spy_meta_op_release(op);
    op->_p.ext = ext;
}

/* run_op: the retry policy (see meta.h, RETRIES). *unknown is set when the
 * op failed after COMMIT was sent. */
static int run_op(struct meta_worker *w, struct spy_meta_op *op, bool *unknown)
{
    const struct kind_info *k = &kinds[op->kind];
    struct meta_ctx x = {w->m, &w->conn, &w->q};
    unsigned lost = 0, deadlocks = 0;
    for (;;) {
        *unknown = false;
        int rc = meta_conn_open(&w->conn, true);
        if (rc != SPY_OK)
            return rc;
        w->conn.commit_sent = false;
        clear_outputs(op);
        rc = k->exec(&x, op);
        meta_rollback(&w->conn);
        meta_sql_reset(&w->q);
        if (rc == META_ELOST) {
            *unknown = w->conn.commit_sent;
            if ((!w->conn.commit_sent || k->idempotent) && lost++ == 0) {
                META_COUNT(w->m, retries_lost, 1);
                continue;
            }
            spy_error("meta: %s failed: connection to MySQL lost%s", k->name,
                      *unknown ? " while committing (outcome unknown)" : "");
            return SPY_EIO;
        }
        if (rc == META_ERETRY) {
            if (deadlocks++ < DEADLOCK_RETRIES) {
                META_COUNT(w->m, retries_deadlock, 1);
                sleep_ms(1 + (unsigned)rand_r(&w->seed) % (5u << deadlocks));
                continue;
            }
            spy_error("meta: %s failed: still deadlocked after %d retries", k->name,
                      DEADLOCK_RETRIES);
            return SPY_EIO;
        }
        return rc;
    }
}

/* process: one op from the queue, start to hand-back. */
static void process(struct meta_worker *w, struct spy_meta_op *op)
{
    struct spy_meta *m = w->m;
    bool unknown = false;
    if (meta_now_ms() - op->_p.queued_ms > m->cfg.queue_timeout_ms) {
        META_COUNT(m, timeouts, 1);
        op->status = SPY_ETIMEDOUT;
    } else {
        META_COUNT(m, executed, 1);
        op->status = run_op(w, op, &unknown);
        if (op->status == SPY_EIO)
            META_COUNT(m, failed, 1);
        if (op->status == SPY_OK)
            META_COUNT(m, orphans, op->out.orphaned);
    }
    if (op->status != SPY_OK)
        orphan_unstored_pieces(w, op, unknown);
    meta_op_free_ext(op);
    finish(op);
}

/* idle_wait: waits for work; a disconnected worker reconnects by itself when
 * its back-off allows, so the pool is ready when the database returns.
 * Called and returns with m->mu held. */
static void idle_wait(struct meta_worker *w)
{
    struct spy_meta *m = w->m;
    uint64_t now = meta_now_ms();
    if (w->conn.my == NULL && now >= w->conn.retry_at_ms) {
        pthread_mutex_unlock(&m->mu);
        meta_conn_open(&w->conn, true);
        pthread_mutex_lock(&m->mu);
        return;
    }
    uint64_t wake = now + IDLE_WAKE_MS;
    if (w->conn.my == NULL && w->conn.retry_at_ms < wake)
        wake = w->conn.retry_at_ms;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (wake - now) * 1000000u;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    pthread_cond_timedwait(&m->work, &m->mu, &ts);
}

/* queue_pop: the oldest op (the queue is not empty; m->mu held). */
static struct spy_meta_op *queue_pop(struct meta_queue *q)
{
    struct spy_meta_op *op = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    return op;
}

/* queue_push: appends op (the queue is not full; m->mu held). */
static void queue_push(struct meta_queue *q, struct spy_meta_op *op)
{
    q->ring[(q->head + q->count) % q->cap] = op;
    q->count++;
}

/* worker_main: a worker thread: takes ops in order until stopping. */
static void *worker_main(void *arg)
{
    struct meta_worker *w = arg;
    struct spy_meta *m = w->m;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        while (!m->stopping && m->queue.count == 0)
            idle_wait(w);
        if (m->stopping)
            break;
        struct spy_meta_op *op = queue_pop(&m->queue);
        pthread_cond_signal(&m->room);
        pthread_mutex_unlock(&m->mu);
        process(w, op);
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* ---- life cycle ---- */

/* copy_config: the config with strings of our own. */
static int copy_config(struct spy_meta *m, const struct spy_meta_config *cfg)
{
    m->cfg = *cfg;
    if (!meta_strdup(cfg->host, &m->host) || !meta_strdup(cfg->user, &m->user) ||
        !meta_strdup(cfg->password != NULL ? cfg->password : "", &m->password) ||
        !meta_strdup(cfg->database, &m->database))
        return SPY_ENOMEM;
    m->cfg.host = m->host;
    m->cfg.user = m->user;
    m->cfg.password = m->password;
    m->cfg.database = m->database;
    if (m->cfg.backoff_min_ms == 0)
        m->cfg.backoff_min_ms = 1;
    if (m->cfg.backoff_max_ms < m->cfg.backoff_min_ms)
        m->cfg.backoff_max_ms = m->cfg.backoff_min_ms;
    return SPY_OK;
}

/* migrate: one connection of its own, closed afterwards, with a read timeout
 * long enough for DDL on big tables and for waiting on another migrator. */
static int migrate(struct spy_meta *m)
{
    struct spy_meta_config cfg = m->cfg;
    cfg.io_timeout_s = MIGRATION_IO_TIMEOUT_S;
    struct meta_conn c = {.cfg = &cfg, .ctr = &m->ctr};
    struct meta_sql q = {0};
    int rc = meta_conn_open(&c, false);
    if (rc == SPY_OK)
        rc = meta_schema_migrate(&c, &q);
    meta_conn_close(&c);
    meta_sql_free(&q);
    return rc;
}

/* start_workers: the threads; their connections open in idle_wait. */
static int start_workers(struct spy_meta *m)
{
    m->workers = calloc(m->cfg.workers, sizeof(*m->workers));
    if (m->workers == NULL)
        return SPY_ENOMEM;
    for (unsigned i = 0; i < m->cfg.workers; i++) {
        struct meta_worker *w = &m->workers[i];
        w->m = m;
        w->conn.cfg = &m->cfg;
        w->conn.ctr = &m->ctr;
        w->conn.id = i;
        w->seed = (unsigned)(meta_now_ms() ^ (i * 2654435761u));
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            spy_error("meta: cannot start worker thread %u", i);
            return SPY_ENOMEM;
        }
        w->started = true;
        m->nworkers = i + 1;
    }
    return SPY_OK;
}

/* config_valid: the settings create cannot work without. */
static bool config_valid(const struct spy_meta_config *cfg)
{
    return cfg->host != NULL && cfg->user != NULL && cfg->database != NULL && cfg->workers > 0 &&
           cfg->workers <= 1024 && cfg->queue_max > 0 && cfg->port > 0 && cfg->port < 65536 &&
           cfg->io_timeout_s > 0 && cfg->connect_timeout_s > 0;
}

int spy_meta_create(const struct spy_meta_config *cfg, struct spy_meta **out)
{
    *out = NULL;
    if (!config_valid(cfg)) {
        spy_error("meta: invalid configuration");
        return SPY_EINVAL;
    }
    struct spy_meta *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return SPY_ENOMEM;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->work, NULL);
    pthread_cond_init(&m->room, NULL);
    int rc = copy_config(m, cfg);
    if (rc == SPY_OK && cfg->cache_bytes > 0) {
        m->cache = spy_meta_cache_new(cfg->cache_bytes, 16, NULL, NULL);
        rc = m->cache != NULL ? SPY_OK : SPY_ENOMEM;
    }
    m->queue.cap = cfg->queue_max;
    m->queue.ring = calloc(cfg->queue_max, sizeof(*m->queue.ring));
    if (rc == SPY_OK && m->queue.ring == NULL)
        rc = SPY_ENOMEM;
    if (rc == SPY_OK)
        rc = migrate(m);
    if (rc == SPY_OK)
        rc = start_workers(m);
    if (rc != SPY_OK) {
        spy_meta_destroy(m);
        return rc;
    }
    *out = m;
    return SPY_OK;
}

void spy_meta_destroy(struct spy_meta *m)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    m->stopping = true;
    pthread_cond_broadcast(&m->work);
    pthread_cond_broadcast(&m->room);
    pthread_mutex_unlock(&m->mu);
    for (unsigned i = 0; i < m->nworkers; i++)
        if (m->workers[i].started)
            pthread_join(m->workers[i].thread, NULL);
    while (m->queue.count > 0) {
        struct spy_meta_op *op = queue_pop(&m->queue);
        op->status = SPY_EABORTED;
        if (kinds[op->kind].has_pieces && op->in.npieces > 0)
            log_lost_pieces(op, "shutting down");
        meta_op_free_ext(op);
        finish(op);
    }
    for (unsigned i = 0; i < m->nworkers; i++) {
        meta_conn_close(&m->workers[i].conn);
        meta_sql_free(&m->workers[i].q);
    }
    free(m->workers);
    free(m->queue.ring);
    spy_meta_cache_free(m->cache);
    pthread_cond_destroy(&m->room);
    pthread_cond_destroy(&m->work);
    pthread_mutex_destroy(&m->mu);
    free(m->host);
    free(m->user);
    free(m->password);
    free(m->database);
    free(m);
}

/* ---- submitting ---- */

/* enqueue: adds op unless stopping or (when wait is false) the queue is full;
 * spy_meta_run waits for room instead. */
static int enqueue(struct spy_meta *m, struct spy_meta_op *op, bool wait)
{
    op->_p.queued_ms = meta_now_ms();
    pthread_mutex_lock(&m->mu);
    while (wait && !m->stopping && m->queue.count == m->queue.cap)
        pthread_cond_wait(&m->room, &m->mu);
    int rc = SPY_OK;
    if (m->stopping)
        rc = SPY_EABORTED;
    else if (m->queue.count == m->queue.cap)
        rc = SPY_EBUSY;
    else
        queue_push(&m->queue, op);
    if (rc == SPY_OK)
        pthread_cond_signal(&m->work);
    pthread_mutex_unlock(&m->mu);
    if (rc == SPY_OK)
        META_COUNT(m, submitted, 1);
    return rc;
}

int spy_meta_submit(struct spy_meta *m, struct spy_meta_op *op,
                    const struct spy_meta_poster *poster)
{
    if (poster == NULL || poster->post == NULL || op->done == NULL)
        return SPY_EINVAL;
    int rc = meta_op_prepare(op);
    if (rc != SPY_OK)
        return rc;
    op->_p.poster = poster;
    op->_p.waiter = NULL;
    rc = enqueue(m, op, false);
    if (rc != SPY_OK)
        meta_op_free_ext(op);
    if (rc == SPY_EBUSY)
        META_COUNT(m, busy, 1);
    return rc;
}

int spy_meta_run(struct spy_meta *m, struct spy_meta_op *op)
{
    int rc = meta_op_prepare(op);
    if (rc != SPY_OK)
        return op->status = rc;
    struct waiter wt = {.done = false};
    pthread_mutex_init(&wt.mu, NULL);
    pthread_cond_init(&wt.cv, NULL);
    op->_p.waiter = &wt;
    rc = enqueue(m, op, true);
    if (rc == SPY_OK) {
        pthread_mutex_lock(&wt.mu);
        while (!wt.done)
            pthread_cond_wait(&wt.cv, &wt.mu);
        pthread_mutex_unlock(&wt.mu);
        rc = op->status;
    } else {
        meta_op_free_ext(op);
    }
    op->_p.waiter = NULL;
    pthread_cond_destroy(&wt.cv);
    pthread_mutex_destroy(&wt.mu);
    return op->status = rc;
}

void spy_meta_stats(struct spy_meta *m, struct spy_meta_stats *out)
{
    const struct meta_counters *c = &m->ctr;
#define LOAD(f) __atomic_load_n(&c->f, __ATOMIC_RELAXED)
    *out = (struct spy_meta_stats){
        .submitted = LOAD(submitted),
        .busy = LOAD(busy),
        .timeouts = LOAD(timeouts),
        .executed = LOAD(executed),
        .failed = LOAD(failed),
        .retries_lost = LOAD(retries_lost),
        .retries_deadlock = LOAD(retries_deadlock),
        .connects = LOAD(connects),
        .connect_failures = LOAD(connect_failures),
        .cache_hits = LOAD(cache_hits),
        .cache_misses = LOAD(cache_misses),
        .orphans = LOAD(orphans),
    };
#undef LOAD
    pthread_mutex_lock(&m->mu);
    out->queued = m->queue.count;
    pthread_mutex_unlock(&m->mu);
    if (m->cache != NULL)
        spy_meta_cache_usage(m->cache, &out->cache_bytes, &out->cache_entries);
}
