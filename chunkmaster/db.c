#include "chunkmaster/db.h"

#include <errno.h>
#include <inttypes.h>
#include <mysql.h>
#include <errmsg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/status.h"

struct spy_db {
    const struct spy_db_config *cfg;
    MYSQL *conn;     /* NULL while disconnected */
    int in_txn;      /* inside spy_db_begin: never reconnect silently */
    int unreachable; /* the last connect failed: repeat failures log at debug level */
};

/* Migrations, in order; migration i (1-based) brings the schema to version i.
 * Each statement is idempotent (IF NOT EXISTS, guarded inserts), so a
 * migration cut short by a crash is simply run again. Never edit an applied
 * migration: add a new one. */
static const char *const migration_1[] = {
    "CREATE TABLE IF NOT EXISTS gen_fid ("
    " fid BIGINT UNSIGNED NOT NULL"
    ") ENGINE=InnoDB",
    "INSERT INTO gen_fid (fid) SELECT 0 FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM gen_fid)",
    "CREATE TABLE IF NOT EXISTS spy_chunkserver ("
    " ip VARCHAR(64) CHARACTER SET ascii NOT NULL,"
    " port INT UNSIGNED NOT NULL,"
    " group_id INT UNSIGNED NOT NULL,"
    " reported TINYINT NOT NULL DEFAULT 0,"
    " read_only TINYINT NOT NULL DEFAULT 0,"
    " draining TINYINT NOT NULL DEFAULT 0,"
    " total_free_space BIGINT UNSIGNED NOT NULL DEFAULT 0,"
    " max_free_space BIGINT UNSIGNED NOT NULL DEFAULT 0,"
    " used_space BIGINT UNSIGNED NOT NULL DEFAULT 0,"
    " garbage_space BIGINT UNSIGNED NOT NULL DEFAULT 0,"
    " objects BIGINT UNSIGNED NOT NULL DEFAULT 0,"
    " pending_writes BIGINT UNSIGNED NOT NULL DEFAULT 0,"
    " writing_count BIGINT UNSIGNED NOT NULL DEFAULT 0,"
    " reading_count BIGINT UNSIGNED NOT NULL DEFAULT 0,"
    " total_chunks BIGINT UNSIGNED NOT NULL DEFAULT 0,"
    " damaged_chunks BIGINT UNSIGNED NOT NULL DEFAULT 0,"
    " connections_count BIGINT UNSIGNED NOT NULL DEFAULT 0,"
    " data_dir VARCHAR(1024) NOT NULL DEFAULT '',"
    " version VARCHAR(64) NOT NULL DEFAULT '',"
    " last_report_ms BIGINT NOT NULL DEFAULT 0,"
    " created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,"
    " updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,"
    " PRIMARY KEY (ip, port),"
    " KEY by_group (group_id)"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE IF NOT EXISTS spy_chunkgroup ("
    " group_id INT UNSIGNED NOT NULL PRIMARY KEY,"
    " draining TINYINT NOT NULL DEFAULT 0,"
    " updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP"
    ") ENGINE=InnoDB",
    NULL,
};

static const char *const *const migrations[] = {migration_1};
#define MIGRATION_COUNT ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* The server columns, in the order load_server_row reads them. */
#define SERVER_COLUMNS                                                                             \
    "ip, port, group_id, reported, read_only, draining, total_free_space, max_free_space, "        \
    "used_space, garbage_space, objects, pending_writes, writing_count, reading_count, "           \
    "total_chunks, damaged_chunks, connections_count, data_dir, version, last_report_ms"

int spy_db_schema_latest(void)
{
    return MIGRATION_COUNT;
}

/* disconnect: drops the connection; the next statement reconnects. */
static void disconnect(struct spy_db *db)
{
    if (db->conn != NULL) {
        mysql_close(db->conn);
        db->conn = NULL;
    }
}

/* connect_server: opens a connection with timeouts and utf8mb4; selects the
 * database when select_db is set. Logs the reason on failure. */
static int connect_server(struct spy_db *db, int select_db)
{
    const struct spy_db_config *cfg = db->cfg;
    MYSQL *m = mysql_init(NULL);
    if (m == NULL) {
        spy_error("db: mysql_init failed (out of memory)");
        return SPY_ENOMEM;
    }
    unsigned connect_timeout = cfg->connect_timeout_s, io_timeout = cfg->io_timeout_s;
    mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
    mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &io_timeout);
    mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &io_timeout);
    mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (mysql_real_connect(m, cfg->host, cfg->user, cfg->password, select_db ? cfg->database : NULL,
                           (unsigned)cfg->port, NULL, 0) == NULL) {
        /* one error line per outage, not one per retry */
        spy_log(db->unreachable ? SPY_LOG_DEBUG : SPY_LOG_ERROR,
                "db: cannot connect to %s:%d as '%s': %s", cfg->host, cfg->port, cfg->user,
                mysql_error(m));
        db->unreachable = 1;
        mysql_close(m);
        return SPY_EIO;
    }
    if (db->unreachable)
        spy_info("db: connected again to %s:%d", cfg->host, cfg->port);
    db->unreachable = 0;
    db->conn = m;
    return SPY_OK;
}

