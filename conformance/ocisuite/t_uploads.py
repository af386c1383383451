"""Checks of blob uploads (spec end-4a/4b, end-5, end-6, end-11, end-13 and
DELETE of a session): every way docker, podman, containerd and crane push a
blob, and the headers they parse (Location, Range, Docker-Upload-UUID)."""

import re
import urllib.parse

from . import content, ops, wire
from .runner import CheckSkipped, check, expect, expect_error, expect_header, expect_status, fail


def _repo(ctx):
    return ctx.repo("uploads")


def _blob(ctx, tag, size=5000):
    """A blob unique to this run and purpose."""
    return content.Blob(content.random_bytes(size, "%s/%s" % (ctx.run_id, tag)))


def _expect_upload_range(resp, last):
    """Range: 0-<last> exactly, without a bytes= prefix (moby parses %d-%d)."""
    got = expect_header(resp, "Range")
    try:
        _, end = wire.parse_upload_range(got)
    except wire.WireError as e:
        fail(resp, "Range: 0-%d" % last, str(e))
    if end != last:
        fail(resp, "Range: 0-%d" % last, "Range: " + got)


def _expect_created(ctx, resp, repo, blob):
    """201 with Location (a pullable blob URL) and Docker-Content-Digest."""
    expect_status(resp, 201)
    expect_header(resp, "Docker-Content-Digest", blob.digest)
    loc = ctx.client.resolve(resp, expect_header(resp, "Location"))
    got = ctx.client.request("GET", loc)
    if got.status != 200 or got.body != blob.data:
        fail(
            got,
            "the blob at the 201's Location (200, %d bytes)" % blob.size,
            "%d with %d bytes" % (got.status, len(got.body)),
        )
    ops.expect_blob(ctx.client, repo, blob)


def expect_header_if(resp, name, ok, what):
    """If header 'name' is present, ok(value) holds."""
    if resp.header(name) is not None:
        expect_header(resp, name, check=ok, what=what)


def _min_chunk(resp):
    """The registry's minimum chunk size (OCI-Chunk-Min-Length), or 0."""
    value = resp.header("OCI-Chunk-Min-Length", "0")
    return int(value) if value.isdigit() else 0


def _chunks(data, piece):
    """Yields data in pieces (a chunked request body)."""
    for i in range(0, len(data), piece):
        yield data[i : i + piece]


@check("uploads.start")
def uploads_start(ctx):
    """POST uploads/: 202, Location holding the session's UUID, Range: 0-0, Docker-Upload-UUID."""
    resp = ctx.client.request("POST", ops.uploads_path(_repo(ctx)), body=b"")
    expect_status(resp, 202)
    loc = expect_header(resp, "Location")
    uuid = expect_header(
        resp, "Docker-Upload-UUID", check=lambda v: bool(v.strip()), what="non-empty"
    )
    expect(
        uuid in loc,
        "%s: Location %s does not contain the session id %s" % (resp.describe(), loc, uuid),
    )
    _expect_upload_range(resp, 0)
    expect_header_if(
        resp, "OCI-Chunk-Min-Length", lambda v: v.isdigit() and int(v) > 0, "a positive integer"
    )
    url = ctx.client.resolve(resp, loc)
    path = urllib.parse.urlsplit(url).path
    want = "/v2/%s/blobs/uploads/" % _repo(ctx)
    expect(
        path.startswith(want),
        "%s: Location %s resolves to %s, not under %s" % (resp.describe(), loc, path, want),
    )
    ctx.client.request("DELETE", url)


@check("uploads.monolithic")
def uploads_monolithic(ctx):
    """POST then PUT ?digest= with the whole blob: 201, Location, Docker-Content-Digest."""
    blob = _blob(ctx, "monolithic")
    _, url = ops.start_upload(ctx.client, _repo(ctx))
    resp = ops.finish_upload(ctx.client, url, blob.digest, body=blob.data)
    _expect_created(ctx, resp, _repo(ctx), blob)


@check("uploads.single-post")
def uploads_single_post(ctx):
    """POST uploads/?digest= with the body: 201 and the blob exists (spec end-4b)."""
    blob = _blob(ctx, "single-post")
    path = ops.with_query(ops.uploads_path(_repo(ctx)), digest=blob.digest)
    resp = ctx.client.request(
        "POST", path, headers={"Content-Type": "application/octet-stream"}, body=blob.data
    )
    if resp.status == 202:
        fail(resp, "201 (single-POST upload)", "202 (fallback to POST then PUT)")
    _expect_created(ctx, resp, _repo(ctx), blob)


