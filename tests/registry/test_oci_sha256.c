/* test_oci_sha256: the resumable SHA-256 gives EVP's exact digest whether or
 * not its state went through export/import: at every split point of a small
 * buffer (and with a second split), over large random data with random
 * chunking, and across the 2^32-bit boundary of OpenSSL's bit counter's low
 * word. Damaged states are refused. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/status.h"
#include "registry/oci_sha256.h"

/* xorshift: deterministic test data, reproducible from the seed. */
static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void fill(uint8_t *buf, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)xorshift(&seed);
}

/* evp: the reference digest. */
static void evp(const uint8_t *data, size_t len, struct spy_oci_digest *out)
{
    assert_int_equal(spy_oci_digest_buffer(SPY_OCI_SHA256, data, len, out), SPY_OK);
}

/* resume: a fresh hasher restored from 'from's exported state. */
static void resume(const struct spy_oci_sha256 *from, struct spy_oci_sha256 *to)
{
    uint8_t state[SPY_OCI_SHA256_STATE_SIZE];
    spy_oci_sha256_export(from, state);
    memset(to, 0xA5, sizeof(*to)); /* nothing may survive from before */
    assert_int_equal(spy_oci_sha256_import(to, state, sizeof(state)), SPY_OK);
}

static void test_every_split_point(void **state)
{
    (void)state;
    uint8_t data[300];
    fill(data, sizeof(data), 1);
    for (size_t len = 0; len <= sizeof(data); len += len < 140 ? 1 : 37) {
        struct spy_oci_digest want;
        evp(data, len, &want);
        for (size_t cut = 0; cut <= len; cut++) {
            struct spy_oci_sha256 a, b;
            spy_oci_sha256_init(&a);
            spy_oci_sha256_update(&a, data, cut);
            resume(&a, &b);
            assert_int_equal(spy_oci_sha256_length(&b), cut);
            spy_oci_sha256_update(&b, data + cut, len - cut);
            struct spy_oci_digest got;
            spy_oci_sha256_final(&b, &got);
            if (!spy_oci_digest_equal(&got, &want))
                fail_msg("len %zu cut %zu: digest differs from EVP", len, cut);
        }
    }
}

static void test_two_resumes(void **state)
{
    (void)state;
    uint8_t data[200];
    fill(data, sizeof(data), 2);
    struct spy_oci_digest want;
    evp(data, sizeof(data), &want);
    for (size_t c1 = 0; c1 <= sizeof(data); c1 += 3) {
        for (size_t c2 = c1; c2 <= sizeof(data); c2 += 7) {
            struct spy_oci_sha256 a, b, c;
            spy_oci_sha256_init(&a);
            spy_oci_sha256_update(&a, data, c1);
            resume(&a, &b);
            spy_oci_sha256_update(&b, data + c1, c2 - c1);
            resume(&b, &c);
            spy_oci_sha256_update(&c, data + c2, sizeof(data) - c2);
            struct spy_oci_digest got;
            spy_oci_sha256_final(&c, &got);
            assert_true(spy_oci_digest_equal(&got, &want));
        }
    }
}

static void test_large_random_chunks(void **state)
{
    (void)state;
    size_t len = (8u << 20) + 12345;
    uint8_t *data = malloc(len);
    assert_non_null(data);
    fill(data, len, 3);
    struct spy_oci_digest want, got;
    evp(data, len, &want);
    uint64_t seed = 99;
    struct spy_oci_sha256 s;
    spy_oci_sha256_init(&s);
    for (size_t off = 0; off < len;) {
        size_t n = (size_t)(xorshift(&seed) % (300u << 10)) + 1;
        if (n > len - off)
            n = len - off;
        spy_oci_sha256_update(&s, data + off, n);
        off += n;
        struct spy_oci_sha256 next;
        resume(&s, &next);
        s = next;
        assert_int_equal(spy_oci_sha256_length(&s), off);
    }
    spy_oci_sha256_final(&s, &got);
    assert_true(spy_oci_digest_equal(&got, &want));
    free(data);
}

