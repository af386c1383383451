/* http_server.h - the registry's HTTP/1.1 connection layer, on h2o's event
 * loop, with streamed request and response bodies.
 *
 * Why: h2o 2.2.5 buffers a whole request body before any handler runs (see
 * docs/http.md). This layer uses h2o only for what it does well (the evloop,
 * sockets, timeouts, cross-thread queues, TLS) and does HTTP/1.1 itself,
 * so an upload flows client -> handler -> storage in slices, with the client's
 * TCP window closing whenever the handler falls behind.
 *
 * THREADS. spy_http_server_start() opens one SO_REUSEPORT listening socket per
 * thread on the same address and port and runs one h2o evloop per thread; the
 * kernel spreads connections across them. A connection, its requests and
 * every handler callback for them stay on the loop thread that accepted it.
 * None of the request functions below are thread-safe: call them on the
 * request's loop thread only. Other threads (the registry's MySQL workers)
 * hand results back with spy_http_post().
 *
 * A REQUEST'S LIFE, as the handler sees it:
 *
 *     on_request -> on_body* -> on_body_end      (then, or earlier, respond)
 *
 *  - on_request(req) gets the head. The body has not been read yet (and
 *    "100 Continue" not sent). The handler may respond at once (an early
 *    reject), or set req->data and wait for the body.
 *  - on_body(req, data, len) delivers the body in slices, already de-chunked,
 *    as they arrive (their size follows the socket reads: 4 KiB to about
 *    2 x SO_RCVBUF). 'data' belongs to the layer. It stays valid until
 *    on_body returns, or, if the handler called spy_http_pause() in on_body,
 *    until it calls spy_http_resume(): so a slice can be written to a storage
 *    node without a copy while the client's socket is not read at all.
 *  - on_body_end(req) follows the last slice, also for requests without a
 *    body (a GET gets on_request then on_body_end).
 *  - The handler answers with spy_http_respond() (a small, copied body) or the
 *    stream functions, from any of its callbacks or later from its own events
 *    on the loop thread.
 *
 * THE HANDLER'S HOLD ON A REQUEST ends in exactly one of two ways:
 *  (a) its terminal call: spy_http_respond(), spy_http_stream_end() or
 *      spy_http_stream_fail(); or
 *  (b) on_abort(req, status), called once, when the client goes away, a read
 *      or write times out, the body turns out malformed or too large, or the
 *      server stops. status is SPY_ECLOSED, SPY_EIO, SPY_ETIMEDOUT,
 *      SPY_EPROTO, SPY_ERANGE or SPY_EABORTED.
 * After (a) returns, or after (b) returns, the handler must not touch req (it
 * gets no more callbacks for it; the layer finishes or frees it). Inside
 * on_abort req->data is still readable, the request functions all return
 * SPY_EINVAL, and a paused slice is still valid; it is not once on_abort
 * returns, so cancel anything still reading it (closing an h2o socket that
 * has it in a write is enough: h2o never touches a closed socket's buffers).
 *
 * No request function calls back into the handler before it returns: writes
 * complete, and resumed reading happens, on a later turn of the loop.
 *
 * BACK-PRESSURE. Uploads: while paused, the layer reads nothing from the
 * client; the kernel's receive buffer fills and the client's TCP window
 * closes. Downloads: one stream slice in flight at a time; its completion
 * callback runs when the slice is on the socket, and the handler produces the
 * next one from there.
 *
 * EARLY RESPONSES. If the handler's terminal call comes before the body is
 * all read and the remainder is known (Content-Length) and at most
 * cfg.drain_max, the rest is read and discarded and the connection kept
 * alive; otherwise the response says "Connection: close", the rest of the
 * body is not read, and after the response is written the layer shuts down
 * its sending side and discards up to drain_max more bytes (or until the
 * linger timeout) before closing, so the client can read the response
 * instead of getting a reset. "100 Continue" is sent only when the
 * handler has not responded by the time the body is needed; a client that
 * waited for it gets the final response and "Connection: close".
 *
 * TIMEOUTS (all close the connection; those while the handler holds the
 * request also call on_abort with SPY_ETIMEDOUT):
 *  - head_timeout_ms: from the accept, or from the first byte of a later
 *    request, until its head is complete (not re-armed by progress: a client
 *    trickling a head byte by byte is cut). 408 if part of a head arrived.
 *  - io_timeout_ms: idle time while the layer waits for body bytes or for a
 *    write to complete; re-armed on every read and every completed write, so
 *    a slow but steady transfer is never cut. Never runs while the request is
 *    paused or while the handler is preparing its response: the handler's
 *    own work has its own deadlines. 408 if no response was started.
 *  - keepalive_timeout_ms: idle time between requests.
 *  - linger_ms: the discard phase of a closing connection (above).
 *
 * MEMORY per connection is bounded and does not grow with body sizes:
 * about 570 B of state, h2o's input buffer (the head, at most max_head, plus
 * one burst of reads; SO_RCVBUF bounds the burst: the layer consumes every
 * slice before reading again, and never reads while paused), the request and
 * its head copy (200 B + max_head + 34 B per header), and one response head
 * (its fields plus 256 B); plus what the handler itself holds (a body given
 * to spy_http_respond is copied). See docs/http.md for measurements.
 *
 * TLS. With cfg.tls set, every accepted connection is TLS (1.2 or 1.3, ALPN
 * "http/1.1" only: h2o's HTTP/2 would buffer whole bodies). The handshake runs
 * before the first request head is read and counts against head_timeout_ms;
 * a failed handshake (a plain-HTTP client, say) closes the connection without
 * a word. Handlers see no difference: bodies arrive decrypted, in the same
 * slices. Output is encrypted by h2o in memory a whole write at a time, so
 * the layer hands h2o at most SPY_HTTP_TLS_WRITE_MAX bytes per write (a
 * larger stream slice is written in parts; its completion still runs once).
 * Closing sends TLS close_notify; the sending side is never shut down under
 * it (see docs/http.md, TLS). Memory per TLS connection adds OpenSSL's
 * session state, record buffers only while a record is in progress
 * (SSL_MODE_RELEASE_BUFFERS), and h2o's encrypted copy of at most one write
 * part.
 *
 * ERRORS the layer answers itself, always with "Connection: close" and a small
 * JSON body {"errors":[{"code":...,"message":...}]}: 400 (malformed request
 * line, headers or chunked framing; code UNSUPPORTED), 408 (timeout;
 * UNSUPPORTED), 413 (Content-Length or chunked body over max_body; SIZE_INVALID),
 * 431 (head over max_head or over SPY_HTTP_MAX_HEADERS headers; SIZE_INVALID),
 * 505 (HTTP major version other than 1; UNSUPPORTED). Everything else,
 * error bodies included, is the handler's. */