@check("uploads.single-post.wrong-digest")
def uploads_single_post_wrong(ctx):
    """POST uploads/?digest=<not the body's>: 400 DIGEST_INVALID, nothing stored."""
    blob = _blob(ctx, "single-post-wrong")
    wrong = content.digest(b"something else")
    path = ops.with_query(ops.uploads_path(_repo(ctx)), digest=wrong)
    resp = ctx.client.request(
        "POST", path, headers={"Content-Type": "application/octet-stream"}, body=blob.data
    )
    if resp.status == 202:
        fail(resp, "400 DIGEST_INVALID", "202 (single POST not supported)")
    expect_error(resp, 400, "DIGEST_INVALID")
    expect_error(ctx.client.request("HEAD", ops.blob_path(_repo(ctx), wrong)), 404, "BLOB_UNKNOWN")


@check("uploads.streamed-patch")
def uploads_streamed_patch(ctx):
    """PATCH with Transfer-Encoding: chunked, no Content-Length/Content-Range (docker, podman): 202
    Range 0-<n-1>; PUT without body: 201.
    """
    blob = _blob(ctx, "streamed", 300000)
    start, url = ops.start_upload(ctx.client, _repo(ctx))
    resp = ctx.client.request(
        "PATCH",
        url,
        headers={"Content-Type": "application/octet-stream"},
        body=_chunks(blob.data, 65536),
    )
    expect(
        resp.req_headers.get("Content-Length") is None,
        "client bug: streamed PATCH sent a Content-Length",
    )
    expect_status(resp, 202)
    expect_header(resp, "Location")
    _expect_upload_range(resp, blob.size - 1)
    expect_header(resp, "Docker-Upload-UUID", start.header("Docker-Upload-UUID"))
    url = ops.next_location(ctx.client, resp, url)
    resp = ops.finish_upload(ctx.client, url, blob.digest)
    _expect_created(ctx, resp, _repo(ctx), blob)


@check("uploads.patch.content-length")
def uploads_patch_content_length(ctx):
    """PATCH with Content-Length and no Content-Range: 202 Range 0-<n-1>; PUT: 201."""
    blob = _blob(ctx, "patch-cl", 12345)
    _, url = ops.start_upload(ctx.client, _repo(ctx))
    resp = ctx.client.request(
        "PATCH", url, headers={"Content-Type": "application/octet-stream"}, body=blob.data
    )
    expect_status(resp, 202)
    _expect_upload_range(resp, blob.size - 1)
    url = ops.next_location(ctx.client, resp, url)
    _expect_created(ctx, ops.finish_upload(ctx.client, url, blob.digest), _repo(ctx), blob)


def _patch_range(ctx, url, data, first):
    """PATCH one chunk with Content-Range first-last and Content-Length."""
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Range": "%d-%d" % (first, first + len(data) - 1),
    }
    return ctx.client.request("PATCH", url, headers=headers, body=data)


@check("uploads.chunked")
def uploads_chunked(ctx):
    """Chunked PATCHes with Content-Range in order: each 202 with Range 0-<end>; final chunk in the
    PUT: 201.
    """
    start, url = ops.start_upload(ctx.client, _repo(ctx))
    piece = max(10000, _min_chunk(start))
    blob = _blob(ctx, "chunked", 3 * piece)
    for first in (0, piece):
        resp = _patch_range(ctx, url, blob.data[first : first + piece], first)
        expect_status(resp, 202)
        expect_header(resp, "Location")
        _expect_upload_range(resp, first + piece - 1)
        url = ops.next_location(ctx.client, resp, url)
    last = blob.data[2 * piece :]
    resp = ops.finish_upload(
        ctx.client,
        url,
        blob.digest,
        body=last,
        headers={"Content-Range": "%d-%d" % (2 * piece, blob.size - 1)},
    )
    _expect_created(ctx, resp, _repo(ctx), blob)


