/* test_cluster.c - the blobstore against a real local cluster (cluster.h):
 * a private MariaDB, a chunkmaster and 2 groups x 2 spy_servers. Blobs are
 * written and read through the loop API from an h2o loop run by this
 * program. The tests run in order and share the cluster:
 *
 *  1. sizes: 0 B, 1 B, one piece, piece+1, ~50 MiB: pieces, crcs, both
 *     replicas hold every piece (STAT with the blocking spy_client), whole
 *     and ranged reads byte-exact, connections reused.
 *  2. delete: every replica loses the fid; a read then says not found.
 *     abort: a write aborted half-way hands every fid it took to on_orphan
 *     (completed pieces included) and calls nothing else; a read aborted
 *     from inside its sink calls nothing more. read-ahead: the replica that
 *     piece 1's read-ahead GET went to is killed while piece 0 streams; the
 *     read completes by failover, the server charged once.
 *     corruption: a flipped byte on the replica read first makes its GET end
 *     in ECORRUPT; the read fails over and returns the right bytes.
 *  3. kill -9 a replica of the group a write is streaming to: the write
 *     completes on the other group, the failed attempt's fid is reported.
 *  4. reads of a blob whose group lost a replica fail over; a hung server
 *     (SIGSTOP) costs one timeout, and the second read none (blacklist).
 *  5. the chunkmaster stops: reads go on, writes go on until the cached fids
 *     run out and then fail with SPY_EUNAVAIL; restarted, writes work again.
 *
 * Deadlines bound every wait; outcomes are checked by content and counters,
 * not by timing (the timings are printed; one generous bound is asserted). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <h2o/timeout.h>

#include "blobstore/blobstore.h"
#include "blobstore/internal.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "common/spy_client.h"
#include "common/status.h"
#include "tests/blobstore/cluster.h"

#define PIECE       (2u << 20)
#define BIG         (50u * 1024 * 1024 + 12345)
#define IO_TIMEOUT  2000
#define MAX_ORPHANS 256

struct env {
    struct cluster c;
    h2o_evloop_t *loop;
    h2o_timeout_t zero;
    struct spy_blob *bs;
    struct spy_blob_loop *lp;
    uint8_t *src; /* BIG random bytes: every blob is a prefix of it */
    struct spy_blob_piece *big;
    size_t nbig;
    int killed; /* the server killed in test 3 */
    uint64_t max_fid;
};

/* ---- driving the loop ---- */

/* run_until: turns the loop until *flag is set; fails after timeout_ms. */
static void run_until(struct env *e, const int *flag, int timeout_ms)
{
    int64_t deadline = cluster_now_ms() + timeout_ms;
    while (!*flag) {
        if (cluster_now_ms() > deadline) {
            cluster_dump_logs(&e->c);
            fail_msg("timed out after %d ms waiting on the loop", timeout_ms);
        }
        h2o_evloop_run(e->loop, 50);
    }
}

/* ---- writing ---- */

struct orphan {
    uint32_t group_id;
    uint64_t fid;
};

struct wjob {
    struct env *e;
    struct spy_blob_writer *w;
    const uint8_t *data;
    size_t len, off, inflight;
    uint64_t rng;
    size_t pause_at; /* stop feeding once off >= pause_at (0: never) */
    int paused, done, status;
    struct spy_blob_piece *pieces;
    size_t npieces, pieces_seen;
    uint64_t seen_fids[MAX_ORPHANS];
    struct orphan orphans[MAX_ORPHANS];
    size_t norphans;
};

/* on_orphan: records every orphan, to check the accounting. */
static void on_orphan(void *arg, uint32_t group_id, uint64_t fid)
{
    struct wjob *j = arg;
    assert_true(j->norphans < MAX_ORPHANS);
    j->orphans[j->norphans++] = (struct orphan){group_id, fid};
}

/* on_piece: counts (and remembers) completed pieces. */
static void on_piece(void *arg, const struct spy_blob_piece *p)
{
    struct wjob *j = arg;
    assert_true(p->length > 0);
    if (j->pieces_seen < MAX_ORPHANS)
        j->seen_fids[j->pieces_seen] = p->fid;
    j->pieces_seen++;
}

/* on_written: the end of a write: its status and a copy of the pieces. */
static void on_written(void *arg, int status, const struct spy_blob_piece *pieces, size_t n)
{
    struct wjob *j = arg;
    j->status = status;
    j->done = 1;
    j->w = NULL;
    if (status == SPY_OK && n > 0) {
        j->pieces = malloc(n * sizeof(*pieces));
        memcpy(j->pieces, pieces, n * sizeof(*pieces));
    }
    j->npieces = n;
}

static void feed(struct wjob *j);

