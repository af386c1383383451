/* server.c - accepting connections and the per-connection protocol loop
 * (see server.h for the contract and the protocol decisions).
 *
 * Lifetime: every running connection (from the accept thread or a direct
 * spy_server_serve_connection call) is a conn_node on srv->conns, so
 * spy_server_stop can shut its socket down and wait for it to end. A node
 * marked 'idle' is waiting for the first byte of its next request: stop may
 * close it at once without cutting a request in half. */
#include "chunkserver/server.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/status.h"

#define CONN_STACK_SIZE (256u << 10)
#define DISCARD_BUF     16384 /* stack buffer for payload bytes we drop */
#define REAP_MS         30000 /* stop: wait for shut-down connections */
#define LINGER_MS       1000  /* close after EPROTO: drain the peer's bytes this long */
#define LINGER_BYTES    (4u << 20)
#define SPY_VERSION     "speedy 0.1"
#define CONN_DONE       1 /* read_header: clean end between requests */

struct conn_node {
    struct conn_node *prev, *next;
    int fd;
    int idle; /* waiting for a request's first byte; under srv->lock */
};

struct spy_server {
    struct spy_server_config cfg;
    char *listen_ip, *advertise_ip; /* owned copies of the config strings */
    int listen_fd, bound_port;
    int wake_pipe[2]; /* written by stop to end the accept thread's poll */
    pthread_t accept_thread;
    int accept_running;
    int64_t started_ms;
    int64_t refuse_logged_ms;  /* accept thread only */
    uint64_t refused_unlogged; /* accept thread only */

    pthread_mutex_t lock; /* guards conns, nconns, stopping */
    pthread_cond_t conn_gone;
    struct conn_node conns; /* list head */
    uint32_t nconns;
    int stopping;

    atomic_uint_fast64_t accepted, refused, reads_active, puts_active, requests, protocol_errors;
    atomic_int store_readonly;
};

/* One connection's state while it runs. 'block' and 'put' are what must be
 * given back on every path; conn_release does it. */
struct conn {
    struct spy_server *srv;
    struct conn_node *node;
    int fd;
    uint8_t *block;      /* mempool block of the current GET/PUT, or NULL */
    struct spy_put *put; /* open put, or NULL */
    int discarding;      /* dropping DATA/END of a refused put */
    uint64_t discard_id;
};

/* ---- socket I/O ---------------------------------------------------------- */

/* recv_exact: reads exactly n bytes. *got says how many arrived before an
 * error. SPY_ECLOSED on EOF, SPY_ETIMEDOUT when SO_RCVTIMEO expired. */
static int recv_exact(int fd, void *buf, size_t n, size_t *got)
{
    uint8_t *p = buf;
    size_t done = 0;
    int rc = SPY_OK;
    while (done < n) {
        ssize_t r = recv(fd, p + done, n - done, 0);
        if (r > 0) {
            done += (size_t)r;
        } else if (r == 0) {
            rc = SPY_ECLOSED;
            break;
        } else if (errno != EINTR) {
            rc = errno == EAGAIN || errno == EWOULDBLOCK ? SPY_ETIMEDOUT : SPY_EIO;
            break;
        }
    }
    if (got != NULL)
        *got = done;
    return rc;
}

/* send_iov: writes every byte of iov (modified in place). MSG_NOSIGNAL so a
 * vanished peer is an EIO, never a SIGPIPE, even outside the daemon. */
static int send_iov(int fd, struct iovec *iov, int iovcnt)
{
    while (iovcnt > 0) {
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? SPY_ETIMEDOUT : SPY_EIO;
        }
        while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return SPY_OK;
}

/* send_frame: one response frame (header + payload) in a single sendmsg. */
static int send_frame(struct conn *c, uint8_t op, uint64_t req_id, int status, const void *payload,
                      uint32_t len)
{
    struct spy_frame f = {
        .op = op, .flags = SPY_FRAME_RESPONSE, .status = status, .req_id = req_id, .len = len};
    uint8_t hdr[SPY_FRAME_HDR_SIZE];
    spy_frame_encode(&f, hdr);
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)payload, len}};
    return send_iov(c->fd, iov, len > 0 ? 2 : 1);
}

/* reply: a request's single response frame; counts it. */
static int reply(struct conn *c, const struct spy_frame *req, int status, const void *payload,
                 uint32_t len)
{
    atomic_fetch_add(&c->srv->requests, 1);
    return send_frame(c, req->op, req->req_id, status, payload, len);
}

