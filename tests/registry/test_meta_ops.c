/* Integration tests of every metadata operation against a real MariaDB
 * (scripts/mariadb in a temp dir): happy paths and edge cases, one fresh
 * database per test. Concurrency, outages and the pool are in
 * test_meta_pool.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "registry/meta.h"
#include "test_meta_util.h"

/* ---- repositories and blobs ---- */

/* same_piece: field by field (the structs have padding). */
static bool same_piece(const struct spy_meta_piece *a, const struct spy_meta_piece *b)
{
    return a->group_id == b->group_id && a->fid == b->fid && a->offset == b->offset &&
           a->length == b->length && a->crc32c == b->crc32c;
}

static void test_blob_commit_stat(void **state)
{
    (void)state;
    struct spy_meta *m = tm_meta("ops_blobs");
    MYSQL *my = tm_sql_open("ops_blobs");
    char d[72], empty[72];
    tm_digest("blob one", d);
    tm_digest("", empty);
    struct spy_meta_op op;
    struct spy_meta_in in = {.repo = "lib/alpine", .digest = d};
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_STAT, &in), SPY_ENOTFOUND);
    assert_null(op.out.blob);

    struct spy_meta_piece p[3];
    tm_pieces(p, 3, 0, 2500, 7, 100);
    in = (struct spy_meta_in){
        .repo = "lib/alpine", .digest = d, .size = 2500, .pieces = p, .npieces = 3};
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_COMMIT, &in), SPY_OK);
    assert_true(op.out.created);
    assert_int_equal(op.out.orphaned, 0);

    /* stat, linked repo and any repo: the same pieces back */
    const char *repos[] = {"lib/alpine", NULL};
    for (int i = 0; i < 2; i++) {
        in = (struct spy_meta_in){.repo = repos[i], .digest = d};
        assert_int_equal(tm_run(m, &op, SPY_META_BLOB_STAT, &in), SPY_OK);
        assert_string_equal(op.out.blob->digest, d);
        assert_int_equal(op.out.blob->size, 2500);
        assert_int_equal(op.out.blob->npieces, 3);
        for (int k = 0; k < 3; k++)
            assert_true(same_piece(&op.out.blob->pieces[k], &p[k]));
        spy_meta_op_release(&op);
    }
    in = (struct spy_meta_in){.repo = "lib/other", .digest = d};
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_STAT, &in), SPY_ENOTFOUND);

    /* the same commit again (a retried PUT): nothing orphaned */
    in = (struct spy_meta_in){
        .repo = "lib/alpine", .digest = d, .size = 2500, .pieces = p, .npieces = 3};
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_COMMIT, &in), SPY_OK);
    assert_false(op.out.created);
    assert_int_equal(op.out.orphaned, 0);
    /* other pieces for the same digest, from another repo: kept once,
     * linked, and the new pieces are orphans */
    struct spy_meta_piece q[2];
    tm_pieces(q, 2, 0, 2500, 8, 900);
    in = (struct spy_meta_in){
        .repo = "lib/other", .digest = d, .size = 2500, .pieces = q, .npieces = 2};
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_COMMIT, &in), SPY_OK);
    assert_false(op.out.created);
    assert_int_equal(op.out.orphaned, 2);
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM blobs"), 1);
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM blob_pieces"), 3);
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM orphans WHERE group_id = 8 AND fid IN"
                                    " (900, 901) AND reason = 'duplicate blob'"),
                     2);
    in = (struct spy_meta_in){.repo = "lib/other", .digest = d};
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_STAT, &in), SPY_OK);
    assert_int_equal(op.out.blob->pieces[0].fid, 100);
    spy_meta_op_release(&op);

    /* a size that contradicts the stored blob: refused, pieces orphaned */
    tm_pieces(q, 2, 0, 2000, 8, 950);
    in = (struct spy_meta_in){
        .repo = "lib/other", .digest = d, .size = 2000, .pieces = q, .npieces = 2};
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_COMMIT, &in), SPY_EINVAL);
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM orphans WHERE fid IN (950, 951)"), 2);

    /* the empty blob has no pieces */
    in = (struct spy_meta_in){.repo = "lib/alpine", .digest = empty, .size = 0};
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_COMMIT, &in), SPY_OK);
    in = (struct spy_meta_in){.repo = "lib/alpine", .digest = empty};
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_STAT, &in), SPY_OK);
    assert_int_equal(op.out.blob->size, 0);
    assert_int_equal(op.out.blob->npieces, 0);
    spy_meta_op_release(&op);
    mysql_close(my);
    spy_meta_destroy(m);
}

