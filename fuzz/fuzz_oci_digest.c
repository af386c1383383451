/* fuzz_oci_digest: the digest parser against a POSIX regex of the image-spec
 * grammar (differential), exact format round trips, and the resumable
 * SHA-256: the input hashed with a state export/import at a split chosen by
 * the input must equal EVP's digest; the input's bytes imported as a state
 * must be refused or resume cleanly. */
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/status.h"
#include "registry/oci_digest.h"
#include "registry/oci_sha256.h"

static regex_t digest_re;

static void compile_oracle(void)
{
    static bool done;
    if (done)
        return;
    if (regcomp(&digest_re, "^[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$",
                REG_EXTENDED | REG_NOSUB) != 0)
        abort();
    done = true;
}

/* check_parse: grammar vs oracle, result classes, exact round trip. */
static void check_parse(const char *s, size_t len)
{
    char *z = strndup(s, len);
    bool oracle = strlen(z) == len && len <= SPY_OCI_DIGEST_TEXT_MAX &&
                  regexec(&digest_re, z, 0, NULL, 0) == 0;
    free(z);
    if (spy_oci_digest_grammar_valid(s, len) != oracle)
        abort();
    struct spy_oci_digest d;
    enum spy_oci_code rc = spy_oci_digest_parse(s, len, &d);
    if (!oracle && rc != SPY_OCI_DIGEST_INVALID)
        abort();
    if (rc == SPY_OCI_UNSUPPORTED && (d.alg != SPY_OCI_DIGEST_UNSUPPORTED || !oracle))
        abort();
    if (rc == SPY_OCI_OK) {
        char out[SPY_OCI_DIGEST_STR_MAX + 1];
        int n = spy_oci_digest_format(&d, out);
        if (n != (int)len || memcmp(out, s, len) != 0)
            abort();
    }
}

/* check_resume: export at a split point, import into a fresh hasher,
 * finish: the digest must be EVP's. */
static void check_resume(const uint8_t *data, size_t size)
{
    struct spy_oci_digest want, got;
    if (spy_oci_digest_buffer(SPY_OCI_SHA256, data, size, &want) != SPY_OK)
        abort();
    size_t cut = size == 0 ? 0 : data[0] % (size + 1);
    struct spy_oci_sha256 a, b;
    spy_oci_sha256_init(&a);
    spy_oci_sha256_update(&a, data, cut);
    uint8_t state[SPY_OCI_SHA256_STATE_SIZE];
    spy_oci_sha256_export(&a, state);
    if (spy_oci_sha256_import(&b, state, sizeof(state)) != SPY_OK)
        abort();
    spy_oci_sha256_update(&b, data + cut, size - cut);
    spy_oci_sha256_final(&b, &got);
    if (!spy_oci_digest_equal(&want, &got))
        abort();
}

/* check_import: arbitrary bytes as a stored state never crash; an accepted
 * one reports a consistent length and can be continued. */
static void check_import(const uint8_t *data, size_t size)
{
    struct spy_oci_sha256 s;
    int rc = spy_oci_sha256_import(&s, data, size);
    if (rc != SPY_OK && rc != SPY_ECORRUPT)
        abort();
    if (rc == SPY_ECORRUPT && spy_oci_sha256_length(&s) != 0)
        abort();
    /* the same bytes with a valid checksum reach the field checks */
    uint8_t state[SPY_OCI_SHA256_STATE_SIZE] = {0};
    memcpy(state, data, size < 106 ? size : 106);
    uint32_t crc = spy_crc32c(0, state, 106);
    for (int i = 0; i < 4; i++)
        state[106 + i] = (uint8_t)(crc >> (24 - 8 * i));
    rc = spy_oci_sha256_import(&s, state, sizeof(state));
    if (rc == SPY_OK && spy_oci_sha256_length(&s) % 64 != state[1])
        abort();
    if (rc == SPY_OK) {
        uint8_t again[SPY_OCI_SHA256_STATE_SIZE];
        spy_oci_sha256_export(&s, again); /* an accepted state exports unchanged */
        if (memcmp(again, state, sizeof(state)) != 0)
            abort();
    }
    struct spy_oci_digest d;
    spy_oci_sha256_update(&s, data, size);
    spy_oci_sha256_final(&s, &d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    compile_oracle();
    check_parse((const char *)data, size);
    check_resume(data, size);
    check_import(data, size);
    return 0;
}
