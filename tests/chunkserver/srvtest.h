/* srvtest.h - helpers for the spy_server tests: a store in a temp dir, a
 * server object, connections run by a thread on a socketpair, and a raw-frame
 * client (proto.h codecs only, so the tests check the wire, not spy_client).
 *
 * Every helper fails the calling cmocka test (assert_*) on an unexpected
 * error; client reads have a 10 s socket timeout, so no test can hang. */
#ifndef SPY_SRVTEST_H
#define SPY_SRVTEST_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkserver/mempool.h"
#include "chunkserver/server.h"
#include "chunkserver/store.h"
#include "common/proto.h"

struct srvtest {
    char dir[64];
    struct spy_store *store;
    struct spy_mempool *pool;
    struct spy_server *srv;
};

/* Creates a temp dir, a store (4 chunks of 8 MiB), a pool of 'blocks' and a
 * server (not listening) with the given memory wait. */
void srvtest_setup(struct srvtest *t, uint32_t blocks, int mem_wait_ms);

/* Checks the pool is back to 0 blocks in use, then frees everything and
 * removes the temp dir. */
void srvtest_teardown(struct srvtest *t);

/* A connection served by a thread calling spy_server_serve_connection. */
struct srvconn {
    int fd; /* the client's end */
    pthread_t thread;
    struct spy_server *srv;
    int server_fd;
    int result; /* spy_server_serve_connection's return, after srvconn_close */
};

void srvconn_open(struct srvconn *c, struct spy_server *srv);

/* Closes the client end, joins the thread and returns the server's result. */
int srvconn_close(struct srvconn *c);

/* Waits (up to 10 s) for EOF from the server: the server closed. */
void srvconn_expect_eof(struct srvconn *c);

/* Raw frames. */
void frame_send(int fd, uint8_t op, uint8_t flags, uint64_t req_id, const void *payload,
                uint32_t len);
void frame_send_raw(int fd, const void *bytes, size_t len);

/* Receives one frame header (decoded) and its payload into buf (cap bytes). */
void frame_recv(int fd, struct spy_frame *f, void *buf, size_t cap);

/* Receives one response and checks op, req_id and the RESPONSE flag; returns
 * its status. */
int frame_expect(int fd, uint8_t op, uint64_t req_id, void *buf, size_t cap, uint32_t *len);

/* A whole put in DATA frames of 'frame' bytes; returns the PUT status. */
int client_put(int fd, uint64_t req_id, uint64_t fid, const void *data, size_t len, size_t frame);

/* A GET into out (cap bytes). Returns the GET response status if it failed,
 * else the END status; *got = bytes received (their crc is checked against
 * END), *object_len from the GET response. */
int client_get(int fd, uint64_t req_id, uint64_t fid, uint64_t off, uint64_t len, void *out,
               size_t cap, size_t *got, uint64_t *object_len);

/* STAT / DELETE status. */
int client_stat(int fd, uint64_t req_id, uint64_t fid, struct spy_stat_resp *out);
int client_delete(int fd, uint64_t req_id, uint64_t fid);
int client_ping(int fd, uint64_t req_id);

/* Deterministic test bytes. */
void fill_pattern(uint8_t *buf, size_t len, uint32_t seed);

/* Monotonic milliseconds. */
int64_t mono_ms(void);

#endif
