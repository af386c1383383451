"""What the checks push: blob bytes, digests and manifest documents.

Manifests are serialised once (compact JSON, no trailing newline) and pushed
as those exact bytes; the checks compare what comes back byte for byte."""

import hashlib
import json
import random

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

EMPTY_JSON = b"{}"
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))


def digest(data):
    """The sha256 digest string of bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def random_bytes(size, seed=None):
    """size pseudo-random bytes (deterministic for a given seed)."""
    return random.Random(seed).randbytes(size) if size else b""


class Blob:
    """Bytes with their digest, size and the media type a descriptor gives them."""

    def __init__(self, data, media_type=OCI_LAYER):
        self.data = data
        self.digest = digest(data)
        self.size = len(data)
        self.media_type = media_type

    def descriptor(self, **extra):
        """The OCI descriptor of this blob."""
        d = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        d.update(extra)
        return d


class Manifest:
    """A manifest document: its exact bytes, media type and digest."""

    def __init__(self, doc, media_type, raw=None):
        self.doc = doc
        self.media_type = media_type
        self.data = raw if raw is not None else encode(doc)
        self.digest = digest(self.data)
        self.size = len(self.data)

    def descriptor(self, **extra):
        """The descriptor of this manifest (as an index child or subject)."""
        d = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        d.update(extra)
        return d


def encode(doc):
    """Compact JSON bytes."""
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def config_blob(seed, media_type=OCI_CONFIG):
    """A small image config, distinct per seed."""
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Labels": {"speedy.conformance.seed": str(seed)}},
    }
    return Blob(encode(doc), media_type)


def image_manifest(
    config, layers, subject=None, artifact_type=None, annotations=None, media_type=OCI_MANIFEST
):
    """An OCI image manifest (or, with media_type=DOCKER_MANIFEST, a Docker
    schema2 manifest) over a config blob and layer blobs."""
    doc = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    doc["config"] = config.descriptor()
    doc["layers"] = [layer.descriptor() for layer in layers]
    if subject is not None:
        doc["subject"] = subject.descriptor() if hasattr(subject, "descriptor") else subject
    if annotations:
        doc["annotations"] = annotations
    return Manifest(doc, media_type)


def index_manifest(
    children, subject=None, artifact_type=None, annotations=None, media_type=OCI_INDEX
):
    """An OCI image index (or Docker manifest list) over child manifests,
    each given a platform."""
    manifests = []
    for i, child in enumerate(children):
        plat = {"architecture": ("amd64", "arm64", "s390x", "ppc64le")[i % 4], "os": "linux"}
        manifests.append(child.descriptor(platform=plat))
    doc = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    doc["manifests"] = manifests
    if subject is not None:
        doc["subject"] = subject.descriptor()
    if annotations:
        doc["annotations"] = annotations
    return Manifest(doc, media_type)


def padded_manifest(config, layer, total_size):
    """An OCI image manifest of exactly total_size bytes: an annotation
    value pads it."""
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
        "annotations": {"speedy.conformance.padding": ""},
    }
    pad = total_size - len(encode(doc))
    if pad < 0:
        raise ValueError("manifest cannot be as small as %d bytes" % total_size)
    doc["annotations"]["speedy.conformance.padding"] = "x" * pad
    m = Manifest(doc, OCI_MANIFEST)
    assert m.size == total_size
    return m
