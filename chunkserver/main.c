/* main.c - spy_server: the chunkserver daemon (docs/spy_server.md).
 *
 * Start-up order: flags (a bad one: one line, exit 2, nothing touched), the
 * advertise address, absolute paths, signals blocked in every thread (the main
 * thread takes SIGTERM/SIGINT with sigwait), --daemonize, log, pid file,
 * memory pool, store (failure: one line, exit 1), server, reporter. With
 * --daemonize=1 the parent waits on a pipe until the daemon is serving or has
 * failed, and exits 0 or with the daemon's start-up error (one line, exit 1).
 * Shutdown: reporter, server (drains connections), store, pid file; exit 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chunkserver/mempool.h"
#include "chunkserver/reporter.h"
#include "chunkserver/server.h"
#include "chunkserver/store.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/status.h"

#define EXIT_USAGE      2
#define STORE_WAIT_MS   5000  /* a put waits this long for a free chunk */
#define MEM_WAIT_MS     3000  /* a GET/PUT waits this long for a memory block */
#define DRAIN_MS        10000 /* shutdown: busy connections get this long */
#define REPORT_CONNECT  1000
#define REPORT_DEADLINE 2000

/* The daemon's configuration: filled once by the flags, read-only after. */
struct options {
    long long port, mem_blocks, chunks, sync, daemonize, master_port, group_id;
    long long report_interval, idle_timeout, max_conns;
    uint64_t chunk_size;
    const char *ip, *data_dir, *error_log, *master_ip, *advertise_ip, *pid_file;
    int debug_short, debug_long;
    /* derived */
    char advertise[INET6_ADDRSTRLEN];
    char *abs_data_dir, *abs_error_log, *abs_pid_file;
    int ready_fd;    /* --daemonize: the pipe to the waiting parent, else -1 */
    int log_to_file; /* --error_log is open: start-up failures are logged there too */
    int pid_written; /* the pid file exists: a start-up failure removes it */
};

static const char SUMMARY[] =
    "The speedy chunkserver: stores image blobs in preallocated chunk files and\n"
    "reports itself to the chunkmaster. See docs/spy_server.md.";

/* flag_table: every flag of the original spy_server with its default, plus
 * ours. Values land in 'o'. */
static size_t flag_table(struct options *o, struct spy_flag *t)
{
    struct spy_flag flags[] = {
        {"port", SPY_FLAG_INT, &o->port, "8000", 1, 65535, 0, "listen port"},
        {"ip", SPY_FLAG_STRING, &o->ip, "127.0.0.1", 0, 0, 0,
         "listen address, IPv4 or IPv6 (0.0.0.0 or :: for all)"},
        {"data_dir", SPY_FLAG_STRING, &o->data_dir, ".", 0, 0, 0,
         "directory of the chunk files (default: the current directory)"},
        {"error_log", SPY_FLAG_STRING, &o->error_log, "", 0, 0, 0, "log file (default: stderr)"},
        {"mem_blocks", SPY_FLAG_INT, &o->mem_blocks, "1024", 1, 65536, 0,
         "1 MiB memory blocks for request/response data (the memory bound)"},
        {"chunks", SPY_FLAG_INT, &o->chunks, "20", 1, 10000, 0,
         "chunk files to create in an empty data_dir"},
        {"sync", SPY_FLAG_INT, &o->sync, "0", 0, 1, 0,
         "1: fdatasync (group commit) before acknowledging a write"},
        {"daemonize", SPY_FLAG_INT, &o->daemonize, "0", 0, 1, 0, "1: run in the background"},
        {"master_ip", SPY_FLAG_STRING, &o->master_ip, NULL, 0, 0, 1,
         "chunkmaster address (IPv4, IPv6 or name)"},
        {"master_port", SPY_FLAG_INT, &o->master_port, NULL, 1, 65535, 1, "chunkmaster port"},
        {"group_id", SPY_FLAG_INT, &o->group_id, NULL, 1, 65535, 1,
         "chunkserver group (replicas share it), 1..65535"},
        {"chunk_size", SPY_FLAG_SIZE, &o->chunk_size, "2G", 1LL << 20, 1LL << 40, 0,
         "bytes per chunk file (at creation)"},
        {"advertise_ip", SPY_FLAG_STRING, &o->advertise_ip, "", 0, 0, 0,
         "address reported to the chunkmaster (default: --ip, or a host address if --ip is a "
         "wildcard)"},
        {"report_interval", SPY_FLAG_INT, &o->report_interval, "5", 1, 86400, 0,
         "seconds between reports to the chunkmaster"},
        {"idle_timeout", SPY_FLAG_INT, &o->idle_timeout, "60", 1, 86400, 0,
         "seconds a connection may stay silent (also bounds each send)"},
        {"max_conns", SPY_FLAG_INT, &o->max_conns, "4096", 1, 1000000, 0,
         "connections beyond this are closed at once"},
        {"pid_file", SPY_FLAG_STRING, &o->pid_file, "", 0, 0, 0, "write the daemon's pid here"},
        {"D", SPY_FLAG_BOOL, &o->debug_short, "false", 0, 0, 0, "debug logging"},
        {"debug", SPY_FLAG_BOOL, &o->debug_long, "false", 0, 0, 0, "debug logging (same as -D)"},
    };
    memcpy(t, flags, sizeof(flags));
    return sizeof(flags) / sizeof(flags[0]);
}

