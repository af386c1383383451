/* log.h - process-wide logging for the speedy daemons and tools.
 *
 * One line per call, written with a single write(2) so lines from several
 * threads never interleave. The destination and level are set once at start
 * (part of the daemon's config); spy_log itself is thread-safe. */
#ifndef SPY_LOG_H
#define SPY_LOG_H

enum spy_log_level { SPY_LOG_DEBUG = 0, SPY_LOG_INFO, SPY_LOG_WARN, SPY_LOG_ERROR };

/* Sends log lines to 'path' (appending), or to stderr when path is NULL or
 * empty. Returns 0, or -1 with errno set if the file cannot be opened. */
int spy_log_open(const char *path);

/* Lines below 'level' are dropped. Default: SPY_LOG_INFO. */
void spy_log_set_level(enum spy_log_level level);

/* Lets a tool tag its lines (default "speedy"). 'name' must outlive logging. */
void spy_log_set_name(const char *name);

void spy_log(enum spy_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define spy_debug(...) spy_log(SPY_LOG_DEBUG, __VA_ARGS__)
#define spy_info(...)  spy_log(SPY_LOG_INFO, __VA_ARGS__)
#define spy_warn(...)  spy_log(SPY_LOG_WARN, __VA_ARGS__)
#define spy_error(...) spy_log(SPY_LOG_ERROR, __VA_ARGS__)

#endif
