/* test_recover: recovery at open. The last record is damaged from every
 * byte offset of its extent to its end (zeros, then 0xAA garbage) behind a
 * checkpoint that precedes it: exactly the earlier objects come back,
 * byte-exact, and the store keeps working. Also: corruption inside the
 * checkpointed region (caught by reads, or by the walk for headers),
 * superblock slot fallback and loss, tombstones before their PUT. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunkserver/chunk.h"
#include "chunkserver/record.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "common/status.h"
#include "tests/chunkserver/storage_testutil.h"

#define MIB        (1ull << 20)
#define CHUNKS     3
#define CHUNK_SIZE (4 * MIB)
#define NEW_FID    1000

/* The objects written before the last one: empty, tiny, block edges, > 64 KiB. */
static const size_t early_lens[] = {0, 1, 7, 100, 4095, 4096, 65536, 70000};
#define EARLY    (sizeof(early_lens) / sizeof(early_lens[0]))
#define LAST_FID (EARLY + 1)

/* fdatasync is not what these tests are about; skipping it keeps thousands
 * of reopens fast. */
static int no_fdatasync(int fd)
{
    (void)fd;
    return 0;
}

static const struct spy_chunk_io fast_io = {pread, pwrite, no_fdatasync};

/* A data directory whose last record lies after the checkpoint, and a copy
 * of its chunk files to restore after each damage. */
struct fixture {
    char dir[64];
    struct spy_object_info last;
    uint64_t extent; /* header + body + table of the last record */
    uint8_t *snap[CHUNKS];
};

/* file_read, file_write -- exact positional I/O on a chunk file. */
static void file_read(const char *path, void *buf, size_t len, uint64_t off)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static void file_write(const char *path, const void *buf, size_t len, uint64_t off)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

/* newest_slot -- decodes both slots of a chunk file; returns the index of
 * the valid one with the higher seq (-1 if none) and its contents. */
static int newest_slot(const char *path, struct spy_chunk_sb *sb)
{
    uint8_t head[2 * SPY_CHUNK_SLOT];
    file_read(path, head, sizeof(head), 0);
    struct spy_chunk_sb s[2];
    int ok0 = spy_chunk_sb_decode(head, &s[0]) == SPY_OK;
    int ok1 = spy_chunk_sb_decode(head + SPY_CHUNK_SLOT, &s[1]) == SPY_OK;
    if (!ok0 && !ok1)
        return -1;
    int pick = ok0 && ok1 ? s[1].seq > s[0].seq : ok1;
    *sb = s[pick];
    return pick;
}

/* force_synced -- writes a newer superblock slot claiming synced_offset,
 * as if the last checkpoint had been taken there. */
static void force_synced(const char *path, uint64_t synced)
{
    struct spy_chunk_sb sb;
    assert_true(newest_slot(path, &sb) >= 0);
    sb.seq++;
    sb.synced_offset = synced;
    uint8_t slot[SPY_CHUNK_SLOT];
    spy_chunk_sb_encode(&sb, slot);
    file_write(path, slot, sizeof(slot), (sb.seq % 2) * SPY_CHUNK_SLOT);
}

/* put_early -- the objects every scenario starts with. */
static void put_early(struct spy_store *s)
{
    for (size_t i = 0; i < EARLY; i++)
        assert_int_equal(tu_put(s, i + 1, early_lens[i], 5000), SPY_OK);
}

/* fixture_make -- the early objects, then a last one of last_len bytes whose
 * record the checkpoint does not cover; snapshots every chunk file. */
static void fixture_make(struct fixture *f, size_t last_len)
{
    tu_mkdtemp(f->dir, sizeof(f->dir));
    struct spy_store *s = tu_open(f->dir, CHUNKS, CHUNK_SIZE, 0);
    put_early(s);
    assert_int_equal(tu_put(s, LAST_FID, last_len, 5000), SPY_OK);
    assert_int_equal(spy_store_stat(s, LAST_FID, &f->last), SPY_OK);
    spy_store_close(s);
    f->extent = spy_record_extent(last_len);
    char path[4096];
    tu_chunk_path(path, sizeof(path), f->dir, f->last.chunk_id);
    force_synced(path, f->last.offset);
    for (uint32_t c = 0; c < CHUNKS; c++) {
        f->snap[c] = malloc(CHUNK_SIZE);
        assert_non_null(f->snap[c]);
        tu_chunk_path(path, sizeof(path), f->dir, c + 1);
        file_read(path, f->snap[c], CHUNK_SIZE, 0);
    }
}

