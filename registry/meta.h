/* meta.h - the registry's metadata in MySQL/MariaDB (database "metadb"):
 * repositories, blobs and their pieces, repository links, manifests and their
 * references, tags, upload sessions, orphaned pieces. docs/metadata.md has
 * the schema, the transactions and the reasoning; this header is the contract.
 *
 * SHAPE. One struct spy_meta per process. It owns a fixed pool of worker
 * threads, each with its own MySQL connection, a bounded job queue, and a
 * cache of immutable, content-addressed facts shared by every event loop.
 * A request is a struct spy_meta_op: the caller fills its kind and inputs,
 * submits it, and reads the results in its done callback.
 *
 * THREADS AND CALLBACKS.
 *  - spy_meta_submit() is called on an event loop thread and never blocks it:
 *    a full queue answers SPY_EBUSY at once (answer 503/TOOMANYREQUESTS).
 *    When it returns SPY_OK the op runs on a worker thread; then the worker
 *    calls poster->post(poster->ctx, op), which must arrange for
 *    spy_meta_op_deliver(op) to run on the submitting thread (the registry
 *    does it with spy_http_post). deliver calls op->done(op) there. So done
 *    always runs on the submitter's thread and never inside submit.
 *  - spy_meta_try_cached() answers the hot reads (blob stat, manifest get)
 *    from the cache on the calling thread, without the database; when it
 *    returns false, submit the same op.
 *  - spy_meta_run() is the blocking variant for tools and tests: it waits for
 *    a queue slot and for the result; never call it on a loop or worker thread.
 *  - Everything else (create, destroy, stats) as documented per function.
 *
 * OWNERSHIP. Inputs (strings, arrays, the parsed manifest and its body) are
 * borrowed: they must stay valid and unchanged until done runs (or submit
 * returns an error). Outputs belong to the op: spy_meta_op_release() frees
 * them, once, after done (or after spy_meta_run / spy_meta_try_cached
 * returned, or after a failed submit). The op itself is the caller's memory
 * and must stay alive until done runs even if the HTTP request was aborted
 * meanwhile (reference-count the request state).
 *
 * STATUS (op->status in done, or the return of submit / run):
 *   SPY_OK
 *   SPY_ENOTFOUND  no such blob / link / manifest / tag / repository / upload,
 *                  or (MANIFEST_PUT) referenced content missing: out.missing
 *   SPY_ERANGE     UPLOAD_APPEND/COMPLETE: the session moved on (its version
 *                  is not the expected one, or pieces do not start at its
 *                  offset, or COMPLETE's size differs): answer 416
 *   SPY_EINVAL     malformed input (name, tag, digest, uuid, pieces): returned
 *                  by submit itself, no callback; from a worker only when a
 *                  commit's size contradicts the stored blob's (logged)
 *   SPY_EBUSY      the queue is full (submit only, no callback)
 *   SPY_ETIMEDOUT  the op waited in the queue longer than queue_timeout_ms
 *   SPY_EIO        the database failed or is unreachable (logged once per
 *                  outage); for writes the outcome may be unknown if the
 *                  connection died while committing (see "retries")
 *   SPY_ECORRUPT   the stored rows contradict each other (logged)
 *   SPY_EABORTED   spy_meta_destroy ran before the op did
 *   SPY_ENOMEM     out of memory (logged)
 *
 * RETRIES. A lost connection is reconnected (with back-off while the server is
 * down: meanwhile ops fail fast with SPY_EIO) and the op is run again once if
 * that is safe: no COMMIT (nor autocommitted write) had been sent, or the op
 * is idempotent (BLOB_COMMIT, BLOB_LINK, MANIFEST_PUT, UPLOAD_COMPLETE,
 * REPO_ENSURE, UPLOAD_CREATE, reads).
 * Deadlocks and lock wait timeouts are retried up to 3 times.
 *
 * ORPHANS. Pieces handed to BLOB_COMMIT, UPLOAD_APPEND or UPLOAD_COMPLETE that
 * do not end up in a blob or session (a lost "same digest" race, a stale
 * append, a session that vanished) are recorded in the orphans table, in the
 * op's transaction when possible; if the database cannot be reached they are
 * logged (group:fid) at ERROR level instead; never forgotten silently. A
 * submit that returns an error queued nothing: the pieces are still the
 * caller's to record (ORPHANS_RECORD) or log. */
