"""Checks that one connection carries many requests (HTTP/1.1 keep-alive),
including after error responses and after upload PATCHes, as http.client,
Go's and containerd's transports reuse connections. A check fails if the
registry closes the connection (Connection: close, or a silent close that
forces the client onto a new socket)."""

from . import content, ops
from .runner import check, expect_status, fail


class _Session:
    """A client of its own whose requests must all share one connection."""

    def __init__(self, ctx):
        self.client = ctx.new_client()
        self.sock = None

    def request(self, method, url, **kw):
        resp = self.client.request(method, url, **kw)
        if resp.will_close:
            fail(resp, "the connection kept open", "Connection: close")
        if self.sock is None:
            self.sock = resp.sock_id
        elif resp.sock_id != self.sock:
            fail(
                resp,
                "the request on the previous connection %s" % (self.sock,),
                "the registry closed it; the client reconnected as %s" % (resp.sock_id,),
            )
        return resp

    def close(self):
        self.client.close()


def _fixture(ctx):
    """Fixture: a blob and an image in 'keepalive'."""

    def build(ctx):
        repo = ctx.repo("keepalive")
        blob = content.Blob(content.random_bytes(10000, "ka/" + ctx.run_id))
        ops.push_blob(ctx.client, repo, blob)
        m = ops.push_image(ctx.client, repo, "ka", "ka-image/" + ctx.run_id)
        return repo, blob, m

    return ctx.fixture("keepalive", build)


@check("keepalive.many")
def keepalive_many(ctx):
    """80 requests (base, blob HEAD/GET/Range, manifest GET/HEAD/PUT, tag list, catalog, referrers)
    on
    one connection.
    """
    repo, blob, m = _fixture(ctx)
    s = _Session(ctx)
    accept = {"Accept": content.MANIFEST_ACCEPT}
    try:
        for _ in range(10):
            expect_status(s.request("GET", "/v2/"), 200)
            expect_status(s.request("HEAD", ops.blob_path(repo, blob.digest)), 200)
            expect_status(
                s.request("GET", ops.blob_path(repo, blob.digest), headers={"Range": "bytes=0-99"}),
                206,
            )
            expect_status(s.request("GET", "/v2/%s/manifests/ka" % repo, headers=accept), 200)
            expect_status(
                s.request("HEAD", "/v2/%s/manifests/%s" % (repo, m.digest), headers=accept), 200
            )
            expect_status(
                s.request(
                    "PUT",
                    "/v2/%s/manifests/ka" % repo,
                    headers={"Content-Type": m.media_type},
                    body=m.data,
                ),
                201,
            )
            expect_status(s.request("GET", "/v2/%s/tags/list" % repo), 200)
            expect_status(s.request("GET", "/v2/_catalog?n=1"), 200)
            expect_status(s.request("GET", "/v2/%s/referrers/%s" % (repo, m.digest)), 200, 404)
    finally:
        s.close()


@check("keepalive.after-errors")
def keepalive_after_errors(ctx):
    """After 404 (GET, HEAD, an upload PATCH with a body), 400 (a manifest PUT with a body) and 416,
    the connection still serves the next request.
    """
    repo, blob, _ = _fixture(ctx)
    s = _Session(ctx)
    missing = content.digest(b"ka missing " + ctx.run_id.encode())
    bad_manifest = (
        b'{"schemaVersion":2,"mediaType":"' + content.OCI_MANIFEST.encode() + b'","config":7}'
    )
    probes = [
        ("GET", ops.blob_path(repo, missing), {}, None, (404,)),
        ("HEAD", ops.blob_path(repo, missing), {}, None, (404,)),
        (
            "PUT",
            "/v2/%s/manifests/bad" % repo,
            {"Content-Type": content.OCI_MANIFEST},
            bad_manifest,
            (400,),
        ),
        (
            "PATCH",
            "/v2/%s/blobs/uploads/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9" % repo,
            {"Content-Type": "application/octet-stream"},
            b"z" * 50000,
            (404,),
        ),
        ("GET", "/v2/%s/manifests/nope" % repo, {"Accept": content.MANIFEST_ACCEPT}, None, (404,)),
        ("GET", ops.blob_path(repo, blob.digest), {"Range": "bytes=999999-"}, None, (416,)),
    ]
    try:
        for method, path, headers, body, statuses in probes:
            expect_status(s.request(method, path, headers=headers, body=body), *statuses)
            expect_status(s.request("GET", "/v2/"), 200)
    finally:
        s.close()


@check("keepalive.after-upload")
def keepalive_after_upload(ctx):
    """POST, a streamed PATCH, GET status, a PATCH with Content-Length, the closing PUT and a GET of
    the blob all on one connection.
    """
    repo, _, _ = _fixture(ctx)
    blob = content.Blob(content.random_bytes(200000, "ka-upload/" + ctx.run_id))
    s = _Session(ctx)
    try:
        resp = s.request("POST", ops.uploads_path(repo), body=b"")
        expect_status(resp, 202)
        url = s.client.resolve(resp, resp.header("Location"))
        stream = (blob.data[i : i + 50000] for i in range(0, 100000, 50000))
        resp = s.request(
            "PATCH", url, headers={"Content-Type": "application/octet-stream"}, body=stream
        )
        expect_status(resp, 202)
        url = ops.next_location(s.client, resp, url)
        resp = s.request("GET", url)
        expect_status(resp, 204)
        url = ops.next_location(s.client, resp, url)
        resp = s.request(
            "PATCH",
            url,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": "100000-%d" % (blob.size - 1),
            },
            body=blob.data[100000:],
        )
        expect_status(resp, 202)
        url = ops.next_location(s.client, resp, url)
        expect_status(s.request("PUT", ops.with_query(url, digest=blob.digest), body=b""), 201)
        resp = s.request("GET", ops.blob_path(repo, blob.digest))
        expect_status(resp, 200)
        if resp.body != blob.data:
            fail(resp, "the blob's bytes", "%d other bytes" % len(resp.body))
    finally:
        s.close()
