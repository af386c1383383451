/* test_oci_manifest: manifest PUT validation for each media type, the
 * Content-Type vs mediaType rules, missing and malformed fields, digests and
 * sizes in descriptors, subject and artifactType handling, the 4 MiB limit,
 * and the exact referrers index document (with and without a filter). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "registry/oci_manifest.h"
#include "registry/oci_referrers.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"
#define D4 "sha256:4444444444444444444444444444444444444444444444444444444444444444"

#define OCI_M  SPY_OCI_MEDIA_OCI_MANIFEST
#define OCI_I  SPY_OCI_MEDIA_OCI_INDEX
#define DOCK_M SPY_OCI_MEDIA_DOCKER_MANIFEST
#define DOCK_L SPY_OCI_MEDIA_DOCKER_LIST

#define CONFIG                                                                                     \
    "{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D1 "\",\"size\":"  \
    "7}"
#define LAYER(d, n)                                                                                \
    "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"" d               \
    "\",\"size\":" #n "}"

/* An OCI image manifest with mediaType set, two layers. */
static const char *oci_image = "{\"schemaVersion\":2,\"mediaType\":\"" OCI_M "\",\"config\":" CONFIG
                               ",\"layers\":[" LAYER(D2, 100) "," LAYER(D3, 0) "]}";

static enum spy_oci_code parse(const char *ct, const char *body, struct spy_oci_manifest *m)
{
    return spy_oci_manifest_parse(ct, body, strlen(body), m);
}

/* expect_invalid: the body is rejected with MANIFEST_INVALID and a detail
 * containing 'why'. */
static void expect_invalid(const char *ct, const char *body, const char *why)
{
    struct spy_oci_manifest m;
    enum spy_oci_code rc = parse(ct, body, &m);
    if (rc != SPY_OCI_MANIFEST_INVALID)
        fail_msg("accepted (rc %d): %s", rc, body);
    if (strstr(m.detail, why) == NULL)
        fail_msg("detail \"%s\" lacks \"%s\"", m.detail, why);
    assert_null(m.root);
    assert_null(m.blobs);
    spy_oci_manifest_free(&m);
}

static void test_oci_image(void **state)
{
    (void)state;
    struct spy_oci_manifest m;
    assert_int_equal(parse(OCI_M, oci_image, &m), SPY_OCI_OK);
    assert_int_equal(m.type, SPY_OCI_MANIFEST_OCI_IMAGE);
    assert_string_equal(m.media_type, OCI_M);
    assert_int_equal(m.n_blobs, 3);
    assert_string_equal(m.blobs[0].digest, D1);
    assert_int_equal(m.blobs[0].parsed.alg, SPY_OCI_SHA256);
    assert_int_equal(m.blobs[0].parsed.raw[0], 0x11);
    assert_int_equal(m.blobs[0].size, 7);
    assert_string_equal(m.blobs[1].digest, D2);
    assert_int_equal(m.blobs[1].size, 100);
    assert_string_equal(m.blobs[2].digest, D3);
    assert_int_equal(m.blobs[2].size, 0);
    assert_int_equal(m.n_manifests, 0);
    assert_false(m.has_subject);
    /* no artifactType: the config's mediaType */
    assert_string_equal(m.artifact_type, "application/vnd.oci.image.config.v1+json");
    assert_null(m.annotations);
    spy_oci_manifest_free(&m);
    spy_oci_manifest_free(&m);
}