/* proto_error: answers a malformed frame with EPROTO (echoing req_id and op
 * when the header decoded, else 0 and PING) and tells the caller to close. */
static int proto_error(struct conn *c, const struct spy_frame *f, const char *why)
{
    atomic_fetch_add(&c->srv->protocol_errors, 1);
    spy_info("connection fd %d: protocol error (%s), closing", c->fd, why);
    send_frame(c, f != NULL ? f->op : SPY_OP_PING, f != NULL ? f->req_id : 0, SPY_EPROTO, NULL, 0);
    return SPY_EPROTO;
}

/* read_error: turns a failed read in the middle of a frame into the
 * connection's end: truncated input is a protocol error the peer may still
 * read; a timeout or socket error just closes. */
static int read_error(struct conn *c, const struct spy_frame *f, int rc)
{
    if (rc == SPY_ECLOSED) {
        proto_error(c, f, "truncated frame");
        return SPY_ECLOSED;
    }
    spy_debug("connection fd %d: %s in the middle of a frame", c->fd, spy_strerror(rc));
    return rc;
}

/* discard_payload: reads and drops n payload bytes through a stack buffer. */
static int discard_payload(struct conn *c, const struct spy_frame *f, uint32_t n)
{
    uint8_t buf[DISCARD_BUF];
    while (n > 0) {
        size_t step = n < sizeof(buf) ? n : sizeof(buf);
        int rc = recv_exact(c->fd, buf, step, NULL);
        if (rc != SPY_OK)
            return read_error(c, f, rc);
        n -= (uint32_t)step;
    }
    return SPY_OK;
}

/* read_fixed: reads a fixed-size request payload, refusing a wrong size
 * before reading anything (the stream cannot be trusted after it). */
static int read_fixed(struct conn *c, const struct spy_frame *f, uint8_t *buf, uint32_t size)
{
    if (f->len != size)
        return proto_error(c, f, "payload of the wrong size");
    int rc = recv_exact(c->fd, buf, size, NULL);
    return rc == SPY_OK ? SPY_OK : read_error(c, f, rc);
}

/* read_header: reads and decodes the next frame header. 'between' marks the
 * connection idle while it waits (spy_server_stop may then close it); a clean
 * EOF there, or a server that is stopping, returns CONN_DONE. */
static int read_header(struct conn *c, struct spy_frame *f, int between)
{
    struct spy_server *srv = c->srv;
    uint8_t hdr[SPY_FRAME_HDR_SIZE];
    if (between) {
        pthread_mutex_lock(&srv->lock);
        int stopping = srv->stopping;
        c->node->idle = !stopping;
        pthread_mutex_unlock(&srv->lock);
        if (stopping)
            return CONN_DONE;
    }
    size_t got;
    int rc = recv_exact(c->fd, hdr, sizeof(hdr), &got);
    if (between) {
        pthread_mutex_lock(&srv->lock);
        c->node->idle = 0;
        pthread_mutex_unlock(&srv->lock);
    }
    if (rc == SPY_ECLOSED && got == 0 && between)
        return CONN_DONE;
    if (rc != SPY_OK)
        return read_error(c, NULL, rc);
    if (spy_frame_decode(hdr, f) != SPY_OK)
        return proto_error(c, NULL, "bad frame header");
    if (f->flags & SPY_FRAME_RESPONSE)
        return proto_error(c, f, "response flag on a request");
    if ((f->flags & SPY_FRAME_ABORT) && f->op != SPY_OP_END)
        return proto_error(c, f, "abort flag outside END");
    return SPY_OK;
}

/* ---- memory blocks and the store's write answers ------------------------ */

/* take_block: the GET/PUT's one memory block, waited for (back-pressure). */
static int take_block(struct conn *c)
{
    c->block = spy_mempool_get(c->srv->cfg.pool, c->srv->cfg.mem_wait_ms);
    if (c->block != NULL)
        return SPY_OK;
    spy_warn("connection fd %d: no memory block free within %d ms", c->fd, c->srv->cfg.mem_wait_ms);
    return SPY_ENOMEM;
}

/* conn_release: gives back whatever the current request holds; safe to call
 * on every path, any number of times. */
