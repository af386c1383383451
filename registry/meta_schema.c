/* meta_schema.c - creates the metadata database and migrates its schema.
 *
 * Migrations are numbered; schema_version holds the last one applied. Every
 * statement of a migration is idempotent (CREATE TABLE IF NOT EXISTS, ...),
 * because MySQL commits DDL implicitly: a migration cut short is simply run
 * again. Imageservers starting together serialise on a named lock
 * (GET_LOCK), so only one migrates and the others find the work done.
 * Never edit an applied migration: add one. docs/metadata.md explains every
 * table. */
#include "registry/meta_internal.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/status.h"

#define TABLE_OPTIONS " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
#define DIGEST_COL    "VARCHAR(135) NOT NULL" /* "sha512:" + 128 hex at most */
#define LOCK_WAIT_S   600                     /* another imageserver may be migrating a big table */

static const char *const migration_1[] = {
    "CREATE TABLE IF NOT EXISTS repositories ("
    " id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    " name VARCHAR(255) NOT NULL,"
    " created DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),"
    " UNIQUE KEY by_name (name)"
    ")" TABLE_OPTIONS,

    "CREATE TABLE IF NOT EXISTS blobs ("
    " digest " DIGEST_COL " PRIMARY KEY,"
    " size BIGINT UNSIGNED NOT NULL,"
    " piece_count INT UNSIGNED NOT NULL,"
    " created DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)"
    ")" TABLE_OPTIONS,

    "CREATE TABLE IF NOT EXISTS blob_pieces ("
    " digest " DIGEST_COL ","
    " idx INT UNSIGNED NOT NULL,"
    " blob_offset BIGINT UNSIGNED NOT NULL,"
    " length BIGINT UNSIGNED NOT NULL,"
    " group_id INT UNSIGNED NOT NULL,"
    " fid BIGINT UNSIGNED NOT NULL,"
    " crc32c INT UNSIGNED NOT NULL,"
    " PRIMARY KEY (digest, idx),"
    " KEY by_fid (group_id, fid)"
    ")" TABLE_OPTIONS,

    "CREATE TABLE IF NOT EXISTS repo_blobs ("
    " repo_id BIGINT UNSIGNED NOT NULL,"
    " digest " DIGEST_COL ","
    " created DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),"
    " PRIMARY KEY (repo_id, digest),"
    " KEY by_digest (digest)"
    ")" TABLE_OPTIONS,

    "CREATE TABLE IF NOT EXISTS manifests ("
    " repo_id BIGINT UNSIGNED NOT NULL,"
    " digest " DIGEST_COL ","
    " media_type VARCHAR(255) NOT NULL,"
    " size INT UNSIGNED NOT NULL,"
    " artifact_type VARCHAR(255) NULL,"
    " subject_digest VARCHAR(135) NULL,"
    " annotations MEDIUMTEXT NULL,"
    " body MEDIUMBLOB NOT NULL,"
    " created DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),"
    " PRIMARY KEY (repo_id, digest),"
    " KEY by_subject (repo_id, subject_digest)"
    ")" TABLE_OPTIONS,

    "CREATE TABLE IF NOT EXISTS manifest_refs ("
    " repo_id BIGINT UNSIGNED NOT NULL,"
    " manifest_digest " DIGEST_COL ","
    " ref_digest " DIGEST_COL ","
    " kind TINYINT UNSIGNED NOT NULL,"
    " PRIMARY KEY (repo_id, manifest_digest, ref_digest),"
    " KEY by_ref (ref_digest)"
    ")" TABLE_OPTIONS,

    "CREATE TABLE IF NOT EXISTS tags ("
    " repo_id BIGINT UNSIGNED NOT NULL,"
    " name VARCHAR(128) NOT NULL,"
    " manifest_digest " DIGEST_COL ","
    " updated DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),"
    " PRIMARY KEY (repo_id, name),"
    " KEY by_manifest (repo_id, manifest_digest)"
    ")" TABLE_OPTIONS,

    "CREATE TABLE IF NOT EXISTS uploads ("
    " uuid CHAR(32) NOT NULL PRIMARY KEY,"
    " repo_id BIGINT UNSIGNED NOT NULL,"
    " created DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),"
    " updated DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),"
    " received BIGINT UNSIGNED NOT NULL DEFAULT 0,"
    " hash_state VARBINARY(255) NOT NULL,"
    " version INT UNSIGNED NOT NULL DEFAULT 0,"
    " KEY by_updated (updated)"
    ")" TABLE_OPTIONS,

    "CREATE TABLE IF NOT EXISTS upload_pieces ("
    " uuid CHAR(32) NOT NULL,"
    " idx INT UNSIGNED NOT NULL,"
    " blob_offset BIGINT UNSIGNED NOT NULL,"
    " length BIGINT UNSIGNED NOT NULL,"
    " group_id INT UNSIGNED NOT NULL,"
    " fid BIGINT UNSIGNED NOT NULL,"
    " crc32c INT UNSIGNED NOT NULL,"
    " PRIMARY KEY (uuid, idx)"
    ")" TABLE_OPTIONS,

    "CREATE TABLE IF NOT EXISTS orphans ("
    " id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    " group_id INT UNSIGNED NOT NULL,"
    " fid BIGINT UNSIGNED NOT NULL,"
    " reason VARCHAR(64) NOT NULL,"
    " created DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),"
    " KEY by_created (created),"
    " KEY by_fid (group_id, fid)"
    ")" TABLE_OPTIONS,
    NULL,
};

static const char *const *const migrations[] = {migration_1};
#define MIGRATION_COUNT ((int)(sizeof(migrations) / sizeof(migrations[0])))

int meta_schema_latest(void)
{
    return MIGRATION_COUNT;
}

