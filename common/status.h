/* status.h - the error codes every speedy layer returns.
 *
 * Codes travel as values: a function returns SPY_OK or a negative code, the
 * layer where the error arose logs it once, and callers decide (retry, fail
 * over, map to HTTP). The numeric values also travel on the wire (the status
 * byte of a response frame, as the positive number), so never renumber. */
#ifndef SPY_STATUS_H
#define SPY_STATUS_H

/* The most negative code; wire status bytes above -SPY_STATUS_LAST are malformed. */
#define SPY_STATUS_LAST SPY_EUNAVAIL

enum spy_status {
    SPY_OK = 0,
    SPY_ENOTFOUND = -1,  /* no such fid (or it was deleted) */
    SPY_EEXISTS = -2,    /* fid already written, deleted, or being written */
    SPY_ECORRUPT = -3,   /* stored bytes fail their checksum; never served */
    SPY_ENOSPC = -4,     /* no chunk has room for the object */
    SPY_ENOMEM = -5,     /* memory block pool exhausted (after back-pressure) */
    SPY_EBUSY = -6,      /* no chunk free for writing within the wait */
    SPY_EPROTO = -7,     /* malformed frame or request; the connection closes */
    SPY_EIO = -8,        /* disk or socket I/O error */
    SPY_ERANGE = -9,     /* offset/length outside the object, or body over max */
    SPY_EINVAL = -10,    /* bad argument */
    SPY_ETIMEDOUT = -11, /* a deadline passed */
    SPY_EABORTED = -12,  /* the client aborted a streamed put */
    SPY_ECHECKSUM = -13, /* the client's end-to-end crc does not match the body */
    SPY_ECLOSED = -14,   /* the peer closed the connection */
    SPY_EREADONLY = -15, /* the store refuses writes (damaged chunk, fsync error) */
    SPY_EUNAVAIL = -16,  /* no storage can take a write now: no route table, no fids
                            cached (master unreachable); never sent by spy_server */
};

/* Returns a short constant text for a status ("not found"); never NULL. */
const char *spy_strerror(int status);

#endif
