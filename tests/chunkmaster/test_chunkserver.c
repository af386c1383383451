/* test_chunkserver.c - real spy_servers reporting to a real chunkmaster
 * (MariaDB started by the test): reports register them, a kill -9 turns the
 * server and its group not writable within the configured time, and the
 * restarted server brings both back. Skipped if spy_server is not built. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#define RW_TIMEOUT_S   2
#define DOWN_TIMEOUT_S 4
#define REPORT_S       1 /* harness_start_chunkserver's --report_interval */
#define TICK_S         1 /* the master's health tick (state changes are computed on read) */

static int setup(void **state)
{
    static struct harness h;
    if (harness_setup(&h) != 0)
        return -1;
    *state = &h;
    return 0;
}

static int teardown(void **state)
{
    if (*state != NULL) /* NULL when setup failed (and cleaned up after itself) */
        harness_teardown(*state);
    return 0;
}

static void test_killed_chunkserver_turns_unwritable_and_returns(void **state)
{
    struct harness *h = *state;
    int master = harness_free_port();
    char rw[32], down[32];
    snprintf(rw, sizeof(rw), "--rw_timeout=%d", RW_TIMEOUT_S);
    snprintf(down, sizeof(down), "--down_timeout=%d", DOWN_TIMEOUT_S);
    pid_t mpid = harness_start_master(h, master, (const char *[]){rw, down, "-n=2", NULL});
    assert_true(mpid > 0);
    int port_a = harness_free_port(), port_b = harness_free_port();
    while (port_b == port_a || port_b == master)
        port_b = harness_free_port();
    pid_t a = harness_start_chunkserver(h, port_a, 1, master);
    if (a == 0)
        skip(); /* spy_server not built */
    pid_t b = harness_start_chunkserver(h, port_b, 1, master);
    assert_true(a > 0 && b > 0);
    assert_true(harness_wait_state(master, port_a, "RW", 1, 10000) >= 0);
    assert_true(harness_wait_state(master, port_b, "RW", 1, 10000) >= 0);
    json_t *e = harness_route_entry(master, port_a);
    assert_true(json_integer_value(json_object_get(e, "TotalChunks")) == 2);
    assert_true(json_integer_value(json_object_get(e, "TotalFreeSpace")) > 0);
    json_decref(e);

    assert_true(harness_stop(h, b, SIGKILL) >= 0);
    long stale_ms = harness_wait_state(master, port_b, "STALE", 0, 15000);
    assert_true(stale_ms >= 0);
    /* its last report was at most one interval before the kill */
    assert_true(stale_ms >= (RW_TIMEOUT_S - REPORT_S) * 1000);
    assert_true(stale_ms <= (RW_TIMEOUT_S + TICK_S) * 1000 + 500);
    /* the survivor is still RW, but alone it cannot make its group writable */
    assert_true(harness_wait_state(master, port_a, "RW", 0, 0) >= 0);
    long down_ms = harness_wait_state(master, port_b, "DOWN", 0, 15000);
    assert_true(down_ms >= 0);

    b = harness_start_chunkserver(h, port_b, 1, master);
    assert_true(b > 0);
    long back_ms = harness_wait_state(master, port_b, "RW", 1, 10000);
    assert_true(back_ms >= 0);
    assert_true(harness_wait_state(master, port_a, "RW", 1, 0) >= 0);
    printf("chunkserver killed: STALE (group not writable) after %ld ms, DOWN %ld ms later; "
           "restarted: RW and writable after %ld ms (rw_timeout %d s, down_timeout %d s, "
           "reports every %d s)\n",
           stale_ms, down_ms, back_ms, RW_TIMEOUT_S, DOWN_TIMEOUT_S, REPORT_S);
    assert_true(harness_stop(h, a, SIGTERM) >= 0);
    assert_true(harness_stop(h, b, SIGTERM) >= 0);
    int status = harness_stop(h, mpid, SIGTERM);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_killed_chunkserver_turns_unwritable_and_returns),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
