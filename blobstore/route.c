/* route.c - parsing the chunkmaster's route table, picking groups, ordering
 * replicas (see route.h). */
#include "blobstore/route.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"

/* fail: formats the reason into err and returns SPY_EINVAL. */
static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return SPY_EINVAL;
}

/* free_groups: frees the group array and each group's servers. */
static void free_groups(struct spy_blobroute_group *groups, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(groups[i].servers);
    free(groups);
}

/* parse_group_id: a group key is a decimal 1..65535 without sign or spaces. */
static int parse_group_id(const char *key, uint32_t *id)
{
    if (key[0] == '\0' || strlen(key) > 5)
        return -1;
    uint32_t v = 0;
    for (const char *p = key; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (uint32_t)(*p - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *id = v;
    return 0;
}

/* get_int: a required (or, with optional set, defaulted) integer field in
 * [min, max]. */
static int get_int(json_t *obj, const char *field, int optional, json_int_t def, json_int_t min,
                   json_int_t max, json_int_t *out)
{
    json_t *v = json_object_get(obj, field);
    if (v == NULL && optional) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return -1;
    json_int_t x = json_integer_value(v);
    if (x < min || x > max)
        return -1;
    *out = x;
    return 0;
}

/* set_address: fills the server's sockaddr and name from a numeric address. */
static int set_address(struct spy_blobroute_server *s, const char *ip, int port)
{
    memset(&s->addr, 0, sizeof(s->addr));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&s->addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&s->addr;
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        s->addrlen = sizeof(*v4);
        snprintf(s->name, sizeof(s->name), "%s:%d", ip, port);
        return 0;
    }
    if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        s->addrlen = sizeof(*v6);
        char text[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
        snprintf(s->name, sizeof(s->name), "[%s]:%d", text, port);
        return 0;
    }
    return -1;
}

/* parse_server: one entry of a group's array. */
static int parse_server(json_t *e, uint32_t group_id, struct spy_blobroute_server *s,
                        int *group_writable, char *err, size_t errlen)
{
    if (!json_is_object(e))
        return fail(err, errlen, "group %u: a server entry is not an object", group_id);
    json_int_t port, status, gid, global, total_free, max_free;
    const char *ip = json_string_value(json_object_get(e, "Ip"));
    if (ip == NULL)
        return fail(err, errlen, "group %u: a server has no string field 'Ip'", group_id);
    if (get_int(e, "Port", 0, 0, 1, 65535, &port) != 0)
        return fail(err, errlen, "group %u, %s: 'Port' missing or not 1..65535", group_id, ip);
    if (set_address(s, ip, (int)port) != 0)
        return fail(err, errlen, "group %u: 'Ip' %s is not a numeric address", group_id, ip);
    if (get_int(e, "Status", 0, 0, 0, 255, &status) != 0)
        return fail(err, errlen, "group %u, %s: 'Status' missing or invalid", group_id, s->name);
    if (get_int(e, "GroupId", 1, group_id, 0, 65535, &gid) != 0 || (uint32_t)gid != group_id)
        return fail(err, errlen, "group %u, %s: 'GroupId' does not match", group_id, s->name);
    if (get_int(e, "GlobalStatus", 1, 0, 0, 255, &global) != 0)
        return fail(err, errlen, "group %u, %s: 'GlobalStatus' invalid", group_id, s->name);
    if (get_int(e, "TotalFreeSpace", 0, 0, 0, INT64_MAX, &total_free) != 0 ||
        get_int(e, "MaxFreeSpace", 0, 0, 0, INT64_MAX, &max_free) != 0)
        return fail(err, errlen, "group %u, %s: 'TotalFreeSpace'/'MaxFreeSpace' missing or invalid",
                    group_id, s->name);
    json_t *w = json_object_get(e, "GroupWritable");
    if (w != NULL && !json_is_boolean(w))
        return fail(err, errlen, "group %u, %s: 'GroupWritable' is not a boolean", group_id,
                    s->name);
    if ((w != NULL && !json_is_true(w)) || global != 0)
        *group_writable = 0;
    s->status = (int)status;
    s->total_free = (uint64_t)total_free;
    s->max_free = (uint64_t)max_free;
    return SPY_OK;
}

/* parse_group: one key and its array into g (servers allocated here). */
static int parse_group(const char *key, json_t *arr, struct spy_blobroute_group *g, char *err,
                       size_t errlen)
{
    if (parse_group_id(key, &g->id) != 0)
        return fail(err, errlen, "group key '%.20s' is not a number 1..65535", key);
    if (!json_is_array(arr))
        return fail(err, errlen, "group %u: not an array", g->id);
    size_t n = json_array_size(arr);
    if (n > SPY_BLOBROUTE_MAX_SERVERS)
        return fail(err, errlen, "group %u: %zu servers, more than %d", g->id, n,
                    SPY_BLOBROUTE_MAX_SERVERS);
    g->servers = calloc(n > 0 ? n : 1, sizeof(*g->servers));
    if (g->servers == NULL)
        return SPY_ENOMEM;
    g->writable = 1;
    for (size_t i = 0; i < n; i++) {
        int rc =
            parse_server(json_array_get(arr, i), g->id, &g->servers[i], &g->writable, err, errlen);
        if (rc != SPY_OK)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(g->servers[j].name, g->servers[i].name) == 0)
                return fail(err, errlen, "group %u: server %s listed twice", g->id,
                            g->servers[i].name);
        g->nservers++;
    }
    return SPY_OK;
}

