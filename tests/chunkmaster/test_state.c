/* test_state.c - the chunkmaster's health state machine and route table,
 * driven by an injected clock (no sleeping): when servers turn STALE and
 * DOWN, when groups take writes, operator flags, and the route's JSON. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "chunkmaster/state.h"
#include "common/status.h"

#define RW_MS   15000
#define DOWN_MS 60000

static struct spy_state *new_state(int min_healthy)
{
    struct spy_health_config cfg = {
        .rw_timeout_ms = RW_MS, .down_timeout_ms = DOWN_MS, .min_healthy = min_healthy};
    struct spy_state *st = spy_state_new(&cfg);
    assert_non_null(st);
    return st;
}

static struct spy_report report_of(uint32_t group, const char *ip, int port)
{
    struct spy_report r;
    memset(&r, 0, sizeof(r));
    r.group_id = group;
    snprintf(r.key.ip, sizeof(r.key.ip), "%s", ip);
    r.key.port = port;
    r.total_free_space = 1000;
    return r;
}

static struct spy_server_key key_of(const char *ip, int port)
{
    struct spy_server_key k;
    memset(&k, 0, sizeof(k));
    snprintf(k.ip, sizeof(k.ip), "%s", ip);
    k.port = port;
    return k;
}

/* report: sends one report and expects it to be accepted. */
static void report(struct spy_state *st, uint32_t group, int port, int64_t now)
{
    struct spy_report r = report_of(group, "127.0.0.1", port);
    const struct spy_server *s;
    int is_new;
    assert_int_equal(spy_state_report(st, &r, now, &s, &is_new), SPY_OK);
    assert_int_equal(s->last_report_ms, now);
}

static enum spy_server_state state_at(struct spy_state *st, int port, int64_t now)
{
    struct spy_server_key k = key_of("127.0.0.1", port);
    const struct spy_server *s = spy_state_find(st, &k);
    assert_non_null(s);
    return spy_state_of(st, s, now);
}

static void test_first_report_registers_in_reported_group(void **state)
{
    (void)state;
    struct spy_state *st = new_state(2);
    struct spy_report r = report_of(4, "127.0.0.1", 8001);
    const struct spy_server *s;
    int is_new;
    assert_int_equal(spy_state_report(st, &r, 100, &s, &is_new), SPY_OK);
    assert_int_equal(is_new, 1);
    assert_int_equal(s->r.group_id, 4);
    assert_int_equal(spy_state_count(st), 1);
    assert_int_equal(spy_state_report(st, &r, 200, &s, &is_new), SPY_OK);
    assert_int_equal(is_new, 0);
    assert_int_equal(spy_state_count(st), 1);
    assert_int_equal(spy_state_of(st, s, 200), SPY_STATE_RW);
    spy_state_free(st);
}

static void test_silence_turns_stale_then_down_and_report_restores(void **state)
{
    (void)state;
    struct spy_state *st = new_state(1);
    report(st, 1, 8001, 0);
    assert_int_equal(state_at(st, 8001, RW_MS), SPY_STATE_RW);
    assert_true(spy_state_group_writable(st, 1, RW_MS));
    assert_int_equal(state_at(st, 8001, RW_MS + 1), SPY_STATE_STALE);
    assert_false(spy_state_group_writable(st, 1, RW_MS + 1));
    assert_int_equal(state_at(st, 8001, DOWN_MS), SPY_STATE_STALE);
    assert_int_equal(state_at(st, 8001, DOWN_MS + 1), SPY_STATE_DOWN);
    report(st, 1, 8001, DOWN_MS + 5000);
    assert_int_equal(state_at(st, 8001, DOWN_MS + 5000), SPY_STATE_RW);
    assert_true(spy_state_group_writable(st, 1, DOWN_MS + 5000));
    spy_state_free(st);
}

static void test_group_needs_n_rw_servers(void **state)
{
    (void)state;
    struct spy_state *st = new_state(2);
    report(st, 1, 8001, 0);
    assert_false(spy_state_group_writable(st, 1, 0));
    report(st, 1, 8002, 0);
    assert_true(spy_state_group_writable(st, 1, 0));
    /* one goes silent: the group stops taking writes when it turns STALE */
    report(st, 1, 8001, 10000);
    assert_true(spy_state_group_writable(st, 1, RW_MS));
    assert_false(spy_state_group_writable(st, 1, RW_MS + 1));
    /* a third healthy server makes up for it */
    report(st, 1, 8003, RW_MS);
    assert_true(spy_state_group_writable(st, 1, RW_MS + 1));
    /* groups are independent */
    assert_false(spy_state_group_writable(st, 2, 0));
    spy_state_free(st);
}

