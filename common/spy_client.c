/* spy_client.c - the blocking chunkserver client (contract in spy_client.h).
 *
 * Every request is one frame out, and its response is validated frame by
 * frame: a header that does not decode, a wrong req_id or op, a missing
 * RESPONSE flag or a payload of the wrong size is SPY_EPROTO, and like any
 * socket error it marks the connection broken (the byte stream can no longer
 * be trusted to be in step). Statuses the server sends (ENOTFOUND, EEXISTS...)
 * are returned as they are and leave the connection usable, except EPROTO,
 * after which the server closes.
 *
 * Errors that arise here (socket, protocol) are logged once, as warnings, with
 * the peer's address; server statuses are results, not logged. */
#include "common/clock.h"
#include "common/spy_client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/log.h"
#include "common/status.h"

/* The state of a streamed put between put_begin and put_end/put_abort. */
struct client_put {
    int active;
    uint64_t req_id;
    uint64_t sent;    /* body bytes sent in DATA frames */
    uint32_t crc;     /* crc32c of those bytes */
    int early_status; /* error response that arrived before END, or SPY_OK */
};

struct spy_client {
    int fd;
    int broken;
    uint64_t next_req_id; /* starts at 1: req_id 0 means "unknown" in server errors */
    uint8_t *buf;         /* SPY_DATA_MAX bytes: every received payload lands here */
    struct client_put put;
    char peer[80]; /* "host:port", for log lines */
};

/* fail_io: marks the connection broken and logs the socket error once;
 * returns the status to hand back (ETIMEDOUT, ECLOSED or EIO). */
static int fail_io(struct spy_client *c, const char *what, int err)
{
    c->broken = 1;
    if (err == EAGAIN || err == EWOULDBLOCK) {
        spy_warn("chunkserver %s: %s timed out", c->peer, what);
        return SPY_ETIMEDOUT;
    }
    if (err == 0 || err == EPIPE || err == ECONNRESET) {
        spy_warn("chunkserver %s: %s: connection closed by peer", c->peer, what);
        return SPY_ECLOSED;
    }
    spy_warn("chunkserver %s: %s: %s", c->peer, what, strerror(err));
    return SPY_EIO;
}

/* fail_proto: marks the connection broken after a response that breaks the
 * protocol, logging what was wrong. */
static int fail_proto(struct spy_client *c, const char *what)
{
    c->broken = 1;
    spy_warn("chunkserver %s: protocol error: %s", c->peer, what);
    return SPY_EPROTO;
}

/* send_iov: sends every byte of iov[0..n) (sendmsg gathers header and payload
 * in one call; MSG_NOSIGNAL turns a closed peer into EPIPE, not SIGPIPE).
 * SO_SNDTIMEO bounds each call. The iov array is consumed. */
