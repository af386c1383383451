#include "registry/oci_range.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/status.h"

#define DEFAULT_PART_TYPE "application/octet-stream"

/* is_ows: optional whitespace per RFC 9110 (SP / HTAB). */
static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* is_digit: [0-9] (isdigit() depends on the locale). */
static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* trim: narrows s[*b..*e) past leading and trailing whitespace. */
static void trim(const char *s, size_t *b, size_t *e)
{
    while (*b < *e && is_ows(s[*b]))
        (*b)++;
    while (*e > *b && is_ows(s[*e - 1]))
        (*e)--;
}

/* parse_digits: reads the run of digits at s[*i..e) into *v, saturating at
 * UINT64_MAX. Returns false if there is no digit. */
static bool parse_digits(const char *s, size_t *i, size_t e, uint64_t *v)
{
    size_t start = *i;
    uint64_t n = 0;
    for (; *i < e && is_digit(s[*i]); (*i)++) {
        unsigned d = (unsigned)(s[*i] - '0');
        n = n > (UINT64_MAX - d) / 10 ? UINT64_MAX : n * 10 + d;
    }
    *v = n;
    return *i > start;
}

/* A range-spec as written, before it meets the blob size. */
struct spec {
    bool suffix;    /* "-n" */
    bool open;      /* "a-" */
    uint64_t first; /* a, or n for a suffix */
    uint64_t last;
};

/* parse_spec: one range-spec s[b..e) (already trimmed). False = invalid. */
static bool parse_spec(const char *s, size_t b, size_t e, struct spec *sp)
{
    memset(sp, 0, sizeof(*sp));
    size_t i = b;
    if (i < e && s[i] == '-') {
        i++;
        sp->suffix = true;
        return parse_digits(s, &i, e, &sp->first) && i == e;
    }
    if (!parse_digits(s, &i, e, &sp->first) || i == e || s[i] != '-')
        return false;
    i++;
    if (i == e) {
        sp->open = true;
        return true;
    }
    return parse_digits(s, &i, e, &sp->last) && i == e && sp->first <= sp->last;
}

/* resolve: the bytes a spec selects in a blob of 'size' bytes (size > 0).
 * False = unsatisfiable. */
static bool resolve(const struct spec *sp, uint64_t size, struct spy_oci_byte_range *r)
{
    if (sp->suffix) {
        if (sp->first == 0)
            return false;
        r->first = sp->first >= size ? 0 : size - sp->first;
        r->last = size - 1;
        return true;
    }
    if (sp->first >= size)
        return false;
    r->first = sp->first;
    r->last = sp->open || sp->last >= size ? size - 1 : sp->last;
    return true;
}

/* full: the "serve 200" answer, with the reason for the logs. */
static enum spy_oci_range_result full(struct spy_oci_ranges *out, const char *why)
{
    out->count = 0;
    out->why = why;
    return SPY_OCI_RANGE_FULL;
}

/* parse_set: the comma-separated range-set s[b..e) into specs. Returns the
 * number of specs, 0 for an invalid set, SPY_OCI_RANGE_MAX + 1 if too many. */
static size_t parse_set(const char *s, size_t b, size_t e, struct spec specs[SPY_OCI_RANGE_MAX])
{
    size_t n = 0;
    while (b <= e) {
        const char *comma = memchr(s + b, ',', e - b);
        size_t elem_end = comma != NULL ? (size_t)(comma - s) : e;
        size_t eb = b, ee = elem_end;
        trim(s, &eb, &ee);
        if (eb < ee) {
            if (n == SPY_OCI_RANGE_MAX)
                return SPY_OCI_RANGE_MAX + 1;
            if (!parse_spec(s, eb, ee, &specs[n]))
                return 0;
            n++;
        }
        b = elem_end + 1;
    }
    return n;
}

enum spy_oci_range_result spy_oci_range_parse(const char *hdr, size_t len, uint64_t size,
                                              struct spy_oci_ranges *out)
{
    memset(out, 0, sizeof(*out));
    out->size = size;
    if (hdr == NULL)
        return full(out, "no Range header");
    size_t b = 0, e = len;
    trim(hdr, &b, &e);
    if (e - b < 6 || strncasecmp(hdr + b, "bytes=", 6) != 0)
        return full(out, "not a bytes range");
    struct spec specs[SPY_OCI_RANGE_MAX];
    size_t n = parse_set(hdr, b + 6, e, specs);
    if (n == 0)
        return full(out, "invalid range syntax");
    if (n > SPY_OCI_RANGE_MAX)
        return full(out, "too many ranges");
    if (size == 0)
        return full(out, "empty blob");
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        struct spy_oci_byte_range r;
        if (!resolve(&specs[i], size, &r))
            continue;
        uint64_t bytes = r.last - r.first + 1;
        if (bytes > size - total) /* total <= size always, so this cannot wrap */
            return full(out, "ranges overlap beyond the blob size");
        total += bytes;
        out->r[out->count++] = r;
    }
    if (out->count == 0) {
        out->why = "no satisfiable range";
        return SPY_OCI_RANGE_UNSATISFIABLE;
    }
    return SPY_OCI_RANGE_PARTIAL;
}

