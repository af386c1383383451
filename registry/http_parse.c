/* http_parse.c - request heads and chunked bodies (see http_parse.h). */
#include "registry/http_parse.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

/* ieq: case-insensitive comparison of a counted string with a C string. */
static int ieq(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && strncasecmp(s, lit, len) == 0;
}

/* trim: drops spaces and tabs at both ends of s[0..*len). */
static const char *trim(const char *s, size_t *len)
{
    while (*len > 0 && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        (*len)--;
    }
    while (*len > 0 && (s[*len - 1] == ' ' || s[*len - 1] == '\t'))
        (*len)--;
    return s;
}

/* parse_length: a Content-Length value, decimal digits only, below 2^63. */
static int parse_length(const char *s, size_t len, uint64_t *out)
{
    s = trim(s, &len);
    if (len == 0)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (v > (UINT64_C(0x7fffffffffffffff) - (uint64_t)(s[i] - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* count_head_lines: header lines before the blank line ending the head (or
 * before len), to tell "too many headers" (431) from malformed (400). */
static size_t count_head_lines(const char *buf, size_t len)
{
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n')
            break;
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            break;
        lines++;
    }
    return lines > 0 ? lines - 1 : 0; /* the request line is not a header */
}

/* other_major_version: true when the request line ends in "HTTP/<d>..."
 * with a major version other than 1, which deserves 505 rather than 400. */
static int other_major_version(const char *buf, size_t len)
{
    const char *eol = memchr(buf, '\n', len);
    size_t n = eol != NULL ? (size_t)(eol - buf) : len;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    const char *sp = NULL;
    for (size_t i = 0; i < n; i++)
        if (buf[i] == ' ')
            sp = buf + i;
    if (sp == NULL)
        return 0;
    size_t vlen = n - (size_t)(sp + 1 - buf);
    const char *v = sp + 1;
    return vlen >= 6 && memcmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9' && v[5] != '1';
}

/* has_blank_line: the bytes hold the empty line that ends any head (phr
 * reports some malformed request lines, e.g. a short version, as incomplete). */
static int has_blank_line(const char *buf, size_t len)
{
    return memmem(buf, len, "\r\n\r\n", 4) != NULL || memmem(buf, len, "\n\n", 2) != NULL;
}

/* classify_error: the status for bytes phr_parse_request rejected. */
static int classify_error(const char *buf, size_t len)
{
    if (other_major_version(buf, len))
        return -505;
    if (count_head_lines(buf, len) >= SPY_HTTP_MAX_HEADERS)
        return -431;
    return -400;
}

/* split_target: the request target into path and query (see the header). */
static int split_target(const char *t, size_t n, struct spy_http_head *out)
{
    if (n == 1 && t[0] == '*') {
        out->path = t;
        out->path_len = 1;
        out->query = NULL;
        out->query_len = 0;
        return 0;
    }
    if (n == 0)
        return -1;
    if (t[0] != '/') {
        size_t skip;
        if (n > 7 && strncasecmp(t, "http://", 7) == 0)
            skip = 7;
        else if (n > 8 && strncasecmp(t, "https://", 8) == 0)
            skip = 8;
        else
            return -1;
        size_t i = skip;
        while (i < n && t[i] != '/' && t[i] != '?')
            i++;
        if (i == skip)
            return -1; /* empty authority */
        t += i;
        n -= i;
    }
    const char *q = memchr(t, '?', n);
    if (n == 0 || t[0] == '?') {
        out->path = "/";
        out->path_len = 1;
    } else {
        out->path = t;
        out->path_len = q != NULL ? (size_t)(q - t) : n;
    }
    out->query = q != NULL ? q + 1 : NULL;
    out->query_len = q != NULL ? n - (size_t)(q + 1 - t) : 0;
    return 0;
}

/* apply_header: folds one header into the framing and persistence fields.
 * Returns 0, or -1 for a framing conflict or bad value (400). */
static int apply_header(const struct phr_header *h, struct spy_http_head *out, int *have_length,
                        int *connection_close, int *connection_keep_alive)
{
    if (h->name == NULL)
        return -1; /* obsolete line folding */
    if (ieq(h->name, h->name_len, "content-length")) {
        uint64_t v;
        if (parse_length(h->value, h->value_len, &v) != 0)
            return -1;
        if (*have_length && v != out->content_length)
            return -1;
        *have_length = 1;
        out->content_length = v;
    } else if (ieq(h->name, h->name_len, "transfer-encoding")) {
        size_t vlen = h->value_len;
        const char *v = trim(h->value, &vlen);
        if (out->body_kind == SPY_HTTP_BODY_CHUNKED || !ieq(v, vlen, "chunked"))
            return -1;
        out->body_kind = SPY_HTTP_BODY_CHUNKED;
    } else if (ieq(h->name, h->name_len, "connection")) {
        if (spy_http_token_list_has(h->value, h->value_len, "close"))
            *connection_close = 1;
        if (spy_http_token_list_has(h->value, h->value_len, "keep-alive"))
            *connection_keep_alive = 1;
    } else if (ieq(h->name, h->name_len, "expect")) {
        if (out->minor_version >= 1 &&
            spy_http_token_list_has(h->value, h->value_len, "100-continue"))
            out->expect_continue = 1;
    }
    return 0;
}

/* is_token: RFC 9110 token (phr_parse_request accepts any method bytes up
 * to a space). */
static int is_token(const char *s, size_t len)
{
    static const char specials[] = "!#$%&'*+-.^_`|~";
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && (c == '\0' || memchr(specials, c, sizeof(specials) - 1) == NULL))
            return 0;
    }
    return 1;
}

/* interpret_head: the framing, persistence and target rules of the header
 * comment, applied to what phr_parse_request returned. 0 or -400. Trailing
 * whitespace is trimmed from header values (this phr keeps it). */
static int interpret_head(struct spy_http_head *out, const char *target, size_t target_len)
{
    int have_length = 0, connection_close = 0, connection_keep_alive = 0;
    out->body_kind = SPY_HTTP_BODY_NONE;
    out->content_length = 0;
    out->expect_continue = 0;
    if (!is_token(out->method, out->method_len))
        return -400;
    for (size_t i = 0; i < out->num_headers; i++) {
        struct phr_header *h = &out->headers[i];
        if (h->value != NULL)
            h->value = trim(h->value, &h->value_len);
        if (apply_header(h, out, &have_length, &connection_close, &connection_keep_alive) != 0)
            return -400;
    }
    if (have_length && out->body_kind == SPY_HTTP_BODY_CHUNKED)
        return -400;
    if (have_length)
        out->body_kind = SPY_HTTP_BODY_LENGTH;
    if (split_target(target, target_len, out) != 0)
        return -400;
    out->keep_alive =
        out->minor_version >= 1 ? !connection_close : (connection_keep_alive && !connection_close);
    out->is_head = ieq(out->method, out->method_len, "HEAD");
    return 0;
}

int spy_http_parse_head(const char *buf, size_t len, size_t last_len, size_t max_head,
                        struct spy_http_head *out)
{
    size_t scan = len < max_head ? len : max_head;
    if (last_len > scan)
        last_len = 0;
    const char *target;
    size_t target_len;
    out->num_headers = SPY_HTTP_MAX_HEADERS;
    int r = phr_parse_request(buf, scan, &out->method, &out->method_len, &target, &target_len,
                              &out->minor_version, out->headers, &out->num_headers, last_len);
    if (r == -1)
        return classify_error(buf, scan);
    if (r == -2 && has_blank_line(buf, scan))
        return classify_error(buf, scan); /* ended, yet "incomplete": malformed */
    if (r == -2)
        return len >= max_head ? -431 : 0;
    int status = interpret_head(out, target, target_len);
    return status != 0 ? status : r;
}

const struct phr_header *spy_http_head_find(const struct spy_http_head *head, const char *name)
{
    for (size_t i = 0; i < head->num_headers; i++) {
        const struct phr_header *h = &head->headers[i];
        if (h->name != NULL && ieq(h->name, h->name_len, name))
            return h;
    }
    return NULL;
}

int spy_http_token_list_has(const char *value, size_t len, const char *token)
{
    size_t start = 0;
    while (start <= len) {
        size_t end = start;
        while (end < len && value[end] != ',')
            end++;
        size_t elen = end - start;
        const char *e = trim(value + start, &elen);
        if (ieq(e, elen, token))
            return 1;
        start = end + 1;
    }
    return 0;
}

void spy_http_chunked_init(struct spy_http_chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->phr.consume_trailer = 1;
}

ssize_t spy_http_chunked_decode(struct spy_http_chunked *c, char *buf, size_t *len)
{
    ssize_t r = phr_decode_chunked(&c->phr, buf, len);
    if (r == -1)
        return SPY_HTTP_CHUNKED_ERROR;
    c->decoded += *len;
    return r;
}
