/* test_record: the record format on its own: encode/decode round trips,
 * that every damaged header byte and every misplaced or foreign record is
 * refused, and the block-crc table over empty, short and multi-block bodies. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "chunkserver/record.h"
#include "common/crc32c.h"
#include "common/status.h"

#define SALT       0x0123456789abcdefull
#define CHUNK_SIZE (64ull << 20)

/* make_record -- a PUT record of body_len bytes at 'offset' in 'out':
 * header, body, table. Returns the table length. */
static size_t make_record(uint8_t *out, uint64_t fid, uint64_t body_len, uint64_t offset,
                          uint64_t salt)
{
    uint8_t *body = out + SPY_RECORD_HDR;
    for (uint64_t i = 0; i < body_len; i++)
        body[i] = (uint8_t)(i * 7 + fid);
    uint8_t *table = body + body_len;
    struct spy_record_sum sum;
    spy_record_sum_init(&sum, table);
    spy_record_sum_update(&sum, body, body_len);
    spy_record_sum_finish(&sum);
    struct spy_record_hdr h = {
        .type = SPY_RECORD_PUT,
        .fid = fid,
        .body_len = body_len,
        .offset = offset,
        .timestamp = 1700000000,
    };
    spy_record_encode(&h, salt, table, out);
    return (size_t)spy_record_table_bytes(body_len);
}

/* valid_at -- the full check recovery applies: decode, then header crc. */
static int valid_at(const uint8_t *rec, uint64_t offset, uint64_t salt)
{
    struct spy_record_hdr h;
    if (spy_record_decode(rec, offset, CHUNK_SIZE, &h) != SPY_OK)
        return 0;
    const uint8_t *table = rec + SPY_RECORD_HDR + h.body_len;
    return spy_record_verify(salt, rec, table, (size_t)spy_record_table_bytes(h.body_len)) ==
           SPY_OK;
}

static void test_round_trip(void **state)
{
    (void)state;
    uint8_t *rec = calloc(1, 300000);
    assert_non_null(rec);
    uint64_t lens[] = {0, 1, 65535, 65536, 65537, 200000};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        make_record(rec, 42 + i, lens[i], 4096 + 8 * i, SALT);
        struct spy_record_hdr h;
        assert_int_equal(spy_record_decode(rec, 4096 + 8 * i, CHUNK_SIZE, &h), SPY_OK);
        assert_int_equal(h.magic, SPY_RECORD_MAGIC);
        assert_int_equal(h.version, SPY_RECORD_VERSION);
        assert_int_equal(h.type, SPY_RECORD_PUT);
        assert_int_equal(h.flags, 0);
        assert_int_equal(h.fid, 42 + i);
        assert_int_equal(h.body_len, lens[i]);
        assert_int_equal(h.offset, 4096 + 8 * i);
        assert_int_equal(h.timestamp, 1700000000);
        assert_true(valid_at(rec, 4096 + 8 * i, SALT));
    }
    /* A DEL tombstone: no body, no table. */
    struct spy_record_hdr del = {.type = SPY_RECORD_DEL, .fid = 9, .offset = 8192, .timestamp = 5};
    spy_record_encode(&del, SALT, NULL, rec);
    struct spy_record_hdr h;
    assert_int_equal(spy_record_decode(rec, 8192, CHUNK_SIZE, &h), SPY_OK);
    assert_int_equal(h.type, SPY_RECORD_DEL);
    assert_int_equal(h.fid, 9);
    assert_int_equal(spy_record_verify(SALT, rec, NULL, 0), SPY_OK);
    free(rec);
}

static void test_every_header_byte_flip_rejected(void **state)
{
    (void)state;
    /* The record sits in a whole chunk image, so a flipped length makes the
     * check read whatever the chunk holds there, as recovery would. */
    uint8_t *chunk = calloc(1, CHUNK_SIZE);
    assert_non_null(chunk);
    uint8_t *rec = chunk + 4096;
    make_record(rec, 77, 1000, 4096, SALT);
    assert_true(valid_at(rec, 4096, SALT));
    for (size_t byte = 0; byte < SPY_RECORD_HDR; byte++) {
        for (unsigned x = 1; x < 256; x++) {
            rec[byte] ^= (uint8_t)x;
            if (valid_at(rec, 4096, SALT))
                fail_msg("header byte %zu xor %u still validates", byte, x);
            rec[byte] ^= (uint8_t)x;
        }
    }
    /* The table is covered by the header crc too. */
    for (size_t byte = 0; byte < 4; byte++) {
        rec[SPY_RECORD_HDR + 1000 + byte] ^= 0x10;
        assert_false(valid_at(rec, 4096, SALT));
        rec[SPY_RECORD_HDR + 1000 + byte] ^= 0x10;
    }
    assert_true(valid_at(rec, 4096, SALT));
    free(chunk);
}

