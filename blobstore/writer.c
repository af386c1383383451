/* writer.c - a blob upload: cut into pieces, each streamed to every replica
 * of one group, retried from its buffer on failure (see blobstore.h).
 *
 * Shape: a writer has at most two live pieces (MAX_LIVE): the one taking the
 * caller's bytes ("streaming") and the one before it, sealed, whose END
 * acknowledgements are awaited or which is being retried. A piece has one
 * attempt at a time: a group, a fid, and one replica per writable server of
 * the group, each with its own connection. Each replica sends PUT, then DATA
 * frames for the bytes the piece buffer holds (as they arrive), then END
 * once the piece is sealed; the piece counts when every replica answered OK.
 *
 * Callbacks to the caller (consumed, done, on_orphan, on_piece) are never
 * made inline: events are queued and delivered from the writer's deferred
 * entry on the next turn of the loop (except abort's orphans, documented).
 * A callback may abort the writer: 'holds' keeps the struct alive until the
 * delivery loop is done with it. */
#include <stdlib.h>
#include <string.h>

#include "blobstore/conn.h"
#include "blobstore/internal.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "common/status.h"

#define MAX_LIVE     2
#define SEG_SIZE     SPY_DATA_MAX /* piece buffer segment; a DATA frame never crosses one */
#define ROOM_MARGIN  4096         /* room asked beyond the body: the record header and slack */
#define END_HDR_SIZE (SPY_FRAME_HDR_SIZE + SPY_END_REQ_PAYLOAD)
#define PUT_HDR_SIZE (SPY_FRAME_HDR_SIZE + SPY_PUT_REQ_PAYLOAD)

struct attempt;
struct piece;

struct replica {
    struct attempt *att;
    const struct spy_blobroute_server *srv; /* points into att->route */
    struct spy_blobconn *conn;              /* NULL once released or failed */
    uint64_t req_id;
    int put_queued;   /* the PUT frame is in a write issued */
    uint64_t queued;  /* body bytes in writes issued */
    uint64_t sent;    /* body bytes in writes completed */
    int end_queued;   /* END is in a write issued */
    int end_written;  /* and that write completed */
    int writing;      /* a write is in flight */
    int end_in_write; /* the write in flight carries END */
    int acked;        /* the server answered OK */
    uint8_t put_hdr[PUT_HDR_SIZE];
    uint8_t data_hdr[SPY_FRAME_HDR_SIZE];
    uint8_t end_hdr[END_HDR_SIZE];
};

struct attempt {
    struct piece *piece;
    struct spy_blobroute *route; /* a reference: replicas point into it */
    uint32_t group_id;
    uint64_t fid;
    size_t nrep, nacked;
    struct replica rep[SPY_BLOBROUTE_MAX_SERVERS];
};

struct piece {
    struct spy_blob_writer *w;
    uint64_t index, offset, filled;
    int sealed;
    uint32_t crc;
    uint8_t **segs; /* ceil(piece_size / SEG_SIZE), allocated as bytes arrive */
    size_t nsegs;
    struct attempt *att;
    unsigned tries;  /* attempts started */
    uint32_t *tried; /* their groups (write_attempts entries) */
};

struct orphan {
    uint32_t group_id;
    uint64_t fid;
};

struct spy_blob_writer {
    struct spy_blob_loop *lp;
    struct spy_blob *bs;
    struct spy_blob_write_handler h;
    void *arg;
    struct piece *live[MAX_LIVE]; /* oldest first */
    size_t nlive;
    struct piece *streaming; /* live and not sealed, or NULL */
    uint64_t total;          /* bytes accepted into pieces */
    uint64_t next_index;
    /* the caller's slice */
    int slice_pending;
    const uint8_t *slice;
    size_t slice_len, slice_off;
    uint64_t slice_end; /* blob offset just past it */
    spy_blob_consumed_cb consumed_cb;
    /* completed pieces, in completion order */
    struct spy_blob_piece *done;
    size_t ndone, done_cap, ndone_notified;
    /* orphans not yet delivered */
    struct orphan *orphans;
    size_t norphans, orphan_head, orphan_cap;
    int finishing;
    spy_blob_written_cb written_cb;
    int error;    /* sticky: the first failure */
    int aborted;  /* ending: no callback runs any more; freed when holds drops to 0 */
    int aborting; /* inside spy_blob_write_abort */
    int holds;
    h2o_timeout_entry_t defer;
};