static void test_each_media_type(void **state)
{
    (void)state;
    const char *docker_image = "{\"schemaVersion\":2,\"mediaType\":\"" DOCK_M "\",\"config\":"
                               "{\"mediaType\":\"application/vnd.docker.container.image.v1+json\","
                               "\"digest\":\"" D1 "\",\"size\":1},\"layers\":[]}";
    const char *oci_index = "{\"schemaVersion\":2,\"mediaType\":\"" OCI_I "\",\"manifests\":["
                            "{\"mediaType\":\"" OCI_M "\",\"digest\":\"" D2 "\",\"size\":5,"
                            "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
                            "{\"mediaType\":\"" OCI_M "\",\"digest\":\"" D3 "\",\"size\":6}]}";
    const char *docker_list = "{\"schemaVersion\":2,\"mediaType\":\"" DOCK_L "\",\"manifests\":["
                              "{\"mediaType\":\"" DOCK_M "\",\"digest\":\"" D4 "\",\"size\":9}]}";
    struct spy_oci_manifest m;
    assert_int_equal(parse(DOCK_M, docker_image, &m), SPY_OCI_OK);
    assert_int_equal(m.type, SPY_OCI_MANIFEST_DOCKER_IMAGE);
    assert_int_equal(m.n_blobs, 1);
    assert_string_equal(m.artifact_type, "application/vnd.docker.container.image.v1+json");
    spy_oci_manifest_free(&m);
    assert_int_equal(parse(OCI_I, oci_index, &m), SPY_OCI_OK);
    assert_int_equal(m.type, SPY_OCI_MANIFEST_OCI_INDEX);
    assert_int_equal(m.n_blobs, 0);
    assert_null(m.blobs);
    assert_int_equal(m.n_manifests, 2);
    assert_string_equal(m.manifests[0].digest, D2);
    assert_string_equal(m.manifests[1].digest, D3);
    assert_null(m.artifact_type); /* an index without artifactType: omitted */
    spy_oci_manifest_free(&m);
    assert_int_equal(parse(DOCK_L, docker_list, &m), SPY_OCI_OK);
    assert_int_equal(m.type, SPY_OCI_MANIFEST_DOCKER_LIST);
    assert_int_equal(m.n_manifests, 1);
    assert_int_equal(m.manifests[0].size, 9);
    spy_oci_manifest_free(&m);
    /* an empty index is fine */
    assert_int_equal(parse(OCI_I, "{\"schemaVersion\":2,\"manifests\":[]}", &m), SPY_OCI_OK);
    assert_int_equal(m.n_manifests, 0);
    spy_oci_manifest_free(&m);
}

static void test_content_type_rules(void **state)
{
    (void)state;
    struct spy_oci_manifest m;
    const char *no_mt = "{\"schemaVersion\":2,\"config\":" CONFIG ",\"layers\":[]}";
    /* parameters ignored, case-insensitive, whitespace trimmed */
    assert_int_equal(parse(OCI_M "; charset=utf-8", oci_image, &m), SPY_OCI_OK);
    spy_oci_manifest_free(&m);
    assert_int_equal(parse(" APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON ", oci_image, &m),
                     SPY_OCI_OK);
    spy_oci_manifest_free(&m);
    /* no Content-Type: the body's mediaType decides */
    assert_int_equal(parse(NULL, oci_image, &m), SPY_OCI_OK);
    assert_int_equal(m.type, SPY_OCI_MANIFEST_OCI_IMAGE);
    spy_oci_manifest_free(&m);
    assert_int_equal(parse("", oci_image, &m), SPY_OCI_OK);
    spy_oci_manifest_free(&m);
    /* no mediaType in an OCI body: the Content-Type decides */
    assert_int_equal(parse(OCI_M, no_mt, &m), SPY_OCI_OK);
    assert_int_equal(m.type, SPY_OCI_MANIFEST_OCI_IMAGE);
    spy_oci_manifest_free(&m);
    /* mismatches */
    expect_invalid(OCI_I, oci_image, "does not match mediaType");
    expect_invalid(DOCK_M, oci_image, "does not match mediaType");
    expect_invalid("application/json", oci_image, "does not match mediaType");
    expect_invalid(OCI_M "x", oci_image, "does not match mediaType");
    /* neither, or unknown types */
    expect_invalid(NULL, no_mt, "no media type");
    expect_invalid("; x=y", no_mt, "no media type");
    expect_invalid("application/json", no_mt, "unsupported manifest Content-Type");
    expect_invalid(NULL,
                   "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.artifact.manifest.v1+"
                   "json\",\"blobs\":[]}",
                   "unsupported manifest mediaType");
    expect_invalid(NULL, "{\"schemaVersion\":2,\"mediaType\":7}", "mediaType: not a string");
    /* body mediaType with parameters is not a manifest type */
    expect_invalid(NULL,
                   "{\"schemaVersion\":2,\"mediaType\":\"" OCI_M "; x=y\",\"config\":" CONFIG
                   ",\"layers\":[]}",
                   "unsupported manifest mediaType");
    /* Docker schema 2 requires the field */
    expect_invalid(DOCK_M, no_mt, "required in Docker manifests");
    expect_invalid(DOCK_L, "{\"schemaVersion\":2,\"manifests\":[]}", "required in Docker");
}