/* fixture_free -- drops the snapshots and the directory. */
static void fixture_free(struct fixture *f)
{
    for (uint32_t c = 0; c < CHUNKS; c++)
        free(f->snap[c]);
    tu_rmdir(f->dir);
}

/* fixture_restore -- puts back every byte an iteration may have changed:
 * the superblocks, and the region from the chunk's old tail on (the last
 * record, the new put after it). */
static void fixture_restore(struct fixture *f)
{
    char path[4096];
    for (uint32_t c = 0; c < CHUNKS; c++) {
        uint64_t from = c + 1 == f->last.chunk_id ? f->last.offset : SPY_CHUNK_DATA;
        uint64_t len = f->extent + 64 * 1024;
        if (len > CHUNK_SIZE - from)
            len = CHUNK_SIZE - from;
        tu_chunk_path(path, sizeof(path), f->dir, c + 1);
        file_write(path, f->snap[c], SPY_CHUNK_DATA, 0);
        file_write(path, f->snap[c] + from, (size_t)len, from);
    }
}

/* check_early -- the objects before the last one, all byte-exact. */
static void check_early(struct spy_store *s, uint64_t k)
{
    for (size_t i = 0; i < EARLY; i++) {
        int rc = tu_check(s, i + 1, early_lens[i]);
        if (rc != SPY_OK)
            fail_msg("damage from byte %llu: fid %zu reads %d", (unsigned long long)k, i + 1, rc);
    }
}

/* damage_and_check -- damages the last record from byte k of its extent:
 * to the extent's end with 'fill' (a torn tail), or, when fill is FLIP, only
 * byte k (xor 0x5a: a body page that never reached the disk while the
 * header did). Reopens twice and checks. Returns 0 if the bytes already
 * held 'fill' (nothing damaged, nothing checked). */
#define FLIP 0x100
static int damage_and_check(struct fixture *f, uint64_t k, int fill)
{
    char path[4096];
    tu_chunk_path(path, sizeof(path), f->dir, f->last.chunk_id);
    const uint8_t *orig = f->snap[f->last.chunk_id - 1] + f->last.offset + k;
    size_t n = fill == FLIP ? 1 : (size_t)(f->extent - k);
    uint8_t *bytes = malloc(n);
    assert_non_null(bytes);
    memset(bytes, fill, n);
    if (fill == FLIP)
        bytes[0] = orig[0] ^ 0x5a;
    int changed = memcmp(bytes, orig, n) != 0;
    if (changed) {
        file_write(path, bytes, n, f->last.offset + k);
        struct spy_store *s = tu_open(f->dir, CHUNKS, CHUNK_SIZE, 0);
        struct spy_store_stats st;
        spy_store_get_stats(s, &st);
        if (st.objects != EARLY || st.chunks_damaged != 0)
            fail_msg("damage at byte %llu (fill %x): %llu objects, %u chunks damaged",
                     (unsigned long long)k, fill, (unsigned long long)st.objects,
                     st.chunks_damaged);
        check_early(s, k);
        struct spy_object_info info;
        assert_int_equal(spy_store_stat(s, LAST_FID, &info), SPY_ENOTFOUND);
        assert_int_equal(tu_put(s, NEW_FID, 300, 300), SPY_OK);
        spy_store_close(s);
        s = tu_open(f->dir, CHUNKS, CHUNK_SIZE, 0);
        assert_int_equal(tu_check(s, NEW_FID, 300), SPY_OK);
        assert_int_equal(spy_store_stat(s, LAST_FID, &info), SPY_ENOTFOUND);
        spy_store_get_stats(s, &st);
        assert_int_equal(st.objects, EARLY + 1);
        spy_store_close(s);
        fixture_restore(f);
    }
    free(bytes);
    return changed;
}

static void test_torn_last_record_every_offset(void **state)
{
    (void)state;
    struct fixture f;
    fixture_make(&f, 2000);
    /* Undamaged, the last record is found beyond the checkpoint by the full
     * verification. */
    struct spy_store *s = tu_open(f.dir, CHUNKS, CHUNK_SIZE, 0);
    assert_int_equal(tu_check(s, LAST_FID, 2000), SPY_OK);
    spy_store_close(s);
    fixture_restore(&f);
    const int fills[] = {0x00, 0xAA, FLIP};
    for (int v = 0; v < 3; v++) {
        uint64_t checked = 0;
        for (uint64_t k = 0; k < f.extent; k++)
            checked += (uint64_t)damage_and_check(&f, k, fills[v]);
        print_message("damage %x: %llu of %llu offsets damaged and recovered\n", fills[v],
                      (unsigned long long)checked, (unsigned long long)f.extent);
        assert_true(checked + 8 >= f.extent); /* only a few bytes can already equal the fill */
    }
    fixture_free(&f);
}