static void pump(struct replica *r);
static void attempt_failed(struct attempt *att, int status);
static void writer_fail(struct spy_blob_writer *w, int status);
static void feed(struct spy_blob_writer *w);

/* schedule: arranges for on_defer to run on the next turn of the loop. */
static void schedule(struct spy_blob_writer *w)
{
    if (!w->aborted && !h2o_timeout_is_linked(&w->defer))
        spy_blob_defer(w->lp, &w->defer);
}

/* push_orphan: queues a fid for on_orphan. Out of memory: logged, so the fid
 * is at least in the log for an operator. */
static void push_orphan(struct spy_blob_writer *w, uint32_t group_id, uint64_t fid)
{
    if (w->norphans == w->orphan_cap) {
        size_t cap = w->orphan_cap == 0 ? 8 : w->orphan_cap * 2;
        struct orphan *grown = realloc(w->orphans, cap * sizeof(*grown));
        if (grown == NULL) {
            spy_error("blobstore: out of memory: orphan fid %llu in group %u not reported",
                      (unsigned long long)fid, group_id);
            return;
        }
        w->orphans = grown;
        w->orphan_cap = cap;
    }
    w->orphans[w->norphans++] = (struct orphan){group_id, fid};
    SPY_BLOB_COUNT(w->bs, orphans, 1);
    schedule(w);
}

/* flush_orphans: delivers queued orphans; stops if a callback aborted. */
static void flush_orphans(struct spy_blob_writer *w)
{
    while (w->orphan_head < w->norphans) {
        struct orphan o = w->orphans[w->orphan_head++];
        w->h.on_orphan(w->arg, o.group_id, o.fid);
        if (w->aborted)
            return;
    }
    w->orphan_head = w->norphans = 0;
}

/* free_piece: frees a piece's buffer and the piece (its attempt is gone). */
static void free_piece(struct piece *p)
{
    for (size_t i = 0; i < p->nsegs; i++)
        free(p->segs[i]);
    free(p->segs);
    free(p->tried);
    free(p);
}

/* close_attempt: lets go of every replica connection (pooled if that
 * replica finished cleanly, else closed, which aborts its put) and frees the
 * attempt. */
static void close_attempt(struct attempt *att)
{
    for (size_t i = 0; i < att->nrep; i++) {
        struct replica *r = &att->rep[i];
        if (r->conn != NULL)
            spy_blobconn_release(r->conn, r->acked && r->end_written && !r->writing);
        r->conn = NULL;
    }
    spy_blobroute_unref(att->route);
    free(att);
}

/* remove_live: drops p from the live array (keeping order). */
static void remove_live(struct spy_blob_writer *w, struct piece *p)
{
    for (size_t i = 0; i < w->nlive; i++) {
        if (w->live[i] == p) {
            memmove(&w->live[i], &w->live[i + 1], (w->nlive - i - 1) * sizeof(*w->live));
            w->nlive--;
            break;
        }
    }
    if (w->streaming == p)
        w->streaming = NULL;
}

/* segment_capacity: the size of segment i of a piece. */
static size_t segment_capacity(const struct spy_blob_writer *w, size_t i)
{
    uint64_t left = w->bs->cfg.piece_size - (uint64_t)i * SEG_SIZE;
    return left < SEG_SIZE ? (size_t)left : SEG_SIZE;
}

/* encode: a request frame header into out. */
static void encode(uint8_t *out, uint8_t op, uint8_t flags, uint64_t req_id, uint32_t len)
{
    struct spy_frame f = {.op = op, .flags = flags, .status = 0, .req_id = req_id, .len = len};
    spy_frame_encode(&f, out);
}

/* add_put: the PUT frame (header and payload) as the next iovec. */
static void add_put(struct replica *r, h2o_iovec_t *iov, size_t *n)
{
    struct piece *p = r->att->piece;
    uint64_t max_len = p->sealed ? p->filled : r->att->piece->w->bs->cfg.piece_size;
    encode(r->put_hdr, SPY_OP_PUT, 0, r->req_id, SPY_PUT_REQ_PAYLOAD);
    struct spy_put_req req = {.fid = r->att->fid, .max_len = max_len};
    spy_put_req_encode(&req, r->put_hdr + SPY_FRAME_HDR_SIZE);
    iov[(*n)++] = h2o_iovec_init(r->put_hdr, sizeof(r->put_hdr));
    r->put_queued = 1;
}

