"""Checks of blob HEAD, GET (with Range) and DELETE (spec end-2, end-10;
RFC 9110 section 14 for ranges; anchor-registries section 2 "Blob GET")."""

from . import content, ops, wire
from .runner import (
    check,
    expect,
    expect_error,
    expect_header,
    expect_no_header,
    expect_status,
    fail,
)

BLOB_SIZE = 70001  # odd, so no range lines up with a power of two


def _blob(ctx):
    """Fixture: one blob in the repository 'blobs'."""

    def build(ctx):
        blob = content.Blob(content.random_bytes(BLOB_SIZE, "blob-fixture"))
        ops.push_blob(ctx.client, ctx.repo("blobs"), blob)
        return blob

    return ctx.fixture("blob", build)


def _get_range(ctx, rng, method="GET"):
    blob = _blob(ctx)
    resp = ctx.client.request(
        method, ops.blob_path(ctx.repo("blobs"), blob.digest), headers={"Range": rng}
    )
    return blob, resp


def _expect_single_range(resp, blob, first, last):
    """206 with Content-Range bytes first-last/size and exactly those bytes."""
    expect_status(resp, 206)
    cr = expect_header(resp, "Content-Range")
    try:
        got = wire.parse_content_range(cr)
    except wire.WireError as e:
        fail(resp, "Content-Range bytes %d-%d/%d" % (first, last, blob.size), str(e))
    if got != (first, last, blob.size):
        fail(
            resp, "Content-Range: bytes %d-%d/%d" % (first, last, blob.size), "Content-Range: " + cr
        )
    expect_header(resp, "Content-Length", str(last - first + 1))
    if resp.body != blob.data[first : last + 1]:
        fail(resp, "bytes %d-%d of the blob" % (first, last), "%d other bytes" % len(resp.body))


@check("blobs.head")
def blobs_head(ctx):
    """HEAD: 200, Content-Length = size, Docker-Content-Digest, no body."""
    blob = _blob(ctx)
    resp = ctx.client.request("HEAD", ops.blob_path(ctx.repo("blobs"), blob.digest))
    expect_status(resp, 200)
    expect_header(resp, "Content-Length", str(blob.size))
    expect_header(resp, "Docker-Content-Digest", blob.digest)
    expect(resp.body == b"", "%s: HEAD response has a body" % resp.describe())


@check("blobs.get")
def blobs_get(ctx):
    """GET: 200, the exact bytes, Content-Length and Docker-Content-Digest."""
    blob = _blob(ctx)
    resp = ops.expect_blob(ctx.client, ctx.repo("blobs"), blob)
    expect_header(resp, "Content-Length", str(blob.size))
    expect_header(resp, "Docker-Content-Digest", blob.digest)


@check("blobs.get.unknown")
def blobs_get_unknown(ctx):
    """GET/HEAD of a blob never pushed: 404 BLOB_UNKNOWN."""
    _blob(ctx)
    missing = content.digest(b"never pushed " + ctx.run_id.encode())
    path = ops.blob_path(ctx.repo("blobs"), missing)
    expect_error(ctx.client.request("GET", path), 404, "BLOB_UNKNOWN")
    expect_error(ctx.client.request("HEAD", path), 404, "BLOB_UNKNOWN")


@check("blobs.get.unknown-repo")
def blobs_get_unknown_repo(ctx):
    """GET of a blob in a repository that does not exist: 404 (BLOB_UNKNOWN or NAME_UNKNOWN)."""
    blob = _blob(ctx)
    resp = ctx.client.request("GET", ops.blob_path(ctx.repo("no-such-repo"), blob.digest))
    expect_error(resp, 404, ("BLOB_UNKNOWN", "NAME_UNKNOWN"))


@check("blobs.get.other-repo")
def blobs_get_other_repo(ctx):
    """A blob pushed to one repository is not served from another one (404 BLOB_UNKNOWN)."""
    blob = _blob(ctx)
    other = ctx.repo("blobs-other")
    ops.push_blob(ctx.client, other, content.Blob(b"other repository " + ctx.run_id.encode()))
    expect_error(ctx.client.request("GET", ops.blob_path(other, blob.digest)), 404, "BLOB_UNKNOWN")


@check("blobs.range.single")
def blobs_range_single(ctx):
    """Range: bytes=a-b -> 206, Content-Range bytes a-b/size, those bytes."""
    blob, resp = _get_range(ctx, "bytes=1000-65535")
    _expect_single_range(resp, blob, 1000, 65535)


@check("blobs.range.open-ended")
def blobs_range_open_ended(ctx):
    """Range: bytes=a- -> 206 up to the last byte."""
    blob, resp = _get_range(ctx, "bytes=%d-" % (BLOB_SIZE - 777))
    _expect_single_range(resp, blob, BLOB_SIZE - 777, BLOB_SIZE - 1)


@check("blobs.range.suffix")
def blobs_range_suffix(ctx):
    """Range: bytes=-n -> 206 with the last n bytes."""
    blob, resp = _get_range(ctx, "bytes=-100")
    _expect_single_range(resp, blob, BLOB_SIZE - 100, BLOB_SIZE - 1)


