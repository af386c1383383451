/* fuzz_frame.c - libFuzzer target for the frame codec and the client's
 * response parsing.
 *
 * Each input is used twice:
 *  1. As bytes for spy_frame_decode and every payload decoder. Whatever they
 *     accept must re-encode to the same bytes, and an accepted GET response
 *     range must lie inside its object: a violation aborts.
 *  2. As a "server's" byte stream: a spy_client is built around one end of a
 *     socketpair (this file includes spy_client.c to reach its constructor,
 *     as h2o's unit tests include the file under test), the stream is written
 *     into the other end, which is then shut for writing, and one to three
 *     client operations run against it. Each must return a status, never
 *     crash or hang (EOF ends every wait; socket timeouts are a backstop).
 *
 * Input layout for part 2:
 *   byte 0: bits 0-2 first op, bits 3-5 second op
 *   byte 1: bit 0 fix up checksums, bit 1 abort instead of END in puts,
 *           bits 2-4 third op, bits 6-7 number of ops - 1 (0..2)
 *   rest:   the server's bytes
 * With "fix up", every header's hcrc is recomputed and an END frame's crc
 * payload is set to the crc of the DATA bytes since the last GET response, so
 * the fuzzer gets past the checksums into the stream logic.
 * Ops: 0 PING, 1 STATUS, 2 STAT, 3 DELETE, 4 GET whole, 5 GET range,
 *      6 empty PUT, 7 PUT of 10 bytes (the early-error path). */
#include "common/spy_client.c"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_SERVER_BYTES (64u << 10) /* fits the socketpair buffer unread */

/* check_frame_codec: decode, and re-encode what was accepted. */
static void check_frame_codec(const uint8_t *data, size_t size)
{
    if (size < SPY_FRAME_HDR_SIZE)
        return;
    struct spy_frame f;
    if (spy_frame_decode(data, &f) != SPY_OK)
        return;
    uint8_t again[SPY_FRAME_HDR_SIZE];
    spy_frame_encode(&f, again);
    if (memcmp(again, data, SPY_FRAME_HDR_SIZE) != 0)
        abort();
    if (f.len > spy_frame_max_payload(f.op, (f.flags & SPY_FRAME_RESPONSE) != 0))
        abort();
}

/* check_payload_codecs: every payload decoder over the input; accepted
 * payloads re-encode to the same bytes. */
static void check_payload_codecs(const uint8_t *data, size_t size)
{
    uint8_t out[SPY_STAT_RESP_PAYLOAD];
    struct spy_get_req gq;
    struct spy_get_resp gr;
    struct spy_put_req pr;
    struct spy_end_req er;
    struct spy_stat_resp sr;
    uint64_t fid;
    if (spy_get_req_decode(data, size, &gq) == SPY_OK) {
        spy_get_req_encode(&gq, out);
        if (memcmp(out, data, size) != 0)
            abort();
    }
    if (spy_get_resp_decode(data, size, &gr) == SPY_OK) {
        spy_get_resp_encode(&gr, out);
        if (memcmp(out, data, size) != 0 || gr.offset > gr.object_len ||
            gr.length > gr.object_len - gr.offset)
            abort();
    }
    if (spy_put_req_decode(data, size, &pr) == SPY_OK) {
        spy_put_req_encode(&pr, out);
        if (memcmp(out, data, size) != 0)
            abort();
    }
    if (spy_end_req_decode(data, size, &er) == SPY_OK) {
        spy_end_req_encode(&er, out);
        if (memcmp(out, data, size) != 0)
            abort();
    }
    if (spy_stat_resp_decode(data, size, &sr) == SPY_OK) {
        spy_stat_resp_encode(&sr, out);
        if (memcmp(out, data, size) != 0)
            abort();
    }
    if (spy_fid_decode(data, size, &fid) == SPY_OK && fid != spy_get_u64(data))
        abort();
}

/* fix_up_checksums: rewrites hcrc of every header in buf and the crc of each
 * END payload, walking frame by frame by the (possibly bogus) len fields. */
