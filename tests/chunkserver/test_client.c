/* test_client.c - spy_client against a real spy_server (label "integration").
 *
 * usage: test_client <path to spy_server>
 *
 * The group setup starts spy_server on a free 127.0.0.1 port with a temp data
 * dir (4 chunks of 8 MiB, the master on a closed port so reporting fails
 * harmlessly). The tests run in order and share that server: round trips at
 * the sizes around the 64 KiB read block and the 1 MiB DATA frame, ranges,
 * stat, delete, duplicate puts (the early-error path), aborts, then a SIGTERM
 * restart and a SIGKILL restart after which every acknowledged object must
 * read back byte-exact. Object bytes derive from the fid, so they are
 * regenerated for checking instead of kept. Waiting for the server to come
 * up polls PING with a generous bound; no result depends on timing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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

#include "common/log.h"
#include "common/proto.h"
#include "common/spy_client.h"
#include "common/status.h"

#define IO_TIMEOUT_MS   10000
#define READY_TIMEOUT_S 30.0
#define MAX_OBJECTS     64
#define BIG             (3u * 1024 * 1024 + 7)

/* Set once in main from argv: the binary under test. */
static const char *server_bin;

/* One spy_server child process and its files. */
struct server {
    char dir[64];   /* mkdtemp root: data/ and server.log inside */
    const char *ip; /* listen address */
    int port, master_port;
    pid_t pid;
};

/* The group state: the main server and every object acknowledged so far. */
struct ctx {
    struct server srv;
    struct spy_client *c;
    uint64_t fids[MAX_OBJECTS], lens[MAX_OBJECTS];
    int nobjects;
    uint64_t deleted_fid;
    time_t started;
};

/* ---- helpers ------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* object_bytes: the body of fid (xorshift64 seeded by the fid). */
static void object_bytes(uint64_t fid, uint8_t *buf, size_t len)
{
    uint64_t x = fid * 0x9E3779B97F4A7C15ull | 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)(x >> 24);
    }
}

/* free_port: a port nothing listens on right now (bound, read, closed). */
static int free_port(int family)
{
    struct sockaddr_storage ss = {0};
    socklen_t len = family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    ss.ss_family = (sa_family_t)family;
    if (family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
    else
        ((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(family, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                    : ((struct sockaddr_in *)&ss)->sin_port);
}

/* try_ping: one connect + PING with a short timeout. */
static int try_ping(const char *ip, int port)
{
    struct spy_client *c;
    int rc = spy_client_connect(ip, port, 500, &c);
    if (rc != SPY_OK)
        return rc;
    rc = spy_client_ping(c);
    spy_client_close(c);
    return rc;
}

/* server_exec: the child side: spy_server with the test's flags. */
static void server_exec(const struct server *s)
{
    char port[32], master_port[48], data_dir[96], error_log[96], ip[48];
    snprintf(port, sizeof(port), "--port=%d", s->port);
    snprintf(master_port, sizeof(master_port), "--master_port=%d", s->master_port);
    snprintf(data_dir, sizeof(data_dir), "--data_dir=%s/data", s->dir);
    snprintf(error_log, sizeof(error_log), "--error_log=%s/server.log", s->dir);
    snprintf(ip, sizeof(ip), "--ip=%s", s->ip);
    char *argv[] = {(char *)server_bin,
                    port,
                    ip,
                    data_dir,
                    error_log,
                    "--chunks=4",
                    "--chunk_size=8M",
                    "--master_ip=127.0.0.1",
                    master_port,
                    "--group_id=1",
                    NULL};
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
    execv(server_bin, argv);
    _exit(127);
}

/* server_start: forks spy_server and waits until it answers PING. Returns 0,
 * or -1 if it exited or did not answer within READY_TIMEOUT_S. */
static int server_start(struct server *s)
{
    s->pid = fork();
    if (s->pid < 0)
        return -1;
    if (s->pid == 0)
        server_exec(s);
    double deadline = now_s() + READY_TIMEOUT_S;
    while (now_s() < deadline) {
        if (try_ping(s->ip, s->port) == SPY_OK)
            return 0;
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            fprintf(stderr, "spy_server exited early (status %d); see %s/server.log\n", status,
                    s->dir);
            s->pid = 0;
            return -1;
        }
        usleep(50 * 1000);
    }
    fprintf(stderr, "spy_server did not answer PING within %.0f s\n", READY_TIMEOUT_S);
    return -1;
}

/* server_stop: sends sig and reaps the child; returns its wait status. A
 * server that ignores SIGTERM for 20 s is killed (and the status says so). */
static int server_stop(struct server *s, int sig)
{
    int status = -1;
    if (s->pid <= 0)
        return status;
    kill(s->pid, sig);
    double deadline = now_s() + 20.0;
    while (waitpid(s->pid, &status, WNOHANG) == 0) {
        if (now_s() > deadline) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
            break;
        }
        usleep(20 * 1000);
    }
    s->pid = 0;
    return status;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

/* server_init: a temp dir with an empty data/ and two free ports. */
static int server_init(struct server *s, const char *ip, int family)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "/tmp/spy_test_client.XXXXXX");
    if (mkdtemp(s->dir) == NULL)
        return -1;
    char data[96];
    snprintf(data, sizeof(data), "%s/data", s->dir);
    s->ip = ip;
    s->port = free_port(family);
    s->master_port = free_port(AF_INET);
    return mkdir(data, 0755) == 0 && s->port > 0 && s->master_port > 0 ? 0 : -1;
}

