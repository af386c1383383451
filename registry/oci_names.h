/* oci_names.h - repository names, tags, references and the /v2 route split.
 *
 * Grammars (distribution-spec v1.1.1, "Pulling manifests"):
 *   name  [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
 *         at most SPY_OCI_NAME_MAX (255) characters
 *   tag   [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
 * Both are matched by hand (no regex library), over exactly len bytes: a NUL
 * or any byte outside the grammar makes the input invalid.
 *
 * Pure and reentrant. Nothing here allocates; the route's name and reference
 * point into the caller's path. */
#ifndef SPY_OCI_NAMES_H
#define SPY_OCI_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define SPY_OCI_NAME_MAX 255
#define SPY_OCI_TAG_MAX  128

/* Whether s[0..len) is a valid repository name. */
bool spy_oci_name_valid(const char *s, size_t len);

/* Whether s[0..len) is a valid tag. */
bool spy_oci_tag_valid(const char *s, size_t len);

/* What a manifest <reference> is. A tag cannot contain ':', a digest must,
 * so the two never overlap. */
enum spy_oci_ref_kind {
    SPY_OCI_REF_INVALID = 0, /* neither: answer TAG_INVALID / MANIFEST_INVALID */
    SPY_OCI_REF_TAG = 1,
    SPY_OCI_REF_DIGEST = 2, /* fits the digest grammar; parse it with oci_digest */
};

enum spy_oci_ref_kind spy_oci_reference_classify(const char *s, size_t len);

enum spy_oci_route_kind {
    SPY_OCI_ROUTE_NONE = 0,      /* not a registry API path */
    SPY_OCI_ROUTE_BASE = 1,      /* /v2/ (and /v2) */
    SPY_OCI_ROUTE_CATALOG = 2,   /* /v2/_catalog */
    SPY_OCI_ROUTE_TAGS = 3,      /* /v2/<name>/tags/list */
    SPY_OCI_ROUTE_MANIFEST = 4,  /* /v2/<name>/manifests/<reference> */
    SPY_OCI_ROUTE_BLOB = 5,      /* /v2/<name>/blobs/<digest> */
    SPY_OCI_ROUTE_UPLOADS = 6,   /* /v2/<name>/blobs/uploads/ (starts an upload) */
    SPY_OCI_ROUTE_UPLOAD = 7,    /* /v2/<name>/blobs/uploads/<session> */
    SPY_OCI_ROUTE_REFERRERS = 8, /* /v2/<name>/referrers/<digest> */
};

/* A split path. name/ref point into the caller's path (not NUL-terminated)
 * and are NULL/0 when the route has none. */
struct spy_oci_route {
    enum spy_oci_route_kind kind;
    const char *name;
    size_t name_len;
    const char *ref;
    size_t ref_len;
};

/* Splits a request path. The query string, if the path still has one, is
 * ignored from the first '?'. No percent-decoding is done: pass the path as
 * the client sent it (a name or reference that needs escaping is invalid
 * anyway). Names may themselves contain "/" and segments called "blobs",
 * "manifests", "tags", ..., so the route keyword is found from the right:
 * the last segment is the reference and the segment(s) before it the
 * keyword. The reference is only checked to be non-empty (the handler parses
 * it as a tag or digest); "/v2/<name>/blobs/uploads" without the trailing
 * slash is taken as UPLOADS since "uploads" can never be a digest.
 * Returns SPY_OK with *out filled; SPY_ENOTFOUND (kind NONE) when the path is
 * not an API route (answer 404); SPY_EINVAL when the route matched but the
 * name breaks the grammar (answer NAME_INVALID; out->kind says which route). */
int spy_oci_route_split(const char *path, size_t len, struct spy_oci_route *out);

#endif