static void conn_release(struct conn *c)
{
    if (c->put != NULL) {
        spy_store_put_abort(c->put);
        c->put = NULL;
    }
    if (c->block != NULL) {
        spy_mempool_put(c->srv->cfg.pool, c->block);
        c->block = NULL;
    }
}

/* note_write: remembers whether the store refuses writes (for ReadOnly). */
static void note_write(struct spy_server *srv, int rc)
{
    if (rc == SPY_EREADONLY)
        atomic_store(&srv->store_readonly, 1);
    else if (rc == SPY_OK)
        atomic_store(&srv->store_readonly, 0);
}

/* ---- GET ----------------------------------------------------------------- */

/* get_range: resolves the request's range against the object length. */
static int get_range(const struct spy_get_req *g, uint64_t object_len, uint64_t *length)
{
    if (g->offset > object_len)
        return SPY_ERANGE;
    uint64_t rest = object_len - g->offset;
    if (g->length > rest)
        return SPY_ERANGE;
    *length = g->length == 0 ? rest : g->length;
    return SPY_OK;
}

/* stream_get: sends DATA frames for [off, off + length) from the block, then
 * END with the outcome and the crc of the bytes sent, joined from the crcs
 * the store derived from its block table (no second pass over the bytes). A
 * store error ends the stream (END carries it); a socket error ends the
 * connection. */
static int stream_get(struct conn *c, const struct spy_frame *f, const struct spy_object_info *info,
                      uint64_t off, uint64_t length)
{
    uint32_t crc = 0;
    int status = SPY_OK;
    while (length > 0) {
        struct spy_store_slice slice;
        status = spy_store_read(c->srv->cfg.store, info, off, length, c->block, SPY_MEMPOOL_BLOCK,
                                &slice);
        if (status != SPY_OK)
            break;
        int rc = send_frame(c, SPY_OP_DATA, f->req_id, SPY_OK, slice.data, (uint32_t)slice.n);
        if (rc != SPY_OK)
            return rc;
        crc = spy_crc32c_combine(crc, slice.crc, slice.n);
        off += slice.n;
        length -= slice.n;
    }
    if (status != SPY_OK)
        spy_warn("GET fid %llu at offset %llu: %s", (unsigned long long)info->fid,
                 (unsigned long long)off, spy_strerror(status));
    uint8_t end[SPY_END_RESP_PAYLOAD];
    spy_put_u32(end, crc);
    atomic_fetch_add(&c->srv->requests, 1);
    return send_frame(c, SPY_OP_END, f->req_id, status, end, sizeof(end));
}

/* do_get: stat, range check, block, GET response, stream. Errors before any
 * byte are a bare GET response with the status. */
static int do_get(struct conn *c, const struct spy_frame *f)
{
    uint8_t payload[SPY_GET_REQ_PAYLOAD];
    struct spy_get_req g;
    int rc = read_fixed(c, f, payload, sizeof(payload));
    if (rc != SPY_OK)
        return rc;
    spy_get_req_decode(payload, sizeof(payload), &g);
    struct spy_object_info info;
    uint64_t length = 0;
    rc = spy_store_stat(c->srv->cfg.store, g.fid, &info);
    if (rc == SPY_OK)
        rc = get_range(&g, info.len, &length);
    if (rc == SPY_OK)
        rc = take_block(c);
    if (rc != SPY_OK)
        return reply(c, f, rc, NULL, 0);
    struct spy_get_resp resp = {.object_len = info.len, .offset = g.offset, .length = length};
    spy_get_resp_encode(&resp, payload);
    atomic_fetch_add(&c->srv->reads_active, 1);
    rc = send_frame(c, SPY_OP_GET, f->req_id, SPY_OK, payload, SPY_GET_RESP_PAYLOAD);
    if (rc == SPY_OK)
        rc = stream_get(c, f, &info, g.offset, length);
    atomic_fetch_sub(&c->srv->reads_active, 1);
    conn_release(c);
    return rc;
}

/* ---- PUT ----------------------------------------------------------------- */

/* refuse_put: answers a put early with 'status' and drops its remaining
 * DATA/END frames (see server.h). */
static int refuse_put(struct conn *c, const struct spy_frame *f, int status)
{
    conn_release(c);
    c->discarding = 1;
    c->discard_id = f->req_id;
    return reply(c, f, status, NULL, 0);
}

