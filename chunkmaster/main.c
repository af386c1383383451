/* main.c - the chunkmaster daemon: flags (the original's, plus health and
 * fid settings), the database at start, the state loaded from it, then the
 * event loop until SIGINT/SIGTERM.
 *
 * Exit codes: 0 after a signal, 1 if the database is unreachable or the
 * address cannot be bound (one log line says why), 2 for bad flags. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunkmaster/daemon.h"
#include "chunkmaster/db.h"
#include "chunkmaster/master.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/status.h"

/* The daemon's config: every flag's value. */
struct options {
    int debug;
    const char *db_name, *db_host, *db_password, *db_user, *listen_host, *error_log;
    long long db_port, listen_port, min_healthy, rw_timeout_s, down_timeout_s;
    long long fid_count, fid_max, db_timeout_s, db_wait_s, refresh_s;
};

/* parse_options: fills o from argv; exits on --help (0) or a bad flag (2). */
static void parse_options(int argc, char **argv, struct options *o)
{
    struct spy_flag flags[] = {
        {"D", SPY_FLAG_BOOL, &o->debug, "false", 0, 0, 0, "log at debug level"},
        {"d", SPY_FLAG_STRING, &o->db_name, "speedy", 0, 0, 0,
         "database storing servers and the fid counter (created if missing)"},
        {"dh", SPY_FLAG_STRING, &o->db_host, "127.0.0.1", 0, 0, 0, "database host"},
        {"dp", SPY_FLAG_INT, &o->db_port, "3306", 1, 65535, 0, "database port"},
        {"h", SPY_FLAG_STRING, &o->listen_host, "0.0.0.0", 0, 0, 0, "listen address"},
        {"p", SPY_FLAG_INT, &o->listen_port, "8099", 1, 65535, 0, "listen port"},
        {"pw", SPY_FLAG_STRING, &o->db_password, "", 0, 0, 0, "database password"},
        {"u", SPY_FLAG_STRING, &o->db_user, "root", 0, 0, 0, "database user"},
        {"n", SPY_FLAG_INT, &o->min_healthy, "2", 1, 1000, 0,
         "RW servers a group needs to take writes"},
        {"rw_timeout", SPY_FLAG_INT, &o->rw_timeout_s, "15", 1, 86400, 0,
         "seconds without a report after which a server is not writable (STALE)"},
        {"down_timeout", SPY_FLAG_INT, &o->down_timeout_s, "60", 1, 86400 * 30, 0,
         "seconds without a report after which a server is DOWN"},
        {"fid_count", SPY_FLAG_INT, &o->fid_count, "100", 1, 1000000, 0,
         "fids per GET /v1/chunkmaster/fid without ?count"},
        {"fid_max", SPY_FLAG_INT, &o->fid_max, "1000000", 1, 100000000, 0,
         "largest ?count accepted"},
        {"db_timeout", SPY_FLAG_INT, &o->db_timeout_s, "5", 1, 600, 0,
         "database connect, read and write timeout in seconds"},
        {"db_wait", SPY_FLAG_INT, &o->db_wait_s, "0", 0, 3600, 0,
         "at start, keep retrying an unreachable database for this many seconds"},
        {"refresh", SPY_FLAG_INT, &o->refresh_s, "5", 1, 3600, 0,
         "status page reload period in seconds"},
        {"error_log", SPY_FLAG_STRING, &o->error_log, "", 0, 0, 0,
         "log file (default: standard error)"},
    };
    size_t n = sizeof(flags) / sizeof(flags[0]);
    char err[256];
    int rc = spy_flags_parse(flags, n, argc, argv, NULL, err, sizeof(err));
    if (rc == SPY_FLAGS_HELP) {
        spy_flags_usage(stdout, argv[0],
                        "chunkmaster: knows the chunkservers and their groups, judges their "
                        "health, hands out file ids (docs/chunkmaster.md).",
                        flags, n);
        exit(0);
    }
    if (rc == SPY_FLAGS_OK && o->down_timeout_s < o->rw_timeout_s) {
        snprintf(err, sizeof(err), "--down_timeout (%lld) must be >= --rw_timeout (%lld)",
                 o->down_timeout_s, o->rw_timeout_s);
        rc = SPY_FLAGS_ERROR;
    }
    if (rc == SPY_FLAGS_OK && o->fid_count > o->fid_max) {
        snprintf(err, sizeof(err), "--fid_count (%lld) must be <= --fid_max (%lld)", o->fid_count,
                 o->fid_max);
        rc = SPY_FLAGS_ERROR;
    }
    if (rc != SPY_FLAGS_OK) {
        fprintf(stderr, "chunkmaster: %s\n", err);
        exit(2);
    }
}

