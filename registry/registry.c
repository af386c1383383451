/* registry.c - the imageserver's router and the glue every handler shares:
 * per-loop set-up (blobstore attachment, the metadata poster on
 * spy_http_post), the request-state base (reference counts), error bodies,
 * the metadata submit helper, the /v2/ base check, and the operational
 * endpoints /metrics and /healthz.
 *
 * Routing: the path is split with spy_oci_route_split; a matched route with
 * a method it does not serve answers 405 UNSUPPORTED with Allow; a path that
 * is no route answers 404 (NAME_UNKNOWN under /v2/, UNSUPPORTED elsewhere).
 *
 * Shutdown (spy_http_server_stop): each loop's on_loop_stop keeps turning
 * the loop until the request states of that loop are gone (their metadata
 * ops delivered), bounded by STOP_WAIT_MS, then detaches the blobstore and
 * closes the poster: a metadata result posted after that is dropped instead
 * of reaching a destroyed loop. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/status.h"
#include "registry/registry.h"

#define STOP_WAIT_MS      10000 /* on_loop_stop: wait for requests' async work */
#define METRICS_MAX       16384 /* /metrics body */
#define RETRY_AFTER_S     "1"   /* TOOMANYREQUESTS: when to come back */
#define API_VERSION_NAME  "Docker-Distribution-API-Version"
#define API_VERSION_VALUE "registry/2.0"

const struct spy_http_field spy_registry_api_version_field = {API_VERSION_NAME, API_VERSION_VALUE};

/* A loop's state: the public part handlers see, plus what the router needs. */
struct reg_loop {
    struct spy_registry_loop pub; /* first: spy_registry_loop_of returns it */
    pthread_mutex_t post_mu;      /* orders posts against 'closed' (worker threads) */
    int closed;                   /* set at stop: later metadata results are dropped */
    unsigned live;                /* request states alive on this loop (loop thread) */
};

/* One metadata op in flight: spy_registry_meta_submit swaps the op's done and
 * data for these and restores them before the handler's done runs. */
struct meta_call {
    struct spy_http_msg msg; /* zeroed: spy_http_post's requirement */
    struct spy_meta_op *op;
    struct spy_registry_req *base;
    spy_meta_done_fn done;
    void *data;
};

/* Method bits of the route table. */
enum {
    M_GET = 1,
    M_HEAD = 2,
    M_PUT = 4,
    M_POST = 8,
    M_PATCH = 16,
    M_DELETE = 32,
};

/* ---- time ------------------------------------------------------------- */

/* ---- responses -------------------------------------------------------- */

/* with_api_version: copies fields into out and appends the API version
 * field; returns the count, or -1 when there are too many. */
static int with_api_version(const struct spy_http_field *fields, size_t nfields,
                            struct spy_http_field out[SPY_REGISTRY_FIELDS_MAX + 1])
{
    if (nfields > SPY_REGISTRY_FIELDS_MAX)
        return -1;
    if (nfields > 0)
        memcpy(out, fields, nfields * sizeof(*fields));
    out[nfields].name = API_VERSION_NAME;
    out[nfields].value = API_VERSION_VALUE;
    return (int)nfields + 1;
}

int spy_registry_respond(struct spy_http_request *req, int status,
                         const struct spy_http_field *fields, size_t nfields, const void *body,
                         size_t len)
{
    struct spy_http_field all[SPY_REGISTRY_FIELDS_MAX + 1];
    int n = with_api_version(fields, nfields, all);
    if (n < 0)
        return SPY_EINVAL;
    return spy_http_respond(req, status, all, (size_t)n, body, len);
}

int spy_registry_stream_begin(struct spy_http_request *req, int status,
                              const struct spy_http_field *fields, size_t nfields,
                              int64_t content_length)
{
    struct spy_http_field all[SPY_REGISTRY_FIELDS_MAX + 1];
    int n = with_api_version(fields, nfields, all);
    if (n < 0)
        return SPY_EINVAL;
    return spy_http_stream_begin(req, status, all, (size_t)n, content_length);
}

