"""Where the reference registry (distribution 2.8.2, Debian's docker-registry
package) is known to fail a check, and why. Used with --reference only: such
a failure is reported as `deviation` (counted as skipped), and a listed check
that passes is a failure, so the list stays exact. Speedy is held to every
check. Each reason was observed on the wire (docs/conformance.md)."""

_NO_REFERRERS = "no referrers API and no OCI-Subject (distribution PR #4828 is open)"
_TAGS = "2.8.2 lists tags in storage order, not sorted, and ignores n and last"

REFERENCE = {
    # blobs
    "blobs.range.unsatisfiable": (
        "416 keeps the blob's Content-Length over a 33-byte body (broken framing)"
    ),
    # uploads
    "uploads.single-post": "no single-POST upload: POST ?digest= falls back to 202",
    "uploads.single-post.wrong-digest": "no single-POST upload: POST ?digest= falls back to 202",
    "uploads.chunked.out-of-order": (
        "Content-Range on PATCH is ignored: gaps and resends are appended (202)"
    ),
    "uploads.chunked.first-not-zero": "Content-Range on PATCH is ignored (202)",
    "uploads.chunked.bad-content-range": "Content-Range on PATCH is not validated (202)",
    "uploads.unknown-session": "a session URL without its HMAC _state answers BLOB_UPLOAD_INVALID",
    "uploads.mount.without-from": "mount needs from; without it the POST falls back to 202",
    # manifests
    "manifests.get.accept-any": (
        "serves OCI manifests only to clients listing the OCI type in Accept (else 404)"
    ),
    "manifests.subject.dangling": _NO_REFERRERS,
    "manifests.size.too-large": "no 413: an oversized body is 400 MANIFEST_INVALID",
    "manifests.invalid": "schemaVersion 1 with an OCI mediaType is a 500 UNKNOWN",
    "manifests.reference.invalid": "an invalid tag does not match its router: plain-text 404",
    "manifests.get.invalid-tag": (
        "an invalid tag does not match its router: 404 with a plain-text body"
    ),
    "manifests.delete.tag": (
        "no tag deletion: DELETE by tag is 400 DIGEST_INVALID (the spec allows 400/405 "
        "when disabled)"
    ),
    # referrers
    "referrers.empty": _NO_REFERRERS,
    "referrers.list": _NO_REFERRERS,
    "referrers.filter": _NO_REFERRERS,
    "referrers.filter.no-match": _NO_REFERRERS,
    "referrers.invalid-digest": _NO_REFERRERS,
    "referrers.subject-first-or-last": _NO_REFERRERS,
    "referrers.after-delete": _NO_REFERRERS,
    # tags and catalog
    "tags.list": _TAGS,
    "tags.n": _TAGS,
    "tags.n-last": _TAGS,
    "tags.last": _TAGS,
    "tags.last-not-a-tag": _TAGS,
    "tags.n-zero": _TAGS,
    "tags.n-past-end": _TAGS,
    "tags.link-follow": _TAGS,
    "tags.n-invalid": _TAGS,
    "catalog.list": ("catalog order is a depth-first walk of the storage tree (a, a/c, a-b)"),
    "catalog.paginate": ("catalog order is a depth-first walk of the storage tree (a, a/c, a-b)"),
    "catalog.n-invalid": "only n above 1000 is refused; n=-1 and n=abc list everything (200)",
    # errors and connections
    "errors.name-invalid": (
        "invalid names are NAME_UNKNOWN (404), or a plain-text 404 where no route matches"
    ),
    "errors.unsupported-method": "405 with a text/plain body, not an UNSUPPORTED error",
    "keepalive.after-errors": (
        "the 416 response's framing is broken (see blobs.range.unsatisfiable)"
    ),
}
