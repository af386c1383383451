/* chunkbench.c - put/get throughput of one spy_server.
 *
 *   chunkbench --host=127.0.0.1 --port=8000 --size=1M --conns=8 --total=1G
 *              --op=put|get|ping --first_fid=1
 *
 * Moves total/size objects (at least one) of 'size' bytes over 'conns'
 * connections, one thread and one spy_client each, taking the next object
 * from a shared counter. Object i has fid first_fid + i, so a get run with the
 * same --size, --total and --first_fid reads what a put run wrote. Puts send
 * one shared buffer of random bytes; gets check the length (the client checks
 * the end-to-end crc) and drop the bytes. Pings move no bytes; scripts use
 * one to wait until a server is ready.
 *
 * Prints one line of key=value pairs, readable by people and by scripts:
 *   chunkbench op=put size=1048576 conns=8 objects=1024 bytes=1073741824
 *   seconds=1.234 MBps=870.1 ops=829.8 p50_ms=9.1 p99_ms=20.3 cpu_s=0.9 errors=0
 * MB is 10^6 bytes; cpu_s is this process's user + system CPU time, so CPU
 * per byte can be told apart from waiting on a busy machine. Exit status 1 when any operation
 * failed (the first failure is logged), 2 on bad flags. --max_seconds stops starting new objects
 * after that long; the line then counts what was moved. */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common/flags.h"
#include "common/log.h"
#include "common/spy_client.h"
#include "common/status.h"

struct bench_config {
    const char *host, *op;
    long long port, conns, timeout_ms, first_fid;
    uint64_t size, total;
    double max_seconds;
};

/* State shared by the worker threads of one run. */
enum bench_op { OP_PUT, OP_GET, OP_PING };

struct bench {
    struct bench_config cfg;
    enum bench_op op;
    uint64_t objects;
    const uint8_t *payload; /* 'size' bytes, read-only, for puts */
    double start, deadline; /* monotonic seconds; deadline 0 = none */
    _Atomic uint64_t next;  /* next object index to take */
    _Atomic uint64_t done_objects, done_bytes, errors;
    _Atomic int error_logged;
    double *latency; /* per object index, seconds; 0 = not done */
};

/* now_s: monotonic seconds. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* count_sink: a get's DATA frames are counted and dropped. */
static int count_sink(void *arg, const uint8_t *data, size_t n)
{
    (void)data;
    *(uint64_t *)arg += n;
    return 0;
}

/* note_error: counts a failed operation; only the first is logged, so a dead
 * server does not flood the output. */
static void note_error(struct bench *b, uint64_t fid, const char *what, int rc)
{
    atomic_fetch_add(&b->errors, 1);
    if (atomic_exchange(&b->error_logged, 1) == 0)
        spy_error("%s of fid %" PRIu64 " failed: %s", what, fid, spy_strerror(rc));
}

/* one_op: puts or gets object 'fid', or pings. Returns SPY_OK or the failure. */
static int one_op(struct bench *b, struct spy_client *c, uint64_t fid)
{
    if (b->op == OP_PING)
        return spy_client_ping(c);
    if (b->op == OP_PUT)
        return spy_client_put(c, fid, b->payload, b->cfg.size);
    uint64_t got = 0, object_len = 0;
    int rc = spy_client_get(c, fid, 0, 0, count_sink, &got, &object_len);
    if (rc == SPY_OK && (got != b->cfg.size || object_len != b->cfg.size))
        rc = SPY_ERANGE;
    return rc;
}

/* worker: one connection; takes objects until none are left, the deadline
 * passed, or the connection broke (then the thread stops, counted as an error). */
static void *worker(void *arg)
{
    struct bench *b = arg;
    struct spy_client *c;
    int rc = spy_client_connect(b->cfg.host, (int)b->cfg.port, (int)b->cfg.timeout_ms, &c);
    if (rc != SPY_OK) {
        note_error(b, 0, "connect", rc);
        return NULL;
    }
    for (;;) {
        double t0 = now_s();
        if (b->deadline > 0 && t0 > b->deadline)
            break;
        uint64_t i = atomic_fetch_add(&b->next, 1);
        if (i >= b->objects)
            break;
        uint64_t fid = (uint64_t)b->cfg.first_fid + i;
        rc = one_op(b, c, fid);
        if (rc != SPY_OK) {
            note_error(b, fid, b->cfg.op, rc);
            if (spy_client_broken(c))
                break;
            continue;
        }
        b->latency[i] = now_s() - t0;
        atomic_fetch_add(&b->done_objects, 1);
        atomic_fetch_add(&b->done_bytes, b->op == OP_PING ? 0 : b->cfg.size);
    }
    spy_client_close(c);
    return NULL;
}

/* cpu_seconds: user + system CPU time of this process so far. */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* sort_latency: packs the finished operations' latencies to the front of
 * b->latency, sorted; returns how many there are. */
static uint64_t sort_latency(struct bench *b)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < b->objects; i++)
        if (b->latency[i] > 0)
            b->latency[n++] = b->latency[i];
    qsort(b->latency, n, sizeof(double), cmp_double);
    return n;
}

