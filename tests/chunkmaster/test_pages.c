/* test_pages.c - the status page's HTML (escaping, rows, sizes) and the
 * Prometheus text of /metrics, rendered from a state built in memory. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunkmaster/metrics.h"
#include "chunkmaster/status_page.h"
#include "common/status.h"

static struct spy_state *two_group_state(void)
{
    struct spy_health_config cfg = {
        .rw_timeout_ms = 15000, .down_timeout_ms = 60000, .min_healthy = 2};
    struct spy_state *st = spy_state_new(&cfg);
    assert_non_null(st);
    const int ports[] = {8001, 8002, 8003};
    for (int i = 0; i < 3; i++) {
        struct spy_report r;
        memset(&r, 0, sizeof(r));
        r.group_id = i < 2 ? 1 : 2;
        snprintf(r.key.ip, sizeof(r.key.ip), "%s", i == 2 ? "::1" : "127.0.0.1");
        r.key.port = ports[i];
        r.total_free_space = 3ull << 30;
        r.total_chunks = 4;
        snprintf(r.data_dir, sizeof(r.data_dir), "/data/<script>alert(%d)</script>", i);
        snprintf(r.version, sizeof(r.version), "speedy \"0.1\"");
        const struct spy_server *s;
        int is_new;
        assert_int_equal(spy_state_report(st, &r, 0, &s, &is_new), SPY_OK);
    }
    return st;
}

static void test_escape_and_sizes(void **state)
{
    (void)state;
    char buf[64];
    spy_status_page_escape("<a href='x'>&\"</a>", buf, sizeof(buf));
    assert_string_equal(buf, "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;");
    spy_status_page_escape("<<<<", buf, 9); /* cut at an entity boundary, never inside */
    assert_string_equal(buf, "&lt;&lt;");
    spy_status_page_bytes(0, buf, sizeof(buf));
    assert_string_equal(buf, "0 B");
    spy_status_page_bytes(1023, buf, sizeof(buf));
    assert_string_equal(buf, "1023 B");
    spy_status_page_bytes(1536, buf, sizeof(buf));
    assert_string_equal(buf, "1.5 KiB");
    spy_status_page_bytes(3ull << 30, buf, sizeof(buf));
    assert_string_equal(buf, "3.0 GiB");
    spy_status_page_bytes(40ull << 40, buf, sizeof(buf));
    assert_string_equal(buf, "40 TiB");
}

static void test_status_page_rows(void **state)
{
    (void)state;
    struct spy_state *st = two_group_state();
    struct spy_status_page_info info = {
        .refresh_s = 7, .uptime_ms = 65000, .db_ok = 1, .min_healthy = 2};
    char *html;
    size_t len;
    assert_int_equal(spy_status_page_render(st, 3000, &info, &html, &len), SPY_OK);
    assert_int_equal(strlen(html), len);
    assert_non_null(strstr(html, "<meta http-equiv=\"refresh\" content=\"7\">"));
    assert_non_null(strstr(html, "2 groups, 1 writable; 3 servers: 3 RW. Database: ok."));
    assert_non_null(strstr(html, "<td class=\"num\">1</td><td>yes</td>"
                                 "<td title=\"/data/&lt;script&gt;alert(0)&lt;/script&gt;\">"
                                 "127.0.0.1:8001</td><td class=\"state\">RW</td>"
                                 "<td class=\"num\">3.0 GiB</td>"));
    assert_non_null(strstr(html, "[::1]:8003</td>"));
    assert_non_null(strstr(html, "<td class=\"num\">3 s ago</td><td>speedy &quot;0.1&quot;</td>"));
    assert_null(strstr(html, "<script>"));
    /* the lone server of group 2 cannot make its group writable with n = 2 */
    assert_non_null(strstr(html, "<td class=\"num\">2</td><td>no</td>"));
    free(html);

    info.db_ok = 0;
    info.pending_writes = 3;
    assert_int_equal(spy_status_page_render(st, 20000, &info, &html, &len), SPY_OK);
    assert_non_null(strstr(html, "0 writable; 3 servers: 3 STALE. Database: UNREACHABLE "
                                 "(3 writes waiting)"));
    free(html);
    spy_state_free(st);
}

static void test_status_page_empty(void **state)
{
    (void)state;
    struct spy_health_config cfg = {.rw_timeout_ms = 1, .down_timeout_ms = 2, .min_healthy = 1};
    struct spy_state *st = spy_state_new(&cfg);
    struct spy_status_page_info info = {.refresh_s = 5, .db_ok = 1, .min_healthy = 1};
    char *html;
    size_t len;
    assert_int_equal(spy_status_page_render(st, 0, &info, &html, &len), SPY_OK);
    assert_non_null(strstr(html, "No chunkserver has reported yet."));
    assert_null(strstr(html, "<table"));
    free(html);
    spy_state_free(st);
}

static void test_metrics_text(void **state)
{
    (void)state;
    struct spy_state *st = two_group_state();
    struct spy_metrics_counters c = {
        .http_requests = 12, .reports = 3, .fid_ranges = 2, .fids = 200};
    struct spy_worker_stats ws = {.db_ok = 1, .pending_writes = 4};
    char *text;
    size_t len;
    assert_int_equal(spy_metrics_render(st, 1000, &c, &ws, 9000, &text, &len), SPY_OK);
    const char *expect[] = {
        "# TYPE speedy_master_servers gauge\n",
        "speedy_master_servers{state=\"RW\"} 3\n",
        "speedy_master_servers{state=\"DOWN\"} 0\n",
        "speedy_master_groups 2\n",
        "speedy_master_groups_writable 1\n",
        "speedy_master_group_writable{group=\"1\"} 1\n",
        "speedy_master_group_writable{group=\"2\"} 0\n",
        "speedy_master_server_status{group=\"1\",server=\"127.0.0.1:8001\"} 1\n",
        "speedy_master_server_free_bytes{group=\"2\",server=\"[::1]:8003\"} 3221225472\n",
        "speedy_master_server_last_report_age_seconds{group=\"1\",server=\"127.0.0.1:8002\"} 1\n",
        "speedy_master_uptime_seconds 9\n",
        "# TYPE speedy_master_http_requests_total counter\nspeedy_master_http_requests_total 12\n",
        "speedy_master_fids_total 200\n",
        "speedy_master_db_up 1\n",
        "speedy_master_db_pending_writes 4\n",
    };
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++)
        if (strstr(text, expect[i]) == NULL)
            fail_msg("metrics lack: %s", expect[i]);
    /* every line is a comment or "name{labels} value" */
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n"))
        if (line[0] != '#' && (strncmp(line, "speedy_master_", 14) != 0 || !strchr(line, ' ')))
            fail_msg("bad metrics line: %s", line);
    free(text);
    spy_state_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_and_sizes),
        cmocka_unit_test(test_status_page_rows),
        cmocka_unit_test(test_status_page_empty),
        cmocka_unit_test(test_metrics_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
