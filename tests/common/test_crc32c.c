/* test_crc32c: known CRC-32C vectors, incremental use, and agreement of the
 * hardware and portable paths on every length and alignment. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"

static void test_known_vectors(void **state)
{
    (void)state;
    /* RFC 3720 (iSCSI) appendix B.4 and the classic check value. */
    assert_int_equal(spy_crc32c(0, "123456789", 9), 0xE3069283u);
    uint8_t zeros[32] = {0};
    assert_int_equal(spy_crc32c(0, zeros, 32), 0x8A9136AAu);
    uint8_t ones[32];
    memset(ones, 0xff, sizeof(ones));
    assert_int_equal(spy_crc32c(0, ones, 32), 0x62A8AB43u);
    uint8_t inc[32];
    for (int i = 0; i < 32; i++)
        inc[i] = (uint8_t)i;
    assert_int_equal(spy_crc32c(0, inc, 32), 0x46DD794Eu);
    assert_int_equal(spy_crc32c(0, "", 0), 0);
}

static void test_incremental_equals_whole(void **state)
{
    (void)state;
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    uint32_t whole = spy_crc32c(0, buf, sizeof(buf));
    for (size_t cut = 0; cut <= sizeof(buf); cut += 37) {
        uint32_t c = spy_crc32c(0, buf, cut);
        c = spy_crc32c(c, buf + cut, sizeof(buf) - cut);
        assert_int_equal(c, whole);
    }
}

static void test_paths_agree(void **state)
{
    (void)state;
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 7919 >> 3);
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len + off <= sizeof(buf); len += 13)
            assert_int_equal(spy_crc32c(5, buf + off, len), spy_crc32c_portable(5, buf + off, len));
}

static void test_detects_single_bit_flip(void **state)
{
    (void)state;
    uint8_t buf[64];
    memset(buf, 0x5a, sizeof(buf));
    uint32_t base = spy_crc32c(0, buf, sizeof(buf));
    for (size_t bit = 0; bit < sizeof(buf) * 8; bit++) {
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_not_equal(spy_crc32c(0, buf, sizeof(buf)), base);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
}

/* random_bytes: n xorshift bytes from seed, malloc'd. */
static uint8_t *random_bytes(size_t n, uint64_t seed)
{
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    for (size_t i = 0; i < n; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        buf[i] = (uint8_t)(seed >> 24);
    }
    return buf;
}

/* The hardware path interleaves three streams over 8 KiB and 256 B blocks
 * and joins them with precomputed shift tables: check it against the
 * portable path across those boundaries, at every alignment. */
static void test_large_buffers_agree(void **state)
{
    (void)state;
    size_t cap = 3 * 8192 * 3 + 1000;
    uint8_t *buf = random_bytes(cap, 88172645463325252ull);
    const size_t lens[] = {767,   768,   769,   3 * 256 - 8, 24575, 24576,  24577,
                           24583, 49152, 73727, 73728,       73735, cap - 9};
    for (size_t off = 0; off < 9; off++)
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
            assert_int_equal(spy_crc32c(0x1234, buf + off, lens[i]),
                             spy_crc32c_portable(0x1234, buf + off, lens[i]));
    /* and incremental use across a long-block boundary */
    uint32_t whole = spy_crc32c(0, buf, 73728);
    assert_int_equal(spy_crc32c(spy_crc32c(0, buf, 30000), buf + 30000, 43728), whole);
    free(buf);
}

/* combine(crc(A), crc(B), |B|) is crc(A B) at every split of a buffer that
 * crosses the hardware path's block sizes, and it is associative for lengths
 * too long to checksum here (a 5 GiB B). */
static void test_combine(void **state)
{
    (void)state;
    size_t cap = 200000;
    uint8_t *buf = random_bytes(cap, 0x9E3779B97F4A7C15ull);
    const size_t lens[] = {0, 1, 7, 8, 255, 4096, 65536, 65537, 131072, cap};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t len = lens[i];
        uint32_t whole = spy_crc32c(0, buf, len);
        const size_t splits[] = {0, 1, len / 3, len / 2, len > 0 ? len - 1 : 0, len};
        for (size_t j = 0; j < sizeof(splits) / sizeof(splits[0]); j++) {
            size_t a = splits[j];
            if (a > len)
                continue;
            uint32_t ca = spy_crc32c(0, buf, a), cb = spy_crc32c(0, buf + a, len - a);
            assert_int_equal(spy_crc32c_combine(ca, cb, len - a), whole);
        }
    }
    /* many 64 KiB blocks joined one by one, as a GET's END crc is built */
    uint32_t joined = 0;
    size_t off = 0;
    while (off < cap) {
        size_t n = cap - off < 65536 ? cap - off : 65536;
        joined = spy_crc32c_combine(joined, spy_crc32c(0, buf + off, n), n);
        off += n;
    }
    assert_int_equal(joined, spy_crc32c(0, buf, cap));
    /* associativity with a 5 GiB middle part */
    uint32_t a = 0x12345678, b = 0x9abcdef0, c = 0x0fedcba9;
    uint64_t lb = 5ull << 30, lc = 12345;
    assert_int_equal(spy_crc32c_combine(spy_crc32c_combine(a, b, lb), c, lc),
                     spy_crc32c_combine(a, spy_crc32c_combine(b, c, lc), lb + lc));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_vectors),
        cmocka_unit_test(test_incremental_equals_whole),
        cmocka_unit_test(test_paths_agree),
        cmocka_unit_test(test_large_buffers_agree),
        cmocka_unit_test(test_detects_single_bit_flip),
        cmocka_unit_test(test_combine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
