/* test_server.c - the spy_server connection handler, in process: a real store
 * in a temp dir, connections on socketpairs served by a thread calling
 * spy_server_serve_connection, raw frames built with the proto.h codecs.
 * Every test ends with the memory pool back to 0 blocks in use (teardown). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/log.h"
#include "common/status.h"
#include "tests/chunkserver/srvtest.h"

#define MiB (1u << 20)
#define KiB (1u << 10)

static int setup_default(void **state)
{
    struct srvtest *t = malloc(sizeof(*t));
    srvtest_setup(t, 4, 2000);
    *state = t;
    return 0;
}

static int setup_one_block(void **state)
{
    struct srvtest *t = malloc(sizeof(*t));
    srvtest_setup(t, 1, 200);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct srvtest *t = *state;
    srvtest_teardown(t);
    free(t);
    return 0;
}

/* A put then gets of the whole object and of ranges across the 64 KiB crc
 * blocks and the 1 MiB memory blocks; stat; delete. */
static void test_put_get_ranges_stat_delete(void **state)
{
    struct srvtest *t = *state;
    struct srvconn c;
    srvconn_open(&c, t->srv);
    size_t len = 3 * MiB + 12345;
    uint8_t *data = malloc(len), *back = malloc(len);
    fill_pattern(data, len, 1);
    assert_int_equal(client_put(c.fd, 1, 1001, data, len, 100000), SPY_OK);

    size_t got;
    uint64_t object_len = 0;
    assert_int_equal(client_get(c.fd, 2, 1001, 0, 0, back, len, &got, &object_len), SPY_OK);
    assert_int_equal(got, len);
    assert_int_equal(object_len, len);
    assert_memory_equal(back, data, len);

    static const struct {
        uint64_t off, len;
    } ranges[] = {
        {65535, 2},
        {64 * KiB - 10, 20},
        {MiB - 1, 2},
        {MiB - 100, MiB + 200},
        {2 * MiB - 5, MiB + 7},
        {128 * KiB, 64 * KiB},
        {0, 1},
        {3 * MiB + 12344, 0},
        {5, 3 * MiB},
    };
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        uint64_t want = ranges[i].len != 0 ? ranges[i].len : len - ranges[i].off;
        assert_int_equal(
            client_get(c.fd, 10 + i, 1001, ranges[i].off, ranges[i].len, back, len, &got, NULL),
            SPY_OK);
        assert_int_equal(got, want);
        assert_memory_equal(back, data + ranges[i].off, want);
    }
    /* The end of the object with length 0 is an empty, successful range. */
    assert_int_equal(client_get(c.fd, 30, 1001, len, 0, back, len, &got, NULL), SPY_OK);
    assert_int_equal(got, 0);
    assert_int_equal(client_get(c.fd, 31, 1001, len + 1, 0, back, len, &got, NULL), SPY_ERANGE);
    assert_int_equal(client_get(c.fd, 32, 1001, 0, len + 1, back, len, &got, NULL), SPY_ERANGE);
    assert_int_equal(client_get(c.fd, 33, 1001, 10, len - 9, back, len, &got, NULL), SPY_ERANGE);
    assert_int_equal(client_get(c.fd, 34, 1001, UINT64_MAX, 2, back, len, &got, NULL), SPY_ERANGE);

    struct spy_stat_resp st;
    assert_int_equal(client_stat(c.fd, 40, 1001, &st), SPY_OK);
    assert_int_equal(st.fid, 1001);
    assert_int_equal(st.len, len);
    assert_true(st.chunk_id >= 1);
    assert_int_equal(client_delete(c.fd, 41, 1001), SPY_OK);
    assert_int_equal(client_stat(c.fd, 42, 1001, NULL), SPY_ENOTFOUND);
    assert_int_equal(client_get(c.fd, 43, 1001, 0, 0, back, len, &got, NULL), SPY_ENOTFOUND);
    assert_int_equal(client_delete(c.fd, 44, 1001), SPY_ENOTFOUND);
    /* fids are never reused */
    assert_int_equal(client_put(c.fd, 45, 1001, data, 10, 10), SPY_EEXISTS);
    assert_int_equal(client_ping(c.fd, 46), SPY_OK);
    assert_int_equal(srvconn_close(&c), SPY_OK);
    free(data);
    free(back);
}