static void test_structure_errors(void **state)
{
    (void)state;
    expect_invalid(OCI_M, "", "invalid JSON");
    expect_invalid(OCI_M, "{", "invalid JSON");
    expect_invalid(OCI_M, "[]", "not a JSON object");
    expect_invalid(OCI_M, "\"x\"", "invalid JSON");
    expect_invalid(OCI_M, "{\"schemaVersion\":2} x", "invalid JSON");
    expect_invalid(OCI_M, "{\"schemaVersion\":2,\"schemaVersion\":2}", "invalid JSON");
    expect_invalid(OCI_M, "{\"a\":\"\\u0000\"}", "invalid JSON");
    expect_invalid(OCI_M, "{\"a\":\"\xff\"}", "invalid JSON");
    expect_invalid(OCI_M, "{\"config\":" CONFIG ",\"layers\":[]}", "schemaVersion");
    expect_invalid(OCI_M, "{\"schemaVersion\":1,\"config\":" CONFIG ",\"layers\":[]}",
                   "schemaVersion");
    expect_invalid(OCI_M, "{\"schemaVersion\":\"2\",\"config\":" CONFIG ",\"layers\":[]}",
                   "schemaVersion");
    expect_invalid(OCI_M, "{\"schemaVersion\":2.0,\"config\":" CONFIG ",\"layers\":[]}",
                   "schemaVersion");
    expect_invalid(OCI_M, "{\"schemaVersion\":2,\"layers\":[]}", "config: missing");
    expect_invalid(OCI_M, "{\"schemaVersion\":2,\"config\":" CONFIG "}", "layers: missing");
    expect_invalid(OCI_M, "{\"schemaVersion\":2,\"config\":" CONFIG ",\"layers\":{}}",
                   "layers: missing");
    expect_invalid(OCI_M, "{\"schemaVersion\":2,\"config\":[],\"layers\":[]}",
                   "config: not an object");
    expect_invalid(OCI_M, "{\"schemaVersion\":2,\"config\":" CONFIG ",\"layers\":[7]}",
                   "layers[0]: not an object");
    /* type confusion: image fields in an index and vice versa */
    expect_invalid(OCI_M,
                   "{\"schemaVersion\":2,\"config\":" CONFIG ",\"layers\":[],\"manifests\":[]}",
                   "cannot have \"manifests\"");
    expect_invalid(OCI_I, "{\"schemaVersion\":2,\"manifests\":[],\"layers\":[]}",
                   "cannot have \"config\" or \"layers\"");
    expect_invalid(OCI_I, "{\"schemaVersion\":2,\"manifests\":[],\"config\":" CONFIG "}",
                   "cannot have");
    expect_invalid(OCI_I, "{\"schemaVersion\":2}", "manifests: missing");
}

/* image_with_layer: an OCI manifest whose single layer is 'layer'. */
static void image_with_layer(char *buf, size_t cap, const char *layer)
{
    snprintf(buf, cap, "{\"schemaVersion\":2,\"config\":" CONFIG ",\"layers\":[%s]}", layer);
}