static void test_read_only_server_is_healthy_but_not_writable(void **state)
{
    (void)state;
    struct spy_state *st = new_state(2);
    report(st, 1, 8001, 0);
    report(st, 1, 8002, 0);
    struct spy_report r = report_of(1, "127.0.0.1", 8003);
    r.read_only = 1;
    const struct spy_server *s;
    int is_new;
    assert_int_equal(spy_state_report(st, &r, 0, &s, &is_new), SPY_OK);
    assert_int_equal(spy_state_of(st, s, 0), SPY_STATE_READONLY);
    assert_int_equal(spy_state_status_code(SPY_STATE_READONLY), SPY_STATUS_RO);
    assert_true(spy_state_group_writable(st, 1, 0)); /* two RW remain */
    r.key.port = 8002;
    assert_int_equal(spy_state_report(st, &r, 0, &s, &is_new), SPY_OK);
    assert_false(spy_state_group_writable(st, 1, 0)); /* one RW left */
    spy_state_free(st);
}

static void test_other_group_report_is_refused(void **state)
{
    (void)state;
    struct spy_state *st = new_state(2);
    report(st, 1, 8001, 0);
    struct spy_report r = report_of(2, "127.0.0.1", 8001);
    r.total_free_space = 5;
    const struct spy_server *s = NULL;
    int is_new = -1;
    assert_int_equal(spy_state_report(st, &r, 50, &s, &is_new), SPY_EEXISTS);
    struct spy_server_key k = key_of("127.0.0.1", 8001);
    const struct spy_server *known = spy_state_find(st, &k);
    assert_int_equal(known->r.group_id, 1);
    assert_int_equal(known->r.total_free_space, 1000);
    assert_int_equal(known->last_report_ms, 0);
    spy_state_free(st);
}

static void test_draining_server_blocks_its_group(void **state)
{
    (void)state;
    struct spy_state *st = new_state(2);
    report(st, 1, 8001, 0);
    report(st, 1, 8002, 0);
    report(st, 1, 8003, 0);
    struct spy_server_key k = key_of("127.0.0.1", 8003);
    assert_int_equal(spy_state_set_draining(st, &k, 1), SPY_OK);
    assert_int_equal(state_at(st, 8003, 0), SPY_STATE_DRAINING);
    assert_false(spy_state_group_writable(st, 1, 0));
    /* silence still wins over the operator flag */
    assert_int_equal(state_at(st, 8003, RW_MS + 1), SPY_STATE_STALE);
    assert_int_equal(spy_state_set_draining(st, &k, 0), SPY_OK);
    assert_true(spy_state_group_writable(st, 1, 0));
    struct spy_server_key unknown = key_of("127.0.0.1", 9999);
    assert_int_equal(spy_state_set_draining(st, &unknown, 1), SPY_ENOTFOUND);
    spy_state_free(st);
}

static void test_draining_group(void **state)
{
    (void)state;
    struct spy_state *st = new_state(2);
    report(st, 1, 8001, 0);
    report(st, 1, 8002, 0);
    report(st, 2, 8003, 0);
    report(st, 2, 8004, 0);
    assert_int_equal(spy_state_set_group_draining(st, 1, 1), SPY_OK);
    assert_false(spy_state_group_writable(st, 1, 0));
    assert_true(spy_state_group_writable(st, 2, 0));
    assert_int_equal(state_at(st, 8001, 0), SPY_STATE_DRAINING);
    json_t *g = spy_state_group_json(st, 1, 0);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(g, 0), "GlobalStatus")),
                     SPY_GLOBAL_STATUS_DRAINING);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(g, 0), "Status")),
                     SPY_STATUS_RO);
    json_decref(g);
    assert_int_equal(spy_state_set_group_draining(st, 1, 0), SPY_OK);
    assert_true(spy_state_group_writable(st, 1, 0));
    assert_int_equal(spy_state_set_group_draining(st, 9, 1), SPY_ENOTFOUND);
    spy_state_free(st);
}

