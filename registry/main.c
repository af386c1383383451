/* main.c - imageserver: the registry front end (docs/registry.md).
 *
 * Flags: every flag of the seed's imageserver with its default (-D, -db,
 * -dh, -dp, -h, -mh, -mp, -n, -p, -pw, -u; long forms too), plus threads,
 * piece size, deletes, the metadata pool's settings and the master wait.
 *
 * Start-up: flags (bad: one line, exit 2), signals blocked in every thread
 * (the main thread takes SIGTERM/SIGINT with sigwait), log, metadata (MySQL
 * unreachable or a migration failing: one line, exit 1), blobstore, a
 * bounded wait for its first route table (serving starts anyway: metadata
 * routes work and blob routes as soon as the master answers), the HTTP
 * loops (listener failure: one line, exit 1). --tls_cert/--tls_key: both or
 * neither (else one line, exit 2); unreadable or mismatched: one line, exit 1,
 * checked right after the flags.
 * Shutdown: HTTP stop (each loop waits for its requests' work and detaches
 * from the blobstore), metadata, blobstore; exit 0. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/flags.h"
#include "common/log.h"
#include "common/status.h"
#include "registry/oci_manifest.h"
#include "registry/registry.h"

#define EXIT_USAGE 2
#define NFLAGS     (14 + SPY_META_NFLAGS)

/* The daemon's configuration: every flag's value, read-only once parsed. */
struct options {
    int debug, delete_enabled;
    const char *host, *master_host, *tls_cert, *tls_key, *error_log;
    long long port, master_port, min_writable, threads, master_wait_s, stop_grace_s;
    uint64_t piece_size;
    struct spy_meta_flags meta;
};

static const char SUMMARY[] =
    "imageserver: the speedy registry front end, an OCI distribution-spec v1.1.1 registry whose\n"
    "metadata is in MySQL and whose blobs are pieces on the chunkserver groups\n"
    "(docs/registry.md).";

/* flag_table: the seed's flags, ours, and the metadata pool's. */
static size_t flag_table(struct options *o, struct spy_flag *t)
{
    const struct spy_flag flags[] = {
        {"D", SPY_FLAG_BOOL, &o->debug, "false", 0, 0, 0, "log debug level"},
        {"h", SPY_FLAG_STRING, &o->host, "0.0.0.0", 0, 0, 0, "imageserver listen ip"},
        {"p", SPY_FLAG_INT, &o->port, "6788", 1, 65535, 0, "imageserver listen port"},
        {"mh", SPY_FLAG_STRING, &o->master_host, "127.0.0.1", 0, 0, 0, "chunkmaster ip"},
        {"mp", SPY_FLAG_INT, &o->master_port, "8099", 1, 65535, 0, "chunkmaster port"},
        {"n", SPY_FLAG_INT, &o->min_writable, "2", 1, 1000, 0,
         "the limit num of available chunkserver each chunkserver group (fewer: no uploads)"},
        {"threads", SPY_FLAG_INT, &o->threads, "0", 0, 1024, 0, "event loops (0 = one per core)"},
        {"piece_size", SPY_FLAG_SIZE, &o->piece_size, "2M", 64LL << 10, 1LL << 30, 0,
         "bytes per stored piece of a blob"},
        {"delete", SPY_FLAG_BOOL, &o->delete_enabled, "true", 0, 0, 0,
         "allow DELETE of manifests, tags and blobs (false: 405 UNSUPPORTED)"},
        {"tls_cert", SPY_FLAG_STRING, &o->tls_cert, "", 0, 0, 0,
         "TLS certificate chain (PEM); with --tls_key, serve HTTPS (TLS 1.2+, HTTP/1.1)"},
        {"tls_key", SPY_FLAG_STRING, &o->tls_key, "", 0, 0, 0,
         "TLS private key (PEM) of --tls_cert"},
        {"master_wait", SPY_FLAG_INT, &o->master_wait_s, "5", 0, 3600, 0,
         "seconds to wait at start for the chunkmaster's route table (then serve anyway)"},
        {"stop_grace", SPY_FLAG_INT, &o->stop_grace_s, "5", 0, 3600, 0,
         "seconds requests in progress get to finish at SIGTERM"},
        {"error_log", SPY_FLAG_STRING, &o->error_log, "", 0, 0, 0,
         "log file (default: standard error)"},
    };
    size_t n = sizeof(flags) / sizeof(flags[0]);
    memcpy(t, flags, sizeof(flags));
    spy_meta_flags_table(&o->meta, t + n);
    return n + SPY_META_NFLAGS;
}

/* die: one line for the operator, then exit with 'code'. */
static void die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "imageserver: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(code);
}

/* parse_options: fills o; exits 0 on --help and 2 on a bad flag. */
static void parse_options(struct options *o, int argc, char **argv)
{
    struct spy_flag table[NFLAGS];
    size_t n = flag_table(o, table);
    char err[512];
    int rc = spy_flags_parse(table, n, argc, argv, NULL, err, sizeof(err));
    if (rc == SPY_FLAGS_HELP) {
        spy_flags_usage(stdout, "imageserver", SUMMARY, table, n);
        exit(0);
    }
    if (rc != SPY_FLAGS_OK)
        die(EXIT_USAGE, "%s", err);
    if ((o->tls_cert[0] == '\0') != (o->tls_key[0] == '\0'))
        die(EXIT_USAGE, "--tls_cert and --tls_key go together: give both or neither");
    if (o->master_host[0] == '\0')
        die(EXIT_USAGE, "bad value for --mh: empty");
    if (o->meta.database[0] == '\0' || o->meta.host[0] == '\0')
        die(EXIT_USAGE, "bad value for --db/--dh: empty");
}

