/* conn.h - one non-blocking chunkserver connection on an h2o loop, and the
 * loop's pool of idle ones. Used by the writer, reader and delete code.
 *
 * A connection speaks proto.h frames. The owner (a piece replica, a reader,
 * a delete) sends requests with spy_blobconn_send (one write in flight, as
 * h2o requires) and receives response frames through its handler: small
 * frames whole (on_frame), DATA payloads in slices as they arrive (on_data),
 * so a 1 MiB frame is never buffered whole. Headers are validated here
 * (spy_frame_decode, the RESPONSE flag, no ABORT flag, a non-empty DATA);
 * req_id and op are the owner's to check.
 *
 * DEADLINES, one timer per connection: connect_timeout_ms while connecting;
 * io_timeout_ms while a write is in flight or the owner expects response
 * bytes (spy_blobconn_expect) and has not paused, re-armed by each completed
 * write and each read; pool_idle_ms while pooled. A deadline that passes
 * fails the connection with SPY_ETIMEDOUT.
 *
 * LIFETIME. spy_blobconn_acquire hands a connection to an owner; the owner
 * lets go with spy_blobconn_release (pooled if clean and reusable, else
 * closed), or the connection fails: on_error(status) runs once, the
 * connection is closed and freed by this module right after on_error
 * returns, and the owner must forget it (no release). After release or
 * on_error, no callback reaches the owner. No function calls back into the
 * owner before it returns; on_frame/on_data may call release, pause, send,
 * expect on their own connection.
 *
 * INPUT. A socket's input buffer comes from the loop's input_proto, sized
 * for one read burst (twice so_rcvbuf), so a burst lands in one allocation
 * instead of h2o doubling (and copying) an 8 KiB buffer up to it; a drained
 * buffer goes back to the prototype's small cache.
 *
 * Loop thread only. */
#ifndef SPY_BLOB_CONN_H
#define SPY_BLOB_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <h2o/socket.h>

#include "blobstore/internal.h"
#include "common/proto.h"

struct spy_blobconn;

#define SPY_BLOBCONN_SMALL_MAX 64 /* largest non-DATA payload a client expects (STAT: 40) */

struct spy_blobconn_handler {
    /* A whole non-DATA response frame; payload holds f->len bytes (at most
     * SPY_BLOBCONN_SMALL_MAX; more is a protocol error) and is valid during
     * the call. Return 0 to go on reading, 1 to stop for now (after a
     * release or pause, or when no more frames are wanted). */
    int (*on_frame)(void *arg, const struct spy_frame *f, const uint8_t *payload);
    /* n more bytes of the DATA frame f (its header: f->len is the whole
     * payload). data is valid until this returns, or, if the owner paused
     * inside, until it resumes (or releases). Return as on_frame. */
    int (*on_data)(void *arg, const struct spy_frame *f, const uint8_t *data, size_t n);
    /* The write passed to spy_blobconn_send completed: its buffers are free. */
    void (*on_sent)(void *arg);
    /* The connection failed (SPY_EIO: connect or I/O error; SPY_ECLOSED: the
     * server closed; SPY_ETIMEDOUT; SPY_EPROTO: a malformed frame). It is
     * closed and freed after this returns. */
    void (*on_error)(void *arg, int status);
};

/* A connection to srv for the owner (h, arg): a pooled idle one if there is
 * one (ready at once), else a new one (connecting; sends wait for it). A
 * connect that fails at once is reported through on_error later, like any
 * other. NULL only if out of memory. */
struct spy_blobconn *spy_blobconn_acquire(struct spy_blob_loop *lp,
                                          const struct spy_blobroute_server *srv,
                                          const struct spy_blobconn_handler *h, void *arg);

/* A fresh req_id for the next request on this connection (1, 2, ...). */
uint64_t spy_blobconn_next_req_id(struct spy_blobconn *c);

/* Sends bufs[0..n) (n <= 4; the array is copied, the bytes are not: they
 * must stay valid until on_sent). One write in flight at a time. */
void spy_blobconn_send(struct spy_blobconn *c, const h2o_iovec_t *bufs, size_t n);

/* Hands an owned connection to another handler and arg (a read-ahead GET
 * becoming the current one); callbacks from now on go to them. */
void spy_blobconn_set_owner(struct spy_blobconn *c, const struct spy_blobconn_handler *h,
                            void *arg);

/* 1: the owner waits for response bytes, so the I/O deadline runs while no
 * write is in flight; 0: it does not (e.g. a put waiting for more data from
 * its own client). */
void spy_blobconn_expect(struct spy_blobconn *c, int on);

/* Stops reading (and the read deadline) until resume; a slice given to
 * on_data stays valid. */
void spy_blobconn_pause(struct spy_blobconn *c);

/* Releases the held slice and goes on reading from the next turn of the loop. */
void spy_blobconn_resume(struct spy_blobconn *c);

/* The owner lets go. reusable: the last response was read completely and
 * the connection is in step; it is pooled if it is clean (no write in
 * flight, no unread bytes) and the pool has room, otherwise closed (which
 * also aborts a put in flight on the server). */
void spy_blobconn_release(struct spy_blobconn *c, int reusable);

/* "ip:port" of the server, for logs and the blacklist. */
const char *spy_blobconn_name(const struct spy_blobconn *c);

/* Closes every pooled connection of the loop (detach). */
void spy_blobconn_pool_close_all(struct spy_blob_loop *lp);

#endif
