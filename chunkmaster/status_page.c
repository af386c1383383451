#include "chunkmaster/status_page.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"

void spy_status_page_escape(const char *text, char *buf, size_t cap)
{
    size_t n = 0;
    for (const char *p = text; *p != '\0'; p++) {
        const char *rep = NULL;
        switch (*p) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        }
        size_t len = rep != NULL ? strlen(rep) : 1;
        if (n + len >= cap)
            break;
        memcpy(buf + n, rep != NULL ? rep : p, len);
        n += len;
    }
    if (cap > 0)
        buf[n] = '\0';
}

void spy_status_page_bytes(uint64_t bytes, char *buf, size_t cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 6) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%" PRIu64 " B", bytes);
    else if (v < 10)
        snprintf(buf, cap, "%.1f %s", v, units[u]);
    else
        snprintf(buf, cap, "%.0f %s", v, units[u]);
}

/* age_text: "never", "4 s ago", "3 min ago", "2 h ago". */
static void age_text(const struct spy_server *s, int64_t now_ms, char *buf, size_t cap)
{
    if (!s->reported) {
        snprintf(buf, cap, "never");
        return;
    }
    int64_t age = (now_ms - s->last_report_ms) / 1000;
    if (age < 0)
        age = 0;
    if (age < 120)
        snprintf(buf, cap, "%" PRId64 " s ago", age);
    else if (age < 2 * 3600)
        snprintf(buf, cap, "%" PRId64 " min ago", age / 60);
    else
        snprintf(buf, cap, "%" PRId64 " h ago", age / 3600);
}

static void render_head(FILE *f, int refresh_s)
{
    fprintf(f,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            "<meta http-equiv=\"refresh\" content=\"%d\">\n"
            "<title>speedy chunkmaster</title>\n<style>\n"
            "body{font-family:sans-serif;margin:1em}\n"
            "table{border-collapse:collapse}\n"
            "th,td{border:1px solid #999;padding:3px 10px;text-align:left}\n"
            "td.num{text-align:right}\n"
            "tr.RW td.state{background:#c8f0c8}\n"
            "tr.READONLY td.state,tr.DRAINING td.state,tr.STALE td.state{background:#f8e8a0}\n"
            "tr.DOWN td.state{background:#f4b0b0}\n"
            "tr.INIT td.state{background:#ddd}\n"
            "</style></head><body>\n<h1>speedy chunkmaster</h1>\n",
            refresh_s);
}

static void render_summary(FILE *f, const struct spy_state *st, int64_t now_ms,
                           const struct spy_status_page_info *info)
{
    struct spy_state_summary sum;
    spy_state_summarize(st, now_ms, &sum);
    fprintf(f, "<p id=\"summary\">%zu group%s, %zu writable; %zu server%s:", sum.groups,
            sum.groups == 1 ? "" : "s", sum.groups_writable, sum.servers,
            sum.servers == 1 ? "" : "s");
    for (int s = 0; s < SPY_STATE_COUNT; s++)
        if (sum.by_state[s] > 0)
            fprintf(f, " %zu %s", sum.by_state[s], spy_state_name(s));
    fprintf(f, ". Database: %s", info->db_ok ? "ok" : "UNREACHABLE");
    if (info->pending_writes > 0)
        fprintf(f, " (%" PRIu64 " writes waiting)", info->pending_writes);
    fprintf(f, ". Up %" PRId64 " s.</p>\n", info->uptime_ms / 1000);
}

/* render_row: one server, its group and whether that group takes writes
 * first, so each row reads on its own. */
static void render_row(FILE *f, const struct spy_state *st, const struct spy_server *s,
                       int64_t now_ms)
{
    enum spy_server_state state = spy_state_of(st, s, now_ms);
    char free_text[32], max_text[32], age[32], dir[6 * SPY_DATA_DIR_MAX], version[6 * 64];
    spy_status_page_bytes(s->r.total_free_space, free_text, sizeof(free_text));
    spy_status_page_bytes(s->r.max_free_space, max_text, sizeof(max_text));
    age_text(s, now_ms, age, sizeof(age));
    spy_status_page_escape(s->r.data_dir, dir, sizeof(dir));
    spy_status_page_escape(s->r.version, version, sizeof(version));
    int v6 = strchr(s->r.key.ip, ':') != NULL;
    fprintf(f,
            "<tr class=\"%s\"><td class=\"num\">%u</td><td>%s</td>"
            "<td title=\"%s\">%s%s%s:%d</td><td class=\"state\">%s%s</td>"
            "<td class=\"num\">%s</td><td class=\"num\">%s</td>"
            "<td class=\"num\">%" PRIu64 "%s</td><td class=\"num\">%" PRIu64 "</td>"
            "<td class=\"num\">%s</td><td>%s</td></tr>\n",
            spy_state_name(state), (unsigned)s->r.group_id,
            spy_state_group_writable(st, s->r.group_id, now_ms) ? "yes" : "no", dir, v6 ? "[" : "",
            s->r.key.ip, v6 ? "]" : "", s->r.key.port, spy_state_name(state),
            s->draining && state != SPY_STATE_DRAINING ? " (draining)" : "", free_text, max_text,
            s->r.total_chunks, s->r.damaged_chunks > 0 ? " (damaged)" : "", s->r.objects, age,
            version);
}

static void render_table(FILE *f, const struct spy_state *st, int64_t now_ms)
{
    if (spy_state_count(st) == 0) {
        fprintf(f, "<p id=\"empty\">No chunkserver has reported yet.</p>\n");
        return;
    }
    fprintf(f, "<table id=\"servers\">\n<thead><tr><th>Group</th><th>Group writable</th>"
               "<th>Server</th><th>State</th><th>Free space</th><th>Largest object</th>"
               "<th>Chunks</th><th>Objects</th><th>Last report</th><th>Version</th></tr>"
               "</thead>\n<tbody>\n");
    for (size_t i = 0; i < spy_state_count(st); i++)
        render_row(f, st, spy_state_at(st, i), now_ms);
    fprintf(f, "</tbody></table>\n");
}

static void render_legend(FILE *f, const struct spy_status_page_info *info)
{
    fprintf(f,
            "<p id=\"legend\">A group takes writes when at least %d of its servers are RW and "
            "nothing in it is draining. RW: reporting and writable. READONLY: the server "
            "refuses writes. DRAINING: set by an operator. STALE: silent, not writable. "
            "DOWN: silent for long. INIT: declared, never reported. This page reloads "
            "every %d s; JSON at <a href=\"/v1/chunkmaster/route\">/v1/chunkmaster/route</a>, "
            "metrics at <a href=\"/metrics\">/metrics</a>.</p>\n</body></html>\n",
            info->min_healthy, info->refresh_s);
}

int spy_status_page_render(const struct spy_state *st, int64_t now_ms,
                           const struct spy_status_page_info *info, char **out, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (f == NULL)
        return SPY_ENOMEM;
    render_head(f, info->refresh_s);
    render_summary(f, st, now_ms, info);
    render_table(f, st, now_ms);
    render_legend(f, info);
    if (fclose(f) != 0) {
        free(buf);
        return SPY_ENOMEM;
    }
    *out = buf;
    *len = n;
    return SPY_OK;
}