#ifndef SPY_META_H
#define SPY_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/flags.h"
#include "registry/oci_manifest.h"
#include "registry/oci_referrers.h"
#include "registry/oci_sha256.h"

#define SPY_META_UUID_LEN      32         /* upload session ids: 128 random bits, lowercase hex */
#define SPY_META_REFERRERS_MAX 1000       /* referrers listed per query (out.more beyond) */
#define SPY_META_REASON_MAX    64         /* orphan reason text */
#define SPY_META_PIECES_MAX    (1u << 20) /* pieces per blob / op */

/* Settings; spy_meta_config_init() fills the defaults shown. Strings are
 * copied by spy_meta_create. */
struct spy_meta_config {
    const char *host;           /* -dh "127.0.0.1" */
    int port;                   /* -dp 3306 */
    const char *user;           /* -u "root" */
    const char *password;       /* -pw "" */
    const char *database;       /* -db "metadb"; created if missing; [A-Za-z0-9_$], <= 64 */
    unsigned workers;           /* worker threads = connections (8) */
    unsigned queue_max;         /* queued ops before submit answers SPY_EBUSY (1024) */
    unsigned connect_timeout_s; /* MySQL connect timeout (2) */
    unsigned io_timeout_s;      /* MySQL read and write timeout per statement (5); lock
                                   waits give up after half of it */
    uint32_t queue_timeout_ms;  /* an op queued longer fails with SPY_ETIMEDOUT (5000) */
    uint32_t backoff_min_ms;    /* reconnect back-off after a failed connect (100) */
    uint32_t backoff_max_ms;    /* doubling up to this (2000) */
    uint64_t cache_bytes;       /* cache budget, all entries included (64 MiB; 0 = no cache) */
    uint32_t cache_ttl_ms;      /* blobs, manifests, repository links (60000) */
    uint32_t tag_ttl_ms;        /* tag -> digest (1000; 0 = tags not cached) */
};

/* A piece of a blob: the same fields as blobstore's struct spy_blob_piece. */
struct spy_meta_piece {
    uint32_t group_id; /* chunkserver group */
    uint64_t fid;      /* object id in that group */
    uint64_t offset;   /* first blob byte it holds (absolute, from 0) */
    uint64_t length;   /* bytes, > 0 */
    uint32_t crc32c;   /* of the piece's bytes */
};

/* Reference counts of the immutable, shareable results below (private). */
struct spy_meta_obj {
    unsigned _refs; /* atomic */
    size_t _cost;   /* bytes, for the cache budget */
    void (*_destroy)(struct spy_meta_obj *obj);
};

/* A committed blob: immutable and shared with the cache. */
struct spy_meta_blob {
    struct spy_meta_obj _obj;
    const char *digest;
    uint64_t size;
    size_t npieces; /* 0 for the empty blob */
    const struct spy_meta_piece *pieces;
};

/* A manifest as stored in one repository: immutable and shared with the
 * cache. The exact bytes are kept inline (docs/metadata.md says why). */
struct spy_meta_manifest {
    struct spy_meta_obj _obj;
    const char *digest;
    const char *media_type;
    const char *artifact_type; /* NULL when none */
    const char *subject;       /* subject digest, NULL when none */
    uint64_t size;             /* == body length */
    const uint8_t *body;
};

/* Keep a blob or manifest beyond spy_meta_op_release: take it out of the op
 * (set the op's pointer to NULL) and drop it later with these. Any thread. */
void spy_meta_blob_release(const struct spy_meta_blob *blob);
void spy_meta_manifest_release(const struct spy_meta_manifest *manifest);