/* add_data: the next DATA frame (up to a segment's end) as two iovecs. */
static void add_data(struct replica *r, h2o_iovec_t *iov, size_t *n)
{
    struct piece *p = r->att->piece;
    size_t seg = (size_t)(r->queued / SEG_SIZE), off = (size_t)(r->queued % SEG_SIZE);
    uint64_t avail = p->filled - r->queued;
    size_t room = segment_capacity(p->w, seg) - off;
    size_t len = avail < room ? (size_t)avail : room;
    encode(r->data_hdr, SPY_OP_DATA, 0, r->req_id, (uint32_t)len);
    iov[(*n)++] = h2o_iovec_init(r->data_hdr, sizeof(r->data_hdr));
    iov[(*n)++] = h2o_iovec_init(p->segs[seg] + off, len);
    r->queued += len;
}

/* add_end: the END frame, with the piece's length and crc. */
static void add_end(struct replica *r, h2o_iovec_t *iov, size_t *n)
{
    struct piece *p = r->att->piece;
    encode(r->end_hdr, SPY_OP_END, 0, r->req_id, SPY_END_REQ_PAYLOAD);
    struct spy_end_req req = {.total_len = p->filled, .crc = p->crc};
    spy_end_req_encode(&req, r->end_hdr + SPY_FRAME_HDR_SIZE);
    iov[(*n)++] = h2o_iovec_init(r->end_hdr, sizeof(r->end_hdr));
    r->end_queued = 1;
    r->end_in_write = 1;
}

/* pump: starts the replica's next write, if it has one and none is in
 * flight: PUT (once), then the buffered bytes not yet sent, then END once
 * the piece is sealed and all of it went out. Several fit in one write. */
static void pump(struct replica *r)
{
    if (r->conn == NULL || r->writing || r->end_queued)
        return;
    struct piece *p = r->att->piece;
    h2o_iovec_t iov[4];
    size_t n = 0;
    if (!r->put_queued)
        add_put(r, iov, &n);
    if (r->queued < p->filled)
        add_data(r, iov, &n);
    if (p->sealed && r->queued == p->filled && n < 4)
        add_end(r, iov, &n);
    if (n == 0)
        return;
    r->writing = 1;
    spy_blobconn_send(r->conn, iov, n);
    if (r->end_queued)
        spy_blobconn_expect(r->conn, 1); /* the acknowledgement has a deadline */
}

/* pump_attempt: pumps every replica of the piece's attempt. */
static void pump_attempt(struct piece *p)
{
    if (p->att == NULL)
        return;
    for (size_t i = 0; i < p->att->nrep; i++)
        pump(&p->att->rep[i]);
}

/* piece_done: every replica acknowledged: record the piece, free its buffer,
 * and let the caller's bytes flow into the next piece. */
static void piece_done(struct piece *p)
{
    struct spy_blob_writer *w = p->w;
    struct attempt *att = p->att;
    if (w->ndone == w->done_cap) {
        size_t cap = w->done_cap == 0 ? 16 : w->done_cap * 2;
        struct spy_blob_piece *grown = realloc(w->done, cap * sizeof(*grown));
        if (grown == NULL) {
            writer_fail(w, SPY_ENOMEM);
            return;
        }
        w->done = grown;
        w->done_cap = cap;
    }
    w->done[w->ndone++] = (struct spy_blob_piece){.group_id = att->group_id,
                                                  .fid = att->fid,
                                                  .offset = p->offset,
                                                  .length = p->filled,
                                                  .crc32c = p->crc};
    SPY_BLOB_COUNT(w->bs, pieces_written, 1);
    SPY_BLOB_COUNT(w->bs, bytes_written, p->filled);
    p->att = NULL;
    close_attempt(att);
    remove_live(w, p);
    free_piece(p);
    schedule(w);
    feed(w);
}

