/* blobs.c - blob HEAD, GET and DELETE: /v2/<name>/blobs/<digest>.
 *
 * GET/HEAD: the blob's size and pieces come from BLOB_STAT (the cache first:
 * content-addressed data never changes). The Range header decides the
 * answer (oci_range.h): 200 with the whole blob, 206 with one range and
 * Content-Range, 206 multipart/byteranges for several (parts in the order
 * asked), or 416 RANGE_INVALID with "Content-Range: bytes * /size".
 * Headers: Docker-Content-Digest, Content-Length, Accept-Ranges, ETag,
 * Content-Type application/octet-stream (or multipart/byteranges).
 *
 * Streaming: the blobstore reader's sink hands each slice straight to
 * spy_http_stream_write and pauses; when the slice is on the client's socket
 * the reader resumes. One slice in flight, no copy, memory flat. The head
 * goes out with the first slice, so a storage failure before any byte (every
 * replica down, the piece gone) is still a proper error answer: 404
 * BLOB_UNKNOWN when the piece is gone everywhere, 500 UNKNOWN otherwise. A
 * failure after the head ends the response with spy_http_stream_fail (a
 * broken transfer, never a short body that looks complete). A piece that
 * every replica lacks, or that fails its checksum, also drops the blob from
 * the metadata cache, in case another imageserver's garbage collection
 * removed it.
 *
 * DELETE: BLOB_UNLINK removes the blob from the repository (202); the bytes
 * stay for the garbage collector, other repositories keep their link. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "common/log.h"
#include "common/status.h"
#include "registry/oci_digest.h"
#include "registry/oci_range.h"
#include "registry/registry.h"

#define PART_HEADER_MAX 512 /* a multipart part header or the trailer */
#define HEAD_FIELDS     8

struct blob_req {
    struct spy_registry_req base;
    struct spy_meta_op op;
    const struct spy_meta_blob *blob; /* taken from the op's result */
    struct spy_blob_piece *pieces;    /* blob->pieces in the blobstore's type */
    struct spy_oci_ranges ranges;
    int multipart;                  /* several ranges */
    size_t part;                    /* the range being sent */
    struct spy_blob_reader *reader; /* the read in progress (holds a reference) */
    /* the response head, sent with the first slice */
    int status, head_sent;
    int64_t length;
    struct spy_http_field fields[HEAD_FIELDS];
    size_t nfields;
    const uint8_t *pending; /* multipart: the first slice, held while part 0's header goes */
    size_t pending_len;
    char etag[SPY_OCI_DIGEST_STR_MAX + 3];
    char content_range[SPY_OCI_CONTENT_RANGE_MAX];
    char content_type[128];
    char boundary[SPY_OCI_BOUNDARY_LEN + 1];
    char frame[PART_HEADER_MAX]; /* the part header or trailer being written */
};

static void send_part(struct blob_req *b);

/* ---- helpers ----------------------------------------------------------- */

/* fail_stream: ends a started response in error (one not started yet
 * becomes the layer's 500). */
static void fail_stream(struct blob_req *b)
{
    spy_http_stream_fail(b->base.req);
    spy_registry_req_finish(&b->base);
}

/* answer_error: a terminal error response from the handler's state. */
static void answer_error(struct blob_req *b, enum spy_oci_code code, const char *message,
                         const struct spy_http_field *extra, size_t nextra)
{
    spy_registry_error(b->base.req, code, message, NULL, extra, nextra);
    spy_registry_req_finish(&b->base);
}

/* etag_matches: whether an If-None-Match value names our ETag ("*", the
 * quoted digest in a list, or a W/ weak form of it). */
static int etag_matches(const char *inm, const char *etag)
{
    if (inm == NULL)
        return 0;
    if (strcmp(inm, "*") == 0)
        return 1;
    return strstr(inm, etag) != NULL;
}

/* send_head: the prepared response head. */
static int send_head(struct blob_req *b)
{
    b->head_sent = 1;
    return spy_registry_stream_begin(b->base.req, b->status, b->fields, b->nfields, b->length);
}

/* ---- streaming --------------------------------------------------------- */

/* on_slice_written: the slice is on the socket: the reader may go on. */
static void on_slice_written(struct spy_http_request *req)
{
    struct blob_req *b = req->data;
    spy_blob_read_resume(b->reader);
}

/* on_first_header_written: multipart part 0's header is out: now the slice
 * that was held for it. */
static void on_first_header_written(struct spy_http_request *req)
{
    struct blob_req *b = req->data;
    if (spy_http_stream_write(req, b->pending, b->pending_len, on_slice_written) != SPY_OK) {
        spy_error("registry: blob %s: response write refused", b->base.ref);
        spy_blob_read_abort(b->reader);
        b->reader = NULL;
        fail_stream(b);
        spy_registry_req_unref(&b->base); /* the read's reference */
    }
}

