#include "registry/oci_errors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/status.h"

struct code_info {
    const char *name;
    int status;
    const char *message;
};

/* Indexed by enum spy_oci_code. Statuses from distribution's register.go;
 * messages from the spec's table where it has the code. */
static const struct code_info code_table[SPY_OCI_CODE_COUNT] = {
    [SPY_OCI_OK] = {"UNKNOWN", 200, "success"},
    [SPY_OCI_BLOB_UNKNOWN] = {"BLOB_UNKNOWN", 404, "blob unknown to registry"},
    [SPY_OCI_BLOB_UPLOAD_INVALID] = {"BLOB_UPLOAD_INVALID", 404, "blob upload invalid"},
    [SPY_OCI_BLOB_UPLOAD_UNKNOWN] = {"BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"},
    [SPY_OCI_DIGEST_INVALID] = {"DIGEST_INVALID", 400,
                                "provided digest did not match uploaded content"},
    [SPY_OCI_MANIFEST_BLOB_UNKNOWN] = {"MANIFEST_BLOB_UNKNOWN", 400,
                                       "manifest references a manifest or blob unknown to "
                                       "registry"},
    [SPY_OCI_MANIFEST_INVALID] = {"MANIFEST_INVALID", 400, "manifest invalid"},
    [SPY_OCI_MANIFEST_UNKNOWN] = {"MANIFEST_UNKNOWN", 404, "manifest unknown to registry"},
    [SPY_OCI_NAME_INVALID] = {"NAME_INVALID", 400, "invalid repository name"},
    [SPY_OCI_NAME_UNKNOWN] = {"NAME_UNKNOWN", 404, "repository name not known to registry"},
    [SPY_OCI_SIZE_INVALID] = {"SIZE_INVALID", 400, "provided length did not match content length"},
    [SPY_OCI_UNAUTHORIZED] = {"UNAUTHORIZED", 401, "authentication required"},
    [SPY_OCI_DENIED] = {"DENIED", 403, "requested access to the resource is denied"},
    [SPY_OCI_UNSUPPORTED] = {"UNSUPPORTED", 405, "the operation is unsupported"},
    [SPY_OCI_TOOMANYREQUESTS] = {"TOOMANYREQUESTS", 429, "too many requests"},
    [SPY_OCI_RANGE_INVALID] = {"RANGE_INVALID", 416, "invalid content range"},
    [SPY_OCI_PAGINATION_NUMBER_INVALID] = {"PAGINATION_NUMBER_INVALID", 400,
                                           "invalid number of results requested"},
    [SPY_OCI_TAG_INVALID] = {"TAG_INVALID", 400, "manifest tag did not match URI"},
    [SPY_OCI_UNKNOWN] = {"UNKNOWN", 500, "unknown error"},
};

/* code_valid: whether 'code' names an error (not OK, not out of range). */
static int code_valid(enum spy_oci_code code)
{
    return (int)code > 0 && (int)code < SPY_OCI_CODE_COUNT;
}

const char *spy_oci_code_name(enum spy_oci_code code)
{
    return code_valid(code) ? code_table[code].name : "UNKNOWN";
}

int spy_oci_code_http_status(enum spy_oci_code code)
{
    if (code == SPY_OCI_OK)
        return 200;
    return code_valid(code) ? code_table[code].status : 500;
}

const char *spy_oci_code_message(enum spy_oci_code code)
{
    return code_valid(code) ? code_table[code].message : code_table[SPY_OCI_UNKNOWN].message;
}

/* utf8_sequence_len: the length of the well-formed UTF-8 sequence (RFC 3629:
 * no overlongs, no surrogates, nothing above U+10FFFF) starting at s[0], or
 * 0 if the bytes there are not one. */
static size_t utf8_sequence_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (avail < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

/* json_string_lossy: a JSON string of 's' with every byte that is not part
 * of well-formed UTF-8 replaced by U+FFFD. NULL only when out of memory. */
static json_t *json_string_lossy(const char *s)
{
    size_t len = strlen(s);
    unsigned char *clean = malloc(len * 3 + 1);
    if (clean == NULL)
        return NULL;
    const unsigned char *in = (const unsigned char *)s;
    size_t out = 0;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence_len(in + i, len - i);
        if (n == 0) {
            memcpy(clean + out, "\xEF\xBF\xBD", 3);
            out += 3;
            i++;
        } else {
            memcpy(clean + out, in + i, n);
            out += n;
            i += n;
        }
    }
    json_t *str = json_stringn((const char *)clean, out);
    free(clean);
    return str;
}

/* error_entry: one {"code","message","detail"} object, or NULL when out of
 * memory. */
static json_t *error_entry(const struct spy_oci_error *e)
{
    json_t *obj = json_object();
    if (obj == NULL)
        return NULL;
    const char *message = e->message != NULL ? e->message : spy_oci_code_message(e->code);
    json_t *detail = NULL;
    if (e->detail_json != NULL)
        detail = json_deep_copy(e->detail_json);
    else if (e->detail != NULL)
        detail = json_string_lossy(e->detail);
    int failed = json_object_set_new(obj, "code", json_string(spy_oci_code_name(e->code))) != 0 ||
                 json_object_set_new(obj, "message", json_string_lossy(message)) != 0;
    if (!failed && (e->detail_json != NULL || e->detail != NULL))
        failed = json_object_set_new(obj, "detail", detail) != 0;
    else
        json_decref(detail);
    if (failed) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

int spy_oci_errors_json(const struct spy_oci_error *errors, size_t count, char **body, size_t *len)
{
    *body = NULL;
    *len = 0;
    if (count == 0)
        return SPY_EINVAL;
    json_t *list = json_array();
    json_t *root = json_object();
    int failed = list == NULL || root == NULL;
    for (size_t i = 0; i < count && !failed; i++)
        failed = json_array_append_new(list, error_entry(&errors[i])) != 0;
    if (!failed) {
        failed = json_object_set_new(root, "errors", list) != 0;
        list = NULL;
    }
    char *text = failed ? NULL : json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(list);
    json_decref(root);
    if (text == NULL) {
        spy_error("oci: out of memory building an error body");
        return SPY_ENOMEM;
    }
    *body = text;
    *len = strlen(text);
    return SPY_OK;
}

int spy_oci_error_json(enum spy_oci_code code, const char *message, const char *detail, char **body,
                       size_t *len)
{
    struct spy_oci_error e = {code, message, detail, NULL};
    return spy_oci_errors_json(&e, 1, body, len);
}