/* on_consumed: the slice is out: pause here if asked, else feed the next. */
static void on_consumed(void *arg, int status)
{
    struct wjob *j = arg;
    if (status != SPY_OK) {
        j->status = status;
        j->done = 1;
        spy_blob_write_abort(j->w);
        j->w = NULL;
        return;
    }
    j->off += j->inflight;
    j->inflight = 0;
    if (j->pause_at > 0 && j->off >= j->pause_at) {
        j->pause_at = 0;
        j->paused = 1;
        return;
    }
    feed(j);
}

/* feed: the next slice (1 B .. 300 KiB, varying), or finish. */
static void feed(struct wjob *j)
{
    if (j->off == j->len) {
        assert_int_equal(spy_blob_write_finish(j->w, on_written), SPY_OK);
        return;
    }
    j->rng ^= j->rng << 13, j->rng ^= j->rng >> 7, j->rng ^= j->rng << 17;
    size_t n = 1 + (size_t)(j->rng % (300u << 10));
    if (n > j->len - j->off)
        n = j->len - j->off;
    j->inflight = n;
    assert_int_equal(spy_blob_write_data(j->w, j->data + j->off, n, on_consumed), SPY_OK);
}

static const struct spy_blob_write_handler handler = {.on_orphan = on_orphan, .on_piece = on_piece};

/* write_start: a writer fed from data[0..len) in varying slices. */
static void write_start(struct env *e, struct wjob *j, const uint8_t *data, size_t len)
{
    memset(j, 0, sizeof(*j));
    j->e = e;
    j->data = data;
    j->len = len;
    j->rng = 0x2545F4914F6CDD1Dull ^ len;
    assert_int_equal(spy_blob_write_begin(e->lp, &handler, j, &j->w), SPY_OK);
    feed(j);
}

/* write_blob: a whole write; returns its status (pieces in j). */
static int write_blob(struct env *e, struct wjob *j, const uint8_t *data, size_t len)
{
    write_start(e, j, data, len);
    run_until(e, &j->done, 60000);
    return j->status;
}

/* ---- reading ---- */

struct rjob {
    struct env *e;
    struct spy_blob_reader *r;
    uint8_t *out;
    size_t cap, got;
    unsigned slices;
    int done, status;
    int hold_first, held; /* hold_first: pause at the first slice until the test resumes */
    h2o_timeout_entry_t resume;
};

/* on_resume: the paused sink is ready again (the next turn of the loop). */
static void on_resume(h2o_timeout_entry_t *entry)
{
    struct rjob *j = H2O_STRUCT_FROM_MEMBER(struct rjob, resume, entry);
    spy_blob_read_resume(j->r);
}

/* sink: copies the bytes; pauses every third slice, as an HTTP layer that
 * waits for its client's socket would. */
static int sink(void *arg, const uint8_t *data, size_t len)
{
    struct rjob *j = arg;
    assert_true(j->got + len <= j->cap);
    memcpy(j->out + j->got, data, len);
    j->got += len;
    if (++j->slices == 1 && j->hold_first) {
        j->held = 1;
        return SPY_BLOB_PAUSE;
    }
    if (j->slices % 3 != 0)
        return SPY_BLOB_CONTINUE;
    h2o_timeout_link(j->e->loop, &j->e->zero, &j->resume);
    return SPY_BLOB_PAUSE;
}

/* on_read_done: the end of a read. */
static void on_read_done(void *arg, int status)
{
    struct rjob *j = arg;
    j->status = status;
    j->done = 1;
}

/* read_range: reads [off, off + len) of the blob; returns the status and
 * checks the bytes against src when it is SPY_OK. */
static int read_range(struct env *e, const struct spy_blob_piece *p, size_t n, uint64_t off,
                      uint64_t len)
{
    struct rjob j = {.e = e, .cap = len, .out = malloc(len > 0 ? len : 1)};
    j.resume.cb = on_resume;
    int rc = spy_blob_read(e->lp, p, n, off, len, sink, on_read_done, &j, &j.r);
    if (rc != SPY_OK) {
        free(j.out);
        return rc; /* refused at once (a bad range): nothing started */
    }
    run_until(e, &j.done, 60000);
    if (h2o_timeout_is_linked(&j.resume))
        h2o_timeout_unlink(&j.resume);
    if (j.status == SPY_OK) {
        assert_int_equal(j.got, len);
        if (memcmp(j.out, e->src + off, len) != 0)
            fail_msg("bytes [%llu, +%llu) differ from the source", (unsigned long long)off,
                     (unsigned long long)len);
    }
    free(j.out);
    return j.status;
}

/* ---- checking the servers directly ---- */

/* stat_on: STAT fid on server i; returns the status, *len the body size. */
static int stat_on(struct env *e, int i, uint64_t fid, uint64_t *len)
{
    struct spy_client *cl;
    int rc = spy_client_connect("127.0.0.1", e->c.port[i], 5000, &cl);
    if (rc != SPY_OK)
        return rc;
    struct spy_stat_resp st;
    rc = spy_client_stat(cl, fid, &st);
    spy_client_close(cl);
    *len = st.len;
    return rc;
}

