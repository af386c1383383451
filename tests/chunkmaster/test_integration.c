/* test_integration.c - chunkmaster processes against a real MariaDB started
 * by the test (scripts/mariadb, temp dir, free port): concurrent fid
 * allocation by two masters, reports and the route table, bad input, health
 * timeouts, operator routes, restarts, start-up failures.
 *
 * Each test uses its own database (-d) so tests do not see each other's
 * servers. Timing only bounds how long a test waits, never what it accepts. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define FID_CLIENTS  4    /* processes asking for fids, two per master */
#define FID_REQUESTS 1000 /* ranges each client asks for */

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

/* start_master: a master on a fresh port with its own database name and the
 * given extra flags (NULL-terminated, at most 8). */
static int start_master(struct harness *h, const char *db, pid_t *pid, const char *const *flags)
{
    int port = harness_free_port();
    char dbflag[64];
    snprintf(dbflag, sizeof(dbflag), "-d=%s", db);
    const char *extra[12] = {dbflag};
    for (int i = 0; flags != NULL && flags[i] != NULL && i < 8; i++)
        extra[i + 1] = flags[i];
    *pid = harness_start_master(h, port, extra);
    assert_true(*pid > 0);
    return port;
}

/* stop_master: SIGTERM, and the master must exit 0 (clean shutdown). */
static void stop_master(struct harness *h, pid_t pid)
{
    int status = harness_stop(h, pid, SIGTERM);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* post: a POST whose answer must have status 'want'; returns the body. */
static char *post(int port, const char *path, const char *body, int want)
{
    char *resp;
    int status = harness_http(port, "POST", path, body, strlen(body), &resp);
    if (status != want)
        fail_msg("POST %s %s: got %d (%s), want %d", path, body, status, resp ? resp : "", want);
    return resp;
}

/* expect_error_n: the answer to a body of len bytes has status 'want' and a
 * JSON Error naming 'needle'. */
static void expect_error_n(int port, const char *method, const char *path, const char *body,
                           size_t len, int want, const char *needle)
{
    char *resp;
    int status = harness_http(port, method, path, body, len, &resp);
    json_t *v = resp != NULL ? json_loads(resp, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(v, "Error"));
    if (status != want || msg == NULL || strstr(msg, needle) == NULL)
        fail_msg("%s %s: got %d %s, want %d with an Error mentioning \"%s\"", method, path, status,
                 resp ? resp : "(none)", want, needle);
    json_decref(v);
    free(resp);
}

/* expect_error: expect_error_n for a text body (or none). */
static void expect_error(int port, const char *method, const char *path, const char *body, int want,
                         const char *needle)
{
    expect_error_n(port, method, path, body, body != NULL ? strlen(body) : 0, want, needle);
}

struct fid_range {
    uint64_t begin, end, count;
};

/* fid_client: a child process asking one master for FID_REQUESTS ranges of
 * varying sizes, appending (begin, end, count) to its file. */
static void fid_client(int port, int index, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        _exit(2);
    for (int j = 0; j < FID_REQUESTS; j++) {
        char url[64], *body;
        uint64_t count = 1 + (uint64_t)(j * 37 + index * 11) % 500;
        snprintf(url, sizeof(url), "/v1/chunkmaster/fid?count=%" PRIu64, count);
        int status = harness_http(port, "GET", url, NULL, 0, &body);
        json_t *v = status == 200 ? json_loads(body, 0, NULL) : NULL;
        free(body);
        struct fid_range r = {(uint64_t)json_integer_value(json_object_get(v, "FidBegin")),
                              (uint64_t)json_integer_value(json_object_get(v, "FidEnd")), count};
        json_decref(v);
        if (status != 200 || fwrite(&r, sizeof(r), 1, f) != 1)
            _exit(3);
    }
    _exit(fclose(f) == 0 ? 0 : 4);
}

static int compare_ranges(const void *a, const void *b)
{
    const struct fid_range *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* read_ranges: every client's file into one array of FID_CLIENTS*FID_REQUESTS. */
static struct fid_range *read_ranges(struct harness *h)
{
    struct fid_range *all = calloc(FID_CLIENTS * FID_REQUESTS, sizeof(*all));
    assert_non_null(all);
    for (int i = 0; i < FID_CLIENTS; i++) {
        char path[400];
        snprintf(path, sizeof(path), "%s/fids-%d", h->dir, i);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        assert_int_equal(fread(all + i * FID_REQUESTS, sizeof(*all), FID_REQUESTS, f),
                         FID_REQUESTS);
        fclose(f);
    }
    return all;
}

static void test_two_masters_never_hand_out_the_same_fid(void **state)
{
    struct harness *h = *state;
    pid_t a, b;
    int port_a = start_master(h, "t_fids", &a, NULL);
    int port_b = start_master(h, "t_fids", &b, NULL);
    long start = harness_now_ms();
    pid_t kids[FID_CLIENTS];
    for (int i = 0; i < FID_CLIENTS; i++) {
        char path[400];
        snprintf(path, sizeof(path), "%s/fids-%d", h->dir, i);
        kids[i] = fork();
        if (kids[i] == 0)
            fid_client(i % 2 ? port_b : port_a, i, path);
        assert_true(kids[i] > 0);
    }
    for (int i = 0; i < FID_CLIENTS; i++) {
        int status;
        assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    long took = harness_now_ms() - start;
    struct fid_range *all = read_ranges(h);
    size_t n = FID_CLIENTS * FID_REQUESTS;
    qsort(all, n, sizeof(*all), compare_ranges);
    assert_true(all[0].begin >= 1); /* fid 0 is never handed out */
    uint64_t gaps = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(all[i].end - all[i].begin, all[i].count);
        if (i > 0 && all[i].begin < all[i - 1].end)
            fail_msg("ranges overlap: [%" PRIu64 ",%" PRIu64 ") and [%" PRIu64 ",%" PRIu64 ")",
                     all[i - 1].begin, all[i - 1].end, all[i].begin, all[i].end);
        if (i > 0 && all[i].begin > all[i - 1].end)
            gaps++;
    }
    /* nothing failed, so nothing was skipped either: the ranges tile [1, end) */
    assert_int_equal(gaps, 0);
    printf("fids: %zu ranges (%" PRIu64 " fids) from 2 masters in %ld ms, %.0f ranges/s\n", n,
           all[n - 1].end - all[0].begin, took, n * 1000.0 / (took > 0 ? took : 1));
    free(all);
    stop_master(h, a);
    stop_master(h, b);
}

/* route_group: the array of one group in the route table. */
static size_t group_size(json_t *route, const char *group)
{
    return json_array_size(json_object_get(route, group));
}

static void test_reports_make_servers_appear(void **state)
{
    struct harness *h = *state;
    pid_t pid;
    int port = start_master(h, "t_reports", &pid, NULL);
    json_t *route = harness_get_json(port, "/v1/chunkmaster/route");
    assert_int_equal(json_object_size(route), 0);
    json_decref(route);
    const int servers[4][2] = {{1, 9001}, {1, 9002}, {2, 9003}, {2, 9004}};
    for (int i = 0; i < 4; i++)
        assert_int_equal(harness_report(port, servers[i][0], servers[i][1]), 200);
    route = harness_get_json(port, "/v1/chunkmaster/route");
    assert_int_equal(json_object_size(route), 2);
    assert_int_equal(group_size(route, "1"), 2);
    assert_int_equal(group_size(route, "2"), 2);
    json_t *e = json_array_get(json_object_get(route, "2"), 1);
    assert_int_equal(json_integer_value(json_object_get(e, "Port")), 9004);
    assert_int_equal(json_integer_value(json_object_get(e, "Status")), 1);
    assert_string_equal(json_string_value(json_object_get(e, "State")), "RW");
    assert_true(json_is_true(json_object_get(e, "GroupWritable")));
    assert_int_equal(json_integer_value(json_object_get(e, "TotalFreeSpace")), 1073741824);
    json_decref(route);
    json_t *g = harness_get_json(port, "/v1/chunkmaster/1/groupinfo");
    assert_int_equal(json_array_size(g), 2);
    json_decref(g);
    expect_error(port, "GET", "/v1/chunkmaster/9/groupinfo", NULL, 404, "no server in group 9");
    char *body;
    assert_int_equal(harness_http(port, "GET", "/v1/chunkmaster/checkerror", NULL, 0, &body), 200);
    assert_string_equal(body, "0");
    free(body);
    assert_int_equal(harness_http(port, "GET", "/metrics", NULL, 0, &body), 200);
    assert_non_null(strstr(body, "\nspeedy_master_groups_writable 2\n"));
    assert_non_null(strstr(body, "\nspeedy_master_reports_total 4\n"));
    free(body);
    stop_master(h, pid);
}

static void test_bad_input_is_refused_with_a_reason(void **state)
{
    struct harness *h = *state;
    pid_t pid;
    int port = start_master(h, "t_bad", &pid, NULL);
    const char *report = "/v1/chunkserver/reportinfo";
    struct {
        const char *body, *needle;
    } cases[] = {
        {"{\"GroupId\":1,", "malformed JSON"},
        {"", "empty body"},
        {"[]", "expected a JSON object"},
        {"{\"GroupId\":1,\"Ip\":\"127.0.0.1\",\"Port\":1,\"Colour\":\"red\"}",
         "unknown field 'Colour'"},
        {"{\"GroupId\":\"1\",\"Ip\":\"127.0.0.1\",\"Port\":1}", "'GroupId' must be a whole number"},
        {"{\"GroupId\":1,\"Ip\":\"0.0.0.0\",\"Port\":1}", "'Ip' must be an IPv4 or IPv6"},
        {"{\"GroupId\":1,\"Ip\":\"127.0.0.1\"}", "missing field 'Port'"},
        {"\xff\xfe\x00garbage", "malformed JSON"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_error_n(port, "POST", report, cases[i].body, i == 7 ? 10 : strlen(cases[i].body),
                       400, cases[i].needle);
    expect_error(port, "POST", "/v1/chunkserver/initserver", "{\"GroupId\":1}", 400,
                 "missing field 'Ip'");
    expect_error(port, "POST", "/v1/chunkmaster/group/drain", "{\"GroupId\":1,\"Draining\":1}", 400,
                 "'Draining' must be true or false");
    expect_error(port, "GET", "/v1/chunkmaster/fid?count=0", NULL, 400, "count must be");
    expect_error(port, "GET", "/v1/chunkmaster/fid?count=abc", NULL, 400, "count must be");
    expect_error(port, "GET", "/v1/chunkmaster/fid?n=5", NULL, 400, "unknown query parameter");
    expect_error(port, "GET", "/v1/chunkmaster/x1/groupinfo", NULL, 400, "group id must be");
    expect_error(port, "GET", report, NULL, 405, "use POST");
    expect_error(port, "DELETE", "/v1/chunkmaster/route", NULL, 405, "use GET");
    expect_error(port, "GET", "/v2/nothing", NULL, 404, "no such route");
    /* a server never silently changes group */
    assert_int_equal(harness_report(port, 1, 9100), 200);
    expect_error(port, "POST", report, "{\"GroupId\":2,\"Ip\":\"127.0.0.1\",\"Port\":9100}", 409,
                 "registered in group 1, not 2");
    /* a body declared over the 1 MiB limit: h2o answers 413 itself */
    char *resp;
    assert_int_equal(harness_http(port, "POST", report, NULL, 2u << 20, &resp), 413);
    free(resp);
    /* still alive and serving */
    json_t *e = harness_route_entry(port, 9100);
    assert_non_null(e);
    assert_int_equal(json_integer_value(json_object_get(e, "GroupId")), 1);
    json_decref(e);
    stop_master(h, pid);
}

static void test_silent_server_turns_stale_then_down_and_comes_back(void **state)
{
    struct harness *h = *state;
    pid_t pid;
    const char *flags[] = {"--rw_timeout=1", "--down_timeout=2", "-n=1", NULL};
    int port = start_master(h, "t_health", &pid, flags);
    assert_int_equal(harness_report(port, 1, 9201), 200);
    long reported = harness_now_ms();
    assert_true(harness_wait_state(port, 9201, "RW", 1, 1000) >= 0);
    long stale = harness_wait_state(port, 9201, "STALE", 0, 5000);
    assert_true(stale >= 0);
    long stale_after = harness_now_ms() - reported;
    assert_true(stale_after >= 1000); /* never before rw_timeout */
    assert_true(harness_wait_state(port, 9201, "DOWN", 0, 5000) >= 0);
    long down_after = harness_now_ms() - reported;
    assert_true(down_after >= 2000);
    char *body;
    assert_int_equal(harness_http(port, "GET", "/v1/chunkmaster/checkerror", NULL, 0, &body), 200);
    assert_string_equal(body, "1");
    free(body);
    /* the next report brings it straight back */
    assert_int_equal(harness_report(port, 1, 9201), 200);
    json_t *e = harness_route_entry(port, 9201);
    assert_string_equal(json_string_value(json_object_get(e, "State")), "RW");
    assert_true(json_is_true(json_object_get(e, "GroupWritable")));
    json_decref(e);
    printf("health: STALE seen %ld ms after the last report, DOWN %ld ms after "
           "(rw_timeout 1 s, down_timeout 2 s)\n",
           stale_after, down_after);
    stop_master(h, pid);
}

static void test_operator_routes(void **state)
{
    struct harness *h = *state;
    pid_t pid;
    int port = start_master(h, "t_ops", &pid, NULL);
    assert_int_equal(harness_report(port, 1, 9301), 200);
    assert_int_equal(harness_report(port, 1, 9302), 200);
    const char *drain = "/v1/chunkmaster/server/drain";
    char *r = post(port, drain, "{\"Ip\":\"127.0.0.1\",\"Port\":9301,\"Draining\":true}", 200);
    assert_non_null(strstr(r, "\"State\":\"DRAINING\""));
    assert_non_null(strstr(r, "\"GroupWritable\":false"));
    free(r);
    assert_true(harness_wait_state(port, 9302, "RW", 0, 0) >= 0); /* blocked by its peer */
    free(post(port, drain, "{\"Ip\":\"127.0.0.1\",\"Port\":9301,\"Draining\":false}", 200));
    assert_true(harness_wait_state(port, 9302, "RW", 1, 0) >= 0);
    r = post(port, "/v1/chunkmaster/group/drain", "{\"GroupId\":1,\"Draining\":true}", 200);
    assert_non_null(strstr(r, "\"GlobalStatus\":8"));
    free(r);
    assert_true(harness_wait_state(port, 9301, "DRAINING", 0, 0) >= 0);
    free(post(port, "/v1/chunkmaster/group/drain", "{\"GroupId\":1,\"Draining\":false}", 200));
    assert_true(harness_wait_state(port, 9301, "RW", 1, 0) >= 0);
    expect_error(port, "POST", "/v1/chunkmaster/group/drain", "{\"GroupId\":5,\"Draining\":true}",
                 404, "no server in group 5");
    expect_error(port, "POST", drain, "{\"Ip\":\"127.0.0.1\",\"Port\":1,\"Draining\":true}", 404,
                 "unknown server 127.0.0.1:1");
    const char *remove = "/v1/chunkmaster/server/remove";
    expect_error(port, "POST", remove, "{\"Ip\":\"127.0.0.1\",\"Port\":9302}", 409,
                 "is RW; only a DOWN or INIT server is removed");
    free(post(port, remove, "{\"Ip\":\"127.0.0.1\",\"Port\":9302,\"Force\":true}", 200));
    json_t *gone = harness_route_entry(port, 9302);
    assert_null(gone);
    expect_error(port, "POST", remove, "{\"Ip\":\"127.0.0.1\",\"Port\":9302}", 404,
                 "unknown server");
    /* declared servers start in INIT; a declaration never moves a server */
    free(post(port, "/v1/chunkserver/initserver",
              "{\"GroupId\":1,\"Ip\":\"127.0.0.1\",\"Port\":9303}", 200));
    assert_true(harness_wait_state(port, 9303, "INIT", -1, 0) >= 0);
    expect_error(port, "POST", "/v1/chunkserver/batchinitserver",
                 "[{\"GroupId\":2,\"Ip\":\"127.0.0.1\",\"Port\":9304},"
                 "{\"GroupId\":2,\"Ip\":\"127.0.0.1\",\"Port\":9301}]",
                 409, "127.0.0.1:9301 is already registered in group 1");
    assert_null(harness_route_entry(port, 9304)); /* all or nothing */
    free(post(port, "/v1/chunkserver/batchinitserver",
              "[{\"GroupId\":2,\"Ip\":\"127.0.0.1\",\"Port\":9304}]", 200));
    free(post(port, remove, "{\"Ip\":\"127.0.0.1\",\"Port\":9304}", 200)); /* INIT: no Force */
    stop_master(h, pid);
}

/* entry_flag: a boolean field of a server's route entry. */
static int entry_flag(int port, int server, const char *field)
{
    json_t *e = harness_route_entry(port, server);
    assert_non_null(e);
    int v = json_is_true(json_object_get(e, field));
    json_decref(e);
    return v;
}

static uint64_t fid_end(int port)
{
    json_t *v = harness_get_json(port, "/v1/chunkmaster/fid?count=10");
    assert_non_null(v);
    uint64_t end = (uint64_t)json_integer_value(json_object_get(v, "FidEnd"));
    json_decref(v);
    return end;
}

static void test_restart_keeps_servers_flags_and_fids(void **state)
{
    struct harness *h = *state;
    pid_t pid;
    int port = start_master(h, "t_restart", &pid, NULL);
    assert_int_equal(harness_report(port, 1, 9401), 200);
    assert_int_equal(harness_report(port, 1, 9402), 200);
    assert_int_equal(harness_report(port, 2, 9403), 200);
    free(post(port, "/v1/chunkmaster/server/drain",
              "{\"Ip\":\"127.0.0.1\",\"Port\":9402,\"Draining\":true}", 200));
    free(post(port, "/v1/chunkmaster/group/drain", "{\"GroupId\":2,\"Draining\":true}", 200));
    uint64_t end = fid_end(port);
    stop_master(h, pid);

    pid = harness_start_master(h, port, (const char *[]){"-d=t_restart", NULL});
    assert_true(pid > 0);
    json_t *route = harness_get_json(port, "/v1/chunkmaster/route");
    assert_int_equal(group_size(route, "1"), 2);
    assert_int_equal(group_size(route, "2"), 1);
    json_decref(route);
    assert_true(entry_flag(port, 9402, "Draining"));
    assert_false(entry_flag(port, 9401, "Draining"));
    assert_true(entry_flag(port, 9403, "GroupDraining"));
    json_t *e = harness_route_entry(port, 9401);
    assert_string_equal(json_string_value(json_object_get(e, "State")), "RW"); /* 15 s default */
    assert_true(json_integer_value(json_object_get(e, "LastReportAge")) < 15);
    assert_int_equal(json_integer_value(json_object_get(e, "TotalChunks")), 2);
    json_decref(e);
    uint64_t end2 = fid_end(port);
    assert_true(end2 - 10 >= end); /* the counter went on, nothing reused */

    /* even a kill -9 never reuses a fid: each range is committed before it is
     * handed out */
    assert_true(harness_stop(h, pid, SIGKILL) >= 0);
    pid = harness_start_master(h, port, (const char *[]){"-d=t_restart", NULL});
    assert_true(pid > 0);
    assert_true(fid_end(port) - 10 >= end2);
    stop_master(h, pid);
}

/* metric: the value of one unlabelled metric line, or -1. */
static long long metric(int port, const char *name)
{
    char *body, needle[128];
    long long v = -1;
    snprintf(needle, sizeof(needle), "\n%s ", name);
    if (harness_http(port, "GET", "/metrics", NULL, 0, &body) == 200 && strstr(body, needle))
        v = strtoll(strstr(body, needle) + strlen(needle), NULL, 10);
    free(body);
    return v;
}

/* wait_metric: polls until the metric has the value (at most timeout_ms). */
static int wait_metric(int port, const char *name, long long want, long timeout_ms)
{
    for (long start = harness_now_ms(); harness_now_ms() - start < timeout_ms; usleep(50000))
        if (metric(port, name) == want)
            return 1;
    return 0;
}

static void test_database_outage_is_survived(void **state)
{
    struct harness *h = *state;
    pid_t pid;
    int port = start_master(h, "t_outage", &pid, (const char *[]){"--db_timeout=2", NULL});
    assert_int_equal(harness_report(port, 1, 9601), 200);
    uint64_t end = fid_end(port);
    assert_int_equal(harness_mariadb(h, "stop"), 0);

    /* no fids without the database, but reports and the route go on */
    expect_error(port, "GET", "/v1/chunkmaster/fid", NULL, 503, "database unavailable");
    assert_int_equal(harness_report(port, 1, 9602), 200);
    assert_true(harness_wait_state(port, 9602, "RW", 1, 0) >= 0);
    assert_int_equal(metric(port, "speedy_master_db_up"), 0);
    assert_true(metric(port, "speedy_master_db_pending_writes") >= 1);

    assert_int_equal(harness_mariadb(h, "start"), 0);
    assert_true(fid_end(port) - 10 >= end); /* reconnected on demand */
    assert_true(wait_metric(port, "speedy_master_db_pending_writes", 0, 10000));
    assert_int_equal(metric(port, "speedy_master_db_up"), 1);
    stop_master(h, pid);
    /* what was reported during the outage reached the database */
    pid = harness_start_master(h, port, (const char *[]){"-d=t_outage", NULL});
    assert_true(pid > 0);
    assert_true(harness_wait_state(port, 9602, "RW", 1, 0) >= 0);
    stop_master(h, pid);
}

static void test_start_failures_are_one_line_and_non_zero(void **state)
{
    struct harness *h = *state;
    char out[4096], dp[32];
    snprintf(dp, sizeof(dp), "-dp=%d", harness_free_port()); /* nothing listens there */
    int code =
        harness_run_master(h, (const char *[]){dp, "--db_timeout=1", NULL}, out, sizeof(out));
    assert_int_equal(code, 1);
    assert_non_null(strstr(out, "cannot connect to 127.0.0.1"));
    assert_int_equal(strchr(out, '\n') - out + 1, (long)strlen(out)); /* one line */
    code = harness_run_master(h, (const char *[]){"-p=http", NULL}, out, sizeof(out));
    assert_int_equal(code, 2);
    assert_string_equal(out, "chunkmaster: bad value for --p: 'http' is not a whole number\n");
    code = harness_run_master(h, (const char *[]){"--rw_timeout=30", "--down_timeout=10", NULL},
                              out, sizeof(out));
    assert_int_equal(code, 2);
    assert_non_null(strstr(out, "--down_timeout (10) must be >= --rw_timeout (30)"));
    code = harness_run_master(h, (const char *[]){"--help", NULL}, out, sizeof(out));
    assert_int_equal(code, 0);
    const char *seed_flags[] = {"--D=", "--d=", "--dh=", "--dp=", "--h=", "--p=", "--pw=", "--u="};
    for (size_t i = 0; i < sizeof(seed_flags) / sizeof(seed_flags[0]); i++)
        if (strstr(out, seed_flags[i]) == NULL)
            fail_msg("--help does not list %s", seed_flags[i]);
    /* the port is taken: bind fails after the database was reached */
    pid_t pid;
    int port = start_master(h, "t_start", &pid, NULL);
    char p[32], db[32];
    snprintf(p, sizeof(p), "-p=%d", port);
    snprintf(db, sizeof(db), "-dp=%d", h->db_port);
    code = harness_run_master(h, (const char *[]){p, "-h=127.0.0.1", db, "-d=t_start", NULL}, out,
                              sizeof(out));
    assert_int_equal(code, 1);
    assert_non_null(strstr(out, "cannot listen on 127.0.0.1"));
    stop_master(h, pid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_masters_never_hand_out_the_same_fid),
        cmocka_unit_test(test_reports_make_servers_appear),
        cmocka_unit_test(test_bad_input_is_refused_with_a_reason),
        cmocka_unit_test(test_silent_server_turns_stale_then_down_and_comes_back),
        cmocka_unit_test(test_operator_routes),
        cmocka_unit_test(test_restart_keeps_servers_flags_and_fids),
        cmocka_unit_test(test_database_outage_is_survived),
        cmocka_unit_test(test_start_failures_are_one_line_and_non_zero),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
