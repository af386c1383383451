/* oci_manifest.h - manifest PUT validation.
 *
 * Accepted documents (schemaVersion 2, JSON object, at most
 * SPY_OCI_MANIFEST_MAX bytes):
 *   application/vnd.oci.image.manifest.v1+json          config, layers
 *   application/vnd.oci.image.index.v1+json             manifests
 *   application/vnd.docker.distribution.manifest.v2+json       config, layers
 *   application/vnd.docker.distribution.manifest.list.v2+json  manifests
 * The OCI types may carry subject, artifactType and annotations.
 *
 * Media type (distribution-spec "Pushing Manifests"): the Content-Type's
 * parameters are ignored and types compare case-insensitively. When the body
 * has "mediaType" it decides the type and must equal the Content-Type if one
 * was sent; without it the Content-Type decides, and must be an OCI type
 * (Docker schema 2 requires the field). Neither, or a type not listed above:
 * MANIFEST_INVALID.
 *
 * Other rules (each failure is MANIFEST_INVALID with a detail saying where):
 *   - the JSON is strict: duplicate keys, NUL in strings, trailing bytes and
 *     integers beyond 64 bits are rejected;
 *   - an image manifest may not have "manifests", an index neither "config"
 *     nor "layers" (the image-spec 1.0.2 fix against type confusion);
 *   - descriptors: mediaType a media type (RFC 6838 type/subtype, optional
 *     parameters), digest per the digest grammar, size an integer >= 0,
 *     optional urls (strings), annotations (string values), artifactType,
 *     data (string), platform (object). A digest with an algorithm we do not
 *     hash passes (image-spec SHOULD); its parsed.alg is
 *     SPY_OCI_DIGEST_UNSUPPORTED and such content can never be found here;
 *   - the body over SPY_OCI_MANIFEST_MAX is SIZE_INVALID; the handler answers
 *     413 (spec end-7), not the code's usual 400.
 *
 * Referrers (distribution-spec "Listing Referrers"): artifact_type is the
 * manifest's artifactType when non-empty, else, for an image manifest, the
 * config's mediaType; for an index without one it is NULL (omitted). The
 * referrers response itself is built by oci_referrers.h.
 *
 * Pure and reentrant. A parsed manifest owns its JSON tree; every pointer in
 * it stays valid until spy_oci_manifest_free. */
#ifndef SPY_OCI_MANIFEST_H
#define SPY_OCI_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "registry/oci_digest.h"
#include "registry/oci_errors.h"

#define SPY_OCI_MANIFEST_MAX (4u << 20)
#define SPY_OCI_DETAIL_MAX   192

#define SPY_OCI_MEDIA_OCI_MANIFEST    "application/vnd.oci.image.manifest.v1+json"
#define SPY_OCI_MEDIA_OCI_INDEX       "application/vnd.oci.image.index.v1+json"
#define SPY_OCI_MEDIA_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define SPY_OCI_MEDIA_DOCKER_LIST     "application/vnd.docker.distribution.manifest.list.v2+json"

enum spy_oci_manifest_type {
    SPY_OCI_MANIFEST_NONE = 0, /* not a manifest type we accept */
    SPY_OCI_MANIFEST_OCI_IMAGE = 1,
    SPY_OCI_MANIFEST_OCI_INDEX = 2,
    SPY_OCI_MANIFEST_DOCKER_IMAGE = 3,
    SPY_OCI_MANIFEST_DOCKER_LIST = 4,
};

/* A descriptor; strings and annotations point into the manifest's tree. */
struct spy_oci_descriptor {
    const char *media_type;
    const char *digest;           /* as written */
    struct spy_oci_digest parsed; /* alg SPY_OCI_DIGEST_UNSUPPORTED: another algorithm */
    int64_t size;
    const char *artifact_type; /* NULL when absent or empty */
    const json_t *annotations; /* object of strings, NULL when absent */
    bool foreign;              /* non-empty "urls": may be served from elsewhere */
};

struct spy_oci_manifest {
    enum spy_oci_manifest_type type;
    const char *media_type;           /* the canonical (lowercase) type: a constant */
    struct spy_oci_descriptor *blobs; /* image: config first, then the layers */
    size_t n_blobs;
    struct spy_oci_descriptor *manifests; /* index/list: the children */
    size_t n_manifests;
    bool has_subject; /* OCI types only */
    struct spy_oci_descriptor subject;
    const char *artifact_type;       /* the referrers artifactType (see above), or NULL */
    const json_t *annotations;       /* OCI types: the top-level annotations, or NULL */
    json_t *root;                    /* owned */
    char detail[SPY_OCI_DETAIL_MAX]; /* on failure: why, for the error's detail */
};

/* The manifest type a media type names, exactly (case-insensitive, no
 * parameters); SPY_OCI_MANIFEST_NONE otherwise. */
enum spy_oci_manifest_type spy_oci_manifest_type_of(const char *media_type, size_t len);

/* The canonical media type string of a type, or NULL for NONE. */
const char *spy_oci_manifest_media_type(enum spy_oci_manifest_type type);

/* Whether s[0..len) is an RFC 6838 media type "type/subtype" (restricted
 * names of 1..127 characters), optionally followed by whitespace, ';' and
 * parameters of printable ASCII (not parsed further). */
bool spy_oci_media_type_valid(const char *s, size_t len);

/* Validates a manifest PUT. content_type is the request's header value
 * (NULL or "" when absent). Returns SPY_OCI_OK with *out filled (free it with
 * spy_oci_manifest_free), SPY_OCI_SIZE_INVALID (over the limit),
 * SPY_OCI_MANIFEST_INVALID, or SPY_OCI_UNKNOWN (the descriptor arrays could
 * not be allocated, logged; jansson running out of memory while parsing
 * shows as MANIFEST_INVALID "invalid JSON"). On failure out->detail says why
 * and nothing needs freeing. */
enum spy_oci_code spy_oci_manifest_parse(const char *content_type, const void *body, size_t len,
                                         struct spy_oci_manifest *out);

/* Frees what a parse allocated; safe on a failed parse and twice. */
void spy_oci_manifest_free(struct spy_oci_manifest *m);

#endif
