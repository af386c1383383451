/* blobstore.c - the shared state of the storage client: config, route table
 * pointer, fid cache, blacklist, counters; loop attach and detach (see
 * blobstore.h). Writing, reading and deleting live in writer.c, reader.c and
 * delete.c; the refresher thread in master.c; connections in conn.c. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blobstore/conn.h"
#include "blobstore/internal.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/status.h"

#define MIN_PIECE            (64u << 10)
#define MAX_PIECE            (1ull << 30)
#define INPUT_BUFFERS_CACHED 4            /* drained input buffers a loop keeps for reuse */
#define INPUT_BUFFER_DEFAULT (512u << 10) /* one read burst when so_rcvbuf is the kernel's */

/* spy_blob_config_init: the defaults documented in blobstore.h and docs/blobstore.md. */
void spy_blob_config_init(struct spy_blob_config *cfg)
{
    *cfg = (struct spy_blob_config){
        .master_host = "127.0.0.1",
        .master_port = 8099,
        .min_writable = 2,
        .piece_size = 2u << 20,
        .route_interval_ms = 2000,
        .master_timeout_ms = 2000,
        .fid_batch = 1000,
        .fid_low_water = 500,
        .connect_timeout_ms = 2000,
        .io_timeout_ms = 10000,
        .write_attempts = 3,
        .pool_idle_max = 8,
        .pool_idle_ms = 20000,
        .blacklist_base_ms = 1000,
        .blacklist_max_ms = 30000,
        .so_rcvbuf = 256 << 10,
        .so_sndbuf = 256 << 10,
        .seed = 0,
    };
}

/* spy_blob_now_ms: CLOCK_MONOTONIC in ms: immune to wall-clock jumps. */
int64_t spy_blob_now_ms(void)
{
    return spy_clock_ms();
}

/* check_config: one log line naming the first bad setting. */
static int check_config(const struct spy_blob_config *c)
{
    const char *bad = NULL;
    if (c->master_host == NULL || c->master_host[0] == '\0')
        bad = "master_host is empty";
    else if (c->master_port < 1 || c->master_port > 65535)
        bad = "master_port must be 1..65535";
    else if (c->min_writable < 1 || c->min_writable > SPY_BLOBROUTE_MAX_SERVERS)
        bad = "min_writable (-n) must be 1..16";
    else if (c->piece_size < MIN_PIECE || c->piece_size > MAX_PIECE)
        bad = "piece_size must be 64 KiB .. 1 GiB";
    else if (c->route_interval_ms == 0 || c->master_timeout_ms == 0 || c->connect_timeout_ms == 0 ||
             c->io_timeout_ms == 0 || c->pool_idle_ms == 0)
        bad = "intervals and timeouts must be > 0";
    else if (c->fid_batch == 0 || c->fid_batch > 1000000)
        bad = "fid_batch must be 1..1000000";
    else if (c->write_attempts < 1 || c->write_attempts > 16)
        bad = "write_attempts must be 1..16";
    else if (c->blacklist_base_ms == 0 || c->blacklist_max_ms < c->blacklist_base_ms)
        bad = "blacklist_base_ms must be > 0 and <= blacklist_max_ms";
    if (bad == NULL)
        return SPY_OK;
    spy_error("blobstore: bad config: %s", bad);
    return SPY_EINVAL;
}

/* free_blob: frees what create allocated (the thread is not running). */
static void free_blob(struct spy_blob *bs)
{
    spy_blobroute_unref(bs->route);
    spy_fidcache_free(bs->fids);
    spy_blacklist_free(bs->blacklist);
    pthread_mutex_destroy(&bs->route_mu);
    pthread_mutex_destroy(&bs->mu);
    pthread_cond_destroy(&bs->cond);
    free(bs->master_host);
    free(bs);
}

/* init_sync: the mutexes and the monotonic condition variable. */
static void init_sync(struct spy_blob *bs)
{
    pthread_mutex_init(&bs->route_mu, NULL);
    pthread_mutex_init(&bs->mu, NULL);
    spy_cond_init_monotonic(&bs->cond);
}

