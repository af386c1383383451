#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

long harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* env_path: an environment variable the CMake file sets, or NULL. */
static const char *env_path(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

int harness_mariadb(struct harness *h, const char *command)
{
    const char *src = env_path("SPY_SOURCE_DIR");
    if (src == NULL) {
        fprintf(stderr, "harness: SPY_SOURCE_DIR is not set\n");
        return -1;
    }
    char port[16] = "";
    if (strcmp(command, "start") == 0)
        snprintf(port, sizeof(port), "%d", h->db_port);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s/scripts/mariadb' %s '%s/db' %s >>'%s/mariadb-script.log' 2>&1",
             src, command, h->dir, port, h->dir);
    int rc = system(cmd);
    if (rc != 0) {
        fprintf(stderr, "harness: scripts/mariadb %s failed (%d); see %s/mariadb-script.log\n",
                command, rc, h->dir);
        return -1;
    }
    return 0;
}

int harness_free_port(void)
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

int harness_setup(struct harness *h)
{
    memset(h, 0, sizeof(*h));
    snprintf(h->dir, sizeof(h->dir), "/tmp/spy-master-test-XXXXXX");
    if (mkdtemp(h->dir) == NULL) {
        perror("harness: mkdtemp");
        return -1;
    }
    h->db_port = harness_free_port();
    if (harness_mariadb(h, "start") != 0) {
        harness_teardown(h);
        return -1;
    }
    return 0;
}

void harness_teardown(struct harness *h)
{
    while (h->npids > 0)
        harness_stop(h, h->pids[h->npids - 1], SIGKILL);
    if (h->dir[0] == '\0')
        return;
    harness_mariadb(h, "stop");
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "harness: could not remove %s\n", h->dir);
    h->dir[0] = '\0';
}

/* spawn: fork/exec argv with stdout and stderr appended to log. */
static pid_t spawn(struct harness *h, char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (pid > 0 && h->npids < (int)(sizeof(h->pids) / sizeof(h->pids[0])))
        h->pids[h->npids++] = pid;
    return pid;
}

/* unlist: pid no longer needs stopping at teardown. */
static void unlist(struct harness *h, pid_t pid)
{
    for (int i = 0; i < h->npids; i++)
        if (h->pids[i] == pid)
            h->pids[i] = h->pids[--h->npids];
}

/* exited: 1 if pid has ended (and is then reaped and unlisted). */
static int exited(struct harness *h, pid_t pid)
{
    int status;
    if (waitpid(pid, &status, WNOHANG) != pid)
        return 0;
    unlist(h, pid);
    return 1;
}

static void print_log(const char *log)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "tail -20 '%s' >&2", log);
    if (system(cmd) != 0)
        fprintf(stderr, "(no log %s)\n", log);
}

pid_t harness_start_master(struct harness *h, int port, const char *const *extra)
{
    const char *bin = env_path("SPY_CHUNKMASTER");
    if (bin == NULL) {
        fprintf(stderr, "harness: SPY_CHUNKMASTER is not set\n");
        return -1;
    }
    char db_port[16], listen_port[16], log[512];
    snprintf(db_port, sizeof(db_port), "%d", h->db_port);
    snprintf(listen_port, sizeof(listen_port), "%d", port);
    snprintf(log, sizeof(log), "%s/master-%d.log", h->dir, port);
    char *argv[40] = {(char *)bin, "-dp", db_port, "-p", listen_port, "-h", "127.0.0.1"};
    int argc = 7;
    for (int i = 0; extra != NULL && extra[i] != NULL && argc < 39; i++)
        argv[argc++] = (char *)extra[i];
    pid_t pid = spawn(h, argv, log);
    for (long deadline = harness_now_ms() + 15000; pid > 0 && harness_now_ms() < deadline;) {
        char *body = NULL;
        int status = harness_http(port, "GET", "/v1/chunkmaster/route", NULL, 0, &body);
        free(body);
        if (status == 200)
            return pid;
        if (exited(h, pid))
            break;
        sleep_ms(50);
    }
    fprintf(stderr, "harness: chunkmaster on port %d did not come up; its log:\n", port);
    print_log(log);
    return -1;
}

int harness_run_master(struct harness *h, const char *const *args, char *out, size_t cap)
{
    const char *bin = env_path("SPY_CHUNKMASTER");
    char log[512];
    snprintf(log, sizeof(log), "%s/run-master.log", h->dir);
    unlink(log);
    char *argv[40] = {(char *)bin};
    int argc = 1;
    for (int i = 0; args[i] != NULL && argc < 39; i++)
        argv[argc++] = (char *)args[i];
    pid_t pid = bin != NULL ? spawn(h, argv, log) : -1;
    int code = -1;
    for (long deadline = harness_now_ms() + 20000; pid > 0; sleep_ms(20)) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            unlist(h, pid);
            code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            break;
        }
        if (harness_now_ms() > deadline) {
            harness_stop(h, pid, SIGKILL);
            break;
        }
    }
    out[0] = '\0';
    FILE *f = fopen(log, "r");
    if (f != NULL) {
        size_t n = fread(out, 1, cap - 1, f);
        out[n] = '\0';
        fclose(f);
    }
    return code;
}

