/* http_conn.c - one HTTP/1.1 connection: request heads, streamed bodies in
 * both directions, keep-alive, pipelining, timeouts, and the request and
 * response functions of registry/http_server.h.
 *
 * Each connection runs a small state machine driven from four entry points,
 * all on its loop thread: on_read (h2o read callback), on_write (h2o write
 * completion), on_timer (the idle timer) and on_defer (the next turn of the
 * loop, for resumed bodies and writes with nothing to send). Handler callbacks
 * run nested inside them, and handlers call back into the request functions,
 * so a connection is never freed under a caller: every entry point and every
 * request function brackets its work with enter()/leave(), conn_close() only
 * marks the connection dead, and the outermost leave() frees it.
 *
 * Input lives in h2o's socket buffer (sock->input). A body slice is the front
 * of that buffer; it is consumed when on_body returns, or, if the handler
 * paused, at the first processing after spy_http_resume. h2o frees the buffer
 * whenever it is consumed to the end (and so re-fetches 'in' after every
 * consume), so between bursts a connection holds no input memory. Chunked bodies are
 * decoded in place there. Nothing is read while a request is paused, or while
 * a complete request waits for its response (pipelined bytes wait in the
 * buffer or in the kernel).
 *
 * Output is one h2o_socket_write at a time (h2o asserts it). What the layer
 * and the handler want to send meanwhile is gathered in 'queued' and written
 * as one batch when the write in flight completes.
 *
 * TLS (cfg.tls): the connection starts with h2o's handshake instead of
 * reading; h2o decrypts into sock->input, so everything above is unchanged.
 * Two things differ. h2o encrypts a whole write into memory, so a batch is
 * written in parts of at most SPY_HTTP_TLS_WRITE_MAX bytes (the plain path
 * still writes a batch in one call, with no copy). And the sending side is
 * never shut down on the raw fd (that would cut the TLS stream short of its
 * close_notify): a closing connection that has read its request to the end
 * closes at once (h2o_socket_close sends close_notify), and one the client
 * may still be sending to lingers, reading and discarding, without the
 * shutdown. */
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <h2o/memory.h>

#include "common/log.h"
#include "common/status.h"
#include "registry/http_loop.h"

#define OUT_MAX_BUFS  8
#define OUT_MAX_OWNED 2

static const char CONTINUE_LINE[] = "HTTP/1.1 100 Continue\r\n\r\n";
static const char CRLF[] = "\r\n";
static const char LAST_CHUNK[] = "0\r\n\r\n";

/* One h2o_socket_write: its iovecs, the buffers to free after it, and what
 * completes with it. */
struct out_batch {
    h2o_iovec_t bufs[OUT_MAX_BUFS];
    size_t cnt;
    char *owned[OUT_MAX_OWNED];
    size_t nowned;
    int has_slice;                /* a handler slice is in it (maybe empty) */
    spy_http_written_cb slice_cb; /* ... and its completion (may be NULL) */
    int ends_response;            /* the response's last bytes are in it */
};

enum resp_state {
    RESP_NONE,      /* nothing sent yet */
    RESP_STREAMING, /* head queued, slices follow */
    RESP_ENDED,     /* the last bytes are queued or in flight */
    RESP_SENT,      /* the last bytes are on the socket */
};

struct conn;

struct req {
    struct spy_http_request pub; /* first: handlers get &req->pub */
    struct conn *conn;
    /* body */
    uint64_t body_left; /* SPY_HTTP_BODY_LENGTH: bytes not yet taken from input */
    struct spy_http_chunked chunked;
    int body_eof;     /* every body byte was taken from input */
    int body_done;    /* ... and released: on_body_end was due */
    size_t slice_len; /* bytes at the front of input lent to the handler */
    int paused;
    int expect_continue, continue_sent;
    int keep_alive; /* another request may follow on this connection */
    int body_cut;   /* the body was given up on unread (the client may still send it) */
    int discard;    /* the hold ended before the body did: drop the rest */
    int held;       /* the handler holds the request (http_server.h) */
    /* response */
    enum resp_state resp;
    enum spy_http_framing framing;
    uint64_t resp_left; /* SPY_HTTP_FRAMING_LENGTH: body bytes still to send */
    int slice_busy;     /* a handler slice is queued or in flight */
};

struct conn {
    struct spy_http_loop *loop;
    h2o_socket_t *sock;
    h2o_linklist_t link;       /* loop->conns */
    h2o_timeout_entry_t timer; /* the idle timer, linked in timer_kind */
    h2o_timeout_t *timer_kind; /* one of the loop's timeouts, or NULL */
    h2o_timeout_entry_t defer; /* linked in loop->zero_timeout when kicked */
    struct req *req;           /* the request being served, or NULL */
    int depth;                 /* entry points on the stack */
    int dead;                  /* closed; freed by the outermost leave() */
    int reading;               /* h2o_socket_read_start is in effect */
    uint64_t requests_served;
    size_t head_last_len; /* phr's last_len for the head being read */
    size_t seen;          /* input bytes left after the last processing */
    int lingering;        /* response sent, send side shut (not under TLS), discarding */
    size_t linger_left;
    int tls;        /* the socket is TLS (cfg.tls) */
    int writing;    /* 'inflight' is being written */
    int fake_write; /* 'inflight' is empty and completes in on_defer */
    struct out_batch queued, inflight;
    /* TLS: the part of 'inflight' being written, and where the next starts */
    h2o_iovec_t part[OUT_MAX_BUFS];
    size_t part_buf, part_off;
    char chunk_line[SPY_HTTP_CHUNK_LINE_MAX];
};

