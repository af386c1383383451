/* route.h - the chunkmaster's route table as the blobstore uses it: parsed
 * once into an immutable, reference-counted snapshot that every loop reads
 * without locks, plus the two decisions made from it: which group a piece
 * goes to, and in which order a piece's replicas are read.
 *
 * The table is GET /v1/chunkmaster/route (docs/chunkmaster.md):
 *   {"<GroupId>": [{"GroupId":1,"Ip":"127.0.0.1","Port":8001,"Status":1,
 *                   "GlobalStatus":0,"GroupWritable":true,
 *                   "TotalFreeSpace":..,"MaxFreeSpace":..,...}, ...], ...}
 * Required per server: Ip (a numeric IPv4 or IPv6 address: the loops never
 * resolve names), Port (1..65535), Status (0 INIT, 1 RW, 2 RO, 3 ERR),
 * TotalFreeSpace and MaxFreeSpace (bytes, >= 0). Optional: GroupId (must
 * match the key), GlobalStatus (0 unless the group drains), GroupWritable
 * (the master's own verdict; taken as true when absent, as from the original
 * master). Other fields are ignored. Anything else (not an object, a bad
 * key, a missing or mistyped field, a server listed twice in a group, more
 * than SPY_BLOBROUTE_MAX_SERVERS in a group) makes the whole table invalid:
 * the caller keeps its previous snapshot.
 *
 * Pure apart from malloc: no I/O, no logging, no clock (the blacklist check
 * is a callback). A snapshot is never modified after parsing, so any thread
 * may read it while it holds a reference. */
#ifndef SPY_BLOB_ROUTE_H
#define SPY_BLOB_ROUTE_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SPY_BLOBROUTE_MAX_SERVERS 16 /* servers per group */
#define SPY_BLOBROUTE_NAME_MAX    80 /* "[v6 address]:port" and its NUL */
#define SPY_BLOBROUTE_TOPK_MAX    64 /* cap on the "best few" groups a pick chooses among */

enum spy_blobroute_status {
    SPY_BLOBROUTE_INIT = 0, /* declared, never reported */
    SPY_BLOBROUTE_RW = 1,   /* reporting and writable */
    SPY_BLOBROUTE_RO = 2,   /* reporting, read-only (or stale, or draining) */
    SPY_BLOBROUTE_ERR = 3,  /* down */
};

struct spy_blobroute_server {
    char name[SPY_BLOBROUTE_NAME_MAX]; /* "127.0.0.1:8001", "[::1]:8001": blacklist and logs */
    struct sockaddr_storage addr;      /* ready for connect(2) */
    socklen_t addrlen;
    int status;          /* enum spy_blobroute_status (other values: treated as ERR) */
    uint64_t total_free; /* TotalFreeSpace */
    uint64_t max_free;   /* MaxFreeSpace: the largest object that still fits */
};

struct spy_blobroute_group {
    uint32_t id;
    int writable; /* GroupWritable (AND over its servers), and GlobalStatus 0 everywhere */
    size_t nservers;
    struct spy_blobroute_server *servers;
};

struct spy_blobroute {
    atomic_uint refs;
    size_t ngroups;
    struct spy_blobroute_group *groups; /* ascending id */
};

/* Parses a route table (len bytes, not necessarily NUL-terminated). Returns
 * SPY_OK and *out (one reference held by the caller), SPY_EINVAL with a
 * one-line reason in err, or SPY_ENOMEM. */
int spy_blobroute_parse(const char *json, size_t len, struct spy_blobroute **out, char *err,
                        size_t errlen);

/* Adds a reference (any thread). Returns rt. */
struct spy_blobroute *spy_blobroute_ref(struct spy_blobroute *rt);

/* Drops a reference; the last one frees the snapshot. NULL is ignored. */
void spy_blobroute_unref(struct spy_blobroute *rt);

/* The group with this id, or NULL. O(log groups). */
const struct spy_blobroute_group *spy_blobroute_group(const struct spy_blobroute *rt, uint32_t id);

/* 1 if the server is blocked (blacklisted) now; supplied by the caller. */
typedef int (*spy_blobroute_blocked_fn)(void *arg, const struct spy_blobroute_server *s);

/* What a piece needs from a group. */
struct spy_blobroute_want {
    int min_writable;        /* -n: replicas (RW, not blocked) a group must have */
    uint64_t need_bytes;     /* every replica's MaxFreeSpace must be >= this */
    const uint32_t *exclude; /* groups not to use (tried already for this piece) */
    size_t nexclude;
    spy_blobroute_blocked_fn blocked; /* NULL: nothing is blocked */
    void *blocked_arg;
};

/* The group a piece goes to, and the replicas it is written to. */
struct spy_blobroute_pick {
    const struct spy_blobroute_group *group;
    size_t nreplicas;
    const struct spy_blobroute_server *replicas[SPY_BLOBROUTE_MAX_SERVERS];
};

/* Picks a group for a piece. Eligible: the master says writable; not
 * excluded; its replicas (servers with Status RW that are not blocked) number
 * at least min_writable and each has room for need_bytes. Among the eligible,
 * the K with most free space (the smallest TotalFreeSpace of their replicas)
 * are the candidates, K = eligible/10 + 3 (at most SPY_BLOBROUTE_TOPK_MAX),
 * and rnd (any random number) picks one of them: new pieces spread over the
 * emptiest groups instead of piling onto the single emptiest one. A piece is
 * then written to every replica. Returns SPY_OK and *out, or SPY_ENOSPC when
 * no group is eligible (*out->group is then NULL). */
int spy_blobroute_choose(const struct spy_blobroute *rt, const struct spy_blobroute_want *want,
                         uint64_t rnd, struct spy_blobroute_pick *out);

/* The order in which to read a piece (fid) from group g: first the servers
 * that report (RW or RO) and are not blocked, then the others that are not
 * blocked (INIT, ERR: they may still hold it), then the blocked ones, as a
 * last resort. Within each tier the order rotates with the fid, so reads of
 * consecutive pieces spread over the replicas deterministically. Fills out
 * (room for SPY_BLOBROUTE_MAX_SERVERS) and returns the count (g->nservers). */
size_t spy_blobroute_read_order(const struct spy_blobroute_group *g, uint64_t fid,
                                spy_blobroute_blocked_fn blocked, void *blocked_arg,
                                const struct spy_blobroute_server **out);

#endif
