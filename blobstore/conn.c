/* conn.c - chunkserver connections on an h2o loop and the idle pool (see
 * conn.h). */
#include "blobstore/conn.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/status.h"

enum conn_state {
    CONN_CONNECTING,
    CONN_READY,  /* owned and connected */
    CONN_POOLED, /* idle in the loop's pool, no owner */
    CONN_DEAD,   /* closed; freed when no callback of ours is on the stack */
};

struct spy_blobconn {
    struct spy_blob_loop *lp;
    h2o_socket_t *sock;
    char name[SPY_BLOBROUTE_NAME_MAX];
    enum conn_state state;
    const struct spy_blobconn_handler *h; /* NULL once the owner let go */
    void *arg;
    uint64_t next_req_id;
    /* writing */
    int writing;
    h2o_iovec_t wbufs[4];
    size_t nwbufs;
    /* reading */
    int expecting, paused;
    struct spy_frame frame; /* the DATA frame being received */
    uint32_t data_left;     /* its payload bytes still to come */
    size_t held;            /* bytes given to a paused owner, consumed at resume */
    /* timers */
    h2o_timeout_entry_t timer;
    h2o_timeout_entry_t defer; /* a deferred error report or resumed reading */
    int deferred_error;        /* SPY_OK: the deferred call is a resume */
    int busy;                  /* depth of our own callbacks on the stack */
    h2o_linklist_t pool_link;
};

static void on_read(h2o_socket_t *sock, const char *err);

/* free_if_idle: frees a dead connection once nothing of ours is on the stack. */
static void free_if_idle(struct spy_blobconn *c)
{
    if (c->state != CONN_DEAD || c->busy > 0)
        return;
    if (h2o_timeout_is_linked(&c->timer))
        h2o_timeout_unlink(&c->timer);
    if (h2o_timeout_is_linked(&c->defer))
        h2o_timeout_unlink(&c->defer);
    free(c);
}

/* update_timer: arms the one deadline the connection's state calls for (see
 * conn.h), re-linking it so that it counts from now. */
static void update_timer(struct spy_blobconn *c)
{
    struct spy_blob_loop *lp = c->lp;
    h2o_timeout_t *t = NULL;
    if (c->state == CONN_CONNECTING)
        t = &lp->connect_timeout;
    else if (c->state == CONN_READY && (c->writing || (c->expecting && !c->paused)))
        t = &lp->io_timeout;
    else if (c->state == CONN_POOLED)
        t = &lp->idle_timeout;
    if (h2o_timeout_is_linked(&c->timer))
        h2o_timeout_unlink(&c->timer);
    if (t != NULL)
        h2o_timeout_link(lp->loop, t, &c->timer);
}

/* close_socket: closes the socket and leaves the pool if pooled. */
static void close_socket(struct spy_blobconn *c)
{
    if (c->state == CONN_POOLED) {
        h2o_linklist_unlink(&c->pool_link);
        SPY_BLOB_COUNT(c->lp->bs, conns_idle, -1);
    }
    if (c->sock != NULL) {
        c->sock->data = NULL;
        h2o_socket_close(c->sock);
        c->sock = NULL;
    }
    c->state = CONN_DEAD;
    if (h2o_timeout_is_linked(&c->timer))
        h2o_timeout_unlink(&c->timer);
    if (h2o_timeout_is_linked(&c->defer))
        h2o_timeout_unlink(&c->defer);
}

/* fail: closes the connection and tells the owner (once). */
static void fail(struct spy_blobconn *c, int status)
{
    if (c->state == CONN_DEAD)
        return;
    if (status == SPY_ETIMEDOUT)
        SPY_BLOB_COUNT(c->lp->bs, timeouts, 1);
    close_socket(c);
    const struct spy_blobconn_handler *h = c->h;
    c->h = NULL;
    if (h != NULL) {
        c->busy++;
        h->on_error(c->arg, status);
        c->busy--;
    }
    free_if_idle(c);
}

/* on_timer: the connection's deadline passed. */
static void on_timer(h2o_timeout_entry_t *entry)
{
    struct spy_blobconn *c = H2O_STRUCT_FROM_MEMBER(struct spy_blobconn, timer, entry);
    if (c->state == CONN_POOLED) {
        close_socket(c); /* idle too long: simply closed */
        free_if_idle(c);
        return;
    }
    spy_debug("blobstore: %s: %s timed out", c->name,
              c->state == CONN_CONNECTING ? "connect" : "I/O");
    fail(c, SPY_ETIMEDOUT);
}