static void test_link_unlink_and_cache(void **state)
{
    (void)state;
    struct spy_meta *m = tm_meta("ops_links");
    char d[72], nope[72];
    tm_digest("layer", d);
    tm_digest("never stored", nope);
    tm_blob(m, "a/src", d, 3000, 1);
    struct spy_meta_op op;
    struct spy_meta_in in = {.repo = "b/dst", .digest = d, .from = "a/src"};
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_LINK, &in), SPY_OK);
    in.from = "c/unrelated"; /* not linked there */
    in.repo = "c/dst2";
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_LINK, &in), SPY_ENOTFOUND);
    in = (struct spy_meta_in){.repo = "c/dst2", .digest = nope};
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_LINK, &in), SPY_ENOTFOUND);
    in = (struct spy_meta_in){.repo = "c/dst2", .digest = d}; /* from anywhere */
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_LINK, &in), SPY_OK);
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_LINK, &in), SPY_OK); /* twice: fine */

    /* the hot path: after one stat the cache answers */
    in = (struct spy_meta_in){.repo = "b/dst", .digest = d};
    spy_meta_op_init(&op, SPY_META_BLOB_STAT, NULL, NULL);
    op.in = in;
    assert_false(spy_meta_try_cached(m, &op));
    assert_int_equal(spy_meta_run(m, &op), SPY_OK);
    spy_meta_op_release(&op);
    spy_meta_op_init(&op, SPY_META_BLOB_STAT, NULL, NULL);
    op.in = in;
    assert_true(spy_meta_try_cached(m, &op));
    assert_int_equal(op.out.blob->size, 3000);
    spy_meta_op_release(&op);

    /* unlink: gone from the repo (and from the cache), still elsewhere */
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_UNLINK, &in), SPY_OK);
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_UNLINK, &in), SPY_ENOTFOUND);
    spy_meta_op_init(&op, SPY_META_BLOB_STAT, NULL, NULL);
    op.in = in;
    assert_false(spy_meta_try_cached(m, &op));
    assert_int_equal(spy_meta_run(m, &op), SPY_ENOTFOUND);
    in.repo = "a/src";
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_STAT, &in), SPY_OK);
    spy_meta_op_release(&op);
    in = (struct spy_meta_in){.repo = "no/such", .digest = d};
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_UNLINK, &in), SPY_ENOTFOUND);

    struct spy_meta_stats st;
    spy_meta_stats(m, &st);
    assert_int_equal(st.cache_hits, 1);
    assert_int_equal(st.cache_misses, 2);
    spy_meta_destroy(m);
}

static int done_calls;

static void never_done(struct spy_meta_op *op)
{
    (void)op;
    fail_msg("a refused op got a callback");
}

static void count_done(struct spy_meta_op *op)
{
    (void)op;
    done_calls++;
}

/* Submit refuses malformed inputs at once, without a callback. */
static void test_invalid_inputs(void **state)
{
    (void)state;
    struct spy_meta *m = tm_meta("ops_invalid");
    char d[72];
    tm_digest("x", d);
    struct spy_meta_piece gap[2] = {{1, 1, 0, 10, 0}, {1, 2, 11, 10, 0}};
    struct spy_meta_piece ok[2] = {{1, 1, 0, 10, 0}, {1, 2, 10, 10, 0}};
    const char *bad_tag[] = {"-bad"};
    struct {
        enum spy_meta_kind kind;
        struct spy_meta_in in;
    } cases[] = {
        {SPY_META_REPO_ENSURE, {.repo = "Upper/Case"}},
        {SPY_META_REPO_ENSURE, {.repo = NULL}},
        {SPY_META_BLOB_STAT, {.repo = "ok", .digest = "sha256:abc"}},
        {SPY_META_BLOB_STAT, {.repo = "ok", .digest = "md5:0123"}},
        {SPY_META_BLOB_COMMIT,
         {.repo = "ok", .digest = d, .size = 21, .pieces = gap, .npieces = 2}},
        {SPY_META_BLOB_COMMIT, {.repo = "ok", .digest = d, .size = 21, .pieces = ok, .npieces = 2}},
        {SPY_META_BLOB_COMMIT,
         {.repo = "ok", .digest = d, .size = 20, .pieces = ok + 1, .npieces = 1}},
        {SPY_META_MANIFEST_GET, {.repo = "ok", .digest = d, .tag = "latest"}},
        {SPY_META_MANIFEST_GET, {.repo = "ok"}},
        {SPY_META_MANIFEST_DELETE, {.repo = "ok", .tag = "-bad"}},
        {SPY_META_MANIFEST_PUT, {.repo = "ok", .digest = d, .body = "{}", .body_len = 2}},
        {SPY_META_UPLOAD_GET, {.repo = "ok", .uuid = "0123"}},
        {SPY_META_UPLOAD_GET, {.repo = "ok", .uuid = "0123456789ABCDEF0123456789abcdef"}},
        {SPY_META_UPLOAD_APPEND,
         {.repo = "ok", .uuid = "0123456789abcdef0123456789abcdef", .pieces = ok, .npieces = 2}},
        {SPY_META_ORPHANS_RECORD, {.pieces = ok, .npieces = 2}},
        {SPY_META_ORPHANS_RECORD, {.pieces = ok, .npieces = 0, .reason = "x"}},
        {SPY_META_MANIFEST_DELETE, {.repo = "ok", .digest = d, .tags = bad_tag, .tag = "x"}},
    };
    struct tm_loop loop;
    tm_loop_init(&loop);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct spy_meta_op op;
        spy_meta_op_init(&op, cases[i].kind, never_done, NULL);
        op.in = cases[i].in;
        int rc = spy_meta_submit(m, &op, &loop.poster);
        if (rc != SPY_EINVAL)
            fail_msg("case %zu: submit gave %d", i, rc);
        spy_meta_op_release(&op);
    }
    /* a control: a valid op is accepted and answered (the repo is unknown) */
    struct spy_meta_op control;
    spy_meta_op_init(&control, SPY_META_TAG_LIST, count_done, NULL);
    control.in = (struct spy_meta_in){.repo = "ok", .n = 1};
    done_calls = 0;
    assert_int_equal(spy_meta_submit(m, &control, &loop.poster), SPY_OK);
    assert_int_equal(tm_loop_run(&loop, 1), 1);
    assert_int_equal(done_calls, 1);
    assert_int_equal(control.status, SPY_ENOTFOUND);
    spy_meta_op_release(&control);
    tm_loop_destroy(&loop);
    spy_meta_destroy(m);
}

