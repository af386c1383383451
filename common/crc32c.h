/* crc32c.h - CRC-32C (Castagnoli), the checksum of records and frames.
 *
 * Uses the SSE4.2 crc32 instruction when the CPU has it (checked once, at
 * first use) and a slicing-by-8 table otherwise; both give identical results.
 * Thread-safe. Incremental use: crc = spy_crc32c(0, a, n); crc =
 * spy_crc32c(crc, b, m) equals spy_crc32c(0, ab, n + m). */
#ifndef SPY_CRC32C_H
#define SPY_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t spy_crc32c(uint32_t crc, const void *buf, size_t len);

/* The crc32c of A followed by B, from crc_a = crc32c(A), crc_b = crc32c(B)
 * and len_b = |B|, without touching the bytes: crc_a is shifted over len_b
 * zero bytes (a product modulo the polynomial; about log2(len_b) steps of
 * 32 bits each, so ~100 ns for a 64 KiB block) and xored with crc_b. Lets
 * a reader that already holds per-block crcs report the crc of a range
 * without a second pass over it. */
uint32_t spy_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

/* The portable path, exposed so tests can check both paths agree. */
uint32_t spy_crc32c_portable(uint32_t crc, const void *buf, size_t len);

#endif