static void test_descriptor_errors(void **state)
{
    (void)state;
    static const struct {
        const char *layer;
        const char *why;
    } bad[] = {
        {"{\"digest\":\"" D2 "\",\"size\":1}", "layers[0].mediaType"},
        {"{\"mediaType\":\"\",\"digest\":\"" D2 "\",\"size\":1}", "layers[0].mediaType"},
        {"{\"mediaType\":\"nonsense\",\"digest\":\"" D2 "\",\"size\":1}", "layers[0].mediaType"},
        {"{\"mediaType\":\"a/b\\n\",\"digest\":\"" D2 "\",\"size\":1}", "layers[0].mediaType"},
        {"{\"mediaType\":3,\"digest\":\"" D2 "\",\"size\":1}", "layers[0].mediaType"},
        {"{\"mediaType\":\"a/b\",\"size\":1}", "layers[0].digest"},
        {"{\"mediaType\":\"a/b\",\"digest\":\"sha256:abc\",\"size\":1}", "layers[0].digest"},
        {"{\"mediaType\":\"a/b\",\"digest\":\"sha256:"
         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"size\":1}",
         "layers[0].digest"},
        {"{\"mediaType\":\"a/b\",\"digest\":\"nocolon\",\"size\":1}", "layers[0].digest"},
        {"{\"mediaType\":\"a/b\",\"digest\":5,\"size\":1}", "layers[0].digest"},
        {"{\"mediaType\":\"a/b\",\"digest\":\"" D2 "\"}", "layers[0].size"},
        {"{\"mediaType\":\"a/b\",\"digest\":\"" D2 "\",\"size\":-1}", "layers[0].size"},
        {"{\"mediaType\":\"a/b\",\"digest\":\"" D2 "\",\"size\":1.5}", "layers[0].size"},
        {"{\"mediaType\":\"a/b\",\"digest\":\"" D2 "\",\"size\":1e3}", "layers[0].size"},
        {"{\"mediaType\":\"a/b\",\"digest\":\"" D2 "\",\"size\":\"1\"}", "layers[0].size"},
        {"{\"mediaType\":\"a/b\",\"digest\":\"" D2 "\",\"size\":1,\"urls\":\"x\"}",
         "layers[0].urls"},
        {"{\"mediaType\":\"a/b\",\"digest\":\"" D2 "\",\"size\":1,\"urls\":[1]}", "layers[0].urls"},
        {"{\"mediaType\":\"a/b\",\"digest\":\"" D2 "\",\"size\":1,\"annotations\":[]}",
         "layers[0].annotations"},
        {"{\"mediaType\":\"a/b\",\"digest\":\"" D2 "\",\"size\":1,\"annotations\":{\"k\":1}}",
         "layers[0].annotations"},
        {"{\"mediaType\":\"a/b\",\"digest\":\"" D2 "\",\"size\":1,\"artifactType\":\"x\"}",
         "layers[0].artifactType"},
        {"{\"mediaType\":\"a/b\",\"digest\":\"" D2 "\",\"size\":1,\"data\":{}}", "layers[0].data"},
        {"{\"mediaType\":\"a/b\",\"digest\":\"" D2 "\",\"size\":1,\"platform\":\"linux\"}",
         "layers[0].platform"},
    };
    char buf[1024];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        image_with_layer(buf, sizeof(buf), bad[i].layer);
        expect_invalid(OCI_M, buf, bad[i].why);
    }
}