/* ---- the async API ---- */

struct done_rec {
    int calls;
    int status;
    pthread_t thread;
};

static void on_done(struct spy_meta_op *op)
{
    struct done_rec *r = op->data;
    r->calls++;
    r->status = op->status;
    r->thread = pthread_self();
}

static void test_async_submit(void **state)
{
    (void)state;
    struct spy_meta *m = tm_meta("ops_async");
    struct tm_loop loop;
    tm_loop_init(&loop);
    enum { N = 40 };
    struct spy_meta_op ops[N];
    struct done_rec recs[N];
    memset(recs, 0, sizeof(recs));
    char names[N][32];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "async/repo%02d", i);
        spy_meta_op_init(&ops[i], SPY_META_REPO_ENSURE, on_done, &recs[i]);
        ops[i].in.repo = names[i];
        assert_int_equal(spy_meta_submit(m, &ops[i], &loop.poster), SPY_OK);
    }
    assert_int_equal(tm_loop_run(&loop, N), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(recs[i].calls, 1);
        assert_int_equal(recs[i].status, SPY_OK);
        assert_true(pthread_equal(recs[i].thread, pthread_self()));
        spy_meta_op_release(&ops[i]);
    }
    struct spy_meta_op op;
    struct spy_meta_in in = {.n = 100};
    assert_int_equal(tm_run(m, &op, SPY_META_CATALOG, &in), SPY_OK);
    assert_int_equal(op.out.count, N);
    assert_false(op.out.more);
    spy_meta_op_release(&op);
    tm_loop_destroy(&loop);
    spy_meta_destroy(m);
}

/* ---- manifests ---- */

static void test_manifest_put_missing_then_ok(void **state)
{
    (void)state;
    struct spy_meta *m = tm_meta("ops_manifests");
    MYSQL *my = tm_sql_open("ops_manifests");
    char cfg[72], l1[72], l2[72], md[72], other[72];
    tm_digest("config", cfg);
    tm_digest("layer 1", l1);
    tm_digest("layer 2", l2);
    tm_digest("elsewhere", other);
    tm_blob(m, "app", cfg, 500, 10);
    tm_blob(m, "app", l1, 5000, 20);
    tm_blob(m, "elsewhere", l2, 1000, 30); /* exists, but not linked to app */
    const char *layers[] = {l1, l2, "sha384:0000"};
    struct spy_oci_manifest parsed;
    char *body = tm_image_manifest(cfg, layers, 3, NULL, NULL, NULL, &parsed);
    const char *tags[] = {"v1", "latest"};
    struct spy_meta_op op;
    assert_int_equal(tm_put_manifest(m, "app", body, &parsed, tags, 2, md, &op), SPY_ENOTFOUND);
    assert_int_equal(op.out.nmissing, 2);
    assert_string_equal(op.out.missing[0], l2);
    assert_string_equal(op.out.missing[1], "sha384:0000");
    spy_meta_op_release(&op);
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM manifests"), 0);
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM tags"), 0);
    spy_oci_manifest_free(&parsed);
    free(body);

    /* without the unknown algorithm and with l2 mounted: stored */
    struct spy_meta_in in = {.repo = "app", .digest = l2, .from = "elsewhere"};
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_LINK, &in), SPY_OK);
    body = tm_image_manifest(cfg, layers, 2, NULL, NULL, NULL, &parsed);
    assert_int_equal(tm_put_manifest(m, "app", body, &parsed, tags, 2, md, &op), SPY_OK);
    assert_true(op.out.created);
    assert_int_equal(op.out.nmissing, 0);
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM manifest_refs WHERE kind = 1"), 3);
    /* the same put again: a no-op that keeps the tags */
    assert_int_equal(tm_put_manifest(m, "app", body, &parsed, tags, 1, md, &op), SPY_OK);
    assert_false(op.out.created);

    /* get by digest and by either tag: the exact bytes and type */
    const char *refs[] = {NULL, "v1", "latest"};
    for (int i = 0; i < 3; i++) {
        in = (struct spy_meta_in){.repo = "app", .digest = refs[i] ? NULL : md, .tag = refs[i]};
        assert_int_equal(tm_run(m, &op, SPY_META_MANIFEST_GET, &in), SPY_OK);
        assert_string_equal(op.out.manifest->digest, md);
        assert_string_equal(op.out.manifest->media_type, SPY_OCI_MEDIA_OCI_MANIFEST);
        assert_int_equal(op.out.manifest->size, strlen(body));
        assert_memory_equal(op.out.manifest->body, body, strlen(body));
        assert_null(op.out.manifest->subject);
        spy_meta_op_release(&op);
    }
    in = (struct spy_meta_in){.repo = "elsewhere", .digest = md};
    assert_int_equal(tm_run(m, &op, SPY_META_MANIFEST_GET, &in), SPY_ENOTFOUND);
    in = (struct spy_meta_in){.repo = "app", .tag = "nope"};
    assert_int_equal(tm_run(m, &op, SPY_META_MANIFEST_GET, &in), SPY_ENOTFOUND);

    /* an index: a missing child is listed, then accepted once it exists */
    char child_digest[72];
    tm_digest("child manifest", child_digest);
    const char *children[] = {md, child_digest};
    struct spy_oci_manifest ip;
    char *index = tm_index_manifest(children, 2, &ip);
    char id[72];
    assert_int_equal(tm_put_manifest(m, "app", index, &ip, NULL, 0, id, &op), SPY_ENOTFOUND);
    assert_int_equal(op.out.nmissing, 1);
    assert_string_equal(op.out.missing[0], child_digest);
    spy_meta_op_release(&op);
    spy_oci_manifest_free(&ip);
    free(index);
    index = tm_index_manifest(children, 1, &ip);
    const char *multi[] = {"multi", "latest"};
    assert_int_equal(tm_put_manifest(m, "app", index, &ip, multi, 2, id, &op), SPY_OK);
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM manifest_refs WHERE kind = 2"), 1);
    /* latest moved to the index */
    in = (struct spy_meta_in){.repo = "app", .tag = "latest"};
    assert_int_equal(tm_run(m, &op, SPY_META_MANIFEST_GET, &in), SPY_OK);
    assert_string_equal(op.out.manifest->digest, id);
    assert_string_equal(op.out.manifest->media_type, SPY_OCI_MEDIA_OCI_INDEX);
    spy_meta_op_release(&op);
    spy_oci_manifest_free(&ip);
    free(index);
    spy_oci_manifest_free(&parsed);
    free(body);
    mysql_close(my);
    spy_meta_destroy(m);
}

