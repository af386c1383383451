/* test_status_page.c - the chunkmaster's status page as a person sees it:
 * headless Chromium (Debian's chromium) loads http://127.0.0.1:<port>/ and
 * the test reads the rendered table's text, row by row. Skipped if chromium
 * is not installed. */
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
#include <unistd.h>

#include "harness.h"

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

/* chromium_path: the browser binary, or NULL. */
static const char *chromium_path(void)
{
    static const char *const candidates[] = {"/usr/bin/chromium", "/usr/bin/chromium-browser"};
    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++)
        if (access(candidates[i], X_OK) == 0)
            return candidates[i];
    return NULL;
}

/* dump_dom: the page's DOM after Chromium loaded and rendered it. */
static char *dump_dom(struct harness *h, const char *chromium, int port)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "'%s' --headless --no-sandbox --disable-gpu --disable-dev-shm-usage "
             "--user-data-dir='%s/chromium' --dump-dom http://127.0.0.1:%d/ 2>'%s/chromium.log'",
             chromium, h->dir, port, h->dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t r;
    while ((r = fread(buf + n, 1, cap - 1 - n, p)) > 0)
        n += r;
    buf[n] = '\0';
    assert_int_equal(pclose(p), 0);
    return buf;
}

/* visible_text: the body's text as a reader sees it: tags dropped, each
 * table cell followed by " | ", each row and paragraph on its own line,
 * entities decoded. */
static char *visible_text(const char *html)
{
    const char *body = strstr(html, "<body");
    assert_non_null(body);
    char *out = malloc(strlen(body) + 1), *o = out;
    assert_non_null(out);
    for (const char *p = body; *p != '\0';) {
        if (*p == '<') {
            const char *end = strchr(p, '>');
            if (end == NULL)
                break;
            if (strncmp(p, "</td>", 5) == 0 || strncmp(p, "</th>", 5) == 0) {
                memcpy(o, " | ", 3);
                o += 3;
            } else if (strncmp(p, "</tr>", 5) == 0 || strncmp(p, "</p>", 4) == 0 ||
                       strncmp(p, "</h1>", 5) == 0) {
                *o++ = '\n';
            }
            p = end + 1;
        } else if (strncmp(p, "&amp;", 5) == 0) {
            *o++ = '&';
            p += 5;
        } else if (*p == '\n') {
            p++;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

/* expect_line: some line of text contains every given piece, in order. */
static void expect_line(const char *text, const char *const *pieces)
{
    char *copy = strdup(text), *save = NULL;
    int found = 0;
    for (char *line = strtok_r(copy, "\n", &save); line != NULL && !found;
         line = strtok_r(NULL, "\n", &save)) {
        const char *at = line;
        size_t i = 0;
        for (; pieces[i] != NULL && (at = strstr(at, pieces[i])) != NULL; i++)
            at += strlen(pieces[i]);
        found = pieces[i] == NULL;
    }
    free(copy);
    if (!found)
        fail_msg("no line of the page reads \"%s ...\"; the page:\n%s", pieces[0], text);
}

static void test_status_page_in_chromium(void **state)
{
    struct harness *h = *state;
    const char *chromium = chromium_path();
    if (chromium == NULL)
        skip();
    int port = harness_free_port();
    pid_t pid = harness_start_master(h, port, (const char *[]){"--refresh=3", NULL});
    assert_true(pid > 0);
    const int servers[4][2] = {{1, 9501}, {1, 9502}, {2, 9503}, {2, 9504}};
    for (int i = 0; i < 4; i++)
        assert_int_equal(harness_report(port, servers[i][0], servers[i][1]), 200);
    const char drain[] = "{\"Ip\":\"127.0.0.1\",\"Port\":9504,\"Draining\":true}";
    const char init[] = "{\"GroupId\":3,\"Ip\":\"::1\",\"Port\":9505}";
    char *resp;
    assert_int_equal(
        harness_http(port, "POST", "/v1/chunkmaster/server/drain", drain, sizeof(drain) - 1, &resp),
        200);
    free(resp);
    assert_int_equal(
        harness_http(port, "POST", "/v1/chunkserver/initserver", init, sizeof(init) - 1, &resp),
        200);
    free(resp);

    char *dom = dump_dom(h, chromium, port);
    assert_non_null(strstr(dom, "<meta http-equiv=\"refresh\" content=\"3\">"));
    char *text = visible_text(dom);
    expect_line(text, (const char *[]){"speedy chunkmaster", NULL});
    expect_line(text, (const char *[]){"3 groups, 1 writable; 5 servers: 1 INIT 3 RW 1 DRAINING.",
                                       "Database: ok.", NULL});
    expect_line(text, (const char *[]){"Group | ", "Group writable | ", "Server | ", "State | ",
                                       "Free space | ", "Largest object | ", "Chunks | ",
                                       "Objects | ", "Last report | ", "Version | ", NULL});
    expect_line(text,
                (const char *[]){"1 | yes | 127.0.0.1:9501 | RW | 1.0 GiB | 512 MiB | 2 | 0 | ",
                                 " s ago | speedy 0.1 | ", NULL});
    expect_line(text, (const char *[]){"1 | yes | 127.0.0.1:9502 | RW | ", NULL});
    expect_line(text, (const char *[]){"2 | no | 127.0.0.1:9503 | RW | ", NULL});
    expect_line(text, (const char *[]){"2 | no | 127.0.0.1:9504 | DRAINING | ", NULL});
    expect_line(
        text, (const char *[]){"3 | no | [::1]:9505 | INIT | 0 B | 0 B | 0 | 0 | never | ", NULL});
    expect_line(
        text, (const char *[]){"A group takes writes when at least 2 of its servers are RW", NULL});
    free(text);
    free(dom);
    int status = harness_stop(h, pid, SIGTERM);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_page_in_chromium),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
