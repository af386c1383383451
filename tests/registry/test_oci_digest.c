/* test_oci_digest: the digest grammar (valid, invalid and unsupported
 * tables), parse/format round trips, and the EVP hasher against known
 * answers (FIPS 180-2 vectors) and against itself fed in pieces. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "common/status.h"
#include "registry/oci_digest.h"

#define EMPTY_SHA256 "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ABC_SHA256   "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define ABC_SHA512                                                                                 \
    "sha512:"                                                                                      \
    "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c"       \
    "23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"

static enum spy_oci_code parse(const char *s, struct spy_oci_digest *d)
{
    return spy_oci_digest_parse(s, strlen(s), d);
}

static void test_supported_digests(void **state)
{
    (void)state;
    struct spy_oci_digest d;
    char out[SPY_OCI_DIGEST_STR_MAX + 1];
    const char *ok[] = {EMPTY_SHA256, ABC_SHA256, ABC_SHA512};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(parse(ok[i], &d), SPY_OCI_OK);
        assert_int_equal(spy_oci_digest_format(&d, out), (int)strlen(ok[i]));
        assert_string_equal(out, ok[i]);
    }
    assert_int_equal(parse(ABC_SHA512, &d), SPY_OCI_OK);
    assert_int_equal(d.alg, SPY_OCI_SHA512);
    assert_int_equal(d.len, 64);
    assert_int_equal(d.raw[0], 0xdd);
    assert_int_equal(d.raw[63], 0x9f);
}

static void test_invalid_digests(void **state)
{
    (void)state;
    static const char *invalid[] = {
        "",
        ":",
        "sha256",
        "sha256:",
        ":abc",
        "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        /* uppercase hex is invalid for sha256 */
        "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",   /* 63 */
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555", /* 65 */
        "sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85=",
        "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", /* 64 */
        "sha256 :e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        " sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 ",
        "sha256::e3b0",
        "sha256:ab:cd",
        "sha256+:abc",
        "+sha256:abc",
        "sha256..b64:abc",
        "sha-256-:abc",
        "sha256:abc/def",
        "sha256:abc+def",
        "md5:ab.cd",
    };
    struct spy_oci_digest d;
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        enum spy_oci_code rc = parse(invalid[i], &d);
        if (rc != SPY_OCI_DIGEST_INVALID)
            fail_msg("\"%s\": got %d, want DIGEST_INVALID", invalid[i], rc);
        assert_int_equal(d.alg, SPY_OCI_DIGEST_UNSUPPORTED);
    }
}

static void test_unsupported_digests(void **state)
{
    (void)state;
    static const char *unsupported[] = {
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha384:abc",
        "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
        "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
        "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
        "a.b_c-d+e:X=_-",
        "sha256x:e3b0",
        "sha2:abc",
        "0:0",
    };
    struct spy_oci_digest d;
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
        enum spy_oci_code rc = parse(unsupported[i], &d);
        if (rc != SPY_OCI_UNSUPPORTED)
            fail_msg("\"%s\": got %d, want UNSUPPORTED", unsupported[i], rc);
        assert_true(spy_oci_digest_grammar_valid(unsupported[i], strlen(unsupported[i])));
        char out[SPY_OCI_DIGEST_STR_MAX + 1];
        assert_int_equal(spy_oci_digest_format(&d, out), SPY_EINVAL);
        assert_string_equal(out, "");
    }
}

static void test_length_limit_and_nul(void **state)
{
    (void)state;
    char s[300] = "x:";
    memset(s + 2, 'a', sizeof(s) - 3);
    s[sizeof(s) - 1] = '\0';
    assert_true(spy_oci_digest_grammar_valid(s, SPY_OCI_DIGEST_TEXT_MAX));
    assert_false(spy_oci_digest_grammar_valid(s, SPY_OCI_DIGEST_TEXT_MAX + 1));
    struct spy_oci_digest d;
    assert_int_equal(spy_oci_digest_parse(EMPTY_SHA256 "\0", strlen(EMPTY_SHA256) + 1, &d),
                     SPY_OCI_DIGEST_INVALID);
    /* only len bytes are read */
    assert_int_equal(spy_oci_digest_parse(EMPTY_SHA256 "ff", strlen(EMPTY_SHA256), &d), SPY_OCI_OK);
}