/* write_first: the first slice: the head, then (multipart) part 0's header,
 * then the slice. */
static int write_first(struct blob_req *b, const uint8_t *data, size_t len)
{
    int rc = send_head(b);
    if (rc != SPY_OK || !b->multipart)
        return rc != SPY_OK ? rc : spy_http_stream_write(b->base.req, data, len, on_slice_written);
    int n =
        spy_oci_multipart_part_header(b->frame, sizeof(b->frame), b->boundary, NULL, &b->ranges, 0);
    if (n < 0)
        return n;
    b->pending = data;
    b->pending_len = len;
    return spy_http_stream_write(b->base.req, b->frame, (size_t)n, on_first_header_written);
}

/* sink: a slice of the range from the chunkserver, written to the client
 * without a copy; the reader waits until it is on the socket. */
static int sink(void *arg, const uint8_t *data, size_t len)
{
    struct blob_req *b = arg;
    int rc = b->head_sent ? spy_http_stream_write(b->base.req, data, len, on_slice_written)
                          : write_first(b, data, len);
    if (rc != SPY_OK) {
        spy_error("registry: blob %s: response write refused: %s", b->base.ref, spy_strerror(rc));
        spy_blob_read_abort(b->reader);
        b->reader = NULL;
        fail_stream(b);
        spy_registry_req_unref(&b->base); /* the read's reference */
    }
    return SPY_BLOB_PAUSE;
}

/* on_trailer_written: the multipart body is complete. */
static void on_trailer_written(struct spy_http_request *req)
{
    struct blob_req *b = req->data;
    spy_http_stream_end(req);
    spy_registry_req_finish(&b->base);
}

/* next_part: after a range was read completely: the next one, the
 * multipart trailer, or the end. */
static void next_part(struct blob_req *b)
{
    if (!b->head_sent) { /* a range always delivers bytes; never here */
        fail_stream(b);
        return;
    }
    if (b->multipart && ++b->part < b->ranges.count) {
        send_part(b);
        return;
    }
    if (!b->multipart) {
        spy_http_stream_end(b->base.req);
        spy_registry_req_finish(&b->base);
        return;
    }
    int n = spy_oci_multipart_trailer(b->frame, sizeof(b->frame), b->boundary);
    if (n < 0 ||
        spy_http_stream_write(b->base.req, b->frame, (size_t)n, on_trailer_written) != SPY_OK) {
        spy_error("registry: blob %s: cannot write the multipart trailer", b->base.ref);
        fail_stream(b);
    }
}

/* read_failed: the storage could not deliver the range: an error answer
 * while nothing was sent, a broken transfer after. */
static void read_failed(struct blob_req *b, int status)
{
    spy_error("registry: blob %s in %s: read failed: %s", b->base.ref, b->base.name,
              spy_strerror(status));
    if (status == SPY_ENOTFOUND || status == SPY_ECORRUPT)
        spy_meta_forget_blob(b->base.reg->meta, b->base.ref);
    if (b->head_sent)
        fail_stream(b);
    else if (status == SPY_ENOTFOUND)
        answer_error(b, SPY_OCI_BLOB_UNKNOWN, "the blob's data is gone", NULL, 0);
    else
        answer_error(b, SPY_OCI_UNKNOWN,
                     status == SPY_ECORRUPT ? "stored data failed its checksum"
                                            : "storage unavailable",
                     NULL, 0);
}

/* read_done: the reader finished a range (it is freed after this). */
static void read_done(void *arg, int status)
{
    struct blob_req *b = arg;
    b->reader = NULL;
    if (b->base.req != NULL) {
        if (status == SPY_OK)
            next_part(b);
        else
            read_failed(b, status);
    }
    spy_registry_req_unref(&b->base); /* the read's reference */
}

/* start_read: reads blob bytes [first, last] into the response. */
static void start_read(struct blob_req *b, uint64_t first, uint64_t last)
{
    spy_registry_req_ref(&b->base);
    int rc = spy_blob_read(b->base.loop->blob, b->pieces, b->blob->npieces, first, last - first + 1,
                           sink, read_done, b, &b->reader);
    if (rc != SPY_OK) {
        spy_error("registry: blob %s: cannot start a read: %s", b->base.ref, spy_strerror(rc));
        b->reader = NULL;
        fail_stream(b);
        spy_registry_req_unref(&b->base);
    }
}

/* on_part_header_written: the part's headers are out; its bytes follow. */
static void on_part_header_written(struct spy_http_request *req)
{
    struct blob_req *b = req->data;
    start_read(b, b->ranges.r[b->part].first, b->ranges.r[b->part].last);
}

