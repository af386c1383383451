/* test_master.c - the refresher thread against a scripted fake chunkmaster
 * on 127.0.0.1: first table and fids, a garbage table keeps the old one, a
 * new table replaces it, fids are refilled below the low-water mark, and an
 * unreachable master keeps the cache. Polls with deadlines; no fixed sleeps
 * decide an outcome. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "blobstore/blobstore.h"
#include "blobstore/internal.h"
#include "common/status.h"

/* The fake master: serves whatever route body is current, and fid ranges. */
struct fake {
    int fd, port;
    pthread_t thread;
    atomic_int stop;
    pthread_mutex_t mu;
    char route[4096];
    uint64_t next_fid;
    int route_requests, fid_requests;
};

static const char *ROUTE_TWO =
    "{\"1\":[{\"Ip\":\"127.0.0.1\",\"Port\":1,\"Status\":1,\"TotalFreeSpace\":9,"
    "\"MaxFreeSpace\":9}],\"2\":[{\"Ip\":\"127.0.0.1\",\"Port\":2,\"Status\":1,"
    "\"TotalFreeSpace\":9,\"MaxFreeSpace\":9}]}";
static const char *ROUTE_THREE =
    "{\"1\":[{\"Ip\":\"127.0.0.1\",\"Port\":1,\"Status\":1,\"TotalFreeSpace\":9,"
    "\"MaxFreeSpace\":9}],\"2\":[{\"Ip\":\"127.0.0.1\",\"Port\":2,\"Status\":1,"
    "\"TotalFreeSpace\":9,\"MaxFreeSpace\":9}],\"3\":[{\"Ip\":\"127.0.0.1\",\"Port\":3,"
    "\"Status\":1,\"TotalFreeSpace\":9,\"MaxFreeSpace\":9}]}";

/* now_ms: CLOCK_MONOTONIC in ms. */
static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* answer: one request on fd: reads the head, writes the response. */
static void answer(struct fake *f, int fd)
{
    char req[2048] = "";
    size_t n = 0;
    while (n < sizeof(req) - 1 && strstr(req, "\r\n\r\n") == NULL) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 2000) <= 0)
            return;
        ssize_t r = recv(fd, req + n, sizeof(req) - 1 - n, 0);
        if (r <= 0)
            return;
        n += (size_t)r;
        req[n] = '\0';
    }
    char body[4200];
    pthread_mutex_lock(&f->mu);
    if (strncmp(req, "GET /v1/chunkmaster/route ", 26) == 0) {
        f->route_requests++;
        snprintf(body, sizeof(body), "%s", f->route);
    } else if (strncmp(req, "GET /v1/chunkmaster/fid?count=", 30) == 0) {
        f->fid_requests++;
        uint64_t count = strtoull(req + 30, NULL, 10);
        snprintf(body, sizeof(body), "{\"FidBegin\":%llu,\"FidEnd\":%llu}",
                 (unsigned long long)f->next_fid, (unsigned long long)(f->next_fid + count));
        f->next_fid += count;
    } else {
        snprintf(body, sizeof(body), "nope");
    }
    pthread_mutex_unlock(&f->mu);
    char head[256];
    int hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                      strlen(body));
    if (send(fd, head, (size_t)hn, MSG_NOSIGNAL) == hn)
        send(fd, body, strlen(body), MSG_NOSIGNAL);
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd p = {.fd = f->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int c = accept(f->fd, NULL, NULL);
        if (c < 0)
            continue;
        answer(f, c);
        close(c);
    }
    return NULL;
}

/* fake_start: the fake master on 127.0.0.1 (port 0: any), serving ROUTE_TWO. */
static void fake_start(struct fake *f, int port)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    snprintf(f->route, sizeof(f->route), "%s", ROUTE_TWO);
    f->next_fid = 1000;
    f->fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(f->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(f->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f->fd, 16), 0);
    socklen_t len = sizeof(sa);
    getsockname(f->fd, (struct sockaddr *)&sa, &len);
    f->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

/* fake_stop: stops serving and closes the listener. */
static void fake_stop(struct fake *f)
{
    atomic_store(&f->stop, 1);
    pthread_join(f->thread, NULL);
    close(f->fd);
}

/* set_route: what the next route requests get. */
static void set_route(struct fake *f, const char *body)
{
    pthread_mutex_lock(&f->mu);
    snprintf(f->route, sizeof(f->route), "%s", body);
    pthread_mutex_unlock(&f->mu);
}

/* wait_for: polls cond(bs) every 10 ms for up to 5 s. */
static int wait_for(struct spy_blob *bs, int (*cond)(struct spy_blob *, void *), void *arg)
{
    for (int64_t deadline = now_ms() + 5000; now_ms() < deadline; usleep(10000))
        if (cond(bs, arg))
            return 1;
    return 0;
}

/* route_errors_at_least: condition for wait_for. */
static int route_errors_at_least(struct spy_blob *bs, void *arg)
{
    struct spy_blob_stats st;
    spy_blob_stats(bs, &st);
    return st.route_errors >= *(uint64_t *)arg;
}

/* groups_are: condition for wait_for. */
static int groups_are(struct spy_blob *bs, void *arg)
{
    struct spy_blob_stats st;
    spy_blob_stats(bs, &st);
    return st.route_groups == *(uint64_t *)arg;
}

/* fids_at_least: condition for wait_for. */
static int fids_at_least(struct spy_blob *bs, void *arg)
{
    return spy_fidcache_available(bs->fids) >= *(uint64_t *)arg;
}

