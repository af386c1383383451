/* uploads.c - the blob upload handlers of the imageserver: POST, PATCH, PUT,
 * GET and DELETE under /v2/<name>/blobs/uploads/ (distribution-spec v1.1.1,
 * "Pushing blobs"; docs/registry.md, "Uploads", has the decisions).
 *
 * NOTHING IS KEPT BETWEEN REQUESTS. A session's offset, version, running
 * SHA-256 state and pieces live in MySQL (meta's UPLOAD_* ops), so any
 * imageserver can serve the next request of any session. A request that
 * carries body bytes reads the session first (UPLOAD_GET) with the client
 * paused, then streams: each slice goes into the hash and into a blobstore
 * writer, and the client stays paused until the writer says the slice is on
 * every replica's socket (the consumed callback). At the body's end the
 * writer's pieces are appended (UPLOAD_APPEND, guarded by the session's
 * version) or the blob is committed (UPLOAD_COMPLETE, BLOB_COMMIT), each in
 * one transaction, so nothing becomes visible before it is complete.
 *
 * ORPHANS. Every fid the writer gives up (a failed attempt, an aborted or
 * failed write) and the pieces of a body that is rejected after it was stored
 * (a wrong digest, a short chunk) are collected in the request's state and
 * recorded with one ORPHANS_RECORD when the request ends. Pieces handed to a
 * meta op that then loses (a stale append) are orphaned by meta itself.
 *
 * THREADS. Everything runs on the request's loop thread: HTTP callbacks,
 * blobstore callbacks and meta completions (registry.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/status.h"
#include "registry/oci_digest.h"
#include "registry/oci_query.h"
#include "registry/oci_range.h"
#include "registry/oci_sha256.h"
#include "registry/registry.h"

#define UPL_DIGESTS_MAX 4   /* ?digest= parameters verified on a closing PUT */
#define UPL_PATH_MAX    512 /* "/v2/" + name (255) + "/blobs/uploads/" + digest or uuid */

/* What a request does. */
enum upl_kind {
    UPL_CREATE, /* POST: a new session */
    UPL_MOUNT,  /* POST ?mount=: link an existing blob, else a new session */
    UPL_MONO,   /* POST ?digest= with a body: the whole blob in one request */
    UPL_PATCH,  /* PATCH: a chunk (or the whole stream) appended to the session */
    UPL_PUT,    /* PUT ?digest=: an optional last chunk, then the blob */
    UPL_STATUS, /* GET/HEAD: where the session is */
    UPL_CANCEL, /* DELETE */
};

/* A request's state (registry.h, "A REQUEST'S STATE"); base comes first. */
struct upload {
    struct spy_registry_req base;
    enum upl_kind kind;
    struct spy_meta_op op;        /* the request's metadata op, one at a time */
    struct spy_meta_op orphan_op; /* the request's one ORPHANS_RECORD */
    int orphans_sent;

    /* from the query: the digests to verify (want[0] names the blob) */
    struct spy_oci_digest want[UPL_DIGESTS_MAX];
    size_t nwant;
    char digest[SPY_OCI_DIGEST_STR_MAX + 1]; /* want[0], canonical */
    char from[SPY_OCI_NAME_MAX + 1];         /* ?from= of a mount ("" if none) */

    /* Content-Range of a PATCH or PUT */
    int has_range, range_bad;
    uint64_t range_first, range_last;

    /* the session, as UPLOAD_GET found it */
    uint64_t offset;
    uint32_t version;
    struct spy_meta_piece *held; /* its pieces (a sha512 PUT only) */
    size_t nheld;

    /* the body */
    uint64_t received;
    int verify_only; /* POST ?digest= of a blob that exists: hash, do not store */
    struct spy_oci_sha256 sha;
    struct spy_oci_hasher hasher;   /* POST ?digest= and a sha512 PUT's re-read */
    struct spy_blob_writer *writer; /* while the body streams (holds a reference) */
    struct spy_blob_reader *reader; /* a sha512 PUT's re-read (holds a reference) */
    struct spy_meta_piece *pieces;  /* the body's pieces, absolute offsets; npieces is 0
                                       once they are handed to a meta op */
    size_t npieces;
    uint8_t state[SPY_OCI_SHA256_STATE_SIZE]; /* the hash state UPLOAD_APPEND stores */

    struct spy_meta_piece *orphans;
    size_t norphans, orphans_cap;
    const char *orphan_reason;
};

static void upload_on_body(struct spy_registry_req *base, const char *data, size_t len);
static void upload_on_body_end(struct spy_registry_req *base);
static void upload_on_abort(struct spy_registry_req *base, int status);
static void upload_destroy(struct spy_registry_req *base);

static const struct spy_registry_req_ops upload_ops = {
    .on_body = upload_on_body,
    .on_body_end = upload_on_body_end,
    .on_abort = upload_on_abort,
    .destroy = upload_destroy,
};

/* ---- responses -------------------------------------------------------- */

/* The session headers every upload answer carries: Location (relative, the
 * same URL for the whole session), Range ("0-<last byte>", "0-0" when empty,
 * no "bytes=" prefix: moby parses "%d-%d") and Docker-Upload-UUID. */
struct session_fields {
    char location[UPL_PATH_MAX];
    char range[48];
    struct spy_http_field f[3];
};

/* session_fields_fill: the three fields for session uuid of repository name
 * after 'uploaded' bytes. */
static const struct spy_http_field *session_fields_fill(struct session_fields *s, const char *name,
                                                        const char *uuid, uint64_t uploaded)
{
    snprintf(s->location, sizeof(s->location), "/v2/%s/blobs/uploads/%s", name, uuid);
    if (spy_oci_upload_range_format(s->range, sizeof(s->range), uploaded) < 0)
        snprintf(s->range, sizeof(s->range), "0-0");
    s->f[0] = (struct spy_http_field){"Location", s->location};
    s->f[1] = (struct spy_http_field){"Range", s->range};
    s->f[2] = (struct spy_http_field){"Docker-Upload-UUID", uuid};
    return s->f;
}

