/* Integration tests of the metadata layer as a whole against a real MariaDB
 * (scripts/mariadb in a temp dir): migrations run twice and by two processes
 * at once; two commits of one digest; two pushes sharing layers; an upload
 * continued by a second instance; a full queue; and the database stopped
 * and started under the pool. Races are made deterministic where it matters
 * by holding a row lock from a test connection until both contenders wait. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/status.h"
#include "registry/meta.h"
#include "test_meta_util.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* wait_lock_waiters: polls until n transactions wait for a lock (5 s max).
 * InnoDB refreshes INNODB_TRX only after 100 ms without a read, so the
 * polls are spaced wider than that. */
static void wait_lock_waiters(MYSQL *my, long long n)
{
    long deadline = tm_now_ms() + 5000;
    while (tm_sql_u64(my, "SELECT COUNT(*) FROM information_schema.INNODB_TRX"
                          " WHERE trx_state = 'LOCK WAIT'") < n) {
        if (tm_now_ms() > deadline) {
            mysql_query(my, "SELECT trx_state, trx_query FROM information_schema.INNODB_TRX");
            MYSQL_RES *res = mysql_store_result(my);
            MYSQL_ROW row;
            while (res != NULL && (row = mysql_fetch_row(res)) != NULL)
                fprintf(stderr, "trx: %s %s\n", row[0], row[1] ? row[1] : "-");
            mysql_free_result(res);
            mysql_query(my, "SHOW FULL PROCESSLIST");
            res = mysql_store_result(my);
            while (res != NULL && (row = mysql_fetch_row(res)) != NULL)
                fprintf(stderr, "proc: %s %s %s\n", row[4], row[6] ? row[6] : "-",
                        row[7] ? row[7] : "-");
            mysql_free_result(res);
            fail_msg("%lld transactions never waited for the lock", n);
        }
        sleep_ms(150);
    }
}

/* ---- migrations ---- */

/* Two processes migrate one new database at the same moment (released
 * together through a pipe); then a third and fourth run find nothing to do;
 * a schema newer than this build is refused. Runs first: no threads yet. */
static void test_migrations(void **state)
{
    (void)state;
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            char byte;
            close(go[1]);
            if (read(go[0], &byte, 1) != 1)
                _exit(3);
            struct spy_meta_config cfg;
            tm_config(&cfg, "pool_migrate");
            struct spy_meta *m = NULL;
            int rc = spy_meta_create(&cfg, &m);
            spy_meta_destroy(m);
            _exit(rc == SPY_OK ? 0 : 1);
        }
    }
    close(go[0]);
    assert_int_equal(write(go[1], "gg", 2), 2);
    close(go[1]);
    for (int i = 0; i < 2; i++) {
        int status;
        assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    MYSQL *my = tm_sql_open("pool_migrate");
    assert_int_equal(tm_sql_u64(my, "SELECT version FROM schema_version"), 1);
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM information_schema.TABLES WHERE"
                                    " TABLE_SCHEMA = 'pool_migrate'"),
                     11);
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM information_schema.TABLES WHERE"
                                    " TABLE_SCHEMA = 'pool_migrate' AND (ENGINE <> 'InnoDB' OR"
                                    " TABLE_COLLATION <> 'utf8mb4_bin')"),
                     0);
    /* again, twice: nothing to do, data kept */
    tm_sql_exec(my, "INSERT INTO repositories (name) VALUES ('kept')");
    for (int i = 0; i < 2; i++)
        spy_meta_destroy(tm_meta("pool_migrate"));
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM repositories WHERE name = 'kept'"), 1);
    assert_int_equal(tm_sql_u64(my, "SELECT version FROM schema_version"), 1);
    /* a schema from the future */
    tm_sql_exec(my, "UPDATE schema_version SET version = 99");
    struct spy_meta_config cfg;
    tm_config(&cfg, "pool_migrate");
    struct spy_meta *m = NULL;
    assert_int_equal(spy_meta_create(&cfg, &m), SPY_EINVAL);
    assert_null(m);
    tm_sql_exec(my, "UPDATE schema_version SET version = 1");
    /* a database name that cannot be an identifier */
    tm_config(&cfg, "bad`name");
    assert_int_equal(spy_meta_create(&cfg, &m), SPY_EINVAL);
    mysql_close(my);
}

