"""Checks of manifests: PUT, GET, HEAD, DELETE by tag and by digest (spec
end-3, end-7, end-9; "Pushing Manifests"), every manifest type clients
push, and the validation errors (anchor-registries section 2)."""

from . import content, ops
from .runner import check, expect, expect_error, expect_header, expect_status, fail

MIB = 1 << 20


def _repo(ctx):
    return ctx.repo("manifests")


def _image(ctx):
    """Fixture: an OCI image in 'manifests' tagged v1, with its blobs."""

    def build(ctx):
        config = content.config_blob("image/" + ctx.run_id)
        layers = [
            content.Blob(content.random_bytes(3000 + i, "layer%d/%s" % (i, ctx.run_id)))
            for i in range(2)
        ]
        ops.push_blobs(ctx.client, _repo(ctx), [config] + layers)
        m = content.image_manifest(
            config, layers, annotations={"org.opencontainers.image.title": "conformance"}
        )
        resp = ops.put_manifest(ctx.client, _repo(ctx), "v1", m)
        return {"config": config, "layers": layers, "manifest": m, "put": resp}

    return ctx.fixture("image", build)


def _expect_manifest(resp, m, body=True):
    """200 with the manifest's bytes, Content-Type, Docker-Content-Digest and Content-Length."""
    expect_status(resp, 200)
    ctype = expect_header(resp, "Content-Type")
    if ctype.split(";")[0].strip() != m.media_type:
        fail(resp, "Content-Type: " + m.media_type, "Content-Type: " + ctype)
    expect_header(resp, "Docker-Content-Digest", m.digest)
    expect_header(resp, "Content-Length", str(m.size))
    if body and resp.body != m.data:
        fail(resp, "the %d bytes pushed" % m.size, "%d different bytes" % len(resp.body))
    if not body:
        expect(resp.body == b"", "%s: HEAD response has a body" % resp.describe())


def _new_image(ctx, repo, seed, **kw):
    """Pushes the blobs of a new image; returns (config, layers, manifest), manifest not pushed."""
    config = content.config_blob(seed + "/" + ctx.run_id)
    layers = [content.Blob(content.random_bytes(1500, "%s/%s" % (seed, ctx.run_id)))]
    ops.push_blobs(ctx.client, repo, [config] + layers)
    return config, layers, content.image_manifest(config, layers, **kw)


@check("manifests.put.tag")
def manifests_put_tag(ctx):
    """PUT by tag: 201, Docker-Content-Digest = sha256 of the bytes, Location pullable."""
    img = _image(ctx)
    resp, m = img["put"], img["manifest"]
    expect_status(resp, 201)
    expect_header(resp, "Docker-Content-Digest", m.digest)
    loc = ctx.client.resolve(resp, expect_header(resp, "Location"))
    got = ctx.client.request("GET", loc, headers={"Accept": content.MANIFEST_ACCEPT})
    _expect_manifest(got, m)


@check("manifests.get.tag")
def manifests_get_tag(ctx):
    """GET by tag: 200, exact bytes, Content-Type as pushed, Docker-Content-Digest, length."""
    m = _image(ctx)["manifest"]
    _expect_manifest(ops.get_manifest(ctx.client, _repo(ctx), "v1"), m)


@check("manifests.head.tag")
def manifests_head_tag(ctx):
    """HEAD by tag: 200, the same headers, no body."""
    m = _image(ctx)["manifest"]
    _expect_manifest(ops.get_manifest(ctx.client, _repo(ctx), "v1", method="HEAD"), m, body=False)


@check("manifests.get.digest")
def manifests_get_digest(ctx):
    """GET by digest: 200 with the exact bytes."""
    m = _image(ctx)["manifest"]
    _expect_manifest(ops.get_manifest(ctx.client, _repo(ctx), m.digest), m)


@check("manifests.head.digest")
def manifests_head_digest(ctx):
    """HEAD by digest: 200, headers, no body."""
    m = _image(ctx)["manifest"]
    _expect_manifest(
        ops.get_manifest(ctx.client, _repo(ctx), m.digest, method="HEAD"), m, body=False
    )


