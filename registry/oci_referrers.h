/* oci_referrers.h - the referrers API response (distribution-spec v1.1.1,
 * "Listing Referrers").
 *
 * The answer to GET /v2/<name>/referrers/<digest> is an image index listing
 * the manifests whose subject is <digest>: each entry carries the referrer's
 * mediaType, digest, size, its artifactType (see oci_manifest.h for the rule
 * that derives it) and its annotations. No referrers, or none passing the
 * filter, is an empty index, never a 404.
 *
 * Pure and reentrant. */
#ifndef SPY_OCI_REFERRERS_H
#define SPY_OCI_REFERRERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* One entry of a referrers index: a manifest whose subject is the queried
 * digest. artifact_type NULL or "" is omitted, as are NULL or empty
 * annotations (borrowed). */
struct spy_oci_referrer {
    const char *media_type;
    const char *digest;
    int64_t size;
    const char *artifact_type;
    const json_t *annotations;
};

/* Builds the referrers response, an application/vnd.oci.image.index.v1+json
 * document {"schemaVersion":2,"mediaType":...,"manifests":[...]}, keeping only
 * the entries whose artifactType equals 'filter' when filter is non-NULL and
 * non-empty; *filtered then is true and the handler sets
 * "OCI-Filters-Applied: artifactType". On SPY_OK *body is malloc'd (caller
 * frees). Returns SPY_OK, SPY_EINVAL (a string is not valid UTF-8, a size is
 * negative or a mediaType/digest missing) or SPY_ENOMEM (logged). */
int spy_oci_referrers_json(const struct spy_oci_referrer *refs, size_t count, const char *filter,
                           char **body, size_t *len, bool *filtered);

#endif
