/* test_store: the store.h contract: put/stat/read/delete semantics and
 * their errors, back-pressure (EBUSY), the data_dir rules at open, space
 * accounting across a reopen, parallel writers, group commit batching,
 * and an I/O fault injected at every pwrite/fdatasync in turn. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chunkserver/chunk.h"
#include "chunkserver/record.h"
#include "chunkserver/syncer.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "common/status.h"
#include "tests/chunkserver/storage_testutil.h"

#define MIB (1ull << 20)

/* sleep_ms -- for polling loops that wait for a state, never for timing. */
static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Reads bounded by len, from every kind of offset, through both read paths
 * (whole record in buf, and block by block): the bytes are the object's,
 * never more than asked, and the slice's crc (joined from the block table)
 * is the crc32c of exactly the bytes served. */
static void test_read_ranges_and_crcs(void **state)
{
    (void)state;
    char dir[64];
    tu_mkdtemp(dir, sizeof(dir));
    struct spy_store *s = tu_open(dir, 2, 4 * MIB, 0);
    const size_t len = 5 * SPY_STORE_BLOCK + 777; /* a short last block */
    assert_int_equal(tu_put(s, 7, len, 4096), SPY_OK);
    struct spy_object_info info;
    assert_int_equal(spy_store_stat(s, 7, &info), SPY_OK);
    const size_t caps[] = {2 * SPY_STORE_BLOCK, 3 * SPY_STORE_BLOCK, 8 * SPY_STORE_BLOCK};
    const uint64_t offs[] = {
        0, 1, SPY_STORE_BLOCK - 1, SPY_STORE_BLOCK, 3 * SPY_STORE_BLOCK + 5, len - 777, len - 1};
    const uint64_t lens[] = {
        1, 100, SPY_STORE_BLOCK, SPY_STORE_BLOCK + 1, 3 * SPY_STORE_BLOCK, UINT64_MAX};
    uint8_t *buf = malloc(8 * SPY_STORE_BLOCK);
    assert_non_null(buf);
    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++)
        for (size_t o = 0; o < sizeof(offs) / sizeof(offs[0]); o++)
            for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
                struct spy_store_slice sl;
                assert_int_equal(spy_store_read(s, &info, offs[o], lens[l], buf, caps[c], &sl),
                                 SPY_OK);
                assert_true(sl.n >= 1 && sl.n <= lens[l] && sl.n <= len - offs[o]);
                assert_true(tu_slice_ok(&sl, 7, offs[o]));
            }
    free(buf);
    spy_store_close(s);
    tu_rmdir(dir);
}