static void test_descriptor_sizes_and_extras(void **state)
{
    (void)state;
    char buf[1024];
    struct spy_oci_manifest m;
    /* the largest int64 is a valid size; one more does not parse */
    image_with_layer(buf, sizeof(buf),
                     "{\"mediaType\":\"a/b\",\"digest\":\"" D2 "\",\"size\":9223372036854775807}");
    assert_int_equal(parse(OCI_M, buf, &m), SPY_OCI_OK);
    assert_true(m.blobs[1].size == INT64_MAX);
    spy_oci_manifest_free(&m);
    image_with_layer(buf, sizeof(buf),
                     "{\"mediaType\":\"a/b\",\"digest\":\"" D2 "\",\"size\":9223372036854775808}");
    expect_invalid(OCI_M, buf, "invalid JSON");
    image_with_layer(buf, sizeof(buf),
                     "{\"mediaType\":\"a/b\",\"digest\":\"" D2
                     "\",\"size\":99999999999999999999999999999}");
    expect_invalid(OCI_M, buf, "invalid JSON");
    /* unsupported algorithms pass; foreign layers are flagged; extras are kept */
    image_with_layer(buf, sizeof(buf),
                     "{\"mediaType\":\"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip\","
                     "\"digest\":\"md5:d41d8cd98f00b204e9800998ecf8427e\",\"size\":3,"
                     "\"urls\":[\"https://example.com/x\"],\"annotations\":{\"a\":\"b\"},"
                     "\"data\":\"YWJj\",\"unknownField\":[1,2]}");
    assert_int_equal(parse(OCI_M, buf, &m), SPY_OCI_OK);
    assert_int_equal(m.blobs[1].parsed.alg, SPY_OCI_DIGEST_UNSUPPORTED);
    assert_string_equal(m.blobs[1].digest, "md5:d41d8cd98f00b204e9800998ecf8427e");
    assert_true(m.blobs[1].foreign);
    assert_false(m.blobs[0].foreign);
    assert_string_equal(json_string_value(json_object_get(m.blobs[1].annotations, "a")), "b");
    spy_oci_manifest_free(&m);
    /* media types with parameters and RFC 6838 punctuation are accepted */
    image_with_layer(buf, sizeof(buf),
                     "{\"mediaType\":\"text/plain; charset=utf-8\",\"digest\":\"" D2
                     "\",\"size\":3,\"urls\":[]},"
                     "{\"mediaType\":\"application/vnd.a!b#c$d&e^f_g.h+i-j\",\"digest\":\"" D3
                     "\",\"size\":3}");
    assert_int_equal(parse(OCI_M, buf, &m), SPY_OCI_OK);
    assert_false(m.blobs[1].foreign);
    assert_int_equal(m.n_blobs, 3);
    spy_oci_manifest_free(&m);
    /* sha512 digests are parsed */
    image_with_layer(
        buf, sizeof(buf),
        "{\"mediaType\":\"a/b\",\"size\":0,\"digest\":\"sha512:"
        "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2"
        "b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e\"}");
    assert_int_equal(parse(OCI_M, buf, &m), SPY_OCI_OK);
    assert_int_equal(m.blobs[1].parsed.alg, SPY_OCI_SHA512);
    spy_oci_manifest_free(&m);
}

