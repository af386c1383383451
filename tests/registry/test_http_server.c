/* test_http_server: the HTTP layer in-process, driven over raw sockets, with
 * the routes of test_http_handlers.h.
 *
 * Covers keep-alive, pipelining (with an asynchronous handler in the middle),
 * 100-continue, early rejects, HEAD, the layer's 400/413/431/505 answers,
 * chunked bodies both ways, broken transfers, HTTP/1.0, aborts (exactly once,
 * with the right status), back-pressure (a paused request stops the client),
 * the idle timeouts (and that a slow but steady upload is not cut), and stop
 * with a request in progress.
 *
 * Nothing here depends on timing for its verdict: waits for the server's
 * counters poll with a generous deadline, sockets have a 10 s receive timeout
 * as a backstop, and the timeout tests only check what happens once the
 * server gives up. */
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/status.h"
#include "tests/registry/test_http_handlers.h"

#define RD_CAP (256u << 10)

struct fixture {
    struct test_http_ctx ctx;
    struct spy_http_server *srv;
    uint16_t port;
};

/* ---- server ------------------------------------------------------------ */

/* start: a server on 127.0.0.1, two loops, with the given timeouts. */
static struct fixture *start(uint32_t timeout_ms, uint64_t max_body)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct spy_http_handler h;
    test_http_ctx_init(&f->ctx, &h, 5);
    struct spy_http_config cfg;
    spy_http_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.threads = 2;
    cfg.head_timeout_ms = cfg.io_timeout_ms = cfg.keepalive_timeout_ms = timeout_ms;
    cfg.linger_ms = 500;
    cfg.stop_grace_ms = 300;
    cfg.max_body = max_body;
    static const struct spy_http_field error_field = {"X-Layer-Error", "yes"};
    cfg.error_fields = &error_field;
    cfg.error_nfields = 1;
    assert_int_equal(spy_http_server_start(&cfg, &h, &f->srv), SPY_OK);
    f->ctx.srv = f->srv;
    f->port = spy_http_server_port(f->srv);
    assert_true(f->port != 0);
    return f;
}

/* stop: worker first (the contract), then the server; no broken promises. */
static void stop(struct fixture *f)
{
    test_http_ctx_fini(&f->ctx);
    spy_http_server_stop(f->srv);
    assert_int_equal(atomic_load(&f->ctx.violations), 0);
    free(f);
}

static int setup(void **state)
{
    *state = start(10000, 0);
    return 0;
}

static int setup_short_timeouts(void **state)
{
    *state = start(300, 1u << 20);
    return 0;
}

static int teardown(void **state)
{
    stop(*state);
    return 0;
}

static uint64_t stat_connections(struct fixture *f)
{
    struct spy_http_stats st;
    spy_http_server_stats(f->srv, &st);
    return st.connections;
}

/* wait_aborts: until the handlers have seen 'want' aborts (5 s at most). */
static int wait_aborts(struct fixture *f, uint64_t want)
{
    for (int i = 0; i < 500; i++) {
        if (atomic_load(&f->ctx.aborts) >= want)
            return atomic_load(&f->ctx.aborts) == want;
        usleep(10000);
    }
    return 0;
}

/* ---- client ------------------------------------------------------------ */

/* A connection with a read buffer (pipelined responses arrive together). */
struct client {
    int fd;
    char buf[RD_CAP];
    size_t off, len;
};

struct resp {
    int status;
    char head[16384];
    long long content_length; /* -1 if absent */
    int chunked, close;
    char *body;
    size_t body_len;
};