static void test_put_get_semantics(void **state)
{
    (void)state;
    char dir[64];
    tu_mkdtemp(dir, sizeof(dir));
    struct spy_store *s = tu_open(dir, 2, 4 * MIB, 0);
    assert_int_equal(tu_put(s, 1, 1000, 300), SPY_OK);
    struct spy_object_info info;
    assert_int_equal(spy_store_stat(s, 1, &info), SPY_OK);
    assert_int_equal(info.fid, 1);
    assert_int_equal(info.len, 1000);
    assert_int_equal(info.offset, SPY_CHUNK_DATA);
    assert_true(info.chunk_id == 1 || info.chunk_id == 2);
    assert_true(info.timestamp > 1600000000);
    assert_int_equal(tu_check(s, 1, 1000), SPY_OK);
    /* Duplicate of a live fid. */
    assert_int_equal(tu_put(s, 1, 10, 10), SPY_EEXISTS);
    /* A fid being written: invisible, but refuses a second put. */
    struct spy_put *p, *q;
    assert_int_equal(spy_store_put_begin(s, 2, 50, &p), SPY_OK);
    assert_int_equal(spy_store_put_begin(s, 2, 50, &q), SPY_EEXISTS);
    assert_int_equal(spy_store_stat(s, 2, &info), SPY_ENOTFOUND);
    spy_store_put_abort(p);
    assert_int_equal(tu_put(s, 2, 50, 7), SPY_OK);
    /* Over max_len: ERANGE, and the put is dead until aborted. */
    assert_int_equal(spy_store_put_begin(s, 3, 100, &p), SPY_OK);
    uint8_t buf[200] = {0};
    assert_int_equal(spy_store_put_append(p, buf, 60), SPY_OK);
    assert_int_equal(spy_store_put_append(p, buf, 41), SPY_ERANGE);
    assert_int_equal(spy_store_put_append(p, buf, 1), SPY_ERANGE);
    spy_store_put_abort(p);
    assert_int_equal(spy_store_stat(s, 3, &info), SPY_ENOTFOUND);
    /* Wrong end-to-end crc: ECHECKSUM, nothing indexed, fid free again. */
    assert_int_equal(spy_store_put_begin(s, 4, 100, &p), SPY_OK);
    assert_int_equal(spy_store_put_append(p, buf, 100), SPY_OK);
    assert_int_equal(spy_store_put_commit(p, spy_crc32c(0, buf, 100) ^ 1), SPY_ECHECKSUM);
    assert_int_equal(spy_store_stat(s, 4, &info), SPY_ENOTFOUND);
    assert_int_equal(tu_put(s, 4, 100, 100), SPY_OK);
    /* A body shorter than max_len, and an empty one. */
    assert_int_equal(spy_store_put_begin(s, 5, 10000, &p), SPY_OK);
    tu_fill(buf, 123, 5, 0);
    assert_int_equal(spy_store_put_append(p, buf, 123), SPY_OK);
    assert_int_equal(spy_store_put_commit(p, spy_crc32c(0, buf, 123)), SPY_OK);
    assert_int_equal(tu_check(s, 5, 123), SPY_OK);
    assert_int_equal(tu_put(s, 6, 0, 1), SPY_OK);
    assert_int_equal(spy_store_stat(s, 6, &info), SPY_OK);
    assert_int_equal(info.len, 0);
    /* Read argument errors. */
    uint8_t *rbuf = malloc(2 * SPY_STORE_BLOCK);
    struct spy_store_slice sl;
    assert_int_equal(spy_store_stat(s, 1, &info), SPY_OK);
    assert_int_equal(spy_store_read(s, &info, 1000, 1, rbuf, 2 * SPY_STORE_BLOCK, &sl), SPY_ERANGE);
    assert_int_equal(spy_store_read(s, &info, 0, 1, rbuf, SPY_STORE_BLOCK, &sl), SPY_EINVAL);
    assert_int_equal(spy_store_read(s, &info, 0, 0, rbuf, 2 * SPY_STORE_BLOCK, &sl), SPY_EINVAL);
    assert_int_equal(spy_store_read(s, &info, 999, 5, rbuf, 2 * SPY_STORE_BLOCK, &sl), SPY_OK);
    assert_int_equal(sl.n, 1);
    free(rbuf);
    /* Delete: gone, refused for puts, a second delete is ENOTFOUND. */
    assert_int_equal(spy_store_delete(s, 1), SPY_OK);
    assert_int_equal(spy_store_stat(s, 1, &info), SPY_ENOTFOUND);
    assert_int_equal(tu_put(s, 1, 10, 10), SPY_EEXISTS);
    assert_int_equal(spy_store_delete(s, 1), SPY_ENOTFOUND);
    assert_int_equal(spy_store_delete(s, 999), SPY_ENOTFOUND);
    spy_store_close(s);
    tu_rmdir(dir);
}

