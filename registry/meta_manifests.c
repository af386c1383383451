/* meta_manifests.c - executors for manifests, tags, the tag list, the
 * catalog and referrers. Each runs on a worker's connection; see
 * docs/metadata.md for the transactions and the cache rules. */
#include "registry/meta_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "common/status.h"

#define MANIFEST_COLUMNS "m.digest, m.media_type, m.artifact_type, m.subject_digest, m.body"

/* ---- put ---- */

/* manifest_exists: with a shared lock, so a concurrent delete waits for us. */
static int manifest_exists(struct meta_ctx *x, uint64_t repo_id, const char *digest, bool *found)
{
    uint64_t one;
    meta_sql_addf(x->q,
                  "SELECT 1 FROM manifests WHERE repo_id = %" PRIu64 " AND digest = ", repo_id);
    meta_sql_str(x->q, digest);
    meta_sql_add(x->q, " LOCK IN SHARE MODE");
    return meta_select_u64(x->conn, x->q, &one, found);
}

/* mark_present: looks up the refs of one kind among those MySQL has, locking
 * them in share mode until commit so no unlink or delete slips in between
 * the check and the insert of the references. */
static int mark_present(struct meta_ctx *x, uint64_t repo_id, struct meta_put_ext *ext,
                        uint8_t kind, bool *present)
{
    size_t asked = 0;
    meta_sql_addf(x->q, "SELECT digest FROM %s WHERE repo_id = %" PRIu64 " AND digest IN (",
                  kind == META_REF_BLOB ? "repo_blobs" : "manifests", repo_id);
    for (size_t i = 0; i < ext->nrefs; i++) {
        if (ext->refs[i].kind != kind || !ext->refs[i].checkable)
            continue;
        meta_sql_add(x->q, asked++ > 0 ? "," : "");
        meta_sql_str(x->q, ext->refs[i].digest);
    }
    meta_sql_add(x->q, ") LOCK IN SHARE MODE");
    if (asked == 0) {
        meta_sql_reset(x->q);
        return SPY_OK;
    }
    MYSQL_RES *res;
    int rc = meta_select(x->conn, x->q, &res);
    if (rc != SPY_OK)
        return rc;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL) {
        struct meta_ref key = {.kind = kind};
        snprintf(key.digest, sizeof(key.digest), "%s", row[0] != NULL ? row[0] : "");
        struct meta_ref *hit = bsearch(&key, ext->refs, ext->nrefs, sizeof(key), meta_ref_cmp);
        if (hit != NULL)
            present[hit - ext->refs] = true;
    }
    mysql_free_result(res);
    return SPY_OK;
}

/* find_missing: fills out->missing with every reference not present. */
static int find_missing(struct meta_ctx *x, uint64_t repo_id, struct meta_put_ext *ext,
                        struct spy_meta_out *out)
{
    bool *present = calloc(ext->nrefs > 0 ? ext->nrefs : 1, sizeof(*present));
    if (present == NULL)
        return SPY_ENOMEM;
    int rc = mark_present(x, repo_id, ext, META_REF_BLOB, present);
    if (rc == SPY_OK)
        rc = mark_present(x, repo_id, ext, META_REF_MANIFEST, present);
    size_t n = 0;
    for (size_t i = 0; rc == SPY_OK && i < ext->nrefs; i++)
        n += !present[i];
    if (rc == SPY_OK && n > 0 && (out->missing = calloc(n, sizeof(char *))) == NULL)
        rc = SPY_ENOMEM;
    for (size_t i = 0; rc == SPY_OK && i < ext->nrefs; i++)
        if (!present[i] && !meta_strdup(ext->refs[i].digest, &out->missing[out->nmissing++]))
            rc = SPY_ENOMEM;
    free(present);
    return rc;
}

/* insert_manifest: the row with its bytes inline; *created says whether it
 * was new (0 rows affected: a concurrent put of the same digest won). */
