/* meta_uploads.c - executors for upload sessions. A session lives in MySQL
 * (offset, resumable hash state, pieces, version), so any imageserver can
 * continue it; the version makes concurrent appends safe without locks held
 * across HTTP requests (optimistic concurrency, docs/metadata.md). */
#include "registry/meta_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/log.h"
#include "common/status.h"

/* new_uuid: 128 bits from the kernel's CSPRNG, as 32 lowercase hex digits. */
static int new_uuid(char out[SPY_META_UUID_LEN + 1])
{
    unsigned char raw[SPY_META_UUID_LEN / 2];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        spy_error("meta: getrandom failed");
        return SPY_EIO;
    }
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return SPY_OK;
}

/* meta_exec_upload_create: a fresh session with the empty hash state. */
int meta_exec_upload_create(struct meta_ctx *x, struct spy_meta_op *op)
{
    uint64_t repo_id;
    int rc = meta_repo_id(x, op->in.repo, true, &repo_id);
    if (rc == SPY_OK)
        rc = new_uuid(op->out.uuid);
    if (rc != SPY_OK)
        return rc;
    struct spy_oci_sha256 empty;
    uint8_t state[SPY_OCI_SHA256_STATE_SIZE];
    spy_oci_sha256_init(&empty);
    spy_oci_sha256_export(&empty, state);
    meta_sql_add(x->q,
                 "INSERT INTO uploads (uuid, repo_id, received, hash_state, version) VALUES (");
    meta_sql_str(x->q, op->out.uuid);
    meta_sql_addf(x->q, ", %" PRIu64 ", 0, ", repo_id);
    meta_sql_bin(x->q, state, sizeof(state));
    meta_sql_add(x->q, ", 0)");
    return meta_exec(x->conn, x->q);
}

/* read_session: "received, version, hash_state[, piece columns]" rows (one
 * per piece, or one with NULL piece columns) into the op's outputs. */
static int read_session(MYSQL_RES *res, struct spy_meta_op *op)
{
    MYSQL_ROW row = mysql_fetch_row(res);
    if (row == NULL)
        return SPY_ENOTFOUND;
    unsigned long *len = mysql_fetch_lengths(res);
    if (len[2] != SPY_OCI_SHA256_STATE_SIZE) {
        spy_error("meta: upload %s has a hash state of %lu bytes", op->in.uuid, len[2]);
        return SPY_ECORRUPT;
    }
    op->out.offset = meta_col_u64(row[0]);
    op->out.version = (uint32_t)meta_col_u64(row[1]);
    memcpy(op->out.state, row[2], SPY_OCI_SHA256_STATE_SIZE);
    if (!op->in.with_pieces || row[3] == NULL)
        return SPY_OK;
    uint64_t rows = mysql_num_rows(res), at = 0;
    op->out.pieces = calloc(rows, sizeof(*op->out.pieces));
    if (op->out.pieces == NULL)
        return SPY_ENOMEM;
    for (; row != NULL; row = mysql_fetch_row(res)) {
        struct spy_meta_piece *p = &op->out.pieces[op->out.npieces++];
        *p = (struct spy_meta_piece){(uint32_t)meta_col_u64(row[5]), meta_col_u64(row[6]),
                                     meta_col_u64(row[3]), meta_col_u64(row[4]),
                                     (uint32_t)meta_col_u64(row[7])};
        at = p->offset == at ? at + p->length : UINT64_MAX;
    }
    if (at != op->out.offset) {
        spy_error("meta: the pieces of upload %s do not cover its %" PRIu64 " bytes", op->in.uuid,
                  op->out.offset);
        return SPY_ECORRUPT;
    }
    return SPY_OK;
}

/* meta_exec_upload_get: one statement, so the pieces and the offset come
 * from the same committed state. */
int meta_exec_upload_get(struct meta_ctx *x, struct spy_meta_op *op)
{
    meta_sql_add(x->q, "SELECT u.received, u.version, u.hash_state");
    if (op->in.with_pieces)
        meta_sql_add(x->q, ", p.blob_offset, p.length, p.group_id, p.fid, p.crc32c");
    meta_sql_add(x->q, " FROM uploads u JOIN repositories r ON r.id = u.repo_id");
    if (op->in.with_pieces)
        meta_sql_add(x->q, " LEFT JOIN upload_pieces p ON p.uuid = u.uuid");
    meta_sql_add(x->q, " WHERE u.uuid = ");
    meta_sql_str(x->q, op->in.uuid);
    meta_sql_add(x->q, " AND r.name = ");
    meta_sql_str(x->q, op->in.repo);
    if (op->in.with_pieces)
        meta_sql_add(x->q, " ORDER BY p.idx");
    MYSQL_RES *res;
    int rc = meta_select(x->conn, x->q, &res);
    if (rc != SPY_OK)
        return rc;
    rc = read_session(res, op);
    mysql_free_result(res);
    return rc;
}

