/* test_http_handlers.c - the test routes of test_http_handlers.h. */
#include "tests/registry/test_http_handlers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <h2o/timeout.h>
#include <openssl/evp.h>

#define MAX_SLICE     (1u << 20)
#define DEFAULT_SLICE (256u << 10)

enum route {
    R_ECHO,
    R_SLOW,
    R_HOLD,
    R_DOWNLOAD,
    R_JSON,
    R_REJECT,
    R_ASYNC,
    R_FAIL,
    R_STATS,
    R_NOTFOUND
};

/* Per loop: /slow's timeout and the download pattern. */
struct loop_data {
    h2o_timeout_t slow;
    unsigned char *pattern; /* MAX_SLICE + 251 bytes, byte i = i % 251 */
};

struct test_http_req {
    struct test_http_ctx *ctx;
    struct spy_http_request *req; /* valid while neither finished nor aborted */
    struct spy_http_loop *loop;
    enum route route;
    int refs; /* the layer's hold, plus a pending /hold release or /async job */
    int finished, aborted;
    EVP_MD_CTX *md;
    uint64_t length;
    h2o_timeout_entry_t timer;
    struct spy_http_msg msg;
    uint64_t total, sent, fail_at;
    size_t slice;
    int chunked;
};

struct test_http_job {
    struct test_http_job *next;
    struct test_http_req *t;
};

/* unref: drops one reference; the last frees. */
static void unref(struct test_http_req *t)
{
    if (--t->refs > 0)
        return;
    EVP_MD_CTX_free(t->md);
    free(t);
}

/* finish: the handler made its terminal call. */
static void finish(struct test_http_req *t)
{
    t->finished = 1;
    t->req = NULL;
    unref(t);
}

/* respond_json: a terminal JSON reply. */
static void respond_json(struct test_http_req *t, int status, const char *body)
{
    const struct spy_http_field type = {"Content-Type", "application/json"};
    spy_http_respond(t->req, status, &type, 1, body, strlen(body));
    finish(t);
}

/* query_u64: the value of name=<digits> in the query, or def. */
static uint64_t query_u64(const char *query, const char *name, uint64_t def)
{
    size_t n = strlen(name);
    for (const char *p = query; p != NULL && *p != '\0'; p = strchr(p, '&'), p = p ? p + 1 : p) {
        if (strncmp(p, name, n) == 0 && p[n] == '=')
            return strtoull(p + n + 1, NULL, 10);
    }
    return def;
}

/* route_of: method and path to a route. */
static enum route route_of(const struct spy_http_request *req)
{
    int upload = !strcmp(req->method, "PUT") || !strcmp(req->method, "POST") ||
                 !strcmp(req->method, "PATCH");
    int get = !strcmp(req->method, "GET") || !strcmp(req->method, "HEAD");
    if (upload && !strcmp(req->path, "/echo"))
        return R_ECHO;
    if (upload && !strcmp(req->path, "/slow"))
        return R_SLOW;
    if (upload && !strcmp(req->path, "/hold"))
        return R_HOLD;
    if (upload && !strcmp(req->path, "/reject"))
        return R_REJECT;
    if (get && !strcmp(req->path, "/download"))
        return R_DOWNLOAD;
    if (get && !strcmp(req->path, "/json"))
        return R_JSON;
    if (get && !strcmp(req->path, "/async"))
        return R_ASYNC;
    if (get && !strcmp(req->path, "/fail"))
        return R_FAIL;
    if (get && !strcmp(req->path, "/stats"))
        return R_STATS;
    return R_NOTFOUND;
}

/* on_slow_timer: /slow's pause is over. */
static void on_slow_timer(h2o_timeout_entry_t *entry)
{
    struct test_http_req *t = H2O_STRUCT_FROM_MEMBER(struct test_http_req, timer, entry);
    spy_http_resume(t->req);
}

/* on_request: routes the request; the routes without a body answer here. */
static void on_request(struct spy_http_request *req)
{
    struct test_http_req *t = calloc(1, sizeof(*t));
    t->ctx = req->ctx;
    t->req = req;
    t->loop = req->loop;
    t->refs = 1;
    t->route = route_of(req);
    t->timer.cb = on_slow_timer;
    req->data = t;
    switch (t->route) {
    case R_ECHO:
    case R_SLOW:
    case R_HOLD:
        t->md = EVP_MD_CTX_new();
        EVP_DigestInit_ex(t->md, EVP_sha256(), NULL);
        break;
    case R_DOWNLOAD:
        t->total = query_u64(req->query, "n", 0);
        t->chunked = query_u64(req->query, "chunked", 0) != 0;
        t->fail_at = query_u64(req->query, "fail_at", UINT64_MAX);
        t->slice = (size_t)query_u64(req->query, "slice", DEFAULT_SLICE);
        if (t->slice == 0 || t->slice > MAX_SLICE)
            t->slice = DEFAULT_SLICE;
        break;
    case R_REJECT:
        respond_json(t, 413, "{\"errors\":[{\"code\":\"SIZE_INVALID\",\"message\":\"rejected\"}]}");
        break;
    case R_FAIL:
        spy_http_stream_fail(req);
        finish(t);
        break;
    case R_NOTFOUND:
        respond_json(t, 404, "{\"errors\":[{\"code\":\"NAME_UNKNOWN\",\"message\":\"no route\"}]}");
        break;
    default:
        break;
    }
}

