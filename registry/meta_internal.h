/* meta_internal.h - what the registry/meta_*.c files share. Not a contract
 * for anyone else: include registry/meta.h instead.
 *
 *   meta_pool.c       create/destroy, the queue, the workers, retries
 *   meta_db.c         one MySQL connection, the SQL text builder, statements
 *   meta_schema.c     database creation and migrations
 *   meta_op.c         op init/release, input checks at submit, cached reads,
 *                     result objects, flags
 *   meta_blobs.c      repositories, blobs, links, orphans
 *   meta_manifests.c  manifests, tags, catalog, referrers
 *   meta_uploads.c    upload sessions */
#ifndef SPY_META_INTERNAL_H
#define SPY_META_INTERNAL_H

#include <mysql.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/meta.h"
#include "registry/meta_cache.h"
#include "registry/oci_names.h"

/* Internal statuses that never leave the module: the runner reacts to them. */
enum {
    META_ELOST = -1000,  /* the connection died: reconnect, maybe run again */
    META_ERETRY = -1001, /* deadlock or lock wait timeout: roll back, run again */
};

#define META_KEY_MAX    (2 + SPY_OCI_NAME_MAX + 1 + SPY_OCI_DIGEST_STR_MAX + 1)
#define META_BATCH_ROWS 1000 /* rows per multi-row INSERT */

/* Counters behind spy_meta_stats (updated with relaxed atomics). */
struct meta_counters {
    uint64_t submitted, busy, timeouts, executed, failed;
    uint64_t retries_lost, retries_deadlock, connects, connect_failures;
    uint64_t cache_hits, cache_misses, orphans;
    uint64_t down; /* 1 while the database is unreachable: log an outage once */
};

#define META_COUNT(m, field, n) __atomic_add_fetch(&(m)->ctr.field, (n), __ATOMIC_RELAXED)

/* One MySQL connection, owned by one worker (or by create, for migrations). */
struct meta_conn {
    const struct spy_meta_config *cfg;
    struct meta_counters *ctr;
    MYSQL *my;            /* NULL while disconnected */
    uint64_t retry_at_ms; /* back-off: no connect attempt before this */
    uint32_t backoff_ms;  /* 0 after a good connect */
    bool in_txn;          /* between meta_begin and commit/rollback */
    bool commit_sent;     /* COMMIT (or an autocommitted write) was sent: if the
                             connection dies now, the outcome is unknown */
    unsigned id;          /* worker number, for logs */
};

/* A growing SQL text; errors are sticky (oom), checked once at exec. */
struct meta_sql {
    char *buf;
    size_t len, cap;
    bool oom;
};

struct meta_queue {
    struct spy_meta_op **ring;
    unsigned cap, head, count;
};

struct meta_worker {
    struct spy_meta *m;
    struct meta_conn conn;
    struct meta_sql q;
    unsigned seed; /* jitter of deadlock retries */
    pthread_t thread;
    bool started;
};

struct spy_meta {
    struct spy_meta_config cfg; /* strings point at the copies below */
    char *host, *user, *password, *database;
    struct spy_meta_cache *cache; /* NULL when cache_bytes is 0 */
    struct meta_counters ctr;
    pthread_mutex_t mu;
    pthread_cond_t work; /* ops queued, or stopping */
    pthread_cond_t room; /* a slot freed (spy_meta_run waits on it) */
    struct meta_queue queue;
    bool stopping;
    unsigned nworkers;
    struct meta_worker *workers;
};

/* What a worker hands an op's executor. */
struct meta_ctx {
    struct spy_meta *m;
    struct meta_conn *conn;
    struct meta_sql *q;
};

/* ---- meta_db.c ---- */

uint64_t meta_now_ms(void);

/* Connects (respecting the back-off: SPY_EIO at once while it runs, unless
 * another connection of the pool succeeded since) with the
 * timeouts, utf8mb4, strict sql_mode, READ COMMITTED and a lock wait limit;
 * select_db picks cfg->database. SPY_OK or SPY_EIO (logged once per outage). */
int meta_conn_open(struct meta_conn *c, bool select_db);
void meta_conn_close(struct meta_conn *c);

