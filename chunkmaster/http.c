#include "chunkmaster/http.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunkmaster/request.h"
#include "chunkmaster/status_page.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/status.h"

#define JSON_TYPE "application/json"

struct master_handler {
    h2o_handler_t super;
    struct spy_master *m;
};

/* reason_of: the reason phrase for the statuses this API uses. */
static const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

/* send_body: the one place a response leaves: status, Content-Type and
 * Content-Length always set (h2o 2.2.5 closes the connection of a non-200
 * answer without a length), body copied by h2o. */
static int send_body(struct spy_master *m, h2o_req_t *req, int status, const char *type,
                     const char *body, size_t len)
{
    m->counters.http_client_errors += status >= 400 && status < 500;
    m->counters.http_server_errors += status >= 500;
    req->res.status = status;
    req->res.reason = reason_of(status);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    h2o_send_inline(req, body, len);
    return 0;
}

/* send_json: sends v (reference stolen) compactly; 500 if out of memory. */
static int send_json(struct spy_master *m, h2o_req_t *req, int status, json_t *v)
{
    char *text = v != NULL ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (text == NULL) {
        spy_error("http: out of memory building a JSON answer");
        static const char oom[] = "{\"Error\":\"out of memory\"}";
        return send_body(m, req, 500, JSON_TYPE, oom, sizeof(oom) - 1);
    }
    send_body(m, req, status, JSON_TYPE, text, strlen(text));
    free(text);
    return 0;
}

/* send_error: {"Error":"<formatted reason>"} with the given status. Bytes
 * outside printable ASCII (from a client's path, or cut by truncation) become
 * '?', so the message is always valid JSON text. */
__attribute__((format(printf, 4, 5))) static int send_error(struct spy_master *m, h2o_req_t *req,
                                                            int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *p = msg; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
    return send_json(m, req, status, json_pack("{s:s}", "Error", msg));
}

static int send_ok(struct spy_master *m, h2o_req_t *req)
{
    return send_json(m, req, 200, json_pack("{s:b}", "Ok", 1));
}

void spy_http_persist_server(struct spy_master *m, const struct spy_server *s)
{
    struct spy_db_server_row row = {.r = s->r, .reported = s->reported, .draining = s->draining};
    if (s->reported)
        row.last_report_unix_ms = spy_clock_wall_ms() - (spy_clock_mono_ms() - s->last_report_ms);
    spy_worker_save_server(m->worker, &row);
}

/* on_report: POST /v1/chunkserver/reportinfo. A first report registers the
 * server; a report naming another group than the registered one is refused. */
static int on_report(struct spy_master *m, h2o_req_t *req)
{
    struct spy_report r;
    char err[256];
    if (spy_request_parse_report(req->entity.base, req->entity.len, &r, err, sizeof(err)) !=
        SPY_OK) {
        m->counters.reports_rejected++;
        spy_warn("http: report rejected: %s", err);
        return send_error(m, req, 400, "%s", err);
    }
    const struct spy_server *s;
    int is_new;
    int64_t now = spy_clock_mono_ms();
    int rc = spy_state_report(m->state, &r, now, &s, &is_new);
    if (rc == SPY_EEXISTS) {
        const struct spy_server *known = spy_state_find(m->state, &r.key);
        m->counters.reports_rejected++;
        spy_warn("http: %s:%d reports group %u but is registered in group %u", r.key.ip, r.key.port,
                 (unsigned)r.group_id, (unsigned)known->r.group_id);
        return send_error(m, req, 409,
                          "%s:%d is registered in group %u, not %u; remove it first "
                          "(POST /v1/chunkmaster/server/remove) to move it",
                          r.key.ip, r.key.port, (unsigned)known->r.group_id, (unsigned)r.group_id);
    }
    if (rc != SPY_OK)
        return send_error(m, req, 500, "%s", spy_strerror(rc));
    m->counters.reports++;
    if (is_new)
        spy_info("http: registered chunkserver %s:%d in group %u", r.key.ip, r.key.port,
                 (unsigned)r.group_id);
    spy_http_persist_server(m, s);
    enum spy_server_state state = spy_state_of(m->state, s, now);
    return send_json(m, req, 200,
                     json_pack("{s:b,s:s,s:b}", "Ok", 1, "State", spy_state_name(state),
                               "GroupWritable",
                               spy_state_group_writable(m->state, r.group_id, now)));
}