static void test_subject_and_artifact_type(void **state)
{
    (void)state;
    struct spy_oci_manifest m;
    /* an artifact: empty config, artifactType, subject, annotations */
    const char *artifact =
        "{\"schemaVersion\":2,\"mediaType\":\"" OCI_M "\",\"artifactType\":"
        "\"application/vnd.example.sbom.v1\",\"config\":{\"mediaType\":"
        "\"application/vnd.oci.empty.v1+json\",\"digest\":\"" D1 "\",\"size\":2},"
        "\"layers\":[" LAYER(D2, 10) "],\"subject\":{\"mediaType\":\"" OCI_M "\",\"digest\":\"" D4
                                     "\",\"size\":1234},\"annotations\":{\"org.example\":\"yes\"}}";
    assert_int_equal(parse(OCI_M, artifact, &m), SPY_OCI_OK);
    assert_true(m.has_subject);
    assert_string_equal(m.subject.digest, D4);
    assert_int_equal(m.subject.size, 1234);
    assert_string_equal(m.artifact_type, "application/vnd.example.sbom.v1");
    assert_non_null(m.annotations);
    assert_string_equal(json_string_value(json_object_get(m.annotations, "org.example")), "yes");
    /* the subject is not a blob the manifest needs */
    assert_int_equal(m.n_blobs, 2);
    spy_oci_manifest_free(&m);
    /* empty artifactType: falls back to config.mediaType */
    const char *empty_at =
        "{\"schemaVersion\":2,\"artifactType\":\"\",\"config\":" CONFIG ",\"layers\":[]}";
    assert_int_equal(parse(OCI_M, empty_at, &m), SPY_OCI_OK);
    assert_string_equal(m.artifact_type, "application/vnd.oci.image.config.v1+json");
    spy_oci_manifest_free(&m);
    /* an index with a subject and an artifactType */
    const char *index = "{\"schemaVersion\":2,\"mediaType\":\"" OCI_I "\",\"artifactType\":"
                        "\"application/x.sig\",\"manifests\":[],\"subject\":{\"mediaType\":\"" OCI_I
                        "\",\"digest\":\"" D3 "\",\"size\":1}}";
    assert_int_equal(parse(OCI_I, index, &m), SPY_OCI_OK);
    assert_true(m.has_subject);
    assert_string_equal(m.artifact_type, "application/x.sig");
    spy_oci_manifest_free(&m);
    /* a subject with an unsupported algorithm is accepted (dangling anyway) */
    const char *odd = "{\"schemaVersion\":2,\"config\":" CONFIG ",\"layers\":[],\"subject\":"
                      "{\"mediaType\":\"" OCI_M "\",\"digest\":\"blake3:abcd\",\"size\":1}}";
    assert_int_equal(parse(OCI_M, odd, &m), SPY_OCI_OK);
    assert_int_equal(m.subject.parsed.alg, SPY_OCI_DIGEST_UNSUPPORTED);
    spy_oci_manifest_free(&m);
    /* Docker types ignore subject/artifactType/annotations they do not define */
    const char *docker = "{\"schemaVersion\":2,\"mediaType\":\"" DOCK_M "\",\"config\":" CONFIG
                         ",\"layers\":[],\"subject\":\"junk\",\"artifactType\":5,"
                         "\"annotations\":[]}";
    assert_int_equal(parse(DOCK_M, docker, &m), SPY_OCI_OK);
    assert_false(m.has_subject);
    assert_null(m.annotations);
    assert_string_equal(m.artifact_type, "application/vnd.oci.image.config.v1+json");
    spy_oci_manifest_free(&m);
    /* malformed subject / artifactType / annotations in OCI documents */
    expect_invalid(OCI_M,
                   "{\"schemaVersion\":2,\"config\":" CONFIG ",\"layers\":[],\"subject\":"
                   "{\"mediaType\":\"" OCI_M "\",\"digest\":\"sha256:12\",\"size\":1}}",
                   "subject.digest");
    expect_invalid(OCI_M,
                   "{\"schemaVersion\":2,\"config\":" CONFIG ",\"layers\":[],\"subject\":\"x\"}",
                   "subject: not an object");
    expect_invalid(OCI_M,
                   "{\"schemaVersion\":2,\"config\":" CONFIG ",\"layers\":[],\"artifactType\":7}",
                   "artifactType");
    expect_invalid(OCI_M,
                   "{\"schemaVersion\":2,\"config\":" CONFIG
                   ",\"layers\":[],\"artifactType\":\"no-slash\"}",
                   "artifactType");
    expect_invalid(OCI_I,
                   "{\"schemaVersion\":2,\"manifests\":[],\"annotations\":{\"a\":{\"b\":1}}}",
                   "annotations");
}

static void test_size_limit(void **state)
{
    (void)state;
    /* a valid manifest padded with whitespace to exactly the limit */
    size_t limit = SPY_OCI_MANIFEST_MAX;
    char *body = malloc(limit + 1);
    assert_non_null(body);
    size_t n = strlen(oci_image);
    memcpy(body, oci_image, n);
    memset(body + n, ' ', limit + 1 - n);
    struct spy_oci_manifest m;
    assert_int_equal(spy_oci_manifest_parse(OCI_M, body, limit, &m), SPY_OCI_OK);
    spy_oci_manifest_free(&m);
    assert_int_equal(spy_oci_manifest_parse(OCI_M, body, limit + 1, &m), SPY_OCI_SIZE_INVALID);
    assert_non_null(strstr(m.detail, "4194305"));
    assert_null(m.root);
    free(body);
}

