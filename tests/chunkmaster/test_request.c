/* test_request.c - the chunkmaster's JSON request parsing: exact field sets,
 * types, ranges, canonical addresses, and that no prefix of a valid body and
 * no mangled body is ever accepted. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunkmaster/request.h"
#include "common/status.h"

static const char full_report[] =
    "{\"GroupId\":1,\"Ip\":\"127.0.0.1\",\"Port\":8001,\"ReadOnly\":false,"
    "\"TotalFreeSpace\":1000,\"MaxFreeSpace\":900,\"UsedSpace\":24,\"GarbageSpace\":5,"
    "\"Objects\":7,\"PendingWrites\":1,\"WritingCount\":2,\"ReadingCount\":3,"
    "\"DataDir\":\"/data/cs1\",\"TotalChunks\":4,\"DamagedChunks\":0,"
    "\"ConnectionsCount\":6,\"Version\":\"speedy 0.1\"}";

/* parse_report: spy_request_parse_report on a C string. */
static int parse_report(const char *body, struct spy_report *r, char *err, size_t errlen)
{
    return spy_request_parse_report(body, strlen(body), r, err, errlen);
}

/* expect_report_error: the body is refused and the reason contains 'needle'. */
static void expect_report_error(const char *body, const char *needle)
{
    struct spy_report r;
    char err[256] = "";
    assert_int_equal(parse_report(body, &r, err, sizeof(err)), SPY_EINVAL);
    if (strstr(err, needle) == NULL)
        fail_msg("error for %s is \"%s\", expected it to mention \"%s\"", body, err, needle);
}

static void test_full_report_fills_every_field(void **state)
{
    (void)state;
    struct spy_report r;
    char err[256];
    assert_int_equal(parse_report(full_report, &r, err, sizeof(err)), SPY_OK);
    assert_int_equal(r.group_id, 1);
    assert_string_equal(r.key.ip, "127.0.0.1");
    assert_int_equal(r.key.port, 8001);
    assert_int_equal(r.read_only, 0);
    assert_int_equal(r.total_free_space, 1000);
    assert_int_equal(r.max_free_space, 900);
    assert_int_equal(r.used_space, 24);
    assert_int_equal(r.garbage_space, 5);
    assert_int_equal(r.objects, 7);
    assert_int_equal(r.pending_writes, 1);
    assert_int_equal(r.writing_count, 2);
    assert_int_equal(r.reading_count, 3);
    assert_int_equal(r.total_chunks, 4);
    assert_int_equal(r.damaged_chunks, 0);
    assert_int_equal(r.connections_count, 6);
    assert_string_equal(r.data_dir, "/data/cs1");
    assert_string_equal(r.version, "speedy 0.1");
}

static void test_minimal_report_defaults_metrics_to_zero(void **state)
{
    (void)state;
    struct spy_report r;
    char err[256];
    assert_int_equal(
        parse_report("{\"Port\":9,\"Ip\":\"10.0.0.2\",\"GroupId\":0,\"ReadOnly\":true}", &r, err,
                     sizeof(err)),
        SPY_OK);
    assert_int_equal(r.group_id, 0);
    assert_int_equal(r.key.port, 9);
    assert_int_equal(r.read_only, 1);
    assert_int_equal(r.total_free_space, 0);
    assert_string_equal(r.data_dir, "");
}

static void test_report_rejects_unknown_and_missing_fields(void **state)
{
    (void)state;
    expect_report_error("{\"GroupId\":1,\"Ip\":\"127.0.0.1\",\"Port\":8001,\"Status\":1}",
                        "unknown field 'Status'");
    expect_report_error("{\"GroupId\":1,\"Ip\":\"127.0.0.1\"}", "missing field 'Port'");
    expect_report_error("{\"Ip\":\"127.0.0.1\",\"Port\":1}", "missing field 'GroupId'");
    expect_report_error("{\"GroupId\":1,\"Port\":1}", "missing field 'Ip'");
    expect_report_error("{\"groupid\":1,\"Ip\":\"127.0.0.1\",\"Port\":1}",
                        "unknown field 'groupid'");
}

