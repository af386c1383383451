/* fuzz_oci_names: names, tags and references against POSIX regular
 * expressions of the spec's grammars (a differential oracle: the module
 * matches by hand), the route split (the pieces must rebuild the path), and
 * the query parser with pagination and Link building on top. */
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "registry/oci_digest.h"
#include "registry/oci_names.h"
#include "registry/oci_page.h"
#include "registry/oci_query.h"

static regex_t name_re, tag_re;

/* compile_oracles: the spec's regular expressions, anchored (once). */
static void compile_oracles(void)
{
    static bool done;
    if (done)
        return;
    const char *name = "^[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*$";
    if (regcomp(&name_re, name, REG_EXTENDED | REG_NOSUB) != 0 ||
        regcomp(&tag_re, "^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$", REG_EXTENDED | REG_NOSUB) != 0)
        abort();
    done = true;
}

/* regex_says: what the oracle thinks of s[0..len) (false for embedded NULs). */
static bool regex_says(regex_t *re, const char *s, size_t len)
{
    char *z = strndup(s, len);
    bool ok = strlen(z) == len && regexec(re, z, 0, NULL, 0) == 0;
    free(z);
    return ok;
}

/* check_grammars: names and tags agree with the oracle. */
static void check_grammars(const char *s, size_t len)
{
    if (len <= 300) {
        bool name = spy_oci_name_valid(s, len);
        if (name != (regex_says(&name_re, s, len) && len <= SPY_OCI_NAME_MAX))
            abort();
        if (spy_oci_tag_valid(s, len) != regex_says(&tag_re, s, len))
            abort();
    }
    enum spy_oci_ref_kind kind = spy_oci_reference_classify(s, len);
    if (kind == SPY_OCI_REF_TAG && !spy_oci_tag_valid(s, len))
        abort();
    if (kind == SPY_OCI_REF_DIGEST && (memchr(s, ':', len) == NULL || spy_oci_tag_valid(s, len)))
        abort();
}

/* within: p[0..n) lies inside s[0..len). */
static bool within(const char *p, size_t n, const char *s, size_t len)
{
    return p >= s && p + n <= s + len;
}

/* check_route: a split path rebuilds to the input (up to '?'). */
static void check_route(const char *s, size_t len)
{
    static const char *const keyword[] = {
        [SPY_OCI_ROUTE_TAGS] = "/tags/list",        [SPY_OCI_ROUTE_MANIFEST] = "/manifests/",
        [SPY_OCI_ROUTE_BLOB] = "/blobs/",           [SPY_OCI_ROUTE_UPLOADS] = "/blobs/uploads",
        [SPY_OCI_ROUTE_UPLOAD] = "/blobs/uploads/", [SPY_OCI_ROUTE_REFERRERS] = "/referrers/",
    };
    struct spy_oci_route r;
    int rc = spy_oci_route_split(s, len, &r);
    if (rc == SPY_ENOTFOUND) {
        if (r.kind != SPY_OCI_ROUTE_NONE || r.name != NULL)
            abort();
        return;
    }
    if (rc != SPY_OK && rc != SPY_EINVAL)
        abort();
    if (r.kind == SPY_OCI_ROUTE_BASE || r.kind == SPY_OCI_ROUTE_CATALOG)
        return;
    if (!within(r.name, r.name_len, s, len) || (r.ref && !within(r.ref, r.ref_len, s, len)))
        abort();
    if ((rc == SPY_OK) != spy_oci_name_valid(r.name, r.name_len))
        abort();
    const char *end = memchr(s, '?', len);
    size_t path_len = end ? (size_t)(end - s) : len;
    size_t kw = strlen(keyword[r.kind]);
    size_t rebuilt = 4 + r.name_len + kw + r.ref_len;
    bool slash = r.kind == SPY_OCI_ROUTE_UPLOADS && path_len == rebuilt + 1;
    if (rebuilt + slash != path_len || memcmp(s, "/v2/", 4) != 0 || r.name != s + 4 ||
        memcmp(s + 4 + r.name_len, keyword[r.kind], kw) != 0)
        abort();
    if (r.ref != NULL && (r.ref != s + 4 + r.name_len + kw || r.ref_len == 0))
        abort();
}

/* check_query: decoded parameters are sane and feed pagination. */
static void check_query(const char *s, size_t len)
{
    struct spy_oci_query q;
    if (spy_oci_query_parse(s, len, &q) != SPY_OK)
        return;
    size_t total = 0;
    for (size_t i = 0; i < q.count; i++) {
        const struct spy_oci_query_param *p = &q.params[i];
        if (strlen(p->key) != p->key_len || strlen(p->value) != p->value_len)
            abort();
        total += p->key_len + p->value_len;
    }
    if (total > len)
        abort();
    struct spy_oci_page page;
    if (spy_oci_page_parse(&q, 100, &page) == SPY_OCI_OK) {
        if (page.n > SPY_OCI_PAGE_MAX)
            abort();
        char link[SPY_OCI_LINK_MAX];
        const char *last = page.last ? page.last : "x";
        int n = spy_oci_tags_link(link, sizeof(link), "a/b", page.n, last);
        if (n != SPY_ERANGE && (n <= 0 || strlen(link) != (size_t)n))
            abort();
        for (int i = 0; i < n; i++) /* escaping leaves only printable ASCII */
            if (link[i] < 0x20 || link[i] > 0x7e)
                abort();
    }
    spy_oci_query_free(&q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    compile_oracles();
    const char *s = (const char *)data;
    check_grammars(s, size);
    check_route(s, size);
    check_query(s, size);
    return 0;
}