static struct client *client_open(struct fixture *f)
{
    struct client *c = calloc(1, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(f->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {10, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return c;
}

static void client_close(struct client *c)
{
    close(c->fd);
    free(c);
}

static void send_bytes(struct client *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

static void send_str(struct client *c, const char *s)
{
    send_bytes(c, s, strlen(s));
}

/* fill: reads more into the buffer. Returns bytes read, 0 at EOF, -1 on error. */
static ssize_t fill(struct client *c)
{
    if (c->off > 0) {
        memmove(c->buf, c->buf + c->off, c->len);
        c->off = 0;
    }
    if (c->len == RD_CAP)
        return -1;
    ssize_t n = recv(c->fd, c->buf + c->len, RD_CAP - c->len, 0);
    if (n > 0)
        c->len += (size_t)n;
    return n < 0 ? -1 : n;
}

/* take: up to want bytes from the buffer (filling once if empty) into out. */
static ssize_t take(struct client *c, char *out, size_t want)
{
    if (c->len == 0) {
        ssize_t n = fill(c);
        if (n <= 0)
            return n;
    }
    size_t n = c->len < want ? c->len : want;
    memcpy(out, c->buf + c->off, n);
    c->off += n;
    c->len -= n;
    return (ssize_t)n;
}

/* read_line: one CRLF-terminated line (without the CRLF). 0 or -1. */
static int read_line(struct client *c, char *line, size_t cap)
{
    for (;;) {
        char *eol = memmem(c->buf + c->off, c->len, "\r\n", 2);
        if (eol != NULL) {
            size_t n = (size_t)(eol - (c->buf + c->off));
            if (n >= cap)
                return -1;
            memcpy(line, c->buf + c->off, n);
            line[n] = '\0';
            c->off += n + 2;
            c->len -= n + 2;
            return 0;
        }
        if (fill(c) <= 0)
            return -1;
    }
}

/* read_exact: n bytes appended to r->body. 0 or -1 (EOF first). */
static int read_exact(struct client *c, struct resp *r, size_t n)
{
    r->body = realloc(r->body, r->body_len + n + 1);
    while (n > 0) {
        ssize_t got = take(c, r->body + r->body_len, n);
        if (got <= 0)
            return -1;
        r->body_len += (size_t)got;
        r->body[r->body_len] = '\0';
        n -= (size_t)got;
    }
    return 0;
}

/* header_value: a header of the head (case-insensitive), or NULL. */
static const char *header_value(const struct resp *r, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            const char *v = p + 3 + n;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r");
            if (len >= cap)
                len = cap - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return out;
        }
    }
    return NULL;
}

/* read_chunked: a chunked body into r->body. 0, or -1 if it breaks off. */
static int read_chunked(struct client *c, struct resp *r)
{
    char line[256];
    for (;;) {
        if (read_line(c, line, sizeof(line)) != 0)
            return -1;
        size_t n = strtoul(line, NULL, 16);
        if (n == 0)
            break;
        if (read_exact(c, r, n) != 0 || read_line(c, line, sizeof(line)) != 0 || line[0] != '\0')
            return -1;
    }
    do { /* trailer section */
        if (read_line(c, line, sizeof(line)) != 0)
            return -1;
    } while (line[0] != '\0');
    return 0;
}

/* read_resp: one response (the head; the body unless head_only). Returns 0,
 * or -1 if the connection ended before the response did. */
static int read_resp(struct client *c, struct resp *r, int head_only)
{
    memset(r, 0, sizeof(*r));
    r->content_length = -1;
    size_t hl = 0;
    char line[8192];
    for (;;) {
        if (read_line(c, line, sizeof(line)) != 0)
            return -1;
        size_t n = strlen(line);
        assert_true(hl + n + 2 < sizeof(r->head));
        memcpy(r->head + hl, line, n);
        memcpy(r->head + hl + n, "\r\n", 2);
        hl += n + 2;
        if (n == 0)
            break;
    }
    r->head[hl] = '\0';
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d", &r->status), 1);
    char v[64];
    if (header_value(r, "Content-Length", v, sizeof(v)) != NULL)
        r->content_length = atoll(v);
    r->chunked = header_value(r, "Transfer-Encoding", v, sizeof(v)) != NULL;
    r->close = header_value(r, "Connection", v, sizeof(v)) != NULL && strcmp(v, "close") == 0;
    r->body = calloc(1, 1);
    if (head_only || r->status < 200 || r->status == 204 || r->status == 304)
        return 0;
    if (r->chunked)
        return read_chunked(c, r);
    if (r->content_length >= 0)
        return read_exact(c, r, (size_t)r->content_length);
    char tmp[65536];
    ssize_t n;
    while ((n = take(c, tmp, sizeof(tmp))) > 0) {
        r->body = realloc(r->body, r->body_len + (size_t)n + 1);
        memcpy(r->body + r->body_len, tmp, (size_t)n);
        r->body_len += (size_t)n;
        r->body[r->body_len] = '\0';
    }
    return n == 0 ? 0 : -1;
}

static void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* at_eof: the server closed the connection with nothing more to read. */
static int at_eof(struct client *c)
{
    if (c->len > 0)
        return 0;
    char b;
    return recv(c->fd, &b, 1, 0) == 0;
}

/* sha256_hex: what /echo should report. */
static void sha256_hex(const void *data, size_t len, char hex[65])
{
    unsigned char md[32];
    unsigned int mdlen;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* check_echo: r is /echo's answer for data[0..len). */
static void check_echo(const struct resp *r, const void *data, size_t len)
{
    char hex[65], want[160];
    sha256_hex(data, len, hex);
    snprintf(want, sizeof(want), "{\"length\":%zu,\"sha256\":\"%s\"}", len, hex);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, want);
}

/* check_pattern: a download's bytes. */
static void check_pattern(const struct resp *r, size_t n)
{
    assert_int_equal(r->body_len, n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)r->body[i] != TEST_HTTP_PATTERN(i))
            fail_msg("byte %zu differs", i);
}

static char *random_bytes(size_t n)
{
    char *p = malloc(n);
    uint64_t x = 0x9e3779b97f4a7c15u ^ n;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (char)x;
    }
    return p;
}