/* error_status: the OCI error body for one code with an explicit HTTP
 * status (the unknown-route 404 uses UNSUPPORTED, whose own status is 405). */
static int error_status(struct spy_http_request *req, int status, enum spy_oci_code code,
                        const char *message, const char *detail, const struct spy_http_field *extra,
                        size_t nextra)
{
    struct spy_http_field fields[SPY_REGISTRY_FIELDS_MAX];
    size_t n = 0;
    fields[n++] = (struct spy_http_field){"Content-Type", "application/json"};
    if (code == SPY_OCI_TOOMANYREQUESTS)
        fields[n++] = (struct spy_http_field){"Retry-After", RETRY_AFTER_S};
    for (size_t i = 0; i < nextra && n < SPY_REGISTRY_FIELDS_MAX; i++)
        fields[n++] = extra[i];
    char *body = NULL;
    size_t len = 0;
    if (spy_oci_error_json(code, message, detail, &body, &len) != SPY_OK) {
        /* Out of memory: the status and headers still say what happened. */
        body = NULL;
        len = 0;
    }
    int rc = spy_registry_respond(req, status, fields, n, body, len);
    free(body);
    return rc;
}

int spy_registry_error(struct spy_http_request *req, enum spy_oci_code code, const char *message,
                       const char *detail, const struct spy_http_field *extra, size_t nextra)
{
    return error_status(req, spy_oci_code_http_status(code), code, message, detail, extra, nextra);
}

enum spy_oci_code spy_registry_code_for(int status, enum spy_oci_code not_found_code)
{
    switch (status) {
    case SPY_OK:
        return SPY_OCI_OK;
    case SPY_ENOTFOUND:
        return not_found_code;
    case SPY_EBUSY:                     /* a full metadata queue */
    case SPY_EUNAVAIL:                  /* no fids cached or no route table: the master is away */
        return SPY_OCI_TOOMANYREQUESTS; /* 429 with Retry-After: clients back off and retry */
    case SPY_ERANGE:
        return SPY_OCI_RANGE_INVALID;
    default: /* EIO, ETIMEDOUT, ECORRUPT, ENOMEM, EABORTED, EINVAL: ours, not the client's */
        return SPY_OCI_UNKNOWN;
    }
}

/* ---- request states --------------------------------------------------- */

struct spy_registry_loop *spy_registry_loop_of(struct spy_http_request *req)
{
    return spy_http_loop_data(req->loop);
}

/* copy_part: a NUL-terminated copy of s[0..len), or NULL for no part. Sets
 * *failed when the copy could not be made. */
static char *copy_part(const char *s, size_t len, int *failed)
{
    if (s == NULL)
        return NULL;
    char *out = strndup(s, len);
    if (out == NULL)
        *failed = 1;
    return out;
}

struct spy_registry_req *spy_registry_req_new(struct spy_http_request *req,
                                              const struct spy_oci_route *route, size_t size,
                                              const struct spy_registry_req_ops *ops)
{
    struct spy_registry_loop *loop = spy_registry_loop_of(req);
    struct spy_registry_req *base = calloc(1, size);
    if (base == NULL) {
        spy_error("registry: out of memory for a request state (%zu bytes)", size);
        return NULL;
    }
    int failed = 0;
    base->name = copy_part(route->name, route->name_len, &failed);
    base->ref = copy_part(route->ref, route->ref_len, &failed);
    if (failed) {
        spy_error("registry: out of memory copying a route");
        free(base->name);
        free(base->ref);
        free(base);
        return NULL;
    }
    base->ops = ops;
    base->req = req;
    base->loop = loop;
    base->reg = loop->reg;
    base->route = *route;
    base->refs = 1;
    ((struct reg_loop *)loop)->live++;
    req->data = base;
    return base;
}

void spy_registry_req_ref(struct spy_registry_req *base)
{
    base->refs++;
}