/* lock_session: the session row, locked until commit; *found false if the
 * session does not exist in this repository. */
static int lock_session(struct meta_ctx *x, uint64_t repo_id, const char *uuid, uint64_t *received,
                        uint32_t *version, bool *found)
{
    MYSQL_RES *res;
    meta_sql_add(x->q, "SELECT received, version FROM uploads WHERE uuid = ");
    meta_sql_str(x->q, uuid);
    meta_sql_addf(x->q, " AND repo_id = %" PRIu64 " FOR UPDATE", repo_id);
    int rc = meta_select(x->conn, x->q, &res);
    if (rc != SPY_OK)
        return rc;
    MYSQL_ROW row = mysql_fetch_row(res);
    *found = row != NULL;
    if (row != NULL) {
        *received = meta_col_u64(row[0]);
        *version = (uint32_t)meta_col_u64(row[1]);
    }
    mysql_free_result(res);
    return SPY_OK;
}

/* count_pieces: how many pieces the (locked) session has: the next index. */
static int count_pieces(struct meta_ctx *x, const char *uuid, uint64_t *count)
{
    bool found;
    meta_sql_add(x->q, "SELECT COUNT(*) FROM upload_pieces WHERE uuid = ");
    meta_sql_str(x->q, uuid);
    return meta_select_u64(x->conn, x->q, count, &found);
}

/* append_pieces: adds op's pieces after the session's *received bytes (the
 * first must start exactly there: else ERANGE), advancing *received. */
static int append_pieces(struct meta_ctx *x, const struct spy_meta_op *op, uint64_t *received)
{
    size_t n = op->in.npieces;
    if (n == 0)
        return SPY_OK;
    if (op->in.pieces[0].offset != *received)
        return SPY_ERANGE;
    uint64_t next_idx = 0;
    int rc = count_pieces(x, op->in.uuid, &next_idx);
    if (rc == SPY_OK)
        rc =
            meta_insert_pieces(x, "upload_pieces", "uuid", op->in.uuid, op->in.pieces, n, next_idx);
    if (rc == SPY_OK)
        *received = op->in.pieces[n - 1].offset + op->in.pieces[n - 1].length;
    return rc;
}

/* meta_exec_upload_append: optimistic concurrency: the row lock is held
 * only for this transaction, the version check spans HTTP requests. */
int meta_exec_upload_append(struct meta_ctx *x, struct spy_meta_op *op)
{
    uint64_t repo_id, received = 0;
    uint32_t version = 0;
    bool found = false;
    int rc = meta_repo_id(x, op->in.repo, false, &repo_id);
    if (rc == SPY_OK)
        rc = meta_begin(x->conn);
    if (rc == SPY_OK)
        rc = lock_session(x, repo_id, op->in.uuid, &received, &version, &found);
    if (rc == SPY_OK && !found)
        rc = SPY_ENOTFOUND;
    if (rc == SPY_OK && version != op->in.expected_version)
        rc = SPY_ERANGE;
    if (rc == SPY_OK)
        rc = append_pieces(x, op, &received);
    if (rc != SPY_OK)
        return rc;
    meta_sql_addf(x->q, "UPDATE uploads SET received = %" PRIu64 ", hash_state = ", received);
    meta_sql_bin(x->q, op->in.state, SPY_OCI_SHA256_STATE_SIZE);
    meta_sql_add(x->q, ", version = version + 1, updated = CURRENT_TIMESTAMP(6) WHERE uuid = ");
    meta_sql_str(x->q, op->in.uuid);
    if ((rc = meta_exec(x->conn, x->q)) == SPY_OK)
        rc = meta_commit(x->conn);
    if (rc == SPY_OK) {
        op->out.offset = received;
        op->out.version = version + 1;
    }
    return rc;
}

/* delete_session: its pieces' rows and its own row (inside the caller's
 * transaction). */
static int delete_session(struct meta_ctx *x, const char *uuid)
{
    meta_sql_add(x->q, "DELETE FROM upload_pieces WHERE uuid = ");
    meta_sql_str(x->q, uuid);
    int rc = meta_exec(x->conn, x->q);
    if (rc != SPY_OK)
        return rc;
    meta_sql_add(x->q, "DELETE FROM uploads WHERE uuid = ");
    meta_sql_str(x->q, uuid);
    return meta_exec(x->conn, x->q);
}