/* valid_db_name: the name goes into statements as an identifier, so only
 * plain identifier characters are accepted. */
static bool valid_db_name(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '$'))
            return false;
    }
    return true;
}

/* run: one statement; every failure reads as SPY_EIO here (already logged). */
static int run(struct meta_conn *c, struct meta_sql *q, const char *sql)
{
    meta_sql_add(q, sql);
    return meta_exec(c, q) == SPY_OK ? SPY_OK : SPY_EIO;
}

/* use_database: creates the database if needed and selects it. */
static int use_database(struct meta_conn *c, struct meta_sql *q)
{
    const char *db = c->cfg->database;
    meta_sql_addf(q, "CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
                  db);
    if (meta_exec(c, q) != SPY_OK)
        return SPY_EIO;
    if (mysql_select_db(c->my, db) != 0) {
        spy_error("meta: cannot use database '%s': %s", db, mysql_error(c->my));
        return SPY_EIO;
    }
    return SPY_OK;
}

/* lock_migrations: GET_LOCK is per server, so the lock name carries the
 * database name; 1 means we hold it. */
static int lock_migrations(struct meta_conn *c, struct meta_sql *q, bool take)
{
    char name[96];
    snprintf(name, sizeof(name), "spy_meta_migrate.%s", c->cfg->database);
    if (!take) {
        meta_sql_add(q, "DO RELEASE_LOCK(");
        meta_sql_str(q, name);
        meta_sql_add(q, ")");
        return meta_exec(c, q) == SPY_OK ? SPY_OK : SPY_EIO;
    }
    uint64_t got = 0;
    bool found = false;
    for (int wait = 0; wait <= LOCK_WAIT_S && got != 1; wait += LOCK_WAIT_S) {
        if (wait > 0)
            spy_info("meta: another imageserver is migrating '%s'; waiting", c->cfg->database);
        meta_sql_add(q, "SELECT GET_LOCK(");
        meta_sql_str(q, name);
        meta_sql_addf(q, ", %d)", wait);
        if (meta_select_u64(c, q, &got, &found) != SPY_OK)
            return SPY_EIO;
    }
    if (got != 1) {
        spy_error("meta: could not take the migration lock '%s' within %d s", name, LOCK_WAIT_S);
        return SPY_EIO;
    }
    return SPY_OK;
}

/* current_version: creates schema_version with version 0 if new. */
static int current_version(struct meta_conn *c, struct meta_sql *q, uint64_t *version)
{
    if (run(c, q,
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " id TINYINT UNSIGNED NOT NULL PRIMARY KEY,"
            " version INT UNSIGNED NOT NULL,"
            " updated DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)"
            ")" TABLE_OPTIONS) != SPY_OK ||
        run(c, q,
            "INSERT INTO schema_version (id, version) VALUES (1, 0)"
            " ON DUPLICATE KEY UPDATE id = id") != SPY_OK)
        return SPY_EIO;
    bool found = false;
    meta_sql_add(q, "SELECT version FROM schema_version WHERE id = 1");
    if (meta_select_u64(c, q, version, &found) != SPY_OK || !found)
        return SPY_EIO;
    return SPY_OK;
}

/* apply: runs the migrations after 'from', recording each as it completes. */
static int apply(struct meta_conn *c, struct meta_sql *q, uint64_t from)
{
    for (int v = (int)from + 1; v <= MIGRATION_COUNT; v++) {
        for (const char *const *sql = migrations[v - 1]; *sql != NULL; sql++)
            if (run(c, q, *sql) != SPY_OK)
                return SPY_EIO;
        meta_sql_addf(q,
                      "UPDATE schema_version SET version = %d, updated = CURRENT_TIMESTAMP(6)"
                      " WHERE id = 1",
                      v);
        if (meta_exec(c, q) != SPY_OK)
            return SPY_EIO;
        spy_info("meta: database '%s' migrated to schema version %d", c->cfg->database, v);
    }
    return SPY_OK;
}

/* check_packet_limit: a 4 MiB manifest, escaped, needs up to 8 MiB in one
 * statement; warn at start rather than fail a push later. */
static void check_packet_limit(struct meta_conn *c, struct meta_sql *q)
{
    uint64_t limit = 0;
    bool found = false;
    meta_sql_add(q, "SELECT @@max_allowed_packet");
    if (meta_select_u64(c, q, &limit, &found) == SPY_OK && found &&
        limit < 2 * (uint64_t)SPY_OCI_MANIFEST_MAX + 65536)
        spy_warn("meta: the server's max_allowed_packet is %llu bytes; manifests near the 4 MiB "
                 "limit need about 9 MiB",
                 (unsigned long long)limit);
}

int meta_schema_migrate(struct meta_conn *c, struct meta_sql *q)
{
    if (!valid_db_name(c->cfg->database)) {
        spy_error("meta: bad database name '%s'", c->cfg->database ? c->cfg->database : "");
        return SPY_EINVAL;
    }
    if (use_database(c, q) != SPY_OK || lock_migrations(c, q, true) != SPY_OK)
        return SPY_EIO;
    uint64_t version = 0;
    int rc = current_version(c, q, &version);
    if (rc == SPY_OK && version > (uint64_t)MIGRATION_COUNT) {
        spy_error("meta: database '%s' has schema version %llu, newer than this build's %d",
                  c->cfg->database, (unsigned long long)version, MIGRATION_COUNT);
        rc = SPY_EINVAL;
    }
    if (rc == SPY_OK)
        rc = apply(c, q, version);
    if (lock_migrations(c, q, false) != SPY_OK && rc == SPY_OK)
        rc = SPY_EIO;
    if (rc == SPY_OK)
        check_packet_limit(c, q);
    return rc;
}
