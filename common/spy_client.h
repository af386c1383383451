/* spy_client.h - a blocking client for one chunkserver connection, used by
 * chunktool, the benchmarks and the crash tests (the registry's event-loop
 * client speaks the same frames from proto.h).
 *
 * One connection, one request at a time, one thread at a time. Every socket
 * operation has a deadline (timeout_ms, applied to each send/recv and to the
 * connect), so nothing waits forever. After any error other than a status the
 * server sent (ENOTFOUND, EEXISTS, ...) the connection is unusable: close it.
 * spy_client_broken tells which case happened; any call on a broken connection
 * (or after the peer closed) returns SPY_ECLOSED. Starting another request
 * while a streamed put is open returns SPY_EINVAL. */
#ifndef SPY_CLIENT_H
#define SPY_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "common/proto.h"

struct spy_client;

/* Connects to host:port (IPv4, IPv6 or a name). Returns SPY_OK, SPY_EIO,
 * SPY_ETIMEDOUT, or SPY_EINVAL (NULL host, port outside 1..65535,
 * timeout_ms <= 0). */
int spy_client_connect(const char *host, int port, int timeout_ms, struct spy_client **out);
void spy_client_close(struct spy_client *c);

/* 1 if the connection can no longer be used (I/O or protocol error). */
int spy_client_broken(const struct spy_client *c);

int spy_client_ping(struct spy_client *c);

/* *json is malloc'd NUL-terminated text owned by the caller. */
int spy_client_status(struct spy_client *c, char **json);

int spy_client_stat(struct spy_client *c, uint64_t fid, struct spy_stat_resp *out);
int spy_client_delete(struct spy_client *c, uint64_t fid);

/* Whole-buffer put: PUT, DATA frames of up to SPY_DATA_MAX, END with crc. */
int spy_client_put(struct spy_client *c, uint64_t fid, const void *data, size_t len);

/* Streamed put: begin, any number of data calls, then end (or abort). An early
 * error from the server surfaces at the next call (and the rest is skipped). */
int spy_client_put_begin(struct spy_client *c, uint64_t fid, uint64_t max_len);
int spy_client_put_data(struct spy_client *c, const void *data, size_t len);
int spy_client_put_end(struct spy_client *c);
/* Abandons the open put (END with SPY_FRAME_ABORT); SPY_OK once the server has
 * discarded it and the connection is usable again. */
int spy_client_put_abort(struct spy_client *c);

/* Range get: calls sink(arg, bytes, n) for each DATA frame as it arrives and
 * returns the END status (SPY_OK only if every byte arrived and the end-to-end
 * crc matched). length 0 = to the end. *object_len (may be NULL) gets the full
 * object size. A NULL sink discards the bytes. A non-zero return from sink
 * aborts (the connection becomes broken): a negative value is returned as is,
 * a positive one as SPY_EABORTED. */
typedef int (*spy_client_sink)(void *arg, const uint8_t *data, size_t n);
int spy_client_get(struct spy_client *c, uint64_t fid, uint64_t offset, uint64_t length,
                   spy_client_sink sink, void *arg, uint64_t *object_len);

#endif