/* ---- races ---- */

/* check_race: of two commits of one digest, exactly one created the blob; the
 * other kept it and orphaned its own pieces; both are linked. */
static void check_race(MYSQL *my, struct spy_meta_op ops[2], const char *digest)
{
    assert_int_equal(ops[0].status, SPY_OK);
    assert_int_equal(ops[1].status, SPY_OK);
    assert_true(ops[0].out.created != ops[1].out.created);
    int loser = ops[0].out.created ? 1 : 0;
    assert_int_equal(ops[loser].out.orphaned, ops[loser].in.npieces);
    assert_int_equal(ops[1 - loser].out.orphaned, 0);
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM blobs WHERE digest = '%s'", digest), 1);
    assert_int_equal(tm_sql_u64(my, "SELECT MIN(fid) FROM blob_pieces WHERE digest = '%s'", digest),
                     ops[1 - loser].in.pieces[0].fid);
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM orphans WHERE fid >= %llu AND fid < %llu",
                                (unsigned long long)ops[loser].in.pieces[0].fid,
                                (unsigned long long)ops[loser].in.pieces[0].fid + 100),
                     ops[loser].in.npieces);
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM repo_blobs WHERE digest = '%s'", digest),
                     2);
}

static void noop_done(struct spy_meta_op *op)
{
    (void)op;
}

/* race_round: one commit of 'digest' on each instance, submitted together;
 * with 'forced', a test transaction holds the blob row until both wait. */
static void race_round(struct spy_meta *m[2], MYSQL *my, MYSQL *locker, struct tm_loop *loop,
                       int round, bool forced)
{
    char text[32], digest[72];
    snprintf(text, sizeof(text), "race %d", round);
    tm_digest(text, digest);
    if (forced) {
        tm_sql_exec(locker, "START TRANSACTION");
        tm_sql_exec(locker, "INSERT INTO blobs (digest, size, piece_count) VALUES ('%s', 0, 0)",
                    digest);
    }
    struct spy_meta_piece p[2][3];
    struct spy_meta_op ops[2];
    const char *repos[2] = {"race/one", "race/two"};
    for (int i = 0; i < 2; i++) {
        tm_pieces(p[i], 3, 0, 3000, (uint32_t)(i + 1), 10000ull * (round + 1) + 1000ull * i);
        spy_meta_op_init(&ops[i], SPY_META_BLOB_COMMIT, noop_done, NULL);
        ops[i].in = (struct spy_meta_in){
            .repo = repos[i], .digest = digest, .size = 3000, .pieces = p[i], .npieces = 3};
        assert_int_equal(spy_meta_submit(m[i], &ops[i], &loop->poster), SPY_OK);
    }
    if (forced) {
        wait_lock_waiters(my, 2);
        tm_sql_exec(locker, "ROLLBACK");
    }
    assert_int_equal(tm_loop_run(loop, 2), 2);
    check_race(my, ops, digest);
    spy_meta_op_release(&ops[0]);
    spy_meta_op_release(&ops[1]);
}

/* Two imageservers commit the same digest with different pieces at the same
 * time: first with both forced to wait on the blob row, then freely. */
static void test_same_blob_race(void **state)
{
    (void)state;
    struct spy_meta *m[2] = {tm_meta("pool_race"), tm_meta("pool_race")};
    MYSQL *my = tm_sql_open("pool_race"), *locker = tm_sql_open("pool_race");
    struct tm_loop loop;
    tm_loop_init(&loop);
    for (int round = 0; round < 12; round++)
        race_round(m, my, locker, &loop, round, round < 2);
    tm_loop_destroy(&loop);
    mysql_close(locker);
    mysql_close(my);
    spy_meta_destroy(m[0]);
    spy_meta_destroy(m[1]);
}

/* ---- pushes sharing layers ---- */

/* push_blob: a whole upload, as an imageserver does it: create, two
 * appends, complete. Returns the first failing status. */
