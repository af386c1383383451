/* http_server.c - listeners, loop threads, stop, and cross-thread posts for
 * the HTTP/1.1 layer (see http_server.h). The connections themselves are
 * http_conn.c's.
 *
 * Start-up opens every listening socket on the calling thread, so bind errors
 * come back from spy_http_server_start; each loop thread then wraps its own
 * socket in its own evloop (h2o's buffers and allocators are per thread) and
 * reports ready. Stop raises a flag and wakes every loop through its
 * multithread queue; each loop drains, then tears itself down. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o/memory.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "common/log.h"
#include "common/status.h"
#include "registry/http_loop.h"

/* Connections accepted per listener wake-up, to share the loop fairly. */
#define ACCEPT_BATCH        64
#define BODY_BUFFERS_CACHED 4            /* drained body input buffers a loop keeps */
#define BODY_BUFFER_DEFAULT (512u << 10) /* one read burst when so_rcvbuf is the kernel's */

/* h2o 2.2.5's per-thread cache of memory-pool chunks: its depth, and an
 * allocation size of which four fill a chunk (release_pool_cache). */
#define POOL_CACHE_DEPTH   16
#define POOL_QUARTER_CHUNK 1000

void spy_http_config_init(struct spy_http_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->backlog = 1024;
    cfg->max_connections = 4096;
    cfg->max_head = 64u << 10;
    cfg->drain_max = 1u << 20;
    cfg->so_rcvbuf = 256 << 10;
    cfg->so_sndbuf = 256 << 10;
    cfg->head_timeout_ms = 10000;
    cfg->io_timeout_ms = 30000;
    cfg->keepalive_timeout_ms = 30000;
    cfg->linger_ms = 2000;
    cfg->stop_grace_ms = 5000;
}

/* ---- TLS --------------------------------------------------------------- */

/* select_alpn: the ALPN answer: "http/1.1" if the client offers it, else no
 * ALPN at all (the client then speaks HTTP/1.1 or gives up); never h2, whose
 * h2o implementation buffers whole request bodies. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char http11[] = "\x08http/1.1";
    unsigned char *picked = NULL;
    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto(&picked, outlen, http11, sizeof(http11) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = picked;
    return SSL_TLSEXT_ERR_OK;
}

/* tls_fail: one line naming what failed and OpenSSL's reason; frees ctx. */
static int tls_fail(SSL_CTX *ctx, char *err, size_t errcap, const char *what, const char *path)
{
    char reason[256] = "unknown error";
    unsigned long e = ERR_peek_last_error();
    if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    snprintf(err, errcap, "%s %s: %s", what, path, reason);
    SSL_CTX_free(ctx);
    return SPY_EINVAL;
}

int spy_http_tls_create(const char *cert_path, const char *key_path, SSL_CTX **out, char *err,
                        size_t errcap)
{
    const char *paths[] = {cert_path, key_path};
    for (int i = 0; i < 2; i++)
        if (access(paths[i], R_OK) != 0) {
            snprintf(err, errcap, "cannot read %s: %s", paths[i], strerror(errno));
            return SPY_EINVAL;
        }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errcap, "cannot create a TLS context: out of memory");
        return SPY_ENOMEM;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1)
        return tls_fail(ctx, err, errcap, "cannot load the TLS certificate chain", cert_path);
    if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1)
        return tls_fail(ctx, err, errcap,
                        ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH
                            ? "the TLS private key does not match the certificate"
                            : "cannot load the TLS private key",
                        key_path);
    if (SSL_CTX_check_private_key(ctx) != 1)
        return tls_fail(ctx, err, errcap, "the TLS private key does not match the certificate",
                        key_path);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    *out = ctx;
    return SPY_OK;
}

/* ---- listening sockets ------------------------------------------------- */

/* resolve: the address to bind. No host means IPv6 "::", which also takes
 * IPv4 (IPV6_V6ONLY off), or IPv4 "0.0.0.0" where IPv6 is unavailable. */