/* Full-size DATA frames (exactly one memory block each) and an empty object. */
static void test_full_frames_and_empty_object(void **state)
{
    struct srvtest *t = *state;
    struct srvconn c;
    srvconn_open(&c, t->srv);
    size_t len = 2 * MiB + 1;
    uint8_t *data = malloc(len), *back = malloc(len);
    fill_pattern(data, len, 2);
    assert_int_equal(client_put(c.fd, 1, 2001, data, len, SPY_DATA_MAX), SPY_OK);
    size_t got;
    assert_int_equal(client_get(c.fd, 2, 2001, 0, 0, back, len, &got, NULL), SPY_OK);
    assert_int_equal(got, len);
    assert_memory_equal(back, data, len);

    assert_int_equal(client_put(c.fd, 3, 2002, data, 0, 1), SPY_OK);
    uint64_t object_len = 99;
    assert_int_equal(client_get(c.fd, 4, 2002, 0, 0, back, len, &got, &object_len), SPY_OK);
    assert_int_equal(got, 0);
    assert_int_equal(object_len, 0);
    assert_int_equal(client_get(c.fd, 5, 2002, 1, 0, back, len, &got, NULL), SPY_ERANGE);
    assert_int_equal(srvconn_close(&c), SPY_OK);
    free(data);
    free(back);
}

/* PING and STATUS (a JSON object with the documented fields). */
static void test_ping_status(void **state)
{
    struct srvtest *t = *state;
    struct srvconn c;
    srvconn_open(&c, t->srv);
    assert_int_equal(client_ping(c.fd, 77), SPY_OK);
    frame_send(c.fd, SPY_OP_STATUS, 0, 78, NULL, 0);
    char text[SPY_SMALL_MAX + 1];
    uint32_t n;
    assert_int_equal(frame_expect(c.fd, SPY_OP_STATUS, 78, text, SPY_SMALL_MAX, &n), SPY_OK);
    text[n] = '\0';
    json_error_t err;
    json_t *o = json_loads(text, 0, &err);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "group_id")), 7);
    assert_string_equal(json_string_value(json_object_get(o, "ip")), "127.0.0.1");
    assert_int_equal(json_integer_value(json_object_get(o, "chunks")), 4);
    assert_int_equal(json_integer_value(json_object_get(o, "mem_blocks_limit")), 4);
    assert_int_equal(json_integer_value(json_object_get(o, "mem_blocks_in_use")), 0);
    assert_int_equal(json_integer_value(json_object_get(o, "connections")), 1);
    assert_true(json_integer_value(json_object_get(o, "total_free")) > 0);
    assert_true(json_is_false(json_object_get(o, "sync")));
    assert_true(json_is_false(json_object_get(o, "read_only")));
    assert_string_equal(json_string_value(json_object_get(o, "version")), "speedy 0.1");
    static const char *keys[] = {
        "port",    "chunks_damaged", "max_free",       "used",         "garbage",       "objects",
        "deleted", "writes_active",  "writes_pending", "reads_active", "uptime_seconds"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        assert_true(json_is_integer(json_object_get(o, keys[i])));
    json_decref(o);
    assert_int_equal(srvconn_close(&c), SPY_OK);
}

/* An early EEXISTS: the put's DATA frames and END are dropped and the next
 * request on the same connection works. Also the same with the client
 * stopping at once (no DATA, no END). */
static void test_early_refusal_discards(void **state)
{
    struct srvtest *t = *state;
    struct srvconn c;
    srvconn_open(&c, t->srv);
    uint8_t data[300000];
    fill_pattern(data, sizeof(data), 3);
    assert_int_equal(client_put(c.fd, 1, 3001, data, sizeof(data), 65536), SPY_OK);
    /* client_put reads the (early) response only after sending everything */
    assert_int_equal(client_put(c.fd, 2, 3001, data, sizeof(data), 65536), SPY_EEXISTS);
    assert_int_equal(client_ping(c.fd, 3), SPY_OK);

    uint8_t p[SPY_PUT_REQ_PAYLOAD];
    struct spy_put_req pr = {.fid = 3001, .max_len = 10};
    spy_put_req_encode(&pr, p);
    frame_send(c.fd, SPY_OP_PUT, 0, 4, p, sizeof(p));
    assert_int_equal(frame_expect(c.fd, SPY_OP_PUT, 4, NULL, 0, NULL), SPY_EEXISTS);
    assert_int_equal(client_ping(c.fd, 5), SPY_OK); /* gave up without DATA/END */

    /* A put too large for any chunk: ENOSPC early, DATA dropped. */
    pr.fid = 3002;
    pr.max_len = 1ull << 40;
    spy_put_req_encode(&pr, p);
    frame_send(c.fd, SPY_OP_PUT, 0, 6, p, sizeof(p));
    frame_send(c.fd, SPY_OP_DATA, 0, 6, data, 1000);
    uint8_t e[SPY_END_REQ_PAYLOAD] = {0};
    frame_send(c.fd, SPY_OP_END, 0, 6, e, sizeof(e));
    assert_int_equal(frame_expect(c.fd, SPY_OP_PUT, 6, NULL, 0, NULL), SPY_ENOSPC);
    assert_int_equal(client_ping(c.fd, 7), SPY_OK);
    size_t got;
    uint8_t back[sizeof(data)];
    assert_int_equal(client_get(c.fd, 8, 3001, 0, 0, back, sizeof(back), &got, NULL), SPY_OK);
    assert_memory_equal(back, data, sizeof(data));
    assert_int_equal(srvconn_close(&c), SPY_OK);
}

