"""Checks of the referrers API (spec "Listing Referrers", end-12a/12b) and
the OCI-Subject header of manifest PUT ("Pushing Manifests with Subject")."""

from . import content, ops
from .runner import check, expect, expect_error, expect_header, expect_json, expect_status, fail

SBOM = "application/vnd.speedy.sbom.v1+json"
SIG_CONFIG = "application/vnd.speedy.signature.config.v1+json"
BUNDLE = "application/vnd.speedy.bundle.v1"


def _repo(ctx):
    return ctx.repo("referrers")


def _push_referrer(ctx, repo, m):
    """Pushes a manifest with a subject by digest; expects 201 and OCI-Subject."""
    resp = ops.put_manifest(ctx.client, repo, m.digest, m)
    expect_status(resp, 201)
    expect_header(resp, "OCI-Subject", m.doc["subject"]["digest"])


def _graph(ctx):
    """Fixture: a subject image and four referrers of it in 'referrers' (an
    artifact with artifactType, one typed only by its config, an index with
    and one without artifactType), a manifest in the same repository that
    refers to nothing, and a referrer of the same subject in another
    repository. Returns a dict of the manifests and the expected entries."""

    def build(ctx):
        repo = _repo(ctx)
        subject = ops.push_image(ctx.client, repo, "subject", "ref-subject/" + ctx.run_id)
        ops.push_image(ctx.client, repo, "bystander", "ref-bystander/" + ctx.run_id)
        empty = content.Blob(content.EMPTY_JSON, content.OCI_EMPTY)
        sig_config = content.Blob(b'{"sig":"' + ctx.run_id.encode() + b'"}', SIG_CONFIG)
        payload = content.Blob(b"sbom " + ctx.run_id.encode(), "application/spdx+json")
        ops.push_blobs(ctx.client, repo, [empty, sig_config, payload])
        sbom = content.image_manifest(
            empty,
            [payload],
            subject=subject,
            artifact_type=SBOM,
            annotations={
                "org.opencontainers.image.created": "2024-01-01T00:00:00Z",
                "speedy.kind": "sbom",
            },
        )
        sig = content.image_manifest(
            sig_config, [], subject=subject, annotations={"speedy.kind": "signature"}
        )
        bundle = content.index_manifest(
            [], subject=subject, artifact_type=BUNDLE, annotations={"speedy.kind": "bundle"}
        )
        plain_index = content.index_manifest([], subject=subject)
        for m in (sbom, sig, bundle, plain_index):
            _push_referrer(ctx, repo, m)
        other = ctx.repo("referrers-other")
        ops.push_blobs(ctx.client, other, [empty, payload])
        stranger = content.image_manifest(empty, [payload], subject=subject, artifact_type=SBOM)
        _push_referrer(ctx, other, stranger)
        expected = {
            sbom.digest: (sbom, SBOM),
            sig.digest: (sig, SIG_CONFIG),
            bundle.digest: (bundle, BUNDLE),
            plain_index.digest: (plain_index, None),
        }
        return {"subject": subject, "sbom": sbom, "sig": sig, "expected": expected}

    return ctx.fixture("referrers", build)


def _list(ctx, repo, subject_digest, artifact_type=None):
    """GET the referrers: 200, the index media type, a valid empty-or-not
    index. Returns (response, manifests list)."""
    path = "/v2/%s/referrers/%s" % (repo, subject_digest)
    if artifact_type is not None:
        path = ops.with_query(path, artifactType=artifact_type)
    resp = ctx.client.request("GET", path)
    expect_status(resp, 200)
    ctype = expect_header(resp, "Content-Type")
    if ctype.split(";")[0].strip() != content.OCI_INDEX:
        fail(resp, "Content-Type: " + content.OCI_INDEX, "Content-Type: " + ctype)
    doc = expect_json(resp)
    if doc.get("schemaVersion") != 2 or doc.get("mediaType") != content.OCI_INDEX:
        fail(
            resp,
            "an image index (schemaVersion 2, mediaType %s)" % content.OCI_INDEX,
            resp.body[:200],
        )
    if not isinstance(doc.get("manifests"), list):
        fail(resp, 'a "manifests" array', resp.body[:200])
    return resp, doc["manifests"]


