/* test_imageserver.c - the imageserver's router and handlers (everything but
 * uploads, which tests/registry/uploads.cmake covers) against a whole local
 * cluster: scripts/cluster in a temp dir on free ports, plus an imageserver
 * started here with --piece_size=64K (so small blobs span several pieces)
 * and --threads=2.
 *
 * Blobs are pushed with the simplest upload (monolithic POST ?digest=).
 * Every response is checked for Docker-Distribution-API-Version; error
 * responses for the spec's JSON body, code and status. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/registry/imgtest.h"

#define OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define OCI_INDEX    "application/vnd.oci.image.index.v1+json"
#define DOCKER_V2    "application/vnd.docker.distribution.manifest.v2+json"
#define DOCKER_LIST  "application/vnd.docker.distribution.manifest.list.v2+json"
#define OCI_EMPTY    "application/vnd.oci.empty.v1+json"
#define SBOM_TYPE    "application/vnd.example.sbom.v1"
#define SIG_TYPE     "application/vnd.example.signature.v1"
#define BIG_BLOB     (300 * 1024 + 17) /* 5 pieces of 64 KiB */
#define STREAM_BLOB  (16u << 20)       /* more than the socket buffers hold */

static struct imgtest_cluster cluster;
static pid_t img_pid;
static int img; /* the port of the imageserver started here */

/* The image pushed once and shared by several tests. */
static struct {
    char *layer; /* BIG_BLOB random bytes */
    char layer_digest[72], config_digest[72], small_digest[72], empty_digest[72];
    char image_digest[72];  /* the OCI image manifest of repo "test/image" */
    char stream_digest[72]; /* STREAM_BLOB bytes in "test/stream" */
    char *image_body;
} fx;

static const char CONFIG[] = "{\"architecture\":\"amd64\",\"os\":\"linux\"}";
static const char SMALL[] = "hello, registry\n";

/* ---- helpers ---------------------------------------------------------- */

/* req: one request on a fresh connection; asserts it got an answer that
 * carries the API version header. */
static void req(int port, const char *method, const char *target, const char *const *headers,
                const void *body, size_t len, struct imgtest_resp *r)
{
    assert_int_equal(imgtest_http(port, method, target, headers, body, len, r), 0);
    const char *v = imgtest_header(r, "Docker-Distribution-API-Version");
    assert_non_null(v);
    assert_string_equal(v, "registry/2.0");
}

/* expect_error: the spec's error body with this status and code. */
static void expect_error(struct imgtest_resp *r, int status, const char *code)
{
    if (r->status != status)
        fprintf(stderr, "expected %d %s, got %d: %s\n", status, code, r->status, r->body);
    assert_int_equal(r->status, status);
    assert_non_null(imgtest_header(r, "Content-Type"));
    assert_string_equal(imgtest_header(r, "Content-Type"), "application/json");
    assert_string_equal(imgtest_error_code(r), code);
}

/* get_error: a request without a body that must fail with status/code (a
 * HEAD gets the status and headers of the error, not its body). */
static void get_error(const char *method, const char *target, int status, const char *code)
{
    struct imgtest_resp r;
    req(img, method, target, NULL, NULL, 0, &r);
    if (strcmp(method, "HEAD") == 0) {
        assert_int_equal(r.status, status);
        assert_int_equal(r.len, 0);
        assert_true(strtoul(imgtest_header(&r, "Content-Length"), NULL, 10) > 0);
    } else {
        expect_error(&r, status, code);
    }
    imgtest_resp_free(&r);
}

/* header_is: asserts a header's exact value. */
static void header_is(const struct imgtest_resp *r, const char *name, const char *want)
{
    const char *v = imgtest_header(r, name);
    if (v == NULL || strcmp(v, want) != 0)
        fprintf(stderr, "%s: want '%s', got '%s'\n", name, want, v != NULL ? v : "(none)");
    assert_non_null(v);
    assert_string_equal(v, want);
}

/* put_manifest: PUT body as type under repo:ref; asserts 201 with Location
 * and Docker-Content-Digest; the digest into out. */
static void put_manifest(const char *repo, const char *ref, const char *type, const char *body,
                         char out[72])
{
    char target[512], ct[160], location[600];
    imgtest_sha256(body, strlen(body), out);
    snprintf(target, sizeof(target), "/v2/%s/manifests/%s", repo, ref);
    snprintf(ct, sizeof(ct), "Content-Type: %s", type);
    const char *h[] = {ct, NULL};
    struct imgtest_resp r;
    req(img, "PUT", target, h, body, strlen(body), &r);
    if (r.status != 201)
        fprintf(stderr, "PUT %s: %d %s\n", target, r.status, r.body);
    assert_int_equal(r.status, 201);
    snprintf(location, sizeof(location), "/v2/%s/manifests/%s", repo, out);
    header_is(&r, "Location", location);
    header_is(&r, "Docker-Content-Digest", out);
    imgtest_resp_free(&r);
}

