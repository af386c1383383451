/* test_route.c - route table parsing, group choice, replica read order. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blobstore/route.h"
#include "common/status.h"

#define GB (1ull << 30)

/* server_json: one route entry as the chunkmaster writes it. */
static void server_json(char *out, size_t cap, int group, int port, int status, int writable,
                        uint64_t total_free, uint64_t max_free)
{
    snprintf(out, cap,
             "{\"GroupId\":%d,\"Ip\":\"127.0.0.1\",\"Port\":%d,\"Status\":%d,"
             "\"GlobalStatus\":0,\"State\":\"RW\",\"GroupWritable\":%s,\"ReadOnly\":false,"
             "\"TotalFreeSpace\":%llu,\"MaxFreeSpace\":%llu,\"PendingWrites\":0,"
             "\"DataDir\":\"/x\",\"Version\":\"v\"}",
             group, port, status, writable ? "true" : "false", (unsigned long long)total_free,
             (unsigned long long)max_free);
}

/* parse_ok: parses text, failing the test on error. */
static struct spy_blobroute *parse_ok(const char *text)
{
    struct spy_blobroute *rt;
    char err[256] = "";
    int rc = spy_blobroute_parse(text, strlen(text), &rt, err, sizeof(err));
    if (rc != SPY_OK)
        fail_msg("parse failed: %s", err);
    return rt;
}

/* parse_bad: expects SPY_EINVAL and a reason mentioning 'needle'. */
static void parse_bad(const char *text, const char *needle)
{
    struct spy_blobroute *rt = (void *)1;
    char err[256] = "";
    assert_int_equal(spy_blobroute_parse(text, strlen(text), &rt, err, sizeof(err)), SPY_EINVAL);
    assert_null(rt);
    if (strstr(err, needle) == NULL)
        fail_msg("reason '%s' does not mention '%s'", err, needle);
}

static void test_parse_valid(void **state)
{
    (void)state;
    char a[512], b[512], c[512], text[2048];
    server_json(a, sizeof(a), 2, 8003, 1, 1, 5 * GB, GB);
    server_json(b, sizeof(b), 1, 8001, 1, 1, 4 * GB, GB);
    server_json(c, sizeof(c), 1, 8002, 2, 1, 3 * GB, GB);
    snprintf(text, sizeof(text), "{\"2\":[%s],\"1\":[%s,%s]}", a, b, c);
    struct spy_blobroute *rt = parse_ok(text);
    assert_int_equal(rt->ngroups, 2);
    assert_int_equal(rt->groups[0].id, 1); /* sorted by id */
    assert_int_equal(rt->groups[1].id, 2);
    const struct spy_blobroute_group *g = spy_blobroute_group(rt, 1);
    assert_non_null(g);
    assert_int_equal(g->nservers, 2);
    assert_true(g->writable);
    assert_string_equal(g->servers[0].name, "127.0.0.1:8001");
    assert_int_equal(g->servers[0].status, SPY_BLOBROUTE_RW);
    assert_int_equal(g->servers[1].status, SPY_BLOBROUTE_RO);
    assert_int_equal(g->servers[0].total_free, 4 * GB);
    assert_int_equal(g->servers[0].max_free, GB);
    assert_int_equal(g->servers[0].addr.ss_family, AF_INET);
    assert_null(spy_blobroute_group(rt, 3));
    /* references: the last unref frees (ASan checks) */
    spy_blobroute_ref(rt);
    spy_blobroute_unref(rt);
    spy_blobroute_unref(rt);
    spy_blobroute_unref(NULL);
}

static void test_parse_minimal_and_v6(void **state)
{
    (void)state;
    /* The original master's fields only (no GroupWritable): writable. IPv6. */
    const char *text = "{\"7\":[{\"Ip\":\"::1\",\"Port\":9000,\"Status\":1,"
                       "\"TotalFreeSpace\":10,\"MaxFreeSpace\":10}],\"8\":[]}";
    struct spy_blobroute *rt = parse_ok(text);
    const struct spy_blobroute_group *g = spy_blobroute_group(rt, 7);
    assert_non_null(g);
    assert_true(g->writable);
    assert_string_equal(g->servers[0].name, "[::1]:9000");
    assert_int_equal(g->servers[0].addr.ss_family, AF_INET6);
    assert_int_equal(spy_blobroute_group(rt, 8)->nservers, 0);
    spy_blobroute_unref(rt);
    rt = parse_ok("{}");
    assert_int_equal(rt->ngroups, 0);
    spy_blobroute_unref(rt);
}

