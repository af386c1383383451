#include "registry/oci_manifest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/status.h"

/* Indexed by enum spy_oci_manifest_type. */
static const char *const type_names[] = {
    [SPY_OCI_MANIFEST_NONE] = NULL,
    [SPY_OCI_MANIFEST_OCI_IMAGE] = SPY_OCI_MEDIA_OCI_MANIFEST,
    [SPY_OCI_MANIFEST_OCI_INDEX] = SPY_OCI_MEDIA_OCI_INDEX,
    [SPY_OCI_MANIFEST_DOCKER_IMAGE] = SPY_OCI_MEDIA_DOCKER_MANIFEST,
    [SPY_OCI_MANIFEST_DOCKER_LIST] = SPY_OCI_MEDIA_DOCKER_LIST,
};

enum spy_oci_manifest_type spy_oci_manifest_type_of(const char *media_type, size_t len)
{
    for (int t = SPY_OCI_MANIFEST_OCI_IMAGE; t <= SPY_OCI_MANIFEST_DOCKER_LIST; t++)
        if (strlen(type_names[t]) == len && strncasecmp(media_type, type_names[t], len) == 0)
            return (enum spy_oci_manifest_type)t;
    return SPY_OCI_MANIFEST_NONE;
}

const char *spy_oci_manifest_media_type(enum spy_oci_manifest_type type)
{
    return type > SPY_OCI_MANIFEST_NONE && type <= SPY_OCI_MANIFEST_DOCKER_LIST ? type_names[type]
                                                                                : NULL;
}

/* restricted_name_len: the length of an RFC 6838 restricted-name at s[i..len)
 * (first ALPHA/DIGIT, then up to 126 of ALPHA/DIGIT/!#$&-^_.+), or 0. */
static size_t restricted_name_len(const char *s, size_t len, size_t i)
{
    static const char extra[] = "!#$&-^_.+";
    size_t n = 0;
    for (; i + n < len && n < 127; n++) {
        char c = s[i + n];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (n == 0 || c == '\0' || strchr(extra, c) == NULL))
            break;
    }
    return n;
}

bool spy_oci_media_type_valid(const char *s, size_t len)
{
    size_t type_len = restricted_name_len(s, len, 0);
    if (type_len == 0 || type_len >= len || s[type_len] != '/')
        return false;
    size_t sub_len = restricted_name_len(s, len, type_len + 1);
    size_t i = type_len + 1 + sub_len;
    if (sub_len == 0)
        return false;
    if (i == len)
        return true;
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i == len || s[i] != ';')
        return false;
    for (; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7E)
            return false;
    return true;
}

/* fail: records why the manifest is rejected and returns the code. */
static enum spy_oci_code fail(struct spy_oci_manifest *m, enum spy_oci_code code, const char *fmt,
                              ...) __attribute__((format(printf, 3, 4)));

static enum spy_oci_code fail(struct spy_oci_manifest *m, enum spy_oci_code code, const char *fmt,
                              ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->detail, sizeof(m->detail), fmt, ap);
    va_end(ap);
    return code;
}

/* string_member: the string value of obj[key]: NULL with *ok true when the
 * member is absent, NULL with *ok false when it is not a string. */