/* connection_lost: errors after which the connection is unusable, so one
 * reconnect and retry is worth it. */
static int connection_lost(unsigned err)
{
    return err == CR_SERVER_GONE_ERROR || err == CR_SERVER_LOST || err == CR_CONNECTION_ERROR ||
           err == CR_CONN_HOST_ERROR;
}

/* run: executes one statement, reconnecting once if the connection was lost
 * (not inside a transaction). On success the result (if any) is pending on
 * db->conn. */
static int run(struct spy_db *db, const char *sql)
{
    int attempts = db->in_txn ? 1 : 2;
    for (int attempt = 0; attempt < attempts; attempt++) {
        if (db->conn == NULL && (db->in_txn || connect_server(db, 1) != SPY_OK))
            return SPY_EIO;
        if (mysql_real_query(db->conn, sql, strlen(sql)) == 0)
            return SPY_OK;
        unsigned err = mysql_errno(db->conn);
        if (!connection_lost(err) || attempt == attempts - 1) {
            spy_error("db: statement failed (%u: %s): %.200s", err, mysql_error(db->conn), sql);
            if (connection_lost(err))
                disconnect(db);
            return SPY_EIO;
        }
        spy_warn("db: connection lost (%s), reconnecting", mysql_error(db->conn));
        disconnect(db);
    }
    return SPY_EIO;
}

/* query_int: runs a statement returning one integer (first row, first
 * column); NULL reads as 0. */
static int query_int(struct spy_db *db, const char *sql, long long *out)
{
    if (run(db, sql) != SPY_OK)
        return SPY_EIO;
    MYSQL_RES *res = mysql_store_result(db->conn);
    MYSQL_ROW row = res != NULL ? mysql_fetch_row(res) : NULL;
    if (row == NULL) {
        spy_error("db: no result for: %.200s", sql);
        mysql_free_result(res);
        return SPY_EIO;
    }
    *out = row[0] != NULL ? strtoll(row[0], NULL, 10) : 0;
    mysql_free_result(res);
    return SPY_OK;
}

/* valid_db_name: the database name is put in statements unquoted by value,
 * so only plain identifier characters are accepted. */
static int valid_db_name(const char *name)
{
    if (name == NULL || name[0] == '\0' || strlen(name) > 64)
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '$'))
            return 0;
    return 1;
}

/* create_database: connects without a database, creates it if missing,
 * and selects it. */
static int create_database(struct spy_db *db)
{
    if (connect_server(db, 0) != SPY_OK)
        return SPY_EIO;
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4",
             db->cfg->database);
    if (mysql_query(db->conn, sql) != 0 || mysql_select_db(db->conn, db->cfg->database) != 0) {
        spy_error("db: cannot create or use database '%s': %s", db->cfg->database,
                  mysql_error(db->conn));
        disconnect(db);
        return SPY_EIO;
    }
    return SPY_OK;
}