/* open_db: spy_db_open, retried once a second for --db_wait seconds. */
static int open_db(const struct spy_db_config *cfg, long long wait_s, struct spy_db **db)
{
    int64_t deadline = spy_clock_mono_ms() + wait_s * 1000;
    for (;;) {
        int rc = spy_db_open(cfg, db);
        if (rc != SPY_EIO || spy_clock_mono_ms() >= deadline)
            return rc;
        spy_warn("database not reachable yet, retrying for %lld more s",
                 (long long)(deadline - spy_clock_mono_ms()) / 1000);
        sleep(1);
    }
}

/* The callbacks of spy_db_load: rows become state entries, with the stored
 * wall-clock report time turned into an age on the monotonic clock. */
struct load_ctx {
    struct spy_state *state;
    int64_t mono_now, wall_now;
    size_t servers;
    int failed;
};

static void load_server(void *arg, const struct spy_db_server_row *row)
{
    struct load_ctx *lc = arg;
    struct spy_server s = {.r = row->r, .reported = row->reported, .draining = row->draining};
    s.last_report_ms = lc->mono_now - (lc->wall_now - row->last_report_unix_ms);
    if (spy_state_restore_server(lc->state, &s) != SPY_OK)
        lc->failed = 1;
    lc->servers++;
}

static void load_group(void *arg, uint32_t group_id, int draining)
{
    struct load_ctx *lc = arg;
    if (spy_state_restore_group(lc->state, group_id, draining) != SPY_OK)
        lc->failed = 1;
}

/* load_state: the servers and group flags stored by earlier runs. */
static int load_state(struct spy_db *db, struct spy_state *state)
{
    struct load_ctx lc = {
        .state = state, .mono_now = spy_clock_mono_ms(), .wall_now = spy_clock_wall_ms()};
    if (spy_db_load(db, load_server, load_group, &lc) != SPY_OK)
        return SPY_EIO;
    if (lc.failed) {
        spy_error("out of memory loading %zu servers", lc.servers);
        return SPY_ENOMEM;
    }
    spy_info("loaded %zu chunkserver(s) from the database", lc.servers);
    return SPY_OK;
}

/* master_config: the running settings derived from the flags. */
static struct spy_master_config master_config(const struct options *o)
{
    struct spy_master_config c = {
        .health = {.rw_timeout_ms = o->rw_timeout_s * 1000,
                   .down_timeout_ms = o->down_timeout_s * 1000,
                   .min_healthy = (int)o->min_healthy},
        .fid_default_count = (uint64_t)o->fid_count,
        .fid_max_count = (uint64_t)o->fid_max,
        .refresh_s = (int)o->refresh_s,
    };
    return c;
}

int main(int argc, char **argv)
{
    struct options o;
    parse_options(argc, argv, &o);
    spy_log_set_name("chunkmaster");
    spy_log_set_level(o.debug ? SPY_LOG_DEBUG : SPY_LOG_INFO);
    if (spy_log_open(o.error_log) != 0) {
        fprintf(stderr, "chunkmaster: cannot open --error_log %s\n", o.error_log);
        return 2;
    }
    struct spy_db_config dbc = {.host = o.db_host,
                                .port = (int)o.db_port,
                                .user = o.db_user,
                                .password = o.db_password,
                                .database = o.db_name,
                                .connect_timeout_s = (unsigned)o.db_timeout_s,
                                .io_timeout_s = (unsigned)o.db_timeout_s};
    static struct spy_master m; /* lives until exit; the loop refers to it */
    m.cfg = master_config(&o);
    m.started_ms = spy_clock_mono_ms();
    m.state = spy_state_new(&m.cfg.health);
    struct spy_db *db = NULL;
    spy_daemon_block_signals();
    if (m.state == NULL || open_db(&dbc, o.db_wait_s, &db) != SPY_OK ||
        load_state(db, m.state) != SPY_OK || spy_worker_start(db, &m.worker) != SPY_OK) {
        spy_db_close(db);
        return 1;
    }
    int rc = spy_daemon_run(&m, o.listen_host, (int)o.listen_port);
    spy_state_free(m.state);
    return rc == SPY_OK ? 0 : 1;
}
