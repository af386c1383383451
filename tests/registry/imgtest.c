/* imgtest.c - the imageserver integration tests' harness (see imgtest.h). */
#include "tests/registry/imgtest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define UP_TIMEOUT_MS   120000 /* scripts/cluster up */
#define DOWN_TIMEOUT_MS 60000
#define START_WAIT_MS   30000 /* an imageserver answering /v2/ */
#define RECV_TIMEOUT_S  20

/* ---- processes -------------------------------------------------------- */

/* now_ms: monotonic milliseconds. */
static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* sleep_ms: a short pause while polling. */
static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* env: a required environment variable, or NULL with a message. */
static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        fprintf(stderr, "imgtest: %s is not set\n", name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* port_free: whether 127.0.0.1:port can be bound right now. */
static int port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* free_ports: the first of n consecutive ports free a moment ago. */
static int free_ports(int n)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        int base = 10000 + (int)(random() % 22000); /* below the ephemeral range (32768-) */
        int ok = 1;
        for (int i = 0; i < n && ok; i++)
            ok = port_free(base + i);
        if (ok)
            return base;
    }
    return -1;
}

/* wait_exit: waits for pid up to timeout_ms; its status, or -1 (still running). */
static int wait_exit(pid_t pid, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0 || now_ms() >= deadline)
            return -1;
        sleep_ms(20);
    }
}

/* spawn: fork + exec argv with stdout/stderr appended to log; the child
 * dies with the test when die_with_parent. */
static pid_t spawn(const char *log, char *const *argv, int die_with_parent)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    if (die_with_parent)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    int null = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    if (null >= 0)
        dup2(null, 0);
    execv(argv[0], argv);
    _exit(127);
}

int imgtest_free_port(void)
{
    return free_ports(1);
}

int imgtest_run(const struct imgtest_cluster *c, const char *log, char *const *argv, int timeout_ms)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", c->dir, log);
    pid_t pid = spawn(path, argv, 1);
    if (pid < 0)
        return -1;
    int st = wait_exit(pid, timeout_ms);
    if (st < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return st;
}

int imgtest_stop(pid_t pid, int timeout_ms)
{
    if (pid <= 0)
        return -1;
    kill(pid, SIGTERM);
    int st = wait_exit(pid, timeout_ms);
    if (st < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return st;
}

void imgtest_dump_log(const struct imgtest_cluster *c, const char *name)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "echo '--- %s' >&2; tail -n 30 '%s/%s' >&2", name, c->dir, name);
    if (system(cmd) != 0)
        fprintf(stderr, "imgtest: cannot show %s\n", name);
}

/* start_watchdog: a shell whose stdin is a pipe only we hold the write end
 * of: when the test ends (closing it, or dying), "read" returns and the
 * shell stops the cluster and removes the dir. */
static int start_watchdog(struct imgtest_cluster *c, const char *src)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    char script[2048];
    const char *keep = getenv("IMGTEST_KEEP"); /* set: keep the dir and its logs */
    snprintf(script, sizeof(script),
             "read _; '%s/scripts/cluster' down --dir='%s' >/dev/null 2>&1; %s '%s'", src, c->dir,
             keep != NULL && keep[0] != '\0' ? "echo kept" : "rm -rf", c->dir);
    c->watchdog = fork();
    if (c->watchdog == 0) {
        dup2(p[0], 0);
        setsid(); /* not killed with the test's process group */
        execl("/bin/sh", "sh", "-c", script, (char *)NULL);
        _exit(127);
    }
    close(p[0]);
    c->watchdog_pipe = p[1];
    return c->watchdog > 0 ? 0 : -1;
}

/* cluster_up: runs scripts/cluster up with the cluster's settings (it
 * starts what is not running and waits until every part is healthy). */
static int cluster_up(const struct imgtest_cluster *c)
{
    const char *src = env("SPY_SOURCE_DIR"), *build = env("SPY_BUILD_DIR");
    if (src == NULL || build == NULL)
        return -1;
    char a[8][160];
    snprintf(a[0], sizeof(a[0]), "%s/scripts/cluster", src);
    snprintf(a[1], sizeof(a[1]), "--dir=%s", c->dir);
    snprintf(a[2], sizeof(a[2]), "--build=%s", build);
    snprintf(a[3], sizeof(a[3]), "--db_port=%d", c->db_port);
    snprintf(a[4], sizeof(a[4]), "--master_port=%d", c->master_port);
    snprintf(a[5], sizeof(a[5]), "--first_chunkserver_port=%d", c->first_cs_port);
    snprintf(a[6], sizeof(a[6]), "--registry_port=%d", c->registry_port);
    snprintf(a[7], sizeof(a[7]), "--chunk_size=16M");
    char *argv[] = {a[0], "up", a[1], a[2], a[3], a[4], a[5], a[6], a[7], NULL};
    if (imgtest_run(c, "cluster-up.log", argv, UP_TIMEOUT_MS) != 0) {
        fprintf(stderr, "imgtest: scripts/cluster up failed\n");
        imgtest_dump_log(c, "cluster-up.log");
        imgtest_dump_log(c, "registry/registry.log");
        return -1;
    }
    return 0;
}

