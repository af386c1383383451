"""The big-blob check (--big): a streamed upload of --big-size MiB (1 GiB by
default) and a streamed GET back, neither ever held in memory. The bytes
are pseudo-random pieces regenerated from a seed, so the last piece can be
compared after a Range GET too."""

import hashlib
import random
import time

from . import ops
from .runner import check, expect_header, expect_status, fail

PIECE = 1 << 20


def _piece(seed, i):
    """Piece i (1 MiB) of the big blob."""
    return random.Random("%s/%d" % (seed, i)).randbytes(PIECE)


def _pieces(seed, count, hasher):
    """Yields the pieces, hashing each as it goes out."""
    for i in range(count):
        data = _piece(seed, i)
        hasher.update(data)
        yield data


@check("big.streamed-upload", big=True)
def big_streamed_upload(ctx):
    """A --big-size MiB blob: one chunked PATCH of 1 MiB pieces, PUT ?digest=, HEAD size, streamed
    GET
    hashed back, Range GET of the last MiB.
    """
    count = ctx.args.big_size
    size = count * PIECE
    seed = "big/" + ctx.run_id
    repo = ctx.repo("big")
    _, url = ops.start_upload(ctx.client, repo)
    sent = hashlib.sha256()
    t0 = time.monotonic()
    resp = ctx.client.request(
        "PATCH",
        url,
        headers={"Content-Type": "application/octet-stream"},
        body=_pieces(seed, count, sent),
    )
    up = time.monotonic() - t0
    expect_status(resp, 202)
    expect_header(resp, "Range", "0-%d" % (size - 1))
    # The digest is known once the PATCH has sent every byte: the closing
    # PUT carries it, as clients that stream-hash a layer do.
    want = "sha256:" + sent.hexdigest()
    url = ops.next_location(ctx.client, resp, url)
    resp = ops.finish_upload(ctx.client, url, want)
    expect_status(resp, 201)
    expect_header(resp, "Docker-Content-Digest", want)

    path = ops.blob_path(repo, want)
    head = ctx.client.request("HEAD", path)
    expect_status(head, 200)
    expect_header(head, "Content-Length", str(size))

    t0 = time.monotonic()
    resp = ctx.client.request("GET", path, stream=True)
    expect_status(resp, 200)
    got, n = hashlib.sha256(), 0
    for data in resp.iter_body(PIECE):
        got.update(data)
        n += len(data)
    down = time.monotonic() - t0
    if n != size or "sha256:" + got.hexdigest() != want:
        fail(
            resp,
            "%d bytes with digest %s" % (size, want),
            "%d bytes with digest sha256:%s" % (n, got.hexdigest()),
        )

    tail = ctx.client.request("GET", path, headers={"Range": "bytes=-%d" % PIECE})
    expect_status(tail, 206)
    if tail.body != _piece(seed, count - 1):
        fail(tail, "the last MiB of the blob", "%d other bytes" % len(tail.body))
    mib = size / PIECE
    ctx.note(
        "upload %d MiB in %.1f s (%.0f MiB/s), download in %.1f s (%.0f MiB/s)"
        % (mib, up, mib / up, down, mib / down)
    )


@check("big.slow-patch", big=True)
def big_slow_patch(ctx):
    """A PATCH trickling 64 KiB every 2 s for --slow-seconds (40 s: over common request timeouts,
    never
    idle long): 202, then 201 (timeouts must be idle timeouts).
    """
    repo = ctx.repo("big")
    _, url = ops.start_upload(ctx.client, repo)
    sent = hashlib.sha256()
    gap = min(2.0, ctx.args.slow_seconds)
    pieces = max(1, int(ctx.args.slow_seconds / gap))

    def trickle():
        for i in range(pieces):
            data = random.Random("slow/%s/%d" % (ctx.run_id, i)).randbytes(65536)
            sent.update(data)
            yield data
            time.sleep(gap)

    t0 = time.monotonic()
    resp = ctx.client.request(
        "PATCH", url, headers={"Content-Type": "application/octet-stream"}, body=trickle()
    )
    expect_status(resp, 202)
    expect_header(resp, "Range", "0-%d" % (pieces * 65536 - 1))
    url = ops.next_location(ctx.client, resp, url)
    resp = ops.finish_upload(ctx.client, url, "sha256:" + sent.hexdigest())
    expect_status(resp, 201)
    ctx.note("a %d-piece PATCH lasting %.0f s was accepted" % (pieces, time.monotonic() - t0))
