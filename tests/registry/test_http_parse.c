/* test_http_parse: the pure parts of the HTTP layer: request heads (framing,
 * persistence, targets, the 400/431/505 split, incremental parsing), chunked
 * decoding at every split point, and response formatting. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/http_format.h"
#include "registry/http_parse.h"

#define MAX_HEAD (64u << 10)

/* parse: the whole string as a head. */
static int parse(const char *s, struct spy_http_head *h)
{
    return spy_http_parse_head(s, strlen(s), 0, MAX_HEAD, h);
}

static int streq(const char *p, size_t n, const char *lit)
{
    return p != NULL && strlen(lit) == n && memcmp(p, lit, n) == 0;
}

static void test_simple_get(void **state)
{
    (void)state;
    struct spy_http_head h;
    const char *s = "GET /v2/foo/blobs/x?n=1&last=a HTTP/1.1\r\nHost: a\r\nX-Y:  z \r\n\r\nrest";
    int n = parse(s, &h);
    assert_int_equal(n, (int)(strstr(s, "rest") - s));
    assert_true(streq(h.method, h.method_len, "GET"));
    assert_true(streq(h.path, h.path_len, "/v2/foo/blobs/x"));
    assert_true(streq(h.query, h.query_len, "n=1&last=a"));
    assert_int_equal(h.minor_version, 1);
    assert_int_equal(h.num_headers, 2);
    assert_int_equal(h.body_kind, SPY_HTTP_BODY_NONE);
    assert_true(h.keep_alive);
    assert_false(h.expect_continue);
    assert_false(h.is_head);
    const struct phr_header *x = spy_http_head_find(&h, "x-y");
    assert_non_null(x);
    assert_true(streq(x->value, x->value_len, "z"));
    assert_null(spy_http_head_find(&h, "absent"));
}

static void test_incremental(void **state)
{
    (void)state;
    const char *s = "PUT /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
    size_t full = strlen(s) - 5, last = 0;
    struct spy_http_head h;
    for (size_t len = 1; len < full; len++) {
        assert_int_equal(spy_http_parse_head(s, len, last, MAX_HEAD, &h), 0);
        last = len;
    }
    assert_int_equal(spy_http_parse_head(s, full, last, MAX_HEAD, &h), (int)full);
    assert_int_equal(h.body_kind, SPY_HTTP_BODY_LENGTH);
    assert_int_equal(h.content_length, 5);
}