static void conn_process(struct conn *c);
static void write_done(struct conn *c, const char *err);

/* cfg, handler: the server's, read-only. */
static const struct spy_http_config *cfg(const struct conn *c)
{
    return &c->loop->srv->cfg;
}

static const struct spy_http_handler *handler(const struct conn *c)
{
    return &c->loop->srv->handler;
}

/* req_of: the layer's request behind a handler's pointer. */
static struct req *req_of(struct spy_http_request *pub)
{
    return (struct req *)pub;
}

/* ---- lifetime ---------------------------------------------------------- */

/* batch_release: frees what a batch owns and empties it. */
static void batch_release(struct out_batch *b)
{
    for (size_t i = 0; i < b->nowned; i++)
        free(b->owned[i]);
    memset(b, 0, sizeof(*b));
}

/* conn_free: closes the socket (h2o never touches its buffers again) and
 * frees everything. Only at depth 0. */
static void conn_free(struct conn *c)
{
    struct spy_http_loop *loop = c->loop;
    h2o_socket_close(c->sock);
    batch_release(&c->queued);
    batch_release(&c->inflight);
    free(c->req);
    h2o_linklist_unlink(&c->link);
    loop->nconns--;
    atomic_fetch_sub_explicit(&loop->srv->open, 1, memory_order_relaxed);
    free(c);
    spy_http_loop_conn_closed(loop);
}

/* enter, leave: bracket every entry point and request function; the
 * outermost leave frees a connection that was closed meanwhile. */
static void enter(struct conn *c)
{
    c->depth++;
}

static void leave(struct conn *c)
{
    if (--c->depth == 0 && c->dead)
        conn_free(c);
}

/* stop_reading, start_reading: the h2o read callback, tracked. */
static void stop_reading(struct conn *c)
{
    if (c->reading) {
        h2o_socket_read_stop(c->sock);
        c->reading = 0;
    }
}

static void on_read(h2o_socket_t *sock, const char *err);

static void start_reading(struct conn *c)
{
    if (!c->reading) {
        h2o_socket_read_start(c->sock, on_read);
        c->reading = 1;
    }
}

/* conn_close: marks the connection dead and stops its timers; it is freed
 * when the outermost entry point returns. Does not tell the handler. */
static void conn_close(struct conn *c)
{
    if (c->dead)
        return;
    c->dead = 1;
    if (h2o_timeout_is_linked(&c->timer))
        h2o_timeout_unlink(&c->timer);
    if (h2o_timeout_is_linked(&c->defer))
        h2o_timeout_unlink(&c->defer);
    c->timer_kind = NULL;
    stop_reading(c);
    if (c->depth == 0)
        conn_free(c);
}

/* abort_hold: ends the handler's hold with on_abort, once. The request stays
 * allocated (and a paused slice valid) until on_abort returns. */
static void abort_hold(struct conn *c, int status)
{
    struct req *r = c->req;
    if (r == NULL || !r->held)
        return;
    r->held = 0;
    atomic_fetch_add_explicit(&c->loop->srv->aborts, 1, memory_order_relaxed);
    if (handler(c)->on_abort != NULL)
        handler(c)->on_abort(&r->pub, status);
}

/* conn_kill: the connection failed: tells the handler, then closes. */
static void conn_kill(struct conn *c, int status)
{
    if (c->dead)
        return;
    abort_hold(c, status);
    conn_close(c);
}

/* defer_kick: runs on_defer on the next turn of the loop. */
static void defer_kick(struct conn *c)
{
    if (!c->dead && !h2o_timeout_is_linked(&c->defer))
        h2o_timeout_link(c->loop->evloop, &c->loop->zero_timeout, &c->defer);
}

/* timer_refresh: links the idle timer that fits the state (http_server.h,
 * TIMEOUTS). 'progress' re-arms the I/O timer; the head and linger timers
 * run from when they were first armed. */
static void timer_refresh(struct conn *c, int progress)
{
    if (c->dead)
        return;
    struct spy_http_loop *l = c->loop;
    struct req *r = c->req;
    h2o_timeout_t *want = NULL;
    if (c->lingering)
        want = &l->linger_timeout;
    else if (r == NULL)
        want = c->requests_served > 0 && c->sock->input->size == 0 ? &l->keepalive_timeout
                                                                   : &l->head_timeout;
    else if (c->writing || (!r->body_done && !r->paused))
        want = &l->io_timeout;
    int rearm = progress && want == &l->io_timeout;
    if (want == c->timer_kind && !rearm)
        return;
    if (h2o_timeout_is_linked(&c->timer))
        h2o_timeout_unlink(&c->timer);
    c->timer_kind = want;
    if (want != NULL)
        h2o_timeout_link(l->evloop, want, &c->timer);
}