/* master_down: condition for wait_for. */
static int master_down(struct spy_blob *bs, void *arg)
{
    (void)arg;
    struct spy_blob_stats st;
    spy_blob_stats(bs, &st);
    return !st.master_ok;
}

/* create: a client of the fake master with fast refreshes and small fid batches. */
static struct spy_blob *create(int port)
{
    struct spy_blob_config cfg;
    spy_blob_config_init(&cfg);
    cfg.master_port = port;
    cfg.route_interval_ms = 30;
    cfg.master_timeout_ms = 1000;
    cfg.fid_batch = 10;
    cfg.fid_low_water = 5;
    struct spy_blob *bs;
    assert_int_equal(spy_blob_create(&cfg, &bs), SPY_OK);
    return bs;
}

static void test_route_kept_on_garbage(void **state)
{
    (void)state;
    struct fake f;
    fake_start(&f, 0);
    struct spy_blob *bs = create(f.port);
    assert_int_equal(spy_blob_wait_ready(bs, 5000), SPY_OK);
    struct spy_blob_stats st;
    spy_blob_stats(bs, &st);
    assert_int_equal(st.route_groups, 2);
    assert_true(st.master_ok);
    assert_true(st.route_age_ms >= 0);
    /* Garbage, then a table with a missing field: both refused, the old kept. */
    uint64_t errors = st.route_errors + 3;
    set_route(&f, "<html>oops</html>");
    assert_true(wait_for(bs, route_errors_at_least, &errors));
    set_route(&f, "{\"1\":[{\"Ip\":\"127.0.0.1\",\"Status\":1}]}");
    errors += 3;
    assert_true(wait_for(bs, route_errors_at_least, &errors));
    spy_blob_stats(bs, &st);
    assert_int_equal(st.route_groups, 2);
    struct spy_blobroute *rt = spy_blob_route_get(bs);
    assert_non_null(spy_blobroute_group(rt, 2));
    spy_blobroute_unref(rt);
    /* A valid table replaces it. */
    set_route(&f, ROUTE_THREE);
    uint64_t three = 3;
    assert_true(wait_for(bs, groups_are, &three));
    spy_blob_destroy(bs);
    fake_stop(&f);
}

static void test_fids_refilled_and_outage(void **state)
{
    (void)state;
    struct fake f;
    fake_start(&f, 0);
    struct spy_blob *bs = create(f.port);
    assert_int_equal(spy_blob_wait_ready(bs, 5000), SPY_OK);
    uint64_t ten = 10;
    assert_true(wait_for(bs, fids_at_least, &ten));
    /* Take fids below the low-water mark (5) and kick, as writers do: the
     * refresher fetches another range; the fids come out in order. */
    uint64_t fid, prev = 0;
    for (int i = 0; i < 7; i++) {
        int refill;
        assert_int_equal(spy_fidcache_take(bs->fids, &fid, &refill), SPY_OK);
        assert_true(fid > prev || i == 0);
        prev = fid;
        if (refill)
            spy_blob_master_kick(bs);
    }
    assert_int_equal(fid, 1006);
    uint64_t six = 6;
    assert_true(wait_for(bs, fids_at_least, &six));
    /* The master goes away: the route and the fids stay. */
    fake_stop(&f);
    assert_true(wait_for(bs, master_down, NULL));
    struct spy_blob_stats st;
    spy_blob_stats(bs, &st);
    assert_int_equal(st.route_groups, 2);
    assert_true(st.fids_available >= 6);
    assert_true(st.route_errors > 0);
    spy_blob_destroy(bs);
}

static void test_parse_fid_range(void **state)
{
    (void)state;
    uint64_t b, e;
    const char *ok = "{\"FidBegin\":5,\"FidEnd\":105}";
    assert_int_equal(spy_blob_parse_fid_range(ok, strlen(ok), &b, &e), SPY_OK);
    assert_int_equal(b, 5);
    assert_int_equal(e, 105);
    const char *bad[] = {"",
                         "{}",
                         "{\"FidBegin\":5}",
                         "{\"FidBegin\":5,\"FidEnd\":5}",
                         "{\"FidBegin\":-1,\"FidEnd\":5}",
                         "{\"FidBegin\":\"5\",\"FidEnd\":6}",
                         "[1,2]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(spy_blob_parse_fid_range(bad[i], strlen(bad[i]), &b, &e), SPY_EINVAL);
}

static void test_bad_config(void **state)
{
    (void)state;
    struct spy_blob_config cfg;
    struct spy_blob *bs;
    spy_blob_config_init(&cfg);
    cfg.piece_size = 1000;
    assert_int_equal(spy_blob_create(&cfg, &bs), SPY_EINVAL);
    spy_blob_config_init(&cfg);
    cfg.min_writable = 0;
    assert_int_equal(spy_blob_create(&cfg, &bs), SPY_EINVAL);
    spy_blob_config_init(&cfg);
    cfg.master_host = "";
    assert_int_equal(spy_blob_create(&cfg, &bs), SPY_EINVAL);
    /* No master at all: never ready, and destroy still returns promptly. */
    spy_blob_config_init(&cfg);
    cfg.master_port = 1;
    cfg.master_timeout_ms = 200;
    assert_int_equal(spy_blob_create(&cfg, &bs), SPY_OK);
    assert_int_equal(spy_blob_wait_ready(bs, 300), SPY_ETIMEDOUT);
    spy_blob_destroy(bs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_kept_on_garbage),
        cmocka_unit_test(test_fids_refilled_and_outage),
        cmocka_unit_test(test_parse_fid_range),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
