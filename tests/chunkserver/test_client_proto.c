/* test_client_proto.c - spy_client against a scripted fake server.
 *
 * The test holds the server end of a real 127.0.0.1 TCP connection. Most
 * tests are single-threaded: the response is written into the server end
 * before the client call (it waits in the socket buffer), the call runs, and
 * then the test reads what the client sent and checks it byte by byte. Only
 * the multi-frame put uses a thread, to drain more than a socket buffer. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/spy_client.h"
#include "common/status.h"

#define CLIENT_TIMEOUT_MS 2000

struct fake {
    int lfd;              /* listening socket */
    int sfd;              /* server end of the connection */
    struct spy_client *c; /* client end */
    uint8_t payload[SPY_DATA_MAX];
};

/* listen_any: a listening socket on an ephemeral port of 'addr' (v4 or v6). */
static int listen_any(int family, int *port)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*a);
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                     : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* fake_connect: a client connected to a fresh listener, and the accepted end
 * (with a receive timeout so a test that expects bytes never hangs). */
static struct fake *fake_connect(int family, const char *host, int timeout_ms)
{
    struct fake *fk = calloc(1, sizeof(*fk));
    assert_non_null(fk);
    int port;
    fk->lfd = listen_any(family, &port);
    assert_true(fk->lfd >= 0);
    assert_int_equal(spy_client_connect(host, port, timeout_ms, &fk->c), SPY_OK);
    fk->sfd = accept(fk->lfd, NULL, NULL);
    assert_true(fk->sfd >= 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fk->sfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fk;
}

static int setup(void **state)
{
    *state = fake_connect(AF_INET, "127.0.0.1", CLIENT_TIMEOUT_MS);
    return 0;
}

static int teardown(void **state)
{
    struct fake *fk = *state;
    spy_client_close(fk->c);
    if (fk->sfd >= 0)
        close(fk->sfd);
    close(fk->lfd);
    free(fk);
    return 0;
}

/* send_raw: writes bytes into the server end (they wait for the client). */
static void send_raw(struct fake *fk, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t w = send(fk->sfd, p, len, MSG_NOSIGNAL);
        assert_true(w > 0);
        p += w;
        len -= (size_t)w;
    }
}

/* reply: writes one response frame (RESPONSE flag set) from the server. */
static void reply(struct fake *fk, uint8_t op, int status, uint64_t req_id, const void *payload,
                  uint32_t len)
{
    uint8_t hdr[SPY_FRAME_HDR_SIZE];
    struct spy_frame f = {
        .op = op, .flags = SPY_FRAME_RESPONSE, .status = status, .req_id = req_id, .len = len};
    spy_frame_encode(&f, hdr);
    send_raw(fk, hdr, sizeof(hdr));
    if (len > 0)
        send_raw(fk, payload, len);
}

static void recv_exact(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t r = recv(fd, p, len, 0);
        assert_true(r > 0);
        p += r;
        len -= (size_t)r;
    }
}

/* expect_request: reads one request frame the client sent and checks its
 * op, req_id and payload size; the payload lands in fk->payload. */
static struct spy_frame expect_request(struct fake *fk, uint8_t op, uint64_t req_id, uint32_t len)
{
    uint8_t hdr[SPY_FRAME_HDR_SIZE];
    struct spy_frame f;
    recv_exact(fk->sfd, hdr, sizeof(hdr));
    assert_int_equal(spy_frame_decode(hdr, &f), SPY_OK);
    assert_int_equal(f.op, op);
    assert_int_equal(f.req_id, req_id);
    assert_int_equal(f.len, len);
    assert_int_equal(f.status, 0);
    assert_int_equal(f.flags & SPY_FRAME_RESPONSE, 0);
    recv_exact(fk->sfd, fk->payload, f.len);
    return f;
}