/* put_data: reads one DATA payload into the block, appending to the store
 * each time the block fills. A store error still reads the rest of the frame
 * (to stay in step), then refuses the put. */
static int put_data(struct conn *c, const struct spy_frame *put_req, const struct spy_frame *f,
                    size_t *fill)
{
    uint32_t left = f->len;
    while (left > 0) {
        size_t step = SPY_MEMPOOL_BLOCK - *fill;
        if (step > left)
            step = left;
        int rc = recv_exact(c->fd, c->block + *fill, step, NULL);
        if (rc != SPY_OK)
            return read_error(c, f, rc);
        *fill += step;
        left -= (uint32_t)step;
        if (*fill < SPY_MEMPOOL_BLOCK)
            continue;
        rc = spy_store_put_append(c->put, c->block, *fill);
        *fill = 0;
        if (rc != SPY_OK) {
            int drc = discard_payload(c, f, left);
            if (drc != SPY_OK)
                return drc;
            return refuse_put(c, put_req, rc);
        }
    }
    return SPY_OK;
}

/* put_end: the END frame of an accepted put: abort, or check the length,
 * append the rest and commit. Answers with one PUT response. */
static int put_end(struct conn *c, const struct spy_frame *put_req, const struct spy_frame *f,
                   uint64_t received, size_t fill)
{
    if (f->flags & SPY_FRAME_ABORT) {
        int rc = discard_payload(c, f, f->len);
        if (rc != SPY_OK)
            return rc;
        conn_release(c);
        return reply(c, put_req, SPY_EABORTED, NULL, 0);
    }
    uint8_t payload[SPY_END_REQ_PAYLOAD];
    struct spy_end_req end;
    int rc = read_fixed(c, f, payload, sizeof(payload));
    if (rc != SPY_OK)
        return rc;
    spy_end_req_decode(payload, sizeof(payload), &end);
    if (end.total_len != received) {
        conn_release(c);
        atomic_fetch_add(&c->srv->protocol_errors, 1);
        spy_info("connection fd %d: END says %llu bytes, %llu arrived; closing", c->fd,
                 (unsigned long long)end.total_len, (unsigned long long)received);
        reply(c, put_req, SPY_EPROTO, NULL, 0);
        return SPY_EPROTO;
    }
    rc = fill > 0 ? spy_store_put_append(c->put, c->block, fill) : SPY_OK;
    if (rc == SPY_OK) {
        rc = spy_store_put_commit(c->put, end.crc);
        c->put = NULL; /* freed by commit in every case */
    }
    note_write(c->srv, rc);
    conn_release(c);
    return reply(c, put_req, rc, NULL, 0);
}

/* put_stream: reads the put's DATA frames and its END. Anything else in the
 * middle of a put is a protocol error; the caller releases on every path. */
static int put_stream(struct conn *c, const struct spy_frame *put_req)
{
    uint64_t received = 0;
    size_t fill = 0;
    for (;;) {
        struct spy_frame f;
        int rc = read_header(c, &f, 0);
        if (rc != SPY_OK)
            return rc;
        if (f.req_id != put_req->req_id || (f.op != SPY_OP_DATA && f.op != SPY_OP_END))
            return proto_error(c, &f, "another frame in the middle of a put");
        if (f.op == SPY_OP_END)
            return put_end(c, put_req, &f, received, fill);
        if (f.len == 0)
            return proto_error(c, &f, "empty DATA frame");
        rc = put_data(c, put_req, &f, &fill);
        if (rc != SPY_OK || c->put == NULL)
            return rc; /* error, or refused by the store: now discarding */
        received += f.len;
    }
}

/* do_put: a block, then the store's put, then the body stream. */
static int do_put(struct conn *c, const struct spy_frame *f)
{
    uint8_t payload[SPY_PUT_REQ_PAYLOAD];
    struct spy_put_req p;
    int rc = read_fixed(c, f, payload, sizeof(payload));
    if (rc != SPY_OK)
        return rc;
    spy_put_req_decode(payload, sizeof(payload), &p);
    rc = take_block(c);
    if (rc == SPY_OK) {
        rc = spy_store_put_begin(c->srv->cfg.store, p.fid, p.max_len, &c->put);
        if (rc != SPY_OK)
            c->put = NULL;
        if (rc == SPY_EREADONLY)
            note_write(c->srv, rc);
    }
    if (rc != SPY_OK)
        return refuse_put(c, f, rc);
    atomic_fetch_add(&c->srv->puts_active, 1);
    rc = put_stream(c, f);
    atomic_fetch_sub(&c->srv->puts_active, 1);
    conn_release(c);
    return rc;
}

