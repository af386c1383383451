/* daemon.h - the chunkmaster's event loop: the listening socket, h2o's
 * context, SIGINT/SIGTERM, and the once-a-second health tick that logs every
 * server state change.
 *
 * Threading: spy_daemon_block_signals must run before any other thread is
 * created (threads inherit the mask, so only the loop sees the signals,
 * through a signalfd). spy_daemon_run then owns the calling thread. */
#ifndef SPY_CHUNKMASTER_DAEMON_H
#define SPY_CHUNKMASTER_DAEMON_H

#include "chunkmaster/master.h"

/* Blocks SIGINT and SIGTERM in the calling thread and ignores SIGPIPE. */
void spy_daemon_block_signals(void);

/* Listens on host:port (IPv4, IPv6 or a name), serves m until SIGINT or
 * SIGTERM, then lets fid requests in flight finish (at most 5 s), stops the
 * worker (its queued writes are flushed once more) and returns. SPY_OK after
 * a signal, SPY_EIO if the address cannot be bound or signals cannot be
 * watched (reason logged). m->worker is stopped and cleared in every case. */
int spy_daemon_run(struct spy_master *m, const char *host, int port);

#endif
