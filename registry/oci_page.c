#include "registry/oci_page.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "common/status.h"

/* parse_n: a plain decimal number of at most SPY_OCI_PAGE_MAX. */
static bool parse_n(const char *s, size_t len, uint32_t *n)
{
    uint32_t v = 0;
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
        if (v > SPY_OCI_PAGE_MAX)
            return false;
    }
    *n = v;
    return true;
}

enum spy_oci_code spy_oci_page_parse(const struct spy_oci_query *q, uint32_t default_n,
                                     struct spy_oci_page *out)
{
    memset(out, 0, sizeof(*out));
    out->n = default_n;
    out->last = spy_oci_query_get(q, "last", &out->last_len);
    size_t count = spy_oci_query_count(q, "n");
    if (count == 0)
        return SPY_OCI_OK;
    size_t len;
    const char *n = spy_oci_query_get(q, "n", &len);
    if (count > 1 || !parse_n(n, len, &out->n)) {
        out->n = 0;
        return SPY_OCI_PAGINATION_NUMBER_INVALID;
    }
    out->n_given = true;
    return SPY_OCI_OK;
}

/* string_array: a JSON array of the strings, NULL on invalid UTF-8 or no
 * memory (*invalid tells which). */
static json_t *string_array(const char *const *items, size_t count, bool *invalid)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < count; i++) {
        json_t *s = json_string(items[i]);
        *invalid = s == NULL && items[i] != NULL;
        if (json_array_append_new(arr, s) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

/* dump: serialises root compactly into *body, consuming root. */
static int dump(json_t *root, bool invalid, char **body, size_t *len)
{
    char *text = root != NULL ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (text == NULL) {
        if (invalid)
            return SPY_EINVAL;
        spy_error("oci: out of memory building a listing body");
        return SPY_ENOMEM;
    }
    *body = text;
    *len = strlen(text);
    return SPY_OK;
}

/* listing: {"<key0>":<value0>?,"<key>":[items]}: the name member is added
 * first when name is not NULL. */
static int listing(const char *name, const char *key, const char *const *items, size_t count,
                   char **body, size_t *len)
{
    *body = NULL;
    *len = 0;
    bool invalid = false;
    json_t *root = json_object();
    if (root != NULL && name != NULL) {
        json_t *s = json_string(name);
        invalid = s == NULL;
        if (json_object_set_new(root, "name", s) != 0) {
            json_decref(root);
            root = NULL;
        }
    }
    if (root != NULL && json_object_set_new(root, key, string_array(items, count, &invalid)) != 0) {
        json_decref(root);
        root = NULL;
    }
    return dump(root, invalid, body, len);
}

int spy_oci_tags_json(const char *name, const char *const *tags, size_t count, char **body,
                      size_t *len)
{
    return listing(name, "tags", tags, count, body, len);
}

int spy_oci_catalog_json(const char *const *repos, size_t count, char **body, size_t *len)
{
    return listing(NULL, "repositories", repos, count, body, len);
}

/* is_unreserved: RFC 3986 unreserved characters, never escaped. */
static bool is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* append_escaped: appends s percent-encoded (keeping '/' if keep_slash) at
 * buf[*n]; false when it does not fit. */
static bool append_escaped(char *buf, size_t cap, size_t *n, const char *s, bool keep_slash)
{
    static const char hexdigits[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        bool plain = is_unreserved(*p) || (keep_slash && *p == '/');
        size_t need = plain ? 1 : 3;
        if (*n + need >= cap)
            return false;
        if (plain) {
            buf[(*n)++] = (char)*p;
        } else {
            buf[(*n)++] = '%';
            buf[(*n)++] = hexdigits[*p >> 4];
            buf[(*n)++] = hexdigits[*p & 0xF];
        }
    }
    buf[*n] = '\0';
    return true;
}

/* append_text: appends a literal at buf[*n]; false when it does not fit. */
static bool append_text(char *buf, size_t cap, size_t *n, const char *s)
{
    size_t len = strlen(s);
    if (*n + len >= cap)
        return false;
    memcpy(buf + *n, s, len + 1);
    *n += len;
    return true;
}

/* next_link: "<prefix?n=N&last=X>; rel=\"next\"" where prefix is "/v2/" + name +
 * suffix; name NULL for the catalog. */
static int next_link(char *buf, size_t cap, const char *name, const char *suffix, uint32_t n,
                     const char *last)
{
    char num[16];
    size_t used = 0;
    snprintf(num, sizeof(num), "%u", (unsigned)n);
    bool ok = cap > 0 && append_text(buf, cap, &used, "</v2/") &&
              (name == NULL || append_escaped(buf, cap, &used, name, true)) &&
              append_text(buf, cap, &used, suffix) && append_text(buf, cap, &used, num) &&
              append_text(buf, cap, &used, "&last=") &&
              append_escaped(buf, cap, &used, last, false) &&
              append_text(buf, cap, &used, ">; rel=\"next\"");
    if (!ok) {
        if (cap > 0)
            buf[0] = '\0';
        return SPY_ERANGE;
    }
    return (int)used;
}

int spy_oci_tags_link(char *buf, size_t cap, const char *name, uint32_t n, const char *last)
{
    return next_link(buf, cap, name, "/tags/list?n=", n, last);
}

int spy_oci_catalog_link(char *buf, size_t cap, uint32_t n, const char *last)
{
    return next_link(buf, cap, NULL, "_catalog?n=", n, last);
}
