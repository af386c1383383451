/* test_oci_range: the Range header against a blob size (every form, lists,
 * unsatisfiable sets, invalid syntax, whitespace, overflowing numbers, the
 * 16-range and amplification limits), Content-Range formatting, the exact
 * multipart/byteranges framing bytes and length, and the upload PATCH
 * Content-Range / Range pair. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "registry/oci_range.h"

struct range_case {
    const char *hdr;
    uint64_t size;
    enum spy_oci_range_result want;
    const char *ranges; /* PARTIAL: "a-b,c-d" as resolved */
};

/* resolved: the parsed ranges as "a-b,c-d". */
static void resolved(const struct spy_oci_ranges *r, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < r->count; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%llu-%llu", i ? "," : "",
                              (unsigned long long)r->r[i].first, (unsigned long long)r->r[i].last);
}

static void check(const struct range_case *c)
{
    struct spy_oci_ranges r;
    enum spy_oci_range_result got =
        spy_oci_range_parse(c->hdr, c->hdr ? strlen(c->hdr) : 0, c->size, &r);
    char buf[512];
    resolved(&r, buf, sizeof(buf));
    if (got != c->want)
        fail_msg("\"%s\" size %llu: result %d (%s), want %d", c->hdr ? c->hdr : "(null)",
                 (unsigned long long)c->size, got, r.why ? r.why : "", c->want);
    if (c->want == SPY_OCI_RANGE_PARTIAL && strcmp(buf, c->ranges) != 0)
        fail_msg("\"%s\": ranges %s, want %s", c->hdr, buf, c->ranges);
    if (c->want != SPY_OCI_RANGE_PARTIAL) {
        assert_int_equal(r.count, 0);
        assert_non_null(r.why);
    }
    assert_int_equal(r.size, c->size);
}

