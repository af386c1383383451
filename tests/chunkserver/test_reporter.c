/* test_reporter.c - reports to a fake chunkmaster (a listening socket served
 * by a thread): the JSON fields arrive as documented, a refusing master is
 * counted as a failure, and a master that accepts but never answers does not
 * slow puts and gets on the data path. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chunkserver/reporter.h"
#include "common/log.h"
#include "common/status.h"
#include "tests/chunkserver/srvtest.h"

enum master_mode { MASTER_OK, MASTER_500, MASTER_MUTE };

/* A fake chunkmaster: accepts connections until told to quit; answers each
 * request per 'mode' and keeps the last request. */
struct master {
    int listen_fd, port, quit[2];
    enum master_mode mode;
    pthread_t thread;
    pthread_mutex_t lock;
    char last[16384]; /* last request, NUL-terminated */
    int requests;     /* complete requests seen */
    atomic_int accepted;
};

/* read_request: headers plus Content-Length body, or until EOF/quit. */
static size_t read_request(struct master *m, int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = m->quit[0], .events = POLLIN}};
        if (poll(p, 2, 20000) <= 0 || p[1].revents != 0)
            break;
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        char *cl = strcasestr(buf, "Content-Length:");
        if (end != NULL && cl != NULL && len >= (size_t)(end + 4 - buf) + strtoul(cl + 15, 0, 10))
            break;
    }
    buf[len] = '\0';
    return len;
}

static void *master_thread(void *arg)
{
    struct master *m = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = m->listen_fd, .events = POLLIN},
                              {.fd = m->quit[0], .events = POLLIN}};
        if (poll(p, 2, 20000) <= 0 || p[1].revents != 0)
            break;
        int fd = accept(m->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        atomic_fetch_add(&m->accepted, 1);
        char buf[16384];
        read_request(m, fd, buf, sizeof(buf));
        if (m->mode == MASTER_MUTE) {
            struct pollfd q = {.fd = m->quit[0], .events = POLLIN};
            poll(&q, 1, 20000);
            close(fd);
            break;
        }
        pthread_mutex_lock(&m->lock);
        strcpy(m->last, buf);
        m->requests++;
        pthread_mutex_unlock(&m->lock);
        const char *reply = m->mode == MASTER_OK ? "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                                                 : "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n";
        send(fd, reply, strlen(reply), MSG_NOSIGNAL);
        close(fd);
    }
    return NULL;
}

static void master_start(struct master *m, enum master_mode mode)
{
    memset(m, 0, sizeof(*m));
    m->mode = mode;
    pthread_mutex_init(&m->lock, NULL);
    assert_int_equal(pipe(m->quit), 0);
    m->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(m->listen_fd, (struct sockaddr *)&sa, sl), 0);
    assert_int_equal(listen(m->listen_fd, 8), 0);
    getsockname(m->listen_fd, (struct sockaddr *)&sa, &sl);
    m->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&m->thread, NULL, master_thread, m), 0);
}

static void master_stop(struct master *m)
{
    assert_int_equal(write(m->quit[1], "x", 1), 1);
    pthread_join(m->thread, NULL);
    close(m->listen_fd);
    close(m->quit[0]);
    close(m->quit[1]);
    pthread_mutex_destroy(&m->lock);
}

static struct spy_reporter_config reporter_config(struct srvtest *t, int port, int timeout_ms)
{
    struct spy_reporter_config rc = {.master_ip = "127.0.0.1",
                                     .master_port = port,
                                     .advertise_ip = "10.1.2.3",
                                     .group_id = 7,
                                     .data_dir = t->dir,
                                     .interval_ms = 100,
                                     .connect_timeout_ms = 1000,
                                     .timeout_ms = timeout_ms,
                                     .store = t->store,
                                     .server = t->srv};
    return rc;
}

/* wait_reports: waits (up to 10 s) for n attempts. */
static void wait_attempts(struct spy_reporter *r, uint64_t n, struct spy_reporter_stats *st)
{
    for (int i = 0; i < 10000; i++) {
        spy_reporter_get_stats(r, st);
        if (st->attempts >= n)
            return;
        usleep(1000);
    }
    fail_msg("no report within 10 s");
}

static int setup(void **state)
{
    struct srvtest *t = malloc(sizeof(*t));
    srvtest_setup(t, 4, 2000);
    assert_int_equal(spy_server_start(t->srv), SPY_OK);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    srvtest_teardown(*state);
    free(*state);
    return 0;
}