/* consume: drops n bytes from the socket's input buffer. */
static void consume(struct spy_blobconn *c, size_t n)
{
    if (n > 0)
        h2o_buffer_consume(&c->sock->input, n);
}

/* deliver_data: hands the next DATA bytes to the owner. Returns 1 to stop. */
static int deliver_data(struct spy_blobconn *c)
{
    h2o_buffer_t *in = c->sock->input;
    size_t n = in->size < c->data_left ? in->size : c->data_left;
    if (n == 0)
        return 1;
    c->data_left -= (uint32_t)n;
    c->held = n;
    int stop = c->h->on_data(c->arg, &c->frame, (const uint8_t *)in->bytes, n);
    if (c->state != CONN_READY || c->paused)
        return 1; /* released/closed, or the slice stays held until resume */
    consume(c, n);
    c->held = 0;
    return stop;
}

/* deliver_frame: decodes the next header and hands a whole small frame to
 * the owner, or starts a DATA frame. Returns 1 to stop (need more bytes, or
 * the owner said so, or the connection failed). */
static int deliver_frame(struct spy_blobconn *c)
{
    h2o_buffer_t *in = c->sock->input;
    if (in->size < SPY_FRAME_HDR_SIZE)
        return 1;
    struct spy_frame f;
    if (spy_frame_decode((const uint8_t *)in->bytes, &f) != SPY_OK ||
        (f.flags & SPY_FRAME_RESPONSE) == 0 || (f.flags & SPY_FRAME_ABORT) != 0 ||
        (f.op == SPY_OP_DATA && f.len == 0) ||
        (f.op != SPY_OP_DATA && f.len > SPY_BLOBCONN_SMALL_MAX)) {
        spy_warn("blobstore: %s: malformed or unexpected response frame", c->name);
        fail(c, SPY_EPROTO);
        return 1;
    }
    if (f.op == SPY_OP_DATA) {
        consume(c, SPY_FRAME_HDR_SIZE);
        c->frame = f;
        c->data_left = f.len;
        return 0;
    }
    if (in->size < SPY_FRAME_HDR_SIZE + f.len)
        return 1;
    uint8_t payload[SPY_BLOBCONN_SMALL_MAX];
    memcpy(payload, in->bytes + SPY_FRAME_HDR_SIZE, f.len);
    consume(c, SPY_FRAME_HDR_SIZE + f.len); /* before the call: the owner may pool us */
    return c->h->on_frame(c->arg, &f, payload);
}

/* process_input: delivers what the input buffer holds, frame by frame,
 * until it runs out, the owner pauses, stops or lets go, or we fail. */
static void process_input(struct spy_blobconn *c)
{
    c->busy++;
    while (c->state == CONN_READY && c->h != NULL && !c->paused) {
        int stop = c->data_left > 0 ? deliver_data(c) : deliver_frame(c);
        if (stop)
            break;
    }
    c->busy--;
    free_if_idle(c);
}

/* on_read: bytes (or an error) arrived. */
static void on_read(h2o_socket_t *sock, const char *err)
{
    struct spy_blobconn *c = sock->data;
    if (c == NULL)
        return;
    if (err != NULL) {
        if (c->state == CONN_POOLED) {
            close_socket(c); /* the server closed an idle connection */
            free_if_idle(c);
            return;
        }
        spy_debug("blobstore: %s: read failed: %s", c->name, err);
        fail(c, err == h2o_socket_error_closed ? SPY_ECLOSED : SPY_EIO);
        return;
    }
    if (c->state == CONN_POOLED) {
        if (sock->input->size > 0) { /* nothing is expected on an idle connection */
            close_socket(c);
            free_if_idle(c);
        }
        return;
    }
    update_timer(c);
    if (c->h == NULL) {
        /* Owner gone but not yet closed cannot happen: release closes or pools. */
        return;
    }
    process_input(c);
}