static int insert_manifest(struct meta_ctx *x, uint64_t repo_id, const struct spy_meta_op *op,
                           bool *created)
{
    const struct meta_put_ext *ext = op->_p.ext;
    const struct spy_oci_manifest *m = op->in.manifest;
    meta_sql_addf(x->q,
                  "INSERT INTO manifests (repo_id, digest, media_type, size, artifact_type,"
                  " subject_digest, annotations, body) VALUES (%" PRIu64 ", ",
                  repo_id);
    meta_sql_str(x->q, op->in.digest);
    meta_sql_add(x->q, ", ");
    meta_sql_str(x->q, m->media_type);
    meta_sql_addf(x->q, ", %zu, ", op->in.body_len);
    if (m->artifact_type != NULL)
        meta_sql_str(x->q, m->artifact_type);
    else
        meta_sql_add(x->q, "NULL");
    meta_sql_add(x->q, ", ");
    if (ext->subject[0] != '\0')
        meta_sql_str(x->q, ext->subject);
    else
        meta_sql_add(x->q, "NULL");
    meta_sql_add(x->q, ", ");
    if (ext->annotations != NULL)
        meta_sql_str(x->q, ext->annotations);
    else
        meta_sql_add(x->q, "NULL");
    meta_sql_add(x->q, ", ");
    meta_sql_bin(x->q, op->in.body, op->in.body_len);
    meta_sql_add(x->q, ") ON DUPLICATE KEY UPDATE repo_id = repo_id");
    int rc = meta_exec(x->conn, x->q);
    *created = rc == SPY_OK && meta_affected(x->conn) == 1;
    return rc;
}

/* insert_refs: manifest -> blobs and children, for the garbage collector. */
static int insert_refs(struct meta_ctx *x, uint64_t repo_id, const char *digest,
                       const struct meta_put_ext *ext)
{
    for (size_t start = 0; start < ext->nrefs; start += META_BATCH_ROWS) {
        size_t end = ext->nrefs - start > META_BATCH_ROWS ? start + META_BATCH_ROWS : ext->nrefs;
        meta_sql_add(x->q, "INSERT INTO manifest_refs (repo_id, manifest_digest, ref_digest, kind)"
                           " VALUES ");
        for (size_t i = start; i < end; i++) {
            meta_sql_addf(x->q, "%s(%" PRIu64 ", ", i > start ? "," : "", repo_id);
            meta_sql_str(x->q, digest);
            meta_sql_add(x->q, ", ");
            meta_sql_str(x->q, ext->refs[i].digest);
            meta_sql_addf(x->q, ", %u)", ext->refs[i].kind);
        }
        meta_sql_add(x->q, " ON DUPLICATE KEY UPDATE kind = kind");
        int rc = meta_exec(x->conn, x->q);
        if (rc != SPY_OK)
            return rc;
    }
    return SPY_OK;
}

/* upsert_tags: every tag of the put points at digest (one statement). */
static int upsert_tags(struct meta_ctx *x, uint64_t repo_id, const struct spy_meta_op *op)
{
    if (op->in.ntags == 0)
        return SPY_OK;
    meta_sql_add(x->q, "INSERT INTO tags (repo_id, name, manifest_digest) VALUES ");
    for (size_t i = 0; i < op->in.ntags; i++) {
        meta_sql_addf(x->q, "%s(%" PRIu64 ", ", i > 0 ? "," : "", repo_id);
        meta_sql_str(x->q, op->in.tags[i]);
        meta_sql_add(x->q, ", ");
        meta_sql_str(x->q, op->in.digest);
        meta_sql_add(x->q, ")");
    }
    meta_sql_add(x->q, " ON DUPLICATE KEY UPDATE manifest_digest = VALUES(manifest_digest),"
                       " updated = CURRENT_TIMESTAMP(6)");
    return meta_exec(x->conn, x->q);
}

/* cache_after_put: the new manifest, then the tags: the old tag entries are
 * invalidated (refusing racing readers' puts) and the new ones stored. */
