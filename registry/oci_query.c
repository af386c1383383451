#include "registry/oci_query.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/status.h"

/* hex_digit: the value of a hex digit of either case, or -1. */
static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* decode: percent-decodes s[0..len) into out (NUL-terminated) and returns
 * the decoded length, or -1 on a bad escape or a decoded NUL. */
static long decode(const char *s, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0')
            return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    return (long)n;
}

/* add_param: decodes one "key[=value]" segment into storage at *used. */
static int add_param(struct spy_oci_query *q, const char *seg, size_t len, size_t *used)
{
    if (q->count == SPY_OCI_QUERY_MAX)
        return SPY_EINVAL;
    const char *eq = memchr(seg, '=', len);
    size_t key_len = eq != NULL ? (size_t)(eq - seg) : len;
    struct spy_oci_query_param *p = &q->params[q->count];
    char *key = q->storage + *used;
    long k = decode(seg, key_len, key);
    if (k < 0)
        return SPY_EINVAL;
    *used += (size_t)k + 1;
    char *value = q->storage + *used;
    long v = eq != NULL ? decode(eq + 1, len - key_len - 1, value) : 0;
    if (v < 0)
        return SPY_EINVAL;
    value[v] = '\0';
    *used += (size_t)v + 1;
    *p = (struct spy_oci_query_param){key, (size_t)k, value, (size_t)v};
    q->count++;
    return SPY_OK;
}

int spy_oci_query_parse(const char *qs, size_t len, struct spy_oci_query *q)
{
    memset(q, 0, sizeof(*q));
    /* Decoding never grows a segment; each needs at most two NULs more. */
    size_t segments = 1;
    for (size_t i = 0; i < len; i++)
        segments += qs[i] == '&';
    q->storage = malloc(len + 2 * segments + 1);
    if (q->storage == NULL) {
        spy_error("oci: out of memory parsing a %zu-byte query string", len);
        return SPY_ENOMEM;
    }
    size_t used = 0, b = 0;
    while (b < len) {
        const char *amp = memchr(qs + b, '&', len - b);
        size_t e = amp != NULL ? (size_t)(amp - qs) : len;
        if (e > b) {
            int rc = add_param(q, qs + b, e - b, &used);
            if (rc != SPY_OK) {
                spy_oci_query_free(q);
                return rc;
            }
        }
        b = e + 1;
    }
    return SPY_OK;
}

void spy_oci_query_free(struct spy_oci_query *q)
{
    free(q->storage);
    memset(q, 0, sizeof(*q));
}

size_t spy_oci_query_count(const struct spy_oci_query *q, const char *key)
{
    size_t n = 0;
    for (size_t i = 0; i < q->count; i++)
        n += strcmp(q->params[i].key, key) == 0;
    return n;
}

const char *spy_oci_query_get_nth(const struct spy_oci_query *q, const char *key, size_t nth,
                                  size_t *len)
{
    for (size_t i = 0; i < q->count; i++) {
        if (strcmp(q->params[i].key, key) != 0 || nth-- > 0)
            continue;
        if (len != NULL)
            *len = q->params[i].value_len;
        return q->params[i].value;
    }
    if (len != NULL)
        *len = 0;
    return NULL;
}

const char *spy_oci_query_get(const struct spy_oci_query *q, const char *key, size_t *len)
{
    return spy_oci_query_get_nth(q, key, 0, len);
}