static void test_manifest_delete_and_cache(void **state)
{
    (void)state;
    struct spy_meta *m = tm_meta("ops_mdelete");
    char cfg[72], md[72];
    tm_digest("cfg", cfg);
    tm_blob(m, "r", cfg, 10, 1);
    struct spy_oci_manifest parsed;
    char *body = tm_image_manifest(cfg, NULL, 0, NULL, NULL, NULL, &parsed);
    const char *tags[] = {"a", "b", "c"};
    struct spy_meta_op op;
    assert_int_equal(tm_put_manifest(m, "r", body, &parsed, tags, 3, md, &op), SPY_OK);

    /* the put filled the cache: both by digest and by tag */
    spy_meta_op_init(&op, SPY_META_MANIFEST_GET, NULL, NULL);
    op.in = (struct spy_meta_in){.repo = "r", .tag = "b"};
    assert_true(spy_meta_try_cached(m, &op));
    assert_string_equal(op.out.manifest->digest, md);
    spy_meta_op_release(&op);

    /* delete by tag: only the tag */
    struct spy_meta_in in = {.repo = "r", .tag = "a"};
    assert_int_equal(tm_run(m, &op, SPY_META_MANIFEST_DELETE, &in), SPY_OK);
    assert_int_equal(tm_run(m, &op, SPY_META_MANIFEST_DELETE, &in), SPY_ENOTFOUND);
    spy_meta_op_init(&op, SPY_META_MANIFEST_GET, NULL, NULL);
    op.in = in;
    assert_false(spy_meta_try_cached(m, &op));
    assert_int_equal(spy_meta_run(m, &op), SPY_ENOTFOUND);
    in = (struct spy_meta_in){.repo = "r", .digest = md};
    assert_int_equal(tm_run(m, &op, SPY_META_MANIFEST_GET, &in), SPY_OK);
    spy_meta_op_release(&op);

    /* delete by digest: the manifest and every tag pointing at it */
    assert_int_equal(tm_run(m, &op, SPY_META_MANIFEST_DELETE, &in), SPY_OK);
    assert_int_equal(tm_run(m, &op, SPY_META_MANIFEST_DELETE, &in), SPY_ENOTFOUND);
    const char *gone[] = {"b", "c"};
    for (int i = 0; i < 2; i++) {
        spy_meta_op_init(&op, SPY_META_MANIFEST_GET, NULL, NULL);
        op.in = (struct spy_meta_in){.repo = "r", .tag = gone[i]};
        assert_false(spy_meta_try_cached(m, &op));
        assert_int_equal(spy_meta_run(m, &op), SPY_ENOTFOUND);
    }
    spy_meta_op_init(&op, SPY_META_MANIFEST_GET, NULL, NULL);
    op.in = in;
    assert_false(spy_meta_try_cached(m, &op));
    assert_int_equal(spy_meta_run(m, &op), SPY_ENOTFOUND);
    in = (struct spy_meta_in){.repo = "r", .n = 10};
    assert_int_equal(tm_run(m, &op, SPY_META_TAG_LIST, &in), SPY_OK);
    assert_int_equal(op.out.count, 0);
    spy_meta_op_release(&op);
    in = (struct spy_meta_in){.repo = "never/seen", .digest = md};
    assert_int_equal(tm_run(m, &op, SPY_META_MANIFEST_DELETE, &in), SPY_ENOTFOUND);
    spy_oci_manifest_free(&parsed);
    free(body);
    spy_meta_destroy(m);
}

