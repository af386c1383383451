/* proto.h - the chunkserver wire protocol, shared by spy_server, chunktool and
 * the blobstore client. docs/protocol.md is the prose version of this file.
 *
 * Every message is a frame: a 24-byte header followed by 'len' payload bytes.
 * Integers are big-endian.
 *
 *   00-01 magic    0x5359 ("SY")
 *   02    version  1
 *   03    op       enum spy_op
 *   04    flags    SPY_FRAME_RESPONSE, SPY_FRAME_ABORT
 *   05    status   responses: -(enum spy_status) as a positive byte; requests: 0
 *   06-07 reserved 0
 *   08-15 req_id   chosen by the client, echoed in every frame of the response
 *   16-19 len      payload bytes that follow (bounded per op, see spy_frame_max_payload)
 *   20-23 hcrc     crc32c of bytes 00-19
 *
 * Requests on one connection are answered in order, one response per request
 * (a GET response is a frame sequence). A streamed PUT is PUT, DATA..., END with
 * one req_id and nothing else interleaved. A malformed frame (bad magic,
 * version, hcrc, reserved bits, unknown op, a payload too large for its op) is
 * answered with an EPROTO response (req_id 0 if unknown) and the connection is
 * closed: after a bad header the stream cannot be resynchronised.
 *
 * Ops (request payload -> response payload):
 *   PING    ()                        -> ()
 *   STATUS  ()                        -> JSON object text (see docs/protocol.md)
 *   STAT    fid u64                   -> spy_stat_resp (40 bytes)
 *   DELETE  fid u64                   -> ()
 *   GET     fid u64, offset u64, length u64 (length 0 = to the end)
 *           -> GET response frame: object_len u64, offset u64, length u64 (bytes
 *              that will follow); then DATA frames (op DATA, RESPONSE flag), each
 *              at most SPY_DATA_MAX bytes; then an END frame whose status is the
 *              outcome and whose payload is crc32c u32 of all bytes sent. A
 *              corrupt block found mid-stream ends the stream with END status
 *              ECORRUPT: only verified bytes are ever sent, and a client must
 *              not use the bytes unless END says OK.
 *   PUT     fid u64, max_len u64      (begins; max_len is the space to reserve)
 *   DATA    body bytes (1..SPY_DATA_MAX)
 *   END     total_len u64, crc32c u32 of the body (client's end-to-end check)
 *           flags SPY_FRAME_ABORT: abandon the put (total_len/crc ignored)
 *           -> one PUT response frame: () on success. The server may answer a
 *              PUT early with an error (EEXISTS, ENOSPC, ...) before END; it then
 *              discards that put's remaining DATA frames and its END silently.
 */
#ifndef SPY_PROTO_H
#define SPY_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define SPY_PROTO_MAGIC    0x5359u
#define SPY_PROTO_VERSION  1
#define SPY_FRAME_HDR_SIZE 24
#define SPY_DATA_MAX       (1u << 20)  /* one memory block */
#define SPY_SMALL_MAX      (64u << 10) /* any non-DATA payload, e.g. STATUS JSON */

enum spy_op {
    SPY_OP_PING = 1,
    SPY_OP_STATUS = 2,
    SPY_OP_STAT = 3,
    SPY_OP_GET = 4,
    SPY_OP_DELETE = 5,
    SPY_OP_PUT = 6,
    SPY_OP_DATA = 7,
    SPY_OP_END = 8,
};

enum spy_frame_flags {
    SPY_FRAME_RESPONSE = 0x01,
    SPY_FRAME_ABORT = 0x02,
};

struct spy_frame {
    uint8_t op;
    uint8_t flags;
    int status; /* enum spy_status: 0 or negative */
    uint64_t req_id;
    uint32_t len;
};

/* Writes the 24-byte header for 'f' into out (hcrc computed here). */
void spy_frame_encode(const struct spy_frame *f, uint8_t out[SPY_FRAME_HDR_SIZE]);

/* Parses and validates a 24-byte header. Returns SPY_OK, or SPY_EPROTO when
 * the magic, version, hcrc, reserved byte, op, flags, status or payload length
 * (spy_frame_max_payload) is wrong. Never reads past the 24 bytes. */
int spy_frame_decode(const uint8_t in[SPY_FRAME_HDR_SIZE], struct spy_frame *out);

/* The largest payload allowed for 'op' in the given direction. */
uint32_t spy_frame_max_payload(uint8_t op, int is_response);

/* Exact payload sizes of the fixed-size messages. */
#define SPY_FID_PAYLOAD       8 /* STAT, DELETE request */
#define SPY_GET_REQ_PAYLOAD   24
#define SPY_GET_RESP_PAYLOAD  24
#define SPY_PUT_REQ_PAYLOAD   16
#define SPY_END_REQ_PAYLOAD   12
#define SPY_END_RESP_PAYLOAD  4
#define SPY_STAT_RESP_PAYLOAD 40

struct spy_get_req {
    uint64_t fid, offset, length;
};
struct spy_get_resp {
    uint64_t object_len, offset, length;
};
struct spy_put_req {
    uint64_t fid, max_len;
};
struct spy_end_req {
    uint64_t total_len;
    uint32_t crc;
};
struct spy_stat_resp {
    uint64_t fid, len;
    uint64_t chunk_id;  /* where it lives, for operators */
    uint64_t offset;    /* record offset in the chunk file */
    uint64_t timestamp; /* unix seconds when written */
};

/* Big-endian helpers. */
void spy_put_u32(uint8_t *p, uint32_t v);
void spy_put_u64(uint8_t *p, uint64_t v);
uint32_t spy_get_u32(const uint8_t *p);
uint64_t spy_get_u64(const uint8_t *p);

/* Payload codecs. Encoders write exactly the SPY_*_PAYLOAD bytes; decoders
 * return SPY_OK or SPY_EPROTO when 'len' is not the exact size. */
void spy_get_req_encode(const struct spy_get_req *r, uint8_t *out);
int spy_get_req_decode(const uint8_t *in, size_t len, struct spy_get_req *r);
void spy_get_resp_encode(const struct spy_get_resp *r, uint8_t *out);
int spy_get_resp_decode(const uint8_t *in, size_t len, struct spy_get_resp *r);
void spy_put_req_encode(const struct spy_put_req *r, uint8_t *out);
int spy_put_req_decode(const uint8_t *in, size_t len, struct spy_put_req *r);
void spy_end_req_encode(const struct spy_end_req *r, uint8_t *out);
int spy_end_req_decode(const uint8_t *in, size_t len, struct spy_end_req *r);
void spy_stat_resp_encode(const struct spy_stat_resp *r, uint8_t *out);
int spy_stat_resp_decode(const uint8_t *in, size_t len, struct spy_stat_resp *r);
int spy_fid_decode(const uint8_t *in, size_t len, uint64_t *fid);

#endif