void spy_registry_req_unref(struct spy_registry_req *base)
{
    if (--base->refs > 0)
        return;
    if (base->ops != NULL && base->ops->destroy != NULL)
        base->ops->destroy(base);
    ((struct reg_loop *)base->loop)->live--;
    free(base->name);
    free(base->ref);
    free(base);
}

void spy_registry_req_finish(struct spy_registry_req *base)
{
    if (base->req == NULL)
        return;
    base->req = NULL;
    spy_registry_req_unref(base);
}

/* ---- metadata ops ----------------------------------------------------- */

/* meta_call_done: the op's done as the registry set it: restores the
 * handler's done/data, runs it, and drops the op's reference. */
static void meta_call_done(struct spy_meta_op *op)
{
    struct meta_call *call = op->data;
    struct spy_registry_req *base = call->base;
    op->done = call->done;
    op->data = call->data;
    free(call);
    op->done(op);
    spy_registry_req_unref(base);
}

/* on_meta_msg: the posted message reached the loop: deliver the op. */
static void on_meta_msg(struct spy_http_msg *msg)
{
    struct meta_call *call = (struct meta_call *)msg;
    spy_meta_op_deliver(call->op);
}

/* meta_post: the poster, on a metadata worker thread (or the destroying
 * thread): hands the op to its loop unless that loop has stopped. */
static void meta_post(void *ctx, struct spy_meta_op *op)
{
    struct reg_loop *rl = ctx;
    struct meta_call *call = op->data;
    pthread_mutex_lock(&rl->post_mu);
    if (!rl->closed)
        spy_http_post(rl->pub.http, &call->msg, on_meta_msg);
    else
        spy_warn("registry: a metadata result arrived after its loop stopped; dropped");
    pthread_mutex_unlock(&rl->post_mu);
}

int spy_registry_meta_submit(struct spy_registry_req *base, struct spy_meta_op *op)
{
    struct meta_call *call = calloc(1, sizeof(*call));
    if (call == NULL) {
        spy_error("registry: out of memory submitting a metadata op");
        return SPY_ENOMEM;
    }
    call->op = op;
    call->base = base;
    call->done = op->done;
    call->data = op->data;
    op->done = meta_call_done;
    op->data = call;
    spy_registry_req_ref(base);
    int rc = spy_meta_submit(base->reg->meta, op, &base->loop->poster);
    if (rc != SPY_OK) {
        op->done = call->done;
        op->data = call->data;
        free(call);
        spy_registry_req_unref(base);
    }
    return rc;
}

/* ---- per-loop set-up -------------------------------------------------- */

/* on_loop_start: attaches the loop to the blobstore and builds its poster.
 * NULL on failure: the loop then answers 500 to everything. */
static void *on_loop_start(struct spy_http_loop *loop, void *ctx)
{
    struct spy_registry *reg = ctx;
    struct reg_loop *rl = calloc(1, sizeof(*rl));
    if (rl == NULL) {
        spy_error("registry: out of memory setting up a loop");
        return NULL;
    }
    rl->pub.reg = reg;
    rl->pub.http = loop;
    rl->pub.poster.post = meta_post;
    rl->pub.poster.ctx = rl;
    pthread_mutex_init(&rl->post_mu, NULL);
    int rc = spy_blob_loop_attach(reg->blob, spy_http_loop_evloop(loop), &rl->pub.blob);
    if (rc != SPY_OK) {
        spy_error("registry: cannot attach a loop to the blobstore: %s", spy_strerror(rc));
        pthread_mutex_destroy(&rl->post_mu);
        free(rl);
        return NULL;
    }
    return rl;
}

/* on_loop_stop: waits (bounded) for the loop's request states to end, then
 * detaches the blobstore and closes the poster. A loop whose work did not
 * end in time is left allocated (its posts are dropped): the process is
 * exiting and freeing it would let a late result touch freed memory. */
