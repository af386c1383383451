/* reader.c - a range read over a blob's pieces, one GET per piece span,
 * failing over between replicas and resuming where the last one stopped
 * (see blobstore.h).
 *
 * For each span (the bytes of one piece the range needs) the replicas are
 * tried in route.h's read order. A GET streams DATA slices straight from the
 * connection's input buffer to the sink (no copy); when the sink pauses, the
 * connection stops reading, so the chunkserver's socket fills and it waits.
 * The END frame confirms the GET: its status and the crc32c of the bytes
 * received. If a replica fails mid-stream (closed, timed out, END not OK)
 * and the bytes it sent check out, the next replica continues at the first
 * byte not yet given to the sink. A whole-piece span is also checked against
 * the piece's recorded crc32c, across failovers: each GET's crc is summed
 * once, as its bytes arrive, and joined into the span's with
 * spy_crc32c_combine when the GET ends.
 *
 * READ-AHEAD. While a span streams, the next span's GET is already sent on a
 * second connection (to the replica first in its read order) and that
 * connection is paused: the chunkserver reads and checks the piece and fills
 * the socket while the current span drains, so the next span starts without
 * a round trip. The paused connection reads nothing, so it costs no memory
 * here (the kernel's socket buffer holds what came). When its span becomes
 * current it is adopted if the read order still starts with the same
 * replica; otherwise, or if it failed meanwhile, it is dropped uncharged and
 * the span's GET goes out as usual. */
#include <stdlib.h>
#include <string.h>

#include "blobstore/conn.h"
#include "blobstore/internal.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "common/status.h"

struct span {
    struct spy_blob_piece piece;
    uint64_t offset, length; /* inside the piece */
};

struct spy_blob_reader {
    struct spy_blob_loop *lp;
    struct spy_blob *bs;
    struct span *spans;
    size_t nspans, cur;
    spy_blob_sink_cb sink;
    spy_blob_read_done_cb done;
    void *arg;
    /* the current span */
    struct spy_blobroute *route; /* a reference while 'order' points into it */
    const struct spy_blobroute_server *order[SPY_BLOBROUTE_MAX_SERVERS];
    size_t norder, next;
    const struct spy_blobroute_server *srv; /* the replica being read */
    uint64_t delivered;                     /* span bytes given to the sink */
    uint32_t span_crc;                      /* their crc32c */
    unsigned notfound, corrupt, tried;
    /* the current GET */
    struct spy_blobconn *conn;
    uint64_t req_id, get_len, got;
    uint32_t get_crc;
    int head_ok, get_folded;
    /* the read-ahead GET of span ahead_span (see the top of the file) */
    struct spy_blobconn *ahead_conn;
    size_t ahead_span;
    uint64_t ahead_req_id;
    char ahead_srv[SPY_BLOBROUTE_NAME_MAX];
    /* GET requests, by span parity: a write may still be in flight for the
     * read-ahead while the current span's failover builds its own */
    uint8_t get_frames[2][SPY_FRAME_HDR_SIZE + SPY_GET_REQ_PAYLOAD];
    /* life */
    int started, finished, status;
    int paused, aborted, holds;
    h2o_timeout_entry_t defer;
};

static void try_next(struct spy_blob_reader *r);
static void free_reader(struct spy_blob_reader *r);
static void start_span(struct spy_blob_reader *r);

/* drop_conn: lets go of the GET's connection, pooling it if reusable. */
static void drop_conn(struct spy_blob_reader *r, int reusable)
{
    if (r->conn != NULL)
        spy_blobconn_release(r->conn, reusable);
    r->conn = NULL;
    r->paused = 0;
}

/* drop_ahead: closes the read-ahead GET's connection, if any. */
static void drop_ahead(struct spy_blob_reader *r)
{
    if (r->ahead_conn != NULL)
        spy_blobconn_release(r->ahead_conn, 0);
    r->ahead_conn = NULL;
}

/* fold_get: joins the current GET's crc into the span's, once per GET. */
static void fold_get(struct spy_blob_reader *r)
{
    if (r->get_folded)
        return;
    r->get_folded = 1;
    r->span_crc = spy_crc32c_combine(r->span_crc, r->get_crc, r->got);
}

/* finish: the read is over; done runs from the next turn of the loop. */
static void finish(struct spy_blob_reader *r, int status)
{
    drop_conn(r, 0);
    drop_ahead(r);
    spy_blobroute_unref(r->route);
    r->route = NULL;
    r->finished = 1;
    r->status = status;
    spy_blob_defer(r->lp, &r->defer);
}