/* A body longer than max_len: ERANGE once the store sees it (at the block
 * flush or at END), nothing indexed, connection still usable. */
static void test_body_over_max_len(void **state)
{
    struct srvtest *t = *state;
    struct srvconn c;
    srvconn_open(&c, t->srv);
    size_t len = MiB + 5000;
    uint8_t *data = malloc(len);
    fill_pattern(data, len, 4);
    uint8_t p[SPY_PUT_REQ_PAYLOAD];
    struct spy_put_req pr = {.fid = 4001, .max_len = 1000};
    spy_put_req_encode(&pr, p);
    frame_send(c.fd, SPY_OP_PUT, 0, 1, p, sizeof(p));
    for (size_t off = 0; off < len; off += 200000)
        frame_send(c.fd, SPY_OP_DATA, 0, 1, data + off,
                   (uint32_t)(len - off < 200000 ? len - off : 200000));
    uint8_t e[SPY_END_REQ_PAYLOAD];
    struct spy_end_req er = {.total_len = len, .crc = spy_crc32c(0, data, len)};
    spy_end_req_encode(&er, e);
    frame_send(c.fd, SPY_OP_END, 0, 1, e, sizeof(e));
    assert_int_equal(frame_expect(c.fd, SPY_OP_PUT, 1, NULL, 0, NULL), SPY_ERANGE);
    assert_int_equal(client_ping(c.fd, 2), SPY_OK);
    assert_int_equal(client_stat(c.fd, 3, 4001, NULL), SPY_ENOTFOUND);
    assert_int_equal(srvconn_close(&c), SPY_OK);
    free(data);
}

/* END with the ABORT flag: EABORTED, nothing indexed, the fid free again. */
static void test_abort(void **state)
{
    struct srvtest *t = *state;
    struct srvconn c;
    srvconn_open(&c, t->srv);
    uint8_t data[5000];
    fill_pattern(data, sizeof(data), 5);
    uint8_t p[SPY_PUT_REQ_PAYLOAD];
    struct spy_put_req pr = {.fid = 5001, .max_len = sizeof(data)};
    spy_put_req_encode(&pr, p);
    frame_send(c.fd, SPY_OP_PUT, 0, 1, p, sizeof(p));
    frame_send(c.fd, SPY_OP_DATA, 0, 1, data, 2000);
    frame_send(c.fd, SPY_OP_END, SPY_FRAME_ABORT, 1, NULL, 0);
    assert_int_equal(frame_expect(c.fd, SPY_OP_PUT, 1, NULL, 0, NULL), SPY_EABORTED);
    assert_int_equal(client_stat(c.fd, 2, 5001, NULL), SPY_ENOTFOUND);
    assert_int_equal(client_put(c.fd, 3, 5001, data, sizeof(data), 1000), SPY_OK);
    assert_int_equal(srvconn_close(&c), SPY_OK);
}

