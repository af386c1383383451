/* meta_db.c - one MySQL connection of the metadata layer: connecting with
 * timeouts and back-off, building SQL text safely, running statements and
 * classifying their errors for the runner (meta_pool.c). */
#include "registry/meta_internal.h"

#include <errmsg.h>
#include <inttypes.h>
#include <mysqld_error.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/status.h"

/* The session every connection gets: strict so a value that does not fit is
 * an error, not a silent truncation; no NO_BACKSLASH_ESCAPES, which our
 * escaping relies on; READ COMMITTED (docs/metadata.md, "Transactions"). */
#define SESSION_SQL_MODE "STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION"

uint64_t meta_now_ms(void)
{
    return (uint64_t)spy_clock_ms();
}

/* session_setup: the per-connection settings (see SESSION_SQL_MODE). */
static int session_setup(struct meta_conn *c)
{
    char sql[256];
    unsigned lock_wait = c->cfg->io_timeout_s / 2 > 0 ? c->cfg->io_timeout_s / 2 : 1;
    snprintf(sql, sizeof(sql), "SET SESSION sql_mode = '%s', SESSION innodb_lock_wait_timeout = %u",
             SESSION_SQL_MODE, lock_wait);
    if (mysql_query(c->my, sql) != 0 ||
        mysql_query(c->my, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED") != 0) {
        spy_error("meta: session setup failed: %s", mysql_error(c->my));
        return SPY_EIO;
    }
    return SPY_OK;
}

/* note_connect_failure: schedules the next attempt (doubling back-off) and
 * logs the first failure of an outage at ERROR, the rest at DEBUG. */
static void note_connect_failure(struct meta_conn *c, const char *why)
{
    const struct spy_meta_config *cfg = c->cfg;
    c->backoff_ms = c->backoff_ms == 0 ? cfg->backoff_min_ms : c->backoff_ms * 2;
    if (c->backoff_ms > cfg->backoff_max_ms)
        c->backoff_ms = cfg->backoff_max_ms;
    c->retry_at_ms = meta_now_ms() + c->backoff_ms;
    __atomic_add_fetch(&c->ctr->connect_failures, 1, __ATOMIC_RELAXED);
    bool was_down = __atomic_exchange_n(&c->ctr->down, 1, __ATOMIC_RELAXED) != 0;
    spy_log(was_down ? SPY_LOG_DEBUG : SPY_LOG_ERROR,
            "meta: cannot connect to MySQL %s:%d as '%s': %s (retrying every <= %u ms)", cfg->host,
            cfg->port, cfg->user, why, (unsigned)cfg->backoff_max_ms);
}

int meta_conn_open(struct meta_conn *c, bool select_db)
{
    if (c->my != NULL)
        return SPY_OK;
    /* back-off, unless another worker got through since (the server is back) */
    if (meta_now_ms() < c->retry_at_ms && __atomic_load_n(&c->ctr->down, __ATOMIC_RELAXED) != 0)
        return SPY_EIO;
    const struct spy_meta_config *cfg = c->cfg;
    MYSQL *my = mysql_init(NULL);
    if (my == NULL) {
        spy_error("meta: mysql_init failed (out of memory)");
        return SPY_ENOMEM;
    }
    unsigned connect_timeout = cfg->connect_timeout_s, io_timeout = cfg->io_timeout_s;
    mysql_options(my, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
    mysql_options(my, MYSQL_OPT_READ_TIMEOUT, &io_timeout);
    mysql_options(my, MYSQL_OPT_WRITE_TIMEOUT, &io_timeout);
    mysql_options(my, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (mysql_real_connect(my, cfg->host, cfg->user, cfg->password,
                           select_db ? cfg->database : NULL, (unsigned)cfg->port, NULL,
                           0) == NULL) {
        note_connect_failure(c, mysql_error(my));
        mysql_close(my);
        return SPY_EIO;
    }
    c->my = my;
    if (session_setup(c) != SPY_OK) {
        meta_conn_close(c);
        note_connect_failure(c, "session setup failed");
        return SPY_EIO;
    }
    c->backoff_ms = 0;
    c->retry_at_ms = 0;
    __atomic_add_fetch(&c->ctr->connects, 1, __ATOMIC_RELAXED);
    if (__atomic_exchange_n(&c->ctr->down, 0, __ATOMIC_RELAXED) != 0)
        spy_info("meta: connected to MySQL %s:%d again", cfg->host, cfg->port);
    return SPY_OK;
}

void meta_conn_close(struct meta_conn *c)
{
    if (c->my != NULL) {
        mysql_close(c->my);
        c->my = NULL;
    }
    c->in_txn = false;
}

/* ---- SQL text ---- */

/* reserve: room for n more bytes plus a NUL; sets the sticky oom flag. */
static bool reserve(struct meta_sql *q, size_t n)
{
    if (q->oom)
        return false;
    if (q->len + n + 1 <= q->cap)
        return true;
    size_t cap = q->cap > 0 ? q->cap : 1024;
    while (cap < q->len + n + 1)
        cap *= 2;
    char *buf = realloc(q->buf, cap);
    if (buf == NULL) {
        q->oom = true;
        return false;
    }
    q->buf = buf;
    q->cap = cap;
    return true;
}

void meta_sql_reset(struct meta_sql *q)
{
    q->len = 0;
    q->oom = false;
    if (q->buf != NULL)
        q->buf[0] = '\0';
}

void meta_sql_free(struct meta_sql *q)
{
    free(q->buf);
    memset(q, 0, sizeof(*q));
}

void meta_sql_add(struct meta_sql *q, const char *text)
{
    size_t n = strlen(text);
    if (!reserve(q, n))
        return;
    memcpy(q->buf + q->len, text, n + 1);
    q->len += n;
}

void meta_sql_addf(struct meta_sql *q, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(q, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(q->buf + q->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    q->len += (size_t)n;
}

/* escape_into: the bytes of data with MySQL's backslash escapes, between
 * single quotes. Byte-wise escaping is safe for utf8mb4 (and binary): no
 * multibyte sequence contains a quote or backslash byte. */
static void escape_into(struct meta_sql *q, const unsigned char *data, size_t n)
{
    if (!reserve(q, 2 * n + 2))
        return;
    char *out = q->buf + q->len;
    *out++ = '\'';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = data[i];
        char esc = ch == 0                                 ? '0'
                   : ch == '\n'                            ? 'n'
                   : ch == '\r'                            ? 'r'
                   : ch == 0x1a                            ? 'Z'
                   : ch == '\\' || ch == '\'' || ch == '"' ? (char)ch
                                                           : 0;
        if (esc != 0)
            *out++ = '\\';
        *out++ = esc != 0 ? esc : (char)ch;
    }
    *out++ = '\'';
    *out = '\0';
    q->len = (size_t)(out - q->buf);
}

void meta_sql_str(struct meta_sql *q, const char *s)
{
    escape_into(q, (const unsigned char *)s, strlen(s));
}

void meta_sql_bin(struct meta_sql *q, const void *data, size_t n)
{
    meta_sql_add(q, "_binary");
    escape_into(q, data, n);
}

void meta_sql_u64(struct meta_sql *q, uint64_t v)
{
    meta_sql_addf(q, "%" PRIu64, v);
}

/* ---- statements ---- */

/* connection_lost: client errors after which this connection is useless. */
static bool connection_lost(unsigned err)
{
    return err == CR_SERVER_GONE_ERROR || err == CR_SERVER_LOST || err == CR_CONNECTION_ERROR ||
           err == CR_CONN_HOST_ERROR || err == CR_COMMANDS_OUT_OF_SYNC ||
           err == ER_SERVER_SHUTDOWN || err == 1927 /* ER_CONNECTION_KILLED (MariaDB) */;
}

/* classify: maps the connection's last error to a status, logging it once. */
static int classify(struct meta_conn *c, const struct meta_sql *q)
{
    unsigned err = mysql_errno(c->my);
    if (err == ER_LOCK_DEADLOCK || err == ER_LOCK_WAIT_TIMEOUT) {
        spy_debug("meta[%u]: %s, will retry: %.120s", c->id, mysql_error(c->my), q->buf);
        return META_ERETRY;
    }
    if (connection_lost(err)) {
        spy_warn("meta[%u]: connection lost (%u: %s)", c->id, err, mysql_error(c->my));
        meta_conn_close(c);
        return META_ELOST;
    }
    spy_error("meta[%u]: statement failed (%u: %s): %.200s", c->id, err, mysql_error(c->my),
              q->buf);
    return SPY_EIO;
}

/* exec_raw: runs q (then resets it), whatever it is. */
static int exec_raw(struct meta_conn *c, struct meta_sql *q)
{
    int rc = SPY_OK;
    if (q->oom) {
        spy_error("meta: out of memory building a statement");
        rc = SPY_ENOMEM;
    } else if (c->my == NULL) {
        rc = META_ELOST;
    } else if (mysql_real_query(c->my, q->buf, q->len) != 0) {
        rc = classify(c, q);
    }
    meta_sql_reset(q);
    return rc;
}

/* meta_exec: outside a transaction a statement commits by itself, so once it
 * is sent a lost connection leaves its outcome unknown, as for a COMMIT. */
int meta_exec(struct meta_conn *c, struct meta_sql *q)
{
    if (!c->in_txn)
        c->commit_sent = true;
    return exec_raw(c, q);
}

int meta_select(struct meta_conn *c, struct meta_sql *q, MYSQL_RES **res)
{
    *res = NULL;
    if (q->oom || c->my == NULL)
        return exec_raw(c, q);
    if (mysql_real_query(c->my, q->buf, q->len) != 0) {
        int rc = classify(c, q);
        meta_sql_reset(q);
        return rc;
    }
    *res = mysql_store_result(c->my);
    int rc = *res != NULL ? SPY_OK : classify(c, q);
    meta_sql_reset(q);
    return rc;
}

int meta_select_u64(struct meta_conn *c, struct meta_sql *q, uint64_t *out, bool *found)
{
    MYSQL_RES *res;
    int rc = meta_select(c, q, &res);
    if (rc != SPY_OK)
        return rc;
    MYSQL_ROW row = mysql_fetch_row(res);
    *found = row != NULL;
    *out = row != NULL ? meta_col_u64(row[0]) : 0;
    mysql_free_result(res);
    return SPY_OK;
}

uint64_t meta_affected(struct meta_conn *c)
{
    my_ulonglong n = c->my != NULL ? mysql_affected_rows(c->my) : 0;
    return n == (my_ulonglong)-1 ? 0 : (uint64_t)n;
}

uint64_t meta_insert_id(struct meta_conn *c)
{
    return c->my != NULL ? (uint64_t)mysql_insert_id(c->my) : 0;
}

uint64_t meta_col_u64(const char *col)
{
    return col != NULL ? strtoull(col, NULL, 10) : 0;
}

/* run_fixed: a constant statement through the same error handling. */
static int run_fixed(struct meta_conn *c, const char *sql)
{
    struct meta_sql q = {0};
    meta_sql_add(&q, sql);
    int rc = exec_raw(c, &q);
    meta_sql_free(&q);
    return rc;
}

/* meta_begin: what counts from here is whether this transaction commits;
 * autocommitted statements before it (creating the repository) are
 * idempotent preparation. */
int meta_begin(struct meta_conn *c)
{
    int rc = run_fixed(c, "START TRANSACTION");
    c->in_txn = rc == SPY_OK;
    c->commit_sent = false;
    return rc;
}

/* meta_commit: from here on a lost connection leaves the outcome unknown,
 * which is what commit_sent tells the runner. */
int meta_commit(struct meta_conn *c)
{
    c->commit_sent = true;
    int rc = run_fixed(c, "COMMIT");
    /* a COMMIT refused by a live server leaves the transaction to roll back */
    c->in_txn = rc != SPY_OK && c->my != NULL;
    return rc;
}

void meta_rollback(struct meta_conn *c)
{
    if (c->in_txn && c->my != NULL && mysql_query(c->my, "ROLLBACK") != 0) {
        spy_warn("meta[%u]: rollback failed (%s); dropping the connection", c->id,
                 mysql_error(c->my));
        meta_conn_close(c);
    }
    c->in_txn = false;
}