static void test_report_rejects_wrong_types_and_ranges(void **state)
{
    (void)state;
    expect_report_error("{\"GroupId\":1,\"Ip\":\"127.0.0.1\",\"Port\":\"8001\"}",
                        "'Port' must be a whole number");
    expect_report_error("{\"GroupId\":1.5,\"Ip\":\"127.0.0.1\",\"Port\":1}",
                        "'GroupId' must be a whole number");
    expect_report_error("{\"GroupId\":1,\"Ip\":\"127.0.0.1\",\"Port\":0}",
                        "'Port' must be 1..65535");
    expect_report_error("{\"GroupId\":1,\"Ip\":\"127.0.0.1\",\"Port\":65536}", "'Port' must be");
    expect_report_error("{\"GroupId\":65536,\"Ip\":\"127.0.0.1\",\"Port\":1}", "'GroupId' must be");
    expect_report_error("{\"GroupId\":-1,\"Ip\":\"127.0.0.1\",\"Port\":1}", "'GroupId' must be");
    expect_report_error("{\"GroupId\":1,\"Ip\":\"127.0.0.1\",\"Port\":1,\"ReadOnly\":1}",
                        "'ReadOnly' must be true or false");
    expect_report_error("{\"GroupId\":1,\"Ip\":\"127.0.0.1\",\"Port\":1,\"Objects\":-3}",
                        "'Objects' must not be negative");
    expect_report_error("{\"GroupId\":1,\"Ip\":7,\"Port\":1}", "'Ip' must be a string");
    expect_report_error("{\"GroupId\":1,\"Ip\":\"127.0.0.1\",\"Port\":1,\"DataDir\":null}",
                        "'DataDir' must be a string");
}

static void test_report_rejects_bad_addresses(void **state)
{
    (void)state;
    const char *bad[] = {"0.0.0.0", "::", "localhost", "1.2.3", "", "127.0.0.1 ", "[::1]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[128];
        snprintf(body, sizeof(body), "{\"GroupId\":1,\"Ip\":\"%s\",\"Port\":1}", bad[i]);
        expect_report_error(body, "'Ip' must be an IPv4 or IPv6 address");
    }
}

static void test_addresses_are_canonical(void **state)
{
    (void)state;
    char out[SPY_IP_TEXT_MAX];
    assert_int_equal(spy_request_canonical_ip("::0:1", out, sizeof(out)), SPY_OK);
    assert_string_equal(out, "::1");
    assert_int_equal(spy_request_canonical_ip("2001:DB8:0:0::1", out, sizeof(out)), SPY_OK);
    assert_string_equal(out, "2001:db8::1");
    assert_int_equal(spy_request_canonical_ip("10.1.2.3", out, sizeof(out)), SPY_OK);
    assert_string_equal(out, "10.1.2.3");
    assert_int_equal(spy_request_canonical_ip("010.1.2.3", out, sizeof(out)), SPY_EINVAL);
}

static void test_report_rejects_long_or_nul_strings(void **state)
{
    (void)state;
    size_t n = SPY_DATA_DIR_MAX + 64;
    char *body = malloc(n + 128);
    assert_non_null(body);
    int at = sprintf(body, "{\"GroupId\":1,\"Ip\":\"::1\",\"Port\":1,\"DataDir\":\"");
    memset(body + at, 'a', SPY_DATA_DIR_MAX); /* one byte more than fits with the NUL */
    strcpy(body + at + SPY_DATA_DIR_MAX, "\"}");
    expect_report_error(body, "'DataDir' is longer than");
    /* exactly the longest accepted */
    strcpy(body + at + SPY_DATA_DIR_MAX - 1, "\"}");
    struct spy_report r;
    char err[256];
    assert_int_equal(parse_report(body, &r, err, sizeof(err)), SPY_OK);
    assert_int_equal(strlen(r.data_dir), SPY_DATA_DIR_MAX - 1);
    free(body);
    /* jansson refuses \u0000 itself (no JSON_ALLOW_NUL), so strings stay C strings */
    expect_report_error("{\"GroupId\":1,\"Ip\":\"::1\",\"Port\":1,\"Version\":\"a\\u0000b\"}",
                        "malformed JSON");
}

