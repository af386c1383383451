/* srvtest.c - the spy_server test helpers (see srvtest.h). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tests/chunkserver/srvtest.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/status.h"

int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void fill_pattern(uint8_t *buf, size_t len, uint32_t seed)
{
    uint64_t x = 0x9E3779B97F4A7C15ull ^ seed;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)(x >> 24);
    }
}

void srvtest_setup(struct srvtest *t, uint32_t blocks, int mem_wait_ms)
{
    memset(t, 0, sizeof(*t));
    strcpy(t->dir, "/tmp/spy_srvtest.XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    struct spy_store_config sc = {.data_dir = t->dir,
                                  .chunks = 4,
                                  .chunk_size = 8u << 20,
                                  .sync = 0,
                                  .group_id = 7,
                                  .wait_ms = 200};
    char err[256] = "";
    int rc = spy_store_open(&sc, &t->store, err, sizeof(err));
    if (rc != SPY_OK)
        fail_msg("store open: %s", err);
    t->pool = spy_mempool_create(blocks);
    assert_non_null(t->pool);
    struct spy_server_config vc = {.listen_ip = "127.0.0.1",
                                   .port = 0,
                                   .advertise_ip = "127.0.0.1",
                                   .group_id = 7,
                                   .idle_timeout_ms = 10000,
                                   .max_conns = 64,
                                   .mem_wait_ms = mem_wait_ms,
                                   .drain_ms = 2000,
                                   .store = t->store,
                                   .pool = t->pool};
    assert_int_equal(spy_server_create(&vc, &t->srv), SPY_OK);
}

/* remove_dir: deletes the temp dir's files (flat) and the dir. */
static void remove_dir(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        if (unlink(p) != 0 && errno == EISDIR)
            remove_dir(p);
    }
    closedir(d);
    rmdir(path);
}

void srvtest_teardown(struct srvtest *t)
{
    int left = spy_server_stop(t->srv);
    uint32_t in_use = spy_mempool_in_use(t->pool);
    if (left == 0) { /* else a connection thread may still use them */
        spy_server_destroy(t->srv);
        spy_store_close(t->store);
        if (in_use == 0)
            spy_mempool_destroy(t->pool);
    }
    remove_dir(t->dir); /* before asserting, so a failure leaves no temp dir */
    assert_int_equal(left, 0);
    assert_int_equal(in_use, 0);
}

/* serve_thread: runs the server side of one socketpair. */
static void *serve_thread(void *arg)
{
    struct srvconn *c = arg;
    c->result = spy_server_serve_connection(c->srv, c->server_fd);
    return NULL;
}

void srvconn_open(struct srvconn *c, struct spy_server *srv)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    c->fd = sv[0];
    c->server_fd = sv[1];
    c->srv = srv;
    c->result = 12345;
    assert_int_equal(pthread_create(&c->thread, NULL, serve_thread, c), 0);
}

int srvconn_close(struct srvconn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    pthread_join(c->thread, NULL);
    return c->result;
}

void srvconn_expect_eof(struct srvconn *c)
{
    uint8_t b;
    ssize_t n = recv(c->fd, &b, 1, 0);
    assert_int_equal(n, 0);
}

void frame_send_raw(int fd, const void *bytes, size_t len)
{
    const uint8_t *p = bytes;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

void frame_send(int fd, uint8_t op, uint8_t flags, uint64_t req_id, const void *payload,
                uint32_t len)
{
    struct spy_frame f = {.op = op, .flags = flags, .req_id = req_id, .len = len};
    uint8_t hdr[SPY_FRAME_HDR_SIZE];
    spy_frame_encode(&f, hdr);
    frame_send_raw(fd, hdr, sizeof(hdr));
    if (len > 0)
        frame_send_raw(fd, payload, len);
}

/* recv_all: exactly n bytes or the test fails. */
static void recv_all(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            fail_msg("recv: %s", r == 0 ? "EOF" : strerror(errno));
        p += r;
        n -= (size_t)r;
    }
}

void frame_recv(int fd, struct spy_frame *f, void *buf, size_t cap)
{
    uint8_t hdr[SPY_FRAME_HDR_SIZE];
    recv_all(fd, hdr, sizeof(hdr));
    assert_int_equal(spy_frame_decode(hdr, f), SPY_OK);
    assert_true(f->len <= cap);
    if (f->len > 0)
        recv_all(fd, buf, f->len);
}

int frame_expect(int fd, uint8_t op, uint64_t req_id, void *buf, size_t cap, uint32_t *len)
{
    struct spy_frame f;
    uint8_t scratch[64];
    if (buf == NULL) {
        buf = scratch;
        cap = sizeof(scratch);
    }
    frame_recv(fd, &f, buf, cap);
    assert_int_equal(f.op, op);
    assert_int_equal(f.req_id, req_id);
    assert_int_equal(f.flags, SPY_FRAME_RESPONSE);
    if (len != NULL)
        *len = f.len;
    return f.status;
}