/* on_body: hashes the slice; /slow and /hold pause (back-pressure). */
static void on_body(struct spy_http_request *req, const char *data, size_t len)
{
    struct test_http_req *t = req->data;
    struct test_http_ctx *ctx = t->ctx;
    atomic_fetch_add(&ctx->slices, 1);
    if (t->md == NULL)
        return;
    t->length += len;
    EVP_DigestUpdate(t->md, data, len);
    if (t->route == R_SLOW) {
        struct loop_data *ld = spy_http_loop_data(req->loop);
        spy_http_pause(req);
        h2o_timeout_link(spy_http_loop_evloop(req->loop), &ld->slow, &t->timer);
    } else if (t->route == R_HOLD && t->length == len) {
        spy_http_pause(req);
        pthread_mutex_lock(&ctx->hold_mu);
        t->refs++; /* for test_http_release's message */
        ctx->held = t;
        ctx->hold_paused = 1;
        pthread_mutex_unlock(&ctx->hold_mu);
    }
}

/* download_next: sends the next slice (spy_http_written_cb), or ends. */
static void download_next(struct spy_http_request *req)
{
    struct test_http_req *t = req->data;
    struct loop_data *ld = spy_http_loop_data(req->loop);
    if (t->sent >= t->fail_at) {
        spy_http_stream_fail(req);
        finish(t);
        return;
    }
    if (t->sent == t->total) {
        spy_http_stream_end(req);
        finish(t);
        return;
    }
    uint64_t n = t->total - t->sent;
    if (n > t->slice)
        n = t->slice;
    if (t->fail_at - t->sent < n)
        n = t->fail_at - t->sent;
    const unsigned char *p = ld->pattern + t->sent % 251;
    t->sent += n;
    spy_http_stream_write(req, p, (size_t)n, download_next);
}

/* start_download: the head, then the first slice. */
static void start_download(struct test_http_req *t)
{
    const struct spy_http_field type = {"Content-Type", "application/octet-stream"};
    spy_http_stream_begin(t->req, 200, &type, 1, t->chunked ? -1 : (int64_t)t->total);
    if (t->req->is_head) {
        spy_http_stream_end(t->req);
        finish(t);
        return;
    }
    download_next(t->req);
}

/* reply_digest: {"length":N,"sha256":"<hex>"} for the hashing routes. */
static void reply_digest(struct test_http_req *t)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(t->md, md, &mdlen);
    char hex[65], body[160];
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(body, sizeof(body), "{\"length\":%" PRIu64 ",\"sha256\":\"%s\"}", t->length, hex);
    respond_json(t, 200, body);
}

/* on_body_end: replies, starts a download, or hands /async to the worker. */
static void on_body_end(struct spy_http_request *req)
{
    struct test_http_req *t = req->data;
    struct test_http_ctx *ctx = t->ctx;
    atomic_fetch_add(&ctx->bodies_done, 1);
    switch (t->route) {
    case R_ECHO:
    case R_SLOW:
    case R_HOLD:
        reply_digest(t);
        break;
    case R_DOWNLOAD:
        start_download(t);
        break;
    case R_JSON:
        respond_json(t, 200, "{\"ok\":true}");
        break;
    case R_STATS: {
        struct spy_http_stats st = {0};
        if (ctx->srv != NULL)
            spy_http_server_stats(ctx->srv, &st);
        char body[200];
        snprintf(body, sizeof(body),
                 "{\"connections\":%" PRIu64 ",\"requests\":%" PRIu64 ",\"aborts\":%" PRIu64
                 ",\"violations\":%" PRIu64 "}",
                 st.connections, st.requests, st.aborts, (uint64_t)atomic_load(&ctx->violations));
        respond_json(t, 200, body);
        break;
    }
    case R_ASYNC: {
        struct test_http_job *job = calloc(1, sizeof(*job));
        job->t = t;
        t->refs++;
        pthread_mutex_lock(&ctx->mu);
        job->next = ctx->jobs;
        ctx->jobs = job;
        pthread_cond_signal(&ctx->cv);
        pthread_mutex_unlock(&ctx->mu);
        break;
    }
    default:
        break;
    }
}

/* on_abort: counts it (and any second abort, a broken promise), cancels the
 * /slow timer and a pending /hold release, drops the hold's reference. */