static void test_malformed_bodies_are_refused(void **state)
{
    (void)state;
    expect_report_error("", "empty body");
    expect_report_error("{\"GroupId\":1,", "malformed JSON");
    expect_report_error("{\"GroupId\":1} x", "malformed JSON");
    expect_report_error("[1,2]", "expected a JSON object");
    expect_report_error("\"text\"", "malformed JSON");
    expect_report_error("{\"GroupId\":1,\"GroupId\":2,\"Ip\":\"::1\",\"Port\":1}",
                        "malformed JSON");
    expect_report_error("{\"GroupId\":1,\"Ip\":\"::1\",\"Port\":99999999999999999999}",
                        "malformed JSON");
    struct spy_report r;
    char err[64];
    assert_int_equal(spy_request_parse_report(NULL, 0, &r, err, sizeof(err)), SPY_EINVAL);
}

/* in_free_text: whether offset i of full_report lies inside the DataDir or
 * Version value, the only places where any printable byte is still valid. */
static int in_free_text(size_t i)
{
    const char *fields[] = {"\"DataDir\":\"", "\"Version\":\""};
    for (size_t k = 0; k < 2; k++) {
        const char *start = strstr(full_report, fields[k]) + strlen(fields[k]);
        const char *end = strchr(start, '"');
        if (full_report + i >= start && full_report + i < end)
            return 1;
    }
    return 0;
}

/* Every strict prefix of a valid report is refused, and so is the report with
 * any one byte replaced by a quote, brace or comma, unless that byte sits in
 * free text: nothing half-parsed or shifted gets in. */
static void test_no_prefix_or_mangled_report_is_accepted(void **state)
{
    (void)state;
    size_t len = strlen(full_report);
    struct spy_report r;
    char err[256];
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(spy_request_parse_report(full_report, cut, &r, err, sizeof(err)),
                         SPY_EINVAL);
    char mangled[sizeof(full_report)];
    const char swaps[] = {'"', '{', '}', ','};
    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < sizeof(swaps); k++) {
            if (full_report[i] == swaps[k])
                continue;
            memcpy(mangled, full_report, sizeof(full_report));
            mangled[i] = swaps[k];
            int rc = spy_request_parse_report(mangled, len, &r, err, sizeof(err));
            if (rc == SPY_OK && !(swaps[k] != '"' && in_free_text(i)))
                fail_msg("accepted a report with byte %zu replaced by '%c'", i, swaps[k]);
        }
    }
}

