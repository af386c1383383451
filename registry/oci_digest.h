/* oci_digest.h - content digests: parsing, formatting, hashing.
 *
 * Grammar (OCI image-spec, descriptor.md "Digests"):
 *   digest              ::= algorithm ":" encoded
 *   algorithm           ::= component (separator component)*
 *   component           ::= [a-z0-9]+
 *   separator           ::= [+._-]
 *   encoded             ::= [a-zA-Z0-9=_-]+
 * Registered algorithms we support: sha256 (encoded exactly 64 of [a-f0-9])
 * and sha512 (128 of [a-f0-9]); uppercase hex is invalid for both. Any other
 * algorithm that fits the grammar is "unsupported", a result distinct from
 * "invalid" (image-spec: implementations SHOULD let such digests pass
 * validation; the registry can never hold such content). Our own limit: a
 * digest string is at most SPY_OCI_DIGEST_TEXT_MAX characters.
 *
 * Pure and reentrant. The hasher wraps an OpenSSL EVP context: one hasher is
 * used by one thread at a time; distinct hashers are independent. The
 * resumable SHA-256 whose state can be stored between requests is in
 * oci_sha256.h. */
#ifndef SPY_OCI_DIGEST_H
#define SPY_OCI_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/oci_errors.h"

#define SPY_OCI_DIGEST_TEXT_MAX 255 /* longest digest string accepted at all */
#define SPY_OCI_DIGEST_RAW_MAX  64  /* sha512 */
#define SPY_OCI_DIGEST_STR_MAX  135 /* "sha512:" + 128 hex, without the NUL */

enum spy_oci_digest_alg {
    SPY_OCI_DIGEST_UNSUPPORTED = 0, /* fits the grammar, not an algorithm we hash */
    SPY_OCI_SHA256 = 1,
    SPY_OCI_SHA512 = 2,
};

/* A parsed digest of a supported algorithm: the raw hash bytes. */
struct spy_oci_digest {
    enum spy_oci_digest_alg alg;
    size_t len; /* bytes used in raw: 32 or 64 */
    uint8_t raw[SPY_OCI_DIGEST_RAW_MAX];
};

/* Whether s[0..len) fits the generic digest grammar above (any algorithm),
 * within SPY_OCI_DIGEST_TEXT_MAX. */
bool spy_oci_digest_grammar_valid(const char *s, size_t len);

/* Parses s[0..len) (no NUL needed). Returns SPY_OCI_OK with *out filled for
 * sha256/sha512; SPY_OCI_UNSUPPORTED when the string fits the grammar but the
 * algorithm is another one (out->alg = SPY_OCI_DIGEST_UNSUPPORTED, len 0);
 * SPY_OCI_DIGEST_INVALID otherwise, including a sha256/sha512 digest whose
 * encoded part has the wrong length or uppercase hex. */
enum spy_oci_code spy_oci_digest_parse(const char *s, size_t len, struct spy_oci_digest *out);

/* Writes "alg:hex" (lowercase) and a NUL into out, which holds at least
 * SPY_OCI_DIGEST_STR_MAX + 1 bytes. Returns the length, or SPY_EINVAL for a
 * digest without a supported algorithm (out then holds ""). */
int spy_oci_digest_format(const struct spy_oci_digest *d, char *out);

/* Whether two parsed digests are the same algorithm and bytes. */
bool spy_oci_digest_equal(const struct spy_oci_digest *a, const struct spy_oci_digest *b);

/* The algorithm's name ("sha256"), or NULL for SPY_OCI_DIGEST_UNSUPPORTED. */
const char *spy_oci_digest_alg_name(enum spy_oci_digest_alg alg);

/* Maps an algorithm name (the registry's ?digest-algorithm= parameter) to the
 * enum: SPY_OCI_DIGEST_UNSUPPORTED if it is not one we hash. */
enum spy_oci_digest_alg spy_oci_digest_alg_from_name(const char *s, size_t len);

/* Incremental hashing over OpenSSL EVP. Lifecycle: init, update*, then final
 * or release. The struct may be zero-initialised; release is a no-op then. */
struct spy_oci_hasher {
    void *ctx; /* EVP_MD_CTX *, owned */
    enum spy_oci_digest_alg alg;
};

/* Starts a hash. Returns SPY_OK, SPY_EINVAL (algorithm not supported) or
 * SPY_ENOMEM (OpenSSL could not allocate; logged). On error nothing needs
 * releasing. */
int spy_oci_hasher_init(struct spy_oci_hasher *h, enum spy_oci_digest_alg alg);

/* Feeds len bytes. Returns SPY_OK, or SPY_EINVAL if OpenSSL fails (logged;
 * the hasher must then be released). */
int spy_oci_hasher_update(struct spy_oci_hasher *h, const void *data, size_t len);

/* Finishes the hash into *out and releases the context (also on error).
 * Returns SPY_OK or SPY_EINVAL (OpenSSL failed or the hasher was not started;
 * logged). */
int spy_oci_hasher_final(struct spy_oci_hasher *h, struct spy_oci_digest *out);

/* Abandons a hash and frees its context. Safe to call twice, after final,
 * and on a zeroed struct. */
void spy_oci_hasher_release(struct spy_oci_hasher *h);

/* The digest of one buffer: init + update + final. */
int spy_oci_digest_buffer(enum spy_oci_digest_alg alg, const void *data, size_t len,
                          struct spy_oci_digest *out);

#endif