/* ---- the small requests ------------------------------------------------- */

/* do_fid_op: STAT and DELETE, both a bare fid. */
static int do_fid_op(struct conn *c, const struct spy_frame *f)
{
    uint8_t payload[SPY_STAT_RESP_PAYLOAD];
    uint64_t fid;
    int rc = read_fixed(c, f, payload, SPY_FID_PAYLOAD);
    if (rc != SPY_OK)
        return rc;
    spy_fid_decode(payload, SPY_FID_PAYLOAD, &fid);
    if (f->op == SPY_OP_DELETE) {
        rc = spy_store_delete(c->srv->cfg.store, fid);
        note_write(c->srv, rc);
        return reply(c, f, rc, NULL, 0);
    }
    struct spy_object_info info;
    rc = spy_store_stat(c->srv->cfg.store, fid, &info);
    if (rc != SPY_OK)
        return reply(c, f, rc, NULL, 0);
    struct spy_stat_resp st = {.fid = info.fid,
                               .len = info.len,
                               .chunk_id = info.chunk_id,
                               .offset = info.offset,
                               .timestamp = info.timestamp};
    spy_stat_resp_encode(&st, payload);
    return reply(c, f, SPY_OK, payload, SPY_STAT_RESP_PAYLOAD);
}

/* do_status: the STATUS JSON, built on the stack. */
static int do_status(struct conn *c, const struct spy_frame *f)
{
    char json[4096];
    int n = spy_server_status_json(c->srv, json, sizeof(json));
    if (n < 0)
        return reply(c, f, SPY_ENOMEM, NULL, 0);
    return reply(c, f, SPY_OK, json, (uint32_t)n);
}

/* handle_frame: dispatches one request (or drops a refused put's frames). */
static int handle_frame(struct conn *c, const struct spy_frame *f)
{
    if (c->discarding) {
        if (f->req_id == c->discard_id && (f->op == SPY_OP_DATA || f->op == SPY_OP_END)) {
            if (f->op == SPY_OP_END)
                c->discarding = 0;
            return discard_payload(c, f, f->len);
        }
        c->discarding = 0;
    }
    switch (f->op) {
    case SPY_OP_PING:
        return reply(c, f, SPY_OK, NULL, 0);
    case SPY_OP_STATUS:
        return do_status(c, f);
    case SPY_OP_STAT:
    case SPY_OP_DELETE:
        return do_fid_op(c, f);
    case SPY_OP_GET:
        return do_get(c, f);
    case SPY_OP_PUT:
        return do_put(c, f);
    default:
        return proto_error(c, f, "DATA or END outside a put");
    }
}

/* ---- connections --------------------------------------------------------- */