/* declare: registers declared servers (all or nothing) and persists them. */
static int declare(struct spy_master *m, h2o_req_t *req, const struct spy_server_decl *decls,
                   size_t n)
{
    char err[256];
    int rc = spy_state_declare(m->state, decls, n, err, sizeof(err));
    if (rc == SPY_EEXISTS)
        return send_error(m, req, 409, "%s", err);
    if (rc != SPY_OK)
        return send_error(m, req, 500, "%s", err);
    for (size_t i = 0; i < n; i++)
        spy_http_persist_server(m, spy_state_find(m->state, &decls[i].key));
    spy_info("http: %zu chunkserver(s) declared", n);
    return send_ok(m, req);
}

/* on_init: POST /v1/chunkserver/initserver {"GroupId","Ip","Port"}. */
static int on_init(struct spy_master *m, h2o_req_t *req)
{
    struct spy_server_decl decl;
    char err[256];
    if (spy_request_parse_init(req->entity.base, req->entity.len, &decl, err, sizeof(err)) !=
        SPY_OK)
        return send_error(m, req, 400, "%s", err);
    return declare(m, req, &decl, 1);
}

/* on_batch_init: POST /v1/chunkserver/batchinitserver [{...}, ...]. */
static int on_batch_init(struct spy_master *m, h2o_req_t *req)
{
    struct spy_server_decl *decls;
    size_t n;
    char err[256];
    if (spy_request_parse_batch_init(req->entity.base, req->entity.len, &decls, &n, err,
                                     sizeof(err)) != SPY_OK)
        return send_error(m, req, 400, "%s", err);
    declare(m, req, decls, n);
    free(decls);
    return 0;
}

/* on_route: GET /v1/chunkmaster/route, from memory. */
static int on_route(struct spy_master *m, h2o_req_t *req)
{
    return send_json(m, req, 200, spy_state_route_json(m->state, spy_clock_mono_ms()));
}

/* parse_group_path: the group id of /v1/chunkmaster/<id>/groupinfo; 1 if the
 * path has that shape (then *group is set or *bad tells why not). */
static int parse_group_path(h2o_iovec_t path, uint32_t *group, int *bad)
{
    static const char prefix[] = "/v1/chunkmaster/", suffix[] = "/groupinfo";
    size_t plen = sizeof(prefix) - 1, slen = sizeof(suffix) - 1;
    if (path.len <= plen + slen || memcmp(path.base, prefix, plen) != 0 ||
        memcmp(path.base + path.len - slen, suffix, slen) != 0)
        return 0;
    char digits[16];
    size_t n = path.len - plen - slen;
    long long v = -1;
    if (n < sizeof(digits)) {
        memcpy(digits, path.base + plen, n);
        digits[n] = '\0';
        if (spy_parse_int(digits, &v) != 0 || digits[0] == '+' || digits[0] == '-')
            v = -1;
    }
    *bad = v < 0 || v > SPY_GROUP_ID_MAX;
    *group = *bad ? 0 : (uint32_t)v;
    return 1;
}

/* on_group_info: GET /v1/chunkmaster/<groupId>/groupinfo: the group's servers
 * as in the route table. */
static int on_group_info(struct spy_master *m, h2o_req_t *req, uint32_t group, int bad)
{
    if (bad)
        return send_error(m, req, 400, "group id must be 0..%d", SPY_GROUP_ID_MAX);
    json_t *v = spy_state_group_json(m->state, group, spy_clock_mono_ms());
    if (v == NULL)
        return send_error(m, req, 404, "no server in group %u", (unsigned)group);
    return send_json(m, req, 200, v);
}

