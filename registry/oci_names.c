#include "registry/oci_names.h"

#include <string.h>

#include "common/status.h"
#include "registry/oci_digest.h"

/* is_lower_alnum: [a-z0-9], what every name component starts and ends with. */
static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* skip_separator: the length of the separator (".", "_", "__" or "-+")
 * starting at s[i], or 0 if there is none. */
static size_t skip_separator(const char *s, size_t len, size_t i)
{
    if (s[i] == '.')
        return 1;
    if (s[i] == '_')
        return i + 1 < len && s[i + 1] == '_' ? 2 : 1;
    size_t n = 0;
    while (i + n < len && s[i + n] == '-')
        n++;
    return n;
}

/* The matcher alternates: a run of [a-z0-9], then either the end, a '/'
 * (a new component), or a separator; after '/' or a separator another run
 * must follow, which the loop's first test enforces. */
bool spy_oci_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > SPY_OCI_NAME_MAX)
        return false;
    size_t i = 0;
    for (;;) {
        if (i >= len || !is_lower_alnum(s[i]))
            return false;
        while (i < len && is_lower_alnum(s[i]))
            i++;
        if (i == len)
            return true;
        if (s[i] == '/') {
            i++;
            continue;
        }
        size_t sep = skip_separator(s, len, i);
        if (sep == 0)
            return false;
        i += sep;
    }
}

/* is_tag_char: [a-zA-Z0-9._-], what may follow a tag's first character. */
static bool is_tag_char(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '_' || c == '.' || c == '-';
}

bool spy_oci_tag_valid(const char *s, size_t len)
{
    if (len == 0 || len > SPY_OCI_TAG_MAX || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_tag_char(s[i]))
            return false;
    return true;
}

enum spy_oci_ref_kind spy_oci_reference_classify(const char *s, size_t len)
{
    if (spy_oci_tag_valid(s, len))
        return SPY_OCI_REF_TAG;
    if (spy_oci_digest_grammar_valid(s, len))
        return SPY_OCI_REF_DIGEST;
    return SPY_OCI_REF_INVALID;
}

/* ends_with: whether s[0..len) ends with the NUL-terminated suffix. */
static bool ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* set_route: fills *out and validates the name part. */
static int set_route(struct spy_oci_route *out, enum spy_oci_route_kind kind, const char *name,
                     size_t name_len, const char *ref, size_t ref_len)
{
    out->kind = kind;
    out->name = name;
    out->name_len = name_len;
    out->ref = ref;
    out->ref_len = ref_len;
    return spy_oci_name_valid(name, name_len) ? SPY_OK : SPY_EINVAL;
}

/* A keyword segment and the route it selects when it precedes the last
 * segment. "/blobs/uploads" is tested before "/blobs" because both end the
 * head of an upload path. */
static const struct {
    const char *keyword;
    enum spy_oci_route_kind kind;
} ref_routes[] = {
    {"/blobs/uploads", SPY_OCI_ROUTE_UPLOAD},
    {"/manifests", SPY_OCI_ROUTE_MANIFEST},
    {"/blobs", SPY_OCI_ROUTE_BLOB},
    {"/referrers", SPY_OCI_ROUTE_REFERRERS},
};

/* split_repository_path: routes "<name>/<keyword>/<ref>" and
 * "<name>/tags/list", rest being the path after "/v2/". */
static int split_repository_path(const char *rest, size_t len, struct spy_oci_route *out)
{
    if (ends_with(rest, len, "/tags/list"))
        return set_route(out, SPY_OCI_ROUTE_TAGS, rest, len - 10, NULL, 0);
    if (ends_with(rest, len, "/blobs/uploads"))
        return set_route(out, SPY_OCI_ROUTE_UPLOADS, rest, len - 14, NULL, 0);
    const char *slash = memrchr(rest, '/', len);
    if (slash == NULL)
        return SPY_ENOTFOUND;
    size_t head_len = (size_t)(slash - rest);
    const char *ref = slash + 1;
    size_t ref_len = len - head_len - 1;
    for (size_t i = 0; i < sizeof(ref_routes) / sizeof(ref_routes[0]); i++) {
        const char *kw = ref_routes[i].keyword;
        if (!ends_with(rest, head_len, kw))
            continue;
        size_t name_len = head_len - strlen(kw);
        enum spy_oci_route_kind kind = ref_routes[i].kind;
        if (ref_len == 0 && kind == SPY_OCI_ROUTE_UPLOAD)
            return set_route(out, SPY_OCI_ROUTE_UPLOADS, rest, name_len, NULL, 0);
        if (ref_len == 0)
            return SPY_ENOTFOUND;
        return set_route(out, kind, rest, name_len, ref, ref_len);
    }
    return SPY_ENOTFOUND;
}

int spy_oci_route_split(const char *path, size_t len, struct spy_oci_route *out)
{
    memset(out, 0, sizeof(*out));
    const char *query = memchr(path, '?', len);
    if (query != NULL)
        len = (size_t)(query - path);
    if ((len == 3 && memcmp(path, "/v2", 3) == 0) || (len == 4 && memcmp(path, "/v2/", 4) == 0)) {
        out->kind = SPY_OCI_ROUTE_BASE;
        return SPY_OK;
    }
    if (len < 4 || memcmp(path, "/v2/", 4) != 0)
        return SPY_ENOTFOUND;
    const char *rest = path + 4;
    size_t rest_len = len - 4;
    if (rest_len == 8 && memcmp(rest, "_catalog", 8) == 0) {
        out->kind = SPY_OCI_ROUTE_CATALOG;
        return SPY_OK;
    }
    int rc = split_repository_path(rest, rest_len, out);
    if (rc == SPY_ENOTFOUND)
        memset(out, 0, sizeof(*out));
    return rc;
}
