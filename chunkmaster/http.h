/* http.h - the chunkmaster's HTTP API on h2o's ordinary request handlers
 * (every route and body is in docs/chunkmaster.md).
 *
 * All handlers run on the event loop thread and answer from memory, except
 * GET /v1/chunkmaster/fid, which hands a job to the worker and answers when
 * the worker's reply message comes back on the loop (if the request is gone
 * by then, the reply is dropped). Errors are JSON {"Error":"reason"} with a
 * 4xx/5xx status and a Content-Length. */
#ifndef SPY_CHUNKMASTER_HTTP_H
#define SPY_CHUNKMASTER_HTTP_H

#include <h2o.h>

#include "chunkmaster/master.h"

/* Registers one handler for every path of 'host'; m must outlive the config. */
void spy_http_register(h2o_hostconf_t *host, struct spy_master *m);

/* Registers the fid reply receiver on the context's queue; call once after
 * h2o_context_init and before the first request. */
void spy_http_attach(struct spy_master *m, h2o_context_t *ctx);

/* Queues the database row of one server (its current state) for writing;
 * used after every change of a server. */
void spy_http_persist_server(struct spy_master *m, const struct spy_server *s);

#endif