/* ---- output ------------------------------------------------------------ */

/* out_add: appends bytes to the queued batch. */
static void out_add(struct conn *c, const void *base, size_t len)
{
    assert(c->queued.cnt < OUT_MAX_BUFS);
    c->queued.bufs[c->queued.cnt++] = h2o_iovec_init(base, len);
}

/* out_own: the queued batch frees p after it is written. */
static void out_own(struct conn *c, char *p)
{
    assert(c->queued.nowned < OUT_MAX_OWNED);
    c->queued.owned[c->queued.nowned++] = p;
}

static void on_write(h2o_socket_t *sock, const char *err);

/* write_part: TLS: writes the next at most SPY_HTTP_TLS_WRITE_MAX bytes of
 * the batch in flight, from (part_buf, part_off) on, and advances them. */
static void write_part(struct conn *c)
{
    const struct out_batch *b = &c->inflight;
    size_t n = 0, room = SPY_HTTP_TLS_WRITE_MAX;
    while (c->part_buf < b->cnt && room > 0) {
        const h2o_iovec_t *src = &b->bufs[c->part_buf];
        size_t take = src->len - c->part_off < room ? src->len - c->part_off : room;
        c->part[n++] = h2o_iovec_init(src->base + c->part_off, take);
        room -= take;
        c->part_off += take;
        if (c->part_off == src->len) {
            c->part_buf++;
            c->part_off = 0;
        }
    }
    h2o_socket_write(c->sock, c->part, n, on_write);
}

/* batch_unwritten: TLS: bytes of the batch in flight are still to be written. */
static int batch_unwritten(const struct conn *c)
{
    return c->tls && c->part_buf < c->inflight.cnt;
}

/* out_flush: starts writing the queued batch unless a write is in flight.
 * A batch with no bytes but a completion finishes on the next turn. */
static void out_flush(struct conn *c)
{
    struct out_batch *q = &c->queued;
    if (c->dead || c->writing || (q->cnt == 0 && !q->has_slice && !q->ends_response))
        return;
    c->inflight = *q;
    memset(q, 0, sizeof(*q));
    c->writing = 1;
    if (c->inflight.cnt == 0) {
        c->fake_write = 1;
        defer_kick(c);
    } else if (c->tls) {
        c->part_buf = c->part_off = 0;
        write_part(c);
    } else {
        h2o_socket_write(c->sock, c->inflight.bufs, c->inflight.cnt, on_write);
    }
    timer_refresh(c, 1);
}

/* write_done: a batch is on the socket (or failed): completes the slice or
 * the response it carried, starts the next batch and moves the connection on. */
static void write_done(struct conn *c, const char *err)
{
    struct out_batch done = c->inflight;
    memset(&c->inflight, 0, sizeof(c->inflight));
    c->writing = 0;
    for (size_t i = 0; i < done.nowned; i++)
        free(done.owned[i]);
    if (err != NULL) {
        spy_debug("http: write failed: %s", err);
        conn_kill(c, err == h2o_socket_error_closed ? SPY_ECLOSED : SPY_EIO);
        return;
    }
    struct req *r = c->req;
    if (r != NULL && done.ends_response)
        r->resp = RESP_SENT;
    if (r != NULL && done.has_slice) {
        r->slice_busy = 0;
        if (r->held && done.slice_cb != NULL)
            done.slice_cb(&r->pub);
        if (c->dead)
            return;
    }
    out_flush(c);
    conn_process(c);
}

/* ---- requests ---------------------------------------------------------- */

/* copy_str: copies s[0..n) and a NUL to *p, advancing it. */
static const char *copy_str(char **p, const char *s, size_t n)
{
    char *start = *p;
    memcpy(start, s, n);
    start[n] = '\0';
    *p += n + 1;
    return start;
}

/* req_new: one allocation holding the request, its header array and a
 * NUL-terminated copy of every string of the head (at most max_head plus
 * 2 bytes per string). NULL on allocation failure. */
