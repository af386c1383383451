#include "chunkmaster/metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"

/* header: the HELP and TYPE lines of one metric family. */
static void header(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void scalar(FILE *f, const char *name, const char *type, const char *help, uint64_t v)
{
    header(f, name, type, help);
    fprintf(f, "%s %" PRIu64 "\n", name, v);
}

/* server_labels: {group="1",server="127.0.0.1:8001"}; IPv6 in brackets. The
 * address is canonical inet_ntop text, which needs no escaping. */
static void server_labels(char *buf, size_t cap, const struct spy_server *s)
{
    int v6 = strchr(s->r.key.ip, ':') != NULL;
    snprintf(buf, cap, "{group=\"%u\",server=\"%s%s%s:%d\"}", (unsigned)s->r.group_id,
             v6 ? "[" : "", s->r.key.ip, v6 ? "]" : "", s->r.key.port);
}

/* One per-server metric family: which field of the server it shows. */
enum server_field {
    FIELD_STATUS,
    FIELD_AGE,
    FIELD_FREE,
    FIELD_MAX_FREE,
    FIELD_USED,
    FIELD_GARBAGE,
    FIELD_OBJECTS,
    FIELD_CHUNKS,
    FIELD_DAMAGED,
    FIELD_CONNECTIONS,
};

struct server_family {
    const char *name, *help;
    enum server_field field;
};

static const struct server_family server_families[] = {
    {"speedy_master_server_status",
     "Original Status code: 0 INIT, 1 RW, 2 RO (read-only, draining or stale), 3 ERR (down)",
     FIELD_STATUS},
    {"speedy_master_server_last_report_age_seconds", "Seconds since the server's last report",
     FIELD_AGE},
    {"speedy_master_server_free_bytes", "Free space reported (TotalFreeSpace)", FIELD_FREE},
    {"speedy_master_server_max_free_bytes", "Largest object that fits (MaxFreeSpace)",
     FIELD_MAX_FREE},
    {"speedy_master_server_used_bytes", "Used space reported", FIELD_USED},
    {"speedy_master_server_garbage_bytes", "Space held by deleted objects", FIELD_GARBAGE},
    {"speedy_master_server_objects", "Objects stored", FIELD_OBJECTS},
    {"speedy_master_server_chunks", "Chunk files", FIELD_CHUNKS},
    {"speedy_master_server_damaged_chunks", "Chunk files found damaged", FIELD_DAMAGED},
    {"speedy_master_server_connections", "Open client connections", FIELD_CONNECTIONS},
};

static int64_t server_value(const struct spy_state *st, const struct spy_server *s,
                            enum server_field field, int64_t now_ms)
{
    switch (field) {
    case FIELD_STATUS:
        return spy_state_status_code(spy_state_of(st, s, now_ms));
    case FIELD_AGE:
        return s->reported ? (now_ms - s->last_report_ms) / 1000 : -1;
    case FIELD_FREE:
        return (int64_t)s->r.total_free_space;
    case FIELD_MAX_FREE:
        return (int64_t)s->r.max_free_space;
    case FIELD_USED:
        return (int64_t)s->r.used_space;
    case FIELD_GARBAGE:
        return (int64_t)s->r.garbage_space;
    case FIELD_OBJECTS:
        return (int64_t)s->r.objects;
    case FIELD_CHUNKS:
        return (int64_t)s->r.total_chunks;
    case FIELD_DAMAGED:
        return (int64_t)s->r.damaged_chunks;
    case FIELD_CONNECTIONS:
        return (int64_t)s->r.connections_count;
    }
    return 0;
}

/* render_servers: every per-server family; a never-reported server has no
 * age sample rather than a made-up one. */
static void render_servers(FILE *f, const struct spy_state *st, int64_t now_ms)
{
    char labels[160];
    for (size_t k = 0; k < sizeof(server_families) / sizeof(server_families[0]); k++) {
        const struct server_family *fam = &server_families[k];
        header(f, fam->name, "gauge", fam->help);
        for (size_t i = 0; i < spy_state_count(st); i++) {
            const struct spy_server *s = spy_state_at(st, i);
            if (fam->field == FIELD_AGE && !s->reported)
                continue;
            server_labels(labels, sizeof(labels), s);
            fprintf(f, "%s%s %" PRId64 "\n", fam->name, labels,
                    server_value(st, s, fam->field, now_ms));
        }
    }
}

/* render_groups: servers per state and each group's writability. */
static void render_groups(FILE *f, const struct spy_state *st, int64_t now_ms)
{
    struct spy_state_summary sum;
    spy_state_summarize(st, now_ms, &sum);
    header(f, "speedy_master_servers", "gauge", "Known chunkservers by state");
    for (int s = 0; s < SPY_STATE_COUNT; s++)
        fprintf(f, "speedy_master_servers{state=\"%s\"} %zu\n", spy_state_name(s), sum.by_state[s]);
    scalar(f, "speedy_master_groups", "gauge", "Groups with at least one server", sum.groups);
    scalar(f, "speedy_master_groups_writable", "gauge", "Groups that take new writes",
           sum.groups_writable);
    header(f, "speedy_master_group_writable", "gauge", "1 if the group takes new writes");
    for (size_t i = 0; i < spy_state_count(st); i++) {
        const struct spy_server *s = spy_state_at(st, i);
        if (i > 0 && spy_state_at(st, i - 1)->r.group_id == s->r.group_id)
            continue;
        fprintf(f, "speedy_master_group_writable{group=\"%u\"} %d\n", (unsigned)s->r.group_id,
                spy_state_group_writable(st, s->r.group_id, now_ms));
    }
}

/* render_counters: the loop's and the worker's counters. */
static void render_counters(FILE *f, const struct spy_metrics_counters *c,
                            const struct spy_worker_stats *ws, int64_t uptime_ms)
{
    scalar(f, "speedy_master_uptime_seconds", "gauge", "Seconds since the master started",
           (uint64_t)(uptime_ms / 1000));
    scalar(f, "speedy_master_http_requests_total", "counter", "HTTP requests", c->http_requests);
    header(f, "speedy_master_http_errors_total", "counter", "HTTP answers 4xx and 5xx");
    fprintf(f, "speedy_master_http_errors_total{class=\"4xx\"} %" PRIu64 "\n",
            c->http_client_errors);
    fprintf(f, "speedy_master_http_errors_total{class=\"5xx\"} %" PRIu64 "\n",
            c->http_server_errors);
    scalar(f, "speedy_master_reports_total", "counter", "Reports accepted", c->reports);
    scalar(f, "speedy_master_reports_rejected_total", "counter",
           "Reports rejected (malformed or group conflict)", c->reports_rejected);
    scalar(f, "speedy_master_fid_ranges_total", "counter", "Fid ranges handed out", c->fid_ranges);
    scalar(f, "speedy_master_fids_total", "counter", "Fids handed out", c->fids);
    scalar(f, "speedy_master_db_up", "gauge", "1 if the last database statement succeeded",
           (uint64_t)ws->db_ok);
    scalar(f, "speedy_master_db_pending_writes", "gauge", "Writes queued for the database",
           ws->pending_writes);
    scalar(f, "speedy_master_db_rows_written_total", "counter", "Rows written", ws->rows_written);
    scalar(f, "speedy_master_db_write_errors_total", "counter",
           "Failed write passes (each retried)", ws->write_errors);
    scalar(f, "speedy_master_db_fid_statements_total", "counter",
           "Fid allocation statements (one may serve several requests)", ws->fid_statements);
    scalar(f, "speedy_master_db_fid_errors_total", "counter", "Failed fid allocations",
           ws->fid_errors);
}

int spy_metrics_render(const struct spy_state *st, int64_t now_ms,
                       const struct spy_metrics_counters *c, const struct spy_worker_stats *ws,
                       int64_t uptime_ms, char **out, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (f == NULL)
        return SPY_ENOMEM;
    render_groups(f, st, now_ms);
    render_servers(f, st, now_ms);
    render_counters(f, c, ws, uptime_ms);
    if (fclose(f) != 0) {
        free(buf);
        return SPY_ENOMEM;
    }
    *out = buf;
    *len = n;
    return SPY_OK;
}