/* A 4 MiB manifest full of characters that need escaping: byte-exact. */
static void test_manifest_large_and_escaped(void **state)
{
    (void)state;
    struct spy_meta *m = tm_meta("ops_large");
    char cfg[72], md[72];
    tm_digest("cfg", cfg);
    tm_blob(m, "big", cfg, 10, 1);
    size_t cap = SPY_OCI_MANIFEST_MAX;
    char *body = malloc(cap + 1);
    int n = snprintf(
        body, cap,
        "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
        "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
        "\"digest\":\"%s\",\"size\":10},\"layers\":[],"
        "\"annotations\":{\"x\":\"",
        cfg);
    const char *pattern = "\\\"'\\\\\\n\\r\\u001a \xc3\xa9";
    size_t plen = strlen(pattern);
    while ((size_t)n + plen + 3 < cap) {
        memcpy(body + n, pattern, plen);
        n += (int)plen;
    }
    strcpy(body + n, "\"}}");
    assert_int_equal(strlen(body), (size_t)n + 3);
    struct spy_oci_manifest parsed;
    assert_int_equal(spy_oci_manifest_parse(NULL, body, strlen(body), &parsed), SPY_OCI_OK);
    struct spy_meta_op op;
    assert_int_equal(tm_put_manifest(m, "big", body, &parsed, NULL, 0, md, &op), SPY_OK);
    struct spy_meta_in in = {.repo = "big", .digest = md};
    assert_int_equal(tm_run(m, &op, SPY_META_MANIFEST_GET, &in), SPY_OK);
    assert_int_equal(op.out.manifest->size, strlen(body));
    assert_memory_equal(op.out.manifest->body, body, strlen(body));
    spy_meta_op_release(&op);
    spy_oci_manifest_free(&parsed);
    free(body);
    spy_meta_destroy(m);
}

static void test_referrers_and_dangling_subject(void **state)
{
    (void)state;
    struct spy_meta *m = tm_meta("ops_referrers");
    char cfg[72], subject[72], r1[72], r2[72], plain[72];
    tm_digest("cfg", cfg);
    tm_digest("a subject never pushed", subject);
    tm_blob(m, "app", cfg, 10, 1);
    struct spy_oci_manifest p1, p2, p3;
    char *b1 = tm_image_manifest(cfg, NULL, 0, subject, "application/vnd.example.sbom",
                                 "it's \\\"ok\\\"", &p1);
    char *b2 = tm_image_manifest(cfg, NULL, 0, subject, "application/vnd.example.sig", NULL, &p2);
    char *b3 = tm_image_manifest(cfg, NULL, 0, NULL, NULL, NULL, &p3);
    struct spy_meta_op op;
    assert_int_equal(tm_put_manifest(m, "app", b1, &p1, NULL, 0, r1, &op), SPY_OK);
    assert_int_equal(tm_put_manifest(m, "app", b2, &p2, NULL, 0, r2, &op), SPY_OK);
    assert_int_equal(tm_put_manifest(m, "app", b3, &p3, NULL, 0, plain, &op), SPY_OK);

    struct spy_meta_in in = {.repo = "app", .digest = subject};
    assert_int_equal(tm_run(m, &op, SPY_META_REFERRERS, &in), SPY_OK);
    assert_int_equal(op.out.count, 2);
    assert_false(op.out.more);
    const char *first = strcmp(r1, r2) < 0 ? r1 : r2;
    assert_string_equal(op.out.referrers[0].digest, first);
    for (size_t i = 0; i < 2; i++) {
        const struct spy_oci_referrer *r = &op.out.referrers[i];
        bool is_sbom = strcmp(r->digest, r1) == 0;
        assert_string_equal(r->media_type, SPY_OCI_MEDIA_OCI_MANIFEST);
        assert_int_equal(r->size, strlen(is_sbom ? b1 : b2));
        assert_string_equal(r->artifact_type, is_sbom ? "application/vnd.example.sbom"
                                                      : "application/vnd.example.sig");
        if (is_sbom)
            assert_string_equal(
                json_string_value(json_object_get(r->annotations, "org.example.note")),
                "it's \"ok\"");
        else
            assert_null(r->annotations);
    }
    /* the response builds */
    char *json = NULL;
    size_t len = 0;
    bool filtered = false;
    assert_int_equal(
        spy_oci_referrers_json(op.out.referrers, op.out.count, NULL, &json, &len, &filtered),
        SPY_OK);
    free(json);
    spy_meta_op_release(&op);

    in.artifact_type = "application/vnd.example.sig";
    assert_int_equal(tm_run(m, &op, SPY_META_REFERRERS, &in), SPY_OK);
    assert_int_equal(op.out.count, 1);
    assert_string_equal(op.out.referrers[0].digest, r2);
    spy_meta_op_release(&op);
    in = (struct spy_meta_in){.repo = "app", .digest = plain};
    assert_int_equal(tm_run(m, &op, SPY_META_REFERRERS, &in), SPY_OK);
    assert_int_equal(op.out.count, 0);
    spy_meta_op_release(&op);
    in = (struct spy_meta_in){.repo = "unknown/repo", .digest = subject};
    assert_int_equal(tm_run(m, &op, SPY_META_REFERRERS, &in), SPY_OK);
    assert_int_equal(op.out.count, 0);
    spy_meta_op_release(&op);
    /* the subject is recorded on get */
    in = (struct spy_meta_in){.repo = "app", .digest = r1};
    assert_int_equal(tm_run(m, &op, SPY_META_MANIFEST_GET, &in), SPY_OK);
    assert_string_equal(op.out.manifest->subject, subject);
    assert_string_equal(op.out.manifest->artifact_type, "application/vnd.example.sbom");
    spy_meta_op_release(&op);
    spy_oci_manifest_free(&p1);
    spy_oci_manifest_free(&p2);
    spy_oci_manifest_free(&p3);
    free(b1);
    free(b2);
    free(b3);
    spy_meta_destroy(m);
}

/* ---- pagination ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* expect_after: the names of all[] strictly after 'last' (bytewise), sorted. */
static size_t expect_after(const char **all, size_t n, const char *last, const char **out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (last == NULL || strcmp(all[i], last) > 0)
            out[k++] = all[i];
    return k;
}