/* check_manifest: GET and HEAD of repo:ref serve the exact bytes and type. */
static void check_manifest(int port, const char *repo, const char *ref, const char *type,
                           const char *body, const char *digest)
{
    char target[512], etag[80];
    snprintf(target, sizeof(target), "/v2/%s/manifests/%s", repo, ref);
    snprintf(etag, sizeof(etag), "\"%s\"", digest);
    struct imgtest_resp r;
    req(port, "GET", target, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, strlen(body));
    assert_memory_equal(r.body, body, r.len);
    header_is(&r, "Content-Type", type);
    header_is(&r, "Docker-Content-Digest", digest);
    header_is(&r, "ETag", etag);
    imgtest_resp_free(&r);
    req(port, "HEAD", target, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    assert_int_equal(strtoul(imgtest_header(&r, "Content-Length"), NULL, 10), strlen(body));
    header_is(&r, "Docker-Content-Digest", digest);
    header_is(&r, "Content-Type", type);
    imgtest_resp_free(&r);
}

/* push_blob: a blob through the monolithic upload; asserts 201. */
static void push_blob(const char *repo, const void *data, size_t len, char digest[72])
{
    int status = imgtest_put_blob(img, repo, data, len, digest);
    if (status != 201)
        fprintf(stderr, "monolithic upload to %s: %d\n", repo, status);
    assert_int_equal(status, 201);
}

/* descriptor: a JSON descriptor (static buffers, used right away). */
static const char *descriptor(const char *type, const char *digest, size_t size)
{
    static char buf[4][256];
    static int next;
    char *b = buf[next++ % 4];
    snprintf(b, 256, "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu}", type, digest, size);
    return b;
}

/* ---- set-up ----------------------------------------------------------- */

/* setup: the cluster, our imageserver, and the shared image's blobs. */
static int setup(void **state)
{
    (void)state;
    if (imgtest_cluster_up(&cluster) != 0)
        return -1;
    const char *extra[] = {"--piece_size=64K", "--threads=2", "-D"};
    img_pid = imgtest_imageserver_start(&cluster, "img", extra, 3, &img);
    if (img_pid < 0)
        return -1;
    fx.layer = malloc(BIG_BLOB);
    for (size_t i = 0; i < BIG_BLOB; i++)
        fx.layer[i] = (char)(random() >> 7);
    return 0;
}

/* teardown: a clean SIGTERM exit (0) of our imageserver, then the cluster. */
static int teardown(void **state)
{
    (void)state;
    int st = imgtest_stop(img_pid, 20000);
    if (st != 0) {
        fprintf(stderr, "imageserver exited with %d at SIGTERM\n", st);
        imgtest_dump_log(&cluster, "img.log");
    }
    /* every request state ended before the loops stopped */
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "grep -E 'still waiting|dropped' '%s/img.log' >&2", cluster.dir);
    if (system(cmd) == 0) {
        fprintf(stderr, "request states outlived the loops\n");
        st = -1;
    }
    imgtest_cluster_down(&cluster);
    free(fx.layer);
    free(fx.image_body);
    return st == 0 ? 0 : -1;
}

/* ---- base, routing, names --------------------------------------------- */