#ifndef SPY_HTTP_SERVER_H
#define SPY_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <h2o/multithread.h>
#include <h2o/socket.h>
#include <openssl/ssl.h>

#include "registry/http_format.h"
#include "registry/http_parse.h"

struct spy_http_server;
struct spy_http_loop;

/* The most bytes the layer passes to one h2o_socket_write under TLS (h2o
 * encrypts a write into memory all at once). */
#define SPY_HTTP_TLS_WRITE_MAX (1u << 20)

/* Listener and connection settings. spy_http_config_init() fills defaults. */
struct spy_http_config {
    const char *host;              /* IPv4 or IPv6 literal or name; NULL or "" = every address
                                      (IPv6 "::" accepting IPv4 too) */
    uint16_t port;                 /* 0 = an ephemeral port, the same for every thread */
    unsigned threads;              /* loops; 0 = one per online core */
    int backlog;                   /* listen(2) backlog per thread (default 1024) */
    unsigned max_connections;      /* per thread; at the limit accepting pauses (4096) */
    size_t max_head;               /* request head limit; over it: 431 (64 KiB) */
    uint64_t max_body;             /* request body limit; over it: 413 (0 = none) */
    size_t drain_max;              /* body bytes discarded after an early response (1 MiB) */
    int so_rcvbuf;                 /* SO_RCVBUF of accepted sockets (256 KiB; 0 = kernel's) */
    int so_sndbuf;                 /* SO_SNDBUF of accepted sockets (256 KiB; 0 = kernel's) */
    uint32_t head_timeout_ms;      /* 10 s */
    uint32_t io_timeout_ms;        /* 30 s */
    uint32_t keepalive_timeout_ms; /* 30 s */
    uint32_t linger_ms;            /* 2 s */
    uint32_t stop_grace_ms;        /* spy_http_server_stop's wait for requests (5 s) */
    SSL_CTX *tls;                  /* NULL: plain HTTP; else serve TLS with it (from
                                      spy_http_tls_create; the server holds its own
                                      reference from start to stop) */
    const struct spy_http_field *error_fields; /* header fields added to the layer's own
                                                  400/408/413/431/505 answers (at most
                                                  SPY_HTTP_ERROR_FIELDS_MAX; the caller's
                                                  memory, valid until stop) */
    size_t error_nfields;
};
#define SPY_HTTP_ERROR_FIELDS_MAX 4