@check("uploads.chunked.out-of-order")
def uploads_chunked_out_of_order(ctx):
    """A chunk that does not start at the current end -> 416 (a gap, and a resend of the previous
    chunk); the upload goes on.
    """
    blob = _blob(ctx, "out-of-order", 30000)
    _, url = ops.start_upload(ctx.client, _repo(ctx))
    resp = _patch_range(ctx, url, blob.data[:10000], 0)
    expect_status(resp, 202)
    url = ops.next_location(ctx.client, resp, url)
    gap = _patch_range(ctx, url, blob.data[20000:], 20000)
    expect_status(gap, 416)
    again = _patch_range(ctx, url, blob.data[:10000], 0)
    expect_status(again, 416)
    status = ctx.client.request("GET", url)
    expect_status(status, 204)
    _expect_upload_range(status, 9999)
    url = ops.next_location(ctx.client, status, url)
    resp = _patch_range(ctx, url, blob.data[10000:], 10000)
    expect_status(resp, 202)
    url = ops.next_location(ctx.client, resp, url)
    _expect_created(ctx, ops.finish_upload(ctx.client, url, blob.digest), _repo(ctx), blob)


@check("uploads.chunked.first-not-zero")
def uploads_chunked_first_not_zero(ctx):
    """A first chunk whose Content-Range does not start at 0 -> 416."""
    blob = _blob(ctx, "not-zero")
    _, url = ops.start_upload(ctx.client, _repo(ctx))
    expect_status(_patch_range(ctx, url, blob.data[100:], 100), 416)
    ctx.client.request("DELETE", url)


@check("uploads.chunked.bad-content-range")
def uploads_chunked_bad_content_range(ctx):
    """Content-Range not matching ^[0-9]+-[0-9]+$ ("bytes 0-9/10") or disagreeing with the body
    length:
    400 or 416.
    """
    blob = _blob(ctx, "bad-range", 100)
    _, url = ops.start_upload(ctx.client, _repo(ctx))
    for value in ("bytes 0-99/100", "0-49"):
        headers = {"Content-Type": "application/octet-stream", "Content-Range": value}
        resp = ctx.client.request("PATCH", url, headers=headers, body=blob.data)
        expect_status(resp, 400, 416)
        if resp.status == 400:
            expect_error(resp, 400, ("BLOB_UPLOAD_INVALID", "SIZE_INVALID"))
    ctx.client.request("DELETE", url)


@check("uploads.put.with-body")
def uploads_put_with_body(ctx):
    """PATCH part of the blob, then PUT ?digest= carrying the rest (no Content-Range): 201."""
    blob = _blob(ctx, "put-body", 20000)
    _, url = ops.start_upload(ctx.client, _repo(ctx))
    resp = ctx.client.request(
        "PATCH", url, headers={"Content-Type": "application/octet-stream"}, body=blob.data[:7000]
    )
    expect_status(resp, 202)
    url = ops.next_location(ctx.client, resp, url)
    resp = ops.finish_upload(ctx.client, url, blob.digest, body=blob.data[7000:])
    _expect_created(ctx, resp, _repo(ctx), blob)


@check("uploads.put.streamed-body")
def uploads_put_streamed_body(ctx):
    """POST then a PUT ?digest= whose body is chunked (containerd's push): 201."""
    blob = _blob(ctx, "put-streamed", 200000)
    _, url = ops.start_upload(ctx.client, _repo(ctx))
    resp = ops.finish_upload(ctx.client, url, blob.digest, body=_chunks(blob.data, 32768))
    _expect_created(ctx, resp, _repo(ctx), blob)


@check("uploads.empty-blob")
def uploads_empty_blob(ctx):
    """A zero-length blob: POST, PUT ?digest=sha256(empty) without a body: 201; HEAD Content-Length
    0.
    """
    blob = content.Blob(b"")
    repo = ctx.repo("uploads-empty")
    _, url = ops.start_upload(ctx.client, repo)
    _expect_created(ctx, ops.finish_upload(ctx.client, url, blob.digest), repo, blob)
    head = ctx.client.request("HEAD", ops.blob_path(repo, blob.digest))
    expect_status(head, 200)
    expect_header(head, "Content-Length", "0")


@check("uploads.wrong-digest")
def uploads_wrong_digest(ctx):
    """PUT ?digest= that is not the uploaded bytes' digest: 400 DIGEST_INVALID; that digest stays
    unknown.
    """
    blob = _blob(ctx, "wrong-digest")
    wrong = content.digest(b"not the bytes " + ctx.run_id.encode())
    _, url = ops.start_upload(ctx.client, _repo(ctx))
    resp = ops.finish_upload(ctx.client, url, wrong, body=blob.data)
    expect_error(resp, 400, "DIGEST_INVALID")
    expect_error(ctx.client.request("HEAD", ops.blob_path(_repo(ctx), wrong)), 404, "BLOB_UNKNOWN")