/* on_check_error: GET /v1/chunkmaster/checkerror: "1" if any server is DOWN,
 * else "0" (the original's plain-text answer). */
static int on_check_error(struct spy_master *m, h2o_req_t *req)
{
    struct spy_state_summary sum;
    spy_state_summarize(m->state, spy_clock_mono_ms(), &sum);
    return send_body(m, req, 200, "text/plain; charset=utf-8",
                     sum.by_state[SPY_STATE_DOWN] > 0 ? "1" : "0", 1);
}

/* on_server_drain: POST /v1/chunkmaster/server/drain {"Ip","Port","Draining"}. */
static int on_server_drain(struct spy_master *m, h2o_req_t *req)
{
    struct spy_server_key key;
    int draining;
    char err[256];
    if (spy_request_parse_server_drain(req->entity.base, req->entity.len, &key, &draining, err,
                                       sizeof(err)) != SPY_OK)
        return send_error(m, req, 400, "%s", err);
    if (spy_state_set_draining(m->state, &key, draining) != SPY_OK)
        return send_error(m, req, 404, "unknown server %s:%d", key.ip, key.port);
    const struct spy_server *s = spy_state_find(m->state, &key);
    spy_http_persist_server(m, s);
    spy_info("http: operator %s draining of %s:%d", draining ? "started" : "ended", key.ip,
             key.port);
    return send_json(m, req, 200, spy_state_server_json(m->state, s, spy_clock_mono_ms()));
}

/* on_group_drain: POST /v1/chunkmaster/group/drain {"GroupId","Draining"}. */
static int on_group_drain(struct spy_master *m, h2o_req_t *req)
{
    uint32_t group;
    int draining;
    char err[256];
    if (spy_request_parse_group_drain(req->entity.base, req->entity.len, &group, &draining, err,
                                      sizeof(err)) != SPY_OK)
        return send_error(m, req, 400, "%s", err);
    int rc = spy_state_set_group_draining(m->state, group, draining);
    if (rc == SPY_ENOTFOUND)
        return send_error(m, req, 404, "no server in group %u", (unsigned)group);
    if (rc != SPY_OK)
        return send_error(m, req, 500, "%s", spy_strerror(rc));
    spy_worker_save_group(m->worker, group, draining);
    spy_info("http: operator %s draining of group %u", draining ? "started" : "ended",
             (unsigned)group);
    return send_json(m, req, 200, spy_state_group_json(m->state, group, spy_clock_mono_ms()));
}

/* on_remove: POST /v1/chunkmaster/server/remove {"Ip","Port"[,"Force"]}. */
static int on_remove(struct spy_master *m, h2o_req_t *req)
{
    struct spy_server_key key;
    int force;
    char err[256];
    if (spy_request_parse_remove(req->entity.base, req->entity.len, &key, &force, err,
                                 sizeof(err)) != SPY_OK)
        return send_error(m, req, 400, "%s", err);
    int64_t now = spy_clock_mono_ms();
    const struct spy_server *s = spy_state_find(m->state, &key);
    enum spy_server_state state = s != NULL ? spy_state_of(m->state, s, now) : SPY_STATE_INIT;
    int rc = spy_state_remove(m->state, &key, force, now);
    if (rc == SPY_ENOTFOUND)
        return send_error(m, req, 404, "unknown server %s:%d", key.ip, key.port);
    if (rc == SPY_EBUSY)
        return send_error(m, req, 409,
                          "%s:%d is %s; only a DOWN or INIT server is removed without "
                          "\"Force\":true",
                          key.ip, key.port, spy_state_name(state));
    spy_worker_delete_server(m->worker, &key);
    spy_info("http: operator removed chunkserver %s:%d (was %s)", key.ip, key.port,
             spy_state_name(state));
    return send_ok(m, req);
}

/* The fid request in flight: the job the worker fills, the message that
 * brings it back to the loop, and the request, cleared by guard_dispose if
 * h2o disposes of the request first. */