static void cache_after_put(struct meta_ctx *x, const struct spy_meta_op *op, uint64_t epoch)
{
    struct spy_meta *m = x->m;
    if (m->cache == NULL)
        return;
    const struct meta_put_ext *ext = op->_p.ext;
    char key[META_KEY_MAX];
    struct spy_meta_manifest *mf = meta_manifest_new(
        op->in.digest, op->in.manifest->media_type, op->in.manifest->artifact_type,
        ext->subject[0] != '\0' ? ext->subject : NULL, op->in.body, op->in.body_len);
    if (mf != NULL) {
        meta_cache_put(m, key, meta_key(key, 'm', op->in.repo, op->in.digest), &mf->_obj,
                       m->cfg.cache_ttl_ms, epoch);
        spy_meta_manifest_release(mf);
    }
    for (size_t i = 0; i < op->in.ntags; i++)
        meta_cache_forget(m, key, meta_key(key, 't', op->in.repo, op->in.tags[i]));
    struct meta_text_obj *t = meta_text_new(op->in.digest);
    uint64_t now_epoch = meta_cache_epoch(m);
    for (size_t i = 0; t != NULL && i < op->in.ntags; i++)
        meta_cache_put(m, key, meta_key(key, 't', op->in.repo, op->in.tags[i]), &t->obj,
                       m->cfg.tag_ttl_ms, now_epoch);
    if (t != NULL)
        spy_meta_obj_drop(&t->obj);
}

/* meta_exec_manifest_put: see meta.h; a manifest already stored skips the
 * reference checks (it was checked when first stored) and only moves tags. */
int meta_exec_manifest_put(struct meta_ctx *x, struct spy_meta_op *op)
{
    struct meta_put_ext *ext = op->_p.ext;
    uint64_t epoch = meta_cache_epoch(x->m), repo_id;
    bool exists = false;
    int rc = meta_repo_id(x, op->in.repo, true, &repo_id);
    if (rc == SPY_OK)
        rc = meta_begin(x->conn);
    if (rc == SPY_OK)
        rc = manifest_exists(x, repo_id, op->in.digest, &exists);
    if (rc == SPY_OK && !exists) {
        rc = find_missing(x, repo_id, ext, &op->out);
        if (rc == SPY_OK && op->out.nmissing > 0)
            return SPY_ENOTFOUND;
        if (rc == SPY_OK)
            rc = insert_manifest(x, repo_id, op, &op->out.created);
        if (rc == SPY_OK && op->out.created)
            rc = insert_refs(x, repo_id, op->in.digest, ext);
    }
    if (rc == SPY_OK)
        rc = upsert_tags(x, repo_id, op);
    if (rc == SPY_OK)
        rc = meta_commit(x->conn);
    if (rc == SPY_OK)
        cache_after_put(x, op, epoch);
    return rc;
}

/* ---- get ---- */

/* read_manifest: the object from a MANIFEST_COLUMNS row. */
static int read_manifest(MYSQL_RES *res, struct spy_meta_manifest **out)
{
    MYSQL_ROW row = mysql_fetch_row(res);
    if (row == NULL)
        return SPY_ENOTFOUND;
    unsigned long *len = mysql_fetch_lengths(res);
    if (row[0] == NULL || row[1] == NULL || row[4] == NULL) {
        spy_error("meta: a manifest row has NULL columns");
        return SPY_ECORRUPT;
    }
    *out = meta_manifest_new(row[0], row[1], row[2], row[3], row[4], len[4]);
    return *out != NULL ? SPY_OK : SPY_ENOMEM;
}