static struct req *req_new(struct conn *c, const struct spy_http_head *h)
{
    size_t strings = h->method_len + h->path_len + 2 + (h->query != NULL ? h->query_len + 1 : 0);
    for (size_t i = 0; i < h->num_headers; i++)
        strings += h->headers[i].name_len + h->headers[i].value_len + 2;
    size_t hdr_bytes = h->num_headers * sizeof(struct spy_http_header);
    struct req *r = calloc(1, sizeof(*r) + hdr_bytes + strings);
    if (r == NULL)
        return NULL;
    struct spy_http_header *hdrs = (struct spy_http_header *)(r + 1);
    char *p = (char *)hdrs + hdr_bytes;
    r->pub.method = copy_str(&p, h->method, h->method_len);
    r->pub.path = copy_str(&p, h->path, h->path_len);
    r->pub.query = h->query != NULL ? copy_str(&p, h->query, h->query_len) : NULL;
    for (size_t i = 0; i < h->num_headers; i++) {
        const struct phr_header *src = &h->headers[i];
        hdrs[i].name = copy_str(&p, src->name, src->name_len);
        hdrs[i].name_len = src->name_len;
        hdrs[i].value = copy_str(&p, src->value, src->value_len);
        hdrs[i].value_len = src->value_len;
    }
    r->pub.headers = hdrs;
    r->pub.num_headers = h->num_headers;
    r->pub.minor_version = h->minor_version;
    r->pub.body_kind = h->body_kind;
    r->pub.content_length = h->content_length;
    r->pub.is_head = h->is_head;
    r->pub.ctx = handler(c)->ctx;
    r->pub.loop = c->loop;
    r->conn = c;
    r->body_left = h->body_kind == SPY_HTTP_BODY_LENGTH ? h->content_length : 0;
    r->body_eof = h->body_kind == SPY_HTTP_BODY_NONE ||
                  (h->body_kind == SPY_HTTP_BODY_LENGTH && h->content_length == 0);
    spy_http_chunked_init(&r->chunked);
    r->expect_continue = h->expect_continue && h->body_kind != SPY_HTTP_BODY_NONE;
    r->keep_alive = h->keep_alive;
    return r;
}

/* req_new_bare: a request for the layer's own answer to a head it could not
 * parse; the handler never sees it. */
static struct req *req_new_bare(struct conn *c)
{
    struct req *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->pub.method = r->pub.path = "";
    r->pub.minor_version = 1;
    r->pub.loop = c->loop;
    r->conn = c;
    r->body_eof = r->body_done = 1;
    return r;
}

/* keep_alive_after: whether the response may leave the connection open, given
 * what is left of the body (http_server.h, EARLY RESPONSES). */
static int keep_alive_after(const struct req *r, enum spy_http_framing framing)
{
    const struct conn *c = r->conn;
    if (!r->keep_alive || c->loop->draining || framing == SPY_HTTP_FRAMING_EOF)
        return 0;
    if (r->body_done)
        return 1;
    if ((r->expect_continue && !r->continue_sent) || r->pub.body_kind == SPY_HTTP_BODY_CHUNKED)
        return 0;
    return r->body_left <= cfg(c)->drain_max;
}

/* start_response: formats the head (and, when 'ends', a copied body) into one
 * buffer, queues it and starts writing. SPY_OK or SPY_ENOMEM. */
static int start_response(struct req *r, int status, const struct spy_http_field *fields,
                          size_t nfields, int64_t content_length, const void *body, size_t len,
                          int ends)
{
    struct conn *c = r->conn;
    enum spy_http_framing framing =
        spy_http_framing_for(status, content_length, r->pub.minor_version);
    r->keep_alive = keep_alive_after(r, framing);
    struct spy_http_head_out h = {
        .status = status,
        .minor_version = r->pub.minor_version,
        .date = spy_http_loop_date(c->loop),
        .framing = framing,
        .content_length = content_length > 0 ? (uint64_t)content_length : 0,
        .keep_alive = r->keep_alive,
        .fields = fields,
        .nfields = nfields,
    };
    int send_body = ends && len > 0 && !r->pub.is_head && framing == SPY_HTTP_FRAMING_LENGTH;
    size_t cap = spy_http_head_size(&h) + (send_body ? len : 0);
    char *buf = malloc(cap);
    if (buf == NULL) {
        spy_error("http: no memory for a %zu-byte response", cap);
        return SPY_ENOMEM;
    }
    size_t n = spy_http_format_head(buf, cap, &h);
    assert(n > 0);
    if (send_body) {
        memcpy(buf + n, body, len);
        n += len;
    }
    out_add(c, buf, n);
    out_own(c, buf);
    r->framing = framing;
    r->resp_left = framing == SPY_HTTP_FRAMING_LENGTH ? h.content_length : 0;
    r->resp = ends ? RESP_ENDED : RESP_STREAMING;
    c->queued.ends_response = ends;
    out_flush(c);
    return SPY_OK;
}

/* hold_end: the handler's terminal call. A body still coming is dropped. */
static void hold_end(struct req *r)
{
    r->held = 0;
    if (!r->body_done) {
        r->discard = 1;
        r->paused = 0;
        defer_kick(r->conn);
    }
}

/* layer_error: the layer's own error answer (http_server.h, ERRORS). Tells
 * the handler first if it holds the request, then answers with "Connection:
 * close" if nothing was sent yet, or closes at once. */
