/* http_format.h - HTTP/1.1 response heads, chunk framing and the layer's own
 * error bodies, as pure functions (no allocation, no I/O, no logging).
 *
 * The connection layer owns the framing headers: every head gets Date,
 * "Server: speedy", Connection when needed, and Content-Length or
 * Transfer-Encoding as the framing says; handlers may not set those
 * (spy_http_field_valid refuses them). Reentrant. */
#ifndef SPY_HTTP_FORMAT_H
#define SPY_HTTP_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* One response header from a handler: NUL-terminated name and value. */
struct spy_http_field {
    const char *name;
    const char *value;
};

/* How a response body is delimited on the wire. */
enum spy_http_framing {
    SPY_HTTP_FRAMING_LENGTH,  /* Content-Length: the body has exactly that many bytes */
    SPY_HTTP_FRAMING_CHUNKED, /* Transfer-Encoding: chunked */
    SPY_HTTP_FRAMING_EOF,     /* neither: the body ends when the connection closes
                                 (HTTP/1.0 clients of a response of unknown length) */
    SPY_HTTP_FRAMING_NONE,    /* neither, and no body (1xx, 204, 304) */
};

/* What goes into a response head. */
struct spy_http_head_out {
    int status;        /* 100..599 */
    int minor_version; /* the request's: 0 adds "Connection: keep-alive" when persistent */
    const char *date;  /* an IMF-fixdate (spy_http_format_date) */
    enum spy_http_framing framing;
    uint64_t content_length; /* SPY_HTTP_FRAMING_LENGTH only */
    int keep_alive;          /* 0: "Connection: close" */
    const struct spy_http_field *fields;
    size_t nfields;
};

/* Length of an IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT". */
#define SPY_HTTP_DATE_LEN 29

/* Writes the IMF-fixdate of t (UTC) and a NUL into out. */
void spy_http_format_date(time_t t, char out[SPY_HTTP_DATE_LEN + 1]);

/* The reason phrase of a status ("Not Found"), or "Unknown"; never NULL. */
const char *spy_http_reason(int status);

/* The framing a response must use: NONE for 1xx, 204 and 304; LENGTH when
 * content_length >= 0; otherwise CHUNKED for HTTP/1.1 and EOF for HTTP/1.0. */
enum spy_http_framing spy_http_framing_for(int status, int64_t content_length, int minor_version);

/* True when a handler may send this field: the name is a non-empty token and
 * not one the layer owns (Content-Length, Transfer-Encoding, Connection, Date,
 * Server, Keep-Alive, Upgrade, Trailer), and the value has no CR, LF or other
 * control byte but tab. */
int spy_http_field_valid(const struct spy_http_field *f);

/* An upper bound of the bytes spy_http_format_head writes for h. */
size_t spy_http_head_size(const struct spy_http_head_out *h);

/* Writes the status line, the layer's headers, h's fields and the blank line
 * into buf. Returns the length, or 0 when cap is smaller than needed. Fields
 * are written as given: check them with spy_http_field_valid first. */
size_t spy_http_format_head(char *buf, size_t cap, const struct spy_http_head_out *h);

/* Room for a chunk-size line: 16 hex digits, CR, LF. */
#define SPY_HTTP_CHUNK_LINE_MAX 18

/* Writes "<len in hex>\r\n" into out; returns its length. */
size_t spy_http_format_chunk_line(char out[SPY_HTTP_CHUNK_LINE_MAX], size_t len);

/* Writes the layer's error body, {"errors":[{"code":...,"message":...}]},
 * into buf. code and message are plain ASCII without quotes or backslashes
 * (the layer's own constants). Returns the length, or 0 if cap is too small. */
size_t spy_http_format_error(char *buf, size_t cap, const char *code, const char *message);

#endif