/* What an op does. Inputs it reads and outputs it fills, beyond status: */
enum spy_meta_kind {
    /* in: repo. Creates the repository if missing. */
    SPY_META_REPO_ENSURE = 1,
    /* in: digest, repo (NULL: any repository). out: blob. ENOTFOUND if the
     * blob does not exist or is not linked to repo. Cached. */
    SPY_META_BLOB_STAT,
    /* in: repo, digest, size, pieces[npieces] (contiguous from 0, summing to
     * size). One transaction: the blob, its pieces, the link to repo. If the
     * digest exists already it is kept (out.created false), linked, and our
     * pieces are recorded as orphans (out.orphaned) in the same transaction;
     * a second commit with the very same pieces is a no-op. out: created,
     * orphaned. */
    SPY_META_BLOB_COMMIT,
    /* in: repo, digest, from (NULL: the blob may be linked anywhere). Links
     * an existing blob (cross-repository mount). ENOTFOUND if it does not
     * exist (or is not linked to from). */
    SPY_META_BLOB_LINK,
    /* in: repo, digest. Removes the link (DELETE of a blob in a repository);
     * the blob and its pieces stay for the garbage collector. ENOTFOUND if
     * not linked. */
    SPY_META_BLOB_UNLINK,
    /* in: repo, digest (of body), manifest (parsed), body, body_len, tags
     * [ntags] (may be 0). One transaction: checks that every blob the
     * manifest references (foreign ones with urls excepted) is linked to repo
     * and every child manifest exists in repo; if some are not: ENOTFOUND and
     * out.missing lists them (answer MANIFEST_BLOB_UNKNOWN). A dangling
     * subject is accepted. Stores the manifest and its references, then
     * points every tag at it. The same repo+digest again stores nothing new
     * (no checks either) but still moves the tags. out: created, missing. */
    SPY_META_MANIFEST_PUT,
    /* in: repo and either digest or tag. out: manifest. ENOTFOUND if absent.
     * Cached (by digest for cache_ttl_ms, tag -> digest for tag_ttl_ms). */
    SPY_META_MANIFEST_GET,
    /* in: repo and either digest (removes the manifest, its references and
     * every tag pointing at it) or tag (removes the tag only). ENOTFOUND if
     * absent. */
    SPY_META_MANIFEST_DELETE,
    /* in: repo, n, last (NULL: from the start). out: names (sorted bytewise,
     * after last, at most n), count, more (a next page exists). ENOTFOUND if
     * the repository does not exist (NAME_UNKNOWN). */
    SPY_META_TAG_LIST,
    /* in: n, last. out: names (repositories), count, more. */
    SPY_META_CATALOG,
    /* in: repo, digest (the subject), artifact_type (NULL or "": no filter).
     * out: referrers[count] (sorted by digest, at most
     * SPY_META_REFERRERS_MAX; more if cut). An unknown repository or subject
     * is an empty list. */
    SPY_META_REFERRERS,
    /* in: repo. Creates the repository if needed and a session with a fresh
     * uuid, offset 0 and the empty SHA-256 state. out: uuid, version. */
    SPY_META_UPLOAD_CREATE,
    /* in: repo, uuid, with_pieces. out: offset, version, state, and pieces
     * when asked. ENOTFOUND if no such session in repo. */
    SPY_META_UPLOAD_GET,
    /* in: repo, uuid, expected_version, pieces[npieces] (the first at the
     * session's offset, contiguous), state (the hash state after them).
     * Stores them and bumps the version, only if the stored version is
     * expected_version: else ERANGE (and the pieces become orphans).
     * out: offset, version. */
    SPY_META_UPLOAD_APPEND,
    /* in: repo, uuid. Deletes the session; its pieces become orphans. */
    SPY_META_UPLOAD_CANCEL,
    /* in: repo, uuid, expected_version, digest, size, pieces[npieces] (a
     * final chunk, may be 0 pieces). One transaction: appends the pieces,
     * checks the offset equals size, commits the blob from the session's
     * pieces (as BLOB_COMMIT, orphaning them if the digest exists), links it
     * and deletes the session. If the session is gone but the blob is
     * linked to repo (a retried PUT), answers SPY_OK. out: created, orphaned. */
    SPY_META_UPLOAD_COMPLETE,
    /* in: pieces[npieces], reason. Records them for the garbage collector
     * (a failed write attempt, an abandoned piece). */
    SPY_META_ORPHANS_RECORD,
    /* in: max_age_s (> 0), n (sessions per call; 0 = 100). Deletes upload
     * sessions not updated for max_age_s, their pieces becoming orphans;
     * sessions locked by a running op are skipped. Call it periodically
     * (any imageserver: they never pick the same session). out: count
     * (sessions expired), orphaned. */
    SPY_META_UPLOADS_EXPIRE,
};