int spy_db_schema_version(struct spy_db *db, int *version)
{
    long long v;
    if (query_int(db, "SELECT version FROM spy_schema_version WHERE id = 1", &v) != SPY_OK)
        return SPY_EIO;
    *version = (int)v;
    return SPY_OK;
}

/* apply_migrations: brings the schema from its version to the latest, one
 * migration at a time, recording each. The caller holds the migration lock. */
static int apply_migrations(struct spy_db *db)
{
    if (run(db, "CREATE TABLE IF NOT EXISTS spy_schema_version ("
                " id TINYINT UNSIGNED NOT NULL PRIMARY KEY, version INT NOT NULL"
                ") ENGINE=InnoDB") != SPY_OK ||
        run(db, "INSERT IGNORE INTO spy_schema_version (id, version) VALUES (1, 0)") != SPY_OK)
        return SPY_EIO;
    int version;
    if (spy_db_schema_version(db, &version) != SPY_OK)
        return SPY_EIO;
    if (version > MIGRATION_COUNT) {
        spy_error("db: schema version %d is newer than this chunkmaster knows (%d); upgrade it",
                  version, MIGRATION_COUNT);
        return SPY_EINVAL;
    }
    for (int v = version + 1; v <= MIGRATION_COUNT; v++) {
        for (const char *const *stmt = migrations[v - 1]; *stmt != NULL; stmt++)
            if (run(db, *stmt) != SPY_OK)
                return SPY_EIO;
        char sql[96];
        snprintf(sql, sizeof(sql), "UPDATE spy_schema_version SET version = %d WHERE id = 1", v);
        if (run(db, sql) != SPY_OK)
            return SPY_EIO;
        spy_info("db: schema migrated to version %d", v);
    }
    return SPY_OK;
}

/* migrate: apply_migrations under a server-wide named lock (per database), so
 * two masters starting at once apply each migration once. */
static int migrate(struct spy_db *db)
{
    long long locked = 0;
    if (query_int(db, "SELECT GET_LOCK(CONCAT(DATABASE(), '.spy_migrate'), 30)", &locked) != SPY_OK)
        return SPY_EIO;
    if (locked != 1) {
        spy_error("db: could not take the migration lock within 30 s (another master "
                  "migrating?)");
        return SPY_EIO;
    }
    int rc = apply_migrations(db);
    long long released;
    query_int(db, "SELECT RELEASE_LOCK(CONCAT(DATABASE(), '.spy_migrate'))", &released);
    return rc;
}

int spy_db_open(const struct spy_db_config *cfg, struct spy_db **out)
{
    if (!valid_db_name(cfg->database)) {
        spy_error("db: database name '%s' must be 1..64 of [A-Za-z0-9_$]", cfg->database);
        return SPY_EINVAL;
    }
    struct spy_db *db = calloc(1, sizeof(*db));
    if (db == NULL)
        return SPY_ENOMEM;
    db->cfg = cfg;
    int rc = create_database(db);
    if (rc == SPY_OK)
        rc = migrate(db);
    if (rc != SPY_OK) {
        spy_db_close(db);
        return rc;
    }
    *out = db;
    return SPY_OK;
}

void spy_db_close(struct spy_db *db)
{
    if (db == NULL)
        return;
    disconnect(db);
    free(db);
}

int spy_db_alloc_fids(struct spy_db *db, uint64_t count, uint64_t *first)
{
    if (count == 0)
        return SPY_EINVAL;
    char sql[96];
    snprintf(sql, sizeof(sql), "UPDATE gen_fid SET fid = LAST_INSERT_ID(fid + %" PRIu64 ")", count);
    if (run(db, sql) != SPY_OK)
        return SPY_EIO;
    my_ulonglong rows = mysql_affected_rows(db->conn);
    if (rows != 1) {
        spy_error("db: gen_fid must hold exactly one row, the update touched %llu",
                  (unsigned long long)rows);
        return SPY_EIO;
    }
    /* LAST_INSERT_ID(expr) in an UPDATE is reported back in the OK packet of
     * this very statement, so no second round trip can see another value. */
    uint64_t last = mysql_insert_id(db->conn);
    if (last < count) {
        spy_error("db: gen_fid returned %" PRIu64 " for a range of %" PRIu64, last, count);
        return SPY_EIO;
    }
    *first = last - count + 1;
    return SPY_OK;
}

