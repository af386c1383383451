#include "registry/oci_referrers.h"

#include <string.h>

#include "common/log.h"
#include "common/status.h"
#include "registry/oci_manifest.h"

/* referrer_entry: one descriptor of the referrers index, or NULL (*invalid
 * set when the input, not memory, is at fault). */
static json_t *referrer_entry(const struct spy_oci_referrer *r, bool *invalid)
{
    *invalid = r->media_type == NULL || r->digest == NULL || r->size < 0;
    if (*invalid)
        return NULL;
    json_t *d = json_object();
    json_t *mt = json_string(r->media_type), *dg = json_string(r->digest);
    json_t *at = r->artifact_type != NULL && r->artifact_type[0] != '\0'
                     ? json_string(r->artifact_type)
                     : json_null();
    json_t *an = r->annotations != NULL && json_object_size(r->annotations) > 0
                     ? json_deep_copy(r->annotations)
                     : json_null();
    bool failed = d == NULL || mt == NULL || dg == NULL || at == NULL || an == NULL;
    *invalid = !failed ? false : (mt == NULL || dg == NULL || at == NULL) && d != NULL;
    if (!failed) {
        failed = json_object_set(d, "mediaType", mt) != 0 ||
                 json_object_set(d, "digest", dg) != 0 ||
                 json_object_set_new(d, "size", json_integer(r->size)) != 0 ||
                 (!json_is_null(at) && json_object_set(d, "artifactType", at) != 0) ||
                 (!json_is_null(an) && json_object_set(d, "annotations", an) != 0);
    }
    json_decref(mt);
    json_decref(dg);
    json_decref(at);
    json_decref(an);
    if (failed) {
        json_decref(d);
        return NULL;
    }
    return d;
}

/* matches_filter: whether a referrer passes the artifactType filter. */
static bool matches_filter(const struct spy_oci_referrer *r, const char *filter)
{
    if (filter == NULL || filter[0] == '\0')
        return true;
    return r->artifact_type != NULL && strcmp(r->artifact_type, filter) == 0;
}

int spy_oci_referrers_json(const struct spy_oci_referrer *refs, size_t count, const char *filter,
                           char **body, size_t *len, bool *filtered)
{
    *body = NULL;
    *len = 0;
    *filtered = filter != NULL && filter[0] != '\0';
    bool invalid = false;
    json_t *list = json_array();
    json_t *root = json_object();
    bool failed = list == NULL || root == NULL ||
                  json_object_set_new(root, "schemaVersion", json_integer(2)) != 0 ||
                  json_object_set_new(root, "mediaType", json_string(SPY_OCI_MEDIA_OCI_INDEX)) != 0;
    for (size_t i = 0; i < count && !failed; i++)
        if (matches_filter(&refs[i], filter))
            failed = json_array_append_new(list, referrer_entry(&refs[i], &invalid)) != 0;
    if (!failed) {
        failed = json_object_set_new(root, "manifests", list) != 0;
        list = NULL;
    }
    char *text = failed ? NULL : json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(list);
    json_decref(root);
    if (text == NULL && invalid)
        return SPY_EINVAL;
    if (text == NULL) {
        spy_error("oci: out of memory building a referrers index");
        return SPY_ENOMEM;
    }
    *body = text;
    *len = strlen(text);
    return SPY_OK;
}
