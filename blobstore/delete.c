/* delete.c - DELETE of one fid on every replica of its group, in parallel
 * (see blobstore.h). Used for orphan cleanup and GC. */
#include <stdlib.h>
#include <string.h>

#include "blobstore/conn.h"
#include "blobstore/internal.h"
#include "common/log.h"
#include "common/status.h"

struct deletion;

struct target {
    struct deletion *d;
    const struct spy_blobroute_server *srv;
    struct spy_blobconn *conn;
    uint64_t req_id;
    int finished;
    uint8_t frame[SPY_FRAME_HDR_SIZE + SPY_FID_PAYLOAD];
};

struct deletion {
    struct spy_blob_loop *lp;
    struct spy_blobroute *route;
    uint32_t group_id;
    uint64_t fid;
    spy_blob_deleted_cb cb;
    void *arg;
    size_t ntargets, nfinished;
    int status; /* the first failure */
    struct target targets[SPY_BLOBROUTE_MAX_SERVERS];
    h2o_timeout_entry_t defer;
};

/* on_defer: every replica answered (or failed): report and free. */
static void on_defer(h2o_timeout_entry_t *entry)
{
    struct deletion *d = H2O_STRUCT_FROM_MEMBER(struct deletion, defer, entry);
    struct spy_blob *bs = d->lp->bs;
    SPY_BLOB_COUNT(bs, deletes_done, d->status == SPY_OK);
    SPY_BLOB_COUNT(bs, deletes_failed, d->status != SPY_OK);
    spy_blobroute_unref(d->route);
    d->lp->active--;
    spy_blob_deleted_cb cb = d->cb;
    void *arg = d->arg;
    int status = d->status;
    free(d);
    cb(arg, status);
}

/* target_finished: one replica's outcome; the last one ends the delete. */
static void target_finished(struct target *t, int status, int reusable)
{
    struct deletion *d = t->d;
    if (t->conn != NULL)
        spy_blobconn_release(t->conn, reusable);
    t->conn = NULL;
    t->finished = 1;
    if (status == SPY_ENOTFOUND)
        status = SPY_OK; /* never written, or deleted before: gone either way */
    if (status != SPY_OK) {
        spy_warn("blobstore: deleting fid %llu on %s (group %u) failed: %s",
                 (unsigned long long)d->fid, t->srv->name, d->group_id, spy_strerror(status));
        if (spy_blob_is_server_failure(status))
            spy_blob_server_failed(d->lp->bs, t->srv->name, status, "delete");
        if (d->status == SPY_OK)
            d->status = status;
    }
    if (++d->nfinished == d->ntargets)
        spy_blob_defer(d->lp, &d->defer);
}

/* on_frame: the DELETE's one response frame. */
static int on_frame(void *arg, const struct spy_frame *f, const uint8_t *payload)
{
    (void)payload;
    struct target *t = arg;
    if (f->status == SPY_EPROTO || f->op != SPY_OP_DELETE || f->req_id != t->req_id ||
        f->len != 0) {
        target_finished(t, SPY_EPROTO, 0);
        return 1;
    }
    target_finished(t, f->status, 1);
    return 1;
}

/* on_data: no DATA is ever sent in answer to a DELETE. */
static int on_data(void *arg, const struct spy_frame *f, const uint8_t *data, size_t n)
{
    (void)f;
    (void)data;
    (void)n;
    target_finished(arg, SPY_EPROTO, 0);
    return 1;
}

/* on_sent: the request is out; the response has its own deadline. */
static void on_sent(void *arg)
{
    (void)arg;
}

/* on_error: the connection failed (and is gone). */
static void on_error(void *arg, int status)
{
    struct target *t = arg;
    t->conn = NULL;
    target_finished(t, status, 0);
}

static const struct spy_blobconn_handler delete_handler = {
    .on_frame = on_frame,
    .on_data = on_data,
    .on_sent = on_sent,
    .on_error = on_error,
};

/* send_delete: the DELETE request to one replica. */
static void send_delete(struct target *t)
{
    t->req_id = spy_blobconn_next_req_id(t->conn);
    struct spy_frame f = {.op = SPY_OP_DELETE, .req_id = t->req_id, .len = SPY_FID_PAYLOAD};
    spy_frame_encode(&f, t->frame);
    spy_put_u64(t->frame + SPY_FRAME_HDR_SIZE, t->d->fid);
    h2o_iovec_t iov = h2o_iovec_init(t->frame, sizeof(t->frame));
    spy_blobconn_send(t->conn, &iov, 1);
    spy_blobconn_expect(t->conn, 1);
}

/* spy_blob_delete: a DELETE per server of the group, all in parallel. */
int spy_blob_delete(struct spy_blob_loop *lp, uint32_t group_id, uint64_t fid,
                    spy_blob_deleted_cb cb, void *arg)
{
    struct deletion *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return SPY_ENOMEM;
    d->lp = lp;
    d->group_id = group_id;
    d->fid = fid;
    d->cb = cb;
    d->arg = arg;
    d->defer.cb = on_defer;
    lp->active++;
    d->route = spy_blob_route_get(lp->bs);
    const struct spy_blobroute_group *g =
        d->route != NULL ? spy_blobroute_group(d->route, group_id) : NULL;
    if (g == NULL || g->nservers == 0) {
        d->status = d->route == NULL ? SPY_EIO : SPY_ENOTFOUND;
        spy_blob_defer(lp, &d->defer);
        return SPY_OK;
    }
    d->ntargets = g->nservers;
    for (size_t i = 0; i < g->nservers; i++) {
        struct target *t = &d->targets[i];
        t->d = d;
        t->srv = &g->servers[i];
        t->conn = spy_blobconn_acquire(lp, t->srv, &delete_handler, t);
        if (t->conn == NULL)
            target_finished(t, SPY_ENOMEM, 0);
        else
            send_delete(t);
    }
    return SPY_OK;
}