static void layer_error(struct conn *c, int status, int abort_status, const char *message)
{
    if (c->req == NULL && (c->req = req_new_bare(c)) == NULL) {
        conn_close(c);
        return;
    }
    struct req *r = c->req;
    abort_hold(c, abort_status);
    if (c->dead)
        return;
    spy_debug("http: answering %d: %s", status, message);
    r->body_cut = !r->body_eof || c->sock->input->size > 0;
    r->body_eof = r->body_done = 1;
    r->paused = 0;
    r->slice_len = 0;
    r->keep_alive = 0;
    h2o_buffer_consume(&c->sock->input, c->sock->input->size);
    if (r->resp != RESP_NONE) {
        conn_close(c);
        return;
    }
    const char *code = status == 413 || status == 431 ? "SIZE_INVALID" : "UNSUPPORTED";
    char body[256];
    size_t len = spy_http_format_error(body, sizeof(body), code, message);
    struct spy_http_field fields[1 + SPY_HTTP_ERROR_FIELDS_MAX] = {
        {"Content-Type", "application/json"}};
    size_t nextra = cfg(c)->error_nfields;
    if (nextra > SPY_HTTP_ERROR_FIELDS_MAX)
        nextra = SPY_HTTP_ERROR_FIELDS_MAX;
    for (size_t i = 0; i < nextra; i++)
        fields[1 + i] = cfg(c)->error_fields[i];
    if (start_response(r, status, fields, 1 + nextra, (int64_t)len, body, len, 1) != SPY_OK)
        conn_close(c);
}

/* ---- input ------------------------------------------------------------- */

/* begin_linger: the response is out and the connection will not be reused:
 * shut the sending side and discard what the client still sends, up to
 * drain_max bytes or linger_ms, so it reads our response instead of a reset.
 * Under TLS the sending side stays open (see the top of this file), and a
 * connection whose request was read to the end ('body_cut' 0) closes now. */
static void begin_linger(struct conn *c, int body_cut)
{
    if (c->tls && !body_cut) { /* nothing more to read: close_notify and close */
        conn_close(c);
        return;
    }
    c->lingering = 1;
    c->linger_left = cfg(c)->drain_max;
    h2o_buffer_consume(&c->sock->input, c->sock->input->size);
    if (!c->tls && shutdown(h2o_socket_get_fd(c->sock), SHUT_WR) != 0) {
        conn_close(c);
        return;
    }
    start_reading(c);
}

/* linger_discard: drops input while lingering; closes past the allowance. */
static void linger_discard(struct conn *c)
{
    size_t n = c->sock->input->size;
    h2o_buffer_consume(&c->sock->input, n);
    if (n > c->linger_left)
        conn_close(c);
    else
        c->linger_left -= n;
}

/* input_use: the prototype the next read's buffer comes from, if the input
 * is empty now (a non-empty buffer keeps its own). */
static void input_use(struct conn *c, h2o_buffer_prototype_t *proto)
{
    if (c->sock->input->bytes == NULL && c->sock->input != &proto->_initial_buf)
        h2o_buffer_init(&c->sock->input, proto);
}

/* input_truncate: keeps the first 'size' bytes of input. Like
 * h2o_buffer_consume draining a buffer, an empty result frees the buffer, so
 * an idle connection holds no input memory. */
static void input_truncate(struct conn *c, size_t size)
{
    if (size != 0) {
        c->sock->input->size = size;
    } else if (c->sock->input->bytes != NULL) {
        h2o_buffer_dispose(&c->sock->input);
        h2o_buffer_init(&c->sock->input, &h2o_socket_buffer_prototype);
    }
}

/* finish_request: body read and response written: next request or close. */
static void finish_request(struct conn *c)
{
    struct req *r = c->req;
    int keep = r->keep_alive && !c->loop->draining;
    int body_cut = r->body_cut;
    free(r);
    c->req = NULL;
    c->requests_served++;
    c->head_last_len = 0;
    if (!keep)
        begin_linger(c, body_cut);
}

/* read_head: parses a head from the input and hands the request to the
 * handler. Returns 1 to go on processing, 0 to wait for an event. */
static int read_head(struct conn *c)
{
    h2o_buffer_t *in = c->sock->input;
    if (c->loop->draining) {
        conn_close(c);
        return 0;
    }
    if (in->size == 0) {
        input_use(c, &h2o_socket_buffer_prototype);
        start_reading(c);
        return 0;
    }
    struct spy_http_head head;
    int n = spy_http_parse_head(in->bytes, in->size, c->head_last_len, cfg(c)->max_head, &head);
    if (n == 0) {
        c->head_last_len = in->size;
        start_reading(c);
        return 0;
    }
    if (n < 0) {
        layer_error(c, -n, SPY_EPROTO,
                    n == -431   ? "request head too large"
                    : n == -505 ? "HTTP version not supported"
                                : "malformed request");
        return 1;
    }
    atomic_fetch_add_explicit(&c->loop->srv->requests, 1, memory_order_relaxed);
    struct req *r = req_new(c, &head);
    if (r == NULL) {
        spy_error("http: no memory for a request head of %d bytes", n);
        conn_close(c);
        return 0;
    }
    h2o_buffer_consume(&c->sock->input, (size_t)n);
    c->head_last_len = 0;
    c->req = r;
    if (r->pub.body_kind == SPY_HTTP_BODY_LENGTH && cfg(c)->max_body != 0 &&
        r->pub.content_length > cfg(c)->max_body) {
        layer_error(c, 413, SPY_ERANGE, "request body too large");
        return 1;
    }
    r->held = 1;
    timer_refresh(c, 0);
    handler(c)->on_request(&r->pub);
    return 1;
}

