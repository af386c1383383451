"""A small in-memory registry that behaves as the suite expects speedy to,
for testing the suite itself: every check must pass against it, and each
fault (a named misbehaviour switched on at start) must make the checks that
guard against it fail. Standard library only; one thread per connection
(http.server), HTTP/1.1 keep-alive, chunked request bodies.

Not a registry to use: no persistence, no auth, coarse locking."""

import hashlib
import http.server
import json
import re
import socket
import threading
import urllib.parse
import uuid

NAME_RE = re.compile(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
DIGEST_GRAMMAR = re.compile(r"^[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
SHA256_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
ROUTE_RE = re.compile(
    r"^/v2/(?P<name>.+)/(?P<kind>tags/list|manifests|blobs/uploads|blobs|referrers)"
    r"(?:/(?P<ref>[^/]*))?$"
)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    OCI_INDEX,
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MAX_MANIFEST = 4 << 20
STATUS = {
    "BLOB_UNKNOWN": 404,
    "BLOB_UPLOAD_INVALID": 400,
    "BLOB_UPLOAD_UNKNOWN": 404,
    "DIGEST_INVALID": 400,
    "MANIFEST_BLOB_UNKNOWN": 400,
    "MANIFEST_INVALID": 400,
    "MANIFEST_UNKNOWN": 404,
    "NAME_INVALID": 400,
    "NAME_UNKNOWN": 404,
    "SIZE_INVALID": 400,
    "UNSUPPORTED": 405,
    "TAG_INVALID": 400,
    "PAGINATION_NUMBER_INVALID": 400,
}

# Misbehaviours a test can switch on, each guarded by at least one check.
FAULTS = frozenset(
    (
        "unsorted-tags",  # tag list in push order
        "no-link",  # no Link header on a partial tag page
        "no-filters-header",  # filter referrers without OCI-Filters-Applied
        "range-ignored",  # answer Range requests with the whole blob (200)
        "multipart-reversed",  # multipart parts in reverse order
        "close-after-error",  # Connection: close on every 4xx
        "range-bytes-prefix",  # upload Range as "bytes=0-N"
        "lax-content-range",  # append PATCH bodies whatever their Content-Range
        "text-errors",  # error bodies as text/plain
        "no-subject-header",  # no OCI-Subject on manifest PUT
        "no-manifest-digest",  # no Docker-Content-Digest on manifest PUT
        "lost-annotations",  # referrers entries without annotations
    )
)


class State:
    """Everything the registry stores, under one lock."""

    def __init__(self, faults):
        unknown = set(faults) - FAULTS
        if unknown:
            raise ValueError("unknown faults %s" % sorted(unknown))
        self.faults = frozenset(faults)
        self.lock = threading.Lock()
        self.blobs = {}  # digest -> bytes
        self.repo_blobs = {}  # repo -> set(digest)
        self.uploads = {}  # id -> {"repo", "data"}
        self.manifests = {}  # repo -> {digest: dict(data, type, subject, atype, annotations)}
        self.tags = {}  # repo -> {tag: digest} (insertion ordered)

    def repos(self):
        return sorted(set(self.repo_blobs) | set(self.manifests))


class ApiError(Exception):
    def __init__(self, code, status=None, headers=None):
        super().__init__(code)
        self.code = code
        self.status = status or STATUS[code]
        self.headers = headers or {}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "model-registry"

    def setup(self):
        super().setup()
        # Headers and body leave in two writes: without NODELAY, Nagle and
        # the client's delayed ACK add 40 ms to every response.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):  # quiet
        pass

    # ---- plumbing -----------------------------------------------------------

    @property
    def st(self):
        return self.server.state

    def fault(self, name):
        return name in self.st.faults

    def body(self):
        """The request body, Content-Length or chunked."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))

    def send(self, status, body=b"", headers=None, ctype=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if ctype:
            self.send_header("Content-Type", ctype)
        if status >= 400 and self.fault("close-after-error"):
            self.send_header("Connection", "close")
            self.close_connection = True
        length = body if isinstance(body, int) else len(body)
        if status not in (204, 304):
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command != "HEAD" and not isinstance(body, int) and status not in (204, 304):
            self.wfile.write(body)

    def error(self, err):
        if self.fault("text-errors"):
            self.send(err.status, err.code.encode(), err.headers, "text/plain")
            return
        body = json.dumps(
            {"errors": [{"code": err.code, "message": err.code.lower().replace("_", " ")}]}
        )
        self.send(err.status, body.encode(), err.headers, "application/json")

    def dispatch(self):
        parts = urllib.parse.urlsplit(self.path)
        self.query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        self.req_body = self.body() if self.command in ("PUT", "POST", "PATCH") else b""
        try:
            self.route(parts.path)
        except ApiError as e:
            self.error(e)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = dispatch

    def route(self, path):
        if path in ("/v2/", "/v2"):
            return self.send(
                200, b"{}", {"Docker-Distribution-API-Version": "registry/2.0"}, "application/json"
            )
        if path == "/v2/_catalog":
            return self.catalog()
        m = ROUTE_RE.match(path)
        if not m:
            return self.send(404, b"not found", ctype="text/plain")
        name, kind, ref = m.group("name"), m.group("kind"), m.group("ref")
        if len(name) > 255 or not NAME_RE.match(name):
            raise ApiError("NAME_INVALID")
        handlers = {
            ("tags/list", "GET"): self.tags_list,
            ("manifests", "GET"): self.manifest_get,
            ("manifests", "HEAD"): self.manifest_get,
            ("manifests", "PUT"): self.manifest_put,
            ("manifests", "DELETE"): self.manifest_delete,
            ("blobs", "GET"): self.blob_get,
            ("blobs", "HEAD"): self.blob_get,
            ("blobs", "DELETE"): self.blob_delete,
            ("blobs/uploads", "POST"): self.upload_start,
            ("blobs/uploads", "GET"): self.upload_status,
            ("blobs/uploads", "PATCH"): self.upload_patch,
            ("blobs/uploads", "PUT"): self.upload_put,
            ("blobs/uploads", "DELETE"): self.upload_delete,
            ("referrers", "GET"): self.referrers,
        }
        h = handlers.get((kind, self.command))
        if h is None:
            raise ApiError("UNSUPPORTED")
        with self.st.lock:
            h(name, ref)

    def q(self, key):
        v = self.query.get(key)
        return v[0] if v else None

    # ---- pagination -----------------------------------------------------------

    def page(self, items, base, key, name=None):
        n_raw, last = self.q("n"), self.q("last")
        if last is not None:
            items = [i for i in items if i > last]
        n = None
        if n_raw is not None:
            if not n_raw.isdigit() or int(n_raw) > 1000:
                raise ApiError("PAGINATION_NUMBER_INVALID")
            n = int(n_raw)
        headers = {}
        if n is not None and len(items) > n:
            items = items[:n]
            if n > 0 and not self.fault("no-link"):
                q = urllib.parse.urlencode({"n": n, "last": items[-1]})
                headers["Link"] = '<%s?%s>; rel="next"' % (base, q)
        elif n == 0:
            items = []
        doc = {key: items} if name is None else {"name": name, key: items}
        self.send(200, json.dumps(doc).encode(), headers, "application/json")

    def catalog(self):
        with self.st.lock:
            self.page(self.st.repos(), "/v2/_catalog", "repositories")

    def tags_list(self, name, _):
        if (
            name not in self.st.tags
            and name not in self.st.manifests
            and name not in self.st.repo_blobs
        ):
            raise ApiError("NAME_UNKNOWN")
        tags = list(self.st.tags.get(name, {}))
        self.page(
            tags if self.fault("unsorted-tags") else sorted(tags),
            "/v2/%s/tags/list" % name,
            "tags",
            name,
        )

    # ---- blobs -----------------------------------------------------------------

    def digest_of(self, ref):
        if not DIGEST_GRAMMAR.match(ref) or (
            ref.startswith("sha256:") and not SHA256_RE.match(ref)
        ):
            raise ApiError("DIGEST_INVALID")
        return ref

    def blob_get(self, name, ref):
        d = self.digest_of(ref)
        if d not in self.st.repo_blobs.get(name, ()):
            raise ApiError("BLOB_UNKNOWN")
        data = self.st.blobs[d]
        base = {"Docker-Content-Digest": d, "Accept-Ranges": "bytes"}
        rng = self.headers.get("Range")
        if rng and not self.fault("range-ignored"):
            return self.blob_ranges(data, rng, base)
        self.send(
            200, len(data) if self.command == "HEAD" else data, base, "application/octet-stream"
        )

    def blob_ranges(self, data, rng, headers):
        size, spans = len(data), []
        for spec in rng.split("=", 1)[1].split(","):
            a, b = spec.strip().split("-")
            first, last = (
                (size - int(b), size - 1)
                if a == ""
                else (int(a), min(int(b), size - 1) if b else size - 1)
            )
            if first < size:
                spans.append((max(first, 0), last))
        if not spans:
            headers["Content-Range"] = "bytes */%d" % size
            return self.send(416, b"", headers)
        if len(spans) == 1:
            a, b = spans[0]
            headers["Content-Range"] = "bytes %d-%d/%d" % (a, b, size)
            return self.send(206, data[a : b + 1], headers, "application/octet-stream")
        if self.fault("multipart-reversed"):
            spans.reverse()
        boundary = uuid.uuid4().hex
        out = b""
        for a, b in spans:
            head = "--%s\r\nContent-Type: application/octet-stream\r\n" % boundary
            head += "Content-Range: bytes %d-%d/%d\r\n\r\n" % (a, b, size)
            out += head.encode() + data[a : b + 1] + b"\r\n"
        out += b"--%s--\r\n" % boundary.encode()
        self.send(206, out, headers, "multipart/byteranges; boundary=" + boundary)

    def blob_delete(self, name, ref):
        d = self.digest_of(ref)
        if d not in self.st.repo_blobs.get(name, ()):
            raise ApiError("BLOB_UNKNOWN")
        self.st.repo_blobs[name].discard(d)
        self.send(202)

    # ---- uploads -----------------------------------------------------------------

    def store_blob(self, name, data, want):
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        if want != d:
            raise ApiError("DIGEST_INVALID")
        self.st.blobs[d] = bytes(data)
        self.st.repo_blobs.setdefault(name, set()).add(d)
        self.send(201, b"", {"Location": "/v2/%s/blobs/%s" % (name, d), "Docker-Content-Digest": d})

    def upload_headers(self, name, uid, size):
        end = max(size - 1, 0)
        rng = ("bytes=0-%d" if self.fault("range-bytes-prefix") else "0-%d") % end
        return {
            "Location": "/v2/%s/blobs/uploads/%s" % (name, uid),
            "Range": rng,
            "Docker-Upload-UUID": uid,
        }

    def upload_start(self, name, ref):
        if ref:
            raise ApiError("UNSUPPORTED")
        mount, digest = self.q("mount"), self.q("digest")
        if digest is not None:
            return self.store_blob(name, self.req_body, self.digest_of(digest))
        if mount is not None:
            d = self.digest_of(mount)
            src = self.q("from")
            found = d in self.st.repo_blobs.get(src, ()) if src else d in self.st.blobs
            if found and d in self.st.blobs:
                self.st.repo_blobs.setdefault(name, set()).add(d)
                return self.send(
                    201,
                    b"",
                    {"Location": "/v2/%s/blobs/%s" % (name, d), "Docker-Content-Digest": d},
                )
        uid = uuid.uuid4().hex
        self.st.uploads[uid] = {"repo": name, "data": bytearray()}
        self.send(202, b"", self.upload_headers(name, uid, 0))

    def session(self, name, ref):
        up = self.st.uploads.get(ref or "")
        if up is None or up["repo"] != name:
            raise ApiError("BLOB_UPLOAD_UNKNOWN")
        return up

    def upload_status(self, name, ref):
        up = self.session(name, ref)
        self.send(204, b"", self.upload_headers(name, ref, len(up["data"])))

    def append(self, up, name, ref):
        cr = self.headers.get("Content-Range")
        if cr is not None and not self.fault("lax-content-range"):
            m = re.match(r"^(\d+)-(\d+)$", cr)
            if not m:
                raise ApiError(
                    "BLOB_UPLOAD_INVALID", 416, self.upload_headers(name, ref, len(up["data"]))
                )
            first, last = int(m.group(1)), int(m.group(2))
            if first != len(up["data"]) or last - first + 1 != len(self.req_body):
                raise ApiError(
                    "BLOB_UPLOAD_INVALID", 416, self.upload_headers(name, ref, len(up["data"]))
                )
        up["data"] += self.req_body

    def upload_patch(self, name, ref):
        up = self.session(name, ref)
        self.append(up, name, ref)
        self.send(202, b"", self.upload_headers(name, ref, len(up["data"])))

    def upload_put(self, name, ref):
        up = self.session(name, ref)
        digest = self.q("digest")
        if digest is None:
            raise ApiError("DIGEST_INVALID")
        self.append(up, name, ref)
        self.store_blob(name, up["data"], self.digest_of(digest))
        del self.st.uploads[ref]

    def upload_delete(self, name, ref):
        self.session(name, ref)
        del self.st.uploads[ref]
        self.send(204)

    # ---- manifests ------------------------------------------------------------------

    def resolve(self, name, ref):
        """A manifest digest from a tag or digest, or None."""
        if ":" in ref:
            d = self.digest_of(ref)
            return d if d in self.st.manifests.get(name, {}) else None
        return self.st.tags.get(name, {}).get(ref)

    def manifest_get(self, name, ref):
        if ":" not in ref and not TAG_RE.match(ref):
            raise ApiError("MANIFEST_UNKNOWN")
        d = self.resolve(name, ref)
        if d is None:
            raise ApiError("MANIFEST_UNKNOWN")
        m = self.st.manifests[name][d]
        etag = '"%s"' % d
        headers = {"Docker-Content-Digest": d, "ETag": etag}
        if self.headers.get("If-None-Match") == etag:
            return self.send(304, b"", headers)
        body = len(m["data"]) if self.command == "HEAD" else m["data"]
        self.send(200, body, headers, m["type"])

    def manifest_put(self, name, ref):
        data = self.req_body
        if len(data) > MAX_MANIFEST:
            raise ApiError("SIZE_INVALID", 413)
        if ":" in ref:
            want = self.digest_of(ref)
        elif not TAG_RE.match(ref):
            raise ApiError("TAG_INVALID")
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            doc = json.loads(data)
        except ValueError:
            raise ApiError("MANIFEST_INVALID")
        mtype = doc.get("mediaType") if isinstance(doc, dict) else None
        if (
            not isinstance(doc, dict)
            or doc.get("schemaVersion") != 2
            or (mtype and mtype != ctype)
            or ctype not in MANIFEST_TYPES
        ):
            raise ApiError("MANIFEST_INVALID")
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        if ":" in ref and want != d:
            raise ApiError("DIGEST_INVALID")
        self.check_references(name, doc, ctype)
        subject = (
            doc.get("subject", {}).get("digest") if isinstance(doc.get("subject"), dict) else None
        )
        atype = (
            doc.get("artifactType") or (doc.get("config") or {}).get("mediaType")
            if ctype != OCI_INDEX
            else doc.get("artifactType")
        )
        self.st.manifests.setdefault(name, {})[d] = {
            "data": data,
            "type": ctype,
            "subject": subject,
            "atype": atype,
            "annotations": doc.get("annotations"),
        }
        if ":" not in ref:
            self.st.tags.setdefault(name, {})[ref] = d
        headers = {"Location": "/v2/%s/manifests/%s" % (name, d)}
        if not self.fault("no-manifest-digest"):
            headers["Docker-Content-Digest"] = d
        if subject and not self.fault("no-subject-header"):
            headers["OCI-Subject"] = subject
        self.send(201, b"", headers)

    def check_references(self, name, doc, ctype):
        if "config" in doc or "layers" in doc:
            config, layers = doc.get("config"), doc.get("layers", [])
            if not isinstance(config, dict) or not isinstance(layers, list):
                raise ApiError("MANIFEST_INVALID")
            for desc in [config] + layers:
                if desc.get("digest") not in self.st.repo_blobs.get(name, ()):
                    raise ApiError("MANIFEST_BLOB_UNKNOWN")
        for child in doc.get("manifests", []):
            if child.get("digest") not in self.st.manifests.get(name, {}):
                raise ApiError("MANIFEST_BLOB_UNKNOWN")

    def manifest_delete(self, name, ref):
        d = self.resolve(name, ref)
        if d is None:
            raise ApiError("MANIFEST_UNKNOWN")
        tags = self.st.tags.get(name, {})
        if ":" in ref:
            del self.st.manifests[name][d]
            for t in [t for t, v in tags.items() if v == d]:
                del tags[t]
        else:
            del tags[ref]
        self.send(202)

    def referrers(self, name, ref):
        subject = self.digest_of(ref)
        want = self.q("artifactType")
        out = []
        for d, m in self.st.manifests.get(name, {}).items():
            if m["subject"] != subject or (want and m["atype"] != want):
                continue
            desc = {"mediaType": m["type"], "digest": d, "size": len(m["data"])}
            if m["atype"]:
                desc["artifactType"] = m["atype"]
            if m["annotations"] and not self.fault("lost-annotations"):
                desc["annotations"] = m["annotations"]
            out.append(desc)
        headers = (
            {"OCI-Filters-Applied": "artifactType"}
            if want and not self.fault("no-filters-header")
            else {}
        )
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": out}
        self.send(200, json.dumps(doc).encode(), headers, OCI_INDEX)


class ModelRegistry:
    """Serves the model on 127.0.0.1 (an ephemeral port) in a thread."""

    def __init__(self, faults=()):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = State(faults)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