/* A request as the handler sees it. The layer owns it; every field but 'data'
 * is read-only. Strings are NUL-terminated copies of what the client sent
 * (nothing percent-decoded), valid until the handler's hold ends. */
struct spy_http_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct spy_http_request {
    const char *method; /* "GET", "PUT", ... */
    const char *path;   /* up to '?' */
    const char *query;  /* after '?', or NULL */
    int minor_version;  /* HTTP/1.<minor> */
    const struct spy_http_header *headers;
    size_t num_headers;
    enum spy_http_body_kind body_kind; /* NONE, LENGTH or CHUNKED */
    uint64_t content_length;           /* for SPY_HTTP_BODY_LENGTH */
    int is_head;                       /* HEAD: responses carry no body bytes */
    void *ctx;                         /* the handler's ctx (struct spy_http_handler) */
    struct spy_http_loop *loop;        /* the loop thread this request runs on */
    void *data;                        /* the handler's; NULL at on_request */
};

/* The handler: callbacks run on the loop thread of their request. Only
 * on_request is required. */
struct spy_http_handler {
    void (*on_request)(struct spy_http_request *req);
    /* NULL: body bytes are discarded. */
    void (*on_body)(struct spy_http_request *req, const char *data, size_t len);
    void (*on_body_end)(struct spy_http_request *req);
    void (*on_abort)(struct spy_http_request *req, int status);
    /* Per-loop set-up and tear-down, on the loop's thread: on_loop_start runs
     * before the loop accepts anything and returns its per-loop data
     * (spy_http_loop_data); on_loop_stop runs after its last connection is
     * gone and its last posted message delivered. Both optional. */
    void *(*on_loop_start)(struct spy_http_loop *loop, void *ctx);
    void (*on_loop_stop)(struct spy_http_loop *loop, void *loop_data, void *ctx);
    void *ctx;
};

/* Counters, summed over the loops (relaxed atomics; for tests and metrics). */
struct spy_http_stats {
    uint64_t connections; /* accepted so far */
    uint64_t requests;    /* heads parsed so far */
    uint64_t open;        /* connections open now */
    uint64_t aborts;      /* on_abort calls so far */
};

/* Fills cfg with the defaults above. */
void spy_http_config_init(struct spy_http_config *cfg);

/* Builds a server TLS context for cfg.tls from a PEM certificate chain and a
 * PEM private key: TLS 1.2 minimum, ALPN "http/1.1" only (a client offering
 * only other protocols gets no ALPN answer), no compression or
 * renegotiation. Returns SPY_OK and *out (the caller frees it with
 * SSL_CTX_free, which may be right after spy_http_server_start), or
 * SPY_EINVAL with one line in err[0..errcap) (a file unreadable or not PEM,
 * or the key not matching the certificate; nothing is logged), or
 * SPY_ENOMEM. Any thread. */
int spy_http_tls_create(const char *cert_path, const char *key_path, SSL_CTX **out, char *err,
                        size_t errcap);

/* Opens the listening sockets (errors are reported here, synchronously),
 * starts the loop threads and returns once every loop accepts. The handler
 * struct is copied; cfg is copied (host too). Also sets SIGPIPE to SIG_IGN for
 * the process: h2o writes with writev(2). Returns SPY_OK and *out, SPY_EINVAL
 * (bad config), SPY_EIO (socket, bind or listen failed; logged with errno) or
 * SPY_ENOMEM. */
int spy_http_server_start(const struct spy_http_config *cfg, const struct spy_http_handler *h,
                          struct spy_http_server **out);

/* The port the server listens on (useful with cfg.port 0). */
uint16_t spy_http_server_port(const struct spy_http_server *srv);

/* Copies the counters into *out. Any thread. */
void spy_http_server_stats(const struct spy_http_server *srv, struct spy_http_stats *out);