/* check_replicas: every piece is on every live server of its group. */
static void check_replicas(struct env *e, const struct spy_blob_piece *p, size_t n)
{
    for (size_t k = 0; k < n; k++)
        for (int i = 0; i < CLUSTER_SERVERS; i++) {
            if (e->c.group[i] != (int)p[k].group_id || e->c.pid[i] <= 0)
                continue;
            uint64_t len = 0;
            int rc = stat_on(e, i, p[k].fid, &len);
            if (rc != SPY_OK || len != p[k].length)
                fail_msg("piece %zu (fid %llu, group %u) on server %d: %s, %llu bytes", k,
                         (unsigned long long)p[k].fid, p[k].group_id, i, spy_strerror(rc),
                         (unsigned long long)len);
        }
}

/* check_pieces: the list tiles the blob with the source's crcs. */
static void check_pieces(struct env *e, const struct wjob *j)
{
    uint64_t total;
    assert_int_equal(spy_pieces_check(j->pieces, j->npieces, &total), SPY_OK);
    assert_int_equal(total, j->len);
    assert_int_equal(j->npieces, spy_pieces_count(j->len, PIECE));
    for (size_t k = 0; k < j->npieces; k++) {
        const struct spy_blob_piece *p = &j->pieces[k];
        assert_int_equal(p->crc32c, spy_crc32c(0, e->src + p->offset, p->length));
        if (p->fid > e->max_fid)
            e->max_fid = p->fid;
    }
}

/* stats: the main client's counters now. */
static struct spy_blob_stats stats(struct env *e)
{
    struct spy_blob_stats st;
    spy_blob_stats(e->bs, &st);
    return st;
}

/* ---- the tests ---- */

/* check_ranges: ranged reads of a written blob: first and last byte, the
 * empty range at the end, one past it, across piece boundaries, and for the
 * big blob 20 random ranges of up to 5 MiB. */
static void check_ranges(struct env *e, const struct wjob *j)
{
    uint64_t len = j->len;
    if (len > 0) {
        assert_int_equal(read_range(e, j->pieces, j->npieces, 0, 1), SPY_OK);
        assert_int_equal(read_range(e, j->pieces, j->npieces, len - 1, 1), SPY_OK);
        assert_int_equal(read_range(e, j->pieces, j->npieces, len, 0), SPY_OK);
        assert_int_equal(read_range(e, j->pieces, j->npieces, len, 1), SPY_ERANGE);
    }
    if (len > PIECE) {
        assert_int_equal(read_range(e, j->pieces, j->npieces, PIECE - 1, 2), SPY_OK);
        assert_int_equal(read_range(e, j->pieces, j->npieces, PIECE, len - PIECE), SPY_OK);
    }
    if (len != BIG)
        return;
    uint64_t x = 99;
    for (int k = 0; k < 20; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t off = x % len, n = (x >> 20) % (len - off) % (5u << 20);
        assert_int_equal(read_range(e, j->pieces, j->npieces, off, n), SPY_OK);
    }
}

/* keep_big: the big blob's pieces stay for the later tests; they must use
 * both groups (the choice is random among the emptiest, seed fixed). */
static void keep_big(struct env *e, struct wjob *j)
{
    int groups[3] = {0};
    for (size_t k = 0; k < j->npieces; k++)
        groups[j->pieces[k].group_id]++;
    fprintf(stderr, "  big blob: %d pieces in group 1, %d in group 2\n", groups[1], groups[2]);
    assert_true(groups[1] > 0 && groups[2] > 0);
    e->big = j->pieces;
    e->nbig = j->npieces;
    j->pieces = NULL;
}

static void test_sizes(void **state)
{
    struct env *e = *state;
    const size_t sizes[] = {0, 1, PIECE, PIECE + 1, BIG};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t len = sizes[s];
        struct wjob j;
        int64_t t0 = cluster_now_ms();
        assert_int_equal(write_blob(e, &j, e->src, len), SPY_OK);
        int64_t t1 = cluster_now_ms();
        check_pieces(e, &j);
        assert_int_equal(j.norphans, 0);
        assert_int_equal(j.pieces_seen, j.npieces);
        check_replicas(e, j.pieces, j.npieces);
        int64_t t2 = cluster_now_ms();
        assert_int_equal(read_range(e, j.pieces, j.npieces, 0, len), SPY_OK);
        int64_t t3 = cluster_now_ms();
        fprintf(stderr, "  %zu bytes: %zu pieces, write %lld ms, read %lld ms\n", len, j.npieces,
                (long long)(t1 - t0), (long long)(t3 - t2));
        check_ranges(e, &j);
        if (len == BIG)
            keep_big(e, &j);
        free(j.pieces);
    }
    struct spy_blob_stats st = stats(e);
    fprintf(stderr, "  connections: %llu opened, %llu reuses\n",
            (unsigned long long)st.conns_opened, (unsigned long long)st.conns_reused);
    assert_true(st.conns_reused > st.conns_opened); /* the pool works */
    assert_int_equal(st.orphans, 0);
    assert_int_equal(st.piece_retries, 0);
}