static int push_blob(struct spy_meta *m, const char *repo, const char *digest, uint64_t fid0)
{
    uint8_t state[SPY_OCI_SHA256_STATE_SIZE] = {0};
    struct spy_meta_piece p[2];
    tm_pieces(p, 2, 0, 2000, 5, fid0);
    struct spy_meta_op op;
    struct spy_meta_in in = {.repo = repo};
    int rc = tm_run(m, &op, SPY_META_UPLOAD_CREATE, &in);
    char uuid[SPY_META_UUID_LEN + 1];
    strcpy(uuid, op.out.uuid);
    for (uint32_t v = 0; rc == SPY_OK && v < 2; v++) {
        in = (struct spy_meta_in){.repo = repo,
                                  .uuid = uuid,
                                  .expected_version = v,
                                  .pieces = &p[v],
                                  .npieces = 1,
                                  .state = state};
        rc = tm_run(m, &op, SPY_META_UPLOAD_APPEND, &in);
    }
    in = (struct spy_meta_in){
        .repo = repo, .uuid = uuid, .expected_version = 2, .digest = digest, .size = 2000};
    return rc == SPY_OK ? tm_run(m, &op, SPY_META_UPLOAD_COMPLETE, &in) : rc;
}

struct pusher {
    struct spy_meta *m;
    const char *repo, *tag;
    const char *config, *shared, *own;
    uint64_t fid0;
    pthread_barrier_t *start;
    int status;
    char manifest[72];
};

/* push_main: one client pushing an image (config, a shared layer, its own
 * layer, the manifest) while the other pushes one sharing blobs. */
static void *push_main(void *arg)
{
    struct pusher *p = arg;
    pthread_barrier_wait(p->start);
    const char *blobs[] = {p->config, p->shared, p->own};
    p->status = SPY_OK;
    for (int i = 0; i < 3 && p->status == SPY_OK; i++)
        p->status = push_blob(p->m, p->repo, blobs[i], p->fid0 + 10u * (unsigned)i);
    if (p->status != SPY_OK)
        return NULL;
    struct spy_oci_manifest parsed;
    const char *layers[] = {p->shared, p->own};
    char *body = tm_image_manifest(p->config, layers, 2, NULL, NULL, NULL, &parsed);
    struct spy_meta_op op;
    p->status = tm_put_manifest(p->m, p->repo, body, &parsed, &p->tag, 1, p->manifest, &op);
    spy_meta_op_release(&op);
    spy_oci_manifest_free(&parsed);
    free(body);
    return NULL;
}

static void test_pushes_sharing_layers(void **state)
{
    (void)state;
    struct spy_meta *m[2] = {tm_meta("pool_push"), tm_meta("pool_push")};
    MYSQL *my = tm_sql_open("pool_push");
    const int rounds = 4;
    for (int round = 0; round < rounds; round++) {
        char config[72], shared[72], own[2][72], text[64];
        snprintf(text, sizeof(text), "config %d", round);
        tm_digest(text, config);
        snprintf(text, sizeof(text), "shared layer %d", round);
        tm_digest(text, shared);
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, 2);
        struct pusher p[2];
        pthread_t th[2];
        for (int i = 0; i < 2; i++) {
            snprintf(text, sizeof(text), "own layer %d/%d", round, i);
            tm_digest(text, own[i]);
            /* even rounds: one repository, two tags; odd rounds: two repos */
            p[i] = (struct pusher){.m = m[i],
                                   .repo = round % 2 == 0 ? "push/same" : (i ? "push/b" : "push/a"),
                                   .tag = i ? "two" : "one",
                                   .config = config,
                                   .shared = shared,
                                   .own = own[i],
                                   .fid0 = 100000ull * (round + 1) + 1000ull * i,
                                   .start = &start};
            pthread_create(&th[i], NULL, push_main, &p[i]);
        }
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&start);
        for (int i = 0; i < 2; i++) {
            assert_int_equal(p[i].status, SPY_OK);
            struct spy_meta_op op;
            struct spy_meta_in in = {.repo = p[i].repo, .tag = p[i].tag};
            assert_int_equal(tm_run(m[1 - i], &op, SPY_META_MANIFEST_GET, &in), SPY_OK);
            assert_string_equal(op.out.manifest->digest, p[i].manifest);
            spy_meta_op_release(&op);
        }
        assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM blobs WHERE digest IN ('%s', '%s')",
                                    config, shared),
                         2);
    }
    /* each shared blob (config and layer, per round) was stored once; the
     * other upload's two pieces were orphaned */
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM orphans WHERE reason = 'duplicate blob'"),
                     rounds * 2 * 2);
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM uploads"), 0);
    mysql_close(my);
    spy_meta_destroy(m[0]);
    spy_meta_destroy(m[1]);
}