static void test_base_and_routing(void **state)
{
    (void)state;
    struct imgtest_resp r;
    req(img, "GET", "/v2/", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{}");
    header_is(&r, "Content-Type", "application/json");
    imgtest_resp_free(&r);
    req(img, "HEAD", "/v2/", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    imgtest_resp_free(&r);
    req(cluster.registry_port, "GET", "/v2/", NULL, NULL, 0, &r); /* the cluster's own */
    assert_int_equal(r.status, 200);
    imgtest_resp_free(&r);

    get_error("GET", "/v2/justaname", 404, "NAME_UNKNOWN");
    get_error("GET", "/nothere", 404, "UNSUPPORTED");
    get_error("GET", "/v2/UPPER/tags/list", 400, "NAME_INVALID");
    get_error("GET", "/v2/a..b/manifests/latest", 400, "NAME_INVALID");
    /* no manifest can carry an invalid tag: reads say unknown, a PUT says invalid */
    get_error("GET", "/v2/repo/manifests/-bad", 404, "MANIFEST_UNKNOWN");
    get_error("HEAD", "/v2/repo/manifests/.bad", 404, NULL);
    get_error("PUT", "/v2/repo/manifests/-bad", 400, "TAG_INVALID");
    get_error("GET", "/v2/repo/manifests/sha256:abc", 400, "DIGEST_INVALID");
    get_error("GET", "/v2/repo/blobs/sha256:ABC", 400, "DIGEST_INVALID");
    get_error("GET", "/v2/repo/blobs/notadigest", 400, "DIGEST_INVALID");
    get_error("GET", "/v2/repo/referrers/sha256:1234", 400, "DIGEST_INVALID");

    req(img, "POST", "/v2/", NULL, "", 0, &r);
    expect_error(&r, 405, "UNSUPPORTED");
    header_is(&r, "Allow", "GET, HEAD");
    imgtest_resp_free(&r);
    req(img, "PATCH", "/v2/repo/manifests/latest", NULL, "", 0, &r);
    expect_error(&r, 405, "UNSUPPORTED");
    header_is(&r, "Allow", "GET, HEAD, PUT, DELETE");
    imgtest_resp_free(&r);
    req(img, "PUT", "/v2/repo/blobs/sha256:" /* route still matched */, NULL, "", 0, &r);
    assert_int_equal(r.status, 405);
    imgtest_resp_free(&r);
}

/* ---- blobs ------------------------------------------------------------ */

static void test_blob_head_get(void **state)
{
    (void)state;
    push_blob("test/image", fx.layer, BIG_BLOB, fx.layer_digest);
    char target[256], etag[80], len[32];
    snprintf(target, sizeof(target), "/v2/test/image/blobs/%s", fx.layer_digest);
    snprintf(etag, sizeof(etag), "\"%s\"", fx.layer_digest);
    snprintf(len, sizeof(len), "%d", BIG_BLOB);
    struct imgtest_resp r;
    req(img, "HEAD", target, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    header_is(&r, "Content-Length", len);
    header_is(&r, "Docker-Content-Digest", fx.layer_digest);
    header_is(&r, "Accept-Ranges", "bytes");
    header_is(&r, "Content-Type", "application/octet-stream");
    header_is(&r, "ETag", etag);
    assert_int_equal(r.len, 0);
    imgtest_resp_free(&r);
    req(img, "GET", target, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, BIG_BLOB);
    assert_memory_equal(r.body, fx.layer, BIG_BLOB);
    header_is(&r, "Docker-Content-Digest", fx.layer_digest);
    imgtest_resp_free(&r);
    /* the cluster's imageserver (default flags, 2 MiB pieces) reads it too */
    req(cluster.registry_port, "GET", target, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, fx.layer, BIG_BLOB);
    imgtest_resp_free(&r);
    char inm[100];
    snprintf(inm, sizeof(inm), "If-None-Match: %s", etag);
    const char *h[] = {inm, NULL};
    req(img, "GET", target, h, NULL, 0, &r);
    assert_int_equal(r.status, 304);
    assert_int_equal(r.len, 0);
    imgtest_resp_free(&r);
}

/* range_get: GET with a Range header value; the response in *r. */
static void range_get(const char *range, struct imgtest_resp *r)
{
    char target[256], h[128];
    snprintf(target, sizeof(target), "/v2/test/image/blobs/%s", fx.layer_digest);
    snprintf(h, sizeof(h), "Range: %s", range);
    const char *hs[] = {h, NULL};
    req(img, "GET", target, hs, NULL, 0, r);
}

/* expect_single: a 206 with exactly layer[first..last]. */
static void expect_single(const char *range, size_t first, size_t last)
{
    struct imgtest_resp r;
    char cr[96];
    range_get(range, &r);
    assert_int_equal(r.status, 206);
    snprintf(cr, sizeof(cr), "bytes %zu-%zu/%d", first, last, BIG_BLOB);
    header_is(&r, "Content-Range", cr);
    header_is(&r, "Docker-Content-Digest", fx.layer_digest);
    assert_int_equal(r.len, last - first + 1);
    assert_memory_equal(r.body, fx.layer + first, r.len);
    imgtest_resp_free(&r);
}

static void test_blob_ranges(void **state)
{
    (void)state;
    expect_single("bytes=0-99", 0, 99);
    expect_single("bytes=65500-65600", 65500, 65600);          /* across a piece boundary */
    expect_single("bytes=1000-200000", 1000, 200000);          /* across four pieces */
    expect_single("bytes=-100", BIG_BLOB - 100, BIG_BLOB - 1); /* suffix */
    expect_single("bytes=300000-", 300000, BIG_BLOB - 1);      /* open end */
    expect_single("bytes=5-5000000", 5, BIG_BLOB - 1);         /* clamped */

    /* several ranges: multipart/byteranges in the order asked */
    struct imgtest_resp r;
    range_get("bytes=70000-70009, 0-4,-3", &r);
    assert_int_equal(r.status, 206);
    const char *ct = imgtest_header(&r, "Content-Type");
    assert_non_null(ct);
    const char *prefix = "multipart/byteranges; boundary=";
    assert_int_equal(strncmp(ct, prefix, strlen(prefix)), 0);
    const char *b = ct + strlen(prefix);
    const size_t spans[3][2] = {{70000, 70009}, {0, 4}, {BIG_BLOB - 3, BIG_BLOB - 1}};
    char *want = malloc(4096);
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        n += (size_t)snprintf(want + n, 4096 - n,
                              "%s--%s\r\nContent-Type: application/octet-stream\r\n"
                              "Content-Range: bytes %zu-%zu/%d\r\n\r\n",
                              i > 0 ? "\r\n" : "", b, spans[i][0], spans[i][1], BIG_BLOB);
        memcpy(want + n, fx.layer + spans[i][0], spans[i][1] - spans[i][0] + 1);
        n += spans[i][1] - spans[i][0] + 1;
    }
    n += (size_t)snprintf(want + n, 4096 - n, "\r\n--%s--\r\n", b);
    assert_int_equal(r.len, n);
    assert_memory_equal(r.body, want, n);
    free(want);
    imgtest_resp_free(&r);

    /* unsatisfiable: 416 RANGE_INVALID with bytes * /size */
    char cr[64];
    snprintf(cr, sizeof(cr), "bytes */%d", BIG_BLOB);
    range_get("bytes=400000-", &r);
    expect_error(&r, 416, "RANGE_INVALID");
    header_is(&r, "Content-Range", cr);
    imgtest_resp_free(&r);
    /* invalid syntax is ignored: the whole blob */
    range_get("bytes=9-1", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, BIG_BLOB);
    imgtest_resp_free(&r);
}

static void test_blob_errors_and_delete(void **state)
{
    (void)state;
    char d[72], target[256];
    push_blob("test/del", SMALL, strlen(SMALL), d);
    snprintf(target, sizeof(target), "/v2/test/other/blobs/%s", d);
    get_error("GET", target, 404, "BLOB_UNKNOWN"); /* not linked to that repository */
    get_error("GET",
              "/v2/test/del/blobs/"
              "sha256:0000000000000000000000000000000000000000000000000000000000000000",
              404, "BLOB_UNKNOWN");
    snprintf(target, sizeof(target), "/v2/test/del/blobs/%s", d);
    struct imgtest_resp r;
    req(img, "GET", target, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, SMALL);
    imgtest_resp_free(&r);
    req(img, "DELETE", target, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 202);
    imgtest_resp_free(&r);
    get_error("GET", target, 404, "BLOB_UNKNOWN");
    get_error("HEAD", target, 404, "BLOB_UNKNOWN");
    get_error("DELETE", target, 404, "BLOB_UNKNOWN");

    /* the empty blob: 200 with no bytes, also when a Range is asked */
    push_blob("test/del", "", 0, fx.empty_digest);
    snprintf(target, sizeof(target), "/v2/test/del/blobs/%s", fx.empty_digest);
    const char *h[] = {"Range: bytes=0-10", NULL};
    req(img, "GET", target, h, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    header_is(&r, "Content-Length", "0");
    imgtest_resp_free(&r);
}

/* ---- manifests -------------------------------------------------------- */

/* image_manifest: an image manifest body (OCI or Docker) over config and
 * the shared layers; malloc'd. */
static char *image_manifest(const char *type, const char *config_type, const char *layer_type,
                            const char *extra)
{
    char *b = malloc(2048);
    char cfg[256];
    snprintf(cfg, sizeof(cfg), "%s", descriptor(config_type, fx.config_digest, strlen(CONFIG)));
    snprintf(b, 2048,
             "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":%s,\"layers\":[%s,%s]%s}", type,
             cfg, descriptor(layer_type, fx.layer_digest, BIG_BLOB),
             descriptor(layer_type, fx.small_digest, strlen(SMALL)), extra);
    return b;
}

static void test_manifest_types(void **state)
{
    (void)state;
    push_blob("test/image", CONFIG, strlen(CONFIG), fx.config_digest);
    push_blob("test/image", SMALL, strlen(SMALL), fx.small_digest);
    if (fx.layer_digest[0] == '\0')
        push_blob("test/image", fx.layer, BIG_BLOB, fx.layer_digest);
    /* OCI image */
    fx.image_body = image_manifest(OCI_MANIFEST, "application/vnd.oci.image.config.v1+json",
                                   "application/vnd.oci.image.layer.v1.tar+gzip", "");
    put_manifest("test/image", "v1", OCI_MANIFEST, fx.image_body, fx.image_digest);
    check_manifest(img, "test/image", "v1", OCI_MANIFEST, fx.image_body, fx.image_digest);
    check_manifest(img, "test/image", fx.image_digest, OCI_MANIFEST, fx.image_body,
                   fx.image_digest);
    check_manifest(cluster.registry_port, "test/image", "v1", OCI_MANIFEST, fx.image_body,
                   fx.image_digest);
    /* Docker schema 2 */
    char docker_digest[72];
    char *docker = image_manifest(DOCKER_V2, "application/vnd.docker.container.image.v1+json",
                                  "application/vnd.docker.image.rootfs.diff.tar.gzip", "");
    put_manifest("test/image", "docker", DOCKER_V2, docker, docker_digest);
    check_manifest(img, "test/image", "docker", DOCKER_V2, docker, docker_digest);
    /* OCI index and Docker list over them */
    char body[1024], index_digest[72], list_digest[72];
    snprintf(body, sizeof(body),
             "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":[{\"mediaType\":\"%s\","
             "\"digest\":\"%s\",\"size\":%zu,\"platform\":{\"architecture\":\"amd64\",\"os\":"
             "\"linux\"}}]}",
             OCI_INDEX, OCI_MANIFEST, fx.image_digest, strlen(fx.image_body));
    put_manifest("test/image", "index", OCI_INDEX, body, index_digest);
    check_manifest(img, "test/image", index_digest, OCI_INDEX, body, index_digest);
    snprintf(body, sizeof(body), "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":[%s]}",
             DOCKER_LIST, descriptor(DOCKER_V2, docker_digest, strlen(docker)));
    put_manifest("test/image", "list", DOCKER_LIST, body, list_digest);
    check_manifest(img, "test/image", "list", DOCKER_LIST, body, list_digest);
    /* an artifact: empty config, a custom artifactType */
    char empty_cfg[72], art_digest[72];
    push_blob("test/image", "{}", 2, empty_cfg);
    snprintf(body, sizeof(body),
             "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"artifactType\":\"%s\",\"config\":%s,"
             "\"layers\":[%s]}",
             OCI_MANIFEST, SBOM_TYPE, descriptor(OCI_EMPTY, empty_cfg, 2),
             descriptor("text/plain", fx.small_digest, strlen(SMALL)));
    put_manifest("test/image", "sbom", OCI_MANIFEST, body, art_digest);
    check_manifest(img, "test/image", "sbom", OCI_MANIFEST, body, art_digest);
    /* the same PUT again is idempotent */
    put_manifest("test/image", "sbom", OCI_MANIFEST, body, art_digest);
    /* by digest, with ?tag= */
    char target[256], ct[128];
    snprintf(target, sizeof(target), "/v2/test/image/manifests/%s?tag=t1&tag=t2", docker_digest);
    snprintf(ct, sizeof(ct), "Content-Type: %s", DOCKER_V2);
    const char *h[] = {ct, NULL};
    struct imgtest_resp r;
    req(img, "PUT", target, h, docker, strlen(docker), &r);
    assert_int_equal(r.status, 201);
    assert_int_equal(imgtest_header_count(&r, "OCI-Tag"), 2);
    imgtest_resp_free(&r);
    check_manifest(img, "test/image", "t2", DOCKER_V2, docker, docker_digest);
    free(docker);
}

static void test_manifest_errors(void **state)
{
    (void)state;
    char ct[128], target[256];
    snprintf(ct, sizeof(ct), "Content-Type: %s", OCI_MANIFEST);
    const char *h[] = {ct, NULL};
    struct imgtest_resp r;
    /* a referenced blob the repository lacks: one error per digest */
    const char *zero = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":%s,"
             "\"layers\":[]}",
             OCI_MANIFEST, descriptor("application/vnd.oci.image.config.v1+json", zero, 10));
    req(img, "PUT", "/v2/test/errs/manifests/v1", h, body, strlen(body), &r);
    expect_error(&r, 400, "MANIFEST_BLOB_UNKNOWN");
    assert_non_null(strstr(r.body, zero));
    imgtest_resp_free(&r);
    /* not JSON; a mediaType differing from Content-Type */
    req(img, "PUT", "/v2/test/errs/manifests/v1", h, "{not json", 9, &r);
    expect_error(&r, 400, "MANIFEST_INVALID");
    imgtest_resp_free(&r);
    snprintf(ct, sizeof(ct), "Content-Type: %s", DOCKER_V2);
    req(img, "PUT", "/v2/test/errs/manifests/v1", h, fx.image_body, strlen(fx.image_body), &r);
    expect_error(&r, 400, "MANIFEST_INVALID");
    imgtest_resp_free(&r);
    /* by digest, with other bytes */
    snprintf(ct, sizeof(ct), "Content-Type: %s", OCI_MANIFEST);
    snprintf(target, sizeof(target), "/v2/test/errs/manifests/%s", zero);
    req(img, "PUT", target, h, fx.image_body, strlen(fx.image_body), &r);
    expect_error(&r, 400, "DIGEST_INVALID");
    imgtest_resp_free(&r);
    /* a bad ?tag= */
    req(img, "PUT", "/v2/test/errs/manifests/v1?tag=.bad", h, "{}", 2, &r);
    expect_error(&r, 400, "TAG_INVALID");
    imgtest_resp_free(&r);
    /* over 4 MiB: refused from the Content-Length, before the body */
    const char *big[] = {ct, "Content-Length: 4194305", NULL};
    req(img, "PUT", "/v2/test/errs/manifests/v1", big, NULL, 0, &r);
    expect_error(&r, 413, "SIZE_INVALID");
    imgtest_resp_free(&r);
    /* exactly 4 MiB is accepted (whitespace-padded index); one more byte
     * sent chunked is 413 */
    const size_t max = 4u << 20;
    char *huge = malloc(max + 64);
    int n = snprintf(huge, max, "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":[]",
                     OCI_INDEX);
    memset(huge + n, ' ', max - (size_t)n - 1);
    huge[max - 1] = '}';
    snprintf(ct, sizeof(ct), "Content-Type: %s", OCI_INDEX);
    req(img, "PUT", "/v2/test/errs/manifests/huge", h, huge, max, &r);
    assert_int_equal(r.status, 201);
    imgtest_resp_free(&r);
    char head[32];
    n = snprintf(head, sizeof(head), "%zx\r\n", max + 1);
    memmove(huge + n, huge, max);
    memcpy(huge, head, (size_t)n);
    huge[n + max] = ' ';
    memcpy(huge + n + max + 1, "\r\n0\r\n\r\n", 7);
    const char *chunked[] = {ct, "Transfer-Encoding: chunked", NULL};
    req(img, "PUT", "/v2/test/errs/manifests/huge", chunked, huge, (size_t)n + max + 8, &r);
    expect_error(&r, 413, "SIZE_INVALID");
    imgtest_resp_free(&r);
    free(huge);
    /* unknown manifests */
    get_error("GET", "/v2/test/errs/manifests/nope", 404, "MANIFEST_UNKNOWN");
    get_error("GET", "/v2/no/such/repo/manifests/latest", 404, "MANIFEST_UNKNOWN");
    get_error("HEAD", "/v2/test/errs/manifests/nope", 404, "MANIFEST_UNKNOWN");
    get_error("GET", "/v2/test/errs/manifests/md5:0123", 404, "MANIFEST_UNKNOWN");
}

static void test_manifest_delete(void **state)
{
    (void)state;
    char d[72], target[256];
    const char *body = "{\"schemaVersion\":2,\"mediaType\":\"" OCI_INDEX "\",\"manifests\":[],"
                       "\"annotations\":{\"k\":\"delete-me\"}}";
    put_manifest("test/delm", "a", OCI_INDEX, body, d);
    put_manifest("test/delm", "b", OCI_INDEX, body, d);
    struct imgtest_resp r;
    req(img, "DELETE", "/v2/test/delm/manifests/a", NULL, NULL, 0, &r); /* the tag only */
    assert_int_equal(r.status, 202);
    imgtest_resp_free(&r);
    get_error("GET", "/v2/test/delm/manifests/a", 404, "MANIFEST_UNKNOWN");
    check_manifest(img, "test/delm", "b", OCI_INDEX, body, d);
    snprintf(target, sizeof(target), "/v2/test/delm/manifests/%s", d);
    check_manifest(img, "test/delm", d, OCI_INDEX, body, d); /* now cached by digest */
    req(img, "DELETE", target, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 202);
    imgtest_resp_free(&r);
    get_error("GET", target, 404, "MANIFEST_UNKNOWN");
    get_error("GET", "/v2/test/delm/manifests/b", 404, "MANIFEST_UNKNOWN");
    get_error("DELETE", target, 404, "MANIFEST_UNKNOWN");
}

/* ---- referrers -------------------------------------------------------- */

/* push_referrer: an artifact of artifact_type whose subject is subject. */
static void push_referrer(const char *repo, const char *artifact_type, const char *subject,
                          const char *annotation, char digest[72])
{
    char body[1024], cfg[72];
    push_blob(repo, "{}", 2, cfg);
    snprintf(body, sizeof(body),
             "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"artifactType\":\"%s\",\"config\":%s,"
             "\"layers\":[],\"subject\":%s,\"annotations\":{\"note\":\"%s\"}}",
             OCI_MANIFEST, artifact_type, descriptor(OCI_EMPTY, cfg, 2),
             descriptor(OCI_MANIFEST, subject, 100), annotation);
    char target[256], ct[128];
    imgtest_sha256(body, strlen(body), digest);
    snprintf(target, sizeof(target), "/v2/%s/manifests/%s", repo, digest);
    snprintf(ct, sizeof(ct), "Content-Type: %s", OCI_MANIFEST);
    const char *h[] = {ct, NULL};
    struct imgtest_resp r;
    req(img, "PUT", target, h, body, strlen(body), &r);
    assert_int_equal(r.status, 201);
    header_is(&r, "OCI-Subject", subject);
    imgtest_resp_free(&r);
}

/* referrers: GET the index; returns its "manifests" array (owned by *root). */
static json_t *referrers(const char *target, json_t **root, int *filtered)
{
    struct imgtest_resp r;
    req(img, "GET", target, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    header_is(&r, "Content-Type", OCI_INDEX);
    *filtered = imgtest_header(&r, "OCI-Filters-Applied") != NULL;
    if (*filtered)
        header_is(&r, "OCI-Filters-Applied", "artifactType");
    *root = json_loadb(r.body, r.len, 0, NULL);
    imgtest_resp_free(&r);
    assert_non_null(*root);
    assert_int_equal(json_integer_value(json_object_get(*root, "schemaVersion")), 2);
    json_t *m = json_object_get(*root, "manifests");
    assert_true(json_is_array(m));
    return m;
}

static void test_referrers(void **state)
{
    (void)state;
    const char *subject =
        "sha256:2222222222222222222222222222222222222222222222222222222222222222"; /* dangling */
    char sbom[72], sig[72], target[256];
    push_referrer("test/refs", SBOM_TYPE, subject, "first", sbom);
    push_referrer("test/refs", SIG_TYPE, subject, "second", sig);
    json_t *root;
    int filtered;
    snprintf(target, sizeof(target), "/v2/test/refs/referrers/%s", subject);
    json_t *m = referrers(target, &root, &filtered);
    assert_false(filtered);
    assert_int_equal(json_array_size(m), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *e = json_array_get(m, i);
        const char *d = json_string_value(json_object_get(e, "digest"));
        const char *at = json_string_value(json_object_get(e, "artifactType"));
        const char *note =
            json_string_value(json_object_get(json_object_get(e, "annotations"), "note"));
        assert_non_null(d);
        assert_non_null(at);
        assert_non_null(note);
        assert_string_equal(at, strcmp(d, sbom) == 0 ? SBOM_TYPE : SIG_TYPE);
        assert_string_equal(note, strcmp(d, sbom) == 0 ? "first" : "second");
        assert_string_equal(json_string_value(json_object_get(e, "mediaType")), OCI_MANIFEST);
    }
    json_decref(root);
    snprintf(target, sizeof(target), "/v2/test/refs/referrers/%s?artifactType=%s", subject,
             SIG_TYPE);
    m = referrers(target, &root, &filtered);
    assert_true(filtered);
    assert_int_equal(json_array_size(m), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(m, 0), "digest")), sig);
    json_decref(root);
    /* nothing refers to it, or no such repository: an empty index */
    snprintf(target, sizeof(target), "/v2/test/refs/referrers/%s", sbom);
    m = referrers(target, &root, &filtered);
    assert_int_equal(json_array_size(m), 0);
    json_decref(root);
    snprintf(target, sizeof(target), "/v2/no/repo/referrers/%s", subject);
    m = referrers(target, &root, &filtered);
    assert_int_equal(json_array_size(m), 0);
    json_decref(root);
    /* a filter longer than any media type matches nothing */
    char longer[700];
    int n = snprintf(longer, sizeof(longer), "/v2/test/refs/referrers/%s?artifactType=a/", subject);
    memset(longer + n, 'x', 300);
    longer[n + 300] = '\0';
    m = referrers(longer, &root, &filtered);
    assert_true(filtered);
    assert_int_equal(json_array_size(m), 0);
    json_decref(root);
}

/* ---- tags and catalog ------------------------------------------------- */

/* tag_page: GET target; asserts the status-200 list equals want (a
 * NULL-terminated list) and the Link header equals link (NULL: none). */
static void tag_page(const char *target, const char *const *want, const char *link)
{
    struct imgtest_resp r;
    req(img, "GET", target, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    header_is(&r, "Content-Type", "application/json");
    json_t *root = json_loadb(r.body, r.len, 0, NULL);
    json_t *tags = json_object_get(root, "tags");
    assert_string_equal(json_string_value(json_object_get(root, "name")), "test/page");
    size_t n = 0;
    for (; want[n] != NULL; n++)
        assert_string_equal(json_string_value(json_array_get(tags, n)), want[n]);
    assert_int_equal(json_array_size(tags), n);
    if (link != NULL)
        header_is(&r, "Link", link);
    else
        assert_null(imgtest_header(&r, "Link"));
    json_decref(root);
    imgtest_resp_free(&r);
}

static void test_tags_and_catalog(void **state)
{
    (void)state;
    const char *body = "{\"schemaVersion\":2,\"mediaType\":\"" OCI_INDEX "\",\"manifests\":[]}";
    const char *tags[] = {"b", "a", "z_", "A", "1.0", "c"};
    char d[72];
    for (size_t i = 0; i < 6; i++)
        put_manifest("test/page", tags[i], OCI_INDEX, body, d);
    const char *all[] = {"1.0", "A", "a", "b", "c", "z_", NULL};
    tag_page("/v2/test/page/tags/list", all, NULL);
    const char *p1[] = {"1.0", "A", NULL}, *p2[] = {"a", "b", NULL}, *p3[] = {"c", "z_", NULL};
    tag_page("/v2/test/page/tags/list?n=2", p1,
             "</v2/test/page/tags/list?n=2&last=A>; rel=\"next\"");
    tag_page("/v2/test/page/tags/list?n=2&last=A", p2,
             "</v2/test/page/tags/list?n=2&last=b>; rel=\"next\"");
    tag_page("/v2/test/page/tags/list?n=2&last=b", p3, NULL);
    tag_page("/v2/test/page/tags/list?last=b", p3, NULL);
    const char *none[] = {NULL};
    tag_page("/v2/test/page/tags/list?n=0", none, NULL);
    char longer[400] = "/v2/test/page/tags/list?last=b"; /* a cursor longer than any tag */
    memset(longer + strlen(longer), 'x', 300);
    tag_page(longer, p3, NULL);
    get_error("GET", "/v2/test/page/tags/list?n=x", 400, "PAGINATION_NUMBER_INVALID");
    get_error("GET", "/v2/test/page/tags/list?n=1001", 400, "PAGINATION_NUMBER_INVALID");
    get_error("GET", "/v2/no/such/repo/tags/list", 404, "NAME_UNKNOWN");

    /* the catalog, page by page, equals the whole list, sorted */
    struct imgtest_resp r;
    req(img, "GET", "/v2/_catalog", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    json_t *root = json_loadb(r.body, r.len, 0, NULL);
    json_t *full = json_object_get(root, "repositories");
    imgtest_resp_free(&r);
    size_t count = json_array_size(full);
    assert_true(count >= 3);
    char target[512] = "/v2/_catalog?n=1";
    for (size_t i = 0; i < count; i++) {
        req(img, "GET", target, NULL, NULL, 0, &r);
        assert_int_equal(r.status, 200);
        json_t *page = json_loadb(r.body, r.len, 0, NULL);
        json_t *repos = json_object_get(page, "repositories");
        assert_int_equal(json_array_size(repos), 1);
        assert_string_equal(json_string_value(json_array_get(repos, 0)),
                            json_string_value(json_array_get(full, i)));
        if (i > 0)
            assert_true(strcmp(json_string_value(json_array_get(full, i - 1)),
                               json_string_value(json_array_get(full, i))) < 0);
        const char *link = imgtest_header(&r, "Link");
        if (i + 1 < count) {
            assert_non_null(link);
            assert_int_equal(sscanf(link, "<%511[^>]>; rel=\"next\"", target), 1);
        } else {
            assert_null(link);
        }
        json_decref(page);
        imgtest_resp_free(&r);
    }
    json_decref(root);
    get_error("GET", "/v2/_catalog?n=-1", 400, "PAGINATION_NUMBER_INVALID");
}

/* ---- connection and cache behaviour ----------------------------------- */

static void test_keepalive(void **state)
{
    (void)state;
    int64_t before = imgtest_metric(img, "http_connections_total");
    int fd = imgtest_connect(img);
    assert_true(fd >= 0);
    char blob[256], manifest[256], ct[128];
    snprintf(blob, sizeof(blob), "/v2/test/image/blobs/%s", fx.layer_digest);
    snprintf(manifest, sizeof(manifest), "/v2/test/image/manifests/%s", fx.image_digest);
    snprintf(ct, sizeof(ct), "Content-Type: %s", OCI_MANIFEST);
    const char *range[] = {"Range: bytes=0-9,20-29", NULL}, *put[] = {ct, NULL};
    struct {
        const char *method, *target;
        const char *const *headers;
        const char *body;
        int status;
    } steps[] = {
        {"GET", "/v2/", NULL, NULL, 200},
        {"HEAD", blob, NULL, NULL, 200},
        {"GET", blob, range, NULL, 206},
        {"GET", "/v2/test/image/manifests/nope", NULL, NULL, 404},
        {"GET", manifest, NULL, NULL, 200},
        {"PUT", "/v2/test/image/manifests/keepalive", put, fx.image_body, 201},
        {"GET", "/v2/test/image/tags/list?n=1", NULL, NULL, 200},
        {"GET", blob, NULL, NULL, 200},
        {"DELETE", "/v2/test/image/manifests/keepalive", NULL, NULL, 202},
        {"GET", "/v2/UPPER/tags/list", NULL, NULL, 400},
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        struct imgtest_resp r;
        const char *b = steps[i].body;
        assert_int_equal(imgtest_request(fd, steps[i].method, steps[i].target, steps[i].headers, b,
                                         b != NULL ? strlen(b) : 0, &r),
                         0);
        assert_int_equal(r.status, steps[i].status);
        assert_false(r.closed);
        imgtest_resp_free(&r);
    }
    close(fd);
    /* one connection for the ten requests, one for each metrics read */
    assert_int_equal(imgtest_metric(img, "http_connections_total") - before, 2);
}

static void test_hot_path_cache(void **state)
{
    (void)state;
    char manifest[256], blob[256];
    snprintf(manifest, sizeof(manifest), "/v2/test/image/manifests/%s", fx.image_digest);
    snprintf(blob, sizeof(blob), "/v2/test/image/blobs/%s", fx.layer_digest);
    struct imgtest_resp r;
    req(img, "GET", manifest, NULL, NULL, 0, &r); /* fills the cache if it was not */
    imgtest_resp_free(&r);
    req(img, "HEAD", blob, NULL, NULL, 0, &r);
    imgtest_resp_free(&r);
    int64_t hits = imgtest_metric(img, "meta_cache_hits_total");
    int64_t submitted = imgtest_metric(img, "meta_submitted_total");
    assert_true(hits >= 0 && submitted >= 0);
    req(img, "GET", manifest, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, fx.image_body, r.len);
    imgtest_resp_free(&r);
    req(img, "HEAD", blob, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    imgtest_resp_free(&r);
    assert_int_equal(imgtest_metric(img, "meta_cache_hits_total") - hits, 2);
    assert_int_equal(imgtest_metric(img, "meta_submitted_total"), submitted); /* no MySQL */
    req(img, "GET", "/healthz", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"status\":\"ok\""));
    imgtest_resp_free(&r);
}

/* ---- flags and start-up ----------------------------------------------- */

/* run_img: runs imageserver with args; its exit status. */
static int run_img(const char *const *args, size_t n)
{
    char bin[256];
    snprintf(bin, sizeof(bin), "%s/registry/imageserver", getenv("SPY_BUILD_DIR"));
    char *argv[16] = {bin};
    for (size_t i = 0; i < n && i < 14; i++)
        argv[i + 1] = (char *)args[i];
    return imgtest_run(&cluster, "flags.log", argv, 20000);
}

static void test_flags_and_startup(void **state)
{
    (void)state;
    const char *help[] = {"--help"};
    assert_int_equal(run_img(help, 1), 0);
    const char *bad[] = {"-p=notaport"};
    assert_int_equal(run_img(bad, 1), 2);
    const char *unknown[] = {"--no_such_flag=1"};
    assert_int_equal(run_img(unknown, 1), 2);
    const char *tls_one[] = {"--tls_cert=/x.pem"}; /* cert without key: a flag error */
    assert_int_equal(run_img(tls_one, 1), 2);
    const char *tls[] = {"--tls_cert=/x.pem", "--tls_key=/x.key"}; /* unreadable: start-up error */
    assert_int_equal(run_img(tls, 2), 1);
    const char *piece[] = {"--piece_size=1K"};
    assert_int_equal(run_img(piece, 1), 2);
    char dp[32], mp[32], closed[32];
    snprintf(dp, sizeof(dp), "-dp=%d", cluster.db_port);
    snprintf(mp, sizeof(mp), "-mp=%d", cluster.master_port);
    snprintf(closed, sizeof(closed), "-dp=%d", imgtest_free_port()); /* nobody there */
    const char *nodb[] = {closed, "-p=1"};
    assert_int_equal(run_img(nodb, 2), 1);
    const char *nolisten[] = {dp, mp, "-h=192.0.2.1", "-p=5000", "--master_wait=0"};
    assert_int_equal(run_img(nolisten, 5), 1);

    /* --delete=false: deletes are refused with 405 UNSUPPORTED */
    const char *nodelete[] = {"--delete=false", "--threads=1"};
    int port;
    pid_t pid = imgtest_imageserver_start(&cluster, "nodelete", nodelete, 2, &port);
    assert_true(pid > 0);
    char target[256];
    struct imgtest_resp r;
    snprintf(target, sizeof(target), "/v2/test/image/blobs/%s", fx.layer_digest);
    req(port, "DELETE", target, NULL, NULL, 0, &r);
    expect_error(&r, 405, "UNSUPPORTED");
    imgtest_resp_free(&r);
    req(port, "DELETE", "/v2/test/image/manifests/v1", NULL, NULL, 0, &r);
    expect_error(&r, 405, "UNSUPPORTED");
    imgtest_resp_free(&r);
    assert_int_equal(imgtest_stop(pid, 20000), 0);

    /* no chunkmaster: it serves anyway; metadata works, blobs fail cleanly */
    char nomaster[32];
    snprintf(nomaster, sizeof(nomaster), "-mp=%d", imgtest_free_port());
    const char *blind[] = {nomaster, "--master_wait=1", "--threads=1"};
    pid = imgtest_imageserver_start(&cluster, "nomaster", blind, 3, &port);
    assert_true(pid > 0);
    req(port, "GET", "/healthz", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 503);
    imgtest_resp_free(&r);
    check_manifest(port, "test/image", "v1", OCI_MANIFEST, fx.image_body, fx.image_digest);
    req(port, "GET", target, NULL, NULL, 0, &r);
    expect_error(&r, 500, "UNKNOWN");
    imgtest_resp_free(&r);
    assert_int_equal(imgtest_stop(pid, 20000), 0);
}

/* raw_get: sends a GET for target on a new connection and reads until the
 * server closes or max bytes came; the bytes in *out (malloc'd). */
static size_t raw_get(int port, const char *target, size_t max, char **out)
{
    int fd = imgtest_connect(port);
    assert_true(fd >= 0);
    char request[512];
    int n = snprintf(request, sizeof(request), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", target);
    assert_int_equal(write(fd, request, (size_t)n), n);
    char *buf = malloc(max + 1);
    size_t len = 0;
    ssize_t r;
    while (len < max && (r = read(fd, buf + len, max - len)) > 0)
        len += (size_t)r;
    buf[len] = '\0';
    close(fd);
    *out = buf;
    return len;
}

static void test_streaming_and_client_gone(void **state)
{
    (void)state;
    char *data = malloc(STREAM_BLOB);
    for (size_t i = 0; i < STREAM_BLOB; i++)
        data[i] = (char)(i * 2654435761u >> 13);
    push_blob("test/stream", data, STREAM_BLOB, fx.stream_digest);
    char target[256], got[72];
    snprintf(target, sizeof(target), "/v2/test/stream/blobs/%s", fx.stream_digest);
    struct imgtest_resp r;
    req(img, "GET", target, NULL, NULL, 0, &r); /* 256 pieces, streamed */
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, STREAM_BLOB);
    imgtest_sha256(r.body, r.len, got);
    assert_string_equal(got, fx.stream_digest);
    imgtest_resp_free(&r);
    free(data);
    /* a client that reads 4 KiB and hangs up: the request is aborted */
    int64_t aborts = imgtest_metric(img, "http_aborts_total");
    char *head;
    raw_get(img, target, 4096, &head);
    assert_non_null(strstr(head, "HTTP/1.1 200 OK"));
    free(head);
    int64_t now = aborts;
    for (int i = 0; i < 200 && now == aborts; i++) {
        usleep(50000);
        now = imgtest_metric(img, "http_aborts_total");
    }
    assert_int_equal(now, aborts + 1);
    req(img, "HEAD", target, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    imgtest_resp_free(&r);
}

/* read_some: reads from fd until at least want bytes came (or EOF); the
 * count. */
static size_t read_some(int fd, char *buf, size_t cap, size_t want)
{
    size_t len = 0;
    ssize_t r;
    while (len < want && len < cap && (r = read(fd, buf + len, cap - len)) > 0)
        len += (size_t)r;
    return len;
}

/* Every chunkserver killed. During a download, after the head (with its
 * Content-Length) went out: the connection must close short of it, never
 * end cleanly. Before a download: a proper 500 error answer. After the
 * cluster is back, the blobs read again. */
static void test_storage_failure(void **state)
{
    (void)state;
    int fd = imgtest_connect(img);
    assert_true(fd >= 0);
    char request[512];
    int n = snprintf(request, sizeof(request),
                     "GET /v2/test/stream/blobs/%s HTTP/1.1\r\nHost: x\r\n\r\n", fx.stream_digest);
    assert_int_equal(write(fd, request, (size_t)n), n);
    char *buf = malloc(STREAM_BLOB + 4096);
    size_t len = read_some(fd, buf, STREAM_BLOB + 4096, 65536); /* then we stall */
    assert_int_equal(imgtest_kill_chunkservers(&cluster), 0);
    len += read_some(fd, buf + len, STREAM_BLOB + 4096 - len, STREAM_BLOB + 4096);
    close(fd);
    buf[len < STREAM_BLOB + 4096 ? len : len - 1] = '\0';
    char cl[64];
    snprintf(cl, sizeof(cl), "Content-Length: %u\r\n", STREAM_BLOB);
    assert_int_equal(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17), 0);
    assert_non_null(strstr(buf, cl));
    char *body = strstr(buf, "\r\n\r\n");
    assert_non_null(body);
    assert_true(len - (size_t)(body + 4 - buf) < STREAM_BLOB);
    free(buf);

    char target[256];
    snprintf(target, sizeof(target), "/v2/test/image/blobs/%s", fx.layer_digest);
    struct imgtest_resp r;
    req(img, "GET", target, NULL, NULL, 0, &r);
    expect_error(&r, 500, "UNKNOWN");
    imgtest_resp_free(&r);

    assert_int_equal(imgtest_cluster_restart(&cluster), 0);
    int ok = 0;
    for (int i = 0; i < 100 && !ok; i++) { /* the blacklist lets the servers back in */
        req(img, "GET", target, NULL, NULL, 0, &r);
        ok = r.status == 200 && r.len == BIG_BLOB && memcmp(r.body, fx.layer, BIG_BLOB) == 0;
        imgtest_resp_free(&r);
        if (!ok)
            usleep(100000);
    }
    assert_true(ok);
}

/* Shutdown with a download in progress: SIGTERM while a client holds a
 * half-read GET; the imageserver still exits 0 within its grace. */
static void test_stop_during_download(void **state)
{
    (void)state;
    const char *extra[] = {"--threads=1", "--stop_grace=1"};
    int port;
    pid_t pid = imgtest_imageserver_start(&cluster, "stopper", extra, 2, &port);
    assert_true(pid > 0);
    int fd = imgtest_connect(port);
    assert_true(fd >= 0);
    char request[512];
    int n = snprintf(request, sizeof(request),
                     "GET /v2/test/stream/blobs/%s HTTP/1.1\r\nHost: x\r\n\r\n", fx.stream_digest);
    assert_int_equal(write(fd, request, (size_t)n), n);
    char buf[1024];
    assert_true(read(fd, buf, sizeof(buf)) > 0); /* the head and some bytes; then we stall */
    assert_int_equal(imgtest_stop(pid, 20000), 0);
    close(fd);
}

int main(void)
{
    /* In order: later tests use what earlier ones pushed; the storage
     * failure kills and restarts the chunkservers, so it comes last. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_and_routing),
        cmocka_unit_test(test_blob_head_get),
        cmocka_unit_test(test_blob_ranges),
        cmocka_unit_test(test_blob_errors_and_delete),
        cmocka_unit_test(test_manifest_types),
        cmocka_unit_test(test_manifest_errors),
        cmocka_unit_test(test_manifest_delete),
        cmocka_unit_test(test_referrers),
        cmocka_unit_test(test_tags_and_catalog),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_hot_path_cache),
        cmocka_unit_test(test_flags_and_startup),
        cmocka_unit_test(test_streaming_and_client_gone),
        cmocka_unit_test(test_stop_during_download),
        cmocka_unit_test(test_storage_failure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