/* A wrong end-to-end crc: ECHECKSUM, nothing indexed, connection usable. */
static void test_bad_body_crc(void **state)
{
    struct srvtest *t = *state;
    struct srvconn c;
    srvconn_open(&c, t->srv);
    uint8_t data[70000];
    fill_pattern(data, sizeof(data), 6);
    uint8_t p[SPY_PUT_REQ_PAYLOAD];
    struct spy_put_req pr = {.fid = 6001, .max_len = sizeof(data)};
    spy_put_req_encode(&pr, p);
    frame_send(c.fd, SPY_OP_PUT, 0, 1, p, sizeof(p));
    frame_send(c.fd, SPY_OP_DATA, 0, 1, data, sizeof(data));
    uint8_t e[SPY_END_REQ_PAYLOAD];
    struct spy_end_req er = {.total_len = sizeof(data), .crc = spy_crc32c(0, data, 100)};
    spy_end_req_encode(&er, e);
    frame_send(c.fd, SPY_OP_END, 0, 1, e, sizeof(e));
    assert_int_equal(frame_expect(c.fd, SPY_OP_PUT, 1, NULL, 0, NULL), SPY_ECHECKSUM);
    assert_int_equal(client_stat(c.fd, 2, 6001, NULL), SPY_ENOTFOUND);
    assert_int_equal(client_put(c.fd, 3, 6001, data, sizeof(data), 7000), SPY_OK);
    assert_int_equal(srvconn_close(&c), SPY_OK);
}

/* END's total_len differs from the bytes sent: EPROTO and close. */
static void test_end_length_mismatch(void **state)
{
    struct srvtest *t = *state;
    struct srvconn c;
    srvconn_open(&c, t->srv);
    uint8_t data[1000];
    fill_pattern(data, sizeof(data), 7);
    uint8_t p[SPY_PUT_REQ_PAYLOAD];
    struct spy_put_req pr = {.fid = 7001, .max_len = 5000};
    spy_put_req_encode(&pr, p);
    frame_send(c.fd, SPY_OP_PUT, 0, 1, p, sizeof(p));
    frame_send(c.fd, SPY_OP_DATA, 0, 1, data, sizeof(data));
    uint8_t e[SPY_END_REQ_PAYLOAD];
    struct spy_end_req er = {.total_len = 999, .crc = spy_crc32c(0, data, 999)};
    spy_end_req_encode(&er, e);
    frame_send(c.fd, SPY_OP_END, 0, 1, e, sizeof(e));
    assert_int_equal(frame_expect(c.fd, SPY_OP_PUT, 1, NULL, 0, NULL), SPY_EPROTO);
    srvconn_expect_eof(&c);
    assert_int_equal(srvconn_close(&c), SPY_EPROTO);
    assert_int_equal(spy_store_stat(t->store, 7001, &(struct spy_object_info){0}), SPY_ENOTFOUND);
}

/* Sends 'bytes' and expects one EPROTO response (op, req_id) then EOF. */
static void expect_proto_close(struct spy_server *srv, const void *bytes, size_t len, int shut,
                               uint8_t op, uint64_t req_id, int expect_result)
{
    struct srvconn c;
    srvconn_open(&c, srv);
    frame_send_raw(c.fd, bytes, len);
    if (shut)
        shutdown(c.fd, SHUT_WR);
    assert_int_equal(frame_expect(c.fd, op, req_id, NULL, 0, NULL), SPY_EPROTO);
    srvconn_expect_eof(&c);
    assert_int_equal(srvconn_close(&c), expect_result);
}

/* header: a valid encoded header for the malformed-frame tests. */
static void header(uint8_t *out, uint8_t op, uint8_t flags, uint64_t req_id, uint32_t len)
{
    struct spy_frame f = {.op = op, .flags = flags, .req_id = req_id, .len = len};
    spy_frame_encode(&f, out);
}

/* Malformed headers and frames: EPROTO (req_id/op echoed when the header
 * decoded) and the connection closes. */