/* ---- an upload continued by another imageserver ---- */

static void test_upload_across_instances(void **state)
{
    (void)state;
    struct spy_meta *a = tm_meta("pool_upload"), *b = tm_meta("pool_upload");
    MYSQL *my = tm_sql_open("pool_upload");
    uint8_t st[SPY_OCI_SHA256_STATE_SIZE];
    memset(st, 7, sizeof(st));
    struct spy_meta_op op;
    struct spy_meta_in in = {.repo = "moving"};
    assert_int_equal(tm_run(a, &op, SPY_META_UPLOAD_CREATE, &in), SPY_OK);
    char uuid[SPY_META_UUID_LEN + 1];
    strcpy(uuid, op.out.uuid);
    struct spy_meta_piece p[3];
    tm_pieces(p, 3, 0, 3000, 9, 50);
    in = (struct spy_meta_in){
        .repo = "moving", .uuid = uuid, .pieces = p, .npieces = 1, .state = st};
    assert_int_equal(tm_run(a, &op, SPY_META_UPLOAD_APPEND, &in), SPY_OK);
    /* the next PATCH lands on the other imageserver */
    in = (struct spy_meta_in){.repo = "moving", .uuid = uuid};
    assert_int_equal(tm_run(b, &op, SPY_META_UPLOAD_GET, &in), SPY_OK);
    assert_int_equal(op.out.offset, 1000);
    assert_int_equal(op.out.version, 1);
    assert_memory_equal(op.out.state, st, sizeof(st));
    in = (struct spy_meta_in){.repo = "moving",
                              .uuid = uuid,
                              .expected_version = 1,
                              .pieces = &p[1],
                              .npieces = 1,
                              .state = st};
    assert_int_equal(tm_run(b, &op, SPY_META_UPLOAD_APPEND, &in), SPY_OK);
    /* two PATCHes at once on both: one wins, the other is told to re-sync */
    struct spy_meta_piece q[2];
    tm_pieces(&q[0], 1, 2000, 1000, 9, 70);
    tm_pieces(&q[1], 1, 2000, 1000, 9, 80);
    struct spy_meta_op ops[2];
    struct tm_loop loop;
    tm_loop_init(&loop);
    struct spy_meta *both[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        spy_meta_op_init(&ops[i], SPY_META_UPLOAD_APPEND, noop_done, NULL);
        ops[i].in = (struct spy_meta_in){.repo = "moving",
                                         .uuid = uuid,
                                         .expected_version = 2,
                                         .pieces = &q[i],
                                         .npieces = 1,
                                         .state = st};
        assert_int_equal(spy_meta_submit(both[i], &ops[i], &loop.poster), SPY_OK);
    }
    assert_int_equal(tm_loop_run(&loop, 2), 2);
    assert_true((ops[0].status == SPY_OK) != (ops[1].status == SPY_OK));
    int loser = ops[0].status == SPY_OK ? 1 : 0;
    assert_int_equal(ops[loser].status, SPY_ERANGE);
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM orphans WHERE fid = %llu",
                                (unsigned long long)q[loser].fid),
                     1);
    tm_loop_destroy(&loop);
    /* finished from the first instance; readable from both */
    char digest[72];
    tm_digest("moving blob", digest);
    in = (struct spy_meta_in){
        .repo = "moving", .uuid = uuid, .expected_version = 3, .digest = digest, .size = 3000};
    assert_int_equal(tm_run(a, &op, SPY_META_UPLOAD_COMPLETE, &in), SPY_OK);
    for (int i = 0; i < 2; i++) {
        in = (struct spy_meta_in){.repo = "moving", .digest = digest};
        assert_int_equal(tm_run(both[i], &op, SPY_META_BLOB_STAT, &in), SPY_OK);
        assert_int_equal(op.out.blob->npieces, 3);
        assert_int_equal(op.out.blob->pieces[2].fid, q[1 - loser].fid);
        spy_meta_op_release(&op);
    }
    mysql_close(my);
    spy_meta_destroy(a);
    spy_meta_destroy(b);
}

