/* fuzz_oci_manifest: manifest validation with a Content-Type chosen by the
 * first input byte. An accepted manifest must satisfy the contract's
 * invariants, and the referrers index built from it must itself be accepted
 * as an OCI index; the error body for a rejection must be valid JSON. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "registry/oci_manifest.h"
#include "registry/oci_referrers.h"

static const char *const content_types[] = {
    NULL,
    "",
    SPY_OCI_MEDIA_OCI_MANIFEST,
    SPY_OCI_MEDIA_OCI_INDEX,
    SPY_OCI_MEDIA_DOCKER_MANIFEST,
    SPY_OCI_MEDIA_DOCKER_LIST,
    "application/json",
    SPY_OCI_MEDIA_OCI_MANIFEST "; charset=utf-8",
};

/* check_descriptor: what the parser promises about an accepted descriptor. */
static void check_descriptor(const struct spy_oci_descriptor *d)
{
    if (d->media_type == NULL || !spy_oci_media_type_valid(d->media_type, strlen(d->media_type)))
        abort();
    if (d->digest == NULL || !spy_oci_digest_grammar_valid(d->digest, strlen(d->digest)))
        abort();
    if (d->size < 0 || (d->artifact_type != NULL && d->artifact_type[0] == '\0'))
        abort();
    if (d->parsed.alg != SPY_OCI_DIGEST_UNSUPPORTED) {
        char out[SPY_OCI_DIGEST_STR_MAX + 1];
        if (spy_oci_digest_format(&d->parsed, out) < 0 || strcmp(out, d->digest) != 0)
            abort();
    }
}

/* check_accepted: invariants, then the referrers index round trip. */
static void check_accepted(const struct spy_oci_manifest *m, size_t body_len)
{
    bool image = m->type == SPY_OCI_MANIFEST_OCI_IMAGE || m->type == SPY_OCI_MANIFEST_DOCKER_IMAGE;
    if (m->media_type == NULL || m->root == NULL || (image && m->n_blobs == 0) ||
        (!image && m->n_blobs != 0) || (image && m->n_manifests != 0))
        abort();
    for (size_t i = 0; i < m->n_blobs; i++)
        check_descriptor(&m->blobs[i]);
    for (size_t i = 0; i < m->n_manifests; i++)
        check_descriptor(&m->manifests[i]);
    if (m->has_subject)
        check_descriptor(&m->subject);
    if (image && m->artifact_type == NULL)
        abort();
    const char *digest =
        image ? m->blobs[0].digest
              : "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    struct spy_oci_referrer r = {m->media_type, digest, (int64_t)body_len, m->artifact_type,
                                 m->annotations};
    char *index;
    size_t len;
    bool filtered;
    if (spy_oci_referrers_json(&r, 1, m->artifact_type, &index, &len, &filtered) != SPY_OK)
        abort();
    struct spy_oci_manifest again;
    if (spy_oci_manifest_parse(SPY_OCI_MEDIA_OCI_INDEX, index, len, &again) != SPY_OCI_OK ||
        again.n_manifests != 1 || strcmp(again.manifests[0].digest, digest) != 0)
        abort();
    spy_oci_manifest_free(&again);
    free(index);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *ct = content_types[data[0] % (sizeof(content_types) / sizeof(content_types[0]))];
    struct spy_oci_manifest m;
    enum spy_oci_code rc = spy_oci_manifest_parse(ct, data + 1, size - 1, &m);
    if (rc == SPY_OCI_OK) {
        check_accepted(&m, size - 1);
    } else {
        if (m.root != NULL || m.blobs != NULL || m.detail[0] == '\0')
            abort();
        char *body;
        size_t len;
        if (spy_oci_error_json(rc, NULL, m.detail, &body, &len) != SPY_OK)
            abort();
        json_t *parsed = json_loadb(body, len, 0, NULL);
        if (parsed == NULL)
            abort();
        json_decref(parsed);
        free(body);
    }
    spy_oci_manifest_free(&m);
    return 0;
}