static void test_malformed_frames(void **state)
{
    struct srvtest *t = *state;
    uint8_t h[SPY_FRAME_HDR_SIZE + 64];
    memset(h, 0, sizeof(h));

    header(h, SPY_OP_PING, 0, 5, 0);
    h[0] ^= 0xff; /* bad magic */
    expect_proto_close(t->srv, h, SPY_FRAME_HDR_SIZE, 0, SPY_OP_PING, 0, SPY_EPROTO);
    header(h, SPY_OP_PING, 0, 5, 0);
    h[9] ^= 1; /* header crc no longer matches */
    expect_proto_close(t->srv, h, SPY_FRAME_HDR_SIZE, 0, SPY_OP_PING, 0, SPY_EPROTO);
    header(h, 9, 0, 5, 0); /* unknown op */
    expect_proto_close(t->srv, h, SPY_FRAME_HDR_SIZE, 0, SPY_OP_PING, 0, SPY_EPROTO);
    header(h, SPY_OP_PING, 0, 5, 1); /* PING carries no payload */
    expect_proto_close(t->srv, h, SPY_FRAME_HDR_SIZE + 1, 0, SPY_OP_PING, 0, SPY_EPROTO);
    header(h, SPY_OP_STAT, 0, 5, 9); /* over STAT's maximum: refused unread */
    expect_proto_close(t->srv, h, SPY_FRAME_HDR_SIZE, 0, SPY_OP_PING, 0, SPY_EPROTO);
    header(h, SPY_OP_DATA, 0, 5, SPY_DATA_MAX + 1);
    expect_proto_close(t->srv, h, SPY_FRAME_HDR_SIZE, 0, SPY_OP_PING, 0, SPY_EPROTO);

    header(h, SPY_OP_PING, SPY_FRAME_RESPONSE, 6, 0); /* a response as a request */
    expect_proto_close(t->srv, h, SPY_FRAME_HDR_SIZE, 0, SPY_OP_PING, 6, SPY_EPROTO);
    header(h, SPY_OP_GET, SPY_FRAME_ABORT, 6, 0); /* ABORT outside END */
    expect_proto_close(t->srv, h, SPY_FRAME_HDR_SIZE, 0, SPY_OP_GET, 6, SPY_EPROTO);
    header(h, SPY_OP_STAT, 0, 7, 4); /* exact-size payload of the wrong size */
    expect_proto_close(t->srv, h, SPY_FRAME_HDR_SIZE + 4, 0, SPY_OP_STAT, 7, SPY_EPROTO);
    header(h, SPY_OP_GET, 0, 8, 16);
    expect_proto_close(t->srv, h, SPY_FRAME_HDR_SIZE + 16, 0, SPY_OP_GET, 8, SPY_EPROTO);
    header(h, SPY_OP_DATA, 0, 9, 10); /* DATA outside a put */
    expect_proto_close(t->srv, h, SPY_FRAME_HDR_SIZE + 10, 0, SPY_OP_DATA, 9, SPY_EPROTO);
    header(h, SPY_OP_END, 0, 10, 12); /* END outside a put */
    expect_proto_close(t->srv, h, SPY_FRAME_HDR_SIZE + 12, 0, SPY_OP_END, 10, SPY_EPROTO);

    /* Truncated: half a header, then a GET whose payload stops short. */
    header(h, SPY_OP_PING, 0, 11, 0);
    expect_proto_close(t->srv, h, 10, 1, SPY_OP_PING, 0, SPY_ECLOSED);
    header(h, SPY_OP_GET, 0, 12, SPY_GET_REQ_PAYLOAD);
    expect_proto_close(t->srv, h, SPY_FRAME_HDR_SIZE + 10, 1, SPY_OP_GET, 12, SPY_ECLOSED);

    struct spy_server_counters ct;
    spy_server_get_counters(t->srv, &ct);
    assert_int_equal(ct.protocol_errors, 14);
    assert_int_equal(ct.connections, 0);
}

/* Breaking off a put: another frame in the middle, a truncated DATA frame,
 * the connection closing. Each aborts the put (nothing indexed, the fid free). */