static int resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    char service[8];
    snprintf(service, sizeof(service), "%u", port);
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host != NULL && host[0] != '\0' ? host : NULL, service, &hints, &res);
    if (rc != 0) {
        spy_error("http: cannot resolve '%s': %s", host != NULL ? host : "", gai_strerror(rc));
        return SPY_EINVAL;
    }
    const struct addrinfo *pick = res;
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
        if (ai->ai_family == AF_INET6 && (host == NULL || host[0] == '\0')) {
            pick = ai;
            break;
        }
    memcpy(ss, pick->ai_addr, pick->ai_addrlen);
    *len = pick->ai_addrlen;
    freeaddrinfo(res);
    return SPY_OK;
}

/* set_port: the port inside a resolved address. */
static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
}

/* open_listener: one non-blocking SO_REUSEPORT listening socket. The buffer
 * sizes are set here so accepted sockets inherit them (and the TCP window
 * scale negotiated in the handshake fits them). Returns the fd or -1. */
static int open_listener(const struct spy_http_config *cfg, const struct sockaddr_storage *ss,
                         socklen_t len)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        spy_error("http: socket: %s", strerror(errno));
        return -1;
    }
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        spy_warn("http: SO_REUSEPORT: %s", strerror(errno));
    if (ss->ss_family == AF_INET6 && (cfg->host == NULL || cfg->host[0] == '\0'))
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (cfg->so_rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &cfg->so_rcvbuf, sizeof(cfg->so_rcvbuf));
    if (cfg->so_sndbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cfg->so_sndbuf, sizeof(cfg->so_sndbuf));
    if (bind(fd, (const struct sockaddr *)ss, len) != 0 || listen(fd, cfg->backlog) != 0) {
        spy_error("http: bind/listen on port %u: %s",
                  ntohs(((const struct sockaddr_in *)ss)->sin_port), strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* open_listeners: one socket per loop on the same address and port (the
 * first one picks the port when cfg.port is 0). */
static int open_listeners(struct spy_http_server *srv)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int st = resolve(srv->cfg.host, srv->cfg.port, &ss, &len);
    if (st != SPY_OK)
        return st;
    for (unsigned i = 0; i < srv->nloops; i++) {
        int fd = open_listener(&srv->cfg, &ss, len);
        if (fd < 0)
            return SPY_EIO;
        srv->loops[i].listen_fd = fd;
        if (i == 0) {
            struct sockaddr_storage bound;
            socklen_t blen = sizeof(bound);
            getsockname(fd, (struct sockaddr *)&bound, &blen);
            srv->port =
                ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
            set_port(&ss, srv->port);
        }
    }
    return SPY_OK;
}

/* ---- loop threads ------------------------------------------------------ */

/* on_accept: the listener is readable: accept a batch of connections, up to
 * max_connections, past which accepting pauses until one closes. */
static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct spy_http_loop *l = listener->data;
    if (err != NULL) {
        spy_error("http: listener: %s", err);
        return;
    }
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        if (l->nconns >= l->srv->cfg.max_connections) {
            h2o_socket_read_stop(l->listener);
            l->accept_paused = 1;
            return;
        }
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            return;
        spy_http_conn_accept(l, sock);
    }
}

void spy_http_loop_conn_closed(struct spy_http_loop *l)
{
    if (l->accept_paused && !l->draining && l->nconns < l->srv->cfg.max_connections) {
        l->accept_paused = 0;
        h2o_socket_read_start(l->listener, on_accept);
    }
}

const char *spy_http_loop_date(struct spy_http_loop *l)
{
    time_t now = time(NULL);
    if (now != l->date_sec) {
        l->date_sec = now;
        spy_http_format_date(now, l->date);
    }
    return l->date;
}

/* on_posts: delivers messages from spy_http_post, in order. */
static void on_posts(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        struct spy_http_msg *msg =
            H2O_STRUCT_FROM_MEMBER(struct spy_http_msg, _super.link, messages->next);
        h2o_linklist_unlink(&msg->_super.link);
        msg->_cb(msg);
    }
}

/* on_wake: spy_http_server_stop's wake-ups carry no message; the loop checks
 * the stop flag after every turn. */