static void test_report_fields(void **state)
{
    struct srvtest *t = *state;
    struct srvconn c;
    srvconn_open(&c, t->srv);
    uint8_t data[100000];
    fill_pattern(data, sizeof(data), 1);
    assert_int_equal(client_put(c.fd, 1, 42, data, sizeof(data), 30000), SPY_OK);
    assert_int_equal(client_put(c.fd, 2, 43, data, 10, 10), SPY_OK);
    assert_int_equal(client_delete(c.fd, 3, 43), SPY_OK);

    struct master m;
    master_start(&m, MASTER_OK);
    struct spy_reporter_config cfg = reporter_config(t, m.port, 2000);
    struct spy_reporter *r;
    assert_int_equal(spy_reporter_start(&cfg, &r), SPY_OK);
    struct spy_reporter_stats st;
    wait_attempts(r, 1, &st);
    assert_int_equal(st.successes, st.attempts);
    assert_int_equal(st.last_http, 200);
    spy_reporter_stop(r);
    master_stop(&m);

    assert_true(strncmp(m.last, "POST /v1/chunkserver/reportinfo HTTP/1.1\r\n", 42) == 0);
    assert_non_null(strcasestr(m.last, "\r\nContent-Type: application/json\r\n"));
    const char *body = strstr(m.last, "\r\n\r\n");
    assert_non_null(body);
    json_error_t err;
    json_t *o = json_loads(body + 4, 0, &err);
    if (o == NULL)
        fail_msg("report is not JSON: %s", err.text);
    assert_int_equal(json_integer_value(json_object_get(o, "GroupId")), 7);
    assert_string_equal(json_string_value(json_object_get(o, "Ip")), "10.1.2.3");
    assert_int_equal(json_integer_value(json_object_get(o, "Port")), spy_server_port(t->srv));
    assert_true(json_is_false(json_object_get(o, "ReadOnly")));
    assert_string_equal(json_string_value(json_object_get(o, "DataDir")), t->dir);
    assert_int_equal(json_integer_value(json_object_get(o, "TotalChunks")), 4);
    assert_int_equal(json_integer_value(json_object_get(o, "DamagedChunks")), 0);
    assert_int_equal(json_integer_value(json_object_get(o, "Objects")), 1);
    assert_true(json_integer_value(json_object_get(o, "UsedSpace")) >= 100000);
    assert_true(json_integer_value(json_object_get(o, "GarbageSpace")) >= 10);
    assert_true(json_integer_value(json_object_get(o, "TotalFreeSpace")) > 0);
    assert_true(json_integer_value(json_object_get(o, "MaxFreeSpace")) <=
                json_integer_value(json_object_get(o, "TotalFreeSpace")));
    assert_int_equal(json_integer_value(json_object_get(o, "ConnectionsCount")), 1);
    assert_int_equal(json_integer_value(json_object_get(o, "ReadingCount")), 0);
    assert_int_equal(json_integer_value(json_object_get(o, "WritingCount")), 0);
    assert_int_equal(json_integer_value(json_object_get(o, "PendingWrites")), 0);
    assert_string_equal(json_string_value(json_object_get(o, "Version")), "speedy 0.1");
    assert_int_equal(json_object_size(o), 17);
    json_decref(o);
    assert_int_equal(srvconn_close(&c), SPY_OK);
}

static void test_refusing_master(void **state)
{
    struct srvtest *t = *state;
    struct master m;
    master_start(&m, MASTER_500);
    struct spy_reporter_config cfg = reporter_config(t, m.port, 2000);
    struct spy_reporter *r;
    assert_int_equal(spy_reporter_start(&cfg, &r), SPY_OK);
    struct spy_reporter_stats st;
    wait_attempts(r, 2, &st);
    assert_int_equal(st.successes, 0);
    assert_int_equal(st.last_http, 500);
    assert_int_equal(st.last_status, SPY_EIO);
    spy_reporter_stop(r);
    master_stop(&m);

    cfg.master_port = 0;
    assert_int_equal(spy_reporter_start(&cfg, &r), SPY_EINVAL);
}

/* One data-path worker: puts and reads back objects on its own connection,
 * recording the slowest operation. (The srvtest helpers assert; a failure
 * in this thread aborts the test run instead of failing one test.) */
struct worker {
    struct spy_server *srv;
    uint64_t fid_base;
    int64_t slowest_ms;
    int failures;
    pthread_t thread;
};

static void *worker_thread(void *arg)
{
    struct worker *w = arg;
    static const size_t len = 300000;
    uint8_t *data = malloc(len), *back = malloc(len);
    fill_pattern(data, len, (uint32_t)w->fid_base);
    struct srvconn c;
    srvconn_open(&c, w->srv);
    for (uint64_t i = 0; i < 10; i++) {
        int64_t t0 = mono_ms();
        int rc = client_put(c.fd, 2 * i, w->fid_base + i, data, len, 65536);
        int64_t t1 = mono_ms();
        size_t got;
        rc |= client_get(c.fd, 2 * i + 1, w->fid_base + i, 0, 0, back, len, &got, NULL);
        int64_t t2 = mono_ms();
        w->failures += rc != SPY_OK || got != len || memcmp(back, data, len) != 0;
        if (t1 - t0 > w->slowest_ms)
            w->slowest_ms = t1 - t0;
        if (t2 - t1 > w->slowest_ms)
            w->slowest_ms = t2 - t1;
    }
    srvconn_close(&c);
    free(data);
    free(back);
    return NULL;
}

static void test_mute_master_does_not_block_data_path(void **state)
{
    struct srvtest *t = *state;
    struct master m;
    master_start(&m, MASTER_MUTE);
    struct spy_reporter_config cfg = reporter_config(t, m.port, 20000);
    struct spy_reporter *r;
    assert_int_equal(spy_reporter_start(&cfg, &r), SPY_OK);
    for (int i = 0; i < 10000 && atomic_load(&m.accepted) == 0; i++)
        usleep(1000);
    assert_int_equal(atomic_load(&m.accepted), 1); /* a report is now stuck */

    struct worker w[2] = {{.srv = t->srv, .fid_base = 1000}, {.srv = t->srv, .fid_base = 2000}};
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&w[i].thread, NULL, worker_thread, &w[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(w[i].thread, NULL);
        assert_int_equal(w[i].failures, 0);
        assert_true(w[i].slowest_ms < 1000);
    }
    struct spy_reporter_stats st;
    spy_reporter_get_stats(r, &st);
    assert_int_equal(st.attempts, 0); /* all of that ran while the report hung */
    master_stop(&m);                  /* the master hangs up: the report fails fast */
    spy_reporter_stop(r);
}

int main(void)
{
    spy_log_set_level(SPY_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_report_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusing_master, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mute_master_does_not_block_data_path, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