int imgtest_cluster_up(struct imgtest_cluster *c)
{
    const char *src = env("SPY_SOURCE_DIR");
    if (src == NULL)
        return -1;
    srandom((unsigned)(getpid() ^ now_ms()));
    snprintf(c->dir, sizeof(c->dir), "/tmp/spy-imgtest.XXXXXX");
    if (mkdtemp(c->dir) == NULL || start_watchdog(c, src) != 0)
        return -1;
    c->first_cs_port = free_ports(7); /* 4 spy_servers, MariaDB, master, registry */
    if (c->first_cs_port < 0)
        return -1;
    c->db_port = c->first_cs_port + 4;
    c->master_port = c->first_cs_port + 5;
    c->registry_port = c->first_cs_port + 6;
    return cluster_up(c);
}

int imgtest_cluster_restart(const struct imgtest_cluster *c)
{
    return cluster_up(c);
}

/* alive: whether pid exists and is not a zombie (the spy_servers are not
 * our children: whoever adopted them reaps them, maybe late). */
static int alive(int pid)
{
    char path[64], stat[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *paren = strrchr(stat, ')');
    return paren != NULL && paren[1] == ' ' && paren[2] != 'Z';
}

int imgtest_kill_chunkservers(const struct imgtest_cluster *c)
{
    for (int i = 0; i < 4; i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/cs-%d/spy_server.pid", c->dir, c->first_cs_port + i);
        FILE *f = fopen(path, "r");
        int pid = 0;
        if (f == NULL || fscanf(f, "%d", &pid) != 1 || pid <= 0) {
            if (f != NULL)
                fclose(f);
            return -1;
        }
        fclose(f);
        kill(pid, SIGKILL);
        for (int64_t deadline = now_ms() + 5000; alive(pid) && now_ms() < deadline;)
            sleep_ms(20);
    }
    return 0;
}

void imgtest_cluster_down(struct imgtest_cluster *c)
{
    if (c->watchdog <= 0)
        return;
    close(c->watchdog_pipe);
    if (wait_exit(c->watchdog, DOWN_TIMEOUT_MS) < 0)
        fprintf(stderr, "imgtest: cluster clean-up still running in %s\n", c->dir);
    c->watchdog = 0;
}

/* answers_200: whether GET /v2/ on port answers 200. */
static int answers_200(int port)
{
    struct imgtest_resp r;
    if (imgtest_http(port, "GET", "/v2/", NULL, NULL, 0, &r) != 0)
        return 0;
    int ok = r.status == 200;
    imgtest_resp_free(&r);
    return ok;
}

pid_t imgtest_imageserver_start(const struct imgtest_cluster *c, const char *name,
                                const char *const *extra, size_t nextra, int *port)
{
    const char *build = env("SPY_BUILD_DIR");
    int p = free_ports(1);
    if (build == NULL || p < 0 || nextra > 16)
        return -1;
    char a[8][160], log[256];
    snprintf(a[0], sizeof(a[0]), "%s/registry/imageserver", build);
    snprintf(a[1], sizeof(a[1]), "-h=127.0.0.1");
    snprintf(a[2], sizeof(a[2]), "-p=%d", p);
    snprintf(a[3], sizeof(a[3]), "-mh=127.0.0.1");
    snprintf(a[4], sizeof(a[4]), "-mp=%d", c->master_port);
    snprintf(a[5], sizeof(a[5]), "-dh=127.0.0.1");
    snprintf(a[6], sizeof(a[6]), "-dp=%d", c->db_port);
    snprintf(a[7], sizeof(a[7]), "-n=2");
    char *argv[8 + 16 + 1];
    for (int i = 0; i < 8; i++)
        argv[i] = a[i];
    for (size_t i = 0; i < nextra; i++)
        argv[8 + i] = (char *)extra[i];
    argv[8 + nextra] = NULL;
    snprintf(log, sizeof(log), "%s/%s.log", c->dir, name);
    pid_t pid = spawn(log, argv, 1);
    for (int64_t deadline = now_ms() + START_WAIT_MS; pid > 0 && now_ms() < deadline;
         sleep_ms(50)) {
        if (answers_200(p)) {
            *port = p;
            return pid;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid)
            break;
    }
    fprintf(stderr, "imgtest: imageserver %s did not start\n", name);
    snprintf(log, sizeof(log), "%s.log", name);
    imgtest_dump_log(c, log);
    imgtest_stop(pid, 1000);
    return -1;
}

/* ---- HTTP client ------------------------------------------------------ */

/* A response being read: bytes received and how far they are parsed. */
struct rbuf {
    char *data;
    size_t len, cap, pos;
    int eof;
};

int imgtest_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {RECV_TIMEOUT_S, 0};
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

/* send_all: writes every byte or fails. */
static int send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* fill: reads more bytes into b; 0, or -1 on an error or at EOF. */
static int fill(int fd, struct rbuf *b)
{
    if (b->eof)
        return -1;
    if (b->cap - b->len < 65536) {
        size_t cap = b->cap * 2 + 65536;
        char *p = realloc(b->data, cap + 1);
        if (p == NULL)
            return -1;
        b->data = p;
        b->cap = cap;
    }
    ssize_t n;
    do
        n = recv(fd, b->data + b->len, b->cap - b->len, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        b->eof = 1;
        return -1;
    }
    b->len += (size_t)n;
    return 0;
}

/* need: makes sure n unparsed bytes are buffered. */
static int need(int fd, struct rbuf *b, size_t n)
{
    while (b->len - b->pos < n)
        if (fill(fd, b) != 0)
            return -1;
    return 0;
}

/* line: the next CRLF-terminated line (NUL-terminated in place), or NULL. */
static char *line(int fd, struct rbuf *b)
{
    for (;;) {
        char *start = b->data + b->pos;
        char *crlf = b->len > b->pos ? memmem(start, b->len - b->pos, "\r\n", 2) : NULL;
        if (crlf != NULL) {
            *crlf = '\0';
            b->pos = (size_t)(crlf + 2 - b->data);
            return start;
        }
        if (fill(fd, b) != 0)
            return NULL;
    }
}

/* read_head: status line and headers (1xx responses skipped). */
static int read_head(int fd, struct rbuf *b, struct imgtest_resp *r)
{
    for (;;) {
        char *status = line(fd, b);
        if (status == NULL || sscanf(status, "HTTP/1.%*d %d", &r->status) != 1)
            return -1;
        char *l;
        while ((l = line(fd, b)) != NULL && l[0] != '\0') {
            char *colon = strchr(l, ':');
            if (colon == NULL || r->nheaders == IMGTEST_MAX_HEADERS)
                return -1;
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            if (r->status >= 200) {
                r->names[r->nheaders] = strdup(l);
                r->values[r->nheaders++] = strdup(v);
            }
        }
        if (l == NULL)
            return -1;
        if (r->status >= 200)
            return 0;
    }
}

/* append_body: copies n bytes at the parse position into the body. */
static int append_body(struct rbuf *b, struct imgtest_resp *r, size_t n)
{
    char *p = realloc(r->body, r->len + n + 1);
    if (p == NULL)
        return -1;
    memcpy(p + r->len, b->data + b->pos, n);
    r->body = p;
    r->len += n;
    r->body[r->len] = '\0';
    b->pos += n;
    return 0;
}

/* read_chunked: a chunked body. */
static int read_chunked(int fd, struct rbuf *b, struct imgtest_resp *r)
{
    for (;;) {
        char *l = line(fd, b);
        if (l == NULL)
            return -1;
        size_t n = strtoul(l, NULL, 16);
        if (n == 0)
            break;
        if (need(fd, b, n + 2) != 0 || append_body(b, r, n) != 0)
            return -1;
        b->pos += 2;
    }
    char *l;
    while ((l = line(fd, b)) != NULL && l[0] != '\0')
        ;
    return l == NULL ? -1 : 0;
}

/* read_body: by Content-Length, chunked, or until the connection closes. */
static int read_body(int fd, struct rbuf *b, struct imgtest_resp *r, int head)
{
    r->body = calloc(1, 1);
    if (r->body == NULL)
        return -1;
    const char *conn = imgtest_header(r, "Connection");
    r->closed = conn != NULL && strcasecmp(conn, "close") == 0;
    if (head || r->status == 204 || r->status == 304)
        return 0;
    const char *te = imgtest_header(r, "Transfer-Encoding");
    if (te != NULL && strcasecmp(te, "chunked") == 0)
        return read_chunked(fd, b, r);
    const char *cl = imgtest_header(r, "Content-Length");
    if (cl != NULL) {
        size_t n = strtoull(cl, NULL, 10);
        return need(fd, b, n) == 0 ? append_body(b, r, n) : -1;
    }
    while (fill(fd, b) == 0)
        ;
    r->closed = 1;
    return append_body(b, r, b->len - b->pos);
}

/* format_request: the request head. */
static char *format_request(const char *method, const char *target, const char *const *headers,
                            const void *body, size_t len, size_t *out_len)
{
    size_t cap = strlen(method) + strlen(target) + 128;
    int chunked = 0;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        cap += strlen(headers[i]) + 2;
        chunked |= strncasecmp(headers[i], "Transfer-Encoding:", 18) == 0;
    }
    char *head = malloc(cap);
    if (head == NULL)
        return NULL;
    size_t n = (size_t)snprintf(head, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n", method, target);
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        n += (size_t)snprintf(head + n, cap - n, "%s\r\n", headers[i]);
    if (body != NULL && !chunked)
        n += (size_t)snprintf(head + n, cap - n, "Content-Length: %zu\r\n", len);
    n += (size_t)snprintf(head + n, cap - n, "\r\n");
    *out_len = n;
    return head;
}

int imgtest_request(int fd, const char *method, const char *target, const char *const *headers,
                    const void *body, size_t len, struct imgtest_resp *out)
{
    memset(out, 0, sizeof(*out));
    size_t hlen;
    char *head = format_request(method, target, headers, body, len, &hlen);
    if (head == NULL)
        return -1;
    int rc = send_all(fd, head, hlen);
    free(head);
    if (rc == 0 && body != NULL && len > 0)
        rc = send_all(fd, body, len);
    struct rbuf b = {0};
    if (rc == 0)
        rc = read_head(fd, &b, out);
    if (rc == 0)
        rc = read_body(fd, &b, out, strcmp(method, "HEAD") == 0);
    free(b.data);
    if (rc != 0)
        imgtest_resp_free(out);
    return rc;
}

int imgtest_http(int port, const char *method, const char *target, const char *const *headers,
                 const void *body, size_t len, struct imgtest_resp *out)
{
    memset(out, 0, sizeof(*out));
    int fd = imgtest_connect(port);
    if (fd < 0)
        return -1;
    int rc = imgtest_request(fd, method, target, headers, body, len, out);
    close(fd);
    return rc;
}

const char *imgtest_header(const struct imgtest_resp *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->names[i], name) == 0)
            return r->values[i];
    return NULL;
}