static void test_parse_writability(void **state)
{
    (void)state;
    const char *text =
        "{\"1\":[{\"Ip\":\"10.0.0.1\",\"Port\":1,\"Status\":1,\"GroupWritable\":false,"
        "\"TotalFreeSpace\":10,\"MaxFreeSpace\":10}],"
        "\"2\":[{\"Ip\":\"10.0.0.2\",\"Port\":1,\"Status\":1,\"GlobalStatus\":8,"
        "\"TotalFreeSpace\":10,\"MaxFreeSpace\":10}]}";
    struct spy_blobroute *rt = parse_ok(text);
    assert_false(spy_blobroute_group(rt, 1)->writable); /* the master says no */
    assert_false(spy_blobroute_group(rt, 2)->writable); /* draining ("transfer") */
    spy_blobroute_unref(rt);
}

static void test_parse_errors(void **state)
{
    (void)state;
    parse_bad("", "not JSON");
    parse_bad("{\"1\":[", "not JSON");
    parse_bad("garbage", "not JSON");
    parse_bad("[]", "not a JSON object");
    parse_bad("{\"x\":[]}", "group key");
    parse_bad("{\"0\":[]}", "group key");
    parse_bad("{\"70000\":[]}", "group key");
    parse_bad("{\"1\":{}}", "not an array");
    parse_bad("{\"1\":[1]}", "not an object");
    parse_bad("{\"1\":[{\"Port\":1,\"Status\":1,\"TotalFreeSpace\":1,\"MaxFreeSpace\":1}]}",
              "'Ip'");
    parse_bad("{\"1\":[{\"Ip\":\"1.2.3.4\",\"Status\":1,\"TotalFreeSpace\":1,"
              "\"MaxFreeSpace\":1}]}",
              "'Port'");
    parse_bad("{\"1\":[{\"Ip\":\"1.2.3.4\",\"Port\":0,\"Status\":1,\"TotalFreeSpace\":1,"
              "\"MaxFreeSpace\":1}]}",
              "'Port'");
    parse_bad("{\"1\":[{\"Ip\":\"1.2.3.4\",\"Port\":1,\"TotalFreeSpace\":1,"
              "\"MaxFreeSpace\":1}]}",
              "'Status'");
    parse_bad("{\"1\":[{\"Ip\":\"1.2.3.4\",\"Port\":1,\"Status\":1,\"MaxFreeSpace\":1}]}",
              "TotalFreeSpace");
    parse_bad("{\"1\":[{\"Ip\":\"1.2.3.4\",\"Port\":1,\"Status\":\"1\",\"TotalFreeSpace\":1,"
              "\"MaxFreeSpace\":1}]}",
              "'Status'");
    parse_bad("{\"1\":[{\"Ip\":\"host.example\",\"Port\":1,\"Status\":1,\"TotalFreeSpace\":1,"
              "\"MaxFreeSpace\":1}]}",
              "numeric");
    parse_bad("{\"1\":[{\"GroupId\":2,\"Ip\":\"1.2.3.4\",\"Port\":1,\"Status\":1,"
              "\"TotalFreeSpace\":1,\"MaxFreeSpace\":1}]}",
              "GroupId");
    parse_bad("{\"1\":[{\"Ip\":\"1.2.3.4\",\"Port\":1,\"Status\":1,\"TotalFreeSpace\":-1,"
              "\"MaxFreeSpace\":1}]}",
              "TotalFreeSpace");
    parse_bad("{\"1\":[{\"Ip\":\"1.2.3.4\",\"Port\":1,\"Status\":1,\"GroupWritable\":1,"
              "\"TotalFreeSpace\":1,\"MaxFreeSpace\":1}]}",
              "GroupWritable");
    const char *twice = "{\"1\":[{\"Ip\":\"1.2.3.4\",\"Port\":1,\"Status\":1,"
                        "\"TotalFreeSpace\":1,\"MaxFreeSpace\":1},"
                        "{\"Ip\":\"1.2.3.4\",\"Port\":1,\"Status\":1,"
                        "\"TotalFreeSpace\":1,\"MaxFreeSpace\":1}]}";
    parse_bad(twice, "twice");
    parse_bad("{\"1\":[],\"1\":[]}", "not JSON"); /* duplicate key */
}

