/* piece.h - a blob as a list of pieces, and the arithmetic of ranges over it.
 *
 * A blob of L bytes written with piece size P is pieces 0..ceil(L/P)-1; piece
 * k holds bytes [k*P, min((k+1)*P, L)) and is one chunkserver object (a fid)
 * stored on every replica of one group. A 0-byte blob has no pieces. Readers
 * get the list back from the registry's metadata and ask for byte ranges;
 * these functions say which pieces, and which bytes of each, a range needs.
 *
 * Pure: no I/O, no allocation, no logging; safe from any thread. */
#ifndef SPY_BLOB_PIECE_H
#define SPY_BLOB_PIECE_H

#include <stddef.h>
#include <stdint.h>

/* One stored piece, as the registry records it (one metadata row). */
struct spy_blob_piece {
    uint32_t group_id; /* the chunkserver group holding it on every replica */
    uint64_t fid;      /* the chunkserver object id */
    uint64_t offset;   /* first blob byte it holds */
    uint64_t length;   /* bytes; never 0 */
    uint32_t crc32c;   /* crc32c of the piece's bytes */
};

/* Checks that pieces[0..n) describe one blob: piece i starts where piece i-1
 * ends, the first at 0, none empty, no overflow. *total (may be NULL) gets
 * the blob length (0 for n == 0). SPY_OK or SPY_EINVAL. */
int spy_pieces_check(const struct spy_blob_piece *pieces, size_t n, uint64_t *total);

/* The pieces a range [offset, offset + length) of a checked list needs:
 * indexes *first .. *first + *count - 1. length 0 needs none (*count = 0).
 * SPY_OK, or SPY_ERANGE if the range ends past the blob (offset == total with
 * length 0 is valid). Binary search: O(log n). */
int spy_pieces_range(const struct spy_blob_piece *pieces, size_t n, uint64_t offset,
                     uint64_t length, size_t *first, size_t *count);

/* The bytes of one piece that the range [offset, offset + length) covers, as
 * an offset inside the piece and a length (0 if they do not overlap). */
void spy_pieces_span(const struct spy_blob_piece *piece, uint64_t offset, uint64_t length,
                     uint64_t *span_offset, uint64_t *span_length);

/* How many pieces a blob of 'total' bytes is cut into with piece_size. */
uint64_t spy_pieces_count(uint64_t total, uint64_t piece_size);

#endif