/* die_usage: the one-line reason for a bad command line; exit 2. */
static void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "spy_server: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(EXIT_USAGE);
}

/* die_start: a start-up failure after the flags: logged (when the log is a
 * file), one line for the operator on stderr or, daemonized, through the pipe
 * to the waiting parent; exit 1. */
static void die_start(const struct options *o, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (o->log_to_file)
        spy_error("%s", msg);
    if (o->pid_written)
        unlink(o->abs_pid_file);
    char line[1100];
    int n = snprintf(line, sizeof(line), "spy_server: %s\n", msg);
    ssize_t w = write(o->ready_fd >= 0 ? o->ready_fd : 2, line, (size_t)n);
    (void)w;
    exit(1);
}

/* is_numeric_ip: whether text is an IPv4 or IPv6 literal; sets *wildcard for
 * the any-address of either family. */
static int is_numeric_ip(const char *text, int *wildcard)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, text, &a4) == 1) {
        *wildcard = a4.s_addr == htonl(INADDR_ANY);
        return 1;
    }
    if (inet_pton(AF_INET6, text, &a6) == 1) {
        *wildcard = memcmp(&a6, &in6addr_any, sizeof(a6)) == 0;
        return 1;
    }
    return 0;
}

/* usable_host_address: not loopback, not wildcard, not IPv6 link-local (which
 * needs a scope the master cannot use). */
static int usable_host_address(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return (a >> 24) != 127 && a != 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return !IN6_IS_ADDR_LOOPBACK(a) && !IN6_IS_ADDR_UNSPECIFIED(a) &&
               !IN6_IS_ADDR_LINKLOCAL(a) && !IN6_IS_ADDR_V4MAPPED(a);
    }
    return 0;
}

/* host_address: the first usable address of getaddrinfo(gethostname()). */
static int host_address(char *out, size_t len)
{
    char name[256];
    if (gethostname(name, sizeof(name)) != 0)
        return -1;
    name[sizeof(name) - 1] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    if (getaddrinfo(name, NULL, &hints, &res) != 0)
        return -1;
    int rc = -1;
    for (struct addrinfo *ai = res; ai != NULL && rc != 0; ai = ai->ai_next)
        if (usable_host_address(ai->ai_addr) &&
            getnameinfo(ai->ai_addr, ai->ai_addrlen, out, (socklen_t)len, NULL, 0,
                        NI_NUMERICHOST) == 0)
            rc = 0;
    freeaddrinfo(res);
    return rc;
}

/* resolve_advertise: --advertise_ip, else --ip, else (wildcard --ip) a host
 * address; no address at all is a usage error. */
static void resolve_advertise(struct options *o)
{
    int wildcard;
    if (!is_numeric_ip(o->ip, &wildcard))
        die_usage("bad value for --ip: '%s' is not an IPv4 or IPv6 address", o->ip);
    if (o->advertise_ip[0] != '\0') {
        int adv_wildcard;
        if (!is_numeric_ip(o->advertise_ip, &adv_wildcard) || adv_wildcard)
            die_usage("bad value for --advertise_ip: '%s' is not a unicast IPv4 or IPv6 address",
                      o->advertise_ip);
        snprintf(o->advertise, sizeof(o->advertise), "%s", o->advertise_ip);
    } else if (!wildcard) {
        snprintf(o->advertise, sizeof(o->advertise), "%s", o->ip);
    } else if (host_address(o->advertise, sizeof(o->advertise)) != 0) {
        die_usage("--ip=%s listens on every address and this host has no non-loopback "
                  "address to report; give --advertise_ip",
                  o->ip);
    }
}

