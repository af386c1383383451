/* piece.c - range arithmetic over a blob's piece list (see piece.h). */
#include "blobstore/piece.h"

#include "common/status.h"

/* spy_pieces_check: the list must tile [0, total) with non-empty pieces. */
int spy_pieces_check(const struct spy_blob_piece *pieces, size_t n, uint64_t *total)
{
    uint64_t end = 0;
    for (size_t i = 0; i < n; i++) {
        if (pieces[i].offset != end || pieces[i].length == 0 || pieces[i].length > UINT64_MAX - end)
            return SPY_EINVAL;
        end += pieces[i].length;
    }
    if (total != NULL)
        *total = end;
    return SPY_OK;
}

/* piece_at: the index of the piece holding blob byte 'offset' (which must be
 * inside the blob): the last piece starting at or before it. */
static size_t piece_at(const struct spy_blob_piece *pieces, size_t n, uint64_t offset)
{
    size_t lo = 0, hi = n; /* answer in [lo, hi) */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (pieces[mid].offset <= offset)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* spy_pieces_range: the first and last piece the range touches, by binary search. */
int spy_pieces_range(const struct spy_blob_piece *pieces, size_t n, uint64_t offset,
                     uint64_t length, size_t *first, size_t *count)
{
    uint64_t total = n == 0 ? 0 : pieces[n - 1].offset + pieces[n - 1].length;
    if (offset > total || length > total - offset)
        return SPY_ERANGE;
    *first = 0;
    *count = 0;
    if (length == 0)
        return SPY_OK;
    size_t a = piece_at(pieces, n, offset);
    size_t b = piece_at(pieces, n, offset + length - 1);
    *first = a;
    *count = b - a + 1;
    return SPY_OK;
}

/* spy_pieces_span: the intersection of the range with one piece. */
void spy_pieces_span(const struct spy_blob_piece *piece, uint64_t offset, uint64_t length,
                     uint64_t *span_offset, uint64_t *span_length)
{
    uint64_t p_end = piece->offset + piece->length;
    uint64_t r_end = offset + length;
    uint64_t start = offset > piece->offset ? offset : piece->offset;
    uint64_t end = r_end < p_end ? r_end : p_end;
    if (length == 0 || start >= end) {
        *span_offset = 0;
        *span_length = 0;
        return;
    }
    *span_offset = start - piece->offset;
    *span_length = end - start;
}

/* spy_pieces_count: ceil(total / piece_size). */
uint64_t spy_pieces_count(uint64_t total, uint64_t piece_size)
{
    if (piece_size == 0)
        return 0;
    return total / piece_size + (total % piece_size != 0);
}
