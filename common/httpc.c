/* httpc.c - the blocking HTTP/1.1 client (see httpc.h for the contract).
 *
 * The whole response is read into one growing buffer; after every recv the
 * buffer is parsed from the start to see whether the response is complete
 * (headers, then Content-Length bytes, the chunked terminator, or EOF). The
 * parse is cheap: it hops from header to header and chunk to chunk, never
 * over body bytes, so re-running it costs little even for a 4 MiB body. */
#include "common/clock.h"
#include "common/httpc.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/status.h"

/* The growing receive buffer (raw response bytes). */
struct rbuf {
    char *data;
    size_t len, cap;
};

/* What parse_response found so far. */
struct parsed {
    int status;
    size_t body_off; /* start of the body in the raw buffer */
    size_t body_len; /* Content-Length, or decoded chunked length */
    int chunked;     /* Transfer-Encoding: chunked */
    int has_length;  /* Content-Length present */
    int no_body;     /* HEAD, 1xx, 204, 304 */
};

#define PARSE_INCOMPLETE 1

/* wait_fd: polls fd for 'events' until 'deadline' (monotonic ms). Returns
 * SPY_OK when ready, SPY_ETIMEDOUT when the deadline passed, SPY_EIO on a
 * poll error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - spy_clock_ms();
        if (left <= 0)
            return SPY_ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int rc = poll(&p, 1, (int)(left > INT32_MAX ? INT32_MAX : left));
        if (rc > 0)
            return SPY_OK;
        if (rc == 0)
            return SPY_ETIMEDOUT;
        if (errno != EINTR)
            return SPY_EIO;
    }
}

/* connect_one: a non-blocking connect to one resolved address, bounded by
 * 'deadline'. Returns SPY_OK with *out set, SPY_ETIMEDOUT or SPY_EIO. */
static int connect_one(const struct addrinfo *ai, int64_t deadline, int *out)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return SPY_EIO;
    int rc = SPY_OK;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            rc = SPY_EIO;
        } else if ((rc = wait_fd(fd, POLLOUT, deadline)) == SPY_OK) {
            int err = 0;
            socklen_t len = sizeof(err);
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
                rc = SPY_EIO;
        }
    }
    if (rc != SPY_OK) {
        close(fd);
        return rc;
    }
    *out = fd;
    return SPY_OK;
}

/* connect_host: resolves host:port and tries each address in turn, each
 * bounded by the connect timeout and all by the overall deadline. */
static int connect_host(const struct spy_http_req *req, int64_t deadline, int *out)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", req->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(req->host, port, &hints, &res);
    if (gai != 0) {
        spy_debug("http: cannot resolve %s: %s", req->host, gai_strerror(gai));
        return SPY_EIO;
    }
    int connect_ms = req->connect_timeout_ms > 0 ? req->connect_timeout_ms : req->timeout_ms;
    int rc = SPY_EIO;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int64_t until = spy_clock_ms() + connect_ms;
        rc = connect_one(ai, until < deadline ? until : deadline, out);
        if (rc == SPY_OK || spy_clock_ms() >= deadline)
            break;
    }
    freeaddrinfo(res);
    if (rc != SPY_OK)
        spy_debug("http: cannot connect to %s port %d: %s", req->host, req->port, spy_strerror(rc));
    return rc;
}

/* send_all: writes every byte before the deadline. */
static int send_all(int fd, const void *buf, size_t len, int64_t deadline)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(fd, POLLOUT, deadline);
            if (rc != SPY_OK)
                return rc;
            continue;
        }
        return SPY_EIO;
    }
    return SPY_OK;
}

