"""Client flows the checks build on: starting an upload, pushing a blob or a
manifest, the way docker/containerd/crane do them. Each flow verifies the
responses it depends on and raises CheckFailed (through runner.expect_*)
when the registry answers something a client could not continue from."""

import urllib.parse

from . import content
from .runner import expect, expect_header, expect_status


def with_query(url, **params):
    """url with params appended to its query (keeping what is there, as the
    spec's "<location>?digest=" means for a Location with a query)."""
    parts = urllib.parse.urlsplit(url)
    extra = urllib.parse.urlencode(params)
    query = parts.query + "&" + extra if parts.query else extra
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def uploads_path(repo):
    """The upload start path of a repository."""
    return "/v2/%s/blobs/uploads/" % repo


def start_upload(client, repo):
    """POST .../blobs/uploads/ (Content-Length: 0); expects 202 and a
    Location. Returns (response, resolved upload URL)."""
    resp = client.request("POST", uploads_path(repo), body=b"")
    expect_status(resp, 202)
    loc = expect_header(resp, "Location")
    return resp, client.resolve(resp, loc)


def next_location(client, resp, current):
    """The upload URL to use after resp: its Location (resolved) if any, as
    clients follow it, else the current one."""
    loc = resp.header("Location")
    return client.resolve(resp, loc) if loc else current


def finish_upload(client, url, blob_digest, body=b"", headers=None):
    """PUT <location>?digest=<digest> with an optional final chunk."""
    h = {"Content-Type": "application/octet-stream"}
    h.update(headers or {})
    return client.request("PUT", with_query(url, digest=blob_digest), headers=h, body=body)


def push_blob(client, repo, blob):
    """Pushes a blob with POST then PUT (the monolithic flow every registry
    supports); expects 201. Returns the PUT response."""
    _, url = start_upload(client, repo)
    resp = finish_upload(client, url, blob.digest, body=blob.data)
    expect_status(resp, 201)
    return resp


def push_blobs(client, repo, blobs):
    """Pushes each blob (skipping none: registries deduplicate)."""
    for blob in blobs:
        push_blob(client, repo, blob)


def put_manifest(client, repo, ref, manifest, content_type=None):
    """PUT /v2/<repo>/manifests/<ref> with the manifest's exact bytes and
    Content-Type (its media type unless given). Returns the response."""
    ctype = content_type or manifest.media_type
    return client.request(
        "PUT",
        "/v2/%s/manifests/%s" % (repo, ref),
        headers={"Content-Type": ctype},
        body=manifest.data,
    )


def push_manifest(client, repo, ref, manifest):
    """Pushes a manifest and expects 201 with a matching
    Docker-Content-Digest. Returns the response."""
    resp = put_manifest(client, repo, ref, manifest)
    expect_status(resp, 201)
    expect_header(resp, "Docker-Content-Digest", manifest.digest)
    return resp


def push_image(client, repo, tag, seed, layers=2, layer_size=2048, media_type=content.OCI_MANIFEST):
    """Pushes config + layers + manifest (tagged 'tag', or by digest when tag
    is None). Returns the Manifest."""
    docker = media_type == content.DOCKER_MANIFEST
    config = content.config_blob(seed, content.DOCKER_CONFIG if docker else content.OCI_CONFIG)
    lmt = content.DOCKER_LAYER if docker else content.OCI_LAYER
    blobs = [
        content.Blob(content.random_bytes(layer_size, "%s/%d" % (seed, i)), lmt)
        for i in range(layers)
    ]
    push_blobs(client, repo, [config] + blobs)
    m = content.image_manifest(config, blobs, media_type=media_type)
    push_manifest(client, repo, tag or m.digest, m)
    return m


def get_manifest(client, repo, ref, accept=content.MANIFEST_ACCEPT, method="GET", headers=None):
    """GET (or HEAD) a manifest with an Accept header as clients send it."""
    h = {"Accept": accept} if accept else {}
    h.update(headers or {})
    return client.request(method, "/v2/%s/manifests/%s" % (repo, ref), headers=h)


def blob_path(repo, blob_digest):
    return "/v2/%s/blobs/%s" % (repo, blob_digest)


def expect_blob(client, repo, blob):
    """GET the blob: 200 with its exact bytes."""
    resp = client.request("GET", blob_path(repo, blob.digest))
    expect_status(resp, 200)
    expect(
        resp.body == blob.data,
        "%s: body differs from the %d bytes pushed (got %d bytes)"
        % (resp.describe(), blob.size, len(resp.body)),
    )
    return resp