static void server_cleanup(struct server *s)
{
    server_stop(s, SIGTERM);
    if (s->dir[0] != '\0')
        nftw(s->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static struct spy_client *connect_ok(const char *ip, int port)
{
    struct spy_client *c = NULL;
    assert_int_equal(spy_client_connect(ip, port, IO_TIMEOUT_MS, &c), SPY_OK);
    return c;
}

/* A sink that appends into a bounded buffer. */
struct collect {
    uint8_t *buf;
    size_t len, cap;
};

static int collect_sink(void *arg, const uint8_t *data, size_t n)
{
    struct collect *col = arg;
    if (n > col->cap - col->len)
        return SPY_ERANGE;
    memcpy(col->buf + col->len, data, n);
    col->len += n;
    return 0;
}

/* put_object: puts fid's generated body of len bytes and records it. */
static void put_object(struct ctx *x, uint64_t fid, size_t len)
{
    uint8_t *body = malloc(len + 1);
    assert_non_null(body);
    object_bytes(fid, body, len);
    assert_int_equal(spy_client_put(x->c, fid, body, len), SPY_OK);
    free(body);
    assert_true(x->nobjects < MAX_OBJECTS);
    x->fids[x->nobjects] = fid;
    x->lens[x->nobjects++] = len;
}

/* forget_object: drops a deleted fid from the table of live objects. */
static void forget_object(struct ctx *x, uint64_t fid)
{
    for (int i = 0; i < x->nobjects; i++) {
        if (x->fids[i] == fid) {
            x->nobjects--;
            x->fids[i] = x->fids[x->nobjects];
            x->lens[i] = x->lens[x->nobjects];
            return;
        }
    }
    fail_msg("fid %llu is not in the table", (unsigned long long)fid);
}

/* check_range: gets [off, off+length) of fid (length 0 = to the end) and
 * compares it with the generated body of an object of object_len bytes. */
static void check_range(struct spy_client *c, uint64_t fid, uint64_t object_len, uint64_t off,
                        uint64_t length)
{
    uint64_t want_len = length != 0 ? length : object_len - off;
    uint8_t *want = malloc(object_len + 1);
    uint8_t *got = malloc(want_len + 1);
    assert_non_null(want);
    assert_non_null(got);
    object_bytes(fid, want, object_len);
    struct collect col = {.buf = got, .cap = want_len};
    uint64_t reported = UINT64_MAX;
    assert_int_equal(spy_client_get(c, fid, off, length, collect_sink, &col, &reported), SPY_OK);
    assert_int_equal(reported, object_len);
    assert_int_equal(col.len, want_len);
    assert_memory_equal(got, want + off, want_len);
    free(want);
    free(got);
}

/* check_all: every recorded object reads back whole and byte-exact, and the
 * deleted fid stays gone. */
static void check_all(struct ctx *x)
{
    for (int i = 0; i < x->nobjects; i++)
        check_range(x->c, x->fids[i], x->lens[i], 0, 0);
    if (x->deleted_fid != 0)
        assert_int_equal(spy_client_get(x->c, x->deleted_fid, 0, 0, NULL, NULL, NULL),
                         SPY_ENOTFOUND);
}

/* restart: stops the server with sig, starts it on the same data dir and
 * port, and reconnects. */
static void restart(struct ctx *x, int sig)
{
    spy_client_close(x->c);
    x->c = NULL;
    int status = server_stop(&x->srv, sig);
    if (sig == SIGTERM)
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    else
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == sig);
    assert_int_equal(server_start(&x->srv), 0);
    x->c = connect_ok(x->srv.ip, x->srv.port);
}

/* ---- tests --------------------------------------------------------------- */

static void test_roundtrip_sizes(void **state)
{
    struct ctx *x = *state;
    static const size_t sizes[] = {0,  1, 65536, 65537, 1u << 20, (1u << 20) + 1, (2u << 20) - 1,
                                   BIG};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint64_t fid = 1000 + i;
        put_object(x, fid, sizes[i]);
        check_range(x->c, fid, sizes[i], 0, 0);
    }
    assert_false(spy_client_broken(x->c));
}