pid_t harness_start_chunkserver(struct harness *h, int port, int group, int master_port)
{
    const char *bin = env_path("SPY_SPY_SERVER");
    if (bin == NULL || access(bin, X_OK) != 0)
        return 0;
    char data_dir[400], log[512];
    snprintf(data_dir, sizeof(data_dir), "%s/cs-%d", h->dir, port);
    snprintf(log, sizeof(log), "%s/cs-%d.log", h->dir, port);
    mkdir(data_dir, 0755);
    char a_port[32], a_dir[420], a_master[32], a_group[32];
    snprintf(a_port, sizeof(a_port), "--port=%d", port);
    snprintf(a_dir, sizeof(a_dir), "--data_dir=%s", data_dir);
    snprintf(a_master, sizeof(a_master), "--master_port=%d", master_port);
    snprintf(a_group, sizeof(a_group), "--group_id=%d", group);
    char *argv[] = {(char *)bin,
                    a_port,
                    "--ip=127.0.0.1",
                    a_dir,
                    "--chunks=2",
                    "--chunk_size=8M",
                    "--master_ip=127.0.0.1",
                    a_master,
                    a_group,
                    "--report_interval=1",
                    NULL};
    pid_t pid = spawn(h, argv, log);
    sleep_ms(100);
    if (pid < 0 || exited(h, pid)) {
        fprintf(stderr, "harness: spy_server on port %d did not start; its log:\n", port);
        print_log(log);
        return -1;
    }
    return pid;
}

int harness_stop(struct harness *h, pid_t pid, int sig)
{
    unlist(h, pid);
    if (kill(pid, sig) != 0)
        return -1;
    int status;
    for (long deadline = harness_now_ms() + 20000; harness_now_ms() < deadline; sleep_ms(20))
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

/* connect_local: a blocking TCP connection to 127.0.0.1:port with 10 s
 * send and receive timeouts; -1 on failure. */
static int connect_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* read_all: everything until the server closes; malloc'd, NUL-terminated. */
static char *read_all(int fd, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (buf == NULL)
            return NULL;
        if (n + 1 == cap) {
            char *grown = realloc(buf, cap *= 2);
            if (grown == NULL) {
                free(buf);
                return NULL;
            }
            buf = grown;
        }
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
        if (r < 0) {
            free(buf);
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

int harness_http(int port, const char *method, const char *path, const char *body, size_t body_len,
                 char **resp)
{
    *resp = NULL;
    int fd = connect_local(port);
    if (fd < 0)
        return -1;
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     method, path, body_len);
    size_t len = 0;
    char *all = NULL;
    /* a server may answer (413) and stop reading before the body is sent:
     * read its answer even if sending failed */
    if (send_all(fd, head, (size_t)n) == 0) {
        if (body != NULL && body_len > 0 && send_all(fd, body, body_len) != 0)
            shutdown(fd, SHUT_WR);
        all = read_all(fd, &len);
    }
    close(fd);
    int status = -1;
    char *sep = all != NULL ? strstr(all, "\r\n\r\n") : NULL;
    if (sep == NULL || sscanf(all, "HTTP/1.1 %d", &status) != 1) {
        free(all);
        return -1;
    }
    *resp = strdup(sep + 4);
    free(all);
    return status;
}

json_t *harness_get_json(int port, const char *path)
{
    char *body;
    int status = harness_http(port, "GET", path, NULL, 0, &body);
    json_t *v = status == 200 ? json_loads(body, 0, NULL) : NULL;
    free(body);
    return v;
}

int harness_report(int master_port, int group, int port)
{
    char body[512];
    int n = snprintf(body, sizeof(body),
                     "{\"GroupId\":%d,\"Ip\":\"127.0.0.1\",\"Port\":%d,\"ReadOnly\":false,"
                     "\"TotalFreeSpace\":1073741824,\"MaxFreeSpace\":536870912,\"TotalChunks\":2,"
                     "\"DataDir\":\"/tmp/cs-%d\",\"Version\":\"speedy 0.1\"}",
                     group, port, port);
    char *resp;
    int status =
        harness_http(master_port, "POST", "/v1/chunkserver/reportinfo", body, (size_t)n, &resp);
    free(resp);
    return status;
}

json_t *harness_route_entry(int master_port, int port)
{
    json_t *route = harness_get_json(master_port, "/v1/chunkmaster/route");
    const char *group;
    json_t *servers, *found = NULL;
    json_object_foreach(route, group, servers)
    {
        size_t i;
        json_t *e;
        json_array_foreach(servers, i, e)
        {
            if (json_integer_value(json_object_get(e, "Port")) == port &&
                strcmp(json_string_value(json_object_get(e, "Ip")), "127.0.0.1") == 0)
                found = json_incref(e);
        }
    }
    json_decref(route);
    return found;
}

long harness_wait_state(int master_port, int port, const char *state, int writable, long timeout_ms)
{
    long start = harness_now_ms();
    do {
        json_t *e = harness_route_entry(master_port, port);
        int ok =
            e != NULL && strcmp(json_string_value(json_object_get(e, "State")), state) == 0 &&
            (writable < 0 || json_is_true(json_object_get(e, "GroupWritable")) == (writable != 0));
        json_decref(e);
        if (ok)
            return harness_now_ms() - start;
        sleep_ms(50);
    } while (harness_now_ms() - start < timeout_ms);
    return -1;
}
