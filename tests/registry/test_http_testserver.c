/* test_http_testserver - the HTTP layer with the test routes of
 * test_http_handlers.h, as a program, for curl-based tests and benchmarks.
 *
 * Prints "port <n>" on stdout once it accepts, serves until SIGTERM or
 * SIGINT, then stops and prints "stats connections=.. requests=.. aborts=..
 * violations=..". Exits 0, or 1 if the handlers saw a broken promise of the
 * layer (violations > 0), or 2 on a start-up error.
 *
 *   test_http_testserver [--port=0] [--host=127.0.0.1] [--threads=0]
 *       [--slow_ms=20] [--so_rcvbuf=256K] [--io_timeout_ms=30000] ... */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>

#include "common/flags.h"
#include "common/log.h"
#include "common/status.h"
#include "tests/registry/test_http_handlers.h"

struct opts {
    const char *host;
    long long port, threads, slow_ms, head_ms, io_ms, keepalive_ms;
    uint64_t rcvbuf, sndbuf, max_body;
};

/* parse_opts: flags into o and cfg. Returns SPY_FLAGS_*. */
static int parse_opts(int argc, char **argv, struct opts *o, struct spy_http_config *cfg)
{
    struct spy_flag flags[] = {
        {"host", SPY_FLAG_STRING, &o->host, "127.0.0.1", 0, 0, 0, "listen address"},
        {"port", SPY_FLAG_INT, &o->port, "0", 0, 65535, 0, "listen port (0: any)"},
        {"threads", SPY_FLAG_INT, &o->threads, "0", 0, 256, 0, "loops (0: one per core)"},
        {"slow_ms", SPY_FLAG_INT, &o->slow_ms, "20", 0, 60000, 0, "/slow's pause per slice"},
        {"so_rcvbuf", SPY_FLAG_SIZE, &o->rcvbuf, "256K", 0, 1 << 30, 0, "SO_RCVBUF (0: kernel)"},
        {"so_sndbuf", SPY_FLAG_SIZE, &o->sndbuf, "256K", 0, 1 << 30, 0, "SO_SNDBUF (0: kernel)"},
        {"max_body", SPY_FLAG_SIZE, &o->max_body, "0", 0, 0, 0, "request body limit (0: none)"},
        {"head_timeout_ms", SPY_FLAG_INT, &o->head_ms, "10000", 1, 3600000, 0, "head timeout"},
        {"io_timeout_ms", SPY_FLAG_INT, &o->io_ms, "30000", 1, 3600000, 0, "I/O idle timeout"},
        {"keepalive_timeout_ms", SPY_FLAG_INT, &o->keepalive_ms, "30000", 1, 3600000, 0,
         "keep-alive idle timeout"},
    };
    size_t n = sizeof(flags) / sizeof(flags[0]);
    char err[256];
    int rc = spy_flags_parse(flags, n, argc, argv, NULL, err, sizeof(err));
    if (rc == SPY_FLAGS_HELP)
        spy_flags_usage(stdout, argv[0], "the HTTP layer's test server", flags, n);
    else if (rc == SPY_FLAGS_ERROR)
        fprintf(stderr, "%s\n", err);
    cfg->host = o->host;
    cfg->port = (uint16_t)o->port;
    cfg->threads = (unsigned)o->threads;
    cfg->so_rcvbuf = (int)o->rcvbuf;
    cfg->so_sndbuf = (int)o->sndbuf;
    cfg->max_body = o->max_body;
    cfg->head_timeout_ms = (uint32_t)o->head_ms;
    cfg->io_timeout_ms = (uint32_t)o->io_ms;
    cfg->keepalive_timeout_ms = (uint32_t)o->keepalive_ms;
    return rc;
}

int main(int argc, char **argv)
{
    struct opts o;
    struct spy_http_config cfg;
    spy_http_config_init(&cfg);
    int rc = parse_opts(argc, argv, &o, &cfg);
    if (rc != SPY_FLAGS_OK)
        return rc == SPY_FLAGS_HELP ? 0 : 2;
    spy_log_set_name("test_http_testserver");
    /* Block the stop signals before any thread starts, then wait for them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    struct test_http_ctx ctx;
    struct spy_http_handler h;
    test_http_ctx_init(&ctx, &h, (unsigned)o.slow_ms);
    struct spy_http_server *srv;
    int st = spy_http_server_start(&cfg, &h, &srv);
    if (st != SPY_OK) {
        fprintf(stderr, "start failed: %s\n", spy_strerror(st));
        test_http_ctx_fini(&ctx);
        return 2;
    }
    ctx.srv = srv;
    printf("port %u\n", spy_http_server_port(srv));
    fflush(stdout);
    int sig;
    sigwait(&stop, &sig);
    test_http_ctx_fini(&ctx);
    struct spy_http_stats stats;
    spy_http_server_stats(srv, &stats);
    spy_http_server_stop(srv);
    uint64_t violations = atomic_load(&ctx.violations);
    printf("stats connections=%" PRIu64 " requests=%" PRIu64 " aborts=%" PRIu64
           " violations=%" PRIu64 "\n",
           stats.connections, stats.requests, stats.aborts, violations);
    return violations == 0 ? 0 : 1;
}