@check("uploads.malformed-digest")
def uploads_malformed_digest(ctx):
    """PUT ?digest= malformed (bad hex) or missing: 400 DIGEST_INVALID."""
    blob = _blob(ctx, "malformed-digest")
    for query in ({"digest": "sha256:" + "z" * 64}, {}):
        _, url = ops.start_upload(ctx.client, _repo(ctx))
        target = ops.with_query(url, **query) if query else url
        resp = ctx.client.request(
            "PUT", target, headers={"Content-Type": "application/octet-stream"}, body=blob.data
        )
        expect_error(resp, 400, "DIGEST_INVALID")
        ctx.client.request("DELETE", url)


@check("uploads.status")
def uploads_status(ctx):
    """GET on a session: 204 with Range 0-<end>, Location and Docker-Upload-UUID; on a fresh one
    Range
    0-0.
    """
    _, url = ops.start_upload(ctx.client, _repo(ctx))
    fresh = ctx.client.request("GET", url)
    expect_status(fresh, 204)
    _expect_upload_range(fresh, 0)
    resp = ctx.client.request(
        "PATCH", url, headers={"Content-Type": "application/octet-stream"}, body=b"x" * 4321
    )
    expect_status(resp, 202)
    url = ops.next_location(ctx.client, resp, url)
    status = ctx.client.request("GET", url)
    expect_status(status, 204)
    _expect_upload_range(status, 4320)
    expect_header(status, "Location")
    expect_header(status, "Docker-Upload-UUID")
    expect(status.body == b"", "%s: 204 with a body" % status.describe())
    ctx.client.request("DELETE", url)


@check("uploads.cancel")
def uploads_cancel(ctx):
    """DELETE a session: 204; then GET, PATCH and PUT on it: 404 BLOB_UPLOAD_UNKNOWN."""
    blob = _blob(ctx, "cancel")
    _, url = ops.start_upload(ctx.client, _repo(ctx))
    resp = ctx.client.request(
        "PATCH", url, headers={"Content-Type": "application/octet-stream"}, body=blob.data
    )
    expect_status(resp, 202)
    url = ops.next_location(ctx.client, resp, url)
    expect_status(ctx.client.request("DELETE", url), 204)
    expect_error(ctx.client.request("GET", url), 404, "BLOB_UPLOAD_UNKNOWN")
    resp = ctx.client.request(
        "PATCH", url, headers={"Content-Type": "application/octet-stream"}, body=b"more"
    )
    expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")
    expect_error(ops.finish_upload(ctx.client, url, blob.digest), 404, "BLOB_UPLOAD_UNKNOWN")
    expect_error(ctx.client.request("DELETE", url), 404, "BLOB_UPLOAD_UNKNOWN")


