/* http_format.c - response heads, chunk lines, error bodies (see http_format.h). */
#include "registry/http_format.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Bytes of a head besides the handler's fields: status line, Date, Server,
 * Connection and the framing header, with room to spare. */
#define FIXED_HEAD_BOUND 256

void spy_http_format_date(time_t t, char out[SPY_HTTP_DATE_LEN + 1])
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    char tmp[64];
    gmtime_r(&t, &tm);
    snprintf(tmp, sizeof(tmp), "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    memcpy(out, tmp, SPY_HTTP_DATE_LEN); /* years past 9999 lose their tail */
    out[SPY_HTTP_DATE_LEN] = '\0';
}

/* Reason phrases (RFC 9110) of the statuses the registry uses. */
static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *spy_http_reason(int status)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Unknown";
}

enum spy_http_framing spy_http_framing_for(int status, int64_t content_length, int minor_version)
{
    if (status < 200 || status == 204 || status == 304)
        return SPY_HTTP_FRAMING_NONE;
    if (content_length >= 0)
        return SPY_HTTP_FRAMING_LENGTH;
    return minor_version >= 1 ? SPY_HTTP_FRAMING_CHUNKED : SPY_HTTP_FRAMING_EOF;
}

/* is_tchar: RFC 9110 token characters. */
static int is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int spy_http_field_valid(const struct spy_http_field *f)
{
    static const char *const owned[] = {
        "content-length", "transfer-encoding", "connection", "date",
        "server",         "keep-alive",        "upgrade",    "trailer"};
    if (f->name == NULL || f->value == NULL || f->name[0] == '\0')
        return 0;
    for (const char *p = f->name; *p != '\0'; p++)
        if (!is_tchar((unsigned char)*p))
            return 0;
    for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
        if (strcasecmp(f->name, owned[i]) == 0)
            return 0;
    for (const unsigned char *p = (const unsigned char *)f->value; *p != '\0'; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return 0;
    return 1;
}

size_t spy_http_head_size(const struct spy_http_head_out *h)
{
    size_t n = FIXED_HEAD_BOUND + strlen(spy_http_reason(h->status));
    for (size_t i = 0; i < h->nfields; i++)
        n += strlen(h->fields[i].name) + strlen(h->fields[i].value) + 4;
    return n;
}

/* A cursor over the output buffer; 'overflow' is sticky, as in Redis' rio. */
struct out {
    char *p;
    size_t left;
    int overflow;
};

/* put: appends len bytes, or marks the cursor overflowed. */
static void put(struct out *o, const char *s, size_t len)
{
    if (o->overflow || len > o->left) {
        o->overflow = 1;
        return;
    }
    memcpy(o->p, s, len);
    o->p += len;
    o->left -= len;
}

/* puts_: appends a C string. */
static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* put_field: appends "name: value\r\n". */
static void put_field(struct out *o, const char *name, const char *value)
{
    puts_(o, name);
    put(o, ": ", 2);
    puts_(o, value);
    put(o, "\r\n", 2);
}

size_t spy_http_format_head(char *buf, size_t cap, const struct spy_http_head_out *h)
{
    struct out o = {buf, cap, 0};
    char line[64];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %03d ", h->status);
    put(&o, line, (size_t)n);
    puts_(&o, spy_http_reason(h->status));
    put(&o, "\r\n", 2);
    put_field(&o, "Date", h->date);
    put_field(&o, "Server", "speedy");
    if (!h->keep_alive || h->framing == SPY_HTTP_FRAMING_EOF)
        put_field(&o, "Connection", "close");
    else if (h->minor_version == 0)
        put_field(&o, "Connection", "keep-alive");
    if (h->framing == SPY_HTTP_FRAMING_LENGTH) {
        snprintf(line, sizeof(line), "%" PRIu64, h->content_length);
        put_field(&o, "Content-Length", line);
    } else if (h->framing == SPY_HTTP_FRAMING_CHUNKED) {
        put_field(&o, "Transfer-Encoding", "chunked");
    }
    for (size_t i = 0; i < h->nfields; i++)
        put_field(&o, h->fields[i].name, h->fields[i].value);
    put(&o, "\r\n", 2);
    return o.overflow ? 0 : cap - o.left;
}

size_t spy_http_format_chunk_line(char out[SPY_HTTP_CHUNK_LINE_MAX], size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char digits[16];
    size_t n = 0;
    do {
        digits[n++] = hex[len & 15];
        len >>= 4;
    } while (len != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = digits[n - 1 - i];
    out[n] = '\r';
    out[n + 1] = '\n';
    return n + 2;
}

size_t spy_http_format_error(char *buf, size_t cap, const char *code, const char *message)
{
    struct out o = {buf, cap, 0};
    puts_(&o, "{\"errors\":[{\"code\":\"");
    puts_(&o, code);
    puts_(&o, "\",\"message\":\"");
    puts_(&o, message);
    puts_(&o, "\"}]}");
    return o.overflow ? 0 : cap - o.left;
}