static void test_single_ranges(void **state)
{
    (void)state;
    static const struct range_case cases[] = {
        {"bytes=0-0", 100, SPY_OCI_RANGE_PARTIAL, "0-0"},
        {"bytes=0-99", 100, SPY_OCI_RANGE_PARTIAL, "0-99"},
        {"bytes=0-", 100, SPY_OCI_RANGE_PARTIAL, "0-99"},
        {"bytes=10-19", 100, SPY_OCI_RANGE_PARTIAL, "10-19"},
        {"bytes=50-1000", 100, SPY_OCI_RANGE_PARTIAL, "50-99"}, /* end clamped */
        {"bytes=99-", 100, SPY_OCI_RANGE_PARTIAL, "99-99"},
        {"bytes=-1", 100, SPY_OCI_RANGE_PARTIAL, "99-99"},
        {"bytes=-10", 100, SPY_OCI_RANGE_PARTIAL, "90-99"},
        {"bytes=-100", 100, SPY_OCI_RANGE_PARTIAL, "0-99"},
        {"bytes=-500", 100, SPY_OCI_RANGE_PARTIAL, "0-99"}, /* suffix longer than blob */
        {"BYTES=1-2", 100, SPY_OCI_RANGE_PARTIAL, "1-2"},   /* unit is case-insensitive */
        {"Bytes=1-2", 100, SPY_OCI_RANGE_PARTIAL, "1-2"},
        {"bytes=007-010", 100, SPY_OCI_RANGE_PARTIAL, "7-10"},
        {"bytes=0-18446744073709551615", 100, SPY_OCI_RANGE_PARTIAL, "0-99"},
        {"bytes=0-99999999999999999999999999", 100, SPY_OCI_RANGE_PARTIAL, "0-99"},
        {"bytes=-99999999999999999999999999", 100, SPY_OCI_RANGE_PARTIAL, "0-99"},
        {"bytes=5-5", 6, SPY_OCI_RANGE_PARTIAL, "5-5"},
        {"bytes=0-", 1, SPY_OCI_RANGE_PARTIAL, "0-0"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check(&cases[i]);
}

static void test_unsatisfiable(void **state)
{
    (void)state;
    static const struct range_case cases[] = {
        {"bytes=100-", 100, SPY_OCI_RANGE_UNSATISFIABLE, NULL},
        {"bytes=100-200", 100, SPY_OCI_RANGE_UNSATISFIABLE, NULL},
        {"bytes=-0", 100, SPY_OCI_RANGE_UNSATISFIABLE, NULL},
        {"bytes=99999999999999999999999-", 100, SPY_OCI_RANGE_UNSATISFIABLE, NULL},
        {"bytes=200-300,400-", 100, SPY_OCI_RANGE_UNSATISFIABLE, NULL},
        {"bytes=100-100, -0", 100, SPY_OCI_RANGE_UNSATISFIABLE, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check(&cases[i]);
}

static void test_ignored(void **state)
{
    (void)state;
    static const struct range_case cases[] = {
        {NULL, 100, SPY_OCI_RANGE_FULL, NULL},
        {"", 100, SPY_OCI_RANGE_FULL, NULL},
        {"bytes=", 100, SPY_OCI_RANGE_FULL, NULL},
        {"bytes", 100, SPY_OCI_RANGE_FULL, NULL},
        {"bytes=,", 100, SPY_OCI_RANGE_FULL, NULL},
        {"bytes=-", 100, SPY_OCI_RANGE_FULL, NULL},
        {"bytes=a-b", 100, SPY_OCI_RANGE_FULL, NULL},
        {"bytes=5-1", 100, SPY_OCI_RANGE_FULL, NULL}, /* last < first: invalid */
        {"bytes=1-2-3", 100, SPY_OCI_RANGE_FULL, NULL},
        {"bytes=1 -2", 100, SPY_OCI_RANGE_FULL, NULL},
        {"bytes=1- 2", 100, SPY_OCI_RANGE_FULL, NULL},
        {"bytes=--1", 100, SPY_OCI_RANGE_FULL, NULL},
        {"bytes=+1-2", 100, SPY_OCI_RANGE_FULL, NULL},
        {"bytes=0x10-", 100, SPY_OCI_RANGE_FULL, NULL},
        {"bytes =0-1", 100, SPY_OCI_RANGE_FULL, NULL},
        {"items=0-1", 100, SPY_OCI_RANGE_FULL, NULL},
        {"bytes=0-1;x", 100, SPY_OCI_RANGE_FULL, NULL},
        {"bytes=0-1,x", 100, SPY_OCI_RANGE_FULL, NULL}, /* one bad spec spoils the set */
        {"bytes=0-1", 0, SPY_OCI_RANGE_FULL, NULL},     /* empty blob: 200 */
        {"bytes=-5", 0, SPY_OCI_RANGE_FULL, NULL},
        {"bytes=0-,0-", 100, SPY_OCI_RANGE_FULL, NULL},      /* 2x the blob: amplification */
        {"bytes=0-60,40-99", 100, SPY_OCI_RANGE_FULL, NULL}, /* 101 bytes of a 100-byte blob */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check(&cases[i]);
    /* a set with an unsatisfiable and a satisfiable spec is PARTIAL */
    struct range_case mixed = {"bytes=200-300,1-", 100, SPY_OCI_RANGE_PARTIAL, "1-99"};
    check(&mixed);
}

static void test_lists_and_whitespace(void **state)
{
    (void)state;
    static const struct range_case cases[] = {
        {"bytes=0-9,20-29", 100, SPY_OCI_RANGE_PARTIAL, "0-9,20-29"},
        {"bytes=20-29,0-9", 100, SPY_OCI_RANGE_PARTIAL, "20-29,0-9"}, /* order kept */
        {"bytes=0-9,5-14", 100, SPY_OCI_RANGE_PARTIAL, "0-9,5-14"},   /* overlap kept */
        {"bytes=0-9,10-19", 100, SPY_OCI_RANGE_PARTIAL, "0-9,10-19"}, /* not coalesced */
        {"bytes=0-0,-1", 100, SPY_OCI_RANGE_PARTIAL, "0-0,99-99"},
        {"bytes=1-2, 200-, 3-4", 100, SPY_OCI_RANGE_PARTIAL, "1-2,3-4"},
        {"  bytes=1-2 ,\t3-4\t", 100, SPY_OCI_RANGE_PARTIAL, "1-2,3-4"},
        {"bytes= 1-2", 100, SPY_OCI_RANGE_PARTIAL, "1-2"},
        {"bytes=1-2,,3-4,", 100, SPY_OCI_RANGE_PARTIAL, "1-2,3-4"},
        {"bytes=,1-2", 100, SPY_OCI_RANGE_PARTIAL, "1-2"},
        {"bytes=0-49,50-99", 100, SPY_OCI_RANGE_PARTIAL, "0-49,50-99"}, /* exactly the size */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check(&cases[i]);
}

static void test_range_count_limit(void **state)
{
    (void)state;
    char hdr[512] = "bytes=";
    char want[512] = "";
    for (int i = 0; i < SPY_OCI_RANGE_MAX; i++) {
        char item[32];
        snprintf(item, sizeof(item), "%s%d-%d", i ? "," : "", i * 10, i * 10 + 1);
        strcat(hdr, item);
        strcat(want, item);
    }
    struct range_case at_limit = {hdr, 1000, SPY_OCI_RANGE_PARTIAL, want};
    check(&at_limit);
    strcat(hdr, ",900-901");
    struct range_case over = {hdr, 1000, SPY_OCI_RANGE_FULL, NULL};
    check(&over);
    /* empty elements do not count */
    char sparse[128] = "bytes=1-1,,,,,,,,,,,,,,,,,,,,,,,,2-2";
    struct range_case ok = {sparse, 10, SPY_OCI_RANGE_PARTIAL, "1-1,2-2"};
    check(&ok);
}

static void test_only_len_bytes_read(void **state)
{
    (void)state;
    struct spy_oci_ranges r;
    const char *hdr = "bytes=0-4junk";
    assert_int_equal(spy_oci_range_parse(hdr, 9, 100, &r), SPY_OCI_RANGE_PARTIAL);
    assert_int_equal(r.r[0].last, 4);
    assert_int_equal(spy_oci_range_parse("bytes=0-4\0", 10, 100, &r), SPY_OCI_RANGE_FULL);
}

static void test_content_range(void **state)
{
    (void)state;
    char buf[SPY_OCI_CONTENT_RANGE_MAX];
    struct spy_oci_byte_range r = {0, 99};
    assert_int_equal(spy_oci_content_range_format(buf, sizeof(buf), &r, 1000), 15);
    assert_string_equal(buf, "bytes 0-99/1000");
    struct spy_oci_byte_range big = {UINT64_MAX - 1, UINT64_MAX - 1};
    assert_true(spy_oci_content_range_format(buf, sizeof(buf), &big, UINT64_MAX) > 0);
    assert_string_equal(buf,
                        "bytes 18446744073709551614-18446744073709551614/18446744073709551615");
    assert_int_equal(spy_oci_content_range_unsatisfied(buf, sizeof(buf), 1234), 12);
    assert_string_equal(buf, "bytes */1234");
    char tiny[8];
    assert_int_equal(spy_oci_content_range_format(tiny, sizeof(tiny), &r, 1000), SPY_ERANGE);
    assert_string_equal(tiny, "");
}

/* build_body: the whole multipart body for blob 'blob' with the module's
 * framing, as a client would receive it. */
static char *build_body(const char *blob, const struct spy_oci_ranges *r, const char *boundary,
                        size_t *len)
{
    char *body = malloc(8192);
    size_t n = 0;
    for (size_t i = 0; i < r->count; i++) {
        int h = spy_oci_multipart_part_header(body + n, 8192 - n, boundary, NULL, r, i);
        assert_true(h > 0);
        n += (size_t)h;
        size_t part = (size_t)(r->r[i].last - r->r[i].first + 1);
        memcpy(body + n, blob + r->r[i].first, part);
        n += part;
    }
    int t = spy_oci_multipart_trailer(body + n, 8192 - n, boundary);
    assert_true(t > 0);
    n += (size_t)t;
    *len = n;
    return body;
}

static void test_multipart_exact_bytes(void **state)
{
    (void)state;
    const char *blob = "0123456789abcdefghij";
    struct spy_oci_ranges r;
    const char *hdr = "bytes=0-3,-2";
    assert_int_equal(spy_oci_range_parse(hdr, strlen(hdr), 20, &r), SPY_OCI_RANGE_PARTIAL);
    size_t len;
    char *body = build_body(blob, &r, "BOUND", &len);
    const char *want = "--BOUND\r\n"
                       "Content-Type: application/octet-stream\r\n"
                       "Content-Range: bytes 0-3/20\r\n"
                       "\r\n"
                       "0123"
                       "\r\n--BOUND\r\n"
                       "Content-Type: application/octet-stream\r\n"
                       "Content-Range: bytes 18-19/20\r\n"
                       "\r\n"
                       "ij"
                       "\r\n--BOUND--\r\n";
    assert_int_equal(len, strlen(want));
    assert_memory_equal(body, want, len);
    assert_int_equal(spy_oci_multipart_length("BOUND", NULL, &r), len);
    free(body);
    char ct[128];
    assert_true(spy_oci_multipart_content_type(ct, sizeof(ct), "BOUND") > 0);
    assert_string_equal(ct, "multipart/byteranges; boundary=BOUND");
}

static void test_multipart_length_matches(void **state)
{
    (void)state;
    char blob[4000];
    memset(blob, 'x', sizeof(blob));
    uint8_t random[16];
    for (int i = 0; i < 16; i++)
        random[i] = (uint8_t)(i * 17 + 3);
    char boundary[SPY_OCI_BOUNDARY_LEN + 1];
    spy_oci_multipart_boundary(random, boundary);
    assert_string_equal(boundary, "031425364758697a8b9cadbecfe0f102");
    const char *hdrs[] = {"bytes=0-0,1-1", "bytes=5-999,1000-1999,3000-", "bytes=-1,0-0,7-8",
                          ("bytes=0-9,10-19,20-29,30-39,40-49,50-59,60-69,70-79,80-89,90-99,"
                           "100-109,110-119,120-129,130-139,140-149,150-159")};
    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        struct spy_oci_ranges r;
        assert_int_equal(spy_oci_range_parse(hdrs[i], strlen(hdrs[i]), sizeof(blob), &r),
                         SPY_OCI_RANGE_PARTIAL);
        size_t len;
        char *body = build_body(blob, &r, boundary, &len);
        assert_int_equal(spy_oci_multipart_length(boundary, NULL, &r), len);
        free(body);
    }
}

static void test_multipart_bad_arguments(void **state)
{
    (void)state;
    struct spy_oci_ranges r;
    assert_int_equal(spy_oci_range_parse("bytes=0-1", 9, 10, &r), SPY_OCI_RANGE_PARTIAL);
    char buf[256];
    assert_int_equal(spy_oci_multipart_part_header(buf, sizeof(buf), "B", NULL, &r, 1), SPY_EINVAL);
    assert_int_equal(spy_oci_multipart_part_header(buf, sizeof(buf), "", NULL, &r, 0), SPY_EINVAL);
    assert_int_equal(spy_oci_multipart_part_header(buf, sizeof(buf), "B", "text/x\r\nX: y", &r, 0),
                     SPY_EINVAL);
    assert_int_equal(spy_oci_multipart_trailer(buf, sizeof(buf), "a\nb"), SPY_EINVAL);
    assert_int_equal(spy_oci_multipart_part_header(buf, 10, "B", NULL, &r, 0), SPY_ERANGE);
    assert_int_equal(spy_oci_multipart_length("bad\r", NULL, &r), 0);
    char longb[80];
    memset(longb, 'b', 71);
    longb[71] = '\0';
    assert_int_equal(spy_oci_multipart_trailer(buf, sizeof(buf), longb), SPY_EINVAL);
    longb[70] = '\0';
    assert_true(spy_oci_multipart_trailer(buf, sizeof(buf), longb) > 0);
    assert_true(spy_oci_multipart_part_header(buf, sizeof(buf), "B", "text/plain", &r, 0) > 0);
    assert_non_null(strstr(buf, "Content-Type: text/plain\r\n"));
}

static void test_upload_content_range(void **state)
{
    (void)state;
    uint64_t a, b;
    assert_int_equal(spy_oci_upload_range_parse("0-0", 3, &a, &b), SPY_OK);
    assert_true(a == 0 && b == 0);
    assert_int_equal(spy_oci_upload_range_parse("100-199", 7, &a, &b), SPY_OK);
    assert_true(a == 100 && b == 199);
    assert_int_equal(spy_oci_upload_range_parse("0-18446744073709551615", 22, &a, &b), SPY_OK);
    assert_true(b == UINT64_MAX);
    static const char *invalid[] = {"",     "-",         "0-",          "-5",
                                    "5-4",  "bytes=0-1", "bytes 0-1/2", "0-1/2",
                                    " 0-1", "0-1 ",      "0 -1",        "+0-1",
                                    "0--1", "0x1-2",     "1-2-3",       "0-18446744073709551616"};
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        if (spy_oci_upload_range_parse(invalid[i], strlen(invalid[i]), &a, &b) != SPY_EINVAL)
            fail_msg("upload Content-Range \"%s\" accepted", invalid[i]);
}

static void test_upload_range_header(void **state)
{
    (void)state;
    char buf[48];
    assert_int_equal(spy_oci_upload_range_format(buf, sizeof(buf), 0), 3);
    assert_string_equal(buf, "0-0");
    assert_int_equal(spy_oci_upload_range_format(buf, sizeof(buf), 1), 3);
    assert_string_equal(buf, "0-0");
    spy_oci_upload_range_format(buf, sizeof(buf), 1000);
    assert_string_equal(buf, "0-999");
    assert_int_equal(spy_oci_upload_range_format(buf, 3, 1000), SPY_ERANGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_ranges),
        cmocka_unit_test(test_unsatisfiable),
        cmocka_unit_test(test_ignored),
        cmocka_unit_test(test_lists_and_whitespace),
        cmocka_unit_test(test_range_count_limit),
        cmocka_unit_test(test_only_len_bytes_read),
        cmocka_unit_test(test_content_range),
        cmocka_unit_test(test_multipart_exact_bytes),
        cmocka_unit_test(test_multipart_length_matches),
        cmocka_unit_test(test_multipart_bad_arguments),
        cmocka_unit_test(test_upload_content_range),
        cmocka_unit_test(test_upload_range_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
