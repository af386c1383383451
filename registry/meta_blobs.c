/* meta_blobs.c - executors for repositories, blobs, repository links and
 * orphans, and the piece helpers the upload executors share. Each runs on a
 * worker's connection; see docs/metadata.md for the transactions. */
#include "registry/meta_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/status.h"

#define PIECE_COLUMNS   "blob_offset, length, group_id, fid, crc32c"
#define PIECE_COLUMNS_P "p.blob_offset, p.length, p.group_id, p.fid, p.crc32c"

/* ---- repositories ---- */

/* meta_repo_id: the id of repository 'name' (cached: repositories are never
 * deleted, so the mapping cannot go stale). With create, a missing one is
 * inserted (autocommit, or inside the caller's transaction). */
int meta_repo_id(struct meta_ctx *x, const char *name, bool create, uint64_t *id)
{
    char key[META_KEY_MAX];
    size_t klen = meta_key(key, 'r', name, NULL);
    struct spy_meta_obj *obj = NULL;
    if (x->m->cache != NULL && spy_meta_cache_get(x->m->cache, key, klen, &obj) && obj != NULL) {
        *id = ((struct meta_id_obj *)obj)->id;
        spy_meta_obj_drop(obj);
        return SPY_OK;
    }
    uint64_t epoch = meta_cache_epoch(x->m);
    bool found = false;
    meta_sql_add(x->q, "SELECT id FROM repositories WHERE name = ");
    meta_sql_str(x->q, name);
    int rc = meta_select_u64(x->conn, x->q, id, &found);
    if (rc == SPY_OK && !found && !create)
        return SPY_ENOTFOUND;
    if (rc == SPY_OK && !found) {
        meta_sql_add(x->q, "INSERT INTO repositories (name) VALUES (");
        meta_sql_str(x->q, name);
        meta_sql_add(x->q, ") ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)");
        rc = meta_exec(x->conn, x->q);
        *id = meta_insert_id(x->conn);
    }
    if (rc != SPY_OK)
        return rc;
    struct meta_id_obj *o = meta_id_new(*id);
    if (o != NULL) {
        meta_cache_put(x->m, key, klen, &o->obj, x->m->cfg.cache_ttl_ms, epoch);
        spy_meta_obj_drop(&o->obj);
    }
    return SPY_OK;
}

int meta_exec_repo_ensure(struct meta_ctx *x, struct spy_meta_op *op)
{
    uint64_t id;
    return meta_repo_id(x, op->in.repo, true, &id);
}

/* ---- pieces and orphans ---- */

int meta_insert_pieces(struct meta_ctx *x, const char *table, const char *key_col, const char *key,
                       const struct spy_meta_piece *p, size_t n, uint64_t first_idx)
{
    for (size_t start = 0; start < n; start += META_BATCH_ROWS) {
        size_t end = n - start > META_BATCH_ROWS ? start + META_BATCH_ROWS : n;
        meta_sql_addf(x->q, "INSERT INTO %s (%s, idx, " PIECE_COLUMNS ") VALUES ", table, key_col);
        for (size_t i = start; i < end; i++) {
            meta_sql_add(x->q, i > start ? ",(" : "(");
            meta_sql_str(x->q, key);
            meta_sql_addf(
                x->q, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu32 ",%" PRIu64 ",%" PRIu32 ")",
                first_idx + i, p[i].offset, p[i].length, p[i].group_id, p[i].fid, p[i].crc32c);
        }
        int rc = meta_exec(x->conn, x->q);
        if (rc != SPY_OK)
            return rc;
    }
    return SPY_OK;
}

int meta_orphans_insert(struct meta_ctx *x, const struct spy_meta_piece *p, size_t n,
                        const char *reason)
{
    for (size_t start = 0; start < n; start += META_BATCH_ROWS) {
        size_t end = n - start > META_BATCH_ROWS ? start + META_BATCH_ROWS : n;
        meta_sql_add(x->q, "INSERT INTO orphans (group_id, fid, reason) VALUES ");
        for (size_t i = start; i < end; i++) {
            meta_sql_addf(x->q, "%s(%" PRIu32 ",%" PRIu64 ",", i > start ? "," : "", p[i].group_id,
                          p[i].fid);
            meta_sql_str(x->q, reason);
            meta_sql_add(x->q, ")");
        }
        int rc = meta_exec(x->conn, x->q);
        if (rc != SPY_OK)
            return rc;
    }
    return SPY_OK;
}