@check("blobs.range.clamped")
def blobs_range_clamped(ctx):
    """Range past the end (bytes=a-hugeb) is clamped to the last byte."""
    blob, resp = _get_range(ctx, "bytes=%d-%d" % (BLOB_SIZE - 10, BLOB_SIZE + 100000))
    _expect_single_range(resp, blob, BLOB_SIZE - 10, BLOB_SIZE - 1)


@check("blobs.range.multi")
def blobs_range_multi(ctx):
    """Several ranges -> 206 multipart/byteranges; each part checked: Content-Type, Content-Range,
    bytes, order.
    """
    wanted = [(0, 9), (5000, 5999), (BLOB_SIZE - 50, BLOB_SIZE - 1)]
    blob, resp = _get_range(ctx, "bytes=0-9,5000-5999,-50")
    expect_status(resp, 206)
    ctype = expect_header(resp, "Content-Type")
    expect_no_header(resp, "Content-Range")
    try:
        parts = wire.parse_multipart_byteranges(ctype, resp.body)
    except wire.WireError as e:
        fail(resp, "a multipart/byteranges body", str(e))
    expect_header(resp, "Content-Length", str(len(resp.body)))
    if len(parts) != len(wanted):
        fail(resp, "%d parts" % len(wanted), "%d parts" % len(parts))
    for i, ((headers, data), (first, last)) in enumerate(zip(parts, wanted)):
        cr = headers.get("content-range")
        try:
            got = wire.parse_content_range(cr)
        except wire.WireError as e:
            fail(
                resp,
                "part %d with Content-Range bytes %d-%d/%d" % (i, first, last, blob.size),
                str(e),
            )
        if got != (first, last, blob.size):
            fail(resp, "part %d Content-Range bytes %d-%d/%d" % (i, first, last, blob.size), cr)
        if "content-type" not in headers:
            fail(resp, "part %d with a Content-Type" % i, "none")
        if data != blob.data[first : last + 1]:
            fail(
                resp,
                "part %d = bytes %d-%d of the blob" % (i, first, last),
                "%d other bytes" % len(data),
            )


@check("blobs.range.unsatisfiable")
def blobs_range_unsatisfiable(ctx):
    """A range starting at or past the end -> 416 with Content-Range: bytes */size."""
    blob, resp = _get_range(ctx, "bytes=%d-" % BLOB_SIZE)
    expect_status(resp, 416)
    expect_header(resp, "Content-Range", "bytes */%d" % blob.size)


@check("blobs.range.head")
def blobs_range_head(ctx):
    """HEAD with Range still reports the blob (200 with the full length, or 206 for the range)."""
    blob, resp = _get_range(ctx, "bytes=0-99", method="HEAD")
    expect_status(resp, 200, 206)
    want = str(blob.size) if resp.status == 200 else "100"
    expect_header(resp, "Content-Length", want)


@check("blobs.delete")
def blobs_delete(ctx):
    """DELETE a blob: 202; then HEAD/GET 404 BLOB_UNKNOWN; DELETE again 404 BLOB_UNKNOWN."""
    repo = ctx.repo("blobs-delete")
    blob = content.Blob(content.random_bytes(3000, "delete-me/" + ctx.run_id))
    ops.push_blob(ctx.client, repo, blob)
    path = ops.blob_path(repo, blob.digest)
    resp = ctx.client.request("DELETE", path)
    expect_status(resp, 202)
    expect_error(ctx.client.request("HEAD", path), 404, "BLOB_UNKNOWN")
    expect_error(ctx.client.request("GET", path), 404, "BLOB_UNKNOWN")
    expect_error(ctx.client.request("DELETE", path), 404, "BLOB_UNKNOWN")


@check("blobs.delete.unknown")
def blobs_delete_unknown(ctx):
    """DELETE a blob never pushed: 404 BLOB_UNKNOWN."""
    _blob(ctx)
    path = ops.blob_path(
        ctx.repo("blobs"), content.digest(b"never pushed either " + ctx.run_id.encode())
    )
    expect_error(ctx.client.request("DELETE", path), 404, "BLOB_UNKNOWN")


@check("blobs.digest.invalid")
def blobs_digest_invalid(ctx):
    """GET with a malformed digest (non-hex, uppercase hex, too short, too long): 400
    DIGEST_INVALID.
    """
    _blob(ctx)
    bad = ["sha256:" + "z" * 64, "sha256:" + "A" * 64, "sha256:abc", "sha256:" + "a" * 65]
    for d in bad:
        resp = ctx.client.request("GET", ops.blob_path(ctx.repo("blobs"), d))
        expect_error(resp, 400, "DIGEST_INVALID")


@check("blobs.digest.unsupported-algorithm")
def blobs_digest_unsupported(ctx):
    """GET with a well-formed digest of an algorithm the registry does not store (md5): 400
    DIGEST_INVALID or 404 BLOB_UNKNOWN.
    """
    _blob(ctx)
    resp = ctx.client.request("GET", ops.blob_path(ctx.repo("blobs"), "md5:" + "a" * 32))
    expect_error(resp, (400, 404), ("DIGEST_INVALID", "BLOB_UNKNOWN", "UNSUPPORTED"))
