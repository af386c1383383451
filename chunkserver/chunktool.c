/* chunktool - the operator's command line for one chunkserver.
 *
 *   chunktool [--host=127.0.0.1] [--port=8000] [--timeout=10] <command>
 *     ping | status | stat <fid> | delete <fid> | put <fid> <file|-> |
 *     get <fid> [--offset=N] [--length=N] | fill <first_fid> <count> <size>
 *
 * Exit status: 0 success; 1 an operation failed, with one line on stderr
 * "chunktool: <what>: <reason>"; 2 bad usage. Bodies are streamed in 1 MiB
 * pieces both ways, so memory does not grow with object size. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/flags.h"
#include "common/log.h"
#include "common/spy_client.h"
#include "common/status.h"

#define EXIT_FAILED   1
#define EXIT_USAGE    2
#define PIECE         (1u << 20) /* bytes per put_data call and read() */
#define MAX_LEN_UNSET UINT64_MAX

/* The tool's configuration, filled from the command line once in main. */
struct tool {
    const char *host;
    long long port;
    long long timeout_s;
    uint64_t offset, length;
    uint64_t max_len; /* MAX_LEN_UNSET unless --max_len was given */
    int verbose;
    char **args; /* the command and its arguments */
    int nargs;
    struct spy_client *client;
};

static const char summary[] =
    "Talks to one chunkserver (spy_server).\n"
    "commands:\n"
    "  ping                          check the server answers\n"
    "  status                        server status (pretty JSON)\n"
    "  stat <fid>                    where an object lives and its size\n"
    "  delete <fid>                  delete an object\n"
    "  put <fid> <file|->            store a file, or stdin with --max_len=<bound>\n"
    "  get <fid> [--offset=N] [--length=N]\n"
    "                                object bytes to stdout (length 0 = to the end);\n"
    "                                on a non-zero exit the output is incomplete\n"
    "  fill <first_fid> <count> <size>\n"
    "                                write count test objects of size bytes, print MB/s\n"
    "exit status: 0 ok, 1 the operation failed, 2 bad usage";

/* fail: prints the one error line and returns the exit status for it. */
static int fail(const char *what, const char *reason)
{
    fprintf(stderr, "chunktool: %s: %s\n", what, reason);
    return EXIT_FAILED;
}

static int usage_error(const char *reason)
{
    fprintf(stderr, "chunktool: %s (see --help)\n", reason);
    return EXIT_USAGE;
}

/* parse_fid: a fid (or a count) is a whole decimal u64, nothing else. */
static int parse_fid(const char *text, uint64_t *fid)
{
    if (text[0] == '\0' || strspn(text, "0123456789") != strlen(text))
        return -1;
    errno = 0;
    unsigned long long v = strtoull(text, NULL, 10);
    if (errno != 0)
        return -1;
    *fid = v;
    return 0;
}

/* connect_tool: opens the connection every command uses. */
static int connect_tool(struct tool *t)
{
    int rc = spy_client_connect(t->host, (int)t->port, (int)(t->timeout_s * 1000), &t->client);
    if (rc == SPY_OK)
        return 0;
    char what[300];
    snprintf(what, sizeof(what), "connect %s port %lld", t->host, t->port);
    return fail(what, spy_strerror(rc));
}

