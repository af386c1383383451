/* oci_range.h - HTTP byte ranges for blob GETs and upload PATCHes.
 *
 * Blob GET (RFC 9110 section 14): the Range header
 *     Range: bytes=0-499, 1000-, -200
 * is parsed against the blob's size into one of three answers:
 *   FULL           ignore the header, serve 200 with the whole blob;
 *   PARTIAL        serve 206 with the satisfiable ranges, in the order asked;
 *   UNSATISFIABLE  serve 416 with "Content-Range: bytes * / size" (no spaces).
 * Decisions (docs/oci.md explains them):
 *   - invalid syntax, a unit other than "bytes", more than SPY_OCI_RANGE_MAX
 *     range-specs, or ranges whose total length exceeds the blob (overlap
 *     amplification) -> FULL, as RFC 9110 14.2 allows ("MAY ignore");
 *   - a zero-length blob -> FULL (an empty 200 rather than a 416, so clients
 *     that always send Range still work);
 *   - ranges are neither sorted nor coalesced: multi-range clients (podman's
 *     zstd:chunked) match the parts to their requests by position;
 *   - unsatisfiable ranges inside a set are dropped; none left -> 416;
 *   - numbers too large for 64 bits saturate (a huge last-pos means "to the
 *     end", a huge first-pos is unsatisfiable), as the RFC's semantics give.
 * Whitespace (SP/HTAB) is allowed around the value, after '=' and around
 * commas, and empty list elements are skipped (RFC 9110 5.6.1); whitespace
 * inside a range-spec or before '=' is invalid. The unit is case-insensitive.
 *
 * Multipart (RFC 9110 14.6, RFC 2046): a 206 with several ranges is
 *     --B CRLF Content-Type: T CRLF Content-Range: bytes a-b/size CRLF CRLF <bytes>
 *     CRLF --B CRLF ... <bytes> CRLF --B-- CRLF
 * This module produces every byte except the blob bytes, and the total
 * Content-Length.
 *
 * Upload PATCH (distribution-spec "Pushing a blob in chunks"): Content-Range
 * must match ^[0-9]+-[0-9]+$ and is inclusive; the response's Range header is
 * "0-<last byte>" with no "bytes=" prefix, "0-0" for an empty upload.
 *
 * Pure and reentrant. Formatting functions write into caller buffers and
 * return the length written (without the NUL) or SPY_ERANGE when the buffer
 * is too small (it then holds ""). */
#ifndef SPY_OCI_RANGE_H
#define SPY_OCI_RANGE_H

#include <stddef.h>
#include <stdint.h>

#define SPY_OCI_RANGE_MAX         16
#define SPY_OCI_CONTENT_RANGE_MAX 70 /* "bytes " + 3 x 20 digits + "-" + "/" + NUL */
#define SPY_OCI_BOUNDARY_LEN      32 /* hex characters of a boundary we generate */

/* An inclusive byte range: first <= last < size. */
struct spy_oci_byte_range {
    uint64_t first;
    uint64_t last;
};

enum spy_oci_range_result {
    SPY_OCI_RANGE_FULL = 0,
    SPY_OCI_RANGE_PARTIAL = 1,
    SPY_OCI_RANGE_UNSATISFIABLE = 2,
};

struct spy_oci_ranges {
    uint64_t size;   /* the blob size the header was parsed against */
    size_t count;    /* PARTIAL: 1..SPY_OCI_RANGE_MAX; otherwise 0 */
    const char *why; /* FULL/UNSATISFIABLE: a constant reason for debug logs */
    struct spy_oci_byte_range r[SPY_OCI_RANGE_MAX];
};

/* Parses a Range header value (hdr may be NULL: no header) against a blob of
 * 'size' bytes. Always fills *out. */
enum spy_oci_range_result spy_oci_range_parse(const char *hdr, size_t len, uint64_t size,
                                              struct spy_oci_ranges *out);

/* "bytes first-last/size". */
int spy_oci_content_range_format(char *buf, size_t cap, const struct spy_oci_byte_range *r,
                                 uint64_t size);

/* "bytes * /size" without the space, for a 416. */
int spy_oci_content_range_unsatisfied(char *buf, size_t cap, uint64_t size);

/* Writes a boundary of SPY_OCI_BOUNDARY_LEN lowercase hex characters and a
 * NUL from 16 random bytes the caller supplies (RAND_bytes). */
void spy_oci_multipart_boundary(const uint8_t random[16], char out[SPY_OCI_BOUNDARY_LEN + 1]);

/* "multipart/byteranges; boundary=B", the response's Content-Type. */
int spy_oci_multipart_content_type(char *buf, size_t cap, const char *boundary);

/* The bytes that precede part 'index' (0-based) of ranges: the delimiter (the
 * first part has no leading CRLF) and the part's headers. content_type NULL
 * means application/octet-stream. Returns the length, SPY_ERANGE (buffer too
 * small) or SPY_EINVAL (index out of range, or a boundary/content type that
 * is empty or contains bytes outside printable ASCII). */
int spy_oci_multipart_part_header(char *buf, size_t cap, const char *boundary,
                                  const char *content_type, const struct spy_oci_ranges *ranges,
                                  size_t index);

/* The closing delimiter "CRLF --B-- CRLF", written after the last part. */
int spy_oci_multipart_trailer(char *buf, size_t cap, const char *boundary);

/* The exact Content-Length of the multipart body for these ranges: every
 * part header, every range's bytes and the trailer. Returns 0 when the
 * arguments are invalid as for spy_oci_multipart_part_header. */
uint64_t spy_oci_multipart_length(const char *boundary, const char *content_type,
                                  const struct spy_oci_ranges *ranges);

/* Parses an upload PATCH Content-Range "first-last" (inclusive, decimal, no
 * sign, no spaces, no "bytes" prefix). Returns SPY_OK, or SPY_EINVAL when the
 * syntax is wrong, a number overflows 64 bits, or first > last (the handler
 * answers 416, or 400 BLOB_UPLOAD_INVALID). */
int spy_oci_upload_range_parse(const char *s, size_t len, uint64_t *first, uint64_t *last);

/* The upload Range header value after 'uploaded' bytes: "0-<uploaded-1>", or
 * "0-0" for an empty upload (what distribution and zot send). */
int spy_oci_upload_range_format(char *buf, size_t cap, uint64_t uploaded);

#endif