static void test_zeroed_space_never_validates(void **state)
{
    (void)state;
    uint8_t zeros[SPY_RECORD_HDR] = {0};
    assert_false(valid_at(zeros, 0, SALT));
    assert_false(valid_at(zeros, 0, 0));
    struct spy_record_hdr h;
    assert_int_equal(spy_record_decode(zeros, 0, CHUNK_SIZE, &h), SPY_ECORRUPT);
}

static void test_misplaced_or_foreign_record_rejected(void **state)
{
    (void)state;
    /* A record image stored inside some object's body, at another offset. */
    uint8_t rec[SPY_RECORD_HDR + 64 + 4];
    make_record(rec, 5, 64, 8192, SALT);
    assert_true(valid_at(rec, 8192, SALT));
    assert_false(valid_at(rec, 8200, SALT));
    assert_false(valid_at(rec, 4096, SALT));
    /* The same bytes from a chunk with another salt. */
    assert_false(valid_at(rec, 8192, SALT ^ 1));
    assert_false(valid_at(rec, 8192, 0));
    /* A record claiming to run past the end of the chunk. */
    make_record(rec, 5, 64, CHUNK_SIZE - 64, SALT);
    struct spy_record_hdr h;
    assert_int_equal(spy_record_decode(rec, CHUNK_SIZE - 64, CHUNK_SIZE, &h), SPY_ECORRUPT);
    /* A DEL with a body is malformed. */
    struct spy_record_hdr del = {.type = SPY_RECORD_DEL, .fid = 1, .body_len = 8, .offset = 4096};
    uint8_t table[4] = {0};
    spy_record_encode(&del, SALT, table, rec);
    assert_int_equal(spy_record_decode(rec, 4096, CHUNK_SIZE, &h), SPY_ECORRUPT);
}

static void test_table_over_body_shapes(void **state)
{
    (void)state;
    size_t max = 3 * SPY_STORE_BLOCK + 17;
    uint8_t *body = malloc(max);
    assert_non_null(body);
    for (size_t i = 0; i < max; i++)
        body[i] = (uint8_t)(i * 131 + 3);
    size_t lens[] = {
        0,  1, 100, SPY_STORE_BLOCK - 1, SPY_STORE_BLOCK, SPY_STORE_BLOCK + 1, 2 * SPY_STORE_BLOCK,
        max};
    size_t pieces[] = {1, 7, 4096, SPY_STORE_BLOCK, max};
    for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
        size_t len = lens[li];
        uint64_t nb = spy_record_blocks(len);
        assert_int_equal(nb, (len + SPY_STORE_BLOCK - 1) / SPY_STORE_BLOCK);
        assert_int_equal(spy_record_table_bytes(len), 4 * nb);
        for (size_t pi = 0; pi < sizeof(pieces) / sizeof(pieces[0]); pi++) {
            uint8_t table[16] = {0};
            struct spy_record_sum sum;
            spy_record_sum_init(&sum, table);
            for (size_t at = 0; at < len; at += pieces[pi])
                spy_record_sum_update(&sum, body + at,
                                      len - at < pieces[pi] ? len - at : pieces[pi]);
            spy_record_sum_finish(&sum);
            assert_int_equal(sum.body_crc, spy_crc32c(0, body, len));
            for (uint64_t b = 0; b < nb; b++) {
                size_t first = b * SPY_STORE_BLOCK;
                size_t blen = len - first < SPY_STORE_BLOCK ? len - first : SPY_STORE_BLOCK;
                assert_int_equal(spy_record_table_get(table, b), spy_crc32c(0, body + first, blen));
            }
            /* Nothing is written past the table. */
            for (size_t k = 4 * nb; k < sizeof(table); k++)
                assert_int_equal(table[k], 0);
        }
    }
    free(body);
}

static void test_sizes(void **state)
{
    (void)state;
    assert_int_equal(spy_record_size(0), 48);
    assert_int_equal(spy_record_size(1), 56); /* 48 + 1 + 4 = 53 -> 56 */
    assert_int_equal(spy_record_extent(1), 53);
    assert_int_equal(spy_record_size(65536), 48 + 65536 + 4 + 4); /* 65588 -> 65592 */
    assert_int_equal(spy_record_size(65537), 48 + 65537 + 8 + 7); /* 65593 -> 65600 */
    assert_int_equal(spy_record_size(UINT64_MAX), UINT64_MAX);
    assert_int_equal(spy_record_max_body(47), 0);
    for (uint64_t space = 48; space < 3 * SPY_STORE_BLOCK + 200; space += 13) {
        uint64_t b = spy_record_max_body(space);
        assert_true(spy_record_size(b) <= space);
        assert_true(spy_record_size(b + 1) > space);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_every_header_byte_flip_rejected),
        cmocka_unit_test(test_zeroed_space_never_validates),
        cmocka_unit_test(test_misplaced_or_foreign_record_rejected),
        cmocka_unit_test(test_table_over_body_shapes),
        cmocka_unit_test(test_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
