/* test_proto: the frame header codec rejects every malformed header (each
 * byte flipped, each field out of range, oversized payloads per op) and the
 * payload codecs round-trip and refuse wrong sizes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/proto.h"
#include "common/status.h"

static void test_frame_round_trip(void **state)
{
    (void)state;
    struct spy_frame f = {.op = SPY_OP_GET,
                          .flags = SPY_FRAME_RESPONSE,
                          .status = SPY_ENOTFOUND,
                          .req_id = 0x0102030405060708ULL,
                          .len = SPY_GET_RESP_PAYLOAD};
    uint8_t hdr[SPY_FRAME_HDR_SIZE];
    spy_frame_encode(&f, hdr);
    assert_int_equal(hdr[0], 0x53);
    assert_int_equal(hdr[1], 0x59);
    assert_int_equal(hdr[5], 1); /* -SPY_ENOTFOUND */
    struct spy_frame g;
    assert_int_equal(spy_frame_decode(hdr, &g), SPY_OK);
    assert_int_equal(g.op, f.op);
    assert_int_equal(g.flags, f.flags);
    assert_int_equal(g.status, SPY_ENOTFOUND);
    assert_true(g.req_id == f.req_id);
    assert_int_equal(g.len, f.len);
}

static void test_every_byte_flip_rejected(void **state)
{
    (void)state;
    struct spy_frame f = {.op = SPY_OP_DATA, .req_id = 77, .len = 1000};
    uint8_t hdr[SPY_FRAME_HDR_SIZE];
    spy_frame_encode(&f, hdr);
    struct spy_frame g;
    for (int i = 0; i < SPY_FRAME_HDR_SIZE; i++) {
        for (int bit = 0; bit < 8; bit++) {
            hdr[i] ^= (uint8_t)(1 << bit);
            assert_int_equal(spy_frame_decode(hdr, &g), SPY_EPROTO);
            hdr[i] ^= (uint8_t)(1 << bit);
        }
    }
    assert_int_equal(spy_frame_decode(hdr, &g), SPY_OK);
}

/* encode_raw: a header whose crc is right but whose fields may be wrong, so
 * the field checks (not the crc) must reject it. */
static void encode_raw(uint8_t *hdr, uint8_t version, uint8_t op, uint8_t flags, uint8_t status,
                       uint8_t reserved, uint32_t len)
{
    memset(hdr, 0, SPY_FRAME_HDR_SIZE);
    hdr[0] = 0x53;
    hdr[1] = 0x59;
    hdr[2] = version;
    hdr[3] = op;
    hdr[4] = flags;
    hdr[5] = status;
    hdr[6] = reserved;
    spy_put_u64(hdr + 8, 1);
    spy_put_u32(hdr + 16, len);
    spy_put_u32(hdr + 20, spy_crc32c(0, hdr, 20));
}

static void test_field_checks(void **state)
{
    (void)state;
    uint8_t hdr[SPY_FRAME_HDR_SIZE];
    struct spy_frame g;
    encode_raw(hdr, 1, SPY_OP_PING, 0, 0, 0, 0);
    assert_int_equal(spy_frame_decode(hdr, &g), SPY_OK);
    encode_raw(hdr, 2, SPY_OP_PING, 0, 0, 0, 0);
    assert_int_equal(spy_frame_decode(hdr, &g), SPY_EPROTO);
    encode_raw(hdr, 1, 0, 0, 0, 0, 0);
    assert_int_equal(spy_frame_decode(hdr, &g), SPY_EPROTO);
    encode_raw(hdr, 1, 9, 0, 0, 0, 0);
    assert_int_equal(spy_frame_decode(hdr, &g), SPY_EPROTO);
    encode_raw(hdr, 1, SPY_OP_PING, 0x10, 0, 0, 0);
    assert_int_equal(spy_frame_decode(hdr, &g), SPY_EPROTO);
    encode_raw(hdr, 1, SPY_OP_PING, 0, 3, 0, 0); /* status on a request */
    assert_int_equal(spy_frame_decode(hdr, &g), SPY_EPROTO);
    encode_raw(hdr, 1, SPY_OP_PING, SPY_FRAME_RESPONSE, 200, 0, 0); /* unknown status */
    assert_int_equal(spy_frame_decode(hdr, &g), SPY_EPROTO);
    encode_raw(hdr, 1, SPY_OP_PING, 0, 0, 1, 0); /* reserved byte */
    assert_int_equal(spy_frame_decode(hdr, &g), SPY_EPROTO);
}