/* replica_acked: one replica is complete (acknowledged and END written). */
static void replica_acked(struct replica *r)
{
    struct attempt *att = r->att;
    spy_blob_server_ok(att->piece->w->bs, r->srv->name);
    spy_blobconn_release(r->conn, 1);
    r->conn = NULL;
    if (++att->nacked == att->nrep)
        piece_done(att->piece);
}

/* replica_failed: a replica's put failed; so does the attempt. */
static void replica_failed(struct replica *r, int status)
{
    struct attempt *att = r->att;
    struct spy_blob *bs = att->piece->w->bs;
    if (spy_blob_is_server_failure(status))
        spy_blob_server_failed(bs, r->srv->name, status, "put");
    else
        spy_warn("blobstore: %s refused fid %llu (group %u): %s", r->srv->name,
                 (unsigned long long)att->fid, att->group_id, spy_strerror(status));
    attempt_failed(att, status);
}

/* on_rep_frame: the put's one response frame. */
static int on_rep_frame(void *arg, const struct spy_frame *f, const uint8_t *payload)
{
    (void)payload;
    struct replica *r = arg;
    if (f->status == SPY_EPROTO || f->op != SPY_OP_PUT || f->req_id != r->req_id ||
        (f->status == SPY_OK && (f->len != 0 || !r->end_queued))) {
        replica_failed(r, SPY_EPROTO);
        return 1;
    }
    if (f->status != SPY_OK) {
        replica_failed(r, f->status);
        return 1;
    }
    r->acked = 1;
    if (r->end_written)
        replica_acked(r);
    return 1;
}

/* on_rep_data: no DATA is ever sent in answer to a put. */
static int on_rep_data(void *arg, const struct spy_frame *f, const uint8_t *data, size_t n)
{
    (void)f;
    (void)data;
    (void)n;
    replica_failed(arg, SPY_EPROTO);
    return 1;
}

/* on_rep_sent: a replica's write completed: account for it, maybe complete
 * the replica, let the caller go on (consumed), send more. */
static void on_rep_sent(void *arg)
{
    struct replica *r = arg;
    r->writing = 0;
    r->sent = r->queued;
    if (r->end_in_write) {
        r->end_in_write = 0;
        r->end_written = 1;
    }
    struct spy_blob_writer *w = r->att->piece->w;
    if (w->slice_pending)
        schedule(w);
    if (r->acked && r->end_written) {
        replica_acked(r);
        return;
    }
    pump(r);
}

/* on_rep_error: the connection failed (and is gone). */
static void on_rep_error(void *arg, int status)
{
    struct replica *r = arg;
    r->conn = NULL;
    r->writing = 0;
    replica_failed(r, status);
}

static const struct spy_blobconn_handler replica_handler = {
    .on_frame = on_rep_frame,
    .on_data = on_rep_data,
    .on_sent = on_rep_sent,
    .on_error = on_rep_error,
};

/* pick_group: a group for the piece, other groups than those tried first.
 * SPY_OK, or SPY_ENOSPC (no writable group with room). */
static int pick_group(struct piece *p, struct spy_blobroute *route, struct spy_blobroute_pick *pick)
{
    struct spy_blob_writer *w = p->w;
    const struct spy_blob_config *cfg = &w->bs->cfg;
    struct spy_blobroute_want want = {
        .min_writable = cfg->min_writable,
        .need_bytes = (p->sealed ? p->filled : cfg->piece_size) + ROOM_MARGIN,
        .exclude = p->tried,
        .nexclude = p->tries,
        .blocked = spy_blob_blocked,
        .blocked_arg = w->bs,
    };
    uint64_t rnd = spy_blob_loop_random(w->lp);
    if (spy_blobroute_choose(route, &want, rnd, pick) == SPY_OK)
        return SPY_OK;
    want.nexclude = 0; /* only groups already tried are left: one of them may do now */
    if (p->tries > 0 && spy_blobroute_choose(route, &want, rnd, pick) == SPY_OK)
        return SPY_OK;
    spy_error("blobstore: no writable group for a piece: every group has fewer than %d "
              "writable, non-blacklisted replicas with %llu bytes free, or the master marks "
              "it not writable (%zu groups known)",
              cfg->min_writable, (unsigned long long)want.need_bytes, route->ngroups);
    return SPY_ENOSPC;
}

