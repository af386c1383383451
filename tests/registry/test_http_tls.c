/* test_http_tls: the HTTP layer over TLS (cfg.tls), in process, with the test
 * routes of test_http_handlers.h, against curl --cacert and raw sockets.
 *
 * A self-signed certificate for 127.0.0.1 is made with openssl(1) in a
 * mkdtemp directory. Checked: spy_http_tls_create's errors (missing file,
 * key not matching); GET with ALPN http/1.1 even when curl asks for h2;
 * keep-alive over several URLs on one connection (counted by the server);
 * a 100 MiB upload with Content-Length and a 16 MiB chunked one, digests
 * compared with sha256sum's; downloads with 1 MiB slices (batches over
 * SPY_HTTP_TLS_WRITE_MAX, written in parts), checked byte by byte; a
 * "Connection: close" response ends with close_notify (curl sees a clean
 * end); a plain-HTTP client on the TLS port is closed, and the server goes on
 * serving; no broken layer promises at stop.
 *
 * TEST_HTTP_TLS_MIB=<n> sets the big upload's size (default 100) and the test
 * then prints MB/s over TLS and over plain HTTP (another server, same
 * settings) and this process's peak RSS. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/status.h"
#include "tests/registry/test_http_handlers.h"

extern char **environ;

struct env {
    char dir[64];
    char cert[96], key[96];
    struct test_http_ctx ctx;
    struct spy_http_server *srv;
    unsigned port;
    /* the same with a 300 ms head timeout */
    struct test_http_ctx short_ctx;
    struct spy_http_server *short_srv;
};

/* ---- processes --------------------------------------------------------- */

/* drain_fd: one read from fd into buf (truncating at cap, NUL-terminated).
 * Returns what read(2) returned. */
static ssize_t drain_fd(int fd, char *buf, size_t cap, size_t *len)
{
    char tmp[4096];
    ssize_t n = read(fd, tmp, sizeof(tmp));
    if (n > 0) {
        size_t room = cap - 1 - *len;
        size_t k = (size_t)n < room ? (size_t)n : room;
        memcpy(buf + *len, tmp, k);
        *len += k;
        buf[*len] = '\0';
    }
    return n;
}

/* run: runs argv with stdin from in_path (NULL: /dev/null), capturing stdout
 * and stderr. Returns the exit status. */