/* release_slice: the handler is done with the slice at the front of input. */
static void release_slice(struct conn *c, struct req *r)
{
    h2o_buffer_consume(&c->sock->input, r->slice_len);
    r->slice_len = 0;
}

/* deliver: hands data[0..n) (the front of input) to the handler, or drops it. */
static void deliver(struct conn *c, struct req *r, const char *data, size_t n)
{
    if (n == 0)
        return;
    r->slice_len = n;
    if (r->held && !r->discard && handler(c)->on_body != NULL)
        handler(c)->on_body(&r->pub, data, n);
    if (!c->dead && !r->paused)
        release_slice(c, r);
}

/* take_body: the body bytes at the front of input (de-chunked in place).
 * Returns their count, or -1 after a layer error. */
static ssize_t take_body(struct conn *c, struct req *r)
{
    h2o_buffer_t *in = c->sock->input;
    if (r->pub.body_kind == SPY_HTTP_BODY_LENGTH) {
        size_t n = in->size < r->body_left ? in->size : (size_t)r->body_left;
        r->body_left -= n;
        r->body_eof = r->body_left == 0;
        return (ssize_t)n;
    }
    size_t n = in->size;
    ssize_t rest = spy_http_chunked_decode(&r->chunked, in->bytes, &n);
    if (rest == SPY_HTTP_CHUNKED_ERROR) {
        layer_error(c, 400, SPY_EPROTO, "malformed chunked body");
        return -1;
    }
    if (cfg(c)->max_body != 0 && r->chunked.decoded > cfg(c)->max_body) {
        layer_error(c, 413, SPY_ERANGE, "request body too large");
        return -1;
    }
    r->body_eof = rest >= 0;
    input_truncate(c, n + (rest >= 0 ? (size_t)rest : 0));
    return (ssize_t)n;
}

/* read_body: moves the body along: releases a resumed slice, sends "100
 * Continue" when the body is first needed, delivers what input holds, ends
 * the body. Returns 1 to go on processing, 0 to wait for an event. */
static int read_body(struct conn *c, struct req *r)
{
    if (r->paused) {
        stop_reading(c);
        return 0;
    }
    if (r->slice_len != 0)
        release_slice(c, r);
    if (r->discard && !r->keep_alive && !r->body_eof) {
        /* The answer is out or on its way and the connection closes after
         * it: reading the rest of a large body would only delay that.
         * begin_linger drains up to drain_max, so the client still reads
         * the answer rather than a reset. */
        r->body_cut = 1;
        r->body_eof = r->body_done = 1;
        return 1;
    }
    if (r->body_eof) {
        r->body_done = 1;
        if (r->held && !r->discard && handler(c)->on_body_end != NULL)
            handler(c)->on_body_end(&r->pub);
        return 1;
    }
    if (c->sock->input->size == 0) {
        if (r->expect_continue && !r->continue_sent) {
            if (!r->held) { /* answered already: the client need not send it */
                r->body_eof = r->body_done = r->body_cut = 1;
                r->keep_alive = 0;
                return 1;
            }
            r->continue_sent = 1;
            out_add(c, CONTINUE_LINE, sizeof(CONTINUE_LINE) - 1);
            out_flush(c);
        }
        input_use(c, &c->loop->body_proto);
        start_reading(c);
        return 0;
    }
    ssize_t n = take_body(c, r);
    if (n >= 0)
        deliver(c, r, c->sock->input->bytes, (size_t)n);
    return 1;
}

/* conn_process: runs the state machine until it must wait for an event. */
static void conn_process(struct conn *c)
{
    while (!c->dead && !c->lingering) {
        struct req *r = c->req;
        int more;
        if (r == NULL) {
            more = read_head(c);
        } else if (!r->body_done) {
            more = read_body(c, r);
        } else if (r->resp == RESP_SENT) {
            finish_request(c);
            more = 1;
        } else {
            stop_reading(c); /* waiting for the handler or the socket */
            more = 0;
        }
        if (!more)
            break;
    }
    if (!c->dead)
        c->seen = c->sock->input->size;
}

/* ---- entry points ------------------------------------------------------ */

/* on_read: h2o read bytes into sock->input (or failed). */
static void on_read(h2o_socket_t *sock, const char *err)
{
    struct conn *c = sock->data;
    enter(c);
    if (err != NULL) {
        if (c->req != NULL && !c->lingering)
            spy_debug("http: read failed: %s", err);
        conn_kill(c, err == h2o_socket_error_closed ? SPY_ECLOSED : SPY_EIO);
    } else if (c->lingering) {
        linger_discard(c);
    } else {
        int progress = sock->input->size != c->seen;
        conn_process(c);
        timer_refresh(c, progress);
    }
    leave(c);
}