struct spy_meta_op;
typedef void (*spy_meta_done_fn)(struct spy_meta_op *op);

/* How a finished op gets back to its loop. post() is called on a worker
 * thread (or, for ops aborted by destroy, on the destroying thread) and must
 * not block; it must make spy_meta_op_deliver(op) run later on the thread
 * that submitted op. The struct must outlive every op submitted with it. */
struct spy_meta_poster {
    void (*post)(void *ctx, struct spy_meta_op *op);
    void *ctx;
};

struct spy_meta_in {
    const char *repo;   /* repository name (oci_names grammar) */
    const char *digest; /* "sha256:..." / "sha512:..." */
    const char *tag;    /* MANIFEST_GET/DELETE when digest is NULL */
    const char *from;   /* BLOB_LINK */
    const char *uuid;   /* UPLOAD_GET/APPEND/CANCEL/COMPLETE */
    const struct spy_meta_piece *pieces;
    size_t npieces;
    uint64_t size;                           /* BLOB_COMMIT, UPLOAD_COMPLETE */
    uint32_t expected_version;               /* UPLOAD_APPEND, UPLOAD_COMPLETE */
    const uint8_t *state;                    /* UPLOAD_APPEND: SPY_OCI_SHA256_STATE_SIZE bytes */
    bool with_pieces;                        /* UPLOAD_GET */
    const struct spy_oci_manifest *manifest; /* MANIFEST_PUT */
    const void *body;                        /* MANIFEST_PUT */
    size_t body_len;
    const char *const *tags; /* MANIFEST_PUT */
    size_t ntags;
    uint32_t n;                /* TAG_LIST, CATALOG: page size */
    const char *last;          /* TAG_LIST, CATALOG: exclusive cursor */
    const char *artifact_type; /* REFERRERS filter */
    const char *reason;        /* ORPHANS_RECORD */
    uint32_t max_age_s;        /* UPLOADS_EXPIRE */
};

struct spy_meta_out {
    struct spy_meta_blob *blob;         /* BLOB_STAT */
    struct spy_meta_manifest *manifest; /* MANIFEST_GET */
    bool created;                       /* BLOB_COMMIT, MANIFEST_PUT, UPLOAD_COMPLETE */
    size_t orphaned;                    /* pieces recorded as orphans by this op */
    char **missing;                     /* MANIFEST_PUT: digests not found */
    size_t nmissing;
    char **names;                       /* TAG_LIST, CATALOG */
    struct spy_oci_referrer *referrers; /* REFERRERS; annotations are owned json_t */
    size_t count;                       /* names, referrers, expired sessions */
    bool more;
    char uuid[SPY_META_UUID_LEN + 1];         /* UPLOAD_CREATE */
    uint64_t offset;                          /* UPLOAD_*: bytes received */
    uint32_t version;                         /* UPLOAD_*: the session's version */
    uint8_t state[SPY_OCI_SHA256_STATE_SIZE]; /* UPLOAD_GET */
    struct spy_meta_piece *pieces;            /* UPLOAD_GET with_pieces */
    size_t npieces;
};

struct spy_meta_op {
    enum spy_meta_kind kind;
    spy_meta_done_fn done;
    void *data; /* the caller's */
    struct spy_meta_in in;
    int status;
    struct spy_meta_out out;
    struct {
        const struct spy_meta_poster *poster;
        void *waiter;       /* spy_meta_run's */
        uint64_t queued_ms; /* monotonic */
        void *ext;          /* MANIFEST_PUT: what submit extracted */
    } _p;
};

struct spy_meta;