/* send_part: sends range b->part: its multipart header first, except for
 * part 0 whose header goes with the first slice (write_first). */
static void send_part(struct blob_req *b)
{
    const struct spy_oci_byte_range *r = &b->ranges.r[b->part];
    if (!b->multipart || b->part == 0) {
        start_read(b, r->first, r->last);
        return;
    }
    int n = spy_oci_multipart_part_header(b->frame, sizeof(b->frame), b->boundary, NULL, &b->ranges,
                                          b->part);
    if (n < 0 ||
        spy_http_stream_write(b->base.req, b->frame, (size_t)n, on_part_header_written) != SPY_OK) {
        spy_error("registry: blob %s: cannot write a multipart part header", b->base.ref);
        fail_stream(b);
    }
}

/* ---- GET / HEAD -------------------------------------------------------- */

/* copy_pieces: the metadata pieces in the blobstore's struct. */
static int copy_pieces(struct blob_req *b)
{
    size_t n = b->blob->npieces;
    if (n == 0)
        return SPY_OK;
    b->pieces = calloc(n, sizeof(*b->pieces));
    if (b->pieces == NULL) {
        spy_error("registry: out of memory for %zu pieces", n);
        return SPY_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const struct spy_meta_piece *p = &b->blob->pieces[i];
        b->pieces[i] =
            (struct spy_blob_piece){p->group_id, p->fid, p->offset, p->length, p->crc32c};
    }
    return SPY_OK;
}

/* field: appends a head field. */
static void field(struct blob_req *b, const char *name, const char *value)
{
    b->fields[b->nfields++] = (struct spy_http_field){name, value};
}

/* prepare_partial: the 206 head for the parsed ranges. */
static int prepare_partial(struct blob_req *b)
{
    b->status = 206;
    if (b->ranges.count == 1) {
        const struct spy_oci_byte_range *r = &b->ranges.r[0];
        spy_oci_content_range_format(b->content_range, sizeof(b->content_range), r, b->blob->size);
        field(b, "Content-Type", "application/octet-stream");
        field(b, "Content-Range", b->content_range);
        b->length = (int64_t)(r->last - r->first + 1);
        return SPY_OK;
    }
    uint8_t random[16];
    if (RAND_bytes(random, sizeof(random)) != 1) {
        spy_error("registry: RAND_bytes failed for a multipart boundary");
        return SPY_EIO;
    }
    b->multipart = 1;
    spy_oci_multipart_boundary(random, b->boundary);
    spy_oci_multipart_content_type(b->content_type, sizeof(b->content_type), b->boundary);
    field(b, "Content-Type", b->content_type);
    b->length = (int64_t)spy_oci_multipart_length(b->boundary, NULL, &b->ranges);
    return SPY_OK;
}

/* serve: answers a stat'ed blob according to the Range header. */
static void serve(struct blob_req *b)
{
    struct spy_http_request *req = b->base.req;
    uint64_t size = b->blob->size;
    snprintf(b->etag, sizeof(b->etag), "\"%s\"", b->blob->digest);
    field(b, "Docker-Content-Digest", b->blob->digest);
    field(b, "ETag", b->etag);
    field(b, "Accept-Ranges", "bytes");
    if (etag_matches(spy_http_header_get(req, "If-None-Match"), b->etag)) {
        spy_registry_respond(req, 304, b->fields, b->nfields, NULL, 0);
        spy_registry_req_finish(&b->base);
        return;
    }
    const char *range = spy_http_header_get(req, "Range");
    enum spy_oci_range_result kind =
        spy_oci_range_parse(range, range != NULL ? strlen(range) : 0, size, &b->ranges);
    if (kind == SPY_OCI_RANGE_UNSATISFIABLE) {
        spy_oci_content_range_unsatisfied(b->content_range, sizeof(b->content_range), size);
        field(b, "Content-Range", b->content_range);
        answer_error(b, SPY_OCI_RANGE_INVALID, NULL, b->fields, b->nfields);
        return;
    }
    if (kind == SPY_OCI_RANGE_PARTIAL) {
        if (prepare_partial(b) != SPY_OK) {
            answer_error(b, SPY_OCI_UNKNOWN, NULL, NULL, 0);
            return;
        }
    } else {
        b->status = 200;
        field(b, "Content-Type", "application/octet-stream");
        b->length = (int64_t)size;
        b->ranges.count = 1;
        b->ranges.r[0] = (struct spy_oci_byte_range){0, size > 0 ? size - 1 : 0};
    }
    if (req->is_head || size == 0) { /* nothing to read: the head is the answer */
        if (send_head(b) == SPY_OK)
            spy_http_stream_end(req);
        else
            spy_http_stream_fail(req);
        spy_registry_req_finish(&b->base);
        return;
    }
    b->part = 0;
    send_part(b);
}

