#include "common/crc32c.h"

#include <pthread.h>
#include <string.h>

#define CRC32C_POLY 0x82F63B78u /* reflected Castagnoli polynomial */

static uint32_t crc_table[8][256];
static uint32_t x_pow2n[64]; /* x^(2^n) modulo the polynomial, for combine */
static int have_sse42;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__)
/* The hardware path runs three independent crc32 streams over adjacent
 * blocks (the instruction has a latency of 3 cycles but a throughput of 1,
 * so one dependent chain uses a third of it) and joins them with "shift by
 * n zero bytes" operators precomputed as tables: crc(A B) = shift(crc(A),
 * |B|) ^ crc0(B). This is Mark Adler's well-known construction. */
#define CRC_LONG  8192
#define CRC_SHORT 256

static uint32_t crc_long[4][256];  /* shift a crc by CRC_LONG zero bytes */
static uint32_t crc_short[4][256]; /* shift a crc by CRC_SHORT zero bytes */

/* gf2_times: multiplies the 32x32 GF(2) matrix mat by vec. */
static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
    uint32_t sum = 0;
    while (vec) {
        if (vec & 1)
            sum ^= *mat;
        vec >>= 1;
        mat++;
    }
    return sum;
}

static void gf2_square(uint32_t *square, const uint32_t *mat)
{
    for (int n = 0; n < 32; n++)
        square[n] = gf2_times(mat, mat[n]);
}

/* zeros_op: the operator that appends len zero bytes (a power of two) to a
 * crc: start from one zero bit and square until len bytes are covered. */
static void zeros_op(uint32_t *even, size_t len)
{
    uint32_t odd[32];
    odd[0] = CRC32C_POLY;
    uint32_t row = 1;
    for (int n = 1; n < 32; n++) {
        odd[n] = row;
        row <<= 1;
    }
    gf2_square(even, odd); /* 2 zero bits */
    gf2_square(odd, even); /* 4 zero bits */
    do {
        gf2_square(even, odd); /* 1, 4, 16, ... bytes */
        len >>= 1;
        if (len == 0)
            return;
        gf2_square(odd, even); /* 2, 8, 32, ... bytes */
        len >>= 1;
    } while (len);
    memcpy(even, odd, sizeof(odd));
}

static void zeros_table(uint32_t zeros[4][256], size_t len)
{
    uint32_t op[32];
    zeros_op(op, len);
    for (uint32_t n = 0; n < 256; n++)
        for (int b = 0; b < 4; b++)
            zeros[b][n] = gf2_times(op, n << (8 * b));
}

static uint32_t crc_shift(uint32_t zeros[4][256], uint32_t crc)
{
    return zeros[0][crc & 0xff] ^ zeros[1][(crc >> 8) & 0xff] ^ zeros[2][(crc >> 16) & 0xff] ^
           zeros[3][crc >> 24];
}

static uint64_t load64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

/* crc_streams: three streams of 'block' bytes each, as long as 3 blocks
 * remain; returns the register and advances *p / *len. */
__attribute__((target("sse4.2"))) static uint64_t
crc_streams(uint64_t c0, const uint8_t **p, size_t *len, size_t block, uint32_t zeros[4][256])
{
    const uint8_t *next = *p;
    while (*len >= 3 * block) {
        uint64_t c1 = 0, c2 = 0;
        const uint8_t *end = next + block;
        do {
            c0 = __builtin_ia32_crc32di(c0, load64(next));
            c1 = __builtin_ia32_crc32di(c1, load64(next + block));
            c2 = __builtin_ia32_crc32di(c2, load64(next + 2 * block));
            next += 8;
        } while (next < end);
        c0 = crc_shift(zeros, (uint32_t)c0) ^ (uint32_t)c1;
        c0 = crc_shift(zeros, (uint32_t)c0) ^ (uint32_t)c2;
        next += 2 * block;
        *len -= 3 * block;
    }
    *p = next;
    return c0;
}

__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t crc, const void *buf,
                                                            size_t len)
{
    const uint8_t *p = buf;
    uint64_t c = (uint32_t)~crc;
    c = crc_streams(c, &p, &len, CRC_LONG, crc_long);
    c = crc_streams(c, &p, &len, CRC_SHORT, crc_short);
    while (len >= 8) {
        c = __builtin_ia32_crc32di(c, load64(p));
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}
#endif

/* poly_mul: a * b modulo the polynomial, both in the reflected
 * representation (bit 31 is the coefficient of x^0). Shift-and-add: for
 * each term x^k of a, add b * x^k, stepping b by one power of x at a time. */
static uint32_t poly_mul(uint32_t a, uint32_t b)
{
    uint32_t product = 0;
    for (uint32_t term = 1u << 31; term != 0 && a != 0; term >>= 1) {
        if (a & term) {
            product ^= b;
            a ^= term;
        }
        b = (b & 1) ? (b >> 1) ^ CRC32C_POLY : b >> 1;
    }
    return product;
}

/* x_pow_8n: x^(8 * n) modulo the polynomial, the operator that moves a crc
 * over n zero bytes, as a product of the x^(2^k) table's entries. */
static uint32_t x_pow_8n(uint64_t n)
{
    uint32_t result = 1u << 31; /* x^0 */
    for (unsigned k = 3; n != 0; n >>= 1, k++)
        if (n & 1)
            result = poly_mul(x_pow2n[k & 63], result);
    return result;
}

/* crc_init: builds the slicing-by-8 tables and probes the CPU, once. */
static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
    x_pow2n[0] = 1u << 30; /* x^1 */
    for (int n = 1; n < 64; n++)
        x_pow2n[n] = poly_mul(x_pow2n[n - 1], x_pow2n[n - 1]);
#if defined(__x86_64__)
    __builtin_cpu_init();
    have_sse42 = __builtin_cpu_supports("sse4.2");
    zeros_table(crc_long, CRC_LONG);
    zeros_table(crc_short, CRC_SHORT);
#endif
}

uint32_t spy_crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = buf;
    crc = ~crc;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= crc; /* little-endian hosts; test_crc32c checks both paths agree */
        crc = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
              crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
              crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
              crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

uint32_t spy_crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc_init);
#if defined(__x86_64__)
    if (have_sse42)
        return crc_sse42(crc, buf, len);
#endif
    return spy_crc32c_portable(crc, buf, len);
}

/* spy_crc32c_combine: see crc32c.h. The register is linear: with r(A) the
 * register after A from an all-ones start and r0(B) after B from zero,
 * r(A B) = shift(r(A), |B|) ^ r0(B). The final inversions cancel:
 * shift(~r(A)) ^ ~(shift(~0) ^ r0(B)) = ~(shift(r(A)) ^ r0(B)) = crc(A B). */
uint32_t spy_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
    pthread_once(&crc_once, crc_init);
    if (len_b == 0)
        return crc_a;
    return poly_mul(x_pow_8n(len_b), crc_a) ^ crc_b;
}