static void orphans_flush(struct upload *u);

/* abort_io: stops the body's writer and the re-read, if running (their fids
 * join the orphans; the paused slice is no longer referenced). */
static void abort_io(struct upload *u)
{
    if (u->writer != NULL) {
        struct spy_blob_writer *w = u->writer;
        u->writer = NULL;
        spy_blob_write_abort(w);
        spy_registry_req_unref(&u->base);
    }
    if (u->reader != NULL) {
        struct spy_blob_reader *r = u->reader;
        u->reader = NULL;
        spy_blob_read_abort(r);
        spy_registry_req_unref(&u->base);
    }
}

/* finish: after the terminal call: records the orphans, ends the request
 * side (may free u when nothing else holds it). */
static void finish(struct upload *u)
{
    orphans_flush(u);
    spy_registry_req_finish(&u->base);
}

/* answer_session: terminal 202/204 with the session headers. */
static void answer_session(struct upload *u, int status, const char *uuid, uint64_t uploaded)
{
    struct session_fields s;
    abort_io(u);
    const struct spy_http_field *f = session_fields_fill(&s, u->base.name, uuid, uploaded);
    if (spy_registry_respond(u->base.req, status, f, 3, NULL, 0) != SPY_OK)
        spy_http_stream_fail(u->base.req);
    finish(u);
}

/* answer_created: terminal 201 for a blob now linked to the repository:
 * Location /v2/<name>/blobs/<digest> and Docker-Content-Digest. */
static void answer_created(struct upload *u, const char *digest)
{
    char location[UPL_PATH_MAX];
    abort_io(u);
    snprintf(location, sizeof(location), "/v2/%s/blobs/%s", u->base.name, digest);
    struct spy_http_field f[] = {{"Location", location}, {"Docker-Content-Digest", digest}};
    if (spy_registry_respond(u->base.req, 201, f, 2, NULL, 0) != SPY_OK)
        spy_http_stream_fail(u->base.req);
    finish(u);
}

/* answer_error: terminal OCI error (message NULL = the code's default). */
static void answer_error(struct upload *u, enum spy_oci_code code, const char *message)
{
    abort_io(u);
    spy_registry_error(u->base.req, code, message, NULL, NULL, 0);
    finish(u);
}

/* answer_session_error: terminal OCI error that also tells where the session
 * is (a 416 must carry Range so the client can resume). */
static void answer_session_error(struct upload *u, enum spy_oci_code code, const char *message,
                                 uint64_t uploaded)
{
    struct session_fields s;
    abort_io(u);
    const struct spy_http_field *f = session_fields_fill(&s, u->base.name, u->base.ref, uploaded);
    spy_registry_error(u->base.req, code, message, NULL, f, 3);
    finish(u);
}

/* answer_status: terminal error for an internal status (meta, blobstore):
 * ENOTFOUND becomes not_found; EBUSY 429; the rest 500. */
static void answer_status(struct upload *u, int status, enum spy_oci_code not_found)
{
    answer_error(u, spy_registry_code_for(status, not_found), NULL);
}

/* ---- state ------------------------------------------------------------ */

/* upload_new: the state of a request that needs asynchronous work, or NULL
 * after answering 500 (out of memory). */
static struct upload *upload_new(struct spy_http_request *req, const struct spy_oci_route *route,
                                 enum upl_kind kind)
{
    struct spy_registry_req *base =
        spy_registry_req_new(req, route, sizeof(struct upload), &upload_ops);
    if (base == NULL) {
        spy_error("uploads: out of memory for a request's state");
        spy_registry_error(req, SPY_OCI_UNKNOWN, "out of memory", NULL, NULL, 0);
        return NULL;
    }
    struct upload *u = (struct upload *)base;
    u->kind = kind;
    u->orphan_reason = "upload write failed";
    spy_oci_sha256_init(&u->sha);
    return u;
}

/* upload_destroy: frees what the state owns (registry.c frees the state). */
static void upload_destroy(struct spy_registry_req *base)
{
    struct upload *u = (struct upload *)base;
    spy_meta_op_release(&u->op);
    spy_meta_op_release(&u->orphan_op);
    spy_oci_hasher_release(&u->hasher);
    free(u->held);
    free(u->pieces);
    free(u->orphans);
}

/* alive: whether the request still waits for us; when it does not (the
 * client went away), the finished op is released and the caller stops. */
static struct upload *alive(struct spy_meta_op *op)
{
    struct upload *u = op->data;
    if (u->base.req != NULL)
        return u;
    spy_meta_op_release(op);
    return NULL;
}

/* op_begin: the request's op, emptied and set to kind/done. */
static struct spy_meta_op *op_begin(struct upload *u, enum spy_meta_kind kind,
                                    spy_meta_done_fn done)
{
    spy_meta_op_release(&u->op);
    spy_meta_op_init(&u->op, kind, done, u);
    u->op.in.repo = u->base.name;
    return &u->op;
}

static void orphan_pieces(struct upload *u, const char *reason);

/* op_submit: submits the request's op. Once it is queued, the body's pieces
 * it carries are meta's (it commits or orphans them). On refusal the pieces
 * are orphaned, the request answered (EBUSY: 429), and the status returned. */
static int op_submit(struct upload *u, enum spy_oci_code not_found)
{
    int rc = spy_registry_meta_submit(&u->base, &u->op);
    if (rc == SPY_OK && u->op.in.pieces == u->pieces)
        u->npieces = 0;
    if (rc != SPY_OK) {
        orphan_pieces(u, "metadata refused the upload");
        answer_status(u, rc, not_found);
    }
    return rc;
}

/* ---- orphans ---------------------------------------------------------- */