/* Counters (relaxed atomics; for tests and metrics). */
struct spy_meta_stats {
    uint64_t submitted, busy, timeouts; /* ops queued, refused (queue full), expired in queue */
    uint64_t executed, failed;          /* ops run on a worker, and those ending in SPY_EIO */
    uint64_t retries_lost, retries_deadlock; /* re-runs after a lost connection / a deadlock */
    uint64_t connects, connect_failures;
    uint64_t cache_hits, cache_misses; /* spy_meta_try_cached */
    uint64_t orphans;                  /* pieces recorded as orphans */
    uint64_t queued;                   /* in the queue now */
    uint64_t cache_bytes, cache_entries;
};

/* Fills cfg with the defaults above. */
void spy_meta_config_init(struct spy_meta_config *cfg);

/* Connects once, creates the database if missing and applies the schema
 * migrations not applied yet (serialised across imageservers with GET_LOCK,
 * so several may start at once), then starts the workers (their connections
 * open on first use, and reconnect by themselves). Returns SPY_OK and *out;
 * SPY_EIO if the server cannot be reached or a migration fails (logged);
 * SPY_EINVAL for a bad config or a schema newer than this build; SPY_ENOMEM. */
int spy_meta_create(const struct spy_meta_config *cfg, struct spy_meta **out);

/* Stops the workers after their current op; ops still queued complete with
 * SPY_EABORTED through their posters (so the loops must still be running);
 * then frees m. Any thread but a worker. */
void spy_meta_destroy(struct spy_meta *m);

/* Zeroes op and sets kind, done and data. */
void spy_meta_op_init(struct spy_meta_op *op, enum spy_meta_kind kind, spy_meta_done_fn done,
                      void *data);

/* Queues op (see THREADS). Returns SPY_OK (done will run), or, with no
 * callback: SPY_EINVAL (bad input), SPY_EBUSY (queue full), SPY_ENOMEM,
 * SPY_EABORTED (m is being destroyed). */
int spy_meta_submit(struct spy_meta *m, struct spy_meta_op *op,
                    const struct spy_meta_poster *poster);

/* Runs op->done(op); call it on the submitting thread when the poster says. */
void spy_meta_op_deliver(struct spy_meta_op *op);

/* Answers BLOB_STAT or MANIFEST_GET from the cache when everything needed is
 * there and fresh: returns true with op->status SPY_OK and the outputs set
 * (done is not called). Otherwise false and op is unchanged. Any thread;
 * takes one shard lock. */
bool spy_meta_try_cached(struct spy_meta *m, struct spy_meta_op *op);

/* Blocking: submits op (waiting for room in the queue), waits for it and
 * returns op->status; op->done is not called. Not on a loop or worker thread. */
int spy_meta_run(struct spy_meta *m, struct spy_meta_op *op);

/* Frees the outputs (and whatever submit allocated). Safe on a zeroed op and
 * twice. */
void spy_meta_op_release(struct spy_meta_op *op);

/* Drops a blob from the cache, e.g. when a chunkserver says its piece is gone
 * (another imageserver's garbage collection): the next stat reads MySQL. */
void spy_meta_forget_blob(struct spy_meta *m, const char *digest);

/* Copies the counters into *out. Any thread. */
void spy_meta_stats(struct spy_meta *m, struct spy_meta_stats *out);

/* Whether s is a well-formed upload uuid (32 lowercase hex digits); any other
 * value can never name a session (answer BLOB_UPLOAD_UNKNOWN). */
bool spy_meta_uuid_valid(const char *s);

/* The imageserver's metadata flags, with the original's names:
 *   -db -dh -dp -u -pw, --meta_workers, --meta_queue, --meta_cache.
 * spy_meta_flags_table binds them to v (defaults from spy_meta_config_init)
 * in out[0..SPY_META_NFLAGS); after spy_flags_parse, spy_meta_flags_apply
 * copies them into cfg (the strings stay borrowed from argv or v). */
#define SPY_META_NFLAGS 8
struct spy_meta_flags {
    const char *database, *host, *user, *password;
    long long port, workers, queue;
    uint64_t cache_bytes;
};
void spy_meta_flags_table(struct spy_meta_flags *v, struct spy_flag out[SPY_META_NFLAGS]);
void spy_meta_flags_apply(const struct spy_meta_flags *v, struct spy_meta_config *cfg);

#endif