/* compare_groups: qsort order: ascending group id. */
static int compare_groups(const void *a, const void *b)
{
    uint32_t x = ((const struct spy_blobroute_group *)a)->id;
    uint32_t y = ((const struct spy_blobroute_group *)b)->id;
    return x < y ? -1 : x > y;
}

/* parse_root: every group of the top-level object into rt. */
static int parse_root(json_t *root, struct spy_blobroute *rt, char *err, size_t errlen)
{
    if (!json_is_object(root))
        return fail(err, errlen, "the route table is not a JSON object");
    size_t n = json_object_size(root);
    rt->groups = calloc(n > 0 ? n : 1, sizeof(*rt->groups));
    if (rt->groups == NULL)
        return SPY_ENOMEM;
    const char *key;
    json_t *arr;
    json_object_foreach(root, key, arr)
    {
        int rc = parse_group(key, arr, &rt->groups[rt->ngroups], err, errlen);
        rt->ngroups++; /* counted even on failure, so its servers are freed */
        if (rc != SPY_OK)
            return rc;
    }
    qsort(rt->groups, rt->ngroups, sizeof(*rt->groups), compare_groups);
    for (size_t i = 1; i < rt->ngroups; i++)
        if (rt->groups[i].id == rt->groups[i - 1].id)
            return fail(err, errlen, "group %u listed twice", rt->groups[i].id);
    return SPY_OK;
}

/* spy_blobroute_parse: JSON text to a snapshot, all or nothing. */
int spy_blobroute_parse(const char *json, size_t len, struct spy_blobroute **out, char *err,
                        size_t errlen)
{
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return fail(err, errlen, "not JSON: %s (line %d)", jerr.text, jerr.line);
    struct spy_blobroute *rt = calloc(1, sizeof(*rt));
    int rc = rt == NULL ? SPY_ENOMEM : parse_root(root, rt, err, errlen);
    json_decref(root);
    if (rc != SPY_OK) {
        if (rt != NULL)
            free_groups(rt->groups, rt->ngroups);
        free(rt);
        return rc;
    }
    atomic_init(&rt->refs, 1);
    *out = rt;
    return SPY_OK;
}

/* spy_blobroute_ref: one more holder. */
struct spy_blobroute *spy_blobroute_ref(struct spy_blobroute *rt)
{
    atomic_fetch_add(&rt->refs, 1);
    return rt;
}

/* spy_blobroute_unref: one holder less; the last frees. */
void spy_blobroute_unref(struct spy_blobroute *rt)
{
    if (rt == NULL || atomic_fetch_sub(&rt->refs, 1) != 1)
        return;
    free_groups(rt->groups, rt->ngroups);
    free(rt);
}

