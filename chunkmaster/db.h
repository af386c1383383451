/* db.h - the chunkmaster's MySQL/MariaDB store: connection, schema
 * migrations, and the few statements the master needs.
 *
 * One struct spy_db is one connection with connect, read and write timeouts,
 * used by one thread at a time. A statement that finds the connection gone
 * (server restarted, timeout) reconnects once and retries; if that fails too
 * the call returns SPY_EIO and the next call tries again. Errors are logged
 * here, once, with the server's message.
 *
 * Tables (created and migrated by spy_db_open, see docs/chunkmaster.md):
 *   spy_schema_version  one row: the applied migration number
 *   gen_fid             one row: the last fid handed out (the original's table)
 *   spy_chunkserver     one row per server: identity, group, flags, last report
 *   spy_chunkgroup      one row per group with an operator flag */
#ifndef SPY_CHUNKMASTER_DB_H
#define SPY_CHUNKMASTER_DB_H

#include <stdint.h>

#include "chunkmaster/request.h"

struct spy_db_config {
    const char *host;
    int port;
    const char *user;
    const char *password;
    const char *database; /* created if missing */
    unsigned connect_timeout_s;
    unsigned io_timeout_s; /* read and write timeout of each statement */
};

/* A server as stored: the last report (or the declaration) plus flags. */
struct spy_db_server_row {
    struct spy_report r;
    int reported;
    int draining;
    int64_t last_report_unix_ms; /* wall clock of the last report; 0 if never */
};

struct spy_db;

/* Connects, creates the database if needed and applies any migration not yet
 * applied (under a named lock, so masters starting together do not race).
 * Returns SPY_OK with *out set, SPY_EIO (unreachable, refused, bad
 * credentials: reason logged), or SPY_EINVAL if the schema is newer than this
 * binary knows. cfg's strings must outlive the connection. */
int spy_db_open(const struct spy_db_config *cfg, struct spy_db **out);
void spy_db_close(struct spy_db *db);

/* The schema version this binary migrates to, and the one applied. */
int spy_db_schema_latest(void);
int spy_db_schema_version(struct spy_db *db, int *version);

/* Reserves 'count' fids with one atomic statement
 * (UPDATE gen_fid SET fid = LAST_INSERT_ID(fid + count)): *first is the first
 * of [first, first + count). Fids start at 1; no two calls, from any number
 * of masters, ever get overlapping ranges, and a range is never handed out
 * twice even across restarts (a retry after a lost connection may skip one).
 * SPY_OK, SPY_EINVAL (count 0) or SPY_EIO. */
int spy_db_alloc_fids(struct spy_db *db, uint64_t count, uint64_t *first);

/* Reads every stored server and group flag, calling the callbacks once per
 * row (in no particular order). SPY_OK or SPY_EIO. */
typedef void (*spy_db_server_cb)(void *arg, const struct spy_db_server_row *row);
typedef void (*spy_db_group_cb)(void *arg, uint32_t group_id, int draining);
int spy_db_load(struct spy_db *db, spy_db_server_cb on_server, spy_db_group_cb on_group, void *arg);

/* A transaction around several writes. Inside one, a lost connection is not
 * retried (the earlier statements died with it): the call fails and the
 * caller rolls back and starts over. SPY_OK or SPY_EIO. */
int spy_db_begin(struct spy_db *db);
int spy_db_commit(struct spy_db *db);
void spy_db_rollback(struct spy_db *db);

/* Inserts or replaces one server row. SPY_OK or SPY_EIO. */
int spy_db_save_server(struct spy_db *db, const struct spy_db_server_row *row);

/* Deletes one server row (absent is fine). SPY_OK or SPY_EIO. */
int spy_db_delete_server(struct spy_db *db, const struct spy_server_key *key);

/* Inserts or replaces one group flag. SPY_OK or SPY_EIO. */
int spy_db_save_group(struct spy_db *db, uint32_t group_id, int draining);

#endif
