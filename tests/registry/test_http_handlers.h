/* test_http_handlers.h - the handlers the HTTP layer's tests and benchmark
 * run against (tests/registry/test_http_server.c in-process,
 * test_http_testserver.c as a program for curl).
 *
 * Routes:
 *   PUT|POST|PATCH /echo       streams the body through SHA-256 (EVP, incremental);
 *                              replies {"length":N,"sha256":"<hex>"}
 *   PUT|POST|PATCH /slow       the same, but pauses after every slice and resumes
 *                              from a timer slow_ms later (back-pressure)
 *   PUT|POST|PATCH /hold       the same, but pauses at the first slice until the
 *                              test calls test_http_release (from any thread)
 *   GET|HEAD /download?n=N[&chunked=1][&fail_at=K][&slice=S]
 *                              streams N bytes, byte i = i % 251, in slices of S
 *                              (256 KiB); chunked without a length; fail_at ends
 *                              with spy_http_stream_fail once K bytes are sent
 *   GET /json                  {"ok":true}
 *   PUT /reject                413 from on_request, before the body (early reject)
 *   GET /async                 answered from a worker thread via spy_http_post
 *   GET /fail                  spy_http_stream_fail before any response (500)
 *   GET /stats                 the server's counters (ctx->srv, set by the caller)
 *   anything else              404
 * Every request checks the layer's promises: on_abort at most once and never
 * after the handler's terminal call (counted in 'violations'). */
#ifndef TEST_HTTP_HANDLERS_H
#define TEST_HTTP_HANDLERS_H

#include <pthread.h>
#include <stdatomic.h>

#include "registry/http_server.h"

/* Download byte i (the test clients check every byte). */
#define TEST_HTTP_PATTERN(i) ((unsigned char)((i) % 251))

struct test_http_job;

struct test_http_ctx {
    struct spy_http_server *srv; /* for /stats; set after spy_http_server_start */
    unsigned slow_ms;            /* /slow's pause per slice */
    atomic_uint_fast64_t aborts;
    atomic_int last_abort_status;
    atomic_uint_fast64_t violations;  /* broken layer promises; must stay 0 */
    atomic_uint_fast64_t bodies_done; /* on_body_end calls */
    atomic_uint_fast64_t slices;      /* on_body calls */
    /* /hold: the paused request, for test_http_release */
    pthread_mutex_t hold_mu;
    struct test_http_req *held;
    int hold_paused;
    /* /async's worker */
    pthread_t worker;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct test_http_job *jobs;
    int stopping;
};

/* Fills h with the routes above over ctx and starts the /async worker. */
void test_http_ctx_init(struct test_http_ctx *ctx, struct spy_http_handler *h, unsigned slow_ms);

/* Stops the worker (call before spy_http_server_stop). */
void test_http_ctx_fini(struct test_http_ctx *ctx);

/* True while a /hold request is paused at its first slice. */
int test_http_hold_paused(struct test_http_ctx *ctx);

/* Resumes the paused /hold request from any thread (via spy_http_post).
 * Returns 0, or -1 if none is paused. */
int test_http_release(struct test_http_ctx *ctx);

#endif