/* A (group, fid) pair, sortable. */
struct fid_key {
    uint32_t group_id;
    uint64_t fid;
};

/* fid_key_cmp: orders by group, then fid (qsort, bsearch). */
static int fid_key_cmp(const void *a, const void *b)
{
    const struct fid_key *x = a, *y = b;
    if (x->group_id != y->group_id)
        return x->group_id < y->group_id ? -1 : 1;
    return x->fid < y->fid ? -1 : x->fid > y->fid;
}

/* blob_fids: the sorted (group, fid) pairs of a stored blob. */
static int blob_fids(struct meta_ctx *x, const char *digest, struct fid_key **out, size_t *n)
{
    MYSQL_RES *res;
    meta_sql_add(x->q, "SELECT group_id, fid FROM blob_pieces WHERE digest = ");
    meta_sql_str(x->q, digest);
    int rc = meta_select(x->conn, x->q, &res);
    if (rc != SPY_OK)
        return rc;
    *n = mysql_num_rows(res);
    *out = calloc(*n > 0 ? *n : 1, sizeof(**out));
    if (*out == NULL) {
        mysql_free_result(res);
        return SPY_ENOMEM;
    }
    MYSQL_ROW row;
    for (size_t i = 0; (row = mysql_fetch_row(res)) != NULL && i < *n; i++)
        (*out)[i] = (struct fid_key){(uint32_t)meta_col_u64(row[0]), meta_col_u64(row[1])};
    mysql_free_result(res);
    qsort(*out, *n, sizeof(**out), fid_key_cmp);
    return SPY_OK;
}

/* meta_orphans_unless_in_blob: a re-run of a commit that did succeed finds
 * its own pieces in the blob; only the others are garbage. */
int meta_orphans_unless_in_blob(struct meta_ctx *x, const char *digest,
                                const struct spy_meta_piece *p, size_t n, const char *reason,
                                size_t *orphaned)
{
    if (n == 0)
        return SPY_OK;
    struct fid_key *have = NULL;
    size_t nhave = 0;
    int rc = blob_fids(x, digest, &have, &nhave);
    struct spy_meta_piece *lost = rc == SPY_OK ? calloc(n, sizeof(*lost)) : NULL;
    if (rc == SPY_OK && lost == NULL)
        rc = SPY_ENOMEM;
    size_t nlost = 0;
    for (size_t i = 0; rc == SPY_OK && i < n; i++) {
        struct fid_key k = {p[i].group_id, p[i].fid};
        if (bsearch(&k, have, nhave, sizeof(k), fid_key_cmp) == NULL)
            lost[nlost++] = p[i];
    }
    if (rc == SPY_OK && nlost > 0)
        rc = meta_orphans_insert(x, lost, nlost, reason);
    if (rc == SPY_OK)
        *orphaned += nlost;
    free(lost);
    free(have);
    return rc;
}

/* meta_exec_orphans_record: autocommitted inserts, batched. */
int meta_exec_orphans_record(struct meta_ctx *x, struct spy_meta_op *op)
{
    int rc = meta_orphans_insert(x, op->in.pieces, op->in.npieces, op->in.reason);
    if (rc == SPY_OK)
        op->out.orphaned = op->in.npieces;
    return rc;
}

/* ---- blobs ---- */

/* read_blob: builds the blob from "size, piece_count, <piece columns>" rows
 * (one row with NULL piece columns for a blob without pieces), checking that
 * the pieces tile the blob. */
static int read_blob(MYSQL_RES *res, const char *digest, struct spy_meta_blob **out)
{
    MYSQL_ROW row = mysql_fetch_row(res);
    if (row == NULL)
        return SPY_ENOTFOUND;
    uint64_t size = meta_col_u64(row[0]), count = meta_col_u64(row[1]);
    uint64_t rows = mysql_num_rows(res);
    if ((count == 0 && rows != 1) || (count > 0 && rows != count) || count > SPY_META_PIECES_MAX) {
        spy_error("meta: blob %s has piece_count %" PRIu64 " but %" PRIu64 " piece rows", digest,
                  count, rows);
        return SPY_ECORRUPT;
    }
    struct spy_meta_blob *b = meta_blob_new(digest, size, count);
    if (b == NULL)
        return SPY_ENOMEM;
    struct spy_meta_piece *p = (struct spy_meta_piece *)b->pieces;
    uint64_t at = 0;
    for (uint64_t i = 0; i < count; i++, row = mysql_fetch_row(res)) {
        p[i] = (struct spy_meta_piece){(uint32_t)meta_col_u64(row[4]), meta_col_u64(row[5]),
                                       meta_col_u64(row[2]), meta_col_u64(row[3]),
                                       (uint32_t)meta_col_u64(row[6])};
        if (p[i].offset != at || p[i].length == 0)
            break;
        at += p[i].length;
    }
    if (at != size) {
        spy_error("meta: the pieces of blob %s do not cover its %" PRIu64 " bytes", digest, size);
        spy_meta_blob_release(b);
        return SPY_ECORRUPT;
    }
    *out = b;
    return SPY_OK;
}