@check("manifests.get.accept-any")
def manifests_get_accept_any(ctx):
    """GET with Accept: */* (curl, simple tools) returns the manifest as pushed."""
    m = _image(ctx)["manifest"]
    _expect_manifest(ops.get_manifest(ctx.client, _repo(ctx), "v1", accept="*/*"), m)


@check("manifests.etag")
def manifests_etag(ctx):
    """GET sends an ETag; If-None-Match with it -> 304 without a body; another ETag -> 200."""
    m = _image(ctx)["manifest"]
    resp = ops.get_manifest(ctx.client, _repo(ctx), "v1")
    etag = expect_header(resp, "ETag")
    expect(
        m.digest in etag,
        "%s: ETag %s does not name the digest %s" % (resp.describe(), etag, m.digest),
    )
    for ref in ("v1", m.digest):
        cond = ops.get_manifest(ctx.client, _repo(ctx), ref, headers={"If-None-Match": etag})
        expect_status(cond, 304)
        expect(cond.body == b"", "%s: 304 with a body" % cond.describe())
    other = ops.get_manifest(
        ctx.client, _repo(ctx), "v1", headers={"If-None-Match": '"sha256:%s"' % ("0" * 64)}
    )
    _expect_manifest(other, m)


@check("manifests.put.digest")
def manifests_put_digest(ctx):
    """PUT by digest: 201 with Docker-Content-Digest; GET by digest gives the bytes."""
    repo = _repo(ctx)
    _, _, m = _new_image(ctx, repo, "by-digest")
    resp = ops.put_manifest(ctx.client, repo, m.digest, m)
    expect_status(resp, 201)
    expect_header(resp, "Docker-Content-Digest", m.digest)
    expect_header(resp, "Location")
    _expect_manifest(ops.get_manifest(ctx.client, repo, m.digest), m)


@check("manifests.put.digest-mismatch")
def manifests_put_digest_mismatch(ctx):
    """PUT to /manifests/<digest> that is not the body's digest: 400 DIGEST_INVALID."""
    repo = _repo(ctx)
    _, _, m = _new_image(ctx, repo, "digest-mismatch")
    wrong = content.digest(m.data + b" ")
    expect_error(ops.put_manifest(ctx.client, repo, wrong, m), 400, "DIGEST_INVALID")
    expect_error(ops.get_manifest(ctx.client, repo, wrong), 404, "MANIFEST_UNKNOWN")


@check("manifests.put.idempotent")
def manifests_put_idempotent(ctx):
    """The same manifest PUT twice to the same tag, then to a second tag: 201 each time, same
    digest.
    """
    repo = _repo(ctx)
    _, _, m = _new_image(ctx, repo, "idempotent")
    for tag in ("same", "same", "same-too"):
        ops.push_manifest(ctx.client, repo, tag, m)
    _expect_manifest(ops.get_manifest(ctx.client, repo, "same-too"), m)


@check("manifests.put.retag")
def manifests_put_retag(ctx):
    """PUT another manifest to an existing tag moves the tag; the old one stays by digest."""
    repo = _repo(ctx)
    _, _, a = _new_image(ctx, repo, "retag-a")
    _, _, b = _new_image(ctx, repo, "retag-b")
    ops.push_manifest(ctx.client, repo, "moving", a)
    ops.push_manifest(ctx.client, repo, "moving", b)
    _expect_manifest(ops.get_manifest(ctx.client, repo, "moving"), b)
    _expect_manifest(ops.get_manifest(ctx.client, repo, a.digest), a)


@check("manifests.tag.case-sensitive")
def manifests_tag_case_sensitive(ctx):
    """Tags differing only in case are different tags."""
    repo = _repo(ctx)
    _, _, a = _new_image(ctx, repo, "case-a")
    _, _, b = _new_image(ctx, repo, "case-b")
    ops.push_manifest(ctx.client, repo, "CaseTag", a)
    ops.push_manifest(ctx.client, repo, "casetag", b)
    _expect_manifest(ops.get_manifest(ctx.client, repo, "CaseTag"), a)
    _expect_manifest(ops.get_manifest(ctx.client, repo, "casetag"), b)
    expect_error(ops.get_manifest(ctx.client, repo, "CASETAG"), 404, "MANIFEST_UNKNOWN")