struct fid_guard;
struct fid_request {
    struct spy_fid_job job;
    h2o_multithread_message_t msg;
    struct spy_master *m;
    h2o_req_t *req;
    struct fid_guard *guard;
};

/* Lives in the request's pool; tells the fid request when the pool goes. */
struct fid_guard {
    struct fid_request *fr;
};

static void guard_dispose(void *p)
{
    struct fid_guard *g = p;
    if (g->fr != NULL) {
        g->fr->req = NULL;
        g->fr->guard = NULL;
    }
}

/* fid_job_done: worker thread; only posts the job back to the loop. */
static void fid_job_done(struct spy_fid_job *job)
{
    struct fid_request *fr = H2O_STRUCT_FROM_MEMBER(struct fid_request, job, job);
    h2o_multithread_send_message(&fr->m->fid_replies, &fr->msg);
}

/* answer_fid: loop thread; answers (if the request still exists), frees fr. */
static void answer_fid(struct fid_request *fr)
{
    struct spy_master *m = fr->m;
    m->fids_in_flight--;
    if (fr->req != NULL) {
        fr->guard->fr = NULL;
        if (fr->job.status != SPY_OK) {
            send_error(m, fr->req, 503, "fid allocation failed: database unavailable");
        } else {
            m->counters.fid_ranges++;
            m->counters.fids += fr->job.count;
            send_json(m, fr->req, 200,
                      json_pack("{s:I,s:I}", "FidBegin", (json_int_t)fr->job.first, "FidEnd",
                                (json_int_t)(fr->job.first + fr->job.count)));
        }
    }
    free(fr);
}

static void on_fid_replies(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *msg =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&msg->link);
        answer_fid(H2O_STRUCT_FROM_MEMBER(struct fid_request, msg, msg));
    }
}

/* parse_fid_query: ?count=N (1..max); any other parameter is an error. */
static int parse_fid_query(struct spy_master *m, h2o_req_t *req, uint64_t *count, char *err,
                           size_t errlen)
{
    *count = m->cfg.fid_default_count;
    if (req->query_at == SIZE_MAX)
        return SPY_OK;
    char query[128];
    size_t qlen = req->path.len - req->query_at - 1;
    if (qlen >= sizeof(query)) {
        snprintf(err, errlen, "query string too long");
        return SPY_EINVAL;
    }
    memcpy(query, req->path.base + req->query_at + 1, qlen);
    query[qlen] = '\0';
    char *save = NULL;
    for (char *kv = strtok_r(query, "&", &save); kv != NULL; kv = strtok_r(NULL, "&", &save)) {
        long long v;
        if (strncmp(kv, "count=", 6) != 0) {
            snprintf(err, errlen, "unknown query parameter '%.40s' (only count=N)", kv);
            return SPY_EINVAL;
        }
        if (spy_parse_int(kv + 6, &v) != 0 || v < 1 || (uint64_t)v > m->cfg.fid_max_count) {
            snprintf(err, errlen, "count must be 1..%" PRIu64, m->cfg.fid_max_count);
            return SPY_EINVAL;
        }
        *count = (uint64_t)v;
    }
    return SPY_OK;
}

/* on_fid: GET /v1/chunkmaster/fid[?count=N] -> {"FidBegin":b,"FidEnd":e},
 * end exclusive; answered asynchronously by the worker. */
static int on_fid(struct spy_master *m, h2o_req_t *req)
{
    uint64_t count;
    char err[160];
    if (parse_fid_query(m, req, &count, err, sizeof(err)) != SPY_OK)
        return send_error(m, req, 400, "%s", err);
    struct fid_request *fr = calloc(1, sizeof(*fr));
    if (fr == NULL)
        return send_error(m, req, 500, "out of memory");
    struct fid_guard *g = h2o_mem_alloc_shared(&req->pool, sizeof(*g), guard_dispose);
    g->fr = fr;
    fr->m = m;
    fr->req = req;
    fr->guard = g;
    fr->job.count = count;
    fr->job.done = fid_job_done;
    m->fids_in_flight++;
    spy_worker_alloc_fids(m->worker, &fr->job);
    return 0;
}

