#include "chunkmaster/state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"

/* A group's operator flag; only groups that were ever flagged have one. */
struct group_flag {
    uint32_t group_id;
    int draining;
};

struct spy_state {
    struct spy_health_config cfg;
    struct spy_server *servers; /* sorted by (group, ip, port) */
    size_t nservers, cap;
    struct group_flag *groups;
    size_t ngroups, gcap;
};

struct spy_state *spy_state_new(const struct spy_health_config *cfg)
{
    struct spy_state *st = calloc(1, sizeof(*st));
    if (st != NULL)
        st->cfg = *cfg;
    return st;
}

void spy_state_free(struct spy_state *st)
{
    if (st == NULL)
        return;
    free(st->servers);
    free(st->groups);
    free(st);
}

/* compare_servers: the table order, so views list groups and servers in a
 * stable order whatever the order of reports. */
static int compare_servers(uint32_t group_a, const struct spy_server_key *a, uint32_t group_b,
                           const struct spy_server_key *b)
{
    if (group_a != group_b)
        return group_a < group_b ? -1 : 1;
    int c = strcmp(a->ip, b->ip);
    if (c != 0)
        return c;
    return a->port < b->port ? -1 : a->port > b->port;
}

static struct spy_server *find_server(const struct spy_state *st, const struct spy_server_key *key)
{
    for (size_t i = 0; i < st->nservers; i++)
        if (st->servers[i].r.key.port == key->port && strcmp(st->servers[i].r.key.ip, key->ip) == 0)
            return &st->servers[i];
    return NULL;
}

const struct spy_server *spy_state_find(const struct spy_state *st,
                                        const struct spy_server_key *key)
{
    return find_server(st, key);
}

/* insert_server: copies s into its sorted place; returns the new entry or
 * NULL if out of memory (the table is then unchanged). */
static struct spy_server *insert_server(struct spy_state *st, const struct spy_server *s)
{
    if (st->nservers == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 16;
        struct spy_server *grown = realloc(st->servers, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        st->servers = grown;
        st->cap = cap;
    }
    size_t at = 0;
    while (at < st->nservers && compare_servers(st->servers[at].r.group_id, &st->servers[at].r.key,
                                                s->r.group_id, &s->r.key) < 0)
        at++;
    memmove(&st->servers[at + 1], &st->servers[at], (st->nservers - at) * sizeof(*s));
    st->servers[at] = *s;
    st->nservers++;
    return &st->servers[at];
}

static void remove_server_at(struct spy_state *st, struct spy_server *s)
{
    size_t at = (size_t)(s - st->servers);
    memmove(&st->servers[at], &st->servers[at + 1], (st->nservers - at - 1) * sizeof(*s));
    st->nservers--;
}

int spy_state_report(struct spy_state *st, const struct spy_report *r, int64_t now_ms,
                     const struct spy_server **out, int *is_new)
{
    struct spy_server *s = find_server(st, &r->key);
    *is_new = 0;
    if (s != NULL && s->r.group_id != r->group_id)
        return SPY_EEXISTS;
    if (s == NULL) {
        struct spy_server fresh = {.announced = SPY_STATE_INIT};
        fresh.r = *r;
        s = insert_server(st, &fresh);
        if (s == NULL)
            return SPY_ENOMEM;
        *is_new = 1;
    }
    s->r = *r;
    s->reported = 1;
    s->last_report_ms = now_ms;
    *out = s;
    return SPY_OK;
}

/* check_declare: the conflict check of spy_state_declare, done before any
 * change so a batch is all or nothing. */
static int check_declare(const struct spy_state *st, const struct spy_server_decl *decls, size_t n,
                         char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const struct spy_server *s = find_server(st, &decls[i].key);
        if (s != NULL && s->r.group_id != decls[i].group_id) {
            snprintf(err, errlen, "%s:%d is already registered in group %u", s->r.key.ip,
                     s->r.key.port, (unsigned)s->r.group_id);
            return SPY_EEXISTS;
        }
    }
    return SPY_OK;
}

int spy_state_declare(struct spy_state *st, const struct spy_server_decl *decls, size_t n,
                      char *err, size_t errlen)
{
    int rc = check_declare(st, decls, n, err, errlen);
    if (rc != SPY_OK)
        return rc;
    size_t need = st->nservers + n;
    if (need > st->cap) {
        struct spy_server *grown = realloc(st->servers, need * sizeof(*grown));
        if (grown == NULL) {
            snprintf(err, errlen, "out of memory");
            return SPY_ENOMEM;
        }
        st->servers = grown;
        st->cap = need;
    }
    for (size_t i = 0; i < n; i++) {
        if (find_server(st, &decls[i].key) != NULL)
            continue;
        struct spy_server fresh = {.announced = SPY_STATE_INIT};
        fresh.r.group_id = decls[i].group_id;
        fresh.r.key = decls[i].key;
        insert_server(st, &fresh); /* cannot fail: capacity reserved above */
    }
    return SPY_OK;
}

