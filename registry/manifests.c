/* manifests.c - /v2/<name>/manifests/<reference>: GET, HEAD, PUT, DELETE by
 * tag or by digest.
 *
 * GET/HEAD serve the exact bytes that were pushed, with the Content-Type
 * they were pushed with, Docker-Content-Digest and ETag ("<digest>"); an
 * If-None-Match naming that ETag gets 304. Accept is advisory: what is
 * stored is served (every type we accept is one clients ask for). Lookups
 * try the metadata cache first (by digest: immutable; by tag: a short TTL).
 *
 * PUT reads the body (at most cfg.max_manifest, 4 MiB: 413 SIZE_INVALID
 * beyond, at once when Content-Length says so), hashes the exact bytes
 * (sha256, or the reference's algorithm when pushed by digest, which must
 * match: DIGEST_INVALID), validates them (oci_manifest) and stores them with
 * MANIFEST_PUT, pointing the reference tag and every ?tag= at it in the same
 * transaction. 201 with Location, Docker-Content-Digest, OCI-Subject when the
 * manifest has a subject, and one OCI-Tag per tag applied. Referenced blobs
 * or child manifests that the repository lacks: 400 MANIFEST_BLOB_UNKNOWN,
 * one error per missing digest (its detail). A dangling subject is accepted.
 *
 * DELETE by digest removes the manifest and its tags, by tag only the tag
 * (202); with --delete=0 it answers 405 UNSUPPORTED. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/status.h"
#include "registry/oci_digest.h"
#include "registry/oci_manifest.h"
#include "registry/oci_query.h"
#include "registry/registry.h"

#define MAX_TAGS     32 /* reference tag plus ?tag= values */
#define MAX_MISSING  64 /* missing digests listed in one error body */
#define LOCATION_MAX (16 + SPY_OCI_NAME_MAX + SPY_OCI_DIGEST_STR_MAX)

struct manifest_req {
    struct spy_registry_req base;
    struct spy_meta_op op;
    int by_digest;                           /* the reference is a digest (else a tag) */
    struct spy_oci_digest ref;               /* by_digest: the parsed reference */
    char digest[SPY_OCI_DIGEST_STR_MAX + 1]; /* PUT: of the body */
    char etag[SPY_OCI_DIGEST_STR_MAX + 3];
    /* PUT */
    char *body;
    size_t len, cap;
    struct spy_oci_manifest parsed;
    struct spy_oci_query query; /* owns the ?tag= strings */
    const char *tags[MAX_TAGS];
    size_t ntags;
};

/* ---- helpers ----------------------------------------------------------- */

/* respond_errors: a terminal error body with several entries and an
 * explicit status. */
static void respond_errors(struct manifest_req *m, int status, const struct spy_oci_error *errors,
                           size_t count)
{
    char *body = NULL;
    size_t len = 0;
    if (spy_oci_errors_json(errors, count, &body, &len) != SPY_OK)
        body = NULL, len = 0;
    const struct spy_http_field ct = {"Content-Type", "application/json"};
    spy_registry_respond(m->base.req, status, &ct, 1, body, len);
    free(body);
    spy_registry_req_finish(&m->base);
}

/* answer_error: a terminal one-error answer with the code's own status. */
static void answer_error(struct manifest_req *m, enum spy_oci_code code, const char *message,
                         const char *detail)
{
    spy_registry_error(m->base.req, code, message, detail, NULL, 0);
    spy_registry_req_finish(&m->base);
}

/* respond_too_large: 413 SIZE_INVALID (spec end-7), not the code's usual
 * 400. */
static void respond_too_large(struct spy_http_request *req, uint64_t max)
{
    char message[64];
    snprintf(message, sizeof(message), "manifest over %llu bytes", (unsigned long long)max);
    char *body = NULL;
    size_t len = 0;
    if (spy_oci_error_json(SPY_OCI_SIZE_INVALID, message, NULL, &body, &len) != SPY_OK)
        body = NULL, len = 0;
    const struct spy_http_field ct = {"Content-Type", "application/json"};
    spy_registry_respond(req, 413, &ct, 1, body, len);
    free(body);
}

/* too_large: the terminal 413 from the handler's state. */
static void too_large(struct manifest_req *m)
{
    respond_too_large(m->base.req, m->base.reg->cfg.max_manifest);
    spy_registry_req_finish(&m->base);
}

/* reference_error: answers for a reference that is neither a tag nor a
 * digest, or a digest we cannot hold; returns 1 if it answered. */