struct djob {
    int done, status;
};

/* on_deleted: the end of a delete. */
static void on_deleted(void *arg, int status)
{
    struct djob *d = arg;
    d->status = status;
    d->done = 1;
}

static void test_delete(void **state)
{
    struct env *e = *state;
    struct wjob j;
    assert_int_equal(write_blob(e, &j, e->src, 3u << 20), SPY_OK);
    for (size_t k = 0; k < j.npieces; k++) {
        struct djob d = {0};
        assert_int_equal(
            spy_blob_delete(e->lp, j.pieces[k].group_id, j.pieces[k].fid, on_deleted, &d), SPY_OK);
        run_until(e, &d.done, 20000);
        assert_int_equal(d.status, SPY_OK);
        for (int i = 0; i < CLUSTER_SERVERS; i++) {
            uint64_t len;
            if (e->c.group[i] == (int)j.pieces[k].group_id)
                assert_int_equal(stat_on(e, i, j.pieces[k].fid, &len), SPY_ENOTFOUND);
        }
    }
    /* Deleting again is fine (already gone); an unknown group is not found. */
    struct djob d = {0};
    spy_blob_delete(e->lp, j.pieces[0].group_id, j.pieces[0].fid, on_deleted, &d);
    run_until(e, &d.done, 20000);
    assert_int_equal(d.status, SPY_OK);
    d.done = 0;
    spy_blob_delete(e->lp, 999, 1, on_deleted, &d);
    run_until(e, &d.done, 20000);
    assert_int_equal(d.status, SPY_ENOTFOUND);
    assert_int_equal(read_range(e, j.pieces, j.npieces, 0, 3u << 20), SPY_ENOTFOUND);
    free(j.pieces);
}

static void test_write_abort(void **state)
{
    struct env *e = *state;
    struct wjob j;
    write_start(e, &j, e->src, 20u << 20);
    j.pause_at = 2 * PIECE + 100000; /* pieces 0, 1 complete; piece 2 streaming */
    run_until(e, &j.paused, 30000);
    for (int64_t deadline = cluster_now_ms() + 30000; j.pieces_seen < 2;) {
        assert_true(cluster_now_ms() < deadline);
        h2o_evloop_run(e->loop, 50);
    }
    struct spy_blob_stats before = stats(e);
    spy_blob_write_abort(j.w); /* on_orphan runs inside, for every fid */
    assert_int_equal(j.norphans, 3);
    for (size_t k = 0; k < 2; k++) {
        int found = 0;
        for (size_t m = 0; m < j.norphans; m++)
            found += j.orphans[m].fid == j.seen_fids[k];
        assert_int_equal(found, 1);
    }
    for (int64_t until = cluster_now_ms() + 200; cluster_now_ms() < until;)
        h2o_evloop_run(e->loop, 20);
    assert_false(j.done); /* nothing after abort */
    assert_int_equal(stats(e).writes_failed, before.writes_failed + 1);
    /* Cleanup as the registry would do it: delete every orphan. */
    for (size_t k = 0; k < j.norphans; k++) {
        struct djob d = {0};
        spy_blob_delete(e->lp, j.orphans[k].group_id, j.orphans[k].fid, on_deleted, &d);
        run_until(e, &d.done, 20000);
        assert_int_equal(d.status, SPY_OK);
    }
}

struct abort_job {
    struct spy_blob_reader *r;
    unsigned slices;
    int done;
};

/* aborting_sink: aborts its own read from inside, at the third slice. */
static int aborting_sink(void *arg, const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    struct abort_job *a = arg;
    if (++a->slices == 3)
        spy_blob_read_abort(a->r);
    return SPY_BLOB_CONTINUE;
}

/* on_abort_done: must never run for an aborted read. */
static void on_abort_done(void *arg, int status)
{
    (void)status;
    ((struct abort_job *)arg)->done = 1;
}

static void test_read_abort(void **state)
{
    struct env *e = *state;
    struct spy_blob_stats before = stats(e);
    struct abort_job a = {0};
    assert_int_equal(
        spy_blob_read(e->lp, e->big, e->nbig, 0, BIG, aborting_sink, on_abort_done, &a, &a.r),
        SPY_OK);
    for (int64_t until = cluster_now_ms() + 300; cluster_now_ms() < until;)
        h2o_evloop_run(e->loop, 20);
    assert_int_equal(a.slices, 3);
    assert_false(a.done);
    assert_int_equal(stats(e).reads_failed, before.reads_failed + 1);
    /* The loop still works. */
    assert_int_equal(read_range(e, e->big, e->nbig, 0, 1u << 20), SPY_OK);
}

/* fresh_client: a second client of the cluster (its own route table,
 * blacklist and loop state) on the test's loop, ready to read. */