/* span_failed_status: what a span that no replica could serve reports. */
static int span_failed_status(const struct spy_blob_reader *r)
{
    if (r->tried > 0 && r->notfound == r->tried)
        return SPY_ENOTFOUND;
    return r->corrupt > 0 ? SPY_ECORRUPT : SPY_EIO;
}

/* replica_failed: this replica cannot serve the rest of the span: charge
 * it if it is a server failure, then try the next one. */
static void replica_failed(struct spy_blob_reader *r, int status, int reusable)
{
    const struct span *s = &r->spans[r->cur];
    fold_get(r);
    if (spy_blob_is_server_failure(status))
        spy_blob_server_failed(r->bs, r->srv->name, status, "get");
    else if (status == SPY_ENOTFOUND)
        spy_blob_server_ok(r->bs, r->srv->name); /* it answered: alive */
    if (status == SPY_ENOTFOUND)
        r->notfound++;
    if (status == SPY_ECORRUPT)
        r->corrupt++;
    spy_info("blobstore: reading fid %llu (group %u) from %s failed after %llu of %llu bytes: "
             "%s",
             (unsigned long long)s->piece.fid, s->piece.group_id, r->srv->name,
             (unsigned long long)r->delivered, (unsigned long long)s->length, spy_strerror(status));
    drop_conn(r, reusable);
    try_next(r);
}

/* span_done: the span is complete and verified; on to the next one. */
static void span_done(struct spy_blob_reader *r)
{
    const struct span *s = &r->spans[r->cur];
    fold_get(r);
    drop_conn(r, 1);
    spy_blob_server_ok(r->bs, r->srv->name);
    if (s->offset == 0 && s->length == s->piece.length && r->span_crc != s->piece.crc32c) {
        spy_error("blobstore: fid %llu (group %u): bytes read do not match the piece's "
                  "crc32c (%08x, recorded %08x)",
                  (unsigned long long)s->piece.fid, s->piece.group_id, r->span_crc,
                  s->piece.crc32c);
        finish(r, SPY_ECORRUPT);
        return;
    }
    spy_blobroute_unref(r->route);
    r->route = NULL;
    if (++r->cur == r->nspans) {
        finish(r, SPY_OK);
        return;
    }
    start_span(r);
}

/* on_head: the GET's first frame: the range is coming, or an error status. */
static int on_head(struct spy_blob_reader *r, const struct spy_frame *f, const uint8_t *payload)
{
    const struct span *s = &r->spans[r->cur];
    if (f->op != SPY_OP_GET || f->req_id != r->req_id) {
        replica_failed(r, SPY_EPROTO, 0);
        return 1;
    }
    if (f->status != SPY_OK) {
        replica_failed(r, f->status, 1); /* a one-frame answer: the connection is in step */
        return 1;
    }
    struct spy_get_resp resp;
    if (spy_get_resp_decode(payload, f->len, &resp) != SPY_OK ||
        resp.offset != s->offset + r->delivered || resp.length != r->get_len) {
        replica_failed(r, SPY_EPROTO, 0);
        return 1;
    }
    if (resp.object_len != s->piece.length) {
        spy_error("blobstore: %s holds fid %llu with %llu bytes, the piece has %llu", r->srv->name,
                  (unsigned long long)s->piece.fid, (unsigned long long)resp.object_len,
                  (unsigned long long)s->piece.length);
        replica_failed(r, SPY_ECORRUPT, 0);
        return 1;
    }
    r->head_ok = 1;
    return 0;
}

/* on_end: the GET's last frame: its status and the crc of what was sent. */
static int on_end(struct spy_blob_reader *r, const struct spy_frame *f, const uint8_t *payload)
{
    if (f->req_id != r->req_id || f->len != SPY_END_RESP_PAYLOAD) {
        replica_failed(r, SPY_EPROTO, 0);
        return 1;
    }
    uint32_t crc = spy_get_u32(payload);
    if (crc != r->get_crc) {
        /* The bytes already went to the sink: no failover can undo that. */
        spy_error("blobstore: %s: fid %llu arrived damaged (crc %08x, server sent %08x)",
                  r->srv->name, (unsigned long long)r->spans[r->cur].piece.fid, r->get_crc, crc);
        finish(r, SPY_ECORRUPT);
        return 1;
    }
    if (f->status == SPY_OK && r->got == r->get_len) {
        span_done(r);
        return 1;
    }
    /* END not OK (e.g. a damaged block), or short: what did arrive checks
     * out, so the next replica continues from there. */
    replica_failed(r, f->status != SPY_OK ? f->status : SPY_EPROTO, f->status != SPY_OK);
    return 1;
}