size_t imgtest_header_count(const struct imgtest_resp *r, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nheaders; i++)
        n += strcasecmp(r->names[i], name) == 0;
    return n;
}

void imgtest_resp_free(struct imgtest_resp *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->names[i]);
        free(r->values[i]);
    }
    free(r->body);
    memset(r, 0, sizeof(*r));
}

const char *imgtest_error_code(const struct imgtest_resp *r)
{
    static char code[64];
    code[0] = '\0';
    json_t *root = json_loadb(r->body, r->len, 0, NULL);
    json_t *first = json_array_get(json_object_get(root, "errors"), 0);
    const char *s = json_string_value(json_object_get(first, "code"));
    if (s != NULL)
        snprintf(code, sizeof(code), "%s", s);
    json_decref(root);
    return code;
}

void imgtest_sha256(const void *data, size_t len, char out[72])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(data, len, md);
    int n = snprintf(out, 72, "sha256:");
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        n += snprintf(out + n, (size_t)(72 - n), "%02x", md[i]);
}

int64_t imgtest_metric(int port, const char *name)
{
    struct imgtest_resp r;
    if (imgtest_http(port, "GET", "/metrics", NULL, NULL, 0, &r) != 0)
        return -1;
    char key[128];
    int n = snprintf(key, sizeof(key), "\nspeedy_registry_%s ", name);
    const char *at = strstr(r.body, key);
    int64_t v = at != NULL ? strtoll(at + n, NULL, 10) : -1;
    imgtest_resp_free(&r);
    return v;
}

int imgtest_put_blob(int port, const char *repo, const void *data, size_t len, char digest[72])
{
    imgtest_sha256(data, len, digest);
    char target[512];
    snprintf(target, sizeof(target), "/v2/%s/blobs/uploads/?digest=%s", repo, digest);
    const char *h[] = {"Content-Type: application/octet-stream", NULL};
    struct imgtest_resp r;
    if (imgtest_http(port, "POST", target, h, data != NULL ? data : "", len, &r) != 0)
        return -1;
    int status = r.status;
    imgtest_resp_free(&r);
    return status;
}
