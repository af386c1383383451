/* record.c - encoding, decoding and checksums of chunk records (record.h). */
#include "chunkserver/record.h"

#include <string.h>

#include "common/crc32c.h"
#include "common/status.h"

/* Byte offsets of the header fields; see the table in record.h. */
enum {
    OFF_MAGIC = 0,
    OFF_VERSION = 4,
    OFF_TYPE = 6,
    OFF_FLAGS = 7,
    OFF_FID = 8,
    OFF_LEN = 16,
    OFF_OFFSET = 24,
    OFF_TIME = 32,
    OFF_CRC = 40,
    OFF_RESERVED = 44,
};

/* spy_record_blocks -- table entries: one per started 64 KiB block. */
uint64_t spy_record_blocks(uint64_t body_len)
{
    return body_len / SPY_STORE_BLOCK + (body_len % SPY_STORE_BLOCK != 0);
}

/* spy_record_table_bytes -- four bytes per table entry. */
uint64_t spy_record_table_bytes(uint64_t body_len)
{
    return 4 * spy_record_blocks(body_len);
}

/* spy_record_extent -- header, body and table, without the padding. */
uint64_t spy_record_extent(uint64_t body_len)
{
    return SPY_RECORD_HDR + body_len + spy_record_table_bytes(body_len);
}

/* spy_record_size -- the extent rounded up to the record alignment. */
uint64_t spy_record_size(uint64_t body_len)
{
    if (body_len > UINT64_MAX / 2)
        return UINT64_MAX;
    uint64_t extent = spy_record_extent(body_len);
    return (extent + SPY_RECORD_ALIGN - 1) & ~(uint64_t)(SPY_RECORD_ALIGN - 1);
}

/* spy_record_max_body -- inverts spy_record_size: an estimate from the block
 * count, then a step down while the record would not fit. */
uint64_t spy_record_max_body(uint64_t space)
{
    if (space < spy_record_size(0))
        return 0;
    uint64_t room = space - SPY_RECORD_HDR;
    /* Each block of B body bytes costs B + 4 bytes. */
    uint64_t body = room / (SPY_STORE_BLOCK + 4) * SPY_STORE_BLOCK;
    uint64_t rest = room % (SPY_STORE_BLOCK + 4);
    body += rest > 4 ? rest - 4 : 0;
    while (body > 0 && spy_record_size(body) > space)
        body--;
    return body;
}

/* spy_record_crc -- salt, header with a zero crc field, then the table. */
uint32_t spy_record_crc(uint64_t salt, const uint8_t *hdr, const uint8_t *table, size_t table_len)
{
    uint8_t salt_le[8], copy[SPY_RECORD_HDR];
    spy_record_put64(salt_le, salt);
    memcpy(copy, hdr, SPY_RECORD_HDR);
    spy_record_put32(copy + OFF_CRC, 0);
    uint32_t crc = spy_crc32c(0, salt_le, sizeof(salt_le));
    crc = spy_crc32c(crc, copy, sizeof(copy));
    return spy_crc32c(crc, table, table_len);
}

/* spy_record_encode -- writes every field, then the crc over the result. */
void spy_record_encode(struct spy_record_hdr *h, uint64_t salt, const uint8_t *table, uint8_t *out)
{
    h->magic = SPY_RECORD_MAGIC;
    h->version = SPY_RECORD_VERSION;
    memset(out, 0, SPY_RECORD_HDR);
    spy_record_put32(out + OFF_MAGIC, h->magic);
    out[OFF_VERSION] = (uint8_t)h->version;
    out[OFF_VERSION + 1] = (uint8_t)(h->version >> 8);
    out[OFF_TYPE] = h->type;
    out[OFF_FLAGS] = h->flags;
    spy_record_put64(out + OFF_FID, h->fid);
    spy_record_put64(out + OFF_LEN, h->body_len);
    spy_record_put64(out + OFF_OFFSET, h->offset);
    spy_record_put64(out + OFF_TIME, h->timestamp);
    h->crc = spy_record_crc(salt, out, table, spy_record_table_bytes(h->body_len));
    spy_record_put32(out + OFF_CRC, h->crc);
}

