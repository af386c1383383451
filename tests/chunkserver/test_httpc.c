/* test_httpc.c - the small HTTP/1.1 client against a one-connection server
 * run by a thread in the test: Content-Length, chunked and EOF-framed
 * replies, 1xx skipping, a mute server (ETIMEDOUT within the deadline), a
 * refused port (EIO), oversized and malformed replies, IPv6. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/httpc.h"
#include "common/log.h"
#include "common/status.h"

/* A server for one connection: reads the request (headers + Content-Length
 * body), then writes 'pieces' one send each and closes, or with 'mute' sits
 * until the test ends it. */
struct httpd {
    int listen_fd, port;
    const char *const *pieces;
    size_t npieces;
    int mute;
    int quit[2];
    char request[65536];
    size_t request_len;
    pthread_t thread;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* request_complete: headers ended and Content-Length body bytes arrived. */
static int request_complete(const char *req, size_t len)
{
    const char *end = memmem(req, len, "\r\n\r\n", 4);
    if (end == NULL)
        return 0;
    size_t head = (size_t)(end - req) + 4;
    const char *cl = strcasestr(req, "Content-Length:");
    size_t body = cl != NULL && cl < end ? strtoul(cl + 15, NULL, 10) : 0;
    return len >= head + body;
}

static void *httpd_thread(void *arg)
{
    struct httpd *h = arg;
    int fd = accept(h->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    while (!request_complete(h->request, h->request_len) &&
           h->request_len < sizeof(h->request) - 1) {
        ssize_t n =
            recv(fd, h->request + h->request_len, sizeof(h->request) - 1 - h->request_len, 0);
        if (n <= 0)
            break;
        h->request_len += (size_t)n;
    }
    h->request[h->request_len] = '\0';
    if (h->mute) {
        struct pollfd p = {.fd = h->quit[0], .events = POLLIN};
        poll(&p, 1, 30000);
    }
    for (size_t i = 0; i < h->npieces; i++) {
        send(fd, h->pieces[i], strlen(h->pieces[i]), MSG_NOSIGNAL);
        struct timespec pause = {.tv_nsec = 2000000};
        nanosleep(&pause, NULL); /* separate segments, to exercise partial parses */
    }
    close(fd);
    return NULL;
}

/* httpd_start: listens on 'ip' (port chosen by the kernel) and starts the
 * thread. Returns 0, or -1 if the address family is unavailable. */
static int httpd_start(struct httpd *h, const char *ip, const char *const *pieces, size_t n,
                       int mute)
{
    memset(h, 0, sizeof(*h));
    h->pieces = pieces;
    h->npieces = n;
    h->mute = mute;
    assert_int_equal(pipe(h->quit), 0);
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, ip, &s6->sin6_addr);
        sl = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        inet_pton(AF_INET, ip, &s4->sin_addr);
        sl = sizeof(*s4);
    }
    h->listen_fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h->listen_fd < 0 || bind(h->listen_fd, (struct sockaddr *)&ss, sl) != 0) {
        if (h->listen_fd >= 0)
            close(h->listen_fd);
        close(h->quit[0]);
        close(h->quit[1]);
        return -1;
    }
    assert_int_equal(listen(h->listen_fd, 8), 0);
    getsockname(h->listen_fd, (struct sockaddr *)&ss, &sl);
    h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    assert_int_equal(pthread_create(&h->thread, NULL, httpd_thread, h), 0);
    return 0;
}

static void httpd_stop(struct httpd *h)
{
    assert_int_equal(write(h->quit[1], "x", 1), 1);
    shutdown(h->listen_fd, SHUT_RDWR); /* wakes accept if nobody connected */
    pthread_join(h->thread, NULL);
    close(h->listen_fd);
    close(h->quit[0]);
    close(h->quit[1]);
}

/* request_to: a POST of a small JSON body to the test server. */
static struct spy_http_req request_to(const struct httpd *h, const char *host, int timeout_ms)
{
    struct spy_http_req req = {.host = host,
                               .port = h->port,
                               .method = "POST",
                               .path = "/v1/chunkserver/reportinfo",
                               .content_type = "application/json",
                               .body = "{\"a\":1}",
                               .body_len = 7,
                               .connect_timeout_ms = 1000,
                               .timeout_ms = timeout_ms};
    return req;
}

