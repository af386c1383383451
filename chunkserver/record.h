/* record.h - the on-disk record format of chunk files, and its checksums.
 * Pure byte work: no I/O, no allocation, thread-safe.
 *
 * A record is appended at an 8-byte aligned offset of a chunk file:
 *
 *     header (48 bytes) | body (body_len bytes) | block-crc table | pad to 8
 *
 * The table holds one crc32c per SPY_STORE_BLOCK (64 KiB) block of the body,
 * the last block possibly short; an empty body has no table. The header crc
 * is crc32c seeded with the chunk's salt over the header (crc field zero)
 * followed by the table, so header + table + body are all covered, and the
 * header is written last: a record whose header validates is complete.
 *
 * Header bytes (all integers little-endian):
 *
 *     00-03  magic      u32  SPY_RECORD_MAGIC; nonzero so zeroed space never validates
 *     04-05  version    u16  SPY_RECORD_VERSION
 *     06     type       u8   PUT=1, DEL=2, PAD=3 (on disk: never renumber)
 *     07     flags      u8   0 (reserved; a nonzero value is refused)
 *     08-15  fid        u64  object id (for DEL: the deleted fid)
 *     16-23  body_len   u64  body bytes (DEL: 0)
 *     24-31  offset     u64  this record's own offset in the chunk file
 *     32-39  timestamp  u64  unix seconds when written
 *     40-43  crc        u32  crc32c(salt as 8 LE bytes, header with crc = 0, table)
 *     44-47  reserved   u32  0 (covered by the crc)
 *
 * The offset field and the per-chunk salt make a record image that sits at
 * another offset (stale bytes of an overwritten torn tail) or in another
 * chunk (an object body that contains a copied record) fail validation. */
#ifndef SPY_RECORD_H
#define SPY_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "chunkserver/store.h"

#define SPY_RECORD_MAGIC   0x52595053u /* "SPYR" as little-endian bytes */
#define SPY_RECORD_VERSION 1u
#define SPY_RECORD_HDR     48u /* header bytes */
#define SPY_RECORD_ALIGN   8u  /* every record starts at a multiple of this */

/* Record types. No automatic numbering: the values are written to disk. */
enum spy_record_type {
    SPY_RECORD_PUT = 1,
    SPY_RECORD_DEL = 2,
    /* A PUT whose body was found corrupt at recovery, re-labelled in place
     * (same extent and table, new header crc) so later walks skip it as
     * garbage instead of indexing it or stopping at it. */
    SPY_RECORD_PAD = 3,
};

/* The decoded header; the on-disk bytes are produced by spy_record_encode. */
struct spy_record_hdr {
    uint32_t magic;
    uint16_t version;
    uint8_t type;
    uint8_t flags;
    uint64_t fid;
    uint64_t body_len;
    uint64_t offset;
    uint64_t timestamp;
    uint32_t crc;
};

/* Incremental checksum state of a body being appended: per-block crcs go to
 * 'table' (owned by the caller, spy_record_table_bytes(max body) long), and
 * 'body_crc' runs over every byte for the end-to-end check. */
struct spy_record_sum {
    uint8_t *table;     /* encoded table entries, filled as blocks complete */
    uint64_t len;       /* body bytes summed so far */
    uint32_t block_crc; /* crc of the current, incomplete block */
    uint32_t body_crc;  /* crc32c of the whole body so far */
};

/* Number of table entries for a body of body_len bytes (0 for an empty body). */
uint64_t spy_record_blocks(uint64_t body_len);

/* Bytes of the block-crc table for a body of body_len bytes. */
uint64_t spy_record_table_bytes(uint64_t body_len);

/* Bytes from the header's first byte to the table's last (no padding). */
uint64_t spy_record_extent(uint64_t body_len);

/* Bytes a record occupies in the chunk, padding to the next record included.
 * UINT64_MAX if body_len is so large the size would overflow. */
uint64_t spy_record_size(uint64_t body_len);

/* The largest body whose record fits in 'space' bytes (0 if not even an empty
 * record fits; check space >= spy_record_size(0) to tell the two apart). */
uint64_t spy_record_max_body(uint64_t space);

/* Computes the header crc: salt, then the 48 header bytes with the crc field
 * read as zero, then the table bytes. 'hdr' is the encoded header. */
uint32_t spy_record_crc(uint64_t salt, const uint8_t *hdr, const uint8_t *table, size_t table_len);

/* Fills in h->magic, version and crc, and encodes h into out[SPY_RECORD_HDR].
 * 'table' holds the encoded table of h->body_len. */
void spy_record_encode(struct spy_record_hdr *h, uint64_t salt, const uint8_t *table, uint8_t *out);

/* Decodes out[SPY_RECORD_HDR] without checking the crc (that needs the
 * table: spy_record_verify). SPY_OK if magic, version, type, flags, the
 * reserved field, the DEL rule (body_len 0) and offset == expect_offset hold
 * and the record ends within chunk_size; SPY_ECORRUPT otherwise. */
int spy_record_decode(const uint8_t *in, uint64_t expect_offset, uint64_t chunk_size,
                      struct spy_record_hdr *out);

/* SPY_OK if the header crc matches the header bytes and table, else SPY_ECORRUPT. */
int spy_record_verify(uint64_t salt, const uint8_t *hdr, const uint8_t *table, size_t table_len);

/* Reads or writes table entry i (4 little-endian bytes at table + 4 * i). */
uint32_t spy_record_table_get(const uint8_t *table, uint64_t i);
void spy_record_table_set(uint8_t *table, uint64_t i, uint32_t crc);

/* Starts summing a body into 'table'. */
void spy_record_sum_init(struct spy_record_sum *s, uint8_t *table);

/* Adds body bytes: updates the running block crc and whole-body crc, and
 * stores each completed block's crc into the table. */
void spy_record_sum_update(struct spy_record_sum *s, const void *buf, size_t len);

/* Stores the crc of the last, short block (if any). Call once, at the end. */
void spy_record_sum_finish(struct spy_record_sum *s);

/* Little-endian codecs shared by the on-disk formats (records, superblocks). */
static inline void spy_record_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void spy_record_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t spy_record_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t spy_record_get64(const uint8_t *p)
{
    return (uint64_t)spy_record_get32(p) | (uint64_t)spy_record_get32(p + 4) << 32;
}

#endif