/* stat_done: BLOB_STAT answered (from the cache or MySQL). */
static void stat_done(struct spy_meta_op *op)
{
    struct blob_req *b = op->data;
    if (b->base.req == NULL) {
        spy_meta_op_release(op);
        return;
    }
    if (op->status != SPY_OK) {
        enum spy_oci_code code = spy_registry_code_for(op->status, SPY_OCI_BLOB_UNKNOWN);
        spy_meta_op_release(op);
        answer_error(b, code, NULL, NULL, 0);
        return;
    }
    b->blob = op->out.blob;
    op->out.blob = NULL;
    spy_meta_op_release(op);
    if (copy_pieces(b) != SPY_OK) {
        answer_error(b, SPY_OCI_UNKNOWN, "out of memory", NULL, 0);
        return;
    }
    serve(b);
}

/* ---- DELETE ------------------------------------------------------------ */

/* unlink_done: BLOB_UNLINK answered. */
static void unlink_done(struct spy_meta_op *op)
{
    struct blob_req *b = op->data;
    int status = op->status;
    spy_meta_op_release(op);
    if (b->base.req == NULL)
        return;
    if (status != SPY_OK) {
        answer_error(b, spy_registry_code_for(status, SPY_OCI_BLOB_UNKNOWN), NULL, NULL, 0);
        return;
    }
    spy_registry_respond(b->base.req, 202, NULL, 0, NULL, 0);
    spy_registry_req_finish(&b->base);
}

/* ---- state and entry --------------------------------------------------- */

/* on_abort: the client went away: stop the read (it holds a reference). */
static void blob_abort(struct spy_registry_req *base, int status)
{
    (void)status;
    struct blob_req *b = (struct blob_req *)base;
    if (b->reader != NULL) {
        spy_blob_read_abort(b->reader);
        b->reader = NULL;
        spy_registry_req_unref(base);
    }
}

/* blob_destroy: frees what the state owns. */
static void blob_destroy(struct spy_registry_req *base)
{
    struct blob_req *b = (struct blob_req *)base;
    spy_meta_op_release(&b->op);
    if (b->blob != NULL)
        spy_meta_blob_release(b->blob);
    free(b->pieces);
}

static const struct spy_registry_req_ops blob_ops = {
    .on_abort = blob_abort,
    .destroy = blob_destroy,
};

/* check_digest: the route's digest; answers and returns 0 when it is not
 * one this registry can hold. */
static int check_digest(struct spy_http_request *req, const struct spy_oci_route *route)
{
    struct spy_oci_digest d;
    enum spy_oci_code code = spy_oci_digest_parse(route->ref, route->ref_len, &d);
    if (code == SPY_OCI_OK)
        return 1;
    if (code == SPY_OCI_UNSUPPORTED) /* a grammar-valid digest we never store */
        spy_registry_error(req, SPY_OCI_BLOB_UNKNOWN, "unsupported digest algorithm", NULL, NULL,
                           0);
    else
        spy_registry_error(req, SPY_OCI_DIGEST_INVALID, "invalid digest", NULL, NULL, 0);
    return 0;
}

void spy_registry_blob(struct spy_http_request *req, const struct spy_oci_route *route)
{
    int del = strcmp(req->method, "DELETE") == 0;
    if (del && !spy_registry_loop_of(req)->reg->cfg.delete_enabled) {
        spy_registry_error(req, SPY_OCI_UNSUPPORTED, "deletes are disabled", NULL, NULL, 0);
        return;
    }
    if (!check_digest(req, route))
        return;
    struct blob_req *b = (struct blob_req *)spy_registry_req_new(req, route, sizeof(*b), &blob_ops);
    if (b == NULL) {
        spy_registry_error(req, SPY_OCI_UNKNOWN, "out of memory", NULL, NULL, 0);
        return;
    }
    spy_meta_op_init(&b->op, del ? SPY_META_BLOB_UNLINK : SPY_META_BLOB_STAT,
                     del ? unlink_done : stat_done, b);
    b->op.in.repo = b->base.name;
    b->op.in.digest = b->base.ref;
    if (!del && spy_meta_try_cached(b->base.reg->meta, &b->op)) {
        stat_done(&b->op);
        return;
    }
    int rc = spy_registry_meta_submit(&b->base, &b->op);
    if (rc != SPY_OK)
        answer_error(b, spy_registry_code_for(rc, SPY_OCI_BLOB_UNKNOWN), NULL, NULL, 0);
}