static void test_parse_too_many_servers(void **state)
{
    (void)state;
    char *text = malloc(16384);
    size_t at = (size_t)sprintf(text, "{\"1\":[");
    for (int i = 0; i <= SPY_BLOBROUTE_MAX_SERVERS; i++)
        at += (size_t)sprintf(text + at,
                              "%s{\"Ip\":\"10.0.0.1\",\"Port\":%d,\"Status\":1,"
                              "\"TotalFreeSpace\":1,\"MaxFreeSpace\":1}",
                              i ? "," : "", 1000 + i);
    sprintf(text + at, "]}");
    parse_bad(text, "more than");
    free(text);
}

/* A cluster for the choice tests: groups 1..ngroups of 2 servers each;
 * group g's servers are ports 100g+1 and 100g+2. */
static struct spy_blobroute *cluster(int ngroups, const uint64_t *free_gb, const int *status,
                                     const int *writable)
{
    size_t cap = 1024 * (size_t)(ngroups + 1);
    char *text = malloc(cap), s1[512], s2[512];
    size_t at = (size_t)snprintf(text, cap, "{");
    for (int g = 1; g <= ngroups; g++) {
        uint64_t fr = free_gb != NULL ? free_gb[g - 1] * GB : 100 * GB;
        int st = status != NULL ? status[g - 1] : 1;
        int wr = writable != NULL ? writable[g - 1] : 1;
        server_json(s1, sizeof(s1), g, 100 * g + 1, 1, wr, fr, fr / 2);
        server_json(s2, sizeof(s2), g, 100 * g + 2, st, wr, fr + GB, fr / 2);
        at +=
            (size_t)snprintf(text + at, cap - at, "%s\"%d\":[%s,%s]", g > 1 ? "," : "", g, s1, s2);
    }
    snprintf(text + at, cap - at, "}");
    struct spy_blobroute *rt = parse_ok(text);
    free(text);
    return rt;
}

static void test_choose_filters(void **state)
{
    (void)state;
    /* group 1: writable; 2: one server RO; 3: master says not writable;
     * 4: little room. */
    uint64_t free_gb[] = {10, 10, 10, 1};
    int status[] = {1, 2, 1, 1};
    int writable[] = {1, 1, 0, 1};
    struct spy_blobroute *rt = cluster(4, free_gb, status, writable);
    struct spy_blobroute_want want = {.min_writable = 2, .need_bytes = GB};
    struct spy_blobroute_pick pick;
    for (uint64_t rnd = 0; rnd < 50; rnd++) {
        assert_int_equal(spy_blobroute_choose(rt, &want, rnd, &pick), SPY_OK);
        assert_int_equal(pick.group->id, 1);
        assert_int_equal(pick.nreplicas, 2);
    }
    /* -n 1: group 2 qualifies with its one RW server (written to that one). */
    want.min_writable = 1;
    int seen2 = 0;
    for (uint64_t rnd = 0; rnd < 50; rnd++) {
        assert_int_equal(spy_blobroute_choose(rt, &want, rnd, &pick), SPY_OK);
        assert_true(pick.group->id == 1 || pick.group->id == 2);
        if (pick.group->id == 2) {
            seen2 = 1;
            assert_int_equal(pick.nreplicas, 1);
            assert_string_equal(pick.replicas[0]->name, "127.0.0.1:201");
        }
    }
    assert_true(seen2);
    /* Excluding group 1 (tried already) with -n 2 leaves nothing. */
    want.min_writable = 2;
    uint32_t ex[] = {1};
    want.exclude = ex;
    want.nexclude = 1;
    assert_int_equal(spy_blobroute_choose(rt, &want, 0, &pick), SPY_ENOSPC);
    assert_null(pick.group);
    /* No room anywhere. */
    want.nexclude = 0;
    want.need_bytes = 100 * GB;
    assert_int_equal(spy_blobroute_choose(rt, &want, 0, &pick), SPY_ENOSPC);
    spy_blobroute_unref(rt);
}

/* blocked_port: blocks servers whose name ends in the given ":port". */
static int blocked_port(void *arg, const struct spy_blobroute_server *s)
{
    const char *suffix = arg;
    size_t n = strlen(s->name), m = strlen(suffix);
    return n >= m && strcmp(s->name + n - m, suffix) == 0;
}

