/* test_flags: the spellings every daemon accepts (--name=value, -name=value,
 * -name value, bare booleans), defaults, bounds, sizes, required flags,
 * positional arguments and the one-line errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "common/flags.h"

struct opts {
    const char *ip;
    long long port;
    uint64_t chunk_size;
    int debug;
    const char *group;
};

static int parse(struct opts *o, int argc, char **argv, int *npos, char *err)
{
    struct spy_flag flags[] = {
        {"ip", SPY_FLAG_STRING, &o->ip, "127.0.0.1", 0, 0, 0, "listen address"},
        {"port", SPY_FLAG_INT, &o->port, "8000", 1, 65535, 0, "listen port"},
        {"chunk_size", SPY_FLAG_SIZE, &o->chunk_size, "2G", 1 << 20, 1LL << 40, 0, "chunk bytes"},
        {"D", SPY_FLAG_BOOL, &o->debug, "false", 0, 0, 0, "debug logging"},
        {"group_id", SPY_FLAG_STRING, &o->group, NULL, 0, 0, 1, "group"},
    };
    memset(err, 0, 256);
    return spy_flags_parse(flags, 5, argc, argv, npos, err, 256);
}

static void test_defaults_and_long_form(void **state)
{
    (void)state;
    struct opts o = {0};
    char err[256];
    char *argv[] = {"prog", "--group_id=3", NULL};
    assert_int_equal(parse(&o, 2, argv, NULL, err), SPY_FLAGS_OK);
    assert_string_equal(o.ip, "127.0.0.1");
    assert_int_equal(o.port, 8000);
    assert_int_equal(o.chunk_size, 2ULL << 30);
    assert_int_equal(o.debug, 0);
    assert_string_equal(o.group, "3");
}

static void test_go_style_spellings(void **state)
{
    (void)state;
    struct opts o = {0};
    char err[256];
    char *argv[] = {"prog", "-ip", "::1", "-port=9000", "-D", "--chunk_size", "64M", "-group_id=1"};
    assert_int_equal(parse(&o, 8, argv, NULL, err), SPY_FLAGS_OK);
    assert_string_equal(o.ip, "::1");
    assert_int_equal(o.port, 9000);
    assert_int_equal(o.debug, 1);
    assert_int_equal(o.chunk_size, 64ULL << 20);
    char *argv2[] = {"prog", "-D=false", "--group_id=1"};
    assert_int_equal(parse(&o, 3, argv2, NULL, err), SPY_FLAGS_OK);
    assert_int_equal(o.debug, 0);
}

static void test_errors_are_one_line(void **state)
{
    (void)state;
    struct opts o = {0};
    char err[256];
    char *bad_port[] = {"prog", "--port=abc", "--group_id=1"};
    assert_int_equal(parse(&o, 3, bad_port, NULL, err), SPY_FLAGS_ERROR);
    assert_non_null(strstr(err, "--port"));
    assert_null(strchr(err, '\n'));
    char *range[] = {"prog", "--port=70000", "--group_id=1"};
    assert_int_equal(parse(&o, 3, range, NULL, err), SPY_FLAGS_ERROR);
    assert_non_null(strstr(err, "outside"));
    char *unknown[] = {"prog", "--nope=1", "--group_id=1"};
    assert_int_equal(parse(&o, 3, unknown, NULL, err), SPY_FLAGS_ERROR);
    assert_non_null(strstr(err, "unknown flag '--nope'"));
    char *missing[] = {"prog"};
    assert_int_equal(parse(&o, 1, missing, NULL, err), SPY_FLAGS_ERROR);
    assert_non_null(strstr(err, "missing required flag --group_id"));
    char *novalue[] = {"prog", "--group_id=1", "--port"};
    assert_int_equal(parse(&o, 3, novalue, NULL, err), SPY_FLAGS_ERROR);
    assert_non_null(strstr(err, "needs a value"));
    char *badsize[] = {"prog", "--group_id=1", "--chunk_size=12Q"};
    assert_int_equal(parse(&o, 3, badsize, NULL, err), SPY_FLAGS_ERROR);
    char *small[] = {"prog", "--group_id=1", "--chunk_size=1K"};
    assert_int_equal(parse(&o, 3, small, NULL, err), SPY_FLAGS_ERROR);
    char *stray[] = {"prog", "--group_id=1", "extra"};
    assert_int_equal(parse(&o, 3, stray, NULL, err), SPY_FLAGS_ERROR);
}

static void test_help_and_positional(void **state)
{
    (void)state;
    struct opts o = {0};
    char err[256];
    char *help[] = {"prog", "--help"};
    assert_int_equal(parse(&o, 2, help, NULL, err), SPY_FLAGS_HELP);
    char *help2[] = {"prog", "-help"};
    assert_int_equal(parse(&o, 2, help2, NULL, err), SPY_FLAGS_HELP);
    char *pos[] = {"prog", "get", "--group_id=1", "42", "--", "-7"};
    int npos = -1;
    assert_int_equal(parse(&o, 6, pos, &npos, err), SPY_FLAGS_OK);
    assert_int_equal(npos, 3);
    assert_string_equal(pos[1], "get");
    assert_string_equal(pos[2], "42");
    assert_string_equal(pos[3], "-7");
}

static void test_parse_size(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(spy_parse_size("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(spy_parse_size("512", &v), 0);
    assert_int_equal(v, 512);
    assert_int_equal(spy_parse_size("4k", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(spy_parse_size("16MiB", &v), 0);
    assert_int_equal(v, 16u << 20);
    assert_int_equal(spy_parse_size("2GB", &v), 0);
    assert_int_equal(v, 2ULL << 30);
    assert_int_equal(spy_parse_size("1T", &v), 0);
    assert_int_equal(v, 1ULL << 40);
    assert_int_equal(spy_parse_size("100B", &v), 0);
    assert_int_equal(v, 100);
    assert_int_equal(spy_parse_size("", &v), -1);
    assert_int_equal(spy_parse_size("-1", &v), -1);
    assert_int_equal(spy_parse_size("1.5G", &v), -1);
    assert_int_equal(spy_parse_size("2GX", &v), -1);
    assert_int_equal(spy_parse_size("99999999999999999999", &v), -1);
    assert_int_equal(spy_parse_size("17179869184T", &v), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_long_form),
        cmocka_unit_test(test_go_style_spellings),
        cmocka_unit_test(test_errors_are_one_line),
        cmocka_unit_test(test_help_and_positional),
        cmocka_unit_test(test_parse_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