static int send_iov(struct spy_client *c, struct iovec *iov, int n)
{
    while (n > 0) {
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return fail_io(c, "send", errno);
        }
        size_t done = (size_t)w;
        while (n > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return SPY_OK;
}

/* send_frame: encodes a request header and sends it with its payload. */
static int send_frame(struct spy_client *c, uint8_t op, uint8_t flags, uint64_t req_id,
                      const void *payload, uint32_t len)
{
    uint8_t hdr[SPY_FRAME_HDR_SIZE];
    struct spy_frame f = {.op = op, .flags = flags, .status = 0, .req_id = req_id, .len = len};
    spy_frame_encode(&f, hdr);
    struct iovec iov[2] = {{.iov_base = hdr, .iov_len = sizeof(hdr)},
                           {.iov_base = (void *)payload, .iov_len = len}};
    return send_iov(c, iov, len > 0 ? 2 : 1);
}

/* recv_all: reads exactly n bytes; SO_RCVTIMEO bounds each recv. */
static int recv_all(struct spy_client *c, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = recv(c->fd, p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return fail_io(c, "receive", r == 0 ? 0 : errno);
        p += r;
        n -= (size_t)r;
    }
    return SPY_OK;
}

/* recv_any_header: reads one header that must decode and be a response. A
 * server EPROTO status is accepted whatever its req_id or op (the server may
 * not have known them) and breaks the connection: the server closes after it. */
static int recv_any_header(struct spy_client *c, struct spy_frame *f)
{
    uint8_t hdr[SPY_FRAME_HDR_SIZE];
    int rc = recv_all(c, hdr, sizeof(hdr));
    if (rc != SPY_OK)
        return rc;
    if (spy_frame_decode(hdr, f) != SPY_OK)
        return fail_proto(c, "response header does not decode");
    if (!(f->flags & SPY_FRAME_RESPONSE) || (f->flags & SPY_FRAME_ABORT))
        return fail_proto(c, "frame is not a response");
    if (f->status == SPY_EPROTO) {
        c->broken = 1;
        spy_warn("chunkserver %s: server reports a protocol error", c->peer);
        return SPY_EPROTO;
    }
    return SPY_OK;
}

/* recv_header: reads one response header that echoes req_id and op. */
static int recv_header(struct spy_client *c, uint8_t op, uint64_t req_id, struct spy_frame *f)
{
    int rc = recv_any_header(c, f);
    if (rc != SPY_OK)
        return rc;
    if (f->req_id != req_id)
        return fail_proto(c, "response req_id does not match the request");
    if (f->op != op)
        return fail_proto(c, "response op does not match the request");
    return SPY_OK;
}

/* recv_response: reads a single-frame response of 'op'. On an OK status the
 * payload must be 'min'..'max' bytes and is read into c->buf; an error status
 * must come without payload and is returned as is. */
static int recv_response(struct spy_client *c, uint8_t op, uint64_t req_id, uint32_t min,
                         uint32_t max, struct spy_frame *f)
{
    int rc = recv_header(c, op, req_id, f);
    if (rc != SPY_OK)
        return rc;
    if (f->status != SPY_OK)
        return f->len == 0 ? f->status : fail_proto(c, "error response carries a payload");
    if (f->len < min || f->len > max)
        return fail_proto(c, "response payload has the wrong size");
    return recv_all(c, c->buf, f->len);
}

/* begin_request: refuses a request on a broken connection or in the middle of
 * a streamed put, and hands out the next req_id. */
static int begin_request(struct spy_client *c, uint64_t *req_id)
{
    if (c->broken)
        return SPY_ECLOSED;
    if (c->put.active)
        return SPY_EINVAL;
    *req_id = c->next_req_id++;
    return SPY_OK;
}

/* simple_call: one request frame, one single-frame response (the pattern of
 * every op but PUT and GET). The response payload is left in c->buf. */
static int simple_call(struct spy_client *c, uint8_t op, const void *payload, uint32_t len,
                       uint32_t resp_min, uint32_t resp_max, struct spy_frame *f)
{
    uint64_t req_id;
    int rc = begin_request(c, &req_id);
    if (rc == SPY_OK)
        rc = send_frame(c, op, 0, req_id, payload, len);
    if (rc == SPY_OK)
        rc = recv_response(c, op, req_id, resp_min, resp_max, f);
    return rc;
}

/* set_blocking_options: after connect, the socket goes back to blocking mode
 * with timeout_ms on every send and recv, and Nagle off (requests are small
 * frames that must leave at once). */
static int set_blocking_options(int fd, int timeout_ms)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    int one = 1;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        return -1;
    return 0;
}

/* connect_one: a non-blocking connect to one address, waiting with poll until
 * 'deadline'. Returns the connected socket, or -1 with errno set (ETIMEDOUT
 * when the deadline passed). */