/* row_u64: a numeric column as uint64_t; NULL reads as 0. */
static uint64_t row_u64(MYSQL_ROW row, int i)
{
    return row[i] != NULL ? strtoull(row[i], NULL, 10) : 0;
}

/* copy_text: a text column into a fixed buffer, cut to fit. */
static void copy_text(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src != NULL ? src : "");
}

/* load_server_row: converts one SELECT SERVER_COLUMNS row; 0 if the row is
 * unusable (logged and skipped). */
static int load_server_row(MYSQL_ROW row, struct spy_db_server_row *out)
{
    memset(out, 0, sizeof(*out));
    struct spy_report *r = &out->r;
    if (row[0] == NULL || spy_request_canonical_ip(row[0], r->key.ip, sizeof(r->key.ip)) != 0) {
        spy_warn("db: skipping spy_chunkserver row with bad ip '%s'", row[0] ? row[0] : "NULL");
        return 0;
    }
    r->key.port = (int)row_u64(row, 1);
    uint64_t group = row_u64(row, 2);
    if (r->key.port < 1 || r->key.port > 65535 || group > SPY_GROUP_ID_MAX) {
        spy_warn("db: skipping spy_chunkserver row %s port %d group %" PRIu64, r->key.ip,
                 r->key.port, group);
        return 0;
    }
    r->group_id = (uint32_t)group;
    out->reported = row_u64(row, 3) != 0;
    r->read_only = row_u64(row, 4) != 0;
    out->draining = row_u64(row, 5) != 0;
    uint64_t *metrics[] = {&r->total_free_space, &r->max_free_space,   &r->used_space,
                           &r->garbage_space,    &r->objects,          &r->pending_writes,
                           &r->writing_count,    &r->reading_count,    &r->total_chunks,
                           &r->damaged_chunks,   &r->connections_count};
    for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++)
        *metrics[i] = row_u64(row, 6 + (int)i);
    copy_text(r->data_dir, sizeof(r->data_dir), row[17]);
    copy_text(r->version, sizeof(r->version), row[18]);
    out->last_report_unix_ms = row[19] != NULL ? strtoll(row[19], NULL, 10) : 0;
    return 1;
}

/* load_servers: every spy_chunkserver row through on_server. */
static int load_servers(struct spy_db *db, spy_db_server_cb on_server, void *arg)
{
    if (run(db, "SELECT " SERVER_COLUMNS " FROM spy_chunkserver") != SPY_OK)
        return SPY_EIO;
    MYSQL_RES *res = mysql_store_result(db->conn);
    if (res == NULL) {
        spy_error("db: reading spy_chunkserver: %s", mysql_error(db->conn));
        return SPY_EIO;
    }
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL) {
        struct spy_db_server_row srv;
        if (load_server_row(row, &srv))
            on_server(arg, &srv);
    }
    mysql_free_result(res);
    return SPY_OK;
}

/* load_groups: every spy_chunkgroup row through on_group. */
static int load_groups(struct spy_db *db, spy_db_group_cb on_group, void *arg)
{
    if (run(db, "SELECT group_id, draining FROM spy_chunkgroup") != SPY_OK)
        return SPY_EIO;
    MYSQL_RES *res = mysql_store_result(db->conn);
    if (res == NULL) {
        spy_error("db: reading spy_chunkgroup: %s", mysql_error(db->conn));
        return SPY_EIO;
    }
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL) {
        uint64_t group = row_u64(row, 0);
        if (group <= SPY_GROUP_ID_MAX)
            on_group(arg, (uint32_t)group, row_u64(row, 1) != 0);
    }
    mysql_free_result(res);
    return SPY_OK;
}