static void test_content_length_rules(void **state)
{
    (void)state;
    struct spy_http_head h;
    assert_true(parse("PUT / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &h) > 0);
    assert_int_equal(h.body_kind, SPY_HTTP_BODY_LENGTH);
    assert_int_equal(h.content_length, 0);
    assert_true(parse("PUT / HTTP/1.1\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n", &h) > 0);
    assert_int_equal(h.content_length, 7);
    assert_true(parse("PUT / HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n", &h) > 0);
    assert_int_equal(h.content_length, UINT64_C(9223372036854775807));
    assert_int_equal(parse("PUT / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n", &h),
                     -400);
    assert_int_equal(parse("PUT / HTTP/1.1\r\nContent-Length: 7, 7\r\n\r\n", &h), -400);
    assert_int_equal(parse("PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", &h), -400);
    assert_int_equal(parse("PUT / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", &h), -400);
    assert_int_equal(parse("PUT / HTTP/1.1\r\nContent-Length:\r\n\r\n", &h), -400);
    assert_int_equal(parse("PUT / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n", &h),
                     -400);
}

static void test_transfer_encoding_rules(void **state)
{
    (void)state;
    struct spy_http_head h;
    assert_true(parse("PATCH / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n", &h) > 0);
    assert_int_equal(h.body_kind, SPY_HTTP_BODY_CHUNKED);
    assert_int_equal(
        parse("PATCH / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", &h),
        -400);
    assert_int_equal(parse("PATCH / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &h),
                     -400);
    assert_int_equal(parse("PATCH / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n",
                           &h),
                     -400);
    assert_int_equal(parse("PATCH / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", &h), -400);
}

static void test_persistence_and_expect(void **state)
{
    (void)state;
    struct spy_http_head h;
    assert_true(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &h) > 0);
    assert_false(h.keep_alive);
    assert_true(parse("GET / HTTP/1.1\r\nConnection: TE, Close\r\n\r\n", &h) > 0);
    assert_false(h.keep_alive);
    assert_true(parse("GET / HTTP/1.0\r\n\r\n", &h) > 0);
    assert_int_equal(h.minor_version, 0);
    assert_false(h.keep_alive);
    assert_true(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &h) > 0);
    assert_true(h.keep_alive);
    assert_true(parse("PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", &h) >
                0);
    assert_true(h.expect_continue);
    assert_true(parse("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", &h) >
                0);
    assert_false(h.expect_continue);
    assert_true(parse("HEAD /x HTTP/1.1\r\n\r\n", &h) > 0);
    assert_true(h.is_head);
}

static void test_targets(void **state)
{
    (void)state;
    struct spy_http_head h;
    assert_true(parse("GET http://example.com:5000/v2/?a=b HTTP/1.1\r\n\r\n", &h) > 0);
    assert_true(streq(h.path, h.path_len, "/v2/"));
    assert_true(streq(h.query, h.query_len, "a=b"));
    assert_true(parse("GET HTTPS://example.com HTTP/1.1\r\n\r\n", &h) > 0);
    assert_true(streq(h.path, h.path_len, "/"));
    assert_null(h.query);
    assert_true(parse("OPTIONS * HTTP/1.1\r\n\r\n", &h) > 0);
    assert_true(streq(h.path, h.path_len, "*"));
    assert_true(parse("GET /a? HTTP/1.1\r\n\r\n", &h) > 0);
    assert_true(streq(h.query, h.query_len, ""));
    assert_int_equal(parse("GET v2/ HTTP/1.1\r\n\r\n", &h), -400);
    assert_int_equal(parse("GET http:///x HTTP/1.1\r\n\r\n", &h), -400);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "GET\r\n\r\n",
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",
        "GET /a\x7f HTTP/1.1\r\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1x\r\n\r\n",
        "GET / FOO/1.1\r\n\r\n",
        "BAD REQUEST LINE\r\n\r\n",
        "GET / HTTP\n\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    };
    struct spy_http_head h;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = spy_http_parse_head(bad[i], strlen(bad[i]), 0, MAX_HEAD, &h);
        if (r != -400)
            fail_msg("case %zu: got %d, want -400", i, r);
    }
}

static void test_versions(void **state)
{
    (void)state;
    struct spy_http_head h;
    assert_int_equal(parse("GET / HTTP/2.0\r\n\r\n", &h), -505);
    assert_int_equal(parse("GET / HTTP/3\r\n\r\n", &h), -505);
    assert_int_equal(parse("GET / HTTP/0.9\r\n\r\n", &h), -505);
    assert_true(parse("GET / HTTP/1.2\r\n\r\n", &h) > 0);
    assert_int_equal(h.minor_version, 2);
    assert_true(h.keep_alive);
}

static void test_too_large(void **state)
{
    (void)state;
    struct spy_http_head h;
    /* A head that does not end within max_head: 431, whether or not it ends later. */
    size_t big = 200;
    char *s = malloc(big + 64);
    int off = snprintf(s, big + 64, "GET / HTTP/1.1\r\nX: ");
    memset(s + off, 'a', big);
    strcpy(s + off + big, "\r\n\r\n");
    assert_int_equal(spy_http_parse_head(s, strlen(s), 0, 128, &h), -431);
    assert_int_equal(spy_http_parse_head(s, 128, 0, 128, &h), -431);
    assert_int_equal(spy_http_parse_head(s, 127, 0, 128, &h), 0);
    assert_true(spy_http_parse_head(s, strlen(s), 0, MAX_HEAD, &h) > 0);
    free(s);
    /* More header lines than SPY_HTTP_MAX_HEADERS: 431; exactly that many: fine. */
    char *many = malloc(64 * 1024);
    for (int count = SPY_HTTP_MAX_HEADERS; count <= SPY_HTTP_MAX_HEADERS + 1; count++) {
        size_t n = (size_t)sprintf(many, "GET / HTTP/1.1\r\n");
        for (int i = 0; i < count; i++)
            n += (size_t)sprintf(many + n, "H%d: v\r\n", i);
        n += (size_t)sprintf(many + n, "\r\n");
        int r = spy_http_parse_head(many, n, 0, MAX_HEAD, &h);
        if (count == SPY_HTTP_MAX_HEADERS)
            assert_int_equal(r, (int)n);
        else
            assert_int_equal(r, -431);
    }
    free(many);
}