static void test_enospc(void **state)
{
    (void)state;
    char dir[64];
    tu_mkdtemp(dir, sizeof(dir));
    struct spy_store *s = tu_open(dir, 2, MIB, 0);
    struct spy_put *p;
    assert_int_equal(spy_store_put_begin(s, 1, 2 * MIB, &p), SPY_ENOSPC);
    assert_int_equal(spy_store_put_begin(s, 1, MIB, &p), SPY_ENOSPC); /* superblock + header */
    struct spy_store_stats st;
    spy_store_get_stats(s, &st);
    assert_int_equal(st.max_free, spy_record_max_body(MIB - SPY_CHUNK_DATA));
    assert_int_equal(tu_put(s, 1, st.max_free, 65536), SPY_OK); /* exactly fills a chunk */
    assert_int_equal(tu_put(s, 2, 900 * 1024, 65536), SPY_OK);
    assert_int_equal(tu_put(s, 3, 200 * 1024, 65536), SPY_ENOSPC); /* no chunk ever could */
    assert_int_equal(tu_put(s, 3, 50 * 1024, 65536), SPY_OK);
    spy_store_get_stats(s, &st);
    assert_true(st.max_free < 200 * 1024);
    assert_int_equal(st.objects, 3);
    spy_store_close(s);
    tu_rmdir(dir);
}

/* The thread of test_ebusy_back_pressure: a put_begin that must wait. */
static void *begin_waiting(void *arg)
{
    struct spy_store *s = arg;
    struct spy_put *p;
    intptr_t rc = spy_store_put_begin(s, 100, 1000, &p);
    if (rc == SPY_OK)
        spy_store_put_abort(p);
    return (void *)rc;
}

static void test_ebusy_back_pressure(void **state)
{
    (void)state;
    char dir[64];
    tu_mkdtemp(dir, sizeof(dir));
    struct spy_store_config cfg = {
        .data_dir = dir, .chunks = 2, .chunk_size = MIB, .group_id = 1, .wait_ms = 100};
    struct spy_store *s;
    char err[256];
    assert_int_equal(spy_store_open(&cfg, &s, err, sizeof(err)), SPY_OK);
    struct spy_put *a, *b, *c;
    assert_int_equal(spy_store_put_begin(s, 1, 1000, &a), SPY_OK);
    assert_int_equal(spy_store_put_begin(s, 2, 1000, &b), SPY_OK);
    struct spy_store_stats st;
    spy_store_get_stats(s, &st);
    assert_int_equal(st.writes_active, 2);
    assert_int_equal(spy_store_put_begin(s, 3, 1000, &c), SPY_EBUSY);
    /* The fid of a put that got EBUSY is free again. */
    assert_int_equal(spy_store_delete(s, 3), SPY_ENOTFOUND);
    spy_store_put_abort(a);
    spy_store_put_abort(b);
    assert_int_equal(tu_put(s, 3, 1000, 1000), SPY_OK);
    spy_store_close(s);

    /* A waiter is counted in writes_pending and gets the chunk once freed. */
    cfg.wait_ms = 60000;
    assert_int_equal(spy_store_open(&cfg, &s, err, sizeof(err)), SPY_OK);
    assert_int_equal(spy_store_put_begin(s, 1, 1000, &a), SPY_OK);
    assert_int_equal(spy_store_put_begin(s, 2, 1000, &b), SPY_OK);
    pthread_t t;
    pthread_create(&t, NULL, begin_waiting, s);
    for (int i = 0; i < 10000; i++) {
        spy_store_get_stats(s, &st);
        if (st.writes_pending == 1)
            break;
        sleep_ms(1);
    }
    assert_int_equal(st.writes_pending, 1);
    spy_store_put_abort(a);
    void *rc;
    pthread_join(t, &rc);
    assert_int_equal((intptr_t)rc, SPY_OK);
    spy_store_get_stats(s, &st);
    assert_int_equal(st.writes_pending, 0);
    assert_int_equal(st.writes_active, 1);
    spy_store_put_abort(b);
    spy_store_close(s);
    tu_rmdir(dir);
}

