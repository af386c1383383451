/* state.h - the chunkmaster's in-memory view of the cluster: chunkservers,
 * their groups, the health state machine and the route table.
 *
 * Pure: no I/O, no clock, no locks. Time is the caller's monotonic clock in
 * milliseconds, passed to every call that needs it, so tests drive the state
 * machine without sleeping. A server's state is a function of its last report,
 * its operator flags and 'now':
 *
 *   INIT      declared by initserver, never reported       Status 0 (INIT)
 *   RW        reported within rw_timeout, writable          Status 1 (RW)
 *   READONLY  reporting, but the server says ReadOnly       Status 2 (RO)
 *   DRAINING  reporting, operator drains it or its group    Status 2 (RO)
 *   STALE     silent for more than rw_timeout               Status 2 (RO)
 *   DOWN      silent for more than down_timeout             Status 3 (ERR)
 *
 * RW, READONLY and DRAINING count as healthy (reporting in time). A group is
 * writable iff at least min_healthy of its servers are RW and neither the
 * group nor any of its servers is draining. A report brings a STALE or DOWN
 * server straight back.
 *
 * Ownership and threading: one thread (the event loop) owns a spy_state. The
 * struct spy_server pointers it hands out stay valid until the next call that
 * changes the server set (report of a new server, declare, remove, restore). */
#ifndef SPY_CHUNKMASTER_STATE_H
#define SPY_CHUNKMASTER_STATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkmaster/request.h"

enum spy_server_state {
    SPY_STATE_INIT = 0,
    SPY_STATE_RW,
    SPY_STATE_READONLY,
    SPY_STATE_DRAINING,
    SPY_STATE_STALE,
    SPY_STATE_DOWN,
};
#define SPY_STATE_COUNT 6

/* The original's numeric Status values, kept on the wire. */
enum spy_server_status {
    SPY_STATUS_INIT = 0,
    SPY_STATUS_RW = 1,
    SPY_STATUS_RO = 2,
    SPY_STATUS_ERR = 3,
};

/* GlobalStatus: 0, or 8 (the original's "transfer") when the group drains, so
 * a client written for the original also skips the group. */
#define SPY_GLOBAL_STATUS_DRAINING 8

struct spy_health_config {
    int64_t rw_timeout_ms;   /* silence after which a server is STALE (not writable) */
    int64_t down_timeout_ms; /* silence after which it is DOWN; >= rw_timeout_ms */
    int min_healthy;         /* RW servers a group needs to take writes (the registry's -n) */
};

struct spy_server {
    struct spy_report r;             /* identity, group and the last report's metrics */
    int reported;                    /* 0 until the first report (state INIT) */
    int64_t last_report_ms;          /* caller's clock; meaningful when reported */
    int draining;                    /* operator flag: no new writes to this server's group */
    enum spy_server_state announced; /* last state passed to a tick callback */
};

struct spy_state_summary {
    size_t servers;
    size_t by_state[SPY_STATE_COUNT];
    size_t groups;
    size_t groups_writable;
};

struct spy_state;

/* Returns an empty state, or NULL if out of memory. cfg is copied. */
struct spy_state *spy_state_new(const struct spy_health_config *cfg);
void spy_state_free(struct spy_state *st);

/* Applies one report at 'now'. The first report of an unknown (ip, port)
 * registers it in the reported group. Returns SPY_OK (*out points at the
 * entry, *is_new says whether it was just registered), SPY_EEXISTS if the
 * server is registered in another group (nothing changes: a server never
 * silently moves), or SPY_ENOMEM. */
int spy_state_report(struct spy_state *st, const struct spy_report *r, int64_t now_ms,
                     const struct spy_server **out, int *is_new);

/* Declares servers (initserver): new ones start in INIT; one already known in
 * the same group is left as it is. All or nothing: SPY_EEXISTS if any is
 * known in another group (err names it), SPY_ENOMEM; otherwise SPY_OK. */
int spy_state_declare(struct spy_state *st, const struct spy_server_decl *decls, size_t n,
                      char *err, size_t errlen);

/* Sets or clears the operator's draining flag of one server. SPY_ENOTFOUND if
 * the server is unknown. */
int spy_state_set_draining(struct spy_state *st, const struct spy_server_key *key, int draining);

/* Sets or clears the draining flag of a group. SPY_ENOTFOUND if no server is
 * in that group (a group exists through its servers). */
int spy_state_set_group_draining(struct spy_state *st, uint32_t group_id, int draining);

/* Forgets a server. Only a DOWN or INIT server is removed unless force is set:
 * SPY_EBUSY otherwise, SPY_ENOTFOUND if unknown. If it reports again later it
 * registers again. */
int spy_state_remove(struct spy_state *st, const struct spy_server_key *key, int force,
                     int64_t now_ms);

/* Puts back a server loaded from the database (its flags and last report
 * time as given). Replaces an entry with the same identity. SPY_OK/ENOMEM. */
int spy_state_restore_server(struct spy_state *st, const struct spy_server *s);

/* Puts back a group flag loaded from the database. SPY_OK/ENOMEM. */
int spy_state_restore_group(struct spy_state *st, uint32_t group_id, int draining);

/* Lookups. NULL if unknown. */
const struct spy_server *spy_state_find(const struct spy_state *st,
                                        const struct spy_server_key *key);

/* The servers, ordered by group id, then ip text, then port; i < count. */
size_t spy_state_count(const struct spy_state *st);
const struct spy_server *spy_state_at(const struct spy_state *st, size_t i);

enum spy_server_state spy_state_of(const struct spy_state *st, const struct spy_server *s,
                                   int64_t now_ms);
int spy_state_group_draining(const struct spy_state *st, uint32_t group_id);
int spy_state_group_writable(const struct spy_state *st, uint32_t group_id, int64_t now_ms);
void spy_state_summarize(const struct spy_state *st, int64_t now_ms, struct spy_state_summary *out);

/* "INIT", "RW", ... and the original's Status number for a state. */
const char *spy_state_name(enum spy_server_state s);
int spy_state_status_code(enum spy_server_state s);

/* Calls changed(arg, server, old, new) for every server whose state differs
 * from the one last announced (new servers are announced from INIT), and
 * remembers the new one. Used for transition log lines. */
typedef void (*spy_state_change_cb)(void *arg, const struct spy_server *s,
                                    enum spy_server_state old_state,
                                    enum spy_server_state new_state);
void spy_state_tick(struct spy_state *st, int64_t now_ms, spy_state_change_cb changed, void *arg);

/* JSON views (new references, NULL only if out of memory):
 * route: {"<GroupId>":[server, ...], ...} for every group, ascending;
 * group: [server, ...] for one group, NULL if it has no servers;
 * server: one entry (fields in docs/chunkmaster.md). */
json_t *spy_state_route_json(const struct spy_state *st, int64_t now_ms);
json_t *spy_state_group_json(const struct spy_state *st, uint32_t group_id, int64_t now_ms);
json_t *spy_state_server_json(const struct spy_state *st, const struct spy_server *s,
                              int64_t now_ms);

#endif