/* on_write: the write in flight completed (or failed). */
static void on_write(h2o_socket_t *sock, const char *err)
{
    struct spy_blobconn *c = sock->data;
    if (c == NULL)
        return;
    c->writing = 0;
    if (err != NULL) {
        spy_debug("blobstore: %s: write failed: %s", c->name, err);
        fail(c, SPY_EIO);
        return;
    }
    update_timer(c);
    if (c->h != NULL) {
        c->busy++;
        c->h->on_sent(c->arg);
        c->busy--;
        free_if_idle(c);
    }
}

/* start_write: hands the queued buffers to h2o. */
static void start_write(struct spy_blobconn *c)
{
    h2o_socket_write(c->sock, c->wbufs, c->nwbufs, on_write);
}

/* on_connect: the connect completed (or failed). */
static void on_connect(h2o_socket_t *sock, const char *err)
{
    struct spy_blobconn *c = sock->data;
    if (c == NULL)
        return;
    if (err != NULL) {
        spy_debug("blobstore: %s: connect failed: %s", c->name, err);
        fail(c, SPY_EIO);
        return;
    }
    c->state = CONN_READY;
    if (!c->paused)
        h2o_socket_read_start(sock, on_read);
    if (c->writing)
        start_write(c);
    update_timer(c);
}

/* on_defer: a deferred error report (connect failed at once) or a resume. */
static void on_defer(h2o_timeout_entry_t *entry)
{
    struct spy_blobconn *c = H2O_STRUCT_FROM_MEMBER(struct spy_blobconn, defer, entry);
    if (c->deferred_error != SPY_OK) {
        fail(c, c->deferred_error);
        return;
    }
    if (c->state == CONN_READY && c->h != NULL && !c->paused)
        process_input(c);
}

/* set_socket_options: the configured buffer sizes (they bound what one read
 * burst can put in the input buffer) and no Nagle delay for small frames. */
static void set_socket_options(struct spy_blobconn *c)
{
    const struct spy_blob_config *cfg = &c->lp->bs->cfg;
    int fd = h2o_socket_get_fd(c->sock);
    if (fd < 0)
        return;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (cfg->so_rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &cfg->so_rcvbuf, sizeof(cfg->so_rcvbuf));
    if (cfg->so_sndbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cfg->so_sndbuf, sizeof(cfg->so_sndbuf));
}

/* from_pool: the most recently pooled connection to 'name', or NULL. */
static struct spy_blobconn *from_pool(struct spy_blob_loop *lp, const char *name)
{
    for (h2o_linklist_t *n = lp->idle.next; n != &lp->idle; n = n->next) {
        struct spy_blobconn *c = H2O_STRUCT_FROM_MEMBER(struct spy_blobconn, pool_link, n);
        if (strcmp(c->name, name) == 0) {
            h2o_linklist_unlink(&c->pool_link);
            SPY_BLOB_COUNT(lp->bs, conns_idle, -1);
            return c;
        }
    }
    return NULL;
}