static void test_remove_only_dead_unless_forced(void **state)
{
    (void)state;
    struct spy_state *st = new_state(2);
    report(st, 1, 8001, 0);
    report(st, 1, 8002, 0);
    struct spy_server_key a = key_of("127.0.0.1", 8001), b = key_of("127.0.0.1", 8002);
    assert_int_equal(spy_state_remove(st, &a, 0, 0), SPY_EBUSY);
    assert_int_equal(spy_state_remove(st, &a, 0, RW_MS + 1), SPY_EBUSY); /* STALE */
    assert_int_equal(spy_state_remove(st, &a, 0, DOWN_MS + 1), SPY_OK);
    assert_null(spy_state_find(st, &a));
    assert_int_equal(spy_state_remove(st, &a, 0, DOWN_MS + 1), SPY_ENOTFOUND);
    assert_int_equal(spy_state_remove(st, &b, 1, 0), SPY_OK);
    assert_int_equal(spy_state_count(st), 0);
    /* a removed server may report again, even into another group */
    report(st, 3, 8001, DOWN_MS + 2);
    assert_int_equal(spy_state_find(st, &a)->r.group_id, 3);
    spy_state_free(st);
}

static void test_declare_is_all_or_nothing(void **state)
{
    (void)state;
    struct spy_state *st = new_state(2);
    report(st, 1, 8001, 0);
    struct spy_server_decl decls[2] = {{.group_id = 2}, {.group_id = 2}};
    decls[0].key = key_of("127.0.0.1", 8005);
    decls[1].key = key_of("127.0.0.1", 8001); /* known in group 1 */
    char err[128];
    assert_int_equal(spy_state_declare(st, decls, 2, err, sizeof(err)), SPY_EEXISTS);
    assert_non_null(strstr(err, "127.0.0.1:8001 is already registered in group 1"));
    assert_int_equal(spy_state_count(st), 1);
    decls[1].group_id = 1;
    assert_int_equal(spy_state_declare(st, decls, 2, err, sizeof(err)), SPY_OK);
    assert_int_equal(spy_state_count(st), 2);
    assert_int_equal(state_at(st, 8005, 0), SPY_STATE_INIT);
    assert_int_equal(state_at(st, 8001, 0), SPY_STATE_RW); /* untouched */
    /* INIT servers never count as healthy, and may be removed */
    struct spy_server_key k = key_of("127.0.0.1", 8005);
    assert_int_equal(spy_state_remove(st, &k, 0, 0), SPY_OK);
    spy_state_free(st);
}

/* Transition log: each change is announced once, with old and new state. */
struct changes {
    int count;
    enum spy_server_state last_old, last_new;
};

static void count_change(void *arg, const struct spy_server *s, enum spy_server_state old_state,
                         enum spy_server_state new_state)
{
    (void)s;
    struct changes *c = arg;
    c->count++;
    c->last_old = old_state;
    c->last_new = new_state;
}

static void test_tick_announces_each_change_once(void **state)
{
    (void)state;
    struct spy_state *st = new_state(1);
    struct changes c = {0};
    report(st, 1, 8001, 0);
    spy_state_tick(st, 0, count_change, &c);
    assert_int_equal(c.count, 1);
    assert_int_equal(c.last_old, SPY_STATE_INIT);
    assert_int_equal(c.last_new, SPY_STATE_RW);
    spy_state_tick(st, 1000, count_change, &c);
    assert_int_equal(c.count, 1);
    spy_state_tick(st, RW_MS + 1, count_change, &c);
    assert_int_equal(c.count, 2);
    assert_int_equal(c.last_new, SPY_STATE_STALE);
    spy_state_tick(st, DOWN_MS + 1, count_change, &c);
    assert_int_equal(c.count, 3);
    assert_int_equal(c.last_old, SPY_STATE_STALE);
    assert_int_equal(c.last_new, SPY_STATE_DOWN);
    report(st, 1, 8001, DOWN_MS + 2);
    spy_state_tick(st, DOWN_MS + 2, count_change, &c);
    assert_int_equal(c.count, 4);
    assert_int_equal(c.last_new, SPY_STATE_RW);
    spy_state_free(st);
}