static void test_delete_survives_reopen_and_garbage(void **state)
{
    (void)state;
    char dir[64];
    tu_mkdtemp(dir, sizeof(dir));
    struct spy_store *s = tu_open(dir, 3, 4 * MIB, 0);
    assert_int_equal(tu_put(s, 10, 100000, 4096), SPY_OK);
    assert_int_equal(tu_put(s, 11, 5000, 4096), SPY_OK);
    struct spy_store_stats st;
    spy_store_get_stats(s, &st);
    assert_int_equal(st.used, spy_record_size(100000) + spy_record_size(5000));
    assert_int_equal(st.garbage, 0);
    assert_int_equal(spy_store_delete(s, 10), SPY_OK);
    uint64_t want_garbage = spy_record_size(100000) + spy_record_size(0);
    spy_store_get_stats(s, &st);
    assert_int_equal(st.used, spy_record_size(5000));
    assert_int_equal(st.garbage, want_garbage);
    assert_int_equal(st.objects, 1);
    assert_int_equal(st.deleted, 1);
    uint64_t free_before = st.total_free;
    spy_store_close(s);

    s = tu_open(dir, 3, 4 * MIB, 0);
    assert_int_equal(tu_check(s, 10, 100000), SPY_ENOTFOUND);
    assert_int_equal(tu_check(s, 11, 5000), SPY_OK);
    assert_int_equal(tu_put(s, 10, 1, 1), SPY_EEXISTS);
    spy_store_get_stats(s, &st);
    assert_int_equal(st.used, spy_record_size(5000));
    assert_int_equal(st.garbage, want_garbage);
    assert_int_equal(st.objects, 1);
    assert_int_equal(st.deleted, 1);
    assert_int_equal(st.total_free, free_before);
    assert_int_equal(st.chunks, 3);
    assert_int_equal(st.chunks_damaged, 0);
    assert_int_equal(st.recovered_truncated, 0);
    assert_true(st.open_seconds > 0 && st.open_seconds < 10);
    spy_store_close(s);
    tu_rmdir(dir);
}

/* open_fails -- opens dir with the given group and chunk_size, expecting a
 * refusal whose reason mentions 'why'. */
static void open_fails(const char *dir, uint32_t group, uint64_t chunk_size, const char *why)
{
    struct spy_store_config cfg = {
        .data_dir = dir, .chunks = 3, .chunk_size = chunk_size, .group_id = group, .wait_ms = 10};
    struct spy_store *s = NULL;
    char err[512] = "";
    int rc = spy_store_open(&cfg, &s, err, sizeof(err));
    if (rc == SPY_OK)
        fail_msg("open of %s succeeded, expected a refusal about '%s'", dir, why);
    if (strstr(err, why) == NULL)
        fail_msg("reason '%s' does not mention '%s'", err, why);
    assert_null(strchr(err, '\n'));
}