static void test_range_gets(void **state)
{
    struct ctx *x = *state;
    uint64_t fid = 1000 + 7, len = BIG;                          /* the 3 MiB + 7 object */
    check_range(x->c, fid, len, 65535, 2);                       /* across a 64 KiB block */
    check_range(x->c, fid, len, 65536, 65536);                   /* exactly one block */
    check_range(x->c, fid, len, (1u << 20) - 1, (1u << 20) + 2); /* across DATA frames */
    check_range(x->c, fid, len, 3u << 20, 0);                    /* to the end: 7 bytes */
    check_range(x->c, fid, len, 12345, len - 12345);             /* explicit rest */
    check_range(x->c, fid, len, len - 1, 1);                     /* the last byte */
    check_range(x->c, fid, len, len, 0);                         /* offset = len: 0 bytes */
    check_range(x->c, 1000, 0, 0, 0);                            /* the empty object */
    static const uint64_t bad[][2] = {{BIG, 1},  {BIG + 1, 0},    {0, BIG + 1},
                                      {10, BIG}, {UINT64_MAX, 0}, {1, UINT64_MAX}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(spy_client_get(x->c, fid, bad[i][0], bad[i][1], NULL, NULL, NULL),
                         SPY_ERANGE);
    assert_int_equal(spy_client_get(x->c, 1000, 1, 0, NULL, NULL, NULL), SPY_ERANGE);
    assert_false(spy_client_broken(x->c));
    assert_int_equal(spy_client_ping(x->c), SPY_OK);
}

static void test_stat_fields(void **state)
{
    struct ctx *x = *state;
    time_t now = time(NULL);
    for (int i = 0; i < x->nobjects; i++) {
        struct spy_stat_resp st;
        assert_int_equal(spy_client_stat(x->c, x->fids[i], &st), SPY_OK);
        assert_int_equal(st.fid, x->fids[i]);
        assert_int_equal(st.len, x->lens[i]);
        assert_in_range(st.chunk_id, 1, 4);
        assert_true(st.offset < 8u << 20);
        assert_in_range(st.timestamp, (uint64_t)x->started - 5, (uint64_t)now + 5);
    }
    struct spy_stat_resp st;
    assert_int_equal(spy_client_stat(x->c, 999999, &st), SPY_ENOTFOUND);
}

static void test_status(void **state)
{
    struct ctx *x = *state;
    char *json = NULL;
    assert_int_equal(spy_client_status(x->c, &json), SPY_OK);
    assert_non_null(json);
    assert_true(json[0] == '{' && strlen(json) > 2 && json[strlen(json) - 1] == '}');
    free(json);
}

static void test_delete(void **state)
{
    struct ctx *x = *state;
    uint64_t fid = 2000;
    uint8_t body[100];
    object_bytes(fid, body, sizeof(body));
    assert_int_equal(spy_client_put(x->c, fid, body, sizeof(body)), SPY_OK);
    assert_int_equal(spy_client_delete(x->c, fid), SPY_OK);
    assert_int_equal(spy_client_get(x->c, fid, 0, 0, NULL, NULL, NULL), SPY_ENOTFOUND);
    struct spy_stat_resp st;
    assert_int_equal(spy_client_stat(x->c, fid, &st), SPY_ENOTFOUND);
    assert_int_equal(spy_client_put(x->c, fid, body, sizeof(body)), SPY_EEXISTS);
    assert_int_equal(spy_client_delete(x->c, fid), SPY_ENOTFOUND);
    assert_int_equal(spy_client_delete(x->c, 999998), SPY_ENOTFOUND);
    assert_false(spy_client_broken(x->c));
    x->deleted_fid = fid;
}

/* A duplicate put is refused early; the client stops sending, closes the put
 * with END/ABORT, and the same connection keeps working. */
static void test_duplicate_put(void **state)
{
    struct ctx *x = *state;
    uint8_t *body = malloc(BIG);
    assert_non_null(body);
    memset(body, 0x5a, BIG);
    assert_int_equal(spy_client_put(x->c, 1000 + 7, body, BIG), SPY_EEXISTS);
    assert_false(spy_client_broken(x->c));
    assert_int_equal(spy_client_ping(x->c), SPY_OK);

    /* Streamed: the refusal surfaces at some data call or at the end. */
    assert_int_equal(spy_client_put_begin(x->c, 1000 + 1, 4u << 20), SPY_OK);
    int rc = SPY_OK;
    for (int i = 0; i < 4 && rc == SPY_OK; i++)
        rc = spy_client_put_data(x->c, body, 1u << 20);
    assert_true(rc == SPY_OK || rc == SPY_EEXISTS);
    assert_int_equal(spy_client_put_end(x->c), SPY_EEXISTS);
    free(body);

    check_range(x->c, 1000 + 7, BIG, 0, 0); /* the original is untouched */
    put_object(x, 3000, 5000);
    check_range(x->c, 3000, 5000, 0, 0);
    assert_false(spy_client_broken(x->c));
}

/* An aborted put leaves nothing behind and frees the fid. */
static void test_put_abort(void **state)
{
    struct ctx *x = *state;
    uint8_t body[4096];
    object_bytes(3001, body, sizeof(body));
    assert_int_equal(spy_client_put_begin(x->c, 3001, sizeof(body)), SPY_OK);
    assert_int_equal(spy_client_put_data(x->c, body, 1000), SPY_OK);
    assert_int_equal(spy_client_put_abort(x->c), SPY_OK);
    assert_int_equal(spy_client_get(x->c, 3001, 0, 0, NULL, NULL, NULL), SPY_ENOTFOUND);
    put_object(x, 3001, sizeof(body));
    check_range(x->c, 3001, sizeof(body), 0, 0);
}

/* A body over max_len is refused (ERANGE) and nothing is stored. */
static void test_put_over_max_len(void **state)
{
    struct ctx *x = *state;
    uint8_t body[3000] = {0};
    assert_int_equal(spy_client_put_begin(x->c, 3002, 1000), SPY_OK);
    int rc = spy_client_put_data(x->c, body, sizeof(body));
    assert_true(rc == SPY_OK || rc == SPY_ERANGE);
    assert_int_equal(spy_client_put_end(x->c), SPY_ERANGE);
    assert_false(spy_client_broken(x->c));
    assert_int_equal(spy_client_get(x->c, 3002, 0, 0, NULL, NULL, NULL), SPY_ENOTFOUND);
}

static void test_restart_sigterm(void **state)
{
    struct ctx *x = *state;
    restart(x, SIGTERM);
    check_all(x);
}

static void test_restart_sigkill(void **state)
{
    struct ctx *x = *state;
    put_object(x, 4000, 100000);
    put_object(x, 4001, (1u << 20) + 3);
    assert_int_equal(spy_client_delete(x->c, 3000), SPY_OK);
    forget_object(x, 3000);
    restart(x, SIGKILL);
    check_all(x);
    assert_int_equal(spy_client_get(x->c, 3000, 0, 0, NULL, NULL, NULL), SPY_ENOTFOUND);
    assert_int_equal(spy_client_put(x->c, 3000, "x", 1), SPY_EEXISTS);
}

/* A second server listening on ::1, reached over IPv6. */
static void test_ipv6(void **state)
{
    (void)state;
    struct server s6;
    if (free_port(AF_INET6) < 0)
        skip(); /* no IPv6 loopback here */
    assert_int_equal(server_init(&s6, "::1", AF_INET6), 0);
    int started = server_start(&s6);
    struct spy_client *c = NULL;
    if (started == 0)
        c = connect_ok("::1", s6.port);
    if (c != NULL) {
        uint8_t body[70000];
        object_bytes(5000, body, sizeof(body));
        assert_int_equal(spy_client_put(c, 5000, body, sizeof(body)), SPY_OK);
        check_range(c, 5000, sizeof(body), 60000, 10000);
        spy_client_close(c);
    }
    server_cleanup(&s6);
    assert_int_equal(started, 0);
}

static void test_connect_closed_port(void **state)
{
    (void)state;
    int port = free_port(AF_INET);
    assert_true(port > 0);
    struct spy_client *c = NULL;
    double t0 = now_s();
    assert_int_equal(spy_client_connect("127.0.0.1", port, IO_TIMEOUT_MS, &c), SPY_EIO);
    assert_null(c);
    assert_true(now_s() - t0 < 2.0);
}

/* A "server" that accepts (the kernel does, via the backlog) and never
 * answers: the request must fail with ETIMEDOUT near the deadline. */
static void test_silent_server_times_out(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    struct spy_client *c = NULL;
    assert_int_equal(spy_client_connect("127.0.0.1", ntohs(a.sin_port), 300, &c), SPY_OK);
    double t0 = now_s();
    assert_int_equal(spy_client_ping(c), SPY_ETIMEDOUT);
    double took = now_s() - t0;
    assert_true(spy_client_broken(c));
    assert_true(took < 3.0);
    spy_client_close(c);
    close(lfd);
}

/* ---- fixture ------------------------------------------------------------- */

static int group_setup(void **state)
{
    struct ctx *x = calloc(1, sizeof(*x));
    if (x == NULL || server_init(&x->srv, "127.0.0.1", AF_INET) != 0)
        return -1;
    x->started = time(NULL);
    *state = x;
    if (server_start(&x->srv) != 0)
        return -1;
    return spy_client_connect(x->srv.ip, x->srv.port, IO_TIMEOUT_MS, &x->c) == SPY_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    struct ctx *x = *state;
    if (x == NULL)
        return 0;
    spy_client_close(x->c);
    server_cleanup(&x->srv);
    free(x);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <path to spy_server>\n", argv[0]);
        return 2;
    }
    server_bin = argv[1];
    spy_log_set_level(SPY_LOG_ERROR); /* expected client warnings (timeouts) */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_sizes),
        cmocka_unit_test(test_range_gets),
        cmocka_unit_test(test_stat_fields),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_duplicate_put),
        cmocka_unit_test(test_put_abort),
        cmocka_unit_test(test_put_over_max_len),
        cmocka_unit_test(test_restart_sigterm),
        cmocka_unit_test(test_restart_sigkill),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_connect_closed_port),
        cmocka_unit_test(test_silent_server_times_out),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