/* meta_exec_blob_stat: one round trip for the blob, its pieces and (with a
 * repository) the link check; the answer is cached. */
int meta_exec_blob_stat(struct meta_ctx *x, struct spy_meta_op *op)
{
    const char *digest = op->in.digest, *repo = op->in.repo;
    uint64_t epoch = meta_cache_epoch(x->m);
    meta_sql_add(x->q, "SELECT b.size, b.piece_count, " PIECE_COLUMNS_P);
    meta_sql_add(x->q, " FROM blobs b LEFT JOIN blob_pieces p ON p.digest = b.digest"
                       " WHERE b.digest = ");
    meta_sql_str(x->q, digest);
    if (repo != NULL) {
        meta_sql_add(x->q, " AND EXISTS (SELECT 1 FROM repo_blobs l JOIN repositories r"
                           " ON r.id = l.repo_id WHERE l.digest = b.digest AND r.name = ");
        meta_sql_str(x->q, repo);
        meta_sql_add(x->q, ")");
    }
    meta_sql_add(x->q, " ORDER BY p.idx");
    MYSQL_RES *res;
    int rc = meta_select(x->conn, x->q, &res);
    if (rc != SPY_OK)
        return rc;
    rc = read_blob(res, digest, &op->out.blob);
    mysql_free_result(res);
    if (rc != SPY_OK)
        return rc;
    char key[META_KEY_MAX];
    meta_cache_put(x->m, key, meta_key(key, 'b', NULL, digest), &op->out.blob->_obj,
                   x->m->cfg.cache_ttl_ms, epoch);
    if (repo != NULL)
        meta_cache_put(x->m, key, meta_key(key, 'l', repo, digest), NULL, x->m->cfg.cache_ttl_ms,
                       epoch);
    return SPY_OK;
}

int meta_link_insert(struct meta_ctx *x, uint64_t repo_id, const char *digest)
{
    meta_sql_addf(x->q, "INSERT INTO repo_blobs (repo_id, digest) VALUES (%" PRIu64 ", ", repo_id);
    meta_sql_str(x->q, digest);
    meta_sql_add(x->q, ") ON DUPLICATE KEY UPDATE repo_id = repo_id");
    return meta_exec(x->conn, x->q);
}

/* meta_blob_size_matches: a digest already stored must have our size; if not,
 * something upstream is badly wrong (logged), and nothing is linked. */
int meta_blob_size_matches(struct meta_ctx *x, const char *digest, uint64_t size)
{
    uint64_t have = 0;
    bool found = false;
    meta_sql_add(x->q, "SELECT size FROM blobs WHERE digest = ");
    meta_sql_str(x->q, digest);
    int rc = meta_select_u64(x->conn, x->q, &have, &found);
    if (rc == SPY_OK && (!found || have != size)) {
        spy_error("meta: blob %s is stored with %" PRIu64 " bytes, a commit says %" PRIu64, digest,
                  have, size);
        rc = SPY_EINVAL;
    }
    return rc;
}

/* meta_exec_blob_commit: the insert of the blob row is the race point: two
 * commits of one digest serialise on its primary key; the second finds the
 * row (0 rows affected), keeps it, and orphans its own pieces. */