/* absolute_path: 'path' made absolute against the current directory (not
 * resolved: it need not exist yet). Returns malloc'd text. */
static char *absolute_path(const char *path)
{
    if (path[0] == '/')
        return strdup(path);
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return NULL;
    if (strcmp(path, ".") == 0)
        return strdup(cwd);
    size_t n = strlen(cwd) + strlen(path) + 2;
    char *out = malloc(n);
    if (out != NULL)
        snprintf(out, n, "%s/%s", cwd, path);
    return out;
}

/* parse_options: flags, then the checks the flag table cannot express. */
static void parse_options(struct options *o, int argc, char **argv)
{
    struct spy_flag table[32];
    size_t n = flag_table(o, table);
    char err[512];
    int rc = spy_flags_parse(table, n, argc, argv, NULL, err, sizeof(err));
    if (rc == SPY_FLAGS_HELP) {
        spy_flags_usage(stdout, "spy_server", SUMMARY, table, n);
        exit(0);
    }
    if (rc != SPY_FLAGS_OK)
        die_usage("%s", err);
    if (o->master_ip[0] == '\0')
        die_usage("bad value for --master_ip: empty");
    if (o->data_dir[0] == '\0')
        die_usage("bad value for --data_dir: empty");
    resolve_advertise(o);
    o->abs_data_dir = absolute_path(o->data_dir);
    o->abs_error_log = o->error_log[0] != '\0' ? absolute_path(o->error_log) : strdup("");
    o->abs_pid_file = o->pid_file[0] != '\0' ? absolute_path(o->pid_file) : strdup("");
    if (o->abs_data_dir == NULL || o->abs_error_log == NULL || o->abs_pid_file == NULL)
        die_usage("cannot make the paths absolute: %s", strerror(errno));
    o->ready_fd = -1;
}

/* daemonize: forks; the parent waits for the child's start-up verdict on a
 * pipe (one line: empty = serving) and exits with it. The child starts a new
 * session, moves to / and points stdio at /dev/null. */
static void daemonize(struct options *o)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        die_start(o, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        die_start(o, "fork: %s", strerror(errno));
    if (pid > 0) {
        close(p[1]);
        char msg[1200];
        size_t len = 0;
        ssize_t r;
        while (len < sizeof(msg) && (r = read(p[0], msg + len, sizeof(msg) - len)) != 0)
            if (r > 0)
                len += (size_t)r;
            else if (errno != EINTR)
                break;
        if (len == 1 && msg[0] == '\n')
            exit(0);
        if (len == 0)
            die_usage("the daemon exited during start-up (see --error_log)");
        ssize_t w = write(2, msg, len);
        (void)w;
        exit(1);
    }
    close(p[0]);
    o->ready_fd = p[1];
    if (setsid() < 0 || chdir("/") != 0)
        die_start(o, "setsid/chdir: %s", strerror(errno));
    int null = open("/dev/null", O_RDWR);
    if (null < 0)
        die_start(o, "/dev/null: %s", strerror(errno));
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    if (null > 2)
        close(null);
}

/* write_pid_file: the daemon's pid, for init scripts. */
static void write_pid_file(struct options *o)
{
    if (o->abs_pid_file[0] == '\0')
        return;
    FILE *f = fopen(o->abs_pid_file, "we");
    if (f == NULL)
        die_start(o, "cannot write --pid_file %s: %s", o->abs_pid_file, strerror(errno));
    o->pid_written = 1;
    if (fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0)
        die_start(o, "cannot write --pid_file %s: %s", o->abs_pid_file, strerror(errno));
}

/* The running daemon's parts, torn down in reverse order. */
struct daemon_parts {
    struct spy_mempool *pool;
    struct spy_store *store;
    struct spy_server *server;
    struct spy_reporter *reporter;
};