@check("uploads.unknown-session")
def uploads_unknown_session(ctx):
    """GET/PATCH/PUT/DELETE on a session id never issued: 404 BLOB_UPLOAD_UNKNOWN."""
    url = "/v2/%s/blobs/uploads/%s" % (_repo(ctx), "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9")
    expect_error(ctx.client.request("GET", url), 404, "BLOB_UPLOAD_UNKNOWN")
    resp = ctx.client.request(
        "PATCH", url, headers={"Content-Type": "application/octet-stream"}, body=b"abc"
    )
    expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")
    expect_error(
        ops.finish_upload(ctx.client, url, content.digest(b"abc"), body=b"abc"),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    expect_error(ctx.client.request("DELETE", url), 404, "BLOB_UPLOAD_UNKNOWN")


@check("uploads.closed-session")
def uploads_closed_session(ctx):
    """After the closing PUT (201) the session is gone: GET 404 BLOB_UPLOAD_UNKNOWN."""
    blob = _blob(ctx, "closed")
    _, url = ops.start_upload(ctx.client, _repo(ctx))
    resp = ops.finish_upload(ctx.client, url, blob.digest, body=blob.data)
    expect_status(resp, 201)
    expect_error(ctx.client.request("GET", url), 404, "BLOB_UPLOAD_UNKNOWN")


@check("uploads.resume-new-connection")
def uploads_resume_new_connection(ctx):
    """A session continues on other connections (no sticky state): PATCH, status, PATCH, PUT each on
    a
    new connection.
    """
    blob = _blob(ctx, "resume", 40000)
    _, url = ops.start_upload(ctx.client, _repo(ctx))
    pieces = [(0, 15000), (15000, 40000)]
    for first, end in pieces:
        c = ctx.new_client()
        status = c.request("GET", url)
        expect_status(status, 204)
        url = ops.next_location(c, status, url)
        resp = _patch_range_on(c, url, blob.data[first:end], first)
        expect_status(resp, 202)
        url = ops.next_location(c, resp, url)
        c.close()
    c = ctx.new_client()
    resp = ops.finish_upload(c, url, blob.digest)
    c.close()
    _expect_created(ctx, resp, _repo(ctx), blob)


def _on_origin(url, base):
    """url moved to the origin (scheme, host, port) of base."""
    u, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit((b.scheme, b.netloc, u.path, u.query, u.fragment))


@check("uploads.resume-other-server")
def uploads_resume_other_server(ctx):
    """With --peer-url (a second front end of the same registry): a session started on one continues
    on
    the other, PATCH by PATCH, and closes on the first; the blob and a manifest are visible on both.
    """
    peer = ctx.args.peer_url
    if not peer:
        raise CheckSkipped("needs --peer-url, a second front end of the same registry")
    blob = _blob(ctx, "other-server", 60000)
    repo = _repo(ctx)
    _, url = ops.start_upload(ctx.client, repo)
    other = http_client(ctx, peer)
    try:
        for i, first in enumerate((0, 20000, 40000)):
            c = other if i % 2 == 0 else ctx.client
            target = _on_origin(url, peer if c is other else ctx.args.url)
            resp = _patch_range_on(c, target, blob.data[first : first + 20000], first)
            expect_status(resp, 202)
            _expect_upload_range(resp, first + 20000 - 1)
            url = ops.next_location(c, resp, target)
        resp = ops.finish_upload(ctx.client, _on_origin(url, ctx.args.url), blob.digest)
        _expect_created(ctx, resp, repo, blob)
        ops.expect_blob(other, repo, blob)
        m = ops.push_image(other, repo, "peer", "peer-image/" + ctx.run_id)
        got = ops.get_manifest(ctx.client, repo, "peer")
        expect_status(got, 200)
        expect(got.body == m.data, "%s: manifest pushed through the peer differs" % got.describe())
    finally:
        other.close()


def http_client(ctx, url):
    """A client of the registry at another URL, with the run's options."""
    from . import http

    return http.Client(
        url, timeout=ctx.args.timeout, insecure=ctx.args.insecure, log=ctx.args.verbose
    )


def _patch_range_on(client, url, data, first):
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Range": "%d-%d" % (first, first + len(data) - 1),
    }
    return client.request("PATCH", url, headers=headers, body=data)


@check("uploads.invisible-until-complete")
def uploads_invisible_until_complete(ctx):
    """Every byte PATCHed but no closing PUT yet: the digest is unknown (HEAD 404) and a manifest
    naming it is MANIFEST_BLOB_UNKNOWN; after the PUT both work.
    """
    repo = ctx.repo("uploads-pending")
    blob = _blob(ctx, "pending", 30000)
    config = content.config_blob("pending/" + ctx.run_id)
    ops.push_blob(ctx.client, repo, config)
    _, url = ops.start_upload(ctx.client, repo)
    resp = ctx.client.request(
        "PATCH", url, headers={"Content-Type": "application/octet-stream"}, body=blob.data
    )
    expect_status(resp, 202)
    url = ops.next_location(ctx.client, resp, url)
    expect_error(ctx.client.request("HEAD", ops.blob_path(repo, blob.digest)), 404, "BLOB_UNKNOWN")
    m = content.image_manifest(config, [blob])
    expect_error(ops.put_manifest(ctx.client, repo, "pending", m), 400, "MANIFEST_BLOB_UNKNOWN")
    _expect_created(ctx, ops.finish_upload(ctx.client, url, blob.digest), repo, blob)
    ops.push_manifest(ctx.client, repo, "pending", m)