/* take_fid: the next cached fid, waking the refresher when running low. */
static int take_fid(struct spy_blob_writer *w, uint64_t *fid)
{
    int want_refill = 0;
    int rc = spy_fidcache_take(w->bs->fids, fid, &want_refill);
    if (want_refill)
        spy_blob_master_kick(w->bs);
    if (rc != SPY_OK)
        spy_error("blobstore: no fids left in the cache and the chunkmaster (%s:%d) has not "
                  "refilled it: writes fail until it answers again",
                  w->bs->cfg.master_host, w->bs->cfg.master_port);
    return rc;
}

/* start_attempt: a new attempt for p: group, fid, a connection per replica.
 * On failure the writer fails. */
static void start_attempt(struct piece *p)
{
    struct spy_blob_writer *w = p->w;
    struct spy_blobroute *route = spy_blob_route_get(w->bs);
    if (route == NULL) {
        spy_error("blobstore: no route table from the chunkmaster yet: cannot write");
        writer_fail(w, SPY_EUNAVAIL);
        return;
    }
    struct spy_blobroute_pick pick;
    uint64_t fid;
    int rc = pick_group(p, route, &pick);
    if (rc == SPY_OK)
        rc = take_fid(w, &fid);
    struct attempt *att = rc == SPY_OK ? calloc(1, sizeof(*att)) : NULL;
    if (att == NULL) {
        spy_blobroute_unref(route);
        writer_fail(w, rc == SPY_OK ? SPY_ENOMEM : rc);
        return;
    }
    att->piece = p;
    att->route = route;
    att->group_id = pick.group->id;
    att->fid = fid;
    p->att = att;
    p->tried[p->tries++] = att->group_id;
    if (p->tries > 1)
        SPY_BLOB_COUNT(w->bs, piece_retries, 1);
    for (size_t i = 0; i < pick.nreplicas; i++) {
        struct replica *r = &att->rep[att->nrep++];
        r->att = att;
        r->srv = pick.replicas[i];
        r->conn = spy_blobconn_acquire(w->lp, r->srv, &replica_handler, r);
        if (r->conn == NULL) {
            attempt_failed(att, SPY_ENOMEM);
            return;
        }
        r->req_id = spy_blobconn_next_req_id(r->conn);
    }
    pump_attempt(p);
}

/* attempt_failed: reports the attempt's fid as an orphan, lets go of its
 * connections, and retries the piece (another group first) while attempts
 * are left; else the writer fails. */
static void attempt_failed(struct attempt *att, int status)
{
    struct piece *p = att->piece;
    struct spy_blob_writer *w = p->w;
    push_orphan(w, att->group_id, att->fid);
    p->att = NULL;
    close_attempt(att);
    if (p->tries >= w->bs->cfg.write_attempts) {
        spy_error("blobstore: piece at offset %llu failed %u times, last: %s",
                  (unsigned long long)p->offset, p->tries, spy_strerror(status));
        writer_fail(w, status);
        return;
    }
    spy_info("blobstore: retrying the piece at offset %llu (%llu bytes buffered) after: %s",
             (unsigned long long)p->offset, (unsigned long long)p->filled, spy_strerror(status));
    start_attempt(p);
}

/* writer_fail: the write cannot complete: every fid still held becomes an
 * orphan, every connection closes, the caller hears at the next delivery. */
static void writer_fail(struct spy_blob_writer *w, int status)
{
    if (w->error != SPY_OK)
        return;
    w->error = status;
    SPY_BLOB_COUNT(w->bs, writes_failed, 1);
    while (w->nlive > 0) {
        struct piece *p = w->live[0];
        if (p->att != NULL) {
            struct attempt *att = p->att;
            p->att = NULL;
            push_orphan(w, att->group_id, att->fid);
            close_attempt(att);
        }
        remove_live(w, p);
        free_piece(p);
    }
    for (size_t i = 0; i < w->ndone; i++)
        push_orphan(w, w->done[i].group_id, w->done[i].fid);
    w->ndone = w->ndone_notified = 0;
    schedule(w);
}