static void test_many_layers(void **state)
{
    (void)state;
    /* 20000 layers fit in 4 MiB and are all returned in order */
    size_t cap = 3u << 20;
    char *body = malloc(cap);
    size_t n =
        (size_t)snprintf(body, cap, "{\"schemaVersion\":2,\"config\":" CONFIG ",\"layers\":[");
    for (int i = 0; i < 20000; i++)
        n += (size_t)snprintf(body + n, cap - n,
                              "%s{\"mediaType\":\"a/b\",\"digest\":\"sha256:%064x\",\"size\":%d}",
                              i ? "," : "", i, i);
    n += (size_t)snprintf(body + n, cap - n, "]}");
    struct spy_oci_manifest m;
    assert_int_equal(spy_oci_manifest_parse(OCI_M, body, n, &m), SPY_OCI_OK);
    assert_int_equal(m.n_blobs, 20001);
    assert_int_equal(m.blobs[20000].size, 19999);
    assert_int_equal(m.blobs[20000].parsed.raw[31], 19999 & 0xff);
    spy_oci_manifest_free(&m);
    free(body);
}

static void test_media_type_helpers(void **state)
{
    (void)state;
    assert_int_equal(spy_oci_manifest_type_of(OCI_I, strlen(OCI_I)), SPY_OCI_MANIFEST_OCI_INDEX);
    assert_int_equal(spy_oci_manifest_type_of(OCI_I, strlen(OCI_I) - 1), SPY_OCI_MANIFEST_NONE);
    assert_string_equal(spy_oci_manifest_media_type(SPY_OCI_MANIFEST_DOCKER_LIST), DOCK_L);
    assert_null(spy_oci_manifest_media_type(SPY_OCI_MANIFEST_NONE));
    static const char *valid[] = {"a/b", "application/vnd.oci.image.layer.v1.tar+gzip",
                                  "text/plain; charset=utf-8", "x/y;a=b"};
    static const char *invalid[] = {"",      "a",    "a/",   "/b",      "a/b/c",
                                    "a b/c", ".a/b", "a/+b", "a/b\x01", "a/b x"};
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        assert_true(spy_oci_media_type_valid(valid[i], strlen(valid[i])));
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        if (spy_oci_media_type_valid(invalid[i], strlen(invalid[i])))
            fail_msg("media type \"%s\" accepted", invalid[i]);
    char long_type[300];
    memset(long_type, 'a', sizeof(long_type));
    long_type[127] = '/';
    assert_true(spy_oci_media_type_valid(long_type, 255));
    assert_false(spy_oci_media_type_valid(long_type, 256));
}

