/* http_loop.h - internals shared by http_server.c (listeners, threads, stop,
 * cross-thread posts) and http_conn.c (the per-connection state machine).
 * Not for handlers: their contract is registry/http_server.h.
 *
 * Everything in a struct spy_http_loop belongs to its loop thread, except the
 * fields marked otherwise. */
#ifndef SPY_HTTP_LOOP_H
#define SPY_HTTP_LOOP_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <h2o/linklist.h>
#include <h2o/multithread.h>
#include <h2o/socket.h>
#include <h2o/timeout.h>

#include "registry/http_server.h"

struct spy_http_loop {
    struct spy_http_server *srv; /* read-only */
    unsigned index;
    pthread_t thread;
    int listen_fd; /* owned by 'listener' once the thread wraps it */
    h2o_evloop_t *evloop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t wake_receiver; /* spy_http_server_stop's wake-ups */
    h2o_multithread_receiver_t post_receiver; /* spy_http_post */
    h2o_socket_t *listener;
    int accept_paused; /* at max_connections */
    /* One h2o_timeout per duration, as h2o requires. */
    h2o_timeout_t head_timeout, io_timeout, keepalive_timeout, linger_timeout;
    h2o_timeout_t zero_timeout; /* deferred work: the next turn of the loop */
    h2o_timeout_t grace_timeout;
    h2o_timeout_entry_t grace_entry;
    h2o_linklist_t conns; /* every open connection */
    /* Input buffers while a body streams: one read burst (2 x so_rcvbuf) in
     * one allocation, where h2o's own 8 KiB prototype would double its way
     * up, copying each burst once more. Heads use h2o's prototype, so an idle
     * or slow connection holds no more than it always did. */
    h2o_buffer_prototype_t body_proto;
    unsigned nconns;
    int draining; /* stop has begun: no accepts, no keep-alive */
    void *data;   /* on_loop_start's */
    time_t date_sec;
    char date[SPY_HTTP_DATE_LEN + 1];
};

struct spy_http_server {
    struct spy_http_config cfg; /* read-only after start; cfg.host points at 'host' */
    char *host;
    struct spy_http_handler handler; /* read-only */
    uint16_t port;
    unsigned nloops;
    struct spy_http_loop *loops;
    atomic_int stopping;
    pthread_mutex_t ready_mu;
    pthread_cond_t ready_cv;
    unsigned ready;
    /* Counters (struct spy_http_stats), any thread. */
    atomic_uint_fast64_t connections, requests, open, aborts;
};

/* http_conn.c: takes an accepted socket and serves HTTP/1.1 on it until it
 * closes. The socket belongs to the connection from here on. */
void spy_http_conn_accept(struct spy_http_loop *loop, h2o_socket_t *sock);

/* http_conn.c: stop has begun. Closes connections between requests; the
 * others close after their current request. */
void spy_http_conn_drain_all(struct spy_http_loop *loop);

/* http_conn.c: the grace period is over: aborts every connection (on_abort
 * with SPY_EABORTED for requests the handler still holds). */
void spy_http_conn_abort_all(struct spy_http_loop *loop);

/* http_server.c: a connection of this loop was freed (resumes accepting if
 * max_connections had paused it). */
void spy_http_loop_conn_closed(struct spy_http_loop *loop);

/* http_server.c: the current IMF-fixdate, cached per second. */
const char *spy_http_loop_date(struct spy_http_loop *loop);

#endif