/* orphan_add: one fid that belongs to no blob; kept for the request's
 * ORPHANS_RECORD (logged at ERROR if it cannot be kept). */
static void orphan_add(struct upload *u, uint32_t group_id, uint64_t fid)
{
    if (u->orphans_sent) { /* the record borrows the array: never move it */
        spy_error("uploads: orphan %u:%llu not recorded (after the request's record)", group_id,
                  (unsigned long long)fid);
        return;
    }
    if (u->norphans == u->orphans_cap) {
        size_t cap = u->orphans_cap ? 2 * u->orphans_cap : 8;
        struct spy_meta_piece *p = realloc(u->orphans, cap * sizeof(*p));
        if (p == NULL) {
            spy_error("uploads: orphan %u:%llu not recorded (out of memory)", group_id,
                      (unsigned long long)fid);
            return;
        }
        u->orphans = p;
        u->orphans_cap = cap;
    }
    u->orphans[u->norphans++] = (struct spy_meta_piece){.group_id = group_id, .fid = fid};
}

/* on_writer_orphan: the writer's on_orphan. */
static void on_writer_orphan(void *arg, uint32_t group_id, uint64_t fid)
{
    orphan_add(arg, group_id, fid);
}

/* orphans_log: the last resort, so no orphan is forgotten silently. */
static void orphans_log(const struct spy_meta_piece *p, size_t n, const char *why)
{
    for (size_t i = 0; i < n; i++)
        spy_error("uploads: orphan %u:%llu not recorded (%s)", p[i].group_id,
                  (unsigned long long)p[i].fid, why);
}

/* on_orphans_recorded: ORPHANS_RECORD finished. */
static void on_orphans_recorded(struct spy_meta_op *op)
{
    if (op->status != SPY_OK)
        orphans_log(op->in.pieces, op->in.npieces, spy_strerror(op->status));
    spy_meta_op_release(op);
}

/* orphans_flush: submits the request's orphans, once. */
static void orphans_flush(struct upload *u)
{
    if (u->norphans == 0 || u->orphans_sent)
        return;
    u->orphans_sent = 1;
    spy_meta_op_init(&u->orphan_op, SPY_META_ORPHANS_RECORD, on_orphans_recorded, u);
    u->orphan_op.in.pieces = u->orphans;
    u->orphan_op.in.npieces = u->norphans;
    u->orphan_op.in.reason = u->orphan_reason;
    int rc = spy_registry_meta_submit(&u->base, &u->orphan_op);
    if (rc != SPY_OK)
        orphans_log(u->orphans, u->norphans, spy_strerror(rc));
}

/* orphan_pieces: the body's pieces were stored but will not be used. */
static void orphan_pieces(struct upload *u, const char *reason)
{
    for (size_t i = 0; i < u->npieces; i++)
        orphan_add(u, u->pieces[i].group_id, u->pieces[i].fid);
    u->npieces = 0;
    u->orphan_reason = reason;
}

/* ---- the body: hash and stream to the blobstore ----------------------- */

static void body_complete(struct upload *u);

/* takes_body: whether the request's body is the blob's bytes (PATCH, PUT,
 * single POST); other requests ignore theirs (the HTTP layer discards it). */
static bool takes_body(const struct upload *u)
{
    return u->kind == UPL_PATCH || u->kind == UPL_PUT || u->kind == UPL_MONO;
}

/* range_length: the body length a Content-Range announces. */
static uint64_t range_length(const struct upload *u)
{
    return u->range_last - u->range_first + 1;
}

/* on_consumed: every replica took the slice: read more from the client. */
static void on_consumed(void *arg, int status)
{
    struct upload *u = arg;
    if (u->base.req == NULL)
        return;
    if (status != SPY_OK) {
        spy_warn("uploads: %s: storing the body failed: %s", u->base.name, spy_strerror(status));
        answer_status(u, status, SPY_OCI_UNKNOWN);
        return;
    }
    spy_http_resume(u->base.req);
}

/* writer_start: the body's writer, begun at its first byte. SPY_OK or the
 * failure (not answered). */
static int writer_start(struct upload *u)
{
    static const struct spy_blob_write_handler h = {.on_orphan = on_writer_orphan};
    int rc = spy_blob_write_begin(u->base.loop->blob, &h, u, &u->writer);
    if (rc == SPY_OK)
        spy_registry_req_ref(&u->base);
    else
        u->writer = NULL;
    return rc;
}

/* upload_on_body: one slice of the body. It is hashed at once and, unless
 * the blob exists already, handed to the writer with the client paused
 * until on_consumed. */
static void upload_on_body(struct spy_registry_req *base, const char *data, size_t len)
{
    struct upload *u = (struct upload *)base;
    if (!takes_body(u))
        return;
    u->received += len;
    if (u->has_range && u->received > range_length(u)) {
        answer_session_error(u, SPY_OCI_SIZE_INVALID, "body longer than its Content-Range",
                             u->offset);
        return;
    }
    if (u->kind == UPL_MONO)
        spy_oci_hasher_update(&u->hasher, data, len);
    else
        spy_oci_sha256_update(&u->sha, data, len);
    if (u->verify_only)
        return;
    int rc = u->writer == NULL ? writer_start(u) : SPY_OK;
    if (rc == SPY_OK)
        rc = spy_blob_write_data(u->writer, data, len, on_consumed);
    if (rc != SPY_OK) {
        spy_warn("uploads: %s: storing the body failed: %s", u->base.name, spy_strerror(rc));
        answer_status(u, rc, SPY_OCI_UNKNOWN);
        return;
    }
    spy_http_pause(u->base.req);
}