/* spy_record_decode -- field checks that need no table; the crc is checked
 * by spy_record_verify once the caller has read the table. */
int spy_record_decode(const uint8_t *in, uint64_t expect_offset, uint64_t chunk_size,
                      struct spy_record_hdr *out)
{
    out->magic = spy_record_get32(in + OFF_MAGIC);
    out->version = (uint16_t)(in[OFF_VERSION] | in[OFF_VERSION + 1] << 8);
    out->type = in[OFF_TYPE];
    out->flags = in[OFF_FLAGS];
    out->fid = spy_record_get64(in + OFF_FID);
    out->body_len = spy_record_get64(in + OFF_LEN);
    out->offset = spy_record_get64(in + OFF_OFFSET);
    out->timestamp = spy_record_get64(in + OFF_TIME);
    out->crc = spy_record_get32(in + OFF_CRC);
    if (out->magic != SPY_RECORD_MAGIC || out->version != SPY_RECORD_VERSION)
        return SPY_ECORRUPT;
    if (out->type != SPY_RECORD_PUT && out->type != SPY_RECORD_DEL && out->type != SPY_RECORD_PAD)
        return SPY_ECORRUPT;
    if (out->flags != 0 || spy_record_get32(in + OFF_RESERVED) != 0)
        return SPY_ECORRUPT;
    if (out->type == SPY_RECORD_DEL && out->body_len != 0)
        return SPY_ECORRUPT;
    if (out->offset != expect_offset || out->offset > chunk_size)
        return SPY_ECORRUPT;
    uint64_t size = spy_record_size(out->body_len);
    if (size > chunk_size - out->offset)
        return SPY_ECORRUPT;
    return SPY_OK;
}

/* spy_record_verify -- recomputes the header crc and compares. */
int spy_record_verify(uint64_t salt, const uint8_t *hdr, const uint8_t *table, size_t table_len)
{
    uint32_t stored = spy_record_get32(hdr + OFF_CRC);
    return spy_record_crc(salt, hdr, table, table_len) == stored ? SPY_OK : SPY_ECORRUPT;
}

/* spy_record_table_get -- entry i of an encoded table. */
uint32_t spy_record_table_get(const uint8_t *table, uint64_t i)
{
    return spy_record_get32(table + 4 * i);
}

/* spy_record_table_set -- stores entry i of an encoded table. */
void spy_record_table_set(uint8_t *table, uint64_t i, uint32_t crc)
{
    spy_record_put32(table + 4 * i, crc);
}

/* spy_record_sum_init -- an empty body: no blocks, crc 0. */
void spy_record_sum_init(struct spy_record_sum *s, uint8_t *table)
{
    s->table = table;
    s->len = 0;
    s->block_crc = 0;
    s->body_crc = 0;
}

/* spy_record_sum_update -- feeds the bytes block by block so each block crc
 * is stored the moment its 64 KiB are complete. */
void spy_record_sum_update(struct spy_record_sum *s, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    s->body_crc = spy_crc32c(s->body_crc, p, len);
    while (len > 0) {
        uint64_t in_block = s->len % SPY_STORE_BLOCK;
        size_t take = (size_t)(SPY_STORE_BLOCK - in_block);
        if (take > len)
            take = len;
        s->block_crc = spy_crc32c(s->block_crc, p, take);
        s->len += take;
        p += take;
        len -= take;
        if (s->len % SPY_STORE_BLOCK == 0) {
            spy_record_table_set(s->table, s->len / SPY_STORE_BLOCK - 1, s->block_crc);
            s->block_crc = 0;
        }
    }
}

/* spy_record_sum_finish -- the last block is short unless the body length
 * is a multiple of the block size (then it is already stored). */
void spy_record_sum_finish(struct spy_record_sum *s)
{
    if (s->len % SPY_STORE_BLOCK != 0)
        spy_record_table_set(s->table, s->len / SPY_STORE_BLOCK, s->block_crc);
}