static void test_alg_names(void **state)
{
    (void)state;
    assert_int_equal(spy_oci_digest_alg_from_name("sha256", 6), SPY_OCI_SHA256);
    assert_int_equal(spy_oci_digest_alg_from_name("sha512", 6), SPY_OCI_SHA512);
    assert_int_equal(spy_oci_digest_alg_from_name("sha5122", 6), SPY_OCI_SHA512);
    assert_int_equal(spy_oci_digest_alg_from_name("sha384", 6), SPY_OCI_DIGEST_UNSUPPORTED);
    assert_int_equal(spy_oci_digest_alg_from_name("SHA256", 6), SPY_OCI_DIGEST_UNSUPPORTED);
    assert_int_equal(spy_oci_digest_alg_from_name("sha25", 5), SPY_OCI_DIGEST_UNSUPPORTED);
    assert_string_equal(spy_oci_digest_alg_name(SPY_OCI_SHA256), "sha256");
    assert_null(spy_oci_digest_alg_name(SPY_OCI_DIGEST_UNSUPPORTED));
}

static void test_equal(void **state)
{
    (void)state;
    struct spy_oci_digest a, b;
    assert_int_equal(parse(ABC_SHA256, &a), SPY_OCI_OK);
    assert_int_equal(parse(ABC_SHA256, &b), SPY_OCI_OK);
    assert_true(spy_oci_digest_equal(&a, &b));
    b.raw[31] ^= 1;
    assert_false(spy_oci_digest_equal(&a, &b));
    assert_int_equal(parse(ABC_SHA512, &b), SPY_OCI_OK);
    assert_false(spy_oci_digest_equal(&a, &b));
}

static void expect_digest(enum spy_oci_digest_alg alg, const void *data, size_t len,
                          const char *want)
{
    struct spy_oci_digest d;
    char out[SPY_OCI_DIGEST_STR_MAX + 1];
    assert_int_equal(spy_oci_digest_buffer(alg, data, len, &d), SPY_OK);
    spy_oci_digest_format(&d, out);
    assert_string_equal(out, want);
}

static void test_known_answers(void **state)
{
    (void)state;
    expect_digest(SPY_OCI_SHA256, "", 0, EMPTY_SHA256);
    expect_digest(SPY_OCI_SHA256, "abc", 3, ABC_SHA256);
    expect_digest(SPY_OCI_SHA512, "abc", 3, ABC_SHA512);
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    expect_digest(SPY_OCI_SHA256, two_blocks, strlen(two_blocks),
                  "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_hasher_pieces(void **state)
{
    (void)state;
    uint8_t data[1000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 31 + 7);
    for (int alg = SPY_OCI_SHA256; alg <= SPY_OCI_SHA512; alg++) {
        struct spy_oci_digest whole, pieces;
        assert_int_equal(spy_oci_digest_buffer(alg, data, sizeof(data), &whole), SPY_OK);
        struct spy_oci_hasher h;
        assert_int_equal(spy_oci_hasher_init(&h, alg), SPY_OK);
        for (size_t off = 0, step = 1; off < sizeof(data); off += step, step = step * 2 + 1) {
            size_t n = off + step > sizeof(data) ? sizeof(data) - off : step;
            assert_int_equal(spy_oci_hasher_update(&h, data + off, n), SPY_OK);
        }
        assert_int_equal(spy_oci_hasher_final(&h, &pieces), SPY_OK);
        assert_null(h.ctx);
        assert_true(spy_oci_digest_equal(&whole, &pieces));
    }
}

static void test_hasher_errors(void **state)
{
    (void)state;
    struct spy_oci_hasher h;
    assert_int_equal(spy_oci_hasher_init(&h, SPY_OCI_DIGEST_UNSUPPORTED), SPY_EINVAL);
    assert_null(h.ctx);
    spy_oci_hasher_release(&h);
    struct spy_oci_digest d;
    assert_int_equal(spy_oci_hasher_final(&h, &d), SPY_EINVAL);
    assert_int_equal(spy_oci_hasher_update(&h, "x", 1), SPY_EINVAL);
    /* abandoning a started hash frees it (ASan would report a leak) */
    assert_int_equal(spy_oci_hasher_init(&h, SPY_OCI_SHA512), SPY_OK);
    assert_int_equal(spy_oci_hasher_update(&h, "x", 1), SPY_OK);
    spy_oci_hasher_release(&h);
    spy_oci_hasher_release(&h);
    assert_int_equal(spy_oci_digest_buffer(SPY_OCI_DIGEST_UNSUPPORTED, "x", 1, &d), SPY_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_supported_digests),   cmocka_unit_test(test_invalid_digests),
        cmocka_unit_test(test_unsupported_digests), cmocka_unit_test(test_length_limit_and_nul),
        cmocka_unit_test(test_alg_names),           cmocka_unit_test(test_equal),
        cmocka_unit_test(test_known_answers),       cmocka_unit_test(test_hasher_pieces),
        cmocka_unit_test(test_hasher_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
