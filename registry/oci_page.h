/* oci_page.h - pagination of the tag list and the catalog.
 *
 * distribution-spec "Listing Tags": ?n=<int>&last=<tag>. n = 0 answers an
 * empty list and no Link header; 'last' is exclusive; when more results
 * remain the response carries
 *     Link: </v2/<name>/tags/list?n=<n>&last=<last tag returned>>; rel="next"
 * (RFC 5988/8288). The catalog works the same on /v2/_catalog with
 * "repositories".
 *
 * Decisions: n must be a plain decimal integer (digits only, leading zeros
 * allowed) of at most SPY_OCI_PAGE_MAX; anything else - empty, a sign,
 * garbage, over the maximum, or n given twice - is PAGINATION_NUMBER_INVALID
 * (400), as distribution does for the catalog. Without n the caller's default
 * applies (distribution: 100 for the catalog; we suggest SPY_OCI_PAGE_MAX for
 * tags) and a Link is sent when more remain, which the spec allows. 'last' is
 * not validated: it is only a cursor compared lexically (a bogus value just
 * selects what sorts after it); given twice it is the first one.
 *
 * The handler fetches n + 1 rows after 'last' and sends a Link only when the
 * extra row exists; the Link's 'last' is the last row actually returned.
 *
 * Pure and reentrant. */
#ifndef SPY_OCI_PAGE_H
#define SPY_OCI_PAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/oci_errors.h"
#include "registry/oci_query.h"

#define SPY_OCI_PAGE_MAX             1000
#define SPY_OCI_CATALOG_PAGE_DEFAULT 100
#define SPY_OCI_LINK_MAX             1100 /* a Link value for a 255-char name and last */

struct spy_oci_page {
    uint32_t n;       /* results wanted: 0..SPY_OCI_PAGE_MAX */
    bool n_given;     /* n came from the query (else it is the default) */
    const char *last; /* borrowed from the query, NULL when absent */
    size_t last_len;
};

/* Reads n and last from a parsed query. Returns SPY_OCI_OK or
 * SPY_OCI_PAGINATION_NUMBER_INVALID. default_n is used when n is absent. */
enum spy_oci_code spy_oci_page_parse(const struct spy_oci_query *q, uint32_t default_n,
                                     struct spy_oci_page *out);

/* {"name":"<name>","tags":["a",...]} (compact). On SPY_OK *body is malloc'd
 * (caller frees) and *len its length. Returns SPY_OK, SPY_EINVAL (a string is
 * not valid UTF-8) or SPY_ENOMEM (logged). */
int spy_oci_tags_json(const char *name, const char *const *tags, size_t count, char **body,
                      size_t *len);

/* {"repositories":["a",...]} (compact), with the same contract. */
int spy_oci_catalog_json(const char *const *repos, size_t count, char **body, size_t *len);

/* The Link header value for the next page of /v2/<name>/tags/list; 'last'
 * is percent-encoded (everything but RFC 3986 unreserved characters), and so
 * is any byte of 'name' outside unreserved and '/'. Returns the length or
 * SPY_ERANGE (buffer too small; SPY_OCI_LINK_MAX is enough for grammar-valid
 * names and tags). */
int spy_oci_tags_link(char *buf, size_t cap, const char *name, uint32_t n, const char *last);

/* The same for /v2/_catalog. */
int spy_oci_catalog_link(char *buf, size_t cap, uint32_t n, const char *last);

#endif