/* expect_nothing_more: the client sent nothing beyond what was read. */
static void expect_nothing_more(struct fake *fk)
{
    uint8_t b;
    assert_int_equal(recv(fk->sfd, &b, 1, MSG_DONTWAIT), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

static void test_ping_ids_increment(void **state)
{
    struct fake *fk = *state;
    for (uint64_t id = 1; id <= 3; id++) {
        reply(fk, SPY_OP_PING, SPY_OK, id, NULL, 0);
        assert_int_equal(spy_client_ping(fk->c), SPY_OK);
        expect_request(fk, SPY_OP_PING, id, 0);
    }
    assert_false(spy_client_broken(fk->c));
}

/* The exact bytes of a PING request, as docs/protocol.md shows them. */
static void test_ping_wire_bytes(void **state)
{
    struct fake *fk = *state;
    static const uint8_t want[SPY_FRAME_HDR_SIZE] = {
        0x53, 0x59, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x5d, 0xe8, 0x50};
    static const uint8_t resp[SPY_FRAME_HDR_SIZE] = {
        0x53, 0x59, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x51, 0xe5, 0xae};
    send_raw(fk, resp, sizeof(resp));
    assert_int_equal(spy_client_ping(fk->c), SPY_OK);
    uint8_t got[SPY_FRAME_HDR_SIZE];
    recv_exact(fk->sfd, got, sizeof(got));
    assert_memory_equal(got, want, sizeof(want));
}

static void test_wrong_req_id_breaks(void **state)
{
    struct fake *fk = *state;
    reply(fk, SPY_OP_PING, SPY_OK, 7, NULL, 0);
    assert_int_equal(spy_client_ping(fk->c), SPY_EPROTO);
    assert_true(spy_client_broken(fk->c));
    expect_request(fk, SPY_OP_PING, 1, 0);
    assert_int_equal(spy_client_ping(fk->c), SPY_ECLOSED);
    expect_nothing_more(fk);
}

static void test_wrong_op_breaks(void **state)
{
    struct fake *fk = *state;
    reply(fk, SPY_OP_STATUS, SPY_OK, 1, NULL, 0);
    assert_int_equal(spy_client_ping(fk->c), SPY_EPROTO);
    assert_true(spy_client_broken(fk->c));
}

static void test_bad_header_crc_breaks(void **state)
{
    struct fake *fk = *state;
    uint8_t hdr[SPY_FRAME_HDR_SIZE];
    struct spy_frame f = {.op = SPY_OP_PING, .flags = SPY_FRAME_RESPONSE, .req_id = 1};
    spy_frame_encode(&f, hdr);
    hdr[23] ^= 1;
    send_raw(fk, hdr, sizeof(hdr));
    assert_int_equal(spy_client_ping(fk->c), SPY_EPROTO);
    assert_true(spy_client_broken(fk->c));
}

static void test_missing_response_flag_breaks(void **state)
{
    struct fake *fk = *state;
    uint8_t hdr[SPY_FRAME_HDR_SIZE];
    struct spy_frame f = {.op = SPY_OP_PING, .flags = 0, .req_id = 1};
    spy_frame_encode(&f, hdr);
    send_raw(fk, hdr, sizeof(hdr));
    assert_int_equal(spy_client_ping(fk->c), SPY_EPROTO);
    assert_true(spy_client_broken(fk->c));
}

static void test_server_eproto_req_id_zero(void **state)
{
    struct fake *fk = *state;
    reply(fk, SPY_OP_PING, SPY_EPROTO, 0, NULL, 0);
    assert_int_equal(spy_client_ping(fk->c), SPY_EPROTO);
    assert_true(spy_client_broken(fk->c));
}

static void test_peer_close(void **state)
{
    struct fake *fk = *state;
    close(fk->sfd);
    fk->sfd = -1;
    int rc = spy_client_ping(fk->c);
    assert_true(rc == SPY_ECLOSED || rc == SPY_EIO);
    assert_true(spy_client_broken(fk->c));
}

static void test_timeout(void **state)
{
    (void)state;
    struct fake *fk = fake_connect(AF_INET, "127.0.0.1", 200);
    assert_int_equal(spy_client_ping(fk->c), SPY_ETIMEDOUT);
    assert_true(spy_client_broken(fk->c));
    void *st = fk;
    teardown(&st);
}

static void test_stat_ok_and_not_found(void **state)
{
    struct fake *fk = *state;
    struct spy_stat_resp want = {
        .fid = 42, .len = 1234, .chunk_id = 3, .offset = 4096, .timestamp = 1700000000};
    uint8_t payload[SPY_STAT_RESP_PAYLOAD];
    spy_stat_resp_encode(&want, payload);
    reply(fk, SPY_OP_STAT, SPY_OK, 1, payload, sizeof(payload));
    struct spy_stat_resp got;
    assert_int_equal(spy_client_stat(fk->c, 42, &got), SPY_OK);
    assert_memory_equal(&got, &want, sizeof(got));
    expect_request(fk, SPY_OP_STAT, 1, SPY_FID_PAYLOAD);
    assert_int_equal(spy_get_u64(fk->payload), 42);

    reply(fk, SPY_OP_STAT, SPY_ENOTFOUND, 2, NULL, 0);
    assert_int_equal(spy_client_stat(fk->c, 43, &got), SPY_ENOTFOUND);
    assert_false(spy_client_broken(fk->c));
}

static void test_stat_wrong_fid_or_size(void **state)
{
    struct fake *fk = *state;
    struct spy_stat_resp other = {.fid = 99, .len = 1};
    uint8_t payload[SPY_STAT_RESP_PAYLOAD];
    spy_stat_resp_encode(&other, payload);
    reply(fk, SPY_OP_STAT, SPY_OK, 1, payload, sizeof(payload));
    struct spy_stat_resp got;
    assert_int_equal(spy_client_stat(fk->c, 42, &got), SPY_EPROTO);
    assert_true(spy_client_broken(fk->c));

    struct fake *fk2 = fake_connect(AF_INET, "127.0.0.1", CLIENT_TIMEOUT_MS);
    reply(fk2, SPY_OP_STAT, SPY_OK, 1, payload, 8);
    assert_int_equal(spy_client_stat(fk2->c, 99, &got), SPY_EPROTO);
    void *st = fk2;
    teardown(&st);
}

static void test_error_with_payload_breaks(void **state)
{
    struct fake *fk = *state;
    uint8_t junk[8] = {0};
    reply(fk, SPY_OP_DELETE, SPY_ENOTFOUND, 1, junk, 0);
    assert_int_equal(spy_client_delete(fk->c, 5), SPY_ENOTFOUND);
    reply(fk, SPY_OP_STAT, SPY_ENOTFOUND, 2, junk, sizeof(junk));
    struct spy_stat_resp got;
    assert_int_equal(spy_client_stat(fk->c, 5, &got), SPY_EPROTO);
    assert_true(spy_client_broken(fk->c));
}

static void test_status_json(void **state)
{
    struct fake *fk = *state;
    const char *text = "{\"objects\":3}";
    reply(fk, SPY_OP_STATUS, SPY_OK, 1, text, (uint32_t)strlen(text));
    char *json = NULL;
    assert_int_equal(spy_client_status(fk->c, &json), SPY_OK);
    assert_string_equal(json, text);
    free(json);
    expect_request(fk, SPY_OP_STATUS, 1, 0);
}

/* ---- GET ---- */

struct collect {
    uint8_t *buf;
    size_t len, cap;
    int calls;
    int fail_at; /* call number whose return is -99, 0 = never */
};

static int collect_sink(void *arg, const uint8_t *data, size_t n)
{
    struct collect *col = arg;
    col->calls++;
    if (col->fail_at == col->calls)
        return -99;
    assert_true(col->len + n <= col->cap);
    memcpy(col->buf + col->len, data, n);
    col->len += n;
    return 0;
}

/* reply_get: a whole GET stream: the range announcement, 'body' split into
 * DATA frames of 'piece' bytes, and END carrying 'status' and 'crc'. */
static void reply_get(struct fake *fk, uint64_t req_id, uint64_t object_len, uint64_t offset,
                      const uint8_t *body, uint64_t len, uint32_t piece, int status, uint32_t crc)
{
    uint8_t payload[SPY_GET_RESP_PAYLOAD];
    struct spy_get_resp gr = {.object_len = object_len, .offset = offset, .length = len};
    spy_get_resp_encode(&gr, payload);
    reply(fk, SPY_OP_GET, SPY_OK, req_id, payload, sizeof(payload));
    for (uint64_t off = 0; off < len; off += piece) {
        uint32_t n = len - off < piece ? (uint32_t)(len - off) : piece;
        reply(fk, SPY_OP_DATA, SPY_OK, req_id, body + off, n);
    }
    uint8_t end[SPY_END_RESP_PAYLOAD];
    spy_put_u32(end, crc);
    reply(fk, SPY_OP_END, status, req_id, end, sizeof(end));
}

static void test_get_range_stream(void **state)
{
    struct fake *fk = *state;
    uint8_t object[5000];
    for (size_t i = 0; i < sizeof(object); i++)
        object[i] = (uint8_t)(i * 7 + 3);
    const uint8_t *body = object + 100;
    reply_get(fk, 1, sizeof(object), 100, body, 4000, 1000, SPY_OK, spy_crc32c(0, body, 4000));
    uint8_t out[4000];
    struct collect col = {.buf = out, .cap = sizeof(out)};
    uint64_t object_len = 0;
    assert_int_equal(spy_client_get(fk->c, 9, 100, 4000, collect_sink, &col, &object_len), SPY_OK);
    assert_int_equal(object_len, sizeof(object));
    assert_int_equal(col.calls, 4);
    assert_int_equal(col.len, 4000);
    assert_memory_equal(out, body, 4000);
    expect_request(fk, SPY_OP_GET, 1, SPY_GET_REQ_PAYLOAD);
    struct spy_get_req req;
    assert_int_equal(spy_get_req_decode(fk->payload, SPY_GET_REQ_PAYLOAD, &req), SPY_OK);
    assert_int_equal(req.fid, 9);
    assert_int_equal(req.offset, 100);
    assert_int_equal(req.length, 4000);

    /* length 0 means "to the end": the announced length is the rest. */
    reply_get(fk, 2, sizeof(object), 4990, object + 4990, 10, 1000, SPY_OK,
              spy_crc32c(0, object + 4990, 10));
    col = (struct collect){.buf = out, .cap = sizeof(out)};
    assert_int_equal(spy_client_get(fk->c, 9, 4990, 0, collect_sink, &col, NULL), SPY_OK);
    assert_int_equal(col.len, 10);
}

static void test_get_crc_mismatch_is_corrupt(void **state)
{
    struct fake *fk = *state;
    uint8_t body[10] = "abcdefghij";
    reply_get(fk, 1, 10, 0, body, 10, 4, SPY_OK, spy_crc32c(0, body, 10) ^ 1);
    assert_int_equal(spy_client_get(fk->c, 1, 0, 0, NULL, NULL, NULL), SPY_ECORRUPT);
    assert_false(spy_client_broken(fk->c));
    reply(fk, SPY_OP_PING, SPY_OK, 2, NULL, 0);
    assert_int_equal(spy_client_ping(fk->c), SPY_OK);
}

/* A corrupt block found mid-stream: END carries ECORRUPT after some bytes. */
static void test_get_end_error_status(void **state)
{
    struct fake *fk = *state;
    uint8_t body[10] = "abcdefghij";
    uint8_t payload[SPY_GET_RESP_PAYLOAD];
    struct spy_get_resp gr = {.object_len = 10, .offset = 0, .length = 10};
    spy_get_resp_encode(&gr, payload);
    reply(fk, SPY_OP_GET, SPY_OK, 1, payload, sizeof(payload));
    reply(fk, SPY_OP_DATA, SPY_OK, 1, body, 4);
    uint8_t end[4];
    spy_put_u32(end, spy_crc32c(0, body, 4));
    reply(fk, SPY_OP_END, SPY_ECORRUPT, 1, end, sizeof(end));
    assert_int_equal(spy_client_get(fk->c, 1, 0, 0, NULL, NULL, NULL), SPY_ECORRUPT);
    assert_false(spy_client_broken(fk->c));
}

static void test_get_error_status(void **state)
{
    struct fake *fk = *state;
    reply(fk, SPY_OP_GET, SPY_ERANGE, 1, NULL, 0);
    assert_int_equal(spy_client_get(fk->c, 1, 50, 0, NULL, NULL, NULL), SPY_ERANGE);
    reply(fk, SPY_OP_GET, SPY_ENOTFOUND, 2, NULL, 0);
    assert_int_equal(spy_client_get(fk->c, 1, 0, 0, NULL, NULL, NULL), SPY_ENOTFOUND);
    assert_false(spy_client_broken(fk->c));
}

static void test_get_too_many_bytes_breaks(void **state)
{
    struct fake *fk = *state;
    uint8_t body[10] = "abcdefghij";
    /* announces 5 bytes, sends 10 */
    uint8_t payload[SPY_GET_RESP_PAYLOAD];
    struct spy_get_resp gr = {.object_len = 10, .offset = 0, .length = 5};
    spy_get_resp_encode(&gr, payload);
    reply(fk, SPY_OP_GET, SPY_OK, 1, payload, sizeof(payload));
    reply(fk, SPY_OP_DATA, SPY_OK, 1, body, 10);
    assert_int_equal(spy_client_get(fk->c, 1, 0, 5, NULL, NULL, NULL), SPY_EPROTO);
    assert_true(spy_client_broken(fk->c));
}

static void test_get_short_stream_breaks(void **state)
{
    struct fake *fk = *state;
    uint8_t body[10] = "abcdefghij";
    uint8_t payload[SPY_GET_RESP_PAYLOAD];
    struct spy_get_resp gr = {.object_len = 10, .offset = 0, .length = 10};
    spy_get_resp_encode(&gr, payload);
    reply(fk, SPY_OP_GET, SPY_OK, 1, payload, sizeof(payload));
    reply(fk, SPY_OP_DATA, SPY_OK, 1, body, 6);
    uint8_t end[4];
    spy_put_u32(end, spy_crc32c(0, body, 6));
    reply(fk, SPY_OP_END, SPY_OK, 1, end, sizeof(end));
    assert_int_equal(spy_client_get(fk->c, 1, 0, 0, NULL, NULL, NULL), SPY_EPROTO);
    assert_true(spy_client_broken(fk->c));
}

static void test_get_other_range_breaks(void **state)
{
    struct fake *fk = *state;
    uint8_t body[10] = "abcdefghij";
    reply_get(fk, 1, 10, 0, body, 10, 10, SPY_OK, spy_crc32c(0, body, 10));
    assert_int_equal(spy_client_get(fk->c, 1, 2, 0, NULL, NULL, NULL), SPY_EPROTO);
    assert_true(spy_client_broken(fk->c));
}

static void test_get_sink_abort_breaks(void **state)
{
    struct fake *fk = *state;
    uint8_t body[10] = "abcdefghij";
    reply_get(fk, 1, 10, 0, body, 10, 3, SPY_OK, spy_crc32c(0, body, 10));
    uint8_t out[10];
    struct collect col = {.buf = out, .cap = sizeof(out), .fail_at = 2};
    assert_int_equal(spy_client_get(fk->c, 1, 0, 0, collect_sink, &col, NULL), -99);
    assert_int_equal(col.calls, 2);
    assert_true(spy_client_broken(fk->c));
}

/* ---- PUT ---- */

static void test_put_small(void **state)
{
    struct fake *fk = *state;
    const char *body = "hello, chunkserver";
    size_t len = strlen(body);
    /* The acknowledgement is queued only after the data went out: queued
     * earlier it would be an (invalid) early answer. */
    assert_int_equal(spy_client_put_begin(fk->c, 77, len), SPY_OK);
    assert_int_equal(spy_client_put_data(fk->c, body, len), SPY_OK);
    reply(fk, SPY_OP_PUT, SPY_OK, 1, NULL, 0);
    assert_int_equal(spy_client_put_end(fk->c), SPY_OK);
    expect_request(fk, SPY_OP_PUT, 1, SPY_PUT_REQ_PAYLOAD);
    struct spy_put_req pr;
    assert_int_equal(spy_put_req_decode(fk->payload, SPY_PUT_REQ_PAYLOAD, &pr), SPY_OK);
    assert_int_equal(pr.fid, 77);
    assert_int_equal(pr.max_len, len);
    expect_request(fk, SPY_OP_DATA, 1, (uint32_t)len);
    assert_memory_equal(fk->payload, body, len);
    struct spy_frame f = expect_request(fk, SPY_OP_END, 1, SPY_END_REQ_PAYLOAD);
    assert_int_equal(f.flags, 0);
    struct spy_end_req er;
    assert_int_equal(spy_end_req_decode(fk->payload, SPY_END_REQ_PAYLOAD, &er), SPY_OK);
    assert_int_equal(er.total_len, len);
    assert_int_equal(er.crc, spy_crc32c(0, body, len));
    expect_nothing_more(fk);
}

static void test_put_empty(void **state)
{
    struct fake *fk = *state;
    reply(fk, SPY_OP_PUT, SPY_OK, 1, NULL, 0);
    assert_int_equal(spy_client_put(fk->c, 78, NULL, 0), SPY_OK);
    expect_request(fk, SPY_OP_PUT, 1, SPY_PUT_REQ_PAYLOAD);
    expect_request(fk, SPY_OP_END, 1, SPY_END_REQ_PAYLOAD);
    struct spy_end_req er;
    assert_int_equal(spy_end_req_decode(fk->payload, SPY_END_REQ_PAYLOAD, &er), SPY_OK);
    assert_int_equal(er.total_len, 0);
    assert_int_equal(er.crc, 0);
}

/* The early-error rule: once an error response is waiting, no DATA is sent,
 * later data calls return it, and END goes out with ABORT and no response is
 * awaited; the next request then uses the connection normally. */
static void test_put_early_error(void **state)
{
    struct fake *fk = *state;
    assert_int_equal(spy_client_put_begin(fk->c, 5, 100), SPY_OK);
    reply(fk, SPY_OP_PUT, SPY_EEXISTS, 1, NULL, 0);
    assert_int_equal(spy_client_put_data(fk->c, "abc", 3), SPY_EEXISTS);
    assert_int_equal(spy_client_put_data(fk->c, "def", 3), SPY_EEXISTS);
    assert_int_equal(spy_client_put_end(fk->c), SPY_EEXISTS);
    assert_false(spy_client_broken(fk->c));
    expect_request(fk, SPY_OP_PUT, 1, SPY_PUT_REQ_PAYLOAD);
    struct spy_frame f = expect_request(fk, SPY_OP_END, 1, SPY_END_REQ_PAYLOAD);
    assert_int_equal(f.flags, SPY_FRAME_ABORT);
    expect_nothing_more(fk);

    reply(fk, SPY_OP_PING, SPY_OK, 2, NULL, 0);
    assert_int_equal(spy_client_ping(fk->c), SPY_OK);
    expect_request(fk, SPY_OP_PING, 2, 0);
}

/* Whole-buffer put: an error before the first DATA frame stops it at once. */
static void test_put_whole_early_error(void **state)
{
    struct fake *fk = *state;
    /* The response is queued before the call; put sends PUT, then peeks and
     * finds it before the first DATA frame. */
    reply(fk, SPY_OP_PUT, SPY_ENOSPC, 1, NULL, 0);
    assert_int_equal(spy_client_put(fk->c, 5, "abc", 3), SPY_ENOSPC);
    expect_request(fk, SPY_OP_PUT, 1, SPY_PUT_REQ_PAYLOAD);
    struct spy_frame f = expect_request(fk, SPY_OP_END, 1, SPY_END_REQ_PAYLOAD);
    assert_int_equal(f.flags, SPY_FRAME_ABORT);
    expect_nothing_more(fk);
}

static void test_put_abort(void **state)
{
    struct fake *fk = *state;
    assert_int_equal(spy_client_put_begin(fk->c, 6, 100), SPY_OK);
    assert_int_equal(spy_client_put_data(fk->c, "abc", 3), SPY_OK);
    reply(fk, SPY_OP_PUT, SPY_EABORTED, 1, NULL, 0);
    assert_int_equal(spy_client_put_abort(fk->c), SPY_OK);
    assert_false(spy_client_broken(fk->c));
    expect_request(fk, SPY_OP_PUT, 1, SPY_PUT_REQ_PAYLOAD);
    expect_request(fk, SPY_OP_DATA, 1, 3);
    struct spy_frame f = expect_request(fk, SPY_OP_END, 1, SPY_END_REQ_PAYLOAD);
    assert_int_equal(f.flags, SPY_FRAME_ABORT);
}

static void test_put_ack_before_end_breaks(void **state)
{
    struct fake *fk = *state;
    assert_int_equal(spy_client_put_begin(fk->c, 6, 100), SPY_OK);
    reply(fk, SPY_OP_PUT, SPY_OK, 1, NULL, 0);
    assert_int_equal(spy_client_put_data(fk->c, "abc", 3), SPY_EPROTO);
    assert_true(spy_client_broken(fk->c));
}

static void test_put_misuse(void **state)
{
    struct fake *fk = *state;
    assert_int_equal(spy_client_put_data(fk->c, "abc", 3), SPY_EINVAL);
    assert_int_equal(spy_client_put_end(fk->c), SPY_EINVAL);
    assert_int_equal(spy_client_put_abort(fk->c), SPY_EINVAL);
    assert_int_equal(spy_client_put_begin(fk->c, 6, 100), SPY_OK);
    assert_int_equal(spy_client_ping(fk->c), SPY_EINVAL);
    assert_int_equal(spy_client_put_begin(fk->c, 7, 100), SPY_EINVAL);
    assert_false(spy_client_broken(fk->c));
}

/* The fake server side of a large put: reads PUT, DATA... and END, records
 * the DATA sizes and the body's crc, then acknowledges. */
struct drain {
    struct fake *fk;
    uint32_t sizes[8];
    int frames;
    uint64_t total;
    uint32_t crc;
    struct spy_end_req end;
};

static void *drain_put(void *arg)
{
    struct drain *d = arg;
    uint8_t hdr[SPY_FRAME_HDR_SIZE];
    struct spy_frame f;
    do {
        recv_exact(d->fk->sfd, hdr, sizeof(hdr));
        if (spy_frame_decode(hdr, &f) != SPY_OK)
            return NULL;
        recv_exact(d->fk->sfd, d->fk->payload, f.len);
        if (f.op == SPY_OP_DATA && d->frames < 8) {
            d->sizes[d->frames++] = f.len;
            d->total += f.len;
            d->crc = spy_crc32c(d->crc, d->fk->payload, f.len);
        }
    } while (f.op != SPY_OP_END);
    spy_end_req_decode(d->fk->payload, f.len, &d->end);
    reply(d->fk, SPY_OP_PUT, SPY_OK, f.req_id, NULL, 0);
    return NULL;
}

static void test_put_splits_data_frames(void **state)
{
    struct fake *fk = *state;
    size_t len = 2 * (size_t)SPY_DATA_MAX + 5;
    uint8_t *body = malloc(len);
    assert_non_null(body);
    for (size_t i = 0; i < len; i++)
        body[i] = (uint8_t)(i ^ (i >> 11));
    struct drain d = {.fk = fk};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, drain_put, &d), 0);
    int rc = spy_client_put(fk->c, 8, body, len);
    pthread_join(t, NULL);
    assert_int_equal(rc, SPY_OK);
    assert_int_equal(d.frames, 3);
    assert_int_equal(d.sizes[0], SPY_DATA_MAX);
    assert_int_equal(d.sizes[1], SPY_DATA_MAX);
    assert_int_equal(d.sizes[2], 5);
    assert_int_equal(d.end.total_len, len);
    assert_int_equal(d.end.crc, spy_crc32c(0, body, len));
    assert_int_equal(d.crc, d.end.crc);
    free(body);
}