/* Stops accepting, closes idle connections, lets requests in progress finish
 * for up to cfg.stop_grace_ms (their responses say "Connection: close"), then
 * aborts the rest (on_abort with SPY_EABORTED), runs on_loop_stop, joins the
 * threads and frees srv. Call from any thread except a loop thread, once,
 * after the handler's own threads have stopped calling spy_http_post (join
 * them first; their messages still get delivered while stop runs). */
void spy_http_server_stop(struct spy_http_server *srv);

/* The loop's h2o event loop, for the handler's own sockets and timeouts. */
h2o_loop_t *spy_http_loop_evloop(struct spy_http_loop *loop);

/* What on_loop_start returned for this loop. */
void *spy_http_loop_data(struct spy_http_loop *loop);

/* A message from another thread to a loop. Embed it in your own struct. */
struct spy_http_msg {
    h2o_multithread_message_t _super; /* zero it before posting */
    void (*_cb)(struct spy_http_msg *msg);
};

/* Queues msg to 'loop'; cb(msg) runs on that loop's thread, in posting order.
 * Any thread. msg and what cb needs must stay alive until cb runs; a request
 * may have ended meanwhile (on_abort), so cb must check its own state before
 * touching the request (reference-count the handler's per-request state). */
void spy_http_post(struct spy_http_loop *loop, struct spy_http_msg *msg,
                   void (*cb)(struct spy_http_msg *msg));

/* The first header named 'name' (case-insensitive), or NULL. */
const char *spy_http_header_get(const struct spy_http_request *req, const char *name);

/* Stops delivering body slices after the current one until spy_http_resume.
 * Nothing is read from the client meanwhile. Call from on_request or on_body
 * (or later, from the handler's events, before on_body_end). */
int spy_http_pause(struct spy_http_request *req);

/* Lets the body flow again: the paused slice is released and reading goes on
 * from the next turn of the loop. */
int spy_http_resume(struct spy_http_request *req);

/* Completion of one streamed slice (it is on the socket; the handler may
 * reuse its buffer and send the next). Not called if the request is aborted
 * first: on_abort is, instead. */
typedef void (*spy_http_written_cb)(struct spy_http_request *req);

/* Terminal. Sends a whole response: status, fields (checked with
 * spy_http_field_valid) and a body of len bytes, which is copied. The layer
 * adds Content-Length: len; a HEAD request gets the head only. Returns SPY_OK,
 * or SPY_EINVAL (a bad field or status, a response already started, or the
 * hold has ended; nothing was sent and the hold continues unless it had
 * ended), or SPY_ENOMEM. */
int spy_http_respond(struct spy_http_request *req, int status, const struct spy_http_field *fields,
                     size_t nfields, const void *body, size_t len);

/* Starts a streamed response. content_length >= 0: exactly that many body
 * bytes follow (Content-Length); -1: unknown (chunked; for an HTTP/1.0 client
 * the body ends with the connection). The head is written at once. For HEAD
 * requests pass the length a GET would have, and call spy_http_stream_end
 * (writes are accepted and dropped). Returns as spy_http_respond. */
int spy_http_stream_begin(struct spy_http_request *req, int status,
                          const struct spy_http_field *fields, size_t nfields,
                          int64_t content_length);

/* Sends one slice: data[0..len) must stay valid and unchanged until cb(req)
 * runs. One slice at a time: SPY_EINVAL while one is in flight, or past the
 * declared Content-Length (nothing is sent). An empty slice completes too. */
int spy_http_stream_write(struct spy_http_request *req, const void *data, size_t len,
                          spy_http_written_cb cb);

/* Terminal. Ends a streamed response (the final chunk for chunked). No slice
 * may be in flight (SPY_EINVAL). If fewer bytes than the declared
 * Content-Length were sent, this acts as spy_http_stream_fail (and returns
 * SPY_ERANGE). */
int spy_http_stream_end(struct spy_http_request *req);

/* Terminal. Ends a response in error: the connection is closed without the
 * final chunk (or short of Content-Length), so the client sees a broken
 * transfer, never a complete-looking short body. If no response was started,
 * the layer answers 500 with "Connection: close" instead. A slice in flight
 * is dropped (its callback does not run). */
int spy_http_stream_fail(struct spy_http_request *req);

#endif
