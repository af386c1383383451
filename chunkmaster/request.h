/* request.h - the JSON bodies the chunkmaster accepts: parsing and validation.
 *
 * Every body is one JSON object with an exact field set (docs/chunkmaster.md):
 * an unknown field, a duplicate key, a wrong type, a value out of range or a
 * missing required field is rejected with a one-line reason in 'err' (the HTTP
 * layer sends it back with a 400). Nothing here allocates except
 * spy_request_parse_batch_init, and nothing logs: the caller decides whether a
 * bad request is worth a log line. Pure functions, safe from any thread. */
#ifndef SPY_CHUNKMASTER_REQUEST_H
#define SPY_CHUNKMASTER_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#define SPY_IP_TEXT_MAX  64   /* canonical IPv4/IPv6 text; VARCHAR(64) in the database */
#define SPY_DATA_DIR_MAX 1024 /* longest DataDir accepted in a report, NUL included */
#define SPY_VERSION_MAX  64   /* longest Version accepted in a report, NUL included */
#define SPY_GROUP_ID_MAX 65535
#define SPY_BATCH_MAX    1024 /* servers in one batchinitserver body */

/* A chunkserver's identity: (ip, port); ip is canonical (inet_ntop of the
 * parsed address), so "::0:1" and "::1" are the same server. */
struct spy_server_key {
    char ip[SPY_IP_TEXT_MAX];
    int port;
};

/* One POST /v1/chunkserver/reportinfo body. Identity and group are required;
 * every metric is optional (0, "" or false when absent). */
struct spy_report {
    uint32_t group_id;
    struct spy_server_key key;
    int read_only; /* the server itself refuses writes (damaged chunk, fsync error) */
    uint64_t total_free_space;
    uint64_t max_free_space; /* largest object that still fits */
    uint64_t used_space;
    uint64_t garbage_space;
    uint64_t objects;
    uint64_t pending_writes;
    uint64_t writing_count;
    uint64_t reading_count;
    uint64_t total_chunks;
    uint64_t damaged_chunks;
    uint64_t connections_count;
    char data_dir[SPY_DATA_DIR_MAX];
    char version[SPY_VERSION_MAX];
};

/* A server declared by an operator (initserver): group and identity only. */
struct spy_server_decl {
    uint32_t group_id;
    struct spy_server_key key;
};

/* Each parser returns SPY_OK and fills *out, or SPY_EINVAL with the reason in
 * err (e.g. "unknown field 'Foo'", "field 'Port' must be 1..65535"); *out is
 * then unspecified. body need not be NUL-terminated. */

/* {"GroupId":1,"Ip":"..","Port":8001,"ReadOnly":false,...} (see struct spy_report) */
int spy_request_parse_report(const char *body, size_t len, struct spy_report *out, char *err,
                             size_t errlen);

/* {"GroupId":1,"Ip":"127.0.0.1","Port":8001} */
int spy_request_parse_init(const char *body, size_t len, struct spy_server_decl *out, char *err,
                           size_t errlen);

/* [{"GroupId":..,"Ip":..,"Port":..}, ...], 1..SPY_BATCH_MAX entries, no
 * identity twice. On SPY_OK *out is a malloc'd array of *n entries that the
 * caller frees; on error nothing is allocated. */
int spy_request_parse_batch_init(const char *body, size_t len, struct spy_server_decl **out,
                                 size_t *n, char *err, size_t errlen);

/* {"Ip":"..","Port":8001,"Draining":true} */
int spy_request_parse_server_drain(const char *body, size_t len, struct spy_server_key *key,
                                   int *draining, char *err, size_t errlen);

/* {"GroupId":1,"Draining":true} */
int spy_request_parse_group_drain(const char *body, size_t len, uint32_t *group_id, int *draining,
                                  char *err, size_t errlen);

/* {"Ip":"..","Port":8001} or with "Force":true (remove even if not down) */
int spy_request_parse_remove(const char *body, size_t len, struct spy_server_key *key, int *force,
                             char *err, size_t errlen);

/* Canonicalises an IPv4 or IPv6 literal into out (at least SPY_IP_TEXT_MAX
 * bytes). Refuses names and the unspecified addresses 0.0.0.0 and ::, which
 * cannot identify a server. Returns SPY_OK or SPY_EINVAL. */
int spy_request_canonical_ip(const char *text, char *out, size_t outlen);

#endif