/* on_frame: a GET response frame: the head, the END, or something wrong. */
static int on_frame(void *arg, const struct spy_frame *f, const uint8_t *payload)
{
    struct spy_blob_reader *r = arg;
    if (f->status == SPY_EPROTO) {
        replica_failed(r, SPY_EPROTO, 0);
        return 1;
    }
    if (!r->head_ok)
        return on_head(r, f, payload);
    if (f->op == SPY_OP_END)
        return on_end(r, f, payload);
    replica_failed(r, SPY_EPROTO, 0);
    return 1;
}

/* on_data: range bytes: counted, checksummed, given to the sink. */
static int on_data(void *arg, const struct spy_frame *f, const uint8_t *data, size_t n)
{
    struct spy_blob_reader *r = arg;
    if (!r->head_ok || f->req_id != r->req_id || n > r->get_len - r->got) {
        replica_failed(r, SPY_EPROTO, 0);
        return 1;
    }
    r->got += n;
    r->delivered += n;
    r->get_crc = spy_crc32c(r->get_crc, data, n);
    SPY_BLOB_COUNT(r->bs, bytes_read, n);
    r->holds++;
    int verdict = r->sink(r->arg, data, n);
    r->holds--;
    if (r->aborted) {
        if (r->holds == 0)
            free_reader(r); /* aborted inside the sink: ours to free now */
        return 1;
    }
    if (verdict == SPY_BLOB_PAUSE) {
        r->paused = 1;
        spy_blobconn_pause(r->conn);
        return 1;
    }
    return 0;
}

/* on_sent: the GET request is out; the response has its own deadline. */
static void on_sent(void *arg)
{
    (void)arg;
}

/* on_error: the connection failed (and is gone): try the next replica. */
static void on_error(void *arg, int status)
{
    struct spy_blob_reader *r = arg;
    r->conn = NULL;
    replica_failed(r, status, 0);
}

static const struct spy_blobconn_handler reader_handler = {
    .on_frame = on_frame,
    .on_data = on_data,
    .on_sent = on_sent,
    .on_error = on_error,
};

/* ahead_on_input: a paused read-ahead connection delivers nothing; were it
 * to, stop (the bytes stay buffered for when it becomes current). */
static int ahead_on_frame(void *arg, const struct spy_frame *f, const uint8_t *payload)
{
    (void)arg, (void)f, (void)payload;
    return 1;
}

static int ahead_on_data(void *arg, const struct spy_frame *f, const uint8_t *data, size_t n)
{
    (void)arg, (void)f, (void)data, (void)n;
    return 1;
}

/* ahead_on_error: the read-ahead connection failed before its turn: forget
 * it without charging the server; its span will send its own GET. */
static void ahead_on_error(void *arg, int status)
{
    struct spy_blob_reader *r = arg;
    (void)status;
    r->ahead_conn = NULL;
    SPY_BLOB_COUNT(r->bs, read_aheads_dropped, 1);
}

static const struct spy_blobconn_handler ahead_handler = {
    .on_frame = ahead_on_frame,
    .on_data = ahead_on_data,
    .on_sent = on_sent,
    .on_error = ahead_on_error,
};

/* send_get: a GET for [offset, offset + length) of fid on c, built in the
 * frame buffer of span 'span'. Returns the request's req_id. */
static uint64_t send_get(struct spy_blob_reader *r, struct spy_blobconn *c, size_t span,
                         uint64_t offset, uint64_t length)
{
    uint8_t *frame = r->get_frames[span & 1];
    uint64_t req_id = spy_blobconn_next_req_id(c);
    struct spy_frame f = {.op = SPY_OP_GET, .req_id = req_id, .len = SPY_GET_REQ_PAYLOAD};
    spy_frame_encode(&f, frame);
    struct spy_get_req req = {.fid = r->spans[span].piece.fid, .offset = offset, .length = length};
    spy_get_req_encode(&req, frame + SPY_FRAME_HDR_SIZE);
    h2o_iovec_t iov = h2o_iovec_init(frame, SPY_FRAME_HDR_SIZE + SPY_GET_REQ_PAYLOAD);
    spy_blobconn_send(c, &iov, 1);
    return req_id;
}