static void test_torn_multi_block_record_sampled(void **state)
{
    (void)state;
    struct fixture f;
    size_t len = 3 * SPY_STORE_BLOCK + 3392;
    fixture_make(&f, len);
    uint64_t ks[160];
    size_t nk = 0;
    for (uint64_t k = 0; k < SPY_RECORD_HDR; k += 3)
        ks[nk++] = k;
    for (uint64_t b = 1; b <= 3; b++)
        for (int d = -2; d <= 2; d++)
            ks[nk++] = SPY_RECORD_HDR + b * SPY_STORE_BLOCK + (uint64_t)d;
    for (uint64_t k = f.extent - 16; k < f.extent; k++)
        ks[nk++] = k;
    uint64_t seed = 7;
    while (nk < sizeof(ks) / sizeof(ks[0]) - 40) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        ks[nk++] = (seed >> 20) % f.extent;
    }
    const int fills[] = {0x00, 0xAA, FLIP};
    for (int v = 0; v < 3; v++)
        for (size_t i = 0; i < nk; i++)
            damage_and_check(&f, ks[i], fills[v]);
    fixture_free(&f);
}

/* flip_byte -- xors one byte of a file. */
static void flip_byte(const char *path, uint64_t off)
{
    uint8_t b;
    file_read(path, &b, 1, off);
    b ^= 0x40;
    file_write(path, &b, 1, off);
}

/* A bad body block in a record beyond the checkpoint, with acknowledged
 * records after it (a bit flipped on disk, not a crash): the walk skips that
 * one record, keeps every record after it, and counts it as garbage. */
static void test_body_flip_beyond_checkpoint_skips_one_record(void **state)
{
    (void)state;
    char dir[64];
    tu_mkdtemp(dir, sizeof(dir));
    struct spy_store *s = tu_open(dir, CHUNKS, CHUNK_SIZE, 0);
    put_early(s);
    const uint64_t bad = 500, after = 501;
    assert_int_equal(tu_put(s, bad, 3 * SPY_STORE_BLOCK, 5000), SPY_OK);
    assert_int_equal(tu_put(s, after, 2000, 5000), SPY_OK);
    struct spy_object_info bi, ai;
    assert_int_equal(spy_store_stat(s, bad, &bi), SPY_OK);
    assert_int_equal(spy_store_stat(s, after, &ai), SPY_OK);
    assert_int_equal(bi.chunk_id, ai.chunk_id); /* the fullest chunk takes both */
    spy_store_close(s);
    char path[4096];
    tu_chunk_path(path, sizeof(path), dir, bi.chunk_id);
    force_synced(path, bi.offset);
    flip_byte(path, bi.offset + SPY_RECORD_HDR + SPY_STORE_BLOCK + 77); /* block 1 */

    s = tu_open(dir, CHUNKS, CHUNK_SIZE, 0);
    struct spy_store_stats st;
    spy_store_get_stats(s, &st);
    assert_int_equal(st.chunks_damaged, 0);
    assert_int_equal(st.objects, EARLY + 1);
    assert_true(st.garbage >= spy_record_extent(3 * SPY_STORE_BLOCK));
    struct spy_object_info info;
    assert_int_equal(spy_store_stat(s, bad, &info), SPY_ENOTFOUND);
    assert_int_equal(tu_check(s, after, 2000), SPY_OK);
    check_early(s, 0);
    assert_int_equal(tu_put(s, NEW_FID, 300, 300), SPY_OK);
    spy_store_close(s);

    s = tu_open(dir, CHUNKS, CHUNK_SIZE, 0);
    assert_int_equal(tu_check(s, after, 2000), SPY_OK);
    assert_int_equal(tu_check(s, NEW_FID, 300), SPY_OK);
    assert_int_equal(spy_store_stat(s, bad, &info), SPY_ENOTFOUND);
    spy_store_close(s);
    tu_rmdir(dir);
}