/* start_parts: pool, store, server, reporter; any failure is fatal. */
static void start_parts(const struct options *o, struct daemon_parts *d)
{
    d->pool = spy_mempool_create((uint32_t)o->mem_blocks);
    if (d->pool == NULL)
        die_start(o, "cannot create the memory pool");
    struct spy_store_config sc = {.data_dir = o->abs_data_dir,
                                  .chunks = (uint32_t)o->chunks,
                                  .chunk_size = o->chunk_size,
                                  .sync = (int)o->sync,
                                  .group_id = (uint32_t)o->group_id,
                                  .wait_ms = STORE_WAIT_MS};
    char err[512] = "";
    int rc = spy_store_open(&sc, &d->store, err, sizeof(err));
    if (rc != SPY_OK)
        die_start(o, "cannot open the store in %s: %s", o->abs_data_dir,
                  err[0] != '\0' ? err : spy_strerror(rc));
    struct spy_server_config vc = {.listen_ip = o->ip,
                                   .port = (int)o->port,
                                   .advertise_ip = o->advertise,
                                   .group_id = (uint32_t)o->group_id,
                                   .sync = (int)o->sync,
                                   .idle_timeout_ms = (int)o->idle_timeout * 1000,
                                   .max_conns = (uint32_t)o->max_conns,
                                   .mem_wait_ms = MEM_WAIT_MS,
                                   .drain_ms = DRAIN_MS,
                                   .store = d->store,
                                   .pool = d->pool};
    if (spy_server_create(&vc, &d->server) != SPY_OK || spy_server_start(d->server) != SPY_OK)
        die_start(o, "cannot listen on %s port %lld (see the log)", o->ip, o->port);
    struct spy_reporter_config rc_cfg = {.master_ip = o->master_ip,
                                         .master_port = (int)o->master_port,
                                         .advertise_ip = o->advertise,
                                         .group_id = (uint32_t)o->group_id,
                                         .data_dir = o->abs_data_dir,
                                         .interval_ms = (int)o->report_interval * 1000,
                                         .connect_timeout_ms = REPORT_CONNECT,
                                         .timeout_ms = REPORT_DEADLINE,
                                         .store = d->store,
                                         .server = d->server};
    if (spy_reporter_start(&rc_cfg, &d->reporter) != SPY_OK)
        die_start(o, "cannot start the reporter");
}

/* stop_parts: the graceful shutdown. Returns the exit status: 0, or 1 if
 * connections would not end (the store is then left for the kernel to close:
 * closing it under a running put is unsafe). */
static int stop_parts(struct daemon_parts *d)
{
    spy_reporter_stop(d->reporter);
    int left = spy_server_stop(d->server);
    if (left != 0) {
        spy_error("exiting without closing the store: %d connection(s) still running", left);
        return 1;
    }
    spy_server_destroy(d->server);
    spy_store_close(d->store);
    spy_mempool_destroy(d->pool);
    return 0;
}

/* block_signals: SIGTERM/SIGINT go to sigwait in the main thread only (every
 * thread inherits this mask); SIGPIPE is ignored (sends use MSG_NOSIGNAL too). */
static void block_signals(sigset_t *set)
{
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

int main(int argc, char **argv)
{
    struct options o = {0}; /* the daemon's config, read-only once parsed */
    parse_options(&o, argc, argv);
    sigset_t set;
    block_signals(&set);
    if (o.daemonize)
        daemonize(&o);
    spy_log_set_name("spy_server");
    spy_log_set_level(o.debug_short || o.debug_long ? SPY_LOG_DEBUG : SPY_LOG_INFO);
    if (spy_log_open(o.abs_error_log) != 0)
        die_start(&o, "cannot open --error_log %s: %s", o.abs_error_log, strerror(errno));
    o.log_to_file = o.abs_error_log[0] != '\0';
    write_pid_file(&o);
    struct daemon_parts d = {0};
    start_parts(&o, &d);
    spy_info("serving group %lld on %s port %d (advertised as %s), data in %s", o.group_id, o.ip,
             spy_server_port(d.server), o.advertise, o.abs_data_dir);
    if (o.ready_fd >= 0) {
        ssize_t w = write(o.ready_fd, "\n", 1);
        (void)w;
        close(o.ready_fd);
        o.ready_fd = -1;
    }
    int sig = 0;
    while (sigwait(&set, &sig) != 0)
        ;
    spy_info("signal %d: shutting down", sig);
    int status = stop_parts(&d);
    if (o.abs_pid_file[0] != '\0')
        unlink(o.abs_pid_file);
    spy_info("stopped");
    free(o.abs_data_dir);
    free(o.abs_error_log);
    free(o.abs_pid_file);
    return status;
}