/* meta_exec_manifest_get: one round trip, by digest or through the tag. */
int meta_exec_manifest_get(struct meta_ctx *x, struct spy_meta_op *op)
{
    uint64_t epoch = meta_cache_epoch(x->m);
    if (op->in.digest != NULL) {
        meta_sql_add(x->q, "SELECT " MANIFEST_COLUMNS " FROM manifests m JOIN repositories r"
                           " ON r.id = m.repo_id WHERE m.digest = ");
        meta_sql_str(x->q, op->in.digest);
    } else {
        meta_sql_add(x->q, "SELECT " MANIFEST_COLUMNS " FROM tags t JOIN repositories r"
                           " ON r.id = t.repo_id JOIN manifests m ON m.repo_id = t.repo_id"
                           " AND m.digest = t.manifest_digest WHERE t.name = ");
        meta_sql_str(x->q, op->in.tag);
    }
    meta_sql_add(x->q, " AND r.name = ");
    meta_sql_str(x->q, op->in.repo);
    MYSQL_RES *res;
    int rc = meta_select(x->conn, x->q, &res);
    if (rc != SPY_OK)
        return rc;
    rc = read_manifest(res, &op->out.manifest);
    mysql_free_result(res);
    if (rc != SPY_OK)
        return rc;
    char key[META_KEY_MAX];
    const char *digest = op->out.manifest->digest;
    meta_cache_put(x->m, key, meta_key(key, 'm', op->in.repo, digest), &op->out.manifest->_obj,
                   x->m->cfg.cache_ttl_ms, epoch);
    struct meta_text_obj *t = op->in.tag != NULL ? meta_text_new(digest) : NULL;
    if (t != NULL) {
        meta_cache_put(x->m, key, meta_key(key, 't', op->in.repo, op->in.tag), &t->obj,
                       x->m->cfg.tag_ttl_ms, epoch);
        spy_meta_obj_drop(&t->obj);
    }
    return SPY_OK;
}

/* ---- delete ---- */

/* tags_of: the names of the tags pointing at digest, locked for the delete. */
static int tags_of(struct meta_ctx *x, uint64_t repo_id, const char *digest, char ***names,
                   size_t *n)
{
    MYSQL_RES *res;
    meta_sql_addf(
        x->q, "SELECT name FROM tags WHERE repo_id = %" PRIu64 " AND manifest_digest = ", repo_id);
    meta_sql_str(x->q, digest);
    meta_sql_add(x->q, " FOR UPDATE");
    int rc = meta_select(x->conn, x->q, &res);
    if (rc != SPY_OK)
        return rc;
    *n = 0;
    *names = calloc(mysql_num_rows(res) + 1, sizeof(char *));
    MYSQL_ROW row;
    while (*names != NULL && (row = mysql_fetch_row(res)) != NULL)
        if (row[0] != NULL && meta_strdup(row[0], &(*names)[*n]))
            (*n)++;
    mysql_free_result(res);
    return *names != NULL ? SPY_OK : SPY_ENOMEM;
}

/* delete_rows: "DELETE FROM <table> WHERE repo_id = <id> AND <col> = 'v'";
 * *deleted gets the row count. */
static int delete_rows(struct meta_ctx *x, const char *table, uint64_t repo_id, const char *col,
                       const char *value, uint64_t *deleted)
{
    meta_sql_addf(x->q, "DELETE FROM %s WHERE repo_id = %" PRIu64 " AND %s = ", table, repo_id,
                  col);
    meta_sql_str(x->q, value);
    int rc = meta_exec(x->conn, x->q);
    if (deleted != NULL)
        *deleted = rc == SPY_OK ? meta_affected(x->conn) : 0;
    return rc;
}

/* delete_by_digest: the manifest, its references and its tags, in one
 * transaction; then the cache entries of all of them. */
