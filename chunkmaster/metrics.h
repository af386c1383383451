/* metrics.h - the chunkmaster's counters and their Prometheus text rendering
 * (GET /metrics, text format 0.0.4; names in docs/chunkmaster.md).
 *
 * The counters belong to the event loop thread, which alone updates them;
 * the worker's counters come in as a snapshot (spy_worker_stats). */
#ifndef SPY_CHUNKMASTER_METRICS_H
#define SPY_CHUNKMASTER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "chunkmaster/state.h"
#include "chunkmaster/worker.h"

struct spy_metrics_counters {
    uint64_t http_requests;
    uint64_t http_client_errors; /* 4xx answers */
    uint64_t http_server_errors; /* 5xx answers */
    uint64_t reports;            /* accepted reports */
    uint64_t reports_rejected;   /* malformed or conflicting reports */
    uint64_t fid_ranges;         /* ranges handed out */
    uint64_t fids;               /* fids handed out */
};

/* Renders every metric into a malloc'd text (*out, *len; caller frees).
 * SPY_OK or SPY_ENOMEM. */
int spy_metrics_render(const struct spy_state *st, int64_t now_ms,
                       const struct spy_metrics_counters *c, const struct spy_worker_stats *ws,
                       int64_t uptime_ms, char **out, size_t *len);

#endif
