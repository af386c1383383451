/* oci_query.h - the request's query string, decoded.
 *
 * "a=1&tag=x&tag=y&flag" becomes the ordered list (a,1) (tag,x) (tag,y)
 * (flag,""). Keys and values are percent-decoded (RFC 3986); '+' stays a
 * literal '+', unlike HTML forms: no value the registry reads (digests,
 * media types, tags, names, numbers) contains a space, while media types
 * such as "application/vnd.example+json" do contain '+'. Empty segments
 * ("a=1&&b=2") are skipped. Rejected with SPY_EINVAL: a '%' not followed by
 * two hex digits, a decoded NUL byte, more than SPY_OCI_QUERY_MAX parameters.
 *
 * Pure and reentrant; a parsed query owns one allocation and is read-only
 * afterwards, so several threads may read it. */
#ifndef SPY_OCI_QUERY_H
#define SPY_OCI_QUERY_H

#include <stddef.h>

#define SPY_OCI_QUERY_MAX 64

struct spy_oci_query_param {
    const char *key; /* NUL-terminated, decoded */
    size_t key_len;
    const char *value; /* NUL-terminated, decoded; "" when there was no '=' */
    size_t value_len;
};

struct spy_oci_query {
    size_t count;
    struct spy_oci_query_param params[SPY_OCI_QUERY_MAX];
    char *storage; /* owns every key and value */
};

/* Parses the query string qs[0..len) (without the leading '?'; qs may be
 * NULL when len is 0). Returns SPY_OK, SPY_EINVAL (see above) or SPY_ENOMEM
 * (logged). On error *q is empty and needs no free, but freeing is harmless. */
int spy_oci_query_parse(const char *qs, size_t len, struct spy_oci_query *q);

/* Frees the storage; the struct is empty afterwards. */
void spy_oci_query_free(struct spy_oci_query *q);

/* The number of parameters named 'key'. */
size_t spy_oci_query_count(const struct spy_oci_query *q, const char *key);

/* The value of the nth (0-based) parameter named 'key', or NULL. *len (if
 * not NULL) receives its length. */
const char *spy_oci_query_get_nth(const struct spy_oci_query *q, const char *key, size_t nth,
                                  size_t *len);

/* The first value of 'key', or NULL. */
const char *spy_oci_query_get(const struct spy_oci_query *q, const char *key, size_t *len);

#endif