static void test_bit_counter_carry(void **state)
{
    (void)state;
    /* 2^29 bytes = 2^32 bits: Nl wraps into Nh. Hash 600 MiB of one repeated
     * 1 MiB block with EVP and with a resume right after the carry. */
    size_t block = 1u << 20;
    uint8_t *data = malloc(block);
    assert_non_null(data);
    fill(data, block, 4);
    struct spy_oci_hasher ref;
    assert_int_equal(spy_oci_hasher_init(&ref, SPY_OCI_SHA256), SPY_OK);
    struct spy_oci_sha256 s;
    spy_oci_sha256_init(&s);
    for (int i = 0; i < 600; i++) {
        assert_int_equal(spy_oci_hasher_update(&ref, data, block), SPY_OK);
        spy_oci_sha256_update(&s, data, block);
        if (i == 512 || i == 511) {
            struct spy_oci_sha256 next;
            resume(&s, &next);
            s = next;
        }
    }
    spy_oci_sha256_update(&s, data, 77);
    assert_int_equal(spy_oci_hasher_update(&ref, data, 77), SPY_OK);
    assert_int_equal(spy_oci_sha256_length(&s), 600ull * block + 77);
    struct spy_oci_digest want, got;
    assert_int_equal(spy_oci_hasher_final(&ref, &want), SPY_OK);
    spy_oci_sha256_final(&s, &got);
    assert_true(spy_oci_digest_equal(&got, &want));
    free(data);
}

static void test_state_layout(void **state)
{
    (void)state;
    struct spy_oci_sha256 s;
    spy_oci_sha256_init(&s);
    spy_oci_sha256_update(&s, "abc", 3);
    uint8_t st[SPY_OCI_SHA256_STATE_SIZE];
    spy_oci_sha256_export(&s, st);
    assert_int_equal(st[0], 1);             /* version */
    assert_int_equal(st[1], 3);             /* buffered */
    assert_int_equal(st[9], 3);             /* length, low byte */
    assert_int_equal(st[10], 0x6a);         /* h[0] = 0x6a09e667 */
    assert_memory_equal(st + 42, "abc", 3); /* partial block */
    assert_int_equal(st[45], 0);
}

static void test_damaged_states(void **state)
{
    (void)state;
    uint8_t data[100];
    fill(data, sizeof(data), 5);
    struct spy_oci_sha256 s, t;
    spy_oci_sha256_init(&s);
    spy_oci_sha256_update(&s, data, sizeof(data));
    uint8_t st[SPY_OCI_SHA256_STATE_SIZE];
    spy_oci_sha256_export(&s, st);
    assert_int_equal(spy_oci_sha256_import(&t, st, sizeof(st) - 1), SPY_ECORRUPT);
    /* every single-bit flip is caught (the crc covers all other bytes) */
    for (size_t i = 0; i < sizeof(st); i++) {
        for (int bit = 0; bit < 8; bit++) {
            st[i] ^= (uint8_t)(1 << bit);
            if (spy_oci_sha256_import(&t, st, sizeof(st)) != SPY_ECORRUPT)
                fail_msg("flip of byte %zu bit %d accepted", i, bit);
            assert_int_equal(spy_oci_sha256_length(&t), 0);
            st[i] ^= (uint8_t)(1 << bit);
        }
    }
    assert_int_equal(spy_oci_sha256_import(&t, st, sizeof(st)), SPY_OK);
    /* a state with consistent crc but inconsistent fields is refused too */
    uint8_t bad[SPY_OCI_SHA256_STATE_SIZE];
    memcpy(bad, st, sizeof(bad));
    bad[1] = 5; /* buffered != length % 64 */
    uint32_t crc = spy_crc32c(0, bad, 106);
    bad[106] = (uint8_t)(crc >> 24);
    bad[107] = (uint8_t)(crc >> 16);
    bad[108] = (uint8_t)(crc >> 8);
    bad[109] = (uint8_t)crc;
    assert_int_equal(spy_oci_sha256_import(&t, bad, sizeof(bad)), SPY_ECORRUPT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_split_point),   cmocka_unit_test(test_two_resumes),
        cmocka_unit_test(test_large_random_chunks), cmocka_unit_test(test_bit_counter_carry),
        cmocka_unit_test(test_state_layout),        cmocka_unit_test(test_damaged_states),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
