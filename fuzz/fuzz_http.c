/* fuzz_http.c - libFuzzer target for the HTTP layer's pure parsing code:
 * spy_http_parse_head, spy_http_chunked_decode and the response formatting
 * (registry/http_parse.c, registry/http_format.c, compiled in so the fuzzer
 * sees their coverage; picohttpparser itself comes from libh2o-evloop).
 *
 * Input layout: byte 0 picks max_head (bits 0-1: 64 B, 512 B, 4 KiB, 64 KiB)
 * and seeds the split points (bits 2-7); the rest is what a client sends.
 * Properties checked (a violation aborts):
 *  1. Head: the result is > 0, 0, -400, -431 or -505; an accepted head lies
 *     inside the input, its strings inside the head, its fields consistent.
 *     Incremental parsing agrees: every prefix shorter than an accepted head
 *     is "incomplete", and feeding growing prefixes with last_len accepts
 *     exactly what the whole input gives (and never accepts a bad head).
 *  2. Chunked: the bytes after the head (or all of them), decoded in one go
 *     and fed in pieces at the split points, give the same decoded bytes, the
 *     same verdict and the same bytes after the body.
 *  3. Format: a response head built from input-derived fields that
 *     spy_http_field_valid accepts fits in spy_http_head_size and round-trips
 *     through the request-side header parser's rules (no CR/LF injection). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/http_format.h"
#include "registry/http_parse.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

/* inside: [p, p+n) lies within [base, base+len). */
static int inside(const char *p, size_t n, const char *base, size_t len)
{
    return p >= base && n <= len && (size_t)(p - base) <= len - n;
}

/* check_head: the invariants of an accepted head of n bytes. */
static void check_head(const struct spy_http_head *h, const char *buf, int n)
{
    CHECK(inside(h->method, h->method_len, buf, (size_t)n) && h->method_len > 0);
    CHECK(inside(h->path, h->path_len, buf, (size_t)n) || (h->path_len == 1 && h->path[0] == '/'));
    CHECK(h->query == NULL || inside(h->query, h->query_len, buf, (size_t)n));
    CHECK(h->num_headers <= SPY_HTTP_MAX_HEADERS);
    for (size_t i = 0; i < h->num_headers; i++) {
        CHECK(h->headers[i].name != NULL);
        CHECK(inside(h->headers[i].name, h->headers[i].name_len, buf, (size_t)n));
        CHECK(inside(h->headers[i].value, h->headers[i].value_len, buf, (size_t)n));
    }
    CHECK(h->minor_version >= 0 && h->minor_version <= 9);
    CHECK(h->body_kind == SPY_HTTP_BODY_LENGTH || h->content_length == 0);
    CHECK(!h->expect_continue || h->minor_version >= 1);
}

/* check_incremental: prefixes agree with the whole (property 1). */
static void check_incremental(const char *buf, size_t len, size_t max_head, int whole,
                              uint32_t seed)
{
    struct spy_http_head h;
    if (whole > 0)
        for (int i = 0; i < 4; i++) {
            size_t cut = (seed >> (i * 8)) % (size_t)whole;
            CHECK(spy_http_parse_head(buf, cut, 0, max_head, &h) == 0);
        }
    size_t last = 0;
    int r = 0;
    size_t step = 1 + seed % 97;
    for (size_t end = step; r == 0; end += step) {
        if (end > len)
            end = len;
        r = spy_http_parse_head(buf, end, last, max_head, &h);
        last = end;
        if (end == len)
            break;
    }
    /* With last_len, phr only looks for the end of the head in the new bytes,
     * so malformed bytes may be reported later (or, for odd line endings,
     * earlier) than by a full parse; but what is accepted must agree. */
    if (r > 0 || whole > 0)
        CHECK(r == whole);
}

/* decode_pieces: feeds enc to a decoder in pieces split at seed-derived
 * points, the way the connection layer does; out receives the decoded bytes
 * then the bytes after the body. */