/* new_piece: an empty piece at the writer's current offset. */
static struct piece *new_piece(struct spy_blob_writer *w)
{
    const struct spy_blob_config *cfg = &w->bs->cfg;
    struct piece *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->w = w;
    p->index = w->next_index++;
    p->offset = w->total;
    p->nsegs = (size_t)((cfg->piece_size + SEG_SIZE - 1) / SEG_SIZE);
    p->segs = calloc(p->nsegs, sizeof(*p->segs));
    p->tried = calloc(cfg->write_attempts, sizeof(*p->tried));
    if (p->segs == NULL || p->tried == NULL) {
        free_piece(p);
        return NULL;
    }
    return p;
}

/* copy_in: appends n caller bytes to the streaming piece's buffer. */
static int copy_in(struct piece *p, const uint8_t *data, size_t n)
{
    while (n > 0) {
        size_t seg = (size_t)(p->filled / SEG_SIZE), off = (size_t)(p->filled % SEG_SIZE);
        size_t cap = segment_capacity(p->w, seg);
        if (p->segs[seg] == NULL && (p->segs[seg] = malloc(cap)) == NULL)
            return SPY_ENOMEM;
        size_t k = cap - off < n ? cap - off : n;
        memcpy(p->segs[seg] + off, data, k);
        p->crc = spy_crc32c(p->crc, data, k);
        p->filled += k;
        data += k;
        n -= k;
    }
    return SPY_OK;
}

/* seal: the piece takes no more bytes; its replicas may send END. */
static void seal(struct spy_blob_writer *w, struct piece *p)
{
    p->sealed = 1;
    if (w->streaming == p)
        w->streaming = NULL;
    pump_attempt(p);
}

/* feed: moves the caller's slice into pieces as far as the two-piece bound
 * allows, starting pieces and sealing full ones. */
static void feed(struct spy_blob_writer *w)
{
    uint64_t piece_size = w->bs->cfg.piece_size;
    while (w->slice_pending && w->slice_off < w->slice_len && w->error == SPY_OK) {
        if (w->streaming == NULL) {
            if (w->nlive == MAX_LIVE)
                return; /* double buffer full: the rest waits for a piece to finish */
            struct piece *p = new_piece(w);
            if (p == NULL) {
                writer_fail(w, SPY_ENOMEM);
                return;
            }
            w->live[w->nlive++] = p;
            w->streaming = p;
            start_attempt(p);
            continue; /* the attempt may have failed the writer */
        }
        struct piece *p = w->streaming;
        size_t left = w->slice_len - w->slice_off;
        size_t n = piece_size - p->filled < left ? (size_t)(piece_size - p->filled) : left;
        if (copy_in(p, w->slice + w->slice_off, n) != SPY_OK) {
            writer_fail(w, SPY_ENOMEM);
            return;
        }
        w->slice_off += n;
        w->total += n;
        if (p->filled == piece_size)
            seal(w, p);
        else
            pump_attempt(p);
    }
}

/* slice_written: 1 when the whole slice is in piece buffers and every
 * replica holding its bytes completed the socket writes of them. */
static int slice_written(const struct spy_blob_writer *w)
{
    if (w->slice_off < w->slice_len)
        return 0;
    uint64_t start = w->slice_end - w->slice_len;
    for (size_t i = 0; i < w->nlive; i++) {
        const struct piece *p = w->live[i];
        uint64_t end = p->offset + p->filled;
        if (end <= start || p->offset >= w->slice_end)
            continue;
        uint64_t need = (w->slice_end < end ? w->slice_end : end) - p->offset;
        if (p->att == NULL)
            return 0;
        for (size_t j = 0; j < p->att->nrep; j++)
            if (p->att->rep[j].sent < need)
                return 0;
    }
    return 1;
}

/* free_writer: the end of the writer's memory. */
static void free_writer(struct spy_blob_writer *w)
{
    if (h2o_timeout_is_linked(&w->defer))
        h2o_timeout_unlink(&w->defer);
    w->lp->active--;
    free(w->done);
    free(w->orphans);
    free(w);
}

/* compare_offsets: qsort order: ascending blob offset. */
static int compare_offsets(const void *a, const void *b)
{
    uint64_t x = ((const struct spy_blob_piece *)a)->offset;
    uint64_t y = ((const struct spy_blob_piece *)b)->offset;
    return x < y ? -1 : x > y;
}