static void test_body_flip_in_checkpoint_caught_by_read(void **state)
{
    (void)state;
    char dir[64], path[4096];
    tu_mkdtemp(dir, sizeof(dir));
    struct spy_store *s = tu_open(dir, CHUNKS, CHUNK_SIZE, 0);
    put_early(s);
    size_t len = 3 * SPY_STORE_BLOCK + 100;
    assert_int_equal(tu_put(s, 50, len, 10000), SPY_OK);
    struct spy_object_info info;
    assert_int_equal(spy_store_stat(s, 50, &info), SPY_OK);
    spy_store_close(s); /* the checkpoint now covers everything */
    tu_chunk_path(path, sizeof(path), dir, info.chunk_id);
    flip_byte(path, info.offset + SPY_RECORD_HDR + SPY_STORE_BLOCK + 1234); /* block 1 */

    s = tu_open(dir, CHUNKS, CHUNK_SIZE, 0);
    struct spy_store_stats st;
    spy_store_get_stats(s, &st);
    assert_int_equal(st.objects, EARLY + 1); /* bodies are not read at open */
    check_early(s, 0);
    assert_int_equal(spy_store_stat(s, 50, &info), SPY_OK);
    size_t caps[] = {2 * SPY_STORE_BLOCK, 5 * SPY_STORE_BLOCK}; /* block path, whole path */
    for (int i = 0; i < 2; i++) {
        uint8_t *buf = malloc(caps[i]);
        struct spy_store_slice sl;
        /* From block 0: only block 0 comes back, verified. */
        assert_int_equal(spy_store_read(s, &info, 10, UINT64_MAX, buf, caps[i], &sl), SPY_OK);
        assert_int_equal(sl.n, SPY_STORE_BLOCK - 10);
        assert_true(tu_slice_ok(&sl, 50, 10));
        /* Block 1: refused. */
        assert_int_equal(spy_store_read(s, &info, SPY_STORE_BLOCK, UINT64_MAX, buf, caps[i], &sl),
                         SPY_ECORRUPT);
        assert_int_equal(
            spy_store_read(s, &info, 2 * SPY_STORE_BLOCK - 1, UINT64_MAX, buf, caps[i], &sl),
            SPY_ECORRUPT);
        /* Blocks 2 and 3: served. */
        assert_int_equal(
            spy_store_read(s, &info, 2 * SPY_STORE_BLOCK, UINT64_MAX, buf, caps[i], &sl), SPY_OK);
        assert_true(sl.n >= SPY_STORE_BLOCK);
        assert_true(tu_slice_ok(&sl, 50, 2 * SPY_STORE_BLOCK));
        free(buf);
    }
    spy_store_close(s);
    /* A flipped header byte in the checkpointed region is caught by reads too
     * (and by the walk: see test_corrupt_header_below_checkpoint). */
    tu_rmdir(dir);
}

static void test_corrupt_header_below_checkpoint(void **state)
{
    (void)state;
    char dir[64], path[4096];
    tu_mkdtemp(dir, sizeof(dir));
    struct spy_store *s = tu_open(dir, CHUNKS, CHUNK_SIZE, 0);
    put_early(s); /* all in one chunk, in fid order */
    struct spy_object_info mid;
    assert_int_equal(spy_store_stat(s, 5, &mid), SPY_OK);
    spy_store_close(s);
    tu_chunk_path(path, sizeof(path), dir, mid.chunk_id);
    flip_byte(path, mid.offset + 9); /* the fid field of record 5 */

    s = tu_open(dir, CHUNKS, CHUNK_SIZE, 0);
    struct spy_store_stats st;
    spy_store_get_stats(s, &st);
    assert_int_equal(st.chunks_damaged, 1);
    for (size_t i = 0; i < EARLY; i++)
        assert_int_equal(tu_check(s, i + 1, early_lens[i]), i < 4 ? SPY_OK : SPY_ENOTFOUND);
    /* Writes go to the healthy chunks. */
    assert_int_equal(tu_put(s, NEW_FID, 5000, 5000), SPY_OK);
    struct spy_object_info info;
    assert_int_equal(spy_store_stat(s, NEW_FID, &info), SPY_OK);
    assert_true(info.chunk_id != mid.chunk_id);
    spy_store_close(s);
    tu_rmdir(dir);
}