static void fresh_client(struct env *e, struct spy_blob **bs, struct spy_blob_loop **lp)
{
    struct spy_blob_config cfg;
    spy_blob_config_init(&cfg);
    cfg.master_port = e->c.master_port;
    cfg.route_interval_ms = 200;
    cfg.io_timeout_ms = cfg.connect_timeout_ms = IO_TIMEOUT;
    assert_int_equal(spy_blob_create(&cfg, bs), SPY_OK);
    assert_int_equal(spy_blob_wait_ready(*bs, 10000), SPY_OK);
    assert_int_equal(spy_blob_loop_attach(*bs, e->loop, lp), SPY_OK);
}

/* server_named: the index of the server whose "ip:port" is name. */
static int server_named(const struct env *e, const char *name)
{
    for (int i = 0; i < CLUSTER_SERVERS; i++) {
        char want[64];
        snprintf(want, sizeof(want), "127.0.0.1:%d", e->c.port[i]);
        if (strcmp(want, name) == 0)
            return i;
    }
    return -1;
}

/* group_writable: 1 if the main client's route table has group id writable. */
static int group_writable(struct env *e, uint32_t id)
{
    struct spy_blobroute *route = spy_blob_route_get(e->bs);
    const struct spy_blobroute_group *g = route != NULL ? spy_blobroute_group(route, id) : NULL;
    int writable = g != NULL && g->writable;
    spy_blobroute_unref(route);
    return writable;
}

/* server_answers: 1 if server i accepts a connection and answers PING. */
static int server_answers(struct env *e, int i)
{
    struct spy_client *cl;
    if (spy_client_connect("127.0.0.1", e->c.port[i], 1000, &cl) != SPY_OK)
        return 0;
    int ok = spy_client_ping(cl) == SPY_OK;
    spy_client_close(cl);
    return ok;
}

/* restart_server: starts server i again and waits until it answers, the
 * master lists it read-write and the main client sees its group writable
 * (the master may not even have noticed it was gone). */
static void restart_server(struct env *e, int i)
{
    assert_int_equal(cluster_server_start(&e->c, i), 0);
    for (int64_t deadline = cluster_now_ms() + 30000;
         !server_answers(e, i) || cluster_server_status(&e->c, i) != 1 ||
         !group_writable(e, (uint32_t)e->c.group[i]);) {
        assert_true(cluster_now_ms() < deadline);
        h2o_evloop_run(e->loop, 100);
    }
}

/* The read-ahead GET of piece 1 is out while piece 0 streams; its replica is
 * killed before piece 1's turn (the sink holds piece 0's first slice). The
 * read still returns every byte: the dead connection shows when piece 1
 * becomes current, the failure is charged once and the piece fails over. A
 * client of its own keeps the main client's blacklist clean for later tests;
 * the server is started again at the end. */
static void test_read_ahead_replica_killed(void **state)
{
    struct env *e = *state;
    struct spy_blob *bs2;
    struct spy_blob_loop *lp2;
    fresh_client(e, &bs2, &lp2);
    /* where piece 1's read-ahead goes: the first replica of its read order */
    struct spy_blobroute *route = spy_blob_route_get(bs2);
    const struct spy_blobroute_group *g = spy_blobroute_group(route, e->big[1].group_id);
    assert_non_null(g);
    const struct spy_blobroute_server *order[SPY_BLOBROUTE_MAX_SERVERS];
    assert_true(spy_blobroute_read_order(g, e->big[1].fid, spy_blob_blocked, bs2, order) >= 2);
    int victim = server_named(e, order[0]->name);
    spy_blobroute_unref(route);
    assert_true(victim >= 0);

    struct rjob j = {.e = e, .cap = BIG, .out = malloc(BIG), .hold_first = 1};
    j.resume.cb = on_resume;
    assert_int_equal(spy_blob_read(lp2, e->big, e->nbig, 0, BIG, sink, on_read_done, &j, &j.r),
                     SPY_OK);
    run_until(e, &j.held, 10000);
    for (int64_t until = cluster_now_ms() + 200; cluster_now_ms() < until;)
        h2o_evloop_run(e->loop, 20); /* the read-ahead GET reaches its server */
    fprintf(stderr, "  killing server %d, where piece 1's read-ahead went\n", victim);
    cluster_signal_server(&e->c, victim, SIGKILL);
    spy_blob_read_resume(j.r);
    run_until(e, &j.done, 60000);
    assert_int_equal(j.status, SPY_OK);
    assert_int_equal(j.got, BIG);
    assert_memory_equal(j.out, e->src, BIG);
    free(j.out);
    struct spy_blob_stats st;
    spy_blob_stats(bs2, &st);
    fprintf(stderr, "  read-aheads used %llu, dropped %llu; failovers %llu, charged %llu\n",
            (unsigned long long)st.read_aheads_used, (unsigned long long)st.read_aheads_dropped,
            (unsigned long long)st.read_failovers, (unsigned long long)st.server_failures);
    assert_true(st.read_failovers >= 1);
    assert_int_equal(st.server_failures, 1);
    assert_int_equal(st.timeouts, 0);
    assert_true(st.read_aheads_used >= e->nbig / 2); /* most pieces began without a round trip */
    assert_int_equal(spy_blob_loop_detach(lp2), SPY_OK);
    h2o_evloop_run(e->loop, 0);
    spy_blob_destroy(bs2);
    restart_server(e, victim);
}

