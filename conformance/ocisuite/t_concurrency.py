"""Checks of concurrent clients: pushes that share layers (moby#22854,
containerd#2706 ended in MANIFEST_BLOB_UNKNOWN elsewhere), the same blob
uploaded twice at once, and the same manifest PUT twice at once. Each
thread has its own connection; a barrier lines the requests up so they
overlap, but no outcome depends on timing."""

import threading

from . import content, ops
from .runner import CheckFailed, check, expect, expect_header, expect_status, fail


def _parallel(ctx, jobs):
    """Runs each job(client) in its own thread, started together; raises
    the first failure (CheckFailed or other) after all have finished."""
    barrier = threading.Barrier(len(jobs))
    errors = [None] * len(jobs)
    results = [None] * len(jobs)

    def run(i, job):
        client = ctx.new_client()
        try:
            barrier.wait(timeout=30)
            results[i] = job(client)
        except Exception as e:  # noqa: BLE001 - handed to the checking thread
            errors[i] = e
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, e in enumerate(errors):
        if isinstance(e, CheckFailed):
            raise CheckFailed("client %d: %s" % (i, e))
        if e is not None:
            raise CheckFailed("client %d: %s: %s" % (i, type(e).__name__, e))
    return results


def _streamed_push(client, repo, blob):
    """POST, one streamed PATCH, PUT: the docker push of a layer."""
    _, url = ops.start_upload(client, repo)
    body = (blob.data[i : i + 65536] for i in range(0, blob.size, 65536))
    resp = client.request(
        "PATCH", url, headers={"Content-Type": "application/octet-stream"}, body=body
    )
    expect_status(resp, 202)
    url = ops.next_location(client, resp, url)
    resp = ops.finish_upload(client, url, blob.digest)
    expect_status(resp, 201)
    expect_header(resp, "Docker-Content-Digest", blob.digest)
    return resp


@check("concurrency.shared-layers")
def concurrency_shared_layers(ctx):
    """Two images sharing two layers pushed at the same time (to two repositories and to one): both
    pushes succeed, both pull back.
    """
    for round_, same_repo in enumerate((False, True)):
        shared = [
            content.Blob(content.random_bytes(150000, "shared-%d-%d/%s" % (round_, i, ctx.run_id)))
            for i in range(2)
        ]

        def push(client, k, round_=round_, same_repo=same_repo, shared=shared):
            repo = ctx.repo(
                "concurrent-%d" % round_ if same_repo else "concurrent-%d-%d" % (round_, k)
            )
            own = content.Blob(
                content.random_bytes(50000, "own-%d-%d/%s" % (round_, k, ctx.run_id))
            )
            config = content.config_blob("concurrent-%d-%d/%s" % (round_, k, ctx.run_id))
            for blob in [config] + shared + [own]:
                _streamed_push(client, repo, blob)
            m = content.image_manifest(config, shared + [own])
            ops.push_manifest(client, repo, "img-%d" % k, m)
            return repo, m, shared + [own]

        results = _parallel(ctx, [lambda c, k=k: push(c, k) for k in range(2)])
        for repo, m, blobs in results:
            resp = ops.get_manifest(ctx.client, repo, m.digest)
            expect_status(resp, 200)
            expect(resp.body == m.data, "%s: manifest bytes differ" % resp.describe())
            for blob in blobs:
                ops.expect_blob(ctx.client, repo, blob)


@check("concurrency.same-blob")
def concurrency_same_blob(ctx):
    """The same blob uploaded twice at once, then a third time: every upload 201 with the same
    digest,
    one blob served.
    """
    repo = ctx.repo("same-blob")
    blob = content.Blob(content.random_bytes(400000, "same-blob/" + ctx.run_id))
    _parallel(ctx, [lambda c: _streamed_push(c, repo, blob)] * 2)
    _streamed_push(ctx.client, repo, blob)
    head = ctx.client.request("HEAD", ops.blob_path(repo, blob.digest))
    expect_status(head, 200)
    expect_header(head, "Content-Length", str(blob.size))
    ops.expect_blob(ctx.client, repo, blob)


@check("concurrency.same-blob-two-repos")
def concurrency_same_blob_two_repos(ctx):
    """The same blob pushed at once to two repositories: both 201, each repository serves it."""
    blob = content.Blob(content.random_bytes(300000, "same-blob-2/" + ctx.run_id))
    repos = [ctx.repo("same-blob-a"), ctx.repo("same-blob-b")]
    _parallel(ctx, [lambda c, r=r: _streamed_push(c, r, blob) for r in repos])
    for r in repos:
        ops.expect_blob(ctx.client, r, blob)


@check("concurrency.same-manifest")
def concurrency_same_manifest(ctx):
    """The same manifest PUT to the same tag by 4 clients at once: every PUT 201 with the same
    digest.
    """
    repo = ctx.repo("same-manifest")
    config = content.config_blob("same-manifest/" + ctx.run_id)
    layer = content.Blob(content.random_bytes(1000, "same-manifest-layer/" + ctx.run_id))
    ops.push_blobs(ctx.client, repo, [config, layer])
    m = content.image_manifest(config, [layer])
    _parallel(ctx, [lambda c: ops.push_manifest(c, repo, "same", m)] * 4)
    resp = ops.get_manifest(ctx.client, repo, "same")
    expect_status(resp, 200)
    if resp.body != m.data:
        fail(resp, "the manifest pushed", "other bytes")