def _expect_entries(resp, got, expected):
    """The listed descriptors are exactly the expected referrers, each with
    mediaType, size, digest, artifactType (or none) and annotations."""
    digests = sorted(d.get("digest", "") for d in got)
    if digests != sorted(expected):
        fail(resp, "referrers %s" % sorted(expected), "%s" % digests)
    for d in got:
        m, atype = expected[d["digest"]]
        want = {"mediaType": m.media_type, "size": m.size, "digest": m.digest}
        if atype is not None:
            want["artifactType"] = atype
        if m.doc.get("annotations"):
            want["annotations"] = m.doc["annotations"]
        have = {
            k: d[k]
            for k in ("mediaType", "size", "digest", "artifactType", "annotations")
            if k in d
        }
        if have.get("annotations") == {} and "annotations" not in want:
            del have["annotations"]
        if have.get("artifactType") == "" and "artifactType" not in want:
            del have["artifactType"]
        if have != want:
            fail(resp, "descriptor %s" % want, "%s" % have)


@check("referrers.empty")
def referrers_empty(ctx):
    """No referrers (a manifest without any, a digest never pushed): 200 and an empty index, never
    404.
    """
    g = _graph(ctx)
    for d in (g["sbom"].digest, content.digest(b"nothing refers to this " + ctx.run_id.encode())):
        resp, got = _list(ctx, _repo(ctx), d)
        expect(got == [], "%s: expected no referrers, got %s" % (resp.describe(), got))


@check("referrers.list")
def referrers_list(ctx):
    """Every referrer in the repository is listed, with artifactType from the manifest, else the
    config
    mediaType, else omitted, and annotations copied.
    """
    g = _graph(ctx)
    resp, got = _list(ctx, _repo(ctx), g["subject"].digest)
    _expect_entries(resp, got, g["expected"])


@check("referrers.filter")
def referrers_filter(ctx):
    """?artifactType=<type> lists only that type and answers OCI-Filters-Applied: artifactType."""
    g = _graph(ctx)
    for atype, name in ((SBOM, "sbom"), (SIG_CONFIG, "sig")):
        resp, got = _list(ctx, _repo(ctx), g["subject"].digest, atype)
        expect_header(resp, "OCI-Filters-Applied", "artifactType")
        _expect_entries(resp, got, {g[name].digest: g["expected"][g[name].digest]})


@check("referrers.filter.no-match")
def referrers_filter_no_match(ctx):
    """A filter matching nothing: 200, an empty index, OCI-Filters-Applied: artifactType."""
    g = _graph(ctx)
    resp, got = _list(ctx, _repo(ctx), g["subject"].digest, "application/vnd.speedy.nothing")
    expect_header(resp, "OCI-Filters-Applied", "artifactType")
    expect(got == [], "%s: expected no referrers, got %s" % (resp.describe(), got))


@check("referrers.invalid-digest")
def referrers_invalid_digest(ctx):
    """GET referrers of a malformed digest: 400 (DIGEST_INVALID)."""
    _graph(ctx)
    resp = ctx.client.request("GET", "/v2/%s/referrers/%s" % (_repo(ctx), "sha256:" + "z" * 64))
    expect_error(resp, 400, "DIGEST_INVALID")


@check("referrers.subject-first-or-last")
def referrers_subject_order(ctx):
    """A referrer pushed before its subject is listed, and still is once the subject is pushed."""
    repo = ctx.repo("referrers-order")
    config = content.config_blob("late-subject/" + ctx.run_id)
    layer = content.Blob(b"late subject layer " + ctx.run_id.encode())
    ops.push_blobs(ctx.client, repo, [config, layer])
    subject = content.image_manifest(config, [layer])
    empty = content.Blob(content.EMPTY_JSON, content.OCI_EMPTY)
    ops.push_blobs(ctx.client, repo, [empty])
    early = content.image_manifest(empty, [], subject=subject, artifact_type=SBOM)
    _push_referrer(ctx, repo, early)
    want = {early.digest: (early, SBOM)}
    resp, got = _list(ctx, repo, subject.digest)
    _expect_entries(resp, got, want)
    ops.push_manifest(ctx.client, repo, "late", subject)
    resp, got = _list(ctx, repo, subject.digest)
    _expect_entries(resp, got, want)


@check("referrers.after-delete")
def referrers_after_delete(ctx):
    """A referrer deleted by digest is no longer listed."""
    repo = ctx.repo("referrers-delete")
    subject = ops.push_image(ctx.client, repo, "s", "ref-del-subject/" + ctx.run_id)
    empty = content.Blob(content.EMPTY_JSON, content.OCI_EMPTY)
    ops.push_blobs(ctx.client, repo, [empty])
    keep = content.image_manifest(empty, [], subject=subject, artifact_type=SBOM)
    drop = content.image_manifest(empty, [], subject=subject, artifact_type=BUNDLE)
    for m in (keep, drop):
        _push_referrer(ctx, repo, m)
    expect_status(ctx.client.request("DELETE", "/v2/%s/manifests/%s" % (repo, drop.digest)), 202)
    resp, got = _list(ctx, repo, subject.digest)
    _expect_entries(resp, got, {keep.digest: (keep, SBOM)})
