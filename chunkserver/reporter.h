/* reporter.h - spy_server's reports to the chunkmaster.
 *
 * A thread POSTs the server's state as JSON to
 * http://<master_ip>:<master_port>/v1/chunkserver/reportinfo right after start
 * and then every interval (docs/spy_server.md lists the fields). The first
 * report that gets a 2xx registers the server with the master.
 *
 * The data path never waits for the reporter: the thread takes the store's
 * and the server's statistics (short in-memory locks, no I/O under them),
 * then does its HTTP exchange (common/httpc.h, bounded by connect_timeout_ms
 * and timeout_ms) holding no lock at all. A master that is down, refusing or
 * mute costs the reporter thread at most timeout_ms per interval.
 *
 * Failures are logged once when they start and once when reporting recovers,
 * never every interval. */
#ifndef SPY_REPORTER_H
#define SPY_REPORTER_H

#include <stddef.h>
#include <stdint.h>

#include "chunkserver/server.h"
#include "chunkserver/store.h"

struct spy_reporter_config {
    const char *master_ip;     /* IPv4, IPv6 or a name (copied) */
    int master_port;           /* 1..65535 */
    const char *advertise_ip;  /* the "Ip" field (copied) */
    uint32_t group_id;         /* the "GroupId" field */
    const char *data_dir;      /* the "DataDir" field, absolute (copied) */
    int interval_ms;           /* between the end of one report and the next, > 0 */
    int connect_timeout_ms;    /* per connect attempt, e.g. 1000 */
    int timeout_ms;            /* whole HTTP exchange, e.g. 2000 */
    struct spy_store *store;   /* not owned; outlives the reporter */
    struct spy_server *server; /* not owned; its bound port is the "Port" field */
};

/* What the reporter has done so far (for tests and STATUS-like tools). */
struct spy_reporter_stats {
    uint64_t attempts;  /* reports tried */
    uint64_t successes; /* reports answered with a 2xx */
    int last_status;    /* SPY_OK, or the error of the last attempt */
    int last_http;      /* HTTP status of the last answer, 0 if none */
};

struct spy_reporter;

/* Starts the reporter thread (the first report goes out at once). Returns
 * SPY_OK, SPY_EINVAL or SPY_ENOMEM/SPY_EIO (thread creation). */
int spy_reporter_start(const struct spy_reporter_config *cfg, struct spy_reporter **out);

/* Wakes the thread, waits for it (at most about timeout_ms if a report is in
 * flight) and frees the reporter. NULL is accepted. */
void spy_reporter_stop(struct spy_reporter *r);

void spy_reporter_get_stats(struct spy_reporter *r, struct spy_reporter_stats *out);

/* The report body for the current state: malloc'd NUL-terminated JSON owned
 * by the caller, or NULL on allocation failure. Thread-safe. */
char *spy_reporter_build_report(const struct spy_reporter_config *cfg);

#endif