/* corrupt_on: flips one body byte of fid's record on server i. */
static void corrupt_on(struct env *e, int i, uint64_t fid, uint64_t at)
{
    struct spy_client *cl;
    assert_int_equal(spy_client_connect("127.0.0.1", e->c.port[i], 5000, &cl), SPY_OK);
    struct spy_stat_resp st;
    assert_int_equal(spy_client_stat(cl, fid, &st), SPY_OK);
    spy_client_close(cl);
    char path[256];
    snprintf(path, sizeof(path), "%s/cs%d/chunk_%d_%llu.chunk", e->c.dir, i, e->c.group[i],
             (unsigned long long)st.chunk_id);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    off_t where = (off_t)(st.offset + 48 + at); /* 48: the record header (record.h) */
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, where), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, where), 1);
    close(fd);
}

static void test_corrupt_replica(void **state)
{
    struct env *e = *state;
    struct wjob j;
    assert_int_equal(write_blob(e, &j, e->src, 1u << 20), SPY_OK);
    const struct spy_blob_piece *p = &j.pieces[0];
    /* The replica a read tries first (route.h's order for this fid). */
    struct spy_blobroute *rt = spy_blob_route_get(e->bs);
    const struct spy_blobroute_server *order[SPY_BLOBROUTE_MAX_SERVERS];
    spy_blobroute_read_order(spy_blobroute_group(rt, p->group_id), p->fid, NULL, NULL, order);
    int first = -1;
    for (int i = 0; i < CLUSTER_SERVERS; i++) {
        char name[64];
        snprintf(name, sizeof(name), "127.0.0.1:%d", e->c.port[i]);
        if (strcmp(name, order[0]->name) == 0)
            first = i;
    }
    spy_blobroute_unref(rt);
    assert_true(first >= 0);
    corrupt_on(e, first, p->fid, 100000); /* in the second 64 KiB block */
    struct spy_blob_stats s0 = stats(e);
    /* A range before the damage is served by the first replica... */
    assert_int_equal(read_range(e, j.pieces, 1, 0, 65536), SPY_OK);
    struct spy_blob_stats s1 = stats(e);
    assert_int_equal(s1.read_failovers, s0.read_failovers);
    /* ...the whole piece fails over to the healthy replica, mid-stream. */
    assert_int_equal(read_range(e, j.pieces, 1, 0, 1u << 20), SPY_OK);
    struct spy_blob_stats s2 = stats(e);
    assert_int_equal(s2.read_failovers, s1.read_failovers + 1);
    assert_int_equal(s2.server_failures, s1.server_failures); /* it answered: not blacklisted */
    free(j.pieces);
}

/* writing_server: the index of a server with a put open now, or -1. */
static int writing_server(struct env *e)
{
    for (int i = 0; i < CLUSTER_SERVERS; i++) {
        struct spy_client *cl;
        char *text = NULL;
        if (spy_client_connect("127.0.0.1", e->c.port[i], 5000, &cl) != SPY_OK)
            continue;
        int rc = spy_client_status(cl, &text);
        spy_client_close(cl);
        json_t *st = rc == SPY_OK ? json_loads(text, 0, NULL) : NULL;
        free(text);
        json_int_t active = json_integer_value(json_object_get(st, "writes_active"));
        json_decref(st);
        if (active > 0)
            return i;
    }
    return -1;
}

static void test_kill_during_write(void **state)
{
    struct env *e = *state;
    size_t len = 30u << 20;
    struct wjob j;
    write_start(e, &j, e->src, len);
    /* Stop feeding half-way into piece 3, and let pieces 0..2 complete, so
     * that exactly one put (piece 3's, on both replicas) is open. */
    j.pause_at = 3 * PIECE + PIECE / 2;
    run_until(e, &j.paused, 30000);
    for (int64_t deadline = cluster_now_ms() + 30000; j.pieces_seen < 3;) {
        assert_true(cluster_now_ms() < deadline);
        h2o_evloop_run(e->loop, 50);
    }
    int victim = writing_server(e);
    assert_true(victim >= 0);
    fprintf(stderr, "  killing server %d (group %d) in the middle of a piece\n", victim,
            e->c.group[victim]);
    cluster_signal_server(&e->c, victim, SIGKILL);
    e->killed = victim;
    struct spy_blob_stats before = stats(e);
    j.paused = 0;
    feed(&j);
    run_until(e, &j.done, 60000);
    assert_int_equal(j.status, SPY_OK);
    check_pieces(e, &j);
    /* The failed attempt's fid was reported, in the victim's group. */
    assert_true(j.norphans >= 1);
    int in_victim_group = 0;
    for (size_t k = 0; k < j.norphans; k++) {
        in_victim_group += j.orphans[k].group_id == (uint32_t)e->c.group[victim];
        for (size_t m = 0; m < j.npieces; m++)
            assert_true(j.pieces[m].fid != j.orphans[k].fid); /* never both */
    }
    assert_true(in_victim_group >= 1);
    struct spy_blob_stats after = stats(e);
    assert_true(after.piece_retries > before.piece_retries);
    fprintf(stderr, "  %zu orphans reported, %llu retries\n", j.norphans,
            (unsigned long long)(after.piece_retries - before.piece_retries));
    check_replicas(e, j.pieces, j.npieces); /* on every live replica */
    assert_int_equal(read_range(e, j.pieces, j.npieces, 0, len), SPY_OK);
    free(j.pieces);
}

