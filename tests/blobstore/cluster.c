/* cluster.c - the local cluster of the blobstore integration tests (see
 * cluster.h). */
#include "tests/blobstore/cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/httpc.h"
#include "common/status.h"

/* cluster_now_ms: CLOCK_MONOTONIC in ms. */
int64_t cluster_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* sleep_ms: a short pause while polling a daemon. */
static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* env: a required environment variable, or NULL (and a message). */
static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        fprintf(stderr, "cluster: %s is not set\n", name);
        return NULL;
    }
    return v;
}

/* free_port: a TCP port free on 127.0.0.1 a moment ago. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* mariadb: runs scripts/mariadb start|stop on dir/db. */
static int mariadb(struct cluster *c, const char *command)
{
    const char *src = env("SPY_SOURCE_DIR");
    if (src == NULL)
        return -1;
    char port[16] = "", cmd[1024];
    if (strcmp(command, "start") == 0)
        snprintf(port, sizeof(port), "%d", c->db_port);
    snprintf(cmd, sizeof(cmd), "'%s/scripts/mariadb' %s '%s/db' %s >>'%s/mariadb-script.log' 2>&1",
             src, command, c->dir, port, c->dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cluster: scripts/mariadb %s failed; see %s/mariadb-script.log\n", command,
                c->dir);
        return -1;
    }
    return 0;
}

/* spawn: fork/exec argv, output appended to log. */
static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a crashed test leaves no daemon behind */
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* stop_pid: sig, then wait up to 20 s (then SIGKILL). */
static void stop_pid(pid_t pid, int sig)
{
    if (pid <= 0)
        return;
    kill(pid, sig);
    int status;
    for (int64_t deadline = cluster_now_ms() + 20000; cluster_now_ms() < deadline; sleep_ms(10))
        if (waitpid(pid, &status, WNOHANG) == pid)
            return;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
}

/* get_route: the master's route table, or NULL. */
static json_t *get_route(const struct cluster *c)
{
    struct spy_http_req req = {.host = "127.0.0.1",
                               .port = c->master_port,
                               .method = "GET",
                               .path = "/v1/chunkmaster/route",
                               .timeout_ms = 2000};
    struct spy_http_resp resp;
    if (spy_http_request(&req, &resp) != SPY_OK)
        return NULL;
    json_t *root = resp.status == 200 ? json_loadb(resp.body, resp.body_len, 0, NULL) : NULL;
    spy_http_resp_free(&resp);
    return root;
}

/* groups_writable: 1 if both groups list 2 servers and are writable. */
static int groups_writable(const struct cluster *c)
{
    json_t *root = get_route(c);
    int ok = root != NULL;
    for (int g = 1; ok && g <= 2; g++) {
        char key[8];
        snprintf(key, sizeof(key), "%d", g);
        json_t *arr = json_object_get(root, key);
        ok = json_array_size(arr) == 2 &&
             json_is_true(json_object_get(json_array_get(arr, 0), "GroupWritable"));
    }
    json_decref(root);
    return ok;
}

/* start_watchdog: a child that outlives a crashed test just long enough to
 * stop MariaDB (started with setsid, so not our child) and remove the dir.
 * cluster_stop kills it first when the test ends normally. */
static void start_watchdog(struct cluster *c)
{
    pid_t parent = getpid();
    c->watchdog = fork();
    if (c->watchdog != 0)
        return;
    while (getppid() == parent)
        sleep_ms(200);
    c->watchdog = 0;
    for (int i = 0; i < CLUSTER_SERVERS; i++)
        c->pid[i] = 0; /* they die with the test (PR_SET_PDEATHSIG) */
    c->master_pid = 0;
    cluster_stop(c);
    _exit(0);
}

/* cluster_master_start: the chunkmaster with short health timers; waits until it answers. */
int cluster_master_start(struct cluster *c)
{
    const char *bin = env("SPY_CHUNKMASTER");
    if (bin == NULL)
        return -1;
    char dbp[16], p[16], log[256];
    snprintf(dbp, sizeof(dbp), "%d", c->db_port);
    snprintf(p, sizeof(p), "%d", c->master_port);
    snprintf(log, sizeof(log), "%s/master.log", c->dir);
    char *argv[] = {(char *)bin,
                    "-dp",
                    dbp,
                    "-p",
                    p,
                    "-h",
                    "127.0.0.1",
                    "-n",
                    "2",
                    "--rw_timeout=2",
                    "--down_timeout=4",
                    "--fid_max=100000",
                    "--db_wait=20",
                    NULL};
    c->master_pid = spawn(argv, log);
    for (int64_t deadline = cluster_now_ms() + 20000; cluster_now_ms() < deadline; sleep_ms(50)) {
        json_t *root = get_route(c);
        json_decref(root);
        if (root != NULL)
            return 0;
        int status;
        if (waitpid(c->master_pid, &status, WNOHANG) == c->master_pid) {
            c->master_pid = 0;
            break;
        }
    }
    fprintf(stderr, "cluster: the chunkmaster did not come up (log %s)\n", log);
    return -1;
}

