/* master.c - the refresher thread: keeps the chunkmaster's route table and a
 * supply of fids in memory (see blobstore.h, MASTER OUTAGES).
 *
 * One thread per struct spy_blob, blocking on common/httpc (never on a loop):
 *  - every route_interval_ms: GET /v1/chunkmaster/route; a valid table
 *    replaces the installed one (a pointer swap under route_mu); a failure
 *    or an invalid table keeps the old one;
 *  - whenever the fid cache is below fid_low_water (checked each round, and
 *    at once when a writer kicks): GET /v1/chunkmaster/fid?count=fid_batch,
 *    repeated while the answer keeps arriving and the cache stays low; after
 *    a failure it waits FID_RETRY_MS before asking again, however often
 *    writers kick, so an outage costs the master nothing but a retry a second.
 * A failing master is logged once when it starts failing and once when it
 * recovers, not every round. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blobstore/internal.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/status.h"

#define FID_RETRY_MS   1000
#define MAX_ROUTE_BODY (16u << 20) /* a route table of thousands of servers fits */

/* master_get: one GET to the master; SPY_OK with a 200 body in resp, else an
 * error (a non-200 answer is SPY_EIO; resp is then freed). */
static int master_get(struct spy_blob *bs, const char *path, size_t max, struct spy_http_resp *resp)
{
    struct spy_http_req req = {
        .host = bs->cfg.master_host,
        .port = bs->cfg.master_port,
        .method = "GET",
        .path = path,
        .timeout_ms = (int)bs->cfg.master_timeout_ms,
        .max_response = max,
    };
    int rc = spy_http_request(&req, resp);
    if (rc == SPY_OK && resp->status != 200) {
        spy_debug("blobstore: master answered %d to GET %s", resp->status, path);
        spy_http_resp_free(resp);
        rc = SPY_EIO;
    }
    return rc;
}

/* note_master: logs a change of the master's reachability, once. */
static void note_master(struct spy_blob *bs, int ok, const char *what, int rc)
{
    int was = atomic_exchange(&bs->master_ok, ok);
    if (was && !ok)
        spy_warn("blobstore: chunkmaster %s:%d unreachable (%s: %s); using the cached route "
                 "table and %" PRIu64 " cached fids",
                 bs->cfg.master_host, bs->cfg.master_port, what, spy_strerror(rc),
                 spy_fidcache_available(bs->fids));
    else if (!was && ok)
        spy_info("blobstore: chunkmaster %s:%d answers again", bs->cfg.master_host,
                 bs->cfg.master_port);
}

/* install_route: swaps in a new table; the old one goes when its last reader
 * drops it. */
static void install_route(struct spy_blob *bs, struct spy_blobroute *rt)
{
    pthread_mutex_lock(&bs->route_mu);
    struct spy_blobroute *old = bs->route;
    bs->route = rt;
    bs->route_fetched_ms = spy_blob_now_ms();
    pthread_mutex_unlock(&bs->route_mu);
    spy_blobroute_unref(old);
}

/* refresh_route: one route fetch. */
static void refresh_route(struct spy_blob *bs, int *bad_table_logged)
{
    struct spy_http_resp resp;
    int rc = master_get(bs, "/v1/chunkmaster/route", MAX_ROUTE_BODY, &resp);
    if (rc != SPY_OK) {
        SPY_BLOB_COUNT(bs, route_errors, 1);
        note_master(bs, 0, "route", rc);
        return;
    }
    note_master(bs, 1, "route", SPY_OK);
    struct spy_blobroute *rt;
    char err[256];
    rc = spy_blobroute_parse(resp.body, resp.body_len, &rt, err, sizeof(err));
    spy_http_resp_free(&resp);
    if (rc != SPY_OK) {
        SPY_BLOB_COUNT(bs, route_errors, 1);
        if (!*bad_table_logged)
            spy_error("blobstore: the chunkmaster's route table is invalid (%s); keeping the "
                      "previous one",
                      rc == SPY_EINVAL ? err : spy_strerror(rc));
        *bad_table_logged = 1;
        return;
    }
    *bad_table_logged = 0;
    install_route(bs, rt);
    SPY_BLOB_COUNT(bs, route_refreshes, 1);
}

/* spy_blob_parse_fid_range: the master's fid answer, checked. */
int spy_blob_parse_fid_range(const char *body, size_t len, uint64_t *begin, uint64_t *end)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *b = json_object_get(root, "FidBegin"), *e = json_object_get(root, "FidEnd");
    int rc = SPY_EINVAL;
    if (json_is_integer(b) && json_is_integer(e) && json_integer_value(b) >= 0 &&
        json_integer_value(e) > json_integer_value(b)) {
        *begin = (uint64_t)json_integer_value(b);
        *end = (uint64_t)json_integer_value(e);
        rc = SPY_OK;
    }
    json_decref(root);
    return rc;
}

