#include "registry/oci_digest.h"

#include <string.h>

#include <openssl/evp.h>

#include "common/log.h"
#include "common/status.h"

struct alg_info {
    const char *name;
    size_t name_len;
    size_t raw_len;
};

/* Indexed by enum spy_oci_digest_alg. */
static const struct alg_info alg_table[] = {
    [SPY_OCI_DIGEST_UNSUPPORTED] = {NULL, 0, 0},
    [SPY_OCI_SHA256] = {"sha256", 6, 32},
    [SPY_OCI_SHA512] = {"sha512", 6, 64},
};

/* alg_supported: whether 'alg' is one we hash. */
static bool alg_supported(enum spy_oci_digest_alg alg)
{
    return alg == SPY_OCI_SHA256 || alg == SPY_OCI_SHA512;
}

/* is_lower_alnum: [a-z0-9], the characters of an algorithm component. */
static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* is_encoded_char: [a-zA-Z0-9=_-], the characters of the encoded part. */
static bool is_encoded_char(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '=' || c == '_' || c == '-';
}

/* algorithm_len: the length of the algorithm that s[0..len) starts with per
 * the grammar (components joined by single separators) when it is followed
 * by ':', or 0 when s does not start with "algorithm:". */
static size_t algorithm_len(const char *s, size_t len)
{
    size_t i = 0;
    for (;;) {
        size_t start = i;
        while (i < len && is_lower_alnum(s[i]))
            i++;
        if (i == start || i == len)
            return 0;
        if (s[i] == ':')
            return i;
        if (s[i] != '+' && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return 0;
        i++;
    }
}

bool spy_oci_digest_grammar_valid(const char *s, size_t len)
{
    if (len > SPY_OCI_DIGEST_TEXT_MAX)
        return false;
    size_t alg_len = algorithm_len(s, len);
    if (alg_len == 0 || alg_len + 1 == len)
        return false;
    for (size_t i = alg_len + 1; i < len; i++)
        if (!is_encoded_char(s[i]))
            return false;
    return true;
}

/* hex_value: the value of a lowercase hex digit, or -1. */
static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

enum spy_oci_digest_alg spy_oci_digest_alg_from_name(const char *s, size_t len)
{
    for (int alg = SPY_OCI_SHA256; alg <= SPY_OCI_SHA512; alg++)
        if (len == alg_table[alg].name_len && memcmp(s, alg_table[alg].name, len) == 0)
            return (enum spy_oci_digest_alg)alg;
    return SPY_OCI_DIGEST_UNSUPPORTED;
}

const char *spy_oci_digest_alg_name(enum spy_oci_digest_alg alg)
{
    return alg_supported(alg) ? alg_table[alg].name : NULL;
}

enum spy_oci_code spy_oci_digest_parse(const char *s, size_t len, struct spy_oci_digest *out)
{
    memset(out, 0, sizeof(*out));
    if (!spy_oci_digest_grammar_valid(s, len))
        return SPY_OCI_DIGEST_INVALID;
    size_t alg_len = algorithm_len(s, len);
    enum spy_oci_digest_alg alg = spy_oci_digest_alg_from_name(s, alg_len);
    if (alg == SPY_OCI_DIGEST_UNSUPPORTED)
        return SPY_OCI_UNSUPPORTED;
    const char *hex = s + alg_len + 1;
    size_t raw_len = alg_table[alg].raw_len;
    if (len - alg_len - 1 != raw_len * 2)
        return SPY_OCI_DIGEST_INVALID;
    for (size_t i = 0; i < raw_len; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            memset(out, 0, sizeof(*out));
            return SPY_OCI_DIGEST_INVALID;
        }
        out->raw[i] = (uint8_t)(hi << 4 | lo);
    }
    out->alg = alg;
    out->len = raw_len;
    return SPY_OCI_OK;
}

int spy_oci_digest_format(const struct spy_oci_digest *d, char *out)
{
    static const char hexdigits[] = "0123456789abcdef";
    out[0] = '\0';
    if (!alg_supported(d->alg) || d->len != alg_table[d->alg].raw_len)
        return SPY_EINVAL;
    size_t n = alg_table[d->alg].name_len;
    memcpy(out, alg_table[d->alg].name, n);
    out[n++] = ':';
    for (size_t i = 0; i < d->len; i++) {
        out[n++] = hexdigits[d->raw[i] >> 4];
        out[n++] = hexdigits[d->raw[i] & 0xF];
    }
    out[n] = '\0';
    return (int)n;
}

bool spy_oci_digest_equal(const struct spy_oci_digest *a, const struct spy_oci_digest *b)
{
    return a->alg == b->alg && a->len == b->len && memcmp(a->raw, b->raw, a->len) == 0;
}

/* evp_md: the OpenSSL digest of a supported algorithm. */
static const EVP_MD *evp_md(enum spy_oci_digest_alg alg)
{
    return alg == SPY_OCI_SHA256 ? EVP_sha256() : EVP_sha512();
}

int spy_oci_hasher_init(struct spy_oci_hasher *h, enum spy_oci_digest_alg alg)
{
    h->ctx = NULL;
    h->alg = alg;
    if (!alg_supported(alg))
        return SPY_EINVAL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, evp_md(alg), NULL) != 1) {
        spy_error("oci: cannot start a %s hash in OpenSSL", alg_table[alg].name);
        EVP_MD_CTX_free(ctx);
        return SPY_ENOMEM;
    }
    h->ctx = ctx;
    return SPY_OK;
}

int spy_oci_hasher_update(struct spy_oci_hasher *h, const void *data, size_t len)
{
    if (h->ctx == NULL || EVP_DigestUpdate(h->ctx, data, len) != 1) {
        spy_error("oci: hash update failed (hasher %s)", h->ctx == NULL ? "not started" : "ok");
        return SPY_EINVAL;
    }
    return SPY_OK;
}

int spy_oci_hasher_final(struct spy_oci_hasher *h, struct spy_oci_digest *out)
{
    memset(out, 0, sizeof(*out));
    unsigned int n = 0;
    if (h->ctx == NULL || EVP_DigestFinal_ex(h->ctx, out->raw, &n) != 1 ||
        n != alg_table[h->alg].raw_len) {
        spy_error("oci: hash final failed");
        spy_oci_hasher_release(h);
        memset(out, 0, sizeof(*out));
        return SPY_EINVAL;
    }
    out->alg = h->alg;
    out->len = n;
    spy_oci_hasher_release(h);
    return SPY_OK;
}

void spy_oci_hasher_release(struct spy_oci_hasher *h)
{
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
}

int spy_oci_digest_buffer(enum spy_oci_digest_alg alg, const void *data, size_t len,
                          struct spy_oci_digest *out)
{
    struct spy_oci_hasher h;
    memset(out, 0, sizeof(*out));
    int rc = spy_oci_hasher_init(&h, alg);
    if (rc == SPY_OK)
        rc = spy_oci_hasher_update(&h, data, len);
    if (rc == SPY_OK)
        return spy_oci_hasher_final(&h, out);
    spy_oci_hasher_release(&h);
    return rc;
}