static int reference_error(struct spy_http_request *req, const struct spy_oci_route *route, int put,
                           int *by_digest, struct spy_oci_digest *d)
{
    enum spy_oci_ref_kind kind = spy_oci_reference_classify(route->ref, route->ref_len);
    if (kind == SPY_OCI_REF_TAG) {
        *by_digest = 0;
        return 0;
    }
    if (kind == SPY_OCI_REF_INVALID) {
        int looks_digest = memchr(route->ref, ':', route->ref_len) != NULL;
        if (looks_digest)
            spy_registry_error(req, SPY_OCI_DIGEST_INVALID, "invalid digest", NULL, NULL, 0);
        else if (put)
            spy_registry_error(req, SPY_OCI_TAG_INVALID, "invalid tag", NULL, NULL, 0);
        else /* no manifest can have that tag: the spec's "nonexistent" case */
            spy_registry_error(req, SPY_OCI_MANIFEST_UNKNOWN, "manifest unknown: invalid tag", NULL,
                               NULL, 0);
        return 1;
    }
    *by_digest = 1;
    enum spy_oci_code code = spy_oci_digest_parse(route->ref, route->ref_len, d);
    if (code == SPY_OCI_OK)
        return 0;
    if (code == SPY_OCI_UNSUPPORTED && !put)
        spy_registry_error(req, SPY_OCI_MANIFEST_UNKNOWN, "unsupported digest algorithm", NULL,
                           NULL, 0);
    else
        spy_registry_error(req, SPY_OCI_DIGEST_INVALID,
                           code == SPY_OCI_UNSUPPORTED ? "unsupported digest algorithm"
                                                       : "invalid digest",
                           NULL, NULL, 0);
    return 1;
}

/* ---- GET / HEAD -------------------------------------------------------- */

/* etag_matches: whether If-None-Match names the ETag (or is "*"). */
static int etag_matches(const char *inm, const char *etag)
{
    return inm != NULL && (strcmp(inm, "*") == 0 || strstr(inm, etag) != NULL);
}

/* get_done: MANIFEST_GET answered (cache or MySQL): the stored bytes. */
static void get_done(struct spy_meta_op *op)
{
    struct manifest_req *m = op->data;
    if (m->base.req == NULL) {
        spy_meta_op_release(op);
        return;
    }
    if (op->status != SPY_OK) {
        enum spy_oci_code code = spy_registry_code_for(op->status, SPY_OCI_MANIFEST_UNKNOWN);
        spy_meta_op_release(op);
        answer_error(m, code, NULL, NULL);
        return;
    }
    const struct spy_meta_manifest *mf = op->out.manifest;
    snprintf(m->etag, sizeof(m->etag), "\"%s\"", mf->digest);
    struct spy_http_field f[3] = {
        {"Docker-Content-Digest", mf->digest}, {"ETag", m->etag}, {"Content-Type", mf->media_type}};
    struct spy_http_request *req = m->base.req;
    if (etag_matches(spy_http_header_get(req, "If-None-Match"), m->etag))
        spy_registry_respond(req, 304, f, 2, NULL, 0);
    else
        spy_registry_respond(req, 200, f, 3, mf->body, (size_t)mf->size);
    spy_meta_op_release(op);
    spy_registry_req_finish(&m->base);
}

/* ---- PUT --------------------------------------------------------------- */

/* add_tag: appends a tag once (duplicates are dropped). */
static int add_tag(struct manifest_req *m, const char *tag)
{
    for (size_t i = 0; i < m->ntags; i++)
        if (strcmp(m->tags[i], tag) == 0)
            return 1;
    if (m->ntags == MAX_TAGS)
        return 0;
    m->tags[m->ntags++] = tag;
    return 1;
}

/* collect_tags: the reference tag and every ?tag=; answers and returns 0
 * for a bad query or tag. */
static int collect_tags(struct manifest_req *m)
{
    struct spy_http_request *req = m->base.req;
    const char *qs = req->query;
    if (spy_oci_query_parse(qs, qs != NULL ? strlen(qs) : 0, &m->query) != SPY_OK) {
        answer_error(m, SPY_OCI_MANIFEST_INVALID, "malformed query string", NULL);
        return 0;
    }
    if (!m->by_digest)
        add_tag(m, m->base.ref);
    size_t count = spy_oci_query_count(&m->query, "tag");
    for (size_t i = 0; i < count; i++) {
        size_t len;
        const char *tag = spy_oci_query_get_nth(&m->query, "tag", i, &len);
        if (!spy_oci_tag_valid(tag, len)) {
            answer_error(m, SPY_OCI_TAG_INVALID, "invalid tag", tag);
            return 0;
        }
        if (!add_tag(m, tag)) {
            answer_error(m, SPY_OCI_TAG_INVALID, "too many tags", NULL);
            return 0;
        }
    }
    return 1;
}