int spy_state_set_draining(struct spy_state *st, const struct spy_server_key *key, int draining)
{
    struct spy_server *s = find_server(st, key);
    if (s == NULL)
        return SPY_ENOTFOUND;
    s->draining = draining ? 1 : 0;
    return SPY_OK;
}

static struct group_flag *find_group(const struct spy_state *st, uint32_t group_id)
{
    for (size_t i = 0; i < st->ngroups; i++)
        if (st->groups[i].group_id == group_id)
            return &st->groups[i];
    return NULL;
}

/* set_group_flag: records a group's draining flag, adding the record if the
 * group had none. */
static int set_group_flag(struct spy_state *st, uint32_t group_id, int draining)
{
    struct group_flag *g = find_group(st, group_id);
    if (g == NULL) {
        if (st->ngroups == st->gcap) {
            size_t cap = st->gcap ? st->gcap * 2 : 8;
            struct group_flag *grown = realloc(st->groups, cap * sizeof(*grown));
            if (grown == NULL)
                return SPY_ENOMEM;
            st->groups = grown;
            st->gcap = cap;
        }
        g = &st->groups[st->ngroups++];
        g->group_id = group_id;
    }
    g->draining = draining ? 1 : 0;
    return SPY_OK;
}

/* group_has_servers: a group exists through its servers. */
static int group_has_servers(const struct spy_state *st, uint32_t group_id)
{
    for (size_t i = 0; i < st->nservers; i++)
        if (st->servers[i].r.group_id == group_id)
            return 1;
    return 0;
}

int spy_state_set_group_draining(struct spy_state *st, uint32_t group_id, int draining)
{
    if (!group_has_servers(st, group_id))
        return SPY_ENOTFOUND;
    return set_group_flag(st, group_id, draining);
}

int spy_state_restore_group(struct spy_state *st, uint32_t group_id, int draining)
{
    return set_group_flag(st, group_id, draining);
}

int spy_state_remove(struct spy_state *st, const struct spy_server_key *key, int force,
                     int64_t now_ms)
{
    struct spy_server *s = find_server(st, key);
    if (s == NULL)
        return SPY_ENOTFOUND;
    enum spy_server_state state = spy_state_of(st, s, now_ms);
    if (!force && state != SPY_STATE_DOWN && state != SPY_STATE_INIT)
        return SPY_EBUSY;
    remove_server_at(st, s);
    return SPY_OK;
}

int spy_state_restore_server(struct spy_state *st, const struct spy_server *s)
{
    struct spy_server *old = find_server(st, &s->r.key);
    if (old != NULL)
        remove_server_at(st, old);
    struct spy_server *added = insert_server(st, s);
    if (added == NULL)
        return SPY_ENOMEM;
    added->announced = SPY_STATE_INIT;
    return SPY_OK;
}

size_t spy_state_count(const struct spy_state *st)
{
    return st->nservers;
}

const struct spy_server *spy_state_at(const struct spy_state *st, size_t i)
{
    return i < st->nservers ? &st->servers[i] : NULL;
}

int spy_state_group_draining(const struct spy_state *st, uint32_t group_id)
{
    const struct group_flag *g = find_group(st, group_id);
    return g != NULL && g->draining;
}

enum spy_server_state spy_state_of(const struct spy_state *st, const struct spy_server *s,
                                   int64_t now_ms)
{
    if (!s->reported)
        return SPY_STATE_INIT;
    int64_t age = now_ms - s->last_report_ms;
    if (age > st->cfg.down_timeout_ms)
        return SPY_STATE_DOWN;
    if (age > st->cfg.rw_timeout_ms)
        return SPY_STATE_STALE;
    if (s->draining || spy_state_group_draining(st, s->r.group_id))
        return SPY_STATE_DRAINING;
    if (s->r.read_only)
        return SPY_STATE_READONLY;
    return SPY_STATE_RW;
}

int spy_state_group_writable(const struct spy_state *st, uint32_t group_id, int64_t now_ms)
{
    if (spy_state_group_draining(st, group_id))
        return 0;
    int rw = 0;
    for (size_t i = 0; i < st->nservers; i++) {
        const struct spy_server *s = &st->servers[i];
        if (s->r.group_id != group_id)
            continue;
        if (s->draining)
            return 0;
        if (spy_state_of(st, s, now_ms) == SPY_STATE_RW)
            rw++;
    }
    return rw >= st->cfg.min_healthy;
}

void spy_state_summarize(const struct spy_state *st, int64_t now_ms, struct spy_state_summary *out)
{
    memset(out, 0, sizeof(*out));
    out->servers = st->nservers;
    for (size_t i = 0; i < st->nservers; i++) {
        const struct spy_server *s = &st->servers[i];
        out->by_state[spy_state_of(st, s, now_ms)]++;
        if (i == 0 || st->servers[i - 1].r.group_id != s->r.group_id) {
            out->groups++;
            out->groups_writable += spy_state_group_writable(st, s->r.group_id, now_ms) ? 1 : 0;
        }
    }
}