static int delete_by_digest(struct meta_ctx *x, uint64_t repo_id, const struct spy_meta_op *op)
{
    char **tags = NULL;
    size_t ntags = 0;
    uint64_t deleted = 0;
    int rc = meta_begin(x->conn);
    if (rc == SPY_OK)
        rc = tags_of(x, repo_id, op->in.digest, &tags, &ntags);
    if (rc == SPY_OK)
        rc = delete_rows(x, "manifests", repo_id, "digest", op->in.digest, &deleted);
    if (rc == SPY_OK && deleted == 0)
        rc = SPY_ENOTFOUND;
    if (rc == SPY_OK)
        rc = delete_rows(x, "tags", repo_id, "manifest_digest", op->in.digest, NULL);
    if (rc == SPY_OK)
        rc = delete_rows(x, "manifest_refs", repo_id, "manifest_digest", op->in.digest, NULL);
    if (rc == SPY_OK)
        rc = meta_commit(x->conn);
    char key[META_KEY_MAX];
    if (rc == SPY_OK) {
        meta_cache_forget(x->m, key, meta_key(key, 'm', op->in.repo, op->in.digest));
        for (size_t i = 0; i < ntags; i++)
            meta_cache_forget(x->m, key, meta_key(key, 't', op->in.repo, tags[i]));
    }
    for (size_t i = 0; i < ntags; i++)
        free(tags[i]);
    free(tags);
    return rc;
}

/* meta_exec_manifest_delete: by digest (everything) or by tag (the tag). */
int meta_exec_manifest_delete(struct meta_ctx *x, struct spy_meta_op *op)
{
    uint64_t repo_id, deleted = 0;
    int rc = meta_repo_id(x, op->in.repo, false, &repo_id);
    if (rc != SPY_OK)
        return rc;
    if (op->in.digest != NULL)
        return delete_by_digest(x, repo_id, op);
    rc = delete_rows(x, "tags", repo_id, "name", op->in.tag, &deleted);
    char key[META_KEY_MAX];
    if (rc == SPY_OK)
        meta_cache_forget(x->m, key, meta_key(key, 't', op->in.repo, op->in.tag));
    return rc == SPY_OK && deleted == 0 ? SPY_ENOTFOUND : rc;
}

/* ---- lists ---- */

/* add_cursor: " AND <col> > '<cursor>'" for a page after 'last'. Stored
 * names are printable ASCII without '~' or space (the grammars), so a cursor
 * with other bytes is replaced by one that selects exactly the same names
 * under any collation: cut before the first byte below '!' (every name with
 * that prefix sorts after it), or replace a byte above '~' by '~' (every name
 * with that prefix sorts before it). */
static void add_cursor(struct meta_sql *q, const char *col, const char *last)
{
    if (last == NULL)
        return;
    char cursor[SPY_OCI_NAME_MAX + 2];
    size_t i = 0;
    for (; last[i] != '\0' && i < SPY_OCI_NAME_MAX; i++) {
        unsigned char ch = (unsigned char)last[i];
        if (ch < '!')
            break;
        cursor[i] = ch > '~' ? '~' : (char)ch;
        if (ch > '~') {
            i++;
            break;
        }
    }
    cursor[i] = '\0';
    meta_sql_addf(q, " AND %s > ", col);
    meta_sql_str(q, cursor);
}

/* read_names: up to n names into out->names; out->more if an (n+1)th came. */
static int read_names(MYSQL_RES *res, uint32_t n, struct spy_meta_out *out)
{
    uint64_t rows = mysql_num_rows(res);
    out->more = rows > n;
    size_t want = rows > n ? n : (size_t)rows;
    out->names = calloc(want + 1, sizeof(char *));
    if (out->names == NULL)
        return SPY_ENOMEM;
    MYSQL_ROW row;
    while (out->count < want && (row = mysql_fetch_row(res)) != NULL)
        if (!meta_strdup(row[0] != NULL ? row[0] : "", &out->names[out->count++]))
            return SPY_ENOMEM;
    return SPY_OK;
}

/* page: runs a prepared "... WHERE ..." of names with cursor, order and
 * LIMIT n + 1 (one more, to know if a next page exists). */