static void test_open_rules(void **state)
{
    (void)state;
    char dir[64], path[4096], other[4096];
    tu_mkdtemp(dir, sizeof(dir));
    struct spy_store *s = tu_open(dir, 3, MIB, 0);
    assert_int_equal(tu_put(s, 1, 10, 10), SPY_OK);
    open_fails(dir, 1, MIB, "in use"); /* the LOCK is held */
    spy_store_close(s);
    /* Extra non-chunk files are ignored; the existing chunk count wins. */
    snprintf(path, sizeof(path), "%s/notes.txt", dir);
    close(open(path, O_CREAT | O_WRONLY, 0644));
    struct spy_store_config cfg = {
        .data_dir = dir, .chunks = 7, .chunk_size = MIB, .group_id = 1, .wait_ms = 10};
    char err[512];
    assert_int_equal(spy_store_open(&cfg, &s, err, sizeof(err)), SPY_OK);
    struct spy_store_stats st;
    spy_store_get_stats(s, &st);
    assert_int_equal(st.chunks, 3);
    assert_int_equal(tu_check(s, 1, 10), SPY_OK);
    spy_store_close(s);
    open_fails(dir, 2, MIB, "group");
    open_fails(dir, 1, 2 * MIB, "chunk_size");
    /* A hole in the sequence. */
    tu_chunk_path(path, sizeof(path), dir, 2);
    snprintf(other, sizeof(other), "%s/moved", dir);
    assert_int_equal(rename(path, other), 0);
    open_fails(dir, 1, MIB, "chunk_1_2.chunk is missing");
    assert_int_equal(rename(other, path), 0);
    /* Unknown chunk_* names. */
    snprintf(path, sizeof(path), "%s/chunk_1_01.chunk", dir);
    close(open(path, O_CREAT | O_WRONLY, 0644));
    open_fails(dir, 1, MIB, "chunk_1_01.chunk");
    unlink(path);
    snprintf(path, sizeof(path), "%s/chunk_backup", dir);
    close(open(path, O_CREAT | O_WRONLY, 0644));
    open_fails(dir, 1, MIB, "chunk_backup");
    unlink(path);
    /* Chunks swapped under each other's names: the superblocks disagree. */
    char third[4096];
    tu_chunk_path(path, sizeof(path), dir, 2);
    tu_chunk_path(other, sizeof(other), dir, 3);
    snprintf(third, sizeof(third), "%s/swap", dir);
    assert_int_equal(rename(path, third), 0);
    assert_int_equal(rename(other, path), 0);
    assert_int_equal(rename(third, other), 0);
    open_fails(dir, 1, MIB, "superblock says group 1 chunk 3");
    assert_int_equal(rename(path, third), 0);
    assert_int_equal(rename(other, path), 0);
    assert_int_equal(rename(third, other), 0);
    s = tu_open(dir, 3, MIB, 0); /* back to normal once fixed */
    assert_int_equal(tu_check(s, 1, 10), SPY_OK);
    spy_store_close(s);
    open_fails("", 1, MIB, "data_dir");
    open_fails(dir, 1, 1000, "chunk_size");
    tu_rmdir(dir);
}

/* Parallel writers: each thread puts its own fids, then reads them back. */
struct writer {
    struct spy_store *s;
    uint64_t first_fid;
    int count;
    int failures;
};

/* writer_len -- the body size of fid in the parallel tests: empty to 2+ blocks. */
static size_t writer_len(uint64_t fid)
{
    static const size_t lens[] = {0, 1, 777, 4096, 65536, 65537, 150000, 20000};
    return lens[fid % 8];
}

/* writer_main -- puts the thread's fids, then reads every one back. */
static void *writer_main(void *arg)
{
    struct writer *w = arg;
    for (int i = 0; i < w->count; i++) {
        uint64_t fid = w->first_fid + (uint64_t)i;
        if (tu_put(w->s, fid, writer_len(fid), 32768) != SPY_OK)
            w->failures++;
    }
    for (int i = 0; i < w->count; i++) {
        uint64_t fid = w->first_fid + (uint64_t)i;
        if (tu_check(w->s, fid, writer_len(fid)) != SPY_OK)
            w->failures++;
    }
    return NULL;
}