int meta_exec_blob_commit(struct meta_ctx *x, struct spy_meta_op *op)
{
    const char *digest = op->in.digest;
    uint64_t epoch = meta_cache_epoch(x->m), repo_id;
    int rc = meta_repo_id(x, op->in.repo, true, &repo_id);
    if (rc == SPY_OK)
        rc = meta_begin(x->conn);
    if (rc != SPY_OK)
        return rc;
    meta_sql_add(x->q, "INSERT INTO blobs (digest, size, piece_count) VALUES (");
    meta_sql_str(x->q, digest);
    meta_sql_addf(x->q, ", %" PRIu64 ", %zu) ON DUPLICATE KEY UPDATE digest = digest", op->in.size,
                  op->in.npieces);
    if ((rc = meta_exec(x->conn, x->q)) != SPY_OK)
        return rc;
    op->out.created = meta_affected(x->conn) == 1;
    if (op->out.created)
        rc = meta_insert_pieces(x, "blob_pieces", "digest", digest, op->in.pieces, op->in.npieces,
                                0);
    else if ((rc = meta_blob_size_matches(x, digest, op->in.size)) == SPY_OK)
        rc = meta_orphans_unless_in_blob(x, digest, op->in.pieces, op->in.npieces, "duplicate blob",
                                         &op->out.orphaned);
    if (rc == SPY_OK)
        rc = meta_link_insert(x, repo_id, digest);
    if (rc == SPY_OK)
        rc = meta_commit(x->conn);
    if (rc != SPY_OK)
        return rc;
    char key[META_KEY_MAX];
    meta_cache_put(x->m, key, meta_key(key, 'l', op->in.repo, digest), NULL, x->m->cfg.cache_ttl_ms,
                   epoch);
    return SPY_OK;
}

/* is_linked: whether digest is linked to the repository. */
static int is_linked(struct meta_ctx *x, uint64_t repo_id, const char *digest, bool *linked)
{
    uint64_t one;
    meta_sql_addf(x->q,
                  "SELECT 1 FROM repo_blobs WHERE repo_id = %" PRIu64 " AND digest = ", repo_id);
    meta_sql_str(x->q, digest);
    return meta_select_u64(x->conn, x->q, &one, linked);
}

/* meta_exec_blob_link: one INSERT ... SELECT that links only if the blob
 * exists (and is linked to 'from'); 0 rows means absent or already linked. */
int meta_exec_blob_link(struct meta_ctx *x, struct spy_meta_op *op)
{
    const char *digest = op->in.digest;
    uint64_t epoch = meta_cache_epoch(x->m), repo_id;
    int rc = meta_repo_id(x, op->in.repo, true, &repo_id);
    if (rc != SPY_OK)
        return rc;
    meta_sql_addf(x->q,
                  "INSERT INTO repo_blobs (repo_id, digest) SELECT %" PRIu64 ", b.digest"
                  " FROM blobs b WHERE b.digest = ",
                  repo_id);
    meta_sql_str(x->q, digest);
    if (op->in.from != NULL) {
        meta_sql_add(x->q, " AND EXISTS (SELECT 1 FROM repo_blobs l JOIN repositories r"
                           " ON r.id = l.repo_id WHERE l.digest = b.digest AND r.name = ");
        meta_sql_str(x->q, op->in.from);
        meta_sql_add(x->q, ")");
    }
    meta_sql_add(x->q, " ON DUPLICATE KEY UPDATE repo_id = VALUES(repo_id)");
    if ((rc = meta_exec(x->conn, x->q)) != SPY_OK)
        return rc;
    bool linked = meta_affected(x->conn) > 0;
    if (!linked && (rc = is_linked(x, repo_id, digest, &linked)) != SPY_OK)
        return rc;
    if (!linked)
        return SPY_ENOTFOUND;
    char key[META_KEY_MAX];
    meta_cache_put(x->m, key, meta_key(key, 'l', op->in.repo, digest), NULL, x->m->cfg.cache_ttl_ms,
                   epoch);
    return SPY_OK;
}

/* meta_exec_blob_unlink: one DELETE; the cached link goes in any case. */
int meta_exec_blob_unlink(struct meta_ctx *x, struct spy_meta_op *op)
{
    uint64_t repo_id;
    int rc = meta_repo_id(x, op->in.repo, false, &repo_id);
    if (rc != SPY_OK)
        return rc;
    meta_sql_addf(x->q,
                  "DELETE FROM repo_blobs WHERE repo_id = %" PRIu64 " AND digest = ", repo_id);
    meta_sql_str(x->q, op->in.digest);
    if ((rc = meta_exec(x->conn, x->q)) != SPY_OK)
        return rc;
    bool deleted = meta_affected(x->conn) > 0;
    char key[META_KEY_MAX];
    meta_cache_forget(x->m, key, meta_key(key, 'l', op->in.repo, op->in.digest));
    return deleted ? SPY_OK : SPY_ENOTFOUND;
}