/* send_ahead: the next span's whole GET, to the first replica of its read
 * order, on a connection paused until that span is current. */
static void send_ahead(struct spy_blob_reader *r)
{
    size_t next = r->cur + 1;
    if (next >= r->nspans || r->ahead_conn != NULL)
        return;
    const struct span *s = &r->spans[next];
    struct spy_blobroute *route = spy_blob_route_get(r->bs);
    const struct spy_blobroute_group *g =
        route != NULL ? spy_blobroute_group(route, s->piece.group_id) : NULL;
    const struct spy_blobroute_server *order[SPY_BLOBROUTE_MAX_SERVERS];
    size_t n =
        g != NULL ? spy_blobroute_read_order(g, s->piece.fid, spy_blob_blocked, r->bs, order) : 0;
    struct spy_blobconn *c =
        n > 0 ? spy_blobconn_acquire(r->lp, order[0], &ahead_handler, r) : NULL;
    if (c != NULL) {
        r->ahead_conn = c;
        r->ahead_span = next;
        memcpy(r->ahead_srv, order[0]->name, sizeof(r->ahead_srv));
        r->ahead_req_id = send_get(r, c, next, s->offset, s->length);
        spy_blobconn_pause(c);
    }
    spy_blobroute_unref(route);
}

/* adopt_ahead: makes the read-ahead GET the current span's first try, if it
 * was sent for this span to the replica first in order. Returns 1 if so. */
static int adopt_ahead(struct spy_blob_reader *r)
{
    struct spy_blobconn *c = r->ahead_conn;
    if (c == NULL)
        return 0;
    r->ahead_conn = NULL;
    if (r->ahead_span != r->cur || r->norder == 0 || strcmp(r->order[0]->name, r->ahead_srv) != 0) {
        spy_blobconn_release(c, 0);
        SPY_BLOB_COUNT(r->bs, read_aheads_dropped, 1);
        return 0;
    }
    SPY_BLOB_COUNT(r->bs, read_aheads_used, 1);
    const struct span *s = &r->spans[r->cur];
    r->tried = 1;
    r->srv = r->order[r->next++];
    r->conn = c;
    r->req_id = r->ahead_req_id;
    r->get_len = s->length;
    r->got = 0;
    r->get_crc = 0;
    r->head_ok = 0;
    r->get_folded = 0;
    spy_blobconn_set_owner(c, &reader_handler, r);
    spy_blobconn_expect(c, 1);
    spy_blobconn_resume(c);
    return 1;
}

/* try_next: a GET for the rest of the span on the next replica in order. */
static void try_next(struct spy_blob_reader *r)
{
    const struct span *s = &r->spans[r->cur];
    if (r->next == r->norder) {
        int status = span_failed_status(r);
        spy_error("blobstore: fid %llu (group %u): no replica could serve it (%u tried): %s",
                  (unsigned long long)s->piece.fid, s->piece.group_id, r->tried,
                  spy_strerror(status));
        finish(r, status);
        return;
    }
    if (r->tried > 0)
        SPY_BLOB_COUNT(r->bs, read_failovers, 1);
    r->tried++;
    r->srv = r->order[r->next++];
    r->conn = spy_blobconn_acquire(r->lp, r->srv, &reader_handler, r);
    if (r->conn == NULL) {
        finish(r, SPY_ENOMEM);
        return;
    }
    r->get_len = s->length - r->delivered;
    r->got = 0;
    r->get_crc = 0;
    r->head_ok = 0;
    r->get_folded = 0;
    r->req_id = send_get(r, r->conn, r->cur, s->offset + r->delivered, r->get_len);
    spy_blobconn_expect(r->conn, 1);
}

/* start_span: the replicas of the current span's group, in read order. */
static void start_span(struct spy_blob_reader *r)
{
    const struct span *s = &r->spans[r->cur];
    r->route = spy_blob_route_get(r->bs);
    const struct spy_blobroute_group *g =
        r->route != NULL ? spy_blobroute_group(r->route, s->piece.group_id) : NULL;
    if (g == NULL || g->nservers == 0) {
        spy_error("blobstore: fid %llu: group %u is not in the route table%s",
                  (unsigned long long)s->piece.fid, s->piece.group_id,
                  r->route == NULL ? " (no table from the chunkmaster yet)" : "");
        finish(r, SPY_EIO);
        return;
    }
    r->norder = spy_blobroute_read_order(g, s->piece.fid, spy_blob_blocked, r->bs, r->order);
    r->next = 0;
    r->delivered = 0;
    r->span_crc = 0;
    r->notfound = r->corrupt = r->tried = 0;
    if (!adopt_ahead(r))
        try_next(r);
    if (!r->finished && r->conn != NULL)
        send_ahead(r);
}