/* walk: pages of n through the tag list (or the catalog when repo is NULL),
 * checking each page and the "more" flag against expect_after. */
static void walk(struct spy_meta *m, const char *repo, const char **sorted, size_t total,
                 uint32_t n, const char *start)
{
    const char *expect[512];
    size_t want = expect_after(sorted, total, start, expect), seen = 0;
    char last[300];
    bool have_last = start != NULL;
    if (have_last)
        snprintf(last, sizeof(last), "%s", start);
    for (;;) {
        struct spy_meta_op op;
        struct spy_meta_in in = {.repo = repo, .n = n, .last = have_last ? last : NULL};
        assert_int_equal(tm_run(m, &op, repo ? SPY_META_TAG_LIST : SPY_META_CATALOG, &in), SPY_OK);
        assert_true(op.out.count <= n);
        for (size_t i = 0; i < op.out.count; i++)
            assert_string_equal(op.out.names[i], expect[seen + i]);
        seen += op.out.count;
        assert_int_equal(op.out.more, seen < want);
        bool more = op.out.more;
        if (op.out.count > 0) {
            snprintf(last, sizeof(last), "%s", op.out.names[op.out.count - 1]);
            have_last = true;
        }
        spy_meta_op_release(&op);
        if (!more)
            break;
    }
    assert_int_equal(seen, want);
}

static void test_tag_pagination(void **state)
{
    (void)state;
    struct spy_meta *m = tm_meta("ops_tags");
    char cfg[72], md[72];
    tm_digest("cfg", cfg);
    tm_blob(m, "app", cfg, 10, 1);
    struct spy_oci_manifest parsed;
    char *body = tm_image_manifest(cfg, NULL, 0, NULL, NULL, NULL, &parsed);
    static char gen[120][8];
    const char *tags[140];
    const char *fixed[] = {"a", "A", "b", "a-", "a.", "a_", "0", "z", "Z9", "_x", "a-b", "aa", "B"};
    size_t n = 0;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        tags[n++] = fixed[i];
    for (int i = 0; i < 120; i++) {
        snprintf(gen[i], sizeof(gen[i]), "t%03d", (i * 37) % 120);
        tags[n++] = gen[i];
    }
    struct spy_meta_op op;
    assert_int_equal(tm_put_manifest(m, "app", body, &parsed, tags, n, md, &op), SPY_OK);
    const char *sorted[140];
    memcpy(sorted, tags, n * sizeof(tags[0]));
    qsort(sorted, n, sizeof(sorted[0]), cmp_str);

    walk(m, "app", sorted, n, 1000, NULL);        /* one page */
    walk(m, "app", sorted, n, (uint32_t)n, NULL); /* exactly n: no next page */
    walk(m, "app", sorted, n, (uint32_t)n - 1, NULL);
    walk(m, "app", sorted, n, 7, NULL);
    walk(m, "app", sorted, n, 1, "t100");
    walk(m, "app", sorted, n, 5, "a-");  /* an existing tag */
    walk(m, "app", sorted, n, 5, "a-a"); /* between tags */
    walk(m, "app", sorted, n, 5, "z");   /* the last one: nothing after */
    walk(m, "app", sorted, n, 5, "");
    /* cursors with bytes no tag has compare as bytes would */
    walk(m, "app", sorted, n, 4, "a\x80");
    walk(m, "app", sorted, n, 4, "a b");
    walk(m, "app", sorted, n, 4, "a~");
    walk(m, "app", sorted, n, 4, "\xff");

    /* n = 0: an empty page, no next page; unknown repository: NAME_UNKNOWN */
    struct spy_meta_in in = {.repo = "app", .n = 0};
    assert_int_equal(tm_run(m, &op, SPY_META_TAG_LIST, &in), SPY_OK);
    assert_int_equal(op.out.count, 0);
    assert_false(op.out.more);
    in.repo = "nobody";
    in.n = 10;
    assert_int_equal(tm_run(m, &op, SPY_META_TAG_LIST, &in), SPY_ENOTFOUND);
    spy_oci_manifest_free(&parsed);
    free(body);
    spy_meta_destroy(m);
}

static void test_catalog_pagination(void **state)
{
    (void)state;
    struct spy_meta *m = tm_meta("ops_catalog");
    const char *repos[] = {"b", "a", "a/b", "a-b", "a.b", "a_b", "a__b", "lib/z", "lib/a", "0"};
    size_t n = sizeof(repos) / sizeof(repos[0]);
    for (size_t i = 0; i < n; i++) {
        struct spy_meta_op op;
        struct spy_meta_in in = {.repo = repos[i]};
        assert_int_equal(tm_run(m, &op, SPY_META_REPO_ENSURE, &in), SPY_OK);
        assert_int_equal(tm_run(m, &op, SPY_META_REPO_ENSURE, &in), SPY_OK); /* idempotent */
    }
    const char *sorted[16];
    memcpy(sorted, repos, n * sizeof(repos[0]));
    qsort(sorted, n, sizeof(sorted[0]), cmp_str);
    walk(m, NULL, sorted, n, 100, NULL);
    walk(m, NULL, sorted, n, 3, NULL);
    walk(m, NULL, sorted, n, 2, "a/b");
    walk(m, NULL, sorted, n, 1, "lib/a");
    spy_meta_destroy(m);
}

/* ---- uploads ---- */