/* refill_fids: one fid range fetch. SPY_OK if a range was added. */
static int refill_fids(struct spy_blob *bs)
{
    char path[64];
    snprintf(path, sizeof(path), "/v1/chunkmaster/fid?count=%u", bs->cfg.fid_batch);
    struct spy_http_resp resp;
    int rc = master_get(bs, path, 4096, &resp);
    if (rc != SPY_OK) {
        SPY_BLOB_COUNT(bs, fid_errors, 1);
        note_master(bs, 0, "fid", rc);
        return rc;
    }
    note_master(bs, 1, "fid", SPY_OK);
    uint64_t begin, end;
    rc = spy_blob_parse_fid_range(resp.body, resp.body_len, &begin, &end);
    spy_http_resp_free(&resp);
    if (rc == SPY_OK)
        rc = spy_fidcache_add(bs->fids, begin, end);
    if (rc != SPY_OK) {
        SPY_BLOB_COUNT(bs, fid_errors, 1);
        spy_error("blobstore: the chunkmaster's fid answer is unusable: %s", spy_strerror(rc));
        return rc;
    }
    SPY_BLOB_COUNT(bs, fid_refills, 1);
    return SPY_OK;
}

/* update_ready: wakes spy_blob_wait_ready once a table and fids are in. */
static void update_ready(struct spy_blob *bs)
{
    struct spy_blobroute *rt = spy_blob_route_get(bs);
    int ready = rt != NULL && spy_fidcache_available(bs->fids) > 0;
    spy_blobroute_unref(rt);
    pthread_mutex_lock(&bs->mu);
    if (ready && !bs->ready) {
        bs->ready = 1;
        pthread_cond_broadcast(&bs->cond);
    }
    pthread_mutex_unlock(&bs->mu);
}

/* wait_until: sleeps on the cond until deadline (monotonic ms), a kick or
 * stop; caller holds mu. */
static void wait_until(struct spy_blob *bs, int64_t deadline_ms)
{
    struct timespec ts = {.tv_sec = deadline_ms / 1000, .tv_nsec = (deadline_ms % 1000) * 1000000};
    while (!bs->stopping && !bs->refill_wanted && spy_blob_now_ms() < deadline_ms)
        pthread_cond_timedwait(&bs->cond, &bs->mu, &ts);
}

/* refresher_main: the thread's loop. */
static void *refresher_main(void *arg)
{
    struct spy_blob *bs = arg;
    int64_t next_route = 0, fid_retry_at = 0;
    int bad_table_logged = 0;
    pthread_mutex_lock(&bs->mu);
    while (!bs->stopping) {
        bs->refill_wanted = 0;
        pthread_mutex_unlock(&bs->mu);
        int64_t now = spy_blob_now_ms();
        if (now >= next_route) {
            refresh_route(bs, &bad_table_logged);
            next_route = spy_blob_now_ms() + bs->cfg.route_interval_ms;
        }
        int fids_ok = 1;
        while (spy_fidcache_needs_refill(bs->fids) && spy_blob_now_ms() >= fid_retry_at) {
            if (refill_fids(bs) != SPY_OK) {
                fid_retry_at = spy_blob_now_ms() + FID_RETRY_MS;
                fids_ok = 0;
                break;
            }
        }
        update_ready(bs);
        pthread_mutex_lock(&bs->mu);
        int64_t wake = next_route;
        if (!fids_ok && fid_retry_at < wake)
            wake = fid_retry_at;
        if (!fids_ok && bs->refill_wanted && spy_blob_now_ms() < fid_retry_at)
            bs->refill_wanted = 0; /* kicks during an outage wait for the retry time */
        wait_until(bs, wake);
    }
    pthread_mutex_unlock(&bs->mu);
    return NULL;
}

/* spy_blob_master_start: starts the refresher thread. */
int spy_blob_master_start(struct spy_blob *bs)
{
    if (pthread_create(&bs->thread, NULL, refresher_main, bs) != 0)
        return SPY_ENOMEM;
    bs->thread_started = 1;
    return SPY_OK;
}

/* spy_blob_master_stop: wakes the refresher, asks it to stop and joins it. */
void spy_blob_master_stop(struct spy_blob *bs)
{
    if (!bs->thread_started)
        return;
    pthread_mutex_lock(&bs->mu);
    bs->stopping = 1;
    pthread_cond_broadcast(&bs->cond);
    pthread_mutex_unlock(&bs->mu);
    pthread_join(bs->thread, NULL);
    bs->thread_started = 0;
}

/* spy_blob_master_kick: a writer saw the fid cache run low: wake the refresher now. */
void spy_blob_master_kick(struct spy_blob *bs)
{
    pthread_mutex_lock(&bs->mu);
    if (!bs->refill_wanted) {
        bs->refill_wanted = 1;
        pthread_cond_broadcast(&bs->cond);
    }
    pthread_mutex_unlock(&bs->mu);
}