/* on_status_page: GET / (HTML). */
static int on_status_page(struct spy_master *m, h2o_req_t *req)
{
    struct spy_worker_stats ws;
    spy_worker_stats(m->worker, &ws);
    int64_t now = spy_clock_mono_ms();
    struct spy_status_page_info info = {.refresh_s = m->cfg.refresh_s,
                                        .uptime_ms = now - m->started_ms,
                                        .db_ok = ws.db_ok,
                                        .pending_writes = ws.pending_writes,
                                        .min_healthy = m->cfg.health.min_healthy};
    char *html;
    size_t len;
    if (spy_status_page_render(m->state, now, &info, &html, &len) != SPY_OK)
        return send_error(m, req, 500, "out of memory");
    send_body(m, req, 200, "text/html; charset=utf-8", html, len);
    free(html);
    return 0;
}

/* on_metrics: GET /metrics (Prometheus text format 0.0.4). */
static int on_metrics(struct spy_master *m, h2o_req_t *req)
{
    struct spy_worker_stats ws;
    spy_worker_stats(m->worker, &ws);
    int64_t now = spy_clock_mono_ms();
    char *text;
    size_t len;
    if (spy_metrics_render(m->state, now, &m->counters, &ws, now - m->started_ms, &text, &len) !=
        SPY_OK)
        return send_error(m, req, 500, "out of memory");
    send_body(m, req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
    return 0;
}

struct route {
    const char *method;
    const char *path;
    int (*fn)(struct spy_master *m, h2o_req_t *req);
};

static const struct route routes[] = {
    {"GET", "/", on_status_page},
    {"GET", "/metrics", on_metrics},
    {"POST", "/v1/chunkserver/reportinfo", on_report},
    {"POST", "/v1/chunkserver/initserver", on_init},
    {"POST", "/v1/chunkserver/batchinitserver", on_batch_init},
    {"GET", "/v1/chunkmaster/route", on_route},
    {"GET", "/v1/chunkmaster/fid", on_fid},
    {"GET", "/v1/chunkmaster/checkerror", on_check_error},
    {"POST", "/v1/chunkmaster/server/drain", on_server_drain},
    {"POST", "/v1/chunkmaster/group/drain", on_group_drain},
    {"POST", "/v1/chunkmaster/server/remove", on_remove},
};

/* on_req: the single h2o handler; dispatches on method and exact path. */
static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct spy_master *m = ((struct master_handler *)self)->m;
    m->counters.http_requests++;
    h2o_iovec_t path = req->path_normalized;
    const char *wanted = NULL;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (!h2o_memis(path.base, path.len, routes[i].path, strlen(routes[i].path)))
            continue;
        if (h2o_memis(req->method.base, req->method.len, routes[i].method,
                      strlen(routes[i].method)))
            return routes[i].fn(m, req);
        wanted = routes[i].method;
    }
    uint32_t group;
    int bad;
    if (wanted == NULL && parse_group_path(path, &group, &bad)) {
        if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
            return on_group_info(m, req, group, bad);
        wanted = "GET";
    }
    if (wanted != NULL)
        return send_error(m, req, 405, "use %s for %.*s", wanted, (int)path.len, path.base);
    return send_error(m, req, 404, "no such route: %.*s %.*s (see docs/chunkmaster.md)",
                      (int)req->method.len, req->method.base, (int)path.len, path.base);
}

void spy_http_register(h2o_hostconf_t *host, struct spy_master *m)
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, "/", 0);
    struct master_handler *h = (struct master_handler *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->m = m;
}

void spy_http_attach(struct spy_master *m, h2o_context_t *ctx)
{
    h2o_multithread_register_receiver(ctx->queue, &m->fid_replies, on_fid_replies);
}