static void test_referrers_index(void **state)
{
    (void)state;
    json_t *ann = json_pack("{s:s,s:s}", "org.opencontainers.image.created", "2022-01-01T14:42:55Z",
                            "org.example.sbom.format", "json");
    json_t *empty = json_object();
    struct spy_oci_referrer refs[] = {
        {OCI_M, D1, 1234, "application/vnd.example.sbom.v1", ann},
        {OCI_M, D2, 99, "application/vnd.example.signature.v1", empty},
        {OCI_I, D3, 5, NULL, NULL},
    };
    char *body;
    size_t len;
    bool filtered;
    assert_int_equal(spy_oci_referrers_json(refs, 3, NULL, &body, &len, &filtered), SPY_OK);
    assert_false(filtered);
    assert_string_equal(
        body, "{\"schemaVersion\":2,\"mediaType\":\"" OCI_I "\",\"manifests\":["
              "{\"mediaType\":\"" OCI_M "\",\"digest\":\"" D1 "\",\"size\":1234,\"artifactType\":"
              "\"application/vnd.example.sbom.v1\",\"annotations\":{\"org.opencontainers.image."
              "created\":\"2022-01-01T14:42:55Z\",\"org.example.sbom.format\":\"json\"}},"
              "{\"mediaType\":\"" OCI_M "\",\"digest\":\"" D2 "\",\"size\":99,\"artifactType\":"
              "\"application/vnd.example.signature.v1\"},"
              "{\"mediaType\":\"" OCI_I "\",\"digest\":\"" D3 "\",\"size\":5}]}");
    assert_int_equal(len, strlen(body));
    free(body);
    assert_int_equal(spy_oci_referrers_json(refs, 3, "application/vnd.example.signature.v1", &body,
                                            &len, &filtered),
                     SPY_OK);
    assert_true(filtered);
    assert_string_equal(body, "{\"schemaVersion\":2,\"mediaType\":\"" OCI_I "\",\"manifests\":["
                              "{\"mediaType\":\"" OCI_M "\",\"digest\":\"" D2
                              "\",\"size\":99,\"artifactType\":"
                              "\"application/vnd.example.signature.v1\"}]}");
    free(body);
    /* no referrers (or none matching): an empty index, never an error */
    assert_int_equal(spy_oci_referrers_json(refs, 3, "x/none", &body, &len, &filtered), SPY_OK);
    assert_string_equal(body, "{\"schemaVersion\":2,\"mediaType\":\"" OCI_I "\",\"manifests\":[]}");
    free(body);
    assert_int_equal(spy_oci_referrers_json(NULL, 0, "", &body, &len, &filtered), SPY_OK);
    assert_false(filtered);
    free(body);
    /* bad input */
    struct spy_oci_referrer bad[] = {{OCI_M, D1, -1, NULL, NULL}};
    assert_int_equal(spy_oci_referrers_json(bad, 1, NULL, &body, &len, &filtered), SPY_EINVAL);
    assert_null(body);
    struct spy_oci_referrer bad_utf8[] = {{OCI_M, D1, 1, "a/\xff", NULL}};
    assert_int_equal(spy_oci_referrers_json(bad_utf8, 1, NULL, &body, &len, &filtered), SPY_EINVAL);
    json_decref(ann);
    json_decref(empty);
}

/* The parse output feeds the referrers builder directly. */
static void test_parse_then_index(void **state)
{
    (void)state;
    const char *sig = "{\"schemaVersion\":2,\"mediaType\":\"" OCI_M "\",\"config\":{\"mediaType\":"
                      "\"application/vnd.dev.cosign.artifact.sig.v1+json\",\"digest\":\"" D1
                      "\",\"size\":2},\"layers\":[],\"subject\":{\"mediaType\":\"" OCI_M
                      "\",\"digest\":\"" D4 "\",\"size\":1},\"annotations\":{\"k\":\"v\"}}";
    struct spy_oci_manifest m;
    assert_int_equal(parse(OCI_M, sig, &m), SPY_OCI_OK);
    struct spy_oci_referrer r = {m.media_type, D2, (int64_t)strlen(sig), m.artifact_type,
                                 m.annotations};
    char *body;
    size_t len;
    bool filtered;
    assert_int_equal(spy_oci_referrers_json(&r, 1,
                                            "application/vnd.dev.cosign.artifact.sig.v1+json",
                                            &body, &len, &filtered),
                     SPY_OK);
    assert_non_null(strstr(body, "\"artifactType\":\"application/vnd.dev.cosign.artifact.sig.v1+"
                                 "json\",\"annotations\":{\"k\":\"v\"}"));
    free(body);
    spy_oci_manifest_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oci_image),
        cmocka_unit_test(test_each_media_type),
        cmocka_unit_test(test_content_type_rules),
        cmocka_unit_test(test_structure_errors),
        cmocka_unit_test(test_descriptor_errors),
        cmocka_unit_test(test_descriptor_sizes_and_extras),
        cmocka_unit_test(test_subject_and_artifact_type),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_many_layers),
        cmocka_unit_test(test_media_type_helpers),
        cmocka_unit_test(test_referrers_index),
        cmocka_unit_test(test_parse_then_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