static void test_payload_bounds_per_op(void **state)
{
    (void)state;
    uint8_t hdr[SPY_FRAME_HDR_SIZE];
    struct spy_frame g;
    struct {
        uint8_t op;
        uint8_t flags;
        uint32_t max;
    } cases[] = {
        {SPY_OP_PING, 0, 0},
        {SPY_OP_STATUS, 0, 0},
        {SPY_OP_STATUS, SPY_FRAME_RESPONSE, SPY_SMALL_MAX},
        {SPY_OP_STAT, 0, SPY_FID_PAYLOAD},
        {SPY_OP_GET, 0, SPY_GET_REQ_PAYLOAD},
        {SPY_OP_DELETE, 0, SPY_FID_PAYLOAD},
        {SPY_OP_PUT, 0, SPY_PUT_REQ_PAYLOAD},
        {SPY_OP_DATA, 0, SPY_DATA_MAX},
        {SPY_OP_END, 0, SPY_END_REQ_PAYLOAD},
        {SPY_OP_END, SPY_FRAME_RESPONSE, SPY_END_RESP_PAYLOAD},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        encode_raw(hdr, 1, cases[i].op, cases[i].flags, 0, 0, cases[i].max);
        assert_int_equal(spy_frame_decode(hdr, &g), SPY_OK);
        encode_raw(hdr, 1, cases[i].op, cases[i].flags, 0, 0, cases[i].max + 1);
        assert_int_equal(spy_frame_decode(hdr, &g), SPY_EPROTO);
    }
    encode_raw(hdr, 1, SPY_OP_DATA, 0, 0, 0, 0xffffffffu);
    assert_int_equal(spy_frame_decode(hdr, &g), SPY_EPROTO);
}

static void test_payload_codecs(void **state)
{
    (void)state;
    uint8_t buf[64];
    struct spy_get_req gr = {.fid = 9, .offset = 1ULL << 40, .length = 65537}, gr2;
    spy_get_req_encode(&gr, buf);
    assert_int_equal(spy_get_req_decode(buf, SPY_GET_REQ_PAYLOAD, &gr2), SPY_OK);
    assert_memory_equal(&gr, &gr2, sizeof(gr));
    assert_int_equal(spy_get_req_decode(buf, SPY_GET_REQ_PAYLOAD - 1, &gr2), SPY_EPROTO);

    struct spy_get_resp rs = {.object_len = 100, .offset = 10, .length = 90}, rs2;
    spy_get_resp_encode(&rs, buf);
    assert_int_equal(spy_get_resp_decode(buf, SPY_GET_RESP_PAYLOAD, &rs2), SPY_OK);
    assert_memory_equal(&rs, &rs2, sizeof(rs));
    rs.length = 91; /* past the end of the object */
    spy_get_resp_encode(&rs, buf);
    assert_int_equal(spy_get_resp_decode(buf, SPY_GET_RESP_PAYLOAD, &rs2), SPY_EPROTO);
    rs.offset = UINT64_MAX; /* overflow attempt */
    rs.length = 2;
    spy_get_resp_encode(&rs, buf);
    assert_int_equal(spy_get_resp_decode(buf, SPY_GET_RESP_PAYLOAD, &rs2), SPY_EPROTO);

    struct spy_put_req pr = {.fid = 12345, .max_len = 16 << 20}, pr2;
    spy_put_req_encode(&pr, buf);
    assert_int_equal(spy_put_req_decode(buf, SPY_PUT_REQ_PAYLOAD, &pr2), SPY_OK);
    assert_memory_equal(&pr, &pr2, sizeof(pr));
    assert_int_equal(spy_put_req_decode(buf, 0, &pr2), SPY_EPROTO);

    struct spy_end_req er = {.total_len = 77, .crc = 0xdeadbeef}, er2;
    spy_end_req_encode(&er, buf);
    assert_int_equal(spy_end_req_decode(buf, SPY_END_REQ_PAYLOAD, &er2), SPY_OK);
    assert_int_equal(er2.total_len, 77);
    assert_int_equal(er2.crc, 0xdeadbeef);

    struct spy_stat_resp sr = {.fid = 1, .len = 2, .chunk_id = 3, .offset = 4096, .timestamp = 5},
                         sr2;
    spy_stat_resp_encode(&sr, buf);
    assert_int_equal(spy_stat_resp_decode(buf, SPY_STAT_RESP_PAYLOAD, &sr2), SPY_OK);
    assert_memory_equal(&sr, &sr2, sizeof(sr));

    uint64_t fid;
    spy_put_u64(buf, 0xfedcba9876543210ULL);
    assert_int_equal(spy_fid_decode(buf, 8, &fid), SPY_OK);
    assert_true(fid == 0xfedcba9876543210ULL);
    assert_int_equal(spy_fid_decode(buf, 9, &fid), SPY_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_round_trip), cmocka_unit_test(test_every_byte_flip_rejected),
        cmocka_unit_test(test_field_checks),     cmocka_unit_test(test_payload_bounds_per_op),
        cmocka_unit_test(test_payload_codecs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