/* cluster_master_stop: SIGTERM, waited for. */
int cluster_master_stop(struct cluster *c)
{
    stop_pid(c->master_pid, SIGTERM);
    c->master_pid = 0;
    return 0;
}

/* start_server: spy_server i with small chunks, reporting every second. */
int cluster_server_start(struct cluster *c, int i)
{
    const char *bin = env("SPY_SPY_SERVER");
    if (bin == NULL)
        return -1;
    char dir[256], log[256], a_port[32], a_dir[300], a_master[32], a_group[32];
    char a_chunks[48], a_size[48];
    const char *chunks = getenv("SPY_TEST_CHUNKS"), *size = getenv("SPY_TEST_CHUNK_SIZE");
    snprintf(a_chunks, sizeof(a_chunks), "--chunks=%s", chunks != NULL ? chunks : "8");
    snprintf(a_size, sizeof(a_size), "--chunk_size=%s", size != NULL ? size : "16M");
    snprintf(dir, sizeof(dir), "%s/cs%d", c->dir, i);
    snprintf(log, sizeof(log), "%s/cs%d.log", c->dir, i);
    mkdir(dir, 0755);
    snprintf(a_port, sizeof(a_port), "--port=%d", c->port[i]);
    snprintf(a_dir, sizeof(a_dir), "--data_dir=%s", dir);
    snprintf(a_master, sizeof(a_master), "--master_port=%d", c->master_port);
    snprintf(a_group, sizeof(a_group), "--group_id=%d", c->group[i]);
    char *argv[] = {(char *)bin,
                    a_port,
                    "--ip=127.0.0.1",
                    a_dir,
                    a_chunks,
                    a_size,
                    "--master_ip=127.0.0.1",
                    a_master,
                    a_group,
                    "--report_interval=1",
                    NULL};
    c->pid[i] = spawn(argv, log);
    return c->pid[i] > 0 ? 0 : -1;
}

/* cluster_start: MariaDB, the master, four servers; waits for writable groups. */
int cluster_start(struct cluster *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "/tmp/spy-blob-XXXXXX");
    if (mkdtemp(c->dir) == NULL) {
        perror("cluster: mkdtemp");
        c->dir[0] = '\0';
        return -1;
    }
    c->db_port = free_port();
    c->master_port = free_port();
    if (mariadb(c, "start") != 0)
        goto fail;
    start_watchdog(c);
    if (cluster_master_start(c) != 0)
        goto fail;
    for (int i = 0; i < CLUSTER_SERVERS; i++) {
        c->port[i] = free_port();
        c->group[i] = i < 2 ? 1 : 2;
        if (cluster_server_start(c, i) != 0)
            goto fail;
    }
    for (int64_t deadline = cluster_now_ms() + 30000; cluster_now_ms() < deadline; sleep_ms(100))
        if (groups_writable(c))
            return 0;
    fprintf(stderr, "cluster: the groups did not become writable\n");
fail:
    cluster_dump_logs(c);
    cluster_stop(c);
    return -1;
}

/* cluster_signal_server: kill/stop/cont one server by PID. */
void cluster_signal_server(struct cluster *c, int i, int sig)
{
    if (c->pid[i] <= 0)
        return;
    if (sig == SIGKILL || sig == SIGTERM) {
        stop_pid(c->pid[i], sig);
        c->pid[i] = 0;
        return;
    }
    kill(c->pid[i], sig);
}

/* cluster_server_status: the server's Status in the master's route table. */
int cluster_server_status(const struct cluster *c, int i)
{
    json_t *root = get_route(c);
    char key[8];
    snprintf(key, sizeof(key), "%d", c->group[i]);
    json_t *arr = json_object_get(root, key), *e;
    size_t k;
    int status = -1;
    json_array_foreach(arr, k, e)
    {
        if (json_integer_value(json_object_get(e, "Port")) == c->port[i])
            status = (int)json_integer_value(json_object_get(e, "Status"));
    }
    json_decref(root);
    return status;
}

/* cluster_stop: every process by PID, MariaDB, the temp dir. */
void cluster_stop(struct cluster *c)
{
    if (c->watchdog > 0) {
        kill(c->watchdog, SIGKILL);
        waitpid(c->watchdog, NULL, 0);
        c->watchdog = 0;
    }
    for (int i = 0; i < CLUSTER_SERVERS; i++) {
        if (c->pid[i] > 0)
            kill(c->pid[i], SIGCONT); /* a stopped server must be able to die */
        stop_pid(c->pid[i], SIGKILL);
        c->pid[i] = 0;
    }
    cluster_master_stop(c);
    if (c->dir[0] == '\0')
        return;
    if (c->db_port > 0)
        mariadb(c, "stop");
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cluster: could not remove %s\n", c->dir);
    c->dir[0] = '\0';
}

/* cluster_dump_logs: the tails of the daemons' logs, for a failed test. */
void cluster_dump_logs(const struct cluster *c)
{
    if (c->dir[0] == '\0')
        return;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "tail -n 15 '%s'/*.log '%s'/db/mariadb.err >&2 2>/dev/null", c->dir,
             c->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cluster: no logs in %s\n", c->dir);
}
