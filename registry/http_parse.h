/* http_parse.h - HTTP/1.1 request heads and chunked bodies, as pure functions.
 *
 * No sockets, no allocation, no logging: the connection layer
 * (registry/http_conn.c) feeds these its input buffer, and fuzz/fuzz_http.c
 * feeds them arbitrary bytes. Reentrant; thread-safe on distinct arguments.
 *
 * Head rules (RFC 9112, applied strictly where request smuggling lurks):
 *  - The request line and headers are picohttpparser's (registry/http_phr.h):
 *    tokens for method and header names, no control bytes, HTTP/1.<digit>.
 *  - The head may be at most max_head bytes (request line, headers and the
 *    blank line): longer, or more than SPY_HTTP_MAX_HEADERS header lines,
 *    is 431. Another major version is 505. Anything else malformed is 400.
 *  - Obsolete line folding is rejected (400).
 *  - Content-Length must be decimal digits below 2^63; repeated headers must
 *    agree. Transfer-Encoding must be exactly "chunked" (one header, one
 *    coding); both together is 400. Neither means no body.
 *  - The request target must be origin-form ("/path?query"), absolute-form
 *    ("http://host/path", the authority is dropped) or "*". Nothing is
 *    percent-decoded.
 *  - Persistence: HTTP/1.1 keeps the connection unless "Connection: close";
 *    HTTP/1.0 closes unless "Connection: keep-alive".
 *  - "Expect: 100-continue" is honoured for HTTP/1.1 only; other
 *    expectations are ignored. */
#ifndef SPY_HTTP_PARSE_H
#define SPY_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "registry/http_phr.h"

/* Header lines accepted in one request head. */
#define SPY_HTTP_MAX_HEADERS 100

/* How a request's body is framed. */
enum spy_http_body_kind {
    SPY_HTTP_BODY_NONE = 0, /* no body: no Content-Length, no Transfer-Encoding */
    SPY_HTTP_BODY_LENGTH,   /* Content-Length bytes (possibly 0) */
    SPY_HTTP_BODY_CHUNKED,  /* Transfer-Encoding: chunked, length unknown */
};

/* A parsed request head. Every pointer points into the buffer given to
 * spy_http_parse_head and is valid as long as those bytes are. */
struct spy_http_head {
    const char *method;
    size_t method_len;
    const char *path; /* origin-form path up to '?' ("*" for OPTIONS *) */
    size_t path_len;
    const char *query; /* the bytes after '?', or NULL without a '?' */
    size_t query_len;
    int minor_version; /* HTTP/1.<minor>, 0..9 */
    struct phr_header headers[SPY_HTTP_MAX_HEADERS];
    size_t num_headers;
    enum spy_http_body_kind body_kind;
    uint64_t content_length; /* SPY_HTTP_BODY_LENGTH only; 0 otherwise */
    int keep_alive;          /* the client allows another request after this one */
    int expect_continue;     /* "Expect: 100-continue" on HTTP/1.1 */
    int is_head;             /* the method is HEAD: the response has no body bytes */
};

/* Parses the request head at the start of buf[0..len). last_len is the
 * length passed on the previous call for the same head (0 at first). With
 * last_len > 0 only the new bytes are scanned, for the end of the head, so a
 * head trickled in byte by byte costs linear time; the price is that bytes
 * after last_len are validated only once the head is complete (until then the
 * result is 0, or -431 at max_head). With last_len 0 everything is checked.
 * Returns the head's length (> 0, the body starts there) and fills
 * *out; 0 when the head is incomplete and shorter than max_head; or a
 * negative HTTP status, -400, -431 or -505, for which *out is undefined. */
int spy_http_parse_head(const char *buf, size_t len, size_t last_len, size_t max_head,
                        struct spy_http_head *out);

/* The first header named 'name' (case-insensitive), or NULL. */
const struct phr_header *spy_http_head_find(const struct spy_http_head *head, const char *name);

/* True when the comma-separated list value[0..len) contains 'token'
 * (case-insensitive, optional whitespace around elements). */
int spy_http_token_list_has(const char *value, size_t len, const char *token);

/* Chunked-body decoder state. Zero it with spy_http_chunked_init. Plain data. */
struct spy_http_chunked {
    struct phr_chunked_decoder phr;
    uint64_t decoded; /* body bytes produced so far */
};

enum {
    SPY_HTTP_CHUNKED_ERROR = -1, /* malformed framing: the connection must close */
    SPY_HTTP_CHUNKED_MORE = -2,  /* every byte was consumed; the body goes on */
};

void spy_http_chunked_init(struct spy_http_chunked *c);

/* Decodes buf[0..*len) in place: on return the decoded body bytes are at
 * buf[0..*len). Returns SPY_HTTP_CHUNKED_MORE, SPY_HTTP_CHUNKED_ERROR, or,
 * when the body (with its trailer section, which is discarded) has ended, the
 * number of bytes that followed it, now at buf[*len .. *len + ret). Feeding
 * the same stream in any split gives the same bytes and the same result. */
ssize_t spy_http_chunked_decode(struct spy_http_chunked *c, char *buf, size_t *len);

#endif