/* read_with_fresh_client: the big blob through a second client (its own
 * route table, blacklist and loop state) right after server 'victim' was
 * killed: pieces whose read order starts at the victim fail over (connection
 * refused: no timeout), the rest never touch it. */
static void read_with_fresh_client(struct env *e, int victim)
{
    struct spy_blob *bs2;
    struct spy_blob_loop *lp2;
    fresh_client(e, &bs2, &lp2);
    struct spy_blob_loop *main_lp = e->lp;
    e->lp = lp2;
    cluster_signal_server(&e->c, victim, SIGKILL);
    assert_int_equal(read_range(e, e->big, e->nbig, 0, BIG), SPY_OK);
    e->lp = main_lp;
    struct spy_blob_stats st;
    spy_blob_stats(bs2, &st);
    fprintf(stderr, "  fresh client, replica just killed: %llu failovers, %llu timeouts\n",
            (unsigned long long)st.read_failovers, (unsigned long long)st.timeouts);
    assert_true(st.read_failovers >= 1);
    assert_int_equal(st.server_failures, 1); /* blacklisted at its first failure */
    assert_int_equal(st.timeouts, 0);
    assert_int_equal(spy_blob_loop_detach(lp2), SPY_OK);
    h2o_evloop_run(e->loop, 0);
    spy_blob_destroy(bs2);
}

static void test_read_failover_and_blacklist(void **state)
{
    struct env *e = *state;
    /* With the victim still dead, the big blob reads from the survivors. */
    assert_int_equal(read_range(e, e->big, e->nbig, 0, BIG), SPY_OK);
    /* Bring the victim back (its data intact: the big blob was written
     * before the kill), wait until the master lists it RW, kill it again and
     * read at once with a client that still believes it healthy. */
    assert_int_equal(cluster_server_start(&e->c, e->killed), 0);
    for (int64_t deadline = cluster_now_ms() + 20000;
         cluster_server_status(&e->c, e->killed) != 1;) {
        assert_true(cluster_now_ms() < deadline);
        h2o_evloop_run(e->loop, 100);
    }
    read_with_fresh_client(e, e->killed);
    /* A hung server (stopped: the kernel still accepts connections) in the
     * other group costs the first read one I/O timeout... */
    int hung = -1;
    for (int i = CLUSTER_SERVERS - 1; i >= 0; i--)
        if (e->c.group[i] != e->c.group[e->killed])
            hung = i;
    struct spy_blob_stats s1 = stats(e);
    cluster_signal_server(&e->c, hung, SIGSTOP);
    int64_t t0 = cluster_now_ms();
    assert_int_equal(read_range(e, e->big, e->nbig, 0, BIG), SPY_OK);
    int64_t t1 = cluster_now_ms();
    struct spy_blob_stats s2 = stats(e);
    /* ...and the second read none: the server is blacklisted. */
    assert_int_equal(read_range(e, e->big, e->nbig, 0, BIG), SPY_OK);
    int64_t t2 = cluster_now_ms();
    struct spy_blob_stats s3 = stats(e);
    cluster_signal_server(&e->c, hung, SIGCONT);
    fprintf(stderr, "  hung server %d: first read %lld ms (%llu timeouts), second %lld ms (%llu)\n",
            hung, (long long)(t1 - t0), (unsigned long long)(s2.timeouts - s1.timeouts),
            (long long)(t2 - t1), (unsigned long long)(s3.timeouts - s2.timeouts));
    assert_int_equal(s2.timeouts - s1.timeouts, 1);
    assert_true(s2.read_failovers > s1.read_failovers);
    assert_true(t1 - t0 >= IO_TIMEOUT);
    /* No second timeout. (The killed victim may be probed again once its own
     * block expires: a refused connect, which costs no timeout.) */
    assert_int_equal(s3.timeouts, s2.timeouts);
    assert_true(t2 - t1 < IO_TIMEOUT); /* generous: a local 50 MiB read takes far less */
}