/* pieces_take: copies the writer's pieces, shifted by the session offset. */
static int pieces_take(struct upload *u, const struct spy_blob_piece *p, size_t n)
{
    free(u->pieces);
    u->pieces = NULL;
    u->npieces = 0;
    if (n == 0)
        return SPY_OK;
    u->pieces = malloc(n * sizeof(*u->pieces));
    if (u->pieces == NULL) {
        spy_error("uploads: out of memory for %zu pieces", n);
        for (size_t i = 0; i < n; i++)
            orphan_add(u, p[i].group_id, p[i].fid);
        return SPY_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        u->pieces[i] = (struct spy_meta_piece){.group_id = p[i].group_id,
                                               .fid = p[i].fid,
                                               .offset = u->offset + p[i].offset,
                                               .length = p[i].length,
                                               .crc32c = p[i].crc32c};
    u->npieces = n;
    return SPY_OK;
}

/* on_written: the writer sealed the body into pieces (or failed; its fids
 * went to on_orphan). Drops the writer's reference last. */
static void on_written(void *arg, int status, const struct spy_blob_piece *pieces, size_t n)
{
    struct upload *u = arg;
    u->writer = NULL;
    if (u->base.req == NULL) {
        for (size_t i = 0; status == SPY_OK && i < n; i++)
            orphan_add(u, pieces[i].group_id, pieces[i].fid);
        orphans_flush(u);
    } else if (status != SPY_OK) {
        spy_warn("uploads: %s: storing the body failed: %s", u->base.name, spy_strerror(status));
        answer_status(u, status, SPY_OCI_UNKNOWN);
    } else if (pieces_take(u, pieces, n) != SPY_OK) {
        answer_error(u, SPY_OCI_UNKNOWN, "out of memory");
    } else {
        body_complete(u);
    }
    spy_registry_req_unref(&u->base);
}

/* upload_on_body_end: the last slice was taken: seal the pieces. */
static void upload_on_body_end(struct spy_registry_req *base)
{
    struct upload *u = (struct upload *)base;
    if (u->base.req == NULL || !takes_body(u))
        return;
    if (u->writer == NULL) {
        body_complete(u);
        return;
    }
    int rc = spy_blob_write_finish(u->writer, on_written);
    if (rc != SPY_OK)
        answer_status(u, rc, SPY_OCI_UNKNOWN);
}

/* upload_on_abort: the client went away or timed out: nothing of this
 * request becomes visible (an op already submitted runs to its end; its
 * completion only cleans up). */
static void upload_on_abort(struct spy_registry_req *base, int status)
{
    struct upload *u = (struct upload *)base;
    spy_debug("uploads: %s: request aborted (%s) after %llu body bytes", u->base.name,
              spy_strerror(status), (unsigned long long)u->received);
    u->orphan_reason = "upload aborted";
    abort_io(u);
    orphan_pieces(u, "upload aborted");
    orphans_flush(u);
}

/* ---- the session, read before a body ---------------------------------- */

static void put_retried(struct upload *u);

/* session_check: the Content-Range, if any, fits the session: it starts at
 * its offset and its length matches a Content-Length. Answers and returns 0
 * when it does not. */
static int session_check(struct upload *u)
{
    struct spy_http_request *req = u->base.req;
    if (u->range_bad || (u->has_range && u->range_first != u->offset)) {
        answer_session_error(u, SPY_OCI_RANGE_INVALID,
                             u->range_bad ? "malformed Content-Range"
                                          : "Content-Range does not start at the upload's offset",
                             u->offset);
        return 0;
    }
    if (u->has_range && req->body_kind == SPY_HTTP_BODY_LENGTH &&
        req->content_length != range_length(u)) {
        answer_session_error(u, SPY_OCI_SIZE_INVALID, "Content-Length differs from Content-Range",
                             u->offset);
        return 0;
    }
    return 1;
}

/* on_session: UPLOAD_GET before a PATCH or PUT body. */
static void on_session(struct spy_meta_op *op)
{
    struct upload *u = alive(op);
    if (u == NULL)
        return;
    if (op->status == SPY_ENOTFOUND && u->kind == UPL_PUT) {
        put_retried(u);
        return;
    }
    if (op->status != SPY_OK) {
        answer_status(u, op->status, SPY_OCI_BLOB_UPLOAD_UNKNOWN);
        return;
    }
    u->offset = op->out.offset;
    u->version = op->out.version;
    if (spy_oci_sha256_import(&u->sha, op->out.state, sizeof(op->out.state)) != SPY_OK) {
        spy_error("uploads: %s: session %s has a corrupt hash state", u->base.name, u->base.ref);
        answer_error(u, SPY_OCI_UNKNOWN, "the upload's hash state is corrupt");
        return;
    }
    if (spy_oci_sha256_length(&u->sha) != u->offset) {
        spy_error("uploads: %s: session %s: hash length %llu != offset %llu", u->base.name,
                  u->base.ref, (unsigned long long)spy_oci_sha256_length(&u->sha),
                  (unsigned long long)u->offset);
        answer_error(u, SPY_OCI_UNKNOWN, "the upload's hash state is inconsistent");
        return;
    }
    if (!session_check(u))
        return;
    if (op->out.npieces > 0) {
        u->held = malloc(op->out.npieces * sizeof(*u->held));
        if (u->held == NULL) {
            answer_error(u, SPY_OCI_UNKNOWN, "out of memory");
            return;
        }
        memcpy(u->held, op->out.pieces, op->out.npieces * sizeof(*u->held));
        u->nheld = op->out.npieces;
    }
    spy_meta_op_release(op);
    spy_http_resume(u->base.req);
}

/* session_read: pauses the body and reads the session (then on_session). */
static void session_read(struct upload *u, bool with_pieces)
{
    spy_http_pause(u->base.req);
    struct spy_meta_op *op = op_begin(u, SPY_META_UPLOAD_GET, on_session);
    op->in.uuid = u->base.ref;
    op->in.with_pieces = with_pieces;
    op_submit(u, SPY_OCI_BLOB_UPLOAD_UNKNOWN);
}

/* ---- PATCH: one chunk, or the whole blob streamed --------------------- */

/* on_refreshed: UPLOAD_GET after a lost race: tell the client where the
 * session is now, so it can resume from there. */
static void on_refreshed(struct spy_meta_op *op)
{
    struct upload *u = alive(op);
    if (u == NULL)
        return;
    if (op->status != SPY_OK)
        answer_status(u, op->status, SPY_OCI_BLOB_UPLOAD_UNKNOWN);
    else
        answer_session_error(u, SPY_OCI_RANGE_INVALID, "another request moved the upload on",
                             op->out.offset);
}

/* session_moved: the session's version was not ours any more (another
 * request appended first; meta orphaned our pieces): answer 416 with the
 * session's current Range. */
static void session_moved(struct upload *u)
{
    struct spy_meta_op *op = op_begin(u, SPY_META_UPLOAD_GET, on_refreshed);
    op->in.uuid = u->base.ref;
    op_submit(u, SPY_OCI_BLOB_UPLOAD_UNKNOWN);
}

/* on_appended: UPLOAD_APPEND finished. */
static void on_appended(struct spy_meta_op *op)
{
    struct upload *u = alive(op);
    if (u == NULL)
        return;
    if (op->status == SPY_OK)
        answer_session(u, 202, u->base.ref, op->out.offset);
    else if (op->status == SPY_ERANGE)
        session_moved(u);
    else
        answer_status(u, op->status, SPY_OCI_BLOB_UPLOAD_UNKNOWN);
}

/* chunk_short: the body ended before its Content-Range did: its pieces are
 * dropped and the session stays where it was. Answers and returns 1. */
static int chunk_short(struct upload *u)
{
    if (!u->has_range || u->received == range_length(u))
        return 0;
    orphan_pieces(u, "upload chunk shorter than its Content-Range");
    answer_session_error(u, SPY_OCI_SIZE_INVALID, "body shorter than its Content-Range", u->offset);
    return 1;
}

/* patch_complete: the chunk is stored: append its pieces and the new hash
 * state to the session, if nobody else did since we read it. */
static void patch_complete(struct upload *u)
{
    if (chunk_short(u))
        return;
    if (u->received == 0) {
        answer_session(u, 202, u->base.ref, u->offset);
        return;
    }
    spy_oci_sha256_export(&u->sha, u->state);
    struct spy_meta_op *op = op_begin(u, SPY_META_UPLOAD_APPEND, on_appended);
    op->in.uuid = u->base.ref;
    op->in.expected_version = u->version;
    op->in.pieces = u->pieces;
    op->in.npieces = u->npieces;
    op->in.state = u->state;
    op_submit(u, SPY_OCI_BLOB_UPLOAD_UNKNOWN);
}

/* ---- PUT: the last chunk, verification, the blob ---------------------- */

/* needs_sha512: a digest to verify is sha512, which the stored running
 * state (sha256 only) cannot give: the blob is read back to hash it. */
static bool needs_sha512(const struct upload *u)
{
    for (size_t i = 0; i < u->nwant; i++)
        if (u->want[i].alg == SPY_OCI_SHA512)
            return true;
    return false;
}

/* on_blob_done: BLOB_STAT, BLOB_LINK, BLOB_COMMIT or UPLOAD_COMPLETE
 * made the blob visible in the repository (or failed). */
static void on_blob_done(struct spy_meta_op *op)
{
    struct upload *u = alive(op);
    if (u == NULL)
        return;
    if (op->status == SPY_OK)
        answer_created(u, u->digest);
    else if (op->status == SPY_ERANGE && u->kind == UPL_PUT)
        session_moved(u);
    else
        answer_status(u, op->status,
                      u->kind == UPL_PUT ? SPY_OCI_BLOB_UPLOAD_UNKNOWN : SPY_OCI_BLOB_UNKNOWN);
}

/* put_retried: the session is gone. If the blob is in the repository, this
 * is a retried PUT whose first try succeeded: 201 again; else 404. */
static void put_retried(struct upload *u)
{
    struct spy_meta_op *op = op_begin(u, SPY_META_BLOB_STAT, on_blob_done);
    op->in.digest = u->digest;
    if (spy_meta_try_cached(u->base.reg->meta, op)) {
        answer_created(u, u->digest);
        return;
    }
    op_submit(u, SPY_OCI_BLOB_UPLOAD_UNKNOWN);
}

/* on_rejected: the session of a wrong digest was cancelled. */
static void on_rejected(struct spy_meta_op *op)
{
    struct upload *u = alive(op);
    if (u == NULL)
        return;
    if (op->status != SPY_OK && op->status != SPY_ENOTFOUND)
        spy_warn("uploads: %s: cancelling session %s after a wrong digest: %s", u->base.name,
                 u->base.ref, spy_strerror(op->status));
    answer_error(u, SPY_OCI_DIGEST_INVALID, "the uploaded content does not match the digest");
}

/* put_reject: the content does not match: as distribution does, the
 * session is cancelled (its pieces and the last chunk's become orphans),
 * then 400 DIGEST_INVALID; the client starts over. */
static void put_reject(struct upload *u)
{
    orphan_pieces(u, "upload digest mismatch");
    struct spy_meta_op *op = op_begin(u, SPY_META_UPLOAD_CANCEL, on_rejected);
    op->in.uuid = u->base.ref;
    if (spy_registry_meta_submit(&u->base, op) != SPY_OK)
        answer_error(u, SPY_OCI_DIGEST_INVALID, "the uploaded content does not match the digest");
}

/* put_verify: every ?digest= must match the content (sha512 given when
 * one was asked for); then the session becomes the blob, in one
 * transaction. */
static void put_verify(struct upload *u, const struct spy_oci_digest *sha512)
{
    struct spy_oci_digest sha256;
    spy_oci_sha256_final(&u->sha, &sha256);
    for (size_t i = 0; i < u->nwant; i++) {
        const struct spy_oci_digest *got = u->want[i].alg == SPY_OCI_SHA512 ? sha512 : &sha256;
        if (!spy_oci_digest_equal(&u->want[i], got)) {
            put_reject(u);
            return;
        }
    }
    struct spy_meta_op *op = op_begin(u, SPY_META_UPLOAD_COMPLETE, on_blob_done);
    op->in.uuid = u->base.ref;
    op->in.expected_version = u->version;
    op->in.digest = u->digest;
    op->in.size = u->offset + u->received;
    op->in.pieces = u->pieces;
    op->in.npieces = u->npieces;
    op_submit(u, SPY_OCI_BLOB_UPLOAD_UNKNOWN);
}

/* rehash_sink: the blob read back, hashed with sha512. */
static int rehash_sink(void *arg, const uint8_t *data, size_t len)
{
    struct upload *u = arg;
    spy_oci_hasher_update(&u->hasher, data, len);
    return SPY_BLOB_CONTINUE;
}

/* rehash_done: the read-back ended; drops the reader's reference last. */
static void rehash_done(void *arg, int status)
{
    struct upload *u = arg;
    u->reader = NULL;
    struct spy_oci_digest d;
    if (u->base.req == NULL) {
        /* aborted: on_abort took care of the pieces */
    } else if (status != SPY_OK) {
        spy_warn("uploads: %s: reading session %s back failed: %s", u->base.name, u->base.ref,
                 spy_strerror(status));
        orphan_pieces(u, "upload chunk not verified");
        answer_status(u, status, SPY_OCI_UNKNOWN);
    } else if (spy_oci_hasher_final(&u->hasher, &d) != SPY_OK) {
        orphan_pieces(u, "upload chunk not verified");
        answer_error(u, SPY_OCI_UNKNOWN, "hashing failed");
    } else {
        put_verify(u, &d);
    }
    spy_registry_req_unref(&u->base);
}

/* rehash_list: the session's pieces then the last chunk's, as one blob. */
static struct spy_blob_piece *rehash_list(const struct upload *u, size_t *n)
{
    *n = u->nheld + u->npieces;
    struct spy_blob_piece *all = calloc(*n ? *n : 1, sizeof(*all));
    if (all == NULL)
        return NULL;
    for (size_t i = 0; i < *n; i++) {
        const struct spy_meta_piece *p = i < u->nheld ? &u->held[i] : &u->pieces[i - u->nheld];
        all[i] = (struct spy_blob_piece){.group_id = p->group_id,
                                         .fid = p->fid,
                                         .offset = p->offset,
                                         .length = p->length,
                                         .crc32c = p->crc32c};
    }
    return all;
}

/* rehash_start: reads the whole blob back from the chunkservers to hash it
 * with sha512 (no memory beyond the reader's socket buffer). */
static void rehash_start(struct upload *u)
{
    uint64_t total = u->offset + u->received;
    size_t n = 0;
    struct spy_blob_piece *all = NULL;
    int rc = spy_oci_hasher_init(&u->hasher, SPY_OCI_SHA512);
    if (rc == SPY_OK && total == 0) {
        struct spy_oci_digest d;
        if (spy_oci_hasher_final(&u->hasher, &d) == SPY_OK) {
            put_verify(u, &d);
            return;
        }
        rc = SPY_EINVAL;
    }
    if (rc == SPY_OK)
        rc = (all = rehash_list(u, &n)) != NULL ? SPY_OK : SPY_ENOMEM;
    if (rc == SPY_OK)
        rc = spy_blob_read(u->base.loop->blob, all, n, 0, total, rehash_sink, rehash_done, u,
                           &u->reader);
    free(all);
    if (rc != SPY_OK) {
        spy_warn("uploads: %s: cannot read session %s back: %s", u->base.name, u->base.ref,
                 spy_strerror(rc));
        u->reader = NULL;
        orphan_pieces(u, "upload chunk not verified");
        answer_status(u, rc, SPY_OCI_UNKNOWN);
        return;
    }
    spy_registry_req_ref(&u->base);
}

/* put_complete: the last chunk (maybe none) is stored. */
static void put_complete(struct upload *u)
{
    if (chunk_short(u))
        return;
    if (needs_sha512(u))
        rehash_start(u);
    else
        put_verify(u, NULL);
}

/* ---- POST: a new session, a mount, or the whole blob ------------------ */

/* on_session_created: UPLOAD_CREATE finished: 202 with the session's URL. */
static void on_session_created(struct spy_meta_op *op)
{
    struct upload *u = alive(op);
    if (u == NULL)
        return;
    if (op->status != SPY_OK)
        answer_status(u, op->status, SPY_OCI_NAME_UNKNOWN);
    else
        answer_session(u, 202, op->out.uuid, 0);
}

/* session_create: starts a new, empty session (the fall-back of a mount or
 * of a single POST that cannot be done). */
static void session_create(struct upload *u)
{
    op_begin(u, SPY_META_UPLOAD_CREATE, on_session_created);
    op_submit(u, SPY_OCI_NAME_UNKNOWN);
}

/* on_mounted: BLOB_LINK of a mount: 201, or a new session if the blob is
 * not there to mount. */
static void on_mounted(struct spy_meta_op *op)
{
    struct upload *u = alive(op);
    if (u == NULL)
        return;
    if (op->status == SPY_OK)
        answer_created(u, u->digest);
    else if (op->status == SPY_ENOTFOUND)
        session_create(u);
    else
        answer_status(u, op->status, SPY_OCI_BLOB_UNKNOWN);
}

/* mount_start: links digest from 'from' (or, without from, from anywhere:
 * there is no authorisation yet, so any caller may read any blob). */
static void mount_start(struct upload *u)
{
    struct spy_meta_op *op = op_begin(u, SPY_META_BLOB_LINK, on_mounted);
    op->in.digest = u->digest;
    op->in.from = u->from[0] != '\0' ? u->from : NULL;
    op_submit(u, SPY_OCI_BLOB_UNKNOWN);
}

/* mono_complete: the whole body arrived: verify it, then commit the
 * stored pieces (or, when the blob existed, just link it). */
static void mono_complete(struct upload *u)
{
    struct spy_oci_digest got;
    if (spy_oci_hasher_final(&u->hasher, &got) != SPY_OK) {
        orphan_pieces(u, "upload not verified");
        answer_error(u, SPY_OCI_UNKNOWN, "hashing failed");
        return;
    }
    if (!spy_oci_digest_equal(&got, &u->want[0])) {
        orphan_pieces(u, "upload digest mismatch");
        answer_error(u, SPY_OCI_DIGEST_INVALID, "the uploaded content does not match the digest");
        return;
    }
    struct spy_meta_op *op =
        op_begin(u, u->verify_only ? SPY_META_BLOB_LINK : SPY_META_BLOB_COMMIT, on_blob_done);
    op->in.digest = u->digest;
    op->in.size = u->received;
    op->in.pieces = u->pieces;
    op->in.npieces = u->npieces;
    op_submit(u, SPY_OCI_BLOB_UNKNOWN);
}

/* on_mono_stat: whether the blob exists anywhere: if it does, the body is
 * only hashed (verified), not stored again. Any failure: store it. */
static void on_mono_stat(struct spy_meta_op *op)
{
    struct upload *u = alive(op);
    if (u == NULL)
        return;
    u->verify_only = op->status == SPY_OK;
    spy_meta_op_release(op);
    spy_http_resume(u->base.req);
}

/* mono_start: a single POST ?digest= with a body. */
static void mono_start(struct upload *u)
{
    if (spy_oci_hasher_init(&u->hasher, u->want[0].alg) != SPY_OK) {
        answer_error(u, SPY_OCI_UNKNOWN, "hashing failed");
        return;
    }
    struct spy_meta_op *op = op_begin(u, SPY_META_BLOB_STAT, on_mono_stat);
    op->in.repo = NULL;
    op->in.digest = u->digest;
    if (spy_meta_try_cached(u->base.reg->meta, op)) {
        u->verify_only = op->status == SPY_OK;
        spy_meta_op_release(op);
        return;
    }
    spy_http_pause(u->base.req);
    if (spy_registry_meta_submit(&u->base, op) != SPY_OK) {
        spy_meta_op_release(op);
        spy_http_resume(u->base.req);
    }
}

/* body_complete: the body is stored (or was empty): what comes next. */
static void body_complete(struct upload *u)
{
    if (u->kind == UPL_PATCH)
        patch_complete(u);
    else if (u->kind == UPL_PUT)
        put_complete(u);
    else
        mono_complete(u);
}

/* ---- GET and DELETE --------------------------------------------------- */

/* on_status: UPLOAD_GET of a status request: 204 with the session headers. */
static void on_status(struct spy_meta_op *op)
{
    struct upload *u = alive(op);
    if (u == NULL)
        return;
    if (op->status != SPY_OK)
        answer_status(u, op->status, SPY_OCI_BLOB_UPLOAD_UNKNOWN);
    else
        answer_session(u, 204, u->base.ref, op->out.offset);
}

/* on_cancelled: UPLOAD_CANCEL finished: 204. */
static void on_cancelled(struct spy_meta_op *op)
{
    struct upload *u = alive(op);
    if (u == NULL)
        return;
    if (op->status != SPY_OK) {
        answer_status(u, op->status, SPY_OCI_BLOB_UPLOAD_UNKNOWN);
        return;
    }
    if (spy_registry_respond(u->base.req, 204, NULL, 0, NULL, 0) != SPY_OK)
        spy_http_stream_fail(u->base.req);
    finish(u);
}

/* ---- the query and headers -------------------------------------------- */

/* digest_take: parses one digest parameter into u->want[u->nwant]. Returns
 * SPY_OCI_OK, SPY_OCI_DIGEST_INVALID, or SPY_OCI_UNSUPPORTED (a valid
 * digest of an algorithm we do not hash). */
static enum spy_oci_code digest_take(struct upload *u, const char *s, size_t len)
{
    struct spy_oci_digest d;
    enum spy_oci_code code = spy_oci_digest_parse(s, len, &d);
    if (code != SPY_OCI_OK)
        return code;
    if (u->nwant == 0)
        spy_oci_digest_format(&d, u->digest);
    u->want[u->nwant++] = d;
    return SPY_OCI_OK;
}

/* put_digests: the closing PUT's ?digest= parameters (one or more; all are
 * verified). Answers and returns 0 when they are missing or invalid. */
static int put_digests(struct upload *u, const struct spy_oci_query *q)
{
    size_t n = spy_oci_query_count(q, "digest");
    if (n == 0 || n > UPL_DIGESTS_MAX) {
        answer_error(u, SPY_OCI_DIGEST_INVALID,
                     n == 0 ? "the digest parameter is required" : "too many digest parameters");
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *s = spy_oci_query_get_nth(q, "digest", i, &len);
        enum spy_oci_code code = digest_take(u, s, len);
        if (code != SPY_OCI_OK) {
            answer_error(u, SPY_OCI_DIGEST_INVALID,
                         code == SPY_OCI_UNSUPPORTED ? "unsupported digest algorithm (use sha256 "
                                                       "or sha512)"
                                                     : "invalid digest");
            return 0;
        }
    }
    return 1;
}

/* content_range_take: a PATCH's or PUT's Content-Range, if any; a bad one
 * is answered 416 once the session's offset is known. */
static void content_range_take(struct upload *u)
{
    const char *cr = spy_http_header_get(u->base.req, "Content-Range");
    if (cr == NULL)
        return;
    u->has_range = 1;
    u->range_bad =
        spy_oci_upload_range_parse(cr, strlen(cr), &u->range_first, &u->range_last) != SPY_OK;
}

/* query_parse: the request's query string; answers 400 and returns 0 when
 * it is malformed. */
static int query_parse(struct spy_http_request *req, struct spy_oci_query *q)
{
    size_t len = req->query != NULL ? strlen(req->query) : 0;
    if (spy_oci_query_parse(req->query, len, q) == SPY_OK)
        return 1;
    spy_registry_error(req, SPY_OCI_DIGEST_INVALID, "malformed query string", NULL, NULL, 0);
    return 0;
}

/* ---- entry points ----------------------------------------------------- */

/* post_mount: ?mount=<digest>[&from=<name>]; a mount that cannot be tried
 * (a bad digest or name) falls back to a new session, as the spec says. */
static void post_mount(struct upload *u, const struct spy_oci_query *q)
{
    size_t len;
    const char *m = spy_oci_query_get(q, "mount", &len);
    const char *from = spy_oci_query_get(q, "from", NULL);
    if (digest_take(u, m, len) != SPY_OCI_OK ||
        (from != NULL && !spy_oci_name_valid(from, strlen(from)))) {
        session_create(u);
        return;
    }
    if (from != NULL)
        snprintf(u->from, sizeof(u->from), "%s", from);
    mount_start(u);
}

/* post_digest: ?digest=<d>: a body makes it a single-POST upload. Without
 * a body, or with Content-Length: 0 and a digest that is not the empty
 * blob's, it is a plain POST (202, the fall-back the spec allows). */
static void post_digest(struct upload *u, const struct spy_oci_query *q)
{
    size_t len;
    const char *d = spy_oci_query_get(q, "digest", &len);
    enum spy_oci_code code = digest_take(u, d, len);
    if (code != SPY_OCI_OK) {
        answer_error(u, SPY_OCI_DIGEST_INVALID,
                     code == SPY_OCI_UNSUPPORTED ? "unsupported digest algorithm"
                                                 : "invalid digest");
        return;
    }
    struct spy_http_request *req = u->base.req;
    bool body = req->body_kind == SPY_HTTP_BODY_CHUNKED ||
                (req->body_kind == SPY_HTTP_BODY_LENGTH && req->content_length > 0);
    struct spy_oci_digest empty;
    if (!body && req->body_kind == SPY_HTTP_BODY_LENGTH &&
        spy_oci_digest_buffer(u->want[0].alg, "", 0, &empty) == SPY_OK &&
        spy_oci_digest_equal(&empty, &u->want[0]))
        body = true; /* the empty blob, in one request */
    if (!body) {
        session_create(u);
        return;
    }
    u->kind = UPL_MONO;
    mono_start(u);
}

void spy_registry_upload_start(struct spy_http_request *req, const struct spy_oci_route *route)
{
    if (strcmp(req->method, "POST") != 0) {
        spy_registry_error(req, SPY_OCI_UNSUPPORTED, "use POST to start an upload", NULL, NULL, 0);
        return;
    }
    struct spy_oci_query q;
    if (!query_parse(req, &q))
        return;
    struct upload *u = upload_new(req, route, UPL_CREATE);
    if (u != NULL) {
        if (spy_oci_query_get(&q, "mount", NULL) != NULL) {
            u->kind = UPL_MOUNT;
            post_mount(u, &q);
        } else if (spy_oci_query_get(&q, "digest", NULL) != NULL) {
            post_digest(u, &q);
        } else {
            session_create(u);
        }
    }
    spy_oci_query_free(&q);
}

/* upload_put: PUT <session>?digest=...: reads the session (with its pieces
 * if a sha512 digest must be verified), then the optional last chunk. */
static void upload_put(struct spy_http_request *req, const struct spy_oci_route *route)
{
    struct spy_oci_query q;
    if (!query_parse(req, &q))
        return;
    struct upload *u = upload_new(req, route, UPL_PUT);
    if (u != NULL && put_digests(u, &q)) {
        content_range_take(u);
        session_read(u, needs_sha512(u));
    }
    spy_oci_query_free(&q);
}

void spy_registry_upload(struct spy_http_request *req, const struct spy_oci_route *route)
{
    char uuid[SPY_META_UUID_LEN + 1] = "";
    if (route->ref_len == SPY_META_UUID_LEN)
        memcpy(uuid, route->ref, SPY_META_UUID_LEN);
    if (!spy_meta_uuid_valid(uuid)) {
        spy_registry_error(req, SPY_OCI_BLOB_UPLOAD_UNKNOWN, NULL, NULL, NULL, 0);
        return;
    }
    const char *m = req->method;
    if (strcmp(m, "PUT") == 0) {
        upload_put(req, route);
        return;
    }
    enum upl_kind kind;
    if (strcmp(m, "PATCH") == 0)
        kind = UPL_PATCH;
    else if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
        kind = UPL_STATUS;
    else if (strcmp(m, "DELETE") == 0)
        kind = UPL_CANCEL;
    else {
        spy_registry_error(req, SPY_OCI_UNSUPPORTED, "method not allowed on an upload", NULL, NULL,
                           0);
        return;
    }
    struct upload *u = upload_new(req, route, kind);
    if (u == NULL)
        return;
    if (kind == UPL_PATCH) {
        content_range_take(u);
        session_read(u, false);
        return;
    }
    struct spy_meta_op *op =
        op_begin(u, kind == UPL_STATUS ? SPY_META_UPLOAD_GET : SPY_META_UPLOAD_CANCEL,
                 kind == UPL_STATUS ? on_status : on_cancelled);
    op->in.uuid = u->base.ref;
    op_submit(u, SPY_OCI_BLOB_UPLOAD_UNKNOWN);
}