/* set_timeouts: the idle timeout on every blocking send and recv. */
static void set_timeouts(int fd, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* register_conn: puts a node on the list. SPY_ECLOSED when stopping,
 * SPY_EBUSY when 'limit' connections already run (0: no limit). */
static int register_conn(struct spy_server *srv, struct conn_node *node, int fd, uint32_t limit)
{
    node->fd = fd;
    node->idle = 0;
    pthread_mutex_lock(&srv->lock);
    int rc = srv->stopping ? SPY_ECLOSED : limit != 0 && srv->nconns >= limit ? SPY_EBUSY : SPY_OK;
    if (rc == SPY_OK) {
        node->next = srv->conns.next;
        node->prev = &srv->conns;
        srv->conns.next->prev = node;
        srv->conns.next = node;
        srv->nconns++;
    }
    pthread_mutex_unlock(&srv->lock);
    return rc;
}

/* unregister_conn: takes a node off the list and wakes spy_server_stop. */
static void unregister_conn(struct spy_server *srv, struct conn_node *node)
{
    pthread_mutex_lock(&srv->lock);
    node->prev->next = node->next;
    node->next->prev = node->prev;
    srv->nconns--;
    pthread_cond_broadcast(&srv->conn_gone);
    pthread_mutex_unlock(&srv->lock);
}

/* run_registered: the request loop of a registered connection. */
static int run_registered(struct spy_server *srv, struct conn_node *node)
{
    struct conn c = {.srv = srv, .node = node, .fd = node->fd};
    set_timeouts(c.fd, srv->cfg.idle_timeout_ms);
    int rc;
    for (;;) {
        struct spy_frame f;
        rc = read_header(&c, &f, 1);
        if (rc == SPY_OK)
            rc = handle_frame(&c, &f);
        if (rc != SPY_OK)
            break;
    }
    conn_release(&c);
    return rc == CONN_DONE ? SPY_OK : rc;
}

/* close_conn: closes a finished connection. After an EPROTO answer the
 * peer may still be sending; closing with unread bytes would reset the
 * connection and could destroy the answer before the peer reads it, so the
 * write side is shut first and the input drained (bounded in time and bytes). */
static void close_conn(int fd, int rc)
{
    if (rc == SPY_EPROTO && shutdown(fd, SHUT_WR) == 0) {
        uint8_t buf[DISCARD_BUF];
        set_timeouts(fd, LINGER_MS);
        int64_t deadline = spy_clock_ms() + LINGER_MS;
        size_t drained = 0;
        while (drained < LINGER_BYTES && spy_clock_ms() < deadline) {
            ssize_t n = recv(fd, buf, sizeof(buf), 0);
            if (n <= 0 && !(n < 0 && errno == EINTR))
                break;
            if (n > 0)
                drained += (size_t)n;
        }
    }
    close(fd);
}

int spy_server_serve_connection(struct spy_server *srv, int fd)
{
    struct conn_node node;
    if (register_conn(srv, &node, fd, 0) != SPY_OK) {
        close(fd);
        return SPY_OK;
    }
    int rc = run_registered(srv, &node);
    unregister_conn(srv, &node); /* before close: stop must never see a reused fd */
    close_conn(fd, rc);
    return rc;
}

/* An accepted connection handed to its thread, which frees it. */
struct conn_start {
    struct spy_server *srv;
    struct conn_node node;
};

/* conn_thread: a detached connection thread; registered by the accept
 * thread before it was created, so spy_server_stop always sees it. */
static void *conn_thread(void *arg)
{
    struct conn_start *start = arg;
    struct spy_server *srv = start->srv;
    int rc = run_registered(srv, &start->node);
    unregister_conn(srv, &start->node); /* before close: stop must never see a reused fd */
    close_conn(start->node.fd, rc);
    free(start);
    return NULL;
}

/* note_refused: counts a connection closed over max_conns, logging at most
 * once a second how many there were. */
static void note_refused(struct spy_server *srv)
{
    atomic_fetch_add(&srv->refused, 1);
    srv->refused_unlogged++;
    int64_t now = spy_clock_ms();
    if (now - srv->refuse_logged_ms >= 1000) {
        spy_warn("--max_conns=%u reached: closed %llu new connection(s)", srv->cfg.max_conns,
                 (unsigned long long)srv->refused_unlogged);
        srv->refuse_logged_ms = now;
        srv->refused_unlogged = 0;
    }
}

/* spawn_conn: registers an accepted socket and starts its thread, or closes
 * it (over max_conns, stopping, or no thread could be made). */
static void spawn_conn(struct spy_server *srv, int fd, pthread_attr_t *attr)
{
    struct conn_start *start = malloc(sizeof(*start));
    if (start == NULL) {
        spy_error("no memory for a connection");
        close(fd);
        return;
    }
    start->srv = srv;
    int rc = register_conn(srv, &start->node, fd, srv->cfg.max_conns);
    if (rc != SPY_OK) {
        if (rc == SPY_EBUSY)
            note_refused(srv);
        free(start);
        close(fd);
        return;
    }
    atomic_fetch_add(&srv->accepted, 1);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    pthread_t tid;
    int err = pthread_create(&tid, attr, conn_thread, start);
    if (err != 0) {
        spy_error("cannot start a connection thread: %s", strerror(err));
        unregister_conn(srv, &start->node);
        close(fd);
        free(start);
    }
}

/* accept_thread: polls the listening socket and the wake pipe; on EMFILE and
 * friends it backs off 100 ms (logging once a second) instead of spinning. */
static void *accept_thread(void *arg)
{
    struct spy_server *srv = arg;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, CONN_STACK_SIZE);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int64_t error_logged_ms = 0;
    for (;;) {
        struct pollfd p[2] = {{.fd = srv->listen_fd, .events = POLLIN},
                              {.fd = srv->wake_pipe[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents != 0)
            break;
        if (p[0].revents == 0)
            continue;
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            spawn_conn(srv, fd, &attr);
            continue;
        }
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED)
            continue;
        if (spy_clock_ms() - error_logged_ms >= 1000) {
            spy_error("accept: %s", strerror(errno));
            error_logged_ms = spy_clock_ms();
        }
        poll(&p[1], 1, 100);
    }
    pthread_attr_destroy(&attr);
    return NULL;
}

