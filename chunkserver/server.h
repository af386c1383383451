/* server.h - spy_server's network side: accepts TCP connections and runs the
 * chunkserver protocol (common/proto.h, docs/protocol.md) on each one against
 * the storage engine (store.h), with every buffered byte of object data in a
 * --mem_blocks block (mempool.h).
 *
 * Threads: one accept thread; one detached thread per connection (256 KiB
 * stack) running blocking sockets with SO_RCVTIMEO/SO_SNDTIMEO set to the idle
 * timeout. A connection handles its requests in order, one at a time.
 *
 * Memory: a GET or a PUT holds exactly one SPY_MEMPOOL_BLOCK block while it
 * runs, waited for up to mem_wait_ms (back-pressure; then the request gets
 * ENOMEM), and gives it back on every path. Other requests use the stack.
 *
 * Protocol decisions proto.h leaves open (docs/spy_server.md repeats them):
 *  - A malformed frame (bad header, a response flag on a request, ABORT on
 *    anything but END, DATA/END outside a put, a fixed-size payload of the
 *    wrong size, a frame of another req_id or op in the middle of a put) gets
 *    an EPROTO response and the connection is closed. The response echoes
 *    req_id and op when the header decoded, else it carries req_id 0, op PING.
 *  - An END whose total_len differs from the bytes received aborts the put
 *    and gets an EPROTO PUT response, then the connection is closed: the
 *    client's framing and ours disagree, so the stream is not trusted.
 *  - A put refused early (ENOMEM, EEXISTS, ENOSPC, ...; or ERANGE/EIO from an
 *    append) gets its PUT response at once; that req_id's following DATA frames
 *    and its END are read and dropped. Any other frame ends the discarding and
 *    is served as a new request, so a client may also stop sending at once.
 *  - END with SPY_FRAME_ABORT (payload empty or 12 bytes, ignored) aborts the
 *    put and is answered with EABORTED.
 *  - The connection closing (or timing out) in the middle of a put aborts it.
 */
#ifndef SPY_SERVER_H
#define SPY_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "chunkserver/mempool.h"
#include "chunkserver/store.h"

struct spy_server_config {
    const char *listen_ip;    /* "127.0.0.1", "::1", "0.0.0.0", "::" (copied) */
    int port;                 /* 0 picks a free port (tests); see spy_server_port */
    const char *advertise_ip; /* shown in STATUS (copied) */
    uint32_t group_id;        /* shown in STATUS */
    int sync;                 /* shown in STATUS */
    int idle_timeout_ms;      /* per-socket-operation timeout, > 0 */
    uint32_t max_conns;       /* connections beyond this are closed at once */
    int mem_wait_ms;          /* how long a GET/PUT waits for a memory block */
    int drain_ms;             /* spy_server_stop: how long busy connections may finish */
    struct spy_store *store;  /* not owned; must outlive the server */
    struct spy_mempool *pool; /* not owned; must outlive the server */
};

/* Counters for STATUS and the reporter; a snapshot, each value read atomically. */
struct spy_server_counters {
    uint64_t connections;     /* open now */
    uint64_t accepted;        /* since start */
    uint64_t refused;         /* closed at once because of max_conns */
    uint64_t reads_active;    /* GETs streaming now */
    uint64_t puts_active;     /* puts receiving body bytes now */
    uint64_t requests;        /* requests answered since start */
    uint64_t protocol_errors; /* connections closed for a malformed frame */
    uint64_t store_readonly;  /* 1 if the store's last write answer was EREADONLY */
};

struct spy_server;

/* Allocates a server (nothing listens yet). Returns SPY_OK, SPY_EINVAL or
 * SPY_ENOMEM. */
int spy_server_create(const struct spy_server_config *cfg, struct spy_server **out);

/* Binds listen_ip:port (SO_REUSEADDR; "::" also accepts IPv4) and starts the
 * accept thread. Returns SPY_OK, SPY_EINVAL (not an address) or SPY_EIO (bind,
 * listen or thread failure, logged). */
int spy_server_start(struct spy_server *srv);

/* The bound port (after a successful start), e.g. when config port was 0. */
int spy_server_port(const struct spy_server *srv);

/* Stops accepting, closes connections that sit idle between requests at once,
 * lets busy ones finish their request for up to drain_ms, then shuts the rest
 * down and waits for their threads (they end within mem_wait_ms plus the
 * store's wait_ms). Returns the number of connection threads still running
 * (0 normally): if not 0 the store must not be closed. The connections
 * run by spy_server_serve_connection are covered too; later calls of it
 * return at once. Calling stop again is harmless. */
int spy_server_stop(struct spy_server *srv);

/* Frees the server. spy_server_stop must have returned 0 (or start never ran
 * and no spy_server_serve_connection call is running). */
void spy_server_destroy(struct spy_server *srv);

/* Runs the protocol on fd (a connected stream socket) on the calling thread
 * until the peer closes, times out or breaks the protocol, then closes fd.
 * Sets the socket timeouts itself. Used by the connection threads, the tests
 * and the fuzzer (on a socketpair); max_conns is enforced by the accept
 * thread only, not here. Thread-safe. Returns why it ended:
 * SPY_OK (the peer closed between requests, or the server is stopping),
 * SPY_EPROTO (a malformed frame was answered with EPROTO), SPY_ETIMEDOUT
 * (idle timeout), SPY_ECLOSED (the peer closed in the middle of a frame or a
 * put) or SPY_EIO (a socket error). Never leaves a put open or a block held. */
int spy_server_serve_connection(struct spy_server *srv, int fd);

/* A snapshot of the counters. Thread-safe, never blocks on I/O. */
void spy_server_get_counters(struct spy_server *srv, struct spy_server_counters *out);

/* Seconds since spy_server_create. */
uint64_t spy_server_uptime(const struct spy_server *srv);

/* The STATUS op's JSON text (see docs/spy_server.md) written into buf with a
 * NUL. Returns its length, or -1 if it does not fit (or jansson failed). */
int spy_server_status_json(struct spy_server *srv, char *buf, size_t cap);

#endif