/* ---- connect ---- */

static void test_connect_refused_fast(void **state)
{
    (void)state;
    int port;
    int fd = listen_any(AF_INET, &port);
    assert_true(fd >= 0);
    close(fd); /* nothing listens on 'port' now */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct spy_client *c = NULL;
    assert_int_equal(spy_client_connect("127.0.0.1", port, 5000, &c), SPY_EIO);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_null(c);
    assert_true(t1.tv_sec - t0.tv_sec < 3);
}

static void test_connect_bad_args(void **state)
{
    (void)state;
    struct spy_client *c = NULL;
    assert_int_equal(spy_client_connect("127.0.0.1", 0, 1000, &c), SPY_EINVAL);
    assert_int_equal(spy_client_connect("127.0.0.1", 70000, 1000, &c), SPY_EINVAL);
    assert_int_equal(spy_client_connect("127.0.0.1", 8000, 0, &c), SPY_EINVAL);
    assert_int_equal(spy_client_connect("no such host.invalid", 8000, 1000, &c), SPY_EIO);
    assert_null(c);
}

static void test_connect_ipv6_and_name(void **state)
{
    (void)state;
    int port;
    int fd = listen_any(AF_INET6, &port);
    if (fd < 0)
        skip(); /* no IPv6 loopback on this machine */
    close(fd);
    struct fake *fk = fake_connect(AF_INET6, "::1", CLIENT_TIMEOUT_MS);
    reply(fk, SPY_OP_PING, SPY_OK, 1, NULL, 0);
    assert_int_equal(spy_client_ping(fk->c), SPY_OK);
    void *st = fk;
    teardown(&st);
    /* "localhost" may resolve to ::1 first; the v4 listener must still be found. */
    fk = fake_connect(AF_INET, "localhost", CLIENT_TIMEOUT_MS);
    reply(fk, SPY_OP_PING, SPY_OK, 1, NULL, 0);
    assert_int_equal(spy_client_ping(fk->c), SPY_OK);
    st = fk;
    teardown(&st);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    spy_log_set_level(SPY_LOG_ERROR); /* the client's warnings are expected here */
    const struct CMUnitTest tests[] = {
        T(test_ping_ids_increment),
        T(test_ping_wire_bytes),
        T(test_wrong_req_id_breaks),
        T(test_wrong_op_breaks),
        T(test_bad_header_crc_breaks),
        T(test_missing_response_flag_breaks),
        T(test_server_eproto_req_id_zero),
        T(test_peer_close),
        cmocka_unit_test(test_timeout),
        T(test_stat_ok_and_not_found),
        T(test_stat_wrong_fid_or_size),
        T(test_error_with_payload_breaks),
        T(test_status_json),
        T(test_get_range_stream),
        T(test_get_crc_mismatch_is_corrupt),
        T(test_get_end_error_status),
        T(test_get_error_status),
        T(test_get_too_many_bytes_breaks),
        T(test_get_short_stream_breaks),
        T(test_get_other_range_breaks),
        T(test_get_sink_abort_breaks),
        T(test_put_small),
        T(test_put_empty),
        T(test_put_early_error),
        T(test_put_whole_early_error),
        T(test_put_abort),
        T(test_put_ack_before_end_breaks),
        T(test_put_misuse),
        T(test_put_splits_data_frames),
        cmocka_unit_test(test_connect_refused_fast),
        cmocka_unit_test(test_connect_bad_args),
        cmocka_unit_test(test_connect_ipv6_and_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