int client_put(int fd, uint64_t req_id, uint64_t fid, const void *data, size_t len, size_t frame)
{
    uint8_t p[SPY_PUT_REQ_PAYLOAD];
    struct spy_put_req pr = {.fid = fid, .max_len = len};
    spy_put_req_encode(&pr, p);
    frame_send(fd, SPY_OP_PUT, 0, req_id, p, sizeof(p));
    for (size_t off = 0; off < len; off += frame) {
        size_t n = len - off < frame ? len - off : frame;
        frame_send(fd, SPY_OP_DATA, 0, req_id, (const uint8_t *)data + off, (uint32_t)n);
    }
    uint8_t e[SPY_END_REQ_PAYLOAD];
    struct spy_end_req er = {.total_len = len, .crc = spy_crc32c(0, data, len)};
    spy_end_req_encode(&er, e);
    frame_send(fd, SPY_OP_END, 0, req_id, e, sizeof(e));
    return frame_expect(fd, SPY_OP_PUT, req_id, NULL, 0, NULL);
}

int client_get(int fd, uint64_t req_id, uint64_t fid, uint64_t off, uint64_t len, void *out,
               size_t cap, size_t *got, uint64_t *object_len)
{
    uint8_t p[SPY_GET_REQ_PAYLOAD];
    struct spy_get_req gr = {.fid = fid, .offset = off, .length = len};
    spy_get_req_encode(&gr, p);
    frame_send(fd, SPY_OP_GET, 0, req_id, p, sizeof(p));
    uint32_t n;
    *got = 0;
    int st = frame_expect(fd, SPY_OP_GET, req_id, p, sizeof(p), &n);
    if (st != SPY_OK) {
        assert_int_equal(n, 0);
        return st;
    }
    struct spy_get_resp resp;
    assert_int_equal(spy_get_resp_decode(p, n, &resp), SPY_OK);
    assert_int_equal(resp.offset, off);
    if (object_len != NULL)
        *object_len = resp.object_len;
    uint32_t crc = 0;
    uint8_t *dst = out;
    for (;;) {
        struct spy_frame f;
        uint8_t hdr[SPY_FRAME_HDR_SIZE];
        recv_all(fd, hdr, sizeof(hdr));
        assert_int_equal(spy_frame_decode(hdr, &f), SPY_OK);
        assert_int_equal(f.req_id, req_id);
        assert_true(f.flags & SPY_FRAME_RESPONSE);
        if (f.op == SPY_OP_END) {
            uint8_t e[SPY_END_RESP_PAYLOAD];
            assert_int_equal(f.len, sizeof(e));
            recv_all(fd, e, sizeof(e));
            assert_int_equal(spy_get_u32(e), crc);
            if (f.status == SPY_OK)
                assert_int_equal(*got, resp.length);
            return f.status;
        }
        assert_int_equal(f.op, SPY_OP_DATA);
        assert_true(f.len >= 1 && *got + f.len <= cap && *got + f.len <= resp.length);
        recv_all(fd, dst + *got, f.len);
        crc = spy_crc32c(crc, dst + *got, f.len);
        *got += f.len;
    }
}

int client_stat(int fd, uint64_t req_id, uint64_t fid, struct spy_stat_resp *out)
{
    uint8_t p[SPY_STAT_RESP_PAYLOAD];
    spy_put_u64(p, fid);
    frame_send(fd, SPY_OP_STAT, 0, req_id, p, SPY_FID_PAYLOAD);
    uint32_t n;
    int st = frame_expect(fd, SPY_OP_STAT, req_id, p, sizeof(p), &n);
    if (st == SPY_OK && out != NULL)
        assert_int_equal(spy_stat_resp_decode(p, n, out), SPY_OK);
    if (st != SPY_OK)
        assert_int_equal(n, 0);
    return st;
}

int client_delete(int fd, uint64_t req_id, uint64_t fid)
{
    uint8_t p[SPY_FID_PAYLOAD];
    spy_put_u64(p, fid);
    frame_send(fd, SPY_OP_DELETE, 0, req_id, p, sizeof(p));
    return frame_expect(fd, SPY_OP_DELETE, req_id, NULL, 0, NULL);
}

int client_ping(int fd, uint64_t req_id)
{
    frame_send(fd, SPY_OP_PING, 0, req_id, NULL, 0);
    return frame_expect(fd, SPY_OP_PING, req_id, NULL, 0, NULL);
}