/* put_body: collects the body, refusing it beyond the manifest limit. */
static void put_body(struct spy_registry_req *base, const char *data, size_t len)
{
    struct manifest_req *m = (struct manifest_req *)base;
    uint64_t max = base->reg->cfg.max_manifest;
    if (m->len + len > max) {
        too_large(m);
        return;
    }
    if (m->len + len > m->cap) {
        size_t cap = m->cap > 0 ? m->cap : 16384;
        while (cap < m->len + len)
            cap *= 2;
        if (cap > max)
            cap = (size_t)max;
        char *p = realloc(m->body, cap);
        if (p == NULL) {
            spy_error("registry: out of memory for a %zu-byte manifest", cap);
            answer_error(m, SPY_OCI_UNKNOWN, "out of memory", NULL);
            return;
        }
        m->body = p;
        m->cap = cap;
    }
    memcpy(m->body + m->len, data, len);
    m->len += len;
}

/* respond_missing: 400 MANIFEST_BLOB_UNKNOWN, one entry per missing digest. */
static void respond_missing(struct manifest_req *m, char **missing, size_t count)
{
    struct spy_oci_error errors[MAX_MISSING];
    size_t n = count < MAX_MISSING ? count : MAX_MISSING;
    for (size_t i = 0; i < n; i++)
        errors[i] = (struct spy_oci_error){SPY_OCI_MANIFEST_BLOB_UNKNOWN, NULL, missing[i], NULL};
    if (n == 0) {
        errors[0] = (struct spy_oci_error){SPY_OCI_MANIFEST_BLOB_UNKNOWN, NULL, NULL, NULL};
        n = 1;
    }
    respond_errors(m, 400, errors, n);
}

/* put_done: MANIFEST_PUT answered. */
static void put_done(struct spy_meta_op *op)
{
    struct manifest_req *m = op->data;
    if (m->base.req == NULL) {
        spy_meta_op_release(op);
        return;
    }
    if (op->status == SPY_ENOTFOUND) {
        respond_missing(m, op->out.missing, op->out.nmissing);
        spy_meta_op_release(op);
        return;
    }
    int status = op->status;
    spy_meta_op_release(op);
    if (status != SPY_OK) {
        answer_error(m, spy_registry_code_for(status, SPY_OCI_NAME_UNKNOWN), NULL, NULL);
        return;
    }
    char location[LOCATION_MAX];
    snprintf(location, sizeof(location), "/v2/%s/manifests/%s", m->base.name, m->digest);
    struct spy_http_field f[3 + MAX_TAGS];
    size_t n = 0;
    f[n++] = (struct spy_http_field){"Location", location};
    f[n++] = (struct spy_http_field){"Docker-Content-Digest", m->digest};
    if (m->parsed.has_subject)
        f[n++] = (struct spy_http_field){"OCI-Subject", m->parsed.subject.digest};
    for (size_t i = 0; i < m->ntags; i++)
        f[n++] = (struct spy_http_field){"OCI-Tag", m->tags[i]};
    spy_registry_respond(m->base.req, 201, f, n, NULL, 0);
    spy_registry_req_finish(&m->base);
}

/* body_digest: hashes the exact bytes; by digest it must match. Answers
 * and returns 0 on a mismatch. */
static int body_digest(struct manifest_req *m)
{
    enum spy_oci_digest_alg alg = m->by_digest ? m->ref.alg : SPY_OCI_SHA256;
    struct spy_oci_digest d;
    if (spy_oci_digest_buffer(alg, m->body != NULL ? m->body : "", m->len, &d) != SPY_OK ||
        spy_oci_digest_format(&d, m->digest) < 0) {
        answer_error(m, SPY_OCI_UNKNOWN, "cannot hash the manifest", NULL);
        return 0;
    }
    if (m->by_digest && !spy_oci_digest_equal(&d, &m->ref)) {
        answer_error(m, SPY_OCI_DIGEST_INVALID, "the manifest's digest differs from the reference",
                     m->digest);
        return 0;
    }
    return 1;
}