/* spy_blobroute_group: binary search over the sorted groups. */
const struct spy_blobroute_group *spy_blobroute_group(const struct spy_blobroute *rt, uint32_t id)
{
    size_t lo = 0, hi = rt->ngroups;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rt->groups[mid].id == id)
            return &rt->groups[mid];
        if (rt->groups[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* is_blocked: the caller's blacklist verdict for s. */
static int is_blocked(const struct spy_blobroute_want *want, const struct spy_blobroute_server *s)
{
    return want->blocked != NULL && want->blocked(want->blocked_arg, s);
}

/* eligible: fills pick with g's writable replicas and returns 1 if g can take
 * the piece; *free_space gets the smallest TotalFreeSpace among them. */
static int eligible(const struct spy_blobroute_group *g, const struct spy_blobroute_want *want,
                    struct spy_blobroute_pick *pick, uint64_t *free_space)
{
    if (!g->writable)
        return 0;
    for (size_t i = 0; i < want->nexclude; i++)
        if (want->exclude[i] == g->id)
            return 0;
    pick->group = g;
    pick->nreplicas = 0;
    *free_space = UINT64_MAX;
    for (size_t i = 0; i < g->nservers; i++) {
        const struct spy_blobroute_server *s = &g->servers[i];
        if (s->status != SPY_BLOBROUTE_RW || is_blocked(want, s))
            continue;
        if (s->max_free < want->need_bytes)
            return 0; /* a replica without room: the piece cannot go to every replica */
        pick->replicas[pick->nreplicas++] = s;
        if (s->total_free < *free_space)
            *free_space = s->total_free;
    }
    int min = want->min_writable > 0 ? want->min_writable : 1;
    return pick->nreplicas >= (size_t)min;
}

/* A candidate in the top-K list. */
struct candidate {
    size_t group_index;
    uint64_t free_space;
};

/* insert_top: keeps top[0..*n) sorted by free space (descending, then group
 * id ascending) and at most k long. */
static void insert_top(struct candidate *top, size_t *n, size_t k, struct candidate c)
{
    size_t at = *n;
    while (at > 0 && top[at - 1].free_space < c.free_space)
        at--;
    if (at >= k)
        return;
    size_t last = *n < k ? *n : k - 1;
    memmove(&top[at + 1], &top[at], (last - at) * sizeof(*top));
    top[at] = c;
    if (*n < k)
        (*n)++;
}

/* spy_blobroute_choose: eligible groups, the emptiest K of them, one at random. */
int spy_blobroute_choose(const struct spy_blobroute *rt, const struct spy_blobroute_want *want,
                         uint64_t rnd, struct spy_blobroute_pick *out)
{
    struct spy_blobroute_pick scratch;
    uint64_t free_space;
    size_t count = 0;
    for (size_t i = 0; i < rt->ngroups; i++)
        count += eligible(&rt->groups[i], want, &scratch, &free_space);
    memset(out, 0, sizeof(*out));
    if (count == 0)
        return SPY_ENOSPC;
    size_t k = count / 10 + 3;
    if (k > SPY_BLOBROUTE_TOPK_MAX)
        k = SPY_BLOBROUTE_TOPK_MAX;
    if (k > count)
        k = count;
    struct candidate top[SPY_BLOBROUTE_TOPK_MAX];
    size_t ntop = 0;
    for (size_t i = 0; i < rt->ngroups; i++)
        if (eligible(&rt->groups[i], want, &scratch, &free_space))
            insert_top(top, &ntop, k, (struct candidate){i, free_space});
    /* The blacklist may change between the passes (another loop saw a
     * failure): re-check rather than trust the first pass. */
    if (ntop == 0)
        return SPY_ENOSPC;
    size_t chosen = top[rnd % ntop].group_index;
    if (!eligible(&rt->groups[chosen], want, out, &free_space)) {
        memset(out, 0, sizeof(*out));
        return SPY_ENOSPC;
    }
    return SPY_OK;
}

/* read_tier: 0 reporting and not blocked, 1 other and not blocked, 2 blocked. */
static int read_tier(const struct spy_blobroute_server *s, spy_blobroute_blocked_fn blocked,
                     void *arg)
{
    if (blocked != NULL && blocked(arg, s))
        return 2;
    return s->status == SPY_BLOBROUTE_RW || s->status == SPY_BLOBROUTE_RO ? 0 : 1;
}

/* spy_blobroute_read_order: healthy, then others, then blocked; rotated by fid within each tier. */
size_t spy_blobroute_read_order(const struct spy_blobroute_group *g, uint64_t fid,
                                spy_blobroute_blocked_fn blocked, void *blocked_arg,
                                const struct spy_blobroute_server **out)
{
    size_t n = g->nservers, count = 0;
    if (n == 0)
        return 0;
    int tiers[SPY_BLOBROUTE_MAX_SERVERS];
    for (size_t i = 0; i < n; i++)
        tiers[i] = read_tier(&g->servers[i], blocked, blocked_arg);
    size_t start = (size_t)(fid % n);
    for (int tier = 0; tier <= 2; tier++)
        for (size_t j = 0; j < n; j++) {
            size_t i = (start + j) % n;
            if (tiers[i] == tier)
                out[count++] = &g->servers[i];
        }
    return count;
}
