/* test_oci_names: the repository name and tag grammars (tables of valid and
 * invalid inputs, the spec's and distribution's edge cases, the 255/256 and
 * 128/129 length limits), reference classification and the /v2 route split
 * with names that contain route keywords. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "common/status.h"
#include "registry/oci_names.h"

static bool name_ok(const char *s)
{
    return spy_oci_name_valid(s, strlen(s));
}

static bool tag_ok(const char *s)
{
    return spy_oci_tag_valid(s, strlen(s));
}

static void test_valid_names(void **state)
{
    (void)state;
    static const char *valid[] = {
        "a",     "0",         "ubuntu", "library/ubuntu", "a/b/c/d/e", "a.b",         "a_b",
        "a__b",  "a-b",       "a--b",   "a---b",          "a.b-c_d",   "foo/bar.baz", "a0/b1/c2",
        "blobs", "manifests", "v2/v2",  "a-b-c/d--e__f",  "9/8/7",     "x.y.z/w",
    };
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        if (!name_ok(valid[i]))
            fail_msg("name \"%s\" should be valid", valid[i]);
    }
}

static void test_invalid_names(void **state)
{
    (void)state;
    static const char *invalid[] = {
        "",      "A",     "Ubuntu", "library/Ubuntu",
        "a___b", "a..b",  "a._b",   "a-_b",
        "a_-b",  "_a",    "a_",     ".a",
        "a.",    "-a",    "a-",     "/a",
        "a/",    "a//b",  "a/.b",   "a/b-",
        "a b",   "a:b",   "a@b",    "a+b",
        "a%2f",  "a/b/_", "a\tb",   "é",
        "a/-/b", "a__/b",
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        if (name_ok(invalid[i]))
            fail_msg("name \"%s\" should be invalid", invalid[i]);
    }
}

static void test_name_embedded_nul_and_length(void **state)
{
    (void)state;
    assert_false(spy_oci_name_valid("ab\0cd", 5));
    assert_true(spy_oci_name_valid("ab\0cd", 2));
    char name[300];
    memset(name, 'a', sizeof(name));
    assert_true(spy_oci_name_valid(name, 255));
    assert_false(spy_oci_name_valid(name, 256));
    /* 255 with separators and slashes, ending in an alphanumeric */
    for (int i = 1; i < 255; i += 2)
        name[i] = i % 4 == 1 ? '/' : '-';
    assert_true(spy_oci_name_valid(name, 255));
    assert_false(spy_oci_name_valid(name, 256));
}

static void test_tags(void **state)
{
    (void)state;
    static const char *valid[] = {"latest", "v1.0", "1",  "_",   "_hidden",   "A-b_C.d",
                                  "a..b",   "a--",  "x.", "0_0", "sha256-abc"};
    static const char *invalid[] = {"",    ".a", "-a",  "a:b", "a/b", "a b",
                                    "a+b", "é",  "a@b", "a\n", "a%b", "tag!"};
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        if (!tag_ok(valid[i]))
            fail_msg("tag \"%s\" should be valid", valid[i]);
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        if (tag_ok(invalid[i]))
            fail_msg("tag \"%s\" should be invalid", invalid[i]);
    char tag[200];
    memset(tag, 'T', sizeof(tag));
    assert_true(spy_oci_tag_valid(tag, 128));
    assert_false(spy_oci_tag_valid(tag, 129));
    assert_false(spy_oci_tag_valid("a\0b", 3));
}

static void test_reference_classify(void **state)
{
    (void)state;
    const char *d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    assert_int_equal(spy_oci_reference_classify("latest", 6), SPY_OCI_REF_TAG);
    assert_int_equal(spy_oci_reference_classify(d, strlen(d)), SPY_OCI_REF_DIGEST);
    assert_int_equal(spy_oci_reference_classify("md5:abc", 7), SPY_OCI_REF_DIGEST);
    assert_int_equal(spy_oci_reference_classify("sha256:", 7), SPY_OCI_REF_INVALID);
    assert_int_equal(spy_oci_reference_classify(".x", 2), SPY_OCI_REF_INVALID);
    assert_int_equal(spy_oci_reference_classify("", 0), SPY_OCI_REF_INVALID);
}

struct route_case {
    const char *path;
    int rc;
    enum spy_oci_route_kind kind;
    const char *name; /* NULL: none */
    const char *ref;  /* NULL: none */
};