/* op_fail: the error line for a failed operation on one fid (or none). */
static int op_fail(const char *op, const uint64_t *fid, int status)
{
    char what[64];
    if (fid != NULL)
        snprintf(what, sizeof(what), "%s %" PRIu64, op, *fid);
    else
        snprintf(what, sizeof(what), "%s", op);
    return fail(what, spy_strerror(status));
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmd_ping(struct tool *t)
{
    double t0 = now_s();
    int rc = spy_client_ping(t->client);
    if (rc != SPY_OK)
        return op_fail("ping", NULL, rc);
    printf("pong from %s port %lld in %.3f ms\n", t->host, t->port, (now_s() - t0) * 1e3);
    return 0;
}

/* cmd_status: prints the server's JSON indented; text that is not JSON is
 * printed as it came (it is still the server's answer). */
static int cmd_status(struct tool *t)
{
    char *text = NULL;
    int rc = spy_client_status(t->client, &text);
    if (rc != SPY_OK)
        return op_fail("status", NULL, rc);
    json_t *doc = json_loads(text, 0, NULL);
    if (doc != NULL) {
        json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(doc);
    } else {
        fputs(text, stdout);
    }
    fputc('\n', stdout);
    free(text);
    return 0;
}

static int cmd_stat(struct tool *t, uint64_t fid)
{
    struct spy_stat_resp st;
    int rc = spy_client_stat(t->client, fid, &st);
    if (rc != SPY_OK)
        return op_fail("stat", &fid, rc);
    time_t when = (time_t)st.timestamp;
    struct tm tm;
    char date[32] = "?";
    if (gmtime_r(&when, &tm) != NULL)
        strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("fid       %" PRIu64 "\nlen       %" PRIu64 "\nchunk_id  %" PRIu64 "\noffset    %" PRIu64
           "\ntimestamp %" PRIu64 " (%s)\n",
           st.fid, st.len, st.chunk_id, st.offset, st.timestamp, date);
    return 0;
}

static int cmd_delete(struct tool *t, uint64_t fid)
{
    int rc = spy_client_delete(t->client, fid);
    if (rc != SPY_OK)
        return op_fail("delete", &fid, rc);
    return 0;
}

/* read_full: reads up to n bytes, fewer only at end of input. */
static ssize_t read_full(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* read_error: the error line for a body that could not be read, after the
 * put was abandoned on the server. */
static int read_error(struct tool *t, uint64_t fid, const char *name, const char *reason)
{
    spy_client_put_abort(t->client);
    char what[300];
    snprintf(what, sizeof(what), "put %" PRIu64 ": read %s", fid, name);
    return fail(what, reason);
}

/* stream_put: sends everything readable from fd as the body of fid, at most
 * max_len bytes, in PIECE-sized put_data calls. */
static int stream_put(struct tool *t, uint64_t fid, int fd, const char *name, uint64_t max_len,
                      uint8_t *buf)
{
    uint64_t total = 0;
    int rc = spy_client_put_begin(t->client, fid, max_len);
    while (rc == SPY_OK) {
        ssize_t n = read_full(fd, buf, PIECE);
        if (n < 0)
            return read_error(t, fid, name, strerror(errno));
        if (n == 0)
            break;
        if ((uint64_t)n > max_len - total)
            return read_error(t, fid, name, "input is larger than --max_len");
        total += (uint64_t)n;
        rc = spy_client_put_data(t->client, buf, (size_t)n);
    }
    /* An early error from the server still needs the END that closes the put. */
    if (rc == SPY_OK || !spy_client_broken(t->client))
        rc = spy_client_put_end(t->client);
    if (rc != SPY_OK)
        return op_fail("put", &fid, rc);
    printf("put %" PRIu64 ": %" PRIu64 " bytes stored\n", fid, total);
    return 0;
}

/* cmd_put: a regular file is announced with its exact size; stdin and other
 * streams need the bound --max_len, since the server reserves space first. */
static int cmd_put(struct tool *t, uint64_t fid, const char *path)
{
    int is_stdin = strcmp(path, "-") == 0;
    int fd = is_stdin ? 0 : open(path, O_RDONLY | O_CLOEXEC);
    char what[300];
    snprintf(what, sizeof(what), "put %" PRIu64 ": open %s", fid, path);
    if (fd < 0)
        return fail(what, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        if (!is_stdin)
            close(fd);
        return fail(what, strerror(err));
    }
    uint64_t max_len = t->max_len;
    if (max_len == MAX_LEN_UNSET && S_ISREG(st.st_mode)) {
        max_len = (uint64_t)st.st_size;
    } else if (max_len == MAX_LEN_UNSET) {
        if (!is_stdin)
            close(fd);
        return usage_error("put from a stream needs --max_len=<bytes>");
    }
    uint8_t *buf = malloc(PIECE);
    int rc = buf == NULL ? fail("put", "out of memory")
                         : stream_put(t, fid, fd, is_stdin ? "stdin" : path, max_len, buf);
    free(buf);
    if (!is_stdin)
        close(fd);
    return rc;
}

/* stdout_sink: writes each DATA payload to stdout as it arrives. */
static int stdout_sink(void *arg, const uint8_t *data, size_t n)
{
    int *write_errno = arg;
    while (n > 0) {
        ssize_t w = write(1, data, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            *write_errno = errno;
            return SPY_EIO;
        }
        data += w;
        n -= (size_t)w;
    }
    return 0;
}

static int cmd_get(struct tool *t, uint64_t fid)
{
    int write_errno = 0;
    int rc = spy_client_get(t->client, fid, t->offset, t->length, stdout_sink, &write_errno, NULL);
    if (rc == SPY_OK)
        return 0;
    if (write_errno != 0) {
        char what[64];
        snprintf(what, sizeof(what), "get %" PRIu64 ": write stdout", fid);
        return fail(what, strerror(write_errno));
    }
    return op_fail("get", &fid, rc);
}

/* fill_pattern: the pseudo-random bytes every fill object repeats; made once
 * per run so the timing measures the puts, not the generator. */
static void fill_pattern(uint8_t *buf, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
}

/* put_test_object: one fill object: the pattern repeated in PIECE-sized
 * pieces, with the fid stamped into its first 8 bytes (big-endian) so that
 * objects differ. */
static int put_test_object(struct tool *t, uint64_t fid, uint64_t size, uint8_t *buf)
{
    size_t piece = size < PIECE ? (size_t)size : PIECE;
    uint8_t saved[8];
    size_t stamp = piece < sizeof(saved) ? piece : sizeof(saved);
    memcpy(saved, buf, stamp);
    for (size_t i = 0; i < stamp; i++)
        buf[i] = (uint8_t)(fid >> (56 - 8 * i));
    int rc = spy_client_put_begin(t->client, fid, size);
    for (uint64_t sent = 0; rc == SPY_OK && sent < size; sent += piece) {
        size_t n = size - sent < piece ? (size_t)(size - sent) : piece;
        rc = spy_client_put_data(t->client, buf, n);
        memcpy(buf, saved, stamp); /* the stamp goes in the first piece only */
    }
    if (rc == SPY_OK || !spy_client_broken(t->client))
        rc = spy_client_put_end(t->client);
    memcpy(buf, saved, stamp);
    return rc;
}

static int cmd_fill(struct tool *t, uint64_t first_fid, uint64_t count, uint64_t size)
{
    uint8_t *buf = malloc(PIECE);
    if (buf == NULL)
        return fail("fill", "out of memory");
    fill_pattern(buf, PIECE, first_fid);
    double t0 = now_s();
    for (uint64_t i = 0; i < count; i++) {
        uint64_t fid = first_fid + i;
        int rc = put_test_object(t, fid, size, buf);
        if (rc != SPY_OK) {
            free(buf);
            return op_fail("fill: put", &fid, rc);
        }
    }
    free(buf);
    double secs = now_s() - t0;
    double bytes = (double)count * (double)size;
    printf("fill: %" PRIu64 " objects of %" PRIu64 " bytes in %.3f s: %.1f MB/s, %.0f puts/s\n",
           count, size, secs, secs > 0 ? bytes / secs / 1e6 : 0.0, secs > 0 ? count / secs : 0.0);
    return 0;
}

/* run_fid_command: the commands that take one fid (and maybe a path). */
static int run_fid_command(struct tool *t, const char *cmd)
{
    uint64_t fid;
    int want = strcmp(cmd, "put") == 0 ? 3 : 2;
    if (t->nargs != want)
        return usage_error(want == 3 ? "usage: put <fid> <file|->" : "expected one <fid>");
    if (parse_fid(t->args[1], &fid) != 0)
        return usage_error("a fid is a whole decimal number");
    if (want == 3 && strcmp(t->args[2], "-") == 0 && t->max_len == MAX_LEN_UNSET)
        return usage_error("put from stdin needs --max_len=<bytes>");
    if (connect_tool(t) != 0)
        return EXIT_FAILED;
    if (strcmp(cmd, "stat") == 0)
        return cmd_stat(t, fid);
    if (strcmp(cmd, "delete") == 0)
        return cmd_delete(t, fid);
    if (strcmp(cmd, "get") == 0)
        return cmd_get(t, fid);
    return cmd_put(t, fid, t->args[2]);
}

static int run_fill(struct tool *t)
{
    uint64_t first, count, size;
    if (t->nargs != 4)
        return usage_error("usage: fill <first_fid> <count> <size>");
    if (parse_fid(t->args[1], &first) != 0 || parse_fid(t->args[2], &count) != 0 ||
        spy_parse_size(t->args[3], &size) != 0)
        return usage_error("fill takes a fid, a count and a size (e.g. 1M)");
    if (connect_tool(t) != 0)
        return EXIT_FAILED;
    return cmd_fill(t, first, count, size);
}

/* run_command: dispatches the positional command; 2 for an unknown one. */
static int run_command(struct tool *t)
{
    if (t->nargs == 0)
        return usage_error("no command given");
    const char *cmd = t->args[0];
    if (strcmp(cmd, "ping") == 0 || strcmp(cmd, "status") == 0) {
        if (t->nargs != 1)
            return usage_error("this command takes no arguments");
        if (connect_tool(t) != 0)
            return EXIT_FAILED;
        return cmd[0] == 'p' ? cmd_ping(t) : cmd_status(t);
    }
    if (strcmp(cmd, "stat") == 0 || strcmp(cmd, "delete") == 0 || strcmp(cmd, "get") == 0 ||
        strcmp(cmd, "put") == 0)
        return run_fid_command(t, cmd);
    if (strcmp(cmd, "fill") == 0)
        return run_fill(t);
    char reason[128];
    snprintf(reason, sizeof(reason), "unknown command '%.60s'", cmd);
    return usage_error(reason);
}

int main(int argc, char **argv)
{
    struct tool t = {.max_len = MAX_LEN_UNSET};
    struct spy_flag flags[] = {
        {"host", SPY_FLAG_STRING, &t.host, "127.0.0.1", 0, 0, 0, "chunkserver address or name"},
        {"port", SPY_FLAG_INT, &t.port, "8000", 1, 65535, 0, "chunkserver port"},
        {"timeout", SPY_FLAG_INT, &t.timeout_s, "10", 1, 3600, 0,
         "seconds allowed for the connect and for each send or receive"},
        {"offset", SPY_FLAG_SIZE, &t.offset, "0", 0, 0, 0, "get: first byte"},
        {"length", SPY_FLAG_SIZE, &t.length, "0", 0, 0, 0, "get: bytes, 0 = to the end"},
        {"max_len", SPY_FLAG_SIZE, &t.max_len, NULL, 0, 0, 0,
         "put: bound on the body size (required for stdin)"},
        {"verbose", SPY_FLAG_BOOL, &t.verbose, "false", 0, 0, 0, "log the client's warnings"},
    };
    size_t nflags = sizeof(flags) / sizeof(flags[0]);
    char err[256];
    int rc = spy_flags_parse(flags, nflags, argc, argv, &t.nargs, err, sizeof(err));
    if (rc == SPY_FLAGS_HELP) {
        spy_flags_usage(stdout, "chunktool", summary, flags, nflags);
        return 0;
    }
    if (rc != SPY_FLAGS_OK)
        return usage_error(err);
    t.args = argv + 1;
    spy_log_set_name("chunktool");
    spy_log_set_level(t.verbose ? SPY_LOG_DEBUG : SPY_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN); /* a closed stdout becomes EPIPE from write() */
    rc = run_command(&t);
    spy_client_close(t.client);
    return rc;
}