/* orphan_session_pieces: every piece of the session not in blob 'digest'
 * (NULL: every piece) goes to the orphans table; *orphaned counts them. */
static int orphan_session_pieces(struct meta_ctx *x, const char *uuid, const char *digest,
                                 const char *reason, size_t *orphaned)
{
    meta_sql_add(x->q, "INSERT INTO orphans (group_id, fid, reason) SELECT u.group_id, u.fid, ");
    meta_sql_str(x->q, reason);
    meta_sql_add(x->q, " FROM upload_pieces u WHERE u.uuid = ");
    meta_sql_str(x->q, uuid);
    if (digest != NULL) {
        meta_sql_add(x->q, " AND NOT EXISTS (SELECT 1 FROM blob_pieces p WHERE p.digest = ");
        meta_sql_str(x->q, digest);
        meta_sql_add(x->q, " AND p.group_id = u.group_id AND p.fid = u.fid)");
    }
    int rc = meta_exec(x->conn, x->q);
    if (rc == SPY_OK)
        *orphaned += meta_affected(x->conn);
    return rc;
}

/* meta_exec_upload_cancel: the session's pieces to orphans, then the session. */
int meta_exec_upload_cancel(struct meta_ctx *x, struct spy_meta_op *op)
{
    uint64_t repo_id, received;
    uint32_t version;
    bool found = false;
    int rc = meta_repo_id(x, op->in.repo, false, &repo_id);
    if (rc == SPY_OK)
        rc = meta_begin(x->conn);
    if (rc == SPY_OK)
        rc = lock_session(x, repo_id, op->in.uuid, &received, &version, &found);
    if (rc == SPY_OK && !found)
        rc = SPY_ENOTFOUND;
    if (rc == SPY_OK)
        rc = orphan_session_pieces(x, op->in.uuid, NULL, "upload cancelled", &op->out.orphaned);
    if (rc == SPY_OK)
        rc = delete_session(x, op->in.uuid);
    if (rc == SPY_OK)
        rc = meta_commit(x->conn);
    return rc;
}

/* complete_again: the session is gone. If the blob is linked to the
 * repository this is a retried completion: success, with any final pieces
 * that did not make it into the blob recorded as orphans. */
static int complete_again(struct meta_ctx *x, uint64_t repo_id, struct spy_meta_op *op)
{
    uint64_t one;
    bool linked = false;
    meta_sql_addf(x->q,
                  "SELECT 1 FROM repo_blobs WHERE repo_id = %" PRIu64 " AND digest = ", repo_id);
    meta_sql_str(x->q, op->in.digest);
    int rc = meta_select_u64(x->conn, x->q, &one, &linked);
    if (rc == SPY_OK && !linked)
        return SPY_ENOTFOUND;
    if (rc == SPY_OK)
        rc = meta_orphans_unless_in_blob(x, op->in.digest, op->in.pieces, op->in.npieces,
                                         "completed twice", &op->out.orphaned);
    if (rc == SPY_OK)
        rc = meta_commit(x->conn);
    return rc;
}

/* commit_from_session: the blob row, then its pieces copied from the session
 * inside MySQL (or, if the digest exists, the session's pieces orphaned). */
static int commit_from_session(struct meta_ctx *x, struct spy_meta_op *op, uint64_t count)
{
    const char *digest = op->in.digest, *uuid = op->in.uuid;
    meta_sql_add(x->q, "INSERT INTO blobs (digest, size, piece_count) VALUES (");
    meta_sql_str(x->q, digest);
    meta_sql_addf(x->q, ", %" PRIu64 ", %" PRIu64 ") ON DUPLICATE KEY UPDATE digest = digest",
                  op->in.size, count);
    int rc = meta_exec(x->conn, x->q);
    if (rc != SPY_OK)
        return rc;
    op->out.created = meta_affected(x->conn) == 1;
    if (!op->out.created && (rc = meta_blob_size_matches(x, digest, op->in.size)) != SPY_OK)
        return rc;
    if (!op->out.created)
        return orphan_session_pieces(x, uuid, digest, "duplicate blob", &op->out.orphaned);
    meta_sql_add(x->q, "INSERT INTO blob_pieces (digest, idx, blob_offset, length, group_id, fid,"
                       " crc32c) SELECT ");
    meta_sql_str(x->q, digest);
    meta_sql_add(x->q, ", idx, blob_offset, length, group_id, fid, crc32c FROM upload_pieces"
                       " WHERE uuid = ");
    meta_sql_str(x->q, uuid);
    return meta_exec(x->conn, x->q);
}

