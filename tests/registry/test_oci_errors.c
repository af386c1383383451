/* test_oci_errors: every code's wire name and HTTP status (the table in
 * docs/anchor-registries.md), and the exact bytes of error bodies: default
 * and custom messages, string and JSON details, escaping, invalid UTF-8,
 * several errors in one body. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "registry/oci_errors.h"

static void test_code_table(void **state)
{
    (void)state;
    static const struct {
        enum spy_oci_code code;
        const char *name;
        int status;
    } table[] = {
        {SPY_OCI_BLOB_UNKNOWN, "BLOB_UNKNOWN", 404},
        {SPY_OCI_BLOB_UPLOAD_INVALID, "BLOB_UPLOAD_INVALID", 404},
        {SPY_OCI_BLOB_UPLOAD_UNKNOWN, "BLOB_UPLOAD_UNKNOWN", 404},
        {SPY_OCI_DIGEST_INVALID, "DIGEST_INVALID", 400},
        {SPY_OCI_MANIFEST_BLOB_UNKNOWN, "MANIFEST_BLOB_UNKNOWN", 400},
        {SPY_OCI_MANIFEST_INVALID, "MANIFEST_INVALID", 400},
        {SPY_OCI_MANIFEST_UNKNOWN, "MANIFEST_UNKNOWN", 404},
        {SPY_OCI_NAME_INVALID, "NAME_INVALID", 400},
        {SPY_OCI_NAME_UNKNOWN, "NAME_UNKNOWN", 404},
        {SPY_OCI_SIZE_INVALID, "SIZE_INVALID", 400},
        {SPY_OCI_UNAUTHORIZED, "UNAUTHORIZED", 401},
        {SPY_OCI_DENIED, "DENIED", 403},
        {SPY_OCI_UNSUPPORTED, "UNSUPPORTED", 405},
        {SPY_OCI_TOOMANYREQUESTS, "TOOMANYREQUESTS", 429},
        {SPY_OCI_RANGE_INVALID, "RANGE_INVALID", 416},
        {SPY_OCI_PAGINATION_NUMBER_INVALID, "PAGINATION_NUMBER_INVALID", 400},
        {SPY_OCI_TAG_INVALID, "TAG_INVALID", 400},
        {SPY_OCI_UNKNOWN, "UNKNOWN", 500},
    };
    assert_int_equal(sizeof(table) / sizeof(table[0]), SPY_OCI_CODE_COUNT - 1);
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        assert_string_equal(spy_oci_code_name(table[i].code), table[i].name);
        assert_int_equal(spy_oci_code_http_status(table[i].code), table[i].status);
        assert_true(strlen(spy_oci_code_message(table[i].code)) > 0);
    }
    assert_int_equal(spy_oci_code_http_status(SPY_OCI_OK), 200);
    assert_string_equal(spy_oci_code_name((enum spy_oci_code)99), "UNKNOWN");
    assert_int_equal(spy_oci_code_http_status((enum spy_oci_code)99), 500);
    assert_int_equal(spy_oci_code_http_status((enum spy_oci_code) - 1), 500);
    assert_string_equal(spy_oci_code_message((enum spy_oci_code)99), "unknown error");
}

static void expect_body(enum spy_oci_code code, const char *message, const char *detail,
                        const char *want)
{
    char *body = NULL;
    size_t len = 0;
    assert_int_equal(spy_oci_error_json(code, message, detail, &body, &len), SPY_OK);
    assert_string_equal(body, want);
    assert_int_equal(len, strlen(want));
    free(body);
}

static void test_single_error_bodies(void **state)
{
    (void)state;
    expect_body(SPY_OCI_BLOB_UNKNOWN, NULL, NULL,
                "{\"errors\":[{\"code\":\"BLOB_UNKNOWN\",\"message\":\"blob unknown to "
                "registry\"}]}");
    expect_body(SPY_OCI_NAME_INVALID, "bad name", "Library/x",
                "{\"errors\":[{\"code\":\"NAME_INVALID\",\"message\":\"bad name\",\"detail\":"
                "\"Library/x\"}]}");
    expect_body(SPY_OCI_MANIFEST_INVALID, "q\"uote\\back", "line\nbreak\ttab\x01",
                "{\"errors\":[{\"code\":\"MANIFEST_INVALID\",\"message\":\"q\\\"uote\\\\back\","
                "\"detail\":\"line\\nbreak\\ttab\\u0001\"}]}");
    expect_body(SPY_OCI_TAG_INVALID, "", "caf\xc3\xa9/\xe2\x82\xac",
                "{\"errors\":[{\"code\":\"TAG_INVALID\",\"message\":\"\",\"detail\":\"caf\xc3\xa9/"
                "\xe2\x82\xac\"}]}");
    /* invalid UTF-8 (stray continuation, overlong, surrogate, truncated) becomes U+FFFD */
    expect_body(SPY_OCI_TAG_INVALID, "a\x80z", "\xc0\xaf|\xed\xa0\x80|\xe2\x82",
                "{\"errors\":[{\"code\":\"TAG_INVALID\",\"message\":\"a\xef\xbf\xbdz\",\"detail\":"
                "\"\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|"
                "\xef\xbf\xbd\xef\xbf\xbd\"}]}");
    /* OK or a stray value still produce a valid body */
    expect_body(SPY_OCI_OK, NULL, NULL,
                "{\"errors\":[{\"code\":\"UNKNOWN\",\"message\":\"unknown error\"}]}");
}

static void test_json_detail_and_lists(void **state)
{
    (void)state;
    json_t *detail = json_pack("{s:s,s:i}", "digest", "sha256:ab", "size", 5);
    assert_non_null(detail);
    struct spy_oci_error errs[] = {
        {SPY_OCI_MANIFEST_BLOB_UNKNOWN, NULL, "ignored when detail_json is set", detail},
        {SPY_OCI_SIZE_INVALID, "too big", NULL, NULL},
    };
    char *body = NULL;
    size_t len = 0;
    assert_int_equal(spy_oci_errors_json(errs, 2, &body, &len), SPY_OK);
    assert_string_equal(body, "{\"errors\":[{\"code\":\"MANIFEST_BLOB_UNKNOWN\",\"message\":"
                              "\"manifest references a manifest or blob unknown to registry\","
                              "\"detail\":{\"digest\":\"sha256:ab\",\"size\":5}},"
                              "{\"code\":\"SIZE_INVALID\",\"message\":\"too big\"}]}");
    assert_int_equal(len, strlen(body));
    free(body);
    assert_int_equal(json_object_size(detail), 2); /* borrowed, untouched */
    json_decref(detail);
    assert_int_equal(spy_oci_errors_json(errs, 0, &body, &len), SPY_EINVAL);
    assert_null(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_code_table),
        cmocka_unit_test(test_single_error_bodies),
        cmocka_unit_test(test_json_detail_and_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
