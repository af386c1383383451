/* test_oci_page: the query-string parser (percent-decoding, '+', repeated
 * keys, empty segments, bad escapes, limits) and pagination: n and last
 * parsing edge cases, the tag list and catalog bodies, the Link header with
 * escaping and its buffer limit. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "registry/oci_page.h"
#include "registry/oci_query.h"

static int qparse(const char *s, struct spy_oci_query *q)
{
    return spy_oci_query_parse(s, strlen(s), q);
}

static void test_query_basic(void **state)
{
    (void)state;
    struct spy_oci_query q;
    assert_int_equal(qparse("n=10&last=abc&flag&tag=a&tag=b&=x&&", &q), SPY_OK);
    assert_int_equal(q.count, 6);
    size_t len;
    assert_string_equal(spy_oci_query_get(&q, "n", &len), "10");
    assert_int_equal(len, 2);
    assert_string_equal(spy_oci_query_get(&q, "last", NULL), "abc");
    assert_string_equal(spy_oci_query_get(&q, "flag", &len), "");
    assert_int_equal(len, 0);
    assert_int_equal(spy_oci_query_count(&q, "tag"), 2);
    assert_string_equal(spy_oci_query_get_nth(&q, "tag", 0, NULL), "a");
    assert_string_equal(spy_oci_query_get_nth(&q, "tag", 1, NULL), "b");
    assert_null(spy_oci_query_get_nth(&q, "tag", 2, &len));
    assert_int_equal(len, 0);
    assert_string_equal(spy_oci_query_get(&q, "", NULL), "x");
    assert_null(spy_oci_query_get(&q, "missing", NULL));
    assert_int_equal(spy_oci_query_count(&q, "missing"), 0);
    spy_oci_query_free(&q);
    spy_oci_query_free(&q);
    assert_int_equal(spy_oci_query_parse(NULL, 0, &q), SPY_OK);
    assert_int_equal(q.count, 0);
    spy_oci_query_free(&q);
}

static void test_query_decoding(void **state)
{
    (void)state;
    struct spy_oci_query q;
    assert_int_equal(qparse("artifactType=application%2Fvnd.example%2Bjson&plus=a+b&"
                            "d=sha256%3Aab&k%65y=%7e%7E&eq=a=b&pct=%25",
                            &q),
                     SPY_OK);
    assert_string_equal(spy_oci_query_get(&q, "artifactType", NULL),
                        "application/vnd.example+json");
    assert_string_equal(spy_oci_query_get(&q, "plus", NULL), "a+b"); /* '+' is literal */
    assert_string_equal(spy_oci_query_get(&q, "d", NULL), "sha256:ab");
    assert_string_equal(spy_oci_query_get(&q, "key", NULL), "~~");
    assert_string_equal(spy_oci_query_get(&q, "eq", NULL), "a=b");
    assert_string_equal(spy_oci_query_get(&q, "pct", NULL), "%");
    spy_oci_query_free(&q);
    /* decoded bytes are kept as they are, with their length */
    assert_int_equal(qparse("u=%C3%A9", &q), SPY_OK);
    size_t len;
    assert_string_equal(spy_oci_query_get(&q, "u", &len), "\xc3\xa9");
    assert_int_equal(len, 2);
    spy_oci_query_free(&q);
}

static void test_query_rejects(void **state)
{
    (void)state;
    static const char *bad[] = {"a=%", "a=%4", "a=%zz", "a=%4g", "%=1", "a=%00", "%00=a", "a=b%"};
    struct spy_oci_query q;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (qparse(bad[i], &q) != SPY_EINVAL)
            fail_msg("query \"%s\" accepted", bad[i]);
        assert_int_equal(q.count, 0);
        assert_null(q.storage);
    }
    /* the parameter limit */
    char many[1024] = "";
    for (int i = 0; i < SPY_OCI_QUERY_MAX; i++)
        strcat(many, i ? "&a=1" : "a=1");
    assert_int_equal(qparse(many, &q), SPY_OK);
    assert_int_equal(spy_oci_query_count(&q, "a"), SPY_OCI_QUERY_MAX);
    spy_oci_query_free(&q);
    strcat(many, "&b=2");
    assert_int_equal(qparse(many, &q), SPY_EINVAL);
    /* only len bytes are read */
    assert_int_equal(spy_oci_query_parse("a=1&b=2", 3, &q), SPY_OK);
    assert_int_equal(q.count, 1);
    spy_oci_query_free(&q);
}

/* page: parses 'qs' and then n/last with default 'def'. */
static enum spy_oci_code page(const char *qs, uint32_t def, struct spy_oci_page *p)
{
    struct spy_oci_query q;
    assert_int_equal(qparse(qs, &q), SPY_OK);
    enum spy_oci_code rc = spy_oci_page_parse(&q, def, p);
    /* last points into the query: copy what the test needs before freeing */
    static char last[256];
    if (p->last != NULL) {
        snprintf(last, sizeof(last), "%s", p->last);
        p->last = last;
    }
    spy_oci_query_free(&q);
    return rc;
}

