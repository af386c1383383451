/* meta_op.c - the op's life outside the workers: init and release, the input
 * checks run by submit on the loop thread, answers from the cache, the
 * result objects, cache keys, and the imageserver's flags. */
#include "registry/meta_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "common/status.h"
#include "registry/oci_names.h"
#include "registry/oci_page.h"

#define TAGS_PER_PUT_MAX 1000
#define MEDIA_TYPE_MAX   255

bool meta_strdup(const char *s, char **out)
{
    *out = NULL;
    if (s == NULL)
        return true;
    *out = strdup(s);
    return *out != NULL;
}

bool spy_meta_uuid_valid(const char *s)
{
    if (s == NULL || strlen(s) != SPY_META_UUID_LEN)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

void spy_meta_op_init(struct spy_meta_op *op, enum spy_meta_kind kind, spy_meta_done_fn done,
                      void *data)
{
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    op->done = done;
    op->data = data;
}

/* free_names: a list of strings and the list. */
static void free_names(char **names, size_t n)
{
    for (size_t i = 0; names != NULL && i < n; i++)
        free(names[i]);
    free(names);
}

/* free_referrers: the entries' strings, annotations and the array. */
static void free_referrers(struct spy_oci_referrer *refs, size_t n)
{
    for (size_t i = 0; refs != NULL && i < n; i++) {
        free((char *)refs[i].media_type);
        free((char *)refs[i].digest);
        free((char *)refs[i].artifact_type);
        json_decref((json_t *)refs[i].annotations);
    }
    free(refs);
}

void meta_op_free_ext(struct spy_meta_op *op)
{
    struct meta_put_ext *ext = op->_p.ext;
    if (ext != NULL) {
        free(ext->refs);
        free(ext->annotations);
        free(ext);
    }
    op->_p.ext = NULL;
}

/* spy_meta_op_release: outputs are zeroed too, so a second call is a no-op
 * and a re-run (meta_pool.c) starts clean. */
void spy_meta_op_release(struct spy_meta_op *op)
{
    struct spy_meta_out *o = &op->out;
    spy_meta_blob_release(o->blob);
    spy_meta_manifest_release(o->manifest);
    free_names(o->missing, o->nmissing);
    if (op->kind == SPY_META_REFERRERS)
        free_referrers(o->referrers, o->count);
    else
        free_names(o->names, o->count);
    free(o->pieces);
    memset(o, 0, sizeof(*o));
    meta_op_free_ext(op);
}

/* ---- input checks ---- */

/* name_ok: a repository name per the OCI grammar. */
static bool name_ok(const char *s)
{
    return s != NULL && spy_oci_name_valid(s, strlen(s));
}

/* tag_ok: a tag per the OCI grammar. */
static bool tag_ok(const char *s)
{
    return s != NULL && spy_oci_tag_valid(s, strlen(s));
}

/* digest_ok: a digest of an algorithm we hash, in canonical form. */
static bool digest_ok(const char *s)
{
    struct spy_oci_digest d;
    return s != NULL && strlen(s) <= SPY_OCI_DIGEST_STR_MAX &&
           spy_oci_digest_parse(s, strlen(s), &d) == SPY_OCI_OK;
}

/* pieces_ok: non-empty pieces, each starting where the previous ended, the
 * first at 'start' (any start when start is UINT64_MAX); *end gets where the
 * last ends. */
static bool pieces_ok(const struct spy_meta_piece *p, size_t n, uint64_t start, uint64_t *end)
{
    if (n > SPY_META_PIECES_MAX || (n > 0 && p == NULL))
        return false;
    uint64_t at = n > 0 && start == UINT64_MAX ? p[0].offset : start;
    for (size_t i = 0; i < n; i++) {
        if (p[i].length == 0 || p[i].offset != at || p[i].length > UINT64_MAX - at)
            return false;
        at += p[i].length;
    }
    *end = at;
    return true;
}

/* text_ok: an optional string of at most max bytes. */
static bool text_ok(const char *s, size_t max)
{
    return s == NULL || strlen(s) <= max;
}

/* manifest_inputs_ok: MANIFEST_PUT's own checks. */
static bool manifest_inputs_ok(const struct spy_meta_in *in)
{
    const struct spy_oci_manifest *m = in->manifest;
    if (m == NULL || m->media_type == NULL || in->body == NULL || in->body_len == 0 ||
        in->body_len > SPY_OCI_MANIFEST_MAX || !digest_ok(in->digest) ||
        in->ntags > TAGS_PER_PUT_MAX || (in->ntags > 0 && in->tags == NULL) ||
        strlen(m->media_type) > MEDIA_TYPE_MAX || !text_ok(m->artifact_type, MEDIA_TYPE_MAX))
        return false;
    for (size_t i = 0; i < in->ntags; i++)
        if (!tag_ok(in->tags[i]))
            return false;
    return true;
}

/* inputs_ok: what each kind requires of op->in (see meta.h). */
static bool inputs_ok(const struct spy_meta_op *op)
{
    const struct spy_meta_in *in = &op->in;
    uint64_t end = 0;
    switch (op->kind) {
    case SPY_META_REPO_ENSURE:
    case SPY_META_UPLOAD_CREATE:
        return name_ok(in->repo);
    case SPY_META_BLOB_STAT:
        return (in->repo == NULL || name_ok(in->repo)) && digest_ok(in->digest);
    case SPY_META_BLOB_COMMIT:
        return name_ok(in->repo) && digest_ok(in->digest) &&
               pieces_ok(in->pieces, in->npieces, 0, &end) && end == in->size;
    case SPY_META_BLOB_LINK:
        return name_ok(in->repo) && digest_ok(in->digest) &&
               (in->from == NULL || name_ok(in->from));
    case SPY_META_BLOB_UNLINK:
        return name_ok(in->repo) && digest_ok(in->digest);
    case SPY_META_MANIFEST_PUT:
        return name_ok(in->repo) && manifest_inputs_ok(in);
    case SPY_META_MANIFEST_GET:
    case SPY_META_MANIFEST_DELETE:
        return name_ok(in->repo) && (in->digest != NULL) != (in->tag != NULL) &&
               (in->digest != NULL ? digest_ok(in->digest) : tag_ok(in->tag));
    case SPY_META_TAG_LIST:
        return name_ok(in->repo) && text_ok(in->last, SPY_OCI_NAME_MAX);
    case SPY_META_CATALOG:
        return text_ok(in->last, SPY_OCI_NAME_MAX);
    case SPY_META_REFERRERS:
        return name_ok(in->repo) && digest_ok(in->digest) &&
               text_ok(in->artifact_type, MEDIA_TYPE_MAX);
    case SPY_META_UPLOAD_GET:
    case SPY_META_UPLOAD_CANCEL:
        return name_ok(in->repo) && spy_meta_uuid_valid(in->uuid);
    case SPY_META_UPLOAD_APPEND:
        return name_ok(in->repo) && spy_meta_uuid_valid(in->uuid) && in->state != NULL &&
               pieces_ok(in->pieces, in->npieces, UINT64_MAX, &end);
    case SPY_META_UPLOAD_COMPLETE:
        return name_ok(in->repo) && spy_meta_uuid_valid(in->uuid) && digest_ok(in->digest) &&
               pieces_ok(in->pieces, in->npieces, UINT64_MAX, &end);
    case SPY_META_UPLOADS_EXPIRE:
        return in->max_age_s > 0;
    case SPY_META_ORPHANS_RECORD:
        return in->npieces > 0 && in->npieces <= SPY_META_PIECES_MAX && in->pieces != NULL &&
               in->reason != NULL && in->reason[0] != '\0' &&
               strlen(in->reason) <= SPY_META_REASON_MAX;
    }
    return false;
}

/* ---- MANIFEST_PUT extraction (on the loop thread, which owns the JSON) ---- */

/* add_ref: one referenced digest (duplicates are dropped after sorting). */
static void add_ref(struct meta_put_ext *ext, const struct spy_oci_descriptor *d, uint8_t kind)
{
    struct meta_ref *r = &ext->refs[ext->nrefs++];
    r->kind = kind;
    r->checkable = d->parsed.alg != SPY_OCI_DIGEST_UNSUPPORTED;
    if (r->checkable)
        spy_oci_digest_format(&d->parsed, r->digest);
    else
        snprintf(r->digest, sizeof(r->digest), "%.*s", SPY_OCI_DIGEST_STR_MAX, d->digest);
}

int meta_ref_cmp(const void *a, const void *b)
{
    const struct meta_ref *x = a, *y = b;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    return strcmp(x->digest, y->digest);
}

/* sort_refs: sorted by kind then digest, each once, so the executor can
 * binary-search what MySQL returns. */
static void sort_refs(struct meta_put_ext *ext)
{
    qsort(ext->refs, ext->nrefs, sizeof(*ext->refs), meta_ref_cmp);
    size_t n = 0;
    for (size_t i = 0; i < ext->nrefs; i++)
        if (n == 0 || meta_ref_cmp(&ext->refs[n - 1], &ext->refs[i]) != 0)
            ext->refs[n++] = ext->refs[i];
    ext->nrefs = n;
}

/* extract: the references to check and store, the subject and (for
 * referrers) the annotations as JSON text. */
static int extract(struct spy_meta_op *op)
{
    const struct spy_oci_manifest *m = op->in.manifest;
    struct meta_put_ext *ext = calloc(1, sizeof(*ext));
    if (ext == NULL)
        return SPY_ENOMEM;
    op->_p.ext = ext;
    size_t cap = m->n_blobs + m->n_manifests;
    ext->refs = calloc(cap > 0 ? cap : 1, sizeof(*ext->refs));
    if (ext->refs == NULL)
        return SPY_ENOMEM;
    for (size_t i = 0; i < m->n_blobs; i++)
        if (!m->blobs[i].foreign)
            add_ref(ext, &m->blobs[i], META_REF_BLOB);
    for (size_t i = 0; i < m->n_manifests; i++)
        add_ref(ext, &m->manifests[i], META_REF_MANIFEST);
    sort_refs(ext);
    if (!m->has_subject)
        return SPY_OK;
    if (m->subject.parsed.alg != SPY_OCI_DIGEST_UNSUPPORTED)
        spy_oci_digest_format(&m->subject.parsed, ext->subject);
    else if (strlen(m->subject.digest) <= SPY_OCI_DIGEST_STR_MAX)
        snprintf(ext->subject, sizeof(ext->subject), "%s", m->subject.digest);
    if (m->annotations != NULL && json_object_size(m->annotations) > 0) {
        ext->annotations = json_dumps(m->annotations, JSON_COMPACT);
        if (ext->annotations == NULL)
            return SPY_ENOMEM;
    }
    return SPY_OK;
}

int meta_op_prepare(struct spy_meta_op *op)
{
    if (op->kind < SPY_META_REPO_ENSURE || op->kind > SPY_META_UPLOADS_EXPIRE || !inputs_ok(op))
        return SPY_EINVAL;
    op->status = SPY_OK;
    if (op->kind == SPY_META_MANIFEST_PUT && extract(op) != SPY_OK) {
        meta_op_free_ext(op);
        spy_error("meta: out of memory preparing a manifest put");
        return SPY_ENOMEM;
    }
    return SPY_OK;
}

/* ---- result objects ---- */

static void free_obj(struct spy_meta_obj *obj)
{
    free(obj);
}

struct spy_meta_blob *meta_blob_new(const char *digest, uint64_t size, size_t npieces)
{
    size_t dlen = strlen(digest) + 1;
    size_t bytes = sizeof(struct spy_meta_blob) + npieces * sizeof(struct spy_meta_piece) + dlen;
    struct spy_meta_blob *b = calloc(1, bytes);
    if (b == NULL)
        return NULL;
    spy_meta_obj_init(&b->_obj, bytes, free_obj);
    struct spy_meta_piece *pieces = (struct spy_meta_piece *)(b + 1);
    char *d = (char *)(pieces + npieces);
    memcpy(d, digest, dlen);
    b->digest = d;
    b->size = size;
    b->npieces = npieces;
    b->pieces = pieces;
    return b;
}

/* put_text: copies s (or nothing for NULL) at *at, advancing it. */
static const char *put_text(char **at, const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *dst = memcpy(*at, s, n);
    *at += n;
    return dst;
}

struct spy_meta_manifest *meta_manifest_new(const char *digest, const char *media_type,
                                            const char *artifact_type, const char *subject,
                                            const void *body, size_t len)
{
    size_t bytes = sizeof(struct spy_meta_manifest) + len + strlen(digest) + 1 +
                   strlen(media_type) + 1 + (artifact_type ? strlen(artifact_type) + 1 : 0) +
                   (subject ? strlen(subject) + 1 : 0);
    struct spy_meta_manifest *m = malloc(bytes);
    if (m == NULL)
        return NULL;
    memset(m, 0, sizeof(*m));
    spy_meta_obj_init(&m->_obj, bytes, free_obj);
    char *at = (char *)(m + 1);
    memcpy(at, body, len);
    m->body = (const uint8_t *)at;
    m->size = len;
    at += len;
    m->digest = put_text(&at, digest);
    m->media_type = put_text(&at, media_type);
    m->artifact_type = put_text(&at, artifact_type);
    m->subject = put_text(&at, subject);
    return m;
}

struct meta_text_obj *meta_text_new(const char *text)
{
    size_t n = strlen(text) + 1;
    struct meta_text_obj *t = malloc(sizeof(*t) + n);
    if (t == NULL)
        return NULL;
    spy_meta_obj_init(&t->obj, sizeof(*t) + n, free_obj);
    memcpy(t->text, text, n);
    return t;
}

struct meta_id_obj *meta_id_new(uint64_t id)
{
    struct meta_id_obj *o = malloc(sizeof(*o));
    if (o == NULL)
        return NULL;
    spy_meta_obj_init(&o->obj, sizeof(*o), free_obj);
    o->id = id;
    return o;
}

void spy_meta_blob_release(const struct spy_meta_blob *blob)
{
    if (blob != NULL)
        spy_meta_obj_drop((struct spy_meta_obj *)&blob->_obj);
}

void spy_meta_manifest_release(const struct spy_meta_manifest *manifest)
{
    if (manifest != NULL)
        spy_meta_obj_drop((struct spy_meta_obj *)&manifest->_obj);
}

/* ---- cache ---- */

size_t meta_key(char *buf, char kind, const char *repo, const char *item)
{
    int n = snprintf(buf, META_KEY_MAX, "%c:%s%s%s", kind, repo != NULL ? repo : "",
                     repo != NULL && item != NULL ? " " : "", item != NULL ? item : "");
    return n < 0 ? 0 : (size_t)n < META_KEY_MAX ? (size_t)n : META_KEY_MAX - 1;
}

uint64_t meta_cache_epoch(struct spy_meta *m)
{
    return m->cache != NULL ? spy_meta_cache_epoch(m->cache) : 0;
}

void meta_cache_put(struct spy_meta *m, const char *key, size_t klen, struct spy_meta_obj *obj,
                    uint32_t ttl_ms, uint64_t epoch)
{
    if (m->cache != NULL)
        spy_meta_cache_put(m->cache, key, klen, obj, ttl_ms, epoch);
}

void meta_cache_forget(struct spy_meta *m, const char *key, size_t klen)
{
    if (m->cache != NULL)
        spy_meta_cache_invalidate(m->cache, key, klen);
}

void spy_meta_forget_blob(struct spy_meta *m, const char *digest)
{
    char key[META_KEY_MAX];
    meta_cache_forget(m, key, meta_key(key, 'b', NULL, digest));
}

/* cached_blob: a blob, and its link to repo when repo is set. */
static bool cached_blob(struct spy_meta *m, struct spy_meta_op *op)
{
    char key[META_KEY_MAX];
    struct spy_meta_obj *obj = NULL;
    if (!spy_meta_cache_get(m->cache, key, meta_key(key, 'b', NULL, op->in.digest), &obj))
        return false;
    if (obj == NULL || (op->in.repo != NULL &&
                        !spy_meta_cache_get(
                            m->cache, key, meta_key(key, 'l', op->in.repo, op->in.digest), NULL))) {
        spy_meta_obj_drop(obj);
        return false;
    }
    op->out.blob = (struct spy_meta_blob *)obj;
    return true;
}

/* cached_manifest: by digest, or by tag through the short-lived tag entry. */
static bool cached_manifest(struct spy_meta *m, struct spy_meta_op *op)
{
    char key[META_KEY_MAX];
    struct spy_meta_obj *obj = NULL;
    const char *digest = op->in.digest;
    if (digest == NULL) {
        if (!spy_meta_cache_get(m->cache, key, meta_key(key, 't', op->in.repo, op->in.tag), &obj) ||
            obj == NULL)
            return false;
        meta_key(key, 'm', op->in.repo, ((struct meta_text_obj *)obj)->text);
        spy_meta_obj_drop(obj);
    } else {
        meta_key(key, 'm', op->in.repo, digest);
    }
    obj = NULL;
    if (!spy_meta_cache_get(m->cache, key, strlen(key), &obj) || obj == NULL)
        return false;
    op->out.manifest = (struct spy_meta_manifest *)obj;
    return true;
}

bool spy_meta_try_cached(struct spy_meta *m, struct spy_meta_op *op)
{
    if (m->cache == NULL || (op->kind != SPY_META_BLOB_STAT && op->kind != SPY_META_MANIFEST_GET) ||
        !inputs_ok(op))
        return false;
    bool hit = op->kind == SPY_META_BLOB_STAT ? cached_blob(m, op) : cached_manifest(m, op);
    if (hit)
        op->status = SPY_OK;
    META_COUNT(m, cache_hits, hit ? 1 : 0);
    META_COUNT(m, cache_misses, hit ? 0 : 1);
    return hit;
}

/* ---- flags ---- */

void spy_meta_flags_table(struct spy_meta_flags *v, struct spy_flag out[SPY_META_NFLAGS])
{
    memset(v, 0, sizeof(*v));
    const struct spy_flag flags[SPY_META_NFLAGS] = {
        {"db", SPY_FLAG_STRING, &v->database, "metadb", 0, 0, 0, "meta database"},
        {"dh", SPY_FLAG_STRING, &v->host, "127.0.0.1", 0, 0, 0, "metadb ip"},
        {"dp", SPY_FLAG_INT, &v->port, "3306", 1, 65535, 0, "metadb port"},
        {"u", SPY_FLAG_STRING, &v->user, "root", 0, 0, 0, "metadb user"},
        {"pw", SPY_FLAG_STRING, &v->password, "", 0, 0, 0, "metadb password"},
        {"meta_workers", SPY_FLAG_INT, &v->workers, "8", 1, 1024, 0,
         "metadata worker threads (one MySQL connection each)"},
        {"meta_queue", SPY_FLAG_INT, &v->queue, "1024", 1, 1000000, 0,
         "metadata requests queued before answering 503"},
        {"meta_cache", SPY_FLAG_SIZE, &v->cache_bytes, "64M", 0, 0, 0,
         "memory for cached blob/manifest metadata (0 = none)"},
    };
    memcpy(out, flags, sizeof(flags));
}

void spy_meta_flags_apply(const struct spy_meta_flags *v, struct spy_meta_config *cfg)
{
    cfg->database = v->database;
    cfg->host = v->host;
    cfg->port = (int)v->port;
    cfg->user = v->user;
    cfg->password = v->password;
    cfg->workers = (unsigned)v->workers;
    cfg->queue_max = (unsigned)v->queue;
    cfg->cache_bytes = v->cache_bytes;
}
