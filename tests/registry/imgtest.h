/* imgtest.h - the imageserver integration tests' harness: a whole local
 * cluster started with scripts/cluster (private MariaDB, chunkmaster, 2x2
 * spy_servers and the cluster's own imageserver with default flags) in a
 * temp dir on free ports, extra imageservers started by the test, and a
 * small blocking HTTP/1.1 client that keeps connections alive and reads
 * every header, so tests can check exact bytes.
 *
 * Paths come from the environment (tests/registry/imageserver.cmake sets
 * them): SPY_SOURCE_DIR (the repository, for scripts/cluster), SPY_BUILD_DIR
 * (where chunkmaster/, chunkserver/ and registry/ binaries are).
 *
 * Clean-up: a watchdog child runs "scripts/cluster down" and removes the
 * temp dir when the test process ends, however it ends (even killed by a
 * sanitizer); imageservers the test starts die with it (PR_SET_PDEATHSIG).
 * IMGTEST_KEEP=1 in the environment keeps the dir (and the logs) instead. */
#ifndef SPY_TEST_IMGTEST_H
#define SPY_TEST_IMGTEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

struct imgtest_cluster {
    char dir[64];
    int db_port, master_port, first_cs_port, registry_port;
    pid_t watchdog;
    int watchdog_pipe; /* write end: closing it tells the watchdog to clean up */
};

/* Starts the cluster (scripts/cluster up) and waits until it is healthy.
 * 0, or -1 with the reason and the logs' tails on stderr. */
int imgtest_cluster_up(struct imgtest_cluster *c);

/* SIGKILLs the four spy_servers (by their PID files) and waits until they
 * are gone; imgtest_cluster_restart runs scripts/cluster up again, which
 * restarts them and waits until they are healthy. 0 or -1. */
int imgtest_kill_chunkservers(const struct imgtest_cluster *c);
int imgtest_cluster_restart(const struct imgtest_cluster *c);

/* Stops everything (scripts/cluster down) and removes the dir. */
void imgtest_cluster_down(struct imgtest_cluster *c);

/* Starts an imageserver against the cluster on a free port with the
 * cluster's connection flags plus extra[0..nextra) (e.g. "--piece_size=64K"),
 * logging to DIR/<name>.log, and waits until GET /v2/ answers 200. Returns
 * its pid and sets *port, or -1. */
pid_t imgtest_imageserver_start(const struct imgtest_cluster *c, const char *name,
                                const char *const *extra, size_t nextra, int *port);

/* SIGTERM, then waits up to timeout_ms; returns the exit status (0..255),
 * 128+signal if it died of one, or -1 if it did not exit in time (then it
 * is killed). */
int imgtest_stop(pid_t pid, int timeout_ms);

/* Runs argv (argv[0] a path) with stdout/stderr to DIR/<log>, waits up to
 * timeout_ms; returns its exit status, or -1. */
int imgtest_run(const struct imgtest_cluster *c, const char *log, char *const *argv,
                int timeout_ms);

/* A port on 127.0.0.1 that nothing listened on a moment ago. */
int imgtest_free_port(void);

/* Prints the tail of DIR/<name> to stderr (after a failure). */
void imgtest_dump_log(const struct imgtest_cluster *c, const char *name);

/* ---- HTTP client ------------------------------------------------------ */

#define IMGTEST_MAX_HEADERS 64

struct imgtest_resp {
    int status;
    size_t nheaders;
    char *names[IMGTEST_MAX_HEADERS]; /* NUL-terminated, as received */
    char *values[IMGTEST_MAX_HEADERS];
    char *body; /* NUL-terminated for convenience (len excludes it) */
    size_t len;
    int closed; /* the server closed the connection after the response */
};

/* A TCP connection to 127.0.0.1:port (receive timeout 20 s), or -1. */
int imgtest_connect(int port);

/* Sends one request on fd and reads the whole response (HEAD: no body).
 * headers is a NULL-terminated list of "Name: value" lines (may be NULL).
 * Content-Length is added when body != NULL. 0, or -1 on an I/O or parse
 * error. Free the response with imgtest_resp_free. */
int imgtest_request(int fd, const char *method, const char *target, const char *const *headers,
                    const void *body, size_t len, struct imgtest_resp *out);

/* imgtest_request on a fresh connection to port, closed afterwards. */
int imgtest_http(int port, const char *method, const char *target, const char *const *headers,
                 const void *body, size_t len, struct imgtest_resp *out);

/* The value of the first header called name (case-insensitive), or NULL;
 * imgtest_header_count counts them all. */
const char *imgtest_header(const struct imgtest_resp *r, const char *name);
size_t imgtest_header_count(const struct imgtest_resp *r, const char *name);

void imgtest_resp_free(struct imgtest_resp *r);

/* The "code" of the first error of an OCI error body (static buffer), or
 * "" when the body is not one. */
const char *imgtest_error_code(const struct imgtest_resp *r);

/* "sha256:<hex>" of data into out (72 bytes). */
void imgtest_sha256(const void *data, size_t len, char out[72]);

/* Reads a Prometheus sample "speedy_registry_<name>" from port's /metrics;
 * -1 if absent. */
int64_t imgtest_metric(int port, const char *name);

/* Uploads data as a blob of repo with a monolithic POST ?digest=; returns
 * the HTTP status (201 expected) and fills digest. */
int imgtest_put_blob(int port, const char *repo, const void *data, size_t len, char digest[72]);

#endif