/* registry_config: the registry's settings from the flags. */
static void registry_config(const struct options *o, struct spy_registry_config *c)
{
    memset(c, 0, sizeof(*c));
    c->host = o->host;
    c->port = (int)o->port;
    c->threads = (unsigned)o->threads;
    c->debug = o->debug;
    c->max_manifest = SPY_OCI_MANIFEST_MAX;
    c->delete_enabled = o->delete_enabled;
    spy_meta_config_init(&c->meta);
    spy_meta_flags_apply(&o->meta, &c->meta);
    spy_blob_config_init(&c->blob);
    c->blob.master_host = o->master_host;
    c->blob.master_port = (int)o->master_port;
    c->blob.min_writable = (int)o->min_writable;
    c->blob.piece_size = o->piece_size;
}

/* start_storage: metadata (exit 1 if MySQL cannot be used) and the
 * blobstore, with a bounded wait for its first route table. */
static void start_storage(const struct options *o, struct spy_registry *reg)
{
    const struct spy_meta_config *mc = &reg->cfg.meta;
    int rc = spy_meta_create(mc, &reg->meta);
    if (rc != SPY_OK)
        die(1, "cannot use MySQL database %s at %s:%d as %s: %s (see the log)", mc->database,
            mc->host, mc->port, mc->user, spy_strerror(rc));
    rc = spy_blob_create(&reg->cfg.blob, &reg->blob);
    if (rc != SPY_OK)
        die(1, "cannot start the blobstore: %s", spy_strerror(rc));
    if (spy_blob_wait_ready(reg->blob, (int)o->master_wait_s * 1000) != SPY_OK)
        spy_warn("no route table from the chunkmaster at %s:%lld after %lld s: serving anyway; "
                 "blob reads and uploads fail until it answers",
                 o->master_host, o->master_port, o->master_wait_s);
}

/* load_tls: the TLS context from --tls_cert/--tls_key, or NULL without them;
 * exit 1 if a file is unreadable or the key does not match. Called before
 * anything starts, so a bad file costs no MySQL or chunkmaster connection. */
static SSL_CTX *load_tls(const struct options *o)
{
    if (o->tls_cert[0] == '\0')
        return NULL;
    SSL_CTX *tls = NULL;
    char err[512];
    if (spy_http_tls_create(o->tls_cert, o->tls_key, &tls, err, sizeof(err)) != SPY_OK)
        die(1, "%s", err);
    return tls;
}

/* start_http: the loops (TLS with 'tls' unless NULL; the server takes its
 * own reference); exit 1 if the listener cannot be opened. */
static void start_http(const struct options *o, struct spy_registry *reg, SSL_CTX *tls)
{
    struct spy_http_config hc;
    spy_http_config_init(&hc);
    hc.tls = tls;
    hc.host = o->host;
    hc.port = (uint16_t)o->port;
    hc.threads = (unsigned)o->threads;
    hc.stop_grace_ms = (uint32_t)o->stop_grace_s * 1000;
    hc.error_fields = &spy_registry_api_version_field;
    hc.error_nfields = 1;
    struct spy_http_handler h;
    spy_registry_handler(reg, &h);
    struct spy_http_server *srv = NULL;
    int rc = spy_http_server_start(&hc, &h, &srv);
    if (rc != SPY_OK)
        die(1, "cannot listen on %s port %lld: %s (see the log)", o->host, o->port,
            spy_strerror(rc));
    __atomic_store_n(&reg->http, srv, __ATOMIC_RELEASE);
}

/* block_signals: SIGTERM/SIGINT go to sigwait in the main thread only (every
 * thread started later inherits the mask). */
static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

int main(int argc, char **argv)
{
    struct options o = {0};
    parse_options(&o, argc, argv);
    sigset_t set;
    block_signals(&set);
    spy_log_set_name("imageserver");
    spy_log_set_level(o.debug ? SPY_LOG_DEBUG : SPY_LOG_INFO);
    if (spy_log_open(o.error_log) != 0)
        die(1, "cannot open --error_log %s: %s", o.error_log, strerror(errno));
    SSL_CTX *tls = load_tls(&o);
    struct spy_registry reg = {0};
    registry_config(&o, &reg.cfg);
    start_storage(&o, &reg);
    start_http(&o, &reg, tls);
    int https = tls != NULL;
    SSL_CTX_free(tls); /* the server holds its own reference; NULL is a no-op */
    spy_info("serving %s on %s port %lld (chunkmaster %s:%lld, MySQL %s:%d/%s, piece size %llu)",
             https ? "HTTPS" : "HTTP", o.host, o.port, o.master_host, o.master_port,
             reg.cfg.meta.host, reg.cfg.meta.port, reg.cfg.meta.database,
             (unsigned long long)o.piece_size);
    int sig = 0;
    while (sigwait(&set, &sig) != 0)
        ;
    spy_info("signal %d: shutting down", sig);
    spy_http_server_stop(reg.http);
    spy_meta_destroy(reg.meta);
    spy_blob_destroy(reg.blob);
    spy_info("stopped");
    return 0;
}