/* finish: turns an snprintf result into this module's return convention. */
static int finish(char *buf, size_t cap, int n)
{
    if (n < 0 || (size_t)n >= cap) {
        if (cap > 0)
            buf[0] = '\0';
        return SPY_ERANGE;
    }
    return n;
}

int spy_oci_content_range_format(char *buf, size_t cap, const struct spy_oci_byte_range *r,
                                 uint64_t size)
{
    return finish(buf, cap,
                  snprintf(buf, cap, "bytes %llu-%llu/%llu", (unsigned long long)r->first,
                           (unsigned long long)r->last, (unsigned long long)size));
}

int spy_oci_content_range_unsatisfied(char *buf, size_t cap, uint64_t size)
{
    return finish(buf, cap, snprintf(buf, cap, "bytes */%llu", (unsigned long long)size));
}

void spy_oci_multipart_boundary(const uint8_t random[16], char out[SPY_OCI_BOUNDARY_LEN + 1])
{
    static const char hexdigits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hexdigits[random[i] >> 4];
        out[2 * i + 1] = hexdigits[random[i] & 0xF];
    }
    out[SPY_OCI_BOUNDARY_LEN] = '\0';
}

/* header_safe: non-empty printable ASCII (no CR/LF to split headers). A
 * boundary is limited to 70 characters by RFC 2046. */
static bool header_safe(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7E)
            return false;
    return n > 0 && n <= max;
}

int spy_oci_multipart_content_type(char *buf, size_t cap, const char *boundary)
{
    if (!header_safe(boundary, 70))
        return SPY_EINVAL;
    return finish(buf, cap, snprintf(buf, cap, "multipart/byteranges; boundary=%s", boundary));
}

int spy_oci_multipart_part_header(char *buf, size_t cap, const char *boundary,
                                  const char *content_type, const struct spy_oci_ranges *ranges,
                                  size_t index)
{
    if (content_type == NULL)
        content_type = DEFAULT_PART_TYPE;
    if (index >= ranges->count || !header_safe(boundary, 70) || !header_safe(content_type, 255))
        return SPY_EINVAL;
    const struct spy_oci_byte_range *r = &ranges->r[index];
    return finish(
        buf, cap,
        snprintf(buf, cap,
                 "%s--%s\r\nContent-Type: %s\r\nContent-Range: bytes %llu-%llu/%llu\r\n\r\n",
                 index == 0 ? "" : "\r\n", boundary, content_type, (unsigned long long)r->first,
                 (unsigned long long)r->last, (unsigned long long)ranges->size));
}

int spy_oci_multipart_trailer(char *buf, size_t cap, const char *boundary)
{
    if (!header_safe(boundary, 70))
        return SPY_EINVAL;
    return finish(buf, cap, snprintf(buf, cap, "\r\n--%s--\r\n", boundary));
}

uint64_t spy_oci_multipart_length(const char *boundary, const char *content_type,
                                  const struct spy_oci_ranges *ranges)
{
    char buf[512];
    uint64_t total = 0;
    for (size_t i = 0; i < ranges->count; i++) {
        int n = spy_oci_multipart_part_header(buf, sizeof(buf), boundary, content_type, ranges, i);
        if (n < 0)
            return 0;
        total += (uint64_t)n + ranges->r[i].last - ranges->r[i].first + 1;
    }
    int n = spy_oci_multipart_trailer(buf, sizeof(buf), boundary);
    return n < 0 || ranges->count == 0 ? 0 : total + (uint64_t)n;
}

/* parse_exact_u64: all of s[*i..e) up to a non-digit as a decimal u64; false
 * on no digits or overflow. */
static bool parse_exact_u64(const char *s, size_t *i, size_t e, uint64_t *v)
{
    size_t start = *i;
    uint64_t n = 0;
    for (; *i < e && is_digit(s[*i]); (*i)++) {
        unsigned d = (unsigned)(s[*i] - '0');
        if (n > (UINT64_MAX - d) / 10)
            return false;
        n = n * 10 + d;
    }
    *v = n;
    return *i > start;
}

int spy_oci_upload_range_parse(const char *s, size_t len, uint64_t *first, uint64_t *last)
{
    size_t i = 0;
    uint64_t a, b;
    *first = *last = 0;
    if (!parse_exact_u64(s, &i, len, &a) || i == len || s[i] != '-')
        return SPY_EINVAL;
    i++;
    if (!parse_exact_u64(s, &i, len, &b) || i != len || a > b)
        return SPY_EINVAL;
    *first = a;
    *last = b;
    return SPY_OK;
}

int spy_oci_upload_range_format(char *buf, size_t cap, uint64_t uploaded)
{
    uint64_t end = uploaded == 0 ? 0 : uploaded - 1;
    return finish(buf, cap, snprintf(buf, cap, "0-%llu", (unsigned long long)end));
}
