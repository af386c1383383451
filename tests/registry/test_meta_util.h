/* test_meta_util.h - what the metadata integration tests share: a private
 * MariaDB (through tests/chunkmaster/harness.[ch]: scripts/mariadb in a
 * mkdtemp dir on a free port), configs for fresh databases, a fake event
 * loop (a poster and a drain), direct SQL for checking rows, and builders
 * for digests, pieces and manifests. Single-threaded unless said otherwise. */
#ifndef SPY_TEST_META_UTIL_H
#define SPY_TEST_META_UTIL_H

#include <mysql.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"
#include "registry/meta.h"

/* The database server of a test program (started by tm_setup). */
extern struct harness tm_harness;

/* Starts MariaDB; 0 or -1. For cmocka group setup/teardown. */
int tm_setup(void **state);
int tm_teardown(void **state);

/* A config for database 'db' on the test server, small and quick: 4
 * workers, 2 s connect and 4 s I/O timeouts, 50..500 ms back-off. */
void tm_config(struct spy_meta_config *cfg, const char *db);

/* spy_meta_create that must succeed. */
struct spy_meta *tm_meta(const char *db);

/* A direct connection to the test server's database db (asserts). */
MYSQL *tm_sql_open(const char *db);
/* The first column of the first row as a number (-1 if no row). */
long long tm_sql_u64(MYSQL *my, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Runs a statement (asserts success). */
void tm_sql_exec(MYSQL *my, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A fake event loop: post() queues the op; tm_loop_run() delivers queued
 * ops on the calling thread until 'want' have been delivered (or 10 s). */
struct tm_loop {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct spy_meta_op *ops[4096];
    size_t n;
    struct spy_meta_poster poster;
};
void tm_loop_init(struct tm_loop *l);
void tm_loop_destroy(struct tm_loop *l);
/* Returns how many were delivered. */
size_t tm_loop_run(struct tm_loop *l, size_t want);

/* "sha256:<hex of sha256(text)>" into out (72 bytes). */
void tm_digest(const char *text, char out[72]);
/* n pieces of 'each' bytes (the last may be shorter) covering [start,
 * start + total), fids from fid0 upwards, group 'group'. */
void tm_pieces(struct spy_meta_piece *p, size_t n, uint64_t start, uint64_t total, uint32_t group,
               uint64_t fid0);

/* Runs one blocking op of the given kind, filling 'in' as given. */
int tm_run(struct spy_meta *m, struct spy_meta_op *op, enum spy_meta_kind kind,
           const struct spy_meta_in *in);

/* Commits blob 'digest' of 'size' bytes as pieces of 1000 bytes, fids from
 * fid0, into repo; asserts SPY_OK. */
void tm_blob(struct spy_meta *m, const char *repo, const char *digest, uint64_t size,
             uint64_t fid0);

/* An image manifest JSON (config + layers digests, optional subject and
 * artifactType) into a malloc'd string, parsed into *out. */
char *tm_image_manifest(const char *config, const char *const *layers, size_t nlayers,
                        const char *subject, const char *artifact_type, const char *annotation,
                        struct spy_oci_manifest *out);
/* An index JSON listing child manifests, parsed into *out. */
char *tm_index_manifest(const char *const *children, size_t n, struct spy_oci_manifest *out);

/* Puts a manifest body (already parsed) with tags; returns the status and,
 * on success, its digest in digest_out. */
int tm_put_manifest(struct spy_meta *m, const char *repo, const char *body,
                    const struct spy_oci_manifest *parsed, const char *const *tags, size_t ntags,
                    char digest_out[72], struct spy_meta_op *op);

/* Monotonic milliseconds. */
long tm_now_ms(void);

#endif