static void test_upload_lifecycle(void **state)
{
    (void)state;
    struct spy_meta *m = tm_meta("ops_uploads");
    MYSQL *my = tm_sql_open("ops_uploads");
    struct spy_meta_op op;
    struct spy_meta_in in = {.repo = "up"};
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_CREATE, &in), SPY_OK);
    char uuid[SPY_META_UUID_LEN + 1];
    strcpy(uuid, op.out.uuid);
    assert_true(spy_meta_uuid_valid(uuid));
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_CREATE, &in), SPY_OK);
    assert_string_not_equal(op.out.uuid, uuid);

    /* a fresh session: offset 0, version 0, the empty hash */
    in = (struct spy_meta_in){.repo = "up", .uuid = uuid, .with_pieces = true};
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_GET, &in), SPY_OK);
    assert_int_equal(op.out.offset, 0);
    assert_int_equal(op.out.version, 0);
    assert_int_equal(op.out.npieces, 0);
    struct spy_oci_sha256 h;
    assert_int_equal(spy_oci_sha256_import(&h, op.out.state, sizeof(op.out.state)), SPY_OK);
    assert_int_equal(spy_oci_sha256_length(&h), 0);
    in.repo = "other";
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_GET, &in), SPY_ENOTFOUND);

    /* two chunks of "hello world"-like data, hashing as we go */
    const char *data = "0123456789abcdefghijklmnopqrstuvwxyz";
    uint8_t st[SPY_OCI_SHA256_STATE_SIZE];
    spy_oci_sha256_update(&h, data, 20);
    spy_oci_sha256_export(&h, st);
    struct spy_meta_piece p1[2], p2[1];
    tm_pieces(p1, 2, 0, 20, 3, 500);
    in = (struct spy_meta_in){
        .repo = "up", .uuid = uuid, .expected_version = 0, .pieces = p1, .npieces = 2, .state = st};
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_APPEND, &in), SPY_OK);
    assert_int_equal(op.out.offset, 20);
    assert_int_equal(op.out.version, 1);
    /* the same append again: stale version -> conflict, pieces orphaned */
    struct spy_meta_piece dup[2];
    tm_pieces(dup, 2, 0, 20, 3, 600);
    in.pieces = dup;
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_APPEND, &in), SPY_ERANGE);
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM orphans WHERE fid IN (600, 601)"), 2);
    /* right version, wrong offset -> conflict too */
    tm_pieces(p2, 1, 21, 16, 3, 700);
    in = (struct spy_meta_in){
        .repo = "up", .uuid = uuid, .expected_version = 1, .pieces = p2, .npieces = 1, .state = st};
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_APPEND, &in), SPY_ERANGE);

    /* complete with a final chunk: wrong size refused, then right */
    spy_oci_sha256_update(&h, data + 20, 16);
    struct spy_oci_digest dg;
    spy_oci_sha256_final(&h, &dg);
    char digest[SPY_OCI_DIGEST_STR_MAX + 1];
    spy_oci_digest_format(&dg, digest);
    tm_pieces(p2, 1, 20, 16, 3, 800);
    in = (struct spy_meta_in){.repo = "up",
                              .uuid = uuid,
                              .expected_version = 1,
                              .digest = digest,
                              .size = 40,
                              .pieces = p2,
                              .npieces = 1};
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_COMPLETE, &in), SPY_ERANGE);
    in.expected_version = 0;
    in.size = 36;
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_COMPLETE, &in), SPY_ERANGE);
    in.expected_version = 1;
    tm_pieces(p2, 1, 20, 16, 3, 801); /* a failed attempt's fids are orphans; fresh ones */
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_COMPLETE, &in), SPY_OK);
    assert_true(op.out.created);
    /* the session is gone, the blob has all three pieces and is linked */
    struct spy_meta_in get = {.repo = "up", .uuid = uuid};
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_GET, &get), SPY_ENOTFOUND);
    struct spy_meta_in stat = {.repo = "up", .digest = digest};
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_STAT, &stat), SPY_OK);
    assert_int_equal(op.out.blob->size, 36);
    assert_int_equal(op.out.blob->npieces, 3);
    assert_int_equal(op.out.blob->pieces[2].fid, 801);
    spy_meta_op_release(&op);
    /* completing again (a retried PUT) succeeds and orphans nothing new */
    long long orphans = tm_sql_u64(my, "SELECT COUNT(*) FROM orphans");
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_COMPLETE, &in), SPY_OK);
    assert_false(op.out.created);
    assert_int_equal(op.out.orphaned, 0);
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM orphans"), orphans);
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM upload_pieces"), 0);
    mysql_close(my);
    spy_meta_destroy(m);
}

