#include "chunkmaster/request.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"

/* The kinds of value a field may hold; each knows how to check itself. */
enum field_type {
    FIELD_U64,  /* non-negative integer, stored in uint64_t */
    FIELD_INT,  /* integer in [min, max], stored in long long */
    FIELD_BOOL, /* true/false, stored in int */
    FIELD_IP,   /* IPv4/IPv6 literal, stored canonical in char[SPY_IP_TEXT_MAX] */
    FIELD_TEXT, /* string shorter than cap, stored in char[cap] */
};

struct field {
    const char *name;
    enum field_type type;
    int required;
    void *dst;
    long long min, max; /* FIELD_INT bounds */
    size_t cap;         /* FIELD_TEXT buffer size */
    int seen;
};

/* load_json: parses the whole body into a JSON value, refusing duplicate
 * keys (two "Port"s would make the meaning depend on the parser). */
static json_t *load_json(const char *body, size_t len, char *err, size_t errlen)
{
    if (body == NULL || len == 0) {
        snprintf(err, errlen, "empty body: expected a JSON object");
        return NULL;
    }
    json_error_t jerr;
    json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (v == NULL)
        snprintf(err, errlen, "malformed JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                 jerr.column);
    return v;
}

/* set_number: FIELD_U64 (non-negative) or FIELD_INT (within [min, max]). */
static int set_number(struct field *f, json_t *v, char *err, size_t errlen)
{
    if (!json_is_integer(v)) {
        snprintf(err, errlen, "field '%s' must be a whole number", f->name);
        return SPY_EINVAL;
    }
    json_int_t n = json_integer_value(v);
    if (f->type == FIELD_U64) {
        if (n < 0) {
            snprintf(err, errlen, "field '%s' must not be negative", f->name);
            return SPY_EINVAL;
        }
        *(uint64_t *)f->dst = (uint64_t)n;
        return SPY_OK;
    }
    if (n < f->min || n > f->max) {
        snprintf(err, errlen, "field '%s' must be %lld..%lld", f->name, f->min, f->max);
        return SPY_EINVAL;
    }
    *(long long *)f->dst = n;
    return SPY_OK;
}

/* set_string: FIELD_IP (canonicalised) or FIELD_TEXT (shorter than cap).
 * Without JSON_ALLOW_NUL jansson refuses \u0000, so the value is a plain C
 * string. */
static int set_string(struct field *f, json_t *v, char *err, size_t errlen)
{
    if (!json_is_string(v)) {
        snprintf(err, errlen, "field '%s' must be a string", f->name);
        return SPY_EINVAL;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (f->type == FIELD_IP) {
        if (spy_request_canonical_ip(s, f->dst, SPY_IP_TEXT_MAX) == SPY_OK)
            return SPY_OK;
        snprintf(err, errlen,
                 "field '%s' must be an IPv4 or IPv6 address other than 0.0.0.0 and ::", f->name);
        return SPY_EINVAL;
    }
    if (n >= f->cap) {
        snprintf(err, errlen, "field '%s' is longer than %zu bytes", f->name, f->cap - 1);
        return SPY_EINVAL;
    }
    memcpy(f->dst, s, n + 1);
    return SPY_OK;
}

/* set_field: checks one value against its field's type and stores it. */
static int set_field(struct field *f, json_t *v, char *err, size_t errlen)
{
    switch (f->type) {
    case FIELD_U64:
    case FIELD_INT:
        return set_number(f, v, err, errlen);
    case FIELD_BOOL:
        if (!json_is_boolean(v)) {
            snprintf(err, errlen, "field '%s' must be true or false", f->name);
            return SPY_EINVAL;
        }
        *(int *)f->dst = json_is_true(v);
        return SPY_OK;
    case FIELD_IP:
    case FIELD_TEXT:
        return set_string(f, v, err, errlen);
    }
    snprintf(err, errlen, "internal error: field '%s' has no type", f->name);
    return SPY_EINVAL;
}

/* parse_object: fills the fields from one JSON object; every key must be a
 * known field and every required field must be present. */
static int parse_object(json_t *obj, struct field *fields, size_t n, char *err, size_t errlen)
{
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "expected a JSON object");
        return SPY_EINVAL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        struct field *f = NULL;
        for (size_t i = 0; i < n && f == NULL; i++)
            if (strcmp(fields[i].name, key) == 0)
                f = &fields[i];
        if (f == NULL) {
            snprintf(err, errlen, "unknown field '%.64s'", key);
            return SPY_EINVAL;
        }
        if (set_field(f, v, err, errlen) != SPY_OK)
            return SPY_EINVAL;
        f->seen = 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (fields[i].required && !fields[i].seen) {
            snprintf(err, errlen, "missing field '%s'", fields[i].name);
            return SPY_EINVAL;
        }
    }
    return SPY_OK;
}