@check("uploads.location-resolution")
def uploads_location_resolution(ctx):
    """Every Location is a relative reference or an absolute URL that resolves (RFC 3986) to this
    registry's /v2/ space.
    """
    blob = _blob(ctx, "location")
    start, url = ops.start_upload(ctx.client, _repo(ctx))
    resp = ctx.client.request(
        "PATCH", url, headers={"Content-Type": "application/octet-stream"}, body=blob.data
    )
    expect_status(resp, 202)
    url2 = ops.next_location(ctx.client, resp, url)
    done = ops.finish_upload(ctx.client, url2, blob.digest)
    expect_status(done, 201)
    for r in (start, resp, done):
        loc = expect_header(r, "Location")
        resolved = urllib.parse.urlsplit(ctx.client.resolve(r, loc))
        expect(
            resolved.scheme in ("http", "https") and resolved.path.startswith("/v2/"),
            "%s: Location %r does not resolve to a /v2/ URL" % (r.describe(), loc),
        )
        expect(
            not re.search(r"\s", loc), "%s: Location %r contains whitespace" % (r.describe(), loc)
        )


@check("uploads.mount")
def uploads_mount(ctx):
    """POST ?mount=<digest>&from=<repo> of an existing blob: 201, Location, Docker-Content-Digest;
    the
    blob is in the target.
    """
    blob = _blob(ctx, "mount-src")
    src, dst = ctx.repo("mount-src"), ctx.repo("mount-dst")
    ops.push_blob(ctx.client, src, blob)
    path = ops.with_query(ops.uploads_path(dst), mount=blob.digest, **{"from": src})
    resp = ctx.client.request("POST", path, body=b"")
    if resp.status == 202:
        fail(resp, "201 (mounted)", "202 (fallback to an upload)")
    _expect_created(ctx, resp, dst, blob)


@check("uploads.mount.without-from")
def uploads_mount_without_from(ctx):
    """POST ?mount=<digest> without from, blob readable elsewhere in the registry: 201 (the spec
    lets
    from be optional).
    """
    blob = _blob(ctx, "mount-nofrom")
    src, dst = ctx.repo("mount-nofrom-src"), ctx.repo("mount-nofrom-dst")
    ops.push_blob(ctx.client, src, blob)
    resp = ctx.client.request(
        "POST", ops.with_query(ops.uploads_path(dst), mount=blob.digest), body=b""
    )
    if resp.status == 202:
        ctx.client.request("DELETE", ctx.client.resolve(resp, resp.header("Location", "")))
        fail(resp, "201 (mounted without from)", "202 (fallback to an upload)")
    _expect_created(ctx, resp, dst, blob)


@check("uploads.mount.unknown-blob")
def uploads_mount_unknown_blob(ctx):
    """POST ?mount=<unknown digest>&from=<repo>: 202 with a Location, an upload session to continue
    with.
    """
    src = ctx.repo("mount-src-unknown")
    ops.push_blob(ctx.client, src, _blob(ctx, "mount-unknown-src"))
    blob = _blob(ctx, "mount-unknown")
    path = ops.with_query(
        ops.uploads_path(ctx.repo("mount-dst-unknown")), mount=blob.digest, **{"from": src}
    )
    resp = ctx.client.request("POST", path, body=b"")
    expect_status(resp, 202)
    url = ctx.client.resolve(resp, expect_header(resp, "Location"))
    _expect_created(
        ctx,
        ops.finish_upload(ctx.client, url, blob.digest, body=blob.data),
        ctx.repo("mount-dst-unknown"),
        blob,
    )


@check("uploads.mount.unknown-from")
def uploads_mount_unknown_from(ctx):
    """POST ?mount=<digest>&from=<repository that does not exist>: 202 fallback, or 201 if the
    registry
    finds the blob anyway.
    """
    blob = _blob(ctx, "mount-from-missing")
    ops.push_blob(ctx.client, ctx.repo("mount-any"), blob)
    dst = ctx.repo("mount-dst-from-missing")
    path = ops.with_query(
        ops.uploads_path(dst), mount=blob.digest, **{"from": ctx.repo("no-such-repo")}
    )
    resp = ctx.client.request("POST", path, body=b"")
    expect_status(resp, 201, 202)
    if resp.status == 202:
        ctx.client.request("DELETE", ctx.client.resolve(resp, expect_header(resp, "Location")))
    else:
        _expect_created(ctx, resp, dst, blob)