static void check_route(const struct route_case *c)
{
    struct spy_oci_route r;
    int rc = spy_oci_route_split(c->path, strlen(c->path), &r);
    if (rc != c->rc || r.kind != c->kind)
        fail_msg("%s: rc %d kind %d, want rc %d kind %d", c->path, rc, r.kind, c->rc, c->kind);
    if (c->name == NULL) {
        assert_null(r.name);
    } else if (r.name_len != strlen(c->name) || memcmp(r.name, c->name, r.name_len) != 0) {
        fail_msg("%s: name \"%.*s\", want \"%s\"", c->path, (int)r.name_len, r.name, c->name);
    }
    if (c->ref == NULL) {
        assert_null(r.ref);
        assert_int_equal(r.ref_len, 0);
    } else if (r.ref_len != strlen(c->ref) || memcmp(r.ref, c->ref, r.ref_len) != 0) {
        fail_msg("%s: ref \"%.*s\", want \"%s\"", c->path, (int)r.ref_len, r.ref, c->ref);
    }
}

static void test_routes(void **state)
{
    (void)state;
    static const struct route_case cases[] = {
        {"/v2/", SPY_OK, SPY_OCI_ROUTE_BASE, NULL, NULL},
        {"/v2", SPY_OK, SPY_OCI_ROUTE_BASE, NULL, NULL},
        {"/v2/?x=1", SPY_OK, SPY_OCI_ROUTE_BASE, NULL, NULL},
        {"/v2/_catalog", SPY_OK, SPY_OCI_ROUTE_CATALOG, NULL, NULL},
        {"/v2/_catalog?n=10&last=a", SPY_OK, SPY_OCI_ROUTE_CATALOG, NULL, NULL},
        {"/v2/library/ubuntu/tags/list", SPY_OK, SPY_OCI_ROUTE_TAGS, "library/ubuntu", NULL},
        {"/v2/a/b/c/manifests/latest", SPY_OK, SPY_OCI_ROUTE_MANIFEST, "a/b/c", "latest"},
        {"/v2/a/manifests/sha256:abc", SPY_OK, SPY_OCI_ROUTE_MANIFEST, "a", "sha256:abc"},
        {"/v2/a/blobs/sha256:abc", SPY_OK, SPY_OCI_ROUTE_BLOB, "a", "sha256:abc"},
        {"/v2/library/ubuntu/blobs/uploads/", SPY_OK, SPY_OCI_ROUTE_UPLOADS, "library/ubuntu",
         NULL},
        {"/v2/library/ubuntu/blobs/uploads", SPY_OK, SPY_OCI_ROUTE_UPLOADS, "library/ubuntu", NULL},
        {"/v2/library/ubuntu/blobs/uploads/?digest=sha256:1", SPY_OK, SPY_OCI_ROUTE_UPLOADS,
         "library/ubuntu", NULL},
        {"/v2/library/ubuntu/blobs/uploads/0f3c-11", SPY_OK, SPY_OCI_ROUTE_UPLOAD, "library/ubuntu",
         "0f3c-11"},
        {"/v2/a/blobs/uploads/u?_state=x", SPY_OK, SPY_OCI_ROUTE_UPLOAD, "a", "u"},
        {"/v2/a/referrers/sha256:abc", SPY_OK, SPY_OCI_ROUTE_REFERRERS, "a", "sha256:abc"},
        {"/v2/a/referrers/sha256:abc?artifactType=x/y", SPY_OK, SPY_OCI_ROUTE_REFERRERS, "a",
         "sha256:abc"},
        /* names made of route keywords: split from the right */
        {"/v2/blobs/blobs/uploads/x", SPY_OK, SPY_OCI_ROUTE_UPLOAD, "blobs", "x"},
        {"/v2/a/manifests/manifests/b", SPY_OK, SPY_OCI_ROUTE_MANIFEST, "a/manifests", "b"},
        {"/v2/blobs/blobs/x", SPY_OK, SPY_OCI_ROUTE_BLOB, "blobs", "x"},
        {"/v2/blobs/uploads/blobs/uploads/x", SPY_OK, SPY_OCI_ROUTE_UPLOAD, "blobs/uploads", "x"},
        {"/v2/tags/list/tags/list", SPY_OK, SPY_OCI_ROUTE_TAGS, "tags/list", NULL},
        {"/v2/tags/tags/list", SPY_OK, SPY_OCI_ROUTE_TAGS, "tags", NULL},
        {"/v2/a/manifests/tags/list", SPY_OK, SPY_OCI_ROUTE_TAGS, "a/manifests", NULL},
        {"/v2/referrers/manifests/referrers/d", SPY_OK, SPY_OCI_ROUTE_REFERRERS,
         "referrers/manifests", "d"},
        {"/v2/v2/blobs/x", SPY_OK, SPY_OCI_ROUTE_BLOB, "v2", "x"},
        /* a matched route with a bad name */
        {"/v2/Library/manifests/x", SPY_EINVAL, SPY_OCI_ROUTE_MANIFEST, "Library", "x"},
        {"/v2/a//b/blobs/x", SPY_EINVAL, SPY_OCI_ROUTE_BLOB, "a//b", "x"},
        {"/v2//manifests/x", SPY_EINVAL, SPY_OCI_ROUTE_MANIFEST, "", "x"},
        {"/v2/a___b/tags/list", SPY_EINVAL, SPY_OCI_ROUTE_TAGS, "a___b", NULL},
        {"/v2/_catalog/tags/list", SPY_EINVAL, SPY_OCI_ROUTE_TAGS, "_catalog", NULL},
        /* not routes */
        {"", SPY_ENOTFOUND, SPY_OCI_ROUTE_NONE, NULL, NULL},
        {"/", SPY_ENOTFOUND, SPY_OCI_ROUTE_NONE, NULL, NULL},
        {"/v1/", SPY_ENOTFOUND, SPY_OCI_ROUTE_NONE, NULL, NULL},
        {"/v2x", SPY_ENOTFOUND, SPY_OCI_ROUTE_NONE, NULL, NULL},
        {"/v2/_catalog/", SPY_ENOTFOUND, SPY_OCI_ROUTE_NONE, NULL, NULL},
        {"/v2/a", SPY_ENOTFOUND, SPY_OCI_ROUTE_NONE, NULL, NULL},
        {"/v2/a/b", SPY_ENOTFOUND, SPY_OCI_ROUTE_NONE, NULL, NULL},
        {"/v2/a/manifests/", SPY_ENOTFOUND, SPY_OCI_ROUTE_NONE, NULL, NULL},
        {"/v2/a/blobs/", SPY_ENOTFOUND, SPY_OCI_ROUTE_NONE, NULL, NULL},
        {"/v2/a/referrers/", SPY_ENOTFOUND, SPY_OCI_ROUTE_NONE, NULL, NULL},
        {"/v2/a/tags/list/", SPY_ENOTFOUND, SPY_OCI_ROUTE_NONE, NULL, NULL},
        {"/v2/a/tags/", SPY_ENOTFOUND, SPY_OCI_ROUTE_NONE, NULL, NULL},
        {"/v2/tags/list", SPY_ENOTFOUND, SPY_OCI_ROUTE_NONE, NULL, NULL},
        {"/v2/manifests/x", SPY_ENOTFOUND, SPY_OCI_ROUTE_NONE, NULL, NULL},
        {"/v2/a/manifest/x", SPY_ENOTFOUND, SPY_OCI_ROUTE_NONE, NULL, NULL},
        {"v2/a/manifests/x", SPY_ENOTFOUND, SPY_OCI_ROUTE_NONE, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_route(&cases[i]);
}

static void test_route_length_is_respected(void **state)
{
    (void)state;
    /* only the first len bytes count: the rest of the buffer is never read */
    const char *path = "/v2/a/manifests/latestGARBAGE";
    struct spy_oci_route r;
    assert_int_equal(spy_oci_route_split(path, strlen(path) - 7, &r), SPY_OK);
    assert_int_equal(r.ref_len, 6);
    assert_memory_equal(r.ref, "latest", 6);
    /* a name at the 255 limit routes; one over is NAME_INVALID */
    char buf[400];
    memcpy(buf, "/v2/", 4);
    memset(buf + 4, 'n', 256);
    memcpy(buf + 4 + 255, "/tags/list", 10);
    assert_int_equal(spy_oci_route_split(buf, 4 + 255 + 10, &r), SPY_OK);
    assert_int_equal(r.name_len, 255);
    memset(buf + 4, 'n', 256);
    memcpy(buf + 4 + 256, "/tags/list", 10);
    assert_int_equal(spy_oci_route_split(buf, 4 + 256 + 10, &r), SPY_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_names),
        cmocka_unit_test(test_invalid_names),
        cmocka_unit_test(test_name_embedded_nul_and_length),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_reference_classify),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_route_length_is_respected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