static void test_route_json_shape(void **state)
{
    (void)state;
    struct spy_state *st = new_state(2);
    report(st, 2, 8003, 0);
    report(st, 1, 8002, 0);
    report(st, 1, 8001, 0);
    struct spy_server_decl d = {.group_id = 3};
    d.key = key_of("::1", 8009);
    char err[64];
    assert_int_equal(spy_state_declare(st, &d, 1, err, sizeof(err)), SPY_OK);
    json_t *route = spy_state_route_json(st, 4500);
    assert_non_null(route);
    char *text = json_dumps(route, JSON_COMPACT);
    /* groups ascending, servers ordered by address within a group */
    assert_non_null(strstr(text, "{\"1\":[{\"GroupId\":1,\"Ip\":\"127.0.0.1\",\"Port\":8001,"));
    assert_true(strstr(text, "\"Port\":8001") < strstr(text, "\"Port\":8002"));
    assert_true(strstr(text, "\"2\":[") < strstr(text, "\"3\":["));
    free(text);
    json_t *g1 = json_object_get(route, "1");
    assert_int_equal(json_array_size(g1), 2);
    json_t *e = json_array_get(g1, 0);
    assert_int_equal(json_integer_value(json_object_get(e, "Status")), SPY_STATUS_RW);
    assert_string_equal(json_string_value(json_object_get(e, "State")), "RW");
    assert_true(json_is_true(json_object_get(e, "GroupWritable")));
    assert_int_equal(json_integer_value(json_object_get(e, "LastReportAge")), 4);
    assert_int_equal(json_integer_value(json_object_get(e, "TotalFreeSpace")), 1000);
    assert_int_equal(json_integer_value(json_object_get(e, "GlobalStatus")), 0);
    const char *fields[] = {"MaxFreeSpace", "PendingWrites", "WritingCount",  "ReadingCount",
                            "ReadOnly",     "Draining",      "GroupDraining", "DataDir",
                            "TotalChunks",  "Version"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (json_object_get(e, fields[i]) == NULL)
            fail_msg("route entry lacks %s", fields[i]);
    /* group 2 has a single server: not writable with n = 2 */
    json_t *e2 = json_array_get(json_object_get(route, "2"), 0);
    assert_true(json_is_false(json_object_get(e2, "GroupWritable")));
    /* the declared server: INIT, never reported */
    json_t *e3 = json_array_get(json_object_get(route, "3"), 0);
    assert_string_equal(json_string_value(json_object_get(e3, "State")), "INIT");
    assert_int_equal(json_integer_value(json_object_get(e3, "Status")), SPY_STATUS_INIT);
    assert_true(json_is_null(json_object_get(e3, "LastReportAge")));
    assert_string_equal(json_string_value(json_object_get(e3, "Ip")), "::1");
    json_decref(route);
    assert_null(spy_state_group_json(st, 7, 0));
    spy_state_free(st);
}

static void test_restore_keeps_flags_and_age(void **state)
{
    (void)state;
    struct spy_state *st = new_state(1);
    struct spy_server s;
    memset(&s, 0, sizeof(s));
    s.r = report_of(5, "10.0.0.1", 7000);
    s.reported = 1;
    s.draining = 1;
    s.last_report_ms = -20000; /* reported 20 s before this clock's zero */
    assert_int_equal(spy_state_restore_server(st, &s), SPY_OK);
    assert_int_equal(spy_state_restore_group(st, 5, 1), SPY_OK);
    s.r.total_free_space = 77; /* a second copy replaces the first */
    assert_int_equal(spy_state_restore_server(st, &s), SPY_OK);
    assert_int_equal(spy_state_count(st), 1);
    const struct spy_server *got = spy_state_at(st, 0);
    assert_int_equal(got->r.total_free_space, 77);
    assert_int_equal(spy_state_of(st, got, 0), SPY_STATE_STALE);
    assert_true(spy_state_group_draining(st, 5));
    struct spy_state_summary sum;
    spy_state_summarize(st, 0, &sum);
    assert_int_equal(sum.groups, 1);
    assert_int_equal(sum.groups_writable, 0);
    assert_int_equal(sum.by_state[SPY_STATE_STALE], 1);
    spy_state_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_report_registers_in_reported_group),
        cmocka_unit_test(test_silence_turns_stale_then_down_and_report_restores),
        cmocka_unit_test(test_group_needs_n_rw_servers),
        cmocka_unit_test(test_read_only_server_is_healthy_but_not_writable),
        cmocka_unit_test(test_other_group_report_is_refused),
        cmocka_unit_test(test_draining_server_blocks_its_group),
        cmocka_unit_test(test_draining_group),
        cmocka_unit_test(test_remove_only_dead_unless_forced),
        cmocka_unit_test(test_declare_is_all_or_nothing),
        cmocka_unit_test(test_tick_announces_each_change_once),
        cmocka_unit_test(test_route_json_shape),
        cmocka_unit_test(test_restore_keeps_flags_and_age),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