void meta_sql_reset(struct meta_sql *q);
void meta_sql_free(struct meta_sql *q);
void meta_sql_add(struct meta_sql *q, const char *text);
void meta_sql_addf(struct meta_sql *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void meta_sql_str(struct meta_sql *q, const char *s);              /* 'escaped' */
void meta_sql_bin(struct meta_sql *q, const void *data, size_t n); /* _binary'escaped' */
void meta_sql_u64(struct meta_sql *q, uint64_t v);

/* Runs q (then resets it). SPY_OK, META_ELOST, META_ERETRY, SPY_ENOMEM or
 * SPY_EIO (logged with the server's message). */
int meta_exec(struct meta_conn *c, struct meta_sql *q);
/* Runs a SELECT; on SPY_OK *res holds the whole result (mysql_free_result). */
int meta_select(struct meta_conn *c, struct meta_sql *q, MYSQL_RES **res);
/* Runs a SELECT of one unsigned integer; *found says whether a row came. */
int meta_select_u64(struct meta_conn *c, struct meta_sql *q, uint64_t *out, bool *found);
uint64_t meta_affected(struct meta_conn *c);
uint64_t meta_insert_id(struct meta_conn *c);
int meta_begin(struct meta_conn *c);
int meta_commit(struct meta_conn *c);
void meta_rollback(struct meta_conn *c);
/* Parses a column as an unsigned integer (NULL reads as 0). */
uint64_t meta_col_u64(const char *col);

/* ---- meta_schema.c ---- */

/* Creates the database if needed and migrates it, on c (connected without a
 * database). SPY_OK, SPY_EIO, SPY_EINVAL (newer schema or bad name). */
int meta_schema_migrate(struct meta_conn *c, struct meta_sql *q);
int meta_schema_latest(void);

/* ---- meta_op.c ---- */

/* Checks op's inputs for its kind, and extracts what MANIFEST_PUT needs from
 * the parsed manifest. SPY_OK, SPY_EINVAL or SPY_ENOMEM. */
int meta_op_prepare(struct spy_meta_op *op);
/* Frees what meta_op_prepare extracted, once the op has run (or will not). */
void meta_op_free_ext(struct spy_meta_op *op);

/* The extracted references of a MANIFEST_PUT. */
enum { META_REF_BLOB = 1, META_REF_MANIFEST = 2 };
struct meta_ref {
    char digest[SPY_OCI_DIGEST_STR_MAX + 1];
    uint8_t kind;   /* META_REF_BLOB or META_REF_MANIFEST */
    bool checkable; /* false: an algorithm we do not hash (always missing) */
};
/* Orders refs by kind, then digest (bsearch over meta_put_ext.refs). */
int meta_ref_cmp(const void *a, const void *b);
struct meta_put_ext {
    struct meta_ref *refs; /* sorted with meta_ref_cmp, no duplicates */
    size_t nrefs;
    char *annotations;                        /* JSON, only for manifests with a subject; or NULL */
    char subject[SPY_OCI_DIGEST_STR_MAX + 1]; /* "" when none */
};

/* Result objects (refcounted, single allocation). */
struct spy_meta_blob *meta_blob_new(const char *digest, uint64_t size, size_t npieces);
struct spy_meta_manifest *meta_manifest_new(const char *digest, const char *media_type,
                                            const char *artifact_type, const char *subject,
                                            const void *body, size_t len);

/* A string or a number as a cache value (tag -> digest, repo -> id). */
struct meta_text_obj {
    struct spy_meta_obj obj;
    char text[];
};
struct meta_id_obj {
    struct spy_meta_obj obj;
    uint64_t id;
};
struct meta_text_obj *meta_text_new(const char *text);
struct meta_id_obj *meta_id_new(uint64_t id);

/* Cache keys: "b:<digest>", "l:<repo> <digest>", "m:<repo> <digest>",
 * "t:<repo> <tag>", "r:<repo>". Return the length; buf holds META_KEY_MAX. */
size_t meta_key(char *buf, char kind, const char *repo, const char *item);

/* Shorthands over m->cache (no-ops without a cache). */
uint64_t meta_cache_epoch(struct spy_meta *m);
void meta_cache_put(struct spy_meta *m, const char *key, size_t klen, struct spy_meta_obj *obj,
                    uint32_t ttl_ms, uint64_t epoch);
void meta_cache_forget(struct spy_meta *m, const char *key, size_t klen);

/* Sets *out from a duplicate of s (NULL stays NULL); false when out of memory. */
bool meta_strdup(const char *s, char **out);

/* ---- executors: one per kind, run on a worker; may return early inside a
 * transaction (the runner rolls back) ---- */

int meta_repo_id(struct meta_ctx *x, const char *name, bool create, uint64_t *id);
int meta_orphans_insert(struct meta_ctx *x, const struct spy_meta_piece *pieces, size_t n,
                        const char *reason);

int meta_exec_repo_ensure(struct meta_ctx *x, struct spy_meta_op *op);
int meta_exec_blob_stat(struct meta_ctx *x, struct spy_meta_op *op);
int meta_exec_blob_commit(struct meta_ctx *x, struct spy_meta_op *op);
int meta_exec_blob_link(struct meta_ctx *x, struct spy_meta_op *op);
int meta_exec_blob_unlink(struct meta_ctx *x, struct spy_meta_op *op);
int meta_exec_orphans_record(struct meta_ctx *x, struct spy_meta_op *op);
int meta_exec_manifest_put(struct meta_ctx *x, struct spy_meta_op *op);
int meta_exec_manifest_get(struct meta_ctx *x, struct spy_meta_op *op);
int meta_exec_manifest_delete(struct meta_ctx *x, struct spy_meta_op *op);
int meta_exec_tag_list(struct meta_ctx *x, struct spy_meta_op *op);
int meta_exec_catalog(struct meta_ctx *x, struct spy_meta_op *op);
int meta_exec_referrers(struct meta_ctx *x, struct spy_meta_op *op);
int meta_exec_upload_create(struct meta_ctx *x, struct spy_meta_op *op);
int meta_exec_upload_get(struct meta_ctx *x, struct spy_meta_op *op);
int meta_exec_upload_append(struct meta_ctx *x, struct spy_meta_op *op);
int meta_exec_upload_cancel(struct meta_ctx *x, struct spy_meta_op *op);
int meta_exec_upload_complete(struct meta_ctx *x, struct spy_meta_op *op);
int meta_exec_uploads_expire(struct meta_ctx *x, struct spy_meta_op *op);

/* Helpers shared by the executors (meta_blobs.c). */
int meta_insert_pieces(struct meta_ctx *x, const char *table, const char *key_col, const char *key,
                       const struct spy_meta_piece *p, size_t n, uint64_t first_idx);
int meta_link_insert(struct meta_ctx *x, uint64_t repo_id, const char *digest);
/* SPY_OK if the stored blob has this size, else SPY_EINVAL (logged). */
int meta_blob_size_matches(struct meta_ctx *x, const char *digest, uint64_t size);
/* Records as orphans the pieces not already part of blob 'digest'. */
int meta_orphans_unless_in_blob(struct meta_ctx *x, const char *digest,
                                const struct spy_meta_piece *p, size_t n, const char *reason,
                                size_t *orphaned);

#endif
