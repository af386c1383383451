/* SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP, but
 * an EVP context's state cannot be read or restored, and a resumable upload
 * needs exactly that (see oci_sha256.h). The suppression is limited to this
 * file, before any OpenSSL header is seen. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "registry/oci_sha256.h"

#include <string.h>

#include "common/crc32c.h"
#include "common/status.h"

#define STATE_VERSION 1
#define BLOCK_SIZE    64

_Static_assert(sizeof(((SHA256_CTX *)0)->data) == BLOCK_SIZE, "SHA-256 partial block buffer");
_Static_assert(sizeof(((SHA256_CTX *)0)->h) == 32, "SHA-256 chaining value");

/* put_be32/put_be64/get_be32/get_be64: the state's big-endian integers. */
static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

void spy_oci_sha256_init(struct spy_oci_sha256 *s)
{
    SHA256_Init(&s->ctx);
}

void spy_oci_sha256_update(struct spy_oci_sha256 *s, const void *data, size_t len)
{
    SHA256_Update(&s->ctx, data, len);
}

/* OpenSSL counts bits in the pair Nh:Nl (md32_common.h). */
uint64_t spy_oci_sha256_length(const struct spy_oci_sha256 *s)
{
    return ((uint64_t)s->ctx.Nh << 32 | s->ctx.Nl) >> 3;
}

void spy_oci_sha256_final(struct spy_oci_sha256 *s, struct spy_oci_digest *out)
{
    memset(out, 0, sizeof(*out));
    SHA256_Final(out->raw, &s->ctx);
    out->alg = SPY_OCI_SHA256;
    out->len = SHA256_DIGEST_LENGTH;
}

/* The partial block lives in ctx.data as bytes in message order: OpenSSL
 * memcpy()s input there and only reinterprets it when a block is full. */
void spy_oci_sha256_export(const struct spy_oci_sha256 *s, uint8_t out[SPY_OCI_SHA256_STATE_SIZE])
{
    memset(out, 0, SPY_OCI_SHA256_STATE_SIZE);
    unsigned buffered = s->ctx.num;
    out[0] = STATE_VERSION;
    out[1] = (uint8_t)buffered;
    put_be64(out + 2, spy_oci_sha256_length(s));
    for (int i = 0; i < 8; i++)
        put_be32(out + 10 + 4 * i, s->ctx.h[i]);
    memcpy(out + 42, s->ctx.data, buffered);
    put_be32(out + 106, spy_crc32c(0, out, 106));
}

/* state_consistent: the checks import makes before trusting a state. */
static int state_consistent(const uint8_t *state, size_t len)
{
    if (len != SPY_OCI_SHA256_STATE_SIZE || state[0] != STATE_VERSION)
        return 0;
    if (get_be32(state + 106) != spy_crc32c(0, state, 106))
        return 0;
    uint64_t length = get_be64(state + 2);
    unsigned buffered = state[1];
    if (buffered >= BLOCK_SIZE || buffered != length % BLOCK_SIZE || length >> 61 != 0)
        return 0;
    for (unsigned i = buffered; i < BLOCK_SIZE; i++)
        if (state[42 + i] != 0)
            return 0;
    return 1;
}

int spy_oci_sha256_import(struct spy_oci_sha256 *s, const uint8_t *state, size_t len)
{
    SHA256_Init(&s->ctx);
    if (!state_consistent(state, len))
        return SPY_ECORRUPT;
    uint64_t bits = get_be64(state + 2) << 3;
    for (int i = 0; i < 8; i++)
        s->ctx.h[i] = get_be32(state + 10 + 4 * i);
    s->ctx.Nl = (SHA_LONG)(bits & 0xffffffffu);
    s->ctx.Nh = (SHA_LONG)(bits >> 32);
    s->ctx.num = state[1];
    memcpy(s->ctx.data, state + 42, BLOCK_SIZE);
    return SPY_OK;
}
