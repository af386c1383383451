/* reporter.c - the chunkmaster report thread (see reporter.h). */
#include "chunkserver/reporter.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/status.h"

#define REPORT_PATH    "/v1/chunkserver/reportinfo"
#define REPORT_VERSION "speedy 0.1"

struct spy_reporter {
    struct spy_reporter_config cfg; /* strings point at the owned copies below */
    char *master_ip, *advertise_ip, *data_dir;
    pthread_t thread;
    pthread_mutex_t lock; /* guards stop and stats; never held during I/O */
    pthread_cond_t wake;
    int stop;
    int failing; /* thread only: the last report failed (logged once) */
    struct spy_reporter_stats stats;
};

char *spy_reporter_build_report(const struct spy_reporter_config *cfg)
{
    struct spy_store_stats st;
    struct spy_server_counters ct;
    spy_store_get_stats(cfg->store, &st);
    spy_server_get_counters(cfg->server, &ct);
    int read_only = ct.store_readonly != 0 || (st.chunks > 0 && st.chunks_damaged >= st.chunks);
    json_t *o =
        json_pack("{s:i, s:s, s:i, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s,"
                  " s:I, s:I, s:I, s:s}",
                  "GroupId", (int)cfg->group_id, "Ip", cfg->advertise_ip, "Port",
                  spy_server_port(cfg->server), "ReadOnly", read_only, "TotalFreeSpace",
                  (json_int_t)st.total_free, "MaxFreeSpace", (json_int_t)st.max_free, "UsedSpace",
                  (json_int_t)st.used, "GarbageSpace", (json_int_t)st.garbage, "Objects",
                  (json_int_t)st.objects, "PendingWrites", (json_int_t)st.writes_pending,
                  "WritingCount", (json_int_t)st.writes_active, "ReadingCount",
                  (json_int_t)ct.reads_active, "DataDir", cfg->data_dir, "TotalChunks",
                  (json_int_t)st.chunks, "DamagedChunks", (json_int_t)st.chunks_damaged,
                  "ConnectionsCount", (json_int_t)ct.connections, "Version", REPORT_VERSION);
    if (o == NULL)
        return NULL;
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

/* post_report: one POST; returns SPY_OK for a 2xx, else an error, with the
 * HTTP status (0 if none) in *http. */
static int post_report(struct spy_reporter *r, int *http)
{
    *http = 0;
    char *body = spy_reporter_build_report(&r->cfg);
    if (body == NULL)
        return SPY_ENOMEM;
    struct spy_http_req req = {.host = r->cfg.master_ip,
                               .port = r->cfg.master_port,
                               .method = "POST",
                               .path = REPORT_PATH,
                               .content_type = "application/json",
                               .body = body,
                               .body_len = strlen(body),
                               .connect_timeout_ms = r->cfg.connect_timeout_ms,
                               .timeout_ms = r->cfg.timeout_ms,
                               .max_response = 65536};
    struct spy_http_resp resp;
    int rc = spy_http_request(&req, &resp);
    free(body);
    if (rc == SPY_OK) {
        *http = resp.status;
        if (resp.status < 200 || resp.status > 299)
            rc = SPY_EIO;
    }
    spy_http_resp_free(&resp);
    return rc;
}

/* log_transition: logs only when reporting starts failing or recovers. */
static void log_transition(struct spy_reporter *r, int rc, int http, int first)
{
    if (rc != SPY_OK && !r->failing) {
        if (http != 0)
            spy_warn("report to chunkmaster %s port %d refused: HTTP %d (retrying every %d ms, "
                     "logged once)",
                     r->cfg.master_ip, r->cfg.master_port, http, r->cfg.interval_ms);
        else
            spy_warn("report to chunkmaster %s port %d failed: %s (retrying every %d ms, "
                     "logged once)",
                     r->cfg.master_ip, r->cfg.master_port, spy_strerror(rc), r->cfg.interval_ms);
    } else if (rc == SPY_OK && (r->failing || first)) {
        spy_info("reporting to chunkmaster %s port %d %s", r->cfg.master_ip, r->cfg.master_port,
                 first ? "works (registered)" : "recovered");
    }
    r->failing = rc != SPY_OK;
}

/* report_thread: report, sleep interval (or until stop), repeat. */
static void *report_thread(void *arg)
{
    struct spy_reporter *r = arg;
    int first = 1;
    pthread_mutex_lock(&r->lock);
    while (!r->stop) {
        pthread_mutex_unlock(&r->lock);
        int http;
        int rc = post_report(r, &http);
        log_transition(r, rc, http, first && rc == SPY_OK);
        if (rc == SPY_OK)
            first = 0;
        pthread_mutex_lock(&r->lock);
        r->stats.attempts++;
        r->stats.successes += rc == SPY_OK;
        r->stats.last_status = rc;
        r->stats.last_http = http;
        struct timespec until = spy_clock_deadline(r->cfg.interval_ms);
        while (!r->stop)
            if (pthread_cond_timedwait(&r->wake, &r->lock, &until) == ETIMEDOUT)
                break;
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* reporter_free: frees a reporter whose thread is not running. */
static void reporter_free(struct spy_reporter *r)
{
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->lock);
    free(r->master_ip);
    free(r->advertise_ip);
    free(r->data_dir);
    free(r);
}

int spy_reporter_start(const struct spy_reporter_config *cfg, struct spy_reporter **out)
{
    if (cfg->master_ip == NULL || cfg->advertise_ip == NULL || cfg->data_dir == NULL ||
        cfg->store == NULL || cfg->server == NULL || cfg->interval_ms <= 0 ||
        cfg->timeout_ms <= 0 || cfg->master_port < 1 || cfg->master_port > 65535)
        return SPY_EINVAL;
    struct spy_reporter *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return SPY_ENOMEM;
    pthread_mutex_init(&r->lock, NULL);
    spy_cond_init_monotonic(&r->wake);
    r->cfg = *cfg;
    r->master_ip = strdup(cfg->master_ip);
    r->advertise_ip = strdup(cfg->advertise_ip);
    r->data_dir = strdup(cfg->data_dir);
    if (r->master_ip == NULL || r->advertise_ip == NULL || r->data_dir == NULL) {
        reporter_free(r);
        return SPY_ENOMEM;
    }
    r->cfg.master_ip = r->master_ip;
    r->cfg.advertise_ip = r->advertise_ip;
    r->cfg.data_dir = r->data_dir;
    int err = pthread_create(&r->thread, NULL, report_thread, r);
    if (err != 0) {
        spy_error("cannot start the reporter thread: %s", strerror(err));
        reporter_free(r);
        return SPY_EIO;
    }
    *out = r;
    return SPY_OK;
}

void spy_reporter_stop(struct spy_reporter *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = 1;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    reporter_free(r);
}

void spy_reporter_get_stats(struct spy_reporter *r, struct spy_reporter_stats *out)
{
    pthread_mutex_lock(&r->lock);
    *out = r->stats;
    pthread_mutex_unlock(&r->lock);
}
