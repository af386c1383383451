/* httpc.h - a small blocking HTTP/1.1 client for talking to the chunkmaster
 * (spy_server's reports, the registry's route table and fid ranges).
 *
 * One request per connection ("Connection: close"), no TLS, no redirects, no
 * keep-alive. Every step has a deadline: the connect (per address tried) is
 * bounded by connect_timeout_ms and the whole exchange (name lookup excepted,
 * see below) by timeout_ms; waiting is done with poll(2) on a non-blocking
 * socket, so a peer that accepts and never answers costs at most timeout_ms.
 * Responses may be framed by Content-Length, chunked transfer-encoding or the
 * end of the connection; bodies over max_response bytes are refused.
 *
 * Name lookup uses getaddrinfo(3), which has no deadline of its own: pass
 * numeric addresses (IPv4 or IPv6) where a hard bound matters.
 *
 * Thread-safe: no shared state; each call uses its own socket and buffers. */
#ifndef SPY_HTTPC_H
#define SPY_HTTPC_H

#include <stddef.h>

#define SPY_HTTP_MAX_RESPONSE_DEFAULT (4u << 20)  /* body bytes */
#define SPY_HTTP_MAX_HEADER           (64u << 10) /* status line + headers */

struct spy_http_req {
    const char *host;         /* IPv4/IPv6 literal (no brackets) or a name */
    int port;                 /* 1..65535 */
    const char *method;       /* "GET", "POST", ... */
    const char *path;         /* starts with '/', sent as is */
    const char *content_type; /* NULL: no Content-Type header */
    const void *body;         /* may be NULL when body_len is 0 */
    size_t body_len;          /* sent with Content-Length (also 0 for POST/PUT) */
    int connect_timeout_ms;   /* <= 0: use timeout_ms */
    int timeout_ms;           /* the whole exchange; must be > 0 */
    size_t max_response;      /* body bound; 0: SPY_HTTP_MAX_RESPONSE_DEFAULT */
};

struct spy_http_resp {
    int status;      /* HTTP status code, e.g. 200 */
    char *body;      /* malloc'd, NUL-terminated (not counted in body_len) */
    size_t body_len; /* bytes of body, after chunked decoding */
};

/* Sends one request and reads the whole response into *resp (zeroed first).
 * Returns SPY_OK when a complete response arrived, whatever its HTTP status:
 * the caller checks resp->status and frees with spy_http_resp_free. Errors
 * (resp then holds nothing to free, though freeing it is harmless):
 *   SPY_EINVAL     bad arguments (no host, port out of range, timeout <= 0, a
 *                  CR or LF in host/method/path/content_type, or a request
 *                  line plus headers over 2 KiB)
 *   SPY_EIO        name lookup failed, connection refused/reset, I/O error
 *   SPY_ETIMEDOUT  the connect or the whole-exchange deadline passed
 *   SPY_EPROTO     the peer's reply is not a valid HTTP/1.x response
 *   SPY_ERANGE     the body (or the header block) exceeds its bound
 *   SPY_ENOMEM     malloc failed
 * Failures are logged at debug level only: callers decide how loud to be
 * (the reporter logs a failing master once, not every interval). */
int spy_http_request(const struct spy_http_req *req, struct spy_http_resp *resp);

/* Frees the body and zeroes *resp. Safe on a zeroed or already freed resp. */
void spy_http_resp_free(struct spy_http_resp *resp);

#endif