const char *spy_state_name(enum spy_server_state s)
{
    static const char *const names[SPY_STATE_COUNT] = {"INIT",     "RW",    "READONLY",
                                                       "DRAINING", "STALE", "DOWN"};
    return (unsigned)s < SPY_STATE_COUNT ? names[s] : "UNKNOWN";
}

int spy_state_status_code(enum spy_server_state s)
{
    switch (s) {
    case SPY_STATE_INIT:
        return SPY_STATUS_INIT;
    case SPY_STATE_RW:
        return SPY_STATUS_RW;
    case SPY_STATE_READONLY:
    case SPY_STATE_DRAINING:
    case SPY_STATE_STALE:
        return SPY_STATUS_RO;
    case SPY_STATE_DOWN:
        return SPY_STATUS_ERR;
    }
    return SPY_STATUS_ERR;
}

void spy_state_tick(struct spy_state *st, int64_t now_ms, spy_state_change_cb changed, void *arg)
{
    for (size_t i = 0; i < st->nservers; i++) {
        struct spy_server *s = &st->servers[i];
        enum spy_server_state now_state = spy_state_of(st, s, now_ms);
        if (now_state != s->announced) {
            enum spy_server_state old = s->announced;
            s->announced = now_state;
            if (changed != NULL)
                changed(arg, s, old, now_state);
        }
    }
}

/* set_u64: jansson integers are signed 64-bit; metrics never come near. */
static void set_u64(json_t *obj, const char *key, uint64_t v)
{
    json_object_set_new(obj, key, json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v));
}

json_t *spy_state_server_json(const struct spy_state *st, const struct spy_server *s,
                              int64_t now_ms)
{
    enum spy_server_state state = spy_state_of(st, s, now_ms);
    int group_draining = spy_state_group_draining(st, s->r.group_id);
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "GroupId", json_integer(s->r.group_id));
    json_object_set_new(o, "Ip", json_string(s->r.key.ip));
    json_object_set_new(o, "Port", json_integer(s->r.key.port));
    json_object_set_new(o, "Status", json_integer(spy_state_status_code(state)));
    json_object_set_new(o, "GlobalStatus",
                        json_integer(group_draining ? SPY_GLOBAL_STATUS_DRAINING : 0));
    json_object_set_new(o, "State", json_string(spy_state_name(state)));
    json_object_set_new(o, "GroupWritable",
                        json_boolean(spy_state_group_writable(st, s->r.group_id, now_ms)));
    json_object_set_new(o, "ReadOnly", json_boolean(s->r.read_only));
    json_object_set_new(o, "Draining", json_boolean(s->draining));
    json_object_set_new(o, "GroupDraining", json_boolean(group_draining));
    int64_t age_s = (now_ms - s->last_report_ms) / 1000;
    json_object_set_new(o, "LastReportAge",
                        s->reported ? json_integer(age_s < 0 ? 0 : age_s) : json_null());
    set_u64(o, "TotalFreeSpace", s->r.total_free_space);
    set_u64(o, "MaxFreeSpace", s->r.max_free_space);
    set_u64(o, "UsedSpace", s->r.used_space);
    set_u64(o, "GarbageSpace", s->r.garbage_space);
    set_u64(o, "Objects", s->r.objects);
    set_u64(o, "PendingWrites", s->r.pending_writes);
    set_u64(o, "WritingCount", s->r.writing_count);
    set_u64(o, "ReadingCount", s->r.reading_count);
    set_u64(o, "TotalChunks", s->r.total_chunks);
    set_u64(o, "DamagedChunks", s->r.damaged_chunks);
    set_u64(o, "ConnectionsCount", s->r.connections_count);
    json_object_set_new(o, "DataDir", json_string(s->r.data_dir));
    json_object_set_new(o, "Version", json_string(s->r.version));
    return o;
}

/* group_array: the servers of the group starting at index *at, advancing *at
 * past them. */
static json_t *group_array(const struct spy_state *st, size_t *at, int64_t now_ms)
{
    json_t *arr = json_array();
    if (arr == NULL)
        return NULL;
    uint32_t group_id = st->servers[*at].r.group_id;
    for (; *at < st->nservers && st->servers[*at].r.group_id == group_id; (*at)++) {
        json_t *entry = spy_state_server_json(st, &st->servers[*at], now_ms);
        if (entry == NULL || json_array_append_new(arr, entry) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

json_t *spy_state_route_json(const struct spy_state *st, int64_t now_ms)
{
    json_t *route = json_object();
    if (route == NULL)
        return NULL;
    size_t at = 0;
    while (at < st->nservers) {
        char key[16];
        snprintf(key, sizeof(key), "%u", (unsigned)st->servers[at].r.group_id);
        json_t *arr = group_array(st, &at, now_ms);
        if (arr == NULL || json_object_set_new(route, key, arr) != 0) {
            json_decref(route);
            return NULL;
        }
    }
    return route;
}

json_t *spy_state_group_json(const struct spy_state *st, uint32_t group_id, int64_t now_ms)
{
    size_t at = 0;
    while (at < st->nservers && st->servers[at].r.group_id != group_id)
        at++;
    if (at == st->nservers)
        return NULL;
    return group_array(st, &at, now_ms);
}