/* meta_exec_upload_complete: one transaction from session to visible blob
 * (docs/metadata.md); the session disappears exactly when the blob appears. */
int meta_exec_upload_complete(struct meta_ctx *x, struct spy_meta_op *op)
{
    uint64_t epoch = meta_cache_epoch(x->m), repo_id, received = 0, count = 0;
    uint32_t version = 0;
    bool found = false;
    int rc = meta_repo_id(x, op->in.repo, false, &repo_id);
    if (rc == SPY_OK)
        rc = meta_begin(x->conn);
    if (rc == SPY_OK)
        rc = lock_session(x, repo_id, op->in.uuid, &received, &version, &found);
    if (rc == SPY_OK && !found)
        return complete_again(x, repo_id, op);
    if (rc == SPY_OK && version != op->in.expected_version)
        rc = SPY_ERANGE;
    if (rc == SPY_OK)
        rc = append_pieces(x, op, &received);
    if (rc == SPY_OK && received != op->in.size)
        rc = SPY_ERANGE;
    if (rc == SPY_OK)
        rc = count_pieces(x, op->in.uuid, &count);
    if (rc == SPY_OK)
        rc = commit_from_session(x, op, count);
    if (rc == SPY_OK)
        rc = meta_link_insert(x, repo_id, op->in.digest);
    if (rc == SPY_OK)
        rc = delete_session(x, op->in.uuid);
    if (rc == SPY_OK)
        rc = meta_commit(x->conn);
    if (rc != SPY_OK)
        return rc;
    char key[META_KEY_MAX];
    meta_cache_put(x->m, key, meta_key(key, 'l', op->in.repo, op->in.digest), NULL,
                   x->m->cfg.cache_ttl_ms, epoch);
    return SPY_OK;
}

/* stale_sessions: up to n sessions idle for max_age_s, locked; SKIP LOCKED
 * leaves sessions in use (and other imageservers' picks) alone. Appends
 * "'uuid','uuid',..." to list. */
static int stale_sessions(struct meta_ctx *x, const struct spy_meta_op *op, struct meta_sql *list,
                          size_t *count)
{
    MYSQL_RES *res;
    meta_sql_addf(x->q,
                  "SELECT uuid FROM uploads WHERE updated < CURRENT_TIMESTAMP(6) -"
                  " INTERVAL %" PRIu32 " SECOND ORDER BY updated LIMIT %" PRIu32
                  " FOR UPDATE SKIP LOCKED",
                  op->in.max_age_s, op->in.n > 0 ? op->in.n : 100);
    int rc = meta_select(x->conn, x->q, &res);
    if (rc != SPY_OK)
        return rc;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL) {
        meta_sql_add(list, (*count)++ > 0 ? "," : "");
        meta_sql_str(list, row[0] != NULL ? row[0] : "");
    }
    mysql_free_result(res);
    return list->oom ? SPY_ENOMEM : SPY_OK;
}

/* meta_exec_uploads_expire: one transaction per batch: the sessions' pieces
 * to orphans, then the sessions. */
int meta_exec_uploads_expire(struct meta_ctx *x, struct spy_meta_op *op)
{
    struct meta_sql list = {0};
    size_t n = 0;
    int rc = meta_begin(x->conn);
    if (rc == SPY_OK)
        rc = stale_sessions(x, op, &list, &n);
    if (rc == SPY_OK && n > 0) {
        meta_sql_add(x->q, "INSERT INTO orphans (group_id, fid, reason) SELECT group_id, fid,"
                           " 'upload expired' FROM upload_pieces WHERE uuid IN (");
        meta_sql_add(x->q, list.buf);
        meta_sql_add(x->q, ")");
        rc = meta_exec(x->conn, x->q);
        op->out.orphaned = rc == SPY_OK ? meta_affected(x->conn) : 0;
    }
    const char *tables[] = {"upload_pieces", "uploads"};
    for (int i = 0; i < 2 && rc == SPY_OK && n > 0; i++) {
        meta_sql_addf(x->q, "DELETE FROM %s WHERE uuid IN (%s)", tables[i], list.buf);
        rc = meta_exec(x->conn, x->q);
    }
    if (rc == SPY_OK)
        rc = meta_commit(x->conn);
    if (rc == SPY_OK)
        op->out.count = n;
    else
        op->out.orphaned = 0;
    meta_sql_free(&list);
    return rc;
}