static void on_wake(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    (void)messages;
}

/* on_grace_over: the stop grace period ended with requests still running. */
static void on_grace_over(h2o_timeout_entry_t *entry)
{
    struct spy_http_loop *l = H2O_STRUCT_FROM_MEMBER(struct spy_http_loop, grace_entry, entry);
    spy_warn("http: loop %u: aborting %u connections at stop", l->index, l->nconns);
    spy_http_conn_abort_all(l);
}

/* begin_drain: stop has begun: close the listener, close idle connections,
 * give the rest stop_grace_ms. */
static void begin_drain(struct spy_http_loop *l)
{
    l->draining = 1;
    h2o_socket_read_stop(l->listener);
    h2o_socket_close(l->listener);
    l->listener = NULL;
    spy_http_conn_drain_all(l);
    if (l->nconns > 0)
        h2o_timeout_link(l->evloop, &l->grace_timeout, &l->grace_entry);
}

/* loop_init: the loop, its queue and timeouts, the handler's per-loop data,
 * and the listener; all on the loop's own thread. */
static void loop_init(struct spy_http_loop *l)
{
    const struct spy_http_config *cfg = &l->srv->cfg;
    l->evloop = h2o_evloop_create();
    l->queue = h2o_multithread_create_queue(l->evloop);
    h2o_multithread_register_receiver(l->queue, &l->wake_receiver, on_wake);
    h2o_multithread_register_receiver(l->queue, &l->post_receiver, on_posts);
    h2o_timeout_init(l->evloop, &l->head_timeout, cfg->head_timeout_ms);
    h2o_timeout_init(l->evloop, &l->io_timeout, cfg->io_timeout_ms);
    h2o_timeout_init(l->evloop, &l->keepalive_timeout, cfg->keepalive_timeout_ms);
    h2o_timeout_init(l->evloop, &l->linger_timeout, cfg->linger_ms);
    h2o_timeout_init(l->evloop, &l->zero_timeout, 0);
    h2o_timeout_init(l->evloop, &l->grace_timeout, cfg->stop_grace_ms);
    l->grace_entry.cb = on_grace_over;
    h2o_linklist_init_anchor(&l->conns);
    l->body_proto.allocator.max = BODY_BUFFERS_CACHED;
    l->body_proto._initial_buf.capacity =
        cfg->so_rcvbuf > 0 ? 2 * (size_t)cfg->so_rcvbuf : BODY_BUFFER_DEFAULT;
    const struct spy_http_handler *h = &l->srv->handler;
    if (h->on_loop_start != NULL)
        l->data = h->on_loop_start(l, h->ctx);
    l->listener = h2o_evloop_socket_create(l->evloop, l->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    l->listener->data = l;
    h2o_socket_read_start(l->listener, on_accept);
}

/* release_buffer_cache: h2o keeps freed socket input buffers in a per-thread
 * cache it never empties; a loop thread empties its own before it exits, or
 * every thread would leak its last buffers. h2o_mem_alloc_recycle hands out
 * cached blocks (malloc'd) while the cache is not empty. */
static void release_buffer_cache(void)
{
    h2o_mem_recycle_t *cache = &h2o_socket_buffer_prototype.allocator;
    while (cache->cnt > 0)
        free(h2o_mem_alloc_recycle(cache, 1));
}

/* release_pool_cache: h2o's TLS sockets build their encrypted output in an
 * h2o_mem_pool_t, whose 4 KiB chunks h2o 2.2.5 also caches per thread (at most
 * POOL_CACHE_DEPTH, in a cache memory.c keeps private). A TLS loop thread
 * empties it before it exits: it takes that many chunks into a pool (cached
 * ones first; four allocations just under a quarter chunk fill one) and frees
 * them itself rather than back to the cache. A chunk starts with its 'next'. */
static void release_pool_cache(void)
{
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    for (int i = 0; i < POOL_CACHE_DEPTH * 4; i++)
        h2o_mem_alloc_pool(&pool, POOL_QUARTER_CHUNK);
    for (void *chunk = pool.chunks; chunk != NULL;) {
        void *next = *(void **)chunk;
        free(chunk);
        chunk = next;
    }
    pool.chunks = NULL;
    h2o_mem_clear_pool(&pool);
}

/* loop_fini: after the last connection: deliver what was posted, let the
 * handler tear down, free the loop. */
static void loop_fini(struct spy_http_loop *l)
{
    const struct spy_http_handler *h = &l->srv->handler;
    h2o_evloop_run(l->evloop, 0);
    if (h->on_loop_stop != NULL)
        h->on_loop_stop(l, l->data, h->ctx);
    h2o_evloop_run(l->evloop, 0);
    if (h2o_timeout_is_linked(&l->grace_entry))
        h2o_timeout_unlink(&l->grace_entry);
    h2o_timeout_t *all[] = {&l->head_timeout,   &l->io_timeout,   &l->keepalive_timeout,
                            &l->linger_timeout, &l->zero_timeout, &l->grace_timeout};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        h2o_timeout_dispose(l->evloop, all[i]);
    h2o_multithread_unregister_receiver(l->queue, &l->wake_receiver);
    h2o_multithread_unregister_receiver(l->queue, &l->post_receiver);
    h2o_multithread_destroy_queue(l->queue);
    free(l->queue); /* 2.2.5's evloop build closes the queue but never frees it */
    h2o_evloop_destroy(l->evloop);
    release_buffer_cache();
    while (l->body_proto.allocator.cnt > 0)
        free(h2o_mem_alloc_recycle(&l->body_proto.allocator, 1));
    if (l->srv->cfg.tls != NULL)
        release_pool_cache();
}

/* loop_main: a loop thread: serve until stop, drain, tear down. */
static void *loop_main(void *arg)
{
    struct spy_http_loop *l = arg;
    struct spy_http_server *srv = l->srv;
    loop_init(l);
    pthread_mutex_lock(&srv->ready_mu);
    srv->ready++;
    pthread_cond_broadcast(&srv->ready_cv);
    pthread_mutex_unlock(&srv->ready_mu);
    for (;;) {
        h2o_evloop_run(l->evloop, INT32_MAX);
        if (!l->draining && atomic_load(&srv->stopping))
            begin_drain(l);
        if (l->draining && l->nconns == 0)
            break;
    }
    loop_fini(l);
    return NULL;
}

/* ---- server ------------------------------------------------------------ */

/* server_free: closes listening sockets no thread took and frees srv. */
static void server_free(struct spy_http_server *srv, unsigned started)
{
    for (unsigned i = started; i < srv->nloops; i++)
        if (srv->loops[i].listen_fd >= 0)
            close(srv->loops[i].listen_fd);
    pthread_mutex_destroy(&srv->ready_mu);
    pthread_cond_destroy(&srv->ready_cv);
    if (srv->cfg.tls != NULL)
        SSL_CTX_free(srv->cfg.tls);
    free(srv->loops);
    free(srv->host);
    free(srv);
}

/* check_config: values the layer cannot work with. */
static int check_config(const struct spy_http_config *cfg, const struct spy_http_handler *h)
{
    if (h == NULL || h->on_request == NULL) {
        spy_error("http: a handler with on_request is required");
        return SPY_EINVAL;
    }
    if (cfg->max_head < 64 || cfg->max_head > (64u << 20) || cfg->max_connections == 0 ||
        cfg->backlog <= 0) {
        spy_error("http: max_head must be 64 B..64 MiB, max_connections and backlog positive");
        return SPY_EINVAL;
    }
    return SPY_OK;
}

/* server_new: srv with copies of cfg and the handler, and its loops. */
static struct spy_http_server *server_new(const struct spy_http_config *cfg,
                                          const struct spy_http_handler *h)
{
    struct spy_http_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return NULL;
    srv->cfg = *cfg;
    if (srv->cfg.tls != NULL)
        SSL_CTX_up_ref(srv->cfg.tls);
    srv->handler = *h;
    srv->host = strdup(cfg->host != NULL ? cfg->host : "");
    srv->cfg.host = srv->host;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    srv->nloops = cfg->threads != 0 ? cfg->threads : (cores > 0 ? (unsigned)cores : 1);
    srv->loops = calloc(srv->nloops, sizeof(*srv->loops));
    pthread_mutex_init(&srv->ready_mu, NULL);
    pthread_cond_init(&srv->ready_cv, NULL);
    if (srv->host == NULL || srv->loops == NULL) {
        server_free(srv, srv->nloops);
        return NULL;
    }
    for (unsigned i = 0; i < srv->nloops; i++) {
        srv->loops[i].srv = srv;
        srv->loops[i].index = i;
        srv->loops[i].listen_fd = -1;
    }
    return srv;
}

/* wait_ready: until n loops accept (their wake receivers exist). */
static void wait_ready(struct spy_http_server *srv, unsigned n)
{
    pthread_mutex_lock(&srv->ready_mu);
    while (srv->ready < n)
        pthread_cond_wait(&srv->ready_cv, &srv->ready_mu);
    pthread_mutex_unlock(&srv->ready_mu);
}

/* stop_loops: raises the stop flag, wakes the first n loops, joins them. */
static void stop_loops(struct spy_http_server *srv, unsigned n)
{
    atomic_store(&srv->stopping, 1);
    for (unsigned i = 0; i < n; i++)
        h2o_multithread_send_message(&srv->loops[i].wake_receiver, NULL);
    for (unsigned i = 0; i < n; i++)
        pthread_join(srv->loops[i].thread, NULL);
}

int spy_http_server_start(const struct spy_http_config *cfg, const struct spy_http_handler *h,
                          struct spy_http_server **out)
{
    int st = check_config(cfg, h);
    if (st != SPY_OK)
        return st;
    struct spy_http_server *srv = server_new(cfg, h);
    if (srv == NULL)
        return SPY_ENOMEM;
    if ((st = open_listeners(srv)) != SPY_OK) {
        server_free(srv, 0);
        return st;
    }
    signal(SIGPIPE, SIG_IGN);
    for (unsigned i = 0; i < srv->nloops; i++) {
        int rc = pthread_create(&srv->loops[i].thread, NULL, loop_main, &srv->loops[i]);
        if (rc != 0) {
            spy_error("http: pthread_create: %s", strerror(rc));
            wait_ready(srv, i);
            stop_loops(srv, i);
            server_free(srv, i);
            return SPY_EIO;
        }
    }
    wait_ready(srv, srv->nloops);
    spy_info("http: listening on port %u with %u threads%s", srv->port, srv->nloops,
             srv->cfg.tls != NULL ? " (TLS)" : "");
    *out = srv;
    return SPY_OK;
}

uint16_t spy_http_server_port(const struct spy_http_server *srv)
{
    return srv->port;
}

void spy_http_server_stats(const struct spy_http_server *srv, struct spy_http_stats *out)
{
    struct spy_http_server *s = (struct spy_http_server *)srv;
    out->connections = atomic_load_explicit(&s->connections, memory_order_relaxed);
    out->requests = atomic_load_explicit(&s->requests, memory_order_relaxed);
    out->open = atomic_load_explicit(&s->open, memory_order_relaxed);
    out->aborts = atomic_load_explicit(&s->aborts, memory_order_relaxed);
}

void spy_http_server_stop(struct spy_http_server *srv)
{
    stop_loops(srv, srv->nloops);
    spy_info("http: stopped");
    server_free(srv, srv->nloops);
}

h2o_loop_t *spy_http_loop_evloop(struct spy_http_loop *loop)
{
    return loop->evloop;
}

void *spy_http_loop_data(struct spy_http_loop *loop)
{
    return loop->data;
}

void spy_http_post(struct spy_http_loop *loop, struct spy_http_msg *msg,
                   void (*cb)(struct spy_http_msg *msg))
{
    memset(&msg->_super, 0, sizeof(msg->_super));
    msg->_cb = cb;
    h2o_multithread_send_message(&loop->post_receiver, &msg->_super);
}