/* on_write: h2o finished (or failed) the batch in flight. */
static void on_write(h2o_socket_t *sock, const char *err)
{
    struct conn *c = sock->data;
    enter(c);
    if (err == NULL && batch_unwritten(c))
        write_part(c);
    else
        write_done(c, err);
    timer_refresh(c, 1);
    leave(c);
}

/* on_timer: the idle timer fired (http_server.h, TIMEOUTS). */
static void on_timer(h2o_timeout_entry_t *entry)
{
    struct conn *c = H2O_STRUCT_FROM_MEMBER(struct conn, timer, entry);
    struct spy_http_loop *l = c->loop;
    h2o_timeout_t *kind = c->timer_kind;
    c->timer_kind = NULL;
    enter(c);
    if (kind == &l->io_timeout) {
        if (c->writing || c->req == NULL || c->req->resp != RESP_NONE)
            conn_kill(c, SPY_ETIMEDOUT);
        else
            layer_error(c, 408, SPY_ETIMEDOUT, "request body timeout");
    } else if (kind == &l->head_timeout && c->req == NULL && c->sock->input->size > 0) {
        layer_error(c, 408, SPY_ETIMEDOUT, "request head timeout");
    } else {
        conn_close(c); /* idle, or done lingering */
    }
    conn_process(c);
    timer_refresh(c, 0);
    leave(c);
}

/* on_defer: the next turn of the loop after a resume, an early response or
 * a write with nothing to send. */
static void on_defer(h2o_timeout_entry_t *entry)
{
    struct conn *c = H2O_STRUCT_FROM_MEMBER(struct conn, defer, entry);
    enter(c);
    if (c->fake_write) {
        c->fake_write = 0;
        write_done(c, NULL);
    } else {
        conn_process(c);
    }
    timer_refresh(c, 0);
    leave(c);
}

/* on_handshake: the TLS handshake is over. h2o has stopped reading and may
 * already have decrypted the first request into sock->input. A failure (a
 * plain-HTTP client, no shared cipher) only closes: there is no request to
 * answer and no handler to tell. */
static void on_handshake(h2o_socket_t *sock, const char *err)
{
    struct conn *c = sock->data;
    enter(c);
    if (err != NULL) {
        spy_debug("http: TLS handshake failed: %s", err);
        conn_close(c);
    } else {
        conn_process(c);
    }
    timer_refresh(c, 0);
    leave(c);
}

void spy_http_conn_accept(struct spy_http_loop *loop, h2o_socket_t *sock)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        spy_error("http: no memory for a connection");
        h2o_socket_close(sock);
        return;
    }
    int one = 1;
    setsockopt(h2o_socket_get_fd(sock), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->loop = loop;
    c->sock = sock;
    sock->data = c;
    c->timer.cb = on_timer;
    c->defer.cb = on_defer;
    h2o_linklist_insert(&loop->conns, &c->link);
    loop->nconns++;
    atomic_fetch_add_explicit(&loop->srv->connections, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&loop->srv->open, 1, memory_order_relaxed);
    enter(c);
    if (loop->srv->cfg.tls != NULL) {
        c->tls = 1;
        h2o_socket_ssl_handshake(sock, loop->srv->cfg.tls, NULL, on_handshake);
    } else {
        start_reading(c);
    }
    timer_refresh(c, 0);
    leave(c);
}

void spy_http_conn_drain_all(struct spy_http_loop *loop)
{
    h2o_linklist_t *node = loop->conns.next;
    while (node != &loop->conns) {
        struct conn *c = H2O_STRUCT_FROM_MEMBER(struct conn, link, node);
        node = node->next;
        enter(c);
        if (c->req == NULL && !c->lingering)
            conn_close(c);
        else if (c->req != NULL)
            c->req->keep_alive = 0;
        leave(c);
    }
}

void spy_http_conn_abort_all(struct spy_http_loop *loop)
{
    h2o_linklist_t *node = loop->conns.next;
    while (node != &loop->conns) {
        struct conn *c = H2O_STRUCT_FROM_MEMBER(struct conn, link, node);
        node = node->next;
        enter(c);
        conn_kill(c, SPY_EABORTED);
        leave(c);
    }
}

/* ---- request functions (http_server.h) --------------------------------- */

/* misuse: logs a handler's call that breaks the contract. */
static int misuse(const char *fn, const char *why)
{
    spy_error("http: %s: %s", fn, why);
    return SPY_EINVAL;
}

/* check_fields: every field may be sent by a handler. */
static int check_fields(const struct spy_http_field *fields, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!spy_http_field_valid(&fields[i]))
            return 0;
    return 1;
}

