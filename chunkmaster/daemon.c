#include "chunkmaster/daemon.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chunkmaster/http.h"
#include "common/log.h"
#include "common/status.h"

#define TICK_MS        1000
#define FID_DRAIN_MS   5000 /* at stop, how long fid requests in flight may finish */
#define MAX_BODY_BYTES (1u << 20)

struct daemon {
    struct spy_master *m;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
    h2o_socket_t *listener;
    h2o_socket_t *signals;
    h2o_timeout_t tick_timeout;
    h2o_timeout_entry_t tick_entry;
    int stopping;
};

void spy_daemon_block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* open_listener: a non-blocking listening socket on the first address of
 * host:port that binds; -1 with the reason logged. */
static int open_listener(const char *host, int port)
{
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res;
    int gai = getaddrinfo(host, service, &hints, &res);
    if (gai != 0) {
        spy_error("cannot listen on %s:%d: %s", host, port, gai_strerror(gai));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int on = 1;
        if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
                        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 512) != 0)) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        spy_error("cannot listen on %s:%d: %s", host, port, strerror(err));
    return fd;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct daemon *d = listener->data;
    if (err != NULL)
        return;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock != NULL)
        h2o_accept(&d->accept, sock);
}

/* on_signal: the signalfd became readable (h2o read the siginfo into the
 * socket's buffer); ask the loop to stop. */
static void on_signal(h2o_socket_t *sock, const char *err)
{
    struct daemon *d = sock->data;
    if (err == NULL)
        h2o_buffer_consume(&sock->input, sock->input->size);
    d->stopping = 1;
}

/* log_change: one line per server state change; losing writability is a
 * warning, everything else information. */
static void log_change(void *arg, const struct spy_server *s, enum spy_server_state old_state,
                       enum spy_server_state new_state)
{
    int64_t now = *(const int64_t *)arg;
    enum spy_log_level level =
        new_state == SPY_STATE_STALE || new_state == SPY_STATE_DOWN ? SPY_LOG_WARN : SPY_LOG_INFO;
    spy_log(level, "chunkserver %s:%d (group %u): %s -> %s, last report %lld s ago", s->r.key.ip,
            s->r.key.port, (unsigned)s->r.group_id, spy_state_name(old_state),
            spy_state_name(new_state),
            s->reported ? (long long)((now - s->last_report_ms) / 1000) : -1LL);
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    struct daemon *d = H2O_STRUCT_FROM_MEMBER(struct daemon, tick_entry, entry);
    int64_t now = spy_clock_mono_ms();
    spy_state_tick(d->m->state, now, log_change, &now);
    h2o_timeout_link(d->ctx.loop, &d->tick_timeout, &d->tick_entry);
}

/* open_signals: SIGINT/SIGTERM (blocked by spy_daemon_block_signals) as a
 * readable socket on the loop. */
static int open_signals(struct daemon *d)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        spy_error("signalfd: %s", strerror(errno));
        return SPY_EIO;
    }
    d->signals = h2o_evloop_socket_create(d->ctx.loop, fd, 0);
    d->signals->data = d;
    h2o_socket_read_start(d->signals, on_signal);
    return SPY_OK;
}

/* setup_h2o: one host, one handler for every path, HTTP/1.1 only. */
static void setup_h2o(struct daemon *d)
{
    h2o_config_init(&d->config);
    d->config.max_request_entity_size = MAX_BODY_BYTES;
    d->config.http1.upgrade_to_http2 = 0;
    d->config.server_name = h2o_iovec_init(H2O_STRLIT("speedy-chunkmaster"));
    h2o_hostconf_t *host =
        h2o_config_register_host(&d->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    spy_http_register(host, d->m);
    h2o_context_init(&d->ctx, h2o_evloop_create(), &d->config);
    spy_http_attach(d->m, &d->ctx);
    d->accept.ctx = &d->ctx;
    d->accept.hosts = d->config.hosts;
}

/* shut_down: stops accepting, lets fid requests in flight finish (bounded),
 * then stops the worker. The loop is not run after that, so no handler can
 * see the worker gone. */
static void shut_down(struct daemon *d)
{
    struct spy_master *m = d->m;
    h2o_socket_read_stop(d->listener);
    h2o_socket_close(d->listener);
    int64_t deadline = spy_clock_mono_ms() + FID_DRAIN_MS;
    while (m->fids_in_flight > 0 && spy_clock_mono_ms() < deadline)
        h2o_evloop_run(d->ctx.loop, 100);
    h2o_timeout_unlink(&d->tick_entry);
    spy_worker_stop(m->worker);
    m->worker = NULL;
}

int spy_daemon_run(struct spy_master *m, const char *host, int port)
{
    int fd = open_listener(host, port);
    struct daemon *d = calloc(1, sizeof(*d));
    if (fd < 0 || d == NULL) {
        if (fd >= 0)
            close(fd);
        free(d);
        spy_worker_stop(m->worker);
        m->worker = NULL;
        return SPY_EIO;
    }
    d->m = m;
    setup_h2o(d);
    d->listener = h2o_evloop_socket_create(d->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    d->listener->data = d;
    h2o_socket_read_start(d->listener, on_accept);
    h2o_timeout_init(d->ctx.loop, &d->tick_timeout, TICK_MS);
    d->tick_entry.cb = on_tick;
    h2o_timeout_link(d->ctx.loop, &d->tick_timeout, &d->tick_entry);
    int rc = open_signals(d);
    if (rc == SPY_OK)
        spy_info("chunkmaster %s listening on %s:%d", SPY_MASTER_VERSION, host, port);
    while (rc == SPY_OK && !d->stopping)
        h2o_evloop_run(d->ctx.loop, INT32_MAX);
    spy_info("chunkmaster stopping");
    shut_down(d);
    /* The loop, its sockets and the context stay allocated until exit: h2o
     * 2.2.5 cannot dispose of a context with live connections. */
    return rc;
}