static void test_choose_avoids_blacklisted(void **state)
{
    (void)state;
    struct spy_blobroute *rt = cluster(3, NULL, NULL, NULL);
    struct spy_blobroute_want want = {
        .min_writable = 2, .need_bytes = GB, .blocked = blocked_port, .blocked_arg = ":202"};
    struct spy_blobroute_pick pick;
    int counts[4] = {0};
    for (uint64_t rnd = 0; rnd < 300; rnd++) {
        assert_int_equal(spy_blobroute_choose(rt, &want, rnd * 7919, &pick), SPY_OK);
        counts[pick.group->id]++;
    }
    assert_int_equal(counts[2], 0); /* its second replica is blacklisted */
    assert_true(counts[1] > 0 && counts[3] > 0);
    spy_blobroute_unref(rt);
}

static void test_choose_distribution(void **state)
{
    (void)state;
    /* 30 groups with distinct free space: K = 30/10 + 3 = 6 candidates, the
     * 6 emptiest (groups 25..30), each picked about equally often. */
    uint64_t free_gb[30];
    for (int i = 0; i < 30; i++)
        free_gb[i] = 10 + (uint64_t)i;
    struct spy_blobroute *rt = cluster(30, free_gb, NULL, NULL);
    struct spy_blobroute_want want = {.min_writable = 2, .need_bytes = GB};
    struct spy_blobroute_pick pick;
    int counts[31] = {0};
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 6000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        assert_int_equal(spy_blobroute_choose(rt, &want, x, &pick), SPY_OK);
        counts[pick.group->id]++;
    }
    for (int g = 1; g <= 24; g++)
        assert_int_equal(counts[g], 0);
    for (int g = 25; g <= 30; g++)
        assert_in_range(counts[g], 800, 1200); /* 1000 expected */
    spy_blobroute_unref(rt);
}

static void test_read_order(void **state)
{
    (void)state;
    const char *text = "{\"1\":["
                       "{\"Ip\":\"10.0.0.1\",\"Port\":1,\"Status\":3,"
                       "\"TotalFreeSpace\":1,\"MaxFreeSpace\":1},"
                       "{\"Ip\":\"10.0.0.2\",\"Port\":1,\"Status\":1,"
                       "\"TotalFreeSpace\":1,\"MaxFreeSpace\":1},"
                       "{\"Ip\":\"10.0.0.3\",\"Port\":1,\"Status\":2,"
                       "\"TotalFreeSpace\":1,\"MaxFreeSpace\":1},"
                       "{\"Ip\":\"10.0.0.4\",\"Port\":1,\"Status\":1,"
                       "\"TotalFreeSpace\":1,\"MaxFreeSpace\":1}]}";
    struct spy_blobroute *rt = parse_ok(text);
    const struct spy_blobroute_group *g = spy_blobroute_group(rt, 1);
    const struct spy_blobroute_server *order[SPY_BLOBROUTE_MAX_SERVERS];
    /* fid 0: rotation starts at index 0: healthy 2,3,4 then the ERR one. */
    assert_int_equal(spy_blobroute_read_order(g, 0, NULL, NULL, order), 4);
    assert_string_equal(order[0]->name, "10.0.0.2:1");
    assert_string_equal(order[1]->name, "10.0.0.3:1");
    assert_string_equal(order[2]->name, "10.0.0.4:1");
    assert_string_equal(order[3]->name, "10.0.0.1:1");
    /* fid 2: starts at index 2. */
    spy_blobroute_read_order(g, 2, NULL, NULL, order);
    assert_string_equal(order[0]->name, "10.0.0.3:1");
    assert_string_equal(order[1]->name, "10.0.0.4:1");
    assert_string_equal(order[2]->name, "10.0.0.2:1");
    /* A blacklisted server goes last, after even the ERR one. */
    spy_blobroute_read_order(g, 2, blocked_port, "10.0.0.3:1", order);
    assert_string_equal(order[0]->name, "10.0.0.4:1");
    assert_string_equal(order[1]->name, "10.0.0.2:1");
    assert_string_equal(order[2]->name, "10.0.0.1:1");
    assert_string_equal(order[3]->name, "10.0.0.3:1");
    spy_blobroute_unref(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_minimal_and_v6),
        cmocka_unit_test(test_parse_writability),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_too_many_servers),
        cmocka_unit_test(test_choose_filters),
        cmocka_unit_test(test_choose_avoids_blacklisted),
        cmocka_unit_test(test_choose_distribution),
        cmocka_unit_test(test_read_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