@check("manifests.tag.max-length")
def manifests_tag_max_length(ctx):
    """A tag of 128 characters (the grammar's maximum) is accepted."""
    repo = _repo(ctx)
    _, _, m = _new_image(ctx, repo, "long-tag")
    tag = "t" + "_.-9" * 31 + "abc"
    assert len(tag) == 128
    ops.push_manifest(ctx.client, repo, tag, m)
    _expect_manifest(ops.get_manifest(ctx.client, repo, tag), m)


@check("manifests.oci-index")
def manifests_oci_index(ctx):
    """An OCI image index over two pushed manifests: 201; GET gives its bytes and type."""
    repo = ctx.repo("index")
    children = [
        ops.push_image(ctx.client, repo, None, "index-child-%d/%s" % (i, ctx.run_id))
        for i in range(2)
    ]
    idx = content.index_manifest(
        children, annotations={"org.opencontainers.image.ref.name": "multi"}
    )
    resp = ops.push_manifest(ctx.client, repo, "multi", idx)
    expect_header(resp, "Location")
    _expect_manifest(ops.get_manifest(ctx.client, repo, "multi"), idx)
    _expect_manifest(ops.get_manifest(ctx.client, repo, idx.digest), idx)


@check("manifests.docker-schema2")
def manifests_docker_schema2(ctx):
    """A Docker schema2 manifest: 201; GET with Accept gives its bytes and Content-Type."""
    repo = ctx.repo("docker")
    m = ops.push_image(
        ctx.client, repo, "s2", "docker-s2/" + ctx.run_id, media_type=content.DOCKER_MANIFEST
    )
    _expect_manifest(ops.get_manifest(ctx.client, repo, "s2"), m)
    _expect_manifest(ops.get_manifest(ctx.client, repo, "s2", accept=content.DOCKER_MANIFEST), m)


@check("manifests.docker-list")
def manifests_docker_list(ctx):
    """A Docker manifest list over two schema2 manifests: 201; GET gives its bytes and type."""
    repo = ctx.repo("docker")
    children = [
        ops.push_image(
            ctx.client,
            repo,
            None,
            "docker-child-%d/%s" % (i, ctx.run_id),
            media_type=content.DOCKER_MANIFEST,
        )
        for i in range(2)
    ]
    lst = content.index_manifest(children, media_type=content.DOCKER_LIST)
    ops.push_manifest(ctx.client, repo, "list", lst)
    _expect_manifest(ops.get_manifest(ctx.client, repo, "list"), lst)


@check("manifests.artifact.artifact-type")
def manifests_artifact_type(ctx):
    """An artifact: unknown artifactType, the empty config, a layer of an unknown media type: 201
    and
    served back.
    """
    repo = ctx.repo("artifacts")
    config = content.Blob(content.EMPTY_JSON, content.OCI_EMPTY)
    layer = content.Blob(
        b"artifact payload " + ctx.run_id.encode(), "application/vnd.speedy.conformance.data"
    )
    ops.push_blobs(ctx.client, repo, [config, layer])
    m = content.image_manifest(
        config, [layer], artifact_type="application/vnd.speedy.conformance.artifact.v1"
    )
    ops.push_manifest(ctx.client, repo, "artifact", m)
    _expect_manifest(ops.get_manifest(ctx.client, repo, "artifact"), m)


@check("manifests.artifact.config-type")
def manifests_artifact_config_type(ctx):
    """An artifact identified only by an unknown config mediaType (no artifactType): 201 and served
    back.
    """
    repo = ctx.repo("artifacts")
    config = content.Blob(
        b'{"kind":"conformance"}', "application/vnd.speedy.conformance.config.v1+json"
    )
    layer = content.Blob(
        b"helm-like payload " + ctx.run_id.encode(),
        "application/vnd.speedy.conformance.layer.v1.tar",
    )
    ops.push_blobs(ctx.client, repo, [config, layer])
    m = content.image_manifest(config, [layer])
    ops.push_manifest(ctx.client, repo, "config-typed", m)
    _expect_manifest(ops.get_manifest(ctx.client, repo, "config-typed"), m)