/* spy_blob_create: checks the config, allocates the shared state, starts the refresher. */
int spy_blob_create(const struct spy_blob_config *cfg, struct spy_blob **out)
{
    *out = NULL;
    if (check_config(cfg) != SPY_OK)
        return SPY_EINVAL;
    struct spy_blob *bs = calloc(1, sizeof(*bs));
    if (bs == NULL)
        return SPY_ENOMEM;
    init_sync(bs);
    bs->cfg = *cfg;
    bs->master_host = strdup(cfg->master_host);
    bs->cfg.master_host = bs->master_host;
    bs->fids = spy_fidcache_new(cfg->fid_low_water);
    bs->blacklist = spy_blacklist_new(cfg->blacklist_base_ms, cfg->blacklist_max_ms);
    atomic_init(&bs->master_ok, 1);
    if (bs->master_host == NULL || bs->fids == NULL || bs->blacklist == NULL ||
        spy_blob_master_start(bs) != SPY_OK) {
        free_blob(bs);
        return SPY_ENOMEM;
    }
    /* h2o writes with writev(2): a chunkserver that closes must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    *out = bs;
    return SPY_OK;
}

/* spy_blob_wait_ready: blocks on the refresher's condition until a table and fids are in. */
int spy_blob_wait_ready(struct spy_blob *bs, int timeout_ms)
{
    int64_t deadline = spy_blob_now_ms() + timeout_ms;
    struct timespec ts = {.tv_sec = deadline / 1000, .tv_nsec = (deadline % 1000) * 1000000};
    pthread_mutex_lock(&bs->mu);
    while (!bs->ready && spy_blob_now_ms() < deadline)
        pthread_cond_timedwait(&bs->cond, &bs->mu, &ts);
    int ready = bs->ready;
    pthread_mutex_unlock(&bs->mu);
    return ready ? SPY_OK : SPY_ETIMEDOUT;
}

/* spy_blob_destroy: joins the refresher, then frees. */
void spy_blob_destroy(struct spy_blob *bs)
{
    if (bs == NULL)
        return;
    spy_blob_master_stop(bs);
    free_blob(bs);
}

#define LOAD(field) atomic_load_explicit(&bs->n.field, memory_order_relaxed)

/* spy_blob_stats: a copy of the counters plus the cache and blacklist gauges. */
void spy_blob_stats(struct spy_blob *bs, struct spy_blob_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->route_refreshes = LOAD(route_refreshes);
    out->route_errors = LOAD(route_errors);
    out->fid_refills = LOAD(fid_refills);
    out->fid_errors = LOAD(fid_errors);
    out->fids_available = spy_fidcache_available(bs->fids);
    out->master_ok = atomic_load(&bs->master_ok);
    pthread_mutex_lock(&bs->route_mu);
    out->route_age_ms = bs->route != NULL ? spy_blob_now_ms() - bs->route_fetched_ms : -1;
    out->route_groups = bs->route != NULL ? bs->route->ngroups : 0;
    pthread_mutex_unlock(&bs->route_mu);
    out->writes_started = LOAD(writes_started);
    out->writes_done = LOAD(writes_done);
    out->writes_failed = LOAD(writes_failed);
    out->pieces_written = LOAD(pieces_written);
    out->bytes_written = LOAD(bytes_written);
    out->piece_retries = LOAD(piece_retries);
    out->orphans = LOAD(orphans);
    out->reads_started = LOAD(reads_started);
    out->reads_done = LOAD(reads_done);
    out->reads_failed = LOAD(reads_failed);
    out->bytes_read = LOAD(bytes_read);
    out->read_failovers = LOAD(read_failovers);
    out->read_aheads_used = LOAD(read_aheads_used);
    out->read_aheads_dropped = LOAD(read_aheads_dropped);
    out->deletes_done = LOAD(deletes_done);
    out->deletes_failed = LOAD(deletes_failed);
    out->conns_opened = LOAD(conns_opened);
    out->conns_reused = LOAD(conns_reused);
    out->conns_idle = LOAD(conns_idle);
    out->timeouts = LOAD(timeouts);
    out->server_failures = LOAD(server_failures);
    out->blacklisted = spy_blacklist_count(bs->blacklist, spy_blob_now_ms());
}

/* spy_blob_route_get: a counted reference to the installed table; the lock covers only the
 * increment. */
struct spy_blobroute *spy_blob_route_get(struct spy_blob *bs)
{
    pthread_mutex_lock(&bs->route_mu);
    struct spy_blobroute *rt = bs->route != NULL ? spy_blobroute_ref(bs->route) : NULL;
    pthread_mutex_unlock(&bs->route_mu);
    return rt;
}

/* spy_blob_blocked: adapts the blacklist to route.h's callback shape. */
int spy_blob_blocked(void *arg, const struct spy_blobroute_server *s)
{
    struct spy_blob *bs = arg;
    return spy_blacklist_blocked(bs->blacklist, s->name, spy_blob_now_ms());
}

/* spy_blob_server_failed: blacklists a server and logs when its block starts (not per failure). */
void spy_blob_server_failed(struct spy_blob *bs, const char *name, int status, const char *what)
{
    int64_t now = spy_blob_now_ms();
    int was_blocked = spy_blacklist_blocked(bs->blacklist, name, now);
    int64_t block = spy_blacklist_fail(bs->blacklist, name, now);
    SPY_BLOB_COUNT(bs, server_failures, 1);
    if (!was_blocked)
        spy_warn("blobstore: %s failed (%s: %s); avoiding it for %lld ms", name, what,
                 spy_strerror(status), (long long)block);
}

/* spy_blob_server_ok: clears a server's blacklist entry. */
void spy_blob_server_ok(struct spy_blob *bs, const char *name)
{
    spy_blacklist_ok(bs->blacklist, name);
}

/* spy_blob_loop_random: xorshift64 with per-loop state: no lock, no shared RNG. */
uint64_t spy_blob_loop_random(struct spy_blob_loop *lp)
{
    uint64_t x = lp->rng; /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    lp->rng = x;
    return x;
}

/* spy_blob_defer: runs an entry's callback on the next turn of the loop (never inline). */
void spy_blob_defer(struct spy_blob_loop *lp, h2o_timeout_entry_t *entry)
{
    if (h2o_timeout_is_linked(entry))
        h2o_timeout_unlink(entry);
    h2o_timeout_link(lp->loop, &lp->zero_timeout, entry);
}

/* spy_blob_is_server_failure: failures of the server or the path to it; answers are not. */
int spy_blob_is_server_failure(int status)
{
    return status == SPY_EIO || status == SPY_ETIMEDOUT || status == SPY_ECLOSED ||
           status == SPY_EPROTO;
}

/* spy_blob_loop_attach: the per-loop timers, pool and seed. */
int spy_blob_loop_attach(struct spy_blob *bs, h2o_loop_t *loop, struct spy_blob_loop **out)
{
    struct spy_blob_loop *lp = calloc(1, sizeof(*lp));
    if (lp == NULL)
        return SPY_ENOMEM;
    lp->bs = bs;
    lp->loop = loop;
    h2o_timeout_init(loop, &lp->connect_timeout, bs->cfg.connect_timeout_ms);
    h2o_timeout_init(loop, &lp->io_timeout, bs->cfg.io_timeout_ms);
    h2o_timeout_init(loop, &lp->idle_timeout, bs->cfg.pool_idle_ms);
    h2o_timeout_init(loop, &lp->zero_timeout, 0);
    h2o_linklist_init_anchor(&lp->idle);
    lp->input_proto.allocator.max = INPUT_BUFFERS_CACHED;
    lp->input_proto._initial_buf.capacity =
        bs->cfg.so_rcvbuf > 0 ? 2 * (size_t)bs->cfg.so_rcvbuf : INPUT_BUFFER_DEFAULT;
    uint64_t seed = bs->cfg.seed != 0 ? bs->cfg.seed : (uint64_t)spy_blob_now_ms() * 2654435761u;
    lp->rng = (seed ^ (0x9E3779B97F4A7C15ull * (atomic_fetch_add(&bs->loops_attached, 1) + 1))) | 1;
    *out = lp;
    return SPY_OK;
}

/* spy_blob_loop_detach: closes the pool and disposes the timers, once nothing is running. */
int spy_blob_loop_detach(struct spy_blob_loop *lp)
{
    if (lp->active > 0)
        return SPY_EBUSY;
    spy_blobconn_pool_close_all(lp);
    while (lp->input_proto.allocator.cnt > 0) /* the cached input buffers */
        free(h2o_mem_alloc_recycle(&lp->input_proto.allocator, 1));
    h2o_timeout_dispose(lp->loop, &lp->connect_timeout);
    h2o_timeout_dispose(lp->loop, &lp->io_timeout);
    h2o_timeout_dispose(lp->loop, &lp->idle_timeout);
    h2o_timeout_dispose(lp->loop, &lp->zero_timeout);
    free(lp);
    return SPY_OK;
}