static void on_loop_stop(struct spy_http_loop *loop, void *loop_data, void *ctx)
{
    (void)ctx;
    struct reg_loop *rl = loop_data;
    if (rl == NULL)
        return;
    h2o_loop_t *ev = spy_http_loop_evloop(loop);
    int64_t deadline = spy_clock_ms() + STOP_WAIT_MS;
    while (rl->live > 0 && spy_clock_ms() < deadline)
        h2o_evloop_run(ev, 50);
    int detached = 0;
    while (!detached && spy_clock_ms() < deadline) {
        detached = spy_blob_loop_detach(rl->pub.blob) == SPY_OK;
        if (!detached)
            h2o_evloop_run(ev, 50);
    }
    pthread_mutex_lock(&rl->post_mu);
    rl->closed = 1;
    pthread_mutex_unlock(&rl->post_mu);
    if (rl->live > 0 || !detached) {
        spy_error("registry: loop stopped with %u request(s) still waiting%s", rl->live,
                  detached ? "" : " and blobstore work running");
        return;
    }
    h2o_evloop_run(ev, 0); /* h2o releases the closed sockets on a turn */
    pthread_mutex_destroy(&rl->post_mu);
    free(rl);
}

/* ---- the base check, /metrics, /healthz ------------------------------- */

void spy_registry_base(struct spy_http_request *req)
{
    const struct spy_http_field ct = {"Content-Type", "application/json"};
    spy_registry_respond(req, 200, &ct, 1, "{}", 2);
}

/* A text buffer for the metrics page; appends are cut at the end. */
struct text {
    char buf[METRICS_MAX];
    size_t len;
};

/* metric: one Prometheus sample with its HELP and TYPE lines. */
static void metric(struct text *t, const char *name, const char *type, const char *help,
                   int64_t value)
{
    if (t->len >= sizeof(t->buf))
        return;
    int n = snprintf(t->buf + t->len, sizeof(t->buf) - t->len,
                     "# HELP %s %s\n# TYPE %s %s\n%s %" PRId64 "\n", name, help, name, type, name,
                     value);
    if (n > 0)
        t->len = t->len + (size_t)n < sizeof(t->buf) ? t->len + (size_t)n : sizeof(t->buf);
}

#define COUNTER(t, n, h, v) metric(t, "speedy_registry_" n, "counter", h, (int64_t)(v))
#define GAUGE(t, n, h, v)   metric(t, "speedy_registry_" n, "gauge", h, (int64_t)(v))

/* metrics_http: the connection layer's counters. */
static void metrics_http(struct text *t, const struct spy_registry *reg)
{
    struct spy_http_server *srv = __atomic_load_n(&reg->http, __ATOMIC_ACQUIRE);
    struct spy_http_stats s = {0};
    if (srv != NULL)
        spy_http_server_stats(srv, &s);
    COUNTER(t, "http_connections_total", "connections accepted", s.connections);
    COUNTER(t, "http_requests_total", "request heads parsed", s.requests);
    GAUGE(t, "http_connections_open", "connections open now", s.open);
    COUNTER(t, "http_aborts_total", "requests aborted (client gone, timeout)", s.aborts);
}

/* metrics_meta: the metadata layer's counters. */
static void metrics_meta(struct text *t, struct spy_meta *meta)
{
    struct spy_meta_stats s;
    spy_meta_stats(meta, &s);
    COUNTER(t, "meta_submitted_total", "metadata ops queued", s.submitted);
    COUNTER(t, "meta_busy_total", "metadata ops refused, queue full", s.busy);
    COUNTER(t, "meta_timeouts_total", "metadata ops expired in the queue", s.timeouts);
    COUNTER(t, "meta_executed_total", "metadata ops run", s.executed);
    COUNTER(t, "meta_failed_total", "metadata ops failed with a database error", s.failed);
    COUNTER(t, "meta_retries_lost_total", "re-runs after a lost connection", s.retries_lost);
    COUNTER(t, "meta_retries_deadlock_total", "re-runs after a deadlock", s.retries_deadlock);
    COUNTER(t, "meta_connects_total", "MySQL connections made", s.connects);
    COUNTER(t, "meta_connect_failures_total", "MySQL connects failed", s.connect_failures);
    COUNTER(t, "meta_cache_hits_total", "lookups answered from the cache", s.cache_hits);
    COUNTER(t, "meta_cache_misses_total", "lookups that went to MySQL", s.cache_misses);
    COUNTER(t, "meta_orphans_total", "pieces recorded as orphans", s.orphans);
    GAUGE(t, "meta_queued", "metadata ops in the queue now", s.queued);
    GAUGE(t, "meta_cache_bytes", "bytes held by the cache", s.cache_bytes);
    GAUGE(t, "meta_cache_entries", "entries in the cache", s.cache_entries);
}

