#include "test_meta_util.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/sha.h>

#include "common/status.h"

struct harness tm_harness;

long tm_now_ms(void)
{
    return harness_now_ms();
}

/* tm_setup: the harness picks a port that was free a moment ago; on a busy
 * machine another process may take it first, so a failed start is retried
 * (on a new port, in a new directory) a few times. */
int tm_setup(void **state)
{
    (void)state;
    for (int attempt = 0; attempt < 3; attempt++)
        if (harness_setup(&tm_harness) == 0)
            return 0;
    return -1;
}

int tm_teardown(void **state)
{
    (void)state;
    harness_teardown(&tm_harness);
    return 0;
}

void tm_config(struct spy_meta_config *cfg, const char *db)
{
    spy_meta_config_init(cfg);
    cfg->port = tm_harness.db_port;
    cfg->database = db;
    cfg->workers = 4;
    cfg->connect_timeout_s = 2;
    cfg->io_timeout_s = 4;
    cfg->backoff_min_ms = 50;
    cfg->backoff_max_ms = 500;
}

struct spy_meta *tm_meta(const char *db)
{
    struct spy_meta_config cfg;
    tm_config(&cfg, db);
    struct spy_meta *m = NULL;
    assert_int_equal(spy_meta_create(&cfg, &m), SPY_OK);
    assert_non_null(m);
    return m;
}

MYSQL *tm_sql_open(const char *db)
{
    MYSQL *my = mysql_init(NULL);
    assert_non_null(my);
    assert_non_null(
        mysql_real_connect(my, "127.0.0.1", "root", "", db, (unsigned)tm_harness.db_port, NULL, 0));
    return my;
}

static void vformat(char *buf, size_t cap, const char *fmt, va_list ap)
{
    int n = vsnprintf(buf, cap, fmt, ap);
    assert_true(n > 0 && (size_t)n < cap);
}

