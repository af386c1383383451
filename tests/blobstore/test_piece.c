/* test_piece.c - piece arithmetic: which pieces and byte spans a range needs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "blobstore/piece.h"
#include "common/status.h"

#define P 100 /* piece size of the test blobs */

/* make_blob: pieces of a blob of 'total' bytes cut at P. */
static size_t make_blob(struct spy_blob_piece *out, uint64_t total)
{
    size_t n = 0;
    for (uint64_t off = 0; off < total; off += P, n++)
        out[n] = (struct spy_blob_piece){.group_id = 1,
                                         .fid = 1000 + n,
                                         .offset = off,
                                         .length = total - off < P ? total - off : P};
    return n;
}

static void test_count(void **state)
{
    (void)state;
    assert_int_equal(spy_pieces_count(0, P), 0);
    assert_int_equal(spy_pieces_count(1, P), 1);
    assert_int_equal(spy_pieces_count(P, P), 1);
    assert_int_equal(spy_pieces_count(P + 1, P), 2);
    assert_int_equal(spy_pieces_count(10 * P, P), 10);
}

static void test_check(void **state)
{
    (void)state;
    struct spy_blob_piece p[8] = {{0}};
    uint64_t total = 1;
    assert_int_equal(spy_pieces_check(p, 0, &total), SPY_OK);
    assert_int_equal(total, 0);
    size_t n = make_blob(p, 350);
    assert_int_equal(spy_pieces_check(p, n, &total), SPY_OK);
    assert_int_equal(total, 350);
    p[2].offset = 201; /* a gap */
    assert_int_equal(spy_pieces_check(p, n, NULL), SPY_EINVAL);
    make_blob(p, 350);
    p[1].length = 0; /* an empty piece */
    assert_int_equal(spy_pieces_check(p, n, NULL), SPY_EINVAL);
    make_blob(p, 350);
    p[0].offset = 1; /* not starting at 0 */
    assert_int_equal(spy_pieces_check(p, n, NULL), SPY_EINVAL);
    make_blob(p, 350);
    p[3].length = UINT64_MAX; /* overflow */
    assert_int_equal(spy_pieces_check(p, n, NULL), SPY_EINVAL);
}

/* expect_range: the pieces and per-piece spans a range needs. */
static void expect_range(const struct spy_blob_piece *p, size_t n, uint64_t off, uint64_t len,
                         size_t want_first, size_t want_count)
{
    size_t first = 99, count = 99;
    assert_int_equal(spy_pieces_range(p, n, off, len, &first, &count), SPY_OK);
    assert_int_equal(count, want_count);
    if (want_count > 0)
        assert_int_equal(first, want_first);
    /* The spans must tile the range exactly, in order. */
    uint64_t pos = off, sum = 0;
    for (size_t i = first; i < first + count; i++) {
        uint64_t so, sl;
        spy_pieces_span(&p[i], off, len, &so, &sl);
        assert_true(sl > 0);
        assert_int_equal(p[i].offset + so, pos);
        pos += sl;
        sum += sl;
    }
    assert_int_equal(sum, len);
}

static void test_range(void **state)
{
    (void)state;
    struct spy_blob_piece p[8];
    size_t n = make_blob(p, 350);       /* pieces 0..3: 100,100,100,50 */
    expect_range(p, n, 0, 350, 0, 4);   /* whole blob */
    expect_range(p, n, 0, 1, 0, 1);     /* first byte */
    expect_range(p, n, 349, 1, 3, 1);   /* last byte */
    expect_range(p, n, 99, 2, 0, 2);    /* across a boundary */
    expect_range(p, n, 100, 100, 1, 1); /* exactly one piece */
    expect_range(p, n, 100, 101, 1, 2); /* one piece and a byte */
    expect_range(p, n, 199, 1, 1, 1);   /* last byte of a piece */
    expect_range(p, n, 200, 1, 2, 1);   /* first byte of a piece */
    expect_range(p, n, 150, 0, 0, 0);   /* empty range */
    expect_range(p, n, 350, 0, 0, 0);   /* empty range at the end */
    expect_range(p, n, 50, 250, 0, 3);
    size_t first, count;
    assert_int_equal(spy_pieces_range(p, n, 350, 1, &first, &count), SPY_ERANGE);
    assert_int_equal(spy_pieces_range(p, n, 351, 0, &first, &count), SPY_ERANGE);
    assert_int_equal(spy_pieces_range(p, n, 0, 351, &first, &count), SPY_ERANGE);
    assert_int_equal(spy_pieces_range(p, n, 1, UINT64_MAX, &first, &count), SPY_ERANGE);
    /* An empty blob: only [0, 0). */
    assert_int_equal(spy_pieces_range(p, 0, 0, 0, &first, &count), SPY_OK);
    assert_int_equal(count, 0);
    assert_int_equal(spy_pieces_range(p, 0, 0, 1, &first, &count), SPY_ERANGE);
}

static void test_span(void **state)
{
    (void)state;
    struct spy_blob_piece p = {.offset = 100, .length = 100};
    uint64_t so, sl;
    spy_pieces_span(&p, 0, 1000, &so, &sl); /* covers it all */
    assert_int_equal(so, 0);
    assert_int_equal(sl, 100);
    spy_pieces_span(&p, 150, 10, &so, &sl); /* inside */
    assert_int_equal(so, 50);
    assert_int_equal(sl, 10);
    spy_pieces_span(&p, 50, 60, &so, &sl); /* overlaps the start */
    assert_int_equal(so, 0);
    assert_int_equal(sl, 10);
    spy_pieces_span(&p, 199, 60, &so, &sl); /* overlaps the end */
    assert_int_equal(so, 99);
    assert_int_equal(sl, 1);
    spy_pieces_span(&p, 200, 60, &so, &sl); /* after it */
    assert_int_equal(sl, 0);
    spy_pieces_span(&p, 0, 100, &so, &sl); /* before it */
    assert_int_equal(sl, 0);
}

/* test_many: exhaustive small ranges over a blob of many pieces, checked
 * against a byte-by-byte count. */
static void test_many(void **state)
{
    (void)state;
    static struct spy_blob_piece p[64];
    size_t n = make_blob(p, 3050);
    for (uint64_t off = 0; off <= 3050; off += 37)
        for (uint64_t len = 0; off + len <= 3050; len += 53) {
            size_t want_first = 0, want_count = 0;
            if (len > 0) {
                want_first = off / P;
                want_count = (off + len - 1) / P - want_first + 1;
            }
            expect_range(p, n, off, len, want_first, want_count);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count), cmocka_unit_test(test_check), cmocka_unit_test(test_range),
        cmocka_unit_test(test_span),  cmocka_unit_test(test_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