static void test_init_and_batch(void **state)
{
    (void)state;
    struct spy_server_decl d;
    char err[256];
    const char *one = "{\"GroupId\":3,\"Ip\":\"::ffff:127.0.0.1\",\"Port\":8003}";
    assert_int_equal(spy_request_parse_init(one, strlen(one), &d, err, sizeof(err)), SPY_OK);
    assert_int_equal(d.group_id, 3);
    assert_int_equal(d.key.port, 8003);
    assert_string_equal(d.key.ip, "::ffff:127.0.0.1");
    const char *extra = "{\"GroupId\":3,\"Ip\":\"::1\",\"Port\":8003,\"ReadOnly\":false}";
    assert_int_equal(spy_request_parse_init(extra, strlen(extra), &d, err, sizeof(err)),
                     SPY_EINVAL);
    assert_non_null(strstr(err, "unknown field 'ReadOnly'"));

    struct spy_server_decl *decls = NULL;
    size_t n = 0;
    const char *batch = "[{\"GroupId\":1,\"Ip\":\"127.0.0.1\",\"Port\":1},"
                        "{\"GroupId\":2,\"Ip\":\"127.0.0.1\",\"Port\":2}]";
    assert_int_equal(
        spy_request_parse_batch_init(batch, strlen(batch), &decls, &n, err, sizeof(err)), SPY_OK);
    assert_int_equal(n, 2);
    assert_int_equal(decls[1].group_id, 2);
    assert_int_equal(decls[1].key.port, 2);
    free(decls);

    const char *dup = "[{\"GroupId\":1,\"Ip\":\"::1\",\"Port\":1},"
                      "{\"GroupId\":2,\"Ip\":\"0::1\",\"Port\":1}]";
    assert_int_equal(spy_request_parse_batch_init(dup, strlen(dup), &decls, &n, err, sizeof(err)),
                     SPY_EINVAL);
    assert_non_null(strstr(err, "element 1: ::1:1 is listed twice"));
    const char *bad = "[{\"GroupId\":1,\"Ip\":\"::1\",\"Port\":1},{\"GroupId\":1}]";
    assert_int_equal(spy_request_parse_batch_init(bad, strlen(bad), &decls, &n, err, sizeof(err)),
                     SPY_EINVAL);
    assert_non_null(strstr(err, "element 1: missing field"));
    assert_int_equal(spy_request_parse_batch_init("[]", 2, &decls, &n, err, sizeof(err)),
                     SPY_EINVAL);
    assert_int_equal(spy_request_parse_batch_init("{}", 2, &decls, &n, err, sizeof(err)),
                     SPY_EINVAL);
}

static void test_operator_bodies(void **state)
{
    (void)state;
    struct spy_server_key key;
    int flag = -1;
    uint32_t group = 0;
    char err[256];
    const char *drain = "{\"Ip\":\"127.0.0.1\",\"Port\":8001,\"Draining\":true}";
    assert_int_equal(
        spy_request_parse_server_drain(drain, strlen(drain), &key, &flag, err, sizeof(err)),
        SPY_OK);
    assert_int_equal(flag, 1);
    assert_int_equal(key.port, 8001);
    const char *no_flag = "{\"Ip\":\"127.0.0.1\",\"Port\":8001}";
    assert_int_equal(
        spy_request_parse_server_drain(no_flag, strlen(no_flag), &key, &flag, err, sizeof(err)),
        SPY_EINVAL);
    assert_non_null(strstr(err, "missing field 'Draining'"));
    const char *gdrain = "{\"GroupId\":7,\"Draining\":false}";
    assert_int_equal(
        spy_request_parse_group_drain(gdrain, strlen(gdrain), &group, &flag, err, sizeof(err)),
        SPY_OK);
    assert_int_equal(group, 7);
    assert_int_equal(flag, 0);
    const char *rm = "{\"Ip\":\"127.0.0.1\",\"Port\":8001}";
    assert_int_equal(spy_request_parse_remove(rm, strlen(rm), &key, &flag, err, sizeof(err)),
                     SPY_OK);
    assert_int_equal(flag, 0);
    const char *rmf = "{\"Ip\":\"127.0.0.1\",\"Port\":8001,\"Force\":true}";
    assert_int_equal(spy_request_parse_remove(rmf, strlen(rmf), &key, &flag, err, sizeof(err)),
                     SPY_OK);
    assert_int_equal(flag, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_report_fills_every_field),
        cmocka_unit_test(test_minimal_report_defaults_metrics_to_zero),
        cmocka_unit_test(test_report_rejects_unknown_and_missing_fields),
        cmocka_unit_test(test_report_rejects_wrong_types_and_ranges),
        cmocka_unit_test(test_report_rejects_bad_addresses),
        cmocka_unit_test(test_addresses_are_canonical),
        cmocka_unit_test(test_report_rejects_long_or_nul_strings),
        cmocka_unit_test(test_malformed_bodies_are_refused),
        cmocka_unit_test(test_no_prefix_or_mangled_report_is_accepted),
        cmocka_unit_test(test_init_and_batch),
        cmocka_unit_test(test_operator_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