static void test_token_list(void **state)
{
    (void)state;
    const char *v = " keep-alive ,\tUpgrade,close";
    assert_true(spy_http_token_list_has(v, strlen(v), "upgrade"));
    assert_true(spy_http_token_list_has(v, strlen(v), "KEEP-ALIVE"));
    assert_true(spy_http_token_list_has(v, strlen(v), "close"));
    assert_false(spy_http_token_list_has(v, strlen(v), "clos"));
    assert_false(spy_http_token_list_has("", 0, "close"));
    assert_false(spy_http_token_list_has("closed", 6, "close"));
}

/* decode_split: decodes 'enc' fed in pieces at the given cut points; returns
 * the decoder's last result and appends decoded bytes (and the bytes after the
 * body) to out. */
static ssize_t decode_split(const char *enc, size_t len, const size_t *cuts, size_t ncuts,
                            char *out, size_t *outlen, char *tail, size_t *taillen)
{
    struct spy_http_chunked c;
    spy_http_chunked_init(&c);
    char *buf = malloc(len + 1);
    size_t start = 0;
    ssize_t r = SPY_HTTP_CHUNKED_MORE;
    *outlen = *taillen = 0;
    for (size_t i = 0; i <= ncuts && r == SPY_HTTP_CHUNKED_MORE; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        size_t n = end - start;
        memcpy(buf, enc + start, n);
        r = spy_http_chunked_decode(&c, buf, &n);
        if (r == SPY_HTTP_CHUNKED_ERROR)
            break;
        memcpy(out + *outlen, buf, n);
        *outlen += n;
        if (r >= 0) {
            memcpy(tail, buf + n, (size_t)r);
            *taillen = (size_t)r;
            /* what the decoder was not given is after the body too */
            memcpy(tail + r, enc + end, len - end);
            *taillen += len - end;
        }
        start = end;
    }
    if (r >= 0)
        assert_int_equal(c.decoded, *outlen);
    free(buf);
    return r;
}

static void test_chunked_every_split(void **state)
{
    (void)state;
    const char enc[] = "5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"
                       "0\r\nTrailer: x\r\n\r\nGET / HTTP/1.1\r\n";
    const char *want = "helloabcdefghijklmnopqrstuvwxyz";
    const char *after = "GET / HTTP/1.1\r\n";
    size_t len = sizeof(enc) - 1;
    char out[256], tail[256];
    size_t outlen, taillen;
    for (size_t a = 0; a <= len; a++) {
        for (size_t b = a; b <= len; b++) {
            size_t cuts[2] = {a, b};
            ssize_t r = decode_split(enc, len, cuts, 2, out, &outlen, tail, &taillen);
            if (r < 0)
                fail_msg("cut %zu/%zu: result %zd", a, b, r);
            assert_int_equal(outlen, strlen(want));
            assert_memory_equal(out, want, outlen);
            assert_int_equal(taillen, strlen(after));
            assert_memory_equal(tail, after, taillen);
        }
    }
    /* byte by byte */
    size_t cuts[sizeof(enc)];
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    assert_true(decode_split(enc, len, cuts, len - 1, out, &outlen, tail, &taillen) >= 0);
    assert_int_equal(outlen, strlen(want));
}

static void test_chunked_incomplete_and_bad(void **state)
{
    (void)state;
    char out[64], tail[64];
    size_t outlen, taillen;
    const char *partial = "5\r\nhel";
    assert_int_equal(decode_split(partial, strlen(partial), NULL, 0, out, &outlen, tail, &taillen),
                     SPY_HTTP_CHUNKED_MORE);
    assert_int_equal(outlen, 3);
    const char *no_trailer_end = "0\r\nX: y\r\n";
    assert_int_equal(
        decode_split(no_trailer_end, strlen(no_trailer_end), NULL, 0, out, &outlen, tail, &taillen),
        SPY_HTTP_CHUNKED_MORE);
    static const char *const bad[] = {"z\r\n", "5\r\nhelloX\r\n", "\r\n", "11111111111111111\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (decode_split(bad[i], strlen(bad[i]), NULL, 0, out, &outlen, tail, &taillen) !=
            SPY_HTTP_CHUNKED_ERROR)
            fail_msg("bad case %zu accepted", i);
    const char *empty = "0\r\n\r\n";
    assert_int_equal(decode_split(empty, strlen(empty), NULL, 0, out, &outlen, tail, &taillen), 0);
    assert_int_equal(outlen, 0);
}