int spy_db_load(struct spy_db *db, spy_db_server_cb on_server, spy_db_group_cb on_group, void *arg)
{
    if (load_servers(db, on_server, arg) != SPY_OK)
        return SPY_EIO;
    return load_groups(db, on_group, arg);
}

/* escape: quotes text for a statement on this connection (connecting first if
 * needed: escaping depends on the connection's character set). */
static int escape(struct spy_db *db, char *dst, const char *src)
{
    if (db->conn == NULL && (db->in_txn || connect_server(db, 1) != SPY_OK))
        return SPY_EIO;
    mysql_real_escape_string(db->conn, dst, src, strlen(src));
    return SPY_OK;
}

int spy_db_begin(struct spy_db *db)
{
    if (run(db, "START TRANSACTION") != SPY_OK)
        return SPY_EIO;
    db->in_txn = 1;
    return SPY_OK;
}

int spy_db_commit(struct spy_db *db)
{
    int rc = run(db, "COMMIT");
    db->in_txn = 0;
    return rc;
}

void spy_db_rollback(struct spy_db *db)
{
    if (db->conn != NULL && mysql_query(db->conn, "ROLLBACK") != 0)
        disconnect(db);
    db->in_txn = 0;
}

int spy_db_save_server(struct spy_db *db, const struct spy_db_server_row *row)
{
    const struct spy_report *r = &row->r;
    char dir[2 * SPY_DATA_DIR_MAX + 1], version[2 * SPY_VERSION_MAX + 1];
    if (escape(db, dir, r->data_dir) != SPY_OK || escape(db, version, r->version) != SPY_OK)
        return SPY_EIO;
    char sql[4096 + sizeof(dir)];
    snprintf(sql, sizeof(sql),
             "INSERT INTO spy_chunkserver (" SERVER_COLUMNS ") VALUES ('%s', %d, %u, %d, %d, %d, "
             "%" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64
             ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 ", '%s', '%s', "
             "%" PRId64 ") ON DUPLICATE KEY UPDATE group_id = VALUES(group_id), "
             "reported = VALUES(reported), read_only = VALUES(read_only), "
             "draining = VALUES(draining), total_free_space = VALUES(total_free_space), "
             "max_free_space = VALUES(max_free_space), used_space = VALUES(used_space), "
             "garbage_space = VALUES(garbage_space), objects = VALUES(objects), "
             "pending_writes = VALUES(pending_writes), writing_count = VALUES(writing_count), "
             "reading_count = VALUES(reading_count), total_chunks = VALUES(total_chunks), "
             "damaged_chunks = VALUES(damaged_chunks), "
             "connections_count = VALUES(connections_count), data_dir = VALUES(data_dir), "
             "version = VALUES(version), last_report_ms = VALUES(last_report_ms)",
             r->key.ip, r->key.port, (unsigned)r->group_id, row->reported, r->read_only,
             row->draining, r->total_free_space, r->max_free_space, r->used_space, r->garbage_space,
             r->objects, r->pending_writes, r->writing_count, r->reading_count, r->total_chunks,
             r->damaged_chunks, r->connections_count, dir, version, row->last_report_unix_ms);
    return run(db, sql);
}

int spy_db_delete_server(struct spy_db *db, const struct spy_server_key *key)
{
    char ip[2 * SPY_IP_TEXT_MAX + 1];
    if (escape(db, ip, key->ip) != SPY_OK)
        return SPY_EIO;
    char sql[256];
    snprintf(sql, sizeof(sql), "DELETE FROM spy_chunkserver WHERE ip = '%s' AND port = %d", ip,
             key->port);
    return run(db, sql);
}

int spy_db_save_group(struct spy_db *db, uint32_t group_id, int draining)
{
    char sql[160];
    snprintf(sql, sizeof(sql),
             "INSERT INTO spy_chunkgroup (group_id, draining) VALUES (%u, %d) "
             "ON DUPLICATE KEY UPDATE draining = VALUES(draining)",
             (unsigned)group_id, draining ? 1 : 0);
    return run(db, sql);
}
