#include "common/status.h"

/* spy_strerror: a fixed text per code, for logs and for tools; unknown codes
 * get a generic text rather than NULL so callers can print it blindly. */
const char *spy_strerror(int status)
{
    switch (status) {
    case SPY_OK:
        return "ok";
    case SPY_ENOTFOUND:
        return "not found";
    case SPY_EEXISTS:
        return "fid already exists";
    case SPY_ECORRUPT:
        return "stored data is corrupt";
    case SPY_ENOSPC:
        return "no space left in any chunk";
    case SPY_ENOMEM:
        return "memory block pool exhausted";
    case SPY_EBUSY:
        return "busy: no chunk free for writing, or a queue is full";
    case SPY_EPROTO:
        return "protocol error";
    case SPY_EIO:
        return "I/O error";
    case SPY_ERANGE:
        return "range outside the object";
    case SPY_EINVAL:
        return "invalid argument";
    case SPY_ETIMEDOUT:
        return "timed out";
    case SPY_EABORTED:
        return "aborted by client";
    case SPY_ECHECKSUM:
        return "body checksum mismatch";
    case SPY_ECLOSED:
        return "connection closed";
    case SPY_EREADONLY:
        return "store is read-only";
    case SPY_EUNAVAIL:
        return "storage unavailable (no route table or no fids from the chunkmaster)";
    default:
        return "unknown error";
    }
}