/* send_request: the request line, headers and body. */
static int send_request(int fd, const struct spy_http_req *req, int64_t deadline)
{
    char head[2048];
    int bracket = strchr(req->host, ':') != NULL;
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUser-Agent: speedy\r\n"
                     "Accept: */*\r\nConnection: close\r\n",
                     req->method, req->path, bracket ? "[" : "", req->host, bracket ? "]" : "",
                     req->port);
    if (req->content_type != NULL && n > 0 && (size_t)n < sizeof(head))
        n += snprintf(head + n, sizeof(head) - n, "Content-Type: %s\r\n", req->content_type);
    if (n > 0 && (size_t)n < sizeof(head))
        n += snprintf(head + n, sizeof(head) - n, "Content-Length: %zu\r\n\r\n", req->body_len);
    if (n < 0 || (size_t)n >= sizeof(head))
        return SPY_EINVAL;
    int rc = send_all(fd, head, (size_t)n, deadline);
    if (rc == SPY_OK && req->body_len > 0)
        rc = send_all(fd, req->body, req->body_len, deadline);
    return rc;
}

/* find_crlf: offset of the next "\r\n" in p[from..n), or -1. */
static long find_crlf(const char *p, size_t from, size_t n)
{
    for (size_t i = from; i + 1 < n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n')
            return (long)i;
    return -1;
}

/* header_is: whether the header line starts with "name:" (any case). */
static int header_is(const char *line, size_t len, const char *name)
{
    size_t nl = strlen(name);
    return len > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':';
}

/* header_value: the value of a header line with leading blanks skipped,
 * copied NUL-terminated into out (cut to outlen - 1). */
static void header_value(const char *line, size_t len, size_t name_len, char *out, size_t outlen)
{
    size_t i = name_len + 1;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    size_t n = len - i < outlen - 1 ? len - i : outlen - 1;
    memcpy(out, line + i, n);
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t'))
        n--;
    out[n] = '\0';
}

/* parse_status_line: "HTTP/1.x NNN reason". */
static int parse_status_line(const char *p, size_t len, int *status)
{
    if (len < 12 || strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
        return SPY_EPROTO;
    for (int i = 9; i < 12; i++)
        if (p[i] < '0' || p[i] > '9')
            return SPY_EPROTO;
    if (len > 12 && p[12] != ' ')
        return SPY_EPROTO;
    *status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    return *status >= 100 ? SPY_OK : SPY_EPROTO;
}

/* parse_one_header: applies one header line to 'out' (only the two that
 * frame the body matter here). */
static int parse_one_header(const char *line, size_t len, struct parsed *out)
{
    char value[64];
    if (header_is(line, len, "content-length")) {
        header_value(line, len, strlen("content-length"), value, sizeof(value));
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (value[0] < '0' || value[0] > '9' || *end != '\0' || errno != 0)
            return SPY_EPROTO;
        if (out->has_length && out->body_len != v)
            return SPY_EPROTO;
        out->has_length = 1;
        out->body_len = (size_t)v;
    } else if (header_is(line, len, "transfer-encoding")) {
        header_value(line, len, strlen("transfer-encoding"), value, sizeof(value));
        if (strcasecmp(value, "identity") == 0)
            return SPY_OK;
        size_t vl = strlen(value);
        if (vl < 7 || strcasecmp(value + vl - 7, "chunked") != 0)
            return SPY_EPROTO; /* a coding we cannot undo */
        out->chunked = 1;
    }
    return SPY_OK;
}

/* parse_head: parses the status line and headers starting at 'from'. Returns
 * SPY_OK with out->body_off set, PARSE_INCOMPLETE, SPY_EPROTO or SPY_ERANGE
 * (header block over SPY_HTTP_MAX_HEADER). */
static int parse_head(const char *p, size_t n, size_t from, struct parsed *out)
{
    long eol = find_crlf(p, from, n);
    if (eol < 0)
        return n - from > SPY_HTTP_MAX_HEADER ? SPY_ERANGE : PARSE_INCOMPLETE;
    memset(out, 0, sizeof(*out));
    int rc = parse_status_line(p + from, (size_t)eol - from, &out->status);
    if (rc != SPY_OK)
        return rc;
    size_t pos = (size_t)eol + 2;
    for (;;) {
        eol = find_crlf(p, pos, n);
        if (eol < 0)
            return n - from > SPY_HTTP_MAX_HEADER ? SPY_ERANGE : PARSE_INCOMPLETE;
        if ((size_t)eol == pos)
            break;
        rc = parse_one_header(p + pos, (size_t)eol - pos, out);
        if (rc != SPY_OK)
            return rc;
        pos = (size_t)eol + 2;
    }
    out->body_off = (size_t)eol + 2;
    if (out->body_off - from > SPY_HTTP_MAX_HEADER)
        return SPY_ERANGE;
    return SPY_OK;
}

/* parse_chunk_size: the hex size at the start of a chunk line (extensions
 * after ';' ignored). */
static int parse_chunk_size(const char *line, size_t len, size_t *size)
{
    size_t v = 0, i = 0;
    for (; i < len; i++) {
        char c = line[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            break;
        if (v > (SIZE_MAX >> 4))
            return SPY_ERANGE;
        v = v << 4 | (size_t)d;
    }
    if (i == 0 || (i < len && line[i] != ';' && line[i] != ' ' && line[i] != '\t'))
        return SPY_EPROTO;
    *size = v;
    return SPY_OK;
}

/* chunked_scan: walks a chunked body in p[from..n). Returns SPY_OK when the
 * terminating chunk and trailers are complete (*decoded = body bytes; when
 * 'out' is not NULL the bytes are copied there), PARSE_INCOMPLETE, SPY_EPROTO,
 * or SPY_ERANGE once the body passes 'max'. */
static int chunked_scan(const char *p, size_t n, size_t from, size_t max, char *out,
                        size_t *decoded)
{
    size_t pos = from, total = 0;
    for (;;) {
        long eol = find_crlf(p, pos, n);
        if (eol < 0)
            return n - pos > 1024 ? SPY_EPROTO : PARSE_INCOMPLETE;
        size_t size;
        int rc = parse_chunk_size(p + pos, (size_t)eol - pos, &size);
        if (rc != SPY_OK)
            return rc;
        pos = (size_t)eol + 2;
        if (size == 0)
            break;
        if (size > max - total)
            return SPY_ERANGE;
        if (n - pos < size + 2)
            return PARSE_INCOMPLETE;
        if (p[pos + size] != '\r' || p[pos + size + 1] != '\n')
            return SPY_EPROTO;
        if (out != NULL)
            memcpy(out + total, p + pos, size);
        total += size;
        pos += size + 2;
    }
    for (;;) { /* trailers, up to the empty line */
        long eol = find_crlf(p, pos, n);
        if (eol < 0)
            return PARSE_INCOMPLETE;
        if ((size_t)eol == pos)
            break;
        pos = (size_t)eol + 2;
    }
    *decoded = total;
    return SPY_OK;
}

/* parse_response: decides whether rbuf holds a whole response. 'eof' says the
 * peer closed (then an unframed body ends here). Returns SPY_OK with 'out'
 * describing the final (non-1xx) response, PARSE_INCOMPLETE or an error. */
static int parse_response(const struct rbuf *b, int eof, int is_head, size_t max,
                          struct parsed *out)
{
    size_t from = 0;
    for (;;) {
        int rc = parse_head(b->data, b->len, from, out);
        if (rc != SPY_OK)
            return rc == PARSE_INCOMPLETE && eof ? SPY_EPROTO : rc;
        if (out->status >= 200)
            break;
        from = out->body_off; /* skip 100 Continue and friends */
    }
    if (is_head || out->status == 204 || out->status == 304) {
        out->no_body = 1;
        out->body_len = 0;
        return SPY_OK;
    }
    if (out->chunked) {
        int rc = chunked_scan(b->data, b->len, out->body_off, max, NULL, &out->body_len);
        return rc == PARSE_INCOMPLETE && eof ? SPY_EPROTO : rc;
    }
    if (out->has_length) {
        if (out->body_len > max)
            return SPY_ERANGE;
        if (b->len - out->body_off >= out->body_len)
            return SPY_OK;
        return eof ? SPY_EPROTO : PARSE_INCOMPLETE;
    }
    if (b->len - out->body_off > max)
        return SPY_ERANGE;
    out->body_len = b->len - out->body_off;
    return eof ? SPY_OK : PARSE_INCOMPLETE;
}

/* recv_some: reads what is available into b (growing it up to 'limit'
 * bytes), waiting until the deadline. Sets *eof when the peer closed. */
static int recv_some(int fd, struct rbuf *b, size_t limit, int64_t deadline, int *eof)
{
    if (b->cap - b->len < 16384 && b->cap < limit) {
        size_t cap = b->cap == 0 ? 65536 : b->cap * 2;
        if (cap > limit)
            cap = limit;
        char *p = realloc(b->data, cap + 1);
        if (p == NULL)
            return SPY_ENOMEM;
        b->data = p;
        b->cap = cap;
    }
    if (b->cap == b->len)
        return SPY_ERANGE;
    for (;;) {
        ssize_t n = recv(fd, b->data + b->len, b->cap - b->len, 0);
        if (n > 0) {
            b->len += (size_t)n;
            return SPY_OK;
        }
        if (n == 0) {
            *eof = 1;
            return SPY_OK;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return SPY_EIO;
        int rc = wait_fd(fd, POLLIN, deadline);
        if (rc != SPY_OK)
            return rc;
    }
}

/* take_body: moves the parsed body out of the raw buffer into resp. */
static int take_body(struct rbuf *b, const struct parsed *ps, size_t max,
                     struct spy_http_resp *resp)
{
    char *body = malloc(ps->body_len + 1);
    if (body == NULL)
        return SPY_ENOMEM;
    if (ps->chunked && !ps->no_body) {
        size_t n;
        chunked_scan(b->data, b->len, ps->body_off, max, body, &n);
    } else if (ps->body_len > 0) {
        memcpy(body, b->data + ps->body_off, ps->body_len);
    }
    body[ps->body_len] = '\0';
    resp->status = ps->status;
    resp->body = body;
    resp->body_len = ps->body_len;
    return SPY_OK;
}

/* read_response: receives until parse_response says complete or fails. */
static int read_response(int fd, const struct spy_http_req *req, int64_t deadline,
                         struct spy_http_resp *resp)
{
    size_t max = req->max_response > 0 ? req->max_response : SPY_HTTP_MAX_RESPONSE_DEFAULT;
    /* Raw bytes may exceed the body by the header block and chunk framing. */
    size_t limit = max + SPY_HTTP_MAX_HEADER + max / 2 + 4096;
    int is_head = strcmp(req->method, "HEAD") == 0;
    struct rbuf b = {0};
    struct parsed ps;
    int eof = 0, rc;
    do {
        rc = recv_some(fd, &b, limit, deadline, &eof);
        if (rc == SPY_OK && eof && b.len == 0)
            rc = SPY_EIO; /* closed without a word: like a reset */
        if (rc == SPY_OK)
            rc = parse_response(&b, eof, is_head, max, &ps);
    } while (rc == PARSE_INCOMPLETE);
    if (rc == SPY_OK)
        rc = take_body(&b, &ps, max, resp);
    free(b.data);
    return rc;
}

/* header_safe: text that cannot break out of its header line. */
static int header_safe(const char *s)
{
    return s == NULL || strpbrk(s, "\r\n") == NULL;
}

int spy_http_request(const struct spy_http_req *req, struct spy_http_resp *resp)
{
    memset(resp, 0, sizeof(*resp));
    if (req->host == NULL || req->host[0] == '\0' || req->port < 1 || req->port > 65535 ||
        req->timeout_ms <= 0 || req->method == NULL || req->path == NULL ||
        (req->body == NULL && req->body_len > 0) || !header_safe(req->host) ||
        !header_safe(req->method) || !header_safe(req->path) || !header_safe(req->content_type))
        return SPY_EINVAL;
    int64_t deadline = spy_clock_ms() + req->timeout_ms;
    int fd;
    int rc = connect_host(req, deadline, &fd);
    if (rc != SPY_OK)
        return rc;
    rc = send_request(fd, req, deadline);
    if (rc == SPY_OK)
        rc = read_response(fd, req, deadline, resp);
    close(fd);
    if (rc != SPY_OK)
        spy_debug("http: %s %s on %s port %d failed: %s", req->method, req->path, req->host,
                  req->port, spy_strerror(rc));
    return rc;
}

void spy_http_resp_free(struct spy_http_resp *resp)
{
    free(resp->body);
    memset(resp, 0, sizeof(*resp));
}