static int connect_one(const struct addrinfo *ai, int64_t deadline)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -1;
    int err = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        err = errno;
        while (err == EINPROGRESS || err == EINTR) {
            int64_t left = deadline - spy_clock_ms();
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int pr = left > 0 ? poll(&pfd, 1, (int)left) : 0;
            if (pr < 0 && errno == EINTR)
                continue;
            if (pr == 0) {
                err = ETIMEDOUT;
            } else {
                socklen_t len = sizeof(err);
                if (pr < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                    err = errno;
            }
        }
    }
    if (err != 0) {
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

/* client_new: wraps a connected socket; allocates the one receive buffer the
 * connection will use. Returns NULL on allocation failure (fd left open). */
static struct spy_client *client_new(int fd, const char *peer)
{
    struct spy_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->buf = malloc(SPY_DATA_MAX);
    if (c->buf == NULL) {
        free(c);
        return NULL;
    }
    c->fd = fd;
    c->next_req_id = 1;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    return c;
}

/* connect_any: tries each resolved address in turn within one deadline (a
 * name may resolve to ::1 and 127.0.0.1 with only one of them listening). */
static int connect_any(const struct addrinfo *list, int64_t deadline, const char *peer, int *out)
{
    int err = EHOSTUNREACH;
    for (const struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
        int fd = connect_one(ai, deadline);
        if (fd >= 0) {
            *out = fd;
            return SPY_OK;
        }
        err = errno;
        if (err == ETIMEDOUT)
            break;
    }
    spy_warn("chunkserver %s: connect: %s", peer, strerror(err));
    return err == ETIMEDOUT ? SPY_ETIMEDOUT : SPY_EIO;
}

int spy_client_connect(const char *host, int port, int timeout_ms, struct spy_client **out)
{
    *out = NULL;
    if (host == NULL || port <= 0 || port > 65535 || timeout_ms <= 0)
        return SPY_EINVAL;
    char peer[80], service[8];
    if (strchr(host, ':') != NULL)
        snprintf(peer, sizeof(peer), "[%s]:%d", host, port);
    else
        snprintf(peer, sizeof(peer), "%s:%d", host, port);
    snprintf(service, sizeof(service), "%d", port);
    int64_t deadline = spy_clock_ms() + timeout_ms;
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *list;
    int gai = getaddrinfo(host, service, &hints, &list);
    if (gai != 0) {
        spy_warn("chunkserver %s: cannot resolve: %s", peer, gai_strerror(gai));
        return SPY_EIO;
    }
    int fd = -1;
    int rc = connect_any(list, deadline, peer, &fd);
    freeaddrinfo(list);
    if (rc != SPY_OK)
        return rc;
    if (set_blocking_options(fd, timeout_ms) != 0) {
        spy_warn("chunkserver %s: socket options: %s", peer, strerror(errno));
        close(fd);
        return SPY_EIO;
    }
    *out = client_new(fd, peer);
    if (*out == NULL) {
        spy_warn("chunkserver %s: out of memory for the client", peer);
        close(fd);
        return SPY_EIO;
    }
    return SPY_OK;
}

void spy_client_close(struct spy_client *c)
{
    if (c == NULL)
        return;
    close(c->fd);
    free(c->buf);
    free(c);
}

int spy_client_broken(const struct spy_client *c)
{
    return c->broken;
}

int spy_client_ping(struct spy_client *c)
{
    struct spy_frame f;
    return simple_call(c, SPY_OP_PING, NULL, 0, 0, 0, &f);
}

int spy_client_status(struct spy_client *c, char **json)
{
    struct spy_frame f;
    *json = NULL;
    int rc = simple_call(c, SPY_OP_STATUS, NULL, 0, 0, SPY_SMALL_MAX, &f);
    if (rc != SPY_OK)
        return rc;
    char *text = malloc(f.len + 1);
    if (text == NULL) {
        spy_warn("chunkserver %s: out of memory for the status text", c->peer);
        return SPY_ENOMEM;
    }
    memcpy(text, c->buf, f.len);
    text[f.len] = '\0';
    *json = text;
    return SPY_OK;
}

int spy_client_stat(struct spy_client *c, uint64_t fid, struct spy_stat_resp *out)
{
    uint8_t req[SPY_FID_PAYLOAD];
    struct spy_frame f;
    spy_put_u64(req, fid);
    int rc = simple_call(c, SPY_OP_STAT, req, sizeof(req), SPY_STAT_RESP_PAYLOAD,
                         SPY_STAT_RESP_PAYLOAD, &f);
    if (rc != SPY_OK)
        return rc;
    if (spy_stat_resp_decode(c->buf, f.len, out) != SPY_OK || out->fid != fid)
        return fail_proto(c, "STAT response is for another fid");
    return SPY_OK;
}

int spy_client_delete(struct spy_client *c, uint64_t fid)
{
    uint8_t req[SPY_FID_PAYLOAD];
    struct spy_frame f;
    spy_put_u64(req, fid);
    return simple_call(c, SPY_OP_DELETE, req, sizeof(req), 0, 0, &f);
}

/* ---- streamed put ---- */

int spy_client_put_begin(struct spy_client *c, uint64_t fid, uint64_t max_len)
{
    uint64_t req_id;
    int rc = begin_request(c, &req_id);
    if (rc != SPY_OK)
        return rc;
    uint8_t req[SPY_PUT_REQ_PAYLOAD];
    struct spy_put_req pr = {.fid = fid, .max_len = max_len};
    spy_put_req_encode(&pr, req);
    rc = send_frame(c, SPY_OP_PUT, 0, req_id, req, sizeof(req));
    if (rc != SPY_OK)
        return rc;
    c->put = (struct client_put){.active = 1, .req_id = req_id, .early_status = SPY_OK};
    return SPY_OK;
}

/* recv_put_response: reads the put's one response frame: PUT op, the put's
 * req_id, no payload. Returns its status (or a local error). */
static int recv_put_response(struct spy_client *c)
{
    struct spy_frame f;
    int rc = recv_header(c, SPY_OP_PUT, c->put.req_id, &f);
    if (rc != SPY_OK)
        return rc;
    if (f.len != 0)
        return fail_proto(c, "PUT response carries a payload");
    return f.status;
}

/* check_early_error: before each DATA frame, peeks (without blocking) for a
 * response the server sent ahead of END. One that arrived is read whole and
 * must be an error: the server only acknowledges a put after its END. */
static int check_early_error(struct spy_client *c)
{
    uint8_t byte;
    ssize_t r = recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return SPY_OK;
    if (r <= 0)
        return fail_io(c, "receive", r == 0 ? 0 : errno);
    int status = recv_put_response(c);
    if (status == SPY_OK)
        return fail_proto(c, "PUT acknowledged before its END");
    if (!c->broken)
        c->put.early_status = status;
    return status;
}

int spy_client_put_data(struct spy_client *c, const void *data, size_t len)
{
    if (!c->put.active)
        return SPY_EINVAL;
    if (c->broken)
        return SPY_ECLOSED;
    if (c->put.early_status != SPY_OK)
        return c->put.early_status;
    const uint8_t *p = data;
    while (len > 0) {
        int rc = check_early_error(c);
        if (rc != SPY_OK)
            return rc;
        uint32_t n = len > SPY_DATA_MAX ? SPY_DATA_MAX : (uint32_t)len;
        rc = send_frame(c, SPY_OP_DATA, 0, c->put.req_id, p, n);
        if (rc != SPY_OK)
            return rc;
        c->put.crc = spy_crc32c(c->put.crc, p, n);
        c->put.sent += n;
        p += n;
        len -= n;
    }
    return SPY_OK;
}

/* send_end: sends the put's END: total length and crc32c, or the ABORT flag. */
static int send_end(struct spy_client *c, int abort)
{
    uint8_t req[SPY_END_REQ_PAYLOAD];
    struct spy_end_req er = {.total_len = abort ? 0 : c->put.sent, .crc = abort ? 0 : c->put.crc};
    spy_end_req_encode(&er, req);
    return send_frame(c, SPY_OP_END, abort ? SPY_FRAME_ABORT : 0, c->put.req_id, req, sizeof(req));
}

/* finish_put: ends the put stream. After an early error the server has
 * answered already and discards this put's END silently, but the END (with
 * ABORT) is still sent so both sides agree where the put ends; otherwise the
 * one PUT response is read. */
static int finish_put(struct spy_client *c, int abort)
{
    if (!c->put.active)
        return SPY_EINVAL;
    c->put.active = 0;
    if (c->broken)
        return SPY_ECLOSED;
    int early = c->put.early_status;
    int rc = send_end(c, abort || early != SPY_OK);
    if (rc != SPY_OK)
        return rc;
    return early != SPY_OK ? early : recv_put_response(c);
}

int spy_client_put_end(struct spy_client *c)
{
    return finish_put(c, 0);
}

int spy_client_put_abort(struct spy_client *c)
{
    if (!c->put.active)
        return SPY_EINVAL;
    int rc = finish_put(c, 1);
    /* An abandoned put answers EABORTED (or the error that raced with it);
     * either way nothing was stored and the stream is in step. */
    if (rc == SPY_OK)
        return fail_proto(c, "aborted PUT was acknowledged as stored");
    return c->broken ? rc : SPY_OK;
}

int spy_client_put(struct spy_client *c, uint64_t fid, const void *data, size_t len)
{
    int rc = spy_client_put_begin(c, fid, len);
    if (rc != SPY_OK)
        return rc;
    rc = spy_client_put_data(c, data, len);
    if (rc != SPY_OK && c->put.early_status == SPY_OK) {
        c->put.active = 0; /* a local failure: the connection is broken */
        return rc;
    }
    return spy_client_put_end(c);
}

/* ---- range get ---- */

/* The expected shape of a GET stream, from the request and its first frame. */
struct get_stream {
    uint64_t req_id;
    uint64_t length;   /* bytes announced */
    uint64_t received; /* bytes of DATA so far */
    uint32_t crc;      /* crc32c of those bytes */
};

/* get_begin: sends GET and reads its first response frame, which announces
 * object_len, offset and length; these must agree with what was asked. */
static int get_begin(struct spy_client *c, const struct spy_get_req *req, struct get_stream *gs,
                     uint64_t *object_len)
{
    int rc = begin_request(c, &gs->req_id);
    if (rc != SPY_OK)
        return rc;
    uint8_t payload[SPY_GET_REQ_PAYLOAD];
    spy_get_req_encode(req, payload);
    struct spy_frame f;
    rc = send_frame(c, SPY_OP_GET, 0, gs->req_id, payload, sizeof(payload));
    if (rc == SPY_OK)
        rc = recv_response(c, SPY_OP_GET, gs->req_id, SPY_GET_RESP_PAYLOAD, SPY_GET_RESP_PAYLOAD,
                           &f);
    if (rc != SPY_OK)
        return rc;
    struct spy_get_resp resp;
    if (spy_get_resp_decode(c->buf, f.len, &resp) != SPY_OK)
        return fail_proto(c, "GET response range lies outside the object");
    uint64_t want = req->length != 0 ? req->length : resp.object_len - resp.offset;
    if (resp.offset != req->offset || resp.length != want)
        return fail_proto(c, "GET response announces another range");
    if (object_len != NULL)
        *object_len = resp.object_len;
    gs->length = resp.length;
    return SPY_OK;
}

/* get_end: checks the END frame: its status is the outcome; on OK every
 * announced byte must have arrived and the crc must match what was received. */
static int get_end(struct spy_client *c, struct get_stream *gs, const struct spy_frame *f)
{
    if (f->len != SPY_END_RESP_PAYLOAD && !(f->len == 0 && f->status != SPY_OK))
        return fail_proto(c, "END frame payload has the wrong size");
    int rc = recv_all(c, c->buf, f->len);
    if (rc != SPY_OK || f->status != SPY_OK)
        return rc != SPY_OK ? rc : f->status;
    if (gs->received != gs->length)
        return fail_proto(c, "GET stream ended before the announced length");
    if (spy_get_u32(c->buf) != gs->crc) {
        spy_warn("chunkserver %s: GET body crc mismatch", c->peer);
        return SPY_ECORRUPT;
    }
    return SPY_OK;
}

/* get_data: reads one DATA payload into c->buf and hands it to the sink. */
static int get_data(struct spy_client *c, struct get_stream *gs, const struct spy_frame *f,
                    spy_client_sink sink, void *arg)
{
    if (f->status != SPY_OK || f->len == 0 || f->len > gs->length - gs->received)
        return fail_proto(c, "DATA frame outside the announced range");
    int rc = recv_all(c, c->buf, f->len);
    if (rc != SPY_OK)
        return rc;
    gs->crc = spy_crc32c(gs->crc, c->buf, f->len);
    gs->received += f->len;
    if (sink != NULL && (rc = sink(arg, c->buf, f->len)) != 0) {
        c->broken = 1; /* the rest of the stream is left unread */
        return rc < 0 ? rc : SPY_EABORTED;
    }
    return SPY_OK;
}

/* recv_stream_header: reads the next header of a GET stream: DATA or END,
 * with the stream's req_id. */
static int recv_stream_header(struct spy_client *c, uint64_t req_id, struct spy_frame *f)
{
    int rc = recv_any_header(c, f);
    if (rc != SPY_OK)
        return rc;
    if (f->req_id != req_id || (f->op != SPY_OP_DATA && f->op != SPY_OP_END))
        return fail_proto(c, "unexpected frame in a GET stream");
    return SPY_OK;
}

int spy_client_get(struct spy_client *c, uint64_t fid, uint64_t offset, uint64_t length,
                   spy_client_sink sink, void *arg, uint64_t *object_len)
{
    struct spy_get_req req = {.fid = fid, .offset = offset, .length = length};
    struct get_stream gs = {0};
    int rc = get_begin(c, &req, &gs, object_len);
    while (rc == SPY_OK) {
        struct spy_frame f;
        rc = recv_stream_header(c, gs.req_id, &f);
        if (rc != SPY_OK)
            break;
        if (f.op == SPY_OP_END)
            return get_end(c, &gs, &f);
        rc = get_data(c, &gs, &f, sink, arg);
    }
    return rc;
}