static void test_put_broken_off(void **state)
{
    struct srvtest *t = *state;
    uint8_t data[4000];
    fill_pattern(data, sizeof(data), 8);
    uint8_t p[SPY_PUT_REQ_PAYLOAD];
    struct spy_put_req pr = {.fid = 8001, .max_len = sizeof(data)};
    spy_put_req_encode(&pr, p);
    struct srvconn c;

    srvconn_open(&c, t->srv); /* a PING in the middle */
    frame_send(c.fd, SPY_OP_PUT, 0, 1, p, sizeof(p));
    frame_send(c.fd, SPY_OP_DATA, 0, 1, data, 100);
    frame_send(c.fd, SPY_OP_PING, 0, 2, NULL, 0);
    assert_int_equal(frame_expect(c.fd, SPY_OP_PING, 2, NULL, 0, NULL), SPY_EPROTO);
    srvconn_expect_eof(&c);
    assert_int_equal(srvconn_close(&c), SPY_EPROTO);

    srvconn_open(&c, t->srv); /* DATA of another req_id */
    frame_send(c.fd, SPY_OP_PUT, 0, 1, p, sizeof(p));
    frame_send(c.fd, SPY_OP_DATA, 0, 3, data, 100);
    assert_int_equal(frame_expect(c.fd, SPY_OP_DATA, 3, NULL, 0, NULL), SPY_EPROTO);
    assert_int_equal(srvconn_close(&c), SPY_EPROTO);

    srvconn_open(&c, t->srv); /* an empty DATA frame */
    frame_send(c.fd, SPY_OP_PUT, 0, 1, p, sizeof(p));
    frame_send(c.fd, SPY_OP_DATA, 0, 1, NULL, 0);
    assert_int_equal(frame_expect(c.fd, SPY_OP_DATA, 1, NULL, 0, NULL), SPY_EPROTO);
    assert_int_equal(srvconn_close(&c), SPY_EPROTO);

    srvconn_open(&c, t->srv); /* a truncated DATA frame */
    frame_send(c.fd, SPY_OP_PUT, 0, 1, p, sizeof(p));
    uint8_t h[SPY_FRAME_HDR_SIZE];
    header(h, SPY_OP_DATA, 0, 1, 3000);
    frame_send_raw(c.fd, h, sizeof(h));
    frame_send_raw(c.fd, data, 1000);
    shutdown(c.fd, SHUT_WR);
    assert_int_equal(frame_expect(c.fd, SPY_OP_DATA, 1, NULL, 0, NULL), SPY_EPROTO);
    srvconn_expect_eof(&c);
    assert_int_equal(srvconn_close(&c), SPY_ECLOSED);

    srvconn_open(&c, t->srv); /* the client just closes after some DATA */
    frame_send(c.fd, SPY_OP_PUT, 0, 1, p, sizeof(p));
    frame_send(c.fd, SPY_OP_DATA, 0, 1, data, 3000);
    assert_int_equal(srvconn_close(&c), SPY_ECLOSED);

    assert_int_equal(spy_store_stat(t->store, 8001, &(struct spy_object_info){0}), SPY_ENOTFOUND);
    srvconn_open(&c, t->srv);
    assert_int_equal(client_put(c.fd, 9, 8001, data, sizeof(data), 999), SPY_OK);
    assert_int_equal(srvconn_close(&c), SPY_OK);
}

/* find_bytes: offset of needle in the file, or -1. */
static long find_bytes(const char *path, const uint8_t *needle, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    size_t cap = 1 << 20;
    uint8_t *buf = malloc(cap + n);
    long base = 0, found = -1;
    size_t have = 0;
    for (;;) {
        size_t r = fread(buf + have, 1, cap, f);
        if (r == 0)
            break;
        have += r;
        for (size_t i = 0; i + n <= have && found < 0; i++)
            if (memcmp(buf + i, needle, n) == 0)
                found = base + (long)i;
        if (found >= 0)
            break;
        size_t keep = have < n ? have : n - 1;
        memmove(buf, buf + have - keep, keep);
        base += (long)(have - keep);
        have = keep;
    }
    free(buf);
    fclose(f);
    return found;
}

/* corrupt_object_byte: flips the stored byte at body offset 'at' of an
 * object written with 'data' (found by content in the chunk files). */
static void corrupt_object_byte(const char *dir, const uint8_t *data, size_t at)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int done = 0;
    while (!done && (e = readdir(d)) != NULL) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (e->d_name[0] == '.')
            continue;
        long off = find_bytes(path, data + at, 64);
        if (off < 0)
            continue;
        int fd = open(path, O_RDWR);
        uint8_t b;
        assert_int_equal(pread(fd, &b, 1, off), 1);
        b ^= 0x5a;
        assert_int_equal(pwrite(fd, &b, 1, off), 1);
        close(fd);
        done = 1;
    }
    closedir(d);
    assert_true(done);
}

/* A corrupt 64 KiB block found mid-stream: the stream ends with END ECORRUPT,
 * its crc covering the bytes that were sent, and the connection stays usable. */
static void test_corrupt_midstream(void **state)
{
    struct srvtest *t = *state;
    struct srvconn c;
    srvconn_open(&c, t->srv);
    size_t len = 3 * MiB;
    uint8_t *data = malloc(len), *back = malloc(len);
    fill_pattern(data, len, 9);
    assert_int_equal(client_put(c.fd, 1, 9001, data, len, 500000), SPY_OK);
    corrupt_object_byte(t->dir, data, 2 * MiB + 300 * KiB);
    size_t got;
    assert_int_equal(client_get(c.fd, 2, 9001, 0, 0, back, len, &got, NULL), SPY_ECORRUPT);
    assert_true(got >= MiB && got <= 2 * MiB + 256 * KiB);
    assert_memory_equal(back, data, got);
    /* A range before the damage still reads. */
    assert_int_equal(client_get(c.fd, 3, 9001, 100, MiB, back, len, &got, NULL), SPY_OK);
    assert_memory_equal(back, data + 100, MiB);
    assert_int_equal(client_ping(c.fd, 4), SPY_OK);
    assert_int_equal(srvconn_close(&c), SPY_OK);
    free(data);
    free(back);
}

