/* fuzz_oci_range: the Range header against a blob size taken from the input
 * (invariants on the result, the multipart length equal to the framing
 * actually produced, a re-parse of the resolved ranges giving them back),
 * and the upload Content-Range parser (a round trip through formatting). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "registry/oci_range.h"

/* blob_size: a size from the first byte(s): small sizes are the interesting
 * ones, so most inputs get 0..255; a 0xFF first byte takes a full u64. */
static uint64_t blob_size(const uint8_t **data, size_t *size)
{
    if (*size == 0)
        return 0;
    uint8_t sel = (*data)[0];
    (*data)++;
    (*size)--;
    if (sel != 0xFF || *size < 8)
        return sel;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | (*data)[i];
    *data += 8;
    *size -= 8;
    return v;
}

/* check_partial: every range inside the blob, the total within its size,
 * exact framing and Content-Range formatting, and a stable re-parse. */
static void check_partial(const struct spy_oci_ranges *r, uint64_t size)
{
    if (r->count == 0 || r->count > SPY_OCI_RANGE_MAX)
        abort();
    uint64_t total = 0;
    char hdr[16 * 48] = "bytes=";
    size_t n = 6;
    for (size_t i = 0; i < r->count; i++) {
        if (r->r[i].first > r->r[i].last || r->r[i].last >= size)
            abort();
        total += r->r[i].last - r->r[i].first + 1;
        char cr[SPY_OCI_CONTENT_RANGE_MAX];
        if (spy_oci_content_range_format(cr, sizeof(cr), &r->r[i], size) <= 0)
            abort();
        n += (size_t)snprintf(hdr + n, sizeof(hdr) - n, "%s%llu-%llu", i ? "," : "",
                              (unsigned long long)r->r[i].first, (unsigned long long)r->r[i].last);
    }
    if (total > size)
        abort();
    uint64_t framing = 0;
    char part[512];
    for (size_t i = 0; i < r->count; i++) {
        int h = spy_oci_multipart_part_header(part, sizeof(part), "b0undary", NULL, r, i);
        if (h <= 0)
            abort();
        framing += (uint64_t)h;
    }
    int t = spy_oci_multipart_trailer(part, sizeof(part), "b0undary");
    if (t <= 0 || spy_oci_multipart_length("b0undary", NULL, r) != framing + (uint64_t)t + total)
        abort();
    struct spy_oci_ranges again;
    if (spy_oci_range_parse(hdr, n, size, &again) != SPY_OCI_RANGE_PARTIAL ||
        again.count != r->count || memcmp(again.r, r->r, r->count * sizeof(r->r[0])) != 0)
        abort();
}

/* check_upload: a parsed Content-Range formats back to the same numbers. */
static void check_upload(const char *s, size_t len)
{
    uint64_t first, last;
    if (spy_oci_upload_range_parse(s, len, &first, &last) != SPY_OK)
        return;
    if (first > last)
        abort();
    char buf[48];
    snprintf(buf, sizeof(buf), "%llu-%llu", (unsigned long long)first, (unsigned long long)last);
    uint64_t a, b;
    if (spy_oci_upload_range_parse(buf, strlen(buf), &a, &b) != SPY_OK || a != first || b != last)
        abort();
    if (spy_oci_upload_range_format(buf, sizeof(buf), last) <= 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t blob = blob_size(&data, &size);
    const char *hdr = (const char *)data;
    struct spy_oci_ranges r;
    switch (spy_oci_range_parse(hdr, size, blob, &r)) {
    case SPY_OCI_RANGE_PARTIAL:
        check_partial(&r, blob);
        break;
    case SPY_OCI_RANGE_UNSATISFIABLE:
        if (r.count != 0 || blob == 0 || r.why == NULL)
            abort();
        break;
    case SPY_OCI_RANGE_FULL:
        if (r.count != 0 || r.why == NULL)
            abort();
        break;
    default:
        abort();
    }
    check_upload(hdr, size);
    return 0;
}