static int run(char *const argv[], const char *in_path, char *out, size_t outcap, char *err,
               size_t errcap)
{
    int po[2], pe[2];
    assert_int_equal(pipe2(po, O_CLOEXEC), 0);
    assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    posix_spawn_file_actions_addopen(&fa, 0, in_path != NULL ? in_path : "/dev/null", O_RDONLY, 0);
    pid_t pid;
    assert_int_equal(posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(po[1]);
    close(pe[1]);
    char *bufs[2] = {out, err};
    size_t caps[2] = {outcap, errcap}, lens[2] = {0, 0};
    out[0] = err[0] = '\0';
    struct pollfd p[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    while (p[0].fd >= 0 || p[1].fd >= 0) {
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (p[i].fd >= 0 && p[i].revents != 0 &&
                drain_fd(p[i].fd, bufs[i], caps[i], &lens[i]) <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
            }
        }
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* curl_in: curl -s -S --cacert <cert> with the arguments (NULL-terminated)
 * and stdin from in_path (or /dev/null). */
static int curl_in(const struct env *e, const char *in_path, char *out, size_t cap, char *err,
                   size_t errcap, ...)
{
    char *argv[40] = {"curl", "-s", "-S", "--cacert", (char *)e->cert};
    int n = 5;
    va_list ap;
    va_start(ap, errcap);
    for (char *a; (a = va_arg(ap, char *)) != NULL && n < 39;)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return run(argv, in_path, out, cap, err, errcap);
}

#define curl(e, ...) curl_in(e, NULL, __VA_ARGS__)

/* sh: runs a shell command line; its exit status. */
static int sh(const char *cmd)
{
    char out[4096], err[4096];
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    int rc = run(argv, NULL, out, sizeof(out), err, sizeof(err));
    if (rc != 0)
        print_message("'%s' exited %d: %s%s\n", cmd, rc, out, err);
    return rc;
}

/* ---- files ------------------------------------------------------------- */

/* make_file: n pseudo-random bytes in dir/name. */
static void make_file(const struct env *e, const char *name, size_t n, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", e->dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    static uint64_t buf[8192];
    uint64_t x = 0x243f6a8885a308d3u ^ n;
    for (size_t done = 0; done < n;) {
        for (size_t i = 0; i < 8192; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = x;
        }
        size_t k = n - done < sizeof(buf) ? n - done : sizeof(buf);
        assert_int_equal(fwrite(buf, 1, k, f), k);
        done += k;
    }
    assert_int_equal(fclose(f), 0);
}

/* sha256sum_of: the coreutils digest of a file. */
static void sha256sum_of(const char *path, char hex[65])
{
    char out[512], err[512];
    char *argv[] = {"sha256sum", (char *)path, NULL};
    assert_int_equal(run(argv, NULL, out, sizeof(out), err, sizeof(err)), 0);
    memcpy(hex, out, 64);
    hex[64] = '\0';
}

/* check_download_file: n pattern bytes in path. */
static void check_download_file(const char *path, size_t n)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    unsigned char buf[65536];
    size_t off = 0, k;
    while ((k = fread(buf, 1, sizeof(buf), f)) > 0) {
        for (size_t i = 0; i < k; i++)
            if (buf[i] != TEST_HTTP_PATTERN(off + i))
                fail_msg("byte %zu differs", off + i);
        off += k;
    }
    fclose(f);
    assert_int_equal(off, n);
}

/* ---- servers ----------------------------------------------------------- */

/* server_start: the test routes on 127.0.0.1, TLS with 'tls' unless NULL,
 * with head_timeout_ms (0: the default). */
static int server_start(struct test_http_ctx *ctx, SSL_CTX *tls, uint32_t head_timeout_ms,
                        struct spy_http_server **srv)
{
    struct spy_http_config cfg;
    spy_http_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.threads = 2;
    cfg.tls = tls;
    if (head_timeout_ms != 0)
        cfg.head_timeout_ms = head_timeout_ms;
    struct spy_http_handler h;
    test_http_ctx_init(ctx, &h, 2);
    int st = spy_http_server_start(&cfg, &h, srv);
    if (st != SPY_OK) {
        test_http_ctx_fini(ctx);
        return st;
    }
    ctx->srv = *srv;
    return SPY_OK;
}

/* server_stop: stops it; the number of broken layer promises seen. */
static uint64_t server_stop(struct test_http_ctx *ctx, struct spy_http_server *srv)
{
    test_http_ctx_fini(ctx);
    spy_http_server_stop(srv);
    return atomic_load(&ctx->violations);
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return -1;
    strcpy(e->dir, "/tmp/spy_http_tls.XXXXXX");
    if (mkdtemp(e->dir) == NULL)
        return -1;
    snprintf(e->cert, sizeof(e->cert), "%s/cert.pem", e->dir);
    snprintf(e->key, sizeof(e->key), "%s/key.pem", e->dir);
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -addext "
             "subjectAltName=IP:127.0.0.1 -days 2 -keyout %s -out %s",
             e->key, e->cert);
    SSL_CTX *tls = NULL;
    char err[512];
    if (sh(cmd) != 0 || spy_http_tls_create(e->cert, e->key, &tls, err, sizeof(err)) != SPY_OK)
        return -1;
    int st = server_start(&e->ctx, tls, 0, &e->srv);
    if (st == SPY_OK)
        st = server_start(&e->short_ctx, tls, 300, &e->short_srv);
    SSL_CTX_free(tls); /* the servers hold their own references */
    if (st != SPY_OK)
        return -1;
    e->port = spy_http_server_port(e->srv);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    uint64_t violations = server_stop(&e->ctx, e->srv) + server_stop(&e->short_ctx, e->short_srv);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
    sh(cmd);
    free(e);
    return violations == 0 ? 0 : -1;
}

/* url: the server's https URL for a path. */
static char *url(const struct env *e, const char *path, char *buf, size_t cap)
{
    snprintf(buf, cap, "https://127.0.0.1:%u%s", e->port, path);
    return buf;
}

/* connections: accepted so far. */
static uint64_t connections(const struct env *e)
{
    struct spy_http_stats s;
    spy_http_server_stats(e->srv, &s);
    return s.connections;
}

/* check_upload: an upload of path to /echo reports sha256sum's digest. */
static void check_upload(const struct env *e, const char *path, size_t size, int chunked)
{
    char out[512], err[4096], u[128], hex[65], want[160];
    sha256sum_of(path, hex);
    snprintf(want, sizeof(want), "{\"length\":%zu,\"sha256\":\"%s\"}", size, hex);
    url(e, "/echo", u, sizeof(u));
    int rc = chunked ? curl_in(e, path, out, sizeof(out), err, sizeof(err), "-T", "-", "-H",
                               "Transfer-Encoding: chunked", u, NULL)
                     : curl(e, out, sizeof(out), err, sizeof(err), "-T", path, u, NULL);
    if (rc != 0)
        fail_msg("curl exited %d: %s", rc, err);
    assert_string_equal(out, want);
}

/* ---- tests ------------------------------------------------------------- */

static void test_tls_create_errors(void **state)
{
    struct env *e = *state;
    SSL_CTX *tls = NULL;
    char err[512], missing[128], other_key[128], cmd[256];
    snprintf(missing, sizeof(missing), "%s/missing.pem", e->dir);
    assert_int_equal(spy_http_tls_create(missing, e->key, &tls, err, sizeof(err)), SPY_EINVAL);
    assert_non_null(strstr(err, "missing.pem: No such file"));
    assert_int_equal(spy_http_tls_create(e->cert, missing, &tls, err, sizeof(err)), SPY_EINVAL);
    assert_non_null(strstr(err, "missing.pem: No such file"));
    /* readable but not PEM */
    char junk[128];
    snprintf(junk, sizeof(junk), "%s/junk.pem", e->dir);
    FILE *f = fopen(junk, "w");
    assert_non_null(f);
    fputs("not a key\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(spy_http_tls_create(e->cert, junk, &tls, err, sizeof(err)), SPY_EINVAL);
    assert_non_null(strstr(err, "cannot load the TLS private key"));
    snprintf(other_key, sizeof(other_key), "%s/other.pem", e->dir);
    snprintf(cmd, sizeof(cmd), "openssl genrsa -out %s 2048", other_key);
    assert_int_equal(sh(cmd), 0);
    assert_int_equal(spy_http_tls_create(e->cert, other_key, &tls, err, sizeof(err)), SPY_EINVAL);
    if (strstr(err, "does not match") == NULL)
        fail_msg("unexpected message: %s", err);
    assert_null(tls);
}

static void test_get_alpn_http11(void **state)
{
    struct env *e = *state;
    char out[512], err[8192], u[128];
    assert_int_equal(curl(e, out, sizeof(out), err, sizeof(err), "--http2", "-w",
                          " %{http_version}", url(e, "/json", u, sizeof(u)), NULL),
                     0);
    assert_string_equal(out, "{\"ok\":true} 1.1");
    /* TLS 1.1 is refused */
    assert_int_not_equal(curl(e, out, sizeof(out), err, sizeof(err), "--tlsv1.1", "--tls-max",
                              "1.1", url(e, "/json", u, sizeof(u)), NULL),
                         0);
}

static void test_keepalive_urls(void **state)
{
    struct env *e = *state;
    uint64_t before = connections(e);
    char out[512], err[8192], u1[128], u2[128], u3[128];
    assert_int_equal(curl(e, out, sizeof(out), err, sizeof(err), url(e, "/json", u1, sizeof(u1)),
                          url(e, "/json", u2, sizeof(u2)), url(e, "/json", u3, sizeof(u3)), NULL),
                     0);
    assert_string_equal(out, "{\"ok\":true}{\"ok\":true}{\"ok\":true}");
    assert_int_equal(connections(e) - before, 1);
}

static void test_upload_100mib(void **state)
{
    struct env *e = *state;
    char path[128];
    const char *mib_env = getenv("TEST_HTTP_TLS_MIB");
    size_t size = (mib_env != NULL ? strtoull(mib_env, NULL, 10) : 100) << 20;
    make_file(e, "big", size, path, sizeof(path));
    check_upload(e, path, size, 0);
    if (mib_env == NULL) {
        unlink(path);
        return;
    }
    /* the benchmark: the same upload timed over TLS and over plain HTTP */
    struct test_http_ctx pctx;
    struct spy_http_server *plain;
    assert_int_equal(server_start(&pctx, NULL, 0, &plain), SPY_OK);
    char u[128], out[512], err[1024];
    double secs[2];
    for (int tls = 1; tls >= 0; tls--) {
        snprintf(u, sizeof(u), "%s://127.0.0.1:%u/echo", tls ? "https" : "http",
                 spy_http_server_port(tls ? e->srv : plain));
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        assert_int_equal(curl(e, out, sizeof(out), err, sizeof(err), "-T", path, u, NULL), 0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        secs[tls] = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        assert_non_null(strstr(out, "\"sha256\""));
    }
    assert_int_equal(server_stop(&pctx, plain), 0);
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmHWM:", 6) == 0)
            break;
    fclose(f);
    print_message("upload %zu MiB: TLS %.0f MB/s, plain %.0f MB/s; test process %s", size >> 20,
                  (double)size / 1e6 / secs[1], (double)size / 1e6 / secs[0], line);
    unlink(path);
}

static void test_upload_chunked(void **state)
{
    struct env *e = *state;
    char path[128];
    make_file(e, "chunked", (16u << 20) + 7, path, sizeof(path));
    check_upload(e, path, (16u << 20) + 7, 1);
    unlink(path);
}

static void test_downloads(void **state)
{
    struct env *e = *state;
    char path[128], out[512], err[4096], u[128];
    snprintf(path, sizeof(path), "%s/download", e->dir);
    /* 1 MiB slices: head + slice, and chunk line + slice + CRLF, exceed
     * SPY_HTTP_TLS_WRITE_MAX and are written in parts */
    assert_int_equal(curl(e, out, sizeof(out), err, sizeof(err), "-o", path,
                          url(e, "/download?n=20971523&slice=1048576", u, sizeof(u)), NULL),
                     0);
    check_download_file(path, 20971523);
    assert_int_equal(curl(e, out, sizeof(out), err, sizeof(err), "-o", path,
                          url(e, "/download?n=5000001&chunked=1&slice=1048576", u, sizeof(u)),
                          NULL),
                     0);
    check_download_file(path, 5000001);
    /* "Connection: close": the server closes with close_notify, which curl
     * accepts as a clean end (exit 0, no "unexpected eof" error) */
    assert_int_equal(curl(e, out, sizeof(out), err, sizeof(err), "-H", "Connection: close", "-o",
                          path, url(e, "/download?n=3000000", u, sizeof(u)), NULL),
                     0);
    check_download_file(path, 3000000);
    unlink(path);
}

/* raw_exchange: sends req on a new TCP connection to the port and reads until
 * the server closes; returns the bytes read, or -1 on a reset. */
static ssize_t raw_exchange(unsigned port, const char *req, char *buf, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    size_t len = 0;
    ssize_t n;
    while ((n = read(fd, buf + len, cap - len)) > 0)
        len += (size_t)n;
    int reset = n < 0 && errno == ECONNRESET;
    assert_true(n == 0 || reset); /* closed by the server, not our timeout */
    close(fd);
    return reset ? -1 : (ssize_t)len;
}

static void test_plain_client_on_tls_port(void **state)
{
    struct env *e = *state;
    char buf[4096], out[512], err[4096], u[128];
    /* the server answers no plain HTTP (at most a TLS alert) and closes */
    ssize_t n = raw_exchange(e->port, "GET /json HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf));
    assert_true(n < 0 || memmem(buf, (size_t)n, "HTTP/1.1", 8) == NULL);
    snprintf(u, sizeof(u), "http://127.0.0.1:%u/json", e->port);
    char *argv[] = {"curl", "-s", "-S", u, NULL};
    assert_int_not_equal(run(argv, NULL, out, sizeof(out), err, sizeof(err)), 0);
    /* and goes on serving TLS */
    assert_int_equal(
        curl(e, out, sizeof(out), err, sizeof(err), url(e, "/json", u, sizeof(u)), NULL), 0);
    assert_string_equal(out, "{\"ok\":true}");
}

static void test_head_timeout_covers_handshake(void **state)
{
    struct env *e = *state;
    unsigned port = spy_http_server_port(e->short_srv);
    char buf[4096];
    /* silent after connecting, and stuck inside a ClientHello: both closed
     * by the head timeout (raw_exchange fails if its own 20 s pass first) */
    assert_true(raw_exchange(port, "", buf, sizeof(buf)) <= 0);
    assert_true(raw_exchange(port, "\x16\x03\x01\x02\x00\x01", buf, sizeof(buf)) <= 0);
    struct spy_http_stats s;
    spy_http_server_stats(e->short_srv, &s);
    assert_int_equal(s.connections, 2);
    assert_int_equal(s.requests, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_create_errors),
        cmocka_unit_test(test_get_alpn_http11),
        cmocka_unit_test(test_keepalive_urls),
        cmocka_unit_test(test_upload_100mib),
        cmocka_unit_test(test_upload_chunked),
        cmocka_unit_test(test_downloads),
        cmocka_unit_test(test_plain_client_on_tls_port),
        cmocka_unit_test(test_head_timeout_covers_handshake),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
