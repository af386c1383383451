/* storage_testutil.c - see storage_testutil.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tests/chunkserver/storage_testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/status.h"

/* The public helpers are described in storage_testutil.h. */

void tu_mkdtemp(char *buf, size_t len)
{
    snprintf(buf, len, "/tmp/spystore-test-XXXXXX");
    assert_non_null(mkdtemp(buf));
}

void tu_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* copy_file -- src to dst, byte for byte. */
static void copy_file(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY);
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(in >= 0 && out >= 0);
    static uint8_t buf[1 << 20];
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        assert_int_equal(write(out, buf, (size_t)n), n);
    assert_int_equal(n, 0);
    close(in);
    close(out);
}

void tu_copydir(const char *src, const char *dst)
{
    DIR *d = opendir(src);
    assert_non_null(d);
    struct dirent *e;
    char a[4096], b[4096];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "LOCK") == 0)
            continue;
        snprintf(a, sizeof(a), "%s/%s", src, e->d_name);
        snprintf(b, sizeof(b), "%s/%s", dst, e->d_name);
        copy_file(a, b);
    }
    closedir(d);
}

/* word_at -- 8 pseudo-random bytes for word w of object fid. */
static uint64_t word_at(uint64_t fid, uint64_t w)
{
    uint64_t x = w * 0x9e3779b97f4a7c15ull ^ (fid + 1) * 0xbf58476d1ce4e5b9ull;
    x ^= x >> 31;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 29);
}

void tu_fill(uint8_t *buf, size_t len, uint64_t fid, uint64_t from)
{
    size_t i = 0;
    for (; i < len && (from + i) % 8 != 0; i++)
        buf[i] = (uint8_t)(word_at(fid, (from + i) / 8) >> (8 * ((from + i) % 8)));
    for (; i + 8 <= len; i += 8) {
        uint64_t x = word_at(fid, (from + i) / 8);
        memcpy(buf + i, &x, 8); /* little-endian hosts: byte k is x >> 8k */
    }
    for (; i < len; i++)
        buf[i] = (uint8_t)(word_at(fid, (from + i) / 8) >> (8 * ((from + i) % 8)));
}

int tu_put(struct spy_store *s, uint64_t fid, size_t len, size_t piece)
{
    struct spy_put *p;
    int rc = spy_store_put_begin(s, fid, len, &p);
    if (rc != SPY_OK)
        return rc;
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    tu_fill(buf, len, fid, 0);
    for (size_t at = 0; at < len && rc == SPY_OK; at += piece)
        rc = spy_store_put_append(p, buf + at, len - at < piece ? len - at : piece);
    uint32_t crc = spy_crc32c(0, buf, len);
    free(buf);
    if (rc != SPY_OK) {
        spy_store_put_abort(p);
        return rc;
    }
    return spy_store_put_commit(p, crc);
}

int tu_check(struct spy_store *s, uint64_t fid, size_t expect_len)
{
    struct spy_object_info info;
    int rc = spy_store_stat(s, fid, &info);
    if (rc != SPY_OK)
        return rc;
    if (info.len != expect_len || info.fid != fid)
        return SPY_ECORRUPT;
    /* A per-thread buffer: thousands of calls in test_recover. */
    static __thread uint8_t buf[3 * SPY_STORE_BLOCK];
    size_t cap = sizeof(buf);
    for (uint64_t off = 0; off < info.len && rc == SPY_OK;) {
        struct spy_store_slice sl;
        rc = spy_store_read(s, &info, off, info.len - off, buf, cap, &sl);
        if (rc != SPY_OK)
            break;
        assert_true(sl.n >= 1 && sl.n <= info.len - off && sl.n <= cap);
        if (!tu_slice_ok(&sl, fid, off))
            rc = SPY_ECORRUPT;
        off += sl.n;
    }
    return rc;
}

/* tu_slice_ok: compares the slice with tu_fill's bytes, a block at a time. */
int tu_slice_ok(const struct spy_store_slice *sl, uint64_t fid, uint64_t off)
{
    static __thread uint8_t want[SPY_STORE_BLOCK];
    for (size_t done = 0; done < sl->n;) {
        size_t k = sl->n - done < sizeof(want) ? sl->n - done : sizeof(want);
        tu_fill(want, k, fid, off + done);
        if (memcmp(sl->data + done, want, k) != 0)
            return 0;
        done += k;
    }
    return sl->crc == spy_crc32c(0, sl->data, sl->n);
}

struct spy_store *tu_open(const char *dir, uint32_t chunks, uint64_t chunk_size, int sync)
{
    struct spy_store_config cfg = {
        .data_dir = dir,
        .chunks = chunks,
        .chunk_size = chunk_size,
        .sync = sync,
        .group_id = 1,
        .wait_ms = 1000,
    };
    struct spy_store *s = NULL;
    char err[256];
    int rc = spy_store_open(&cfg, &s, err, sizeof(err));
    if (rc != SPY_OK)
        fail_msg("spy_store_open(%s): %s", dir, err);
    return s;
}

void tu_chunk_path(char *buf, size_t len, const char *dir, uint32_t id)
{
    snprintf(buf, len, "%s/chunk_1_%u.chunk", dir, id);
}