static int page(struct meta_ctx *x, const char *col, const struct spy_meta_op *op,
                struct spy_meta_out *out)
{
    add_cursor(x->q, col, op->in.last);
    meta_sql_addf(x->q, " ORDER BY %s LIMIT %" PRIu64, col, (uint64_t)op->in.n + 1);
    MYSQL_RES *res;
    int rc = meta_select(x->conn, x->q, &res);
    if (rc != SPY_OK)
        return rc;
    rc = read_names(res, op->in.n, out);
    mysql_free_result(res);
    return rc;
}

/* meta_exec_tag_list: NAME_UNKNOWN first, then one page. */
int meta_exec_tag_list(struct meta_ctx *x, struct spy_meta_op *op)
{
    uint64_t repo_id;
    int rc = meta_repo_id(x, op->in.repo, false, &repo_id);
    if (rc != SPY_OK || op->in.n == 0)
        return rc;
    meta_sql_addf(x->q, "SELECT name FROM tags WHERE repo_id = %" PRIu64, repo_id);
    return page(x, "name", op, &op->out);
}

/* meta_exec_catalog: one page of repository names. */
int meta_exec_catalog(struct meta_ctx *x, struct spy_meta_op *op)
{
    if (op->in.n == 0)
        return SPY_OK;
    meta_sql_add(x->q, "SELECT name FROM repositories WHERE 1 = 1");
    return page(x, "name", op, &op->out);
}

/* read_referrer: one entry; the annotations JSON (stored by us) is parsed
 * back; unreadable annotations are dropped with a warning. */
static int read_referrer(MYSQL_ROW row, struct spy_oci_referrer *r)
{
    char *digest = NULL, *media_type = NULL, *artifact_type = NULL;
    if (!meta_strdup(row[0], &digest) || !meta_strdup(row[1], &media_type) ||
        !meta_strdup(row[3], &artifact_type)) {
        free(digest);
        free(media_type);
        return SPY_ENOMEM;
    }
    r->digest = digest;
    r->media_type = media_type;
    r->artifact_type = artifact_type;
    r->size = (int64_t)meta_col_u64(row[2]);
    r->annotations = NULL;
    if (row[4] != NULL) {
        json_error_t err;
        r->annotations = json_loads(row[4], JSON_REJECT_DUPLICATES, &err);
        if (r->annotations == NULL)
            spy_warn("meta: unreadable annotations of %s: %s", digest, err.text);
    }
    return SPY_OK;
}

/* meta_exec_referrers: the manifests whose subject is the digest. */
int meta_exec_referrers(struct meta_ctx *x, struct spy_meta_op *op)
{
    meta_sql_add(x->q, "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations"
                       " FROM manifests m JOIN repositories r ON r.id = m.repo_id WHERE r.name = ");
    meta_sql_str(x->q, op->in.repo);
    meta_sql_add(x->q, " AND m.subject_digest = ");
    meta_sql_str(x->q, op->in.digest);
    if (op->in.artifact_type != NULL && op->in.artifact_type[0] != '\0') {
        meta_sql_add(x->q, " AND m.artifact_type = ");
        meta_sql_str(x->q, op->in.artifact_type);
    }
    meta_sql_addf(x->q, " ORDER BY m.digest LIMIT %d", SPY_META_REFERRERS_MAX + 1);
    MYSQL_RES *res;
    int rc = meta_select(x->conn, x->q, &res);
    if (rc != SPY_OK)
        return rc;
    uint64_t rows = mysql_num_rows(res);
    op->out.more = rows > SPY_META_REFERRERS_MAX;
    size_t want = op->out.more ? SPY_META_REFERRERS_MAX : (size_t)rows;
    op->out.referrers = calloc(want + 1, sizeof(*op->out.referrers));
    rc = op->out.referrers != NULL ? SPY_OK : SPY_ENOMEM;
    MYSQL_ROW row;
    while (rc == SPY_OK && op->out.count < want && (row = mysql_fetch_row(res)) != NULL)
        if ((rc = read_referrer(row, &op->out.referrers[op->out.count])) == SPY_OK)
            op->out.count++;
    mysql_free_result(res);
    return rc;
}
