/* oci_sha256.h - a SHA-256 whose running state can be saved and resumed.
 *
 * A blob upload spans many PATCH requests, possibly served by different
 * imageservers; between requests the running hash is kept in MySQL. This
 * hasher exports its state as SPY_OCI_SHA256_STATE_SIZE bytes in a fixed,
 * versioned, checksummed layout (below), not as a memory image, so any
 * imageserver build can resume it. Results are byte-identical to EVP's
 * sha256 (tests/registry/test_oci_sha256.c checks every split point).
 *
 * It uses OpenSSL's SHA256_CTX, whose block function is the same assembly
 * (SHA-NI/AVX2) EVP uses, so resuming costs nothing in throughput. EVP
 * contexts cannot be serialised in OpenSSL 3, which is why the deprecated
 * low-level API is used here (and only here, in oci_sha256.c).
 *
 * Exported state, big-endian:
 *   00     version   1
 *   01     buffered  bytes of the partial block, 0..63 (= length % 64)
 *   02-09  length    total bytes hashed so far
 *   10-41  h[0..7]   the chaining value, eight u32
 *   42-105 block     the partial block: 'buffered' bytes, then zeros
 *   106-109 crc32c   of bytes 00-105
 *
 * Pure and reentrant; one struct is used by one thread at a time. */
#ifndef SPY_OCI_SHA256_H
#define SPY_OCI_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/sha.h>

#include "registry/oci_digest.h"

#define SPY_OCI_SHA256_STATE_SIZE 110

/* Plain data: copying the struct copies the hash state. No cleanup needed. */
struct spy_oci_sha256 {
    SHA256_CTX ctx;
};

/* Starts an empty hash. */
void spy_oci_sha256_init(struct spy_oci_sha256 *s);

/* Feeds len bytes. */
void spy_oci_sha256_update(struct spy_oci_sha256 *s, const void *data, size_t len);

/* Bytes fed so far (the upload's offset, to cross-check its stored size). */
uint64_t spy_oci_sha256_length(const struct spy_oci_sha256 *s);

/* Writes the digest of everything fed into *out. The state is consumed:
 * init (or import) before using it again. */
void spy_oci_sha256_final(struct spy_oci_sha256 *s, struct spy_oci_digest *out);

/* Serialises the running state into out (the layout above). The hash can
 * keep going afterwards. */
void spy_oci_sha256_export(const struct spy_oci_sha256 *s, uint8_t out[SPY_OCI_SHA256_STATE_SIZE]);

/* Restores a state written by spy_oci_sha256_export. Returns SPY_OK, or
 * SPY_ECORRUPT (wrong size, version, checksum, or inconsistent fields), in
 * which case *s is an empty hash and the upload cannot be resumed. */
int spy_oci_sha256_import(struct spy_oci_sha256 *s, const uint8_t *state, size_t len);

#endif