static const char *string_member(const json_t *obj, const char *key, bool *ok)
{
    json_t *v = json_object_get(obj, key);
    *ok = v == NULL || json_is_string(v);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* check_annotations: obj[key] absent, or an object whose values are all
 * strings; stores it in *out. */
static bool check_annotations(const json_t *obj, const char *key, const json_t **out)
{
    json_t *a = json_object_get(obj, key);
    *out = NULL;
    if (a == NULL)
        return true;
    if (!json_is_object(a))
        return false;
    const char *k;
    json_t *v;
    json_object_foreach(a, k, v)
    {
        if (!json_is_string(v))
            return false;
    }
    *out = a;
    return true;
}

/* check_urls: obj["urls"] absent or an array of strings; *foreign when it
 * has at least one. */
static bool check_urls(const json_t *obj, bool *foreign)
{
    json_t *urls = json_object_get(obj, "urls");
    *foreign = false;
    if (urls == NULL)
        return true;
    if (!json_is_array(urls))
        return false;
    size_t i;
    json_t *u;
    json_array_foreach(urls, i, u)
    {
        if (!json_is_string(u))
            return false;
    }
    *foreign = json_array_size(urls) > 0;
    return true;
}

/* check_artifact_type: obj["artifactType"] absent, "" or a media type; the
 * non-empty value goes to *out. */
static bool check_artifact_type(const json_t *obj, const char **out)
{
    bool ok;
    const char *at = string_member(obj, "artifactType", &ok);
    *out = NULL;
    if (!ok)
        return false;
    if (at == NULL || at[0] == '\0')
        return true;
    if (!spy_oci_media_type_valid(at, strlen(at)))
        return false;
    *out = at;
    return true;
}

/* parse_digest_member: obj["digest"] into d (text and parsed form). */
static bool parse_digest_member(const json_t *obj, struct spy_oci_descriptor *d)
{
    json_t *v = json_object_get(obj, "digest");
    if (!json_is_string(v))
        return false;
    d->digest = json_string_value(v);
    enum spy_oci_code rc = spy_oci_digest_parse(d->digest, json_string_length(v), &d->parsed);
    return rc == SPY_OCI_OK || rc == SPY_OCI_UNSUPPORTED;
}

/* parse_descriptor: validates one descriptor object; 'where' names it in
 * the detail ("layers[2]"). */
static enum spy_oci_code parse_descriptor(struct spy_oci_manifest *m, const json_t *obj,
                                          const char *where, struct spy_oci_descriptor *d)
{
    bool ok;
    memset(d, 0, sizeof(*d));
    if (!json_is_object(obj))
        return fail(m, SPY_OCI_MANIFEST_INVALID, "%s: not an object", where);
    d->media_type = string_member(obj, "mediaType", &ok);
    if (d->media_type == NULL || !spy_oci_media_type_valid(d->media_type, strlen(d->media_type)))
        return fail(m, SPY_OCI_MANIFEST_INVALID, "%s.mediaType: missing or invalid", where);
    if (!parse_digest_member(obj, d))
        return fail(m, SPY_OCI_MANIFEST_INVALID, "%s.digest: missing or invalid", where);
    json_t *size = json_object_get(obj, "size");
    if (!json_is_integer(size) || json_integer_value(size) < 0)
        return fail(m, SPY_OCI_MANIFEST_INVALID, "%s.size: missing, negative or not an integer",
                    where);
    d->size = (int64_t)json_integer_value(size);
    if (!check_urls(obj, &d->foreign))
        return fail(m, SPY_OCI_MANIFEST_INVALID, "%s.urls: not an array of strings", where);
    if (!check_annotations(obj, "annotations", &d->annotations))
        return fail(m, SPY_OCI_MANIFEST_INVALID, "%s.annotations: not an object of strings", where);
    if (!check_artifact_type(obj, &d->artifact_type))
        return fail(m, SPY_OCI_MANIFEST_INVALID, "%s.artifactType: not a media type", where);
    string_member(obj, "data", &ok);
    if (!ok)
        return fail(m, SPY_OCI_MANIFEST_INVALID, "%s.data: not a string", where);
    json_t *platform = json_object_get(obj, "platform");
    if (platform != NULL && !json_is_object(platform))
        return fail(m, SPY_OCI_MANIFEST_INVALID, "%s.platform: not an object", where);
    return SPY_OCI_OK;
}

/* parse_descriptor_list: obj[key] must be an array of descriptors; they are
 * stored from out[first] on (out has room for first + the array's size). */
static enum spy_oci_code parse_descriptor_list(struct spy_oci_manifest *m, const json_t *arr,
                                               const char *key, struct spy_oci_descriptor *out,
                                               size_t first)
{
    size_t i;
    json_t *item;
    json_array_foreach(arr, i, item)
    {
        char where[48];
        snprintf(where, sizeof(where), "%s[%zu]", key, i);
        enum spy_oci_code rc = parse_descriptor(m, item, where, &out[first + i]);
        if (rc != SPY_OCI_OK)
            return rc;
    }
    return SPY_OCI_OK;
}

/* alloc_descriptors: room for n descriptors (NULL, without error, for 0). */
static enum spy_oci_code alloc_descriptors(struct spy_oci_manifest *m, size_t n,
                                           struct spy_oci_descriptor **out)
{
    *out = NULL;
    if (n == 0)
        return SPY_OCI_OK;
    *out = calloc(n, sizeof(**out));
    if (*out == NULL) {
        spy_error("oci: out of memory for %zu manifest descriptors", n);
        return fail(m, SPY_OCI_UNKNOWN, "out of memory");
    }
    return SPY_OCI_OK;
}

/* parse_image: config + layers of an image manifest. */
static enum spy_oci_code parse_image(struct spy_oci_manifest *m)
{
    json_t *config = json_object_get(m->root, "config");
    json_t *layers = json_object_get(m->root, "layers");
    if (json_object_get(m->root, "manifests") != NULL)
        return fail(m, SPY_OCI_MANIFEST_INVALID, "an image manifest cannot have \"manifests\"");
    if (config == NULL)
        return fail(m, SPY_OCI_MANIFEST_INVALID, "config: missing");
    if (!json_is_array(layers))
        return fail(m, SPY_OCI_MANIFEST_INVALID, "layers: missing or not an array");
    enum spy_oci_code rc = alloc_descriptors(m, json_array_size(layers) + 1, &m->blobs);
    if (rc != SPY_OCI_OK)
        return rc;
    m->n_blobs = json_array_size(layers) + 1;
    rc = parse_descriptor(m, config, "config", &m->blobs[0]);
    if (rc == SPY_OCI_OK)
        rc = parse_descriptor_list(m, layers, "layers", m->blobs, 1);
    return rc;
}

/* parse_index: the children of an index or manifest list. */
static enum spy_oci_code parse_index(struct spy_oci_manifest *m)
{
    json_t *manifests = json_object_get(m->root, "manifests");
    if (json_object_get(m->root, "config") != NULL || json_object_get(m->root, "layers") != NULL)
        return fail(m, SPY_OCI_MANIFEST_INVALID, "an index cannot have \"config\" or \"layers\"");
    if (!json_is_array(manifests))
        return fail(m, SPY_OCI_MANIFEST_INVALID, "manifests: missing or not an array");
    enum spy_oci_code rc = alloc_descriptors(m, json_array_size(manifests), &m->manifests);
    if (rc != SPY_OCI_OK)
        return rc;
    m->n_manifests = json_array_size(manifests);
    return parse_descriptor_list(m, manifests, "manifests", m->manifests, 0);
}

/* parse_oci_extras: subject, artifactType and annotations (OCI types only),
 * and the referrers artifactType rule. */
static enum spy_oci_code parse_oci_extras(struct spy_oci_manifest *m)
{
    json_t *subject = json_object_get(m->root, "subject");
    if (subject != NULL) {
        enum spy_oci_code rc = parse_descriptor(m, subject, "subject", &m->subject);
        if (rc != SPY_OCI_OK)
            return rc;
        m->has_subject = true;
    }
    if (!check_artifact_type(m->root, &m->artifact_type))
        return fail(m, SPY_OCI_MANIFEST_INVALID, "artifactType: not a media type");
    if (!check_annotations(m->root, "annotations", &m->annotations))
        return fail(m, SPY_OCI_MANIFEST_INVALID, "annotations: not an object of strings");
    return SPY_OCI_OK;
}

/* header_media_type: the Content-Type's media type without parameters or
 * surrounding whitespace, as s[0..*len). */
static const char *header_media_type(const char *ct, size_t *len)
{
    *len = 0;
    if (ct == NULL)
        return NULL;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    *len = n;
    return n > 0 ? ct : NULL;
}

/* decide_type: applies the Content-Type vs mediaType rules (header). */
static enum spy_oci_code decide_type(struct spy_oci_manifest *m, const char *content_type)
{
    size_t hlen;
    const char *header = header_media_type(content_type, &hlen);
    json_t *field = json_object_get(m->root, "mediaType");
    if (field != NULL && !json_is_string(field))
        return fail(m, SPY_OCI_MANIFEST_INVALID, "mediaType: not a string");
    if (field != NULL) {
        const char *body = json_string_value(field);
        size_t blen = json_string_length(field);
        m->type = spy_oci_manifest_type_of(body, blen);
        if (m->type == SPY_OCI_MANIFEST_NONE)
            return fail(m, SPY_OCI_MANIFEST_INVALID, "unsupported manifest mediaType \"%.100s\"",
                        body);
        if (header != NULL && (hlen != blen || strncasecmp(header, body, blen) != 0))
            return fail(m, SPY_OCI_MANIFEST_INVALID,
                        "Content-Type \"%.*s\" does not match mediaType \"%s\"",
                        (int)(hlen > 60 ? 60 : hlen), header, body);
        return SPY_OCI_OK;
    }
    if (header == NULL)
        return fail(m, SPY_OCI_MANIFEST_INVALID, "no media type: no Content-Type nor mediaType");
    m->type = spy_oci_manifest_type_of(header, hlen);
    if (m->type == SPY_OCI_MANIFEST_NONE)
        return fail(m, SPY_OCI_MANIFEST_INVALID, "unsupported manifest Content-Type \"%.*s\"",
                    (int)(hlen > 100 ? 100 : hlen), header);
    if (m->type == SPY_OCI_MANIFEST_DOCKER_IMAGE || m->type == SPY_OCI_MANIFEST_DOCKER_LIST)
        return fail(m, SPY_OCI_MANIFEST_INVALID, "mediaType: required in Docker manifests");
    return SPY_OCI_OK;
}

/* parse_document: everything after the JSON was read. */
static enum spy_oci_code parse_document(struct spy_oci_manifest *m, const char *content_type)
{
    enum spy_oci_code rc = decide_type(m, content_type);
    if (rc != SPY_OCI_OK)
        return rc;
    m->media_type = type_names[m->type];
    json_t *version = json_object_get(m->root, "schemaVersion");
    if (!json_is_integer(version) || json_integer_value(version) != 2)
        return fail(m, SPY_OCI_MANIFEST_INVALID, "schemaVersion: must be the integer 2");
    bool image = m->type == SPY_OCI_MANIFEST_OCI_IMAGE || m->type == SPY_OCI_MANIFEST_DOCKER_IMAGE;
    rc = image ? parse_image(m) : parse_index(m);
    if (rc != SPY_OCI_OK)
        return rc;
    if (m->type == SPY_OCI_MANIFEST_OCI_IMAGE || m->type == SPY_OCI_MANIFEST_OCI_INDEX) {
        rc = parse_oci_extras(m);
        if (rc != SPY_OCI_OK)
            return rc;
    }
    if (m->artifact_type == NULL && image)
        m->artifact_type = m->blobs[0].media_type;
    return SPY_OCI_OK;
}

enum spy_oci_code spy_oci_manifest_parse(const char *content_type, const void *body, size_t len,
                                         struct spy_oci_manifest *out)
{
    memset(out, 0, sizeof(*out));
    if (len > SPY_OCI_MANIFEST_MAX)
        return fail(out, SPY_OCI_SIZE_INVALID, "manifest is %zu bytes, over the %u-byte limit", len,
                    SPY_OCI_MANIFEST_MAX);
    json_error_t err;
    out->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
    if (out->root == NULL)
        return fail(out, SPY_OCI_MANIFEST_INVALID, "invalid JSON at line %d column %d: %.100s",
                    err.line, err.column, err.text);
    if (!json_is_object(out->root)) {
        spy_oci_manifest_free(out);
        return fail(out, SPY_OCI_MANIFEST_INVALID, "not a JSON object");
    }
    enum spy_oci_code rc = parse_document(out, content_type);
    if (rc != SPY_OCI_OK) {
        char detail[SPY_OCI_DETAIL_MAX];
        memcpy(detail, out->detail, sizeof(detail));
        spy_oci_manifest_free(out);
        memcpy(out->detail, detail, sizeof(detail));
    }
    return rc;
}

void spy_oci_manifest_free(struct spy_oci_manifest *m)
{
    free(m->blobs);
    free(m->manifests);
    json_decref(m->root);
    memset(m, 0, sizeof(*m));
}