static void test_superblock_slot_fallback(void **state)
{
    (void)state;
    char dir[64], path[4096];
    tu_mkdtemp(dir, sizeof(dir));
    struct spy_store *s = tu_open(dir, CHUNKS, CHUNK_SIZE, 0);
    put_early(s);
    struct spy_object_info info;
    assert_int_equal(spy_store_stat(s, 1, &info), SPY_OK);
    spy_store_close(s);
    tu_chunk_path(path, sizeof(path), dir, info.chunk_id);
    struct spy_chunk_sb newest, older;
    int slot = newest_slot(path, &newest);
    assert_true(slot >= 0);
    assert_true(newest.synced_offset > SPY_CHUNK_DATA);
    /* Tear the newest slot: the other one (the creation's) takes over. */
    flip_byte(path, (uint64_t)slot * SPY_CHUNK_SLOT + 30);
    assert_int_equal(newest_slot(path, &older), 1 - slot);
    assert_true(older.seq < newest.seq);
    char name[64], err[256];
    snprintf(name, sizeof(name), "chunk_1_%u.chunk", info.chunk_id);
    struct spy_chunk *c;
    assert_int_equal(spy_chunk_open(dir, name, 1, info.chunk_id, CHUNK_SIZE, &c, err, sizeof(err)),
                     SPY_OK);
    assert_int_equal(c->sb_seq, older.seq);
    assert_int_equal(c->sb_synced, older.synced_offset);
    assert_int_equal(c->salt, newest.salt);
    assert_false(atomic_load(&c->damaged));
    spy_chunk_close(c);
    /* Everything is still there: the older checkpoint only means more of
     * the chunk is verified in full. */
    s = tu_open(dir, CHUNKS, CHUNK_SIZE, 0);
    struct spy_store_stats st;
    spy_store_get_stats(s, &st);
    assert_int_equal(st.chunks_damaged, 0);
    check_early(s, 0);
    assert_int_equal(tu_put(s, NEW_FID, 100, 100), SPY_OK);
    spy_store_close(s);
    /* The next checkpoint went into the torn slot, repairing it. */
    assert_int_equal(newest_slot(path, &newest), slot);
    s = tu_open(dir, CHUNKS, CHUNK_SIZE, 0);
    check_early(s, 0);
    assert_int_equal(tu_check(s, NEW_FID, 100), SPY_OK);
    spy_store_close(s);
    tu_rmdir(dir);
}

static void test_both_slots_corrupt_damages_one_chunk(void **state)
{
    (void)state;
    char dir[64], path[4096];
    tu_mkdtemp(dir, sizeof(dir));
    struct spy_store *s = tu_open(dir, CHUNKS, CHUNK_SIZE, 0);
    /* fid 20 goes to chunk 1 (held open meanwhile), the early ones to chunk 2. */
    struct spy_put *p;
    assert_int_equal(spy_store_put_begin(s, 20, 10, &p), SPY_OK);
    put_early(s);
    uint8_t body[10];
    tu_fill(body, sizeof(body), 20, 0);
    assert_int_equal(spy_store_put_append(p, body, sizeof(body)), SPY_OK);
    assert_int_equal(spy_store_put_commit(p, spy_crc32c(0, body, sizeof(body))), SPY_OK);
    struct spy_object_info a, b;
    assert_int_equal(spy_store_stat(s, 20, &a), SPY_OK);
    assert_int_equal(spy_store_stat(s, 1, &b), SPY_OK);
    assert_true(a.chunk_id != b.chunk_id);
    spy_store_close(s);
    tu_chunk_path(path, sizeof(path), dir, b.chunk_id);
    flip_byte(path, 30);
    flip_byte(path, SPY_CHUNK_SLOT + 30);
    uint8_t *before = malloc(CHUNK_SIZE), *after = malloc(CHUNK_SIZE);
    file_read(path, before, CHUNK_SIZE, 0);

    s = tu_open(dir, CHUNKS, CHUNK_SIZE, 0);
    struct spy_store_stats st;
    spy_store_get_stats(s, &st);
    assert_int_equal(st.chunks_damaged, 1);
    assert_int_equal(st.objects, 1);
    assert_int_equal(tu_check(s, 20, 10), SPY_OK);
    assert_int_equal(tu_check(s, 1, 0), SPY_ENOTFOUND);
    for (uint64_t fid = 100; fid < 110; fid++)
        assert_int_equal(tu_put(s, fid, 20000, 20000), SPY_OK);
    spy_store_close(s);
    file_read(path, after, CHUNK_SIZE, 0);
    assert_memory_equal(before, after, CHUNK_SIZE); /* never written */
    free(before);
    free(after);
    s = tu_open(dir, CHUNKS, CHUNK_SIZE, 0);
    for (uint64_t fid = 100; fid < 110; fid++)
        assert_int_equal(tu_check(s, fid, 20000), SPY_OK);
    spy_store_close(s);
    tu_rmdir(dir);
}