@check("manifests.no-media-type-field")
def manifests_no_media_type_field(ctx):
    """An OCI image manifest without the optional mediaType field, typed by its Content-Type: 201,
    served with that type.
    """
    repo = _repo(ctx)
    config, layers, _ = _new_image(ctx, repo, "no-mediatype")
    doc = {
        "schemaVersion": 2,
        "config": config.descriptor(),
        "layers": [l.descriptor() for l in layers],
    }
    m = content.Manifest(doc, content.OCI_MANIFEST)
    ops.push_manifest(ctx.client, repo, "no-mediatype", m)
    _expect_manifest(ops.get_manifest(ctx.client, repo, "no-mediatype"), m)


@check("manifests.content-type-parameters")
def manifests_content_type_parameters(ctx):
    """PUT with Content-Type parameters ("; charset=utf-8"): 201 (the registry SHOULD ignore them);
    GET
    answers the bare type.
    """
    repo = _repo(ctx)
    _, _, m = _new_image(ctx, repo, "ctype-params")
    resp = ops.put_manifest(
        ctx.client, repo, "params", m, content_type=m.media_type + "; charset=utf-8"
    )
    expect_status(resp, 201)
    expect_header(resp, "Docker-Content-Digest", m.digest)
    got = ops.get_manifest(ctx.client, repo, "params")
    _expect_manifest(got, m)
    expect_header(got, "Content-Type", m.media_type)


@check("manifests.blob-unknown")
def manifests_blob_unknown(ctx):
    """A manifest whose layer, or config, was never pushed: 400 MANIFEST_BLOB_UNKNOWN; nothing
    tagged.
    """
    repo = _repo(ctx)
    config = content.config_blob("blob-unknown/" + ctx.run_id)
    pushed = content.Blob(content.random_bytes(900, "bu-pushed/" + ctx.run_id))
    missing = content.Blob(content.random_bytes(900, "bu-missing/" + ctx.run_id))
    ops.push_blobs(ctx.client, repo, [config, pushed])
    m = content.image_manifest(config, [pushed, missing])
    expect_error(
        ops.put_manifest(ctx.client, repo, "missing-layer", m), 400, "MANIFEST_BLOB_UNKNOWN"
    )
    expect_error(ops.get_manifest(ctx.client, repo, "missing-layer"), 404, "MANIFEST_UNKNOWN")
    no_config = content.image_manifest(content.config_blob("never/" + ctx.run_id), [pushed])
    expect_error(
        ops.put_manifest(ctx.client, repo, "missing-config", no_config),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    )


@check("manifests.index.child-unknown")
def manifests_index_child_unknown(ctx):
    """An index naming a manifest that was never pushed: 400 MANIFEST_BLOB_UNKNOWN (spec: rejected
    references MUST use that code).
    """
    repo = ctx.repo("index")
    pushed = ops.push_image(ctx.client, repo, None, "idx-pushed/" + ctx.run_id)
    _, _, never = _new_image(ctx, repo, "idx-never")
    idx = content.index_manifest([pushed, never])
    expect_error(
        ops.put_manifest(ctx.client, repo, "dangling-child", idx), 400, "MANIFEST_BLOB_UNKNOWN"
    )


@check("manifests.subject.dangling")
def manifests_subject_dangling(ctx):
    """A manifest whose subject does not exist is accepted (201) and OCI-Subject echoes the subject
    digest.
    """
    repo = ctx.repo("subject")
    _, _, ghost = _new_image(ctx, repo, "ghost-subject")
    config = content.Blob(content.EMPTY_JSON, content.OCI_EMPTY)
    ops.push_blobs(ctx.client, repo, [config])
    m = content.image_manifest(
        config, [], subject=ghost, artifact_type="application/vnd.speedy.conformance.sig"
    )
    resp = ops.put_manifest(ctx.client, repo, m.digest, m)
    expect_status(resp, 201)
    expect_header(resp, "OCI-Subject", ghost.digest)
    _expect_manifest(ops.get_manifest(ctx.client, repo, m.digest), m)