/* A pool of one block: while a put holds it, a second GET and a second PUT
 * wait mem_wait_ms and get ENOMEM (the PUT's DATA/END dropped); once the
 * first put ends, both work. */
static void test_mempool_backpressure(void **state)
{
    struct srvtest *t = *state;
    struct srvconn a, b;
    srvconn_open(&a, t->srv);
    srvconn_open(&b, t->srv);
    uint8_t data[10000];
    fill_pattern(data, sizeof(data), 10);
    assert_int_equal(client_put(b.fd, 1, 10001, data, sizeof(data), 3000), SPY_OK);

    uint8_t p[SPY_PUT_REQ_PAYLOAD];
    struct spy_put_req pr = {.fid = 10002, .max_len = sizeof(data)};
    spy_put_req_encode(&pr, p);
    frame_send(a.fd, SPY_OP_PUT, 0, 1, p, sizeof(p));
    frame_send(a.fd, SPY_OP_DATA, 0, 1, data, 5000);
    for (int i = 0; i < 10000 && spy_mempool_in_use(t->pool) == 0; i++)
        usleep(1000);
    assert_int_equal(spy_mempool_in_use(t->pool), 1);

    size_t got;
    uint8_t back[sizeof(data)];
    int64_t t0 = mono_ms();
    assert_int_equal(client_get(b.fd, 2, 10001, 0, 0, back, sizeof(back), &got, NULL), SPY_ENOMEM);
    assert_true(mono_ms() - t0 >= 150);
    assert_int_equal(client_put(b.fd, 3, 10003, data, sizeof(data), 4000), SPY_ENOMEM);
    assert_int_equal(client_ping(b.fd, 4), SPY_OK);

    frame_send(a.fd, SPY_OP_DATA, 0, 1, data + 5000, sizeof(data) - 5000);
    uint8_t e[SPY_END_REQ_PAYLOAD];
    struct spy_end_req er = {.total_len = sizeof(data), .crc = spy_crc32c(0, data, sizeof(data))};
    spy_end_req_encode(&er, e);
    frame_send(a.fd, SPY_OP_END, 0, 1, e, sizeof(e));
    assert_int_equal(frame_expect(a.fd, SPY_OP_PUT, 1, NULL, 0, NULL), SPY_OK);

    assert_int_equal(client_get(b.fd, 5, 10002, 0, 0, back, sizeof(back), &got, NULL), SPY_OK);
    assert_memory_equal(back, data, sizeof(data));
    assert_int_equal(client_put(b.fd, 6, 10003, data, sizeof(data), 4000), SPY_OK);
    assert_int_equal(srvconn_close(&a), SPY_OK);
    assert_int_equal(srvconn_close(&b), SPY_OK);
}

/* tcp_connect: a blocking TCP connection to 127.0.0.1:port. */
static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* listen_again: replaces the fixture's server by a listening one. */
static int listen_again(struct srvtest *t, uint32_t max_conns, int drain_ms)
{
    spy_server_destroy(t->srv);
    struct spy_server_config vc = {.listen_ip = "127.0.0.1",
                                   .port = 0,
                                   .advertise_ip = "127.0.0.1",
                                   .group_id = 7,
                                   .idle_timeout_ms = 10000,
                                   .max_conns = max_conns,
                                   .mem_wait_ms = 200,
                                   .drain_ms = drain_ms,
                                   .store = t->store,
                                   .pool = t->pool};
    assert_int_equal(spy_server_create(&vc, &t->srv), SPY_OK);
    assert_int_equal(spy_server_start(t->srv), SPY_OK);
    int port = spy_server_port(t->srv);
    assert_true(port > 0);
    return port;
}

/* The listening server: TCP connections, --max_conns refusal, and a stop
 * that closes idle connections at once. */
static void test_listen_max_conns_stop(void **state)
{
    struct srvtest *t = *state;
    int port = listen_again(t, 1, 5000);
    int a = tcp_connect(port);
    assert_int_equal(client_ping(a, 1), SPY_OK);
    int b = tcp_connect(port); /* over max_conns: closed at once */
    uint8_t byte;
    assert_int_equal(recv(b, &byte, 1, 0), 0);
    close(b);
    struct spy_server_counters ct;
    spy_server_get_counters(t->srv, &ct);
    assert_int_equal(ct.connections, 1);
    assert_int_equal(ct.refused, 1);
    assert_int_equal(ct.accepted, 1);

    int64_t t0 = mono_ms();
    assert_int_equal(spy_server_stop(t->srv), 0); /* 'a' is idle: closed at once */
    assert_true(mono_ms() - t0 < 4000);
    assert_int_equal(recv(a, &byte, 1, 0), 0);
    close(a);
}