/* dup_or_empty: an owned copy of a config string. */
static char *dup_or_empty(const char *s)
{
    return strdup(s != NULL ? s : "");
}

int spy_server_create(const struct spy_server_config *cfg, struct spy_server **out)
{
    if (cfg->store == NULL || cfg->pool == NULL || cfg->idle_timeout_ms <= 0 ||
        cfg->max_conns == 0 || cfg->port < 0 || cfg->port > 65535)
        return SPY_EINVAL;
    struct spy_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return SPY_ENOMEM;
    srv->cfg = *cfg;
    srv->listen_ip = dup_or_empty(cfg->listen_ip);
    srv->advertise_ip = dup_or_empty(cfg->advertise_ip);
    if (srv->listen_ip == NULL || srv->advertise_ip == NULL) {
        spy_server_destroy(srv);
        return SPY_ENOMEM;
    }
    srv->cfg.listen_ip = srv->listen_ip;
    srv->cfg.advertise_ip = srv->advertise_ip;
    srv->listen_fd = -1;
    srv->wake_pipe[0] = srv->wake_pipe[1] = -1;
    srv->started_ms = spy_clock_ms();
    srv->conns.next = srv->conns.prev = &srv->conns;
    pthread_mutex_init(&srv->lock, NULL);
    spy_cond_init_monotonic(&srv->conn_gone);
    *out = srv;
    return SPY_OK;
}

/* open_listener: socket, SO_REUSEADDR, dual-stack for "::", bind, listen. */
static int open_listener(struct spy_server *srv)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", srv->cfg.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *res;
    int gai = getaddrinfo(srv->listen_ip, port, &hints, &res);
    if (gai != 0) {
        spy_error("listen address '%s': %s", srv->listen_ip, gai_strerror(gai));
        return SPY_EINVAL;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, zero = 0, rc = SPY_EIO;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (res->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
        if (bind(fd, res->ai_addr, res->ai_addrlen) == 0 && listen(fd, 1024) == 0)
            rc = SPY_OK;
    }
    if (rc != SPY_OK) {
        spy_error("cannot listen on %s port %d: %s", srv->listen_ip, srv->cfg.port,
                  strerror(errno));
        if (fd >= 0)
            close(fd);
    } else {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        getsockname(fd, (struct sockaddr *)&ss, &len);
        srv->bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                         : ((struct sockaddr_in *)&ss)->sin_port);
        srv->listen_fd = fd;
    }
    freeaddrinfo(res);
    return rc;
}

int spy_server_start(struct spy_server *srv)
{
    int rc = open_listener(srv);
    if (rc != SPY_OK)
        return rc;
    if (pipe2(srv->wake_pipe, O_CLOEXEC) != 0) {
        spy_error("pipe: %s", strerror(errno));
        return SPY_EIO;
    }
    int err = pthread_create(&srv->accept_thread, NULL, accept_thread, srv);
    if (err != 0) {
        spy_error("cannot start the accept thread: %s", strerror(err));
        return SPY_EIO;
    }
    srv->accept_running = 1;
    spy_info("listening on %s port %d", srv->listen_ip, srv->bound_port);
    return SPY_OK;
}

int spy_server_port(const struct spy_server *srv)
{
    return srv->bound_port;
}

/* shutdown_conns: shuts down the sockets of connections (only the idle ones
 * when only_idle); their threads then see EOF and end. Under srv->lock. */
static void shutdown_conns(struct spy_server *srv, int only_idle)
{
    for (struct conn_node *n = srv->conns.next; n != &srv->conns; n = n->next)
        if (!only_idle || n->idle)
            shutdown(n->fd, SHUT_RDWR);
}

/* wait_conns: waits until no connection runs or 'ms' passed. Under lock. */
static void wait_conns(struct spy_server *srv, int ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    while (srv->nconns > 0)
        if (pthread_cond_timedwait(&srv->conn_gone, &srv->lock, &deadline) == ETIMEDOUT)
            break;
}