/* ---- tests ------------------------------------------------------------- */

static void test_json_and_headers(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_open(f);
    send_str(c, "GET /json HTTP/1.1\r\nHost: x\r\n\r\n");
    struct resp r;
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"ok\":true}");
    assert_non_null(strstr(r.head, "\r\nServer: speedy\r\n"));
    assert_non_null(strstr(r.head, "\r\nDate: "));
    assert_non_null(strstr(r.head, " GMT\r\n"));
    assert_non_null(strstr(r.head, "\r\nContent-Length: 11\r\n"));
    assert_false(r.close);
    resp_free(&r);
    client_close(c);
}

static void test_keepalive_sequential(void **state)
{
    struct fixture *f = *state;
    uint64_t before = stat_connections(f);
    struct client *c = client_open(f);
    struct resp r;
    for (int i = 0; i < 3; i++) {
        send_str(c, "GET /json HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_int_equal(read_resp(c, &r, 0), 0);
        assert_int_equal(r.status, 200);
        resp_free(&r);
        send_str(c, "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
        assert_int_equal(read_resp(c, &r, 0), 0);
        check_echo(&r, "hello", 5);
        resp_free(&r);
        send_str(c, "GET /download?n=70000&slice=4096 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_int_equal(read_resp(c, &r, 0), 0);
        check_pattern(&r, 70000);
        resp_free(&r);
    }
    send_str(c, "GET /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_true(r.close);
    resp_free(&r);
    assert_true(at_eof(c));
    client_close(c);
    assert_int_equal(stat_connections(f) - before, 1);
}

static void test_pipelining(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_open(f);
    /* One write, six requests; /async answers from another thread. */
    send_str(c, "GET /json HTTP/1.1\r\nHost: x\r\n\r\n"
                "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                "GET /async HTTP/1.1\r\nHost: x\r\n\r\n"
                "PUT /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                "3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n"
                "HEAD /download?n=12345 HTTP/1.1\r\nHost: x\r\n\r\n"
                "GET /download?n=300 HTTP/1.1\r\nHost: x\r\n\r\n");
    struct resp r;
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_string_equal(r.body, "{\"ok\":true}");
    resp_free(&r);
    assert_int_equal(read_resp(c, &r, 0), 0);
    check_echo(&r, "hello", 5);
    resp_free(&r);
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_string_equal(r.body, "{\"async\":true}");
    resp_free(&r);
    assert_int_equal(read_resp(c, &r, 0), 0);
    check_echo(&r, "abcde", 5);
    resp_free(&r);
    assert_int_equal(read_resp(c, &r, 1), 0);
    assert_int_equal(r.content_length, 12345);
    resp_free(&r);
    assert_int_equal(read_resp(c, &r, 0), 0);
    check_pattern(&r, 300);
    resp_free(&r);
    client_close(c);
}

static void test_expect_continue(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_open(f);
    size_t n = 100000;
    char *body = random_bytes(n);
    send_str(c, "PUT /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                "Content-Length: 100000\r\n\r\n");
    char line[128];
    assert_int_equal(read_line(c, line, sizeof(line)), 0);
    assert_string_equal(line, "HTTP/1.1 100 Continue");
    assert_int_equal(read_line(c, line, sizeof(line)), 0);
    assert_string_equal(line, "");
    send_bytes(c, body, n);
    struct resp r;
    assert_int_equal(read_resp(c, &r, 0), 0);
    check_echo(&r, body, n);
    resp_free(&r);
    /* chunked, with Expect too */
    send_str(c, "PUT /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                "Transfer-Encoding: chunked\r\n\r\n");
    assert_int_equal(read_line(c, line, sizeof(line)), 0);
    assert_string_equal(line, "HTTP/1.1 100 Continue");
    assert_int_equal(read_line(c, line, sizeof(line)), 0);
    send_str(c, "4\r\nabcd\r\n0\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    check_echo(&r, "abcd", 4);
    resp_free(&r);
    free(body);
    client_close(c);
}

static void test_early_reject(void **state)
{
    struct fixture *f = *state;
    struct resp r;
    /* The client waits for 100: it gets the 413 instead, and the connection closes. */
    struct client *c = client_open(f);
    send_str(c, "PUT /reject HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                "Content-Length: 10000000\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 413);
    assert_true(r.close);
    assert_non_null(strstr(r.body, "SIZE_INVALID"));
    resp_free(&r);
    assert_true(at_eof(c));
    client_close(c);
    /* A small body is drained and the connection kept. */
    c = client_open(f);
    send_str(c, "PUT /reject HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 413);
    assert_false(r.close);
    resp_free(&r);
    char *body = random_bytes(1000);
    send_bytes(c, body, 1000);
    free(body);
    send_str(c, "GET /json HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    client_close(c);
    /* A big body: close after the response, while the client is still sending. */
    c = client_open(f);
    send_str(c, "PUT /reject HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n");
    body = random_bytes(65536);
    send_bytes(c, body, 65536);
    free(body);
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 413);
    assert_true(r.close);
    resp_free(&r);
    /* ...and the server does not read the other 50 MB first: past
     * drain_max (1 MiB) and the socket buffers it closes, so sending fails. */
    body = random_bytes(65536);
    size_t sent = 65536;
    ssize_t n = 0;
    while (sent < 50000000 && (n = send(c->fd, body, 65536, MSG_NOSIGNAL)) > 0)
        sent += (size_t)n;
    free(body);
    assert_true(n < 0 && (errno == EPIPE || errno == ECONNRESET));
    fprintf(stderr, "  early 413 on a 50 MB body: the server closed after %zu bytes\n", sent);
    assert_true(sent < 16u << 20);
    client_close(c);
}

static void test_head(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_open(f);
    send_str(c, "HEAD /download?n=5000 HTTP/1.1\r\nHost: x\r\n\r\n");
    struct resp r;
    assert_int_equal(read_resp(c, &r, 1), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.content_length, 5000);
    resp_free(&r);
    send_str(c, "HEAD /json HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 1), 0);
    assert_int_equal(r.content_length, 11);
    resp_free(&r);
    /* No stray body bytes came before this response. */
    send_str(c, "GET /json HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_string_equal(r.body, "{\"ok\":true}");
    resp_free(&r);
    client_close(c);
}

/* expect_error: a request on a new connection gets 'status', a JSON error
 * body with 'code', "Connection: close", then the end of the connection. */
static void expect_error(struct fixture *f, const char *request, size_t len, int status,
                         const char *code)
{
    struct client *c = client_open(f);
    send_bytes(c, request, len);
    struct resp r;
    assert_int_equal(read_resp(c, &r, 0), 0);
    if (r.status != status)
        fail_msg("%.40s...: status %d, want %d", request, r.status, status);
    assert_true(r.close);
    assert_non_null(strstr(r.body, code));
    assert_non_null(strstr(r.head, "Content-Type: application/json"));
    assert_non_null(strstr(r.head, "X-Layer-Error: yes")); /* the configured error fields */
    resp_free(&r);
    assert_true(at_eof(c));
    client_close(c);
}

static void test_malformed_requests(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
        "PUT /echo HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        "PUT /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "PUT /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        "GET relative HTTP/1.1\r\n\r\n",
        "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_error(f, bad[i], strlen(bad[i]), 400, "UNSUPPORTED");
    const char *v2 = "GET / HTTP/2.0\r\n\r\n";
    expect_error(f, v2, strlen(v2), 505, "UNSUPPORTED");
    /* After a good request on the same connection, too. */
    struct client *c = client_open(f);
    send_str(c, "GET /json HTTP/1.1\r\n\r\nBAD REQUEST LINE\r\n\r\n");
    struct resp r;
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 400);
    resp_free(&r);
    assert_true(at_eof(c));
    client_close(c);
}

static void test_oversized_head(void **state)
{
    struct fixture *f = *state;
    size_t n = 70 << 10;
    char *req = malloc(n + 64);
    size_t off = (size_t)sprintf(req, "GET / HTTP/1.1\r\nX-Big: ");
    memset(req + off, 'a', n);
    off += n;
    off += (size_t)sprintf(req + off, "\r\n\r\n");
    expect_error(f, req, off, 431, "SIZE_INVALID");
    off = (size_t)sprintf(req, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < SPY_HTTP_MAX_HEADERS + 1; i++)
        off += (size_t)sprintf(req + off, "H%d: v\r\n", i);
    off += (size_t)sprintf(req + off, "\r\n");
    expect_error(f, req, off, 431, "SIZE_INVALID");
    free(req);
}

static void test_chunked_upload_pieces(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_open(f);
    size_t n = 300000;
    char *body = random_bytes(n);
    send_str(c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    /* chunks of growing odd sizes, the framing sent byte by byte at times */
    size_t off = 0, size = 1;
    while (off < n) {
        size_t k = n - off < size ? n - off : size;
        char line[32];
        int ll = snprintf(line, sizeof(line), "%zX;ext\r\n", k);
        if (size % 3 == 0)
            for (int i = 0; i < ll; i++)
                send_bytes(c, line + i, 1);
        else
            send_bytes(c, line, (size_t)ll);
        send_bytes(c, body + off, k);
        send_str(c, "\r\n");
        off += k;
        size = size * 3 + 1;
    }
    send_str(c, "0\r\nX-Trailer: yes\r\n\r\n");
    struct resp r;
    assert_int_equal(read_resp(c, &r, 0), 0);
    check_echo(&r, body, n);
    resp_free(&r);
    free(body);
    client_close(c);
}

static void test_empty_bodies(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_open(f);
    send_str(c, "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                "PUT /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                "PUT /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        struct resp r;
        assert_int_equal(read_resp(c, &r, 0), 0);
        check_echo(&r, "", 0);
        resp_free(&r);
    }
    client_close(c);
}

static void test_malformed_chunked_body(void **state)
{
    struct fixture *f = *state;
    uint64_t aborts = atomic_load(&f->ctx.aborts);
    struct client *c = client_open(f);
    send_str(c, "PUT /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5\r\nhelloXX\r\n");
    struct resp r;
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 400);
    assert_true(r.close);
    resp_free(&r);
    assert_true(at_eof(c));
    client_close(c);
    assert_true(wait_aborts(f, aborts + 1));
    assert_int_equal(atomic_load(&f->ctx.last_abort_status), SPY_EPROTO);
}

static void test_downloads(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_open(f);
    struct resp r;
    send_str(c, "GET /download?n=1000000&chunked=1&slice=33333 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_true(r.chunked);
    assert_int_equal(r.content_length, -1);
    check_pattern(&r, 1000000);
    resp_free(&r);
    send_str(c, "GET /download?n=3000000 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.content_length, 3000000);
    check_pattern(&r, 3000000);
    resp_free(&r);
    send_str(c, "GET /download?n=0 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.content_length, 0);
    resp_free(&r);
    client_close(c);
}

static void test_broken_transfers(void **state)
{
    struct fixture *f = *state;
    struct resp r;
    /* Content-Length: the body stops short, then the connection ends. */
    struct client *c = client_open(f);
    send_str(c, "GET /download?n=1000000&fail_at=300000 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), -1);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 300000);
    resp_free(&r);
    client_close(c);
    /* chunked: no last chunk, then the end. */
    c = client_open(f);
    send_str(c, "GET /download?n=1000000&fail_at=300000&chunked=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), -1);
    assert_int_equal(r.body_len, 300000);
    resp_free(&r);
    client_close(c);
    /* failing before any response: 500 and close. */
    c = client_open(f);
    send_str(c, "GET /fail HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 500);
    assert_true(r.close);
    resp_free(&r);
    assert_true(at_eof(c));
    client_close(c);
}

static void test_http10(void **state)
{
    struct fixture *f = *state;
    struct resp r;
    struct client *c = client_open(f);
    send_str(c, "GET /json HTTP/1.0\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_true(r.close);
    resp_free(&r);
    assert_true(at_eof(c));
    client_close(c);
    c = client_open(f);
    send_str(c, "GET /json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_non_null(strstr(r.head, "Connection: keep-alive\r\n"));
    resp_free(&r);
    /* a length-less stream to a 1.0 client: no chunking, ends with the connection */
    send_str(c, "GET /download?n=100000&chunked=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_false(r.chunked);
    assert_true(r.close);
    check_pattern(&r, 100000);
    resp_free(&r);
    client_close(c);
}

static void test_disconnect_mid_upload(void **state)
{
    struct fixture *f = *state;
    uint64_t aborts = atomic_load(&f->ctx.aborts);
    struct client *c = client_open(f);
    send_str(c, "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n");
    char *body = random_bytes(1 << 20);
    send_bytes(c, body, 1 << 20);
    free(body);
    client_close(c);
    assert_true(wait_aborts(f, aborts + 1));
    assert_int_equal(atomic_load(&f->ctx.last_abort_status), SPY_ECLOSED);
    usleep(100000); /* a second on_abort would show up as a violation or a count */
    assert_int_equal(atomic_load(&f->ctx.aborts), aborts + 1);
}

static void test_backpressure(void **state)
{
    struct fixture *f = *state;
    size_t total = 64u << 20;
    struct client *c = client_open(f);
    char head[128];
    snprintf(head, sizeof(head), "PUT /hold HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
             total);
    send_str(c, head);
    char *body = random_bytes(total);
    /* Send without blocking until the socket stays unwritable: the server
     * paused at the first slice, so only the buffers in between fill. */
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    size_t sent = 0;
    for (;;) {
        ssize_t n = send(c->fd, body + sent, total - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        struct pollfd p = {c->fd, POLLOUT, 0};
        if (poll(&p, 1, 500) == 0)
            break;
    }
    for (int i = 0; i < 500 && !test_http_hold_paused(&f->ctx); i++)
        usleep(10000);
    assert_true(test_http_hold_paused(&f->ctx));
    print_message("back-pressure: %zu of %zu bytes accepted while paused\n", sent, total);
    assert_true(sent > 0 && sent < (16u << 20));
    assert_int_equal(test_http_release(&f->ctx), 0);
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK);
    send_bytes(c, body + sent, total - sent);
    struct resp r;
    assert_int_equal(read_resp(c, &r, 0), 0);
    check_echo(&r, body, total);
    resp_free(&r);
    free(body);
    client_close(c);
}

static void test_slow_consumer(void **state)
{
    struct fixture *f = *state;
    uint64_t slices = atomic_load(&f->ctx.slices);
    size_t n = 2u << 20;
    char *body = random_bytes(n);
    struct client *c = client_open(f);
    send_str(c, "PATCH /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n");
    send_bytes(c, body, n);
    struct resp r;
    assert_int_equal(read_resp(c, &r, 0), 0);
    check_echo(&r, body, n);
    resp_free(&r);
    assert_true(atomic_load(&f->ctx.slices) - slices >= 2);
    free(body);
    client_close(c);
}

static void test_not_found(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_open(f);
    send_str(c, "DELETE /nothing HTTP/1.1\r\nHost: x\r\n\r\n");
    struct resp r;
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    client_close(c);
}

/* ---- short timeouts (300 ms) and max_body 1 MiB -------------------------- */

static void test_stalled_head(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_open(f);
    send_str(c, "GET /json HTTP/1.1\r\nHost: x\r\n");
    struct resp r;
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 408);
    assert_true(r.close);
    resp_free(&r);
    assert_true(at_eof(c));
    client_close(c);
    /* connected, never a byte: closed without a response */
    c = client_open(f);
    assert_true(at_eof(c));
    client_close(c);
}

static void test_stalled_body(void **state)
{
    struct fixture *f = *state;
    uint64_t aborts = atomic_load(&f->ctx.aborts);
    struct client *c = client_open(f);
    send_str(c, "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789");
    struct resp r;
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 408);
    resp_free(&r);
    assert_true(at_eof(c));
    client_close(c);
    assert_true(wait_aborts(f, aborts + 1));
    assert_int_equal(atomic_load(&f->ctx.last_abort_status), SPY_ETIMEDOUT);
}

static void test_idle_keepalive_closes(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_open(f);
    send_str(c, "GET /json HTTP/1.1\r\nHost: x\r\n\r\n");
    struct resp r;
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_true(at_eof(c));
    client_close(c);
}

static void test_steady_trickle_survives(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_open(f);
    send_str(c, "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n");
    /* 12 bytes, one per 100 ms: 1.2 s in all, four times the idle timeout */
    for (int i = 0; i < 12; i++) {
        usleep(100000);
        send_bytes(c, &"abcdefghijkl"[i], 1);
    }
    struct resp r;
    assert_int_equal(read_resp(c, &r, 0), 0);
    check_echo(&r, "abcdefghijkl", 12);
    resp_free(&r);
    client_close(c);
}

static void test_max_body(void **state)
{
    struct fixture *f = *state;
    uint64_t aborts = atomic_load(&f->ctx.aborts);
    const char *big = "PUT /echo HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n";
    expect_error(f, big, strlen(big), 413, "SIZE_INVALID");
    assert_int_equal(atomic_load(&f->ctx.aborts), aborts); /* the handler never saw it */
    struct client *c = client_open(f);
    send_str(c, "PUT /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    char *body = random_bytes(1 << 20);
    send_str(c, "100000\r\n");
    send_bytes(c, body, 1 << 20);
    send_str(c, "\r\n10\r\n0123456789abcdef\r\n");
    free(body);
    struct resp r;
    assert_int_equal(read_resp(c, &r, 0), 0);
    assert_int_equal(r.status, 413);
    resp_free(&r);
    client_close(c);
    assert_true(wait_aborts(f, aborts + 1));
    assert_int_equal(atomic_load(&f->ctx.last_abort_status), SPY_ERANGE);
}

/* ---- stop ---------------------------------------------------------------- */

static void test_stop_aborts_held_request(void **state)
{
    (void)state;
    struct fixture *f = start(10000, 0);
    struct client *idle = client_open(f);
    send_str(idle, "GET /json HTTP/1.1\r\nHost: x\r\n\r\n");
    struct resp r;
    assert_int_equal(read_resp(idle, &r, 0), 0);
    resp_free(&r);
    struct client *c = client_open(f);
    send_str(c, "PUT /hold HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n");
    char *body = random_bytes(100000);
    send_bytes(c, body, 100000);
    free(body);
    for (int i = 0; i < 500 && !test_http_hold_paused(&f->ctx); i++)
        usleep(10000);
    assert_true(test_http_hold_paused(&f->ctx));
    test_http_ctx_fini(&f->ctx);
    spy_http_server_stop(f->srv); /* waits stop_grace_ms, then aborts */
    assert_int_equal(atomic_load(&f->ctx.aborts), 1);
    assert_int_equal(atomic_load(&f->ctx.last_abort_status), SPY_EABORTED);
    assert_int_equal(atomic_load(&f->ctx.violations), 0);
    assert_true(at_eof(idle));
    assert_true(at_eof(c));
    client_close(idle);
    client_close(c);
    free(f);
}

int main(void)
{
    const struct CMUnitTest main_tests[] = {
        cmocka_unit_test(test_json_and_headers),
        cmocka_unit_test(test_keepalive_sequential),
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_early_reject),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_malformed_requests),
        cmocka_unit_test(test_oversized_head),
        cmocka_unit_test(test_chunked_upload_pieces),
        cmocka_unit_test(test_empty_bodies),
        cmocka_unit_test(test_malformed_chunked_body),
        cmocka_unit_test(test_downloads),
        cmocka_unit_test(test_broken_transfers),
        cmocka_unit_test(test_http10),
        cmocka_unit_test(test_disconnect_mid_upload),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_slow_consumer),
        cmocka_unit_test(test_not_found),
    };
    const struct CMUnitTest short_tests[] = {
        cmocka_unit_test(test_stalled_head),
        cmocka_unit_test(test_stalled_body),
        cmocka_unit_test(test_idle_keepalive_closes),
        cmocka_unit_test(test_steady_trickle_survives),
        cmocka_unit_test(test_max_body),
    };
    const struct CMUnitTest stop_tests[] = {
        cmocka_unit_test(test_stop_aborts_held_request),
    };
    int failed = cmocka_run_group_tests_name("main", main_tests, setup, teardown);
    failed +=
        cmocka_run_group_tests_name("short_timeouts", short_tests, setup_short_timeouts, teardown);
    failed += cmocka_run_group_tests_name("stop", stop_tests, NULL, NULL);
    return failed;
}