/* parse_body: load_json then parse_object, freeing the JSON value. */
static int parse_body(const char *body, size_t len, struct field *fields, size_t n, char *err,
                      size_t errlen)
{
    json_t *v = load_json(body, len, err, errlen);
    if (v == NULL)
        return SPY_EINVAL;
    int rc = parse_object(v, fields, n, err, errlen);
    json_decref(v);
    return rc;
}

int spy_request_canonical_ip(const char *text, char *out, size_t outlen)
{
    unsigned char addr[sizeof(struct in6_addr)];
    static const unsigned char zero[sizeof(struct in6_addr)];
    const char *r = NULL;
    if (inet_pton(AF_INET, text, addr) == 1) {
        if (memcmp(addr, zero, sizeof(struct in_addr)) != 0)
            r = inet_ntop(AF_INET, addr, out, (socklen_t)outlen);
    } else if (inet_pton(AF_INET6, text, addr) == 1) {
        if (memcmp(addr, zero, sizeof(struct in6_addr)) != 0)
            r = inet_ntop(AF_INET6, addr, out, (socklen_t)outlen);
    }
    return r != NULL ? SPY_OK : SPY_EINVAL;
}

/* The identity and group fields shared by several bodies; the caller copies
 * group and port out of the long longs once parsing succeeded. */
#define GROUP_FIELD(dst)                                                                           \
    {                                                                                              \
        "GroupId", FIELD_INT, 1, (dst), 0, SPY_GROUP_ID_MAX, 0, 0                                  \
    }
#define IP_FIELD(dst)                                                                              \
    {                                                                                              \
        "Ip", FIELD_IP, 1, (dst), 0, 0, 0, 0                                                       \
    }
#define PORT_FIELD(dst)                                                                            \
    {                                                                                              \
        "Port", FIELD_INT, 1, (dst), 1, 65535, 0, 0                                                \
    }

int spy_request_parse_report(const char *body, size_t len, struct spy_report *out, char *err,
                             size_t errlen)
{
    memset(out, 0, sizeof(*out));
    long long group = 0, port = 0;
    struct field fields[] = {
        GROUP_FIELD(&group),
        IP_FIELD(out->key.ip),
        PORT_FIELD(&port),
        {"ReadOnly", FIELD_BOOL, 0, &out->read_only, 0, 0, 0, 0},
        {"TotalFreeSpace", FIELD_U64, 0, &out->total_free_space, 0, 0, 0, 0},
        {"MaxFreeSpace", FIELD_U64, 0, &out->max_free_space, 0, 0, 0, 0},
        {"UsedSpace", FIELD_U64, 0, &out->used_space, 0, 0, 0, 0},
        {"GarbageSpace", FIELD_U64, 0, &out->garbage_space, 0, 0, 0, 0},
        {"Objects", FIELD_U64, 0, &out->objects, 0, 0, 0, 0},
        {"PendingWrites", FIELD_U64, 0, &out->pending_writes, 0, 0, 0, 0},
        {"WritingCount", FIELD_U64, 0, &out->writing_count, 0, 0, 0, 0},
        {"ReadingCount", FIELD_U64, 0, &out->reading_count, 0, 0, 0, 0},
        {"TotalChunks", FIELD_U64, 0, &out->total_chunks, 0, 0, 0, 0},
        {"DamagedChunks", FIELD_U64, 0, &out->damaged_chunks, 0, 0, 0, 0},
        {"ConnectionsCount", FIELD_U64, 0, &out->connections_count, 0, 0, 0, 0},
        {"DataDir", FIELD_TEXT, 0, out->data_dir, 0, 0, sizeof(out->data_dir), 0},
        {"Version", FIELD_TEXT, 0, out->version, 0, 0, sizeof(out->version), 0},
    };
    int rc = parse_body(body, len, fields, sizeof(fields) / sizeof(fields[0]), err, errlen);
    out->group_id = (uint32_t)group;
    out->key.port = (int)port;
    return rc;
}