/* ---- back-pressure ---- */

/* One worker held on a row lock, a queue of two: the third submit is refused
 * at once with SPY_EBUSY; ops that waited past queue_timeout_ms fail with
 * SPY_ETIMEDOUT instead of running late. */
static void test_queue_full_and_timeout(void **state)
{
    (void)state;
    struct spy_meta_config cfg;
    tm_config(&cfg, "pool_busy");
    cfg.workers = 1;
    cfg.queue_max = 2;
    cfg.io_timeout_s = 10; /* lock waits give up after 5 s */
    cfg.queue_timeout_ms = 500;
    struct spy_meta *m = NULL;
    assert_int_equal(spy_meta_create(&cfg, &m), SPY_OK);
    MYSQL *my = tm_sql_open("pool_busy"), *locker = tm_sql_open("pool_busy");
    struct spy_meta_op op, held, queued[2], refused;
    struct spy_meta_in in = {.repo = "busy"};
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_CREATE, &in), SPY_OK);
    tm_sql_exec(locker, "START TRANSACTION");
    tm_sql_exec(locker, "SELECT * FROM uploads WHERE uuid = '%s' FOR UPDATE", op.out.uuid);

    struct tm_loop loop;
    tm_loop_init(&loop);
    uint8_t st[SPY_OCI_SHA256_STATE_SIZE] = {0};
    spy_meta_op_init(&held, SPY_META_UPLOAD_APPEND, noop_done, NULL);
    held.in = (struct spy_meta_in){.repo = "busy", .uuid = op.out.uuid, .state = st};
    assert_int_equal(spy_meta_submit(m, &held, &loop.poster), SPY_OK);
    wait_lock_waiters(my, 1); /* the only worker is stuck */
    for (int i = 0; i < 2; i++) {
        spy_meta_op_init(&queued[i], SPY_META_REPO_ENSURE, noop_done, NULL);
        queued[i].in.repo = "busy";
        assert_int_equal(spy_meta_submit(m, &queued[i], &loop.poster), SPY_OK);
    }
    spy_meta_op_init(&refused, SPY_META_REPO_ENSURE, noop_done, NULL);
    refused.in.repo = "busy";
    long t0 = tm_now_ms();
    assert_int_equal(spy_meta_submit(m, &refused, &loop.poster), SPY_EBUSY);
    long took = tm_now_ms() - t0;
    assert_true(took < 1000);
    struct spy_meta_stats stats;
    spy_meta_stats(m, &stats);
    assert_int_equal(stats.busy, 1);
    assert_int_equal(stats.queued, 2);

    sleep_ms(700); /* the queued ops are now older than queue_timeout_ms */
    tm_sql_exec(locker, "ROLLBACK");
    assert_int_equal(tm_loop_run(&loop, 3), 3);
    assert_int_equal(held.status, SPY_OK);
    assert_int_equal(queued[0].status, SPY_ETIMEDOUT);
    assert_int_equal(queued[1].status, SPY_ETIMEDOUT);
    spy_meta_stats(m, &stats);
    assert_int_equal(stats.timeouts, 2);
    assert_int_equal(loop.n, 0); /* the refused op never came back */
    tm_loop_destroy(&loop);
    mysql_close(locker);
    mysql_close(my);
    spy_meta_destroy(m);
}

/* ---- the database goes away and comes back ---- */