/* metrics_blob: the blobstore's counters. */
static void metrics_blob(struct text *t, struct spy_blob *blob)
{
    struct spy_blob_stats s;
    spy_blob_stats(blob, &s);
    COUNTER(t, "blob_route_refreshes_total", "route tables installed", s.route_refreshes);
    COUNTER(t, "blob_route_errors_total", "route fetches failed", s.route_errors);
    COUNTER(t, "blob_fid_refills_total", "fid ranges fetched", s.fid_refills);
    COUNTER(t, "blob_fid_errors_total", "fid fetches failed", s.fid_errors);
    GAUGE(t, "blob_fids_available", "fids cached", s.fids_available);
    GAUGE(t, "blob_master_ok", "1 if the last master request succeeded", s.master_ok);
    GAUGE(t, "blob_route_age_ms", "age of the route table (-1: none)", s.route_age_ms);
    GAUGE(t, "blob_route_groups", "groups in the route table", s.route_groups);
    COUNTER(t, "blob_writes_started_total", "blob writes started", s.writes_started);
    COUNTER(t, "blob_writes_done_total", "blob writes completed", s.writes_done);
    COUNTER(t, "blob_writes_failed_total", "blob writes failed or aborted", s.writes_failed);
    COUNTER(t, "blob_pieces_written_total", "pieces acknowledged", s.pieces_written);
    COUNTER(t, "blob_bytes_written_total", "blob bytes written", s.bytes_written);
    COUNTER(t, "blob_piece_retries_total", "piece attempts after the first", s.piece_retries);
    COUNTER(t, "blob_orphans_total", "fids given up by writers", s.orphans);
    COUNTER(t, "blob_reads_started_total", "blob reads started", s.reads_started);
    COUNTER(t, "blob_reads_done_total", "blob reads completed", s.reads_done);
    COUNTER(t, "blob_reads_failed_total", "blob reads failed", s.reads_failed);
    COUNTER(t, "blob_bytes_read_total", "blob bytes read", s.bytes_read);
    COUNTER(t, "blob_read_failovers_total", "reads moved to another replica", s.read_failovers);
    COUNTER(t, "blob_read_aheads_used_total", "pieces that began with their read-ahead GET",
            s.read_aheads_used);
    COUNTER(t, "blob_read_aheads_dropped_total", "read-ahead GETs dropped unused",
            s.read_aheads_dropped);
    COUNTER(t, "blob_deletes_done_total", "fid deletes done", s.deletes_done);
    COUNTER(t, "blob_deletes_failed_total", "fid deletes failed", s.deletes_failed);
    COUNTER(t, "blob_conns_opened_total", "chunkserver connections opened", s.conns_opened);
    COUNTER(t, "blob_conns_reused_total", "requests on pooled connections", s.conns_reused);
    GAUGE(t, "blob_conns_idle", "pooled idle connections", s.conns_idle);
    COUNTER(t, "blob_timeouts_total", "chunkserver deadlines passed", s.timeouts);
    COUNTER(t, "blob_server_failures_total", "failures charged to servers", s.server_failures);
    GAUGE(t, "blob_blacklisted", "servers blocked now", s.blacklisted);
}