/* exchange: one request against a server replying 'pieces'; returns the
 * client's status with *resp filled. */
static int exchange(const char *const *pieces, size_t n, size_t max_response,
                    struct spy_http_resp *resp, struct httpd *h)
{
    assert_int_equal(httpd_start(h, "127.0.0.1", pieces, n, 0), 0);
    struct spy_http_req req = request_to(h, "127.0.0.1", 5000);
    req.max_response = max_response;
    int rc = spy_http_request(&req, resp);
    httpd_stop(h);
    return rc;
}

static void test_content_length_reply(void **state)
{
    (void)state;
    static const char *const reply[] = {"HTTP/1.1 200 OK\r\nContent-Le", "ngth: 5\r\nX-Other: y",
                                        "\r\n\r\nhel", "lo"};
    struct httpd h;
    struct spy_http_resp resp;
    assert_int_equal(exchange(reply, 4, 0, &resp, &h), SPY_OK);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.body_len, 5);
    assert_string_equal(resp.body, "hello");
    assert_true(strncmp(h.request, "POST /v1/chunkserver/reportinfo HTTP/1.1\r\n", 42) == 0);
    assert_non_null(strstr(h.request, "\r\nHost: 127.0.0.1:"));
    assert_non_null(strstr(h.request, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(h.request, "\r\nContent-Length: 7\r\n"));
    assert_non_null(strstr(h.request, "\r\nConnection: close\r\n"));
    assert_string_equal(h.request + h.request_len - 11, "\r\n\r\n{\"a\":1}");
    spy_http_resp_free(&resp);
    assert_null(resp.body);
    spy_http_resp_free(&resp); /* harmless twice */
}

static void test_chunked_reply(void **state)
{
    (void)state;
    static const char *const reply[] = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                                        "5;name=val\r\nhel", "lo\r\n6\r\n wor", "ld\r\n",
                                        "0\r\nX-Trailer: 1\r\n\r\n"};
    struct httpd h;
    struct spy_http_resp resp;
    assert_int_equal(exchange(reply, 5, 0, &resp, &h), SPY_OK);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.body_len, 11);
    assert_string_equal(resp.body, "hello world");
    spy_http_resp_free(&resp);
}

static void test_eof_framed_and_interim_replies(void **state)
{
    (void)state;
    static const char *const eof_reply[] = {"HTTP/1.0 404 Not Found\r\nServer: t\r\n\r\n", "no",
                                            "pe"};
    struct httpd h;
    struct spy_http_resp resp;
    assert_int_equal(exchange(eof_reply, 3, 0, &resp, &h), SPY_OK);
    assert_int_equal(resp.status, 404);
    assert_string_equal(resp.body, "nope");
    spy_http_resp_free(&resp);

    static const char *const interim[] = {"HTTP/1.1 100 Continue\r\n\r\n",
                                          "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"};
    assert_int_equal(exchange(interim, 2, 0, &resp, &h), SPY_OK);
    assert_int_equal(resp.status, 201);
    assert_int_equal(resp.body_len, 0);
    assert_string_equal(resp.body, "");
    spy_http_resp_free(&resp);
}

static void test_mute_server_times_out(void **state)
{
    (void)state;
    struct httpd h;
    assert_int_equal(httpd_start(&h, "127.0.0.1", NULL, 0, 1), 0);
    struct spy_http_req req = request_to(&h, "127.0.0.1", 300);
    struct spy_http_resp resp;
    int64_t t0 = mono_ms();
    assert_int_equal(spy_http_request(&req, &resp), SPY_ETIMEDOUT);
    int64_t took = mono_ms() - t0;
    assert_true(took >= 290);
    assert_true(took < 3000);
    assert_null(resp.body);
    httpd_stop(&h);
}

