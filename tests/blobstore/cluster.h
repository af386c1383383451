/* cluster.h - a whole local cluster for the blobstore integration tests: a
 * private MariaDB (scripts/mariadb) in a temp dir, a real chunkmaster with
 * short health timers, and 2 groups x 2 real spy_servers with small chunks,
 * all on 127.0.0.1 ports that were free a moment before.
 *
 * Paths come from the environment (tests/blobstore/CMakeLists.txt sets them):
 *   SPY_CHUNKMASTER  the chunkmaster binary
 *   SPY_SPY_SERVER   the spy_server binary
 *   SPY_SOURCE_DIR   the repository (for scripts/mariadb)
 * and optionally SPY_TEST_CHUNKS / SPY_TEST_CHUNK_SIZE (spy_server's --chunks
 * and --chunk_size; default 8 x 16M) for runs that store more.
 * Every process is started here and stopped here, by its PID; if the test
 * process dies (a sanitizer abort), the daemons die with it
 * (PR_SET_PDEATHSIG) and a watchdog child stops MariaDB and removes the temp
 * dir. Logs stay in
 * the temp dir until teardown; on a failure the test prints their tails. */
#ifndef SPY_TEST_BLOB_CLUSTER_H
#define SPY_TEST_BLOB_CLUSTER_H

#include <stdint.h>
#include <sys/types.h>

#define CLUSTER_SERVERS 4 /* servers 0,1 in group 1; 2,3 in group 2 */

struct cluster {
    char dir[128];
    int db_port, master_port;
    pid_t master_pid;
    int port[CLUSTER_SERVERS];
    int group[CLUSTER_SERVERS];
    pid_t pid[CLUSTER_SERVERS];
    pid_t watchdog; /* cleans up if the test process dies first */
};

/* Starts everything and waits until both groups are writable in the route
 * table. 0, or -1 with the reason on stderr (the cluster is then torn down). */
int cluster_start(struct cluster *c);

/* Stops every process still running, MariaDB too, and removes the dir. */
void cluster_stop(struct cluster *c);

/* Starts (again) or stops (SIGTERM, waited for) the chunkmaster; 0 or -1. */
int cluster_master_start(struct cluster *c);
int cluster_master_stop(struct cluster *c);

/* Sends sig to server i; SIGKILL and SIGTERM are waited for (pid then 0). */
void cluster_signal_server(struct cluster *c, int i, int sig);

/* (Re)starts server i on its port and data dir; 0 or -1. */
int cluster_server_start(struct cluster *c, int i);

/* Server i's Status in the master's route table (1 RW, 2 RO, 3 ERR), or -1
 * if the master does not answer or does not list it. */
int cluster_server_status(const struct cluster *c, int i);

/* Prints the last lines of every log to stderr (after a failure). */
void cluster_dump_logs(const struct cluster *c);

/* Monotonic milliseconds. */
int64_t cluster_now_ms(void);

#endif