/* spy_blobconn_acquire: a pooled connection if one is idle, else a new non-blocking connect. */
struct spy_blobconn *spy_blobconn_acquire(struct spy_blob_loop *lp,
                                          const struct spy_blobroute_server *srv,
                                          const struct spy_blobconn_handler *h, void *arg)
{
    struct spy_blobconn *c = from_pool(lp, srv->name);
    if (c != NULL) {
        c->state = CONN_READY;
        c->h = h;
        c->arg = arg;
        c->expecting = c->paused = 0;
        update_timer(c);
        SPY_BLOB_COUNT(lp->bs, conns_reused, 1);
        return c;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->lp = lp;
    c->h = h;
    c->arg = arg;
    c->next_req_id = 1;
    c->timer.cb = on_timer;
    c->defer.cb = on_defer;
    memcpy(c->name, srv->name, sizeof(c->name));
    c->state = CONN_CONNECTING;
    SPY_BLOB_COUNT(lp->bs, conns_opened, 1);
    c->sock = h2o_socket_connect(lp->loop, (struct sockaddr *)&srv->addr, srv->addrlen, on_connect);
    if (c->sock == NULL) {
        spy_debug("blobstore: %s: connect failed at once", c->name);
        c->deferred_error = SPY_EIO;
        spy_blob_defer(lp, &c->defer);
        return c;
    }
    c->sock->data = c;
    h2o_buffer_init(&c->sock->input, &lp->input_proto); /* still empty: no dispose needed */
    set_socket_options(c);
    update_timer(c);
    return c;
}

/* spy_blobconn_next_req_id: req_ids count up per connection, as spy_client's do. */
uint64_t spy_blobconn_next_req_id(struct spy_blobconn *c)
{
    return c->next_req_id++;
}

/* spy_blobconn_send: one write in flight; queued until the connect completes. */
void spy_blobconn_send(struct spy_blobconn *c, const h2o_iovec_t *bufs, size_t n)
{
    assert(!c->writing && n <= 4);
    memcpy(c->wbufs, bufs, n * sizeof(*bufs));
    c->nwbufs = n;
    c->writing = 1;
    if (c->state == CONN_READY)
        start_write(c);
    update_timer(c);
}

/* spy_blobconn_set_owner: hands the connection to another handler. */
void spy_blobconn_set_owner(struct spy_blobconn *c, const struct spy_blobconn_handler *h, void *arg)
{
    if (c->state == CONN_DEAD)
        return;
    c->h = h;
    c->arg = arg;
}

/* spy_blobconn_expect: turns the response deadline on or off. */
void spy_blobconn_expect(struct spy_blobconn *c, int on)
{
    c->expecting = on;
    if (c->state == CONN_READY)
        update_timer(c);
}

/* spy_blobconn_pause: stops reading: the owner holds a slice of the input buffer. */
void spy_blobconn_pause(struct spy_blobconn *c)
{
    if (c->paused || c->state == CONN_DEAD)
        return;
    c->paused = 1;
    if (c->state == CONN_READY)
        h2o_socket_read_stop(c->sock);
    update_timer(c);
}

/* spy_blobconn_resume: consumes the held slice and goes on, from the next turn. */
void spy_blobconn_resume(struct spy_blobconn *c)
{
    if (!c->paused || c->state == CONN_DEAD)
        return;
    c->paused = 0;
    if (c->state == CONN_READY) {
        consume(c, c->held);
        c->held = 0;
        h2o_socket_read_start(c->sock, on_read);
        c->deferred_error = SPY_OK;
        spy_blob_defer(c->lp, &c->defer); /* bytes already buffered need no new read */
    }
    update_timer(c);
}

/* poolable: 1 if a released connection is clean and has a place in the pool. */
static int poolable(struct spy_blobconn *c)
{
    if (c->state != CONN_READY || c->writing || c->data_left > 0 || c->held > 0 || c->paused ||
        c->sock->input->size > 0)
        return 0;
    unsigned same = 0;
    for (h2o_linklist_t *n = c->lp->idle.next; n != &c->lp->idle; n = n->next) {
        struct spy_blobconn *o = H2O_STRUCT_FROM_MEMBER(struct spy_blobconn, pool_link, n);
        same += strcmp(o->name, c->name) == 0;
    }
    return same < c->lp->bs->cfg.pool_idle_max;
}

/* spy_blobconn_release: pools a clean connection, closes anything else. */
void spy_blobconn_release(struct spy_blobconn *c, int reusable)
{
    c->h = NULL;
    c->arg = NULL;
    if (reusable && poolable(c)) {
        c->state = CONN_POOLED;
        c->expecting = 0;
        if (h2o_timeout_is_linked(&c->defer))
            h2o_timeout_unlink(&c->defer);
        h2o_linklist_insert(c->lp->idle.next, &c->pool_link); /* at the head: reused first */
        SPY_BLOB_COUNT(c->lp->bs, conns_idle, 1);
        update_timer(c);
        return;
    }
    close_socket(c);
    free_if_idle(c);
}

/* spy_blobconn_name: the server's "ip:port". */
const char *spy_blobconn_name(const struct spy_blobconn *c)
{
    return c->name;
}

/* spy_blobconn_pool_close_all: closes every idle connection of the loop (detach). */
void spy_blobconn_pool_close_all(struct spy_blob_loop *lp)
{
    while (!h2o_linklist_is_empty(&lp->idle)) {
        struct spy_blobconn *c =
            H2O_STRUCT_FROM_MEMBER(struct spy_blobconn, pool_link, lp->idle.next);
        close_socket(c);
        free_if_idle(c);
    }
}