static void test_upload_cancel_and_duplicate(void **state)
{
    (void)state;
    struct spy_meta *m = tm_meta("ops_cancel");
    MYSQL *my = tm_sql_open("ops_cancel");
    uint8_t st[SPY_OCI_SHA256_STATE_SIZE] = {0};
    char uuid[2][SPY_META_UUID_LEN + 1], d[72];
    struct spy_meta_op op;
    for (int i = 0; i < 2; i++) {
        struct spy_meta_in in = {.repo = "c"};
        assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_CREATE, &in), SPY_OK);
        strcpy(uuid[i], op.out.uuid);
        struct spy_meta_piece p[3];
        tm_pieces(p, 3, 0, 3000, 2, 1000 * (i + 1));
        in = (struct spy_meta_in){
            .repo = "c", .uuid = uuid[i], .pieces = p, .npieces = 3, .state = st};
        assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_APPEND, &in), SPY_OK);
    }
    /* cancel: the session's pieces become orphans */
    struct spy_meta_in in = {.repo = "c", .uuid = uuid[0]};
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_CANCEL, &in), SPY_OK);
    assert_int_equal(op.out.orphaned, 3);
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM orphans WHERE reason = 'upload cancelled'"
                                    " AND fid BETWEEN 1000 AND 1002"),
                     3);
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_CANCEL, &in), SPY_ENOTFOUND);
    in.uuid = "00000000000000000000000000000000";
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_APPEND, &in), SPY_EINVAL); /* no state */
    /* completing a session whose digest exists: kept once, session orphaned */
    tm_digest("dup", d);
    tm_blob(m, "elsewhere", d, 3000, 9000);
    in = (struct spy_meta_in){
        .repo = "c", .uuid = uuid[1], .expected_version = 1, .digest = d, .size = 3000};
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_COMPLETE, &in), SPY_OK);
    assert_false(op.out.created);
    assert_int_equal(op.out.orphaned, 3);
    struct spy_meta_in stat = {.repo = "c", .digest = d};
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_STAT, &stat), SPY_OK);
    assert_int_equal(op.out.blob->pieces[0].fid, 9000);
    spy_meta_op_release(&op);
    /* orphans record */
    struct spy_meta_piece lost[2];
    tm_pieces(lost, 2, 0, 10, 4, 77);
    in = (struct spy_meta_in){.pieces = lost, .npieces = 2, .reason = "write attempt failed"};
    assert_int_equal(tm_run(m, &op, SPY_META_ORPHANS_RECORD, &in), SPY_OK);
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM orphans WHERE group_id = 4 AND reason ="
                                    " 'write attempt failed'"),
                     2);
    struct spy_meta_stats stats;
    spy_meta_stats(m, &stats);
    assert_int_equal(stats.orphans, 3 + 3 + 2);
    mysql_close(my);
    spy_meta_destroy(m);
}

/* Abandoned sessions: expired by age, their pieces orphaned; fresh ones and
 * ones locked by a running op are left alone. */
static void test_uploads_expire(void **state)
{
    (void)state;
    struct spy_meta *m = tm_meta("ops_expire");
    MYSQL *my = tm_sql_open("ops_expire"), *locker = tm_sql_open("ops_expire");
    uint8_t st[SPY_OCI_SHA256_STATE_SIZE] = {0};
    char uuid[3][SPY_META_UUID_LEN + 1];
    struct spy_meta_op op;
    for (int i = 0; i < 3; i++) {
        struct spy_meta_in in = {.repo = "old"};
        assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_CREATE, &in), SPY_OK);
        strcpy(uuid[i], op.out.uuid);
        struct spy_meta_piece p[2];
        tm_pieces(p, 2, 0, 100, 6, 100u * (unsigned)(i + 1));
        in = (struct spy_meta_in){
            .repo = "old", .uuid = uuid[i], .pieces = p, .npieces = 2, .state = st};
        assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_APPEND, &in), SPY_OK);
    }
    /* sessions 0 and 1 are two hours old; 1 is busy (locked) */
    tm_sql_exec(my,
                "UPDATE uploads SET updated = CURRENT_TIMESTAMP(6) - INTERVAL 2 HOUR"
                " WHERE uuid IN ('%s', '%s')",
                uuid[0], uuid[1]);
    tm_sql_exec(locker, "START TRANSACTION");
    tm_sql_exec(locker, "SELECT * FROM uploads WHERE uuid = '%s' FOR UPDATE", uuid[1]);
    struct spy_meta_in in = {.max_age_s = 3600};
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOADS_EXPIRE, &in), SPY_OK);
    assert_int_equal(op.out.count, 1);
    assert_int_equal(op.out.orphaned, 2);
    assert_int_equal(tm_sql_u64(my, "SELECT COUNT(*) FROM orphans WHERE reason = 'upload expired'"
                                    " AND fid IN (100, 101)"),
                     2);
    struct spy_meta_in get = {.repo = "old", .uuid = uuid[0]};
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_GET, &get), SPY_ENOTFOUND);
    tm_sql_exec(locker, "ROLLBACK");
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOADS_EXPIRE, &in), SPY_OK);
    assert_int_equal(op.out.count, 1); /* session 1, now free */
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOADS_EXPIRE, &in), SPY_OK);
    assert_int_equal(op.out.count, 0);
    get.uuid = uuid[2];
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOAD_GET, &get), SPY_OK);
    in.max_age_s = 0;
    assert_int_equal(tm_run(m, &op, SPY_META_UPLOADS_EXPIRE, &in), SPY_EINVAL);
    mysql_close(locker);
    mysql_close(my);
    spy_meta_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blob_commit_stat),
        cmocka_unit_test(test_link_unlink_and_cache),
        cmocka_unit_test(test_invalid_inputs),
        cmocka_unit_test(test_async_submit),
        cmocka_unit_test(test_manifest_put_missing_then_ok),
        cmocka_unit_test(test_manifest_delete_and_cache),
        cmocka_unit_test(test_manifest_large_and_escaped),
        cmocka_unit_test(test_referrers_and_dangling_subject),
        cmocka_unit_test(test_tag_pagination),
        cmocka_unit_test(test_catalog_pagination),
        cmocka_unit_test(test_upload_lifecycle),
        cmocka_unit_test(test_upload_cancel_and_duplicate),
        cmocka_unit_test(test_uploads_expire),
    };
    return cmocka_run_group_tests(tests, tm_setup, tm_teardown);
}
