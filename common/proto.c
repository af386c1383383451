#include "common/proto.h"

#include "common/crc32c.h"
#include "common/status.h"

void spy_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

void spy_put_u64(uint8_t *p, uint64_t v)
{
    spy_put_u32(p, (uint32_t)(v >> 32));
    spy_put_u32(p + 4, (uint32_t)v);
}

uint32_t spy_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint64_t spy_get_u64(const uint8_t *p)
{
    return (uint64_t)spy_get_u32(p) << 32 | spy_get_u32(p + 4);
}

void spy_frame_encode(const struct spy_frame *f, uint8_t out[SPY_FRAME_HDR_SIZE])
{
    out[0] = SPY_PROTO_MAGIC >> 8;
    out[1] = SPY_PROTO_MAGIC & 0xff;
    out[2] = SPY_PROTO_VERSION;
    out[3] = f->op;
    out[4] = f->flags;
    out[5] = (uint8_t)(-f->status);
    out[6] = 0;
    out[7] = 0;
    spy_put_u64(out + 8, f->req_id);
    spy_put_u32(out + 16, f->len);
    spy_put_u32(out + 20, spy_crc32c(0, out, 20));
}

/* spy_frame_max_payload: the per-op bound that makes "oversized" precise;
 * anything above it is a protocol error before a byte of payload is read. */
uint32_t spy_frame_max_payload(uint8_t op, int is_response)
{
    switch (op) {
    case SPY_OP_PING:
        return 0;
    case SPY_OP_STATUS:
        return is_response ? SPY_SMALL_MAX : 0;
    case SPY_OP_STAT:
        return is_response ? SPY_STAT_RESP_PAYLOAD : SPY_FID_PAYLOAD;
    case SPY_OP_GET:
        return is_response ? SPY_GET_RESP_PAYLOAD : SPY_GET_REQ_PAYLOAD;
    case SPY_OP_DELETE:
        return is_response ? 0 : SPY_FID_PAYLOAD;
    case SPY_OP_PUT:
        return is_response ? 0 : SPY_PUT_REQ_PAYLOAD;
    case SPY_OP_DATA:
        return SPY_DATA_MAX;
    case SPY_OP_END:
        return is_response ? SPY_END_RESP_PAYLOAD : SPY_END_REQ_PAYLOAD;
    default:
        return 0;
    }
}

int spy_frame_decode(const uint8_t in[SPY_FRAME_HDR_SIZE], struct spy_frame *out)
{
    if (((uint32_t)in[0] << 8 | in[1]) != SPY_PROTO_MAGIC || in[2] != SPY_PROTO_VERSION)
        return SPY_EPROTO;
    if (spy_get_u32(in + 20) != spy_crc32c(0, in, 20))
        return SPY_EPROTO;
    if (in[6] != 0 || in[7] != 0)
        return SPY_EPROTO;
    uint8_t op = in[3], flags = in[4];
    if (op < SPY_OP_PING || op > SPY_OP_END)
        return SPY_EPROTO;
    if (flags & ~(SPY_FRAME_RESPONSE | SPY_FRAME_ABORT))
        return SPY_EPROTO;
    int is_response = (flags & SPY_FRAME_RESPONSE) != 0;
    if (!is_response && in[5] != 0)
        return SPY_EPROTO;
    if (in[5] > -SPY_STATUS_LAST)
        return SPY_EPROTO;
    uint32_t len = spy_get_u32(in + 16);
    if (len > spy_frame_max_payload(op, is_response))
        return SPY_EPROTO;
    out->op = op;
    out->flags = flags;
    out->status = -(int)in[5];
    out->req_id = spy_get_u64(in + 8);
    out->len = len;
    return SPY_OK;
}

void spy_get_req_encode(const struct spy_get_req *r, uint8_t *out)
{
    spy_put_u64(out, r->fid);
    spy_put_u64(out + 8, r->offset);
    spy_put_u64(out + 16, r->length);
}

int spy_get_req_decode(const uint8_t *in, size_t len, struct spy_get_req *r)
{
    if (len != SPY_GET_REQ_PAYLOAD)
        return SPY_EPROTO;
    r->fid = spy_get_u64(in);
    r->offset = spy_get_u64(in + 8);
    r->length = spy_get_u64(in + 16);
    return SPY_OK;
}

void spy_get_resp_encode(const struct spy_get_resp *r, uint8_t *out)
{
    spy_put_u64(out, r->object_len);
    spy_put_u64(out + 8, r->offset);
    spy_put_u64(out + 16, r->length);
}

int spy_get_resp_decode(const uint8_t *in, size_t len, struct spy_get_resp *r)
{
    if (len != SPY_GET_RESP_PAYLOAD)
        return SPY_EPROTO;
    r->object_len = spy_get_u64(in);
    r->offset = spy_get_u64(in + 8);
    r->length = spy_get_u64(in + 16);
    if (r->offset > r->object_len || r->length > r->object_len - r->offset)
        return SPY_EPROTO;
    return SPY_OK;
}

void spy_put_req_encode(const struct spy_put_req *r, uint8_t *out)
{
    spy_put_u64(out, r->fid);
    spy_put_u64(out + 8, r->max_len);
}

int spy_put_req_decode(const uint8_t *in, size_t len, struct spy_put_req *r)
{
    if (len != SPY_PUT_REQ_PAYLOAD)
        return SPY_EPROTO;
    r->fid = spy_get_u64(in);
    r->max_len = spy_get_u64(in + 8);
    return SPY_OK;
}

void spy_end_req_encode(const struct spy_end_req *r, uint8_t *out)
{
    spy_put_u64(out, r->total_len);
    spy_put_u32(out + 8, r->crc);
}

int spy_end_req_decode(const uint8_t *in, size_t len, struct spy_end_req *r)
{
    if (len != SPY_END_REQ_PAYLOAD)
        return SPY_EPROTO;
    r->total_len = spy_get_u64(in);
    r->crc = spy_get_u32(in + 8);
    return SPY_OK;
}

void spy_stat_resp_encode(const struct spy_stat_resp *r, uint8_t *out)
{
    spy_put_u64(out, r->fid);
    spy_put_u64(out + 8, r->len);
    spy_put_u64(out + 16, r->chunk_id);
    spy_put_u64(out + 24, r->offset);
    spy_put_u64(out + 32, r->timestamp);
}

int spy_stat_resp_decode(const uint8_t *in, size_t len, struct spy_stat_resp *r)
{
    if (len != SPY_STAT_RESP_PAYLOAD)
        return SPY_EPROTO;
    r->fid = spy_get_u64(in);
    r->len = spy_get_u64(in + 8);
    r->chunk_id = spy_get_u64(in + 16);
    r->offset = spy_get_u64(in + 24);
    r->timestamp = spy_get_u64(in + 32);
    return SPY_OK;
}

int spy_fid_decode(const uint8_t *in, size_t len, uint64_t *fid)
{
    if (len != SPY_FID_PAYLOAD)
        return SPY_EPROTO;
    *fid = spy_get_u64(in);
    return SPY_OK;
}
