/* harness.h - what the chunkmaster integration tests share: a private
 * MariaDB (scripts/mariadb) in a temp dir, chunkmaster and spy_server
 * processes, a tiny blocking HTTP client, and polling with a deadline.
 *
 * Paths come from the environment, set by tests/chunkmaster/CMakeLists.txt:
 *   SPY_CHUNKMASTER  the chunkmaster binary
 *   SPY_SPY_SERVER   the spy_server binary (tests needing it skip if absent)
 *   SPY_SOURCE_DIR   the repository (for scripts/mariadb)
 * Single-threaded; every process a test starts is stopped by the test or by
 * harness_teardown, by its PID. */
#ifndef SPY_TEST_MASTER_HARNESS_H
#define SPY_TEST_MASTER_HARNESS_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

struct harness {
    char dir[256]; /* mkdtemp'd; removed by teardown */
    int db_port;
    pid_t pids[16]; /* processes still to stop at teardown */
    int npids;
};

/* Makes the temp dir and starts MariaDB in it; 0 or -1 (reason printed). */
int harness_setup(struct harness *h);

/* Stops every process still listed, then MariaDB, and removes the dir. */
void harness_teardown(struct harness *h);

/* Runs "scripts/mariadb start|stop" on the harness database (same port
 * every time). 0 or -1. */
int harness_mariadb(struct harness *h, const char *command);

/* A TCP port that was free a moment ago on 127.0.0.1. */
int harness_free_port(void);

/* Starts a chunkmaster on 'port' against the harness database with the
 * extra flags (NULL-terminated), logging to dir/master-<port>.log, and waits
 * until it answers GET /v1/chunkmaster/route. Returns its pid, or -1. */
pid_t harness_start_master(struct harness *h, int port, const char *const *extra);

/* Runs a chunkmaster with exactly these flags (NULL-terminated) and waits
 * for it to exit (at most 20 s). Returns its exit code (-1 on timeout or a
 * signal) and its output, cut to fit, in out. */
int harness_run_master(struct harness *h, const char *const *args, char *out, size_t cap);

/* Starts a spy_server (group, port, data dir under h->dir) reporting to
 * master_port every second. Returns its pid, 0 if the binary is missing, or
 * -1 if it does not start. */
pid_t harness_start_chunkserver(struct harness *h, int port, int group, int master_port);

/* Sends sig to pid, waits for it (at most 20 s, then SIGKILL) and drops it
 * from the list. Returns the exit status as from waitpid, or -1. */
int harness_stop(struct harness *h, pid_t pid, int sig);

/* One HTTP/1.1 request with Connection: close. A NULL body with a body_len
 * sends only the headers (Content-Length: body_len), to see a server refuse a
 * declared size. Returns the status code and
 * the body in *body (malloc'd, NUL-terminated, caller frees; may be NULL),
 * or -1 if the exchange failed. */
int harness_http(int port, const char *method, const char *path, const char *body, size_t body_len,
                 char **resp);

/* GET path and parse the 200 answer as JSON; NULL on any failure. */
json_t *harness_get_json(int port, const char *path);

/* POSTs a chunkserver report {"GroupId","Ip":"127.0.0.1","Port",...}.
 * Returns the HTTP status. */
int harness_report(int master_port, int group, int port);

/* The route entry of 127.0.0.1:port (a new reference), or NULL. */
json_t *harness_route_entry(int master_port, int port);

/* Polls until the entry of 127.0.0.1:port has State 'state' and
 * GroupWritable 'writable' (-1: any), or timeout_ms passes. Returns the
 * milliseconds it took, or -1 on timeout. */
long harness_wait_state(int master_port, int port, const char *state, int writable,
                        long timeout_ms);

/* Monotonic milliseconds. */
long harness_now_ms(void);

#endif