static void test_format_head(void **state)
{
    (void)state;
    char date[SPY_HTTP_DATE_LEN + 1];
    spy_http_format_date(784111777, date);
    assert_string_equal(date, "Sun, 06 Nov 1994 08:49:37 GMT");
    const struct spy_http_field f[] = {{"Docker-Content-Digest", "sha256:ab"}, {"X-A", ""}};
    struct spy_http_head_out h = {201, 1, date, SPY_HTTP_FRAMING_LENGTH, 12, 1, f, 2};
    char buf[512];
    size_t n = spy_http_format_head(buf, sizeof(buf), &h);
    assert_true(n > 0 && n <= spy_http_head_size(&h));
    buf[n] = '\0';
    assert_string_equal(buf, "HTTP/1.1 201 Created\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                             "Server: speedy\r\nContent-Length: 12\r\n"
                             "Docker-Content-Digest: sha256:ab\r\nX-A: \r\n\r\n");
    assert_int_equal(spy_http_format_head(buf, n - 1, &h), 0);
    struct spy_http_head_out c = {200, 1, date, SPY_HTTP_FRAMING_CHUNKED, 0, 0, NULL, 0};
    n = spy_http_format_head(buf, sizeof(buf), &c);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "Connection: close\r\n"));
    assert_non_null(strstr(buf, "Transfer-Encoding: chunked\r\n"));
    struct spy_http_head_out k = {204, 0, date, SPY_HTTP_FRAMING_NONE, 0, 1, NULL, 0};
    n = spy_http_format_head(buf, sizeof(buf), &k);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "HTTP/1.1 204 No Content\r\n"));
    assert_non_null(strstr(buf, "Connection: keep-alive\r\n"));
    assert_null(strstr(buf, "Content-Length"));
}

static void test_framing_and_fields(void **state)
{
    (void)state;
    assert_int_equal(spy_http_framing_for(200, 5, 1), SPY_HTTP_FRAMING_LENGTH);
    assert_int_equal(spy_http_framing_for(200, -1, 1), SPY_HTTP_FRAMING_CHUNKED);
    assert_int_equal(spy_http_framing_for(200, -1, 0), SPY_HTTP_FRAMING_EOF);
    assert_int_equal(spy_http_framing_for(204, 5, 1), SPY_HTTP_FRAMING_NONE);
    assert_int_equal(spy_http_framing_for(304, -1, 1), SPY_HTTP_FRAMING_NONE);
    const struct spy_http_field ok = {"Location", "/v2/x/blobs/uploads/1"};
    const struct spy_http_field owned = {"content-length", "1"};
    const struct spy_http_field crlf = {"X", "a\r\nInjected: 1"};
    const struct spy_http_field space = {"X Y", "a"};
    const struct spy_http_field empty = {"", "a"};
    assert_true(spy_http_field_valid(&ok));
    assert_false(spy_http_field_valid(&owned));
    assert_false(spy_http_field_valid(&crlf));
    assert_false(spy_http_field_valid(&space));
    assert_false(spy_http_field_valid(&empty));
    char line[SPY_HTTP_CHUNK_LINE_MAX];
    size_t n = spy_http_format_chunk_line(line, 0x1a2b);
    assert_int_equal(n, 6);
    assert_memory_equal(line, "1a2b\r\n", 6);
    n = spy_http_format_chunk_line(line, SIZE_MAX);
    assert_int_equal(n, SPY_HTTP_CHUNK_LINE_MAX);
    char body[128];
    n = spy_http_format_error(body, sizeof(body), "SIZE_INVALID", "too big");
    body[n] = '\0';
    assert_string_equal(body, "{\"errors\":[{\"code\":\"SIZE_INVALID\",\"message\":\"too big\"}]}");
    assert_int_equal(spy_http_format_error(body, 10, "SIZE_INVALID", "too big"), 0);
    assert_string_equal(spy_http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(spy_http_reason(299), "Unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_incremental),
        cmocka_unit_test(test_content_length_rules),
        cmocka_unit_test(test_transfer_encoding_rules),
        cmocka_unit_test(test_persistence_and_expect),
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_token_list),
        cmocka_unit_test(test_chunked_every_split),
        cmocka_unit_test(test_chunked_incomplete_and_bad),
        cmocka_unit_test(test_format_head),
        cmocka_unit_test(test_framing_and_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