/* free_reader: the end of the reader's memory. */
static void free_reader(struct spy_blob_reader *r)
{
    if (h2o_timeout_is_linked(&r->defer))
        h2o_timeout_unlink(&r->defer);
    r->lp->active--;
    free(r->spans);
    free(r);
}

/* on_defer: starts the read, or delivers its end. */
static void on_defer(h2o_timeout_entry_t *entry)
{
    struct spy_blob_reader *r = H2O_STRUCT_FROM_MEMBER(struct spy_blob_reader, defer, entry);
    if (!r->started) {
        r->started = 1;
        if (r->nspans == 0)
            finish(r, SPY_OK);
        else
            start_span(r);
        return;
    }
    if (!r->finished)
        return;
    SPY_BLOB_COUNT(r->bs, reads_done, r->status == SPY_OK);
    SPY_BLOB_COUNT(r->bs, reads_failed, r->status != SPY_OK);
    r->aborted = 1; /* done is the last call */
    r->done(r->arg, r->status);
    free_reader(r);
}

/* build_spans: the spans of [offset, offset + length) over pieces. */
static int build_spans(struct spy_blob_reader *r, const struct spy_blob_piece *pieces, size_t n,
                       uint64_t offset, uint64_t length)
{
    if (spy_pieces_check(pieces, n, NULL) != SPY_OK)
        return SPY_EINVAL;
    size_t first, count;
    int rc = spy_pieces_range(pieces, n, offset, length, &first, &count);
    if (rc != SPY_OK)
        return rc;
    r->spans = calloc(count > 0 ? count : 1, sizeof(*r->spans));
    if (r->spans == NULL)
        return SPY_ENOMEM;
    for (size_t i = 0; i < count; i++) {
        struct span *s = &r->spans[i];
        s->piece = pieces[first + i];
        spy_pieces_span(&s->piece, offset, length, &s->offset, &s->length);
    }
    r->nspans = count;
    return SPY_OK;
}

/* spy_blob_read: plans the spans and starts on the next turn of the loop. */
int spy_blob_read(struct spy_blob_loop *lp, const struct spy_blob_piece *pieces, size_t n,
                  uint64_t offset, uint64_t length, spy_blob_sink_cb sink,
                  spy_blob_read_done_cb done, void *arg, struct spy_blob_reader **out)
{
    *out = NULL;
    if (sink == NULL || done == NULL || (n > 0 && pieces == NULL))
        return SPY_EINVAL;
    struct spy_blob_reader *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return SPY_ENOMEM;
    int rc = build_spans(r, pieces, n, offset, length);
    if (rc != SPY_OK) {
        free(r->spans);
        free(r);
        return rc;
    }
    r->lp = lp;
    r->bs = lp->bs;
    r->sink = sink;
    r->done = done;
    r->arg = arg;
    r->defer.cb = on_defer;
    lp->active++;
    SPY_BLOB_COUNT(r->bs, reads_started, 1);
    spy_blob_defer(lp, &r->defer);
    *out = r;
    return SPY_OK;
}

/* spy_blob_read_resume: the sink is ready again. */
void spy_blob_read_resume(struct spy_blob_reader *r)
{
    if (!r->paused || r->conn == NULL)
        return;
    r->paused = 0;
    spy_blobconn_resume(r->conn);
}

/* spy_blob_read_abort: closes the GET's connection and frees (later, if inside the sink). */
void spy_blob_read_abort(struct spy_blob_reader *r)
{
    if (r->aborted)
        return;
    r->aborted = 1;
    drop_conn(r, 0);
    drop_ahead(r);
    spy_blobroute_unref(r->route);
    r->route = NULL;
    if (h2o_timeout_is_linked(&r->defer))
        h2o_timeout_unlink(&r->defer);
    SPY_BLOB_COUNT(r->bs, reads_failed, 1);
    if (r->holds == 0)
        free_reader(r); /* else on_data frees it once the sink returns */
}