/* serve_metrics: GET /metrics in the Prometheus text format. */
static void serve_metrics(struct spy_http_request *req, const struct spy_registry *reg)
{
    struct text *t = malloc(sizeof(*t));
    if (t == NULL) {
        spy_registry_error(req, SPY_OCI_UNKNOWN, "out of memory", NULL, NULL, 0);
        return;
    }
    t->len = 0;
    metrics_http(t, reg);
    metrics_meta(t, reg->meta);
    metrics_blob(t, reg->blob);
    const struct spy_http_field ct = {"Content-Type", "text/plain; version=0.0.4"};
    spy_registry_respond(req, 200, &ct, 1, t->buf, t->len);
    free(t);
}

/* serve_health: GET /healthz: 200 once the blobstore has a route table
 * (the registry can serve blobs), 503 before; the body says which parts
 * look healthy. */
static void serve_health(struct spy_http_request *req, const struct spy_registry *reg)
{
    struct spy_blob_stats b;
    spy_blob_stats(reg->blob, &b);
    struct spy_meta_stats m;
    spy_meta_stats(reg->meta, &m);
    char body[256];
    int ready = b.route_age_ms >= 0;
    int n = snprintf(body, sizeof(body),
                     "{\"status\":\"%s\",\"route_table\":%s,\"master_ok\":%s,"
                     "\"meta_queued\":%" PRIu64 "}\n",
                     ready ? "ok" : "unavailable", ready ? "true" : "false",
                     b.master_ok ? "true" : "false", m.queued);
    const struct spy_http_field fields[] = {{"Content-Type", "application/json"},
                                            {"Cache-Control", "no-store"}};
    spy_registry_respond(req, ready ? 200 : 503, fields, 2, body, (size_t)n);
}

/* ---- routing ---------------------------------------------------------- */

/* method_bit: the request method as a bit of the route table (0: other). */
static unsigned method_bit(const char *method)
{
    static const struct {
        const char *name;
        unsigned bit;
    } methods[] = {{"GET", M_GET},   {"HEAD", M_HEAD},   {"PUT", M_PUT},
                   {"POST", M_POST}, {"PATCH", M_PATCH}, {"DELETE", M_DELETE}};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(method, methods[i].name) == 0)
            return methods[i].bit;
    return 0;
}

/* allowed: the methods a route serves, and their Allow header value. */
static unsigned allowed(enum spy_oci_route_kind kind, const char **allow)
{
    switch (kind) {
    case SPY_OCI_ROUTE_MANIFEST:
        *allow = "GET, HEAD, PUT, DELETE";
        return M_GET | M_HEAD | M_PUT | M_DELETE;
    case SPY_OCI_ROUTE_BLOB:
        *allow = "GET, HEAD, DELETE";
        return M_GET | M_HEAD | M_DELETE;
    case SPY_OCI_ROUTE_UPLOADS:
        *allow = "POST";
        return M_POST;
    case SPY_OCI_ROUTE_UPLOAD:
        *allow = "GET, PATCH, PUT, DELETE";
        return M_GET | M_PATCH | M_PUT | M_DELETE;
    default: /* base, catalog, tags, referrers: reads */
        *allow = "GET, HEAD";
        return M_GET | M_HEAD;
    }
}

/* dispatch: hands a validated route to its handler. */
static void dispatch(struct spy_http_request *req, const struct spy_oci_route *route)
{
    switch (route->kind) {
    case SPY_OCI_ROUTE_BASE:
        spy_registry_base(req);
        break;
    case SPY_OCI_ROUTE_CATALOG:
        spy_registry_catalog(req);
        break;
    case SPY_OCI_ROUTE_TAGS:
        spy_registry_tags(req, route);
        break;
    case SPY_OCI_ROUTE_MANIFEST:
        spy_registry_manifest(req, route);
        break;
    case SPY_OCI_ROUTE_BLOB:
        spy_registry_blob(req, route);
        break;
    case SPY_OCI_ROUTE_UPLOADS:
        spy_registry_upload_start(req, route);
        break;
    case SPY_OCI_ROUTE_UPLOAD:
        spy_registry_upload(req, route);
        break;
    case SPY_OCI_ROUTE_REFERRERS:
        spy_registry_referrers(req, route);
        break;
    default:
        spy_registry_error(req, SPY_OCI_UNKNOWN, "unroutable request", NULL, NULL, 0);
        break;
    }
}