static void test_page_parse(void **state)
{
    (void)state;
    struct spy_oci_page p;
    assert_int_equal(page("", 100, &p), SPY_OCI_OK);
    assert_int_equal(p.n, 100);
    assert_false(p.n_given);
    assert_null(p.last);
    assert_int_equal(page("n=0", 100, &p), SPY_OCI_OK);
    assert_int_equal(p.n, 0);
    assert_true(p.n_given);
    assert_int_equal(page("n=1000&last=v1.0", 100, &p), SPY_OCI_OK);
    assert_int_equal(p.n, 1000);
    assert_string_equal(p.last, "v1.0");
    assert_int_equal(p.last_len, 4);
    assert_int_equal(page("n=007", 100, &p), SPY_OCI_OK);
    assert_int_equal(p.n, 7);
    assert_int_equal(page("last=a%2Fb", 5, &p), SPY_OCI_OK);
    assert_int_equal(p.n, 5);
    assert_string_equal(p.last, "a/b");
    assert_int_equal(page("last=a&last=b", 5, &p), SPY_OCI_OK);
    assert_string_equal(p.last, "a");
    static const char *bad[] = {"n=",    "n",      "n=-1",          "n=+5",    "n=1001",
                                "n=1e3", "n=0x10", "n=10abc",       "n= 10",   "n=10 ",
                                "n=1.0", "n=abc",  "n=99999999999", "n=1&n=2", "n=1&n=1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (page(bad[i], 100, &p) != SPY_OCI_PAGINATION_NUMBER_INVALID)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_int_equal(p.n, 0);
    }
}

static void test_list_bodies(void **state)
{
    (void)state;
    const char *tags[] = {"1.0", "latest", "v2"};
    char *body;
    size_t len;
    assert_int_equal(spy_oci_tags_json("library/ubuntu", tags, 3, &body, &len), SPY_OK);
    assert_string_equal(body, "{\"name\":\"library/ubuntu\",\"tags\":[\"1.0\",\"latest\",\"v2\"]}");
    assert_int_equal(len, strlen(body));
    free(body);
    assert_int_equal(spy_oci_tags_json("a", NULL, 0, &body, &len), SPY_OK);
    assert_string_equal(body, "{\"name\":\"a\",\"tags\":[]}");
    free(body);
    const char *repos[] = {"a", "b/c", "quote\"d"};
    assert_int_equal(spy_oci_catalog_json(repos, 3, &body, &len), SPY_OK);
    assert_string_equal(body, "{\"repositories\":[\"a\",\"b/c\",\"quote\\\"d\"]}");
    free(body);
    assert_int_equal(spy_oci_catalog_json(NULL, 0, &body, &len), SPY_OK);
    assert_string_equal(body, "{\"repositories\":[]}");
    free(body);
    const char *bad[] = {"ok", "\xff"};
    assert_int_equal(spy_oci_catalog_json(bad, 2, &body, &len), SPY_EINVAL);
    assert_null(body);
    assert_int_equal(spy_oci_tags_json("\xfe", tags, 1, &body, &len), SPY_EINVAL);
}

static void test_links(void **state)
{
    (void)state;
    char buf[SPY_OCI_LINK_MAX];
    int n = spy_oci_tags_link(buf, sizeof(buf), "library/ubuntu", 50, "v1.0_rc-1");
    assert_string_equal(buf, "</v2/library/ubuntu/tags/list?n=50&last=v1.0_rc-1>; rel=\"next\"");
    assert_int_equal(n, (int)strlen(buf));
    spy_oci_catalog_link(buf, sizeof(buf), 100, "library/ubuntu");
    assert_string_equal(buf, "</v2/_catalog?n=100&last=library%2Fubuntu>; rel=\"next\"");
    spy_oci_tags_link(buf, sizeof(buf), "a b", 1, "x&y=z%\xc3\xa9 +");
    assert_string_equal(buf, "</v2/a%20b/tags/list?n=1&last=x%26y%3Dz%25%C3%A9%20%2B>; "
                             "rel=\"next\"");
    /* the longest grammar-valid name and tag fit in SPY_OCI_LINK_MAX */
    char name[256], tag[129];
    memset(name, 'n', 255);
    name[255] = '\0';
    memset(tag, 't', 128);
    tag[128] = '\0';
    assert_true(spy_oci_tags_link(buf, sizeof(buf), name, 1000, tag) > 0);
    char slashy[256];
    for (int i = 0; i < 255; i++)
        slashy[i] = i % 2 ? '/' : 'a';
    slashy[255] = '\0';
    assert_true(spy_oci_catalog_link(buf, sizeof(buf), 1000, slashy) > 0);
    /* too small: an error and an empty buffer, never a truncated header */
    char small[40];
    assert_int_equal(spy_oci_tags_link(small, sizeof(small), "library/ubuntu", 50, "v1.0"),
                     SPY_ERANGE);
    assert_string_equal(small, "");
    assert_int_equal(spy_oci_tags_link(small, 0, "a", 1, "b"), SPY_ERANGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_basic),   cmocka_unit_test(test_query_decoding),
        cmocka_unit_test(test_query_rejects), cmocka_unit_test(test_page_parse),
        cmocka_unit_test(test_list_bodies),   cmocka_unit_test(test_links),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