static ssize_t decode_pieces(const char *enc, size_t len, uint32_t seed, char *out, size_t *decoded,
                             size_t *after)
{
    struct spy_http_chunked c;
    spy_http_chunked_init(&c);
    char *work = malloc(len + 1);
    size_t off = 0;
    ssize_t r = SPY_HTTP_CHUNKED_MORE;
    *decoded = *after = 0;
    while (off < len && r == SPY_HTTP_CHUNKED_MORE) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 8) % (len - off);
        memcpy(work, enc + off, piece);
        size_t n = piece;
        r = spy_http_chunked_decode(&c, work, &n);
        if (r == SPY_HTTP_CHUNKED_ERROR)
            break;
        CHECK(n <= piece);
        memcpy(out + *decoded, work, n);
        *decoded += n;
        if (r >= 0) {
            CHECK((size_t)r <= piece - n);
            memcpy(out + *decoded, work + n, (size_t)r);
            memcpy(out + *decoded + r, enc + off + piece, len - off - piece);
            *after = (size_t)r + len - off - piece;
        }
        off += piece;
    }
    if (r != SPY_HTTP_CHUNKED_ERROR)
        CHECK(c.decoded == *decoded);
    free(work);
    return r;
}

/* check_chunked: one go versus pieces (property 2). */
static void check_chunked(const char *enc, size_t len, uint32_t seed)
{
    if (len == 0)
        return;
    char *one = malloc(len), *pieces = malloc(len);
    struct spy_http_chunked c;
    spy_http_chunked_init(&c);
    memcpy(one, enc, len);
    size_t n = len;
    ssize_t r1 = spy_http_chunked_decode(&c, one, &n);
    size_t dec, after;
    ssize_t r2 = decode_pieces(enc, len, seed, pieces, &dec, &after);
    CHECK((r1 == SPY_HTTP_CHUNKED_ERROR) == (r2 == SPY_HTTP_CHUNKED_ERROR));
    if (r1 != SPY_HTTP_CHUNKED_ERROR) {
        CHECK((r1 >= 0) == (r2 >= 0));
        CHECK(n == dec && memcmp(one, pieces, n) == 0);
        if (r1 >= 0) {
            CHECK((size_t)r1 == after && n + (size_t)r1 <= len);
            CHECK(memcmp(one + n, pieces + dec, after) == 0);
        }
    }
    free(one);
    free(pieces);
}

/* check_format: input-derived fields through the response formatter (3). */
static void check_format(const char *buf, size_t len)
{
    char name[32], value[64];
    size_t nl = len < sizeof(name) - 1 ? len : sizeof(name) - 1;
    memcpy(name, buf, nl);
    name[nl] = '\0';
    size_t vl = len > nl ? len - nl : 0;
    if (vl > sizeof(value) - 1)
        vl = sizeof(value) - 1;
    memcpy(value, buf + nl, vl);
    value[vl] = '\0';
    struct spy_http_field f = {name, value};
    if (!spy_http_field_valid(&f))
        return;
    CHECK(strpbrk(value, "\r\n") == NULL && strpbrk(name, "\r\n: ") == NULL);
    struct spy_http_head_out h = {
        200, 1, "Sun, 06 Nov 1994 08:49:37 GMT", SPY_HTTP_FRAMING_LENGTH, len, 1, &f, 1};
    size_t cap = spy_http_head_size(&h);
    char *out = malloc(cap);
    size_t n = spy_http_format_head(out, cap, &h);
    CHECK(n > 0 && n <= cap);
    /* The head must parse back as exactly one status line plus five fields. */
    size_t lines = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (out[i] == '\r' && out[i + 1] == '\n')
            lines++;
    CHECK(lines == 6);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const size_t heads[4] = {64, 512, 4096, 64u << 10};
    size_t max_head = heads[data[0] & 3];
    uint32_t seed = (uint32_t)(data[0] >> 2) * 2654435761u;
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    struct spy_http_head h;
    int r = spy_http_parse_head(buf, len, 0, max_head, &h);
    CHECK(r >= 0 || r == -400 || r == -431 || r == -505);
    if (r > 0) {
        CHECK((size_t)r <= len && (size_t)r <= max_head);
        check_head(&h, buf, r);
    }
    check_incremental(buf, len, max_head, r, seed);
    if (r > 0 && h.body_kind == SPY_HTTP_BODY_CHUNKED)
        check_chunked(buf + r, len - (size_t)r, seed);
    else
        check_chunked(buf, len, seed);
    check_format(buf, len);
    return 0;
}