/* run_writers -- 8 threads x count puts; returns the commits made. */
static int run_writers(struct spy_store *s, int count)
{
    pthread_t t[8];
    struct writer w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (struct writer){.s = s, .first_fid = 1000u * (uint64_t)(i + 1), .count = count};
        pthread_create(&t[i], NULL, writer_main, &w[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    return 8 * count;
}

static void test_parallel_puts(void **state)
{
    (void)state;
    char dir[64];
    tu_mkdtemp(dir, sizeof(dir));
    struct spy_store *s = tu_open(dir, 4, 8 * MIB, 0);
    run_writers(s, 30);
    struct spy_store_stats st;
    spy_store_get_stats(s, &st);
    assert_int_equal(st.objects, 240);
    assert_int_equal(st.writes_active, 0);
    spy_store_close(s);
    s = tu_open(dir, 4, 8 * MIB, 0);
    for (int i = 1; i <= 8; i++)
        for (uint64_t fid = 1000u * i; fid < 1000u * i + 30; fid++)
            assert_int_equal(tu_check(s, fid, writer_len(fid)), SPY_OK);
    spy_store_close(s);
    tu_rmdir(dir);
}

/* An fdatasync that blocks the first time until the test opens the gate. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_open, gate_calls;

/* gated_fdatasync -- counts the call, then waits for the gate. */
static int gated_fdatasync(int fd)
{
    pthread_mutex_lock(&gate_lock);
    gate_calls++;
    while (!gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    return fdatasync(fd);
}

/* one_put -- a thread of test_group_commit_batches: one 3000-byte put. */
static void *one_put(void *arg)
{
    struct writer *w = arg;
    w->failures = tu_put(w->s, w->first_fid, 3000, 1000) != SPY_OK;
    return NULL;
}

static void test_group_commit_batches(void **state)
{
    (void)state;
    char dir[64];
    tu_mkdtemp(dir, sizeof(dir));
    struct spy_store *s = tu_open(dir, 4, 4 * MIB, 1);
    struct spy_syncer *sy = spy_store_syncer(s);
    uint64_t rounds0 = spy_syncer_rounds(sy);
    static const struct spy_chunk_io gated = {pread, pwrite, gated_fdatasync};
    gate_open = 0;
    gate_calls = 0;
    spy_chunk_set_io(&gated);
    /* The first round blocks in fdatasync; whoever commits meanwhile must
     * be served by the one next round: 8 commits, at most 2 rounds. */
    pthread_t t[8];
    struct writer w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (struct writer){.s = s, .first_fid = (uint64_t)i + 1};
        pthread_create(&t[i], NULL, one_put, &w[i]);
    }
    int blocked = 0;
    for (int i = 0; i < 20000 && !blocked; i++) {
        pthread_mutex_lock(&gate_lock);
        blocked = gate_calls > 0;
        pthread_mutex_unlock(&gate_lock);
        blocked = blocked && spy_syncer_waiters(sy) == 8;
        if (!blocked)
            sleep_ms(1);
    }
    assert_true(blocked); /* 8 writers wait; the syncer sits in a round's fdatasync */
    pthread_mutex_lock(&gate_lock);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    spy_chunk_set_io(NULL);
    uint64_t rounds = spy_syncer_rounds(sy) - rounds0;
    /* The blocked round, plus at most one more for everyone who came later. */
    assert_true(rounds >= 1 && rounds <= 2);

    /* Free-running: 8 threads x 10 commits with real fdatasync. */
    rounds0 = spy_syncer_rounds(sy);
    int commits = run_writers(s, 10);
    rounds = spy_syncer_rounds(sy) - rounds0;
    print_message("group commit: %d commits in %llu fdatasync rounds\n", commits,
                  (unsigned long long)rounds);
    assert_true(rounds <= (uint64_t)commits);
    spy_store_close(s);
    s = tu_open(dir, 4, 4 * MIB, 1);
    for (uint64_t fid = 1; fid <= 8; fid++)
        assert_int_equal(tu_check(s, fid, 3000), SPY_OK);
    spy_store_close(s);
    tu_rmdir(dir);
}

/* Fault injection: the N-th pwrite or fdatasync after arming fails with EIO. */
static atomic_int fault_countdown; /* 0: disarmed */
static atomic_int fault_fired;

/* fault_now -- counts one call; true for the one that must fail. */
static int fault_now(void)
{
    if (atomic_load(&fault_countdown) <= 0)
        return 0;
    if (atomic_fetch_sub(&fault_countdown, 1) != 1)
        return 0;
    atomic_store(&fault_fired, 1);
    errno = EIO;
    return 1;
}

/* fault_pwrite, fault_fdatasync -- the real calls, unless the countdown fires. */
static ssize_t fault_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    return fault_now() ? -1 : pwrite(fd, buf, len, off);
}

static int fault_fdatasync(int fd)
{
    return fault_now() ? -1 : fdatasync(fd);
}

static const struct spy_chunk_io fault_io = {pread, fault_pwrite, fault_fdatasync};

#define FAULT_OPS 8

/* fault_workload -- puts fids 1..6 of assorted sizes and deletes fid 2;
 * acked[i] says whether operation i was acknowledged. */
static void fault_workload(struct spy_store *s, int *acked)
{
    static const size_t lens[] = {0, 100, 70000, 5000, 1, 140000};
    for (int i = 0; i < 3; i++)
        acked[i] = tu_put(s, (uint64_t)i + 1, lens[i], 30000) == SPY_OK;
    acked[6] = spy_store_delete(s, 2) == SPY_OK;
    for (int i = 3; i < 6; i++)
        acked[i] = tu_put(s, (uint64_t)i + 1, lens[i], 30000) == SPY_OK;
    acked[7] = spy_store_delete(s, 4) == SPY_OK;
}

/* fault_check -- after a clean reopen: acknowledged puts read back unless
 * an acknowledged delete removed them; refused puts are invisible; a
 * refused delete left its object as it was. */
static void fault_check(struct spy_store *s, const int *acked, int n)
{
    static const size_t lens[] = {0, 100, 70000, 5000, 1, 140000};
    for (int i = 0; i < 6; i++) {
        uint64_t fid = (uint64_t)i + 1;
        int deleted = (fid == 2 && acked[6]) || (fid == 4 && acked[7]);
        int want = acked[i] && !deleted ? SPY_OK : SPY_ENOTFOUND;
        int got = tu_check(s, fid, lens[i]);
        if (got != want)
            fail_msg("fault at op %d: fid %llu put %s, read gives %d, expected %d", n,
                     (unsigned long long)fid, acked[i] ? "acked" : "refused", got, want);
    }
    struct spy_store_stats st;
    spy_store_get_stats(s, &st);
    assert_int_equal(st.chunks_damaged, 0);
}

/* fault_loop -- SQLite's harness: rerun the workload with the fault at
 * N = 1, 2, 3... until a run completes without the fault firing. */
static void fault_loop(int sync)
{
    int runs = 0;
    for (int n = 1;; n++) {
        char dir[64];
        tu_mkdtemp(dir, sizeof(dir));
        struct spy_store *s = tu_open(dir, 2, MIB, sync);
        int acked[FAULT_OPS];
        atomic_store(&fault_fired, 0);
        spy_chunk_set_io(&fault_io);
        atomic_store(&fault_countdown, n);
        fault_workload(s, acked);
        atomic_store(&fault_countdown, 0);
        spy_chunk_set_io(NULL);
        spy_store_close(s);
        s = tu_open(dir, 2, MIB, sync);
        fault_check(s, acked, n);
        spy_store_close(s);
        tu_rmdir(dir);
        runs++;
        if (!atomic_load(&fault_fired))
            break;
    }
    print_message("fault injection (sync=%d): %d runs\n", sync, runs);
    assert_true(runs > 10);
}

static void test_fault_injection_sync(void **state)
{
    (void)state;
    fault_loop(1);
}

static void test_fault_injection_nosync(void **state)
{
    (void)state;
    fault_loop(0);
}

int main(void)
{
    spy_log_set_level(SPY_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_semantics),
        cmocka_unit_test(test_read_ranges_and_crcs),
        cmocka_unit_test(test_enospc),
        cmocka_unit_test(test_ebusy_back_pressure),
        cmocka_unit_test(test_delete_survives_reopen_and_garbage),
        cmocka_unit_test(test_open_rules),
        cmocka_unit_test(test_parallel_puts),
        cmocka_unit_test(test_group_commit_batches),
        cmocka_unit_test(test_fault_injection_sync),
        cmocka_unit_test(test_fault_injection_nosync),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