/* deliver_done: the finished write's one done call; frees the writer. */
static void deliver_done(struct spy_blob_writer *w)
{
    w->aborted = 1; /* from here on the writer is ending: nothing else may run */
    int status = w->error;
    if (status == SPY_OK) {
        if (w->ndone > 1)
            qsort(w->done, w->ndone, sizeof(*w->done), compare_offsets);
        SPY_BLOB_COUNT(w->bs, writes_done, 1);
        w->written_cb(w->arg, SPY_OK, w->done, w->ndone);
    } else {
        w->written_cb(w->arg, status, NULL, 0);
    }
}

/* deliver: every event due, in order: orphans, finished pieces, the slice's
 * consumption (or the failure), the end of a finished write. */
static void deliver(struct spy_blob_writer *w)
{
    flush_orphans(w);
    while (!w->aborted && w->ndone_notified < w->ndone) {
        const struct spy_blob_piece piece = w->done[w->ndone_notified++];
        if (w->h.on_piece != NULL)
            w->h.on_piece(w->arg, &piece);
    }
    if (w->aborted)
        return;
    if (w->slice_pending && (w->error != SPY_OK || slice_written(w))) {
        w->slice_pending = 0;
        w->slice = NULL;
        w->consumed_cb(w->arg, w->error);
        if (w->aborted)
            return;
    }
    if (w->finishing && !w->slice_pending && (w->error != SPY_OK || w->nlive == 0)) {
        flush_orphans(w);
        deliver_done(w);
    }
}

/* on_defer: the writer's turn on the loop. */
static void on_defer(h2o_timeout_entry_t *entry)
{
    struct spy_blob_writer *w = H2O_STRUCT_FROM_MEMBER(struct spy_blob_writer, defer, entry);
    w->holds++;
    deliver(w);
    if (--w->holds == 0 && w->aborted)
        free_writer(w);
}

/* spy_blob_write_begin: an empty writer; nothing goes out before the first data. */
int spy_blob_write_begin(struct spy_blob_loop *lp, const struct spy_blob_write_handler *h,
                         void *arg, struct spy_blob_writer **out)
{
    *out = NULL;
    if (h == NULL || h->on_orphan == NULL)
        return SPY_EINVAL;
    struct spy_blob_writer *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return SPY_ENOMEM;
    w->lp = lp;
    w->bs = lp->bs;
    w->h = *h;
    w->arg = arg;
    w->defer.cb = on_defer;
    lp->active++;
    SPY_BLOB_COUNT(w->bs, writes_started, 1);
    *out = w;
    return SPY_OK;
}

/* spy_blob_write_data: takes one slice and feeds it into pieces. */
int spy_blob_write_data(struct spy_blob_writer *w, const void *data, size_t len,
                        spy_blob_consumed_cb cb)
{
    if (w->error != SPY_OK)
        return w->error;
    if (len == 0 || cb == NULL || w->slice_pending || w->finishing || w->aborted)
        return SPY_EINVAL;
    w->slice_pending = 1;
    w->slice = data;
    w->slice_len = len;
    w->slice_off = 0;
    w->slice_end = w->total + len;
    w->consumed_cb = cb;
    feed(w);
    schedule(w);
    return SPY_OK;
}

/* spy_blob_write_finish: seals the last piece; done follows the last acknowledgement. */
int spy_blob_write_finish(struct spy_blob_writer *w, spy_blob_written_cb cb)
{
    if (cb == NULL || w->slice_pending || w->finishing || w->aborted)
        return SPY_EINVAL;
    w->finishing = 1;
    w->written_cb = cb;
    if (w->streaming != NULL)
        seal(w, w->streaming);
    schedule(w);
    return SPY_OK;
}

/* spy_blob_write_abort: fails the writer, hands over its orphans at once, frees. */
void spy_blob_write_abort(struct spy_blob_writer *w)
{
    if (w->aborted || w->aborting)
        return;
    w->aborting = 1;
    if (w->error == SPY_OK)
        writer_fail(w, SPY_EABORTED); /* every fid still held becomes an orphan */
    if (h2o_timeout_is_linked(&w->defer))
        h2o_timeout_unlink(&w->defer);
    w->holds++;
    while (w->orphan_head < w->norphans) {
        struct orphan o = w->orphans[w->orphan_head++];
        w->h.on_orphan(w->arg, o.group_id, o.fid);
    }
    w->holds--;
    w->aborted = 1;
    if (w->holds == 0)
        free_writer(w);
}