/* parse_decl: checks one {"GroupId","Ip","Port"} object into *out. */
static int parse_decl(json_t *obj, struct spy_server_decl *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    long long group = 0, port = 0;
    struct field fields[] = {GROUP_FIELD(&group), IP_FIELD(out->key.ip), PORT_FIELD(&port)};
    int rc = parse_object(obj, fields, sizeof(fields) / sizeof(fields[0]), err, errlen);
    out->group_id = (uint32_t)group;
    out->key.port = (int)port;
    return rc;
}

int spy_request_parse_init(const char *body, size_t len, struct spy_server_decl *out, char *err,
                           size_t errlen)
{
    json_t *v = load_json(body, len, err, errlen);
    if (v == NULL)
        return SPY_EINVAL;
    int rc = parse_decl(v, out, err, errlen);
    json_decref(v);
    return rc;
}

/* same_key: 1 if two identities name the same server. */
static int same_key(const struct spy_server_key *a, const struct spy_server_key *b)
{
    return a->port == b->port && strcmp(a->ip, b->ip) == 0;
}

/* parse_decl_array: checks and copies every element of a batch. */
static int parse_decl_array(json_t *arr, struct spy_server_decl *decls, char *err, size_t errlen)
{
    size_t i;
    json_t *elem;
    json_array_foreach(arr, i, elem)
    {
        char why[160];
        if (parse_decl(elem, &decls[i], why, sizeof(why)) != SPY_OK) {
            snprintf(err, errlen, "element %zu: %s", i, why);
            return SPY_EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (same_key(&decls[j].key, &decls[i].key)) {
                snprintf(err, errlen, "element %zu: %s:%d is listed twice", i, decls[i].key.ip,
                         decls[i].key.port);
                return SPY_EINVAL;
            }
        }
    }
    return SPY_OK;
}

int spy_request_parse_batch_init(const char *body, size_t len, struct spy_server_decl **out,
                                 size_t *n, char *err, size_t errlen)
{
    json_t *v = load_json(body, len, err, errlen);
    if (v == NULL)
        return SPY_EINVAL;
    int rc = SPY_EINVAL;
    size_t count = json_is_array(v) ? json_array_size(v) : 0;
    struct spy_server_decl *decls = NULL;
    if (!json_is_array(v)) {
        snprintf(err, errlen, "expected a JSON array of {\"GroupId\",\"Ip\",\"Port\"}");
    } else if (count == 0 || count > SPY_BATCH_MAX) {
        snprintf(err, errlen, "expected 1..%d servers, got %zu", SPY_BATCH_MAX, count);
    } else if ((decls = calloc(count, sizeof(*decls))) == NULL) {
        snprintf(err, errlen, "out of memory");
    } else {
        rc = parse_decl_array(v, decls, err, errlen);
    }
    json_decref(v);
    if (rc != SPY_OK) {
        free(decls);
        return rc;
    }
    *out = decls;
    *n = count;
    return SPY_OK;
}

int spy_request_parse_server_drain(const char *body, size_t len, struct spy_server_key *key,
                                   int *draining, char *err, size_t errlen)
{
    memset(key, 0, sizeof(*key));
    long long port = 0;
    struct field fields[] = {
        IP_FIELD(key->ip), PORT_FIELD(&port), {"Draining", FIELD_BOOL, 1, draining, 0, 0, 0, 0}};
    int rc = parse_body(body, len, fields, sizeof(fields) / sizeof(fields[0]), err, errlen);
    key->port = (int)port;
    return rc;
}

int spy_request_parse_group_drain(const char *body, size_t len, uint32_t *group_id, int *draining,
                                  char *err, size_t errlen)
{
    long long group = 0;
    struct field fields[] = {GROUP_FIELD(&group),
                             {"Draining", FIELD_BOOL, 1, draining, 0, 0, 0, 0}};
    int rc = parse_body(body, len, fields, sizeof(fields) / sizeof(fields[0]), err, errlen);
    *group_id = (uint32_t)group;
    return rc;
}

int spy_request_parse_remove(const char *body, size_t len, struct spy_server_key *key, int *force,
                             char *err, size_t errlen)
{
    memset(key, 0, sizeof(*key));
    long long port = 0;
    *force = 0;
    struct field fields[] = {
        IP_FIELD(key->ip), PORT_FIELD(&port), {"Force", FIELD_BOOL, 0, force, 0, 0, 0, 0}};
    int rc = parse_body(body, len, fields, sizeof(fields) / sizeof(fields[0]), err, errlen);
    key->port = (int)port;
    return rc;
}
