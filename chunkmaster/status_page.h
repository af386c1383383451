/* status_page.h - the chunkmaster's status page (GET /): one plain HTML
 * table of groups and servers (state, address, free space, chunks, last
 * report age) that refreshes itself. No scripts, no external resources, so
 * it works offline and in a text browser. Every reported string is escaped. */
#ifndef SPY_CHUNKMASTER_STATUS_PAGE_H
#define SPY_CHUNKMASTER_STATUS_PAGE_H

#include <stddef.h>
#include <stdint.h>

#include "chunkmaster/state.h"

struct spy_status_page_info {
    int refresh_s;           /* the page reloads itself this often */
    int64_t uptime_ms;       /* the master's */
    int db_ok;               /* last database statement succeeded */
    uint64_t pending_writes; /* database writes not yet done */
    int min_healthy;         /* RW servers a group needs (-n), shown in the legend */
};

/* Renders the page into a malloc'd buffer (*out, *len; caller frees).
 * SPY_OK or SPY_ENOMEM. */
int spy_status_page_render(const struct spy_state *st, int64_t now_ms,
                           const struct spy_status_page_info *info, char **out, size_t *len);

/* Writes text with &, <, >, " and ' escaped into buf (NUL-terminated, cut to
 * fit cap). Exposed for tests. */
void spy_status_page_escape(const char *text, char *buf, size_t cap);

/* "0 B", "512 KiB", "1.5 GiB": one decimal below 10 units. Exposed for tests. */
void spy_status_page_bytes(uint64_t bytes, char *buf, size_t cap);

#endif
