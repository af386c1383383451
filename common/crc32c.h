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

/* The portable path, exposed so tests can check both paths agree. */
uint32_t spy_crc32c_portable(uint32_t crc, const void *buf, size_t len);

#endif