/* percentile_ms: the p-th percentile of n sorted latencies, in ms. */
static double percentile_ms(const double *sorted, uint64_t n, double p)
{
    if (n == 0)
        return 0;
    uint64_t k = (uint64_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return sorted[k] * 1000.0;
}

/* make_payload: 'size' random bytes (xorshift; incompressible is enough). */
static uint8_t *make_payload(uint64_t size)
{
    uint8_t *p = malloc(size);
    if (p == NULL)
        return NULL;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (uint64_t i = 0; i < size; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = (uint8_t)x;
    }
    return p;
}

/* run: starts the workers, waits for them, prints the result line. Returns
 * 0 if every operation succeeded. */
static int run(struct bench *b)
{
    pthread_t *threads = calloc((size_t)b->cfg.conns, sizeof(*threads));
    if (threads == NULL)
        return -1;
    double cpu0 = cpu_seconds();
    b->start = now_s();
    b->deadline = b->cfg.max_seconds > 0 ? b->start + b->cfg.max_seconds : 0;
    long long started = 0;
    for (; started < b->cfg.conns; started++)
        if (pthread_create(&threads[started], NULL, worker, b) != 0)
            break;
    for (long long i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    double seconds = now_s() - b->start, cpu = cpu_seconds() - cpu0;
    free(threads);
    uint64_t objects = atomic_load(&b->done_objects), bytes = atomic_load(&b->done_bytes);
    uint64_t errors = atomic_load(&b->errors) + (uint64_t)(b->cfg.conns - started);
    uint64_t nlat = sort_latency(b);
    double p50 = percentile_ms(b->latency, nlat, 50), p99 = percentile_ms(b->latency, nlat, 99);
    printf("chunkbench op=%s size=%" PRIu64 " conns=%lld objects=%" PRIu64 " bytes=%" PRIu64
           " seconds=%.3f MBps=%.1f ops=%.1f p50_ms=%.3f p99_ms=%.3f cpu_s=%.3f errors=%" PRIu64
           "\n",
           b->cfg.op, b->cfg.size, b->cfg.conns, objects, bytes, seconds,
           (double)bytes / 1e6 / seconds, (double)objects / seconds, p50, p99, cpu, errors);
    return errors == 0 ? 0 : -1;
}

/* parse_config: flags into b->cfg; returns 0, 1 after --help, -1 on error. */
static int parse_config(int argc, char **argv, struct bench_config *cfg)
{
    const char *max_seconds = NULL;
    struct spy_flag flags[] = {
        {"host", SPY_FLAG_STRING, &cfg->host, "127.0.0.1", 0, 0, 0, "spy_server address"},
        {"port", SPY_FLAG_INT, &cfg->port, "8000", 1, 65535, 0, "spy_server port"},
        {"size", SPY_FLAG_SIZE, &cfg->size, "1M", 1, 1LL << 40, 0, "object size (K/M/G)"},
        {"conns", SPY_FLAG_INT, &cfg->conns, "1", 1, 4096, 0, "connections (threads)"},
        {"total", SPY_FLAG_SIZE, &cfg->total, "1G", 1, 1LL << 50, 0, "bytes to move"},
        {"op", SPY_FLAG_STRING, &cfg->op, "put", 0, 0, 0, "put, get or ping"},
        {"first_fid", SPY_FLAG_INT, &cfg->first_fid, "1", 1, 0x7fffffffffffffffLL, 0,
         "fid of the first object"},
        {"timeout_ms", SPY_FLAG_INT, &cfg->timeout_ms, "60000", 1, 3600000, 0,
         "deadline of each socket operation"},
        {"max_seconds", SPY_FLAG_STRING, &max_seconds, "0", 0, 0, 0,
         "stop starting objects after this long (0: never)"},
    };
    size_t nflags = sizeof(flags) / sizeof(flags[0]);
    char err[256];
    int rc = spy_flags_parse(flags, nflags, argc, argv, NULL, err, sizeof(err));
    if (rc == SPY_FLAGS_HELP) {
        spy_flags_usage(stdout, argv[0], "spy_server put/get throughput", flags, nflags);
        return 1;
    }
    if (rc == SPY_FLAGS_OK && strcmp(cfg->op, "put") != 0 && strcmp(cfg->op, "get") != 0 &&
        strcmp(cfg->op, "ping") != 0)
        snprintf(err, sizeof(err), "bad value for --op: '%s' is not put, get or ping", cfg->op);
    else if (rc == SPY_FLAGS_OK && sscanf(max_seconds, "%lf", &cfg->max_seconds) != 1)
        snprintf(err, sizeof(err), "bad value for --max_seconds: '%s'", max_seconds);
    else if (rc == SPY_FLAGS_OK)
        return 0;
    fprintf(stderr, "chunkbench: %s\n", err);
    return -1;
}

int main(int argc, char **argv)
{
    struct bench b = {0};
    int rc = parse_config(argc, argv, &b.cfg);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    spy_log_set_name("chunkbench");
    signal(SIGPIPE, SIG_IGN);
    b.op = strcmp(b.cfg.op, "put") == 0 ? OP_PUT : strcmp(b.cfg.op, "get") == 0 ? OP_GET : OP_PING;
    b.objects = b.cfg.total / b.cfg.size ? b.cfg.total / b.cfg.size : 1;
    b.latency = calloc(b.objects, sizeof(double));
    b.payload = b.op == OP_PUT ? make_payload(b.cfg.size) : NULL;
    if (b.latency == NULL || (b.op == OP_PUT && b.payload == NULL)) {
        spy_error("out of memory for %" PRIu64 " objects of %" PRIu64 " bytes", b.objects,
                  b.cfg.size);
        return 1;
    }
    rc = run(&b);
    free(b.latency);
    free((void *)b.payload);
    return rc == 0 ? 0 : 1;
}