@check("manifests.size.4mib")
def manifests_size_4mib(ctx):
    """A manifest of exactly 4 MiB is accepted (the spec's "at least 4 megabytes")."""
    repo = _repo(ctx)
    img = _image(ctx)
    m = content.padded_manifest(img["config"], img["layers"][0], 4 * MIB)
    ops.push_manifest(ctx.client, repo, "four-mib", m)
    _expect_manifest(ops.get_manifest(ctx.client, repo, m.digest), m)


@check("manifests.size.too-large")
def manifests_size_too_large(ctx):
    """A manifest of 4 MiB + 1 byte: 413 (SIZE_INVALID or MANIFEST_INVALID body); not stored."""
    repo = _repo(ctx)
    img = _image(ctx)
    m = content.padded_manifest(img["config"], img["layers"][0], 4 * MIB + 1)
    resp = ops.put_manifest(ctx.client, repo, "too-big", m)
    expect_error(resp, 413, ("SIZE_INVALID", "MANIFEST_INVALID"))
    expect_error(ops.get_manifest(ctx.client, repo, "too-big"), 404, "MANIFEST_UNKNOWN")


@check("manifests.content-type-mismatch")
def manifests_content_type_mismatch(ctx):
    """Body mediaType OCI manifest sent as Content-Type Docker schema2: 400 MANIFEST_INVALID."""
    repo = _repo(ctx)
    _, _, m = _new_image(ctx, repo, "ctype-mismatch")
    resp = ops.put_manifest(ctx.client, repo, "mismatch", m, content_type=content.DOCKER_MANIFEST)
    expect_error(resp, 400, "MANIFEST_INVALID")


@check("manifests.invalid")
def manifests_invalid(ctx):
    """Not JSON, wrong schemaVersion, a config that is not a descriptor: 400 MANIFEST_INVALID."""
    repo = _repo(ctx)
    img = _image(ctx)
    bodies = [
        b"this is not json",
        content.encode(
            {
                "schemaVersion": 1,
                "mediaType": content.OCI_MANIFEST,
                "config": img["config"].descriptor(),
                "layers": [],
            }
        ),
        content.encode(
            {"schemaVersion": 2, "mediaType": content.OCI_MANIFEST, "config": "nope", "layers": []}
        ),
    ]
    for body in bodies:
        m = content.Manifest(None, content.OCI_MANIFEST, raw=body)
        expect_error(ops.put_manifest(ctx.client, repo, "invalid", m), 400, "MANIFEST_INVALID")


@check("manifests.unknown")
def manifests_unknown(ctx):
    """GET/HEAD of an unknown tag or digest in an existing repository: 404 MANIFEST_UNKNOWN."""
    _image(ctx)
    for ref in ("no-such-tag", content.digest(b"no such manifest " + ctx.run_id.encode())):
        expect_error(ops.get_manifest(ctx.client, _repo(ctx), ref), 404, "MANIFEST_UNKNOWN")
        expect_error(
            ops.get_manifest(ctx.client, _repo(ctx), ref, method="HEAD"), 404, "MANIFEST_UNKNOWN"
        )


@check("manifests.unknown-repo")
def manifests_unknown_repo(ctx):
    """GET of a manifest in a repository that does not exist: 404 (NAME_UNKNOWN or
    MANIFEST_UNKNOWN).
    """
    resp = ops.get_manifest(ctx.client, ctx.repo("no-such-repo"), "latest")
    expect_error(resp, 404, ("NAME_UNKNOWN", "MANIFEST_UNKNOWN"))