static void test_zero_superblock_on_empty_chunk_reinitialised(void **state)
{
    (void)state;
    char dir[64], path[4096];
    tu_mkdtemp(dir, sizeof(dir));
    struct spy_store *s = tu_open(dir, CHUNKS, CHUNK_SIZE, 0);
    spy_store_close(s);
    /* As if creation had stopped before the superblock was written. */
    uint8_t zeros[SPY_CHUNK_DATA] = {0};
    tu_chunk_path(path, sizeof(path), dir, 3);
    file_write(path, zeros, sizeof(zeros), 0);
    s = tu_open(dir, CHUNKS, CHUNK_SIZE, 0);
    struct spy_store_stats st;
    spy_store_get_stats(s, &st);
    assert_int_equal(st.chunks_damaged, 0);
    spy_store_close(s);
    struct spy_chunk_sb sb;
    assert_true(newest_slot(path, &sb) >= 0);
    assert_int_equal(sb.chunk_id, 3);
    tu_rmdir(dir);
}

static void test_tombstone_before_its_put(void **state)
{
    (void)state;
    char dir[64];
    tu_mkdtemp(dir, sizeof(dir));
    struct spy_store *s = tu_open(dir, CHUNKS, CHUNK_SIZE, 0);
    /* Chunk 1 is held by a big put while fid 7 lands in chunk 2; then chunk
     * 1 is the fullest, so the tombstone goes there, before the PUT in
     * recovery's walk order. */
    struct spy_put *p;
    assert_int_equal(spy_store_put_begin(s, 1, 300000, &p), SPY_OK);
    assert_int_equal(tu_put(s, 7, 3000, 3000), SPY_OK);
    uint8_t *body = malloc(300000);
    tu_fill(body, 300000, 1, 0);
    assert_int_equal(spy_store_put_append(p, body, 300000), SPY_OK);
    assert_int_equal(spy_store_put_commit(p, spy_crc32c(0, body, 300000)), SPY_OK);
    free(body);
    struct spy_object_info one, seven;
    assert_int_equal(spy_store_stat(s, 1, &one), SPY_OK);
    assert_int_equal(spy_store_stat(s, 7, &seven), SPY_OK);
    assert_true(one.chunk_id < seven.chunk_id);
    assert_int_equal(spy_store_delete(s, 7), SPY_OK);
    struct spy_store_stats before, after;
    spy_store_get_stats(s, &before);
    spy_store_close(s);
    s = tu_open(dir, CHUNKS, CHUNK_SIZE, 0);
    spy_store_get_stats(s, &after);
    assert_int_equal(tu_check(s, 7, 3000), SPY_ENOTFOUND);
    assert_int_equal(tu_put(s, 7, 1, 1), SPY_EEXISTS);
    assert_int_equal(tu_check(s, 1, 300000), SPY_OK);
    assert_int_equal(after.garbage, before.garbage);
    assert_int_equal(after.garbage, spy_record_size(3000) + spy_record_size(0));
    assert_int_equal(after.used, before.used);
    assert_int_equal(after.objects, 1);
    assert_int_equal(after.deleted, 1);
    spy_store_close(s);
    tu_rmdir(dir);
}

/* setup, teardown -- install and remove the no-fdatasync table. */
static int setup(void **state)
{
    (void)state;
    spy_chunk_set_io(&fast_io);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    spy_chunk_set_io(NULL);
    return 0;
}

int main(void)
{
    spy_log_set_level(SPY_LOG_ERROR); /* thousands of torn tails are cut on purpose */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torn_last_record_every_offset),
        cmocka_unit_test(test_torn_multi_block_record_sampled),
        cmocka_unit_test(test_body_flip_beyond_checkpoint_skips_one_record),
        cmocka_unit_test(test_body_flip_in_checkpoint_caught_by_read),
        cmocka_unit_test(test_corrupt_header_below_checkpoint),
        cmocka_unit_test(test_superblock_slot_fallback),
        cmocka_unit_test(test_both_slots_corrupt_damages_one_chunk),
        cmocka_unit_test(test_zero_superblock_on_empty_chunk_reinitialised),
        cmocka_unit_test(test_tombstone_before_its_put),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