/* wait_writable: writes a small blob every 200 ms until one succeeds. */
static void wait_writable(struct env *e, int timeout_ms)
{
    int64_t deadline = cluster_now_ms() + timeout_ms;
    for (;;) {
        struct wjob j;
        int rc = write_blob(e, &j, e->src, 100000);
        if (rc == SPY_OK) {
            check_pieces(e, &j);
            free(j.pieces);
            return;
        }
        if (cluster_now_ms() > deadline)
            fail_msg("no write succeeded within %d ms: %s", timeout_ms, spy_strerror(rc));
        for (int64_t until = cluster_now_ms() + 200; cluster_now_ms() < until;)
            h2o_evloop_run(e->loop, 50);
    }
}

static void test_master_outage(void **state)
{
    struct env *e = *state;
    wait_writable(e, 20000); /* the stopped server is back and reporting */
    assert_int_equal(cluster_master_stop(&e->c), 0);
    /* Wait until the refresher has noticed, so that no refill is in flight. */
    for (int64_t deadline = cluster_now_ms() + 10000; stats(e).master_ok;) {
        assert_true(cluster_now_ms() < deadline);
        h2o_evloop_run(e->loop, 50);
    }
    uint64_t cached = stats(e).fids_available;
    fprintf(stderr, "  master stopped with %llu fids cached\n", (unsigned long long)cached);
    assert_int_equal(read_range(e, e->big, e->nbig, 0, BIG), SPY_OK);
    size_t ok = 0;
    int rc;
    for (;;) {
        struct wjob j;
        rc = write_blob(e, &j, e->src, 100000);
        if (rc != SPY_OK)
            break;
        check_pieces(e, &j);
        free(j.pieces);
        ok++;
        assert_true(ok <= cached);
    }
    fprintf(stderr, "  %zu writes during the outage, then: %s\n", ok, spy_strerror(rc));
    assert_int_equal(rc, SPY_EUNAVAIL);
    assert_int_equal(ok, cached); /* one fid per one-piece blob */
    assert_int_equal(stats(e).fids_available, 0);
    uint64_t before = e->max_fid;
    assert_int_equal(cluster_master_start(&e->c), 0);
    wait_writable(e, 20000);
    assert_true(e->max_fid > before); /* fresh fids, never reused ones */
    assert_int_equal(read_range(e, e->big, e->nbig, 0, BIG), SPY_OK);
}

/* ---- set-up ---- */

/* setup: the cluster, the source bytes, a client and an h2o loop. */
static int setup(void **state)
{
    static struct env env;
    struct env *e = &env;
    memset(e, 0, sizeof(*e));
    if (cluster_start(&e->c) != 0)
        return -1;
    e->src = malloc(BIG);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < BIG; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        e->src[i] = (uint8_t)(x >> 32);
    }
    struct spy_blob_config cfg;
    spy_blob_config_init(&cfg);
    cfg.master_port = e->c.master_port;
    cfg.route_interval_ms = 200;
    cfg.master_timeout_ms = 1000;
    cfg.fid_batch = 32;
    cfg.fid_low_water = 16;
    cfg.connect_timeout_ms = IO_TIMEOUT;
    cfg.io_timeout_ms = IO_TIMEOUT;
    cfg.blacklist_base_ms = 5000; /* outlasts test 4's two reads */
    cfg.blacklist_max_ms = 30000;
    cfg.seed = 42;
    if (spy_blob_create(&cfg, &e->bs) != SPY_OK || spy_blob_wait_ready(e->bs, 10000) != SPY_OK)
        return -1;
    e->loop = h2o_evloop_create();
    h2o_timeout_init(e->loop, &e->zero, 0);
    if (spy_blob_loop_attach(e->bs, e->loop, &e->lp) != SPY_OK)
        return -1;
    e->killed = -1;
    *state = e;
    return 0;
}

/* teardown: totals, detach, and everything stopped and removed. */
static int teardown(void **state)
{
    struct env *e = *state;
    if (e == NULL)
        return 0;
    struct spy_blob_stats st = stats(e);
    fprintf(stderr,
            "  totals: %llu pieces written (%llu bytes), %llu bytes read, %llu failovers, "
            "%llu timeouts, %llu conns opened\n",
            (unsigned long long)st.pieces_written, (unsigned long long)st.bytes_written,
            (unsigned long long)st.bytes_read, (unsigned long long)st.read_failovers,
            (unsigned long long)st.timeouts, (unsigned long long)st.conns_opened);
    int rc = spy_blob_loop_detach(e->lp);
    for (int i = 0; i < 3; i++)
        h2o_evloop_run(e->loop, 0); /* h2o frees closed sockets on a later turn */
    h2o_timeout_dispose(e->loop, &e->zero);
    spy_blob_destroy(e->bs);
    free(e->big);
    free(e->src);
    cluster_stop(&e->c);
    return rc == SPY_OK ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_write_abort),
        cmocka_unit_test(test_read_abort),
        cmocka_unit_test(test_read_ahead_replica_killed),
        cmocka_unit_test(test_corrupt_replica),
        cmocka_unit_test(test_kill_during_write),
        cmocka_unit_test(test_read_failover_and_blacklist),
        cmocka_unit_test(test_master_outage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
