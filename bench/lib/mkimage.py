#!/usr/bin/env python3
"""mkimage.py DIR COUNT SIZE - writes an OCI image layout in DIR (tag "latest")
whose image has COUNT layers of SIZE bytes of random (incompressible) data each.

Each layer is a gzip stream with stored (level 0) deflate blocks: a valid
application/vnd.oci.image.layer.v1.tar+gzip blob that skopeo recognises as
already compressed, so a push sends it as is instead of spending the whole
run in gzip of random bytes. The layer bytes are not a tar: skopeo copies
blobs between registries without unpacking them. Used by bench/registry."""
import hashlib
import json
import os
import sys
import zlib

PIECE = 1 << 20


def write_blob(blobs, data):
    """Stores bytes in the layout's blob directory; returns (digest, size)."""
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def write_layer(blobs, size):
    """Streams one random layer to the blob directory; returns its descriptor
    fields (digest, size) and the digest of the uncompressed bytes."""
    tmp = os.path.join(blobs, ".layer.tmp")
    gz = zlib.compressobj(0, zlib.DEFLATED, 31)
    compressed, uncompressed = hashlib.sha256(), hashlib.sha256()
    written = 0
    with open(tmp, "wb") as f:
        left = size
        while left > 0:
            raw = os.urandom(min(PIECE, left))
            left -= len(raw)
            uncompressed.update(raw)
            out = gz.compress(raw)
            compressed.update(out)
            written += f.write(out)
        out = gz.flush()
        compressed.update(out)
        written += f.write(out)
    digest = compressed.hexdigest()
    os.rename(tmp, os.path.join(blobs, digest))
    return "sha256:" + digest, written, "sha256:" + uncompressed.hexdigest()


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: mkimage.py DIR COUNT SIZE")
    root, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    blobs = os.path.join(root, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    layers, diff_ids = [], []
    for _ in range(count):
        digest, length, diff_id = write_layer(blobs, size)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": digest, "size": length})
        diff_ids.append(diff_id)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    cdigest, csize = write_blob(blobs, config)
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": cdigest, "size": csize},
                           "layers": layers}).encode()
    mdigest, msize = write_blob(blobs, manifest)
    index = {"schemaVersion": 2,
             "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "digest": mdigest, "size": msize,
                            "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


if __name__ == "__main__":
    main()