@check("manifests.reference.invalid")
def manifests_reference_invalid(ctx):
    """PUT to an invalid tag (129 characters, leading '.', '*') or malformed digest: 400
    TAG_INVALID/MANIFEST_INVALID/DIGEST_INVALID.
    """
    repo = _repo(ctx)
    m = _image(ctx)["manifest"]
    for ref in ("a" * 129, ".hidden", "star*"):
        expect_error(
            ops.put_manifest(ctx.client, repo, ref, m), 400, ("TAG_INVALID", "MANIFEST_INVALID")
        )
    expect_error(ops.put_manifest(ctx.client, repo, "sha256:" + "z" * 64, m), 400, "DIGEST_INVALID")
    expect_error(ops.get_manifest(ctx.client, repo, "sha256:" + "z" * 64), 400, "DIGEST_INVALID")


@check("manifests.get.invalid-tag")
def manifests_get_invalid_tag(ctx):
    """GET/HEAD of a reference that is no valid tag (".INVALID_MANIFEST_NAME", as the official
    v1.1.1
    suite sends): 404 MANIFEST_UNKNOWN.
    """
    _image(ctx)
    for method in ("GET", "HEAD"):
        resp = ops.get_manifest(ctx.client, _repo(ctx), ".INVALID_MANIFEST_NAME", method=method)
        expect_error(resp, 404, "MANIFEST_UNKNOWN")


@check("manifests.delete.tag")
def manifests_delete_tag(ctx):
    """DELETE by tag: 202; the tag is gone (GET 404 MANIFEST_UNKNOWN, not listed), the manifest
    stays
    by digest.
    """
    repo = ctx.repo("delete-tag")
    m = ops.push_image(ctx.client, repo, "doomed", "delete-tag/" + ctx.run_id)
    ops.push_manifest(ctx.client, repo, "kept", m)
    expect_status(ctx.client.request("DELETE", "/v2/%s/manifests/doomed" % repo), 202)
    expect_error(ops.get_manifest(ctx.client, repo, "doomed"), 404, "MANIFEST_UNKNOWN")
    _expect_manifest(ops.get_manifest(ctx.client, repo, m.digest), m)
    tags = ctx.client.request("GET", "/v2/%s/tags/list" % repo)
    expect_status(tags, 200)
    expect(
        tags.json().get("tags") == ["kept"],
        '%s: expected tags ["kept"], got %s' % (tags.describe(), tags.body),
    )


@check("manifests.delete.digest")
def manifests_delete_digest(ctx):
    """DELETE by digest: 202; GET by digest and by every tag of it: 404 MANIFEST_UNKNOWN; DELETE
    again:
    404.
    """
    repo = ctx.repo("delete-digest")
    m = ops.push_image(ctx.client, repo, "one", "delete-digest/" + ctx.run_id)
    ops.push_manifest(ctx.client, repo, "two", m)
    path = "/v2/%s/manifests/%s" % (repo, m.digest)
    expect_status(ctx.client.request("DELETE", path), 202)
    for ref in (m.digest, "one", "two"):
        expect_error(ops.get_manifest(ctx.client, repo, ref), 404, "MANIFEST_UNKNOWN")
    expect_error(ctx.client.request("DELETE", path), 404, "MANIFEST_UNKNOWN")


@check("manifests.delete.unknown")
def manifests_delete_unknown(ctx):
    """DELETE of an unknown digest in an existing repository: 404 MANIFEST_UNKNOWN."""
    _image(ctx)
    path = "/v2/%s/manifests/%s" % (
        _repo(ctx),
        content.digest(b"unknown manifest " + ctx.run_id.encode()),
    )
    expect_error(ctx.client.request("DELETE", path), 404, "MANIFEST_UNKNOWN")


@check("manifests.push-after-delete")
def manifests_push_after_delete(ctx):
    """A manifest deleted by digest can be pushed again (201) and is served again."""
    repo = ctx.repo("repush")
    m = ops.push_image(ctx.client, repo, "again", "repush/" + ctx.run_id)
    expect_status(ctx.client.request("DELETE", "/v2/%s/manifests/%s" % (repo, m.digest)), 202)
    ops.push_manifest(ctx.client, repo, "again", m)
    _expect_manifest(ops.get_manifest(ctx.client, repo, "again"), m)