static void on_abort(struct spy_http_request *req, int status)
{
    struct test_http_req *t = req->data;
    struct test_http_ctx *ctx = t->ctx;
    if (t->aborted || t->finished)
        atomic_fetch_add(&ctx->violations, 1);
    t->aborted = 1;
    t->req = NULL;
    atomic_fetch_add(&ctx->aborts, 1);
    atomic_store(&ctx->last_abort_status, status);
    if (h2o_timeout_is_linked(&t->timer))
        h2o_timeout_unlink(&t->timer);
    pthread_mutex_lock(&ctx->hold_mu);
    if (ctx->held == t) {
        ctx->held = NULL;
        ctx->hold_paused = 0;
        t->refs--; /* no release will come */
    }
    pthread_mutex_unlock(&ctx->hold_mu);
    unref(t);
}

/* on_released: test_http_release's message, on the request's loop. */
static void on_released(struct spy_http_msg *msg)
{
    struct test_http_req *t = H2O_STRUCT_FROM_MEMBER(struct test_http_req, msg, msg);
    if (!t->aborted && !t->finished)
        spy_http_resume(t->req);
    unref(t);
}

/* on_async_done: the worker's answer, on the request's loop. */
static void on_async_done(struct spy_http_msg *msg)
{
    struct test_http_req *t = H2O_STRUCT_FROM_MEMBER(struct test_http_req, msg, msg);
    if (!t->aborted && !t->finished)
        respond_json(t, 200, "{\"async\":true}"); /* drops the hold's reference */
    unref(t);                                     /* and this drops the job's */
}

/* worker_main: /async's worker thread: answers each job through the loop. */
static void *worker_main(void *arg)
{
    struct test_http_ctx *ctx = arg;
    pthread_mutex_lock(&ctx->mu);
    for (;;) {
        while (ctx->jobs == NULL && !ctx->stopping)
            pthread_cond_wait(&ctx->cv, &ctx->mu);
        if (ctx->jobs == NULL)
            break;
        struct test_http_job *job = ctx->jobs;
        ctx->jobs = job->next;
        pthread_mutex_unlock(&ctx->mu);
        spy_http_post(job->t->loop, &job->t->msg, on_async_done);
        free(job);
        pthread_mutex_lock(&ctx->mu);
    }
    pthread_mutex_unlock(&ctx->mu);
    return NULL;
}

/* on_loop_start: per loop, /slow's timeout and the download pattern. */
static void *on_loop_start(struct spy_http_loop *loop, void *ctx)
{
    struct test_http_ctx *c = ctx;
    struct loop_data *ld = calloc(1, sizeof(*ld));
    ld->pattern = malloc(MAX_SLICE + 251);
    for (size_t i = 0; i < MAX_SLICE + 251; i++)
        ld->pattern[i] = TEST_HTTP_PATTERN(i);
    h2o_timeout_init(spy_http_loop_evloop(loop), &ld->slow, c->slow_ms);
    return ld;
}

/* on_loop_stop: frees what on_loop_start made. */
static void on_loop_stop(struct spy_http_loop *loop, void *loop_data, void *ctx)
{
    (void)ctx;
    struct loop_data *ld = loop_data;
    h2o_timeout_dispose(spy_http_loop_evloop(loop), &ld->slow);
    free(ld->pattern);
    free(ld);
}

void test_http_ctx_init(struct test_http_ctx *ctx, struct spy_http_handler *h, unsigned slow_ms)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->slow_ms = slow_ms;
    pthread_mutex_init(&ctx->hold_mu, NULL);
    pthread_mutex_init(&ctx->mu, NULL);
    pthread_cond_init(&ctx->cv, NULL);
    pthread_create(&ctx->worker, NULL, worker_main, ctx);
    memset(h, 0, sizeof(*h));
    h->on_request = on_request;
    h->on_body = on_body;
    h->on_body_end = on_body_end;
    h->on_abort = on_abort;
    h->on_loop_start = on_loop_start;
    h->on_loop_stop = on_loop_stop;
    h->ctx = ctx;
}

void test_http_ctx_fini(struct test_http_ctx *ctx)
{
    pthread_mutex_lock(&ctx->mu);
    ctx->stopping = 1;
    pthread_cond_signal(&ctx->cv);
    pthread_mutex_unlock(&ctx->mu);
    pthread_join(ctx->worker, NULL);
    pthread_mutex_destroy(&ctx->hold_mu);
    pthread_mutex_destroy(&ctx->mu);
    pthread_cond_destroy(&ctx->cv);
}

int test_http_hold_paused(struct test_http_ctx *ctx)
{
    pthread_mutex_lock(&ctx->hold_mu);
    int paused = ctx->hold_paused;
    pthread_mutex_unlock(&ctx->hold_mu);
    return paused;
}

int test_http_release(struct test_http_ctx *ctx)
{
    pthread_mutex_lock(&ctx->hold_mu);
    struct test_http_req *t = ctx->held;
    ctx->held = NULL;
    ctx->hold_paused = 0;
    if (t != NULL)
        spy_http_post(t->loop, &t->msg, on_released);
    pthread_mutex_unlock(&ctx->hold_mu);
    return t != NULL ? 0 : -1;
}