static void test_refused_port(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sl), 0);
    getsockname(fd, (struct sockaddr *)&sa, &sl); /* bound, not listening: refused */
    struct spy_http_req req = {.host = "127.0.0.1",
                               .port = ntohs(sa.sin_port),
                               .method = "GET",
                               .path = "/",
                               .timeout_ms = 2000};
    struct spy_http_resp resp;
    assert_int_equal(spy_http_request(&req, &resp), SPY_EIO);
    close(fd);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    struct spy_http_req req = {
        .host = "127.0.0.1", .port = 0, .method = "GET", .path = "/", .timeout_ms = 100};
    struct spy_http_resp resp;
    assert_int_equal(spy_http_request(&req, &resp), SPY_EINVAL);
    req.port = 80;
    req.timeout_ms = 0;
    assert_int_equal(spy_http_request(&req, &resp), SPY_EINVAL);
    req.timeout_ms = 100;
    req.body_len = 3;
    assert_int_equal(spy_http_request(&req, &resp), SPY_EINVAL);
    req.body_len = 0;
    req.path = "/x\r\nInjected: 1";
    assert_int_equal(spy_http_request(&req, &resp), SPY_EINVAL);
}

static void test_oversized_replies(void **state)
{
    (void)state;
    struct httpd h;
    struct spy_http_resp resp;
    static const char *const big_length[] = {"HTTP/1.1 200 OK\r\nContent-Length: 5242880\r\n\r\nx"};
    assert_int_equal(exchange(big_length, 1, 0, &resp, &h), SPY_ERANGE);
    static const char *const unframed[] = {"HTTP/1.1 200 OK\r\n\r\n0123456789", "0123456789"};
    assert_int_equal(exchange(unframed, 2, 15, &resp, &h), SPY_ERANGE);
    static const char *const chunked[] = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                          "a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n"};
    assert_int_equal(exchange(chunked, 1, 15, &resp, &h), SPY_ERANGE);
    assert_int_equal(exchange(chunked, 1, 20, &resp, &h), SPY_OK);
    assert_int_equal(resp.body_len, 20);
    spy_http_resp_free(&resp);
}

static void test_malformed_replies(void **state)
{
    (void)state;
    struct httpd h;
    struct spy_http_resp resp;
    static const char *const bad_status[] = {"HTTX/1.1 200 OK\r\n\r\n"};
    assert_int_equal(exchange(bad_status, 1, 0, &resp, &h), SPY_EPROTO);
    static const char *const truncated[] = {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"};
    assert_int_equal(exchange(truncated, 1, 0, &resp, &h), SPY_EPROTO);
    static const char *const bad_chunk[] = {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"};
    assert_int_equal(exchange(bad_chunk, 1, 0, &resp, &h), SPY_EPROTO);
    static const char *const bad_length[] = {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"};
    assert_int_equal(exchange(bad_length, 1, 0, &resp, &h), SPY_EPROTO);
    static const char *const no_head_end[] = {"HTTP/1.1 200 OK\r\nA: b\r\n"};
    assert_int_equal(exchange(no_head_end, 1, 0, &resp, &h), SPY_EPROTO);
    assert_int_equal(exchange(NULL, 0, 0, &resp, &h), SPY_EIO); /* closed without a word */
}

static void test_ipv6(void **state)
{
    (void)state;
    static const char *const reply[] = {"HTTP/1.1 204 No Content\r\n\r\n"};
    struct httpd h;
    if (httpd_start(&h, "::1", reply, 1, 0) != 0)
        skip();
    struct spy_http_req req = request_to(&h, "::1", 5000);
    struct spy_http_resp resp;
    assert_int_equal(spy_http_request(&req, &resp), SPY_OK);
    assert_int_equal(resp.status, 204);
    assert_int_equal(resp.body_len, 0);
    httpd_stop(&h);
    assert_non_null(strstr(h.request, "\r\nHost: [::1]:"));
    spy_http_resp_free(&resp);
}

int main(void)
{
    spy_log_set_level(SPY_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length_reply),
        cmocka_unit_test(test_chunked_reply),
        cmocka_unit_test(test_eof_framed_and_interim_replies),
        cmocka_unit_test(test_mute_server_times_out),
        cmocka_unit_test(test_refused_port),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_oversized_replies),
        cmocka_unit_test(test_malformed_replies),
        cmocka_unit_test(test_ipv6),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