static void test_database_restart(void **state)
{
    (void)state;
    struct spy_meta *m = tm_meta("pool_restart");
    MYSQL *locker = tm_sql_open("pool_restart"), *my = tm_sql_open("pool_restart");
    char d[72];
    tm_digest("survivor", d);
    tm_blob(m, "r", d, 4000, 1);
    struct spy_meta_op op;
    struct spy_meta_in stat = {.repo = "r", .digest = d};
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_STAT, &stat), SPY_OK);
    spy_meta_op_release(&op);
    struct spy_meta_in in = {.repo = "r"};
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_CREATE, &in), SPY_OK);
    char uuid[SPY_META_UUID_LEN + 1];
    strcpy(uuid, op.out.uuid);
    struct spy_meta_stats before;
    spy_meta_stats(m, &before);

    /* an op in flight (waiting on a lock) when the server stops */
    tm_sql_exec(locker, "START TRANSACTION");
    tm_sql_exec(locker, "SELECT * FROM uploads WHERE uuid = '%s' FOR UPDATE", uuid);
    struct tm_loop loop;
    tm_loop_init(&loop);
    uint8_t st[SPY_OCI_SHA256_STATE_SIZE] = {0};
    struct spy_meta_op inflight;
    spy_meta_op_init(&inflight, SPY_META_UPLOAD_APPEND, noop_done, NULL);
    inflight.in = (struct spy_meta_in){.repo = "r", .uuid = uuid, .state = st};
    assert_int_equal(spy_meta_submit(m, &inflight, &loop.poster), SPY_OK);
    wait_lock_waiters(my, 1);
    long t0 = tm_now_ms();
    assert_int_equal(harness_mariadb(&tm_harness, "stop"), 0);
    mysql_close(my); /* the lock holder dies with the server, not before */
    mysql_close(locker);
    assert_int_equal(tm_loop_run(&loop, 1), 1);
    assert_int_equal(inflight.status, SPY_EIO);

    /* the hot path still answers from memory */
    spy_meta_op_init(&op, SPY_META_BLOB_STAT, NULL, NULL);
    op.in = stat;
    assert_true(spy_meta_try_cached(m, &op));
    spy_meta_op_release(&op);
    /* everything else fails fast with a clear status, blocking or not */
    for (int i = 0; i < 5; i++) {
        in = (struct spy_meta_in){.repo = "r", .n = 10};
        assert_int_equal(tm_run(m, &op, SPY_META_TAG_LIST, &in), SPY_EIO);
    }
    struct spy_meta_op async[3];
    for (int i = 0; i < 3; i++) {
        /* (not REPO_ENSURE: a known repository is answered from the cache) */
        spy_meta_op_init(&async[i], SPY_META_UPLOAD_CREATE, noop_done, NULL);
        async[i].in.repo = "r";
        assert_int_equal(spy_meta_submit(m, &async[i], &loop.poster), SPY_OK);
    }
    assert_int_equal(tm_loop_run(&loop, 3), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(async[i].status, SPY_EIO);
    long outage_ms = tm_now_ms() - t0;
    assert_true(outage_ms < 15000);
    print_message("outage: in-flight op and 8 more failed within %ld ms\n", outage_ms);

    /* back: the pool reconnects by itself */
    assert_int_equal(harness_mariadb(&tm_harness, "start"), 0);
    long t1 = tm_now_ms();
    int rc = SPY_EIO;
    while (rc != SPY_OK && tm_now_ms() - t1 < 20000) {
        in = (struct spy_meta_in){.repo = "r", .n = 10};
        rc = tm_run(m, &op, SPY_META_TAG_LIST, &in);
        spy_meta_op_release(&op);
        if (rc != SPY_OK)
            sleep_ms(100);
    }
    assert_int_equal(rc, SPY_OK);
    print_message("recovered %ld ms after the server was up\n", tm_now_ms() - t1);
    for (int i = 0; i < 20; i++) {
        in = (struct spy_meta_in){.repo = "r", .digest = d};
        assert_int_equal(tm_run(m, &op, SPY_META_BLOB_STAT, &in), SPY_OK);
        spy_meta_op_release(&op);
    }
    struct spy_meta_stats after;
    spy_meta_stats(m, &after);
    assert_true(after.connects > before.connects);
    assert_true(after.connect_failures > before.connect_failures);
    assert_true(after.failed >= 9);
    tm_loop_destroy(&loop);
    spy_meta_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrations),
        cmocka_unit_test(test_same_blob_race),
        cmocka_unit_test(test_pushes_sharing_layers),
        cmocka_unit_test(test_upload_across_instances),
        cmocka_unit_test(test_queue_full_and_timeout),
        cmocka_unit_test(test_database_restart),
    };
    return cmocka_run_group_tests(tests, tm_setup, tm_teardown);
}