long long tm_sql_u64(MYSQL *my, const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vformat(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    if (mysql_query(my, sql) != 0)
        fail_msg("%s: %s", sql, mysql_error(my));
    MYSQL_RES *res = mysql_store_result(my);
    assert_non_null(res);
    MYSQL_ROW row = mysql_fetch_row(res);
    long long v = row != NULL && row[0] != NULL ? strtoll(row[0], NULL, 10) : -1;
    mysql_free_result(res);
    return v;
}

void tm_sql_exec(MYSQL *my, const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vformat(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    if (mysql_query(my, sql) != 0)
        fail_msg("%s: %s", sql, mysql_error(my));
    MYSQL_RES *res = mysql_store_result(my);
    mysql_free_result(res);
}

static void loop_post(void *ctx, struct spy_meta_op *op)
{
    struct tm_loop *l = ctx;
    pthread_mutex_lock(&l->mu);
    assert_true(l->n < sizeof(l->ops) / sizeof(l->ops[0]));
    l->ops[l->n++] = op;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

void tm_loop_init(struct tm_loop *l)
{
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->poster.post = loop_post;
    l->poster.ctx = l;
}

void tm_loop_destroy(struct tm_loop *l)
{
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
}

size_t tm_loop_run(struct tm_loop *l, size_t want)
{
    size_t done = 0;
    long deadline = tm_now_ms() + 10000;
    while (done < want && tm_now_ms() < deadline) {
        pthread_mutex_lock(&l->mu);
        if (l->n == 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&l->cv, &l->mu, &ts);
        }
        struct spy_meta_op *op = NULL;
        if (l->n > 0) {
            op = l->ops[0];
            memmove(l->ops, l->ops + 1, (l->n - 1) * sizeof(l->ops[0]));
            l->n--;
        }
        pthread_mutex_unlock(&l->mu);
        if (op != NULL) {
            spy_meta_op_deliver(op);
            done++;
        }
    }
    return done;
}

void tm_digest(const char *text, char out[72])
{
    unsigned char h[32];
    SHA256((const unsigned char *)text, strlen(text), h);
    strcpy(out, "sha256:");
    for (int i = 0; i < 32; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", h[i]);
}

void tm_pieces(struct spy_meta_piece *p, size_t n, uint64_t start, uint64_t total, uint32_t group,
               uint64_t fid0)
{
    uint64_t each = (total + n - 1) / n, at = start;
    for (size_t i = 0; i < n; i++) {
        uint64_t len = start + total - at < each ? start + total - at : each;
        p[i] = (struct spy_meta_piece){group, fid0 + i, at, len, (uint32_t)(0xc0ffee00u + i)};
        at += len;
    }
}

int tm_run(struct spy_meta *m, struct spy_meta_op *op, enum spy_meta_kind kind,
           const struct spy_meta_in *in)
{
    spy_meta_op_init(op, kind, NULL, NULL);
    op->in = *in;
    return spy_meta_run(m, op);
}

void tm_blob(struct spy_meta *m, const char *repo, const char *digest, uint64_t size, uint64_t fid0)
{
    size_t n = (size_t)((size + 999) / 1000);
    struct spy_meta_piece *p = calloc(n + 1, sizeof(*p));
    tm_pieces(p, n, 0, size, 1, fid0);
    struct spy_meta_op op;
    struct spy_meta_in in = {
        .repo = repo, .digest = digest, .size = size, .pieces = p, .npieces = n};
    assert_int_equal(tm_run(m, &op, SPY_META_BLOB_COMMIT, &in), SPY_OK);
    spy_meta_op_release(&op);
    free(p);
}

/* parse: a manifest body that must be valid. */
static char *parse(char *body, struct spy_oci_manifest *out)
{
    enum spy_oci_code rc = spy_oci_manifest_parse(NULL, body, strlen(body), out);
    if (rc != SPY_OCI_OK)
        fail_msg("manifest does not parse (%s): %s", out->detail, body);
    return body;
}

char *tm_image_manifest(const char *config, const char *const *layers, size_t nlayers,
                        const char *subject, const char *artifact_type, const char *annotation,
                        struct spy_oci_manifest *out)
{
    size_t cap = 4096 + nlayers * 200;
    char *b = malloc(cap);
    int n = snprintf(
        b, cap,
        "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
        "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
        "\"digest\":\"%s\",\"size\":1000},\"layers\":[",
        config);
    for (size_t i = 0; i < nlayers; i++)
        n += snprintf(b + n, cap - n,
                      "%s{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\","
                      "\"digest\":\"%s\",\"size\":1000}",
                      i > 0 ? "," : "", layers[i]);
    n += snprintf(b + n, cap - n, "]");
    if (subject != NULL)
        n += snprintf(b + n, cap - n,
                      ",\"subject\":{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                      "\"digest\":\"%s\",\"size\":123}",
                      subject);
    if (artifact_type != NULL)
        n += snprintf(b + n, cap - n, ",\"artifactType\":\"%s\"", artifact_type);
    if (annotation != NULL)
        n += snprintf(b + n, cap - n, ",\"annotations\":{\"org.example.note\":\"%s\"}", annotation);
    snprintf(b + n, cap - n, "}");
    return parse(b, out);
}

char *tm_index_manifest(const char *const *children, size_t nchildren, struct spy_oci_manifest *out)
{
    size_t cap = 1024 + nchildren * 200;
    char *b = malloc(cap);
    int n =
        snprintf(b, cap,
                 "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
                 "\"manifests\":[");
    for (size_t i = 0; i < nchildren; i++)
        n += snprintf(b + n, cap - n,
                      "%s{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                      "\"digest\":\"%s\",\"size\":500}",
                      i > 0 ? "," : "", children[i]);
    snprintf(b + n, cap - n, "]}");
    return parse(b, out);
}

int tm_put_manifest(struct spy_meta *m, const char *repo, const char *body,
                    const struct spy_oci_manifest *parsed, const char *const *tags, size_t ntags,
                    char digest_out[72], struct spy_meta_op *op)
{
    unsigned char h[32];
    SHA256((const unsigned char *)body, strlen(body), h);
    strcpy(digest_out, "sha256:");
    for (int i = 0; i < 32; i++)
        snprintf(digest_out + 7 + 2 * i, 3, "%02x", h[i]);
    struct spy_meta_in in = {.repo = repo,
                             .digest = digest_out,
                             .manifest = parsed,
                             .body = body,
                             .body_len = strlen(body),
                             .tags = tags,
                             .ntags = ntags};
    return tm_run(m, op, SPY_META_MANIFEST_PUT, &in);
}