/* put_body_end: the whole body is here: hash, validate, store. */
static void put_body_end(struct spy_registry_req *base)
{
    struct manifest_req *m = (struct manifest_req *)base;
    if (!body_digest(m))
        return;
    const char *ct = spy_http_header_get(base->req, "Content-Type");
    enum spy_oci_code code =
        spy_oci_manifest_parse(ct, m->body != NULL ? m->body : "", m->len, &m->parsed);
    if (code == SPY_OCI_SIZE_INVALID) {
        too_large(m);
        return;
    }
    if (code != SPY_OCI_OK) {
        answer_error(m, code, NULL, m->parsed.detail);
        return;
    }
    spy_meta_op_init(&m->op, SPY_META_MANIFEST_PUT, put_done, m);
    m->op.in.repo = base->name;
    m->op.in.digest = m->digest;
    m->op.in.manifest = &m->parsed;
    m->op.in.body = m->body;
    m->op.in.body_len = m->len;
    m->op.in.tags = m->tags;
    m->op.in.ntags = m->ntags;
    int rc = spy_registry_meta_submit(base, &m->op);
    if (rc != SPY_OK)
        answer_error(m, spy_registry_code_for(rc, SPY_OCI_NAME_UNKNOWN), NULL, NULL);
}

/* ---- DELETE ------------------------------------------------------------ */

/* delete_done: MANIFEST_DELETE answered. */
static void delete_done(struct spy_meta_op *op)
{
    struct manifest_req *m = op->data;
    int status = op->status;
    spy_meta_op_release(op);
    if (m->base.req == NULL)
        return;
    if (status != SPY_OK) {
        answer_error(m, spy_registry_code_for(status, SPY_OCI_MANIFEST_UNKNOWN), NULL, NULL);
        return;
    }
    spy_registry_respond(m->base.req, 202, NULL, 0, NULL, 0);
    spy_registry_req_finish(&m->base);
}

/* ---- state and entry --------------------------------------------------- */

/* manifest_destroy: frees what the state owns. */
static void manifest_destroy(struct spy_registry_req *base)
{
    struct manifest_req *m = (struct manifest_req *)base;
    spy_meta_op_release(&m->op);
    spy_oci_manifest_free(&m->parsed);
    spy_oci_query_free(&m->query);
    free(m->body);
}

static const struct spy_registry_req_ops get_ops = {.destroy = manifest_destroy};
static const struct spy_registry_req_ops put_ops = {
    .on_body = put_body,
    .on_body_end = put_body_end,
    .destroy = manifest_destroy,
};

/* submit_lookup: GET/HEAD/DELETE: the op for the reference, from the cache
 * when it can be. */
static void submit_lookup(struct manifest_req *m, enum spy_meta_kind kind, spy_meta_done_fn done)
{
    spy_meta_op_init(&m->op, kind, done, m);
    m->op.in.repo = m->base.name;
    if (m->by_digest)
        m->op.in.digest = m->base.ref;
    else
        m->op.in.tag = m->base.ref;
    if (kind == SPY_META_MANIFEST_GET && spy_meta_try_cached(m->base.reg->meta, &m->op)) {
        done(&m->op);
        return;
    }
    int rc = spy_registry_meta_submit(&m->base, &m->op);
    if (rc != SPY_OK)
        answer_error(m, spy_registry_code_for(rc, SPY_OCI_MANIFEST_UNKNOWN), NULL, NULL);
}

void spy_registry_manifest(struct spy_http_request *req, const struct spy_oci_route *route)
{
    const struct spy_registry_config *cfg = &spy_registry_loop_of(req)->reg->cfg;
    int put = strcmp(req->method, "PUT") == 0;
    int del = strcmp(req->method, "DELETE") == 0;
    if (del && !cfg->delete_enabled) {
        spy_registry_error(req, SPY_OCI_UNSUPPORTED, "deletes are disabled", NULL, NULL, 0);
        return;
    }
    int by_digest = 0;
    struct spy_oci_digest ref;
    if (reference_error(req, route, put, &by_digest, &ref))
        return;
    if (put && req->body_kind == SPY_HTTP_BODY_LENGTH && req->content_length > cfg->max_manifest) {
        respond_too_large(req, cfg->max_manifest);
        return;
    }
    struct manifest_req *m = (struct manifest_req *)spy_registry_req_new(req, route, sizeof(*m),
                                                                         put ? &put_ops : &get_ops);
    if (m == NULL) {
        spy_registry_error(req, SPY_OCI_UNKNOWN, "out of memory", NULL, NULL, 0);
        return;
    }
    m->by_digest = by_digest;
    m->ref = ref;
    if (put)
        collect_tags(m); /* answers itself on a bad tag; the body follows */
    else
        submit_lookup(m, del ? SPY_META_MANIFEST_DELETE : SPY_META_MANIFEST_GET,
                      del ? delete_done : get_done);
}