/* start_half_put: PUT and the first half of a body on fd; returns once the
 * server holds the put's memory block. */
static void start_half_put(struct srvtest *t, int fd, uint64_t fid, const uint8_t *data, size_t len)
{
    uint8_t p[SPY_PUT_REQ_PAYLOAD];
    struct spy_put_req pr = {.fid = fid, .max_len = len};
    spy_put_req_encode(&pr, p);
    frame_send(fd, SPY_OP_PUT, 0, 1, p, sizeof(p));
    frame_send(fd, SPY_OP_DATA, 0, 1, data, (uint32_t)(len / 2));
    for (int i = 0; i < 10000 && spy_mempool_in_use(t->pool) == 0; i++)
        usleep(1000);
    assert_int_equal(spy_mempool_in_use(t->pool), 1);
}

struct stopper {
    struct spy_server *srv;
    int result;
};

/* stop_thread: spy_server_stop from another thread (it waits for drains). */
static void *stop_thread(void *arg)
{
    struct stopper *s = arg;
    s->result = spy_server_stop(s->srv);
    return NULL;
}

/* A stop while a put is running lets the put finish and be answered, then
 * closes the connection. */
static void test_stop_lets_busy_put_finish(void **state)
{
    struct srvtest *t = *state;
    int fd = tcp_connect(listen_again(t, 8, 10000));
    uint8_t data[20000];
    fill_pattern(data, sizeof(data), 11);
    start_half_put(t, fd, 11001, data, sizeof(data));
    struct stopper s = {.srv = t->srv, .result = -1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stop_thread, &s), 0);
    frame_send(fd, SPY_OP_DATA, 0, 1, data + sizeof(data) / 2, sizeof(data) / 2);
    uint8_t e[SPY_END_REQ_PAYLOAD];
    struct spy_end_req er = {.total_len = sizeof(data), .crc = spy_crc32c(0, data, sizeof(data))};
    spy_end_req_encode(&er, e);
    frame_send(fd, SPY_OP_END, 0, 1, e, sizeof(e));
    assert_int_equal(frame_expect(fd, SPY_OP_PUT, 1, NULL, 0, NULL), SPY_OK);
    uint8_t byte;
    assert_int_equal(recv(fd, &byte, 1, 0), 0); /* then closed by the server */
    pthread_join(th, NULL);
    assert_int_equal(s.result, 0);
    close(fd);
    assert_int_equal(spy_store_stat(t->store, 11001, &(struct spy_object_info){0}), SPY_OK);
}

/* A put that stalls past drain_ms is cut off by stop and aborted. */
static void test_stop_cuts_stalled_put(void **state)
{
    struct srvtest *t = *state;
    int fd = tcp_connect(listen_again(t, 8, 100));
    uint8_t data[20000];
    fill_pattern(data, sizeof(data), 12);
    start_half_put(t, fd, 12001, data, sizeof(data));
    assert_int_equal(spy_server_stop(t->srv), 0);
    uint8_t buf[64];
    while (recv(fd, buf, sizeof(buf), 0) > 0) /* at most an EPROTO frame, then EOF */
        ;
    close(fd);
    assert_int_equal(spy_mempool_in_use(t->pool), 0);
    assert_int_equal(spy_store_stat(t->store, 12001, &(struct spy_object_info){0}), SPY_ENOTFOUND);
}

int main(void)
{
    spy_log_set_level(SPY_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_ranges_stat_delete, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_full_frames_and_empty_object, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_ping_status, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_early_refusal_discards, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_body_over_max_len, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_abort, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_bad_body_crc, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_end_length_mismatch, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_frames, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_put_broken_off, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_midstream, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_mempool_backpressure, setup_one_block, teardown),
        cmocka_unit_test_setup_teardown(test_listen_max_conns_stop, setup_one_block, teardown),
        cmocka_unit_test_setup_teardown(test_stop_lets_busy_put_finish, setup_one_block, teardown),
        cmocka_unit_test_setup_teardown(test_stop_cuts_stalled_put, setup_one_block, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