static void fix_up_checksums(uint8_t *buf, size_t n)
{
    uint32_t body_crc = 0;
    size_t p = 0;
    while (n - p >= SPY_FRAME_HDR_SIZE) {
        uint8_t *h = buf + p;
        uint32_t len = spy_get_u32(h + 16);
        size_t avail = n - p - SPY_FRAME_HDR_SIZE;
        size_t have = len < avail ? len : avail;
        if (h[3] == SPY_OP_GET)
            body_crc = 0;
        else if (h[3] == SPY_OP_DATA)
            body_crc = spy_crc32c(body_crc, h + SPY_FRAME_HDR_SIZE, have);
        else if (h[3] == SPY_OP_END && len == SPY_END_RESP_PAYLOAD && have == len)
            spy_put_u32(h + SPY_FRAME_HDR_SIZE, body_crc);
        spy_put_u32(h + 20, spy_crc32c(0, h, 20));
        if (have < len)
            break;
        p += SPY_FRAME_HDR_SIZE + len;
    }
}

static int count_sink(void *arg, const uint8_t *data, size_t n)
{
    (void)data;
    *(size_t *)arg += n;
    return 0;
}

/* run_op: one client operation; its status is all that matters. */
static void run_op(struct spy_client *c, int op, int use_abort)
{
    static const uint8_t ten[10] = "0123456789";
    struct spy_stat_resp st;
    size_t got = 0;
    uint64_t object_len;
    char *json = NULL;
    switch (op) {
    case 0:
        spy_client_ping(c);
        break;
    case 1:
        spy_client_status(c, &json);
        free(json);
        break;
    case 2:
        spy_client_stat(c, 1, &st);
        break;
    case 3:
        spy_client_delete(c, 1);
        break;
    case 4:
        spy_client_get(c, 1, 0, 0, count_sink, &got, &object_len);
        break;
    case 5:
        spy_client_get(c, 1, 2, 3, count_sink, &got, NULL);
        break;
    default:
        if (spy_client_put_begin(c, 1, op == 6 ? 0 : sizeof(ten)) != SPY_OK)
            break;
        if (op != 6)
            spy_client_put_data(c, ten, sizeof(ten));
        if (use_abort)
            spy_client_put_abort(c);
        else
            spy_client_put_end(c);
        break;
    }
}

/* feed_server_bytes: writes the stream into the server end without blocking
 * (whatever does not fit is dropped) and shuts that end for writing. */
static void feed_server_bytes(int fd, const uint8_t *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w <= 0)
            break;
        buf += w;
        n -= (size_t)w;
    }
    shutdown(fd, SHUT_WR);
}

static void check_client(const uint8_t *data, size_t size)
{
    if (size < 2)
        return;
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
        abort();
    struct timeval tv = {.tv_sec = 0, .tv_usec = 100 * 1000};
    setsockopt(fds[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fds[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    size_t n = size - 2 < MAX_SERVER_BYTES ? size - 2 : MAX_SERVER_BYTES;
    uint8_t *stream = malloc(n + 1);
    if (stream == NULL)
        abort();
    memcpy(stream, data + 2, n);
    if (data[1] & 1)
        fix_up_checksums(stream, n);
    feed_server_bytes(fds[1], stream, n);
    free(stream);

    struct spy_client *c = client_new(fds[0], "fuzz");
    if (c == NULL)
        abort();
    int ops[3] = {data[0] & 7, (data[0] >> 3) & 7, (data[1] >> 2) & 7};
    int nops = 1 + (data[1] >> 6) % 3;
    for (int i = 0; i < nops && !spy_client_broken(c); i++)
        run_op(c, ops[i], (data[1] >> 1) & 1);
    spy_client_close(c); /* closes fds[0] */
    close(fds[1]);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    spy_log_set_level(SPY_LOG_ERROR); /* protocol errors are the point here */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_frame_codec(data, size);
    check_payload_codecs(data, size);
    if (size > SPY_FRAME_HDR_SIZE)
        check_payload_codecs(data + SPY_FRAME_HDR_SIZE, size - SPY_FRAME_HDR_SIZE);
    check_client(data, size);
    return 0;
}
