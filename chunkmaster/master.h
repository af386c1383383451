/* master.h - the chunkmaster's running context, shared by main.c (which
 * builds it) and http.c (which serves from it), and its two clocks.
 *
 * Everything here belongs to the event loop thread, except the worker, which
 * has its own lock. */
#ifndef SPY_CHUNKMASTER_MASTER_H
#define SPY_CHUNKMASTER_MASTER_H

#include <stdint.h>
#include <time.h>

#include <h2o.h>

#include "chunkmaster/metrics.h"
#include "chunkmaster/state.h"
#include "chunkmaster/worker.h"

#define SPY_MASTER_VERSION "speedy 0.1"

struct spy_master_config {
    struct spy_health_config health;
    uint64_t fid_default_count; /* fids per GET /v1/chunkmaster/fid without ?count */
    uint64_t fid_max_count;     /* largest ?count accepted */
    int refresh_s;              /* status page reload period */
};

struct spy_master {
    struct spy_master_config cfg;
    struct spy_state *state;
    struct spy_worker *worker;
    struct spy_metrics_counters counters;
    int64_t started_ms;                     /* monotonic */
    int fids_in_flight;                     /* fid jobs the worker has not answered */
    h2o_multithread_receiver_t fid_replies; /* worker -> loop: finished fid jobs */
};

/* Monotonic milliseconds: every health decision uses this clock, so a wall
 * clock step never marks servers down. */
static inline int64_t spy_clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Unix time in milliseconds: only for what is stored in the database. */
static inline int64_t spy_clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