/* not_found: a path that is no registry route. */
static void not_found(struct spy_http_request *req)
{
    if (strncmp(req->path, "/v2/", 4) == 0)
        spy_registry_error(req, SPY_OCI_NAME_UNKNOWN, "no such route", NULL, NULL, 0);
    else
        error_status(req, 404, SPY_OCI_UNSUPPORTED, "not a registry API path", NULL, NULL, 0);
}

/* operational: /metrics and /healthz; returns 1 if the path was one. */
static int operational(struct spy_http_request *req, const struct spy_registry *reg)
{
    int metrics = strcmp(req->path, "/metrics") == 0;
    if (!metrics && strcmp(req->path, "/healthz") != 0)
        return 0;
    unsigned m = method_bit(req->method);
    if (m != M_GET && m != M_HEAD) {
        const struct spy_http_field allow = {"Allow", "GET, HEAD"};
        spy_registry_error(req, SPY_OCI_UNSUPPORTED, NULL, NULL, &allow, 1);
    } else if (metrics) {
        serve_metrics(req, reg);
    } else {
        serve_health(req, reg);
    }
    return 1;
}

/* on_request: routes a request head to its handler. */
static void on_request(struct spy_http_request *req)
{
    struct spy_registry_loop *loop = spy_registry_loop_of(req);
    if (loop == NULL) {
        spy_registry_error(req, SPY_OCI_UNKNOWN, "this server thread failed to start", NULL, NULL,
                           0);
        return;
    }
    spy_debug("registry: %s %s%s%s", req->method, req->path, req->query != NULL ? "?" : "",
              req->query != NULL ? req->query : "");
    if (operational(req, loop->reg))
        return;
    struct spy_oci_route route;
    int rc = spy_oci_route_split(req->path, strlen(req->path), &route);
    if (rc == SPY_ENOTFOUND) {
        not_found(req);
        return;
    }
    if (rc != SPY_OK) {
        spy_registry_error(req, SPY_OCI_NAME_INVALID, NULL, NULL, NULL, 0);
        return;
    }
    const char *allow = NULL;
    if ((method_bit(req->method) & allowed(route.kind, &allow)) == 0) {
        const struct spy_http_field field = {"Allow", allow};
        spy_registry_error(req, SPY_OCI_UNSUPPORTED, "method not allowed on this route", NULL,
                           &field, 1);
        return;
    }
    dispatch(req, &route);
}

/* on_body: forwards a body slice to the handler's state. */
static void on_body(struct spy_http_request *req, const char *data, size_t len)
{
    struct spy_registry_req *base = req->data;
    if (base != NULL && base->ops != NULL && base->ops->on_body != NULL)
        base->ops->on_body(base, data, len);
}

/* on_body_end: forwards the end of the body. */
static void on_body_end(struct spy_http_request *req)
{
    struct spy_registry_req *base = req->data;
    if (base != NULL && base->ops != NULL && base->ops->on_body_end != NULL)
        base->ops->on_body_end(base);
}

/* on_abort: lets the handler cancel, then ends the request side. */
static void on_abort(struct spy_http_request *req, int status)
{
    struct spy_registry_req *base = req->data;
    if (base == NULL || base->req == NULL)
        return;
    spy_debug("registry: %s %s aborted: %s", req->method, req->path, spy_strerror(status));
    if (base->ops != NULL && base->ops->on_abort != NULL)
        base->ops->on_abort(base, status);
    spy_registry_req_finish(base);
}

void spy_registry_handler(struct spy_registry *reg, struct spy_http_handler *out)
{
    memset(out, 0, sizeof(*out));
    out->on_request = on_request;
    out->on_body = on_body;
    out->on_body_end = on_body_end;
    out->on_abort = on_abort;
    out->on_loop_start = on_loop_start;
    out->on_loop_stop = on_loop_stop;
    out->ctx = reg;
}
