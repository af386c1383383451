/* fuzz_conn.c - libFuzzer target for a whole spy_server connection.
 *
 * One store (2 chunks of 4 MiB, in a temp dir) and one server object are
 * made at start-up. Each input is a client's byte stream: a thread runs
 * spy_server_serve_connection on one end of a socketpair while this thread
 * writes the input into the other end (then shuts it for writing) and drains
 * every response byte, with poll so neither side can block the other. After
 * the connection ends, no memory block may be held (abort otherwise): every
 * path must give its block back and abort its put. A hang shows up as a
 * libFuzzer timeout; the server's idle timeout (2 s) is only a backstop.
 *
 * Input layout: byte 0 holds options, the rest is the stream.
 *   bit 0: fix up every frame header's hcrc (walking the stream frame by frame)
 *   bit 1: also fix up each END request's total_len and crc to match the DATA
 *          bytes since the last PUT, so puts can commit
 * Without the fix-ups nearly every input dies at the first header crc.
 *
 * The store fills up as inputs commit objects; it is recreated empty every
 * RESET_EVERY inputs so puts keep reaching the commit path.
 * Run: build-fuzz/fuzz/fuzz_conn -max_total_time=60 fuzz/corpus/conn */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chunkserver/mempool.h"
#include "chunkserver/server.h"
#include "chunkserver/store.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/status.h"

#define RESET_EVERY    2000
#define FUZZ_MAX_INPUT (4u << 20)

/* The harness's fixture, made once (libFuzzer calls us in one thread). */
static struct {
    char dir[64];
    struct spy_store *store;
    struct spy_mempool *pool;
    struct spy_server *srv;
    unsigned runs;
} fx;

/* remove_chunks: empties the temp dir (flat). */
static void remove_chunks(void)
{
    DIR *d = opendir(fx.dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", fx.dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

/* open_fixture: a fresh store and a server over it. */
static void open_fixture(void)
{
    struct spy_store_config sc = {
        .data_dir = fx.dir, .chunks = 2, .chunk_size = 4u << 20, .group_id = 1, .wait_ms = 10};
    char err[256];
    if (spy_store_open(&sc, &fx.store, err, sizeof(err)) != SPY_OK) {
        fprintf(stderr, "fuzz_conn: store: %s\n", err);
        abort();
    }
    struct spy_server_config vc = {.listen_ip = "127.0.0.1",
                                   .advertise_ip = "127.0.0.1",
                                   .group_id = 1,
                                   .idle_timeout_ms = 2000,
                                   .max_conns = 4,
                                   .mem_wait_ms = 10,
                                   .drain_ms = 100,
                                   .store = fx.store,
                                   .pool = fx.pool};
    if (spy_server_create(&vc, &fx.srv) != SPY_OK)
        abort();
}

/* close_fixture: the server, then the store; the chunk files go. */
static void close_fixture(void)
{
    spy_server_stop(fx.srv);
    spy_server_destroy(fx.srv);
    spy_store_close(fx.store);
    remove_chunks();
}

/* at_exit: leaves no temp dir behind. */
static void at_exit(void)
{
    close_fixture();
    spy_mempool_destroy(fx.pool);
    rmdir(fx.dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    spy_log_set_level(SPY_LOG_ERROR);
    strcpy(fx.dir, "/tmp/spy_fuzz_conn.XXXXXX");
    if (mkdtemp(fx.dir) == NULL)
        abort();
    fx.pool = spy_mempool_create(2);
    open_fixture();
    atexit(at_exit);
    return 0;
}

/* fix_up: makes headers (and optionally END payloads) valid, see above. */
static void fix_up(uint8_t *p, size_t n, int fix_end)
{
    uint32_t crc = 0;
    uint64_t total = 0;
    size_t pos = 0;
    while (pos + SPY_FRAME_HDR_SIZE <= n) {
        uint8_t *h = p + pos;
        uint8_t op = h[3];
        uint32_t len = spy_get_u32(h + 16);
        size_t avail = n - pos - SPY_FRAME_HDR_SIZE;
        size_t take = len < avail ? len : avail;
        uint8_t *payload = h + SPY_FRAME_HDR_SIZE;
        if (op == SPY_OP_PUT) {
            crc = 0;
            total = 0;
        } else if (op == SPY_OP_DATA) {
            crc = spy_crc32c(crc, payload, take);
            total += take;
        } else if (op == SPY_OP_END && fix_end && len == SPY_END_REQ_PAYLOAD &&
                   take == SPY_END_REQ_PAYLOAD) {
            spy_put_u64(payload, total);
            spy_put_u32(payload + 8, crc);
        }
        spy_put_u32(h + 20, spy_crc32c(0, h, 20));
        pos += SPY_FRAME_HDR_SIZE + take;
    }
}

/* serve: the server side of one input's connection. */
static void *serve(void *arg)
{
    spy_server_serve_connection(fx.srv, *(int *)arg);
    return NULL;
}

/* pump: writes the stream and drains the responses until the server closes. */
static void pump(int fd, const uint8_t *p, size_t n)
{
    uint8_t sink[65536];
    size_t sent = 0;
    int open_for_write = 1;
    for (;;) {
        if (open_for_write && sent == n) {
            shutdown(fd, SHUT_WR);
            open_for_write = 0;
        }
        struct pollfd pf = {.fd = fd, .events = POLLIN | (open_for_write ? POLLOUT : 0)};
        int ready = poll(&pf, 1, 10000);
        if (ready < 0 && errno == EINTR)
            continue; /* libFuzzer's timeout alarm */
        if (ready <= 0)
            abort(); /* nothing moved for 10 s: a hang */
        if (pf.revents & POLLIN) {
            ssize_t r = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
            if (r == 0 || (r < 0 && !open_for_write))
                return;
        }
        if (open_for_write && (pf.revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = send(fd, p + sent, n - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
            else if (w < 0 && (pf.revents & (POLLERR | POLLHUP)))
                sent = n; /* the server closed: stop writing, read to EOF */
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > FUZZ_MAX_INPUT)
        return 0;
    if (++fx.runs % RESET_EVERY == 0) {
        close_fixture();
        open_fixture();
    }
    size_t n = size - 1;
    uint8_t *stream = malloc(n > 0 ? n : 1);
    memcpy(stream, data + 1, n);
    if (data[0] & 1)
        fix_up(stream, n, (data[0] & 2) != 0);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    pthread_t th;
    if (pthread_create(&th, NULL, serve, &sv[1]) != 0)
        abort();
    pump(sv[0], stream, n);
    pthread_join(th, NULL);
    close(sv[0]);
    free(stream);
    if (spy_mempool_in_use(fx.pool) != 0)
        abort(); /* a path kept its memory block */
    return 0;
}