int spy_server_stop(struct spy_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    srv->stopping = 1;
    shutdown_conns(srv, 1);
    pthread_mutex_unlock(&srv->lock);
    if (srv->accept_running) {
        ssize_t w = write(srv->wake_pipe[1], "x", 1);
        (void)w;
        pthread_join(srv->accept_thread, NULL);
        srv->accept_running = 0;
    }
    if (srv->listen_fd >= 0) {
        close(srv->listen_fd);
        srv->listen_fd = -1;
    }
    pthread_mutex_lock(&srv->lock);
    wait_conns(srv, srv->cfg.drain_ms > 0 ? srv->cfg.drain_ms : 0);
    if (srv->nconns > 0) {
        spy_warn("stop: %u connection(s) still busy after %d ms, shutting them down", srv->nconns,
                 srv->cfg.drain_ms);
        shutdown_conns(srv, 0);
        wait_conns(srv, REAP_MS);
    }
    int left = (int)srv->nconns;
    pthread_mutex_unlock(&srv->lock);
    if (left > 0)
        spy_error("stop: %d connection thread(s) did not end", left);
    return left;
}

void spy_server_destroy(struct spy_server *srv)
{
    if (srv == NULL)
        return;
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    for (int i = 0; i < 2; i++)
        if (srv->wake_pipe[i] >= 0)
            close(srv->wake_pipe[i]);
    pthread_cond_destroy(&srv->conn_gone);
    pthread_mutex_destroy(&srv->lock);
    free(srv->listen_ip);
    free(srv->advertise_ip);
    free(srv);
}

void spy_server_get_counters(struct spy_server *srv, struct spy_server_counters *out)
{
    pthread_mutex_lock(&srv->lock);
    out->connections = srv->nconns;
    pthread_mutex_unlock(&srv->lock);
    out->accepted = atomic_load(&srv->accepted);
    out->refused = atomic_load(&srv->refused);
    out->reads_active = atomic_load(&srv->reads_active);
    out->puts_active = atomic_load(&srv->puts_active);
    out->requests = atomic_load(&srv->requests);
    out->protocol_errors = atomic_load(&srv->protocol_errors);
    out->store_readonly = (uint64_t)atomic_load(&srv->store_readonly);
}

uint64_t spy_server_uptime(const struct spy_server *srv)
{
    return (uint64_t)(spy_clock_ms() - srv->started_ms) / 1000;
}

int spy_server_status_json(struct spy_server *srv, char *buf, size_t cap)
{
    struct spy_store_stats st;
    struct spy_server_counters ct;
    spy_store_get_stats(srv->cfg.store, &st);
    spy_server_get_counters(srv, &ct);
    json_t *o = json_pack(
        "{s:i, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
        " s:b, s:b, s:I, s:s}",
        "group_id", (int)srv->cfg.group_id, "ip", srv->advertise_ip, "port", srv->bound_port,
        "chunks", (json_int_t)st.chunks, "chunks_damaged", (json_int_t)st.chunks_damaged,
        "total_free", (json_int_t)st.total_free, "max_free", (json_int_t)st.max_free, "used",
        (json_int_t)st.used, "garbage", (json_int_t)st.garbage, "objects", (json_int_t)st.objects,
        "deleted", (json_int_t)st.deleted, "writes_active", (json_int_t)st.writes_active,
        "writes_pending", (json_int_t)st.writes_pending, "reads_active",
        (json_int_t)ct.reads_active, "connections", (json_int_t)ct.connections, "mem_blocks_in_use",
        (json_int_t)spy_mempool_in_use(srv->cfg.pool), "mem_blocks_limit",
        (json_int_t)spy_mempool_limit(srv->cfg.pool), "sync", srv->cfg.sync != 0, "read_only",
        ct.store_readonly != 0 || (st.chunks > 0 && st.chunks_damaged >= st.chunks),
        "uptime_seconds", (json_int_t)spy_server_uptime(srv), "version", SPY_VERSION);
    if (o == NULL)
        return -1;
    size_t n = json_dumpb(o, buf, cap, JSON_COMPACT);
    json_decref(o);
    if (n == 0 || n >= cap)
        return -1;
    buf[n] = '\0';
    return (int)n;
}