const char *spy_http_header_get(const struct spy_http_request *req, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < req->num_headers; i++)
        if (req->headers[i].name_len == len && strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

int spy_http_pause(struct spy_http_request *req)
{
    struct req *r = req_of(req);
    if (!r->held || r->body_done)
        return misuse("spy_http_pause", "no body is being read");
    r->paused = 1;
    enter(r->conn);
    stop_reading(r->conn);
    timer_refresh(r->conn, 0);
    leave(r->conn);
    return SPY_OK;
}

int spy_http_resume(struct spy_http_request *req)
{
    struct req *r = req_of(req);
    if (!r->held)
        return misuse("spy_http_resume", "the request is no longer held");
    if (r->paused) {
        r->paused = 0;
        defer_kick(r->conn);
    }
    return SPY_OK;
}

/* check_start: a response may start now with these arguments. */
static int check_start(struct req *r, const char *fn, int status,
                       const struct spy_http_field *fields, size_t nfields)
{
    if (!r->held)
        return misuse(fn, "the request is no longer held");
    if (r->resp != RESP_NONE)
        return misuse(fn, "a response was already started");
    if (status < 200 || status > 599)
        return misuse(fn, "status out of 200..599");
    if (!check_fields(fields, nfields))
        return misuse(fn, "a field is invalid or owned by the layer");
    return SPY_OK;
}

int spy_http_respond(struct spy_http_request *req, int status, const struct spy_http_field *fields,
                     size_t nfields, const void *body, size_t len)
{
    struct req *r = req_of(req);
    int st = check_start(r, "spy_http_respond", status, fields, nfields);
    if (st != SPY_OK)
        return st;
    struct conn *c = r->conn;
    enter(c);
    st = start_response(r, status, fields, nfields, (int64_t)len, body, len, 1);
    if (st == SPY_OK)
        hold_end(r);
    leave(c);
    return st;
}

int spy_http_stream_begin(struct spy_http_request *req, int status,
                          const struct spy_http_field *fields, size_t nfields,
                          int64_t content_length)
{
    struct req *r = req_of(req);
    int st = check_start(r, "spy_http_stream_begin", status, fields, nfields);
    if (st != SPY_OK)
        return st;
    if (content_length < -1)
        return misuse("spy_http_stream_begin", "content_length below -1");
    enter(r->conn);
    st = start_response(r, status, fields, nfields, content_length, NULL, 0, 0);
    leave(r->conn);
    return st;
}

int spy_http_stream_write(struct spy_http_request *req, const void *data, size_t len,
                          spy_http_written_cb cb)
{
    struct req *r = req_of(req);
    if (!r->held || r->resp != RESP_STREAMING)
        return misuse("spy_http_stream_write", "no streamed response in progress");
    if (r->slice_busy)
        return misuse("spy_http_stream_write", "a slice is already in flight");
    int sends = len > 0 && !r->pub.is_head && r->framing != SPY_HTTP_FRAMING_NONE;
    if (sends && r->framing == SPY_HTTP_FRAMING_LENGTH && len > r->resp_left)
        return misuse("spy_http_stream_write", "past the declared Content-Length");
    struct conn *c = r->conn;
    enter(c);
    if (sends && r->framing == SPY_HTTP_FRAMING_CHUNKED) {
        out_add(c, c->chunk_line, spy_http_format_chunk_line(c->chunk_line, len));
        out_add(c, data, len);
        out_add(c, CRLF, 2);
    } else if (sends) {
        out_add(c, data, len);
        if (r->framing == SPY_HTTP_FRAMING_LENGTH)
            r->resp_left -= len;
    }
    r->slice_busy = 1;
    c->queued.has_slice = 1;
    c->queued.slice_cb = cb;
    out_flush(c);
    leave(c);
    return SPY_OK;
}

int spy_http_stream_end(struct spy_http_request *req)
{
    struct req *r = req_of(req);
    if (!r->held || r->resp != RESP_STREAMING)
        return misuse("spy_http_stream_end", "no streamed response in progress");
    if (r->slice_busy)
        return misuse("spy_http_stream_end", "a slice is still in flight");
    struct conn *c = r->conn;
    enter(c);
    int st = SPY_OK;
    if (r->framing == SPY_HTTP_FRAMING_LENGTH && r->resp_left > 0 && !r->pub.is_head) {
        spy_error("http: stream ended %llu bytes short of its Content-Length; closing",
                  (unsigned long long)r->resp_left);
        hold_end(r);
        conn_close(c);
        st = SPY_ERANGE;
    } else {
        if (r->framing == SPY_HTTP_FRAMING_CHUNKED && !r->pub.is_head)
            out_add(c, LAST_CHUNK, sizeof(LAST_CHUNK) - 1);
        r->resp = RESP_ENDED;
        c->queued.ends_response = 1;
        hold_end(r);
        out_flush(c);
    }
    leave(c);
    return st;
}

int spy_http_stream_fail(struct spy_http_request *req)
{
    struct req *r = req_of(req);
    if (!r->held)
        return misuse("spy_http_stream_fail", "the request is no longer held");
    struct conn *c = r->conn;
    enter(c);
    if (r->resp == RESP_NONE) {
        r->keep_alive = 0;
        if (start_response(r, 500, NULL, 0, 0, NULL, 0, 1) != SPY_OK)
            conn_close(c);
        hold_end(r);
    } else {
        hold_end(r);
        conn_close(c);
    }
    leave(c);
    return SPY_OK;
}
